/* The acknowledgement script of rq:events (acct_ack_lua, stream.c) on a
 * real redis-server: it acknowledges, then trims exactly what no group
 * still needs: never an entry pending or not yet delivered, including at
 * the edges of the id arithmetic. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "accounting.h"
#include "../scheduler/testredis.h"

/* Acknowledges id in group g of stream s; returns XLEN s afterwards. */
static long long
ack(const char *s, const char *g, const char *id)
{
	redisReply *r = testredis_cmd("EVAL %s 1 %s %s %s", acct_ack_lua, s,
	    g, id);

	assert_non_null(r);
	if (r->type == REDIS_REPLY_ERROR)
		fail_msg("ack %s: %s", id, r->str);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	freeReplyObject(r);
	return testredis_num("XLEN %s", s);
}

static void
read_n(const char *s, const char *g, int n)
{
	testredis_do("XREADGROUP GROUP %s c COUNT %d STREAMS %s >", g, n, s);
}

static void
test_trim(void **state)
{
	testredis_do("FLUSHALL");
	testredis_do("XADD s 5-9 a 1");
	testredis_do("XADD s 5-10 a 1");
	testredis_do("XADD s 18446744073709551615-18446744073709551614 a 1");
	testredis_do("XGROUP CREATE s g 0");
	read_n("s", "g", 1);
	/* 5-9 acknowledged, 5-10 not yet delivered: only 5-9 goes */
	assert_int_equal(ack("s", "g", "5-9"), 2);
	read_n("s", "g", 2);
	/* the last entry still pending: everything before it goes */
	assert_int_equal(ack("s", "g", "5-10"), 1);
	assert_int_equal(ack("s", "g",
	    "18446744073709551615-18446744073709551614"), 0);
}

static void
test_edges(void **state)
{
	testredis_do("FLUSHALL");
	/* the sequence's carry: 7-99 acknowledged, 7-100 comes next */
	testredis_do("XADD s 7-99 a 1");
	testredis_do("XADD s 8-0 a 1");
	testredis_do("XGROUP CREATE s g 0");
	read_n("s", "g", 1);
	assert_int_equal(ack("s", "g", "7-99"), 1);
	/* the largest sequence: no successor, the entry stays, no error */
	testredis_do("XADD m 3-18446744073709551615 a 1");
	testredis_do("XGROUP CREATE m g 0");
	read_n("m", "g", 1);
	assert_int_equal(ack("m", "g", "3-18446744073709551615"), 1);
	/* a group that reads nothing holds its entries */
	testredis_do("XADD i 1-1 a 1");
	testredis_do("XGROUP CREATE i g 0");
	testredis_do("XGROUP CREATE i idle 0");
	read_n("i", "g", 1);
	assert_int_equal(ack("i", "g", "1-1"), 1);
	/* no stream: nothing to do */
	assert_int_equal(ack("none", "g", "1-1"), 0);
}

static int
setup(void **state)
{
	testredis_start();		/* exits when it cannot */
	return 0;
}

static int
teardown(void **state)
{
	testredis_stop();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_edges),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

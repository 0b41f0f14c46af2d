/* Unit tests of gateway/store.c: the read reply's shape checks (made-up
 * replies, so ASan sees any double free), and create/get against a real
 * redis-server on a free port. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "gateway.h"
#include "keys.h"
#include "log.h"
#include "teststore.h"

/* A string reply of a command ("" for anything else), in a static buffer
 * good until the next call. */
static const char *
testredis_str(const char *fmt, ...)
{
	static char buf[512];
	struct timeval tv = { 1, 0 };
	redisContext *c;
	redisReply *r = NULL;
	va_list ap;

	buf[0] = '\0';
	c = redisConnectWithTimeout("127.0.0.1", testredis_port, tv);
	if (c != NULL && !c->err) {
		va_start(ap, fmt);
		r = redisvCommand(c, fmt, ap);
		va_end(ap);
	}
	if (r != NULL && r->type == REDIS_REPLY_STRING)
		snprintf(buf, sizeof(buf), "%s", r->str);
	if (r != NULL)
		freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return buf;
}

/* Made-up replies: a flat array of n strings, an integer, an error. */
static redisReply	 strs[8], *strp[8];
static char		*strv[] = { "a", "1", "b", "2", "c", "3", "d", "4" };

static void
mk_str(redisReply *r, char *s)
{
	memset(r, 0, sizeof(*r));
	r->type = REDIS_REPLY_STRING;
	r->str = s;
	r->len = strlen(s);
}

static void
mk_array(redisReply *r, redisReply **el, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->type = REDIS_REPLY_ARRAY;
	r->element = el;
	r->elements = n;
}

static void
test_parse_shapes(void **state)
{
	redisReply top, good, bad, odd, err, *el[3];
	const char **job, **tl;
	size_t njob, ntl, i;

	for (i = 0; i < 8; i++) {
		mk_str(&strs[i], strv[i]);
		strp[i] = &strs[i];
	}
	mk_array(&good, strp, 4);
	mk_array(&odd, strp, 3);
	memset(&bad, 0, sizeof(bad));
	bad.type = REDIS_REPLY_INTEGER;
	memset(&err, 0, sizeof(err));
	err.type = REDIS_REPLY_ERROR;
	err.str = "ERR boom";

	/* Good shape: two flat arrays pointing into the reply. */
	el[0] = &good;
	el[1] = &good;
	mk_array(&top, el, 2);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), 0);
	assert_int_equal(njob, 4);
	assert_int_equal(ntl, 4);
	assert_string_equal(job[2], "b");
	assert_string_equal(tl[3], "2");
	free(job);
	free(tl);

	/* The job parses, the timeline does not: the job array was freed
	 * twice before (ASan reports it). */
	el[1] = &bad;
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	assert_null(job);
	assert_null(tl);
	el[1] = &odd;
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	assert_null(job);
	el[1] = &good;
	el[0] = &err;
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	assert_null(tl);

	/* A string among the pairs that is not one. */
	el[0] = &good;
	strp[1] = &bad;
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	strp[1] = &strs[1];

	/* Wrong outer shape. */
	assert_int_equal(gw_store_parse_get(NULL, &job, &njob, &tl, &ntl), -1);
	assert_int_equal(gw_store_parse_get(&err, &job, &njob, &tl, &ntl), -1);
	el[2] = &good;
	mk_array(&top, el, 3);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	mk_array(&top, el, 1);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);

	/* No such job: two empty arrays. */
	mk_array(&good, strp, 0);
	el[0] = el[1] = &good;
	mk_array(&top, el, 2);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), 0);
	assert_int_equal(njob, 0);
	assert_int_equal(ntl, 0);
}

/* The live tests: one store on the test server. */

struct result {
	int	 done;
	int	 rc;
	size_t	 njob, ntl;
	char	 to[64], tlfield[32];
};

/* Runs the loop until *flag is set, at most 5 s. */
static void
run_until(const int *flag)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	int i;

	for (i = 0; i < 1000 && !*flag; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (!*flag)
			nanosleep(&ts, NULL);
	}
	assert_true(*flag);
}

static void
created(int rc, void *arg)
{
	struct result *res = arg;

	res->rc = rc;
	res->done = 1;
}

static void
got(int rc, const char *const *job, size_t njob, const char *const *tl,
    size_t ntl, void *arg)
{
	struct result *res = arg;
	size_t i;

	res->rc = rc;
	res->njob = njob;
	res->ntl = ntl;
	for (i = 0; i + 1 < njob; i += 2)
		if (strcmp(job[i], "to") == 0)
			snprintf(res->to, sizeof(res->to), "%s", job[i + 1]);
	if (ntl > 0)
		snprintf(res->tlfield, sizeof(res->tlfield), "%s", tl[0]);
	res->done = 1;
}

static void
create(const char *id, const char *tenant, struct result *res)
{
	struct rq_tenant t;
	struct gw_call call;

	/* a tenant with the config's defaults, and its own retry delays */
	memset(&t, 0, sizeof(t));
	t.max_attempts = 3;
	t.retry_busy_attempts = 4;
	t.retry_busy_delay_s = 61;
	t.retry_no_answer_attempts = 2;
	t.retry_no_answer_delay_s = 301;
	t.retry_network_attempts = 5;
	t.retry_network_delay_s = 31;

	memset(&call, 0, sizeof(call));
	call.to = "+15551234567";
	call.say = "Hello";
	call.caller_id = "+15550000000";
	call.priority = 5;
	call.not_before_ms = 1700000000000ULL;
	memset(res, 0, sizeof(*res));
	snprintf(t.name, sizeof(t.name), "%s", tenant);
	assert_int_equal(gw_store_create(st, id, &t, &call,
	    1700000000000ULL, created, res), 0);
	run_until(&res->done);
}

static void
test_create_get(void **state)
{
	struct result res;

	create("c0000000000000000000001", "demo", &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(testredis_num("ZSCORE %s c0000000000000000000001",
	    RQ_KEY_DELAYED), 1700000000000LL);
	assert_int_equal(testredis_num("ZSCORE %sdemo c0000000000000000000001",
	    RQ_KEY_TENANT_CALLS), 1700000000000LL);
	assert_int_equal(testredis_num("HGET %sc0000000000000000000001 "
	    "max_attempts", RQ_KEY_JOB), 3);
	assert_int_equal(testredis_num("HGET %sc0000000000000000000001 "
	    "status_rank", RQ_KEY_JOB), 0);
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "callback_url", RQ_KEY_JOB), 0);
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "0:queued", RQ_KEY_TIMELINE), 1);
	assert_string_equal(testredis_str("HGET %sc0000000000000000000001 "
	    "status", RQ_KEY_JOB), "queued");
	assert_string_equal(testredis_str("HGET %sc0000000000000000000001 "
	    "retry_busy", RQ_KEY_JOB), "4:61000");
	assert_string_equal(testredis_str("HGET %sc0000000000000000000001 "
	    "retry_no_answer", RQ_KEY_JOB), "2:301000");
	assert_string_equal(testredis_str("HGET %sc0000000000000000000001 "
	    "retry_network", RQ_KEY_JOB), "5:31000");
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "not_after_ms", RQ_KEY_JOB), 0);
	/* EVENT queued, in the outbox, written by the same script */
	assert_int_equal(testredis_num("XLEN %s", RQ_KEY_EVENTS), 1);
	assert_string_equal(testredis_str("EVAL %s 1 %s",
	    "local e = redis.call('XRANGE', KEYS[1], '-', '+')[1][2] "
	    "local t = {} for i = 1, #e, 2 do t[#t + 1] = e[i] .. '=' .. "
	    "e[i + 1] end return table.concat(t, ' ')", RQ_KEY_EVENTS),
	    "call_id=c0000000000000000000001 attempt=0 status=queued "
	    "ts_ms=1700000000000 tenant=demo to=+15551234567");

	memset(&res, 0, sizeof(res));
	assert_int_equal(gw_store_get(st, "c0000000000000000000001", got,
	    &res), 0);
	run_until(&res.done);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.njob, 2 * 16);
	assert_string_equal(res.to, "+15551234567");
	assert_int_equal(res.ntl, 2);
	assert_string_equal(res.tlfield, "0:queued");

	memset(&res, 0, sizeof(res));
	assert_int_equal(gw_store_get(st, "c0000000000000000000404", got,
	    &res), 0);
	run_until(&res.done);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.njob, 0);
	assert_int_equal(res.ntl, 0);
}

/* A write that fails inside Redis answers -1, does not release the job to
 * the scheduler, and leaves the shared connection usable (no transaction
 * left open for the next request to join). */
static void
test_create_fails_cleanly(void **state)
{
	struct result res;

	testredis_do("SET %sbroken x", RQ_KEY_TENANT_CALLS);
	create("c0000000000000000000002", "broken", &res);
	assert_int_equal(res.rc, -1);
	assert_int_equal(testredis_num("ZSCORE %s c0000000000000000000002",
	    RQ_KEY_DELAYED), -1);
	/* no EVENT queued for the job that was refused */
	assert_int_equal(testredis_num("XLEN %s", RQ_KEY_EVENTS), 1);

	create("c0000000000000000000003", "demo", &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(testredis_num("ZSCORE %s c0000000000000000000003",
	    RQ_KEY_DELAYED), 1700000000000LL);
	assert_true(gw_store_connected(st));
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_parse_shapes),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_create_get),
		cmocka_unit_test(test_create_fails_cleanly),
	};
	int rc;

	log_init("test_store", 0);
	rc = cmocka_run_group_tests_name("parse", pure, NULL, NULL);
	rc += cmocka_run_group_tests_name("live", live, setup_live,
	    teardown_live);
	return rc;
}

/* The scheduler's release step (release.c and its Lua script) against a
 * real redis-server: priority order, due times, batches, vanished jobs,
 * expired leases, a flushed script cache and a Redis restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "scheduler.h"
#include "testredis.h"
#include "util.h"

#define P(prio, due)	((9 - (prio)) * 10000000000000LL + (due))
#define NOW		1800000000000LL

static struct rq_script *scripts[] = { &sched_release_script };
static struct rq_redis rl;

/* A job hash as the gateway writes it, its id in rq:delayed at due. */
static void
job(const char *id, const char *prio, long long due)
{
	if (prio != NULL)
		testredis_do("HSET rq:job:%s id %s tenant demo to +15551234567 "
		    "say hi priority %s not_before_ms %lld created_ms %lld "
		    "max_attempts 3", id, id, prio, due, due);
	else
		testredis_do("HSET rq:job:%s id %s tenant demo to +15551234567 "
		    "not_before_ms %lld", id, id, due);
	testredis_do("ZADD rq:delayed %lld %s", due, id);
}

static int
setup(void **state)
{
	testredis_do("FLUSHALL");
	rq_redis_init(&rl, "127.0.0.1", testredis_port, scripts, 1);
	assert_int_equal(rq_redis_ready(&rl), 0);
	return 0;
}

static int
teardown(void **state)
{
	rq_redis_close(&rl);
	return 0;
}

static void
test_priority_order(void **state)
{
	struct sched_stats st = { 0 };

	job("c_a", "1", NOW - 50);
	job("c_b", "9", NOW - 40);
	job("c_c", "5", NOW - 30);
	job("c_d", "5", NOW - 60);
	job("c_e", NULL, NOW - 10);	/* no priority: 5 */
	job("c_f", "12", NOW - 10);	/* out of range: 9 */
	job("c_g", "-3", NOW - 10);	/* out of range: 0 */
	job("c_later", "9", NOW + 1);
	assert_int_equal(sched_release(&rl, NULL, NOW, 100, &st), 0);
	assert_int_equal(st.released, 7);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_a"), P(1, NOW - 50));
	assert_int_equal(testredis_num("ZSCORE rq:ready c_b"), P(9, NOW - 40));
	assert_int_equal(testredis_num("ZSCORE rq:ready c_c"), P(5, NOW - 30));
	assert_int_equal(testredis_num("ZSCORE rq:ready c_d"), P(5, NOW - 60));
	assert_int_equal(testredis_num("ZSCORE rq:ready c_e"), P(5, NOW - 10));
	assert_int_equal(testredis_num("ZSCORE rq:ready c_f"), P(9, NOW - 10));
	assert_int_equal(testredis_num("ZSCORE rq:ready c_g"), P(0, NOW - 10));
	/* Not due yet: stays. */
	assert_int_equal(testredis_num("ZSCORE rq:ready c_later"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:delayed c_later"), NOW + 1);
	assert_int_equal(testredis_num("ZCARD rq:delayed"), 1);
}

static void
test_batches(void **state)
{
	struct sched_stats st = { 0 };
	char id[16];
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "c_%d", i);
		job(id, "5", NOW - i);
	}
	assert_int_equal(sched_release(&rl, NULL, NOW, 2, &st), 1);
	assert_int_equal(sched_release(&rl, NULL, NOW, 2, &st), 1);
	assert_int_equal(sched_release(&rl, NULL, NOW, 2, &st), 0);
	assert_int_equal(st.released, 5);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 5);
	assert_int_equal(testredis_num("ZCARD rq:delayed"), 0);
}

static void
test_vanished_job(void **state)
{
	struct sched_stats st = { 0 };

	testredis_do("ZADD rq:delayed %lld c_gone", NOW - 5);
	job("c_here", "5", NOW - 5);
	assert_int_equal(sched_release(&rl, NULL, NOW, 10, &st), 0);
	assert_int_equal(st.released, 1);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(testredis_num("ZCARD rq:delayed"), 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_gone"), -1);
}

static void
test_expired_leases(void **state)
{
	struct sched_stats st = { 0 };
	/* Leases are judged by Redis's clock (this host's here), not NOW. */
	long long rnow = (long long)rq_now_ms();

	/* A job taken by a dispatcher that died: lease expired. */
	testredis_do("HSET rq:job:c_x id c_x tenant demo to +1555 priority 7 "
	    "not_before_ms %lld attempts 1", NOW - 9000);
	testredis_do("ZADD rq:inflight %lld c_x", rnow - 1);
	/* A live lease, and an expired one whose job vanished. */
	testredis_do("HSET rq:job:c_y id c_y tenant demo to +1555 priority 7 "
	    "not_before_ms %lld attempts 1", NOW - 9000);
	testredis_do("ZADD rq:inflight %lld c_y", rnow + 60000);
	testredis_do("ZADD rq:inflight %lld c_z", rnow - 1);
	assert_int_equal(sched_release(&rl, NULL, NOW, 10, &st), 0);
	assert_int_equal(st.reclaimed, 1);
	assert_int_equal(st.released, 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_x"), P(7, NOW - 9000));
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_y"), rnow + 60000);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_z"), -1);
	/* The attempt count is not the scheduler's business. */
	assert_int_equal(testredis_num("HGET rq:job:c_x attempts"), 1);
	/* A scheduler whose clock runs an hour ahead (NOW is in 2027)
	 * still leaves the live lease alone. */
	assert_int_equal(sched_release(&rl, NULL, rnow + 3600000, 10, &st), 0);
	assert_int_equal(sched_release(&rl, NULL, NOW, 10, &st), 0);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_y"), rnow + 60000);
	assert_int_equal(st.reclaimed, 1);
}

static void
test_script_flushed(void **state)
{
	struct sched_stats st = { 0 };

	testredis_do("SCRIPT FLUSH");
	job("c_1", "5", NOW - 5);
	assert_int_equal(sched_release(&rl, NULL, NOW, 10, &st), 0);
	assert_int_equal(st.released, 1);
}

static void
test_redis_restart(void **state)
{
	struct sched_stats st = { 0 };
	struct timespec ts = { 1, 100 * 1000 * 1000 };

	testredis_kill();
	assert_int_equal(sched_release(&rl, NULL, NOW, 10, &st), -1);
	/* Down: no connection, and no retry before a second has passed. */
	assert_int_equal(rq_redis_ready(&rl), -1);
	assert_int_equal(testredis_launch(), 0);
	nanosleep(&ts, NULL);
	assert_int_equal(rq_redis_ready(&rl), 0);
	job("c_1", "5", NOW - 5);
	assert_int_equal(sched_release(&rl, NULL, NOW, 10, &st), 0);
	assert_int_equal(st.released, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_priority_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished_job, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expired_leases, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_script_flushed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_redis_restart, setup,
		    teardown),
	};
	int rc;

	log_init("test_release", 0);
	testredis_start();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	testredis_stop();
	return rc;
}

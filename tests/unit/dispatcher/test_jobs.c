/* The dispatcher's leases (jobs.c and its Lua scripts) against a real
 * redis-server: take, ack, nack/timeout requeue, stale and late acks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dispatcher.h"
#include "log.h"
#include "testredis.h"

#define P(prio, due)	((9 - (prio)) * 10000000000000LL + (due))
#define NB		1800000000000LL
#define LEASE		1900000000000LL

static struct rq_script *scripts[] = { &disp_take_script,
    &disp_acked_script, &disp_requeue_script };
static struct rq_redis rl;

/* A job as the gateway writes it, moved to rq:ready by the scheduler. */
static void
ready(const char *id, int prio, long long nb)
{
	testredis_do("HSET rq:job:%s id %s tenant demo to +15551234567 "
	    "say hello caller_id +15550000000 priority %d not_before_ms %lld "
	    "created_ms %lld max_attempts 3", id, id, prio, nb, nb);
	testredis_do("ZADD rq:ready %lld %s", P(prio, nb), id);
}

static int
setup(void **state)
{
	testredis_do("FLUSHALL");
	rq_redis_init(&rl, "127.0.0.1", testredis_port, scripts, 3);
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
test_take(void **state)
{
	struct rq_msg m;

	assert_int_equal(disp_job_take(&rl, LEASE, &m), 0);
	ready("c_low", 2, NB);
	ready("c_high", 8, NB + 10);
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 1);
	assert_int_equal(m.type, RQ_MSG_JOB);
	assert_string_equal(m.call_id, "c_high");
	assert_int_equal(m.attempt, 1);
	assert_string_equal(m.tenant, "demo");
	assert_string_equal(m.to, "+15551234567");
	assert_string_equal(m.say, "hello");
	assert_string_equal(m.caller_id, "+15550000000");
	assert_true(rq_msg_has(&m, priority));
	assert_int_equal(m.priority, 8);
	assert_false(rq_msg_has(&m, app_url));
	rq_msg_clear(&m);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_high"), LEASE);
	assert_int_equal(testredis_num("HGET rq:job:c_high attempts"), 1);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 1);
}

static void
test_take_broken(void **state)
{
	struct rq_msg m;

	testredis_do("ZADD rq:ready 1 c_gone");
	testredis_do("HSET rq:job:c_noto id c_noto tenant demo");
	testredis_do("ZADD rq:ready 2 c_noto");
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 2);
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 2);
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
}

static void
test_ack(void **state)
{
	struct rq_msg m;
	char *tenant, *to;

	ready("c_1", 5, NB);
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 1);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_acked(&rl, "c_1", 1, "tel1", 1, &tenant,
	    &to), 1);
	assert_string_equal(tenant, "demo");
	assert_string_equal(to, "+15551234567");
	free(tenant);
	free(to);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 1);
	/* A duplicate ack changes nothing. */
	assert_int_equal(disp_job_acked(&rl, "c_1", 1, "tel1", 0, &tenant,
	    &to), 0);
	free(tenant);
	free(to);
}

static void
test_stale_ack(void **state)
{
	struct rq_msg m;
	char *tenant, *to;

	/* Attempt 1 timed out and was requeued; another dispatcher took it
	 * as attempt 2: a late ack of attempt 1 must not touch that lease. */
	ready("c_1", 5, NB);
	testredis_do("HSET rq:job:c_1 attempts 1");
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 1);
	assert_int_equal(m.attempt, 2);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_acked(&rl, "c_1", 1, "tel1", 0, &tenant,
	    &to), 0);
	assert_null(tenant);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_1"), LEASE);
	assert_int_equal(disp_job_acked(&rl, "c_gone", 1, "tel1", 0, &tenant,
	    &to), 0);
}

static void
test_late_ack(void **state)
{
	struct rq_msg m;
	char *tenant, *to;

	/* Timed out and requeued keeping attempt 1; then its ack arrives:
	 * the telserver dials it, so the requeued copy goes. */
	ready("c_1", 5, NB);
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 1);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_1", 1, 0), 1);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 1);
	assert_int_equal(disp_job_acked(&rl, "c_1", 1, "tel1", 0, &tenant,
	    &to), 1);
	free(tenant);
	free(to);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
}

static void
test_requeue(void **state)
{
	struct rq_msg m;

	ready("c_1", 3, NB);
	ready("c_2", 3, NB + 5);
	/* Nack: the attempt is given back, the job keeps its place. */
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 1);
	assert_string_equal(m.call_id, "c_1");
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_1", 1, 1), 1);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_1"), P(3, NB));
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	/* Timeout: the attempt stays counted. */
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 1);
	assert_string_equal(m.call_id, "c_1");
	assert_int_equal(m.attempt, 1);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_1", 1, 0), 1);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_1"), P(3, NB));
	/* Not our lease any more: nothing happens. */
	assert_int_equal(disp_job_requeue(&rl, "c_1", 1, 1), 0);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 1);
	/* The job vanished while leased: the lease is dropped. */
	assert_int_equal(disp_job_take(&rl, LEASE, &m), 1);
	rq_msg_clear(&m);
	testredis_do("DEL rq:job:c_1");
	assert_int_equal(disp_job_requeue(&rl, "c_1", 2, 1), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_1"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_broken, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_ack, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_late_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue, setup, teardown),
	};
	int rc;

	log_init("test_jobs", 0);
	testredis_start();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	testredis_stop();
	return rc;
}

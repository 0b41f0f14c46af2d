/* The dispatcher's leases (jobs.c and its Lua scripts) against a real
 * redis-server: take, ack, nack/timeout requeue, stale and late acks, ended
 * jobs, max_attempts, broken jobs and dropped leases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dispatcher.h"
#include "log.h"
#include "util.h"
#include "testredis.h"

#define P(prio, due)	((9 - (prio)) * 10000000000000LL + (due))
#define NB		1800000000000LL
#define LEASE		60000		/* lease length, ms */

static struct rq_script *scripts[] = { &disp_take_script,
    &disp_acked_script, &disp_requeue_script, &disp_drop_script };
static struct rq_redis rl;
static struct rq_msg ev;	/* the EVENT of the last take */
static long long t_before;	/* wall clock just before the last take */

/* disp_job_take with a lease of LEASE; keeps its event in ev. */
static int
take(struct rq_msg *m)
{
	rq_msg_clear(&ev);
	t_before = (long long)rq_now_ms();
	return disp_job_take(&rl, LEASE, m, &ev);
}

/* The lease of id runs LEASE from the take, by Redis's clock (this host's). */
static void
assert_leased(const char *id)
{
	long long s = testredis_num("ZSCORE rq:inflight %s", id);

	assert_in_range(s, t_before + LEASE - 50,
	    (long long)rq_now_ms() + LEASE + 50);
}

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
	rq_redis_init(&rl, "127.0.0.1", testredis_port, scripts, 4);
	rq_msg_init(&ev, RQ_MSG_EVENT);
	assert_int_equal(rq_redis_ready(&rl), 0);
	return 0;
}

static int
teardown(void **state)
{
	rq_msg_clear(&ev);
	rq_redis_close(&rl);
	return 0;
}

static void
test_take(void **state)
{
	struct rq_msg m;

	assert_int_equal(take(&m), 0);
	ready("c_low", 2, NB);
	ready("c_high", 8, NB + 10);
	assert_int_equal(take(&m), 1);
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
	assert_leased("c_high");
	assert_false(rq_msg_has(&ev, status));
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
	assert_int_equal(take(&m), 2);
	assert_false(rq_msg_has(&ev, status));	/* vanished: nothing to say */
	assert_int_equal(take(&m), 2);
	/* No target: that attempt fails, rejected. */
	assert_string_equal(ev.call_id, "c_noto");
	assert_int_equal(ev.attempt, 1);
	assert_string_equal(ev.status, "failed");
	assert_string_equal(ev.reason, "rejected");
	assert_non_null(strstr(ev.detail, "tenant or target"));
	assert_string_equal(ev.tenant, "demo");
	assert_false(rq_msg_has(&ev, to));
	assert_int_equal(take(&m), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
}

static void
test_take_ended(void **state)
{
	struct rq_msg m;

	/* Attempt 1 completed (its ack was lost, yet it was dialled): a
	 * requeued copy must not be dialled again. */
	ready("c_done", 5, NB);
	testredis_do("HSET rq:job:c_done attempts 1 status completed "
	    "status_rank %d", 1 * 16 + 5);
	assert_int_equal(take(&m), 2);
	assert_false(rq_msg_has(&ev, status));
	assert_int_equal(testredis_num("ZCARD rq:ready"), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("HGET rq:job:c_done attempts"), 1);
	/* Failed, canceled, expired alike; answered is not terminal. */
	ready("c_exp", 5, NB);
	testredis_do("HSET rq:job:c_exp status expired status_rank 8");
	assert_int_equal(take(&m), 2);
	ready("c_ans", 5, NB);
	testredis_do("HSET rq:job:c_ans attempts 1 status answered "
	    "status_rank %d", 1 * 16 + 4);
	assert_int_equal(take(&m), 1);
	assert_int_equal(m.attempt, 2);
	rq_msg_clear(&m);
}

static void
test_attempts_exhausted(void **state)
{
	struct rq_msg m;
	int i;

	/* Three lost acks (requeued keeping the attempt): no fourth dial. */
	ready("c_1", 5, NB);
	for (i = 1; i <= 3; i++) {
		assert_int_equal(take(&m), 1);
		assert_int_equal(m.attempt, i);
		rq_msg_clear(&m);
		assert_int_equal(disp_job_requeue(&rl, "c_1", i, 0), 1);
	}
	assert_int_equal(take(&m), 2);
	assert_string_equal(ev.call_id, "c_1");
	assert_int_equal(ev.attempt, 3);
	assert_string_equal(ev.status, "failed");
	assert_string_equal(ev.reason, "attempts_exhausted");
	assert_string_equal(ev.tenant, "demo");
	assert_string_equal(ev.to, "+15551234567");
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 3);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	/* max_attempts absent: 3; a nack's giveback does not count. */
	ready("c_2", 5, NB);
	testredis_do("HDEL rq:job:c_2 max_attempts");
	testredis_do("HSET rq:job:c_2 attempts 2");
	assert_int_equal(take(&m), 1);
	assert_int_equal(m.attempt, 3);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_2", 3, 1), 1);
	assert_int_equal(take(&m), 1);
	assert_int_equal(m.attempt, 3);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_2", 3, 0), 1);
	assert_int_equal(take(&m), 2);
	assert_int_equal(ev.attempt, 3);
	assert_string_equal(ev.reason, "attempts_exhausted");
	/* max_attempts 1: one lost ack is the end. */
	ready("c_3", 5, NB);
	testredis_do("HSET rq:job:c_3 max_attempts 1");
	assert_int_equal(take(&m), 1);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_3", 1, 0), 1);
	assert_int_equal(take(&m), 2);
	assert_int_equal(ev.attempt, 1);
}

static void
test_drop(void **state)
{
	struct rq_msg m;

	ready("c_1", 5, NB);
	assert_int_equal(take(&m), 1);
	rq_msg_clear(&m);
	/* Not the current attempt: the lease stays. */
	assert_int_equal(disp_job_drop(&rl, "c_1", 2), 0);
	assert_leased("c_1");
	assert_int_equal(disp_job_drop(&rl, "c_1", 1), 1);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 0);
	assert_int_equal(disp_job_drop(&rl, "c_1", 1), 0);
}

static void
test_ack(void **state)
{
	struct rq_msg m;
	char *tenant, *to;

	ready("c_1", 5, NB);
	assert_int_equal(take(&m), 1);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_acked(&rl, "c_1", 1, "tel1", 1, &tenant,
	    &to), 1);
	assert_string_equal(tenant, "demo");
	assert_string_equal(to, "+15551234567");
	free(tenant);
	free(to);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 1);
	/* A duplicate ack changes nothing, not even the node. */
	assert_int_equal(disp_job_acked(&rl, "c_1", 1, "tel22", 0, &tenant,
	    &to), 0);
	assert_int_equal(testredis_num("HSTRLEN rq:job:c_1 node"), 4);
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
	assert_int_equal(take(&m), 1);
	assert_int_equal(m.attempt, 2);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_acked(&rl, "c_1", 1, "tel1", 0, &tenant,
	    &to), 0);
	assert_null(tenant);
	assert_leased("c_1");
	assert_int_equal(testredis_num("HEXISTS rq:job:c_1 node"), 0);
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
	assert_int_equal(take(&m), 1);
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
	assert_int_equal(take(&m), 1);
	assert_string_equal(m.call_id, "c_1");
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_1", 1, 1), 1);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_1"), P(3, NB));
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	/* Timeout: the attempt stays counted. */
	assert_int_equal(take(&m), 1);
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
	assert_int_equal(take(&m), 1);
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
		cmocka_unit_test_setup_teardown(test_take_ended, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_attempts_exhausted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_drop, setup, teardown),
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

/* The dispatcher's leases (jobs.c and its Lua scripts) against a real
 * redis-server: take (one and several per script), requeue with and
 * without giveback, a requeue after a claim, ended jobs, not_after,
 * max_attempts, calling hours closed while waiting, broken jobs and
 * dropped leases, with their events in rq:events. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zmq.h>

#include "dispatcher.h"
#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "testredis.h"

/* The ready score (RQ_LUA_READY_SCORE). */
#define P(prio, due)	((due) - (prio) * (long long)RQ_PRIORITY_STEP_MS)
#define NB		1800000000000LL
#define LEASE		60000		/* lease length, ms */

static struct rq_script *scripts[] = { &disp_take_script,
    &disp_requeue_script, &disp_drop_script, &rq_claim_script };
static struct rq_redis rl;
static long long t_before;	/* wall clock just before the last take */

/* disp_job_take of one id with a lease of LEASE, in the old shape: 1 with
 * *m, 0 when rq:ready is empty, 2 when an id was popped but not sent. */
static int
take(struct rq_msg *m)
{
	size_t n;
	int popped;

	t_before = (long long)rq_now_ms();
	popped = disp_job_take(&rl, LEASE, 1, m, &n);
	assert_true(popped >= 0);
	if (popped == 0)
		return 0;
	return n == 1 ? 1 : 2;
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
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
	assert_int_equal(testredis_num("HGET rq:job:c_high attempts"), 1);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 1);
}

/* A job that runs a VoiceXML application: its JOB carries app_url and no
 * say, and so does the message the telserver decodes. */
static void
test_take_app(void **state)
{
	struct rq_msg m, got;
	char *buf, err[128];
	size_t len;

	testredis_do("HSET rq:job:c_app id c_app tenant demo to +15551234567 "
	    "app_url https://apps.example.com/order.vxml?id=42 priority 5 "
	    "not_before_ms %lld created_ms %lld max_attempts 3", NB, NB);
	testredis_do("ZADD rq:ready %lld c_app", P(5, NB));
	assert_int_equal(take(&m), 1);
	assert_string_equal(m.call_id, "c_app");
	assert_false(rq_msg_has(&m, say));
	assert_true(rq_msg_has(&m, app_url));
	assert_string_equal(m.app_url,
	    "https://apps.example.com/order.vxml?id=42");
	assert_int_equal(rq_msg_pack(&m, &buf, &len), 0);
	assert_int_equal(rq_msg_unpack(buf, len, &got, err, sizeof(err)), 0);
	assert_int_equal(got.type, RQ_MSG_JOB);
	assert_false(rq_msg_has(&got, say));
	assert_string_equal(got.app_url,
	    "https://apps.example.com/order.vxml?id=42");
	free(buf);
	rq_msg_clear(&got);
	rq_msg_clear(&m);
}

static void
test_take_many(void **state)
{
	struct rq_msg m[4];
	size_t n, i;

	ready("c_1", 5, NB + 1);
	ready("c_2", 5, NB + 2);
	testredis_do("ZADD rq:ready %lld c_gone", P(5, NB + 3));
	ready("c_4", 5, NB + 4);
	ready("c_5", 5, NB + 5);
	/* Three popped, the vanished one among them: two to send. */
	assert_int_equal(disp_job_take(&rl, LEASE, 3, m, &n), 3);
	assert_int_equal(n, 2);
	assert_string_equal(m[0].call_id, "c_1");
	assert_string_equal(m[1].call_id, "c_2");
	for (i = 0; i < n; i++)
		rq_msg_clear(&m[i]);
	/* Fewer than asked for: rq:ready is empty now. */
	assert_int_equal(disp_job_take(&rl, LEASE, 4, m, &n), 2);
	assert_int_equal(n, 2);
	assert_string_equal(m[0].call_id, "c_4");
	assert_int_equal(m[1].attempt, 1);
	for (i = 0; i < n; i++)
		rq_msg_clear(&m[i]);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 4);
	assert_int_equal(disp_job_take(&rl, LEASE, 4, m, &n), 0);
	assert_int_equal(n, 0);
}

static void
test_take_broken(void **state)
{
	struct rq_msg m;
	char buf[128];

	testredis_do("ZADD rq:ready 1 c_gone");
	testredis_do("HSET rq:job:c_noto id c_noto tenant demo");
	testredis_do("ZADD rq:ready 2 c_noto");
	assert_int_equal(take(&m), 2);
	/* vanished: nothing to say */
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
	assert_int_equal(take(&m), 2);
	/* No target: that attempt fails, rejected. */
	assert_int_equal(testredis_event("c_noto", "failed", "reason", buf,
	    sizeof(buf)), 1);
	assert_string_equal(buf, "rejected");
	testredis_event("c_noto", "failed", "attempt", buf, sizeof(buf));
	assert_string_equal(buf, "1");
	testredis_event("c_noto", "failed", "detail", buf, sizeof(buf));
	assert_non_null(strstr(buf, "tenant or target"));
	testredis_event("c_noto", "failed", "tenant", buf, sizeof(buf));
	assert_string_equal(buf, "demo");
	testredis_event("c_noto", "failed", "to", buf, sizeof(buf));
	assert_string_equal(buf, "");
	assert_int_equal(testredis_num("HGET rq:job:c_noto status_rank"),
	    16 + 7);
	assert_int_equal(take(&m), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
}

static void
test_take_ended(void **state)
{
	struct rq_msg m;

	/* Attempt 1 completed: a stray copy in rq:ready is not dialled. */
	ready("c_done", 5, NB);
	testredis_do("HSET rq:job:c_done attempts 1 status completed "
	    "status_rank %d", 1 * 16 + 6);
	assert_int_equal(take(&m), 2);
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("HGET rq:job:c_done attempts"), 1);
	/* Failed, canceled, expired alike; answered and retrying are not
	 * terminal. */
	ready("c_exp", 5, NB);
	testredis_do("HSET rq:job:c_exp status expired status_rank 9");
	assert_int_equal(take(&m), 2);
	ready("c_can", 5, NB);
	testredis_do("HSET rq:job:c_can status canceled status_rank 8");
	assert_int_equal(take(&m), 2);
	ready("c_ans", 5, NB);
	testredis_do("HSET rq:job:c_ans attempts 1 status answered "
	    "status_rank %d", 1 * 16 + 4);
	assert_int_equal(take(&m), 1);
	assert_int_equal(m.attempt, 2);
	rq_msg_clear(&m);
	ready("c_retry", 5, NB);
	testredis_do("HSET rq:job:c_retry attempts 1 status retrying "
	    "status_rank %d", 1 * 16 + 5);
	assert_int_equal(take(&m), 1);
	assert_int_equal(m.attempt, 2);
	rq_msg_clear(&m);
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
}

static void
test_take_not_after(void **state)
{
	struct rq_msg m;
	char buf[64];
	long long now = (long long)rq_now_ms();

	/* Its window closed while it waited in rq:ready: expired. */
	ready("c_late", 5, NB);
	testredis_do("HSET rq:job:c_late not_after_ms %lld attempts 1 "
	    "status retrying status_rank %d", now - 1000, 16 + 5);
	ready("c_ok", 5, NB + 1);
	testredis_do("HSET rq:job:c_ok not_after_ms %lld", now + 60000);
	assert_int_equal(take(&m), 2);
	assert_int_equal(testredis_event("c_late", "expired", "reason", buf,
	    sizeof(buf)), 1);
	assert_string_equal(buf, "not_after");
	testredis_event("c_late", "expired", "attempt", buf, sizeof(buf));
	assert_string_equal(buf, "1");
	assert_int_equal(testredis_num("HGET rq:job:c_late attempts"), 1);
	assert_int_equal(testredis_num("HGET rq:job:c_late status_rank"),
	    16 + 9);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_late"), -1);
	assert_int_equal(take(&m), 1);
	assert_string_equal(m.call_id, "c_ok");
	rq_msg_clear(&m);
}

static void
test_take_hours(void **state)
{
	struct rq_msg m;
	struct rq_metric *hours;
	long long now = (long long)rq_now_ms(), s;
	int64_t counted;

	hours = rq_counter("ringq_dispatcher_requeued_total",
	    "reason=\"hours\"", "");
	counted = rq_metric_value(hours);
	/* Its calling hours closed while it waited in rq:ready: handed to
	 * the scheduler in rq:hours, by the take's now, not dispatched, its
	 * attempt not counted, no event. */
	ready("c_shut", 5, NB);
	testredis_do("HSET rq:job:c_shut hours_until_ms %lld attempts 1",
	    now - 1000);
	ready("c_open", 5, NB + 1);
	testredis_do("HSET rq:job:c_open hours_until_ms %lld", now + 60000);
	ready("c_odd", 5, NB + 2);
	testredis_do("HSET rq:job:c_odd hours_until_ms later");
	assert_int_equal(take(&m), 2);
	s = testredis_num("ZSCORE rq:hours c_shut");
	assert_in_range(s, t_before - 50, (long long)rq_now_ms() + 50);
	assert_int_equal(testredis_num("HGET rq:job:c_shut attempts"), 1);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_shut"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_shut"), -1);
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
	assert_int_equal(rq_metric_value(hours), counted + 1);
	/* Open till later, or no number: dispatched as any other. */
	assert_int_equal(take(&m), 1);
	assert_string_equal(m.call_id, "c_open");
	assert_int_equal(m.attempt, 1);
	rq_msg_clear(&m);
	assert_int_equal(take(&m), 1);
	assert_string_equal(m.call_id, "c_odd");
	rq_msg_clear(&m);
	assert_int_equal(testredis_num("ZCARD rq:hours"), 1);
	assert_int_equal(rq_metric_value(hours), counted + 1);
}

static void
test_attempts_exhausted(void **state)
{
	struct rq_msg m;
	char buf[64];
	int i;

	/* Three attempts used without a giveback: no fourth dial. */
	ready("c_1", 5, NB);
	for (i = 1; i <= 3; i++) {
		assert_int_equal(take(&m), 1);
		assert_int_equal(m.attempt, i);
		rq_msg_clear(&m);
		assert_int_equal(disp_job_requeue(&rl, "c_1", i, 0), 1);
	}
	assert_int_equal(take(&m), 2);
	assert_int_equal(testredis_event("c_1", "failed", "reason", buf,
	    sizeof(buf)),
	    1);
	assert_string_equal(buf, "attempts_exhausted");
	testredis_event("c_1", "failed", "attempt", buf, sizeof(buf));
	assert_string_equal(buf, "3");
	testredis_event("c_1", "failed", "to", buf, sizeof(buf));
	assert_string_equal(buf, "+15551234567");
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 3);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	/* max_attempts absent: 3; a giveback does not count. */
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
	assert_int_equal(testredis_event("c_2", "failed", "attempt", buf,
	    sizeof(buf)),
	    1);
	assert_string_equal(buf, "3");
}

static void
test_drop(void **state)
{
	struct rq_msg m;
	char buf[128];

	ready("c_1", 5, NB);
	assert_int_equal(take(&m), 1);
	rq_msg_clear(&m);
	/* Not the current attempt: the lease stays. */
	assert_int_equal(disp_job_drop(&rl, "c_1", 2, "tI", "bad"), 0);
	assert_leased("c_1");
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
	assert_int_equal(disp_job_drop(&rl, "c_1", 1, "tI", "bad target"),
	    1);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 0);
	assert_int_equal(testredis_event("c_1", "failed", "reason", buf,
	    sizeof(buf)),
	    1);
	assert_string_equal(buf, "rejected");
	testredis_event("c_1", "failed", "node", buf, sizeof(buf));
	assert_string_equal(buf, "tI");
	testredis_event("c_1", "failed", "detail", buf, sizeof(buf));
	assert_string_equal(buf, "bad target");
	assert_int_equal(disp_job_drop(&rl, "c_1", 1, "tI", "bad"), 0);
	assert_int_equal(testredis_num("XLEN rq:events"), 1);
}

static void
test_requeue(void **state)
{
	struct rq_msg m;

	ready("c_1", 3, NB);
	ready("c_2", 3, NB + 5);
	/* Nack or timeout: the attempt is given back, the job keeps its
	 * place. */
	assert_int_equal(take(&m), 1);
	assert_string_equal(m.call_id, "c_1");
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_1", 1, 1), 1);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_1"), P(3, NB));
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	/* Without giveback the attempt stays counted. */
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

static void
test_claim_races(void **state)
{
	struct rq_msg m;

	/* Claimed, then the ack timed out: the requeue finds no lease and
	 * changes nothing (the telserver is dialling attempt 1). */
	ready("c_1", 5, NB);
	assert_int_equal(take(&m), 1);
	rq_msg_clear(&m);
	assert_int_equal(rq_job_claim(&rl, "c_1", 1, "tA"), RQ_CLAIM_OK);
	assert_int_equal(disp_job_requeue(&rl, "c_1", 1, 1), 0);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_1"), -1);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tA c_1"), 1);

	/* Requeued (given back) first: a late claim of that lease fails,
	 * so attempt 1 is never dialled by tB. */
	ready("c_2", 5, NB);
	assert_int_equal(take(&m), 1);
	rq_msg_clear(&m);
	assert_int_equal(disp_job_requeue(&rl, "c_2", 1, 1), 1);
	assert_int_equal(rq_job_claim(&rl, "c_2", 1, "tB"), RQ_CLAIM_STALE);
	/* Taken again as attempt 1: only one of two telservers holding a
	 * JOB for attempt 1 can claim it. */
	assert_int_equal(take(&m), 1);
	assert_int_equal(m.attempt, 1);
	rq_msg_clear(&m);
	assert_int_equal(rq_job_claim(&rl, "c_2", 1, "tC"), RQ_CLAIM_OK);
	assert_int_equal(rq_job_claim(&rl, "c_2", 1, "tB"), RQ_CLAIM_STALE);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tB c_2"), 0);
	assert_int_equal(testredis_event("c_2", "dispatched", NULL, NULL, 0),
	    1);
}

/* A telserver lost (no heartbeat for heartbeat_timeout_ms) before it
 * acked: its job goes back to rq:ready with the attempt given back at
 * once, long before the ack timeout; one that it had claimed stays its
 * own.  Two DEALERs stand in for the telservers' sockets; what they are
 * sent is never read. */
static void
test_lost_telserver(void **state)
{
	struct rq_config cfg;
	struct rq_msg hb;
	struct disp d;
	void *zctx, *router, *peer[2];
	const char *ids[2] = { "idA", "idB" };
	uint64_t now;
	int i;

	rq_config_defaults(&cfg);
	snprintf(cfg.redis_host, sizeof(cfg.redis_host), "127.0.0.1");
	cfg.redis_port = testredis_port;
	cfg.ack_timeout_ms = 60000;
	cfg.heartbeat_timeout_ms = 1000;
	assert_non_null(zctx = zmq_ctx_new());
	assert_non_null(router = rq_bus_socket(zctx, ZMQ_ROUTER));
	assert_int_equal(zmq_bind(router, "inproc://test-lost"), 0);
	for (i = 0; i < 2; i++) {
		assert_non_null(peer[i] = rq_bus_socket(zctx, ZMQ_DEALER));
		assert_int_equal(zmq_setsockopt(peer[i], ZMQ_ROUTING_ID,
		    ids[i], 3), 0);
		assert_int_equal(zmq_connect(peer[i], "inproc://test-lost"),
		    0);
	}
	disp_init(&d, &cfg, router);
	rq_msg_init(&hb, RQ_MSG_HEARTBEAT);
	rq_msg_set(&hb, node, "tLost");
	rq_msg_set(&hb, active, 0);
	rq_msg_set(&hb, capacity, 1);
	rq_msg_set(&hb, state, "up");
	now = rq_mono_ms();
	assert_int_equal(disp_tels_heartbeat(&d.tels, "idA", 3, &hb, now), 0);
	ready("c_1", 5, NB);
	disp_fill(&d);
	assert_int_equal(d.njobs, 1);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 1);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 1);
	/* Still alive: nothing moves. */
	disp_tick(&d);
	assert_int_equal(d.njobs, 1);
	/* Lost: requeued at once, attempt given back, its slot freed. */
	d.tels.v[0].last_hb = rq_mono_ms() - 1001;
	disp_tick(&d);
	assert_int_equal(d.njobs, 0);
	assert_int_equal(d.tels.v[0].pending, 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_1"), P(5, NB));
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 0);

	/* Claimed before it was lost: the requeue changes nothing. */
	rq_msg_set(&hb, node, "tLost2");
	assert_int_equal(disp_tels_heartbeat(&d.tels, "idB", 3, &hb,
	    rq_mono_ms()), 0);
	disp_fill(&d);
	assert_int_equal(d.njobs, 1);
	assert_int_equal(rq_job_claim(&rl, "c_1", 1, "tLost2"), RQ_CLAIM_OK);
	d.tels.v[0].last_hb = rq_mono_ms() - 1001;
	disp_tick(&d);
	assert_int_equal(d.njobs, 0);
	assert_int_equal(testredis_num("ZCARD rq:ready"), 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tLost2 c_1"), 1);
	assert_int_equal(testredis_num("HGET rq:job:c_1 attempts"), 1);

	disp_free(&d);
	zmq_close(peer[0]);
	zmq_close(peer[1]);
	zmq_close(router);
	zmq_ctx_term(zctx);
	rq_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_app, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_many, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_take_broken, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_take_ended, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_take_not_after, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_take_hours, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_attempts_exhausted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_races, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lost_telserver, setup,
		    teardown),
	};
	int rc;

	log_init("test_jobs", 0);
	testredis_start();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	testredis_stop();
	return rc;
}

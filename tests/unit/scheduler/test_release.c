/* The scheduler's release step (release.c and its Lua script) and its
 * dead-node sweep (nodes.c) against a real redis-server: priority ageing,
 * due times, batches, vanished and ended jobs, not_after, the events in
 * rq:events, rq:wake, expired leases, the calls whose hours closed while
 * they waited (hours.c), a flushed script cache and a Redis restart (also
 * in the middle of a dead node's grace period). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "scheduler.h"
#include "testredis.h"
#include "util.h"

/* The ready score (RQ_LUA_READY_SCORE). */
#define P(prio, due)	((due) - (prio) * (long long)RQ_PRIORITY_STEP_MS)
#define NOW		1800000000000LL

static struct rq_script *scripts[] = { &sched_release_script,
    &sched_dead_script, &rq_finish_script, &rq_interrupt_script,
    &sched_deadlines_script, &sched_hours_list_script,
    &sched_hours_plan_script };
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

/* HGET of a job field into out ("" when absent). */
static const char *
field(const char *id, const char *name, char *out, size_t outlen)
{
	redisReply *r = testredis_cmd("HGET rq:job:%s %s", id, name);

	out[0] = '\0';
	if (r != NULL && r->type == REDIS_REPLY_STRING)
		snprintf(out, outlen, "%s", r->str);
	if (r != NULL)
		freeReplyObject(r);
	return out;
}

static int
setup(void **state)
{
	testredis_do("FLUSHALL");
	rq_redis_init(&rl, "127.0.0.1", testredis_port, scripts, 5);
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
	char buf[64];

	job("c_a", "1", NOW - 50);
	job("c_b", "9", NOW - 40);
	job("c_c", "5", NOW - 30);
	job("c_d", "5", NOW - 60);
	job("c_e", NULL, NOW - 10);	/* no priority: 5 */
	job("c_f", "12", NOW - 10);	/* out of range: 9 */
	job("c_g", "-3", NOW - 10);	/* out of range: 0 */
	job("c_later", "9", NOW + 1);
	assert_int_equal(sched_release(&rl, NOW, 100, &st, NULL), 0);
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
	/* Scheduled once each, at attempt 0, with tenant and target. */
	assert_int_equal(testredis_event("c_a", "scheduled", "attempt", buf,
	    sizeof(buf)), 1);
	assert_string_equal(buf, "0");
	assert_int_equal(testredis_event("c_a", "scheduled", "to", buf,
	    sizeof(buf)),
	    1);
	assert_string_equal(buf, "+15551234567");
	assert_int_equal(testredis_event("c_later", "scheduled", NULL, NULL, 0),
	    0);
	assert_string_equal(field("c_a", "status", buf, sizeof(buf)),
	    "scheduled");
	assert_int_equal(testredis_num("HGET rq:job:c_a status_rank"), 1);
	assert_int_equal(testredis_num("XLEN rq:events"), 7);
}

static void
test_ageing(void **state)
{
	char buf[64];
	redisReply *r;

	/* A priority 0 job waiting 10 minutes goes before a priority 9 job
	 * due now; one waiting 8 minutes does not. */
	job("c_old0", "0", NOW - 600000);
	job("c_new9", "9", NOW);
	job("c_mid0", "0", NOW - 480000);
	assert_int_equal(sched_release(&rl, NOW, 10, NULL, NULL), 0);
	r = testredis_cmd("ZRANGE rq:ready 0 -1");
	assert_non_null(r);
	assert_int_equal(r->elements, 3);
	snprintf(buf, sizeof(buf), "%s %s %s", r->element[0]->str,
	    r->element[1]->str, r->element[2]->str);
	freeReplyObject(r);
	assert_string_equal(buf, "c_old0 c_new9 c_mid0");
}

static void
test_not_after(void **state)
{
	struct sched_stats st = { 0 };
	char buf[64];

	/* Due, but its window closed: expired (not_after), not released. */
	job("c_late", "5", NOW - 100);
	testredis_do("HSET rq:job:c_late not_after_ms %lld", NOW - 1);
	testredis_do("ZADD rq:active:demo %lld c_late", NOW - 100);
	/* Due exactly at its not_after: still placed. */
	job("c_edge", "5", NOW - 100);
	testredis_do("HSET rq:job:c_edge not_after_ms %lld", NOW);
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), 0);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.released, 1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_late"), -1);
	assert_int_equal(testredis_num("ZCARD rq:delayed"), 0);
	assert_int_equal(testredis_event("c_late", "expired", "reason", buf,
	    sizeof(buf)), 1);
	assert_string_equal(buf, "not_after");
	assert_int_equal(testredis_event("c_late", "scheduled", NULL, NULL, 0),
	    0);
	assert_string_equal(field("c_late", "status", buf, sizeof(buf)),
	    "expired");
	assert_string_equal(field("c_late", "reason", buf, sizeof(buf)),
	    "not_after");
	/* Terminal: its concurrency slot is free. */
	assert_int_equal(testredis_num("ZSCORE rq:active:demo c_late"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_edge"),
	    P(5, NOW - 100));
}

/* The not_after sweep (deadlines.c): a call whose window closed while it
 * waited ends as expired, wherever it waited; one a dispatcher holds is
 * looked at again later; an ended or vanished one is forgotten; one whose
 * time has not come is left. */
static void
test_deadlines(void **state)
{
	char buf[64];
	int full = 0;

	job("c_ready", "5", NOW - 5000);
	testredis_do("ZREM rq:delayed c_ready");
	testredis_do("ZADD rq:ready %lld c_ready", P(5, NOW - 5000));
	testredis_do("ZADD rq:active:demo %lld c_ready", NOW - 5000);
	job("c_retrywait", "5", NOW + 60000);		/* waits for a retry */
	testredis_do("HSET rq:job:c_retrywait attempts 1");
	job("c_taken", "5", NOW - 5000);		/* a dispatcher's */
	testredis_do("ZREM rq:delayed c_taken");
	testredis_do("ZADD rq:inflight %lld c_taken", NOW + 2000);
	job("c_done", "5", NOW - 5000);
	testredis_do("ZREM rq:delayed c_done");
	testredis_do("HSET rq:job:c_done status completed status_rank 22");
	job("c_later", "5", NOW - 5000);		/* window still open */
	testredis_do("ZREM rq:delayed c_later");
	testredis_do("ZADD rq:ready %lld c_later", P(5, NOW - 5000));
	testredis_do("SET rq:job:c_broken x");		/* not a hash */
	testredis_do("ZADD rq:deadlines %lld c_ready %lld c_retrywait "
	    "%lld c_taken %lld c_done %lld c_gone %lld c_later "
	    "%lld c_broken", NOW - 1, NOW - 1, NOW - 1, NOW - 1, NOW - 1,
	    NOW + 1, NOW - 2);

	assert_int_equal(sched_deadlines(&rl, NOW, 10, &full), 2);
	assert_int_equal(full, 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_ready"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:delayed c_retrywait"), -1);
	assert_string_equal(field("c_ready", "status", buf, sizeof(buf)),
	    "expired");
	assert_string_equal(field("c_ready", "reason", buf, sizeof(buf)),
	    "not_after");
	assert_int_equal(testredis_event("c_ready", "expired", "attempt", buf,
	    sizeof(buf)), 1);
	assert_string_equal(buf, "0");
	assert_int_equal(testredis_event("c_retrywait", "expired", "attempt",
	    buf, sizeof(buf)), 1);
	assert_string_equal(buf, "1");
	/* its concurrency slot is free */
	assert_int_equal(testredis_num("ZSCORE rq:active:demo c_ready"), -1);
	/* the taken one: again in a second, untouched meanwhile */
	assert_int_equal(testredis_num("ZSCORE rq:deadlines c_taken"),
	    NOW + SCHED_DEADLINE_RECHECK_MS);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_taken"),
	    NOW + 2000);
	assert_string_equal(field("c_taken", "status", buf, sizeof(buf)), "");
	/* ended, vanished: forgotten; not yet due: left */
	assert_int_equal(testredis_num("ZSCORE rq:deadlines c_done"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:deadlines c_gone"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:deadlines c_broken"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:deadlines c_later"),
	    NOW + 1);
	assert_true(testredis_num("ZSCORE rq:ready c_later") != -1);
	assert_int_equal(testredis_num("ZCARD rq:deadlines"), 2);
	/* a second run changes nothing more */
	assert_int_equal(sched_deadlines(&rl, NOW, 10, &full), 0);
	assert_int_equal(testredis_event("c_ready", "expired", NULL, NULL, 0),
	    1);
	/* later: the next one's time came (a batch of one: full, so the
	 * scheduler runs again at once) */
	assert_int_equal(sched_deadlines(&rl, NOW + 5000, 1, &full), 1);
	assert_int_equal(full, 1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_later"), -1);
}

#define H	3600000LL

/* A call a take handed to rq:hours (its window closed while it waited),
 * taken at ms: its job with hours. */
static void
closed(const char *id, const char *prio, const char *hours, long long at)
{
	job(id, prio, NOW - 5000);
	testredis_do("ZREM rq:delayed %s", id);
	if (hours != NULL)
		testredis_do("HSET rq:job:%s hours %s hours_until_ms %lld", id,
		    hours, NOW - 1);
	testredis_do("ZADD rq:active:demo %lld %s", NOW - 5000, id);
	testredis_do("ZADD rq:hours %lld %s", at, id);
}

/* The hours step (hours.c) at 08:00Z on a Friday: each call in rq:hours
 * goes back to rq:delayed at its hours' next opening, with its
 * not_before, policy, slot and tie-break; one open again is due now; one
 * without hours is due now without them; a rule that cannot be planned
 * fails the call; an ended one is forgotten.  A take whose clock ran
 * ahead of ours: planned from the take's time, not before the close. */
static void
test_hours(void **state)
{
	char buf[128];
	int full = 0;

	closed("h_shut", "7", "c=10:00-11:00 UTC", NOW);
	closed("h_open", "5", "c=07:00-09:00 UTC", NOW);
	closed("h_none", "5", NULL, NOW);
	closed("h_bad", "5", "c=10:00-11:00 Mars/Olympus", NOW);
	closed("h_done", "5", "c=10:00-11:00 UTC", NOW);
	testredis_do("HSET rq:job:h_done status completed status_rank 22");
	closed("h_ahead", "5", "c=07:00-09:00 UTC", NOW + H + 5);

	assert_int_equal(sched_hours(&rl, NOW, 10, &full), 4);
	assert_int_equal(full, 0);
	assert_int_equal(testredis_num("ZCARD rq:hours"), 0);
	/* closed: at 10:00Z, with priority 7's tie-break (5 - 7) / 16 */
	assert_string_equal(field("h_shut", "not_before_ms", buf, sizeof(buf)),
	    "1800007200000");
	assert_int_equal(testredis_num("ZSCORE rq:delayed h_shut"),
	    NOW + 2 * H - 1);		/* 1800007199999.875 */
	assert_string_equal(field("h_shut", "hours_until_ms", buf,
	    sizeof(buf)), "1800010800000");
	assert_string_equal(field("h_shut", "policy", buf, sizeof(buf)),
	    "defer:calling_hours");
	assert_int_equal(testredis_num("ZSCORE rq:active:demo h_shut"),
	    NOW + 2 * H);
	/* open again: due now, until 09:00Z, its policy kept */
	assert_int_equal(testredis_num("ZSCORE rq:delayed h_open"), NOW);
	assert_string_equal(field("h_open", "hours_until_ms", buf,
	    sizeof(buf)), "1800003600000");
	assert_string_equal(field("h_open", "policy", buf, sizeof(buf)), "");
	/* no hours: due now, no hours_until_ms left to send it back */
	assert_int_equal(testredis_num("ZSCORE rq:delayed h_none"), NOW);
	assert_string_equal(field("h_none", "hours_until_ms", buf,
	    sizeof(buf)), "");
	/* cannot be planned: failed (policy), its slot freed */
	assert_string_equal(field("h_bad", "status", buf, sizeof(buf)),
	    "failed");
	assert_string_equal(field("h_bad", "reason", buf, sizeof(buf)),
	    "policy");
	assert_int_equal(testredis_event("h_bad", "failed", "detail", buf,
	    sizeof(buf)), 1);
	assert_non_null(strstr(buf, "its calling hours cannot be planned"));
	assert_int_equal(testredis_num("ZSCORE rq:delayed h_bad"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:active:demo h_bad"), -1);
	/* ended: forgotten, untouched */
	assert_int_equal(testredis_num("ZSCORE rq:delayed h_done"), -1);
	assert_string_equal(field("h_done", "status", buf, sizeof(buf)),
	    "completed");
	/* the take's clock said 09:00:00.005 (closed), ours 08:00: not
	 * planned for now, which would send it straight back, but for
	 * tomorrow's 07:00 */
	assert_int_equal(testredis_num("ZSCORE rq:delayed h_ahead"),
	    NOW + 23 * H);
	/* nothing left: nothing done */
	assert_int_equal(sched_hours(&rl, NOW, 10, &full), 0);
	/* a batch of one when two wait: full */
	closed("h_one", "5", "c=07:00-09:00 UTC", NOW);
	closed("h_two", "5", "c=07:00-09:00 UTC", NOW);
	assert_int_equal(sched_hours(&rl, NOW, 1, &full), 1);
	assert_int_equal(full, 1);
	assert_int_equal(testredis_num("ZCARD rq:hours"), 1);
}

static void
test_retry_and_ended(void **state)
{
	struct sched_stats st = { 0 };
	char buf[64];

	/* A retry (attempt 1 ended, retrying emitted by the finish): back
	 * in rq:ready without a second `scheduled`. */
	job("c_retry", "5", NOW - 10);
	testredis_do("HSET rq:job:c_retry attempts 1 status retrying "
	    "status_rank %d", 16 + 5);
	/* Canceled while waiting (the cancel left its id behind): dropped. */
	job("c_cancel", "5", NOW - 10);
	testredis_do("HSET rq:job:c_cancel status canceled status_rank 8");
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), 0);
	assert_int_equal(st.released, 1);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_retry"),
	    P(5, NOW - 10));
	assert_int_equal(testredis_num("ZSCORE rq:ready c_cancel"), -1);
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
	assert_string_equal(field("c_retry", "status", buf, sizeof(buf)),
	    "retrying");
}

static void
test_next_due_and_wake(void **state)
{
	struct timeval tv = { 1, 0 };
	redisContext *sub;
	redisReply *r;
	uint64_t nd;

	sub = redisConnectWithTimeout("127.0.0.1", testredis_port, tv);
	assert_non_null(sub);
	assert_int_equal(sub->err, 0);
	redisSetTimeout(sub, tv);
	r = redisCommand(sub, "SUBSCRIBE rq:wake");
	assert_non_null(r);
	freeReplyObject(r);

	job("c_later", "5", NOW + 1234);
	assert_int_equal(sched_release(&rl, NOW, 10, NULL, &nd), 0);
	assert_int_equal(nd, NOW + 1234);
	job("c_now", "5", NOW - 1);
	assert_int_equal(sched_release(&rl, NOW, 10, NULL, &nd), 0);
	/* One message for the release that moved something, none for the
	 * one that did not. */
	r = NULL;
	assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_string_equal(r->element[0]->str, "message");
	assert_string_equal(r->element[1]->str, "rq:wake");
	assert_string_equal(r->element[2]->str, "1");
	freeReplyObject(r);
	redisFree(sub);
	testredis_do("ZREM rq:delayed c_later");
	assert_int_equal(sched_release(&rl, NOW, 10, NULL, &nd), 0);
	assert_int_equal(nd, 0);
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
	assert_int_equal(sched_release(&rl, NOW, 2, &st, NULL), 1);
	assert_int_equal(sched_release(&rl, NOW, 2, &st, NULL), 1);
	assert_int_equal(sched_release(&rl, NOW, 2, &st, NULL), 0);
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
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), 0);
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
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), 0);
	assert_int_equal(st.reclaimed, 1);
	assert_int_equal(st.released, 0);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_x"), P(7, NOW - 9000));
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_y"), rnow + 60000);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 1);
	assert_int_equal(testredis_num("ZSCORE rq:ready c_z"), -1);
	/* Never claimed (a claim takes it out of rq:inflight) and now never
	 * can be: the attempt is given back.  No event. */
	assert_int_equal(testredis_num("HGET rq:job:c_x attempts"), 0);
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
	/* A scheduler whose clock runs an hour ahead (NOW is in 2027)
	 * still leaves the live lease alone. */
	assert_int_equal(sched_release(&rl, rnow + 3600000, 10, &st, NULL), 0);
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), 0);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_y"), rnow + 60000);
	assert_int_equal(st.reclaimed, 1);
}

static void
test_sweep(void **state)
{
	struct sched_nodes sn = { 0 };
	char buf[64];

	/* tA died (no liveness key) holding c_1; tB is alive with c_2; tC
	 * died with nothing.  Only c_1's attempt ends, as interrupted, once
	 * tA has been dead for the grace period. */
	job("c_1", "5", NOW - 1000);
	job("c_2", "5", NOW - 1000);
	testredis_do("ZREM rq:delayed c_1 c_2");
	testredis_do("HSET rq:job:c_1 attempts 1 dialed 1 node tA "
	    "status dispatched status_rank %d", 16 + 2);
	testredis_do("HSET rq:job:c_2 attempts 1 dialed 1 node tB "
	    "status dispatched status_rank %d", 16 + 2);
	testredis_do("SADD rq:nodes tA tB tC");
	testredis_do("SADD rq:oncall:tA c_1");
	testredis_do("SADD rq:oncall:tB c_2");
	testredis_do("SET rq:node:tB 1 PX 5000");
	assert_int_equal(sched_sweep(&rl, &sn, 10000), 0);
	assert_int_equal(sched_sweep(&rl, &sn, 10000 + SCHED_DEAD_GRACE_MS -
	    1), 0);
	assert_int_equal(testredis_num("SCARD rq:oncall:tA"), 1);
	assert_int_equal(sched_sweep(&rl, &sn, 10000 + SCHED_DEAD_GRACE_MS),
	    1);
	assert_int_equal(testredis_num("SCARD rq:oncall:tA"), 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tB c_2"), 1);
	/* Retried by the rules (network class, attempt 1 of 3). */
	assert_int_equal(testredis_event("c_1", "retrying", "reason", buf,
	    sizeof(buf)), 1);
	assert_string_equal(buf, "interrupted");
	assert_int_equal(testredis_event("c_2", "retrying", NULL, NULL, 0), 0);
	assert_int_equal(sched_sweep(&rl, &sn, 20000), 0);
	assert_int_equal(testredis_event("c_1", "retrying", NULL, NULL, 0), 1);

	/* tB's key vanishes (a Redis restart) but comes back with its next
	 * heartbeat within the grace period: its call is left alone. */
	testredis_do("DEL rq:node:tB");
	assert_int_equal(sched_sweep(&rl, &sn, 30000), 0);
	testredis_do("SET rq:node:tB 1 PX 5000");
	assert_int_equal(sched_sweep(&rl, &sn, 31000), 0);
	testredis_do("DEL rq:node:tB");
	assert_int_equal(sched_sweep(&rl, &sn, 32500), 0);
	assert_int_equal(sched_sweep(&rl, &sn, 33000), 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tB c_2"), 1);
	assert_int_equal(sched_sweep(&rl, &sn, 32500 + SCHED_DEAD_GRACE_MS),
	    1);
	sched_nodes_free(&sn);
}

/* A dead node holding a damaged job (its key no hash) beside a sound one:
 * the sound one ends, the damaged one is tried again a minute later, not
 * at every sweep (each would log the refusal), and the node is forgotten
 * once an operator removed it. */
static void
test_sweep_damaged(void **state)
{
	struct sched_nodes sn = { 0 };
	uint64_t t = 10000 + SCHED_DEAD_GRACE_MS;

	job("c_1", "5", NOW - 1000);
	testredis_do("ZREM rq:delayed c_1");
	testredis_do("HSET rq:job:c_1 attempts 1 dialed 1 node tD "
	    "status dispatched status_rank %d", 16 + 2);
	testredis_do("SET rq:job:c_bad damaged");
	testredis_do("SADD rq:nodes tD");
	testredis_do("SADD rq:oncall:tD c_1 c_bad");
	assert_int_equal(sched_sweep(&rl, &sn, 10000), 0);
	assert_int_equal(sched_sweep(&rl, &sn, t), 1);
	assert_int_equal(testredis_event("c_1", "retrying", NULL, NULL, 0), 1);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tD c_bad"), 1);
	/* not tried again within the minute: the key is mended meanwhile,
	 * and only the next try a minute on forgets the id */
	testredis_do("DEL rq:job:c_bad");
	assert_int_equal(sched_sweep(&rl, &sn, t + 1000), 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tD c_bad"), 1);
	assert_int_equal(sched_sweep(&rl, &sn, t + SCHED_REFUSED_RETRY_MS), 0);
	assert_int_equal(testredis_num("SCARD rq:oncall:tD"), 0);
	sched_nodes_free(&sn);
}

/* tA died holding c_1's attempt 1 (what a Redis with persistence keeps
 * across a restart; the test server has none: written again after one). */
static void
dead_node_tA(void)
{
	job("c_1", "5", NOW - 1000);
	testredis_do("ZREM rq:delayed c_1");
	testredis_do("HSET rq:job:c_1 attempts 1 dialed 1 node tA "
	    "status dispatched status_rank %d", 16 + 2);
	testredis_do("SADD rq:nodes tA");
	testredis_do("SADD rq:oncall:tA c_1");
}

/* Redis down, then back after the link's reconnect delay. */
static void
redis_outage(void)
{
	struct timespec ts = { 1, 100 * 1000 * 1000 };

	testredis_kill();
	assert_int_equal(testredis_launch(), 0);
	dead_node_tA();
	nanosleep(&ts, NULL);
}

static void
test_sweep_outage(void **state)
{
	struct sched_nodes sn = { 0 };
	struct sched_stats st = { 0 };

	/* Seen dead once, then a sweep fails (Redis stopped): the grace
	 * starts again from the first sweep that gets through, not from the
	 * look before the outage. */
	dead_node_tA();
	assert_int_equal(sched_sweep(&rl, &sn, 10000), 0);
	testredis_kill();
	assert_int_equal(sched_sweep(&rl, &sn, 11000), -1);
	redis_outage();
	assert_int_equal(sched_sweep(&rl, &sn, 10000 + SCHED_DEAD_GRACE_MS),
	    0);
	assert_int_equal(testredis_num("SCARD rq:oncall:tA"), 1);
	assert_int_equal(sched_sweep(&rl, &sn, 10000 + 2 * SCHED_DEAD_GRACE_MS
	    - 1), 0);
	assert_int_equal(testredis_num("SCARD rq:oncall:tA"), 1);
	assert_int_equal(testredis_event("c_1", "retrying", NULL, NULL, 0), 0);
	assert_int_equal(sched_sweep(&rl, &sn, 10000 + 2 *
	    SCHED_DEAD_GRACE_MS), 1);
	assert_int_equal(testredis_num("SCARD rq:oncall:tA"), 0);
	assert_int_equal(testredis_event("c_1", "retrying", NULL, NULL, 0), 1);

	/* The link lost by another command (the release step) between two
	 * sweeps, and already connected again when the sweep runs: the same
	 * restart of the grace. */
	sched_nodes_free(&sn);
	testredis_do("FLUSHALL");
	dead_node_tA();
	assert_int_equal(sched_sweep(&rl, &sn, 40000), 0);
	testredis_kill();
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), -1);
	redis_outage();
	assert_int_equal(sched_sweep(&rl, &sn, 40000 + SCHED_DEAD_GRACE_MS),
	    0);
	assert_int_equal(testredis_num("SCARD rq:oncall:tA"), 1);
	assert_int_equal(sched_sweep(&rl, &sn, 40000 + 2 *
	    SCHED_DEAD_GRACE_MS), 1);

	/* sched_nodes_forget: what the daemon calls while Redis is down. */
	sched_nodes_free(&sn);
	testredis_do("FLUSHALL");
	dead_node_tA();
	assert_int_equal(sched_sweep(&rl, &sn, 60000), 0);
	sched_nodes_forget(&sn);
	assert_int_equal(sn.n, 0);
	assert_int_equal(sched_sweep(&rl, &sn, 60000 + SCHED_DEAD_GRACE_MS),
	    0);
	assert_int_equal(sched_sweep(&rl, &sn, 60000 + 2 *
	    SCHED_DEAD_GRACE_MS), 1);
	sched_nodes_free(&sn);
}

static void
test_script_flushed(void **state)
{
	struct sched_stats st = { 0 };

	testredis_do("SCRIPT FLUSH");
	job("c_1", "5", NOW - 5);
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), 0);
	assert_int_equal(st.released, 1);
}

static void
test_redis_restart(void **state)
{
	struct sched_stats st = { 0 };
	struct timespec ts = { 1, 100 * 1000 * 1000 };

	testredis_kill();
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), -1);
	/* Down: no connection, and no retry before a second has passed. */
	assert_int_equal(rq_redis_ready(&rl), -1);
	assert_int_equal(testredis_launch(), 0);
	nanosleep(&ts, NULL);
	assert_int_equal(rq_redis_ready(&rl), 0);
	job("c_1", "5", NOW - 5);
	assert_int_equal(sched_release(&rl, NOW, 10, &st, NULL), 0);
	assert_int_equal(st.released, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_priority_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ageing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_after, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deadlines, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_and_ended, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_next_due_and_wake, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_damaged, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sweep_outage, setup,
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

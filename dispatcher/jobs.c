/* Job leases in Redis: take the best ready id under a lease, release the
 * lease on ack, put the id back on nack or timeout.  Each change is one Lua
 * script, so a crash never leaves a job in two queues or in none. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "keys.h"
#include "log.h"
#include "status.h"
#include "util.h"

/* A requeued job gets its rq:ready score from its original due time
 * (RQ_LUA_READY_SCORE in common/keys.h), so it keeps its place. */

/* KEYS: rq:ready rq:inflight.  ARGV: lease length ms, job key prefix.
 * The lease deadline is Redis's clock (TIME) plus the lease length, the
 * clock the scheduler's expiry check reads too, so host clock skew cannot
 * reclaim a live lease.  A job that already ended (status_rank % 16 at
 * least completed, status.h's enum order) or whose lost acks used up
 * max_attempts (default 3) leaves rq:ready without a new attempt.
 * Returns nil (empty), {id} (its job vanished), {id, 'terminal', status},
 * {id, 'exhausted', attempts, tenant, to}, {id, 'rejected', attempt,
 * tenant, to} (no tenant or target: that attempt fails) or
 * {id, attempt, tenant, to, say, caller_id, priority, app_url}. */
static const char take_src[] =
"local r = redis.call('ZPOPMIN', KEYS[1])\n"
"if #r == 0 then return false end\n"
"local id = r[1]\n"
"local key = ARGV[2] .. id\n"
"if redis.call('EXISTS', key) == 0 then return {id} end\n"
"local f = redis.call('HMGET', key, 'tenant', 'to', 'say', 'caller_id',\n"
"    'priority', 'app_url', 'status_rank', 'attempts', 'max_attempts',\n"
"    'status')\n"
"local rank = tonumber(f[7])\n"
"if rank ~= nil and rank % 16 >= 5 then\n"
"  return {id, 'terminal', f[10] or '?'}\n"
"end\n"
"local att = tonumber(f[8]) or 0\n"
"local max = tonumber(f[9])\n"
"if max == nil or max < 1 then max = 3 end\n"
"if att >= max then return {id, 'exhausted', att, f[1], f[2]} end\n"
"att = redis.call('HINCRBY', key, 'attempts', 1)\n"
"if not f[1] or not f[2] then return {id, 'rejected', att, f[1], f[2]} end\n"
"local t = redis.call('TIME')\n"
"local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"    + tonumber(ARGV[1])\n"
"redis.call('ZADD', KEYS[2], string.format('%.0f', deadline), id)\n"
"return {id, att, f[1], f[2], f[3], f[4], f[5], f[6]}\n";

/* KEYS: rq:inflight rq:ready.  ARGV: id, attempt, node, prefix, pending.
 * Only the current attempt may release the lease: a stale ack must not
 * release another dispatcher's later lease on the same job.  An ack we
 * were not waiting for (pending 0) also takes a requeued copy of the same
 * attempt out of rq:ready: that telserver is dialling it already.  The
 * node is recorded only when this ack released something (a duplicate
 * changes nothing).  Returns {removed, tenant, to}. */
static const char acked_src[] =
"local key = ARGV[4] .. ARGV[1]\n"
"local att = tonumber(redis.call('HGET', key, 'attempts'))\n"
"if att == nil or att ~= tonumber(ARGV[2]) then return {-1} end\n"
"local n = redis.call('ZREM', KEYS[1], ARGV[1])\n"
"if ARGV[5] == '0' then n = n + redis.call('ZREM', KEYS[2], ARGV[1]) end\n"
"if n > 0 then redis.call('HSET', key, 'node', ARGV[3]) end\n"
"local f = redis.call('HMGET', key, 'tenant', 'to')\n"
"return {n, f[1], f[2]}\n";

/* KEYS: rq:inflight rq:ready.  ARGV: id, attempt, giveback, prefix, now.
 * Returns 1 (requeued), 0 (no longer our lease), -1 (job vanished). */
static const char requeue_src[] =
RQ_LUA_READY_SCORE
"local id = ARGV[1]\n"
"local key = ARGV[4] .. id\n"
"local att = tonumber(redis.call('HGET', key, 'attempts'))\n"
"if att ~= nil and att ~= tonumber(ARGV[2]) then return 0 end\n"
"if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end\n"
"if att == nil then return -1 end\n"
"if ARGV[3] == '1' then redis.call('HINCRBY', key, 'attempts', -1) end\n"
"local due = tonumber(redis.call('HGET', key, 'not_before_ms')) or\n"
"    tonumber(ARGV[5])\n"
"redis.call('ZADD', KEYS[2], score(key, due), id)\n"
"return 1\n";

/* KEYS: rq:inflight.  ARGV: id, attempt, prefix.  Drops the lease of that
 * attempt only if it is still the job's current one.  Returns 1 or 0. */
static const char drop_src[] =
"local att = tonumber(redis.call('HGET', ARGV[3] .. ARGV[1], 'attempts'))\n"
"if att ~= nil and att ~= tonumber(ARGV[2]) then return 0 end\n"
"return redis.call('ZREM', KEYS[1], ARGV[1])\n";

struct rq_script disp_take_script = { "take", take_src, "" };
struct rq_script disp_acked_script = { "acked", acked_src, "" };
struct rq_script disp_requeue_script = { "requeue", requeue_src, "" };
struct rq_script disp_drop_script = { "drop", drop_src, "" };

/* A bulk string of the reply, or NULL.  (scheduler/release.c has its
 * own copy: a candidate for common/redis_sync.h.) */
/* Sets a string field of m to a copy of the reply (nil: not set). */
#define SET_STR(m, field, rep) do {					\
	const char *s_ = rq_reply_str(rep);				\
	if (s_ != NULL && ((m)->field = strdup(s_)) != NULL)		\
		(m)->present |= RQ_F_##field;				\
} while (0)

/* Fills ev with the terminal EVENT failed of an attempt that ends in the
 * take script: e holds {id, kind, attempt, tenant, to}. */
static void
take_failed(struct rq_msg *ev, redisReply **e, const char *reason,
    const char *detail)
{
	SET_STR(ev, call_id, e[0]);
	rq_msg_set(ev, attempt, (uint64_t)e[2]->integer);
	if ((ev->status = strdup(rq_status_name(RQ_ST_FAILED))) != NULL)
		ev->present |= RQ_F_status;
	if ((ev->reason = strdup(reason)) != NULL)
		ev->present |= RQ_F_reason;
	if ((ev->detail = strdup(detail)) != NULL)
		ev->present |= RQ_F_detail;
	SET_STR(ev, tenant, e[3]);
	SET_STR(ev, to, e[4]);
}

int
disp_job_take(struct rq_redis *r, uint64_t lease_ms, struct rq_msg *job,
    struct rq_msg *ev)
{
	char lease[32];
	const char *argv[4];
	redisReply *rep, **e;
	const char *id, *kind;
	char *end;
	unsigned long long prio;

	rq_msg_init(ev, RQ_MSG_EVENT);
	ev->owns_strings = 1;
	snprintf(lease, sizeof(lease), "%llu", (unsigned long long)lease_ms);
	argv[0] = RQ_KEY_READY;
	argv[1] = RQ_KEY_INFLIGHT;
	argv[2] = lease;
	argv[3] = RQ_KEY_JOB;
	if ((rep = rq_redis_eval(r, &disp_take_script, 2, 4, argv)) == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_NIL) {
		freeReplyObject(rep);
		return 0;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    (id = rq_reply_str(rep->element[0])) == NULL) {
		log_warnx("redis: take: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	if (rep->elements == 1) {
		log_warnx("call %s: job vanished, dropped from the ready queue",
		    id);
		freeReplyObject(rep);
		return 2;
	}
	e = rep->element;
	if ((kind = rq_reply_str(e[1])) != NULL) {
		if (!strcmp(kind, "terminal") && rep->elements == 3) {
			log_warnx("call %s: already %s, dropped from the ready "
			    "queue", id, rq_reply_str(e[2]) ? e[2]->str : "?");
		} else if (rep->elements == 5 &&
		    e[2]->type == REDIS_REPLY_INTEGER &&
		    !strcmp(kind, "exhausted")) {
			log_warnx("call %s: attempt %lld: no ack and no "
			    "attempts left, failed", id, e[2]->integer);
			take_failed(ev, e, RQ_REASON_ATTEMPTS_EXHAUSTED,
			    "max_attempts reached without an acknowledged "
			    "attempt");
		} else if (rep->elements == 5 &&
		    e[2]->type == REDIS_REPLY_INTEGER &&
		    !strcmp(kind, "rejected")) {
			log_warnx("call %s: attempt %lld: job without tenant "
			    "or target, failed", id, e[2]->integer);
			take_failed(ev, e, RQ_REASON_REJECTED,
			    "job without tenant or target");
		} else
			log_warnx("call %s: redis: take: unexpected reply", id);
		freeReplyObject(rep);
		return 2;
	}
	if (rep->elements != 8 || e[1]->type != REDIS_REPLY_INTEGER ||
	    e[1]->integer < 1 || rq_reply_str(e[2]) == NULL ||
	    rq_reply_str(e[3]) == NULL) {
		/* The script checks all this: a lease we cannot use, left
		 * to expire. */
		log_warnx("call %s: redis: take: unexpected reply", id);
		freeReplyObject(rep);
		return 2;
	}
	rq_msg_init(job, RQ_MSG_JOB);
	job->owns_strings = 1;
	SET_STR(job, call_id, e[0]);
	rq_msg_set(job, attempt, (uint64_t)e[1]->integer);
	SET_STR(job, tenant, e[2]);
	SET_STR(job, to, e[3]);
	SET_STR(job, say, e[4]);
	SET_STR(job, caller_id, e[5]);
	SET_STR(job, app_url, e[7]);
	if (rq_reply_str(e[6]) != NULL) {
		errno = 0;
		prio = strtoull(e[6]->str, &end, 10);
		if (errno == 0 && *end == '\0' && end != e[6]->str && prio <= 9)
			rq_msg_set(job, priority, prio);
	}
	freeReplyObject(rep);
	if (!rq_msg_has(job, call_id) || !rq_msg_has(job, tenant) ||
	    !rq_msg_has(job, to)) {
		log_warnx("call %s: out of memory, job left to its lease", id);
		rq_msg_clear(job);
		return 2;
	}
	return 1;
}

int
disp_job_acked(struct rq_redis *r, const char *id, uint64_t attempt,
    const char *node, int pending, char **tenant, char **to)
{
	char att[32];
	const char *argv[7];
	redisReply *rep;
	int n;

	*tenant = *to = NULL;
	snprintf(att, sizeof(att), "%llu", (unsigned long long)attempt);
	argv[0] = RQ_KEY_INFLIGHT;
	argv[1] = RQ_KEY_READY;
	argv[2] = id;
	argv[3] = att;
	argv[4] = node;
	argv[5] = RQ_KEY_JOB;
	argv[6] = pending ? "1" : "0";
	if ((rep = rq_redis_eval(r, &disp_acked_script, 2, 7, argv)) == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER) {
		log_warnx("call %s: redis: acked: unexpected reply", id);
		freeReplyObject(rep);
		return -1;
	}
	n = (int)rep->element[0]->integer;
	if (n < 0) {
		log_warnx("call %s: ack of attempt %llu is not the job's "
		    "current attempt (or the job vanished)", id,
		    (unsigned long long)attempt);
		n = 0;
	} else if (rep->elements == 3) {
		if (rq_reply_str(rep->element[1]) != NULL)
			*tenant = strdup(rep->element[1]->str);
		if (rq_reply_str(rep->element[2]) != NULL)
			*to = strdup(rep->element[2]->str);
	}
	freeReplyObject(rep);
	return n;
}

int
disp_job_requeue(struct rq_redis *r, const char *id, uint64_t attempt,
    int giveback)
{
	char att[32], now[32];
	const char *argv[7];
	redisReply *rep;
	int rc;

	snprintf(att, sizeof(att), "%llu", (unsigned long long)attempt);
	snprintf(now, sizeof(now), "%llu", (unsigned long long)rq_now_ms());
	argv[0] = RQ_KEY_INFLIGHT;
	argv[1] = RQ_KEY_READY;
	argv[2] = id;
	argv[3] = att;
	argv[4] = giveback ? "1" : "0";
	argv[5] = RQ_KEY_JOB;
	argv[6] = now;
	if ((rep = rq_redis_eval(r, &disp_requeue_script, 2, 7, argv)) ==
	    NULL) {
		log_warnx("call %s: not requeued now, left to its lease", id);
		return -1;
	}
	if (rep->type != REDIS_REPLY_INTEGER) {
		log_warnx("call %s: redis: requeue: unexpected reply", id);
		freeReplyObject(rep);
		return -1;
	}
	rc = (int)rep->integer;
	freeReplyObject(rep);
	if (rc == -1) {
		log_warnx("call %s: job vanished, lease dropped", id);
		return 0;
	}
	return rc;
}

int
disp_job_drop(struct rq_redis *r, const char *id, uint64_t attempt)
{
	char att[32];
	const char *argv[4];
	redisReply *rep;
	int rc;

	snprintf(att, sizeof(att), "%llu", (unsigned long long)attempt);
	argv[0] = RQ_KEY_INFLIGHT;
	argv[1] = id;
	argv[2] = att;
	argv[3] = RQ_KEY_JOB;
	if ((rep = rq_redis_eval(r, &disp_drop_script, 1, 4, argv)) == NULL) {
		log_warnx("call %s: cannot drop the lease now, left to it", id);
		return -1;
	}
	if (rep->type != REDIS_REPLY_INTEGER) {
		log_warnx("call %s: redis: drop: unexpected reply", id);
		freeReplyObject(rep);
		return -1;
	}
	rc = rep->integer > 0;
	freeReplyObject(rep);
	return rc;
}

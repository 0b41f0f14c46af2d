/* Job leases in Redis: take the best ready ids under a lease, put an id
 * back on nack or ack timeout, drop one a telserver found unusable.  Each
 * change is one Lua script, so a crash never leaves a job in two queues or
 * in none, and every event it causes is in rq:events (RQ_LUA_EVENTS). */
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

/*
 * KEYS: rq:ready rq:inflight rq:hours.  ARGV: lease length ms, job key
 * prefix, how many ids to pop at most.
 * The lease deadline is Redis's clock (TIME) plus the lease length, the
 * clock the scheduler's expiry check reads too, so host clock skew cannot
 * reclaim a live lease.  An id whose job cannot be dialled ends here, with
 * its event: past not_after (Redis's clock) -> expired (not_after);
 * attempts already at max_attempts (default 3) -> failed
 * (attempts_exhausted); no tenant or target -> that attempt failed
 * (rejected).  A job that already ended leaves rq:ready silently.  One
 * whose calling hours closed while it waited (hours_until_ms, a number,
 * at or before now) goes to rq:hours by now, for the scheduler to plan
 * again: no attempt counted, no lease, no event.
 * Returns a flat array, RQ_TAKE_SLOTS elements per popped id (padded with
 * false): {id} (its job vanished), {id, 'terminal', status},
 * {id, 'expired', attempt}, {id, 'exhausted', attempt},
 * {id, 'closed', attempt}, {id, 'rejected', attempt} or {id, attempt,
 * tenant, to, say, caller_id, priority, app_url}; fewer ids than asked
 * for means rq:ready is empty now, and none false.  Flat, because Redis
 * checks every table a script returns for an error or status reply (a
 * few thousand instructions each); TIME only once an id is popped, as the
 * dispatchers often find rq:ready empty.
 */
static const char take_src[] =
RQ_LUA_EVENTS
"local out, n\n"
"local function put(id, a, b, c, d, e, f, g)\n"
"  out[n + 1] = id; out[n + 2] = a or false; out[n + 3] = b or false\n"
"  out[n + 4] = c or false; out[n + 5] = d or false\n"
"  out[n + 6] = e or false; out[n + 7] = f or false\n"
"  out[n + 8] = g or false; n = n + 8\n"
"end\n"
RQ_LUA_RUN_EVENTS
"out, n = {}, 0\n"
/* integers written as the module reads them: no sign, space or leading 0 */
"local function upto(s, top)\n"
"  if s ~= '0' and not string.match(s, '^[1-9]%d*$') then return nil end\n"
"  local v = tonumber(s)\n"
"  if v <= top then return v end\n"
"end\n"
"local lease = upto(ARGV[1], " RQ_STR(RQ_TAKE_MAX_MS) ")\n"
"local max = upto(ARGV[3], " RQ_STR(RQ_TAKE_MAX_JOBS) ")\n"
/* no "ringq." in the text: a plain AOF holds this library, and the test
 * finds no module command named there */
"if not (lease and max) then\n"
"  return redis.error_reply('ERR take: lease or max is not a number "
    "in range')\n"
"end\n"
"local now, deadline\n"
"for i = 1, max do\n"
"  local r = redis.call('ZPOPMIN', KEYS[1])\n"
"  if #r == 0 then break end\n"
"  if now == nil then\n"
"    now = now_ms()\n"
"    deadline = string.format('%d', now + lease)\n"
"  end\n"
"  local id = r[1]\n"
"  local key = ARGV[2] .. id\n"
"  local f = redis.call('HMGET', key, 'tenant', 'to', 'say', 'caller_id',\n"
"      'priority', 'app_url', 'status_rank', 'attempts', 'max_attempts',\n"
"      'status', 'not_after_ms', 'id', 'hours_until_ms')\n"
"  local att = tonumber(f[8]) or 0\n"
"  local max = tonumber(f[9])\n"
"  if max == nil or max < 1 then max = "
    RQ_STR(RQ_MAX_ATTEMPTS_DEFAULT) " end\n"
"  local na = tonumber(f[11])\n"
"  local ev = { call_id = id, attempt = att, tenant = f[1], to = f[2] }\n"
"  if not (f[1] or f[7] or f[12]) and redis.call('EXISTS', key) == 0 then\n"
"    put(id)\n"
"  elseif is_terminal(tonumber(f[7])) then\n"
"    put(id, 'terminal', f[10] or '?')\n"
"  elseif na ~= nil and now > na then\n"
"    ev.status = 'expired'\n"
"    ev.reason = 'not_after'\n"
"    ev.detail = 'not placed before its not_after'\n"
"    emit(key, ev)\n"
"    put(id, 'expired', att)\n"
"  elseif att >= max then\n"
"    ev.status = 'failed'\n"
"    ev.reason = 'attempts_exhausted'\n"
"    ev.detail = 'max_attempts reached'\n"
"    emit(key, ev)\n"
"    put(id, 'exhausted', att)\n"
/* f[13] first: a job without hours costs one test */
"  elseif f[13] and tonumber(f[13]) and now >= tonumber(f[13]) then\n"
"    redis.call('ZADD', KEYS[3], now_text(), id)\n"
"    put(id, 'closed', att)\n"
"  else\n"
"    att = redis.call('HINCRBY', key, 'attempts', '1')\n"
"    if not f[1] or not f[2] then\n"
"      ev.attempt = att\n"
"      ev.status = 'failed'\n"
"      ev.reason = 'rejected'\n"
"      ev.detail = 'job without tenant or target'\n"
"      emit(key, ev)\n"
"      put(id, 'rejected', att)\n"
"    else\n"
"      redis.call('ZADD', KEYS[2], deadline, id)\n"
"      put(id, att, f[1], f[2], f[3], f[4], f[5], f[6])\n"
"    end\n"
"  end\n"
"end\n"
"return n > 0 and out\n";

/*
 * KEYS: rq:inflight rq:ready.  ARGV: id, attempt, giveback, prefix, now.
 * Only the lease of the job's current attempt comes back, and only while it
 * is still in rq:inflight: a telserver's claim takes it out of there, so a
 * claimed attempt is never requeued, and a requeued lease can never be
 * claimed.  giveback undoes the attempt count: that attempt was not dialled
 * and now never will be.  Wakes the dispatchers (rq:wake).
 * Returns 1 (requeued), 0 (no longer our lease), -1 (job vanished).
 */
static const char requeue_src[] =
RQ_LUA_READY_SCORE
RQ_LUA_RUN
"local id = ARGV[1]\n"
"local key = ARGV[4] .. id\n"
"local att = tonumber(redis.call('HGET', key, 'attempts'))\n"
"if att ~= nil and att ~= tonumber(ARGV[2]) then return 0 end\n"
"if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end\n"
"if att == nil then return -1 end\n"
"if ARGV[3] == '1' and att > 0 then\n"
"  redis.call('HINCRBY', key, 'attempts', '-1')\n"
"end\n"
"local due = tonumber(redis.call('HGET', key, 'not_before_ms')) or\n"
"    tonumber(ARGV[5])\n"
"redis.call('ZADD', KEYS[2], score(key, due), id)\n"
"redis.call('PUBLISH', '" RQ_CHANNEL_WAKE "', '1')\n"
"return 1\n";

/*
 * KEYS: rq:inflight.  ARGV: id, attempt, prefix, node, detail.  Ends an
 * attempt a telserver refused as unusable (before any claim): drops the
 * lease of that attempt if it is still the job's current one and still in
 * rq:inflight, and emits failed (rejected) unless the job already ended.
 * Returns 1 (ended here) or 0.
 */
static const char drop_src[] =
RQ_LUA_EVENTS
RQ_LUA_RUN_EVENTS
"local key = ARGV[3] .. ARGV[1]\n"
"local f = redis.call('HMGET', key, 'attempts', 'status_rank', 'tenant',\n"
"    'to')\n"
"if tonumber(f[1]) ~= tonumber(ARGV[2]) then return 0 end\n"
"if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
"if is_terminal(tonumber(f[2])) then return 0 end\n"
"emit(key, { call_id = ARGV[1], attempt = ARGV[2], status = 'failed',\n"
"    reason = 'rejected', node = ARGV[4], detail = ARGV[5],\n"
"    tenant = f[3], to = f[4] })\n"
"return 1\n";

struct rq_script disp_take_script = { .name = "take",
    .src = take_src, .native = 1 };
struct rq_script disp_requeue_script = { .name = "requeue",
    .src = requeue_src };
struct rq_script disp_drop_script = { .name = "drop",
    .src = drop_src };

/* Sets a string field of m to a copy of the reply (nil: not set). */
#define SET_STR(m, field, rep) do {					\
	const char *s_ = rq_reply_str(rep);				\
	if (s_ != NULL && ((m)->field = strdup(s_)) != NULL)		\
		(m)->present |= RQ_F_##field;				\
} while (0)

/* Reads one id's RQ_TAKE_SLOTS elements of the take script's reply.  Returns
 * 1 with *job filled (it owns its strings: rq_msg_clear), or 0 (logged)
 * when that id is not to be sent. */
static int
take_entry(redisReply **e, struct rq_msg *job)
{
	const char *id, *kind;
	unsigned long long prio;
	char *end;

	if ((id = rq_reply_str(e[0])) == NULL) {
		log_warnx("redis: take: unexpected reply");
		return 0;
	}
	if (e[1]->type == REDIS_REPLY_NIL) {
		log_warnx("call %s: job vanished, dropped from the ready queue",
		    id);
		return 0;
	}
	if ((kind = rq_reply_str(e[1])) != NULL) {
		if (!strcmp(kind, "terminal"))
			log_warnx("call %s: already %s, dropped from the ready "
			    "queue", id, rq_reply_str(e[2]) ? e[2]->str : "?");
		else if (!strcmp(kind, "expired"))
			log_info("call %s: expired: not placed before its "
			    "not_after", id);
		else if (!strcmp(kind, "exhausted"))
			log_warnx("call %s: attempt %lld: no attempts left, "
			    "failed (attempts_exhausted)", id, e[2]->integer);
		else if (!strcmp(kind, "closed")) {
			log_info("call %s: its calling hours closed while it "
			    "waited: back to the scheduler", id);
			disp_count_requeued("hours");
		} else if (!strcmp(kind, "rejected"))
			log_warnx("call %s: attempt %lld: job without tenant "
			    "or target, failed (rejected)", id, e[2]->integer);
		else
			log_warnx("call %s: redis: take: unexpected reply", id);
		return 0;
	}
	if (e[1]->type != REDIS_REPLY_INTEGER || e[1]->integer < 1 ||
	    rq_reply_str(e[2]) == NULL || rq_reply_str(e[3]) == NULL) {
		/* The script checks all this: a lease we cannot use, left
		 * to expire. */
		log_warnx("call %s: redis: take: unexpected reply", id);
		return 0;
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
	if (!rq_msg_has(job, call_id) || !rq_msg_has(job, tenant) ||
	    !rq_msg_has(job, to)) {
		log_warnx("call %s: out of memory, job left to its lease", id);
		rq_msg_clear(job);
		return 0;
	}
	return 1;
}

int
disp_job_take_reply(const redisReply *rep, size_t max, struct rq_msg *jobs,
    size_t *njobs)
{
	size_t i;

	*njobs = 0;
	/* none popped: nil (elements 0) */
	if ((rep->type != REDIS_REPLY_ARRAY && rep->type != REDIS_REPLY_NIL) ||
	    rep->elements % RQ_TAKE_SLOTS != 0 ||
	    rep->elements / RQ_TAKE_SLOTS > max) {
		log_warnx("redis: take: unexpected reply%s%s",
		    rep->type == REDIS_REPLY_ERROR ? ": " : "",
		    rep->type == REDIS_REPLY_ERROR ? rep->str : "");
		return -1;
	}
	for (i = 0; i < rep->elements; i += RQ_TAKE_SLOTS)
		if (take_entry(rep->element + i, &jobs[*njobs]) == 1)
			(*njobs)++;
	return (int)(rep->elements / RQ_TAKE_SLOTS);
}

int
disp_job_take(struct rq_redis *r, uint64_t lease_ms, size_t max,
    struct rq_msg *jobs, size_t *njobs)
{
	char lease[32], count[32];
	const char *argv[6];
	redisReply *rep;
	int popped;

	*njobs = 0;
	if (max == 0)
		return 0;
	snprintf(lease, sizeof(lease), "%llu", (unsigned long long)lease_ms);
	snprintf(count, sizeof(count), "%zu", max);
	argv[0] = RQ_KEY_READY;
	argv[1] = RQ_KEY_INFLIGHT;
	argv[2] = RQ_KEY_HOURS;
	argv[3] = lease;
	argv[4] = RQ_KEY_JOB;
	argv[5] = count;
	if ((rep = rq_redis_eval(r, &disp_take_script, 3, 6, argv)) == NULL)
		return -1;
	popped = disp_job_take_reply(rep, max, jobs, njobs);
	freeReplyObject(rep);
	return popped;
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
disp_job_drop(struct rq_redis *r, const char *id, uint64_t attempt,
    const char *node, const char *detail)
{
	char att[32];
	const char *argv[6];
	redisReply *rep;
	int rc;

	snprintf(att, sizeof(att), "%llu", (unsigned long long)attempt);
	argv[0] = RQ_KEY_INFLIGHT;
	argv[1] = id;
	argv[2] = att;
	argv[3] = RQ_KEY_JOB;
	argv[4] = node;
	argv[5] = detail;
	if ((rep = rq_redis_eval(r, &disp_drop_script, 1, 6, argv)) == NULL) {
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

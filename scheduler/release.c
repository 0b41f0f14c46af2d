/* The scheduler's one step: release due jobs from rq:delayed and expired
 * dispatch leases from rq:inflight into rq:ready, in one Lua script, and
 * report each released job to accounting as EVENT scheduled. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "msg.h"
#include "scheduler.h"
#include "status.h"

/*
 * rq:ready is ordered by score = (9 - priority) * 1e13 + due_ms: priority
 * (0..9, default 5, from the job hash) dominates because 1e13 ms is beyond
 * any due time (year 2286), and within one priority the older due time comes
 * first.  So ZPOPMIN takes the most urgent, then the oldest job.  A reclaimed
 * lease keeps its original due time (the job's not_before_ms), so it goes
 * back ahead of the jobs that became due after it.  The score function is
 * common/keys.h's RQ_LUA_READY_SCORE, shared with the dispatcher.
 *
 * Due times are compared with now_ms (the scheduler's clock, like the
 * gateway's not_before_ms), but lease deadlines with Redis's own clock
 * (TIME), the one the dispatcher's take script set them by, so clock skew
 * between hosts cannot reclaim a live lease early.
 *
 * KEYS: rq:delayed rq:ready rq:inflight
 * ARGV: now_ms batch job-key-prefix
 * Returns { ntaken, {id, tenant, to, created_ms, ...}, ndropped,
 * {reclaimed id, ...}, nexpired }.  Ids come from Redis, so a vanished job
 * hash only drops the id.  If this reply is lost (the connection drops
 * after the script ran), its jobs are in rq:ready but never reported
 * scheduled: accepted, the call's later events still move its status.
 */
static const char release_src[] =
"local now = tonumber(ARGV[1])\n"
"local batch = tonumber(ARGV[2])\n"
"local prefix = ARGV[3]\n"
RQ_LUA_READY_SCORE
"local released, dropped, reclaimed = {}, 0, {}\n"
"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
"    'WITHSCORES', 'LIMIT', 0, batch)\n"
"for i = 1, #due, 2 do\n"
"  local id, at = due[i], tonumber(due[i + 1])\n"
"  local key = prefix .. id\n"
"  redis.call('ZREM', KEYS[1], id)\n"
"  if redis.call('EXISTS', key) == 1 then\n"
"    redis.call('ZADD', KEYS[2], score(key, at), id)\n"
"    local f = redis.call('HMGET', key, 'tenant', 'to', 'created_ms')\n"
"    released[#released + 1] = id\n"
"    released[#released + 1] = f[1]\n"
"    released[#released + 1] = f[2]\n"
"    released[#released + 1] = f[3]\n"
"  else\n"
"    dropped = dropped + 1\n"
"  end\n"
"end\n"
"local t = redis.call('TIME')\n"
"local rnow = string.format('%.0f', tonumber(t[1]) * 1000 +\n"
"    math.floor(tonumber(t[2]) / 1000))\n"
"local exp = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', rnow,\n"
"    'LIMIT', 0, batch)\n"
"for _, id in ipairs(exp) do\n"
"  local key = prefix .. id\n"
"  redis.call('ZREM', KEYS[3], id)\n"
"  if redis.call('EXISTS', key) == 1 then\n"
"    local nb = tonumber(redis.call('HGET', key, 'not_before_ms')) or now\n"
"    redis.call('ZADD', KEYS[2], score(key, nb), id)\n"
"    reclaimed[#reclaimed + 1] = id\n"
"  end\n"
"end\n"
"return { #due / 2, released, dropped, reclaimed, #exp }\n";

struct rq_script sched_release_script = { "release", release_src, "" };

/* A bulk string of the reply as a C string, or NULL (nil, other types).
 * (dispatcher/jobs.c has its own copy: a candidate for common/.) */
/* Emits EVENT queued (the gateway's may have been lost with its EXEC
 * reply; accounting stores it once) and then EVENT scheduled.  created_ms
 * may be NULL: the outbox stamps the queued event now. */
static void
emit_released(struct rq_evout *eo, const char *id, const char *tenant,
    const char *to, const char *created_ms)
{
	struct rq_msg ev;
	unsigned long long created;
	char *end;
	int i;

	for (i = 0; i < 2; i++) {
		rq_msg_init(&ev, RQ_MSG_EVENT);
		rq_msg_set(&ev, call_id, (char *)id);
		rq_msg_set(&ev, attempt, 0);
		rq_msg_set(&ev, status, (char *)rq_status_name(i == 0 ?
		    RQ_ST_QUEUED : RQ_ST_SCHEDULED));
		if (i == 0 && created_ms != NULL) {
			errno = 0;
			created = strtoull(created_ms, &end, 10);
			if (errno == 0 && end != created_ms && *end == '\0' &&
			    created > 0)
				rq_msg_set(&ev, ts_ms, (uint64_t)created);
		}
		if (tenant != NULL)
			rq_msg_set(&ev, tenant, (char *)tenant);
		if (to != NULL)
			rq_msg_set(&ev, to, (char *)to);
		if (rq_evout_emit(eo, &ev) == -1)
			log_warnx("call %s: cannot queue EVENT %s", id,
			    ev.status);
	}
}

int
sched_release(struct rq_redis *r, struct rq_evout *eo, uint64_t now_ms,
    int batch, struct sched_stats *st)
{
	char now[32], nbatch[16];
	const char *argv[6];
	redisReply *rep, *rel, *rec;
	long long ntaken, nexpired;
	size_t i;
	int full;

	snprintf(now, sizeof(now), "%llu", (unsigned long long)now_ms);
	snprintf(nbatch, sizeof(nbatch), "%d", batch);
	argv[0] = RQ_KEY_DELAYED;
	argv[1] = RQ_KEY_READY;
	argv[2] = RQ_KEY_INFLIGHT;
	argv[3] = now;
	argv[4] = nbatch;
	argv[5] = RQ_KEY_JOB;
	if ((rep = rq_redis_eval(r, &sched_release_script, 3, 6, argv)) ==
	    NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_ARRAY ||
	    rep->element[2]->type != REDIS_REPLY_INTEGER ||
	    rep->element[3]->type != REDIS_REPLY_ARRAY ||
	    rep->element[4]->type != REDIS_REPLY_INTEGER) {
		log_warnx("redis: release: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	ntaken = rep->element[0]->integer;
	nexpired = rep->element[4]->integer;
	rel = rep->element[1];
	rec = rep->element[3];

	for (i = 0; i + 4 <= rel->elements; i += 4) {
		const char *id = rq_reply_str(rel->element[i]);

		if (id == NULL)
			continue;
		log_debug("call %s: released to the ready queue", id);
		if (eo != NULL)
			emit_released(eo, id, rq_reply_str(rel->element[i + 1]),
			    rq_reply_str(rel->element[i + 2]),
			    rq_reply_str(rel->element[i + 3]));
	}
	if (rep->element[2]->integer > 0)
		log_warnx("dropped %lld due ids whose job vanished",
		    rep->element[2]->integer);
	for (i = 0; i < rec->elements; i++) {
		const char *id = rq_reply_str(rec->element[i]);

		if (id != NULL)
			log_warnx("call %s: dispatch lease expired (its "
			    "dispatcher died?), back to the ready queue", id);
	}
	if (st != NULL) {
		st->released += rel->elements / 4;
		st->dropped += rep->element[2]->integer;
		st->reclaimed += rec->elements;
	}
	full = ntaken >= batch || nexpired >= batch;
	freeReplyObject(rep);
	return full;
}

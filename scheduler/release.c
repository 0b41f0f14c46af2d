/* The scheduler's one step: release due jobs from rq:delayed and expired
 * dispatch leases from rq:inflight into rq:ready, in one Lua script, and
 * report each released job to accounting as EVENT scheduled. */
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
 * back ahead of the jobs that became due after it.
 *
 * KEYS: rq:delayed rq:ready rq:inflight
 * ARGV: now_ms batch job-key-prefix
 * Returns { ntaken, {id, tenant, to, ...}, ndropped, {reclaimed id, ...} }.
 * Ids come from Redis, so a vanished job hash only drops the id.
 */
static const char release_src[] =
"local now = tonumber(ARGV[1])\n"
"local batch = tonumber(ARGV[2])\n"
"local prefix = ARGV[3]\n"
"local function score(key, due)\n"
"  local p = tonumber(redis.call('HGET', key, 'priority'))\n"
"  if p == nil then p = 5 end\n"
"  p = math.floor(p)\n"
"  if p < 0 then p = 0 elseif p > 9 then p = 9 end\n"
"  return string.format('%.0f', (9 - p) * 1e13 + due)\n"
"end\n"
"local released, dropped, reclaimed = {}, 0, {}\n"
"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
"    'WITHSCORES', 'LIMIT', 0, batch)\n"
"for i = 1, #due, 2 do\n"
"  local id, at = due[i], tonumber(due[i + 1])\n"
"  local key = prefix .. id\n"
"  redis.call('ZREM', KEYS[1], id)\n"
"  if redis.call('EXISTS', key) == 1 then\n"
"    redis.call('ZADD', KEYS[2], score(key, at), id)\n"
"    local f = redis.call('HMGET', key, 'tenant', 'to')\n"
"    released[#released + 1] = id\n"
"    released[#released + 1] = f[1]\n"
"    released[#released + 1] = f[2]\n"
"  else\n"
"    dropped = dropped + 1\n"
"  end\n"
"end\n"
"local exp = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now,\n"
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

/* A bulk string of the reply as a C string, or NULL (nil, other types). */
static const char *
reply_str(const redisReply *r)
{
	if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
		return r->str;
	return NULL;
}

static void
emit_scheduled(struct rq_evout *eo, const char *id, const char *tenant,
    const char *to)
{
	struct rq_msg ev;

	rq_msg_init(&ev, RQ_MSG_EVENT);
	rq_msg_set(&ev, call_id, (char *)id);
	rq_msg_set(&ev, attempt, 0);
	rq_msg_set(&ev, status, (char *)rq_status_name(RQ_ST_SCHEDULED));
	if (tenant != NULL)
		rq_msg_set(&ev, tenant, (char *)tenant);
	if (to != NULL)
		rq_msg_set(&ev, to, (char *)to);
	if (rq_evout_emit(eo, &ev) == -1)
		log_warnx("call %s: cannot queue EVENT scheduled", id);
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

	for (i = 0; i + 3 <= rel->elements; i += 3) {
		const char *id = reply_str(rel->element[i]);

		if (id == NULL)
			continue;
		log_debug("call %s: released to the ready queue", id);
		if (eo != NULL)
			emit_scheduled(eo, id, reply_str(rel->element[i + 1]),
			    reply_str(rel->element[i + 2]));
	}
	if (rep->element[2]->integer > 0)
		log_warnx("dropped %lld due ids whose job vanished",
		    rep->element[2]->integer);
	for (i = 0; i < rec->elements; i++) {
		const char *id = reply_str(rec->element[i]);

		if (id != NULL)
			log_warnx("call %s: dispatch lease expired (its "
			    "dispatcher died?), back to the ready queue", id);
	}
	if (st != NULL) {
		st->released += rel->elements / 3;
		st->dropped += rep->element[2]->integer;
		st->reclaimed += rec->elements;
	}
	full = ntaken >= batch || nexpired >= batch;
	freeReplyObject(rep);
	return full;
}

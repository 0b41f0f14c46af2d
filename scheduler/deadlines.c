/* The not_after sweep: a call whose window closed while it waited in a
 * queue ends as expired then, not when a dispatcher next takes it (with
 * every telserver full that may be never): it stops counting against
 * its tenant's max_concurrent, and its requester hears so.  The release,
 * the take and the claim check not_after too; this covers the wait
 * between them. */
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "scheduler.h"
#include "status.h"

/*
 * KEYS: rq:deadlines rq:delayed rq:ready.  ARGV: now_ms, batch, job key
 * prefix, recheck ms.
 * For each id whose not_after passed (before now_ms, as the release,
 * take and claim judge it): waiting in rq:delayed or rq:ready,
 * it leaves them and ends as expired (emit); taken or on a call, it is
 * looked at again after recheck ms (a lease that expires puts it back in
 * rq:ready, a dispatcher's requeue too); ended or gone, or a key that is
 * not a job's hash (which would stop every later run), it is forgotten.
 * Returns { ids examined, {expired id, ...} or false }.
 */
static const char deadlines_src[] =
RQ_LUA_EVENTS
RQ_LUA_RUN_EVENTS
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1],\n"
"    'LIMIT', '0', ARGV[2])\n"
"local expired = {}\n"
"local later = string.format('%d', tonumber(ARGV[1]) + tonumber(ARGV[4]))\n"
"for _, id in ipairs(ids) do\n"
"  local key = ARGV[3] .. id\n"
"  local f = redis.pcall('HMGET', key, 'to', 'attempts',\n"
"      unpack(EMIT_FIELDS))\n"
"  local j = f.err == nil and from(f, 3)\n"
"  if not j then\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"  elseif is_terminal(tonumber(j[1])) or\n"
"      (not (j[1] or j[2] or j[3]) and redis.call('EXISTS', key) == 0) then\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"  elseif redis.call('ZREM', KEYS[3], id) == 1 or\n"
"      redis.call('ZREM', KEYS[2], id) == 1 then\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"    emit(key, { call_id = id, attempt = tonumber(f[2]) or 0,\n"
"        status = 'expired', reason = '" RQ_REASON_NOT_AFTER "',\n"
"        tenant = j[2], to = f[1],\n"
"        detail = 'not placed before its not_after' }, j)\n"
"    expired[#expired + 1] = id\n"
"  else\n"
"    redis.call('ZADD', KEYS[1], later, id)\n"
"  end\n"
"end\n"
"return { #ids, #expired > 0 and expired }\n";

struct rq_script sched_deadlines_script = { .name = "deadlines",
    .src = deadlines_src };

int
sched_deadlines(struct rq_redis *r, uint64_t now_ms, int batch, int *full)
{
	char now[32], nbatch[16], recheck[16];
	const char *argv[7];
	redisReply *rep, **e;
	const char *s;
	size_t i, n;

	snprintf(now, sizeof(now), "%llu", (unsigned long long)now_ms);
	snprintf(nbatch, sizeof(nbatch), "%d", batch);
	snprintf(recheck, sizeof(recheck), "%d", SCHED_DEADLINE_RECHECK_MS);
	argv[0] = RQ_KEY_DEADLINES;
	argv[1] = RQ_KEY_DELAYED;
	argv[2] = RQ_KEY_READY;
	argv[3] = now;
	argv[4] = nbatch;
	argv[5] = RQ_KEY_JOB;
	argv[6] = recheck;
	if ((rep = rq_redis_eval(r, &sched_deadlines_script, 3, 7, argv)) ==
	    NULL)
		return -1;
	e = rep->element;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    e[0]->type != REDIS_REPLY_INTEGER ||
	    (e[1]->type != REDIS_REPLY_ARRAY &&
	    e[1]->type != REDIS_REPLY_NIL)) {
		log_warnx("redis: deadlines: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	n = e[1]->type == REDIS_REPLY_ARRAY ? e[1]->elements : 0;
	for (i = 0; i < n; i++)
		if ((s = rq_reply_str(e[1]->element[i])) != NULL)
			log_info("call %s: expired: not placed before its "
			    "not_after", s);
	*full = e[0]->integer >= batch;
	freeReplyObject(rep);
	return (int)n;
}

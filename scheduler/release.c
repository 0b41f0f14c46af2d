/* The scheduler's one step: release due jobs from rq:delayed and expired
 * dispatch leases from rq:inflight into rq:ready, in one Lua script that
 * also records what it did in rq:events (scheduled, expired) and wakes the
 * dispatchers (PUBLISH rq:wake). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "scheduler.h"
#include "status.h"

/*
 * rq:ready is ordered by RQ_LUA_READY_SCORE (common/keys.h): due_ms -
 * priority * RQ_PRIORITY_STEP_MS, so each priority level is worth a minute
 * of waiting and nothing waits forever behind urgent jobs.  ZPOPMIN takes
 * the lowest score.  A reclaimed lease keeps its original due time (the
 * job's not_before_ms), so it goes back ahead of jobs due after it.
 *
 * Due times and not_after are compared with now_ms (the scheduler's clock,
 * like the gateway's not_before_ms), but lease deadlines with Redis's own
 * clock (TIME), the one the dispatcher's take script set them by, so clock
 * skew between hosts cannot reclaim a live lease early.
 *
 * A due job:
 *  - vanished, already ended (canceled meanwhile), or its key no hash
 *    (pcall: one bad key must not stop every release): dropped;
 *  - past its not_after_ms: ends as expired (not_after), event emitted;
 *  - else moves to rq:ready; if it was never dispatched (attempts 0) its
 *    `scheduled` event is emitted, once (a retry already emitted
 *    `retrying`; a call the hours or a PATCH sent back is scheduled).
 * An expired lease was never claimed (a claim takes the id out of
 * rq:inflight) and now never can be: its attempt is given back, like a
 * dispatcher's requeue (a vanished job, or a key that is no hash, is
 * forgotten).
 *
 * KEYS: rq:delayed rq:ready rq:inflight
 * ARGV: now_ms batch job-key-prefix
 * Returns { ndue, nreleased, ndropped, {expired id, ...} or false,
 * {reclaimed id, ...} or false, nexpired_leases, next_due_ms or false }
 * (false for an empty list: Redis checks each table a script returns for
 * an error or status reply, a few thousand instructions each).  Numbers
 * go to redis.call as text (ARGV[1], '0'): Redis formats a Lua number
 * with snprintf("%.17g"), as costly as a small command.
 */
static const char release_src[] =
RQ_LUA_EVENTS
RQ_LUA_READY_SCORE
RQ_LUA_RUN_EVENTS
"local now = tonumber(ARGV[1])\n"
"local prefix = ARGV[3]\n"
"local released, dropped, expired, reclaimed = 0, 0, {}, {}\n"
"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',\n"
"    ARGV[1] .. '" RQ_DELAYED_LAST_TEXT "', 'WITHSCORES', 'LIMIT', '0',\n"
"    ARGV[2])\n"
"for i = 1, #due, 2 do\n"
"  local id, at = due[i], math.floor(tonumber(due[i + 1]) + 0.5)\n"
"  local key = prefix .. id\n"
"  redis.call('ZREM', KEYS[1], id)\n"
"  local f = redis.pcall('HMGET', key, 'to', 'attempts', 'not_after_ms',\n"
"      'priority', unpack(EMIT_FIELDS))\n"
"  local j = f.err == nil and from(f, 5)\n"
"  local na = tonumber(f[3])\n"
"  local att = tonumber(f[2]) or 0\n"
"  if not j or is_terminal(tonumber(j[1])) or\n"
"      (not (j[1] or j[2] or j[3]) and redis.call('EXISTS', key) == 0) then\n"
"    dropped = dropped + 1\n"
"  elseif na ~= nil and now > na then\n"
"    emit(key, { call_id = id, attempt = att, status = 'expired',\n"
"        reason = 'not_after', tenant = j[2], to = f[1],\n"
"        detail = 'due after its not_after' }, j)\n"
"    expired[#expired + 1] = id\n"
"  else\n"
"    redis.call('ZADD', KEYS[2], score_of(f[4], at), id)\n"
"    released = released + 1\n"
/* once: a call back from rq:hours, or moved back by PATCH, has it */
"    if att == 0 and (tonumber(j[1]) or 0) < ST.scheduled then\n"
"      emit(key, { call_id = id, attempt = 0, status = 'scheduled',\n"
"          tenant = j[2], to = f[1] }, j)\n"
"    end\n"
"  end\n"
"end\n"
"local rnow = string.format('%d', now_ms())\n"
"local exp = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', rnow,\n"
"    'LIMIT', '0', ARGV[2])\n"
"for _, id in ipairs(exp) do\n"
"  local key = prefix .. id\n"
"  redis.call('ZREM', KEYS[3], id)\n"
"  local f = redis.pcall('HMGET', key, 'not_before_ms', 'attempts',\n"
"      'status_rank')\n"
"  if f.err == nil and redis.call('EXISTS', key) == 1 and\n"
"      not is_terminal(tonumber(f[3])) then\n"
"    if (tonumber(f[2]) or 0) > 0 then\n"
"      redis.call('HINCRBY', key, 'attempts', '-1')\n"
"    end\n"
"    redis.call('ZADD', KEYS[2], score(key, tonumber(f[1]) or now), id)\n"
"    reclaimed[#reclaimed + 1] = id\n"
"  end\n"
"end\n"
"if released + #reclaimed > 0 then\n"
"  redis.call('PUBLISH', '" RQ_CHANNEL_WAKE "',\n"
"      string.format('%d', released + #reclaimed))\n"
"end\n"
"local nx = redis.call('ZRANGE', KEYS[1], '0', '0', 'WITHSCORES')\n"
"local next_due = false\n"
"if #nx == 2 then\n"
"  next_due = string.format('%d', math.floor(tonumber(nx[2]) + 0.5))\n"
"end\n"
"return { #due / 2, released, dropped, #expired > 0 and expired,\n"
"    #reclaimed > 0 and reclaimed, #exp, next_due }\n";

struct rq_script sched_release_script = { .name = "release",
    .src = release_src, .native = 1 };

int
sched_release(struct rq_redis *r, uint64_t now_ms, int batch,
    struct sched_stats *st, uint64_t *next_due)
{
	char now[32], nbatch[16];
	const char *argv[6];
	redisReply *rep, **e;
	long long ndue, nexpired;
	unsigned long long nd;
	const char *s;
	char *end;
	size_t i;
	int full;

	if (next_due != NULL)
		*next_due = 0;
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
	e = rep->element;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 7 ||
	    e[0]->type != REDIS_REPLY_INTEGER ||
	    e[1]->type != REDIS_REPLY_INTEGER ||
	    e[2]->type != REDIS_REPLY_INTEGER ||
	    (e[3]->type != REDIS_REPLY_ARRAY &&
	    e[3]->type != REDIS_REPLY_NIL) ||
	    (e[4]->type != REDIS_REPLY_ARRAY &&
	    e[4]->type != REDIS_REPLY_NIL) ||
	    e[5]->type != REDIS_REPLY_INTEGER) {
		log_warnx("redis: release: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	ndue = e[0]->integer;
	nexpired = e[5]->integer;
	if (e[1]->integer > 0)
		log_debug("released %lld due jobs to the ready queue",
		    e[1]->integer);
	if (e[2]->integer > 0)
		log_warnx("dropped %lld due ids whose job vanished or ended",
		    e[2]->integer);
	for (i = 0; i < e[3]->elements; i++)
		if ((s = rq_reply_str(e[3]->element[i])) != NULL)
			log_info("call %s: expired: due after its not_after",
			    s);
	for (i = 0; i < e[4]->elements; i++)
		if ((s = rq_reply_str(e[4]->element[i])) != NULL)
			log_warnx("call %s: dispatch lease expired (its "
			    "dispatcher died?), back to the ready queue", s);
	if (next_due != NULL && (s = rq_reply_str(e[6])) != NULL) {
		errno = 0;
		nd = strtoull(s, &end, 10);
		if (errno == 0 && end != s && *end == '\0')
			*next_due = (uint64_t)nd;
	}
	if (st != NULL) {
		st->released += (size_t)e[1]->integer;
		st->dropped += (size_t)e[2]->integer;
		st->expired += e[3]->elements;
		st->reclaimed += e[4]->elements;
	}
	full = ndue >= batch || nexpired >= batch;
	freeReplyObject(rep);
	return full;
}

/* Ended calls leave Redis at the end of their retention, through
 * rq:ended: a job has no TTL (common/keys.h says why). */
#include <stdio.h>

#include "keys.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

/*
 * KEYS: rq:ended.  ARGV: job key prefix, tenant list prefix, batch.
 * Takes up to batch ids whose time has come (Redis's clock) out of
 * rq:ended; of each whose job is there and ended, deletes the job, its
 * legacy timeline key (common/keys.h) and its id in its tenant's list.
 * One whose job is gone already, or not ended (never so: a terminal
 * status is final), or is not a hash (an operator's mistake) only leaves
 * rq:ended: the lists' sweep (lists.c) takes care of a gone one's id.
 * Returns { deleted, taken }.
 */
static const char ended_src[] =
RQ_LUA_IS_TERMINAL
RQ_LUA_RUN
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',\n"
"    string.format('%d', now), 'LIMIT', '0', ARGV[3])\n"
"local deleted = 0\n"
"for i = 1, #ids do\n"
"  local id = ids[i]\n"
"  local key = ARGV[1] .. id\n"
"  local f = redis.pcall('HMGET', key, 'status_rank', 'tenant')\n"
"  if f.err == nil and is_terminal(tonumber(f[1])) then\n"
"    redis.call('DEL', key, '" RQ_KEY_TIMELINE "' .. id)\n"
"    if f[2] then redis.call('ZREM', ARGV[2] .. f[2], id) end\n"
"    deleted = deleted + 1\n"
"  end\n"
"end\n"
"if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end\n"
"return { deleted, #ids }\n";

struct rq_script sched_ended_script = { .name = "ended_calls",
    .src = ended_src };

int
sched_ended(struct rq_redis *r, long *deleted)
{
	char batch[16];
	const char *argv[4];
	redisReply *rep;
	int full;

	snprintf(batch, sizeof(batch), "%d", SCHED_ENDED_BATCH);
	argv[0] = RQ_KEY_ENDED;
	argv[1] = RQ_KEY_JOB;
	argv[2] = RQ_KEY_TENANT_CALLS;
	argv[3] = batch;
	if ((rep = rq_redis_eval(r, &sched_ended_script, 1, 4, argv)) == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER) {
		log_warnx("redis: ended_calls: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	*deleted = (long)rep->element[0]->integer;
	full = rep->element[1]->integer >= SCHED_ENDED_BATCH;
	freeReplyObject(rep);
	if (*deleted > 0)
		log_debug("ended calls: %ld past their retention left Redis",
		    *deleted);
	return full;
}

/* Calls whose hours closed while they waited in rq:ready: the take handed
 * them to rq:hours rather than dial the callee at night.  Each is planned
 * again at its hours' next opening and goes back to rq:delayed, so a
 * backlog, a retry or a lease reclaimed after a crash never rings outside
 * the hours the call was accepted under (docs/policy.md). */
#include <stdio.h>
#include <string.h>

#include "hours.h"
#include "keys.h"
#include "log.h"
#include "scheduler.h"
#include "status.h"
#include "util.h"

/*
 * KEYS: rq:hours.  ARGV: batch, job key prefix.
 * Returns { id, score, hours or false, ... } for up to batch ids, oldest
 * first: the score is Redis's clock when a take found the call's window
 * closed.
 */
static const char hours_list_src[] =
"local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1,\n"
"    'WITHSCORES')\n"
"local out = {}\n"
"for i = 1, #ids, 2 do\n"
"  local h = redis.pcall('HGET', ARGV[2] .. ids[i], 'hours')\n"
"  out[#out + 1] = ids[i]\n"
"  out[#out + 1] = ids[i + 1]\n"
"  out[#out + 1] = type(h) == 'string' and h or false\n"
"end\n"
"return out\n";

/*
 * KEYS: rq:hours rq:delayed.  ARGV: id, job key prefix, next opening ms
 * ('' = the hours cannot be planned: the call fails, reason policy, with
 * detail ARGV[6]), hours_until_ms ('' = the job has no hours: the field
 * goes), new policy field ('' = keep), failure detail, the id's score
 * when it was listed.
 * Only an id still in rq:hours with that score (not sent back there by a
 * later take since, nor planned by another scheduler), of a job that has
 * not ended, moves: to
 * rq:delayed at the opening (with its priority's tie-break), its
 * not_before, concurrency slot and hours_until_ms with it.
 * Returns 1 (planned), 2 (failed) or 0 (nothing to do).
 */
static const char hours_plan_src[] =
RQ_LUA_READY_SCORE
RQ_LUA_EVENTS
RQ_LUA_RUN_EVENTS
"local id = ARGV[1]\n"
"local key = ARGV[2] .. id\n"
"if redis.call('ZSCORE', KEYS[1], id) ~= ARGV[7] then return 0 end\n"
"redis.call('ZREM', KEYS[1], id)\n"
"local f = redis.pcall('HMGET', key, 'priority', 'to', 'attempts',\n"
"    unpack(EMIT_FIELDS))\n"
"local j = f.err == nil and from(f, 4)\n"
"if not j or is_terminal(tonumber(j[1])) or\n"
"    (not (j[1] or j[2] or j[3]) and redis.call('EXISTS', key) == 0) then\n"
"  return 0\n"
"end\n"
"if ARGV[3] == '' then\n"
"  emit(key, { call_id = id, attempt = tonumber(f[3]) or 0,\n"
"      status = 'failed', reason = '" RQ_REASON_POLICY "',\n"
"      tenant = j[2], to = f[2], detail = ARGV[6] }, j)\n"
"  return 2\n"
"end\n"
"redis.call('HSET', key, 'not_before_ms', ARGV[3])\n"
"if ARGV[4] ~= '' then\n"
"  redis.call('HSET', key, 'hours_until_ms', ARGV[4])\n"
"else\n"
"  redis.call('HDEL', key, 'hours_until_ms')\n"
"end\n"
"if ARGV[5] ~= '' then redis.call('HSET', key, 'policy', ARGV[5]) end\n"
"redis.call('ZADD', KEYS[2], delayed_of(f[1], tonumber(ARGV[3])), id)\n"
"if j[2] then\n"
"  redis.call('ZADD', '" RQ_KEY_ACTIVE "' .. j[2], 'XX', ARGV[3], id)\n"
"end\n"
"return 1\n";

struct rq_script sched_hours_list_script = { .name = "hours_list",
    .src = hours_list_src };
struct rq_script sched_hours_plan_script = { .name = "hours_plan",
    .src = hours_plan_src };

/* Plans one call again from now_ms, or from the moment a take found its
 * window closed (score, Redis's clock) when this host's clock is behind:
 * a plan from before the close would send it straight back.  Returns 1
 * (planned), 2 (failed), 0 (nothing to do) or -1 on a Redis error. */
static int
plan_one(struct rq_redis *r, const char *id, const char *score,
    const char *text, uint64_t now_ms)
{
	struct rq_hours_rule rule;
	uint64_t open = 0, until = 0;
	char sopen[24] = "", suntil[24] = "", policy[64] = "";
	char why[128] = "", detail[192] = "";
	const char *argv[9];
	uint64_t found;
	redisReply *rep;
	int moved = 0, rc;

	if (rq_parse_u64(score, &found) == 0 && found > now_ms)
		now_ms = found;
	if (text == NULL)
		open = now_ms;		/* no hours any more: due now */
	else if (rq_hours_rule_parse(text, &rule, why, sizeof(why)) == -1 ||
	    rq_hours_rule_plan(&rule, now_ms, &open, &until, &moved) == -1) {
		snprintf(detail, sizeof(detail), "its calling hours cannot be "
		    "planned: %s", why[0] ? why : "the windows never meet");
	}
	if (detail[0] == '\0') {
		snprintf(sopen, sizeof(sopen), "%llu", (unsigned long long)open);
		if (text != NULL)
			snprintf(suntil, sizeof(suntil), "%llu",
			    (unsigned long long)until);
		if (moved) {
			memcpy(policy, "defer:", 6);
			rq_hours_reasons(moved, policy + 6,
			    sizeof(policy) - 6);
		}
	}
	argv[0] = RQ_KEY_HOURS;
	argv[1] = RQ_KEY_DELAYED;
	argv[2] = id;
	argv[3] = RQ_KEY_JOB;
	argv[4] = sopen;
	argv[5] = suntil;
	argv[6] = policy;
	argv[7] = detail;
	argv[8] = score;
	if ((rep = rq_redis_eval(r, &sched_hours_plan_script, 2, 9, argv)) ==
	    NULL)
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER) {
		log_warnx("redis: hours_plan: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	rc = (int)rep->integer;
	freeReplyObject(rep);
	if (rc == 1 && moved) {
		char t[40];

		rq_rfc3339_format(open, t, sizeof(t));
		log_info("call %s: its hours closed while it waited: "
		    "deferred to %s", id, t);
	} else if (rc == 1)
		log_info("call %s: its hours are open again: due now", id);
	else if (rc == 2)
		log_warnx("call %s: failed: %s", id, detail);
	return rc;
}

int
sched_hours(struct rq_redis *r, uint64_t now_ms, int batch, int *full)
{
	const char *argv[3];
	redisReply *rep, **e;
	char nbatch[16];
	size_t i;
	int n = 0, rc;

	snprintf(nbatch, sizeof(nbatch), "%d", batch);
	argv[0] = RQ_KEY_HOURS;
	argv[1] = nbatch;
	argv[2] = RQ_KEY_JOB;
	if ((rep = rq_redis_eval(r, &sched_hours_list_script, 1, 3, argv)) ==
	    NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 3 != 0) {
		log_warnx("redis: hours_list: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	e = rep->element;
	*full = rep->elements / 3 >= (size_t)batch;
	for (i = 0; i < rep->elements; i += 3) {
		if (e[i]->type != REDIS_REPLY_STRING ||
		    e[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		if ((rc = plan_one(r, e[i]->str, e[i + 1]->str,
		    rq_reply_str(e[i + 2]), now_ms)) == -1) {
			n = -1;
			break;
		}
		n += rc == 1;
	}
	freeReplyObject(rep);
	return n;
}

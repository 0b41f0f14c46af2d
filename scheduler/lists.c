/* The tenants' call lists (rq:calls:<tenant>) lose the calls that left
 * Redis: ended calls expire after their tenant's retention (ttl_ms), their
 * ids would stay in the lists for good. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

/*
 * KEYS: rq:calls:<tenant>.  ARGV: job key prefix, from (a ZRANGEBYSCORE
 * min: "-inf", "<ms>" or "(<ms>"), batch, the tenant's retention (ms).
 * Looks at up to batch ids from `from` on among those created more than
 * a retention ago (Redis's clock):
 *  - job gone: the id leaves the list;
 *  - job ended but without a TTL (ended by an older version, before they
 *    set one): the job and its timeline get what is left of their
 *    retention (call_ttl: ttl_ms, else the default, as emit() has it)
 *    from updated_ms, or go at once, id and all, when nothing is left;
 *  - otherwise (a call still running, or ended and expiring): kept.
 * Returns { removed, looked at, next from }: next from is the last score
 * looked at, so the next run starts there (ids at that score are looked
 * at again: harmless), or past it when every id looked at had it (a full
 * batch of one millisecond: the rest of it waits for the next pass).
 */
static const char lists_src[] =
RQ_LUA_CALL_TTL
RQ_LUA_RUN
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local keep = tonumber(ARGV[4])\n"
"local old = string.format('%d', now - keep)\n"
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], old,\n"
"    'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))\n"
"local removed = 0\n"
"for i = 1, #ids, 2 do\n"
"  local id = ids[i]\n"
"  local key = ARGV[1] .. id\n"
"  local gone = false\n"
"  local ttl = redis.call('PTTL', key)\n"
"  if ttl == -2 then\n"
"    gone = true\n"
"  elseif ttl == -1 then\n"
"    local f = redis.call('HMGET', key, 'status_rank', 'updated_ms',\n"
"        'ttl_ms')\n"
"    local rank = tonumber(f[1])\n"
"    if rank ~= nil and rank % 16 >= 6 then\n"
"      local left = (tonumber(f[2]) or 0) + call_ttl(f[3]) - now\n"
"      if left <= 0 then\n"
"        redis.call('DEL', key, '" RQ_KEY_TIMELINE "' .. id)\n"
"        gone = true\n"
"      else\n"
"        redis.call('PEXPIRE', key, left)\n"
"        redis.call('PEXPIRE', '" RQ_KEY_TIMELINE "' .. id, left)\n"
"      end\n"
"    end\n"
"  end\n"
"  if gone then\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"    removed = removed + 1\n"
"  end\n"
"end\n"
"local from = ARGV[2]\n"
"if #ids > 0 then\n"
"  from = ids[#ids]\n"
"  if ids[2] == from and #ids / 2 == tonumber(ARGV[3]) then\n"
"    from = '(' .. from\n"
"  end\n"
"end\n"
"return { removed, #ids / 2, from }\n";

struct rq_script sched_lists_script = { .name = "call_lists",
    .src = lists_src };

/* One batch of one tenant's list, from where the last one stopped.
 * Returns 1 when the batch was full (more to look at), 0 when it reached
 * the ids created a retention ago, -1 on a Redis error (logged);
 * *removed: how many ids went. */
static int
sweep_list(struct rq_redis *r, const struct rq_tenant *tenant,
    struct sched_list *l, long *removed)
{
	char key[RQ_NAME_MAX + 16], batch[16], keep[24];
	const char *argv[5], *from;
	redisReply *rep;
	int full;

	snprintf(key, sizeof(key), "%s%s", RQ_KEY_TENANT_CALLS, tenant->name);
	snprintf(batch, sizeof(batch), "%d", SCHED_LISTS_BATCH);
	snprintf(keep, sizeof(keep), "%llu",
	    (unsigned long long)rq_tenant_ttl_ms(tenant));
	argv[0] = key;
	argv[1] = RQ_KEY_JOB;
	argv[2] = l->from;
	argv[3] = batch;
	argv[4] = keep;
	if ((rep = rq_redis_eval(r, &sched_lists_script, 1, 5, argv)) == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER ||
	    (from = rq_reply_str(rep->element[2])) == NULL ||
	    rep->element[2]->len >= sizeof(l->from)) {
		log_warnx("redis: call_lists: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	*removed += (long)rep->element[0]->integer;
	full = rep->element[1]->integer >= SCHED_LISTS_BATCH;
	memcpy(l->from, from, rep->element[2]->len + 1);
	freeReplyObject(rep);
	return full;
}

int
sched_lists(struct rq_redis *r, const struct rq_config *cfg,
    struct sched_lists *sl, uint64_t now)
{
	struct sched_list *l;
	long removed = 0;
	size_t i;
	int all, again, rc, behind = 0, failed = 0;

	if (sl->v == NULL &&
	    (sl->v = calloc(cfg->ntenants + 1, sizeof(*sl->v))) == NULL) {
		log_warnx("call lists: out of memory");
		return 0;	/* not Redis's fault: next time */
	}
	/* Every list once per SCHED_LISTS_MS, the ones behind in between;
	 * the old ids still running were passed over: from the oldest again
	 * now and then (one may have ended and expired since). */
	if ((all = now >= sl->next_all))
		sl->next_all = now + SCHED_LISTS_MS;
	if ((again = now >= sl->restart))
		sl->restart = now + SCHED_LISTS_RESTART_MS;
	for (i = 0; i < cfg->ntenants; i++) {
		l = &sl->v[i];
		if (again)
			snprintf(l->from, sizeof(l->from), "-inf");
		if (!all && !l->behind)
			continue;
		/* A list that fails (not a sorted set: an operator's
		 * mistake) does not hold up the others. */
		if ((rc = sweep_list(r, &cfg->tenants[i], l, &removed)) == -1) {
			if (r->c == NULL)
				return -1;	/* the link: the rest too */
			failed = 1;
			rc = 0;
		}
		behind |= l->behind = rc;
	}
	if (removed > 0)
		log_debug("call lists: %ld ids of calls gone from Redis "
		    "removed", removed);
	return failed ? -1 : behind;
}

void
sched_lists_free(struct sched_lists *sl)
{
	free(sl->v);
	memset(sl, 0, sizeof(*sl));
}

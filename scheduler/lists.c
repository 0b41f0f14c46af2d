/* The tenants' call lists (rq:calls:<tenant>) lose the calls that left
 * Redis: an ended call leaves through rq:ended (ended.c), which takes its
 * id out too; one that left another way (a TTL of an older version, an
 * operator) would stay in its list for good. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

/*
 * KEYS: rq:calls:<tenant> rq:ended.  ARGV: job key prefix, from (a
 * ZRANGEBYSCORE min: "-inf" or "<ms>"), how many ids at that score to
 * skip (looked at and kept by the last batch), batch, how old an id must
 * be (ms: the tenant's retention and SCHED_LISTS_GRACE_MS).
 * Looks at up to batch ids from there on among those created more than
 * that ago (Redis's clock):
 *  - job gone: the id leaves the list, and the call's rq:timeline: key
 *    (written by older versions: common/keys.h) goes, which a call they
 *    began and this one ended had left without a TTL;
 *  - job ended: kept, and in rq:ended unless it is there already (a call
 *    ended by a version before rq:ended), at updated_ms (else, missing or
 *    not a time, its creation: the id's score) plus its retention
 *    (call_ttl: ttl_ms, else the default), where ended.c deletes it, at
 *    once if that has passed;
 *  - otherwise (a call still running, or a key an operator broke: not a
 *    hash): kept.
 * Returns { removed, looked at, next from, next skip }: the last score
 * looked at, and how many ids kept at it, so that a millisecond holding
 * more calls than a batch is walked through, not looked at again.
 */
static const char lists_src[] =
RQ_LUA_CALL_TTL
RQ_LUA_IS_TERMINAL
RQ_LUA_RUN
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local from, skip = ARGV[2], tonumber(ARGV[3])\n"
"local old = string.format('%d', now - tonumber(ARGV[5]))\n"
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], from, old,\n"
"    'WITHSCORES', 'LIMIT', skip, tonumber(ARGV[4]))\n"
"local removed, kept_last = 0, 0\n"
"for i = 1, #ids, 2 do\n"
"  local id = ids[i]\n"
"  local key = ARGV[1] .. id\n"
"  local f = redis.pcall('HMGET', key, 'status_rank', 'updated_ms',\n"
"      'ttl_ms')\n"
"  if f.err == nil and not (f[1] or f[2] or f[3]) and\n"
"      redis.call('EXISTS', key) == 0 then\n"
"    redis.call('DEL', '" RQ_KEY_TIMELINE "' .. id)\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"    removed = removed + 1\n"
"  else\n"
"    if f.err == nil and is_terminal(tonumber(f[1])) then\n"
"      local at = tonumber(f[2])\n"
"      if not at or at ~= at or at < 0 or at > 1e15 then\n"
"        at = tonumber(ids[i + 1])\n"
"      end\n"
"      at = at + tonumber(call_ttl(f[3]))\n"
"      redis.call('ZADD', KEYS[2], 'NX', string.format('%d', at), id)\n"
"    end\n"
"    if ids[i + 1] == ids[#ids] then kept_last = kept_last + 1 end\n"
"  end\n"
"end\n"
"if #ids > 0 then\n"
"  if ids[#ids] ~= from then skip = 0 end\n"
"  from, skip = ids[#ids], skip + kept_last\n"
"end\n"
"return { removed, #ids / 2, from, skip }\n";

struct rq_script sched_lists_script = { .name = "call_lists",
    .src = lists_src };

/* One batch of one tenant's list, from where the last one stopped.
 * Returns 1 when the batch was full (more to look at), 0 when it reached
 * the ids old enough, -1 on a Redis error (logged);
 * *removed: how many ids went. */
static int
sweep_list(struct rq_redis *r, const struct rq_tenant *tenant,
    struct sched_list *l, long *removed)
{
	char key[RQ_NAME_MAX + 16], batch[16], keep[24], skip[24];
	const char *argv[7], *from;
	redisReply *rep;
	int full;

	snprintf(key, sizeof(key), "%s%s", RQ_KEY_TENANT_CALLS, tenant->name);
	snprintf(batch, sizeof(batch), "%d", SCHED_LISTS_BATCH);
	snprintf(keep, sizeof(keep), "%llu",
	    (unsigned long long)(rq_tenant_ttl_ms(tenant) +
	    SCHED_LISTS_GRACE_MS));
	snprintf(skip, sizeof(skip), "%lld", l->skip);
	argv[0] = key;
	argv[1] = RQ_KEY_ENDED;
	argv[2] = RQ_KEY_JOB;
	argv[3] = l->from;
	argv[4] = skip;
	argv[5] = batch;
	argv[6] = keep;
	if ((rep = rq_redis_eval(r, &sched_lists_script, 2, 7, argv)) == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER ||
	    (from = rq_reply_str(rep->element[2])) == NULL ||
	    rep->element[2]->len >= sizeof(l->from) ||
	    rep->element[3]->type != REDIS_REPLY_INTEGER ||
	    rep->element[3]->integer < 0) {
		log_warnx("redis: call_lists: unexpected reply");
		freeReplyObject(rep);
		return -1;
	}
	*removed += (long)rep->element[0]->integer;
	full = rep->element[1]->integer >= SCHED_LISTS_BATCH;
	memcpy(l->from, from, rep->element[2]->len + 1);
	l->skip = rep->element[3]->integer;
	freeReplyObject(rep);
	return full;
}

int
sched_lists(struct rq_redis *r, const struct rq_config *cfg,
    struct sched_lists *sl, uint64_t now)
{
	struct sched_list *l;
	long removed = 0;
	size_t i, n = cfg->ntenants;
	int all, rc, behind = 0, failed = 0;

	if (n == 0)
		return 0;
	if (sl->v == NULL && (sl->v = calloc(n, sizeof(*sl->v))) == NULL) {
		log_warnx("call lists: out of memory");
		return 0;	/* not Redis's fault: next time */
	}
	/* Every list once per SCHED_LISTS_MS; in between, one list that is
	 * behind, in turn, so that a run stays a batch long. */
	if ((all = now >= sl->next_all))
		sl->next_all = now + SCHED_LISTS_MS;
	for (i = 0; i < n; i++) {
		l = &sl->v[(sl->turn + i) % n];
		if (!all && !l->behind)
			continue;
		/* A finished pass passed over the old ids still running
		 * or ended: from the oldest again now and then (one may
		 * have left Redis another way since).  A pass under way
		 * goes on. */
		if (!l->behind && now >= l->restart) {
			snprintf(l->from, sizeof(l->from), "-inf");
			l->skip = 0;
			l->restart = now + SCHED_LISTS_RESTART_MS;
		}
		/* A list that fails (not a sorted set: an operator's
		 * mistake) does not hold up the others. */
		if ((rc = sweep_list(r, &cfg->tenants[l - sl->v], l,
		    &removed)) == -1) {
			if (r->c == NULL)
				return -1;	/* the link: the rest too */
			failed = 1;
			rc = 0;
		}
		l->behind = rc;
		if (!all) {
			sl->turn = (size_t)(l - sl->v) + 1;
			break;
		}
	}
	for (i = 0; i < n; i++)
		behind |= sl->v[i].behind;
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

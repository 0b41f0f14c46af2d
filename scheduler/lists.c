/* The end of an ended call in Redis: its job is deleted once its
 * retention (ttl_ms) has passed since it ended, and its id leaves its
 * tenant's list (rq:calls:<tenant>).  The job has no TTL for Redis to
 * expire it by (common/keys.h says why). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

/*
 * KEYS: rq:calls:<tenant> rq:tenants.  ARGV: job key prefix, from (a
 * ZRANGEBYSCORE min: "-inf" or "<ms>"), how many ids at that score to
 * skip (looked at and kept by the last batch), batch, the tenant's
 * retention (ms), the tenant's name when no config of ours has it any
 * more (else "": then, its list gone, the name leaves rq:tenants).
 * Looks at up to batch ids from there on among those created more than a
 * retention ago (Redis's clock):
 *  - job gone: the id leaves the list, and the call's rq:timeline: key
 *    (written by older versions: common/keys.h) goes, which a call they
 *    began and this one ended had left without a TTL;
 *  - job ended, without a TTL, its retention (call_ttl: ttl_ms, else the
 *    default) passed since updated_ms (else its creation, the id's
 *    score): the job goes, its legacy timeline and id with it;
 *  - otherwise (a call still running, or ended lately, or ended by an
 *    older version and expiring by its TTL, or a key an operator broke:
 *    not a hash): kept.
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
"  local gone = false\n"
"  local ttl = redis.call('PTTL', key)\n"
"  if ttl == -2 then\n"
"    gone = true\n"
"  elseif ttl == -1 then\n"
"    local f = redis.pcall('HMGET', key, 'status_rank', 'updated_ms',\n"
"        'ttl_ms')\n"
"    if f.err == nil and is_terminal(tonumber(f[1])) then\n"
"      local left = (tonumber(f[2]) or tonumber(ids[i + 1])) +\n"
"          call_ttl(f[3]) - now\n"
"      if left <= 0 then\n"
"        redis.call('DEL', key)\n"
"        gone = true\n"
"      end\n"
"    end\n"
"  end\n"
"  if gone then\n"
"    redis.call('DEL', '" RQ_KEY_TIMELINE "' .. id)\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"    removed = removed + 1\n"
"  elseif ids[i + 1] == ids[#ids] then\n"
"    kept_last = kept_last + 1\n"
"  end\n"
"end\n"
"if #ids > 0 then\n"
"  if ids[#ids] ~= from then skip = 0 end\n"
"  from, skip = ids[#ids], skip + kept_last\n"
"end\n"
"if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[1]) == 0 then\n"
"  redis.call('HDEL', KEYS[2], ARGV[6])\n"
"end\n"
"return { removed, #ids / 2, from, skip }\n";

struct rq_script sched_lists_script = { .name = "call_lists",
    .src = lists_src };

/*
 * KEYS: rq:tenants.  ARGV: tenant, retention ms, ... (our config's).
 * Writes ours, returns all: { tenant, retention ms, ... }.
 */
static const char tenants_src[] =
RQ_LUA_RUN
"for i = 1, #ARGV, 1000 do\n"
"  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))\n"
"end\n"
"return redis.call('HGETALL', KEYS[1])\n";

struct rq_script sched_tenants_script = { .name = "call_lists_tenants",
    .src = tenants_src };

/* One batch of one tenant's list, from where the last one stopped; gone:
 * the tenant is no longer in our config.  Returns 1 when the batch was
 * full (more to look at), 0 when it reached the ids created a retention
 * ago, -1 on a Redis error (logged); *removed: how many ids went. */
static int
sweep_list(struct rq_redis *r, struct sched_list *l, int gone,
    long *removed)
{
	char key[RQ_NAME_MAX + 16], batch[16], keep[24], skip[24];
	const char *argv[8], *from;
	redisReply *rep;
	int full;

	snprintf(key, sizeof(key), "%s%s", RQ_KEY_TENANT_CALLS, l->tenant);
	snprintf(batch, sizeof(batch), "%d", SCHED_LISTS_BATCH);
	snprintf(keep, sizeof(keep), "%llu", (unsigned long long)l->ttl_ms);
	snprintf(skip, sizeof(skip), "%lld", l->skip);
	argv[0] = key;
	argv[1] = RQ_KEY_TENANTS;
	argv[2] = RQ_KEY_JOB;
	argv[3] = l->from;
	argv[4] = skip;
	argv[5] = batch;
	argv[6] = keep;
	argv[7] = gone ? l->tenant : "";
	if ((rep = rq_redis_eval(r, &sched_lists_script, 2, 8, argv)) == NULL)
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

/* The lists of the tenants in cfg, in its order: their places in sl->v
 * never change. */
static int
lists_init(const struct rq_config *cfg, struct sched_lists *sl)
{
	size_t i, n = cfg->ntenants;

	if ((sl->v = calloc(n > 0 ? n : 1, sizeof(*sl->v))) == NULL) {
		log_warnx("call lists: out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		snprintf(sl->v[i].tenant, sizeof(sl->v[i].tenant), "%s",
		    cfg->tenants[i].name);
		sl->v[i].ttl_ms = rq_tenant_ttl_ms(&cfg->tenants[i]);
	}
	sl->n = n;
	return 0;
}

/* Writes our tenants' retention in rq:tenants, and reads the tenants no
 * longer in our config from there: their lists follow ours in sl->v,
 * each where its sweep stood if it was there already.  Returns 0, or -1
 * on a Redis error (logged). */
static int
lists_tenants(struct rq_redis *r, const struct rq_config *cfg,
    struct sched_lists *sl)
{
	size_t n = cfg->ntenants, i, k, nv;
	struct sched_list *v, *l;
	const char **argv, *name;
	char (*ttl)[24];
	redisReply *rep;

	argv = calloc(1 + 2 * n, sizeof(*argv));
	ttl = calloc(n > 0 ? n : 1, sizeof(*ttl));
	if (argv == NULL || ttl == NULL) {
		free(argv);
		free(ttl);
		log_warnx("call lists: out of memory");
		return 0;	/* not Redis's fault: next time */
	}
	argv[0] = RQ_KEY_TENANTS;
	for (i = 0; i < n; i++) {
		snprintf(ttl[i], sizeof(ttl[i]), "%llu",
		    (unsigned long long)sl->v[i].ttl_ms);
		argv[1 + 2 * i] = sl->v[i].tenant;
		argv[2 + 2 * i] = ttl[i];
	}
	rep = rq_redis_eval(r, &sched_tenants_script, 1, (int)(1 + 2 * n),
	    argv);
	free(argv);
	free(ttl);
	if (rep == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 != 0) {
		log_warnx("redis: %s: unexpected reply", RQ_KEY_TENANTS);
		freeReplyObject(rep);
		return -1;
	}
	if ((v = calloc(n + rep->elements / 2 + 1, sizeof(*v))) == NULL) {
		freeReplyObject(rep);
		log_warnx("call lists: out of memory");
		return 0;
	}
	memcpy(v, sl->v, n * sizeof(*v));
	for (k = 0, nv = n; k + 1 < rep->elements; k += 2) {
		if ((name = rq_reply_str(rep->element[k])) == NULL ||
		    *name == '\0' || rep->element[k]->len >= RQ_NAME_MAX ||
		    strlen(name) != rep->element[k]->len ||
		    rq_config_tenant(cfg, name) != NULL)
			continue;
		l = &v[nv++];
		for (i = n; i < sl->n; i++)
			if (!strcmp(sl->v[i].tenant, name)) {
				*l = sl->v[i];
				break;
			}
		snprintf(l->tenant, sizeof(l->tenant), "%s", name);
		/* what a job's ttl_ms may hold, by the same rule */
		l->ttl_ms = rq_job_ttl_ms(rq_reply_str(rep->element[k + 1]));
	}
	freeReplyObject(rep);
	if (nv > n && nv != sl->n)
		log_info("call lists: %zu tenants no longer in the config "
		    "swept too, with the retention they had (%s)", nv - n,
		    RQ_KEY_TENANTS);
	free(sl->v);
	sl->v = v;
	sl->n = nv;
	if (sl->turn >= nv)
		sl->turn = 0;
	return 0;
}

int
sched_lists(struct rq_redis *r, const struct rq_config *cfg,
    struct sched_lists *sl, uint64_t now)
{
	struct sched_list *l;
	long removed = 0;
	size_t i, n;
	int all, rc, behind = 0, failed = 0;

	if (sl->v == NULL && lists_init(cfg, sl) == -1)
		return 0;	/* not Redis's fault: next time */
	if (now >= sl->next_tenants) {
		sl->next_tenants = now + SCHED_LISTS_RESTART_MS;
		if (lists_tenants(r, cfg, sl) == -1) {
			if (r->c == NULL)
				return -1;
			failed = 1;
			sl->next_tenants = now + SCHED_LISTS_MS;
		}
	}
	if ((n = sl->n) == 0)
		return failed ? -1 : 0;
	/* Every list once per SCHED_LISTS_MS; in between, one list that is
	 * behind, in turn, so that a run stays a batch long. */
	if ((all = now >= sl->next_all))
		sl->next_all = now + SCHED_LISTS_MS;
	for (i = 0; i < n; i++) {
		l = &sl->v[(sl->turn + i) % n];
		if (!all && !l->behind)
			continue;
		/* A finished pass passed over the old ids still running or
		 * ended lately: from the oldest again now and then (one may
		 * have ended, or reached its retention, since).  A pass
		 * under way goes on. */
		if (!l->behind && now >= l->restart) {
			snprintf(l->from, sizeof(l->from), "-inf");
			l->skip = 0;
			l->restart = now + SCHED_LISTS_RESTART_MS;
		}
		/* A list that fails (not a sorted set: an operator's
		 * mistake) does not hold up the others. */
		if ((rc = sweep_list(r, l, l - sl->v >= (ptrdiff_t)
		    cfg->ntenants, &removed)) == -1) {
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
		log_debug("call lists: %ld ended calls left Redis",
		    removed);
	return failed ? -1 : behind;
}

void
sched_lists_free(struct sched_lists *sl)
{
	free(sl->v);
	memset(sl, 0, sizeof(*sl));
}

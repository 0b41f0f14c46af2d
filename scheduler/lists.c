/* The tenants' call lists (rq:calls:<tenant>, GET /v1/calls) outlive the
 * calls in them: an ended call's job leaves Redis RQ_CALL_TTL_MS after it
 * ended (a TTL), its id stays in the list.  Once a second this sweep
 * takes the ids created more than RQ_CALL_TTL_MS ago out of each
 * configured tenant's list when their job is gone, so that Redis does not
 * grow with every call ever made and a list request does not spend its
 * scan budget on ghosts.  An old call that still runs (retried for days)
 * keeps its place; the sweep then looks past it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "scheduler.h"

/* KEYS: rq:calls:<tenant>.  ARGV: job key prefix, offset, batch.
 * Looks at the batch ids from offset on among those created before now -
 * RQ_CALL_TTL_MS (Redis's clock), removes the ones without a job.
 * Returns { removed, kept }. */
static const char lists_src[] =
"local t = redis.call('TIME')\n"
"local old = tonumber(t[1]) * 1000 - " RQ_STR(RQ_CALL_TTL_MS) "\n"
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',\n"
"    string.format('%d', old), 'LIMIT', ARGV[2], ARGV[3])\n"
"local removed = 0\n"
"for _, id in ipairs(ids) do\n"
"  if redis.call('EXISTS', ARGV[1] .. id) == 0 then\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"    removed = removed + 1\n"
"  end\n"
"end\n"
"return { removed, #ids - removed }\n";

struct rq_script sched_lists_script = { "call_lists", lists_src, "" };

/* One tenant's list, batch after batch while they come full, at most
 * SCHED_LISTS_RUNS of them.  *offset: the old ids still alive ahead of
 * the dead ones, remembered from sweep to sweep.  Returns how many ids
 * went, or -1 on a Redis error (logged). */
static long
sweep_list(struct rq_redis *r, const char *tenant, long long *offset)
{
	char key[RQ_NAME_MAX + 16], off[24], batch[16];
	const char *argv[4];
	redisReply *rep;
	long long removed, kept;
	long total = 0;
	int run;

	snprintf(key, sizeof(key), "%s%s", RQ_KEY_TENANT_CALLS, tenant);
	snprintf(batch, sizeof(batch), "%d", SCHED_LISTS_BATCH);
	argv[0] = key;
	argv[1] = RQ_KEY_JOB;
	argv[2] = off;
	argv[3] = batch;
	for (run = 0; run < SCHED_LISTS_RUNS; run++) {
		snprintf(off, sizeof(off), "%lld", *offset);
		if ((rep = rq_redis_eval(r, &sched_lists_script, 1, 4,
		    argv)) == NULL)
			return -1;
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_INTEGER ||
		    rep->element[1]->type != REDIS_REPLY_INTEGER) {
			log_warnx("redis: call_lists: unexpected reply");
			freeReplyObject(rep);
			return -1;
		}
		removed = rep->element[0]->integer;
		kept = rep->element[1]->integer;
		freeReplyObject(rep);
		total += removed;
		if (removed + kept < SCHED_LISTS_BATCH) {
			*offset = 0;	/* the end: from the oldest next time */
			break;
		}
		*offset += kept;
	}
	return total;
}

long
sched_lists(struct rq_redis *r, const struct rq_config *cfg,
    struct sched_lists *sl)
{
	long n, total = 0;
	size_t i;

	if (sl->offsets == NULL || sl->n != cfg->ntenants) {
		free(sl->offsets);
		sl->n = 0;
		if ((sl->offsets = calloc(cfg->ntenants ? cfg->ntenants : 1,
		    sizeof(*sl->offsets))) == NULL)
			return -1;
		sl->n = cfg->ntenants;
	}
	for (i = 0; i < cfg->ntenants; i++) {
		if ((n = sweep_list(r, cfg->tenants[i].name,
		    &sl->offsets[i])) == -1)
			return -1;
		total += n;
	}
	if (total > 0)
		log_debug("call lists: %ld ended calls forgotten", total);
	return total;
}

void
sched_lists_free(struct sched_lists *sl)
{
	free(sl->offsets);
	memset(sl, 0, sizeof(*sl));
}

/* The dead-node sweep: a telserver whose liveness key (rq:node:<node>)
 * expired holds no calls any more, so the attempts it claimed end as
 * failed/interrupted (common/lifecycle.c), and the retry rules decide
 * whether a new attempt follows.  A node must stay dead for a grace period
 * first: after a Redis restart a live telserver's key may be missing (its
 * TTL ran out while Redis was down, its rq:oncall set was kept) until its
 * next heartbeat, and ending its calls then would ring the customer again
 * while the first call still runs.  For the same reason the grace starts
 * again after any Redis error or outage: only sweeps that got through
 * count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "scheduler.h"

/* KEYS: rq:nodes.  ARGV: liveness key prefix, oncall key prefix, fleet
 * state prefix.  Returns the nodes without a liveness key that still hold
 * claimed ids, and forgets those that hold none and whose fleet state
 * (shown by ringq-ctl for a minute) expired too: a telserver adds itself
 * again with each heartbeat and claim, so the set does not keep every
 * name a fleet ever had, for each sweep to walk. */
static const char dead_src[] =
"local dead = {}\n"
"for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
"  if redis.call('EXISTS', ARGV[1] .. n) == 0 then\n"
"    if redis.call('SCARD', ARGV[2] .. n) > 0 then\n"
"      dead[#dead + 1] = n\n"
"    elseif redis.call('EXISTS', ARGV[3] .. n) == 0 then\n"
"      redis.call('SREM', KEYS[1], n)\n"
"    end\n"
"  end\n"
"end\n"
"return dead\n";

struct rq_script sched_dead_script = { .name = "dead_nodes",
    .src = dead_src };

void
sched_nodes_free(struct sched_nodes *sn)
{
	size_t i;

	for (i = 0; i < sn->n; i++)
		free(sn->v[i].node);
	free(sn->v);
	memset(sn, 0, sizeof(*sn));
}

/* Whether node has been seen dead for the grace period; remembers when it
 * was first seen dead, and marks it seen in this sweep. */
static int
dead_long_enough(struct sched_nodes *sn, const char *node, uint64_t now)
{
	struct sched_dead *v;
	size_t i;

	for (i = 0; i < sn->n; i++)
		if (!strcmp(sn->v[i].node, node)) {
			sn->v[i].seen = 1;
			return now - sn->v[i].since >= SCHED_DEAD_GRACE_MS &&
			    now >= sn->v[i].next_ms;
		}
	if (sn->n == SCHED_NODES_MAX)
		return 1;	/* cannot remember: no grace */
	if (sn->n == sn->cap) {
		if ((v = reallocarray(sn->v, sn->cap ? sn->cap * 2 : 8,
		    sizeof(*v))) == NULL)
			return 0;
		sn->v = v;
		sn->cap = sn->cap ? sn->cap * 2 : 8;
	}
	if ((sn->v[sn->n].node = strdup(node)) == NULL)
		return 0;
	sn->v[sn->n].since = now;
	sn->v[sn->n].next_ms = 0;
	sn->v[sn->n].seen = 1;
	sn->n++;
	log_info("telserver %s: liveness key gone; its calls end as "
	    "interrupted unless it is back within %d ms", node,
	    SCHED_DEAD_GRACE_MS);
	return 0;
}

/* Forgets the nodes not seen dead in this sweep (back, or swept). */
static void
forget_unseen(struct sched_nodes *sn)
{
	size_t i = 0;

	while (i < sn->n) {
		if (sn->v[i].seen) {
			sn->v[i++].seen = 0;
			continue;
		}
		free(sn->v[i].node);
		sn->v[i] = sn->v[--sn->n];
	}
}

void
sched_nodes_forget(struct sched_nodes *sn)
{
	size_t i;

	if (sn->n > 0)
		log_info("%zu telservers seen without a liveness key: "
		    "their grace starts again at the next sweep (Redis "
		    "error)", sn->n);
	for (i = 0; i < sn->n; i++)
		free(sn->v[i].node);
	sn->n = 0;
}

int
sched_sweep(struct rq_redis *r, struct sched_nodes *sn, uint64_t now)
{
	const char *argv[4];
	char detail[256];
	redisReply *rep;
	const char *node;
	size_t i, k;
	int n, refused, total = 0, failed = 0;

	/* The link was lost since the last sweep: what Redis showed before
	 * says nothing about now (a restarted Redis lost the keys that
	 * expired while it was down, heartbeats may have failed meanwhile):
	 * the grace starts again from the first successful look. */
	if (r->c == NULL)
		sched_nodes_forget(sn);
	argv[0] = RQ_KEY_NODES;
	argv[1] = RQ_KEY_NODE;
	argv[2] = RQ_KEY_ONCALL;
	argv[3] = RQ_KEY_TEL;
	if ((rep = rq_redis_eval(r, &sched_dead_script, 1, 4, argv)) == NULL) {
		sched_nodes_forget(sn);
		return -1;
	}
	if (rep->type != REDIS_REPLY_ARRAY) {
		log_warnx("redis: dead_nodes: unexpected reply");
		freeReplyObject(rep);
		sched_nodes_forget(sn);
		return -1;
	}
	for (i = 0; i < rep->elements; i++) {
		if ((node = rq_reply_str(rep->element[i])) == NULL ||
		    !dead_long_enough(sn, node, now))
			continue;
		snprintf(detail, sizeof(detail), "telserver %s stopped "
		    "(liveness key expired)", node);
		if ((n = rq_node_interrupt(r, node, detail, &refused)) == -1) {
			log_warnx("telserver %s: liveness key expired, its "
			    "calls not ended now (retried)", node);
			failed = 1;
			/* Link lost: stop.  A script error: the other dead
			 * nodes are still ended. */
			if (r->c == NULL)
				break;
			continue;
		}
		if (n > 0)
			log_warnx("telserver %s: liveness key expired: %d "
			    "claimed attempts ended as interrupted", node, n);
		if (refused > 0) {
			log_warnx("telserver %s: %d of its attempts Redis "
			    "refused to end (above): tried again in %d s",
			    node, refused, SCHED_REFUSED_RETRY_MS / 1000);
			for (k = 0; k < sn->n; k++)
				if (!strcmp(sn->v[k].node, node))
					sn->v[k].next_ms = now +
					    SCHED_REFUSED_RETRY_MS;
		}
		total += n;
	}
	freeReplyObject(rep);
	if (failed) {
		/* A failed sweep: the grace starts again from the next
		 * successful one. */
		sched_nodes_forget(sn);
		return -1;
	}
	forget_unseen(sn);
	return total;
}

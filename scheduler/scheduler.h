/* ringq-scheduler's private header: the release step that moves due jobs
 * and expired leases to rq:ready, the sweep that ends dead telservers'
 * calls, and the one that trims the tenants' call lists. */
#ifndef SCHEDULER_H
#define SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"

#include "redis_sync.h"

/* The release step. */
extern struct rq_script sched_release_script;

struct sched_stats {
	size_t	released;	/* delayed -> ready */
	size_t	dropped;	/* delayed ids whose job vanished or ended */
	size_t	expired;	/* due after their not_after: ended */
	size_t	reclaimed;	/* expired leases -> ready */
};

/* Runs the release script once for up to batch ids of each kind: delayed
 * ids due at wall-clock now_ms, leases expired by Redis's clock (TIME).
 * The script records `scheduled` (jobs never dispatched) and `expired`
 * (past not_after) in rq:events and publishes rq:wake when it put ids in
 * rq:ready.  Returns 1 when a batch was full (run again at once), 0 when
 * done, -1 on a Redis error (logged).  st (counts for the unit tests) may
 * be NULL; *next_due (may be NULL) is set to the earliest due time still
 * in rq:delayed, 0 when none. */
int	sched_release(struct rq_redis *r, uint64_t now_ms, int batch,
	    struct sched_stats *st, uint64_t *next_due);

/* nodes.c: the dead-node sweep. */
#define SCHED_DEAD_GRACE_MS	2000	/* dead this long before we act */
#define SCHED_NODES_MAX		4096

extern struct rq_script sched_dead_script;

/* The nodes seen dead by the last sweeps, and since when (monotonic). */
struct sched_dead {
	char		*node;
	uint64_t	 since;
	int		 seen;
};
struct sched_nodes {
	struct sched_dead	*v;
	size_t			 n, cap;
};

void	sched_nodes_free(struct sched_nodes *sn);
/* Forgets every node seen dead: after a Redis error or an outage the
 * grace period starts again from the next successful sweep. */
void	sched_nodes_forget(struct sched_nodes *sn);
/* Ends, as interrupted, the claimed attempts of every telserver in
 * rq:nodes whose liveness key is gone and has been gone in every sweep
 * for SCHED_DEAD_GRACE_MS (rq_node_interrupt); now is monotonic ms; sn
 * (zeroed at first) remembers between sweeps.  A sweep that fails, or
 * that finds the link lost since the last one, forgets what it remembered
 * (sched_nodes_forget).  Returns how many attempts it ended, or -1 on a
 * Redis error (logged). */
int	sched_sweep(struct rq_redis *r, struct sched_nodes *sn, uint64_t now);

/* lists.c: the tenants' call lists lose their ended calls whose job left
 * Redis (RQ_CALL_TTL_MS).  Per tenant and sweep, up to SCHED_LISTS_RUNS
 * batches of SCHED_LISTS_BATCH old ids: 16,000 a second keeps up with
 * 16,000 calls a second. */
#define SCHED_LISTS_BATCH	1000
#define SCHED_LISTS_RUNS	16

extern struct rq_script sched_lists_script;

/* Where each tenant's sweep goes on from: old ids still alive come first. */
struct sched_lists {
	long long	*offsets;	/* one per configured tenant */
	size_t		 n;
};

/* Sweeps the list of every tenant in cfg.  Returns how many ids went, or
 * -1 on a Redis error (logged). */
long	sched_lists(struct rq_redis *r, const struct rq_config *cfg,
	    struct sched_lists *sl);
void	sched_lists_free(struct sched_lists *sl);

/* depths.c: sets the gauges ringq_queue_depth{queue=delayed|ready|inflight|
 * events} from Redis.  Returns 0, or -1 on a Redis error (logged; a broken
 * link is closed for the next rq_redis_ready()). */
int	sched_depths(struct rq_redis *r);

#endif

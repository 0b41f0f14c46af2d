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

/* deadlines.c: calls whose not_after passed while they waited in
 * rq:delayed or rq:ready end as expired (up to batch of them a run; *full
 * when there may be more).  Returns how many, or -1 on a Redis error
 * (logged). */
#define SCHED_DEADLINE_RECHECK_MS	1000	/* a taken call's, again */

extern struct rq_script sched_deadlines_script;

int	sched_deadlines(struct rq_redis *r, uint64_t now_ms, int batch,
	    int *full);

/* hours.c: calls the take handed to rq:hours (their hours closed while
 * they waited) go back to rq:delayed at their hours' next opening (up to
 * batch a run; *full when there may be more).  Returns how many, or -1 on
 * a Redis error (logged). */
extern struct rq_script sched_hours_list_script;
extern struct rq_script sched_hours_plan_script;

int	sched_hours(struct rq_redis *r, uint64_t now_ms, int batch, int *full);

/* nodes.c: the dead-node sweep. */
#define SCHED_DEAD_GRACE_MS	2000	/* dead this long before we act */
/* A dead node whose attempts Redis refused to end (a damaged job) is swept
 * again this much later, not at every sweep, each logging the refusals. */
#define SCHED_REFUSED_RETRY_MS	60000
#define SCHED_NODES_MAX		4096

extern struct rq_script sched_dead_script;

/* The nodes seen dead by the last sweeps, and since when (monotonic). */
struct sched_dead {
	char		*node;
	uint64_t	 since;
	uint64_t	 next_ms;	/* not swept before (refusals) */
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

/* lists.c: the tenants' call lists lose the ids of calls that left Redis.
 * Each run looks at one batch of SCHED_LISTS_BATCH ids of a tenant, among
 * those created more than a retention and SCHED_LISTS_GRACE_MS ago (by
 * then most calls have ended and left through rq:ended, their ids with
 * them, and are not looked at), from where the last run stopped: every
 * tenant's once per SCHED_LISTS_MS, and in between, every
 * SCHED_LISTS_BEHIND_MS, one of those whose batch was full, in turn
 * (20,000 ids a second in all, in slices short enough not to hold up
 * releases).  An ended call it finds out of rq:ended (ended by a version
 * before rq:ended) goes there, to leave at the end of its retention.  A
 * list whose pass reached its end starts again from the oldest at most
 * once per SCHED_LISTS_RESTART_MS, for the ids it passed over (calls
 * still running, or ended and waiting in rq:ended, which takes their ids
 * out itself): only an id whose job went another way (a TTL of an older
 * version, an operator) needs it. */
#define SCHED_LISTS_BATCH	200	/* a script of a millisecond or two */
#define SCHED_LISTS_MS		1000
#define SCHED_LISTS_BEHIND_MS	10
#define SCHED_LISTS_RESTART_MS	3600000
#define SCHED_LISTS_GRACE_MS	3600000

extern struct rq_script sched_lists_script;

struct sched_list {
	char		 from[32];	/* ZRANGEBYSCORE min: "-inf" or ms */
	long long	 skip;		/* ids at from looked at and kept */
	int		 behind;	/* its last batch was full */
	uint64_t	 restart;	/* monotonic ms: from the oldest */
};
struct sched_lists {
	struct sched_list	*v;	/* one per configured tenant */
	uint64_t		 next_all;	/* monotonic ms: every list */
	size_t			 turn;	/* the next list behind to sweep */
};

/* One run over the lists of the tenants in cfg (their number never
 * changes); now is monotonic ms.  Returns 1 when a list has more to look
 * at soon, 0 when all are up to date, -1 on a Redis error (logged: a
 * list that fails leaves the others swept). */
int	sched_lists(struct rq_redis *r, const struct rq_config *cfg,
	    struct sched_lists *sl, uint64_t now);
void	sched_lists_free(struct sched_lists *sl);

/* ended.c: ended calls leave Redis at the end of their retention: each run
 * takes up to SCHED_ENDED_BATCH ids whose time in rq:ended (common/keys.h)
 * has come, and deletes each one's job, its legacy timeline and its id in
 * its tenant's list (*deleted: how many).  Run with the lists' sweep, and
 * as often while behind.  Returns 1 when the batch was full (more may be
 * due), 0 when not, -1 on a Redis error (logged). */
#define SCHED_ENDED_BATCH	200	/* a millisecond or so of Redis */
extern struct rq_script sched_ended_script;
int	sched_ended(struct rq_redis *r, long *deleted);

/* depths.c: sets the gauges ringq_queue_depth{queue=delayed|ready|inflight|
 * hours|events|ended} from Redis.  Returns 0, or -1 on a Redis error
 * (logged; a broken link is closed for the next rq_redis_ready()). */
int	sched_depths(struct rq_redis *r);

#endif

/* ringq-scheduler's private header: the Redis link with its Lua scripts, and
 * the release step that moves due jobs and expired leases to rq:ready. */
#ifndef SCHEDULER_H
#define SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "evout.h"

#include "redis_sync.h"

/* The release step. */
extern struct rq_script sched_release_script;

struct sched_stats {
	size_t	released;	/* delayed -> ready */
	size_t	dropped;	/* delayed ids whose job hash vanished */
	size_t	reclaimed;	/* expired leases -> ready */
};

/* Runs the release script once for up to batch ids of each kind: delayed
 * ids due at wall-clock now_ms, leases expired by Redis's clock (TIME).
 * Emits EVENT queued (at the job's created_ms) then EVENT scheduled for each
 * released id (eo may be NULL).  Returns 1 when a batch was full (run again
 * at once), 0 when done, -1 on a Redis error (logged).  st (counts for the
 * unit tests) may be NULL. */
int	sched_release(struct rq_redis *r, struct rq_evout *eo,
	    uint64_t now_ms, int batch, struct sched_stats *st);

#endif

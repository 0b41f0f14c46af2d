/* The event outbox: how a daemon reports call status changes to accounting
 * at least once.  Each EVENT is sent on a DEALER socket and kept until
 * accounting answers EVENT_ACK for its (call_id, attempt, status); an
 * unacked event is sent again once it waited as long as acks take (their
 * smoothed time plus four deviations, from RQ_EVOUT_RESEND_MS to
 * RQ_EVOUT_RESEND_MAX_MS) and either no ack at all came for as long or
 * one came for an event sent that long after it, up to
 * RQ_EVOUT_RESEND_BURST per tick.  When
 * that long again of resending brought no ack back, accounting is away:
 * then one event per RQ_EVOUT_RESEND_MS goes as a probe, and its ack
 * restarts the resends.  What ZeroMQ refuses while its queue toward
 * accounting is full waits first in line, in order, and goes as soon as
 * the queue has room.  Accounting stores each (call_id, attempt, status)
 * once, so a resent event is harmless.
 *
 * With a journal (a file path), every event is also appended to that file
 * before it is sent, and what a previous run left unacknowledged there is
 * sent again: a daemon killed -9 loses none.  A thread of its own syncs
 * the file at a tick after it changed, at most once per 90 ms (syncer.h),
 * so a host that loses power usually loses only the events of the last
 * 100 to 200 ms (docs/delivery.md says when more), and the loop never
 * waits for the disk.  One process holds a journal at a time (flock on
 * journal.lock, journal being its path).
 *
 * Loop-agnostic: watch rq_evout_fd() for reading (ZeroMQ's edge-triggered
 * fd), call rq_evout_process() when it fires and rq_evout_tick() now and
 * then (every 100 ms is plenty). */
#ifndef RQ_EVOUT_H
#define RQ_EVOUT_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define RQ_EVOUT_RESEND_MS	1000
#define RQ_EVOUT_RESEND_MAX_MS	30000
#define RQ_EVOUT_RESEND_BURST	1000
#define RQ_EVOUT_MAX_PENDING	200000
/* after a failed rewrite of the journal, the next try; then doubled */
#define RQ_EVOUT_JOURNAL_RETRY_MS 1000

struct rq_evout;

/* Connects to endpoint; journal is a file path, or NULL for none.
 * Returns NULL on error (logged), and when another process holds the
 * journal. */
struct rq_evout	*rq_evout_new(void *zctx, const char *endpoint,
		    const char *journal);
/* Waits up to linger_ms for outstanding acks, then frees everything. */
void		 rq_evout_free(struct rq_evout *eo, int linger_ms);

/* Queues an EVENT (ev is copied, ts_ms set to now when absent) and sends
 * it, or keeps it behind those ZeroMQ refused.  Returns 0, or -1 when the
 * event lacks a required field. */
int		 rq_evout_emit(struct rq_evout *eo, const struct rq_msg *ev);

int		 rq_evout_fd(struct rq_evout *eo);
void		 rq_evout_process(struct rq_evout *eo);
void		 rq_evout_tick(struct rq_evout *eo);
size_t		 rq_evout_pending(const struct rq_evout *eo);
/* The journal's syncs so far, and the longest (microseconds); 0 without
 * a journal. */
void		 rq_evout_sync_stats(const struct rq_evout *eo, uint64_t *n,
		    uint64_t *max_us);

#endif

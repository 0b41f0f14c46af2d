/* Event outbox (see evout.h). */
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "evout.h"
#include "log.h"
#include "util.h"

/* Pending events are indexed by (call_id, attempt, status), so that an
 * ack costs O(1) however far accounting lags; the list is kept in sent_ms
 * order, so that a tick stops at the first event not yet due. */
#define EVOUT_BUCKETS	65536
#define EVOUT_DROP_LOG_MS	1000

struct pending {
	struct pending	*next, *prev;
	struct pending	*hnext;		/* same bucket */
	struct rq_msg	 ev;
	uint64_t	 sent_ms;	/* monotonic */
};

struct rq_evout {
	void		*sock;
	struct rq_bus_in in;
	struct pending	*head, *tail;	/* least recently sent first */
	size_t		 npending;
	struct pending	*bucket[EVOUT_BUCKETS];
	uint64_t	 round_ms;	/* first resend unanswered, or 0 */
	uint64_t	 probe_ms;	/* last probe while accounting is
					 * away; 0 while it answers */
	uint64_t	 dropped;	/* events dropped while full: the
					 * count at exit */
	struct log_rate	 dropped_log;	/* one line a second, not one an
					 * event */
};

static struct pending **
pending_bucket(struct rq_evout *eo, const char *call_id, uint64_t attempt,
    const char *status)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	const char *c;

	for (c = call_id; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	h = (h ^ (uint32_t)attempt) * 16777619u;
	for (c = status; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	return &eo->bucket[h % EVOUT_BUCKETS];
}

static void
pending_append(struct rq_evout *eo, struct pending *p)
{
	p->next = NULL;
	p->prev = eo->tail;
	if (eo->tail)
		eo->tail->next = p;
	else
		eo->head = p;
	eo->tail = p;
}

static void
pending_remove(struct rq_evout *eo, struct pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		eo->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		eo->tail = p->prev;
}

struct rq_evout *
rq_evout_new(void *zctx, const char *endpoint)
{
	struct rq_evout *eo;

	if ((eo = calloc(1, sizeof(*eo))) == NULL)
		return NULL;
	if ((eo->sock = rq_bus_socket(zctx, ZMQ_DEALER)) == NULL ||
	    zmq_connect(eo->sock, endpoint) == -1) {
		log_warnx("evout: connect %s: %s", endpoint,
		    zmq_strerror(zmq_errno()));
		if (eo->sock)
			zmq_close(eo->sock);
		free(eo);
		return NULL;
	}
	rq_bus_in_init(&eo->in, eo->sock, 0);
	return eo;
}

static void
pending_unlink(struct rq_evout *eo, struct pending *p)
{
	struct pending **pp;

	pp = pending_bucket(eo, p->ev.call_id, p->ev.attempt, p->ev.status);
	for (; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == p) {
			*pp = p->hnext;
			break;
		}
	pending_remove(eo, p);
	eo->npending--;
	rq_msg_clear(&p->ev);
	free(p);
}

void
rq_evout_free(struct rq_evout *eo, int linger_ms)
{
	uint64_t until;

	if (eo == NULL)
		return;
	until = rq_mono_ms() + linger_ms;
	while (eo->npending > 0 && rq_mono_ms() < until) {
		zmq_pollitem_t pi = { eo->sock, 0, ZMQ_POLLIN, 0 };

		zmq_poll(&pi, 1, 50);
		rq_evout_process(eo);
		rq_evout_tick(eo);
	}
	if (eo->npending > 0)
		log_warnx("evout: %zu events not acknowledged at exit",
		    eo->npending);
	if (eo->dropped > 0)
		log_warnx("evout: %llu events dropped while the outbox was "
		    "full", (unsigned long long)eo->dropped);
	while (eo->head)
		pending_unlink(eo, eo->head);
	zmq_close(eo->sock);
	free(eo);
}

int
rq_evout_emit(struct rq_evout *eo, const struct rq_msg *ev)
{
	struct pending *p, **pp;

	if ((ev->present & (RQ_F_call_id | RQ_F_attempt | RQ_F_status)) !=
	    (RQ_F_call_id | RQ_F_attempt | RQ_F_status) ||
	    ev->call_id == NULL || ev->status == NULL)
		return -1;
	if (eo->npending >= RQ_EVOUT_MAX_PENDING) {
		/* Accounting has been away for long: bound our memory. */
		log_warnx_rate(&eo->dropped_log, EVOUT_DROP_LOG_MS,
		    "evout: outbox full, dropping event %s/%llu %s",
		    eo->head->ev.call_id,
		    (unsigned long long)eo->head->ev.attempt,
		    eo->head->ev.status);
		pending_unlink(eo, eo->head);
		eo->dropped++;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    rq_msg_copy(&p->ev, ev) == -1) {
		free(p);
		log_warnx("evout: out of memory, event %s %s lost",
		    ev->call_id, ev->status);
		return -1;
	}
	p->ev.type = RQ_MSG_EVENT;
	if (!rq_msg_has(&p->ev, ts_ms))
		rq_msg_set(&p->ev, ts_ms, rq_now_ms());
	pending_append(eo, p);
	pp = pending_bucket(eo, p->ev.call_id, p->ev.attempt, p->ev.status);
	p->hnext = *pp;
	*pp = p;
	eo->npending++;
	p->sent_ms = rq_mono_ms();
	rq_bus_send(eo->sock, NULL, 0, &p->ev);
	return 0;
}

int
rq_evout_fd(struct rq_evout *eo)
{
	return rq_bus_fd(eo->sock);
}

void
rq_evout_process(struct rq_evout *eo)
{
	struct rq_msg m;
	struct pending *p;
	int rc;

	while ((rc = rq_bus_recv(&eo->in, &m)) != 0) {
		if (rc == -1)
			continue;
		if (m.type != RQ_MSG_EVENT_ACK) {
			log_warnx("evout: unexpected %s dropped",
			    rq_msg_type_name(m.type));
			rq_msg_clear(&m);
			continue;
		}
		if (m.call_id == NULL || m.status == NULL) {
			rq_msg_clear(&m);
			continue;
		}
		/* Any ack shows accounting is there: resend in full again. */
		eo->round_ms = 0;
		if (eo->probe_ms != 0) {
			log_info("evout: accounting answers again; %zu events "
			    "to send again", eo->npending);
			eo->probe_ms = 0;
		}
		p = *pending_bucket(eo, m.call_id, m.attempt, m.status);
		for (; p != NULL; p = p->hnext)
			if (p->ev.attempt == m.attempt &&
			    !strcmp(p->ev.call_id, m.call_id) &&
			    !strcmp(p->ev.status, m.status)) {
				pending_unlink(eo, p);
				break;
			}
		rq_msg_clear(&m);
	}
}

void
rq_evout_tick(struct rq_evout *eo)
{
	uint64_t now = rq_mono_ms();
	struct pending *p;
	int resent = 0, limit = RQ_EVOUT_RESEND_BURST;

	rq_evout_process(eo);
	if (eo->head == NULL || now - eo->head->sent_ms < RQ_EVOUT_RESEND_MS)
		return;
	/* Resent for a whole interval and not one ack back: accounting is
	 * away.  Resending everything again and again would only burn CPU
	 * beside the calls; one event per interval finds out when it is
	 * back. */
	if (eo->round_ms != 0 && now - eo->round_ms >= RQ_EVOUT_RESEND_MS) {
		if (eo->probe_ms == 0)
			log_warnx("evout: accounting has not answered for %llu "
			    "ms; %zu events kept, one sent again every %d ms "
			    "until it does", (unsigned long long)(now -
			    eo->round_ms), eo->npending, RQ_EVOUT_RESEND_MS);
		else if (now - eo->probe_ms < RQ_EVOUT_RESEND_MS)
			return;
		eo->probe_ms = now;
		limit = 1;
	}
	/* In sent_ms order: stop at the first one not due.  A resent event
	 * moves to the tail, where the loop meets it again as not due. */
	while ((p = eo->head) != NULL && now - p->sent_ms >=
	    RQ_EVOUT_RESEND_MS) {
		/* Bound the burst so a long outage does not stall the loop. */
		if (resent++ >= limit)
			break;
		p->sent_ms = now;
		rq_bus_send(eo->sock, NULL, 0, &p->ev);
		pending_remove(eo, p);
		pending_append(eo, p);
	}
	if (eo->round_ms == 0)
		eo->round_ms = now;
	rq_evout_process(eo);
}

size_t
rq_evout_pending(const struct rq_evout *eo)
{
	return eo->npending;
}

/* The accounting loop's work: read a batch of events from rq:events
 * (stream.c) or of EVENTs from the ROUTER, store it in one transaction,
 * mirror it into Redis, acknowledge what is safe, and keep the PostgreSQL
 * and Redis connections alive. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "accounting.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

int
acct_init(struct acct *a, const struct rq_config *cfg)
{
	char err[256];

	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	acct_mirror_init(&a->mr, cfg->redis_host, cfg->redis_port);
	if ((a->batch = calloc(ACCT_BATCH_MAX, sizeof(*a->batch))) == NULL ||
	    (a->drop = calloc(ACCT_BATCH_MAX, sizeof(*a->drop))) == NULL ||
	    (a->ahead = calloc(ACCT_BATCH_MAX, sizeof(*a->ahead))) == NULL ||
	    (a->ahead_drop = calloc(ACCT_BATCH_MAX,
	    sizeof(*a->ahead_drop))) == NULL) {
		log_warn("calloc");
		return -1;
	}
	/* A new one at each start: a telserver that sees it change sends
	 * again at once what our previous run may have lost (evout.c). */
	if (rq_call_id_new(a->boot_id) == -1) {
		log_warn("getrandom");
		return -1;
	}
	memmove(a->boot_id, a->boot_id + 2, RQ_ID_LEN - 1);	/* no "c_" */
	if ((a->zctx = zmq_ctx_new()) == NULL) {
		log_warnx("zmq: %s", zmq_strerror(zmq_errno()));
		return -1;
	}
	if (rq_bus_secure(a->zctx, cfg, err, sizeof(err)) == -1) {
		log_warnx("CURVE: %s", err);
		return -1;
	}
	if ((a->sock = rq_bus_socket(a->zctx, ZMQ_ROUTER)) == NULL) {
		log_warnx("zmq: %s", zmq_strerror(zmq_errno()));
		return -1;
	}
	/* Each telserver keeps its events until they are acknowledged: what
	 * we would queue beyond a few batches only grows our memory, by
	 * telserver, while we lag (rq:events comes first).  ZeroMQ then stops
	 * reading that telserver, which keeps the rest in its own queue. */
	if (zmq_setsockopt(a->sock, ZMQ_RCVHWM, &(int){ ACCT_EVENTS_QUEUED },
	    sizeof(int)) == -1) {
		log_warnx("zmq: %s", zmq_strerror(zmq_errno()));
		return -1;
	}
	rq_bus_in_init(&a->in, a->sock, 1);
	if (zmq_bind(a->sock, cfg->events_endpoint) == -1) {
		log_warnx("zmq: bind %s: %s", cfg->events_endpoint,
		    zmq_strerror(zmq_errno()));
		return -1;
	}
	log_info("listening for events on %s", cfg->events_endpoint);
	return 0;
}

void
acct_free(struct acct *a)
{
	size_t i;

	if (a->batch)
		for (i = 0; i < a->nbatch; i++)
			rq_msg_clear(&a->batch[i].m);
	if (a->ahead)
		for (i = 0; i < a->nahead; i++)
			rq_msg_clear(&a->ahead[i].m);
	free(a->batch);
	free(a->drop);
	free(a->ahead);
	free(a->ahead_drop);
	if (a->pg)
		PQfinish(a->pg);
	acct_mirror_close(&a->mr);
	if (a->sock)
		zmq_close(a->sock);
	if (a->zctx)
		zmq_ctx_term(a->zctx);
	memset(a, 0, sizeof(*a));
}

static void
reconnect(struct acct *a)
{
	uint64_t now = rq_mono_ms();
	char err[512];

	if (a->pg == NULL && now >= a->pg_retry_ms) {
		a->pg_retry_ms = now + ACCT_RETRY_MS;
		if ((a->pg = acct_pg_open(a->cfg->pg_conninfo, err,
		    sizeof(err))) != NULL) {
			log_info("postgres: connected%s, schema version %d",
			    a->pg_down ? " again" : "", acct_schema_version());
			a->pg_down = 0;
		} else if (!a->pg_down) {
			/* once per outage; events stay with their senders */
			log_warnx("postgres: %s; not acknowledging events, "
			    "retrying every second", err);
			a->pg_down = 1;
		} else
			log_debug("postgres: %s", err);
		if (a->pg == NULL)
			rq_metric_error("pg");
	}
	/* rq_redis paces the attempts (once a second) and logs them. */
	if (acct_mirror_ready(&a->mr) == 0) {
		if (a->redis_down) {
			log_info("redis: connected again to %s:%d",
			    a->cfg->redis_host, a->cfg->redis_port);
			/* It may have restarted: make sure of the group, and
			 * read our pending entries again. */
			a->group_ok = 0;
		}
		a->redis_down = 0;
	} else if (!a->redis_down) {
		rq_metric_error("redis");
		log_warnx("redis %s:%d: down; not acknowledging events, "
		    "retrying every second", a->cfg->redis_host,
		    a->cfg->redis_port);
		a->redis_down = 1;
	}
}

/* Metrics (docs/metrics.md): the links' state, once per step. */
#define STORED_HELP	"Events written to PostgreSQL (a resent one is stored " \
			"once but counted again)"
#define ACKED_HELP	"Events stored and mirrored, then acknowledged"

static void
metrics_links(struct acct *a)
{
	static struct rq_metric *pg, *redis;

	if (pg == NULL) {
		pg = rq_gauge("ringq_accounting_link_up", "link=\"pg\"",
		    "1 while the link is up, 0 while down (events wait with "
		    "their senders)");
		redis = rq_gauge("ringq_accounting_link_up",
		    "link=\"redis\"", "");
		rq_counter("ringq_accounting_events_stored_total", "",
		    STORED_HELP);
		rq_counter("ringq_accounting_events_acked_total", "",
		    ACKED_HELP);
	}
	rq_gauge_set(pg, a->pg != NULL);
	rq_gauge_set(redis, !a->redis_down);
}

/* The next read of rq:events starts with our pending entries (read, not
 * acknowledged), so that none is stored after entries newer than it. */
static void
reread_pending(struct acct *a)
{
	a->backlog = 1;
	a->backlog_ms = 0;
	snprintf(a->cursor, sizeof(a->cursor), "0");
}

static void
pg_lost(struct acct *a)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", PQerrorMessage(a->pg));
	msg[strcspn(msg, "\n")] = '\0';
	log_warnx("postgres: connection lost (%s); not acknowledging events, "
	    "reconnecting every second", msg);
	PQfinish(a->pg);
	a->pg = NULL;
	a->pg_down = 1;
	a->pg_retry_ms = rq_mono_ms() + ACCT_RETRY_MS;
	reread_pending(a);
}

/* The database refuses every write (acct_store's -3): nothing is tried
 * for ACCT_RETRY_MS, the events wait with their senders and in the stream,
 * and that is said once until a batch is stored again. */
static void
pg_refused(struct acct *a)
{
	if (!a->pg_refusing)
		log_warnx("postgres: refuses to store events (%s); not "
		    "acknowledging events, trying again every second",
		    acct_store_error());
	a->pg_refusing = 1;
	a->pg_pause_ms = rq_mono_ms() + ACCT_RETRY_MS;
	a->pg_paused = 1;
	reread_pending(a);
}

/* Whether events may be stored in this step: connected, not refused a
 * moment ago.  (Told once a step, so that its ZeroMQ events, read last,
 * never go before the stream's entries the step left pending.) */
static int
pg_usable(const struct acct *a)
{
	return a->pg != NULL && !a->pg_paused;
}

/* A peer's string made fit for a log line. */
static const char *
printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void
ack(struct acct *a, const struct acct_event *ev)
{
	struct rq_msg m;

	rq_msg_init(&m, RQ_MSG_EVENT_ACK);
	rq_msg_set(&m, call_id, ev->m.call_id);
	rq_msg_set(&m, attempt, ev->m.attempt);
	rq_msg_set(&m, status, ev->m.status);
	rq_msg_set(&m, boot_id, a->boot_id);
	rq_bus_send(a->sock, ev->peer, ev->peerlen, &m);
}

/* Reads what waits on the socket into the batch.  Events that can never be
 * stored are acknowledged and dropped here. */
static void
receive(struct acct *a)
{
	struct acct_event *ev;
	char err[128], id[40], st[40];
	int rc, tries;

	for (tries = 0; a->nbatch < ACCT_BATCH_MAX &&
	    tries < 2 * ACCT_BATCH_MAX; tries++) {
		ev = &a->batch[a->nbatch];
		memset(ev, 0, sizeof(*ev));
		if ((rc = rq_bus_recv(&a->in, &ev->m)) == 0)
			break;
		if (rc == -1)
			continue;	/* logged by the bus */
		memcpy(ev->peer, a->in.id, a->in.idlen);
		ev->peerlen = a->in.idlen;
		if (ev->m.type != RQ_MSG_EVENT) {
			log_warnx("unexpected %s on the events socket dropped",
			    rq_msg_type_name(ev->m.type));
			rq_msg_clear(&ev->m);
			continue;
		}
		if (acct_event_check(&ev->m, &ev->st, err, sizeof(err)) == -1) {
			log_warnx("%s: event %" PRIu64 ":%s dropped: %s",
			    printable(ev->m.call_id, id, sizeof(id)),
			    ev->m.attempt,
			    printable(ev->m.status, st, sizeof(st)), err);
			/* It would be refused forever: let the sender forget it. */
			ack(a, ev);
			rq_msg_clear(&ev->m);
			continue;
		}
		if (err[0] != '\0')
			log_warnx("%s: event %" PRIu64 ":%s: %s", ev->m.call_id,
			    ev->m.attempt, ev->m.status, err);
		ev->rank = acct_rank(ev->m.attempt, ev->st);
		ev->mirror = 1;		/* ringing, answered: not in Redis yet */
		a->nbatch++;
	}
}

/* The batch being handled and the one read ahead trade places. */
static void
swap_ahead(struct acct *a)
{
	struct acct_event *ev = a->batch;
	char (*drop)[ACCT_SID_MAX] = a->drop;
	size_t n = a->nbatch, nd = a->ndrop;

	a->batch = a->ahead;
	a->nbatch = a->nahead;
	a->drop = a->ahead_drop;
	a->ndrop = a->nahead_drop;
	a->ahead = ev;
	a->nahead = n;
	a->ahead_drop = drop;
	a->nahead_drop = nd;
}

/*
 * acct_store's meanwhile for a full batch of rq:events: the next entries
 * are read (and checked) while PostgreSQL stores these, instead of after
 * (about a sixth of a batch's time).  Only new entries: while our pending
 * ones are read again (a start, a failure), or the consumer group is to
 * be made again, the next read could return the very entries being
 * stored.
 */
static void
read_ahead(void *arg)
{
	struct acct *a = arg;
	int n;

	if (a->ahead_read != 0 || a->backlog || a->backlog_ms != 0 ||
	    !a->group_ok || a->mr.r.c == NULL)
		return;
	swap_ahead(a);
	n = acct_stream_read(a);
	swap_ahead(a);
	a->ahead_read = n > 0 ? n : 0;
}

/* A batch read ahead that will not be stored: its entries stay pending,
 * to be read again first. */
static void
forget_ahead(struct acct *a)
{
	size_t i;

	if (a->ahead_read == 0)
		return;
	log_debug("%s: %d entries read ahead left pending, to be read again",
	    RQ_KEY_EVENTS, a->ahead_read);
	for (i = 0; i < a->nahead; i++)
		rq_msg_clear(&a->ahead[i].m);
	a->nahead = a->nahead_drop = 0;
	a->ahead_read = 0;
	reread_pending(a);
}

/* read_next: the batch is full, so the next one may be read while
 * PostgreSQL stores it (read_ahead). */
static void
handle_batch(struct acct *a, int read_next)
{
	size_t i, nacked = 0;
	int rc;

	rc = acct_store(a->pg, a->batch, a->nbatch,
	    read_next ? read_ahead : NULL, a);
	if (rc != 0)
		rq_metric_error("pg");
	if (rc == -1 && a->nbatch > 1) {
		/* One event the database refuses must not hold back the
		 * others: store them one by one. */
		log_warnx("postgres: batch of %zu events refused, storing "
		    "them one by one", a->nbatch);
		for (i = 0; i < a->nbatch; i++)
			if ((rc = acct_store(a->pg, &a->batch[i], 1, NULL,
			    NULL)) < -1)
				break;
	}
	if (rc == -2) {
		pg_lost(a);
		return;
	}
	if (rc == -3) {
		pg_refused(a);
		return;
	}
	if (a->pg_refusing) {
		log_info("postgres: stores events again");
		a->pg_refusing = 0;
	}
	/* On failure nothing is mirrored, so nothing is acknowledged: the
	 * senders resend, and PostgreSQL takes the duplicates. */
	for (i = 0; i < a->nbatch; i++)
		if (a->batch[i].stored)
			rq_metric_inc(rq_counter("ringq_accounting_events_"
			    "stored_total", "", STORED_HELP));
	if (acct_mirror(&a->mr, a->batch, a->nbatch) == -1 && !a->redis_down) {
		rq_metric_error("redis");
		log_warnx("redis: not acknowledging events, reconnecting "
		    "every second");
		a->redis_down = 1;
	}
	for (i = 0; i < a->nbatch; i++)
		if (a->batch[i].stored && a->batch[i].mirrored) {
			/* stream entries: acct_stream_ack */
			if (a->batch[i].sid[0] == '\0')
				ack(a, &a->batch[i]);
			nacked++;
		}
	rq_metric_add(rq_counter("ringq_accounting_events_acked_total", "",
	    ACKED_HELP), nacked);
	log_debug("batch of %zu events: %zu acknowledged", a->nbatch, nacked);
}

void
acct_handle_batch(struct acct *a)
{
	handle_batch(a, 0);
}

static void
clear_batch(struct acct *a)
{
	size_t i;

	for (i = 0; i < a->nbatch; i++)
		rq_msg_clear(&a->batch[i].m);
	a->nbatch = 0;
}

/* One batch from rq:events: the one read ahead (*was_ahead 1), else a new
 * read.  Returns 1 when more may be waiting: a full batch, which is also
 * the only kind that reads the next one ahead.  After a partial one the
 * next read waits for the poll period, so that under a steady load the
 * batches grow (a batch costs PostgreSQL a transaction and a statement per
 * round, whatever its size) instead of carrying the few entries written
 * since the last read. */
static int
stream_step(struct acct *a, int *was_ahead)
{
	int n;

	*was_ahead = 0;
	/* Without PostgreSQL or Redis the entries wait in the stream. */
	if (!pg_usable(a) || a->redis_down || a->mr.r.c == NULL) {
		forget_ahead(a);
		return 0;
	}
	if (a->ahead_read > 0) {
		swap_ahead(a);
		n = a->ahead_read;
		a->ahead_read = 0;
		*was_ahead = 1;
	} else if ((n = acct_stream_read(a)) <= 0)
		return 0;
	if (a->nbatch > 0)
		handle_batch(a, n >= ACCT_BATCH_MAX);
	acct_stream_ack(a);
	clear_batch(a);
	return n >= ACCT_BATCH_MAX;
}

void
acct_step(struct acct *a, int timeout_ms)
{
	zmq_pollitem_t pi = { a->sock, 0, ZMQ_POLLIN, 0 };
	uint64_t start_ms;
	int ahead;

	reconnect(a);
	metrics_links(a);
	a->pg_paused = rq_mono_ms() < a->pg_pause_ms;
	/* The stream is read every ACCT_STREAM_POLL_MS when idle, at once
	 * while it has more. */
	if (stream_step(a, &ahead))
		timeout_ms = 0;
	else if (timeout_ms > ACCT_STREAM_POLL_MS)
		timeout_ms = ACCT_STREAM_POLL_MS;
	if (zmq_poll(&pi, 1, timeout_ms) == -1) {
		if (errno != EINTR)
			log_warnx("zmq_poll: %s", zmq_strerror(errno));
		return;
	}
	if (!(pi.revents & ZMQ_POLLIN))
		return;
	/* A telserver sends ringing and answered after its claim wrote
	 * dispatched to the stream: reading the stream first keeps a call's
	 * events (and its status callbacks) in order.  So the last batch must
	 * come from a read made after the poll, not one read ahead before.
	 * A backlog longer than a step leaves the socket's events for the
	 * next one (their order kept). */
	start_ms = rq_mono_ms();
	while (stream_step(a, &ahead) || ahead)
		if (rq_stop || rq_mono_ms() - start_ms >= ACCT_DRAIN_STEP_MS)
			return;
	receive(a);
	if (a->nbatch == 0)
		return;
	/* Without PostgreSQL, drop the events unacknowledged: the senders
	 * keep them and send them again (common/evout.h says when). */
	if (pg_usable(a))
		acct_handle_batch(a);
	else
		log_debug("postgres down or refusing: %zu events left to "
		    "their senders", a->nbatch);
	clear_batch(a);
}

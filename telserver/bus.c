/* The telserver's ZeroMQ side: one DEALER per dispatcher (JOB in; HEARTBEAT,
 * JOB_ACK, JOB_NACK out) and the event outbox to accounting, all watched
 * from the Sofia loop through their edge-triggered ZMQ_FDs. */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "log.h"
#include "telserver.h"

static void	heartbeat_send(struct tel_ctx *);

struct tel_dealer {
	void			*sock;
	char			 endpoint[RQ_ADDR_MAX];
	int			 reg;
	struct rq_bus_in	 in;
	int			 batches;	/* its last JOB said it takes
						 * batches (frames) */
	struct rq_bus_batch	 out;		/* kept (tel_bus_hold) */
};

static int
bus_wakeup(struct tel_ctx *ctx, su_wait_t *w, void *arg)
{
	tel_bus_poll(ctx);
	return 0;
}

static int
bus_register(struct tel_ctx *ctx, int fd)
{
	su_wait_t w;

	if (su_wait_create(&w, fd, SU_WAIT_IN) == -1)
		return -1;
	return su_root_register(ctx->root, &w, bus_wakeup, NULL, 0);
}

void
tel_state_path(const struct rq_config *cfg, const char *suffix, char *out,
    size_t len)
{
	const char *dir = cfg->state_dir[0] ? cfg->state_dir : cfg->run_dir;

	out[0] = '\0';
	if (dir[0] != '\0' && (size_t)snprintf(out, len,
	    "%s/ringq-telserver-%s.%s", dir, cfg->tel_name, suffix) >= len)
		out[0] = '\0';
}

/* The outbox's journal (evout.h), "" in out for none: the events then
 * live in memory only. */
static int
events_journal(const struct rq_config *cfg, char *out, size_t len)
{
	const char *dir = cfg->state_dir[0] ? cfg->state_dir : cfg->run_dir;

	out[0] = '\0';
	if (dir[0] == '\0') {
		log_warnx("bus: no state_dir or run_dir: a kill -9 loses the "
		    "events accounting has not acknowledged yet, and the "
		    "finishes Redis has not taken yet");
		return 0;
	}
	/* (only the telserver keeps state: the other daemons, which read
	 * the same file, do not need the directory) */
	if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
		log_warn("bus: state_dir %s", dir);
		return -1;
	}
	tel_state_path(cfg, "events", out, len);
	if (out[0] == '\0') {
		log_warnx("bus: the events journal's path is too long");
		return -1;
	}
	return 0;
}

int
tel_bus_open(struct tel_ctx *ctx)
{
	const struct rq_config *cfg = ctx->cfg;
	char eps[sizeof(cfg->dispatch_endpoints)], *ep, *save = NULL;
	char rid[RQ_NAME_MAX + 32], journal[2 * RQ_ADDR_MAX];
	struct tel_dealer *d;
	int n = 1, one = 1;
	const char *p;

	for (p = cfg->dispatch_endpoints; *p; p++)
		if (*p == ',')
			n++;
	if ((ctx->dealers = calloc((size_t)n, sizeof(*ctx->dealers))) == NULL)
		return -1;
	/* Unique per process, so a restarted telserver is a new peer. */
	snprintf(rid, sizeof(rid), "%s-%ld", cfg->tel_name, (long)getpid());
	snprintf(eps, sizeof(eps), "%s", cfg->dispatch_endpoints);
	for (ep = strtok_r(eps, ", \t", &save); ep != NULL;
	    ep = strtok_r(NULL, ", \t", &save)) {
		d = &ctx->dealers[ctx->ndealers];
		d->reg = -1;
		snprintf(d->endpoint, sizeof(d->endpoint), "%s", ep);
		/* Immediate: while a dispatcher is away, heartbeats fail
		 * instead of piling up to be delivered stale all at once. */
		if ((d->sock = rq_bus_socket(ctx->zctx, ZMQ_DEALER)) != NULL)
			rq_bus_heartbeats(d->sock);
		if (d->sock == NULL ||
		    zmq_setsockopt(d->sock, ZMQ_ROUTING_ID, rid,
		    strlen(rid)) == -1 ||
		    zmq_setsockopt(d->sock, ZMQ_IMMEDIATE, &one,
		    sizeof(one)) == -1 || zmq_connect(d->sock, ep) == -1) {
			log_warnx("bus: dispatcher %s: %s", ep,
			    zmq_strerror(zmq_errno()));
			if (d->sock)
				zmq_close(d->sock);
			d->sock = NULL;
			return -1;
		}
		rq_bus_in_init(&d->in, d->sock, 0);
		rq_bus_batch_init(&d->out);
		ctx->ndealers++;
		if ((d->reg = bus_register(ctx, rq_bus_fd(d->sock))) < 0) {
			log_warnx("bus: cannot watch the dispatcher socket");
			return -1;
		}
	}
	if (ctx->ndealers == 0) {
		log_warnx("bus: no dispatch_endpoints configured");
		return -1;
	}
	if (events_journal(cfg, journal, sizeof(journal)) == -1)
		return -1;
	if ((ctx->eo = rq_evout_new(ctx->zctx, cfg->events_endpoint,
	    journal[0] != '\0' ? journal : NULL)) == NULL)
		return -1;
	if ((ctx->eo_reg = bus_register(ctx, rq_evout_fd(ctx->eo))) < 0) {
		log_warnx("bus: cannot watch the events socket");
		return -1;
	}
	return 0;
}

void
tel_bus_close(struct tel_ctx *ctx)
{
	int i;

	if (ctx->bus_timer) {
		su_timer_destroy(ctx->bus_timer);
		ctx->bus_timer = NULL;
	}
	for (i = 0; i < ctx->ndealers; i++) {
		if (ctx->dealers[i].reg >= 0)
			su_root_deregister(ctx->root, ctx->dealers[i].reg);
		rq_bus_batch_free(&ctx->dealers[i].out);
		zmq_close(ctx->dealers[i].sock);
	}
	free(ctx->dealers);
	ctx->dealers = NULL;
	ctx->ndealers = 0;
	if (ctx->eo) {
		if (ctx->eo_reg > 0)
			su_root_deregister(ctx->root, ctx->eo_reg);
		/* Last chance for accounting to acknowledge. */
		rq_evout_free(ctx->eo, 1000);
		ctx->eo = NULL;
	}
}

/* Drains one dealer.  ZMQ_FD is edge-triggered: read until empty. */
static void
dealer_poll(struct tel_ctx *ctx, int i)
{
	struct tel_dealer *d = &ctx->dealers[i];
	struct rq_msg m;
	int rc;

	while ((rc = rq_bus_recv(&d->in, &m)) != 0) {
		if (rc == -1)
			continue;
		if (m.type == RQ_MSG_JOB) {
			/* Its JOBs say whether it takes our replies in
			 * batches (an older dispatcher's do not). */
			d->batches = rq_msg_has(&m, frames) && m.frames > 1;
			tel_call_job_add(ctx, i, &m);
		} else
			log_warnx("bus: unexpected %s from %s dropped",
			    rq_msg_type_name(m.type), ctx->dealers[i].endpoint);
		rq_msg_clear(&m);
	}
}

/* Reads every socket until empty.  A JOB handled here may send (ACK,
 * heartbeat, events), and a zmq_send can eat the ZMQ_FD edge of a message
 * that arrived meanwhile: so a nested call only asks the outermost one to
 * go round again, and the outermost one loops until a round saw no such
 * request.  Never recursive: a backlog of JOBs that all end at once is
 * handled in this loop, not one stack frame each. */
void
tel_bus_poll(struct tel_ctx *ctx)
{
	int i;

	if (ctx->bus_polling) {
		ctx->bus_repoll = 1;
		return;
	}
	ctx->bus_polling = 1;
	do {
		ctx->bus_repoll = 0;
		for (i = 0; i < ctx->ndealers; i++)
			dealer_poll(ctx, i);
		/* The JOBs of this round: claimed in one script. */
		tel_call_jobs_flush(ctx);
		if (ctx->eo)
			rq_evout_process(ctx->eo);
	} while (ctx->bus_repoll);
	ctx->bus_polling = 0;
}

static void
bus_deferred(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	tel_bus_poll(ctx);
}

/* After a send outside tel_bus_poll: polls from the loop, soon, instead of
 * here (the caller may be walking the call list). */
static void
bus_kick(struct tel_ctx *ctx)
{
	if (ctx->bus_polling) {
		ctx->bus_repoll = 1;
		return;
	}
	if (ctx->bus_timer == NULL &&
	    (ctx->bus_timer = su_timer_create(su_root_task(ctx->root),
	    0)) == NULL)
		return;		/* the tick polls every 100 ms anyway */
	if (!su_timer_is_set(ctx->bus_timer))
		su_timer_set_interval(ctx->bus_timer, bus_deferred, NULL, 0);
}

/* A dealer without a connected peer refuses to queue (EAGAIN): that is a
 * dispatcher not up yet, not worth a log line every heartbeat. */
static void
dealer_send(struct tel_ctx *ctx, int i, const struct rq_msg *m)
{
	struct tel_dealer *d = &ctx->dealers[i];
	char *buf;
	size_t len;

	if (ctx->bus_hold > 0 && d->batches) {
		if (d->out.n == RQ_BUS_BATCH_MAX)
			rq_bus_send_batch(d->sock, NULL, 0, &d->out);
		rq_bus_batch_add(&d->out, m);
		return;
	}
	if (rq_msg_pack(m, &buf, &len) == -1) {
		log_warnx("bus: cannot pack %s", rq_msg_type_name(m->type));
		return;
	}
	if (zmq_send(ctx->dealers[i].sock, buf, len, ZMQ_DONTWAIT) == -1 &&
	    (errno != EAGAIN || m->type != RQ_MSG_HEARTBEAT))
		log_warnx("bus: send %s to %s: %s", rq_msg_type_name(m->type),
		    ctx->dealers[i].endpoint, zmq_strerror(errno));
	free(buf);
	if (m->type != RQ_MSG_HEARTBEAT)
		bus_kick(ctx);
}

void
tel_bus_hold(struct tel_ctx *ctx)
{
	ctx->bus_hold++;
}

void
tel_bus_release(struct tel_ctx *ctx)
{
	int i, sent = 0;

	if (ctx->bus_hold == 1 && ctx->hb_wanted) {
		/* Still held: it goes with the replies, after them. */
		ctx->hb_wanted = 0;
		heartbeat_send(ctx);
	}
	if (--ctx->bus_hold > 0)
		return;
	for (i = 0; i < ctx->ndealers; i++) {
		if (ctx->dealers[i].out.n == 0)
			continue;
		/* Lost only as a single reply would be: the dispatcher
		 * requeues after its ack timeout, a claimed attempt not. */
		rq_bus_send_batch(ctx->dealers[i].sock, NULL, 0,
		    &ctx->dealers[i].out);
		sent = 1;
	}
	if (sent)
		bus_kick(ctx);
}

static void
heartbeat_send(struct tel_ctx *ctx)
{
	struct rq_msg m;
	int i;

	rq_msg_init(&m, RQ_MSG_HEARTBEAT);
	rq_msg_set(&m, node, (char *)ctx->cfg->tel_name);
	rq_msg_set(&m, active, (uint64_t)ctx->active);
	rq_msg_set(&m, capacity, (uint64_t)ctx->cfg->capacity);
	/* It may send us JOBs in batches of up to this many. */
	rq_msg_set(&m, frames, (uint64_t)RQ_BUS_BATCH_MAX);
	/* The dispatchers learn from it how fast our calls end, to guess
	 * the ends between two heartbeats (dispatcher/telservers.c). */
	rq_msg_set(&m, ended, ctx->ended);
	/* Draining too until our start-up recovery ran, while fenced and
	 * while an operator drains us (life.c): no jobs. */
	rq_msg_set(&m, state, tel_life_refusing(ctx) ? "draining" : "up");
	for (i = 0; i < ctx->ndealers; i++)
		dealer_send(ctx, i, &m);
	bus_kick(ctx);
}

void
tel_bus_heartbeat(struct tel_ctx *ctx)
{
	if (ctx->bus_hold > 0) {
		/* Once, at the end of the batch, with its replies. */
		ctx->hb_wanted = 1;
		return;
	}
	heartbeat_send(ctx);
}

void
tel_bus_reply(struct tel_ctx *ctx, int dealer, enum rq_msg_type type,
    const char *call_id, uint64_t attempt, const char *reason)
{
	struct rq_msg m;

	if (dealer < 0 || dealer >= ctx->ndealers)
		return;
	rq_msg_init(&m, type);
	rq_msg_set(&m, call_id, (char *)call_id);
	rq_msg_set(&m, attempt, attempt);
	rq_msg_set(&m, node, (char *)ctx->cfg->tel_name);
	if (reason)
		rq_msg_set(&m, reason, (char *)reason);
	if (type == RQ_MSG_JOB_NACK && reason != NULL)
		tel_metric_refused(reason);
	dealer_send(ctx, dealer, &m);
}

void
tel_bus_event(struct tel_ctx *ctx, const struct rq_msg *ev)
{
	if (ctx->eo == NULL)
		return;
	if (rq_evout_emit(ctx->eo, ev) == -1)
		log_warnx("call %s/%llu: event %s not queued", ev->call_id,
		    (unsigned long long)ev->attempt, ev->status);
	rq_evout_process(ctx->eo);
	bus_kick(ctx);
}

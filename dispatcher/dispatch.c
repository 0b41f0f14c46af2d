/* The dispatcher's reactions: heartbeats, acks and nacks from telservers,
 * ack timeouts, and taking ready jobs while some telserver has room.  An
 * ack is bookkeeping only: the telserver's claim in Redis already made the
 * attempt its own (common/lifecycle.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <zmq.h>

#include "dispatcher.h"
#include "log.h"
#include "metrics.h"
#include "status.h"
#include "util.h"

/* Bounds on work per loop turn, so the ROUTER is read often. */
#define DISP_FILL_MAX	1000
#define DISP_READ_MAX	10000
/* Ids popped per take script: one round trip for a burst, short enough not
 * to hold Redis up. */
#define DISP_TAKE_MAX	64

/* Metrics (docs/metrics.md).  The latency runs from the take script's
 * start to the ack: take_us is when the batch being sent was taken. */
static uint64_t		 take_us;
static struct rq_metric	*m_latency, *m_dispatched, *m_sent, *m_alive,
			*m_waiting, *m_alone;

void
disp_count_requeued(const char *why)
{
	char labels[64];

	snprintf(labels, sizeof(labels), "reason=\"%s\"", why);
	rq_metric_inc(rq_counter("ringq_dispatcher_requeued_total", labels,
	    "Jobs given back by reason: to rq:ready on ack_timeout, "
	    "telserver_lost, unreachable, no_room, nack, shutdown; to "
	    "rq:hours on hours"));
}

static void
m_nacked(const char *reason)
{
	static const char *known[] = { "stale", "invalid", "full",
	    "draining", "redis" };
	char labels[64];
	size_t i;

	/* The reason came from the network: only known words as labels. */
	for (i = 0; i < sizeof(known) / sizeof(*known); i++)
		if (!strcmp(reason, known[i]))
			break;
	snprintf(labels, sizeof(labels), "reason=\"%s\"",
	    i < sizeof(known) / sizeof(*known) ? known[i] : "other");
	rq_metric_inc(rq_counter("ringq_dispatcher_nacked_total", labels,
	    "JOB_NACKs received, by reason"));
}

void
disp_init(struct disp *d, const struct rq_config *cfg, void *router)
{
	static struct rq_script *scripts[] = { &disp_take_script,
	    &disp_requeue_script, &disp_drop_script };

	memset(d, 0, sizeof(*d));
	d->cfg = cfg;
	d->router = router;
	rq_bus_in_init(&d->in, router, 1);
	rq_redis_init(&d->redis, cfg->redis_host, cfg->redis_port, scripts,
	    sizeof(scripts) / sizeof(*scripts));
	rq_sub_init(&d->wake, cfg->redis_host, cfg->redis_port,
	    RQ_CHANNEL_WAKE);
	disp_taker_init(&d->taker, cfg->redis_host, cfg->redis_port);
	disp_tels_init(&d->tels, (uint64_t)cfg->heartbeat_timeout_ms);
	TAILQ_INIT(&d->jobs);
	m_latency = rq_histogram("ringq_dispatch_latency_seconds", "",
	    "From taking a job from rq:ready to its telserver's ack");
	m_sent = rq_counter("ringq_dispatcher_sent_total", "",
	    "JOB messages sent to telservers");
	m_dispatched = rq_counter("ringq_dispatcher_dispatched_total", "",
	    "Jobs acknowledged by their telserver (claimed)");
	m_alive = rq_gauge("ringq_dispatcher_telservers", "state=\"alive\"",
	    "Telservers known from their heartbeats, by state");
	m_waiting = rq_gauge("ringq_dispatcher_awaiting_ack", "",
	    "Jobs sent and not yet acknowledged");
	m_alone = rq_gauge("ringq_dispatcher_alone", "",
	    "1: no calls but this dispatcher's seen on the telservers, so it "
	    "picks the least loaded; 0: two random choices");
	if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng) ||
	    d->rng == 0)
		d->rng = rq_mono_ms() | 1;
}

static void
job_free(struct disp_job *j)
{
	if (j == NULL)
		return;
	free(j->call_id);
	free(j);
}

/* Unlinks j and gives its slot back to its telserver. */
static void
job_done(struct disp *d, struct disp_job *j)
{
	struct disp_tel *e = &d->tels.v[j->tel];

	TAILQ_REMOVE(&d->jobs, j, entry);
	d->njobs--;
	if (e->pending > 0)
		e->pending--;
}

void
disp_free(struct disp *d)
{
	struct disp_job *j;

	while ((j = TAILQ_FIRST(&d->jobs)) != NULL) {
		job_done(d, j);
		job_free(j);
	}
	disp_tels_free(&d->tels);
	disp_taker_close(&d->taker);
	rq_sub_close(&d->wake);
	rq_redis_close(&d->redis);
}

static struct disp_job *
job_find(struct disp *d, const char *id, uint64_t attempt, ssize_t ti)
{
	struct disp_job *j, *other = NULL;

	/* One attempt may be held twice (sent, its lease reclaimed and
	 * sent again elsewhere before the first answer): the one sent to
	 * ti, else any (for the log line). */
	TAILQ_FOREACH(j, &d->jobs, entry)
		if (j->attempt == attempt && strcmp(j->call_id, id) == 0) {
			if (ti >= 0 && (ssize_t)j->tel == ti)
				return j;
			if (other == NULL)
				other = j;
		}
	return other;
}

/*
 * Acks and nacks are believed only from a telserver we know from its
 * heartbeats, and for a job we sent, only from the one we sent it to:
 * anyone can connect to the ROUTER.
 */
static void
on_ack(struct disp *d, ssize_t ti, const struct rq_msg *m)
{
	struct disp_job *j;
	struct disp_tel *e;

	if (ti < 0) {
		log_warnx("call %s: attempt %llu: ack from an unregistered "
		    "peer (%s), ignored", m->call_id,
		    (unsigned long long)m->attempt, m->node);
		return;
	}
	e = &d->tels.v[ti];
	if ((j = job_find(d, m->call_id, m->attempt, ti)) == NULL) {
		/* A duplicate, or an ack after we gave up waiting: its claim
		 * succeeded, so our requeue found no lease and did nothing. */
		log_warnx("call %s: attempt %llu: ack from telserver %s that "
		    "we were not waiting for", m->call_id,
		    (unsigned long long)m->attempt, e->node);
		return;
	}
	if (ti != (ssize_t)j->tel) {
		log_warnx("call %s: attempt %llu: ack from telserver %s, not "
		    "the one we sent it to (%s), ignored", j->call_id,
		    (unsigned long long)j->attempt, e->node,
		    d->tels.v[j->tel].node);
		return;
	}
	job_done(d, j);
	rq_metric_inc(m_dispatched);
	rq_histogram_observe_ms(m_latency, (double)(rq_mono_us() - j->taken_us) /
	    1000.0);
	/* It is active there now, until the next heartbeat counts it. */
	e->acked++;
	log_info("call %s: attempt %llu dispatched to telserver %s",
	    j->call_id, (unsigned long long)j->attempt, e->node);
	job_free(j);
}

static void
on_nack(struct disp *d, ssize_t ti, const struct rq_msg *m)
{
	struct disp_job *j;
	struct disp_tel *e;
	char detail[512];

	if ((j = job_find(d, m->call_id, m->attempt, ti)) == NULL || ti < 0 ||
	    ti != (ssize_t)j->tel) {
		log_warnx("call %s: attempt %llu: nack (%s) from %s %s that "
		    "we were not waiting for, ignored", m->call_id,
		    (unsigned long long)m->attempt, m->reason,
		    ti < 0 ? "unregistered peer" : "telserver",
		    ti < 0 ? m->node : d->tels.v[ti].node);
		return;
	}
	e = &d->tels.v[j->tel];
	log_info("call %s: attempt %llu refused by telserver %s: %s%s%s",
	    j->call_id, (unsigned long long)j->attempt, e->node, m->reason,
	    rq_msg_has(m, detail) ? ": " : "",
	    rq_msg_has(m, detail) ? m->detail : "");
	job_done(d, j);
	m_nacked(m->reason);
	if (!strcmp(m->reason, "stale")) {
		/* Its claim failed: the lease was reclaimed or requeued, or
		 * the attempt is another's.  Nothing of ours is left. */
		job_free(j);
		return;
	}
	if (!strcmp(m->reason, "invalid")) {
		snprintf(detail, sizeof(detail), "refused by telserver %s as "
		    "invalid%s%s", e->node, rq_msg_has(m, detail) ? ": " : "",
		    rq_msg_has(m, detail) ? m->detail : "");
		if (disp_job_drop(&d->redis, j->call_id, j->attempt, e->node,
		    detail) == 1)
			log_warnx("call %s: attempt %llu: failed (rejected): "
			    "the job is unusable", j->call_id,
			    (unsigned long long)j->attempt);
		job_free(j);
		return;
	}
	/* full, draining, redis (it could not claim) or a reason we do not
	 * know: it did not dial.  Count it full until it reports again,
	 * rather than bounce jobs off it. */
	disp_tel_full(e, rq_mono_ms());
	disp_count_requeued("nack");
	if (disp_job_requeue(&d->redis, j->call_id, j->attempt, 1) == 1) {
		log_debug("call %s: back in the ready queue", j->call_id);
		d->idle = 0;
	}
	job_free(j);
}

static void
on_message(struct disp *d, const void *id, size_t idlen, struct rq_msg *m)
{
	ssize_t ti;

	ti = disp_tels_find(&d->tels, id, idlen);
	switch (m->type) {
	case RQ_MSG_HEARTBEAT:
		disp_tels_heartbeat(&d->tels, id, idlen, m, rq_mono_ms());
		break;
	case RQ_MSG_JOB_ACK:
		on_ack(d, ti, m);
		break;
	case RQ_MSG_JOB_NACK:
		on_nack(d, ti, m);
		break;
	default:
		log_warnx("unexpected %s from %s dropped",
		    rq_msg_type_name(m->type),
		    ti >= 0 ? d->tels.v[ti].node : "an unknown peer");
		break;
	}
}

void
disp_read(struct disp *d)
{
	struct rq_msg m;
	int i, rc;

	for (i = 0; i < DISP_READ_MAX; i++) {
		if ((rc = rq_bus_recv(&d->in, &m)) == 0)
			break;
		if (rc == -1)
			continue;
		on_message(d, d->in.id, d->in.idlen, &m);
		rq_msg_clear(&m);
	}
}

void
disp_tick(struct disp *d)
{
	uint64_t now = rq_mono_ms();
	struct disp_job *j, *next;
	struct disp_tel *e;
	size_t i;
	int64_t alive = 0;
	int alone;

	disp_tels_check(&d->tels, now);
	disp_taker_stuck(&d->taker, now);
	for (i = 0; i < d->tels.n; i++)
		alive += d->tels.v[i].alive != 0;
	rq_gauge_set(m_alive, alive);
	rq_gauge_set(m_waiting, (int64_t)d->njobs);
	alone = disp_tels_alone(&d->tels, now);
	/* The counts behind it fade over a minute, so a quiet spell flips
	 * it too: logged at most once a minute, the gauge says the rest. */
	if (alone != d->alone && now >= d->alone_logged + 60000) {
		log_info(alone ? "the telservers start no calls but ours: "
		    "choosing the least loaded" : "choosing by two random "
		    "choices (calls we did not send seen, or too few of our "
		    "own lately to tell)");
		d->alone_logged = now;
		d->alone = alone;
	}
	rq_gauge_set(m_alone, alone);
	for (j = TAILQ_FIRST(&d->jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, entry);
		e = &d->tels.v[j->tel];
		if (!e->alive) {
			/* Its telserver is lost (no heartbeat for
			 * heartbeat_timeout_ms, unreachable, or restarted
			 * with a new identity): give the attempt back now,
			 * not at the ack timeout.  Safe for the same reason
			 * as below: a claimed attempt is not requeued. */
			job_done(d, j);
			switch (disp_job_requeue(&d->redis, j->call_id,
			    j->attempt, 1)) {
			case 1:
				disp_count_requeued("telserver_lost");
				log_warnx("call %s: attempt %llu: telserver %s "
				    "lost before its ack: requeued",
				    j->call_id, (unsigned long long)j->attempt,
				    e->node);
				d->idle = 0;
				break;
			case 0:
				log_warnx("call %s: attempt %llu: telserver %s "
				    "lost after it claimed the attempt: left "
				    "to it (or to the scheduler's sweep)",
				    j->call_id, (unsigned long long)j->attempt,
				    e->node);
				break;
			}
			job_free(j);
			continue;
		}
		if (j->deadline > now)
			continue;
		log_warnx("call %s: attempt %llu: no ack from telserver %s "
		    "within %d ms: requeued, telserver suspect until its next "
		    "heartbeat", j->call_id, (unsigned long long)j->attempt,
		    e->node, d->cfg->ack_timeout_ms);
		e->suspect = 1;
		job_done(d, j);
		disp_count_requeued("ack_timeout");
		/* Safe to give the attempt back: if the telserver claimed it,
		 * the lease left rq:inflight and this does nothing; if not,
		 * the requeue takes the lease and it never can. */
		if (disp_job_requeue(&d->redis, j->call_id, j->attempt, 1) == 1)
			d->idle = 0;
		job_free(j);
	}
}

/* Waits for job's ack from telserver ti, which counts it as pending from
 * now.  Returns NULL when out of memory (logged; its lease brings it
 * back). */
static struct disp_job *
job_track(struct disp *d, size_t ti, const struct rq_msg *job)
{
	struct disp_tel *e = &d->tels.v[ti];
	struct disp_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->call_id = strdup(job->call_id)) == NULL) {
		log_warnx("call %s: out of memory, left to its lease",
		    job->call_id);
		job_free(j);
		return NULL;
	}
	j->attempt = job->attempt;
	j->tel = ti;
	j->taken_us = take_us;
	j->deadline = rq_mono_ms() + (uint64_t)d->cfg->ack_timeout_ms;
	TAILQ_INSERT_TAIL(&d->jobs, j, entry);
	d->njobs++;
	e->pending++;
	return j;
}

/* A job picked for telserver e that never went to it: not dialled, so
 * its attempt is given back. */
static void
unsent(struct disp *d, const struct disp_tel *e, const struct rq_msg *job,
    struct disp_job *tracked)
{
	log_warnx("call %s: attempt %llu: cannot reach telserver %s, requeued",
	    job->call_id, (unsigned long long)job->attempt, e->node);
	job_done(d, tracked);
	job_free(tracked);
	disp_count_requeued("unreachable");
	disp_job_requeue(&d->redis, job->call_id, job->attempt, 1);
}

/*
 * Sends the n jobs of jobs[] whose to[] is ti (at most what telserver ti
 * takes in one message), in one message, and marks them sent (to[] -1).
 * When the message cannot go, none of them went: each is given back.
 */
static void
send_batch(struct disp *d, size_t ti, struct rq_msg *jobs,
    struct disp_job **track, ssize_t *to, size_t n)
{
	struct disp_tel *e = &d->tels.v[ti];
	struct rq_bus_batch b;
	size_t i, k, in[RQ_BUS_BATCH_MAX], nin = 0, max;

	max = e->frames > 1 ? (size_t)e->frames : 1;
	rq_bus_batch_init(&b);
	for (i = 0; i < n && nin < max; i++) {
		if (to[i] != (ssize_t)ti)
			continue;
		to[i] = -1;
		/* Tells the telserver it may answer in batches. */
		rq_msg_set(&jobs[i], frames, (uint64_t)RQ_BUS_BATCH_MAX);
		if (rq_bus_batch_add(&b, &jobs[i]) == -1) {
			/* Cannot be: take_entry checked its fields. */
			job_done(d, track[i]);
			job_free(track[i]);
			continue;
		}
		in[nin++] = i;
	}
	if (rq_bus_send_batch(d->router, e->id, e->idlen, &b) == 0) {
		rq_metric_add(m_sent, nin);
		for (k = 0; k < nin; k++)
			log_debug("call %s: attempt %llu sent to telserver %s",
			    jobs[in[k]].call_id,
			    (unsigned long long)jobs[in[k]].attempt, e->node);
		return;
	}
	disp_tels_gone(&d->tels, ti, "unreachable");
	/* These, and the rest picked for it. */
	for (k = 0; k < nin; k++)
		unsent(d, e, &jobs[in[k]], track[in[k]]);
	for (i = 0; i < n; i++)
		if (to[i] == (ssize_t)ti) {
			to[i] = -1;
			unsent(d, e, &jobs[i], track[i]);
		}
}

/*
 * Sends n taken jobs, each to the telserver the random choice gives it.
 * Those for one telserver go in one message (as many as it takes), so
 * that ZeroMQ wakes its thread and the telserver's once per burst.
 */
static void
send_jobs(struct disp *d, struct rq_msg *jobs, size_t n, uint64_t now)
{
	struct disp_job *track[DISP_TAKE_MAX];
	ssize_t to[DISP_TAKE_MAX];
	size_t i;

	for (i = 0; i < n; i++) {
		to[i] = disp_tels_pick(&d->tels, now, disp_rng_xorshift,
		    &d->rng);
		if (to[i] == -1) {
			/* Not expected: the room was counted. */
			log_warnx("call %s: no telserver has room, requeued",
			    jobs[i].call_id);
			disp_count_requeued("no_room");
			disp_job_requeue(&d->redis, jobs[i].call_id,
			    jobs[i].attempt, 1);
		} else if ((track[i] = job_track(d, (size_t)to[i],
		    &jobs[i])) == NULL)
			to[i] = -1;
	}
	for (i = 0; i < n; i++)
		while (to[i] != -1)
			send_batch(d, (size_t)to[i], jobs, track, to, n);
}

/* A lease outlives the ack timeout: normally we requeue first. */
static uint64_t
lease_ms(const struct disp *d)
{
	return (uint64_t)d->cfg->ack_timeout_ms + 1000;
}

int
disp_waiting_take(struct disp *d)
{
	if (d->stopping || rq_redis_ready(&d->redis) == -1)
		return 0;
	return disp_taker_up(&d->taker, d->redis.module);
}

/* The waiting take's side of disp_fill: one take at a time, for the room
 * there is. */
static void
fill_waiting(struct disp *d)
{
	uint64_t room;

	if (d->taker.waiting ||
	    (room = disp_tels_room(&d->tels, rq_mono_ms())) == 0)
		return;
	disp_taker_send(&d->taker, lease_ms(d),
	    room < DISP_TAKE_MAX ? (size_t)room : DISP_TAKE_MAX,
	    DISP_SAFETY_POLL_MS);
}

void
disp_taken(struct disp *d)
{
	struct rq_msg jobs[DISP_TAKE_MAX];
	redisReply *rep;
	size_t i, n, want = d->taker.want;

	if (disp_taker_read(&d->taker, &rep) != 1)
		return;
	/* Taken in Redis a moment ago; the latency counts from here. */
	take_us = rq_mono_us();
	/* An error (-LOADING, -OOM, ...) or a shape we do not know (logged
	 * by disp_job_take_reply): asking again at once would get the same.
	 * Ids it may have held come back when their leases end. */
	if (rep->type == REDIS_REPLY_ERROR ||
	    disp_job_take_reply(rep, want, jobs, &n) == -1) {
		rq_metric_error("redis");
		disp_taker_refused(&d->taker, rep->type == REDIS_REPLY_ERROR ?
		    rep->str : "an answer of another shape");
		freeReplyObject(rep);
		return;
	}
	disp_taker_answered(&d->taker);
	send_jobs(d, jobs, n, rq_mono_ms());
	for (i = 0; i < n; i++)
		rq_msg_clear(&jobs[i]);
	freeReplyObject(rep);
	disp_fill(d);
}

void
disp_fill(struct disp *d)
{
	struct rq_msg jobs[DISP_TAKE_MAX];
	size_t i, n, want;
	uint64_t lease, now, room;
	int taken = 0, popped;

	if (d->stopping)
		return;
	if (disp_waiting_take(d)) {
		fill_waiting(d);
		return;
	}
	now = rq_mono_ms();
	if (d->idle && now < d->next_poll)
		return;
	lease = lease_ms(d);
	while (taken < DISP_FILL_MAX) {
		/* Take only for the room there is, so waiting jobs stay in
		 * Redis, not here. */
		if ((room = disp_tels_room(&d->tels, now)) == 0 ||
		    rq_redis_ready(&d->redis) == -1)
			return;
		want = room < DISP_TAKE_MAX ? (size_t)room : DISP_TAKE_MAX;
		take_us = rq_mono_us();
		if ((popped = disp_job_take(&d->redis, lease, want, jobs,
		    &n)) == -1) {
			rq_metric_error("redis");
			return;
		}
		taken += popped;
		send_jobs(d, jobs, n, now);
		for (i = 0; i < n; i++)
			rq_msg_clear(&jobs[i]);
		if ((size_t)popped < want) {
			/* Empty: wait for rq:wake or the safety poll. */
			d->idle = 1;
			d->next_poll = rq_mono_ms() + DISP_SAFETY_POLL_MS;
			return;
		}
		d->idle = 0;
		now = rq_mono_ms();
	}
}

/*
 * At shutdown: ends the waiting take (CLIENT UNBLOCK on the main
 * connection) and sends what it may have taken just before, so that no
 * job waits for its lease to end.  A take Redis cannot be asked about is
 * left to its leases.
 */
static void
end_waiting_take(struct disp *d)
{
	char id[32];
	const char *argv[3] = { "CLIENT", "UNBLOCK", id };
	uint64_t until = rq_mono_ms() + 1000;
	redisReply *rep;
	int fd;

	if (d->taker.waiting && d->redis.c != NULL) {
		snprintf(id, sizeof(id), "%lld", d->taker.id);
		if ((rep = rq_redis_command(d->redis.c, 3, argv)) != NULL)
			freeReplyObject(rep);
		while (d->taker.waiting && rq_mono_ms() < until &&
		    (fd = disp_taker_fd(&d->taker)) != -1) {
			zmq_pollitem_t pi = { NULL, fd, ZMQ_POLLIN, 0 };

			if (zmq_poll(&pi, 1, 20) > 0)
				disp_taken(d);
		}
	}
	disp_taker_close(&d->taker);
}

void
disp_shutdown(struct disp *d, int wait_ms)
{
	uint64_t until = rq_mono_ms() + (uint64_t)wait_ms;
	struct disp_job *j;

	d->stopping = 1;
	end_waiting_take(d);
	if (d->njobs > 0)
		log_info("waiting up to %d ms for %zu acks", wait_ms, d->njobs);
	while (d->njobs > 0 && rq_mono_ms() < until) {
		zmq_pollitem_t pi = { d->router, 0, ZMQ_POLLIN, 0 };

		if (zmq_poll(&pi, 1, 20) > 0)
			disp_read(d);
	}
	while ((j = TAILQ_FIRST(&d->jobs)) != NULL) {
		log_warnx("call %s: attempt %llu: no ack from telserver %s "
		    "before exit: requeued", j->call_id,
		    (unsigned long long)j->attempt, d->tels.v[j->tel].node);
		job_done(d, j);
		disp_count_requeued("shutdown");
		disp_job_requeue(&d->redis, j->call_id, j->attempt, 1);
		job_free(j);
	}
}

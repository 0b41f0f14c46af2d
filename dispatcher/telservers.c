/* The telserver table: what each telserver said in its last heartbeat, what
 * we sent it since, and whether it is alive.  Keyed by ZeroMQ identity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "log.h"

void
disp_tels_init(struct disp_tels *t, uint64_t timeout_ms)
{
	memset(t, 0, sizeof(*t));
	t->timeout_ms = timeout_ms;
}

void
disp_tels_free(struct disp_tels *t)
{
	free(t->v);
	free(t->cands);
	memset(t, 0, sizeof(*t));
}

ssize_t
disp_tels_find(const struct disp_tels *t, const void *id, size_t idlen)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].used && t->v[i].idlen == idlen &&
		    memcmp(t->v[i].id, id, idlen) == 0)
			return (ssize_t)i;
	return -1;
}

static int
tel_alive(const struct disp_tels *t, const struct disp_tel *e, uint64_t now)
{
	return e->used && e->last_hb != 0 && now - e->last_hb <= t->timeout_ms;
}

/* A slot for a new identity: a fresh one, or a dead one with no jobs. */
static ssize_t
tels_slot(struct disp_tels *t, uint64_t now)
{
	struct disp_tel *v;
	struct disp_cand *c;
	size_t i, ncap;

	for (i = 0; i < t->n; i++)
		if (!t->v[i].used ||
		    (!tel_alive(t, &t->v[i], now) && t->v[i].pending == 0))
			return (ssize_t)i;
	if (t->n == DISP_TEL_MAX)
		return -1;
	if (t->n == t->cap) {
		ncap = t->cap ? t->cap * 2 : 16;
		if ((v = reallocarray(t->v, ncap, sizeof(*v))) == NULL)
			return -1;
		t->v = v;
		if ((c = reallocarray(t->cands, ncap, sizeof(*c))) == NULL)
			return -1;
		t->cands = c;
		t->cap = ncap;
	}
	memset(&t->v[t->n], 0, sizeof(t->v[t->n]));
	return (ssize_t)t->n++;
}

/*
 * Why estimate the calls that ended: a heartbeat says how many calls were
 * active when it left, and we add the jobs we sent since, so our view is
 * never below the truth but misses every call that ended since.  With
 * reports a few seconds old a busy fleet looks full while it has room, and
 * jobs wait in rq:ready for nothing.  Heartbeats carry `ended`, the calls
 * the telserver ended since it started: from successive ones we learn the
 * rate at which its calls end, per active call (ends over call-ms, the sums
 * forgetting over DISP_ENDS_TAU_MS so the rate follows the traffic), and
 * between heartbeats we count as ended the whole calls that rate expects of
 * the reported ones.  Only those: the calls we sent since count as active,
 * and the estimate never goes below zero calls.  It errs low (a margin,
 * then rounded down), and an error costs little: a telserver really full
 * nacks "full" and we count it full from then until it reports again
 * (disp_tel_full).  A telserver without `ended` (older) gets no estimate:
 * the view of before.  tests/bench/bench_balance.c measures all this.
 */
void
disp_tel_report(struct disp_tel *e, uint64_t active, uint64_t capacity,
    int has_ended, uint64_t ended, uint64_t now)
{
	double dt, w, n;

	if (active > DISP_CAPACITY_MAX)
		active = DISP_CAPACITY_MAX;
	if (!has_ended || !e->has_ended || ended < e->hb_ended ||
	    e->hb_ms == 0 || now < e->hb_ms) {
		/* No rate yet, or a new counter (a restart). */
		e->ends_n = e->ends_x = e->own_n = e->other_n = 0;
	} else {
		n = (double)(ended - e->hb_ended);
		dt = (double)(now - e->hb_ms);
		w = DISP_ENDS_TAU_MS / (DISP_ENDS_TAU_MS + dt);
		e->ends_n = e->ends_n * w + n;
		/* The calls between were somewhere between the two
		 * counts: take the mean. */
		e->ends_x = e->ends_x * w +
		    (double)(e->hb_active + active) / 2 * dt;
		/* Started = now active + ended - then active.  An ack that
		 * crosses a heartbeat counts on the wrong side once, and
		 * back the next time. */
		e->own_n = e->own_n * w + (double)e->acked;
		e->other_n = e->other_n * w + (double)active + n -
		    (double)e->hb_active - (double)e->acked;
	}
	e->has_ended = has_ended;
	e->hb_ended = ended;
	e->hb_active = active;
	e->hb_ms = now;
	e->capacity = capacity > DISP_CAPACITY_MAX ? DISP_CAPACITY_MAX :
	    capacity;
	e->active = active;
	e->acked = 0;
	e->est_ms = now;
}

void
disp_tel_full(struct disp_tel *e, uint64_t now)
{
	e->active = e->capacity;
	e->est_ms = now;
}

uint64_t
disp_tel_ended(const struct disp_tel *e, uint64_t now)
{
	double n;

	if (e->ends_n < DISP_ENDS_MIN || e->ends_x <= 0 || now <= e->est_ms)
		return 0;
	n = (double)e->active * (e->ends_n / e->ends_x) *
	    (double)(now - e->est_ms);
	/* Ends come about like a Poisson count: keep a margin of half its
	 * standard deviation, fewer jobs bounce off a full telserver. */
	n -= DISP_ENDS_MARGIN * sqrt(n);
	if (n < 1)
		return 0;
	if (n >= (double)e->active)
		return e->active;
	return (uint64_t)n;
}

uint64_t
disp_tel_load(const struct disp_tel *e, uint64_t now)
{
	return e->active + e->pending + e->acked - disp_tel_ended(e, now);
}

ssize_t
disp_tels_heartbeat(struct disp_tels *t, const void *id, size_t idlen,
    const struct rq_msg *hb, uint64_t now)
{
	struct disp_tel *e;
	ssize_t i;
	size_t j;

	if (strlen(hb->node) >= RQ_NAME_MAX || hb->node[0] == '\0') {
		log_warnx("heartbeat with a bad node name dropped");
		return -1;
	}
	if ((i = disp_tels_find(t, id, idlen)) == -1) {
		if ((i = tels_slot(t, now)) == -1) {
			log_warnx("telserver %s: table full, heartbeat dropped",
			    hb->node);
			return -1;
		}
		e = &t->v[i];
		memset(e, 0, sizeof(*e));
		e->used = 1;
		memcpy(e->id, id, idlen);
		e->idlen = idlen;
	}
	e = &t->v[i];
	/* A restarted telserver comes back with a new identity: retire the
	 * old entry so that its slots are not counted twice. */
	for (j = 0; j < t->n; j++) {
		if (j == (size_t)i || !t->v[j].used || t->v[j].last_hb == 0 ||
		    strcmp(t->v[j].node, hb->node) != 0)
			continue;
		disp_tels_gone(t, j, "reconnected with a new identity");
	}
	snprintf(e->node, sizeof(e->node), "%s", hb->node);
	disp_tel_report(e, hb->active, hb->capacity, rq_msg_has(hb, ended),
	    hb->ended, now);
	e->frames = rq_msg_has(hb, frames) && hb->frames > 1 ?
	    (hb->frames < RQ_BUS_BATCH_MAX ? hb->frames : RQ_BUS_BATCH_MAX) :
	    1;
	e->draining = rq_msg_has(hb, state) && hb->state != NULL &&
	    strcmp(hb->state, "draining") == 0;
	e->last_hb = now;
	if (e->suspect)
		log_info("telserver %s: heartbeat again, no longer suspect",
		    e->node);
	e->suspect = 0;
	if (!e->alive)
		log_info("telserver %s: up (capacity %llu, active %llu%s)",
		    e->node, (unsigned long long)e->capacity,
		    (unsigned long long)e->active,
		    e->draining ? ", draining" : "");
	e->alive = 1;
	return i;
}

void
disp_tels_gone(struct disp_tels *t, size_t i, const char *why)
{
	struct disp_tel *e = &t->v[i];

	if (e->alive)
		log_warnx("telserver %s: down: %s", e->node, why);
	e->alive = 0;
	e->last_hb = 0;
}

void
disp_tels_check(struct disp_tels *t, uint64_t now)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].alive && !tel_alive(t, &t->v[i], now))
			disp_tels_gone(t, i, "no heartbeat");
}

/*
 * Two random choices are the insurance against a herd: dispatchers that do
 * not see each other's jobs all sending to the server that looks emptiest.
 * A dispatcher whose telservers start no call but its own sees every job
 * the moment it sends it; there is no one to herd with, and the least
 * loaded server by its estimate is the best choice (with an exact view,
 * greedy keeps the fleet evenest).  The counts come from the heartbeats, so
 * a second dispatcher, or inbound calls, switch us back within a few of
 * them.
 */
int
disp_tels_alone(const struct disp_tels *t, uint64_t now)
{
	double own = 0, other = 0;
	size_t i;

	for (i = 0; i < t->n; i++) {
		const struct disp_tel *e = &t->v[i];

		if (!tel_alive(t, e, now))
			continue;
		if (!e->has_ended)
			return 0;	/* an older telserver: cannot tell */
		own += e->own_n;
		other += e->other_n;
	}
	return own >= DISP_ALONE_MIN && other <= DISP_ALONE_FRAC * own;
}

ssize_t
disp_tels_pick(struct disp_tels *t, uint64_t now, disp_rng_fn rng,
    void *rng_arg)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		struct disp_tel *e = &t->v[i];
		struct disp_cand *c = &t->cands[i];

		c->capacity = e->capacity;
		c->load = disp_tel_load(e, now);
		c->accepting = tel_alive(t, e, now) && !e->draining &&
		    !e->suspect;
	}
	if (disp_tels_alone(t, now))
		return disp_select_least(t->cands, t->n, rng, rng_arg);
	return disp_select(t->cands, t->n, rng, rng_arg);
}

uint64_t
disp_tels_room(struct disp_tels *t, uint64_t now)
{
	uint64_t room = 0, load;
	size_t i;

	for (i = 0; i < t->n; i++) {
		struct disp_tel *e = &t->v[i];

		if (!tel_alive(t, e, now) || e->draining || e->suspect)
			continue;
		load = disp_tel_load(e, now);
		if (e->capacity > load)
			room += e->capacity - load;
	}
	return room;
}

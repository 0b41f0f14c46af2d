/* The telserver table: what each telserver said in its last heartbeat, what
 * we sent it since, and whether it is alive.  Keyed by ZeroMQ identity. */
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
	e->capacity = hb->capacity > DISP_CAPACITY_MAX ? DISP_CAPACITY_MAX :
	    hb->capacity;
	e->active = hb->active > DISP_CAPACITY_MAX ? DISP_CAPACITY_MAX :
	    hb->active;
	e->draining = rq_msg_has(hb, state) && hb->state != NULL &&
	    strcmp(hb->state, "draining") == 0;
	e->acked = 0;
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

ssize_t
disp_tels_pick(struct disp_tels *t, uint64_t now, disp_rng_fn rng,
    void *rng_arg)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		struct disp_tel *e = &t->v[i];
		struct disp_cand *c = &t->cands[i];

		c->capacity = e->capacity;
		c->load = e->active + e->pending + e->acked;
		c->accepting = tel_alive(t, e, now) && !e->draining &&
		    !e->suspect;
	}
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
		load = e->active + e->pending + e->acked;
		if (e->capacity > load)
			room += e->capacity - load;
	}
	return room;
}

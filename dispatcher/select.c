/* The choice of a telserver: "power of two choices" weighted by capacity.
 * A pure function over candidates and a caller's RNG, so issue 5 can
 * benchmark it against least-loaded, uniform random and round robin. */
#include "dispatcher.h"

/*
 * Why two random choices and not "always the least loaded": the loads we
 * see are stale (heartbeats every heartbeat_ms, acks in flight, and other
 * dispatchers sending to the same telservers).  Every dispatcher that
 * believes the same server is least loaded sends it everything until the
 * next report: the herd.  Drawing two candidates at random and keeping the
 * less loaded one still sends most work to the emptier servers (the maximum
 * load grows as log log n instead of log n for one random choice) while
 * spreading a burst over many servers.  Draws are weighted by capacity so a
 * server with 4x the slots gets 4x the work when all are idle; they are
 * independent (with replacement), so a less loaded server wins often but
 * not always, even between two servers.
 */

uint64_t
disp_rng_xorshift(void *arg)
{
	uint64_t *s = arg;
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static int
has_room(const struct disp_cand *c)
{
	return c->accepting && c->capacity > 0 && c->load < c->capacity;
}

/* Draws a candidate with room, with probability proportional to capacity. */
static size_t
draw(const struct disp_cand *c, size_t n, uint64_t total, disp_rng_fn rng,
    void *rng_arg)
{
	uint64_t r = rng(rng_arg) % total;
	size_t i, last = 0;

	for (i = 0; i < n; i++) {
		if (!has_room(&c[i]))
			continue;
		last = i;
		if (r < c[i].capacity)
			return i;
		r -= c[i].capacity;
	}
	return last;
}

/* Nonzero when b is strictly better than a: a lower load/capacity ratio,
 * then more free slots.  Two idle servers tie: the first draw, already
 * weighted by capacity, stands, so idle servers share work by capacity
 * (preferring free slots there would send nearly all to the largest). */
static int
better(const struct disp_cand *a, const struct disp_cand *b)
{
	/* load/cap compared without division: loads and capacities are
	 * bounded far below 2^32 by the caller. */
	unsigned __int128 la = (unsigned __int128)a->load * b->capacity;
	unsigned __int128 lb = (unsigned __int128)b->load * a->capacity;

	if (lb != la)
		return lb < la;
	if (a->load == 0 && b->load == 0)
		return 0;
	return b->capacity - b->load > a->capacity - a->load;
}

int
disp_select(const struct disp_cand *c, size_t n, disp_rng_fn rng,
    void *rng_arg)
{
	uint64_t total = 0;
	size_t i, a, b;

	for (i = 0; i < n; i++)
		if (has_room(&c[i]))
			total += c[i].capacity;
	if (total == 0)
		return -1;
	a = draw(c, n, total, rng, rng_arg);
	b = draw(c, n, total, rng, rng_arg);
	return (int)(better(&c[a], &c[b]) ? b : a);
}

/*
 * Alone, the least loaded, counting the job we place: the server whose
 * load/capacity is lowest halfway through taking it, (load + 1/2)/capacity
 * (Sainte-Lague's rule).  Plain load/capacity gives a small server one job
 * too many whenever its one job is a big step (1/10 against 1/80), and
 * (load + 1)/capacity one too few; the midpoint shares by capacity
 * without either bias, and keeps the fullest server lowest
 * (tests/bench/bench_balance.c).  Then the most free slots; true ties (the
 * same load on the same capacity) go by a draw, weighted by capacity, not
 * to whichever server comes first in the table.
 */
static int
better_alone(const struct disp_cand *a, const struct disp_cand *b)
{
	unsigned __int128 la = (unsigned __int128)(2 * a->load + 1) *
	    b->capacity;
	unsigned __int128 lb = (unsigned __int128)(2 * b->load + 1) *
	    a->capacity;

	if (lb != la)
		return lb < la;
	return b->capacity - b->load > a->capacity - a->load;
}

int
disp_select_least(const struct disp_cand *c, size_t n, disp_rng_fn rng,
    void *rng_arg)
{
	uint64_t tied = 0;
	size_t i;
	int best = -1;

	for (i = 0; i < n; i++) {
		if (!has_room(&c[i]))
			continue;
		if (best == -1 || better_alone(&c[best], &c[i])) {
			best = (int)i;
			tied = c[i].capacity;
		} else if (!better_alone(&c[i], &c[best])) {
			tied += c[i].capacity;
			if (rng(rng_arg) % tied < c[i].capacity)
				best = (int)i;
		}
	}
	return best;
}

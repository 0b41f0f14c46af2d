/* The balance benchmark: a discrete-event simulation that replays one
 * arrival trace over 16 telservers of mixed capacity for four choices of
 * telserver, ringq's own (disp_tels_pick over the dispatcher's own table,
 * linked from dispatcher/), uniform random, round robin and
 * always-least-loaded, with load reports 0, 1 and 5 s stale and one or
 * several dispatchers. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatcher.h"

/*
 * The model, kept as close to the real dispatcher as a simulation can be:
 *  - every telserver reports its active calls and its cumulative count of
 *    ended calls (HEARTBEAT's active and ended) every `stale` seconds, at a
 *    phase of its own (heartbeats are not synchronised); every dispatcher
 *    gets every report;
 *  - each dispatcher keeps a struct disp_tel per telserver, updated by the
 *    dispatcher's own code: disp_tel_report at each report, acked + 1 per
 *    job it sent (on_ack does the same), disp_tel_full when a job is
 *    refused as full (on_nack);
 *  - ringq is the dispatcher's disp_tels_pick; its view of a telserver is
 *    disp_tel_load: the reported active count, minus the ends it estimates
 *    since, plus the jobs it sent there itself since; it does not see the
 *    other dispatchers' sends;
 *  - the baselines see what a dispatcher without the estimate sees:
 *    active + pending + acked (the view of ringq before the estimate);
 *    "least loaded + est." is least loaded over ringq's view, to show what
 *    the estimate alone gives; "two choices + est." is disp_select over
 *    ringq's view (ringq without its choice when alone) and "two choices
 *    (before)" disp_select over the baselines' view (ringq before);
 *  - with stale = 0 every decision sees the true counts;
 *  - a job goes to the chosen telserver at once; if that one is really full
 *    it refuses ("full at telserver"); if the view shows no room anywhere
 *    the call cannot be placed ("no room seen").  Either is a call refused
 *    for lack of capacity (the real system would requeue it and try again
 *    later: here it is counted, not retried, so every policy sees the very
 *    same calls);
 *  - every policy chooses among the telservers its view says have room
 *    (the same rule as disp_select): uniform random and round robin are not
 *    strawmen that send to servers reported full.
 */

#define NTEL		16
#define NSTALE		3
#define MAXDISP		16

static const uint64_t	caps[NTEL] = {
	25, 25, 25, 25, 50, 50, 50, 50, 100, 100, 100, 100, 200, 200, 200, 200
};
static const double	stales[NSTALE] = { 0, 1, 5 };

/* The first four are the issue's; the others take ringq's apart. */
enum policy {
	POL_RINGQ, POL_RANDOM, POL_RR, POL_LEAST, POL_LEAST_EST, POL_TWO_EST,
	POL_TWO, POL__MAX
};
#define POL_ISSUE	(POL_LEAST + 1)
static const char *const pol_names[POL__MAX] = {
	"ringq", "uniform random", "round robin", "least loaded",
	"least loaded + est.", "two choices + est.", "two choices (before)"
};

struct params {
	uint64_t	seed;
	double		hours, load, mean_s, sigma, max_s, warmup_s;
	size_t		ndisp[MAXDISP], nndisp;
};

/* The trace: replayed identically for every policy and staleness. */
struct call {
	double		t, dur;
	double		u;		/* which dispatcher takes it */
};

struct trace {
	struct call	*v;
	size_t		 n, measured;
	double		 end, rate;
	double		 phase[NTEL];	/* report phase, fraction of a period */
};

struct result {
	double		inst;		/* time average of max/mean utilisation */
	double		avg;		/* max/mean of per-server average */
	uint64_t	offered, full, noroom;
};

/* A dispatcher: its telserver table (the real struct, t.v = tel), its own
 * RNGs. */
struct view {
	struct disp_tels t;
	struct disp_tel	 tel[NTEL];
	struct disp_cand cands[NTEL];
	uint64_t	 rng, rng2;
	size_t		 rr;
};

struct sim {
	uint64_t	 active[NTEL], ended[NTEL];
	double		 next_report[NTEL];
	double		 busy[NTEL];	/* slot-seconds in the window */
	double		 inst_int, win, last;
	double		*hend;		/* departures: a min-heap of end times */
	int		*htel;
	size_t		 hn;
	struct view	 views[MAXDISP];
};

/* A report of telserver i reaches every dispatcher: what
 * disp_tels_heartbeat does, but for its liveness logging. */
static void
report(struct sim *s, size_t ndisp, size_t i, uint64_t now)
{
	size_t d;

	for (d = 0; d < ndisp; d++) {
		disp_tel_report(&s->views[d].tel[i], s->active[i], caps[i], 1,
		    s->ended[i], now);
		s->views[d].tel[i].last_hb = now;
	}
}

/* splitmix64: the trace's generator (not the dispatcher's). */
static uint64_t
splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double
unif(uint64_t *s)
{
	return (double)(splitmix(s) >> 11) * 0x1.0p-53;
}

static uint64_t
total_cap(void)
{
	uint64_t t = 0;
	size_t i;

	for (i = 0; i < NTEL; i++)
		t += caps[i];
	return t;
}

static void
trace_make(struct trace *tr, const struct params *p)
{
	uint64_t s = p->seed;
	double t = 0, end = p->hours * 3600, mu, z, u1, u2;
	size_t cap = 1024;
	size_t i;

	memset(tr, 0, sizeof(*tr));
	/* lognormal durations with mean mean_s: mu = ln(mean) - sigma^2/2 */
	mu = log(p->mean_s) - p->sigma * p->sigma / 2;
	tr->rate = p->load * (double)total_cap() / p->mean_s;
	tr->end = end;
	for (i = 0; i < NTEL; i++)
		tr->phase[i] = unif(&s);
	if ((tr->v = malloc(cap * sizeof(*tr->v))) == NULL)
		abort();
	for (;;) {
		t += -log(1 - unif(&s)) / tr->rate;
		if (t >= end)
			break;
		if (tr->n == cap) {
			cap *= 2;
			if ((tr->v = realloc(tr->v, cap * sizeof(*tr->v))) == NULL)
				abort();
		}
		u1 = 1 - unif(&s);
		u2 = unif(&s);
		z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
		tr->v[tr->n].t = t;
		tr->v[tr->n].dur = fmin(exp(mu + p->sigma * z), p->max_s);
		tr->v[tr->n].u = unif(&s);
		if (t >= p->warmup_s)
			tr->measured++;
		tr->n++;
	}
}

static void
heap_push(struct sim *s, double end, int tel)
{
	size_t i = s->hn++, up;

	while (i > 0 && s->hend[up = (i - 1) / 2] > end) {
		s->hend[i] = s->hend[up];
		s->htel[i] = s->htel[up];
		i = up;
	}
	s->hend[i] = end;
	s->htel[i] = tel;
}

static void
heap_pop(struct sim *s)
{
	double end = s->hend[--s->hn];
	int tel = s->htel[s->hn];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < s->hn) {
		if (c + 1 < s->hn && s->hend[c + 1] < s->hend[c])
			c++;
		if (s->hend[c] >= end)
			break;
		s->hend[i] = s->hend[c];
		s->htel[i] = s->htel[c];
		i = c;
	}
	s->hend[i] = end;
	s->htel[i] = tel;
}

/* Integrates the utilisations from s->last to t (inside the window). */
static void
account(struct sim *s, double t, double warmup)
{
	double from = s->last > warmup ? s->last : warmup, dt, u, max, sum;
	size_t i;

	s->last = t;
	if (t <= from)
		return;
	dt = t - from;
	max = sum = 0;
	for (i = 0; i < NTEL; i++) {
		s->busy[i] += (double)s->active[i] * dt;
		u = (double)s->active[i] / (double)caps[i];
		sum += u;
		if (u > max)
			max = u;
	}
	if (sum > 0) {
		s->inst_int += max / (sum / NTEL) * dt;
		s->win += dt;
	}
}

/* Same rule as select.c's has_room. */
static int
room(const struct disp_cand *c)
{
	return c->accepting && c->capacity > 0 && c->load < c->capacity;
}

static int
pick_random(const struct disp_cand *c, struct view *v)
{
	size_t i, n = 0, k;

	for (i = 0; i < NTEL; i++)
		n += room(&c[i]);
	if (n == 0)
		return -1;
	k = disp_rng_xorshift(&v->rng2) % n;
	for (i = 0; i < NTEL; i++)
		if (room(&c[i]) && k-- == 0)
			return (int)i;
	return -1;
}

static int
pick_rr(const struct disp_cand *c, struct view *v)
{
	size_t k, i;

	for (k = 0; k < NTEL; k++) {
		i = (v->rr + k) % NTEL;
		if (room(&c[i])) {
			v->rr = i + 1;
			return (int)i;
		}
	}
	return -1;
}

/* The lowest load/capacity, then the most free slots, then the first. */
static int
pick_least(const struct disp_cand *c)
{
	int best = -1;
	size_t i;

	for (i = 0; i < NTEL; i++) {
		const struct disp_cand *a, *b = &c[i];

		if (!room(b))
			continue;
		if (best == -1) {
			best = (int)i;
			continue;
		}
		a = &c[best];
		if (b->load * a->capacity < a->load * b->capacity ||
		    (b->load * a->capacity == a->load * b->capacity &&
		    b->capacity - b->load > a->capacity - a->load))
			best = (int)i;
	}
	return best;
}

/* The dispatcher's monotonic clock at simulated time t (never 0: a
 * last_hb of 0 means gone). */
static uint64_t
sim_ms(double t)
{
	return (uint64_t)llround(t * 1000) + 1000;
}

static void
run(const struct trace *tr, const struct params *p, enum policy pol,
    double stale, size_t ndisp, struct result *r)
{
	struct sim *s;
	struct disp_cand c[NTEL];
	uint64_t seed = p->seed ^ 0xD15BA7C4ULL;
	double mean, max, u, td, trep;
	uint64_t now;
	size_t k, i, d;
	int tel, nexti;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->hend = malloc(total_cap() * sizeof(*s->hend))) == NULL ||
	    (s->htel = malloc(total_cap() * sizeof(*s->htel))) == NULL)
		abort();
	/* Each dispatcher seeds its generators as the real one does: its own
	 * nonzero state (fixed here, so that runs repeat). */
	for (d = 0; d < ndisp; d++) {
		struct view *v = &s->views[d];

		v->rng = splitmix(&seed) | 1;
		v->rng2 = splitmix(&seed) | 1;
		/* Reports never time out here. */
		disp_tels_init(&v->t, UINT64_MAX / 2);
		v->t.v = v->tel;
		v->t.cands = v->cands;
		v->t.n = v->t.cap = NTEL;
		for (i = 0; i < NTEL; i++) {
			v->tel[i].used = v->tel[i].alive = 1;
			snprintf(v->tel[i].node, sizeof(v->tel[i].node),
			    "tel%zu", i + 1);
		}
	}
	/* Every dispatcher knows every telserver, idle, from the start. */
	for (i = 0; i < NTEL; i++) {
		s->next_report[i] = tr->phase[i] * stale;
		report(s, ndisp, i, sim_ms(0));
	}
	memset(r, 0, sizeof(*r));

	for (k = 0; k < tr->n; k++) {
		const struct call *cl = &tr->v[k];
		int measured = cl->t >= p->warmup_s;
		struct view *v;

		/* Departures and reports up to this arrival, in time order. */
		for (;;) {
			td = s->hn ? s->hend[0] : INFINITY;
			trep = INFINITY;
			nexti = -1;
			if (stale > 0)
				for (i = 0; i < NTEL; i++)
					if (s->next_report[i] < trep) {
						trep = s->next_report[i];
						nexti = (int)i;
					}
			if (td > cl->t && trep > cl->t)
				break;
			if (td <= trep) {
				account(s, td, p->warmup_s);
				s->active[s->htel[0]]--;
				s->ended[s->htel[0]]++;
				heap_pop(s);
			} else {
				account(s, trep, p->warmup_s);
				report(s, ndisp, (size_t)nexti, sim_ms(trep));
				s->next_report[nexti] += stale;
			}
		}
		account(s, cl->t, p->warmup_s);

		d = (size_t)(cl->u * (double)ndisp);
		v = &s->views[d];
		now = sim_ms(cl->t);
		/* Fresh: every telserver reports right before each job. */
		if (stale == 0)
			for (i = 0; i < NTEL; i++)
				report(s, ndisp, i, now);
		for (i = 0; i < NTEL; i++) {
			const struct disp_tel *e = &v->tel[i];

			c[i].capacity = caps[i];
			if (pol == POL_LEAST_EST || pol == POL_TWO_EST)
				c[i].load = disp_tel_load(e, now);
			else
				c[i].load = e->active + e->pending + e->acked;
			c[i].accepting = 1;
		}
		switch (pol) {
		case POL_RINGQ:
			tel = (int)disp_tels_pick(&v->t, now,
			    disp_rng_xorshift, &v->rng);
			break;
		case POL_TWO_EST:
		case POL_TWO:
			tel = disp_select(c, NTEL, disp_rng_xorshift, &v->rng);
			break;
		case POL_RANDOM:
			tel = pick_random(c, v);
			break;
		case POL_RR:
			tel = pick_rr(c, v);
			break;
		default:
			tel = pick_least(c);
			break;
		}
		r->offered += measured;
		if (tel < 0) {
			r->noroom += measured;
			continue;
		}
		if (s->active[tel] >= caps[tel]) {
			/* JOB_NACK full: pending drops again, nothing sent,
			 * and on_nack counts it full until it reports. */
			r->full += measured;
			disp_tel_full(&v->tel[tel], now);
			continue;
		}
		v->tel[tel].acked++;
		s->active[tel]++;
		heap_push(s, cl->t + cl->dur, tel);
	}
	account(s, tr->end, p->warmup_s);

	r->inst = s->win > 0 ? s->inst_int / s->win : 0;
	mean = max = 0;
	for (i = 0; i < NTEL; i++) {
		u = s->busy[i] / ((double)caps[i] * (tr->end - p->warmup_s));
		mean += u / NTEL;
		if (u > max)
			max = u;
	}
	r->avg = mean > 0 ? max / mean : 0;
	free(s->hend);
	free(s->htel);
	free(s);
}

/* Erlang B: the refusals of one pooled system of n slots at a Erlangs, the
 * floor no balancer over separate servers can beat. */
static double
erlang_b(uint64_t n, double a)
{
	double b = 1;
	uint64_t k;

	for (k = 1; k <= n; k++)
		b = a * b / ((double)k + a * b);
	return b;
}

static double
refused(const struct result *r)
{
	return r->offered ? 100.0 * (double)(r->full + r->noroom) /
	    (double)r->offered : 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench_balance [-s seed] [-H hours] "
	    "[-l load] [-m mean_s] [-g sigma] [-D dispatchers,...]\n");
	exit(2);
}

static int
parse_ndisp(struct params *p, char *arg)
{
	char *tok, *end;
	long n;

	p->nndisp = 0;
	for (tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
		errno = 0;
		n = strtol(tok, &end, 10);
		if (errno || *end || n < 1 || n > MAXDISP ||
		    p->nndisp == MAXDISP)
			return -1;
		p->ndisp[p->nndisp++] = (size_t)n;
	}
	return p->nndisp ? 0 : -1;
}

/* Checks the issue's targets for one dispatcher count; prints and returns
 * the number of targets missed. */
static int
targets(struct result res[POL__MAX][NSTALE])
{
	const struct result *rq, *ll, *o;
	double rr, lr;
	int missed = 0, ok, okr, oku, j;
	size_t s;

	rq = &res[POL_RINGQ][0];
	ll = &res[POL_LEAST][0];
	rr = refused(rq);
	lr = refused(ll);
	ok = rq->inst <= ll->inst * 1.10 && rr <= lr * 1.10 + 1e-9;
	printf("  fresh (0 s): ringq max/mean %.3f vs least loaded %.3f "
	    "(%+.1f%%), refused %.3f%% vs %.3f%% -> within 10%%: %s\n",
	    rq->inst, ll->inst, 100 * (rq->inst / ll->inst - 1), rr, lr,
	    ok ? "MET" : "NOT MET");
	missed += !ok;
	for (s = 1; s < NSTALE; s++) {
		rq = &res[POL_RINGQ][s];
		okr = oku = 1;
		for (j = 0; j < POL_ISSUE; j++) {
			if (j == POL_RINGQ)
				continue;
			o = &res[j][s];
			/* none refused by either: a tie, not better */
			if (!(refused(rq) < refused(o)))
				okr = 0;
			if (!(rq->inst < o->inst))
				oku = 0;
		}
		printf("  stale %.0f s: ringq better than the other three: "
		    "refused %s, max/mean %s -> %s\n", stales[s],
		    okr ? "yes" : "no", oku ? "yes" : "no",
		    okr && oku ? "MET" : "NOT MET");
		missed += !(okr && oku);
	}
	return missed;
}

int
main(int argc, char **argv)
{
	struct params p = {
		.seed = 1, .hours = 2, .load = 0.95, .mean_s = 60,
		.sigma = 1.0, .max_s = 3600, .warmup_s = 600,
		.ndisp = { 1, 4 }, .nndisp = 2,
	};
	static struct result res[POL__MAX][NSTALE];
	struct trace tr;
	size_t i, d, s;
	int ch, j, missed = 0;
	double a;

	while ((ch = getopt(argc, argv, "s:H:l:m:g:D:")) != -1) {
		switch (ch) {
		case 's':
			p.seed = strtoull(optarg, NULL, 10);
			break;
		case 'H':
			p.hours = atof(optarg);
			break;
		case 'l':
			p.load = atof(optarg);
			break;
		case 'm':
			p.mean_s = atof(optarg);
			break;
		case 'g':
			p.sigma = atof(optarg);
			break;
		case 'D':
			if (parse_ndisp(&p, optarg) == -1)
				usage();
			break;
		default:
			usage();
		}
	}
	if (p.hours <= 0 || p.hours > 1000 || p.load <= 0 || p.load > 10 ||
	    p.mean_s <= 0 || p.sigma < 0 || p.sigma > 3)
		usage();
	p.warmup_s = fmin(10 * p.mean_s, p.hours * 3600 / 4);

	trace_make(&tr, &p);
	a = tr.rate * p.mean_s;
	printf("balance benchmark: %d simulated telservers, capacities",
	    NTEL);
	for (i = 0; i < NTEL; i++)
		printf(" %llu", (unsigned long long)caps[i]);
	printf(" (%llu slots)\n", (unsigned long long)total_cap());
	printf("trace: seed %llu; Poisson arrivals %.2f/s = %.0f%% of the "
	    "slots at a mean call of %.0f s; durations lognormal (sigma %.1f, "
	    "mean %.0f s, cut at %.0f s); %.1f h, %zu calls, %zu counted "
	    "after a %.0f s warm-up\n", (unsigned long long)p.seed, tr.rate,
	    100 * p.load, p.mean_s, p.sigma, p.mean_s, p.max_s, p.hours,
	    tr.n, tr.measured, p.warmup_s);
	printf("floor: one pooled system of %llu slots at %.0f Erlangs "
	    "(Erlang B) refuses %.3f%%\n", (unsigned long long)total_cap(),
	    a, 100 * erlang_b(total_cap(), a));
	printf("reports: each telserver every S s at its own phase (S = 0: "
	    "before every job), with its active calls and the calls it ended "
	    "so far; calls are spread uniformly over the dispatchers\n");
	printf("views: ringq and \"+ est.\" see the dispatcher's "
	    "disp_tel_load (reported active - ends it estimates since + its "
	    "own sends since); the others the reported active + its own "
	    "sends since; a full nack counts the telserver full until it "
	    "reports (on_nack)\n");
	printf("policies: ringq is the dispatcher's disp_tels_pick (least "
	    "loaded over its view while its dispatcher is alone, else two "
	    "capacity-weighted choices, disp_select); \"two choices\" is "
	    "disp_select alone, \"(before)\" over the old view\n");
	printf("max/mean: time average of max/mean utilisation over the 16 "
	    "servers (inst.), and max/mean of each server's average "
	    "utilisation (avg); 1.000 is perfect\n");
	printf("targets: fresh: ringq's max/mean (inst.) and refused %% at "
	    "most 1.10x least loaded's; stale (1 and 5 s): strictly fewer "
	    "refused and a lower max/mean (inst.) than each of the other "
	    "three\n");

	for (d = 0; d < p.nndisp; d++) {
		printf("\n%zu dispatcher%s\n", p.ndisp[d],
		    p.ndisp[d] > 1 ? "s" : "");
		printf("  %-20s %5s %9s %9s %9s %8s %9s %9s\n", "policy",
		    "stale", "max/mean", "max/mean", "refused", "refused",
		    "full at", "no room");
		printf("  %-20s %5s %9s %9s %9s %8s %9s %9s\n", "", "",
		    "(inst.)", "(avg)", "calls", "%", "telserver", "seen");
		for (s = 0; s < NSTALE; s++) {
			for (j = 0; j < POL__MAX; j++) {
				struct result *r = &res[j][s];

				run(&tr, &p, (enum policy)j, stales[s],
				    p.ndisp[d], r);
				printf("  %-20s %3.0f s %9.3f %9.3f %9llu "
				    "%7.3f%% %9llu %9llu\n", pol_names[j],
				    stales[s], r->inst, r->avg,
				    (unsigned long long)(r->full + r->noroom),
				    refused(r), (unsigned long long)r->full,
				    (unsigned long long)r->noroom);
			}
		}
		printf("targets, %zu dispatcher%s:\n", p.ndisp[d],
		    p.ndisp[d] > 1 ? "s" : "");
		missed += targets(res);
	}
	printf("\ntargets missed: %d\n", missed);
	free(tr.v);
	return 0;
}

/* The event outbox's cost per event (common/evout.c), run by
 * bench_evout.sh: rq_evout_emit without a journal, with one (a writev per
 * event into a file in DIR), and, the peer, the same event written into a
 * Redis stream by XADD and its reply read, as a telserver would if it
 * wrote its ringing/answered into rq:events itself.  Accounting's part is
 * a ROUTER in this process that reads every event and acks in waves of
 * 500: all of each wave (the journal is cut at the tick), or all but its
 * newest (never empty: the journal is rewritten once past 1 MiB).
 *
 *   bench_evout N DIR REDIS_SOCKET
 * Prints one line per way: microseconds per event (the best of three
 * runs), and for the journal the longest tick, the file's largest size,
 * and the syncs its thread made in a run (one asked at a tick after a
 * change, at most once per 90 ms, while none is under way) and the
 * longest of them.  Then the
 * path of the events ZeroMQ refused (run_refused), beside ZeroMQ alone. */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <zmq.h>

#include "bus.h"
#include "evout.h"
#include "util.h"

#define WAVE	500
#define ROUTER_HWM	1000
#define RUNS	3

static void		*zctx, *router;
static struct rq_bus_in	 router_in;

static void
event(struct rq_msg *ev, const char *id, uint64_t attempt)
{
	rq_msg_init(ev, RQ_MSG_EVENT);
	rq_msg_set(ev, call_id, (char *)id);
	rq_msg_set(ev, attempt, attempt);
	rq_msg_set(ev, status, "answered");
	rq_msg_set(ev, ts_ms, rq_now_ms());
	rq_msg_set(ev, tenant, "demo");
	rq_msg_set(ev, to, "+15550100123");
	rq_msg_set(ev, node, "tel-a");
	rq_msg_set(ev, started_ms, rq_now_ms());
	rq_msg_set(ev, answered_ms, rq_now_ms());
	rq_msg_set(ev, sip_code, 200);
}

static char		 peer[RQ_BUS_ID_MAX];
static size_t		 peerlen;

static void
ack_one(const char *id, uint64_t attempt)
{
	struct rq_msg a;

	rq_msg_init(&a, RQ_MSG_EVENT_ACK);
	rq_msg_set(&a, call_id, (char *)id);
	rq_msg_set(&a, attempt, attempt);
	rq_msg_set(&a, status, "answered");
	rq_bus_send(router, peer, peerlen, &a);
}

/* Reads the events that came and acks each, as accounting does, but the
 * one of attempt hold (0: none).  Returns how many came. */
static int
ack_all(uint64_t hold)
{
	struct rq_msg m;
	int rc, got = 0;

	while ((rc = rq_bus_recv(&router_in, &m)) != 0) {
		if (rc != 1)
			continue;
		got++;
		memcpy(peer, router_in.id, router_in.idlen);
		peerlen = router_in.idlen;
		if (m.attempt != hold)
			ack_one(m.call_id, m.attempt);
		rq_msg_clear(&m);
	}
	return got;
}

/* The outbox toward the ROUTER, with a journal at path or none. */
static struct rq_evout *
outbox_open(const char *journal)
{
	struct rq_evout *eo;

	if ((eo = rq_evout_new(zctx, "inproc://accounting", journal)) ==
	    NULL) {
		fprintf(stderr, "bench_evout: cannot open the outbox\n");
		exit(1);
	}
	return eo;
}

static off_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Emits n events, acking them in waves; returns microseconds per event
 * (the emits and the ticks after each wave: the loop's part, not
 * accounting's).  hold: each wave's newest event is acked only with the
 * next wave, so the outbox is never empty at a tick, as on a busy
 * telserver: the journal is rewritten then, never cut.  *maxtick_us: the
 * longest tick. */
static double
run_evout(int n, const char *journal, int hold, off_t *maxsize,
    uint64_t *maxtick_us, uint64_t *syncs, uint64_t *maxsync_us)
{
	char id[RQ_ID_LEN + 1];
	struct rq_evout *eo;
	struct rq_msg ev;
	uint64_t spent = 0, t0, dt, held = 0, ns, ms;
	int i;

	eo = outbox_open(journal);
	rq_call_id_new(id);
	for (i = 0; i < n; i++) {
		event(&ev, id, (uint64_t)i + 1);
		t0 = rq_mono_us();
		rq_evout_emit(eo, &ev);
		spent += rq_mono_us() - t0;
		if (i % WAVE != WAVE - 1)
			continue;
		if (journal && size_of(journal) > *maxsize)
			*maxsize = size_of(journal);
		ack_all(hold ? (uint64_t)i + 1 : 0);
		if (held != 0)
			ack_one(id, held);
		held = hold ? (uint64_t)i + 1 : 0;
		while (rq_evout_pending(eo) > (held ? 1 : 0)) {
			usleep(100);
			ack_all(held);
			rq_evout_process(eo);
		}
		t0 = rq_mono_us();
		rq_evout_tick(eo);
		dt = rq_mono_us() - t0;
		spent += dt;
		if (dt > *maxtick_us)
			*maxtick_us = dt;
	}
	if (held != 0)
		ack_one(id, held);
	rq_evout_sync_stats(eo, &ns, &ms);
	if (ns > *syncs)
		*syncs = ns;
	if (ms > *maxsync_us)
		*maxsync_us = ms;
	rq_evout_free(eo, 1000);
	return (double)spent / n;
}

/*
 * The refused path: accounting stalls (the ROUTER reads nothing) while n
 * events are emitted; past ZeroMQ's queue (1,000 toward it and the
 * ROUTER's 1,000: ROUTER_HWM), ZeroMQ refuses them and they wait in the
 * outbox.  Then it reads and acks again, and the outbox sends what waited
 * as fast as there is room, in rq_evout_process alone (what the
 * telserver's fd watcher calls): no tick.  Returns microseconds per emit
 * while stalled; *drain_eps: events a second from the first read to the
 * last ack; *refused: how many ZeroMQ had refused.
 */
static double
run_refused(int n, double *drain_eps, int *refused)
{
	char id[RQ_ID_LEN + 1];
	struct rq_evout *eo;
	struct rq_msg ev;
	uint64_t t0, spent = 0;
	int i, first = -1, got;

	eo = outbox_open(NULL);
	rq_call_id_new(id);
	for (i = 0; i < n; i++) {
		event(&ev, id, (uint64_t)i + 1);
		t0 = rq_mono_us();
		rq_evout_emit(eo, &ev);
		spent += rq_mono_us() - t0;
	}
	t0 = rq_mono_us();
	while (rq_evout_pending(eo) > 0) {
		got = ack_all(0);
		if (first == -1)
			first = got;	/* what ZeroMQ took while stalled */
		rq_evout_process(eo);
	}
	*drain_eps = n / ((rq_mono_us() - t0) / 1e6);
	*refused = n - first;
	rq_evout_free(eo, 0);
	return (double)spent / n;
}

/* The peer of the drain: ZeroMQ alone, the same stall and the same drain.
 * A DEALER sends the same events to the stalled ROUTER until ZeroMQ
 * refuses; from the ROUTER's first read on, it acks each, and the DEALER
 * reads the acks and sends the rest as there is room, in one thread as the
 * outbox does: each packed as it is sent (rq_bus_send, as the outbox sends
 * what waited), after a ZMQ_EVENTS check, as the outbox's.  Returns events
 * a second from the first read to the last ack. */
static double
run_zmq_alone(int n)
{
	char id[RQ_ID_LEN + 1];
	struct rq_bus_in in;
	struct rq_msg ev, a;
	void *dealer;
	uint64_t t0;
	int sent = 0, acked = 0, rc;

	dealer = rq_bus_socket(zctx, ZMQ_DEALER);
	zmq_setsockopt(dealer, ZMQ_SNDHWM, &(int){ 1000 }, sizeof(int));
	if (zmq_connect(dealer, "inproc://accounting") == -1) {
		fprintf(stderr, "bench_evout: connect\n");
		exit(1);
	}
	rq_bus_in_init(&in, dealer, 0);
	rq_call_id_new(id);
	event(&ev, id, 1);
	while (sent < n && (rq_bus_events(dealer) & ZMQ_POLLOUT) &&
	    rq_bus_send(dealer, NULL, 0, &ev) == 0)
		sent++;
	t0 = rq_mono_us();
	while (acked < n) {
		ack_all(0);
		while ((rc = rq_bus_recv(&in, &a)) != 0)
			if (rc == 1) {
				acked++;
				rq_msg_clear(&a);
			}
		while (sent < n && (rq_bus_events(dealer) & ZMQ_POLLOUT) &&
		    rq_bus_send(dealer, NULL, 0, &ev) == 0)
			sent++;
	}
	t0 = rq_mono_us() - t0;
	zmq_close(dealer);
	return n / (t0 / 1e6);
}

static double
run_xadd(int n, const char *sock)
{
	char id[RQ_ID_LEN + 1], att[24], now[24];
	redisContext *r;
	redisReply *rep;
	uint64_t t0;
	int i;

	if ((r = redisConnectUnix(sock)) == NULL || r->err) {
		fprintf(stderr, "bench_evout: redis %s\n", sock);
		exit(1);
	}
	rq_call_id_new(id);
	redisCommand(r, "DEL bench:events");
	t0 = rq_mono_us();
	for (i = 0; i < n; i++) {
		snprintf(att, sizeof(att), "%d", i + 1);
		snprintf(now, sizeof(now), "%llu",
		    (unsigned long long)rq_now_ms());
		rep = redisCommand(r, "XADD bench:events * call_id %s "
		    "attempt %s status answered ts_ms %s tenant demo to "
		    "+15550100123 node tel-a started_ms %s answered_ms %s "
		    "sip_code 200", id, att, now, now, now);
		if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
			fprintf(stderr, "bench_evout: XADD failed\n");
			exit(1);
		}
		freeReplyObject(rep);
		if (i % WAVE == WAVE - 1) {
			uint64_t t1 = rq_mono_us();

			freeReplyObject(redisCommand(r, "DEL bench:events"));
			t0 += rq_mono_us() - t1;	/* accounting's */
		}
	}
	t0 = rq_mono_us() - t0;
	redisFree(r);
	return (double)t0 / n;
}

int
main(int argc, char *argv[])
{
	static const char *names[] = { "outbox, no journal",
	    "outbox + journal, cut", "outbox + journal, rewritten",
	    "peer: XADD to Redis, reply read" };
	char journal[4096];
	double best[4] = { 1e9, 1e9, 1e9, 1e9 }, us, eps;
	double refused_us = 1e9, drain_eps = 0, alone_eps = 0;
	off_t maxsize[4] = { 0 };
	uint64_t maxtick[4] = { 0 }, syncs[4] = { 0 }, maxsync[4] = { 0 };
	int n, k, w, refused = 0;

	if (argc != 4 || (n = atoi(argv[1])) <= 0) {
		fprintf(stderr, "usage: bench_evout N DIR REDIS_SOCKET\n");
		return 2;
	}
	snprintf(journal, sizeof(journal), "%s/bench.events", argv[2]);
	zctx = zmq_ctx_new();
	router = rq_bus_socket(zctx, ZMQ_ROUTER);
	/* every ack kept: a ROUTER drops what a full queue refuses, and the
	 * drains would then wait for resends that only a tick makes */
	zmq_setsockopt(router, ZMQ_SNDHWM, &(int){ 0 }, sizeof(int));
	/* 1,000 held for accounting (rq_bus_socket's 100,000 would take in
	 * the whole stall: nothing refused) */
	zmq_setsockopt(router, ZMQ_RCVHWM, &(int){ ROUTER_HWM }, sizeof(int));
	if (zmq_bind(router, "inproc://accounting") == -1)
		return 1;
	rq_bus_in_init(&router_in, router, 1);
	for (k = 0; k < RUNS; k++) {
		for (w = 0; w < 3; w++) {
			us = run_evout(n, w == 0 ? NULL : journal, w == 2,
			    &maxsize[w], &maxtick[w], &syncs[w], &maxsync[w]);
			if (us < best[w])
				best[w] = us;
		}
		if ((us = run_xadd(n, argv[3])) < best[3])
			best[3] = us;
	}
	printf("%-34s %8s %14s %14s %7s %13s\n", "way (best of 3 runs)",
	    "us/event", "longest tick", "largest file", "syncs",
	    "longest sync");
	for (w = 0; w < 4; w++) {
		printf("%-34s %8.2f", names[w], best[w]);
		if (w == 1 || w == 2)
			printf(" %11.2f ms %8lld bytes %7llu %10.2f ms",
			    maxtick[w] / 1000.0, (long long)maxsize[w],
			    (unsigned long long)syncs[w], maxsync[w] / 1000.0);
		printf("\n");
	}
	for (k = 0; k < RUNS; k++) {
		if ((us = run_refused(n, &eps, &refused)) < refused_us)
			refused_us = us;
		if (eps > drain_eps)
			drain_eps = eps;
		if ((eps = run_zmq_alone(n)) > alone_eps)
			alone_eps = eps;
	}
	printf("%-34s %8.2f us/event, %d of %d refused\n",
	    "outbox, accounting stalled", refused_us, refused, n);
	printf("%-34s %8.0f events/s\n", "  then its drain (no tick)",
	    drain_eps);
	printf("%-34s %8.0f events/s\n", "peer: ZeroMQ alone, acks read",
	    alone_eps);
	printf("RQ_BENCH evout events=%d none_us=%.2f cut_us=%.2f "
	    "rewritten_us=%.2f xadd_us=%.2f rewrite_tick_ms=%.2f "
	    "syncs=%llu sync_max_ms=%.2f\n", n, best[0], best[1], best[2],
	    best[3], maxtick[2] / 1000.0, (unsigned long long)syncs[2],
	    (maxsync[1] > maxsync[2] ? maxsync[1] : maxsync[2]) / 1000.0);
	printf("RQ_BENCH evout_refused events=%d refused=%d stalled_us=%.2f "
	    "drain_eps=%.0f zmq_alone_eps=%.0f\n", n, refused, refused_us,
	    drain_eps, alone_eps);
	zmq_close(router);
	zmq_ctx_term(zctx);
	return 0;
}

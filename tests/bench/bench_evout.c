/* The event outbox's cost per event (common/evout.c), run by
 * bench_evout.sh: rq_evout_emit without a journal, with one (a writev per
 * event into a file in DIR), and, the peer, the same event written into a
 * Redis stream by XADD and its reply read, as a telserver would if it
 * wrote its ringing/answered into rq:events itself.  Accounting's part is
 * a ROUTER in this process that reads every event; acks come in waves
 * of 500, so the journal is cut and rewritten as in a telserver.
 *
 *   bench_evout N DIR REDIS_SOCKET
 * Prints one line per way: microseconds per event (the best of three
 * runs), and the journal's largest size. */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <zmq.h>

#include "bus.h"
#include "evout.h"
#include "util.h"

#define WAVE	500
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

/* Reads the events that came and acks each, as accounting does. */
static void
ack_all(void)
{
	struct rq_msg m, a;
	char peer[RQ_BUS_ID_MAX];
	size_t peerlen;
	int rc;

	while ((rc = rq_bus_recv(&router_in, &m)) != 0) {
		if (rc != 1)
			continue;
		memcpy(peer, router_in.id, router_in.idlen);
		peerlen = router_in.idlen;
		rq_msg_init(&a, RQ_MSG_EVENT_ACK);
		rq_msg_set(&a, call_id, m.call_id);
		rq_msg_set(&a, attempt, m.attempt);
		rq_msg_set(&a, status, m.status);
		rq_bus_send(router, peer, peerlen, &a);
		rq_msg_clear(&m);
	}
}

static uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static off_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Emits n events, acking them in waves; returns microseconds per event
 * (emit only: the acks and ticks are accounting's and the loop's). */
static double
run_evout(int n, const char *journal, off_t *maxsize)
{
	char id[RQ_ID_LEN + 1];
	struct rq_evout *eo;
	struct rq_msg ev;
	uint64_t spent = 0, t0;
	int i;

	if ((eo = rq_evout_new(zctx, "inproc://accounting", journal)) ==
	    NULL) {
		fprintf(stderr, "bench_evout: cannot open the outbox\n");
		exit(1);
	}
	rq_call_id_new(id);
	for (i = 0; i < n; i++) {
		event(&ev, id, (uint64_t)i + 1);
		t0 = mono_us();
		rq_evout_emit(eo, &ev);
		spent += mono_us() - t0;
		if (i % WAVE == WAVE - 1) {
			if (journal && size_of(journal) > *maxsize)
				*maxsize = size_of(journal);
			ack_all();
			while (rq_evout_pending(eo) > 0) {
				usleep(100);
				ack_all();
				rq_evout_tick(eo);	/* resends, if any */
			}
			t0 = mono_us();
			rq_evout_tick(eo);
			spent += mono_us() - t0;
		}
	}
	rq_evout_free(eo, 1000);
	return (double)spent / n;
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
	t0 = mono_us();
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
			uint64_t t1 = mono_us();

			freeReplyObject(redisCommand(r, "DEL bench:events"));
			t0 += mono_us() - t1;	/* accounting's */
		}
	}
	t0 = mono_us() - t0;
	redisFree(r);
	return (double)t0 / n;
}

int
main(int argc, char *argv[])
{
	char journal[4096];
	double best[3] = { 1e9, 1e9, 1e9 }, us;
	off_t maxsize = 0;
	int n, k;

	if (argc != 4 || (n = atoi(argv[1])) <= 0) {
		fprintf(stderr, "usage: bench_evout N DIR REDIS_SOCKET\n");
		return 2;
	}
	snprintf(journal, sizeof(journal), "%s/bench.events", argv[2]);
	zctx = zmq_ctx_new();
	router = rq_bus_socket(zctx, ZMQ_ROUTER);
	if (zmq_bind(router, "inproc://accounting") == -1)
		return 1;
	rq_bus_in_init(&router_in, router, 1);
	for (k = 0; k < RUNS; k++) {
		if ((us = run_evout(n, NULL, &maxsize)) < best[0])
			best[0] = us;
		if ((us = run_evout(n, journal, &maxsize)) < best[1])
			best[1] = us;
		if ((us = run_xadd(n, argv[3])) < best[2])
			best[2] = us;
	}
	printf("%-34s %8s\n", "way (best of 3 runs)", "us/event");
	printf("%-34s %8.2f\n", "outbox, no journal", best[0]);
	printf("%-34s %8.2f   (largest journal %lld bytes)\n",
	    "outbox + journal (writev)", best[1], (long long)maxsize);
	printf("%-34s %8.2f\n", "peer: XADD to Redis, reply read", best[2]);
	printf("RQ_BENCH evout events=%d none_us=%.2f journal_us=%.2f "
	    "xadd_us=%.2f\n", n, best[0], best[1], best[2]);
	zmq_close(router);
	zmq_ctx_term(zctx);
	return 0;
}

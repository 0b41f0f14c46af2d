/*
 * rq_enqueue: bench_dispatch.sh's load generator for ringq's throughput
 * runs: JOBS calls due now, enqueued as the gateway enqueues them (the
 * same ringq.create and arguments, gateway/policy_store.c; a tenant
 * without limits, a SIP target), in C with hiredis, as the gateway does:
 * pipelined in batches of BATCH, up to INFLIGHT batches sent and not yet
 * answered.  BullMQ's side enqueues with its own client (Queue.addBulk);
 * ringq's used to go through ioredis in node, which had become the limit
 * (docs/benchmarks.md, "Thirteenth session").
 *
 *   rq_enqueue PORT JOBS TENANT TO PREFIX [BATCH [INFLIGHT [RATE]]]
 *
 * RATE (jobs per second, 0 for as fast as it can): paced, every 2 ms what
 * is due by then, the answers read as they come (the latency pass).
 *
 * The calls are PREFIX (c_ and 16 hex digits) and the job's number in 8
 * hex digits, a call id as the gateway makes them.  Prints
 * "t0_ms=... t1_ms=...": Redis's clock before the first write and after
 * the last answer.
 * Exits 1 on any answer but "queued" (gw_policy_verdict_parse, as the
 * gateway reads it), 2 on a bad argument.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "gateway.h"
#include "keys.h"

static void
usage(void)
{
	fprintf(stderr, "usage: rq_enqueue PORT JOBS TENANT TO PREFIX "
	    "[BATCH [INFLIGHT [RATE]]]\n");
	exit(2);
}

/* argv's number s, from min to max; usage() if it is not one. */
static long
number(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

/* A key name into k[ksize]; exits when it does not fit. */
static void
key(char *k, size_t ksize, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(k, ksize, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= ksize) {
		fprintf(stderr, "rq_enqueue: a key name over %zu bytes\n",
		    ksize - 1);
		exit(2);
	}
}

static long long
redis_ms(redisContext *c)
{
	redisReply *r = redisCommand(c, "TIME");
	long long ms;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		fprintf(stderr, "rq_enqueue: TIME: %s\n", r == NULL ?
		    c->errstr : r->type == REDIS_REPLY_ERROR ? r->str :
		    "not two numbers");
		exit(1);
	}
	ms = atoll(r->element[0]->str) * 1000 +
	    atoll(r->element[1]->str) / 1000;
	freeReplyObject(r);
	return ms;
}

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An answer of ringq.create: queued, or rq_enqueue exits. */
static void
check(redisReply *r)
{
	struct gw_policy_verdict v;

	if (gw_policy_verdict_parse(r, &v) == -1 || v.rc != 0) {
		fprintf(stderr, "rq_enqueue: ringq.create answered %s\n",
		    r->type == REDIS_REPLY_ERROR ? r->str :
		    v.rc == 1 ? "a replay" : v.rc == -1 ? v.err.message :
		    "something else");
		exit(1);
	}
	freeReplyObject(r);
}

/* The answers to one batch of n; exits on an error. */
static void
answers(redisContext *c, long n)
{
	redisReply *r;

	while (n-- > 0) {
		if (redisGetReply(c, (void **)&r) != REDIS_OK) {
			fprintf(stderr, "rq_enqueue: %s\n", c->errstr);
			exit(1);
		}
		check(r);
	}
}

/* Sends what was appended; exits on an error. */
static void
flush(redisContext *c)
{
	int done = 0;

	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK) {
			fprintf(stderr, "rq_enqueue: %s\n", c->errstr);
			exit(1);
		}
}

/* The answers that came, waiting at most ms for some: how many. */
static long
answers_ready(redisContext *c, int ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	redisReply *r;
	long n = 0;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	if (redisBufferRead(c) != REDIS_OK) {
		fprintf(stderr, "rq_enqueue: %s\n", c->errstr);
		exit(1);
	}
	while (redisGetReplyFromReader(c, (void **)&r) == REDIS_OK &&
	    r != NULL) {
		check(r);
		n++;
	}
	return n;
}

int
main(int argc, char **argv)
{
	char kidem[128], kdnct[128], krate[128], kact[128], kjob[160],
	    kcalls[128], id[128], now[24];
	const char *av[32], *tenant, *to, *prefix;
	long jobs, batch, inflight, rate, sent = 0, answered = 0, i;
	long long t0, start;
	redisContext *c;
	int n, port;

	if (argc < 6 || argc > 9)
		usage();
	port = (int)number(argv[1], 1, 65535);
	jobs = number(argv[2], 1, 100000000);
	tenant = argv[3];
	to = argv[4];
	prefix = argv[5];
	batch = argc > 6 ? number(argv[6], 1, 1000000) : 1000;
	inflight = argc > 7 ? number(argv[7], 1, 1000) : 2;
	rate = argc > 8 ? number(argv[8], 0, 100000000) : 0;
	if ((c = redisConnect("127.0.0.1", port)) == NULL || c->err) {
		fprintf(stderr, "rq_enqueue: %s\n", c ? c->errstr : "no memory");
		return 1;
	}
	/* the keys of gw_policy_store_create, for a tenant without limits
	 * or business and a call without idempotency key */
	key(kidem, sizeof(kidem), "%s%s:-", RQ_KEY_IDEM, tenant);
	key(kdnct, sizeof(kdnct), "%s%s", RQ_KEY_DNC_TENANT, tenant);
	key(krate, sizeof(krate), "%s%s", RQ_KEY_RATE, tenant);
	key(kact, sizeof(kact), "%s%s", RQ_KEY_ACTIVE, tenant);
	key(kcalls, sizeof(kcalls), "%s%s", RQ_KEY_TENANT_CALLS, tenant);
	t0 = redis_ms(c);
	start = mono_ms();
	snprintf(now, sizeof(now), "%lld", t0);
	for (i = 0; i < jobs; i++) {
		/* paced: what is due by now, then the answers till the next
		 * 2 ms */
		while (rate > 0 && i >= (mono_ms() - start) * rate / 1000) {
			flush(c);
			answered += answers_ready(c, 2);
		}
		if (rate > 0)
			snprintf(now, sizeof(now), "%lld",
			    t0 + mono_ms() - start);
		key(id, sizeof(id), "%s%08lx", prefix, i);
		key(kjob, sizeof(kjob), "%s%s", RQ_KEY_JOB, id);
		n = 0;
		av[n++] = "ringq.create"; av[n++] = "9";
		av[n++] = kidem; av[n++] = kdnct; av[n++] = RQ_KEY_DNC_CUSTOMER;
		av[n++] = RQ_KEY_DNC_BUSINESS "-"; av[n++] = krate;
		av[n++] = kact; av[n++] = kjob; av[n++] = kcalls;
		av[n++] = RQ_KEY_DELAYED;
		av[n++] = ""; av[n++] = "0"; av[n++] = "0"; av[n++] = "0";
		av[n++] = id; av[n++] = "86400"; av[n++] = "0"; av[n++] = "0";
		av[n++] = RQ_KEY_JOB; av[n++] = now; av[n++] = now;
		av[n++] = tenant; av[n++] = to; av[n++] = "0";
		av[n++] = "say"; av[n++] = "bench";
		av[n++] = "priority"; av[n++] = "5";
		redisAppendCommandArgv(c, n, av, NULL);
		sent++;
		/* a batch is complete: flush it, and wait for the oldest
		 * when INFLIGHT are out */
		if (rate == 0 && (sent % batch == 0 || sent == jobs)) {
			flush(c);
			while ((sent - answered + batch - 1) / batch >=
			    inflight && answered < sent) {
				long k = sent - answered < batch ?
				    sent - answered : batch;

				answers(c, k);
				answered += k;
			}
		}
	}
	flush(c);
	answers(c, sent - answered);
	printf("t0_ms=%lld t1_ms=%lld\n", t0, redis_ms(c));
	redisFree(c);
	return 0;
}

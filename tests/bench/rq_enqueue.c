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
 * hex digits, a call id as the gateway makes them.  Prints "t0_ms=... t1_ms=...":
 * Redis's clock before the first write and after the last answer.
 * Exits 1 on any error reply.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

static long long
redis_ms(redisContext *c)
{
	redisReply *r = redisCommand(c, "TIME");
	long long ms;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
		fprintf(stderr, "rq_enqueue: TIME: %s\n", c->errstr);
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

/* An answer of ringq.create: "ok" (or a replay's); exits on another. */
static void
check(redisContext *c, redisReply *r)
{
	(void)c;
	if (r->type == REDIS_REPLY_ERROR ||
	    (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(r->element[0]->str, "ok") != 0)) {
		fprintf(stderr, "rq_enqueue: ringq.create answered %s\n",
		    r->type == REDIS_REPLY_ERROR ? r->str : r->element[0]->str);
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
		check(c, r);
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
		check(c, r);
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
	int n;

	if (argc < 6 || argc > 9) {
		fprintf(stderr, "usage: rq_enqueue PORT JOBS TENANT TO PREFIX "
		    "[BATCH [INFLIGHT [RATE]]]\n");
		return 2;
	}
	jobs = atol(argv[2]);
	tenant = argv[3];
	to = argv[4];
	prefix = argv[5];
	batch = argc > 6 ? atol(argv[6]) : 1000;
	inflight = argc > 7 ? atol(argv[7]) : 2;
	rate = argc > 8 ? atol(argv[8]) : 0;
	if (jobs < 1 || batch < 1 || inflight < 1 || rate < 0)
		return 2;
	if ((c = redisConnect("127.0.0.1", atoi(argv[1]))) == NULL ||
	    c->err) {
		fprintf(stderr, "rq_enqueue: %s\n", c ? c->errstr : "no memory");
		return 1;
	}
	snprintf(kidem, sizeof(kidem), "rq:idem:%s:-", tenant);
	snprintf(kdnct, sizeof(kdnct), "rq:dnc:tenant:%s", tenant);
	snprintf(krate, sizeof(krate), "rq:rate:%s", tenant);
	snprintf(kact, sizeof(kact), "rq:active:%s", tenant);
	snprintf(kcalls, sizeof(kcalls), "rq:calls:%s", tenant);
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
		snprintf(id, sizeof(id), "%s%08lx", prefix, i);
		snprintf(kjob, sizeof(kjob), "rq:job:%s", id);
		n = 0;
		av[n++] = "ringq.create"; av[n++] = "9";
		av[n++] = kidem; av[n++] = kdnct; av[n++] = "rq:dnc:customer";
		av[n++] = "rq:dnc:business:-"; av[n++] = krate; av[n++] = kact;
		av[n++] = kjob; av[n++] = kcalls; av[n++] = "rq:delayed";
		av[n++] = ""; av[n++] = "0"; av[n++] = "0"; av[n++] = "0";
		av[n++] = id; av[n++] = "86400"; av[n++] = "0"; av[n++] = "0";
		av[n++] = "rq:job:"; av[n++] = now; av[n++] = now;
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

/* The gateway's Redis glue: one hiredis async connection on the event loop,
 * reconnected every second when lost, and the two operations of the API
 * (create a job, read a job with its timeline), each one Lua script. */
#include <sys/queue.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "gateway.h"
#include "keys.h"
#include "log.h"

#define STORE_RETRY_MS	1000
/* hiredis 0.14 has no command timeout: a Redis that stops answering
 * (frozen, overloaded, a half-open TCP connection) would hold requests
 * forever.  Past this, the connection is dropped and made again. */
#define STORE_TIMEOUT_MS	5000

struct gw_store {
	struct event_base	*base;
	char			 host[RQ_ADDR_MAX];
	int			 port;
	redisAsyncContext	*ac;		/* NULL while disconnected */
	int			 connected;
	int			 stopping;
	int			 down_logged;	/* log an outage once */
	struct event		*retry;
	struct event		*watchdog;
	/* Sent and unanswered, oldest first (Redis answers in order). */
	TAILQ_HEAD(, store_op)	 pending;
};

/* One pending operation; freed by its reply callback, which hiredis runs
 * exactly once (with a NULL reply when the connection goes away). */
struct store_op {
	TAILQ_ENTRY(store_op)	 entry;
	struct gw_store		*st;
	uint64_t		 sent_ms;	/* monotonic */
	gw_store_done_cb	*done;
	gw_store_get_cb		*got;
	gw_store_reply_cb	*raw;
	void			*arg;
	char			 id[RQ_ID_LEN + 1];
};

static void	store_connect(struct gw_store *);

static void
store_schedule(struct gw_store *st)
{
	struct timeval tv = { STORE_RETRY_MS / 1000,
	    (STORE_RETRY_MS % 1000) * 1000 };

	if (!st->stopping)
		evtimer_add(st->retry, &tv);
}

static void
store_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	store_connect(arg);
}

static void
store_watchdog_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw_store *st = arg;
	struct store_op *op;
	redisAsyncContext *ac;

	if ((op = TAILQ_FIRST(&st->pending)) == NULL || st->ac == NULL ||
	    rq_mono_ms() - op->sent_ms < STORE_TIMEOUT_MS)
		return;
	log_warnx("redis: no answer from %s:%d for %d ms (call %s); "
	    "reconnecting", st->host, st->port, STORE_TIMEOUT_MS, op->id);
	/* Runs the pending callbacks with an error (and our disconnect
	 * callback); then connect again in a second. */
	ac = st->ac;
	st->ac = NULL;
	st->connected = 0;
	redisAsyncFree(ac);
	store_schedule(st);
}

static void
store_connect_cb(const redisAsyncContext *ac, int status)
{
	struct gw_store *st = ac->data;

	if (status != REDIS_OK) {
		/* hiredis frees ac after this callback. */
		if (!st->down_logged)
			log_warnx("redis: cannot connect to %s:%d: %s; "
			    "retrying every second", st->host, st->port,
			    ac->errstr);
		st->down_logged = 1;
		st->ac = NULL;
		st->connected = 0;
		store_schedule(st);
		return;
	}
	st->connected = 1;
	st->down_logged = 0;
	log_info("redis: connected to %s:%d", st->host, st->port);
}

static void
store_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct gw_store *st = ac->data;

	st->ac = NULL;
	st->connected = 0;
	if (st->stopping)
		return;
	log_warnx("redis: connection to %s:%d lost: %s; reconnecting",
	    st->host, st->port, status == REDIS_OK ? "closed" : ac->errstr);
	st->down_logged = 1;
	store_schedule(st);
}

static void
store_connect(struct gw_store *st)
{
	redisAsyncContext *ac;

	if (st->stopping || st->ac != NULL)
		return;
	ac = redisAsyncConnect(st->host, st->port);
	if (ac == NULL || ac->err) {
		if (!st->down_logged)
			log_warnx("redis: cannot connect to %s:%d: %s",
			    st->host, st->port, ac ? ac->errstr : "no memory");
		st->down_logged = 1;
		if (ac)
			redisAsyncFree(ac);
		store_schedule(st);
		return;
	}
	ac->data = st;
	if (redisLibeventAttach(ac, st->base) != REDIS_OK) {
		redisAsyncFree(ac);
		store_schedule(st);
		return;
	}
	redisAsyncSetConnectCallback(ac, store_connect_cb);
	redisAsyncSetDisconnectCallback(ac, store_disconnect_cb);
	st->ac = ac;
}

struct gw_store *
gw_store_new(struct event_base *base, const char *host, int port)
{
	struct timeval tv = { 1, 0 };
	struct gw_store *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->base = base;
	snprintf(st->host, sizeof(st->host), "%s", host);
	st->port = port;
	TAILQ_INIT(&st->pending);
	st->retry = evtimer_new(base, store_retry_cb, st);
	st->watchdog = event_new(base, -1, EV_PERSIST, store_watchdog_cb, st);
	if (st->retry == NULL || st->watchdog == NULL ||
	    event_add(st->watchdog, &tv) == -1) {
		if (st->retry)
			event_free(st->retry);
		if (st->watchdog)
			event_free(st->watchdog);
		free(st);
		return NULL;
	}
	store_connect(st);
	return st;
}

void
gw_store_close(struct gw_store *st)
{
	redisAsyncContext *ac;

	st->stopping = 1;
	st->connected = 0;
	evtimer_del(st->retry);
	event_del(st->watchdog);
	if ((ac = st->ac) != NULL) {
		st->ac = NULL;
		redisAsyncFree(ac);	/* runs pending callbacks with NULL */
	}
}

void
gw_store_free(struct gw_store *st)
{
	if (st == NULL)
		return;
	gw_store_close(st);
	event_free(st->retry);
	event_free(st->watchdog);
	free(st);
}

int
gw_store_connected(const struct gw_store *st)
{
	return st->connected && st->ac != NULL;
}

/*
 * Each operation is one EVAL of a small Lua script rather than a
 * MULTI/EXEC: a single command either is queued whole or not at all, so a
 * failure to queue (hiredis formatting, out of memory) can never leave a
 * MULTI open on this shared connection for the next request to join; it is
 * atomic in Redis and takes one round trip.  EVAL (not EVALSHA) spares the
 * NOSCRIPT dance after a Redis restart; Redis caches the compiled script.
 */

/*
 * KEYS: job, timeline, tenant calls, delayed.  ARGV: id, not_before_ms,
 * created_ms, the queued timeline entry, tenant, to, then the job's
 * field/value pairs.
 *
 * The job, its EVENT queued in rq:events (the outbox accounting reads)
 * and its place in rq:delayed are one script: a job is never queued
 * without its event, nor the reverse.  emit() sets the live status
 * (queued, rank 0).  Redis does not roll a script back: a write that
 * fails (a key of the wrong type) leaves the ones before it, so the event
 * comes after the tenant's list and rq:delayed comes last, and a failed
 * create is neither released to the scheduler nor, mostly, recorded.  The
 * timeline entry is written here too so that GET shows it at once;
 * accounting's mirror writes the same field again, harmlessly.
 */
static const char create_lua[] =
	RQ_LUA_EVENTS
	"redis.call('HSET', KEYS[1], unpack(ARGV, 7))\n"
	"redis.call('HSET', KEYS[2], '0:queued', ARGV[4])\n"
	"redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])\n"
	"emit(KEYS[1], { call_id = ARGV[1], attempt = 0, status = 'queued',"
	" ts_ms = tonumber(ARGV[3]), tenant = ARGV[5], to = ARGV[6] })\n"
	"redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])\n"
	"return 1\n";

/* KEYS: job, timeline.  Returns { job fields, timeline fields }. */
static const char get_lua[] =
	"return { redis.call('HGETALL', KEYS[1]),"
	" redis.call('HGETALL', KEYS[2]) }\n";

static void
store_create_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct store_op *op = privdata;
	redisReply *r = reply;
	int rc = 0;

	if (r == NULL) {
		/* The script may have run: we cannot know. */
		log_warnx("redis: call %s: connection lost before the job "
		    "was confirmed; it may or may not be stored", op->id);
		rc = -2;
	} else if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
		log_warnx("redis: call %s: storing the job failed: %s", op->id,
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		rc = -1;
	}
	TAILQ_REMOVE(&op->st->pending, op, entry);
	op->done(rc, op->arg);
	free(op);
}

/* Sends one command, op's callback to run with its answer. */
static int
store_send(struct gw_store *st, redisCallbackFn *fn, struct store_op *op,
    int argc, const char **argv)
{
	if (redisAsyncCommandArgv(st->ac, fn, op, argc, argv, NULL) !=
	    REDIS_OK)
		return -1;
	op->sent_ms = rq_mono_ms();
	TAILQ_INSERT_TAIL(&st->pending, op, entry);
	return 0;
}

int
gw_store_create(struct gw_store *st, const char *id,
    const struct rq_tenant *tenant, const struct gw_call *call,
    uint64_t created_ms, gw_store_done_cb *done, void *arg)
{
	char jobkey[64], tlkey[64], callskey[RQ_NAME_MAX + 16];
	char prio[8], nb[24], na[24], created[24], maxat[12], at[40];
	char rbusy[32], rnoans[32], rnet[32];
	const char *argv[64];
	struct store_op *op = NULL;
	char *event = NULL;
	json_t *ev = NULL;
	int n = 0;

	if (!gw_store_connected(st))
		return -1;
	snprintf(jobkey, sizeof(jobkey), "%s%s", RQ_KEY_JOB, id);
	snprintf(tlkey, sizeof(tlkey), "%s%s", RQ_KEY_TIMELINE, id);
	snprintf(callskey, sizeof(callskey), "%s%s", RQ_KEY_TENANT_CALLS,
	    tenant->name);
	snprintf(prio, sizeof(prio), "%d", call->priority);
	snprintf(nb, sizeof(nb), "%" PRIu64, call->not_before_ms);
	snprintf(na, sizeof(na), "%" PRIu64, call->not_after_ms);
	snprintf(created, sizeof(created), "%" PRIu64, created_ms);
	snprintf(maxat, sizeof(maxat), "%d", tenant->max_attempts);
	/* The tenant's retry policy travels with the job: the telserver's
	 * finish script (common/lifecycle.c) reads it, and a job keeps the
	 * rules it was accepted under. */
	snprintf(rbusy, sizeof(rbusy), "%d:%lld", tenant->retry_busy_attempts,
	    (long long)tenant->retry_busy_delay_s * 1000);
	snprintf(rnoans, sizeof(rnoans), "%d:%lld",
	    tenant->retry_no_answer_attempts,
	    (long long)tenant->retry_no_answer_delay_s * 1000);
	snprintf(rnet, sizeof(rnet), "%d:%lld", tenant->retry_network_attempts,
	    (long long)tenant->retry_network_delay_s * 1000);
	rq_rfc3339_format(created_ms, at, sizeof(at));
	ev = json_pack("{s:s, s:i, s:s, s:I}", "status", "queued",
	    "attempt", 0, "at", at, "ts_ms", (json_int_t)created_ms);
	if (ev == NULL || (event = json_dumps(ev, JSON_COMPACT |
	    JSON_PRESERVE_ORDER)) == NULL ||
	    (op = calloc(1, sizeof(*op))) == NULL)
		goto fail;
	op->st = st;
	op->done = done;
	op->arg = arg;
	snprintf(op->id, sizeof(op->id), "%s", id);

#define ARG(s)	(argv[n++] = (s))
	ARG("EVAL"); ARG(create_lua); ARG("4");
	ARG(jobkey); ARG(tlkey); ARG(callskey); ARG(RQ_KEY_DELAYED);
	ARG(id); ARG(nb); ARG(created); ARG(event);
	ARG(tenant->name); ARG(call->to);
	ARG("id"); ARG(id);
	ARG("tenant"); ARG(tenant->name);
	ARG("to"); ARG(call->to);
	ARG("say"); ARG(call->say);
	if (call->caller_id) { ARG("caller_id"); ARG(call->caller_id); }
	ARG("priority"); ARG(prio);
	ARG("not_before_ms"); ARG(nb);
	if (call->not_after_ms) { ARG("not_after_ms"); ARG(na); }
	/* for PATCH, which runs the policy engine again */
	if (call->business) { ARG("business"); ARG(call->business); }
	if (call->time_zone) { ARG("time_zone"); ARG(call->time_zone); }
	if (call->callback_url) {
		ARG("callback_url"); ARG(call->callback_url);
	}
	if (call->metadata) { ARG("metadata"); ARG(call->metadata); }
	if (call->policy[0]) { ARG("policy"); ARG(call->policy); }
	ARG("created_ms"); ARG(created);
	ARG("max_attempts"); ARG(maxat);
	ARG("attempts"); ARG("0");
	ARG("retry_busy"); ARG(rbusy);
	ARG("retry_no_answer"); ARG(rnoans);
	ARG("retry_network"); ARG(rnet);
#undef ARG

	if (store_send(st, store_create_cb, op, n, argv) == -1) {
		log_warnx("redis: call %s: cannot send the job", id);
		goto fail;
	}
	json_decref(ev);
	free(event);
	return 0;
fail:
	json_decref(ev);
	free(event);
	free(op);
	return -1;
}

/* Points into a flat array reply of strings; -1 if it is not one. */
static int
flat_strings(const redisReply *r, const char ***out, size_t *n)
{
	size_t i;

	*out = NULL;
	*n = 0;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
		return -1;
	if (r->elements == 0)
		return 0;
	if ((*out = calloc(r->elements, sizeof(**out))) == NULL)
		return -1;
	for (i = 0; i < r->elements; i++) {
		if (r->element[i] == NULL ||
		    r->element[i]->type != REDIS_REPLY_STRING) {
			free(*out);
			*out = NULL;
			return -1;
		}
		(*out)[i] = r->element[i]->str;
	}
	*n = r->elements;
	return 0;
}

int
gw_store_parse_get(const redisReply *r, const char ***job, size_t *njob,
    const char ***tl, size_t *ntl)
{
	*job = *tl = NULL;
	*njob = *ntl = 0;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return -1;
	if (flat_strings(r->element[0], job, njob) == -1)
		return -1;
	if (flat_strings(r->element[1], tl, ntl) == -1) {
		free(*job);
		*job = NULL;
		*njob = 0;
		return -1;
	}
	return 0;
}

static void
store_get_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct store_op *op = privdata;
	redisReply *r = reply;
	const char **job, **tl;
	size_t njob, ntl;

	TAILQ_REMOVE(&op->st->pending, op, entry);
	if (gw_store_parse_get(r, &job, &njob, &tl, &ntl) == -1) {
		log_warnx("redis: call %s: reading the job failed: %s", op->id,
		    r == NULL ? "connection lost" :
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		op->got(-1, NULL, 0, NULL, 0, op->arg);
	} else {
		op->got(0, job, njob, tl, ntl, op->arg);
		free(job);
		free(tl);
	}
	free(op);
}

int
gw_store_get(struct gw_store *st, const char *id, gw_store_get_cb *got,
    void *arg)
{
	char jobkey[64], tlkey[64];
	const char *argv[] = { "EVAL", get_lua, "2", jobkey, tlkey };
	struct store_op *op;

	if (!gw_store_connected(st))
		return -1;
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	op->st = st;
	op->got = got;
	op->arg = arg;
	snprintf(op->id, sizeof(op->id), "%s", id);
	snprintf(jobkey, sizeof(jobkey), "%s%s", RQ_KEY_JOB, id);
	snprintf(tlkey, sizeof(tlkey), "%s%s", RQ_KEY_TIMELINE, id);
	if (store_send(st, store_get_cb, op, 5, argv) == -1) {
		log_warnx("redis: call %s: cannot send the query", id);
		free(op);
		return -1;
	}
	return 0;
}

static void
store_raw_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct store_op *op = privdata;

	TAILQ_REMOVE(&op->st->pending, op, entry);
	op->raw(reply, op->arg);
	free(op);
}

/* For the modules with scripts of their own (store_calls.c, ...): the same
 * connection, reconnection and 5 s watchdog as the operations above. */
int
gw_store_command(struct gw_store *st, const char *id, int argc,
    const char **argv, gw_store_reply_cb *cb, void *arg)
{
	struct store_op *op;

	if (!gw_store_connected(st))
		return -1;
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	op->st = st;
	op->raw = cb;
	op->arg = arg;
	snprintf(op->id, sizeof(op->id), "%s", id ? id : "-");
	if (store_send(st, store_raw_cb, op, argc, argv) == -1) {
		log_warnx("redis: call %s: cannot send the command", op->id);
		free(op);
		return -1;
	}
	return 0;
}

/* Redis side of accounting: after COMMIT, each event goes into the call's
 * timeline (an entry in rq:job:<id>) and, when it outranks the job's
 * status, into its status, in one Lua script per event so the hash never
 * holds a half-written status.
 * That is for the telserver's ZeroMQ events (ringing, answered): an
 * rq:events entry was mirrored by the script that wrote it (emit() in
 * common/keys.h), and comes here only to queue its status callback. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "accounting.h"
#include "keys.h"
#include "log.h"
#include "util.h"

/*
 * KEYS: job, callbacks, the call's callback queue, its old sent set
 * (rq:cbsent:, read only: ACCT_CB_ENQUEUE_LUA).
 * ARGV: timeline field, event JSON, rank, status, reason, sip_code,
 * updated_ms ('' = absent), callback body, now ms, call id, the
 * rq:active: prefix.  The job's fields are read once (HMGET).  A job that is
 * not (or no longer) in Redis gets no timeline either: returns 0; else 1,
 * or 2 when the status moved.  A job with a callback_url gets the event's
 * status callback queued once (callbacks.c delivers it).  A terminal
 * status frees the call's concurrency slot (ZREM from rq:active:<tenant>)
 * and gives the job its time in rq:ended (ttl_ms, common/keys.h).
 * allow-oom: an entry is acknowledged, and the stream trimmed, only once
 * its callback is queued here; refused while Redis is full (a long
 * PostgreSQL outage fills it with rq:events), the entries would stay and
 * Redis full for good.  Its writes are a few fields a call.
 */
static const char mirror_lua[] =
	"#!lua flags=allow-oom\n"
	RQ_LUA_CALL_TTL
	RQ_LUA_IS_TERMINAL
	"local j = redis.call('HMGET', KEYS[1], 'status_rank', 'tenant', 'id',"
	" 'callback_url', 'metadata', 'ttl_ms', 'reason', 'sip_code')\n"
	"if not (j[1] or j[2] or j[3]) and redis.call('EXISTS', KEYS[1]) == 0"
	" then return 0 end\n"
	"local url, md, tenant = j[4], j[5], j[2]\n"
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
	ACCT_CB_ENQUEUE_LUA
	"if tonumber(ARGV[3]) <= (tonumber(j[1]) or -1) then return 1 end\n"
	"local set = { 'status', ARGV[4], 'updated_ms', ARGV[7],"
	" 'status_rank', ARGV[3], nil, nil, nil, nil }\n"
	"local n, del = 6, {}\n"
	"if ARGV[5] ~= '' then set[7] = 'reason'; set[8] = ARGV[5]; n = 8\n"
	"elseif j[7] then del[1] = 'reason' end\n"
	"if ARGV[6] ~= '' then\n"
	"  set[n + 1] = 'sip_code'; set[n + 2] = ARGV[6]; n = n + 2\n"
	"elseif j[8] then del[#del + 1] = 'sip_code' end\n"
	"redis.call('HSET', KEYS[1], unpack(set, 1, n))\n"
	"if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end\n"
	"if is_terminal(tonumber(ARGV[3])) then\n"
	"  if tenant then redis.call('ZREM', ARGV[11] .. tenant, ARGV[10]) end\n"
	"  local t = redis.call('TIME')\n"
	"  local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) +\n"
	"      tonumber(call_ttl(j[6]))\n"
	"  redis.call('ZADD', '" RQ_KEY_ENDED "', string.format('%d', at),"
	" ARGV[10])\n"
	"end\n"
	"return 2\n";

/*
 * The connection, its reconnection and the script's SHA come from
 * common/redis_sync.c.  The calls do not go through rq_redis_eval, one
 * round trip per event: a batch holds up to ACCT_BATCH_MAX events, so they
 * are pipelined (EVALSHA on the shared link's context) and their replies read
 * in order.  Only an event whose reply is NOSCRIPT (Redis restarted or its
 * scripts were flushed) goes through rq_redis_eval, which falls back to EVAL
 * and so puts the script back in Redis's cache for the next batch.
 */

void
acct_mirror_init(struct acct_mirror *mr, const char *host, int port)
{
	memset(mr, 0, sizeof(*mr));
	mr->script.name = "mirror";
	mr->script.src = mirror_lua;
	mr->scripts[0] = &mr->script;
	mr->ack.name = "rq:events acknowledgement";
	mr->ack.src = acct_ack_lua;
	mr->scripts[1] = &mr->ack;
	rq_redis_init(&mr->r, host, port, mr->scripts, 2);
}

int
acct_mirror_ready(struct acct_mirror *mr)
{
	return rq_redis_ready(&mr->r);
}

void
acct_mirror_close(struct acct_mirror *mr)
{
	rq_redis_close(&mr->r);
}

/* The script's keys and arguments for one event. */
struct mirror_args {
	char		 job[64], field[48], rank[16], sip[24];
	char		 updated[24], cbq[64], cbsent[64], now[24];
	char		*json, *cb;
	const char	*argv[3 + 15];	/* EVALSHA sha 4, then these */
};

static int
mirror_args(struct mirror_args *a, const struct acct_event *ev)
{
	const struct rq_msg *m = &ev->m;

	if ((a->json = acct_event_json(m)) == NULL ||
	    (a->cb = acct_cb_body(m)) == NULL) {
		log_warnx("%s: cannot build the timeline entry", m->call_id);
		free(a->json);
		return -1;
	}
	snprintf(a->cbq, sizeof(a->cbq), "%s%s", RQ_KEY_CBQ, m->call_id);
	snprintf(a->cbsent, sizeof(a->cbsent), "%s%s", RQ_KEY_CBSENT,
	    m->call_id);
	snprintf(a->now, sizeof(a->now), "%" PRIu64, rq_now_ms());
	snprintf(a->job, sizeof(a->job), "%s%s", RQ_KEY_JOB, m->call_id);
	snprintf(a->field, sizeof(a->field), "%" PRIu64 ":%s", m->attempt,
	    m->status);
	snprintf(a->rank, sizeof(a->rank), "%d", ev->rank);
	snprintf(a->updated, sizeof(a->updated), "%" PRIu64, m->ts_ms);
	if (rq_msg_has(m, sip_code))
		snprintf(a->sip, sizeof(a->sip), "%" PRIu64, m->sip_code);
	else
		a->sip[0] = '\0';
	a->argv[3] = a->job;
	a->argv[4] = RQ_KEY_CALLBACKS;
	a->argv[5] = a->cbq;
	a->argv[6] = a->cbsent;
	a->argv[7] = a->field;
	a->argv[8] = a->json;
	a->argv[9] = a->rank;
	a->argv[10] = m->status;
	a->argv[11] = m->reason ? m->reason : "";
	a->argv[12] = a->sip;
	a->argv[13] = a->updated;
	a->argv[14] = a->cb;
	a->argv[15] = a->now;
	a->argv[16] = m->call_id;
	a->argv[17] = RQ_KEY_ACTIVE;
	return 0;
}

static int
append(struct acct_mirror *mr, const struct acct_event *ev)
{
	struct mirror_args a;
	int rc;

	if (mirror_args(&a, ev) == -1)
		return -1;
	a.argv[0] = "EVALSHA";
	a.argv[1] = mr->script.sha;
	a.argv[2] = "4";
	rc = redisAppendCommandArgv(mr->r.c, 18, a.argv, NULL);
	free(a.json);
	free(a.cb);
	return rc == REDIS_OK ? 0 : -1;
}

/* The script's answer: 1 mirrored (or never will be: do not hold the
 * event back), 0 not mirrored, retry later. */
static int
answer(const struct acct_event *ev, const redisReply *r)
{
	if (r->type == REDIS_REPLY_ERROR) {
		log_warnx("%s: redis mirror: %s", ev->m.call_id, r->str);
		/* WRONGTYPE: retrying cannot help, PostgreSQL has it. */
		return strncmp(r->str, "WRONGTYPE", 9) == 0;
	}
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
		log_debug("%s: no job in redis, timeline not mirrored",
		    ev->m.call_id);
	return 1;
}

/* Runs one event's script through the shared link (EVAL on NOSCRIPT).
 * Returns 1 mirrored, 0 not, -1 connection lost. */
static int
eval_one(struct acct_mirror *mr, const struct acct_event *ev)
{
	struct mirror_args a;
	redisReply *r;
	int rc;

	if (mirror_args(&a, ev) == -1)
		return 0;
	r = rq_redis_eval(&mr->r, &mr->script, 4, 15, a.argv + 3);
	free(a.json);
	free(a.cb);
	if (r == NULL)
		return mr->r.c == NULL ? -1 : 0;	/* lost, or logged */
	rc = answer(ev, r);
	freeReplyObject(r);
	return rc;
}

/* After an I/O error on the pipeline: close, reconnect a second later. */
void
acct_mirror_lost(struct acct_mirror *mr)
{
	log_warnx("redis %s:%d: %s", mr->r.host, mr->r.port,
	    rq_redis_errstr(mr->r.c));
	rq_redis_close(&mr->r);
	mr->r.next_try_ms = rq_mono_ms() + ACCT_RETRY_MS;
	mr->r.down_logged = 1;
}

int
acct_mirror(struct acct_mirror *mr, struct acct_event *evs, size_t n)
{
	redisReply *r;
	size_t i, nsent;
	int noscript = 0, rc;

	for (i = 0; i < n; i++)
		evs[i].mirrored = !evs[i].mirror;
	if (rq_redis_ready(&mr->r) == -1)
		return -1;
	/* evs[0 .. nsent) have their command in the pipeline; should one
	 * not be appended (out of memory), the rest wait for a resend. */
	for (nsent = 0; nsent < n; nsent++)
		if (evs[nsent].stored && evs[nsent].mirror &&
		    append(mr, &evs[nsent]) == -1)
			break;
	for (i = 0; i < nsent; i++) {
		if (!evs[i].stored || !evs[i].mirror)
			continue;
		r = NULL;
		if (redisGetReply(mr->r.c, (void **)&r) != REDIS_OK ||
		    r == NULL) {
			acct_mirror_lost(mr);
			return -1;
		}
		if (r->type == REDIS_REPLY_ERROR &&
		    strncmp(r->str, "NOSCRIPT", 8) == 0)
			noscript = 1;	/* left unmirrored, redone below */
		else
			evs[i].mirrored = answer(&evs[i], r);
		freeReplyObject(r);
	}
	if (!noscript)
		return 0;
	/* The script is idempotent: running it again for an event whose
	 * first answer was some other error is harmless. */
	for (i = 0; i < nsent; i++) {
		if (!evs[i].stored || evs[i].mirrored)
			continue;
		if ((rc = eval_one(mr, &evs[i])) == -1)
			return -1;
		evs[i].mirrored = rc;
	}
	return 0;
}

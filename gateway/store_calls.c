/* The Redis side of DELETE and PATCH /v1/calls/{id} and GET /v1/calls:
 * one Lua script each, on the gateway's store connection
 * (gw_store_command). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "gateway.h"
#include "keys.h"
#include "log.h"
#include "status.h"

/*
 * KEYS: job, its legacy timeline (read only: gw_store_parse_get), delayed,
 * ready, the tenant's active set, inflight.
 * ARGV: id, tenant, now_ms, reason, the timeline entry with %d for the
 * attempt.
 *
 * A job is cancelable while it waits in rq:delayed, rq:ready or rq:hours
 * (for its first attempt or a retry), and even while a dispatcher holds
 * its lease in rq:inflight: a telserver dials only after its claim took the id out
 * of rq:inflight (common/lifecycle.h), so a lease removed here can never
 * be claimed, nor requeued; that attempt, never dialled, is given back.
 * Removing it there, in the same script that
 * marks it canceled and appends EVENT canceled to rq:events, is what makes
 * the cancel safe: no dispatcher can take it afterwards, and accounting
 * gets the event even if the gateway dies right after.  emit() moves the
 * live status and frees the concurrency slot (rq:active:, KEYS[5]); the
 * timeline entry is written here too so the answer and the next GET show
 * it at once.  The attempt is the job's current one (0 unless a
 * dispatched attempt was requeued or retried), so that its rank outranks
 * every event the job has had.
 *
 * Returns { 0 } not found, { 2 } terminal, { 3 } started, or
 * { 1, attempt, { job pairs, timeline pairs } }.
 */
static const char cancel_lua[] =
	RQ_LUA_EVENTS
	RQ_LUA_RUN_EVENTS
	"local j = redis.call('HMGET', KEYS[1], 'tenant', 'status_rank',"
	" 'attempts', 'to')\n"
	"if j[1] ~= ARGV[2] then return { 0 } end\n"
	"local rank = tonumber(j[2]) or 0\n"
	"if is_terminal(rank) then return { 2 } end\n"
	"local a = tonumber(j[3]) or 0\n"
	"if redis.call('ZREM', KEYS[6], ARGV[1]) == 1 then\n"
	"  if a > 0 then\n"
	"    a = redis.call('HINCRBY', KEYS[1], 'attempts', -1)\n"
	"  end\n"
	"elseif redis.call('ZREM', KEYS[3], ARGV[1]) +"
	" redis.call('ZREM', KEYS[4], ARGV[1]) +"
	" redis.call('ZREM', '" RQ_KEY_HOURS "', ARGV[1]) == 0 then\n"
	"  return { 3 }\n"
	"end\n"
	"if a < math.floor(rank / 16) then a = math.floor(rank / 16) end\n"
	"a = math.floor(a)\n"
	"emit(KEYS[1], { call_id = ARGV[1], attempt = a, status = 'canceled',"
	" ts_ms = tonumber(ARGV[3]), tenant = ARGV[2], to = j[4],"
	" reason = ARGV[4] })\n"
	"redis.call('HSET', KEYS[1], a .. ':canceled',"
	" string.format(ARGV[5], a))\n"
	"return { 1, a, " GW_LUA_CALL_HASHES " }\n";

/*
 * KEYS: job, its legacy timeline (read only), delayed, ready, the
 * tenant's active set.  ARGV:
 * id, tenant, now_ms, new
 * not_before_ms ('' = keep), new priority ('' = keep), new policy field
 * ('' = keep), and with a new not_before its hours and hours_until_ms
 * ('' = none: the fields go).
 *
 * Like cancel, only a job waiting in rq:delayed, rq:ready or rq:hours may
 * change, and the check and the change are one script, so a dispatcher
 * cannot take it half-changed.  One in rq:hours (its hours closed) with
 * only a new priority stays there: the scheduler plans it with that
 * priority.  Where the others go:
 *   - waiting in rq:delayed, or due in the future: rq:delayed at its due
 *     time, and the scheduler releases it (with EVENT scheduled for a
 *     first attempt) as for any job;
 *   - in rq:ready and still due: rq:ready with the score of its new
 *     priority (RQ_LUA_READY_SCORE), and a wake-up for idle dispatchers.
 * The due time of a job in rq:ready is its score plus its old priority's
 * ageing credit; a new not_before that is already past leaves a job in
 * rq:ready its due time, and so its place (docs/api.md).  A call's slot
 * in rq:active: (max_concurrent, scored by due time: policy_store.c)
 * moves with a new not_before.
 *
 * Returns { 0 } not found, { 2 } terminal, { 3 } started, { 4 } the new
 * not_before is not before not_after, or { 1, { job pairs, timeline
 * pairs } }.
 */
static const char patch_lua[] =
	RQ_LUA_READY_SCORE
	RQ_LUA_EVENTS
	RQ_LUA_RUN_EVENTS
	"local j = redis.call('HMGET', KEYS[1], 'tenant', 'status_rank',"
	" 'priority', 'not_after_ms')\n"
	"if j[1] ~= ARGV[2] then return { 0 } end\n"
	"if is_terminal(tonumber(j[2]) or 0) then return { 2 } end\n"
	"local ds = redis.call('ZSCORE', KEYS[3], ARGV[1])\n"
	"local rs = redis.call('ZSCORE', KEYS[4], ARGV[1])\n"
	"local hs = not ds and not rs and"
	" redis.call('ZSCORE', '" RQ_KEY_HOURS "', ARGV[1])\n"
	"if not (ds or rs or hs) then return { 3 } end\n"
	"if hs and ARGV[4] == '' then\n"
	"  if ARGV[5] ~= '' then\n"
	"    redis.call('HSET', KEYS[1], 'priority', ARGV[5])\n"
	"  end\n"
	"  return { 1, " GW_LUA_CALL_HASHES " }\n"
	"end\n"
	"local due\n"
	"if rs and ARGV[4] ~= '' and tonumber(ARGV[4]) <= tonumber(ARGV[3])"
	" then\n"
	"  ARGV[4], ARGV[6] = '', ''\n"
	"end\n"
	"if ARGV[4] ~= '' then\n"
	"  due = tonumber(ARGV[4])\n"
	"  local na = tonumber(j[4])\n"
	"  if na and na > 0 and due >= na then return { 4 } end\n"
	"elseif ds then\n"
	"  due = math.floor(tonumber(ds) + 0.5)\n"
	"else\n"
	"  due = tonumber(rs) + prio_of(j[3]) * " RQ_STR(RQ_PRIORITY_STEP_MS)
	"\n"
	"end\n"
	"if ARGV[5] ~= '' then\n"
	"  redis.call('HSET', KEYS[1], 'priority', ARGV[5])\n"
	"end\n"
	"if ARGV[4] ~= '' then\n"
	"  redis.call('HSET', KEYS[1], 'not_before_ms', ARGV[4])\n"
	"  if ARGV[6] ~= '' then\n"
	"    redis.call('HSET', KEYS[1], 'policy', ARGV[6])\n"
	"  end\n"
	"  if ARGV[7] ~= '' then\n"
	"    redis.call('HSET', KEYS[1], 'hours', ARGV[7], 'hours_until_ms',"
	" ARGV[8])\n"
	"  else\n"
	"    redis.call('HDEL', KEYS[1], 'hours', 'hours_until_ms')\n"
	"  end\n"
	"  redis.call('ZADD', KEYS[5], 'XX', ARGV[4], ARGV[1])\n"
	"  if hs then redis.call('ZREM', '" RQ_KEY_HOURS "', ARGV[1]) end\n"
	"end\n"
	"if ds or due > tonumber(ARGV[3]) then\n"
	"  redis.call('ZREM', KEYS[4], ARGV[1])\n"
	"  redis.call('ZADD', KEYS[3], delayed_of(ARGV[5] ~= '' and ARGV[5] or"
	" j[3], due), ARGV[1])\n"
	"else\n"
	"  redis.call('ZADD', KEYS[4], score(KEYS[1], due), ARGV[1])\n"
	"  redis.call('PUBLISH', '" RQ_CHANNEL_WAKE "', '1')\n"
	"end\n"
	"return { 1, " GW_LUA_CALL_HASHES " }\n";

/*
 * KEYS: the tenant's calls.  ARGV: max score ('+inf' or a cursor's ms),
 * cursor id ('' = none), min score, limit, status ('' = any), tenant, job
 * key prefix, scan budget.
 *
 * Newest first.  Ids with the cursor's score come in reverse byte order
 * (ZREVRANGEBYSCORE), so "below the cursor" is a lower score, or the same
 * score and a smaller id.  A status filter may have to look at many calls
 * to fill a page: at most `budget` ids are looked at per request, and a
 * page cut short by the budget still gives a cursor.
 *
 * Returns { next ms or false, next id or false, { id, status, to,
 * priority, not_before_ms, created_ms, updated_ms, attempts, reason,
 * sip_code, direction } ... }.
 */
static const char list_lua[] =
	"local max, cid, min = ARGV[1], ARGV[2], ARGV[3]\n"
	"local limit, want, budget = tonumber(ARGV[4]), ARGV[5],"
	" tonumber(ARGV[8])\n"
	"local out = { false, false }\n"
	"local n, seen, offset = 0, 0, 0\n"
	"local maxn = tonumber(max)\n"
	"while true do\n"
	"  local page = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, min,"
	" 'WITHSCORES', 'LIMIT', offset, 100)\n"
	"  if #page == 0 then return { false, false, unpack(out, 3) } end\n"
	"  offset = offset + #page / 2\n"
	"  for i = 1, #page, 2 do\n"
	"    local id, sc = page[i], page[i + 1]\n"
	"    if cid == '' or tonumber(sc) ~= maxn or id < cid then\n"
	"      if n == limit or seen == budget then\n"
	"        return out\n"
	"      end\n"
	"      seen = seen + 1\n"
	"      local j = redis.call('HMGET', ARGV[7] .. id, 'tenant', 'status',"
	" 'to', 'priority', 'not_before_ms', 'created_ms', 'updated_ms',"
	" 'attempts', 'reason', 'sip_code', 'direction')\n"
	"      if j[1] == ARGV[6] and (want == '' or j[2] == want) then\n"
	"        n = n + 1\n"
	"        out[#out + 1] = { id, j[2], j[3], j[4], j[5], j[6], j[7],"
	" j[8], j[9], j[10], j[11] }\n"
	"      end\n"
	"      out[1], out[2] = sc, id\n"
	"    end\n"
	"  end\n"
	"end\n";

/* One pending request; freed by its reply callback. */
struct calls_op {
	gw_store_cancel_cb	*cancel;
	gw_store_patch_cb	*patch;
	gw_store_list_cb	*list;
	void			*arg;
	char			 id[RQ_ID_LEN + 1];
};

int
gw_cancel_parse(const redisReply *r, struct gw_cancel_result *res)
{
	const redisReply *e;

	memset(res, 0, sizeof(*res));
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER)
		return -1;
	switch (r->element[0]->integer) {
	case 0:
		res->outcome = GW_CANCEL_NOT_FOUND;
		return 0;
	case 2:
		res->outcome = GW_CANCEL_ENDED;
		return 0;
	case 3:
		res->outcome = GW_CANCEL_STARTED;
		return 0;
	case 1:
		break;
	default:
		return -1;
	}
	if (r->elements != 3 || (e = r->element[1])->type !=
	    REDIS_REPLY_INTEGER || e->integer < 0)
		return -1;
	res->outcome = GW_CANCEL_DONE;
	res->attempt = (uint64_t)e->integer;
	if (gw_store_parse_get(r->element[2], (const char ***)&res->job,
	    &res->njob, (const char ***)&res->timeline,
	    &res->ntimeline) == -1 || res->njob == 0)
		return -1;
	return 0;
}

static void
cancel_cb(redisReply *r, void *arg)
{
	struct calls_op *op = arg;
	struct gw_cancel_result res;

	if (gw_cancel_parse(r, &res) == -1) {
		log_warnx("redis: call %s: cancel failed: %s", op->id,
		    r == NULL ? "connection lost" :
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		free((void *)res.job);
		free((void *)res.timeline);
		memset(&res, 0, sizeof(res));
		/* (no reply: the script may have run, whole) */
		res.rc = r == NULL ? -2 : -1;
	}
	op->cancel(&res, op->arg);
	free((void *)res.job);
	free((void *)res.timeline);
	free(op);
}

int
gw_store_cancel(struct gw_store *st, const char *id, const char *tenant,
    uint64_t now_ms, gw_store_cancel_cb *cb, void *arg)
{
	char jobkey[64], tlkey[64], now[24], at[40], entry[256];
	char active[RQ_NAME_MAX + 16];
	const char *argv[] = { "EVAL", cancel_lua, "6", jobkey, tlkey,
	    RQ_KEY_DELAYED, RQ_KEY_READY, active, RQ_KEY_INFLIGHT, id, tenant,
	    now, GW_CANCEL_REASON, entry };
	struct calls_op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	op->cancel = cb;
	op->arg = arg;
	snprintf(op->id, sizeof(op->id), "%s", id);
	snprintf(jobkey, sizeof(jobkey), "%s%s", RQ_KEY_JOB, id);
	snprintf(tlkey, sizeof(tlkey), "%s%s", RQ_KEY_TIMELINE, id);
	/* a canceled call no longer counts for max_concurrent (policy.c) */
	snprintf(active, sizeof(active), "%s%s", RQ_KEY_ACTIVE, tenant);
	snprintf(now, sizeof(now), "%" PRIu64, now_ms);
	rq_rfc3339_format(now_ms, at, sizeof(at));
	/* The timeline entry of accounting's acct_event_json, with %d left
	 * for the script's attempt number. */
	snprintf(entry, sizeof(entry), "{\"status\":\"canceled\","
	    "\"attempt\":%%d,\"at\":\"%s\",\"ts_ms\":%" PRIu64 ","
	    "\"reason\":\"%s\"}", at, now_ms, GW_CANCEL_REASON);
	if (gw_store_command(st, id, sizeof(argv) / sizeof(argv[0]), argv,
	    cancel_cb, op) == -1) {
		free(op);
		return -1;
	}
	return 0;
}

int
gw_patch_result_parse(const redisReply *r, struct gw_patch_result *res)
{
	memset(res, 0, sizeof(*res));
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER)
		return -1;
	switch (r->element[0]->integer) {
	case 0:
		res->outcome = GW_PATCH_NOT_FOUND;
		return 0;
	case 2:
		res->outcome = GW_PATCH_ENDED;
		return 0;
	case 3:
		res->outcome = GW_PATCH_STARTED;
		return 0;
	case 4:
		res->outcome = GW_PATCH_NOT_AFTER;
		return 0;
	case 1:
		break;
	default:
		return -1;
	}
	if (r->elements != 2)
		return -1;
	res->outcome = GW_PATCH_DONE;
	if (gw_store_parse_get(r->element[1], (const char ***)&res->job,
	    &res->njob, (const char ***)&res->timeline,
	    &res->ntimeline) == -1 || res->njob == 0)
		return -1;
	return 0;
}

static void
patch_cb(redisReply *r, void *arg)
{
	struct calls_op *op = arg;
	struct gw_patch_result res;

	if (gw_patch_result_parse(r, &res) == -1) {
		log_warnx("redis: call %s: change failed: %s", op->id,
		    r == NULL ? "connection lost" :
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		free((void *)res.job);
		free((void *)res.timeline);
		memset(&res, 0, sizeof(res));
		res.rc = r == NULL ? -2 : -1;
	}
	op->patch(&res, op->arg);
	free((void *)res.job);
	free((void *)res.timeline);
	free(op);
}

int
gw_store_patch(struct gw_store *st, const char *id, const char *tenant,
    const struct gw_patch *p, uint64_t now_ms, gw_store_patch_cb *cb,
    void *arg)
{
	char jobkey[64], tlkey[64], now[24], nb[24] = "", prio[8] = "";
	char active[RQ_NAME_MAX + 16], until[24] = "";
	const char *argv[] = { "EVAL", patch_lua, "5", jobkey, tlkey,
	    RQ_KEY_DELAYED, RQ_KEY_READY, active, id, tenant, now, nb, prio,
	    p->has_not_before ? p->policy : "",
	    p->has_not_before ? p->hours : "", until };
	struct calls_op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	op->patch = cb;
	op->arg = arg;
	snprintf(op->id, sizeof(op->id), "%s", id);
	snprintf(jobkey, sizeof(jobkey), "%s%s", RQ_KEY_JOB, id);
	snprintf(tlkey, sizeof(tlkey), "%s%s", RQ_KEY_TIMELINE, id);
	snprintf(active, sizeof(active), "%s%s", RQ_KEY_ACTIVE, tenant);
	snprintf(now, sizeof(now), "%" PRIu64, now_ms);
	if (p->has_not_before)
		snprintf(nb, sizeof(nb), "%" PRIu64, p->not_before_ms);
	if (p->has_not_before && p->hours[0] != '\0')
		snprintf(until, sizeof(until), "%" PRIu64, p->hours_until_ms);
	if (p->has_priority)
		snprintf(prio, sizeof(prio), "%d", p->priority);
	if (gw_store_command(st, id, sizeof(argv) / sizeof(argv[0]), argv,
	    patch_cb, op) == -1) {
		free(op);
		return -1;
	}
	return 0;
}

/* A string element, or NULL for nil (an absent field). */
static const char *
elem_str(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING ? r->str : NULL;
}

/* A decimal field as a JSON integer, or NULL. */
static json_t *
num(const char *s)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return NULL;
	v = strtoll(s, &end, 10);
	return *end == '\0' ? json_integer(v) : NULL;
}

static json_t *
time_of(const char *ms)
{
	char *end, t[40];
	unsigned long long v;

	if (ms == NULL || *ms == '\0')
		return NULL;
	v = strtoull(ms, &end, 10);
	if (*end != '\0')
		return NULL;
	rq_rfc3339_format(v, t, sizeof(t));
	return json_string(t);
}

/* One call's summary from { id, status, to, priority, not_before_ms,
 * created_ms, updated_ms, attempts, reason, sip_code, direction }. */
static json_t *
summary(const redisReply *r)
{
	const char *f[11];
	json_t *o, *v;
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 11)
		return NULL;
	for (i = 0; i < 11; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING &&
		    r->element[i]->type != REDIS_REPLY_NIL)
			return NULL;
		f[i] = elem_str(r->element[i]);
	}
	if (f[0] == NULL || f[1] == NULL || f[2] == NULL)
		return NULL;
	o = json_object();
	json_object_set_new(o, "id", json_string(f[0]));
	json_object_set_new(o, "status", json_string(f[1]));
	json_object_set_new(o, "to", json_string(f[2]));
	json_object_set_new(o, "direction", json_string(f[10] != NULL &&
	    !strcmp(f[10], "inbound") ? "inbound" : "outbound"));
	if ((v = num(f[3])) != NULL)
		json_object_set_new(o, "priority", v);
	if ((v = time_of(f[4])) != NULL)
		json_object_set_new(o, "not_before", v);
	if ((v = time_of(f[5])) != NULL)
		json_object_set_new(o, "created_at", v);
	/* a new job has neither yet (common/keys.h) */
	if ((v = time_of(f[6] != NULL ? f[6] : f[5])) != NULL)
		json_object_set_new(o, "updated_at", v);
	if ((v = num(f[7])) == NULL)
		v = json_integer(0);
	json_object_set_new(o, "attempts", v);
	if (f[8] != NULL)
		json_object_set_new(o, "reason", json_string(f[8]));
	if ((v = num(f[9])) != NULL)
		json_object_set_new(o, "sip_code", v);
	/* json_string() is NULL for invalid UTF-8: stored by us, so valid. */
	return o;
}

json_t *
gw_list_body(const redisReply *r)
{
	json_t *body, *calls, *s;
	const char *ms, *id;
	char cursor[128];
	size_t i;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2)
		return NULL;
	ms = elem_str(r->element[0]);
	id = elem_str(r->element[1]);
	calls = json_array();
	for (i = 2; i < r->elements; i++) {
		if ((s = summary(r->element[i])) == NULL) {
			json_decref(calls);
			return NULL;
		}
		json_array_append_new(calls, s);
	}
	body = json_object();
	json_object_set_new(body, "calls", calls);
	/* The script names the last call it looked at only when it stopped
	 * before the end of the index: that is where the next page starts. */
	if (ms != NULL && id != NULL && rq_call_id_valid(id)) {
		gw_cursor_encode(strtoull(ms, NULL, 10), id, cursor,
		    sizeof(cursor));
		json_object_set_new(body, "next_cursor", json_string(cursor));
	} else
		json_object_set_new(body, "next_cursor", json_null());
	return body;
}

static void
list_cb(redisReply *r, void *arg)
{
	struct calls_op *op = arg;
	json_t *body;

	if ((body = gw_list_body(r)) == NULL) {
		log_warnx("redis: listing calls failed: %s",
		    r == NULL ? "connection lost" :
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		op->list(-1, NULL, op->arg);
	} else {
		op->list(0, body, op->arg);
		json_decref(body);
	}
	free(op);
}

/* Ids looked at per request at most (status filter): bounds the time one
 * request holds Redis. */
#define LIST_SCAN_BUDGET	5000

int
gw_store_list(struct gw_store *st, const char *tenant,
    const struct gw_list_query *q, gw_store_list_cb *cb, void *arg)
{
	char key[RQ_NAME_MAX + 16], max[24], min[24], limit[12], budget[12];
	const char *argv[] = { "EVAL", list_lua, "1", key, max,
	    q->has_cursor ? q->cursor_id : "", min, limit, q->status, tenant,
	    RQ_KEY_JOB, budget };
	struct calls_op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	op->list = cb;
	op->arg = arg;
	snprintf(key, sizeof(key), "%s%s", RQ_KEY_TENANT_CALLS, tenant);
	if (q->has_cursor)
		snprintf(max, sizeof(max), "%" PRIu64, q->cursor_ms);
	else
		snprintf(max, sizeof(max), "+inf");
	snprintf(min, sizeof(min), "%" PRIu64, q->since_ms);
	snprintf(limit, sizeof(limit), "%d", q->limit);
	snprintf(budget, sizeof(budget), "%d", LIST_SCAN_BUDGET);
	if (gw_store_command(st, NULL, sizeof(argv) / sizeof(argv[0]), argv,
	    list_cb, op) == -1) {
		free(op);
		return -1;
	}
	return 0;
}

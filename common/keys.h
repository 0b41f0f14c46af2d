/* The Redis key layout, shared by gateway, scheduler, dispatcher and
 * accounting.  docs/architecture.md describes each key; change both. */
#ifndef RQ_KEYS_H
#define RQ_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* A macro's value as a string literal, for the Lua scripts. */
#define RQ_STR_(x)	#x
#define RQ_STR(x)	RQ_STR_(x)

/* HASH rq:job:<id>: the job, written by the gateway; fields
 *   id tenant to say app_url caller_id priority not_before_ms callback_url
 *   metadata (JSON text) created_ms
 *   max_attempts  the tenant's, when not RQ_MAX_ATTEMPTS_DEFAULT
 *   result     how the application of the latest attempt that had one
 *                ended (JSON object text), set by the finish script
 *   attempts   attempts dispatched so far (dispatcher HINCRBY); absent
 *                on a new job: 0
 *   node       telserver holding the current attempt
 *   not_after_ms  optional: not placed by then -> expired (not_after)
 *   hours      optional: the windows that must all be open when the call
 *                is dialled, the callee's calling hours in each of its
 *                zones and the business's hours (common/hours.h's rule)
 *   hours_until_ms  with hours: when the window the call was planned in
 *                closes (or earlier); a take at or after it does not
 *                dispatch the call but hands it to rq:hours
 *   retry_busy retry_no_answer retry_network  "<max>:<delay ms>" per
 *                outcome class, from the tenant (common/lifecycle.c),
 *                each only when not the default (RQ_RETRY_*_DEFAULT)
 *   tries_busy tries_no_answer tries_network  attempts that ended in
 *                that class so far
 *   dialed     the attempt a telserver claimed last (lifecycle.c)
 *   direction number  "inbound" and the number called, for an incoming
 *                call (rq_job_inbound; no direction: outbound)
 *   status reason sip_code updated_ms  live status: set by the Lua script
 *                that emits an event (RQ_LUA_EVENTS), else by accounting's
 *                mirror
 *   status_rank  attempt * 16 + enum rq_status, so that a late event never
 *                moves the status backwards
 *   A new job (status queued) has no status_rank, attempts or updated_ms
 *   yet: readers take them as 0, 0 and created_ms.  Each field a job
 *   carries costs Redis time in every script that writes or reads it.
 *   ttl_ms     how long the job stays once the call ended: the tenant's
 *                retention_days, written by the gateway (and the inbound
 *                script) when not RQ_CALL_TTL_MS
 *   <attempt>:<status>  the call's timeline, an entry per event (see
 *                RQ_KEY_TIMELINE below)
 * A call that ends (a terminal status) keeps its job and timeline in Redis
 * for ttl_ms (RQ_CALL_TTL_MS when absent) more, for GET /v1/calls and
 * status callbacks; the record stays in PostgreSQL.  Whoever ends it
 * (emit(), accounting's mirror) puts its id in RQ_KEY_ENDED, and a
 * scheduler deletes the job then (scheduler/ended.c).  Not a Redis TTL:
 * every key with one is in Redis's second key table too, and both tables
 * doubling at once, as the calls held pass a power of two, cost Redis
 * twice the time of one (docs/operations.md, "Redis's key tables").  Jobs
 * ended by earlier versions have a TTL and keep it. */
#define RQ_KEY_JOB		"rq:job:"
#define RQ_CALL_TTL_DAYS	7	/* retention_days' default */
#define RQ_CALL_TTL_MS		604800000	/* that, in ms */
#define RQ_CALL_TTL_MAX_MS	3153600000000	/* 100 years: more is corrupt */
_Static_assert(RQ_CALL_TTL_MS == RQ_CALL_TTL_DAYS * 86400000LL,
    "RQ_CALL_TTL_MS: RQ_CALL_TTL_DAYS in ms (a literal for the scripts)");

/* Elements per id in the take's reply (dispatcher/jobs.c's take_src and
 * ringq.take): id, what or attempt, then six fields or padding. */
#define RQ_TAKE_SLOTS			8

/* The tenants' defaults (common/config.c) for attempts and retries.  A job
 * carries max_attempts and retry_* only when its tenant's differ from
 * these: the scripts read an absent field as the default. */
#define RQ_MAX_ATTEMPTS_DEFAULT		3
#define RQ_RETRY_BUSY_ATTEMPTS		3
#define RQ_RETRY_BUSY_DELAY_S		60
#define RQ_RETRY_NO_ANSWER_ATTEMPTS	3
#define RQ_RETRY_NO_ANSWER_DELAY_S	300
#define RQ_RETRY_NETWORK_ATTEMPTS	3
#define RQ_RETRY_NETWORK_DELAY_S	30

/* The version of ringq-redis.so (common/redis_module.c) this tree's
 * daemons use: bump it whenever a native command's arguments, answer or
 * effects change, so that daemons never use a module of another build. */
#define RQ_MODULE_VERSION	8

/* A call's timeline is in its job's hash (RQ_KEY_JOB): field
 * "<attempt>:<status>" -> event JSON, the only fields that begin with a
 * digit.  The field is the event's identity, so writing it twice is
 * harmless.  One key per call rather than two: Redis's key tables, which
 * it doubles when full, rehashing as it goes, grow half as fast, and its
 * AOF rewrite walks half as many keys (docs/benchmarks.md).
 * HASH rq:timeline:<id>: where versions before that kept the timeline.
 * Still read (the gateway merges it in: gw_store_parse_get) and removed
 * with the call (scheduler/lists.c); nothing writes it. */
#define RQ_KEY_TIMELINE		"rq:timeline:"
/* ZSET of ids by the ms a take found their hours_until_ms passed: the
 * scheduler plans each again at its hours' next opening, back into
 * rq:delayed (scheduler/hours.c). */
#define RQ_KEY_HOURS		"rq:hours"
/* ZSET of ids by not_before_ms: waiting for their time (scheduler);
 * RQ_DELAYED_TIE_DIV below. */
#define RQ_KEY_DELAYED		"rq:delayed"
/* ZSET of ids by not_after_ms, of calls created with one: the scheduler's
 * sweep ends those still waiting in rq:delayed or rq:ready when it passes
 * (scheduler/deadlines.c). */
#define RQ_KEY_DEADLINES	"rq:deadlines"
/* ZSET of ids by due ms - priority * RQ_PRIORITY_STEP_MS: ready for
 * dispatch (RQ_LUA_READY_SCORE). */
#define RQ_KEY_READY		"rq:ready"
/* ZSET of ids by lease deadline ms: taken by a dispatcher, not yet acked
 * by a telserver; an expired lease puts the id back in rq:ready. */
#define RQ_KEY_INFLIGHT		"rq:inflight"
/* The take's bounds: a lease (and a wait) up to a day, so that now + it
 * cannot overflow; up to that many jobs at once. */
#define RQ_TAKE_MAX_MS		86400000
#define RQ_TAKE_MAX_JOBS	100000
/* ZSET rq:calls:<tenant> of ids by created_ms: a tenant's calls. */
#define RQ_KEY_TENANT_CALLS	"rq:calls:"
/* ZSET of ended calls' ids by the ms their job leaves Redis: the end plus
 * the job's ttl_ms (call_ttl()).  A scheduler deletes the job then, and
 * the id in its tenant's list (scheduler/ended.c). */
#define RQ_KEY_ENDED		"rq:ended"
/* SET rq:oncall:<node> of ids: claimed by telserver <node> (it may be
 * dialling or talking); the attempt is the job's `attempts`. */
#define RQ_KEY_ONCALL		"rq:oncall:"
/* STRING rq:node:<node>, TTL RQ_NODE_TTL_MS: telserver <node> is alive
 * (refreshed at each heartbeat).  SET rq:nodes: every node that has
 * claimed a job, so the scheduler can find the dead ones' calls. */
#define RQ_KEY_NODE		"rq:node:"
#define RQ_KEY_NODES		"rq:nodes"
#define RQ_NODE_TTL_MS		5000
/* HASH rq:tel:<node>, TTL RQ_TEL_TTL_MS: the telserver's fleet state for
 * ringq-ctl (node active capacity state updated_ms sip pid; state up,
 * draining or drained), written with its liveness key.  SET rq:drain: the
 * node names an operator drained (ringq-ctl drain); a telserver reads its
 * membership every second, and the drain survives its restarts. */
#define RQ_KEY_TEL		"rq:tel:"
#define RQ_KEY_DRAIN		"rq:drain"
#define RQ_TEL_TTL_MS		60000
/* STREAM of events written by the Lua scripts that change a job (create,
 * release, expire, claim, finish, cancel): the transactional outbox.
 * Accounting reads it with the consumer group RQ_EVENTS_GROUP, stores each
 * entry, then XACKs it and trims the stream.  Entry fields: the EVENT
 * message's field names (call_id attempt status ts_ms tenant to direction
 * reason sip_code node duration_ms started_ms answered_ms detail result),
 * values as strings. */
#define RQ_KEY_EVENTS		"rq:events"
#define RQ_EVENTS_GROUP		"accounting"
/* Pub/sub channel: published (any message) when ids were added to
 * rq:ready, so idle dispatchers take them at once instead of polling. */
#define RQ_CHANNEL_WAKE		"rq:wake"
/* Pub/sub channel: published (the call id) when the gateway queued a job
 * due at once, so the schedulers release it now instead of at their next
 * tick.  "At once" is within RQ_DUE_SOON_MS of Redis's clock: not_before
 * comes from the gateway's clock, which may lead Redis's by a little, and
 * a scheduler woken too early sleeps until the job's due time anyway. */
#define RQ_CHANNEL_DUE		"rq:due"
#define RQ_DUE_SOON_MS		1000

/* Intake (gateway): the policy engine, do-not-call lists, e-mail. */
#define RQ_KEY_DNC_TENANT	"rq:dnc:tenant:"	/* SET <tenant>: E.164 */
#define RQ_KEY_DNC_CUSTOMER	"rq:dnc:customer"	/* SET: customers' opt-outs */
#define RQ_KEY_DNC_CUSTOMER_META "rq:dnc:customer:meta"	/* HASH: who, when */
#define RQ_KEY_DNC_BUSINESS	"rq:dnc:business:"	/* SET <name>: blocked */
#define RQ_KEY_RATE		"rq:rate:"	/* <tenant>:s:<sec>, :d:<day> */
#define RQ_KEY_ACTIVE		"rq:active:"	/* ZSET <tenant>: unfinished */
/* HASH rq:idem:<tenant>:<ttl s>:<period>, period = Unix time / ttl (a day
 * for HTTP, a week for e-mail): a tenant's idempotency keys of a period,
 * field the key's sha256 hex -> call id, expiring at the end of the next
 * period; a key is looked up in its period's hash and the one before, so
 * it replays for ttl to 2 ttl.  Not a key with a TTL each, which would be
 * in Redis's second key table too (docs/operations.md, "Redis's key
 * tables").  A busy tenant's hash is big: lazyfree-lazy-expire yes frees
 * it off Redis's main thread.  STRING rq:idem:<tenant>:<sha256 hex>, TTL:
 * where gateways before kept a key; still read. */
#define RQ_KEY_IDEM		"rq:idem:"
#define RQ_IDEM_PERIOD_MAX_S	3162240000	/* 100 years: more is corrupt */

/* Status callbacks (accounting). */
#define RQ_KEY_CALLBACKS	"rq:callbacks"	/* ZSET: call id by due ms */
#define RQ_KEY_CBQ		"rq:cbq:"	/* LIST <id>: deliveries */
/* HASH <id>: events queued once, before the marks moved into the job
 * (RQ_JOB_CBSENT); kept 7 days, read only */
#define RQ_KEY_CBSENT		"rq:cbsent:"
/* the job's field "cb:<attempt>": a bit (1 << status) per event of the
 * attempt whose callback was queued */
#define RQ_JOB_CBSENT		"cb:"
/* the job's field "cb:end": the rank of its final status whose status
 * callback was queued (accounting/accounting.h) */
#define RQ_JOB_CBEND		"cb:end"
/* STRING <call id>:<attempt>-<n>: a WAV a VoiceXML <record> made (the
 * telserver writes it, GET /v1/calls/{id}/recordings/{name} reads it).
 * It is kept as long as its call: the tenant's retention and
 * RQ_REC_SLACK_MS more (it is made before the call ends). */
#define RQ_KEY_REC		"rq:rec:"
#define RQ_REC_SLACK_MS		86400000LL

/* Priority ageing: each priority level is worth this much waiting time
 * in rq:ready, so a priority 0 job due 10 minutes ago goes before a
 * priority 9 job due now and nothing waits forever behind a flood of
 * urgent ones. */
#define RQ_PRIORITY_STEP_MS	60000

/* Of jobs due in the same millisecond (a burst at a calling-hours
 * opening, requests for one not_before) rq:delayed releases the higher
 * priorities first: its score is the due ms plus (5 - priority) / 16,
 * -4/16 to +5/16, a fraction a double holds exactly for any due time
 * before the year 10000.  The default priority, 5, keeps an integer
 * score: Redis keeps a small sorted set as a listpack, where a score
 * with a fraction is text that every comparison parses (strtod).  A due
 * time is the score rounded to the nearest ms; the last score due at ms
 * is ms + RQ_DELAYED_LAST. */
#define RQ_DELAYED_TIE_DIV	16
#define RQ_DELAYED_LAST		0.3125
#define RQ_DELAYED_LAST_TEXT	".3125"

/* Lua: score(job key, due ms) -> the rq:ready score of that job, for every
 * script that puts an id in rq:ready: due - priority * RQ_PRIORITY_STEP_MS,
 * priority 5 when absent and clamped to 0..9, formatted without exponent;
 * score_of(priority, due) the same for a priority read already;
 * delayed_of(priority, due) its rq:delayed score: due and the tie-break
 * above (k / 16 = k * 0.0625 exactly; a negative one as the ms before
 * and 16 + k sixteenths). */
#define RQ_LUA_READY_SCORE \
"local function prio_of(priority)\n" \
"  local p = tonumber(priority)\n" \
"  if p == nil then return 5 end\n" \
"  p = math.floor(p)\n" \
"  if p < 0 then p = 0 elseif p > 9 then p = 9 end\n" \
"  return p\n" \
"end\n" \
"local function score_of(priority, due)\n" \
"  return string.format('%d', due - prio_of(priority) * " \
    RQ_STR(RQ_PRIORITY_STEP_MS) ")\n" \
"end\n" \
"local function score(key, due)\n" \
"  return score_of(redis.call('HGET', key, 'priority'), due)\n" \
"end\n" \
"local function delayed_of(priority, due)\n" \
"  local k = 5 - prio_of(priority)\n" \
"  if k == 0 then return string.format('%d', due) end\n" \
"  if k < 0 then due, k = due - 1, k + 16 end\n" \
"  return string.format('%d.%04d', due, k * 625)\n" \
"end\n"

/* Lua: call_ttl(v) -> how long an ended call stays (ms), as text, from its
 * job's ttl_ms as read: anything but the digits of an integer of 1 ms to
 * 100 years (a hand-edited or corrupt field, nil) is RQ_CALL_TTL_MS, so
 * that an end never fails a script half-way.  Used by emit(),
 * accounting's mirror and the scheduler's list sweep; rq_job_ttl_ms() is
 * the same rule in C (the limit is RQ_CALL_TTL_MAX_MS in both). */
#define RQ_LUA_CALL_TTL \
"local function call_ttl(v)\n" \
"  if type(v) ~= 'string' or not string.find(v, '^[1-9]%d*$') or\n" \
"      #v > 16 or tonumber(v) > " RQ_STR(RQ_CALL_TTL_MAX_MS) " then\n" \
"    return '" RQ_STR(RQ_CALL_TTL_MS) "'\n" \
"  end\n" \
"  return v\n" \
"end\n"

/* call_ttl() in C, of a field's n bytes s (NULL: absent): rq_job_ttl_ms()
 * and ringq-redis.so use it. */
static inline uint64_t
rq_call_ttl(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i;

	if (s == NULL || n == 0 || n > 16 || s[0] < '1' || s[0] > '9')
		return RQ_CALL_TTL_MS;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return RQ_CALL_TTL_MS;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v > RQ_CALL_TTL_MAX_MS ? RQ_CALL_TTL_MS : v;
}

/* Lua: is_terminal(rank) for a job's status_rank as a number (nil: no). */
#define RQ_LUA_IS_TERMINAL \
"local function is_terminal(rank)\n" \
"  return rank ~= nil and rank % 16 >= 6\n" \
"end\n"

/* Lua: now_ms() from Redis's clock, read once per script run (a batch's
 * changes become visible together, so one time for all of them is the
 * truth, and a TIME per job is not free); ST, the enum rq_status numbers by
 * name (keep in step with common/status.h); is_terminal(rank); and
 * emit(key, ev[, j[, extra]]): appends ev (a table: call_id attempt
 * status, optional ts_ms (default now) tenant to direction reason sip_code
 * node duration_ms started_ms answered_ms detail result) to rq:events and,
 * when the job exists, does what accounting's mirror would: writes the event's
 * timeline entry in the job (result, JSON object text, becomes an object
 * there, or stays a string when it is not one: it never fails the
 * script), and moves the job's live status (hash key) to it when its rank
 * is higher, in the same HSET,
 * freeing the tenant's concurrency slot (rq:active:) and giving the job
 * its time in rq:ended (now + ttl_ms) when it is terminal.  So
 * the job's status is right the moment the script returns, and the event
 * reaches PostgreSQL even if the caller dies right after.  The entry says
 * what is left to accounting (RQ_EVENT_MIRRORED, RQ_EVENT_CALLBACK):
 * nothing in Redis but the status callback, when the job has a
 * callback_url.
 * emit() runs for every event of every call, so it is written for Redis's
 * Lua: the fields one by one rather than in a loop over a table, numbers
 * formatted once per script run (str, now_text), since a string.format
 * or a table costs thousands of instructions there.  Its tables are made
 * at their full size by their constructors (the nils reserve slots: the
 * event's 4 pairs and up to 13 more, the status's up to 8 pairs): a Lua
 * 5.1 table that grows by appends is rebuilt at every power of two.
 * j, when the caller has read the job already, is the job's fields
 * EMIT_FIELDS in that order (from(f, i): the seven values of f from the
 * i-th on, for a caller that read its own fields and then EMIT_FIELDS:
 * seven as EMIT_FIELDS has),
 * so emit reads nothing itself (a script per job step costs a few
 * redis.calls less); extra is a list of field, value pairs to set on the
 * job in the same HSET as the status. */
/* The globals emit() and its helpers use, kept in locals (RQ_LUA_RUN). */
#define RQ_LUA_GLOBALS \
	"redis, string, math, cjson, tonumber, tostring, type, unpack, " \
	"pcall, ipairs"
#define RQ_EVENT_MIRRORED	"timeline"	/* "1": the script mirrored it */
#define RQ_EVENT_CALLBACK	"callback"	/* "1": the job has a callback */
#define RQ_LUA_EVENTS \
RQ_LUA_CALL_TTL \
"local function rq_globals() return " RQ_LUA_GLOBALS " end\n" \
"local " RQ_LUA_GLOBALS "\n" \
"local now_cached\n" \
"local function now_ms()\n" \
"  if now_cached == nil then\n" \
"    local t = redis.call('TIME')\n" \
"    now_cached = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
"  end\n" \
"  return now_cached\n" \
"end\n" \
"local now_str\n" \
"local function now_text()\n" \
"  if now_str == nil then now_str = string.format('%d', now_ms()) end\n" \
"  return now_str\n" \
"end\n" \
"local ST = { queued = 0, scheduled = 1, dispatched = 2, ringing = 3,\n" \
"  answered = 4, retrying = 5, completed = 6, failed = 7, canceled = 8,\n" \
"  expired = 9 }\n" \
RQ_LUA_IS_TERMINAL \
"local EMIT_FIELDS = { 'status_rank', 'tenant', 'id', 'callback_url',\n" \
"  'reason', 'sip_code', 'ttl_ms' }\n" \
"local function from(f, i)\n" \
"  return { f[i], f[i + 1], f[i + 2], f[i + 3], f[i + 4], f[i + 5],\n" \
"    f[i + 6] }\n" \
"end\n" \
"local function jstr(v)\n" \
"  if string.find(v, '^[%w %.,:;_@+=/%-]*$') then\n" \
"    return '\"' .. v .. '\"' end\n" \
"  return cjson.encode(v)\n" \
"end\n" \
"local INT_TEXT = {}\n" \
"local function str(v)\n" \
"  if type(v) == 'string' then return v end\n" \
"  if type(v) == 'number' and v == math.floor(v) and v < 9e15 and\n" \
"      v > -9e15 then\n" \
"    local s = INT_TEXT[v]\n" \
"    if s == nil then\n" \
"      s = string.format('%d', v)\n" \
"      INT_TEXT[v] = s\n" \
"    end\n" \
"    return s\n" \
"  end\n" \
"  return tostring(v)\n" \
"end\n" \
"local function jnum(v)\n" \
"  local n = tonumber(v)\n" \
"  if n == nil or n ~= n or n == math.huge or n == -math.huge then\n" \
"    return nil end\n" \
"  if n == math.floor(n) and n < 1e15 and n > -1e15 then\n" \
"    return string.format('%d', n) end\n" \
"  return cjson.encode(n)\n" \
"end\n" \
"local function emit(key, ev, j, extra)\n" \
"  local ts = ev.ts_ms or now_ms()\n" \
"  if j == nil then j = redis.call('HMGET', key, unpack(EMIT_FIELDS)) end\n" \
"  local exists = j[1] or j[2] or j[3] or\n" \
"    redis.call('EXISTS', key) == 1\n" \
"  local tss\n" \
"  if ts == now_cached then tss = now_text()\n" \
"  else tss = string.format('%d', ts) end\n" \
"  local id, attempt, status = ev.call_id, ev.attempt, ev.status\n" \
"  local att = str(attempt)\n" \
"  local a = { 'call_id', id, 'attempt', att, 'status', status,\n" \
"    'ts_ms', tss, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,\n" \
"    nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,\n" \
"    nil }\n" \
"  local n = 8\n" \
"  local tl = '{\"status\":\"' .. status .. '\"'\n" \
"  local attj\n" \
"  if type(attempt) == 'number' and attempt == math.floor(attempt) and\n" \
"      attempt < 1e15 and attempt > -1e15 then attj = att\n" \
"  else attj = jnum(attempt) end\n" \
"  if attj then tl = tl .. ',\"attempt\":' .. attj end\n" \
"  tl = tl .. ',\"ts_ms\":' .. tss\n" \
"  local v = ev.tenant\n" \
"  if v and v ~= '' then\n" \
"    if type(v) ~= 'string' then v = str(v) end\n" \
"    a[n + 1] = 'tenant'; a[n + 2] = v; n = n + 2\n" \
"  end\n" \
"  v = ev.to\n" \
"  if v and v ~= '' then\n" \
"    if type(v) ~= 'string' then v = str(v) end\n" \
"    a[n + 1] = 'to'; a[n + 2] = v; n = n + 2\n" \
"  end\n" \
"  if ev.direction and ev.direction ~= '' then\n" \
"    a[n + 1] = 'direction'; a[n + 2] = ev.direction; n = n + 2\n" \
"  end\n" \
"  v = ev.reason\n" \
"  if v and v ~= '' then\n" \
"    if type(v) ~= 'string' then v = str(v) end\n" \
"    a[n + 1] = 'reason'; a[n + 2] = v; n = n + 2\n" \
"    tl = tl .. ',\"reason\":' .. jstr(v)\n" \
"  end\n" \
"  v = ev.sip_code\n" \
"  if v and v ~= '' then\n" \
"    if type(v) ~= 'string' then v = str(v) end\n" \
"    a[n + 1] = 'sip_code'; a[n + 2] = v; n = n + 2\n" \
"    local x = jnum(v)\n" \
"    if x then tl = tl .. ',\"sip_code\":' .. x end\n" \
"  end\n" \
"  v = ev.node\n" \
"  if v and v ~= '' then\n" \
"    if type(v) ~= 'string' then v = str(v) end\n" \
"    a[n + 1] = 'node'; a[n + 2] = v; n = n + 2\n" \
"    tl = tl .. ',\"node\":' .. jstr(v)\n" \
"  end\n" \
"  v = ev.duration_ms\n" \
"  if v and v ~= '' then\n" \
"    if type(v) ~= 'string' then v = str(v) end\n" \
"    a[n + 1] = 'duration_ms'; a[n + 2] = v; n = n + 2\n" \
"    local x = jnum(v)\n" \
"    if x then tl = tl .. ',\"duration_ms\":' .. x end\n" \
"  end\n" \
"  v = ev.started_ms\n" \
"  if v and v ~= '' then\n" \
"    a[n + 1] = 'started_ms'; a[n + 2] = str(v); n = n + 2\n" \
"  end\n" \
"  v = ev.answered_ms\n" \
"  if v and v ~= '' then\n" \
"    a[n + 1] = 'answered_ms'; a[n + 2] = str(v); n = n + 2\n" \
"  end\n" \
"  v = ev.detail\n" \
"  if v and v ~= '' then\n" \
"    if type(v) ~= 'string' then v = str(v) end\n" \
"    a[n + 1] = 'detail'; a[n + 2] = v; n = n + 2\n" \
"    tl = tl .. ',\"detail\":' .. jstr(v)\n" \
"  end\n" \
"  if ev.result then\n" \
"    a[n + 1] = 'result'; a[n + 2] = ev.result; n = n + 2\n" \
"  end\n" \
"  if exists then\n" \
"    a[n + 1] = '" RQ_EVENT_MIRRORED "'; a[n + 2] = '1'; n = n + 2\n" \
"    if j[4] then\n" \
"      a[n + 1] = '" RQ_EVENT_CALLBACK "'; a[n + 2] = '1'; n = n + 2\n" \
"    end\n" \
"  end\n" \
"  redis.call('XADD', '" RQ_KEY_EVENTS "', '*', unpack(a, 1, n))\n" \
"  if not exists then return end\n" \
"  if ev.result then\n" \
"    local rj\n" \
"    local ok, r = pcall(cjson.decode, ev.result)\n" \
"    if ok and type(r) == 'table' and\n" \
"        string.find(ev.result, '^%s*{') then\n" \
"      ok, rj = pcall(cjson.encode, r)\n" \
"      if not ok then rj = nil end\n" \
"    end\n" \
"    tl = tl .. ',\"result\":' .. (rj or cjson.encode(ev.result))\n" \
"  end\n" \
"  local set = { att .. ':' .. status, tl .. '}', nil, nil, nil, nil, nil,\n" \
"    nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil }\n" \
"  local m = 2\n" \
"  if extra then\n" \
"    for k = 1, #extra do set[m + k] = extra[k] end\n" \
"    m = m + #extra\n" \
"  end\n" \
"  local rank = tonumber(attempt) * 16 + ST[status]\n" \
"  if rank <= (tonumber(j[1]) or -1) then\n" \
"    redis.call('HSET', key, unpack(set, 1, m))\n" \
"    return\n" \
"  end\n" \
"  set[m + 1] = 'status'; set[m + 2] = status\n" \
"  set[m + 3] = 'status_rank'; set[m + 4] = string.format('%d', rank)\n" \
"  set[m + 5] = 'updated_ms'; set[m + 6] = tss\n" \
"  m = m + 6\n" \
"  local del\n" \
"  v = ev.reason\n" \
"  if v and v ~= '' then\n" \
"    set[m + 1] = 'reason'; set[m + 2] = v; m = m + 2\n" \
"  elseif j[5] then del = { 'reason' } end\n" \
"  v = ev.sip_code\n" \
"  if v and v ~= '' then\n" \
"    set[m + 1] = 'sip_code'; set[m + 2] = str(v); m = m + 2\n" \
"  elseif j[6] then\n" \
"    if del then del[2] = 'sip_code' else del = { 'sip_code' } end\n" \
"  end\n" \
"  redis.call('HSET', key, unpack(set, 1, m))\n" \
"  if del then redis.call('HDEL', key, unpack(del)) end\n" \
"  if is_terminal(rank) then\n" \
"    if j[2] then redis.call('ZREM', '" RQ_KEY_ACTIVE "' .. j[2], id) end\n" \
"    redis.call('ZADD', '" RQ_KEY_ENDED "',\n" \
"      string.format('%d', now_ms() + tonumber(call_ttl(j[7]))), id)\n" \
"  end\n" \
"end\n" \
"local function rq_per_run()\n" \
"  " RQ_LUA_GLOBALS " = rq_globals()\n" \
"  now_cached = nil; now_str = nil; INT_TEXT = {}\n" \
"end\n"

/*
 * Lua: where a script's definitions end and its run begins.  Before the
 * marker only definitions (local functions, tables never changed): on a
 * Redis with functions (7.0 and later) rq_redis_eval() loads them once as
 * a library, and each run calls the part after the marker, a function of
 * KEYS and ARGV.  A script's definitions cost Redis as much as a small
 * batch's work when made at every run.  With EVAL the marker is a comment
 * and the whole script runs each time.
 * A script with RQ_LUA_EVENTS marks its run with RQ_LUA_RUN_EVENTS, which
 * starts it with rq_per_run(): that resets the definitions' state (the
 * clock read once per run, the number texts) and copies the globals they
 * use into locals.  A function's globals are
 * reached through a metatable (two table lookups each, and a library
 * cannot read them while Redis loads it), EVAL's through one lookup; a
 * local costs none, and emit() alone reads some forty per event.
 */
#define RQ_LUA_RUN	"--[[ run ]]\n"
#define RQ_LUA_RUN_EVENTS	RQ_LUA_RUN "rq_per_run()\n"

#endif

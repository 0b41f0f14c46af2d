/* The Redis key layout, shared by gateway, scheduler, dispatcher and
 * accounting.  docs/architecture.md describes each key; change both. */
#ifndef RQ_KEYS_H
#define RQ_KEYS_H

/* HASH rq:job:<id>: the job, written by the gateway; fields
 *   id tenant to say app_url caller_id priority not_before_ms callback_url
 *   metadata (JSON text) created_ms max_attempts
 *   result     how the application of the latest attempt that had one
 *                ended (JSON object text), set by the finish script
 *   attempts   attempts dispatched so far (dispatcher HINCRBY)
 *   node       telserver holding the current attempt
 *   not_after_ms  optional: not placed by then -> expired (not_after)
 *   retry_busy retry_no_answer retry_network  "<max>:<delay ms>" per
 *                outcome class, from the tenant (common/lifecycle.c)
 *   tries_busy tries_no_answer tries_network  attempts that ended in
 *                that class so far
 *   dialed     the attempt a telserver claimed last (lifecycle.c)
 *   direction number  "inbound" and the number called, for an incoming
 *                call (rq_job_inbound; no direction: outbound)
 *   status reason sip_code updated_ms  live status: set by the Lua script
 *                that emits an event (RQ_LUA_EVENTS), else by accounting's
 *                mirror
 *   status_rank  attempt * 16 + enum rq_status, so that a late event never
 *                moves the status backwards */
#define RQ_KEY_JOB		"rq:job:"
/* HASH rq:timeline:<id>: field "<attempt>:<status>" -> event JSON.  The
 * field is the event's identity, so writing it twice is harmless. */
#define RQ_KEY_TIMELINE		"rq:timeline:"
/* ZSET of ids by not_before_ms: waiting for their time (scheduler). */
#define RQ_KEY_DELAYED		"rq:delayed"
/* ZSET of ids by due ms - priority * RQ_PRIORITY_STEP_MS: ready for
 * dispatch (RQ_LUA_READY_SCORE). */
#define RQ_KEY_READY		"rq:ready"
/* ZSET of ids by lease deadline ms: taken by a dispatcher, not yet acked
 * by a telserver; an expired lease puts the id back in rq:ready. */
#define RQ_KEY_INFLIGHT		"rq:inflight"
/* ZSET rq:calls:<tenant> of ids by created_ms: a tenant's calls. */
#define RQ_KEY_TENANT_CALLS	"rq:calls:"
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
 * entry, then XACKs it and trims the stream.  Entry fields: the EVENT message's field
 * names (call_id attempt status ts_ms tenant to reason sip_code node
 * duration_ms started_ms answered_ms detail result), values as strings. */
#define RQ_KEY_EVENTS		"rq:events"
#define RQ_EVENTS_GROUP		"accounting"
/* Pub/sub channel: published (any message) when ids were added to
 * rq:ready, so idle dispatchers take them at once instead of polling. */
#define RQ_CHANNEL_WAKE		"rq:wake"
/* Pub/sub channel: published (the call id) when the gateway queued a job
 * that is due at once, so the schedulers release it now instead of at
 * their next tick. */
#define RQ_CHANNEL_DUE		"rq:due"

/* Intake (gateway): the policy engine, do-not-call lists, e-mail. */
#define RQ_KEY_DNC_TENANT	"rq:dnc:tenant:"	/* SET <tenant>: E.164 */
#define RQ_KEY_DNC_CUSTOMER	"rq:dnc:customer"	/* SET: customers' opt-outs */
#define RQ_KEY_DNC_CUSTOMER_META "rq:dnc:customer:meta"	/* HASH: who, when */
#define RQ_KEY_DNC_BUSINESS	"rq:dnc:business:"	/* SET <name>: blocked */
#define RQ_KEY_RATE		"rq:rate:"	/* <tenant>:s:<sec>, :d:<day> */
#define RQ_KEY_ACTIVE		"rq:active:"	/* ZSET <tenant>: unfinished */
#define RQ_KEY_IDEM		"rq:idem:"	/* <tenant>:<sha256 of key> */

/* Status callbacks (accounting). */
#define RQ_KEY_CALLBACKS	"rq:callbacks"	/* ZSET: call id by due ms */
#define RQ_KEY_CBQ		"rq:cbq:"	/* LIST <id>: deliveries */
#define RQ_KEY_CBSENT		"rq:cbsent:"	/* HASH <id>: events queued once */
/* STRING <call id>:<attempt>-<n>: a WAV a VoiceXML <record> made (the
 * telserver writes it, GET /v1/calls/{id}/recordings/{name} reads it). */
#define RQ_KEY_REC		"rq:rec:"
#define RQ_REC_TTL_MS		(7 * 86400000LL)

/* Priority ageing: each priority level is worth this much waiting time
 * in rq:ready, so a priority 0 job due 9 minutes ago goes before a
 * priority 9 job due now and nothing waits forever behind a flood of
 * urgent ones. */
#define RQ_PRIORITY_STEP_MS	60000

/* Lua: score(job key, due ms) -> the rq:ready score of that job, for every
 * script that puts an id in rq:ready: due - priority * RQ_PRIORITY_STEP_MS,
 * priority 5 when absent and clamped to 0..9, formatted without exponent;
 * score_of(priority, due) the same for a priority read already. */
#define RQ_STR_(x)	#x
#define RQ_STR(x)	RQ_STR_(x)
#define RQ_LUA_READY_SCORE \
"local function score_of(priority, due)\n" \
"  local p = tonumber(priority)\n" \
"  if p == nil then p = 5 end\n" \
"  p = math.floor(p)\n" \
"  if p < 0 then p = 0 elseif p > 9 then p = 9 end\n" \
"  return string.format('%d', due - p * " RQ_STR(RQ_PRIORITY_STEP_MS) ")\n" \
"end\n" \
"local function score(key, due)\n" \
"  return score_of(redis.call('HGET', key, 'priority'), due)\n" \
"end\n"

/* Lua: now_ms() from Redis's clock, read once per script run (a batch's
 * changes become visible together, so one time for all of them is the
 * truth, and a TIME per job is not free); ST, the enum rq_status numbers by
 * name (keep in step with common/status.h); is_terminal(rank); and
 * emit(key, ev[, j[, extra]]): appends ev (a table: call_id attempt
 * status, optional ts_ms (default now) tenant to reason sip_code node
 * duration_ms started_ms answered_ms detail result) to rq:events and, when
 * the job exists, does what accounting's mirror would: writes the event's
 * timeline entry (result, JSON object text, becomes an object there, or
 * stays a string when it is not one: it never fails the script), and
 * moves the job's live status (hash key) to it when
 * its rank is higher, freeing the tenant's concurrency slot (rq:active:)
 * when it is terminal.  So the job's status is right the moment the script
 * returns, and the event reaches PostgreSQL even if the caller dies right
 * after.  The entry says what is left to accounting (RQ_EVENT_MIRRORED,
 * RQ_EVENT_CALLBACK): nothing in Redis but the status callback, when the
 * job has a callback_url.
 * j, when the caller has read the job already, is the job's fields
 * EMIT_FIELDS in that order (from(f, i): f's values from the i-th on, for
 * a caller that read its own fields and then EMIT_FIELDS) (so emit reads nothing itself: a script per
 * job step costs a few redis.calls less); extra is a list of field, value
 * pairs to set on the job in the same HSET as the status. */
#define RQ_EVENT_MIRRORED	"timeline"	/* "1": the script mirrored it */
#define RQ_EVENT_CALLBACK	"callback"	/* "1": the job has a callback */
#define RQ_LUA_EVENTS \
"local now_cached\n" \
"local function now_ms()\n" \
"  if now_cached == nil then\n" \
"    local t = redis.call('TIME')\n" \
"    now_cached = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
"  end\n" \
"  return now_cached\n" \
"end\n" \
"local ST = { queued = 0, scheduled = 1, dispatched = 2, ringing = 3,\n" \
"  answered = 4, retrying = 5, completed = 6, failed = 7, canceled = 8,\n" \
"  expired = 9 }\n" \
"local function is_terminal(rank)\n" \
"  return rank ~= nil and rank % 16 >= 6\n" \
"end\n" \
"local EVF = { 'tenant', 'to', 'reason', 'sip_code', 'node',\n" \
"  'duration_ms', 'started_ms', 'answered_ms', 'detail' }\n" \
"local TLF = { reason = 's', sip_code = 'n', node = 's',\n" \
"  duration_ms = 'n', detail = 's' }\n" \
"local EMIT_FIELDS = { 'status_rank', 'tenant', 'id', 'callback_url',\n" \
"  'reason', 'sip_code' }\n" \
"local function from(f, i)\n" \
"  local t = {}\n" \
"  for k = i, #f do t[#t + 1] = f[k] end\n" \
"  return t\n" \
"end\n" \
"local function jstr(v)\n" \
"  if string.find(v, '^[%w %.,:;_@+=/%-]*$') then\n" \
"    return '\"' .. v .. '\"' end\n" \
"  return cjson.encode(v)\n" \
"end\n" \
"local function str(v)\n" \
"  if type(v) == 'number' and v == math.floor(v) and v < 9e15 and\n" \
"      v > -9e15 then return string.format('%d', v) end\n" \
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
"  local tss = string.format('%d', ts)\n" \
"  local att = str(ev.attempt)\n" \
"  local a = { 'call_id', ev.call_id, 'attempt', att,\n" \
"    'status', ev.status, 'ts_ms', tss }\n" \
"  local tl = { '{\"status\":\"', ev.status, '\"' }\n" \
"  local attj = jnum(ev.attempt)\n" \
"  if attj then tl[#tl + 1] = ',\"attempt\":' .. attj end\n" \
"  tl[#tl + 1] = ',\"ts_ms\":' .. tss\n" \
"  for i = 1, #EVF do\n" \
"    local f = EVF[i]\n" \
"    local v = ev[f]\n" \
"    if v ~= nil and v ~= false and v ~= '' then\n" \
"      v = str(v)\n" \
"      a[#a + 1] = f\n" \
"      a[#a + 1] = v\n" \
"      local t = TLF[f]\n" \
"      if t == 'n' then\n" \
"        local x = jnum(v)\n" \
"        if x then tl[#tl + 1] = ',\"' .. f .. '\":' .. x end\n" \
"      elseif t then tl[#tl + 1] = ',\"' .. f .. '\":' .. jstr(v) end\n" \
"    end\n" \
"  end\n" \
"  if ev.result then\n" \
"    a[#a + 1] = 'result'\n" \
"    a[#a + 1] = ev.result\n" \
"  end\n" \
"  if exists then\n" \
"    a[#a + 1] = '" RQ_EVENT_MIRRORED "'\n" \
"    a[#a + 1] = '1'\n" \
"    if j[4] then\n" \
"      a[#a + 1] = '" RQ_EVENT_CALLBACK "'\n" \
"      a[#a + 1] = '1'\n" \
"    end\n" \
"  end\n" \
"  redis.call('XADD', '" RQ_KEY_EVENTS "', '*', unpack(a))\n" \
"  if not exists then return end\n" \
"  if ev.result then\n" \
"    local rj\n" \
"    local ok, r = pcall(cjson.decode, ev.result)\n" \
"    if ok and type(r) == 'table' and\n" \
"        string.find(ev.result, '^%s*{') then\n" \
"      ok, rj = pcall(cjson.encode, r)\n" \
"      if not ok then rj = nil end\n" \
"    end\n" \
"    tl[#tl + 1] = ',\"result\":' .. (rj or cjson.encode(ev.result))\n" \
"  end\n" \
"  tl[#tl + 1] = '}'\n" \
"  local tlj = table.concat(tl)\n" \
"  redis.call('HSET', '" RQ_KEY_TIMELINE "' .. ev.call_id,\n" \
"    att .. ':' .. ev.status, tlj)\n" \
"  local rank = tonumber(ev.attempt) * 16 + ST[ev.status]\n" \
"  local cur = tonumber(j[1]) or -1\n" \
"  if rank <= cur then\n" \
"    if extra then redis.call('HSET', key, unpack(extra)) end\n" \
"    return\n" \
"  end\n" \
"  local set = extra or {}\n" \
"  set[#set + 1] = 'status'\n" \
"  set[#set + 1] = ev.status\n" \
"  set[#set + 1] = 'status_rank'\n" \
"  set[#set + 1] = string.format('%d', rank)\n" \
"  set[#set + 1] = 'updated_ms'\n" \
"  set[#set + 1] = string.format('%d', ts)\n" \
"  local del = {}\n" \
"  if ev.reason and ev.reason ~= '' then\n" \
"    set[#set + 1] = 'reason'\n" \
"    set[#set + 1] = ev.reason\n" \
"  elseif j[5] then del[#del + 1] = 'reason' end\n" \
"  if ev.sip_code and ev.sip_code ~= '' then\n" \
"    set[#set + 1] = 'sip_code'\n" \
"    set[#set + 1] = str(ev.sip_code)\n" \
"  elseif j[6] then del[#del + 1] = 'sip_code' end\n" \
"  redis.call('HSET', key, unpack(set))\n" \
"  if #del > 0 then redis.call('HDEL', key, unpack(del)) end\n" \
"  if is_terminal(rank) and j[2] then\n" \
"    redis.call('ZREM', '" RQ_KEY_ACTIVE "' .. j[2], ev.call_id)\n" \
"  end\n" \
"end\n"

#endif

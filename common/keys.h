/* The Redis key layout, shared by gateway, scheduler, dispatcher and
 * accounting.  docs/architecture.md describes each key; change both. */
#ifndef RQ_KEYS_H
#define RQ_KEYS_H

/* HASH rq:job:<id>: the job, written by the gateway; fields
 *   id tenant to say caller_id priority not_before_ms callback_url
 *   metadata (JSON text) created_ms max_attempts
 *   attempts   attempts dispatched so far (dispatcher HINCRBY)
 *   node       telserver holding the current attempt
 *   status reason sip_code updated_ms  live status, kept by accounting
 *   status_rank  attempt * 16 + enum rq_status, so that a late event never
 *                moves the status backwards */
#define RQ_KEY_JOB		"rq:job:"
/* HASH rq:timeline:<id>: field "<attempt>:<status>" -> event JSON.  The
 * field is the event's identity, so writing it twice is harmless. */
#define RQ_KEY_TIMELINE		"rq:timeline:"
/* ZSET of ids by not_before_ms: waiting for their time (scheduler). */
#define RQ_KEY_DELAYED		"rq:delayed"
/* ZSET of ids by (9 - priority) * 1e13 + due ms: ready for dispatch. */
#define RQ_KEY_READY		"rq:ready"
/* ZSET of ids by lease deadline ms: taken by a dispatcher, not yet acked
 * by a telserver; an expired lease puts the id back in rq:ready. */
#define RQ_KEY_INFLIGHT		"rq:inflight"
/* ZSET rq:calls:<tenant> of ids by created_ms: a tenant's calls. */
#define RQ_KEY_TENANT_CALLS	"rq:calls:"

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

#define RQ_READY_PRIORITY_SCALE	10000000000000.0	/* 1e13 ms > year 2286 */

/* Lua: score(job key, due ms) -> the rq:ready score of that job, for every
 * script that puts an id in rq:ready (scheduler release, dispatcher
 * requeue): (9 - priority) * RQ_READY_PRIORITY_SCALE + due, priority 5 when
 * absent and clamped to 0..9, formatted without exponent. */
#define RQ_LUA_READY_SCORE \
"local function score(key, due)\n" \
"  local p = tonumber(redis.call('HGET', key, 'priority'))\n" \
"  if p == nil then p = 5 end\n" \
"  p = math.floor(p)\n" \
"  if p < 0 then p = 0 elseif p > 9 then p = 9 end\n" \
"  return string.format('%.0f', (9 - p) * 1e13 + due)\n" \
"end\n"

#endif

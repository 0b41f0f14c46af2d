/* The end of a job's life in Redis (common/lifecycle.h): the claim a
 * telserver takes before it dials, the finish of an attempt with the retry
 * rules, and the interruption of a dead telserver's attempts.  Each is one
 * Lua script that changes the job and appends its event to rq:events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "util.h"

/*
 * KEYS: rq:job:<id> rq:inflight rq:oncall:<node> rq:nodes
 * ARGV: id attempt node
 * The claim is the one place where an attempt becomes "may be dialled": it
 * succeeds only while the job's attempts is still this attempt and this
 * attempt's lease is still in rq:inflight.  Taking the id out of
 * rq:inflight is what makes it final: a lease the scheduler reclaimed or a
 * dispatcher requeued is gone (stale), and a claimed job can no longer be
 * reclaimed.  Returns 1 (claimed), 0 (stale) or 2 (expired: past
 * not_after, ended here).
 */
#define CLAIM_LUA \
RQ_LUA_EVENTS \
"local function claim(key, id, att, node, inflight, oncall, nodes)\n" \
"local n = tonumber(att)\n" \
"local f = redis.call('HMGET', key, 'attempts', 'not_after_ms', 'to',\n" \
"    unpack(EMIT_FIELDS))\n" \
"local j = from(f, 4)\n" \
"if tonumber(f[1]) ~= n then return 0 end\n" \
"if redis.call('ZREM', inflight, id) == 0 then return 0 end\n" \
"if is_terminal(tonumber(j[1])) then return 0 end\n" \
"local ev = { call_id = id, attempt = n, tenant = j[2], to = f[3],\n" \
"  node = node }\n" \
"local na = tonumber(f[2])\n" \
"local now = now_ms()\n" \
"ev.ts_ms = now\n" \
"if na ~= nil and now > na then\n" \
"  ev.status = 'expired'\n" \
"  ev.reason = '" RQ_REASON_NOT_AFTER "'\n" \
"  ev.detail = 'not placed before not_after'\n" \
"  emit(key, ev, j)\n" \
"  return 2\n" \
"end\n" \
"redis.call('SADD', oncall, id)\n" \
"if nodes then redis.call('SADD', nodes, node) end\n" \
"ev.status = 'dispatched'\n" \
"emit(key, ev, j, { 'node', node, 'dialed', att })\n" \
"return 1\n" \
"end\n" \
RQ_LUA_RUN_EVENTS

static const char claim_src[] =
CLAIM_LUA
"return claim(KEYS[1], ARGV[1], ARGV[2], ARGV[3], KEYS[2],\n"
"    KEYS[3], KEYS[4])\n";

/*
 * KEYS: rq:inflight rq:oncall:<node> rq:nodes
 * ARGV: node job-key-prefix id1 attempt1 id2 attempt2 ...
 * Several claims of one telserver in one script, each exactly the claim
 * above (all of them atomic together; the node joins rq:nodes once).
 * Returns one code per id.
 */
static const char claim_batch_src[] =
CLAIM_LUA
"local out, claimed = {}, false\n"
"for i = 3, #ARGV - 1, 2 do\n"
"  out[#out + 1] = claim(ARGV[2] .. ARGV[i], ARGV[i], ARGV[i + 1],\n"
"      ARGV[1], KEYS[1], KEYS[2], nil)\n"
"  if out[#out] == 1 then claimed = true end\n"
"end\n"
"if claimed then redis.call('SADD', KEYS[3], ARGV[1]) end\n"
"return out\n";

/*
 * KEYS: rq:job:<id> rq:oncall:<node> rq:delayed [rq:node:<node>]
 * ARGV: id attempt node status reason sip_code started_ms answered_ms
 *       duration_ms detail jitter result
 * A result ('' = none) is set on the job (field result, in the same HSET
 * as the status) and carried by the event emit() appends, whatever the
 * retry rules make of the attempt.
 * The fourth key is given by an interrupt (the sweep of a dead node, or a
 * telserver's own recovery at start-up): the finish then acts only while
 * the node's liveness key is absent, checked here, in the same script as
 * the change, and returns {2} otherwise.  The listing's check alone would
 * leave a window: a node that comes back between the listing and the
 * finishes would lose the calls it has just claimed.
 * The do-not-call lists are read before the first write: Redis keeps
 * what a script wrote before an error, and a list made by hand with
 * another type would have failed the script after its SREM, the call
 * dispatched for good; such a list counts as one the number is on.
 * A call that had one attempt only ends with that attempt's own reason
 * (busy, ...); after retries, the reason is attempts_exhausted and the
 * detail names the last attempt's.
 * Only the finish of the attempt the job's last claim was for (dialed),
 * while its id is still in rq:oncall:<node>, acts: so a repeated finish, a
 * late one of an older attempt, or the telserver's own finish after the
 * scheduler interrupted its attempts, changes nothing.  Returns {0}, or
 * {1, status emitted} (finish_one: the two values).
 * One exception, late_outcome(): an interrupt (a sweep: the telserver was
 * cut off, or seemed dead) ended the attempt and put the call back for a
 * retry that no telserver has claimed yet, and the telserver's own finish
 * now brings an outcome that ends the call (completed, or a failure the
 * rules never retry) from the node the attempt was claimed on.  The call
 * really ended so, and its retry would ring a customer who was served:
 * the retry is taken back (out of the queues, a dispatcher's lease
 * dropped and its attempt given back, as a cancel does) and the finish
 * acts, returning {3, status}.  A failure the rules retry leaves the
 * interrupt's retry as it is.
 */
#define FINISH_LUA \
RQ_LUA_EVENTS \
RQ_LUA_READY_SCORE \
"local function rfc3339(ms)\n" \
"  local s = math.floor(ms / 1000)\n" \
"  local days = math.floor(s / 86400)\n" \
"  local sod = s - days * 86400\n" \
"  local z = days + 719468\n" \
"  local era = math.floor(z / 146097)\n" \
"  local doe = z - era * 146097\n" \
"  local yoe = math.floor((doe - math.floor(doe / 1460) +\n" \
"    math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)\n" \
"  local y = yoe + era * 400\n" \
"  local doy = doe - (365 * yoe + math.floor(yoe / 4) -\n" \
"    math.floor(yoe / 100))\n" \
"  local mp = math.floor((5 * doy + 2) / 153)\n" \
"  local d = doy - math.floor((153 * mp + 2) / 5) + 1\n" \
"  local m = mp < 10 and mp + 3 or mp - 9\n" \
"  if m <= 2 then y = y + 1 end\n" \
"  return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d,\n" \
"    math.floor(sod / 3600), math.floor(sod % 3600 / 60), sod % 60)\n" \
"end\n" \
"local CLASS = { " RQ_REASON_BUSY " = 'busy',\n" \
"  " RQ_REASON_NO_ANSWER " = 'no_answer',\n" \
"  " RQ_REASON_UNREACHABLE " = 'network', " RQ_REASON_MEDIA " = 'network',\n" \
"  " RQ_REASON_INTERRUPTED " = 'network' }\n" \
"local DEF = { busy = '" RQ_RETRY_BUSY_DEFAULT "',\n" \
"  no_answer = '" RQ_RETRY_NO_ANSWER_DEFAULT "',\n" \
"  network = '" RQ_RETRY_NETWORK_DEFAULT "' }\n" \
"local function late_outcome(key, delayed, id, n, j, A, o)\n" \
"  if tonumber(j[1]) ~= n * 16 + ST.retrying or\n" \
"      j[5] ~= '" RQ_REASON_INTERRUPTED "' or\n" \
"      (A[o + 4] ~= 'completed' and CLASS[A[o + 5]]) or\n" \
"      redis.call('HGET', key, 'node') ~= A[o + 3] then\n" \
"    return false\n" \
"  end\n" \
"  redis.call('ZREM', delayed, id)\n" \
"  redis.call('ZREM', '" RQ_KEY_READY "', id)\n" \
"  redis.call('ZREM', '" RQ_KEY_HOURS "', id)\n" \
"  if redis.call('ZREM', '" RQ_KEY_INFLIGHT "', id) == 1 then\n" \
"    redis.call('HINCRBY', key, 'attempts', '-1')\n" \
"  end\n" \
"  return true\n" \
"end\n" \
"local function dnc_entry(set, to)\n" \
"  local r = redis.pcall('SISMEMBER', set, to)\n" \
"  if r == 1 then return 'on a do-not-call list: not retried' end\n" \
"  if type(r) == 'table' then\n" \
"    return 'do-not-call list ' .. set .. ' unreadable: not retried'\n" \
"  end\n" \
"end\n" \
"local function on_dnc(key, tenant, to)\n" \
"  local d = dnc_entry('" RQ_KEY_DNC_CUSTOMER "', to)\n" \
"  if not d and tenant then\n" \
"    d = dnc_entry('" RQ_KEY_DNC_TENANT "' .. tenant, to)\n" \
"  end\n" \
"  if not d then\n" \
"    local biz = redis.call('HGET', key, 'business')\n" \
"    if biz then d = dnc_entry('" RQ_KEY_DNC_BUSINESS "' .. biz, to) end\n" \
"  end\n" \
"  return d\n" \
"end\n" \
"local function finish_one(key, oncall, delayed, alive, A, o)\n" \
"local id, n, node = A[o + 1], tonumber(A[o + 2]), A[o + 3]\n" \
"if alive and redis.call('EXISTS', alive) == 1 then return 2 end\n" \
"local f = redis.call('HMGET', key, 'dialed', 'to', 'max_attempts',\n" \
"  'not_after_ms', unpack(EMIT_FIELDS))\n" \
"local j = from(f, 5)\n" \
"if n == nil then return 0 end\n" \
"if tonumber(f[1]) ~= n then\n" \
"  if redis.call('EXISTS', key) == 0 then\n" \
"    redis.call('SREM', oncall, id)\n" \
"  end\n" \
"  return 0\n" \
"end\n" \
"local why = A[o + 5]\n" \
"if why == '' then why = '" RQ_REASON_REJECTED "' end\n" \
"local class = A[o + 4] ~= 'completed' and CLASS[why]\n" \
"local dnc = class and f[2] and on_dnc(key, j[2], f[2])\n" \
"local code = 1\n" \
"if redis.call('SREM', oncall, id) == 0 then\n" \
"  if alive or not late_outcome(key, delayed, id, n, j, A, o) then\n" \
"    return 0\n" \
"  end\n" \
"  code = 3\n" \
"end\n" \
"if is_terminal(tonumber(j[1])) then return 0 end\n" \
"local ev = { call_id = id, attempt = n, tenant = j[2], to = f[2],\n" \
"  node = node, sip_code = A[o + 6], started_ms = A[o + 7],\n" \
"  answered_ms = A[o + 8], detail = A[o + 10] }\n" \
"local x\n" \
"if A[o + 12] and A[o + 12] ~= '' then\n" \
"  ev.result = A[o + 12]\n" \
"  x = { 'result', A[o + 12] }\n" \
"end\n" \
"if A[o + 4] == 'completed' then\n" \
"  ev.status = 'completed'\n" \
"  ev.duration_ms = A[o + 9]\n" \
"  emit(key, ev, j, x)\n" \
"  return code, ev.status\n" \
"end\n" \
"ev.status = 'failed'\n" \
"ev.reason = why\n" \
"if dnc then\n" \
"  class = nil\n" \
"  ev.detail = dnc\n" \
"end\n" \
"if not class then\n" \
"  emit(key, ev, j, x)\n" \
"  return code, ev.status\n" \
"end\n" \
"local pol = redis.call('HGET', key, 'retry_' .. class) or ''\n" \
"local pmax, pdelay = string.match(pol, '^(%d+):(%d+)$')\n" \
"if not pmax then\n" \
"  pmax, pdelay = string.match(DEF[class], '^(%d+):(%d+)$')\n" \
"end\n" \
"pmax, pdelay = tonumber(pmax), tonumber(pdelay)\n" \
"local tries = redis.call('HINCRBY', key, 'tries_' .. class, '1')\n" \
"local maxatt = tonumber(f[3])\n" \
"if maxatt == nil or maxatt < 1 then maxatt = " \
    RQ_STR(RQ_MAX_ATTEMPTS_DEFAULT) " end\n" \
"if tries >= pmax or n >= maxatt then\n" \
"  local lim\n" \
"  if tries >= pmax then\n" \
"    lim = string.format('%d of %d %s attempts', tries, pmax, class)\n" \
"  else\n" \
"    lim = string.format('max_attempts %d', maxatt)\n" \
"  end\n" \
"  local orig = ev.detail or ''\n" \
"  if n > 1 then\n" \
"    ev.reason = '" RQ_REASON_ATTEMPTS_EXHAUSTED "'\n" \
"    ev.detail = string.format('%s on attempt %d: %s', why, n, lim)\n" \
"    if orig ~= '' then ev.detail = ev.detail .. ' (' .. orig .. ')' end\n" \
"  elseif orig ~= '' then\n" \
"    ev.detail = orig .. '; not retried: ' .. lim\n" \
"  else\n" \
"    ev.detail = 'not retried: ' .. lim\n" \
"  end\n" \
"  emit(key, ev, j, x)\n" \
"  return 1, ev.status\n" \
"end\n" \
"local delay = pdelay * 2 ^ (tries - 1)\n" \
"if delay > " RQ_STR(RQ_RETRY_DELAY_MAX_MS) " then\n" \
"  delay = math.max(pdelay, " RQ_STR(RQ_RETRY_DELAY_MAX_MS) ")\n" \
"end\n" \
"local jit = tonumber(A[o + 11]) or 1\n" \
"if jit < 0.75 then jit = 0.75 elseif jit > 1.25 then jit = 1.25 end\n" \
"local at = now_ms() + math.floor(delay * jit)\n" \
"local sat = string.format('%d', at)\n" \
"local na = tonumber(f[4])\n" \
"if na ~= nil and at > na then\n" \
"  ev.status = 'expired'\n" \
"  ev.reason = '" RQ_REASON_NOT_AFTER "'\n" \
"  ev.detail = string.format('%s on attempt %d; next attempt at %s ' ..\n" \
"    'would be after not_after', why, n, rfc3339(at))\n" \
"  emit(key, ev, j, x)\n" \
"  return 1, ev.status\n" \
"end\n" \
"redis.call('HSET', key, 'not_before_ms', sat)\n" \
"redis.call('ZADD', delayed,\n" \
"    delayed_of(redis.call('HGET', key, 'priority'), at), id)\n" \
"if j[2] then\n" \
"  redis.call('ZADD', '" RQ_KEY_ACTIVE "' .. j[2], 'XX', sat, id)\n" \
"end\n" \
"ev.status = 'retrying'\n" \
"if ev.detail ~= nil and ev.detail ~= '' then\n" \
"  ev.detail = ev.detail .. '; next attempt at ' .. rfc3339(at)\n" \
"else\n" \
"  ev.detail = 'next attempt at ' .. rfc3339(at)\n" \
"end\n" \
"emit(key, ev, j, x)\n" \
"return 1, ev.status\n" \
"end\n" \
RQ_LUA_RUN_EVENTS

static const char finish_src[] =
FINISH_LUA
"local code, status = finish_one(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV,\n"
"    0)\n"
"return {code, status}\n";

/*
 * KEYS: rq:oncall:<node> rq:delayed
 * ARGV: job-key-prefix, then 12 per finish: id attempt node status reason
 *       sip_code started_ms answered_ms duration_ms detail jitter result
 * Several finishes of one telserver in one script, each exactly the finish
 * above (without the interrupt's fourth key).  Returns two elements per
 * finish, flat: its code and the status emitted (false for none).  Flat,
 * because Redis checks every table a script returns for an error or
 * status reply (a few thousand instructions each).
 */
static const char finish_batch_src[] =
FINISH_LUA
"local out, n = {}, 0\n"
"for i = 2, #ARGV - 11, 12 do\n"
"  local code, status = finish_one(ARGV[1] .. ARGV[i], KEYS[1], KEYS[2],\n"
"      nil, ARGV, i - 1)\n"
"  out[n + 1] = code; out[n + 2] = status or false; n = n + 2\n"
"end\n"
"return out\n";

/*
 * KEYS: rq:oncall:<node> rq:node:<node>
 * Lists the attempts claimed on node, {id, dialed, ...}, only while the
 * node's liveness key is absent: a node that came back (it deletes its own
 * key at start-up, interrupts, then sets it) must not lose its new calls to
 * a sweep that saw it dead a moment ago.  Each finish that follows checks
 * the key again (finish_src's fourth key): the node may come back while
 * the sweep works through the list.  (A job key that is no hash is listed
 * as not dialed: its finish fails alone, not the listing.)
 */
static const char interrupt_src[] =
"if redis.call('EXISTS', KEYS[2]) == 1 then return {} end\n"
"local out = {}\n"
"for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
"  local d = redis.pcall('HGET', '" RQ_KEY_JOB "' .. id, 'dialed')\n"
"  out[#out + 1] = id\n"
"  out[#out + 1] = type(d) == 'string' and d or '0'\n"
"end\n"
"return out\n";

/*
 * KEYS: rq:job:<id> rq:calls:<tenant> rq:oncall:<node> rq:nodes
 * ARGV: id tenant caller number app_url node started_ms answered_ms
 * ttl_ms ('' = RQ_CALL_TTL_MS)
 * An incoming call's job, as if the gateway had written it and node had
 * claimed its first attempt (what the finish needs: dialed, the id in
 * rq:oncall:<node>), and its `answered` event.  max_attempts 1: nobody
 * calls back a caller, so a failure ends it whatever its class.  No
 * concurrency slot (rq:active) is taken: those limit a tenant's requests.
 * Returns 1, or 0 when the id exists (nothing written).
 */
static const char inbound_src[] =
RQ_LUA_EVENTS
RQ_LUA_RUN_EVENTS
"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
"local now = now_ms()\n"
"local snow = string.format('%d', now)\n"
"local job = { 'id', ARGV[1], 'tenant', ARGV[2], 'to', ARGV[3],\n"
"  'direction', 'inbound', 'number', ARGV[4], 'app_url', ARGV[5],\n"
"  'created_ms', snow, 'max_attempts', '1', 'attempts', '1',\n"
"  'dialed', '1', 'node', ARGV[6] }\n"
"if ARGV[9] ~= '' then job[#job + 1] = 'ttl_ms'; job[#job + 1] = ARGV[9] end\n"
"redis.call('HSET', KEYS[1], unpack(job))\n"
"redis.call('ZADD', KEYS[2], snow, ARGV[1])\n"
"redis.call('SADD', KEYS[3], ARGV[1])\n"
"redis.call('SADD', KEYS[4], ARGV[6])\n"
"emit(KEYS[1], { call_id = ARGV[1], attempt = 1, status = 'answered',\n"
"  ts_ms = now, tenant = ARGV[2], to = ARGV[3], direction = 'inbound',\n"
"  node = ARGV[6], sip_code = '200', started_ms = ARGV[7],\n"
"  answered_ms = ARGV[8] })\n"
"return 1\n";

struct rq_script rq_claim_script = { .name = "claim",
    .src = claim_src, .native = 1 };
struct rq_script rq_inbound_script = { .name = "inbound",
    .src = inbound_src };
struct rq_script rq_finish_script = { .name = "finish",
    .src = finish_src, .native = 1 };
struct rq_script rq_claim_batch_script = { .name = "claim_batch",
    .src = claim_batch_src, .native = 1 };
struct rq_script rq_finish_batch_script = { .name = "finish_batch",
    .src = finish_batch_src, .native = 1 };
struct rq_script rq_interrupt_script = { .name = "interrupt",
    .src = interrupt_src };

#define KEY_MAX	256

static int
key_make(char *buf, const char *prefix, const char *name)
{
	int n;

	n = snprintf(buf, KEY_MAX, "%s%s", prefix, name);
	return n < 0 || n >= KEY_MAX ? -1 : 0;
}

int
rq_job_claim(struct rq_redis *r, const char *id, uint64_t attempt,
    const char *node)
{
	char job[KEY_MAX], oncall[KEY_MAX], att[24];
	const char *argv[7];
	redisReply *rep;
	int rc = -1;

	if (key_make(job, RQ_KEY_JOB, id) == -1 ||
	    key_make(oncall, RQ_KEY_ONCALL, node) == -1) {
		log_warnx("call %s/%llu: claim: id or node too long", id,
		    (unsigned long long)attempt);
		return -1;
	}
	snprintf(att, sizeof(att), "%llu", (unsigned long long)attempt);
	argv[0] = job;
	argv[1] = RQ_KEY_INFLIGHT;
	argv[2] = oncall;
	argv[3] = RQ_KEY_NODES;
	argv[4] = id;
	argv[5] = att;
	argv[6] = node;
	if ((rep = rq_redis_eval(r, &rq_claim_script, 4, 7, argv)) == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER)
		log_warnx("call %s/%llu: claim: unexpected reply", id,
		    (unsigned long long)attempt);
	else if (rep->integer == 1)
		rc = RQ_CLAIM_OK;
	else if (rep->integer == 2)
		rc = RQ_CLAIM_EXPIRED;
	else
		rc = RQ_CLAIM_STALE;
	freeReplyObject(rep);
	return rc;
}

int
rq_job_claim_batch(struct rq_redis *r, const char *node, size_t n,
    const char *const *ids, const uint64_t *attempts, int *rc)
{
	char oncall[KEY_MAX], (*att)[24] = NULL;
	const char **argv = NULL;
	size_t *idx = NULL, i, k = 0, m = 0;
	redisReply *rep = NULL;
	int ret = -1;

	for (i = 0; i < n; i++)
		rc[i] = -1;
	if (n == 0)
		return 0;
	if (key_make(oncall, RQ_KEY_ONCALL, node) == -1) {
		log_warnx("node %s: claim: name too long", node);
		return -1;
	}
	if ((argv = calloc(5 + 2 * n, sizeof(*argv))) == NULL ||
	    (att = calloc(n, sizeof(*att))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL) {
		log_warnx("claim: out of memory");
		goto done;
	}
	argv[k++] = RQ_KEY_INFLIGHT;
	argv[k++] = oncall;
	argv[k++] = RQ_KEY_NODES;
	argv[k++] = node;
	argv[k++] = RQ_KEY_JOB;
	for (i = 0; i < n; i++) {
		if (strlen(RQ_KEY_JOB) + strlen(ids[i]) >= KEY_MAX) {
			log_warnx("call %s/%llu: claim: id too long", ids[i],
			    (unsigned long long)attempts[i]);
			continue;
		}
		snprintf(att[m], sizeof(att[m]), "%llu",
		    (unsigned long long)attempts[i]);
		argv[k++] = ids[i];
		argv[k++] = att[m];
		idx[m++] = i;
	}
	if (m == 0) {
		ret = 0;
		goto done;
	}
	if ((rep = rq_redis_eval(r, &rq_claim_batch_script, 3, (int)k, argv)) == NULL)
		goto done;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != m) {
		log_warnx("node %s: claim: unexpected reply", node);
		goto done;
	}
	for (i = 0; i < m; i++) {
		redisReply *e = rep->element[i];

		if (e->type != REDIS_REPLY_INTEGER)
			log_warnx("call %s/%llu: claim: unexpected reply",
			    ids[idx[i]], (unsigned long long)attempts[idx[i]]);
		else if (e->integer == 1)
			rc[idx[i]] = RQ_CLAIM_OK;
		else if (e->integer == 2)
			rc[idx[i]] = RQ_CLAIM_EXPIRED;
		else
			rc[idx[i]] = RQ_CLAIM_STALE;
	}
	ret = 0;
done:
	if (rep != NULL)
		freeReplyObject(rep);
	free(argv);
	free(att);
	free(idx);
	return ret;
}

/* A factor in [0.75, 1.25) from the kernel's random pool, so that retries
 * of calls that failed together (a trunk outage) spread out. */
static double
jitter(void)
{
	uint32_t x;

	if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != sizeof(x))
		return 1.0;
	return 0.75 + 0.5 * ((double)x / 4294967296.0);
}

/* The result argument of a finish: "" for none, and for one too long to
 * travel as an EVENT's string (logged: the finish goes on without it). */
static const char *
result_arg(const struct rq_attempt_end *e)
{
	size_t n;

	if (e->result == NULL)
		return "";
	if ((n = strlen(e->result)) > RQ_RESULT_MAX) {
		log_warnx("call %s/%llu: finish: result of %zu bytes left out "
		    "(at most %d)", e->call_id, (unsigned long long)e->attempt,
		    n, RQ_RESULT_MAX);
		return "";
	}
	return e->result;
}

static void
num_arg(char *buf, size_t len, uint64_t v)
{
	if (v == 0)
		buf[0] = '\0';
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* rq_job_finish, and for an interrupt (alive: the node's liveness key) only
 * while the node is not alive: returns 2 when it is. */
static int
finish_run(struct rq_redis *r, const struct rq_attempt_end *e,
    const char *alive, enum rq_status *st)
{
	char job[KEY_MAX], oncall[KEY_MAX], att[24], sip[16], started[24];
	char answered[24], duration[24], jit[16];
	const char *argv[16];
	int nkeys = alive ? 4 : 3, k;
	redisReply *rep;
	int rc = -1;

	if (e->status != RQ_ST_COMPLETED && e->status != RQ_ST_FAILED) {
		log_warnx("call %s/%llu: finish with status %s refused",
		    e->call_id, (unsigned long long)e->attempt,
		    rq_status_name(e->status));
		return -1;
	}
	if (key_make(job, RQ_KEY_JOB, e->call_id) == -1 ||
	    key_make(oncall, RQ_KEY_ONCALL, e->node) == -1) {
		log_warnx("call %s/%llu: finish: id or node too long",
		    e->call_id, (unsigned long long)e->attempt);
		return -1;
	}
	snprintf(att, sizeof(att), "%llu", (unsigned long long)e->attempt);
	num_arg(sip, sizeof(sip), e->sip_code > 0 ? (uint64_t)e->sip_code : 0);
	num_arg(started, sizeof(started), e->started_ms);
	num_arg(answered, sizeof(answered), e->answered_ms);
	/* A completed call always says how long it talked, even 0 ms. */
	snprintf(duration, sizeof(duration), "%llu",
	    (unsigned long long)e->duration_ms);
	snprintf(jit, sizeof(jit), "%.6f", e->jitter > 0 ? e->jitter :
	    jitter());
	argv[0] = job;
	argv[1] = oncall;
	argv[2] = RQ_KEY_DELAYED;
	k = 3;
	if (alive)
		argv[k++] = alive;
	argv[k++] = e->call_id;
	argv[k++] = att;
	argv[k++] = e->node;
	argv[k++] = rq_status_name(e->status);
	argv[k++] = e->reason ? e->reason : "";
	argv[k++] = sip;
	argv[k++] = started;
	argv[k++] = answered;
	argv[k++] = duration;
	argv[k++] = e->detail ? e->detail : "";
	argv[k++] = jit;
	argv[k++] = result_arg(e);
	if ((rep = rq_redis_eval(r, &rq_finish_script, nkeys, k, argv)) ==
	    NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER) {
		log_warnx("call %s/%llu: finish: unexpected reply", e->call_id,
		    (unsigned long long)e->attempt);
		goto done;
	}
	if (rep->element[0]->integer == 0) {
		rc = 0;
		goto done;
	}
	if (rep->element[0]->integer == 2 && alive != NULL) {
		rc = 2;
		goto done;
	}
	if (rep->elements < 2 || rq_reply_str(rep->element[1]) == NULL ||
	    rq_status_parse(rq_reply_str(rep->element[1]), st) == -1) {
		log_warnx("call %s/%llu: finish: unexpected reply", e->call_id,
		    (unsigned long long)e->attempt);
		goto done;
	}
	rc = rep->element[0]->integer == 3 ? 3 : 1;
done:
	freeReplyObject(rep);
	return rc;
}

int
rq_job_finish(struct rq_redis *r, const struct rq_attempt_end *e,
    enum rq_status *st)
{
	return finish_run(r, e, NULL, st);
}

/* The numbers a finish sends, as text. */
struct finish_args {
	char	att[24], sip[16], started[24], answered[24], duration[24];
	char	jit[16];
};

int
rq_job_finish_batch(struct rq_redis *r, size_t n,
    const struct rq_attempt_end *e, enum rq_status *st, int *rc)
{
	char oncall[KEY_MAX];
	struct finish_args *fa = NULL;
	const char **argv = NULL;
	size_t *idx = NULL, i, k = 0, m = 0;
	redisReply *rep = NULL;
	int ret = -1;

	for (i = 0; i < n; i++)
		rc[i] = -1;
	if (n == 0)
		return 0;
	if (key_make(oncall, RQ_KEY_ONCALL, e[0].node) == -1) {
		log_warnx("node %s: finish: name too long", e[0].node);
		return -1;
	}
	if ((argv = calloc(3 + 12 * n, sizeof(*argv))) == NULL ||
	    (fa = calloc(n, sizeof(*fa))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL) {
		log_warnx("finish: out of memory");
		goto done;
	}
	argv[k++] = oncall;
	argv[k++] = RQ_KEY_DELAYED;
	argv[k++] = RQ_KEY_JOB;
	for (i = 0; i < n; i++) {
		const struct rq_attempt_end *x = &e[i];
		struct finish_args *a = &fa[m];

		if (x->status != RQ_ST_COMPLETED &&
		    x->status != RQ_ST_FAILED) {
			log_warnx("call %s/%llu: finish with status %s "
			    "refused", x->call_id,
			    (unsigned long long)x->attempt,
			    rq_status_name(x->status));
			continue;
		}
		if (strlen(RQ_KEY_JOB) + strlen(x->call_id) >= KEY_MAX ||
		    strcmp(x->node, e[0].node) != 0) {
			log_warnx("call %s/%llu: finish: id too long or "
			    "another node", x->call_id,
			    (unsigned long long)x->attempt);
			continue;
		}
		snprintf(a->att, sizeof(a->att), "%llu",
		    (unsigned long long)x->attempt);
		num_arg(a->sip, sizeof(a->sip), x->sip_code > 0 ?
		    (uint64_t)x->sip_code : 0);
		num_arg(a->started, sizeof(a->started), x->started_ms);
		num_arg(a->answered, sizeof(a->answered), x->answered_ms);
		snprintf(a->duration, sizeof(a->duration), "%llu",
		    (unsigned long long)x->duration_ms);
		snprintf(a->jit, sizeof(a->jit), "%.6f", x->jitter > 0 ?
		    x->jitter : jitter());
		argv[k++] = x->call_id;
		argv[k++] = a->att;
		argv[k++] = x->node;
		argv[k++] = rq_status_name(x->status);
		argv[k++] = x->reason ? x->reason : "";
		argv[k++] = a->sip;
		argv[k++] = a->started;
		argv[k++] = a->answered;
		argv[k++] = a->duration;
		argv[k++] = x->detail ? x->detail : "";
		argv[k++] = a->jit;
		argv[k++] = result_arg(x);
		idx[m++] = i;
	}
	if (m == 0) {
		ret = 0;
		goto done;
	}
	if ((rep = rq_redis_eval(r, &rq_finish_batch_script, 2, (int)k, argv)) ==
	    NULL)
		goto done;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 * m) {
		log_warnx("node %s: finish: unexpected reply", e[0].node);
		goto done;
	}
	for (i = 0; i < m; i++) {
		const struct rq_attempt_end *x = &e[idx[i]];
		redisReply *code = rep->element[2 * i];
		const char *status = rq_reply_str(rep->element[2 * i + 1]);

		if (code->type != REDIS_REPLY_INTEGER ||
		    (code->integer != 0 && (status == NULL ||
		    rq_status_parse(status, &st[idx[i]]) == -1))) {
			log_warnx("call %s/%llu: finish: unexpected reply",
			    x->call_id, (unsigned long long)x->attempt);
			continue;
		}
		rc[idx[i]] = code->integer == 0 ? 0 :
		    code->integer == 3 ? 3 : 1;
	}
	ret = 0;
done:
	if (rep != NULL)
		freeReplyObject(rep);
	free(argv);
	free(fa);
	free(idx);
	return ret;
}

int
rq_node_interrupt(struct rq_redis *r, const char *node, const char *detail,
    int *refused)
{
	char oncall[KEY_MAX], alive[KEY_MAX];
	const char *argv[2];
	struct rq_attempt_end e;
	enum rq_status st;
	redisReply *rep;
	size_t i;
	int n = 0, nrefused = 0, lost = 0, alive_again = 0;

	if (key_make(oncall, RQ_KEY_ONCALL, node) == -1 ||
	    key_make(alive, RQ_KEY_NODE, node) == -1) {
		log_warnx("node %s: name too long", node);
		return -1;
	}
	argv[0] = oncall;
	argv[1] = alive;
	if ((rep = rq_redis_eval(r, &rq_interrupt_script, 2, 2, argv)) == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY) {
		log_warnx("node %s: interrupt: unexpected reply", node);
		freeReplyObject(rep);
		return -1;
	}
	for (i = 0; i + 1 < rep->elements; i += 2) {
		const char *id = rq_reply_str(rep->element[i]);
		const char *sa = rq_reply_str(rep->element[i + 1]);
		uint64_t a;

		if (id == NULL || sa == NULL)
			continue;
		if (rq_parse_u64(sa, &a) == -1)
			a = 0;
		memset(&e, 0, sizeof(e));
		e.call_id = id;
		e.attempt = a;
		e.node = node;
		e.status = RQ_ST_FAILED;
		e.reason = RQ_REASON_INTERRUPTED;
		e.detail = detail;
		switch (finish_run(r, &e, alive, &st)) {
		case 1:
			log_info("call %s/%llu: interrupted on %s: %s", id, (unsigned long long)a,
			    node, rq_status_name(st));
			n++;
			break;
		case 0:
			break;
		case 2:
			/* It came back since the listing: its calls are its
			 * own again. */
			log_info("node %s is alive again: interrupt stopped "
			    "after %d attempts", node, n);
			alive_again = 1;
			break;
		default:
			if (r->c == NULL)
				lost = 1;
			else
				nrefused++;	/* logged by rq_redis_eval */
			break;
		}
		if (alive_again || lost)
			break;
	}
	freeReplyObject(rep);
	if (refused != NULL)
		*refused = nrefused;
	return lost ? -1 : n;
}

int
rq_job_inbound(struct rq_redis *r, const struct rq_inbound_call *in)
{
	char job[KEY_MAX], calls[KEY_MAX], oncall[KEY_MAX];
	char started[24], answered[24], ttl[24];
	const char *argv[13];
	redisReply *rep;
	int rc = -1;

	if (key_make(job, RQ_KEY_JOB, in->call_id) == -1 ||
	    key_make(calls, RQ_KEY_TENANT_CALLS, in->tenant) == -1 ||
	    key_make(oncall, RQ_KEY_ONCALL, in->node) == -1) {
		log_warnx("call %s: inbound: id, tenant or node too long",
		    in->call_id);
		return -1;
	}
	num_arg(started, sizeof(started), in->started_ms);
	num_arg(answered, sizeof(answered), in->answered_ms);
	argv[0] = job;
	argv[1] = calls;
	argv[2] = oncall;
	argv[3] = RQ_KEY_NODES;
	argv[4] = in->call_id;
	argv[5] = in->tenant;
	argv[6] = in->caller;
	argv[7] = in->number;
	argv[8] = in->app_url;
	argv[9] = in->node;
	argv[10] = started;
	argv[11] = answered;
	ttl[0] = '\0';
	if (in->ttl_ms != 0 && in->ttl_ms != RQ_CALL_TTL_MS)
		num_arg(ttl, sizeof(ttl), in->ttl_ms);
	argv[12] = ttl;
	if ((rep = rq_redis_eval(r, &rq_inbound_script, 4, 13, argv)) == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER)
		log_warnx("call %s: inbound: unexpected reply", in->call_id);
	else
		rc = rep->integer == 1 ? 1 : 0;
	freeReplyObject(rep);
	return rc;
}

uint64_t
rq_job_ttl_ms(const char *ttl_ms)
{
	return rq_call_ttl(ttl_ms, ttl_ms != NULL ? strlen(ttl_ms) : 0);
}

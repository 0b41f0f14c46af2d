// The load generators' job creation (ringq.mjs, ../chain/chain.mjs).
// KEYS: job, tenant calls, delayed, events.  ARGV: id, tenant, to, say.
// Writes what the gateway's create script writes for a call due now of a
// tenant with the default retry rules (gateway/policy_store.c), without
// its policy checks: the job, the tenant's list, the queued event (which
// the script mirrors itself) and its timeline entry (in the job), rq:delayed
// and the announcement on rq:due.  Returns the creation time (ms, Redis clock).
export const CREATE = `
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 +
    math.floor(tonumber(t[2]) / 1000))
local id = ARGV[1]
redis.call('HSET', KEYS[1], 'id', id, 'tenant', ARGV[2], 'to', ARGV[3],
    'not_before_ms', now, 'created_ms', now, 'status', 'queued',
    '0:queued', '{"status":"queued","attempt":0,"ts_ms":' .. now .. '}',
    'say', ARGV[4], 'priority', '5')
redis.call('ZADD', KEYS[2], now, id)
redis.call('XADD', KEYS[4], '*', 'call_id', id, 'attempt', '0',
    'status', 'queued', 'ts_ms', now, 'tenant', ARGV[2], 'to', ARGV[3],
    'timeline', '1')
redis.call('ZADD', KEYS[3], now, id)
redis.call('PUBLISH', 'rq:due', id)
return now
`;

// The arguments of ringq.create (ringq-redis.so's command for the
// gateway's create script, gateway/policy_store.c) as the gateway sends
// them for a call due now: what the load generators send when Redis has
// the module.  By default for a tenant without limits, to a SIP address
// (so no do-not-call lookup), without an idempotency key; `checks` adds
// any of { idem: key, number: E.164 to check against the do-not-call
// lists, business: its name, rps, rpd }.
export function gatewayCreate(id, tenant, to, say, checks = {}) {
	const ms = String(Date.now());
	return ['ringq.create', '9', `rq:idem:${tenant}:${checks.idem || '-'}`,
	    `rq:dnc:tenant:${tenant}`, 'rq:dnc:customer',
	    `rq:dnc:business:${checks.business || '-'}`,
	    `rq:rate:${tenant}`, `rq:active:${tenant}`, `rq:job:${id}`,
	    `rq:calls:${tenant}`, 'rq:delayed',
	    checks.number || '', String(checks.rps || 0),
	    String(checks.rpd || 0), '0', id, '86400',
	    checks.idem ? '1' : '0', checks.business ? '1' : '0', 'rq:job:',
	    ms, ms, tenant, to, '0', 'say', say, 'priority', '5'];
}

// Whether r's Redis has ringq-redis.so (then the generators create jobs
// with ringq.create, as the gateway would).
export async function hasModule(r) {
	try {
		return Number(await r.call('RINGQ.VERSION')) > 0;
	} catch (e) {
		return false;
	}
}

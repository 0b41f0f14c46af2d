// The load generators' job creation (ringq.mjs, ../chain/chain.mjs).
// KEYS: job, tenant calls, delayed, events.  ARGV: id, tenant, to, say.
// Writes what the gateway's create script writes for a call due now of a
// tenant with the default retry rules (gateway/policy_store.c), without
// its policy checks: the job, the tenant's list, the queued event (which
// the script mirrors itself) and its timeline entry, rq:delayed and the
// announcement on rq:due.  Returns the creation time (ms, Redis clock).
export const CREATE = `
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 +
    math.floor(tonumber(t[2]) / 1000))
local id = ARGV[1]
redis.call('HSET', KEYS[1], 'id', id, 'tenant', ARGV[2], 'to', ARGV[3],
    'not_before_ms', now, 'created_ms', now, 'status', 'queued',
    'say', ARGV[4], 'priority', '5')
redis.call('ZADD', KEYS[2], now, id)
redis.call('XADD', KEYS[4], '*', 'call_id', id, 'attempt', '0',
    'status', 'queued', 'ts_ms', now, 'tenant', ARGV[2], 'to', ARGV[3],
    'timeline', '1')
redis.call('HSET', 'rq:timeline:' .. id, '0:queued',
    '{"status":"queued","attempt":0,"ts_ms":' .. now .. '}')
redis.call('ZADD', KEYS[3], now, id)
redis.call('PUBLISH', 'rq:due', id)
return now
`;

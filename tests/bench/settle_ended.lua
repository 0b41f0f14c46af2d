-- bench_ended_buckets.sh's stand-in for a scheduler step that moves each
-- ended call's job out of Redis's keyspace, WINDOW ms after its end, into
-- one of 4096 hashes (the last three hex digits of its id), as one
-- MessagePack array of the job's fields and values.
-- KEYS: rq:ended, the key holding the last end time settled.
-- ARGV: WINDOW ms, the calls' ttl_ms (rq:ended's score is end + ttl_ms),
-- job key prefix, bucket key prefix.
-- Returns the jobs moved, and counts them in bench:settle:moved.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local upto = string.format('%d', now + tonumber(ARGV[2]) - tonumber(ARGV[1]))
local from = redis.call('GET', KEYS[2]) or '-inf'
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. from, upto)
local moved = 0
for i = 1, #ids do
  local id = ids[i]
  local key = ARGV[3] .. id
  local h = redis.call('HGETALL', key)
  if #h > 0 then
    redis.call('HSET', ARGV[4] .. string.sub(id, -3), id, cmsgpack.pack(h))
    redis.call('DEL', key)
    moved = moved + 1
  end
end
redis.call('SET', KEYS[2], upto)
redis.call('INCRBY', 'bench:settle:moved', moved)
return moved

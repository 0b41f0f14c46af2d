-- wrk script for bench_intake.sh: POSTs a valid call with the key in
-- $RQ_KEY and counts the answers below 400 as accepted (every one is a 202:
-- the requests carry no Idempotency-Key; the bench script checks the count
-- against Redis).  No response() callback: it would make wrk build a Lua
-- table of each answer, and wrk shares the 2 cores with what it measures.
-- With $RQ_BENCH_DELAY_MS set, each
-- connection waits an exponentially distributed time of that mean before
-- each request, which makes an open-ish load at a chosen rate.
local key = os.getenv("RQ_KEY") or ""
local mean_delay = tonumber(os.getenv("RQ_BENCH_DELAY_MS") or "0")

wrk.method = "POST"
wrk.body = '{"to":"+15551234567","say":"Your table is ready.",' ..
    '"priority":5,"metadata":{"bench":true}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local counter = 0

function setup(thread)
	counter = counter + 1
	thread:set("id", counter)
end

function init(args)
	math.randomseed(os.time() * 100 + id)
end

function delay()
	if mean_delay <= 0 then
		return 0
	end
	return -mean_delay * math.log(1 - math.random())
end

-- One machine-readable line for the bench script.
function done(summary, latency, requests)
	local oth = summary.errors.status
	local acc = summary.requests - oth
	io.write(string.format("RQ_BENCH accepted=%d other=%d errors=%d " ..
	    "seconds=%.3f p50_ms=%.3f p99_ms=%.3f\n", acc, oth,
	    summary.errors.connect + summary.errors.read +
	    summary.errors.write + summary.errors.timeout,
	    summary.duration / 1e6, latency:percentile(50) / 1000,
	    latency:percentile(99) / 1000))
end

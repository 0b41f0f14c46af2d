#!/usr/bin/env bash
# Balance benchmark, run by hand (not part of deploy/test).  Two parts:
#  1. the simulation (bench_balance, which links the dispatcher's own
#     telserver table and choice: disp_tel_report, disp_tels_pick ...): one
#     arrival trace over 16 telservers of mixed capacity, four policies (and
#     three rows that take ringq's apart), reports 0, 1 and 5 s stale, 1 and
#     4 dispatchers;
#  2. a live run: Redis, ringq-scheduler, ringq-dispatcher and four real
#     dry-run telservers of mixed capacity; jobs are counted per telserver
#     from the `node` field of the `dispatched` events in rq:events.
# docs/benchmarks.md explains the method and keeps the figures.
#
#   tests/bench/bench_balance.sh            (RQ_BUILD=build)
# Environment: RQ_BUILD, RQ_BENCH_SIM_ARGS (extra bench_balance options, e.g.
# "-s 2 -l 0.9 -D 1,2,4"), RQ_BENCH_LIVE=0 skips the live run,
# RQ_BENCH_JOBS (4000), RQ_BENCH_RATE (400 jobs/s), RQ_BENCH_CAPS
# ("10 20 40 80", one telserver each), RQ_KEEP=1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${RQ_SOURCE:=$(cd "$here/../.." && pwd)}"
: "${RQ_BUILD:=$RQ_SOURCE/build}"
export RQ_SOURCE RQ_BUILD

SIM=$RQ_BUILD/tests/bench/bench_balance
[ -x "$SIM" ] || { echo "bench_balance: $SIM not built (ninja -C $RQ_BUILD)" >&2; exit 1; }

# --- 1. the simulation ---------------------------------------------------------
# shellcheck disable=SC2086
"$SIM" ${RQ_BENCH_SIM_ARGS:-}

[ "${RQ_BENCH_LIVE:-1}" = 1 ] || exit 0

# --- 2. live: four dry-run telservers --------------------------------------------
for c in redis-server redis-cli; do
	command -v "$c" >/dev/null ||
	    { echo "bench_balance: $c is missing" >&2; exit 1; }
done

# shellcheck source=../integration/lib.sh
. "$RQ_SOURCE/tests/integration/lib.sh"
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

JOBS=${RQ_BENCH_JOBS:-4000}
RATE=${RQ_BENCH_RATE:-400}
read -r -a CAPS <<<"${RQ_BENCH_CAPS:-10 20 40 80}"
TENANT=demo
TO=sip:bench@127.0.0.1:5060

rq_start_redis
# dry-run telservers claim each attempt (event `dispatched` with their
# node), ack it and finish it at once
bench_dry_run_config "${CAPS[0]}"
HB_MS=$(sed -n 's/^heartbeat_ms = //p' "$RQ_CONF")

rq_start_daemon scheduler
rq_start_daemon dispatcher
for ((i = 1; i <= ${#CAPS[@]}; i++)); do
	bench_start_telserver "$i" "${CAPS[i - 1]}"
done
# the dispatcher knows a telserver from its first heartbeat
sleep 1

# The gateway's create script (as tests/bench/bullmq/ringq.mjs writes jobs):
# the rq:job hash, rq:calls:<tenant>, the `queued` event, rq:delayed at now.
CREATE="
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 +
    math.floor(tonumber(t[2]) / 1000))
local id = ARGV[1]
redis.call('HSET', KEYS[1], 'id', id, 'tenant', ARGV[2], 'to', ARGV[3],
    'say', ARGV[4], 'priority', '5', 'not_before_ms', now,
    'created_ms', now, 'max_attempts', '3', 'attempts', '0',
    'retry_busy', '3:60000',
    'retry_no_answer', '3:300000', 'retry_network', '3:30000',
    'status', 'queued', 'status_rank', '0', 'updated_ms', now)
redis.call('ZADD', KEYS[2], now, id)
redis.call('XADD', KEYS[4], '*', 'call_id', id, 'attempt', '0',
    'status', 'queued', 'ts_ms', now, 'tenant', ARGV[2], 'to', ARGV[3])
redis.call('ZADD', KEYS[3], now, id)
return now
"
SHA=$(rq_redis SCRIPT LOAD "$CREATE")
# ids as the gateway makes them: c_ and 24 hex digits (8 random, a counter)
PREFIX="c_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"

# Paced: a batch every 100 ms, RATE jobs per second.
per=$(( RATE / 10 ))
(( per > 0 )) || per=1
rq_log "live: $JOBS jobs at $RATE/s to ${#CAPS[@]} dry-run telservers of capacity ${CAPS[*]}"
t0=$(rq_now_ms)
sent=0
while (( sent < JOBS )); do
	n=$(( JOBS - sent < per ? JOBS - sent : per ))
	for ((k = 0; k < n; k++)); do
		printf -v id '%s%016x' "$PREFIX" $((sent + k))
		printf 'EVALSHA %s 4 rq:job:%s rq:calls:%s rq:delayed rq:events %s %s %s bench\n' \
		    "$SHA" "$id" "$TENANT" "$id" "$TENANT" "$TO"
	done | rq_redis >/dev/null
	sent=$(( sent + n ))
	next=$(( t0 + sent * 1000 / RATE ))
	now=$(rq_now_ms)
	(( next > now )) && sleep "$(awk -v ms=$(( next - now )) 'BEGIN { printf "%.3f", ms / 1000 }')"
done
t1=$(rq_now_ms)

# dispatched IDS: "node count" lines of the `dispatched` events of our jobs.
dispatched() {
	rq_redis --raw XRANGE rq:events - + | awk -v pre="$PREFIX" '
	    function flush() {
		if (st == "dispatched" && index(id, pre) == 1) print node
		st = ""; node = ""; id = ""
	    }
	    /^[0-9]+-[0-9]+$/ { flush(); key = ""; next }
	    key == "" { key = $0; next }
	    { if (key == "status") st = $0; else if (key == "node") node = $0;
	      else if (key == "call_id") id = $0; key = "" }
	    END { flush() }' | sort | uniq -c | awk '{ print $2, $1 }'
}

all_dispatched() {
	local n
	n=$(dispatched | awk '{ s += $2 } END { print s + 0 }')
	[ "$n" -ge "$JOBS" ]
}
rq_wait_for 120 all_dispatched || rq_fail "not every job was dispatched: $(dispatched | tr '\n' ' ')"
t2=$(rq_now_ms)
COUNTS=$(dispatched)

for ((i = 1; i <= ${#CAPS[@]}; i++)); do
	rq_stop_daemon "telserver:$i"
done
rq_stop_daemon dispatcher
rq_stop_daemon scheduler

echo
echo "live: $JOBS jobs written at $RATE/s in $(( t1 - t0 )) ms, all dispatched after $(( t2 - t0 )) ms;"
echo "  ringq-scheduler, one ringq-dispatcher, ${#CAPS[@]} dry-run telservers (heartbeat ${HB_MS} ms, calls end at once)"
awk -v caps="${CAPS[*]}" -v counts="$COUNTS" 'BEGIN {
	n = split(caps, cap, " ")
	m = split(counts, kv, "\n")
	for (i = 1; i <= m; i++) { split(kv[i], f, " "); got[f[1]] = f[2] }
	for (i = 1; i <= n; i++) { tc += cap[i]; tj += got["tel" i] }
	printf "  %-6s %8s %8s %8s %8s %10s\n", "node", "capacity", "jobs",
	    "cap %", "jobs %", "jobs/slot"
	for (i = 1; i <= n; i++) {
		r = got["tel" i] / cap[i]; per[i] = r; mean += r / n
		if (r > max) max = r
		if (min == "" || r < min) min = r
		printf "  %-6s %8d %8d %7.1f%% %7.1f%% %10.1f\n", "tel" i, cap[i],
		    got["tel" i], 100 * cap[i] / tc, 100 * got["tel" i] / tj, r
	}
	printf "  spread of jobs per slot: max/mean %.3f, min/mean %.3f (1.000: shares exactly by capacity)\n",
	    max / mean, min / mean
}'
echo "settings: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"

#!/usr/bin/env bash
# Instructions the gateway spends per accepted POST /v1/calls, counted by
# valgrind's callgrind (exact and repeatable, unlike timings on a shared
# 2-core machine), and the functions that spend them.  A profiling aid for
# the intake benchmark (docs/benchmarks.md), run by hand:
#
#   tests/bench/prof_gateway.sh          (RQ_BUILD=build)
# Environment: RQ_BUILD, RQ_PROF_SECONDS (5), RQ_PROF_TOP (25 functions),
# RQ_KEEP=1 (keeps the callgrind file).  Counts user space only: the
# kernel's share (sockets, about a third of the gateway's time) is not in it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${RQ_SOURCE:=$(cd "$here/../.." && pwd)}"
: "${RQ_BUILD:=$RQ_SOURCE/build}"
export RQ_SOURCE RQ_BUILD
for c in valgrind callgrind_annotate callgrind_control wrk; do
	command -v "$c" >/dev/null || {
		echo "prof_gateway: $c is missing (apt-get install valgrind wrk)" >&2
		exit 1
	}
done
# shellcheck source=../integration/lib.sh
. "$RQ_SOURCE/tests/integration/lib.sh"

SECS=${RQ_PROF_SECONDS:-5}
TOP=${RQ_PROF_TOP:-25}

rq_start_redis --appendonly yes --appendfsync everysec
rq_write_config <<EOC
rate_per_second = 1000000
rate_per_day = 0
max_concurrent = 0
EOC
sed -i -e 's/^debug = yes$/debug = no/' "$RQ_CONF"
valgrind --tool=callgrind --callgrind-out-file="$T/cg.%p" \
    "$RQ_BUILD/gateway/ringq-gateway" -f "$RQ_CONF" > "$T/gateway.log" 2>&1 &
vpid=$!
rq_track gateway "$vpid"
rq_wait_for 60 curl -fsS -o /dev/null "$RQ_API/healthz"

post() {
	RQ_KEY=$RQ_KEY RQ_BENCH_DELAY_MS=0 wrk -t 1 -c 4 -d "${1}s" \
	    --timeout 10s -s "$here/post_call.lua" "$RQ_API/v1/calls" >/dev/null
}
post 2					# warm up: caches, first allocations
before=$(rq_redis ZCARD rq:calls:demo)
callgrind_control -z "$vpid" >/dev/null
post "$SECS"
callgrind_control -d "$vpid" >/dev/null
n=$(( $(rq_redis ZCARD rq:calls:demo) - before ))
f=$(ls -t "$T"/cg."$vpid".* | head -n 1)
ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
(( n > 0 )) || rq_fail "no request accepted"
printf 'accepted %d requests; gateway: %d instructions per request\n' \
    "$n" $(( ir / n ))
printf '\nper request (self), the top %d functions:\n' "$TOP"
callgrind_annotate --auto=no --threshold=100 "$f" > "$T/annotate.txt" 2>/dev/null
sed -n '/file:function/,$p' "$T/annotate.txt" | grep -E '^ *[0-9,]+ ' |
    grep -vE 'main|event_base_dispatch|libc_start|\(below main\)|0x000000000001ab70' |
    awk -v n="$n" -v top="$TOP" 'NR <= top { v = $1; gsub(",", "", v);
	f = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", f);
	printf "%8d  %s\n", v / n, f }'
[ -n "${RQ_KEEP:-}" ] && echo "callgrind file: $f"
exit 0

#!/usr/bin/env bash
# ringq's dispatch latency alone, at fixed rates, pass after pass: the
# latency pass of bench_dispatch.sh (ringq.mjs latency, paced by
# rq_enqueue), without BullMQ and without the throughput runs, so that
# Redis's settings can be varied and compared.  Run by hand (not part of
# deploy/test); docs/benchmarks.md keeps figures.  Prints, per pass, the
# bench's RQ_BENCH line, the AOF rewrites in it (each pass begins just
# after one: bench_aof_settle), Redis's main thread's
# CPU time per call, its key tables before and after the pass
# (bench_tables: keys/table size, expiring keys/table size), and Redis's
# latency monitor's events of 5 ms or more (LATENCY LATEST: event, time,
# last ms, max ms).
#
#   tests/bench/bench_latency.sh            (RQ_BUILD=build)
# Environment: RQ_BENCH_RATES ("9000": jobs per second, one after the
# other), RQ_BENCH_PASSES (3 per rate), RQ_BENCH_LAT_SECONDS (8),
# RQ_BENCH_KEYSPACE (steady: the key tables already grown, so that no pass
# doubles them; doubling: each pass doubles them halfway; grow: from an
# empty Redis, doubling wherever the count of keys says; see bench_lib.sh),
# RQ_BENCH_FSYNC (everysec), RQ_BENCH_REDIS_ARGS (more redis-server
# options, e.g. "--auto-aof-rewrite-percentage 0" for no AOF rewrite),
# RQ_BENCH_GENERATOR (c; node: ringq.mjs's ioredis), TMPDIR (where Redis
# and the daemons keep their files), RQ_KEEP=1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${RQ_SOURCE:=$(cd "$here/../.." && pwd)}"
: "${RQ_BUILD:=$RQ_SOURCE/build}"
export RQ_SOURCE RQ_BUILD

for c in node npm redis-server redis-cli; do
	command -v "$c" >/dev/null || {
		echo "bench_latency: $c is missing (apt-get install nodejs npm redis-server)" >&2
		exit 1
	}
done

# shellcheck source=../integration/lib.sh
. "$RQ_SOURCE/tests/integration/lib.sh"
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

RATES=${RQ_BENCH_RATES:-9000}
PASSES=${RQ_BENCH_PASSES:-3}
SECS=${RQ_BENCH_LAT_SECONDS:-8}
KEYSPACE=${RQ_BENCH_KEYSPACE:-steady}
case $KEYSPACE in
steady | doubling | grow) ;;
*) echo "bench_latency: RQ_BENCH_KEYSPACE is steady, doubling or grow" >&2; exit 2 ;;
esac
BQ=$here/bullmq
TO=sip:bench@127.0.0.1:5060
[ -f "$BQ/node_modules/ioredis/package.json" ] ||
	(cd "$BQ" && npm install --no-audit --no-fund --loglevel=error) >&2
if [ "${RQ_BENCH_GENERATOR:-c}" = c ]; then
	RQ_BENCH_ENQUEUE=$(realpath -m "$RQ_BUILD/tests/bench/rq_enqueue")
	[ -x "$RQ_BENCH_ENQUEUE" ] || rq_fail "$RQ_BENCH_ENQUEUE not built"
	export RQ_BENCH_ENQUEUE
fi

# shellcheck disable=SC2086	# the options split as given
rq_start_redis --appendonly yes --appendfsync "${RQ_BENCH_FSYNC:-everysec}" \
    --latency-monitor-threshold 5 --enable-debug-command local \
    ${RQ_BENCH_REDIS_ARGS:-}
# the same daemons and settings as bench_dispatch.sh
bench_dry_run_config 1000
rq_start_daemon scheduler
rq_start_daemon dispatcher
bench_start_telserver 1
bench_start_telserver 2
sleep 1	# the dispatcher knows a telserver from its first heartbeat

info() {	# info SECTION FIELD
	rq_redis INFO "$1" | tr -d '\r' | sed -n "s/^$2://p"
}

# main_cpu: seconds of CPU Redis's main thread has used, less what the
# bench's own reading of rq:events took after the pass (commands run since
# the last CONFIG RESETSTAT).
main_cpu() {
	echo "$(info cpu used_cpu_user_main_thread)" \
	    "$(info cpu used_cpu_sys_main_thread)" \
	    "$(info commandstats cmdstat_xreadgroup | sed -n 's/.*,usec=\([0-9]*\),.*/\1/p')" |
	    awk '{ print $1 + $2 - $3 / 1e6 }'
}

(cd "$BQ" && node ringq.mjs throughput "$REDIS_PORT" 2000 demo "$TO") \
    >/dev/null	# warm-up
for rate in $RATES; do
	for ((pass = 1; pass <= PASSES; pass++)); do
		[ "$KEYSPACE" = grow ] ||
			bench_keyspace "$KEYSPACE" $((rate * SECS))
		bench_aof_settle
		tables=$(bench_tables)
		rq_redis LATENCY RESET >/dev/null
		rq_redis CONFIG RESETSTAT >/dev/null
		rw=$(info persistence aof_rewrites)
		cpu=$(main_cpu)
		line=$(cd "$BQ" && node ringq.mjs latency "$REDIS_PORT" \
		    "$rate" "$SECS" demo "$TO") ||
			rq_fail "ringq.mjs latency at $rate/s failed"
		printf '%s rewrites=%d redis_us_per_call=%s\n' "$line" \
		    $(( $(info persistence aof_rewrites) - rw )) \
		    "$(awk -v a="$cpu" -v b="$(main_cpu)" -v n=$((rate * SECS)) \
		    'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')"
		echo "  key tables: $tables before, $(bench_tables) after"
		rq_redis LATENCY LATEST | paste -sd' ' | sed 's/^/  latency monitor: /'
	done
done
printf 'settings: redis-server %s appendonly yes appendfsync %s %s; key tables %s; %s; %d cores; %s\n' \
    "$(info server redis_version)" "${RQ_BENCH_FSYNC:-everysec}" \
    "${RQ_BENCH_REDIS_ARGS:-}" "$KEYSPACE" \
    "$([ "${RQ_BENCH_GENERATOR:-c}" = c ] && echo "paced by rq_enqueue" ||
    echo "paced by ringq.mjs")" "$(nproc)" "$(date -u +%FT%TZ)"

#!/usr/bin/env bash
# ringq's dispatch latency alone, at fixed rates, pass after pass: the
# latency pass of bench_dispatch.sh (ringq.mjs latency, paced by
# rq_enqueue), without BullMQ and without the throughput runs, so that
# Redis's settings can be varied and compared.  Run by hand (not part of
# deploy/test); docs/benchmarks.md keeps figures.  Prints, per pass, the
# bench's RQ_BENCH line with the AOF rewrites in it (each pass begins just
# after one), Redis's main thread's CPU time per call and its key tables
# before and after the pass (bench_lib.sh's bench_lat_pass), then Redis's
# latency monitor's events of 5 ms or more (LATENCY LATEST: event, time,
# last ms, max ms); after a rate's passes, its RQ_BENCH_POOLED line: the
# percentiles of all its passes' jobs together.
#
#   tests/bench/bench_latency.sh            (RQ_BUILD=build)
# Environment: RQ_BENCH_RATES ("9000": jobs per second, one after the
# other), RQ_BENCH_PASSES (3 per rate), RQ_BENCH_LAT_SECONDS (8),
# RQ_BENCH_KEYSPACE (steady: the key tables already grown, so that no pass
# doubles them; doubling: each pass doubles them halfway; grow: from an
# empty Redis, doubling wherever the count of keys says; see bench_lib.sh),
# RQ_BENCH_TABLE_MIN (the smallest key table the padding aims at, e.g.
# 1048576 for a doubling at a million keys), RQ_BENCH_FSYNC (everysec), RQ_BENCH_REDIS_ARGS (more redis-server
# options, e.g. "--auto-aof-rewrite-percentage 0" for no AOF rewrite),
# RQ_BENCH_GENERATOR (c; node: ringq.mjs's ioredis), RQ_BENCH_PIN (1:
# Redis's main thread on a CPU of its own, as bench_dispatch.sh; 0: no
# pinning), TMPDIR (where Redis and the daemons keep their files),
# RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"
bench_pin "$@"

rq_need node npm redis-server redis-cli
RATES=${RQ_BENCH_RATES:-9000}
PASSES=${RQ_BENCH_PASSES:-3}
SECS=${RQ_BENCH_LAT_SECONDS:-8}
KEYSPACE=${RQ_BENCH_KEYSPACE:-steady}
case $KEYSPACE in
steady | doubling | grow) ;;
*) rq_fail "RQ_BENCH_KEYSPACE is steady, doubling or grow" ;;
esac
BQ=$here/bullmq
TO=sip:bench@127.0.0.1:5060
bench_node_modules
bench_generator

# shellcheck disable=SC2086	# the options split as given
rq_start_redis --appendonly yes --appendfsync "${RQ_BENCH_FSYNC:-everysec}" \
    --latency-monitor-threshold 5 --enable-debug-command local \
    "${BENCH_PIN_REDIS[@]}" ${RQ_BENCH_REDIS_ARGS:-}
bench_start_dry_run

# latency RATE: ringq.mjs's latency pass at RATE calls/s; its dispatch
# latencies also go to $T/RATE.hist, pooled after the rate's passes.
latency() {
	(cd "$BQ" && RQ_BENCH_LAT_HIST=$T/$1.hist node ringq.mjs latency \
	    "$REDIS_PORT" "$1" "$SECS" demo "$TO") ||
	    rq_fail "ringq.mjs latency at $1/s failed"
}

(cd "$BQ" && node ringq.mjs throughput "$REDIS_PORT" 2000 demo "$TO") \
    >/dev/null	# warm-up
for rate in $RATES; do
	rm -f "$T/$rate.hist"	# a rate given twice is pooled twice, apart
	for ((pass = 1; pass <= PASSES; pass++)); do
		bench_lat_pass "$KEYSPACE" $((rate * SECS)) latency "$rate"
		echo "  latency monitor: $(rq_redis LATENCY LATEST |
		    paste -sd' ' | sed 's/^$/no event of 5 ms or more/')"
	done
	echo "RQ_BENCH_POOLED rate_asked=$rate passes=$PASSES $(bench_hist_line "$T/$rate.hist")"
done
printf 'settings: redis-server %s appendonly yes appendfsync %s %s; key tables %s; %s; %d cores, %s; %s\n' \
    "$(bench_info server redis_version)" "${RQ_BENCH_FSYNC:-everysec}" \
    "${RQ_BENCH_REDIS_ARGS:-}" "$KEYSPACE" "paced by $BENCH_GENERATOR" \
    "$BENCH_NCPU" "$BENCH_PIN" "$(date -u +%FT%TZ)"

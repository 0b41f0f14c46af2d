#!/usr/bin/env bash
# Does a doubling of Redis's key table cost ringq's dispatch latency when
# it happens in a database the dispatch path never reads?  The question
# behind keeping ended calls in a database of their own (docs/benchmarks.md,
# "Thirty-sixth session"): the calls' database would then hold only the
# calls under way, and the one that doubles as the retained calls grow
# would be another.  Each latency pass (bench_latency.sh's, at one rate)
# runs beside paced SETs into database 1 at the same rate (bullmq/
# paced_sets.mjs, standing in for calls moved there as they end), in three
# arms taken in turn:
#   calls  database 0 (the calls') doubles halfway through, 1 does not
#   other  database 1 doubles halfway through, 0 does not
#   none   neither doubles
# Prints each pass's RQ_BENCH line (bench_lib.sh's bench_lat_pass, with
# arm= and database 1's key count), then each arm's jobs pooled.  Run by
# hand (not part of deploy/test).
#
#   tests/bench/bench_other_db.sh            (RQ_BUILD=build)
# Environment: RQ_BENCH_RATE (12800 calls a second), RQ_BENCH_PASSES (3 of
# each arm), RQ_BENCH_LAT_SECONDS (8), RQ_BENCH_ARMS ("calls other none"),
# RQ_BENCH_TABLE_MIN (1048576: the smallest table a doubling doubles),
# RQ_BENCH_PIN (1, as bench_latency.sh), TMPDIR, RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"
bench_pin "$@"

ARMS=${RQ_BENCH_ARMS:-calls other none}
export RQ_BENCH_TABLE_MIN=${RQ_BENCH_TABLE_MIN:-1048576}
BQ=$here/bullmq
TO=sip:bench@127.0.0.1:5060
bench_arms_start

# latency ARM PASS: ringq.mjs's latency pass, beside the paced SETs into
# database 1; its dispatch latencies also go to $T/ARM.hist.
latency() {
	local writer
	(cd "$BQ" && exec node paced_sets.mjs "$REDIS_PORT" 1 "$RATE" "$SECS" \
	    "bench:ended:$1:$2:") &
	writer=$!
	if ! (cd "$BQ" && RQ_BENCH_LAT_HIST=$T/$1.hist node ringq.mjs \
	    latency "$REDIS_PORT" "$RATE" "$SECS" demo "$TO"); then
		kill "$writer" 2>/dev/null || true
		rq_fail "ringq.mjs latency at $RATE/s failed"
	fi
	wait "$writer" || rq_fail "paced_sets.mjs failed"
}

calls=$((RATE * SECS))
for ((pass = 1; pass <= PASSES; pass++)); do
	for arm in $ARMS; do
		case $arm in
		calls) db0=doubling db1=steady ;;
		other) db0=steady db1=doubling ;;
		none) db0=steady db1=steady ;;
		*) rq_fail "RQ_BENCH_ARMS: calls, other or none, not '$arm'" ;;
		esac
		BENCH_DB=1 bench_keyspace "$db1" "$calls"
		bench_keyspace "$db0" "$calls"
		before=$(BENCH_DB=1 bench_tables)
		line=$(bench_lat_pass grow "$calls" latency "$arm" "$pass") ||
		    exit 1
		after=$(BENCH_DB=1 bench_tables)
		echo "arm=$arm $line db1_tables=${before// /,}..${after// /,}"
	done
done
# shellcheck disable=SC2086	# the arms' words
bench_arms_pooled "$RATE" "$PASSES" $ARMS
printf 'settings: redis-server %s appendonly yes appendfsync everysec; paced SETs into database 1 at the rate; %s; %d cores, %s; %s\n' \
    "$(bench_info server redis_version)" "paced by $BENCH_GENERATOR" \
    "$BENCH_NCPU" "$BENCH_PIN" "$(date -u +%FT%TZ)"

#!/usr/bin/env bash
# Would ended calls kept in 4,096 hashes, rather than a key each, take
# the doubling of Redis's key table off the dispatch path, and what would
# moving them there cost?  The question behind docs/benchmarks.md,
# "Thirty-seventh session": every command's key lookup moves a step of a
# doubling keyspace, so the retained calls, a key each, make every
# command pay while the table they crossed a power of two in is rehashed.
# In a hash of its own, a call's job would be touched only by the
# commands on that hash.  Each latency pass (bench_latency.sh's, at one
# rate) runs in one of four arms, taken in turn:
#   calls    as ringq is: no move; the keyspace doubles halfway
#   buckets  jobs moved RQ_BENCH_SETTLE_MS after their end (settle_ended.lua,
#            every 10 ms); the hashes, not the keyspace, double halfway
#   settle   jobs moved as in buckets; nothing doubles
#   none     no move; nothing doubles
# Before each pass every call ended so far is moved (so the keyspace
# holds the calls of none), then the keyspace and the hashes are padded.
# Prints each pass's RQ_BENCH line (bench_lib.sh's bench_lat_pass, with
# arm=, the jobs the pass moved and the hashes' mean size before and
# after), then each arm's jobs pooled.  Run by hand (not part of
# deploy/test).
#
#   tests/bench/bench_ended_buckets.sh            (RQ_BUILD=build)
# Environment: RQ_BENCH_RATE (12800 calls a second), RQ_BENCH_PASSES (3 of
# each arm), RQ_BENCH_LAT_SECONDS (8), RQ_BENCH_ARMS ("calls buckets
# settle none"), RQ_BENCH_SETTLE_MS (2000), RQ_BENCH_TABLE_MIN (1048576:
# the smallest keyspace a doubling doubles; the hashes double at a 4,096th
# of it), RQ_BENCH_PIN (1, as bench_latency.sh), TMPDIR, RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"
bench_pin "$@"

ARMS=${RQ_BENCH_ARMS:-calls buckets settle none}
SETTLE_MS=${RQ_BENCH_SETTLE_MS:-2000}
export RQ_BENCH_TABLE_MIN=${RQ_BENCH_TABLE_MIN:-1048576}
BUCKETS=4096
BUCKET_MIN=$((RQ_BENCH_TABLE_MIN / BUCKETS))
(( BUCKET_MIN >= 4 )) ||
	rq_fail "RQ_BENCH_TABLE_MIN: $BUCKETS * 4 or more (not $RQ_BENCH_TABLE_MIN)"
BQ=$here/bullmq
TO=sip:bench@127.0.0.1:5060
bench_arms_start
SETTLE_SHA=$(rq_redis SCRIPT LOAD "$(cat "$here/settle_ended.lua")")

# settle WINDOW_MS: moves the jobs of calls ended WINDOW_MS ago or more.
settle() {
	rq_redis EVALSHA "$SETTLE_SHA" 2 rq:ended bench:settle:upto "$1" \
	    604800000 rq:job: rq:done:
}

# bucket_fill: the mean count of fields in the hashes, rounded down.
bucket_fill() {
	awk -v n=$BUCKETS 'BEGIN { for (i = 0; i < n; i++)
	    printf "HLEN rq:done:%03x\n", i }' | rq_redis |
	    awk -v n=$BUCKETS '{ s += $1 } END { printf "%d\n", s / n }'
}

# bucket_pad MODE CALLS: pads every hash as bench_keyspace pads the
# keyspace (steady: the pass does not double them; doubling: it does,
# about halfway), for a pass that moves up to CALLS jobs into them, then
# looks them up until their rehashing is done (a lookup moves a step).
bucket_pad() {
	local size p n from
	size=$(bench_pad_size "$1" "$(bucket_fill)" $(( $2 / BUCKETS + 1 )) \
	    "$BUCKET_MIN")
	read -r p n <<<"$size"
	from=$(( $(rq_redis INCRBY bench:bpad:n "$n") - n ))
	awk -v b=$BUCKETS -v a="$from" -v z=$((from + n)) -v p="$p" 'BEGIN {
	    for (i = a; i < z; i++) for (j = 0; j < b; j++) {
	        f = "pad:" i
	        printf "*4\r\n$4\r\nHSET\r\n$11\r\nrq:done:%03x\r\n$%d\r\n%s\r\n$1\r\nx\r\n",
	            j, length(f), f }
	    for (i = 0; i < p / 2; i++) for (j = 0; j < b; j++)
	        printf "*3\r\n$7\r\nHEXISTS\r\n$11\r\nrq:done:%03x\r\n$1\r\nx\r\n", j }' |
	    rq_redis --pipe >/dev/null
}

# latency ARM PASS: ringq.mjs's latency pass (its dispatch latencies also
# to $T/ARM.hist), beside the moves in the buckets and settle arms.
latency() {
	local settler=
	case $1 in
	buckets | settle)
		redis-cli -p "$REDIS_PORT" -r -1 -i 0.01 EVALSHA "$SETTLE_SHA" \
		    2 rq:ended bench:settle:upto "$SETTLE_MS" 604800000 rq:job: \
		    rq:done: >/dev/null &
		settler=$! ;;
	esac
	if ! (cd "$BQ" && RQ_BENCH_LAT_HIST=$T/$1.hist node ringq.mjs \
	    latency "$REDIS_PORT" "$RATE" "$SECS" demo "$TO"); then
		[ -z "$settler" ] || kill "$settler" 2>/dev/null || true
		rq_fail "ringq.mjs latency at $RATE/s failed"
	fi
	[ -z "$settler" ] || { kill "$settler"; wait "$settler" || true; }
}

calls=$((RATE * SECS))
for ((pass = 1; pass <= PASSES; pass++)); do
	for arm in $ARMS; do
		case $arm in
		calls) keys=doubling hashes=steady ;;
		buckets) keys=steady hashes=doubling ;;
		settle | none) keys=steady hashes=steady ;;
		*) rq_fail "RQ_BENCH_ARMS: calls, buckets, settle or none, not '$arm'" ;;
		esac
		settle 0 >/dev/null
		bucket_pad "$hashes" "$calls"
		bench_keyspace "$keys" "$calls"
		before=$(bucket_fill)
		moved=$(rq_redis GET bench:settle:moved)
		line=$(bench_lat_pass grow "$calls" latency "$arm" "$pass") ||
		    exit 1
		echo "arm=$arm $line moved=$(( $(rq_redis GET bench:settle:moved) - ${moved:-0} )) bucket_fill=$before..$(bucket_fill)"
	done
done
# shellcheck disable=SC2086	# the arms' words
bench_arms_pooled "$RATE" "$PASSES" $ARMS
printf 'settings: redis-server %s appendonly yes appendfsync everysec; jobs moved %d ms after their end into %d hashes; %s; %d cores, %s; %s\n' \
    "$(bench_info server redis_version)" "$SETTLE_MS" "$BUCKETS" \
    "paced by $BENCH_GENERATOR" "$BENCH_NCPU" "$BENCH_PIN" \
    "$(date -u +%FT%TZ)"

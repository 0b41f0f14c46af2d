#!/usr/bin/env bash
# Dispatch throughput benchmark, run by hand (not part of deploy/test): jobs
# per second from enqueue to telserver acknowledgement, ringq (scheduler,
# dispatcher, two dry-run telservers) beside BullMQ (Queue.addBulk, a no-op
# Worker at its best concurrency) on the same redis-server in the same run;
# ringq's p99 dispatch latency at half the rate of each of its runs, just
# after it; then the p99 of each at half its best run's rate, on Redis key
# tables already grown (and ringq's once more on tables that double
# halfway through the pass: bench_lib.sh's bench_keyspace), and the p99
# of all the steady passes' jobs together (one pass is one draw of the
# host's slow stretches: docs/benchmarks.md, "Nineteenth session").  Prints
# a table; docs/benchmarks.md explains the method and keeps the figures.
#
#   tests/bench/bench_dispatch.sh          (RQ_BUILD=build)
# Environment: RQ_BUILD, RQ_BENCH_JOBS (20000 per throughput run),
# RQ_BENCH_RUNS (3: the best run of each counts), RQ_BENCH_CONCURRENCY
# (BullMQ concurrencies tried: "1 10 50 100 200 400"), RQ_BENCH_LAT_SECONDS
# (10), RQ_BENCH_FSYNC (everysec), RQ_BENCH_TELSERVERS (2),
# RQ_BENCH_ACCOUNTING (0; 1 runs accounting and PostgreSQL beside ringq, as
# in production: it is off the measured path, but takes CPU),
# RQ_BENCH_INFLIGHT (2: batches of 1,000 each load generator, ringq's and
# BullMQ's, has sent and not yet seen answered), RQ_BENCH_GENERATOR (c:
# ringq's throughput runs enqueue with tests/bench/rq_enqueue, C and
# hiredis as the gateway; node: with ringq.mjs's ioredis pipeline, which
# on this machine is the limit), RQ_BENCH_PIN (1: Redis's main thread on
# a CPU of its own, everything else on the others, bench_lib.sh's
# bench_pin; 0: no pinning), RQ_BENCH_REDIS_ARGS (more redis-server
# options), RQ_BENCH_TABLE_MIN (the smallest key table the padding aims
# at: bench_lib.sh's bench_keyspace), RQ_KEEP=1.
# Needs node (>= 18) and npm: BullMQ and ioredis are installed into
# tests/bench/bullmq/node_modules at the first run (npm install).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"
bench_pin "$@"

rq_need node npm redis-server redis-cli jq
JOBS=${RQ_BENCH_JOBS:-20000}
RUNS=${RQ_BENCH_RUNS:-3}
CONCS=${RQ_BENCH_CONCURRENCY:-1 10 50 100 200 400}
LAT_SECS=${RQ_BENCH_LAT_SECONDS:-10}
FSYNC=${RQ_BENCH_FSYNC:-everysec}
NTEL=${RQ_BENCH_TELSERVERS:-2}
BQ=$here/bullmq
bench_generator
GENERATOR="ringq's jobs enqueued by $BENCH_GENERATOR, batches of 1000, ${RQ_BENCH_INFLIGHT:-2} in flight"
TENANT=demo
ROWS=()

row() {
	ROWS+=("$(printf '%-44s %10s %9s %9s %9s' "$@")")
}

# kv NAME LINE: the value of NAME=... in a RQ_BENCH line.
kv() {
	sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"
}

# bench CMD...: runs a node script, keeps its output; prints its RQ_BENCH line.
bench() {
	local out line
	out=$(cd "$BQ" && node "$@" 2>&1) ||
	    { printf '%s\n' "$out" >&2; rq_fail "node $* failed"; }
	printf '%s\n' "$out" >> "$T/node.out"
	line=$(grep '^RQ_BENCH ' <<<"$out" | tail -n 1) ||
	    rq_fail "node $1 printed no result: $out"
	rq_log "$line"
	printf '%s\n' "$line"
}

# --- BullMQ from npm -----------------------------------------------------------
bench_node_modules
BULLMQ_VERSION=$(jq -r .version "$BQ/node_modules/bullmq/package.json")
IOREDIS_VERSION=$(jq -r .version "$BQ/node_modules/ioredis/package.json")

# --- Redis and ringq -----------------------------------------------------------
rq_need ss
# shellcheck disable=SC2086	# the options split as given
rq_start_redis --appendonly yes --appendfsync "$FSYNC" \
    --enable-debug-command local "${BENCH_PIN_REDIS[@]}" \
    ${RQ_BENCH_REDIS_ARGS:-}
ACCOUNTING=${RQ_BENCH_ACCOUNTING:-0}
[ "$ACCOUNTING" = 1 ] && rq_start_pg
REDIS_VERSION=$(bench_info server redis_version)

# Dry-run telservers (claim, JOB_ACK, finish as completed; no SIP), with
# room far above the load.
bench_dry_run_config 1000
TO=sip:bench@127.0.0.1:5060

start_ringq() {
	local i
	[ "$ACCOUNTING" = 1 ] && rq_start_daemon accounting
	rq_start_daemon scheduler
	rq_start_daemon dispatcher
	for ((i = 1; i <= NTEL; i++)); do
		bench_start_telserver "$i"
	done
	# the dispatcher knows a telserver from its first heartbeat (200 ms)
	sleep 1
}

stop_ringq() {
	local i
	for ((i = 1; i <= NTEL; i++)); do
		rq_stop_daemon "telserver:$i"
	done
	rq_stop_daemon dispatcher
	rq_stop_daemon scheduler
	[ "$ACCOUNTING" = 1 ] && rq_stop_daemon accounting
	return 0
}

# cpu_ticks NAME...: "name=ticks" (user + system) of processes started here.
cpu_ticks() {
	local n pid st
	for n in "$@"; do
		pid=$(rq_pid "$n")
		[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || continue
		st=$(cat "/proc/$pid/stat")
		st=${st##*) }
		# fields after the command: state is 1, utime 12, stime 13
		set -- $st
		printf '%s=%s ' "$n" $(( ${12} + ${13} ))
	done
}

# cpu_used BEFORE AFTER SECONDS: "name 45%" per process (of one core).
cpu_used() {
	awk -v b="$1" -v a="$2" -v ms="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		n = split(b, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); bt[kv[1]] = kv[2] }
		n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "=");
			if (kv[1] in bt) printf "%s %.0f%%  ", kv[1], (kv[2] - bt[kv[1]]) * 100000 / hz / ms }
	}'
}

PROCS=(redis scheduler dispatcher)
[ "$ACCOUNTING" = 1 ] && PROCS+=(accounting)
for ((i = 1; i <= NTEL; i++)); do
	PROCS+=("telserver-$i")
done

# redis_top JOBS: Redis's busiest commands since the last CONFIG RESETSTAT,
# per job: "cmd calls/job usec/job" (where Redis's time goes).
redis_top() {
	rq_redis INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v jobs="$1" '
	    /^cmdstat_/ { sub("cmdstat_", "", $1)
		printf "%s %.2f %.1f\n", $1, $3 / jobs, $5 / jobs }' |
	    sort -k3 -n -r | head -n 8
}

# ringq_up: starts ringq and warms it up (scripts loaded, connections made).
ringq_up() {
	start_ringq
	bench ringq.mjs throughput "$REDIS_PORT" 2000 "$TENANT" "$TO" >/dev/null
}

# ringq_lat_pass MODE RATE: ringq's latency pass at RATE as bench_lib.sh's
# bench_lat_pass runs it, on key tables already grown (steady) or doubling
# halfway; prints its line, fails when a job was not dispatched.
# The steady passes' latencies also go to $T/steady.hist, pooled at the end.
ringq_lat_pass() {
	local lat
	lat=$(if [ "$1" = steady ]; then
		export RQ_BENCH_LAT_HIST=$T/steady.hist
	fi
	bench_lat_pass "$1" $(($2 * LAT_SECS)) bench ringq.mjs \
	    latency "$REDIS_PORT" "$2" "$LAT_SECS" "$TENANT" "$TO")
	[ "$(kv not_dispatched "$lat")" = 0 ] ||
	    rq_fail "ringq at $2/s: $(kv not_dispatched "$lat") jobs not dispatched"
	printf '%s\n' "$lat"
}

# lat_row NAME LINE [PREFIX]: a row of the latency table, LINE's rate and
# its PREFIXp50_ms, PREFIXp99_ms and PREFIXmax_ms.
lat_row() {
	printf '%-44s %10s %9s %9s %9s\n' "$1" "$(kv rate "$2")" \
	    "$(kv "${3:-}p50_ms" "$2")" "$(kv "${3:-}p99_ms" "$2")" \
	    "$(kv "${3:-}max_ms" "$2")"
}

# pair_latency RUN RATE: ringq's latency pass (steady tables) at RATE, half
# the rate of the throughput run just made.  The host's speed drifts by a
# third from minute to minute, and a pass's p99 varies from pass to pass
# at one rate (docs/benchmarks.md, "Nineteenth session"): the pass at half
# the best run's rate is one sample, measured minutes after that run;
# these are more, each at half of a maximum the host gave just before.
LROWS=()
PAIR_P99=
STEADY_PASSES=0	# in $T/steady.hist
pair_latency() {
	local lat
	lat=$(ringq_lat_pass steady "$2")
	STEADY_PASSES=$((STEADY_PASSES + 1))
	LROWS+=("$(lat_row "ringq release -> claim, half of run $1" "$lat")")
	PAIR_P99+="${PAIR_P99:+; }$(kv p99_ms "$lat") ms at $(kv rate "$lat")/s ($(kv rewrites "$lat") AOF rewrites)"
}

# Redis's key tables grown first, as for a latency pass at half of 30,000
# jobs/s: the latency passes between the runs pad them (bench_keyspace),
# and every throughput run, BullMQ's and ringq's, first or last, should
# find them the same size.
bench_keyspace steady $((15000 * LAT_SECS))

# --- BullMQ's best concurrency, first --------------------------------------------
# The ringq daemons are stopped whenever BullMQ runs: it has the machine to
# itself.
best_bq=0
best_c=
sweep=$(( JOBS / 2 ))
for c in $CONCS; do
	line=$(bench bullmq.mjs throughput "$REDIS_PORT" "$sweep" "$c")
	r=$(kv rate "$line")
	row "BullMQ sweep: concurrency $c, $sweep jobs" "$r" \
	    "$(kv add_ms "$line")" "$(kv total_ms "$line")" ""
	if (( r > best_bq )); then
		best_bq=$r
		best_c=$c
	fi
done

# --- the runs, ringq and BullMQ in turn ----------------------------------------
# Alternating, each system's runs see the same machine: on a shared host its
# speed drifts by more than a tenth from one minute to the next.
best_rq=0
best_rq_line=
best_rq_cpu=
best_bq=0
PAIRS=
for ((i = 1; i <= RUNS; i++)); do
	ringq_up
	rq_redis CONFIG RESETSTAT >/dev/null
	c0=$(cpu_ticks "${PROCS[@]}")
	line=$(bench ringq.mjs throughput "$REDIS_PORT" "$JOBS" "$TENANT" "$TO")
	c1=$(cpu_ticks "${PROCS[@]}")
	RQ_TOP=$(redis_top "$JOBS")
	r=$(kv rate "$line")
	# the latency at half this run's rate, on the same minute's machine
	if (( r > 0 )); then
		pair_latency "$i" $((r / 2))
	fi
	stop_ringq
	rq_log "CPU during run $i ($(kv total_ms "$line") ms): $(cpu_used "$c0" "$c1" "$(kv total_ms "$line")")"
	row "ringq run $i: $JOBS jobs" "$r" "$(kv add_ms "$line")" \
	    "$(kv total_ms "$line")" ""
	if (( r > best_rq )); then
		best_rq=$r
		best_rq_line=$line
		best_rq_cpu=$(cpu_used "$c0" "$c1" "$(kv total_ms "$line")")
	fi

	rq_redis CONFIG RESETSTAT >/dev/null
	line=$(bench bullmq.mjs throughput "$REDIS_PORT" "$JOBS" "$best_c")
	BQ_TOP=$(redis_top "$JOBS")
	b=$(kv rate "$line")
	row "BullMQ run $i: $JOBS jobs, concurrency $best_c" "$b" \
	    "$(kv add_ms "$line")" "$(kv total_ms "$line")" ""
	if (( b > best_bq )); then
		best_bq=$b
	fi
	PAIRS+="$(awk -v a="$r" -v b="$b" \
	    'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }') "
done
(( best_rq > 0 )) || rq_fail "ringq dispatched nothing: $best_rq_line"
# Jobs the dry-run telservers could not finish would be retried: none.
other=$(kv other "$best_rq_line")

# --- latency at half each one's best rate ----------------------------------------
ringq_up
half_rq=$((best_rq / 2))
lat_rq=$(ringq_lat_pass steady "$half_rq")
STEADY_PASSES=$((STEADY_PASSES + 1))
lat_rq2=$(ringq_lat_pass doubling "$half_rq")
stop_ringq
half_bq=$((best_bq / 2))
lat_bq=$(bench_lat_pass steady $((half_bq * LAT_SECS)) bench bullmq.mjs \
    latency "$REDIS_PORT" "$half_bq" "$LAT_SECS" "$best_c")

# --- results -------------------------------------------------------------------
pooled=" $(bench_hist_line "$T/steady.hist")"	# kv wants a space before a name
ratio=$(awk -v a="$best_rq" -v b="$best_bq" 'BEGIN { printf "%.2f", a / b }')
printf '\n%-44s %10s %9s %9s %9s\n' "throughput (enqueue -> telserver ack)" \
    "jobs/s" "add ms" "total ms" ""
printf '%s\n' "${ROWS[@]}"
printf '\n%-44s %10s %9s %9s %9s\n' "latency at half the max rate" "rate/s" \
    "p50 ms" "p99 ms" "max ms"
lat_row "ringq release -> claim (dispatch)" "$lat_rq"
lat_row "ringq enqueue -> claim (with scheduler)" "$lat_rq" enq_
lat_row "ringq release -> claim, tables doubling" "$lat_rq2"
printf '%s\n' "${LROWS[@]}"
lat_row "BullMQ add -> processor (c=$best_c)" "$lat_bq"

cat <<EOF

ringq best:  $best_rq jobs/s (scheduler, dispatcher, $NTEL dry-run telservers$([ "$ACCOUNTING" = 1 ] && echo ", accounting"); other events: $other)
  $GENERATOR
  CPU of one core during that run: $best_rq_cpu
  Redis commands per ringq job, last run (calls, usec of Redis CPU; commands run by scripts count in both):
$(sed 's/^/    /' <<<"$RQ_TOP")
BullMQ best: $best_bq jobs/s (BullMQ $BULLMQ_VERSION, ioredis $IOREDIS_VERSION, one Worker in its own process, concurrency $best_c, Queue.addBulk batches of 1000, ${RQ_BENCH_INFLIGHT:-2} in flight, removeOnComplete)
  Redis commands per BullMQ job, last run (same):
$(sed 's/^/    /' <<<"$BQ_TOP")
ratio ringq/BullMQ: $ratio, best against best (target >= 2); run by run: $PAIRS
ringq p99 dispatch latency at $(kv rate "$lat_rq")/s, half the best run's rate: $(kv p99_ms "$lat_rq") ms (target < 5 ms); $(kv p99_ms "$lat_rq2") ms while Redis doubles its key tables
ringq p99 dispatch latency at half each run's rate, just after it: $PAIR_P99
ringq p99 dispatch latency, those $STEADY_PASSES steady passes' jobs together: $(kv p99_ms "$pooled") ms over $(kv jobs "$pooled") jobs (p50 $(kv p50_ms "$pooled"), max $(kv max_ms "$pooled"))
AOF rewrites during the latency passes (each begins just after one ends): ringq $(kv rewrites "$lat_rq"), ringq doubling $(kv rewrites "$lat_rq2"), BullMQ $(kv rewrites "$lat_bq")
Redis main-thread CPU per call in the latency passes: ringq $(kv redis_us_per_call "$lat_rq") µs, ringq doubling $(kv redis_us_per_call "$lat_rq2"), BullMQ $(kv redis_us_per_call "$lat_bq")
Redis key tables (keys/table size, expiring keys/table size; before..after): ringq $(kv tables "$lat_rq"), ringq doubling $(kv tables "$lat_rq2"), BullMQ $(kv tables "$lat_bq")
settings: redis-server $REDIS_VERSION appendonly yes appendfsync $FSYNC; $JOBS jobs per run, best of $RUNS; $BENCH_NCPU cores, $BENCH_PIN; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)
EOF

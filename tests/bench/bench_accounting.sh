#!/usr/bin/env bash
# Accounting benchmark, run by hand (not part of deploy/test): how fast
# ringq-accounting stores the rq:events stream in PostgreSQL, beside
# PostgreSQL's own COPY of the same rows in the same run.
#  1. ringq-accounting: CALLS calls of six events each (queued, scheduled,
#     dispatched, ringing, answered, completed), written into rq:events as
#     the lifecycle scripts write them (values as text, mirrored in Redis
#     already), in waves of 1,000 calls so that a batch holds many calls
#     as on a busy system.  Events per second from the first write to the
#     stream drained (every event stored, acknowledged and deleted), and
#     the CPU per event of accounting and of its PostgreSQL backend.
#  2. The peer: psql's COPY FROM STDIN of the rows that end up stored (the
#     events, then each call's and attempt's final row) into empty tables
#     made LIKE the real ones (same columns, constraints and indexes).
#     The ceiling for loading this data, without what accounting adds:
#     reading the stream, exactly-once (an event stored twice changes
#     nothing), each call and attempt row moved forward event by event.
#
#   tests/bench/bench_accounting.sh        (RQ_BUILD=build)
# Environment: RQ_BUILD, RQ_BENCH_CALLS (10000), RQ_BENCH_RUNS (3: the
# best run of each counts), RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

PY=/usr/bin/python3
CALLS=${RQ_BENCH_CALLS:-10000}
RUNS=${RQ_BENCH_RUNS:-3}
EVENTS=$((CALLS * 6))

# data.py CALLS SEED DIR: DIR/events.resp (the XADDs, RESP for redis-cli
# --pipe) and, for the peer, DIR/events.copy, calls.copy and attempts.copy
# (COPY text format) holding what accounting stores from them.
cat > "$T/data.py" <<'EOF'
import random, sys
calls, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
random.seed(seed)
t0 = 1795255200000
def resp(a):
    b = [b"*%d\r\n" % len(a)]
    for x in a:
        x = str(x).encode()
        b.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(b)
def ts(ms):
    return "%d-11-21 %02d:%02d:%02d.%03d+00" % (2026, ms // 3600000 % 24,
        ms // 60000 % 60, ms // 1000 % 60, ms % 1000)
x, ev, ca, at = [], [], [], []
for w in range(0, calls, 1000):
    wave = [("c_%024x" % random.getrandbits(96), t0 + (w + k) * 10)
            for k in range(min(1000, calls - w))]
    steps = [
        ("queued", 0, 0, ["tenant", "demo", "to", "+15551234567"]),
        ("scheduled", 0, 5, ["tenant", "demo", "to", "+15551234567"]),
        ("dispatched", 1, 20, ["node", "tel1"]),
        ("ringing", 1, 400, ["node", "tel1", "sip_code", "180",
                             "started_ms", None]),
        ("answered", 1, 3000, ["node", "tel1", "sip_code", "200",
                               "started_ms", None, "answered_ms", None]),
        ("completed", 1, 9000, ["node", "tel1", "duration_ms", "6000",
                                "started_ms", None, "answered_ms", None])]
    for status, attempt, dt, extra in steps:
        for cid, t in wave:
            f = list(extra)
            for i in range(1, len(f), 2):
                if f[i] is None:
                    f[i] = t + (25 if f[i - 1] == "started_ms" else 3000)
            x.append(resp(["XADD", "rq:events", "*", "call_id", cid,
                           "attempt", attempt, "status", status,
                           "ts_ms", t + dt] + f + ["timeline", "1"]))
            d = dict(zip(f[0::2], f[1::2]))
            ev.append("\t".join([cid, str(attempt), status, ts(t + dt),
                r"\N", d.get("sip_code", r"\N"), d.get("node", r"\N"),
                d.get("duration_ms", r"\N"), r"\N", r"\N"]))
    for cid, t in wave:
        # sip_code NULL: the completed event, which sets the rows, has none
        ca.append("\t".join([cid, "demo", "+15551234567", "completed",
            r"\N", r"\N", "1", ts(t), ts(t + 9000), ts(t + 3000),
            ts(t + 9000), "6000", "22", r"\N", "outbound"]))
        at.append("\t".join([cid, "1", "tel1", "completed", r"\N", r"\N",
            ts(t + 25), ts(t + 3000), ts(t + 9000), "6000", r"\N"]))
open(out + "/events.resp", "wb").write(b"".join(x))
for name, rows in (("events", ev), ("calls", ca), ("attempts", at)):
    open(out + "/%s.copy" % name, "w").write("\n".join(rows) + "\n")
EOF

rq_start_pg
rq_start_redis --appendonly yes --appendfsync everysec
rq_write_config </dev/null
sed -i -e 's/^debug = yes$/debug = no/' "$RQ_CONF"
rq_start_daemon accounting
rq_wait_for 10 grep -q "postgres: connected" "$T/accounting.log"
APID=$(rq_pid accounting)
BPID=$(rq_psql "SELECT pid FROM pg_stat_activity
    WHERE application_name = 'ringq-accounting'" | head -n 1)
[ -n "$BPID" ] || rq_fail "no PostgreSQL backend for accounting"
rq_psql "CREATE TABLE bench_events (LIKE call_events INCLUDING ALL);
    CREATE TABLE bench_calls (LIKE calls INCLUDING ALL);
    CREATE TABLE bench_attempts (LIKE attempts INCLUDING ALL)" >/dev/null
HZ=$(getconf CLK_TCK)

# per_event TICKS: CPU microseconds per event
per_event() {
	awk -v t="$1" -v n="$EVENTS" -v hz="$HZ" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'
}
now_ns() { date +%s%N; }

best_acct=0 best_copy=0
for ((run = 1; run <= RUNS; run++)); do
	mkdir -p "$T/data"
	"$PY" "$T/data.py" "$CALLS" "$run" "$T/data"
	rq_psql "TRUNCATE calls, attempts, call_events, bench_events,
	    bench_calls, bench_attempts; CHECKPOINT" >/dev/null

	# 1. accounting, idle until the stream fills
	a0=$(bench_cpu_ticks "$APID") p0=$(bench_cpu_ticks "$BPID")
	s=$(now_ns)
	redis-cli -p "$REDIS_PORT" --pipe < "$T/data/events.resp" >/dev/null
	# polled every 20 ms (rq_wait_for's 100 would blur the figure)
	deadline=$(( $(now_ns) + 300000000000 ))
	until rq_events_drained; do
		(( $(now_ns) < deadline )) || rq_fail "accounting did not drain in 300 s"
		sleep 0.02
	done
	e=$(now_ns)
	a1=$(bench_cpu_ticks "$APID") p1=$(bench_cpu_ticks "$BPID")
	stored=$(rq_psql "SELECT count(*) FROM call_events")
	[ "$stored" = "$EVENTS" ] ||
	    rq_fail "accounting stored $stored events of $EVENTS"
	[ "$(rq_psql "SELECT count(*) FROM calls WHERE status = 'completed'
	    AND talk_ms = 6000 AND sip_code IS NULL")" = "$CALLS" ] ||
	    rq_fail "calls not all completed with their talk time"
	acct=$(( EVENTS * 1000000000 / (e - s) ))
	rq_log "run $run: accounting $acct events/s"
	(( acct > best_acct )) && best_acct=$acct &&
	    acct_cpu="$(per_event $((a1 - a0))) / $(per_event $((p1 - p0)))"

	# 2. COPY of the same rows, in one psql session
	cat > "$T/copy.sql" <<EOF
\\copy bench_events (call_id, attempt, status, at, reason, sip_code, node, duration_ms, detail, result) FROM '$T/data/events.copy'
\\copy bench_calls (id, tenant, target, status, reason, sip_code, attempts, created_at, updated_at, answered_at, ended_at, talk_ms, status_rank, result, direction) FROM '$T/data/calls.copy'
\\copy bench_attempts (call_id, attempt, node, status, reason, sip_code, started_at, answered_at, ended_at, talk_ms, result) FROM '$T/data/attempts.copy'
EOF
	s=$(now_ns)
	psql -X -q -v ON_ERROR_STOP=1 -d ringq -f "$T/copy.sql" >/dev/null
	e=$(now_ns)
	[ "$(rq_psql "SELECT count(*) FROM bench_events")" = "$EVENTS" ] ||
	    rq_fail "COPY loaded the wrong number of rows"
	copy=$(( EVENTS * 1000000000 / (e - s) ))
	rq_log "run $run: COPY $copy events/s"
	(( copy > best_copy )) && best_copy=$copy
done

# Space per call of the last run's rows, tables with their indexes, once
# VACUUM has reclaimed the row versions the updates left.
rq_psql "VACUUM calls, attempts, call_events" >/dev/null
space=$(rq_psql "SELECT string_agg(t || ' ' || pg_total_relation_size(t::regclass) / $CALLS, ', ')
    FROM unnest(ARRAY['calls', 'attempts', 'call_events']) AS t")

printf '\n%-58s %12s\n' "what (best of $RUNS runs, $EVENTS events)" "events/s"
printf '%-58s %12s\n' "ringq-accounting: rq:events -> PostgreSQL" "$best_acct"
printf '%-58s %12s\n' "PostgreSQL COPY of the same rows (peer)" "$best_copy"
printf '\nCPU per event in accounting'"'"'s best run, us: accounting / its PostgreSQL backend: %s\n' "$acct_cpu"
printf 'Bytes per call on disk, with indexes (last run, after VACUUM): %s\n' "$space"
printf '(%s calls x 6 events; PostgreSQL %s, Redis %s with appendfsync everysec)\n' \
    "$CALLS" "$(rq_psql "SHOW server_version" | cut -d' ' -f1)" \
    "$(rq_redis INFO server | tr -d '\r' | sed -n 's/^redis_version://p')"
rq_stop_daemon accounting

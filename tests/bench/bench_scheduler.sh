#!/usr/bin/env bash
# Scheduler precision benchmark, run by hand (not part of deploy/test).
#  1. Lateness: N jobs (10,000) due within the same second, written straight
#     into Redis as the gateway writes them (rq:job hash + rq:delayed);
#     lateness = the `scheduled` event's ts_ms (Redis's clock, taken inside
#     the release script) - the job's not_before_ms.
#  2. Dispatch latency at a rate below the telservers' capacity: jobs due
#     one every 1000/RATE ms, a real dispatcher and dry-run telservers (they
#     claim and finish without SIP); latency = `dispatched` ts_ms (the
#     telserver's claim, just before its INVITE) - `scheduled` ts_ms.
# Prints p50/p99/max of each, and the 5 s poll of Sidekiq and River for
# comparison.  Targets (issue 4): p99 lateness < 50 ms, max < 500 ms.
#
#   tests/bench/bench_scheduler.sh         (RQ_BUILD=build)
# Environment: RQ_BUILD, RQ_BENCH_JOBS (10000), RQ_BENCH_RATE (200 jobs/s),
# RQ_BENCH_SECONDS (10: length of part 2), RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD

PY=/usr/bin/python3
N=${RQ_BENCH_JOBS:-10000}
RATE=${RQ_BENCH_RATE:-200}
SECS=${RQ_BENCH_SECONDS:-10}
CAP=200			# per telserver; two telservers

# jobs.py PORT PREFIX COUNT START_MS STEP_MS|random: writes COUNT jobs with
# RESP through redis-cli --pipe, due at START_MS + i * STEP_MS, or at a
# random ms of [START_MS, START_MS + 1000) with "random".
cat > "$T/jobs.py" <<'EOF'
import random, subprocess, sys
port, prefix, count, start, step = sys.argv[1:6]
count, start = int(count), int(start)
def resp(*a):
    out = [b"*%d\r\n" % len(a)]
    for x in a:
        x = str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)
buf = []
for i in range(count):
    cid = "c_%s%0*x" % (prefix, 24 - len(prefix), i)
    due = start + (random.randrange(1000) if step == "random"
                   else int(i * float(step)))
    buf.append(resp("HSET", "rq:job:" + cid, "id", cid, "tenant", "demo",
                    "to", "+15551234567", "say", "bench", "priority", 5,
                    "not_before_ms", due, "created_ms", start - 5000,
                    "max_attempts", 3))
    buf.append(resp("ZADD", "rq:calls:demo", start - 5000, cid))
    buf.append(resp("ZADD", "rq:delayed", due, cid))
subprocess.run(["redis-cli", "-p", port, "--pipe"], input=b"".join(buf),
               check=True, stdout=subprocess.DEVNULL)
EOF

# stats.py PORT WHAT: reads rq:events and the job hashes, prints the
# percentiles of WHAT: "lateness" (scheduled - due) or "dispatch"
# (dispatched - scheduled).
cat > "$T/stats.py" <<'EOF'
import json, subprocess, sys
port, what = sys.argv[1:3]
def cli(*a):
    r = subprocess.run(["redis-cli", "-p", port, "--json"] + list(a),
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)
sched, disp = {}, {}
last = "-"
while True:
    chunk = cli("XRANGE", "rq:events", last, "+", "COUNT", "5000")
    if last != "-":
        chunk = chunk[1:]
    if not chunk:
        break
    for eid, f in chunk:
        d = dict(zip(f[::2], f[1::2]))
        if d["status"] == "scheduled":
            sched[d["call_id"]] = int(d["ts_ms"])
        elif d["status"] == "dispatched" and d["attempt"] == "1":
            disp[d["call_id"]] = int(d["ts_ms"])
    last = chunk[-1][0]
if what == "lateness":
    ids = sorted(sched)
    p = subprocess.Popen(["redis-cli", "-p", port], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate("".join("HGET rq:job:%s not_before_ms\n" % i
                                   for i in ids))
    dues = [int(x) for x in out.split()]
    v = sorted(sched[i] - d for i, d in zip(ids, dues))
else:
    v = sorted(disp[i] - sched[i] for i in disp if i in sched)
if not v:
    print("no samples"); sys.exit(1)
def pct(q):
    return v[min(len(v) - 1, int(q * len(v)))]
print("%d %d %d %d %d" % (len(v), pct(0.5), pct(0.99), v[-1], v[0]))
EOF

rq_start_redis
rq_write_config <<EOF
[telserver]
dry_run = yes
capacity = $CAP
EOF
rq_start_daemon scheduler
tick=$(sed -n 's/.*started: tick \([0-9]*\) ms, batch \([0-9]*\).*/\1 ms, batch \2/p' "$T/scheduler.log")

# 1. N jobs due in the same second, 3 s from now (writing takes < 1 s).
start=$(( $(rq_now_ms) + 3000 ))
$PY "$T/jobs.py" "$REDIS_PORT" a "$N" "$start" random
w=$(( $(rq_now_ms) - start + 3000 ))
(( w < 2500 )) || rq_fail "writing $N jobs took $w ms: no time left before they are due"
released() { [ "$(rq_redis XLEN rq:events)" -ge "$N" ]; }
rq_wait_for 30 released
read -r n p50 p99 max min <<<"$($PY "$T/stats.py" "$REDIS_PORT" lateness)"
[ "$n" = "$N" ] || rq_fail "$n of $N jobs recorded scheduled"
echo "scheduler lateness, $N jobs due within one second (tick $tick):"
printf '  ringq          p50 %5d ms   p99 %5d ms   max %5d ms   (min %d ms)\n' \
    "$p50" "$p99" "$max" "$min"
echo "  Sidekiq, River p50 ~2500 ms   p99 ~4950 ms   max ~5000 ms   (their default 5 s poll: a job waits up to one poll; not installed, not measured)"
ok=yes
(( p99 < 50 && max < 500 )) || ok=no
echo "  target p99 < 50 ms, max < 500 ms: $ok"

# 2. Dispatch latency below capacity: RATE jobs/s for SECS s, two dry-run
# telservers of capacity CAP each.
rq_redis DEL rq:events rq:ready >/dev/null
rq_start_daemon dispatcher
rq_start_daemon telserver
sed -e "s|^run_dir = .*|run_dir = $T/run-b|" \
    -e "s|^sip_url = .*|sip_url = sip:127.0.0.1:$(rq_free_port)|" \
    "$RQ_CONF" > "$T/b.conf"
printf '\n[telserver]\nname = bench-b\n' >> "$T/b.conf"
RQ_CONF=$T/b.conf rq_start_daemon telserver:b
sleep 1
M=$(( RATE * SECS ))
start=$(( $(rq_now_ms) + 1000 ))
$PY "$T/jobs.py" "$REDIS_PORT" b "$M" "$start" "$(awk "BEGIN { print 1000 / $RATE }")"
# Done when every job left rq:delayed, rq:ready and rq:inflight (claimed).
drained() {
	[ "$(rq_redis ZCARD rq:delayed)" = 0 ] &&
	    [ "$(rq_redis ZCARD rq:ready)" = 0 ] &&
	    [ "$(rq_redis ZCARD rq:inflight)" = 0 ]
}
sleep "$SECS"
rq_wait_for 30 drained
read -r n p50 p99 max min <<<"$($PY "$T/stats.py" "$REDIS_PORT" dispatch)"
echo "dispatch latency, scheduled -> claimed (before the INVITE), $M jobs at $RATE/s, 2 dry-run telservers of capacity $CAP:"
printf '  ringq          p50 %5d ms   p99 %5d ms   max %5d ms   (%d samples)\n' \
    "$p50" "$p99" "$max" "$n"
rq_check_sanitizers

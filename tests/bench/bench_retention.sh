#!/usr/bin/env bash
# What ended calls cost Redis when their retention ends: the schedulers'
# step for rq:ended (scheduler/ended.c: the job, its id in its tenant's
# list and in rq:ended, in batches of SCHED_ENDED_BATCH), beside Redis's
# own expiry of the same jobs given a TTL instead (as ended calls had
# before module version 7), and then the lists' sweep taking their ids
# out of the tenant's list (scheduler/lists.c), on the same
# redis-server.  The calls with a TTL were created 8 days ago (the
# default retention is 7), so that the lists' sweep looks at their ids,
# as it did at a retention after their creation; those in rq:ended 7 days
# and half an hour ago, which the sweep leaves to rq:ended for an hour
# more (SCHED_LISTS_GRACE_MS), as it does most calls now.  Prints, for
# each, the calls a second taken out of Redis and Redis's main-thread CPU
# a call, and what a call held in Redis's memory (used_memory over the
# calls loaded: its job, its place in the list, and its place in
# rq:ended or its TTL).  Run by hand (not part of deploy/test);
# docs/benchmarks.md keeps figures.
#
#   tests/bench/bench_retention.sh            (RQ_BUILD=build)
# Environment: RQ_BENCH_CALLS (200000), RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

rq_need redis-server redis-cli python3
N=${RQ_BENCH_CALLS:-200000}
[[ $N =~ ^[1-9][0-9]*$ ]] || rq_fail "RQ_BENCH_CALLS is a count (not '$N')"

# jobs PREFIX AT HOW AGE: N ended calls' jobs as a dry-run call leaves
# them (its fields and six timeline entries, about 700 bytes), created AGE
# ms ago, each in the demo tenant's list; HOW: "ended" puts each in
# rq:ended at AT (ms), "ttl" gives each a TTL to AT instead.  One pipe of
# Redis's protocol.
jobs() {
	python3 - "$1" "$2" "$3" "$4" "$N" <<'PY' | rq_redis --pipe >/dev/null
import sys, time
prefix, at, how, age = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
n = int(sys.argv[5])
now = int(time.time() * 1000)
out = sys.stdout.buffer
def cmd(*args):
    b = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        b.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(b))
for i in range(n):
    cid = "%s%08d" % (prefix, i)
    key = "rq:job:" + cid
    ts = now - age
    tl = []
    for att, st in ((0, "queued"), (0, "scheduled"), (1, "dispatched"),
                    (1, "ringing"), (1, "answered"), (1, "completed")):
        tl += ["%d:%s" % (att, st),
               '{"status":"%s","attempt":%d,"ts_ms":%d,"node":"tel-1"}'
               % (st, att, ts)]
    cmd("HSET", key, "id", cid, "tenant", "demo", "to", "+15551234567",
        "say", "Hello from ringq", "priority", "5", "not_before_ms", ts,
        "created_ms", ts, "attempts", "1", "dialed", "1", "node", "tel-1",
        "status", "completed", "status_rank", "22", "updated_ms", ts, *tl)
    cmd("ZADD", "rq:calls:demo", ts, cid)
    if how == "ended":
        cmd("ZADD", "rq:ended", at, cid)
    else:
        cmd("PEXPIREAT", key, at)
PY
}

# main_cpu: seconds of CPU Redis's main thread has used.
main_cpu() {
	rq_redis INFO cpu | tr -d '\r' | awk -F: '
	/^used_cpu_(sys|user)_main_thread:/ { s += $2 }
	END { printf "%.6f", s }'
}

# memory: Redis's used_memory, once its AOF buffer is written.
memory() {
	sleep 1.5
	bench_info memory used_memory
}

# report WHAT CPU0 T0: the calls a second and CPU a call since CPU0, T0.
report() {
	awk -v what="$1" -v c0="$2" -v c1="$(main_cpu)" -v t0="$3" \
	    -v t1="$(rq_now_ms)" -v n="$N" 'BEGIN {
	    printf "%-44s %8d calls/s  %6.2f us of Redis a call\n", what,
	        n * 1000 / (t1 - t0), (c1 - c0) * 1e6 / n }'
}

# no AOF rewrite: its child would take the other core mid-measure
# by_scheduler WHAT DONE: starts a scheduler, waits for DONE (a function),
# reports what it took from its start, stops it.
by_scheduler() {
	local c0 t0
	c0=$(main_cpu) t0=$(rq_now_ms)
	rq_start_daemon scheduler
	rq_wait_for 300 "$2"
	report "$1" "$c0" "$t0"
	rq_stop_daemon scheduler
}

rq_start_redis --appendonly yes --appendfsync everysec \
    --hash-max-listpack-value 128 --auto-aof-rewrite-percentage 0
rq_write_config <<EOF
[scheduler]
EOF

echo "$N ended calls each way; redis-server $(bench_info server redis_version), $(nproc) cores"

# ringq: the scheduler's step for rq:ended, from the moment it starts.
m0=$(memory)
jobs e "$(rq_now_ms)" ended $(( 7 * 86400000 + 1800000 ))
[ "$(rq_redis ZCARD rq:ended)" = "$N" ] || rq_fail "rq:ended holds $(rq_redis ZCARD rq:ended) ids, not $N"
echo "ringq: $(( ($(memory) - m0) / N )) bytes of Redis memory a call held"
ended_gone() { [ "$(rq_redis ZCARD rq:ended)" = 0 ]; }
by_scheduler "ringq: rq:ended, deleted by the scheduler" ended_gone
[ "$(rq_redis EXISTS rq:calls:demo)" = 0 ] &&
    [ -z "$(rq_redis --scan --pattern 'rq:job:e*' | head -n 1)" ] ||
    rq_fail "calls left behind: $(rq_redis ZCARD rq:calls:demo) ids in the list"

# Redis: the same jobs with a TTL, from the moment they expire (all at
# once, after the load).
keys=$(rq_redis DBSIZE)
m0=$(memory)
at=$(( $(rq_now_ms) + 8000 + N / 20 ))
jobs t "$at" ttl $(( 8 * 86400000 ))
echo "Redis: $(( ($(memory) - m0) / N )) bytes of Redis memory a call held"
(( $(rq_now_ms) < at - 500 )) || rq_fail "the jobs took longer to load than their TTL"
while (( $(rq_now_ms) < at )); do sleep 0.05; done
c0=$(main_cpu) t0=$(rq_now_ms)
expired() { [ "$(rq_redis DBSIZE)" = $((keys + 1)) ]; }
rq_wait_for 300 expired
report "Redis: the same jobs expiring by their TTL" "$c0" "$t0"
[ "$(rq_redis ZCARD rq:calls:demo)" = "$N" ] ||
    rq_fail "the list holds $(rq_redis ZCARD rq:calls:demo) ids, not $N"
list_gone() { [ "$(rq_redis EXISTS rq:calls:demo)" = 0 ]; }
by_scheduler "  then the lists' sweep, their ids" list_gone

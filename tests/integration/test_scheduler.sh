#!/usr/bin/env bash
# ringq-scheduler against a real redis-server, with a Python ROUTER standing
# in for accounting: due jobs move to rq:ready in priority order, a future
# job is released on time, full batches run again at once, an expired lease
# goes back to rq:ready, and each released job is reported as queued (at
# its created_ms: the gateway's own event may have been lost) and then as
# scheduled.
. "$RQ_SOURCE/tests/integration/lib.sh"

PY=/usr/bin/python3
rq_need_pyzmq

# acct.py ENDPOINT OUT: a fake accounting that writes each EVENT as
# "call_id attempt status tenant to" to OUT, and "call_id attempt status
# ts_ms" to OUT.ts, and acknowledges it.
cat > "$T/acct.py" <<'EOF'
import sys
import msgpack, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
s.bind(sys.argv[1])
out = open(sys.argv[2], "a", buffering=1)
ots = open(sys.argv[2] + ".ts", "a", buffering=1)
while True:
    ident, body = s.recv_multipart()
    v, t, f = msgpack.unpackb(body, strict_map_key=False)
    if t != 5:
        continue
    out.write("%s %d %s %s %s\n" % (f[1], f[2], f[7], f.get(3, "-"),
                                    f.get(4, "-")))
    ots.write("%s %d %s %d\n" % (f[1], f[2], f[7], f[10]))
    s.send_multipart([ident, msgpack.packb([1, 6, {1: f[1], 2: f[2],
                                                   7: f[7]}])])
EOF

now_ms() { date +%s%3N; }

# job_add ID PRIORITY NOT_BEFORE_MS [ZSET SCORE]: creates a job the way the
# gateway does (docs/architecture.md): one MULTI with the job hash,
# rq:delayed, the 0:queued timeline entry and the tenant index.  With ZSET,
# the id goes there instead of rq:delayed (a job a dispatcher has taken).
job_add() {
	local id=$1 prio=$2 nb=$3 zset=${4:-rq:delayed} zscore=${5:-$3} now
	now=$(now_ms)
	rq_redis >/dev/null <<EOF
MULTI
HSET rq:job:$id id $id tenant demo to +15551234567 say "hello there" caller_id +15550000000 priority $prio not_before_ms $nb callback_url "" metadata "{}" created_ms $now max_attempts 3
ZADD $zset $zscore $id
HSET rq:timeline:$id 0:queued "{\"status\":\"queued\",\"attempt\":0,\"ts_ms\":$now}"
ZADD rq:calls:demo $now $id
EXEC
EOF
}

cid() { printf 'c_%024x' "$1"; }

rq_start_redis
rq_write_config <<EOF
[scheduler]
tick_ms = 20
batch = 2
EOF
$PY "$T/acct.py" "tcp://127.0.0.1:$RQ_EVENTS_PORT" "$T/events" \
    >"$T/acct.log" 2>&1 &
rq_track acct $!
: > "$T/events"

"$RQ_BUILD/scheduler/ringq-scheduler" -f "$RQ_CONF" -n | grep -q "configuration OK" ||
	rq_fail "-n does not accept the test configuration"

# 1. Jobs already due, added before the scheduler runs: released in priority
# order, then oldest first; a due id whose job vanished is dropped.
t0=$(( $(now_ms) - 5000 ))
job_add "$(cid 1)" 1 $((t0 + 1))
job_add "$(cid 2)" 9 $((t0 + 2))
job_add "$(cid 3)" 5 $((t0 + 4))
job_add "$(cid 4)" 5 $((t0 + 3))
job_add "$(cid 5)" 0 $((t0 + 5))
rq_redis ZADD rq:delayed "$t0" "$(cid 99)" >/dev/null

rq_start_daemon scheduler
ready_count() { [ "$(rq_redis ZCARD rq:ready)" = "$1" ]; }
rq_wait_for 5 ready_count 5
[ "$(rq_redis ZCARD rq:delayed)" = 0 ] || rq_fail "rq:delayed not emptied"
order=$(rq_redis ZRANGE rq:ready 0 -1 | tr '\n' ' ')
want="$(cid 2) $(cid 4) $(cid 3) $(cid 1) $(cid 5) "
[ "$order" = "$want" ] || rq_fail "ready order: got '$order', want '$want'"
score=$(rq_redis ZSCORE rq:ready "$(cid 2)")
[ "$score" = "$((t0 + 2))" ] || rq_fail "priority 9 score $score, want $((t0 + 2))"
score=$(rq_redis ZSCORE rq:ready "$(cid 1)")
[ "$score" = "$((8 * 10000000000000 + t0 + 1))" ] ||
	rq_fail "priority 1 score $score"
[ "$(rq_redis ZSCORE rq:ready "$(cid 99)")" = "" ] ||
	rq_fail "an id without a job reached rq:ready"

# 2. A job due in 1.5 s: not released before its time, released within
# 200 ms after it.
nb=$(( $(now_ms) + 1500 ))
job_add "$(cid 6)" 5 "$nb"
seen=""
# Released between "before" and "after" of the first query that sees it.
while :; do
	before=$(now_ms)
	score=$(rq_redis ZSCORE rq:ready "$(cid 6)")
	after=$(now_ms)
	if [ -n "$score" ]; then
		seen=$before
		break
	fi
	(( before > nb + 3000 )) && break
	sleep 0.01
done
[ -n "$seen" ] || rq_fail "the job due in 1.5 s was never released"
(( after >= nb )) || rq_fail "released $((nb - after)) ms early"
(( seen <= nb + 200 )) || rq_fail "released $((seen - nb)) ms late"
echo "due job released $((seen - nb)) ms after its time"

# 3. A full batch runs again at once.  With a 1 s tick, 300 due jobs in
# batches of 2 would take 150 ticks (150 s) otherwise; at once they take
# well under 10 s even on a loaded machine.
rq_stop_daemon scheduler
sed -i 's/^tick_ms = 20$/tick_ms = 1000/' "$RQ_CONF"
rq_start_daemon scheduler
rq_redis DEL rq:ready >/dev/null
t1=$(( $(now_ms) + 1000 ))
for i in $(seq 100 399); do
	echo "HSET rq:job:$(cid "$i") id $(cid "$i") tenant demo to +15551234567 priority 5 not_before_ms $t1 created_ms $t1 max_attempts 3"
	echo "ZADD rq:delayed $t1 $(cid "$i")"
done | rq_redis >/dev/null
rq_wait_for 20 ready_count 300
got=$(now_ms)
(( got - t1 < 10000 )) || rq_fail "300 jobs took $((got - t1)) ms to release"
echo "300 jobs released $((got - t1)) ms after their time"

# 4. An expired lease goes back to rq:ready with its priority score.
rq_redis DEL rq:ready >/dev/null
t2=$(( $(now_ms) - 10000 ))
job_add "$(cid 7)" 7 "$t2" rq:inflight $(( $(now_ms) - 1 ))
in_ready() { [ -n "$(rq_redis ZSCORE rq:ready "$1")" ]; }
rq_wait_for 3 in_ready "$(cid 7)"
[ "$(rq_redis ZCARD rq:inflight)" = 0 ] || rq_fail "lease still in rq:inflight"
score=$(rq_redis ZSCORE rq:ready "$(cid 7)")
[ "$score" = "$((2 * 10000000000000 + t2))" ] || rq_fail "reclaimed score $score"
grep -q "call $(cid 7): dispatch lease expired" "$T/scheduler.log" ||
	rq_fail "no warning about the expired lease"
# A lease not yet expired stays.
rq_redis ZADD rq:inflight $(( $(now_ms) + 60000 )) "$(cid 8)" >/dev/null
sleep 0.3
[ "$(rq_redis ZCARD rq:inflight)" = 1 ] || rq_fail "a live lease was taken back"

# 5. Each released job was reported once as scheduled (attempt 0), with
# its tenant and target; the reclaimed lease was not.
sched_ev() { [ "$(grep -c ' 0 scheduled demo +15551234567$' "$T/events")" -ge "$1" ]; }
rq_wait_for 5 sched_ev 306
grep -q "^$(cid 1) 0 scheduled demo +15551234567$" "$T/events" ||
	rq_fail "no scheduled event for $(cid 1)"
grep -q "^$(cid 7) " "$T/events" && rq_fail "a reclaimed lease was reported"
# ... and before it, once as queued at its created_ms.
created=$(rq_redis HGET "rq:job:$(cid 1)" created_ms)
grep -q "^$(cid 1) 0 queued $created$" "$T/events.ts" ||
	rq_fail "no queued event at created_ms $created for $(cid 1)"
first=$(grep -n "^$(cid 1) 0 " "$T/events" | head -1)
[ "${first#*:}" = "$(cid 1) 0 queued demo +15551234567" ] ||
	rq_fail "queued is not reported before scheduled: $first"
[ "$(grep -c ' 0 queued demo +15551234567$' "$T/events")" -ge 306 ] ||
	rq_fail "not every released job was reported queued"
grep -q "^$(cid 99) " "$T/events" && rq_fail "a vanished job was reported"

# 6. Redis restarts (losing everything: no persistence here): the
# scheduler reconnects by itself and releases again.
rq_restart_redis
job_add "$(cid 9)" 5 $(( $(now_ms) - 1 ))
rq_wait_for 10 in_ready "$(cid 9)"
rq_wait_for 5 grep -q "^$(cid 9) 0 scheduled demo" "$T/events"

rq_stop_daemon scheduler
echo "test_scheduler: OK"

#!/usr/bin/env bash
# ringq-dispatcher against a real redis-server, with Python DEALERs standing
# in for telservers and a Python ROUTER for accounting: jobs wait in Redis
# while no telserver lives, a JOB reaches a heartbeating telserver, ack and
# nack and ack timeout update Redis as the contract says, two telservers
# share the work by capacity, a nack "invalid" ends the attempt as failed
# (rejected), and acks and nacks from peers other than the telserver the
# job went to change nothing.
. "$RQ_SOURCE/tests/integration/lib.sh"

PY=/usr/bin/python3
rq_need_pyzmq

# acct.py ENDPOINT OUT: a fake accounting that writes each EVENT as
# "call_id attempt status node tenant to" and acknowledges it.
cat > "$T/acct.py" <<'EOF'
import sys
import msgpack, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
s.bind(sys.argv[1])
out = open(sys.argv[2], "a", buffering=1)
while True:
    ident, body = s.recv_multipart()
    v, t, f = msgpack.unpackb(body, strict_map_key=False)
    if t != 5:
        continue
    out.write("%s %d %s %s %s %s\n" % (f[1], f[2], f[7], f.get(11, "-"),
                                       f.get(3, "-"), f.get(4, "-")))
    s.send_multipart([ident, msgpack.packb([1, 6, {1: f[1], 2: f[2],
                                                   7: f[7]}])])
EOF

# tel.py ENDPOINT NODE CAPACITY MODE OUT [HOLD_MS]: a fake telserver that
# heartbeats every 100 ms and writes each JOB it gets as "call_id attempt
# to" to OUT.  MODE ack: acks (nacks "full" beyond its capacity) and holds
# each call HOLD_MS; nack1: nacks the first job, then falls silent;
# silent1: never answers and stops heartbeating after the first job;
# lateack: acks each job 300 ms late; invalid: nacks each job "invalid".
cat > "$T/tel.py" <<'EOF'
import sys, time
import msgpack, zmq
ep, node, cap, mode, path = sys.argv[1:6]
cap = int(cap)
hold = int(sys.argv[6] or 3600000) / 1000.0
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(ep)
out = open(path, "a", buffering=1)
calls, nexthb, mute = [], 0.0, False
def send(t, f):
    s.send(msgpack.packb([1, t, f]))
while True:
    now = time.monotonic()
    calls = [c for c in calls if c > now]
    if not mute and now >= nexthb:
        send(1, {11: node, 12: len(calls), 13: cap, 16: "up"})
        nexthb = now + 0.1
    if not s.poll(10):
        continue
    v, t, f = msgpack.unpackb(s.recv(), strict_map_key=False)
    if t != 2:
        continue
    out.write("%s %d %s\n" % (f[1], f[2], f[4]))
    if mode == "ack":
        if len(calls) >= cap:
            send(4, {1: f[1], 2: f[2], 11: node, 8: "full"})
        else:
            calls.append(time.monotonic() + hold)
            send(3, {1: f[1], 2: f[2], 11: node})
    elif mode == "nack1":
        if not mute:
            send(4, {1: f[1], 2: f[2], 11: node, 8: "full"})
        mute = True
    elif mode == "silent1":
        mute = True
    elif mode == "lateack":
        time.sleep(0.3)
        send(3, {1: f[1], 2: f[2], 11: node})
    elif mode == "invalid":
        send(4, {1: f[1], 2: f[2], 11: node, 8: "invalid", 15: "bad target"})
EOF

# rogue.py ENDPOINT NODE HEARTBEAT CALL_ID SECONDS: a peer that, for
# SECONDS, keeps sending a nack "invalid", a nack "full" and an ack for
# attempt 1 of CALL_ID, a job that is not its own; with HEARTBEAT 1 it also
# registers as a draining telserver of capacity 0 (never chosen).
cat > "$T/rogue.py" <<'EOF'
import sys, time
import msgpack, zmq
ep, node, hb, cid, secs = sys.argv[1:6]
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(ep)
def send(t, f):
    s.send(msgpack.packb([1, t, f]))
end = time.monotonic() + float(secs)
while time.monotonic() < end:
    if hb == "1":
        send(1, {11: node, 12: 0, 13: 0, 16: "draining"})
    send(4, {1: cid, 2: 1, 11: node, 8: "invalid"})
    send(4, {1: cid, 2: 1, 11: node, 8: "full"})
    send(3, {1: cid, 2: 1, 11: node})
    time.sleep(0.03)
EOF

now_ms() { date +%s%3N; }
cid() { printf 'c_%024x' "$1"; }

# ready_add ID PRIORITY: a job written the way the gateway does
# (docs/architecture.md), already moved to rq:ready by the scheduler.
ready_add() {
	local id=$1 prio=$2 now
	now=$(now_ms)
	rq_redis >/dev/null <<EOF
MULTI
HSET rq:job:$id id $id tenant demo to +15551234567 say "hello there" caller_id +15550000000 priority $prio not_before_ms $now callback_url "" metadata "{}" created_ms $now max_attempts 3
ZADD rq:ready $(( (9 - prio) * 10000000000000 + now )) $id
HSET rq:timeline:$id 0:queued "{\"status\":\"queued\",\"attempt\":0,\"ts_ms\":$now}"
ZADD rq:calls:demo $now $id
EXEC
EOF
}

# tel_start TAG NODE CAPACITY MODE [HOLD_MS]
tel_start() {
	local tag=$1
	shift
	$PY "$T/tel.py" "tcp://127.0.0.1:$RQ_DISPATCH_PORT" "$1" "$2" "$3" \
	    "$T/jobs-$1" "${4:-}" >"$T/tel-$tag.log" 2>&1 &
	rq_track "$tag" $!
}
field() { rq_redis HGET "rq:job:$1" "$2"; }
in_ready() { [ -n "$(rq_redis ZSCORE rq:ready "$1")" ]; }
got_job() { grep -q "^$2 " "$T/jobs-$1" 2>/dev/null; }
logged() { grep -q "$1" "$T/dispatcher.log"; }
empty() { [ "$(rq_redis ZCARD "$1")" = 0 ]; }

rq_start_redis
rq_write_config <<EOF
[dispatcher]
ack_timeout_ms = 500
heartbeat_timeout_ms = 700
EOF
$PY "$T/acct.py" "tcp://127.0.0.1:$RQ_EVENTS_PORT" "$T/events" \
    >"$T/acct.log" 2>&1 &
rq_track acct $!
: > "$T/events"

"$RQ_BUILD/dispatcher/ringq-dispatcher" -f "$RQ_CONF" -n | grep -q "configuration OK" ||
	rq_fail "-n does not accept the test configuration"
rq_start_daemon dispatcher

# 1. No telserver: the job waits in rq:ready, untouched.
J1=$(cid 1)
ready_add "$J1" 5
sleep 1
in_ready "$J1" || rq_fail "job left rq:ready with no telserver alive"
empty rq:inflight || rq_fail "job leased with no telserver alive"
[ -z "$(field "$J1" attempts)" ] || rq_fail "attempts counted with no telserver"

# 2. A heartbeating telserver gets it; its ack clears the lease, records the
# node and reports dispatched.
tel_start telA tA 2 ack
rq_wait_for 5 got_job tA "$J1"
acked() { [ "$(field "$J1" node)" = tA ] && empty rq:inflight; }
rq_wait_for 3 acked
[ "$(field "$J1" attempts)" = 1 ] || rq_fail "attempts is not 1 after one dispatch"
empty rq:ready || rq_fail "rq:ready not empty after the dispatch"
grep -q "^$J1 1 +15551234567$" "$T/jobs-tA" || rq_fail "JOB fields: $(cat "$T/jobs-tA")"
dispatched() { grep -q "^$J1 1 dispatched tA demo +15551234567$" "$T/events"; }
rq_wait_for 3 dispatched
logged "call $J1: attempt 1 dispatched to telserver tA" ||
	rq_fail "no log line naming the call and the telserver"
rq_kill telA || true
rq_wait_for 3 logged "telserver tA: down"

# 3. A nack puts the job back in rq:ready with its attempt given back.
J2=$(cid 2)
ready_add "$J2" 5
tel_start telN tN 2 nack1
rq_wait_for 5 got_job tN "$J2"
nacked() { in_ready "$J2" && empty rq:inflight; }
rq_wait_for 3 nacked
[ "$(field "$J2" attempts)" = 0 ] || rq_fail "nack: attempts $(field "$J2" attempts), want 0"
grep -q "^$J2 .* dispatched" "$T/events" && rq_fail "a nacked job was reported dispatched"
rq_kill telN || true
rq_wait_for 3 logged "telserver tN: down"

# 4. No ack in time: back in rq:ready keeping its attempt number, and that
# telserver is suspect.  ($J2 is still ready, so the silent one gets it.)
tel_start telS tS 1 silent1
rq_wait_for 5 got_job tS "$J2"
rq_wait_for 3 logged "call $J2: attempt 1: no ack from telserver tS"
rq_wait_for 3 in_ready "$J2"
empty rq:inflight || rq_fail "timed-out job still in rq:inflight"
[ "$(field "$J2" attempts)" = 1 ] || rq_fail "timeout: attempts $(field "$J2" attempts), want 1"
rq_kill telS || true
rq_wait_for 3 logged "telserver tS: down"

# 5. Two telservers of capacity 1 and 3 share 80 calls of 200 ms roughly by
# capacity (expected 25% / 75%).
tel_start tel1 t1 1 ack 200
tel_start tel3 t3 3 ack 200
rq_wait_for 5 logged "telserver t1: up"
rq_wait_for 5 logged "telserver t3: up"
for i in $(seq 100 179); do ready_add "$(cid "$i")" 5; done
alldone() { empty rq:ready && empty rq:inflight; }
rq_wait_for 30 alldone
count_ge() { [ "$(grep -c ' dispatched t[13] ' "$T/events")" -ge "$1" ]; }
rq_wait_for 5 count_ge 81
n1=$(grep -c ' dispatched t1 ' "$T/events" || true)
n3=$(grep -c ' dispatched t3 ' "$T/events" || true)
echo "capacity 1: $n1 calls, capacity 3: $n3 calls"
# ($J2, left in rq:ready by step 4, is the 81st.)
[ $((n1 + n3)) = 81 ] || rq_fail "dispatched $((n1 + n3)) calls, want 81"
(( n3 >= 2 * n1 && n1 >= 8 )) || rq_fail "share not by capacity: $n1 / $n3"

# 6. Redis restarts (losing everything: no persistence here): the
# dispatcher reconnects by itself and dispatches again.
rq_restart_redis
J9=$(cid 9)
ready_add "$J9" 5
rq_wait_for 10 grep -q "^$J9 1 dispatched t[13] " "$T/events"

rq_kill tel1 || true
rq_kill tel3 || true
rq_wait_for 3 logged "telserver t1: down"
rq_wait_for 3 logged "telserver t3: down"

# 7. A nack "invalid": the attempt ends failed (rejected), the lease goes,
# the job is not requeued.
J10=$(cid 10)
ready_add "$J10" 5
tel_start telI tI 2 invalid
rq_wait_for 5 got_job tI "$J10"
rejected() { grep -q "^$J10 1 failed tI demo +15551234567$" "$T/events"; }
rq_wait_for 3 rejected
empty rq:inflight || rq_fail "an invalid job kept its lease"
empty rq:ready || rq_fail "an invalid job was requeued"
rq_kill telI || true
rq_wait_for 3 logged "telserver tI: down"

# 8. While a job waits for its (late) ack, an unregistered peer and a
# registered telserver it was not sent to nack and ack it: ignored; the
# real ack dispatches it to its telserver.
J11=$(cid 11)
$PY "$T/rogue.py" "tcp://127.0.0.1:$RQ_DISPATCH_PORT" rogueA 0 "$J11" 3 \
    >"$T/rogueA.log" 2>&1 &
rq_track rogueA $!
$PY "$T/rogue.py" "tcp://127.0.0.1:$RQ_DISPATCH_PORT" rogueB 1 "$J11" 3 \
    >"$T/rogueB.log" 2>&1 &
rq_track rogueB $!
tel_start telL tL 2 lateack
rq_wait_for 5 logged "telserver tL: up"
rq_wait_for 5 logged "telserver rogueB: up"
ready_add "$J11" 5
rq_wait_for 5 got_job tL "$J11"
rq_wait_for 3 grep -q "^$J11 1 dispatched tL demo +15551234567$" "$T/events"
rq_wait_for 5 logged "call $J11: .*unregistered peer"
rq_wait_for 5 logged "call $J11: attempt 1: ack from telserver rogueB, not the one"
sleep 1
grep -q "^$J11 .* failed" "$T/events" && rq_fail "a rogue nack failed the job"
grep -q "^$J11 .* rogue" "$T/events" && rq_fail "a rogue ack was reported"
[ "$(grep -c "^$J11 " "$T/events")" = 1 ] || rq_fail "events of $J11: $(grep "^$J11 " "$T/events")"
[ "$(field "$J11" node)" = tL ] || rq_fail "node $(field "$J11" node), want tL"
[ "$(field "$J11" attempts)" = 1 ] || rq_fail "attempts $(field "$J11" attempts), want 1"
empty rq:inflight && empty rq:ready || rq_fail "rogue messages moved the job"
rq_kill rogueA || true
rq_kill rogueB || true
rq_kill telL || true

# 9. SIGTERM: a clean exit within the limit.
start=$(now_ms)
rq_stop_daemon dispatcher
(( $(now_ms) - start < 2500 )) || rq_fail "dispatcher took $(( $(now_ms) - start )) ms to stop"
echo "test_dispatcher: OK"

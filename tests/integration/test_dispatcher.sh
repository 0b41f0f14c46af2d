#!/usr/bin/env bash
# ringq-dispatcher against a real redis-server, with Python DEALERs standing
# in for telservers (they claim each attempt in Redis before they ack, as
# common/lifecycle.h says): jobs wait in Redis while no telserver lives, a
# JOB reaches a heartbeating telserver, nack and ack timeout give the
# attempt back unless it was claimed, a nack "stale" is forgotten, rq:wake
# wakes an idle dispatcher at once, two telservers share the work by
# capacity, a nack "invalid" ends the attempt as failed (rejected) in
# rq:events, and acks and nacks from peers other than the telserver the job
# went to change nothing.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

PY=/usr/bin/python3
rq_need_pyzmq

# tel.py ENDPOINT NODE CAPACITY MODE OUT [HOLD_MS]: a fake telserver that
# heartbeats every 100 ms and writes each JOB it gets as "call_id attempt
# to" to OUT (and "call_id ms" to OUT.ts).  MODE ack: claims (a failed
# claim: nack "stale"), acks (nacks "full" beyond its capacity) and holds
# each call HOLD_MS; nack1: nacks the first job, then falls silent;
# silent1: never answers and stops heartbeating after the first job;
# claimsilent1: claims the first job, never answers, stops heartbeating;
# stale: nacks each job "stale" without claiming; lateack: claims, acks
# 300 ms late; invalid: nacks each job "invalid".
cat > "$T/tel.py" <<'EOF'
import socket, sys, time
import msgpack, zmq
ep, node, cap, mode, path = sys.argv[1:6]
cap = int(cap)
hold = int(sys.argv[6] or 3600000) / 1000.0
rport = int(sys.argv[7])
class Redis:
    """The few RESP commands a claim needs; reconnects once on error."""
    def __init__(self):
        self.s = None
    def cmd(self, *a):
        for _ in range(2):
            try:
                if self.s is None:
                    self.s = socket.create_connection(("127.0.0.1", rport), 1)
                    self.f = self.s.makefile("rb")
                out = b"*%d\r\n" % len(a)
                for x in a:
                    x = str(x).encode()
                    out += b"$%d\r\n%s\r\n" % (len(x), x)
                self.s.sendall(out)
                return self.read()
            except OSError:
                self.s = None
        return None
    def read(self):
        l = self.f.readline()
        if not l:
            raise OSError("eof")
        t, v = l[:1], l[1:-2]
        if t == b":":
            return int(v)
        if t == b"$":
            n = int(v)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode()
        if t == b"*":
            n = int(v)
            return None if n < 0 else [self.read() for _ in range(n)]
        return v.decode()
CLAIM = """
local key = 'rq:job:' .. ARGV[1]
if tonumber(redis.call('HGET', key, 'attempts')) ~= tonumber(ARGV[2]) then
  return 0 end
if redis.call('ZREM', 'rq:inflight', ARGV[1]) == 0 then return 0 end
redis.call('SADD', 'rq:oncall:' .. ARGV[3], ARGV[1])
redis.call('HSET', key, 'node', ARGV[3], 'dialed', ARGV[2])
return 1
"""
r = Redis()
def claim(f):
    return r.cmd("EVAL", CLAIM, 0, f[1], f[2], node)
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(ep)
out = open(path, "a", buffering=1)
ots = open(path + ".ts", "a", buffering=1)
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
    ots.write("%s %d\n" % (f[1], time.time() * 1000))
    if mode == "ack":
        if len(calls) >= cap:
            send(4, {1: f[1], 2: f[2], 11: node, 8: "full"})
            continue
        c = claim(f)
        if c is None:
            send(4, {1: f[1], 2: f[2], 11: node, 8: "redis"})
        elif c == 0:
            send(4, {1: f[1], 2: f[2], 11: node, 8: "stale"})
        else:
            calls.append(time.monotonic() + hold)
            send(3, {1: f[1], 2: f[2], 11: node})
    elif mode == "nack1":
        if not mute:
            send(4, {1: f[1], 2: f[2], 11: node, 8: "full"})
        mute = True
    elif mode == "silent1":
        mute = True
    elif mode == "claimsilent1":
        if not mute:
            claim(f)
        mute = True
    elif mode == "stale":
        send(4, {1: f[1], 2: f[2], 11: node, 8: "stale"})
    elif mode == "lateack":
        claim(f)
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
# Nobody publishes rq:wake: the dispatcher's safety poll finds it.
ready_add() {
	local id=$1 prio=$2 now
	now=$(now_ms)
	rq_redis >/dev/null <<EOF
MULTI
HSET rq:job:$id id $id tenant demo to +15551234567 say "hello there" caller_id +15550000000 priority $prio not_before_ms $now callback_url "" metadata "{}" created_ms $now max_attempts 3
ZADD rq:ready $(( now - prio * 60000 )) $id
ZADD rq:calls:demo $now $id
EXEC
EOF
}

# tel_start TAG NODE CAPACITY MODE [HOLD_MS]
tel_start() {
	local tag=$1
	shift
	$PY "$T/tel.py" "tcp://127.0.0.1:$RQ_DISPATCH_PORT" "$1" "$2" "$3" \
	    "$T/jobs-$1" "${4:-}" "$REDIS_PORT" >"$T/tel-$tag.log" 2>&1 &
	rq_track "$tag" $!
}
field() { rq_redis HGET "rq:job:$1" "$2"; }
in_ready() { [ -n "$(rq_redis ZSCORE rq:ready "$1")" ]; }
got_job() { grep -q "^$2 " "$T/jobs-$1" 2>/dev/null; }
logged() { grep -q "$1" "$T/dispatcher.log"; }
empty() { [ "$(rq_redis ZCARD "$1")" = 0 ]; }
# events ID: the rq:events entries of ID as "attempt status reason node".
events() {
	$PY - "$REDIS_PORT" "$1" <<'EOF'
import json, subprocess, sys
out = subprocess.run(["redis-cli", "-p", sys.argv[1], "--json", "XRANGE",
                      "rq:events", "-", "+"], capture_output=True, text=True)
for _, f in json.loads(out.stdout or "[]"):
    d = dict(zip(f[::2], f[1::2]))
    if d.get("call_id") == sys.argv[2]:
        print(d["attempt"], d["status"], d.get("reason", "-"), d.get("node", "-"))
EOF
}

rq_start_redis
rq_write_config <<EOF
[dispatcher]
ack_timeout_ms = 500
heartbeat_timeout_ms = 700
EOF

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

# 2. A heartbeating telserver gets it, claims it (the lease leaves
# rq:inflight for rq:oncall:tA) and acks: bookkeeping only.
tel_start telA tA 2 ack
rq_wait_for 5 got_job tA "$J1"
claimed() { [ "$(field "$J1" node)" = tA ] && empty rq:inflight; }
rq_wait_for 3 claimed
[ "$(field "$J1" attempts)" = 1 ] || rq_fail "attempts is not 1 after one dispatch"
empty rq:ready || rq_fail "rq:ready not empty after the dispatch"
grep -q "^$J1 1 +15551234567$" "$T/jobs-tA" || rq_fail "JOB fields: $(cat "$T/jobs-tA")"
rq_wait_for 3 logged "call $J1: attempt 1 dispatched to telserver tA"
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
rq_kill telN || true
rq_wait_for 3 logged "telserver tN: down"

# 4. No ack in time and no claim: back in rq:ready with its attempt given
# back (it was never claimed, so never dialled), and that telserver is
# suspect.  ($J2 is still ready, so the silent one gets it.)
tel_start telS tS 1 silent1
rq_wait_for 5 got_job tS "$J2"
rq_wait_for 3 logged "call $J2: attempt 1: no ack from telserver tS"
rq_wait_for 3 in_ready "$J2"
empty rq:inflight || rq_fail "timed-out job still in rq:inflight"
[ "$(field "$J2" attempts)" = 0 ] || rq_fail "timeout: attempts $(field "$J2" attempts), want 0"
rq_kill telS || true
rq_wait_for 3 logged "telserver tS: down"

# 4b. Claimed but the ack was lost: the timeout's requeue finds no lease
# and changes nothing; the telserver holds attempt 1 (no second dial).
tel_start telC tC 1 claimsilent1
rq_wait_for 5 got_job tC "$J2"
rq_wait_for 3 logged "call $J2: attempt 1: no ack from telserver tC"
sleep 0.3
in_ready "$J2" && rq_fail "a claimed attempt was requeued"
[ "$(rq_redis SISMEMBER rq:oncall:tC "$J2")" = 1 ] || rq_fail "claim lost"
[ "$(field "$J2" attempts)" = 1 ] || rq_fail "claimed: attempts $(field "$J2" attempts), want 1"
rq_kill telC || true
rq_wait_for 3 logged "telserver tC: down"

# 4c. A nack "stale" (the claim failed: another attempt owns the job) is
# forgotten: nothing requeued.
J3=$(cid 3)
ready_add "$J3" 5
tel_start telT tT 1 stale
rq_wait_for 5 got_job tT "$J3"
rq_wait_for 3 logged "call $J3: attempt 1 refused by telserver tT: stale"
sleep 0.3
in_ready "$J3" && rq_fail "a stale nack requeued the job"
[ "$(grep -c "^$J3 " "$T/jobs-tT")" = 1 ] || rq_fail "a stale job was sent again"
rq_kill telT || true
rq_wait_for 3 logged "telserver tT: down"
rq_redis ZREM rq:inflight "$J3" >/dev/null

# 5. Two telservers of capacity 1 and 3 share 80 calls of 200 ms roughly by
# capacity (expected 25% / 75%).
tel_start tel1 t1 1 ack 200
tel_start tel3 t3 3 ack 200
rq_wait_for 5 logged "telserver t1: up"
rq_wait_for 5 logged "telserver t3: up"
for i in $(seq 100 179); do ready_add "$(cid "$i")" 5; done
alldone() { empty rq:ready && empty rq:inflight; }
rq_wait_for 30 alldone
n1=$(rq_redis SCARD rq:oncall:t1)
n3=$(rq_redis SCARD rq:oncall:t3)
echo "capacity 1: $n1 calls, capacity 3: $n3 calls"
[ $((n1 + n3)) = 80 ] || rq_fail "dispatched $((n1 + n3)) calls, want 80"
(( n3 >= 2 * n1 && n1 >= 8 )) || rq_fail "share not by capacity: $n1 / $n3"

# 6. The dispatcher is idle (rq:ready was empty); a job put in rq:ready is
# taken at once, not at the next safety poll: with ringq-redis.so by its
# take waiting in Redis (and no rq:wake subscription), without it on the
# PUBLISH rq:wake that goes with the job.
sleep 0.7
if rq_redis MODULE LIST | grep -q ringq; then
	how="its waiting take"
	rq_redis CLIENT LIST | grep -q 'flags=b[A-Za-z]* .*cmd=ringq.take' ||
		rq_fail "no take waiting in Redis: $(rq_redis CLIENT LIST)"
	[ "$(rq_redis PUBSUB NUMSUB rq:wake | tail -n 1)" = 0 ] ||
		rq_fail "subscribed to rq:wake beside its waiting take"
else
	how="rq:wake"
fi
J8=$(cid 8)
t0=$(now_ms)
ready_add "$J8" 5
[ "$how" = rq:wake ] && rq_redis PUBLISH rq:wake 1 >/dev/null
rq_wait_for 5 grep -q "^$J8 " "$T/jobs-t1" "$T/jobs-t3"
t1=$(cat "$T/jobs-t1.ts" "$T/jobs-t3.ts" | sed -n "s/^$J8 //p" | cut -d. -f1)
echo "taken by $how: JOB $((t1 - t0)) ms after the job was written"
(( t1 - t0 < 250 )) || rq_fail "$how: JOB $((t1 - t0)) ms after the job"

# 7. Redis restarts (losing everything: no persistence here): the
# dispatcher reconnects by itself (and its subscription) and dispatches
# again.
rq_restart_redis
J9=$(cid 9)
ready_add "$J9" 5
rq_wait_for 10 grep -q "^$J9 1 " "$T/jobs-t1" "$T/jobs-t3"
if [ "$how" = rq:wake ]; then
	rq_wait_for 5 logged "rq:wake subscription back"
else
	rq_wait_for 5 logged "waiting take back"
fi

# 7b. Redis restarts with data it takes seconds to load (-LOADING to every
# command meanwhile): the dispatcher says once that it lost Redis and once
# that it is back, when Redis answers again, not at each try in between;
# then it dispatches.
seq 4000 | sed 's/.*/SET pad:& x/' | rq_redis >/dev/null
rq_redis SAVE >/dev/null
# answering -LOADING every 1 kB read, not silent until loaded
RQ_REDIS_ARGS+=(--key-load-delay 1000 --loading-process-events-interval-bytes 1024)
from=$(($(wc -l < "$T/dispatcher.log") + 1))
t0=$(now_ms)
rq_restart_redis
echo "Redis loaded its 4,000 keys in $(($(now_ms) - t0)) ms"
J9b=$(cid 99)
ready_add "$J9b" 5
rq_wait_for 10 grep -q "^$J9b 1 " "$T/jobs-t1" "$T/jobs-t3"
since() { tail -n "+$from" "$T/dispatcher.log" | grep -c "$1"; }
# one warning per connection (its main one, the take, rq:wake)
[ "$(since "warning: redis")" -le 3 ] ||
	rq_fail "$(since "warning: redis") warnings for one Redis restart"
if [ "$how" = rq:wake ]; then
	[ "$(since "subscription back")" = 1 ] ||
		rq_fail "said its subscription was back $(since "subscription back") times"
else
	[ "$(since "waiting take back")" = 1 ] ||
		rq_fail "said its take was back $(since "waiting take back") times"
fi
[ "$(since "connected")" = 1 ] ||
	rq_fail "connected $(since connected) times to one Redis restart"
rq_redis DEL $(seq 4000 | sed 's/^/pad:/') >/dev/null

rq_kill tel1 || true
rq_kill tel3 || true
rq_wait_for 3 logged "telserver t1: down"
rq_wait_for 3 logged "telserver t3: down"

# 8. A nack "invalid": the attempt ends failed (rejected) in rq:events, the
# lease goes, the job is not requeued.
J10=$(cid 10)
ready_add "$J10" 5
tel_start telI tI 2 invalid
rq_wait_for 5 got_job tI "$J10"
rejected() { [ "$(events "$J10")" = "1 failed rejected tI" ]; }
rq_wait_for 3 rejected
[ "$(field "$J10" status)" = failed ] || rq_fail "status $(field "$J10" status), want failed"
empty rq:inflight || rq_fail "an invalid job kept its lease"
empty rq:ready || rq_fail "an invalid job was requeued"
rq_kill telI || true
rq_wait_for 3 logged "telserver tI: down"

# 9. While a job waits for its (late) ack, an unregistered peer and a
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
rq_wait_for 3 logged "call $J11: attempt 1 dispatched to telserver tL"
rq_wait_for 5 logged "call $J11: .*unregistered peer"
rq_wait_for 5 logged "call $J11: attempt 1: ack from telserver rogueB, not the one"
sleep 1
[ -z "$(events "$J11")" ] || rq_fail "rogue messages made events: $(events "$J11")"
[ "$(field "$J11" node)" = tL ] || rq_fail "node $(field "$J11" node), want tL"
[ "$(field "$J11" attempts)" = 1 ] || rq_fail "attempts $(field "$J11" attempts), want 1"
empty rq:inflight && empty rq:ready || rq_fail "rogue messages moved the job"
rq_kill rogueA || true
rq_kill rogueB || true
rq_kill telL || true

# 10. SIGTERM: a clean exit within the limit.
start=$(now_ms)
rq_stop_daemon dispatcher
(( $(now_ms) - start < 2500 )) || rq_fail "dispatcher took $(( $(now_ms) - start )) ms to stop"
rq_check_sanitizers
echo "test_dispatcher: OK"

#!/usr/bin/env bash
# ringq-ctl against a real redis-server, a real dispatcher and real
# telservers (tA and tB in dry run, tS dialling SIPp, which rings 3 s
# before it answers): keygen and the exit codes; the telservers list;
# drain (a drained telserver takes no job, says drained; --wait returns
# only once the call it holds ended, with progress); undrain; the queue
# depths; and a lost telserver (SIGSTOP) whose unacknowledged job goes
# back to rq:ready at the heartbeat timeout, long before the ack timeout,
# is placed elsewhere once, and which comes back when it resumes.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need sipp jq
rq_need_pyzmq
PY=/usr/bin/python3
CTL=$RQ_BUILD/dispatcher/ringq-ctl
[ -x "$CTL" ] || rq_fail "$CTL not built"

rq_start_redis
rq_write_config <<EOF
[dispatcher]
ack_timeout_ms = 5000
heartbeat_timeout_ms = 1000
EOF

ctl() { "$CTL" -f "$RQ_CONF" "$@"; }
now_ms() { date +%s%3N; }
cid() { printf 'c_%024x' "$1"; }
# the ringq-ctl telservers line of NODE
row() { ctl telservers | awk -v n="$1" '$1 == n'; }
row_is() { row "$1" | grep -qE "$2"; }
logged() { grep -q "$2" "$T/$1.log"; }
field() { rq_redis HGET "rq:job:$1" "$2"; }
in_ready() { [ -n "$(rq_redis ZSCORE rq:ready "$1")" ]; }
# events ID: the rq:events entries of ID as "attempt status node".
events() {
	$PY - "$REDIS_PORT" "$1" <<'EOF'
import json, subprocess, sys
out = subprocess.run(["redis-cli", "-p", sys.argv[1], "--json", "XRANGE",
                      "rq:events", "-", "+"], capture_output=True, text=True)
for _, f in json.loads(out.stdout or "[]"):
    d = dict(zip(f[::2], f[1::2]))
    if d.get("call_id") == sys.argv[2]:
        print(d["attempt"], d["status"], d.get("node", "-"))
EOF
}
completed_on() { events "$1" | grep -qx "1 completed $2"; }

# ready_add ID TO: a job as the gateway writes it, released by the
# scheduler, with a wake-up for the dispatchers.
ready_add() {
	local id=$1 to=$2 now
	now=$(now_ms)
	rq_redis >/dev/null <<EOF
MULTI
HSET rq:job:$id id $id tenant demo to $to say "hello" priority 5 not_before_ms $now created_ms $now max_attempts 3 status scheduled status_rank 1
ZADD rq:ready $(( now - 5 * 60000 )) $id
EXEC
PUBLISH rq:wake 1
EOF
}

# tel_conf NAME DRY_RUN: a telserver's own config (name, run_dir).
tel_conf() {
	cp "$RQ_CONF" "$T/$1.conf"
	cat >> "$T/$1.conf" <<EOF

[global]
run_dir = $T/run-$1

[telserver]
name = $1
dry_run = $2
capacity = 4
EOF
}
tel_start() {
	RQ_CONF=$T/$1.conf rq_start_daemon "telserver:$1"
}

# 1. keygen: a matching CURVE pair as two config lines; exit codes.
"$CTL" keygen > "$T/keys"
grep -qE '^curve_public_key = .{40}$' "$T/keys" || rq_fail "keygen: $(cat "$T/keys")"
grep -qE '^curve_secret_key = .{40}$' "$T/keys" || rq_fail "keygen: $(cat "$T/keys")"
[ "$(wc -l < "$T/keys")" = 2 ] || rq_fail "keygen printed more than two lines"
$PY - "$T/keys" <<'EOF' || rq_fail "keygen: the public key is not the secret key's"
import sys, zmq
k = dict(l.split(" = ") for l in open(sys.argv[1]).read().split("\n") if l)
assert zmq.curve_public(k["curve_secret_key"].encode()) == k["curve_public_key"].encode()
EOF
rc=0; "$CTL" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || rq_fail "no command: exit $rc, want 2"
rc=0; ctl frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || rq_fail "unknown command: exit $rc, want 2"
rc=0; "$CTL" -f "$T/none.conf" queues >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || rq_fail "missing config: exit $rc, want 2"
sed -e "s/^port = $REDIS_PORT\$/port = $(rq_free_port)/" \
    -e "s|^host = $REDIS_SOCK\$|host = 127.0.0.1|" "$RQ_CONF" > "$T/noredis.conf"
rc=0; "$CTL" -f "$T/noredis.conf" queues 2>"$T/err" || rc=$?
[ "$rc" = 1 ] || rq_fail "Redis down: exit $rc, want 1"
grep -q "ringq-ctl: redis 127.0.0.1:" "$T/err" || rq_fail "Redis down: $(cat "$T/err")"
rc=0; ctl drain nosuch 2>"$T/err" || rc=$?
[ "$rc" = 4 ] || rq_fail "unknown telserver: exit $rc, want 4"
grep -q "unknown telserver 'nosuch'" "$T/err" || rq_fail "unknown telserver: $(cat "$T/err")"
ctl telservers | grep -q "no telserver" || rq_fail "empty fleet: $(ctl telservers)"

# 2. The list: two dry-run telservers up and alive.
rq_start_daemon dispatcher
tel_conf tA yes
tel_conf tB yes
tel_start tA
tel_start tB
UP='^t[AB] +up +0/4 +0 +[0-9.]+s ago +alive +- +sip:'
rq_wait_for 5 row_is tA "$UP"
rq_wait_for 5 row_is tB "$UP"
ctl telservers

# 3. Drain both: no calls, so drained at once (--wait returns); a job
# then waits in rq:ready.
ctl drain tA | grep -q "tA: drain requested" || rq_fail "drain tA: no confirmation"
rq_wait_for 5 row_is tA '^tA +drained +0/4 .* alive +yes '
rq_wait_for 3 logged telserver-tA "drained: no calls left"
t0=$(now_ms)
ctl drain tB --wait --timeout 10 > "$T/drainB.out" || rq_fail "drain tB --wait failed"
tail -n 1 "$T/drainB.out" | grep -qx "tB: drained" || rq_fail "drain --wait: $(cat "$T/drainB.out")"
(( $(now_ms) - t0 < 3000 )) || rq_fail "drain --wait of an idle telserver took $(( $(now_ms) - t0 )) ms"
ctl drain tB | grep -q "tB: already draining" || rq_fail "second drain not recognised"
J1=$(cid 1); J2=$(cid 2); J3=$(cid 3)
for j in "$J1" "$J2" "$J3"; do ready_add "$j" sip:nobody@127.0.0.1:9; done
sleep 1.5
[ "$(rq_redis ZCARD rq:ready)" = 3 ] || rq_fail "a drained telserver took a job"
ctl queues > "$T/queues"
grep -qE '^ready +3$' "$T/queues" || rq_fail "queues: $(cat "$T/queues")"
grep -qE '^inflight +0$' "$T/queues" || rq_fail "queues: $(cat "$T/queues")"
grep -q "refused, draining" "$T/telserver-tA.log" "$T/telserver-tB.log" &&
	rq_fail "a job was sent to a drained telserver"

# 4. Undrain tA: it takes the three.
ctl undrain tA | grep -q "tA: undrained" || rq_fail "undrain: no confirmation"
ctl undrain tA | grep -q "tA: was not draining" || rq_fail "second undrain not recognised"
for j in "$J1" "$J2" "$J3"; do rq_wait_for 5 completed_on "$j" tA; done
rq_wait_for 3 logged telserver-tA "undrained: tA left rq:drain"
rq_wait_for 3 row_is tA '^tA +up '
ctl queues > "$T/queues"
grep -qE '^ready +0$' "$T/queues" || rq_fail "queues: $(cat "$T/queues")"
grep -qE '^  tA +0$' "$T/queues" || rq_fail "queues: $(cat "$T/queues")"
grep -qE "^events +$(rq_redis XLEN rq:events)\$" "$T/queues" ||
	rq_fail "queues: events backlog: $(cat "$T/queues")"
ended=$(rq_redis ZCARD rq:ended)
(( ended >= 3 )) && grep -qE "^ended +$ended\$" "$T/queues" ||
	rq_fail "queues: ended calls held ($ended in rq:ended): $(cat "$T/queues")"
rq_redis ZADD rq:delayed 9999999999999 c_later1 9999999999999 c_later2 >/dev/null
ctl queues | grep -qE '^delayed +2$' || rq_fail "queues: delayed: $(ctl queues)"
rq_redis DEL rq:delayed >/dev/null
ctl drain tA --wait --timeout 10 | tail -n 1 | grep -qx "tA: drained" ||
	rq_fail "drain tA --wait"

# 5. A held call: tS dials SIPp, which rings 3 s.  drain --wait reports
# the call in progress and returns once it ended; a job meanwhile waits.
cat > "$T/uas_ring.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="ringq uas ring 3 s">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="3000"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE" timeout="60000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="500"/>
</scenario>
EOF
rq_start_sipp_uas "$T/uas_ring.xml" -m 2
tel_conf tS no
tel_start tS
rq_wait_for 10 row_is tS '^tS +up +0/4 '
JH=$(cid 10); JN=$(cid 11)
ready_add "$JH" "$SIPP_URI"
held() { [ "$(rq_redis SISMEMBER rq:oncall:tS "$JH")" = 1 ]; }
rq_wait_for 5 held
t0=$(now_ms)
ctl drain tS --wait --timeout 30 > "$T/drainS.out" 2>&1 &
DRAIN_PID=$!
rq_wait_for 3 row_is tS '^tS +draining +1/4 .* yes '
ready_add "$JN" "$SIPP_URI"
rc=0; wait "$DRAIN_PID" || rc=$?
took=$(( $(now_ms) - t0 ))
cat "$T/drainS.out"
[ "$rc" = 0 ] || rq_fail "drain tS --wait: exit $rc: $(cat "$T/drainS.out")"
grep -qx "tS: draining, 1 calls in progress" "$T/drainS.out" ||
	rq_fail "drain --wait showed no progress: $(cat "$T/drainS.out")"
tail -n 1 "$T/drainS.out" | grep -qx "tS: drained" || rq_fail "drain --wait: $(cat "$T/drainS.out")"
completed_on "$JH" tS || rq_fail "held call: $(events "$JH")"
(( took >= 1500 )) || rq_fail "drain --wait returned after $took ms, before the held call ended"
echo "drain --wait with a call ringing 3 s: returned after $took ms"
in_ready "$JN" || rq_fail "a job went to a draining telserver: $(events "$JN")"
[ -z "$(events "$JN")" ] || rq_fail "a job went to a draining telserver: $(events "$JN")"
rq_wait_for 3 logged telserver-tS "drained: no calls left"

# 6. Undrain tS: it places the waiting call.
ctl undrain tS >/dev/null
rq_wait_for 15 completed_on "$JN" tS
rq_wait_sipp 15 || rq_fail "SIPp saw a failed call"
ctl drain tS >/dev/null

# 7. A lost telserver: tB (the only one taking jobs) stops; the job sent
# to it goes back to rq:ready at the heartbeat timeout (1 s), not the ack
# timeout (5 s), and is placed once, elsewhere.
ctl undrain tB >/dev/null
rq_wait_for 5 row_is tB '^tB +up '
sleep 0.5
JL=$(cid 20)
kill -STOP "$(rq_pid telserver-tB)"
t0=$(now_ms)
ready_add "$JL" sip:nobody@127.0.0.1:9
rq_wait_for 4 logged dispatcher "call $JL: attempt 1: telserver tB lost before its ack: requeued"
took=$(( $(now_ms) - t0 ))
echo "lost telserver: job back in rq:ready after $took ms"
(( took < 3000 )) || rq_fail "lost telserver's job requeued after $took ms"
in_ready "$JL" || rq_fail "lost telserver's job not in rq:ready"
[ "$(field "$JL" attempts)" = 0 ] || rq_fail "attempts $(field "$JL" attempts), want 0"
[ "$(rq_redis ZCARD rq:inflight)" = 0 ] || rq_fail "lease left in rq:inflight"
ctl undrain tA >/dev/null
rq_wait_for 5 completed_on "$JL" tA
# Stopped past its liveness TTL: listed down; resumed: alive again, and
# the JOB it held is not placed there (it was placed on tA): refused as
# stale when it reaches tB, or gone with the link the dispatcher closed
# while tB was silent (ZMTP heartbeats, 5 s).
rq_wait_for 8 row_is tB '^tB .* down '
kill -CONT "$(rq_pid telserver-tB)"
rq_wait_for 8 row_is tB '^tB +up .* alive '
sleep 2
if grep -q "call $JL/1: job for" "$T/telserver-tB.log"; then
	rq_wait_for 5 logged telserver-tB "call $JL/1: not dialled: stale"
	echo "the lost telserver's JOB reached it after it resumed: refused as stale"
else
	echo "the lost telserver's JOB went with the link the dispatcher closed"
fi
! grep -q "call $JL/1: \(dialing\|completed\|recorded\)" "$T/telserver-tB.log" ||
    rq_fail "tB placed $JL after it went to tA: $(grep "$JL" "$T/telserver-tB.log")"
[ "$(events "$JL" | grep -c dispatched)" = 1 ] || rq_fail "placed twice: $(events "$JL")"
ctl telservers

for t in tA tB tS; do rq_stop_daemon "telserver:$t"; done
rq_stop_daemon dispatcher
rq_check_sanitizers
echo "test_ctl: OK"

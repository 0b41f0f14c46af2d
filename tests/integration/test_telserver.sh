#!/usr/bin/env bash
# ringq-telserver alone: Python stand-ins play the dispatcher (ROUTER: reads
# HEARTBEAT, sends JOB) and accounting (ROUTER: acks EVENTs); a real baresip
# answers and records, SIPp answers busy or rings for ever.  Checks the
# events of a spoken call, the failure reasons, a caller_id name as the From
# display name, an in-dialog re-INVITE, a burst of 2000 JOBs that all end at
# once, and shutdown mid-call.
. "$RQ_SOURCE/tests/integration/lib.sh"

rq_need baresip sipp sox
rq_need_pyzmq

rq_write_config <<EOF
[telserver]
name = tel-it
ring_timeout_s = 3
capacity = 8
EOF

# harness.py TIMEOUT_S UNTIL_TERMINALS JOB...: binds both ROUTERs, sends
# each JOB ("delay|call_id|attempt|to|say[|caller_id]") DELAY seconds after
# the first heartbeat, acks every EVENT, prints each message as one JSON
# line, and exits after UNTIL terminal events or TIMEOUT.  With BURST=
# "N|TO" in the environment it also sends N JOBs to TO at once after the
# first heartbeat, while the process STOP_PID is stopped (so they are all
# queued before the telserver reads any).
cat > "$T/harness.py" <<'EOF'
import json, os, signal, sys, time, zmq, msgpack
F = {1: 'call_id', 2: 'attempt', 3: 'tenant', 4: 'to', 5: 'say', 6: 'caller_id',
     7: 'status', 8: 'reason', 9: 'sip_code', 10: 'ts_ms', 11: 'node',
     12: 'active', 13: 'capacity', 14: 'duration_ms', 15: 'detail', 16: 'state',
     17: 'app_url', 18: 'priority', 19: 'started_ms', 20: 'answered_ms'}
T = {1: 'HEARTBEAT', 2: 'JOB', 3: 'JOB_ACK', 4: 'JOB_NACK', 5: 'EVENT', 6: 'EVENT_ACK'}
disp_ep, ev_ep = sys.argv[1], sys.argv[2]
timeout, until = float(sys.argv[3]), int(sys.argv[4])
jobs = []
for j in sys.argv[5:]:
    p = j.split('|')
    m = {1: p[1], 2: int(p[2]), 3: 'demo', 4: p[3]}
    if len(p) > 4 and p[4]:
        m[5] = p[4]
    if len(p) > 5 and p[5]:
        m[6] = p[5]
    jobs.append([float(p[0]), m])
ctx = zmq.Context()
burst = os.environ.get('BURST', '')
d = ctx.socket(zmq.ROUTER); d.setsockopt(zmq.LINGER, 0)
d.setsockopt(zmq.SNDHWM, 0); d.bind(disp_ep)
e = ctx.socket(zmq.ROUTER); e.setsockopt(zmq.LINGER, 0); e.bind(ev_ep)
poller = zmq.Poller(); poller.register(d, zmq.POLLIN); poller.register(e, zmq.POLLIN)
start = time.time(); first_hb = None; peer = None; terminals = 0; grace = None
while time.time() - start < timeout:
    if grace is None and terminals >= until:
        grace = time.time() + 0.3   # late heartbeats and acks
    if grace is not None and time.time() > grace:
        break
    for s, _ in poller.poll(50):
        ident, data = s.recv_multipart()
        v, t, body = msgpack.unpackb(data, strict_map_key=False)
        rec = {'src': 'dispatch' if s is d else 'events', 'type': T.get(t, t)}
        rec.update({F.get(k, str(k)): x for k, x in body.items()})
        print(json.dumps(rec), flush=True)
        if s is d and t == 1:
            peer = ident
            if first_hb is None:
                first_hb = time.time()
        if s is e and t == 5:
            e.send_multipart([ident, msgpack.packb([1, 6, {1: body[1], 2: body[2], 7: body[7]}])])
            if body[7] in ('completed', 'failed', 'canceled', 'expired'):
                terminals += 1
    if first_hb is not None and burst:
        n, to = burst.split('|'); burst = ''
        pid = int(os.environ['STOP_PID'])
        os.kill(pid, signal.SIGSTOP)
        for i in range(int(n)):
            d.send_multipart([peer, msgpack.packb([1, 2, {1: 'c_%024x' % (0xb000000 + i),
                                                       2: 1, 3: 'demo', 4: to}])])
        time.sleep(1)
        os.kill(pid, signal.SIGCONT)
    if first_hb is not None:
        for j in jobs:
            if j[0] is not None and time.time() - first_hb >= j[0]:
                d.send_multipart([peer, msgpack.packb([1, 2, j[1]])])
                j[0] = None
EOF

# A UAS that rings and never answers (for the ring timeout).
cat > "$T/uas_ring.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ring for ever">
  <recv request="INVITE">
    <action><ereg regexp="CSeq: *([0-9]+)" search_in="msg" assign_to="all,cs"/></action>
  </recv>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="CANCEL" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$cs] INVITE
Content-Length: 0

]]></send>
  <recv request="ACK" />
  <nop><action><log message="[$all]"/></action></nop>
</scenario>
EOF

# A UAS that answers, then sends a re-INVITE (new SDP version) in the
# dialog, expects our 200 with SDP, ACKs it and waits for our BYE.
cat > "$T/uas_reinvite.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="re-INVITE">
  <recv request="INVITE">
    <action>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="ct"/>
      <ereg regexp="[^ ].*" search_in="hdr" header="From:" assign_to="from"/>
      <ereg regexp="[^ ].*" search_in="hdr" header="To:" assign_to="to"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [media_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK" />
  <pause milliseconds="500"/>
  <send><![CDATA[
INVITE [$ct] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$to];tag=[pid]SIPpTag01[call_number]
To: [$from]
[last_Call-ID:]
CSeq: 100 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 2 IN IP4 [media_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true" />
  <recv response="200">
    <action><ereg regexp="m=audio [0-9]+ RTP/AVP" search_in="body" check_it="true" assign_to="m"/></action>
  </recv>
  <send><![CDATA[
ACK [$ct] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$to];tag=[pid]SIPpTag01[call_number]
To: [$from]
[last_Call-ID:]
CSeq: 100 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv request="BYE" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <nop><action><log message="[$m]"/></action></nop>
</scenario>
EOF

harness() {
	local out=$1
	shift
	/usr/bin/python3 "$T/harness.py" "tcp://127.0.0.1:$RQ_DISPATCH_PORT" \
	    "tcp://127.0.0.1:$RQ_EVENTS_PORT" "$@" > "$out"
}

# has FILE JQ_CONDITION [jq args]: some message in FILE meets the condition.
has() {
	local f=$1 cond=$2
	shift 2
	jq -s -e "$@" "any(.[]; $cond)" "$f" >/dev/null
}

# events FILE CALL_ID: the statuses of CALL_ID's events, in order.
events() {
	jq -r --arg id "$2" 'select(.type == "EVENT" and .call_id == $id) | .status' \
	    "$1" | tr '\n' ' ' | sed 's/ $//'
}

# field FILE CALL_ID STATUS FIELD
field() {
	jq -r --arg id "$2" --arg st "$3" --arg f "$4" \
	    'select(.type == "EVENT" and .call_id == $id and .status == $st) | .[$f] // empty' \
	    "$1" | head -n 1
}

rq_start_baresip bob
rq_start_daemon telserver

# --- 1. a spoken call to baresip ----------------------------------------------
SAY="Hello from ringq. This is the telserver test speaking, one two three."
C1=c_000000000000000000000001
harness "$T/h1.jsonl" 30 1 "0.2|$C1|1|$BARESIP_URI|$SAY"
cat "$T/h1.jsonl" | grep -v HEARTBEAT || true
has "$T/h1.jsonl" '.type == "HEARTBEAT" and .node == "tel-it" and .capacity == 8 and .state == "up"' ||
    rq_fail "no HEARTBEAT from tel-it"
has "$T/h1.jsonl" '.type == "JOB_ACK" and .call_id == $id and .attempt == 1' --arg id "$C1" ||
    rq_fail "no JOB_ACK for $C1"
[ "$(events "$T/h1.jsonl" $C1)" = "ringing answered completed" ] ||
    rq_fail "call 1 events: $(events "$T/h1.jsonl" $C1)"
dur=$(field "$T/h1.jsonl" $C1 completed duration_ms)
[ -n "$dur" ] && [ "$dur" -gt 1000 ] || rq_fail "call 1 duration_ms $dur"
[ -n "$(field "$T/h1.jsonl" $C1 completed answered_ms)" ] || rq_fail "no answered_ms"
[ "$(field "$T/h1.jsonl" $C1 completed node)" = tel-it ] || rq_fail "no node"

rec_ready() {
	local f
	f=$(ls "$BARESIP_REC"/*-dec.wav 2>/dev/null | head -n 1)
	[ -n "$f" ] || return 1
	sox "$f" -n stat 2> "$T/wav.stat" || return 1
	awk '/^Length \(seconds\)/ { exit !($3 > 1.0) }' "$T/wav.stat"
}
rq_wait_for 10 rec_ready
cat "$T/wav.stat"
rms=$(awk '/^RMS +amplitude/ { print $3 }' "$T/wav.stat")
len=$(awk '/^Length \(seconds\)/ { print $3 }' "$T/wav.stat")
awk -v r="$rms" 'BEGIN { exit !(r > 0.02) }' || rq_fail "baresip heard silence (RMS $rms)"
# the speech is about 4 s; the recording must be near it, not 30 s
awk -v l="$len" -v d="$dur" 'BEGIN { exit !(l > 2 && l < d / 1000 + 2) }' ||
    rq_fail "recording of $len s for a call of $dur ms"

# --- 2. failures ---------------------------------------------------------------
rq_start_sipp_uas uas_busy.xml -m 1
BUSY_URI=$SIPP_URI
rq_start_sipp_uas "$T/uas_ring.xml" -m 1
RING_URI=$SIPP_URI
CLOSED=$(rq_free_port)
C2=c_000000000000000000000002 C3=c_000000000000000000000003
C4=c_000000000000000000000004 C5=c_000000000000000000000005
C6=c_000000000000000000000006
start=$(rq_now_ms)
harness "$T/h2.jsonl" 30 5 \
    "0.1|$C2|1|$BUSY_URI|busy|Ops Team" \
    "0.1|$C3|2|$RING_URI|ring" \
    "0.1|$C4|1|sip:nobody@127.0.0.1:$CLOSED|closed" \
    "0.1|$C5|1|+15551234567|no trunk" \
    "0.1|$C6|1|sip:nobody@127.0.0.1:$CLOSED;transport=tcp|closed tcp" \
    "0.5|$C3|2|$RING_URI|ring"
grep -v HEARTBEAT "$T/h2.jsonl" || true
check_failed() {
	local id=$1 reason=$2 got
	got=$(field "$T/h2.jsonl" "$id" failed reason)
	[ "$got" = "$reason" ] || rq_fail "$id: failed reason '$got', want $reason"
}
check_failed $C2 busy
[ "$(field "$T/h2.jsonl" $C2 failed sip_code)" = 486 ] || rq_fail "$C2: sip_code"
# a caller_id name (with a space) is the display name of our sip_from
grep -q '^From: "Ops Team" <sip:ringq@' "$T"/sipp*.messages ||
    rq_fail "$C2: no From display name \"Ops Team\" in the INVITE"
check_failed $C3 no_answer
[ "$(events "$T/h2.jsonl" $C3)" = "ringing failed" ] || rq_fail "$C3: $(events "$T/h2.jsonl" $C3)"
check_failed $C4 unreachable
check_failed $C5 unreachable
[ "$(field "$T/h2.jsonl" $C5 failed detail)" = "no trunk configured for E.164 numbers" ] ||
    rq_fail "$C5: detail"
check_failed $C6 unreachable
# the duplicate JOB of C3 was acknowledged again, and dialled once
[ "$(jq -r --arg id $C3 'select(.type == "JOB_ACK" and .call_id == $id) | .attempt' \
    "$T/h2.jsonl" | wc -l)" = 2 ] || rq_fail "duplicate job of $C3 not acked twice"
[ "$(grep -c "dialing" "$T/telserver.log" | tr -d ' ')" -le 5 ] ||
    rq_fail "a duplicate job was dialled twice"
# unreachable is quick (ICMP / refused), not a 32 s transaction timeout
for id in $C4 $C6; do
	ts=$(field "$T/h2.jsonl" $id failed ts_ms)
	(( ts - start < 10000 )) || rq_fail "$id took $((ts - start)) ms to fail"
done
rq_wait_sipp 10 || true

# --- 3. a re-INVITE from the far end is answered -----------------------------
rq_start_sipp_uas "$T/uas_reinvite.xml" -m 1
C8=c_000000000000000000000008
harness "$T/h4.jsonl" 30 1 "0.1|$C8|1|$SIPP_URI|Hello, this prompt lasts for a couple of seconds, one two three."
grep -v HEARTBEAT "$T/h4.jsonl" || true
[ "$(events "$T/h4.jsonl" $C8)" = "answered completed" ] ||
    rq_fail "$C8: $(events "$T/h4.jsonl" $C8)"
rq_wait_sipp 10 || rq_fail "re-INVITE scenario failed (see $T/sipp*.errors)"
grep -q "call $C8/1: re-INVITE accepted" "$T/telserver.log" ||
    rq_fail "$C8: re-INVITE not accepted"

# --- 4. a burst of JOBs that all end at once ----------------------------------
# 2000 E.164 targets without a trunk, queued while the telserver is stopped:
# each call ends inside the loop reading the next (no recursion, no stack
# overflow), each is acked and ends with exactly one terminal event.
BURST="2000|+15551230000" STOP_PID=$(rq_pid telserver) \
    harness "$T/h5.jsonl" 60 2000
rq_alive "$(rq_pid telserver)" || rq_fail "telserver died in the burst"
acks=$(jq -r 'select(.type == "JOB_ACK") | .call_id' "$T/h5.jsonl" | sort -u | wc -l)
[ "$acks" -eq 2000 ] || rq_fail "burst: $acks of 2000 JOBs acked"
terms=$(jq -r 'select(.type == "EVENT" and .status == "failed" and .reason == "unreachable") | .call_id' \
    "$T/h5.jsonl" | sort -u | wc -l)
evs=$(jq -r 'select(.type == "EVENT") | .call_id' "$T/h5.jsonl" | wc -l)
[ "$terms" -eq 2000 ] && [ "$evs" -eq 2000 ] ||
    rq_fail "burst: $terms calls failed unreachable, $evs events, want 2000 each"
! jq -e 'select(.type == "JOB_NACK")' "$T/h5.jsonl" >/dev/null || rq_fail "burst: a JOB was refused"

# --- 5. shutdown in the middle of a call --------------------------------------
C7=c_000000000000000000000007
LONG="This sentence is long enough to still be playing when the telserver is told to stop, so the call is cut short and reported as interrupted."
harness "$T/h3.jsonl" 30 1 "0.1|$C7|1|$BARESIP_URI|$LONG" &
hpid=$!
answered() { [ "$(field "$T/h3.jsonl" $C7 answered status)" = answered ]; }
rq_wait_for 10 answered
sleep 0.5
rq_stop_daemon telserver
wait "$hpid" || rq_fail "harness failed"
grep -v '"up"' "$T/h3.jsonl" || true
[ "$(events "$T/h3.jsonl" $C7)" = "ringing answered failed" ] ||
    rq_fail "$C7: $(events "$T/h3.jsonl" $C7)"
[ "$(field "$T/h3.jsonl" $C7 failed reason)" = interrupted ] || rq_fail "$C7: not interrupted"
has "$T/h3.jsonl" '.type == "HEARTBEAT" and .state == "draining"' ||
    rq_fail "no draining heartbeat"

rq_check_sanitizers
echo "test_telserver: OK"

#!/usr/bin/env bash
# ringq-telserver alone, with a real Redis: Python stand-ins play the
# dispatcher (ROUTER: reads HEARTBEAT, writes each job into Redis as the
# take script leaves it, sends JOB) and accounting (ROUTER: acks the
# ringing/answered EVENTs; the attempts' ends are read from rq:events); a
# real baresip answers and records, SIPp answers busy or rings for ever.
# Checks the events of a spoken call, the failure reasons and their retries,
# a text that gives no audio (not rung for, not retried),
# a caller_id name as the From display name, an in-dialog re-INVITE, a burst
# of 2000 JOBs that all end at once, shutdown mid-call, claims refused
# (stale lease, other attempt, past not_after), the JOB of a held call
# again while drained (acked, not dialled again), a Redis outage mid-call (the
# telserver fences itself: hangs up, refuses jobs; the finish is kept and
# recorded later; after a kill -9 meanwhile, by the next start, from its
# file), a kill -9 mid-call (the restarted telserver ends the
# attempt as interrupted, and sends the events accounting had not
# acknowledged from its journal), and the liveness key kept fresh whatever
# heartbeat_ms is.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need baresip sipp sox jq
rq_need_pyzmq

rq_start_redis --appendonly yes --appendfsync always
rq_write_config <<EOF
[telserver]
name = tel-it
ring_timeout_s = 3
capacity = 8
EOF

# harness.py TIMEOUT_S UNTIL_ENDS JOB...: binds both ROUTERs; for each JOB
# ("delay|call_id|attempt|to|say[|caller_id[|seed]]") writes the job into
# Redis at start (seed: "" = job hash with attempts = attempt and a lease in
# rq:inflight; "nolease"; "other" = attempts one more; "expired" =
# not_after_ms in the past), sends it DELAY seconds after the first "up"
# heartbeat, acks every EVENT (none with NOACK=1), follows rq:events, prints each message and
# stream entry as one JSON line, and exits after UNTIL attempt ends
# (completed, failed, retrying, expired, canceled) or TIMEOUT.  With BURST=
# "N|TO" in the environment it also sends N JOBs to TO at once after the
# first heartbeat, while the process STOP_PID is stopped (so they are all
# queued before the telserver reads any).
cat > "$T/harness.py" <<'EOF'
import json, os, signal, socket, sys, time, zmq, msgpack
F = {1: 'call_id', 2: 'attempt', 3: 'tenant', 4: 'to', 5: 'say', 6: 'caller_id',
     7: 'status', 8: 'reason', 9: 'sip_code', 10: 'ts_ms', 11: 'node',
     12: 'active', 13: 'capacity', 14: 'duration_ms', 15: 'detail', 16: 'state',
     17: 'app_url', 18: 'priority', 19: 'started_ms', 20: 'answered_ms',
     21: 'result', 22: 'ended'}
T = {1: 'HEARTBEAT', 2: 'JOB', 3: 'JOB_ACK', 4: 'JOB_NACK', 5: 'EVENT', 6: 'EVENT_ACK'}
ENDS = ('completed', 'failed', 'canceled', 'expired', 'retrying')
NUM = ('attempt', 'sip_code', 'ts_ms', 'duration_ms', 'started_ms', 'answered_ms')

class Redis:
    """A minimal RESP client that reconnects after an error."""
    def __init__(self, port):
        self.port, self.s = port, None
    def _read(self):
        l = self.f.readline()
        if not l:
            raise OSError('closed')
        t, v = l[:1], l[1:-2]
        if t == b'+': return v.decode()
        if t == b'-': raise OSError(v.decode())
        if t == b':': return int(v)
        if t == b'$':
            n = int(v)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode()
        if t == b'*':
            n = int(v)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise OSError('bad reply')
    def pipe(self, cmds):
        try:
            if self.s is None:
                self.s = socket.create_connection(('127.0.0.1', self.port), timeout=5)
                self.f = self.s.makefile('rb')
            out = b''
            for c in cmds:
                a = [str(x).encode() for x in c]
                out += b'*%d\r\n' % len(a) + b''.join(b'$%d\r\n%s\r\n' % (len(x), x) for x in a)
            self.s.sendall(out)
            return [self._read() for _ in cmds]
        except OSError:
            self.s = None
            return None
    def cmd(self, *a):
        r = self.pipe([a])
        return r[0] if r else None

disp_ep, ev_ep = sys.argv[1], sys.argv[2]
timeout, until = float(sys.argv[3]), int(sys.argv[4])
r = Redis(int(os.environ['REDIS_PORT']))
jobs, seeds = [], []
def seed(cid, att, to, mode=''):
    n = att + 1 if mode == 'other' else att
    seeds.append(['HSET', 'rq:job:' + cid, 'id', cid, 'tenant', 'demo', 'to', to,
                  'attempts', n, 'status', 'scheduled', 'status_rank', 1])
    if mode == 'expired':
        seeds.append(['HSET', 'rq:job:' + cid, 'not_after_ms', 1000])
    if mode != 'nolease':
        seeds.append(['ZADD', 'rq:inflight', 9999999999999, cid])
for j in sys.argv[5:]:
    p = j.split('|')
    m = {1: p[1], 2: int(p[2]), 3: 'demo', 4: p[3]}
    if len(p) > 4 and p[4]:
        m[5] = p[4]
    if len(p) > 5 and p[5]:
        m[6] = p[5]
    seed(p[1], int(p[2]), p[3], p[6] if len(p) > 6 else '')
    jobs.append([float(p[0]), m])
burst = os.environ.get('BURST', '')
if burst:
    n, to = burst.split('|')
    for i in range(int(n)):
        seed('c_%024x' % (0xb000000 + i), 1, to)
for i in range(0, len(seeds), 500):
    if r.pipe(seeds[i:i + 500]) is None:
        sys.exit('cannot write the jobs into redis')
# only what happens from now on
last = r.cmd('XADD', 'rq:events', '*', 'harness', 'start')
ctx = zmq.Context()
d = ctx.socket(zmq.ROUTER); d.setsockopt(zmq.LINGER, 0)
d.setsockopt(zmq.SNDHWM, 0); d.bind(disp_ep)
e = ctx.socket(zmq.ROUTER); e.setsockopt(zmq.LINGER, 0); e.bind(ev_ep)
poller = zmq.Poller(); poller.register(d, zmq.POLLIN); poller.register(e, zmq.POLLIN)
start = time.time(); first_hb = None; peer = None; ends = 0; grace = None
def drain(ready):
    # every message waiting, not one per socket: the attempts' ends come
    # from Redis at once and must not overtake their JOB_ACKs
    for s, _ in ready:
        while True:
            try:
                ident, data = s.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            yield s, ident, data
while time.time() - start < timeout:
    if grace is None and ends >= until:
        grace = time.time() + 0.3   # late heartbeats and acks
    if grace is not None and time.time() > grace:
        break
    for s, ident, data in drain(poller.poll(50)):
        v, t, body = msgpack.unpackb(data, strict_map_key=False)
        rec = {'src': 'dispatch' if s is d else 'events', 'type': T.get(t, t)}
        rec.update({F.get(k, str(k)): x for k, x in body.items()})
        print(json.dumps(rec), flush=True)
        if s is d and t == 1:
            peer = ident
            if first_hb is None and body.get(16) == 'up':
                first_hb = time.time()
        if s is e and t == 5 and not os.environ.get('NOACK'):
            e.send_multipart([ident, msgpack.packb([1, 6, {1: body[1], 2: body[2], 7: body[7]}])])
    while True:
        got = r.cmd('XRANGE', 'rq:events', '(' + last, '+', 'COUNT', 1000)
        if not got:
            break
        for eid, kv in got:
            last = eid
            rec = {'src': 'redis', 'type': 'EVENT', 'id': eid}
            rec.update(dict(zip(kv[0::2], kv[1::2])))
            if 'status' not in rec:
                continue
            for k in NUM:
                if k in rec:
                    rec[k] = int(rec[k])
            print(json.dumps(rec), flush=True)
            if rec['status'] in ENDS:
                ends += 1
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

# harness_bg OUT ARGS...: the same in the background, its own PID in hpid
# (so that it can be killed: a function run with & is a subshell).
harness_bg() {
	local out=$1
	shift
	/usr/bin/python3 "$T/harness.py" "tcp://127.0.0.1:$RQ_DISPATCH_PORT" \
	    "tcp://127.0.0.1:$RQ_EVENTS_PORT" "$@" > "$out" &
	hpid=$!
}

# has FILE JQ_CONDITION [jq args]: some message in FILE meets the condition.
has() {
	local f=$1 cond=$2
	shift 2
	jq -s -e "$@" "any(.[]; $cond)" "$f" >/dev/null
}

# events FILE CALL_ID: the statuses of CALL_ID's events (ZeroMQ and
# rq:events merged), in time order, then status order within a millisecond.
events() {
	jq -s -r --arg id "$2" \
	    '{"dispatched": 2, "ringing": 3, "answered": 4, "retrying": 5, "completed": 6,
	      "failed": 7, "canceled": 8, "expired": 9} as $rank
	     | map(select(.type == "EVENT" and .call_id == $id))
	     | sort_by(.ts_ms, $rank[.status]) | .[].status' \
	    "$1" | tr '\n' ' ' | sed 's/ $//'
}

# field FILE CALL_ID STATUS FIELD
field() {
	jq -r --arg id "$2" --arg st "$3" --arg f "$4" \
	    'select(.type == "EVENT" and .call_id == $id and .status == $st) | .[$f] // empty' \
	    "$1" | head -n 1
}

# redis_event CALL_ID STATUS FIELD: a field of CALL_ID's STATUS entry in
# rq:events, read straight from Redis ("" when there is none).
redis_event() {
	rq_redis --json XRANGE rq:events - + 2>/dev/null | jq -r --arg id "$1" --arg st "$2" --arg f "$3" \
	    '.[] | .[1] | . as $a | reduce range(0; length; 2) as $i ({}; .[$a[$i]] = $a[$i + 1])
	     | select(.call_id == $id and .status == $st) | .[$f] // empty' | head -n 1
}
redis_has_event() { [ -n "$(redis_event "$1" "$2" status)" ]; }
oncall() { rq_redis SCARD rq:oncall:tel-it; }

rq_start_baresip bob
rq_start_daemon telserver

# --- 1. a spoken call to baresip ----------------------------------------------
SAY="Hello from ringq. This is the telserver test speaking, one two three."
C1=c_000000000000000000000001
harness "$T/h1.jsonl" 30 1 "0.2|$C1|1|$BARESIP_URI|$SAY"
grep -v HEARTBEAT "$T/h1.jsonl" || true
has "$T/h1.jsonl" '.type == "HEARTBEAT" and .node == "tel-it" and .capacity == 8 and .state == "up"' ||
    rq_fail "no HEARTBEAT from tel-it"
# the heartbeat after the call's end counts it in ended (the dispatchers'
# estimate of ends between heartbeats)
has "$T/h1.jsonl" '.type == "HEARTBEAT" and .active == 0 and .ended == 1' ||
    rq_fail "no HEARTBEAT with ended 1 after call 1"
has "$T/h1.jsonl" '.type == "JOB_ACK" and .call_id == $id and .attempt == 1' --arg id "$C1" ||
    rq_fail "no JOB_ACK for $C1"
[ "$(events "$T/h1.jsonl" $C1)" = "dispatched ringing answered completed" ] ||
    rq_fail "call 1 events: $(events "$T/h1.jsonl" $C1)"
dur=$(field "$T/h1.jsonl" $C1 completed duration_ms)
[ -n "$dur" ] && [ "$dur" -gt 1000 ] || rq_fail "call 1 duration_ms $dur"
[ -n "$(field "$T/h1.jsonl" $C1 completed answered_ms)" ] || rq_fail "no answered_ms"
[ "$(field "$T/h1.jsonl" $C1 completed node)" = tel-it ] || rq_fail "no node"
[ "$(field "$T/h1.jsonl" $C1 dispatched node)" = tel-it ] || rq_fail "no node in dispatched"
[ "$(rq_redis HGET rq:job:$C1 status)" = completed ] || rq_fail "job status of $C1"
[ "$(rq_redis HGET rq:job:$C1 dialed)" = 1 ] || rq_fail "dialed of $C1"
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after call 1"
[ "$(rq_redis ZSCORE rq:inflight $C1)" = "" ] || rq_fail "$C1 still in rq:inflight"
[ "$(rq_redis SISMEMBER rq:nodes tel-it)" = 1 ] || rq_fail "tel-it not in rq:nodes"
ttl=$(rq_redis PTTL rq:node:tel-it)
(( ttl > 0 && ttl <= 5000 )) || rq_fail "liveness key TTL $ttl"

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

# --- 2. failures and their retries --------------------------------------------
rq_start_sipp_uas uas_busy.xml -m 1
BUSY_URI=$SIPP_URI
rq_start_sipp_uas "$T/uas_ring.xml" -m 1
RING_URI=$SIPP_URI
CLOSED=$(rq_free_port)
C2=c_000000000000000000000002 C3=c_000000000000000000000003
C4=c_000000000000000000000004 C5=c_000000000000000000000005
C6=c_000000000000000000000006 C15=c_000000000000000000000015
start=$(rq_now_ms)
harness "$T/h2.jsonl" 30 6 \
    "0.1|$C2|1|$BUSY_URI|busy|Ops Team" \
    "0.1|$C3|2|$RING_URI|ring" \
    "0.1|$C4|1|sip:nobody@127.0.0.1:$CLOSED|closed" \
    "0.1|$C5|1|+15551234567|no trunk" \
    "0.1|$C6|1|sip:nobody@127.0.0.1:$CLOSED;transport=tcp|closed tcp" \
    "0.1|$C15|1|sip:nobody-at-nowhere|bad uri" \
    "0.5|$C3|2|$RING_URI|ring"
grep -v HEARTBEAT "$T/h2.jsonl" || true
# Busy, no answer and unreachable are retried (default rules): the attempt
# ends as retrying with its reason.
check_retry() {
	local id=$1 reason=$2 got
	got=$(field "$T/h2.jsonl" "$id" retrying reason)
	[ "$got" = "$reason" ] || rq_fail "$id: retrying reason '$got', want $reason"
	[ "$(rq_redis HGET rq:job:$id status)" = retrying ] || rq_fail "$id: job status"
	[ -n "$(rq_redis ZSCORE rq:delayed $id)" ] || rq_fail "$id: not back in rq:delayed"
}
check_retry $C2 busy
[ "$(field "$T/h2.jsonl" $C2 retrying sip_code)" = 486 ] || rq_fail "$C2: sip_code"
# a caller_id name (with a space) is the display name of our sip_from
grep -q '^From: "Ops Team" <sip:ringq@' "$T"/sipp*.messages ||
    rq_fail "$C2: no From display name \"Ops Team\" in the INVITE"
check_retry $C3 no_answer
[ "$(events "$T/h2.jsonl" $C3)" = "dispatched ringing retrying" ] ||
    rq_fail "$C3: $(events "$T/h2.jsonl" $C3)"
check_retry $C4 unreachable
check_retry $C6 unreachable
# A job we cannot route fails the same way every time: rejected, not retried.
check_rejected() {
	local id=$1 detail=$2 got
	got=$(field "$T/h2.jsonl" "$id" failed reason)
	[ "$got" = rejected ] || rq_fail "$id: failed reason '$got', want rejected"
	got=$(field "$T/h2.jsonl" "$id" failed detail)
	[ "$got" = "$detail" ] || rq_fail "$id: detail '$got', want '$detail'"
	[ "$(rq_redis HGET rq:job:$id status)" = failed ] || rq_fail "$id: job status"
	[ -z "$(rq_redis ZSCORE rq:delayed $id)" ] || rq_fail "$id: retried"
}
check_rejected $C5 "no trunk configured for E.164 numbers"
check_rejected $C15 "invalid SIP URI"
# the duplicate JOB of C3 was acknowledged again, and dialled once
[ "$(jq -r --arg id $C3 'select(.type == "JOB_ACK" and .call_id == $id) | .attempt' \
    "$T/h2.jsonl" | wc -l)" = 2 ] || rq_fail "duplicate job of $C3 not acked twice"
[ "$(grep -c "dialing" "$T/telserver.log" | tr -d ' ')" -le 5 ] ||
    rq_fail "a duplicate job was dialled twice"
# unreachable is quick (ICMP / refused), not a 32 s transaction timeout
for id in $C4 $C6; do
	ts=$(field "$T/h2.jsonl" $id retrying ts_ms)
	(( ts - start < 10000 )) || rq_fail "$id took $((ts - start)) ms to fail"
done
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after the failures"
rq_wait_sipp 10 || true

# --- 2b. a text that gives no audio ------------------------------------------
# An older gateway let "..." through (flite speaks nothing for it): the
# phone is not left ringing for silence, and the attempt is not retried.
# The first job is dialled while its text is synthesised, then CANCELed;
# the second, its text known silent (cached), is not dialled at all.
rq_start_sipp_uas "$T/uas_ring.xml" -m 1
C16=c_000000000000000000000016 C17=c_000000000000000000000017
harness "$T/h2b.jsonl" 20 2 "0.1|$C16|1|$SIPP_URI|..." \
    "1.5|$C17|1|$SIPP_URI|..."
grep -v HEARTBEAT "$T/h2b.jsonl" || true
for id in $C16 $C17; do
	got=$(field "$T/h2b.jsonl" $id failed reason)
	[ "$got" = speech ] || rq_fail "$id: failed reason '$got', want speech"
	[ "$(field "$T/h2b.jsonl" $id failed detail)" = \
	    "speech synthesis gave no audio" ] || rq_fail "$id: detail"
	[ "$(rq_redis HGET rq:job:$id status)" = failed ] || rq_fail "$id: job status"
	[ -z "$(rq_redis ZSCORE rq:delayed $id)" ] || rq_fail "$id: retried"
done
rq_wait_sipp 10 || rq_fail "$C16: the ringing phone got no CANCEL (see $T/sipp*.errors)"
rq_logged "$T/telserver.log" "call $C16/1: dialing" || rq_fail "$C16: not dialled"
! grep -q "call $C17/1: dialing" "$T/telserver.log" ||
    rq_fail "$C17: dialled for a text known to give no audio"
[ "$(events "$T/h2b.jsonl" $C17)" = "dispatched failed" ] ||
    rq_fail "$C17: $(events "$T/h2b.jsonl" $C17)"
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after the silent texts"

# --- 3. a re-INVITE from the far end is answered -----------------------------
rq_start_sipp_uas "$T/uas_reinvite.xml" -m 1
C8=c_000000000000000000000008
harness "$T/h4.jsonl" 30 1 "0.1|$C8|1|$SIPP_URI|Hello, this prompt lasts for a couple of seconds, one two three."
grep -v HEARTBEAT "$T/h4.jsonl" || true
[ "$(events "$T/h4.jsonl" $C8)" = "dispatched answered completed" ] ||
    rq_fail "$C8: $(events "$T/h4.jsonl" $C8)"
rq_wait_sipp 10 || rq_fail "re-INVITE scenario failed (see $T/sipp*.errors)"
rq_logged "$T/telserver.log" "call $C8/1: re-INVITE accepted" ||
    rq_fail "$C8: re-INVITE not accepted"

# --- 4. a burst of JOBs that all end at once ----------------------------------
# 2000 E.164 targets without a trunk, queued while the telserver is stopped:
# each call ends inside the loop reading the next (no recursion, no stack
# overflow), each is claimed, acked and ends with exactly one finish
# (rejected: no trunk).
BURST="2000|+15551230000" STOP_PID=$(rq_pid telserver) \
    harness "$T/h5.jsonl" 90 2000
rq_alive "$(rq_pid telserver)" || rq_fail "telserver died in the burst"
acks=$(jq -r 'select(.type == "JOB_ACK") | .call_id' "$T/h5.jsonl" | sort -u | wc -l)
[ "$acks" -eq 2000 ] || rq_fail "burst: $acks of 2000 JOBs acked"
ends=$(jq -r 'select(.type == "EVENT" and .status == "failed" and .reason == "rejected") | .call_id' \
    "$T/h5.jsonl" | sort -u | wc -l)
evs=$(jq -r 'select(.type == "EVENT" and .status != "dispatched") | .call_id' "$T/h5.jsonl" | wc -l)
[ "$ends" -eq 2000 ] && [ "$evs" -eq 2000 ] ||
    rq_fail "burst: $ends calls failed rejected, $evs ends, want 2000 each"
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
[ "$(events "$T/h3.jsonl" $C7)" = "dispatched ringing answered retrying" ] ||
    rq_fail "$C7: $(events "$T/h3.jsonl" $C7)"
[ "$(field "$T/h3.jsonl" $C7 retrying reason)" = interrupted ] || rq_fail "$C7: not interrupted"
has "$T/h3.jsonl" '.type == "HEARTBEAT" and .state == "draining"' ||
    rq_fail "no draining heartbeat"
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after shutdown"
[ "$(rq_redis EXISTS rq:node:tel-it)" = 0 ] || rq_fail "liveness key left after shutdown"

# --- 6. claims refused: nothing is dialled -------------------------------------
rq_start_daemon telserver
C12=c_000000000000000000000012 C13=c_000000000000000000000013
C14=c_000000000000000000000014
harness "$T/h6.jsonl" 15 1 \
    "0.1|$C12|1|$BARESIP_URI|no lease|x|nolease" \
    "0.1|$C13|1|$BARESIP_URI|other attempt|x|other" \
    "0.1|$C14|1|$BARESIP_URI|too late|x|expired"
grep -v HEARTBEAT "$T/h6.jsonl" || true
for id in $C12 $C13 $C14; do
	has "$T/h6.jsonl" '.type == "JOB_NACK" and .call_id == $id and .reason == "stale"' \
	    --arg id $id || rq_fail "$id: no JOB_NACK stale"
	! grep -q "call $id/1: dialing" "$T/telserver.log" || rq_fail "$id was dialled"
done
[ "$(field "$T/h6.jsonl" $C14 expired reason)" = not_after ] || rq_fail "$C14: not expired"
[ "$(rq_redis HGET rq:job:$C14 status)" = expired ] || rq_fail "$C14: job status"
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after stale claims"

# --- 6b. the JOB of a held call again, while drained by an operator --------------
# A dispatcher sends the JOB of a call in progress again (it lost track of
# the ack) after an operator put the telserver in rq:drain.  The call is
# the telserver's own: JOB_ACK, as when it is not draining, and not dialled
# twice.  A refusal "draining" would put the attempt back, to be rung
# again elsewhere if Redis had lost the claim.
C19=c_000000000000000000000019
harness_bg "$T/h6b.jsonl" 30 1 "0.1|$C19|1|$BARESIP_URI|$LONG" \
    "5|$C19|1|$BARESIP_URI|$LONG"
answered19() { [ "$(field "$T/h6b.jsonl" $C19 answered status)" = answered ]; }
rq_wait_for 10 answered19
rq_redis SADD rq:drain tel-it >/dev/null
drain_seen() { has "$T/h6b.jsonl" '.type == "HEARTBEAT" and .state == "draining"'; }
rq_wait_for 4 drain_seen
wait "$hpid" || true
rq_redis SREM rq:drain tel-it >/dev/null
# in order: the first ack, a draining heartbeat, the second ack; no NACK
jq -s -e --arg id $C19 '
    [.[] | select((.type == "JOB_ACK" and .call_id == $id) or
                  (.type == "HEARTBEAT" and .state == "draining"))
         | .type] as $seq
    | ($seq | index("HEARTBEAT")) as $h
    | ($seq[:$h] | map(select(. == "JOB_ACK")) | length) == 1 and
      ($seq[$h:] | map(select(. == "JOB_ACK")) | length) == 1' \
    "$T/h6b.jsonl" >/dev/null ||
    rq_fail "$C19: not acked once before the drain and once after: $(grep -v HEARTBEAT "$T/h6b.jsonl" | grep JOB)"
! has "$T/h6b.jsonl" '.type == "JOB_NACK" and .call_id == $id' --arg id $C19 ||
    rq_fail "$C19: the duplicate was refused"
rq_logged "$T/telserver.log" "call $C19/1: duplicate job, acknowledged again" ||
    rq_fail "$C19: the duplicate was not recognised"
[ "$(grep -c "call $C19/1: dialing" "$T/telserver.log")" = 1 ] ||
    rq_fail "$C19: dialled $(grep -c "call $C19/1: dialing" "$T/telserver.log") times"
[ "$(field "$T/h6b.jsonl" $C19 completed status)" = completed ] ||
    rq_fail "$C19: $(redis_event $C19 completed status) instead of completed"
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after the call"

# --- 7. a Redis outage in the middle of a call ---------------------------------
# The telserver cannot refresh its liveness key: before the key's TTL runs
# out (when a scheduler would end the attempt as interrupted and retry it)
# it fences itself: hangs the call up, says draining, refuses JOBs (redis,
# not dialled). The finish is kept and recorded once Redis is back (AOF with
# appendfsync always keeps the job), and it takes jobs again.
C9=c_000000000000000000000009 C10=c_000000000000000000000010
LONGER="This sentence is long enough to keep the call going while the Redis server is stopped and started again, so the end of the attempt has to wait for it, and it goes on a little longer still."
harness "$T/h7.jsonl" 40 1 "0.1|$C9|1|$BARESIP_URI|$LONGER" \
    "4|$C10|1|$BARESIP_URI|while redis is down" &
hpid=$!
answered9() { [ "$(field "$T/h7.jsonl" $C9 answered status)" = answered ]; }
rq_wait_for 10 answered9
rq_stop_redis
down_ms=$(rq_now_ms)
fenced() { grep -q "fenced: liveness key not refreshed" "$T/telserver.log"; }
rq_wait_for 6 fenced
(( $(rq_now_ms) - down_ms < 5000 )) || rq_fail "fenced only $(( $(rq_now_ms) - down_ms )) ms after the outage began"
nacked10() { has "$T/h7.jsonl" '.type == "JOB_NACK" and .call_id == $id and .reason == "redis"' --arg id $C10; }
rq_wait_for 10 nacked10
kept9() { grep -q "call $C9/1: finish kept for a retry" "$T/telserver.log"; }
rq_wait_for 5 kept9
# interrupted: our next start would end it so anyway, nothing on disk
FINISHES=$T/run/ringq-telserver-tel-it.finishes
[ ! -e "$FINISHES" ] || rq_fail "the fence's interrupted finish was written to $FINISHES"
rq_restart_redis
unfenced() { grep -q "liveness key refreshed again: taking jobs" "$T/telserver.log"; }
rq_wait_for 10 unfenced
wait "$hpid" || rq_fail "harness failed"
grep -v HEARTBEAT "$T/h7.jsonl" || true
[ "$(events "$T/h7.jsonl" $C9)" = "dispatched ringing answered retrying" ] ||
    rq_fail "$C9: $(events "$T/h7.jsonl" $C9)"
[ "$(field "$T/h7.jsonl" $C9 retrying reason)" = interrupted ] || rq_fail "$C9: not interrupted"
case $(field "$T/h7.jsonl" $C9 retrying detail) in
"liveness key not refreshed (fenced); next attempt at 20"*) ;;
*) rq_fail "$C9: detail $(field "$T/h7.jsonl" $C9 retrying detail)" ;;
esac
[ "$(rq_redis HGET rq:job:$C9 status)" = retrying ] || rq_fail "$C9: job status"
has "$T/h7.jsonl" '.type == "HEARTBEAT" and .state == "draining"' ||
    rq_fail "no draining heartbeat while fenced"
! grep -q "call $C10/1: dialing" "$T/telserver.log" || rq_fail "$C10 was dialled"
# its claim never ran: the job is untouched, its lease still there
[ -z "$(rq_redis HGET rq:job:$C10 dialed)" ] || rq_fail "$C10: claimed"
[ -n "$(rq_redis ZSCORE rq:inflight $C10)" ] || rq_fail "$C10: lease gone"
rq_redis DEL rq:job:$C10 >/dev/null; rq_redis ZREM rq:inflight $C10 >/dev/null
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after the outage"

# --- 7b. a finish kept while Redis is out, then kill -9 ---------------------------
# A call that ends during a Redis outage keeps its finish, on disk too; the
# telserver is killed -9 and started again before Redis is back.  Once
# Redis is there, it records that finish before it ends its previous
# run's attempts as interrupted: the call stays completed, and its
# customer is not rung again.
C18=c_000000000000000000000018
harness_bg "$T/h7b.jsonl" 30 99 "0.1|$C18|1|$BARESIP_URI|Short and done."
answered18() { [ "$(field "$T/h7b.jsonl" $C18 answered status)" = answered ]; }
rq_wait_for 10 answered18
rq_stop_redis
kept18() { grep -q "call $C18/1: finish kept for a retry" "$T/telserver.log"; }
rq_wait_for 5 kept18
[ -s "$FINISHES" ] || rq_fail "no $FINISHES while a finish is kept"
rq_kill_daemon telserver
kill "$hpid" 2>/dev/null || true
wait "$hpid" 2>/dev/null || true
# started while Redis is still down: the file is read once, its finish
# kept through the recovery's retries, recorded once Redis is back
rq_start_daemon telserver
rq_wait_for 5 rq_logged "$T/telserver.log" "finishes: 1 of our previous run"
sleep 2.5
rq_restart_redis
rq_wait_for 10 redis_has_event $C18 completed
! redis_has_event $C18 retrying || rq_fail "$C18: retried ($(redis_event $C18 retrying reason)) after it completed"
[ "$(rq_redis HGET rq:job:$C18 status)" = completed ] ||
    rq_fail "$C18: job status $(rq_redis HGET rq:job:$C18 status)"
[ "$(grep -c "finishes: 1 of our previous run" "$T/telserver.log")" = 1 ] ||
    rq_fail "the finishes file was not read back exactly once"
[ "$(grep -c "call $C18/1: recorded as completed" "$T/telserver.log")" = 1 ] ||
    rq_fail "$C18: recorded $(grep -c "call $C18/1: recorded as" "$T/telserver.log") times"
[ ! -e "$FINISHES" ] || rq_fail "$FINISHES left once its finish is recorded"
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after the restart"

# --- 8. kill -9 in the middle of a call ------------------------------------------
# The restarted telserver ends the attempt of its previous run as
# interrupted, and the retry rules schedule a new attempt.  Accounting
# acknowledged none of the call's events before the kill: the restarted
# telserver sends them from its journal, and cuts the journal once they
# are acknowledged.
C11=c_000000000000000000000011
JOURNAL=$T/run/ringq-telserver-tel-it.events
journal_bytes() { stat -c %s "$JOURNAL"; }
export NOACK=1
harness_bg "$T/h8.jsonl" 30 99 "0.1|$C11|1|$BARESIP_URI|$LONG"
unset NOACK
answered11() { [ "$(field "$T/h8.jsonl" $C11 answered status)" = answered ]; }
rq_wait_for 10 answered11
rq_kill_daemon telserver
kill "$hpid" 2>/dev/null || true
wait "$hpid" 2>/dev/null || true
[ "$(journal_bytes)" -gt 100 ] || rq_fail "$JOURNAL: $(journal_bytes) bytes after the kill"
[ "$(rq_redis SISMEMBER rq:oncall:tel-it $C11)" = 1 ] || rq_fail "$C11 not in rq:oncall"
harness_bg "$T/h8b.jsonl" 20 99
rq_start_daemon telserver
from_journal() {
	has "$T/h8b.jsonl" '.src == "events" and .call_id == $id and .status == $st and .attempt == 1' \
	    --arg id $C11 --arg st "$1"
}
rq_wait_for 10 from_journal ringing
rq_wait_for 5 from_journal answered
[ "$(jq -s -r --arg id $C11 'map(select(.src == "events" and .call_id == $id and .status == "answered"))[0].sip_code' "$T/h8b.jsonl")" = 200 ] ||
    rq_fail "$C11: the answered event from the journal lost its sip_code"
journal_cut() { [ "$(journal_bytes)" = 8 ]; }
rq_wait_for 5 journal_cut
kill "$hpid" 2>/dev/null || true
wait "$hpid" 2>/dev/null || true
rq_wait_for 10 redis_has_event $C11 retrying
[ "$(redis_event $C11 retrying reason)" = interrupted ] || rq_fail "$C11: not interrupted"
case $(redis_event $C11 retrying detail) in
"telserver restarted; next attempt at 20"*) ;;
*) rq_fail "$C11: detail $(redis_event $C11 retrying detail)" ;;
esac
[ "$(oncall)" = 0 ] || rq_fail "rq:oncall:tel-it not empty after the restart"
rq_stop_daemon telserver

# --- 9. dry run: claimed, acked and finished as completed, nothing dialled -----
cp "$RQ_CONF" "$T/dry.conf"
printf '\n[telserver]\nname = tel-dry\ndry_run = yes\n' >> "$T/dry.conf"
RQ_CONF=$T/dry.conf rq_start_daemon telserver:dry
D1=c_000000000000000000000d01 D2=c_000000000000000000000d02
harness "$T/h9.jsonl" 15 1 "0.1|$D1|1|+15551230001|x" "0.1|$D2|1|+15551230002|x|x|nolease"
grep -v HEARTBEAT "$T/h9.jsonl" || true
has "$T/h9.jsonl" '.type == "JOB_ACK" and .call_id == $id' --arg id $D1 || rq_fail "$D1: no ack"
# (all in the same millisecond: compare them as a set)
[ "$(events "$T/h9.jsonl" $D1 | tr ' ' '\n' | sort | xargs)" = "answered completed dispatched ringing" ] ||
    rq_fail "$D1: $(events "$T/h9.jsonl" $D1)"
[ "$(field "$T/h9.jsonl" $D1 completed node)" = tel-dry ] || rq_fail "$D1: node"
has "$T/h9.jsonl" '.type == "JOB_NACK" and .call_id == $id and .reason == "stale"' \
    --arg id $D2 || rq_fail "$D2: no JOB_NACK stale"
[ "$(rq_redis SCARD rq:oncall:tel-dry)" = 0 ] || rq_fail "rq:oncall:tel-dry not empty"
rq_stop_daemon telserver:dry

# --- 10. the liveness key outlives a long heartbeat_ms --------------------------
# heartbeat_ms (to the dispatchers) may be longer than the key's 5 s TTL: the
# key is refreshed every second anyway, so the scheduler never takes a live
# telserver for dead.
cp "$RQ_CONF" "$T/slow.conf"
printf '\n[telserver]\nname = tel-slow\ndry_run = yes\nheartbeat_ms = 10000\n' >> "$T/slow.conf"
RQ_CONF=$T/slow.conf rq_start_daemon telserver:slow
slow_alive() { [ "$(rq_redis EXISTS rq:node:tel-slow)" = 1 ]; }
rq_wait_for 5 slow_alive
for i in $(seq 1 14); do
	sleep 0.5
	ttl=$(rq_redis PTTL rq:node:tel-slow)
	(( ttl > 2500 )) || rq_fail "tel-slow: liveness key TTL $ttl ms after $((i * 500)) ms"
done
rq_stop_daemon telserver:slow

rq_check_sanitizers
echo "test_telserver: OK"

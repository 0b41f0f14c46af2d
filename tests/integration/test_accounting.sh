#!/usr/bin/env bash
# ringq-accounting against a real PostgreSQL and redis-server, with a Python
# DEALER standing in for the event senders (it resends unacknowledged events
# every second, like common/evout.c) and redis-cli XADDs standing in for the
# lifecycle scripts' rq:events outbox: migrations (3: status retrying,
# 4: results),
# exactly-once storage, the Redis mirror, bad input, PostgreSQL and Redis
# outages, and kill -9 between COMMIT and XACK.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

PY=/usr/bin/python3
rq_need_pyzmq

# send.py ENDPOINT FILE [REPEAT] [TIMEOUT] [garbage]: sends each event of
# FILE (one JSON object a line, msg.def field names) REPEAT times, resends
# the unacknowledged ones every second, exits 0 once all are acknowledged,
# 1 at TIMEOUT.  Prints "acked N pending M" to stdout as it goes, and at
# the end "boots" and the boot_id of the acks (each once, in order).
cat > "$T/send.py" <<'EOF'
import json, sys, time
import msgpack, zmq

FIELDS = {"call_id": 1, "attempt": 2, "tenant": 3, "to": 4, "status": 7,
          "reason": 8, "sip_code": 9, "ts_ms": 10, "node": 11,
          "duration_ms": 14, "detail": 15, "started_ms": 19,
          "answered_ms": 20, "result": 21}
ep, path = sys.argv[1], sys.argv[2]
repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10
garbage = len(sys.argv) > 5 and sys.argv[5] == "garbage"
events = [json.loads(l) for l in open(path) if l.strip()]
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(ep)

def pack(e):
    return msgpack.packb([1, 5, {FIELDS[k]: v for k, v in e.items()}])

def key(e):
    return (e["call_id"], e["attempt"], e["status"])

if garbage:
    s.send(b"\xc1 not msgpack")
    s.send(msgpack.packb([1, 5, {1: "c_" + "0" * 24}]))    # no status
    s.send(msgpack.packb([7, 5, {}]))                       # version
    # several events in one message: each frame on its own
    s.send_multipart([b"two", pack(events[0]), b"frames"])
pending = {key(e): e for e in events}
for _ in range(repeat):
    for e in events:
        s.send(pack(e))
acked = 0
boots = []
last = time.time()
deadline = last + timeout
while pending and time.time() < deadline:
    if s.poll(100):
        v = msgpack.unpackb(s.recv(), strict_map_key=False)
        assert v[0] == 1 and v[1] == 6, v
        if v[2].get(25) not in boots:
            boots.append(v[2].get(25))
        if pending.pop((v[2][1], v[2][2], v[2][7]), None) is not None:
            acked += 1
        print("acked %d pending %d" % (acked, len(pending)), flush=True)
    if time.time() - last >= 1:
        last = time.time()
        for e in pending.values():
            s.send(pack(e))
print("acked %d pending %d" % (acked, len(pending)), flush=True)
print("boots", *boots, flush=True)
sys.exit(0 if not pending else 1)
EOF

EP=""
send() {	# send FILE [REPEAT] [TIMEOUT] [garbage]
	$PY "$T/send.py" "$EP" "$@" > "$T/send.out" ||
	    rq_fail "events of $1 not all acknowledged: $(tail -n 1 "$T/send.out")"
}

NOW=$(( $(date +%s) * 1000 ))
newid() {
	printf 'c_%s' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
}
# job ID: the job hash as the gateway creates it
job() {
	rq_redis HSET "rq:job:$1" id "$1" tenant demo to +15551234567 \
	    status queued status_rank 0 >/dev/null
}
# A full, successful call.
sequence() {	# sequence ID
	local id=$1
	cat <<EOF
{"call_id": "$id", "attempt": 0, "status": "queued", "ts_ms": $NOW, "tenant": "demo", "to": "+15551234567"}
{"call_id": "$id", "attempt": 0, "status": "scheduled", "ts_ms": $((NOW + 10))}
{"call_id": "$id", "attempt": 1, "status": "dispatched", "ts_ms": $((NOW + 20)), "node": "tel1"}
{"call_id": "$id", "attempt": 1, "status": "ringing", "ts_ms": $((NOW + 30)), "node": "tel1", "sip_code": 180, "started_ms": $((NOW + 25))}
{"call_id": "$id", "attempt": 1, "status": "answered", "ts_ms": $((NOW + 2000)), "node": "tel1", "sip_code": 200, "started_ms": $((NOW + 25)), "answered_ms": $((NOW + 2000))}
{"call_id": "$id", "attempt": 1, "status": "completed", "ts_ms": $((NOW + 7000)), "node": "tel1", "duration_ms": 5000, "started_ms": $((NOW + 25)), "answered_ms": $((NOW + 2000)), "detail": "caller hung up"}
EOF
}
# snapshot ID: everything stored about a call, to compare before and after
snapshot() {
	rq_psql "SELECT c.*, (SELECT string_agg(a::text, ';') FROM attempts a
	    WHERE a.call_id = c.id), (SELECT string_agg(e::text, ';'
	    ORDER BY e.attempt, e.status) FROM call_events e
	    WHERE e.call_id = c.id) FROM calls c WHERE c.id = '$1'"
	# field/value pairs sorted: a hash's order is not part of its value
	# (the job's hash holds its timeline too: see timeline below)
	rq_redis HGETALL "rq:job:$1" | paste - - | sort
}
# A call's timeline is in its job's hash: the fields "<attempt>:<status>",
# the only ones that begin with a digit (common/keys.h).
# timeline_len ID: how many entries the timeline of ID has.
timeline_len() {
	rq_redis HKEYS "rq:job:$1" | grep -c '^[0-9]' || true
}
# cb_marks ID: "ATTEMPT0,ATTEMPT1": the job's marks of the events whose
# status callback was queued (fields cb:0 and cb:1, a bit per status)
cb_marks() {
	rq_redis HMGET "rq:job:$1" cb:0 cb:1 | paste -sd,
}
# timeline ID: its entries, "field<TAB>value" a line, sorted (for messages)
timeline() {
	rq_redis HGETALL "rq:job:$1" | paste - - | grep '^[0-9]' | sort || true
}
# outage_events TAG: a full call's events sent over ZeroMQ by send.py, left
# running as SENDER (its output in $T/send-TAG.out), and another call's
# written to rq:events; their ids in OUT_SENT and OUT_XADDED.
outage_events() {
	OUT_SENT=$(newid)
	job "$OUT_SENT"
	sequence "$OUT_SENT" > "$T/$1.jsonl"
	$PY "$T/send.py" "$EP" "$T/$1.jsonl" 1 60 > "$T/send-$1.out" &
	SENDER=$!
	OUT_XADDED=$(newid)
	job "$OUT_XADDED"
	sequence "$OUT_XADDED" > "$T/${1}2.jsonl"
	xadd_file "$T/${1}2.jsonl"
}
none_acked() {	# none_acked TAG WHILE: outage_events' sender got no ack
	rq_alive "$SENDER" ||
	    rq_fail "events acknowledged while $2: $(cat "$T/send-$1.out")"
	if grep -q "acked [1-9]" "$T/send-$1.out"; then
		rq_fail "an event was acknowledged while $2"
	fi
}
log_count() {	# log_count PATTERN: lines of accounting.log matching
	grep -c -- "$1" "$T/accounting.log" || true
}
# xadd_file FILE: each event of FILE (one JSON object a line) as an rq:events
# entry, values as text, as the lifecycle scripts write them.
xadd_file() {
	jq -r '["XADD", "rq:events", "*"] + (to_entries |
	    map([.key, (.value | tostring)]) | add) | @sh' "$1" |
	while read -r line; do
		eval "rq_redis $line" >/dev/null
	done
}

rq_start_redis
rq_start_pg
rq_write_config
EP=tcp://127.0.0.1:$RQ_EVENTS_PORT

"$RQ_BUILD/accounting/ringq-accounting" -f "$RQ_CONF" -n | grep -q "configuration OK" ||
    rq_fail "-n does not accept the configuration"

# A conninfo that does not parse: libpq's message would quote it, password
# and all; the daemon says what is wrong without it, and stops.
sed 's|^conninfo = .*|conninfo = postgresql://ringq:pg-sekrit@[::1/ringq|' \
    "$RQ_CONF" > "$T/badpg.conf"
for flag in -n ""; do
	rc=0
	timeout 10 "$RQ_BUILD/accounting/ringq-accounting" -f "$T/badpg.conf" \
	    $flag > "$T/badpg.log" 2>&1 || rc=$?
	[ "$rc" = 1 ] || rq_fail "a conninfo that does not parse ($flag): exit $rc, want 1"
	grep -q "conninfo does not parse" "$T/badpg.log" ||
	    rq_fail "no reason given ($flag): $(cat "$T/badpg.log")"
	! grep -q "pg-sekrit" "$T/badpg.log" ||
	    rq_fail "the password was shown ($flag): $(cat "$T/badpg.log")"
done

# --- migrations: applied once, even across restarts --------------------------
rq_start_daemon accounting
rq_wait_for 10 grep -q "postgres: connected" "$T/accounting.log"
rq_stop_daemon accounting
rq_start_daemon accounting
rq_wait_for 10 grep -q "postgres: connected" "$T/accounting.log"
[ "$(rq_psql "SELECT count(*), count(DISTINCT version), min(version), max(version) FROM schema_migrations")" = "8|8|1|8" ] ||
    rq_fail "schema_migrations: $(rq_psql 'SELECT * FROM schema_migrations')"
[ "$(log_count 'schema migration 1 applied')" = 1 ] ||
    rq_fail "migration 1 applied more than once"
rq_psql "SELECT 1 FROM pg_indexes WHERE indexname = 'calls_tenant_created_idx'" | grep -q 1 ||
    rq_fail "index calls(tenant, created_at) missing"

# --- a full call: one calls row, one attempts row, six events, the mirror ----
A=$(newid)
job "$A"
sequence "$A" > "$T/a.jsonl"
send "$T/a.jsonl"
grep -q "acked 6 pending 0" "$T/send.out" || rq_fail "not 6 acks: $(cat "$T/send.out")"
# each ack says which run of accounting sent it (docs/delivery.md)
BOOT1=$(sed -n 's/^boots //p' "$T/send.out")
[[ $BOOT1 =~ ^[0-9a-f]{24}$ ]] || rq_fail "acks' boot_id: '$BOOT1'"
[ "$(rq_psql "SELECT tenant, target, status, attempts, talk_ms, status_rank,
    answered_at IS NOT NULL, ended_at - created_at FROM calls WHERE id = '$A'")" = \
    "demo|+15551234567|completed|1|5000|22|t|00:00:07" ] ||
    rq_fail "calls row: $(rq_psql "SELECT * FROM calls WHERE id = '$A'")"
[ "$(rq_psql "SELECT attempt, node, status, talk_ms, answered_at - started_at
    FROM attempts WHERE call_id = '$A'")" = "1|tel1|completed|5000|00:00:01.975" ] ||
    rq_fail "attempts row: $(rq_psql "SELECT * FROM attempts WHERE call_id = '$A'")"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$A'")" = 6 ] ||
    rq_fail "call_events: $(rq_psql "SELECT * FROM call_events WHERE call_id = '$A'")"
[ "$(rq_redis HGET "rq:job:$A" status)" = completed ] &&
    [ "$(rq_redis HGET "rq:job:$A" status_rank)" = 22 ] &&
    [ "$(rq_redis HGET "rq:job:$A" updated_ms)" = $((NOW + 7000)) ] ||
    rq_fail "redis job: $(rq_redis HGETALL "rq:job:$A")"
[ "$(timeline_len "$A")" = 6 ] ||
    rq_fail "timeline: $(timeline "$A")"
rq_redis HGET "rq:job:$A" 1:completed | jq -e --argjson ts $((NOW + 7000)) \
    '.status == "completed" and .attempt == 1 and .ts_ms == $ts and
     .duration_ms == 5000 and .node == "tel1" and (has("reason") | not) and
     (.at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$"))' >/dev/null ||
    rq_fail "timeline entry: $(rq_redis HGET "rq:job:$A" 1:completed)"
# Ended: the job, its timeline with it, leaves Redis in 7 days
# (RQ_CALL_TTL_MS), when a scheduler deletes it (rq:ended; no TTL);
# nothing writes the legacy rq:timeline: key.
left=$(( $(rq_redis ZSCORE rq:ended "$A") - $(rq_now_ms) ))
[ "$(rq_redis PTTL "rq:job:$A")" = -1 ] && (( left > 604800000 - 60000 && left <= 604800000 )) ||
    rq_fail "rq:job:$A: PTTL $(rq_redis PTTL "rq:job:$A"), in rq:ended for $left ms, not the 7 days of an ended call"
[ "$(rq_redis EXISTS "rq:timeline:$A")" = 0 ] ||
    rq_fail "rq:timeline:$A written: $(rq_redis HGETALL "rq:timeline:$A")"

# --- each event three times: nothing changes ---------------------------------
before=$(snapshot "$A")
send "$T/a.jsonl" 3
after=$(snapshot "$A")
[ "$after" = "$before" ] || rq_fail "repeated events changed the call: $(diff <(echo "$before") <(echo "$after"))"
[ "$(rq_psql "SELECT count(*) FROM call_events")" = 6 ] &&
    [ "$(rq_psql "SELECT count(*) FROM attempts")" = 1 ] &&
    [ "$(rq_psql "SELECT count(*) FROM calls")" = 1 ] ||
    rq_fail "repeated events added rows"

# A fresh call whose events all come three times in one go.
A3=$(newid)
job "$A3"
sequence "$A3" > "$T/a3.jsonl"
send "$T/a3.jsonl" 3
[ "$(rq_psql "SELECT count(*), max(status_rank) FROM calls WHERE id = '$A3'") $(rq_psql \
    "SELECT count(*) FROM call_events WHERE call_id = '$A3'")" = "1|22 6" ] ||
    rq_fail "tripled events stored wrong"

# --- rq:events: the same call from the lifecycle scripts' outbox ------------
rq_wait_for 10 rq_events_drained
E=$(newid)
job "$E"
sequence "$E" > "$T/e.jsonl"
xadd_file "$T/e.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT tenant, target, status, attempts, talk_ms, status_rank
    FROM calls WHERE id = '$E'") $(rq_psql "SELECT count(*) FROM call_events
    WHERE call_id = '$E'") $(rq_psql "SELECT status FROM attempts
    WHERE call_id = '$E'")" = "demo|+15551234567|completed|1|5000|22 6 completed" ] ||
    rq_fail "rq:events call: $(rq_psql "SELECT * FROM calls WHERE id = '$E'")"
[ "$(timeline_len "$E")" = 6 ] ||
    rq_fail "rq:events timeline: $(timeline "$E")"
# An incoming call: its first event says so (rq_job_inbound), the later
# ones do not, and the call stays inbound; a direction that is neither is
# ignored (the call is outbound), the event stored.
IN=$(newid)
BAD=$(newid)
cat > "$T/in.jsonl" <<EOF
{"call_id": "$IN", "attempt": 1, "status": "answered", "ts_ms": $NOW, "tenant": "demo", "to": "+15557654321", "direction": "inbound", "node": "tel1", "sip_code": 200}
{"call_id": "$IN", "attempt": 1, "status": "completed", "ts_ms": $((NOW + 3000)), "node": "tel1", "duration_ms": 3000}
{"call_id": "$BAD", "attempt": 0, "status": "queued", "ts_ms": $NOW, "tenant": "demo", "to": "+15551234567", "direction": "sideways"}
EOF
xadd_file "$T/in.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT id || ':' || direction || ':' || status FROM calls
    WHERE id IN ('$E', '$IN', '$BAD')" | sort | tr '\n' ' ')" = \
    "$(printf '%s\n' "$BAD:outbound:queued" "$E:outbound:completed" \
    "$IN:inbound:completed" | sort | tr '\n' ' ')" ] ||
    rq_fail "directions: $(rq_psql "SELECT id, direction, status FROM calls WHERE id IN ('$E', '$IN', '$BAD')")"
grep -q "direction is neither inbound nor outbound, ignored" "$T/accounting.log" ||
    rq_fail "a bad direction was not logged"
echo "ok: an incoming call is inbound in PostgreSQL, the others outbound"
# The same entries again (a writer's retry): nothing changes.
before=$(snapshot "$E")
xadd_file "$T/e.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(snapshot "$E")" = "$before" ] || rq_fail "repeated rq:events entries changed the call"

# Entries that emit() wrote say "timeline 1": the script mirrored them
# already, so accounting stores them and leaves Redis alone (the hash keeps
# what the script wrote), but for the status callback of a job that has a
# callback_url ("callback 1").
F=$(newid)
job "$F"
G=$(newid)
job "$G"
rq_redis HSET "rq:job:$G" callback_url http://127.0.0.1:9/hook >/dev/null
for id in "$F" "$G"; do
	sequence "$id" | jq -c '. + {timeline: "1"}'
done > "$T/f.jsonl"
jq -c 'if .call_id == "'"$G"'" then . + {callback: "1"} else . end' \
    "$T/f.jsonl" > "$T/fg.jsonl"
xadd_file "$T/fg.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT string_agg(status || ':' || status_rank, ',' ORDER BY id) FROM calls WHERE id IN ('$F', '$G')")" = "completed:22,completed:22" ] ||
    rq_fail "flagged entries not stored: $(rq_psql "SELECT * FROM calls WHERE id IN ('$F', '$G')")"
[ "$(timeline_len "$F") $(rq_redis EXISTS "rq:timeline:$F") $(rq_redis HGET "rq:job:$F" status)" = "0 0 queued" ] ||
    rq_fail "accounting mirrored an entry the script had mirrored: $(rq_redis HGETALL "rq:job:$F")"
# (the job's cb:<attempt> fields record each event queued, whatever its
# delivery does, a bit per status: queued 1, scheduled 2, dispatched 4,
# ringing 8, answered 16, completed 64; no key of its own, which would
# have a TTL)
[ "$(cb_marks "$G") $(cb_marks "$F") $(rq_redis EXISTS "rq:cbsent:$G")" = "3,92 , 0" ] ||
    rq_fail "callbacks queued: $(rq_redis HGETALL "rq:job:$G" | paste - - | grep '^cb:')"
echo "ok: entries mirrored by their script: stored, callbacks queued, nothing rewritten"
# The same entries again: no callback queued twice.  An event that a
# version before the cb: fields queued (its mark in rq:cbsent:<id>) is
# not queued again either, and gets its mark in the job; the others are
# queued.  Callbacks to 127.0.0.1 are
# dropped here (no callbacks_allow_loopback), each with a line naming it.
H=$(newid)
job "$H"
rq_redis HSET "rq:job:$H" callback_url http://127.0.0.1:9/hook >/dev/null
rq_redis HSET "rq:cbsent:$H" 1:completed 1 >/dev/null
sequence "$H" | jq -c '. + {timeline: "1", callback: "1"}' > "$T/h.jsonl"
xadd_file "$T/fg.jsonl"
xadd_file "$T/h.jsonl"
rq_wait_for 10 rq_events_drained
cb_dropped() { grep -c "$1: callback .* dropped" "$T/accounting.log" || true; }
cb_dropped_5() { [ "$(cb_dropped "$1")" -ge 5 ]; }
rq_wait_for 10 cb_dropped_5 "$H"
sleep 0.5	# a sixth, or a seventh of $G, would come with them
[ "$(cb_dropped "$G") $(cb_dropped "$H") $(cb_marks "$H")" = "6 5 3,92" ] &&
    ! grep -q "$H: callback completed" "$T/accounting.log" ||
    rq_fail "callbacks resent: $(grep -E "($G|$H): callback" "$T/accounting.log")"
echo "ok: a resent event, or one an older version queued, queues no callback again"

# A telserver's ringing and answered that reach accounting after the
# finish's completed (they wait on its socket, or come again after its
# restart): stored, but no callback, so that a receiver never sees the
# call move back from its final status.
K=$(newid)
job "$K"
rq_redis HSET "rq:job:$K" callback_url http://127.0.0.1:9/hook >/dev/null
sequence "$K" | jq -c '. + {timeline: "1", callback: "1"}' > "$T/k.jsonl"
grep -v '"status":"\(ringing\|answered\)"' "$T/k.jsonl" > "$T/k1.jsonl"
grep '"status":"\(ringing\|answered\)"' "$T/k.jsonl" | jq -c 'del(.timeline, .callback)' > "$T/k2.jsonl"
[ "$(wc -l < "$T/k1.jsonl") $(wc -l < "$T/k2.jsonl")" = "4 2" ] || rq_fail "k.jsonl split"
xadd_file "$T/k1.jsonl"
rq_wait_for 10 rq_events_drained
send "$T/k2.jsonl"
k_stored() { [ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$K'")" = 6 ]; }
rq_wait_for 10 k_stored
k_four() { [ "$(cb_dropped "$K")" -ge 4 ]; }
rq_wait_for 10 k_four
sleep 0.5	# a fifth would come with them
[ "$(cb_dropped "$K")" = 4 ] && ! grep -q "$K: callback \(ringing\|answered\)" "$T/accounting.log" ||
    rq_fail "callbacks after the final status: $(grep "$K: callback" "$T/accounting.log")"
echo "ok: ringing and answered after completed: stored, no callback"

# Busy, then answered on attempt 2 (docs/delivery.md's timeline): retrying
# ends attempt 1, not the call.
Y=$(newid)
job "$Y"
cat > "$T/y1.jsonl" <<EOF
{"call_id": "$Y", "attempt": 0, "status": "queued", "ts_ms": $NOW, "tenant": "demo", "to": "+15551234567"}
{"call_id": "$Y", "attempt": 0, "status": "scheduled", "ts_ms": $((NOW + 10))}
{"call_id": "$Y", "attempt": 1, "status": "dispatched", "ts_ms": $((NOW + 20)), "node": "tel1"}
{"call_id": "$Y", "attempt": 1, "status": "ringing", "ts_ms": $((NOW + 30)), "node": "tel1", "sip_code": 180, "started_ms": $((NOW + 25))}
{"call_id": "$Y", "attempt": 1, "status": "retrying", "ts_ms": $((NOW + 1000)), "node": "tel1", "reason": "busy", "sip_code": 486, "started_ms": $((NOW + 25)), "detail": "next attempt at 2026-11-22T10:01:00Z"}
EOF
xadd_file "$T/y1.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT status, reason, sip_code, attempts, status_rank, ended_at IS NULL, talk_ms IS NULL FROM calls WHERE id = '$Y'")" = "retrying|busy|486|1|21|t|t" ] ||
    rq_fail "retrying call: $(rq_psql "SELECT * FROM calls WHERE id = '$Y'")"
[ "$(rq_psql "SELECT attempt, status, reason, sip_code, ended_at - started_at FROM attempts WHERE call_id = '$Y'")" = "1|retrying|busy|486|00:00:00.975" ] ||
    rq_fail "retrying attempt: $(rq_psql "SELECT * FROM attempts WHERE call_id = '$Y'")"
rq_psql "SELECT detail FROM call_events WHERE call_id = '$Y' AND status = 'retrying'" | grep -q "next attempt at" ||
    rq_fail "retrying detail not stored"
cat > "$T/y2.jsonl" <<EOF
{"call_id": "$Y", "attempt": 2, "status": "dispatched", "ts_ms": $((NOW + 60000)), "node": "tel2"}
{"call_id": "$Y", "attempt": 2, "status": "ringing", "ts_ms": $((NOW + 60010)), "node": "tel2", "sip_code": 180, "started_ms": $((NOW + 60005))}
{"call_id": "$Y", "attempt": 2, "status": "answered", "ts_ms": $((NOW + 61000)), "node": "tel2", "sip_code": 200, "answered_ms": $((NOW + 61000))}
{"call_id": "$Y", "attempt": 2, "status": "completed", "ts_ms": $((NOW + 64000)), "node": "tel2", "duration_ms": 3000}
EOF
xadd_file "$T/y2.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT status, reason IS NULL, attempts, status_rank, talk_ms FROM calls WHERE id = '$Y'")" = "completed|t|2|38|3000" ] ||
    rq_fail "call after a retry: $(rq_psql "SELECT * FROM calls WHERE id = '$Y'")"
[ "$(rq_psql "SELECT string_agg(attempt || ':' || status || ':' || coalesce(reason, '-') || ':' || (ended_at IS NOT NULL), ',' ORDER BY attempt) FROM attempts WHERE call_id = '$Y'")" = "1:retrying:busy:true,2:completed:-:true" ] ||
    rq_fail "attempts after a retry: $(rq_psql "SELECT * FROM attempts WHERE call_id = '$Y'")"
[ "$(rq_psql "SELECT string_agg(attempt || ':' || status, ',' ORDER BY at) FROM call_events WHERE call_id = '$Y'")" = \
    "0:queued,0:scheduled,1:dispatched,1:ringing,1:retrying,2:dispatched,2:ringing,2:answered,2:completed" ] ||
    rq_fail "timeline after a retry: $(rq_psql "SELECT * FROM call_events WHERE call_id = '$Y'")"

# Text reaches PostgreSQL byte for byte, whatever an array literal would
# have had to quote (the statement takes its arrays in binary), and an
# absent field stays NULL.
Q=$(newid)
job "$Q"
odd='say "hi", {x} \ NULL, ünïcode; 42'
jq -cn --arg id "$Q" --arg odd "$odd" --argjson now "$NOW" '
    {call_id: $id, attempt: 1, status: "failed", ts_ms: $now,
     tenant: "demo", to: "sip:o\"dd@example.com", reason: "rejected",
     sip_code: 403, node: "tel,1", detail: $odd}' > "$T/q.jsonl"
xadd_file "$T/q.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT detail FROM call_events WHERE call_id = '$Q'")" = "$odd" ] ||
    rq_fail "detail stored as: $(rq_psql "SELECT detail FROM call_events WHERE call_id = '$Q'")"
[ "$(rq_psql "SELECT target || '|' || sip_code || '|' || (talk_ms IS NULL) || '|' || (answered_at IS NULL) FROM calls WHERE id = '$Q'")" = 'sip:o"dd@example.com|403|true|true' ] ||
    rq_fail "call stored as: $(rq_psql "SELECT * FROM calls WHERE id = '$Q'")"
[ "$(rq_psql "SELECT node || '|' || (duration_ms IS NULL) FROM call_events WHERE call_id = '$Q'")" = "tel,1|true" ] ||
    rq_fail "event stored as: $(rq_psql "SELECT * FROM call_events WHERE call_id = '$Q'")"
echo "ok: text stored byte for byte, absent fields NULL"

# Malformed entries: logged, acknowledged and deleted; the next ones stored.
M=$(newid)
job "$M"
rq_redis XADD rq:events '*' garbage 1 >/dev/null
rq_redis XADD rq:events '*' call_id "$M" attempt x status failed ts_ms "$NOW" >/dev/null
rq_redis XADD rq:events '*' call_id "$M" attempt 1 status exploded ts_ms "$NOW" >/dev/null
rq_redis XADD rq:events '*' call_id "$M" attempt 1 status failed ts_ms "$NOW" reason declined sip_code 603 >/dev/null
rq_wait_for 10 rq_events_drained
grep -q "rq:events entry .* dropped: call_id, attempt, status or ts_ms missing" "$T/accounting.log" ||
    rq_fail "entry without fields not logged"
grep -q "rq:events entry .* dropped: attempt is not a number" "$T/accounting.log" ||
    rq_fail "entry with a bad number not logged"
grep -q "$M: event 1:exploded dropped: unknown status" "$T/accounting.log" ||
    rq_fail "entry with an unknown status not logged"
[ "$(rq_psql "SELECT string_agg(status, ',') FROM call_events WHERE call_id = '$M'")" = failed ] ||
    rq_fail "malformed entries: $(rq_psql "SELECT * FROM call_events WHERE call_id = '$M'")"

# --- results (migration 4): from ZeroMQ and from rq:events ------------------
# An object is stored as it came; text that is not one becomes a JSON string
# (logged), and never makes PostgreSQL refuse the batch around it.
Q=$(newid)
job "$Q"
Q2=$(newid)
job "$Q2"
jq -cn --arg id "$Q" --arg id2 "$Q2" --argjson now "$NOW" '
    {call_id: $id, attempt: 1, status: "dispatched", ts_ms: $now, node: "tel1"},
    {call_id: $id, attempt: 1, status: "completed", ts_ms: ($now + 10),
     node: "tel1", result: "{\"end\":\"exit\",\"fields\":{\"pin\":\"42\"}}"},
    {call_id: $id2, attempt: 1, status: "completed", ts_ms: ($now + 10),
     node: "tel1", result: "[not an object"}' > "$T/q.jsonl"
send "$T/q.jsonl"
[ "$(rq_psql "SELECT string_agg(coalesce(jsonb_typeof(e.result), '-') || ':' ||
    coalesce(e.result->'fields'->>'pin', e.result #>> '{}', '-'), ',' ORDER BY e.call_id = '$Q2', e.status)
    FROM call_events e WHERE e.call_id IN ('$Q', '$Q2')")" = \
    "object:42,-:-,string:[not an object" ] ||
    rq_fail "results over ZeroMQ: $(rq_psql "SELECT call_id, status, result FROM call_events WHERE call_id IN ('$Q', '$Q2')")"
rq_redis HGET "rq:job:$Q" 1:completed | jq -e '.result.fields.pin == "42"' >/dev/null ||
    rq_fail "timeline entry of a ZeroMQ result: $(rq_redis HGET "rq:job:$Q" 1:completed)"
R3=$(newid)
job "$R3"
rq_redis XADD rq:events '*' call_id "$R3" attempt 1 status failed ts_ms "$NOW" \
    reason media result '{"end":"error","event":"error.badfetch","line":3}' >/dev/null
rq_redis XADD rq:events '*' call_id "$R3" attempt 2 status completed ts_ms "$((NOW + 5))" \
    result 'x' >/dev/null
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT a.attempt || ':' || (a.result->>'event') FROM attempts a
    WHERE a.call_id = '$R3' AND a.attempt = 1") $(rq_psql "SELECT jsonb_typeof(result)
    FROM calls WHERE id = '$R3'")" = "1:error.badfetch string" ] ||
    rq_fail "results from rq:events: $(rq_psql "SELECT * FROM attempts WHERE call_id = '$R3'")"
grep -q "$Q2: event 1:completed: result is not a JSON object: kept as a string" "$T/accounting.log" ||
    rq_fail "a result kept as a string not logged"
echo "ok: results from ZeroMQ and rq:events stored (objects as such, the rest as strings)"

# --- out of order: a late ringing does not move the status back -------------
B=$(newid)
job "$B"
sequence "$B" | grep -v ringing > "$T/b.jsonl"
send "$T/b.jsonl"
sequence "$B" | grep ringing > "$T/b2.jsonl"
send "$T/b2.jsonl"
[ "$(rq_psql "SELECT status, status_rank FROM calls WHERE id = '$B'")" = "completed|22" ] ||
    rq_fail "late ringing moved the call: $(rq_psql "SELECT * FROM calls WHERE id = '$B'")"
[ "$(rq_psql "SELECT status FROM attempts WHERE call_id = '$B'")" = completed ] ||
    rq_fail "late ringing moved the attempt"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$B'")" = 6 ] ||
    rq_fail "late ringing not recorded"
[ "$(rq_redis HGET "rq:job:$B" status)" = completed ] ||
    rq_fail "late ringing moved the redis status"
rq_redis HEXISTS "rq:job:$B" 1:ringing | grep -q 1 ||
    rq_fail "late ringing missing from the timeline"

# A failed attempt then a second one: status follows the higher rank, the
# reason goes with the failure, the call's attempts count is 2.
F=$(newid)
job "$F"
cat > "$T/f.jsonl" <<EOF
{"call_id": "$F", "attempt": 1, "status": "failed", "ts_ms": $((NOW + 100)), "reason": "busy", "sip_code": 486, "node": "tel1"}
{"call_id": "$F", "attempt": 2, "status": "dispatched", "ts_ms": $((NOW + 200)), "node": "tel2"}
EOF
send "$T/f.jsonl"
[ "$(rq_psql "SELECT status, reason IS NULL, ended_at IS NULL, attempts, tenant FROM calls WHERE id = '$F'")" = "dispatched|t|t|2|" ] ||
    rq_fail "retry: $(rq_psql "SELECT * FROM calls WHERE id = '$F'")"
[ "$(rq_psql "SELECT string_agg(attempt || ':' || status || ':' || coalesce(reason, '-') || ':' || coalesce(sip_code, 0), ',' ORDER BY attempt) FROM attempts WHERE call_id = '$F'")" = "1:failed:busy:486,2:dispatched:-:0" ] ||
    rq_fail "retry attempts: $(rq_psql "SELECT * FROM attempts WHERE call_id = '$F'")"
[ "$(rq_redis HGET "rq:job:$F" status):$(rq_redis HEXISTS "rq:job:$F" reason)" = "dispatched:0" ] ||
    rq_fail "retry in redis: $(rq_redis HGETALL "rq:job:$F")"

# --- bad events: acknowledged, logged, not stored ----------------------------
U=$(newid)
cat > "$T/u.jsonl" <<EOF
{"call_id": "$U", "attempt": 1, "status": "exploded", "ts_ms": $NOW}
{"call_id": "$U", "attempt": 0, "status": "ringing", "ts_ms": $NOW}
{"call_id": "$U", "attempt": 1, "status": "failed", "ts_ms": 999999999999999999}
{"call_id": "not-an-id", "attempt": 1, "status": "failed", "ts_ms": $NOW}
EOF
send "$T/u.jsonl"
grep -q "$U: event 1:exploded dropped: unknown status" "$T/accounting.log" ||
    rq_fail "unknown status not logged"
grep -q "$U: event 0:ringing dropped" "$T/accounting.log" ||
    rq_fail "attempt 0 ringing not logged"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id IN ('$U', 'not-an-id')")" = 0 ] ||
    rq_fail "bad events stored"

# A bad optional field is dropped, the event still stored.
W=$(newid)
echo "{\"call_id\": \"$W\", \"attempt\": 1, \"status\": \"failed\", \"ts_ms\": $NOW, \"reason\": \"unreachable\", \"sip_code\": 904}" > "$T/w.jsonl"
send "$T/w.jsonl"
[ "$(rq_psql "SELECT status, reason, sip_code IS NULL FROM calls WHERE id = '$W'")" = "failed|unreachable|t" ] ||
    rq_fail "event with a bad sip_code: $(rq_psql "SELECT * FROM calls WHERE id = '$W'")"
grep -q "$W: event 1:failed: sip_code 904 out of range, ignored" "$T/accounting.log" ||
    rq_fail "ignored sip_code not logged"

# A bad event in the same burst as good ones does not hold them back.
G=$(newid)
job "$G"
{ echo "{\"call_id\": \"$G\", \"attempt\": 1, \"status\": \"bogus\", \"ts_ms\": $NOW}"; sequence "$G"; } > "$T/g.jsonl"
send "$T/g.jsonl"
[ "$(rq_psql "SELECT status FROM calls WHERE id = '$G'")" = completed ] ||
    rq_fail "good events next to a bad one not stored"

# --- garbage frames: logged, the daemon keeps working -------------------------
H=$(newid)
job "$H"
sequence "$H" > "$T/h.jsonl"
send "$T/h.jsonl" 1 10 garbage
grep -q "malformed message dropped" "$T/accounting.log" || rq_fail "garbage not logged"
[ "$(grep -c "malformed message dropped" "$T/accounting.log")" -ge 3 ] ||
    rq_fail "the bad frames of a multi-frame message not logged"
[ "$(rq_psql "SELECT status FROM calls WHERE id = '$H'")" = completed ] ||
    rq_fail "events after garbage not stored"

# --- PostgreSQL down: no acks; stored once it is back ------------------------
rq_stop_pg
outage_events c
C=$OUT_SENT C2=$OUT_XADDED
sleep 3
[ "$(rq_redis XLEN rq:events)" = 6 ] || rq_fail "rq:events entries gone while PostgreSQL was down"
none_acked c "PostgreSQL was down"
rq_restart_pg
wait "$SENDER" || rq_fail "events not acknowledged after PostgreSQL came back: $(tail -n 1 "$T/send-c.out")"
[ "$(rq_psql "SELECT status, talk_ms FROM calls WHERE id = '$C'") $(rq_psql \
    "SELECT count(*) FROM call_events WHERE call_id = '$C'")" = "completed|5000 6" ] ||
    rq_fail "events sent during the outage not stored"
[ "$(rq_redis HGET "rq:job:$C" status)" = completed ] || rq_fail "outage events not mirrored"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT status, talk_ms FROM calls WHERE id = '$C2'") $(rq_psql \
    "SELECT count(*) FROM call_events WHERE call_id = '$C2'")" = "completed|5000 6" ] ||
    rq_fail "rq:events entries written during the outage not stored"
n=$(log_count 'postgres: .*not acknowledging')
[ "$n" = 1 ] || rq_fail "outage logged $n times, wanted once"
grep -q "postgres: connected again" "$T/accounting.log" || rq_fail "reconnection not logged"

# --- PostgreSQL refuses every write (a full disk): said once, no event stored
# one by one, nothing acknowledged; all stored once it takes them again -------
onebyone=$(log_count 'storing them one by one')
perevent=$(log_count 'postgres: storing events:')
rq_psql "CREATE FUNCTION ringq_test_full() RETURNS trigger LANGUAGE plpgsql
    AS \$\$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on
    device' USING ERRCODE = 'disk_full'; END \$\$"
rq_psql "CREATE TRIGGER ringq_test_full BEFORE INSERT ON call_events
    FOR EACH STATEMENT EXECUTE FUNCTION ringq_test_full()"
outage_events f
F=$OUT_SENT F2=$OUT_XADDED
sleep 4
none_acked f "PostgreSQL refused writes"
n=$(log_count 'postgres: refuses to store events (.*No space left on')
[ "$n" = 1 ] || rq_fail "a full disk logged $n times, wanted once"
[ "$(log_count 'storing them one by one')" = "$onebyone" ] ||
    rq_fail "a full disk taken for a bad event: batches stored one by one"
[ "$(log_count 'postgres: storing events:')" = "$perevent" ] ||
    rq_fail "a full disk logged per event"
rq_psql "DROP TRIGGER ringq_test_full ON call_events"
wait "$SENDER" || rq_fail "events not acknowledged once PostgreSQL took writes again: $(tail -n 1 "$T/send-f.out")"
rq_wait_for 10 rq_events_drained
for id in "$F" "$F2"; do
	[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$id'")" = 6 ] ||
	    rq_fail "events of $id not stored after the full disk"
done
grep -q "postgres: stores events again" "$T/accounting.log" ||
    rq_fail "the end of the refusal not logged"
echo "ok: a database that refuses every write: said once, all stored after it"

# --- Redis forgot the script (restart, SCRIPT FLUSH): mirrored all the same --
rq_redis SCRIPT FLUSH >/dev/null
S=$(newid)
job "$S"
sequence "$S" > "$T/s.jsonl"
send "$T/s.jsonl" 1 10
[ "$(rq_redis HGET "rq:job:$S" status)" = completed ] &&
    [ "$(timeline_len "$S")" = 6 ] ||
    rq_fail "not mirrored after SCRIPT FLUSH: $(rq_redis HGETALL "rq:job:$S")"
S2=$(newid)
job "$S2"
sequence "$S2" > "$T/s2.jsonl"
send "$T/s2.jsonl" 1 10
[ "$(rq_redis HGET "rq:job:$S2" status)" = completed ] ||
    rq_fail "not mirrored after the script came back"

# --- Redis down: stored but not acknowledged until the mirror is done ---------
rq_stop_redis
R=$(newid)
sequence "$R" > "$T/r.jsonl"
$PY "$T/send.py" "$EP" "$T/r.jsonl" 1 60 > "$T/send-r.out" &
SENDER=$!
sleep 2
rq_alive "$SENDER" || rq_fail "events acknowledged while Redis was down"
rq_restart_redis
wait "$SENDER" || rq_fail "events not acknowledged after Redis came back"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$R'")" = 6 ] ||
    rq_fail "events sent while Redis was down stored wrong"
grep -q "redis: connected again" "$T/accounting.log" || rq_fail "redis reconnection not logged"

# --- Redis restarted empty (no persistence): the group comes back ------------
R2=$(newid)
job "$R2"
sequence "$R2" > "$T/r2.jsonl"
xadd_file "$T/r2.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT status FROM calls WHERE id = '$R2'")" = completed ] ||
    rq_fail "rq:events not read after Redis restarted empty"

# --- killed between COMMIT and XACK: read again, stored once ------------------
stored() {	# stored ID N: ID has N call_events rows
	[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$1'")" = "$2" ]
}
K=$(newid)
job "$K"
sequence "$K" > "$T/k.jsonl"
# Redis refuses the acknowledgement: the entries stay pending after COMMIT.
rq_redis ACL SETUSER default -xack >/dev/null
xadd_file "$T/k.jsonl"
rq_wait_for 10 stored "$K" 6
sleep 1.5	# a second read of the pending entries, stored again: no change
[ "$(rq_redis XPENDING rq:events accounting | head -n 1)" = 6 ] ||
    rq_fail "entries acknowledged though XACK was refused"
grep -q "rq:events acknowledgement: ERR .*can't run this command" \
    "$T/accounting.log" ||
    rq_fail "refused acknowledgement not logged"
before=$(snapshot "$K")
rq_kill_daemon accounting
rq_redis ACL SETUSER default +xack >/dev/null
rq_start_daemon accounting
rq_wait_for 10 rq_events_drained
[ "$(snapshot "$K")" = "$before" ] || rq_fail "re-read entries changed the call"
stored "$K" 6 || rq_fail "re-read entries stored twice"
# a new run acks with a boot_id of its own
NB=$(newid)
job "$NB"
sequence "$NB" > "$T/nb.jsonl"
send "$T/nb.jsonl"
BOOT2=$(sed -n 's/^boots //p' "$T/send.out")
[[ $BOOT2 =~ ^[0-9a-f]{24}$ ]] && [ "$BOOT2" != "$BOOT1" ] ||
    rq_fail "boot_id after a restart: '$BOOT2' (before: '$BOOT1')"

# A stream of 300 calls while accounting is killed -9 three times.
NK=300
: > "$T/bulk.jsonl"
for ((i = 0; i < NK; i++)); do
	sequence "$(newid)" >> "$T/bulk.jsonl"
done
jq -r '["XADD", "rq:events", "*"] + (to_entries |
    map([.key, (.value | tostring)]) | add) | map(@json) | join(" ")' \
    "$T/bulk.jsonl" > "$T/bulk.redis"
rq_redis < "$T/bulk.redis" > /dev/null &
FEEDER=$!
pend=""
for ((i = 0; i < 3; i++)); do
	sleep "0.$((RANDOM % 6 + 2))"
	rq_kill_daemon accounting
	# entries read but not acknowledged when it died: read again
	pend="$pend $(rq_redis XPENDING rq:events accounting | head -n 1)"
	rq_start_daemon accounting
done
wait "$FEEDER"
rq_wait_for 60 rq_events_drained
bulk_ids=$(jq -r .call_id "$T/bulk.jsonl" | sort -u | sed "s/.*/'&'/" | paste -sd,)
got=$(rq_psql "SELECT count(*) FROM call_events WHERE call_id IN ($bulk_ids)")
got_calls=$(rq_psql "SELECT count(*) FILTER (WHERE status = 'completed'),
    count(*) FROM calls WHERE id IN ($bulk_ids)")
got_att=$(rq_psql "SELECT count(*) FROM attempts WHERE call_id IN ($bulk_ids)")
echo "kill -9 under load: $((NK * 6)) entries, pending at each kill:$pend;" \
    "$got events stored, calls $got_calls, attempts $got_att"
[ "$got" = $((NK * 6)) ] && [ "$got_calls" = "$NK|$NK" ] && [ "$got_att" = "$NK" ] ||
    rq_fail "kill -9 under load lost or doubled events"

# A batch read ahead while PostgreSQL holds the one before, then the
# connection lost: the batch read ahead is stored later, once.  A lock
# holds accounting's first store; the entries go in in one transaction,
# so that its first read takes a full batch and its read ahead the next
# (1,000 pending).
NR=250
: > "$T/ahead.jsonl"
for ((i = 0; i < NR; i++)); do
	sequence "$(newid)" >> "$T/ahead.jsonl"
done
{
	echo MULTI
	jq -r '["XADD", "rq:events", "*"] + (to_entries |
	    map([.key, (.value | tostring)]) | add) | map(@json) | join(" ")' \
	    "$T/ahead.jsonl"
	echo EXEC
} > "$T/ahead.redis"
psql -X -q -d ringq -c "BEGIN; LOCK TABLE call_events IN SHARE MODE;
    SELECT pg_sleep(60)" >/dev/null 2>&1 &
LOCKER=$!
locked() {
	[ "$(rq_psql "SELECT count(*) FROM pg_locks WHERE relation = 'call_events'::regclass AND mode = 'ShareLock' AND granted")" = 1 ]
}
rq_wait_for 10 locked
rq_redis < "$T/ahead.redis" > /dev/null
both_read() {	# one batch stored (waiting for the lock), one read ahead
	[ "$(rq_redis XPENDING rq:events accounting | head -n 1)" = 1000 ]
}
rq_wait_for 20 both_read
rq_psql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE application_name = 'ringq-accounting'" >/dev/null
rq_wait_for 10 grep -q "postgres: connection lost" "$T/accounting.log"
kill "$LOCKER" 2>/dev/null || true
rq_psql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$LOCKER" 2>/dev/null || true
rq_wait_for 60 rq_events_drained
grep -q "rq:events: 500 entries read ahead left pending" "$T/accounting.log" ||
    rq_fail "the batch read ahead was not the one left pending"
ahead_ids=$(jq -r .call_id "$T/ahead.jsonl" | sort -u | sed "s/.*/'&'/" | paste -sd,)
got=$(rq_psql "SELECT count(*) || ' ' || count(DISTINCT (call_id, attempt, status))
    FROM call_events WHERE call_id IN ($ahead_ids)")
got_calls=$(rq_psql "SELECT count(*) FILTER (WHERE status = 'completed')
    FROM calls WHERE id IN ($ahead_ids)")
[ "$got" = "$((NR * 6)) $((NR * 6))" ] && [ "$got_calls" = "$NR" ] ||
    rq_fail "read ahead, then PostgreSQL lost: events $got, completed calls $got_calls (want $((NR * 6)), $NR)"
echo "ok: a batch read ahead while PostgreSQL was lost: $got_calls calls, all $((NR * 6)) events stored once"

# --- a backlog longer than a step, a telserver's events on the socket -------
# After an outage: accounting drained the whole stream before it looked at
# SIGTERM again (or told systemd it was ready).  Now a step drains at most
# ACCT_DRAIN_STEP_MS: it stops within a second with entries left, and
# stores them all once when started again.
rq_stop_daemon accounting
NBL=12000
$PY - "$NBL" "$NOW" > "$T/backlog.resp" <<'EOF'
import sys
n, now = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
def xadd(**f):
    a = [b"XADD", b"rq:events", b"*"]
    for k, v in f.items():
        a += [k.encode(), str(v).encode()]
    out.write(b"*%d\r\n" % len(a))
    for x in a:
        out.write(b"$%d\r\n%s\r\n" % (len(x), x))
for i in range(n):
    c = "c_0ba0%020x" % i
    xadd(call_id=c, attempt=0, status="queued", ts_ms=now, tenant="demo",
         to="+15551234567")
    xadd(call_id=c, attempt=0, status="scheduled", ts_ms=now + 10)
    xadd(call_id=c, attempt=1, status="dispatched", ts_ms=now + 20,
         node="tel1")
    xadd(call_id=c, attempt=1, status="ringing", ts_ms=now + 30,
         node="tel1", sip_code=180, started_ms=now + 25)
    xadd(call_id=c, attempt=1, status="answered", ts_ms=now + 2000,
         node="tel1", sip_code=200, started_ms=now + 25,
         answered_ms=now + 2000)
    xadd(call_id=c, attempt=1, status="completed", ts_ms=now + 7000,
         node="tel1", duration_ms=5000, started_ms=now + 25,
         answered_ms=now + 2000)
EOF
rq_redis --pipe < "$T/backlog.resp" > /dev/null
outage_events backlog
rq_start_daemon accounting
sleep 1
stop_at=$(rq_now_ms)
rc=0
rq_kill accounting 30 || rc=$?
took=$(( $(rq_now_ms) - stop_at ))
left=$(( $(rq_redis XLEN rq:events) ))
echo "a backlog of $((NBL * 6)) entries: stopped in $took ms with $left entries in rq:events"
[ "$rc" = 0 ] && (( took < 1500 )) ||
    rq_fail "SIGTERM during a backlog: exit status $rc after $took ms"
(( left > 0 )) || rq_fail "the backlog was drained before the stop (no test)"
rq_start_daemon accounting
rq_wait_for 120 rq_events_drained
wait "$SENDER" || rq_fail "the socket's events: $(tail -n 1 "$T/send-backlog.out")"
got=$(rq_psql "SELECT count(*) || ' ' || count(DISTINCT (call_id, attempt, status))
    FROM call_events WHERE call_id LIKE 'c\_0ba0%'")
got_calls=$(rq_psql "SELECT count(*) FROM calls WHERE id LIKE 'c\_0ba0%'
    AND status = 'completed'")
[ "$got" = "$((NBL * 6)) $((NBL * 6))" ] && [ "$got_calls" = "$NBL" ] ||
    rq_fail "the backlog: events $got, completed calls $got_calls (want $((NBL * 6)), $NBL)"
echo "ok: the backlog stored once after the stop: $got_calls calls"

rq_stop_daemon accounting
[ ! -e "$T/run/ringq-accounting.pid" ] || rq_fail "PID file left behind"

# --- migration 3 on a version 2 database: terminal ranks move up one ---------
# The database taken back to version 2 (no retrying; ranks with completed=5),
# then the daemon upgrades it again.
rq_psql "SELECT id || ':' || status_rank FROM calls WHERE id <> '$Y' ORDER BY id" > "$T/ranks3"
rq_psql "BEGIN;
    DELETE FROM calls WHERE id = '$Y';
    ALTER DOMAIN ringq_status DROP CONSTRAINT ringq_status_check;
    ALTER DOMAIN ringq_status ADD CONSTRAINT ringq_status_check CHECK (VALUE IN
      ('queued', 'scheduled', 'dispatched', 'ringing', 'answered',
       'completed', 'failed', 'canceled', 'expired'));
    UPDATE calls SET status_rank = status_rank - 1 WHERE status_rank % 16 >= 6;
    DELETE FROM schema_migrations WHERE version = 3;
    COMMIT" >/dev/null
[ "$(rq_psql "SELECT count(*) FROM calls WHERE status_rank % 16 = 5")" -gt 0 ] ||
    rq_fail "no terminal call to upgrade"
rq_start_daemon accounting
upgraded() {	# applied again, logged twice in all
	[ "$(rq_psql "SELECT count(*) FROM schema_migrations WHERE version = 3")" = 1 ] &&
	    [ "$(log_count 'schema migration 3 applied')" = 2 ]
}
rq_wait_for 10 upgraded
rq_psql "SELECT id || ':' || status_rank FROM calls ORDER BY id" > "$T/ranks2to3"
diff "$T/ranks3" "$T/ranks2to3" >/dev/null ||
    rq_fail "ranks after migration 3: $(diff "$T/ranks3" "$T/ranks2to3")"
xadd_file "$T/y1.jsonl"
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT status, status_rank FROM calls WHERE id = '$Y'")" = "retrying|21" ] ||
    rq_fail "retrying refused after migration 3"

# --- deleting a call takes its events and attempts with it (migration 5) ----
gone=$(rq_psql "SELECT call_id FROM attempts ORDER BY call_id LIMIT 1")
[ -n "$gone" ] || rq_fail "no call with attempts to delete"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$gone'")" -gt 0 ] ||
    rq_fail "$gone has no events"
rq_psql "DELETE FROM calls WHERE id = '$gone'" >/dev/null
[ "$(rq_psql "SELECT (SELECT count(*) FROM call_events WHERE call_id = '$gone') +
    (SELECT count(*) FROM attempts WHERE call_id = '$gone')")" = 0 ] ||
    rq_fail "deleting call $gone left its events or attempts"
echo "deleting a call deleted its events and attempts"

# --- migration 7: updates of calls and attempts can skip the indexes --------
TERMINAL="('completed', 'failed', 'canceled', 'expired')"
migration7() {	# the index, the fill factors, and the index's open calls
	[ "$(rq_psql "SELECT indexdef FROM pg_indexes WHERE indexname = 'calls_open_idx'")" = \
	    "CREATE INDEX calls_open_idx ON public.calls USING btree (created_at) WHERE (ended_at IS NULL)" ] ||
	    rq_fail "calls_open_idx: $(rq_psql "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'calls_open%'")"
	[ "$(rq_psql "SELECT string_agg(relname || ':' || array_to_string(reloptions, ','), ' ' ORDER BY relname) FROM pg_class WHERE relname IN ('calls', 'attempts')")" = \
	    "attempts:fillfactor=50 calls:fillfactor=50" ] ||
	    rq_fail "fillfactor: $(rq_psql "SELECT relname, reloptions FROM pg_class WHERE relname IN ('calls', 'attempts')")"
	# The index's idea of an open call is the status's: not ended <=>
	# not terminal; read through the index, it finds exactly those.
	[ "$(rq_psql "SET enable_seqscan = off; SET enable_bitmapscan = off;
	    SELECT count(*) FROM calls WHERE ended_at IS NULL")" = \
	    "$(rq_psql "SELECT count(*) FROM calls WHERE status NOT IN $TERMINAL")" ] ||
	    rq_fail "open calls by the index differ from those by status"
	[ "$(rq_psql "SELECT count(*) FROM calls WHERE (ended_at IS NULL) <>
	    (status NOT IN $TERMINAL)")" = 0 ] ||
	    rq_fail "calls open by ended_at but not by status: $(rq_psql "SELECT id, status, ended_at FROM calls WHERE (ended_at IS NULL) <> (status NOT IN $TERMINAL)")"
}
[ "$(rq_psql "SELECT count(*) FROM calls")" -gt 10 ] || rq_fail "too few calls to compare"
[ "$(rq_psql "SELECT count(*) FROM calls WHERE status NOT IN $TERMINAL")" -gt 0 ] &&
    [ "$(rq_psql "SELECT count(*) FROM calls WHERE status IN $TERMINAL")" -gt 0 ] ||
    rq_fail "no open or no ended call to compare"
migration7
# Over a database of version 6, with its rows (the index as it was).
rq_stop_daemon accounting
rq_psql "DROP INDEX calls_open_idx;
    CREATE INDEX calls_open_idx ON calls (updated_at) WHERE status NOT IN $TERMINAL;
    ALTER TABLE calls RESET (fillfactor); ALTER TABLE attempts RESET (fillfactor);
    DELETE FROM schema_migrations WHERE version = 7" >/dev/null
rq_start_daemon accounting
upgraded7() {
	[ "$(rq_psql "SELECT count(*) FROM schema_migrations WHERE version = 7")" = 1 ] &&
	    [ "$(log_count 'schema migration 7 applied')" = 2 ]
}
rq_wait_for 10 upgraded7
migration7
echo "ok: migration 7, on a new database and over version 6: calls_open_idx by created_at for calls not ended, fillfactor 50"

# --- migration 8: a call failed before any attempt (attempt 0) ---------------
# (the scheduler's end of a call whose calling hours cannot be planned)
P0=$(newid)
printf '{"call_id": "%s", "attempt": 0, "status": "failed", "ts_ms": %s, "tenant": "acme", "reason": "policy", "detail": "its calling hours cannot be planned"}\n' \
    "$P0" "$NOW" > "$T/p0.jsonl"
send "$T/p0.jsonl"
p0_stored() { [ "$(rq_psql "SELECT status || ':' || reason || ':' || attempts FROM calls WHERE id = '$P0'")" = "failed:policy:0" ]; }
rq_wait_for 10 p0_stored ||
    rq_fail "a failure at attempt 0: $(rq_psql "SELECT * FROM calls WHERE id = '$P0'"; grep "$P0" "$T/accounting.log")"
# Over a database of version 7 (its check as it was)
rq_stop_daemon accounting
rq_psql "ALTER TABLE call_events DROP CONSTRAINT call_events_check;
    ALTER TABLE call_events ADD CONSTRAINT call_events_check CHECK (attempt > 0
    OR status IN ('queued', 'scheduled', 'canceled', 'expired')) NOT VALID;
    DELETE FROM call_events WHERE call_id = '$P0';
    DELETE FROM schema_migrations WHERE version = 8" >/dev/null
rq_start_daemon accounting
upgraded8() {
	[ "$(rq_psql "SELECT count(*) FROM schema_migrations WHERE version = 8")" = 1 ] &&
	    [ "$(log_count 'schema migration 8 applied')" = 2 ]
}
rq_wait_for 10 upgraded8 || rq_fail "migration 8 not applied over version 7"
rq_psql "INSERT INTO call_events (call_id, attempt, status, at) VALUES ('$P0', 0, 'failed', now())" >/dev/null ||
    rq_fail "migration 8 did not widen call_events_check"
echo "ok: migration 8, on a new database and over version 7: failed at attempt 0 stored"
# What it is for: a call's row, updated by each of its events, is updated
# in place (HOT, no index touched) but for the update that ends it.
rq_psql "SELECT pg_stat_reset_single_table_counters('calls'::regclass)" >/dev/null
: > "$T/hot.jsonl"
for i in 1 2 3 4 5; do
	H=$(newid)
	job "$H"
	sequence "$H" >> "$T/hot.jsonl"
done
xadd_file "$T/hot.jsonl"
rq_wait_for 10 rq_events_drained
calls_updated() {	# the backend's counters reach the shared view lazily
	[ "$(rq_psql "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'calls'")" -ge 25 ]
}
rq_wait_for 20 calls_updated
hot=$(rq_psql "SELECT n_tup_hot_upd || '/' || n_tup_upd FROM pg_stat_user_tables WHERE relname = 'calls'")
(( ${hot%/*} * 10 >= ${hot#*/} * 7 )) ||
    rq_fail "calls updated in place: $hot, want 4 in 5 (an index on a column each event changes?)"
echo "ok: calls rows updated in place (HOT): $hot"

# --- a database newer than the binary: not used -------------------------------
# (an older ringq-accounting put back after an upgrade would store events by
# rules the schema no longer has): refused with a reason, the events left
# in rq:events, stored once the database is one it knows.
rq_stop_daemon accounting
rq_psql "INSERT INTO schema_migrations (version) VALUES (999)" >/dev/null
rq_start_daemon accounting
N9=$(newid)
job "$N9"
sequence "$N9" > "$T/n9.jsonl"
xadd_file "$T/n9.jsonl"
rq_wait_for 10 grep -q "schema is version 999, newer than this ringq-accounting's" "$T/accounting.log" ||
    rq_fail "a newer database not refused: $(grep postgres "$T/accounting.log" | tail -n 2)"
sleep 1
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$N9'")" = 0 ] &&
    [ "$(rq_redis XLEN rq:events)" -ge 6 ] ||
    rq_fail "events stored in a database newer than the binary"
rq_psql "DELETE FROM schema_migrations WHERE version = 999" >/dev/null
rq_wait_for 10 rq_events_drained
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$N9'")" = 6 ] ||
    rq_fail "events after the newer version went: $(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$N9'")"
echo "ok: a database of a newer schema refused, its events stored once it was not"

# --- Redis full: entries still stored, callbacks queued, the stream trimmed ---
# (after a long PostgreSQL outage rq:events fills Redis to maxmemory):
# accounting, started again, finds its group (XGROUP CREATE refused) and
# queues the callbacks (the script's writes allowed): only reading and
# trimming the stream frees the memory.
rq_stop_daemon accounting
O=$(newid)
job "$O"
rq_redis HSET "rq:job:$O" callback_url http://127.0.0.1:9/hook >/dev/null
sequence "$O" | jq -c '. + {timeline: "1", callback: "1"}' > "$T/oom.jsonl"
xadd_file "$T/oom.jsonl"
used=$(rq_redis INFO memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
rq_redis CONFIG SET maxmemory-policy noeviction >/dev/null
rq_redis CONFIG SET maxmemory $((used / 2)) >/dev/null
full=$(rq_redis HSET rq:oom-probe a 1)
rq_start_daemon accounting
drained_oom=0
rq_wait_for 15 rq_events_drained && drained_oom=1
marks=$(cb_marks "$O")
rq_redis CONFIG SET maxmemory 0 >/dev/null
[[ $full == OOM* ]] || rq_fail "Redis not full for the test: $full"
(( drained_oom )) && [ "$marks" = "3,92" ] ||
    rq_fail "Redis full: rq:events $(rq_redis XLEN rq:events) entries, $(rq_redis XPENDING rq:events accounting | head -n 1) pending, callbacks marked '$marks'"
[ "$(rq_psql "SELECT status FROM calls WHERE id = '$O'")" = completed ] ||
    rq_fail "Redis full: the call not stored"
echo "ok: Redis full: the entries stored and trimmed, their callbacks queued"

rq_stop_daemon accounting
rq_check_sanitizers
echo "test_accounting: OK"

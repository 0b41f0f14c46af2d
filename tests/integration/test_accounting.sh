#!/usr/bin/env bash
# ringq-accounting against a real PostgreSQL and redis-server, with a Python
# DEALER standing in for the event senders (it resends unacknowledged events
# every second, like common/evout.c): migrations, exactly-once storage, the
# Redis mirror, bad input and a PostgreSQL outage.
. "$RQ_SOURCE/tests/integration/lib.sh"

PY=/usr/bin/python3
rq_need_pyzmq

# send.py ENDPOINT FILE [REPEAT] [TIMEOUT] [garbage]: sends each event of
# FILE (one JSON object a line, msg.def field names) REPEAT times, resends
# the unacknowledged ones every second, exits 0 once all are acknowledged,
# 1 at TIMEOUT.  Prints "acked N pending M" to stdout as it goes.
cat > "$T/send.py" <<'EOF'
import json, sys, time
import msgpack, zmq

FIELDS = {"call_id": 1, "attempt": 2, "tenant": 3, "to": 4, "status": 7,
          "reason": 8, "sip_code": 9, "ts_ms": 10, "node": 11,
          "duration_ms": 14, "detail": 15, "started_ms": 19,
          "answered_ms": 20}
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
    s.send_multipart([b"two", b"frames"])
pending = {key(e): e for e in events}
for _ in range(repeat):
    for e in events:
        s.send(pack(e))
acked = 0
last = time.time()
deadline = last + timeout
while pending and time.time() < deadline:
    if s.poll(100):
        v = msgpack.unpackb(s.recv(), strict_map_key=False)
        assert v[0] == 1 and v[1] == 6, v
        if pending.pop((v[2][1], v[2][2], v[2][7]), None) is not None:
            acked += 1
        print("acked %d pending %d" % (acked, len(pending)), flush=True)
    if time.time() - last >= 1:
        last = time.time()
        for e in pending.values():
            s.send(pack(e))
print("acked %d pending %d" % (acked, len(pending)), flush=True)
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
	rq_redis HGETALL "rq:job:$1" | paste - - | sort
	rq_redis HGETALL "rq:timeline:$1" | paste - - | sort
}
log_count() {	# log_count PATTERN: lines of accounting.log matching
	grep -c -- "$1" "$T/accounting.log" || true
}

rq_start_redis
rq_start_pg
rq_write_config
EP=tcp://127.0.0.1:$RQ_EVENTS_PORT

"$RQ_BUILD/accounting/ringq-accounting" -f "$RQ_CONF" -n | grep -q "configuration OK" ||
    rq_fail "-n does not accept the configuration"

# --- migrations: applied once, even across restarts --------------------------
rq_start_daemon accounting
rq_wait_for 10 grep -q "postgres: connected" "$T/accounting.log"
rq_stop_daemon accounting
rq_start_daemon accounting
rq_wait_for 10 grep -q "postgres: connected" "$T/accounting.log"
[ "$(rq_psql "SELECT count(*), count(DISTINCT version), min(version), max(version) FROM schema_migrations")" = "2|2|1|2" ] ||
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
[ "$(rq_psql "SELECT tenant, target, status, attempts, talk_ms, status_rank,
    answered_at IS NOT NULL, ended_at - created_at FROM calls WHERE id = '$A'")" = \
    "demo|+15551234567|completed|1|5000|21|t|00:00:07" ] ||
    rq_fail "calls row: $(rq_psql "SELECT * FROM calls WHERE id = '$A'")"
[ "$(rq_psql "SELECT attempt, node, status, talk_ms, answered_at - started_at
    FROM attempts WHERE call_id = '$A'")" = "1|tel1|completed|5000|00:00:01.975" ] ||
    rq_fail "attempts row: $(rq_psql "SELECT * FROM attempts WHERE call_id = '$A'")"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$A'")" = 6 ] ||
    rq_fail "call_events: $(rq_psql "SELECT * FROM call_events WHERE call_id = '$A'")"
[ "$(rq_redis HGET "rq:job:$A" status)" = completed ] &&
    [ "$(rq_redis HGET "rq:job:$A" status_rank)" = 21 ] &&
    [ "$(rq_redis HGET "rq:job:$A" updated_ms)" = $((NOW + 7000)) ] ||
    rq_fail "redis job: $(rq_redis HGETALL "rq:job:$A")"
[ "$(rq_redis HLEN "rq:timeline:$A")" = 6 ] ||
    rq_fail "timeline: $(rq_redis HGETALL "rq:timeline:$A")"
rq_redis HGET "rq:timeline:$A" 1:completed | jq -e --argjson ts $((NOW + 7000)) \
    '.status == "completed" and .attempt == 1 and .ts_ms == $ts and
     .duration_ms == 5000 and .node == "tel1" and (has("reason") | not) and
     (.at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$"))' >/dev/null ||
    rq_fail "timeline entry: $(rq_redis HGET "rq:timeline:$A" 1:completed)"

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
    "SELECT count(*) FROM call_events WHERE call_id = '$A3'")" = "1|21 6" ] ||
    rq_fail "tripled events stored wrong"

# --- out of order: a late ringing does not move the status back -------------
B=$(newid)
job "$B"
sequence "$B" | grep -v ringing > "$T/b.jsonl"
send "$T/b.jsonl"
sequence "$B" | grep ringing > "$T/b2.jsonl"
send "$T/b2.jsonl"
[ "$(rq_psql "SELECT status, status_rank FROM calls WHERE id = '$B'")" = "completed|21" ] ||
    rq_fail "late ringing moved the call: $(rq_psql "SELECT * FROM calls WHERE id = '$B'")"
[ "$(rq_psql "SELECT status FROM attempts WHERE call_id = '$B'")" = completed ] ||
    rq_fail "late ringing moved the attempt"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$B'")" = 6 ] ||
    rq_fail "late ringing not recorded"
[ "$(rq_redis HGET "rq:job:$B" status)" = completed ] ||
    rq_fail "late ringing moved the redis status"
rq_redis HEXISTS "rq:timeline:$B" 1:ringing | grep -q 1 ||
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
grep -q "extra frames dropped" "$T/accounting.log" || rq_fail "multi-frame garbage not logged"
[ "$(rq_psql "SELECT status FROM calls WHERE id = '$H'")" = completed ] ||
    rq_fail "events after garbage not stored"

# --- PostgreSQL down: no acks; stored once it is back ------------------------
rq_stop_pg
C=$(newid)
job "$C"
sequence "$C" > "$T/c.jsonl"
$PY "$T/send.py" "$EP" "$T/c.jsonl" 1 60 > "$T/send-c.out" &
SENDER=$!
sleep 3
rq_alive "$SENDER" || rq_fail "events acknowledged while PostgreSQL was down: $(cat "$T/send-c.out")"
grep -q "acked [1-9]" "$T/send-c.out" && rq_fail "an event was acknowledged while PostgreSQL was down"
rq_restart_pg
wait "$SENDER" || rq_fail "events not acknowledged after PostgreSQL came back: $(tail -n 1 "$T/send-c.out")"
[ "$(rq_psql "SELECT status, talk_ms FROM calls WHERE id = '$C'") $(rq_psql \
    "SELECT count(*) FROM call_events WHERE call_id = '$C'")" = "completed|5000 6" ] ||
    rq_fail "events sent during the outage not stored"
[ "$(rq_redis HGET "rq:job:$C" status)" = completed ] || rq_fail "outage events not mirrored"
n=$(log_count 'postgres: .*not acknowledging')
[ "$n" = 1 ] || rq_fail "outage logged $n times, wanted once"
grep -q "postgres: connected again" "$T/accounting.log" || rq_fail "reconnection not logged"

# --- Redis forgot the script (restart, SCRIPT FLUSH): mirrored all the same --
rq_redis SCRIPT FLUSH >/dev/null
S=$(newid)
job "$S"
sequence "$S" > "$T/s.jsonl"
send "$T/s.jsonl" 1 10
[ "$(rq_redis HGET "rq:job:$S" status)" = completed ] &&
    [ "$(rq_redis HLEN "rq:timeline:$S")" = 6 ] ||
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

rq_stop_daemon accounting
[ ! -e "$T/run/ringq-accounting.pid" ] || rq_fail "PID file left behind"
echo "test_accounting: OK"

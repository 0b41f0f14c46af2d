#!/usr/bin/env bash
# End to end: a call through all five daemons to an auto-answering baresip
# phone that records what it hears, then a second call to SIPp that checks
# the X-Ringq-Attempt header.  Real Redis and PostgreSQL on free ports.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

SAY="Hello from ringq. This is the end to end test speaking, one two three."

rq_start_all
rq_start_baresip bob

# post_call TO: prints the new call's id.
post_call() {
	local body resp
	body=$(jq -cn --arg to "$1" --arg say "$SAY" '{to: $to, say: $say}')
	resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
	jq -er '.id' <<<"$resp" || rq_fail "no id in $resp"
}

# --- 1. baresip answers and hears speech --------------------------------------
id=$(post_call "$BARESIP_URI")
echo "call $id to $BARESIP_URI"
call=$(rq_wait_call "$id" 60)
echo "$call" | jq .

[ "$(jq -r .status <<<"$call")" = completed ] ||
    rq_fail "call $id ended $(jq -c '[.status, .reason, .sip_code]' <<<"$call")"
for st in ringing answered completed; do
	jq -e --arg s "$st" 'any(.events[]; .status == $s)' <<<"$call" >/dev/null ||
	    rq_fail "call $id: no $st event in its timeline"
done
jq -e '.talk_ms > 0' <<<"$call" >/dev/null || rq_fail "call $id: talk_ms not > 0"

# baresip's sndfile module writes what it decoded as dump-<peer>-dec.wav
# when the call ends.
rec_ready() {
	local f
	f=$(ls "$BARESIP_REC"/*-dec.wav 2>/dev/null | head -n 1)
	[ -n "$f" ] || return 1
	WAV=$f
	sox "$WAV" -n stat 2> "$T/wav.stat" || return 1
	awk '/^Length \(seconds\)/ { exit !($3 > 1.0) }' "$T/wav.stat"
}
rq_wait_for 15 rec_ready
cat "$T/wav.stat"
rms=$(awk '/^RMS +amplitude/ { print $3 }' "$T/wav.stat")
awk -v r="$rms" 'BEGIN { exit !(r > 0.01) }' ||
    rq_fail "baresip heard silence (RMS amplitude $rms)"

# Accounting: one calls row, one call_events row per status.
pg_done() {
	[ "$(rq_psql "SELECT status FROM calls WHERE id = '$id'")" = completed ]
}
rq_wait_for 10 pg_done
[ "$(rq_psql "SELECT count(*) FROM calls WHERE id = '$id'")" = 1 ] ||
    rq_fail "call $id: not exactly one calls row"
events=$(rq_psql "SELECT status FROM call_events WHERE call_id = '$id' ORDER BY status")
echo "call_events: $(echo $events)"
for st in queued scheduled dispatched ringing answered completed; do
	grep -qx "$st" <<<"$events" || rq_fail "call $id: no call_events row for $st"
done
[ "$(rq_psql "SELECT count(*) FROM attempts WHERE call_id = '$id'")" = 1 ] ||
    rq_fail "call $id: not exactly one attempts row"
[ "$(rq_psql "SELECT node FROM call_events WHERE call_id = '$id' AND status = 'dispatched'")" = tel1 ] ||
    rq_fail "call $id: dispatched event without node tel1"
# The claim and the finish (common/lifecycle.c) left nothing behind.
[ "$(rq_redis HGET "rq:job:$id" dialed)" = 1 ] || rq_fail "call $id: dialed"
[ "$(rq_redis SCARD rq:oncall:tel1)" = 0 ] || rq_fail "rq:oncall:tel1 not empty"
[ "$(rq_redis ZCARD rq:inflight)" = 0 ] || rq_fail "rq:inflight not empty"
[ "$(rq_redis EXISTS rq:node:tel1)" = 1 ] || rq_fail "no liveness key for tel1"

# --- 2. SIPp answers and checks X-Ringq-Attempt --------------------------------
rq_start_sipp_uas uas_answer.xml
id2=$(post_call "$SIPP_URI")
echo "call $id2 to $SIPP_URI"
call=$(rq_wait_call "$id2" 60)
[ "$(jq -r .status <<<"$call")" = completed ] ||
    rq_fail "call $id2 ended $(jq -c '[.status, .reason, .sip_code]' <<<"$call")"
rq_wait_sipp 30 || rq_fail "SIPp scenario failed (exit $?): see sipp0.errors"
grep -q "X-Ringq-Attempt $id2 1\$" "$SIPP_LOG" ||
    rq_fail "INVITE lacked X-Ringq-Attempt: $id2/1 ($(cat "$SIPP_LOG"))"

for d in telserver dispatcher scheduler gateway accounting; do
	rq_stop_daemon "$d"
done
echo "PASS"

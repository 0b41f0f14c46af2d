#!/usr/bin/env bash
# Calling hours hold a call that waits past its window, through the whole
# system (gateway, scheduler, dispatcher, telserver, accounting; SIPp as
# the callee).  A call accepted inside its tenant's hours keeps them (the
# job's hours and hours_until_ms).  Taken after hours_until_ms (it waited
# in rq:ready, or its retry came due, past the close), it is not sent to a
# telserver: the scheduler puts it back in rq:delayed at the hours' next
# opening, with its not_before and policy, and nobody is rung.  One whose
# window is open again is dialled at once.  Rather than wait for a real
# close, the test moves the close before the call's not_before: it writes
# the job as it stands once its window has passed.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need jq curl sipp

KEY="rq_hours_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
# Windows in UTC (a SIP callee's zone when the request names none): one
# open from an hour ago to two hours on, one that opens in three hours.
now=$(date -u +%s)
OPEN_H="$(date -u -d "@$((now - 3600))" +%H:%M)-$(date -u -d "@$((now + 7200))" +%H:%M)"
open_close=$(( (now + 7200) / 60 * 60 ))
next_open=$(( (now + 10800) / 60 * 60 ))
CLOSED_H="$(date -u -d "@$next_open" +%H:%M)-$(date -u -d "@$((next_open + 3600))" +%H:%M)"

rq_start_redis
rq_start_pg
rq_write_config <<EOF2
[tenant hours]
key_sha256 = $(rq_sha256 "$KEY")
allow_sip = yes
calling_hours = $OPEN_H
EOF2
for d in accounting gateway scheduler dispatcher telserver; do
	rq_start_daemon "$d"
done
rq_start_sipp_uas uas_answer.xml -m 1

# post: a call to SIPp due in 4 s; prints its id.
post() {
	local nb body resp
	nb=$(date -u -d "@$(( $(date +%s) + 4 ))" +%Y-%m-%dT%H:%M:%SZ)
	body=$(jq -cn --arg to "$SIPP_URI" --arg nb "$nb" \
	    '{to: $to, say: "Inside the hours.", not_before: $nb}')
	resp=$(RQ_KEY=$KEY rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST: $(rq_last_code) $resp"
	[ "$(jq -r .policy.decision <<<"$resp")" = accept ] || rq_fail "not accepted: $resp"
	jq -er .id <<<"$resp"
}
job() { rq_redis HGET "rq:job:$1" "$2"; }

a=$(post)
b=$(post)
c=$(post)
# the job keeps its hours and the close of the window it is planned in
[ "$(job "$a" hours)" = "c=$OPEN_H UTC" ] || rq_fail "$a: hours '$(job "$a" hours)'"
[ "$(job "$a" hours_until_ms)" = "${open_close}000" ] ||
    rq_fail "$a: hours_until_ms $(job "$a" hours_until_ms), want ${open_close}000"
# Their window closes before they are due: a's hours are now closed (its
# next opening in three hours); b's open again at once.
past=$(( $(date +%s%3N) - 1 ))
rq_redis HSET "rq:job:$a" hours "c=$CLOSED_H UTC" hours_until_ms "$past" >/dev/null
rq_redis HSET "rq:job:$b" hours_until_ms "$past" >/dev/null
# c's hours cannot be planned again (a zone this host does not know):
# it fails before any attempt, and accounting stores that too
rq_redis HSET "rq:job:$c" hours "c=$OPEN_H Mars/Olympus" \
    hours_until_ms "$past" >/dev/null

# a: back in rq:delayed at the next opening, never dispatched
deferred() { [ "$(job "$a" not_before_ms)" = "${next_open}000" ]; }
rq_wait_for 15 deferred || rq_fail "$a: not deferred: $(rq_redis HGETALL "rq:job:$a" | tr '\n' ' ')"
[ "$(rq_redis ZSCORE rq:delayed "$a")" = "${next_open}000" ] ||
    rq_fail "$a: rq:delayed score $(rq_redis ZSCORE rq:delayed "$a")"
[ "$(job "$a" hours_until_ms)" = "$(( next_open + 3600 ))000" ] ||
    rq_fail "$a: hours_until_ms $(job "$a" hours_until_ms)"
[ "$(job "$a" policy)" = defer:calling_hours ] || rq_fail "$a: policy $(job "$a" policy)"
[ "$(job "$a" attempts)" = "" ] || [ "$(job "$a" attempts)" = 0 ] ||
    rq_fail "$a: attempts $(job "$a" attempts)"
[ "$(rq_redis ZCARD rq:hours)" = 0 ] || rq_fail "rq:hours not empty"
view=$(RQ_KEY=$KEY rq_api GET "/v1/calls/$a")
[ "$(jq -r '.status + " " + .policy.decision + " " + (.policy.reasons | join(","))' <<<"$view")" = \
    "scheduled defer calling_hours" ] || rq_fail "GET $a: $view"
[ "$(date -d "$(jq -r .not_before <<<"$view")" +%s)" = "$next_open" ] ||
    rq_fail "GET $a: not_before $(jq -r .not_before <<<"$view")"
rq_logged "$T/dispatcher.log" "call $a: .*calling hours closed" ||
    rq_fail "the dispatcher did not say why it kept $a"
rq_logged "$T/scheduler.log" "call $a: its hours closed while it waited: deferred to" ||
    rq_fail "the scheduler did not say where $a went"

# c: failed (policy) at attempt 0, in Redis and in PostgreSQL, undialled
call=$(RQ_KEY=$KEY rq_wait_call "$c" 30)
[ "$(jq -r '.status + " " + .reason' <<<"$call")" = "failed policy" ] ||
    rq_fail "$c: $(jq -c . <<<"$call")"
stored() { [ "$(rq_psql "SELECT status || ' ' || reason FROM calls WHERE id = '$c'")" = "failed policy" ]; }
rq_wait_for 15 stored ||
    rq_fail "$c: in PostgreSQL: $(rq_psql "SELECT * FROM calls WHERE id = '$c'")"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$c' AND attempt = 0 AND status = 'failed'")" = 1 ] ||
    rq_fail "$c: its failed event is not stored once"

# b: its window open again: dialled once, and answered
call=$(RQ_KEY=$KEY rq_wait_call "$b" 30)
[ "$(jq -r .status <<<"$call")" = completed ] || rq_fail "$b: $(jq -c . <<<"$call")"
[ "$(job "$b" hours_until_ms)" = "${open_close}000" ] ||
    rq_fail "$b: hours_until_ms $(job "$b" hours_until_ms), want ${open_close}000"
rq_wait_sipp 30 || rq_fail "SIPp scenario failed (exit $?)"
grep -q "X-Ringq-Attempt $b 1\$" "$SIPP_LOG" || rq_fail "$b not dialled: $(cat "$SIPP_LOG")"
! grep -q "X-Ringq-Attempt $a " "$SIPP_LOG" || rq_fail "$a rung outside its hours"
! grep -q "X-Ringq-Attempt $c " "$SIPP_LOG" || rq_fail "$c rung"
! grep -q "call $a" "$T/telserver.log" || rq_fail "a telserver got $a"
echo "ok: $a deferred to $(jq -r .not_before <<<"$view"), $b dialled"

for d in telserver dispatcher scheduler gateway accounting; do
	rq_stop_daemon "$d"
done
echo "PASS"

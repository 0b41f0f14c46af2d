#!/usr/bin/env bash
# End to end, the ways a call fails: a busy phone (SIPp answering 486), a
# target where nothing listens, a busy phone retried until the busy
# attempts are used up, a request with a wrong API key and one whose text
# the voice cannot speak.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

# A tenant with a single attempt, so each failure is final at once, and one
# whose busy calls are retried quickly.
ONCE_KEY="rq_once_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
RETRY_KEY="rq_retry_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
rq_start_redis
rq_start_pg
rq_write_config <<EOF2
[tenant once]
key_sha256 = $(rq_sha256 "$ONCE_KEY")
allow_sip = yes
max_attempts = 1
retention_days = 2

[tenant retry]
key_sha256 = $(rq_sha256 "$RETRY_KEY")
allow_sip = yes
max_attempts = 5
retry_busy_attempts = 3
retry_busy_delay_s = 1
EOF2
for d in accounting gateway scheduler dispatcher telserver; do
	rq_start_daemon "$d"
done

# post_call TO: prints the new call's id (tenant "once").
post_call() {
	local body resp
	body=$(jq -cn --arg to "$1" '{to: $to, say: "You should not hear this."}')
	resp=$(RQ_KEY=$ONCE_KEY rq_api POST /v1/calls \
	    -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
	jq -er '.id' <<<"$resp" || rq_fail "no id in $resp"
}

get_call() {
	RQ_KEY=$ONCE_KEY rq_wait_call "$1" "$2"
}

# --- busy -----------------------------------------------------------------------
rq_start_sipp_uas uas_busy.xml
id=$(post_call "$SIPP_URI")
echo "busy call $id to $SIPP_URI"
call=$(get_call "$id" 30)
echo "$call" | jq -c '{status, reason, sip_code}'
jq -e '.status == "failed" and .reason == "busy" and .sip_code == 486' \
    <<<"$call" >/dev/null || rq_fail "busy call $id: $(jq -c . <<<"$call")"
# Ended: in Redis for its tenant's 2 days (retention_days; rq:ended, no
# TTL), its job with its timeline (the fields "<attempt>:<status>") in it;
# nothing writes the legacy rq:timeline: key.
left=$(( $(rq_redis ZSCORE rq:ended "$id") - $(rq_now_ms) ))
[ "$(rq_redis PTTL "rq:job:$id")" = -1 ] && (( left > 2 * 86400000 - 60000 && left <= 2 * 86400000 )) ||
    rq_fail "rq:job:$id: PTTL $(rq_redis PTTL "rq:job:$id"), in rq:ended for $left ms, not the tenant's 2 days"
rq_redis HGET "rq:job:$id" 1:failed | jq -e '.status == "failed" and .attempt == 1' >/dev/null ||
    rq_fail "no 1:failed timeline entry in rq:job:$id: $(rq_redis HGETALL "rq:job:$id")"
[ "$(rq_redis EXISTS "rq:timeline:$id")" = 0 ] ||
    rq_fail "rq:timeline:$id written: $(rq_redis HGETALL "rq:timeline:$id")"
rq_wait_sipp 30 || rq_fail "SIPp busy scenario failed (exit $?)"
grep -q "X-Ringq-Attempt $id 1\$" "$SIPP_LOG" ||
    rq_fail "INVITE lacked X-Ringq-Attempt: $id/1 ($(cat "$SIPP_LOG"))"

# --- 503 with Retry-After, 302 to another user: the attempt ends there -------
# The SIP stack would send the INVITE again after a Retry-After (the
# customer rung twice in one attempt) and follow a redirect (to a target
# the policy never saw); the telserver lets it do neither: the answer is
# the attempt's outcome, the INVITE sent once.
for kind in retry_after redirect; do
	rq_start_sipp_uas "uas_$kind.xml" -m 2 -timeout 12s
	id=$(post_call "$SIPP_URI")
	call=$(get_call "$id" 30)
	echo "$kind: call $id: $(jq -c '{status, reason, sip_code}' <<<"$call")"
	# (SIPp waits 12 s for a second INVITE, then exits: not an error)
	rq_wait_sipp 20 || true
	# INVITEs SIPp received (unexpected ones too), one per CSeq
	msgs=${SIPP_LOG%.actions}.messages
	sent=$(awk '/^INVITE sip:/ { inv = 1 } inv && /^CSeq:/ { print $2; inv = 0 }' \
	    "$msgs" | sort -u | wc -l)
	moved=$(grep -c '^INVITE sip:redirected@' "$msgs" || true)
	echo "$kind: INVITEs of attempt 1: $sent; to the redirect's user: $moved"
	[ "$sent" = 1 ] && [ "$moved" = 0 ] ||
	    rq_fail "$kind: attempt 1 of $id sent $sent times, $moved to the redirect: $(grep -E '^(INVITE|SIP/2.0)' "$msgs")"
	want=503
	[ "$kind" = redirect ] && want=302
	jq -e --argjson w "$want" '.status == "failed" and .sip_code == $w' \
	    <<<"$call" >/dev/null || rq_fail "$kind: call $id: $(jq -c . <<<"$call")"
done

# --- nothing listens ------------------------------------------------------------
dead=$(rq_free_port)
id=$(post_call "sip:nobody@127.0.0.1:$dead")
echo "unreachable call $id to port $dead"
start=$SECONDS
call=$(get_call "$id" 45)
echo "$call" | jq -c '{status, reason, sip_code}'
jq -e '.status == "failed" and .reason == "unreachable"' <<<"$call" >/dev/null ||
    rq_fail "unreachable call $id: $(jq -c . <<<"$call")"
echo "failed after $((SECONDS - start)) s"

# --- busy, retried ----------------------------------------------------------------
# Three attempts (1 s, then ~2 s apart, with jitter), each dialled once with
# its own number, then failed with reason attempts_exhausted.
rq_start_sipp_uas uas_busy.xml -m 3
body=$(jq -cn --arg to "$SIPP_URI" '{to: $to, say: "Still busy?"}')
resp=$(RQ_KEY=$RETRY_KEY rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
id=$(jq -er .id <<<"$resp")
echo "busy call $id, retried"
call=$(RQ_KEY=$RETRY_KEY rq_wait_call "$id" 45)
echo "$call" | jq -c '{status, reason, sip_code, attempts, events: [.events[] | "\(.attempt):\(.status)"]}'
jq -e '.status == "failed" and .reason == "attempts_exhausted" and .sip_code == 486' \
    <<<"$call" >/dev/null || rq_fail "retried call $id: $(jq -c . <<<"$call")"
got=$(jq -r '[.events[] | select(.status == "retrying" or .status == "failed" or .status == "dispatched")
    | "\(.attempt):\(.status)"] | join(" ")' <<<"$call")
[ "$got" = "1:dispatched 1:retrying 2:dispatched 2:retrying 3:dispatched 3:failed" ] ||
    rq_fail "retried call $id: events $got"
rq_wait_sipp 30 || rq_fail "SIPp busy scenario failed (exit $?)"
for a in 1 2 3; do
	[ "$(grep -c "X-Ringq-Attempt $id $a\$" "$SIPP_LOG")" = 1 ] ||
	    rq_fail "attempt $a of $id not dialled exactly once ($(cat "$SIPP_LOG"))"
done
pg_attempts() {
	[ "$(rq_psql "SELECT count(*) FROM attempts WHERE call_id = '$id'")" = 3 ] &&
	    [ "$(rq_psql "SELECT status FROM calls WHERE id = '$id'")" = failed ]
}
rq_wait_for 10 pg_attempts

# --- wrong key, a text without words -----------------------------------------
jobs_before=$(rq_redis --scan --pattern 'rq:job:*' | wc -l)
body=$(jq -cn --arg to "$SIPP_URI" '{to: $to, say: "no"}')
RQ_KEY=rq_wrong_key rq_api POST /v1/calls -H 'Content-Type: application/json' \
    -d "$body" >/dev/null
[ "$HTTP_CODE" = 401 ] || rq_fail "wrong key: HTTP $HTTP_CODE, want 401"
RQ_KEY='' rq_api POST /v1/calls -H 'Content-Type: application/json' \
    -d "$body" >/dev/null
[ "$HTTP_CODE" = 401 ] || rq_fail "empty key: HTTP $HTTP_CODE, want 401"
# a text the voice cannot speak is refused, not rung for in silence
resp=$(RQ_KEY=$ONCE_KEY rq_api POST /v1/calls -H 'Content-Type: application/json' \
    -d "$(jq -cn --arg to "$SIPP_URI" '{to: $to, say: "... \u2026 \ud83d\ude00"}')")
[ "$(rq_last_code)" = 422 ] && [ "$(jq -r '.error.code + " " + .error.field' <<<"$resp")" = \
    "unspeakable say" ] || rq_fail "unspeakable text: HTTP $(rq_last_code) $resp"
jobs_after=$(rq_redis --scan --pattern 'rq:job:*' | wc -l)
[ "$jobs_before" = "$jobs_after" ] ||
    rq_fail "a refused request created a job ($jobs_before -> $jobs_after)"
[ "$(rq_redis zcard rq:delayed)" = 0 ] && [ "$(rq_redis zcard rq:ready)" = 0 ] ||
    rq_fail "a refused request queued a job"

for d in telserver dispatcher scheduler gateway accounting; do
	rq_stop_daemon "$d"
done
echo "PASS"

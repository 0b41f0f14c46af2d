#!/usr/bin/env bash
# A VoiceXML application on a real call: the order-status application of
# vxml/order.vxml, served by the third party's server (vxml_server.py),
# answered by baresip "bob" who keys 1 (menu) and 1234 (order number) as
# RFC 4733 events; the application submits the number, then bridges bob to
# a second baresip, "alice" (the agent), who hangs up after a while; the
# transfer's outcome is submitted too.  Checks what the server, both phones
# and the call's record saw.  Then a recording (vxml/record.vxml): submitted
# to the server as a file, kept for the call's tenant at the URL its result
# names, refused to another tenant.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

OTHER_KEY=rq_other_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
TEL_M=$(rq_free_port)
rq_start_redis
rq_start_pg
rq_write_config <<EOF
[tenant other]
key_sha256 = $(rq_sha256 "$OTHER_KEY")
allow_sip = yes

[telserver]
metrics_listen = 127.0.0.1:$TEL_M
EOF
for d in accounting gateway scheduler dispatcher telserver; do
	rq_start_daemon "$d"
done
rq_start_baresip alice
ALICE_URI=$BARESIP_URI ALICE_CTRL=$BARESIP_CTRL_PORT ALICE_REC=$BARESIP_REC
rq_start_baresip bob
BOB_URI=$BARESIP_URI BOB_CTRL=$BARESIP_CTRL_PORT

# The third party's server.
mkdir -p "$T/www"
sed "s#@AGENT@#$ALICE_URI#" "$RQ_SOURCE/tests/integration/vxml/order.vxml" \
    > "$T/www/order.vxml"
cp "$RQ_SOURCE/tests/integration/vxml/record.vxml" \
    "$RQ_SOURCE/tests/integration/vxml/linger.vxml" "$T/www/"
rq_start_www "$T/www"

# keys PORT DIGITS: bob (or alice) keys DIGITS, one event each.
keys() {
	local i
	for ((i = 0; i < ${#2}; i++)); do
		BARESIP_CTRL_PORT=$1 rq_baresip_cmd \
		    "{\"command\":\"sndcode\",\"params\":\"${2:i:1}\"}" >/dev/null
		sleep 0.3
	done
}

# submitted PATTERN: the server's log has a request matching the jq filter.
submitted() {
	[ -f "$T/www.log" ] && jq -e -s "any(.[]; $1)" "$T/www.log" >/dev/null
}

${RQ_VXML_JOB:-false} || true
body=$(jq -cn --arg to "$BOB_URI" --arg app "$WWW/order.vxml" \
    '{to: $to, app_url: $app}')
resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
id=$(jq -er .id <<<"$resp")
echo "call $id: $WWW/order.vxml to $BOB_URI"

answered() {
	[ "$(rq_api GET "/v1/calls/$id" | jq -r .status)" = answered ]
}
rq_wait_for 30 answered
rq_wait_for 10 submitted '.path == "/order.vxml"'
sleep 2		# into the menu's prompt: the key barges in
keys "$BOB_CTRL" 1
sleep 1
keys "$BOB_CTRL" 1234
rq_wait_for 20 submitted '.path == "/submit" and .fields.order == "1234"'
echo "the server got order 1234"

# The transfer: alice answers and is bridged to bob; she hangs up later.
alice_in_call() {
	grep -q "Call established\|call established" "$T/baresip-alice.log"
}
rq_wait_for 30 alice_in_call
sleep 3
BARESIP_CTRL_PORT=$ALICE_CTRL rq_baresip_cmd '{"command":"hangup"}' >/dev/null
rq_wait_for 20 submitted '.path == "/submit" and .fields.xfer == "far_end_disconnect"'
echo "the server got the transfer's outcome far_end_disconnect"

call=$(rq_wait_call "$id" 30)
echo "$call" | jq .
[ "$(jq -r .status <<<"$call")" = completed ] ||
    rq_fail "call $id ended $(jq -c '[.status, .reason, .detail]' <<<"$call")"
# What the caller entered is the call's result, in the API and in the
# status callback's source, the database.
jq -e '.result.end == "exit" and .result.fields.order == "1234" and
    .result.fields.xfer == "far_end_disconnect"' <<<"$call" >/dev/null ||
    rq_fail "call $id: result $(jq -c .result <<<"$call")"
pg_result() {
	[ "$(rq_psql "SELECT result->'fields'->>'order' FROM calls WHERE id = '$id'")" = 1234 ]
}
rq_wait_for 10 pg_result

# alice heard bob through the bridge: bob's phone sends a 440 Hz tone.
rec_ready() {
	local f
	f=$(ls "$ALICE_REC"/*-dec.wav 2>/dev/null | head -n 1)
	[ -n "$f" ] || return 1
	sox "$f" -n stat 2> "$T/alice.stat" || return 1
	awk '/^Length \(seconds\)/ { exit !($3 > 1.0) }' "$T/alice.stat"
}
rq_wait_for 15 rec_ready
cat "$T/alice.stat"
awk '/^RMS +amplitude/ { exit !($3 > 0.01) }' "$T/alice.stat" ||
    rq_fail "alice heard silence through the bridge"
# --- a recording --------------------------------------------------------------
body=$(jq -cn --arg to "$BOB_URI" --arg app "$WWW/record.vxml" \
    '{to: $to, app_url: $app}')
resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
rid=$(jq -er .id <<<"$resp")
rq_wait_for 40 submitted '.path == "/submit" and .fields.msg.bytes > 0'
sub=$(jq -s -c '[.[] | select(.path == "/submit" and .fields.msg)][0].fields.msg' "$T/www.log")
echo "the server got the recording as $sub"
jq -e '.type == "audio/x-wav" and .bytes > 16000' <<<"$sub" >/dev/null ||
    rq_fail "recording submitted as $sub"
call=$(rq_wait_call "$rid" 30)
url=$(jq -r '.result.recordings.msg // empty' <<<"$call")
[ -n "$url" ] || rq_fail "call $rid: no recording in $(jq -c .result <<<"$call")"
echo "the call's result names the recording $url"
curl -sS -o "$T/rec.wav" -w '%{http_code} %{content_type}' \
    -H "Authorization: Bearer $RQ_KEY" "$RQ_API$url" > "$T/rec.code"
[ "$(cat "$T/rec.code")" = "200 audio/x-wav" ] ||
    rq_fail "GET $url: $(cat "$T/rec.code")"
sox "$T/rec.wav" -n stat 2> "$T/rec.stat" || rq_fail "GET $url: not a WAV"
cat "$T/rec.stat"
# maxtime 3 s of bob's 440 Hz tone
awk '/^Length \(seconds\)/ { exit !($3 > 2.5 && $3 < 3.5) }' "$T/rec.stat" ||
    rq_fail "the recording is not 3 s long"
awk '/^Rough +frequency/ { exit !($3 > 400 && $3 < 480) }' "$T/rec.stat" ||
    rq_fail "the recording is not bob's tone"
code=$(curl -sS -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $OTHER_KEY" "$RQ_API$url")
[ "$code" = 404 ] || rq_fail "another tenant got $url: $code"
# Kept as long as its call: the tenant's 7 days after the call ends, and a
# day more (it was made before the end).
ttl=$(rq_redis PTTL "rq:rec:$rid:${url##*/}")
(( ttl > 8 * 86400000 - 120000 && ttl <= 8 * 86400000 )) ||
    rq_fail "recording $url: PTTL $ttl, not 8 days"

# An application that runs on after bob hangs up (its hang-up handler
# waits for a server that takes 30 s): stopped 10 s after the hang-up, the
# call completed, and nothing of it left in the telserver's memory.
held() {	# held N: ringq_telserver_calls_held is N
	[ "$(curl -sf --max-time 5 "http://127.0.0.1:$TEL_M/metrics" |
	    awk '$1 == "ringq_telserver_calls_held" { print $2 }')" = "$1" ]
}
rq_wait_for 10 held 0
body=$(jq -cn --arg to "$BOB_URI" --arg app "$WWW/linger.vxml" \
    '{to: $to, app_url: $app}')
resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST linger: $(rq_last_code) $resp"
lid=$(jq -er .id <<<"$resp")
id=$lid
rq_wait_for 30 answered
rq_wait_for 10 submitted '.path == "/linger.vxml"'
sleep 1
BARESIP_CTRL_PORT=$BOB_CTRL rq_baresip_cmd '{"command":"hangup"}' >/dev/null
rq_wait_for 10 submitted '.path == "/slow"'
held 1 || rq_fail "the lingering call is not held while its application runs"
call=$(rq_wait_call "$lid" 30)
jq -e '.status == "completed" and
    (.events[-1].detail | test("application was stopped"))' <<<"$call" \
    >/dev/null || rq_fail "lingering application: $call"
rq_wait_for 10 held 0	# (not freed before: held 1 for ever)
echo "an application running on after the hang-up: stopped, its call freed"

rq_check_sanitizers
echo "PASS"

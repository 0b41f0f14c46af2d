#!/usr/bin/env bash
# Incoming calls: the telserver has an [inbound] number whose application
# (vxml/inbound.vxml) the tenant's server (vxml_server.py) serves.  baresip
# "carol" dials the number, hears the prompt, keys four digits as RFC 4733
# events; the application submits them with its session variables, the
# server's answer exits, and the telserver hangs up.  Checks what the
# server got, the call as the tenant sees it (GET /v1/calls: direction
# inbound, completed, the result) and in PostgreSQL.  Then as on outbound
# calls: a number whose application cannot be fetched ends failed/app_error
# after the apology, and carol hanging up mid-prompt ends the call
# completed with result end "hangup".  A SIPp INVITE without an offer gets
# ours in the 200 and answers it in the ACK.  SIPp's INVITEs check
# the refusals: 404 for a number nobody configured, 503 with Retry-After
# while the telserver is full (capacity 1: carol's call), drained by the
# operator and when Redis is gone, 488 for an offer without PCMU/PCMA;
# none leaves a call behind.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1
rq_need baresip sipp jq psql sox

NUMBER=+15550100

rq_start_redis
rq_start_pg

# The tenant's server: its URL goes into the configuration.
mkdir -p "$T/www"
cp "$RQ_SOURCE/tests/integration/vxml/inbound.vxml" "$T/www/inbound.vxml"
rq_start_www "$T/www"

rq_write_config <<EOF
# (the demo tenant's, whose section comes just before)
retention_days = 3

[telserver]
capacity = 1

[inbound support]
number = $NUMBER
app_url = $WWW/inbound.vxml
tenant = demo

[inbound broken]
number = broken
app_url = $WWW/missing.vxml
tenant = demo
EOF
rq_start_daemon accounting
rq_start_daemon gateway
rq_start_daemon scheduler
rq_start_daemon dispatcher
rq_start_daemon telserver
rq_start_baresip carol
CAROL_URI=$BARESIP_URI CAROL_REC=$BARESIP_REC
SIP=127.0.0.1:$RQ_SIP_PORT

# submitted FILTER: the server's log has a request matching the jq filter.
submitted() {
	[ -f "$T/www.log" ] && jq -e -s "any(.[]; $1)" "$T/www.log" >/dev/null
}

# uac SCENARIO USER [sipp args]: SIPp runs sipp/SCENARIO for one call to
# USER@telserver; fails the test unless it passes.  Its <log> lines are in
# $UAC_LOG.  The runs follow one another: one block of media ports serves
# them all.
SIPP_N=0
SIPP_MPORT=$(rq_port_block)
uac() {
	local scen=$1 user=$2 port rc=0
	shift 2
	SIPP_N=$((SIPP_N + 1))
	port=$(rq_free_port)
	UAC_LOG=$T/uac$SIPP_N.actions
	(cd "$T" && timeout 30 sipp -sf \
	    "$RQ_SOURCE/tests/integration/sipp/$scen" "$SIP" -s "$user" \
	    -i 127.0.0.1 -p "$port" -mi 127.0.0.1 -mp "$SIPP_MPORT" -m 1 \
	    -nostdin -bind_local -timeout 20s \
	    -trace_msg -message_file "$T/uac$SIPP_N.messages" \
	    -trace_logs -log_file "$UAC_LOG" "$@") </dev/null \
	    >"$T/sipp-uac$SIPP_N.log" 2>&1 || rc=$?
	[ "$rc" = 0 ] || rq_fail "SIPp $scen to $user: exit $rc," \
	    "$(cat "$UAC_LOG" 2>/dev/null) (see uac$SIPP_N.messages)"
}

# refused USER CODECS WANT: SIPp sends one INVITE to USER@telserver
# offering CODECS; its log must say WANT ("answer 404", ...).
refused() {
	local user=$1 codecs=$2 want=$3
	uac uac_refused.xml "$user" -key codecs "$codecs"
	grep -qx "$want" "$UAC_LOG" ||
	    rq_fail "INVITE to $user ($codecs): want '$want', got '$(cat "$UAC_LOG")'"
	echo "INVITE to $user offering $codecs: $want"
}

# calls: how many calls the tenant has.
calls() {
	rq_api GET "/v1/calls?limit=100" | jq '.calls | length'
}

# A number nobody configured, before any call.
refused +15559999 "0 101" "answer 404"
refused support "0 101" "answer 404"

# carol calls the number.
BARESIP_CTRL_PORT=$BARESIP_CTRL_PORT rq_baresip_cmd \
    "{\"command\":\"dial\",\"params\":\"sip:$NUMBER@$SIP\"}" >/dev/null
one_call() {
	[ "$(calls)" = 1 ]
}
rq_wait_for 15 one_call
id=$(rq_api GET /v1/calls | jq -er '.calls[0].id')
echo "call $id: carol ($CAROL_URI) called $NUMBER"
call=$(rq_api GET "/v1/calls/$id")
jq -e --arg carol "$CAROL_URI" --arg n "$NUMBER" \
    '.direction == "inbound" and .number == $n and
     (.to | startswith($carol)) and .attempts == 1 and
     (.status == "answered") and
     (.app_url | endswith("/inbound.vxml")) and
     ([.events[].status] == ["answered"])' <<<"$call" >/dev/null ||
    rq_fail "call $id while it runs: $(jq -c . <<<"$call")"
# An incoming call never waits: a new time for it is refused as for any
# call in progress
TOMORROW=$(date -u -d '+1 day' +%FT%TZ)
body=$(rq_api PATCH "/v1/calls/$id" -d "{\"not_before\": \"$TOMORROW\"}")
[ "$(rq_last_code)" = 409 ] && [ "$(jq -r .error.code <<<"$body")" = already_started ] ||
    rq_fail "PATCH of a running incoming call: $(rq_last_code) $body"
rq_wait_for 10 submitted '.path == "/inbound.vxml"'

# Full (capacity 1): a second caller is asked to come back later.
refused "$NUMBER" "0 101" "answer 503 retry-after 10"
# Unknown numbers are refused before that.
refused +15559999 "0 101" "answer 404"

# carol keys her customer number into the prompt (barge-in).
sleep 2
for d in 4 3 2 1; do
	rq_baresip_cmd "{\"command\":\"sndcode\",\"params\":\"$d\"}" >/dev/null
	sleep 0.3
done
rq_wait_for 20 submitted '.path == "/submit" and .fields.customer == "4321"'
got=$(jq -c -s 'map(select(.path == "/submit")) | .[0].fields' "$T/www.log")
echo "the server got $got"
jq -e --arg carol "$CAROL_URI" --arg n "$NUMBER" \
    '.originator == "remote" and (.remote | startswith($carol)) and
     (.local | startswith("sip:" + $n + "@"))' <<<"$got" >/dev/null ||
    rq_fail "session variables: $got"

# The server's answer thanks her and exits: the telserver hangs up.
call=$(rq_wait_call "$id" 30)
echo "$call" | jq .
jq -e '.status == "completed" and .direction == "inbound" and
    .result.end == "exit" and .result.fields.customer == "4321" and
    ([.events[].status] == ["answered", "completed"]) and
    .events[1].node == "tel1" and .talk_ms > 1000' <<<"$call" >/dev/null ||
    rq_fail "call $id: $(jq -c '[.status, .reason, .result, .events]' <<<"$call")"
carol_hung_up() {
	grep -qi "terminated\|closed" "$T/baresip-carol.log"
}
rq_wait_for 10 carol_hung_up
echo "carol's phone: $(grep -i "terminated\|closed" "$T/baresip-carol.log" | tail -n 1)"
# She heard the prompts: our answer's codec and RTP reached her.
rec_ready() {
	local f
	f=$(ls "$CAROL_REC"/*-dec.wav 2>/dev/null | head -n 1)
	[ -n "$f" ] || return 1
	sox "$f" -n stat 2> "$T/carol.stat" || return 1
	awk '/^Length \(seconds\)/ { exit !($3 > 5.0) }' "$T/carol.stat"
}
rq_wait_for 15 rec_ready
awk '/^RMS +amplitude/ { exit !($3 > 0.01) }' "$T/carol.stat" ||
    rq_fail "carol heard silence: $(cat "$T/carol.stat")"
echo "carol heard $(awk '/^Length/ { print $3 }' "$T/carol.stat") s, RMS" \
    "$(awk '/^RMS +amplitude/ { print $3 }' "$T/carol.stat")"

# The tenant's books: PostgreSQL has the call, its attempt and events.
pg_row() {
	[ "$(rq_psql "SELECT status || ' ' || tenant || ' ' || attempts || ' ' ||
	    (result->'fields'->>'customer') FROM calls WHERE id = '$id'")" = \
	    "completed demo 1 4321" ]
}
rq_wait_for 10 pg_row
[ "$(rq_psql "SELECT target || ' ' || direction FROM calls WHERE id = '$id'")" = \
    "$(jq -r .to <<<"$call") inbound" ] ||
    rq_fail "calls row: not the caller, or not inbound: $(rq_psql \
    "SELECT target, direction FROM calls WHERE id = '$id'")"
[ "$(rq_psql "SELECT node || ' ' || status || ' ' || (talk_ms > 1000)
    FROM attempts WHERE call_id = '$id' AND attempt = 1")" = \
    "tel1 completed true" ] || rq_fail "attempt row: $(rq_psql \
    "SELECT * FROM attempts WHERE call_id = '$id'")"
[ "$(rq_psql "SELECT string_agg(status, ',' ORDER BY at, status)
    FROM call_events WHERE call_id = '$id'")" = "answered,completed" ] ||
    rq_fail "call_events: $(rq_psql \
    "SELECT status FROM call_events WHERE call_id = '$id'")"
echo "PostgreSQL: $(rq_psql "SELECT id, status, target, talk_ms FROM calls")"

# dial URI N: carol dials URI; waits for the tenant's Nth call, sets id.
dial() {
	local n=$2
	ncalls() { [ "$(calls)" = "$n" ]; }
	rq_baresip_cmd "{\"command\":\"dial\",\"params\":\"$1\"}" >/dev/null
	rq_wait_for 15 ncalls
	id=$(rq_api GET /v1/calls | jq -er '.calls[0].id')
}

# An application that cannot be fetched: the apology, then failed.
dial "sip:broken@$SIP" 2
call=$(rq_wait_call "$id" 30)
jq -e '.status == "failed" and .reason == "app_error" and
    .direction == "inbound" and .number == "broken" and
    .result.end == "error" and (.result.event | startswith("error.badfetch"))' \
    <<<"$call" >/dev/null ||
    rq_fail "broken call $id: $(jq -c . <<<"$call")"
rq_logged "$T/telserver.log" "call $id/1: the application failed" ||
    rq_fail "no application failure logged for $id"
rq_logged "$T/telserver.log" "call $id/1: failed app_error" ||
    rq_fail "call $id did not end after the apology"
echo "call $id to broken: $(jq -c '[.status, .reason, .result.event]' <<<"$call")"
# Ended: in Redis for the tenant's 3 days (retention_days; rq:ended, no
# TTL), not the default 7.
left=$(( $(rq_redis ZSCORE rq:ended "$id") - $(rq_now_ms) ))
[ "$(rq_redis PTTL "rq:job:$id")" = -1 ] && (( left > 3 * 86400000 - 60000 && left <= 3 * 86400000 )) ||
    rq_fail "ended incoming call $id: PTTL $(rq_redis PTTL "rq:job:$id"), in rq:ended for $left ms, not the tenant's 3 days"

# carol hangs up while the greeting plays: the application is told.
dial "sip:$NUMBER@$SIP" 3
second_fetch() {
	[ "$(jq -s 'map(select(.path == "/inbound.vxml")) | length' \
	    "$T/www.log")" = 2 ]
}
rq_wait_for 10 second_fetch
sleep 1
rq_baresip_cmd '{"command":"hangup"}' >/dev/null
call=$(rq_wait_call "$id" 20)
jq -e '.status == "completed" and .result.end == "hangup" and
    (.result.fields | has("customer") | not)' <<<"$call" >/dev/null ||
    rq_fail "call $id hung up by carol: $(jq -c . <<<"$call")"
echo "call $id hung up by carol: $(jq -c '[.status, .result]' <<<"$call")"

# An INVITE without an offer (a delayed offer): ours goes in the 200, the
# ACK answers it, RTP flows; SIPp hangs up after 3 s.
uac uac_late_offer.xml "$NUMBER"
grep -qx "offer m=audio [0-9]* RTP/AVP 0 8 101" "$UAC_LOG" ||
    rq_fail "no offer of ours in the 200: $(cat "$UAC_LOG")"
id=$(rq_api GET /v1/calls | jq -er '.calls[0].id')
call=$(rq_wait_call "$id" 20)
jq -e '.status == "completed" and .result.end == "hangup" and
    .direction == "inbound" and (.to | startswith("sip:sipp@"))' \
    <<<"$call" >/dev/null ||
    rq_fail "delayed-offer call $id: $(jq -c . <<<"$call")"
# or ended; its caller (sip:...;transport=udp, which no request may give
# as 'to') is not judged as a target
body=$(rq_api PATCH "/v1/calls/$id" -d "{\"not_before\": \"$TOMORROW\"}")
[ "$(rq_last_code)" = 409 ] && [ "$(jq -r .error.code <<<"$body")" = already_ended ] ||
    rq_fail "PATCH of an ended incoming call: $(rq_last_code) $body"
grep -q "call $id/1: the ACK answers our offer, rtp to 127.0.0.1:$SIPP_MPORT PCMU" \
    "$T/telserver.log" || rq_fail "call $id: the ACK's answer was not used"
sent=$(sed -n "s#.*call $id/1: rtp sent \([0-9]*\) received.*#\1#p" \
    "$T/telserver.log")
(( ${sent:-0} > 100 )) || rq_fail "call $id: $sent RTP packets sent in 3 s"
echo "call $id, a delayed offer: completed, $sent RTP packets sent"

# Free again: an offer we cannot answer.
refused "$NUMBER" "18" "answer 488"
[ "$(calls)" = 4 ] || rq_fail "a refused INVITE left a call: $(rq_api GET /v1/calls)"
pg_three() {
	[ "$(rq_psql "SELECT string_agg(status || '/' || coalesce(reason, ''),
	    ' ' ORDER BY created_at) FROM calls")" = \
	    "completed/ failed/app_error completed/ completed/" ]
}
rq_wait_for 10 pg_three
# An operator's drain: no new call, incoming ones included; undrained,
# the number answers again (the SIPp offer has no codec of ours: 488).
"$RQ_BUILD/dispatcher/ringq-ctl" -f "$RQ_CONF" drain tel1 >/dev/null
drained() { grep -q "drained: no calls left" "$T/telserver.log"; }
rq_wait_for 5 drained
refused "$NUMBER" "0 101" "answer 503 retry-after 10"
rq_logged "$T/telserver.log" \
    "incoming call to $NUMBER refused: draining (503)" || rq_fail "the drain's 503 was not for draining"
"$RQ_BUILD/dispatcher/ringq-ctl" -f "$RQ_CONF" undrain tel1 >/dev/null
# rq:tel:<node> says up once the telserver has read it is not drained
undrained() { [ "$(rq_redis HGET rq:tel:tel1 state)" = up ]; }
rq_wait_for 5 undrained
refused "$NUMBER" "18" "answer 488"
# Redis gone: a call nobody could account for is not taken.
rq_stop_redis
refused "$NUMBER" "0 101" "answer 503 retry-after 10"
rq_logged "$T/telserver.log" "incoming call to $NUMBER refused: .*(503)" ||
    rq_fail "the telserver did not say why it refused"
rq_check_sanitizers
echo "PASS"

#!/usr/bin/env bash
# End to end, the phone network: a call to an E.164 number goes to the
# configured trunk (SIPp standing in for it) as sip:<number>@trunk;user=phone
# with the E.164 caller id in From, and completes.  (Without a trunk an
# E.164 call fails as rejected, not retried: test_telserver.sh.)
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

NUMBER=+15551234567
CALLER=+4930999999

rq_start_redis
rq_start_pg
rq_start_sipp_uas uas_trunk.xml
rq_write_config <<EOF2
[telserver]
outbound_proxy = sip:127.0.0.1:$SIPP_PORT
EOF2
for d in accounting gateway scheduler dispatcher telserver; do
	rq_start_daemon "$d"
done

body=$(jq -cn --arg to "$NUMBER" --arg from "$CALLER" \
    '{to: $to, caller_id: $from, say: "Hello over the trunk."}')
resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
id=$(jq -er .id <<<"$resp")
echo "call $id to $NUMBER through the trunk at port $SIPP_PORT"
call=$(rq_wait_call "$id" 60)
echo "$call" | jq -c '{status, reason, sip_code, talk_ms}'
jq -e '.status == "completed" and .talk_ms > 0' <<<"$call" >/dev/null ||
    rq_fail "trunk call $id: $(jq -c . <<<"$call")"
rq_wait_sipp 30 || rq_fail "SIPp trunk scenario failed (exit $?)"
cat "$SIPP_LOG"
grep -q "Request-URI number $NUMBER\$" "$SIPP_LOG" ||
    rq_fail "the trunk did not get $NUMBER in the Request-URI"
grep -q "From number $CALLER\$" "$SIPP_LOG" ||
    rq_fail "the trunk did not get caller id $CALLER in From"
grep -q "X-Ringq-Attempt $id 1\$" "$SIPP_LOG" ||
    rq_fail "the INVITE lacked X-Ringq-Attempt: $id/1"

for d in telserver dispatcher scheduler gateway accounting; do
	rq_stop_daemon "$d"
done
echo "PASS"

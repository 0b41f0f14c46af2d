#!/usr/bin/env bash
# A telserver's link to its dispatcher left half-open: the connection is
# reset on the telserver's side and stays open, silent, on the
# dispatcher's (a firewall or NAT that dropped its state, a partition that
# outlasted the retransmissions).  The telserver reaches the dispatcher
# through a TCP relay (tcp_proxy.py, SIGUSR1).  It connects again under the
# same ZeroMQ identity; the dispatcher must take the new connection (not
# refuse it as a duplicate of the silent one) and send it calls again, and
# close the silent one once its pings go unanswered.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need jq psql redis-server redis-cli python3 sipp

rq_start_redis
rq_start_pg
rq_write_config < /dev/null

RELAY_PORT=$(rq_free_port)
TEL_CONF=$T/telserver.conf
sed -e "s|^dispatch_endpoints = .*|dispatch_endpoints = tcp://127.0.0.1:$RELAY_PORT|" \
    "$RQ_CONF" > "$TEL_CONF"
grep -q "^dispatch_endpoints = tcp://127.0.0.1:$RELAY_PORT$" "$TEL_CONF" ||
    rq_fail "no relay in $TEL_CONF"
python3 "$RQ_SOURCE/tests/integration/tcp_proxy.py" "$RELAY_PORT" \
    "$RQ_DISPATCH_PORT" 2>> "$T/relay.log" &
rq_track relay $!
RELAY_PID=$!
rq_wait_for 5 rq_tcp_listening "$RELAY_PORT"

for d in accounting gateway scheduler dispatcher; do
	rq_start_daemon "$d"
done
RQ_CONF=$TEL_CONF rq_start_daemon telserver

# call: a call to SIPp, answered and completed within 30 s; sets id
call() {
	local body resp
	rq_start_sipp_uas uas_answer.xml
	body=$(jq -cn --arg to "$SIPP_URI" '{to: $to, say: "Hello again."}')
	resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
	id=$(jq -er .id <<<"$resp") || rq_fail "no id in $resp"
	rq_wait_call "$id" 30 | jq -e '.status == "completed"' >/dev/null ||
	    rq_fail "call $id: $(rq_api GET "/v1/calls/$id")"
	rq_wait_sipp 30 || rq_fail "SIPp failed for $id"
}

call
echo "call $id completed through the relay"
established() {	# the relay's connections to the dispatcher
	ss -Htn state established "( dport = :$RQ_DISPATCH_PORT )" | wc -l
}
before=$(established)

kill -USR1 "$RELAY_PID"
# the telserver connects again (a new connection to the dispatcher beside
# the silent one)
reconnected() { (( $(established) > before )); }
rq_wait_for 10 reconnected
cut_ms=$(rq_now_ms)
call
echo "call $id completed $(( $(rq_now_ms) - cut_ms )) ms after the link went half-open ($(established) connections to the dispatcher)"
# The dispatcher closes the silent connection itself: its pings unanswered
# for 5 s (ZMTP heartbeats, common/bus.c)
gone() { (( $(established) == before )); }
rq_wait_for 15 gone || rq_fail "the silent connection still open: $(established) connections"
echo "the silent connection closed by the dispatcher $(( $(rq_now_ms) - cut_ms )) ms after the cut"

rq_stop_daemon telserver
for d in dispatcher scheduler gateway accounting; do
	rq_stop_daemon "$d"
done
rq_check_sanitizers
echo "test_bus_link: OK"

#!/usr/bin/env bash
# A telserver cut off from Redis while Redis is up (a network partition):
# the telserver reaches Redis through a TCP relay (tcp_proxy.py), the other
# daemons directly.  A call is answered by a baresip phone; the relay is
# killed; the customer hangs up while the telserver cannot record it (its
# finish is kept); the scheduler sees the telserver's liveness key expire
# and ends the attempt as interrupted, planning a retry.  Then the relay
# comes back: the telserver's kept finish records the call as completed,
# the retry is taken back, and the customer, who was served, is not rung
# again, in Redis, in the API and in PostgreSQL.  Twice: healed while the
# retry waits for its time in rq:delayed, and healed after it came due
# and waits in rq:ready for a telserver (the only one is cut off), where
# the telserver's heartbeat after the heal would bring it its JOB: the
# kept finish must go first.
# Then a telserver that stalls (SIGSTOP) during a call, past the fence's
# margin: for 4 s (its attempt still its own: the call goes on), then
# until the scheduler ended the attempt and its retry came due (the call
# is hung up at once when it runs again, before the retry is dialled, not
# left to go on beside it).  Then Redis refusing writes (a replica) while
# a call ends, longer than the telserver's rounds for a refused finish.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need baresip jq psql redis-server redis-cli python3

SAY="This is ringq speaking. The customer hangs up before this long sentence ends, while the telserver cannot reach Redis, and the call must be counted as completed once, and never rung again."

rq_start_redis
rq_start_pg
# the retry an interrupt plans comes 9 to 15 s later (tenant partition:
# long enough to see the relay back first, short enough to wait past it),
# or 0.75 to 1.25 s later (tenant fast: due while still cut off)
PART_KEY="rq_part_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
FAST_KEY="rq_fast_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
STALL_KEY="rq_stall_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
rq_write_config <<EOF
[tenant partition]
key_sha256 = $(rq_sha256 "$PART_KEY")
allow_sip = yes
retry_network_delay_s = 12

[tenant fast]
key_sha256 = $(rq_sha256 "$FAST_KEY")
allow_sip = yes
retry_network_delay_s = 1

[tenant stall]
key_sha256 = $(rq_sha256 "$STALL_KEY")
allow_sip = yes
retry_network_delay_s = 1
EOF

# The telserver's own config: Redis through the relay.
RELAY_PORT=$(rq_free_port)
TEL_CONF=$T/telserver.conf
sed -e "s|^host = .*|host = 127.0.0.1|" -e "s|^port = .*|port = $RELAY_PORT|" \
    "$RQ_CONF" > "$TEL_CONF"
grep -q "^port = $RELAY_PORT$" "$TEL_CONF" || rq_fail "no relay port in $TEL_CONF"

relay_start() {
	python3 "$RQ_SOURCE/tests/integration/tcp_proxy.py" "$RELAY_PORT" \
	    "$REDIS_PORT" 2>> "$T/relay.log" &
	rq_track relay $!
	rq_wait_for 5 rq_tcp_listening "$RELAY_PORT"
}
relay_start

for d in accounting gateway scheduler dispatcher; do
	rq_start_daemon "$d"
done
RQ_CONF=$TEL_CONF rq_start_daemon telserver
rq_start_baresip bob
TEL_LOG=$T/telserver.log

# since: what the telserver logged since the current call began.
since() { tail -n +"$LOG_FROM" "$TEL_LOG"; }
job() { rq_redis HGET "rq:job:$id" "$1"; }

# post_call KEY: a call of KEY's tenant to bob, answered; sets id.
post_call() {
	local body resp
	LOG_FROM=$(( $(wc -l < "$TEL_LOG") + 1 ))
	body=$(jq -cn --arg to "$BARESIP_URI" --arg say "$SAY" '{to: $to, say: $say}')
	resp=$(RQ_KEY=$1 rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
	id=$(jq -er '.id' <<<"$resp") || rq_fail "no id in $resp"
	answered() { [ "$(job status)" = answered ]; }
	rq_wait_for 30 answered
}

# cut_call KEY HEAL: a call of KEY's tenant, cut off as above; HEAL is
# "waiting" (healed while the retry waits for its time) or "due" (healed
# once it came due and waits in rq:ready).
cut_call() {
	local key=$1 heal=$2 call dials pg_attempts pg_events
	post_call "$key"
	echo "call $id to $BARESIP_URI, healed while its retry is $heal"

	# the partition
	rq_kill relay || true	# its status: killed by SIGTERM
	cut_ms=$(rq_now_ms)
	rq_baresip_cmd '{"command":"hangup"}' >/dev/null
	kept() { since | grep -q "call $id/1: finish kept for a retry"; }
	rq_wait_for 5 kept
	fenced() { since | grep -q "fenced: liveness key not refreshed"; }
	rq_wait_for 6 fenced
	# the scheduler's sweep: the telserver's key expired, it seems dead
	interrupted() { [ "$(job status)" = retrying ] && [ "$(job reason)" = interrupted ]; }
	rq_wait_for 15 interrupted
	retry_at=$(job not_before_ms)
	echo "  interrupted by the sweep $(( $(rq_now_ms) - cut_ms )) ms after the cut; retry planned in $(( retry_at - $(rq_now_ms) )) ms"
	if [ "$heal" = due ]; then
		in_ready() { [ -n "$(rq_redis ZSCORE rq:ready "$id")" ]; }
		rq_wait_for 10 in_ready
	else
		[ -n "$(rq_redis ZSCORE rq:delayed "$id")" ] || rq_fail "$id: no retry in rq:delayed"
	fi

	# healed
	relay_start
	# the kept finish reaches Redis (recorded, or refused as too late)
	sent() { since | grep -q "call $id/1: \(recorded as\|attempt already ended\)"; }
	rq_wait_for 10 sent
	echo "  finish sent $(( $(rq_now_ms) - cut_ms )) ms after the cut"
	[ "$heal" = due ] || (( $(rq_now_ms) < retry_at )) ||
	    rq_fail "the relay came back after the retry was due: the test proves nothing"

	[ "$(job status)" = completed ] || rq_fail "$id: job status $(job status) once the kept finish reached Redis"
	since | grep -q "call $id/1: recorded as completed after the scheduler had ended it as interrupted: its retry taken back" ||
	    rq_fail "$id: the late finish is not logged as such"
	[ -z "$(rq_redis ZSCORE rq:delayed "$id")$(rq_redis ZSCORE rq:ready "$id")$(rq_redis ZSCORE rq:inflight "$id")" ] ||
	    rq_fail "$id: its retry is still queued"
	[ "$(job attempts)" = 1 ] || rq_fail "$id: attempts $(job attempts)"

	# past the retry's planned time (and a release, a take and a dial
	# after it): nobody rings the customer again
	past_retry() { (( $(rq_now_ms) > retry_at + 3000 )); }
	rq_wait_for 20 past_retry
	dials=$(grep -c "call $id/[0-9]*: dialing" "$TEL_LOG")
	[ "$dials" = 1 ] || rq_fail "$id: dialled $dials times"

	call=$(RQ_KEY=$key rq_api GET "/v1/calls/$id")
	[ "$(jq -r '.status' <<<"$call")" = completed ] || rq_fail "$id: GET says $(jq -c '[.status, .reason]' <<<"$call")"
	[ "$(jq -r '.attempts' <<<"$call")" = 1 ] || rq_fail "$id: GET says attempts $(jq -r '.attempts' <<<"$call")"
	jq -e 'any(.events[]; .status == "retrying" and .reason == "interrupted")' <<<"$call" >/dev/null ||
	    rq_fail "$id: the interrupt is not in the timeline"

	pg_done() { [ "$(rq_psql "SELECT status FROM calls WHERE id = '$id'")" = completed ]; }
	rq_wait_for 10 pg_done
	pg_attempts=$(rq_psql "SELECT attempt || ':' || status FROM attempts WHERE call_id = '$id' ORDER BY attempt")
	[ "$pg_attempts" = "1:completed" ] || rq_fail "$id: attempts in PostgreSQL: $(echo $pg_attempts)"
	pg_events=$(rq_psql "SELECT status FROM call_events WHERE call_id = '$id' AND attempt = 1 ORDER BY at, status")
	echo "  PostgreSQL, attempt 1: $(echo $pg_events)"
	grep -q "^retrying$" <<<"$pg_events" && grep -q "^completed$" <<<"$pg_events" ||
	    rq_fail "$id: call_events of attempt 1: $(echo $pg_events)"
}

cut_call "$PART_KEY" waiting
cut_call "$FAST_KEY" due
calls=$(grep -c "[Cc]all established:" "$T/baresip-bob.log" || true)
[ "$calls" = 2 ] || rq_fail "baresip got $calls calls, not 2"

# --- stalls ------------------------------------------------------------------------
# stall SECONDS: the telserver stopped that long, then running again.
stall() {
	kill -STOP "$(rq_pid telserver)"
	sleep "$1"
	kill -CONT "$(rq_pid telserver)"
}
post_call "$STALL_KEY"
echo "call $id to $BARESIP_URI, the telserver stalled during it"
stall 4.0
stalled() { since | grep -q "stalled [0-9]* ms[^:]*: the scheduler ended $1 of our 1 calls meanwhile"; }
rq_wait_for 5 stalled 0
echo "  $(since | grep -o 'stalled [0-9]* ms.*')"
[ "$(job status)" = answered ] || rq_fail "$id: $(job status) after a 4 s stall"
LOG_FROM=$(( $(wc -l < "$TEL_LOG") + 1 ))
kill -STOP "$(rq_pid telserver)"
# the scheduler ends the attempt; its retry is due a second later, for
# the telserver that runs again (the only one)
swept() { [ "$(job status)" = retrying ] && [ "$(job reason)" = interrupted ]; }
rq_wait_for 15 swept
sleep 1.5
kill -CONT "$(rq_pid telserver)"
cont_ms=$(rq_now_ms)
# our BYE of attempt 1, answered by the phone, before attempt 2 is dialled
hung_up() { since | grep -q "call $id/1: sip nua_r_bye 200"; }
rq_wait_for 5 hung_up
echo "  hung up $(( $(rq_now_ms) - cont_ms )) ms after the telserver ran again"
(( $(rq_now_ms) - cont_ms < 2000 )) || rq_fail "$id: not hung up at once"
rq_wait_for 5 stalled 1
echo "  $(since | grep -o 'stalled [0-9]* ms.*')"
since | grep -q "call $id/1: failed interrupted, the scheduler ended the attempt while we stalled" ||
    rq_fail "$id: not ended for the stall"
retried() { since | grep -q "call $id/2: dialing"; }
rq_wait_for 15 retried
# hung up (its BYE sent; the phone's 200 may come after the next dial)
bye_line=$(since | grep -n "call $id/1: failed interrupted, the scheduler ended the attempt while we stalled" | head -n 1 | cut -d: -f1)
dial_line=$(since | grep -n "call $id/2: dialing" | head -n 1 | cut -d: -f1)
[ -n "$bye_line" ] && (( bye_line < dial_line )) || rq_fail "$id: attempt 2 dialled while attempt 1 was still up"
answered2() { [ "$(job status)" = answered ] && [ "$(job attempts)" = 2 ]; }
rq_wait_for 15 answered2
rq_baresip_cmd '{"command":"hangup"}' >/dev/null
completed() { [ "$(job status)" = completed ]; }
rq_wait_for 10 completed
for a in 1 2; do
	[ "$(grep -c "call $id/$a: dialing" "$TEL_LOG")" = 1 ] || rq_fail "$id/$a: dialled $(grep -c "call $id/$a: dialing" "$TEL_LOG") times"
done

# --- Redis refusing writes -----------------------------------------------------
# Redis turned into a replica (of a port where nothing listens: its data
# stays) while a call ends: every write refused, READONLY, with the link
# up, past the telserver's 30 rounds for a finish Redis refuses.  The
# finish is kept as long as that lasts, not dropped (its attempt would
# stay in rq:oncall, ended as interrupted at the telserver's next start
# and rung again); once Redis takes writes the call is completed once.
post_call "$PART_KEY"
echo "call $id to $BARESIP_URI, ended while Redis refuses writes"
rq_redis REPLICAOF 127.0.0.1 "$(rq_free_port)" >/dev/null
read_only() { rq_redis SET rq:test:ro 1 2>&1 | grep -q READONLY; }
rq_wait_for 5 read_only
rq_baresip_cmd '{"command":"hangup"}' >/dev/null
kept() { since | grep -q "call $id/1: finish kept for a retry"; }
rq_wait_for 10 kept
# 32 rounds of refusals (one a second), more than LIFE_FINISH_TRIES
refusals() { (( $(since | grep -c "script finish: READONLY") >= 32 )); }
rq_wait_for 50 refusals ||
    rq_fail "$id: $(since | grep -c "script finish: READONLY") refusals of its finish"
! since | grep -q "refused by Redis [0-9]* times, dropped" ||
    rq_fail "$id: its finish dropped while Redis refused writes"
rq_redis REPLICAOF NO ONE >/dev/null
sent() { since | grep -q "call $id/1: recorded as"; }
rq_wait_for 15 sent
rq_wait_for 10 completed || rq_fail "$id: $(job status) once Redis took writes again"
[ "$(job attempts)" = 1 ] || rq_fail "$id: attempts $(job attempts)"
[ -z "$(rq_redis ZSCORE rq:delayed "$id")$(rq_redis ZSCORE rq:ready "$id")$(rq_redis ZSCORE rq:inflight "$id")" ] ||
    rq_fail "$id: a retry is still queued"
for k in $(rq_redis --scan --pattern 'rq:oncall:*'); do
	[ "$(rq_redis SISMEMBER "$k" "$id")" = 0 ] || rq_fail "$id: still in $k"
done
[ "$(grep -c "call $id/[0-9]*: dialing" "$TEL_LOG")" = 1 ] || rq_fail "$id: dialled more than once"
echo "  completed after $(since | grep -c "script finish: READONLY") refusals"
# a refusal of every write is logged, not flooded: the telserver's
# liveness key, tried at every tick, at most once in 10 s; accounting's
# consumer group once a second
(( $(since | grep -c "redis: liveness: READONLY") <= 6 )) ||
    rq_fail "the telserver logged $(since | grep -c "redis: liveness: READONLY") liveness refusals"
(( $(grep -c "XGROUP CREATE rq:events: READONLY" "$T/accounting.log") <= 60 )) ||
    rq_fail "accounting logged $(grep -c "XGROUP CREATE rq:events: READONLY" "$T/accounting.log") refusals of its consumer group"

rq_check_sanitizers
echo "ok: a call that ended while its telserver was cut off from Redis is completed once when the link heals, its retry taken back while it waited for its time and once it was due; a stalled telserver keeps its calls while they are its own, hangs up those the scheduler ended; one that ended while Redis refused writes is completed once they are taken again"

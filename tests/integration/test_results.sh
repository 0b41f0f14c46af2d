#!/usr/bin/env bash
# Results of VoiceXML applications, from the finish to the third party,
# without a call: app_url through the API's rules, then attempts finished by
# the real lifecycle scripts (rq_finish: claim and finish, as a telserver
# does) with a result, followed into the job, PostgreSQL (call_events,
# attempts, calls), the signed status callback and GET /v1/calls/{id}; a
# result that is not a JSON object (batch finish); a retry whose attempts
# each keep their own result.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1
rq_need jq
rq_need curl
rq_need openssl

FINISH=$RQ_BUILD/tests/integration/rq_finish
[ -x "$FINISH" ] || rq_fail "$FINISH not built"
RX_PORT=$(rq_free_port)
RX=$T/rx
mkdir -p "$RX"

# The receiver (callback_receiver.py): every POST saved as N.path, N.sig,
# N.code, N.body; /flaky/* answers 500 twice.
python3 "$RQ_SOURCE/tests/integration/callback_receiver.py" "$RX_PORT" "$RX" \
    > "$T/receiver.log" 2>&1 &
rq_track receiver $!
rq_wait_for 10 rq_tcp_listening "$RX_PORT"

rq_start_redis
rq_start_pg
rq_write_config <<EOF

[accounting]
callbacks_allow_loopback = yes
EOF
SECRET=rq-test-callback-secret		# lib.sh's [tenant demo]
rq_start_daemon accounting
rq_start_daemon gateway

post() {	# post JSON: prints the answer; the code in $(rq_last_code)
	rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$1"
}
# call APP_URL PATH: a new call running APP_URL, callbacks to PATH; its id
call() {
	local resp
	resp=$(post "$(jq -cn --arg app "$1" --arg cb "http://127.0.0.1:$RX_PORT$2" \
	    '{to: "+15551234567", app_url: $app, callback_url: $cb,
	      metadata: {order: 7}}')")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST app_url: $(rq_last_code) $resp"
	jq -er .id <<<"$resp"
}
# received PATH: the statuses POSTed to PATH, in arrival order
received() {
	local f
	for f in "$RX"/*.path; do
		[ -f "$f" ] && [ "$(cat "$f")" = "$1" ] || continue
		jq -r .status "${f%.path}.body"
	done | paste -sd' ' -
}
has_received() {
	[ "$(received "$1")" = "$2" ]
}
# body PATH STATUS: the file holding that callback's body
body() {
	local f
	for f in "$RX"/*.path; do
		[ -f "$f" ] && [ "$(cat "$f")" = "$1" ] || continue
		jq -e --arg s "$2" '.status == $s' "${f%.path}.body" >/dev/null &&
		    { echo "${f%.path}.body"; return 0; }
	done
	return 1
}
stored() {	# stored ID STATUS: accounting has the event in PostgreSQL
	[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$1'
	    AND status = '$2'")" = 1 ]
}

# --- app_url: accepted, one of say and app_url, a URL -----------------------
post '{"to": "+15551234567", "say": "Hi", "app_url": "http://127.0.0.1/a.vxml"}' > "$T/r"
[ "$(rq_last_code) $(jq -r '.error.code + " " + .error.field' "$T/r")" = \
    "422 conflicting_fields app_url" ] || rq_fail "say and app_url: $(rq_last_code) $(cat "$T/r")"
post '{"to": "+15551234567", "app_url": "http://user:pw@127.0.0.1/a.vxml"}' > "$T/r"
[ "$(rq_last_code) $(jq -r .error.code "$T/r")" = "422 invalid_app_url" ] &&
    jq -e '.error.message | test("password")' "$T/r" >/dev/null ||
    rq_fail "app_url with a password: $(rq_last_code) $(cat "$T/r")"
post '{"to": "+15551234567", "app_url": "file:///etc/passwd"}' > "$T/r"
[ "$(rq_last_code) $(jq -r .error.code "$T/r")" = "422 invalid_app_url" ] ||
    rq_fail "file: app_url: $(rq_last_code) $(cat "$T/r")"
post '{"to": "+15551234567"}' > "$T/r"
[ "$(rq_last_code) $(jq -r .error.code "$T/r")" = "400 missing_field" ] ||
    rq_fail "neither say nor app_url: $(rq_last_code) $(cat "$T/r")"
[ "$(rq_redis ZCARD rq:calls:demo)" = 0 ] || rq_fail "a refused request queued a call"
echo "ok: app_url rules"

APP=http://127.0.0.1:9/order.vxml?id=7
A=$(call "$APP" /a)
[ "$(rq_redis HGET "rq:job:$A" app_url)" = "$APP" ] &&
    [ "$(rq_redis HEXISTS "rq:job:$A" say)" = 0 ] ||
    rq_fail "job of an app_url call: $(rq_redis HGETALL "rq:job:$A")"

# --- a finish with a result --------------------------------------------------
cat > "$T/result-a.json" <<'EOF'
{"end": "exit", "fields": {"pin": "1234", "name": "Zoë \"Z\""},
 "recordings": {"msg": "http://rec.example/c/1.wav"},
 "exit": {"ok": true, "tries": [1, 2]}}
EOF
[ "$("$FINISH" "$REDIS_PORT" tel1 "$A" completed "" "$T/result-a.json")" = completed ] ||
    rq_fail "finish of $A"
rq_redis HGET "rq:job:$A" result | jq -e --slurpfile r "$T/result-a.json" '. == $r[0]' >/dev/null ||
    rq_fail "job result: $(rq_redis HGET "rq:job:$A" result)"

# PostgreSQL: the event, its attempt and the call keep the object.
rq_wait_for 10 stored "$A" completed
[ "$(rq_psql "SELECT jsonb_typeof(result), result->'fields'->>'pin',
    result->'fields'->>'name', result->'exit'->'tries'->>1 FROM call_events
    WHERE call_id = '$A' AND status = 'completed'")" = 'object|1234|Zoë "Z"|2' ] ||
    rq_fail "call_events.result: $(rq_psql "SELECT result FROM call_events WHERE call_id = '$A'")"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$A' AND result IS NULL")" = 2 ] ||
    rq_fail "events without a result: $(rq_psql "SELECT status, result FROM call_events WHERE call_id = '$A'")"
[ "$(rq_psql "SELECT c.status, c.result->>'end', a.result->'recordings'->>'msg',
    c.result = (SELECT result FROM call_events WHERE call_id = c.id AND
    status = 'completed') FROM calls c JOIN attempts a ON a.call_id = c.id
    WHERE c.id = '$A'")" = "completed|exit|http://rec.example/c/1.wav|t" ] ||
    rq_fail "calls/attempts result: $(rq_psql "SELECT * FROM calls WHERE id = '$A'")"
echo "ok: PostgreSQL: $(rq_psql "SELECT result FROM calls WHERE id = '$A'")"

# The status callback: completed carries the result as an object, signed.
rq_wait_for 15 has_received /a "queued dispatched completed" ||
    rq_fail "callbacks for $A: '$(received /a)'"
b=$(body /a completed) || rq_fail "no completed callback"
jq -e --slurpfile r "$T/result-a.json" --arg id "$A" \
    '.id == $id and .result == $r[0] and .metadata == {order: 7}' "$b" >/dev/null ||
    rq_fail "completed callback body: $(cat "$b")"
sig=$(cat "${b%.body}.sig")
[[ $sig =~ ^t=([0-9]+),v1=([0-9a-f]{64})$ ]] || rq_fail "bad signature header '$sig'"
mac=$( { printf '%s.' "${BASH_REMATCH[1]}"; cat "$b"; } |
    openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
[ "$mac" = "${BASH_REMATCH[2]}" ] || rq_fail "callback with a result: signature mismatch"
jq -e 'has("result") | not' "$(body /a dispatched)" >/dev/null ||
    rq_fail "dispatched callback has a result"
echo "ok: callback: $(cat "$b")"

# The API: the call's result, and its completed event's.
rq_api GET "/v1/calls/$A" > "$T/get"
[ "$(rq_last_code)" = 200 ] || rq_fail "GET $A: $(rq_last_code)"
jq -e --slurpfile r "$T/result-a.json" --arg app "$APP" \
    '.result == $r[0] and .app_url == $app and (has("say") | not) and
     ([.events[] | select(.status == "completed")][0].result == $r[0]) and
     ([.events[] | select(.status != "completed") | has("result")] | any | not)' \
    "$T/get" >/dev/null || rq_fail "GET with a result: $(cat "$T/get")"
echo "ok: GET /v1/calls/$A: .result $(jq -c .result "$T/get")"

# --- a result that is not a JSON object, through the batch finish ------------
B=$(call "$APP" /b)
printf '%s' 'oops {"end": "exit"' > "$T/result-b.txt"
[ "$("$FINISH" "$REDIS_PORT" tel1 "$B" completed "" "$T/result-b.txt" batch)" = completed ] ||
    rq_fail "batch finish of $B"
rq_wait_for 10 stored "$B" completed
[ "$(rq_psql "SELECT jsonb_typeof(result), result #>> '{}' FROM calls WHERE id = '$B'")" = \
    'string|oops {"end": "exit"' ] ||
    rq_fail "a result that is not JSON: $(rq_psql "SELECT result FROM calls WHERE id = '$B'")"
grep -q "$B: event 1:completed: result is not a JSON object: kept as a string" \
    "$T/accounting.log" || rq_fail "a result kept as a string not logged"
rq_wait_for 15 has_received /b "queued dispatched completed" ||
    rq_fail "callbacks for $B: '$(received /b)'"
jq -e '.result == "oops {\"end\": \"exit\""' "$(body /b completed)" >/dev/null ||
    rq_fail "callback with a bad result: $(cat "$(body /b completed)")"
rq_api GET "/v1/calls/$B" | jq -e '.result == "oops {\"end\": \"exit\""' >/dev/null ||
    rq_fail "GET with a bad result: $(rq_api GET "/v1/calls/$B")"
echo "ok: a result that is not an object: a string in PostgreSQL, the callback and GET"

# --- a retry: each attempt its own result, the call the latest ---------------
C=$(call "$APP" /c)
echo '{"end": "error", "event": "error.badfetch", "message": "HTTP 503",
       "url": "http://127.0.0.1:9/order.vxml?id=7", "line": 0}' > "$T/result-c1.json"
echo '{"end": "hangup", "fields": {"pin": "99"}}' > "$T/result-c2.json"
[ "$("$FINISH" "$REDIS_PORT" tel1 "$C" failed busy "$T/result-c1.json")" = retrying ] ||
    rq_fail "first attempt of $C not retrying"
[ "$("$FINISH" "$REDIS_PORT" tel2 "$C" completed "" "$T/result-c2.json")" = completed ] ||
    rq_fail "second attempt of $C"
rq_wait_for 10 stored "$C" completed
[ "$(rq_psql "SELECT string_agg(attempt || ':' || status || ':' || (result->>'end'),
    ',' ORDER BY attempt) FROM attempts WHERE call_id = '$C'") $(rq_psql \
    "SELECT status || ':' || (result->>'end') FROM calls WHERE id = '$C'")" = \
    "1:retrying:error,2:completed:hangup completed:hangup" ] ||
    rq_fail "results of a retried call: $(rq_psql "SELECT attempt, result FROM attempts WHERE call_id = '$C'")"
rq_api GET "/v1/calls/$C" > "$T/get"
jq -e '.result.end == "hangup" and
    ([.events[] | select(.status == "retrying")][0].result.event == "error.badfetch")' \
    "$T/get" >/dev/null || rq_fail "GET of a retried call: $(cat "$T/get")"
rq_wait_for 15 has_received /c "queued dispatched retrying dispatched completed" ||
    rq_fail "callbacks for $C: '$(received /c)'"
jq -e '.result.event == "error.badfetch"' "$(body /c retrying)" >/dev/null ||
    rq_fail "retrying callback: $(cat "$(body /c retrying)")"
echo "ok: a retried call: attempt 1 error.badfetch, attempt 2 hangup"

rq_stop_daemon gateway
rq_stop_daemon accounting
rq_check_sanitizers
echo "test_results: OK"

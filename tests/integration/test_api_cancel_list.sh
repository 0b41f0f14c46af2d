#!/usr/bin/env bash
# DELETE, PATCH /v1/calls/{id} and GET /v1/calls through the real daemons:
# cancel a call that waits (200, canceled in the API and in PostgreSQL, never
# dispatched), cancel twice or after the end (409), another tenant's (404);
# PATCH priority and not_before of a waiting call (it is then placed at the
# new time), 409 once dialled or ended, 404, 400, 422 past not_after;
# list 120 calls in pages of 50/50/20 with a status filter; bad parameters;
# a tenant's lists per second (429 beyond list_per_second).
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1
rq_need jq
rq_need curl

OTHER_KEY=rq_other_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
LIST_KEY=rq_list_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
SLOW_KEY=rq_slow_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

rq_start_redis
rq_start_pg
rq_write_config <<EOF
[tenant other]
key_sha256 = $(rq_sha256 "$OTHER_KEY")
allow_sip = yes

[tenant lister]
key_sha256 = $(rq_sha256 "$LIST_KEY")
allow_sip = yes
list_per_second = 0

[tenant slowlister]
key_sha256 = $(rq_sha256 "$SLOW_KEY")
list_per_second = 2
EOF
rq_start_daemon accounting
rq_start_daemon gateway
rq_start_daemon scheduler
rq_start_daemon dispatcher
rq_start_daemon telserver
rq_start_baresip bob

iso_in() {	# iso_in SECONDS: an RFC 3339 time SECONDS from now
	date -u -d "@$(( $(date +%s) + $1 ))" +%Y-%m-%dT%H:%M:%SZ
}

# post KEY TO NOT_BEFORE: prints the new call's id
post() {
	local body resp
	body=$(jq -cn --arg to "$2" --arg nb "$3" \
	    '{to: $to, say: "Cancel me.", not_before: $nb}')
	resp=$(RQ_KEY=$1 rq_api POST /v1/calls \
	    -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST: $(rq_last_code) $resp"
	jq -er .id <<<"$resp"
}

expect() {	# expect CODE [ERROR_CODE] [FIELD]: checks the last answer
	local got
	got=$(rq_last_code)
	[ "$got" = "$1" ] || rq_fail "expected HTTP $1, got $got: $BODY"
	if [ -n "${2:-}" ]; then
		[ "$(jq -r .error.code <<<"$BODY")" = "$2" ] ||
		    rq_fail "expected error $2: $BODY"
	fi
	if [ -n "${3:-}" ]; then
		[ "$(jq -r .error.field <<<"$BODY")" = "$3" ] ||
		    rq_fail "expected field $3: $BODY"
	fi
}

# --- cancel a call that waits, then let its time pass ------------------------
soon=$(post "$RQ_KEY" "$BARESIP_URI" "$(iso_in 3)")
later=$(post "$RQ_KEY" "$BARESIP_URI" "$(iso_in 3600)")
echo "calls $soon (in 3 s) and $later (in 1 h)"

BODY=$(RQ_KEY=$OTHER_KEY rq_api DELETE "/v1/calls/$soon")
expect 404 not_found
BODY=$(rq_api DELETE "/v1/calls/c_000000000000000000000000")
expect 404 not_found
BODY=$(rq_api DELETE "/v1/calls/nonsense")
expect 404 not_found

for id in "$soon" "$later"; do
	BODY=$(rq_api DELETE "/v1/calls/$id")
	expect 200
	jq -e --arg id "$id" '.id == $id and .status == "canceled" and
	    .reason == "canceled_by_request" and
	    any(.events[]; .status == "canceled")' <<<"$BODY" >/dev/null ||
	    rq_fail "DELETE answer: $BODY"
	BODY=$(rq_api DELETE "/v1/calls/$id")
	expect 409 already_ended
done
BODY=$(rq_api GET "/v1/calls/$later")
[ "$(jq -r .status <<<"$BODY")" = canceled ] || rq_fail "GET after DELETE: $BODY"
[ "$(rq_redis ZSCORE rq:delayed "$later")" = "" ] || rq_fail "$later still delayed"

pg_canceled() {
	[ "$(rq_psql "SELECT status || '/' || reason FROM calls WHERE id = '$1'")" = \
	    canceled/canceled_by_request ]
}
rq_wait_for 10 pg_canceled "$soon"
rq_wait_for 10 pg_canceled "$later"

# The time of $soon passes: it must not be dispatched.
sleep 5
BODY=$(rq_api GET "/v1/calls/$soon")
jq -e '.status == "canceled" and .attempts == 0 and
    all(.events[]; .status == "queued" or .status == "canceled")' \
    <<<"$BODY" >/dev/null || rq_fail "canceled call moved on: $BODY"
[ "$(rq_psql "SELECT count(*) FROM call_events WHERE call_id = '$soon' AND status NOT IN ('queued', 'canceled')")" = 0 ] ||
    rq_fail "$soon has events after its cancel in PostgreSQL"
echo "cancel: ok"

# --- a call an older version began: part of its timeline in rq:timeline: ------
# Its entries show with those in the job (docs/operations.md), once each: the
# job's own where both have one.
q=$(rq_redis HGET "rq:job:$later" 0:queued | jq .ts_ms)
[ -n "$q" ] || rq_fail "no 0:queued entry in rq:job:$later"
rq_redis HSET "rq:timeline:$later" \
    0:queued '{"status":"queued","attempt":0,"ts_ms":1}' \
    0:scheduled "{\"status\":\"scheduled\",\"attempt\":0,\"ts_ms\":$((q + 1))}" \
    >/dev/null
BODY=$(rq_api GET "/v1/calls/$later")
jq -e '[.events[].status] == ["queued", "scheduled", "canceled"] and
    (.events[0].at | startswith("1970") | not) and .status == "canceled"' \
    <<<"$BODY" >/dev/null || rq_fail "a timeline in two places: $BODY"
# That key of another type (an operator's mistake) hides nothing, and a
# cancel, whose script reads it after its writes, still answers.
rq_redis SET "rq:timeline:$later" not-a-hash >/dev/null
BODY=$(rq_api GET "/v1/calls/$later")
expect 200
jq -e '[.events[].status] == ["queued", "canceled"]' <<<"$BODY" >/dev/null ||
    rq_fail "a broken legacy timeline: $BODY"
broken=$(post "$RQ_KEY" "$BARESIP_URI" "$(iso_in 3600)")
rq_redis SET "rq:timeline:$broken" not-a-hash >/dev/null
BODY=$(rq_api PATCH "/v1/calls/$broken" -d '{"priority": 2}')
expect 200
BODY=$(rq_api DELETE "/v1/calls/$broken")
expect 200
jq -e '.status == "canceled"' <<<"$BODY" >/dev/null ||
    rq_fail "DELETE with a broken legacy timeline: $BODY"
echo "timeline of an older version: ok"

# --- a completed call cannot be canceled --------------------------------------
# (and one canceled at once, with a not_after 6 s away, is past it soon
# after the call below has ended)
resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$(jq -cn \
    --arg to "$BARESIP_URI" --arg nb "$(iso_in 4)" --arg na "$(iso_in 6)" \
    '{to: $to, say: "Gone.", not_before: $nb, not_after: $na}')")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST with not_after in 6 s: $resp"
gone=$(jq -er .id <<<"$resp")
BODY=$(rq_api DELETE "/v1/calls/$gone")
expect 200
now=$(post "$RQ_KEY" "$BARESIP_URI" "$(iso_in 0)")
call=$(rq_wait_call "$now" 60)
[ "$(jq -r .status <<<"$call")" = completed ] || rq_fail "call $now: $call"
BODY=$(rq_api DELETE "/v1/calls/$now")
expect 409 already_ended
BODY=$(rq_api PATCH "/v1/calls/$now" -d '{"priority": 1}')
expect 409 already_ended
BODY=$(rq_api PATCH "/v1/calls/$now" -d "{\"not_before\": \"$(iso_in 600)\"}")
expect 409 already_ended
# an ended call past its not_after: ended, not outside its window
while [ "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \< "$(jq -r .not_after <<<"$resp")" ]; do
	sleep 0.2
done
sleep 1
BODY=$(rq_api PATCH "/v1/calls/$gone" -d "{\"not_before\": \"$(iso_in 600)\"}")
expect 409 already_ended
echo "completed: 409 ok"

# --- PATCH: move a waiting call ----------------------------------------------
# A call an hour away, with a window until two hours from now.
resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$(jq -cn \
    --arg to "$BARESIP_URI" --arg nb "$(iso_in 3600)" --arg na "$(iso_in 7200)" \
    '{to: $to, say: "Moved.", not_before: $nb, not_after: $na}')")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST with not_after: $resp"
jq -e '.not_after != null' <<<"$resp" >/dev/null || rq_fail "no not_after: $resp"
moved=$(jq -er .id <<<"$resp")
BODY=$(rq_api GET "/v1/calls/$moved")
jq -e '.not_after != null and .status == "queued"' <<<"$BODY" >/dev/null ||
    rq_fail "GET with not_after: $BODY"

BODY=$(RQ_KEY=$OTHER_KEY rq_api PATCH "/v1/calls/$moved" -d '{"priority": 9}')
expect 404 not_found
BODY=$(rq_api PATCH "/v1/calls/c_000000000000000000000000" -d '{"priority": 9}')
expect 404 not_found
BODY=$(rq_api PATCH "/v1/calls/$moved" -d '{"say": "no"}')
expect 400 unknown_field say
BODY=$(rq_api PATCH "/v1/calls/$moved" -d '{"priority": 10}')
expect 400 invalid_field priority
BODY=$(rq_api PATCH "/v1/calls/$moved" -d '{}')
expect 400 missing_field
BODY=$(rq_api PATCH "/v1/calls/$moved" -d '[')
expect 400 invalid_json
BODY=$(rq_api PATCH "/v1/calls/$moved" -d "{\"not_before\": \"$(iso_in 7300)\"}")
expect 422 outside_window not_before
# a local time needs the callee's zone: a SIP address has none
BODY=$(rq_api PATCH "/v1/calls/$moved" -d '{"not_before": "2030-01-01T10:00:00"}')
expect 400 time_zone_required time_zone

BODY=$(rq_api PATCH "/v1/calls/$moved" -d '{"priority": 8}')
expect 200
jq -e --arg id "$moved" '.id == $id and .priority == 8 and .status == "queued"' \
    <<<"$BODY" >/dev/null || rq_fail "PATCH priority: $BODY"
[ "$(rq_redis HGET "rq:job:$moved" priority)" = 8 ] || rq_fail "priority not stored"
# now in 2 s: it is placed then, without waiting the hour
BODY=$(rq_api PATCH "/v1/calls/$moved" -d "{\"not_before\": \"$(iso_in 2)\"}")
expect 200
jq -e '.priority == 8 and .policy.decision == "accept"' <<<"$BODY" >/dev/null ||
    rq_fail "PATCH not_before: $BODY"
[ -n "$(rq_redis ZSCORE rq:delayed "$moved")" ] || rq_fail "$moved not in rq:delayed"
call=$(rq_wait_call "$moved" 60)
[ "$(jq -r .status <<<"$call")" = completed ] || rq_fail "moved call: $call"
BODY=$(rq_api PATCH "/v1/calls/$moved" -d '{"priority": 2}')
expect 409 already_ended
# a canceled call cannot be moved either
BODY=$(rq_api PATCH "/v1/calls/$later" -d '{"priority": 2}')
expect 409 already_ended
echo "patch: ok"

# --- list: 120 calls of the tenant "lister" in pages of 50 --------------------
for ((i = 0; i < 120; i++)); do
	post "$LIST_KEY" "+1555000$(printf %04d $i)" "$(iso_in 3600)"
done > "$T/ids"
[ "$(sort -u "$T/ids" | wc -l)" = 120 ] || rq_fail "not 120 distinct ids"
for id in $(head -n 7 "$T/ids"); do
	BODY=$(RQ_KEY=$LIST_KEY rq_api DELETE "/v1/calls/$id")
	expect 200
done

: > "$T/listed"
cursor=""
pages=""
for ((p = 0; p < 10; p++)); do
	q="limit=50"
	[ -n "$cursor" ] && q="$q&cursor=$cursor"
	BODY=$(RQ_KEY=$LIST_KEY rq_api GET "/v1/calls?$q")
	expect 200
	jq -r '.calls[].id' <<<"$BODY" >> "$T/listed"
	pages="$pages $(jq '.calls | length' <<<"$BODY")"
	cursor=$(jq -r '.next_cursor // empty' <<<"$BODY")
	[ -n "$cursor" ] || break
done
echo "pages:$pages"
[ "$pages" = " 50 50 20" ] || rq_fail "pages of$pages, not 50 50 20"
[ "$(sort -u "$T/listed" | wc -l)" = 120 ] || rq_fail "duplicates or gaps in the pages"
diff <(sort "$T/ids") <(sort "$T/listed") >/dev/null || rq_fail "listed ids differ"
# newest first
[ "$(head -n 1 "$T/listed")" = "$(tail -n 1 "$T/ids")" ] || rq_fail "not newest first"

BODY=$(RQ_KEY=$LIST_KEY rq_api GET "/v1/calls?status=canceled&limit=200")
expect 200
[ "$(jq '.calls | length' <<<"$BODY")" = 7 ] || rq_fail "status=canceled: $BODY"
jq -e 'all(.calls[]; .status == "canceled" and .reason == "canceled_by_request")
    and .next_cursor == null' <<<"$BODY" >/dev/null || rq_fail "filter: $BODY"
BODY=$(RQ_KEY=$LIST_KEY rq_api GET "/v1/calls?status=queued&limit=200")
[ "$(jq '.calls | length' <<<"$BODY")" = 113 ] || rq_fail "status=queued: $(jq '.calls | length' <<<"$BODY")"
# a call that has not moved yet: no attempt, updated when created
jq -e 'all(.calls[]; .attempts == 0 and .updated_at == .created_at)' \
    <<<"$BODY" >/dev/null || rq_fail "queued calls' attempts and updated_at: $BODY"
BODY=$(RQ_KEY=$LIST_KEY rq_api GET "/v1/calls?since=$(iso_in 60)")
expect 200
[ "$(jq '.calls | length' <<<"$BODY")" = 0 ] || rq_fail "since in the future: $BODY"
BODY=$(RQ_KEY=$LIST_KEY rq_api GET "/v1/calls")
[ "$(jq '.calls | length' <<<"$BODY")" = 50 ] || rq_fail "default limit is not 50"
# A tenant sees only its own calls.
BODY=$(RQ_KEY=$OTHER_KEY rq_api GET "/v1/calls")
jq -e '.calls == [] and .next_cursor == null' <<<"$BODY" >/dev/null ||
    rq_fail "another tenant's list: $BODY"
echo "list: ok"

# --- lists per second (list_per_second = 2): five at once, then later -------
codes=
for i in 1 2 3 4 5; do
	codes+=" $(curl -sS -o "$T/slow$i.body" -D "$T/slow$i.head" -w '%{http_code}' \
	    -H "Authorization: Bearer $SLOW_KEY" "$RQ_API/v1/calls")"
done
ok=$(grep -o 200 <<<"$codes" | wc -l)
(( ok >= 2 && ok <= 4 )) || rq_fail "five lists at 2 a second: $codes"
i=$(( $(tr ' ' '\n' <<<"${codes# }" | grep -n 429 | head -n 1 | cut -d: -f1) ))
(( i > 0 )) || rq_fail "no list refused: $codes"
jq -e '.error.code == "rate_limited"' "$T/slow$i.body" >/dev/null &&
    grep -qi '^Retry-After: 1' "$T/slow$i.head" ||
    rq_fail "a refused list: $(cat "$T/slow$i.head" "$T/slow$i.body")"
sleep 1.1
BODY=$(RQ_KEY=$SLOW_KEY rq_api GET "/v1/calls")
[ "$(rq_last_code)" = 200 ] || rq_fail "a list a second later: $(rq_last_code) $BODY"
echo "lists per second: ok ($codes)"

# --- bad parameters -----------------------------------------------------------
for q in "limit=0:limit" "limit=201:limit" "limit=ten:limit" \
    "status=done:status" "since=yesterday:since" "cursor=bm9wZQ:cursor" \
    "limit=5&limit=6:limit"; do
	BODY=$(RQ_KEY=$LIST_KEY rq_api GET "/v1/calls?${q%:*}")
	expect 400 invalid_parameter "${q##*:}"
done
BODY=$(RQ_KEY=$LIST_KEY rq_api GET "/v1/calls?order=asc")
expect 400 unknown_parameter order
BODY=$(RQ_KEY=nope rq_api GET "/v1/calls")
expect 401 unauthorized
BODY=$(rq_api PUT "/v1/calls")
expect 405 method_not_allowed
BODY=$(rq_api PATCH "/v1/calls")
expect 405 method_not_allowed
echo "bad parameters: ok"

rq_stop_daemon telserver
rq_stop_daemon dispatcher
rq_stop_daemon scheduler

# --- a stop waits for Redis's answers -----------------------------------------
# A request Redis has when the gateway is told to stop (held there by CLIENT
# PAUSE) gets its 202, not a "may or may not be queued" 503 that a client
# without an idempotency key would retry; a new request on a connection
# kept alive meanwhile is refused cleanly (503, nothing done).
printf '%s\n' \
    'import http.client, json, os, sys, time' \
    'port, key, to, nb, go = sys.argv[1:6]' \
    'c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)' \
    'c.request("GET", "/healthz")' \
    'r = c.getresponse(); r.read()' \
    'print(r.status, flush=True)' \
    'while not os.path.exists(go):' \
    '    time.sleep(0.05)' \
    'c.request("POST", "/v1/calls", json.dumps({"to": to, "not_before": nb}),' \
    '          {"Authorization": "Bearer " + key,' \
    '           "Content-Type": "application/json"})' \
    'r = c.getresponse()' \
    'print(r.status, r.getheader("Connection"), r.read().decode(), flush=True)' \
    > "$T/keepalive.py"
python3 "$T/keepalive.py" "${RQ_API##*:}" "$RQ_KEY" "$BARESIP_URI" \
    "$(iso_in 3600)" "$T/go" > "$T/keepalive.out" 2>&1 &
KEPT=$!
rq_wait_for 10 grep -q '^200' "$T/keepalive.out"
rq_redis CLIENT PAUSE 5000 WRITE >/dev/null
curl -sS -m 10 -o "$T/stop.body" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $RQ_KEY" -H 'Content-Type: application/json' \
    -d "$(jq -cn --arg to "$BARESIP_URI" --arg nb "$(iso_in 3600)" \
    '{to: $to, say: "Stopping.", not_before: $nb}')" "$RQ_API/v1/calls" \
    > "$T/stop.code" &
CURL=$!
rq_wait_for 5 rq_create_held
kill -TERM "$(rq_pid gateway)"
rq_wait_for 5 grep -q "waiting up to 3000 ms for Redis's answers" "$T/gateway.log"
touch "$T/go"
wait "$KEPT" || rq_fail "the kept-alive client: $(cat "$T/keepalive.out")"
grep -q '^503 close .*The gateway is stopping; nothing was done' \
    "$T/keepalive.out" ||
    rq_fail "a request on a kept-alive connection during the stop: $(cat "$T/keepalive.out")"
rq_redis CLIENT UNPAUSE >/dev/null
wait "$CURL" || rq_fail "no answer to a request in flight at a stop"
[ "$(cat "$T/stop.code")" = 202 ] ||
    rq_fail "a request in flight at a stop: $(cat "$T/stop.code") $(cat "$T/stop.body")"
stopped=$(jq -er .id "$T/stop.body")
[ "$(rq_redis HGET "rq:job:$stopped" status)" = queued ] ||
    rq_fail "the call answered 202 at a stop is not queued"
rq_stop_daemon gateway
echo "a stop answers what Redis has, and refuses new work: ok"

rq_stop_daemon accounting
rq_check_sanitizers
echo PASS

#!/usr/bin/env bash
# The policy engine through the real gateway: invalid and premium
# destinations, allowed prefixes, do-not-call (tenant list over HTTP, a
# customer's opt-out, a 10,000-line import with ringq-dnc), calling hours
# deferred to the callee's local time (a call due now is announced to the
# schedulers, a deferred one is not), a rate limit, a concurrency limit and
# Idempotency-Key.  Refused requests must leave no job.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need jq curl redis-cli python3

HOURS_KEY="rq_hours_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
RATE_KEY="rq_rate_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
UK_KEY="rq_uk_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
CONC_KEY="rq_conc_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
ONE_KEY="rq_one_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# Calling hours that exclude the present moment in Berlin: a one-hour
# window opening two hours from now, local time.
BERLIN_NOW=$(TZ=Europe/Berlin date +%s)
OPEN=$(TZ=Europe/Berlin date -d "@$((BERLIN_NOW + 7200))" +%H:%M)
CLOSE=$(TZ=Europe/Berlin date -d "@$((BERLIN_NOW + 10800))" +%H:%M)

rq_start_redis
rq_write_config <<EOF
[gateway]
optout_secret = s3cret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

[tenant hours]
key_sha256 = $(rq_sha256 "$HOURS_KEY")
calling_hours = $OPEN-$CLOSE

[tenant rate]
key_sha256 = $(rq_sha256 "$RATE_KEY")
rate_per_second = 5

[tenant uk]
key_sha256 = $(rq_sha256 "$UK_KEY")
allowed_prefixes = +44, +353

[tenant conc]
key_sha256 = $(rq_sha256 "$CONC_KEY")
max_concurrent = 2

[tenant one]
key_sha256 = $(rq_sha256 "$ONE_KEY")
max_concurrent = 1
EOF
rq_start_daemon gateway

ncalls() { rq_redis zcard "rq:calls:$1"; }

# post TENANT_KEY TO [extra JSON members] [curl args]: POST /v1/calls.
post() {
	local key=$1 to=$2 extra=${3:-}
	shift 3 || shift $#
	RQ_KEY=$key rq_api POST /v1/calls -H 'Content-Type: application/json' \
	    -d "{\"to\":\"$to\",\"say\":\"policy test\"$extra}" "$@"
}

expect() {	# expect CODE ERROR_CODE BODY
	local code
	code=$(rq_last_code)
	[ "$code" = "$1" ] || rq_fail "expected HTTP $1, got $code: $3"
	if [ -n "$2" ]; then
		[ "$(jq -r .error.code <<<"$3")" = "$2" ] ||
		    rq_fail "expected error $2: $3"
	fi
}

# --- pure checks ---------------------------------------------------------
before=$(ncalls demo)
body=$(post "$RQ_KEY" +99912345678 "")
expect 400 invalid_field "$body"
[ "$(jq -r .error.field <<<"$body")" = to ] || rq_fail "no field: $body"
body=$(post "$RQ_KEY" +4420718387 "")		# one digit short for GB
expect 400 invalid_field "$body"
body=$(post "$RQ_KEY" +19005551234 "")		# NANP premium rate
expect 403 destination_not_allowed "$body"
body=$(post "$RQ_KEY" +448712345678 "")	# GB 087x revenue share
expect 403 destination_not_allowed "$body"
body=$(post "$UK_KEY" +15551234567 "")
expect 403 destination_not_allowed "$body"
body=$(post "$UK_KEY" +442071838750 "")
expect 202 "" "$body"
[ "$(jq -r .policy.decision <<<"$body")" = accept ] || rq_fail "no accept: $body"
[ "$(ncalls demo)" = "$before" ] || rq_fail "a refused request left a job"
echo "ok: E.164 validity, premium rate, allowed prefixes"

# --- do-not-call ---------------------------------------------------------
DNC=+15551230000
body=$(rq_api PUT "/v1/dnc/$DNC"); expect 200 "" "$body"
body=$(rq_api GET "/v1/dnc/%2B15551230000"); expect 200 "" "$body"
[ "$(jq -c .lists <<<"$body")" = '["tenant"]' ] || rq_fail "lookup: $body"
before=$(ncalls demo)
body=$(post "$RQ_KEY" "$DNC" ""); expect 403 do_not_call "$body"
[ "$(ncalls demo)" = "$before" ] || rq_fail "a DNC number got a job"
# another tenant's list does not bind this one... but a customer's opt-out
# binds everyone
body=$(post "$UK_KEY" +442071838751 ""); expect 202 "" "$body"
body=$(RQ_KEY=$RATE_KEY rq_api POST /v1/optout -d '{"number":"+44 20 7183 8751"}')
expect 200 "" "$body"
body=$(post "$UK_KEY" +442071838751 ""); expect 403 do_not_call "$body"
# off the tenant's list, still on the customers': still listed, and refused
body=$(RQ_KEY=$UK_KEY rq_api PUT "/v1/dnc/+442071838751"); expect 200 "" "$body"
body=$(RQ_KEY=$UK_KEY rq_api DELETE "/v1/dnc/+442071838751"); expect 200 "" "$body"
jq -e '.removed == true and .listed == true and .lists == ["customer"]' \
    <<<"$body" >/dev/null || rq_fail "DELETE of a number a customer opted out: $body"
body=$(post "$UK_KEY" +442071838751 ""); expect 403 do_not_call "$body"
body=$(rq_api DELETE "/v1/dnc/$DNC"); expect 200 "" "$body"
jq -e '.removed == true and .listed == false and .lists == []' <<<"$body" >/dev/null ||
    rq_fail "DELETE: $body"
body=$(post "$RQ_KEY" "$DNC" ""); expect 202 "" "$body"
body=$(rq_api PUT "/v1/dnc/12345"); expect 400 invalid_field "$body"
# the customer's own signed link
body=$(rq_api GET "/v1/dnc/+15557770000"); expect 200 "" "$body"
[ "$(jq -r .listed <<<"$body")" = false ] || rq_fail "listed: $body"
link=$(jq -r .optout_link <<<"$body")
case $link in /optout\?n=%2B15557770000\&sig=*) ;; *) rq_fail "link: $body" ;; esac
# flip the signature's last hex digit (setting it could leave it as it was)
case ${link: -1} in 0) tampered=${link%?}1 ;; *) tampered=${link%?}0 ;; esac
code=$(curl -sS -o /dev/null -w '%{http_code}' "$RQ_API$tampered")
[ "$code" = 403 ] || rq_fail "a tampered link gave $code"
[ "$(rq_redis sismember rq:dnc:customer +15557770000)" = 0 ] || rq_fail "tampered link listed"
code=$(curl -sS -o "$T/page" -w '%{http_code}' "$RQ_API$link")
[ "$code" = 200 ] && grep -q "not be called again" "$T/page" || rq_fail "link gave $code"
body=$(post "$RQ_KEY" +15557770000 ""); expect 403 do_not_call "$body"
# who opted out and when: the link; the API, by this or another account
body=$(rq_api GET "/v1/dnc/+15557770000"); expect 200 "" "$body"
[ "$(jq -r .customer_optout.by <<<"$body")" = link ] || rq_fail "opt-out by: $body"
jq -e '.customer_optout.at | test("^20[0-9-]+T")' <<<"$body" >/dev/null || rq_fail "opt-out at: $body"
body=$(rq_api GET "/v1/dnc/+442071838751"); expect 200 "" "$body"
[ "$(jq -r .customer_optout.by <<<"$body")" = another_account ] || rq_fail "opt-out by: $body"
body=$(RQ_KEY=$RATE_KEY rq_api GET "/v1/dnc/+442071838751"); expect 200 "" "$body"
[ "$(jq -r .customer_optout.by <<<"$body")" = this_account ] || rq_fail "opt-out by: $body"
case $(rq_redis hget rq:dnc:customer:meta +442071838751) in
"tenant=rate at="[0-9]*) ;; *) rq_fail "meta: $(rq_redis hget rq:dnc:customer:meta +442071838751)" ;; esac
# the operator removes a customer opt-out
echo "+15557770000" | "$RQ_BUILD/gateway/ringq-dnc" -f "$RQ_CONF" -c -r -q - > "$T/rm.out" ||
    rq_fail "ringq-dnc -c -r failed"
grep -q "1 removed" "$T/rm.out" || rq_fail "ringq-dnc -c -r: $(cat "$T/rm.out")"
[ "$(rq_redis hexists rq:dnc:customer:meta +15557770000)" = 0 ] || rq_fail "meta left behind"
body=$(rq_api GET "/v1/dnc/+15557770000"); expect 200 "" "$body"
[ "$(jq -r .listed <<<"$body")" = false ] || rq_fail "still listed: $body"
[ "$(jq -r .customer_optout <<<"$body")" = null ] || rq_fail "record left: $body"
echo "ok: do-not-call lists (tenant, customer opt-out by API and by signed link, who and when, operator removal)"

# --- ringq-dnc: 10,000 numbers ------------------------------------------
{
	echo "number,name"
	for ((i = 0; i < 10000; i++)); do
		printf '+1555200%04d,customer %d\n' "$i" "$i"
	done
	echo "not-a-number,bad"
} > "$T/dnc.csv"
"$RQ_BUILD/gateway/ringq-dnc" -f "$RQ_CONF" -t demo "$T/dnc.csv" \
    > "$T/dnc.out" 2> "$T/dnc.err" || rq_fail "ringq-dnc failed: $(cat "$T/dnc.err")"
grep -q '100%' "$T/dnc.err" || rq_fail "no progress line: $(cat "$T/dnc.err")"
grep -q "line 10002" "$T/dnc.err" || rq_fail "bad line not reported"
[ "$(rq_redis scard rq:dnc:tenant:demo)" = 10000 ] ||
    rq_fail "import: $(rq_redis scard rq:dnc:tenant:demo) numbers"
cat "$T/dnc.out"
# (a call due now is announced on rq:due for the schedulers; one deferred
# by the policy below is not)
redis-cli -p "$REDIS_PORT" SUBSCRIBE rq:due > "$T/due.out" &
DUE_SUB=$!
sleep 0.3
body=$(post "$RQ_KEY" +15552007777 ""); expect 403 do_not_call "$body"
body=$(post "$RQ_KEY" +15552017777 ""); expect 202 "" "$body"
due_id=$(jq -r .id <<<"$body")
echo "ok: ringq-dnc imported 10,000 numbers"

# --- calling hours: deferred to the next local opening -------------------
# expected: today's (Berlin) OPEN, or tomorrow's when it has passed
exp=$(TZ=Europe/Berlin date -d "today $OPEN" +%s)
[ "$exp" -gt "$BERLIN_NOW" ] || exp=$(TZ=Europe/Berlin date -d "tomorrow $OPEN" +%s)
body=$(post "$HOURS_KEY" +493012345678 "")
expect 202 "" "$body"
[ "$(jq -r .policy.decision <<<"$body")" = defer ] || rq_fail "not deferred: $body"
[ "$(jq -c .policy.reasons <<<"$body")" = '["calling_hours"]' ] || rq_fail "reasons: $body"
got=$(date -d "$(jq -r .not_before <<<"$body")" +%s)
[ "$got" = "$exp" ] || rq_fail "deferred to $got, expected $exp ($OPEN Berlin): $body"
id=$(jq -r .id <<<"$body")
[ "$(rq_redis hget "rq:job:$id" policy)" = defer:calling_hours ] || rq_fail "job policy"
# the job keeps its hours, and when the window it was planned in closes
# (the take defers the call rather than dial after it: test_hours.sh)
[ "$(rq_redis hget "rq:job:$id" hours)" = "c=$OPEN-$CLOSE Europe/Berlin" ] ||
    rq_fail "job hours: $(rq_redis hget "rq:job:$id" hours)"
[ "$(rq_redis hget "rq:job:$id" hours_until_ms)" = "$(( (exp + 3600) * 1000 ))" ] ||
    rq_fail "hours_until_ms $(rq_redis hget "rq:job:$id" hours_until_ms), want $(( (exp + 3600) * 1000 ))"
# (priority 5: its due ms alone, without the tie-break of docs/delivery.md)
[ "$(rq_redis zscore rq:delayed "$id")" = "${exp}000" ] || rq_fail "rq:delayed score"
# a Guam number (+1 671) keeps Guam's hours, not the mainland's: ten
# hours ahead of the mainland's spread, they would ring it at night
body=$(post "$HOURS_KEY" +16715550123 "")
expect 202 "" "$body"
gid=$(jq -r .id <<<"$body")
[ "$(rq_redis hget "rq:job:$gid" hours)" = "c=$OPEN-$CLOSE Pacific/Guam" ] ||
    rq_fail "a Guam number's hours: $(rq_redis hget "rq:job:$gid" hours)"
# A call due now after the deferred one: once its announcement is in, the
# deferred call's would be too, had it been made.
body=$(post "$RQ_KEY" +15552017777 ""); expect 202 "" "$body"
last_id=$(jq -r .id <<<"$body")
announced() { grep -qx "$last_id" "$T/due.out"; }
rq_wait_for 5 announced
kill "$DUE_SUB"
wait "$DUE_SUB" 2>/dev/null || true
grep -qx "$due_id" "$T/due.out" || rq_fail "the call due now was not announced on rq:due"
! grep -qx "$id" "$T/due.out" || rq_fail "a deferred call was announced on rq:due"
view=$(RQ_KEY=$HOURS_KEY rq_api GET "/v1/calls/$id")
[ "$(jq -r .policy.decision <<<"$view")" = defer ] || rq_fail "GET: $view"
# the same wall-clock window in Tokyo is another instant
body=$(post "$HOURS_KEY" +493012345678 ',"time_zone":"Asia/Tokyo"')
expect 202 "" "$body"
tok=$(date -d "$(jq -r .not_before <<<"$body")" +%s)
[ "$(TZ=Asia/Tokyo date -d "@$tok" +%H:%M)" = "$OPEN" ] ||
    rq_fail "Tokyo deferral at $(TZ=Asia/Tokyo date -d "@$tok" +%H:%M), not $OPEN"
body=$(post "$HOURS_KEY" +493012345678 ',"time_zone":"Mars/Olympus"')
expect 400 invalid_field "$body"
echo "ok: calling hours ($OPEN-$CLOSE Berlin) deferred to $(jq -r .not_before <<<"$view")"

# --- contact window and local times (issue 4) ----------------------------
# A window that closes before the hours open: refused, nothing queued.
before=$(ncalls hours)
na=$(date -u -d "@$((exp - 60))" +%Y-%m-%dT%H:%M:%SZ)
body=$(post "$HOURS_KEY" +493012345678 ",\"not_after\":\"$na\"")
expect 422 outside_window "$body"
[ "$(jq -r .error.field <<<"$body")" = not_after ] || rq_fail "field: $body"
[ "$(ncalls hours)" = "$before" ] || rq_fail "a refused window left a job"
# A time without offset is Berlin's (a +49 number has one zone).
local_at() { TZ=Europe/Berlin date -d "@$1" +%Y-%m-%dT%H:%M:%S; }
body=$(post "$HOURS_KEY" +493012345678 ",\"not_before\":\"$(local_at $((exp + 86400)))\"")
expect 202 "" "$body"
[ "$(date -d "$(jq -r .not_before <<<"$body")" +%s)" = $((exp + 86400)) ] ||
    rq_fail "local not_before: $body"
[ "$(jq -r .policy.decision <<<"$body")" = accept ] || rq_fail "local: $body"
id=$(jq -r .id <<<"$body")
# ... but a number of a country with several zones needs time_zone.
body=$(post "$RQ_KEY" +15551234567 ",\"not_before\":\"2030-01-01T10:00:00\"")
expect 400 time_zone_required "$body"
# PATCH into closed hours: deferred to the next opening, like a new call.
body=$(RQ_KEY=$HOURS_KEY rq_api PATCH "/v1/calls/$id" \
    -d "{\"not_before\":\"$(local_at $((exp + 86400 + 5400)))\",\"priority\":9}")
expect 200 "" "$body"
[ "$(jq -r .policy.decision <<<"$body")" = defer ] || rq_fail "PATCH: $body"
[ "$(date -d "$(jq -r .not_before <<<"$body")" +%s)" = $((exp + 2 * 86400)) ] ||
    rq_fail "PATCH deferred to $(jq -r .not_before <<<"$body")"
# (priority 9 now: 4/16 before its due ms, the tie-break)
[ "$(rq_redis zscore rq:delayed "$id")" = "$((exp + 2 * 86400 - 1))999.75" ] ||
    rq_fail "PATCH: rq:delayed score"
[ "$(rq_redis hget "rq:job:$id" hours_until_ms)" = "$(( (exp + 2 * 86400 + 3600) * 1000 ))" ] ||
    rq_fail "PATCH: hours_until_ms $(rq_redis hget "rq:job:$id" hours_until_ms)"
echo "ok: not_after, local times, PATCH through the calling hours"

# --- rate limit: 5 per second -------------------------------------------
burst() {
	# start just after a second boundary, 20 requests at once
	python3 -c 'import time; time.sleep(1.02 - time.time() % 1)'
	seq 20 | xargs -P 20 -I{} curl -s -o /dev/null -D "$T/h{}" -w '%{http_code}\n' \
	    -H "Authorization: Bearer $RATE_KEY" -H 'Content-Type: application/json' \
	    -d '{"to":"+15551234567","say":"flood"}' "$RQ_API/v1/calls" | sort | uniq -c
}
ok=0
for try in 1 2 3; do
	before=$(ncalls rate)
	out=$(burst)
	echo "burst $try: $(tr '\n' ' ' <<<"$out")"
	acc=$(awk '$2 == 202 { print $1 }' <<<"$out")
	lim=$(awk '$2 == 429 { print $1 }' <<<"$out")
	[ "$(( $(ncalls rate) - before ))" = "${acc:-0}" ] || rq_fail "jobs differ from 202s"
	if [ "${acc:-0}" = 5 ] && [ "${lim:-0}" = 15 ]; then
		ok=1
		break
	fi
	# a burst that straddled a second boundary may take 10: try again
	[ "${acc:-0}" -le 10 ] || rq_fail "rate limit let ${acc} through"
done
[ "$ok" = 1 ] || rq_fail "no burst gave exactly 5 accepted and 15 refused"
grep -qi '^Retry-After: 1' "$T"/h* || rq_fail "no Retry-After on 429"
echo "ok: rate_per_second=5: 5 accepted, 15 refused with 429"

# --- concurrency: 2 unfinished calls ------------------------------------
for n in 1 2; do
	body=$(post "$CONC_KEY" +1555123456$n ""); expect 202 "" "$body"
	eval "C$n=$(jq -r .id <<<"$body")"
done
body=$(post "$CONC_KEY" +15551234563 ""); expect 429 concurrency_limited "$body"
rq_redis hset "rq:job:$C1" status completed >/dev/null	# as accounting would
body=$(post "$CONC_KEY" +15551234563 ""); expect 202 "" "$body"
echo "ok: max_concurrent=2"
# a call deferred to tomorrow takes its slot tomorrow, not now
tomorrow=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
body=$(post "$ONE_KEY" +15551234561 ",\"not_before\":\"$tomorrow\""); expect 202 "" "$body"
D1=$(jq -r .id <<<"$body")
body=$(post "$ONE_KEY" +15551234562 ""); expect 202 "" "$body"
body=$(post "$ONE_KEY" +15551234563 ""); expect 429 concurrency_limited "$body"
[ "$(rq_redis zscore rq:active:one "$D1")" -gt "$(( $(date +%s) * 1000 + 80000000 ))" ] ||
    rq_fail "the deferred call's slot is not scored by its due time"
echo "ok: max_concurrent=1: a deferred call does not block an immediate one"

# --- Idempotency-Key ----------------------------------------------------
before=$(ncalls demo)
a=$(post "$RQ_KEY" +15551234567 "" -H 'Idempotency-Key: order-42'); expect 202 "" "$a"
b=$(post "$RQ_KEY" +15551234567 "" -H 'Idempotency-Key: order-42'); expect 202 "" "$b"
[ "$(jq -r .id <<<"$a")" = "$(jq -r .id <<<"$b")" ] || rq_fail "replay gave another id: $a $b"
[ "$(jq -r .replayed <<<"$b")" = true ] || rq_fail "replay not marked: $b"
[ "$(( $(ncalls demo) - before ))" = 1 ] || rq_fail "replay created a job"
# another tenant's key of the same name is another request
c=$(post "$UK_KEY" +442071838750 "" -H 'Idempotency-Key: order-42'); expect 202 "" "$c"
[ "$(jq -r .id <<<"$c")" != "$(jq -r .id <<<"$a")" ] || rq_fail "keys shared across tenants"
# stored in the tenant's hash of the (UTC) day, which expires at the end
# of the next day; no key of its own (it would have a TTL: common/keys.h)
day=$(( $(rq_redis TIME | head -1) / 86400 ))
bucket=rq:idem:demo:86400:$day
[ "$(rq_redis hget "$bucket" "$(rq_sha256 order-42)")" = "$(jq -r .id <<<"$a")" ] ||
    { bucket=rq:idem:demo:86400:$((day - 1))	# the test spanned midnight
      [ "$(rq_redis hget "$bucket" "$(rq_sha256 order-42)")" = "$(jq -r .id <<<"$a")" ]; } ||
    rq_fail "the key is not in the tenant's hash of the day"
rq_idem_hash_ok "$bucket"
[ "$(rq_redis exists "rq:idem:demo:$(rq_sha256 order-42)")" = 0 ] ||
    rq_fail "the key was stored as a key of its own"
# the e-mail intake's keys are mail:<Message-ID>: a client's key may not
# take one's place (and replay, or be replayed by, a message)
before=$(ncalls demo)
d=$(post "$RQ_KEY" +15551234567 "" -H 'Idempotency-Key: mail:<order-7@example.com>')
expect 400 invalid_header "$d"
[ "$(jq -r .error.field <<<"$d")" = Idempotency-Key ] || rq_fail "no field: $d"
[ "$(ncalls demo)" = "$before" ] || rq_fail "a refused key left a job"
echo "ok: Idempotency-Key"
# A key whose call has left Redis (an e-mail's key lives 7 days, a call
# ended under a short retention_days less) is still a replay: the copy
# gets the first id and rings nobody.
gone=c_00000000000000000000dead
rq_redis set "rq:idem:demo:$(rq_sha256 order-43)" "$gone" EX 600 >/dev/null
before=$(ncalls demo)
a=$(post "$RQ_KEY" +15551234567 "" -H 'Idempotency-Key: order-43'); expect 202 "" "$a"
[ "$(jq -r .id <<<"$a")" = "$gone" ] || rq_fail "not the first call's id: $a"
[ "$(jq -r .replayed <<<"$a")" = true ] || rq_fail "not marked as a replay: $a"
[ "$(ncalls demo)" = "$before" ] || rq_fail "a copy of a gone call was queued"
echo "ok: an idempotency key outlives its call's data, and still replays"
# A key stored yesterday is still a replay; one stored the day before is
# not (its hash expired at the end of yesterday: a key lives 24 to 48 h).
# Not across midnight (UTC), when yesterday would change under the test.
now=$(rq_redis TIME | head -1)
(( 86400 - now % 86400 > 10 )) || sleep $(( 86400 - now % 86400 + 1 ))
day=$(( $(rq_redis TIME | head -1) / 86400 ))
rq_redis hset "rq:idem:demo:86400:$((day - 1))" "$(rq_sha256 order-44)" "$gone" >/dev/null
rq_redis hset "rq:idem:demo:86400:$((day - 2))" "$(rq_sha256 order-45)" "$gone" >/dev/null
before=$(ncalls demo)
a=$(post "$RQ_KEY" +15551234567 "" -H 'Idempotency-Key: order-44'); expect 202 "" "$a"
[ "$(jq -r .id <<<"$a")" = "$gone" ] || rq_fail "yesterday's key: not a replay: $a"
[ "$(ncalls demo)" = "$before" ] || rq_fail "yesterday's key queued a call"
a=$(post "$RQ_KEY" +15551234567 "" -H 'Idempotency-Key: order-45'); expect 202 "" "$a"
[ "$(jq -r .id <<<"$a")" != "$gone" ] && [ "$(jq -r .replayed <<<"$a")" != true ] ||
    rq_fail "a key of two days ago replayed: $a"
[ "$(( $(ncalls demo) - before ))" = 1 ] || rq_fail "a key of two days ago: no call"
echo "ok: idempotency keys by the day: yesterday's replays, the day before's does not"

rq_stop_daemon gateway
rq_check_sanitizers
echo "test_policy: ok"

#!/usr/bin/env bash
# The gateway against the JSONTestSuite corpus and its own edge cases: every
# corpus file is POSTed as a /v1/calls body; y_ may be accepted (202) or
# refused (400) but never 5xx, n_ must be 400 (413 when too large) with a
# JSON error, i_ anything but 5xx; no n_ file may create a job.  Then
# authentication, size limit, tenant isolation, Redis outage and a client
# that leaves before Redis answers.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

CORPUS=${RINGQ_CORPORA:-$RQ_SOURCE/../shared/corpora}/json
[ -d "$CORPUS" ] ||
    rq_fail "no JSON corpus at $CORPUS (shared/corpora beside the checkout, or RINGQ_CORPORA)"
rq_need jq curl

OTHER_KEY="rq_other_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
rq_start_redis
rq_write_config <<EOF
[tenant other]
key_sha256 = $(rq_sha256 "$OTHER_KEY")
allow_sip = no
EOF
rq_start_daemon gateway
MAX_BODY=65536

ncalls() {
	rq_redis zcard rq:calls:demo
}
ncalls_is() {
	[ "$(ncalls)" = "$1" ]
}

# --- the corpus, one curl process for all files ----------------------------
mkdir -p "$T/out"
: > "$T/curl.cfg"
n=0
for f in "$CORPUS"/*.json; do
	name=${f##*/}
	# curl config strings: escape backslashes and double quotes.
	q=$(printf '%s' "$f" | sed 's/\\/\\\\/g; s/"/\\"/g')
	cat >> "$T/curl.cfg" <<EOF
url = "$RQ_API/v1/calls"
header = "Authorization: Bearer $RQ_KEY"
header = "Content-Type: application/json"
header = "Expect:"
data-binary = "@$q"
output = "$T/out/$n"
write-out = "$n %{http_code}\\n"
next
EOF
	printf '%s\t%s\t%s\n' "$n" "$name" "$(stat -c %s "$f")" >> "$T/index"
	n=$((n + 1))
done
[ "$n" -gt 300 ] || rq_fail "only $n corpus files in $CORPUS"

before=$(ncalls)
start=$(date +%s)
curl -sS -m 20 -K "$T/curl.cfg" > "$T/codes" 2>"$T/curl.err" || true
echo "corpus: $n requests in $(( $(date +%s) - start ))s"

declare -A CODE=()
while read -r i code; do
	CODE[$i]=$code
done < "$T/codes"

accepted=0 bad=0 ny=0 nn=0 ni=0 y202=0
refused=()
while IFS=$'\t' read -r i name size; do
	code=${CODE[$i]:-000}
	case $name in
	y_*)
		ny=$((ny + 1))
		case $code in
		202) accepted=$((accepted + 1)); y202=$((y202 + 1)) ;;
		400) ;;
		*) echo "y_ $name: HTTP $code"; bad=$((bad + 1)) ;;
		esac ;;
	n_*)
		nn=$((nn + 1))
		want=400
		[ "$size" -ge "$MAX_BODY" ] && want=413
		if [ "$code" != "$want" ]; then
			echo "n_ $name: HTTP $code, want $want"; bad=$((bad + 1))
		fi ;;
	i_*)
		ni=$((ni + 1))
		case $code in
		202) accepted=$((accepted + 1)) ;;
		400|413) ;;
		*) echo "i_ $name: HTTP $code"; bad=$((bad + 1)) ;;
		esac ;;
	*) continue ;;
	esac
	[ "$code" = 202 ] || refused+=("$T/out/$i")
done < "$T/index"
# Every refusal is a JSON error with a code and a message (one jq for all;
# file by file only to name the culprits).
if ! jq -n -e '[inputs | (.error.code | type == "string") and
    (.error.message | type == "string")] | all' "${refused[@]}" \
    >/dev/null 2>&1; then
	for f in "${refused[@]}"; do
		jq -e '.error.code and .error.message' "$f" >/dev/null 2>&1 ||
		    { echo "$(awk -v i="${f##*/}" '$1 == i { print $2 }' \
		    "$T/index"): no JSON error body"; bad=$((bad + 1)); }
	done
fi
echo "corpus: y_=$ny (202: $y202) n_=$nn i_=$ni, accepted $accepted, bad $bad"
[ "$bad" = 0 ] || rq_fail "$bad corpus files got a wrong answer"

after=$(ncalls)
[ $((after - before)) = "$accepted" ] ||
    rq_fail "rq:calls:demo grew by $((after - before)), but $accepted were accepted"

# The gateway survived it all.
rq_alive "$(rq_pid gateway)" || rq_fail "the gateway died during the corpus"
curl -sS -m 5 -o /dev/null -w '%{http_code}' "$RQ_API/healthz" | grep -qx 200 ||
    rq_fail "/healthz is not 200 after the corpus"

# --- authentication -------------------------------------------------------
valid='{"to": "+15551234567", "say": "Hello from the corpus test", "metadata": {"k": "v"}}'
before=$(ncalls)
code=$(curl -sS -m 5 -o "$T/r" -w '%{http_code}' -D "$T/h" \
    -H "Authorization: Bearer wrong-key" -d "$valid" "$RQ_API/v1/calls")
[ "$code" = 401 ] || rq_fail "wrong key: HTTP $code, want 401"
grep -qi '^WWW-Authenticate: Bearer' "$T/h" || rq_fail "401 without WWW-Authenticate"
jq -e '.error.code == "unauthorized"' "$T/r" >/dev/null || rq_fail "401 body: $(cat "$T/r")"
code=$(curl -sS -m 5 -o "$T/r" -w '%{http_code}' -d "$valid" "$RQ_API/v1/calls")
[ "$code" = 401 ] || rq_fail "missing key: HTTP $code, want 401"
[ "$(ncalls)" = "$before" ] || rq_fail "a refused request created a job"
grep -q "$RQ_KEY" "$T/gateway.log" && rq_fail "the gateway logged the API key"

# --- size limit -------------------------------------------------------------
python3 -c 'import sys; sys.stdout.write("{\"to\": \"+15551234567\", \"say\": \"" + "a" * 69970 + "\"}")' > "$T/big.json"
[ "$(stat -c %s "$T/big.json")" -ge 70000 ] || rq_fail "big.json is too small"
code=$(curl -sS -m 5 -o "$T/r" -w '%{http_code}' -H 'Expect:' \
    -H "Authorization: Bearer $RQ_KEY" --data-binary @"$T/big.json" "$RQ_API/v1/calls")
[ "$code" = 413 ] || rq_fail "70000-byte body: HTTP $code, want 413"
jq -e '.error.code == "too_large"' "$T/r" >/dev/null || rq_fail "413 body: $(cat "$T/r")"
[ "$(ncalls)" = "$before" ] || rq_fail "a too large request created a job"

# --- a call, read back; invisible to another tenant ------------------------
out=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$valid")
[ "$(rq_last_code)" = 202 ] || rq_fail "valid call: HTTP $(rq_last_code): $out"
id=$(jq -r .id <<<"$out")
[ "$(jq -r .status <<<"$out")" = queued ] || rq_fail "202 body: $out"
out=$(rq_api GET "/v1/calls/$id")
[ "$(rq_last_code)" = 200 ] || rq_fail "GET: HTTP $(rq_last_code): $out"
jq -e --arg id "$id" '.id == $id and .status == "queued" and
    .to == "+15551234567" and .priority == 5 and .attempts == 0 and
    .metadata.k == "v" and (.events | length) == 1 and
    .events[0].status == "queued" and .events[0].attempt == 0' \
    <<<"$out" >/dev/null || rq_fail "GET body: $out"
[ "$(rq_redis zscore rq:delayed "$id")" != "" ] || rq_fail "$id not in rq:delayed"
[ "$(rq_redis hget "rq:job:$id" 0:queued | jq -r .status)" = queued ] ||
    rq_fail "no 0:queued timeline entry for $id"
code=$(curl -sS -m 5 -o "$T/r" -w '%{http_code}' \
    -H "Authorization: Bearer $OTHER_KEY" "$RQ_API/v1/calls/$id")
[ "$code" = 404 ] || rq_fail "other tenant's GET: HTTP $code, want 404"
jq -e '.error.code == "not_found"' "$T/r" >/dev/null || rq_fail "404 body: $(cat "$T/r")"
# The other tenant may not call SIP URIs.
code=$(curl -sS -m 5 -o "$T/r" -w '%{http_code}' -H "Authorization: Bearer $OTHER_KEY" \
    -d '{"to": "sip:bob@example.com", "say": "hi"}' "$RQ_API/v1/calls")
[ "$code" = 403 ] && jq -e '.error.code == "policy" and .error.field == "to"' \
    "$T/r" >/dev/null || rq_fail "sip: for a tenant without allow_sip: HTTP $code $(cat "$T/r")"

# --- routing ----------------------------------------------------------------
code=$(curl -sS -m 5 -o "$T/r" -w '%{http_code}' "$RQ_API/nowhere")
[ "$code" = 404 ] && jq -e .error.code "$T/r" >/dev/null || rq_fail "unknown path: HTTP $code"
code=$(curl -sS -m 5 -o "$T/r" -w '%{http_code}' -D "$T/h" -X DELETE "$RQ_API/v1/calls")
[ "$code" = 405 ] && grep -qi "^Allow: POST" "$T/h" || rq_fail "DELETE /v1/calls: HTTP $code"

# --- a client that leaves before Redis answers ------------------------------
# Redis is frozen, the client gives up, then Redis answers: the gateway
# must answer a request whose connection is gone without touching freed
# memory (ASan runs this), and the job is stored all the same.
before=$(ncalls)
kill -STOP "$(rq_pid redis)"
curl -sS -m 1 -o /dev/null -H "Authorization: Bearer $RQ_KEY" -d "$valid" \
    "$RQ_API/v1/calls" 2>/dev/null && rq_fail "POST answered while Redis was frozen"
curl -sS -m 1 -o /dev/null -H "Authorization: Bearer $RQ_KEY" \
    "$RQ_API/v1/calls/$id" 2>/dev/null && rq_fail "GET answered while Redis was frozen"
kill -CONT "$(rq_pid redis)"
rq_wait_for 5 ncalls_is $((before + 1))
out=$(rq_api GET "/v1/calls/$id")
[ "$(rq_last_code)" = 200 ] || rq_fail "GET after the freeze: HTTP $(rq_last_code)"

# --- Redis frozen for longer than the gateway waits: 503, not a hang ----------
kill -STOP "$(rq_pid redis)"
start=$(date +%s)
rq_api GET "/v1/calls/$id" --max-time 15 > "$T/r" || true
kill -CONT "$(rq_pid redis)"
[ "$(rq_last_code)" = 503 ] || rq_fail "GET with Redis frozen: HTTP $(rq_last_code), want 503"
(( $(date +%s) - start <= 9 )) || rq_fail "the 503 took $(( $(date +%s) - start ))s"
healthy() {
	[ "$(curl -sS -m 2 -o /dev/null -w '%{http_code}' "$RQ_API/healthz")" = 200 ]
}
rq_wait_for 5 healthy
rq_api GET "/v1/calls/$id" > "$T/r"
[ "$(rq_last_code)" = 200 ] || rq_fail "GET after the long freeze: HTTP $(rq_last_code)"

# --- Redis down: 503, then back -----------------------------------------------
rq_stop_redis
code=$(curl -sS -m 5 -o "$T/r" -w '%{http_code}' "$RQ_API/healthz")
[ "$code" = 503 ] && jq -e '.status == "degraded" and .redis == "down"' "$T/r" \
    >/dev/null || rq_fail "healthz with Redis down: HTTP $code $(cat "$T/r")"
rq_api POST /v1/calls -d "$valid" > "$T/r"
[ "$(rq_last_code)" = 503 ] && jq -e '.error.code' "$T/r" >/dev/null ||
    rq_fail "POST with Redis down: HTTP $(rq_last_code)"
rq_api GET "/v1/calls/$id" > "$T/r"
[ "$(rq_last_code)" = 503 ] || rq_fail "GET with Redis down: HTTP $(rq_last_code)"
rq_restart_redis
rq_wait_for 5 healthy
rq_api POST /v1/calls -d "$valid" > "$T/r"
[ "$(rq_last_code)" = 202 ] || rq_fail "POST after Redis came back: HTTP $(rq_last_code)"

rq_stop_daemon gateway
rq_check_sanitizers
echo "PASS"

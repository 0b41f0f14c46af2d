#!/usr/bin/env bash
# Status callbacks through the real daemons: a local HTTP receiver gets
# queued .. completed for a real call to baresip, in order, each signed
# (checked with docs/api.md's openssl and Python recipes); a receiver that
# answers 500 twice gets the event on the third try; a receiver that is down
# does not slow the calls, and one tenant's that hangs does not hold the
# others' callbacks; without callbacks_allow_loopback nothing is sent
# to loopback; private, link-local (cloud metadata) and other non-public
# addresses are refused even with it, and a proxy in the environment is not
# used.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1
rq_need jq
rq_need curl
rq_need openssl

SECRET=whsec_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
HUNG_KEY="rq_hung_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
RX_PORT=$(rq_free_port)
DEAD_PORT=$(rq_free_port)
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
# The first lines continue [tenant demo].
rq_write_config <<EOF
callback_secret = $SECRET

[accounting]
callbacks_allow_loopback = yes

[tenant hung]
key_sha256 = $(rq_sha256 "$HUNG_KEY")
allow_sip = yes
callback_secret = $SECRET
EOF
rq_start_daemon accounting
rq_start_daemon gateway
rq_start_daemon scheduler
rq_start_daemon dispatcher
rq_start_daemon telserver
rq_start_baresip bob

# post TO CALLBACK_URL [NOT_BEFORE]: prints the new call's id
post() {
	local body resp
	body=$(jq -cn --arg to "$1" --arg cb "$2" --arg nb "${3:-}" \
	    '{to: $to, say: "Callback test.", callback_url: $cb,
	      metadata: {order: 42, note: "a/b \"c\""}}
	     + (if $nb != "" then {not_before: $nb} else {} end)')
	resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST: $(rq_last_code) $resp"
	jq -er .id <<<"$resp"
}

# received PATH: the statuses POSTed to PATH with a 200, in arrival order
received() {
	local f
	for f in "$RX"/*.path; do
		[ -f "$f" ] || continue
		[ "$(cat "$f")" = "$1" ] || continue
		[ "$(cat "${f%.path}.code")" = 200 ] || continue
		jq -r .status "${f%.path}.body"
	done | paste -sd' ' -
}
has_received() {	# has_received PATH "STATUSES"
	[ "$(received "$1")" = "$2" ]
}

# --- 1. a real call: queued .. completed, in order, signed --------------------
t0=$(rq_now_ms)
id=$(post "$BARESIP_URI" "http://127.0.0.1:$RX_PORT/ok/1")
call=$(rq_wait_call "$id" 60)
t1=$(rq_now_ms)
[ "$(jq -r .status <<<"$call")" = completed ] || rq_fail "call $id: $call"
first_ms=$(( t1 - t0 ))
want="queued scheduled dispatched ringing answered completed"
rq_wait_for 15 has_received /ok/1 "$want" ||
    rq_fail "callbacks for $id: '$(received /ok/1)', want '$want'"
echo "call $id: callbacks $(received /ok/1) ($(( t1 - t0 )) ms to complete)"

# Every request verified as docs/api.md says: openssl, then Python.
cat > "$T/verify.py" <<'EOF'
import hashlib, hmac, sys, time
def verify(secret, header, body, tolerance=300):
    parts = dict(p.split("=", 1) for p in header.split(","))
    t, sig = parts["t"], parts["v1"]
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256)
    if not hmac.compare_digest(mac.hexdigest(), sig):
        return False
    return abs(time.time() - int(t)) <= tolerance
secret, sigfile, bodyfile = sys.argv[1:4]
ok = verify(secret, open(sigfile).read(), open(bodyfile, "rb").read())
sys.exit(0 if ok else 1)
EOF
n=0
for f in "$RX"/*.path; do
	[ "$(cat "$f")" = /ok/1 ] || continue
	b=${f%.path}.body
	sig=$(cat "${f%.path}.sig")
	[[ $sig =~ ^t=([0-9]+),v1=([0-9a-f]{64})$ ]] || rq_fail "bad signature header '$sig'"
	t=${BASH_REMATCH[1]}
	v1=${BASH_REMATCH[2]}
	mac=$( { printf '%s.' "$t"; cat "$b"; } |
	    openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
	[ "$mac" = "$v1" ] || rq_fail "openssl: signature mismatch for $(cat "$b")"
	python3 "$T/verify.py" "$SECRET" "${f%.path}.sig" "$b" ||
	    rq_fail "python: signature refused for $(cat "$b")"
	# a wrong secret must not verify
	! python3 "$T/verify.py" "x$SECRET" "${f%.path}.sig" "$b" ||
	    rq_fail "a wrong secret verified"
	jq -e --arg id "$id" '.id == $id and (.at | type) == "string" and
	    (.attempt | type) == "number" and
	    .metadata == {order: 42, note: "a/b \"c\""}' "$b" >/dev/null ||
	    rq_fail "callback body: $(cat "$b")"
	n=$((n + 1))
done
[ "$n" = 6 ] || rq_fail "$n callbacks for $id, want 6 (duplicates?)"
jq -e '.status == "completed" and .attempt == 1' \
    "$(grep -l completed "$RX"/*.body | head -n 1)" >/dev/null ||
    rq_fail "completed callback"
echo "signatures: $n verified with openssl and python"

# --- 2. 500 twice, then 200: delivered on the third try -----------------------
flaky=$(post "$BARESIP_URI" "http://127.0.0.1:$RX_PORT/flaky/2" \
    "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)")
rq_wait_for 20 has_received /flaky/2 queued ||
    rq_fail "flaky receiver: '$(received /flaky/2)'"
tries=$(grep -lx /flaky/2 "$RX"/*.path | wc -l)
[ "$tries" = 3 ] || rq_fail "queued delivered after $tries requests, want 3"
# The next event waits for the one before: cancel now, canceled comes after.
rq_api DELETE "/v1/calls/$flaky" >/dev/null
[ "$(rq_last_code)" = 200 ] || rq_fail "DELETE $flaky: $(rq_last_code)"
rq_wait_for 10 has_received /flaky/2 "queued canceled" ||
    rq_fail "flaky receiver: '$(received /flaky/2)'"
grep -q "$flaky: callback queued: try 2 failed (HTTP 500)" "$T/accounting.log" ||
    rq_fail "no retry line in accounting.log"
echo "flaky receiver: queued on try 3, then canceled"

# --- 3. a receiver that is down does not slow calls ---------------------------
t0=$(rq_now_ms)
dead=$(post "$BARESIP_URI" "http://127.0.0.1:$DEAD_PORT/down")
call=$(rq_wait_call "$dead" 60)
t2=$(rq_now_ms)
[ "$(jq -r .status <<<"$call")" = completed ] || rq_fail "call $dead: $call"
echo "call $dead with a dead receiver: $(( t2 - t0 )) ms (the first: $first_ms ms)"
(( t2 - t0 < first_ms + 5000 )) || rq_fail "a dead receiver slowed the call"
dead_tried() {
	grep -q "$dead: callback queued: try 1 failed" "$T/accounting.log"
}
rq_wait_for 5 dead_tried || rq_fail "no failed try logged for $dead"
# Retries keep going (queued waits for its backoff; the rest wait behind).
[ "$(rq_redis LLEN "rq:cbq:$dead")" -ge 1 ] || rq_fail "dead receiver's queue is empty"

# --- 3b. one tenant's hung receiver leaves the others room --------------------
# A receiver that takes connections and never answers holds each try 10 s:
# the queued callbacks of 1,000 calls of tenant hung to it are at most 8
# deliveries at once (ACCT_CB_PER_TENANT), and the others wait outside the
# claims, so demo's, due behind them, is sent at once.
HUNG_PORT=$(rq_free_port)
python3 - "$HUNG_PORT" > "$T/hung.log" 2>&1 <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
EOF
rq_track hung $!
rq_wait_for 10 rq_tcp_listening "$HUNG_PORT"
hung_conns() { ss -Htn state established "( dport = :$HUNG_PORT )" | wc -l; }
soon=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
python3 - "$RQ_HTTP_PORT" "$HUNG_KEY" "$HUNG_PORT" "$BARESIP_URI" "$soon" \
    <<'EOF' || rq_fail "tenant hung's calls not all accepted"
import http.client, json, sys
port, key, hung, to, soon = sys.argv[1:6]
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
for i in range(1000):
    body = json.dumps({"to": to, "say": "Hung.", "not_before": soon,
                       "callback_url": "http://127.0.0.1:%s/h%d" % (hung, i)})
    c.request("POST", "/v1/calls", body, {"Authorization": "Bearer " + key,
              "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status != 202:
        sys.exit("call %d: %d" % (i, r.status))
EOF
hung_busy() { (( $(hung_conns) >= 8 )); }
rq_wait_for 10 hung_busy || rq_fail "hung's callbacks not tried: $(hung_conns) connections"
t0=$(rq_now_ms)
post "$BARESIP_URI" "http://127.0.0.1:$RX_PORT/fair" "$soon" >/dev/null
rq_wait_for 20 has_received /fair queued || rq_fail "demo's callback never came"
took=$(( $(rq_now_ms) - t0 ))
held=$(hung_conns)
echo "demo's callback behind 1,000 hanging ones of tenant hung: $took ms; hung's tries at once: $held"
(( took < 3000 )) && (( held <= 8 )) ||
    rq_fail "one tenant's hung receiver held the others: $took ms, $held of its tries at once"

# --- 4. without callbacks_allow_loopback, loopback receivers are refused -----
rq_stop_daemon accounting
sed -i 's/^callbacks_allow_loopback = yes$/callbacks_allow_loopback = no/' "$RQ_CONF"
rq_start_daemon accounting
refused=$(post "$BARESIP_URI" "http://127.0.0.1:$RX_PORT/refused" \
    "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)")
refused_logged() {
	grep -q "$refused: callback queued dropped: its URL leads to this host" \
	    "$T/accounting.log"
}
rq_wait_for 10 refused_logged
! grep -qx /refused "$RX"/*.path || rq_fail "a loopback callback was sent"
echo "loopback refused without callbacks_allow_loopback"

# --- 5. non-public addresses refused; http_proxy ignored ----------------------
# callbacks_allow_loopback = yes allows loopback only.  A proxy set in the
# environment would be reached instead of the receiver (loopback, allowed)
# and carry the request on: it must not be used.
rq_stop_daemon accounting
sed -i 's/^callbacks_allow_loopback = no$/callbacks_allow_loopback = yes/' "$RQ_CONF"
proxy=http://127.0.0.1:$RX_PORT
http_proxy=$proxy HTTP_PROXY=$proxy https_proxy=$proxy HTTPS_PROXY=$proxy \
    all_proxy=$proxy ALL_PROXY=$proxy no_proxy= rq_start_daemon accounting
later=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
own=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9.]+$' || true)
urls="http://169.254.169.254/latest/meta-data/ http://10.255.255.1/h
    http://172.16.0.1/h http://192.168.0.1/h http://100.64.0.1/h
    http://0.0.0.0:$RX_PORT/h http://[::ffff:169.254.169.254]/h
    http://[::ffff:10.0.0.1]/h http://[fd00::1]/h http://[fe80::1]/h
    ${own:+http://$own:$RX_PORT/own}"
ids=""
for u in $urls; do
	ids="$ids $(post "$BARESIP_URI" "$u" "$later")"
done
ok=$(post "$BARESIP_URI" "http://127.0.0.1:$RX_PORT/direct" "$later")
rq_wait_for 10 has_received /direct queued ||
    rq_fail "loopback callback with a proxy in the environment: '$(received /direct)'"
all_refused() {
	local i
	for i in $ids; do
		grep -q "$i: callback queued dropped: its URL leads to" \
		    "$T/accounting.log" || return 1
	done
}
rq_wait_for 10 all_refused || rq_fail "non-public callbacks not all refused:
$(grep 'dropped\|failed' "$T/accounting.log")"
grep -q "dropped: its URL leads to a private or reserved address, 169.254.169.254," \
    "$T/accounting.log" || rq_fail "no refusal line for 169.254.169.254"
! grep -qvE '^/' "$RX"/*.path || rq_fail "a callback went through the proxy"
! grep -qx /own "$RX"/*.path || rq_fail "a callback reached this host's own address"
echo "non-public addresses refused ($(echo $ids | wc -w)); proxy ignored"

# --- 6. the tenant's secret taken out since: nothing unsigned is sent ---------
rq_stop_daemon accounting
sed -i '/^callback_secret = /d' "$RQ_CONF"
rq_start_daemon accounting
unsigned=$(post "$BARESIP_URI" "http://127.0.0.1:$RX_PORT/unsigned" "$later")
unsigned_dropped() {
	grep -q "$unsigned: callback queued dropped: tenant demo has no callback_secret now" \
	    "$T/accounting.log"
}
rq_wait_for 10 unsigned_dropped || rq_fail "no refusal line for an unsigned callback"
! grep -qx /unsigned "$RX"/*.path || rq_fail "an unsigned callback was sent"
echo "a tenant without a secret now: its callbacks dropped, not sent unsigned"

rq_stop_daemon telserver
rq_stop_daemon dispatcher
rq_stop_daemon scheduler
rq_stop_daemon gateway
rq_stop_daemon accounting
rq_check_sanitizers
echo PASS

#!/usr/bin/env bash
# CURVE on the bus and a Redis password (docs/security.md).  Redis runs with
# requirepass; dispatcher and accounting are CURVE servers sharing one
# keypair.  A telserver whose key is in curve_clients takes a call to the
# end (gateway, scheduler, dispatcher, telserver and accounting all AUTH to
# Redis); one with an unlisted key and one without CURVE are refused, both
# sides log why, and neither gets a job.  Each daemon without the password,
# or with a wrong one, says so clearly; -n refuses half a CURVE setup.
# Secret keys and the password never appear in a log.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

PY=/usr/bin/python3
rq_need_pyzmq

# keypair: "PUBLIC SECRET" (Z85), as ringq-ctl keygen makes them.
keypair() {
	"$PY" -c 'import zmq; p, s = zmq.curve_keypair(); print(p.decode(), s.decode())'
}
read -r SRV_PUB SRV_SEC <<<"$(keypair)"
read -r TA_PUB TA_SEC <<<"$(keypair)"
read -r TB_PUB TB_SEC <<<"$(keypair)"
PW="rq-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

export REDISCLI_AUTH=$PW	# redis-cli (rq_redis, rq_redis_up)
rq_start_redis --requirepass "$PW"
rq_start_pg
rq_write_config <<EOF
[redis]
password = $PW
[bus]
curve_public_key = $SRV_PUB
curve_secret_key = $SRV_SEC
curve_server_key = $SRV_PUB
curve_clients = $TA_PUB
EOF
# The servers' file; each telserver has its own (own keys, node, run_dir).
SRV_CONF=$RQ_CONF

# tel_conf NAME PUB SEC: a telserver config (no [bus] keys when PUB is "").
tel_conf() {
	local f=$T/$1.conf
	sed -e "s|^run_dir = .*|run_dir = $T/run-$1|" \
	    -e '/^curve_/d' "$SRV_CONF" > "$f"
	if [ -n "$2" ]; then
		printf '[bus]\ncurve_public_key = %s\ncurve_secret_key = %s\ncurve_server_key = %s\n' \
		    "$2" "$3" "$SRV_PUB" >> "$f"
	fi
	printf '[telserver]\nname = %s\ndry_run = yes\n' "$1" >> "$f"
	echo "$f"
}
TA_CONF=$(tel_conf tela "$TA_PUB" "$TA_SEC")
TB_CONF=$(tel_conf telb "$TB_PUB" "$TB_SEC")
TC_CONF=$(tel_conf telc "")

# --- -n: half a setup is refused ---------------------------------------------
check_refused() {
	local what=$1 needle=$2 f=$T/half.conf out
	shift 2
	sed '/^curve_/d' "$SRV_CONF" > "$f"
	printf '[bus]\n' >> "$f"
	printf '%s\n' "$@" >> "$f"
	if out=$("$RQ_BUILD/dispatcher/ringq-dispatcher" -f "$f" -n 2>&1); then
		rq_fail "-n accepted $what"
	fi
	grep -qF "$needle" <<<"$out" || rq_fail "-n on $what: $out"
	! grep -qF "$SRV_SEC" <<<"$out" || rq_fail "-n printed a secret key"
}
check_refused "a secret without its public key" "go together" \
    "curve_secret_key = $SRV_SEC"
check_refused "a server key without a keypair" \
    "curve_server_key needs this daemon's keypair" "curve_server_key = $SRV_PUB"
check_refused "a mismatched pair" "not the public key of curve_secret_key" \
    "curve_public_key = $TA_PUB" "curve_secret_key = $SRV_SEC"
check_refused "bad Z85" "not a Z85 CURVE key" "curve_server_key = ${SRV_PUB:0:39}~"
"$RQ_BUILD/dispatcher/ringq-dispatcher" -f "$SRV_CONF" -n >/dev/null ||
    rq_fail "-n refused the full setup"

# --- the fleet with CURVE and the password -----------------------------------
rq_start_daemon accounting
rq_start_daemon gateway
rq_start_daemon scheduler
rq_start_daemon dispatcher
RQ_CONF=$TA_CONF rq_start_daemon telserver:a

post_call() {
	local resp
	resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' \
	    -d '{"to": "sip:bob@127.0.0.1:5999", "say": "Hello."}')
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
	jq -er '.id' <<<"$resp" || rq_fail "no id in $resp"
}
grep -q "bus: CURVE on" "$T/dispatcher.log" || rq_fail "dispatcher: no CURVE"
grep -q "bus: CURVE on" "$T/accounting.log" || rq_fail "accounting: no CURVE"
id=$(post_call)
rq_wait_call "$id" 20 >/dev/null
[ "$(rq_redis HGET "rq:job:$id" status)" = completed ] ||
    rq_fail "$id: $(rq_redis HGETALL "rq:job:$id")"
pg_done() {
	[ "$(rq_psql "SELECT status FROM calls WHERE id = '$id'")" = completed ]
}
rq_wait_for 10 pg_done		# EVENTs reached accounting over CURVE
[ "$(rq_psql "SELECT node FROM call_events WHERE call_id = '$id' AND status = 'dispatched'")" = tela ] ||
    rq_fail "$id was not dialled by tela"
echo "ok: a call through CURVE and Redis AUTH"

# --- refused telservers ------------------------------------------------------
rq_stop_daemon telserver:a
RQ_CONF=$TB_CONF rq_start_daemon telserver:b
refused_b() {
	grep -qF "CURVE key $TB_PUB is not in [bus] curve_clients" "$T/dispatcher.log" &&
	    grep -q "refused by the server" "$T/telserver-b.log"
}
rq_wait_for 10 refused_b
# b retries all the time, and each kind of refusal is logged at most once a
# second:
# stop it, or its lines can crowd out c's.
rq_stop_daemon telserver:b
sleep 1.2
RQ_CONF=$TC_CONF rq_start_daemon telserver:c
# The dispatcher sees either the mechanism mismatch or, when c hangs up
# first, a failed handshake without detail; both lines name the cause.
refused_c() {
	grep -Eq "CURVE handshake failed: (one side has no CURVE|the peer hung up \(has it no CURVE)" \
	    "$T/dispatcher.log"
}
rq_wait_for 10 refused_c
# A job waits rather than go to either.
id2=$(post_call)
sleep 3
st=$(rq_redis HGET "rq:job:$id2" status)
case $st in
completed|failed|dispatched|ringing|answered)
	rq_fail "$id2 reached a refused telserver: $st" ;;
esac
if grep -q "$id2" "$T/telserver-b.log" "$T/telserver-c.log"; then
	rq_fail "a refused telserver saw $id2"
fi
# The listed telserver comes back and takes it.
RQ_CONF=$TA_CONF rq_start_daemon telserver:a
rq_wait_call "$id2" 20 >/dev/null
echo "ok: unlisted and plain telservers refused and logged"

# --- Redis without the password, or a wrong one -------------------------------
for d in accounting gateway scheduler dispatcher telserver:a telserver:c; do
	rq_stop_daemon "$d"
done
sed -e "/^password = /d" -e "s|^run_dir = .*|run_dir = $T/run-nopw|" \
    "$SRV_CONF" > "$T/nopw.conf"
sed -e "s|^password = .*|password = wrong-$PW|" \
    -e "s|^run_dir = .*|run_dir = $T/run-badpw|" "$SRV_CONF" > "$T/badpw.conf"
says() { grep -q "$2" "$T/$1.log"; }
for mode in nopw badpw; do
	if [ $mode = nopw ]; then
		want="requires a password: set \[redis\] password"
	else
		want="refused \[redis\] password"
	fi
	for d in accounting gateway scheduler dispatcher telserver; do
		RQ_CONF=$T/$mode.conf rq_start_daemon "$d:$mode"
	done
	for d in accounting gateway scheduler dispatcher telserver; do
		rq_wait_for 10 says "$d-$mode" "$want"
	done
	# They keep running (retrying every second) and stop cleanly.
	sleep 1.5
	for d in accounting gateway scheduler dispatcher telserver; do
		rq_stop_daemon "$d:$mode"
	done
done
echo "ok: every daemon says when the Redis password is missing or wrong"

# --- ringq-ctl: AUTH as the daemons, the same advice when it fails -----------
CTL=$RQ_BUILD/dispatcher/ringq-ctl
"$CTL" -f "$SRV_CONF" queues > "$T/ctl-ok.log" 2>&1 ||
    rq_fail "ringq-ctl with the password: $(cat "$T/ctl-ok.log")"
grep -q "^ready" "$T/ctl-ok.log" || rq_fail "ringq-ctl queues: $(cat "$T/ctl-ok.log")"
for mode in nopw badpw; do
	if "$CTL" -f "$T/$mode.conf" queues > "$T/ctl-$mode.log" 2>&1; then
		rq_fail "ringq-ctl $mode: exit 0"
	fi
done
grep -q "requires a password: set \[redis\] password" "$T/ctl-nopw.log" ||
    rq_fail "ringq-ctl without the password: $(cat "$T/ctl-nopw.log")"
grep -q "refused \[redis\] password" "$T/ctl-badpw.log" ||
    rq_fail "ringq-ctl with a wrong password: $(cat "$T/ctl-badpw.log")"
echo "ok: ringq-ctl sends the password, and says when it is missing or wrong"

# --- no secret in any log ----------------------------------------------------
for s in "$SRV_SEC" "$TA_SEC" "$TB_SEC" "$PW"; do
	if grep -lF -- "$s" "$T"/*.log | grep -v redis.log; then
		rq_fail "a secret appears in a log"
	fi
done
echo "1 passed, 0 failed"

#!/usr/bin/env bash
# Connection floods beyond the gateway's file descriptor limit, on the HTTP
# and then the SMTP port: idle connections, more than the descriptors left
# (the limit is lowered to 64 with prlimit).  The gateway must not spin on
# its listening socket (it did: libevent retried the failing accept() at
# once, a whole core and a million log lines in seconds), must say so in
# one log line per listener, and must take call requests again once the
# flood is over.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1
rq_need curl swaks prlimit python3

rq_start_redis
rq_write_config </dev/null
# Beyond 50 connections from one address the SMTP listener answers 421 and
# closes: let the flood hold its descriptors instead.
sed -i 's/^\[smtp\]$/&\nmax_clients_per_ip = 1000/' "$RQ_CONF"
rq_start_daemon gateway
GW=$(rq_pid gateway)
prlimit --pid "$GW" --nofile=64:64 || rq_fail "prlimit on the gateway failed"
HZ=$(getconf CLK_TCK)

cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$GW/stat"
}

# flood PORT: 150 connections that send nothing, held 5 s (a connect that
# the full backlog does not take within 0.5 s is given up).
flood() {
	python3 - "$1" <<'EOF'
import socket, sys, time
held = []
for _ in range(150):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        held.append(s)
    except OSError:
        s.close()
time.sleep(5)
EOF
}

for what in http smtp; do
	if [ "$what" = http ]; then port=$RQ_HTTP_PORT; else port=$RQ_SMTP_PORT; fi
	flood "$port" &
	fpid=$!
	sleep 1		# the flood has the descriptors
	t0=$(cpu_ticks)
	sleep 2
	t1=$(cpu_ticks)
	# A spinning loop takes all of a core: 2 s of ticks.  Idle, nothing.
	(( (t1 - t0) * 4 < 2 * HZ )) ||
	    rq_fail "$what flood: the gateway used $((t1 - t0)) of $((2 * HZ)) ticks in 2 s (spinning on accept?)"
	rq_logged "$T/gateway.log" "$what: cannot accept a connection: Too many open files" ||
	    rq_fail "$what flood: no 'cannot accept' line in the log"
	rq_log "$what flood: $((t1 - t0)) ticks of CPU in 2 s at the descriptor limit"
	wait "$fpid"
done
n=$(grep -c "cannot accept a connection" "$T/gateway.log")
(( n <= 4 )) || rq_fail "$n 'cannot accept' log lines (one per listener and minute expected)"

# Served again: a call by HTTP and one by e-mail.
rq_wait_for 10 curl -fsS -o /dev/null "$RQ_API/healthz"
rq_api POST /v1/calls -H 'Content-Type: application/json' \
    -d '{"to":"sip:flood@127.0.0.1","say":"after the flood"}' >/dev/null
[ "$(rq_last_code)" = 202 ] || rq_fail "POST after the flood: HTTP $(rq_last_code)"
swaks --server "$RQ_SMTP" --from requester@example.com --to "$RQ_MAILTO" \
    --timeout 15 --body $'To: sip:flood-mail@127.0.0.1\nSay: after the flood\n' \
    > "$T/swaks.out" 2>&1 || true
grep -q '^<-  250 2\.0\.0 Ok: queued as c_' "$T/swaks.out" ||
    rq_fail "mail after the flood not queued: $(tail -n 5 "$T/swaks.out")"
rq_log "after the floods: a call by HTTP (202) and one by e-mail (250) queued"

rq_stop_daemon gateway
rq_check_sanitizers
echo "test_flood: OK"

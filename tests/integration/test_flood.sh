#!/usr/bin/env bash
# Connection floods beyond the gateway's file descriptor limit, on the HTTP
# and then the SMTP port: idle connections, more than the descriptors left
# (the limit is lowered to 64 with prlimit).  The gateway must not spin on
# its listening socket (it did: libevent retried the failing accept() at
# once, a whole core and a million log lines in seconds), must say so in
# one log line per listener, and must take call requests again once the
# flood is over.  Then the HTTP connection caps, per address and in all,
# and the deadline for a request to arrive whole (a trickling one is cut
# off; a keep-alive connection whose requests each come whole is not).
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
	t0=$(rq_cpu_ticks "$GW")
	sleep 2
	t1=$(rq_cpu_ticks "$GW")
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

# The HTTP connection caps: 3 per address, 5 in all, counted from a
# connection's first request until it closes.  Python's http.client keeps
# each connection open; 127.0.0.2 is another client address on loopback.
rq_stop_daemon gateway
sed -i 's/^\[gateway\]$/&\nhttp_max_clients = 5\nhttp_max_clients_per_ip = 3/' "$RQ_CONF"
rq_start_daemon gateway
python3 - "$RQ_HTTP_PORT" "$RQ_KEY" > "$T/caps.out" 2>&1 <<'EOF' ||
import http.client, json, sys
port, key = int(sys.argv[1]), sys.argv[2]

def conn(src):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                      source_address=(src, 0))

def post(c, to):
    c.request("POST", "/v1/calls", json.dumps({"to": to, "say": "caps"}),
              {"Authorization": "Bearer " + key,
               "Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.getheader("Connection"), r.getheader("Retry-After"), r.read()

def expect(what, got, status):
    if got[0] != status:
        sys.exit(f"{what}: HTTP {got[0]}, want {status}: {got[3]!r}")
    print(f"{what}: {got[0]}")

a = [conn("127.0.0.1") for _ in range(3)]
for i, c in enumerate(a):
    expect(f"127.0.0.1 connection {i + 1}", post(c, "sip:a@127.0.0.1"), 202)
# the same connections again: still counted once
expect("127.0.0.1 connection 1, second request", post(a[0], "sip:a@127.0.0.1"), 202)
fourth = post(conn("127.0.0.1"), "sip:a@127.0.0.1")
expect("127.0.0.1 connection 4", fourth, 503)
body = json.loads(fourth[3])
if body["error"]["code"] != "too_many_connections" or fourth[1] != "close" \
        or fourth[2] != "1":
    sys.exit(f"connection 4: {fourth}")
b = [conn("127.0.0.2") for _ in range(2)]
for i, c in enumerate(b):
    expect(f"127.0.0.2 connection {i + 1}", post(c, "sip:b@127.0.0.1"), 202)
# five in all now
expect("127.0.0.3 connection 1", post(conn("127.0.0.3"), "sip:c@127.0.0.1"), 503)
# one closes: room again
a[2].close()
import time
for _ in range(50):
    got = post(conn("127.0.0.1"), "sip:a@127.0.0.1")
    if got[0] == 202:
        break
    time.sleep(0.1)
expect("127.0.0.1 after one closed", got, 202)
EOF
    rq_fail "HTTP connection caps: $(tail -n 3 "$T/caps.out")"
rq_log "HTTP caps: $(tr '\n' ';' < "$T/caps.out")"
rq_logged "$T/gateway.log" "http: 127.0.0.1: refused: too many connections from this address" ||
    rq_fail "no log line for the refused connection"

# A request that trickles (a byte every 5 s: evhttp's 30 s timeout starts
# again at each) is cut off 30 s after the connection's start; a
# keep-alive connection whose requests come whole, each answered, lives
# on past 30 s, and gets its answer to a request sent 27 s after the one
# before and answered 4 s later (Redis paused).  A request with Expect:
# 100-continue, whose body then trickles, is cut off at 30 s too (evhttp's
# "100 Continue" is no answer).  All at once.
python3 - "$RQ_HTTP_PORT" "$REDIS_PORT" "$RQ_KEY" > "$T/slow.out" 2>&1 <<'EOF' ||
import socket, subprocess, sys, threading, time
port, redis_port, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
result = {}

def until_cut(s, start, byte):
    """Sends byte every 5 s until the gateway closes s: the seconds from
    start, or None if it still stands 50 s after start."""
    s.settimeout(5)
    while time.monotonic() - start < 50:
        try:
            if s.recv(4096) == b"":
                break
        except socket.timeout:
            pass
        except OSError:
            break
        try:
            s.sendall(byte)
        except OSError:
            break
    else:
        return None
    return time.monotonic() - start

def trickle():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /v1/calls HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    result["trickle"] = until_cut(s, time.monotonic(), b"a")

def continued():
    # Expect: 100-continue: evhttp's "100 Continue" asks for the body of
    # the same request, within the same deadline from the connection's
    # start: the head sent over 15 s, the body then a byte every 5 s
    s = socket.create_connection(("127.0.0.1", port))
    start = time.monotonic()
    s.sendall(b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: "
              b"Bearer " + key.encode() + b"\r\nContent-Type: "
              b"application/json\r\nContent-Length: 200\r\n")
    for i in range(3):
        time.sleep(5)
        s.sendall(b"X-Slow-%d: a\r\n" % i)
    s.sendall(b"Expect: 100-continue\r\n\r\n")
    s.settimeout(5)
    got = b""
    while b"\r\n\r\n" not in got:
        part = s.recv(4096)
        if not part:
            result["continued"] = "closed before 100 Continue"
            return
        got += part
    if not got.startswith(b"HTTP/1.1 100 Continue"):
        result["continued"] = got[:40]
        return
    s.sendall(b"{")
    result["continued"] = until_cut(s, start, b" ")

def answer(s):
    got = b""
    while b"\r\n\r\n" not in got:
        part = s.recv(4096)
        if not part:
            return None
        got += part
    head, _, body = got.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        body += s.recv(4096)
    return head.split(b"\r\n")[0]

def keep_alive():
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(15)
    start, n = time.monotonic(), 0
    get = (b"GET /v1/calls/c_000000000000000000000000 HTTP/1.1\r\n"
           b"Host: x\r\nAuthorization: Bearer " + key.encode() + b"\r\n\r\n")
    for pause in (8, 8, 27, 0):
        s.sendall(get)
        status = answer(s)
        if status is None or b" 404 " not in status:
            result["keep"] = "%s after %d answers, %.0f s" % (
                status or "closed", n, time.monotonic() - start)
            return
        n += 1
        time.sleep(pause)
        if pause == 27:
            # the next answer comes past the deadline: Redis held 4 s
            subprocess.run(["redis-cli", "-p", redis_port, "CLIENT",
                            "PAUSE", "4000", "ALL"], check=True,
                           stdout=subprocess.DEVNULL)
    result["keep"] = n

threads = [threading.Thread(target=trickle),
           threading.Thread(target=continued),
           threading.Thread(target=keep_alive)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(result)
t = result.get("trickle")
if t is None or not 28 <= t <= 36:
    sys.exit("the trickling request: %s" % t)
t = result.get("continued")
if not isinstance(t, float) or not 28 <= t <= 36:
    sys.exit("the request with Expect: 100-continue: %s" % t)
if result.get("keep") != 4:
    sys.exit("the keep-alive connection: %s" % result.get("keep"))
EOF
    rq_fail "request deadline: $(tail -n 2 "$T/slow.out")"
rq_log "request deadline: $(tail -n 1 "$T/slow.out")"
rq_logged "$T/gateway.log" "http: a connection closed: no request whole within 30 s" ||
    rq_fail "no log line for the connection cut off"

rq_stop_daemon gateway
rq_check_sanitizers
echo "test_flood: OK"

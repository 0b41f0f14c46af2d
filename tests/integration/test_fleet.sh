#!/usr/bin/env bash
# The fleet on several hosts: network namespaces on one bridge, addresses
# from 198.18.0.0/15 only, CURVE on the bus, a Redis password and a
# PostgreSQL password (scram-sha-256).
#
#   host A 198.18.0.1  redis-server, PostgreSQL, gateway, scheduler, accounting
#   host B 198.18.0.2  two dispatchers (:7701, :7702)
#   host C/D/E .3-.5   telservers t1, t2, t3
#   host F 198.18.0.6  SIPp answering as the customers (short calls)
#   host G 198.18.0.7  telserver t4, started during the run
#
# A client in host A submits a steady stream of calls to the gateway; during
# it: kill -9 t1, cut t2's link (its veth down), start t4, drain t3
# (ringq-ctl drain t3 --wait), kill -9 one dispatcher.  Asserts and prints:
# every accepted call ends completed, in Redis and PostgreSQL (nothing lost);
# no X-Ringq-Attempt reaches SIPp in two SIP dialogs (nobody rung twice); no
# JOB is sent to, and no attempt claimed by, t1 or t2 later than 5 s after
# its death or cut; t4 claims calls; t3 finishes its calls (all completed),
# --wait says drained, and it claims nothing after the drain took effect.
#
# Environment: RQ_FLEET_RATE (5 calls/s), RQ_FLEET_STREAM_S (85 s of
# submissions), RQ_KEEP=1 keeps $T.  Needs root (ip netns).
: "${RQ_SOURCE:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need ip sipp psql jq redis-server redis-cli
rq_need_pyzmq
PY=/usr/bin/python3
CTL=$RQ_BUILD/dispatcher/ringq-ctl
[ -x "$CTL" ] || rq_fail "$CTL not built"
[ "$(id -u)" = 0 ] || { echo "test_fleet: SKIP: needs root for ip netns"; exit 77; }

RATE=${RQ_FLEET_RATE:-5}
STREAM_S=${RQ_FLEET_STREAM_S:-85}
# the moments of the events, in seconds after the first submission
AT_KILL_TEL=12 AT_CUT_TEL=24 AT_NEW_TEL=36 AT_DRAIN=48 AT_KILL_DISP=62
(( STREAM_S >= AT_KILL_DISP + 15 )) ||
    rq_fail "RQ_FLEET_STREAM_S must be at least $((AT_KILL_DISP + 15)) (the events end at +${AT_KILL_DISP}s)"
T_START=$(rq_now_ms)

# --- the network ---------------------------------------------------------------
# Namespace names carry a per-run suffix: parallel runs never meet.
SFX=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
NS_BR=rqf$SFX-br
declare -A NS=() IP=()
i=1
for h in a b c d e f g; do
	NS[$h]=rqf$SFX-$h
	IP[$h]=198.18.0.$i
	i=$((i + 1))
done
rq_netns_bridge "$NS_BR"
for h in a b c d e f g; do
	rq_netns_add "${NS[$h]}"
	rq_netns_plug "${NS[$h]}" "$NS_BR" "veth-$h" "${IP[$h]}/24"
done
# in_ns HOST CMD...: runs CMD in HOST's namespace (in the foreground: a
# process started in the background must be "ip netns exec" itself, which
# execs CMD, so that $! is CMD's PID).
in_ns() { local h=$1; shift; ip netns exec "${NS[$h]}" "$@"; }
# every host reaches host A
reach() {
	in_ns "$1" "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(0.5)
s.connect_ex((sys.argv[1], 9)) in (0, 111) or sys.exit(1)' "${IP[a]}"
}
for h in b c d e f g; do rq_wait_for 10 reach "$h"; done

# --- keys and passwords --------------------------------------------------------
keypair() { "$PY" -c 'import zmq; p, s = zmq.curve_keypair(); print(p.decode(), s.decode())'; }
read -r SRV_PUB SRV_SEC <<<"$(keypair)"
declare -A TPUB=() TSEC=()
for t in t1 t2 t3 t4; do
	read -r "TPUB[$t]" "TSEC[$t]" <<<"$(keypair)"
done
CLIENTS="${TPUB[t1]},${TPUB[t2]},${TPUB[t3]},${TPUB[t4]}"
RPW="rq-fleet-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PGPW="rq-pg-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export REDISCLI_AUTH=$RPW

# --- Redis and PostgreSQL on host A --------------------------------------------
# The test itself talks to both over their Unix sockets in $T (a path
# socket is reachable from any network namespace); the daemons use TCP.
mkdir -p "$T/redis"
ip netns exec "${NS[a]}" redis-server --port 6379 --bind "${IP[a]}" --requirepass "$RPW" \
    --unixsocket "$T/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --daemonize no --dir "$T/redis" --logfile "$T/redis.log" \
    </dev/null >/dev/null 2>&1 &
rq_track redis $!
rr() { redis-cli -s "$T/redis.sock" "$@"; }
redis_up() { rr ping 2>/dev/null | grep -q PONG; }
rq_wait_for 10 redis_up

PGBIN=$(pg_config --bindir)
RQ_PG_DIR=$T/pg
mkdir -p "$RQ_PG_DIR"
chown postgres "$RQ_PG_DIR"
rq_as_pg "$PGBIN/initdb" -D "$RQ_PG_DIR/data" -U postgres --auth=trust \
    -E UTF8 --no-locale -N >"$T/initdb.out" 2>&1 ||
    { cat "$T/initdb.out" >&2; rq_fail "initdb failed"; }
# the superuser only over the socket (the test); ringq by password
cat > "$RQ_PG_DIR/data/pg_hba.conf" <<EOF
local  all    postgres                 trust
local  ringq  ringq                    scram-sha-256
host   ringq  ringq    198.18.0.0/15   scram-sha-256
EOF
in_ns a runuser -u postgres -- "$PGBIN/pg_ctl" -D "$RQ_PG_DIR/data" \
    -l "$RQ_PG_DIR/pg.log" -w -t 30 -o "-k $RQ_PG_DIR -p 5432 \
    -c listen_addresses=${IP[a]} -c fsync=off \
    -c password_encryption=scram-sha-256" start >/dev/null ||
    { tail -n 20 "$RQ_PG_DIR/pg.log" >&2; rq_fail "PostgreSQL did not start"; }
export PGHOST=$RQ_PG_DIR PGPORT=5432 PGUSER=postgres
psql -X -q -d postgres -c "CREATE ROLE ringq LOGIN PASSWORD '$PGPW'" >/dev/null
psql -X -q -d postgres -c "CREATE DATABASE ringq OWNER ringq" >/dev/null
PG_CONNINFO="host=${IP[a]} port=5432 dbname=ringq user=ringq"
# the password is required, and checked
if in_ns a env -u PGPASSWORD psql -X -w "$PG_CONNINFO password=wrong-$PGPW" \
    -c 'SELECT 1' >"$T/pgbad.out" 2>&1; then
	rq_fail "PostgreSQL took a wrong password"
fi
grep -q "password authentication failed" "$T/pgbad.out" ||
    rq_fail "PostgreSQL, wrong password: $(cat "$T/pgbad.out")"

# --- configs -------------------------------------------------------------------
API_KEY="rq_demo_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cat > "$T/base.conf" <<EOF
# written by tests/integration/test_fleet.sh
[global]
debug = yes

[redis]
host = ${IP[a]}
port = 6379
password = $RPW

[postgres]
conninfo = $PG_CONNINFO password=$PGPW

[bus]
dispatch_endpoints = tcp://${IP[b]}:7701,tcp://${IP[b]}:7702
events_endpoint = tcp://${IP[a]}:7710

[gateway]
http_listen = ${IP[a]}:8080

[smtp]
listen = ${IP[a]}:2525
domain = ringq.localhost

[tenant demo]
key_sha256 = $(rq_sha256 "$API_KEY")
allow_sip = yes
rate_per_second = 0
callback_secret = rq-test-callback-secret
# an interrupted attempt is tried again after ~1 s
max_attempts = 8
retry_network_attempts = 6
retry_network_delay_s = 1
retry_no_answer_attempts = 3
retry_no_answer_delay_s = 1
retry_busy_attempts = 3
retry_busy_delay_s = 1
EOF
# conf TAG [INI text on stdin]: $T/TAG.conf = base + own run_dir + stdin.
conf() {
	{
		cat "$T/base.conf"
		printf '\n[global]\nrun_dir = %s/run-%s\n' "$T" "$1"
		cat
	} > "$T/$1.conf"
}
SERVER_BUS="[bus]
curve_public_key = $SRV_PUB
curve_secret_key = $SRV_SEC
curve_clients = $CLIENTS"
conf gateway </dev/null
conf scheduler </dev/null
conf accounting <<<"$SERVER_BUS"
for d in 1 2; do
	conf "dispatcher-$d" <<EOF
$SERVER_BUS
[dispatcher]
bind = tcp://${IP[b]}:770$d
EOF
done
declare -A THOST=([t1]=c [t2]=d [t3]=e [t4]=g)
for t in t1 t2 t3 t4; do
	ip=${IP[${THOST[$t]}]}
	conf "telserver-$t" <<EOF
[bus]
curve_public_key = ${TPUB[$t]}
curve_secret_key = ${TSEC[$t]}
curve_server_key = $SRV_PUB
[telserver]
name = $t
sip_url = sip:$ip:5070
sip_from = sip:ringq@$ip
media_ip = $ip
rtp_port_min = 20000
rtp_port_max = 20199
capacity = 20
ring_timeout_s = 10
heartbeat_ms = 200
EOF
done
cp "$T/base.conf" "$T/ctl.conf"
for f in "$T"/*.conf; do
	case $f in */base.conf|*/ctl.conf) continue ;; esac
	tag=$(basename "$f" .conf)
	"$RQ_BUILD/${tag%%-*}/ringq-${tag%%-*}" -f "$f" -n >"$T/check.out" 2>&1 ||
	    rq_fail "$tag: config refused: $(cat "$T/check.out")"
done

# --- daemons -------------------------------------------------------------------
# start TAG HOST: ringq-<daemon> -f $T/TAG.conf in HOST's namespace, output
# to $T/TAG.log; waits for its PID file.
start() {
	local tag=$1 h=$2 name run pid i
	name=${tag%%-*}
	run=$T/run-$tag
	mkdir -p "$run"
	rm -f "$run/ringq-$name.pid"
	ip netns exec "${NS[$h]}" "$RQ_BUILD/$name/ringq-$name" -f "$T/$tag.conf" \
	    </dev/null >>"$T/$tag.log" 2>&1 &
	pid=$!
	rq_track "$tag" "$pid"
	for ((i = 0; i < 150; i++)); do
		rq_alive "$pid" || rq_fail "ringq-$name ($tag) exited at start-up"
		[ -f "$run/ringq-$name.pid" ] && return 0
		sleep 0.1
	done
	rq_fail "ringq-$name ($tag) wrote no PID file within 15 s"
}
ctl() { in_ns a "$CTL" -f "$T/ctl.conf" "$@"; }
tel_up() { ctl telservers | awk -v n="$1" '$1 == n && $2 == "up" && / alive /' | grep -q .; }

start accounting a
start gateway a
start scheduler a
start dispatcher-1 b
start dispatcher-2 b
for t in t1 t2 t3; do start "telserver-$t" "${THOST[$t]}"; done
for t in t1 t2 t3; do rq_wait_for 15 tel_up "$t"; done
# every telserver is known to both dispatchers, over CURVE
for d in 1 2; do
	for t in t1 t2 t3; do
		rq_wait_for 10 grep -q "telserver $t: up" "$T/dispatcher-$d.log"
	done
	grep -q "bus: CURVE on" "$T/dispatcher-$d.log" || rq_fail "dispatcher-$d: no CURVE"
done
grep -q "bus: CURVE on" "$T/accounting.log" || rq_fail "accounting: no CURVE"
ctl telservers

# --- SIPp on host F: answers every call, logs each INVITE --------------------------
# One line per SIP dialog: INVITE <ringq call id> <attempt> <SIP Call-ID>.
# A caller that vanished (killed, cut off) ends its dialog quietly here.
cat > "$T/uas_fleet.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="ringq uas fleet">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Ringq-Attempt: *([A-Za-z0-9_-]+)/([0-9]+)"
            search_in="msg" check_it="false" assign_to="hdr,rqid,attempt"/>
      <log message="INVITE [$rqid] [$attempt] [call_id]"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag03[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="100"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag03[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv

    ]]>
  </send>
  <recv request="ACK" crlf="true" timeout="10000" ontimeout="gone"/>
  <recv request="BYE" timeout="30000" ontimeout="gone"/>
  <send next="done">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <label id="gone"/>
  <nop>
    <action>
      <log message="GONE [$rqid] [$attempt] [call_id]"/>
    </action>
  </nop>
  <label id="done"/>
  <timewait milliseconds="500"/>
  <Reference variables="hdr"/>
</scenario>
EOF
(cd "$T" && exec ip netns exec "${NS[f]}" sipp -sf "$T/uas_fleet.xml" \
    -i "${IP[f]}" -p 5060 -mi "${IP[f]}" -mp 6000 -nostdin -bind_local -aa \
    -trace_logs -log_file "$T/sipp.actions" \
    -trace_err -error_file "$T/sipp.errors") </dev/null >"$T/sipp.log" 2>&1 &
rq_track sipp $!
sipp_bound() { in_ns f ss -Hauln | grep -q "${IP[f]}:5060 "; }
rq_wait_for 10 sipp_bound

# --- the stream ----------------------------------------------------------------
# N calls at RATE/s from 6 threads in host A, each with an Idempotency-Key;
# a connection error or 5xx is retried with the same key for 30 s.  Writes
# "index code id" per call.
cat > "$T/client.py" <<'EOF'
import http.client, json, sys, threading, time
host, key, to_host, n, rate, out = sys.argv[1:7]
n, rate = int(n), float(rate)
lock = threading.Lock()
state = {"next": 0}
rows = {}
t0 = time.time()

def submit(i):
    body = json.dumps({"to": "sip:c%d@%s:5060" % (i, to_host), "say": "Hi."})
    hdrs = {"Authorization": "Bearer " + key, "Content-Type": "application/json",
            "Idempotency-Key": "fleet-%d" % i}
    end = time.time() + 30
    while True:
        code, rid = 0, ""
        try:
            c = http.client.HTTPConnection(host, 8080, timeout=5)
            c.request("POST", "/v1/calls", body, hdrs)
            r = c.getresponse()
            code, data = r.status, r.read()
            c.close()
            if code in (200, 201, 202):
                rid = json.loads(data).get("id", "")
        except Exception:
            code = 0
        if (code in (200, 201, 202) and rid) or \
           code not in (0, 500, 502, 503, 504) or time.time() > end:
            return code, rid
        time.sleep(0.3)

def worker():
    while True:
        with lock:
            i = state["next"]
            if i >= n:
                return
            state["next"] = i + 1
        d = t0 + i / rate - time.time()
        if d > 0:
            time.sleep(d)
        rows[i] = submit(i)

ts = [threading.Thread(target=worker) for _ in range(6)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out, "w") as f:
    for i in range(n):
        code, rid = rows[i]
        f.write("%d %d %s\n" % (i, code, rid or "-"))
print("client: %d submitted in %.1f s" % (n, time.time() - t0))
EOF
CALLS=$((RATE * STREAM_S))
echo "fleet: $CALLS calls at $RATE/s; events at +${AT_KILL_TEL}s kill -9 t1," \
    "+${AT_CUT_TEL}s cut t2, +${AT_NEW_TEL}s start t4, +${AT_DRAIN}s drain t3," \
    "+${AT_KILL_DISP}s kill -9 dispatcher-1"
ip netns exec "${NS[a]}" "$PY" "$T/client.py" "${IP[a]}" "$API_KEY" "${IP[f]}" "$CALLS" "$RATE" \
    "$T/accepted.txt" </dev/null >"$T/client.out" 2>&1 &
rq_track client $!
CLIENT_PID=$!
S0=$(rq_now_ms)
: > "$T/events.txt"		# "what epoch_ms"
note() {
	local now
	now=$(rq_now_ms)
	echo "$1 $now" >> "$T/events.txt"
	printf '%6.1fs %s\n' "$(awk -v ms=$((now - S0)) 'BEGIN { print ms / 1000 }')" "$2"
}
until_s() {
	while (( $(rq_now_ms) - S0 < $1 * 1000 )); do
		rq_alive "$CLIENT_PID" || rq_fail "the client ended early: $(cat "$T/client.out")"
		sleep 0.1
	done
}

until_s "$AT_KILL_TEL"
note kill_t1 "kill -9 t1 (host C)"
rq_kill_daemon telserver-t1

until_s "$AT_CUT_TEL"
note cut_t2 "cut t2's link (host D: veth down)"
ip -n "$NS_BR" link set veth-d down

until_s "$AT_NEW_TEL"
note new_t4 "start t4 (host G)"
start telserver-t4 g
rq_wait_for 10 tel_up t4
note up_t4 "t4 up in ringq-ctl telservers"

until_s "$AT_DRAIN"
note drain_t3 "ringq-ctl drain t3 --wait"
(
	rc=0
	ctl drain t3 --wait --timeout 40 >"$T/drain.out" 2>&1 || rc=$?
	echo "drained_t3 $(rq_now_ms) $rc" >> "$T/events.txt"
) &
DRAIN_PID=$!

until_s "$AT_KILL_DISP"
note kill_disp1 "kill -9 dispatcher-1 (host B)"
rq_kill_daemon dispatcher-1

wait "$DRAIN_PID" || true
read -r _ DRAINED_MS DRAIN_RC <<<"$(grep '^drained_t3 ' "$T/events.txt")"
printf '%6.1fs ringq-ctl drain t3 --wait returned %s:\n' \
    "$(awk -v ms=$((DRAINED_MS - S0)) 'BEGIN { print ms / 1000 }')" "$DRAIN_RC"
sed 's/^/        /' "$T/drain.out"
[ "$DRAIN_RC" = 0 ] || rq_fail "drain t3 --wait: exit $DRAIN_RC"
tail -n 1 "$T/drain.out" | grep -qx "t3: drained" || rq_fail "drain t3 --wait: $(cat "$T/drain.out")"
rq_logged "$T/telserver-t3.log" "drain: t3 is in rq:drain" || rq_fail "t3 did not log its drain"

unset "RQ_PIDS[client]"
wait "$CLIENT_PID" || rq_fail "the client failed: $(cat "$T/client.out")"
note stream_end "$(cat "$T/client.out")"
ctl telservers
ctl queues

# --- every accepted call ends ------------------------------------------------------
awk '$3 != "-" { print $3 }' "$T/accepted.txt" | sort -u > "$T/ids.txt"
mapfile -t IDS < "$T/ids.txt"
ACCEPTED=${#IDS[@]}
REFUSED=$(awk '$3 == "-"' "$T/accepted.txt" | wc -l)
(( ACCEPTED > 0 )) || rq_fail "no call was accepted"
open_calls() {
	rr EVAL "local n = 0
for _, id in ipairs(ARGV) do
  local r = tonumber(redis.call('HGET', 'rq:job:' .. id, 'status_rank'))
  if r == nil or r % 16 < 6 then n = n + 1 end
end
return n" 0 "${IDS[@]}" 2>/dev/null || echo "?"
}
pg_open() {
	psql -X -q -A -t -d ringq -c "SELECT count(*) FROM calls WHERE status NOT IN
	    ('completed', 'failed', 'canceled', 'expired')" 2>/dev/null || echo "?"
}
pg_calls() { psql -X -q -A -t -d ringq -c "SELECT count(*) FROM calls" 2>/dev/null || echo 0; }
t_end=$(rq_now_ms)
while o=$(open_calls); [ "$o" != 0 ]; do
	(( $(rq_now_ms) - t_end < 60000 )) || break
	sleep 1
done
note all_terminal "Redis: $o accepted calls not terminal"
while :; do
	[ "$(rr XLEN rq:events)" = 0 ] && [ "$(pg_open)" = 0 ] &&
	    [ "$(pg_calls)" -ge "$ACCEPTED" ] && break
	(( $(rq_now_ms) - t_end < 90000 )) || break
	sleep 1
done
note pg_done "PostgreSQL: $(pg_calls) calls, $(pg_open) open; rq:events length $(rr XLEN rq:events)"

# A clean stop of what still runs (the cut t2 too), then SIPp.
for tag in telserver-t4 telserver-t3 telserver-t2 dispatcher-2 scheduler gateway accounting; do
	rq_stop_daemon "$tag"
done
sleep 0.5
rq_kill sipp 5 || true

# --- the figures -------------------------------------------------------------------
pgq() { psql -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 -d ringq -c "$1"; }
pgq "SELECT id, status, coalesce(nullif(reason, ''), '-'), attempts FROM calls" > "$T/pg_calls.txt"
pgq "SELECT call_id, attempt, status, coalesce(node, '-'),
    (extract(epoch FROM at) * 1000)::bigint FROM call_events" > "$T/pg_events.txt"
pgq "SELECT call_id, attempt, coalesce(node, '-'), status,
    coalesce(nullif(reason, ''), '-') FROM attempts" > "$T/pg_attempts.txt"
rr EVAL "local out = {}
for _, id in ipairs(ARGV) do
  local f = redis.call('HMGET', 'rq:job:' .. id, 'status', 'attempts')
  out[#out + 1] = id .. ' ' .. (f[1] or '-') .. ' ' .. (f[2] or '0')
end
return out" 0 "${IDS[@]}" > "$T/redis_calls.txt"
"$PY" - "$T" "$S0" "$ACCEPTED" "$REFUSED" <<'EOF' || rq_fail "see the figures above"
import collections, sys
T, S0, ACC, REF = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
TERM = {"completed", "failed", "canceled", "expired"}
ev = {}
for l in open(T + "/events.txt"):
    p = l.split()
    ev[p[0]] = int(p[1])
rel = lambda ms: "%+.1fs" % ((ms - S0) / 1000.0)
bad = []
ids = [l.strip() for l in open(T + "/ids.txt") if l.strip()]

# 1. nothing lost: every accepted call completed, in Redis and PostgreSQL
red = dict((p[0], p[1:]) for p in (l.split() for l in open(T + "/redis_calls.txt")) if len(p) == 3)
pg = dict((p[0], p[1:]) for p in (l.split() for l in open(T + "/pg_calls.txt")) if len(p) == 4)
rs = collections.Counter(red.get(i, ["missing"])[0] for i in ids)
ps = collections.Counter(pg.get(i, ["missing"])[0] for i in ids)
att = collections.Counter(int(pg[i][2]) for i in ids if i in pg)
print("calls: %d accepted, %d refused by the gateway" % (ACC, REF))
print("  Redis:      %s" % dict(rs))
print("  PostgreSQL: %s" % dict(ps))
print("  attempts per call: %s" % dict(sorted(att.items())))
notdone = [i for i in ids if red.get(i, ["-"])[0] not in TERM or pg.get(i, ["-"])[0] not in TERM]
if notdone:
    bad.append("%d accepted calls not terminal (lost), e.g. %s" % (len(notdone), notdone[:5]))
notok = [(i, pg.get(i)) for i in ids if pg.get(i, ["-"])[0] != "completed"]
if notok:
    bad.append("%d calls not completed: %s" % (len(notok), notok[:5]))
if REF:
    bad.append("%d calls refused by the gateway" % REF)

# 2. nobody rung twice: an X-Ringq-Attempt in one SIP dialog only
dialogs = collections.defaultdict(set)
nohdr = gone = 0
for l in open(T + "/sipp.actions", errors="replace"):
    p = l.replace("\0", "").split()
    if p and p[0] == "GONE":
        gone += 1
    if not p or p[0] != "INVITE":
        continue
    if len(p) != 4:
        nohdr += 1
        continue
    dialogs[(p[1], p[2])].add(p[3])
twice = {k: v for k, v in dialogs.items() if len(v) > 1}
print("SIPp: %d dialogs, %d attempts, %d attempts in two dialogs, %d without "
      "X-Ringq-Attempt, %d dialogs whose caller vanished" %
      (sum(len(v) for v in dialogs.values()), len(dialogs), len(twice), nohdr, gone))
if twice:
    bad.append("rung twice: %s" % list(twice.items())[:5])
if nohdr:
    bad.append("%d INVITEs without X-Ringq-Attempt" % nohdr)
# every claimed attempt is one dialog at SIPp, and every dialog a claim
claims = [(p[0], p[1], p[3], int(p[4])) for p in (l.split() for l in open(T + "/pg_events.txt"))
          if len(p) == 5 and p[2] == "dispatched"]
claimed = set((c, a) for c, a, _, _ in claims)
if set(dialogs) - claimed:
    bad.append("dialogs without a claim: %s" % sorted(set(dialogs) - claimed)[:5])

# 3. JOBs and claims per telserver
# the JOBs the dispatchers sent (their debug lines, UTC, ms)
import calendar, re, time
SENT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .*: call \S+: "
                  r"attempt \d+ sent to telserver (\S+)$")
jobs = []
for d in ("dispatcher-1", "dispatcher-2"):
    for l in open("%s/%s.log" % (T, d), errors="replace"):
        m = SENT.match(l.rstrip("\n"))
        if m:
            sec = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
            jobs.append((d, m.group(3), sec * 1000 + int(m.group(2))))
jc = collections.Counter((d, n) for d, n, _ in jobs)
cc = collections.Counter(n for _, _, n, _ in claims)
print("JOBs sent (dispatcher-1 / dispatcher-2) and attempts claimed, per telserver:")
for n in ("t1", "t2", "t3", "t4"):
    print("  %s  %4d / %4d   %4d claimed" % (n, jc[("dispatcher-1", n)], jc[("dispatcher-2", n)], cc[n]))

DOWN = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .*: telserver (\S+): down: (.*)$")
downs = collections.defaultdict(list)
for d in ("dispatcher-1", "dispatcher-2"):
    for l in open("%s/%s.log" % (T, d), errors="replace"):
        m = DOWN.match(l.rstrip("\n"))
        if m:
            sec = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
            downs[m.group(3)].append((sec * 1000 + int(m.group(2)), d, m.group(4)))
sec = lambda ms: "%+.2fs" % (ms / 1000.0)

def after(node, t0, what):
    js = sorted(ms for _, n, ms in jobs if n == node)
    cs = sorted(ms for _, _, n, ms in claims if n == node)
    late_j = [ms for ms in js if ms > t0 + 5000]
    late_c = [ms for ms in cs if ms > t0 + 5000]
    print("  %s, %s at %s: %d JOBs sent to it after that, the last at %s; last claim at %s; "
          "later than 5 s: %d JOBs, %d claims" % (
          node, what, rel(t0), len([ms for ms in js if ms > t0]),
          sec(js[-1] - t0) if js else "-", sec(cs[-1] - t0) if cs else "-",
          len(late_j), len(late_c)))
    for ms, d, why in sorted(downs[node]):
        if ms > t0:
            print("    %s took it out at %s (%s)" % (d, sec(ms - t0), why))
    if late_j or late_c:
        bad.append("%s received %d JOBs and claimed %d attempts more than 5 s after its %s"
                   % (node, len(late_j), len(late_c), what))
print("lost telservers:")
after("t1", ev["kill_t1"], "kill -9")
after("t2", ev["cut_t2"], "cut")

# 4. the new telserver takes jobs
c4 = sorted(ms for _, _, n, ms in claims if n == "t4")
print("new telserver t4: started at %s, first claim at %s, %d claims" % (
      rel(ev["new_t4"]), sec(c4[0] - ev["new_t4"]) if c4 else "-", len(c4)))
if not c4:
    bad.append("t4 claimed nothing")
if not jc[("dispatcher-1", "t4")] or not jc[("dispatcher-2", "t4")]:
    bad.append("t4 did not get JOBs from both dispatchers")

# 5. the drained telserver finishes its calls and takes no more: no
# claim after it logged the drain (its refresh saw rq:drain; JOBs are then
# refused "draining"), within 100 ms (a claim it sent before that reply)
t0 = ev["drain_t3"]
DRAIN = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .* drain: t3 is in rq:drain")
eff = None
for l in open(T + "/telserver-t3.log", errors="replace"):
    m = DRAIN.match(l)
    if m:
        eff = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) * 1000 + int(m.group(2))
        break
c3 = sorted(ms for _, _, n, ms in claims if n == "t3")
j3 = sorted(ms for _, n, ms in jobs if n == "t3")
a3 = collections.Counter((p[3], p[4]) for p in (l.split() for l in open(T + "/pg_attempts.txt"))
                         if len(p) == 5 and p[2] == "t3")
if eff is None:
    bad.append("t3 never logged its drain")
    eff = t0
late = [ms for ms in c3 if ms > eff + 100]
print("drained telserver t3: drain requested at %s, in effect at %s, --wait returned at %s; "
      "last claim at %s (%d after the drain took effect); %d JOBs sent to it after that "
      "(refused as draining); its attempts (status, reason): %s" % (
      rel(t0), sec(eff - t0), sec(ev["drained_t3"] - t0),
      sec(c3[-1] - t0) if c3 else "-", len(late),
      len([ms for ms in j3 if ms > eff]), dict(a3)))
if eff - t0 > 3000:
    bad.append("t3 took %.1f s to see its drain" % ((eff - t0) / 1000.0))
if late:
    bad.append("t3 claimed %d attempts after its drain" % len(late))
if any(s != "completed" for s, _ in a3):
    bad.append("t3's attempts did not all complete: %s" % dict(a3))

# 6. the killed dispatcher
k = ev["kill_disp1"]
jd1 = [ms for d, _, ms in jobs if d == "dispatcher-1"]
print("dispatcher-1 killed at %s: %d JOBs sent in its last second; dispatcher-2 sent %d "
      "JOBs after the kill" % (rel(k), len([ms for ms in jd1 if k - 1000 < ms <= k]),
      len([ms for d, _, ms in jobs if d == "dispatcher-2" and ms > k])))
print("all accepted calls terminal at %s, PostgreSQL complete at %s" % (
      rel(ev["all_terminal"]), rel(ev["pg_done"])))
for b in bad:
    print("FAIL: " + b)
sys.exit(1 if bad else 0)
EOF
grep -h "lost before its ack\|cannot reach telserver\|: down: " "$T"/dispatcher-*.log |
    sed -E 's/^[^ ]+ //' | sed -E 's/call [^ ]+: attempt [0-9]+: /call ...: /' |
    sort | uniq -c | sed 's/^/  dispatcher: /'
grep -h "liveness key expired\|dispatch lease expired" "$T/scheduler.log" |
    sed -E 's/^[^ ]+ //; s/call [^ ]+:/call ...:/' | sort | uniq -c | sed 's/^/  scheduler: /' | head -n 8
grep -h "fenced" "$T/telserver-t2.log" | head -n 2 | sed 's/^/  t2: /'
rq_check_sanitizers
printf 'test_fleet: OK in %d s\n' $(( ($(rq_now_ms) - T_START) / 1000 ))

#!/usr/bin/env bash
# Crash test: while a client submits RQ_CRASH_CALLS (2200) short calls to a
# SIPp that answers as the customers, every daemon type is killed with
# SIGKILL at random moments and restarted, and Redis (appendonly, appendfsync
# always) is killed and restarted twice.  At the end every accepted call must
# be in exactly one terminal state, in Redis and in PostgreSQL; no attempt
# (X-Ringq-Attempt) may reach the customer in two SIP dialogs; PostgreSQL
# must hold exactly one attempt record per dispatched attempt, and every
# completed attempt's ringing and answered events (the telservers' ZeroMQ
# outbox, kept across their kills by its journal); nothing lost.  Prints
# the counts; fails on any loss or duplicate.
#
# Environment: RQ_CRASH_CALLS (2200), RQ_CRASH_RATE (16 calls/s submitted),
# RQ_CRASH_SEED (random; printed, set it to replay the same kill schedule),
# RQ_CRASH_DRAIN_S (150: how long the calls may take to end after the last
# submission), RQ_KEEP=1 keeps $T (logs, SIPp's log, the client's records).
: "${RQ_SOURCE:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need sipp psql jq ss
CALLS=${RQ_CRASH_CALLS:-2200}
RATE=${RQ_CRASH_RATE:-16}
DRAIN_S=${RQ_CRASH_DRAIN_S:-150}
SEED=${RQ_CRASH_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
echo "crash test: $CALLS calls at $RATE/s, seed $SEED"

# --- servers, config, SIPp ---------------------------------------------------
rq_start_redis --appendonly yes --appendfsync always
rq_start_pg

# Retries come fast (an interrupted call is tried again after ~1 s) so the
# test ends in minutes; room for several interruptions of one call.
TENANT_RETRY="max_attempts = 8
retry_network_attempts = 6
retry_network_delay_s = 1
retry_no_answer_attempts = 3
retry_no_answer_delay_s = 1
retry_busy_attempts = 3
retry_busy_delay_s = 1"
rq_write_config <<EOF
rate_per_second = 1000000
rate_per_day = 0
max_concurrent = 0
$TENANT_RETRY
EOF
# SIPp answers in 100 ms; give up on an unanswered INVITE sooner than 30 s;
# 40 calls use 80 of the 100 RTP ports rq_write_config gives (RTP + RTCP).
sed -i -e 's/^\[telserver\]$/&\nname = tel1\nring_timeout_s = 10\ncapacity = 40/' \
    "$RQ_CONF"
if ! out=$("$RQ_BUILD/gateway/ringq-gateway" -f "$RQ_CONF" -n 2>&1); then
	# a build without the tenant retry keys (issue 4, section 7): the
	# default delays (30 s and more) only make the drain longer
	grep -q 'retry_' <<<"$out" || rq_fail "config refused: $out"
	echo "NOTE: the gateway refuses the tenant retry keys ($out): default retry delays"
	sed -i '/^retry_/d' "$RQ_CONF"
	"$RQ_BUILD/gateway/ringq-gateway" -f "$RQ_CONF" -n >/dev/null ||
	    rq_fail "config refused: $("$RQ_BUILD/gateway/ringq-gateway" -f "$RQ_CONF" -n 2>&1)"
fi

# The second telserver: own name, SIP port, RTP ports and run_dir.
TEL2_CONF=$T/tel2.conf
TEL2_RTP=$(rq_port_block)
sed -e 's/^name = tel1$/name = tel2/' \
    -e "s#^run_dir = .*#run_dir = $T/run2#" \
    -e "s#^sip_url = .*#sip_url = sip:127.0.0.1:$(rq_free_port)#" \
    -e "s/^rtp_port_min = .*/rtp_port_min = $TEL2_RTP/" \
    -e "s/^rtp_port_max = .*/rtp_port_max = $((TEL2_RTP + 99))/" \
    "$RQ_CONF" > "$TEL2_CONF"

# One SIPp for every call, for the whole test (no -m, no -timeout).
SIPP_PORT=$(rq_free_port)
SIPP_LOG=$T/sipp-crash.actions
(cd "$T" && exec sipp -sf "$RQ_SOURCE/tests/integration/sipp/uas_crash.xml" \
    -i 127.0.0.1 -p "$SIPP_PORT" -mi 127.0.0.1 -mp "$(rq_port_block)" \
    -nostdin -bind_local -aa -trace_logs -log_file "$SIPP_LOG" \
    -trace_err -error_file "$T/sipp-crash.errors") \
    </dev/null >"$T/sipp-crash.log" 2>&1 &
rq_track sipp $!
rq_wait_for 10 rq_udp_bound "$SIPP_PORT"
SIPP_URI=sip:sipp@127.0.0.1:$SIPP_PORT

# --- daemons and their supervision ---------------------------------------------
TAGS=(accounting gateway scheduler dispatcher telserver-1 telserver-2)
declare -A CONF_OF=([telserver-2]=$TEL2_CONF)
declare -A DOWN_UNTIL=()	# tag -> ms: killed by us, restart then
declare -A KILLS=() RESTARTS=()
UNEXPECTED=()			# "tag status" of exits we did not cause

tag_spec() {			# telserver-1 -> telserver:1
	case $1 in
	telserver-*) echo "telserver:${1#telserver-}" ;;
	*) echo "$1" ;;
	esac
}

# launch TAG: starts a daemon without waiting for it (the supervision loop
# does not block); output appended to $T/TAG.log.
launch() {
	local tag=$1 name conf run pid
	name=${tag%%-*}
	conf=${CONF_OF[$tag]:-$RQ_CONF}
	run=$(RQ_CONF=$conf rq_conf_run_dir)
	mkdir -p "$run"
	rm -f "$run/ringq-$name.pid"
	printf '%s crash test: starting ringq-%s\n' "$(date -u +%T.%3N)" \
	    "$name" >> "$T/$tag.log"
	"$RQ_BUILD/$name/ringq-$name" -f "$conf" </dev/null >>"$T/$tag.log" 2>&1 &
	pid=$!
	rq_track "$tag" "$pid"
}

# Redis's AOF is kept in $T/redis across restarts.
redis_kill() {
	rq_kill_daemon redis
}

for tag in "${TAGS[@]}"; do
	RQ_CONF=${CONF_OF[$tag]:-$RQ_CONF} rq_start_daemon "$(tag_spec "$tag")"
done
rq_wait_for 10 curl -fsS -o /dev/null "$RQ_API/healthz"

# --- the client ----------------------------------------------------------------
# Submits CALLS calls at RATE/s from 8 threads, each with an
# Idempotency-Key; a refused connection, a timeout, 5xx or 429 is retried
# with the same key (the gateway is killed too) for up to 120 s.  Writes
# "index code id tries" per call to $T/accepted.txt.
cat > "$T/client.py" <<'EOF'
import http.client, json, sys, threading, time
api_port, key, to, n, rate, out = sys.argv[1:7]
n, rate = int(n), float(rate)
lock = threading.Lock()
state = {"next": 0}
rows = {}
t0 = time.time()

def submit(i):
    body = json.dumps({"to": to, "say": "Hi."})
    hdrs = {"Authorization": "Bearer " + key, "Content-Type": "application/json",
            "Idempotency-Key": "crash-%d" % i}
    tries, end = 0, time.time() + 120
    while True:
        tries += 1
        code, rid = 0, ""
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(api_port), timeout=5)
            c.request("POST", "/v1/calls", body, hdrs)
            r = c.getresponse()
            code = r.status
            data = r.read()
            c.close()
            if code in (200, 201, 202):
                rid = json.loads(data).get("id", "")
        except Exception:
            code = 0
        if code in (200, 201, 202) and rid:
            return code, rid, tries
        if code not in (0, 429, 500, 502, 503, 504) or time.time() > end:
            return code, "", tries
        time.sleep(0.3)

def worker():
    while True:
        with lock:
            i = state["next"]
            if i >= n:
                return
            state["next"] = i + 1
        due = t0 + i / rate
        d = due - time.time()
        if d > 0:
            time.sleep(d)
        rows[i] = submit(i)

ts = [threading.Thread(target=worker) for _ in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out, "w") as f:
    for i in range(n):
        code, rid, tries = rows[i]
        f.write("%d %d %s %d\n" % (i, code, rid or "-", tries))
print("client: %d submitted in %.1f s" % (n, time.time() - t0))
EOF
"$PY" "$T/client.py" "$RQ_HTTP_PORT" "$RQ_KEY" "$SIPP_URI" "$CALLS" "$RATE" \
    "$T/accepted.txt" </dev/null >"$T/client.out" 2>&1 &
rq_track client $!
CLIENT_PID=$!

# --- the kill schedule ---------------------------------------------------------
# Every daemon type twice (telserver: tel1 twice, tel2 once for longer than
# its liveness TTL so the scheduler's dead-node sweep ends its calls), Redis
# twice, in a random order at random moments over the submission.
EVENTS=(accounting accounting gateway gateway scheduler scheduler
    dispatcher dispatcher telserver-1 telserver-1 telserver-2 redis redis)
for ((i = ${#EVENTS[@]} - 1; i > 0; i--)); do
	j=$((RANDOM % (i + 1)))
	tmp=${EVENTS[$i]}; EVENTS[$i]=${EVENTS[$j]}; EVENTS[$j]=$tmp
done
SUBMIT_MS=$(( CALLS * 1000 / RATE ))
GAP=$(( (SUBMIT_MS - 8000) / ${#EVENTS[@]} ))
START=$(rq_now_ms)
next_at=$(( START + 4000 + RANDOM % GAP ))
ev=0
redis_down_until=0
LOG_EVENTS=()

note() {
	local s
	s=$(printf '%6.1fs %s' "$(awk -v ms=$(( $(rq_now_ms) - START )) 'BEGIN { print ms / 1000 }')" "$*")
	LOG_EVENTS+=("$s")
	echo "$s"
}

chaos() {
	local what=$1 down pid
	if [ "$what" = redis ]; then
		note "kill -9 redis-server"
		redis_kill
		redis_down_until=$(( $(rq_now_ms) + 1000 + RANDOM % 2000 ))
		KILLS[redis]=$(( ${KILLS[redis]:-0} + 1 ))
		return
	fi
	pid=$(rq_pid "$what")
	if [ -z "$pid" ]; then
		# down already (killed a moment ago): kill it later instead
		EVENTS+=("$what")
		return
	fi
	down=$(( 300 + RANDOM % 2200 ))
	# tel2: longer than RQ_NODE_TTL_MS (5 s): the scheduler ends its calls
	[ "$what" = telserver-2 ] && down=$(( 7000 + RANDOM % 2000 ))
	note "kill -9 $what (pid $pid), down for ${down} ms"
	printf '%s crash test: kill -9\n' "$(date -u +%T.%3N)" >> "$T/$what.log"
	rq_kill_daemon "$(tag_spec "$what")"
	DOWN_UNTIL[$what]=$(( $(rq_now_ms) + down ))
	KILLS[$what]=$(( ${KILLS[$what]:-0} + 1 ))
}

# supervise: restarts what we killed once its time has come, and what died
# by itself after 1 s (systemd's RestartSec=1); Redis first.
supervise() {
	local tag pid now rc
	now=$(rq_now_ms)
	if [ -z "$(rq_pid redis)" ] && (( now >= redis_down_until )); then
		rq_redis_launch
		note "redis-server restarted ($(rq_redis DBSIZE) keys)"
	fi
	for tag in "${TAGS[@]}"; do
		pid=$(rq_pid "$tag")
		if [ -n "$pid" ]; then
			rq_alive "$pid" && continue
			rc=0
			wait "$pid" 2>/dev/null || rc=$?
			unset "RQ_PIDS[$tag]"
			UNEXPECTED+=("$tag $rc")
			note "UNEXPECTED: $tag (pid $pid) exited with status $rc by itself"
			DOWN_UNTIL[$tag]=$(( now + 1000 ))
			continue
		fi
		if (( now >= ${DOWN_UNTIL[$tag]:-0} )); then
			launch "$tag"
			RESTARTS[$tag]=$(( ${RESTARTS[$tag]:-0} + 1 ))
			note "$tag restarted (pid $(rq_pid "$tag"))"
		fi
	done
}

while rq_alive "$CLIENT_PID"; do
	now=$(rq_now_ms)
	if (( ev < ${#EVENTS[@]} && now >= next_at )); then
		chaos "${EVENTS[$ev]}"
		ev=$((ev + 1))
		next_at=$(( now + GAP / 2 + RANDOM % GAP ))
	fi
	supervise
	sleep 0.2
done
# events the client outran (a slow machine): run them now
while (( ev < ${#EVENTS[@]} )); do
	chaos "${EVENTS[$ev]}"
	ev=$((ev + 1))
	for ((i = 0; i < 15; i++)); do supervise; sleep 0.2; done
done
unset "RQ_PIDS[client]"
wait "$CLIENT_PID" || rq_fail "the client failed: $(cat "$T/client.out")"
cat "$T/client.out"
# everything back up before the drain
for ((i = 0; i < 60; i++)); do
	supervise
	sleep 0.2
done

# --- drain ---------------------------------------------------------------------
awk '$3 != "-" { print $3 }' "$T/accepted.txt" | sort -u > "$T/ids.txt"
ACCEPTED=$(wc -l < "$T/ids.txt")
REFUSED=$(awk '$3 == "-"' "$T/accepted.txt" | wc -l)
(( ACCEPTED > 0 )) || rq_fail "no call was accepted"

# open_calls: accepted ids whose job is not terminal in Redis (one script).
open_calls() {
	rq_redis EVAL "local n = 0
for _, id in ipairs(ARGV) do
  local r = tonumber(redis.call('HGET', 'rq:job:' .. id, 'status_rank'))
  if r == nil or r % 16 < 6 then n = n + 1 end
end
return n" 0 $(cat "$T/ids.txt") 2>/dev/null || echo "?"
}
pg_open() {
	rq_psql "SELECT count(*) FROM calls WHERE status NOT IN
	    ('completed', 'failed', 'canceled', 'expired')" 2>/dev/null || echo "?"
}
t_drain=$(rq_now_ms)
while :; do
	supervise
	o=$(open_calls)
	[ "$o" = 0 ] && break
	if (( $(rq_now_ms) - t_drain > DRAIN_S * 1000 )); then
		note "drain: $o calls still open after ${DRAIN_S}s"
		break
	fi
	sleep 1
done
note "drain: Redis has every accepted call terminal ($o open)"
# completed attempts whose ringing or answered event (ZeroMQ, from the
# telserver's outbox and journal) is not stored yet
pg_unheard() {
	rq_psql "SELECT count(*) FROM call_events c WHERE c.status = 'completed'
	    AND (SELECT count(DISTINCT status) FROM call_events e
	         WHERE e.call_id = c.call_id AND e.attempt = c.attempt
	         AND e.status IN ('ringing', 'answered')) < 2" 2>/dev/null || echo "?"
}
# accounting catches up: every stream entry stored and deleted, every
# telserver event resent and stored
t_acct=$(rq_now_ms)
while (( $(rq_now_ms) - t_acct < 60000 )); do
	supervise
	[ "$(rq_redis XLEN rq:events 2>/dev/null)" = 0 ] && [ "$(pg_open)" = 0 ] &&
	    [ "$(rq_psql "SELECT count(*) FROM calls")" -ge "$ACCEPTED" ] &&
	    [ "$(pg_unheard)" = 0 ] && break
	sleep 1
done
note "accounting: rq:events length $(rq_redis XLEN rq:events), PostgreSQL open calls $(pg_open)"

# A clean stop of every daemon (SIGTERM, exit 0 within 10 s), then SIPp.
for tag in telserver-2 telserver-1 dispatcher scheduler gateway accounting; do
	rq_stop_daemon "$(tag_spec "$tag")"
done
rq_kill sipp 5 || true

# --- the counts ------------------------------------------------------------------
rq_psql "SELECT id, status, coalesce(reason, ''), attempts FROM calls" \
    | tr '|' ' ' > "$T/pg_calls.txt"
rq_psql "SELECT call_id, attempt, status FROM call_events" | tr '|' ' ' \
    > "$T/pg_events.txt"
rq_psql "SELECT call_id, attempt FROM attempts" | tr '|' ' ' > "$T/pg_attempts.txt"
# Redis: per id, status, attempts and the timeline's terminal entries
# (the job's fields "<attempt>:<status>", the only ones led by a digit).
rq_redis EVAL "local out = {}
for _, id in ipairs(ARGV) do
  local f = redis.call('HMGET', 'rq:job:' .. id, 'status', 'attempts', 'reason')
  local n = 0
  for _, k in ipairs(redis.call('HKEYS', 'rq:job:' .. id)) do
    local s = string.match(k, '^%d+:(%a+)$')
    if s == 'completed' or s == 'failed' or s == 'canceled' or s == 'expired' then n = n + 1 end
  end
  out[#out + 1] = id .. ' ' .. (f[1] or '-') .. ' ' .. (f[2] or '0') .. ' ' .. n .. ' ' .. (f[3] or '-')
end
return out" 0 $(cat "$T/ids.txt") > "$T/redis_calls.txt"
rq_redis SCARD rq:nodes >/dev/null

"$PY" - "$T" <<'EOF' > "$T/counts.txt" || true
import collections, sys
T = sys.argv[1]
TERM = {"completed", "failed", "canceled", "expired"}
ids = [l.strip() for l in open(T + "/ids.txt") if l.strip()]
idset = set(ids)
red = {}
for l in open(T + "/redis_calls.txt"):
    p = l.split()
    if len(p) >= 4:
        red[p[0]] = (p[1], int(p[2]), int(p[3]), p[4] if len(p) > 4 else "-")
pgc = {}
for l in open(T + "/pg_calls.txt"):
    p = l.split(" ")
    if len(p) >= 4:
        pgc[p[0]] = (p[1], p[2], int(p[3]))
ev_term = collections.Counter()
dispatched = set()
heard = collections.defaultdict(set)   # (id, attempt) -> ringing, answered
completed = set()
for l in open(T + "/pg_events.txt"):
    p = l.split()
    if len(p) == 3:
        if p[2] in TERM:
            ev_term[p[0]] += 1
        if p[2] == "dispatched":
            dispatched.add((p[0], int(p[1])))
        if p[2] in ("ringing", "answered"):
            heard[(p[0], int(p[1]))].add(p[2])
        if p[2] == "completed":
            completed.add((p[0], int(p[1])))
att_rows = collections.Counter()
for l in open(T + "/pg_attempts.txt"):
    p = l.split()
    if len(p) == 2:
        att_rows[(p[0], int(p[1]))] += 1
dialogs = collections.defaultdict(set)
no_header = gone = 0
for l in open(T + "/sipp-crash.actions", errors="replace"):
    p = l.replace("\0", "").split()
    if p and p[0] == "GONE":
        gone += 1
    if not p or p[0] != "INVITE":
        continue
    if len(p) != 4:
        no_header += 1
        continue
    dialogs[(p[1], int(p[2]))].add(p[3])

def out(k, v):
    print("%-52s %s" % (k, v))

red_term = [i for i in ids if i in red and red[i][0] in TERM]
red_one = [i for i in ids if i in red and red[i][2] == 1]
pg_term = [i for i in ids if i in pgc and pgc[i][0] in TERM]
pg_one = [i for i in ids if ev_term[i] == 1]
mismatch = [i for i in ids if i in red and i in pgc and red[i][0] != pgc[i][0]]
lost = sorted(i for i in ids if not (i in red and red[i][0] in TERM
              and i in pgc and pgc[i][0] in TERM))
multi = sorted(i for i in ids if ev_term[i] > 1 or (i in red and red[i][2] > 1))
dup = sorted(k for k, v in dialogs.items() if len(v) > 1)
dialled = set(dialogs)
ours = {k for k in dispatched if k[0] in idset}
no_row = sorted(k for k in ours if att_rows[k] != 1)
extra_rows = sorted(k for k in att_rows if k[0] in idset and k not in ours)
unclaimed = sorted(k for k in dialled if k not in dispatched)
unheard = sorted(k for k in completed if k[0] in idset and len(heard[k]) < 2)
statuses = collections.Counter(
    (pgc[i][0] + (" " + pgc[i][1] if pgc[i][1] else "")) for i in ids if i in pgc)
out("accepted (202)", len(ids))
out("terminal in Redis", len(red_term))
out("  with exactly one terminal timeline entry", len(red_one))
out("terminal in PostgreSQL calls", len(pg_term))
out("  with exactly one terminal call_events row", len(pg_one))
out("Redis and PostgreSQL status differ", len(mismatch))
out("more than one terminal status", len(multi))
out("attempts dispatched (PostgreSQL events)", len(ours))
out("attempts dialled (INVITEs seen by SIPp)", len(dialled))
out("attempts seen in 2+ SIP dialogs", len(dup))
out("attempts dialled without a dispatched event", len(unclaimed))
out("INVITEs without X-Ringq-Attempt", no_header)
out("SIP dialogs cut (SIPp got no ACK or BYE)", gone)
out("PostgreSQL attempt rows per dispatched attempt",
    "exactly 1 for %d of %d" % (len(ours) - len(no_row), len(ours)))
out("PostgreSQL attempt rows without a dispatched event", len(extra_rows))
out("completed attempts with their ringing and answered",
    "%d of %d" % (len([k for k in completed if k[0] in idset]) - len(unheard),
                  len([k for k in completed if k[0] in idset])))
out("calls dialled more than once (new attempts)",
    sum(1 for c in collections.Counter(k[0] for k in dialled).values() if c > 1))
out("lost", len(lost))
for s, c in sorted(statuses.items()):
    out("  final: " + s, c)
bad = []
if lost: bad.append("lost: " + " ".join(lost[:10]))
if multi: bad.append("several terminal statuses: " + " ".join(multi[:10]))
if mismatch: bad.append("Redis/PostgreSQL differ: " + " ".join(
    "%s(%s/%s)" % (i, red[i][0], pgc[i][0]) for i in mismatch[:10]))
if dup: bad.append("attempts in 2+ dialogs: " + " ".join(
    "%s/%d" % k for k in dup[:10]))
if unclaimed: bad.append("dialled without dispatched: " + " ".join(
    "%s/%d" % k for k in unclaimed[:10]))
if no_header: bad.append("%d INVITEs without X-Ringq-Attempt" % no_header)
if no_row: bad.append("dispatched attempts without exactly one row: " + " ".join(
    "%s/%d" % k for k in no_row[:10]))
if extra_rows: bad.append("attempt rows without dispatched: " + " ".join(
    "%s/%d" % k for k in extra_rows[:10]))
if unheard: bad.append("completed attempts without ringing or answered: " +
    " ".join("%s/%d" % k for k in unheard[:10]))
for b in bad:
    print("BAD " + b)
EOF
echo
echo "kill schedule (seed $SEED):"
printf '  %s\n' "${LOG_EVENTS[@]}"
echo
printf '%-52s %s\n' "calls submitted" "$CALLS"
printf '%-52s %s\n' "not accepted (client gave up or refused)" "$REFUSED"
printf '%-52s %s\n' "kills (kill -9)" "$(for k in "${!KILLS[@]}"; do printf '%s:%s ' "$k" "${KILLS[$k]}"; done)"
printf '%-52s %s\n' "daemons that exited by themselves" "${#UNEXPECTED[@]} ${UNEXPECTED[*]}"
grep -v '^BAD ' "$T/counts.txt"

fails=$(grep '^BAD ' "$T/counts.txt" | sed 's/^BAD //') || true
grep -q '^accepted' "$T/counts.txt" || rq_fail "the counting script failed"
if [ "$REFUSED" != 0 ]; then
	awk '$3 == "-" { c[$2]++ } END { for (k in c) printf "  HTTP %s: %d\n", k, c[k] }' \
	    "$T/accepted.txt"
fi
if [ -n "$fails" ]; then
	printf '%s\n' "$fails" >&2
	rq_fail "crash test: $(wc -l <<<"$fails") kind(s) of loss or duplicate"
fi
# Every request must get its 202 in the end: the tenant has no limits, and
# no daemon is down for more than a few seconds of the client's 120 s.
[ "$REFUSED" = 0 ] ||
    rq_fail "$REFUSED requests not accepted (HTTP code 0 = no answer): $(awk '$3 == "-" { print $2 }' "$T/accepted.txt" | sort | uniq -c | tr '\n' ' ')"
for s in "${UNEXPECTED[@]}"; do
	rc=${s##* }
	(( rc >= 128 )) && rq_fail "a daemon crashed by itself: $s"
done
echo "PASS"

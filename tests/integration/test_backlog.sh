#!/usr/bin/env bash
# Backpressure: when every telserver is full, the calls wait in Redis; no
# daemon's memory grows with the backlog, nor does any spin on it; when
# room comes the backlog drains, each call placed once, nothing lost.
#
# What a daemon holds is its ringq_heap_allocated_bytes (/metrics): the
# bytes malloc gave it and did not have back.  (Its resident memory keeps
# what it freed, at its peak, and under ASan its quarantine: it is printed,
# not judged.)
#
# 1-2. The only telserver takes 4 calls, to a SIPp that rings and never
#    answers (ring_timeout_s 600), so it stays full.  Calls are queued as
#    the gateway queues them (rq_enqueue: the gateway's ringq.create, from
#    C), SMALL and then BIG more.  Once the scheduler released them all and
#    accounting stored their events, no daemon may hold more than SLACK_KB
#    more with the big backlog than with the small one (the big one's ids
#    alone take several times that), nor use more than a tenth of a core
#    while the backlog waits.  The gateway takes a call by HTTP meanwhile:
#    it waits with the others.
# 3. A second telserver (dry run: it acks each call and ends it completed,
#    without SIP) joins, and the backlog drains through it.  Once every
#    event is stored and acknowledged, no daemon may hold more than
#    SLACK_KB more than before (a dispatcher that kept 16 bytes a call
#    failed it), and the dry-run telserver no more than the full one.  Every call
#    ends completed once, with one attempt, in PostgreSQL too, with its
#    ringing and answered events; the full telserver's customer got 4
#    INVITEs, no more.
#
# Environment: RQ_BACKLOG_SMALL (10000), RQ_BACKLOG_BIG (60000 more),
# RQ_BACKLOG_SLACK_KB (512).
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1
rq_need sipp psql curl jq

SMALL=${RQ_BACKLOG_SMALL:-10000}
BIG=${RQ_BACKLOG_BIG:-60000}
SLACK_KB=${RQ_BACKLOG_SLACK_KB:-512}
ROOM=4
ENQUEUE=$RQ_BUILD/tests/bench/rq_enqueue
[ -x "$ENQUEUE" ] || rq_fail "$ENQUEUE not built"

rq_start_redis
rq_start_pg
declare -A METRICS
for d in accounting scheduler dispatcher telserver telserver-2; do
	METRICS[$d]=$(rq_free_port)
done
rq_write_config <<EOF
rate_per_second = 1000000
rate_per_day = 0
max_concurrent = 0

[scheduler]
metrics_listen = 127.0.0.1:${METRICS[scheduler]}

[dispatcher]
metrics_listen = 127.0.0.1:${METRICS[dispatcher]}

[telserver]
metrics_listen = 127.0.0.1:${METRICS[telserver]}

[accounting]
metrics_listen = 127.0.0.1:${METRICS[accounting]}
EOF
# (the first [telserver] only: the one appended above says metrics_listen)
sed -i -e 's/^debug = yes$/debug = no/' \
    -e "0,/^\[telserver\]\$/s//&\nname = tel1\ncapacity = $ROOM\nring_timeout_s = 600/" \
    "$RQ_CONF"
rq_start_sipp_uas uas_ring.xml -timeout 0
rq_start_daemon accounting
rq_start_daemon gateway
rq_start_daemon scheduler
rq_start_daemon dispatcher
rq_start_daemon telserver
DAEMONS=(accounting gateway scheduler dispatcher telserver)
FIRST=("${DAEMONS[@]}")
HZ=$(getconf CLK_TCK)

# enqueue N PREFIX: N calls due now to the ringing SIPp.
enqueue() {
	"$ENQUEUE" "$REDIS_PORT" "$1" demo "$SIPP_URI" "$2" 500 4 >/dev/null ||
	    rq_fail "rq_enqueue of $1 calls failed"
}

# queues: where the calls are.
queues() {
	echo "ready $(rq_redis ZCARD rq:ready), delayed $(rq_redis ZCARD rq:delayed), inflight $(rq_redis ZCARD rq:inflight), on tel1 $(rq_redis SCARD rq:oncall:tel1), events $(rq_redis XLEN rq:events)"
}

# until_true SECONDS WHAT COMMAND...: runs COMMAND until it succeeds; after
# SECONDS fails with WHAT and where the calls are.
until_true() {
	local secs=$1 what=$2 end
	shift 2
	end=$(( $(rq_now_ms) + secs * 1000 ))
	until "$@"; do
		(( $(rq_now_ms) < end )) ||
		    rq_fail "$what after $secs s: $(queues)"
		sleep 0.2
	done
}

# waiting N: N calls wait in rq:ready, none in rq:delayed or leased, the
# telserver is full, and accounting stored every event.
waiting() {
	[ "$(rq_redis ZCARD rq:ready)" = "$1" ] &&
	    [ "$(rq_redis ZCARD rq:delayed)" = 0 ] &&
	    [ "$(rq_redis ZCARD rq:inflight)" = 0 ] &&
	    [ "$(rq_redis SCARD rq:oncall:tel1)" = "$ROOM" ] &&
	    rq_events_drained
}

# drained: nothing waits, nothing is leased, every event is stored.
drained() {
	[ "$(rq_redis ZCARD rq:ready)" = 0 ] &&
	    [ "$(rq_redis ZCARD rq:inflight)" = 0 ] &&
	    rq_events_drained
}

# metric DAEMON NAME: the value of its series NAME (no labels), or nothing
# when it cannot be read.
metric() {
	local url=http://127.0.0.1:${METRICS[$1]:-}/metrics
	[ "$1" = gateway ] && url=$RQ_API/metrics
	{ curl -sS -m 5 "$url" || true; } | awk -v n="$2" '$1 == n { print $2 }'
}

# heap_kb DAEMON: what it holds (ringq_heap_allocated_bytes), in kB.
heap_kb() {
	local b
	b=$(metric "$1" ringq_heap_allocated_bytes)
	[ -n "$b" ] && echo $((b / 1024))
}

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$(rq_pid "$1")/status"
}

# memory NAME DAEMON...: reads what each DAEMON holds into the associative
# array NAME; prints it, and its resident memory.
memory() {
	local -n into=$1
	local d line=
	shift
	for d in "$@"; do
		into[$d]=$(heap_kb "$d") ||
		    rq_fail "ringq-$d: no ringq_heap_allocated_bytes on /metrics"
		line+="$d ${into[$d]} ($(rss_kb "$d"))  "
	done
	echo "  kB held (resident): $line"
}

# grew_at_most BEFORE AFTER WHAT DAEMON...: fails when a DAEMON holds more
# than SLACK_KB more in AFTER than in BEFORE.
grew_at_most() {
	local -n a=$1 b=$2
	local what=$3 d
	shift 3
	for d in "$@"; do
		(( b[$d] - a[$d] <= SLACK_KB )) ||
		    rq_fail "ringq-$d grew by $(( b[$d] - a[$d] )) kB $what (at most $SLACK_KB)"
	done
}

# The telservers' ringing and answered events come over ZeroMQ; accounting
# takes them once it has read the stream to its end.
zmq_events() {
	rq_psql "SELECT count(*) FILTER (WHERE status = 'ringing'),
	    count(*) FILTER (WHERE status = 'answered') FROM call_events"
}

# stored: waits until every call has its ringing event and every one but
# the ringing ones its answered event; prints how long that took.
stored() {
	local t0
	t0=$(rq_now_ms)
	until [ "$(zmq_events)" = "$TOTAL|$((TOTAL - ROOM))" ]; do
		(( $(rq_now_ms) - t0 < 120000 )) ||
		    rq_fail "ringing|answered events in PostgreSQL after 120 s: $(zmq_events), expected $TOTAL|$((TOTAL - ROOM))"
		sleep 0.5
	done
	echo "  their ringing and answered events stored $(( ($(rq_now_ms) - t0) / 1000 )) s after"
	# and acknowledged: no telserver sends them again
	until_true 60 "events still unacknowledged" acked
	until_true 60 "accounting still storing" at_rest
	echo "  accounting acknowledged $(metric accounting ringq_accounting_events_acked_total) events (each stored once: $(rq_psql "SELECT count(*) FROM call_events"))"
}

# at_rest: accounting stored nothing for a second (the copies of events a
# telserver sent again while accounting lagged are still coming when the
# first copies are acknowledged).
at_rest() {
	local a b
	a=$(metric accounting ringq_accounting_events_acked_total)
	sleep 1
	b=$(metric accounting ringq_accounting_events_acked_total)
	[ -n "$a" ] && [ "$a" = "$b" ]
}

# acked: no event waits for accounting's acknowledgement on a telserver.
acked() {
	local d
	for d in telserver telserver-2; do
		[ "$(metric "$d" ringq_telserver_events_unacknowledged)" = 0 ] ||
		    return 1
	done
}

redis_used() {
	rq_redis INFO memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'
}

# 1. The small backlog: 4 calls ring, the others wait in rq:ready.
declare -A M1 M2 M3
enqueue "$SMALL" c_00000000000000aa
until_true 60 "$((SMALL - ROOM)) calls not waiting in rq:ready" \
    waiting $((SMALL - ROOM))
echo "backlog of $((SMALL - ROOM)) calls:"
memory M1 "${DAEMONS[@]}"

# 2. The big backlog.
used0=$(redis_used)
enqueue "$BIG" c_00000000000000bb
TOTAL=$((SMALL + BIG))
until_true 120 "$((TOTAL - ROOM)) calls not waiting in rq:ready" \
    waiting $((TOTAL - ROOM))
echo "backlog of $((TOTAL - ROOM)) calls (Redis: +$(( ($(redis_used) - used0) / BIG )) bytes a call):"
memory M2 "${DAEMONS[@]}"
grew_at_most M1 M2 "with $BIG more calls waiting" "${DAEMONS[@]}"

# None spins on a backlog it cannot place: 3 s of each daemon's CPU.
declare -A T0
for d in "${DAEMONS[@]}"; do
	T0[$d]=$(rq_cpu_ticks "$(rq_pid "$d")")
done
sleep 3
for d in "${DAEMONS[@]}"; do
	used=$(( $(rq_cpu_ticks "$(rq_pid "$d")") - T0[$d] ))
	echo "  ringq-$d: $(( used * 1000 / HZ )) ms of CPU in 3 s"
	(( used * 10 <= 3 * HZ )) ||
	    rq_fail "ringq-$d used $(( used * 1000 / HZ )) ms of CPU in 3 s while the backlog waited"
done

# The gateway takes a call meanwhile; it waits with the others.
rq_api POST /v1/calls -H 'Content-Type: application/json' \
    -d "{\"to\": \"$SIPP_URI\", \"say\": \"Hello.\"}" > "$T/post.json"
[ "$(rq_last_code)" = 202 ] ||
    rq_fail "POST during the backlog: $(rq_last_code) $(cat "$T/post.json")"
ID=$(jq -r .id "$T/post.json")
TOTAL=$((TOTAL + 1))
until_true 10 "the HTTP call $ID not waiting" waiting $((TOTAL - ROOM))
st=$(rq_api GET "/v1/calls/$ID" | jq -r .status)
[ "$st" = scheduled ] ||
    rq_fail "GET /v1/calls/$ID during the backlog: status $st, expected scheduled"

# 3. Room again: a dry-run telserver joins, and the backlog drains.
sed -e 's/^name = tel1$/name = tel2\ndry_run = yes/' \
    -e "s/^capacity = .*/capacity = 500/" \
    -e "s#^run_dir = .*#run_dir = $T/run2#" \
    -e "s#^sip_url = .*#sip_url = sip:127.0.0.1:$(rq_free_port)#" \
    -e "s#^metrics_listen = 127.0.0.1:${METRICS[telserver]}\$#metrics_listen = 127.0.0.1:${METRICS[telserver-2]}#" \
    "$RQ_CONF" > "$T/tel2.conf"
RQ_CONF=$T/tel2.conf rq_start_daemon telserver:2
DAEMONS+=(telserver-2)
# what accounting and the dry-run telserver hold meanwhile, and the events
# waiting for their acks there, four times a second
while :; do
	a=$(metric accounting ringq_heap_allocated_bytes)
	t=$(metric telserver-2 ringq_heap_allocated_bytes)
	u=$(metric telserver-2 ringq_telserver_events_unacknowledged)
	echo "${a:-0} ${t:-0} ${u:-0}"
	sleep 0.25
done > "$T/held" &
rq_track sampler $!
t0=$(rq_now_ms)
until_true 180 "the backlog not drained" drained
echo "the backlog drained through the dry-run telserver in $(( ($(rq_now_ms) - t0) / 1000 )) s"
stored
rq_kill sampler 2 || true
most() { awk -v c="$1" '$c > m { m = $c } END { print m + 0 }' "$T/held"; }
echo "  at most meanwhile: accounting held $(( $(most 1) / 1024 )) kB, the dry-run telserver $(( $(most 2) / 1024 )) kB with $(most 3) events unacknowledged"
memory M3 "${DAEMONS[@]}"

grew_at_most M2 M3 "carrying the $((TOTAL - ROOM)) calls" "${FIRST[@]}"
# The dry-run telserver was taking calls from its first moment: it is held
# to the full one's measure instead, which carried 4.
(( M3[telserver-2] - M3[telserver] <= SLACK_KB )) ||
    rq_fail "ringq-telserver-2 holds $(( M3[telserver-2] - M3[telserver] )) kB more than ringq-telserver after carrying the $((TOTAL - ROOM)) calls (at most $SLACK_KB)"

# Every call ended completed once, but the 4 still ringing; one attempt each.
q=$(rq_psql "SELECT count(*) FILTER (WHERE status = 'completed'),
    count(*) FILTER (WHERE status = 'ringing'), count(*) FROM calls")
[ "$q" = "$((TOTAL - ROOM))|$ROOM|$TOTAL" ] ||
    rq_fail "PostgreSQL's calls (completed|ringing|all): $q, expected $((TOTAL - ROOM))|$ROOM|$TOTAL"
q=$(rq_psql "SELECT count(*), count(DISTINCT call_id), max(attempt) FROM attempts")
[ "$q" = "$TOTAL|$TOTAL|1" ] ||
    rq_fail "PostgreSQL's attempts (rows|calls|highest attempt): $q, expected $TOTAL|$TOTAL|1"
invites=$(grep -c '^X-Ringq-Attempt' "$SIPP_LOG" || true)
[ "$invites" = "$ROOM" ] ||
    rq_fail "the full telserver's customer got $invites INVITEs, expected $ROOM"
echo "ok: $((TOTAL - ROOM)) calls waited in Redis while the telserver was full, then completed once each"

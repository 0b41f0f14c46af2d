#!/usr/bin/env bash
# Metrics and systemd notification: every daemon serves Prometheus text on
# /metrics (the gateway on its API address, the others on metrics_listen);
# during a real call to SIPp the values move (active calls, dispatch
# latency, calls ended by status, queue depths, events stored).  Then a
# daemon under a fake NOTIFY_SOCKET says READY=1 and STOPPING=1.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need curl
rq_need python3

SCHED_M=$(rq_free_port)
DISP_M=$(rq_free_port)
TEL_M=$(rq_free_port)
ACCT_M=$(rq_free_port)

rq_start_redis
REDIS_SOCK=	# the daemons on Redis's TCP port: their links' keepalive below
rq_start_pg
rq_write_config <<EOF
[scheduler]
metrics_listen = 127.0.0.1:$SCHED_M

[dispatcher]
metrics_listen = 127.0.0.1:$DISP_M

[telserver]
metrics_listen = 127.0.0.1:$TEL_M

[accounting]
metrics_listen = 127.0.0.1:$ACCT_M
EOF
for d in accounting gateway scheduler dispatcher telserver; do
	rq_start_daemon "$d"
done

declare -A URL=(
	[gateway]=$RQ_API/metrics
	[scheduler]=http://127.0.0.1:$SCHED_M/metrics
	[dispatcher]=http://127.0.0.1:$DISP_M/metrics
	[telserver]=http://127.0.0.1:$TEL_M/metrics
	[accounting]=http://127.0.0.1:$ACCT_M/metrics
)

# scrape DAEMON: the text into $T/DAEMON.prom (no API key: none needed).
scrape() {
	curl -sf --max-time 5 -o "$T/$1.prom" "${URL[$1]}"
}

# value DAEMON SERIES: the value of the series (exact name{labels}) in the
# last scrape, or nothing.
value() {
	awk -v s="$2" '$1 == s { print $2; exit }' "$T/$1.prom"
}

# at_least DAEMON SERIES N: the series is >= N in a fresh scrape.
at_least() {
	local v
	scrape "$1" || return 1
	v=$(value "$1" "$2")
	[ -n "$v" ] && awk -v v="$v" -v n="$3" 'BEGIN { exit !(v + 0 >= n) }'
}

# --- 1. every daemon answers, in the Prometheus text format ---------------------
for d in "${!URL[@]}"; do
	scrape "$d" || rq_fail "$d: GET ${URL[$d]} failed"
	grep -q '^# TYPE ringq_' "$T/$d.prom" || rq_fail "$d: no ringq_ metric"
	# every sample line is name{labels} number
	bad=$(grep -v '^#' "$T/$d.prom" |
	    grep -Ev '^(ringq|process)_[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$' || true)
	[ -z "$bad" ] || rq_fail "$d: malformed lines: $bad"
	# the process's own: memory it holds, resident, descriptors
	rss=$(value "$d" process_resident_memory_bytes)
	held=$(value "$d" ringq_heap_allocated_bytes)
	fds=$(value "$d" process_open_fds)
	procfds=$(ls "/proc/$(rq_pid "$d")/fd" | wc -l)
	# (the scrape's own connection was open then)
	[ "${rss:-0}" -ge 1048576 ] && [ "${held:-0}" -gt 0 ] &&
	    [ "${fds:-0}" -ge 3 ] &&
	    (( fds - procfds <= 1 && procfds - fds <= 1 )) ||
	    rq_fail "$d: resident $rss, held $held, descriptors $fds ($procfds in /proc)"
	echo "$d: $(grep -vc '^#' "$T/$d.prom") series"
done
ct=$(curl -s -o /dev/null -w '%{content_type}' "${URL[scheduler]}")
[[ $ct == text/plain* ]] || rq_fail "scheduler: Content-Type $ct"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SCHED_M/")
[ "$code" = 404 ] || rq_fail "scheduler: / answered $code, not 404"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${URL[gateway]}")
[ "$code" = 405 ] || rq_fail "gateway: POST /metrics answered $code, not 405"
[ "$(value telserver ringq_telserver_capacity)" -ge 1 ] ||
    rq_fail "telserver: no capacity gauge"
[ "$(value telserver ringq_telserver_events_unacknowledged)" = 0 ] ||
    rq_fail "telserver: events unacknowledged before any call"
# the state gauge follows rq:tel:<node> at the telserver's next tick
# once it has recovered its previous run's attempts: not at once
rq_wait_for 10 at_least telserver 'ringq_telserver_state{state="up"}' 1
[ "$(value telserver ringq_telserver_active_calls)" = 0 ] ||
    rq_fail "telserver: active calls not 0 at rest"
at_least dispatcher 'ringq_dispatcher_telservers{state="alive"}' 1 ||
    rq_fail "dispatcher: no live telserver counted"
# too few jobs yet to tell whether it is alone: two random choices
[ "$(value dispatcher ringq_dispatcher_alone)" = 0 ] ||
    rq_fail "dispatcher: alone before any job"
for q in delayed ready inflight hours events ended; do
	[ -n "$(value scheduler "ringq_queue_depth{queue=\"$q\"}")" ] ||
	    rq_fail "scheduler: no depth for $q"
done
[ "$(value accounting 'ringq_accounting_link_up{link="pg"}')" = 1 ] ||
    rq_fail "accounting: pg link not up"

# Each TCP link a daemon's synchronous glue holds to Redis (main links,
# subscriptions, blocking takes) has TCP keepalive on: a server gone
# silently is noticed in about 30 s, not never.
for d in scheduler dispatcher telserver accounting; do
	pid=$(rq_pid "$d")
	ss -tnoHp state established "( dport = :$REDIS_PORT )" |
	    grep "pid=$pid," > "$T/links-$d" || true
	n=$(wc -l < "$T/links-$d")
	k=$(grep -c "timer:(keepalive" "$T/links-$d" || true)
	(( n > 0 && k == n )) ||
	    rq_fail "$d: $k of its $n links to Redis have keepalive: $(cat "$T/links-$d")"
done

# --- 2. a real call: the values move ------------------------------------------
rq_start_sipp_uas uas_answer.xml
body=$(jq -cn --arg to "$SIPP_URI" \
    '{to: $to, say: "This is the metrics test. It speaks for a few seconds, so that the call is seen active."}')
resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
id=$(jq -er .id <<<"$resp")
echo "call $id to $SIPP_URI"
# A refused request is counted under its code.
rq_api POST /v1/calls -H 'Content-Type: application/json' -d '{}' >/dev/null
[ "$(rq_last_code)" = 400 ] || rq_fail "empty call not refused with 400"

rq_wait_for 20 at_least telserver ringq_telserver_active_calls 1 ||
    rq_fail "telserver: active calls never 1 during the call"
echo "during the call: $(grep -E '^ringq_telserver_(active|calls)' "$T/telserver.prom" | tr '\n' ' ')"
at_least dispatcher ringq_dispatch_latency_seconds_count 1 ||
    rq_fail "dispatcher: no dispatch latency observed"
at_least dispatcher ringq_dispatcher_dispatched_total 1 ||
    rq_fail "dispatcher: nothing dispatched"

call=$(rq_wait_call "$id" 60)
[ "$(jq -r .status <<<"$call")" = completed ] ||
    rq_fail "call $id ended $(jq -c '[.status, .reason, .sip_code]' <<<"$call")"
rq_wait_sipp 30 || rq_fail "SIPp scenario failed: see sipp0.errors"

rq_wait_for 5 at_least telserver \
    'ringq_telserver_calls_ended_total{status="completed",reason=""}' 1 ||
    rq_fail "telserver: completed call not counted"
at_least telserver ringq_telserver_calls_started_total 1 ||
    rq_fail "telserver: started call not counted"
# its ringing and answered reached the disk, synced off the SIP loop
rq_wait_for 5 at_least telserver \
    'ringq_sync_seconds_count{file="events_journal"}' 1 ||
    rq_fail "telserver: the events journal was never synced"
[ "$(value telserver 'ringq_sync_failures_total{file="events_journal"}')" = 0 ] ||
    rq_fail "telserver: a sync of the events journal failed"
[ "$(value telserver ringq_telserver_active_calls)" = 0 ] ||
    rq_fail "telserver: active calls not back to 0"
at_least gateway 'ringq_gateway_http_responses_total{code="202"}' 1 ||
    rq_fail "gateway: 202 not counted"
at_least gateway 'ringq_gateway_http_responses_total{code="400"}' 1 ||
    rq_fail "gateway: 400 not counted"
at_least gateway ringq_gateway_calls_accepted_total 1 ||
    rq_fail "gateway: accepted call not counted"
at_least scheduler 'ringq_scheduler_jobs_total{action="released"}' 1 ||
    rq_fail "scheduler: released job not counted"
# queued scheduled dispatched ringing answered completed
rq_wait_for 10 at_least accounting ringq_accounting_events_acked_total 6 ||
    rq_fail "accounting: events not counted"
at_least accounting ringq_accounting_events_stored_total 6 ||
    rq_fail "accounting: stored events not counted"
rq_wait_for 5 at_least scheduler 'ringq_queue_depth{queue="events"}' 0 ||
    rq_fail "scheduler: no events depth"
for d in scheduler dispatcher telserver accounting gateway; do
	scrape "$d"
	e=$(grep '^ringq_errors_total' "$T/$d.prom" || true)
	[ -z "$e" ] || echo "$d errors: $e"
done
grep -h -E '^ringq_(dispatch_latency_seconds_(count|sum)|queue_depth|accounting_events)' \
    "$T"/*.prom

# --- 3. sd_notify: READY=1 and STOPPING=1 under a NOTIFY_SOCKET ----------------
# A second scheduler (its own run_dir) tells a fake systemd.
sed "s|^run_dir = .*|run_dir = $T/run2|; /^metrics_listen/d" "$RQ_CONF" > "$T/b.conf"
python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(4096).decode() + "\n")
PY
rq_track notify $!
rq_wait_for 5 test -S "$T/notify.sock"
NOTIFY_SOCKET=$T/notify.sock RQ_CONF=$T/b.conf rq_start_daemon scheduler:b
rq_wait_for 10 grep -qx READY=1 "$T/notify.log" ||
    rq_fail "no READY=1 from the scheduler under NOTIFY_SOCKET"
rq_stop_daemon scheduler:b
rq_wait_for 5 grep -qx STOPPING=1 "$T/notify.log" ||
    rq_fail "no STOPPING=1 from the scheduler"
echo "sd_notify: $(tr '\n' ' ' < "$T/notify.log")"
rq_kill notify 2 || true

for d in telserver dispatcher scheduler gateway accounting; do
	rq_stop_daemon "$d"
done
echo "PASS"

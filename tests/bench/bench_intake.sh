#!/usr/bin/env bash
# Intake benchmark, run by hand (not part of deploy/test): accepted call
# requests per second over HTTP (wrk) and SMTP (Postfix's smtp-source), each
# beside a peer measured in the same run (redis-benchmark on the same Redis;
# a private Postfix smtpd with a discard transport), once per Redis fsync
# policy.  Prints a table.  docs/benchmarks.md explains the method.
#
#   tests/bench/bench_intake.sh        (RQ_BUILD=build, 10 s per HTTP run)
# Environment: RQ_BUILD, RQ_BENCH_SECONDS (10), RQ_BENCH_FSYNC ("everysec
# always"), RQ_BENCH_MAILS (20000 messages per SMTP run), RQ_KEEP=1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${RQ_SOURCE:=$(cd "$here/../.." && pwd)}"
: "${RQ_BUILD:=$RQ_SOURCE/build}"
export RQ_SOURCE RQ_BUILD

for c in wrk redis-benchmark redis-server smtp-source postfix psql; do
	if ! command -v "$c" >/dev/null && [ ! -x "/usr/sbin/$c" ]; then
		echo "bench_intake: $c is missing; install the bench tools with:" >&2
		echo "  apt-get install --no-install-recommends wrk postfix redis-tools" >&2
		exit 1
	fi
done
PATH=$PATH:/usr/sbin

# shellcheck source=../integration/lib.sh
. "$RQ_SOURCE/tests/integration/lib.sh"

SECS=${RQ_BENCH_SECONDS:-10}
MODES=${RQ_BENCH_FSYNC:-everysec always}
MAILS=${RQ_BENCH_MAILS:-20000}
CONNS=64
PF=""			# the private Postfix's config directory, when started
ROWS=()

bench_cleanup() {
	local rc=$?
	set +e		# (exit "$rc") below must not end the trap
	if [ -n "$PF" ]; then
		postfix -c "$PF" stop >/dev/null 2>&1 || true
	fi
	(exit "$rc")
	rq_cleanup
}
trap bench_cleanup EXIT

# row WHAT RATE P50 P99 PEER PEER_RATE
row() {
	ROWS+=("$(printf '%-34s %10s %8s %8s  %-30s %10s' "$@")")
}

# calls_stored: the demo tenant's jobs in Redis (what was really accepted).
calls_stored() {
	rq_redis ZCARD rq:calls:demo
}

# calls_recorded: the calls accounting has written to PostgreSQL.
calls_recorded() {
	rq_psql "SELECT count(*) FROM calls" 2>/dev/null || echo 0
}

# drain: waits (at most 300 s) until accounting has recorded every accepted
# call, so that one run's backlog does not take CPU from the next; sets
# DRAIN_S to the seconds it took.
drain() {
	local want t0 i
	want=$(( $(calls_stored) + PG_BASE ))
	t0=$(rq_now_ms)
	for ((i = 0; i < 3000; i++)); do
		(( $(calls_recorded) >= want )) && break
		sleep 0.1
	done
	DRAIN_S=$(awk -v ms=$(( $(rq_now_ms) - t0 )) 'BEGIN { printf "%.1f", ms / 1000 }')
	(( $(calls_recorded) >= want )) || DRAIN_S="(not yet) $DRAIN_S"
}

# kv NAME LINE: the value of NAME=... in a RQ_BENCH line.
kv() {
	sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"
}

# run_wrk SECONDS DELAY_MS: prints wrk's RQ_BENCH line; checks it against
# Redis.
run_wrk() {
	local secs=$1 delay=$2 before after out line acc
	before=$(calls_stored)
	out=$(RQ_KEY=$RQ_KEY RQ_BENCH_DELAY_MS=$delay wrk -t 2 -c "$CONNS" \
	    -d "${secs}s" --timeout 10s -s "$here/post_call.lua" \
	    "$RQ_API/v1/calls")
	printf '%s\n' "$out" >> "$T/wrk.out"
	line=$(grep '^RQ_BENCH ' <<<"$out") || rq_fail "wrk printed no result"
	after=$(calls_stored)
	acc=$(kv accepted "$line")
	# Redis may hold a few more: requests still in flight when wrk stopped.
	if (( after - before < acc )); then
		rq_fail "wrk counted $acc accepted but Redis holds $((after - before)) new jobs"
	fi
	printf '%s\n' "$line"
}

rate() {
	awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'
}

# bench_http MODE: full rate, then an open-ish load at half of it.
bench_http() {
	local mode=$1 line acc secs full half delay p50 p99 i got
	line=$(run_wrk "$SECS" 0)
	acc=$(kv accepted "$line")
	secs=$(kv seconds "$line")
	full=$(rate "$acc" "$secs")
	if [ "$(kv other "$line")" != 0 ] || [ "$(kv errors "$line")" != 0 ]; then
		rq_log "HTTP $mode: $(kv other "$line") non-202 answers, $(kv errors "$line") socket errors"
	fi
	row "HTTP POST /v1/calls, $mode" "$full" "$(kv p50_ms "$line")" \
	    "$(kv p99_ms "$line")" "redis-benchmark EVAL create" "@PEER@"
	drain
	row "  accounting caught up after" "${DRAIN_S} s" "" "" "" ""

	# Half the rate: each connection waits a random time (mean
	# CONNS/half s) before each request.  wrk counts latency from when the
	# request is written, so this is the service time at that load.
	# Calibrate the mean delay once on a short run.
	half=$((full / 2))
	delay=$(awk -v c="$CONNS" -v r="$half" 'BEGIN { printf "%.2f", c * 1000 / r }')
	for i in 1 2; do
		line=$(run_wrk 3 "$delay")
		got=$(rate "$(kv accepted "$line")" "$(kv seconds "$line")")
		delay=$(awk -v d="$delay" -v g="$got" -v r="$half" \
		    'BEGIN { d = d * g / r; if (d < 0.5) d = 0.5; printf "%.2f", d }')
		drain
	done
	line=$(run_wrk "$SECS" "$delay")
	got=$(rate "$(kv accepted "$line")" "$(kv seconds "$line")")
	p50=$(kv p50_ms "$line")
	p99=$(kv p99_ms "$line")
	row "HTTP at half rate, $mode" "$got" "$p50" "$p99" "(target $half/s)" ""
	drain
	# The peer runs after the gateway's load, on the same Redis.
	redis_peer "$mode"
	ROWS=("${ROWS[@]/@PEER@/$(printf '%10s' "$PEER_RATE")}")
}

# redis_peer MODE: redis-benchmark on the gateway's Redis: plain writes and
# an EVAL shaped like the gateway's create script (4 writes, 18 fields);
# sets PEER_RATE to the EVAL rate.
redis_peer() {
	local mode=$1 out lua eval_rate
	out=$(redis-benchmark -p "$REDIS_PORT" -P 1 -c "$CONNS" -n 200000 \
	    -r 1000000 -t set,hset,zadd -q 2>/dev/null | tr '\r' '\n' | grep -a 'requests per second')
	printf '%s\n' "$out" >> "$T/redis-benchmark.out"
	while read -r l; do
		row "  redis-benchmark ${l%%:*}, $mode" \
		    "$(sed -n 's/.*: \([0-9.]*\) requests.*/\1/p' <<<"$l" | cut -d. -f1)" \
		    "$(sed -n 's/.*p50=\([0-9.]*\).*/\1/p' <<<"$l")" "" "" ""
	done <<<"$out"
	lua="redis.call('HSET', KEYS[1], 'id', ARGV[1], 'tenant', 'demo', 'to', '+15551234567', 'say', 'Your table is ready.', 'priority', '5', 'not_before_ms', ARGV[2], 'metadata', '{\"bench\":true}', 'created_ms', ARGV[2], 'max_attempts', '3', 'attempts', '0', 'status', 'queued', 'status_rank', '0', 'updated_ms', ARGV[2]) redis.call('HSET', KEYS[2], '0:queued', ARGV[3]) redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1]) return 1"
	out=$(redis-benchmark -p "$REDIS_PORT" -P 1 -c "$CONNS" -n 200000 \
	    -r 100000000 -q EVAL "$lua" 4 rq:bench:job:__rand_int__ \
	    rq:bench:tl:__rand_int__ rq:bench:calls rq:bench:delayed \
	    __rand_int__ 1795255200000 \
	    '{"status":"queued","attempt":0,"at":"2026-11-21T10:00:00.000Z","ts_ms":1795255200000}' \
	    2>/dev/null | tr '\r' '\n' | grep -a 'requests per second')
	printf '%s\n' "$out" >> "$T/redis-benchmark.out"
	eval_rate=$(sed -n 's/.*: \([0-9.]*\) requests.*/\1/p' <<<"$out" | cut -d. -f1)
	row "  redis-benchmark EVAL create, $mode" "$eval_rate" \
	    "$(sed -n 's/.*p50=\([0-9.]*\).*/\1/p' <<<"$out")" "" "" ""
	redis-cli -p "$REDIS_PORT" --scan --pattern 'rq:bench:*' |
	    xargs -r -n 1000 redis-cli -p "$REDIS_PORT" DEL >/dev/null
	PEER_RATE=$eval_rate
}

# A request by e-mail for smtp-source -F: text body of Key: value lines.
write_mail() {
	printf 'From: bench@example.com\nTo: %s\nSubject: call\n\nTo: +15551234567\nSay: Your table is ready.\nX-Bench: yes\n' \
	    "$1" > "$T/mail.txt"
}

# smtp_run PORT RCPT: sends MAILS messages over CONNS sessions; prints
# messages per second.
smtp_run() {
	local port=$1 rcpt=$2 t0 t1
	write_mail "$rcpt"
	t0=$(rq_now_ms)
	smtp-source -s "$CONNS" -m "$MAILS" -d -F "$T/mail.txt" \
	    -f bench@example.com -t "$rcpt" -M bench.example.com \
	    "127.0.0.1:$port" >> "$T/smtp-source.out" 2>&1 ||
	    rq_fail "smtp-source to port $port failed (see smtp-source.out)"
	t1=$(rq_now_ms)
	awk -v n="$MAILS" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1000 / ms }'
}

# A private Postfix: smtpd on a free port, every message to the discard
# transport after cleanup has queued it (fsync'd) as usual.
start_postfix() {
	local port=$1
	PF=$T/postfix
	mkdir -p "$PF/queue" "$PF/data"
	chown postfix "$PF/data"
	cat > "$PF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localdomain
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = ringq.localhost
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
default_transport = discard
relay_transport = discard
local_transport = discard
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
EOF
	cat > "$PF/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
	postfix -c "$PF" check >"$T/postfix-check.out" 2>&1 ||
	    rq_fail "postfix check failed: $(tail -n 3 "$T/postfix-check.out")"
	postfix -c "$PF" start >"$T/postfix-start.out" 2>&1 ||
	    rq_fail "postfix did not start: $(tail -n 3 "$T/postfix-start.out")"
	rq_wait_for 15 rq_tcp_listening "$port"
}

# bench_smtp MODE: ringq's listener, then Postfix (once: it does not use
# Redis) beside it.
bench_smtp() {
	local mode=$1 before after ours
	before=$(calls_stored)
	ours=$(smtp_run "$RQ_SMTP_PORT" "$RQ_MAILTO")
	after=$(calls_stored)
	if (( after - before < MAILS )); then
		rq_fail "smtp-source sent $MAILS messages but Redis holds $((after - before)) new jobs"
	fi
	drain
	if [ -z "$PF" ]; then
		PF_PORT=$(rq_free_port)
		start_postfix "$PF_PORT"
		PF_RATE=$(smtp_run "$PF_PORT" "bench@ringq.localhost")
	fi
	row "SMTP smtp-source -s $CONNS, $mode" "$ours" "-" "-" \
	    "Postfix smtpd -> discard" "$PF_RATE"
}

rq_need ss
rq_start_pg
for mode in $MODES; do
	rq_log "Redis appendonly yes, appendfsync $mode"
	# An empty Redis each time: not the last mode's append-only file.
	rm -rf "$T/redis"
	rq_start_redis --appendonly yes --appendfsync "$mode"
	[ "$(rq_redis CONFIG GET appendfsync | tail -n 1)" = "$mode" ] ||
	    rq_fail "redis-server did not take appendfsync $mode"
	# This text goes to [tenant demo] (last in the file): rate limits far
	# above the load.  rq_write_config sets RQ_SMTP_PORT and RQ_MAILTO.
	RQ_CONF=$T/ringq-$mode.conf rq_write_config <<EOF
rate_per_second = 1000000
rate_per_day = 0
max_concurrent = 0
EOF
	# Non-debug logging, as in production; room for smtp-source's
	# sessions, all from 127.0.0.1.
	sed -i -e 's/^debug = yes$/debug = no/' \
	    -e 's/^\[smtp\]$/&\nmax_clients = 1000\nmax_clients_per_ip = 1000/' \
	    "$RQ_CONF"
	rq_start_daemon accounting
	rq_start_daemon gateway
	rq_wait_for 10 curl -fsS -o /dev/null "$RQ_API/healthz"
	# PostgreSQL outlives the modes; its calls so far are not this Redis's.
	PG_BASE=$(calls_recorded)

	bench_http "$mode"
	if rq_tcp_listening "$RQ_SMTP_PORT"; then
		bench_smtp "$mode"
	else
		row "SMTP, $mode" "(no listener)" "" "" "" ""
	fi

	rq_stop_daemon gateway
	rq_stop_daemon accounting
	rq_stop_redis
	unset RQ_CONF
done

printf '\n%-34s %10s %8s %8s  %-30s %10s\n' what "rate/s" "p50 ms" \
    "p99 ms" peer "peer/s"
printf '%s\n' "${ROWS[@]}"
printf '\n(%s: 2 wrk threads, %d connections, %d s; %d mails per SMTP run; %s)\n' \
    "$(nproc) cores" "$CONNS" "$SECS" "$MAILS" "$(date -u +%FT%TZ)"

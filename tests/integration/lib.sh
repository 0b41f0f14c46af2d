# shellcheck shell=bash
# Shared helpers for the end-to-end tests: start real redis-server,
# PostgreSQL, the ringq daemons and SIP peers on free ports, and stop them all
# when the test ends.  Source it: . "$RQ_SOURCE/tests/integration/lib.sh"
#
# Environment: RQ_BUILD (build dir), RQ_SOURCE (source dir), RQ_KEEP=1 keeps
# the temp dir $T after the test.  Everything a test starts is recorded by PID
# and stopped by the EXIT trap (SIGTERM, SIGKILL after 5 s).

set -euo pipefail

: "${RQ_SOURCE:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${RQ_BUILD:=$RQ_SOURCE/build}"
export RQ_SOURCE RQ_BUILD

# Inherited stdin may be a pipe that never closes: helpers that read stdin
# (rq_write_config) must only see what the test gives them explicitly.
exec </dev/null

T=$(mktemp -d "${TMPDIR:-/tmp}/ringq-test.XXXXXX")
chmod 755 "$T"		# the postgres user must reach $T/pg
mkdir -p "$T/run"
export T

# Sanitizer settings for the daemons (no effect on a plain build).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:print_stacktrace=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$RQ_SOURCE/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$RQ_SOURCE/tests/ubsan.supp"

# Ports handed out in this test are claimed machine-wide with mkdir, so that
# tests running in parallel never get the same one.
RQ_PORT_LOCKS=${RQ_PORT_LOCKS:-/tmp/ringq-port-locks}
mkdir -p "$RQ_PORT_LOCKS" 2>/dev/null || true
chmod 1777 "$RQ_PORT_LOCKS" 2>/dev/null || true
# claims of tests that were SIGKILLed: no test runs for an hour
find "$RQ_PORT_LOCKS" -mindepth 1 -maxdepth 1 -mmin +60 \
    -exec rmdir {} + 2>/dev/null || true
: > "$T/.ports"

# name -> PID of everything started here, in start order.
declare -A RQ_PIDS=()
RQ_ORDER=()
RQ_PG_DIR=""
RQ_CLEANING=0
HTTP_CODE=""

rq_log() {
	printf 'rq: %s\n' "$*" >&2
}

rq_log_tails() {
	local f n
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		case ${f##*/} in
		redis.log|sipp*.log|baresip*.log) n=8 ;;
		*) n=30 ;;
		esac
		printf '\n===== tail of %s =====\n' "${f##*/}" >&2
		tail -n "$n" "$f" >&2 || true
	done
	if [ -n "$RQ_PG_DIR" ] && [ -f "$RQ_PG_DIR/pg.log" ]; then
		printf '\n===== tail of pg.log =====\n' >&2
		tail -n 20 "$RQ_PG_DIR/pg.log" >&2 || true
	fi
}

# rq_fail MESSAGE: the test failed; the EXIT trap prints the log tails.
rq_fail() {
	printf 'FAIL: %s\n' "$*" >&2
	# also from a command substitution: the EXIT trap repeats it last
	printf '%s\n' "$*" >> "$T/.fail" 2>/dev/null || true
	exit 1
}

# rq_need CMD...: fails unless every command is installed.  deploy/ installs
# all of them, so a missing one is a broken set-up, not a reason to skip.
rq_need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null ||
		    rq_fail "$c is not installed (deploy/install-packages installs what the tests use; the benchmarks' own tools: docs/benchmarks.md)"
	done
}

# rq_need_pyzmq: fails unless /usr/bin/python3 has the zmq and msgpack
# modules (Debian's python3-zmq and python3-msgpack), for test stand-ins.
rq_need_pyzmq() {
	/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null ||
	    rq_fail "/usr/bin/python3 lacks zmq or msgpack (deploy/install-packages installs python3-zmq python3-msgpack)"
}

# --- ports -------------------------------------------------------------------

# Is PORT free on 127.0.0.1 for TCP and UDP (listening or bound)?
rq_port_unused() {
	local p=$1
	! ss -Htauln 2>/dev/null | grep -qE "[:.]${p}[[:space:]]"
}

rq_claim_port() {
	local p=$1
	mkdir "$RQ_PORT_LOCKS/$p" 2>/dev/null || return 1
	echo "$p" >> "$T/.ports"
}

# rq_free_port: prints a 127.0.0.1 port free for TCP and UDP, whose next port
# is free too (baresip takes port+1 for TLS).  Below the kernel's ephemeral
# range, so outgoing connections cannot take it first.
rq_free_port() {
	local p i
	for i in $(seq 1 500); do
		p=$((20000 + RANDOM % 10000))
		rq_port_unused "$p" && rq_port_unused $((p + 1)) || continue
		rq_claim_port "$p" || continue
		rq_claim_port $((p + 1)) || continue
		echo "$p"
		return 0
	done
	rq_fail "no free port found"
}

# rq_port_block: prints the first port of a block of 200 free ports (for RTP:
# 100 port pairs, the default telserver capacity of 100 calls).
rq_port_block() {
	local b i
	for i in $(seq 1 200); do
		# 40 blocks: a VoiceXML test runs several phones at once
		b=$((30000 + (RANDOM % 40) * 200))
		rq_claim_port "rtp$b" || continue
		echo "$b"
		return 0
	done
	rq_fail "no free RTP port block found"
}

rq_release_ports() {
	local p
	[ -f "$T/.ports" ] || return 0
	while read -r p; do
		rmdir "$RQ_PORT_LOCKS/$p" 2>/dev/null || true
	done < "$T/.ports"
}

# --- processes ---------------------------------------------------------------

# rq_alive PID: exists and is not a zombie (no fork: used in tight loops).
rq_alive() {
	local line
	[ -r "/proc/$1/stat" ] || return 1
	# 2>/dev/null before <: the open fails if the process ended since
	read -r line 2>/dev/null < "/proc/$1/stat" || return 1
	line=${line##*) }
	[ "${line%% *}" != Z ]
}

# rq_cpu_ticks PID: the user and system clock ticks (getconf CLK_TCK a
# second) the process has used.
rq_cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# rq_now_ms: milliseconds since the epoch, without a fork.
rq_now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# rq_track NAME PID: record a process started in the background.
rq_track() {
	RQ_PIDS[$1]=$2
	RQ_ORDER+=("$1")
}

# rq_pid NAME: prints the PID of a process started here.
rq_pid() {
	echo "${RQ_PIDS[$1]:-}"
}

# rq_kill NAME [SECONDS]: SIGTERM, SIGKILL after SECONDS (5); returns its
# exit status (137 when it had to be killed).
rq_kill() {
	local name=$1 secs=${2:-5} pid end rc=0
	pid=${RQ_PIDS[$name]:-}
	[ -n "$pid" ] || return 0
	unset "RQ_PIDS[$name]"
	kill -TERM "$pid" 2>/dev/null || true
	end=$(( $(rq_now_ms) + secs * 1000 ))
	while rq_alive "$pid" && (( $(rq_now_ms) < end )); do
		sleep 0.05
	done
	if rq_alive "$pid"; then
		rq_log "$name (pid $pid) ignored SIGTERM for ${secs}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 137
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

# rq_wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds, or
# fails the test.
# rq_logged FILE PATTERN: true once FILE has a line matching PATTERN (grep's
# basic syntax), waiting up to 5 s: the daemons write a round of their
# loop's info lines at its end (log_defer), so a line may follow by a few
# ms the answer or SIP message it tells about.
rq_logged() {
	local i
	for ((i = 0; i < 50; i++)); do
		grep -q -- "$2" "$1" && return 0
		sleep 0.1
	done
	return 1
}

rq_wait_for() {
	local secs=$1 end
	shift
	end=$(( $(rq_now_ms) + secs * 1000 ))
	while :; do
		if "$@"; then
			return 0
		fi
		if (( $(rq_now_ms) > end )); then
			rq_fail "timed out after ${secs}s waiting for: $*"
		fi
		sleep 0.1
	done
}

# --- Redis -------------------------------------------------------------------

RQ_REDIS_ARGS=()

rq_redis_up() {
	redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

# The Redis of the tests loads ringq-redis.so, as deploy/up's does;
# RQ_REDIS_MODULE=0 leaves it out (the lifecycle scripts then run in Lua),
# RQ_REDIS_MODULE_ARGS gives it arguments ("replication packed1").
# absolute: redis-server changes to its --dir before it loads modules
RQ_REDIS_MODULE_SO=$(realpath -m "$RQ_BUILD/common/ringq-redis.so")

rq_redis_launch() {
	mkdir -p "$T/redis"
	local sock=() module=()
	[ -z "${REDIS_SOCK:-}" ] ||
	    sock=(--unixsocket "$REDIS_SOCK" --unixsocketperm 700)
	if [ "${RQ_REDIS_MODULE:-1}" != 0 ]; then
		[ -f "$RQ_REDIS_MODULE_SO" ] ||
			rq_fail "$RQ_REDIS_MODULE_SO not built"
		# shellcheck disable=SC2206	# words, as redis-server's
		module=(--loadmodule "$RQ_REDIS_MODULE_SO" ${RQ_REDIS_MODULE_ARGS:-})
	fi
	# hash-max-listpack-value, lazyfree-lazy-expire: as deploy/up's
	# (docs/operations.md)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
	    "${sock[@]}" --appendonly no --daemonize no --dir "$T/redis" \
	    --hash-max-listpack-value 128 --lazyfree-lazy-expire yes \
	    --logfile "$T/redis.log" "${module[@]}" "${RQ_REDIS_ARGS[@]}" \
	    </dev/null \
	    >/dev/null 2>&1 &
	rq_track redis $!
	rq_wait_for 10 rq_redis_up
}

# rq_start_redis [extra redis-server args]: sets REDIS_PORT and REDIS_SOCK
# (its Unix socket, which the daemons use as deploy/up's do; tests and
# redis-cli use the port).
rq_start_redis() {
	RQ_REDIS_ARGS=("$@")
	REDIS_PORT=$(rq_free_port)
	REDIS_SOCK=$T/redis.sock
	# a long $TMPDIR: TCP, as deploy/up does (sockaddr_un holds 107)
	(( ${#REDIS_SOCK} <= 100 )) || REDIS_SOCK=
	export REDIS_PORT REDIS_SOCK
	rq_redis_launch
}

rq_stop_redis() {
	rq_kill redis 10 || true
}

# rq_restart_redis: stop and start again on the same port and with the same
# arguments (data kept in $T/redis when persistence was asked for).
rq_restart_redis() {
	rq_stop_redis
	rq_redis_launch
}

# rq_redis ARGS...: redis-cli against the test's Redis.
rq_redis() {
	redis-cli -p "$REDIS_PORT" "$@"
}

# rq_expect_reply REGEX REPLY WHAT: fails unless the server's REPLY (an
# SMTP answer) matches REGEX; says it did.
rq_expect_reply() {
	grep -qE "$1" <<<"$2" || rq_fail "$3: expected /$1/, got: $2"
	echo "ok: $3: $2"
}

# rq_dkim_key FILE: a new 2048-bit RSA DKIM key in FILE; prints its public
# half as a DKIM key record's p= (base64 DER).
rq_dkim_key() {
	local p
	openssl genrsa -out "$1" 2048 >/dev/null 2>&1
	p=$(openssl rsa -in "$1" -pubout -outform DER 2>/dev/null | base64 -w0)
	[ -n "$p" ] || rq_fail "openssl made no DKIM key in $1"
	echo "$p"
}

# rq_create_held: a gateway's create is held in Redis by CLIENT PAUSE WRITE
# (for rq_wait_for): a client blocked on ringq.create, not on another
# command (accounting's XREADGROUP, the scheduler's and the telserver's
# scripts each second).  Without the module the create is a script too,
# as theirs are: any blocked script then.
rq_create_held() {
	local cmd='ringq\.create'
	[ "${RQ_REDIS_MODULE:-1}" != 0 ] || cmd='(evalsha|eval|fcall)'
	rq_redis CLIENT LIST | grep -Eq "flags=[a-zA-Z]*b.* cmd=$cmd "
}

# rq_events_drained: every rq:events entry stored by accounting,
# acknowledged and deleted (for rq_wait_for).
rq_events_drained() {
	[ "$(rq_redis XLEN rq:events)" = 0 ] &&
	    [ "$(rq_redis XPENDING rq:events accounting | head -n 1)" = 0 ]
}

# --- PostgreSQL --------------------------------------------------------------

rq_as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

rq_pg_launch() {
	local bin
	bin=$(pg_config --bindir)
	rq_as_pg "$bin/pg_ctl" -D "$RQ_PG_DIR/data" -l "$RQ_PG_DIR/pg.log" \
	    -w -t 30 -o "-k $RQ_PG_DIR -p $PGPORT -c listen_addresses='' -c fsync=off" \
	    start >/dev/null || { tail -n 20 "$RQ_PG_DIR/pg.log" >&2; rq_fail "PostgreSQL did not start"; }
}

# rq_start_pg: sets PGHOST PGPORT PGUSER PG_CONNINFO; database ringq exists.
rq_start_pg() {
	local bin
	bin=$(pg_config --bindir)
	RQ_PG_DIR=$T/pg
	mkdir -p "$RQ_PG_DIR"
	[ "$(id -u)" = 0 ] && chown postgres "$RQ_PG_DIR"
	rq_as_pg "$bin/initdb" -D "$RQ_PG_DIR/data" -U postgres --auth=trust \
	    -E UTF8 --no-locale -N >"$T/initdb.out" 2>&1 ||
	    { cat "$T/initdb.out" >&2; rq_fail "initdb failed"; }
	PGHOST=$RQ_PG_DIR
	PGPORT=$(rq_free_port)
	PGUSER=postgres
	export PGHOST PGPORT PGUSER
	rq_pg_launch
	psql -X -q -d postgres -c "CREATE DATABASE ringq" >/dev/null
	PG_CONNINFO="host=$PGHOST port=$PGPORT dbname=ringq user=postgres"
	export PG_CONNINFO
}

# rq_stop_pg [mode]: stops PostgreSQL (fast; "immediate" simulates a crash).
rq_stop_pg() {
	[ -n "$RQ_PG_DIR" ] && [ -f "$RQ_PG_DIR/data/postmaster.pid" ] || return 0
	rq_as_pg "$(pg_config --bindir)/pg_ctl" -D "$RQ_PG_DIR/data" \
	    -m "${1:-fast}" -w -t 20 stop >/dev/null 2>&1 || true
}

rq_restart_pg() {
	rq_stop_pg "${1:-fast}"
	rq_pg_launch
}

# rq_psql SQL: prints the result unaligned, tuples only.
rq_psql() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d ringq -c "$1"
}

# --- configuration -----------------------------------------------------------

# rq_write_config: writes $RQ_CONF with free ports for every daemon and the
# demo tenant whose key is $RQ_KEY; appends the INI text given on stdin.
# Exports RQ_CONF RQ_KEY RQ_API RQ_HTTP_PORT RQ_DISPATCH_PORT RQ_EVENTS_PORT
# RQ_SIP_PORT RQ_RTP_MIN RQ_RTP_MAX, and RQ_SMTP (host:port), RQ_SMTP_PORT,
# RQ_MAIL_TOKEN and RQ_MAILTO (the demo tenant's request address).
rq_write_config() {
	local hash
	RQ_CONF=${RQ_CONF:-$T/ringq.conf}
	RQ_KEY="rq_demo_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
	hash=$(printf '%s' "$RQ_KEY" | sha256sum | cut -d' ' -f1)
	RQ_DISPATCH_PORT=$(rq_free_port)
	RQ_EVENTS_PORT=$(rq_free_port)
	RQ_HTTP_PORT=$(rq_free_port)
	# e-mail requests: the demo tenant's address is $RQ_MAILTO
	RQ_SMTP_PORT=$(rq_free_port)
	RQ_SMTP=127.0.0.1:$RQ_SMTP_PORT
	RQ_MAIL_TOKEN="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
	RQ_MAILTO="calls+$RQ_MAIL_TOKEN@ringq.localhost"
	export RQ_SMTP_PORT RQ_SMTP RQ_MAIL_TOKEN RQ_MAILTO
	RQ_SIP_PORT=$(rq_free_port)
	RQ_RTP_MIN=$(rq_port_block)
	# the config check wants capacity (default 100) <= port pairs
	RQ_RTP_MAX=$((RQ_RTP_MIN + 199))
	RQ_API=http://127.0.0.1:$RQ_HTTP_PORT
	export RQ_CONF RQ_KEY RQ_API RQ_HTTP_PORT RQ_DISPATCH_PORT \
	    RQ_EVENTS_PORT RQ_SIP_PORT RQ_RTP_MIN RQ_RTP_MAX
	cat > "$RQ_CONF" <<EOF
# written by tests/integration/lib.sh
[global]
run_dir = $T/run
debug = yes

[redis]
host = ${REDIS_SOCK:-127.0.0.1}
port = ${REDIS_PORT:-6379}

[postgres]
conninfo = ${PG_CONNINFO:-dbname=ringq}

[bus]
dispatch_endpoints = tcp://127.0.0.1:$RQ_DISPATCH_PORT
events_endpoint = tcp://127.0.0.1:$RQ_EVENTS_PORT

[gateway]
http_listen = 127.0.0.1:$RQ_HTTP_PORT

[smtp]
listen = $RQ_SMTP
domain = ringq.localhost

[dispatcher]
bind = tcp://127.0.0.1:$RQ_DISPATCH_PORT

[telserver]
sip_url = sip:127.0.0.1:$RQ_SIP_PORT
rtp_port_min = $RQ_RTP_MIN
rtp_port_max = $RQ_RTP_MAX
heartbeat_ms = 200
# the tests' VoiceXML servers are on 127.0.0.1
fetch_allow_loopback = yes

[tenant demo]
key_sha256 = $hash
allow_sip = yes
mail_token_sha256 = $(rq_sha256 "$RQ_MAIL_TOKEN")
callback_secret = rq-test-callback-secret
EOF
	if [ ! -t 0 ]; then
		echo >> "$RQ_CONF"
		cat >> "$RQ_CONF"
	fi
}

# rq_sha256 STRING: prints the hex SHA-256 of STRING (for extra tenants).
rq_sha256() {
	printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

# rq_idem_hash_ok NAME: fails unless NAME, a hash of idempotency keys
# (rq:idem:<tenant>:<ttl s>:<period>; common/keys.h), is of this period by
# Redis's clock or of the one before, and expires at the end of the next.
rq_idem_hash_ok() {
	local ttl=${1%:*} period=${1##*:} now left end
	ttl=${ttl##*:}
	now=$(rq_redis TIME | head -1)
	left=$(rq_redis TTL "$1")
	end=$(( (period + 2) * ttl - now ))
	(( period == now / ttl || period == now / ttl - 1 )) ||
		rq_fail "$1: not of this period (Unix time / $ttl) or the one before"
	(( left >= end - 2 && left <= end + 1 )) ||
		rq_fail "$1: TTL $left s, not the end of the next period ($end s)"
}

# --- daemons -----------------------------------------------------------------

rq_conf_run_dir() {
	sed -n 's/^[[:space:]]*run_dir[[:space:]]*=[[:space:]]*//p' "$RQ_CONF" | tail -n 1
}

# rq_start_daemon NAME[:INSTANCE] [args]: starts $RQ_BUILD/NAME/ringq-NAME
# -f $RQ_CONF args, output to $T/NAME.log (or NAME-INSTANCE.log), and waits
# until its PID file exists in the config's run_dir.  A second instance needs
# its own config (own run_dir): RQ_CONF=$T/b.conf rq_start_daemon telserver:b
rq_start_daemon() {
	local spec=$1 name exe tag log run pid i
	shift
	name=${spec%%:*}
	tag=$name
	[ "$spec" != "$name" ] && tag=$name-${spec#*:}
	exe=$RQ_BUILD/$name/ringq-$name
	[ -x "$exe" ] || rq_fail "$exe not built"
	log=$T/$tag.log
	run=$(rq_conf_run_dir)
	if [ -n "$run" ]; then
		mkdir -p "$run"
		# a daemon killed with SIGKILL left its PID file behind
		rm -f "$run/ringq-$name.pid"
	fi
	# RQ_DAEMON_NETNS: in that network namespace (ip netns exec execs the
	# daemon, so the pid is the daemon's)
	${RQ_DAEMON_NETNS:+ip netns exec "$RQ_DAEMON_NETNS"} \
	    "$exe" -f "$RQ_CONF" "$@" </dev/null >>"$log" 2>&1 &
	pid=$!
	rq_track "$tag" "$pid"
	for ((i = 0; i < 150; i++)); do
		rq_alive "$pid" || break
		if [ -z "$run" ] || [ -f "$run/ringq-$name.pid" ]; then
			return 0
		fi
		sleep 0.1
	done
	if rq_alive "$pid"; then
		rq_fail "ringq-$name (pid $pid) wrote no PID file in $run within 15 s"
	fi
	unset "RQ_PIDS[$tag]"
	wait "$pid" 2>/dev/null || true
	rq_fail "ringq-$name exited at start-up (see $tag.log)"
}

# rq_stop_daemon NAME[:INSTANCE]: SIGTERM; fails the test when it takes more
# than 10 s or exits with a non-zero status.
rq_stop_daemon() {
	local spec=$1 name tag rc=0
	name=${spec%%:*}
	tag=$name
	[ "$spec" != "$name" ] && tag=$name-${spec#*:}
	[ -n "${RQ_PIDS[$tag]:-}" ] || rq_fail "rq_stop_daemon: $tag not started"
	rq_kill "$tag" 10 || rc=$?
	[ "$rc" = 137 ] && rq_fail "ringq-$name did not stop within 10 s of SIGTERM"
	[ "$rc" = 0 ] || rq_fail "ringq-$name exited with status $rc after SIGTERM"
	return 0
}

# rq_kill_daemon NAME[:INSTANCE]: SIGKILL, to test crash recovery.
rq_kill_daemon() {
	local spec=$1 tag pid
	tag=${spec%%:*}
	[ "$spec" != "$tag" ] && tag=$tag-${spec#*:}
	pid=${RQ_PIDS[$tag]:-}
	[ -n "$pid" ] || return 0
	unset "RQ_PIDS[$tag]"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# rq_start_all: redis, PostgreSQL, config and the five daemons.
rq_start_all() {
	rq_start_redis
	rq_start_pg
	rq_write_config
	rq_start_daemon accounting
	rq_start_daemon gateway
	rq_start_daemon scheduler
	rq_start_daemon dispatcher
	rq_start_daemon telserver
}

# rq_start_www DIR: the third party's web server for VoiceXML tests
# (vxml_server.py): serves DIR on 127.0.0.1, logs each request as a JSON
# line in $T/www.log; sets WWW to its base URL.
rq_start_www() {
	python3 "$RQ_SOURCE/tests/integration/vxml_server.py" "$1" \
	    "$T/www.log" "$T/www.port" 2> "$T/www.err" &
	rq_track www $!
	rq_wait_for 10 test -s "$T/www.port"
	WWW=http://127.0.0.1:$(cat "$T/www.port")
}

# --- HTTP API ----------------------------------------------------------------

# rq_api METHOD PATH [curl args]: calls $RQ_API with the demo key (or
# whatever $RQ_KEY holds); prints the body and sets HTTP_CODE.  In a command
# substitution HTTP_CODE is lost: use $(rq_last_code) then.  Returns curl's
# status (non-zero when nothing answered).
rq_api() {
	local method=$1 path=$2 rc=0
	shift 2
	HTTP_CODE=$(curl -sS -m 10 -X "$method" -o "$T/.api_body" \
	    -w '%{http_code}' -H "Authorization: Bearer $RQ_KEY" \
	    "$@" "$RQ_API$path") || rc=$?
	[ -n "$HTTP_CODE" ] || HTTP_CODE=000
	echo "$HTTP_CODE" > "$T/.api_code"
	cat "$T/.api_body" 2>/dev/null || true
	rm -f "$T/.api_body"
	return "$rc"
}

rq_last_code() {
	cat "$T/.api_code" 2>/dev/null || echo 000
}

# rq_call_terminal ID: true when GET /v1/calls/ID shows a terminal status.
rq_call_terminal() {
	local st
	st=$(rq_api GET "/v1/calls/$1" 2>/dev/null | jq -r '.status // empty' 2>/dev/null) || return 1
	case $st in
	completed|failed|canceled|expired) return 0 ;;
	esac
	return 1
}

# rq_wait_call ID SECONDS: waits for a terminal status; prints the call JSON.
rq_wait_call() {
	rq_wait_for "$2" rq_call_terminal "$1"
	rq_api GET "/v1/calls/$1"
}

# --- SIP peers ---------------------------------------------------------------

rq_tcp_listening() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# rq_start_baresip NAME: an auto-answering baresip phone (user NAME) that
# plays a 440 Hz tone (or what RQ_BARESIP_SOURCE says, e.g.
# aufile,FILE.wav: a 48 kHz stereo WAV; the call ends with it) and records
# what it hears to $T/NAME/rec/dump-*-dec.wav (written when the call ends).  Sets BARESIP_PORT, BARESIP_URI,
# BARESIP_CTRL_PORT (ctrl_tcp) and BARESIP_REC.
rq_start_baresip() {
	local name=$1 dir rtp
	dir=$T/$name
	mkdir -p "$dir/rec"
	BARESIP_PORT=$(rq_free_port)
	BARESIP_CTRL_PORT=$(rq_free_port)
	rtp=$(rq_port_block)
	cat > "$dir/config" <<EOF
poll_method		epoll
net_interface		127.0.0.1
sip_listen		127.0.0.1:$BARESIP_PORT
audio_player		aubridge,nil
audio_alert		aubridge,nil
audio_source		${RQ_BARESIP_SOURCE:-ausine,440}
ausrc_srate		48000
ausrc_channels		2
rtp_ports		$rtp-$((rtp + 99))
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aufile.so
module			aubridge.so
module			sndfile.so
snd_path		$dir/rec
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$BARESIP_CTRL_PORT
EOF
	echo "<sip:$name@127.0.0.1:$BARESIP_PORT>;regint=0;answermode=auto;audio_codecs=PCMU" \
	    > "$dir/accounts"
	baresip -f "$dir" </dev/null >"$T/baresip-$name.log" 2>&1 &
	rq_track "baresip-$name" $!
	rq_wait_for 10 rq_tcp_listening "$BARESIP_PORT"
	rq_wait_for 10 rq_tcp_listening "$BARESIP_CTRL_PORT"
	BARESIP_URI=sip:$name@127.0.0.1:$BARESIP_PORT
	BARESIP_REC=$dir/rec
	export BARESIP_PORT BARESIP_URI BARESIP_CTRL_PORT BARESIP_REC
}

# rq_baresip_cmd JSON: sends one ctrl_tcp command (a netstring) to the last
# baresip started, e.g. {"command":"dial","params":"sip:..."}; prints the reply.
rq_baresip_cmd() {
	local cmd=$1
	python3 - "$BARESIP_CTRL_PORT" "$cmd" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
b = sys.argv[2].encode()
s.sendall(str(len(b)).encode() + b":" + b + b",")
s.settimeout(2)
try:
    print(s.recv(65536).decode(errors="replace"))
except socket.timeout:
    pass
EOF
}

# rq_start_sipp_uas SCENARIO [sipp args]: SIPp as a UAS on a free port, in the
# background, handling one call (-m 1 unless given).  SCENARIO is a path or
# a name in tests/integration/sipp/.  Sets SIPP_PORT, SIPP_URI (sip:sipp@...),
# SIPP_LOG (its <log> actions).  rq_wait_sipp waits for it and returns its
# exit status (0: every call passed its scenario).
rq_start_sipp_uas() {
	local scen=$1 mport n
	shift
	[ -f "$scen" ] || scen=$RQ_SOURCE/tests/integration/sipp/$scen
	[ -f "$scen" ] || rq_fail "no SIPp scenario $1"
	scen=$(realpath "$scen")
	SIPP_PORT=$(rq_free_port)
	mport=$(rq_port_block)
	n=${RQ_SIPP_N:-0}
	RQ_SIPP_N=$((n + 1))
	SIPP_LOG=$T/sipp$n.actions
	if [ $# -eq 0 ]; then
		set -- -m 1
	fi
	(cd "$T" && exec sipp -sf "$scen" -i 127.0.0.1 -p "$SIPP_PORT" \
	    -mi 127.0.0.1 -mp "$mport" -nostdin -bind_local \
	    -trace_msg -message_file "$T/sipp$n.messages" \
	    -trace_err -error_file "$T/sipp$n.errors" \
	    -trace_logs -log_file "$SIPP_LOG" \
	    -timeout 120s "$@") </dev/null >"$T/sipp$n.log" 2>&1 &
	rq_track "sipp$n" $!
	RQ_SIPP_LAST=sipp$n
	rq_wait_for 10 rq_udp_bound "$SIPP_PORT"
	SIPP_URI=sip:sipp@127.0.0.1:$SIPP_PORT
	export SIPP_PORT SIPP_URI SIPP_LOG
}

rq_udp_bound() {
	ss -Hauln 2>/dev/null | grep -qE "[:.]${1}[[:space:]]"
}

# rq_wait_sipp [SECONDS]: waits for the last SIPp to exit; returns its status.
rq_wait_sipp() {
	local secs=${1:-60} name pid end rc=0
	name=$RQ_SIPP_LAST
	pid=${RQ_PIDS[$name]:-}
	[ -n "$pid" ] || return 0
	end=$(( $(rq_now_ms) + secs * 1000 ))
	while rq_alive "$pid" && (( $(rq_now_ms) < end )); do
		sleep 0.1
	done
	rq_alive "$pid" && rq_fail "SIPp still running after ${secs}s"
	unset "RQ_PIDS[$name]"
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

# --- network namespaces ------------------------------------------------------
# For tests of several hosts (test_fleet.sh): each "host" is a network
# namespace plugged into a bridge that lives in a namespace of its own, so
# nothing is added to the host's own network.  Addresses come only from
# 198.18.0.0/15 (reserved for benchmark networks).  The EXIT trap deletes
# every namespace made here, after the processes are stopped; their veths
# go with them.

RQ_NETNS=()

# rq_netns_add NAME: creates the network namespace NAME with lo up.
rq_netns_add() {
	ip netns add "$1" 2>"$T/.netns.err" ||
	    rq_fail "ip netns add $1: $(cat "$T/.netns.err") (needs root and iproute2)"
	RQ_NETNS+=("$1")
	ip -n "$1" link set lo up
}

# rq_netns_bridge NS: a namespace NS holding the bridge br0 (up, no STP).
rq_netns_bridge() {
	rq_netns_add "$1"
	ip -n "$1" link add br0 type bridge forward_delay 0 stp_state 0
	ip -n "$1" link set br0 up
}

# rq_netns_plug NS BRNS PORT ADDR/PREFIX: a veth pair, eth0 in NS with the
# address, PORT in BRNS on its br0 (ip -n BRNS link set PORT down cuts NS
# off the network).
rq_netns_plug() {
	ip link add "$3" netns "$2" type veth peer name eth0 netns "$1" ||
	    rq_fail "veth $3 for $1"
	ip -n "$2" link set "$3" master br0 up
	ip -n "$1" addr add "$4" dev eth0
	ip -n "$1" link set eth0 up
}

# rq_netns_del_all: deletes the namespaces made by rq_netns_add, and the
# files a test gave them in /etc/netns/NAME (ip netns exec's resolv.conf).
rq_netns_del_all() {
	local n
	for n in "${RQ_NETNS[@]}"; do
		ip netns del "$n" 2>/dev/null || true
		[ -z "$n" ] || rm -rf "/etc/netns/$n"
	done
	RQ_NETNS=()
}

# --- sanitizers and clean-up -------------------------------------------------

# rq_check_sanitizers: fails when a log in $T holds a sanitizer report.
rq_check_sanitizers() {
	local f bad=0
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f"; then
			printf '\n===== sanitizer report in %s =====\n' "${f##*/}" >&2
			grep -nE -A 30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
			    "$f" | head -n 80 >&2
			bad=1
		fi
	done
	[ "$bad" = 0 ] || rq_fail "sanitizer report in a daemon log"
}

rq_cleanup() {
	local rc=$? i name
	[ "$RQ_CLEANING" = 1 ] && return
	RQ_CLEANING=1
	set +e
	# Daemons first (newest first), then peers and servers.
	for ((i = ${#RQ_ORDER[@]} - 1; i >= 0; i--)); do
		name=${RQ_ORDER[$i]}
		[ -n "${RQ_PIDS[$name]:-}" ] && kill -TERM "${RQ_PIDS[$name]}" 2>/dev/null
	done
	for ((i = ${#RQ_ORDER[@]} - 1; i >= 0; i--)); do
		name=${RQ_ORDER[$i]}
		[ -n "${RQ_PIDS[$name]:-}" ] && rq_kill "$name" 5
	done
	rq_stop_pg immediate
	rq_netns_del_all
	if [ "$rc" = 0 ]; then
		(RQ_CLEANING=0; rq_check_sanitizers) || rc=1
	fi
	if [ "$rc" != 0 ]; then
		rq_log_tails
		printf '\nFAIL (exit %s); files in %s\n' "$rc" "$T" >&2
		[ -f "$T/.fail" ] && sed 's/^/FAIL: /' "$T/.fail" >&2
	fi
	rq_release_ports
	if [ "${RQ_KEEP:-0}" != 1 ]; then
		rm -rf "$T"
	else
		printf 'kept %s\n' "$T" >&2
	fi
	exit "$rc"
}
trap rq_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

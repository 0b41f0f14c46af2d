# Shared by the benchmarks: those that run SIPp calling SIPp as their peer
# (bench_capacity.sh, bench_vxml.sh), and those that run ringq with dry-run
# telservers (bench_dispatch.sh, bench_latency.sh, bench_other_db.sh,
# bench_ended_buckets.sh, bench_balance.sh);
# sourced after tests/integration/lib.sh.

# bench_dry_run_config CAPACITY: $RQ_CONF (rq_write_config's) for the
# dispatch benchmarks: tenants without limits, non-debug logging as in
# production, and telserver tel1 in dry run (it claims each attempt, acks
# it and finishes it as completed, without SIP), taking CAPACITY calls.
bench_dry_run_config() {
	rq_write_config <<EOF
rate_per_second = 1000000
rate_per_day = 0
max_concurrent = 0
EOF
	sed -i -e 's/^debug = yes$/debug = no/' \
	    -e "s/^\[telserver\]\$/&\nname = tel1\ndry_run = yes\ncapacity = $1/" \
	    "$RQ_CONF"
	BENCH_CONF=$RQ_CONF
}

# bench_start_telserver I [CAPACITY]: dry-run telserver telI from
# bench_dry_run_config's file, with its own name, run directory and SIP
# port (and CAPACITY, when given).
bench_start_telserver() {
	local conf=$T/tel$1.conf cap=()
	[ -n "${2:-}" ] && cap=(-e "s/^capacity = .*/capacity = $2/")
	sed -e "s/^name = tel1\$/name = tel$1/" "${cap[@]}" \
	    -e "s#^run_dir = .*#run_dir = $T/run$1#" \
	    -e "s#^sip_url = .*#sip_url = sip:127.0.0.1:$(rq_free_port)#" \
	    "$BENCH_CONF" > "$conf"
	RQ_CONF=$conf rq_start_daemon "telserver:$1"
}

# bench_start_dry_run: on the Redis started, a scheduler, a dispatcher and
# two dry-run telservers of 1,000 calls each (bench_dispatch.sh's
# daemons and settings), back once the dispatcher knows both.
bench_start_dry_run() {
	bench_dry_run_config 1000
	rq_start_daemon scheduler
	rq_start_daemon dispatcher
	bench_start_telserver 1
	bench_start_telserver 2
	sleep 1	# the dispatcher knows a telserver from its first heartbeat
}

# bench_arms_start: what the benches of arms (bench_other_db.sh,
# bench_ended_buckets.sh) run on: their settings (RATE, PASSES, SECS from
# RQ_BENCH_RATE, 12800 calls a second, RQ_BENCH_PASSES, 3 of each arm,
# RQ_BENCH_LAT_SECONDS, 8), node's modules and the load generator, a
# Redis with the AOF (everysec), its latency monitor and DEBUG
# (bench_tables), bench_start_dry_run's daemons, warmed up by 2,000 calls.
bench_arms_start() {
	# shellcheck disable=SC2034	# the calling script's
	RATE=${RQ_BENCH_RATE:-12800}
	# shellcheck disable=SC2034
	PASSES=${RQ_BENCH_PASSES:-3}
	# shellcheck disable=SC2034
	SECS=${RQ_BENCH_LAT_SECONDS:-8}
	rq_need node npm redis-server redis-cli
	bench_node_modules
	bench_generator
	rq_start_redis --appendonly yes --appendfsync everysec \
	    --latency-monitor-threshold 5 --enable-debug-command local \
	    "${BENCH_PIN_REDIS[@]}"
	bench_start_dry_run
	(cd "$RQ_SOURCE/tests/bench/bullmq" && node ringq.mjs throughput \
	    "$REDIS_PORT" 2000 demo sip:bench@127.0.0.1:5060) >/dev/null
}

# bench_arms_pooled RATE PASSES ARM...: each arm's passes pooled (their
# latencies in $T/ARM.hist), a line each.
bench_arms_pooled() {
	local rate=$1 passes=$2 arm
	shift 2
	for arm in "$@"; do
		echo "RQ_BENCH_POOLED arm=$arm rate_asked=$rate passes=$passes $(bench_hist_line "$T/$arm.hist")"
	done
}

# bench_cpu_ticks PID: rq_cpu_ticks, 0 for a process gone.
bench_cpu_ticks() {
	rq_cpu_ticks "$1" 2>/dev/null || echo 0
}

# bench_tone_wav FILE MS: MS of a 440 Hz tone as a G.711 u-law WAV (what the
# peer streams: the content does not matter to the network path).
bench_tone_wav() {
python3 - "$1" "$2" <<'EOF'
import math, struct, sys
def ulaw(x):
    s = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 132
    e = max(0, min(7, int(math.log2(x)) - 7))
    return ~(s | (e << 4) | ((x >> (e + 3)) & 0x0f)) & 0xff
n = 8 * int(sys.argv[2])
data = bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
             for i in range(n))
with open(sys.argv[1], "wb") as o:
    o.write(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 7, 1, 8000, 8000, 1, 8) +
            b"data" + struct.pack("<I", len(data)) + data)
EOF
}

# bench_uac_xml FILE WAV HOLD_MS: a SIPp UAC scenario that calls, streams
# WAV (rtp_stream, once) for HOLD_MS and hangs up.
bench_uac_xml() {
	local wav=$2 hold_ms=$3
cat > "$1" <<EOF
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench uac with G.711">
  <send retrans="500"><![CDATA[
INVITE sip:bob@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]Tag[call_number]
To: <sip:bob@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
X-Ringq-Attempt: peer[call_number]/1
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bench 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [rtpstream_audio_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:bob@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]Tag[call_number]
To: <sip:bob@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <nop><action><exec rtp_stream="$wav,1,0"/></action></nop>
  <pause milliseconds="$hold_ms"/>
  <send retrans="500"><![CDATA[
BYE sip:bob@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]Tag[call_number]
To: <sip:bob@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
</scenario>
EOF
}

# bench_info SECTION FIELD: a field of Redis's INFO SECTION.
bench_info() {
	rq_redis INFO "$1" | tr -d '\r' | sed -n "s/^$2://p"
}

# bench_wait_idle: waits, as long as 120 s, until Redis has no child (an
# AOF rewrite, due or running; an RDB save): a child stops Redis's key
# tables growing, and takes a core.  Prints INFO persistence then.
bench_wait_idle() {
	local i p
	for ((i = 0; i < 1200; i++)); do
		p=$(rq_redis INFO persistence | tr -d '\r')
		case $p in
		*aof_rewrite_in_progress:1* | *aof_rewrite_scheduled:1* | \
		    *rdb_bgsave_in_progress:1* | *module_fork_in_progress:1*)
			sleep 0.1 ;;
		*)	printf '%s\n' "$p"
			return 0 ;;
		esac
	done
	rq_fail "Redis still had a child process after 120 s"
}

# bench_aof_settle: rewrites the append-only file now and waits for the
# rewrite to end.  A bench leaves Redis with a fast-growing AOF, which Redis
# rewrites once it is over auto-aof-rewrite-min-size and twice its size
# after the last rewrite: a fork, and a child writing the whole dataset on
# the same two cores.  Rewritten just before a latency pass, the file is
# unlikely to reach the next rewrite within it, so the pass measures
# dispatch; the passes count the rewrites that still fall in them.
bench_aof_settle() {
	local reply
	reply=$(rq_redis BGREWRITEAOF)
	case $reply in
	*started* | *scheduled* | *"already in progress"*) ;;
	*) rq_fail "BGREWRITEAOF: $reply" ;;
	esac
	case $(bench_wait_idle) in
	*aof_last_bgrewrite_status:ok*) ;;
	*) rq_fail "the AOF rewrite failed (see redis.log)" ;;
	esac
}

# --- Redis's key tables around a latency pass ----------------------------------
# Redis keeps a database's keys, and the keys that expire, in two hash
# tables that double when full: the next commands then move every entry to
# the new table, a step each.  Each ringq call adds a key (rq:job:, its
# timeline inside, kept for the call's retention), so a bench that starts
# from an empty Redis doubles the table at 65,536, 131,072 and 262,144
# calls; meanwhile Redis works up to twice as long per command, for a
# second or two at 9,000 calls/s.  A Redis that holds days of calls doubles
# once each time its data does: a latency pass is measured on tables
# already grown (steady), and, to show that cost, on tables that double
# halfway through (doubling).  BENCH_DB (0 by default): the database whose
# tables the functions below read and pad.  Needs a Redis started with
# --enable-debug-command local (DEBUG HTSTATS).

# bench_tables: "KEYS/TABLE EXPIRING/TABLE", with "+rehashing" while Redis
# is still moving entries to a doubled table, and "+full" when a table
# holds as many as it has room for (a child kept it from doubling: the
# next new key will).
bench_tables() {
	rq_redis DEBUG HTSTATS "${BENCH_DB:-0}" | tr -d '\r' | awk '
	/^\[Dictionary HT\]/ { t = "keys" } /^\[Expires HT\]/ { t = "exp" }
	/Hash table 0/ { h = 0 } /Hash table 1/ { h = 1; re = 1 }
	/table size:/ { if (h == 0 || $3 > size[t]) size[t] = $3 }
	/number of elements:/ { n[t] += $4 }
	END { printf "%d/%d %d/%d%s\n", n["keys"], size["keys"], n["exp"],
	    size["exp"], re ? "+rehashing" : \
	    (n["keys"] > 0 && n["keys"] >= size["keys"]) ||
	    (n["exp"] > 0 && n["exp"] >= size["exp"]) ? "+full" : "" }'
}

# bench_pad_keys FROM TO: SETs, or with "exists" EXISTSs, of bench:pad:FROM
# to bench:pad:TO-1, keys without a TTL (as ended calls' jobs), in one pipe.
bench_pad_keys() {
	awk -v a="$1" -v b="$2" -v op="${3:-set}" 'BEGIN {
	    for (i = a; i < b; i++) { k = "bench:pad:" i
	        if (op == "set")
	            printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nx\r\n", length(k), k
	        else
	            printf "*2\r\n$6\r\nEXISTS\r\n$%d\r\n%s\r\n", length(k), k } }' |
	    rq_redis -n "${BENCH_DB:-0}" --pipe >/dev/null
}

# bench_pad N: N more pad keys, then, as long as 30 s, lookups of them
# until neither table is rehashing (a lookup moves one entry of each
# table it touches; Redis moves some by itself every 100 ms) nor full.
bench_pad() {
	local n=$1 from i
	bench_wait_idle >/dev/null
	from=$(( $(rq_redis -n "${BENCH_DB:-0}" INCRBY bench:pad:n "$n") - n ))
	(( n == 0 )) || bench_pad_keys "$from" $((from + n))
	for ((i = 0; i < 300; i++)); do
		bench_wait_idle >/dev/null
		case $(bench_tables) in
		*rehashing)
			bench_pad_keys 0 $((from + n)) exists ;;
		*full)
			from=$(( $(rq_redis -n "${BENCH_DB:-0}" INCR bench:pad:n) - 1 ))
			n=$((n + 1))
			bench_pad_keys "$from" $((from + 1)) ;;
		*)	return 0 ;;
		esac
		sleep 0.1
	done
	rq_fail "Redis's key tables still rehashing after 30 s"
}

# bench_keyspace MODE CALLS: pads the keyspace before a pass that adds
# CALLS calls.  steady: the table of keys large enough that the pass does
# not double it; doubling: full enough that the pass doubles it about
# halfway through.  Either way no rehashing is left over when the pass
# begins.  (Jobs have no TTL: the table of keys with one stays small.)
# RQ_BENCH_TABLE_MIN: the smallest table size to pad for (say 1048576 for
# a doubling at a million keys; 4 by default).
bench_keyspace() {
	# a key a call (rq:job:), and a few percent more
	local mode=$1 add=$(( $2 + $2 / 20 )) p size
	p=${RQ_BENCH_TABLE_MIN:-4}
	# Redis's tables are powers of two, of 4 buckets or more
	[[ $p =~ ^[1-9][0-9]*$ ]] && (( p >= 4 && (p & (p - 1)) == 0 )) ||
		rq_fail "RQ_BENCH_TABLE_MIN is a power of two, 4 or more (not '$p')"
	size=$(bench_pad_size "$mode" \
	    "$(rq_redis -n "${BENCH_DB:-0}" DBSIZE)" "$add" "$p")
	bench_pad "${size#* }"
}

# bench_pad_size MODE HELD ADD MIN: "SIZE N", the table size (a power of
# two from MIN) and the N entries to add to a table holding HELD, before a
# pass that adds ADD, so that the pass does not double it (steady) or
# doubles it about halfway (doubling).  Redis doubles a table when it is
# full and shrinks none that is a tenth full or more.
bench_pad_size() {
	local mode=$1 held=$2 add=$3 p n
	for ((p = $4; p < 1 << 40; p *= 2)); do
		if [ "$mode" = steady ]; then
			# at p/2 + 1 or more (a table of p), and the pass's
			# entries still fit in p
			n=$(( p / 2 + 1 - held ))
			(( n < 0 )) && n=0
			(( held + n + add < p )) && break
		else
			# the entries reach p halfway through the pass, and
			# are over p/2 before it (a table of p)
			n=$(( p - add / 2 - held ))
			(( n >= 0 && held + n > p / 2 )) && break
		fi
	done
	(( p < 1 << 40 )) || rq_fail "bench_pad_size $mode: no table size fits"
	echo "$p $n"
}

# bench_main_cpu: seconds of CPU Redis's main thread has used, less what
# XREADGROUP took since the last CONFIG RESETSTAT (the bench's own reading
# of rq:events after a pass).
bench_main_cpu() {
	rq_redis INFO cpu commandstats | tr -d '\r' | awk -F'[:,=]' '
	/^used_cpu_(user|sys)_main_thread:/ { s += $2 }
	/^cmdstat_xreadgroup:/ { for (i = 2; i < NF; i++)
	    if ($i == "usec") s -= $(i + 1) / 1e6 }
	END { print s + 0 }'
}

# bench_lat_pass MODE CALLS CMD...: a latency pass (CMD prints its RQ_BENCH
# line) of CALLS calls: Redis's key tables padded (bench_keyspace MODE; grow:
# as they are), the AOF rewritten, Redis's statistics and latency monitor
# reset; prints CMD's line with the AOF rewrites that fell in the pass,
# Redis's main-thread CPU per call and its key tables before and after
# (tables=BEFORE..AFTER, commas for spaces).  Exits when CMD fails.
bench_lat_pass() {
	local mode=$1 calls=$2 line rw cpu tables
	shift 2
	[ "$mode" = grow ] || bench_keyspace "$mode" "$calls"
	bench_aof_settle
	tables=$(bench_tables)
	rq_redis CONFIG RESETSTAT >/dev/null
	rq_redis LATENCY RESET >/dev/null
	rw=$(bench_info persistence aof_rewrites)
	cpu=$(bench_main_cpu)
	line=$("$@") || exit 1
	printf '%s rewrites=%d redis_us_per_call=%s tables=%s..%s\n' "$line" \
	    $(( $(bench_info persistence aof_rewrites) - rw )) \
	    "$(awk -v a="$cpu" -v b="$(bench_main_cpu)" -v n="$calls" \
	    'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / n : 0) }')" \
	    "${tables// /,}" "$(bench_tables | tr ' ' ',')"
}

# bench_hist_line FILE: the latencies ringq.mjs added to FILE
# (RQ_BENCH_LAT_HIST: "MS COUNT" lines, pass after pass) as one sample:
# "jobs=N p50_ms=P p99_ms=P max_ms=M", percentiles as ringq.mjs's pct().
bench_hist_line() {
	sort -n -k1,1 "$1" | awk '
	{ c[NR] = $1; k[NR] = $2; n += $2 }
	function pct(p,   i, want, seen) {
		want = int(p * n); if (want < p * n) want++	# ceil
		if (want < 1) want = 1
		for (i = 1; i <= NR; i++) { seen += k[i]; if (seen >= want) return c[i] }
	}
	END { if (n == 0) { print "jobs=0"; exit }
	    printf "jobs=%d p50_ms=%s p99_ms=%s max_ms=%s\n", n, pct(0.5),
	    pct(0.99), c[NR] }'
}

# bench_pin ARGS...: RQ_BENCH_PIN=1 (the default on two CPUs or more)
# runs the script again (ARGS) under taskset on all CPUs but the first,
# which Redis's main thread gets to itself (BENCH_PIN_REDIS, redis-server
# options), as for a deployment that gives Redis a core (docs/benchmarks.md,
# "Twentieth session").  Sets BENCH_PIN (the settings line's words) and
# BENCH_NCPU (the CPUs the bench was given).
bench_pin() {
	local cpus=() part i rest
	rq_need taskset
	# the CPUs this process may use and that are online
	for part in $(taskset -pc $$ | sed 's/.*: *//; s/,/ /g'); do
		for ((i = ${part%-*}; i <= ${part#*-}; i++)); do
			cpus+=("$i")
		done
	done
	if [ -n "${RQ_BENCH_REDIS_CPU:-}" ]; then
		# run again: all but the CPU Redis's main thread gets
		rest=${cpus[*]}
		rest=${rest// /,}
		BENCH_NCPU=$((${#cpus[@]} + 1))
		BENCH_PIN_REDIS=(--server_cpulist "$RQ_BENCH_REDIS_CPU"
		    --bio_cpulist "$rest" --aof_rewrite_cpulist "$rest"
		    --bgsave_cpulist "$rest")
		BENCH_PIN="Redis's main thread on CPU $RQ_BENCH_REDIS_CPU, every other process on CPUs $rest"
		unset RQ_BENCH_REDIS_CPU	# not for what the bench starts
		return 0
	fi
	BENCH_NCPU=${#cpus[@]}
	BENCH_PIN_REDIS=()
	BENCH_PIN="no CPU pinning"
	case ${RQ_BENCH_PIN:-1} in
	0)	return 0 ;;
	1)	;;
	*)	rq_fail "RQ_BENCH_PIN is 0 or 1, not $RQ_BENCH_PIN" ;;
	esac
	(( BENCH_NCPU >= 2 )) || return 0
	rest=${cpus[*]:1}
	export RQ_BENCH_REDIS_CPU=${cpus[0]}
	# nothing started yet: this run's directory goes, the next makes its own
	trap - EXIT
	rm -rf "$T"
	exec taskset -c "${rest// /,}" "$BASH" \
	    "$(cd "$(dirname "$0")" && pwd)/${0##*/}" "$@"
}

# bench_generator: ringq's load generator, from RQ_BENCH_GENERATOR: c (the
# default: tests/bench/rq_enqueue, C and hiredis as the gateway, exported
# to ringq.mjs as RQ_BENCH_ENQUEUE) or node (ringq.mjs's ioredis).  Sets
# BENCH_GENERATOR to what it is.
bench_generator() {
	case ${RQ_BENCH_GENERATOR:-c} in
	c)	RQ_BENCH_ENQUEUE=$(realpath -m "$RQ_BUILD/tests/bench/rq_enqueue")
		[ -x "$RQ_BENCH_ENQUEUE" ] || rq_fail "$RQ_BENCH_ENQUEUE not built"
		export RQ_BENCH_ENQUEUE
		BENCH_GENERATOR="rq_enqueue (C, hiredis, as the gateway)" ;;
	node)	unset RQ_BENCH_ENQUEUE
		BENCH_GENERATOR="ringq.mjs (node, ioredis)" ;;
	*)	rq_fail "RQ_BENCH_GENERATOR is c or node, not $RQ_BENCH_GENERATOR" ;;
	esac
}

# bench_node_modules: BullMQ and ioredis in tests/bench/bullmq/node_modules
# (npm install, the first time).
bench_node_modules() {
	local bq=$RQ_SOURCE/tests/bench/bullmq
	[ -f "$bq/node_modules/bullmq/package.json" ] &&
	    [ -f "$bq/node_modules/ioredis/package.json" ] && return 0
	rq_log "installing BullMQ and ioredis into $bq/node_modules"
	(cd "$bq" && npm install --no-audit --no-fund --loglevel=error) >&2 ||
	    rq_fail "npm install in $bq failed"
}

# Shared by the benchmarks: those that run SIPp calling SIPp as their peer
# (bench_capacity.sh, bench_vxml.sh), and those that run ringq with dry-run
# telservers (bench_dispatch.sh, bench_latency.sh, bench_balance.sh);
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

# bench_cpu_ticks PID: user + system clock ticks the process has used.
bench_cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
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

# bench_aof_info FIELD: a field of Redis's INFO persistence.
bench_aof_info() {
	rq_redis INFO persistence | tr -d '\r' | sed -n "s/^$1://p"
}

# bench_aof_settle: rewrites the append-only file now and waits for the
# rewrite to end.  A bench leaves Redis with a fast-growing AOF, which Redis
# rewrites once it is over auto-aof-rewrite-min-size and twice its size
# after the last rewrite: a fork, and a child writing the whole dataset on
# the same two cores.  Rewritten just before a latency pass, the file is
# unlikely to reach the next rewrite within it, so the pass measures
# dispatch; the passes count the rewrites that still fall in them.
bench_aof_settle() {
	local i reply
	reply=$(rq_redis BGREWRITEAOF)
	case $reply in
	*started* | *scheduled* | *"already in progress"*) ;;
	*) rq_fail "BGREWRITEAOF: $reply" ;;
	esac
	for ((i = 0; i < 1200; i++)); do
		if [ "$(bench_aof_info aof_rewrite_in_progress)" = 0 ] &&
		    [ "$(bench_aof_info aof_rewrite_scheduled)" = 0 ]; then
			[ "$(bench_aof_info aof_last_bgrewrite_status)" = ok ] ||
			    rq_fail "the AOF rewrite failed (see redis.log)"
			return 0
		fi
		sleep 0.1
	done
	rq_fail "the AOF rewrite took over 120 s"
}

# --- Redis's key tables around a latency pass ----------------------------------
# Redis keeps its keys, and the keys that expire, in two hash tables that
# double when full: the next commands then move every entry to the new
# table, a step each.  Each ringq call adds two keys that expire (rq:job:,
# rq:timeline:), so a bench that starts from an empty Redis doubles both
# at 131,072, 262,144 and 524,288 keys; meanwhile Redis works up to twice
# as long per command, for a second or two at 9,000 calls/s.  A Redis that
# holds days of calls doubles once each time its data does: a latency pass
# is measured on tables already grown (steady), and, to show that cost, on
# tables that double halfway through (doubling).  Needs a Redis started
# with --enable-debug-command local (DEBUG HTSTATS).

# bench_tables: "KEYS/TABLE EXPIRING/TABLE", with "+rehashing" while Redis
# is still moving entries to a doubled table.
bench_tables() {
	rq_redis DEBUG HTSTATS 0 | tr -d '\r' | awk '
	/^\[Dictionary HT\]/ { t = "keys" } /^\[Expires HT\]/ { t = "exp" }
	/Hash table 0/ { h = 0 } /Hash table 1/ { h = 1; re = 1 }
	/table size:/ { if (h == 0 || $3 > size[t]) size[t] = $3 }
	/number of elements:/ { n[t] += $4 }
	END { printf "%d/%d %d/%d%s\n", n["keys"], size["keys"], n["exp"],
	    size["exp"], re ? "+rehashing" : "" }'
}

# bench_pad N: N more keys that expire in an hour (bench:pad:*), then
# lookups of them until neither table is rehashing: a lookup moves one
# entry of each table it touches.
bench_pad() {
	local n=$1 from i
	from=$(rq_redis INCRBY bench:pad:n "$n")
	from=$((from - n))
	(( n > 0 )) && awk -v a="$from" -v b="$((from + n))" 'BEGIN {
	    for (i = a; i < b; i++) { k = "bench:pad:" i
	        printf "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nx\r\n$2\r\nPX\r\n$7\r\n3600000\r\n", length(k), k } }' |
	    rq_redis --pipe >/dev/null
	for ((i = 0; i < 20; i++)); do
		case $(bench_tables) in *rehashing) ;; *) return 0 ;; esac
		awk -v b="$((from + n))" 'BEGIN { for (i = 0; i < b; i++) {
		    k = "bench:pad:" i
		    printf "*2\r\n$6\r\nEXISTS\r\n$%d\r\n%s\r\n", length(k), k } }' |
		    rq_redis --pipe >/dev/null
	done
	rq_fail "Redis's key tables still rehashing after 20 rounds of lookups"
}

# bench_keyspace MODE CALLS: pads the keyspace before a pass that adds
# CALLS calls.  steady: both tables large enough that the pass doubles
# neither; doubling: full enough that the pass doubles both about halfway
# through.  Either way no rehashing is left over when the pass begins.
bench_keyspace() {
	local mode=$1 add=$(( 2 * $2 + 2 * $2 / 20 )) keys exp p=2 n
	keys=$(rq_redis DBSIZE)
	exp=$(rq_redis INFO keyspace | tr -d '\r' |
	    sed -n 's/^db0:.*expires=\([0-9]*\).*/\1/p')
	exp=${exp:-0}
	while :; do
		p=$((p * 2))
		if [ "$mode" = steady ]; then
			# both at p/2 + 1 or more (tables of p), and the
			# pass's keys still fit in p
			n=$(( p / 2 + 1 - exp ))
			(( n < 0 )) && n=0
			(( keys + n + add < p )) && break
		else
			# the expiring keys reach p halfway through the pass,
			# and are over p/2 before it (a table of p)
			n=$(( p - add / 2 - exp ))
			(( n >= 0 && exp + n > p / 2 && keys + n > p / 2 )) &&
			    (( keys + n < p )) && break
		fi
	done
	bench_pad "$n"
}

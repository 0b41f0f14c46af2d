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

#!/usr/bin/env bash
# VoiceXML benchmark, run by hand (not part of deploy/test): one telserver
# running RQ_BENCH_CALLS (200) VoiceXML applications at once, on calls to
# SIPp answering with RTP echo; prints the RTP send-interval jitter (the
# deviation of the time between two packets of one stream from 20 ms,
# measured outside the telserver from a tcpdump capture on loopback, and
# inside by the media layer), the telserver's CPU and memory per call.  In
# the same run, SIPp calling SIPp with G.711 (rtp_stream) the same number of
# calls, captured the same way, is the peer: what this machine and SIPp's
# own pacing give.  docs/benchmarks.md explains it and keeps the figures.
#
#   tests/bench/bench_vxml.sh        (RQ_BUILD=build)
# Environment: RQ_BUILD, RQ_BENCH_CALLS (200), RQ_BENCH_RATE (20 calls/s),
# RQ_BENCH_CAPTURE_S (10), RQ_KEEP=1.  Needs tcpdump (root).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

CALLS=${RQ_BENCH_CALLS:-200}
RATE=${RQ_BENCH_RATE:-20}
CAP_S=${RQ_BENCH_CAPTURE_S:-10}
# each call: ~6 s of prompts, then 30 s waiting for keys (silence is sent)
HOLD_S=36
rq_need sipp
rq_need tcpdump

rq_start_redis --appendonly yes --appendfsync everysec
rq_start_pg
rq_write_config <<EOF
rate_per_second = 100000
rate_per_day = 0
max_concurrent = 0
EOF
METRICS_PORT=$(rq_free_port)
sed -i -e 's/^debug = yes$/debug = no/' \
    -e "s/^rtp_port_min = .*/rtp_port_min = 40000/" \
    -e "s/^rtp_port_max = .*/rtp_port_max = $((40000 + 2 * (CALLS + 50) + 1))/" \
    -e "s/^\[telserver\]$/&\ncapacity = $((CALLS + 50))\nmetrics_listen = 127.0.0.1:$METRICS_PORT/" \
    "$RQ_CONF"
for d in accounting gateway scheduler dispatcher telserver; do
	rq_start_daemon "$d"
done
TEL_PID=$(rq_pid telserver)

# The application: a prompt, then a digits field that waits 30 s.
mkdir -p "$T/www"
cat > "$T/www/bench.vxml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<vxml version="2.1" xmlns="http://www.w3.org/2001/vxml">
  <form>
    <block>
      <prompt>This is the VoiceXML benchmark of ringq. The telephony server
        fetched this application and speaks this prompt on every call.</prompt>
    </block>
    <field name="keys" type="digits">
      <property name="timeout" value="30s"/>
      <prompt>Press keys if you like.</prompt>
      <noinput><exit/></noinput>
      <nomatch><exit/></nomatch>
    </field>
  </form>
</vxml>
EOF
rq_start_www "$T/www"
APP=$WWW/bench.vxml

# SIPp answers every call and echoes its RTP on one media port: the
# capture takes what reaches that port.
UAS_PORT=$(rq_free_port)
UAS_MPORT=$(rq_free_port)
(cd "$T" && exec sipp -sf "$RQ_SOURCE/tests/conformance/sipp/answer_stay.xml" \
    -i 127.0.0.1 -p "$UAS_PORT" -mi 127.0.0.1 -mp "$UAS_MPORT" -rtp_echo \
    -nostdin -bind_local -max_socket 4096 -trace_err \
    -error_file "$T/uas.errors") </dev/null >"$T/uas.log" 2>&1 &
rq_track uas $!
rq_wait_for 10 rq_udp_bound "$UAS_PORT"

rss_kb() {
	awk '/^VmRSS/ { print $2 }' "/proc/$1/status"
}
metric() {
	curl -sS "http://127.0.0.1:$METRICS_PORT/metrics" |
	    awk -v m="$1" '$1 == m { print $2 }'
}

# capture NAME: CAP_S seconds of what reaches the echoing UAS, then the
# send-interval jitter of each stream in it: "p50_us p99_us max_us streams
# packets".
capture() {
	timeout "$CAP_S" tcpdump -i lo -s 64 -w "$T/$1.pcap" -n \
	    "udp and dst port $UAS_MPORT" 2>"$T/$1.tcpdump" || true
	python3 - "$T/$1.pcap" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
magic = struct.unpack("<I", data[:4])[0]
nano = magic == 0xa1b23c4d
link = struct.unpack("<I", data[20:24])[0]
hdr = 14 if link == 1 else 16          # Ethernet, or Linux cooked
flows, off = {}, 24
while off + 16 <= len(data):
    s, frac, incl, _ = struct.unpack("<IIII", data[off:off + 16])
    pkt = data[off + 16:off + 16 + incl]
    off += 16 + incl
    ip = pkt[hdr:]
    if len(ip) < 28 or ip[9] != 17:
        continue
    ihl = (ip[0] & 15) * 4
    rtp = ip[ihl + 8:]
    if len(rtp) < 12:
        continue
    # one stream = one SSRC (SIPp sends every call from one port)
    ssrc = struct.unpack(">I", rtp[8:12])[0]
    t = s + frac / (1e9 if nano else 1e6)
    flows.setdefault(ssrc, []).append(t)
dev = []
for ts in flows.values():
    dev += [abs((b - a) * 1e6 - 20000) for a, b in zip(ts, ts[1:])]
dev.sort()
if not dev:
    print("0 0 0 0 0")
    sys.exit()
q = lambda p: dev[min(len(dev) - 1, int(p * len(dev)))]
print("%.0f %.0f %.0f %d %d" % (q(0.5), q(0.99), dev[-1], len(flows),
      sum(len(v) for v in flows.values())))
EOF
}

# --- ringq: CALLS VoiceXML calls ---------------------------------------------
cat > "$T/submit.py" <<'EOF'
import http.client, json, os, sys, time
n, rate = int(sys.argv[1]), float(sys.argv[2])
host, port = os.environ["RQ_API"].split("//")[1].split(":")
body = json.dumps({"to": os.environ["TO"], "app_url": os.environ["APP"]})
hdr = {"Content-Type": "application/json",
       "Authorization": "Bearer " + os.environ["RQ_KEY"]}
conn = http.client.HTTPConnection(host, int(port), timeout=10)
t0 = time.monotonic()
for i in range(n):
    delay = t0 + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    conn.request("POST", "/v1/calls", body, hdr)
    r = conn.getresponse()
    out = r.read()
    if r.status != 202:
        sys.stderr.write("POST: %d %s\n" % (r.status, out[:200]))
EOF
rss0=$(rss_kb "$TEL_PID")
TO=sip:bob@127.0.0.1:$UAS_PORT APP=$APP \
    python3 "$T/submit.py" "$CALLS" "$RATE" 2> "$T/submit.err"
all_up() {
	[ "$(metric ringq_telserver_active_calls)" -ge "$CALLS" ]
}
rq_wait_for 60 all_up || rq_fail "not $CALLS calls at once: $(metric ringq_telserver_active_calls)"
sleep 2
c0=$(bench_cpu_ticks "$TEL_PID")
t0=$(rq_now_ms)
read -r r50 r99 rmax rflows rpkts < <(capture ringq)
c1=$(bench_cpu_ticks "$TEL_PID")
t1=$(rq_now_ms)
active=$(metric ringq_telserver_active_calls)
rss1=$(rss_kb "$TEL_PID")
cpu=$(awk -v a="$c0" -v b="$c1" -v ms=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", (b - a) * 100000 / hz / ms }')
in50=$(metric 'ringq_telserver_rtp_send_jitter_us{quantile="0.5"}')
in99=$(metric 'ringq_telserver_rtp_send_jitter_us{quantile="0.99"}')
inmax=$(metric 'ringq_telserver_rtp_send_jitter_us{quantile="1"}')
rq_log "ringq: $active calls; capture: $rflows streams, $rpkts packets"
# let the calls end (noinput after 30 s: exit)
gone() {
	[ "$(metric ringq_telserver_active_calls)" = 0 ]
}
rq_wait_for $((HOLD_S + 60)) gone || rq_log "calls still active"
failed=$(curl -sS "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk '/^ringq_telserver_calls_ended_total/ && !/status="completed"/ { s += $2 } END { print s + 0 }')
completed=$(curl -sS "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk '/^ringq_telserver_calls_ended_total/ && /status="completed"/ { s += $2 } END { print s + 0 }')
rq_stop_daemon telserver

# --- the peer: SIPp calling SIPp, G.711 streamed ------------------------------
bench_tone_wav "$T/tone.wav" $((HOLD_S * 1000))
bench_uac_xml "$T/uac.xml" "$T/tone.wav" $((HOLD_S * 1000))
UAC_PORT=$(rq_free_port)
(cd "$T" && exec sipp -sf "$T/uac.xml" -i 127.0.0.1 -p "$UAC_PORT" \
    -mi 127.0.0.1 -mp 50000 -r "$RATE" -m "$CALLS" -l "$CALLS" -nostdin \
    -max_socket 4096 -timeout $((HOLD_S + 120))s "127.0.0.1:$UAS_PORT") \
    </dev/null >"$T/uac.log" 2>&1 &
UAC=$!
rq_track uac "$UAC"
sleep $((CALLS / RATE + 2))
pc0=$(bench_cpu_ticks "$UAC")
pt0=$(rq_now_ms)
read -r p50 p99 pmax pflows ppkts < <(capture peer)
pc1=$(bench_cpu_ticks "$UAC")
pt1=$(rq_now_ms)
pcpu=$(awk -v a="$pc0" -v b="$pc1" -v ms=$((pt1 - pt0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", (b - a) * 100000 / hz / ms }')
prss=$(rss_kb "$UAC")
wait "$UAC" || true
unset "RQ_PIDS[uac]"

us_ms() {
	awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'
}
printf '\n%-46s %10s %10s\n' "$CALLS calls at once, $CAP_S s captured" ringq "SIPp->SIPp"
printf '%-46s %10s %10s\n' "streams / packets captured" "$rflows/$rpkts" "$pflows/$ppkts"
printf '%-46s %10s %10s\n' "send-interval jitter p50 ms (capture)" "$(us_ms "$r50")" "$(us_ms "$p50")"
printf '%-46s %10s %10s\n' "send-interval jitter p99 ms (capture)" "$(us_ms "$r99")" "$(us_ms "$p99")"
printf '%-46s %10s %10s\n' "send-interval jitter max ms (capture)" "$(us_ms "$rmax")" "$(us_ms "$pmax")"
printf '%-46s %10s %10s\n' "jitter p50/p99/max ms (media layer, whole run)" \
    "$(us_ms "$in50")/$(us_ms "$in99")/$(us_ms "$inmax")" "-"
printf '%-46s %10s %10s\n' "CPU of one core (sender process)" "$cpu%" "$pcpu%"
printf '%-46s %10s %10s\n' "CPU per call, % of one core" \
    "$(awk -v c="$cpu" -v n="$CALLS" 'BEGIN { printf "%.3f", c / n }')" \
    "$(awk -v c="$pcpu" -v n="$CALLS" 'BEGIN { printf "%.3f", c / n }')"
printf '%-46s %10s %10s\n' "memory: RSS growth per call kB (ringq), RSS kB (SIPp)" \
    "$(( (rss1 - rss0) / CALLS ))" "$prss"
printf '%-46s %10s %10s\n' "calls completed / not completed" "$completed/$failed" "-"
echo "target: ringq p99 send-interval jitter < 5 ms"
echo "settings: $CALLS calls, $RATE calls/s, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"

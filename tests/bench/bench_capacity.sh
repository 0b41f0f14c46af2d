#!/usr/bin/env bash
# Capacity benchmark, run by hand (not part of deploy/test): one real
# telserver placing calls with G.711 audio (synthesised speech) to SIPp
# answering as the customers with RTP echo, at rising rates; for each step
# the calls per second completed, the most calls at once, the failed calls
# and the telserver's memory per call.  In the same run, SIPp calling SIPp
# the same way (a UAC streaming G.711 to the same echoing UAS) gives the
# ceiling of the machine and the tool.  docs/benchmarks.md explains it.
#
#   tests/bench/bench_capacity.sh        (RQ_BUILD=build)
# Environment: RQ_BUILD, RQ_BENCH_RATES ("25 50 100 150 200" calls/s),
# RQ_BENCH_STEP_S (20 s of new calls per step), RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD
# shellcheck source=bench_lib.sh
. "$here/bench_lib.sh"

RATES=${RQ_BENCH_RATES:-25 50 100 150 200}
STEP_S=${RQ_BENCH_STEP_S:-20}
CAPACITY=3000
# About 13 s of speech: with 50 new calls a second, about 670 at once.
SAY="Hello. This is a capacity test of the ringq telephony server. It plays this sentence as synthesised speech in G.711, and the far end echoes it back. Thank you, goodbye."
ROWS=()
row() {
	ROWS+=("$(printf '%-30s %8s %8s %9s %8s %10s %12s %6s' "$@")")
}

rq_need sipp

rq_start_redis --appendonly yes --appendfsync everysec
rq_start_pg
rq_write_config <<EOF
rate_per_second = 100000
rate_per_day = 0
max_concurrent = 0
EOF
# Room for CAPACITY calls: two RTP ports each, outside the tests' blocks.
sed -i -e 's/^debug = yes$/debug = no/' \
    -e "s/^rtp_port_min = .*/rtp_port_min = 40000/" \
    -e "s/^rtp_port_max = .*/rtp_port_max = $((40000 + 2 * CAPACITY + 1))/" \
    -e "s/^\[telserver\]$/&\ncapacity = $CAPACITY/" "$RQ_CONF"
for d in accounting gateway scheduler dispatcher telserver; do
	rq_start_daemon "$d"
done
TEL_PID=$(rq_pid telserver)
NODE=$(rq_redis --scan --pattern 'rq:tel:*' | head -n 1)
[ -n "$NODE" ] || rq_fail "no telserver state in Redis"

# SIPp answers every call and echoes its RTP (one media port for all).
UAS_PORT=$(rq_free_port)
UAS_MPORT=$(rq_free_port)
(cd "$T" && exec sipp -sf "$RQ_SOURCE/tests/integration/sipp/uas_answer.xml" \
    -i 127.0.0.1 -p "$UAS_PORT" -mi 127.0.0.1 -mp "$UAS_MPORT" -rtp_echo \
    -nostdin -bind_local -max_socket 4096 -trace_err \
    -error_file "$T/uas.errors" -trace_screen -screen_file "$T/uas.screen") \
    </dev/null >"$T/uas.log" 2>&1 &
rq_track uas $!
rq_wait_for 10 rq_udp_bound "$UAS_PORT"
TO=sip:bob@127.0.0.1:$UAS_PORT

# submit.py RATE SECONDS: POSTs calls at RATE a second on keep-alive
# connections; prints each id.
cat > "$T/submit.py" <<'EOF'
import http.client, json, os, sys, time
rate, secs = float(sys.argv[1]), float(sys.argv[2])
host, port = os.environ["RQ_API"].split("//")[1].split(":")
body = json.dumps({"to": os.environ["TO"], "say": os.environ["SAY"]})
hdr = {"Content-Type": "application/json",
       "Authorization": "Bearer " + os.environ["RQ_KEY"]}
conn = http.client.HTTPConnection(host, int(port), timeout=10)
n, t0 = int(rate * secs), time.monotonic()
for i in range(n):
    delay = t0 + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    conn.request("POST", "/v1/calls", body, hdr)
    r = conn.getresponse()
    out = r.read()
    if r.status != 202:
        sys.stderr.write("POST: %d %s\n" % (r.status, out[:200]))
        continue
    print(json.loads(out)["id"], flush=True)
EOF


# cpu_pct TICKS0 TICKS1 MS: per cent of one core over MS.
cpu_pct() {
	awk -v a="$1" -v b="$2" -v ms="$3" -v hz="$(getconf CLK_TCK)" \
	    'BEGIN { printf "%.0f%%", (b - a) * 100000 / hz / ms }'
}

# sample SECONDS: every 0.25 s, the telserver's active calls and RSS (kB);
# prints "max_active max_rss cpu" (cpu: its share of one core meanwhile).
sample() {
	local t0 c0 end a r ma=0 mr=0
	t0=$(rq_now_ms)
	c0=$(bench_cpu_ticks "$TEL_PID")
	end=$(( t0 + $1 * 1000 ))
	while (( $(rq_now_ms) < end )); do
		a=$(rq_redis HGET "$NODE" active)
		r=$(awk '/^VmRSS/ { print $2 }' "/proc/$TEL_PID/status")
		(( a > ma )) && ma=$a
		(( r > mr )) && mr=$r
		sleep 0.25
	done
	echo "$ma $mr $(cpu_pct "$c0" "$(bench_cpu_ticks "$TEL_PID")" $(( $(rq_now_ms) - t0 )))"
}

# statuses FILE: "completed other" among the ids in FILE.
statuses() {
	local c=0 o=0 id st
	while read -r id; do
		st=$(rq_redis HGET "rq:job:$id" status)
		if [ "$st" = completed ]; then c=$((c + 1)); else o=$((o + 1)); fi
	done < "$1"
	echo "$c $o"
}

# settled FILE: every call in FILE ended, or its first attempt did (a
# retrying call failed that attempt; its retry is minutes away).
settled() {
	local id st
	while read -r id; do
		st=$(rq_redis HGET "rq:job:$id" status)
		case $st in completed|failed|canceled|expired|retrying) ;; *) return 1 ;; esac
	done < "$1"
}

# wait_settled FILE SECONDS: waits for settled; 1 if it is not by then.
wait_settled() {
	local end=$(( $(rq_now_ms) + $2 * 1000 ))
	until settled "$1"; do
		(( $(rq_now_ms) < end )) || return 1
		sleep 1
	done
}

# One short call first: the speech is synthesised once, then cached.
echo "$(RQ_API=$RQ_API RQ_KEY=$RQ_KEY TO=$TO SAY=$SAY python3 "$T/submit.py" 1 1)" > "$T/warm.ids"
wait_settled "$T/warm.ids" 60 || rq_fail "the first call did not end"
talk_ms=$(rq_psql "SELECT max(talk_ms) FROM calls WHERE status = 'completed'" || true)
rq_log "one call plays ${talk_ms:-?} ms of speech"

BASE_RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$TEL_PID/status")
for rate in $RATES; do
	rq_log "ringq: $rate calls/s for $STEP_S s"
	RQ_API=$RQ_API RQ_KEY=$RQ_KEY TO=$TO SAY=$SAY \
	    python3 "$T/submit.py" "$rate" "$STEP_S" > "$T/step$rate.ids" 2>>"$T/submit.err" &
	sub=$!
	read -r max_active max_rss cpu < <(sample $((STEP_S + 12)))
	wait "$sub" || true
	wait_settled "$T/step$rate.ids" 120 ||
	    rq_log "some calls of the $rate/s step are still going on: counted as failed"
	read -r ok bad < <(statuses "$T/step$rate.ids")
	n=$((ok + bad))
	per_call=$(awk -v r="$max_rss" -v b="$BASE_RSS" -v a="$max_active" \
	    'BEGIN { if (a > 0) printf "%.0f", (r - b) / a; else print "-" }')
	row "ringq telserver, $rate/s" "$n" \
	    "$(awk -v o="$ok" -v s="$STEP_S" 'BEGIN { printf "%.1f", o / s }')" \
	    "$max_active" \
	    "$(awk -v b="$bad" -v n="$n" 'BEGIN { if (n) printf "%.2f%%", 100 * b / n; else print "-" }')" \
	    "$((max_rss / 1024)) MB" "$per_call kB" "$cpu"
done

# The peer: SIPp calling the same echoing UAS with G.711 audio for as long
# as one ringq call, at the same rates.
# (The audio's content does not matter to the network path: a tone as
# long as one ringq call, in G.711 u-law.)
hold_ms=${talk_ms:-10000}
bench_tone_wav "$T/speech.wav" "$hold_ms"
bench_uac_xml "$T/uac.xml" "$T/speech.wav" "$hold_ms"
# stat_col CSV NAME: NAME's value in the last line of SIPp's -trace_stat file.
stat_col() {
	[ -s "$1" ] || return 0
	awk -F';' -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i }
	    END { if (c) print $c }' "$1"
}
for rate in $RATES; do
	rq_log "SIPp to SIPp: $rate calls/s for $STEP_S s"
	n=$((rate * STEP_S))
	UAC_PORT=$(rq_free_port)
	(cd "$T" && exec sipp -sf "$T/uac.xml" -i 127.0.0.1 -p "$UAC_PORT" \
	    -mi 127.0.0.1 -mp 50000 \
	    -r "$rate" -m "$n" -l $((CAPACITY)) -nostdin -max_socket 4096 \
	    -trace_stat -stf "$T/uac$rate.csv" -fd 1 \
	    -timeout $((STEP_S + hold_ms / 1000 + 60))s "127.0.0.1:$UAS_PORT") \
	    </dev/null >"$T/uac$rate.log" 2>&1 &
	uac=$!
	rq_track "uac$rate" "$uac"
	max_c=0
	t0=$(rq_now_ms)
	c0=$(bench_cpu_ticks "$uac")
	c1=$c0
	while rq_alive "$uac"; do
		c1=$(bench_cpu_ticks "$uac")
		c=$(stat_col "$T/uac$rate.csv" 'CurrentCall')
		[[ "$c" =~ ^[0-9]+$ ]] && (( c > max_c )) && max_c=$c
		sleep 1
	done
	wait "$uac" || true
	unset "RQ_PIDS[uac$rate]"
	ok=$(stat_col "$T/uac$rate.csv" 'SuccessfulCall(C)')
	bad=$(stat_col "$T/uac$rate.csv" 'FailedCall(C)')
	row "SIPp -> SIPp, $rate/s" "$n" \
	    "$(awk -v o="$ok" -v s="$STEP_S" 'BEGIN { printf "%.1f", o / s }')" \
	    "$max_c" \
	    "$(awk -v b="$bad" -v n="$n" 'BEGIN { if (n) printf "%.2f%%", 100 * b / n; else print "-" }')" \
	    "" "" "$(cpu_pct "$c0" "$c1" $(( $(rq_now_ms) - t0 )))"
done

printf '\n%-30s %8s %8s %9s %8s %10s %12s %6s\n' what calls "done/s" "at once" failed \
    "RSS" "per call" "CPU"
printf '%s\n' "${ROWS[@]}"
printf '\n(%s cores; each call %s ms of speech, G.711 PCMU both ways; %s s of new calls per step; telserver RSS before: %s MB; %s)\n' \
    "$(nproc)" "$hold_ms" "$STEP_S" "$((BASE_RSS / 1024))" "$(date -u +%FT%TZ)"

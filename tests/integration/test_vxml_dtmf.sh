#!/usr/bin/env bash
# DTMF end to end, twice: baresip answers a VoiceXML application
# (vxml/dtmf.vxml: a menu of choices 1 and 2, then a four-digit field)
# and keys, on one timeline: nothing (noinput), 9 (not on the menu:
# nomatch), 2, then 1234.  First as RFC 4733 telephone-events
# (baresip's sndcode), then as in-band tones only (baresip playing a WAV of
# DTMF tones: no event is sent).  The application submits the answers and
# the events it caught to the test's server, which must see choice 2, pin
# 1234 and "noinput nomatch" both times.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_start_all

mkdir -p "$T/www"
cp "$RQ_SOURCE/tests/integration/vxml/dtmf.vxml" "$T/www/"
rq_start_www "$T/www"

# When each key is pressed, in seconds after the answer: silence past the
# first prompt and its 3 s timeout (noinput), 9 (nomatch), 2, then 1234.
KEYS_AT="7.0:9 10.0:2 12.5:1 12.8:2 13.1:3 13.4:4"

submissions() {
	[ -f "$T/www.log" ] && jq -s -c '[.[] | select(.path == "/submit")]' "$T/www.log"
}

# place TO: posts a call of dtmf.vxml to TO; prints its id.
place() {
	local body resp
	body=$(jq -cn --arg to "$1" --arg app "$WWW/dtmf.vxml" \
	    '{to: $to, app_url: $app}')
	resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
	jq -er .id <<<"$resp"
}

answered() {
	[ "$(rq_api GET "/v1/calls/$1" | jq -r .status)" = answered ]
}

# check N WHAT: the N-th submission has the answers and events expected.
check() {
	local got
	submitted() {
		[ "$(submissions | jq length)" -ge "$1" ]
	}
	rq_wait_for 30 submitted "$1"
	got=$(submissions | jq -c ".[$(($1 - 1))].fields")
	echo "$2: the application submitted $got"
	jq -e '.choice == "2" and .pin == "1234" and
	    .events == "noinput nomatch "' <<<"$got" >/dev/null ||
	    rq_fail "$2: expected choice 2, pin 1234, events 'noinput nomatch ', got $got"
}

# --- 1. RFC 4733 telephone-events ---------------------------------------------
rq_start_baresip bob
id=$(place "$BARESIP_URI")
rq_wait_for 30 answered "$id"
t0=$(date +%s.%N)
for k in $KEYS_AT; do
	at=${k%%:*}
	now=$(date +%s.%N)
	sleep "$(awk -v a="$at" -v t0="$t0" -v n="$now" 'BEGIN {
	    d = t0 + a - n; print (d > 0 ? d : 0) }')"
	rq_baresip_cmd "{\"command\":\"sndcode\",\"params\":\"${k#*:}\"}" >/dev/null
done
check 1 "RFC 4733"
call=$(rq_wait_call "$id" 30)
[ "$(jq -r .status <<<"$call")" = completed ] ||
    rq_fail "call $id ended $(jq -c '[.status, .reason, .detail]' <<<"$call")"
jq -e '.result.fields.pin == "1234"' <<<"$call" >/dev/null ||
    rq_fail "call $id: result $(jq -c .result <<<"$call")"

# --- 2. in-band tones only ----------------------------------------------------
# A 48 kHz stereo WAV (baresip's source format here) with the keys as DTMF
# tone pairs (Q.23 frequencies), 120 ms each, silence between; the WAV
# starts at the answer and lasts 20 s.
python3 - "$T/keys.wav" "$KEYS_AT" <<'EOF'
import math, struct, sys, wave
LOW = {'1': 697, '2': 697, '3': 697, '4': 770, '5': 770, '6': 770,
       '7': 852, '8': 852, '9': 852, '*': 941, '0': 941, '#': 941}
HIGH = {'1': 1209, '2': 1336, '3': 1477, '4': 1209, '5': 1336, '6': 1477,
        '7': 1209, '8': 1336, '9': 1477, '*': 1209, '0': 1336, '#': 1477}
rate, total = 48000, 20.0
pcm = [0] * int(rate * total)
for k in sys.argv[2].split():
    at, key = k.split(':')
    start = int(float(at) * rate)
    for i in range(int(0.12 * rate)):
        t = i / rate
        v = 0.35 * math.sin(2 * math.pi * LOW[key] * t) + \
            0.35 * math.sin(2 * math.pi * HIGH[key] * t)
        pcm[start + i] = int(v * 32767 * 0.7)
w = wave.open(sys.argv[1], 'wb')
w.setnchannels(2)
w.setsampwidth(2)
w.setframerate(rate)
w.writeframes(b''.join(struct.pack('<hh', s, s) for s in pcm))
w.close()
EOF
RQ_BARESIP_SOURCE=aufile,$T/keys.wav rq_start_baresip carol
id=$(place "$BARESIP_URI")
check 2 "in-band"
call=$(rq_wait_call "$id" 30)
jq -e '.result.fields.pin == "1234"' <<<"$call" >/dev/null ||
    rq_fail "call $id: result $(jq -c .result <<<"$call")"
# No telephone-event came from carol: the keys were heard in the audio.
if grep -q "received DTMF\|send DTMF" "$T/baresip-carol.log"; then
	rq_fail "carol's baresip sent telephone-events"
fi
rq_check_sanitizers
echo PASS

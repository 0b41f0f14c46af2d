#!/usr/bin/env bash
# The W3C VoiceXML 2.0 conformance tests as real calls: every test of
# ENTRY-NO-ASR.txt is the application of one call that ringq places, through
# all its daemons, to SIPp answering as the customer; the verdicts reach
# server.py by HTTP (outside the interpreter) and score.py prints
# "vxml-w3c: N/123 passed" and the failures.  The transfer tests dial
# tel:+18005551212 through the telserver's trunk: a SIPp per test plays the
# destination each test asks for (answers and hangs up, rings for ever, is
# busy, refuses).
#
# Environment: RQ_BUILD, RQ_CONF_PARALLEL (calls at once, 6),
# RQ_CONF_TEST_S (bound per test, 60), RQ_CONF_MIN (the pass rate in per
# cent below which this fails, 90), RQ_CONF_TESTS (ids to run instead of
# the whole list: a subset is not scored against the minimum), RQ_KEEP=1.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

CONF=$RQ_SOURCE/tests/conformance
CORPUS=${RQ_VXML_CORPUS:-$RQ_SOURCE/../shared/corpora/vxml-w3c}
if [ ! -f "$CORPUS/ENTRY-NO-ASR.txt" ]; then
	echo "no W3C corpus at $CORPUS: skipped" >&2
	exit 77
fi
PAR=${RQ_CONF_PARALLEL:-6}
TEST_S=${RQ_CONF_TEST_S:-60}
MIN=${RQ_CONF_MIN:-90}
rq_need sipp
rq_need jq

# Transfer tests run one at a time, each with its own destination phone:
# "scenario [sipp args]" (tests/conformance/README.md has the table).
declare -A TRUNK=(
	[288]="answer_bye.xml -d 2000"
	[289]="answer_bye.xml -d 2000"
	[294]="answer_bye.xml -d 2000"
	[298]="answer_bye.xml -d 2000"
	[295]="noanswer.xml"
	[296]="answer_stay.xml"
	[300]="answer_stay.xml"
	[301]="busy.xml"
	[302]="refuse.xml"
)

# --- ringq, the customers' phone, the tests' web server ----------------------
TRUNK_PORT=$(rq_free_port)
rq_start_redis
rq_start_pg
rq_write_config </dev/null
sed -i -e "s#^\[telserver\]\$#&\noutbound_proxy = sip:127.0.0.1:$TRUNK_PORT#" \
    -e 's/^debug = yes$/debug = no/' "$RQ_CONF"
rq_start_daemon accounting
rq_start_daemon gateway
rq_start_daemon scheduler
rq_start_daemon dispatcher
rq_start_daemon telserver

python3 "$CONF/convert.py" --src "$CORPUS" --out "$T/vxml" \
    --features "$T/features.json" > "$T/convert.log" ||
    rq_fail "convert.py failed: $(tail -n 5 "$T/convert.log")"
python3 -u "$CONF/server.py" --dir "$T/vxml" --scores "$T/scores.jsonl" \
    --log "$T/requests.jsonl" > "$T/server.out" 2> "$T/server.err" &
rq_track conformance-server $!
rq_wait_for 10 grep -q '^port ' "$T/server.out"
BASE=http://127.0.0.1:$(sed -n 's/^port //p' "$T/server.out")

# The customer: answers every call and stays until ringq hangs up.
rq_start_sipp_uas "$CONF/sipp/answer_stay.xml" -m 100000 -timeout 3600s
CUSTOMER=$SIPP_URI

if [ -n "${RQ_CONF_TESTS:-}" ]; then
	TESTS=$RQ_CONF_TESTS
else
	TESTS=$(sed -e 's/\.txml$//' -e '/^$/d' "$CORPUS/ENTRY-NO-ASR.txt")
fi

# how_it_ended CALLJSON: the session's end (exit, disconnect, hangup,
# error) from the call's result, else from its detail.
how_it_ended() {
	local how
	how=$(jq -r '.result.end // empty' <<<"$1")
	if [ -z "$how" ]; then
		case $(jq -r '.detail // "" | ascii_downcase' <<<"$1") in
		"application exit") how=exit ;;
		"application hung up"|transferred*) how=disconnect ;;
		"far end hung up"*) how=hangup ;;
		*) how=error ;;
		esac
	fi
	echo "$how"
}

# api METHOD PATH [curl args]: rq_api without its shared files (the tests
# run in parallel); prints the body.
api() {
	local method=$1 path=$2
	shift 2
	curl -sS -m 10 -X "$method" -H "Authorization: Bearer $RQ_KEY" "$@" \
	    "$RQ_API$path"
}

terminal() {
	case $(jq -r '.status // empty' <<<"$1" 2>/dev/null) in
	completed|failed|canceled|expired) return 0 ;;
	esac
	return 1
}

# run_test ID [CUSTOMER_URI]: one call; waits for its end (bounded) and
# tells the server how the session ended.
run_test() {
	local id=$1 to=${2:-$CUSTOMER} body resp call_id call how end
	body=$(jq -cn --arg to "$to" --arg app "$BASE/run/$id/$id.vxml" \
	    '{to: $to, app_url: $app}')
	resp=$(api POST /v1/calls -H 'Content-Type: application/json' \
	    -d "$body")
	call_id=$(jq -r '.id // empty' <<<"$resp" 2>/dev/null)
	if [ -z "$call_id" ]; then
		echo "test $id: POST refused: $resp" >> "$T/runs.log"
		return
	fi
	end=$((SECONDS + TEST_S))
	call=
	while ((SECONDS < end)); do
		call=$(api GET "/v1/calls/$call_id") || true
		terminal "$call" && break
		sleep 0.5
	done
	if ! terminal "$call"; then
		echo "test $id: call $call_id not over after $TEST_S s" >> "$T/runs.log"
		api DELETE "/v1/calls/$call_id" >/dev/null || true
		return
	fi
	how=$(how_it_ended "$call")
	printf 'test %s: call %s %s (%s) %s\n' "$id" "$call_id" \
	    "$(jq -r .status <<<"$call")" "$how" \
	    "$(jq -r '.detail // ""' <<<"$call")" >> "$T/runs.log"
	curl -sS -o /dev/null "$BASE/_ended/$id?how=$how" || true
}

# --- the tests that need no destination, PAR at a time ------------------------
start=$SECONDS
pids=()
for id in $TESTS; do
	[ -n "${TRUNK[$id]:-}" ] && continue
	run_test "$id" &
	pids+=($!)
	if ((${#pids[@]} >= PAR)); then
		# not wait -n: SIPp is a child of this shell too
		wait "${pids[0]}" || true
		pids=("${pids[@]:1}")
	fi
done
for p in "${pids[@]}"; do
	wait "$p" || true
done

# --- the transfer tests, one at a time ---------------------------------------
# one media port block for the destinations, which run one after another
TRUNK_MPORT=$(rq_port_block)
for id in $TESTS; do
	[ -n "${TRUNK[$id]:-}" ] || continue
	# shellcheck disable=SC2086 # the scenario and its arguments
	set -- ${TRUNK[$id]}
	scen=$1
	shift
	SIPP_PORT_SAVE=$SIPP_PORT
	# the destination listens on the trunk's port
	rq_port_unused "$TRUNK_PORT" || sleep 1
	(cd "$T" && exec sipp -sf "$CONF/sipp/$scen" -i 127.0.0.1 \
	    -p "$TRUNK_PORT" -mi 127.0.0.1 -mp "$TRUNK_MPORT" -nostdin \
	    -bind_local -m 1 -timeout $((TEST_S + 10))s -trace_msg \
	    -message_file "$T/trunk-$id.messages" \
	    -trace_err -error_file "$T/trunk-$id.errors" "$@") \
	    </dev/null > "$T/trunk-$id.log" 2>&1 &
	rq_track "trunk-$id" $!
	rq_wait_for 10 rq_udp_bound "$TRUNK_PORT"
	if [ "$id" = 300 ]; then
		# the caller hangs up during the bridge
		rq_start_sipp_uas "$CONF/sipp/answer_bye.xml" -m 1 -d 4000
		run_test "$id" "$SIPP_URI"
	else
		run_test "$id"
	fi
	rq_kill "trunk-$id" 2>/dev/null || true
	SIPP_PORT=$SIPP_PORT_SAVE
done
elapsed=$((SECONDS - start))

cat "$T/runs.log"
echo "conformance calls took $elapsed s"
args=(--tests "$CORPUS/ENTRY-NO-ASR.txt" --scores "$T/scores.jsonl"
    --features "$T/features.json" --manual "${RQ_CONF_MANUAL:-fail}")
if [ -n "${RQ_CONF_TESTS:-}" ]; then
	printf '%s.txml\n' $TESTS > "$T/subset.txt"
	args[1]=$T/subset.txt
	python3 "$CONF/score.py" "${args[@]}"
else
	python3 "$CONF/score.py" "${args[@]}" --min "$MIN" ||
	    rq_fail "conformance below $MIN %"
fi
rq_check_sanitizers

#!/usr/bin/env bash
# Every message of the e-mail corpus (RFC samples, malformed MIME, third
# party test mails) through the SMTP listener to the demo tenant's address:
# the gateway answers each with a clean 250 or 5xx, never crashes, and
# queues exactly one job per distinct call id it announced in a 250.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need swaks
CORPORA=${RINGQ_CORPORA:-$RQ_SOURCE/../shared/corpora}
[ -d "$CORPORA/email" ] || rq_fail "no e-mail corpus in $CORPORA/email (set RINGQ_CORPORA)"

rq_start_redis
rq_write_config
rq_start_daemon gateway

n=0 ok=0 rej=0
: > "$T/ids"
for f in "$CORPORA"/email/{rfc,malformed,thirdparty}/*.eml; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	swaks --server "$RQ_SMTP" --from corpus@example.com --to "$RQ_MAILTO" \
	    --timeout 15 --data @"$f" > "$T/swaks.out" 2>&1 || true
	reply=$(awk '/^ -> \.$/ { dot = 1; next }
	    dot && /^<[-*]+ / { sub(/^<[-*]+ +/, ""); print; exit }' "$T/swaks.out")
	case $reply in
	"250 2.0.0 Ok: queued as c_"*|"250 2.0.0 Ok: already queued as c_"*)
		ok=$((ok + 1))
		echo "${reply##* }" >> "$T/ids" ;;
	5[0-9][0-9]\ 5.*)
		rej=$((rej + 1)) ;;
	*)
		rq_fail "${f#"$CORPORA"/}: no clean answer: '${reply}' ($(tail -n 5 "$T/swaks.out"))" ;;
	esac
	printf '%-28s %s\n' "${f#"$CORPORA"/email/}" "${reply:0:110}"
	rq_alive "$(rq_pid gateway)" || rq_fail "the gateway died on ${f#"$CORPORA"/}"
done
[ "$n" -gt 0 ] || rq_fail "no .eml files in $CORPORA/email"

distinct=$(sort -u "$T/ids" | grep -c . || true)
jobs=$(rq_redis ZCARD rq:calls:demo)
echo "$n messages: $ok accepted ($distinct distinct calls), $rej rejected; $jobs jobs"
[ "$jobs" = "$distinct" ] || rq_fail "$jobs jobs for $distinct accepted calls"
while read -r id; do
	[ "$(rq_redis HGET "rq:job:$id" tenant)" = demo ] || rq_fail "job $id missing"
done < <(sort -u "$T/ids")
rq_stop_daemon gateway
echo "PASS"

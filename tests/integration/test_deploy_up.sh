#!/usr/bin/env bash
# deploy/up as a newcomer runs it (with its state in this test's directory):
# it starts, its demo call to its own demo phone completes, it prints the
# RINGQ_* lines, a second call through the printed API and key completes
# too, and SIGTERM (what it prints beside Ctrl-C; a background job of a
# script ignores SIGINT) stops everything it started.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

export RINGQ_STATE=$T/up
"$RQ_SOURCE/deploy/up" > "$T/up.out" 2>&1 &
rq_track up $!
up_pid=$(rq_pid up)

printed() { grep -q '^RINGQ_MAILTO=' "$T/up.out"; }
if ! rq_wait_for 240 printed; then
	tail -n 30 "$T/up.out" >&2
	rq_fail "deploy/up printed no RINGQ_* lines"
fi
grep -Eq '^call c_[0-9a-f]+: completed' "$T/up.out" ||
    rq_fail "the demo call did not complete: $(grep '^call ' "$T/up.out" | tail -n 3)"
for k in RINGQ_API RINGQ_KEY RINGQ_SMTP RINGQ_MAILTO; do
	grep -Eq "^$k=[^ ]+$" "$T/up.out" || rq_fail "no $k= line"
done
api=$(sed -n 's/^RINGQ_API=//p' "$T/up.out")
key=$(sed -n 's/^RINGQ_KEY=//p' "$T/up.out")

# The printed next call, run as printed.
next=$(grep -A1 '^Next call:' "$T/up.out" | tail -n 1)
[[ "$next" == curl* ]] || rq_fail "no ready curl command: $next"
id=$(eval "$next" | jq -er .id) || rq_fail "the printed curl command failed"
done_ok() {
	[ "$(curl -sS -H "Authorization: Bearer $key" "$api/v1/calls/$id" |
	    jq -r .status)" = completed ]
}
rq_wait_for 60 done_ok || rq_fail "the second call did not complete"
echo "ok: deploy/up's demo call and the printed curl command completed"
# its Redis runs the module with the listpack values and lazy expiry it
# asks for
grep -q "Module 'ringq' loaded" "$RINGQ_STATE/logs/redis.log" ||
	rq_fail "deploy/up's Redis did not load ringq-redis.so"
! grep -q "hash-max-listpack-value is\|lazyfree-lazy-expire is" \
    "$RINGQ_STATE/logs/redis.log" ||
	rq_fail "deploy/up's Redis: $(grep "listpack\|lazyfree" "$RINGQ_STATE/logs/redis.log")"

kill -TERM "$up_pid"
stopped() { ! rq_alive "$up_pid"; }
rq_wait_for 40 stopped || rq_fail "deploy/up did not stop on SIGTERM"
grep -q 'ringq: stopped' "$T/up.out" || rq_fail "no 'stopped' line"
for p in "$RINGQ_STATE"/run/*.pid; do
	[ -e "$p" ] || continue
	pid=$(cat "$p")
	if [ -n "$pid" ] && rq_alive "$pid"; then
		rq_fail "$(basename "$p" .pid) (pid $pid) still runs after deploy/up stopped"
	fi
done
echo "1 passed, 0 failed"

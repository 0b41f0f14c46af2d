#!/usr/bin/env bash
# ringq-redis.so against the Lua it stands in for: two redis-servers, one
# without the module (the lifecycle scripts run in Lua) and one with it
# (they run as its native commands), given the same jobs and the same
# steps through the daemons' own calls (rq_module_diff); each step must
# answer the same on both, and the two must then hold the same keys,
# values, events and TTLs (redis_compare.py).  Then the AOF the native
# commands wrote must load into a Redis without the module and give the
# same data.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

DIFF=$RQ_BUILD/tests/integration/rq_module_diff
MODULE=$RQ_REDIS_MODULE_SO
[ -x "$DIFF" ] || rq_fail "$DIFF not built"
[ -f "$MODULE" ] || rq_fail "$MODULE not built"

# redis NAME PORT [args]: one more redis-server, with its own directory.
redis() {
	local name=$1 port=$2
	shift 2
	mkdir -p "$T/$name"
	redis-server --port "$port" --bind 127.0.0.1 --save '' \
	    --daemonize no --dir "$T/$name" --logfile "$T/$name.log" "$@" \
	    </dev/null >/dev/null 2>&1 &
	rq_track "$name" $!
	rq_wait_for 10 eval "redis-cli -p $port ping 2>/dev/null | grep -q PONG"
}

LUA_PORT=$(rq_free_port)
redis lua "$LUA_PORT" --appendonly no
NATIVE_PORT=$(rq_free_port)
redis native "$NATIVE_PORT" --appendonly yes --appendfsync always \
    --loadmodule "$MODULE"

"$DIFF" "$LUA_PORT" "$NATIVE_PORT" > "$T/steps.txt" ||
	{ cat "$T/steps.txt"; rq_fail "a step answered differently"; }
cat "$T/steps.txt"
# both ways really ran: the functions on one, the commands on the other
redis-cli -p "$LUA_PORT" info commandstats | grep -q '^cmdstat_fcall:' ||
	rq_fail "the Lua side ran no function"
for c in claim claim_batch finish finish_batch release take; do
	redis-cli -p "$NATIVE_PORT" info commandstats |
	    grep -q "^cmdstat_ringq.$c:" || rq_fail "ringq.$c never ran"
done
redis-cli -p "$NATIVE_PORT" info commandstats | grep -q '^cmdstat_fcall:' &&
	rq_fail "the native side ran a function"

python3 "$RQ_SOURCE/tests/integration/redis_compare.py" "$LUA_PORT" \
    "$NATIVE_PORT" || rq_fail "the module left other data than the Lua"
echo "ok: ringq-redis.so: the same answers, keys, events and TTLs as the Lua"

# The AOF holds plain commands: a Redis without the module loads it.
redis-cli -p "$NATIVE_PORT" shutdown >/dev/null 2>&1 || true
rq_wait_for 10 eval "! redis-cli -p $NATIVE_PORT ping >/dev/null 2>&1"
grep -aq 'ringq\.' "$T"/native/appendonlydir/*.aof &&
	rq_fail "the AOF names a module command"
redis replay "$NATIVE_PORT" --appendonly yes --dir "$T/native" \
    --appenddirname appendonlydir
python3 "$RQ_SOURCE/tests/integration/redis_compare.py" "$LUA_PORT" \
    "$NATIVE_PORT" || rq_fail "the AOF replayed without the module differs"
echo "ok: the AOF loads into a Redis without the module, to the same data"

# The comparison itself: one field changed on one side must show.
redis-cli -p "$NATIVE_PORT" hset rq:job:c1 node elsewhere >/dev/null
python3 "$RQ_SOURCE/tests/integration/redis_compare.py" "$LUA_PORT" \
    "$NATIVE_PORT" > "$T/compare.txt" &&
	rq_fail "redis_compare.py missed a changed field"
grep -q 'key rq:job:c1 differs' "$T/compare.txt" ||
	rq_fail "redis_compare.py: $(cat "$T/compare.txt")"
echo "ok: redis_compare.py sees a changed field"

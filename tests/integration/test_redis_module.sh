#!/usr/bin/env bash
# ringq-redis.so against the Lua it stands in for: two redis-servers, one
# without the module (the lifecycle scripts run in Lua) and one with it
# (they run as its native commands), given the same jobs and the same
# steps through the daemons' own calls (rq_module_diff); each step must
# answer the same on both, and the two must then hold the same keys,
# values, events and TTLs (redis_compare.py).  The one with the module runs
# under valgrind's memcheck: no invalid access, no leak.  Bad arguments get
# an error reply, and leave Redis up.  Then the AOF the native
# commands wrote must load into a Redis without the module and give the
# same data.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1
rq_need valgrind

DIFF=$RQ_BUILD/tests/integration/rq_module_diff
MODULE=$RQ_REDIS_MODULE_SO
[ -x "$DIFF" ] || rq_fail "$DIFF not built"
[ -f "$MODULE" ] || rq_fail "$MODULE not built"

# redis NAME PORT [args]: one more redis-server, with its own directory
# ($VALGRIND before it, when set).
redis() {
	local name=$1 port=$2
	shift 2
	mkdir -p "$T/$name"
	${VALGRIND:-} redis-server --port "$port" --bind 127.0.0.1 --save '' \
	    --daemonize no --dir "$T/$name" --logfile "$T/$name.log" "$@" \
	    </dev/null >/dev/null 2>&1 &
	rq_track "$name" $!
	rq_wait_for 60 eval "redis-cli -p $port ping 2>/dev/null | grep -q PONG"
}

LUA_PORT=$(rq_free_port)
redis lua "$LUA_PORT" --appendonly no
NATIVE_PORT=$(rq_free_port)
VALGRIND="valgrind --log-file=$T/memcheck.log --leak-check=full
    --show-leak-kinds=definite --errors-for-leak-kinds=definite" \
    redis native "$NATIVE_PORT" --appendonly yes --appendfsync always \
    --loadmodule "$MODULE"

"$DIFF" "$LUA_PORT" "$NATIVE_PORT" > "$T/steps.txt" ||
	{ cat "$T/steps.txt"; rq_fail "a step answered differently"; }
cat "$T/steps.txt"
# both ways really ran: the functions on one, the commands on the other
redis-cli -p "$LUA_PORT" info commandstats | grep -q '^cmdstat_fcall:' ||
	rq_fail "the Lua side ran no function"
for c in claim claim_batch finish finish_batch release take create; do
	redis-cli -p "$NATIVE_PORT" info commandstats |
	    grep -q "^cmdstat_ringq.$c:" || rq_fail "ringq.$c never ran"
done
redis-cli -p "$NATIVE_PORT" info commandstats | grep -q '^cmdstat_fcall:' &&
	rq_fail "the native side ran a function"

python3 "$RQ_SOURCE/tests/integration/redis_compare.py" "$LUA_PORT" \
    "$NATIVE_PORT" || rq_fail "the module left other data than the Lua"
echo "ok: ringq-redis.so: the same answers, keys, events and TTLs as the Lua"

# Bad arguments: an error reply each, and Redis still up.
bad() {	# bad EXPECTED-START command...
	local want=$1 got
	shift
	got=$(redis-cli -p "$NATIVE_PORT" "$@" 2>&1 | head -n 1)
	case $got in
	"$want"*) ;;
	*) rq_fail "$*: answered '$got', not '$want...'" ;;
	esac
}
bad "ERR wrong number of arguments" ringq.claim 1
bad "ERR wrong number of arguments" ringq.claim_batch 3 a b c
bad "ERR wrong number of arguments" ringq.finish 9
bad "ERR wrong number of arguments" ringq.finish_batch 2 a b rq:job: 1 2
bad "ERR ringq.release: now_ms or batch" ringq.release 3 a b c x y rq:job:
bad "ERR ringq.take: lease or max" ringq.take 2 a b c rq:job: -1
bad "ERR ringq: the job key prefix" ringq.take 2 a b 1000 job: 5
redis-cli -p "$NATIVE_PORT" set rq:job:zz 1 >/dev/null
redis-cli -p "$NATIVE_PORT" zadd rq:ready 1 zz >/dev/null
bad WRONGTYPE ringq.take 2 rq:ready rq:inflight 1000 rq:job: 5
bad WRONGTYPE ringq.claim 4 rq:job:zz rq:inflight rq:oncall:x rq:nodes zz 1 x
redis-cli -p "$NATIVE_PORT" del rq:job:zz rq:ready >/dev/null
[ "$(redis-cli -p "$NATIVE_PORT" ping)" = PONG ] ||
	rq_fail "Redis is down after bad arguments"
echo "ok: bad arguments: an error reply each"

# The AOF holds plain commands: a Redis without the module loads it.
redis-cli -p "$NATIVE_PORT" shutdown >/dev/null 2>&1 || true
rq_wait_for 30 eval "! redis-cli -p $NATIVE_PORT ping >/dev/null 2>&1"
rq_wait_for 30 grep -q "ERROR SUMMARY" "$T/memcheck.log"
grep -q "ERROR SUMMARY: 0 errors" "$T/memcheck.log" ||
	{ cat "$T/memcheck.log"; rq_fail "memcheck found errors in Redis with the module"; }
echo "ok: memcheck: $(grep -o 'ERROR SUMMARY: [^(]*' "$T/memcheck.log")"
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

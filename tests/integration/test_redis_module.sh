#!/usr/bin/env bash
# ringq-redis.so against the Lua it stands in for: two redis-servers, one
# without the module (the lifecycle scripts run in Lua) and one with it
# (they run as its native commands), given the same jobs and the same
# steps through the daemons' own calls (rq_module_diff); each step must
# answer the same on both, and the two must then hold the same keys,
# values, events and TTLs (redis_compare.py).  The one with the module runs
# under valgrind's memcheck: no invalid access, no leak.  Bad arguments get
# an error reply, and leave Redis up.
# Replication: in packed replication (the default) a replica with the
# module, and the same Redis loading its AOF again, must hold exactly what
# it held (stream ids and expire times too); ringq.apply refuses a client,
# and corrupt writes in the AOF stop Redis.  In plain replication the AOF must load
# into a Redis without the module and give the same data.
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
# (not its forked children: the RDB it sends the replica is Redis's own
# code, where lzf's compression trips memcheck's known false alarm)
VALGRIND="valgrind --log-file=$T/memcheck.log --child-silent-after-fork=yes
    --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite" \
    redis native "$NATIVE_PORT" --appendonly yes --appendfsync always \
    --lazyfree-lazy-expire no --loadmodule "$MODULE"
REPLICA_PORT=$(rq_free_port)
redis replica "$REPLICA_PORT" --appendonly yes --loadmodule "$MODULE" \
    --replicaof 127.0.0.1 "$NATIVE_PORT" --hash-max-listpack-value 128 \
    --lazyfree-lazy-expire yes
rq_wait_for 60 eval "redis-cli -p $REPLICA_PORT info replication |
    grep -q master_link_status:up"
# Redis's default listpack values (native) are too small for a job (with
# its timeline entries): the module says so at load, and not where the
# setting is ours.
grep -q "hash-max-listpack-value is 64: .*set it to 128" "$T/native.log" ||
	rq_fail "no warning about hash-max-listpack-value 64"
! grep -q "hash-max-listpack-value is" "$T/replica.log" ||
	rq_fail "a warning with hash-max-listpack-value 128"
# nor lazyfree-lazy-expire no (set on native), for a day's idempotency keys
grep -q "lazyfree-lazy-expire is no: .*set it to yes" "$T/native.log" ||
	rq_fail "no warning about lazyfree-lazy-expire no"
! grep -q "lazyfree-lazy-expire is" "$T/replica.log" ||
	rq_fail "a warning with lazyfree-lazy-expire yes"

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
# the take of an older version, without rq:hours
bad "ERR wrong number of arguments" ringq.take 2 rq:ready rq:inflight 1000 rq:job: 5
bad "ERR ringq.take: lease, max or block" ringq.take 3 a b h c rq:job: -1
bad "ERR ringq.take: lease, max or block" ringq.take 3 a b h 1 rq:job: 1 -1
# a lease past a day, which now + lease could overflow
bad "ERR ringq.take: lease, max or block" ringq.take 3 a b h 9223372036854775807 rq:job: 5
bad "ERR ringq: the job key prefix" ringq.take 3 a b h 1000 job: 5
redis-cli -p "$NATIVE_PORT" set rq:job:zz 1 >/dev/null
redis-cli -p "$NATIVE_PORT" zadd rq:ready 1 zz >/dev/null
bad WRONGTYPE ringq.take 3 rq:ready rq:inflight rq:hours 1000 rq:job: 5
bad WRONGTYPE ringq.claim 4 rq:job:zz rq:inflight rq:oncall:x rq:nodes zz 1 x
redis-cli -p "$NATIVE_PORT" del rq:job:zz rq:ready >/dev/null
[ "$(redis-cli -p "$NATIVE_PORT" ping)" = PONG ] ||
	rq_fail "Redis is down after bad arguments"
echo "ok: bad arguments: an error reply each"

# A take that finds rq:ready empty and may wait: nil at the end of its
# wait; taken by the release that makes a job ready, at once, with its
# lease and attempt written (the replica and the AOF compared below).
ncli() { redis-cli -p "$NATIVE_PORT" "$@"; }
[ -z "$(ncli ringq.take 3 rq:ready rq:inflight rq:hours 1000 rq:job: 5 300)" ] ||
	rq_fail "a blocked take's wait did not end with nil"
B=c_0000000000000000000000bb
ncli hset "rq:job:$B" id "$B" tenant demo to +15551230000 status queued \
    status_rank 0 >/dev/null
ncli zadd rq:delayed 1 "$B" >/dev/null
ncli ringq.take 3 rq:ready rq:inflight rq:hours 60000 rq:job: 5 20000 \
    > "$T/blocked.out" &
rq_wait_for 30 eval "redis-cli -p $NATIVE_PORT info clients |
    grep -q '^blocked_clients:1'"
ncli ringq.release 3 rq:delayed rq:ready rq:inflight \
    "$(( $(date +%s) * 1000 ))" 100 rq:job: >/dev/null
rq_wait_for 30 eval "redis-cli -p $NATIVE_PORT info clients |
    grep -q '^blocked_clients:0'"
wait $!
[ "$(head -n 3 "$T/blocked.out" | paste -sd' ')" = "$B 1 demo" ] ||
	rq_fail "the blocked take got: $(paste -sd' ' "$T/blocked.out")"
[ -n "$(ncli zscore rq:inflight "$B")" ] && [ -z "$(ncli zscore rq:ready "$B")" ] &&
    [ "$(ncli hget "rq:job:$B" attempts)" = 1 ] ||
	rq_fail "the blocked take left no lease, or no attempt"
# In a transaction Redis cannot block: the take answers nil at once.
out=$(printf 'MULTI\nringq.take 3 rq:ready rq:inflight rq:hours 1000 rq:job: 5 0\nEXEC\n' |
    timeout 10 redis-cli -p "$NATIVE_PORT" 2>&1) ||
	rq_fail "a take with block_ms in MULTI did not answer: $out"
case $out in
*ERR*) rq_fail "a take with block_ms in MULTI: $out" ;;
esac
ncli info clients | grep -q '^blocked_clients:0' ||
	rq_fail "a take in MULTI left a blocked client"
echo "ok: a blocked take: nil when nothing came, the released job at once"

# Packed replication: the replica, and the AOF loaded again, hold exactly
# the same; a client may not send ringq.apply.
bad "ERR ringq.apply: only from a master or the AOF" ringq.apply 1 x
[ "$(redis-cli -p "$NATIVE_PORT" wait 1 10000)" = 1 ] ||
	rq_fail "the replica did not catch up"
python3 "$RQ_SOURCE/tests/integration/redis_compare.py" --exact \
    "$NATIVE_PORT" "$REPLICA_PORT" || rq_fail "the replica differs"
echo "ok: packed replication: the replica holds exactly the same"
redis-cli -p "$REPLICA_PORT" replicaof no one >/dev/null	# keeps it as it is
redis-cli -p "$NATIVE_PORT" shutdown >/dev/null 2>&1 || true
rq_wait_for 30 eval "! redis-cli -p $NATIVE_PORT ping >/dev/null 2>&1"
rq_wait_for 30 grep -q "ERROR SUMMARY" "$T/memcheck.log"
grep -q "ERROR SUMMARY: 0 errors" "$T/memcheck.log" ||
	{ cat "$T/memcheck.log"; rq_fail "memcheck found errors in Redis with the module"; }
echo "ok: memcheck: $(grep -o 'ERROR SUMMARY: [^(]*' "$T/memcheck.log")"
# format 2 by default (packed1 below writes format 1)
grep -azPq 'ringq\.apply\r\n\$1\r\n2\r\n' "$T"/native/appendonlydir/*.incr.aof ||
	rq_fail "the AOF holds no ringq.apply in format 2"
grep -azPq 'ringq\.apply\r\n\$1\r\n1\r\n' "$T"/native/appendonlydir/*.incr.aof &&
	rq_fail "the AOF holds a ringq.apply in format 1"
# writes that do not parse, at the AOF's end: Redis stops, and says why
aof=$(ls "$T"/native/appendonlydir/*.incr.aof)
size=$(stat -c %s "$aof")
# load_stops LOG: Redis loading that AOF must stop (a Redis that started
# instead is stopped in 30 s, and the log lacks the reason).
load_stops() {
	timeout 30 redis-server --port "$NATIVE_PORT" --bind 127.0.0.1 \
	    --save '' --appendonly yes --dir "$T/native" \
	    --appenddirname appendonlydir --logfile "$T/$1" \
	    --loadmodule "$MODULE" </dev/null >/dev/null 2>&1
}
# aof_stops NAME BYTES WHAT PATTERN: the AOF as it was, then BYTES
# (printf's format) appended: Redis loading it must stop, and its log say
# PATTERN; WHAT says what it loaded otherwise.
aof_stops() {
	truncate -s "$size" "$aof"
	# shellcheck disable=SC2059	# BYTES is printf's format
	printf "$2" >> "$aof"
	load_stops "$1.log" && rq_fail "Redis loaded $3"
	grep -q "$4" "$T/$1.log" || rq_fail "ringq.apply did not say: $4"
}
aof_stops corrupt '*3\r\n$11\r\nringq.apply\r\n$1\r\n1\r\n$27\r\n*2\r\n$4\r\nHSET\r\n$9\r\nrq:job:c1\r\n' \
    "an AOF with corrupt writes" \
    'ringq.apply: the writes are corrupt at byte 14 of 27'
echo "ok: corrupt writes in the AOF stop Redis: $(grep -o 'the writes are corrupt at byte [0-9]* of [0-9]*' "$T/corrupt.log")"
# a write with arguments its command never takes (HSET without a value):
# refused before any runs
aof_stops shape '*3\r\n$11\r\nringq.apply\r\n$1\r\n1\r\n$44\r\n*2\r\n$4\r\nINCR\r\n$2\r\nn1\r\n*2\r\n$4\r\nHSET\r\n$2\r\nk1\r\n\r\n' \
    "an HSET without a value" \
    'ringq.apply: the writes are corrupt at byte 22 of 44'
echo "ok: a write of the wrong shape stops Redis: $(grep -o 'the writes are corrupt at byte [0-9]* of [0-9]*' "$T/shape.log")"
# a write Redis refuses when it runs (HINCRBY of a text): Redis stops
aof_stops refused '*3\r\n$11\r\nringq.apply\r\n$1\r\n1\r\n$75\r\n*4\r\n$4\r\nHSET\r\n$2\r\nh1\r\n$1\r\nf\r\n$1\r\nx\r\n*4\r\n$7\r\nHINCRBY\r\n$2\r\nh1\r\n$1\r\nf\r\n$1\r\n1\r\n\r\n' \
    "an AOF whose write fails" \
    'ringq.apply: the write at byte 36 of 75 failed'
grep -q 'HINCRBY failed: ERR hash value is not an integer' \
    "$T/refused.log" || rq_fail "ringq.apply did not say which write failed"
echo "ok: a write that fails stops Redis: $(grep -o 'HINCRBY failed: .*' "$T/refused.log")"
# format 2: a literal longer than what is left (its token at byte 2)
aof_stops corrupt2 '*3\r\n$11\r\nringq.apply\r\n$1\r\n2\r\n$7\r\n\x02\x01\xc8\x01abc\r\n' \
    "corrupt writes in format 2" \
    'ringq.apply: the writes (format 2) are corrupt at byte 2 of 7'
# format 2 that expands to an HSET without a value: refused whole
aof_stops shape2 '*3\r\n$11\r\nringq.apply\r\n$1\r\n2\r\n$5\r\n\x02\x01\x08k1\r\n' \
    "an HSET without a value in format 2" \
    'ringq.apply: the writes are corrupt at byte 0 of 22 (format 2, expanded)'
# a format this module does not know
aof_stops format3 '*3\r\n$11\r\nringq.apply\r\n$1\r\n3\r\n$1\r\nx\r\n' \
    "a ringq.apply in format 3" 'ringq.apply: not in format 1 or 2'
echo "ok: format 2: corrupt writes, a write of the wrong shape and an unknown format stop Redis"
truncate -s "$size" "$aof"
redis reload "$NATIVE_PORT" --appendonly yes --dir "$T/native" \
    --appenddirname appendonlydir --loadmodule "$MODULE"
python3 "$RQ_SOURCE/tests/integration/redis_compare.py" --exact \
    "$NATIVE_PORT" "$REPLICA_PORT" || rq_fail "the AOF loaded again differs"
echo "ok: packed replication: the AOF loads again to exactly the same"

# A module argument it does not know: Redis does not start, and says why.
timeout 30 redis-server --port "$(rq_free_port)" --bind 127.0.0.1 \
    --save '' --logfile "$T/badarg.log" --loadmodule "$MODULE" replication fast \
    </dev/null >/dev/null 2>&1 && rq_fail "the module took 'replication fast'"
grep -q 'takes no argument but "replication packed", "replication packed1" or "replication plain"' \
    "$T/badarg.log" || rq_fail "no reason logged for a bad module argument"
echo "ok: a bad module argument stops Redis, with the reason logged"

# pair NAME ARGS...: a Redis without the module (the Lua) and one (NAME)
# with it loaded with ARGS and an AOF, given the same steps; their ports
# in LUA_P and MOD_P.
pair() {
	local name=$1
	shift
	LUA_P=$(rq_free_port)
	redis "lua_$name" "$LUA_P" --appendonly no
	MOD_P=$(rq_free_port)
	redis "$name" "$MOD_P" --appendonly yes --appendfsync always \
	    --loadmodule "$MODULE" "$@"
	"$DIFF" "$LUA_P" "$MOD_P" > "$T/steps_$name.txt" ||
		{ cat "$T/steps_$name.txt"; rq_fail "a step answered differently ($name)"; }
}

# Plain replication: the AOF holds plain commands, and a Redis without the
# module loads it.
pair plain replication plain
LUA2_PORT=$LUA_P PLAIN_PORT=$MOD_P
python3 "$RQ_SOURCE/tests/integration/redis_compare.py" "$LUA2_PORT" \
    "$PLAIN_PORT" || rq_fail "the module left other data than the Lua (plain)"
redis-cli -p "$PLAIN_PORT" shutdown >/dev/null 2>&1 || true
rq_wait_for 30 eval "! redis-cli -p $PLAIN_PORT ping >/dev/null 2>&1"
grep -aq 'ringq\.' "$T"/plain/appendonlydir/*.aof &&
	rq_fail "the AOF names a module command"
redis replay "$PLAIN_PORT" --appendonly yes --dir "$T/plain" \
    --appenddirname appendonlydir
python3 "$RQ_SOURCE/tests/integration/redis_compare.py" "$LUA2_PORT" \
    "$PLAIN_PORT" || rq_fail "the AOF replayed without the module differs"
echo "ok: plain replication: the AOF loads into a Redis without the module, to the same data"

# packed1: format 1 in the AOF, which loads again to the same data; the
# same steps took at least twice the bytes of format 2 above.
pair packed1 replication packed1
LUA3_PORT=$LUA_P P1_PORT=$MOD_P
redis-cli -p "$P1_PORT" shutdown >/dev/null 2>&1 || true
rq_wait_for 30 eval "! redis-cli -p $P1_PORT ping >/dev/null 2>&1"
grep -azPq 'ringq\.apply\r\n\$1\r\n2\r\n' "$T"/packed1/appendonlydir/*.incr.aof &&
	rq_fail "packed1: the AOF holds a ringq.apply in format 2"
redis repacked1 "$P1_PORT" --appendonly yes --dir "$T/packed1" \
    --appenddirname appendonlydir --loadmodule "$MODULE"
python3 "$RQ_SOURCE/tests/integration/redis_compare.py" "$LUA3_PORT" \
    "$P1_PORT" || rq_fail "packed1: the AOF loaded again differs"
apply_bytes() {	# the writes' bytes of the ringq.apply in AOF $1
	python3 - "$1" <<'EOP'
import sys
data, i, total = open(sys.argv[1], 'rb').read(), 0, 0
while i < len(data):
    j = data.index(b'\r\n', i); argc = int(data[i + 1:j]); i = j + 2
    args = []
    for _ in range(argc):
        j = data.index(b'\r\n', i); n = int(data[i + 1:j]); i = j + 2
        args.append(data[i:i + n]); i += n + 2
    if args[0].lower() == b'ringq.apply':
        total += len(args[2])
print(total)
EOP
}
f1=$(apply_bytes "$(ls "$T"/packed1/appendonlydir/*.incr.aof)")
f2=$(apply_bytes "$aof")
[ "$f2" -gt 0 ] && [ "$f1" -ge $((2 * f2)) ] ||
	rq_fail "format 2 took $f2 bytes, format 1 $f1: not half or less"
echo "ok: packed1: format 1 loads again to the same data; the same steps took $f1 bytes in format 1, $f2 in format 2"

# The comparison itself: one field changed on one side must show.
redis-cli -p "$PLAIN_PORT" hset rq:job:c1 node elsewhere >/dev/null
python3 "$RQ_SOURCE/tests/integration/redis_compare.py" "$LUA2_PORT" \
    "$PLAIN_PORT" > "$T/compare.txt" &&
	rq_fail "redis_compare.py missed a changed field"
grep -q 'key rq:job:c1 differs' "$T/compare.txt" ||
	rq_fail "redis_compare.py: $(cat "$T/compare.txt")"
echo "ok: redis_compare.py sees a changed field"

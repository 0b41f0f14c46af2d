#!/usr/bin/env bash
# ringq-scheduler against a real redis-server: due jobs move to rq:ready in
# priority order with ageing, a future job is released on time, full
# batches run again at once, an expired lease goes back to rq:ready with
# its attempt given back, each released job that was never dispatched is
# recorded once as scheduled in rq:events, a due job past its not_after
# ends as expired, a job announced on rq:due is released at once, releases
# publish rq:wake, a dead telserver's claimed
# attempts end as interrupted, two schedulers never release a job
# twice, and the tenants' call lists forget the calls that left Redis.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

PY=/usr/bin/python3

now_ms() { date +%s%3N; }

# job_add ID PRIORITY NOT_BEFORE_MS [ZSET SCORE]: creates a job the way the
# gateway does (docs/architecture.md): the job hash, the tenant index and,
# last, rq:delayed.  With ZSET, the id goes there instead of rq:delayed (a
# job a dispatcher has taken).
job_add() {
	local id=$1 prio=$2 nb=$3 zset=${4:-rq:delayed} zscore=${5:-$3} now
	now=$(now_ms)
	rq_redis >/dev/null <<EOF
MULTI
HSET rq:job:$id id $id tenant demo to +15551234567 say "hello there" caller_id +15550000000 priority $prio not_before_ms $nb callback_url "" metadata "{}" created_ms $now max_attempts 3
ZADD rq:calls:demo $now $id
ZADD $zset $zscore $id
EXEC
EOF
}

cid() { printf 'c_%024x' "$1"; }
field() { rq_redis HGET "rq:job:$1" "$2"; }
in_ready() { [ -n "$(rq_redis ZSCORE rq:ready "$1")" ]; }
ready_count() { [ "$(rq_redis ZCARD rq:ready)" = "$1" ]; }

# events [ID]: the rq:events entries (of ID) as "id attempt status reason
# tenant to".
events() {
	$PY - "$REDIS_PORT" "${1:-}" <<'EOF'
import json, subprocess, sys
out = subprocess.run(["redis-cli", "-p", sys.argv[1], "--json", "XRANGE",
                      "rq:events", "-", "+"], capture_output=True, text=True)
for _, f in json.loads(out.stdout or "[]"):
    d = dict(zip(f[::2], f[1::2]))
    if sys.argv[2] in ("", d.get("call_id")):
        print(d["call_id"], d["attempt"], d["status"], d.get("reason", "-"),
              d.get("tenant", "-"), d.get("to", "-"))
EOF
}

WINDOW_KEY=rq_window_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

rq_start_redis
SCHED_METRICS=127.0.0.1:$(rq_free_port)
rq_write_config <<EOF
[scheduler]
tick_ms = 20
batch = 2
metrics_listen = $SCHED_METRICS

[tenant windowed]
key_sha256 = $(rq_sha256 "$WINDOW_KEY")
max_concurrent = 1
EOF

"$RQ_BUILD/scheduler/ringq-scheduler" -f "$RQ_CONF" -n | grep -q "configuration OK" ||
	rq_fail "-n does not accept the test configuration"

# 1. Jobs already due, added before the scheduler runs: released by score
# due - priority * 60 s; a due id whose job vanished is dropped.
t0=$(( $(now_ms) - 5000 ))
job_add "$(cid 1)" 1 $((t0 + 1))
job_add "$(cid 2)" 9 $((t0 + 2))
job_add "$(cid 3)" 5 $((t0 + 4))
job_add "$(cid 4)" 5 $((t0 + 3))
job_add "$(cid 5)" 0 $((t0 + 5))
# Priority 0 but due 10 minutes ago: ageing puts it before the 9.
job_add "$(cid 10)" 0 $((t0 - 600000))
rq_redis ZADD rq:delayed "$t0" "$(cid 99)" >/dev/null

rq_start_daemon scheduler
rq_wait_for 5 ready_count 6
[ "$(rq_redis ZCARD rq:delayed)" = 0 ] || rq_fail "rq:delayed not emptied"
order=$(rq_redis ZRANGE rq:ready 0 -1 | tr '\n' ' ')
want="$(cid 10) $(cid 2) $(cid 4) $(cid 3) $(cid 1) $(cid 5) "
[ "$order" = "$want" ] || rq_fail "ready order: got '$order', want '$want'"
score=$(rq_redis ZSCORE rq:ready "$(cid 2)")
[ "$score" = "$((t0 + 2 - 9 * 60000))" ] || rq_fail "priority 9 score $score"
score=$(rq_redis ZSCORE rq:ready "$(cid 1)")
[ "$score" = "$((t0 + 1 - 60000))" ] || rq_fail "priority 1 score $score"
[ "$(rq_redis ZSCORE rq:ready "$(cid 99)")" = "" ] ||
	rq_fail "an id without a job reached rq:ready"

# 2. A job due in 1.5 s: not released before its time, released within
# 100 ms after it (the scheduler sleeps until the next due time).
nb=$(( $(now_ms) + 1500 ))
job_add "$(cid 6)" 5 "$nb"
seen=""
while :; do
	before=$(now_ms)
	score=$(rq_redis ZSCORE rq:ready "$(cid 6)")
	after=$(now_ms)
	if [ -n "$score" ]; then
		seen=$before
		break
	fi
	(( before > nb + 3000 )) && break
	sleep 0.01
done
[ -n "$seen" ] || rq_fail "the job due in 1.5 s was never released"
(( after >= nb )) || rq_fail "released $((nb - after)) ms early"
(( seen <= nb + 100 )) || rq_fail "released $((seen - nb)) ms late"
echo "due job released at most $(( seen > nb ? seen - nb : 0 )) ms after its time"

# 3. A full batch runs again at once.  With a 1 s tick, 300 due jobs in
# batches of 2 would take 150 ticks (150 s) otherwise; at once they take
# well under 10 s even on a loaded machine.
rq_stop_daemon scheduler
sed -i 's/^tick_ms = 20$/tick_ms = 1000/' "$RQ_CONF"
rq_start_daemon scheduler
rq_redis DEL rq:ready >/dev/null
# A job due much later must not make the scheduler sleep until then once
# the full batches are done (steps 4 and later need it awake).
job_add "$(cid 50)" 5 $(( $(now_ms) + 600000 ))
t1=$(( $(now_ms) + 1000 ))
for i in $(seq 100 399); do
	echo "HSET rq:job:$(cid "$i") id $(cid "$i") tenant demo to +15551234567 priority 5 not_before_ms $t1 created_ms $t1 max_attempts 3"
	echo "ZADD rq:delayed $t1 $(cid "$i")"
done | rq_redis >/dev/null
rq_wait_for 20 ready_count 300
got=$(now_ms)
(( got - t1 < 10000 )) || rq_fail "300 jobs took $((got - t1)) ms to release"
echo "300 jobs released $((got - t1)) ms after their time"

# 3b. A job due now that the gateway announces on rq:due is released at
# once, not at the next 1 s tick: five in a row, each within 300 ms (by
# the tick alone, all five would have a chance of 0.3^5).
for i in 60 61 62 63 64; do
	sleep 0.$((RANDOM % 10))
	t=$(now_ms)
	job_add "$(cid "$i")" 5 "$t"
	rq_redis PUBLISH rq:due "$(cid "$i")" >/dev/null
	while ! in_ready "$(cid "$i")"; do
		(( $(now_ms) - t < 3000 )) || rq_fail "$(cid "$i") never released"
		sleep 0.01
	done
	got=$(now_ms)
	(( got - t < 300 )) ||
		rq_fail "a job announced on rq:due took $((got - t)) ms to release"
done
echo "jobs announced on rq:due released at once (last: $((got - t)) ms)"

# 4. An expired lease goes back to rq:ready with its due-time score and its
# attempt given back (never claimed, now it never can be); no event.
rq_redis DEL rq:ready >/dev/null
t2=$(( $(now_ms) - 10000 ))
job_add "$(cid 7)" 7 "$t2" rq:inflight $(( $(now_ms) - 1 ))
rq_redis HSET "rq:job:$(cid 7)" attempts 1 >/dev/null
rq_wait_for 3 in_ready "$(cid 7)"
[ "$(rq_redis ZCARD rq:inflight)" = 0 ] || rq_fail "lease still in rq:inflight"
score=$(rq_redis ZSCORE rq:ready "$(cid 7)")
[ "$score" = "$((t2 - 7 * 60000))" ] || rq_fail "reclaimed score $score"
[ "$(field "$(cid 7)" attempts)" = 0 ] || rq_fail "reclaimed attempt not given back"
grep -q "call $(cid 7): dispatch lease expired" "$T/scheduler.log" ||
	rq_fail "no warning about the expired lease"
# A lease not yet expired stays.
rq_redis ZADD rq:inflight $(( $(now_ms) + 60000 )) "$(cid 8)" >/dev/null
sleep 0.3
[ "$(rq_redis ZCARD rq:inflight)" = 1 ] || rq_fail "a live lease was taken back"

# 5. Each released job was recorded once as scheduled (attempt 0), with
# its tenant and target, and its status moved; the reclaimed lease and the
# vanished job were not.
events > "$T/events"
n=$(grep -c ' 0 scheduled - demo +15551234567$' "$T/events" || true)
[ "$n" = 312 ] || rq_fail "$n scheduled events, want 312 (6 + 1 + 300 + 5)"
[ "$(cut -d' ' -f1,3 "$T/events" | sort | uniq -d)" = "" ] ||
	rq_fail "an event was recorded twice"
grep -q "^$(cid 7) " "$T/events" && rq_fail "a reclaimed lease was reported"
grep -q "^$(cid 99) " "$T/events" && rq_fail "a vanished job was reported"
[ "$(field "$(cid 1)" status)" = scheduled ] || rq_fail "status of $(cid 1): $(field "$(cid 1)" status)"

# 6. A due job past its not_after ends as expired (not_after), not
# released; its concurrency slot is freed.
J=$(cid 11)
job_add "$J" 5 $(( $(now_ms) + 300 ))
rq_redis HSET "rq:job:$J" not_after_ms $(( $(now_ms) + 100 )) >/dev/null
rq_redis ZADD rq:active:demo "$(now_ms)" "$J" >/dev/null
expired() { [ "$(events "$J")" = "$J 0 expired not_after demo +15551234567" ]; }
rq_wait_for 3 expired
in_ready "$J" && rq_fail "a job past its not_after was released"
[ "$(field "$J" status)" = expired ] || rq_fail "status $(field "$J" status), want expired"
[ -z "$(rq_redis ZSCORE rq:active:demo "$J")" ] || rq_fail "expired job still active"

# 7. A release publishes rq:wake (what idle dispatchers wait for).
redis-cli -p "$REDIS_PORT" SUBSCRIBE rq:wake > "$T/wake" 2>&1 &
rq_track wake $!
sleep 0.3
job_add "$(cid 12)" 5 $(( $(now_ms) - 1 ))
woken() { [ "$(grep -c '^message$' "$T/wake")" -ge 1 ]; }
rq_wait_for 3 woken
rq_kill wake || true

# 8. A telserver whose liveness key expired: its claimed attempts end as
# interrupted once it stayed dead for the 2 s grace (retried by the rules:
# a new attempt later); a live one's are left alone.
JA=$(cid 13)
JB=$(cid 14)
job_add "$JA" 5 "$(now_ms)" rq:none 0
job_add "$JB" 5 "$(now_ms)" rq:none 0
rq_redis >/dev/null <<EOF
HSET rq:job:$JA attempts 1 dialed 1 node tDead status dispatched status_rank 18
HSET rq:job:$JB attempts 1 dialed 1 node tLive status dispatched status_rank 18
SET rq:node:tLive 1 PX 60000
SADD rq:nodes tDead tLive
SADD rq:oncall:tDead $JA
SADD rq:oncall:tLive $JB
EOF
swept() { [ "$(rq_redis SCARD rq:oncall:tDead)" = 0 ]; }
rq_wait_for 6 swept
events "$JA" | grep -q "^$JA 1 [a-z]* interrupted " ||
	rq_fail "no interrupted event for $JA: $(events "$JA")"
[ "$(rq_redis SISMEMBER rq:oncall:tLive "$JB")" = 1 ] || rq_fail "a live node's call was ended"
[ -z "$(events "$JB")" ] || rq_fail "events for a live node's call: $(events "$JB")"
grep -q "telserver tDead: liveness key expired" "$T/scheduler.log" ||
	rq_fail "no log line about the dead telserver"
# swept, it is forgotten; the live one stays
forgotten() { [ "$(rq_redis SISMEMBER rq:nodes tDead)" = 0 ]; }
rq_wait_for 3 forgotten
[ "$(rq_redis SISMEMBER rq:nodes tLive)" = 1 ] || rq_fail "a live node left rq:nodes"

# 9. Two schedulers at once: 2,000 due jobs, each released (and recorded
# scheduled) exactly once.
sed -e "s|^run_dir = .*|run_dir = $T/run-b|" -e '/^metrics_listen/d' \
    "$RQ_CONF" > "$T/b.conf"
RQ_CONF=$T/b.conf rq_start_daemon scheduler:b
rq_redis DEL rq:ready rq:events >/dev/null
t3=$(( $(now_ms) + 1000 ))
for i in $(seq 1000 2999); do
	echo "HSET rq:job:$(cid "$i") id $(cid "$i") tenant demo to +15551234567 priority 5 not_before_ms $t3 created_ms $t3 max_attempts 3"
	echo "ZADD rq:delayed $t3 $(cid "$i")"
done | rq_redis >/dev/null
n_sched() { [ "$(rq_redis XLEN rq:events)" -ge 2000 ]; }
rq_wait_for 30 n_sched
sleep 0.5
events > "$T/events2"
[ "$(grep -c ' scheduled ' "$T/events2")" = 2000 ] ||
	rq_fail "two schedulers: $(grep -c ' scheduled ' "$T/events2") scheduled events, want 2000"
echo "two schedulers released 2000 jobs once each"
rq_stop_daemon scheduler:b

# 9b. Ended calls leave Redis at the end of their retention, through
# rq:ended (a job has no TTL): one whose time there has come goes, its job,
# its legacy timeline key and its id in its tenant's list, even of a
# tenant no longer in the config; one whose time is to come stays, as does
# a job in rq:ended that has not ended (it only leaves rq:ended).  The
# lists' sweep, through ids created more than the tenant's 7 days
# (RQ_CALL_TTL_MS) and an hour ago (not one of 7 days and half an hour): a call ended by an older version, without a TTL
# and out of rq:ended, is put there at its end plus its retention (gone
# at once when that has passed); one ended with a TTL is put there too,
# and keeps its TTL; ids whose job is gone leave the list, over several
# batches of 200 in one sweep, looking past old calls that still run
# (1100 of them in one millisecond: more than a batch, and a call gone
# from Redis among them, last of that millisecond); a call whose job
# expired but whose legacy timeline key (rq:timeline:, written by an
# older version, without a TTL) stayed loses both its id and that key; a
# job key an operator broke (not a hash) is kept and holds up nothing; a
# younger id stays even without its job.
week=604800000
now=$(now_ms)
old=$(( now - week - 86400000 ))
{
	# one transaction: no sweep sees half of it
	echo MULTI
	for ((i = 0; i < 1100; i++)); do
		echo "HSET rq:job:alive$i id alive$i tenant demo status retrying status_rank 21"
		echo "ZADD rq:calls:demo $((old - 5000)) alive$i"
	done
	echo "ZADD rq:calls:demo $((old - 5000)) zghost"
	for ((i = 0; i < 2500; i++)); do
		echo "ZADD rq:calls:demo $((old + i)) ghost$i"
	done
	echo "SET rq:job:broken x"
	echo "ZADD rq:calls:demo $((old + 10)) broken"
	echo "HSET rq:job:ended_long_ago id ended_long_ago tenant demo status completed status_rank 22 updated_ms $((now - week - 1000))"
	echo "HSET rq:timeline:ended_long_ago 1:completed {}"
	echo "ZADD rq:calls:demo $((old + 3000)) ended_long_ago"
	echo "HSET rq:job:ended_lately id ended_lately tenant demo status failed status_rank 23 updated_ms $((now - 86400000))"
	echo "ZADD rq:calls:demo $((old + 3001)) ended_lately"
	echo "HSET rq:job:ended_ttl id ended_ttl tenant demo status completed status_rank 22 updated_ms $((now - 86400000))"
	echo "PEXPIRE rq:job:ended_ttl $((week - 86400000))"
	echo "ZADD rq:calls:demo $((old + 3003)) ended_ttl"
	echo "HSET rq:timeline:legacy_orphan 0:queued {} 1:completed {}"
	echo "ZADD rq:calls:demo $((old + 3002)) legacy_orphan"
	echo "ZADD rq:calls:demo $((now - 86400000)) young"
	echo "ZADD rq:calls:demo $((now - week - 1800000)) in_grace"
	# in rq:ended: due (one of a tenant no config has), to come, not ended
	echo "HSET rq:job:due id due tenant demo status canceled status_rank 8"
	echo "HSET rq:timeline:due 0:canceled {}"
	echo "ZADD rq:calls:demo $((now - 3600000)) due"
	echo "HSET rq:job:due_oldco id due_oldco tenant oldco status completed status_rank 22"
	echo "ZADD rq:calls:oldco $((now - 3600000)) due_oldco"
	echo "HSET rq:job:to_come id to_come tenant demo status completed status_rank 22"
	echo "ZADD rq:calls:demo $((now - 3600000)) to_come"
	echo "HSET rq:job:not_ended id not_ended tenant demo status scheduled status_rank 1"
	echo "ZADD rq:ended $((now - 1000)) due $((now - 1000)) due_oldco $((now + 3600000)) to_come $((now - 1000)) not_ended"
	echo EXEC
} | rq_redis >/dev/null
old_ids() { rq_redis ZRANGEBYSCORE rq:calls:demo -inf "$((old + 5000))"; }
swept() {
	[ "$(old_ids | grep -c -E '^(ghost|zghost|ended_long_ago|legacy_orphan)')" = 0 ] &&
	    [ "$(rq_redis EXISTS rq:job:due rq:job:due_oldco rq:calls:oldco)" = 0 ] &&
	    [ -n "$(rq_redis ZSCORE rq:ended ended_ttl)" ] &&
	    [ -n "$(rq_redis ZSCORE rq:ended ended_lately)" ]
}
rq_wait_for 10 swept
[ "$(old_ids | grep -c '^alive')" = 1100 ] ||
    rq_fail "old calls still running left the list: $(old_ids | grep -c '^alive') of 1100 kept"
[ "$(rq_redis EXISTS rq:job:ended_long_ago rq:timeline:ended_long_ago rq:timeline:due)" = 0 ] ||
    rq_fail "a call ended 7 days ago, or its legacy timeline, is still in Redis"
[ -z "$(rq_redis ZSCORE rq:calls:demo due)$(rq_redis ZSCORE rq:ended due)$(rq_redis ZSCORE rq:ended due_oldco)" ] ||
    rq_fail "a call deleted at its time in rq:ended left its id behind"
[ "$(rq_redis EXISTS rq:timeline:legacy_orphan)" = 0 ] ||
    rq_fail "the legacy timeline key of a call whose job is gone was kept: $(rq_redis HGETALL rq:timeline:legacy_orphan)"
[ "$(rq_redis PTTL rq:job:ended_lately)" = -1 ] && old_ids | grep -q '^ended_lately$' &&
    [ "$(rq_redis ZSCORE rq:ended ended_lately)" = $((now - 86400000 + week)) ] ||
    rq_fail "a call ended a day ago, out of rq:ended: PTTL $(rq_redis PTTL rq:job:ended_lately), in rq:ended at $(rq_redis ZSCORE rq:ended ended_lately), not its end plus 7 days"
ttl=$(rq_redis PTTL rq:job:ended_ttl)
(( ttl > week - 86400000 - 60000 )) && old_ids | grep -q '^ended_ttl$' &&
    [ "$(rq_redis ZSCORE rq:ended ended_ttl)" = $((now - 86400000 + week)) ] ||
    rq_fail "a call ended with a TTL by an older version: PTTL $ttl, in rq:ended at $(rq_redis ZSCORE rq:ended ended_ttl)"
[ "$(rq_redis EXISTS rq:job:to_come rq:job:not_ended)" = 2 ] &&
    [ "$(rq_redis ZSCORE rq:ended to_come)" = $((now + 3600000)) ] &&
    [ -z "$(rq_redis ZSCORE rq:ended not_ended)" ] ||
    rq_fail "rq:ended: a call whose time is to come, or a job not ended, was deleted, or the latter kept there"
[ -n "$(rq_redis ZSCORE rq:calls:demo young)" ] &&
    [ -n "$(rq_redis ZSCORE rq:calls:demo in_grace)" ] ||
    rq_fail "a call younger than 7 days and an hour left the list"
[ -n "$(rq_redis ZSCORE rq:calls:demo broken)" ] ||
    rq_fail "an id whose job key is not a hash left the list"
deleted_metric() {
	[ "$(curl -fsS "http://$SCHED_METRICS/metrics" |
	    awk '$1 == "ringq_scheduler_calls_deleted_total" { print $2 }')" = 3 ]
}
rq_wait_for 5 deleted_metric
echo "ended calls: 2 due in rq:ended deleted (one of a removed tenant), one to come and one not ended kept; call lists: 2 calls out of rq:ended put there (one gone at once), 2502 calls gone from Redis forgotten (a legacy timeline key with one), 1100 old running calls in one millisecond, a broken key and a young one kept"

# 9c. Calls due in the same millisecond (one not_before for all, as at a
# calling-hours opening), made through the gateway: released higher
# priority first, in batches of 2 (the config's batch), so that the
# priority 9 and 3 calls posted last do not wait behind six of priority 0.
rq_start_daemon gateway
nb_iso=$(date -u -d "@$(( $(date +%s) + 3 ))" +%Y-%m-%dT%H:%M:%SZ)
tied=()
for p in 0 0 0 0 0 0 3 9; do
	body=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d \
	    "{\"to\":\"+15551234567\",\"say\":\"hi\",\"priority\":$p,\"not_before\":\"$nb_iso\"}")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST: $(rq_last_code) $body"
	tied+=("$($PY -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$body")")
done
tied_released() { for id in "${tied[@]}"; do in_ready "$id" || return 1; done; }
rq_wait_for 10 tied_released
order=$(events | awk '$3 == "scheduled" { print $1 }' |
    grep -F -x -e "${tied[0]}" -e "${tied[1]}" -e "${tied[2]}" -e "${tied[3]}" \
    -e "${tied[4]}" -e "${tied[5]}" -e "${tied[6]}" -e "${tied[7]}" | head -2 | tr '\n' ' ')
[ "$order" = "${tied[7]} ${tied[6]} " ] ||
    rq_fail "calls due together: released first '$order', want the priority 9 (${tied[7]}) then 3 (${tied[6]})"
echo "calls due in one millisecond released by priority"

# 9d. A call whose not_after passes while it waits in rq:ready (no
# dispatcher here, as when every telserver is full) ends as expired then:
# its requester sees it, and it no longer holds the tenant's one slot.
json_get() { $PY -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1]))' "$1"; }
na_iso=$(date -u -d "@$(( $(date +%s) + 3 ))" +%Y-%m-%dT%H:%M:%SZ)
body=$(RQ_KEY=$WINDOW_KEY rq_api POST /v1/calls -H 'Content-Type: application/json' \
    -d "{\"to\":\"+15551234567\",\"say\":\"hi\",\"not_after\":\"$na_iso\"}")
[ "$(rq_last_code)" = 202 ] || rq_fail "POST with not_after: $(rq_last_code) $body"
wid=$(json_get id <<<"$body")
rq_wait_for 5 in_ready "$wid"
RQ_KEY=$WINDOW_KEY rq_api POST /v1/calls -H 'Content-Type: application/json' \
    -d '{"to":"+15551234567","say":"hi"}' >/dev/null
[ "$(rq_last_code)" = 429 ] || rq_fail "a second call while the first waits: $(rq_last_code), want 429"
expired_now() {
	[ "$(RQ_KEY=$WINDOW_KEY rq_api GET "/v1/calls/$wid" | json_get status)" = expired ]
}
rq_wait_for 8 expired_now
(( $(date +%s) >= $(date -d "$na_iso" +%s) )) || rq_fail "expired before its not_after"
in_ready "$wid" && rq_fail "an expired call stayed in rq:ready"
[ "$(events "$wid" | grep -c ' expired not_after ')" = 1 ] ||
    rq_fail "expired events: $(events "$wid")"
body=$(RQ_KEY=$WINDOW_KEY rq_api POST /v1/calls -H 'Content-Type: application/json' \
    -d '{"to":"+15551234567","say":"hi"}')
[ "$(rq_last_code)" = 202 ] || rq_fail "the expired call still holds the slot: $(rq_last_code) $body"
echo "a call whose not_after passed while it waited ended as expired"
rq_stop_daemon gateway

# 10. Redis restarts (losing everything: no persistence here): the
# scheduler reconnects by itself and releases again.
rq_restart_redis
job_add "$(cid 9)" 5 $(( $(now_ms) - 1 ))
rq_wait_for 10 in_ready "$(cid 9)"
rq_wait_for 5 grep -q "^$(cid 9) 0 scheduled" <(events "$(cid 9)")

rq_stop_daemon scheduler
rq_check_sanitizers
echo "test_scheduler: OK"

#!/usr/bin/env bash
# Redis instructions per dispatched call over the lifecycle scripts (the
# create as the gateway writes it, release, take, claim, finish), counted
# by callgrind on redis-server: exact from run to run, where the wall clock
# of this shared machine drifts by a fifth from one minute to the next.
# Run by hand (not part of deploy/test); docs/benchmarks.md keeps figures.
#
#   tests/bench/redis_instructions.sh [CALLS]        (2000)
# Environment: RQ_CHAIN_BATCH (calls per script run, "500 10 1"),
# RQ_CHAIN_MODE ("evalsha fcall module": module runs release, take, claim
# and finish as ringq-redis.so's commands, replicated packed; plain: the
# same with "replication plain"), RQ_CHAIN_AOF (no; yes counts the AOF's
# work too, appendfsync everysec), RQ_CHAIN_CREATE (bare; full: the create
# with an idempotency key, both rate limits and a number checked against
# the do-not-call lists, module mode only), RQ_BUILD (build, for the
# module).  Needs valgrind, node and the bench's ioredis
# (tests/bench/bullmq: npm install there, or run bench_dispatch.sh once).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
N=${1:-2000}
for c in valgrind callgrind_control callgrind_annotate node redis-server redis-cli; do
	command -v "$c" >/dev/null || {
		echo "redis_instructions: $c is missing (apt-get install valgrind nodejs npm redis-server)" >&2
		exit 1
	}
done
[ -f "$here/bullmq/node_modules/ioredis/package.json" ] ||
	(cd "$here/bullmq" && npm install --no-audit --no-fund --loglevel=error) >&2

dir=$(mktemp -d)
port=
trap '[ -z "$port" ] || redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
cd "$src"
lua() { python3 "$here/chain/lua_of.py" "$1" "$2" > "$dir/$3.lua"; }
lua scheduler/release.c release_src release
lua dispatcher/jobs.c take_src take
lua common/lifecycle.c claim_batch_src claim
lua common/lifecycle.c finish_batch_src finish
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

batches=${RQ_CHAIN_BATCH:-500 10 1}
modes=${RQ_CHAIN_MODE:-evalsha fcall module}
module=$(realpath -m "${RQ_BUILD:-build}/common/ringq-redis.so")
[ -f "$module" ] || { echo "redis_instructions: $module not built" >&2; exit 1; }
printf '%-16s %-8s %s\n' "calls per run" mode "Redis instructions per call"
for batch in $batches; do
	for mode in $modes; do
		args=()
		[ "$mode" = plain ] && args=(replication plain)
		# listpack values as deploy/up's: a job stays a listpack
		valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
		    redis-server --port "$port" --save '' --dir "$dir" \
		    --appendonly "${RQ_CHAIN_AOF:-no}" \
		    --hash-max-listpack-value 128 \
		    --loadmodule "$module" "${args[@]}" \
		    > "$dir/redis.log" 2>&1 &
		echo $! > "$dir/redis.pid"
		for _ in $(seq 100); do
			redis-cli -p "$port" ping >/dev/null 2>&1 && break
			sleep 0.2
		done
		export RQ_CHAIN_DIR=$dir RQ_CHAIN_BATCH=$batch
		export RQ_CHAIN_MODE=${mode/plain/module}
		node "$here/chain/chain.mjs" "$port" 200 >/dev/null	# warm-up
		callgrind_control -z "$(cat "$dir/redis.pid")" >/dev/null 2>&1
		node "$here/chain/chain.mjs" "$port" "$N" >/dev/null
		callgrind_control -d "$(cat "$dir/redis.pid")" >/dev/null 2>&1
		f=$(ls -t "$dir"/cg.* | head -n 1)
		ir=$(callgrind_annotate "$f" 2>/dev/null |
		    awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
		printf '%-16s %-8s %d\n' "$batch" "$mode" $((ir / N))
		redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
		wait "$(cat "$dir/redis.pid")" 2>/dev/null || true
		rm -rf "$dir"/cg.* "$dir/appendonlydir"
	done
done

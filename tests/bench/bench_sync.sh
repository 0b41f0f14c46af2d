#!/usr/bin/env bash
# What syncing the telserver's finishes file costs its loop, run by hand
# (not part of deploy/test): the save (a kept finish appended to the
# file, as telserver/life.c's finishes_save) and its sync (fdatasync of
# the file, as its finishes_sync; its directory too after the file's
# creation, which the first round shows apart),
# beside the peer: Redis's AOF with appendfsync always on the same disk,
# where every SET waits for one fdatasync (redis-benchmark, one client).
# Prints milliseconds per sync and per SET: p50, p90, max.
#
#   tests/bench/bench_sync.sh
# Environment: RQ_BENCH_ROUNDS (200), RQ_BENCH_BYTES (140: a finish's
# record), TMPDIR (put it on the disk the telserver's state_dir is on),
# RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD

rq_need redis-server redis-benchmark python3
ROUNDS=${RQ_BENCH_ROUNDS:-200}
echo "files in $T ($(df -T "$T" | awk 'NR == 2 { print $2 }')), $ROUNDS rounds"

python3 - "$T/state" "$ROUNDS" "${RQ_BENCH_BYTES:-140}" <<'PY'
import os, sys, time
d, rounds, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
path = os.path.join(d, "ringq-telserver-b.finishes")
save, sync = [], []
for i in range(rounds):
    record = os.urandom(size)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fstat(fd)
    os.write(fd, record)
    os.close(fd)
    t1 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    os.fdatasync(fd)
    os.close(fd)
    if i == 0:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)
    t2 = time.perf_counter()
    save.append((t1 - t0) * 1000)
    if i == 0:
        first = (t2 - t1) * 1000
    else:
        sync.append((t2 - t1) * 1000)
def show(what, v):
    v.sort()
    print("%-38s p50 %6.3f  p90 %6.3f  max %6.3f ms" % (
        what, v[len(v) // 2], v[len(v) * 9 // 10], v[-1]))
show("finishes: save (append a finish)", save)
show("finishes: sync (fdatasync)", sync)
print("%-38s %6.3f ms" % ("finishes: first sync (and dir fsync)", first))
PY

rq_start_redis --appendonly yes --appendfsync always
[ "$(rq_redis CONFIG GET appendfsync | tail -n 1)" = always ] ||
    rq_fail "the peer's Redis does not sync each write"
# its latency summary: a header (avg min p50 p95 p99 max), then values
redis-benchmark -p "$REDIS_PORT" -c 1 -n "$ROUNDS" -t set -d 100 \
    --precision 3 2>/dev/null | awk '
    /latency summary/ { getline; getline
	printf "%-38s p50 %6.3f  p95 %6.3f  max %6.3f ms\n",
	    "peer: Redis SET, appendfsync always", $3, $4, $6 }'

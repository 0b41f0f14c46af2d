#!/usr/bin/env bash
# The event outbox's cost per event, run by hand (not part of deploy/test):
# a telserver's ringing/answered events through common/evout.c without a
# journal and with one (a writev per event into a file, as the telserver
# does in its state_dir), beside the peer: the same event written into a
# Redis stream with XADD, its reply awaited (what the telserver would pay
# to write those events into rq:events itself, over a Unix socket), on a
# real redis-server started here.  Prints microseconds per event, the
# best of three runs each.  Then the path of the events ZeroMQ refused:
# accounting stalls while the events are emitted (microseconds per emit),
# then reads again: events a second the outbox drains, beside ZeroMQ
# alone moving the same events and acks.  docs/benchmarks.md keeps
# figures.
#
#   tests/bench/bench_evout.sh              (RQ_BUILD=build)
# Environment: RQ_BUILD, RQ_BENCH_EVENTS (100000 per run), TMPDIR (where
# the journal goes: put it on the disk the telserver's state_dir is on),
# RQ_KEEP=1.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"	# set -euo pipefail, RQ_SOURCE, RQ_BUILD

rq_need redis-server
rq_start_redis
echo "journal in $T ($(df -T "$T" | awk 'NR == 2 { print $2 }')); Redis $(redis-server --version | awk '{ print $3 }') on $REDIS_SOCK"
"$RQ_BUILD/tests/bench/bench_evout" "${RQ_BENCH_EVENTS:-100000}" "$T" "$REDIS_SOCK"

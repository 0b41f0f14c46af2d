#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time: run.sh FUZZER SEED_DIR SECONDS.
# New inputs go to a scratch directory, so the seed corpus in the source tree
# stays as committed; a crash input is kept in build's meson-logs to debug.
set -euo pipefail
fuzzer=$1 seeds=$2 secs=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/ringq-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
rc=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$fuzzer" -max_total_time="$secs" \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$PWD/" \
    "$work/corpus" "$seeds" >"$work/log" 2>&1 || rc=$?
grep -E '^(Done|stat::number_of_executed_units|INFO: seed corpus)' "$work/log" || true
if [ "$rc" != 0 ]; then
	tail -n 40 "$work/log"
	echo "$(basename "$fuzzer"): FAILED (exit $rc)"
	exit 1
fi
echo "$(basename "$fuzzer"): no crash in ${secs} s"

#!/usr/bin/env bash
# make bench: runs every tests/bench/bench_*.sh (or those matching $BENCH) with the shared
# helpers of tests/bench/lib.sh. Results: a table on stdout, JSON Lines in build/bench/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export KILN_ROOT=$PWD
export KILN_BIN=$KILN_ROOT/${KILN_BUILD:-build}/bin
export PATH=$KILN_BIN:$PATH
export BENCH_WORK=${BENCH_WORK:-$KILN_ROOT/build/bench/work}
export BENCH_OUT=$KILN_ROOT/build/bench/results-$(date +%Y%m%dT%H%M%S).jsonl
mkdir -p "$BENCH_WORK"
command -v bc >/dev/null || { echo "bench: needs bc (apt-get install bc)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 2; }
echo "kiln bench — $(nproc) cores, REPS=${REPS:-5}, medians; ratio > 1 means kiln is faster"
for b in tests/bench/bench_*.sh; do
    [[ -z ${BENCH:-} || $b == *"$BENCH"* ]] || continue
    echo "== $(basename "$b" .sh)"
    ( source tests/bench/lib.sh; source "$b" ) || echo "bench: $b failed" >&2
done
echo "results: ${BENCH_OUT#$KILN_ROOT/}"

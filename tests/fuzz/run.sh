#!/usr/bin/env bash
# make fuzz: runs each libFuzzer target in build/fuzz/ for SECONDS (default 30) with its seed
# corpus tests/fuzz/corpus/<target>/ (copied to a scratch corpus so the repo stays clean).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
fail=0
for f in build/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    work=build/fuzz/corpus-$name
    mkdir -p "$work"
    [ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true
    echo "== $name (${secs}s)"
    if ! "$f" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=0 \
        "$work" >"build/fuzz/$name.log" 2>&1; then
        echo "FAIL $name: see build/fuzz/$name.log"; tail -n 30 "build/fuzz/$name.log"; fail=1
    else
        grep -E '^(#[0-9]+.*DONE|Done)' "build/fuzz/$name.log" | tail -n 1 || true
    fi
done
exit $fail

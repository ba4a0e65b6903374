#!/usr/bin/env bash
# Runs every test: unit tests (build/tests/test_*), fuzz targets replayed over their seed
# corpora (build/tests/replay/fuzz_*), stage CLI tests (tests/cli/*.bats) and
# end-to-end tests (tests/e2e/*.bats). Each group's results are counted; the last line is
# "N passed, M failed". Exit status 1 if anything failed.
#   KILN_BUILD   build directory (build or build/san), set by the Makefile
#   TESTS        optional filter: only files whose name contains this string
set -uo pipefail
cd "$(dirname "$0")/.."
export KILN_ROOT=$PWD
export KILN_BUILD=${KILN_BUILD:-build}
export KILN_BIN=$KILN_ROOT/$KILN_BUILD/bin
export PATH=$KILN_BIN:$PATH
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
filter=${TESTS:-}
passed=0 failed=0 skipped=0 failures=()

for t in "$KILN_BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    [[ -z $filter || $t == *"$filter"* ]] || continue
    name=$(basename "$t")
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 20
        echo "FAIL $name (exit $rc, no summary line)"
        failed=$((failed + 1)); failures+=("$name"); continue
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed}
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed' | tail -n 30
        [ "$f" -eq 0 ] && f=1
        failures+=("$name")
    fi
    passed=$((passed + p)); failed=$((failed + f))
    echo "unit  $name: $line"
done

# Fuzz targets replayed over their seed corpora (tests/fuzz/replay.c).
for t in "$KILN_BUILD"/tests/replay/fuzz_*; do
    [ -x "$t" ] || continue
    [[ -z $filter || $t == *"$filter"* ]] || continue
    name=$(basename "$t")
    out=$("$t" "tests/fuzz/corpus/$name" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, 0 failed$' | tail -n 1)
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 30
        echo "FAIL fuzz replay $name (exit $rc)"
        failed=$((failed + 1)); failures+=("replay/$name"); continue
    fi
    passed=$((passed + ${line%% passed*}))
    echo "fuzz  $name: $line (seed corpus replayed)"
done

for t in tests/cli/*.bats tests/e2e/*.bats; do
    [ -f "$t" ] || continue
    [[ -z $filter || $t == *"$filter"* ]] || continue
    out=$(bats --tap "$t" 2>&1); rc=$?
    p=$(printf '%s\n' "$out" | grep -E '^ok ' | grep -c -v -E '# skip' || true)
    k=$(printf '%s\n' "$out" | grep -E '^ok ' | grep -c -E '# skip' || true)
    f=$(printf '%s\n' "$out" | grep -c -E '^not ok ' || true)
    skipped=$((skipped + k))
    [ "$k" -eq 0 ] || printf '%s\n' "$out" | grep -E '^ok .*# skip' | sed "s|^|skip  $t: |"
    if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" | grep -v -E '^ok ' | head -n 60
        [ "$f" -eq 0 ] && f=1
        failures+=("$t")
    fi
    passed=$((passed + p)); failed=$((failed + f))
    echo "bats  $t: $p passed, $f failed$( [ "$k" -gt 0 ] && echo ", $k skipped")"
done

[ ${#failures[@]} -eq 0 ] || echo "failing: ${failures[*]}"
[ "$skipped" -eq 0 ] || echo "$skipped skipped (not counted as passed; see the skip lines above)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bats
# pipelines/retrain: lock (75), promotion by symlink, regression gate (3), failure (1), pruning.
# The pipeline and compare commands are replaced by small scripts through the test hooks.
load ../cli/helpers

setup() {
    cd "$BATS_TEST_TMPDIR" || exit 1
    mkdir -p bin
    # fake pipeline: writes P/eval-finetuned.jsonl with $SCORE, or fails when FAIL=1
    cat >bin/pipe <<'SH'
#!/bin/sh
for a; do case $a in P=*) P=${a#P=} ;; esac; done
[ "${FAIL:-0}" = 1 ] && exit 1
mkdir -p "$P" && echo "{\"macro_f1\":${SCORE:-0.9}}" >"$P/eval-finetuned.jsonl"
SH
    # fake compare: exit 3 when new < old - 0.05
    cat >bin/cmp <<'SH'
#!/bin/sh
while [ $# -gt 2 ]; do shift; done
o=$(sed 's/.*: *\([0-9.]*\).*/\1/' "$1"); n=$(sed 's/.*: *\([0-9.]*\).*/\1/' "$2")
awk -v o="$o" -v n="$n" 'BEGIN { exit (n < o - 0.05) ? 3 : 0 }'
SH
    chmod +x bin/pipe bin/cmp
    export RETRAIN_PIPELINE_CMD=$PWD/bin/pipe RETRAIN_COMPARE_CMD=$PWD/bin/cmp
    R=$PWD/r
}

retrain() { "$KILN_ROOT/pipelines/retrain" --root "$R" "$@"; }

@test "first run promotes; a better run promotes; a regression is refused with exit 3" {
    SCORE=0.80 run retrain
    expect_status 0
    first=$(readlink "$R/current")
    sleep 1
    SCORE=0.85 run retrain
    expect_status 0
    second=$(readlink "$R/current")
    [ "$first" != "$second" ]
    sleep 1
    SCORE=0.50 run retrain
    expect_status 3
    expect_output_contains "regression"
    [ "$(readlink "$R/current")" = "$second" ]
    ls "$R"/logs/retrain-*.log >/dev/null
}

@test "a failed pipeline exits 1 and keeps the promoted model" {
    SCORE=0.8 retrain
    cur=$(readlink "$R/current")
    sleep 1
    FAIL=1 run retrain
    expect_status 1
    [ "$(readlink "$R/current")" = "$cur" ]
}

@test "a second retrain while one holds the lock exits 75" {
    mkdir -p "$R"
    exec 8>"$R/lock"
    flock -n 8
    run retrain
    expect_status 75
    expect_output_contains "another retrain"
    exec 8>&-
}

@test "old runs are pruned but the promoted one is kept" {
    for i in 1 2 3; do SCORE=0.9 retrain --keep 1 >/dev/null; sleep 1; done
    [ "$(ls -1d "$R"/runs/*/ | wc -l)" -eq 1 ]
    [ -d "$R/$(readlink "$R/current")" ]
}

#!/usr/bin/env bats
# The default pipeline end to end on the real SpamAssassin and pretraining corpora, at toy sizes
# (a 512-token vocabulary, a few training steps): every stage runs, a rerun with nothing
# changed runs no stage, and `make audit` re-executes every step and finds every output
# identical. Needs the pinned tarballs (network once, then build/cache); skips loudly otherwise.
load ../cli/helpers

setup_file() {
    export P=$BATS_FILE_TMPDIR/run
    # One step cache for every pipeline test of a run (tests/run.sh): shared steps such as
    # pretraining run once.
    export STEP_CACHE=${KILN_E2E_STEP_CACHE:-$BATS_FILE_TMPDIR/steps}
    export SIZES="VOCAB=300 PRE_STEPS=3 FT_STEPS=3 MAX_LEN=48 THREADS=2"
}

pipe() {
    make -C "$KILN_ROOT" --no-print-directory pipeline-run P="$P" STEP_CACHE="$STEP_CACHE" \
        $SIZES "$@"
}

@test "the default pipeline runs end to end, reruns nothing, and audits clean" {
    # Under ASan/UBSan every stage is already exercised by its own CLI tests; the whole
    # pipeline (training, evaluation, audit) at sanitizer speed would double CI time.
    [[ $KILN_BUILD != *san* ]] || skip "not run in the sanitizer build (stages are covered by their CLI tests)"
    if ! (cd "$KILN_ROOT" && datasets/fetch datasets/spamassassin.recipe datasets/pretrain-en.recipe >/dev/null 2>&1); then
        skip "the pinned dataset tarballs cannot be fetched (no network and no cache)"
    fi
    run pipe
    expect_status 0
    expect_output_contains "finetuned  test accuracy"
    [ -s "$P/report.html" ] && [ -s "$P/report.md" ] && [ -s "$P/bundle.tar.zst" ]
    grep -q "Data funnel" "$P/report.md"
    "$KILN_BIN/quantize-export" verify "$P/bundle.tar.zst"
    # Nothing changed: no stage runs.
    run pipe
    expect_status 0
    [[ "$output" != *"running"* ]] || { echo "$output"; false; }
    # Touching an input without changing it reruns no stage.
    touch "$P/clean.jsonl.zst"
    run pipe
    expect_status 0
    [[ "$output" != *"running"* ]] || { echo "$output"; false; }
    run make -C "$KILN_ROOT" --no-print-directory audit P="$P" STEP_CACHE="$STEP_CACHE"
    expect_status 0
    expect_output_contains " 0 mismatches"
}

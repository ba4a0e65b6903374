#!/usr/bin/env bats
# Study 2 of issue 12, early-stage hyperparameter search (pipelines/study-hpo.mk), at toy
# sizes (SIZE=small: 5 candidates per method, a few training steps each) on the default
# pipeline's data: both methods run, the shared initial candidates train once, the early
# checkpoint is an exact prefix of the full run (resuming from it reproduces the final
# weights), the report has the section, and a rerun runs nothing. Needs the pinned tarballs
# (network once, then build/cache); skips loudly otherwise.
load ../cli/helpers

setup_file() {
    export P=$BATS_FILE_TMPDIR/run
    # One step cache for every pipeline test of a run (tests/run.sh): shared steps such as
    # pretraining run once.
    export STEP_CACHE=${KILN_E2E_STEP_CACHE:-$BATS_FILE_TMPDIR/steps}
    export SIZES="VOCAB=300 PRE_STEPS=3 FT_STEPS=3 MAX_LEN=48 THREADS=2 SIZE=small"
}

study() {
    make -C "$KILN_ROOT" --no-print-directory study-hpo P="$P" STEP_CACHE="$STEP_CACHE" \
        $SIZES "$@"
}

@test "study-hpo SIZE=small runs both searches, shares cached runs, reruns nothing" {
    [[ $KILN_BUILD != *san* ]] || skip "not run in the sanitizer build (kiln-hpo is covered by tests/cli/hpo.bats)"
    if ! (cd "$KILN_ROOT" && datasets/fetch datasets/spamassassin.recipe datasets/pretrain-en.recipe >/dev/null 2>&1); then
        skip "the pinned dataset tarballs cannot be fetched (no network and no cache)"
    fi
    run study
    expect_status 0
    expect_output_contains "bo/history-05.jsonl: 5 candidates"
    expect_output_contains "random/history-05.jsonl: 5 candidates"
    expect_output_contains "top-5 overlap of early and final:"
    H=$P/hpo
    [ "$(wc -l < "$H/bo/history-05.jsonl")" -eq 5 ]
    [ "$(grep -c '"proposed_by":"ei"' "$H/bo/history-05.jsonl")" -eq 2 ]
    # The first HPO_INIT=3 candidates are shared: trained and scored once, then cache hits.
    for i in 01 02 03; do
        grep -q "\"name\":\"hpo-random-train-$i\",[^}]*\"hit\":true" "$P/steps.jsonl"
        grep -q "\"name\":\"hpo-random-early-$i\",[^}]*\"hit\":true" "$P/steps.jsonl"
    done
    # The early checkpoint is a prefix of the full run: resuming from it ends bit-identical.
    c=$H/bo/cand-04.json
    e=$(kiln-hpo field "$c" early_steps)
    train -q --mode sft $(kiln-hpo args "$c") --threads 2 --seed 1 \
        --resume "$H/bo/run-04/checkpoint-$e" -o resumed "$P/train-bal.sft.jsonl.zst"
    cmp resumed/model.safetensors "$H/bo/run-04/model.safetensors"
    grep -q "## Early-stage hyperparameter search" "$H/report.md"
    grep -q "^| bo | 5 |" "$H/report.md"
    grep -q "^| random | 5 |" "$H/report.md"
    # Nothing changed: nothing runs.
    run study
    expect_status 0
    [[ "$output" != *"running"* ]] || { echo "$output"; false; }
}

#!/usr/bin/env bats
# Study 3 of issue 12 (pipelines/study-methods.mk) at SIZE=small: every method trains from the
# default pipeline's base, its results land in the study's store as runs of kind
# study-methods (accuracy, retention perplexity, tokens/s and peak RSS per method), the report
# has the section with a row per method, and a rerun runs no step. Needs the pinned tarballs
# (network once, then build/cache); skips loudly otherwise, and under the sanitizer build.
load ../cli/helpers

setup_file() {
    export P=$BATS_FILE_TMPDIR/run
    # One step cache for every pipeline test of a run (tests/run.sh): shared steps such as
    # pretraining run once.
    export STEP_CACHE=${KILN_E2E_STEP_CACHE:-$BATS_FILE_TMPDIR/steps}
}

study() {
    make -C "$KILN_ROOT" --no-print-directory study-methods SIZE=small P="$P" \
        STEP_CACHE="$STEP_CACHE" "$@"
}

@test "study-methods runs every method, fills the store and the report, reruns nothing" {
    [[ $KILN_BUILD != *san* ]] || skip "not run in the sanitizer build (stages are covered by their CLI tests)"
    if ! (cd "$KILN_ROOT" && datasets/fetch datasets/spamassassin.recipe datasets/pretrain-en.recipe >/dev/null 2>&1); then
        skip "the pinned dataset tarballs cannot be fetched (no network and no cache)"
    fi
    run study
    expect_status 0
    expect_output_contains "## Fine-tuning methods and forgetting"
    db=$P/study-methods/kiln.db
    # One run per method plus the base, each with accuracy and retention perplexity; every
    # trained method with its training speed and peak memory.
    [ "$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE kind = 'study-methods'")" -eq 9 ]
    [ "$(sqlite3 "$db" "SELECT count(*) FROM results WHERE metric = 'acc'")" -eq 9 ]
    [ "$(sqlite3 "$db" "SELECT count(*) FROM results WHERE metric = 'perplexity' AND value > 1")" -eq 9 ]
    [ "$(sqlite3 "$db" "SELECT count(*) FROM stage_stats WHERE stage = 'train' AND
        json_extract(json, '$.tokens_per_s') > 0 AND json_extract(json, '$.peak_rss_bytes') > 0")" -eq 8 ]
    for m in base full lora-r4 lora-r16 qlora-r16 lora-ms-r16 qlora-ms-r16 hft full-replay; do
        grep -q "^| $m | " "$P/study-methods/report.md" || { echo "no row for $m"; false; }
    done
    grep -q "Fine-tuning methods and forgetting" "$P/study-methods/report.html"
    grep -q "after fine-tuning, log10" "$P/study-methods/report.html" # the chart, log x axis
    # QLoRA and LoRA wrote PEFT adapters and merged checkpoints; the replay set is larger.
    [ -s "$P/study-methods/qlora-r16/adapter_model.safetensors" ]
    [ -s "$P/study-methods/lora-r4/model.safetensors" ]
    [ "$(zstdcat "$P/study-methods/train-replay.sft.jsonl.zst" | wc -l)" -gt \
      "$(zstdcat "$P/train-bal.sft.jsonl.zst" | wc -l)" ]
    # Nothing changed: no step runs.
    run study
    expect_status 0
    [[ "$output" != *"running"* ]] || { echo "$output"; false; }
}

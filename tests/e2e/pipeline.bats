#!/usr/bin/env bats
# The default pipeline end to end on the real SpamAssassin and pretraining corpora, at toy sizes
# (a 512-token vocabulary, a few training steps): every stage runs, a rerun with nothing
# changed runs no stage, and `make audit` re-executes every step and finds every output
# identical; a fresh run under make -j2 gives the same bytes; a changed filter option reruns
# filter and what depends on it, nothing upstream. Needs the pinned tarballs (network once,
# then build/cache); skips loudly otherwise. Not run in the sanitizer build.
load ../cli/helpers

setup_file() {
    export P=$BATS_FILE_TMPDIR/run
    # One step cache for every pipeline test of a run (tests/run.sh): shared steps such as
    # pretraining run once.
    export STEP_CACHE=${KILN_E2E_STEP_CACHE:-$BATS_FILE_TMPDIR/steps}
    export SIZES="VOCAB=300 PRE_STEPS=3 FT_STEPS=3 MAX_LEN=48 THREADS=2"
}

need_pipeline() {
    # Under ASan/UBSan every stage is already exercised by its own CLI tests; the whole
    # pipeline (training, evaluation, audit) at sanitizer speed would double CI time.
    [[ $KILN_BUILD != *san* ]] || skip "not run in the sanitizer build (stages are covered by their CLI tests)"
    if ! (cd "$KILN_ROOT" && datasets/fetch datasets/spamassassin.recipe datasets/pretrain-en.recipe >/dev/null 2>&1); then
        skip "the pinned dataset tarballs cannot be fetched (no network and no cache)"
    fi
}

pipe() {
    make -C "$KILN_ROOT" --no-print-directory pipeline-run P="$P" STEP_CACHE="$STEP_CACHE" \
        $SIZES "$@"
}

@test "the default pipeline runs end to end, reruns nothing, and audits clean" {
    need_pipeline
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

# Outputs that hold timings or timestamps by design (the run record, stats, training logs, the
# database and the report rendered from it); every other file must be byte-identical.
volatile() {
    case $1 in steps.jsonl | kiln.db* | report.html | report.md | *.stats.json | *.log.jsonl) return 0 ;; esac
    return 1
}

@test "make -j2 on an empty cache gives byte-identical outputs to the serial run" {
    need_pipeline
    [ -f "$P/bundle.tar.zst" ] || skip "the serial run (previous test) did not complete"
    mv "$P" "$P.j1"
    # Same paths (the bundle records them), a fresh cache: every step runs, two at a time.
    run pipe -j2 STEP_CACHE="$BATS_FILE_TMPDIR/steps-j2"
    expect_status 0
    expect_output_contains "finetuned  test accuracy"
    diff <(cd "$P.j1" && find . -type f | sort) <(cd "$P" && find . -type f | sort)
    local n=0 f
    while IFS= read -r f; do
        volatile "${f##*/}" && continue
        cmp "$P.j1/$f" "$P/$f"
        n=$((n + 1))
    done < <(cd "$P.j1" && find . -type f | sort)
    [ "$n" -ge 25 ]
    [ -z "$(find "$P" -name '.kiln-tmp-*' -o -name '*.tmp')" ]
}

@test "changing one filter option reruns filter and what depends on it, nothing upstream" {
    need_pipeline
    [ -f "$P/bundle.tar.zst" ] || skip "the serial run did not complete"
    # Up to the split (what follows is the same cascade of reruns, at training cost).
    run make -C "$KILN_ROOT" --no-print-directory "$P/split/train.jsonl.zst" P="$P" \
        STEP_CACHE="$STEP_CACHE" $SIZES FILTER_OPTS="--transform email,html,whitespace"
    expect_status 0
    expect_output_contains "filter: running"
    expect_output_contains "split: running"
    [[ "$output" != *"ingest: running"* && "$output" != *"dedupe: running"* ]] || { echo "$output"; false; }
    # Back to the original options: every step is answered by the cache.
    run pipe -j2
    expect_status 0
    [[ "$output" != *"running"* ]] || { echo "$output"; false; }
    cmp "$P/bundle.tar.zst" "$P.j1/bundle.tar.zst"
}

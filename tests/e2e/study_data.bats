#!/usr/bin/env bats
# The data studies of pipelines/study-data.mk (data efficiency; imbalance handling) end to end
# at SIZE=small on the real SpamAssassin corpus: nested stratified subsets, every arm fine-tuned
# and evaluated, results in SQLite under the study pipelines with seeds, both report sections
# (HTML and Markdown), inverse-frequency class weights in the weighted arm, and a rerun that
# runs nothing. Needs the pinned tarballs (network once, then build/cache); skips otherwise.
load ../cli/helpers

setup_file() {
    export P=$BATS_FILE_TMPDIR/run
    # One step cache for every pipeline test of a run (tests/run.sh): shared steps such as
    # pretraining run once.
    export STEP_CACHE=${KILN_E2E_STEP_CACHE:-$BATS_FILE_TMPDIR/steps}
}

study() {
    make -C "$KILN_ROOT" --no-print-directory study-data SIZE=small P="$P" \
        STEP_CACHE="$STEP_CACHE" "$@"
}

ids() {
    zstd -dcq "$1" | grep -o '"id":"[^"]*"' | sort
}

@test "study-data SIZE=small: subsets, arms, database, report sections, rerun" {
    # Training and evaluation at sanitizer speed would take minutes; the stages are covered by
    # their own CLI tests under SAN.
    [[ $KILN_BUILD != *san* ]] || skip "not run in the sanitizer build (stages are covered by their CLI tests)"
    if ! (cd "$KILN_ROOT" && datasets/fetch datasets/spamassassin.recipe datasets/pretrain-en.recipe >/dev/null 2>&1); then
        skip "the pinned dataset tarballs cannot be fetched (no network and no cache)"
    fi
    run study
    expect_status 0
    expect_output_contains "report $P/study/report.html"
    S=$P/study
    # Nested and stratified: per seed the 20-record subset is inside the 50-record one; the
    # seeds differ; each subset keeps the split's classes.
    for s in 1 2; do
        [ "$(ids $S/efficiency/s$s/n20.jsonl.zst | wc -l)" -eq 20 ]
        [ "$(comm -23 <(ids $S/efficiency/s$s/n20.jsonl.zst) <(ids $S/efficiency/s$s/n50.jsonl.zst) | wc -l)" -eq 0 ]
        [ "$(zstd -dcq $S/efficiency/s$s/n50.jsonl.zst | grep -c '"label":"spam"')" -ge 10 ]
    done
    if cmp -s <(ids $S/efficiency/s1/n50.jsonl.zst) <(ids $S/efficiency/s2/n50.jsonl.zst); then false; fi
    # Undersampling and oversampling balance the classes.
    for a in undersample oversample; do
        h=$(zstd -dcq $S/imbalance/s1/$a.jsonl.zst | grep -c '"label":"ham"')
        sp=$(zstd -dcq $S/imbalance/s1/$a.jsonl.zst | grep -c '"label":"spam"')
        [ "$h" -eq "$sp" ]
    done
    # The weighted arm trained with N / (K n_c) from the training split's counts.
    h=$(zstd -dcq $P/split/train.jsonl.zst | grep -c '"label":"ham"')
    sp=$(zstd -dcq $P/split/train.jsonl.zst | grep -c '"label":"spam"')
    want=$(awk -v h=$h -v s=$sp 'BEGIN { printf "%.6f", (h + s) / (2 * s) }')
    got=$(grep -o '"spam":[0-9.]*' $S/imbalance/s1/weighted.ft/trainer_state.json | cut -d: -f2)
    awk -v a="$want" -v b="$got" 'BEGIN { exit !(a - b < 1e-5 && b - a < 1e-5) }'
    # The database: a base run and one run per arm and seed, with results.
    db=$S/kiln.db
    [ "$(sqlite3 $db "select count(*) from runs where pipeline = 'study-efficiency'")" -eq 7 ]
    [ "$(sqlite3 $db "select count(*) from runs where pipeline = 'study-imbalance'")" -eq 9 ]
    [ "$(sqlite3 $db "select group_concat(distinct name) from runs where pipeline = 'study-efficiency' and seed = 2 order by id")" = "size=20,size=50,size=$((h + sp))" ]
    [ "$(sqlite3 $db "select count(*) from results s join runs r on r.id = s.run_id where r.pipeline like 'study-%' and s.metric = 'macro_f1'")" -eq 16 ]
    # The report: both sections with their tables, charts and conclusions.
    grep -q "^## Data efficiency" $S/report.md
    grep -q "^| $((h + sp)) | 2 | 0\.[0-9]* ± 0\.[0-9]* |" $S/report.md
    grep -q "^- macro-F1 saturates at \*\*" $S/report.md
    grep -q "^| majority class | – | 0\.[0-9]* | 0\.[0-9]* |$" $S/report.md
    grep -q "^## Imbalance handling" $S/report.md
    for a in raw undersample oversample weighted; do grep -q "^| $a | 2 | " $S/report.md; done
    grep -q "^- best ECE (lower is better): \*\*" $S/report.md
    grep -q "<h2>Data efficiency</h2>" $S/report.html
    grep -q "test macro-F1 against training records" $S/report.html
    grep -q "<h2>Imbalance handling</h2>" $S/report.html
    grep -q "Brier score (lower is better)" $S/report.html
    # Each study alone has its own database and report with only its section.
    run make -C "$KILN_ROOT" --no-print-directory study-imbalance SIZE=small P="$P" STEP_CACHE="$STEP_CACHE"
    expect_status 0
    expect_output_contains "## Imbalance handling"
    if grep -q "Data efficiency" $S/imbalance/report.md; then false; fi
    # Nothing changed: no step runs.
    run study
    expect_status 0
    [[ "$output" != *"running"* ]] || { echo "$output"; false; }
}

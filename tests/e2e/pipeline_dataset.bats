#!/usr/bin/env bats
# The default pipeline on another dataset (the README's example): a local archive of support
# tickets in two folders, a recipe with a `path` source, a rules file naming its labels, and
# `make pipeline-run RECIPE=... RULES=... CHOICES=...` at toy sizes. Needs the pinned
# pretraining tarball (network once, then build/cache); skips loudly otherwise, and under the
# sanitizer build.
load ../cli/helpers

setup_file() {
    export P=$BATS_FILE_TMPDIR/run
    export STEP_CACHE=${KILN_E2E_STEP_CACHE:-$BATS_FILE_TMPDIR/steps}
    d=$BATS_FILE_TMPDIR/data
    mkdir -p "$d/tickets/urgent" "$d/tickets/normal"
    for i in $(seq 1 120); do
        echo "Ticket $i: production server $((i % 7)) is down and customers cannot log in; error E$((i * 37 % 1000))." >"$d/tickets/urgent/$i.txt"
        echo "Ticket $i: could you update the wiki page for release $((i % 11)) when you have time? Item $((i * 13 % 1000)) needs an owner." >"$d/tickets/normal/$i.txt"
    done
    tar czf "$d/tickets.tar.gz" -C "$d" tickets
    cat >"$d/tickets.recipe" <<'R'
name      tickets
path      tickets.tar.gz
source    tickets
include   tickets/*/*.txt
label     tickets/urgent/*   urgent
label     tickets/normal/*   normal
unlabeled fail
R
    printf 'not_empty: words(text) >= 3\nknown_label: label in [urgent, normal]\n' >"$d/tickets.rules"
}

pipe() {
    d=$BATS_FILE_TMPDIR/data
    make -C "$KILN_ROOT" --no-print-directory pipeline-run PIPELINE=tickets P="$P" \
        STEP_CACHE="$STEP_CACHE" RECIPE="$d/tickets.recipe" RULES="$d/tickets.rules" \
        CHOICES=urgent,normal FILTER_OPTS="--transform whitespace" \
        VOCAB=300 PRE_STEPS=3 FT_STEPS=3 MAX_LEN=48 THREADS=2
}

@test "another dataset is a recipe, a rules file and three variables" {
    [[ $KILN_BUILD != *san* ]] || skip "not run in the sanitizer build (stages are covered by their CLI tests)"
    if ! (cd "$KILN_ROOT" && datasets/fetch datasets/pretrain-en.recipe >/dev/null 2>&1); then
        skip "the pinned pretraining tarball cannot be fetched (no network and no cache)"
    fi
    run pipe
    expect_status 0
    expect_output_contains "pipeline tickets: report"
    expect_output_contains "finetuned  test accuracy"
    [ "$(zstdcat "$P/raw.jsonl.zst" | grep -c '"label":"urgent"')" -eq 120 ]
    grep -q '"urgent":' "$P/split.stats.json"
    [ -s "$P/bundle.tar.zst" ]
    "$KILN_BIN/quantize-export" verify "$P/bundle.tar.zst"
    run pipe
    expect_status 0
    [[ "$output" != *"running"* ]] || { echo "$output"; false; }
}

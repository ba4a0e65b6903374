#!/usr/bin/env bats
# dedupe: exact-mode goldens, near-duplicate recall and precision on a fixture of known
# Jaccard similarity, determinism (runs, input splits, --against an empty index), indexes,
# reports and bad input.
load helpers

GOLD=$KILN_ROOT/tests/data/dedupe
TOOLS=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools

setup_file() {
    # 200 pairs with similarity in [0.5, 1): shared by the near-duplicate tests.
    "$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/nearpairs" gen --pairs 200 --seed 7 \
        >"$BATS_FILE_TMPDIR/pairs.jsonl"
}

@test "dedupe: --help and --version" {
    run dedupe --help
    expect_status 0
    expect_output_contains "Usage: dedupe"
    run dedupe --version
    expect_status 0
    expect_output_contains "dedupe (kiln)"
}

@test "dedupe: usage errors exit 2" {
    run dedupe --normalize upper "$GOLD/exact.jsonl"
    expect_status 2
    expect_output_contains "--normalize: unknown value 'upper'"
    run dedupe --bands 4 "$GOLD/exact.jsonl"
    expect_status 2
    expect_output_contains "--bands and --rows go together"
    run dedupe --preset minhashy "$GOLD/exact.jsonl"
    expect_status 2
    run dedupe --threshold 1.5 "$GOLD/exact.jsonl"
    expect_status 2
    run dedupe --key .text "$GOLD/exact.jsonl"
    expect_status 2
}

@test "dedupe: exact mode goldens for none, ws-lower, nfkc and a nested key" {
    for n in none ws-lower nfkc; do
        dedupe --mode exact --plain --normalize "$n" --rejects rej.jsonl "$GOLD/exact.jsonl" >out.jsonl
        cmp out.jsonl "$GOLD/exact.$n.out"
        cmp rej.jsonl "$GOLD/exact.$n.rejects"
    done
    # ws-lower is the default
    dedupe --mode exact --plain "$GOLD/exact.jsonl" | cmp - "$GOLD/exact.ws-lower.out"
    dedupe --mode exact --plain --key metadata.url --missing keep --rejects rej.jsonl \
        "$GOLD/exact.jsonl" >out.jsonl
    cmp out.jsonl "$GOLD/exact.url.out"
    cmp rej.jsonl "$GOLD/exact.url.rejects"
}

@test "dedupe: kept records are the original line bytes" {
    dedupe --mode exact --plain --normalize none "$GOLD/exact.jsonl" >out.jsonl
    cmp out.jsonl "$GOLD/exact.jsonl" # nothing is a duplicate without normalization
}

@test "dedupe: near mode finds >= 95% of pairs above threshold+0.05 and nothing below" {
    dedupe --plain --rejects rej.jsonl --stats s.json "$BATS_FILE_TMPDIR/pairs.jsonl" >out.jsonl
    run "$TOOLS/nearpairs" check --threshold 0.8 "$BATS_FILE_TMPDIR/pairs.jsonl" rej.jsonl
    echo "$output"
    expect_status 0
    grep -q '"bands":14,"rows":8' s.json
}

@test "dedupe: near mode with the lee preset and with --threshold choosing the layout" {
    dedupe --plain --preset lee --rejects rej.jsonl "$BATS_FILE_TMPDIR/pairs.jsonl" >/dev/null
    run "$TOOLS/nearpairs" check --threshold 0.8 "$BATS_FILE_TMPDIR/pairs.jsonl" rej.jsonl
    echo "$output"
    expect_status 0
    for t in 0.6 0.7 0.9; do
        dedupe --plain --threshold "$t" --rejects rej.jsonl --stats s.json \
            "$BATS_FILE_TMPDIR/pairs.jsonl" >/dev/null
        run "$TOOLS/nearpairs" check --threshold "$t" "$BATS_FILE_TMPDIR/pairs.jsonl" rej.jsonl
        echo "t=$t $output"
        expect_status 0
    done
}

@test "dedupe: nemo preset (character 24-grams) removes a lightly edited copy" {
    s='The quarterly budget review is scheduled for Monday morning in the main office, please bring the printed reports and your questions about the new shipping rates.'
    text="$s Lunch will be served after the meeting. $s"
    edited="${text/Monday/Tuesday}"
    printf '{"id":"a","text":"%s"}\n{"id":"b","text":"%s"}\n{"id":"c","text":"Something else entirely, about gardens and weather."}\n' \
        "$text" "$edited" >in.jsonl
    dedupe --plain --preset nemo --rejects rej.jsonl in.jsonl >out.jsonl
    [ "$(wc -l <out.jsonl)" -eq 2 ]
    grep -q '"id":"b".*"reason":"near","duplicate_of":"a","similarity":0\.[789]' rej.jsonl
}

@test "dedupe: identical output across runs, input splits and an empty --against index" {
    P=$BATS_FILE_TMPDIR/pairs.jsonl
    dedupe --plain --rejects r1.jsonl --clusters c1.jsonl "$P" >o1.jsonl
    dedupe --plain --rejects r2.jsonl --clusters c2.jsonl "$P" >o2.jsonl
    cmp o1.jsonl o2.jsonl
    cmp r1.jsonl r2.jsonl
    cmp c1.jsonl c2.jsonl
    split -n l/3 "$P" part.
    dedupe --plain --rejects r3.jsonl --clusters c3.jsonl part.aa part.ab part.ac >o3.jsonl
    cmp o1.jsonl o3.jsonl
    cmp r1.jsonl r3.jsonl
    cmp c1.jsonl c3.jsonl
    cat part.ab | dedupe --plain part.aa - part.ac | cmp - o1.jsonl
    # An empty index: saved from a run that kept nothing.
    echo '{"id":"x"}' >nokey.jsonl
    dedupe --missing drop --save-index empty.ddx nokey.jsonl >/dev/null
    dedupe --plain --against empty.ddx --rejects r4.jsonl "$P" >o4.jsonl
    cmp o1.jsonl o4.jsonl
    cmp r1.jsonl r4.jsonl
    # Compressed output decompresses to the same records.
    dedupe "$P" | zstd -dc | cmp - o1.jsonl
}

@test "dedupe: --save-index then --against equals one run over everything" {
    P=$BATS_FILE_TMPDIR/pairs.jsonl
    dedupe --plain --rejects all-rej.jsonl "$P" >all.jsonl
    split -n l/2 "$P" half.
    dedupe --plain --save-index day1.ddx --rejects rej1.jsonl half.aa >day1.jsonl
    dedupe --plain --against day1.ddx --rejects rej2.jsonl --clusters cl2.jsonl half.ab >day2.jsonl
    cat day1.jsonl day2.jsonl | cmp - all.jsonl
    cat rej1.jsonl rej2.jsonl | cmp - all-rej.jsonl
    # day 2's duplicates are copies ("-b") of day 1's records ("-a"): survivors from the index
    [ -s cl2.jsonl ]
    [ "$(grep -c '"survivor":"p[0-9]*-a","members":\["p[0-9]*-a","p[0-9]*-b"\]}$' cl2.jsonl)" -eq "$(wc -l <cl2.jsonl)" ]
    [ "$(wc -l <cl2.jsonl)" -eq "$(wc -l <rej2.jsonl)" ]
    # re-running yesterday's data against its own index removes all of it
    dedupe --plain --against day1.ddx half.aa >again.jsonl
    [ ! -s again.jsonl ]
    no_tmp_left
}

@test "dedupe: incompatible or corrupt index files are refused naming the problem" {
    P=$BATS_FILE_TMPDIR/pairs.jsonl
    head -n 50 "$P" >small.jsonl
    dedupe --save-index i.ddx small.jsonl >/dev/null
    run dedupe --preset nemo --against i.ddx small.jsonl
    expect_status 1
    expect_output_contains "i.ddx: built with word 5-gram shingles, this run uses character 24-grams"
    run dedupe --bands 20 --rows 5 --against i.ddx small.jsonl
    expect_status 1
    expect_output_contains "built with 14 bands x 8 rows, this run uses 20 x 5"
    run dedupe --normalize nfkc --against i.ddx small.jsonl
    expect_status 1
    expect_output_contains "built with --normalize ws-lower, this run uses nfkc"
    run dedupe --seed 9 --against i.ddx small.jsonl
    expect_status 1
    expect_output_contains "built with --seed 0, this run uses --seed 9"
    dedupe --mode exact --save-index e.ddx small.jsonl >/dev/null
    run dedupe --against e.ddx small.jsonl
    expect_status 1
    expect_output_contains "built in exact mode"
    # corrupt: one byte flipped in the middle; truncated; not an index at all
    cp i.ddx bad.ddx
    printf 'X' | dd of=bad.ddx bs=1 seek=2000 conv=notrunc 2>/dev/null
    run dedupe --against bad.ddx -o out.jsonl.zst small.jsonl
    expect_status 1
    expect_output_contains "bad.ddx: checksum mismatch"
    [ ! -e out.jsonl.zst ]
    head -c 1000 i.ddx >short.ddx
    run dedupe --against short.ddx small.jsonl
    expect_status 1
    expect_output_contains "short.ddx: truncated or corrupt"
    run dedupe --against small.jsonl small.jsonl
    expect_status 1
    expect_output_contains "not a dedupe index"
    run dedupe --against missing.ddx small.jsonl
    expect_status 1
    expect_output_contains "missing.ddx: No such file"
    no_tmp_left
}

@test "dedupe: missing or non-string key: error with file and line, keep, drop" {
    printf '{"id":"a","text":"x"}\n' >one.jsonl
    printf '{"id":"b","text":"y"}\n{"id":"c","body":"z"}\n' >two.jsonl
    run dedupe -o out.jsonl.zst one.jsonl two.jsonl
    expect_status 1
    expect_output_contains "dedupe: two.jsonl:2: no field 'text'"
    [ ! -e out.jsonl.zst ]
    no_tmp_left
    printf '{"id":"d","text":["y"]}\n' >three.jsonl
    run dedupe three.jsonl
    expect_status 1
    expect_output_contains "three.jsonl:1: field 'text' is not a string"
    dedupe --plain --missing=keep --stats s.json one.jsonl two.jsonl >out.jsonl
    [ "$(wc -l <out.jsonl)" -eq 3 ]
    grep -q '"missing_kept":1' s.json
    dedupe --plain --missing=drop --rejects rej.jsonl --stats s.json one.jsonl two.jsonl >out.jsonl
    [ "$(wc -l <out.jsonl)" -eq 2 ]
    grep -q '"id":"c","body":"z","reason":"missing"' rej.jsonl
    grep -q '"missing_dropped":1' s.json
}

@test "dedupe: invalid JSON stops with position and leaves no output" {
    printf '{"id":"a","text":"x"}\n{"id":"b","text":"y"\n' >bad.jsonl
    run dedupe -o out.jsonl.zst --rejects rej.jsonl.zst bad.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:2:"
    expect_output_contains "invalid JSON"
    [ ! -e out.jsonl.zst ]
    [ ! -e rej.jsonl.zst ]
    no_tmp_left
}

@test "dedupe: clusters and stats report what was removed" {
    printf '%s\n' '{"id":"a","text":"one two three four five six"}' \
        '{"id":"b","text":"One two three  four five six"}' \
        '{"id":"c","text":"seven eight nine ten eleven twelve"}' \
        '{"id":"d","text":"one two three four five six"}' >in.jsonl
    dedupe --plain --clusters cl.jsonl --stats s.json in.jsonl >out.jsonl
    [ "$(wc -l <out.jsonl)" -eq 2 ]
    [ "$(cat cl.jsonl)" = '{"cluster":0,"size":3,"survivor":"a","members":["a","b","d"]}' ]
    for k in '"records_in":4' '"records_out":2' '"exact_removed":2' '"near_removed":0' \
        '"clusters":1' '"largest_cluster":3' '"peak_rss_bytes":' '"table_bytes_per_record":'; do
        grep -q "$k" s.json || { echo "missing $k in $(cat s.json)"; false; }
    done
}

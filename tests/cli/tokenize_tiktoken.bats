#!/usr/bin/env bats
# tokenize vs tiktoken: with the real gpt2, cl100k_base and o200k_base vocabularies, the ids
# equal the npm tiktoken 1.0.22 WASM encoder's on tests/data/tok/tiktoken_fixture.jsonl (made by
# tests/tools/tiktoken_fixture.js). The vocabularies come from the build cache
# (tests/tools/tiktoken_cache.sh: npm pack + pinned sha512); without npm or network these tests
# are SKIPPED (reported as skips, not passes).
load helpers

FIX=$KILN_ROOT/tests/data/tok/tiktoken_fixture.jsonl

setup_file() {
    export TIKDIR
    TIKDIR=$("$KILN_ROOT/tests/tools/tiktoken_cache.sh" 2>"$BATS_FILE_TMPDIR/cache.err") || TIKDIR=
}

need_vocab() {
    [ -n "$TIKDIR" ] || skip "SKIPPED: tiktoken vocabularies unavailable (npm/network): $(head -c 200 "$BATS_FILE_TMPDIR/cache.err")"
}

# same_ids ENC [OPTIONS]: encode the fixture, compare input_ids with the ENC field per line.
same_ids() {
    local enc=$1; shift
    grep -v '"name":"allow_special"' "$FIX" >fx.jsonl
    tokenize encode --no-eos --plain --tokenizer "$TIKDIR/$enc.json" "$@" fx.jsonl -o out.jsonl
    sed 's/.*"'"$enc"'":\(\[[0-9,]*\]\).*/\1/' out.jsonl >want.txt
    sed 's/.*"input_ids":\(\[[0-9,]*\]\).*/\1/' out.jsonl >got.txt
    [ "$(wc -l <got.txt)" -ge 190 ]
    if ! cmp -s want.txt got.txt; then
        paste -d '\n' want.txt got.txt | head -n 0
        diff <(nl want.txt) <(nl got.txt) | head -n 10
        return 1
    fi
}

@test "gpt2: ids equal tiktoken's" {
    need_vocab
    same_ids gpt2
}

@test "cl100k_base: ids equal tiktoken's" {
    need_vocab
    same_ids cl100k_base
}

@test "o200k_base: ids equal tiktoken's" {
    need_vocab
    same_ids o200k_base
}

@test "cl100k_base with --threads 2 and through tokenizer.json: same ids" {
    need_vocab
    same_ids cl100k_base --threads 2
}

@test "--allow-special: control tokens as tiktoken's allowed_special='all'" {
    need_vocab
    grep '"name":"allow_special"' "$FIX" >a.jsonl
    for enc in gpt2 cl100k_base o200k_base; do
        tokenize encode --no-eos --plain --allow-special --tokenizer "$TIKDIR/$enc.json" a.jsonl -o out.jsonl
        want=$(sed 's/.*"'"$enc"'":\(\[[0-9,]*\]\).*/\1/' out.jsonl)
        got=$(sed 's/.*"input_ids":\(\[[0-9,]*\]\).*/\1/' out.jsonl)
        [ "$want" = "$got" ] || { echo "$enc: want $want got $got"; return 1; }
    done
}

@test "rank file + --pattern: cl100k ids, default EOS 100257" {
    need_vocab
    # Turn the npm JSON into a classic rank file (base64 rank per line).
    tr ' ' '\n' <<<"$(sed 's/.*"bpe_ranks":"\([^"]*\)".*/\1/' "$TIKDIR/cl100k_base.json")" |
        awk '$0=="!" {want=1; next} want {r=$0; want=0; next} {print $0, r; r++}' >cl100k.tiktoken
    [ "$(wc -l <cl100k.tiktoken)" -eq 100256 ]
    printf '{"text":"hello world"}\n' >h.jsonl
    run tokenize encode --plain --tiktoken cl100k.tiktoken --pattern cl100k h.jsonl
    expect_status 0
    expect_output_contains '"input_ids":[15339,1917,100257]'
}

#!/usr/bin/env bats
# tokenize: train / encode / decode on small generated data, the special-token policy,
# templates and truncation, thread-count independence, raw byte round trips, and bad input
# (malformed tokenizer.json and rank files with positions, too small a vocabulary, unknown
# pattern, a template naming a missing field, a completion longer than --max-len).
load helpers

gen() { "$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/tok_gentext" "$@"; }

# A small trained tokenizer shared by the tests (specials <|endoftext|> = 0, <|pad|> = 1).
setup_file() {
    export TOKDIR=$BATS_FILE_TMPDIR
    "$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/tok_gentext" 200000 7 --records >"$TOKDIR/corpus.jsonl"
    PATH=$KILN_BIN:$PATH tokenize train --vocab-size 600 "$TOKDIR/corpus.jsonl" -o "$TOKDIR/tok.json"
}

@test "usage: no command, unknown command, --help" {
    run tokenize
    expect_status 2
    expect_output_contains "expected a command"
    run tokenize frobnicate
    expect_status 2
    expect_output_contains "unknown command 'frobnicate'"
    run tokenize encode --help
    expect_status 0
    expect_output_contains "--max-len"
}

@test "train: deterministic HF tokenizer.json with specials first" {
    run tokenize train --vocab-size 600 "$TOKDIR/corpus.jsonl" -o again.json --stats st.json
    expect_status 0
    cmp "$TOKDIR/tok.json" again.json
    grep -q '"<|endoftext|>": 0' again.json
    grep -q '"<|pad|>": 1' again.json
    grep -q '"type": "ByteLevel", "add_prefix_space": false' again.json
    grep -q '"merges": \[' again.json
    grep -q '"vocab_size":600' st.json
    # 600 = 2 specials + 256 bytes + 342 merges
    [ "$(grep -c '^      \["' again.json)" -eq 342 ]
    no_tmp_left
}

@test "train: presets and custom regex become Split + ByteLevel" {
    run tokenize train --vocab-size 300 --pattern o200k "$TOKDIR/corpus.jsonl" -o o.json
    expect_status 0
    grep -q '"type": "Split"' o.json
    grep -q 'Isolated' o.json
    run tokenize train --vocab-size 300 --pattern '[a-z]+|[^a-z]' --special '<s>' "$TOKDIR/corpus.jsonl" -o c.json
    expect_status 0
    grep -q '"\[a-z\]+|\[^a-z\]"' c.json
    grep -q '"<s>": 0' c.json
}

@test "train: vocabulary below 256 + specials is refused" {
    run tokenize train --vocab-size 257 "$TOKDIR/corpus.jsonl" -o x.json
    expect_status 2
    expect_output_contains "vocabulary size 257 is below 256 + 2 specials"
    [ ! -e x.json ]
    no_tmp_left
}

@test "unknown pattern name is a usage error" {
    run tokenize train --pattern gpt5 "$TOKDIR/corpus.jsonl"
    expect_status 2
    expect_output_contains "unknown pattern 'gpt5'"
}

@test "encode → decode gives the text back; stats count tokens" {
    run tokenize encode --tokenizer "$TOKDIR/tok.json" --plain --stats st.json "$TOKDIR/corpus.jsonl" -o enc.jsonl
    expect_status 0
    head -n 1 enc.jsonl | grep -q '"input_ids":\[[0-9,]*,0\]'   # EOS <|endoftext|> = 0 last
    grep -q '"tokens":' st.json
    grep -q '"bytes_per_token":' st.json
    grep -q '"truncated":0' st.json
    run tokenize decode --tokenizer "$TOKDIR/tok.json" --plain enc.jsonl -o dec.jsonl
    expect_status 0
    grep -q '<|endoftext|>","input_ids"' dec.jsonl
    # Without EOS, decoding rewrites "text" with exactly the original text.
    tokenize encode --no-eos --tokenizer "$TOKDIR/tok.json" "$TOKDIR/corpus.jsonl" |
        tokenize decode --tokenizer "$TOKDIR/tok.json" --plain | sed 's/,"input_ids":\[[0-9,]*\]//' >dec2.jsonl
    cmp "$TOKDIR/corpus.jsonl" dec2.jsonl
}

@test "--threads 1 and 2 give identical bytes" {
    tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 1 "$TOKDIR/corpus.jsonl" -o one.jsonl.zst
    tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 2 "$TOKDIR/corpus.jsonl" -o two.jsonl.zst
    tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 3 "$TOKDIR/corpus.jsonl" -o three.jsonl.zst
    cmp one.jsonl.zst two.jsonl.zst
    cmp one.jsonl.zst three.jsonl.zst
    # Several files (chunks never span two), plain output.
    head -n 300 "$TOKDIR/corpus.jsonl" >b.jsonl
    tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 1 --plain "$TOKDIR/corpus.jsonl" b.jsonl -o one.jsonl
    tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 3 --plain "$TOKDIR/corpus.jsonl" b.jsonl -o three.jsonl
    cmp one.jsonl three.jsonl
    [ "$(wc -l <three.jsonl)" -eq $(($(wc -l <"$TOKDIR/corpus.jsonl") + 300)) ]
    # More chunks (64 KB each) than slots (2 per thread): slots are reused many times.
    cat "$TOKDIR/corpus.jsonl" "$TOKDIR/corpus.jsonl" "$TOKDIR/corpus.jsonl" >big.jsonl
    tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 1 --plain big.jsonl -o big1.jsonl
    tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 2 --plain big.jsonl -o big2.jsonl
    tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 4 --plain big.jsonl -o big4.jsonl
    cmp big1.jsonl big2.jsonl
    cmp big1.jsonl big4.jsonl
}

@test "--threads 2: the first bad record in input order stops the run, nothing written" {
    { head -n 250 "$TOKDIR/corpus.jsonl"; echo '{"text": 7}'; head -n 500 "$TOKDIR/corpus.jsonl"; echo 'not json'; } >bad.jsonl
    run tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 2 "$TOKDIR/corpus.jsonl" bad.jsonl -o out.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:251: field 'text' is not a string"
    [ ! -e out.jsonl ]
    no_tmp_left
}

@test "--threads 2: input is read while the vocabulary loads; a bad vocabulary still fails cleanly" {
    printf '{"model": [1,}' >bad.json
    run tokenize encode --tokenizer bad.json --threads 2 "$TOKDIR/corpus.jsonl" -o out.jsonl
    expect_status 1
    expect_output_contains "bad.json:1:14:"
    [ ! -e out.jsonl ]
    no_tmp_left
    run tokenize encode --tokenizer "$TOKDIR/tok.json" --threads 2 --eos '<nope>' "$TOKDIR/corpus.jsonl" -o out.jsonl
    expect_status 2
    [ ! -e out.jsonl ]
}

@test "raw bytes round trip (invalid UTF-8 included)" {
    head -c 20000 /dev/urandom >blob.bin
    printf 'caf\xc3\xa9 \xff\xfe end\r\n' >>blob.bin
    tokenize encode --raw --no-eos --tokenizer "$TOKDIR/tok.json" --plain blob.bin -o ids.jsonl
    tokenize decode --raw --tokenizer "$TOKDIR/tok.json" ids.jsonl -o back.bin
    cmp blob.bin back.bin
}

@test "special-token text is ordinary text unless --allow-special" {
    printf '{"text":"a<|endoftext|>b"}\n' >s.jsonl
    run tokenize encode --no-eos --plain --tokenizer "$TOKDIR/tok.json" s.jsonl
    expect_status 0
    [[ "$output" != *'[0'* && "$output" != *',0,'* && "$output" != *',0]'* ]]
    run tokenize encode --no-eos --plain --allow-special --tokenizer "$TOKDIR/tok.json" s.jsonl
    expect_status 0
    [[ "$output" == *',0,'* ]]
}

@test "templates: loss_start, truncation keeps the completion and is counted" {
    printf '{"id":"a","text":"one two three four five six seven eight nine ten","label":"spam"}\n{"id":"b","text":"hi","label":"ham"}\n' >p.jsonl
    run tokenize encode --plain --tokenizer "$TOKDIR/tok.json" --prompt '{text}\nLabel:' --completion ' {label}' p.jsonl
    expect_status 0
    expect_output_contains '"loss_start":'
    # fields pass through in order, then input_ids and loss_start
    [[ "$output" == '{"id":"a","text":"one two'*'"label":"spam","input_ids":['* ]]
    # Room for record b exactly: a is truncated (its prompt's head cut), b is not.
    nb=$(printf '%s\n' "$output" | grep '"id":"b"' | sed 's/.*"input_ids":\[\([0-9,]*\)\].*/\1/' | tr ',' '\n' | wc -l)
    la=$(printf '%s\n' "$output" | grep '"id":"a"' | sed 's/.*"input_ids":\[\([0-9,]*\)\].*/\1/')
    run tokenize encode --plain --tokenizer "$TOKDIR/tok.json" --prompt '{text}\nLabel:' --completion ' {label}' --max-len "$nb" --keep tail --stats st.json p.jsonl
    expect_status 0
    expect_output_contains "1 of 2 records truncated to --max-len $nb"
    grep -q '"truncated":1' st.json
    ta=$(printf '%s\n' "$output" | grep '"id":"a"' | sed 's/.*"input_ids":\[\([0-9,]*\)\].*/\1/')
    [ "$(tr ',' '\n' <<<"$ta" | wc -l)" -eq "$nb" ]
    [[ ",$la" == *",$ta" ]]   # --keep tail: the kept ids are the end of the full encoding
}

@test "template naming a missing field: file and line" {
    printf '{"text":"x","label":"a"}\n{"text":"y"}\n' >m.jsonl
    run tokenize encode --tokenizer "$TOKDIR/tok.json" --prompt '{text}' --completion ' {label}' m.jsonl -o out.jsonl
    expect_status 1
    expect_output_contains "m.jsonl:2: template: no field 'label'"
    [ ! -e out.jsonl ]
    no_tmp_left
    run tokenize encode --tokenizer "$TOKDIR/tok.json" --prompt '{text' m.jsonl
    expect_status 2
    expect_output_contains "unclosed"
}

@test "a completion longer than --max-len is an error, never cut" {
    printf '{"text":"x","label":"a very long label that cannot fit"}\n' >l.jsonl
    run tokenize encode --tokenizer "$TOKDIR/tok.json" --prompt '{text}' --completion ' {label}' --max-len 3 l.jsonl
    expect_status 1
    expect_output_contains "l.jsonl:1: the completion alone is"
}

@test "malformed tokenizer.json: error with position" {
    printf '{\n  "model": {"type": "BPE",\n    "vocab": {"a": 0,}\n  }\n}\n' >bad.json
    printf '{"text":"x"}\n' >x.jsonl
    run tokenize encode --tokenizer bad.json x.jsonl
    expect_status 1
    expect_output_contains "bad.json:3:22:"
    printf '{"model": {"type": "Unigram"}}' >uni.json
    run tokenize encode --tokenizer uni.json x.jsonl
    expect_status 1
    expect_output_contains 'uni.json:1:20: model type is not "BPE"'
    run tokenize encode --tokenizer missing.json x.jsonl
    expect_status 1
    expect_output_contains "missing.json"
}

@test "malformed rank file: error with line and column" {
    printf 'IQ== 0\nIg== 1\nIw== two\n' >bad.tiktoken
    printf '{"text":"x"}\n' >x.jsonl
    run tokenize encode --tiktoken bad.tiktoken --pattern gpt2 x.jsonl
    expect_status 1
    expect_output_contains "bad.tiktoken:3:6: rank is not a number"
    printf 'IQ== 0\n' >short.tiktoken
    run tokenize encode --tiktoken short.tiktoken --pattern gpt2 x.jsonl
    expect_status 1
    expect_output_contains "lacks the single-byte token"
}

@test "decode: unknown id and a missing field are errors with position" {
    printf '{"input_ids":[1,2]}\n{"input_ids":[999999]}\n' >ids.jsonl
    run tokenize decode --tokenizer "$TOKDIR/tok.json" ids.jsonl
    expect_status 1
    expect_output_contains "ids.jsonl:2: unknown token id 999999"
    printf '{"ids":[1]}\n' >noids.jsonl
    run tokenize decode --tokenizer "$TOKDIR/tok.json" noids.jsonl
    expect_status 1
    expect_output_contains "noids.jsonl:1: field 'input_ids' is missing"
}

#!/usr/bin/env bats
# filter(1): options, reasons, pass-through, rules-file errors, exit codes.
load helpers

F=$DATA/filter

@test "filter: default keeps good text, redacts, drops with reasons and counts them" {
    run filter --plain --rejects rej.jsonl --stats st.json -o out.jsonl "$F/records.jsonl"
    expect_status 0
    [ "$(wc -l < out.jsonl)" -eq 1 ]
    grep -q '"id": "good-1"' out.jsonl
    grep -q 'Write to <EMAIL> or call <PHONE> if' out.jsonl
    [ "$(wc -l < rej.jsonl)" -eq 3 ]
    grep -q '"id": "short-1".*"reason":"gopher_short_doc","measured":4}$' rej.jsonl
    grep -q '"id": "noisy-1".*"reason":"gopher_too_many_hashes"' rej.jsonl
    grep -q '"records_in":4' st.json
    grep -q '"records_out":1' st.json
    grep -q '"dropped":{"gopher_short_doc":2,"gopher_too_many_hashes":1}' st.json
    grep -q '"redacted":{"email":1,"ipv4":0,"ipv6":0,"phone":1,"card":0,"url":0}' st.json
    no_tmp_left
}

@test "filter: only the text field is re-serialized; other fields pass byte for byte" {
    run filter --plain --redact email "$F/records.jsonl"
    expect_status 0
    line=$(printf '%s\n' "$output" | head -n 1)
    [[ $line == '{"id": "good-1","text":"'* ]]
    [[ $line == *'"source": "web","label": "ham","metadata": {"score": 0.9, "nested": {"k": [1, 2, 3]}},"extra": "  keep é "}' ]]
}

@test "filter: an unchanged record is written exactly as read" {
    run filter --plain --redact all -o out.jsonl "$F/passthrough.jsonl"
    expect_status 0
    cmp out.jsonl "$F/passthrough.jsonl"
}

@test "filter: rules file steps run in order and name the reason" {
    run filter --plain -r "$F/example.rules" --rejects rej.jsonl -o out.jsonl \
        "$F/records.jsonl" "$F/email.jsonl"
    expect_status 0
    grep -q '"id": "good-1"' out.jsonl
    grep -q '"id": "mail-1","text":"Subject: Café meeting\\n\\nHi Bob, the café meeting is at noon. Call me at <PHONE>."' out.jsonl
    grep -q '"id": "short-1".*"reason":"long_enough","measured":4}' rej.jsonl
    grep -q '"id": "noisy-1".*"reason":"trusted","measured":"scrape"}' rej.jsonl
    grep -q '"id": "notext-1".*"reason":"long_enough"' rej.jsonl
}

@test "filter: --annotate keeps every record and merges metadata.filter" {
    run filter --plain --annotate -b gopher-quality "$F/records.jsonl"
    expect_status 0
    [ "$(printf '%s\n' "$output" | wc -l)" -eq 4 ]
    first=$(printf '%s\n' "$output" | head -n 1)
    [[ $first == *'"metadata":{"score":0.9,"nested":{"k": [1, 2, 3]},"filter":{"gopher_words":'*'"reasons":[]}}'* ]]
    second=$(printf '%s\n' "$output" | sed -n 2p)
    [[ $second == *'"gopher_words":4,'*'"reasons":["gopher_short_doc"]}}}' ]]
    last=$(printf '%s\n' "$output" | tail -n 1)
    [[ $last == *'"metadata":{"filter":{'* ]]
}

@test "filter: --set overrides a threshold; out of range is a usage error" {
    run filter --plain -b gopher-quality --set gopher-quality.min_words=3 --set gopher-quality.min_stop_words=0 "$F/records.jsonl"
    expect_status 0
    [[ $output == *'"id": "short-1"'* ]]
    run filter -b gopher-quality --set gopher-quality.max_bullet_lines_ratio=2 "$F/records.jsonl"
    expect_status 2
    expect_output_contains "--set 'gopher-quality.max_bullet_lines_ratio=2': threshold gopher-quality.max_bullet_lines_ratio = 2 out of range [0, 1]"
    run filter --set nope.x=1 "$F/records.jsonl"
    expect_status 2
}

@test "filter: a bad rules file is reported with line and column before any record is read" {
    printf 'ok: words(text) > 1\n\nbad: text ~ /(unclosed/\n' > bad.rules
    printf 'not json\n' > in.jsonl
    run filter -r bad.rules -o out.jsonl in.jsonl
    expect_status 2
    expect_output_contains "filter: bad.rules:3:23: bad regex: missing closing parenthesis"
    [ ! -e out.jsonl ]
    printf 'use gopher-qualty\n' > bad.rules
    run filter -r bad.rules in.jsonl
    expect_status 2
    expect_output_contains "bad.rules:1:5: unknown rule set 'gopher-qualty'"
    printf 'set c4.min_num_sentences = -3\n' > bad.rules
    run filter -r bad.rules in.jsonl
    expect_status 2
    expect_output_contains "bad.rules:1:28: threshold c4.min_num_sentences = -3 out of range"
    run filter -r missing.rules in.jsonl
    expect_status 1
    expect_output_contains "missing.rules"
}

@test "filter: invalid JSON fails with position and leaves no output" {
    { head -n 1 "$F/records.jsonl"; printf '{"id": "x", "text": }\n'; } > in.jsonl
    run filter -o out.jsonl.zst in.jsonl
    expect_status 1
    expect_output_contains "in.jsonl:2:21: invalid JSON"
    [ ! -e out.jsonl.zst ]
    no_tmp_left
}

@test "filter: usage errors exit 2, --help exits 0" {
    run filter --redact ssn "$F/records.jsonl"
    expect_status 2
    expect_output_contains "unknown PII type 'ssn'"
    run filter -t pdf "$F/records.jsonl"
    expect_status 2
    run filter --annotate --rejects r.jsonl "$F/records.jsonl"
    expect_status 2
    run filter --help
    expect_status 0
    expect_output_contains "Usage: filter"
}

@test "filter: output is deterministic and compressed by default" {
    filter -t email,html,whitespace -o a.jsonl.zst "$F/records.jsonl" "$F/email.jsonl"
    filter -t email,html,whitespace -o b.jsonl.zst "$F/records.jsonl" "$F/email.jsonl"
    cmp a.jsonl.zst b.jsonl.zst
    [ "$(head -c 4 a.jsonl.zst | od -An -tx1 | tr -d ' ')" = "28b52ffd" ]
    filter --plain a.jsonl.zst -b c4 --annotate | grep -q '"c4_sentences"'
}

@test "filter: whole-record table (tests/data/filter/records.tsv)" {
    local n=0 opts rec want got
    while IFS=$'\t' read -r opts rec want; do
        [[ -z $opts || $opts == '#'* ]] && continue
        n=$((n + 1))
        printf '%s\n' "$rec" > in.jsonl
        rej=(--rejects rej.jsonl)
        [[ $opts == *--annotate* ]] && rej=()
        # shellcheck disable=SC2086
        filter --plain $opts "${rej[@]}" -o out.jsonl in.jsonl
        if [[ $want == DROP:* ]]; then
            IFS=: read -r _ reason measured <<< "$want"
            [ ! -s out.jsonl ] || { echo "row $n: kept: $(cat out.jsonl)"; return 1; }
            grep -qF "\"reason\":\"$reason\",\"measured\":$measured}" rej.jsonl ||
                { echo "row $n: $(cat rej.jsonl)"; return 1; }
        else
            got=$(cat out.jsonl)
            [ "$got" = "$want" ] || { printf 'row %d:\n got  %s\n want %s\n' "$n" "$got" "$want"; return 1; }
        fi
    done < "$F/records.tsv"
    [ "$n" -ge 10 ]
}

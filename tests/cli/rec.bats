#!/usr/bin/env bats
# The record layer from the command line, through tests/tools/passthrough (read, parse every
# record, write it unchanged). Bad input must give exit 1, "prog: file:line[:col]: what" and
# leave neither the -o output nor its .tmp behind. Also: round trips of every input format,
# signals, terminals, closed pipes and full disks.
#
# Policy for very long lines: there is no practical limit (the default cap is 1 GiB), so a
# valid 100 MB line passes through; an invalid one is reported with its column; with
# --max-line the reader stops as soon as the cap is exceeded, without buffering the rest.
load helpers

TOOLS=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools
PT=$TOOLS/passthrough

# bad_input FILE EXPECTED_MESSAGE: passthrough FILE -o out.zst fails cleanly.
bad_input() {
    run "$PT" "$1" -o out.zst
    expect_status 1
    expect_output_contains "passthrough: $2"
    [ ! -e out.zst ]
    no_tmp_left
}

@test "round trip: plain, zstd, gzip, xz, bzip2, stdin and several files" {
    "$TOOLS/genrecords" --bytes 300000 >in.jsonl
    zstd -q -c in.jsonl >in.jsonl.zst
    gzip -c in.jsonl >in.jsonl.gz
    xz -c in.jsonl >in.jsonl.xz
    bzip2 -c in.jsonl >in.jsonl.bz2
    for f in in.jsonl in.jsonl.zst in.jsonl.gz in.jsonl.xz in.jsonl.bz2; do
        "$PT" "$f" -o "out-$f.zst"
        zstd -q -dc "out-$f.zst" | cmp - in.jsonl
        cmp "out-$f.zst" out-in.jsonl.zst # same bytes whatever the input format
    done
    "$PT" --plain <in.jsonl.zst | cmp - in.jsonl
    "$PT" --plain - <in.jsonl.gz | cmp - in.jsonl
    "$PT" --plain in.jsonl in.jsonl.xz | cmp - <(cat in.jsonl in.jsonl)
    no_tmp_left
}

@test "output is deterministic for a level and differs between levels" {
    "$TOOLS/genrecords" --bytes 500000 >in.jsonl
    "$PT" in.jsonl -o a.zst
    "$PT" in.jsonl >b.zst
    "$PT" --level 3 in.jsonl -o c.zst
    "$PT" --level 9 in.jsonl -o d.zst
    cmp a.zst b.zst
    cmp a.zst c.zst
    ! cmp -s a.zst d.zst
    zstd -q -t d.zst
}

@test "--stats reports records and bytes" {
    printf '{"a":1}\n{"b":2}\n' >in.jsonl
    "$PT" in.jsonl -o out.zst --stats st.json
    grep -q '"stage":"passthrough"' st.json
    grep -q '"records_in":2,"bytes_in":16,"records_out":2,"bytes_out":16' st.json
    grep -q '"zstd_version":"1\.' st.json
}

@test "a compressed stream with no records is a valid empty stream" {
    printf '' | zstd -q -c >empty.zst
    printf '' | gzip -c >empty.gz
    "$PT" empty.zst empty.gz -o out.zst
    [ -s out.zst ]
    [ "$(zstd -q -dc out.zst | wc -c)" -eq 0 ]
}

@test "bad input: truncated zstd frame" {
    "$TOOLS/genrecords" --bytes 1000000 | zstd -q -c >full.zst
    head -c $(($(stat -c %s full.zst) / 2)) full.zst >trunc.jsonl.zst
    run "$PT" trunc.jsonl.zst -o out.zst
    expect_status 1
    [[ $output =~ ^passthrough:\ trunc\.jsonl\.zst:[0-9]+:\ truncated\ zstd\ frame$ ]]
    [ ! -e out.zst ]
    no_tmp_left
}

@test "bad input: garbage bytes (binary file, garbage after a frame, damaged frame)" {
    printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR' >image.png
    bad_input image.png "image.png:1:1: invalid JSON: expected '{'"
    printf '{"a":1}\n{"a":2}\n' | zstd -q -c >tail.zst
    printf 'GARBAGE!' >>tail.zst
    bad_input tail.zst "tail.zst:3: zstd: Unknown frame descriptor at compressed byte"
    "$TOOLS/genrecords" --bytes 200000 | zstd -q -c >dmg.zst
    printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of=dmg.zst bs=1 seek=5000 conv=notrunc status=none
    run "$PT" dmg.zst -o out.zst
    expect_status 1
    [[ $output =~ ^passthrough:\ dmg\.zst:[0-9]+:\ zstd:\  ]]
    [ ! -e out.zst ]
    no_tmp_left
}

@test "bad input: invalid UTF-8 inside a string" {
    printf '{"a":1}\n{"text":"caf\xe9"}\n' >utf8.jsonl
    bad_input utf8.jsonl "utf8.jsonl:2:13: invalid JSON: invalid UTF-8 in string"
}

@test "bad input: a line that is not an object" {
    printf '{"a":1}\n[1,2]\n' >arr.jsonl
    bad_input arr.jsonl "arr.jsonl:2:1: invalid JSON: expected '{'"
    printf '{"a":1}\n{"a":1,}\n' >comma.jsonl
    bad_input comma.jsonl "comma.jsonl:2:8: invalid JSON:"
    printf '{"a":1}\n\n' >blank.jsonl
    bad_input blank.jsonl "blank.jsonl:2:1: invalid JSON:"
}

@test "bad input: unterminated last line" {
    printf '{"a":1}\n{"b":2}' >unterm.jsonl
    bad_input unterm.jsonl "unterm.jsonl:2: missing newline at end of file"
    printf '{"a":1}\n{"b":2}' | zstd -q -c >unterm.zst
    bad_input unterm.zst "unterm.zst:2: missing newline at end of file"
}

@test "bad input: empty file and empty stdin" {
    : >empty.jsonl
    bad_input empty.jsonl "empty.jsonl:1: empty input (0 bytes)"
    run "$PT" -o out.zst </dev/null
    expect_status 1
    expect_output_contains "passthrough: <stdin>:1: empty input (0 bytes)"
    [ ! -e out.zst ]
    no_tmp_left
}

@test "bad input: NUL bytes" {
    printf '{"a":1}\n{"a":"x\0y"}\n' >nul.jsonl
    bad_input nul.jsonl "nul.jsonl:2:8: NUL byte"
}

@test "bad input: a 100 MB line (valid passes, invalid and over --max-line fail cleanly)" {
    { printf '{"text":"'; head -c 100000000 /dev/zero | tr '\0' a; printf '"}\n{"b":2}\n'; } >big.jsonl
    "$PT" big.jsonl -o out.zst
    zstd -q -dc out.zst | cmp - big.jsonl
    rm out.zst
    run bash -c "{ printf '{\"text\":\"'; head -c 100000000 /dev/zero | tr '\\0' a; printf '\",}\\n'; } |
        '$PT' -o out.zst"
    expect_status 1
    expect_output_contains "passthrough: <stdin>:1:100000012: invalid JSON: expected"
    [ ! -e out.zst ]
    no_tmp_left
    run "$PT" --max-line 1000000 big.jsonl -o out.zst
    expect_status 1
    expect_output_contains "passthrough: big.jsonl:1: line longer than 1000000 bytes"
    [ ! -e out.zst ]
    no_tmp_left
}

@test "an error in the second file leaves no output" {
    printf '{"a":1}\n' >good.jsonl
    printf '{"a":1}\nnope\n' >bad.jsonl
    run "$PT" good.jsonl bad.jsonl -o out.zst
    expect_status 1
    expect_output_contains "passthrough: bad.jsonl:2:1: invalid JSON:"
    [ ! -e out.zst ]
    no_tmp_left
    run "$PT" good.jsonl missing.jsonl -o out.zst
    expect_status 1
    expect_output_contains "passthrough: missing.jsonl: No such file or directory"
    [ ! -e out.zst ]
    no_tmp_left
}

# run_and_signal SIG: passthrough reads a FIFO that stays open, gets SIG mid-run.
run_and_signal() {
    mkfifo in.fifo
    "$PT" -o out.zst in.fifo 2>err.txt &
    local pid=$!
    local fd
    exec {fd}>in.fifo
    printf '{"a":1}\n' >&"$fd"
    local i
    for i in $(seq 50); do [ -e out.zst.tmp ] && break; sleep 0.1; done
    [ -e out.zst.tmp ]
    kill -"$1" "$pid"
    status=0
    wait "$pid" || status=$?
    exec {fd}>&-
}

@test "SIGINT during a run: exit 130, no output, no .tmp" {
    run_and_signal INT
    [ "$status" -eq 130 ]
    [ ! -e out.zst ]
    no_tmp_left
}

@test "SIGTERM during a run: exit 143, no output, no .tmp" {
    run_and_signal TERM
    [ "$status" -eq 143 ]
    [ ! -e out.zst ]
    no_tmp_left
}

@test "compressed output to a terminal is refused unless --plain or -f" {
    command -v script >/dev/null || skip "script(1) not installed"
    printf '{"a":1}\n' >in.jsonl
    run script -qec "$PT in.jsonl" /dev/null
    expect_status 1
    expect_output_contains "passthrough: refusing to write compressed data to a terminal; use -o, --plain or -f"
    run script -qec "$PT --plain in.jsonl" /dev/null
    expect_status 0
    expect_output_contains '{"a":1}'
    run script -qec "$PT -f in.jsonl >/dev/null" /dev/null
    expect_status 0
}

@test "writing to a closed pipe or a full disk: clear error, exit 1" {
    "$TOOLS/genrecords" --bytes 3000000 >in.jsonl
    run bash -c "'$PT' --plain in.jsonl | true"
    [ "$status" -eq 0 ] # the pipeline's status is true's
    run bash -c "'$PT' --plain in.jsonl 2>err.txt | true; echo \${PIPESTATUS[0]}"
    [ "$output" = 1 ]
    grep -q "passthrough: <stdout>: write failed: Broken pipe" err.txt
    run "$PT" in.jsonl -o /dev/full
    expect_status 1
    expect_output_contains "passthrough: /dev/full: write failed: No space left on device"
    run bash -c "'$PT' in.jsonl >/dev/full"
    expect_status 1
    expect_output_contains "passthrough: <stdout>: write failed: No space left on device"
}

#!/usr/bin/env bats
# kiln-step: content-hashed caching, failure atomicity, corruption detection, audit, gc.
# Steps here run a small shell "stage" that counts its executions, so a rerun is visible.
load ../cli/helpers

setup() {
    cd "$BATS_TEST_TMPDIR" || exit 1
    export KILN_CACHE_DIR=$BATS_TEST_TMPDIR/cache
    mkdir -p bin
    # upper IN OUT [SUFFIX]: uppercases IN into OUT, appends SUFFIX; counts runs in runs.log.
    cat >bin/upper <<'SH'
#!/bin/sh
echo run >>"$RUNS"
[ "$1" = fail ] && { echo partial >"$3"; exit 3; }
tr a-z A-Z <"$1" >"$2" && printf '%s' "${3:-}" >>"$2"
SH
    # clock OUT: nondeterministic output (for audit mismatch)
    printf '#!/bin/sh\ndate +%%s%%N >"$1"\n' >bin/clock
    chmod +x bin/upper bin/clock
    export RUNS=$BATS_TEST_TMPDIR/runs.log
    : >"$RUNS"
    echo hello >in.txt
}

runs() { wc -l <"$RUNS"; }

@test "a second run with nothing changed is a cache hit and runs nothing" {
    run kiln-step run --name up --in in.txt --out out.txt -- bin/upper in.txt out.txt
    expect_status 0
    [ "$(cat out.txt)" = HELLO ]
    [ "$(runs)" -eq 1 ]
    run kiln-step run --name up --in in.txt --out out.txt -- bin/upper in.txt out.txt
    expect_status 0
    expect_output_contains "cached"
    [ "$(runs)" -eq 1 ]
    [ "$(cat out.txt)" = HELLO ]
}

@test "touching an input without changing it reruns nothing; changing it does" {
    kiln-step run -q --in in.txt --out out.txt -- bin/upper in.txt out.txt 2>/dev/null || true
    kiln-step run --in in.txt --out out.txt -- bin/upper in.txt out.txt
    touch -d '2030-01-01' in.txt
    kiln-step run --in in.txt --out out.txt -- bin/upper in.txt out.txt
    [ "$(runs)" -eq 1 ]
    echo world >in.txt
    kiln-step run --in in.txt --out out.txt -- bin/upper in.txt out.txt
    [ "$(runs)" -eq 2 ]
    [ "$(cat out.txt)" = WORLD ]
}

@test "changing an option reruns the step" {
    kiln-step run --in in.txt --out out.txt -- bin/upper in.txt out.txt A
    kiln-step run --in in.txt --out out.txt -- bin/upper in.txt out.txt B
    [ "$(runs)" -eq 2 ]
    [ "$(cat out.txt)" = "HELLO
B" ] || [ "$(tail -c 1 out.txt)" = B ]
}

@test "identical steps in two work trees share one result" {
    mkdir -p a b
    cp in.txt a/in.txt; cp in.txt b/in.txt
    kiln-step run --in a/in.txt --out a/out.txt -- bin/upper a/in.txt a/out.txt
    run kiln-step run --in b/in.txt --out b/out.txt -- bin/upper b/in.txt b/out.txt
    expect_output_contains cached
    [ "$(runs)" -eq 1 ]
    cmp a/out.txt b/out.txt
}

@test "a failed step leaves no output and no cache entry" {
    run kiln-step run --in in.txt --out out.txt -- bin/upper fail in.txt out.txt
    [ "$status" -eq 3 ]
    [ ! -e out.txt ]
    [ ! -e .kiln-tmp-out.txt ]
    [ -z "$(find cache -path '*steps*' -name '*.json' 2>/dev/null)" ]
}

@test "a corrupt cache object is detected and rebuilt, never used" {
    kiln-step run --in in.txt --out out.txt -- bin/upper in.txt out.txt
    sha=$(sha256sum out.txt | cut -c1-64)
    obj=cache/objects/${sha:0:2}/$sha
    rm -f out.txt
    chmod u+w "$obj"; echo garbage >"$obj"
    run kiln-step run --in in.txt --out out.txt -- bin/upper in.txt out.txt
    expect_status 0
    expect_output_contains "corrupt cache object"
    [ "$(runs)" -eq 2 ]
    [ "$(cat out.txt)" = HELLO ]
}

@test "a killed step leaves no output, and the next run redoes only it" {
    printf '#!/bin/sh\necho run >>"$RUNS"\necho part >"$2"\nsleep 30\n' >bin/slow
    chmod +x bin/slow
    kiln-step run --in in.txt --out mid.txt -- bin/upper in.txt mid.txt
    kiln-step run --in mid.txt --out out.txt -- bin/slow mid.txt out.txt &
    pid=$!
    sleep 1
    kill -INT $pid
    wait $pid || true
    [ ! -e out.txt ]
    [ ! -e .kiln-tmp-out.txt ]
    kiln-step run --in in.txt --out mid.txt -- bin/upper in.txt mid.txt
    [ "$(grep -c run "$RUNS")" -eq 2 ]   # upper once, slow once; upper was cached
}

@test "two concurrent runs of the same steps do not corrupt the cache" {
    for i in 1 2 3 4; do echo "line $i" >in$i.txt; done
    for j in a b; do
        ( for i in 1 2 3 4; do kiln-step run -q --in in$i.txt --out $j-out$i.txt -- bin/upper in$i.txt $j-out$i.txt; done ) &
    done
    wait
    for i in 1 2 3 4; do cmp a-out$i.txt b-out$i.txt; done
    run kiln-step run --in in1.txt --out c.txt -- bin/upper in1.txt c.txt
    expect_output_contains cached
}

@test "audit re-executes every step and flags a nondeterministic one" {
    kiln-step run --log run.jsonl --name up --in in.txt --out out.txt -- bin/upper in.txt out.txt
    kiln-step run --log run.jsonl --name up2 --in out.txt --out out2.txt -- bin/upper out.txt out2.txt X
    run kiln-step audit run.jsonl
    expect_status 0
    expect_output_contains "audit: 2 steps, 2 outputs compared, 0 mismatches"
    kiln-step run --log run.jsonl --name clock --out t.txt -- bin/clock t.txt
    run kiln-step audit run.jsonl
    expect_status 1
    expect_output_contains "NO"
}

@test "gc prunes by size" {
    for i in 1 2 3; do head -c 100000 /dev/urandom >r$i; kiln-step run --in r$i --out o$i -- cp r$i o$i; done
    run kiln-step gc --max-size 250000
    expect_status 0
    expect_output_contains "gc: removed"
    total=$(du -sb cache/objects | cut -f1)
    [ "$total" -le 400000 ]
}

@test "usage errors exit 2" {
    run kiln-step run --in in.txt -- true
    expect_status 2
    run kiln-step frobnicate
    expect_status 2
}

@test "a directory output is stored file by file, restored on a hit and audited" {
    printf '#!/bin/sh\necho run >>"$RUNS"\nmkdir -p "$2/sub" && tr a-z A-Z <"$1" >"$2/a.txt" && echo x >"$2/sub/b.txt"\n' >bin/mkdir-out
    chmod +x bin/mkdir-out
    kiln-step run --log run.jsonl --name ckpt --in in.txt --out-dir ck -- bin/mkdir-out in.txt ck
    [ "$(cat ck/a.txt)" = HELLO ] && [ -f ck/sub/b.txt ]
    rm -rf ck
    run kiln-step run --log run.jsonl --name ckpt --in in.txt --out-dir ck -- bin/mkdir-out in.txt ck
    expect_output_contains cached
    [ "$(runs)" -eq 1 ]
    [ "$(cat ck/a.txt)" = HELLO ] && [ -f ck/sub/b.txt ]
    run kiln-step audit run.jsonl
    expect_status 0
    expect_output_contains "ckpt:sub/b.txt"
    expect_output_contains "audit: 1 steps, 2 outputs compared, 0 mismatches"
}

@test "--aux outputs are cached but not compared by the audit" {
    printf '#!/bin/sh\ncp "$1" "$2"\ndate +%%s%%N >"$3"\n' >bin/withstats
    chmod +x bin/withstats
    kiln-step run --log run.jsonl --name s --in in.txt --out o.txt --aux st.txt -- bin/withstats in.txt o.txt st.txt
    first=$(cat st.txt)
    rm st.txt
    kiln-step run --log run.jsonl --name s --in in.txt --out o.txt --aux st.txt -- bin/withstats in.txt o.txt st.txt
    [ "$(cat st.txt)" = "$first" ]     # restored from the cache
    run kiln-step audit run.jsonl
    expect_status 0
    expect_output_contains "1 outputs compared, 0 mismatches"
}

@test "audit restores inputs under their own base names (commands that record names)" {
    printf '#!/bin/sh\nbasename "$1" >"$2"\n' >bin/nm
    chmod +x bin/nm
    kiln-step run --log run.jsonl --name nm --in in.txt --out o.txt -- bin/nm in.txt o.txt
    run kiln-step audit run.jsonl
    expect_status 0
    expect_output_contains "0 mismatches"
}

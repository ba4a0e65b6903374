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
    for _ in $(seq 100); do [ -s .kiln-tmp-out.txt ] && break; sleep 0.1; done # the command runs
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

@test "a directory input is hashed by content (names, modes, bytes) and an audit rebuilds it" {
    mkdir -p ck/sub
    echo w1 >ck/a.bin
    echo w2 >ck/sub/b.bin
    printf '#!/bin/sh\necho run >>"$RUNS"\ncat "$1/a.bin" "$1/sub/b.bin" >"$2"\n' >bin/catdir
    chmod +x bin/catdir
    kiln-step run --log run.jsonl --name use --in-dir ck --out o.txt -- bin/catdir ck o.txt
    # The same tree elsewhere (copied, so new inodes and mtimes) is the same input.
    cp -r ck ck2
    run kiln-step run --in-dir ck2 --out o2.txt -- bin/catdir ck2 o2.txt
    expect_output_contains cached
    [ "$(runs)" -eq 1 ]
    # The audit rebuilds the tree from the object store: the original path is not read.
    rm -rf ck
    run kiln-step audit run.jsonl
    expect_status 0
    expect_output_contains "1 steps, 1 outputs compared, 0 mismatches"
    : >"$RUNS" # the audit ran the command once more
    # A changed byte, an executable bit or an added file makes another input.
    echo w3 >ck2/sub/b.bin
    kiln-step run -q --in-dir ck2 --out o2.txt -- bin/catdir ck2 o2.txt
    [ "$(runs)" -eq 1 ]
    chmod +x ck2/a.bin
    kiln-step run -q --in-dir ck2 --out o2.txt -- bin/catdir ck2 o2.txt
    [ "$(runs)" -eq 2 ]
    mv ck2/sub/b.bin ck2/sub/b2.bin && cp ck2/sub/b2.bin ck2/sub/b.bin
    kiln-step run -q --in-dir ck2 --out o2.txt -- bin/catdir ck2 o2.txt
    [ "$(runs)" -eq 3 ]
    # A symbolic link inside is refused, with the path.
    ln -s a.bin ck2/link
    run kiln-step run --in-dir ck2 --out o2.txt -- bin/catdir ck2 o2.txt
    expect_status 1
    expect_output_contains "ck2/link: a symbolic link"
    [ "$(runs)" -eq 3 ]
}

@test "an audit whose recorded directory input no longer matches its objects fails clearly" {
    mkdir -p ck
    echo w1 >ck/a.bin
    printf '#!/bin/sh\ncat "$1/a.bin" >"$2"\n' >bin/catdir
    chmod +x bin/catdir
    kiln-step run -q --log run.jsonl --name use --in-dir ck --out o.txt -- bin/catdir ck o.txt
    sha=$(sha256sum ck/a.bin | cut -c1-64)
    rm -f "cache/objects/${sha:0:2}/$sha"
    run kiln-step audit run.jsonl
    expect_status 1
    expect_output_contains "is not in the cache"
}

@test "two runs of one step on the same tree at once: it runs once, the other waits and reuses it" {
    printf '#!/bin/sh\necho run >>"$RUNS"\nsleep 1\ntr a-z A-Z <"$1" >"$2"\n' >bin/slowup
    chmod +x bin/slowup
    kiln-step run -q --in in.txt --out out.txt -- bin/slowup in.txt out.txt &
    a=$!
    kiln-step run --in in.txt --out out.txt -- bin/slowup in.txt out.txt 2>b.err &
    b=$!
    wait $a
    wait $b
    [ "$(runs)" -eq 1 ]
    [ "$(cat out.txt)" = HELLO ]
    [ -z "$(find . -name '.kiln-tmp-*')" ]
}

# full_disk_fs DIR: a 1 MB tmpfs at DIR (needs root, as in CI); skips the test otherwise.
full_disk_fs() {
    mkdir -p "$1"
    mount -t tmpfs -o size=1m kiln-full-disk "$1" 2>/dev/null ||
        skip "cannot mount a small tmpfs here (needs root); the ulimit -f test covers EFBIG"
    FULL_DISK_MNT=$1
}

teardown() {
    if [ -n "${FULL_DISK_MNT:-}" ]; then
        cd "$BATS_TEST_TMPDIR" && umount "$FULL_DISK_MNT"
    fi
}

# cache_clean DIR: every object matches its name and no temporary is left in the cache.
cache_clean() {
    local f
    for f in "$1"/objects/*/*; do
        [ -e "$f" ] || continue
        [ "$(sha256sum <"$f" | cut -c1-64)" = "$(basename "$f")" ] || { echo "corrupt $f"; return 1; }
    done
    [ -z "$(find "$1" -name '*.tmp')" ] || { find "$1" -name '*.tmp'; return 1; }
}

@test "full disk (ENOSPC, tmpfs): a clear error, no output, no entry; with space back only that step reruns" {
    full_disk_fs "$BATS_TEST_TMPDIR/mnt"
    # The stage's input (0.8 MB, incompressible, kept in the cache too) lives outside; its
    # output does not fit in what is left of the 1 MB file system.
    for i in $(seq 1 200); do
        printf '{"id":"%d","text":"%s"}\n' "$i" "$(head -c 3000 /dev/urandom | base64 -w0)"
    done >"$BATS_TEST_TMPDIR/big.jsonl"
    cd mnt
    export KILN_CACHE_DIR=$PWD/cache
    cp "$BATS_TEST_TMPDIR/in.txt" in.txt
    cat >Makefile <<MK
all: big.jsonl
small.txt: in.txt
	kiln-step run --log run.jsonl --name small --in in.txt --out small.txt -- $BATS_TEST_TMPDIR/bin/upper in.txt small.txt
big.jsonl: small.txt
	kiln-step run --log run.jsonl --name big --in small.txt --in $BATS_TEST_TMPDIR/big.jsonl --out big.jsonl -- dedupe -q --mode exact --plain -o big.jsonl $BATS_TEST_TMPDIR/big.jsonl
MK
    run make -s
    [ "$status" -ne 0 ]
    expect_output_contains "No space left on device"
    expect_output_contains "kiln-step: big: failed (exit 1); no output kept"
    [ -f small.txt ] && [ ! -e big.jsonl ]
    [ -z "$(find . -name '.kiln-tmp-*')" ]
    [ "$(grep -c '"name":"big"' run.jsonl)" -eq 0 ]
    cache_clean cache
    [ "$(runs)" -eq 1 ]
    # Space back: only the failed step runs.
    mount -o remount,size=16m "$FULL_DISK_MNT"
    run make -s
    expect_status 0
    [[ "$output" != *"small: running"* ]]
    expect_output_contains "big: running"
    [ "$(runs)" -eq 1 ]
    [ "$(wc -l <big.jsonl)" -eq 200 ]
    cache_clean cache
}

@test "full disk in the cache (ENOSPC while storing): no output placed, no half-written object" {
    full_disk_fs "$BATS_TEST_TMPDIR/cachefs"
    export KILN_CACHE_DIR=$FULL_DISK_MNT
    kiln-step run -q --in in.txt --out small.txt -- bin/upper in.txt small.txt
    # The output is on another file system, so storing it means copying 2 MB into 1 MB.
    printf '#!/bin/sh\necho run >>"$RUNS"\nhead -c 2000000 /dev/urandom >"$2"\n' >bin/gen
    chmod +x bin/gen
    run kiln-step run --log run.jsonl --name gen --in small.txt --out big.bin -- bin/gen small.txt big.bin
    expect_status 1
    expect_output_contains "cannot store"
    expect_output_contains "No space left on device"
    [ ! -e big.bin ] && [ -z "$(find . -name '.kiln-tmp-*')" ]
    [ ! -s run.jsonl ]
    cache_clean "$FULL_DISK_MNT"
    mount -o remount,size=16m "$FULL_DISK_MNT"
    run kiln-step run --log run.jsonl --name gen --in small.txt --out big.bin -- bin/gen small.txt big.bin
    expect_status 0
    [ "$(stat -c %s big.bin)" -eq 2000000 ]
    cache_clean "$FULL_DISK_MNT"
}

@test "file size limit (ulimit -f, EFBIG/SIGXFSZ): the step is reported, leaves nothing, reruns later" {
    printf '#!/bin/sh\necho run >>"$RUNS"\nhead -c 2000000 /dev/zero >"$2"\n' >bin/gen
    chmod +x bin/gen
    kiln-step run -q --in in.txt --out small.txt -- bin/upper in.txt small.txt
    # The command is killed by SIGXFSZ: kiln-step says so and keeps nothing.
    run bash -c 'ulimit -f 512 && exec kiln-step run --log run.jsonl --name gen --in small.txt --out big.bin -- bin/gen small.txt big.bin'
    expect_status 153
    expect_output_contains "kiln-step: gen: killed by signal 25 (File size limit exceeded); no output kept"
    [ ! -e big.bin ] && [ -z "$(find . -name '.kiln-tmp-*')" ]
    [ ! -s run.jsonl ]
    cache_clean cache
    # kiln-step's own write cut short (the run record crosses the limit): EFBIG is reported, the
    # record is not left half-written and the output is not placed.
    head -c $((512 * 1024 - 100)) /dev/zero | tr '\0' '#' >run.jsonl
    run bash -c 'ulimit -f 512 && exec kiln-step run --log run.jsonl --name up2 --in in.txt --out up2.txt -- bin/upper in.txt up2.txt X'
    expect_status 1
    expect_output_contains "cannot append to the run record run.jsonl: File too large"
    [ "$(stat -c %s run.jsonl)" -eq $((512 * 1024 - 100)) ]
    [ ! -e up2.txt ] && [ -z "$(find . -name '.kiln-tmp-*')" ]
    cache_clean cache
    # Without the limit, the failed step runs again; the stored step is a hit.
    : >run.jsonl
    before=$(runs)
    kiln-step run -q --log run.jsonl --name gen --in small.txt --out big.bin -- bin/gen small.txt big.bin
    [ "$(runs)" -eq $((before + 1)) ]
    [ "$(stat -c %s big.bin)" -eq 2000000 ]
    run kiln-step run --log run.jsonl --name up2 --in in.txt --out up2.txt -- bin/upper in.txt up2.txt X
    expect_output_contains cached
}

@test "an output path is replaced only as a whole path, never inside another argument" {
    mkdir d
    echo data >d/x.txt
    kiln-step run -q --in d/x.txt --out x.txt -- cp d/x.txt x.txt
    [ "$(cat x.txt)" = data ]
}

@test "after SIGKILL the next run clears the stale temporary and redoes only the unfinished step" {
    printf '#!/bin/sh\necho $$ >cmd.pid\necho run >>"$RUNS"\necho part >"$2"\n[ -z "$SLOW" ] || exec sleep 30\ncp "$1" "$2"\n' >bin/slow
    chmod +x bin/slow
    kiln-step run -q --in in.txt --out mid.txt -- bin/upper in.txt mid.txt
    SLOW=1 kiln-step run -q --in mid.txt --out out.txt -- bin/slow mid.txt out.txt &
    pid=$!
    for _ in $(seq 50); do [ -s .kiln-tmp-out.txt ] && break; sleep 0.1; done
    kill -KILL $pid
    wait $pid || true
    kill "$(cat cmd.pid)" # the orphaned command
    [ ! -e out.txt ] && [ -e .kiln-tmp-out.txt ]
    # The lock died with kiln-step (the command never held it): no wait here.
    kiln-step run -q --in in.txt --out mid.txt -- bin/upper in.txt mid.txt
    timeout 20 kiln-step run -q --in mid.txt --out out.txt -- bin/slow mid.txt out.txt
    [ "$(cat out.txt)" = HELLO ] && [ ! -e .kiln-tmp-out.txt ]
    [ "$(runs)" -eq 3 ] # upper once, the killed command, its rerun
}

@test "provenance leaves out --aux outputs, so two fresh runs give the same record" {
    printf '#!/bin/sh\ncp "$1" "$2"\ndate +%%s%%N >"$3"\n' >bin/withstats
    chmod +x bin/withstats
    for r in 1 2; do
        KILN_CACHE_DIR=$PWD/cache$r kiln-step run -q --log run$r.jsonl --name s --in in.txt \
            --out o.txt --aux st.txt -- bin/withstats in.txt o.txt st.txt
        kiln-step provenance -o prov$r.jsonl run$r.jsonl
    done
    ! cmp -s run1.jsonl run2.jsonl
    cmp prov1.jsonl prov2.jsonl
    grep -q '"path":"o.txt"' prov1.jsonl
    ! grep -q "$(sha256sum st.txt | cut -c1-64)" prov2.jsonl
}

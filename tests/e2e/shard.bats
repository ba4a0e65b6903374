#!/usr/bin/env bats
# shard: sharded runs equal unsharded ones byte for byte — filter, tokenize encode, dedupe
# (exact and near, with rejects) for 1, 3 and 8 shards; the sharded pipeline (pipelines/
# shard.mk) on ENGINE=local, on GNU parallel (--sshlogin :) and on a one-node Slurm cluster
# started here; a killed task is rerun alone.
load ../cli/helpers

TOOLS=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools

setup_file() {
    # Near pairs, exact copies (some differing only in case), records without an id, empty
    # texts: every rule of dedupe's decision order shows up.
    local d=$BATS_FILE_TMPDIR
    "$TOOLS/nearpairs" gen --pairs 60 --seed 7 >"$d/pairs.jsonl"
    {
        cat "$d/pairs.jsonl"
        sed 's/"id":"p/"id":"c/' "$d/pairs.jsonl" | awk 'NR % 3 == 0'
        sed 's/"id":"p/"id":"u/; s/"text":"The/"text":"THE/' "$d/pairs.jsonl" | awk 'NR % 5 == 1'
        echo '{"id":"e1","text":""}'
        echo '{"text":"a record without an id, twice"}'
        echo '{"text":"a record without an id, twice"}'
    } >"$d/in.jsonl"
}

# split N then run CMD (with {} = shard) per shard, merge OUT-{} files; compare to REF.
sharded() {
    local n=$1 cmd=$2
    rm -rf parts && mkdir parts
    shard split -q -n "$n" -o 'parts/in-{}.jsonl.zst' "$IN"
    for ((i = 0; i < n; i++)); do
        bash -euo pipefail -c "${cmd//\{\}/$i}"
    done
}

@test "shard: split and merge give back the input, byte for byte" {
    IN=$BATS_FILE_TMPDIR/in.jsonl
    for n in 1 3 8; do
        sharded "$n" 'true'
        run shard merge --plain parts/in-*.jsonl.zst
        expect_status 0
        [ "$output" = "$(cat "$IN")" ]
    done
    run shard split -q -n 2 -o 'again-{}.jsonl.zst' parts/in-0.jsonl.zst
    expect_status 1
    expect_output_contains "already has a \"_kiln_seq\""
    run shard merge "$IN"
    expect_status 1
    expect_output_contains "no \"_kiln_seq\""
}

@test "shard: filter per shard equals filter" {
    IN=$DATA/filter/records.jsonl
    filter -q --builtin default --redact all --rejects ref.rej.zst -o ref.zst "$IN"
    for n in 1 3 8; do
        sharded "$n" 'filter -q --builtin default --redact all --rejects parts/rej-{}.zst -o parts/out-{}.zst parts/in-{}.jsonl.zst'
        shard merge -q -o out.zst parts/out-*.zst
        shard merge -q -o rej.zst parts/rej-*.zst
        cmp ref.zst out.zst
        cmp ref.rej.zst rej.zst
    done
}

@test "shard: tokenize encode per shard equals tokenize encode" {
    IN=$BATS_FILE_TMPDIR/in.jsonl
    tokenize train -q --vocab-size 300 -o tok.json "$IN"
    tokenize encode -q --tokenizer tok.json -o ref.zst "$IN"
    for n in 1 3 8; do
        sharded "$n" 'tokenize encode -q --tokenizer tok.json -o parts/out-{}.zst parts/in-{}.jsonl.zst'
        shard merge -q -o out.zst parts/out-*.zst
        cmp ref.zst out.zst
    done
}

# balance OPTS (--split-dir) on the keys of N shards, routed and merged, against one run.
balance_sharded() {
    local n=$1
    shift
    sharded "$n" 'shard keys -o parts/keys-{}.zst parts/in-{}.jsonl.zst'
    rm -rf plan out && mkdir out
    shard merge --keep-seq parts/keys-*.zst | balance -q "$@" --split-dir plan
    local plans=()
    for f in plan/*.jsonl.zst; do plans+=(--plan "$f"); done
    for ((i = 0; i < n; i++)); do
        shard route "${plans[@]}" -o "parts/out-$i-{}.zst" "parts/in-$i.jsonl.zst"
    done
    for f in ref/*.jsonl.zst; do
        s=$(basename "$f" .jsonl.zst)
        shard merge -q -o "out/$s.zst" parts/out-*-"$s".zst
        cmp "$f" "out/$s.zst"
    done
}

@test "shard: balance's stratified splits on shards equal one balance run" {
    IN=$BATS_TEST_TMPDIR/lab.jsonl
    awk '{ l = (NR % 3 == 0) ? "spam" : "ham"; sub(/^\{/, "{\"label\":\"" l "\","); print }' \
        "$BATS_FILE_TMPDIR/in.jsonl" | grep '"id"' >"$IN"
    balance -q --seed 3 --split train=0.8,valid=0.1,test=0.1 --split-dir ref "$IN"
    [ "$(zstd -dc ref/valid.jsonl.zst | grep -c spam)" -gt 3 ]
    for n in 1 3 8; do
        balance_sharded "$n" --seed 3 --split train=0.8,valid=0.1,test=0.1
    done
    # Copies (oversampling) cannot be routed: refused, not silently wrong.
    shard merge --keep-seq parts/keys-*.zst | balance -q --strategy oversample -o over.zst
    run shard route --plan over.zst -o 'x-{}.zst' parts/in-0.jsonl.zst
    expect_status 1
    expect_output_contains "copies cannot be routed"
}

# dedupe OPTS across N shards with R bucket ranges; compares output and rejects.
dedupe_sharded() {
    local n=$1 r=$2
    shift 2
    sharded "$n" "dedupe -q $* --phase sign --work w --shards $n --ranges $r --shard {} parts/in-{}.jsonl.zst"
    for ((j = 0; j < r; j++)); do
        [ "$*" = "${*#*exact}" ] || break
        dedupe -q "$@" --phase bucket --work w --shards "$n" --ranges "$r" --range "$j"
    done
    dedupe -q "$@" --phase cluster --work w --shards "$n" --ranges "$r"
    for ((i = 0; i < n; i++)); do
        dedupe -q "$@" --phase apply --work w --shards "$n" --ranges "$r" --shard "$i" \
            --rejects "parts/rej-$i.zst" -o "parts/out-$i.zst" "parts/in-$i.jsonl.zst"
    done
    shard merge -q -o out.zst parts/out-*.zst
    shard merge -q -o rej.zst parts/rej-*.zst
    cmp ref.zst out.zst
    cmp ref.rej.zst rej.zst
    rm -rf w
}

@test "shard: near dedupe across shards equals one dedupe run" {
    IN=$BATS_FILE_TMPDIR/in.jsonl
    dedupe -q --rejects ref.rej.zst -o ref.zst "$IN"
    [ "$(zstd -dc ref.rej.zst | grep -c '"reason":"near"')" -gt 20 ]
    [ "$(zstd -dc ref.rej.zst | grep -c '"reason":"exact"')" -gt 20 ]
    dedupe_sharded 1 1
    dedupe_sharded 3 2
    dedupe_sharded 8 8
    dedupe -q --threshold 0.7 --rejects ref.rej.zst -o ref.zst "$IN"
    dedupe_sharded 3 5 --threshold 0.7
}

@test "shard: dedupe across shards with records missing the key (--missing keep, drop)" {
    # apply copies kept records unparsed except under --missing drop, where every record is
    # parsed to find the ones without the key.
    IN=$BATS_TEST_TMPDIR/miss.jsonl
    awk 'NR % 7 == 0 { sub(/"text":/, "\"body\":") } { print }' "$BATS_FILE_TMPDIR/in.jsonl" >"$IN"
    for m in keep drop; do
        dedupe -q --missing "$m" --rejects ref.rej.zst -o ref.zst "$IN"
        dedupe_sharded 3 2 --missing "$m"
    done
    [ "$(zstd -dc ref.rej.zst | grep -c '"reason":"missing"')" -gt 5 ]
}

@test "shard: exact dedupe across shards equals one dedupe run" {
    IN=$BATS_FILE_TMPDIR/in.jsonl
    dedupe -q --mode exact --rejects ref.rej.zst -o ref.zst "$IN"
    for n in 1 3 8; do
        dedupe_sharded "$n" "$n" --mode exact
    done
}

@test "shard: dedupe phases refuse mismatched parameters and missing phases" {
    IN=$BATS_FILE_TMPDIR/in.jsonl
    shard split -q -n 2 -o 'in-{}.jsonl.zst' "$IN"
    run dedupe --phase cluster --work w --shards 2
    expect_status 1
    expect_output_contains "sign --shard 0"
    dedupe -q --phase sign --work w --shards 2 --shard 0 in-0.jsonl.zst
    dedupe -q --phase sign --work w --shards 2 --shard 1 in-1.jsonl.zst
    run dedupe --threshold 0.7 --phase bucket --work w --shards 2 --range 0
    expect_status 1
    expect_output_contains "signed with other parameters"
    run dedupe --phase apply --work w --shards 2 --shard 0 in-0.jsonl.zst
    expect_status 1
    expect_output_contains "cluster"
    run dedupe --phase sign --work w --shards 2 --shard 2 in-0.jsonl.zst
    expect_status 2
    run dedupe --phase sign --work w --shards 2 --shard 0 "$IN"
    expect_status 1
    expect_output_contains "_kiln_seq"
}

# The sharded pipeline on an engine: equal to dedupe | filter, unsharded.
pipeline_on() {
    local engine=$1 n=$2
    local filt='--transform whitespace --redact all'
    dedupe -q --mode near --threshold 0.8 "$BATS_FILE_TMPDIR/in.jsonl" |
        filter -q $filt -o ref.zst
    # SAN=1 selects build/san and its flags, so make never rebuilds a sanitizer binary plainly.
    local san=
    [ "${KILN_BUILD:-build}" = build/san ] && san=1
    make -s --no-print-directory -C "$KILN_ROOT" shard-pipeline ENGINE="$engine" \
        SHARDS="$n" RANGES=2 SHARD_IN="$BATS_FILE_TMPDIR/in.jsonl" SP="$PWD/sp" \
        STEP_CACHE="$PWD/cache" SHARD_FILTER="$filt" SAN="$san" \
        >log 2>&1 || { cat log; return 1; }
    cmp ref.zst sp/clean.jsonl.zst
    [ "$(zstd -dc ref.zst | wc -l)" -gt 40 ]
}

# A task that kills itself the first time: the array fails; the rerun runs that task alone.
killed_task_rerun() {
    local cmd='echo {} >>runs.log; if [ {} = 1 ] && [ ! -e killed ]; then touch killed; kill -9 $$; fi'
    run env ENGINE="$1" "$KILN_ROOT/pipelines/shard-array" k 3 aw "$cmd"
    [ "$status" -ne 0 ]
    [ ! -e aw/.done/k.1 ] && [ -e aw/.done/k.0 ] && [ -e aw/.done/k.2 ]
    ENGINE="$1" "$KILN_ROOT/pipelines/shard-array" k 3 aw "$cmd"
    [ "$(sort runs.log | tr '\n' ' ')" = "0 1 1 2 " ]
    ENGINE="$1" "$KILN_ROOT/pipelines/shard-array" k 3 aw "$cmd" # all done: runs nothing
    [ "$(wc -l <runs.log)" -eq 4 ]
}

@test "shard: pipeline on ENGINE=local equals the unsharded steps; a killed task reruns alone" {
    pipeline_on local 2
    killed_task_rerun local
}

@test "shard: pipeline on ENGINE=parallel (--sshlogin :)" {
    command -v parallel >/dev/null || skip "GNU parallel is not installed (Debian: parallel)"
    SSHLOGIN=: pipeline_on parallel 2
    [ -s sp/apply.joblog ]
    killed_task_rerun parallel
}

# A one-node Slurm cluster in a scratch folder: munged + slurmctld + slurmd on localhost.
slurm_start() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null ||
        { echo "slurm-wlm or munge not installed"; return 1; }
    [ "$(id -u)" -eq 0 ] || { echo "needs root to start slurmd"; return 1; }
    S=$BATS_TEST_TMPDIR/slurm
    mkdir -p "$S/state" "$S/spool" "$S/munge" /run/munge
    dd if=/dev/urandom bs=1 count=1024 of="$S/munge/munge.key" 2>/dev/null
    chmod 400 "$S/munge/munge.key"
    munged --key-file="$S/munge/munge.key" --socket="$S/munge/sock" --pid-file="$S/munge/pid" \
        --log-file="$S/munge/log" --seed-file="$S/munge/seed" -f 2>"$S/munged.err" ||
        { cat "$S/munged.err"; return 1; }
    local host cpus
    host=$(hostname -s)
    cpus=$(nproc)
    cat >"$S/slurm.conf" <<CONF
ClusterName=kilntest
SlurmctldHost=$host
SlurmctldPort=$((16817 + RANDOM % 1000))
SlurmdPort=$((17817 + RANDOM % 1000))
AuthType=auth/munge
AuthInfo=socket=$S/munge/sock
CryptoType=crypto/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
SlurmUser=root
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=kiln Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
    export SLURM_CONF=$S/slurm.conf
    slurmctld -c -f "$S/slurm.conf" || { cat "$S/slurmctld.log"; return 1; }
    slurmd -f "$S/slurm.conf" || { cat "$S/slurmd.log"; return 1; }
    for _ in $(seq 1 30); do
        sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && return 0
        sleep 0.5
    done
    echo "the node did not come up:"; tail -5 "$S/slurmctld.log" "$S/slurmd.log"
    return 1
}

slurm_stop() {
    [ -n "${S:-}" ] || return 0
    for p in slurmd slurmctld; do
        [ -f "$S/$p.pid" ] && kill "$(cat "$S/$p.pid")" 2>/dev/null
    done
    [ -f "$S/munge/pid" ] && kill "$(cat "$S/munge/pid")" 2>/dev/null
    sleep 0.2
    true
}

teardown() {
    slurm_stop
}

@test "shard: pipeline on ENGINE=slurm (one-node cluster started here)" {
    slurm_start >slurm.err 2>&1 || skip "cannot start a one-node Slurm cluster here: $(tail -n 1 slurm.err)"
    export SBATCH_ARGS="--time=5"
    pipeline_on slurm 2 || { tail -n 20 "$S/slurmctld.log" "$S/slurmd.log"; false; }
    [ -e sp/slurm/apply-reduce.log ]
    killed_task_rerun slurm
}

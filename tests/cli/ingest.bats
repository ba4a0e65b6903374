#!/usr/bin/env bats
# ingest: recipes, archives (tar, tar.gz, zip, cpio, 7z), folders and JSON Lines into records;
# hostile members, bombs, corrupt archives, decoding, checksums; datasets/fetch integrity.
load helpers

MK=${KILN_ROOT}/${KILN_BUILD:-build}/tests/tools/mkarchive
FETCH=$KILN_ROOT/datasets/fetch

# ids FILE: the ids of a plain JSON Lines file, one a line.
ids() { grep -o '"id":"[^"]*"' "$1" | cut -d'"' -f4; }

@test "tar members become records with id, text, source, label, metadata" {
    "$MK" tar in.tar "f:mail/spam/1.txt=buy now" "f:mail/ham/2.txt=hello bob" "d:mail"
    run ingest --plain --label 'mail/spam/*=spam' --label 'mail/ham/*=ham' -o out.jsonl in.tar
    expect_status 0
    [ "$(wc -l <out.jsonl)" -eq 2 ]
    sha=$(printf 'buy now' | sha256sum | cut -c1-64)
    grep -qx "{\"id\":\"mail/spam/1.txt\",\"text\":\"buy now\",\"source\":\"in\",\"label\":\"spam\",\"metadata\":{\"member\":\"mail/spam/1.txt\",\"size\":7,\"sha256\":\"$sha\"}}" out.jsonl
    grep -q '"id":"mail/ham/2.txt".*"label":"ham"' out.jsonl
    no_tmp_left
}

@test "hostile members are skipped and counted: ../, absolute, symlink, hard link, device" {
    "$MK" tar.gz evil.tgz "f:ok.txt=fine" "f:../escape.txt=x" "f:a/../../up.txt=x" \
        "f:/etc/abs.txt=x" "l:link=/etc/passwd" "h:hard=ok.txt" "c:tty"
    run ingest --plain --stats s.json -o out.jsonl evil.tgz
    expect_status 0
    expect_output_contains "skipped 2 link(s), 1 device/special member(s), 3 unsafe path(s)"
    [ "$(ids out.jsonl)" = "ok.txt" ]
    grep -q '"skipped_links":2' s.json
    grep -q '"skipped_unsafe_paths":3' s.json
    grep -q '"skipped_specials":1' s.json
    # nothing was written outside (or inside) the scratch folder
    [ ! -e ../escape.txt ] && [ ! -e up.txt ] && [ ! -e link ]
}

@test "zip, cpio, 7z and tar.xz archives are read" {
    for f in zip cpio 7z tar.xz; do
        "$MK" "$f" "a.$f" "f:doc/one.txt=one $f" "l:doc/sym=one.txt" "f:../bad=x"
        run ingest --plain -o "out.$f.jsonl" "a.$f"
        expect_status 0
        [ "$(ids "out.$f.jsonl")" = "doc/one.txt" ]
        grep -q "\"text\":\"one $f\"" "out.$f.jsonl"
    done
}

@test "a compression bomb stops with a clear error and no output" {
    "$MK" tar.gz bomb.tgz "f:a.txt=ok" "z:zeros.bin=33554432"
    [ "$(stat -c %s bomb.tgz)" -lt 200000 ]
    run ingest --plain -o out.jsonl bomb.tgz
    expect_status 1
    expect_output_contains "archive bomb suspected"
    expect_output_contains "bomb.tgz: zeros.bin"
    [ ! -e out.jsonl ]
    no_tmp_left
}

@test "a member over --max-member is skipped and counted" {
    "$MK" tar big.tar "z:big.bin=5000" "f:small.txt=s"
    run ingest --plain --max-member 4096 --stats s.json -o out.jsonl big.tar
    expect_status 0
    [ "$(ids out.jsonl)" = "small.txt" ]
    grep -q '"skipped_too_large":1' s.json
}

@test "a corrupt or truncated archive is a clear error" {
    "$MK" tar.gz good.tgz "f:a.txt=$(seq 1 20000)" "f:b.txt=b"
    head -c "$(($(stat -c %s good.tgz) / 2))" good.tgz >cut.tgz
    run ingest --plain -o out.jsonl cut.tgz
    expect_status 1
    expect_output_contains "ingest: cut.tgz"
    [ ! -e out.jsonl ]
    printf 'not an archive\n' >junk.bin
    run ingest --plain junk.bin
    expect_status 1
    expect_output_contains "junk.bin"
}

@test "invalid UTF-8: replace (U+FFFD), latin1 and strict are explicit and counted" {
    printf 'caf\xe9 ok' >raw.txt
    "$MK" tar t.tar "f:x.txt=$(cat raw.txt)"
    run ingest --plain --stats s.json -o r.jsonl t.tar
    expect_status 0
    grep -qF "$(printf '"text":"caf\xef\xbf\xbd ok"')" r.jsonl
    grep -q '"invalid_bytes":1,"decode":"replace"' r.jsonl
    grep -q '"invalid_bytes":1,' s.json
    run ingest --plain --decode latin1 -o l.jsonl t.tar
    grep -qF "$(printf '"text":"caf\xc3\xa9 ok"')" l.jsonl
    run ingest --plain --decode strict -o s.jsonl t.tar
    expect_status 1
    expect_output_contains "x.txt: invalid UTF-8 at byte 3"
}

@test "a folder of text files: sorted walk, relative ids, symlinks skipped" {
    mkdir -p d/b d/a
    printf 'two' >d/b/2.txt
    printf 'one' >d/a/1.txt
    ln -s /etc/passwd d/a/link.txt
    run ingest --plain --source notes --include '*/*.txt' -o out.jsonl d
    expect_status 0
    [ "$(ids out.jsonl | tr '\n' ' ')" = "a/1.txt b/2.txt " ]
    grep -q '"source":"notes"' out.jsonl
}

@test "JSON Lines pass through; a missing source is added; duplicate ids are refused" {
    printf '{"id":"a","text":"x","z":[1, 2]}\n{"id":"b","text":"y","source":"s"}\n' >in.jsonl
    run ingest --plain --source web -o out.jsonl in.jsonl
    expect_status 0
    [ "$(sed -n 1p out.jsonl)" = '{"id":"a","text":"x","z":[1, 2],"source":"web"}' ]
    [ "$(sed -n 2p out.jsonl)" = '{"id":"b","text":"y","source":"s"}' ]
    run ingest --plain -o out2.jsonl in.jsonl in.jsonl
    expect_status 1
    expect_output_contains "duplicate id 'a'"
    printf '{"id":"c"}\n' >bad.jsonl
    run ingest --plain bad.jsonl
    expect_status 1
    expect_output_contains 'bad.jsonl:1: record needs a string "text"'
}

@test "a local-path recipe: selection, labels, source rules, datapackage checksums" {
    mkdir -p pkg
    h1=$(printf 'alpha' | md5sum | cut -c1-32)
    cat >pkg/datapackage.json <<EOF
{"resources":[{"path":"./data/spam/1.txt","hash":"$h1"},
              {"path":"./data/ham/2.txt","hash":"md5:00000000000000000000000000000000"}]}
EOF
    "$MK" tar.gz pkg/corpus.tgz "f:package/data/spam/1.txt=alpha" "f:package/data/ham/2.txt=beta" \
        "f:package/README.md=readme" "f:package/datapackage.json=$(cat pkg/datapackage.json)"
    cat >pkg/toy.recipe <<'EOF'
# a toy recipe
name      toy
path      corpus.tgz
include   package/data/*/*.txt
label     package/data/spam/*  spam
label     package/data/ham/*   ham
source-rule package/data/ham/* hamsrc
checksums package/datapackage.json datapackage
EOF
    run ingest --plain -o out.jsonl pkg/toy.recipe
    expect_status 1
    expect_output_contains "package/data/ham/2.txt: checksum mismatch: expected md5:00000000000000000000000000000000, got $(printf beta | md5sum | cut -c1-32)"
    run ingest --plain --checksum-mismatch keep --stats s.json -o out.jsonl pkg/toy.recipe
    expect_status 0
    grep -q "\"id\":\"package/data/spam/1.txt\".*\"source\":\"toy\",\"label\":\"spam\".*\"checksum\":\"md5:$h1\",\"checksum_ok\":true" out.jsonl
    grep -q '"source":"hamsrc","label":"ham".*"checksum_ok":false' out.jsonl
    grep -q '"checksum_ok":1,"checksum_mismatch":1' s.json
    grep -q '"labels":{"spam":1,"ham":1}' s.json
    run ingest --plain --checksum-mismatch drop -o out.jsonl pkg/toy.recipe
    [ "$(wc -l <out.jsonl)" -eq 1 ]
}

@test "recipe errors name the line" {
    printf 'name x\nnpm foo 1.0.0\nintegrity sha512-AAAA\nbogus 1\n' >bad.recipe
    run ingest bad.recipe
    expect_status 1
    expect_output_contains "bad.recipe:4: unknown directive 'bogus'"
    printf 'name x\nnpm foo latest\n' >v.recipe
    run ingest v.recipe
    expect_status 1
    expect_output_contains "v.recipe:2: npm version must be exact"
    printf 'name x\nnpm foo 1.0.0\nintegrity sha512-AAAA\n' >ok.recipe
    run ingest --cache nowhere ok.recipe
    expect_status 1
    expect_output_contains "foo@1.0.0 is not in the cache (nowhere/npm/foo-1.0.0.tgz)"
}

@test "fetch: integrity mismatch refuses, deletes the download, prints both hashes" {
    "$MK" tar.gz fake.tgz "f:package/a.txt=a"
    good=$(printf 'sha512-%s' "$(openssl dgst -sha512 -binary fake.tgz | base64 -w0)")
    cat >fake.recipe <<EOF
name     fake
npm      @kiln/fake 1.0.0
integrity sha512-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==
url      file://$PWD/fake.tgz
EOF
    KILN_CACHE=$PWD/cache run "$FETCH" fake.recipe
    expect_status 1
    expect_output_contains "expected sha512-AAAA"
    expect_output_contains "actual   $good"
    [ -z "$(ls -A cache/npm)" ]
    # the right hash: fetched once, then served from the cache without the source
    sed -i "s|^integrity .*|integrity $good|" fake.recipe
    KILN_CACHE=$PWD/cache run "$FETCH" fake.recipe
    expect_status 0
    [ -f cache/npm/kiln-fake-1.0.0.tgz ]
    mv fake.tgz gone.tgz
    KILN_CACHE=$PWD/cache run "$FETCH" fake.recipe
    expect_status 0
    [ "$output" = "$PWD/cache/npm/kiln-fake-1.0.0.tgz" ]
    KILN_CACHE=$PWD/cache run ingest --plain -o out.jsonl fake.recipe
    expect_status 0
    grep -q '"id":"package/a.txt"' out.jsonl
    # a corrupted cache entry is refetched; with the source gone that fails clearly
    printf 'garbage' >cache/npm/kiln-fake-1.0.0.tgz
    KILN_CACHE=$PWD/cache run "$FETCH" fake.recipe
    expect_status 1
    expect_output_contains "cached copy does not match"
    expect_output_contains "no network?"
    [ ! -e cache/npm/kiln-fake-1.0.0.tgz ]
}

@test "usage errors exit 2" {
    run ingest
    expect_status 2
    run ingest --decode utf16 x.tar
    expect_status 2
    run ingest --label nolabel x.tar
    expect_status 2
}

@test "same input, same output bytes" {
    "$MK" tar.gz in.tgz "f:a.txt=alpha" "f:b.txt=beta"
    ingest -o one.jsonl.zst in.tgz
    ingest -o two.jsonl.zst in.tgz
    cmp one.jsonl.zst two.jsonl.zst
}

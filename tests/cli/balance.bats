#!/usr/bin/env bats
# balance: class rebalancing, source mixing, replay, stratified splits, nested samples,
# determinism, bad input.
load helpers

# gen HAM SPAM [SOURCE]: records r0.. with the given class counts (interleaved), plain JSONL.
gen() {
    awk -v h="$1" -v s="$2" -v src="${3:-web}" 'BEGIN {
        n = h + s
        for (i = 0; i < n; i++) {
            lab = (i % 4 == 3 && s-- > 0) || h <= 0 ? "spam" : "ham"
            if (lab == "ham") h--
            printf "{\"id\":\"%s%d\",\"text\":\"t %d\",\"source\":\"%s\",\"label\":\"%s\",\"n\":[1, 2]}\n", src, i, i, src, lab
        }
    }'
}
ids() { grep -o '"id":"[^"]*"' "$@" | cut -d'"' -f4; }
count() { grep -c "\"label\":\"$1\"" "$2" || true; }

# within_one ACTUAL EXPECTED_REAL: |actual - expected| <= 1
within_one() { awk -v a="$1" -v e="$2" 'BEGIN { d = a - e; if (d < 0) d = -d; exit !(d <= 1) }'; }

@test "split: stratified within one record per class, disjoint, covering, one file each" {
    gen 301 99 >in.jsonl
    run balance --plain --seed 3 --split train=0.8,valid=0.1,test=0.1 --split-dir out \
        --stats s.json in.jsonl
    expect_status 0
    for s in train valid test; do [ -f "out/$s.jsonl" ]; done
    within_one "$(count ham out/train.jsonl)" "$(awk 'BEGIN { print 301 * 0.8 }')"
    within_one "$(count spam out/train.jsonl)" "$(awk 'BEGIN { print 99 * 0.8 }')"
    for s in valid test; do
        within_one "$(count ham out/$s.jsonl)" 30.1
        within_one "$(count spam out/$s.jsonl)" 9.9
    done
    [ "$(cat out/*.jsonl | wc -l)" -eq 400 ]
    [ "$(ids out/*.jsonl | sort | uniq -d | wc -l)" -eq 0 ]
    diff <(ids in.jsonl | sort) <(ids out/*.jsonl | sort)
    grep -q '"splits":{"train":{"ham":241,"spam":79},"valid":{"ham":30,"spam":10},"test":{"ham":30,"spam":10}}' s.json
    grep -q '"classes_in":{"ham":301,"spam":99}' s.json
    # records pass through byte for byte, in input order
    diff out/train.jsonl <(grep -F -f <(ids out/train.jsonl | sed 's/.*/"id":"&"/') in.jsonl)
}

@test "split: deterministic for a seed, different for another, -o PREFIX names" {
    gen 150 50 >in.jsonl
    balance --seed 1 --split train=0.5,test=0.5 -o a.jsonl.zst in.jsonl
    balance --seed 1 --split train=0.5,test=0.5 -o 'b-{split}.jsonl.zst' in.jsonl
    cmp a.train.jsonl.zst b-train.jsonl.zst
    cmp a.test.jsonl.zst b-test.jsonl.zst
    balance --seed 2 --split train=0.5,test=0.5 -o c.jsonl.zst in.jsonl
    ! cmp -s a.train.jsonl.zst c.train.jsonl.zst
    # stdin is spooled for the second pass; nothing is left behind
    balance --seed 1 --split train=0.5,test=0.5 -o d.jsonl.zst <in.jsonl
    cmp a.train.jsonl.zst d.train.jsonl.zst
    no_tmp_left
}

@test "undersample (auto = not minority) and oversample (auto = not majority)" {
    gen 300 100 >in.jsonl
    run balance --plain --strategy undersample --seed 5 -o u.jsonl in.jsonl
    expect_status 0
    [ "$(count ham u.jsonl)" -eq 100 ] && [ "$(count spam u.jsonl)" -eq 100 ]
    [ "$(ids u.jsonl | sort -u | comm -23 - <(ids in.jsonl | sort) | wc -l)" -eq 0 ]
    # --rejects: every removed record, once, with its reason; kept + rejected = input
    balance --plain --strategy undersample --seed 5 --rejects rej.jsonl -o u2.jsonl in.jsonl
    [ "$(grep -c '"reason":"undersample"}$' rej.jsonl)" -eq 200 ]
    diff <(ids in.jsonl | sort) <(ids u2.jsonl rej.jsonl | sort)
    run balance --plain --strategy oversample --seed 5 --stats s.json -o o.jsonl in.jsonl
    expect_status 0
    [ "$(count ham o.jsonl)" -eq 300 ] && [ "$(count spam o.jsonl)" -eq 300 ]
    [ "$(ids o.jsonl | sort | uniq -d | wc -l)" -eq 0 ]
    [ "$(ids o.jsonl | grep -c '#copy')" -eq 200 ]
    [ "$(ids o.jsonl | grep -c '#copy2$')" -eq 100 ]
    grep -q '"classes_out":{"ham":300,"spam":300}' s.json
    # a copy differs from its original only in the id
    orig=$(ids o.jsonl | grep '#copy1$' | head -n 1 | sed 's/#copy1$//')
    diff <(grep "\"id\":\"$orig\"" o.jsonl | sed 's/"id":"[^"]*"//') \
         <(grep "\"id\":\"$orig#copy1\"" o.jsonl | sed 's/"id":"[^"]*"//')
}

@test "imbalanced-learn sampling specs: ratio, per-class counts, majority; target with xF" {
    gen 300 100 >in.jsonl
    balance --plain --strategy undersample --sampling 0.5 -o r.jsonl in.jsonl
    [ "$(count ham r.jsonl)" -eq 200 ] && [ "$(count spam r.jsonl)" -eq 100 ]
    balance --plain --strategy oversample --sampling 0.5 -o r2.jsonl in.jsonl
    [ "$(count ham r2.jsonl)" -eq 300 ] && [ "$(count spam r2.jsonl)" -eq 150 ]
    balance --plain --strategy undersample --sampling ham=120 -o c.jsonl in.jsonl
    [ "$(count ham c.jsonl)" -eq 120 ] && [ "$(count spam c.jsonl)" -eq 100 ]
    balance --plain --strategy target --sampling ham=50,spam=x2.5 -o t.jsonl in.jsonl
    [ "$(count ham t.jsonl)" -eq 50 ] && [ "$(count spam t.jsonl)" -eq 250 ]
    run balance --plain --strategy undersample --sampling spam=150 in.jsonl
    expect_status 1
    expect_output_contains "undersampling cannot raise 'spam' from 100 to 150"
    run balance --plain --strategy oversample --sampling nope=5 in.jsonl
    expect_status 1
    expect_output_contains "class 'nope' does not occur"
}

@test "nested stratified subsamples: 200 within 500 for the same seed" {
    gen 600 200 >in.jsonl
    balance --plain --seed 9 --sample 200 -o s200.jsonl in.jsonl
    balance --plain --seed 9 --sample 500 -o s500.jsonl in.jsonl
    [ "$(wc -l <s200.jsonl)" -eq 200 ] && [ "$(wc -l <s500.jsonl)" -eq 500 ]
    [ "$(count ham s200.jsonl)" -eq 150 ] && [ "$(count spam s200.jsonl)" -eq 50 ]
    within_one "$(count spam s500.jsonl)" 125
    [ -z "$(comm -23 <(ids s200.jsonl | sort) <(ids s500.jsonl | sort))" ]
    balance --plain --seed 10 --sample 200 -o other.jsonl in.jsonl
    ! diff -q s200.jsonl other.jsonl >/dev/null
}

@test "replay: the fraction of the output within one record, only in train, spread out" {
    gen 300 100 >in.jsonl
    gen 50 0 pre >pre.jsonl
    run balance --plain --replay pre.jsonl:0.2 --stats s.json -o out.jsonl in.jsonl
    expect_status 0
    r=$(ids out.jsonl | grep -c '^pre')
    total=$(wc -l <out.jsonl)
    within_one "$r" "$(awk -v t="$total" 'BEGIN { print 0.2 * t }')"
    [ "$r" -eq 100 ]
    # 100 slots from 50 records: each twice, the copies renamed
    [ "$(ids out.jsonl | grep -c '^pre.*#copy1$')" -eq 50 ]
    # spread: the first half of the output already holds about half of the replay
    first=$(head -n $((total / 2)) out.jsonl | grep -c '"id":"pre')
    [ "$first" -ge 45 ] && [ "$first" -le 55 ]
    grep -q '"replay_records":100' s.json
    run balance --plain --replay pre.jsonl:0.1 --split train=0.5,test=0.5 --split-dir sp in.jsonl
    expect_status 0
    [ "$(grep -c '"id":"pre' sp/test.jsonl || true)" -eq 0 ]
    t=$(wc -l <sp/train.jsonl); r=$(grep -c '"id":"pre' sp/train.jsonl)
    within_one "$r" "$(awk -v t="$t" 'BEGIN { print 0.1 * t }')"
}

@test "source mixing: weights and temperature" {
    { gen 300 0 a; gen 100 0 b; } >in.jsonl
    balance --plain --weights a=0.5,b=0.5 --stats s.json -o w.jsonl in.jsonl
    [ "$(grep -c '"source":"a"' w.jsonl)" -eq 200 ] && [ "$(grep -c '"source":"b"' w.jsonl)" -eq 200 ]
    grep -q '"sources_in":{"a":300,"b":100},"sources_target":{"a":200,"b":200}' s.json
    # T = 1 keeps natural proportions; a large T approaches uniform; the cap flattens too
    balance --plain --temperature 1 --mix-total 400 -o t1.jsonl in.jsonl
    [ "$(grep -c '"source":"b"' t1.jsonl)" -eq 100 ]
    balance --plain --temperature 1000 -o t9.jsonl in.jsonl
    within_one "$(grep -c '"source":"b"' t9.jsonl)" 200
    balance --plain --temperature 1 --cap 100 -o tc.jsonl in.jsonl
    [ "$(grep -c '"source":"b"' tc.jsonl)" -eq 200 ]
    run balance --plain --weights a=1 in.jsonl
    expect_status 1
    expect_output_contains "source 'b' has no weight"
}

@test "missing field: exit 1 with file and line unless --missing=drop|keep" {
    gen 3 1 >in.jsonl
    printf '{"id":"x","text":"no label"}\n' >>in.jsonl
    run balance --plain --split train=0.5,test=0.5 --split-dir o in.jsonl
    expect_status 1
    expect_output_contains "balance: in.jsonl:5: record has no field 'label'"
    [ ! -d o ] || [ -z "$(ls -A o)" ]
    run balance --plain --missing=drop --stats s.json --rejects r.jsonl -o d.jsonl in.jsonl
    expect_status 0
    [ "$(wc -l <d.jsonl)" -eq 4 ]
    [ "$(cat r.jsonl)" = '{"id":"x","text":"no label","reason":"missing_field"}' ]
    grep -q '"missing_dropped":1' s.json
    run balance --plain --missing=keep --strategy undersample -o k.jsonl in.jsonl
    expect_status 0
    grep -q '"id":"x"' k.jsonl
    run balance --plain --field meta.lang --missing=fail in.jsonl
    expect_status 1
    expect_output_contains "in.jsonl:1: record has no field 'meta.lang'"
}

@test "usage errors exit 2: split names, fractions, combinations" {
    gen 3 1 >in.jsonl
    run balance --split train=0.8,dev=0.1,tst=0.1 -o p in.jsonl
    expect_status 2
    expect_output_contains "unknown split name 'tst'"
    run balance --split train=0.8,test=0.1 -o p in.jsonl
    expect_status 2
    expect_output_contains "fractions sum to 0.9"
    run balance --split train=1.5 -o p in.jsonl
    expect_status 2
    run balance --split train=0.5,train=0.5 -o p in.jsonl
    expect_status 2
    run balance --split train=0.5,test=0.5 in.jsonl
    expect_status 2
    run balance --strategy sideways in.jsonl
    expect_status 2
    run balance --strategy undersample --weights a=1 in.jsonl
    expect_status 2
    run balance --replay nofraction in.jsonl
    expect_status 2
}

@test "invalid JSON input is reported with file, line and column" {
    printf '{"id":"a","label":"x"}\n{"id":"b",\n' >bad.jsonl
    run balance --plain --sample 1 bad.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:2"
}

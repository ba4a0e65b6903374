#!/usr/bin/env bats
# kiln-hpo (pipelines/hpo.c): deterministic proposals, bad histories rejected with their
# position, record/summary/import on hand-made inputs, and the report section they feed.
load helpers

# hist FILE: four scored candidates (early scores rank the final ones exactly but for 3 vs 4).
hist() {
    cat > "$1" <<'J'
{"method":"bo","index":1,"lr":0.001,"batch":8,"epochs":1,"steps":100,"early_steps":20,"early":0.5,"final":0.7}
{"method":"bo","index":2,"lr":0.0001,"batch":16,"epochs":0.5,"steps":25,"early_steps":5,"early":0.2,"final":0.3}
{"method":"bo","index":3,"lr":0.005,"batch":4,"epochs":2,"steps":400,"early_steps":80,"early":0.6,"final":0.8}
{"method":"bo","index":4,"lr":0.003,"batch":32,"epochs":1.5,"steps":40,"early_steps":8,"early":0.65,"final":0.75}
J
}

@test "propose: random candidates are a function of the seed and index" {
    : > empty
    run kiln-hpo propose --method random --history empty --train-size 1000 --seed 7
    expect_status 0
    expect_output_contains '"index":1'
    expect_output_contains '"proposed_by":"random"'
    first=$output
    run kiln-hpo propose --method random --history empty --train-size 1000 --seed 7
    [ "$output" = "$first" ]
    run kiln-hpo propose --method random --history empty --train-size 1000 --seed 8
    [ "$output" != "$first" ]
    # BO starts from the same random design.
    run kiln-hpo propose --method bo --history empty --train-size 1000 --seed 7
    [ "${output/\"bo\"/\"random\"}" = "$first" ]
}

@test "propose: bo fits the GP after --init candidates, deterministically" {
    hist h
    kiln-hpo propose --method bo --history h --train-size 1000 --seed 3 --init 4 -o a.json
    kiln-hpo propose --method bo --history h --train-size 1000 --seed 3 --init 4 -o b.json
    cmp a.json b.json
    grep -q '"index":5' a.json
    grep -q '"proposed_by":"ei"' a.json
    grep -q '"gp_ls":' a.json
    # Other scores, another proposal.
    sed 's/"final":0.8/"final":0.1/; s/"early":0.6,/"early":0.1,/' h > h2
    kiln-hpo propose --method bo --history h2 --train-size 1000 --seed 3 --init 4 -o c.json
    ! cmp -s a.json c.json
    # Steps follow epochs x train size / batch; the early checkpoint is 20% of them.
    run kiln-hpo args a.json
    expect_status 0
    [[ "$output" =~ ^--lr\ [0-9.e-]+\ --batch\ [0-9]+\ --steps\ [0-9]+\ --warmup\ [0-9]+\ --save-every\ [0-9]+\ --keep\ [0-9]+$ ]]
    no_tmp_left
}

@test "propose: a malformed or incomplete history is an error at its line" {
    hist h
    printf '{"lr":0.001,"batch":8,\n' >> h
    run kiln-hpo propose --method bo --history h --train-size 100 -o out.json
    expect_status 1
    expect_output_contains "h:5:"
    [ ! -e out.json ]
    hist h
    printf '{"lr":0.001,"epochs":1,"early":0.1,"final":0.2}\n' >> h
    run kiln-hpo propose --method random --history h --train-size 100
    expect_status 1
    expect_output_contains 'h:5: "batch" is missing'
    hist h
    sed -i '2s/"final":0.3/"final":"x"/' h
    run kiln-hpo propose --method bo --history h --train-size 100
    expect_status 1
    expect_output_contains 'h:2: "final" is not a number'
    printf '{"lr":-1,"batch":8,"epochs":1}\n' > neg
    run kiln-hpo propose --method random --history neg --train-size 100
    expect_status 1
    expect_output_contains "neg:1:"
    run kiln-hpo propose --method random --history missing --train-size 100
    expect_status 1
    expect_output_contains "missing"
    no_tmp_left
}

@test "usage errors exit 2" {
    : > e
    run kiln-hpo propose --method grid --history e --train-size 10
    expect_status 2
    run kiln-hpo propose --method bo --train-size 10
    expect_status 2
    run kiln-hpo propose --method bo --history e
    expect_status 2
    run kiln-hpo propose --method bo --history e --train-size 10 --lr-range 1,0.5
    expect_status 2
    run kiln-hpo propose --method bo --history e --train-size 10 --batches 8,x
    expect_status 2
    run kiln-hpo frobnicate
    expect_status 2
    run kiln-hpo
    expect_status 2
}

@test "record adds early and final scores from evaluate classify outputs" {
    : > e
    kiln-hpo propose --method random --history e --train-size 500 -o c.json
    printf '{"id":"a"}\n{"summary":{"acc":0.6,"macro_f1":0.55}}\n' > early.jsonl
    printf '{"id":"a"}\n{"summary":{"acc":0.9,"macro_f1":0.85}}\n' > final.jsonl
    kiln-hpo record --candidate c.json --early early.jsonl --final final.jsonl -o r.json
    grep -q '"early":0.55,"final":0.85,"early_acc":0.6,"final_acc":0.9,"metric":"macro_f1"}$' r.json
    kiln-hpo record --metric acc --candidate c.json --early early.jsonl --final final.jsonl -o r2.json
    grep -q '"early":0.6,"final":0.9,"early_macro_f1":0.55' r2.json
    printf '{"id":"a"}\n{"summary":{"acc":0.9}}\n' > bad.jsonl
    run kiln-hpo record --candidate c.json --early early.jsonl --final bad.jsonl -o r3.json
    expect_status 1
    expect_output_contains "bad.jsonl:2: no number summary.macro_f1"
    [ ! -e r3.json ]
}

@test "summary: overlap, rank correlations and compute saved" {
    hist h
    run kiln-hpo summary --top 3 h
    expect_status 0
    # Best first: early 4 3 1 2, final 3 4 1 2; the top 3 agree.
    expect_output_contains "top-3 overlap of early and final: 3 of 3"
    expect_output_contains "Spearman rho 0.8000, Kendall tau-b 0.6667"
    # Examples: full 800+400+1600+1280 = 4080; early 160+80+320+256 = 816; top 1 by early is
    # candidate 4 (+1024): 1840, 54.9% saved, kept 0.75 of best 0.8.
    expect_output_contains "continue top 1: 1840 of 4080 training examples (54.9% saved), best final kept 0.7500 (regret 0.0500)"
}

@test "import feeds the report's hyperparameter search section" {
    hist h
    sed 's/"bo"/"random"/' h > r
    kiln-hpo import --db k.db --seed 1 h r
    evaluate report -q --db k.db -o report.html --md report.md
    grep -q "## Early-stage hyperparameter search" report.md
    grep -q "| bo | 4 | 0.8000 | 4 of 4 | 0.800 | 0.667 | 1 | 1840 (of 4080)" report.md
    grep -q "^- random: 0.7000 0.7000 0.8000 0.8000$" report.md
    grep -q "<svg" report.html
    # A bad history imports nothing.
    printf 'nope\n' > bad
    run kiln-hpo import --db k2.db h bad
    expect_status 1
    expect_output_contains "bad:1:"
    [ ! -e k2.db ]
}

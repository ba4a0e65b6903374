#!/usr/bin/env bats
# train --class-weights: weights from inverse class frequency (N / (K n_c)) or a list, the
# weighted mean loss (a class weighted ~0 drops out of the loss), weight 1 everywhere is
# byte-identical to no weighting, resume refuses changed weights, and every error names its
# file and line.
load helpers

TINY="--vocab 64 --eos 1 --dim 32 --layers 2 --heads 2 --kv-heads 1 --ffn 64 --max-seq 64
      --seq-len 32 --seed 3"

# sft.jsonl: N examples of length 10, loss from 7; label "b" every 4th (so 3:1), "a" otherwise.
gen_sft() {
    awk -v n="${1:-16}" 'BEGIN { for (i = 0; i < n; i++) { s = "{\"id\":\"e" i "\",\"input_ids\":["
        for (j = 0; j < 10; j++) s = s (j ? "," : "") ((i * 3 + j * 5) % 40 + 2)
        print s "],\"loss_start\":7,\"label\":\"" (i % 4 == 3 ? "b" : "a") "\"}" } }'
}

# The loss of step N in log.jsonl.
loss_at() {
    sed -n "${2}p" "$1" | sed -E 's/.*"loss":([0-9.eE+-]+).*/\1/'
}

@test "auto: inverse-frequency weights N/(K n_c), logged and kept in the checkpoint's args" {
    gen_sft 16 > sft.jsonl
    run train $TINY --batch 4 --steps 2 --class-weights auto -o out sft.jsonl
    expect_status 0
    expect_output_contains "class weight a = 0.6667 (12 examples)"
    expect_output_contains "class weight b = 2 (4 examples)"
    grep -q '"class_weights":{"a":0.6666666' out/trainer_state.json
}

@test "balanced data: auto weights are all 1 and the model is byte-identical to no weights" {
    gen_sft 16 | sed 's/"label":"b"/"label":"a"/' > one.jsonl
    awk 'NR % 2 { sub(/"label":"a"/, "\"label\":\"b\"") } 1' one.jsonl > sft.jsonl
    train $TINY -q --batch 4 --steps 3 -o plain sft.jsonl
    train $TINY -q --batch 4 --steps 3 --class-weights auto -o weighted sft.jsonl
    cmp plain/model.safetensors weighted/model.safetensors
}

@test "the loss is the weighted mean: a class weighted ~0 leaves the other class's loss" {
    gen_sft 16 > sft.jsonl
    grep '"label":"b"' sft.jsonl > b.jsonl
    # One step over every example (batch = all), so step 1 sees the same model on all of them.
    train $TINY -q --batch 16 --steps 1 --log all.jsonl -o all sft.jsonl
    train $TINY -q --batch 16 --steps 1 --class-weights a=1e-6,b=1 --log w.jsonl -o w sft.jsonl
    train $TINY -q --batch 4 --steps 1 --log b.log -o bonly b.jsonl
    lw=$(loss_at w.jsonl 1) lb=$(loss_at b.log 1) la=$(loss_at all.jsonl 1)
    echo "weighted $lw, b only $lb, unweighted $la"
    awk -v w="$lw" -v b="$lb" 'BEGIN { d = w - b; exit !(d < 1e-4 && d > -1e-4) }'
    awk -v w="$lw" -v a="$la" 'BEGIN { d = w - a; exit !(d > 1e-3 || d < -1e-3) }'
}

@test "--resume refuses different class weights" {
    gen_sft 16 > sft.jsonl
    train $TINY -q --batch 4 --steps 2 --save-every 1 --class-weights auto -o out sft.jsonl
    run train $TINY -q --batch 4 --steps 2 --class-weights a=1,b=5 --resume out -o out sft.jsonl
    expect_status 1
    expect_output_contains "class_weights"
}

@test "bad input: a record without the label, a label not in the list, stdin" {
    gen_sft 8 > sft.jsonl
    sed '3s/,"label":"a"//' sft.jsonl > nolabel.jsonl
    run train $TINY -q --steps 1 --class-weights auto -o out nolabel.jsonl
    expect_status 1
    expect_output_contains "nolabel.jsonl:3: no string field 'label'"
    run train $TINY -q --steps 1 --class-weights a=2 -o out sft.jsonl
    expect_status 1
    expect_output_contains "sft.jsonl:4: label 'b' is not in --class-weights"
    run train $TINY -q --steps 1 --class-weights auto --label-field kind -o out sft.jsonl
    expect_status 1
    expect_output_contains "no string field 'kind'"
    run train $TINY -q --steps 1 --class-weights auto -o out - < sft.jsonl
    expect_status 1
    expect_output_contains "not stdin"
    [ ! -e out ]
}

@test "usage errors exit 2" {
    gen_sft 8 > sft.jsonl
    for spec in "" "a" "a=" "=2" "a=0" "a=x" "a=1,"; do
        run train $TINY -q --steps 1 --class-weights "$spec" -o out sft.jsonl
        expect_status 2
    done
    run train $TINY -q --steps 1 --label-field "" -o out sft.jsonl
    expect_status 2
}

#!/usr/bin/env bats
# train: pretraining and fine-tuning runs on tiny models — checkpoint layout, logs,
# thread-count independence, exact resume after SIGKILL, supervised masking, --init from a
# bf16 checkpoint, validation with early stopping, and every bad-input error.
load helpers

TINY="--vocab 64 --eos 1 --dim 32 --layers 2 --heads 2 --kv-heads 1 --ffn 64 --max-seq 64
      --seq-len 32 --batch 4 -q"

# pretrain.jsonl: N documents of 20..59 ids in [2, 52) (deterministic).
gen_pretrain() {
    awk -v n="${1:-120}" 'BEGIN { srand(1); for (i = 0; i < n; i++) {
        len = 20 + int(rand() * 40); s = "{\"id\":\"d" i "\",\"input_ids\":["
        for (j = 0; j < len; j++) s = s (j ? "," : "") ((i * 7 + j * j) % 50 + 2)
        print s "]}" } }'
}

# sft.jsonl: examples of length 10 whose loss starts at 7 (3 scored predictions each).
gen_sft() {
    awk 'BEGIN { for (i = 0; i < 40; i++) { s = "{\"input_ids\":["
        for (j = 0; j < 10; j++) s = s (j ? "," : "") ((i * 3 + j * 5) % 40 + 2)
        print s "],\"loss_start\":7}" } }'
}

# A byte-level HF tokenizer.json: 256 byte tokens, no merges, <|endoftext|> = 256.
gen_tokenizer() {
    awk 'BEGIN { n = 0
      for (b = 0; b < 256; b++)
        cp[b] = ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174)) ? b : 256 + n++
      printf "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[{\"id\":256,"
      printf "\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
      printf "\"normalized\":false,\"special\":true}],\"normalizer\":null,\"pre_tokenizer\":{\"type\":"
      printf "\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
      printf "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
      printf "\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
      printf "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,"
      printf "\"ignore_merges\":false,\"vocab\":{"
      for (b = 0; b < 256; b++) printf "%s\"\\u%04x\":%d", (b ? "," : ""), cp[b], b
      printf "},\"merges\":[]}}\n" }'
}

@test "pretraining writes a Hugging Face checkpoint, a JSON log and stats" {
    gen_pretrain > pre.jsonl
    run train $TINY --steps 6 --log log.jsonl --stats stats.json -o out pre.jsonl
    expect_status 0
    for f in config.json generation_config.json model.safetensors optimizer.safetensors \
             trainer_state.json; do
        [ -s "out/$f" ] || { echo "missing out/$f"; return 1; }
    done
    grep -q '"architectures":\["LlamaForCausalLM"\]' out/config.json
    grep -q '"num_key_value_heads":1' out/config.json
    grep -q '"global_step":6' out/trainer_state.json
    [ "$(wc -l < log.jsonl)" -eq 6 ]
    for k in step loss lr grad_norm tokens_per_s elapsed; do
        grep -q "\"$k\":" log.jsonl || { echo "log lacks $k"; return 1; }
    done
    grep -q '"stage":"train"' stats.json
    no_tmp_left out
}

@test "the start-up lines name the thread count and the BLAS core" {
    gen_pretrain 40 > pre.jsonl
    run train ${TINY/-q/} --steps 1 --threads 2 -o out pre.jsonl
    expect_status 0
    expect_output_contains "train: 2 threads, BLAS OpenBLAS"
    expect_output_contains "(core "
    expect_output_contains "memory: parameters"
}

@test "output directories are byte-identical for 1, 2 and 4 threads" {
    gen_pretrain > pre.jsonl
    for t in 1 2 4; do
        run train $TINY --seq-len 60 --batch 3 --accum 2 --steps 5 --threads $t -o o$t pre.jsonl
        expect_status 0
    done
    cmp o1/model.safetensors o2/model.safetensors
    diff -r o1 o2
    diff -r o1 o4
}

@test "SIGKILL after a step, then --resume: byte-identical to an uninterrupted run" {
    gen_pretrain > pre.jsonl
    args="$TINY --steps 12 --warmup 3 --save-every 4 --epochs 1"
    run train $args --steps 12 --threads 2 -o full pre.jsonl
    expect_status 0
    KILN_TRAIN_KILL_AFTER_STEP=7 run train $args --threads 2 --log log.jsonl -o part pre.jsonl
    expect_status 137
    [ -d part/checkpoint-4 ] && [ ! -e part/model.safetensors ]
    [ "$(wc -l < log.jsonl)" -eq 7 ]
    run train $args --threads 1 --resume part --log log.jsonl -o part pre.jsonl
    expect_status 0
    cmp full/model.safetensors part/model.safetensors
    cmp full/optimizer.safetensors part/optimizer.safetensors
    # steps 5..7 were logged by the killed run and again after the resume: kept once
    [ "$(sed 's/{"step":\([0-9]*\),.*/\1/' log.jsonl | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 12 " ]
}

@test "kill -9 from outside at an arbitrary moment, then --resume: byte-identical" {
    gen_pretrain > pre.jsonl
    args="$TINY --steps 60 --save-every 1 --keep 2"
    run train $args -o full pre.jsonl
    expect_status 0
    train $args -o part pre.jsonl &
    pid=$!
    for _ in $(seq 200); do [ -d part/checkpoint-5 ] && break; sleep 0.02; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" || true
    run train $args --resume part -o part pre.jsonl
    expect_status 0
    cmp full/model.safetensors part/model.safetensors
}

@test "SIGKILL while writing a checkpoint leaves the previous one to resume from" {
    gen_pretrain > pre.jsonl
    args="$TINY --steps 10 --save-every 3"
    run train $args -o full pre.jsonl
    expect_status 0
    KILN_TRAIN_KILL_IN_SAVE=6 run train $args -o part pre.jsonl
    expect_status 137
    [ -d part/checkpoint-3 ] && [ ! -e part/checkpoint-6 ] && [ -d part/.tmp-checkpoint-6 ]
    run train $args --resume part -o part pre.jsonl
    expect_status 0
    [ ! -e part/.tmp-checkpoint-6 ]
    cmp full/model.safetensors part/model.safetensors
}

@test "--resume refuses changed options" {
    gen_pretrain > pre.jsonl
    run train $TINY --steps 4 --save-every 2 --lr 1e-3 -o out pre.jsonl
    expect_status 0
    run train $TINY --steps 4 --save-every 2 --lr 2e-3 --resume out/checkpoint-2 -o out pre.jsonl
    expect_status 1
    expect_output_contains 'lr is 0.001 in the checkpoint but 0.002 now'
}

@test "supervised records: only predictions from loss_start on are scored" {
    gen_sft > sft.jsonl
    run train $TINY --steps 3 --log log.jsonl -o out sft.jsonl
    expect_status 0
    grep -q '"mode":"sft"' out/trainer_state.json
    # 4 examples x 3 scored predictions (tokens 7, 8, 9) per step
    [ "$(grep -c '"scored_tokens":12' log.jsonl)" -eq 3 ]
}

@test "a small model memorizes supervised examples" {
    gen_sft | head -n 8 > sft.jsonl
    run train $TINY --batch 8 --steps 120 --lr 1e-2 --warmup 5 --log log.jsonl -o out sft.jsonl
    expect_status 0
    last=$(tail -n 1 log.jsonl | sed 's/.*"loss":\([^,]*\),.*/\1/')
    awk -v l="$last" 'BEGIN { exit !(l < 0.05) }' || { echo "final loss $last"; return 1; }
}

@test "--init fine-tunes from a bf16 checkpoint; the tokenizer travels along" {
    gen_pretrain > pre.jsonl
    gen_tokenizer > tokenizer.json
    awk '{ gsub(/"input_ids":\[/, "&256,"); print }' pre.jsonl > pre257.jsonl
    run train ${TINY/--vocab 64 --eos 1/} --tokenizer tokenizer.json --steps 2 \
        --save-dtype bf16 -o base pre257.jsonl
    expect_status 0
    grep -q '"vocab_size":257' base/config.json
    grep -q '"eos_token_id":256' base/config.json
    grep -q '"dtype":"BF16"' base/model.safetensors
    cmp tokenizer.json base/tokenizer.json
    run train --init base --seq-len 32 --steps 2 -o ft pre257.jsonl
    expect_status 0
    expect_output_contains "initialized from base (BF16 weights)"
    cmp tokenizer.json ft/tokenizer.json
    grep -q '"dtype":"F32"' ft/model.safetensors
}

@test "validation: perplexity logged, best checkpoint kept, early stop with patience" {
    gen_pretrain > pre.jsonl
    head -n 30 pre.jsonl > valid.jsonl
    run train $TINY --steps 400 --lr 2e-2 --valid valid.jsonl --valid-every 5 --patience 2 \
        --log log.jsonl -o out pre.jsonl
    expect_status 0
    grep -q '"valid_ppl":' log.jsonl
    [ -s out/best/model.safetensors ]
    grep -q '"best_valid_loss":[0-9]' out/best/trainer_state.json
    [ "$(grep -c '"lr"' log.jsonl)" -lt 400 ] # stopped early
}

@test "--batch-tokens sets the batch in tokens" {
    gen_pretrain 40 > pre.jsonl
    run train $TINY --batch-tokens 96 --steps 1 -o out pre.jsonl
    expect_status 0
    grep -q '"batch":3' out/trainer_state.json
}

@test "bad input: a record without input_ids" {
    gen_pretrain 3 > bad.jsonl
    echo '{"text":"no ids"}' >> bad.jsonl
    run train $TINY --steps 1 -o out bad.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:4: record has no input_ids"
}

@test "bad input: an id outside the vocabulary" {
    echo '{"input_ids":[1,2,64,3]}' > bad.jsonl
    run train $TINY --steps 1 -o out bad.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:1: input_ids[2] = 64 is outside the vocabulary (0..63)"
}

@test "bad input: loss_start beyond the ids, ids that are not an array" {
    echo '{"input_ids":[1,2,3],"loss_start":4}' > bad.jsonl
    run train $TINY --steps 1 -o out bad.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:1: loss_start 4 is beyond the 3 input_ids"
    echo '{"input_ids":"1 2 3"}' > bad.jsonl
    run train $TINY --steps 1 -o out bad.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:1: input_ids is not an array"
}

@test "bad input: an empty stream, and too few tokens" {
    : > empty.jsonl
    run train $TINY --steps 1 -o out empty.jsonl
    expect_status 1
    expect_output_contains "empty.jsonl"
    echo '{"input_ids":[1,2,3]}' > short.jsonl
    run train $TINY --steps 1 -o out short.jsonl
    expect_status 1
    expect_output_contains "fewer than one sequence"
}

@test "bad input: heads that do not divide the width" {
    gen_pretrain 3 > pre.jsonl
    run train ${TINY/--heads 2 --kv-heads 1/--heads 3} --steps 1 -o out pre.jsonl
    expect_status 1
    expect_output_contains "num_attention_heads 3 does not divide hidden_size 32"
}

@test "bad input: checkpoint tensors that do not match the config" {
    gen_pretrain 40 > pre.jsonl
    run train $TINY --steps 1 -o base pre.jsonl
    expect_status 0
    sed -i 's/"intermediate_size":64/"intermediate_size":96/' base/config.json
    run train --init base --steps 1 --seq-len 32 -o ft pre.jsonl
    expect_status 1
    expect_output_contains "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [64, 32], config expects [96, 32]"
}

@test "bad input: a NaN loss stops the run and keeps the last good checkpoint" {
    gen_pretrain > pre.jsonl
    run train $TINY --steps 30 --lr 1e6 --clip 0 --save-every 2 -o out pre.jsonl
    expect_status 1
    expect_output_contains "is NaN; stopping (last good checkpoint: out/checkpoint-"
    [ ! -e out/model.safetensors ]
    ck=$(ls -d out/checkpoint-* | tail -n 1)
    for f in config.json model.safetensors optimizer.safetensors trainer_state.json; do
        [ -s "$ck/$f" ] || { echo "missing $ck/$f"; return 1; }
    done
    run train --init "$ck" --seq-len 32 --steps 1 -o again pre.jsonl
    expect_output_contains "initialized from $ck (F32 weights)"
}

@test "usage errors exit 2" {
    run train --steps 1
    expect_status 2
    expect_output_contains "-o DIR is required"
    run train --mode guess -o out
    expect_status 2
    run train --init a --resume b -o out
    expect_status 2
}

@test "pretraining beats the unigram baseline on held-out documents" {
    gen_pretrain 200 > all.jsonl
    head -n 170 all.jsonl > pre.jsonl
    tail -n 30 all.jsonl > valid.jsonl
    run train ${TINY/-q/} --steps 200 --lr 1e-2 --warmup 10 --valid valid.jsonl \
        --stats stats.json -o out pre.jsonl
    expect_status 0
    expect_output_contains "unigram baseline loss"
    best=$(sed 's/.*"best_valid_loss":\([0-9.e+-]*\).*/\1/' stats.json)
    uni=$(sed 's/.*"unigram_valid_loss":\([0-9.e+-]*\).*/\1/' stats.json)
    awk -v b="$best" -v u="$uni" 'BEGIN { exit !(b < u - 0.5) }' ||
        { echo "valid loss $best vs unigram $uni"; return 1; }
}

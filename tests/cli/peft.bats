#!/usr/bin/env bats
# train --method lora|hft, --freeze, --lr-mult, --objective dpo on tiny models: PEFT adapter
# files, --merge, continuing an adapter, frozen tensors byte-identical (st_diff), HFT rounds
# recorded in the log, DPO margin/accuracy, and the errors (adapter for another base, a
# missing target module, DPO records missing a field) with exit 1.
load helpers

ST_DIFF=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/st_diff
TINY="--vocab 64 --eos 1 --dim 32 --layers 2 --heads 2 --kv-heads 1 --ffn 64 --max-seq 64
      --seq-len 32 --batch 4 -q"

gen_pretrain() {
    awk 'BEGIN { srand(1); for (i = 0; i < 60; i++) {
        len = 20 + int(rand() * 40); s = "{\"input_ids\":["
        for (j = 0; j < len; j++) s = s (j ? "," : "") ((i * 7 + j * j) % 50 + 2)
        print s "]}" } }'
}

# A base checkpoint to fine-tune.
make_base() {
    gen_pretrain > pre.jsonl
    train $TINY --steps 3 -o base pre.jsonl
}

@test "LoRA writes a PEFT adapter and leaves the base untouched" {
    make_base
    run train --init base --method lora --lora-r 4 --lora-alpha 8 --lora-targets q,v,down \
        --steps 4 --seq-len 32 --batch 4 -q --retain pre.jsonl --retain-every 2 --log l.jsonl \
        -o out pre.jsonl
    expect_status 0
    [ "$(grep -c '"retain_loss":' l.jsonl)" -eq 2 ]
    grep -q '"peft_type":"LORA"' out/adapter_config.json
    grep -q '"r":4' out/adapter_config.json
    grep -q '"lora_alpha":8' out/adapter_config.json
    grep -q '"target_modules":\["q_proj","v_proj","down_proj"\]' out/adapter_config.json
    run "$ST_DIFF" out/adapter_model.safetensors out/adapter_model.safetensors
    expect_output_contains "same base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"
    [ ! -e out/model.safetensors ]
    # --merge writes a plain checkpoint: adapted matrices changed, everything else identical.
    run train --init base --method lora --lora-r 4 --lora-targets q,v --steps 4 --seq-len 32 \
        --batch 4 --lr 1e-2 -q --merge -o merged pre.jsonl
    expect_status 0
    run "$ST_DIFF" base/model.safetensors merged/model.safetensors
    expect_output_contains "diff model.layers.0.self_attn.q_proj.weight"
    expect_output_contains "same model.layers.0.self_attn.k_proj.weight"
    expect_output_contains "same model.embed_tokens.weight"
    no_tmp_left out
}

@test "--adapter continues an adapter; one for another base or with a missing module fails" {
    make_base
    train --init base --method lora --lora-r 4 --steps 2 --seq-len 32 --batch 4 -q -o a1 pre.jsonl
    run train --init base --method lora --adapter a1 --steps 2 --seq-len 32 --batch 4 -q \
        -o a2 pre.jsonl
    expect_status 0
    run "$ST_DIFF" a1/adapter_model.safetensors a2/adapter_model.safetensors
    expect_output_contains "diff base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
    train --vocab 64 --eos 1 --dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 64 --max-seq 64 \
        --seq-len 32 --batch 4 -q --steps 1 -o wide pre.jsonl
    run train --init wide --method lora --adapter a1 --steps 1 --seq-len 32 -q -o x pre.jsonl
    expect_status 1
    expect_output_contains "the base model needs [4, 64]"
    sed 's/"target_modules":\[/"target_modules":["o_proj",/' a1/adapter_config.json > cfg
    mv cfg a1/adapter_config.json
    run train --init base --method lora --adapter a1 --steps 1 --seq-len 32 -q -o x pre.jsonl
    expect_status 1
    expect_output_contains "for target module o_proj"
    run train --init base --method lora --lora-targets q,lm_head -o x pre.jsonl
    expect_status 2
}

@test "--freeze and HFT never change a frozen tensor" {
    make_base
    run train --init base --freeze embed,layers.0 --lr-mult layers.1.mlp=0.5 --steps 3 \
        --seq-len 32 --batch 4 -q -o fz pre.jsonl
    expect_status 0
    run "$ST_DIFF" base/model.safetensors fz/model.safetensors
    expect_output_contains "same model.embed_tokens.weight"
    expect_output_contains "same model.layers.0.mlp.down_proj.weight"
    expect_output_contains "diff model.layers.1.mlp.down_proj.weight"
    run train --init base --freeze layers.7 -o x pre.jsonl
    expect_status 1
    expect_output_contains "layers 7-7 outside 0-1"
    run train --init base --method hft --steps 2 --seq-len 32 --batch 4 --seed 3 -o h pre.jsonl
    expect_status 0
    expect_output_contains "HFT round 0 trains"
    [[ "$output" =~ parameters:\ ([^$'\n']+) ]]
    drawn=${BASH_REMATCH[1]}
    [[ "$drawn" == "embed lm_head "* ]] # embed and lm_head always train (2404.18466 §3)
    grep -qF "\"hft\":{\"round\":0,\"trains\":\"$drawn\"}" h/trainer_state.json
    [[ "$output" =~ L1:([a-z0-9,]+) ]]
    trained=${BASH_REMATCH[1]}
    run "$ST_DIFF" base/model.safetensors h/model.safetensors
    for k in q_proj k_proj v_proj o_proj; do
        short=${k%_proj}
        if [[ ",$trained," == *",$short,"* ]]; then want=diff; else want=same; fi
        expect_output_contains "$want model.layers.1.self_attn.$k.weight"
    done
}

@test "DPO trains on preference pairs, logs margin and accuracy; bad records fail" {
    make_base
    awk 'BEGIN { for (i = 0; i < 12; i++) printf "{\"prompt_ids\":[%d,%d,%d],\"chosen_ids\":[%d,%d],\"rejected_ids\":[%d,%d,%d]}\n", i+2, i+3, 4, 10, 11, (i%5)+20, 21, 22 }' > pairs.jsonl
    run train --init base --objective dpo --beta 0.1 --method lora --lr 1e-2 --steps 6 \
        --seq-len 16 --batch 2 -q --log log.jsonl -o d pairs.jsonl
    expect_status 0
    grep -q '"reward_margin":' log.jsonl
    grep -q '"accuracy":' log.jsonl
    [ -s d/adapter_model.safetensors ]
    echo '{"prompt_ids":[1,2],"chosen_ids":[3]}' > bad.jsonl
    run train --init base --objective dpo --steps 1 --seq-len 16 -q -o e bad.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:1: missing field 'rejected_ids'"
}

# PEFT's modules_to_save: get_peft_model_state_dict saves "<path>.modules_to_save.default.weight"
# with "modules_to_save." and ".default" stripped, i.e. base_model.model.<HF name>.
@test "--lora-modules-to-save trains embed_tokens/lm_head in full, saves, continues, merges" {
    make_base
    run train --init base --method lora --lora-r 4 --lora-targets q,v \
        --lora-modules-to-save embed_tokens,lm_head --steps 3 --seq-len 32 --batch 4 --lr 1e-2 \
        -q --merge -o ms pre.jsonl
    expect_status 0
    grep -q '"modules_to_save":\["embed_tokens","lm_head"\]' ms/adapter_config.json
    run "$ST_DIFF" base/model.safetensors ms/model.safetensors
    expect_output_contains "diff model.embed_tokens.weight"
    expect_output_contains "diff lm_head.weight"
    expect_output_contains "same model.layers.0.self_attn.k_proj.weight"
    run "$ST_DIFF" ms/adapter_model.safetensors ms/adapter_model.safetensors
    expect_output_contains "same base_model.model.model.embed_tokens.weight"
    expect_output_contains "same base_model.model.lm_head.weight"
    expect_output_contains "same base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    # Continuing: the modules keep training.
    run train --init base --method lora --adapter ms --steps 2 --seq-len 32 --batch 4 --lr 1e-2 \
        -q -o ms2 pre.jsonl
    expect_status 0
    run "$ST_DIFF" ms/adapter_model.safetensors ms2/adapter_model.safetensors
    expect_output_contains "diff base_model.model.lm_head.weight"
    grep -q '"modules_to_save":\["embed_tokens","lm_head"\]' ms2/adapter_config.json
}

@test "modules_to_save: train --merge, quantize-export's merge and evaluate --adapter agree" {
    "$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/eval_tiny_model" tb 2
    awk 'BEGIN { srand(3); for (i = 0; i < 24; i++) { s = "{\"input_ids\":["
        for (j = 0; j < 33; j++) s = s (j ? "," : "") int(rand() * 250) + 3; print s "]}" } }' >p.jsonl
    train --init tb --method lora --lora-r 4 --lora-targets q,v --lora-modules-to-save lm_head \
        --steps 5 --lr 1e-2 --seq-len 32 --batch 4 --seed 1 -q --merge -o ms p.jsonl
    quantize-export hf -q --model tb --adapter ms --dtype f32 -o qx
    quantize-export peft -q --model tb --adapter ms -o pf
    cmp ms/adapter_model.safetensors pf/adapter_model.safetensors
    evaluate lm -q --model ms --tokenizer tb/tokenizer.json -o m.jsonl p.jsonl
    evaluate lm -q --model qx -o q.jsonl p.jsonl
    evaluate lm -q --model tb --adapter ms -o a.jsonl p.jsonl
    evaluate lm -q --model tb -o b.jsonl p.jsonl
    loss() { tail -n 1 "$1" | grep -o '"loss":[-0-9.e+]*' | head -n 1 | cut -d: -f2; }
    echo "loss: merged $(loss m.jsonl), qx $(loss q.jsonl), --adapter $(loss a.jsonl), base $(loss b.jsonl)" >&3
    awk -v a="$(loss m.jsonl)" -v b="$(loss q.jsonl)" -v c="$(loss a.jsonl)" -v d="$(loss b.jsonl)" \
        'BEGIN { e = 1e-5; exit !((a-b)^2 < e*e && (a-c)^2 < e*e && (a-d)^2 > 1e-6) }'
}

@test "--lora-modules-to-save: bad input is an error" {
    make_base
    run train --init base --method lora --lora-modules-to-save norm -o x pre.jsonl
    expect_status 2
    expect_output_contains "module to save 'norm' is not supported"
    run train --init base --lora-modules-to-save lm_head -o x pre.jsonl
    expect_status 2
    train --init base --method lora --lora-r 2 --lora-modules-to-save lm_head --steps 1 \
        --seq-len 32 --batch 4 -q -o a1 pre.jsonl
    sed 's/"modules_to_save":\["lm_head"\]/"modules_to_save":["score"]/' a1/adapter_config.json > c
    cp c a1/adapter_config.json
    run train --init base --method lora --adapter a1 --steps 1 --seq-len 32 -q -o x pre.jsonl
    expect_status 1
    expect_output_contains "module to save 'score' is not supported"
    sed 's/"modules_to_save":\["score"\]/"modules_to_save":["embed_tokens","lm_head"]/' c > a1/adapter_config.json
    run train --init base --method lora --adapter a1 --steps 1 --seq-len 32 -q -o x pre.jsonl
    expect_status 1
    expect_output_contains "for module to save embed_tokens"
    train --vocab 64 --eos 1 --dim 32 --layers 2 --heads 2 --kv-heads 1 --ffn 64 --max-seq 64 \
        --tie --seq-len 32 --batch 4 -q --steps 1 -o tied pre.jsonl
    run train --init tied --method lora --lora-modules-to-save lm_head --steps 1 --seq-len 32 \
        -q -o x pre.jsonl
    expect_status 1
    expect_output_contains "ties lm_head to embed_tokens"
}

#!/usr/bin/env bats
# train --method qlora on tiny models: a PEFT adapter like LoRA's, byte-identical for 1 and 2
# threads, --merge into the NF4-dequantized base, export through quantize-export peft, shapes
# that are not a multiple of 64, and the option errors (exit 2).
load helpers

ST_DIFF=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/st_diff
# dim 36, 2 heads of 18, 1 kv head, ffn 20: k_proj is 18x36 = 648 values (not a multiple of 64)
ODD="--vocab 64 --eos 1 --dim 36 --layers 2 --heads 2 --kv-heads 1 --ffn 20 --max-seq 64
     --seq-len 32 --batch 4 -q"
RUN="--steps 3 --seq-len 32 --batch 4 --lr 1e-2 -q"

gen_pretrain() {
    awk 'BEGIN { srand(1); for (i = 0; i < 40; i++) {
        len = 20 + int(rand() * 40); s = "{\"input_ids\":["
        for (j = 0; j < len; j++) s = s (j ? "," : "") ((i * 7 + j * j) % 50 + 2)
        print s "]}" } }'
}

make_base() {
    gen_pretrain > pre.jsonl
    train $ODD --steps 2 -o base pre.jsonl
}

@test "qlora trains an adapter in PEFT format, the same bytes for 1 and 2 threads" {
    make_base
    run train --init base --method qlora --lora-r 4 --lora-alpha 8 --lora-targets all \
        --threads 1 --stats s1.json $RUN -v -o q1 pre.jsonl
    expect_status 0
    expect_output_contains "QLoRA: base layer linears in NF4"
    grep -q '"peft_type":"LORA"' q1/adapter_config.json
    grep -q '"peak_rss_bytes":' s1.json
    train --init base --method qlora --lora-r 4 --lora-alpha 8 --lora-targets all \
        --threads 2 $RUN -o q2 pre.jsonl
    cmp q1/adapter_model.safetensors q2/adapter_model.safetensors
    cmp q1/adapter_config.json q2/adapter_config.json
    [ ! -e q1/model.safetensors ]
    # The adapter learned something else than LoRA's over the fp32 base (the base differs).
    train --init base --method lora --lora-r 4 --lora-alpha 8 --lora-targets all \
        $RUN -o l1 pre.jsonl
    ! cmp -s q1/adapter_model.safetensors l1/adapter_model.safetensors
    no_tmp_left q1
}

@test "qlora --merge writes the dequantized base plus the adapter; export takes the adapter" {
    make_base
    run train --init base --method qlora --lora-r 4 --lora-targets q,v $RUN --merge -o m \
        pre.jsonl
    expect_status 0
    [ -s m/adapter_model.safetensors ]
    run "$ST_DIFF" base/model.safetensors m/model.safetensors
    expect_output_contains "same model.embed_tokens.weight"
    expect_output_contains "same model.layers.0.input_layernorm.weight"
    expect_output_contains "diff model.layers.0.self_attn.q_proj.weight"
    expect_output_contains "diff model.layers.0.self_attn.k_proj.weight" # NF4 round trip
    run quantize-export peft --adapter m --model base -o pe
    expect_status 0
    cmp m/adapter_model.safetensors pe/adapter_model.safetensors
}

@test "qlora --qlora-type q8_0|q4_0: ggml blocks as the base, merged and logged; errors" {
    make_base
    for t in q8_0 q4_0; do
        run train --init base --method qlora --qlora-type $t --lora-r 4 --lora-targets all \
            $RUN -v --merge -o $t pre.jsonl
        expect_status 0
        expect_output_contains "QLoRA: base layer linears in ${t^^} (blocks of 32)"
        run "$ST_DIFF" base/model.safetensors $t/model.safetensors
        expect_output_contains "same model.embed_tokens.weight"
        expect_output_contains "diff model.layers.1.self_attn.k_proj.weight" # the round trip
    done
    # Different bases, different merged models.
    ! cmp -s q8_0/model.safetensors q4_0/model.safetensors
    run train --init base --method lora --qlora-type q8_0 -o x pre.jsonl
    expect_status 2
    expect_output_contains "--qlora-type needs --method qlora"
    run train --init base --method qlora --qlora-type q5_1 -o x pre.jsonl
    expect_status 2
    expect_output_contains "'q5_1' is not nf4, q8_0 or q4_0"
    [ ! -e x ]
}

@test "qlora refuses options of other methods" {
    make_base
    run train --init base --method qlora --freeze embed -o x pre.jsonl
    expect_status 2
    expect_output_contains "--method qlora freezes the base"
    run train --init base --method qlora --lr-mult mlp=0.5 -o x pre.jsonl
    expect_status 2
    run train --init base --method qlora --hft-every 2 -o x pre.jsonl
    expect_status 2
    expect_output_contains "--hft-every needs --method hft"
    run train --resume base --method qlora -o x pre.jsonl
    expect_status 2
    run train --init base --method qlora --lora-targets q,lm_head -o x pre.jsonl
    expect_status 2
    run train --init base --method qlora4 -o x pre.jsonl
    expect_status 2
    expect_output_contains "not full, lora, qlora or hft"
    [ ! -e x ]
}

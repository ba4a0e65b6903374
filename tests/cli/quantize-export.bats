#!/usr/bin/env bats
# quantize-export(1): GGUF export of every type read back through the GGUF reader against the
# report, tokenizer metadata, LoRA merging checked by an independent computation, HF and PEFT
# directories, reproducible bundles and verify, and bad input (clear error, exit 1, nothing
# left half-written).
load helpers

FIX=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/qx_fixture

setup_file() {
    cd "$BATS_FILE_TMPDIR" || exit 1
    "$FIX" model base 1 5 2>/dev/null
    "$FIX" adapter lora base 4 8 3
}

B() { echo "$BATS_FILE_TMPDIR/$1"; }

# no_stray_left: no *.tmp files and no directory temporaries (.kiln-tmp-*, .kiln-old-*).
no_stray_left() {
    no_tmp_left
    local n
    n=$(find . -name '.kiln-*' | wc -l)
    [ "$n" -eq 0 ] || { find . -name '.kiln-*' >&2; return 1; }
}

@test "gguf: every type reads back through the GGUF reader with the report's RMSE and max error" {
    for t in f32 f16 q8_0 q4_0 q4_k; do
        run quantize-export gguf -q --model "$(B base)" --type $t -o m.gguf --report r.json
        expect_status 0
        run "$FIX" roundtrip "$(B base)" m.gguf r.json
        expect_status 0
        expect_output_contains "tensors 21 mismatches 0"
    done
    no_stray_left
}

@test "gguf: F32 is exact, quantized errors are in the expected order, fallbacks are reported" {
    quantize-export gguf -q --model "$(B base)" --type f32 -o a.gguf --report f32.json
    grep -q '"rmse":0,"max_err":0}' f32.json
    ! grep -q '"fallback":true' f32.json
    quantize-export gguf -q --model "$(B base)" --type q8_0 -o b.gguf --report q8.json
    grep -q '"name":"blk.0.attn_q.weight","type":"Q8_0","fallback":false' q8.json
    # Q4_K: 64-wide rows do not fit its 256 block and fall back to Q8_0; ffn_down (256 wide)
    # is Q4_K; token_embd and output stay Q8_0 (the Q4_K_M-style mix), not as a fallback.
    run quantize-export gguf --model "$(B base)" --type q4_k -o c.gguf --report q4k.json
    expect_status 0
    expect_output_contains "blk.0.attn_q.weight: row length 64 does not fit Q4_K; written as Q8_0"
    grep -q '"name":"blk.0.attn_q.weight","type":"Q8_0","fallback":true' q4k.json
    grep -q '"name":"blk.0.ffn_down.weight","type":"Q4_K","fallback":false' q4k.json
    grep -q '"name":"token_embd.weight","type":"Q8_0","fallback":false' q4k.json
    grep -q '"name":"output.weight","type":"Q8_0","fallback":false' q4k.json
    grep -q '"file_type":15' q4k.json
}

@test "gguf: tokenizer metadata, special ids, general.* keys and file_type" {
    quantize-export gguf -q --model "$(B base)" --type q8_0 --name tiny-test -o m.gguf
    run "$FIX" meta m.gguf
    expect_status 0
    expect_output_contains "general.architecture=llama"
    expect_output_contains "general.name=tiny-test"
    expect_output_contains "general.file_type=7"
    expect_output_contains "tokenizer.ggml.model=gpt2"
    expect_output_contains "tokenizer.ggml.pre=gpt-2"
    expect_output_contains "tokenizer.ggml.eos_token_id=0"
    expect_output_contains "tokenizer.ggml.bos_token_id=0"
    expect_output_contains "tokenizer.ggml.padding_token_id=0"
    expect_output_contains "tokenizer.ggml.tokens.count=300"
    expect_output_contains "tokenizer.ggml.token_type.count=300"
    expect_output_contains "tokenizer.ggml.merges.count=43"
}

@test "gguf: same input and options give byte-identical files" {
    quantize-export gguf -q --model "$(B base)" --type q4_k -o a.gguf
    quantize-export gguf -q --model "$(B base)" --type q4_k -o b.gguf
    cmp a.gguf b.gguf
}

@test "LoRA: hf --adapter merges W += alpha/r B A (checked independently); gguf uses it" {
    run quantize-export hf --model "$(B base)" --adapter "$(B lora)" --dtype f32 -o merged
    expect_status 0
    expect_output_contains "merged 4 LoRA pairs (r 4, scale 2)"
    run "$FIX" check-merge "$(B base)" "$(B lora)" merged
    expect_status 0
    expect_output_contains "pairs 4"
    # The check fails against the unmerged base (the tool can fail).
    run "$FIX" check-merge "$(B base)" "$(B lora)" "$(B base)"
    expect_status 1
    quantize-export gguf -q --model "$(B base)" --adapter "$(B lora)" --type f32 --name t -o a.gguf
    quantize-export gguf -q --model merged --type f32 --name t -o b.gguf
    quantize-export gguf -q --model "$(B base)" --type f32 --name t -o c.gguf
    cmp a.gguf b.gguf
    ! cmp -s a.gguf c.gguf
}

@test "hf: f32, f16 and bf16 directories load back, with tokenizer and generation config" {
    for d in f32 f16 bf16; do
        run quantize-export hf --model "$(B base)" --dtype $d -o out-$d
        expect_status 0
        [ -f out-$d/config.json ] && [ -f out-$d/tokenizer.json ] &&
            [ -f out-$d/generation_config.json ] && [ -f out-$d/model.safetensors ]
        grep -q "\"dtype\":\"${d^^}\"" out-$d/model.safetensors
        "$FIX" logits out-$d 5 6 7 >/dev/null
    done
    cmp out-f32/model.safetensors "$(B base)/model.safetensors"
    cmp out-f32/tokenizer.json "$(B base)/tokenizer.json"
    # An existing directory is kept unless -f.
    run quantize-export hf --model "$(B base)" --dtype f16 -o out-f32
    expect_status 1
    expect_output_contains "out-f32: already exists"
    cmp out-f32/model.safetensors "$(B base)/model.safetensors"
    run quantize-export hf -f --model "$(B base)" --dtype f16 -o out-f32
    expect_status 0
    grep -q '"dtype":"F16"' out-f32/model.safetensors
    no_stray_left
}

@test "peft: validated copy; checked against a base; bad adapters are refused" {
    run quantize-export peft --adapter "$(B lora)" --model "$(B base)" -o p
    expect_status 0
    cmp p/adapter_model.safetensors "$(B lora)/adapter_model.safetensors"
    cmp p/adapter_config.json "$(B lora)/adapter_config.json"
    cp -r "$(B lora)" badr
    sed -i 's/"r": 4/"r": 8/' badr/adapter_config.json
    run quantize-export peft --adapter badr -o q
    expect_status 1
    expect_output_contains "do not have rank r = 8"
    [ ! -e q ]
    cp -r "$(B lora)" dora
    sed -i 's/"LORA"/"IA3"/' dora/adapter_config.json
    run quantize-export peft --adapter dora -o q
    expect_status 1
    expect_output_contains 'peft_type is not "LORA"'
    no_stray_left
}

@test "bad input: an adapter for another base, exit 1, no output" {
    "$FIX" model wide 2 0 128 2>/dev/null
    "$FIX" adapter wlora wide 4 8
    run quantize-export gguf --model "$(B base)" --adapter wlora --type q8_0 -o m.gguf
    expect_status 1
    expect_output_contains "adapter for another base: model.layers.0.self_attn.q_proj.weight is [64, 64] but lora_B·lora_A is [128, 128]"
    [ ! -e m.gguf ]
    run quantize-export peft --adapter wlora --model "$(B base)" -o p
    expect_status 1
    [ ! -e p ]
    no_stray_left
}

@test "bad input: checkpoint with missing or mis-shaped tensors, exit 1, no output" {
    cp -r "$(B base)" three
    sed -i 's/"num_hidden_layers":2/"num_hidden_layers":3/' three/config.json
    run quantize-export gguf --model three --type f32 -o m.gguf
    expect_status 1
    expect_output_contains "model.layers.2"
    [ ! -e m.gguf ]
    cp -r "$(B base)" narrow
    sed -i 's/"intermediate_size":256/"intermediate_size":128/' narrow/config.json
    run quantize-export hf --model narrow --dtype f16 -o out
    expect_status 1
    expect_output_contains "mlp"
    [ ! -e out ]
    run quantize-export gguf --model nowhere --type f32 -o m.gguf
    expect_status 1
    [ ! -e m.gguf ]
    no_stray_left
}

@test "bad input: unwritable output, exit 1, nothing left" {
    touch afile
    run quantize-export gguf --model "$(B base)" --type q8_0 -o afile/m.gguf
    expect_status 1
    expect_output_contains "afile/m.gguf"
    run quantize-export hf --model "$(B base)" --dtype f32 -o afile/dir
    expect_status 1
    run quantize-export bundle -o afile/b.tar "$(B base)/config.json"
    expect_status 1
    no_stray_left
}

@test "usage errors exit 2" {
    run quantize-export
    expect_status 2
    run quantize-export gguf --model "$(B base)" -o m.gguf
    expect_status 2
    expect_output_contains "--type is required"
    run quantize-export gguf --model "$(B base)" --type q3_k -o m.gguf
    expect_status 2
    run quantize-export hf --model "$(B base)" --dtype f8 -o x
    expect_status 2
    run quantize-export frobnicate
    expect_status 2
    run quantize-export bundle -o b.tar
    expect_status 2
}

@test "bundle: built twice byte-identical (tar and tar.zst); mtime from SOURCE_DATE_EPOCH" {
    cp "$(B base)/config.json" "$(B base)/tokenizer.json" .
    quantize-export gguf -q --model "$(B base)" --type q8_0 -o m.gguf
    "$FIX" card-db db.sqlite run1
    printf '{"step":"train","seed":42,"key":"abc"}\n{"step":"export","key":"def"}\n' >steps.jsonl
    for ext in tar tar.zst; do
        quantize-export bundle -q -o a.$ext --card-db db.sqlite --run-name run1 \
            --provenance steps.jsonl m.gguf config.json tokenizer.json
        sleep 1
        touch m.gguf
        quantize-export bundle -q -o b.$ext --card-db db.sqlite --run-name run1 \
            --provenance steps.jsonl tokenizer.json m.gguf config.json
        cmp a.$ext b.$ext
    done
    SOURCE_DATE_EPOCH=1700000000 quantize-export bundle -q -o c.tar m.gguf config.json
    ! cmp -s a.tar c.tar
    run tar -tvf c.tar
    expect_output_contains "0/0"
    expect_output_contains "2023-11-14"
    [ "$(tar -tf a.tar | tr '\n' ' ')" = "MANIFEST.json README.md config.json m.gguf tokenizer.json " ]
    zstd -dc a.tar.zst | cmp - a.tar
    no_stray_left
}

@test "bundle: model card and manifest carry the run, metrics, hashes and provenance" {
    cp "$(B base)/config.json" .
    "$FIX" card-db db.sqlite run1
    printf '{"step":"train","seed":42,"key":"abc"}\n' >steps.jsonl
    quantize-export bundle -q -o b.tar --card-db db.sqlite --run-name run1 \
        --provenance steps.jsonl config.json
    tar -xf b.tar README.md MANIFEST.json
    grep -q '^## Data' README.md
    grep -q '| filter | 0.1.0 | 100 | 90 |' README.md
    grep -q '| valid_loss | 1.875 | 0.01 |' README.md
    grep -q '^## Intended use' README.md
    grep -q '^## Limitations' README.md
    grep -q 'hidden size 64, 2 layers' README.md
    sha=$(sha256sum config.json | cut -d' ' -f1)
    grep -q "{\"name\":\"config.json\",\"size\":$(stat -c %s config.json),\"sha256\":\"$sha\"}" MANIFEST.json
    rsha=$(sha256sum README.md | cut -d' ' -f1)
    grep -q "\"sha256\":\"$rsha\"" MANIFEST.json
    grep -q '"steps":\[{"step":"train","seed":42,"key":"abc"}\]' MANIFEST.json
    grep -q '"seeds":\["data_seed=7","run=42",42\]' MANIFEST.json
    grep -q '"zstd":"1\.' MANIFEST.json
    grep -q '"sqlite":"3\.' MANIFEST.json
    grep -q '"pcre2":"10\.' MANIFEST.json
    grep -q '"openblas":"OpenBLAS' MANIFEST.json
    # Unknown run, duplicate names, reserved names.
    run quantize-export bundle -o x.tar --card-db db.sqlite --run-name nope config.json
    expect_status 1
    mkdir d && cp config.json d/
    run quantize-export bundle -o x.tar config.json d/config.json
    expect_status 1
    expect_output_contains "two files named config.json"
    [ ! -e x.tar ]
}

@test "verify: a good bundle passes; tampered, missing and extra members are each named" {
    cp "$(B base)/config.json" "$(B base)/tokenizer.json" .
    quantize-export bundle -q -o b.tar.zst config.json tokenizer.json
    run quantize-export verify b.tar.zst
    expect_status 0
    expect_output_contains "3 files verified"
    mkdir x && tar -C x --zstd -xf b.tar.zst
    printf ' ' >>x/config.json
    rm x/tokenizer.json
    echo hi >x/extra.txt
    tar -C x -cf bad.tar MANIFEST.json README.md config.json extra.txt
    run quantize-export verify bad.tar
    expect_status 1
    expect_output_contains "config.json: size 453, MANIFEST.json says 452"
    expect_output_contains "tokenizer.json: listed in MANIFEST.json but missing"
    expect_output_contains "extra.txt: not listed in MANIFEST.json"
    expect_output_contains "3 mismatches"
    sed -i 's/"llama"/"LLAMA"/' x/config.json && truncate -s 452 x/config.json
    tar -C x -cf bad2.tar MANIFEST.json README.md config.json
    run quantize-export verify bad2.tar
    expect_status 1
    expect_output_contains "config.json: sha256"
}

# A SIGKILL mid-export leaves the hidden temporary (nothing at the output); the next run to the
# same output removes it and succeeds. The kill lands while model.safetensors is being written
# (retried on a machine too fast to catch it).
@test "hf: kill -9 mid-export leaves only .kiln-tmp-NAME, which the next run removes" {
    "$FIX" model big 3 0 256 8 256 2>/dev/null
    local caught=0 pid
    for attempt in 1 2 3 4 5 6 7 8; do
        rm -rf out-k .kiln-tmp-out-k
        quantize-export hf --model big --dtype bf16 -o out-k &
        pid=$!
        while kill -0 "$pid" 2>/dev/null && [ ! -d .kiln-tmp-out-k ]; do :; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        if [ -d .kiln-tmp-out-k ] && [ ! -e out-k ]; then
            caught=1
            break
        fi
    done
    [ "$caught" = 1 ] || skip "the export finished before the kill 8 times"
    run quantize-export hf --model big --dtype bf16 -o out-k
    expect_status 0
    [ -f out-k/model.safetensors ] && [ -f out-k/tokenizer.json ]
    no_stray_left
    # A -f replacement killed between its two renames leaves the old directory aside and no
    # output: the next run puts it back (then, without -f, refuses to replace it).
    mv out-k .kiln-old-out-k
    mkdir .kiln-tmp-out-k
    run quantize-export hf --model big --dtype f32 -o out-k
    expect_status 1
    expect_output_contains "out-k: already exists"
    grep -q '"dtype":"BF16"' out-k/model.safetensors
    no_stray_left
}

@test "peft: a stale temporary, and a stale moved-aside copy beside the output, are removed" {
    mkdir -p sub/.kiln-tmp-p
    touch sub/.kiln-tmp-p/junk
    quantize-export peft --adapter "$(B lora)" -o sub/p/
    cmp sub/p/adapter_model.safetensors "$(B lora)/adapter_model.safetensors"
    mkdir sub/.kiln-old-p
    quantize-export peft -f --adapter "$(B lora)" -o sub/p
    no_stray_left
}

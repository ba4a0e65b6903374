# Interop: GGUF files written by common/gguf (a tiny random Llama from
# tests/tools/gguf_tiny_llama) load and run in llama.cpp (npm node-llama-cpp 3.21.1, CPU), and
# llama.cpp's next-token log-probabilities match kiln's reference forward pass over the same
# file. Skips with a message when node or the npm registry is unavailable.
load ../cli/helpers

TOOLS=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools
IDS="121 66 189 242 33 6 240 132 119 98 240 243 203 77 118 77 199 7 32 81 21 154 15 137"

setup_file() {
    if ! command -v node >/dev/null; then
        echo "node not found" >"$BATS_FILE_TMPDIR/skip"
    elif ! "$KILN_ROOT/tests/tools/nlc_install.sh" 2>"$BATS_FILE_TMPDIR/skip"; then
        :
    else
        rm -f "$BATS_FILE_TMPDIR/skip"
    fi
}

need_llama() {
    if [ -f "$BATS_FILE_TMPDIR/skip" ]; then
        skip "llama.cpp via node-llama-cpp 3.21.1 unavailable: $(tail -n 1 "$BATS_FILE_TMPDIR/skip")"
    fi
}

# compare TYPE MAX_DIFF MIN_TOP1
compare() {
    "$TOOLS/gguf_tiny_llama" write m.gguf "$1" 3
    node "$KILN_ROOT/tests/tools/llama_logits.mjs" m.gguf $IDS >llama.json
    "$TOOLS/gguf_tiny_llama" logits m.gguf $IDS >ref.json
    run node "$KILN_ROOT/tests/tools/logits_compare.mjs" --max-diff "$2" --min-top1 "$3" \
        llama.json ref.json
    echo "$1: $output" >&3
    expect_status 0
}

@test "F32 GGUF: llama.cpp log-probabilities within 1e-4 of the reference" {
    need_llama
    compare F32 1e-4 1
}

@test "F32 GGUF: 32 greedy tokens from llama.cpp equal the reference" {
    need_llama
    "$TOOLS/gguf_tiny_llama" write m.gguf F32 3
    a=$(node "$KILN_ROOT/tests/tools/llama_logits.mjs" --generate 32 m.gguf 121 66 189)
    b=$("$TOOLS/gguf_tiny_llama" generate m.gguf 32 121 66 189)
    [ "$a" = "$b" ] || { echo "llama.cpp: $a" >&2; echo "kiln:      $b" >&2; return 1; }
}

# The tokenizer metadata (byte tokens in byte-to-unicode form, "a b" merges, pre "gpt-2"):
# llama.cpp splits " the cat" into " the" (merged through "Ġ t" and "Ġt he") and the bytes of
# " cat", and " thé" into " t" (merged), "h" and the two bytes of "é".
@test "llama.cpp tokenizes with kiln's tokenizer.ggml metadata" {
    need_llama
    "$TOOLS/gguf_tiny_llama" write m.gguf F32 3
    run node "$KILN_ROOT/tests/tools/llama_logits.mjs" --tokenize m.gguf " the cat thé"
    expect_status 0
    [ "$output" = '{"tokens":[258,32,99,97,116,256,104,195,169]}' ] || { echo "$output" >&2; return 1; }
}

# llama.cpp multiplies quantized weights with 8-bit-quantized activations, the reference uses
# exact activations: the bounds cover that, and a wrong block layout would miss them by orders
# of magnitude.
@test "Q8_0, Q4_0 and Q4_K GGUF agree with the reference" {
    need_llama
    compare Q8_0 0.3 0.9
    compare Q4_0 0.3 0.9
    compare Q4_K 0.3 0.9
}

# The model.h path: a random model (HF conventions, rotate-half RoPE) exported by
# gguf_model_write must give llama.cpp the same log-probabilities as model.h's own forward over
# the GGUF read back by gguf_model_read — this checks the Q/K permutation end to end.
# compare_model TYPE MAX_DIFF MIN_TOP1 [mixed]
compare_model() {
    "$TOOLS/gguf_tiny_llama" export m.gguf "$1" 5 ${4:-} 2>/dev/null
    node "$KILN_ROOT/tests/tools/llama_logits.mjs" m.gguf $IDS >llama.json
    "$TOOLS/gguf_tiny_llama" model-logits m.gguf $IDS >ref.json
    run node "$KILN_ROOT/tests/tools/logits_compare.mjs" --max-diff "$2" --min-top1 "$3" \
        llama.json ref.json
    echo "model $1 ${4:-}: $output" >&3
    expect_status 0
}

@test "model.h export, F32: llama.cpp log-probabilities within 1e-4 of model_forward" {
    need_llama
    compare_model F32 1e-4 1
}

@test "model.h export, Q4_K_M mix: llama.cpp agrees with model_forward" {
    need_llama
    compare_model Q4_K 0.5 0.9 mixed
}

# bench_evaluate.sh (sourced by tests/bench/run.sh): forward-only scoring throughput of
# `evaluate lm --packed` against the trainer's tokens/s on the same model, data, sequence
# length and batch (config B of bench_train: V 4096, d 256, 6 layers, T 256, B 8), alternating,
# EVAL_REPS times; medians and ratio (and the 1-minute load average). Target: ≥ 3x the trainer.
# evaluate runs whole batches one per thread (stages/evaluate/score.c); the trainer splits
# every product across the threads.
# The same ratio in CPU time (user + sys, all threads), which a loaded machine disturbs less
# than wall time: the trainer's per step from runs of 6 and 2 steps (the difference: 4 steady
# steps), evaluate's per position from the whole file and its first record (the difference:
# everything but start-up and one batch).
: "${EVAL_REPS:=3}"
work=$BENCH_WORK/evaluate
mkdir -p "$work"
awk 'BEGIN { srand(11); for (i = 0; i < 40; i++) { s = "{\"input_ids\":["
    for (j = 0; j < 2000; j++) s = s (j ? "," : "") int(rand() * 4095) + 1
    print s "]}" } }' > "$work/rand.jsonl"
"$KILN_ROOT/build/tests/tools/eval_tiny_model" "$work/tok" 1 # only its tokenizer.json is used
head -n 1 "$work/rand.jsonl" > "$work/rand1.jsonl"
median_of() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
cpu_of() { /usr/bin/time -f '%U %S' -o "$work/cpu" "$@" && awk '{print $1 + $2}' "$work/cpu"; }
positions_of() { sed 's/.*"positions":\([0-9]*\).*/\1/' "$1"; }
for th in 1 2; do
    tr=() ev=() trc=() evc=()
    for ((r = 0; r < EVAL_REPS; r++)); do
        for steps in 2 6; do
            c=$(cpu_of train --vocab 4096 --eos 0 --dim 256 --layers 6 --heads 8 --ffn 688 \
                --max-seq 256 --seq-len 256 --batch 8 --steps $steps --threads "$th" \
                --log "$work/log.jsonl" -o "$work/model" "$work/rand.jsonl" 2> "$work/train.err") ||
                { cat "$work/train.err" >&2; return 1; }
            [ $steps = 2 ] && c2=$c
        done
        tr+=("$(tail -n +3 "$work/log.jsonl" | sed -n 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/p' | median_of)")
        trc+=("$(echo "4 * 8 * 256 / ($c - $c2)" | bc -l)")
        cp "$work/tok/tokenizer.json" "$work/model/"
        for f in rand1 rand; do
            c=$(cpu_of evaluate lm --model "$work/model" --packed --seq-len 256 --batch 8 \
                --threads "$th" --bootstrap-iters 0 --stats "$work/st-$f.json" -o /dev/null \
                "$work/$f.jsonl" 2> "$work/ev.err") || { cat "$work/ev.err" >&2; return 1; }
            [ $f = rand1 ] && c1=$c
        done
        ev+=("$(sed 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/' "$work/st-rand.json")")
        evc+=("$(echo "($(positions_of "$work/st-rand.json") - $(positions_of "$work/st-rand1.json")) / ($c - $c1)" | bc -l)")
    done
    mt=$(printf '%s\n' "${tr[@]}" | median_of)
    me=$(printf '%s\n' "${ev[@]}" | median_of)
    mtc=$(printf '%s\n' "${trc[@]}" | median_of)
    mec=$(printf '%s\n' "${evc[@]}" | median_of)
    ratio=$(echo "$me / $mt" | bc -l)
    ratioc=$(echo "$mec / $mtc" | bc -l)
    la=$(loadavg)
    printf '%-46s evaluate %8.0f tok/s | train %7.0f tok/s | ratio %.2fx (target >= 3x) | load %s\n' \
        "evaluate lm forward-only (V4096 d256 L6 T256 B8) ${th}t" "$me" "$mt" "$ratio" "$la"
    printf '%-46s evaluate %8.0f tok/s | train %7.0f tok/s | ratio %.2fx (target >= 3x) | load %s\n' \
        "  the same in CPU time (tokens per CPU-second)" "$mec" "$mtc" "$ratioc" "$la"
    bench_record "evaluate_forward_${th}t" threads "$th" evaluate_tokens_per_s "$me" \
        train_tokens_per_s "$mt" ratio "$ratio" evaluate_tokens_per_cpu_s "$mec" \
        train_tokens_per_cpu_s "$mtc" ratio_cpu "$ratioc" load "$la"
done

# Prompt processing against llama.cpp (npm node-llama-cpp 3.21.1, tests/bench/llama_pp.mjs) on
# the same exported F32 GGUF: a V300 d256 L6 (8 heads, ffn 688) model, prompts of 512 tokens
# processed as one batch. kiln: `evaluate lm --packed --seq-len 512 --batch 1` over the GGUF
# (9 windows; it also computes every position's logits and log-softmax, llama.cpp only the
# last one's); llama.cpp: 5 prompts after a warm-up, KV cache cleared between. Alternating,
# EVAL_REPS times; medians of the per-run tokens/s and their ratio. Target: >= 0.7x.
if command -v node >/dev/null && "$KILN_ROOT/tests/tools/nlc_install.sh" 2>"$work/nlc.err"; then
    awk 'BEGIN { srand(12); for (i = 0; i < 8; i++) { s = "{\"input_ids\":["
        for (j = 0; j < 600; j++) s = s (j ? "," : "") int(rand() * 299) + 1
        print s "]}" } }' > "$work/pp.jsonl"
    train --tokenizer "$work/tok/tokenizer.json" --eos 0 --dim 256 --layers 6 --heads 8 \
        --ffn 688 --max-seq 512 --seq-len 256 --batch 2 --steps 1 -q -o "$work/pp-model" \
        "$work/pp.jsonl" && quantize-export gguf -q -f --model "$work/pp-model" --type f32 \
        -o "$work/pp.gguf" || return 1
    for th in 1 2; do
        ki=() ll=()
        for ((r = 0; r < EVAL_REPS; r++)); do
            evaluate lm --model "$work/pp.gguf" --tokenizer "$work/tok/tokenizer.json" --packed \
                --seq-len 512 --batch 1 --threads "$th" --bootstrap-iters 0 \
                --stats "$work/pp-st.json" -o /dev/null "$work/pp.jsonl" 2>"$work/ev.err" ||
                { cat "$work/ev.err" >&2; return 1; }
            ki+=("$(sed 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/' "$work/pp-st.json")")
            ll+=("$(node "$KILN_ROOT/tests/bench/llama_pp.mjs" "$work/pp.gguf" 512 5 "$th" |
                sed 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/')")
        done
        mk=$(printf '%s\n' "${ki[@]}" | median_of)
        ml=$(printf '%s\n' "${ll[@]}" | median_of)
        ratio=$(echo "$mk / $ml" | bc -l)
        la=$(loadavg)
        printf '%-46s evaluate %8.0f tok/s | llama.cpp %7.0f tok/s | ratio %.2fx (target >= 0.7x) | load %s\n' \
            "prompt processing F32 GGUF (V300 d256 L6 T512) ${th}t" "$mk" "$ml" "$ratio" "$la"
        bench_record "evaluate_pp_llama_${th}t" threads "$th" evaluate_tokens_per_s "$mk" \
            llama_tokens_per_s "$ml" ratio "$ratio" load "$la"
    done
else
    echo "prompt processing vs llama.cpp: skipped ($(tail -n 1 "$work/nlc.err" 2>/dev/null || echo 'node not found'))"
fi

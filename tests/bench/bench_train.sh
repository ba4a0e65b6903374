# bench_train.sh (sourced by tests/bench/run.sh): training throughput of `train` against
# PyTorch (Debian python3-torch, float32, same model, batch and thread count) on the two
# configs of issue 7, at 1 and 2 threads, side by side and alternating; model FLOP utilization
# against the sgemm peak measured in the same run (build/bench/bin/sgemm_peak); peak memory
# against the breakdown train prints (parameters + gradients + AdamW + activations).
# Targets: ≥ 1.5x PyTorch on config A, ≥ 1.2x on config B, MFU ≥ 60%, memory ≤ 1.5x.
# Wall-time tokens/s and the wall-time peak only mean something at a load average below the
# core count; a second MFU ("MFU cpu") divides the training FLOPs per CPU second of a step
# (CPU time of the S-step run minus that of a 1-step run, over S-1 steps) by the CPU-time
# sgemm peak (sgemm_peak --cpu), both per core times the thread count. At 1 thread it is the
# MFU the process reaches whatever its share of a shared machine; at 2 threads it leaves out
# time a thread waits at a barrier (a waiting thread uses no CPU).
: "${TRAIN_REPS:=3}"
work=$BENCH_WORK/train
mkdir -p "$work"
peak_bin=$KILN_ROOT/build/bench/bin/sgemm_peak
have_torch=0
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    have_torch=1
else
    echo "train: PyTorch (python3-torch) not installed; reporting kiln alone"
fi
# Random token documents, enough for every run.
awk 'BEGIN { srand(7); for (i = 0; i < 120; i++) { s = "{\"input_ids\":["
    for (j = 0; j < 2000; j++) s = s (j ? "," : "") int(rand() * 4095) + 1
    print s "]}" } }' > "$work/rand.jsonl"

median_of() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# ours V D L H FF T B STEPS THREADS -> tokens/s (median over steps 3..); leaves the peak RSS
# in $work/rss and the computed total in $work/err.txt
ours() {
    local log=$work/log.jsonl err=$work/err.txt
    /usr/bin/time -f '%M %U %S' -o "$work/rss" train --vocab "$1" --eos 0 --dim "$2" --layers "$3" \
        --heads "$4" --ffn "$5" --max-seq "$6" --seq-len "$6" --batch "$7" --steps "$8" \
        --threads "$9" --log "$log" -o "$work/out" "$work/rand.jsonl" 2>"$err" || {
        cat "$err" >&2; return 1; }
    tail -n +3 "$log" | sed 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/' | median_of
}

for cfg in "A 4096 128 4 4 352 128 16 10" "B 4096 256 6 8 688 256 8 8"; do
    set -- $cfg
    name=$1 V=$2 D=$3 L=$4 H=$5 FF=$6 T=$7 B=$8 S=$9
    # FLOPs per token: 6 x matmul parameters (layers + lm_head) + causal attention 6·L·T·D.
    flops=$(echo "6 * ($L * (4 * $D * $D + 3 * $D * $FF) + $V * $D) + 6 * $L * $T * $D" | bc)
    for th in 1 2; do
        to=() tb=() pk=() pkc=() cs=()
        for ((r = 0; r < TRAIN_REPS; r++)); do
            pk+=("$("$peak_bin" "$th")")
            pkc+=("$("$peak_bin" --cpu "$th")")
            to+=("$(ours "$V" "$D" "$L" "$H" "$FF" "$T" "$B" "$S" "$th")") || return 1
            cs+=("$(tail -n 1 "$work/rss" | awk '{print $2 + $3}')")
            if [ $have_torch = 1 ]; then
                tb+=("$(/usr/bin/python3 "$KILN_ROOT/tests/bench/torch_train.py" "$V" "$D" "$L" \
                    "$H" "$FF" "$T" "$B" "$S" "$th")")
            fi
        done
        rss_kb=$(tail -n 1 "$work/rss" | awk '{print $1}')
        ours "$V" "$D" "$L" "$H" "$FF" "$T" "$B" 1 "$th" >/dev/null || return 1
        c1=$(tail -n 1 "$work/rss" | awk '{print $2 + $3}')
        cS=$(printf '%s\n' "${cs[@]}" | median_of)
        peakc=$(printf '%s\n' "${pkc[@]}" | median_of)
        mfuc=$(awk -v f="$flops" -v bt="$((B * T))" -v s="$S" -v c1="$c1" -v cs="$cS" -v th="$th" \
            -v p="$peakc" 'BEGIN { printf "%.1f", f * bt * (s - 1) / ((cs - c1) / th) / (p * 1e9) * 100 }')
        calc_mib=$(sed -n 's/.*activations .*, total \([0-9.]*\) MiB.*/\1/p' "$work/err.txt")
        mo=$(printf '%s\n' "${to[@]}" | median_of)
        peak=$(printf '%s\n' "${pk[@]}" | median_of)
        mb=$( [ $have_torch = 1 ] && printf '%s\n' "${tb[@]}" | median_of || echo 0)
        mfu=$(echo "$flops * $mo / ($peak * 10^9) * 100" | bc -l)
        mem_ratio=$(echo "$rss_kb / 1024 / $calc_mib" | bc -l)
        ratio=$( [ $have_torch = 1 ] && echo "$mo / $mb" | bc -l || echo 0)
        awk -v n="train $name (V$V d$D L$L H$H ffn$FF T$T B$B) ${th}t" -v o="$mo" -v b="$mb" \
            -v r="$ratio" -v m="$mfu" -v p="$peak" -v rss="$rss_kb" -v c="$calc_mib" \
            -v mr="$mem_ratio" -v mc="$mfuc" -v pc="$peakc" -v la="$(loadavg)" 'BEGIN {
            printf "%-46s ours %7.0f tok/s | pytorch %7.0f tok/s | ratio %.2fx | MFU %4.1f%% of %.0f GFLOP/s | MFU cpu %4.1f%% of %.0f GFLOP/s | peak RSS %.0f MiB = %.2fx computed %.1f MiB | load %s\n",
                n, o, b, r, m, p, mc, pc, rss / 1024, mr, c, la }'
        bench_record "train_${name}_${th}t" config "$name" threads "$th" ours_tokens_per_s "$mo" \
            pytorch_tokens_per_s "$mb" ratio "$ratio" mfu_percent "$mfu" sgemm_peak_gflops "$peak" \
            peak_rss_kb "$rss_kb" computed_mib "$calc_mib" memory_ratio "$mem_ratio" \
            mfu_cpu_percent "$mfuc" sgemm_peak_cpu_gflops "$peakc" load "$(loadavg)"
    done
done

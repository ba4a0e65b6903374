# bench_peft.sh (sourced by tests/bench/run.sh): fine-tuning methods on the `small` preset
# (dim 256, 6 layers, vocab 4096, T 256, batch 8): tokens/s and step time of full training,
# LoRA r8 (q,k,v,o,gate,up,down), QLoRA r8 (the same adapters over an NF4 base) and HFT, the
# AdamW state each keeps, and the peak RSS of LoRA and QLoRA (train --stats).
# Targets (issue 8): LoRA step time ≤ 0.75x full; LoRA optimizer memory ≤ 5% of full.
: "${PEFT_STEPS:=8}"
work=$BENCH_WORK/peft
mkdir -p "$work"
awk 'BEGIN { srand(11); for (i = 0; i < 60; i++) { s = "{\"input_ids\":["
    for (j = 0; j < 2000; j++) s = s (j ? "," : "") int(rand() * 4095) + 1
    print s "]}" } }' > "$work/rand.jsonl"
train --model small --vocab 4096 --eos 0 --seq-len 256 --batch 8 --steps 1 -q \
    -o "$work/base" "$work/rand.jsonl" || return 1

median_of() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# peft_run NAME OPTIONS... -> "tokens_per_s adamw_mib" (median over steps 3..); the peak
# RSS lands in $work/NAME.stats.json
peft_run() {
    local name=$1; shift
    train --init "$work/base" --seq-len 256 --batch 8 --steps "$PEFT_STEPS" --lr 1e-4 \
        --log "$work/$name.log" --stats "$work/$name.stats.json" -o "$work/$name" "$@" \
        "$work/rand.jsonl" 2>"$work/$name.err" || {
        cat "$work/$name.err" >&2; return 1; }
    local tps mem
    tps=$(tail -n +3 "$work/$name.log" | sed 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/' | median_of)
    mem=$(sed -n 's/.*AdamW \([0-9.]*\) MiB.*/\1/p' "$work/$name.err")
    echo "$tps $mem"
}

declare -A tps mem
for m in full lora qlora hft; do
    case $m in
    full) r=$(peft_run full) ;;
    lora) r=$(peft_run lora --method lora --lora-r 8 --lora-targets all) ;;
    qlora) r=$(peft_run qlora --method qlora --lora-r 8 --lora-targets all) ;;
    hft) r=$(peft_run hft --method hft) ;;
    esac || return 1
    tps[$m]=${r% *} mem[$m]=${r#* }
done
rss() { sed 's/.*"peak_rss_bytes":\([0-9]*\).*/\1/' "$work/$1.stats.json" | awk '{ printf "%.1f", $1 / 1048576 }'; }
rss_lora=$(rss lora) rss_qlora=$(rss qlora)
step_ratio=$(echo "${tps[full]} / ${tps[lora]}" | bc -l)
mem_ratio=$(echo "${mem[lora]} / ${mem[full]}" | bc -l)
awk -v f="${tps[full]}" -v l="${tps[lora]}" -v q="${tps[qlora]}" -v h="${tps[hft]}" \
    -v sr="$step_ratio" -v mf="${mem[full]}" -v ml="${mem[lora]}" -v mr="$mem_ratio" \
    -v rl="$rss_lora" -v rq="$rss_qlora" 'BEGIN {
    printf "peft small: tokens/s full %.0f, LoRA r8 %.0f, QLoRA r8 %.0f, HFT %.0f\n", f, l, q, h
    printf "peft small: peak RSS LoRA %.1f MiB, QLoRA %.1f MiB (activations dominate at T 256, batch 8)\n", rl, rq
    printf "peft small: LoRA step time %.2fx full (target <= 0.75)   %s\n", sr, sr <= 0.75 ? "ok" : "MISSED"
    printf "peft small: AdamW state LoRA %.2f MiB vs full %.1f MiB = %.1f%% (target <= 5%%)   %s\n", ml, mf, 100 * mr, mr <= 0.05 ? "ok" : "MISSED" }'
bench_record peft_small tokens_per_s_full "${tps[full]}" tokens_per_s_lora "${tps[lora]}" \
    tokens_per_s_hft "${tps[hft]}" tokens_per_s_qlora "${tps[qlora]}" \
    peak_rss_mib_lora "$rss_lora" peak_rss_mib_qlora "$rss_qlora" \
    lora_step_ratio "$step_ratio" adamw_mib_full "${mem[full]}" adamw_mib_lora "${mem[lora]}" lora_adamw_ratio "$mem_ratio"

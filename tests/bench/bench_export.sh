# bench_export: quantize-export end to end — `quantize-export gguf` throughput per type in MB/s
# of F32 weights (reading model.safetensors, quantizing, report errors, writing the GGUF) on a
# 25M-parameter random model, single-threaded; the quantization kernels alone are in
# bench_quant.sh (targets, issue 10: Q8_0 >= 200 MB/s, Q4_K >= 100 MB/s per core). Then, when
# build/bin/evaluate exists, perplexity of F32, Q8_0, Q4_0 and Q4_K exports of a small trained
# model on held-out text (targets: Q8_0 within +0.5% of F32, Q4_0 within +8%). Sourced by
# tests/bench/run.sh (lib.sh loaded).
qx=$KILN_ROOT/build/bin/quantize-export
fix=$KILN_ROOT/build/tests/tools/qx_fixture
[ -x "$qx" ] && [ -x "$fix" ] || { echo "bench_export: build quantize-export and qx_fixture (make unit)" >&2; return 1; }
bx=$(mktemp -d)
# dim 512, 8 layers, FFN 1536: every row length fits Q4_K's 256 block.
"$fix" model "$bx/big" 1 0 512 8 1536 2>/dev/null
wbytes=$(( $(stat -c %s "$bx/big/model.safetensors") ))
# Wall time (bench_one) suffers on a loaded machine; the CPU time (user + sys) of one more run
# is reported beside it.
for t in f16 q8_0 q4_0 q4_k; do
    bench_one "export_gguf_$t" "$wbytes" "$qx gguf -q --model $bx/big --type $t -o $bx/big.gguf"
    cpu=$( { /usr/bin/time -f '%U %S' "$qx" gguf -q --model "$bx/big" --type $t -o "$bx/big.gguf"; } 2>&1 | tail -n 1 | awk '{ print $1 + $2 }')
    mbs=$(echo "$wbytes / $cpu / 1000000" | bc -l)
    printf '%-40s cpu  %8.3fs %9.1f MB/s (user + sys)\n' "export_gguf_${t}_cpu" "$cpu" "$mbs"
    bench_record "export_gguf_${t}_cpu" bytes "$wbytes" cpu_s "$cpu" cpu_mbs "$mbs"
done

ev=$KILN_ROOT/build/bin/evaluate
if [ ! -x "$ev" ]; then
    echo "bench_export: build/bin/evaluate not built; perplexity F32 vs Q8_0/Q4_0/Q4_K skipped"
else
    # A model with 256-wide rows, briefly trained on the fixture text; held out: other
    # sentences. A toy measurement (tiny corpus, high perplexity): the default pipeline scores
    # the real Q8_0 export with evaluate lm (lm-q8_0.jsonl).
    "$fix" model "$bx/small" 3 60 256 2 512 2>/dev/null
    for held in "Before the storm, the fisherman walked along the river to the old bridge." \
        "The children laughed when the dog jumped into the water after a stick, and the baker gave them warm bread." \
        "Later the moon rose over the hills, the wind was cold, and the people of the city went home to sleep after a long day at the market." \
        "A little girl found a blue stone by the sea and kept it in her pocket for many years."; do
        printf '{"input_ids":[%s]}\n' "$("$fix" ids "$bx/small" "$held" | tr ' ' ',')"
    done >"$bx/held.jsonl"
    base=
    for t in f32 q8_0 q4_0 q4_k; do
        "$qx" gguf -q --model "$bx/small" --type $t -o "$bx/s.$t.gguf"
        ppl=$("$ev" lm -q --model "$bx/s.$t.gguf" --tokenizer "$bx/small/tokenizer.json" "$bx/held.jsonl" | grep -o '"perplexity":[0-9.eE+-]*' | head -n 1 | cut -d: -f2)
        [ -n "$ppl" ] || { echo "bench_export: evaluate lm gave no perplexity for $t" >&2; continue; }
        [ -n "$base" ] || base=$ppl
        delta=$(echo "($ppl / $base - 1) * 100" | bc -l)
        printf '%-40s perplexity %10.4f  (%+.2f%% vs F32)\n' "export_ppl_$t" "$ppl" "$delta"
        bench_record "export_ppl_$t" perplexity "$ppl" delta_pct "$delta"
    done
fi
rm -rf "$bx"

# bench_quant: single-thread quantization throughput per type (MB/s of f32 input), vector path
# and scalar reference, from build/bench/bin/quant_speed. Targets (issue 10): Q8_0 >= 200 MB/s,
# Q4_K >= 100 MB/s per core. Sourced by tests/bench/run.sh (lib.sh loaded).
qs=$KILN_ROOT/build/bench/bin/quant_speed
[ -x "$qs" ] || { echo "bench_quant: $qs not built" >&2; return 1; }
while read -r name _ qmbs _ _ dmbs _; do
    printf '%-40s quantize %8.1f MB/s   dequantize %8.1f MB/s\n' "quant $name" "$qmbs" "$dmbs"
    bench_record "quant_$name" quantize_mbs "$qmbs" dequantize_mbs "$dmbs" path vector
done < <("$qs" 16)
while read -r name _ qmbs _ _ dmbs _; do
    printf '%-40s quantize %8.1f MB/s   (scalar reference)\n' "quant $name" "$qmbs"
    bench_record "quant_${name}_scalar" quantize_mbs "$qmbs" path scalar
done < <(QUANT_SCALAR=1 "$qs" 16 Q8_0 Q4_K)

# bench_quant: single-thread quantization throughput per type (MB/s of f32 input), vector path
# and scalar reference, from build/bench/bin/quant_speed; when llama.cpp's libggml-base.so is
# installed (tests/tools/nlc_install.sh), ggml's reference quantizer of the same type runs
# beside ours as the baseline (the bytes are identical: tests/unit/test_quant.c).
# Targets (issue 10): Q8_0 >= 200 MB/s, Q4_K >= 100 MB/s per core. Sourced by
# tests/bench/run.sh (lib.sh loaded).
qs=$KILN_ROOT/build/bench/bin/quant_speed
[ -x "$qs" ] || { echo "bench_quant: $qs not built" >&2; return 1; }
case "$(uname -m)" in x86_64) plat=linux-x64 ;; aarch64) plat=linux-arm64 ;; *) plat=none ;; esac
lib=$KILN_ROOT/build/cache/nlc/node_modules/@node-llama-cpp/$plat/bins/$plat/libggml-base.so
[ -f "$lib" ] || lib=
while read -r name _ qmbs _ _ dmbs _ _ gmbs _; do
    if [ -n "$gmbs" ]; then
        printf '%-40s quantize %8.1f MB/s   dequantize %8.1f MB/s | ggml ref %8.1f MB/s | ratio %.2fx\n' \
            "quant $name" "$qmbs" "$dmbs" "$gmbs" "$(echo "$qmbs / $gmbs" | bc -l)"
        bench_record "quant_$name" quantize_mbs "$qmbs" dequantize_mbs "$dmbs" ggml_ref_mbs "$gmbs"
    else
        printf '%-40s quantize %8.1f MB/s   dequantize %8.1f MB/s\n' "quant $name" "$qmbs" "$dmbs"
        bench_record "quant_$name" quantize_mbs "$qmbs" dequantize_mbs "$dmbs"
    fi
done < <(QUANT_GGML_LIB=$lib "$qs" 16)
while read -r name _ qmbs _; do
    printf '%-40s quantize %8.1f MB/s   (scalar path)\n' "quant $name" "$qmbs"
    bench_record "quant_${name}_scalar" quantize_mbs "$qmbs"
done < <(QUANT_SCALAR=1 "$qs" 16 Q8_0 Q4_K)

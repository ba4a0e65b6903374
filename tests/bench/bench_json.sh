# SPDX-License-Identifier: MIT
# bench_json: parse throughput of common/json (strict validation + top-level field index) against
# cJSON on ~100 MB of genrecords output (e-mail-like JSON Lines), side by side, medians.
# Sourced by tests/bench/run.sh with tests/bench/lib.sh.
#
#   1. whole command (bench_pair): read the file, split lines, parse every record;
#   2. in-process, parse only, input handed over in hot 1 MiB chunks (as rec delivers records):
#      medians of wall and CPU-time MB/s over REPS alternating runs;
#   3. the same, cold: parsing straight from 100 MB in RAM (memory bandwidth included).
# The CPU-time figures are the steady ones on a shared machine. Targets: >= 1 GB/s per core and
# >= 12x cJSON.
json_bin=$KILN_ROOT/build/bench/bin/json_parse
json_data=$BENCH_WORK/json-genrecords-100MB.jsonl
[ -s "$json_data" ] || "$KILN_ROOT/build/tests/tools/genrecords" --bytes 100000000 --seed 1 >"$json_data"
json_bytes=$(stat -c %s "$json_data")

bench_pair "json parse 100MB (whole command)" "$json_bytes" cJSON \
    "$json_bin --cjson $json_data" "$json_bin --kiln $json_data"

# json_inproc LABEL [json_parse options]: alternating runs, medians of the reported MB/s.
json_inproc() {
    local label=$1 i out; shift
    local kw=() kc=() cw=() cc=()
    for ((i = 0; i < REPS; i++)); do
        out=$("$json_bin" --cjson "$@" "$json_data") || return 1
        cw+=("$(sed -E 's/.* ([0-9.]+) MB\/s wall.*/\1/' <<<"$out")")
        cc+=("$(sed -E 's/.* ([0-9.]+) MB\/s cpu.*/\1/' <<<"$out")")
        out=$("$json_bin" --kiln "$@" "$json_data") || return 1
        kw+=("$(sed -E 's/.* ([0-9.]+) MB\/s wall.*/\1/' <<<"$out")")
        kc+=("$(sed -E 's/.* ([0-9.]+) MB\/s cpu.*/\1/' <<<"$out")")
    done
    local mkw mkc mcw mcc
    mkw=$(printf '%s\n' "${kw[@]}" | median); mkc=$(printf '%s\n' "${kc[@]}" | median)
    mcw=$(printf '%s\n' "${cw[@]}" | median); mcc=$(printf '%s\n' "${cc[@]}" | median)
    awk -v n="json parse only, $label" -v kw="$mkw" -v kc="$mkc" -v cw="$mcw" -v cc="$mcc" 'BEGIN {
        printf "%-40s ours %7.0f MB/s cpu %7.0f MB/s wall | cJSON %6.0f MB/s cpu %6.0f MB/s wall | ratio %.1fx cpu %.1fx wall\n",
            n, kc, kw, cc, cw, kc / cc, kw / cw }'
    bench_record "json parse only, $label" bytes "$json_bytes" reps "$REPS" \
        ours_mbps_cpu "$mkc" ours_mbps_wall "$mkw" cjson_mbps_cpu "$mcc" cjson_mbps_wall "$mcw" \
        ratio_cpu "$(echo "$mkc / $mcc" | bc -l)" ratio_wall "$(echo "$mkw / $mcw" | bc -l)"
}
json_inproc "hot 1 MiB chunks"
json_inproc "cold 100 MB in RAM" --cold

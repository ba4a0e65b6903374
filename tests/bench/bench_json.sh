# SPDX-License-Identifier: MIT
# bench_json: parse throughput of common/json (strict validation + top-level field index) against
# cJSON, side by side, medians, on e-mail records:
#   - the SpamAssassin corpus (build/data/spamassassin.jsonl.zst through tests/bench/prepare-spam.sh,
#     replicated to ~100 MB): real messages, ~6 KB each, mostly text;
#   - ~100 MB of genrecords output: synthetic records of ~2.2 KB with twice as much metadata (15
#     keys, numbers, arrays, nested objects), the harder case for us. It is also the input
#     when the corpus cannot be fetched (offline).
# Per input:
#   1. whole command (bench_pair): read the file, split lines, parse every record;
#   2. in-process, parse only, input handed over in hot 1 MiB chunks (as rec delivers records):
#      medians of wall and CPU-time MB/s over REPS alternating runs;
#   3. the same, cold: parsing straight from 100 MB in RAM (memory bandwidth included).
# Each timed run parses ~0.2 s worth (kiln goes over the input JSON_KILN_PASSES times, default
# 8): a single 100 MB pass takes kiln ~15 ms, too short to time on a shared machine.
# Ratios are medians of the per-pair ratios. The CPU-time figures are the steady ones on a
# shared machine. Targets: >= 1 GB/s per core and
# >= 12x cJSON.
json_bin=$KILN_ROOT/build/bench/bin/json_parse
gen_data=$BENCH_WORK/json-genrecords-100MB.jsonl
[ -s "$gen_data" ] || "$KILN_ROOT/build/tests/tools/genrecords" --bytes 100000000 --seed 1 >"$gen_data"
spam_data=$BENCH_WORK/json-spam-100MB.jsonl
if [ ! -s "$spam_data" ]; then
    spam_zst=$("$KILN_ROOT/tests/bench/prepare-spam.sh" 100 | tail -n 1) || spam_zst=
    if [ -s "$spam_zst" ] && zstd -dcq "$spam_zst" >"$spam_data.tmp"; then
        mv "$spam_data.tmp" "$spam_data"
    else
        rm -f "$spam_data.tmp"
        echo "bench_json: no SpamAssassin corpus (offline?): genrecords only" >&2
    fi
fi
: "${JSON_KILN_PASSES:=8}"
# The CPU both sides run on: JSON_CPU, else the last one.
json_cpu=${JSON_CPU:-$(($(nproc) - 1))} json_pin=
command -v taskset >/dev/null && json_pin="taskset -c $json_cpu" || json_cpu=

# json_inproc LABEL FILE [json_parse options]: alternating runs pinned to one CPU (the vCPUs of a
# shared machine differ by up to 1.6x in speed, and the scheduler picks either), medians of the
# reported MB/s and of the per-pair ratios.
json_inproc() {
    local label=$1 data=$2 i out; shift 2
    local kw=() kc=() cw=() cc=() rc=() rw=()
    for ((i = 0; i < REPS; i++)); do
        out=$($json_pin "$json_bin" --cjson "$@" "$data") || return 1
        cw+=("$(sed -E 's/.* ([0-9.]+) MB\/s wall.*/\1/' <<<"$out")")
        cc+=("$(sed -E 's/.* ([0-9.]+) MB\/s cpu.*/\1/' <<<"$out")")
        out=$($json_pin "$json_bin" --kiln --reps "$JSON_KILN_PASSES" "$@" "$data") || return 1
        kw+=("$(sed -E 's/.* ([0-9.]+) MB\/s wall.*/\1/' <<<"$out")")
        kc+=("$(sed -E 's/.* ([0-9.]+) MB\/s cpu.*/\1/' <<<"$out")")
        rc+=("$(echo "${kc[i]} / ${cc[i]}" | bc -l)"); rw+=("$(echo "${kw[i]} / ${cw[i]}" | bc -l)")
    done
    local mkw mkc mcw mcc mrc mrw
    mkw=$(printf '%s\n' "${kw[@]}" | median); mkc=$(printf '%s\n' "${kc[@]}" | median)
    mcw=$(printf '%s\n' "${cw[@]}" | median); mcc=$(printf '%s\n' "${cc[@]}" | median)
    mrc=$(printf '%s\n' "${rc[@]}" | median); mrw=$(printf '%s\n' "${rw[@]}" | median)
    awk -v n="json parse only, $label" -v kw="$mkw" -v kc="$mkc" -v cw="$mcw" -v cc="$mcc" \
        -v rc="$mrc" -v rw="$mrw" -v la="$(loadavg)" 'BEGIN {
        printf "%-44s ours %6.0f MB/s cpu %6.0f MB/s wall | cJSON %4.0f MB/s cpu %4.0f MB/s wall | ratio %.1fx cpu %.1fx wall | load %s\n",
            n, kc, kw, cc, cw, rc, rw, la }'
    bench_record "json parse only, $label" bytes "$(stat -c %s "$data")" reps "$REPS" \
        kiln_passes "$JSON_KILN_PASSES" cpu "${json_cpu:-any}" \
        ours_mbps_cpu "$mkc" ours_mbps_wall "$mkw" cjson_mbps_cpu "$mcc" cjson_mbps_wall "$mcw" \
        ratio_cpu "$mrc" ratio_wall "$mrw"
}

# json_case NAME FILE: the three measurements on one input.
json_case() {
    local name=$1 data=$2
    bench_pair "json parse $name (whole command)" "$(stat -c %s "$data")" cJSON \
        "$json_bin --cjson $data" "$json_bin --kiln $data"
    json_inproc "$name, hot 1 MiB chunks" "$data"
    json_inproc "$name, cold 100 MB in RAM" "$data" --cold
}
[ -s "$spam_data" ] && json_case spamassassin "$spam_data"
json_case genrecords "$gen_data"

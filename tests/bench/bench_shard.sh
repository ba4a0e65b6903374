# shard benchmarks (sourced by tests/bench/run.sh with lib.sh): near-dedupe over 8 shards on
# the machine's cores against one `dedupe` process on the same data.
#   wall: the four phases (sign ×8, bucket ×8, cluster, apply ×8, two tasks at a time) vs the
#   single run, alternating, REPS times, medians (target: ≤ 1.3×); shard split and merge are
#   reported separately (they are one pass each over the data, done once per pipeline);
#   memory: the largest peak RSS of any one process of the sharded run vs the single run's
#   peak (target: ≤ 1/4);
#   CPU: user + system seconds of every process (GNU time), per phase summed over its tasks
#   with the phase's largest peak RSS, medians over the runs. On a machine other jobs keep
#   busy (load average above the core count) a session gets a share of the cores whatever its
#   thread count, so the wall ratio then tends to the CPU ratio; both are printed, with the
#   load average.
# Input: genrecords' e-mail-like records (every text distinct: the worst case for near mode)
# with every 10th record repeated later with one word changed (near duplicates).
# SHARD_BENCH_BYTES sets the size (default 200 MB).
TOOLS=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools
bytes=${SHARD_BENCH_BYTES:-200000000}
N=8
J=${SHARD_BENCH_JOBS:-2}
IN=$BENCH_WORK/shard-input-$bytes.jsonl.zst
if [ ! -s "$IN" ]; then
    "$TOOLS/genrecords" --bytes "$bytes" |
        awk '{ print } NR % 10 == 0 { sub(/"id":"/, "\"id\":\"near-"); sub(/ the /, " a "); held[NR] = $0 }
             END { for (k in held) print held[k] }' | zstd -q -3 -o "$IN.part" && mv "$IN.part" "$IN"
fi
raw=$(zstd -dc "$IN" | wc -c)
recs=$(zstd -dc "$IN" | wc -l)
echo "shard: input $raw bytes uncompressed, $recs records, $N shards, $J tasks at a time"
W=$BENCH_WORK/shard-run
rm -rf "$W" && mkdir -p "$W/parts"
/usr/bin/time -f '%M %U %S' -o "$W/rss-split" \
    shard split -q -n $N -o "$W/parts/in-{}.jsonl.zst" "$IN"

# Runs a phase's tasks (command with {} = task), J at a time, each under /usr/bin/time;
# appends each task's peak RSS (kB), CPU seconds and phase name to $W/rss.
phase() {
    local name=$1 n=$2 cmd=$3
    seq 0 $((n - 1)) | xargs -P "$J" -I{} /usr/bin/time -f "%M %U %S $name" -a -o "$W/rss" \
        bash -c "$cmd"
}
sharded_run() {
    rm -rf "$W/dd" "$W/rss" "$W"/parts/out-*
    local dd="dedupe -q --work $W/dd --shards $N"
    phase sign $N "$dd --phase sign --shard {} $W/parts/in-{}.jsonl.zst" &&
        phase bucket $N "$dd --phase bucket --range {}" &&
        phase cluster 1 "$dd --phase cluster" &&
        phase apply $N "$dd --phase apply --shard {} -o $W/parts/out-{}.jsonl.zst $W/parts/in-{}.jsonl.zst"
}
single_run() {
    /usr/bin/time -f '%M %U %S' -o "$W/rss1" dedupe -q "$IN" -o "$W/single.jsonl.zst"
}
REPS=${REPS:-5}
PHASES="sign bucket cluster apply"
ws=() wo=() cs1=() css=() rs1=() rss=()
declare -A pc=() pr=() # per phase: CPU seconds and largest peak RSS (kB) of each run
for ((r = 0; r < REPS; r++)); do
    a=$(date +%s.%N); single_run; b=$(date +%s.%N)
    sharded_run; c=$(date +%s.%N)
    ws+=("$(echo "$b - $a" | bc -l)")
    wo+=("$(echo "$c - $b" | bc -l)")
    cs1+=("$(awk '{ print $2 + $3 }' "$W/rss1")")
    rs1+=("$(cut -d' ' -f1 "$W/rss1")")
    css+=("$(awk '{ c += $2 + $3 } END { print c }' "$W/rss")")
    rss+=("$(sort -n "$W/rss" | tail -n 1 | cut -d' ' -f1)")
    for p in $PHASES; do
        pc[$p]+="$(awk -v p="$p" '$4 == p { c += $2 + $3 } END { print c }' "$W/rss") "
        pr[$p]+="$(awk -v p="$p" '$4 == p && $1 > m { m = $1 } END { print m }' "$W/rss") "
    done
done
/usr/bin/time -f '%M %U %S' -o "$W/rss-merge" \
    shard merge -q -o "$W/merged.jsonl.zst" "$W"/parts/out-*.jsonl.zst
cmp "$W/merged.jsonl.zst" "$W/single.jsonl.zst" || echo "shard: MISMATCH: sharded output differs from dedupe's" >&2
m_single=$(printf '%s\n' "${ws[@]}" | median)
m_shard=$(printf '%s\n' "${wo[@]}" | median)
rss1=$(printf '%s\n' "${rs1[@]}" | median)
cpu1=$(printf '%s\n' "${cs1[@]}" | median)
rssmax=$(printf '%s\n' "${rss[@]}" | median)
cpus=$(printf '%s\n' "${css[@]}" | median)
la=$(loadavg)
awk -v s="$m_single" -v o="$m_shard" -v r1="$rss1" -v rm="$rssmax" -v c1="$cpu1" -v cs="$cpus" \
    -v la="$la" -v cores="$(nproc)" 'BEGIN {
    printf "near dedupe, 1 process vs %d shards: wall %.2fs vs %.2fs (%.2fx; target <= 1.3) | load %s, %d cores\n", '"$N"', s, o, o / s, la, cores
    printf "  CPU time: single %.2fs, all sharded processes %.2fs (%.2fx)\n", c1, cs, cs / c1
    printf "  peak RSS: single %.1f MB, largest sharded process %.1f MB (%.2f of single; target <= 0.25)\n", r1 / 1024, rm / 1024, rm / r1 }'
kv=()
for p in $PHASES; do
    c=$(tr ' ' '\n' <<<"${pc[$p]}" | grep . | median)
    m=$(tr ' ' '\n' <<<"${pr[$p]}" | grep . | median)
    awk -v p="$p" -v c="$c" -v m="$m" 'BEGIN { printf "    %-8s CPU %6.2fs, largest process %6.1f MB\n", p, c, m / 1024 }'
    kv+=("${p}_cpu_s" "$c" "${p}_max_rss_kb" "$m")
done
for p in split merge; do
    awk -v p="$p" '{ printf "    shard %-5s CPU %6.2fs, peak RSS %6.1f MB (once per pipeline, not in the wall time)\n", p, $2 + $3, $1 / 1024 }' "$W/rss-$p"
    kv+=("${p}_cpu_s" "$(awk '{ print $2 + $3 }' "$W/rss-$p")" "${p}_rss_kb" "$(cut -d' ' -f1 "$W/rss-$p")")
done
bench_record "shard near-dedupe 8 shards" bytes "$raw" records "$recs" reps "$REPS" \
    single_wall_s "$m_single" sharded_wall_s "$m_shard" \
    wall_ratio "$(echo "$m_shard / $m_single" | bc -l)" \
    single_peak_rss_kb "$rss1" max_process_peak_rss_kb "$rssmax" \
    rss_ratio "$(echo "$rssmax / $rss1" | bc -l)" single_cpu_s "$cpu1" sharded_cpu_s "$cpus" \
    cpu_ratio "$(echo "$cpus / $cpu1" | bc -l)" "${kv[@]}" load "$la"

# shard benchmarks (sourced by tests/bench/run.sh with lib.sh): near-dedupe over 8 shards on
# the machine's cores against one `dedupe` process on the same data.
#   wall: the four phases (sign ×8, bucket ×8, cluster, apply ×8, two tasks at a time) vs the
#   single run, alternating, REPS times, medians (target: ≤ 1.3×); shard split and merge are
#   reported separately (they are one pass each over the data, done once per pipeline);
#   memory: the largest peak RSS of any one process of the sharded run vs the single run's
#   peak (target: ≤ 1/4).
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
t0=$(date +%s.%N)
shard split -q -n $N -o "$W/parts/in-{}.jsonl.zst" "$IN"
t_split=$(echo "$(date +%s.%N) - $t0" | bc -l)

# Runs a phase's tasks (command with {} = task), J at a time, each under /usr/bin/time;
# appends each task's peak RSS (kB) and CPU seconds to $W/rss.
phase() {
    local n=$1 cmd=$2
    seq 0 $((n - 1)) | xargs -P "$J" -I{} /usr/bin/time -f '%M %U %S' -a -o "$W/rss" bash -c "$cmd"
}
sharded_run() {
    rm -rf "$W/dd" "$W/rss" "$W"/parts/out-*
    local dd="dedupe -q --work $W/dd --shards $N"
    phase $N "$dd --phase sign --shard {} $W/parts/in-{}.jsonl.zst" &&
        phase $N "$dd --phase bucket --range {}" &&
        phase 1 "$dd --phase cluster" &&
        phase $N "$dd --phase apply --shard {} -o $W/parts/out-{}.jsonl.zst $W/parts/in-{}.jsonl.zst"
}
single_run() {
    /usr/bin/time -f '%M %U %S' -o "$W/rss1" dedupe -q "$IN" -o "$W/single.jsonl.zst"
}
REPS=${REPS:-5}
ws=() wo=()
for ((r = 0; r < REPS; r++)); do
    a=$(date +%s.%N); single_run; b=$(date +%s.%N)
    sharded_run; c=$(date +%s.%N)
    ws+=("$(echo "$b - $a" | bc -l)")
    wo+=("$(echo "$c - $b" | bc -l)")
done
t0=$(date +%s.%N)
shard merge -q -o "$W/merged.jsonl.zst" "$W"/parts/out-*.jsonl.zst
t_merge=$(echo "$(date +%s.%N) - $t0" | bc -l)
cmp "$W/merged.jsonl.zst" "$W/single.jsonl.zst" || echo "shard: MISMATCH: sharded output differs from dedupe's" >&2
m_single=$(printf '%s\n' "${ws[@]}" | median)
m_shard=$(printf '%s\n' "${wo[@]}" | median)
rss1=$(cut -d' ' -f1 "$W/rss1")
cpu1=$(awk '{ print $2 + $3 }' "$W/rss1")
rssmax=$(sort -n "$W/rss" | tail -n 1 | cut -d' ' -f1)
cpus=$(awk '{ c += $2 + $3 } END { print c }' "$W/rss") # the last sharded run
awk -v s="$m_single" -v o="$m_shard" -v r1="$rss1" -v rm="$rssmax" -v sp="$t_split" -v mg="$t_merge" \
    -v c1="$cpu1" -v cs="$cpus" 'BEGIN {
    printf "near dedupe, 1 process vs %d shards: wall %.2fs vs %.2fs (%.2fx; target <= 1.3)\n", '"$N"', s, o, o / s
    printf "  peak RSS: single %.1f MB, largest sharded process %.1f MB (%.2f of single; target <= 0.25)\n", r1 / 1024, rm / 1024, rm / r1
    printf "  CPU time: single %.2fs, all sharded processes %.2fs (%.2fx)\n", c1, cs, cs / c1
    printf "  shard split %.2fs, shard merge %.2fs (once per pipeline)\n", sp, mg }'
bench_record "shard near-dedupe 8 shards" bytes "$raw" records "$recs" single_wall_s "$m_single" \
    sharded_wall_s "$m_shard" wall_ratio "$(echo "$m_shard / $m_single" | bc -l)" \
    single_peak_rss_kb "$rss1" max_process_peak_rss_kb "$rssmax" \
    rss_ratio "$(echo "$rssmax / $rss1" | bc -l)" single_cpu_s "$cpu1" sharded_cpu_s "$cpus" split_s "$t_split" merge_s "$t_merge"

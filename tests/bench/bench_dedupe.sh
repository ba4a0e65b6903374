# dedupe benchmarks (sourced by tests/bench/run.sh with lib.sh).
#   exact mode vs record pass-through, side by side (target: dedupe ≤ 1.4× the pass-through's
#   wall time, i.e. ratio ≥ 0.71);
#   near mode, default preset (datatrove 14×8, word 5-grams): MB/s of uncompressed input per
#   core of CPU time (target ≥ 25);
#   peak RSS per million records and table/spool bytes per record for both modes.
# Input: SpamAssassin records replicated to ≥ 200 MB with new ids (tests/bench/prepare-spam.sh)
# when that script is present, otherwise genrecords' e-mail-like records of the same size.
# DEDUPE_BENCH_BYTES overrides the size (default 210 MB). Replicated records are exact
# duplicates of each other, which near mode settles before shingling, so near mode is also
# measured on genrecords' records, where every text is distinct (the worst case).
TOOLS=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools
bytes_target=${DEDUPE_BENCH_BYTES:-210000000}
IN=
if [ -z "${DEDUPE_BENCH_BYTES:-}" ] && [ -x tests/bench/prepare-spam.sh ]; then
    IN=$(tests/bench/prepare-spam.sh 200 | tail -n 1) || IN=
    [ -s "$IN" ] && echo "dedupe: input $IN (SpamAssassin replicated)"
fi
if [ ! -s "$IN" ]; then
    echo "dedupe: SpamAssassin input not available; using genrecords (e-mail-like records)"
    IN=$BENCH_WORK/dedupe-input-$bytes_target.jsonl.zst
    if [ ! -s "$IN" ]; then
        "$TOOLS/genrecords" --bytes "$bytes_target" | zstd -q -3 -o "$IN.part" && mv "$IN.part" "$IN"
    fi
fi
raw=$(zstd -dc "$IN" | wc -c)
recs=$(zstd -dc "$IN" | wc -l)
echo "dedupe: input $(ls -l "$IN" | awk '{print $5}') bytes compressed, $raw uncompressed, $recs records"

# exact mode vs pass-through, same input, both writing zstd to /dev/null
if [ -x "$TOOLS/passthrough" ]; then
    bench_pair "dedupe exact vs passthrough" "$raw" "passthrough" \
        "'$TOOLS/passthrough' '$IN' -o /dev/null" \
        "dedupe --mode exact '$IN' -o /dev/null"
else
    echo "dedupe: tests/tools/passthrough not built; exact mode alone"
    bench_one "dedupe exact" "$raw" "dedupe --mode exact '$IN' -o /dev/null"
fi

# CPU time, peak RSS and the engine's own byte counts for one run of each mode.
dedupe_measure() { # NAME INPUT ARGS...
    local name=$1 IN=$2 raw t s; shift 2
    raw=$(zstd -dc "$IN" | wc -c)
    t=$(mktemp); s=$(mktemp)
    /usr/bin/time -f '%e %U %S %M' -o "$t" dedupe "$@" --stats "$s" "$IN" -o /dev/null || {
        echo "bench: dedupe $* failed" >&2; rm -f "$t" "$s"; return 1; }
    read -r wall user sys rss_kb <"$t"
    local tb sb nr
    tb=$(grep -o '"table_bytes_per_record":[0-9.e+-]*' "$s" | cut -d: -f2)
    sb=$(grep -o '"spool_bytes_per_record":[0-9.e+-]*' "$s" | cut -d: -f2)
    nr=$(grep -o '"records_in":[0-9]*' "$s" | cut -d: -f2)
    awk -v n="$name" -v b="$raw" -v w="$wall" -v u="$user" -v sy="$sys" -v r="$rss_kb" \
        -v nr="$nr" -v tb="$tb" -v sb="$sb" 'BEGIN {
        printf "%-40s wall %6.2fs  cpu %6.2fs  %6.1f MB/s per core  peak RSS %5.0f MB = %6.1f MB per million records  table %s B/rec  spool %s B/rec\n",
            n, w, u + sy, b / (u + sy) / 1e6, r / 1024, r / 1024 / nr * 1e6, tb, sb }'
    bench_record "$name" bytes "$raw" records "$nr" wall_s "$wall" cpu_s "$(echo "$user + $sys" | bc -l)" \
        mb_per_s_per_core "$(echo "$raw / ($user + $sys) / 1000000" | bc -l)" \
        peak_rss_kb "$rss_kb" rss_mb_per_million_records "$(echo "$rss_kb / 1024 / $nr * 1000000" | bc -l)" \
        table_bytes_per_record "$tb" spool_bytes_per_record "$sb"
    rm -f "$t" "$s"
}
dedupe_measure "dedupe exact (cpu, memory)" "$IN" --mode exact
dedupe_measure "dedupe near datatrove (cpu, memory)" "$IN" --mode near
DISTINCT=$BENCH_WORK/dedupe-distinct-$bytes_target.jsonl.zst
if [ ! -s "$DISTINCT" ]; then
    "$TOOLS/genrecords" --bytes "$bytes_target" --seed 11 | zstd -q -3 -o "$DISTINCT.part" &&
        mv "$DISTINCT.part" "$DISTINCT"
fi
dedupe_measure "dedupe near, distinct texts (cpu, memory)" "$DISTINCT" --mode near

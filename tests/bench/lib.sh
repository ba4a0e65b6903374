# Shared by the benchmark scripts (tests/bench/bench_*.sh); sourced by tests/bench/run.sh.
# Machines here are shared and noisy: every case runs side by side with its baseline,
# alternating, REPS times (default 5), and we report medians and ratios.
#
#   bench_pair NAME BYTES BASELINE_LABEL 'baseline command' 'our command'
#       runs both commands alternately, prints "NAME  ours MB/s  base MB/s  ratio" (ratio =
#       ours/baseline throughput, > 1 is faster) and appends a JSON line to $BENCH_OUT.
#   bench_one NAME BYTES 'command'      one command alone (no baseline), MB/s and peak RSS.
#   bench_record NAME KEY VALUE...      free-form measurement (key/value pairs) to $BENCH_OUT.
# Each printed line and JSON record carries the 1-minute load average at its end: with more
# runnable threads than cores (and the kernel's per-session autogroup scheduling) a command
# gets a share of the machine that no thread count changes, so wall-time ratios between
# thread counts only mean something at a load below the core count.
: "${REPS:=5}"
: "${BENCH_OUT:=$KILN_ROOT/build/bench/results.jsonl}"
mkdir -p "$(dirname "$BENCH_OUT")"

bench_run() { # prints "seconds rss_kb" with nanosecond wall time
    local t0 t1 rss f; f=$(mktemp)
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$f" bash -c "$1" >/dev/null 2>"$f.err" || {
        echo "bench: command failed: $1" >&2; head -n 5 "$f.err" >&2; rm -f "$f" "$f.err"; return 1; }
    t1=$(date +%s.%N)
    rss=$(tail -n 1 "$f"); rm -f "$f" "$f.err"
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }') $rss"
}

# The 1-minute load average (machines here are shared: every number is printed with it).
loadavg() { cut -d' ' -f1 /proc/loadavg; }

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

bench_pair() {
    local name=$1 bytes=$2 blabel=$3 base=$4 ours=$5 i tb=() to=() rb=() ro=() r
    for ((i = 0; i < REPS; i++)); do
        r=$(bench_run "$base") || return 1; tb+=("${r% *}"); rb+=("${r#* }")
        r=$(bench_run "$ours") || return 1; to+=("${r% *}"); ro+=("${r#* }")
    done
    local mb mo rssb rsso la
    mb=$(printf '%s\n' "${tb[@]}" | median); mo=$(printf '%s\n' "${to[@]}" | median)
    rssb=$(printf '%s\n' "${rb[@]}" | median); rsso=$(printf '%s\n' "${ro[@]}" | median)
    la=$(loadavg)
    awk -v n="$name" -v b="$bytes" -v mb="$mb" -v mo="$mo" -v bl="$blabel" -v rb="$rssb" -v ro="$rsso" -v la="$la" 'BEGIN {
        printf "%-40s ours %8.3fs %9.1f MB/s %7.0f MB | %-18s %8.3fs %9.1f MB/s | ratio %.2fx | load %s\n",
            n, mo, b/mo/1e6, ro/1024, bl, mb, b/mb/1e6, mb/mo, la }'
    printf '{"bench":"%s","bytes":%s,"reps":%s,"ours_s":%s,"ours_rss_kb":%s,"baseline":"%s","baseline_s":%s,"ratio":%s,"load":%s}\n' \
        "$name" "$bytes" "$REPS" "$mo" "$rsso" "$blabel" "$mb" "$(awk -v b="$mb" -v o="$mo" 'BEGIN { printf "%.6f", b / o }')" "$la" >>"$BENCH_OUT"
}

bench_one() {
    local name=$1 bytes=$2 cmd=$3 i t=() rs=() r
    for ((i = 0; i < REPS; i++)); do
        r=$(bench_run "$cmd") || return 1; t+=("${r% *}"); rs+=("${r#* }")
    done
    local m rss la
    m=$(printf '%s\n' "${t[@]}" | median); rss=$(printf '%s\n' "${rs[@]}" | median)
    la=$(loadavg)
    awk -v n="$name" -v b="$bytes" -v m="$m" -v r="$rss" -v la="$la" 'BEGIN {
        printf "%-40s ours %8.3fs %9.1f MB/s %7.0f MB | load %s\n", n, m, b/m/1e6, r/1024, la }'
    printf '{"bench":"%s","bytes":%s,"reps":%s,"ours_s":%s,"ours_rss_kb":%s,"load":%s}\n' \
        "$name" "$bytes" "$REPS" "$m" "$rss" "$la" >>"$BENCH_OUT"
}

bench_record() {
    local name=$1; shift
    local kv="" k v
    while [ $# -ge 2 ]; do
        k=$1 v=$2; shift 2
        if [[ $v =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; then
            [[ $v =~ ^-?\. ]] && v=${v/./0.} # bc prints .5: JSON needs 0.5
            kv+=",\"$k\":$v"
        else kv+=",\"$k\":\"$v\""; fi
    done
    printf '{"bench":"%s"%s}\n' "$name" "$kv" >>"$BENCH_OUT"
}

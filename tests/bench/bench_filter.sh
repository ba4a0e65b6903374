# bench_filter: filter throughput on e-mail records replicated to >= 200 MB (issue 4).
# Targets, per core: default rule set (gopher-quality + gopher-repetition + PII redaction)
# >= 40 MB/s; PII redaction alone >= 100 MB/s. Also PCRE2 JIT on vs off for regex rules.
# Sourced by tests/bench/run.sh (lib.sh loaded).
#
# Input: $FILTER_BENCH_INPUT (JSON Lines, e.g. the prepared SpamAssassin records), else
# records from build/tests/tools/genrecords; either is concatenated with itself until it holds
# >= $FILTER_BENCH_MB (default 200) MB, plain (uncompressed) so that zstd does not dominate.
# "MB/s" is wall time (bench_one, median of $REPS); "cpu MB/s" divides by user+sys CPU seconds
# of one run, which is what "per core" means on this shared, noisy machine (filter works on
# one thread; its reader and writer threads add their CPU time to the same total).
filter_bin=$KILN_BIN/filter
[ -x "$filter_bin" ] || { echo "bench_filter: $filter_bin not built" >&2; return 1; }
mb=${FILTER_BENCH_MB:-200}
src=${FILTER_BENCH_INPUT:-}
if [ -z "$src" ]; then
    src=$BENCH_WORK/filter-gen.jsonl
    [ -s "$src" ] || "$KILN_ROOT/build/tests/tools/genrecords" --bytes 20000000 --seed 4 >"$src"
fi
in=$BENCH_WORK/filter-input.jsonl
if [ ! -s "$in" ] || [ "$(stat -c %s "$in")" -lt $((mb * 1000000)) ] || [ "$in" -ot "$src" ]; then
    : >"$in"
    while [ "$(stat -c %s "$in")" -lt $((mb * 1000000)) ]; do cat "$src" >>"$in"; done
fi
bytes=$(stat -c %s "$in")
printf 'bench_filter: %s (%d MB, %d records)\n' "$(basename "$src")" $((bytes / 1000000)) "$(wc -l <"$in")"

rules=$BENCH_WORK/filter-regex.rules
cat >"$rules" <<'EOF'
no_lottery: text !~ /\b(?:lottery|jackpot|casino|viagra)\b/i
no_money:   text !~ /\$\$\$|\b\d{3,}\s*(?:dollars|usd)\b/i
subject:    text ~ /^Subject:\s*\S/m
no_click:   text !~ /click\s+here|unsubscribe/i
EOF
: >"$BENCH_WORK/filter-empty.rules"

# cpu_mbs NAME TARGET ARGS...: one run under GNU time; prints CPU MB/s against a target.
cpu_mbs() {
    local name=$1 target=$2; shift 2
    local t
    t=$( { /usr/bin/time -f '%U %S' "$filter_bin" --plain -o /dev/null "$@" "$in" >/dev/null; } 2>&1 | tail -n 1)
    awk -v n="$name" -v b="$bytes" -v t="$t" -v g="$target" 'BEGIN { split(t, a, " "); s = a[1] + a[2];
        r = b / s / 1e6; printf "%-40s cpu  %8.3fs %9.1f MB/s per core", n, s, r;
        if (g > 0) printf "   target >= %d: %s", g, (r >= g ? "PASS" : "FAIL"); printf "\n" }'
    bench_record "$name-cpu" bytes "$bytes" cpu_s "$(echo "$t" | awk '{print $1 + $2}')" target_mbs "$target"
}

cmd="$filter_bin --plain -o /dev/null"
bench_one "filter pass-through (no steps)" "$bytes" "$cmd -r $BENCH_WORK/filter-empty.rules $in"
bench_one "filter default (gopher x2 + redact)" "$bytes" "$cmd -b default --redact all $in"
cpu_mbs "filter default (gopher x2 + redact)" 40 -b default --redact all
bench_one "filter email + default" "$bytes" "$cmd -t email -b default --redact all $in"
cpu_mbs "filter email + default" 40 -t email -b default --redact all
bench_one "filter redact all" "$bytes" "$cmd --redact all $in"
cpu_mbs "filter redact all" 100 --redact all
cpu_mbs "filter c4 + fineweb" 0 -b c4,fineweb
bench_pair "filter regex rules, JIT on vs off" "$bytes" "JIT off" \
    "$cmd --no-jit -r $rules $in" "$cmd -r $rules $in"

# SPDX-License-Identifier: MIT
# bench_tokenize: tokenizer speed and memory (sourced by tests/bench/run.sh).
#  - cl100k_base encoding, 1 thread: tokenize vs the npm tiktoken 1.0.22 WASM encoder on the same
#    records in the same run (target ≥ 10×);
#  - 2 threads vs 1 thread (target ≥ 1.8×);
#  - a 1 MB run of one character and 1 MB of random bytes (must stay roughly linear);
#  - training a vocabulary of 8,192 on 30, 60 and 120 MB of text: time and peak RSS.
# Text: tests/tools/tok_gentext (deterministic English-like records). Needs node and the
# vocabulary cache (tests/tools/tiktoken_cache.sh); without them the comparisons are skipped.
# TOK_TRAIN_MB (default "30 60 120") picks the training sizes; empty skips training:
#   TOK_TRAIN_MB= make bench BENCH=tokenize
# CPU seconds (user + sys) of a command: on a shared, loaded machine wall time can be several
# times the CPU time, so the encode comparison is also reported in CPU time.
tok_cpu() {
    /usr/bin/time -f '%U %S' -o "$tok_work/cpu" bash -c "$1" >/dev/null 2>&1 || return 1
    awk '{print $1 + $2}' "$tok_work/cpu"
}
tok_tools=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools
tok_work=$BENCH_WORK/tokenize
mkdir -p "$tok_work"
[ -f "$tok_work/text20.jsonl" ] || "$tok_tools/tok_gentext" 20000000 3 --records >"$tok_work/text20.jsonl"
tok_bytes=$(stat -c %s "$tok_work/text20.jsonl")
tok_vocab=$("$KILN_ROOT/tests/tools/tiktoken_cache.sh" 2>"$tok_work/cache.err") || tok_vocab=
if [ -z "$tok_vocab" ]; then
    echo "bench_tokenize: SKIPPED the cl100k comparisons: $(cat "$tok_work/cache.err")"
else
    tok_pkg=$tok_work/node
    if [ ! -f "$tok_pkg/package/tiktoken.js" ]; then
        mkdir -p "$tok_pkg"
        tar -xzf "$KILN_ROOT/build/cache/tiktoken-1.0.22.tgz" -C "$tok_pkg"
    fi
    # Load time alone (a tiny input), so the encode throughput can be read net of it.
    printf '{"text":"x"}\n' >"$tok_work/one.jsonl"
    bench_one "tokenize load cl100k_base.json" 1090747 \
        "tokenize encode --tokenizer $tok_vocab/cl100k_base.json --plain -o /dev/null $tok_work/one.jsonl"
    if command -v node >/dev/null; then
        tok_node="node $KILN_ROOT/tests/tools/tiktoken_encode.js $tok_pkg/package cl100k_base $tok_work/text20.jsonl"
        tok_ours="tokenize encode --tokenizer $tok_vocab/cl100k_base.json --threads 1 --plain -o /dev/null $tok_work/text20.jsonl"
        bench_pair "encode cl100k 1 thread (20 MB)" "$tok_bytes" "tiktoken-wasm" "$tok_node" "$tok_ours"
        cb=$(tok_cpu "$tok_node") && co=$(tok_cpu "$tok_ours") &&
            awk -v b="$tok_bytes" -v cb="$cb" -v co="$co" 'BEGIN {
                printf "%-40s ours %8.3fs %9.1f MB/s CPU | tiktoken-wasm %8.3fs %9.1f MB/s CPU | ratio %.1fx\n",
                    "encode cl100k 1 thread, CPU time", co, b/co/1e6, cb, b/cb/1e6, cb/co }' &&
            bench_record "encode cl100k cpu" bytes "$tok_bytes" ours_cpu_s "$co" baseline_cpu_s "$cb"
    else
        echo "bench_tokenize: SKIPPED tiktoken-wasm baseline: node not installed"
    fi
    bench_pair "encode cl100k 2 threads vs 1" "$tok_bytes" "1 thread" \
        "tokenize encode --tokenizer $tok_vocab/cl100k_base.json --threads 1 --plain -o /dev/null $tok_work/text20.jsonl" \
        "tokenize encode --tokenizer $tok_vocab/cl100k_base.json --threads 2 --plain -o /dev/null $tok_work/text20.jsonl"
    # The same net of the serial start (process start, ~20 ms CPU of it the dynamic loader, and
    # loading the vocabulary, ~6 ms CPU), from the medians just recorded: the start is paid
    # once whatever the thread count, so it bounds the whole-command ratio (Amdahl). Wall-time
    # scaling only shows when the load average is below the core count (see lib.sh).
    tok_t2=$(tail -n 1 "$BENCH_OUT" | sed -E 's/.*"ours_s":([0-9.e+-]+).*/\1/')
    tok_t1=$(tail -n 1 "$BENCH_OUT" | sed -E 's/.*"baseline_s":([0-9.e+-]+).*/\1/')
    tok_load=$(grep '"bench":"tokenize load cl100k_base.json"' "$BENCH_OUT" | tail -n 1 |
        sed -E 's/.*"ours_s":([0-9.e+-]+).*/\1/')
    awk -v t1="$tok_t1" -v t2="$tok_t2" -v l="$tok_load" -v la="$(loadavg)" 'BEGIN {
        printf "%-40s 1 thread %6.3fs, 2 threads %6.3fs, load %.3fs | ratio %.2fx | load avg %s\n",
            "encode cl100k 2 threads vs 1, net", t1 - l, t2 - l, l, (t1 - l) / (t2 - l), la }'
    bench_record "encode cl100k 2 threads vs 1, net of load" one_thread_s "$tok_t1" \
        two_threads_s "$tok_t2" load_s "$tok_load" ratio "$(echo "($tok_t1 - $tok_load) / ($tok_t2 - $tok_load)" | bc -l)"
    # CPU time of both (what a second thread costs in total work; on a loaded machine this is
    # the number that does not depend on the scheduler's share).
    c1=$(tok_cpu "tokenize encode --tokenizer $tok_vocab/cl100k_base.json --threads 1 --plain -o /dev/null $tok_work/text20.jsonl") &&
        c2=$(tok_cpu "tokenize encode --tokenizer $tok_vocab/cl100k_base.json --threads 2 --plain -o /dev/null $tok_work/text20.jsonl") &&
        cl=$(tok_cpu "tokenize encode --tokenizer $tok_vocab/cl100k_base.json --plain -o /dev/null $tok_work/one.jsonl") &&
        awk -v c1="$c1" -v c2="$c2" -v cl="$cl" -v la="$(loadavg)" 'BEGIN {
            printf "%-40s 1 thread %6.3fs, 2 threads %6.3fs, start+load %.3fs CPU | load avg %s\n",
                "encode cl100k CPU time by threads", c1, c2, cl, la }' &&
        bench_record "encode cl100k cpu by threads" one_thread_cpu_s "$c1" two_threads_cpu_s "$c2" load_cpu_s "$cl"
    head -c 1000000 /dev/zero | tr '\0' 'a' >"$tok_work/run.bin"
    head -c 1000000 /dev/urandom >"$tok_work/random.bin"
    bench_one "encode cl100k 1 MB run of 'a'" 1000000 \
        "tokenize encode --raw --tokenizer $tok_vocab/cl100k_base.json --plain -o /dev/null $tok_work/run.bin"
    bench_one "encode cl100k 1 MB random bytes" 1000000 \
        "tokenize encode --raw --tokenizer $tok_vocab/cl100k_base.json --plain -o /dev/null $tok_work/random.bin"
fi
# Training: 30, 60, 120 MB (one run each: they are long).
for mb in ${TOK_TRAIN_MB-30 60 120}; do
    f=$tok_work/train$mb.jsonl
    [ -f "$f" ] || "$tok_tools/tok_gentext" $((mb * 1000000)) 11 --records >"$f"
    REPS=1 bench_one "train 8192 on $mb MB" "$(stat -c %s "$f")" \
        "tokenize train --vocab-size 8192 -o $tok_work/trained$mb.json $f"
done

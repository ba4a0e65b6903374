# SPDX-License-Identifier: MIT
# bench_balance.sh — balance --split throughput on a large stream (the SpamAssassin corpus
# replicated to ≥ 200 MB, tests/bench/prepare-spam.sh), beside the I/O floor: decompressing and
# recompressing the same stream with the zstd CLI at the same level. Also the one-pass mode
# (--stats only) and an oversampling run. Sourced by tests/bench/run.sh (lib.sh loaded).
in=$("$KILN_ROOT/tests/bench/prepare-spam.sh" 200) || { echo "bench_balance: no input (offline?)"; return 0; }
bytes=$(zstd -dc "$in" | wc -c)
split_dir=$BENCH_WORK/balance-split
bench_pair "balance --split 80/10/10 (200 MB)" "$bytes" "zstd -dc | zstd -3" \
    "zstd -dc '$in' | zstd -q -3 -c > /dev/null" \
    "balance --no-progress --seed 1 --split train=0.8,valid=0.1,test=0.1 --split-dir '$split_dir' '$in'"
bench_pair "balance pass-through --stats (200 MB)" "$bytes" "zstd -dc | zstd -3" \
    "zstd -dc '$in' | zstd -q -3 -c > /dev/null" \
    "balance --no-progress --stats '$BENCH_WORK/balance.stats.json' '$in' > /dev/null"
bench_one "balance --strategy oversample (200 MB)" "$bytes" \
    "balance --no-progress --strategy oversample '$in' > /dev/null"
rm -rf "$split_dir"

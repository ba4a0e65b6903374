#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# prepare-spam.sh — bench input shared by the stages' benches: the SpamAssassin corpus as
# records (build/data/spamassassin.jsonl.zst, via `make datasets` rules: fetch + ingest) and a
# copy replicated to at least 200 MB of JSON with new ids ("<id>#rep<k>", k = 0..), written to
# $BENCH_WORK/spam-200mb.jsonl.zst (default build/bench/work). Idempotent: an existing output
# is kept. Needs the network once (or a cached tarball in $KILN_CACHE).
#   tests/bench/prepare-spam.sh [MIN_MB]      (default 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
min_mb=${1:-200}
work=${BENCH_WORK:-build/bench/work}
out=$work/spam-${min_mb}mb.jsonl.zst
src=build/data/spamassassin.jsonl.zst
mkdir -p "$work"
[ -s "$out" ] && { echo "$out"; exit 0; }
[ -s "$src" ] || make --no-print-directory "$src" >&2
size=$(zstd -dc "$src" | wc -c)
reps=$(( (min_mb * 1000000 + size - 1) / size ))
echo "prepare-spam: $src is $size bytes of JSON; $reps replicas" >&2
tmp=$out.tmp
trap 'rm -f "$tmp"' EXIT
for ((k = 0; k < reps; k++)); do
    # ingest writes "id" first and member paths need no JSON escaping
    zstd -dc "$src" | sed "s/^{\"id\":\"\([^\"]*\)\"/{\"id\":\"\1#rep$k\"/"
done | zstd -q -3 -T0 -o "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "prepare-spam: $(zstd -dc "$out" | wc -c) bytes, $(zstd -dc "$out" | wc -l) records" >&2
echo "$out"

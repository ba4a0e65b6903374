#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tiktoken_cache.sh: puts the real gpt2 / cl100k_base / o200k_base vocabularies (the npm
# package tiktoken 1.0.22, MIT) in the build cache for the exact-ids tests and benchmarks.
# They are large (0.5-2.3 MB each), so they are never committed.
#
#   tests/tools/tiktoken_cache.sh [CACHE_DIR]     (default build/cache)
#
# Runs `npm pack` once, checks the tarball against the pinned sha512 integrity, extracts
# package/encoders/{gpt2,cl100k_base,o200k_base}.json to CACHE_DIR/tiktoken-1.0.22/ and prints
# that directory. Exit 0 ok; 3 when npm or the registry is unavailable (callers skip, loudly);
# 1 when the tarball does not match the pin (never used).
set -euo pipefail
VERSION=1.0.22
INTEGRITY='sha512-PKvy1rVF1RibfF3JlXBSP0Jrcw2uq3yXdgcEXtKTYn3QJ/cBRBHDnrJ5jHky+MENZ6DIPwNUGWpkVx+7joCpNA=='
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${1:-$root/build/cache}
dir=$cache/tiktoken-$VERSION
tgz=$cache/tiktoken-$VERSION.tgz
if [ -f "$dir/cl100k_base.json" ] && [ -f "$dir/o200k_base.json" ] && [ -f "$dir/gpt2.json" ]; then
    echo "$dir"
    exit 0
fi
mkdir -p "$cache"
if [ ! -f "$tgz" ]; then
    command -v npm >/dev/null || { echo "tiktoken_cache: npm not installed" >&2; exit 3; }
    tmp=$(mktemp -d "$cache/pack.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    if ! (cd "$tmp" && timeout 120 npm pack "tiktoken@$VERSION" --silent >/dev/null 2>"$tmp/err"); then
        echo "tiktoken_cache: npm pack tiktoken@$VERSION failed: $(head -c 300 "$tmp/err")" >&2
        exit 3
    fi
    mv "$tmp/tiktoken-$VERSION.tgz" "$tgz.part"
    got="sha512-$(openssl dgst -sha512 -binary "$tgz.part" | base64 -w0)"
    if [ "$got" != "$INTEGRITY" ]; then
        rm -f "$tgz.part"
        echo "tiktoken_cache: integrity mismatch: got $got, pinned $INTEGRITY" >&2
        exit 1
    fi
    mv "$tgz.part" "$tgz"
fi
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || { echo "tiktoken_cache: $tgz does not match the pin" >&2; exit 1; }
mkdir -p "$dir.part"
for e in gpt2 cl100k_base o200k_base; do
    tar -xzOf "$tgz" "package/encoders/$e.json" >"$dir.part/$e.json"
done
rm -rf "$dir"
mv "$dir.part" "$dir"
echo "$dir"

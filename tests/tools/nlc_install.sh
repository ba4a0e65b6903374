#!/usr/bin/env bash
# nlc_install.sh: makes llama.cpp available to tests through the npm package node-llama-cpp,
# pinned to 3.21.1 with its prebuilt CPU binaries for this platform, installed (not committed)
# into ${KILN_NLC_DIR:-build/cache/nlc}. Optional dependencies (the CUDA and Vulkan builds,
# ~600 MB) are left out. Exit 0 when installed (or already there), 1 when npm is missing or
# the registry cannot be reached — callers skip their interop tests then.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${KILN_NLC_DIR:-$root/build/cache/nlc}
version=3.21.1
case "$(uname -m)" in
x86_64) plat=linux-x64 ;;
aarch64) plat=linux-arm64 ;;
*) echo "nlc_install: no prebuilt llama.cpp for $(uname -m)" >&2; exit 1 ;;
esac
if [ -f "$dir/node_modules/node-llama-cpp/package.json" ] &&
    grep -q "\"version\": \"$version\"" "$dir/node_modules/node-llama-cpp/package.json" &&
    [ -d "$dir/node_modules/@node-llama-cpp/$plat/bins" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "nlc_install: npm not found" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"name":"kiln-nlc","private":true}' >package.json
if ! timeout "${NLC_INSTALL_TIMEOUT:-600}" npm install --no-audit --no-fund --omit=optional \
    "node-llama-cpp@$version" "@node-llama-cpp/$plat@$version" >install.log 2>&1; then
    echo "nlc_install: npm install failed (see $dir/install.log)" >&2
    exit 1
fi

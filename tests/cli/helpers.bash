# Shared helpers for the bats CLI and end-to-end tests. Load with: load ../cli/helpers
# Every test runs in its own scratch folder ($BATS_TEST_TMPDIR); stage binaries are on PATH.
: "${KILN_ROOT:=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}"
: "${KILN_BIN:=$KILN_ROOT/build/bin}"
PATH=$KILN_BIN:$PATH
DATA=$KILN_ROOT/tests/data

setup() {
    cd "$BATS_TEST_TMPDIR" || exit 1
}

# expect_status N: fail with the captured output when $status differs.
expect_status() {
    if [ "$status" -ne "$1" ]; then
        echo "expected exit $1, got $status; output:" >&2
        printf '%s\n' "$output" >&2
        return 1
    fi
}

# expect_output_contains TEXT
expect_output_contains() {
    if [[ "$output" != *"$1"* ]]; then
        echo "output lacks: $1" >&2
        printf 'output was:\n%s\n' "$output" >&2
        return 1
    fi
}

# no_tmp_left DIR: no temporary output remains in DIR (default .): no *.tmp file (atomic -o
# FILE) and no .kiln-tmp-* directory (atomic output directories)
no_tmp_left() {
    local left
    left=$(find "${1:-.}" \( -name '*.tmp' -o -name '.kiln-tmp-*' \) -print)
    [ -z "$left" ] || { echo "$left" >&2; return 1; }
}

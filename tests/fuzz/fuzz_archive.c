// SPDX-License-Identifier: MIT
// libFuzzer target for common/archive's reader: any bytes as an archive (tar, zip, 7z, cpio,
// any compression). Every member is read with small limits; the reader must fail cleanly
// (an error message, no crash, no leak) and never return an unsafe path.
#include "archive.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

// libarchive reserves buffers sized by header fields before reading them: its read-ahead
// doubles up to the size a header claims, so a cpio name length of 2 GiB allocates 4 GiB of
// address space (and one near 4 GiB, 8 GiB), then fails as truncated without touching it.
// That is virtual memory, not a leak or a crash: allow single mallocs below 16 GiB while the
// resident-memory limit of the run still applies. (tests/unit/test_archive.c checks that such
// a header gets a clear error.)
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char *args[64];
    static char limit[] = "-malloc_limit_mb=16384";
    int n = *argc < 62 ? *argc : 62;
    for (int i = 0; i < n; i++)
        args[i] = (*argv)[i];
    args[n] = limit;
    args[n + 1] = NULL;
    *argc = n + 1;
    *argv = args;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arc_limits lim = {
        .max_member = 1 << 20, .max_total = 4 << 20, .max_ratio = 1000, .min_ratio_bytes = 1 << 16};
    struct kerr err;
    struct arc_reader *r = arc_reader_open_memory(data, size, "fuzz", &lim, &err);
    if (!r)
        return 0;
    struct buf b = {0};
    struct arc_member m;
    while (arc_reader_next(r, &m, &err) == 1) {
        if (!arc_path_safe(m.path))
            abort();
        buf_reset(&b);
        if (arc_reader_read(r, &b, &err) < 0)
            break;
        if (b.len > lim.max_member)
            abort();
    }
    buf_free(&b);
    arc_reader_close(r);
    return 0;
}

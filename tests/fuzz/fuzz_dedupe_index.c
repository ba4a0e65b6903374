// SPDX-License-Identifier: MIT
// libFuzzer target for the dedupe index loader (common/dedup_index.c): any byte string is
// written to a memory file and read record by record to the end; the loader must reject or
// accept it without crashing, leaking or reading out of bounds, and every accepted record's
// shingles must be readable.
#include "dedup_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int mfd = memfd_create("ddx", 0);
    if (mfd < 0)
        return 0;
    if (write(mfd, data, size) != (ssize_t)size) {
        close(mfd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
    struct kerr err;
    struct dedup_index_meta meta;
    struct dedup_index_reader *r = dedup_index_open(path, &meta, &err);
    if (r) {
        struct dedup_index_rec rec;
        int fd = dedup_index_take_fd(r);
        uint64_t *sh = NULL;
        while (dedup_index_next(r, &rec, &err) == 1) {
            sh = realloc(sh, ((size_t)rec.n_shingles + 1) * sizeof *sh);
            if (dedup_index_read_shingles(fd, rec.shingle_off, rec.n_shingles, sh, &err) != 0)
                abort(); // a record the reader accepted lies inside the file
            for (uint32_t i = 1; i < rec.n_shingles; i++)
                if (sh[i] <= sh[i - 1])
                    abort();
        }
        free(sh);
        close(fd);
        dedup_index_close(r);
    }
    close(mfd);
    return 0;
}

// SPDX-License-Identifier: MIT
// fuzz_rec: libFuzzer target for the record reader on arbitrary bytes (plain, or anything that
// starts like zstd, gzip, xz or bzip2), read from a memfd through /proc/self/fd. The first
// input byte is a control byte: its low 7 bits choose the reader's buffer size (0 = 64 KiB, as
// the default 1 MiB only slows the fuzzer; else 1..127 bytes, so lines span buffers), its high
// bit a 64-byte line cap. Any input must
// be handled without a crash, hang or sanitizer report, and (abort otherwise):
//   - lines are numbered 1, 2, 3... and each offset is the previous one plus its length + 1;
//   - no line holds a NUL or exceeds the cap; rec_reader_bytes_out is the next offset;
//   - for plain input the lines and their newlines are exactly a prefix of the input, and the
//     whole input when the reader ends cleanly;
//   - every error message starts with the reader's name and is repeated by the next call;
//   - rec_reader_next_obj accepts a line exactly when json_obj_parse does.
#include "json.h"
#include "rec.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define REQUIRE(c)                                                                             \
    do {                                                                                       \
        if (!(c))                                                                              \
            abort();                                                                           \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = data[0] & 0x7f;
    size_t cap = data[0] & 0x80 ? 64 : 0;
    data++;
    size--;
    int fd = memfd_create("fuzz_rec", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, data, size) == (ssize_t)size);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct kerr err;
    struct rec_reader *r = rec_reader_open(path, &err);
    REQUIRE(r != NULL);
    rec_reader_set_chunk(r, chunk ? chunk : 65536);
    if (cap)
        rec_reader_set_max_line(r, cap);
    bool plain = size == 0 || (data[0] != 0x28 && data[0] != 0x1f && data[0] != 0xfd &&
                               data[0] != 'B' && (data[0] & 0xf0) != 0x50);
    struct json_obj o, o2;
    json_obj_init(&o);
    json_obj_init(&o2);
    struct rec_line l;
    uint64_t n = 0, off = 0;
    int rc;
    for (;;) {
        struct json_error je;
        bool as_obj = n % 2 == 1;
        rc = as_obj ? rec_reader_next_obj(r, &l, &o, &err) : rec_reader_next(r, &l, &err);
        if (rc == -1 && as_obj && strstr(err.msg, ": invalid JSON: ")) {
            // A framing success the parser refused: the line was delivered and counted.
            REQUIRE(l.lineno == n + 1 && l.offset == off);
            REQUIRE(json_obj_parse(&o2, l.p, l.n, &je) == -1);
            n++;
            off += l.n + 1;
            continue;
        }
        if (rc != 1)
            break;
        REQUIRE(l.lineno == n + 1 && l.offset == off);
        REQUIRE(memchr(l.p, 0, l.n) == NULL);
        REQUIRE(!cap || l.n <= cap);
        if (plain)
            REQUIRE(off + l.n < size && memcmp(data + off, l.p, l.n) == 0 &&
                    data[off + l.n] == '\n');
        if (as_obj)
            REQUIRE(json_obj_parse(&o2, l.p, l.n, &je) == 0 && o2.n == o.n);
        n++;
        off += l.n + 1;
        REQUIRE(rec_reader_bytes_out(r) == off);
    }
    if (rc == 0) {
        if (plain)
            REQUIRE(off == size && size > 0);
    } else {
        REQUIRE(rc == -1);
        REQUIRE(strncmp(err.msg, path, strlen(path)) == 0);
        struct kerr again;
        REQUIRE(rec_reader_next(r, &l, &again) == -1 && strcmp(again.msg, err.msg) == 0);
    }
    json_obj_free(&o);
    json_obj_free(&o2);
    rec_reader_close(r);
    close(fd);
    return 0;
}

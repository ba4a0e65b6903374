// SPDX-License-Identifier: MIT
// Unit tests for common/rec: the reader on plain, zstd, gzip, xz and bzip2 input (compressed
// inputs are made with the zstd/gzip/xz/bzip2 programs, which kiln's Debian dependencies
// install), line framing across buffer boundaries, line numbers and offsets, every reader
// error, the writer (round trips, zstd CLI compatibility, identical output for any chunk size,
// .tmp handling, write errors, refusal to write to a terminal) and stdin/pipe input.
#include "json.h"
#include "rec.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static const char *
tpath(const char *name)
{
    static char p[8][256];
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

static void
put_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static bool
exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

// Reads every line of path (chunk 0 = default) into out, each followed by '\n'. Returns the
// final status of rec_reader_next (0 at a clean end, -1 with err) and the line count in *nl.
static int
slurp(const char *path, size_t chunk, struct buf *out, uint64_t *nl, struct kerr *err)
{
    buf_reset(out);
    *nl = 0;
    struct rec_reader *r = rec_reader_open(path, err);
    if (!r)
        return -2;
    if (chunk)
        rec_reader_set_chunk(r, chunk);
    struct rec_line l;
    int rc;
    uint64_t off = 0;
    while ((rc = rec_reader_next(r, &l, err)) == 1) {
        ++*nl;
        if (l.lineno != *nl || l.offset != off) {
            fprintf(stderr, "line %llu: lineno %llu offset %llu, expected offset %llu\n",
                    (unsigned long long)*nl, (unsigned long long)l.lineno,
                    (unsigned long long)l.offset, (unsigned long long)off);
            rc = -3;
            break;
        }
        off += l.n + 1;
        buf_append(out, l.p, l.n);
        buf_putc(out, '\n');
    }
    if (rc == 0)
        CHECK_EQ_INT(rec_reader_bytes_out(r), off);
    rec_reader_close(r);
    return rc;
}

// A deterministic text of n lines of varied length (some empty, some long).
static void
make_lines(struct buf *b, int n, uint64_t seed)
{
    buf_reset(b);
    uint64_t x = seed;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (x >> 33) % 300;
        if (i % 97 == 5)
            len = 0;
        if (i % 211 == 7)
            len = 20000 + (x >> 40) % 5000;
        buf_printf(b, "{\"id\":%d,\"text\":\"", i);
        for (size_t k = 0; k < len; k++)
            buf_putc(b, (char)('a' + (x >> (k % 50)) % 26));
        buf_puts(b, "\"}\n");
    }
}

static void
test_plain_and_chunks(void)
{
    struct buf want, got;
    buf_init(&want);
    buf_init(&got);
    make_lines(&want, 400, 1);
    // Empty lines too: the reader frames, it does not judge.
    buf_puts(&want, "\n\n{}\r\n");
    put_file(tpath("a.jsonl"), want.p, want.len);
    size_t chunks[] = {0, 4093, 65536};
    for (size_t i = 0; i < KILN_ARRAY_LEN(chunks); i++) {
        struct kerr e;
        uint64_t nl;
        int rc = slurp(tpath("a.jsonl"), chunks[i], &got, &nl, &e);
        CHECK_MSG(rc == 0, "chunk %zu: rc %d", chunks[i], rc);
        CHECK_EQ_INT(nl, 403);
        CHECK(got.len == want.len && memcmp(got.p, want.p, want.len) == 0);
    }
    // Tiny buffers on a small text: every line spans buffers, some end exactly at one.
    const char small[] = "{}\n\n{\"a\":1}\n{\"text\":\"abcdefghijklmnopqrstuvwxyz\"}\n\n\n{ }\n";
    put_file(tpath("small.jsonl"), small, sizeof small - 1);
    for (size_t c = 1; c <= 9; c++) {
        struct kerr e;
        uint64_t nl;
        int rc = slurp(tpath("small.jsonl"), c, &got, &nl, &e);
        CHECK_MSG(rc == 0, "chunk %zu: rc %d", c, rc);
        CHECK_EQ_INT(nl, 7);
        CHECK_EQ_MEM(got.p, got.len, small, sizeof small - 1);
    }
    // The '\r' stays in the line.
    struct kerr e;
    struct rec_reader *r = rec_reader_open(tpath("a.jsonl"), &e);
    struct rec_line l;
    uint64_t n = 0;
    size_t lastn = 0;
    char last[8] = "";
    while (rec_reader_next(r, &l, &e) == 1) {
        n++;
        lastn = l.n;
        if (l.n < sizeof last)
            memcpy(last, l.p, l.n);
    }
    CHECK_EQ_INT(lastn, 3);
    CHECK(memcmp(last, "{}\r", 3) == 0);
    CHECK_EQ_INT(rec_reader_size(r), want.len);
    CHECK_EQ_INT(rec_reader_bytes_read(r), want.len);
    CHECK_EQ_STR(rec_reader_name(r), tpath("a.jsonl"));
    // After the end, still the end.
    CHECK_EQ_INT(rec_reader_next(r, &l, &e), 0);
    rec_reader_close(r);
    buf_free(&want);
    buf_free(&got);
}

static void
test_compressed_inputs(void)
{
    struct buf want, got;
    buf_init(&want);
    buf_init(&got);
    make_lines(&want, 300, 2);
    put_file(tpath("c.jsonl"), want.p, want.len);
    const char *progs[][2] = {
        {"zstd -q -c", "c.zst"}, {"zstd -q -19 -c", "c19.zst"}, {"gzip -c", "c.gz"},
        {"xz -c", "c.xz"},       {"bzip2 -c", "c.bz2"},
    };
    for (size_t i = 0; i < KILN_ARRAY_LEN(progs); i++) {
        CHECK_EQ_INT(sh("%s %s > %s", progs[i][0], tpath("c.jsonl"), tpath(progs[i][1])), 0);
        size_t chunks[] = {0, 997, 4096};
        for (size_t c = 0; c < KILN_ARRAY_LEN(chunks); c++) {
            struct kerr e;
            uint64_t nl;
            int rc = slurp(tpath(progs[i][1]), chunks[c], &got, &nl, &e);
            CHECK_MSG(rc == 0, "%s chunk %zu: %s", progs[i][1], chunks[c], rc ? e.msg : "");
            CHECK_EQ_INT(nl, 300);
            CHECK_MSG(got.len == want.len && memcmp(got.p, want.p, want.len) == 0, "%s",
                      progs[i][1]);
        }
    }
    // Concatenated frames and members are one stream.
    CHECK_EQ_INT(sh("cat %s %s > %s", tpath("c.zst"), tpath("c19.zst"), tpath("cc.zst")), 0);
    CHECK_EQ_INT(sh("cat %s %s > %s", tpath("c.gz"), tpath("c.gz"), tpath("cc.gz")), 0);
    const char *cat[] = {"cc.zst", "cc.gz"};
    for (size_t i = 0; i < 2; i++) {
        struct kerr e;
        uint64_t nl;
        CHECK_EQ_INT(slurp(tpath(cat[i]), 0, &got, &nl, &e), 0);
        CHECK_EQ_INT(nl, 600);
        CHECK(got.len == 2 * want.len && memcmp(got.p + want.len, want.p, want.len) == 0);
    }
    // A skippable frame first is still zstd.
    static const unsigned char skip[12] = {0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4};
    put_file(tpath("skip.zst"), skip, sizeof skip);
    CHECK_EQ_INT(sh("cat %s >> %s", tpath("c.zst"), tpath("skip.zst")), 0);
    {
        struct kerr e;
        uint64_t nl;
        CHECK_EQ_INT(slurp(tpath("skip.zst"), 0, &got, &nl, &e), 0);
        CHECK_EQ_INT(nl, 300);
    }
    // A compressed stream holding nothing is a valid empty stream.
    const char *empty[][2] = {
        {"zstd -q -c", "e.zst"}, {"gzip -c", "e.gz"}, {"xz -c", "e.xz"}, {"bzip2 -c", "e.bz2"}};
    for (size_t i = 0; i < KILN_ARRAY_LEN(empty); i++) {
        CHECK_EQ_INT(sh("printf '' | %s > %s", empty[i][0], tpath(empty[i][1])), 0);
        struct kerr e;
        uint64_t nl = 99;
        int rc = slurp(tpath(empty[i][1]), 0, &got, &nl, &e);
        CHECK_MSG(rc == 0, "%s: %s", empty[i][1], rc ? e.msg : "");
        CHECK_EQ_INT(nl, 0);
    }
    buf_free(&want);
    buf_free(&got);
}

// Expects reading path to fail with a message containing each of the given parts.
static void
expect_read_error(const char *path, size_t chunk, size_t max_line, uint64_t lines_before,
                  const char *part1, const char *part2)
{
    struct kerr e;
    memset(&e, 0, sizeof e);
    struct rec_reader *r = rec_reader_open(path, &e);
    CHECK_MSG(r != NULL, "%s: %s", path, e.msg);
    if (!r)
        return;
    if (chunk)
        rec_reader_set_chunk(r, chunk);
    if (max_line)
        rec_reader_set_max_line(r, max_line);
    struct rec_line l;
    int rc;
    uint64_t n = 0;
    while ((rc = rec_reader_next(r, &l, &e)) == 1)
        n++;
    CHECK_MSG(rc == -1, "%s: rc %d", path, rc);
    CHECK_MSG(n == lines_before, "%s: %llu lines before the error, expected %llu", path,
              (unsigned long long)n, (unsigned long long)lines_before);
    CHECK_MSG(strstr(e.msg, part1) != NULL, "%s: message '%s' lacks '%s'", path, e.msg, part1);
    if (part2)
        CHECK_MSG(strstr(e.msg, part2) != NULL, "%s: message '%s' lacks '%s'", path, e.msg, part2);
    // Sticky.
    struct kerr e2;
    CHECK_EQ_INT(rec_reader_next(r, &l, &e2), -1);
    CHECK_EQ_STR(e2.msg, e.msg);
    rec_reader_close(r);
}

static void
test_reader_errors(void)
{
    char msg[300];
    // Empty input.
    put_file(tpath("empty"), "", 0);
    snprintf(msg, sizeof msg, "%s:1: empty input (0 bytes)", tpath("empty"));
    expect_read_error(tpath("empty"), 0, 0, 0, msg, NULL);
    // Unterminated last line, also across buffers.
    put_file(tpath("unterm"), "{}\n{\"a\":1}\n{\"b\"", 15);
    snprintf(msg, sizeof msg, "%s:3: missing newline at end of file", tpath("unterm"));
    expect_read_error(tpath("unterm"), 0, 0, 2, msg, NULL);
    expect_read_error(tpath("unterm"), 2, 0, 2, msg, NULL);
    // NUL byte, with its column.
    put_file(tpath("nul"), "{}\n{\"a\":\"x\0y\"}\n{}\n", 18);
    snprintf(msg, sizeof msg, "%s:2:8: NUL byte", tpath("nul"));
    expect_read_error(tpath("nul"), 0, 0, 1, msg, NULL);
    expect_read_error(tpath("nul"), 3, 0, 1, msg, NULL);
    // The max-line cap, within a buffer and across buffers.
    put_file(tpath("long"), "{}\n{\"a\":\"0123456789\"}\n", 23);
    snprintf(msg, sizeof msg, "%s:2: line longer than 10 bytes", tpath("long"));
    expect_read_error(tpath("long"), 0, 10, 1, msg, NULL);
    expect_read_error(tpath("long"), 4, 10, 1, msg, NULL);
    // Truncated compressed data: the error names the line being read.
    struct buf b;
    buf_init(&b);
    make_lines(&b, 2000, 3); // about 900 kB: several compressed blocks
    put_file(tpath("t.jsonl"), b.p, b.len);
    const char *cut[][2] = {
        {"zstd -q", "t.zst"}, {"gzip", "t.gz"}, {"xz", "t.xz"}, {"bzip2", "t.bz2"}};
    for (size_t i = 0; i < KILN_ARRAY_LEN(cut); i++)
        CHECK_EQ_INT(sh("%s -c %s > %s.full && head -c $(( $(stat -c %%s %s.full) * 2 / 3 )) "
                        "%s.full > %s",
                        cut[i][0], tpath("t.jsonl"), tpath(cut[i][1]), tpath(cut[i][1]),
                        tpath(cut[i][1]), tpath(cut[i][1])),
                     0);
    struct kerr e;
    uint64_t nl;
    struct buf got;
    buf_init(&got);
    // Count the lines that decode before the damage by reading with the cap lifted.
    CHECK_EQ_INT(slurp(tpath("t.zst"), 0, &got, &nl, &e), -1);
    CHECK(nl > 0 && nl < 2000);
    snprintf(msg, sizeof msg, "%s:%llu: truncated zstd frame", tpath("t.zst"),
             (unsigned long long)nl + 1);
    CHECK_MSG(strcmp(e.msg, msg) == 0, "'%s' vs '%s'", e.msg, msg);
    const char *other[][2] = {{"t.gz", "gzip: "}, {"t.xz", "xz: "}, {"t.bz2", "bzip2: "}};
    for (size_t i = 0; i < KILN_ARRAY_LEN(other); i++) {
        int rc = slurp(tpath(other[i][0]), 0, &got, &nl, &e);
        CHECK_MSG(rc == -1, "%s: rc %d", other[i][0], rc);
        snprintf(msg, sizeof msg, "%s:%llu: %s", tpath(other[i][0]), (unsigned long long)nl + 1,
                 other[i][1]);
        CHECK_MSG(strncmp(e.msg, msg, strlen(msg)) == 0, "'%s' vs '%s'", e.msg, msg);
    }
    // Only the magic.
    put_file(tpath("magic.zst"), "\x28\xb5\x2f\xfd", 4);
    snprintf(msg, sizeof msg, "%s:1: truncated zstd frame", tpath("magic.zst"));
    expect_read_error(tpath("magic.zst"), 0, 0, 0, msg, NULL);
    // Garbage after a valid frame; a damaged frame (checksum or block error).
    CHECK_EQ_INT(sh("zstd -q -c %s > %s && printf 'garbage!' >> %s", tpath("t.jsonl"),
                    tpath("g.zst"), tpath("g.zst")),
                 0);
    expect_read_error(tpath("g.zst"), 0, 0, 2000, ":2001: zstd: Unknown frame descriptor",
                      "at compressed byte");
    CHECK_EQ_INT(sh("zstd -q -c %s > %s && printf '\\377\\377\\377\\377' | dd of=%s bs=1 "
                    "seek=2000 conv=notrunc status=none",
                    tpath("t.jsonl"), tpath("d.zst"), tpath("d.zst")),
                 0);
    CHECK_EQ_INT(slurp(tpath("d.zst"), 0, &got, &nl, &e), -1);
    CHECK_MSG(strstr(e.msg, ": zstd: ") != NULL, "%s", e.msg);
    // Garbage that looks like nothing: read as plain, framed; the JSON parser judges it.
    // Missing file, directory.
    struct rec_reader *r = rec_reader_open(tpath("nonexistent"), &e);
    CHECK(r == NULL);
    snprintf(msg, sizeof msg, "%s: No such file or directory", tpath("nonexistent"));
    CHECK_EQ_STR(e.msg, msg);
    r = rec_reader_open(dir, &e);
    CHECK(r == NULL);
    CHECK(strstr(e.msg, "Is a directory") != NULL);
    buf_free(&b);
    buf_free(&got);
}

static void
test_long_lines(void)
{
    // A 5 MB line between short ones, plain and zstd, default and small buffers.
    struct buf b, got;
    buf_init(&b);
    buf_init(&got);
    buf_puts(&b, "{\"a\":1}\n{\"t\":\"");
    size_t big = 5u << 20;
    buf_reserve(&b, big);
    memset(b.p + b.len, 'x', big);
    b.len += big;
    buf_puts(&b, "\"}\n{\"b\":2}\n");
    put_file(tpath("big.jsonl"), b.p, b.len);
    CHECK_EQ_INT(sh("zstd -q -c %s > %s", tpath("big.jsonl"), tpath("big.zst")), 0);
    const char *files[] = {"big.jsonl", "big.zst"};
    for (size_t i = 0; i < 2; i++) {
        size_t chunks[] = {0, 100000};
        for (size_t c = 0; c < 2; c++) {
            struct kerr e;
            uint64_t nl;
            CHECK_EQ_INT(slurp(tpath(files[i]), chunks[c], &got, &nl, &e), 0);
            CHECK_EQ_INT(nl, 3);
            CHECK(got.len == b.len && memcmp(got.p, b.p, b.len) == 0);
        }
    }
    buf_free(&b);
    buf_free(&got);
}

// Writes the records of text (one per line) with opts; returns 0 or -1 with err.
static int
write_lines(const char *path, const struct rec_wopts *o, const struct buf *text, struct kerr *e)
{
    struct rec_writer *w = rec_writer_open(path, o, e);
    if (!w)
        return -1;
    const char *p = text->p, *end = text->p + text->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (rec_writer_write(w, p, (size_t)(nl - p), e) < 0) {
            rec_writer_abort(w);
            return -1;
        }
        p = nl + 1;
    }
    return rec_writer_close(w, e);
}

static void
test_writer_roundtrip(void)
{
    struct buf text, got, a, b;
    buf_init(&text);
    buf_init(&got);
    buf_init(&a);
    buf_init(&b);
    make_lines(&text, 70000, 4); // about 18 MB: three zstd jobs of 8 MiB at level 3
    struct kerr e;
    uint64_t nl;
    struct rec_wopts plain = {.plain = true};
    CHECK_EQ_INT(write_lines(tpath("w.jsonl"), &plain, &text, &e), 0);
    CHECK_EQ_INT(read_file(tpath("w.jsonl"), 0, &got, &e), 0);
    CHECK(got.len == text.len && memcmp(got.p, text.p, text.len) == 0);
    CHECK(!exists(tpath("w.jsonl.tmp")));

    struct rec_wopts z = {0};
    CHECK_EQ_INT(write_lines(tpath("w.zst"), &z, &text, &e), 0);
    CHECK_EQ_INT(read_file(tpath("w.zst"), 0, &a, &e), 0);
    CHECK(a.len > 4 && memcmp(a.p, "\x28\xb5\x2f\xfd", 4) == 0);
    CHECK(a.len < text.len / 2);
    CHECK_EQ_INT(slurp(tpath("w.zst"), 0, &got, &nl, &e), 0);
    CHECK_EQ_INT(nl, 70000);
    CHECK(got.len == text.len && memcmp(got.p, text.p, text.len) == 0);
    // The zstd program agrees (and checks the frame checksum); what is more, it writes the very
    // same bytes: both use zstd's job-based multithreaded mode, whose output does not depend
    // on the thread count, how the input arrives, or timing.
    CHECK_EQ_INT(sh("zstd -q -t %s && zstd -q -dc %s | cmp -s - %s", tpath("w.zst"), tpath("w.zst"),
                    tpath("w.jsonl")),
                 0);
    CHECK_EQ_INT(sh("zstd -q -3 -T1 -c < %s | cmp -s - %s", tpath("w.jsonl"), tpath("w.zst")), 0);
    CHECK_EQ_INT(sh("zstd -q -3 -T3 -c < %s | cmp -s - %s", tpath("w.jsonl"), tpath("w.zst")), 0);

    // Same bytes for any chunk size (and therefore any timing).
    size_t chunks[] = {1000, 65543, 1u << 20, 4u << 20};
    for (size_t i = 0; i < KILN_ARRAY_LEN(chunks); i++) {
        struct rec_wopts o = {.chunk_bytes = chunks[i]};
        CHECK_EQ_INT(write_lines(tpath("w2.zst"), &o, &text, &e), 0);
        CHECK_EQ_INT(read_file(tpath("w2.zst"), 0, &b, &e), 0);
        CHECK_MSG(a.len == b.len && memcmp(a.p, b.p, a.len) == 0, "chunk %zu differs", chunks[i]);
    }
    // Any zstd thread count gives those bytes; no threads (REC_WORKERS_NONE) gives other bytes
    // of the same content, the same for any chunk size.
    int counts[] = {1, 2, 4, 9};
    for (size_t i = 0; i < KILN_ARRAY_LEN(counts); i++) {
        struct rec_wopts o = {.workers = counts[i], .chunk_bytes = 65543};
        CHECK_EQ_INT(write_lines(tpath("w2.zst"), &o, &text, &e), 0);
        CHECK_EQ_INT(read_file(tpath("w2.zst"), 0, &b, &e), 0);
        CHECK_MSG(a.len == b.len && memcmp(a.p, b.p, a.len) == 0, "%d workers differ", counts[i]);
    }
    struct buf none_a = {0};
    for (size_t i = 0; i < 2; i++) {
        struct rec_wopts o = {.workers = REC_WORKERS_NONE, .chunk_bytes = i ? 1000 : 0};
        CHECK_EQ_INT(write_lines(tpath("w4.zst"), &o, &text, &e), 0);
        CHECK_EQ_INT(read_file(tpath("w4.zst"), 0, i ? &b : &none_a, &e), 0);
    }
    CHECK(none_a.len != a.len || memcmp(none_a.p, a.p, a.len) != 0);
    CHECK(none_a.len == b.len && memcmp(none_a.p, b.p, b.len) == 0);
    CHECK_EQ_INT(sh("zstd -q -t %s", tpath("w4.zst")), 0);
    CHECK_EQ_INT(slurp(tpath("w4.zst"), 0, &got, &nl, &e), 0);
    CHECK(got.len == text.len && memcmp(got.p, text.p, text.len) == 0);
    buf_free(&none_a);

    // The level matters; level 0 means 3.
    struct rec_wopts l1 = {.level = 1}, l3 = {.level = 3};
    CHECK_EQ_INT(write_lines(tpath("w3.zst"), &l3, &text, &e), 0);
    CHECK_EQ_INT(read_file(tpath("w3.zst"), 0, &b, &e), 0);
    CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
    CHECK_EQ_INT(write_lines(tpath("w1.zst"), &l1, &text, &e), 0);
    CHECK_EQ_INT(read_file(tpath("w1.zst"), 0, &b, &e), 0);
    CHECK(a.len != b.len || memcmp(a.p, b.p, a.len) != 0);
    CHECK_EQ_INT(slurp(tpath("w1.zst"), 0, &got, &nl, &e), 0);
    CHECK(got.len == text.len && memcmp(got.p, text.p, text.len) == 0);

    // No records: a valid empty zstd stream (not an empty file).
    struct buf none;
    buf_init(&none);
    CHECK_EQ_INT(write_lines(tpath("none.zst"), &z, &none, &e), 0);
    CHECK_EQ_INT(slurp(tpath("none.zst"), 0, &got, &nl, &e), 0);
    CHECK_EQ_INT(nl, 0);

    // Counters and raw writes.
    struct rec_writer *w = rec_writer_open(tpath("raw.txt"), &plain, &e);
    CHECK(w != NULL);
    CHECK_EQ_INT(rec_writer_write(w, "{}", 2, &e), 0);
    CHECK_EQ_INT(rec_writer_write_raw(w, "abc", 3, &e), 0);
    CHECK_EQ_INT(rec_writer_records(w), 1);
    CHECK_EQ_INT(rec_writer_bytes(w), 6);
    CHECK_EQ_INT(rec_writer_close(w, &e), 0);
    CHECK_EQ_INT(read_file(tpath("raw.txt"), 0, &got, &e), 0);
    CHECK_EQ_STR(got.p, "{}\nabc");
    buf_free(&none);
    buf_free(&text);
    buf_free(&got);
    buf_free(&a);
    buf_free(&b);
}

static void
test_writer_tmp_and_errors(void)
{
    struct kerr e;
    struct rec_wopts z = {0};
    // The .tmp exists while writing, not the output; abort removes it.
    struct rec_writer *w = rec_writer_open(tpath("o.zst"), &z, &e);
    CHECK(w != NULL);
    CHECK(exists(tpath("o.zst.tmp")));
    CHECK(!exists(tpath("o.zst")));
    CHECK_EQ_INT(rec_writer_write(w, "{}", 2, &e), 0);
    rec_writer_abort(w);
    CHECK(!exists(tpath("o.zst.tmp")));
    CHECK(!exists(tpath("o.zst")));
    rec_writer_abort(NULL);
    // An existing output is replaced only on success.
    put_file(tpath("keep"), "old\n", 4);
    w = rec_writer_open(tpath("keep"), &z, &e);
    rec_writer_abort(w);
    struct buf got;
    buf_init(&got);
    CHECK_EQ_INT(read_file(tpath("keep"), 0, &got, &e), 0);
    CHECK_EQ_STR(got.p, "old\n");
    // Cannot create.
    w = rec_writer_open(tpath("no/such/dir/x.zst"), &z, &e);
    CHECK(w == NULL);
    CHECK(strstr(e.msg, "x.zst.tmp: No such file or directory") != NULL);
    // A full disk: /dev/full is not a regular file, so it is written in place.
    struct buf text;
    buf_init(&text);
    make_lines(&text, 3000, 5);
    CHECK_EQ_INT(write_lines("/dev/full", &z, &text, &e), -1);
    CHECK_MSG(strstr(e.msg, "/dev/full: write failed: No space left on device") != NULL, "%s",
              e.msg);
    // Small output: the error shows at close.
    w = rec_writer_open("/dev/full", &z, &e);
    CHECK_EQ_INT(rec_writer_write(w, "{}", 2, &e), 0);
    CHECK_EQ_INT(rec_writer_close(w, &e), -1);
    CHECK(strstr(e.msg, "No space left on device") != NULL);
    // /dev/null works and is left alone.
    CHECK_EQ_INT(write_lines("/dev/null", &z, &text, &e), 0);
    // A closed pipe: EPIPE, not SIGPIPE.
    int pfd[2];
    CHECK_EQ_INT(pipe(pfd), 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", pfd[1]);
    w = rec_writer_open(path, &z, &e);
    CHECK(w != NULL);
    close(pfd[0]);
    int rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++)
        rc = rec_writer_write(w, text.p, text.len - 1, &e);
    if (rc == 0)
        rc = rec_writer_close(w, &e);
    else
        rec_writer_abort(w);
    CHECK_EQ_INT(rc, -1);
    CHECK_MSG(strstr(e.msg, "write failed: Broken pipe") != NULL, "%s", e.msg);
    close(pfd[1]);
    buf_free(&text);
    buf_free(&got);
}

static void
test_writer_terminal(void)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
        fprintf(stderr, "test_rec: no pseudo-terminal, terminal refusal not tested\n");
        return;
    }
    const char *slave = ptsname(m);
    struct kerr e;
    struct rec_wopts z = {0}, plain = {.plain = true}, force = {.force = true};
    struct rec_writer *w = rec_writer_open(slave, &z, &e);
    CHECK(w == NULL);
    CHECK_EQ_STR(e.msg, "refusing to write compressed data to a terminal; use -o, --plain or -f");
    w = rec_writer_open(slave, &plain, &e);
    CHECK(w != NULL);
    CHECK_EQ_INT(rec_writer_write(w, "{}", 2, &e), 0);
    CHECK_EQ_INT(rec_writer_close(w, &e), 0);
    w = rec_writer_open(slave, &force, &e);
    CHECK(w != NULL);
    rec_writer_abort(w);
    close(m);
}

struct feeder {
    int fd;
    const char *p;
    size_t n;
};

static void *
feed(void *arg)
{
    struct feeder *f = arg;
    size_t off = 0;
    while (off < f->n) {
        size_t k = f->n - off < 777 ? f->n - off : 777; // many small writes
        ssize_t w = write(f->fd, f->p + off, k);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(f->fd);
    return NULL;
}

static void
test_stdin_and_pipes(void)
{
    struct buf text, got;
    buf_init(&text);
    buf_init(&got);
    make_lines(&text, 500, 6);
    put_file(tpath("s.jsonl"), text.p, text.len);
    CHECK_EQ_INT(sh("zstd -q -c %s > %s", tpath("s.jsonl"), tpath("s.zst")), 0);
    // stdin, from a file, zstd.
    int saved = dup(0);
    int fd = open(tpath("s.zst"), O_RDONLY);
    dup2(fd, 0);
    close(fd);
    struct kerr e;
    uint64_t nl;
    struct rec_reader *r = rec_reader_open("-", &e);
    CHECK_EQ_STR(rec_reader_name(r), "<stdin>");
    rec_reader_close(r);
    lseek(0, 0, SEEK_SET);
    CHECK_EQ_INT(slurp(NULL, 0, &got, &nl, &e), 0);
    CHECK_EQ_INT(nl, 500);
    CHECK(got.len == text.len && memcmp(got.p, text.p, text.len) == 0);
    // stdin from an empty pipe.
    int pfd[2];
    CHECK_EQ_INT(pipe(pfd), 0);
    close(pfd[1]);
    dup2(pfd[0], 0);
    close(pfd[0]);
    r = rec_reader_open("-", &e);
    struct rec_line l;
    CHECK_EQ_INT(rec_reader_next(r, &l, &e), -1);
    CHECK_EQ_STR(e.msg, "<stdin>:1: empty input (0 bytes)");
    CHECK_EQ_INT(rec_reader_size(r), 0);
    rec_reader_close(r);
    dup2(saved, 0);
    close(saved);

    // A pipe fed in small pieces, plain and zstd (the magic arrives piecemeal too).
    struct buf z;
    buf_init(&z);
    CHECK_EQ_INT(read_file(tpath("s.zst"), 0, &z, &e), 0);
    const struct buf *src[] = {&text, &z};
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(pipe(pfd), 0);
        struct feeder f = {pfd[1], src[i]->p, src[i]->len};
        pthread_t t;
        pthread_create(&t, NULL, feed, &f);
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", pfd[0]);
        CHECK_EQ_INT(slurp(path, 0, &got, &nl, &e), 0);
        CHECK_EQ_INT(nl, 500);
        CHECK(got.len == text.len && memcmp(got.p, text.p, text.len) == 0);
        pthread_join(t, NULL);
        close(pfd[0]);
    }
    // Closing a reader early while its pipe is stalled returns promptly.
    CHECK_EQ_INT(pipe(pfd), 0);
    CHECK_EQ_INT(write(pfd[1], "{}\n{", 4), 4);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", pfd[0]);
    r = rec_reader_open(path, &e);
    CHECK_EQ_INT(rec_reader_next(r, &l, &e), 1);
    CHECK(l.n == 2 && memcmp(l.p, "{}", 2) == 0);
    double t0 = now_seconds();
    rec_reader_close(r);
    CHECK(now_seconds() - t0 < 2.0);
    close(pfd[0]);
    close(pfd[1]);
    buf_free(&z);
    buf_free(&text);
    buf_free(&got);
}

static void
test_version(void)
{
    const char *v = rec_zstd_version();
    CHECK(v != NULL && strlen(v) >= 5 && v[1] == '.');
}

int
main(void)
{
    snprintf(dir, sizeof dir, "/tmp/kiln-test-rec-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_plain_and_chunks();
    test_compressed_inputs();
    test_reader_errors();
    test_long_lines();
    test_writer_roundtrip();
    test_writer_tmp_and_errors();
    test_writer_terminal();
    test_stdin_and_pipes();
    test_version();
    sh("rm -rf %s", dir);
    return test_summary();
}

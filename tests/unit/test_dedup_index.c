// SPDX-License-Identifier: MIT
// Unit tests for common/dedup_index: write → read round trip, checksum and structure errors,
// and the compatibility check that names the mismatching parameter.
#include "dedup_index.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *path = "test_dedup_index.ddx";

static struct dedup_index_meta
near_meta(void)
{
    struct dedup_index_meta m = {0};
    m.near = true;
    m.normalize = DEDUP_NORM_WS_LOWER;
    m.kind = 0;
    m.ngram = 5;
    m.bands = 3;
    m.rows = 2;
    m.seed = 99;
    return m;
}

static void
write_index(void)
{
    struct kerr err;
    struct dedup_index_meta m = near_meta();
    struct dedup_index_writer *w = dedup_index_writer_open(path, &m, &err);
    CHECK(w != NULL);
    struct buf b = {0};
    uint64_t key[2] = {1, 2}, band[3] = {10, 20, 30}, sh[4] = {3, 5, 8, 13};
    dedup_index_rec_encode(&b, key, "doc-1", 5, band, 3, sh, 4);
    CHECK_EQ_INT(b.len, dedup_index_rec_size(5, 3, 4));
    CHECK_EQ_INT(b.len % 8, 0);
    CHECK_EQ_INT(dedup_index_writer_add(w, b.p, b.len, &err), 0);
    buf_reset(&b);
    key[0] = 7;
    dedup_index_rec_encode(&b, key, "", 0, band, 3, NULL, 0);
    CHECK_EQ_INT(dedup_index_writer_add(w, b.p, b.len, &err), 0);
    CHECK_EQ_INT(dedup_index_writer_close(w, &err), 0);
    CHECK(access("test_dedup_index.ddx.tmp", F_OK) != 0);
    buf_free(&b);
}

// Reads the whole index; returns 0 when valid, -1 with err otherwise.
static int
read_all(struct kerr *err, uint64_t *nrec)
{
    struct dedup_index_meta m;
    struct dedup_index_reader *r = dedup_index_open(path, &m, err);
    if (!r)
        return -1;
    struct dedup_index_rec rec;
    int rc;
    *nrec = 0;
    while ((rc = dedup_index_next(r, &rec, err)) == 1)
        (*nrec)++;
    dedup_index_close(r);
    return rc;
}

static void
patch(long off, const void *p, size_t n)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, off, SEEK_SET);
    fwrite(p, 1, n, f);
    fclose(f);
}

static void
test_round_trip(void)
{
    write_index();
    struct kerr err;
    struct dedup_index_meta m;
    struct dedup_index_reader *r = dedup_index_open(path, &m, &err);
    CHECK(r != NULL);
    CHECK(m.near && m.ngram == 5 && m.bands == 3 && m.rows == 2 && m.seed == 99);
    CHECK_EQ_INT(m.records, 2);
    struct dedup_index_rec rec;
    CHECK_EQ_INT(dedup_index_next(r, &rec, &err), 1);
    CHECK(rec.key[0] == 1 && rec.key[1] == 2);
    CHECK_EQ_MEM(rec.id, rec.id_len, "doc-1", 5);
    CHECK(rec.band[2] == 30);
    CHECK_EQ_INT(rec.n_shingles, 4);
    int fd = dedup_index_take_fd(r);
    uint64_t sh[4];
    CHECK_EQ_INT(dedup_index_read_shingles(fd, rec.shingle_off, 4, sh, &err), 0);
    CHECK(sh[0] == 3 && sh[3] == 13);
    CHECK_EQ_INT(dedup_index_next(r, &rec, &err), 1);
    CHECK(rec.key[0] == 7 && rec.id_len == 0 && rec.n_shingles == 0);
    CHECK_EQ_INT(dedup_index_next(r, &rec, &err), 0);
    dedup_index_close(r);
    close(fd);
}

static void
test_corruption(void)
{
    struct kerr err;
    uint64_t n;
    write_index();
    unsigned char x = 0x55;
    patch(64 + 40, &x, 1); // inside the first record's bands
    CHECK_EQ_INT(read_all(&err, &n), -1);
    CHECK(strstr(err.msg, "checksum mismatch") != NULL);

    write_index();
    patch(0, "KILNDDIY", 8);
    CHECK_EQ_INT(read_all(&err, &n), -1);
    CHECK(strstr(err.msg, "bad magic") != NULL);

    write_index();
    unsigned char v2[4] = {2, 0, 0, 0};
    patch(8, v2, 4);
    CHECK_EQ_INT(read_all(&err, &n), -1);
    CHECK(strstr(err.msg, "version 2") != NULL);

    write_index();
    unsigned char big[4] = {0xff, 0xff, 0xff, 0x7f};
    patch(64 + 4, big, 4); // shingle count far beyond the file
    CHECK_EQ_INT(read_all(&err, &n), -1);
    CHECK(strstr(err.msg, "past the end") != NULL);

    write_index();
    unsigned char desc[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    patch(64 + 24 + 8 + 24 + 8, desc, 8); // second shingle 1 < first 3
    CHECK_EQ_INT(read_all(&err, &n), -1);
    CHECK(strstr(err.msg, "not strictly ascending") != NULL);

    write_index();
    CHECK_EQ_INT(truncate(path, 100), 0);
    CHECK_EQ_INT(read_all(&err, &n), -1);

    write_index();
    FILE *f = fopen(path, "ab");
    fputs("junk", f);
    fclose(f);
    CHECK_EQ_INT(read_all(&err, &n), -1);
    CHECK(strstr(err.msg, "garbage") != NULL);

    write_index();
    CHECK_EQ_INT(read_all(&err, &n), 0);
    CHECK_EQ_INT(n, 2);
}

static void
test_check(void)
{
    struct kerr err;
    struct dedup_index_meta want = near_meta(), have = near_meta();
    CHECK_EQ_INT(dedup_index_check("i", &want, &have, true, &err), 0);
    have.normalize = DEDUP_NORM_NFKC;
    CHECK_EQ_INT(dedup_index_check("i", &want, &have, true, &err), -1);
    CHECK(strstr(err.msg, "--normalize nfkc, this run uses ws-lower") != NULL);
    have = near_meta();
    have.kind = 1;
    have.ngram = 24;
    CHECK_EQ_INT(dedup_index_check("i", &want, &have, true, &err), -1);
    CHECK(strstr(err.msg, "character 24-gram") != NULL);
    CHECK_EQ_INT(dedup_index_check("i", &want, &have, false, &err), 0);
    have = near_meta();
    have.bands = 14;
    CHECK_EQ_INT(dedup_index_check("i", &want, &have, true, &err), -1);
    CHECK(strstr(err.msg, "14 bands") != NULL);
    have = near_meta();
    have.seed = 1;
    CHECK_EQ_INT(dedup_index_check("i", &want, &have, true, &err), -1);
    CHECK(strstr(err.msg, "--seed 1") != NULL);
    have = near_meta();
    have.near = false;
    CHECK_EQ_INT(dedup_index_check("i", &want, &have, true, &err), -1);
    CHECK(strstr(err.msg, "exact mode") != NULL);
}

int
main(void)
{
    char dir[] = "/tmp/test_dedup_index.XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0)
        return 1;
    test_round_trip();
    test_corruption();
    test_check();
    unlink(path);
    if (chdir("/") == 0)
        rmdir(dir);
    return test_summary();
}

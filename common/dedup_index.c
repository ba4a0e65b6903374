// SPDX-License-Identifier: MIT
// dedup_index: reading (fully validated) and writing the dedupe index file. See dedup_index.h
// for the byte layout. The reader streams the file once; record sizes are checked against the
// bytes left in the file before anything is allocated, so a hostile length cannot make it
// allocate more than the file holds.
#include "dedup_index.h"
#include "cli.h"
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'K', 'I', 'L', 'N', 'D', 'D', 'I', 'X'};
static const char END[8] = {'K', 'I', 'L', 'N', 'D', 'E', 'N', 'D'};

static void
put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t
get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static size_t
pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

size_t
dedup_index_rec_size(uint32_t id_len, uint32_t bands, uint32_t n_shingles)
{
    return 24 + pad8(id_len) + 8 * ((size_t)bands + n_shingles);
}

void
dedup_index_rec_encode(struct buf *out, const uint64_t key[2], const char *id, uint32_t id_len,
                       const uint64_t *band, uint32_t bands, const uint64_t *shingle,
                       uint32_t n_shingles)
{
    size_t size = dedup_index_rec_size(id_len, bands, n_shingles);
    buf_reserve(out, size);
    unsigned char *p = (unsigned char *)out->p + out->len;
    put32(p, id_len);
    put32(p + 4, n_shingles);
    put64(p + 8, key[0]);
    put64(p + 16, key[1]);
    p += 24;
    memset(p, 0, pad8(id_len));
    if (id_len)
        memcpy(p, id, id_len);
    p += pad8(id_len);
    for (uint32_t i = 0; i < bands; i++, p += 8)
        put64(p, band[i]);
    for (uint32_t i = 0; i < n_shingles; i++, p += 8)
        put64(p, shingle[i]);
    out->len += size;
    out->p[out->len] = 0;
}

static void
header_encode(unsigned char *h, const struct dedup_index_meta *m)
{
    memset(h, 0, DEDUP_INDEX_HEADER);
    memcpy(h, MAGIC, 8);
    put32(h + 8, m->version);
    put32(h + 12, m->near ? 1 : 0);
    put32(h + 16, m->normalize);
    put32(h + 20, m->near ? m->kind : 0);
    put32(h + 24, m->near ? m->ngram : 0);
    put32(h + 28, m->near ? m->bands : 0);
    put32(h + 32, m->near ? m->rows : 0);
    put64(h + 40, m->near ? m->seed : 0);
    put64(h + 48, m->records);
}

const char *
dedup_norm_name(uint32_t norm)
{
    switch (norm) {
    case DEDUP_NORM_NONE:
        return "none";
    case DEDUP_NORM_WS_LOWER:
        return "ws-lower";
    case DEDUP_NORM_NFKC:
        return "nfkc";
    default:
        return "unknown";
    }
}

// ---- reading ------------------------------------------------------------------------------

struct dedup_index_reader {
    char *path;
    FILE *f;
    int fd;
    uint64_t size, pos; // file size, offset of the next unread byte
    struct dedup_index_meta meta;
    unsigned char header[DEDUP_INDEX_HEADER];
    uint64_t read_records;
    uint64_t chain;
    struct buf rec;   // the current record's bytes
    uint64_t *bands;  // (bands) decoded
    bool done;
};

static int
rd(struct dedup_index_reader *r, void *p, size_t n, struct kerr *err)
{
    if (n > r->size - r->pos)
        return kerr_set(err, "%s: offset %llu: truncated (file ends at %llu)", r->path,
                        (unsigned long long)r->pos, (unsigned long long)r->size);
    if (n && fread(p, 1, n, r->f) != n)
        return kerr_set(err, "%s: offset %llu: %s", r->path, (unsigned long long)r->pos,
                        ferror(r->f) ? strerror(errno) : "unexpected end of file");
    r->pos += n;
    return 0;
}

struct dedup_index_reader *
dedup_index_open(const char *path, struct dedup_index_meta *meta, struct kerr *err)
{
    struct dedup_index_reader *r = xcalloc(1, sizeof *r);
    r->path = xstrdup(path);
    r->fd = -1;
    r->f = fopen(path, "rb");
    if (!r->f) {
        kerr_set(err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    r->fd = fileno(r->f);
    struct stat st;
    if (fstat(r->fd, &st) != 0) {
        kerr_set(err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        kerr_set(err, "%s: not a regular file", path);
        goto fail;
    }
    r->size = (uint64_t)st.st_size;
    unsigned char *h = r->header;
    if (r->size < DEDUP_INDEX_HEADER || rd(r, h, DEDUP_INDEX_HEADER, err) != 0 ||
        memcmp(h, MAGIC, 8) != 0) {
        kerr_set(err, "%s: not a dedupe index (bad magic)", path);
        goto fail;
    }
    struct dedup_index_meta *m = &r->meta;
    m->version = get32(h + 8);
    if (m->version != DEDUP_INDEX_VERSION) {
        kerr_set(err, "%s: index format version %u, this dedupe reads version %u", path,
                 m->version, DEDUP_INDEX_VERSION);
        goto fail;
    }
    uint32_t flags = get32(h + 12);
    m->near = flags & 1;
    m->normalize = get32(h + 16);
    m->kind = get32(h + 20);
    m->ngram = get32(h + 24);
    m->bands = get32(h + 28);
    m->rows = get32(h + 32);
    m->seed = get64(h + 40);
    m->records = get64(h + 48);
    const char *bad = NULL;
    if (flags > 1 || get32(h + 36) != 0 || get64(h + 56) != 0)
        bad = "unknown flags or non-zero reserved fields";
    else if (m->normalize > DEDUP_NORM_NFKC)
        bad = "unknown normalization";
    else if (m->near && (m->kind > 1 || m->ngram == 0 || m->ngram > 4096 || m->bands == 0 ||
                         m->rows == 0 || (uint64_t)m->bands * m->rows > 16384))
        bad = "invalid shingling or band parameters";
    else if (!m->near && (m->kind || m->ngram || m->bands || m->rows || m->seed))
        bad = "near-duplicate parameters without near data";
    if (!bad && (m->records > DEDUP_INDEX_MAX_RECORDS ||
                 m->records > (r->size - DEDUP_INDEX_HEADER) / 24)) {
        kerr_set(err, "%s: truncated or corrupt: %llu records cannot fit in %llu bytes", path,
                 (unsigned long long)m->records, (unsigned long long)r->size);
        goto fail;
    }
    if (bad) {
        kerr_set(err, "%s: corrupt header: %s", path, bad);
        goto fail;
    }
    if (m->near)
        r->bands = xmalloc(m->bands * sizeof *r->bands);
    *meta = *m;
    return r;
fail:
    dedup_index_close(r);
    return NULL;
}

int
dedup_index_next(struct dedup_index_reader *r, struct dedup_index_rec *rec, struct kerr *err)
{
    if (r->done)
        return 0;
    const struct dedup_index_meta *m = &r->meta;
    if (r->read_records == m->records) {
        unsigned char t[DEDUP_INDEX_TRAILER];
        uint64_t at = r->pos;
        if (rd(r, t, sizeof t, err) != 0)
            return -1;
        if (memcmp(t, END, 8) != 0)
            return kerr_set(err, "%s: offset %llu: expected the end marker after %llu records",
                            r->path, (unsigned long long)at, (unsigned long long)m->records);
        if (r->pos != r->size)
            return kerr_set(err, "%s: offset %llu: %llu bytes of garbage after the end marker",
                            r->path, (unsigned long long)r->pos,
                            (unsigned long long)(r->size - r->pos));
        uint64_t sum = hash64_seed(r->header, DEDUP_INDEX_HEADER, r->chain);
        if (sum != get64(t + 8))
            return kerr_set(err, "%s: checksum mismatch (file is corrupt)", r->path);
        r->done = true;
        return 0;
    }
    uint64_t start = r->pos;
    unsigned char fixed[24];
    if (rd(r, fixed, sizeof fixed, err) != 0)
        return -1;
    uint32_t id_len = get32(fixed), ns = get32(fixed + 4);
    if (id_len > DEDUP_INDEX_MAX_ID)
        return kerr_set(err, "%s: offset %llu: id length %u exceeds %u", r->path,
                        (unsigned long long)start, id_len, DEDUP_INDEX_MAX_ID);
    if (!m->near && ns)
        return kerr_set(err, "%s: offset %llu: shingles in an index without near data",
                        r->path, (unsigned long long)start);
    uint32_t nb = m->near ? m->bands : 0;
    size_t size = dedup_index_rec_size(id_len, nb, ns);
    if (size - 24 > r->size - r->pos)
        return kerr_set(err, "%s: offset %llu: record of %zu bytes runs past the end of the file",
                        r->path, (unsigned long long)start, size);
    buf_reset(&r->rec);
    buf_reserve(&r->rec, size);
    memcpy(r->rec.p, fixed, 24);
    if (rd(r, r->rec.p + 24, size - 24, err) != 0)
        return -1;
    r->rec.len = size;
    const unsigned char *p = (const unsigned char *)r->rec.p;
    for (size_t i = id_len; i < pad8(id_len); i++)
        if (p[24 + i])
            return kerr_set(err, "%s: offset %llu: non-zero id padding", r->path,
                            (unsigned long long)start);
    const unsigned char *bp = p + 24 + pad8(id_len);
    for (uint32_t i = 0; i < nb; i++)
        r->bands[i] = get64(bp + 8 * i);
    const unsigned char *sp = bp + 8 * (size_t)nb;
    for (uint32_t i = 1; i < ns; i++)
        if (get64(sp + 8 * (size_t)i) <= get64(sp + 8 * (size_t)(i - 1)))
            return kerr_set(err, "%s: offset %llu: shingles not strictly ascending", r->path,
                            (unsigned long long)start);
    r->chain = hash64_seed(p, size, r->chain);
    r->read_records++;
    rec->key[0] = get64(p + 8);
    rec->key[1] = get64(p + 16);
    rec->id = (const char *)p + 24;
    rec->id_len = id_len;
    rec->band = nb ? r->bands : NULL;
    rec->n_shingles = ns;
    rec->offset = start;
    rec->shingle_off = start + (uint64_t)(sp - p);
    return 1;
}

int
dedup_index_take_fd(struct dedup_index_reader *r)
{
    int fd = dup(r->fd);
    return fd;
}

void
dedup_index_close(struct dedup_index_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r->path);
    free(r->bands);
    buf_free(&r->rec);
    free(r);
}

int
dedup_index_read_shingles(int fd, uint64_t off, uint32_t n, uint64_t *out, struct kerr *err)
{
    size_t want = (size_t)n * 8, got = 0;
    unsigned char *p = (unsigned char *)out;
    while (got < want) {
        ssize_t k = pread(fd, p + got, want - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return kerr_set(err, "reading shingles at offset %llu: %s",
                            (unsigned long long)(off + got),
                            k < 0 ? strerror(errno) : "unexpected end of file");
        got += (size_t)k;
    }
    // Stored little-endian; convert in place (a no-op loop on little-endian hosts).
    for (uint32_t i = 0; i < n; i++)
        out[i] = get64(p + 8 * (size_t)i);
    return 0;
}

static const char *
kind_name(uint32_t kind)
{
    return kind ? "character" : "word";
}

int
dedup_index_check(const char *path, const struct dedup_index_meta *want,
                  const struct dedup_index_meta *have, bool need_near, struct kerr *err)
{
    if (want->normalize != have->normalize)
        return kerr_set(err, "%s: built with --normalize %s, this run uses %s", path,
                        dedup_norm_name(have->normalize), dedup_norm_name(want->normalize));
    if (!need_near)
        return 0;
    if (!have->near)
        return kerr_set(err, "%s: built in exact mode (no signatures); this run needs near-"
                             "duplicate data",
                        path);
    if (want->kind != have->kind || want->ngram != have->ngram)
        return kerr_set(err, "%s: built with %s %u-gram shingles, this run uses %s %u-grams",
                        path, kind_name(have->kind), have->ngram, kind_name(want->kind),
                        want->ngram);
    if (want->bands != have->bands || want->rows != have->rows)
        return kerr_set(err, "%s: built with %u bands x %u rows, this run uses %u x %u", path,
                        have->bands, have->rows, want->bands, want->rows);
    if (want->seed != have->seed)
        return kerr_set(err, "%s: built with --seed %llu, this run uses --seed %llu", path,
                        (unsigned long long)have->seed, (unsigned long long)want->seed);
    return 0;
}

// ---- writing ------------------------------------------------------------------------------

struct dedup_index_writer {
    char *path, *tmp;
    int slot;
    FILE *f;
    struct dedup_index_meta meta;
    uint64_t chain;
};

struct dedup_index_writer *
dedup_index_writer_open(const char *path, const struct dedup_index_meta *meta, struct kerr *err)
{
    struct dedup_index_writer *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    size_t n = strlen(path);
    w->tmp = xmalloc(n + 5);
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->meta = *meta;
    w->meta.version = DEDUP_INDEX_VERSION;
    w->meta.records = 0;
    w->slot = cli_tmp_register(w->tmp);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        kerr_set(err, "%s: %s", w->tmp, strerror(errno));
        dedup_index_writer_abort(w);
        return NULL;
    }
    unsigned char h[DEDUP_INDEX_HEADER];
    header_encode(h, &w->meta); // rewritten with the record count on close
    fwrite(h, 1, sizeof h, w->f);
    return w;
}

int
dedup_index_writer_add(struct dedup_index_writer *w, const void *rec, size_t n, struct kerr *err)
{
    if (w->meta.records >= DEDUP_INDEX_MAX_RECORDS)
        return kerr_set(err, "%s: more than %u records", w->path, DEDUP_INDEX_MAX_RECORDS);
    w->chain = hash64_seed(rec, n, w->chain);
    w->meta.records++;
    if (fwrite(rec, 1, n, w->f) != n)
        return kerr_set(err, "%s: %s", w->tmp, strerror(errno));
    return 0;
}

int
dedup_index_writer_close(struct dedup_index_writer *w, struct kerr *err)
{
    unsigned char h[DEDUP_INDEX_HEADER], t[DEDUP_INDEX_TRAILER];
    header_encode(h, &w->meta);
    memcpy(t, END, 8);
    put64(t + 8, hash64_seed(h, sizeof h, w->chain));
    fwrite(t, 1, sizeof t, w->f);
    bool ok = fseek(w->f, 0, SEEK_SET) == 0 && fwrite(h, 1, sizeof h, w->f) == sizeof h;
    ok = fflush(w->f) == 0 && ok && !ferror(w->f);
    int e = errno;
    ok = fclose(w->f) == 0 && ok;
    w->f = NULL;
    if (!ok || rename(w->tmp, w->path) != 0) {
        kerr_set(err, "%s: %s", ok ? w->path : w->tmp, strerror(ok ? errno : e));
        dedup_index_writer_abort(w);
        return -1;
    }
    cli_tmp_forget(w->slot);
    free(w->path);
    free(w->tmp);
    free(w);
    return 0;
}

void
dedup_index_writer_abort(struct dedup_index_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    unlink(w->tmp);
    cli_tmp_forget(w->slot);
    free(w->path);
    free(w->tmp);
    free(w);
}

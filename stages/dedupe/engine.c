// SPDX-License-Identifier: MIT
// engine: exact and near-duplicate decisions for dedupe. See engine.h for the rules.
//
// Memory per kept record: an exact-table slot (24 bytes, table at most half full), a locator
// (struct kept, 24 bytes), union-find entries (8 bytes per record, kept or not) and in near
// mode bands LSH entries (8 bytes each, table at most half full). Everything else a kept record
// needs later (id, band hashes, shingle set) is appended to the spool, an unlinked temporary
// file holding records in the dedupe index format, read back with pread.
#include "engine.h"
#include "hash.h"
#include "keytab.h"
#include "rec.h"
#include "unicode.h"

#include <errno.h>
#ifdef __AVX512BW__
#include <immintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPOOL_BUF (1u << 20)

// A kept record: where its index record lives. src 0 is the spool, i ≥ 1 the i-th --against
// index file.
struct kept {
    uint64_t off;
    uint32_t n_shingles;
    uint32_t g; // union-find number (records in input order, index records first)
    uint32_t src;
};

// A removed record, for --clusters: its survivor and where its raw id is in the member spool.
struct member {
    uint32_t survivor;
    uint32_t id_len;
    uint64_t off;
};

struct spool {
    int fd;
    uint64_t flushed; // bytes in the file
    struct buf pending;
};

struct dedupe {
    struct dedupe_conf conf;
    struct minhash mh;
    struct minhash_set set, cand_set;
    struct minhash_lsh lsh;
    struct minhash_uf uf;
    struct keytab exact; // normalized key -> kept number
    struct kept *kept;
    size_t n_kept, kept_cap;
    struct member *members;
    size_t n_members, members_cap;
    struct spool spool, member_spool;
    int *index_fd; // (n_index)
    size_t n_index;
    uint64_t *sig, *band;
    uint32_t *cand;
    size_t n_cand, cand_cap;
    struct buf text, text2, norm, id;
    uint64_t n_input; // input records seen (for "#N" ids)
    uint32_t next_g;
    struct dedupe_counts c;
};

// ---- spool --------------------------------------------------------------------------------

static int
spool_open(struct spool *s, struct kerr *err)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/kiln-dedupe-XXXXXX", dir);
    s->fd = mkstemp(path);
    if (s->fd < 0)
        return kerr_set(err, "%s: %s", path, strerror(errno));
    unlink(path); // nothing is left behind, whatever happens to the process
    s->flushed = 0;
    buf_init(&s->pending);
    return 0;
}

static int
spool_flush(struct spool *s, struct kerr *err)
{
    size_t done = 0;
    while (done < s->pending.len) {
        ssize_t k = write(s->fd, s->pending.p + done, s->pending.len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return kerr_set(err, "spool file: write failed: %s", strerror(errno));
        done += (size_t)k;
    }
    s->flushed += done;
    buf_reset(&s->pending);
    return 0;
}

// Appends enc; returns its offset via *off.
static int
spool_append(struct spool *s, const struct buf *enc, uint64_t *off, struct kerr *err)
{
    *off = s->flushed + s->pending.len;
    buf_append(&s->pending, enc->p, enc->len);
    return s->pending.len >= SPOOL_BUF ? spool_flush(s, err) : 0;
}

static int
pread_full(int fd, uint64_t off, void *p, size_t n, const char *what, struct kerr *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return kerr_set(err, "%s: read failed at offset %llu: %s", what,
                            (unsigned long long)(off + got),
                            k < 0 ? strerror(errno) : "unexpected end of file");
        got += (size_t)k;
    }
    return 0;
}

static int
spool_read(struct spool *s, uint64_t off, void *p, size_t n, struct kerr *err)
{
    if (off + n > s->flushed && spool_flush(s, err) != 0)
        return -1;
    return pread_full(s->fd, off, p, n, "spool file", err);
}

static void
spool_close(struct spool *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    buf_free(&s->pending);
}

// ---- tables -------------------------------------------------------------------------------

// A new union-find number: records are numbered in input order, index records first.
static uint32_t
new_g(struct dedupe *d)
{
    uint32_t g = d->next_g++;
    minhash_uf_grow(&d->uf, (size_t)g + 1);
    return g;
}

static uint32_t
kept_add(struct dedupe *d, uint32_t src, uint64_t off, uint32_t n_shingles, uint32_t g)
{
    if (d->n_kept == d->kept_cap) {
        d->kept_cap = d->kept_cap ? d->kept_cap * 2 : 4096;
        d->kept = xrealloc(d->kept, d->kept_cap * sizeof *d->kept);
    }
    d->kept[d->n_kept] = (struct kept){off, n_shingles, g, src};
    return (uint32_t)d->n_kept++;
}

// ---- setup --------------------------------------------------------------------------------

struct dedupe *
dedupe_new(const struct dedupe_conf *conf, struct kerr *err)
{
    struct dedupe *d = xcalloc(1, sizeof *d);
    d->conf = *conf;
    d->spool.fd = d->member_spool.fd = -1;
    if (spool_open(&d->spool, err) != 0 ||
        (conf->clusters && spool_open(&d->member_spool, err) != 0)) {
        dedupe_del(d);
        return NULL;
    }
    if (conf->mode == DEDUPE_NEAR) {
        minhash_init(&d->mh, &conf->mh);
        d->sig = xmalloc((size_t)d->mh.nperm * sizeof *d->sig);
        d->band = xmalloc((size_t)conf->mh.bands * sizeof *d->band);
    }
    return d;
}

void
dedupe_del(struct dedupe *d)
{
    if (!d)
        return;
    if (d->conf.mode == DEDUPE_NEAR)
        minhash_free(&d->mh);
    minhash_set_free(&d->set);
    minhash_set_free(&d->cand_set);
    minhash_lsh_free(&d->lsh);
    minhash_uf_free(&d->uf);
    spool_close(&d->spool);
    spool_close(&d->member_spool);
    for (size_t i = 0; i < d->n_index; i++)
        close(d->index_fd[i]);
    free(d->index_fd);
    keytab_free(&d->exact);
    free(d->kept);
    free(d->members);
    free(d->sig);
    free(d->band);
    free(d->cand);
    buf_free(&d->text);
    buf_free(&d->text2);
    buf_free(&d->norm);
    buf_free(&d->id);
    free(d);
}

static struct dedup_index_meta
run_meta(const struct dedupe *d)
{
    struct dedup_index_meta m = {0};
    m.version = DEDUP_INDEX_VERSION;
    m.normalize = d->conf.norm;
    m.near = d->conf.mode == DEDUPE_NEAR;
    if (m.near) {
        m.kind = d->conf.mh.kind;
        m.ngram = (uint32_t)d->conf.mh.ngram;
        m.bands = (uint32_t)d->conf.mh.bands;
        m.rows = (uint32_t)d->conf.mh.rows;
        m.seed = d->conf.mh.seed;
    }
    return m;
}

int
dedupe_load_index(struct dedupe *d, const char *path, struct kerr *err)
{
    struct dedup_index_meta have, want = run_meta(d);
    struct dedup_index_reader *r = dedup_index_open(path, &have, err);
    if (!r)
        return -1;
    bool near = d->conf.mode == DEDUPE_NEAR;
    if (dedup_index_check(path, &want, &have, near, err) != 0) {
        dedup_index_close(r);
        return -1;
    }
    d->index_fd = xrealloc(d->index_fd, (d->n_index + 1) * sizeof *d->index_fd);
    d->index_fd[d->n_index++] = dedup_index_take_fd(r);
    uint32_t src = (uint32_t)d->n_index;
    struct dedup_index_rec rec;
    int rc;
    while ((rc = dedup_index_next(r, &rec, err)) == 1) {
        if (d->n_kept >= DEDUP_INDEX_MAX_RECORDS - 1) {
            dedup_index_close(r);
            return kerr_set(err, "%s: too many records", path);
        }
        if (keytab_get(&d->exact, rec.key[0], rec.key[1]) >= 0)
            continue; // an exact duplicate of an earlier index record
        uint32_t k = kept_add(d, src, rec.offset, near ? rec.n_shingles : 0, new_g(d));
        keytab_put(&d->exact, rec.key[0], rec.key[1], k);
        if (near && rec.n_shingles > 0)
            for (int b = 0; b < d->conf.mh.bands; b++)
                minhash_lsh_add(&d->lsh, b, rec.band[b], k);
        d->c.against_records++;
    }
    dedup_index_close(r);
    return rc; // 0, or -1: the file is corrupt and the run must not go on
}

// ---- phases -------------------------------------------------------------------------------

// Whitespace collapse + lowercase in one pass: the same bytes as uni_collapse_ws followed by
// uni_lower. ASCII is handled inline (its White_Space is 0x09–0x0D and 0x20); other code
// points go through unicode.h one at a time (uni_class_of's UNI_SPACE is the set that
// uni_collapse_ws collapses, and lowercasing never turns a character into whitespace).
static int
ws_lower(const char *s, size_t n, struct buf *out, struct kerr *err)
{
    // From input position i on, ASCII writes at most n − i bytes plus one pending space, so
    // reserving that much after every non-ASCII character keeps o within the buffer.
    buf_reserve(out, n + 1);
    char *o = out->p + out->len;
    bool pending = false, any = false;
    size_t i = 0;
    while (i < n) {
#ifdef __AVX512BW__
        // 64 ASCII bytes whose whitespace bytes are all single (no two adjacent, none first
        // when nothing was written yet or a space is pending): each whitespace byte becomes
        // ' ', letters are lowercased, and a whitespace byte at the end becomes the pending
        // space. Typical prose takes this path; anything else goes byte by byte below.
        if (n - i >= 64 && !pending && any) {
            __m512i v = _mm512_loadu_si512(s + i);
            uint64_t nonascii = _mm512_movepi8_mask(v);
            uint64_t ws = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(' ')) |
                          _mm512_mask_cmple_epu8_mask(
                              _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(0x09)), v,
                              _mm512_set1_epi8(0x0d));
            if (!nonascii && !(ws & (ws >> 1)) && !(ws & 1)) {
                uint64_t upper = _mm512_mask_cmple_epu8_mask(
                    _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8('A')), v, _mm512_set1_epi8('Z'));
                v = _mm512_mask_add_epi8(v, upper, v, _mm512_set1_epi8(0x20));
                v = _mm512_mask_mov_epi8(v, ws, _mm512_set1_epi8(' '));
                bool last_ws = ws >> 63;
                _mm512_mask_storeu_epi8(o, last_ws ? ~(uint64_t)0 >> 1 : ~(uint64_t)0, v);
                o += last_ws ? 63 : 64;
                pending = last_ws;
                i += 64;
                continue;
            }
        }
#endif
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            i++;
            if (c == ' ' || (c >= 0x09 && c <= 0x0d)) {
                pending = any;
                continue;
            }
            if (pending)
                *o++ = ' ';
            pending = false;
            any = true;
            *o++ = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            continue;
        }
        int32_t cp;
        size_t k = (size_t)uni_decode(s + i, n - i, &cp);
        if (uni_class_of(cp) & UNI_SPACE) {
            pending = any;
        } else {
            if (pending)
                *o++ = ' ';
            pending = false;
            any = true;
            out->len = (size_t)(o - out->p);
            if (uni_lower(s + i, k, out, err) != 0)
                return -1;
            buf_reserve(out, n - i + 1);
            o = out->p + out->len;
        }
        i += k;
    }
    out->len = (size_t)(o - out->p);
    out->p[out->len] = 0;
    return 0;
}

// Normalizes the key string s[0..n) into d->norm per conf.norm.
static int
normalize(struct dedupe *d, const char *s, size_t n, struct kerr *err)
{
    buf_reset(&d->norm);
    switch (d->conf.norm) {
    case DEDUP_NORM_NONE:
        buf_append(&d->norm, s, n);
        return 0;
    case DEDUP_NORM_WS_LOWER:
        return ws_lower(s, n, &d->norm, err);
    case DEDUP_NORM_NFKC:
        buf_reset(&d->text2);
        if (uni_nfkc(s, n, &d->text2, err) != 0)
            return -1;
        return ws_lower(d->text2.p, d->text2.len, &d->norm, err);
    }
    return 0;
}

// Sign phase: shingles of d->norm into d->set, signature and band hashes into d->band.
static void
phase_sign(struct dedupe *d)
{
    minhash_shingle(d->conf.mh.kind, d->conf.mh.ngram, d->norm.p, d->norm.len, &d->set);
    minhash_sign(&d->mh, d->set.v, d->set.n, d->sig);
    minhash_bands(&d->mh, d->sig, d->band);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

// Bucket phase: kept records that share at least one band, ascending, each once.
static void
phase_candidates(struct dedupe *d)
{
    d->n_cand = 0;
    for (int b = 0; b < d->conf.mh.bands; b++)
        minhash_lsh_get(&d->lsh, b, d->band[b], &d->cand, &d->n_cand, &d->cand_cap);
    if (d->n_cand > 1) {
        qsort(d->cand, d->n_cand, sizeof *d->cand, cmp_u32);
        size_t k = 0;
        for (size_t i = 0; i < d->n_cand; i++)
            if (k == 0 || d->cand[i] != d->cand[k - 1])
                d->cand[k++] = d->cand[i];
        d->n_cand = k;
    }
}

// The file holding kept record k (the spool flushed up to byte end, or its --against index).
static int
kept_fd(struct dedupe *d, uint32_t k, uint64_t end, int *fd, struct kerr *err)
{
    const struct kept *kp = &d->kept[k];
    if (kp->src) {
        *fd = d->index_fd[kp->src - 1];
        return 0;
    }
    if (end > d->spool.flushed && spool_flush(&d->spool, err) != 0)
        return -1;
    *fd = d->spool.fd;
    return 0;
}

// Reads n bytes at offset rel inside kept record k's index record.
static int
kept_read(struct dedupe *d, uint32_t k, uint64_t rel, void *p, size_t n, struct kerr *err)
{
    int fd;
    uint64_t off = d->kept[k].off + rel;
    if (kept_fd(d, k, off + n, &fd, err) != 0)
        return -1;
    return pread_full(fd, off, p, n, d->kept[k].src ? "--against index" : "spool file", err);
}

// The id length: the record's first u32, little-endian.
static int
kept_id_len(struct dedupe *d, uint32_t k, uint32_t *len, struct kerr *err)
{
    unsigned char h[4];
    if (kept_read(d, k, 0, h, 4, err) != 0)
        return -1;
    *len = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    return 0;
}

// Kept record k's shingle set into d->cand_set.
static int
read_kept_shingles(struct dedupe *d, uint32_t k, struct kerr *err)
{
    uint32_t n = d->kept[k].n_shingles, id_len;
    struct minhash_set *s = &d->cand_set;
    if (n > s->cap) {
        free(s->v);
        s->cap = n;
        s->v = xmalloc((size_t)n * sizeof *s->v);
    }
    s->n = n;
    if (kept_id_len(d, k, &id_len, err) != 0)
        return -1;
    // Shingles follow the fixed part, the padded id and the band hashes.
    uint64_t off = d->kept[k].off + dedup_index_rec_size(id_len, (uint32_t)d->conf.mh.bands, 0);
    int fd;
    if (kept_fd(d, k, off + 8 * (uint64_t)n, &fd, err) != 0)
        return -1;
    return dedup_index_read_shingles(fd, off, n, s->v, err);
}

// Verify phase: the most similar candidate at or above the threshold (ties: the earliest).
static int
phase_verify(struct dedupe *d, int64_t *best, double *best_j, struct kerr *err)
{
    *best = -1;
    *best_j = 0;
    for (size_t i = 0; i < d->n_cand; i++) {
        uint32_t k = d->cand[i];
        if (read_kept_shingles(d, k, err) != 0)
            return -1;
        double j = minhash_jaccard(d->set.v, d->set.n, d->cand_set.v, d->cand_set.n);
        d->c.candidates++;
        if (j < d->conf.mh.threshold) {
            d->c.false_candidates++;
            continue;
        }
        if (j > *best_j) {
            *best_j = j;
            *best = k;
        }
    }
    return 0;
}

// Cluster phase: joins input record g to the cluster of kept record k.
static void
phase_cluster(struct dedupe *d, uint32_t k, uint32_t g)
{
    uint32_t root = minhash_uf_union(&d->uf, d->kept[k].g, g);
    uint32_t size = d->uf.size[root];
    if (size == 2)
        d->c.clusters++;
    if (size > d->c.largest_cluster)
        d->c.largest_cluster = size;
}

int
dedupe_raw_id(const struct dedupe_conf *conf, const struct json_obj *o, uint64_t pos,
              struct buf *out, struct kerr *err)
{
    struct json_val v;
    if (json_obj_path(o, conf->id_path, &v) && (v.type == JSON_STRING || v.type == JSON_NUMBER)) {
        if (v.raw_len > DEDUP_INDEX_MAX_ID)
            return kerr_set(err, "field '%s' is longer than %u bytes", conf->id_path,
                            DEDUP_INDEX_MAX_ID);
        buf_append(out, v.raw, v.raw_len);
    } else {
        buf_printf(out, "\"#%llu\"", (unsigned long long)pos);
    }
    return 0;
}

// The record's id as raw JSON (string or number as written), or "#N".
static int
record_id(struct dedupe *d, const struct json_obj *o, struct kerr *err)
{
    buf_reset(&d->id);
    return dedupe_raw_id(&d->conf, o, d->n_input, &d->id, err);
}

// For --clusters: the removed record's id and its survivor.
static int
remember_member(struct dedupe *d, const struct json_obj *o, uint32_t survivor, struct kerr *err)
{
    if (!d->conf.clusters)
        return 0;
    if (record_id(d, o, err) != 0)
        return -1;
    if (d->n_members == d->members_cap) {
        d->members_cap = d->members_cap ? d->members_cap * 2 : 1024;
        d->members = xrealloc(d->members, d->members_cap * sizeof *d->members);
    }
    struct member *m = &d->members[d->n_members++];
    m->survivor = survivor;
    m->id_len = (uint32_t)d->id.len;
    return spool_append(&d->member_spool, &d->id, &m->off, err);
}

int
dedupe_key_missing(const struct dedupe_conf *conf, const struct json_obj *o, struct kerr *err)
{
    struct json_val kv;
    bool found = json_obj_path(o, conf->key, &kv);
    if (found && kv.type == JSON_STRING)
        return 0;
    if (conf->missing == MISSING_ERROR)
        return kerr_set(err, found ? "field '%s' is not a string" : "no field '%s'", conf->key);
    return 1;
}

// The normalized key field into d->norm and its xxh3-128 into key. The field must be there.
static int
normalize_key(struct dedupe *d, const struct json_obj *o, uint64_t key[2], struct kerr *err)
{
    struct json_val kv;
    json_obj_path(o, d->conf.key, &kv);
    const char *s = kv.raw + 1; // between the quotes
    size_t n = kv.raw_len - 2;
    if (kv.escaped) {
        buf_reset(&d->text);
        json_str(&kv, &d->text);
        s = d->text.p;
        n = d->text.len;
    }
    if (normalize(d, s, n, err) != 0)
        return -1;
    hash128(d->norm.p, d->norm.len, key);
    return 0;
}

int
dedupe_sign(struct dedupe *d, const struct json_obj *o, struct dedupe_sig *s, struct kerr *err)
{
    if (normalize_key(d, o, s->key, err) != 0)
        return -1;
    s->n_shingles = 0;
    s->shingles = NULL;
    s->band = NULL;
    if (d->conf.mode == DEDUPE_NEAR) {
        phase_sign(d);
        s->n_shingles = d->set.n;
        s->shingles = d->set.v;
        s->band = d->band;
    }
    return 0;
}

int
dedupe_record(struct dedupe *d, const struct json_obj *o, struct dedupe_verdict *v,
              struct kerr *err)
{
    d->n_input++;
    d->c.records++;
    int miss = dedupe_key_missing(&d->conf, o, err);
    if (miss < 0)
        return -1;
    if (miss) {
        v->kind = d->conf.missing == MISSING_KEEP ? VERDICT_MISSING_KEEP : VERDICT_MISSING_DROP;
        if (v->kind == VERDICT_MISSING_KEEP)
            d->c.missing_kept++;
        else
            d->c.missing_dropped++;
        return 0;
    }
    if (d->next_g >= UINT32_MAX - 1)
        return kerr_set(err, "more than %u records in one run (shard the input)", UINT32_MAX - 2);
    uint32_t g = new_g(d);
    uint64_t key[2];
    if (normalize_key(d, o, key, err) != 0)
        return -1;

    int64_t e = keytab_get(&d->exact, key[0], key[1]);
    if (e >= 0) {
        v->kind = VERDICT_EXACT;
        v->survivor = (uint32_t)e;
        v->similarity = 1;
        d->c.exact++;
        phase_cluster(d, v->survivor, g);
        return remember_member(d, o, v->survivor, err);
    }
    bool near = d->conf.mode == DEDUPE_NEAR;
    if (near) {
        phase_sign(d);
        if (d->set.n > 0) {
            phase_candidates(d);
            int64_t best;
            double j;
            if (phase_verify(d, &best, &j, err) != 0)
                return -1;
            if (best >= 0) {
                v->kind = VERDICT_NEAR;
                v->survivor = (uint32_t)best;
                v->similarity = j;
                d->c.near++;
                phase_cluster(d, v->survivor, g);
                return remember_member(d, o, v->survivor, err);
            }
        }
    }
    // Kept: remember it for later records.
    if (d->n_kept >= DEDUP_INDEX_MAX_RECORDS - 1)
        return kerr_set(err, "more than %u distinct records", DEDUP_INDEX_MAX_RECORDS - 1);
    v->kind = VERDICT_KEEP;
    d->c.kept++;
    bool need_id = d->conf.keep_ids;
    buf_reset(&d->id);
    if (need_id && record_id(d, o, err) != 0)
        return -1;
    uint64_t off = 0;
    uint32_t nsh = near ? (uint32_t)d->set.n : 0;
    if (need_id || near) {
        struct spool *sp = &d->spool;
        off = sp->flushed + sp->pending.len;
        dedup_index_rec_encode(&sp->pending, key, d->id.p, (uint32_t)d->id.len,
                               near ? d->band : NULL, near ? (uint32_t)d->conf.mh.bands : 0,
                               d->set.v, nsh);
        d->c.spool_bytes += sp->flushed + sp->pending.len - off;
        if (sp->pending.len >= SPOOL_BUF && spool_flush(sp, err) != 0)
            return -1;
    }
    uint32_t k = kept_add(d, 0, off, nsh, g);
    keytab_put(&d->exact, key[0], key[1], k);
    if (near && nsh > 0)
        for (int b = 0; b < d->conf.mh.bands; b++)
            minhash_lsh_add(&d->lsh, b, d->band[b], k);
    return 0;
}

// ---- reporting ----------------------------------------------------------------------------

int
dedupe_kept_id(struct dedupe *d, uint32_t k, struct buf *out, struct kerr *err)
{
    uint32_t n;
    if (kept_id_len(d, k, &n, err) != 0)
        return -1;
    if (n == 0) { // stored without an id (a run that needed none)
        buf_puts(out, "null");
        return 0;
    }
    buf_reserve(out, n);
    if (kept_read(d, k, 24, out->p + out->len, n, err) != 0)
        return -1;
    out->len += n;
    out->p[out->len] = 0;
    return 0;
}

static int
cmp_member(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    if (x->survivor != y->survivor)
        return x->survivor < y->survivor ? -1 : 1;
    return (x->off > y->off) - (x->off < y->off); // input order
}

int
dedupe_write_clusters(struct dedupe *d, struct rec_writer *w, struct kerr *err)
{
    qsort(d->members, d->n_members, sizeof *d->members, cmp_member);
    struct buf line = {0}, sid = {0};
    int rc = 0;
    uint64_t cluster = 0;
    for (size_t i = 0; i < d->n_members && rc == 0;) {
        size_t j = i;
        while (j < d->n_members && d->members[j].survivor == d->members[i].survivor)
            j++;
        buf_reset(&sid);
        rc = dedupe_kept_id(d, d->members[i].survivor, &sid, err);
        buf_reset(&line);
        buf_printf(&line, "{\"cluster\":%llu,\"size\":%llu,\"survivor\":%s,\"members\":[%s",
                   (unsigned long long)cluster++, (unsigned long long)(j - i + 1), sid.p, sid.p);
        for (size_t m = i; m < j && rc == 0; m++) { // removed records in input order
            buf_putc(&line, ',');
            buf_reserve(&line, d->members[m].id_len);
            rc = spool_read(&d->member_spool, d->members[m].off, line.p + line.len,
                            d->members[m].id_len, err);
            line.len += d->members[m].id_len;
            line.p[line.len] = 0;
        }
        buf_puts(&line, "]}");
        if (rc == 0)
            rc = rec_writer_write(w, line.p, line.len, err);
        i = j;
    }
    buf_free(&line);
    buf_free(&sid);
    return rc;
}

int
dedupe_save_index(struct dedupe *d, const char *path, struct kerr *err)
{
    struct dedup_index_meta m = run_meta(d);
    if (spool_flush(&d->spool, err) != 0)
        return -1;
    struct dedup_index_writer *w = dedup_index_writer_open(path, &m, err);
    if (!w)
        return -1;
    struct buf rec = {0};
    uint32_t nb = m.near ? m.bands : 0;
    for (size_t k = 0; k < d->n_kept; k++) {
        const struct kept *kp = &d->kept[k];
        if (kp->src != 0)
            continue;
        uint32_t id_len;
        if (kept_id_len(d, (uint32_t)k, &id_len, err) != 0)
            goto fail;
        size_t size = dedup_index_rec_size(id_len, nb, kp->n_shingles);
        buf_reset(&rec);
        buf_reserve(&rec, size);
        if (spool_read(&d->spool, kp->off, rec.p, size, err) != 0 ||
            dedup_index_writer_add(w, rec.p, size, err) != 0)
            goto fail;
    }
    buf_free(&rec);
    return dedup_index_writer_close(w, err);
fail:
    buf_free(&rec);
    dedup_index_writer_abort(w);
    return -1;
}

void
dedupe_counts(const struct dedupe *d, struct dedupe_counts *c)
{
    *c = d->c;
    c->ram_bytes = keytab_bytes(&d->exact) + d->kept_cap * sizeof *d->kept +
                   minhash_lsh_bytes(&d->lsh) + d->uf.cap * 2 * sizeof(uint32_t) +
                   d->members_cap * sizeof *d->members;
}

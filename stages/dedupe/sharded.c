// SPDX-License-Identifier: MIT
// sharded: the sharded dedupe phases (see sharded.h and dedupe.1, "SHARDED RUNS").
//
// Why the result equals one `dedupe` process. A single run decides records in input order:
// an exact duplicate of a kept record is removed; otherwise, in near mode, every kept record
// whose LSH entry has the same 32-bit tag (common/minhash.c keys its buckets by that tag) is a
// candidate, verified by real Jaccard similarity, and the most similar one at or above the
// threshold (ties: the earliest) is the survivor. The phases reproduce exactly that:
//   - sign computes the same key, shingles and bands per record (engine.c's dedupe_sign) and
//     writes one bucket entry per band: the tag, the record's position and key;
//   - bucket groups the entries of tag range J (tag·R >> 32 = J) from every shard and emits
//     each pair of records sharing a tag — the candidates of the later record, whether the
//     earlier one is kept or not (that is only known in input order). Pairs of records with
//     the same key are left out: an exact duplicate of a kept record never reaches the near
//     check, and a removed record is never a candidate;
//   - cluster walks all records in input order (a merge of the shards' sign files by
//     position) with the exact table of kept records and a bitmap of kept positions, and for
//     each record verifies the pairs whose earlier record is kept: the same candidates, the
//     same verification, the same tie rule as the single run. It writes the decision for each
//     removed record (reason, survivor id, similarity) to the record's shard;
//   - apply removes them from the shard (and applies --missing, a per-record rule).
// Memory: sign holds one record; bucket the entries of its range (40 bytes per band entry,
// 1/R of them, twice while sorting); cluster the exact table of kept records (32 bytes per slot, at most half full),
// one bit per record and one record's candidates; apply one decision. Nothing holds texts.
//
// Work files (host byte order; they never leave the run), in --work DIR:
//   sign-I.rec       struct srec per record with the key field, in input order
//   sign-I.dat       per record: u32 id length, id bytes, zero pad to 8, u64 shingles
//   sign-I.band-J    struct bent per band entry whose tag falls in range J
//   sign-I.params    the run's parameters; written last, so it marks a finished shard
//   pairs-J          struct pair, sorted by (j, i), distinct
//   decide-I         struct dec + survivor id (padded to 8) per removed record of shard I
//   cluster.done     written last by cluster
#include "sharded.h"
#include "hash.h"
#include "keytab.h"
#include "rec.h"
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct srec {
    uint64_t seq, k0, k1, loc; // loc = shard << 48 | offset in sign-I.dat
    uint32_t nsh, pad;
};

struct bent {
    uint32_t tag, nsh;
    uint64_t seq, k0, k1, loc;
};

struct pair {
    uint64_t j, i, iloc; // j > i; iloc: where i's id and shingles are
    uint32_t insh, pad;
};

struct dec {
    uint64_t seq;
    uint32_t kind, id_len;
    double sim;
};

// Record I/O of a phase process. A sharded run keeps every core busy with one process per
// shard, so a process gains nothing from zstd's compression threads; without them (and with
// smaller hand-over buffers) it needs a fraction of the memory. The bytes differ from the
// threaded writer's, but a shard's output is only an intermediate: `shard merge` writes the
// final stream with the default writer, byte for byte what one `dedupe` writes.
#define PHASE_CHUNK ((size_t)256 << 10)

static struct rec_wopts
phase_wopts(const struct cli_common *c)
{
    return (struct rec_wopts){.level = c->level, .plain = c->plain, .force = c->force,
                              .chunk_bytes = PHASE_CHUNK, .workers = REC_WORKERS_NONE};
}

#define LOC_SHIFT 48
#define LOC_OFF(x) ((x) & ((UINT64_C(1) << LOC_SHIFT) - 1))
#define LOC_SHARD(x) ((uint32_t)((x) >> LOC_SHIFT))

// ---- files --------------------------------------------------------------------------------

static char *
work_path(const char *work, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *
work_path(const char *work, const char *fmt, ...)
{
    struct buf p = {0};
    buf_printf(&p, "%s/", work);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&p, fmt, ap);
    va_end(ap);
    return buf_detach(&p);
}

// An output work file: written to PATH.tmp (registered for removal on signals), renamed on
// close.
struct wfile {
    FILE *f;
    char *path, *tmp;
    int slot;
    uint64_t off;
};

static void
wfile_open(struct wfile *w, char *path)
{
    w->path = path;
    struct buf t = {0};
    buf_printf(&t, "%s.tmp", path);
    w->tmp = buf_detach(&t);
    w->slot = cli_tmp_register(w->tmp);
    if (!(w->f = fopen(w->tmp, "wb")))
        die("%s: %s", w->tmp, strerror(errno));
    setvbuf(w->f, NULL, _IOFBF, 1 << 18);
    w->off = 0;
}

static void
wfile_write(struct wfile *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        die("%s: write failed: %s", w->tmp, strerror(errno));
    w->off += n;
}

static void
wfile_close(struct wfile *w)
{
    if (fflush(w->f) != 0 || ferror(w->f) || fclose(w->f) != 0)
        die("%s: write failed: %s", w->tmp, strerror(errno));
    if (rename(w->tmp, w->path) != 0)
        die("%s: rename failed: %s", w->path, strerror(errno));
    cli_tmp_forget(w->slot);
    free(w->path);
    free(w->tmp);
}

static FILE *
rfile_open(char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("%s: %s (did the earlier phase finish?)", path, strerror(errno));
    setvbuf(f, NULL, _IOFBF, 1 << 18);
    free(path);
    return f;
}

// Reads one fixed-size item: 1, or 0 at a clean end. A torn item is fatal.
static int
rfile_item(FILE *f, void *p, size_t n, const char *what)
{
    size_t k = fread(p, 1, n, f);
    if (k == n)
        return 1;
    if (k == 0 && !ferror(f))
        return 0;
    die("%s: truncated work file", what);
}

static void
pread_all(int fd, uint64_t off, void *p, size_t n, const char *what)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("%s: read failed at offset %llu: %s", what, (unsigned long long)(off + got),
                k < 0 ? strerror(errno) : "unexpected end of file");
        got += (size_t)k;
    }
}

// The parameters every phase must agree on, as one line.
static char *
params_line(const struct dedupe_conf *conf, const struct dedupe_shard_opts *so)
{
    struct buf p = {0};
    buf_printf(&p, "mode=%s key=%s id=%s normalize=%s shards=%u ranges=%u",
               conf->mode == DEDUPE_NEAR ? "near" : "exact", conf->key, conf->id_path,
               dedup_norm_name(conf->norm), so->shards, so->ranges);
    if (conf->mode == DEDUPE_NEAR)
        buf_printf(&p, " shingle=%s ngram=%d bands=%d rows=%d seed=%llu threshold=%.17g",
                   conf->mh.kind == MINHASH_CHARS ? "char" : "word", conf->mh.ngram,
                   conf->mh.bands, conf->mh.rows, (unsigned long long)conf->mh.seed,
                   conf->mh.threshold);
    buf_putc(&p, '\n');
    return buf_detach(&p);
}

// Every shard's sign phase finished with the parameters of this run.
static void
check_signed(const struct dedupe_conf *conf, const struct dedupe_shard_opts *so)
{
    char *want = params_line(conf, so);
    struct buf have = {0};
    struct kerr err;
    for (uint32_t i = 0; i < so->shards; i++) {
        char *path = work_path(so->work, "sign-%u.params", i);
        buf_reset(&have);
        if (read_file(path, 1 << 16, &have, &err) != 0)
            die("%s (has `dedupe --phase sign --shard %u` finished?)", err.msg, i);
        if (have.len != strlen(want) || memcmp(have.p, want, have.len) != 0)
            die("%s: signed with other parameters:\n  %.*s  this run:\n  %s", path,
                (int)have.len, have.p, want);
        free(path);
    }
    buf_free(&have);
    free(want);
}

static uint32_t
tag_range(uint32_t tag, uint32_t ranges)
{
    return (uint32_t)(((uint64_t)tag * ranges) >> 32);
}

// ---- sign ---------------------------------------------------------------------------------

static void
phase_sign_run(const struct dedupe_conf *conf, const struct dedupe_shard_opts *so,
               const char *const *files, size_t n_files, struct stats *st)
{
    struct kerr err;
    struct dedupe *d = dedupe_new(conf, &err);
    if (!d)
        die_kerr(&err);
    uint32_t me = (uint32_t)so->shard;
    bool near = conf->mode == DEDUPE_NEAR;
    struct wfile rec, dat, *band = NULL;
    wfile_open(&rec, work_path(so->work, "sign-%u.rec", me));
    wfile_open(&dat, work_path(so->work, "sign-%u.dat", me));
    if (near) {
        band = xcalloc(so->ranges, sizeof *band);
        for (uint32_t j = 0; j < so->ranges; j++)
            wfile_open(&band[j], work_path(so->work, "sign-%u.band-%u", me, j));
    }
    struct json_obj obj;
    json_obj_init(&obj);
    struct buf id = {0};
    struct rec_line line;
    uint64_t missing = 0, prev = 0;
    bool any = false;
    static const char zero[8];
    for (size_t f = 0; f < n_files; f++) {
        struct rec_reader *r = rec_reader_open(files[f], &err);
        if (!r)
            die_kerr(&err);
        rec_reader_set_chunk(r, PHASE_CHUNK);
        int rc;
        while ((rc = rec_reader_next_obj(r, &line, &obj, &err)) == 1) {
            st->records_in++;
            st->bytes_in += line.n + 1;
            uint64_t seq;
            int miss = dedupe_key_missing(conf, &obj, &err);
            if (miss < 0 || shard_seq_get(&obj, &seq, &err) != 0)
                die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)line.lineno,
                    err.msg);
            if (any && seq <= prev)
                die("%s:%llu: \"%s\" does not ascend (shards keep input order)",
                    rec_reader_name(r), (unsigned long long)line.lineno, SHARD_SEQ_KEY);
            any = true;
            prev = seq;
            if (miss) {
                missing++;
                continue;
            }
            struct dedupe_sig s;
            buf_reset(&id);
            if (dedupe_sign(d, &obj, &s, &err) != 0 ||
                dedupe_raw_id(conf, &obj, seq + 1, &id, &err) != 0)
                die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)line.lineno,
                    err.msg);
            uint64_t loc = (uint64_t)me << LOC_SHIFT | dat.off;
            struct srec sr = {seq, s.key[0], s.key[1], loc, (uint32_t)s.n_shingles, 0};
            wfile_write(&rec, &sr, sizeof sr);
            uint32_t idl = (uint32_t)id.len;
            wfile_write(&dat, &idl, 4);
            wfile_write(&dat, id.p, id.len);
            wfile_write(&dat, zero, (8 - (4 + id.len) % 8) % 8);
            wfile_write(&dat, s.shingles, s.n_shingles * 8);
            if (near && s.n_shingles > 0)
                for (int b = 0; b < conf->mh.bands; b++) {
                    uint32_t tag = minhash_lsh_tag(b, s.band[b]);
                    struct bent e = {tag, (uint32_t)s.n_shingles, seq, s.key[0], s.key[1], loc};
                    wfile_write(&band[tag_range(tag, so->ranges)], &e, sizeof e);
                }
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    if (dat.off >> LOC_SHIFT)
        die("%s: shard too large (more than 2^48 bytes of signatures)", dat.path);
    wfile_close(&rec);
    wfile_close(&dat);
    if (near)
        for (uint32_t j = 0; j < so->ranges; j++)
            wfile_close(&band[j]);
    // The completion marker goes last.
    struct wfile pf;
    wfile_open(&pf, work_path(so->work, "sign-%u.params", me));
    char *pl = params_line(conf, so);
    wfile_write(&pf, pl, strlen(pl));
    wfile_close(&pf);
    free(pl);
    stats_u64(st, "missing", missing);
    free(band);
    buf_free(&id);
    json_obj_free(&obj);
    dedupe_del(d);
}

// ---- bucket -------------------------------------------------------------------------------

static int
cmp_bent(const void *a, const void *b)
{
    const struct bent *x = a, *y = b;
    if (x->tag != y->tag)
        return x->tag < y->tag ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static int
cmp_pair(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->j != y->j)
        return x->j < y->j ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

// Sorts e[0..n) by (tag, position): a stable radix sort on the tag (two 16-bit passes through
// a copy), then each run of equal tags by position. Runs are short (mostly one entry) and
// already in order shard by shard, so insertion sort does them; a long one goes to qsort.
static void
bent_sort(struct bent *e, size_t n)
{
    if (n < 2)
        return;
    struct bent *t = xmalloc(n * sizeof *t), *from = e, *to = t;
    size_t *at = xmalloc(65536 * sizeof *at);
    for (int shift = 0; shift < 32; shift += 16) {
        memset(at, 0, 65536 * sizeof *at);
        for (size_t i = 0; i < n; i++)
            at[from[i].tag >> shift & 0xFFFF]++;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = at[d];
            at[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            to[at[from[i].tag >> shift & 0xFFFF]++] = from[i];
        struct bent *x = from;
        from = to;
        to = x;
    } // two passes: the sorted entries are back in e
    free(at);
    free(t);
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && e[b].tag == e[a].tag;)
            b++;
        if (b - a > 32) {
            qsort(e + a, b - a, sizeof *e, cmp_bent);
            continue;
        }
        for (size_t i = a + 1; i < b; i++) {
            struct bent x = e[i];
            size_t j = i;
            for (; j > a && e[j - 1].seq > x.seq; j--)
                e[j] = e[j - 1];
            e[j] = x;
        }
    }
}

static void
phase_bucket_run(const struct dedupe_conf *conf, const struct dedupe_shard_opts *so,
                 struct stats *st)
{
    check_signed(conf, so);
    uint32_t me = (uint32_t)so->range;
    struct bent *e = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t i = 0; i < so->shards && conf->mode == DEDUPE_NEAR; i++) {
        char *path = work_path(so->work, "sign-%u.band-%u", i, me);
        struct stat sb;
        if (stat(path, &sb) != 0)
            die("%s: %s", path, strerror(errno));
        size_t k = (size_t)sb.st_size / sizeof *e;
        if (n + k > cap) {
            cap = n + k;
            e = xrealloc(e, cap * sizeof *e);
        }
        FILE *f = rfile_open(path);
        if (k && fread(e + n, sizeof *e, k, f) != k)
            die("sign-%u.band-%u: truncated work file", i, me);
        fclose(f);
        n += k;
    }
    bent_sort(e, n);
    struct pair *p = NULL;
    size_t np = 0, pcap = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && e[b].tag == e[a].tag)
            b++;
        for (size_t y = a + 1; y < b; y++)     // later record (group sorted by position)
            for (size_t x = a; x < y; x++) {   // earlier record
                if (e[x].seq == e[y].seq || (e[x].k0 == e[y].k0 && e[x].k1 == e[y].k1))
                    continue;
                if (np == pcap) {
                    pcap = pcap ? 2 * pcap : 4096;
                    p = xrealloc(p, pcap * sizeof *p);
                }
                p[np++] = (struct pair){e[y].seq, e[x].seq, e[x].loc, e[x].nsh, 0};
            }
        a = b;
    }
    free(e);
    qsort(p, np, sizeof *p, cmp_pair);
    size_t k = 0;
    for (size_t i = 0; i < np; i++)
        if (k == 0 || p[i].j != p[k - 1].j || p[i].i != p[k - 1].i)
            p[k++] = p[i];
    struct wfile w;
    wfile_open(&w, work_path(so->work, "pairs-%u", me));
    wfile_write(&w, p, k * sizeof *p);
    wfile_close(&w);
    st->records_in = n;
    st->records_out = k;
    stats_u64(st, "band_entries", n);
    stats_u64(st, "candidate_pairs", k);
    free(p);
}

// ---- cluster ------------------------------------------------------------------------------

// What cluster reads back from the shards' sign-I.dat files.
struct dats {
    int *fd;
    char **name;
    struct buf id;
    uint64_t *sh;
    size_t sh_cap;
};

// The id at loc into d->id; returns the offset of the shingles that follow it.
static uint64_t
dats_id(struct dats *d, uint64_t loc)
{
    uint32_t s = LOC_SHARD(loc), len;
    uint64_t off = LOC_OFF(loc);
    pread_all(d->fd[s], off, &len, 4, d->name[s]);
    if (len > DEDUP_INDEX_MAX_ID)
        die("%s: corrupt work file at offset %llu", d->name[s], (unsigned long long)off);
    buf_reset(&d->id);
    buf_reserve(&d->id, len);
    pread_all(d->fd[s], off + 4, d->id.p, len, d->name[s]);
    d->id.len = len;
    d->id.p[len] = 0;
    return off + 4 + len + (8 - (4 + len) % 8) % 8;
}

// The shingles at loc into out (grown as needed).
static void
dats_shingles(struct dats *d, uint64_t loc, uint32_t n, uint64_t **out, size_t *cap)
{
    uint32_t s = LOC_SHARD(loc), len;
    pread_all(d->fd[s], LOC_OFF(loc), &len, 4, d->name[s]);
    uint64_t off = LOC_OFF(loc) + 4 + len + (8 - (4 + len) % 8) % 8;
    if (n > *cap) {
        *cap = n;
        *out = xrealloc(*out, n * sizeof **out);
    }
    pread_all(d->fd[s], off, *out, (size_t)n * 8, d->name[s]);
}

struct pstream {
    FILE *f;
    char *name;
    bool live;
    struct pair cur;
};

static void
pstream_next(struct pstream *p)
{
    p->live = rfile_item(p->f, &p->cur, sizeof p->cur, p->name) == 1;
}

static void
phase_cluster_run(const struct dedupe_conf *conf, const struct dedupe_shard_opts *so,
                  struct stats *st)
{
    check_signed(conf, so);
    uint32_t N = so->shards, R = so->ranges;
    bool near = conf->mode == DEDUPE_NEAR;
    FILE **rec = xcalloc(N, sizeof *rec);
    struct srec *cur = xcalloc(N, sizeof *cur);
    bool *live = xcalloc(N, sizeof *live);
    struct dats d = {xcalloc(N, sizeof(int)), xcalloc(N, sizeof(char *)), {0}, NULL, 0};
    struct wfile *dec = xcalloc(N, sizeof *dec);
    uint64_t max_seq = 0;
    for (uint32_t i = 0; i < N; i++) {
        char *rp = work_path(so->work, "sign-%u.rec", i);
        struct stat sb;
        if (stat(rp, &sb) == 0 && sb.st_size >= (off_t)sizeof(struct srec)) {
            FILE *f = fopen(rp, "rb"); // the last record has the largest position
            struct srec last;
            if (!f || fseeko(f, sb.st_size - (off_t)sizeof last, SEEK_SET) != 0 ||
                fread(&last, sizeof last, 1, f) != 1)
                die("%s: cannot read", rp);
            fclose(f);
            if (last.seq > max_seq)
                max_seq = last.seq;
        }
        rec[i] = rfile_open(rp);
        live[i] = rfile_item(rec[i], &cur[i], sizeof cur[i], "sign .rec file") == 1;
        d.name[i] = work_path(so->work, "sign-%u.dat", i);
        if ((d.fd[i] = open(d.name[i], O_RDONLY)) < 0)
            die("%s: %s", d.name[i], strerror(errno));
        wfile_open(&dec[i], work_path(so->work, "decide-%u", i));
    }
    struct pstream *ps = xcalloc(R, sizeof *ps);
    for (uint32_t j = 0; j < R && near; j++) {
        ps[j].name = work_path(so->work, "pairs-%u", j);
        char *path = xstrdup(ps[j].name);
        ps[j].f = rfile_open(path);
        pstream_next(&ps[j]);
    }
    uint8_t *kept = xcalloc(max_seq / 8 + 1, 1);
    struct keytab xt = {0}; // kept record's key -> its locator in the sign data
    struct pair *cand = NULL;
    size_t ncand = 0, ccap = 0;
    uint64_t *mine = NULL, *other = NULL;
    size_t mine_cap = 0, other_cap = 0;
    uint64_t n_exact = 0, n_near = 0, verified = 0, below = 0, prev = 0;
    bool any = false;
    static const char zero[8];
    for (;;) {
        int s = -1;
        for (uint32_t i = 0; i < N; i++)
            if (live[i] && (s < 0 || cur[i].seq < cur[s].seq))
                s = (int)i;
        if (s < 0)
            break;
        struct srec r = cur[s];
        live[s] = rfile_item(rec[s], &cur[s], sizeof cur[s], "sign .rec file") == 1;
        if (any && r.seq <= prev)
            die("record position %llu appears twice (shards overlap?)",
                (unsigned long long)r.seq);
        any = true;
        prev = r.seq;
        st->records_in++;
        // Candidates: pairs (i, r) from every range, earlier record kept.
        ncand = 0;
        for (uint32_t j = 0; j < R && near; j++) {
            while (ps[j].live && ps[j].cur.j < r.seq)
                pstream_next(&ps[j]); // cannot happen with consistent files; skip safely
            while (ps[j].live && ps[j].cur.j == r.seq) {
                if (kept[ps[j].cur.i / 8] >> (ps[j].cur.i % 8) & 1) {
                    if (ncand == ccap) {
                        ccap = ccap ? 2 * ccap : 256;
                        cand = xrealloc(cand, ccap * sizeof *cand);
                    }
                    cand[ncand++] = ps[j].cur;
                }
                pstream_next(&ps[j]);
            }
        }
        struct dec out = {r.seq, VERDICT_KEEP, 0, 0};
        uint64_t surv_loc = 0;
        int64_t x = keytab_get(&xt, r.k0, r.k1);
        if (x >= 0) {
            out.kind = VERDICT_EXACT;
            out.sim = 1;
            surv_loc = (uint64_t)x;
            n_exact++;
        } else if (near && r.nsh > 0 && ncand > 0) {
            qsort(cand, ncand, sizeof *cand, cmp_pair);
            dats_shingles(&d, r.loc, r.nsh, &mine, &mine_cap);
            double best_j = 0;
            int64_t best = -1;
            for (size_t c = 0; c < ncand; c++) {
                if (c > 0 && cand[c].i == cand[c - 1].i)
                    continue;
                dats_shingles(&d, cand[c].iloc, cand[c].insh, &other, &other_cap);
                double jac = minhash_jaccard(mine, r.nsh, other, cand[c].insh);
                verified++;
                if (jac < conf->mh.threshold) {
                    below++;
                    continue;
                }
                if (jac > best_j) {
                    best_j = jac;
                    best = (int64_t)c;
                }
            }
            if (best >= 0) {
                out.kind = VERDICT_NEAR;
                out.sim = best_j;
                surv_loc = cand[best].iloc;
                n_near++;
            }
        }
        if (out.kind == VERDICT_KEEP) {
            kept[r.seq / 8] |= (uint8_t)(1u << (r.seq % 8));
            keytab_put(&xt, r.k0, r.k1, r.loc);
            st->records_out++;
            continue;
        }
        dats_id(&d, surv_loc);
        out.id_len = (uint32_t)d.id.len;
        wfile_write(&dec[s], &out, sizeof out);
        wfile_write(&dec[s], d.id.p, d.id.len);
        wfile_write(&dec[s], zero, (8 - d.id.len % 8) % 8);
    }
    for (uint32_t i = 0; i < N; i++) {
        wfile_close(&dec[i]);
        fclose(rec[i]);
        close(d.fd[i]);
        free(d.name[i]);
    }
    for (uint32_t j = 0; j < R && near; j++) {
        fclose(ps[j].f);
        free(ps[j].name);
    }
    struct wfile done;
    wfile_open(&done, work_path(so->work, "cluster.done"));
    wfile_close(&done);
    stats_u64(st, "exact_removed", n_exact);
    stats_u64(st, "near_removed", n_near);
    stats_u64(st, "candidates_verified", verified);
    stats_u64(st, "candidates_below_threshold", below);
    stats_u64(st, "table_bytes", keytab_bytes(&xt) + max_seq / 8 + 1);
    keytab_free(&xt);
    free(kept);
    free(cand);
    free(mine);
    free(other);
    free(ps);
    free(dec);
    free(d.fd);
    free(d.name);
    buf_free(&d.id);
    free(rec);
    free(cur);
    free(live);
}

// ---- apply --------------------------------------------------------------------------------

void
dedupe_reject_line(const struct json_obj *o, enum dedupe_kind kind, const char *dup_id,
                   size_t dup_len, double sim, struct buf *line, struct buf *vals)
{
    buf_reset(vals);
    struct json_edit ed[3];
    size_t ne = 0;
    const char *reason = kind == VERDICT_EXACT  ? "\"exact\""
                         : kind == VERDICT_NEAR ? "\"near\""
                                                : "\"missing\"";
    ed[ne++] = (struct json_edit){"reason", reason, strlen(reason)};
    if (kind == VERDICT_EXACT || kind == VERDICT_NEAR) {
        json_write_double(vals, round(sim * 1e6) / 1e6);
        ed[ne++] = (struct json_edit){"duplicate_of", dup_id, dup_len};
        ed[ne++] = (struct json_edit){"similarity", vals->p, vals->len};
    }
    buf_reset(line);
    json_obj_rewrite(o, ed, ne, line);
}

// Parses line l of r into o and reads its position; dies with the line's position on errors.
static void
apply_parse(struct rec_reader *r, const struct rec_line *l, struct json_obj *o, uint64_t *seq)
{
    struct json_error je;
    struct kerr err;
    if (json_obj_parse(o, l->p, l->n, &je) != 0)
        die("%s:%llu:%zu: invalid JSON: %s", rec_reader_name(r), (unsigned long long)l->lineno,
            je.offset + 1, je.msg);
    if (shard_seq_get(o, seq, &err) != 0)
        die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)l->lineno, err.msg);
}

static void
phase_apply_run(const struct dedupe_conf *conf, const struct cli_common *c,
                const struct dedupe_shard_opts *so, const char *const *files, size_t n_files,
                struct stats *st)
{
    char *done = work_path(so->work, "cluster.done");
    if (access(done, F_OK) != 0)
        die("%s: missing (has `dedupe --phase cluster` finished?)", done);
    free(done);
    char *dpath = work_path(so->work, "decide-%u", (unsigned)so->shard);
    char *dname = xstrdup(dpath);
    FILE *df = rfile_open(dpath);
    struct dec dc;
    struct buf sid = {0};
    bool have = false;
    struct kerr err;
    struct rec_wopts wo = phase_wopts(c);
    struct rec_writer *out = rec_writer_open(c->output, &wo, &err), *rej = NULL;
    if (!out || (so->rejects && !(rej = rec_writer_open(so->rejects, &wo, &err))))
        die_kerr(&err);
    struct json_obj obj;
    json_obj_init(&obj);
    struct buf line = {0}, vals = {0};
    struct rec_line l;
    uint64_t removed = 0, missing_dropped = 0, prev = 0;
    bool any = false;
    // Reads the next decision (and its survivor id).
#define NEXT_DECISION()                                                                        \
    do {                                                                                       \
        have = rfile_item(df, &dc, sizeof dc, dname) == 1;                                     \
        if (have) {                                                                            \
            size_t padded = dc.id_len + (8 - dc.id_len % 8) % 8;                               \
            if (dc.id_len > DEDUP_INDEX_MAX_ID)                                                \
                die("%s: corrupt work file", dname);                                          \
            buf_reset(&sid);                                                                   \
            buf_reserve(&sid, padded);                                                         \
            if (padded && fread(sid.p, 1, padded, df) != padded)                               \
                die("%s: truncated work file", dname);                                        \
            sid.len = dc.id_len;                                                               \
        }                                                                                      \
    } while (0)
    NEXT_DECISION();
    // sign parsed and checked every line of this shard already: a kept record is copied with
    // its position read off the front of the line, unparsed. Only a record whose fate needs
    // its fields is parsed: every record under --missing drop (is the key there?), a removed
    // record when rejects are written, and a line whose position is not at the front.
    bool parse_all = conf->missing == MISSING_DROP;
    for (size_t f = 0; f < n_files; f++) {
        struct rec_reader *r = rec_reader_open(files[f], &err);
        if (!r)
            die_kerr(&err);
        rec_reader_set_chunk(r, PHASE_CHUNK);
        int rc;
        while ((rc = rec_reader_next(r, &l, &err)) == 1) {
            st->records_in++;
            st->bytes_in += l.n + 1;
            uint64_t seq;
            bool parsed = parse_all || !shard_seq_peek(l.p, l.n, &seq);
            if (parsed)
                apply_parse(r, &l, &obj, &seq);
            if (any && seq <= prev)
                die("%s:%llu: \"%s\" does not ascend (shards keep input order)",
                    rec_reader_name(r), (unsigned long long)l.lineno, SHARD_SEQ_KEY);
            any = true;
            prev = seq;
            enum dedupe_kind kind = VERDICT_KEEP;
            int miss = 0;
            if (parse_all && (miss = dedupe_key_missing(conf, &obj, &err)) < 0)
                die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)l.lineno, err.msg);
            if (miss) {
                kind = VERDICT_MISSING_DROP;
                missing_dropped++;
            } else if (have && dc.seq == seq) {
                kind = (enum dedupe_kind)dc.kind;
                removed++;
            } else if (have && dc.seq < seq) {
                die("%s: decision for position %llu matches no record of this shard",
                    dname, (unsigned long long)dc.seq);
            }
            if (kind == VERDICT_KEEP) {
                if (rec_writer_write(out, l.p, l.n, &err) != 0)
                    die_kerr(&err);
            } else if (rej) {
                if (!parsed)
                    apply_parse(r, &l, &obj, &seq);
                dedupe_reject_line(&obj, kind, sid.p, sid.len, dc.sim, &line, &vals);
                if (rec_writer_write(rej, line.p, line.len, &err) != 0)
                    die_kerr(&err);
            }
            if (kind == VERDICT_EXACT || kind == VERDICT_NEAR)
                NEXT_DECISION();
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
#undef NEXT_DECISION
    if (have)
        die("%s: decisions left over at position %llu (was the shard changed?)", dname,
            (unsigned long long)dc.seq);
    st->records_out = rec_writer_records(out);
    st->bytes_out = rec_writer_bytes(out);
    if ((rej && rec_writer_close(rej, &err) != 0) || rec_writer_close(out, &err) != 0)
        die_kerr(&err);
    stats_u64(st, "removed", removed);
    stats_u64(st, "missing_dropped", missing_dropped);
    fclose(df);
    free(dname);
    buf_free(&sid);
    buf_free(&line);
    buf_free(&vals);
    json_obj_free(&obj);
}

void
dedupe_shard_run(const struct dedupe_conf *conf, const struct cli_common *c,
                 const struct dedupe_shard_opts *so, const char *const *files, size_t n_files)
{
    static const char *const names[] = {"", "sign", "bucket", "cluster", "apply"};
    if (!so->work)
        die_usage("--phase %s needs --work DIR", names[so->phase]);
    if (!so->shards)
        die_usage("--phase %s needs --shards N", names[so->phase]);
    bool per_shard = so->phase == PHASE_SIGN || so->phase == PHASE_APPLY;
    if (per_shard && (so->shard < 0 || so->shard >= so->shards))
        die_usage("--phase %s needs --shard I with 0 <= I < %u", names[so->phase], so->shards);
    if (so->phase == PHASE_BUCKET && (so->range < 0 || so->range >= so->ranges))
        die_usage("--phase bucket needs --range J with 0 <= J < %u", so->ranges);
    if (per_shard && n_files == 0)
        die_usage("--phase %s reads the shard's file(s): none given", names[so->phase]);
    if (so->phase == PHASE_SIGN && mkdir(so->work, 0777) != 0 && errno != EEXIST)
        die("%s: %s", so->work, strerror(errno));
    struct stats st;
    stats_init(&st, "dedupe");
    stats_str(&st, "phase", names[so->phase]);
    switch (so->phase) {
    case PHASE_SIGN:
        phase_sign_run(conf, so, files, n_files, &st);
        break;
    case PHASE_BUCKET:
        phase_bucket_run(conf, so, &st);
        break;
    case PHASE_CLUSTER:
        phase_cluster_run(conf, so, &st);
        break;
    case PHASE_APPLY:
        phase_apply_run(conf, c, so, files, n_files, &st);
        break;
    case PHASE_NONE:
        break;
    }
    struct kerr err;
    if (stats_write(&st, c->stats, &err) != 0)
        die_kerr(&err);
    stats_free(&st);
}

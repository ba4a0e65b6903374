// SPDX-License-Identifier: MIT
// tok: the tokenizer core — building a vocabulary, the byte-to-unicode map, the merge (pair)
// table, BPE encoding and decoding, special tokens, the vocabulary view, and tiktoken rank
// files. tokenizer.json and the npm encoder JSON live in tok_json.c, training in tok_train.c.
//
// Encoding a piece: a piece that is a token is emitted whole when the model allows it
// (tiktoken; HF "ignore_merges"). Otherwise it starts as one token per byte and the adjacent
// pair with the lowest rank is merged until none is left (leftmost on ties). Short pieces use
// a flat array (quadratic but tiny); pieces longer than BPE_SMALL use a linked list and a
// min-tree of the pairs' ranks, O(n log n) — a 1 MB run of one character stays fast. A
// per-thread cache of short pieces skips most of this on natural text.
#include "tok_int.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BPE_SMALL 48
#define BYTE_PAIRS_BYTES (256 * 256 * sizeof(struct tok_rank))
#define TOK_MAX_IDS (1 << 24)

// ---- byte-to-unicode -----------------------------------------------------------------------

static bool
byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t
tok_byte_to_cp(uint8_t b)
{
    if (byte_is_printable(b))
        return b;
    unsigned k = 0; // rank of b among the non-printable bytes
    for (unsigned x = 0; x < b; x++)
        k += !byte_is_printable(x);
    return 0x100 + k;
}

int
tok_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    unsigned k = cp - 0x100;
    for (unsigned x = 0; x < 256; x++)
        if (!byte_is_printable(x) && k-- == 0)
            return (int)x;
    return -1;
}

static char b2u[256][3]; // UTF-8 of each byte's code point (2 bytes max), [2] = length
static int16_t u2b[0x100 + 68];

static void
b2u_init(void)
{
    if (b2u['a'][2])
        return;
    for (int i = 0; i < 0x100 + 68; i++)
        u2b[i] = -1;
    for (int b = 255; b >= 0; b--) {
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        u2b[cp] = (int16_t)b;
        if (cp < 0x80) {
            b2u[b][0] = (char)cp;
            b2u[b][2] = 1;
        } else {
            b2u[b][0] = (char)(0xC0 | (cp >> 6));
            b2u[b][1] = (char)(0x80 | (cp & 0x3F));
            b2u[b][2] = 2;
        }
    }
}

void
tok_bytes_to_unicode(const char *s, size_t n, struct buf *out)
{
    b2u_init();
    buf_reserve(out, 2 * n);
    for (size_t i = 0; i < n; i++) {
        const char *u = b2u[(unsigned char)s[i]];
        buf_append(out, u, (size_t)u[2]);
    }
}

int
tok_unicode_to_bytes(const char *s, size_t n, struct buf *out)
{
    b2u_init();
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        if (c < 0x80) {
            cp = c;
            i++;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < n && ((unsigned char)s[i + 1] & 0xC0) == 0x80) {
            cp = ((uint32_t)(c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1;
        }
        if (cp >= 0x100 + 68 || u2b[cp] < 0)
            return -1;
        buf_putc(out, (char)u2b[cp]);
    }
    return 0;
}

// ---- building ------------------------------------------------------------------------------

#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN (HUGE_PAGE / 4) // smaller blocks come from malloc as usual

void *
tok_big_alloc(size_t bytes)
{
    if (bytes < HUGE_MIN)
        return xmalloc(bytes);
    bytes = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p;
    if (posix_memalign(&p, HUGE_PAGE, bytes) != 0)
        return xmalloc(bytes); // out of memory there too: xmalloc's message and exit
    madvise(p, bytes, MADV_HUGEPAGE); // a hint: without transparent huge pages it fails, harmlessly
    return p;
}

void *
tok_table_alloc(size_t bytes)
{
    if (bytes < HUGE_MIN)
        return xcalloc(1, bytes);
    // Fresh anonymous memory is zero, and a page is only zeroed when first touched; map 2 MB
    // more than needed and trim, so the table starts on a huge-page boundary.
    size_t n = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    char *m = mmap(NULL, n + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        xmalloc(SIZE_MAX); // out of memory: xmalloc's message and exit
    char *p = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > m)
        munmap(m, (size_t)(p - m));
    if (p + n < m + n + HUGE_PAGE)
        munmap(p + n, (size_t)(m + n + HUGE_PAGE - (p + n)));
    madvise(p, n, MADV_HUGEPAGE);
    return p;
}

void
tok_table_free(void *p, size_t bytes)
{
    if (!p)
        return;
    if (bytes < HUGE_MIN)
        free(p);
    else
        munmap(p, (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
}

struct tok *
tok_alloc(enum tok_pre pre, const char *regex)
{
    b2u_init();
    struct tok *t = xcalloc(1, sizeof *t);
    t->pre = pre;
    t->regex = xstrdup(regex ? regex : tok_pre_regex_of(pre));
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    atomic_init(&t->merges_ready, true);
    pthread_mutex_init(&t->lazy_lock, NULL);
    return t;
}

static void cache_free(struct tok *t);

void
tok_del(struct tok *t)
{
    if (!t)
        return;
    free(t->ent);
    buf_free(&t->slab);
    tok_table_free(t->bmap, t->bmap ? (t->bmask + 1) * sizeof *t->bmap : 0);
    free(t->pairs);
    tok_table_free(t->byte_pairs, BYTE_PAIRS_BYTES);
    free(t->merges);
    free(t->regex);
    free(t->spec);
    cache_free(t);
    pthread_mutex_destroy(&t->lazy_lock);
    free(t);
}

static void
tok_grow(struct tok *t, size_t n)
{
    if (n <= t->n)
        return;
    if (n > t->cap) {
        t->cap = n > 2 * t->cap ? n : 2 * t->cap;
        t->ent = xrealloc(t->ent, t->cap * sizeof *t->ent);
    }
    memset(t->ent + t->n, 0, (n - t->n) * sizeof *t->ent);
    t->n = n;
}

void
tok_reserve(struct tok *t, size_t ids, size_t bytes)
{
    if (!t->ent && ids) {
        t->ent = tok_big_alloc(ids * sizeof *t->ent);
        t->cap = ids;
    }
    if (!t->slab.p && bytes) {
        t->slab.p = tok_big_alloc(bytes + 1);
        t->slab.cap = bytes + 1;
    }
}

// Makes id the n bytes already written at the end of the slab (past slab.len).
static int
set_entry(struct tok *t, int32_t id, size_t n, enum tok_type type, struct kerr *err)
{
    if (id < 0 || id >= TOK_MAX_IDS)
        return kerr_set(err, "token id %ld out of range (0..%d)", (long)id, TOK_MAX_IDS - 1);
    if (n == 0)
        return kerr_set(err, "token %ld is empty", (long)id);
    if (n > UINT32_MAX / 2 || t->slab.len > UINT32_MAX / 2)
        return kerr_set(err, "vocabulary too large");
    tok_grow(t, (size_t)id + 1);
    if (t->ent[id].type)
        return kerr_set(err, "token id %ld appears twice", (long)id);
    t->ent[id].off = (uint32_t)t->slab.len;
    t->ent[id].len = (uint32_t)n;
    t->ent[id].type = (uint8_t)type;
    t->slab.len += n;
    t->slab.p[t->slab.len] = 0;
    return 0;
}

int
tok_set_token(struct tok *t, int32_t id, const char *s, size_t n, enum tok_type type,
              struct kerr *err)
{
    buf_reserve(&t->slab, n);
    if (n)
        memcpy(t->slab.p + t->slab.len, s, n);
    return set_entry(t, id, n, type, err);
}

// ---- the bytes → id map -----------------------------------------------------------------
// Keys are byte strings; most are short. A string's key word packs its bytes into 64 bits with
// overlapping loads — for a given length up to 8 it determines the bytes, so short tokens
// compare with one integer test and never touch the slab; longer ones compare their first 8
// bytes, then the rest. The hash is two multiplications for up to 16 bytes, xxh3 beyond.

static inline uint64_t
load64(const char *s)
{
    uint64_t v;
    memcpy(&v, s, 8);
    return v;
}

static inline uint64_t
load32(const char *s)
{
    uint32_t v;
    memcpy(&v, s, 4);
    return v;
}

static inline uint64_t
key_word(const char *s, size_t n)
{
    if (n >= 8)
        return load64(s);
    if (n >= 4)
        return load32(s) | load32(s + n - 4) << 32;
    if (n == 0)
        return 0;
    const unsigned char *u = (const unsigned char *)s;
    return u[0] | (uint64_t)u[n / 2] << 8 | (uint64_t)u[n - 1] << 16;
}

static inline uint64_t
mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    return x ^ (x >> 32);
}

#define GOLDEN 0x9e3779b97f4a7c15ull

// Hash of s[0..n) whose key word is w.
static inline uint64_t
bytes_hash(const char *s, size_t n, uint64_t w)
{
    if (n <= 8)
        return mix(w + n * GOLDEN);
    if (n <= 16)
        return mix(w ^ mix(load64(s + n - 8) + n * GOLDEN));
    return hash64(s, n);
}

// Whether slot b holds s[0..n), whose key word is w.
static inline bool
slot_is(const struct tok *t, const struct tok_bslot *b, uint64_t w, const char *s, size_t n)
{
    return b->word == w && b->len == n &&
           (n <= 8 || memcmp(t->slab.p + t->ent[b->id].off + 8, s + 8, n - 8) == 0);
}

static inline int32_t
bmap_get_h(const struct tok *t, uint64_t hash, uint64_t w, const char *s, size_t n)
{
    for (size_t h = hash & t->bmask;; h = (h + 1) & t->bmask) {
        const struct tok_bslot *b = &t->bmap[h];
        if (!b->len)
            return -1;
        if (slot_is(t, b, w, s, n))
            return b->id;
    }
}

static inline int32_t
bmap_get(const struct tok *t, const char *s, size_t n)
{
    if (!t->bmap)
        return -1;
    uint64_t w = key_word(s, n);
    return bmap_get_h(t, bytes_hash(s, n, w), w, s, n);
}

// Inserts ordinary token id, whose key word is w and hash h (see tok_bmap_put).
static int32_t
bmap_put_h(struct tok *t, int32_t id, uint64_t hash, uint64_t w)
{
    const struct tok_ent *e = &t->ent[id];
    const char *s = t->slab.p + e->off;
    size_t n = e->len;
    size_t h = hash & t->bmask;
    for (; t->bmap[h].len; h = (h + 1) & t->bmask)
        if (slot_is(t, &t->bmap[h], w, s, n))
            return t->bmap[h].id;
    t->bmap[h] = (struct tok_bslot){w, id, (uint32_t)n};
    return -1;
}

int32_t
tok_bmap_put(struct tok *t, int32_t id)
{
    const struct tok_ent *e = &t->ent[id];
    const char *s = t->slab.p + e->off;
    uint64_t w = key_word(s, e->len);
    return bmap_put_h(t, id, bytes_hash(s, e->len, w), w);
}

static void
spec_sort(struct tok *t)
{
    // Longest text first, then by id: the matcher takes the first that fits.
    for (size_t i = 1; i < t->n_spec; i++) {
        int32_t x = t->spec[i];
        size_t j = i;
        while (j > 0) {
            int32_t y = t->spec[j - 1];
            if (t->ent[y].len > t->ent[x].len || (t->ent[y].len == t->ent[x].len && y < x))
                break;
            t->spec[j] = y;
            j--;
        }
        t->spec[j] = x;
    }
    memset(t->spec_first, 0, sizeof t->spec_first);
    for (size_t i = 0; i < t->n_spec; i++)
        t->spec_first[(unsigned char)t->slab.p[t->ent[t->spec[i]].off]] = true;
}

int
tok_index(struct tok *t, struct kerr *err)
{
    size_t cap = 16;
    while (cap < 2 * t->n + 16)
        cap *= 2;
    tok_table_free(t->bmap, t->bmap ? (t->bmask + 1) * sizeof *t->bmap : 0);
    t->bmap = tok_table_alloc(cap * sizeof *t->bmap);
    t->bmask = cap - 1;
    free(t->spec);
    t->spec = NULL;
    t->n_spec = 0;
    // Insertion is latency-bound: the slot of the token AHEAD ids on is prefetched, its key
    // word and hash kept in a ring until its turn.
    enum { AHEAD = 16, RING = 2 * AHEAD };
    uint64_t ring_w[RING], ring_h[RING];
    for (size_t id = 0; id < t->n + AHEAD; id++) {
        if (id < t->n) {
            const struct tok_ent *f = &t->ent[id];
            const char *fs = t->slab.p + f->off;
            uint64_t w = key_word(fs, f->len), h = bytes_hash(fs, f->len, w);
            __builtin_prefetch(&t->bmap[h & t->bmask]);
            ring_w[id % RING] = w;
            ring_h[id % RING] = h;
        }
        if (id < AHEAD)
            continue;
        size_t i = id - AHEAD;
        const struct tok_ent *e = &t->ent[i];
        if (e->type == TOK_TYPE_CONTROL || e->type == TOK_TYPE_USER) {
            t->spec = xrealloc(t->spec, (t->n_spec + 1) * sizeof *t->spec);
            t->spec[t->n_spec++] = (int32_t)i;
            continue;
        }
        if (e->type != TOK_TYPE_NORMAL)
            continue;
        const char *s = t->slab.p + e->off;
        int32_t twin = bmap_put_h(t, (int32_t)i, ring_h[i % RING], ring_w[i % RING]);
        if (twin >= 0) {
            struct buf u = {0};
            tok_bytes_to_unicode(s, e->len, &u);
            kerr_set(err, "token \"%.200s\" appears twice (ids %ld and %ld)", u.p, (long)twin,
                     (long)i);
            buf_free(&u);
            return -1;
        }
        if (e->len == 1)
            t->byte_id[(unsigned char)s[0]] = (int32_t)i;
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0) {
            char u[3] = {0};
            memcpy(u, b2u[b], (size_t)b2u[b][2]);
            return kerr_set(err, "vocabulary lacks the single-byte token 0x%02X (\"%s\")", b, u);
        }
    spec_sort(t);
    return 0;
}

void
tok_push_merge(struct tok *t, int32_t a, int32_t b, int32_t c)
{
    if (t->n_merges == t->cap_merges) {
        t->cap_merges = t->cap_merges ? 2 * t->cap_merges : 1024;
        t->merges = xrealloc(t->merges, t->cap_merges * sizeof *t->merges);
    }
    t->merges[t->n_merges++] = (struct tok_merge){a, b, c};
}

static inline uint64_t
pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static inline const struct tok_pair *
pair_get(const struct tok *t, int32_t a, int32_t b)
{
    uint64_t k = pair_key(a, b);
    for (size_t h = hash_mix64(k) & t->pmask;; h = (h + 1) & t->pmask) {
        const struct tok_pair *p = &t->pairs[h];
        if (!p->used)
            return NULL;
        if (p->key == k)
            return p;
    }
}

// Inserts unless present (the first merge of a pair wins, as in HF).
static void
pair_put(struct tok *t, int32_t a, int32_t b, int32_t rank, int32_t c)
{
    uint64_t k = pair_key(a, b);
    size_t h = hash_mix64(k) & t->pmask;
    for (;; h = (h + 1) & t->pmask) {
        struct tok_pair *p = &t->pairs[h];
        if (!p->used) {
            *p = (struct tok_pair){k, rank, c, true};
            return;
        }
        if (p->key == k)
            return;
    }
}

static int
merge_cmp(const void *x, const void *y)
{
    const struct tok_merge *a = x, *b = y;
    if (a->c != b->c)
        return a->c < b->c ? -1 : 1;
    if (a->a != b->a)
        return a->a < b->a ? -1 : 1;
    return (a->b > b->b) - (a->b < b->b);
}

// Rank of merging the parts s[a..m) and s[m..b) with ids x and y, and the merged id in *res;
// INT32_MAX when they do not merge. tiktoken: the rank is the id of the concatenation.
static inline int32_t
pair_rank(const struct tok *t, const unsigned char *s, size_t a, size_t b, int32_t x, int32_t y,
          int32_t *res)
{
    if (t->tiktoken) {
        int32_t r = bmap_get(t, (const char *)s + a, b - a);
        *res = r;
        return r < 0 ? INT32_MAX : r;
    }
    const struct tok_pair *p = pair_get(t, x, y);
    *res = p ? p->c : -1;
    return p ? p->rank : INT32_MAX;
}

// Every split of a tiktoken token into two tokens is a merge with the token's rank (= id),
// ordered by (result, left, right) as Hugging Face's tiktoken converter lists them.
static void
merges_derive(struct tok *t)
{
    t->n_merges = 0;
    for (size_t id = 0; id < t->n; id++) {
        const struct tok_ent *e = &t->ent[id];
        if (e->type != TOK_TYPE_NORMAL || e->len < 2)
            continue;
        const char *s = t->slab.p + e->off;
        size_t first = t->n_merges;
        for (size_t k = 1; k < e->len; k++) {
            int32_t a = bmap_get(t, s, k), b = bmap_get(t, s + k, e->len - k);
            if (a >= 0 && b >= 0)
                tok_push_merge(t, a, b, (int32_t)id);
        }
        qsort(t->merges + first, t->n_merges - first, sizeof *t->merges, merge_cmp);
    }
}

void
tok_merges_derive(const struct tok *tc)
{
    if (atomic_load_explicit(&tc->merges_ready, memory_order_acquire))
        return;
    struct tok *t = (struct tok *)tc; // the lazily derived part of an immutable tokenizer
    pthread_mutex_lock(&t->lazy_lock);
    if (!atomic_load_explicit(&t->merges_ready, memory_order_relaxed)) {
        merges_derive(t);
        atomic_store_explicit(&t->merges_ready, true, memory_order_release);
    }
    pthread_mutex_unlock(&t->lazy_lock);
}

int
tok_finish(struct tok *t, bool tiktoken, bool ignore_merges, struct kerr *err)
{
    t->tiktoken = tiktoken;
    t->ignore_merges = tiktoken || ignore_merges;
    free(t->pairs);
    t->pairs = NULL;
    t->pmask = 0;
    if (tiktoken) { // encoding ranks pairs by their concatenation; merges when asked for
        t->n_merges = 0;
        atomic_store(&t->merges_ready, false);
    } else {
        size_t cap = 16;
        while (cap < 2 * t->n_merges + 16)
            cap *= 2;
        t->pairs = xcalloc(cap, sizeof *t->pairs);
        t->pmask = cap - 1;
        for (size_t i = 0; i < t->n_merges; i++) {
            const struct tok_merge *m = &t->merges[i];
            pair_put(t, m->a, m->b, (int32_t)i, m->c);
        }
    }
    tok_table_free(t->byte_pairs, BYTE_PAIRS_BYTES);
    t->byte_pairs = tok_table_alloc(BYTE_PAIRS_BYTES);
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) {
            struct tok_rank *r = &t->byte_pairs[a << 8 | b];
            if (tiktoken) { // the two-byte tokens, below
                *r = (struct tok_rank){INT32_MAX, -1};
                continue;
            }
            const char two[2] = {(char)a, (char)b};
            r->rank = pair_rank(t, (const unsigned char *)two, 0, 2, t->byte_id[a], t->byte_id[b],
                                &r->res);
        }
    for (size_t id = 0; tiktoken && id < t->n; id++) {
        const struct tok_ent *e = &t->ent[id];
        if (e->type == TOK_TYPE_NORMAL && e->len == 2) {
            const unsigned char *s = (const unsigned char *)t->slab.p + e->off;
            t->byte_pairs[s[0] << 8 | s[1]] = (struct tok_rank){(int32_t)id, (int32_t)id};
        }
    }
    (void)err;
    return 0;
}

int
tok_add_special(struct tok *t, const char *text, int32_t id, struct kerr *err)
{
    size_t n = strlen(text);
    if (tok_special_id(t, text) >= 0)
        return kerr_set(err, "special token %s given twice", text);
    if (id < (int32_t)t->n && t->ent[id].type)
        return kerr_set(err, "special token %s: id %ld is taken", text, (long)id);
    if (tok_set_token(t, id, text, n, TOK_TYPE_CONTROL, err) < 0)
        return -1;
    t->spec = xrealloc(t->spec, (t->n_spec + 1) * sizeof *t->spec);
    t->spec[t->n_spec++] = id;
    spec_sort(t);
    return 0;
}

// ---- pattern option ------------------------------------------------------------------------

int
tok_pattern_parse(const char *s, enum tok_pre *pre, const char **regex, struct kerr *err)
{
    int p = tok_pre_from_name(s);
    if (p < 0)
        p = tok_pre_from_regex(s);
    if (p >= 0) {
        *pre = (enum tok_pre)p;
        *regex = tok_pre_regex_of(*pre);
        return 0;
    }
    if (!strpbrk(s, "\\[](){}|?*+^$.")) {
        return kerr_set(err, "unknown pattern '%s' (expected gpt2, cl100k, o200k, llama3 or a "
                             "regex)",
                        s);
    }
    *pre = TOK_PRE_CUSTOM;
    *regex = s;
    return 0;
}

// ---- encoding ------------------------------------------------------------------------------

void
tok_ids_push(struct tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        ids->cap = ids->cap ? 2 * ids->cap : 256;
        ids->v = xrealloc(ids->v, ids->cap * sizeof *ids->v);
    }
    ids->v[ids->n++] = id;
}

void
tok_ids_free(struct tok_ids *ids)
{
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

// The piece cache: pieces of 2..PC_MAX bytes with their ids, direct-mapped by the piece's
// hash, 64-byte entries holding the key words and up to PC_IDS ids. Natural text repeats its
// words, so most pieces cost one hash and one cache line. It changes speed only, never the
// ids. One cache serves every encoder of a tokenizer, so a thread does not redo the pieces
// another has already encoded (with per-thread caches a second thread added ~13% misses).
// Concurrent use is a seqlock per entry: a writer claims the entry by making `seq` odd (and
// gives up if another writer holds it), stores the fields, then publishes an even `seq`; a
// reader takes the entry only if `seq` is even and unchanged across its reads. All fields are
// atomics accessed relaxed (plain loads and stores on x86), with the fences of Boehm's
// "Can seqlocks get along with programming language memory models?" (2012).
#define PC_BITS 17
#define PC_MAX 16
#define PC_IDS 10
struct tok_pc_ent {
    _Atomic uint64_t seq;    // even: stable; odd: being written
    _Atomic uint64_t w0, w1; // key words: key_word(piece), and the last 8 bytes for pieces over 8
    _Atomic uint64_t meta;   // n | nids << 8 (n = 0: empty)
    _Atomic uint64_t ids[PC_IDS / 2]; // two ids a word
};
#define PC_BYTES (((size_t)1 << PC_BITS) * sizeof(struct tok_pc_ent))

static void
cache_free(struct tok *t)
{
    tok_table_free(t->cache, PC_BYTES);
}

// Pieces waiting to be encoded (see pend_flush).
#define PEND_MAX 32
struct pend {
    const char *p;
    size_t n;
    uint64_t w, hash;
};

struct tok_enc {
    const struct tok *t;
    struct pend pend[PEND_MAX];
    size_t n_pend;
    struct tok_pc_ent *cache; // t->cache
    struct tok_split *sp;
    struct tok_ids *out;
    // small pieces: parts (id, first byte), pair ranks and results
    int32_t sid[BPE_SMALL], srank[BPE_SMALL], sres[BPE_SMALL];
    uint32_t spos[BPE_SMALL + 1];
    // large pieces: a linked list of parts and a min-tree over their pair keys
    int32_t *id, *next, *prev, *res;
    uint64_t *tree;
    size_t cap, leaves, tree_cap;
};

struct tok_enc *
tok_enc_new(const struct tok *t)
{
    struct tok_enc *e = xcalloc(1, sizeof *e);
    e->t = t;
    struct tok *tm = (struct tok *)t; // the cache is the lazily made part of a shared tokenizer
    pthread_mutex_lock(&tm->lazy_lock);
    if (!tm->cache)
        tm->cache = tok_table_alloc(PC_BYTES);
    pthread_mutex_unlock(&tm->lazy_lock);
    e->cache = t->cache;
    struct kerr err;
    e->sp = tok_split_new(t->pre, t->regex, &err);
    if (!e->sp) // the regex compiled when the tokenizer was loaded; it cannot fail now
        abort();
    return e;
}

void
tok_enc_del(struct tok_enc *e)
{
    if (!e)
        return;
    tok_split_del(e->sp);
    free(e->id);
    free(e->next);
    free(e->prev);
    free(e->res);
    free(e->tree);
    free(e);
}

static inline void
ids_push(struct tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap)
        tok_ids_push(ids, id);
    else
        ids->v[ids->n++] = id;
}

// BPE on a piece of at most BPE_SMALL bytes: flat arrays, a linear scan for the best pair.
static void
bpe_small(struct tok_enc *e, const unsigned char *s, size_t n)
{
    const struct tok *t = e->t;
    int32_t *id = e->sid, *rk = e->srank, *rs = e->sres;
    uint32_t *pos = e->spos;
    size_t m = n;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_id[s[i]];
        pos[i] = (uint32_t)i;
    }
    pos[n] = (uint32_t)n;
    for (size_t i = 0; i + 1 < m; i++) {
        const struct tok_rank *r = &t->byte_pairs[s[i] << 8 | s[i + 1]];
        rk[i] = r->rank;
        rs[i] = r->res;
    }
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rk[i] < rk[best])
                best = i;
        if (rk[best] == INT32_MAX)
            break;
        id[best] = rs[best];
        // Remove part best + 1: m - best - 2 ids follow it, m - best - 1 positions (with the
        // end) and m - best - 3 pair ranks.
        memmove(id + best + 1, id + best + 2, (m - best - 2) * sizeof *id);
        memmove(pos + best + 1, pos + best + 2, (m - best - 1) * sizeof *pos);
        if (m > best + 3) {
            memmove(rk + best + 1, rk + best + 2, (m - best - 3) * sizeof *rk);
            memmove(rs + best + 1, rs + best + 2, (m - best - 3) * sizeof *rs);
        }
        m--;
        if (best > 0)
            rk[best - 1] = pair_rank(t, s, pos[best - 1], pos[best + 1], id[best - 1], id[best],
                                     &rs[best - 1]);
        if (best + 1 < m)
            rk[best] = pair_rank(t, s, pos[best], pos[best + 2], id[best], id[best + 1], &rs[best]);
    }
    for (size_t i = 0; i < m; i++)
        ids_push(e->out, id[i]);
}

// Large pieces. Part l starts at byte l and ends where the next part starts (next[l], or n);
// dead parts have id -1. tree[leaves + l] holds (rank << 32 | l) for the pair (l, next[l])
// (UINT64_MAX: none) and every inner node the minimum of its two children, so tree[1] is the
// next merge: lowest rank, leftmost on ties. A merge updates three leaves, each in at most
// log2(n) steps — a 1 MB run of one character stays O(n log n) with a small constant.
static void
tree_set(struct tok_enc *e, size_t l, uint64_t key)
{
    size_t i = e->leaves + l;
    e->tree[i] = key;
    for (i >>= 1; i; i >>= 1) {
        uint64_t a = e->tree[2 * i], b = e->tree[2 * i + 1], v = a < b ? a : b;
        if (e->tree[i] == v)
            break; // the ancestors already hold it
        e->tree[i] = v;
    }
}

static uint64_t
large_key(struct tok_enc *e, const unsigned char *s, size_t n, int32_t l)
{
    int32_t r = e->next[l];
    if (r < 0)
        return UINT64_MAX;
    size_t end = e->next[r] >= 0 ? (size_t)e->next[r] : n;
    int32_t rank = pair_rank(e->t, s, (size_t)l, end, e->id[l], e->id[r], &e->res[l]);
    return rank == INT32_MAX ? UINT64_MAX : (uint64_t)rank << 32 | (uint32_t)l;
}

static void
bpe_large(struct tok_enc *e, const unsigned char *s, size_t n)
{
    if (n > e->cap) {
        e->cap = n;
        e->id = xrealloc(e->id, n * sizeof *e->id);
        e->next = xrealloc(e->next, n * sizeof *e->next);
        e->prev = xrealloc(e->prev, n * sizeof *e->prev);
        e->res = xrealloc(e->res, n * sizeof *e->res);
    }
    size_t leaves = 1;
    while (leaves < n)
        leaves *= 2;
    if (leaves > e->tree_cap) {
        free(e->tree);
        e->tree = xmalloc(2 * leaves * sizeof *e->tree);
        e->tree_cap = leaves;
    }
    e->leaves = leaves;
    for (size_t i = 0; i < n; i++) {
        e->id[i] = e->t->byte_id[s[i]];
        e->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        e->prev[i] = (int32_t)i - 1;
    }
    uint64_t *tr = e->tree;
    for (size_t i = 0; i < n; i++)
        tr[leaves + i] = large_key(e, s, n, (int32_t)i);
    for (size_t i = leaves + n; i < 2 * leaves; i++)
        tr[i] = UINT64_MAX;
    for (size_t i = leaves - 1; i; i--)
        tr[i] = tr[2 * i] < tr[2 * i + 1] ? tr[2 * i] : tr[2 * i + 1];
    while (tr[1] != UINT64_MAX) {
        int32_t l = (int32_t)(uint32_t)tr[1], r = e->next[l];
        e->id[l] = e->res[l];
        e->id[r] = -1;
        e->next[l] = e->next[r];
        if (e->next[r] >= 0)
            e->prev[e->next[r]] = l;
        tree_set(e, (size_t)r, UINT64_MAX);
        tree_set(e, (size_t)l, large_key(e, s, n, l));
        if (e->prev[l] >= 0)
            tree_set(e, (size_t)e->prev[l], large_key(e, s, n, e->prev[l]));
    }
    for (int32_t i = 0; i >= 0; i = e->next[i])
        ids_push(e->out, e->id[i]);
}

// A piece that is not in the cache.
static void
encode_uncached(struct tok_enc *e, const char *p, size_t n, uint64_t hash, uint64_t w)
{
    const struct tok *t = e->t;
    if (t->ignore_merges) {
        int32_t id = bmap_get_h(t, hash, w, p, n);
        if (id >= 0) {
            ids_push(e->out, id);
            return;
        }
    }
    if (n <= BPE_SMALL)
        bpe_small(e, (const unsigned char *)p, n);
    else
        bpe_large(e, (const unsigned char *)p, n);
}

static void
encode_cached(struct tok_enc *e, const struct pend *q)
{
    struct tok_ids *out = e->out;
    const char *p = q->p;
    size_t n = q->n;
    if (n == 1) {
        ids_push(out, e->t->byte_id[(unsigned char)*p]);
        return;
    }
    if (n > PC_MAX) {
        encode_uncached(e, p, n, q->hash, q->w);
        return;
    }
    uint64_t w1 = n > 8 ? load64(p + n - 8) : 0;
    struct tok_pc_ent *c = &e->cache[q->hash >> (64 - PC_BITS)];
    uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    uint64_t meta = atomic_load_explicit(&c->meta, memory_order_relaxed);
    if ((meta & 0xff) == n && atomic_load_explicit(&c->w0, memory_order_relaxed) == q->w &&
        atomic_load_explicit(&c->w1, memory_order_relaxed) == w1) {
        uint64_t v[PC_IDS / 2];
        for (size_t i = 0; i < PC_IDS / 2; i++)
            v[i] = atomic_load_explicit(&c->ids[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (!(seq & 1) && atomic_load_explicit(&c->seq, memory_order_relaxed) == seq) {
            size_t k = (size_t)(meta >> 8);
            if (out->cap - out->n < PC_IDS) {
                int32_t ids[PC_IDS];
                memcpy(ids, v, sizeof v);
                for (size_t i = 0; i < k; i++)
                    tok_ids_push(out, ids[i]);
            } else {
                memcpy(out->v + out->n, v, sizeof v);
                out->n += k;
            }
            return;
        }
    }
    size_t first = out->n;
    encode_uncached(e, p, n, q->hash, q->w);
    size_t k = out->n - first;
    if (k > PC_IDS || (seq & 1) ||
        !atomic_compare_exchange_strong_explicit(&c->seq, &seq, seq + 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return; // too many ids, or another thread is writing the entry
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&c->w0, q->w, memory_order_relaxed);
    atomic_store_explicit(&c->w1, w1, memory_order_relaxed);
    atomic_store_explicit(&c->meta, n | k << 8, memory_order_relaxed);
    uint64_t v[PC_IDS / 2] = {0};
    memcpy(v, out->v + first, k * sizeof *out->v);
    for (size_t i = 0; i < PC_IDS / 2; i++)
        atomic_store_explicit(&c->ids[i], v[i], memory_order_relaxed);
    atomic_store_explicit(&c->seq, seq + 2, memory_order_release);
}

// Encodes the pending pieces: first their hashes, prefetching their cache entries (which
// mostly live outside the CPU's nearer caches), then the lookups, so the memory latencies
// overlap instead of adding up.
static void
pend_flush(struct tok_enc *e)
{
    for (size_t i = 0; i < e->n_pend; i++) {
        struct pend *q = &e->pend[i];
        if (q->n < 2)
            continue;
        q->w = key_word(q->p, q->n);
        q->hash = bytes_hash(q->p, q->n, q->w);
        if (q->n <= PC_MAX)
            __builtin_prefetch(&e->cache[q->hash >> (64 - PC_BITS)]);
    }
    for (size_t i = 0; i < e->n_pend; i++)
        encode_cached(e, &e->pend[i]);
    e->n_pend = 0;
}

static void
encode_piece(void *arg, const char *p, size_t n)
{
    struct tok_enc *e = arg;
    e->pend[e->n_pend++] = (struct pend){p, n, 0, 0};
    if (e->n_pend == PEND_MAX)
        pend_flush(e);
}

// Special token starting at s[0..n), or -1.
static int32_t
special_at(const struct tok *t, const char *s, size_t n)
{
    if (!t->spec_first[(unsigned char)*s])
        return -1;
    for (size_t i = 0; i < t->n_spec; i++) {
        const struct tok_ent *en = &t->ent[t->spec[i]];
        if (en->len <= n && memcmp(s, t->slab.p + en->off, en->len) == 0)
            return t->spec[i];
    }
    return -1;
}

int
tok_encode(struct tok_enc *e, const char *s, size_t n, int flags, struct tok_ids *out,
           struct kerr *err)
{
    const struct tok *t = e->t;
    e->out = out;
    e->n_pend = 0;
    size_t start = 0;
    if ((flags & TOK_ALLOW_SPECIAL) && t->n_spec) {
        for (size_t i = 0; i < n; i++) {
            int32_t id = special_at(t, s + i, n - i);
            if (id < 0)
                continue;
            if (tok_split_run(e->sp, s + start, i - start, encode_piece, e, err) < 0)
                return -1;
            pend_flush(e);
            ids_push(out, id);
            i += t->ent[id].len - 1;
            start = i + 1;
        }
    }
    int rc = tok_split_run(e->sp, s + start, n - start, encode_piece, e, err);
    pend_flush(e);
    return rc;
}

int
tok_decode(const struct tok *t, const int32_t *ids, size_t n, struct buf *out, struct kerr *err)
{
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->n || !t->ent[id].type)
            return kerr_set(err, "unknown token id %ld", (long)id);
        buf_append(out, t->slab.p + t->ent[id].off, t->ent[id].len);
    }
    return 0;
}

// ---- vocabulary view -----------------------------------------------------------------------

size_t
tok_vocab_size(const struct tok *t)
{
    return t->n;
}

const char *
tok_token_bytes(const struct tok *t, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= t->n || !t->ent[id].type) {
        *len = 0;
        return NULL;
    }
    *len = t->ent[id].len;
    return t->slab.p + t->ent[id].off;
}

void
tok_token_unicode(const struct tok *t, int32_t id, struct buf *out)
{
    size_t n;
    const char *s = tok_token_bytes(t, id, &n);
    if (!s)
        buf_printf(out, "[UNUSED%ld]", (long)id);
    else if (t->ent[id].type == TOK_TYPE_NORMAL)
        tok_bytes_to_unicode(s, n, out);
    else
        buf_append(out, s, n);
}

enum tok_type
tok_token_type(const struct tok *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->n || !t->ent[id].type)
        return TOK_TYPE_UNUSED;
    return (enum tok_type)t->ent[id].type;
}

int32_t
tok_token_id(const struct tok *t, const char *s, size_t n)
{
    int32_t id = bmap_get(t, s, n);
    if (id >= 0)
        return id;
    for (size_t i = 0; i < t->n_spec; i++) {
        const struct tok_ent *e = &t->ent[t->spec[i]];
        if (e->len == n && memcmp(t->slab.p + e->off, s, n) == 0)
            return t->spec[i];
    }
    return -1;
}

int32_t
tok_special_id(const struct tok *t, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i < t->n_spec; i++) {
        const struct tok_ent *e = &t->ent[t->spec[i]];
        if (e->len == n && memcmp(t->slab.p + e->off, text, n) == 0)
            return t->spec[i];
    }
    return -1;
}

size_t
tok_merge_count(const struct tok *t)
{
    tok_merges_derive(t);
    return t->n_merges;
}

void
tok_merge_get(const struct tok *t, size_t i, int32_t *a, int32_t *b, int32_t *c)
{
    tok_merges_derive(t);
    *a = t->merges[i].a;
    *b = t->merges[i].b;
    *c = t->merges[i].c;
}

enum tok_pre
tok_pre_kind(const struct tok *t)
{
    return t->pre;
}

const char *
tok_pre_regex(const struct tok *t)
{
    return t->regex;
}

// ---- tiktoken rank files -------------------------------------------------------------------
// One token per line: base64(bytes) SPACE rank. Empty lines are skipped (as tiktoken does).

// 1 + the value of each base64 character, 0 for the others.
static const uint8_t b64_val1[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

// Decodes standard base64 (with '=' padding) s[0..n) to o (room for n / 4 * 3 bytes).
// Returns the decoded length, or -1 and the offending offset in *bad.
static long
b64_decode(const char *s, size_t n, unsigned char *o, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0 || n % 4) {
        *bad = n;
        return -1;
    }
    unsigned char *start = o;
    size_t i = 0;
    for (; i + 4 < n; i += 4) { // every group but the last: no padding
        int a = b64_val1[u[i]] - 1, b = b64_val1[u[i + 1]] - 1, c = b64_val1[u[i + 2]] - 1,
            d = b64_val1[u[i + 3]] - 1;
        if ((a | b | c | d) < 0) {
            *bad = i + (a < 0 ? 0 : b < 0 ? 1 : c < 0 ? 2 : 3);
            return -1;
        }
        uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        o[0] = (unsigned char)(w >> 16);
        o[1] = (unsigned char)(w >> 8);
        o[2] = (unsigned char)w;
        o += 3;
    }
    int v[4], pad = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = u[i + k];
        if (c == '=' && k >= 2) {
            v[k] = 0;
            pad++;
            continue;
        }
        if (pad || (v[k] = b64_val1[c] - 1) < 0) {
            *bad = i + k;
            return -1;
        }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    *o++ = (unsigned char)(w >> 16);
    if (pad < 2)
        *o++ = (unsigned char)(w >> 8);
    if (pad < 1)
        *o++ = (unsigned char)w;
    return o - start;
}

int
tok_add_b64_token(struct tok *t, const char *s, size_t n, int64_t rank, size_t *bad,
                  struct kerr *err)
{
    buf_reserve(&t->slab, n / 4 * 3);
    long m = b64_decode(s, n, (unsigned char *)t->slab.p + t->slab.len, bad);
    if (m < 0)
        return kerr_set(err, "invalid base64");
    *bad = 0;
    return set_entry(t, (int32_t)rank, (size_t)m, TOK_TYPE_NORMAL, err);
}

size_t
tok_count_byte(const char *s, size_t n, char c)
{
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full, pat = 0x0101010101010101ull * (uint8_t)c;
    size_t k = 0, i = 0;
    for (; i + 8 <= n; i += 8) { // eight bytes at a time: the high bit of each zero byte of v
        uint64_t v = load64(s + i) ^ pat;
        k += (size_t)__builtin_popcountll(~(((v & lo7) + lo7) | v | lo7));
    }
    for (; i < n; i++)
        k += s[i] == c;
    return k;
}

// Decodes the well-formed base64 item at s[*pp..) (groups of four, '=' padding only in the
// last), which ends at n or at the byte `end`, to o. Returns the byte count and moves *pp to
// the item's end, or -1 when the item is anything else (the callers' slow paths judge it).
static inline long
b64_item(const unsigned char *u, size_t n, size_t *pp, unsigned char end, unsigned char *o)
{
    unsigned char *start = o;
    size_t p = *pp;
    for (;;) {
        if (n - p < 4)
            return -1;
        unsigned a = b64_val1[u[p]], b = b64_val1[u[p + 1]], c = b64_val1[u[p + 2]],
                 d = b64_val1[u[p + 3]];
        if (a && b && c && d) {
            uint32_t w = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
            o[0] = (unsigned char)(w >> 16);
            o[1] = (unsigned char)(w >> 8);
            o[2] = (unsigned char)w;
            o += 3;
            p += 4;
            if (p == n || u[p] == end)
                break;
            continue;
        }
        if (!a || !b || u[p + 3] != '=' || (!c && u[p + 2] != '='))
            return -1;
        uint32_t w = (a - 1) << 18 | (b - 1) << 12 | (c ? c - 1 : 0) << 6;
        *o++ = (unsigned char)(w >> 16);
        if (c)
            *o++ = (unsigned char)(w >> 8);
        p += 4;
        if (p != n && u[p] != end)
            return -1; // padding before the end of the item
        break;
    }
    *pp = p;
    return o - start;
}

// Makes token id the len bytes just decoded past the end of the slab; false when the slow
// path must judge (id taken, out of range).
static inline bool
b64_commit(struct tok *t, int64_t id, size_t len)
{
    if (id == (int64_t)t->n && t->n < t->cap && t->slab.len + len < UINT32_MAX / 2) {
        t->ent[t->n++] = (struct tok_ent){(uint32_t)t->slab.len, (uint32_t)len,
                                          TOK_TYPE_NORMAL}; // the next id: the usual case
        t->slab.len += len;
        return true;
    }
    if (id >= TOK_MAX_IDS || (id < (int64_t)t->n && t->ent[id].type))
        return false;
    return set_entry(t, (int32_t)id, len, TOK_TYPE_NORMAL, NULL) == 0;
}

size_t
tok_add_b64_items(struct tok *t, const char *s, size_t n, size_t i, int64_t *rank)
{
    const unsigned char *u = (const unsigned char *)s;
    buf_reserve(&t->slab, (n - i) / 4 * 3); // room for every item left
    while (i < n && s[i] != '!') {
        size_t p = i;
        long m = b64_item(u, n, &p, ' ', (unsigned char *)t->slab.p + t->slab.len);
        if (m < 0 || !b64_commit(t, *rank, (size_t)m))
            break;
        (*rank)++;
        i = p + (p < n);
    }
    t->slab.p[t->slab.len] = 0;
    return i;
}

// The fast path of rank files: adds the well-formed lines "base64 rank\n" of s[i..n) (a
// "\r\n" end too) until one is anything else; returns where it stopped and counts the lines
// it took in *lines. The caller's line-by-line loop judges the others.
static size_t
b64_lines(struct tok *t, const char *s, size_t n, size_t i, size_t *lines)
{
    const unsigned char *u = (const unsigned char *)s;
    buf_reserve(&t->slab, (n - i) / 4 * 3);
    while (i < n) {
        size_t p = i;
        long m = b64_item(u, n, &p, ' ', (unsigned char *)t->slab.p + t->slab.len);
        if (m < 0 || p == n)
            break;
        int64_t rank = 0;
        size_t d = ++p;
        while (p < n && u[p] >= '0' && u[p] <= '9' && rank < TOK_MAX_IDS)
            rank = rank * 10 + (u[p++] - '0');
        size_t next; // where the next line starts
        if (p == n)
            next = n;
        else if (u[p] == '\n')
            next = p + 1;
        else if (u[p] == '\r' && (p + 1 == n || u[p + 1] == '\n'))
            next = p + 1 == n ? n : p + 2;
        else
            break;
        if (p == d || rank >= TOK_MAX_IDS || !b64_commit(t, rank, (size_t)m))
            break;
        ++*lines;
        i = next;
    }
    t->slab.p[t->slab.len] = 0;
    return i;
}

struct tok *
tok_load_tiktoken(const char *s, size_t n, const char *name, const char *pattern,
                  struct kerr *err)
{
    enum tok_pre pre;
    const char *regex;
    if (tok_pattern_parse(pattern ? pattern : "cl100k", &pre, &regex, err) < 0)
        return NULL;
    struct tok_split *sp = tok_split_new(pre, regex, err);
    if (!sp)
        return NULL;
    tok_split_del(sp);
    struct tok *t = tok_alloc(pre, regex);
    tok_reserve(t, tok_count_byte(s, n, '\n') + 1, n / 4 * 3);
    size_t line = 0;
    for (size_t i = 0; i < n;) {
        if ((i = b64_lines(t, s, n, i, &line)) >= n)
            break;
        line++;
        const char *eol = memchr(s + i, '\n', n - i);
        size_t len = eol ? (size_t)(eol - (s + i)) : n - i;
        const char *l = s + i;
        i += len + (eol != NULL);
        if (len && l[len - 1] == '\r')
            len--;
        if (len == 0)
            continue;
        const char *sp1 = memchr(l, ' ', len);
        if (!sp1) {
            kerr_set(err, "%s:%zu:%zu: expected 'base64 rank'", name, line, len + 1);
            goto fail;
        }
        size_t blen = (size_t)(sp1 - l), bad = 0;
        int64_t rank = 0;
        size_t j = blen + 1;
        if (j == len) {
            kerr_set(err, "%s:%zu:%zu: missing rank", name, line, j + 1);
            goto fail;
        }
        for (; j < len; j++) {
            if (l[j] < '0' || l[j] > '9' || rank >= TOK_MAX_IDS) {
                kerr_set(err, "%s:%zu:%zu: %s", name, line, j + 1,
                         rank >= TOK_MAX_IDS ? "rank too large" : "rank is not a number");
                goto fail;
            }
            rank = rank * 10 + (l[j] - '0');
        }
        if (rank >= TOK_MAX_IDS) {
            kerr_set(err, "%s:%zu:%zu: rank too large", name, line, blen + 2);
            goto fail;
        }
        if (tok_add_b64_token(t, l, blen, rank, &bad, err) < 0) {
            kerr_prefix(err, "%s:%zu:%zu", name, line, bad + 1);
            goto fail;
        }
    }
    if (tok_index(t, err) < 0 || tok_finish(t, true, true, err) < 0) {
        kerr_prefix(err, "%s", name);
        tok_del(t);
        return NULL;
    }
    return t;
fail:
    tok_del(t);
    return NULL;
}

// SPDX-License-Identifier: MIT
// tok: the tokenizer core — building a vocabulary, the byte-to-unicode map, the merge (pair)
// table, BPE encoding and decoding, special tokens, the vocabulary view, and tiktoken rank
// files. tokenizer.json and the npm encoder JSON live in tok_json.c, training in tok_train.c.
//
// Encoding a piece: a piece that is a token is emitted whole when the model allows it
// (tiktoken; HF "ignore_merges"). Otherwise it starts as one token per byte and the adjacent
// pair with the lowest rank is merged until none is left (leftmost on ties). Short pieces use
// a flat array (quadratic but tiny); pieces longer than BPE_SMALL use a linked list and a
// binary heap of candidate merges with lazy invalidation, O(n log n) — a 1 MB run of one
// character costs about as much as 1 MB of prose.
#include "tok_int.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

#define BPE_SMALL 48
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

struct tok *
tok_alloc(enum tok_pre pre, const char *regex)
{
    b2u_init();
    struct tok *t = xcalloc(1, sizeof *t);
    t->pre = pre;
    t->regex = xstrdup(regex ? regex : tok_pre_regex_of(pre));
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    return t;
}

void
tok_del(struct tok *t)
{
    if (!t)
        return;
    free(t->ent);
    buf_free(&t->slab);
    free(t->bmap);
    free(t->pairs);
    free(t->merges);
    free(t->regex);
    free(t->spec);
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

int
tok_set_token(struct tok *t, int32_t id, const char *s, size_t n, enum tok_type type,
              struct kerr *err)
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
    buf_append(&t->slab, s, n);
    return 0;
}

static uint64_t
bytes_hash(const char *s, size_t n)
{
    return hash64(s, n);
}

static inline int32_t
bmap_get_h(const struct tok *t, uint64_t hash, const char *s, size_t n)
{
    uint32_t tag = (uint32_t)(hash >> 32);
    for (size_t h = hash & t->bmask;; h = (h + 1) & t->bmask) {
        const struct tok_bslot *b = &t->bmap[h];
        if (b->id < 0)
            return -1;
        if (b->tag != tag)
            continue;
        const struct tok_ent *e = &t->ent[b->id];
        if (e->len == n && memcmp(t->slab.p + e->off, s, n) == 0)
            return b->id;
    }
}

static int32_t
bmap_get(const struct tok *t, const char *s, size_t n)
{
    if (!t->bmap)
        return -1;
    return bmap_get_h(t, bytes_hash(s, n), s, n);
}

void
tok_bmap_put(struct tok *t, int32_t id)
{
    const struct tok_ent *e = &t->ent[id];
    uint64_t hash = bytes_hash(t->slab.p + e->off, e->len);
    size_t h = hash & t->bmask;
    while (t->bmap[h].id >= 0)
        h = (h + 1) & t->bmask;
    t->bmap[h] = (struct tok_bslot){id, (uint32_t)(hash >> 32)};
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
    free(t->bmap);
    t->bmap = xmalloc(cap * sizeof *t->bmap);
    memset(t->bmap, 0xff, cap * sizeof *t->bmap);
    t->bmask = cap - 1;
    free(t->spec);
    t->spec = NULL;
    t->n_spec = 0;
    for (size_t id = 0; id < t->n; id++) {
        const struct tok_ent *e = &t->ent[id];
        if (e->type == TOK_TYPE_CONTROL || e->type == TOK_TYPE_USER) {
            t->spec = xrealloc(t->spec, (t->n_spec + 1) * sizeof *t->spec);
            t->spec[t->n_spec++] = (int32_t)id;
            continue;
        }
        if (e->type != TOK_TYPE_NORMAL)
            continue;
        const char *s = t->slab.p + e->off;
        if (bmap_get(t, s, e->len) >= 0) {
            struct buf u = {0};
            tok_bytes_to_unicode(s, e->len, &u);
            kerr_set(err, "token \"%.200s\" appears twice (ids %ld and %ld)", u.p,
                     (long)bmap_get(t, s, e->len), (long)id);
            buf_free(&u);
            return -1;
        }
        tok_bmap_put(t, (int32_t)id);
        if (e->len == 1)
            t->byte_id[(unsigned char)s[0]] = (int32_t)id;
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

int
tok_finish(struct tok *t, bool tiktoken, bool ignore_merges, struct kerr *err)
{
    t->tiktoken = tiktoken;
    t->ignore_merges = tiktoken || ignore_merges;
    if (tiktoken) {
        // Every split of a token into two tokens is a merge with the token's rank (= id),
        // ordered by (result, left, right) as Hugging Face's tiktoken converter lists them.
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
    size_t cap = 16;
    while (cap < 2 * t->n_merges + 16)
        cap *= 2;
    free(t->pairs);
    t->pairs = xcalloc(cap, sizeof *t->pairs);
    t->pmask = cap - 1;
    for (size_t i = 0; i < t->n_merges; i++) {
        const struct tok_merge *m = &t->merges[i];
        pair_put(t, m->a, m->b, tiktoken ? m->c : (int32_t)i, m->c);
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

struct heap_ent {
    int32_t rank;
    uint32_t pos; // left node
    int32_t a, b;
};

// The piece cache: pieces that are not single tokens, with their ids, per thread. Natural text
// repeats its words, so most BPE runs are skipped. Cleared when half full; it changes speed
// only, never the ids.
#define CACHE_SLOTS (1 << 16)
#define CACHE_MAX_PIECE 64
struct cache_ent {
    uint64_t h;
    uint32_t off; // bytes then ids in e->arena
    uint16_t blen, nids;
};

struct tok_enc {
    const struct tok *t;
    struct cache_ent *cache;
    size_t cache_used;
    struct buf arena;
    struct tok_split *sp;
    struct tok_ids *out;
    // small path
    int32_t sid[BPE_SMALL], srank[BPE_SMALL], sres[BPE_SMALL];
    // heap path
    int32_t *id, *next, *prev;
    struct heap_ent *heap;
    size_t cap, hcap;
};

struct tok_enc *
tok_enc_new(const struct tok *t)
{
    struct tok_enc *e = xcalloc(1, sizeof *e);
    e->t = t;
    e->cache = xcalloc(CACHE_SLOTS, sizeof *e->cache);
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
    free(e->heap);
    free(e->cache);
    buf_free(&e->arena);
    free(e);
}

static inline void
rank_of(const struct tok *t, int32_t a, int32_t b, int32_t *rank, int32_t *res)
{
    const struct tok_pair *p = pair_get(t, a, b);
    *rank = p ? p->rank : INT32_MAX;
    *res = p ? p->c : -1;
}

static void
bpe_small(struct tok_enc *e, const unsigned char *s, size_t n)
{
    const struct tok *t = e->t;
    int32_t *id = e->sid, *rk = e->srank, *rs = e->sres;
    size_t m = n;
    for (size_t i = 0; i < n; i++)
        id[i] = t->byte_id[s[i]];
    for (size_t i = 0; i + 1 < m; i++)
        rank_of(t, id[i], id[i + 1], &rk[i], &rs[i]);
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rk[i] < rk[best])
                best = i;
        if (rk[best] == INT32_MAX)
            break;
        id[best] = rs[best];
        size_t tail = m - best - 2; // ids after the pair; pair ranks after it: tail - 1
        memmove(id + best + 1, id + best + 2, tail * sizeof *id);
        if (tail > 1) {
            memmove(rk + best + 1, rk + best + 2, (tail - 1) * sizeof *rk);
            memmove(rs + best + 1, rs + best + 2, (tail - 1) * sizeof *rs);
        }
        m--;
        if (best > 0)
            rank_of(t, id[best - 1], id[best], &rk[best - 1], &rs[best - 1]);
        if (best + 1 < m)
            rank_of(t, id[best], id[best + 1], &rk[best], &rs[best]);
    }
    for (size_t i = 0; i < m; i++)
        tok_ids_push(e->out, id[i]);
}

static inline bool
heap_less(const struct heap_ent *x, const struct heap_ent *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void
heap_push(struct tok_enc *e, size_t *hn, struct heap_ent v)
{
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&v, &e->heap[p]))
            break;
        e->heap[i] = e->heap[p];
        i = p;
    }
    e->heap[i] = v;
}

static struct heap_ent
heap_pop(struct tok_enc *e, size_t *hn)
{
    struct heap_ent top = e->heap[0], v = e->heap[--*hn];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!heap_less(&e->heap[c], &v))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = v;
    return top;
}

static void
heap_try(struct tok_enc *e, size_t *hn, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return;
    const struct tok_pair *p = pair_get(e->t, e->id[l], e->id[r]);
    if (p)
        heap_push(e, hn, (struct heap_ent){p->rank, (uint32_t)l, e->id[l], e->id[r]});
}

static void
bpe_large(struct tok_enc *e, const unsigned char *s, size_t n)
{
    if (n > e->cap) {
        e->cap = n;
        e->id = xrealloc(e->id, n * sizeof *e->id);
        e->next = xrealloc(e->next, n * sizeof *e->next);
        e->prev = xrealloc(e->prev, n * sizeof *e->prev);
    }
    if (3 * n > e->hcap) {
        e->hcap = 3 * n;
        e->heap = xrealloc(e->heap, e->hcap * sizeof *e->heap);
    }
    for (size_t i = 0; i < n; i++) {
        e->id[i] = e->t->byte_id[s[i]];
        e->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        e->prev[i] = (int32_t)i - 1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++)
        heap_try(e, &hn, (int32_t)i, (int32_t)i + 1);
    while (hn) {
        struct heap_ent top = heap_pop(e, &hn);
        int32_t l = (int32_t)top.pos, r = e->next[l];
        if (e->id[l] != top.a || r < 0 || e->id[r] != top.b)
            continue; // stale
        e->id[l] = pair_get(e->t, top.a, top.b)->c;
        e->id[r] = -1;
        e->next[l] = e->next[r];
        if (e->next[r] >= 0)
            e->prev[e->next[r]] = l;
        // Each merge adds at most two entries; the heap never outgrows 3n.
        heap_try(e, &hn, e->prev[l], l);
        heap_try(e, &hn, l, e->next[l]);
    }
    for (int32_t i = 0; i >= 0; i = e->next[i])
        tok_ids_push(e->out, e->id[i]);
}

static void
encode_piece(void *arg, const char *p, size_t n)
{
    struct tok_enc *e = arg;
    const struct tok *t = e->t;
    if (n == 1) {
        tok_ids_push(e->out, t->byte_id[(unsigned char)*p]);
        return;
    }
    uint64_t hash = bytes_hash(p, n);
    if (t->ignore_merges) {
        int32_t id = bmap_get_h(t, hash, p, n);
        if (id >= 0) {
            tok_ids_push(e->out, id);
            return;
        }
    }
    if (n > CACHE_MAX_PIECE) {
        bpe_large(e, (const unsigned char *)p, n);
        return;
    }
    uint64_t h = hash | 1;
    size_t slot = h & (CACHE_SLOTS - 1);
    for (;; slot = (slot + 1) & (CACHE_SLOTS - 1)) {
        const struct cache_ent *c = &e->cache[slot];
        if (!c->h)
            break;
        if (c->h == h && c->blen == n && memcmp(e->arena.p + c->off, p, n) == 0) {
            const char *src = e->arena.p + c->off + n;
            for (size_t i = 0; i < c->nids; i++) {
                int32_t id;
                memcpy(&id, src + 4 * i, 4);
                tok_ids_push(e->out, id);
            }
            return;
        }
    }
    size_t first = e->out->n;
    if (n <= BPE_SMALL)
        bpe_small(e, (const unsigned char *)p, n);
    else
        bpe_large(e, (const unsigned char *)p, n);
    if (2 * e->cache_used >= CACHE_SLOTS) {
        memset(e->cache, 0, CACHE_SLOTS * sizeof *e->cache);
        e->cache_used = 0;
        buf_reset(&e->arena);
        slot = h & (CACHE_SLOTS - 1);
    }
    e->cache[slot] = (struct cache_ent){h, (uint32_t)e->arena.len, (uint16_t)n,
                                        (uint16_t)(e->out->n - first)};
    e->cache_used++;
    buf_append(&e->arena, p, n);
    buf_append(&e->arena, e->out->v + first, (e->out->n - first) * sizeof(int32_t));
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
    if (!(flags & TOK_ALLOW_SPECIAL) || !t->n_spec)
        return tok_split_run(e->sp, s, n, encode_piece, e, err);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = special_at(t, s + i, n - i);
        if (id < 0)
            continue;
        if (tok_split_run(e->sp, s + start, i - start, encode_piece, e, err) < 0)
            return -1;
        tok_ids_push(out, id);
        i += t->ent[id].len - 1;
        start = i + 1;
    }
    return tok_split_run(e->sp, s + start, n - start, encode_piece, e, err);
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
    return t->n_merges;
}

void
tok_merge_get(const struct tok *t, size_t i, int32_t *a, int32_t *b, int32_t *c)
{
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

static int
b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

// Decodes standard base64 (with '=' padding) s[0..n) into out. Returns -1 and the offending
// offset in *bad on error.
static int
b64_decode(const char *s, size_t n, struct buf *out, size_t *bad)
{
    if (n == 0 || n % 4) {
        *bad = n;
        return -1;
    }
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64_val(c)) < 0) {
                *bad = i + k;
                return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        buf_putc(out, (char)(w >> 16));
        if (pad < 2)
            buf_putc(out, (char)(w >> 8));
        if (pad < 1)
            buf_putc(out, (char)w);
    }
    return 0;
}

int
tok_add_b64_token(struct tok *t, const char *s, size_t n, int64_t rank, struct buf *scratch,
                  size_t *bad, struct kerr *err)
{
    buf_reset(scratch);
    if (b64_decode(s, n, scratch, bad) < 0)
        return kerr_set(err, "invalid base64");
    *bad = 0;
    return tok_set_token(t, (int32_t)rank, scratch->p, scratch->len, TOK_TYPE_NORMAL, err);
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
    struct buf scratch = {0};
    size_t line = 0;
    for (size_t i = 0; i < n;) {
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
        if (tok_add_b64_token(t, l, blen, rank, &scratch, &bad, err) < 0) {
            kerr_prefix(err, "%s:%zu:%zu", name, line, bad + 1);
            goto fail;
        }
    }
    buf_free(&scratch);
    if (tok_index(t, err) < 0 || tok_finish(t, true, true, err) < 0) {
        kerr_prefix(err, "%s", name);
        tok_del(t);
        return NULL;
    }
    return t;
fail:
    buf_free(&scratch);
    tok_del(t);
    return NULL;
}

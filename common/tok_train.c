// SPDX-License-Identifier: MIT
// tok_train: byte-level BPE training with Hugging Face BpeTrainer semantics.
//
// Counting: text is pre-tokenized and each distinct piece ("word") is counted once in a hash
// table, so memory grows with the number of distinct words, not with the text.
// Vocabulary: the specials (ids 0..S-1, in order), then the 256 byte symbols ordered by the
// code point of their byte-to-unicode character, then one token per merge.
// Merging: pair counts (count of the pair in a word × the word's count) live in a hash table
// with, per pair, the list of words where it occurs. A max-heap orders pairs by count, ties to
// the smaller (left id, right id), as HF's Merge ordering does; stale heap entries (counts
// changed since they were pushed) are re-pushed with the current count when popped. Merging a
// pair rewrites only the words on its list, left to right without overlaps, and applies the
// same count changes as HF's Word::merge; pairs that gained are pushed again.
// Difference from HF, on purpose: HF remembers, per heap entry, only the words known when the
// entry was pushed, so in the rare case where a merge produces a string that already is a
// token, it may leave some occurrences unmerged; here every occurrence is merged.
#include "tok_int.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

struct word {
    uint64_t count;
    uint32_t off, len; // bytes in tr->text; later symbols in tr->sym (off) and their count
};

struct pair_info {
    int64_t count;
    uint32_t *pos; // word indices (may repeat or be stale: checked when merging)
    uint32_t n, cap;
};

struct heap_item {
    int64_t count;
    int32_t a, b;
};

struct tok_trainer {
    struct tok_train_opts o;
    char **specials;
    char *regex;
    struct tok_split *sp;
    // words
    struct buf text;
    struct word *w;
    size_t n_words, cap_words;
    uint32_t *wmap; // word index + 1, 0 = empty
    size_t wmask;
    // merging
    int32_t *sym;
    struct pair_info *pi;
    size_t n_pairs, cap_pairs;
    uint64_t *pkey; // open addressing: key, pidx + 1 in pval
    uint32_t *pval;
    size_t pmask;
    struct heap_item *heap;
    size_t hn, hcap;
};

struct tok_trainer *
tok_trainer_new(const struct tok_train_opts *o, struct kerr *err)
{
    if (o->vocab_size < 256 + o->n_specials)
        return kerr_set(err, "vocabulary size %zu is below 256 + %zu specials", o->vocab_size,
                        o->n_specials),
               NULL;
    if (o->vocab_size > (1u << 24))
        return kerr_set(err, "vocabulary size %zu is too large (max %u)", o->vocab_size,
                        1u << 24),
               NULL;
    for (size_t i = 0; i < o->n_specials; i++) {
        if (!o->specials[i][0])
            return kerr_set(err, "empty special token"), NULL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->specials[i], o->specials[j]) == 0)
                return kerr_set(err, "special token %s given twice", o->specials[i]), NULL;
    }
    struct tok_split *sp = tok_split_new(o->pre, o->regex, err);
    if (!sp)
        return NULL;
    struct tok_trainer *tr = xcalloc(1, sizeof *tr);
    tr->o = *o;
    tr->sp = sp;
    tr->regex = xstrdup(o->pre == TOK_PRE_CUSTOM ? o->regex : tok_pre_regex_of(o->pre));
    tr->o.regex = tr->regex;
    tr->specials = xcalloc(o->n_specials + 1, sizeof *tr->specials);
    for (size_t i = 0; i < o->n_specials; i++)
        tr->specials[i] = xstrdup(o->specials[i]);
    tr->o.specials = (const char *const *)tr->specials;
    tr->wmask = (1u << 16) - 1;
    tr->wmap = xcalloc(tr->wmask + 1, sizeof *tr->wmap);
    return tr;
}

void
tok_trainer_del(struct tok_trainer *tr)
{
    if (!tr)
        return;
    tok_split_del(tr->sp);
    for (size_t i = 0; i < tr->o.n_specials; i++)
        free(tr->specials[i]);
    free(tr->specials);
    free(tr->regex);
    buf_free(&tr->text);
    free(tr->w);
    free(tr->wmap);
    free(tr->sym);
    for (size_t i = 0; i < tr->n_pairs; i++)
        free(tr->pi[i].pos);
    free(tr->pi);
    free(tr->pkey);
    free(tr->pval);
    free(tr->heap);
    free(tr);
}

size_t
tok_trainer_words(const struct tok_trainer *tr)
{
    return tr->n_words;
}

static void
wmap_grow(struct tok_trainer *tr)
{
    size_t cap = 2 * (tr->wmask + 1);
    uint32_t *m = xcalloc(cap, sizeof *m);
    for (size_t i = 0; i < tr->n_words; i++) {
        const struct word *w = &tr->w[i];
        size_t h = hash64(tr->text.p + w->off, w->len) & (cap - 1);
        while (m[h])
            h = (h + 1) & (cap - 1);
        m[h] = (uint32_t)i + 1;
    }
    free(tr->wmap);
    tr->wmap = m;
    tr->wmask = cap - 1;
}

static void
count_piece(void *arg, const char *p, size_t n)
{
    struct tok_trainer *tr = arg;
    size_t h = hash64(p, n) & tr->wmask;
    for (;; h = (h + 1) & tr->wmask) {
        uint32_t k = tr->wmap[h];
        if (!k)
            break;
        struct word *w = &tr->w[k - 1];
        if (w->len == n && memcmp(tr->text.p + w->off, p, n) == 0) {
            w->count++;
            return;
        }
    }
    if (tr->n_words == tr->cap_words) {
        tr->cap_words = tr->cap_words ? 2 * tr->cap_words : 4096;
        tr->w = xrealloc(tr->w, tr->cap_words * sizeof *tr->w);
    }
    tr->w[tr->n_words] = (struct word){1, (uint32_t)tr->text.len, (uint32_t)n};
    buf_append(&tr->text, p, n);
    tr->wmap[h] = (uint32_t)++tr->n_words;
    if (2 * tr->n_words > tr->wmask)
        wmap_grow(tr);
}

int
tok_trainer_add(struct tok_trainer *tr, const char *s, size_t n, struct kerr *err)
{
    if (tr->text.len + n >= UINT32_MAX / 2)
        return kerr_set(err, "training text has too many distinct words (over 2 GB)");
    return tok_split_run(tr->sp, s, n, count_piece, tr, err);
}

// ---- pairs ---------------------------------------------------------------------------------

static inline uint64_t
pkey_of(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static void
pmap_grow(struct tok_trainer *tr)
{
    size_t cap = tr->pmask ? 2 * (tr->pmask + 1) : (1u << 16);
    uint64_t *k = xmalloc(cap * sizeof *k);
    uint32_t *v = xcalloc(cap, sizeof *v);
    for (size_t i = 0; i <= tr->pmask && tr->pkey; i++) {
        if (!tr->pval[i])
            continue;
        size_t h = hash_mix64(tr->pkey[i]) & (cap - 1);
        while (v[h])
            h = (h + 1) & (cap - 1);
        k[h] = tr->pkey[i];
        v[h] = tr->pval[i];
    }
    free(tr->pkey);
    free(tr->pval);
    tr->pkey = k;
    tr->pval = v;
    tr->pmask = cap - 1;
}

static struct pair_info *
pair_find(struct tok_trainer *tr, int32_t a, int32_t b, bool create)
{
    uint64_t key = pkey_of(a, b);
    size_t h = hash_mix64(key) & tr->pmask;
    for (;; h = (h + 1) & tr->pmask) {
        uint32_t v = tr->pval[h];
        if (!v)
            break;
        if (tr->pkey[h] == key)
            return &tr->pi[v - 1];
    }
    if (!create)
        return NULL;
    if (tr->n_pairs == tr->cap_pairs) {
        tr->cap_pairs = tr->cap_pairs ? 2 * tr->cap_pairs : 65536;
        tr->pi = xrealloc(tr->pi, tr->cap_pairs * sizeof *tr->pi);
    }
    tr->pi[tr->n_pairs] = (struct pair_info){0};
    tr->pkey[h] = key;
    tr->pval[h] = (uint32_t)++tr->n_pairs;
    struct pair_info *p = &tr->pi[tr->n_pairs - 1];
    if (2 * tr->n_pairs > tr->pmask) {
        pmap_grow(tr);
        p = &tr->pi[tr->n_pairs - 1];
    }
    return p;
}

static void
pair_add_pos(struct pair_info *p, uint32_t wi)
{
    if (p->n && p->pos[p->n - 1] == wi)
        return;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 2;
        p->pos = xrealloc(p->pos, p->cap * sizeof *p->pos);
    }
    p->pos[p->n++] = wi;
}

// Max-heap: larger count first, then smaller (a, b).
static inline bool
item_before(const struct heap_item *x, const struct heap_item *y)
{
    if (x->count != y->count)
        return x->count > y->count;
    return x->a != y->a ? x->a < y->a : x->b < y->b;
}

static void
hpush(struct tok_trainer *tr, struct heap_item v)
{
    if (tr->hn == tr->hcap) {
        tr->hcap = tr->hcap ? 2 * tr->hcap : 65536;
        tr->heap = xrealloc(tr->heap, tr->hcap * sizeof *tr->heap);
    }
    size_t i = tr->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_before(&v, &tr->heap[p]))
            break;
        tr->heap[i] = tr->heap[p];
        i = p;
    }
    tr->heap[i] = v;
}

static struct heap_item
hpop(struct tok_trainer *tr)
{
    struct heap_item top = tr->heap[0], v = tr->heap[--tr->hn];
    size_t i = 0, n = tr->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && item_before(&tr->heap[c + 1], &tr->heap[c]))
            c++;
        if (!item_before(&tr->heap[c], &v))
            break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n)
        tr->heap[i] = v;
    return top;
}

// Pairs that gained count during one merge step, pushed afterwards.
struct touched {
    uint64_t *k;
    size_t n, cap;
};

static void
change(struct tok_trainer *tr, int32_t a, int32_t b, int64_t delta, uint32_t wi,
       struct touched *t)
{
    struct pair_info *p = pair_find(tr, a, b, true);
    p->count += delta;
    if (delta > 0) {
        pair_add_pos(p, wi);
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 256;
            t->k = xrealloc(t->k, t->cap * sizeof *t->k);
        }
        t->k[t->n++] = pkey_of(a, b);
    }
}

static int
u64_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

struct tok *
tok_trainer_finish(struct tok_trainer *tr, struct kerr *err)
{
    const struct tok_train_opts *o = &tr->o;
    size_t S = o->n_specials;
    struct tok *t = tok_alloc(o->pre, tr->regex);
    for (size_t i = 0; i < S; i++)
        if (tok_set_token(t, (int32_t)i, o->specials[i], strlen(o->specials[i]),
                          TOK_TYPE_CONTROL, err) < 0)
            goto fail;
    // The 256 byte symbols in code point order of their byte-to-unicode form.
    int32_t byte_sym[256];
    {
        uint32_t cps[256];
        for (int b = 0; b < 256; b++)
            cps[b] = tok_byte_to_cp((uint8_t)b) << 8 | (uint32_t)b;
        for (int i = 1; i < 256; i++)
            for (int j = i; j > 0 && cps[j - 1] > cps[j]; j--) {
                uint32_t x = cps[j];
                cps[j] = cps[j - 1];
                cps[j - 1] = x;
            }
        for (int i = 0; i < 256; i++) {
            char c = (char)(cps[i] & 0xFF);
            byte_sym[(unsigned char)c] = (int32_t)(S + (size_t)i);
            if (tok_set_token(t, (int32_t)(S + (size_t)i), &c, 1, TOK_TYPE_NORMAL, err) < 0)
                goto fail;
        }
    }
    if (tok_index(t, err) < 0)
        goto fail;
    // Words as symbol arrays.
    size_t total = tr->text.len;
    tr->sym = xmalloc((total + 1) * sizeof *tr->sym);
    for (size_t i = 0; i < total; i++)
        tr->sym[i] = byte_sym[(unsigned char)tr->text.p[i]];
    buf_free(&tr->text);
    free(tr->wmap);
    tr->wmap = NULL;
    pmap_grow(tr);
    for (size_t wi = 0; wi < tr->n_words; wi++) {
        const struct word *w = &tr->w[wi];
        for (uint32_t k = 0; k + 1 < w->len; k++) {
            struct pair_info *p = pair_find(tr, tr->sym[w->off + k], tr->sym[w->off + k + 1], true);
            p->count += (int64_t)w->count;
            pair_add_pos(p, (uint32_t)wi);
        }
    }
    for (size_t i = 0; i <= tr->pmask; i++)
        if (tr->pval[i]) {
            const struct pair_info *p = &tr->pi[tr->pval[i] - 1];
            hpush(tr, (struct heap_item){p->count, (int32_t)(tr->pkey[i] >> 32),
                                         (int32_t)(uint32_t)tr->pkey[i]});
        }
    uint64_t minf = o->min_frequency ? o->min_frequency : 1;
    struct touched touched = {0};
    struct buf nb = {0};
    size_t vocab = S + 256;
    while (vocab < o->vocab_size && tr->hn) {
        struct heap_item top = hpop(tr);
        struct pair_info *p = pair_find(tr, top.a, top.b, false);
        if (top.count != p->count) {
            if (p->count > 0) {
                top.count = p->count;
                hpush(tr, top);
            }
            continue;
        }
        if (top.count < 1 || (uint64_t)top.count < minf)
            break;
        // The new token (or the existing one with the same bytes).
        size_t la, lb;
        const char *sa = tok_token_bytes(t, top.a, &la), *sb = tok_token_bytes(t, top.b, &lb);
        buf_reset(&nb);
        buf_append(&nb, sa, la);
        buf_append(&nb, sb, lb);
        int32_t c = tok_token_id(t, nb.p, nb.len);
        if (c < 0) {
            c = (int32_t)t->n;
            if (tok_set_token(t, c, nb.p, nb.len, TOK_TYPE_NORMAL, err) < 0)
                goto fail;
            // Keep the bytes map current: re-index (cheap relative to growth by doubling).
            if (2 * t->n + 16 > t->bmask + 1) {
                if (tok_index(t, err) < 0)
                    goto fail;
            } else {
                tok_bmap_put(t, c);
            }
            vocab++;
        }
        tok_push_merge(t, top.a, top.b, c);
        // Apply in every word on the pair's list. The list may grow while we walk it (only
        // for pairs involving c, not this one), so take a copy of the bounds.
        p = pair_find(tr, top.a, top.b, false);
        uint32_t npos = p->n;
        uint32_t *pos = p->pos;
        p->pos = NULL;
        p->n = p->cap = 0;
        touched.n = 0;
        for (uint32_t q = 0; q < npos; q++) {
            uint32_t wi = pos[q];
            struct word *w = &tr->w[wi];
            int32_t *s = tr->sym + w->off;
            int64_t cnt = (int64_t)w->count;
            uint32_t len = w->len, out = 0;
            for (uint32_t i = 0; i < len; i++) {
                if (i + 1 < len && s[i] == top.a && s[i + 1] == top.b) {
                    if (out > 0) {
                        change(tr, s[out - 1], top.a, -cnt, wi, &touched);
                        change(tr, s[out - 1], c, cnt, wi, &touched);
                    }
                    if (i + 2 < len) {
                        change(tr, top.b, s[i + 2], -cnt, wi, &touched);
                        change(tr, c, s[i + 2], cnt, wi, &touched);
                    }
                    s[out++] = c;
                    i++;
                } else {
                    s[out++] = s[i];
                }
            }
            w->len = out;
        }
        free(pos);
        p = pair_find(tr, top.a, top.b, false);
        p->count = 0;
        if (touched.n)
            qsort(touched.k, touched.n, sizeof *touched.k, u64_cmp);
        for (size_t i = 0; i < touched.n; i++) {
            if (i && touched.k[i] == touched.k[i - 1])
                continue;
            int32_t a = (int32_t)(touched.k[i] >> 32), b = (int32_t)(uint32_t)touched.k[i];
            struct pair_info *np = pair_find(tr, a, b, false);
            if (np->count > 0)
                hpush(tr, (struct heap_item){np->count, a, b});
        }
    }
    free(touched.k);
    buf_free(&nb);
    if (tok_index(t, err) < 0 || tok_finish(t, false, false, err) < 0)
        goto fail;
    return t;
fail:
    tok_del(t);
    return NULL;
}

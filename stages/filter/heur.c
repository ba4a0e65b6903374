// SPDX-License-Identifier: MIT
// heur: the built-in rule sets (see heur.h). Each set measures its statistics in datatrove's
// order and reports the first failing check under datatrove's reason name.
//
// Duplicate lines and paragraphs are found with a hash table of byte spans confirmed by
// comparing bytes. Word n-grams are keyed by a polynomial hash modulo 2^61-1 of the joined
// string (" ".join for top n-grams, "".join for duplicated n-grams, exactly as datatrove joins
// them), mixed with the n-gram's byte length; two different n-grams of one document collide
// with probability about n^2 / 2^62 for n words (below 2^-42 for a thousand words).
#include "heur.h"

#include "hash.h"
#include "unicode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- parameters -------------------------------------------------------------------------

#define BIG 1e12

static const struct heur_param gq_params[] = {
    {"min_doc_words", 50, 0, BIG, true, "drop with fewer non-symbol words (0: off)"},
    {"max_doc_words", 100000, 0, BIG, true, "drop with more non-symbol words (0: off)"},
    {"min_avg_word_length", 3, 0, BIG, false, "drop when the mean word length is lower (0: off)"},
    {"max_avg_word_length", 10, 0, BIG, false, "drop when the mean word length is higher (0: off)"},
    {"max_symbol_word_ratio", 0.1, 0, BIG, false, "max '#' and max ellipses per word (0: off)"},
    {"max_bullet_lines_ratio", 0.9, 0, 1, false, "max share of lines starting with a bullet"},
    {"max_ellipsis_lines_ratio", 0.3, 0, 1, false, "max share of lines ending with an ellipsis"},
    {"max_non_alpha_words_ratio", 0.8, 0, 1, false, "min share of words with a letter (0: off)"},
    {"min_stop_words", 2, 0, 8, true, "min distinct stop words (the be to of and that have with)"},
};
enum { GQ_MIN_WORDS, GQ_MAX_WORDS, GQ_MIN_AVG, GQ_MAX_AVG, GQ_SYMBOL, GQ_BULLET, GQ_ELLIPSIS,
       GQ_ALPHA, GQ_STOP };

static const struct heur_param gr_params[] = {
    {"dup_line_frac", 0.3, 0, 1, false, "max share of duplicate lines (0: off)"},
    {"dup_para_frac", 0.3, 0, 1, false, "max share of duplicate paragraphs (0: off)"},
    {"dup_line_char_frac", 0.2, 0, 1, false, "max character share of duplicate lines (0: off)"},
    {"dup_para_char_frac", 0.2, 0, 1, false, "max character share of duplicate paragraphs"},
    {"top_2_gram", 0.20, 0, BIG, false, "max character share of the top 2-gram (0: off)"},
    {"top_3_gram", 0.18, 0, BIG, false, "max character share of the top 3-gram (0: off)"},
    {"top_4_gram", 0.16, 0, BIG, false, "max character share of the top 4-gram (0: off)"},
    {"dup_5_gram", 0.15, 0, 1, false, "max character share of duplicated 5-grams (0: off)"},
    {"dup_6_gram", 0.14, 0, 1, false, "max character share of duplicated 6-grams (0: off)"},
    {"dup_7_gram", 0.13, 0, 1, false, "max character share of duplicated 7-grams (0: off)"},
    {"dup_8_gram", 0.12, 0, 1, false, "max character share of duplicated 8-grams (0: off)"},
    {"dup_9_gram", 0.11, 0, 1, false, "max character share of duplicated 9-grams (0: off)"},
    {"dup_10_gram", 0.10, 0, 1, false, "max character share of duplicated 10-grams (0: off)"},
};
enum { GR_LINE, GR_PARA, GR_LINE_CHAR, GR_PARA_CHAR, GR_TOP2 = 4, GR_DUP5 = 7 };

static const struct heur_param c4_params[] = {
    {"min_num_sentences", 5, -1, BIG, true, "drop with fewer sentences in kept lines (-1: off)"},
    {"min_words_per_line", 3, -1, BIG, true, "drop lines with fewer words (-1: off)"},
    {"max_word_length", 1000, -1, BIG, true, "drop lines with a longer word (-1: off)"},
    {"remove_citations", 1, 0, 1, true, "remove [1], [edit], [citation needed]"},
    {"filter_no_terminal_punct", 1, 0, 1, true, "drop lines not ending in . ? ! \" '"},
    {"filter_lorem_ipsum", 1, 0, 1, true, "drop documents containing \"lorem ipsum\""},
    {"filter_javascript", 1, 0, 1, true, "drop lines containing \"javascript\""},
    {"filter_curly_bracket", 1, 0, 1, true, "drop documents containing '{'"},
    {"filter_policy", 1, 0, 1, true, "drop lines with cookie / terms-of-use phrases"},
};
enum { C4_MIN_SENT, C4_MIN_WORDS, C4_MAX_WORD, C4_CITE, C4_TERM, C4_LOREM, C4_JS, C4_CURLY,
       C4_POLICY };

static const struct heur_param fw_params[] = {
    {"line_punct_thr", 0.12, 0, 1, false, "drop when the share of lines ending in . ' \" ! ? is <= this"},
    {"line_punct_exclude_zero", 0, 0, 1, true, "1: keep documents where that share is 0"},
    {"short_line_thr", 0.67, 0, 1, false, "drop when the share of short lines is >= this"},
    {"short_line_length", 30, 0, BIG, true, "a short line has at most this many characters"},
    {"char_duplicates_ratio", 0.01, 0, 1, false, "drop when duplicate-line characters are >= this"},
    {"new_line_ratio", 0.3, 0, BIG, false, "drop when newlines per word are > this"},
};
enum { FW_PUNCT, FW_PUNCT_ZERO, FW_SHORT, FW_SHORT_LEN, FW_DUP, FW_NL };

const struct heur_set heur_sets[HEUR_NSETS] = {
    {"gopher-quality", gq_params, KILN_ARRAY_LEN(gq_params)},
    {"gopher-repetition", gr_params, KILN_ARRAY_LEN(gr_params)},
    {"c4", c4_params, KILN_ARRAY_LEN(c4_params)},
    {"fineweb", fw_params, KILN_ARRAY_LEN(fw_params)},
};

int
heur_set_find(const char *name)
{
    for (int s = 0; s < HEUR_NSETS; s++)
        if (strcmp(heur_sets[s].name, name) == 0)
            return s;
    return -1;
}

int
heur_param_find(int s, const char *name)
{
    if (s == HEUR_GOPHER_QUALITY && strcmp(name, "min_words") == 0)
        return GQ_MIN_WORDS;
    if (s == HEUR_GOPHER_QUALITY && strcmp(name, "max_words") == 0)
        return GQ_MAX_WORDS;
    for (size_t i = 0; i < heur_sets[s].n_params; i++)
        if (strcmp(heur_sets[s].params[i].name, name) == 0)
            return (int)i;
    return -1;
}

void
heur_params_default(int s, double *p)
{
    for (size_t i = 0; i < heur_sets[s].n_params; i++)
        p[i] = heur_sets[s].params[i].def;
}

// ---- scratch ----------------------------------------------------------------------------

void
heur_ctx_init(struct heur_ctx *x)
{
    memset(x, 0, sizeof *x);
}

void
heur_ctx_free(struct heur_ctx *x)
{
    ts_words_free(&x->words);
    free(x->slots);
    free(x->wpoly);
    free(x->wpow);
    free(x->ngram);
    free(x->ncps);
    buf_free(&x->tmp);
    memset(x, 0, sizeof *x);
}

const struct ts_words *
heur_words(struct heur_ctx *x, const char *text, size_t n)
{
    if (x->words_text != text || x->words_n != n || !x->words.v) {
        ts_words_split(text, n, &x->words);
        x->words_text = text;
        x->words_n = n;
    }
    return &x->words;
}

// ---- hash table -------------------------------------------------------------------------

// Empties the table, sized for up to n entries.
static void
table_reset(struct heur_ctx *x, size_t n)
{
    size_t cap = 64;
    while (cap < 2 * n + 2)
        cap *= 2;
    if (cap > x->alloc) {
        free(x->slots);
        x->slots = xmalloc(cap * sizeof *x->slots);
        x->alloc = cap;
    }
    x->cap = cap;
    x->mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        x->slots[i].key = 0;
}

// Finds or inserts the entry for key (never 0). With text != NULL, entries are byte spans of
// text compared exactly. Returns the slot; a new slot has count 0.
static struct heur_slot *
table_get(struct heur_ctx *x, uint64_t key, const char *text, uint32_t off, uint32_t len)
{
    size_t i = (size_t)(key ^ (key >> 29)) & x->mask;
    for (;;) {
        struct heur_slot *e = &x->slots[i];
        if (e->key == 0) {
            *e = (struct heur_slot){key, 0, 0, off, len};
            return e;
        }
        if (e->key == key &&
            (!text || (e->len == len && memcmp(text + e->off, text + off, len) == 0)))
            return e;
        i = (i + 1) & x->mask;
    }
}

static uint64_t
key_of(uint64_t h)
{
    h = hash_mix64(h);
    return h ? h : 1;
}

// ---- polynomial hashes modulo 2^61-1 ------------------------------------------------------

#define MERSENNE61 ((1ULL << 61) - 1)
#define POLY_BASE 0x1F3D5B79A2C4E6ULL // < 2^61-1, fixed

static inline uint64_t
mulmod61(uint64_t a, uint64_t b)
{
    __uint128_t p = (__uint128_t)a * b;
    uint64_t lo = (uint64_t)(p & MERSENNE61), hi = (uint64_t)(p >> 61);
    uint64_t r = lo + hi;
    return r >= MERSENNE61 ? r - MERSENNE61 : r;
}

static inline uint64_t
addmod61(uint64_t a, uint64_t b)
{
    uint64_t r = a + b;
    return r >= MERSENNE61 ? r - MERSENNE61 : r;
}

#define NGRAM_MAX 10

// Per-word polynomial hash of its bytes and BASE^len.
static void
word_hashes(struct heur_ctx *x, const char *text, const struct ts_words *w)
{
    if (w->n > x->wcap) {
        x->wcap = w->n;
        x->wpoly = xrealloc(x->wpoly, x->wcap * sizeof *x->wpoly);
        x->wpow = xrealloc(x->wpow, x->wcap * sizeof *x->wpow);
        x->ngram = xrealloc(x->ngram, x->wcap * (NGRAM_MAX - 1) * sizeof *x->ngram);
        x->ncps = xrealloc(x->ncps, x->wcap * (NGRAM_MAX - 1) * sizeof *x->ncps);
    }
    for (size_t i = 0; i < w->n; i++) {
        const unsigned char *p = (const unsigned char *)text + w->v[i].off;
        uint64_t h = 0, pw = 1;
        for (uint32_t j = 0; j < w->v[i].len; j++) {
            h = addmod61(mulmod61(h, POLY_BASE), (uint64_t)p[j] + 1);
            pw = mulmod61(pw, POLY_BASE);
        }
        x->wpoly[i] = h;
        x->wpow[i] = pw;
    }
}

// Keys of every n-gram for n = 2..nmax starting at each word, joined with sep (0 = nothing):
// x->ngram[i * (NGRAM_MAX-1) + n-2] and its length in code points in x->ncps (same index).
// One left-to-right extension per position: nmax-1 hash steps instead of one per n and word.
static void
ngram_keys(struct heur_ctx *x, const struct ts_words *w, size_t nmax, int sep)
{
    for (size_t i = 0; i + 2 <= w->n; i++) {
        uint64_t h = x->wpoly[i], bytes = w->v[i].len, c = w->v[i].cps;
        for (size_t n = 2; n <= nmax && i + n <= w->n; n++) {
            size_t j = i + n - 1;
            if (sep) {
                h = addmod61(mulmod61(h, POLY_BASE), (uint64_t)sep + 1);
                bytes++, c++;
            }
            h = addmod61(mulmod61(h, x->wpow[j]), x->wpoly[j]);
            bytes += w->v[j].len;
            c += w->v[j].cps;
            uint64_t k = (h + bytes * 0xD6E8FEB86659FD93ULL) * 0x9E3779B97F4A7C15ULL;
            k ^= k >> 32;
            x->ngram[i * (NGRAM_MAX - 1) + n - 2] = k ? k : 1;
            x->ncps[i * (NGRAM_MAX - 1) + n - 2] = (uint32_t)c;
        }
    }
}

// ---- helpers ----------------------------------------------------------------------------

static void
measure(struct heur_result *r, const char *name, double v)
{
    if (r->nm < HEUR_MAX_MEASURES) {
        r->m[r->nm].name = name;
        r->m[r->nm].v = v;
        r->nm++;
    }
}

// Records a failure (the first one wins). Returns true when the caller should stop.
static bool
fail(struct heur_result *r, const char *reason, double v, bool all)
{
    if (!r->reason) {
        r->reason = reason;
        r->value = v;
    }
    return !all;
}

// Non-overlapping occurrences of needle (Python str.count).
static size_t
count_str(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle), c = 0;
    const char *p = s, *end = s + n;
    while ((size_t)(end - p) >= k) {
        const char *q = memmem(p, (size_t)(end - p), needle, k);
        if (!q)
            break;
        c++;
        p = q + k;
    }
    return c;
}

static bool
starts_with(const char *s, size_t n, const char *pre)
{
    size_t k = strlen(pre);
    return n >= k && memcmp(s, pre, k) == 0;
}

static bool
ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

static double
ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

// ---- gopher-quality -----------------------------------------------------------------------

static const char *const stop_words[] = {"the", "be", "to", "of", "and", "that", "have", "with"};
static const uint32_t stop_lens[] = {3, 2, 2, 2, 3, 4, 4, 4};

static void
gopher_quality(struct heur_ctx *x, const double *p, const char *text, size_t n, bool all,
               struct heur_result *r)
{
    const struct ts_words *w = heur_words(x, text, n);
    size_t n_words = w->n, nonsym = 0, alpha = 0;
    uint64_t len_sum = 0;
    unsigned stop_seen = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct ts_word *t = &w->v[i];
        if (!(t->flags & TS_WORD_SYMBOL)) {
            nonsym++;
            len_sum += t->cps;
        }
        if (t->flags & TS_WORD_ALPHA)
            alpha++;
        if (t->len >= 2 && t->len <= 4) {
            for (unsigned k = 0; k < KILN_ARRAY_LEN(stop_words); k++)
                if (stop_lens[k] == t->len &&
                    memcmp(stop_words[k], text + t->off, t->len) == 0)
                    stop_seen |= 1u << k;
        }
    }
    measure(r, "gopher_words", (double)nonsym);
    if (p[GQ_MIN_WORDS] > 0 && (double)nonsym < p[GQ_MIN_WORDS] &&
        fail(r, "gopher_short_doc", (double)nonsym, all))
        return;
    if (p[GQ_MAX_WORDS] > 0 && (double)nonsym > p[GQ_MAX_WORDS] &&
        fail(r, "gopher_long_doc", (double)nonsym, all))
        return;
    double avg = ratio((double)len_sum, (double)nonsym);
    measure(r, "gopher_avg_word_length", avg);
    if (p[GQ_MIN_AVG] > 0 && avg < p[GQ_MIN_AVG] &&
        fail(r, "gopher_below_avg_threshold", avg, all))
        return;
    if (p[GQ_MAX_AVG] > 0 && avg > p[GQ_MAX_AVG] &&
        fail(r, "gopher_above_avg_threshold", avg, all))
        return;
    double hashes = ratio((double)count_str(text, n, "#"), (double)n_words);
    measure(r, "gopher_hash_ratio", hashes);
    if (p[GQ_SYMBOL] > 0 && hashes > p[GQ_SYMBOL] &&
        fail(r, "gopher_too_many_hashes", hashes, all))
        return;
    double ell = ratio((double)(count_str(text, n, "...") + count_str(text, n, "\xE2\x80\xA6")),
                       (double)n_words);
    measure(r, "gopher_ellipsis_ratio", ell);
    if (p[GQ_SYMBOL] > 0 && ell > p[GQ_SYMBOL] && fail(r, "gopher_too_many_ellipsis", ell, all))
        return;
    size_t pos = 0, a, len, lines = 0, bullets = 0, end_ell = 0;
    while (ts_line_next(text, n, &pos, &a, &len)) {
        size_t sa, sl;
        ts_strip(text + a, len, &sa, &sl);
        const char *l = text + a + sa;
        lines++;
        bullets += starts_with(l, sl, "\xE2\x80\xA2") || starts_with(l, sl, "-");
        end_ell += ends_with(l, sl, "...") || ends_with(l, sl, "\xE2\x80\xA6");
    }
    double bul = ratio((double)bullets, (double)lines);
    measure(r, "gopher_bullet_lines_ratio", bul);
    if (p[GQ_BULLET] > 0 && bul > p[GQ_BULLET] && fail(r, "gopher_too_many_bullets", bul, all))
        return;
    double eel = ratio((double)end_ell, (double)lines);
    measure(r, "gopher_end_ellipsis_lines_ratio", eel);
    if (p[GQ_ELLIPSIS] > 0 && eel > p[GQ_ELLIPSIS] &&
        fail(r, "gopher_too_many_end_ellipsis", eel, all))
        return;
    double al = ratio((double)alpha, (double)n_words);
    measure(r, "gopher_alpha_words_ratio", al);
    if (p[GQ_ALPHA] > 0 && al < p[GQ_ALPHA] && fail(r, "gopher_below_alpha_threshold", al, all))
        return;
    double stops = __builtin_popcount(stop_seen);
    measure(r, "gopher_stop_words", stops);
    if (p[GQ_STOP] > 0 && stops < p[GQ_STOP])
        fail(r, "gopher_enough_stop_words", stops, all);
}

// ---- gopher-repetition --------------------------------------------------------------------

// Duplicate elements and their code points among spans (datatrove find_duplicates).
struct span {
    uint32_t off, len;
};

static void
find_duplicates(struct heur_ctx *x, const char *text, const struct span *v, size_t n,
                size_t *dup, size_t *dup_chars)
{
    table_reset(x, n);
    *dup = *dup_chars = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = key_of(hash64(text + v[i].off, v[i].len));
        struct heur_slot *e = table_get(x, k, text, v[i].off, v[i].len);
        if (e->count++) {
            (*dup)++;
            *dup_chars += ts_cps(text + v[i].off, v[i].len);
        }
    }
}

static struct span *
spans_push(struct buf *b, size_t *n, size_t off, size_t len)
{
    buf_reserve(b, sizeof(struct span));
    struct span *s = (struct span *)(void *)(b->p + b->len);
    s->off = (uint32_t)off;
    s->len = (uint32_t)len;
    b->len += sizeof(struct span);
    (*n)++;
    return s;
}

// Paragraphs: text.strip() split on runs of two or more '\n'.
static size_t
split_paragraphs(const char *text, size_t n, struct buf *out)
{
    size_t a, len, k = 0;
    out->len = 0;
    ts_strip(text, n, &a, &len);
    size_t end = a + len, start = a, i = a;
    while (i < end) {
        if (text[i] == '\n' && i + 1 < end && text[i + 1] == '\n') {
            spans_push(out, &k, start, i - start);
            while (i < end && text[i] == '\n')
                i++;
            start = i;
        } else {
            i++;
        }
    }
    spans_push(out, &k, start, end - start);
    return k;
}

// Lines: re.split("\n+", text).
static size_t
split_nl_runs(const char *text, size_t n, struct buf *out)
{
    size_t k = 0, start = 0, i = 0;
    out->len = 0;
    while (i < n) {
        if (text[i] == '\n') {
            spans_push(out, &k, start, i - start);
            while (i < n && text[i] == '\n')
                i++;
            start = i;
        } else {
            i++;
        }
    }
    spans_push(out, &k, start, n - start);
    return k;
}

static const char *const top_reasons[] = {"top_2_gram", "top_3_gram", "top_4_gram"};
static const char *const dup_reasons[] = {"duplicated_5_n_grams", "duplicated_6_n_grams",
                                          "duplicated_7_n_grams", "duplicated_8_n_grams",
                                          "duplicated_9_n_grams", "duplicated_10_n_grams"};
static const char *const top_names[] = {"gopher_top_2_gram", "gopher_top_3_gram",
                                        "gopher_top_4_gram"};
static const char *const dup_names[] = {"gopher_dup_5_gram", "gopher_dup_6_gram",
                                        "gopher_dup_7_gram", "gopher_dup_8_gram",
                                        "gopher_dup_9_gram", "gopher_dup_10_gram"};

static void
gopher_repetition(struct heur_ctx *x, const double *p, const char *text, size_t n, bool all,
                  struct heur_result *r)
{
    double chars = (double)ts_cps(text, n);
    size_t dup, dup_chars;

    size_t np = split_paragraphs(text, n, &x->tmp);
    find_duplicates(x, text, (const struct span *)(void *)x->tmp.p, np, &dup, &dup_chars);
    double v = ratio((double)dup, (double)np);
    measure(r, "gopher_dup_para_frac", v);
    if (p[GR_PARA] > 0 && v > p[GR_PARA] && fail(r, "dup_para_frac", v, all))
        return;
    v = ratio((double)dup_chars, chars);
    measure(r, "gopher_dup_para_char_frac", v);
    if (p[GR_PARA_CHAR] > 0 && v > p[GR_PARA_CHAR] && fail(r, "dup_para_char_frac", v, all))
        return;

    size_t nl = split_nl_runs(text, n, &x->tmp);
    find_duplicates(x, text, (const struct span *)(void *)x->tmp.p, nl, &dup, &dup_chars);
    v = ratio((double)dup, (double)nl);
    measure(r, "gopher_dup_line_frac", v);
    if (p[GR_LINE] > 0 && v > p[GR_LINE] && fail(r, "dup_line_frac", v, all))
        return;
    v = ratio((double)dup_chars, chars);
    measure(r, "gopher_dup_line_char_frac", v);
    if (p[GR_LINE_CHAR] > 0 && v > p[GR_LINE_CHAR] && fail(r, "dup_line_char_frac", v, all))
        return;

    const struct ts_words *w = heur_words(x, text, n);
    word_hashes(x, text, w);
    ngram_keys(x, w, 4, ' ');
    // Top n-grams: the most common n-gram (the first seen among equals, as Counter does)
    // times its length joined with spaces.
    for (size_t g = 2; g <= 4; g++) {
        if (w->n < g)
            continue;
        size_t cnt = w->n - g + 1;
        table_reset(x, cnt);
        struct heur_slot *best = NULL;
        for (size_t i = 0; i < cnt; i++) {
            size_t at = i * (NGRAM_MAX - 1) + g - 2;
            struct heur_slot *e = table_get(x, x->ngram[at], NULL, 0, x->ncps[at]);
            if (e->count++ == 0)
                e->first = (uint32_t)i;
            if (!best || e->count > best->count ||
                (e->count == best->count && e->first < best->first))
                best = e;
        }
        v = ratio((double)best->len * best->count, chars);
        measure(r, top_names[g - 2], v);
        if (p[GR_TOP2 + g - 2] > 0 && v > p[GR_TOP2 + g - 2] && fail(r, top_reasons[g - 2], v, all))
            return;
    }
    // Duplicated n-grams: scan left to right; a repeated n-gram counts its characters
    // ("".join) and skips n words, a new one is remembered (datatrove find_all_duplicate).
    ngram_keys(x, w, NGRAM_MAX, 0);
    for (size_t g = 5; g <= NGRAM_MAX; g++) {
        uint64_t rep = 0;
        if (w->n >= g) {
            table_reset(x, w->n - g + 1);
            size_t i = 0;
            while (i + g <= w->n) {
                size_t at = i * (NGRAM_MAX - 1) + g - 2;
                struct heur_slot *e = table_get(x, x->ngram[at], NULL, 0, 0);
                if (e->count) {
                    rep += x->ncps[at];
                    i += g;
                } else {
                    e->count = 1;
                    i++;
                }
            }
        }
        v = ratio((double)rep, chars);
        measure(r, dup_names[g - 5], v);
        if (p[GR_DUP5 + g - 5] > 0 && v > p[GR_DUP5 + g - 5] && fail(r, dup_reasons[g - 5], v, all))
            return;
    }
}

// ---- c4 -----------------------------------------------------------------------------------

// ASCII-case-insensitive substring search (the phrases are ASCII).
static bool
contains_ci(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k) {
            char c = s[i + j];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (c != needle[j])
                break;
            j++;
        }
        if (j == k)
            return true;
    }
    return false;
}

// Removes wikipedia citations "[digits]", "[edit]", "[citation needed]" from s into out.
static void
remove_citations(const char *s, size_t n, struct buf *out)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] == '[') {
            size_t j = i + 1;
            while (j < n && s[j] >= '0' && s[j] <= '9')
                j++;
            size_t skip = 0;
            if (j < n && s[j] == ']')
                skip = j + 1 - i;
            else if (starts_with(s + i, n - i, "[edit]"))
                skip = 6;
            else if (starts_with(s + i, n - i, "[citation needed]"))
                skip = 17;
            if (skip) {
                i += skip;
                continue;
            }
        }
        buf_putc(out, s[i]);
        i++;
    }
}

static bool
is_abbrev(const char *s, size_t end)
{
    // Word before the '.' that ends at s[end] (exclusive of the dot).
    static const char *const abbr[] = {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st",
                                       "vs", "etc", "e.g", "i.e", "no", "inc", "ltd", "co"};
    size_t a = end;
    while (a > 0 && s[a - 1] != ' ' && s[a - 1] != '\t' && s[a - 1] != '(' && s[a - 1] != '"')
        a--;
    size_t len = end - a;
    if (len == 1 && s[a] >= 'A' && s[a] <= 'Z') // initials: "J. Smith"
        return true;
    for (size_t k = 0; k < KILN_ARRAY_LEN(abbr); k++) {
        if (strlen(abbr[k]) != len)
            continue;
        size_t j = 0;
        while (j < len && (s[a + j] | 32) == abbr[k][j])
            j++;
        if (j == len)
            return true;
    }
    return false;
}

// Sentences in one line: a sentence ends at a run of . ! ? (plus closing quotes or brackets)
// followed by whitespace or the end of the line, except after a short list of abbreviations
// and single capital initials; text after the last end counts as one more sentence.
// (An approximation of NLTK's punkt sentence tokenizer, which datatrove uses.)
static size_t
count_sentences(const char *s, size_t n)
{
    size_t count = 0, i = 0;
    bool pending = false; // non-space text since the last sentence end
    while (i < n) {
        char c = s[i];
        if (c == '.' || c == '!' || c == '?') {
            size_t j = i;
            bool only_dot = true;
            while (j < n && (s[j] == '.' || s[j] == '!' || s[j] == '?'))
                only_dot &= s[j] == '.', j++;
            while (j < n && (s[j] == '"' || s[j] == '\'' || s[j] == ')' || s[j] == ']'))
                j++;
            if (j == n || s[j] == ' ' || s[j] == '\t') {
                if (!(only_dot && j == i + 1 && is_abbrev(s, i) && j < n)) {
                    count++;
                    pending = false;
                    i = j;
                    continue;
                }
            }
            pending = true;
            i = j;
            continue;
        }
        if (c != ' ' && c != '\t')
            pending = true;
        i++;
    }
    return count + pending;
}

static const char *const policy_phrases[] = {"terms of use",  "privacy policy", "cookie policy",
                                             "uses cookies",  "use of cookies", "use cookies"};

static void
c4(struct heur_ctx *x, const double *p, const char *text, size_t n, bool all,
   struct heur_result *r, struct buf *out)
{
    size_t pos = 0, a, len, sentences = 0, lines = 0, kept = 0;
    struct buf *line = &x->tmp;
    out->len = 0;
    bool first = true;
    while (ts_line_next(text, n, &pos, &a, &len)) {
        size_t sa, sl;
        ts_strip(text + a, len, &sa, &sl);
        const char *l = text + a + sa;
        lines++;
        // Words (str.split()) and the longest one.
        size_t words = 0, maxw = 0;
        for (size_t i = 0; i < sl;) {
            while (i < sl && (l[i] == ' ' || l[i] == '\t' || l[i] == '\v' || l[i] == '\f'))
                i++;
            if (i >= sl)
                break;
            size_t st = i;
            while (i < sl && !(l[i] == ' ' || l[i] == '\t' || l[i] == '\v' || l[i] == '\f'))
                i++;
            words++;
            size_t c = ts_cps(l + st, i - st);
            if (c > maxw)
                maxw = c;
        }
        if (p[C4_MAX_WORD] >= 0 && (double)maxw > p[C4_MAX_WORD])
            continue;
        line->len = 0;
        if (p[C4_CITE] > 0)
            remove_citations(l, sl, line);
        else
            buf_append(line, l, sl);
        const char *q = line->p ? line->p : "";
        size_t ql = line->len;
        if (p[C4_TERM] > 0) {
            char last = ql ? q[ql - 1] : 0;
            bool term = last == '.' || last == '?' || last == '!' || last == '"' || last == '\'';
            if (!term || ends_with(q, ql, "..."))
                continue;
        }
        if ((double)words < p[C4_MIN_WORDS])
            continue;
        if (p[C4_LOREM] > 0 && contains_ci(q, ql, "lorem ipsum")) {
            if (fail(r, "lorem_ipsum", 1, all))
                return;
            continue;
        }
        if (p[C4_JS] > 0 && contains_ci(q, ql, "javascript"))
            continue;
        if (p[C4_CURLY] > 0 && memchr(q, '{', ql)) {
            if (fail(r, "curly_bracket", 1, all))
                return;
            continue;
        }
        if (p[C4_POLICY] > 0) {
            bool pol = false;
            for (size_t k = 0; k < KILN_ARRAY_LEN(policy_phrases) && !pol; k++)
                pol = contains_ci(q, ql, policy_phrases[k]);
            if (pol)
                continue;
        }
        sentences += count_sentences(q, ql);
        if (!first)
            buf_putc(out, '\n');
        buf_append(out, q, ql);
        first = false;
        kept++;
    }
    measure(r, "c4_lines", (double)lines);
    measure(r, "c4_lines_kept", (double)kept);
    measure(r, "c4_sentences", (double)sentences);
    if (!r->reason && (double)sentences < p[C4_MIN_SENT])
        fail(r, "too_few_sentences", (double)sentences, all);
    // "\n".join(kept).strip()
    size_t sa, sl;
    ts_strip(out->p ? out->p : "", out->len, &sa, &sl);
    if (sa)
        memmove(out->p, out->p + sa, sl);
    out->len = sl;
    if (out->p)
        out->p[sl] = 0;
    r->rewritten = !(out->len == n && memcmp(out->p ? out->p : "", text, n) == 0);
}

// ---- fineweb ------------------------------------------------------------------------------

static void
fineweb(struct heur_ctx *x, const double *p, const char *text, size_t n, bool all,
        struct heur_result *r)
{
    // lines = text.split("\n")
    size_t k = 0, start = 0, punct = 0, shorts = 0, newlines = 0;
    struct buf *sp = &x->tmp;
    sp->len = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && text[i] != '\n')
            continue;
        const char *l = text + start;
        size_t len = i - start;
        char last = len ? l[len - 1] : 0;
        punct += last == '.' || last == '\'' || last == '"' || last == '!' || last == '?';
        shorts += (double)ts_cps(l, len) <= p[FW_SHORT_LEN];
        size_t sa, sl;
        ts_strip(l, len, &sa, &sl);
        if (sl) {
            size_t dummy = 0;
            spans_push(sp, &dummy, start, len);
            k++;
        }
        newlines += i < n;
        start = i + 1;
    }
    size_t nlines = newlines + 1;
    double v = ratio((double)punct, (double)nlines);
    measure(r, "fineweb_line_punct_ratio", v);
    if (v <= p[FW_PUNCT] && !(v == 0 && p[FW_PUNCT_ZERO] > 0) &&
        fail(r, "line_punct_ratio", v, all))
        return;
    v = ratio((double)shorts, (double)nlines);
    measure(r, "fineweb_short_line_ratio", v);
    if (v >= p[FW_SHORT] && fail(r, "short_line_ratio", v, all))
        return;
    size_t dup, dup_chars;
    find_duplicates(x, text, (const struct span *)(void *)sp->p, k, &dup, &dup_chars);
    v = ratio((double)dup_chars, (double)(ts_cps(text, n) - newlines));
    measure(r, "fineweb_char_dup_ratio", v);
    if (v >= p[FW_DUP] && fail(r, "char_dup_ratio", v, all))
        return;
    const struct ts_words *w = heur_words(x, text, n);
    v = w->n ? (double)newlines / (double)w->n : INFINITY;
    measure(r, "fineweb_newline_ratio", v);
    if (v > p[FW_NL])
        fail(r, "list_ratio", v, all);
}

// ---- dispatch -----------------------------------------------------------------------------

void
heur_run(struct heur_ctx *x, int s, const double *p, const char *text, size_t n, bool all,
         struct heur_result *r, struct buf *out)
{
    r->reason = NULL;
    r->value = 0;
    r->nm = 0;
    r->rewritten = false;
    if (!text)
        text = "";
    switch (s) {
    case HEUR_GOPHER_QUALITY:
        gopher_quality(x, p, text, n, all, r);
        break;
    case HEUR_GOPHER_REPETITION:
        gopher_repetition(x, p, text, n, all, r);
        break;
    case HEUR_C4:
        c4(x, p, text, n, all, r, out);
        break;
    case HEUR_FINEWEB:
        fineweb(x, p, text, n, all, r);
        break;
    }
}

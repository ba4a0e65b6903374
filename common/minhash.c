// SPDX-License-Identifier: MIT
// minhash: shingling, MinHash signatures, LSH buckets, Jaccard verification and union-find.
// See minhash.h for the definitions. The signature loop is written with GCC vector extensions
// over 8 permutations at a time; the 61-bit modular product is assembled from 32×32→64-bit
// products so it vectorizes (AVX-512 vpmuludq) and matches the 128-bit reference exactly.
#include "minhash.h"
#include "hash.h"
#include "unicode.h"

#include <math.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

int
minhash_preset(const char *name, struct minhash_params *p)
{
    static const struct {
        const char *name;
        enum minhash_kind kind;
        int ngram, bands, rows;
    } presets[] = {
        {"datatrove", MINHASH_WORDS, 5, 14, 8},
        {"nemo", MINHASH_CHARS, 24, 20, 13},
        {"lee", MINHASH_WORDS, 5, 450, 20},
    };
    for (size_t i = 0; i < KILN_ARRAY_LEN(presets); i++) {
        if (strcmp(name, presets[i].name) == 0) {
            p->kind = presets[i].kind;
            p->ngram = presets[i].ngram;
            p->bands = presets[i].bands;
            p->rows = presets[i].rows;
            p->threshold = 0.8;
            return 0;
        }
    }
    return -1;
}

double
minhash_candidate_prob(int bands, int rows, double j)
{
    return 1.0 - pow(1.0 - pow(j, rows), bands);
}

// ∫_0^t P(j) dj by the midpoint rule (200 steps is far finer than the choice needs).
static double
fp_area(int bands, int rows, double t)
{
    const int steps = 200;
    double s = 0;
    for (int i = 0; i < steps; i++)
        s += minhash_candidate_prob(bands, rows, t * (i + 0.5) / steps);
    return s * t / steps;
}

void
minhash_choose(double t, int max_perm, int *bands, int *rows)
{
    double jhi = t + 0.05 < (1 + t) / 2 ? t + 0.05 : (1 + t) / 2;
    int bb = 1, br = 1;
    double best_cost = INFINITY, best_p = -1;
    bool found = false;
    for (int r = 1; r <= max_perm; r++) {
        for (int b = 1; b * r <= max_perm; b++) {
            double pr = minhash_candidate_prob(b, r, jhi);
            if (pr >= 0.99) {
                double c = fp_area(b, r, t);
                if (!found || c < best_cost - 1e-12) {
                    found = true;
                    best_cost = c;
                    bb = b, br = r;
                }
            } else if (!found && pr > best_p) {
                best_p = pr;
                bb = b, br = r;
            }
        }
    }
    *bands = bb;
    *rows = br;
}

// ---- shingle ------------------------------------------------------------------------------

void
minhash_set_init(struct minhash_set *s)
{
    memset(s, 0, sizeof *s);
}

void
minhash_set_free(struct minhash_set *s)
{
    free(s->v);
    free(s->tmp);
    memset(s, 0, sizeof *s);
}

static void
set_reserve(struct minhash_set *s, size_t n)
{
    if (n > s->cap) {
        size_t c = s->cap ? s->cap : 256;
        while (c < n)
            c *= 2;
        free(s->v);
        s->v = xmalloc(c * sizeof *s->v);
        s->cap = c;
    }
    if (n > s->tmp_cap) {
        size_t c = s->tmp_cap ? s->tmp_cap : 256;
        while (c < n)
            c *= 2;
        free(s->tmp);
        s->tmp = xmalloc(c * sizeof *s->tmp);
        s->tmp_cap = c;
    }
}

static void
insertion_sort(uint64_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

size_t
minhash_sort_unique(uint64_t *v, size_t n, uint64_t *tmp)
{
    if (n < 64) {
        insertion_sort(v, n);
    } else {
        // LSD radix sort, 8 passes of 8 bits, ping-ponging between v and tmp (an even number
        // of passes, so the result ends in v; a pass where every key has the same digit is
        // skipped, and then the buffers swap roles one time fewer — handled by copying).
        uint64_t *src = v, *dst = tmp;
        for (int shift = 0; shift < 64; shift += 8) {
            size_t count[256] = {0};
            for (size_t i = 0; i < n; i++)
                count[(src[i] >> shift) & 0xff]++;
            if (count[(src[0] >> shift) & 0xff] == n)
                continue;
            size_t pos = 0;
            for (int d = 0; d < 256; d++) {
                size_t c = count[d];
                count[d] = pos;
                pos += c;
            }
            for (size_t i = 0; i < n; i++)
                dst[count[(src[i] >> shift) & 0xff]++] = src[i];
            uint64_t *t = src;
            src = dst;
            dst = t;
        }
        if (src != v)
            memcpy(v, src, n * sizeof *v);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || v[i] != v[k - 1])
            v[k++] = v[i];
    return k;
}

// Word characters: letters, digits, marks. ASCII by table; other code points by class.
static bool
is_word_cp(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
    return (uni_class_of(cp) & (UNI_LETTER | UNI_DIGIT | UNI_MARK)) != 0;
}

static size_t
next_cp(const char *s, size_t n, size_t i, int32_t *cp)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    return (size_t)uni_decode(s + i, n - i, cp);
}

static void
shingle_words(int ngram, const char *text, size_t n, struct minhash_set *s)
{
    // Upper bound of words: one per two bytes (a word and a separator), plus one.
    size_t maxw = n / 2 + 1;
    set_reserve(s, maxw);
    uint64_t *wh = s->tmp;
    size_t nw = 0, i = 0;
    while (i < n) {
        int32_t cp;
        size_t k = next_cp(text, n, i, &cp);
        if (!is_word_cp(cp)) {
            i += k;
            continue;
        }
        size_t start = i;
        i += k;
        while (i < n) {
            k = next_cp(text, n, i, &cp);
            if (!is_word_cp(cp))
                break;
            i += k;
        }
        wh[nw++] = hash64(text + start, i - start);
    }
    size_t ns = 0;
    if (nw > 0 && nw < (size_t)ngram) {
        s->v[ns++] = hash64_seed(wh, nw * sizeof *wh, MINHASH_SHINGLE_SEED);
    } else if (nw > 0) {
        for (size_t w = 0; w + (size_t)ngram <= nw; w++)
            s->v[ns++] = hash64_seed(wh + w, (size_t)ngram * sizeof *wh, MINHASH_SHINGLE_SEED);
    }
    s->n = minhash_sort_unique(s->v, ns, s->tmp);
}

static void
shingle_chars(int ngram, const char *text, size_t n, struct minhash_set *s)
{
    set_reserve(s, n + 1);
    uint64_t *off = s->tmp; // byte offset of each code point, then n
    size_t ncp = 0, i = 0;
    while (i < n) {
        int32_t cp;
        off[ncp++] = i;
        i += next_cp(text, n, i, &cp);
    }
    off[ncp] = n;
    size_t ns = 0;
    if (ncp > 0 && ncp < (size_t)ngram) {
        s->v[ns++] = hash64_seed(text, n, MINHASH_SHINGLE_SEED);
    } else if (ncp > 0) {
        for (size_t c = 0; c + (size_t)ngram <= ncp; c++)
            s->v[ns++] = hash64_seed(text + off[c], off[c + (size_t)ngram] - off[c],
                                     MINHASH_SHINGLE_SEED);
    }
    s->n = minhash_sort_unique(s->v, ns, s->tmp);
}

void
minhash_shingle(enum minhash_kind kind, int ngram, const char *text, size_t n,
                struct minhash_set *s)
{
    if (kind == MINHASH_CHARS)
        shingle_chars(ngram, text, n, s);
    else
        shingle_words(ngram, text, n, s);
}

// ---- sign and band -------------------------------------------------------------------------

void
minhash_init(struct minhash *m, const struct minhash_params *p)
{
    memset(m, 0, sizeof *m);
    m->p = *p;
    m->nperm = p->bands * p->rows;
    m->npad = (m->nperm + 7) & ~7;
    size_t sz = (size_t)m->npad * sizeof(uint64_t);
    m->a = xmalloc(sz);
    m->b = xmalloc(sz);
    m->alo = xmalloc(sz);
    m->ahi = xmalloc(sz);
    m->sig = xmalloc(sz);
    // Coefficients from a splitmix64 stream of the seed; rejection keeps them uniform.
    uint64_t state = p->seed ^ UINT64_C(0x6d696e6861736821); // "minhash!"
    for (int k = 0; k < m->npad; k++) {
        uint64_t a, b;
        do
            a = hash_mix64(state += UINT64_C(0x9e3779b97f4a7c15)) >> 3;
        while (a == 0 || a >= MINHASH_PRIME);
        do
            b = hash_mix64(state += UINT64_C(0x9e3779b97f4a7c15)) >> 3;
        while (b >= MINHASH_PRIME);
        m->a[k] = a;
        m->b[k] = b;
        m->alo[k] = a & 0xffffffffu;
        m->ahi[k] = a >> 32;
    }
}

void
minhash_free(struct minhash *m)
{
    free(m->a);
    free(m->b);
    free(m->alo);
    free(m->ahi);
    free(m->sig);
    memset(m, 0, sizeof *m);
}

static inline uint64_t
mod_prime(uint64_t h)
{
    h = (h & MINHASH_PRIME) + (h >> 61);
    return h >= MINHASH_PRIME ? h - MINHASH_PRIME : h;
}

typedef uint64_t u64x8 __attribute__((vector_size(64)));
// The same for loads and stores through pointers that are only 8-byte aligned (xmalloc).
typedef uint64_t u64x8_mem __attribute__((vector_size(64), aligned(8)));

#ifdef __AVX512F__
// (a·h + b) mod P for 8 permutations; a and h given as 32-bit halves. See minhash_sign.
static inline __m512i
mulmod8(__m512i al, __m512i ah, __m512i b, __m512i hlo, __m512i hhi, __m512i vp, __m512i vm29)
{
    __m512i lo = _mm512_mul_epu32(al, hlo);
    __m512i mid = _mm512_add_epi64(_mm512_mul_epu32(ah, hlo), _mm512_mul_epu32(al, hhi));
    __m512i hi = _mm512_mul_epu32(ah, hhi);
    __m512i s = _mm512_add_epi64(_mm512_slli_epi64(hi, 3), _mm512_srli_epi64(mid, 29));
    s = _mm512_add_epi64(s, _mm512_slli_epi64(_mm512_and_si512(mid, vm29), 32));
    s = _mm512_add_epi64(s, _mm512_srli_epi64(lo, 61));
    s = _mm512_add_epi64(s, _mm512_and_si512(lo, vp));
    s = _mm512_add_epi64(s, b);
    s = _mm512_add_epi64(_mm512_and_si512(s, vp), _mm512_srli_epi64(s, 61));
    return _mm512_min_epu64(s, _mm512_sub_epi64(s, vp)); // s − P wraps around when s < P
}
#endif

void
minhash_sign(const struct minhash *m, const uint64_t *sh, size_t n, uint64_t *sig)
{
    const uint64_t M29 = (UINT64_C(1) << 29) - 1, M32 = 0xffffffffu;
    int nv = m->npad / 8;
    // a·h with a, h < 2^61 split as x = x_hi·2^32 + x_lo, using 2^61 ≡ 1 and 2^64 ≡ 8 mod P:
    //   lo = a_lo·h_lo < 2^64, mid = a_hi·h_lo + a_lo·h_hi < 2^62, hi = a_hi·h_hi < 2^58,
    //   s = 8·hi + (mid >> 29) + (mid mod 2^29)·2^32 + (lo >> 61) + (lo mod 2^61) + b < 2^63,
    //   then one fold (s mod 2^61 + s >> 61) and one conditional subtraction of P.
#ifdef __AVX512F__
    // vpmuludq for the 32×32→64-bit products (generic vector code compiles to vpmullq). Blocks
    // of 4 vectors (32 permutations) keep coefficients and minima in registers while all
    // shingles stream past.
    (void)M32;
    const __m512i vp = _mm512_set1_epi64((long long)MINHASH_PRIME);
    const __m512i vm29 = _mm512_set1_epi64((long long)M29);
#define SIGN_LOAD(j)                                                                           \
    __m512i al##j = _mm512_loadu_si512(m->alo + 8 * (k + j));                                  \
    __m512i ah##j = _mm512_loadu_si512(m->ahi + 8 * (k + j));                                  \
    __m512i b##j = _mm512_loadu_si512(m->b + 8 * (k + j));                                     \
    __m512i acc##j = vp;
#define SIGN_STEP(j) acc##j = _mm512_min_epu64(acc##j, mulmod8(al##j, ah##j, b##j, hlo, hhi, vp, vm29));
#define SIGN_STORE(j) _mm512_storeu_si512(m->sig + 8 * (k + j), acc##j);
    int k = 0;
    for (; k + 4 <= nv; k += 4) {
        SIGN_LOAD(0) SIGN_LOAD(1) SIGN_LOAD(2) SIGN_LOAD(3)
        for (size_t i = 0; i < n; i++) {
            uint64_t h = mod_prime(sh[i]);
            __m512i hlo = _mm512_set1_epi64((long long)(h & 0xffffffffu));
            __m512i hhi = _mm512_set1_epi64((long long)(h >> 32));
            SIGN_STEP(0) SIGN_STEP(1) SIGN_STEP(2) SIGN_STEP(3)
        }
        SIGN_STORE(0) SIGN_STORE(1) SIGN_STORE(2) SIGN_STORE(3)
    }
    for (; k < nv; k++) {
        SIGN_LOAD(0)
        for (size_t i = 0; i < n; i++) {
            uint64_t h = mod_prime(sh[i]);
            __m512i hlo = _mm512_set1_epi64((long long)(h & 0xffffffffu));
            __m512i hhi = _mm512_set1_epi64((long long)(h >> 32));
            SIGN_STEP(0)
        }
        SIGN_STORE(0)
    }
#undef SIGN_LOAD
#undef SIGN_STEP
#undef SIGN_STORE
#else
    const u64x8 P = {MINHASH_PRIME, MINHASH_PRIME, MINHASH_PRIME, MINHASH_PRIME,
                     MINHASH_PRIME, MINHASH_PRIME, MINHASH_PRIME, MINHASH_PRIME};
    u64x8_mem *acc = (u64x8_mem *)m->sig;
    const u64x8_mem *alo = (const u64x8_mem *)m->alo, *ahi = (const u64x8_mem *)m->ahi;
    const u64x8_mem *bv = (const u64x8_mem *)m->b;
    for (int k = 0; k < m->npad; k++)
        m->sig[k] = MINHASH_PRIME;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = mod_prime(sh[i]);
        u64x8 hlo = (u64x8){0} + (h & M32), hhi = (u64x8){0} + (h >> 32);
        for (int k = 0; k < nv; k++) {
            u64x8 lo = alo[k] * hlo;
            u64x8 mid = ahi[k] * hlo + alo[k] * hhi;
            u64x8 hi = ahi[k] * hhi;
            u64x8 s = (hi << 3) + (mid >> 29) + ((mid & M29) << 32) + (lo >> 61) + (lo & P) + bv[k];
            s = (s & P) + (s >> 61);
            s -= (u64x8)(s >= P) & P;
            u64x8 lt = (u64x8)(s < acc[k]);
            acc[k] = (acc[k] & ~lt) | (s & lt);
        }
    }
#endif
    memcpy(sig, m->sig, (size_t)m->nperm * sizeof *sig);
}

void
minhash_sign_ref(const struct minhash *m, const uint64_t *sh, size_t n, uint64_t *sig)
{
    for (int k = 0; k < m->nperm; k++) {
        uint64_t best = MINHASH_PRIME;
        for (size_t i = 0; i < n; i++) {
            unsigned __int128 x = (unsigned __int128)m->a[k] * mod_prime(sh[i]) + m->b[k];
            uint64_t v = (uint64_t)(x % MINHASH_PRIME);
            if (v < best)
                best = v;
        }
        sig[k] = best;
    }
}

void
minhash_bands(const struct minhash *m, const uint64_t *sig, uint64_t *band)
{
    size_t r = (size_t)m->p.rows;
    for (int j = 0; j < m->p.bands; j++)
        band[j] = hash64_seed(sig + (size_t)j * r, r * sizeof *sig, (uint64_t)j);
}

// ---- bucket --------------------------------------------------------------------------------

void
minhash_lsh_init(struct minhash_lsh *t)
{
    memset(t, 0, sizeof *t);
}

void
minhash_lsh_free(struct minhash_lsh *t)
{
    free(t->slot);
    memset(t, 0, sizeof *t);
}

static inline uint64_t
lsh_key(int band, uint64_t hash)
{
    return hash_mix64(hash ^ hash_mix64((uint64_t)band + 1));
}

uint32_t
minhash_lsh_tag(int band, uint64_t hash)
{
    return (uint32_t)(lsh_key(band, hash) >> 32);
}

void
minhash_lsh_add(struct minhash_lsh *t, int band, uint64_t hash, uint32_t rec)
{
    if ((t->n + 1) * 2 > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 1024;
        uint64_t *ns = xcalloc(nc, sizeof *ns);
        // An entry's home slot depends only on its tag, so the tag alone re-places it.
        for (size_t i = 0; i < t->cap; i++) {
            uint64_t e = t->slot[i];
            if (!e)
                continue;
            size_t j = (size_t)(hash_mix64(e >> 32)) & (nc - 1);
            while (ns[j])
                j = (j + 1) & (nc - 1);
            ns[j] = e;
        }
        free(t->slot);
        t->slot = ns;
        t->cap = nc;
    }
    uint32_t tag = minhash_lsh_tag(band, hash);
    size_t i = (size_t)hash_mix64(tag) & (t->cap - 1);
    while (t->slot[i])
        i = (i + 1) & (t->cap - 1);
    t->slot[i] = (uint64_t)tag << 32 | ((uint64_t)rec + 1);
    t->n++;
}

size_t
minhash_lsh_get(const struct minhash_lsh *t, int band, uint64_t hash, uint32_t **out, size_t *n,
                size_t *cap)
{
    if (!t->cap)
        return 0;
    uint32_t tag = minhash_lsh_tag(band, hash);
    size_t i = (size_t)hash_mix64(tag) & (t->cap - 1), got = 0;
    while (t->slot[i]) {
        if ((uint32_t)(t->slot[i] >> 32) == tag) {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *out = xrealloc(*out, *cap * sizeof **out);
            }
            (*out)[(*n)++] = (uint32_t)(t->slot[i] & 0xffffffffu) - 1;
            got++;
        }
        i = (i + 1) & (t->cap - 1);
    }
    return got;
}

size_t
minhash_lsh_bytes(const struct minhash_lsh *t)
{
    return t->cap * sizeof *t->slot;
}

// ---- verify --------------------------------------------------------------------------------

double
minhash_jaccard(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    if (na + nb == 0)
        return 0;
    size_t i = 0, j = 0, common = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) {
            i++;
        } else if (a[i] > b[j]) {
            j++;
        } else {
            common++;
            i++;
            j++;
        }
    }
    return (double)common / (double)(na + nb - common);
}

// ---- cluster -------------------------------------------------------------------------------

void
minhash_uf_init(struct minhash_uf *u)
{
    memset(u, 0, sizeof *u);
}

void
minhash_uf_free(struct minhash_uf *u)
{
    free(u->parent);
    free(u->size);
    memset(u, 0, sizeof *u);
}

void
minhash_uf_grow(struct minhash_uf *u, size_t n)
{
    if (n <= u->n)
        return;
    if (n > u->cap) {
        size_t c = u->cap ? u->cap : 1024;
        while (c < n)
            c *= 2;
        u->parent = xrealloc(u->parent, c * sizeof *u->parent);
        u->size = xrealloc(u->size, c * sizeof *u->size);
        u->cap = c;
    }
    for (size_t i = u->n; i < n; i++) {
        u->parent[i] = (uint32_t)i;
        u->size[i] = 1;
    }
    u->n = n;
}

uint32_t
minhash_uf_find(struct minhash_uf *u, uint32_t x)
{
    uint32_t r = x;
    while (u->parent[r] != r)
        r = u->parent[r];
    while (u->parent[x] != r) { // path compression
        uint32_t next = u->parent[x];
        u->parent[x] = r;
        x = next;
    }
    return r;
}

uint32_t
minhash_uf_union(struct minhash_uf *u, uint32_t x, uint32_t y)
{
    uint32_t a = minhash_uf_find(u, x), b = minhash_uf_find(u, y);
    if (a == b)
        return a;
    if (b < a) {
        uint32_t t = a;
        a = b;
        b = t;
    }
    u->parent[b] = a; // the smaller record number stays the root
    u->size[a] += u->size[b];
    return a;
}

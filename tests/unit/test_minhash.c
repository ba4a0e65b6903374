// SPDX-License-Identifier: MIT
// Unit tests for common/minhash: shingling, sorting, signatures against the 128-bit reference,
// signature agreement ≈ Jaccard, band choice, LSH buckets, Jaccard and union-find.
#include "hash.h"
#include "minhash.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static void
test_sort_unique(void)
{
    uint64_t v[3000], tmp[3000];
    uint64_t x = 1;
    for (int i = 0; i < 3000; i++) {
        x = hash_mix64(x + (uint64_t)(i % 1000)); // repeats: every value appears 3 times
        v[i] = hash_mix64((uint64_t)(i % 1000));
    }
    size_t n = minhash_sort_unique(v, 3000, tmp);
    CHECK_EQ_INT(n, 1000);
    int sorted = 1;
    for (size_t i = 1; i < n; i++)
        sorted &= v[i - 1] < v[i];
    CHECK(sorted);
    uint64_t small[] = {5, 3, 5, 1, 3};
    CHECK_EQ_INT(minhash_sort_unique(small, 5, tmp), 3);
    CHECK(small[0] == 1 && small[1] == 3 && small[2] == 5);
    CHECK_EQ_INT(minhash_sort_unique(small, 0, tmp), 0);
}

static void
test_shingles(void)
{
    struct minhash_set s;
    minhash_set_init(&s);
    // 7 words → 3 word 5-grams; punctuation separates and disappears.
    minhash_shingle(MINHASH_WORDS, 5, "a b c d e f g", 13, &s);
    CHECK_EQ_INT(s.n, 3);
    uint64_t first[3];
    memcpy(first, s.v, sizeof first);
    minhash_shingle(MINHASH_WORDS, 5, "a, b; c -- d e! f (g)", 21, &s);
    CHECK_EQ_INT(s.n, 3);
    CHECK(memcmp(first, s.v, sizeof first) == 0);
    // Repeated shingles count once.
    minhash_shingle(MINHASH_WORDS, 1, "x y x y x", 9, &s);
    CHECK_EQ_INT(s.n, 2);
    // Fewer words than n: one shingle; no words: none.
    minhash_shingle(MINHASH_WORDS, 5, "only three words", 16, &s);
    CHECK_EQ_INT(s.n, 1);
    minhash_shingle(MINHASH_WORDS, 5, " ... !!", 7, &s);
    CHECK_EQ_INT(s.n, 0);
    // Non-ASCII letters are word characters; "é" is one code point for char n-grams.
    minhash_shingle(MINHASH_WORDS, 1, "caf\xc3\xa9 na\xc3\xafve", 12, &s);
    CHECK_EQ_INT(s.n, 2);
    minhash_shingle(MINHASH_CHARS, 3, "caf\xc3\xa9", 5, &s); // c a f é → caf, afé
    CHECK_EQ_INT(s.n, 2);
    minhash_shingle(MINHASH_CHARS, 24, "short", 5, &s);
    CHECK_EQ_INT(s.n, 1);
    minhash_shingle(MINHASH_CHARS, 3, "", 0, &s);
    CHECK_EQ_INT(s.n, 0);
    minhash_set_free(&s);
}

static void
test_sign_matches_reference(void)
{
    struct minhash_params p = {MINHASH_WORDS, 5, 14, 8, 0.8, 42};
    struct minhash m;
    minhash_init(&m, &p);
    uint64_t sh[500], a[112], b[112];
    for (int i = 0; i < 500; i++)
        sh[i] = hash_mix64((uint64_t)i * 7919); // full 64-bit values, many ≥ 2^61 − 1
    sh[0] = UINT64_MAX;
    sh[1] = MINHASH_PRIME;
    sh[2] = 0;
    minhash_sign(&m, sh, 500, a);
    minhash_sign_ref(&m, sh, 500, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    for (int k = 0; k < 112; k++)
        CHECK(a[k] < MINHASH_PRIME);
    minhash_sign(&m, sh, 0, a);
    CHECK(a[0] == MINHASH_PRIME && a[111] == MINHASH_PRIME);
    // Same seed → same signature; another seed → different.
    struct minhash m2;
    p.seed = 43;
    minhash_init(&m2, &p);
    minhash_sign(&m2, sh, 500, b);
    minhash_sign(&m, sh, 500, a);
    CHECK(memcmp(a, b, sizeof a) != 0);
    // Odd sizes (nperm not a multiple of 8) agree with the reference too.
    struct minhash m3;
    struct minhash_params p3 = {MINHASH_CHARS, 24, 3, 5, 0.8, 7};
    minhash_init(&m3, &p3);
    minhash_sign(&m3, sh + 3, 97, a);
    minhash_sign_ref(&m3, sh + 3, 97, b);
    CHECK(memcmp(a, b, 15 * sizeof *a) == 0);
    minhash_free(&m);
    minhash_free(&m2);
    minhash_free(&m3);
}

// The fraction of equal signature entries estimates the Jaccard similarity.
static void
test_sign_estimates_jaccard(void)
{
    struct minhash_params p = {MINHASH_WORDS, 5, 32, 16, 0.8, 1};
    struct minhash m;
    minhash_init(&m, &p);
    enum { N = 2000 };
    static uint64_t x[N], y[N], tx[N];
    // x = 0..1599, y = 400..1999 → |∩| = 1200, |∪| = 2000, J = 0.6
    for (int i = 0; i < 1600; i++) {
        x[i] = hash64(&i, sizeof i);
        int k = i + 400;
        y[i] = hash64(&k, sizeof k);
    }
    size_t nx = minhash_sort_unique(x, 1600, tx), ny = minhash_sort_unique(y, 1600, tx);
    CHECK_NEAR(minhash_jaccard(x, nx, y, ny), 0.6, 1e-12);
    uint64_t sx[512], sy[512];
    minhash_sign(&m, x, nx, sx);
    minhash_sign(&m, y, ny, sy);
    int eq = 0;
    for (int k = 0; k < 512; k++)
        eq += sx[k] == sy[k];
    CHECK_NEAR(eq / 512.0, 0.6, 0.1); // 4.5 standard deviations
    minhash_free(&m);
}

static void
test_presets_and_choice(void)
{
    struct minhash_params p;
    CHECK_EQ_INT(minhash_preset("datatrove", &p), 0);
    CHECK(p.bands == 14 && p.rows == 8 && p.kind == MINHASH_WORDS && p.ngram == 5);
    CHECK_EQ_INT(minhash_preset("nemo", &p), 0);
    CHECK(p.bands == 20 && p.rows == 13 && p.kind == MINHASH_CHARS && p.ngram == 24);
    CHECK_EQ_INT(minhash_preset("lee", &p), 0);
    CHECK(p.bands == 450 && p.rows == 20);
    CHECK_EQ_INT(minhash_preset("nope", &p), -1);
    CHECK_NEAR(minhash_candidate_prob(14, 8, 0.8), 0.924, 0.002);
    for (double t = 0.5; t < 0.951; t += 0.05) {
        int b, r;
        minhash_choose(t, 128, &b, &r);
        CHECK(b * r <= 128 && b >= 1 && r >= 1);
        double jhi = t + 0.05 < (1 + t) / 2 ? t + 0.05 : (1 + t) / 2;
        CHECK_MSG(minhash_candidate_prob(b, r, jhi) >= 0.99, "t %.2f: %dx%d", t, b, r);
        // The S-curve's midpoint sits at or below t, so pairs near t are likely candidates.
        CHECK_MSG(minhash_candidate_prob(b, r, t) >= 0.75, "t %.2f: %dx%d", t, b, r);
    }
    int b, r;
    minhash_choose(0.8, 128, &b, &r);
    CHECK(b == 15 && r == 8);
}

static void
test_lsh(void)
{
    struct minhash_lsh t;
    minhash_lsh_init(&t);
    for (uint32_t i = 0; i < 5000; i++)
        minhash_lsh_add(&t, (int)(i % 7), hash_mix64(i / 2), i); // pairs share a hash
    uint32_t *out = NULL;
    size_t n = 0, cap = 0;
    // Record 10 and 11 share hash_mix64(5) but lie in bands 3 and 4: separate buckets.
    CHECK_EQ_INT(minhash_lsh_get(&t, 3, hash_mix64(5), &out, &n, &cap), 1);
    CHECK_EQ_INT(out[0], 10);
    minhash_lsh_add(&t, 3, hash_mix64(5), 9999);
    n = 0;
    CHECK_EQ_INT(minhash_lsh_get(&t, 3, hash_mix64(5), &out, &n, &cap), 2);
    CHECK((out[0] == 10 && out[1] == 9999) || (out[0] == 9999 && out[1] == 10));
    n = 0;
    CHECK_EQ_INT(minhash_lsh_get(&t, 3, 12345, &out, &n, &cap), 0);
    CHECK(minhash_lsh_bytes(&t) >= 5001 * 2 * sizeof(uint64_t));
    free(out);
    minhash_lsh_free(&t);
}

static void
test_jaccard_and_uf(void)
{
    uint64_t a[] = {1, 2, 3, 4}, b[] = {3, 4, 5};
    CHECK_NEAR(minhash_jaccard(a, 4, b, 3), 2.0 / 5.0, 1e-12);
    CHECK_NEAR(minhash_jaccard(a, 4, a, 4), 1.0, 1e-12);
    CHECK_NEAR(minhash_jaccard(a, 0, b, 0), 0.0, 1e-12);
    CHECK_NEAR(minhash_jaccard(a, 4, b, 0), 0.0, 1e-12);

    struct minhash_uf u;
    minhash_uf_init(&u);
    minhash_uf_grow(&u, 10);
    CHECK_EQ_INT(minhash_uf_union(&u, 7, 3), 3);
    CHECK_EQ_INT(minhash_uf_union(&u, 9, 8), 8);
    CHECK_EQ_INT(minhash_uf_union(&u, 9, 7), 3);
    CHECK_EQ_INT(minhash_uf_find(&u, 8), 3);
    CHECK_EQ_INT(u.size[3], 4);
    CHECK_EQ_INT(minhash_uf_find(&u, 5), 5);
    minhash_uf_grow(&u, 3000);
    CHECK_EQ_INT(minhash_uf_union(&u, 2999, 0), 0);
    CHECK_EQ_INT(minhash_uf_find(&u, 9), 3);
    minhash_uf_free(&u);
}

int
main(void)
{
    test_sort_unique();
    test_shingles();
    test_sign_matches_reference();
    test_sign_estimates_jaccard();
    test_presets_and_choice();
    test_lsh();
    test_jaccard_and_uf();
    return test_summary();
}

// SPDX-License-Identifier: MIT
// minhash: near-duplicate detection by MinHash-LSH, split into the phases a sharded run needs:
//
//   shingle   text → sorted set of distinct 64-bit shingle hashes (word or character n-grams)
//   sign      shingle set → signature of bands×rows minima of (a·h + b) mod (2^61 − 1)
//   band      signature → one 64-bit hash per band (the LSH bucket keys)
//   bucket    struct minhash_lsh: band hash → records that share it (candidate generation)
//   verify    minhash_jaccard: the real Jaccard similarity of two shingle sets
//   cluster   struct minhash_uf: union-find whose root is always the smallest record number,
//             so "survivor = first record of its cluster in input order" is the root
//
// Text normalization (case, whitespace, NFKC) is the caller's; shingling only decides what a
// word is: a maximal run of letters, digits and marks (so punctuation and symbols separate
// words and are dropped). Character n-grams count code points of the text as given.
// Shingle hashes: word w → xxh3(w bytes); word shingle = xxh3 of the n word hashes (n × 8
// bytes, little-endian), seeded with MINHASH_SHINGLE_SEED; char shingle = xxh3 of the n code
// points' UTF-8 bytes with the same seed. A text with fewer than n units (but at least one)
// has a single shingle made of all of them; an empty text has no shingles.
// Everything here is deterministic for given parameters and seed; the hash definitions are
// part of the dedupe index format (see dedup_index.h), so changing them needs a new version.
#ifndef KILN_MINHASH_H
#define KILN_MINHASH_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MINHASH_PRIME ((UINT64_C(1) << 61) - 1) // Mersenne prime 2^61 − 1
#define MINHASH_SHINGLE_SEED UINT64_C(0x6b696c6e2d736867) // "kiln-shg"
#define MINHASH_MAX_PERM 16384

enum minhash_kind {
    MINHASH_WORDS = 0, // word n-grams
    MINHASH_CHARS = 1, // character (code point) n-grams
};

struct minhash_params {
    enum minhash_kind kind;
    int ngram;        // units per shingle (≥ 1)
    int bands, rows;  // signature length = bands × rows
    double threshold; // Jaccard similarity at or above which a verified pair is a duplicate
    uint64_t seed;    // derives the permutation coefficients
};

// Presets: "datatrove" (word 5-grams, 14×8, J 0.8), "nemo" (character 24-grams, 20×13, J 0.8),
// "lee" (word 5-grams, 450×20, J 0.8). Fills *p (seed untouched). Returns 0, -1 if unknown.
int minhash_preset(const char *name, struct minhash_params *p);

// Probability that a pair with Jaccard j shares at least one band: 1 − (1 − j^r)^b.
double minhash_candidate_prob(int bands, int rows, double j);

// Chooses bands × rows ≤ max_perm for a verification threshold t: among the layouts that find
// a pair at J = min(t + 0.05, (1 + t) / 2) with probability ≥ 0.99, the one with the fewest
// expected candidates below t (smallest ∫_0^t P(j) dj); if none qualifies, the one with the
// highest probability there. Deterministic.
void minhash_choose(double t, int max_perm, int *bands, int *rows);

// ---- shingle ------------------------------------------------------------------------------

// A set of shingle hashes, sorted ascending, distinct. Embed; zero or minhash_set_init().
struct minhash_set {
    uint64_t *v;
    size_t n, cap;
    uint64_t *tmp; // scratch for sorting and word hashes
    size_t tmp_cap;
};
void minhash_set_init(struct minhash_set *s);
void minhash_set_free(struct minhash_set *s);

// Replaces s with the shingles of text[0..n) (valid UTF-8) for kind/ngram.
void minhash_shingle(enum minhash_kind kind, int ngram, const char *text, size_t n,
                     struct minhash_set *s);

// Sorts v[0..n) ascending and removes duplicates in place; returns the new length. tmp must
// hold n elements.
size_t minhash_sort_unique(uint64_t *v, size_t n, uint64_t *tmp);

// ---- sign and band -------------------------------------------------------------------------

// Permutation coefficients and scratch for one parameter set. init/free.
struct minhash {
    struct minhash_params p;
    int nperm;               // bands × rows
    int npad;                // nperm rounded up to a multiple of 8
    uint64_t *a, *b;         // (npad) coefficients, a in [1, p), b in [0, p)
    uint64_t *alo, *ahi, *sig; // (npad) a split into 32-bit halves; signature scratch
};
void minhash_init(struct minhash *m, const struct minhash_params *p);
void minhash_free(struct minhash *m);

// sig (nperm) = per permutation k, min over shingles h of (a_k · (h mod P) + b_k) mod P.
// An empty set gives every entry = P (no shingle can produce it). Uses m's scratch buffer:
// one struct minhash per thread.
void minhash_sign(const struct minhash *m, const uint64_t *sh, size_t n, uint64_t *sig);
// The same computed one multiplication at a time with 128-bit arithmetic (the reference
// that tests compare minhash_sign against).
void minhash_sign_ref(const struct minhash *m, const uint64_t *sh, size_t n, uint64_t *sig);
// band (bands) = xxh3 of the band's rows (rows × 8 bytes), seeded with the band number.
void minhash_bands(const struct minhash *m, const uint64_t *sig, uint64_t *band);

// ---- bucket --------------------------------------------------------------------------------

// LSH buckets: a multimap from (band number, band hash) to 32-bit record numbers, open
// addressing. Each entry keeps 32 bits of a mix of band number and hash as a tag, so two
// different band hashes may rarely collide; that only adds a candidate, which verification
// rejects. Memory: 8 bytes per entry, table at most half full.
struct minhash_lsh {
    uint64_t *slot; // tag << 32 | (record + 1); 0 = empty
    size_t cap, n;  // cap is a power of two
};
void minhash_lsh_init(struct minhash_lsh *t);
void minhash_lsh_free(struct minhash_lsh *t);
void minhash_lsh_add(struct minhash_lsh *t, int band, uint64_t hash, uint32_t rec);
// The 32-bit tag (band, hash) is filed under: two entries share a bucket exactly when their
// tags are equal (sharded dedupe groups its bucket files by it).
uint32_t minhash_lsh_tag(int band, uint64_t hash);
// Appends to *out every record stored under (band, hash), each once per call (records already
// in out are still appended; callers dedupe). Returns how many were appended.
size_t minhash_lsh_get(const struct minhash_lsh *t, int band, uint64_t hash, uint32_t **out,
                       size_t *n, size_t *cap);
size_t minhash_lsh_bytes(const struct minhash_lsh *t);

// ---- verify --------------------------------------------------------------------------------

// |A ∩ B| / |A ∪ B| of two sorted distinct sets; 0 when both are empty.
double minhash_jaccard(const uint64_t *a, size_t na, const uint64_t *b, size_t nb);

// ---- cluster -------------------------------------------------------------------------------

// Union-find over record numbers 0..n-1, growing on demand. The root of a set is its smallest
// member. init/free.
struct minhash_uf {
    uint32_t *parent;
    uint32_t *size; // valid at roots
    size_t n, cap;
};
void minhash_uf_init(struct minhash_uf *u);
void minhash_uf_free(struct minhash_uf *u);
// Adds records up to x (each a singleton).
void minhash_uf_grow(struct minhash_uf *u, size_t n);
uint32_t minhash_uf_find(struct minhash_uf *u, uint32_t x);
// Joins the sets of x and y; returns the root (the smaller of the two roots).
uint32_t minhash_uf_union(struct minhash_uf *u, uint32_t x, uint32_t y);

#endif

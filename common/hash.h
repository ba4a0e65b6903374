// SPDX-License-Identifier: MIT
// hash: the hash functions kiln uses — xxh3-64 (xxHash) for fast keys and signatures, and
// SHA-256 (OpenSSL libcrypto) for content identity of files and artifacts. The only module
// that includes xxhash.h or OpenSSL headers.
#ifndef KILN_HASH_H
#define KILN_HASH_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>

uint64_t hash64(const void *p, size_t n);                  // XXH3_64bits
uint64_t hash64_seed(const void *p, size_t n, uint64_t seed); // XXH3_64bits_withSeed
// 128-bit XXH3, as two 64-bit halves.
void hash128(const void *p, size_t n, uint64_t out[2]);
// A 64-bit mix of one integer (splitmix64 finalizer); a bijection, for seeding and sampling.
uint64_t hash_mix64(uint64_t x);

// SHA-256. Incremental: sha256_init / sha256_update / sha256_final (32 bytes).
struct sha256 {
    void *ctx; // EVP_MD_CTX
};
void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *p, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
void sha256_buf(const void *p, size_t n, uint8_t out[32]);
// Hashes a file. Returns 0, or -1 with err ("path: strerror").
int sha256_file(const char *path, uint8_t out[32], struct kerr *err);
// Lowercase hex of n bytes into out (2n+1 chars).
void hex_encode(const uint8_t *p, size_t n, char *out);

#endif

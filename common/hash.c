// SPDX-License-Identifier: MIT
// hash: xxh3 and SHA-256 wrappers. See hash.h.
#define XXH_INLINE_ALL
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

uint64_t
hash64(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

uint64_t
hash64_seed(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

void
hash128(const void *p, size_t n, uint64_t out[2])
{
    XXH128_hash_t h = XXH3_128bits(p, n);
    out[0] = h.low64;
    out[1] = h.high64;
}

uint64_t
hash_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void
sha256_init(struct sha256 *s)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        xmalloc((size_t)-1); // out of memory is the only way this fails
    }
    s->ctx = c;
}

void
sha256_update(struct sha256 *s, const void *p, size_t n)
{
    EVP_DigestUpdate((EVP_MD_CTX *)s->ctx, p, n);
}

void
sha256_final(struct sha256 *s, uint8_t out[32])
{
    unsigned int len = 32;
    EVP_DigestFinal_ex((EVP_MD_CTX *)s->ctx, out, &len);
    EVP_MD_CTX_free((EVP_MD_CTX *)s->ctx);
    s->ctx = NULL;
}

void
sha256_buf(const void *p, size_t n, uint8_t out[32])
{
    struct sha256 s;
    sha256_init(&s);
    sha256_update(&s, p, n);
    sha256_final(&s, out);
}

int
sha256_file(const char *path, uint8_t out[32], struct kerr *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kerr_set(err, "%s: %s", path, strerror(errno));
    struct sha256 s;
    sha256_init(&s);
    enum { BUFSZ = 1 << 20 };
    char *b = xmalloc(BUFSZ);
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, b, BUFSZ);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = kerr_set(err, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        sha256_update(&s, b, (size_t)n);
    }
    sha256_final(&s, out);
    free(b);
    close(fd);
    return rc;
}

void
hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[p[i] >> 4];
        out[2 * i + 1] = hexd[p[i] & 15];
    }
    out[2 * n] = 0;
}

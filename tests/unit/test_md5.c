// SPDX-License-Identifier: MIT
// Unit tests for common/md5: the RFC 1321 test suite plus lengths around the padding edges.
#include "hash.h"
#include "md5.h"
#include "test.h"

static void
check(const char *s, size_t n, const char *hex)
{
    uint8_t d[16];
    char out[33];
    md5_buf(s, n, d);
    hex_encode(d, 16, out);
    CHECK_EQ_STR(out, hex);
}

int
main(void)
{
    check("", 0, "d41d8cd98f00b204e9800998ecf8427e");
    check("a", 1, "0cc175b9c0f1b6a831c399e269772661");
    check("abc", 3, "900150983cd24fb0d6963f7d28e17f72");
    check("message digest", 14, "f96b697d7cb7938d525a2f31aaf161d0");
    check("abcdefghijklmnopqrstuvwxyz", 26, "c3fcd3d76192e4007dfb496cca67e13b");
    const char *alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    check(alnum, 62, "d174ab98d277d9f5a5611c2c9f419d9f");
    const char *digits = "1234567890123456789012345678901234567890"
                         "1234567890123456789012345678901234567890";
    check(digits, 80, "57edf4a22be3c955ac49da2e2107b67a");
    // 55, 56 and 64 bytes straddle the one-block / two-block padding boundary.
    check(alnum, 55, "b76972fe0dff4baac395b531646f738e");
    check(alnum, 56, "27eca74a76daae63f472b250b5bcff9d");
    check(digits, 64, "eb6c4179c0a7c82cc2828c1e6338e165");
    return test_summary();
}

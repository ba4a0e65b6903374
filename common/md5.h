// SPDX-License-Identifier: MIT
// md5: RFC 1321 MD5, for verifying checksums that datasets ship (SpamAssassin's file names and
// frictionless datapackage.json "hash" fields are MD5). Not for anything new: kiln's own
// content identity is SHA-256 (hash.h). Self-contained; no library.
#ifndef KILN_MD5_H
#define KILN_MD5_H

#include <stddef.h>
#include <stdint.h>

// out receives the 16-byte digest of p[0..n).
void md5_buf(const void *p, size_t n, uint8_t out[16]);

#endif

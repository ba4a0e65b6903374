// SPDX-License-Identifier: MIT
// unicode: text normalization and character classes over UTF-8 — the only module that
// includes utf8proc.h. Inputs must be valid UTF-8 (callers validate with utf8_valid_prefix
// from json.h or take strings from parsed JSON, which are valid by construction).
#ifndef KILN_UNICODE_H
#define KILN_UNICODE_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Appends the NFKC normalization of s[0..n) to out. Returns 0, or -1 with err on invalid UTF-8.
int uni_nfkc(const char *s, size_t n, struct buf *out, struct kerr *err);
// Appends s with Unicode lowercase mapping (simple case mapping per code point).
int uni_lower(const char *s, size_t n, struct buf *out, struct kerr *err);
// Appends s with every run of Unicode whitespace replaced by one ' ' and the ends trimmed.
void uni_collapse_ws(const char *s, size_t n, struct buf *out);

// Decodes one code point at s[0..n): returns its length in bytes (1..4) and sets *cp; on
// invalid UTF-8 returns 1 and sets *cp = 0xFFFD.
int uni_decode(const char *s, size_t n, int32_t *cp);

// Character classes of one code point.
enum uni_class {
    UNI_LETTER = 1,   // L*
    UNI_UPPER = 2,    // Lu, Lt
    UNI_LOWER = 4,    // Ll
    UNI_DIGIT = 8,    // Nd (and other N*)
    UNI_SPACE = 16,   // White_Space
    UNI_PUNCT = 32,   // P*
    UNI_SYMBOL = 64,  // S*
    UNI_MARK = 128,   // M*
    UNI_CONTROL = 256 // Cc, Cf
};
unsigned uni_class_of(int32_t cp);

#endif

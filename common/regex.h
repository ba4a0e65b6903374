// SPDX-License-Identifier: MIT
// regex: the PCRE2 wrapper — the only module that includes pcre2.h. Patterns are compiled
// with UTF and UCP (Unicode properties for \w \d \s and \p{..}), and JIT-compiled when
// available (regex_set_jit(false) turns JIT off, for benchmarks). Subjects must be valid UTF-8
// (checked once by the caller: matching uses PCRE2_NO_UTF_CHECK for speed).
// A struct regex is immutable after regex_new() and may be shared between threads; each
// thread uses its own struct regex_match scratch.
#ifndef KILN_REGEX_H
#define KILN_REGEX_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>

struct regex;

enum {
    REGEX_CASELESS = 1, // (?i)
    REGEX_MULTILINE = 2, // ^ and $ at line boundaries
    REGEX_DOTALL = 4,
};

// Compiles pattern (NUL-terminated) with the REGEX_* flags. Returns NULL with err
// "column C: <pcre2 message>" (column is 1-based in the pattern).
struct regex *regex_new(const char *pattern, int flags, struct kerr *err);
void regex_del(struct regex *re);
// Whether new regexes are JIT-compiled (default true). Global, set before compiling.
void regex_set_jit(bool on);
bool regex_jit_enabled(const struct regex *re);

// Per-thread match scratch. regex_match_new(re) sizes it for re (and any other regex with at
// most as many groups: it grows on demand).
struct regex_match;
struct regex_match *regex_match_new(void);
void regex_match_del(struct regex_match *m);

// Finds the first match in s[0..n) starting at byte offset start. Returns 1 and sets
// *mstart/*mend (byte offsets, mend >= mstart), 0 when none, -1 on a matching error (match
// limit, bad UTF-8) with err.
int regex_find(const struct regex *re, struct regex_match *m, const char *s, size_t n,
               size_t start, size_t *mstart, size_t *mend, struct kerr *err);
// Byte span of capture group g of the last successful match (-1 when unset): 1 or 0.
int regex_group(const struct regex_match *m, int g, size_t *gs, size_t *ge);

// The PCRE2 library version, for provenance.
const char *regex_version(void);

#endif

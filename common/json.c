// SPDX-License-Identifier: MIT
// json: the parsing half of the json module (see json.h) — a strict RFC 8259 validator that
// indexes the top-level fields of a record, lazy access to nested values (dotted paths,
// iteration), unescaping, numbers, pass-through rewriting and the UTF-8 helpers. The writer
// lives in json_write.c.
//
// Policies (every one of them is an error with a byte offset, never a silent repair):
//   - Grammar is RFC 8259 exactly: no comments, no trailing commas, no single quotes, no
//     NaN/Infinity, no leading '+' or leading zeros ("01"), no "1." or ".5"; literals are
//     lowercase true/false/null. Only space, \t, \n and \r are whitespace.
//   - A record (json_obj_parse) must be one object; whitespace may surround it, nothing else
//     (a UTF-8 byte order mark is rejected with its own message, so is trailing garbage).
//   - Strings: raw bytes must be valid UTF-8 (no overlongs, no encoded surrogates U+D800..DFFF,
//     nothing above U+10FFFF, no truncated sequences); C0 controls (U+0000..U+001F, including
//     NUL) must be escaped; escapes are \" \\ \/ \b \f \n \r \t \uXXXX only; a \u escape of a
//     high surrogate must be followed by a \u escape of a low surrogate, and a low surrogate may
//     not appear alone ("lone surrogate escape"): such a string has no UTF-8 form. \u0000 is
//     valid JSON and unescapes to a NUL byte (json_str returns lengths, so it survives).
//   - Duplicate keys (compared after unescaping, so "a" and "\u0061" collide) are an error in
//     every object at every depth. Objects of up to 16 keys are checked pairwise; larger ones
//     (tokenizer vocabularies) with a hash table of the unescaped keys.
//   - Nesting deeper than JSON_MAX_DEPTH containers is an error (the parser is iterative, so
//     the limit is a policy, not a stack guard).
//   - Numbers are validated for grammar only: 1e400 parses (json_double then reports that it
//     does not fit in a double); -0 parses and json_double returns -0.0.
//   - Error messages name what was expected: "expected ',' or '}'", "expected ':'",
//     "expected string key", "expected value", "invalid UTF-8 in string", "control character
//     U+000A in string", "invalid escape", "lone surrogate escape \ud800", "duplicate key
//     \"id\"", "nesting deeper than 256", "trailing characters after the object", and say
//     "at end of input" when the input stops early. The offset is 0-based into the bytes given.
//
// Speed: no allocation per record (the field index and the key stack of json_obj are reused);
// the parser is one iterative loop with its cursor in a register. Strings are where the bytes
// are: with AVX-512BW a string is decided 64 bytes per step entirely with bit masks — closing
// quote, escaped positions (odd backslash runs, carried across blocks), invalid escapes,
// controls and (with AVX-512 VBMI) UTF-8 validity — so a "\n" every few dozen bytes costs no
// exit from the vector loop, nor does a \uXXXX escape unless it is a surrogate or crosses a
// block boundary (those go through scalar code). Short plain strings (keys, labels) are
// decided inline from the bit masks of a 64-byte window that several consecutive strings
// share: the end of each token is on the parser's critical path (the next token starts after
// it), and a shift and a tzcnt are much shorter than a load and a compare. Duplicate keys are
// first compared by a tag (length and first 8 bytes). Without AVX-512 the scan
// runs 32 (AVX2) or 1 byte at a time and stops at each backslash, and UTF-8 is validated by
// utf8_valid_prefix (vector ASCII skip, scalar decoding of non-ASCII characters), which is
// also the exact reference the vector check defers to for error offsets. Measured with
// `make bench` (tests/bench/bench_json.sh).
//
// Functions that read already validated bytes (json_iter_*, json_val_member, json_str,
// json_unescape) never read outside the value they are given, even on invalid input; on such
// input they produce something deterministic rather than fail (e.g. U+FFFD for a lone
// surrogate in json_unescape).
#include "json.h"

#include "hash.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512BW__) || defined(__AVX2__) || defined(__SSE2__)
#include <immintrin.h>
#endif

// A key seen in an object that is still open: raw bytes between the quotes, and a tag that
// equal unescaped keys share (length and first bytes; see key_tag).
struct key_ref {
    const char *p;
    size_t len;
    uint64_t tag;
    bool esc;
};

// Working memory of the parser, kept in struct json_obj so that parsing many records does not
// allocate: the keys of all open objects (a stack), hashes for large-object duplicate checks,
// and a buffer for unescaping keys.
struct json_scratch {
    struct key_ref *keys;
    size_t nkeys, capkeys;
    uint64_t *hs;   // hashes of the keys of one large object
    uint32_t *slots; // its open-addressing table: key index + 1, 0 = empty
    size_t caphs, capslots;
    struct buf tmp;
};

// A window of the input that short strings are decided from (parse_string, AVX-512 only):
// from base, bit i of quote is set when base[i] is '"', bit i of other when base[i] is a
// backslash, a control or non-ASCII (bits past the end of the input are clear in quote).
struct strwin {
    const char *base;
    uint64_t quote, other;
};

struct parser {
    const char *s, *p, *end;
    struct json_error *e;
    struct json_scratch *sc;
    struct strwin win; // the window parse_string_long ended in (AVX-512 only)
};

static void
scratch_free(struct json_scratch *sc)
{
    free(sc->keys);
    free(sc->hs);
    free(sc->slots);
    buf_free(&sc->tmp);
}

__attribute__((format(printf, 3, 4))) static int
fail(struct parser *ps, const char *at, const char *fmt, ...)
{
    if (!ps->e)
        return -1;
    ps->e->offset = (size_t)(at - ps->s);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(ps->e->msg, sizeof ps->e->msg, fmt, ap);
    va_end(ap);
    if (at == ps->end && k >= 0 && (size_t)k < sizeof ps->e->msg)
        snprintf(ps->e->msg + k, sizeof ps->e->msg - (size_t)k, " at end of input");
    return -1;
}

// fail() for functions that return a position: NULL.
#define FAILP(...) (fail(__VA_ARGS__), (const char *)NULL)

static inline const char *
skip_ws(const char *p, const char *end)
{
    // One compare decides the usual case (no whitespace at all between tokens).
    while (p < end && (unsigned char)*p <= ' ' &&
           (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

// ---- UTF-8 ------------------------------------------------------------------------------

// Length of the valid UTF-8 sequence starting at p (which holds a byte >= 0x80), 0 if invalid.
// Table 3-7 of the Unicode standard: no overlongs, no surrogates, nothing above U+10FFFF.
static inline size_t
utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

// First byte >= 0x80 in [p, end), or end.
static inline const unsigned char *
ascii_skip(const unsigned char *p, const unsigned char *end)
{
#if defined(__AVX512BW__)
    while (end - p >= 64) {
        uint64_t m = _mm512_movepi8_mask(_mm512_loadu_si512((const void *)p));
        if (m)
            return p + __builtin_ctzll(m);
        p += 64;
    }
#elif defined(__AVX2__)
    while (end - p >= 32) {
        unsigned m = (unsigned)_mm256_movemask_epi8(_mm256_loadu_si256((const __m256i *)p));
        if (m)
            return p + __builtin_ctz(m);
        p += 32;
    }
#else
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w & 0x8080808080808080ull)
            break;
        p += 8;
    }
#endif
    while (p < end && *p < 0x80)
        p++;
    return p;
}

size_t
utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    for (;;) {
        p = ascii_skip(p, end);
        // Runs of non-ASCII characters (common in non-Latin text) are decoded back to back.
        while (p < end && *p >= 0x80) {
            size_t k = utf8_seq_len(p, end);
            if (!k)
                return (size_t)(p - (const unsigned char *)s);
            p += k;
        }
        if (p == end)
            return n;
    }
}

size_t
utf8_repair(const char *s, size_t n, struct buf *out)
{
    size_t i = 0, bad = 0;
    buf_reserve(out, n);
    out->p[out->len] = 0; // buf_reserve alone leaves a fresh buffer unterminated
    while (i < n) {
        size_t k = utf8_valid_prefix(s + i, n - i);
        buf_append(out, s + i, k);
        i += k;
        if (i < n) {
            buf_append(out, "\xEF\xBF\xBD", 3);
            bad++;
            i++;
        }
    }
    return bad;
}

static size_t
utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// ---- strings ----------------------------------------------------------------------------

// Four hex digits at p (bounded by end) → value, or -1.
static int
hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

// Decodes the escape at p (p[0] == '\\') into out; returns the position after it. Tolerant of
// invalid input (see the file comment): never reads at or past end.
static const char *
escape_decode(const char *p, const char *end, char out[4], size_t *n)
{
    if (end - p < 2) {
        *n = 0;
        return end;
    }
    char c = p[1];
    switch (c) {
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u': {
        int u = hex4(p + 2, end);
        if (u < 0) {
            *n = 0;
            return p + 2;
        }
        uint32_t cp = (uint32_t)u;
        const char *q = p + 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            int l = end - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2, end) : -1;
            if (l >= 0xDC00 && l <= 0xDFFF) {
                cp = 0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)l - 0xDC00);
                q += 6;
            } else
                cp = 0xFFFD;
        } else if (u >= 0xDC00 && u <= 0xDFFF)
            cp = 0xFFFD;
        *n = utf8_encode(cp, out);
        return q;
    }
    default: out[0] = c; break; // '"', '\\', '/' (and, on invalid input, anything else)
    }
    *n = 1;
    return p + 2;
}

void
json_unescape(const char *raw, size_t n, struct buf *out)
{
    const char *p = raw, *end = raw + n;
    buf_reserve(out, n);
    out->p[out->len] = 0; // buf_reserve alone leaves a fresh buffer unterminated
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (!bs) {
            buf_append(out, p, (size_t)(end - p));
            return;
        }
        buf_append(out, p, (size_t)(bs - p));
        char u[4];
        size_t k;
        p = escape_decode(bs, end, u, &k);
        buf_append(out, u, k);
    }
}

// True when the raw string body raw[0..rn) unescapes to exactly s[0..n). No allocation.
static bool
raw_eq(const char *raw, size_t rn, const char *s, size_t n)
{
    const char *p = raw, *end = raw + rn;
    size_t i = 0;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t run = (size_t)((bs ? bs : end) - p);
        if (run > n - i || memcmp(p, s + i, run) != 0)
            return false;
        i += run;
        if (!bs)
            break;
        char u[4];
        size_t k;
        p = escape_decode(bs, end, u, &k);
        if (k > n - i || memcmp(u, s + i, k) != 0)
            return false;
        i += k;
    }
    return i == n;
}

static bool
key_matches(const char *key, size_t key_len, bool esc, const char *s, size_t n)
{
    if (!esc)
        return key_len == n && memcmp(key, s, n) == 0;
    return raw_eq(key, key_len, s, n);
}

void
json_str(const struct json_val *v, struct buf *out)
{
    if (v->type != JSON_STRING || v->raw_len < 2)
        return;
    if (v->escaped)
        json_unescape(v->raw + 1, v->raw_len - 2, out);
    else
        buf_append(out, v->raw + 1, v->raw_len - 2);
}

bool
json_str_eq(const struct json_val *v, const char *s, size_t n)
{
    if (v->type != JSON_STRING || v->raw_len < 2)
        return false;
    return key_matches(v->raw + 1, v->raw_len - 2, v->escaped, s, n);
}

// Validates the escape at p (p[0] == '\\'); returns the position after it or NULL (error set).
static const char *
escape_check(struct parser *ps, const char *p)
{
    const char *end = ps->end;
    if (end - p < 2)
        return FAILP(ps, end, "unterminated string");
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return p + 2;
    case 'u': {
        int u = hex4(p + 2, end);
        if (u < 0)
            return FAILP(ps, p, "invalid \\u escape (expected 4 hex digits)");
        if (u >= 0xDC00 && u <= 0xDFFF)
            return FAILP(ps, p, "lone surrogate escape \\u%04x", u);
        if (u >= 0xD800 && u <= 0xDBFF) {
            const char *q = p + 6;
            int l = end - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2, end) : -1;
            if (l < 0xDC00 || l > 0xDFFF)
                return FAILP(ps, p, "lone surrogate escape \\u%04x", u);
            return p + 12;
        }
        return p + 6;
    }
    default:
        return FAILP(ps, p, "invalid escape");
    }
}

#if !defined(__AVX512BW__)
// First byte in [p, end) that is '"', '\\' or a C0 control, or end. Sets *high when a byte
// >= 0x80 lies before it.
static inline const char *
scan_plain(const char *p, const char *end, bool *high)
{
#if defined(__AVX2__)
    const __m256i q = _mm256_set1_epi8('"'), bs = _mm256_set1_epi8('\\');
    const __m256i c1f = _mm256_set1_epi8(0x1F);
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)p);
        __m256i ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, c1f), v);
        __m256i sp = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, q),
                                                     _mm256_cmpeq_epi8(v, bs)),
                                     ctl);
        unsigned m = (unsigned)_mm256_movemask_epi8(sp);
        unsigned h = (unsigned)_mm256_movemask_epi8(v);
        if (m) {
            unsigned k = (unsigned)__builtin_ctz(m);
            if (h & ((1u << k) - 1))
                *high = true;
            return p + k;
        }
        if (h)
            *high = true;
        p += 32;
    }
#endif
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20)
            return p;
        if (c >= 0x80)
            *high = true;
    }
    return end;
}
#endif

#if defined(__AVX512BW__)
#if defined(__AVX512VBMI__)
// Constants of the vector UTF-8 check (utf8_block_errors), made once per string scan.
struct utf8_simd {
    __m512i idx, t1h, t1l, t2h, nib, third, fourth, top;
};

static inline void
utf8_simd_init(struct utf8_simd *c)
{
    enum {
        TOO_SHORT = 1 << 0, TOO_LONG = 1 << 1, OVERLONG_3 = 1 << 2, TOO_LARGE = 1 << 3,
        SURROGATE = 1 << 4, OVERLONG_2 = 1 << 5, TOO_LARGE_1000 = 1 << 6, OVERLONG_4 = 1 << 6,
        TWO_CONTS = 1 << 7, CARRY = TOO_SHORT | TOO_LONG | TWO_CONTS,
    };
    // 64-bit lanes 6, 7 of prev then 0..5 of v: each 128-bit lane of it is the one before the
    // same lane of v, so that a per-lane alignr yields v shifted by 1, 2, 3 bytes across lanes.
    c->idx = _mm512_set_epi64(13, 12, 11, 10, 9, 8, 7, 6);
    c->t1h = _mm512_broadcast_i32x4(_mm_setr_epi8(
        TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
        TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS, TOO_SHORT | OVERLONG_2, TOO_SHORT,
        TOO_SHORT | OVERLONG_3 | SURROGATE,
        (char)(TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4)));
    c->t1l = _mm512_broadcast_i32x4(_mm_setr_epi8(
        (char)(CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4), (char)(CARRY | OVERLONG_2),
        (char)CARRY, (char)CARRY, (char)(CARRY | TOO_LARGE),
        (char)(CARRY | TOO_LARGE | TOO_LARGE_1000), (char)(CARRY | TOO_LARGE | TOO_LARGE_1000),
        (char)(CARRY | TOO_LARGE | TOO_LARGE_1000), (char)(CARRY | TOO_LARGE | TOO_LARGE_1000),
        (char)(CARRY | TOO_LARGE | TOO_LARGE_1000), (char)(CARRY | TOO_LARGE | TOO_LARGE_1000),
        (char)(CARRY | TOO_LARGE | TOO_LARGE_1000), (char)(CARRY | TOO_LARGE | TOO_LARGE_1000),
        (char)(CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE),
        (char)(CARRY | TOO_LARGE | TOO_LARGE_1000), (char)(CARRY | TOO_LARGE | TOO_LARGE_1000)));
    c->t2h = _mm512_broadcast_i32x4(_mm_setr_epi8(
        TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
        (char)(TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4),
        (char)(TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE),
        (char)(TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE),
        (char)(TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE), TOO_SHORT, TOO_SHORT,
        TOO_SHORT, TOO_SHORT));
    c->nib = _mm512_set1_epi8(0x0F);
    c->third = _mm512_set1_epi8((char)(0xE0 - 0x80));
    c->fourth = _mm512_set1_epi8((char)(0xF0 - 0x80));
    c->top = _mm512_set1_epi8((char)0x80);
}

// UTF-8 check of one 64-byte block v whose preceding 64 bytes were prev (the Keiser-Lemire
// "lookup" algorithm, as in simdjson): returns a mask of bytes where an invalid sequence is
// detected. Too short, too long, overlong, surrogate and > U+10FFFF are found from the high
// nibble of a byte, both nibbles of the byte before it, and whether the byte 2 or 3 back starts
// a 3- or 4-byte sequence.
static inline uint64_t
utf8_block_errors(__m512i v, __m512i prev, const struct utf8_simd *c)
{
    __m512i before = _mm512_permutex2var_epi64(prev, c->idx, v);
    __m512i prev1 = _mm512_alignr_epi8(v, before, 15);
    __m512i prev2 = _mm512_alignr_epi8(v, before, 14);
    __m512i prev3 = _mm512_alignr_epi8(v, before, 13);
    __m512i b1h = _mm512_shuffle_epi8(c->t1h, _mm512_and_si512(_mm512_srli_epi16(prev1, 4), c->nib));
    __m512i b1l = _mm512_shuffle_epi8(c->t1l, _mm512_and_si512(prev1, c->nib));
    __m512i b2h = _mm512_shuffle_epi8(c->t2h, _mm512_and_si512(_mm512_srli_epi16(v, 4), c->nib));
    __m512i special = _mm512_and_si512(_mm512_and_si512(b1h, b1l), b2h);
    __m512i must23 = _mm512_and_si512(
        _mm512_or_si512(_mm512_subs_epu8(prev2, c->third), _mm512_subs_epu8(prev3, c->fourth)),
        c->top);
    __m512i err = _mm512_xor_si512(must23, special);
    return _mm512_test_epi8_mask(err, err);
}
#endif

// Strings: open points at the opening quote; returns the position just past the closing quote,
// or NULL with the error set.
//
// The string scanner for AVX-512BW: 64 bytes per step, everything about a block decided with
// bit masks, so that backslashes and non-ASCII bytes cost no exit from the vector loop:
//   bs, quote, ctl      masks of '\\', '"', bytes < 0x20
//   escaped             bytes preceded by an odd run of backslashes (carry across blocks)
//   end                 first unescaped quote; only bytes before it are checked
//   invalid escapes     escaped bytes outside "\\/bfnrtu (a nibble-table lookup)
//   \u escapes          four hex digits in the same block, not starting with d/D: checked
//                       with masks, the scan goes on; others (surrogates, escapes crossing
//                       the block end, errors) are handed to escape_check, then the scan
//                       restarts after the escape with no carry
//   UTF-8               utf8_block_errors on blocks with non-ASCII bytes (with AVX-512 VBMI);
//                       a flagged string is re-checked by utf8_valid_prefix, which is exact
//                       and gives the offset
__attribute__((noinline)) static const char *
parse_string_blocks(struct parser *ps, const char *open, bool *escaped)
{
    const char *body = open + 1, *p = body, *end = ps->end;
    uint64_t carry = 0; // bit 0 of the next block is escaped
    bool esc = false, suspect = false;
#if defined(__AVX512VBMI__)
    __m512i prev = _mm512_setzero_si512(); // the previous block when adjacent, else ASCII
#endif
    // The inner loop makes no calls, so that its constants stay in registers; it stops at the
    // closing quote, the end of input, or the first byte needing attention (k, why).
    enum { AT_QUOTE, AT_U_ESCAPE, AT_BAD_ESCAPE, AT_CONTROL, AT_EOF } why;
    for (;;) {
        const uint64_t odd = 0xAAAAAAAAAAAAAAAAull;
        __m512i vq = _mm512_set1_epi8('"'), vbs = _mm512_set1_epi8('\\');
        __m512i vsp = _mm512_set1_epi8(0x20), vu = _mm512_set1_epi8('u');
        __m512i nib = _mm512_set1_epi8(0x0F);
        // Valid escape characters by nibbles: lo[c & 15] & hi[c >> 4] != 0 exactly for "\\/bfnrtu.
        __m512i lo_tab = _mm512_broadcast_i32x4(
            _mm_setr_epi8(0, 0, 0x0D, 0, 0x08, 0x08, 0x04, 0, 0, 0, 0, 0, 0x02, 0, 0x04, 0x01));
        __m512i hi_tab = _mm512_broadcast_i32x4(
            _mm_setr_epi8(0, 0, 0x01, 0, 0, 0x02, 0x04, 0x08, 0, 0, 0, 0, 0, 0, 0, 0));
        // Hex digits by nibbles: hx_lo[c & 15] & hx_hi[c >> 4] != 0 exactly for 0-9a-fA-F.
        __m512i hx_lo = _mm512_broadcast_i32x4(
            _mm_setr_epi8(1, 3, 3, 3, 3, 3, 3, 1, 1, 1, 0, 0, 0, 0, 0, 0));
        __m512i hx_hi = _mm512_broadcast_i32x4(
            _mm_setr_epi8(0, 0, 0, 1, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        __m512i vd = _mm512_set1_epi8('d');
        // Opaque to the compiler: otherwise GCC re-creates the constants in every iteration
        // (broadcasts that compete for the shuffle port with the real work).
        __asm__("" : "+v"(vq), "+v"(vbs), "+v"(vsp), "+v"(vu), "+v"(nib), "+v"(lo_tab),
                "+v"(hi_tab), "+v"(hx_lo), "+v"(hx_hi), "+v"(vd));
#if defined(__AVX512VBMI__)
        struct utf8_simd u8;
        utf8_simd_init(&u8);
        __asm__("" : "+v"(u8.idx), "+v"(u8.t1h), "+v"(u8.t1l), "+v"(u8.t2h), "+v"(u8.third),
                "+v"(u8.fourth), "+v"(u8.top));
        u8.nib = nib;
#endif
        unsigned k = 0;
        for (;;) {
            __m512i v;
            uint64_t valid = ~0ull;
            if (end - p >= 64)
                v = _mm512_loadu_si512((const void *)p);
            else if (p < end) {
                // A masked load never touches the bytes past end (no fault, no overread).
                valid = (1ull << (end - p)) - 1;
                v = _mm512_maskz_loadu_epi8(valid, p);
            } else {
                why = AT_EOF;
                break;
            }
            // Every mask of the block first, straight from v, and into general registers: the
            // compiler would otherwise fold the scalar results below into masked compares,
            // which then wait for them (a long dependency chain per block).
            __m512i lo = _mm512_and_si512(v, nib);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
            uint64_t bs = _mm512_cmpeq_epi8_mask(v, vbs);
            uint64_t quote = _mm512_cmpeq_epi8_mask(v, vq);
            uint64_t ctl = _mm512_cmplt_epu8_mask(v, vsp);
            uint64_t uv = _mm512_cmpeq_epi8_mask(v, vu);
            uint64_t ok_esc = _mm512_test_epi8_mask(_mm512_shuffle_epi8(lo_tab, lo),
                                                    _mm512_shuffle_epi8(hi_tab, hi));
#if defined(__AVX512VBMI__)
            uint64_t u8err = utf8_block_errors(v, prev, &u8);
            prev = v;
            __asm__("" : "+r"(bs), "+r"(quote), "+r"(ctl), "+r"(uv), "+r"(ok_esc), "+r"(u8err));
#else
            uint64_t high = _mm512_movepi8_mask(v);
            __asm__("" : "+r"(bs), "+r"(quote), "+r"(ctl), "+r"(uv), "+r"(ok_esc), "+r"(high));
#endif
            // (Bytes past valid are zero: no quote or backslash; before excludes them.)
            uint64_t pot = bs & ~carry;
            uint64_t codes = (((pot << 1) | odd) - pot) ^ odd;
            uint64_t escd = codes ^ (bs | carry);
            carry = (codes & bs) >> 63;
            uint64_t qe = quote & ~escd;
            uint64_t before = (qe - 1) & ~qe & valid; // bytes before the closing quote
#if defined(__AVX512VBMI__)
            // Branch-free (blocks with and without non-ASCII bytes alternate unpredictably in
            // text). Errors are reported at or after the byte that completes the evidence:
            // keep those up to and including the closing quote (a lead byte right before it
            // is too short).
            suspect |= (u8err & (qe ? qe ^ (qe - 1) : valid)) != 0;
#else
            suspect |= (high & before) != 0;
#endif
            ctl &= before & ~escd;
            uint64_t e = escd & before;
            esc |= e != 0;
            uint64_t bad_esc = e & ~ok_esc;
            uint64_t u = e & uv;
            if (u) {
                // A \u escape whose four hex digits lie in this block and do not start with
                // d/D (no surrogate) is complete: the scan goes on past it. Hex digits are not
                // quotes, backslashes or controls, so the masks above stay right.
                uint64_t hex = _mm512_test_epi8_mask(_mm512_shuffle_epi8(hx_lo, lo),
                                                     _mm512_shuffle_epi8(hx_hi, hi));
                uint64_t dd = _mm512_cmpeq_epi8_mask(_mm512_or_si512(v, vsp), vd);
                u &= ~(((hex & ~dd) >> 1) & (hex >> 2) & (hex >> 3) & (hex >> 4));
            }
            uint64_t stop = ctl | bad_esc | u;
            if (__builtin_expect(stop != 0, 0)) {
                k = (unsigned)__builtin_ctzll(stop);
                uint64_t bit = 1ull << k;
                why = bit & u ? AT_U_ESCAPE : bit & bad_esc ? AT_BAD_ESCAPE : AT_CONTROL;
                break;
            }
            if (qe) {
                p += __builtin_ctzll(qe);
                why = AT_QUOTE;
                break;
            }
            if (valid != ~0ull) {
                why = AT_EOF;
                break;
            }
            p += 64;
        }
        if (why == AT_QUOTE)
            break;
        if (why == AT_EOF)
            return FAILP(ps, open, "unterminated string");
        if (why == AT_BAD_ESCAPE)
            return FAILP(ps, p + k - 1, "invalid escape");
        if (why == AT_CONTROL)
            return FAILP(ps, p + k, "control character U+%04X in string (must be escaped)",
                         (unsigned char)p[k]);
        p = escape_check(ps, p + k - 1); // a \u escape: hex digits and surrogate pairing
        if (!p)
            return NULL;
        carry = 0;
#if defined(__AVX512VBMI__)
        prev = _mm512_setzero_si512(); // the byte before p is an ASCII hex digit
#endif
    }
    if (suspect) {
        size_t n = (size_t)(p - body), k = utf8_valid_prefix(body, n);
        if (k < n)
            return FAILP(ps, body + k, "invalid UTF-8 in string");
    }
    *escaped = esc;
    return p + 1;
}

// Loads the window at p: the next 64 bytes (fewer at the end of the input).
static inline void
strwin_load(struct strwin *w, const char *p, const char *end)
{
    // Near the end of the input (the last fields of a record) a masked load stays in bounds.
    uint64_t valid = ~0ull;
    __m512i v;
    if (__builtin_expect(end - p >= 64, 1))
        v = _mm512_loadu_si512((const void *)p);
    else {
        valid = (1ull << (end - p)) - 1;
        v = _mm512_maskz_loadu_epi8(valid, p);
    }
    w->base = p;
    w->quote = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('"')) & valid;
    w->other = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\\')) |
               _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20)) | _mm512_movepi8_mask(v);
}

// A string that parse_string could not decide from its window. When the rest of the window
// holds no quote and nothing else (a longer plain string such as an id, a path or a hash), the
// following windows, from next on, are tried the same way before the block scanner and its
// set-up; the window such a string ends in is left in ps->win for the strings after it.
__attribute__((noinline)) static const char *
parse_string_long(struct parser *ps, const char *open, bool *escaped, const char *next)
{
    for (; next < ps->end; next += 64) {
        strwin_load(&ps->win, next, ps->end);
        uint64_t quote = ps->win.quote, other = ps->win.other;
        if (quote && (other & ((quote & (0 - quote)) - 1)) == 0) {
            *escaped = false;
            return next + __builtin_ctzll(quote) + 1;
        }
        if (quote | other)
            break;
    }
    return parse_string_blocks(ps, open, escaped);
}

// Strings that end within the window with no backslash, control or non-ASCII byte (keys,
// labels, most metadata) are decided here, inline in the parser loop, with a few bit
// operations on the window's masks; the rest go to parse_string_long. The window moves only
// when a string starts past it or does not end in it, so several short strings share one load.
// (The position of every token depends on the length of the string before it: this is the
// parser's critical path, and a shift and a tzcnt are much shorter than load + compare.)
static inline const char *
parse_string(struct parser *ps, struct strwin *w, const char *open, bool *escaped)
{
    const char *p = open + 1;
    uintptr_t off = (uintptr_t)p - (uintptr_t)w->base;
    if (off >= 64 || (w->quote >> off) == 0) {
        strwin_load(w, p, ps->end);
        off = 0;
    }
    uint64_t quote = w->quote >> off, other = w->other >> off;
    if (quote && (other & ((quote & (0 - quote)) - 1)) == 0) {
        *escaped = false;
        return p + __builtin_ctzll(quote) + 1;
    }
    if (quote | other)
        return parse_string_blocks(ps, open, escaped);
    ps->win = *w;
    const char *end = parse_string_long(ps, open, escaped, w->base + 64);
    *w = ps->win;
    return end;
}
#else
static const char *
parse_string(struct parser *ps, struct strwin *w, const char *open, bool *escaped)
{
    (void)w;
    const char *body = open + 1, *p = body, *end = ps->end;
    bool esc = false, high = false;
    for (;;) {
        p = scan_plain(p, end, &high);
        if (p == end)
            return FAILP(ps, open, "unterminated string");
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c != '\\')
            return FAILP(ps, p, "control character U+%04X in string (must be escaped)", c);
        esc = true;
        p = escape_check(ps, p);
        if (!p)
            return NULL;
    }
    if (high) {
        size_t n = (size_t)(p - body), k = utf8_valid_prefix(body, n);
        if (k < n)
            return FAILP(ps, body + k, "invalid UTF-8 in string");
    }
    *escaped = esc;
    return p + 1;
}
#endif

// ---- numbers and literals ----------------------------------------------------------------

static inline bool
is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

// Numbers and literals start at p; they return the position after them or NULL (error set).
static const char *
parse_number(struct parser *ps, const char *p)
{
    const char *end = ps->end;
    if (*p == '-')
        p++;
    if (!is_digit(p, end))
        return FAILP(ps, p, "invalid number: expected digit");
    if (*p == '0') {
        p++;
        if (is_digit(p, end))
            return FAILP(ps, p, "invalid number: leading zero");
    } else {
        while (is_digit(p, end))
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end))
            return FAILP(ps, p, "invalid number: expected digit after '.'");
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return FAILP(ps, p, "invalid number: expected digit in exponent");
        while (is_digit(p, end))
            p++;
    }
    return p;
}

static const char *
parse_literal(struct parser *ps, const char *p, const char *lit, size_t n)
{
    if ((size_t)(ps->end - p) < n || memcmp(p, lit, n) != 0)
        return FAILP(ps, p, "expected value");
    return p + n;
}

// ---- duplicate keys ----------------------------------------------------------------------

static bool
key_ref_eq(struct json_scratch *sc, const struct key_ref *a, const struct key_ref *b)
{
    if (!a->esc && !b->esc)
        return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
    if (!a->esc)
        return raw_eq(b->p, b->len, a->p, a->len);
    if (!b->esc)
        return raw_eq(a->p, a->len, b->p, b->len);
    buf_reset(&sc->tmp);
    json_unescape(a->p, a->len, &sc->tmp);
    return raw_eq(b->p, b->len, sc->tmp.p, sc->tmp.len);
}

static int
fail_dup(struct parser *ps, const struct key_ref *k)
{
    // Quote at most ~60 bytes of the key, cut at a character boundary.
    size_t n = k->len < 60 ? k->len : utf8_valid_prefix(k->p, 60);
    return fail(ps, k->p - 1, "duplicate key \"%.*s\"%s", (int)n, k->p, n < k->len ? "..." : "");
}

// Checks the keys of one object; reports the first key (in document order) equal to an
// earlier one.
static int
check_dups(struct parser *ps, const struct key_ref *keys, size_t n)
{
    struct json_scratch *sc = ps->sc;
    if (n < 2)
        return 0;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++) {
                const struct key_ref *a = &keys[i], *b = &keys[j];
                // Unescaped keys with different tags differ: the usual case.
                if (a->tag != b->tag && !(a->esc | b->esc))
                    continue;
                if (key_ref_eq(sc, a, b))
                    return fail_dup(ps, a);
            }
        return 0;
    }
    // Larger objects: a hash table of the keys seen so far, probed in document order.
    size_t cap = 64;
    while (cap < 2 * n)
        cap *= 2;
    if (sc->caphs < n) {
        sc->caphs = n + n / 2;
        sc->hs = xrealloc(sc->hs, sc->caphs * sizeof *sc->hs);
    }
    if (sc->capslots < cap) {
        sc->capslots = cap;
        sc->slots = xrealloc(sc->slots, cap * sizeof *sc->slots);
    }
    memset(sc->slots, 0, cap * sizeof *sc->slots);
    for (size_t i = 0; i < n; i++) {
        uint64_t h;
        if (keys[i].esc) {
            buf_reset(&sc->tmp);
            json_unescape(keys[i].p, keys[i].len, &sc->tmp);
            h = hash64(sc->tmp.p, sc->tmp.len);
        } else
            h = hash64(keys[i].p, keys[i].len);
        sc->hs[i] = h;
        size_t pos = (size_t)h & (cap - 1);
        for (; sc->slots[pos]; pos = (pos + 1) & (cap - 1)) {
            size_t j = sc->slots[pos] - 1;
            if (sc->hs[j] == h && key_ref_eq(sc, &keys[i], &keys[j]))
                return fail_dup(ps, &keys[i]);
        }
        sc->slots[pos] = (uint32_t)(i + 1);
    }
    return 0;
}

// ---- the parser --------------------------------------------------------------------------

static void
field_push(struct json_obj *o, const struct key_ref *k, const struct json_val *v)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->fields = xrealloc(o->fields, o->cap * sizeof *o->fields);
    }
    struct json_field *f = &o->fields[o->n++];
    f->key = k->p;
    f->key_len = k->len;
    f->key_escaped = k->esc;
    // Member by member: v was just written piecewise, and one wide copy of it would stall on
    // store forwarding.
    f->val.type = v->type;
    f->val.raw = v->raw;
    f->val.raw_len = v->raw_len;
    f->val.escaped = v->escaped;
}

// Tag of the raw key p[0..len) (which is followed by its closing quote, before end): its first
// eight bytes (fewer when shorter) with the length folded into the top byte. Equal raw keys
// have equal tags; different tags mean different keys unless one of them is escaped.
static inline uint64_t
key_tag(const char *p, size_t len, const char *end)
{
    uint64_t w = 0;
    if (end - p >= 8)
        memcpy(&w, p, 8);
    else
        memcpy(&w, p, len); // len < 8 here: the key and its quote fit before end
    if (len < 8)
        w &= (1ull << (8 * len)) - 1;
    return w ^ ((uint64_t)len << 56);
}

static void
key_push(struct json_scratch *sc, const char *p, size_t len, bool esc, const char *end)
{
    if (sc->nkeys == sc->capkeys) {
        sc->capkeys = sc->capkeys ? sc->capkeys * 2 : 64;
        sc->keys = xrealloc(sc->keys, sc->capkeys * sizeof *sc->keys);
    }
    sc->keys[sc->nkeys++] = (struct key_ref){p, len, key_tag(p, len, end), esc};
}

// Parses one value at ps->p (after optional whitespace) into *root and leaves ps->p after it.
// When o is given, the members of the root object are appended to o's field index.
// Iterative: an explicit stack of open containers, each with its start and (objects) the start
// of its keys on the key stack. The cursor lives in a local so that it stays in a register.
static int
parse_doc(struct parser *ps, struct json_val *root, struct json_obj *o)
{
    struct json_scratch *sc = ps->sc;
    const char *p = ps->p, *end = ps->end;
    char kind[JSON_MAX_DEPTH];
    const char *cstart[JSON_MAX_DEPTH];
    size_t kstart[JSON_MAX_DEPTH];
    int d = 0;
    struct json_val v;
    struct strwin win = {ps->s, 0, 0};

value:
    p = skip_ws(p, end);
    if (p == end)
        return fail(ps, end, "expected value");
    v.raw = p;
    v.escaped = false;
    switch (*p) {
    case '{':
    case '[':
        if (d == JSON_MAX_DEPTH)
            return fail(ps, p, "nesting deeper than %d", JSON_MAX_DEPTH);
        kind[d] = *p;
        cstart[d] = p;
        kstart[d] = sc->nkeys;
        d++;
        p = skip_ws(p + 1, end);
        if (p < end && *p == (kind[d - 1] == '{' ? '}' : ']'))
            goto close;
        if (kind[d - 1] == '{')
            goto member;
        goto value;
    case '"':
        v.type = JSON_STRING;
        p = parse_string(ps, &win, p, &v.escaped);
        break;
    case 't':
        v.type = JSON_TRUE;
        p = parse_literal(ps, p, "true", 4);
        break;
    case 'f':
        v.type = JSON_FALSE;
        p = parse_literal(ps, p, "false", 5);
        break;
    case 'n':
        v.type = JSON_NULL;
        p = parse_literal(ps, p, "null", 4);
        break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        v.type = JSON_NUMBER;
        p = parse_number(ps, p);
        break;
    default:
        if ((unsigned char)*p == 0xEF && p == ps->s)
            return fail(ps, p, "byte order mark not allowed");
        return fail(ps, p, "expected value");
    }
    if (!p)
        return -1;
    v.raw_len = (size_t)(p - v.raw);
    goto done;

close: // p at the bracket closing container d-1
    d--;
    if (kind[d] == '{') {
        if (check_dups(ps, sc->keys + kstart[d], sc->nkeys - kstart[d]))
            return -1;
        sc->nkeys = kstart[d];
    }
    p++;
    v.type = kind[d] == '{' ? JSON_OBJECT : JSON_ARRAY;
    v.raw = cstart[d];
    v.raw_len = (size_t)(p - cstart[d]);
    v.escaped = false;

done: // v just ended at p
    if (d == 0) {
        *root = v;
        ps->p = p;
        return 0;
    }
    if (o && d == 1)
        field_push(o, &sc->keys[sc->nkeys - 1], &v);
    p = skip_ws(p, end);
    if (p < end && *p == ',') {
        p = skip_ws(p + 1, end);
        if (kind[d - 1] == '{')
            goto member;
        goto value;
    }
    if (p < end && *p == (kind[d - 1] == '{' ? '}' : ']'))
        goto close;
    return fail(ps, p, kind[d - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'");

member: // p at the opening quote of a key (whitespace skipped)
    if (p == end || *p != '"')
        return fail(ps, p, "expected string key");
    {
        const char *q = p;
        bool esc;
        p = parse_string(ps, &win, q, &esc);
        if (!p)
            return -1;
        key_push(sc, q + 1, (size_t)(p - q - 2), esc, end);
    }
    p = skip_ws(p, end);
    if (p == end || *p != ':')
        return fail(ps, p, "expected ':'");
    p++;
    goto value;
}

void
json_obj_init(struct json_obj *o)
{
    memset(o, 0, sizeof *o);
}

void
json_obj_free(struct json_obj *o)
{
    free(o->fields);
    if (o->scratch) {
        scratch_free(o->scratch);
        free(o->scratch);
    }
    memset(o, 0, sizeof *o);
}

int
json_obj_parse(struct json_obj *o, const char *s, size_t n, struct json_error *e)
{
    if (!o->scratch)
        o->scratch = xcalloc(1, sizeof *o->scratch);
    struct parser ps = {s, s, s + n, e, o->scratch, {NULL, 0, 0}};
    o->scratch->nkeys = 0;
    o->n = 0;
    o->src = NULL;
    o->len = 0;
    ps.p = skip_ws(s, ps.end);
    if (ps.p == ps.end || *ps.p != '{') {
        if (ps.p < ps.end && (unsigned char)*ps.p == 0xEF && ps.p == s)
            return fail(&ps, ps.p, "byte order mark not allowed");
        return fail(&ps, ps.p, "expected '{' (a record is a JSON object)");
    }
    struct json_val root;
    if (parse_doc(&ps, &root, o) < 0) {
        o->n = 0;
        return -1;
    }
    ps.p = skip_ws(ps.p, ps.end);
    if (ps.p != ps.end) {
        o->n = 0;
        return fail(&ps, ps.p, "trailing characters after the object");
    }
    o->src = root.raw;
    o->len = root.raw_len;
    return 0;
}

int
json_parse_value(const char *s, size_t n, struct json_val *out, struct json_error *e)
{
    struct json_scratch sc = {0};
    struct parser ps = {s, s, s + n, e, &sc, {NULL, 0, 0}};
    int rc = parse_doc(&ps, out, NULL);
    if (rc == 0) {
        ps.p = skip_ws(ps.p, ps.end);
        if (ps.p != ps.end)
            rc = fail(&ps, ps.p, "trailing characters after the value");
    }
    scratch_free(&sc);
    return rc;
}

// ---- access to validated values ----------------------------------------------------------

// Position after the string starting at p (a quote); *esc when it holds a backslash.
static const char *
skip_string(const char *p, const char *end, bool *esc)
{
    const char *body = p + 1, *q = body;
    for (;;) {
        const char *c = memchr(q, '"', (size_t)(end - q));
        if (!c)
            return end;
        const char *b = c;
        while (b > body && b[-1] == '\\')
            b--;
        if (((c - b) & 1) == 0) {
            *esc = memchr(body, '\\', (size_t)(c - body)) != NULL;
            return c + 1;
        }
        q = c + 1;
    }
}

static const char *
skip_value(const char *p, const char *end, bool *esc)
{
    *esc = false;
    if (p >= end)
        return end;
    if (*p == '"')
        return skip_string(p, end, esc);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            char c = *p;
            if (c == '"') {
                bool e;
                p = skip_string(p, end, &e);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return end;
    }
    while (p < end && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\n' &&
           *p != '\r' && *p != '\t')
        p++;
    return p;
}

static enum json_type
type_of(char c)
{
    switch (c) {
    case '"': return JSON_STRING;
    case '{': return JSON_OBJECT;
    case '[': return JSON_ARRAY;
    case 't': return JSON_TRUE;
    case 'f': return JSON_FALSE;
    case 'n': return JSON_NULL;
    default: return JSON_NUMBER;
    }
}

void
json_iter_init(struct json_iter *it, const struct json_val *container)
{
    memset(it, 0, sizeof *it);
    if ((container->type == JSON_OBJECT || container->type == JSON_ARRAY) &&
        container->raw_len >= 2) {
        it->p = container->raw + 1;
        it->end = container->raw + container->raw_len - 1;
        it->object = container->type == JSON_OBJECT;
    }
}

bool
json_iter_next(struct json_iter *it)
{
    const char *p = skip_ws(it->p, it->end), *end = it->end;
    if (p < end && *p == ',')
        p = skip_ws(p + 1, end);
    if (p >= end || (it->object && *p != '"')) {
        it->p = end;
        return false;
    }
    if (it->val.raw)
        it->index++;
    if (it->object) {
        const char *q = skip_string(p, end, &it->key_escaped);
        it->key = p + 1;
        it->key_len = q > p + 1 ? (size_t)(q - p - 2) : 0;
        p = skip_ws(q, end);
        if (p < end && *p == ':')
            p = skip_ws(p + 1, end);
    }
    const char *q = skip_value(p, end, &it->val.escaped);
    it->val.type = type_of(p < end ? *p : 'n');
    it->val.raw = p;
    it->val.raw_len = (size_t)(q - p);
    it->p = q;
    return true;
}

bool
json_val_member(const struct json_val *obj, const char *key, size_t key_len,
                struct json_val *out)
{
    if (obj->type != JSON_OBJECT)
        return false;
    struct json_iter it;
    json_iter_init(&it, obj);
    while (json_iter_next(&it))
        if (key_matches(it.key, it.key_len, it.key_escaped, key, key_len)) {
            *out = it.val;
            return true;
        }
    return false;
}

static const struct json_field *
obj_get_n(const struct json_obj *o, const char *key, size_t n)
{
    for (size_t i = 0; i < o->n; i++) {
        const struct json_field *f = &o->fields[i];
        if (key_matches(f->key, f->key_len, f->key_escaped, key, n))
            return f;
    }
    return NULL;
}

const struct json_field *
json_obj_get(const struct json_obj *o, const char *key)
{
    return obj_get_n(o, key, strlen(key));
}

bool
json_obj_path(const struct json_obj *o, const char *path, struct json_val *out)
{
    const char *dot = strchr(path, '.');
    const struct json_field *f = obj_get_n(o, path, dot ? (size_t)(dot - path) : strlen(path));
    if (!f)
        return false;
    struct json_val v = f->val;
    while (dot) {
        path = dot + 1;
        dot = strchr(path, '.');
        struct json_val m;
        if (!json_val_member(&v, path, dot ? (size_t)(dot - path) : strlen(path), &m))
            return false;
        v = m;
    }
    *out = v;
    return true;
}

// ---- numbers -----------------------------------------------------------------------------

int
json_double(const struct json_val *v, double *out)
{
    if (v->type != JSON_NUMBER || v->raw_len == 0)
        return -1;
    // strtod needs a terminated copy. (kiln never changes LC_NUMERIC, so '.' is the point.)
    char small[64];
    char *tmp = v->raw_len < sizeof small ? small : xmalloc(v->raw_len + 1);
    memcpy(tmp, v->raw, v->raw_len);
    tmp[v->raw_len] = 0;
    char *endp;
    double x = strtod(tmp, &endp);
    bool ok = endp == tmp + v->raw_len && !isinf(x);
    if (tmp != small)
        free(tmp);
    if (!ok)
        return -1;
    *out = x;
    return 0;
}

// True when the number literal (grammar already valid) denotes an integer: every significant
// digit right of the decimal point, after applying the exponent, is zero.
static bool
number_is_integral(const char *p, const char *end)
{
    if (*p == '-')
        p++;
    const char *ip = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    long intlen = (long)(p - ip);
    const char *fp = NULL, *fend = NULL;
    if (p < end && *p == '.') {
        fp = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        fend = p;
    }
    long ex = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool neg = *p == '-';
        if (*p == '+' || *p == '-')
            p++;
        for (; p < end; p++)
            if (ex < 1000000)
                ex = ex * 10 + (*p - '0');
        if (neg)
            ex = -ex;
    }
    // Digit k (0-based over integer then fraction digits) has weight 10^(intlen + ex - 1 - k);
    // it is fractional when k >= intlen + ex.
    long point = intlen + ex;
    long nfrac = fp ? (long)(fend - fp) : 0;
    for (long k = point < 0 ? 0 : point; k < intlen + nfrac; k++) {
        char c = k < intlen ? ip[k] : fp[k - intlen];
        if (c != '0')
            return false;
    }
    return true;
}

int
json_int(const struct json_val *v, int64_t *out)
{
    if (v->type != JSON_NUMBER || v->raw_len == 0)
        return -1;
    const char *p = v->raw, *end = p + v->raw_len;
    bool neg = *p == '-';
    const char *q = p + neg;
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    if (q == end) {
        uint64_t acc = 0;
        for (q = p + neg; q < end; q++) {
            unsigned d = (unsigned)(*q - '0');
            if (acc > (UINT64_MAX - d) / 10)
                return -1;
            acc = acc * 10 + d;
        }
        if (neg) {
            if (acc > (uint64_t)INT64_MAX + 1)
                return -1;
            *out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
        } else {
            if (acc > (uint64_t)INT64_MAX)
                return -1;
            *out = (int64_t)acc;
        }
        return 0;
    }
    double x;
    if (!number_is_integral(p, end) || json_double(v, &x) < 0 || fabs(x) > 9007199254740992.0)
        return -1;
    *out = (int64_t)x;
    return 0;
}

// ---- rewriting ---------------------------------------------------------------------------

void
json_obj_rewrite(const struct json_obj *o, const struct json_edit *edits, size_t n_edits,
                 struct buf *out)
{
    if (n_edits == 0) {
        buf_append(out, o->src, o->len);
        return;
    }
    buf_putc(out, '{');
    bool first = true;
    for (size_t i = 0; i < o->n; i++) {
        const struct json_field *f = &o->fields[i];
        const struct json_edit *ed = NULL;
        for (size_t j = n_edits; j-- > 0 && !ed;)
            if (key_matches(f->key, f->key_len, f->key_escaped, edits[j].key,
                            strlen(edits[j].key)))
                ed = &edits[j];
        if (ed && !ed->raw)
            continue;
        if (!first)
            buf_putc(out, ',');
        first = false;
        if (!ed) {
            // The field as it was: from the key's quote to the value's end.
            const char *a = f->key - 1;
            buf_append(out, a, (size_t)(f->val.raw + f->val.raw_len - a));
        } else {
            buf_append(out, f->key - 1, f->key_len + 2);
            buf_putc(out, ':');
            buf_append(out, ed->raw, ed->raw_len);
        }
    }
    // New keys, in the order of their last edit.
    for (size_t j = 0; j < n_edits; j++) {
        const struct json_edit *ed = &edits[j];
        size_t kn = strlen(ed->key);
        if (!ed->raw || obj_get_n(o, ed->key, kn))
            continue;
        bool later = false;
        for (size_t k = j + 1; k < n_edits && !later; k++)
            later = strcmp(edits[k].key, ed->key) == 0;
        if (later)
            continue;
        if (!first)
            buf_putc(out, ',');
        first = false;
        json_write_str(out, ed->key, kn);
        buf_putc(out, ':');
        buf_append(out, ed->raw, ed->raw_len);
    }
    buf_putc(out, '}');
}

// SPDX-License-Identifier: MIT
// textstats: word splitting, Python-compatible line splitting and character-class counts.
// See textstats.h for the tokenization rules. ASCII goes through a byte table; other code
// points through unicode.h (utf8proc categories).
#include "textstats.h"

#include "unicode.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// Classes of one code point as the tokenizer sees them.
enum { C_OTHER = 0, C_SPACE = 1, C_PUNCT = 2, C_ALPHA = 4, C_DIGIT = 8 };

static uint8_t ascii_class[128];
static pthread_once_t ascii_once = PTHREAD_ONCE_INIT;

static void
ascii_fill(void)
{
    for (int c = 0; c < 128; c++) {
        uint8_t k = C_PUNCT; // controls and ASCII punctuation/symbols
        if (c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f))
            k = C_SPACE;
        else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            k = C_ALPHA;
        else if (c >= '0' && c <= '9')
            k = C_DIGIT;
        ascii_class[c] = k;
    }
}

static void
ascii_init(void)
{
    pthread_once(&ascii_once, ascii_fill);
}

bool
ts_is_space(int32_t cp)
{
    if (cp < 0x80)
        return cp >= 0 && (cp == ' ' || (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x1f));
    return (uni_class_of(cp) & UNI_SPACE) != 0;
}

// Decodes the code point at s[i] (i < n): returns its byte length, sets *cls.
static inline int
cp_at(const char *s, size_t n, size_t i, int32_t *cp, uint8_t *cls)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *cp = c;
        *cls = ascii_class[c];
        return 1;
    }
    int k = uni_decode(s + i, n - i, cp);
    unsigned u = uni_class_of(*cp);
    if (u & UNI_SPACE)
        *cls = C_SPACE;
    else if (u & UNI_LETTER)
        *cls = C_ALPHA;
    else if (u & UNI_DIGIT)
        *cls = C_DIGIT;
    else if (u & (UNI_PUNCT | UNI_SYMBOL | UNI_CONTROL))
        *cls = C_PUNCT;
    else
        *cls = C_OTHER; // marks, unassigned, U+FFFD from invalid bytes
    return k;
}

static void
push(struct ts_words *w, size_t off, size_t len, uint32_t cps, uint32_t flags)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->v = xrealloc(w->v, w->cap * sizeof *w->v);
    }
    w->v[w->n++] = (struct ts_word){(uint32_t)off, (uint32_t)len, cps, flags};
}

// Length in bytes of the code point that ends at s[end-1].
static size_t
last_cp_len(const char *s, size_t start, size_t end)
{
    size_t k = 1;
    while (end - k > start && k < 4 && ((unsigned char)s[end - k] & 0xC0) == 0x80)
        k++;
    return k;
}

// Length of an English clitic at the end of core s[a..b), 0 when none. The apostrophe is ' or
// U+2019 (3 bytes); the part before it must be non-empty.
static size_t
clitic_len(const char *s, size_t a, size_t b)
{
    static const char *const tails[] = {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"};
    for (size_t t = 0; t < KILN_ARRAY_LEN(tails); t++) {
        const char *tl = tails[t];
        size_t k = strlen(tl), ap = tl[0] == 'n' ? 1 : 0; // apostrophe index within tail
        for (int curly = 0; curly < 2; curly++) {
            size_t len = k + (curly ? 2 : 0);
            if (b - a <= len)
                continue;
            const char *p = s + b - len;
            bool ok = true;
            size_t j = 0;
            for (size_t i = 0; i < k && ok; i++) {
                if (i == ap) {
                    if (curly)
                        ok = memcmp(p + j, "\xE2\x80\x99", 3) == 0, j += 3;
                    else
                        ok = p[j] == '\'', j++;
                } else {
                    char c = p[j++];
                    if (c >= 'A' && c <= 'Z')
                        c = (char)(c + 32);
                    ok = c == tl[i];
                }
            }
            if (ok)
                return len;
        }
    }
    return 0;
}

// Splits one whitespace-free chunk s[a..b).
static void
split_chunk(const char *s, size_t n, size_t a, size_t b, struct ts_words *w)
{
    int32_t cp;
    uint8_t cls;
    // Leading punctuation, one token per code point ('.' runs together).
    while (a < b) {
        int k = cp_at(s, n, a, &cp, &cls);
        if (cls != C_PUNCT)
            break;
        size_t e = a + (size_t)k;
        uint32_t cps = 1;
        if (cp == '.')
            while (e < b && s[e] == '.')
                e++, cps++;
        push(w, a, e - a, cps, TS_WORD_SYMBOL);
        a = e;
    }
    if (a == b)
        return;
    // Trailing punctuation, collected backwards.
    struct ts_word tail[16];
    size_t nt = 0;
    while (b > a && nt < KILN_ARRAY_LEN(tail)) {
        size_t k = last_cp_len(s, a, b);
        cp_at(s, n, b - k, &cp, &cls);
        if (cls != C_PUNCT)
            break;
        size_t st = b - k;
        uint32_t cps = 1;
        if (cp == '.')
            while (st > a && s[st - 1] == '.')
                st--, cps++;
        tail[nt++] = (struct ts_word){(uint32_t)st, (uint32_t)(b - st), cps, TS_WORD_SYMBOL};
        b = st;
    }
    if (b > a) {
        size_t cl = clitic_len(s, a, b);
        size_t core_end = b - cl;
        uint32_t flags = 0, cps = 0;
        bool only_punct = true;
        for (size_t i = a; i < core_end;) {
            int k = cp_at(s, n, i, &cp, &cls);
            if (cls == C_ALPHA)
                flags |= TS_WORD_ALPHA;
            if (cls != C_PUNCT)
                only_punct = false;
            cps++;
            i += (size_t)k;
        }
        if (only_punct)
            flags |= TS_WORD_SYMBOL;
        push(w, a, core_end - a, cps, flags);
        if (cl)
            push(w, core_end, cl, (uint32_t)ts_cps(s + core_end, cl), TS_WORD_ALPHA);
    }
    while (nt)
        push(w, tail[nt - 1].off, tail[nt - 1].len, tail[nt - 1].cps, tail[nt - 1].flags), nt--;
}

void
ts_words_split(const char *s, size_t n, struct ts_words *w)
{
    ascii_init();
    w->n = 0;
    if (n > UINT32_MAX)
        n = UINT32_MAX;
    size_t i = 0;
    while (i < n) {
        // Skip whitespace (ASCII fast path).
        int32_t cp;
        uint8_t cls;
        int k;
        while (i < n) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x80) {
                if (ascii_class[c] != C_SPACE)
                    break;
                i++;
                continue;
            }
            k = cp_at(s, n, i, &cp, &cls);
            if (cls != C_SPACE)
                break;
            i += (size_t)k;
        }
        if (i >= n)
            break;
        size_t a = i;
        while (i < n) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x80) {
                if (ascii_class[c] == C_SPACE)
                    break;
                i++;
                continue;
            }
            k = cp_at(s, n, i, &cp, &cls);
            if (cls == C_SPACE)
                break;
            i += (size_t)k;
        }
        // Fast path: a plain ASCII word of letters/digits.
        bool simple = true;
        uint32_t flags = 0;
        for (size_t j = a; j < i; j++) {
            unsigned char c = (unsigned char)s[j];
            if (c >= 0x80 || ascii_class[c] == C_PUNCT || c == '\'') {
                simple = false;
                break;
            }
            if (ascii_class[c] == C_ALPHA)
                flags = TS_WORD_ALPHA;
        }
        if (simple)
            push(w, a, i - a, (uint32_t)(i - a), flags);
        else
            split_chunk(s, n, a, i, w);
    }
}

void
ts_words_free(struct ts_words *w)
{
    free(w->v);
    w->v = NULL;
    w->n = w->cap = 0;
}

size_t
ts_cps(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

bool
ts_line_next(const char *s, size_t n, size_t *pos, size_t *start, size_t *len)
{
    size_t i = *pos;
    if (i >= n)
        return false;
    *start = i;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t sep = 0;
        if (c == '\n' || c == '\v' || c == '\f' || c == 0x1c || c == 0x1d || c == 0x1e)
            sep = 1;
        else if (c == '\r')
            sep = (i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
        else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85)
            sep = 2;
        else if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
                 ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9))
            sep = 3;
        if (sep) {
            *len = i - *start;
            *pos = i + sep;
            return true;
        }
        i++;
    }
    *len = n - *start;
    *pos = n;
    return true;
}

void
ts_strip(const char *s, size_t n, size_t *start, size_t *len)
{
    size_t a = 0, b = n;
    while (a < b) {
        int32_t cp;
        int k = (unsigned char)s[a] < 0x80 ? (cp = (unsigned char)s[a], 1)
                                            : uni_decode(s + a, b - a, &cp);
        if (!ts_is_space(cp))
            break;
        a += (size_t)k;
    }
    while (b > a) {
        size_t k = last_cp_len(s, a, b);
        int32_t cp;
        uni_decode(s + b - k, k, &cp);
        if (!ts_is_space(cp))
            break;
        b -= k;
    }
    *start = a;
    *len = b - a;
}

void
ts_classes_count(const char *s, size_t n, struct ts_classes *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)s[i];
        c->chars++;
        if (b < 0x80) {
            if ((b | 32) >= 'a' && (b | 32) <= 'z') {
                c->letters++;
                c->upper += b <= 'Z';
            } else if (b >= '0' && b <= '9') {
                c->digits++;
            } else if (b == ' ' || (b >= 9 && b <= 13) || (b >= 0x1c && b <= 0x1f)) {
                c->space++;
            } else if (b > 0x20 && b < 0x7f) {
                c->symbols++;
            }
            i++;
            continue;
        }
        int32_t cp;
        i += (size_t)uni_decode(s + i, n - i, &cp);
        c->nonascii++;
        unsigned u = uni_class_of(cp);
        if (u & UNI_SPACE)
            c->space++;
        else if (u & UNI_LETTER)
            c->letters++, c->upper += (u & UNI_UPPER) != 0;
        else if (u & UNI_DIGIT)
            c->digits++;
        else if (u & (UNI_PUNCT | UNI_SYMBOL))
            c->symbols++;
    }
}

// SPDX-License-Identifier: MIT
// unicode: NFKC, lowercase, whitespace collapsing and character classes over UTF-8, on top
// of utf8proc. See unicode.h. ASCII takes fast paths that never call into utf8proc.
#include "unicode.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int
uni_decode(const char *s, size_t n, int32_t *cp)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
    if (k <= 0) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = c;
    return (int)k;
}

static bool
all_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

int
uni_nfkc(const char *s, size_t n, struct buf *out, struct kerr *err)
{
    if (all_ascii(s, n)) { // ASCII is invariant under NFKC
        buf_append(out, s, n);
        return 0;
    }
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    if (k < 0)
        return kerr_set(err, "NFKC: %s", utf8proc_errmsg(k));
    buf_append(out, r, (size_t)k);
    free(r);
    return 0;
}

int
uni_lower(const char *s, size_t n, struct buf *out, struct kerr *err)
{
    buf_reserve(out, n);
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            buf_putc(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0)
            return kerr_set(err, "invalid UTF-8 at byte %zu", i);
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower(cp), enc);
        buf_append(out, enc, (size_t)m);
        i += (size_t)k;
    }
    return 0;
}

static bool
is_space_cp(int32_t cp)
{
    switch (cp) {
    case 0x09: case 0x0a: case 0x0b: case 0x0c: case 0x0d: case 0x20: case 0x85: case 0xa0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200a;
    }
}

void
uni_collapse_ws(const char *s, size_t n, struct buf *out)
{
    buf_reserve(out, n);
    bool pending = false, any = false;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int32_t cp;
        int k;
        if (c < 0x80) {
            cp = c;
            k = 1;
        } else {
            k = uni_decode(s + i, n - i, &cp);
        }
        if (is_space_cp(cp)) {
            pending = any;
        } else {
            if (pending)
                buf_putc(out, ' ');
            pending = false;
            any = true;
            buf_append(out, s + i, (size_t)k);
        }
        i += (size_t)k;
    }
}

unsigned
uni_class_of(int32_t cp)
{
    if (cp < 0x80) {
        if (cp >= 'a' && cp <= 'z')
            return UNI_LETTER | UNI_LOWER;
        if (cp >= 'A' && cp <= 'Z')
            return UNI_LETTER | UNI_UPPER;
        if (cp >= '0' && cp <= '9')
            return UNI_DIGIT;
    }
    if (is_space_cp(cp))
        return UNI_SPACE | (cp < 0x20 || cp == 0x85 ? UNI_CONTROL : 0);
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LT:
        return UNI_LETTER | UNI_UPPER;
    case UTF8PROC_CATEGORY_LL:
        return UNI_LETTER | UNI_LOWER;
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return UNI_LETTER;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        return UNI_MARK;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return UNI_DIGIT;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return UNI_PUNCT;
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
        return UNI_SYMBOL;
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
        return UNI_CONTROL;
    default:
        return 0;
    }
}

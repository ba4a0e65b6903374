// SPDX-License-Identifier: MIT
// transform: HTML to text, whitespace normalization, and dispatch to NFKC (common/unicode) and
// e-mail decoding (common/mime). See transform.h.
#include "transform.h"

#include "mime.h"
#include "textstats.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- html ---------------------------------------------------------------------------------

// HTML element names recognized as tags; 'B' marks block elements (become a line break).
static const struct {
    const char *name;
    char block;
} html_tags[] = {
    {"a", 0},        {"abbr", 0},     {"address", 'B'}, {"article", 'B'}, {"aside", 'B'},
    {"b", 0},        {"base", 0},     {"basefont", 0},  {"big", 0},       {"blockquote", 'B'},
    {"body", 'B'},   {"br", 'B'},     {"button", 0},    {"caption", 'B'}, {"center", 'B'},
    {"cite", 0},     {"code", 0},     {"col", 0},       {"colgroup", 0},  {"dd", 'B'},
    {"del", 0},      {"dfn", 0},      {"div", 'B'},     {"dl", 'B'},      {"dt", 'B'},
    {"em", 0},       {"font", 0},     {"footer", 'B'},  {"form", 'B'},    {"frame", 0},
    {"frameset", 0}, {"h1", 'B'},     {"h2", 'B'},      {"h3", 'B'},      {"h4", 'B'},
    {"h5", 'B'},     {"h6", 'B'},     {"head", 'B'},    {"header", 'B'},  {"hr", 'B'},
    {"html", 'B'},   {"i", 0},        {"iframe", 0},    {"img", 0},       {"input", 0},
    {"ins", 0},      {"kbd", 0},      {"label", 0},     {"li", 'B'},      {"link", 0},
    {"main", 'B'},   {"map", 0},      {"meta", 0},      {"nav", 'B'},     {"noscript", 0},
    {"o:p", 0},      {"object", 0},   {"ol", 'B'},      {"option", 'B'},  {"p", 'B'},
    {"param", 0},    {"pre", 'B'},    {"q", 0},         {"s", 0},         {"samp", 0},
    {"script", 0},   {"section", 'B'}, {"select", 0},   {"small", 0},     {"span", 0},
    {"strike", 0},   {"strong", 0},   {"style", 0},     {"sub", 0},       {"sup", 0},
    {"table", 'B'},  {"tbody", 0},    {"td", 0},        {"tfoot", 0},     {"th", 0},
    {"thead", 0},    {"title", 'B'},  {"tr", 'B'},      {"tt", 0},        {"u", 0},
    {"ul", 'B'},     {"var", 0},      {"wbr", 0},       {"xml", 0},
};

static const struct {
    const char *name;
    unsigned cp;
} entities[] = {
    {"amp", '&'},     {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},   {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"mdash", 0x2014},
    {"ndash", 0x2013}, {"hellip", 0x2026}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C},
    {"rdquo", 0x201D}, {"sbquo", 0x201A}, {"bdquo", 0x201E}, {"bull", 0x2022},  {"middot", 0xB7},
    {"euro", 0x20AC}, {"pound", 0xA3},   {"yen", 0xA5},     {"cent", 0xA2},    {"sect", 0xA7},
    {"para", 0xB6},   {"deg", 0xB0},     {"plusmn", 0xB1},  {"times", 0xD7},   {"divide", 0xF7},
    {"laquo", 0xAB},  {"raquo", 0xBB},   {"iexcl", 0xA1},   {"iquest", 0xBF},  {"shy", 0xAD},
    {"eacute", 0xE9}, {"egrave", 0xE8},  {"agrave", 0xE0},  {"aacute", 0xE1},  {"uuml", 0xFC},
    {"ouml", 0xF6},   {"auml", 0xE4},    {"szlig", 0xDF},   {"ccedil", 0xE7},  {"ntilde", 0xF1},
    {"frac12", 0xBD}, {"frac14", 0xBC},  {"ensp", 0x2002},  {"emsp", 0x2003},  {"thinsp", 0x2009},
};

static void
put_utf8(struct buf *out, unsigned cp)
{
    char b[4];
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        buf_putc(out, (char)cp);
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        buf_append(out, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        buf_append(out, b, 3);
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        buf_append(out, b, 4);
    }
}

// Decodes the character reference at s[i] == '&'; returns its length (0 = not one).
static size_t
entity(const char *s, size_t n, size_t i, struct buf *out)
{
    size_t j = i + 1;
    if (j < n && s[j] == '#') {
        j++;
        bool hex = j < n && (s[j] == 'x' || s[j] == 'X');
        j += hex;
        unsigned long v = 0;
        size_t st = j;
        while (j < n && j - st < 8) {
            char c = s[j];
            int d = c >= '0' && c <= '9' ? c - '0'
                    : hex && (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10
                                                                 : -1;
            if (d < 0)
                break;
            v = v * (hex ? 16 : 10) + (unsigned long)d;
            j++;
        }
        if (j == st)
            return 0;
        if (j < n && s[j] == ';')
            j++;
        put_utf8(out, v > 0x10FFFF ? 0xFFFD : (unsigned)v);
        return j - i;
    }
    size_t st = j;
    while (j < n && j - st < 10 &&
           (((s[j] | 32) >= 'a' && (s[j] | 32) <= 'z') || (s[j] >= '0' && s[j] <= '9')))
        j++;
    if (j >= n || s[j] != ';')
        return 0;
    for (size_t k = 0; k < KILN_ARRAY_LEN(entities); k++)
        if (strlen(entities[k].name) == j - st && memcmp(entities[k].name, s + st, j - st) == 0) {
            put_utf8(out, entities[k].cp);
            return j + 1 - i;
        }
    return 0;
}

// If s[i] == '<' starts a known tag, returns its table index and sets *end past '>' and
// *closing; -1 otherwise.
static int
tag_at(const char *s, size_t n, size_t i, size_t *end, bool *closing)
{
    size_t j = i + 1;
    *closing = j < n && s[j] == '/';
    j += *closing;
    size_t st = j;
    while (j < n && j - st < 12 &&
           (((s[j] | 32) >= 'a' && (s[j] | 32) <= 'z') || (s[j] >= '0' && s[j] <= '9') ||
            s[j] == ':'))
        j++;
    if (j == st || j >= n || !(s[j] == '>' || s[j] == ' ' || s[j] == '/' || s[j] == '\t' ||
                                s[j] == '\n' || s[j] == '\r'))
        return -1;
    int idx = -1;
    for (size_t k = 0; k < KILN_ARRAY_LEN(html_tags) && idx < 0; k++) {
        size_t len = strlen(html_tags[k].name);
        if (len != j - st)
            continue;
        size_t m = 0;
        while (m < len && (s[st + m] | 32) == html_tags[k].name[m])
            m++;
        if (m == len)
            idx = (int)k;
    }
    if (idx < 0)
        return -1;
    // Find '>' outside quoted attribute values.
    char q = 0;
    while (j < n) {
        char c = s[j];
        if (q) {
            if (c == q)
                q = 0;
        } else if (c == '"' || c == '\'') {
            q = c;
        } else if (c == '>') {
            *end = j + 1;
            return idx;
        }
        j++;
    }
    return -1;
}

static const char *
find_ci(const char *s, size_t n, size_t from, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = from; i + k <= n; i++) {
        size_t m = 0;
        while (m < k && (s[i + m] | 32) == needle[m])
            m++;
        if (m == k)
            return s + i;
    }
    return NULL;
}

void
transform_html(const char *s, size_t n, struct buf *out)
{
    buf_reserve(out, n);
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '<') {
            if (i + 3 < n && memcmp(s + i, "<!--", 4) == 0) {
                const char *e = find_ci(s, n, i + 4, "-->");
                i = e ? (size_t)(e - s) + 3 : n;
                continue;
            }
            if (i + 2 < n && (s[i + 1] == '!' || s[i + 1] == '?')) { // <!DOCTYPE>, <?xml?>
                const char *e = memchr(s + i, '>', n - i);
                if (e && (s[i + 1] == '?' || find_ci(s, (size_t)(e - s), i, "<!doctype"))) {
                    i = (size_t)(e - s) + 1;
                    continue;
                }
            }
            size_t end;
            bool closing;
            int t = tag_at(s, n, i, &end, &closing);
            if (t >= 0) {
                const char *name = html_tags[t].name;
                if (!closing && (strcmp(name, "script") == 0 || strcmp(name, "style") == 0 ||
                                 strcmp(name, "head") == 0)) {
                    char close[16];
                    snprintf(close, sizeof close, "</%s", name);
                    const char *e = find_ci(s, n, end, close);
                    const char *g = e ? memchr(e, '>', (size_t)(s + n - e)) : NULL;
                    end = g ? (size_t)(g - s) + 1 : n;
                }
                if (html_tags[t].block && out->len && out->p[out->len - 1] != '\n')
                    buf_putc(out, '\n');
                i = end;
                continue;
            }
        } else if (c == '&') {
            size_t k = entity(s, n, i, out);
            if (k) {
                i += k;
                continue;
            }
        }
        buf_putc(out, c);
        i++;
    }
}

// ---- whitespace ---------------------------------------------------------------------------

void
transform_whitespace(const char *s, size_t n, struct buf *out)
{
    buf_reserve(out, n);
    int newlines = 0;      // pending line breaks
    bool space = false;    // pending space
    bool any = false;      // text written yet
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int32_t cp;
        int k = 1;
        if (c < 0x80)
            cp = c;
        else
            k = uni_decode(s + i, n - i, &cp);
        if (cp == '\n' || cp == '\r' || cp == 0x2028 || cp == 0x2029 || cp == 0x0B || cp == 0x0C ||
            cp == 0x85) {
            if (cp == '\r' && i + 1 < n && s[i + 1] == '\n')
                k = 2;
            newlines++;
            space = false;
        } else if (ts_is_space(cp)) {
            space = true;
        } else {
            if (any) {
                if (newlines)
                    buf_append(out, "\n\n", newlines > 1 ? 2 : 1);
                else if (space)
                    buf_putc(out, ' ');
            }
            newlines = 0;
            space = false;
            any = true;
            buf_append(out, s + i, (size_t)k);
        }
        i += (size_t)k;
    }
}

// ---- dispatch -----------------------------------------------------------------------------

int
transform_apply(enum transform_id t, const char *in, size_t n, struct buf *out, struct kerr *err)
{
    out->len = 0;
    buf_reserve(out, n);
    switch (t) {
    case TR_EMAIL:
        if (!mime_email_text(in, n, out))
            buf_append(out, in, n);
        break;
    case TR_HTML:
        transform_html(in, n, out);
        break;
    case TR_NFKC:
        if (uni_nfkc(in, n, out, err) < 0)
            return -1;
        break;
    case TR_WHITESPACE:
        transform_whitespace(in, n, out);
        break;
    case TR_COUNT:
        break;
    }
    return !(out->len == n && memcmp(out->p, in, n) == 0);
}

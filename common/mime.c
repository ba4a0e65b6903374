// SPDX-License-Identifier: MIT
// mime: e-mail headers, transfer encodings, multipart bodies and charsets (see mime.h).
#include "mime.h"

#include "json.h"

#include <string.h>

#define MIME_MAX_DEPTH 8

// ---- small helpers ------------------------------------------------------------------------

static int
lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool
ci_eq(const char *a, size_t n, const char *b)
{
    size_t k = strlen(b);
    if (n != k)
        return false;
    for (size_t i = 0; i < k; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool
ci_prefix(const char *a, size_t n, const char *b)
{
    size_t k = strlen(b);
    return n >= k && ci_eq(a, k, b);
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// End of the line starting at i (index of '\n' or n) and the start of the next line.
static size_t
line_end(const char *s, size_t n, size_t i, size_t *next)
{
    const char *nl = memchr(s + i, '\n', n - i);
    size_t e = nl ? (size_t)(nl - s) : n;
    *next = nl ? e + 1 : n;
    if (e > i && s[e - 1] == '\r')
        e--;
    return e;
}

// ---- transfer encodings -------------------------------------------------------------------

void
mime_qp_decode(const char *s, size_t n, struct buf *out)
{
    buf_reserve(out, n);
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c != '=') {
            // Trailing whitespace before a line break is transport padding.
            if ((c == ' ' || c == '\t')) {
                size_t j = i;
                while (j < n && (s[j] == ' ' || s[j] == '\t'))
                    j++;
                if (j == n || s[j] == '\n' || (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')) {
                    i = j;
                    continue;
                }
            }
            buf_putc(out, c);
            i++;
            continue;
        }
        // Soft line break: '=' then optional whitespace then end of line.
        size_t j = i + 1;
        while (j < n && (s[j] == ' ' || s[j] == '\t'))
            j++;
        if (j == n) {
            i = j;
            continue;
        }
        if (s[j] == '\n' || (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')) {
            i = j + (s[j] == '\r' ? 2 : 1);
            continue;
        }
        int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (h >= 0 && l >= 0) {
            buf_putc(out, (char)(h * 16 + l));
            i += 3;
        } else {
            buf_putc(out, '=');
            i++;
        }
    }
}

static int
b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

size_t
mime_base64_decode(const char *s, size_t n, struct buf *out)
{
    size_t before = out->len;
    buf_reserve(out, n / 4 * 3 + 3);
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        int v = b64val(c);
        if (v < 0)
            break; // '=' padding or garbage ends the data
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(out, (char)((acc >> bits) & 0xFF));
        }
    }
    return out->len - before;
}

// ---- charsets -----------------------------------------------------------------------------

// windows-1252 0x80..0x9F (0 = undefined, kept as U+FFFD).
static const unsigned short cp1252[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

static void
put_cp(struct buf *out, unsigned cp)
{
    char b[4];
    if (cp < 0x80) {
        buf_putc(out, (char)cp);
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        buf_append(out, b, 2);
    } else {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        buf_append(out, b, 3);
    }
}

void
mime_charset_to_utf8(const char *cs, const char *s, size_t n, struct buf *out)
{
    size_t cl = cs ? strlen(cs) : 0;
    bool latin1 = cs && (ci_eq(cs, cl, "iso-8859-1") || ci_eq(cs, cl, "latin1") ||
                         ci_eq(cs, cl, "iso-8859-15") || ci_eq(cs, cl, "iso_8859-1") ||
                         ci_eq(cs, cl, "l1"));
    bool win = cs && (ci_eq(cs, cl, "windows-1252") || ci_eq(cs, cl, "cp1252") ||
                      ci_eq(cs, cl, "x-cp1252"));
    if (!latin1 && !win) {
        utf8_repair(s, n, out);
        return;
    }
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (win && c >= 0x80 && c < 0xA0)
            put_cp(out, cp1252[c - 0x80] ? cp1252[c - 0x80] : 0xFFFD);
        else
            put_cp(out, c);
    }
}

// ---- headers ------------------------------------------------------------------------------

struct hdr {
    const char *name, *val; // val spans folded lines (raw)
    size_t nlen, vlen;
};

static bool
is_field_name_char(unsigned char c)
{
    return c > 32 && c < 127 && c != ':';
}

// Next header field from pos; false at the blank line (pos then points past it) or end.
static bool
hdr_next(const char *s, size_t n, size_t *pos, struct hdr *h)
{
    size_t i = *pos, next;
    if (i >= n)
        return false;
    size_t e = line_end(s, n, i, &next);
    if (e == i) { // blank line: end of headers
        *pos = next;
        return false;
    }
    size_t k = i;
    while (k < e && is_field_name_char((unsigned char)s[k]))
        k++;
    h->name = s + i;
    h->nlen = k - i;
    size_t v = k < e && s[k] == ':' ? k + 1 : e;
    while (v < e && (s[v] == ' ' || s[v] == '\t'))
        v++;
    h->val = s + v;
    // Continuation lines start with whitespace.
    size_t vend = e;
    while (next < n && (s[next] == ' ' || s[next] == '\t')) {
        size_t nn;
        vend = line_end(s, n, next, &nn);
        next = nn;
    }
    h->vlen = vend > v ? vend - v : 0;
    *pos = next;
    return true;
}

bool
mime_looks_like_email(const char *s, size_t n)
{
    size_t pos = 0, next;
    if (ci_prefix(s, n, "From ")) // mbox separator line
        line_end(s, n, 0, &pos);
    int fields = 0;
    while (pos < n) {
        size_t e = line_end(s, n, pos, &next);
        if (e == pos)
            break;
        if (s[pos] == ' ' || s[pos] == '\t') {
            if (!fields)
                return false;
        } else {
            size_t k = pos;
            while (k < e && is_field_name_char((unsigned char)s[k]))
                k++;
            if (k == pos || k >= e || s[k] != ':')
                return false;
            fields++;
        }
        pos = next;
    }
    return fields >= 1;
}

// Value of parameter `name` in a header value like `text/plain; charset="utf-8"`.
static bool
hdr_param(const char *v, size_t n, const char *name, struct buf *out)
{
    size_t i = 0, k = strlen(name);
    while (i < n) {
        const char *semi = memchr(v + i, ';', n - i);
        if (!semi)
            return false;
        i = (size_t)(semi - v) + 1;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n'))
            i++;
        size_t e = i + k;
        while (e < n && (v[e] == ' ' || v[e] == '\t'))
            e++;
        if (e < n && ci_prefix(v + i, n - i, name) && v[e] == '=') {
            i = e + 1;
            while (i < n && (v[i] == ' ' || v[i] == '\t')) // "boundary= \"x\"" occurs
                i++;
            out->len = 0;
            if (i < n && v[i] == '"') {
                i++;
                while (i < n && v[i] != '"') {
                    if (v[i] == '\\' && i + 1 < n)
                        i++;
                    buf_putc(out, v[i++]);
                }
            } else {
                while (i < n && v[i] != ';' && v[i] != ' ' && v[i] != '\t' && v[i] != '\r' &&
                       v[i] != '\n')
                    buf_putc(out, v[i++]);
            }
            if (!out->p)
                buf_reserve(out, 1);
            return true;
        }
    }
    return false;
}

void
mime_header_decode(const char *s, size_t n, struct buf *out)
{
    struct buf raw = {0}, cs = {0};
    size_t i = 0;
    bool last_encoded = false, any = false;
    size_t pending_ws = 0; // whitespace held back (dropped between two encoded words)
    while (i < n) {
        if (s[i] == '=' && i + 1 < n && s[i + 1] == '?') {
            // =?charset?E?text?=
            const char *q1 = memchr(s + i + 2, '?', n - i - 2);
            if (q1 && (size_t)(q1 - s) + 2 < n && q1[2] == '?') {
                char enc = (char)lower((unsigned char)q1[1]);
                const char *text = q1 + 3;
                const char *endw = NULL;
                for (const char *p = text; p + 1 < s + n; p++)
                    if (p[0] == '?' && p[1] == '=') {
                        endw = p;
                        break;
                    }
                if (endw && (enc == 'b' || enc == 'q')) {
                    cs.len = 0;
                    buf_append(&cs, s + i + 2, (size_t)(q1 - (s + i + 2)));
                    char *star = memchr(cs.p, '*', cs.len); // RFC 2231 language suffix
                    if (star)
                        *star = 0;
                    raw.len = 0;
                    if (enc == 'b') {
                        mime_base64_decode(text, (size_t)(endw - text), &raw);
                    } else {
                        for (const char *p = text; p < endw; p++) {
                            int h, l;
                            if (*p == '_')
                                buf_putc(&raw, ' ');
                            else if (*p == '=' && p + 2 < endw + 1 &&
                                     (h = hexval((unsigned char)p[1])) >= 0 &&
                                     (l = hexval((unsigned char)p[2])) >= 0)
                                buf_putc(&raw, (char)(h * 16 + l)), p += 2;
                            else
                                buf_putc(&raw, *p);
                        }
                    }
                    if (!last_encoded && pending_ws && any)
                        buf_putc(out, ' ');
                    any = true;
                    mime_charset_to_utf8(cs.p, raw.p ? raw.p : "", raw.len, out);
                    pending_ws = 0;
                    last_encoded = true;
                    i = (size_t)(endw - s) + 2;
                    continue;
                }
            }
        }
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
            pending_ws++;
            i++;
            continue;
        }
        if (pending_ws && any)
            buf_putc(out, ' ');
        pending_ws = 0;
        last_encoded = false;
        any = true;
        // Copy one UTF-8 sequence (or byte) of plain text.
        size_t k = 1;
        while (i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80)
            k++;
        utf8_repair(s + i, k, out);
        i += k;
    }
    buf_free(&raw);
    buf_free(&cs);
}

// ---- bodies -------------------------------------------------------------------------------

struct part_info {
    char type[64];     // lower-case "text/plain"
    char charset[64];
    char cte[32];      // lower-case transfer encoding
    struct buf boundary;
    bool attachment;
};

static void
copy_lower(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    while (k < n && k + 1 < cap && s[k] != ';' && s[k] != ' ' && s[k] != '\t' && s[k] != '\r' &&
           s[k] != '\n')
        dst[k] = (char)lower((unsigned char)s[k]), k++;
    dst[k] = 0;
}

// Parses the headers at s[pos..]; fills info (and the subject for the top level). Returns the
// offset of the body.
static size_t
parse_headers(const char *s, size_t n, size_t pos, struct part_info *pi, struct buf *subject)
{
    struct hdr h;
    struct buf tmp = {0};
    strcpy(pi->type, "text/plain");
    pi->charset[0] = pi->cte[0] = 0;
    pi->attachment = false;
    pi->boundary.len = 0;
    if (ci_prefix(s + pos, n - pos, "From ")) {
        size_t next;
        line_end(s, n, pos, &next);
        pos = next;
    }
    while (hdr_next(s, n, &pos, &h)) {
        if (ci_eq(h.name, h.nlen, "content-type")) {
            copy_lower(pi->type, sizeof pi->type, h.val, h.vlen);
            if (hdr_param(h.val, h.vlen, "charset", &tmp))
                copy_lower(pi->charset, sizeof pi->charset, tmp.p, tmp.len);
            if (hdr_param(h.val, h.vlen, "boundary", &tmp)) {
                pi->boundary.len = 0;
                buf_append(&pi->boundary, tmp.p, tmp.len);
            }
        } else if (ci_eq(h.name, h.nlen, "content-transfer-encoding")) {
            copy_lower(pi->cte, sizeof pi->cte, h.val, h.vlen);
        } else if (ci_eq(h.name, h.nlen, "content-disposition")) {
            pi->attachment = ci_prefix(h.val, h.vlen, "attachment");
        } else if (subject && ci_eq(h.name, h.nlen, "subject") && subject->len == 0) {
            mime_header_decode(h.val, h.vlen, subject);
            if (!subject->p)
                buf_reserve(subject, 1);
        }
    }
    buf_free(&tmp);
    return pos;
}

static void
append_sep(struct buf *out)
{
    if (out->len == 0)
        return;
    while (out->len && out->p[out->len - 1] == '\n')
        out->len--;
    buf_append(out, "\n\n", 2);
}

// Decodes a leaf body per its transfer encoding and charset, appending UTF-8 text.
static void
leaf_text(const struct part_info *pi, const char *s, size_t n, struct buf *out)
{
    struct buf raw = {0};
    const char *p = s;
    size_t len = n;
    if (strcmp(pi->cte, "quoted-printable") == 0) {
        mime_qp_decode(s, n, &raw);
        p = raw.p ? raw.p : "";
        len = raw.len;
    } else if (strcmp(pi->cte, "base64") == 0) {
        mime_base64_decode(s, n, &raw);
        p = raw.p ? raw.p : "";
        len = raw.len;
    }
    append_sep(out);
    mime_charset_to_utf8(pi->charset[0] ? pi->charset : NULL, p, len, out);
    buf_free(&raw);
}

static void body_text(const struct part_info *pi, const char *s, size_t n, int depth,
                      struct buf *out);

// Splits a multipart body on its boundary and handles each part.
static void
multipart_text(const struct part_info *pi, const char *s, size_t n, int depth, struct buf *out)
{
    const char *b = pi->boundary.p;
    size_t bl = pi->boundary.len;
    // Part spans.
    size_t starts[256], ends[256], np = 0;
    size_t pos = 0, next, cur = (size_t)-1;
    while (pos < n) {
        size_t e = line_end(s, n, pos, &next);
        if (e - pos >= bl + 2 && s[pos] == '-' && s[pos + 1] == '-' &&
            memcmp(s + pos + 2, b, bl) == 0) {
            bool closing = e - pos >= bl + 4 && s[pos + bl + 2] == '-' && s[pos + bl + 3] == '-';
            if (cur != (size_t)-1 && np < 256) {
                starts[np] = cur;
                // The line break before the delimiter belongs to it.
                size_t pe = pos;
                if (pe > cur && s[pe - 1] == '\n')
                    pe--;
                if (pe > cur && s[pe - 1] == '\r')
                    pe--;
                ends[np++] = pe;
            }
            cur = closing ? (size_t)-1 : next;
            if (closing)
                break;
        }
        pos = next;
    }
    if (cur != (size_t)-1 && np < 256) { // unterminated: the last part runs to the end
        starts[np] = cur;
        ends[np++] = n;
    }
    if (np == 0) { // no delimiter line matches the boundary: keep the body as plain text
        struct part_info plain = *pi;
        strcpy(plain.type, "text/plain");
        leaf_text(&plain, s, n, out);
        return;
    }
    bool alternative = strcmp(pi->type, "multipart/alternative") == 0;
    struct part_info sub;
    memset(&sub, 0, sizeof sub);
    if (alternative) {
        // Prefer text/plain, then text/html, then anything multipart.
        const char *prefs[] = {"text/plain", "text/html", "multipart/"};
        for (size_t k = 0; k < 3; k++)
            for (size_t i = 0; i < np; i++) {
                size_t body = parse_headers(s, ends[i], starts[i], &sub, NULL);
                if (!sub.attachment && strncmp(sub.type, prefs[k], strlen(prefs[k])) == 0) {
                    body_text(&sub, s + body, ends[i] - body, depth + 1, out);
                    buf_free(&sub.boundary);
                    return;
                }
            }
    } else {
        for (size_t i = 0; i < np; i++) {
            size_t body = parse_headers(s, ends[i], starts[i], &sub, NULL);
            if (!sub.attachment)
                body_text(&sub, s + body, ends[i] - body, depth + 1, out);
        }
    }
    buf_free(&sub.boundary);
}

static void
body_text(const struct part_info *pi, const char *s, size_t n, int depth, struct buf *out)
{
    if (depth > MIME_MAX_DEPTH)
        return;
    if (strncmp(pi->type, "multipart/", 10) == 0 && pi->boundary.len) {
        multipart_text(pi, s, n, depth, out);
    } else if (strncmp(pi->type, "text/", 5) == 0 || strcmp(pi->type, "message/rfc822") == 0) {
        leaf_text(pi, s, n, out);
    }
}

bool
mime_email_text(const char *s, size_t n, struct buf *out)
{
    if (!mime_looks_like_email(s, n))
        return false;
    struct part_info pi;
    memset(&pi, 0, sizeof pi);
    struct buf subject = {0}, body = {0};
    size_t pos = parse_headers(s, n, 0, &pi, &subject);
    body_text(&pi, s + pos, n - pos, 0, &body);
    if (subject.len) {
        buf_puts(out, "Subject: ");
        buf_append(out, subject.p, subject.len);
        buf_putc(out, '\n');
        if (body.len)
            buf_putc(out, '\n');
    }
    buf_append(out, body.p ? body.p : "", body.len);
    if (!out->p)
        buf_reserve(out, 1);
    buf_free(&subject);
    buf_free(&body);
    buf_free(&pi.boundary);
    return true;
}

// SPDX-License-Identifier: MIT
// json_write: the writing half of the json module (see json.h) — string escaping, deterministic
// numbers, and a streaming writer with automatic commas. The parser lives in json.c.
#include "json.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Bytes that must be escaped inside a JSON string: '"', '\\' and C0 controls.
static const unsigned char needs_escape[256] = {
    ['"'] = 1, ['\\'] = 1,
    [0] = 1, [1] = 1, [2] = 1, [3] = 1, [4] = 1, [5] = 1, [6] = 1, [7] = 1,
    [8] = 1, [9] = 1, [10] = 1, [11] = 1, [12] = 1, [13] = 1, [14] = 1, [15] = 1,
    [16] = 1, [17] = 1, [18] = 1, [19] = 1, [20] = 1, [21] = 1, [22] = 1, [23] = 1,
    [24] = 1, [25] = 1, [26] = 1, [27] = 1, [28] = 1, [29] = 1, [30] = 1, [31] = 1,
};

void
json_write_str(struct buf *out, const char *s, size_t n)
{
    // Worst case 6 bytes per input byte plus quotes.
    buf_reserve(out, n + 2);
    out->p[out->len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && !needs_escape[(unsigned char)s[j]])
            j++;
        buf_append(out, s + i, j - i);
        if (j == n)
            break;
        unsigned char c = (unsigned char)s[j];
        char esc[8];
        switch (c) {
        case '"': memcpy(esc, "\\\"", 3); break;
        case '\\': memcpy(esc, "\\\\", 3); break;
        case '\n': memcpy(esc, "\\n", 3); break;
        case '\r': memcpy(esc, "\\r", 3); break;
        case '\t': memcpy(esc, "\\t", 3); break;
        case '\b': memcpy(esc, "\\b", 3); break;
        case '\f': memcpy(esc, "\\f", 3); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c); break;
        }
        buf_puts(out, esc);
        i = j + 1;
    }
    buf_putc(out, '"');
}

void
json_write_double(struct buf *out, double x)
{
    if (!isfinite(x)) {
        buf_puts(out, "null");
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (prec == 17 || strtod(tmp, NULL) == x)
            break;
    }
    buf_puts(out, tmp);
}

void
json_write_int(struct buf *out, int64_t x)
{
    buf_printf(out, "%" PRId64, x);
}

void
json_writer_init(struct json_writer *w, struct buf *out)
{
    w->out = out;
    w->depth = 0;
    w->first[0] = true;
    w->after_key = false;
}

// Before any value or key: a comma unless first at this depth or right after a key.
static void
sep(struct json_writer *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        buf_putc(w->out, ',');
    w->first[w->depth] = false;
}

static void
open_(struct json_writer *w, char c)
{
    sep(w);
    buf_putc(w->out, c);
    assert(w->depth < JSON_MAX_DEPTH);
    w->first[++w->depth] = true;
}

static void
close_(struct json_writer *w, char c)
{
    assert(w->depth > 0);
    w->depth--;
    buf_putc(w->out, c);
}

void jw_obj_begin(struct json_writer *w) { open_(w, '{'); }
void jw_obj_end(struct json_writer *w) { close_(w, '}'); }
void jw_arr_begin(struct json_writer *w) { open_(w, '['); }
void jw_arr_end(struct json_writer *w) { close_(w, ']'); }

void
jw_key(struct json_writer *w, const char *key)
{
    sep(w);
    json_write_str(w->out, key, strlen(key));
    buf_putc(w->out, ':');
    w->after_key = true;
}

void
jw_str(struct json_writer *w, const char *s)
{
    jw_strn(w, s, strlen(s));
}

void
jw_strn(struct json_writer *w, const char *s, size_t n)
{
    sep(w);
    json_write_str(w->out, s, n);
}

void
jw_int(struct json_writer *w, int64_t x)
{
    sep(w);
    json_write_int(w->out, x);
}

void
jw_uint(struct json_writer *w, uint64_t x)
{
    sep(w);
    buf_printf(w->out, "%" PRIu64, x);
}

void
jw_double(struct json_writer *w, double x)
{
    sep(w);
    json_write_double(w->out, x);
}

void
jw_bool(struct json_writer *w, bool x)
{
    sep(w);
    buf_puts(w->out, x ? "true" : "false");
}

void
jw_null(struct json_writer *w)
{
    sep(w);
    buf_puts(w->out, "null");
}

void
jw_raw(struct json_writer *w, const char *raw, size_t n)
{
    sep(w);
    buf_append(w->out, raw, n);
}

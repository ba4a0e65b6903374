// SPDX-License-Identifier: MIT
// tok_template: parse a template once into literal and field parts; expand per record.
// See tok_template.h.
#include "tok_template.h"

#include <stdlib.h>
#include <string.h>

struct tpl_part {
    bool field;
    char *s; // literal text (escapes resolved) or field name
    size_t n;
};

struct tok_tpl {
    struct tpl_part *parts;
    size_t n;
};

static void
tpl_push(struct tok_tpl *t, bool field, const char *s, size_t n)
{
    t->parts = xrealloc(t->parts, (t->n + 1) * sizeof *t->parts);
    t->parts[t->n++] = (struct tpl_part){field, xstrndup(s, n), n};
}

struct tok_tpl *
tok_tpl_new(const char *text, struct kerr *err)
{
    struct tok_tpl *t = xcalloc(1, sizeof *t);
    struct buf lit = {0};
    for (size_t i = 0; text[i];) {
        char c = text[i];
        if (c == '\\' && text[i + 1]) {
            char e = text[i + 1];
            buf_putc(&lit, e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
            i += 2;
        } else if ((c == '{' && text[i + 1] == '{') || (c == '}' && text[i + 1] == '}')) {
            buf_putc(&lit, c);
            i += 2;
        } else if (c == '{') {
            const char *end = strchr(text + i + 1, '}');
            if (!end || end == text + i + 1) {
                kerr_set(err, "template '%s': %s at column %zu", text,
                         end ? "empty field name {}" : "unclosed '{'", i + 1);
                goto fail;
            }
            if (lit.len)
                tpl_push(t, false, lit.p, lit.len);
            buf_reset(&lit);
            tpl_push(t, true, text + i + 1, (size_t)(end - text - i - 1));
            i = (size_t)(end - text) + 1;
        } else if (c == '}') {
            kerr_set(err, "template '%s': lone '}' at column %zu (write '}}')", text, i + 1);
            goto fail;
        } else {
            buf_putc(&lit, c);
            i++;
        }
    }
    if (lit.len)
        tpl_push(t, false, lit.p, lit.len);
    buf_free(&lit);
    return t;
fail:
    buf_free(&lit);
    tok_tpl_del(t);
    return NULL;
}

void
tok_tpl_del(struct tok_tpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->parts[i].s);
    free(t->parts);
    free(t);
}

bool
tok_tpl_uses(const struct tok_tpl *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->parts[i].field && strcmp(t->parts[i].s, name) == 0)
            return true;
    return false;
}

static const char *const type_names[] = {"null",   "boolean", "boolean", "number",
                                         "string", "array",   "object"};

int
tok_tpl_expand(const struct tok_tpl *t, const struct json_obj *o, const char *override_key,
               const char *override_val, struct buf *out, struct kerr *err)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct tpl_part *p = &t->parts[i];
        if (!p->field) {
            buf_append(out, p->s, p->n);
            continue;
        }
        if (override_key && strcmp(p->s, override_key) == 0) {
            buf_puts(out, override_val);
            continue;
        }
        struct json_val v;
        if (!json_obj_path(o, p->s, &v))
            return kerr_set(err, "no field '%s'", p->s);
        switch (v.type) {
        case JSON_STRING: json_str(&v, out); break;
        case JSON_NUMBER:
        case JSON_TRUE:
        case JSON_FALSE: buf_append(out, v.raw, v.raw_len); break;
        default:
            return kerr_set(err, "field '%s' is %s %s (need a string, number or boolean)", p->s,
                            v.type == JSON_ARRAY ? "an" : "a", type_names[v.type]);
        }
    }
    return 0;
}

// SPDX-License-Identifier: MIT
// fuzz_json: libFuzzer target for the json parser. Any input must be handled without a crash
// or sanitizer report, and these properties must hold (abort otherwise):
//   - json_parse_value and json_obj_parse agree on objects;
//   - an accepted document can be walked entirely (iteration, unescaping, numbers), and every
//     string re-encoded with json_write_str parses back to the same bytes;
//   - json_obj_rewrite without edits returns the object's bytes; with edits (replace the first
//     field, delete the second, add one) it emits an object that parses again, with the
//     untouched fields byte-identical and in order;
//   - utf8_repair output is valid UTF-8, and unchanged when the input was valid.
#include "json.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                             \
    do {                                                                                       \
        if (!(c))                                                                              \
            abort();                                                                           \
    } while (0)

static void
walk(const struct json_val *v, int depth)
{
    REQUIRE(depth <= JSON_MAX_DEPTH);
    struct json_error e;
    struct json_val again;
    // Every value inside a valid document is itself a valid document.
    REQUIRE(json_parse_value(v->raw, v->raw_len, &again, &e) == 0);
    REQUIRE(again.type == v->type && again.raw_len == v->raw_len);
    if (v->type == JSON_STRING) {
        struct buf u = {0}, w = {0};
        json_str(v, &u);
        REQUIRE(utf8_valid_prefix(u.p ? u.p : "", u.len) == u.len);
        REQUIRE(json_str_eq(v, u.p ? u.p : "", u.len));
        json_write_str(&w, u.p ? u.p : "", u.len);
        struct json_val s;
        REQUIRE(json_parse_value(w.p, w.len, &s, &e) == 0 && json_str_eq(&s, u.p ? u.p : "", u.len));
        buf_free(&u);
        buf_free(&w);
    } else if (v->type == JSON_NUMBER) {
        int64_t i;
        double d;
        if (json_int(v, &i) == 0)
            REQUIRE(json_double(v, &d) == 0 && (double)i == d);
    } else if (v->type == JSON_OBJECT || v->type == JSON_ARRAY) {
        struct json_iter it;
        json_iter_init(&it, v);
        size_t n = 0;
        while (json_iter_next(&it)) {
            REQUIRE(it.index == n);
            if (v->type == JSON_OBJECT) {
                struct buf k = {0};
                json_unescape(it.key, it.key_len, &k);
                struct json_val m;
                REQUIRE(json_val_member(v, k.p ? k.p : "", k.len, &m) && m.raw == it.val.raw);
                buf_free(&k);
            }
            walk(&it.val, depth + 1);
            n++;
        }
    }
}

static void
check_rewrite(const struct json_obj *o)
{
    struct buf out = {0}, k0 = {0}, k1 = {0};
    json_obj_rewrite(o, NULL, 0, &out);
    REQUIRE(out.len == o->len && memcmp(out.p ? out.p : "", o->src, o->len) == 0);
    struct json_edit ed[3];
    size_t ne = 0;
    if (o->n > 0) {
        json_unescape(o->fields[0].key, o->fields[0].key_len, &k0);
        ed[ne++] = (struct json_edit){k0.p ? k0.p : "", "[1,\"x\"]", 7};
    }
    if (o->n > 1) {
        json_unescape(o->fields[1].key, o->fields[1].key_len, &k1);
        ed[ne++] = (struct json_edit){k1.p ? k1.p : "", NULL, 0};
    }
    ed[ne++] = (struct json_edit){"fuzz\xC3\xA9\n", "null", 4};
    // Keys with NUL bytes cannot be named by an edit (C strings): skip those documents.
    if ((o->n > 0 && strlen(ed[0].key) != k0.len) || (o->n > 1 && strlen(ed[1].key) != k1.len))
        goto done;
    buf_reset(&out);
    json_obj_rewrite(o, ed, ne, &out);
    struct json_obj r = {0};
    struct json_error e;
    REQUIRE(json_obj_parse(&r, out.p, out.len, &e) == 0);
    // Expected fields: per original field, the last edit naming its key decides; untouched
    // fields are byte-identical, and everything stays in order.
    size_t j = 0;
    bool fuzz_key_existed = false;
    for (size_t i = 0; i < o->n; i++) {
        const struct json_field *f = &o->fields[i];
        struct buf k = {0};
        json_unescape(f->key, f->key_len, &k);
        const struct json_edit *last = NULL;
        for (size_t x = 0; x < ne; x++)
            if (strlen(ed[x].key) == k.len && memcmp(ed[x].key, k.p ? k.p : "", k.len) == 0)
                last = &ed[x];
        fuzz_key_existed |= last == &ed[ne - 1];
        buf_free(&k);
        if (last && !last->raw)
            continue;
        REQUIRE(j < r.n);
        const struct json_field *g = &r.fields[j++];
        REQUIRE(g->key_len == f->key_len && memcmp(g->key, f->key, f->key_len) == 0);
        if (!last)
            REQUIRE(g->val.raw_len == f->val.raw_len &&
                    memcmp(g->val.raw, f->val.raw, f->val.raw_len) == 0);
        else
            REQUIRE(g->val.raw_len == last->raw_len &&
                    memcmp(g->val.raw, last->raw, last->raw_len) == 0);
    }
    REQUIRE(r.n == j + (fuzz_key_existed ? 0 : 1));
    json_obj_free(&r);
done:
    buf_free(&out);
    buf_free(&k0);
    buf_free(&k1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // An exact copy: any read past the end is an ASan report.
    char *s = malloc(size ? size : 1);
    memcpy(s, data, size);
    struct json_error e;
    struct json_val v;
    int rc = json_parse_value(s, size, &v, &e);
    if (rc == 0)
        walk(&v, 0);
    else
        REQUIRE(e.offset <= size && e.msg[0]);

    struct json_obj o = {0};
    int rc2 = json_obj_parse(&o, s, size, &e);
    if (rc == 0 && v.type == JSON_OBJECT)
        REQUIRE(rc2 == 0);
    else
        REQUIRE(rc2 == -1);
    if (rc2 == 0) {
        REQUIRE(o.src == v.raw && o.len == v.raw_len);
        check_rewrite(&o);
    }
    json_obj_free(&o);

    struct buf r = {0};
    size_t bad = utf8_repair(s, size, &r);
    REQUIRE(utf8_valid_prefix(r.p ? r.p : "", r.len) == r.len);
    REQUIRE((bad == 0) == (utf8_valid_prefix(s, size) == size));
    if (bad == 0)
        REQUIRE(r.len == size && memcmp(r.p ? r.p : "", s, size) == 0);
    buf_free(&r);
    free(s);
    return 0;
}

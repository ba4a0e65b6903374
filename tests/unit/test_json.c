// SPDX-License-Identifier: MIT
// Unit tests for the json parser (common/json.c): validation with error offsets and messages,
// the top-level index, dotted paths, iteration, unescaping, numbers, rewriting, UTF-8 helpers,
// a randomized comparison of the vectorized string scanner with a plain reference, and the
// conformance corpus in tests/data/json (y_*.json must parse, n_*.json must not; found through
// $KILN_ROOT, which tests/run.sh sets).
#include "json.h"
#include "test.h"
#include "util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

// Parses s through an exactly sized heap copy, so that ASan catches any read past the end.
static int
parse_exact(struct json_obj *o, const char *s, size_t n, struct json_error *e, char **keep)
{
    char *c = xmalloc(n ? n : 1);
    memcpy(c, s, n);
    int rc = json_obj_parse(o, c, n, e);
    *keep = c;
    return rc;
}

static int
parse_value_exact(const char *s, size_t n, struct json_error *e)
{
    char *c = xmalloc(n ? n : 1);
    memcpy(c, s, n);
    struct json_val v;
    int rc = json_parse_value(c, n, &v, e);
    free(c);
    return rc;
}

static void
test_record(void)
{
    const char *s = " {\"id\": \"r1\", \"text\":\"a\\nb \\u00e9\\ud83d\\ude00\", \"n\": -12,"
                    " \"meta\": {\"url\": \"http://x\", \"deep\": {\"k\": [1, 2, {\"z\": null}]}},"
                    " \"ok\": true, \"no\": false, \"nil\": null, \"\\u0061b\": 1.5e3} \n";
    struct json_obj o;
    json_obj_init(&o);
    struct json_error e;
    char *c;
    CHECK_EQ_INT(parse_exact(&o, s, strlen(s), &e, &c), 0);
    CHECK_EQ_INT(o.n, 8);
    CHECK(o.src == c + 1 && o.src[0] == '{' && o.src[o.len - 1] == '}');
    const struct json_field *f = json_obj_get(&o, "id");
    CHECK(f && f->val.type == JSON_STRING && !f->val.escaped);
    CHECK(f && f->val.raw_len == 4 && memcmp(f->val.raw, "\"r1\"", 4) == 0);
    f = json_obj_get(&o, "text");
    CHECK(f && f->val.escaped);
    struct buf b = {0};
    if (f)
        json_str(&f->val, &b);
    CHECK_EQ_MEM(b.p, b.len, "a\nb \xC3\xA9\xF0\x9F\x98\x80", 10);
    CHECK(f && json_str_eq(&f->val, "a\nb \xC3\xA9\xF0\x9F\x98\x80", 10));
    CHECK(f && !json_str_eq(&f->val, "a\nb \xC3\xA9", 6));
    CHECK(json_obj_get(&o, "missing") == NULL);
    // Escaped key found by its unescaped form.
    f = json_obj_get(&o, "ab");
    CHECK(f && f->key_escaped && f->val.type == JSON_NUMBER);
    double x = 0;
    CHECK(f && json_double(&f->val, &x) == 0 && x == 1500.0);
    int64_t i = 0;
    CHECK(f && json_int(&f->val, &i) == 0 && i == 1500);
    f = json_obj_get(&o, "n");
    CHECK(f && json_int(&f->val, &i) == 0 && i == -12);
    CHECK(json_obj_get(&o, "ok")->val.type == JSON_TRUE);
    CHECK(json_obj_get(&o, "no")->val.type == JSON_FALSE);
    CHECK(json_obj_get(&o, "nil")->val.type == JSON_NULL);

    struct json_val v;
    CHECK(json_obj_path(&o, "meta.url", &v) && json_str_eq(&v, "http://x", 8));
    CHECK(json_obj_path(&o, "meta.deep.k", &v) && v.type == JSON_ARRAY);
    CHECK_EQ_MEM(v.raw, v.raw_len, "[1, 2, {\"z\": null}]", 19);
    CHECK(!json_obj_path(&o, "meta.deep.k.z", &v)); // an array is not an object
    CHECK(!json_obj_path(&o, "meta.nope", &v));
    CHECK(!json_obj_path(&o, "id.x", &v));
    CHECK(json_obj_path(&o, "meta", &v) && v.type == JSON_OBJECT);

    // Iteration over an array and an object.
    CHECK(json_obj_path(&o, "meta.deep.k", &v));
    struct json_iter it;
    json_iter_init(&it, &v);
    int n = 0;
    enum json_type want[] = {JSON_NUMBER, JSON_NUMBER, JSON_OBJECT};
    while (json_iter_next(&it)) {
        CHECK(n < 3 && it.val.type == want[n] && it.index == (size_t)n && it.key == NULL);
        n++;
    }
    CHECK_EQ_INT(n, 3);
    CHECK(json_obj_path(&o, "meta", &v));
    json_iter_init(&it, &v);
    CHECK(json_iter_next(&it) && it.key_len == 3 && memcmp(it.key, "url", 3) == 0);
    CHECK(json_iter_next(&it) && it.key_len == 4 && it.val.type == JSON_OBJECT && it.index == 1);
    CHECK(!json_iter_next(&it));
    CHECK(!json_iter_next(&it));
    // Iterating a scalar yields nothing.
    json_iter_init(&it, &json_obj_get(&o, "n")->val);
    CHECK(!json_iter_next(&it));

    // Reuse: a second parse replaces the index; a failed parse empties it.
    CHECK_EQ_INT(json_obj_parse(&o, "{}", 2, &e), 0);
    CHECK_EQ_INT(o.n, 0);
    CHECK_EQ_INT(json_obj_parse(&o, "{\"a\":1}", 7, &e), 0);
    CHECK_EQ_INT(o.n, 1);
    CHECK_EQ_INT(json_obj_parse(&o, "{\"a\":1,}", 8, &e), -1);
    CHECK_EQ_INT(o.n, 0);
    free(c);
    buf_free(&b);
    json_obj_free(&o);
}

struct bad_case {
    const char *s;
    size_t offset;
    const char *msg;
};

static void
test_errors(void)
{
    static const struct bad_case cases[] = {
        {"", 0, "expected '{' (a record is a JSON object) at end of input"},
        {"  ", 2, "expected '{' (a record is a JSON object) at end of input"},
        {"[1]", 0, "expected '{' (a record is a JSON object)"},
        {"\xEF\xBB\xBF{}", 0, "byte order mark not allowed"},
        {"{", 1, "expected string key at end of input"},
        {"{\"a\" 1}", 5, "expected ':'"},
        {"{\"a\":1 \"b\":2}", 7, "expected ',' or '}'"},
        {"{\"a\":1,}", 7, "expected string key"},
        {"{\"a\":[1,]}", 8, "expected value"},
        {"{\"a\":[1 2]}", 8, "expected ',' or ']'"},
        {"{\"a\":1}x", 7, "trailing characters after the object"},
        {"{\"a\":1}{}", 7, "trailing characters after the object"},
        {"{\"a\":01}", 6, "invalid number: leading zero"},
        {"{\"a\":1.}", 7, "invalid number: expected digit after '.'"},
        {"{\"a\":.5}", 5, "expected value"},
        {"{\"a\":-}", 6, "invalid number: expected digit"},
        {"{\"a\":1e}", 7, "invalid number: expected digit in exponent"},
        {"{\"a\":+1}", 5, "expected value"},
        {"{\"a\":tru}", 5, "expected value"},
        {"{\"a\":True}", 5, "expected value"},
        {"{\"a\":\"x}", 5, "unterminated string"},
        {"{\"a\":\"\x01\"}", 6, "control character U+0001 in string (must be escaped)"},
        {"{\"a\":\"\\x\"}", 6, "invalid escape"},
        {"{\"a\":\"\\u12\"}", 6, "invalid \\u escape (expected 4 hex digits)"},
        {"{\"a\":\"\\ud800\"}", 6, "lone surrogate escape \\ud800"},
        {"{\"a\":\"\\udc00\\ud800\"}", 6, "lone surrogate escape \\udc00"},
        {"{\"a\":\"x\\ud83d\\u0041\"}", 7, "lone surrogate escape \\ud83d"},
        {"{\"a\":\"\xC3\"}", 6, "invalid UTF-8 in string"},
        {"{\"a\":\"ab\xC0\xAF\"}", 8, "invalid UTF-8 in string"},
        {"{\"a\":\"\xED\xA0\x80\"}", 6, "invalid UTF-8 in string"},
        {"{\"a\":\"\xF4\x90\x80\x80\"}", 6, "invalid UTF-8 in string"},
        {"{\"a\":1,\"a\":2}", 7, "duplicate key \"a\""},
        {"{\"a\":1,\"\\u0061\":2}", 7, "duplicate key \"\\u0061\""},
        {"{\"x\":{\"b\":1,\"c\":{},\"b\":2}}", 19, "duplicate key \"b\""},
        {"{\"x\":[{\"b\":1},{\"b\":1,\"b\":1}]}", 21, "duplicate key \"b\""},
        {"{'a':1}", 1, "expected string key"},
        {"{\"a\":1}\x00", 7, "trailing characters after the object"},
    };
    for (size_t i = 0; i < KILN_ARRAY_LEN(cases); i++) {
        const struct bad_case *t = &cases[i];
        size_t n = strlen(t->s);
        if (strcmp(t->s, "{\"a\":1}") == 0 && t->offset == 7)
            n = 8; // the case with a NUL after the object
        struct json_obj o = {0};
        struct json_error e = {0};
        char *c;
        int rc = parse_exact(&o, t->s, n, &e, &c);
        CHECK_MSG(rc == -1, "case %zu accepted: %s", i, t->s);
        CHECK_MSG(e.offset == t->offset, "case %zu (%s): offset %zu, want %zu", i, t->s, e.offset,
                  t->offset);
        CHECK_MSG(strcmp(e.msg, t->msg) == 0, "case %zu (%s): \"%s\", want \"%s\"", i, t->s, e.msg,
                  t->msg);
        CHECK(o.n == 0 && o.src == NULL);
        free(c);
        json_obj_free(&o);
    }
    // A NUL byte inside a string is a control character; e may be NULL.
    struct json_obj o = {0};
    CHECK_EQ_INT(json_obj_parse(&o, "{\"a\":\"\0\"}", 9, NULL), -1);
    json_obj_free(&o);
}

static void
test_values(void)
{
    struct json_error e;
    struct json_val v;
    CHECK_EQ_INT(json_parse_value(" [1, \"a\", {}] ", 14, &v, &e), 0);
    CHECK(v.type == JSON_ARRAY && v.raw_len == 12);
    CHECK_EQ_INT(json_parse_value("\"x\"", 3, &v, &e), 0);
    CHECK(v.type == JSON_STRING);
    CHECK_EQ_INT(json_parse_value("-0", 2, &v, &e), 0);
    double d = 1;
    CHECK(json_double(&v, &d) == 0 && d == 0 && signbit(d));
    CHECK_EQ_INT(json_parse_value("null", 4, &v, &e), 0);
    CHECK(v.type == JSON_NULL);
    CHECK_EQ_INT(json_parse_value("", 0, &v, &e), -1);
    CHECK_EQ_STR(e.msg, "expected value at end of input");
    CHECK_EQ_INT(json_parse_value("1 2", 3, &v, &e), -1);
    CHECK_EQ_STR(e.msg, "trailing characters after the value");
    CHECK_EQ_INT(e.offset, 2);
    CHECK_EQ_INT(parse_value_exact("123", 3, &e), 0);
    CHECK_EQ_INT(parse_value_exact("tru", 3, &e), -1);
    CHECK_EQ_INT(parse_value_exact("\"\\u00", 5, &e), -1);
    CHECK_EQ_INT(parse_value_exact("\"\\", 2, &e), -1);
    CHECK_EQ_INT(parse_value_exact("[", 1, &e), -1);
    CHECK_EQ_INT(parse_value_exact("-", 1, &e), -1);
    CHECK_EQ_INT(parse_value_exact("1e+", 3, &e), -1);
}

static void
test_depth(void)
{
    struct buf b = {0};
    struct json_error e;
    struct json_obj o = {0};
    // Root object + 255 arrays = 256 containers: allowed.
    buf_puts(&b, "{\"a\":");
    for (int i = 0; i < JSON_MAX_DEPTH - 1; i++)
        buf_putc(&b, '[');
    for (int i = 0; i < JSON_MAX_DEPTH - 1; i++)
        buf_putc(&b, ']');
    buf_putc(&b, '}');
    CHECK_EQ_INT(json_obj_parse(&o, b.p, b.len, &e), 0);
    // One more: refused at the 257th opening bracket.
    buf_reset(&b);
    buf_puts(&b, "{\"a\":");
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        buf_puts(&b, "{\"a\":");
    buf_putc(&b, '1');
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        buf_putc(&b, '}');
    CHECK_EQ_INT(json_obj_parse(&o, b.p, b.len, &e), -1);
    CHECK_EQ_STR(e.msg, "nesting deeper than 256");
    CHECK_EQ_INT(e.offset, 5 * 256);
    // Very deep input fails cleanly (no recursion).
    buf_reset(&b);
    for (int i = 0; i < 100000; i++)
        buf_putc(&b, '[');
    struct json_val v;
    CHECK_EQ_INT(json_parse_value(b.p, b.len, &v, &e), -1);
    CHECK_EQ_INT(e.offset, JSON_MAX_DEPTH);
    buf_free(&b);
    json_obj_free(&o);
}

// Objects of 1..12 keys (the sizes decided by a vector compare of tags, and the pairwise
// ones), at the top level and nested: key j replaced by a copy of key i for every pair i < j,
// written plainly (a duplicate), with its first character escaped (a duplicate too), or with
// its last byte changed (not a duplicate; for keys longer than 8 bytes it has the same tag).
static void
test_dups_small(void)
{
    static const char *names[] = {"a", "id", "text", "label", "metadata", "x-spam-level",
                                  "x-spam-levels", "score", "received", "tags", "b", "headers"};
    struct buf b = {0}, key = {0};
    struct json_obj o = {0};
    int wrong = 0;
    for (size_t n = 1; n <= 12; n++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j <= n; j++)
                for (int variant = 0; variant < 3; variant++)
                    for (int nested = 0; nested < 2; nested++) {
                        if (j == n && variant > 0)
                            continue; // j == n: nothing replaced
                        buf_reset(&b);
                        buf_puts(&b, nested ? "{\"z\":1,\"o\":{" : "{");
                        size_t at = 0;
                        for (size_t k = 0; k < n; k++) {
                            buf_reset(&key);
                            if (k != j)
                                buf_puts(&key, names[k]);
                            else if (variant == 1)
                                buf_printf(&key, "\\u%04x%s", (unsigned)names[i][0], names[i] + 1);
                            else {
                                buf_puts(&key, names[i]);
                                if (variant == 2)
                                    key.p[key.len - 1] = '#';
                            }
                            if (k == j)
                                at = b.len + (k ? 1 : 0);
                            buf_printf(&b, "%s\"%s\":%zu", k ? "," : "", key.p, k);
                        }
                        buf_puts(&b, nested ? "}}" : "}");
                        struct json_error e = {0};
                        int rc = json_obj_parse(&o, b.p, b.len, &e);
                        bool dup = j < n && variant != 2;
                        bool ok = dup ? rc == -1 && e.offset == at &&
                                            strncmp(e.msg, "duplicate key", 13) == 0
                                      : rc == 0 && o.n == (nested ? 2 : n);
                        if (!ok && wrong++ < 5)
                            fprintf(stderr, "dups n %zu i %zu j %zu variant %d nested %d: rc %d "
                                            "offset %zu (want %zu) %s: %s\n",
                                    n, i, j, variant, nested, rc, e.offset, at, e.msg, b.p);
                    }
    CHECK_EQ_INT(wrong, 0);
    buf_free(&b);
    buf_free(&key);
    json_obj_free(&o);
}

static void
test_dups_large(void)
{
    // 1000 keys; all distinct, then one escaped duplicate near the end.
    struct buf b = {0};
    struct json_obj o = {0};
    struct json_error e;
    buf_putc(&b, '{');
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
    buf_putc(&b, '}');
    CHECK_EQ_INT(json_obj_parse(&o, b.p, b.len, &e), 0);
    CHECK_EQ_INT(o.n, 1000);
    const struct json_field *f = json_obj_get(&o, "k999");
    int64_t x;
    CHECK(f && json_int(&f->val, &x) == 0 && x == 999);
    b.len--;
    size_t at = b.len + 1;
    buf_puts(&b, ",\"\\u006b17\":0}");
    CHECK_EQ_INT(json_obj_parse(&o, b.p, b.len, &e), -1);
    CHECK_EQ_INT(e.offset, at);
    CHECK_EQ_STR(e.msg, "duplicate key \"\\u006b17\"");
    // Same inside a nested object, and two dups: the first in document order is reported.
    buf_reset(&b);
    buf_puts(&b, "{\"v\":{");
    for (int i = 0; i < 40; i++)
        buf_printf(&b, "%s\"%d\":%d", i ? "," : "", i % 30, i);
    buf_puts(&b, "}}");
    CHECK_EQ_INT(json_obj_parse(&o, b.p, b.len, &e), -1);
    CHECK_EQ_STR(e.msg, "duplicate key \"0\"");
    buf_free(&b);
    json_obj_free(&o);
}

static void
test_numbers(void)
{
    struct {
        const char *s;
        int int_rc;
        int64_t i;
        int dbl_rc;
        double d;
    } cases[] = {
        {"0", 0, 0, 0, 0},
        {"-0", 0, 0, 0, -0.0},
        {"9223372036854775807", 0, INT64_MAX, 0, 9223372036854775807.0},
        {"-9223372036854775808", 0, INT64_MIN, 0, -9223372036854775808.0},
        {"9223372036854775808", -1, 0, 0, 9223372036854775808.0},
        {"-9223372036854775809", -1, 0, 0, -9223372036854775809.0},
        {"18446744073709551616", -1, 0, 0, 18446744073709551616.0},
        {"1.0", 0, 1, 0, 1.0},
        {"1.5", -1, 0, 0, 1.5},
        {"15e-1", -1, 0, 0, 1.5},
        {"150e-1", 0, 15, 0, 15},
        {"1.25e2", 0, 125, 0, 125},
        {"1.2500e2", 0, 125, 0, 125},
        {"1e3", 0, 1000, 0, 1000},
        {"-2E+2", 0, -200, 0, -200},
        {"9007199254740992.0", 0, 9007199254740992, 0, 9007199254740992.0},
        {"9007199254740994.0", -1, 0, 0, 9007199254740994.0},
        {"1.0000000000000000001", -1, 0, 0, 1.0},
        {"0e5", 0, 0, 0, 0},
        {"0.000", 0, 0, 0, 0},
        {"1e400", -1, 0, -1, 0},
        {"-1e400", -1, 0, -1, 0},
        {"1e-400", -1, 0, 0, 0},
        {"1e99999999999999999999", -1, 0, -1, 0},
        {"123456789012345678901234567890123456789012345678901234567890123456789", -1, 0, 0,
         1.2345678901234568e68},
    };
    for (size_t k = 0; k < KILN_ARRAY_LEN(cases); k++) {
        struct json_val v;
        struct json_error e;
        CHECK_MSG(json_parse_value(cases[k].s, strlen(cases[k].s), &v, &e) == 0, "%s",
                  cases[k].s);
        int64_t i = 0;
        double d = 0;
        CHECK_MSG(json_int(&v, &i) == cases[k].int_rc, "json_int(%s)", cases[k].s);
        if (cases[k].int_rc == 0)
            CHECK_MSG(i == cases[k].i, "json_int(%s) = %lld", cases[k].s, (long long)i);
        CHECK_MSG(json_double(&v, &d) == cases[k].dbl_rc, "json_double(%s)", cases[k].s);
        if (cases[k].dbl_rc == 0)
            CHECK_MSG(d == cases[k].d && signbit(d) == signbit(cases[k].d), "json_double(%s)=%g",
                      cases[k].s, d);
    }
    struct json_val s = {JSON_STRING, "\"1\"", 3, false};
    int64_t i;
    double d;
    CHECK_EQ_INT(json_int(&s, &i), -1);
    CHECK_EQ_INT(json_double(&s, &d), -1);
}

static void
test_unescape(void)
{
    struct buf b = {0};
    const char *raw = "\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud834\\udd1e\\u0000z";
    json_unescape(raw, strlen(raw), &b);
    CHECK_EQ_MEM(b.p, b.len,
                 "\"\\/\b\f\n\r\tA\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E\0z", 20);
    // Tolerant of invalid input: lone surrogates become U+FFFD, truncated escapes vanish.
    buf_reset(&b);
    json_unescape("a\\ud800b\\udc00\\u12", 18, &b);
    CHECK_EQ_MEM(b.p, b.len, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "12", 10);
    buf_reset(&b);
    json_unescape("x\\", 2, &b);
    CHECK_EQ_MEM(b.p, b.len, "x", 1);
    // Regression (fuzz): an empty result on a fresh buffer is still a terminated C string.
    struct buf z = {0};
    json_unescape("", 0, &z);
    CHECK(z.p == NULL || (z.len == 0 && z.p[0] == 0));
    buf_free(&z);
    CHECK_EQ_INT(utf8_repair("", 0, &z), 0);
    CHECK(z.p == NULL || (z.len == 0 && z.p[0] == 0));
    buf_free(&z);
    // json_str on a non-string appends nothing.
    struct json_val n = {JSON_NUMBER, "1", 1, false};
    buf_reset(&b);
    json_str(&n, &b);
    CHECK_EQ_INT(b.len, 0);
    CHECK(!json_str_eq(&n, "1", 1));
    buf_free(&b);
}

static void
test_utf8(void)
{
    struct {
        const char *s;
        size_t n, prefix;
    } cases[] = {
        {"", 0, 0},
        {"abc", 3, 3},
        {"a\xC3\xA9", 3, 3},
        {"\xC3", 1, 0},
        {"a\xC0\x80", 3, 1},         // overlong NUL
        {"\xC1\xBF", 2, 0},          // overlong
        {"\xE0\x80\xAF", 3, 0},      // overlong 3-byte
        {"\xE0\xA0\x80", 3, 3},      // U+0800
        {"\xED\x9F\xBF", 3, 3},      // U+D7FF
        {"\xED\xA0\x80", 3, 0},      // U+D800 encoded
        {"\xEE\x80\x80", 3, 3},      // U+E000
        {"\xEF\xBF\xBF", 3, 3},      // U+FFFF
        {"\xF0\x8F\xBF\xBF", 4, 0},  // overlong 4-byte
        {"\xF0\x90\x80\x80", 4, 4},  // U+10000
        {"\xF4\x8F\xBF\xBF", 4, 4},  // U+10FFFF
        {"\xF4\x90\x80\x80", 4, 0},  // U+110000
        {"\xF5\x80\x80\x80", 4, 0},
        {"\xFF", 1, 0},
        {"\x80", 1, 0},
        {"ab\xE2\x82", 4, 2},        // truncated
        {"\xE2\x82x", 3, 0},
    };
    for (size_t i = 0; i < KILN_ARRAY_LEN(cases); i++)
        CHECK_MSG(utf8_valid_prefix(cases[i].s, cases[i].n) == cases[i].prefix, "case %zu", i);
    // Long ASCII runs with one bad byte at every position (vector and scalar paths).
    char s[300];
    memset(s, 'a', sizeof s);
    for (size_t at = 0; at < sizeof s; at++) {
        s[at] = (char)0x80;
        CHECK(utf8_valid_prefix(s, sizeof s) == at);
        s[at] = 'a';
    }
    CHECK(utf8_valid_prefix(s, sizeof s) == sizeof s);
    struct buf b = {0};
    CHECK_EQ_INT(utf8_repair("a\xE2\x82z\xFF", 5, &b), 3);
    CHECK_EQ_MEM(b.p, b.len, "a\xEF\xBF\xBD\xEF\xBF\xBDz\xEF\xBF\xBD", 11);
    buf_reset(&b);
    CHECK_EQ_INT(utf8_repair("ok \xC3\xA9", 5, &b), 0);
    CHECK_EQ_MEM(b.p, b.len, "ok \xC3\xA9", 5);
    buf_free(&b);
}

static void
test_rewrite(void)
{
    const char *s = "\t{\"id\": 1 , \"text\" :\"hi\\n\",\"\\u0078\":[1, 2],\"z\":{}}  ";
    struct json_obj o = {0};
    struct json_error e;
    struct buf b = {0};
    CHECK_EQ_INT(json_obj_parse(&o, s, strlen(s), &e), 0);
    json_obj_rewrite(&o, NULL, 0, &b);
    CHECK_EQ_STR(b.p, "{\"id\": 1 , \"text\" :\"hi\\n\",\"\\u0078\":[1, 2],\"z\":{}}");
    struct json_edit ed[] = {
        {"text", "\"bye\"", 5},
        {"x", NULL, 0},
        {"new", "true", 4},
        {"z", "0", 1},
        {"z", "[]", 2}, // the last edit for a key wins
        {"gone", NULL, 0},
    };
    buf_reset(&b);
    json_obj_rewrite(&o, ed, KILN_ARRAY_LEN(ed), &b);
    CHECK_EQ_STR(b.p, "{\"id\": 1,\"text\":\"bye\",\"z\":[],\"new\":true}");
    // Delete everything, then add a key that needs escaping.
    struct json_edit ed2[] = {{"id", NULL, 0}, {"text", NULL, 0}, {"x", NULL, 0},
                              {"z", NULL, 0},  {"q\"", "1", 1}};
    buf_reset(&b);
    json_obj_rewrite(&o, ed2, KILN_ARRAY_LEN(ed2), &b);
    CHECK_EQ_STR(b.p, "{\"q\\\"\":1}");
    struct json_obj o2 = {0};
    CHECK_EQ_INT(json_obj_parse(&o2, b.p, b.len, &e), 0);
    CHECK(json_obj_get(&o2, "q\"") != NULL);
    json_obj_free(&o2);
    buf_free(&b);
    json_obj_free(&o);
}

// ---- randomized: the vectorized string scanner against a plain reference -----------------

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t
rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Reference: is body[0..n) the exact content of a valid JSON string (no closing quote inside)?
static bool
ref_string_ok(const unsigned char *p, size_t n)
{
    if (utf8_valid_prefix((const char *)p, n) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"' || p[i] < 0x20)
            return false;
        if (p[i] != '\\')
            continue;
        if (i + 1 >= n)
            return false;
        unsigned char c = p[++i];
        if (strchr("\"\\/bfnrt", c) && c)
            continue;
        if (c != 'u' || i + 4 >= n + 0 || n - i - 1 < 4)
            return false;
        unsigned u = 0;
        for (int k = 1; k <= 4; k++) {
            unsigned char h = p[i + k];
            if (!strchr("0123456789abcdefABCDEF", h) || !h)
                return false;
            u = u * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        i += 4;
        if (u >= 0xDC00 && u <= 0xDFFF)
            return false;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (n - i - 1 < 6 || p[i + 1] != '\\' || p[i + 2] != 'u')
                return false;
            unsigned l = 0;
            for (int k = 3; k <= 6; k++) {
                unsigned char h = p[i + k];
                if (!strchr("0123456789abcdefABCDEF", h) || !h)
                    return false;
                l = l * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
            }
            if (l < 0xDC00 || l > 0xDFFF)
                return false;
            i += 6;
        }
    }
    return true;
}

static void
test_random_strings(void)
{
    static const char *pieces[] = {"a", "b", " ", "\\n", "\\\"", "\\\\", "\\u00e9", "\xC3\xA9",
                                   "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\\ud83d\\ude00",
                                   "0123456789abcdef0123456789abcdef", "xyz"};
    static const char *bad[] = {"\x01", "\x1f", "\x7f", "\x80", "\xC3", "\xED\xA0\x80", "\\",
                                "\\q", "\\ud83d", "\\udc00", "\"", "\xF8", "\t"};
    struct buf b = {0}, body = {0};
    struct json_obj o = {0};
    int agree = 0;
    for (int iter = 0; iter < 4000; iter++) {
        buf_reset(&body);
        int len = (int)(rng() % 60);
        for (int k = 0; k < len; k++)
            buf_puts(&body, pieces[rng() % KILN_ARRAY_LEN(pieces)]);
        if (rng() % 2) {
            size_t at = rng() % (body.len + 1);
            const char *x = bad[rng() % KILN_ARRAY_LEN(bad)];
            struct buf t = {0};
            buf_append(&t, body.p, at);
            buf_puts(&t, x);
            buf_append(&t, body.p + at, body.len - at);
            buf_free(&body);
            body = t;
        }
        buf_reset(&b);
        buf_puts(&b, "{\"s\":\"");
        buf_append(&b, body.p, body.len);
        buf_puts(&b, "\"}");
        bool want = ref_string_ok((const unsigned char *)body.p, body.len);
        struct json_error e;
        char *c;
        bool got = parse_exact(&o, b.p, b.len, &e, &c) == 0;
        CHECK_MSG(got == want, "iteration %d: parser %d, reference %d: %s", iter, got, want, b.p);
        agree += got == want;
        if (got) {
            // Round trip through the writer.
            struct buf u = {0}, w = {0};
            json_str(&o.fields[0].val, &u);
            json_write_str(&w, u.p, u.len);
            struct json_val v;
            CHECK(json_parse_value(w.p, w.len, &v, &e) == 0 && json_str_eq(&v, u.p, u.len));
            buf_free(&u);
            buf_free(&w);
        }
        free(c);
    }
    CHECK_EQ_INT(agree, 4000);
    buf_free(&b);
    buf_free(&body);
    json_obj_free(&o);
}

// Long plain strings (ids, paths, hashes: no escape, control or non-ASCII byte) are followed
// from window to window before the block scanner; a special byte anywhere in them, a string cut
// off by the end of the input, or the end falling inside the next window must still get the
// reference's verdict. A first field of random length moves the string against the windows.
static void
test_random_plain_runs(void)
{
    static const char *special[] = {"\\n", "\\u00e9", "\xC3\xA9", "\x01", "\x80", "\\q", "\"",
                                    "\\", "\xE2\x82"};
    struct buf b = {0}, body = {0};
    struct json_obj o = {0};
    int agree = 0, n = 0;
    for (int iter = 0; iter < 6000; iter++) {
        buf_reset(&body);
        size_t len = rng() % 300;
        for (size_t k = 0; k < len; k++)
            buf_putc(&body, (char)('0' + rng() % 75)); // '0'..'z': plain, no quote or backslash
        if (rng() % 2) {
            size_t at = rng() % (body.len + 1);
            struct buf t = {0};
            buf_append(&t, body.p, at);
            buf_puts(&t, special[rng() % KILN_ARRAY_LEN(special)]);
            buf_append(&t, body.p + at, body.len - at);
            buf_free(&body);
            body = t;
        }
        buf_reset(&b);
        buf_puts(&b, "{\"p\":\"");
        for (size_t k = rng() % 130; k > 0; k--)
            buf_putc(&b, 'p');
        buf_puts(&b, "\",\"s\":\"");
        size_t at_body = b.len;
        buf_append(&b, body.p, body.len);
        buf_puts(&b, "\"}");
        bool want = ref_string_ok((const unsigned char *)body.p, body.len);
        size_t cut = b.len;
        if (rng() % 4 == 0) { // cut inside the string or right after its closing quote
            cut = at_body + rng() % (body.len + 2);
            want = false;
        }
        struct json_error e;
        char *c;
        bool got = parse_exact(&o, b.p, cut, &e, &c) == 0;
        CHECK_MSG(got == want, "iteration %d: parser %d, reference %d: %.*s", iter, got, want,
                  (int)cut, b.p);
        if (got)
            CHECK_EQ_INT(o.n == 2 ? (long)o.fields[1].val.raw_len : -1, (long)body.len + 2);
        agree += got == want;
        n++;
        free(c);
    }
    CHECK_EQ_INT(agree, n);
    buf_free(&b);
    buf_free(&body);
    json_obj_free(&o);
}

// Escapes, quotes, controls and invalid bytes at every offset of the vector scanner's 64-byte
// blocks (the string body starts a block) and as the last bytes of the input: each probe in
// the middle of a string must give exactly its verdict, offset and message; right before the
// closing quote at the very end of an exactly sized buffer it must agree with ref_string_ok.
static void
test_string_probes(void)
{
    static const struct {
        const char *probe;
        long off; // -1: valid; else error offset in the probe
        const char *msg;
    } probes[] = {
        {"\\u00e9", -1, NULL},
        {"\\uabcd", -1, NULL},
        {"\\uABCD", -1, NULL},
        {"\\u0000", -1, NULL},
        {"\\u00e9\\u0041\\uffff", -1, NULL},
        {"\\ud83d\\ude00", -1, NULL},
        {"\\uD83D\\uDE00", -1, NULL},
        {"\\ud7ff", -1, NULL},
        {"\\uDa00\\udC00", -1, NULL},
        {"\\ue000", -1, NULL},
        {"\\\\u0041", -1, NULL},
        {"\\\"", -1, NULL},
        {"\\\\", -1, NULL},
        {"\\/\\b\\f\\n\\r\\t", -1, NULL},
        {"\\\\\\\\\\\"", -1, NULL},
        {"\x7f", -1, NULL},
        {"\xC3\xA9", -1, NULL},
        {"\xF0\x9F\x98\x80", -1, NULL},
        {"\\udc00", 0, "lone surrogate escape \\udc00"},
        {"\\ud83d", 0, "lone surrogate escape \\ud83d"},
        {"\\ud83d\\u0041", 0, "lone surrogate escape \\ud83d"},
        {"\\u12g4", 0, "invalid \\u escape"},
        {"\\u12", 0, "invalid \\u escape"},
        {"\\uGGGG", 0, "invalid \\u escape"},
        {"\\u00e9\\u00\\u0041", 6, "invalid \\u escape"},
        {"\\q", 0, "invalid escape"},
        {"\\U0041", 0, "invalid escape"},
        {"\\\\\\q", 2, "invalid escape"},
        {"\\\x01", 0, "invalid escape"},
        // Non-ASCII after a backslash whose low seven bits are a valid escape character
        // (0xE2 ~ 'b', 0xF4 ~ 't', 0xEE ~ 'n', 0xDC ~ '\\', 0xA2 ~ '"', 0xF5 ~ 'u').
        {"\\\xE2\x82\xAC", 0, "invalid escape"},
        {"\\\xF4\x8F\xBF\xBF", 0, "invalid escape"},
        {"\\\xEE\x80\x80", 0, "invalid escape"},
        {"\\\xDC\x80", 0, "invalid escape"},
        {"\\\xC2\xA2", 0, "invalid escape"},
        {"\\\xA2", 0, "invalid escape"},
        {"\\\xF5", 0, "invalid escape"},
        {"\x01", 0, "control character U+0001"},
        {"\x1f", 0, "control character U+001F"},
        {"\\u0041\t", 6, "control character U+0009"},
        {"\xC3x", 0, "invalid UTF-8 in string"},
        {"\xE2\x82x", 0, "invalid UTF-8 in string"},
        {"\xED\xA0\x80", 0, "invalid UTF-8 in string"},
        {"\\u00e9\xFF", 6, "invalid UTF-8 in string"},
    };
    struct json_obj o = {0};
    struct buf b = {0};
    int wrong = 0;
    for (size_t i = 0; i < KILN_ARRAY_LEN(probes); i++)
        for (size_t at = 0; at < 140; at++) {
            // In the middle: padding ('x' is not a hex digit), the probe, more padding.
            buf_reset(&b);
            buf_puts(&b, "{\"s\":\"");
            size_t body = b.len;
            for (size_t k = 0; k < at; k++)
                buf_putc(&b, 'x');
            buf_puts(&b, probes[i].probe);
            for (size_t k = 0; k < 70; k++)
                buf_putc(&b, 'x');
            buf_puts(&b, "\"}");
            struct json_error e = {0};
            char *c;
            int rc = parse_exact(&o, b.p, b.len, &e, &c);
            free(c);
            size_t want_at = body + at + (size_t)probes[i].off;
            bool ok = probes[i].off < 0 ? rc == 0
                                        : rc == -1 && e.offset == want_at &&
                                              !strncmp(e.msg, probes[i].msg, strlen(probes[i].msg));
            if (!ok && wrong++ < 5)
                fprintf(stderr, "probe %zu at %zu: rc %d offset %zu (want %zu+%ld) %s\n", i, at,
                        rc, e.offset, body + at, probes[i].off, e.msg);
            // At the end: the probe, the closing quote and nothing else (a string value), and
            // the same as the last field of a record.
            for (int rec = 0; rec < 2; rec++) {
                buf_reset(&b);
                buf_puts(&b, rec ? "{\"s\":\"" : "\"");
                body = b.len;
                for (size_t k = 0; k < at; k++)
                    buf_putc(&b, 'x');
                buf_puts(&b, probes[i].probe);
                bool want = ref_string_ok((const unsigned char *)b.p + body, b.len - body);
                buf_puts(&b, rec ? "\"}" : "\"");
                rc = rec ? parse_exact(&o, b.p, b.len, &e, &c) : parse_value_exact(b.p, b.len, &e);
                if (rec)
                    free(c);
                if ((rc == 0) != want && wrong++ < 5)
                    fprintf(stderr, "probe %zu at end after %zu (%s): rc %d, want %d: %s\n", i, at,
                            rec ? "record" : "value", rc, want, e.msg);
            }
        }
    CHECK_EQ_INT(wrong, 0);
    buf_free(&b);
    json_obj_free(&o);
}

// Records of many short fields, with random whitespace so that strings fall at every position
// of the parser's 64-byte window and across its end: the index must hold exactly the
// generated keys and values, and a key equal to an earlier one after unescaping (including
// keys that share their first 8 bytes or differ only in length) must be reported at its
// opening quote.
static void
test_short_fields(void)
{
    static const struct {
        const char *raw, *plain;
    } keys[] = {
        {"a", "a"},
        {"\\u0061", "a"},
        {"ab", "ab"},
        {"", ""},
        {"abcdefg", "abcdefg"},
        {"abcdefgh", "abcdefgh"},
        {"abcdefgh1", "abcdefgh1"},
        {"abcdefgh2", "abcdefgh2"},
        {"abcdefgh\\u0031", "abcdefgh1"},
        {"abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz0123456789"},
        {"x\\ny", "x\ny"},
        {"\xC3\xA9", "\xC3\xA9"},
        {"\\u00e9", "\xC3\xA9"},
        {"b\\\"", "b\""},
    };
    static const char *vals[] = {"\"\"", "\"v\"", "\"value with some length to it\"", "1",
                                 "-0.5e+3", "null", "true", "[]", "{}", "{\"a\":{\"a\":1}}",
                                 "\"\\u00e9\\n\"", "\"\xE2\x82\xAC\"",
                                 "\"a string long enough to cross a whole 64-byte window, sure\""};
    static const char *ws[] = {"", "", "", " ", "\n", "  \t"};
    struct json_obj o = {0};
    struct buf b = {0};
    int wrong = 0, dups = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t nf = 1 + rng() % 12, kidx[12], kpos[12], vpos[12], vi[12];
        buf_reset(&b);
        buf_puts(&b, ws[rng() % KILN_ARRAY_LEN(ws)]);
        buf_putc(&b, '{');
        size_t dup_at = SIZE_MAX;
        for (size_t f = 0; f < nf; f++) {
            if (f)
                buf_putc(&b, ',');
            buf_puts(&b, ws[rng() % KILN_ARRAY_LEN(ws)]);
            kidx[f] = rng() % KILN_ARRAY_LEN(keys);
            kpos[f] = b.len;
            buf_printf(&b, "\"%s\"", keys[kidx[f]].raw);
            for (size_t g = 0; g < f && dup_at == SIZE_MAX; g++)
                if (strcmp(keys[kidx[g]].plain, keys[kidx[f]].plain) == 0)
                    dup_at = kpos[f];
            buf_puts(&b, ws[rng() % KILN_ARRAY_LEN(ws)]);
            buf_putc(&b, ':');
            buf_puts(&b, ws[rng() % KILN_ARRAY_LEN(ws)]);
            vi[f] = rng() % KILN_ARRAY_LEN(vals);
            vpos[f] = b.len;
            buf_puts(&b, vals[vi[f]]);
            buf_puts(&b, ws[rng() % KILN_ARRAY_LEN(ws)]);
        }
        buf_putc(&b, '}');
        buf_puts(&b, ws[rng() % KILN_ARRAY_LEN(ws)]);
        struct json_error e = {0};
        char *c;
        int rc = parse_exact(&o, b.p, b.len, &e, &c);
        bool ok;
        if (dup_at != SIZE_MAX) {
            dups++;
            ok = rc == -1 && e.offset == dup_at && strncmp(e.msg, "duplicate key", 13) == 0;
        } else {
            ok = rc == 0 && o.n == nf;
            for (size_t f = 0; f < nf && ok; f++) {
                const struct json_field *fl = &o.fields[f];
                ok = fl->key == c + kpos[f] + 1 && fl->key_len == strlen(keys[kidx[f]].raw) &&
                     fl->val.raw == c + vpos[f] && fl->val.raw_len == strlen(vals[vi[f]]) &&
                     json_obj_get(&o, keys[kidx[f]].plain) == fl;
            }
        }
        free(c);
        if (!ok && wrong++ < 5)
            fprintf(stderr, "short fields %d: rc %d offset %zu (dup at %zu) %s: %s\n", iter, rc,
                    e.offset, dup_at, e.msg, b.p);
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK(dups > 500 && dups < 2900);
    buf_free(&b);
    json_obj_free(&o);
}

// Every valid and invalid UTF-8 sequence at every offset of a long string (sequences straddle
// the 64-byte blocks of the vector scanner), with escapes around: valid ones parse, invalid
// ones fail exactly where utf8_valid_prefix says.
static void
test_utf8_in_strings(void)
{
    static const char *good[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF",
                                 "\xED\x9F\xBF", "\xEE\x80\x80", "\xC2\x80", "\xDF\xBF"};
    static const char *bad[] = {"\x80", "\xBF", "\xC3", "\xC0\x80", "\xC1\xBF", "\xE0\x80\xAF",
                                "\xE0\x9F\xBF", "\xED\xA0\x80", "\xED\xBF\xBF", "\xF0\x8F\xBF\xBF",
                                "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xF8\x88\x80\x80\x80",
                                "\xFE", "\xFF", "\xE2\x82", "\xF0\x9F\x98", "\xC3\xC3\xA9",
                                "\xE2\x28\xA1", "\xF0\x9F\x98\x28"};
    struct json_obj o = {0};
    struct buf b = {0};
    int wrong = 0;
    // plain: the sequence is the only non-ASCII in the string, so that the blocks around it are
    // pure ASCII (the scanner checks UTF-8 only in blocks with non-ASCII bytes and in the block
    // after one that ends with some: a truncated sequence at a block's end is caught there).
    for (int kind = 0; kind < 4; kind++) {
        const char **set = kind & 1 ? bad : good;
        size_t nset = kind & 1 ? KILN_ARRAY_LEN(bad) : KILN_ARRAY_LEN(good);
        bool plain = kind >= 2;
        for (size_t i = 0; i < nset; i++)
            for (size_t at = 0; at < 200; at++) {
                buf_reset(&b);
                buf_puts(&b, "{\"s\":\"");
                size_t body = b.len;
                for (size_t k = 0; k < at; k++)
                    buf_puts(&b, k % 37 == 5 ? "\\n" : k % 53 == 7 && !plain ? "\xC3\xA9" : "a");
                buf_puts(&b, set[i]);
                buf_puts(&b, plain ? "tail \\\" more plain ASCII text that runs past the end of the next "
                                     "64-byte block........................\"}"
                                   : "tail \\\" more \xE2\x82\xAC text that runs past the next block.....\"}");
                struct json_error e;
                int rc = json_obj_parse(&o, b.p, b.len, &e);
                size_t n = b.len - body, pre = utf8_valid_prefix(b.p + body, n);
                bool ok = kind & 1 ? rc == -1 && e.offset == body + pre &&
                                     strcmp(e.msg, "invalid UTF-8 in string") == 0
                               : rc == 0;
                if (!ok && wrong++ < 5)
                    fprintf(stderr, "utf8 %s case %zu at %zu: rc %d offset %zu (want %zu) %s\n",
                            kind & 1 ? "bad" : "good", i, at, rc, e.offset, body + pre, e.msg);
            }
    }
    CHECK_EQ_INT(wrong, 0);
    buf_free(&b);
    json_obj_free(&o);
}

// ---- conformance corpus -------------------------------------------------------------------

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_corpus(void)
{
    const char *root = getenv("KILN_ROOT");
    struct buf dir = {0};
    buf_printf(&dir, "%s/tests/data/json", root ? root : ".");
    DIR *d = opendir(dir.p);
    CHECK_MSG(d != NULL, "cannot open %s (set KILN_ROOT)", dir.p);
    if (!d) {
        buf_free(&dir);
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if ((de->d_name[0] != 'y' && de->d_name[0] != 'n') || de->d_name[1] != '_')
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    size_t ny = 0, nn = 0;
    struct json_obj o = {0};
    for (size_t i = 0; i < n; i++) {
        struct buf path = {0}, data = {0};
        struct kerr err;
        buf_printf(&path, "%s/%s", dir.p, names[i]);
        CHECK_MSG(read_file(path.p, 1 << 20, &data, &err) == 0, "%s", err.msg);
        bool yes = names[i][0] == 'y';
        struct json_error e = {0};
        int rc = parse_value_exact(data.p, data.len, &e);
        CHECK_MSG(yes ? rc == 0 : rc == -1, "%s: %s", names[i], yes ? e.msg : "accepted");
        // Offsets stay within the document.
        if (rc)
            CHECK(e.offset <= data.len && e.msg[0]);
        // Objects also go through the record parser with the same verdict, and rewrite.
        size_t k = 0;
        while (k < data.len && strchr(" \t\r\n", data.p[k]))
            k++;
        if (k < data.len && data.p[k] == '{') {
            char *c;
            int rc2 = parse_exact(&o, data.p, data.len, &e, &c);
            CHECK_MSG(rc2 == rc, "%s: record parser disagrees", names[i]);
            if (rc2 == 0) {
                struct buf w = {0};
                json_obj_rewrite(&o, NULL, 0, &w);
                CHECK_EQ_MEM(w.p, w.len, o.src, o.len);
                buf_free(&w);
            }
            free(c);
        }
        yes ? ny++ : nn++;
        buf_free(&path);
        buf_free(&data);
        free(names[i]);
    }
    free(names);
    json_obj_free(&o);
    CHECK_MSG(ny >= 20 && nn >= 50, "corpus too small: %zu y_, %zu n_", ny, nn);
    buf_free(&dir);
}

// Rewrite properties on a parsed object: no edits give its bytes; for each field, deleting it,
// replacing it, and adding a new key keep every other field byte-identical and in order.
static bool
check_rewrite_props(const struct json_obj *o)
{
    struct buf w = {0}, key = {0};
    struct json_obj r = {0};
    struct json_error e;
    bool ok = true;
    json_obj_rewrite(o, NULL, 0, &w);
    ok &= w.len == o->len && memcmp(w.p, o->src, o->len) == 0;
    for (size_t i = 0; i < o->n && ok; i++) {
        buf_reset(&key);
        json_unescape(o->fields[i].key, o->fields[i].key_len, &key);
        for (int mode = 0; mode < 2 && ok; mode++) {
            struct json_edit ed[2] = {{key.p, mode ? "[\"new\"]" : NULL, mode ? 7 : 0},
                                      {"added_by_test", "-1.5e3", 6}};
            buf_reset(&w);
            json_obj_rewrite(o, ed, 2, &w);
            ok &= json_obj_parse(&r, w.p, w.len, &e) == 0;
            ok &= r.n == o->n + (mode ? 1 : 0);
            size_t j = 0;
            for (size_t k = 0; k < o->n && ok; k++) {
                const struct json_field *f = &o->fields[k];
                if (k == i && !mode)
                    continue;
                const struct json_field *g = &r.fields[j++];
                ok &= g->key_len == f->key_len && memcmp(g->key, f->key, f->key_len) == 0;
                if (k == i)
                    ok &= g->val.raw_len == 7 && memcmp(g->val.raw, "[\"new\"]", 7) == 0;
                else
                    ok &= g->val.raw_len == f->val.raw_len &&
                          memcmp(g->val.raw, f->val.raw, f->val.raw_len) == 0;
            }
            ok &= j < r.n && r.fields[j].key_len == 13 && r.fields[j].val.raw_len == 6;
        }
    }
    json_obj_free(&r);
    buf_free(&w);
    buf_free(&key);
    return ok;
}

// Every line of tests/tools/genrecords output parses, has the documented fields and passes the
// rewrite properties.
static void
test_genrecords(void)
{
    const char *root = getenv("KILN_ROOT"), *build = getenv("KILN_BUILD");
    if (!root || !build)
        return; // run outside tests/run.sh
    struct buf cmd = {0}, line = {0};
    buf_printf(&cmd, "%s/%s/tests/tools/genrecords --bytes 300000 --seed 7", root, build);
    FILE *f = popen(cmd.p, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    struct json_obj o = {0};
    size_t n = 0, spam = 0, bad = 0;
    char chunk[4096];
    while (fgets(chunk, sizeof chunk, f)) {
        buf_puts(&line, chunk);
        if (line.len == 0 || line.p[line.len - 1] != '\n')
            continue;
        struct json_error e;
        struct json_val v;
        if (json_obj_parse(&o, line.p, line.len - 1, &e) != 0 || o.n != 5 ||
            !json_obj_get(&o, "id") || !json_obj_get(&o, "text") ||
            !json_obj_path(&o, "metadata.headers.x-mailer", &v)) {
            bad++;
            fprintf(stderr, "genrecords line %zu: %s at %zu\n", n + 1, e.msg, e.offset);
        }
        const struct json_field *l = json_obj_get(&o, "label");
        spam += l && json_str_eq(&l->val, "spam", 4);
        if (o.n == 5)
            bad += check_rewrite_props(&o) ? 0 : 1;
        n++;
        buf_reset(&line);
    }
    CHECK_EQ_INT(pclose(f), 0);
    CHECK_EQ_INT(bad, 0);
    CHECK(n > 50 && spam > n / 5 && spam < n * 3 / 5);
    json_obj_free(&o);
    buf_free(&cmd);
    buf_free(&line);
}

int
main(void)
{
    test_record();
    test_errors();
    test_values();
    test_depth();
    test_dups_small();
    test_dups_large();
    test_numbers();
    test_unescape();
    test_utf8();
    test_rewrite();
    test_random_strings();
    test_random_plain_runs();
    test_utf8_in_strings();
    test_string_probes();
    test_short_fields();
    test_corpus();
    test_genrecords();
    return test_summary();
}

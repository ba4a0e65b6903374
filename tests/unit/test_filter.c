// SPDX-License-Identifier: MIT
// Unit tests for the filter stage: table-driven cases read from tests/data/filter/*.tsv.
// The stage's sources are compiled in directly (stages link only through main()).
//
// TSV cells use escapes \n \t \r \\, repetition {TOKEN*N} (TOKEN expanded N times) and
// {@N}: N distinct four-letter words joined by spaces (5N-1 characters; distinct within a
// cell), so a case can sit exactly at a threshold: "the and {word *48}" is 50 words.
#include "../../stages/filter/heur.c"
#include "../../stages/filter/pii.c"
#include "../../stages/filter/rules.c"
#include "../../stages/filter/transform.c"
#include "test.h"

#include <stdlib.h>

static unsigned distinct_next; // next {@N} word, reset per cell

// Expands escapes, {TOKEN*N} and {@N} in s into out.
static void
cell_expand(const char *s, struct buf *out)
{
    out->len = 0;
    buf_reserve(out, 0);
    out->p[0] = 0;
    for (size_t i = 0; s[i];) {
        if (s[i] == '{' && s[i + 1] == '@') {
            char *end;
            long k = strtol(s + i + 2, &end, 10);
            for (long j = 0; j < k; j++) {
                unsigned v = distinct_next++;
                buf_printf(out, "%sq%c%c%c", j ? " " : "", 'a' + v / 676 % 26, 'a' + v / 26 % 26,
                           'a' + v % 26);
            }
            i = (size_t)(end - s) + 1;
            continue;
        }
        if (s[i] == '{') {
            const char *star = strchr(s + i, '*'), *close = star ? strchr(star, '}') : NULL;
            if (star && close) {
                struct buf tok = {0};
                char *inner = xstrndup(s + i + 1, (size_t)(star - s - i - 1));
                long reps = strtol(star + 1, NULL, 10);
                for (long r = 0; r < reps; r++) { // expanded each time: {@N} stays distinct
                    cell_expand(inner, &tok);
                    buf_append(out, tok.p, tok.len);
                }
                free(inner);
                buf_free(&tok);
                i = (size_t)(close - s) + 1;
                continue;
            }
        }
        if (s[i] == '\\' && s[i + 1]) {
            char c = s[i + 1];
            buf_putc(out, c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c);
            i += 2;
            continue;
        }
        buf_putc(out, s[i++]);
    }
}

// Reads a TSV file: calls fn(cells, ncells, lineno) for each non-comment, non-empty line.
static int
tsv_each(const char *name, void (*fn)(char **cells, int n, int lineno))
{
    char path[512];
    const char *root = getenv("KILN_ROOT");
    snprintf(path, sizeof path, "%s/tests/data/filter/%s", root ? root : ".", name);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        CHECK(f != NULL);
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, cases = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        char *cells[8];
        int n = 0;
        for (char *p = line; n < 8;) {
            cells[n++] = p;
            char *t = strchr(p, '\t');
            if (!t)
                break;
            *t = 0;
            p = t + 1;
        }
        fn(cells, n, lineno);
        cases++;
    }
    free(line);
    fclose(f);
    return cases;
}

// ---- heuristics.tsv: set, overrides, expected, text ----------------------------------------

static struct heur_ctx hx;

static void
heur_case(char **c, int n, int lineno)
{
    CHECK_MSG(n == 4, "heuristics.tsv:%d: want 4 cells, got %d", lineno, n);
    if (n != 4)
        return;
    int s = heur_set_find(c[0]);
    CHECK_MSG(s >= 0, "heuristics.tsv:%d: unknown set %s", lineno, c[0]);
    if (s < 0)
        return;
    double p[HEUR_MAX_PARAMS];
    heur_params_default(s, p);
    if (strcmp(c[1], "-") != 0) {
        char *ov = xstrdup(c[1]), *save = NULL;
        for (char *kv = strtok_r(ov, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            *eq = 0;
            int k = heur_param_find(s, kv);
            CHECK_MSG(k >= 0, "heuristics.tsv:%d: unknown param %s", lineno, kv);
            if (k >= 0)
                p[k] = strtod(eq + 1, NULL);
        }
        free(ov);
    }
    struct buf text = {0}, out = {0}, want = {0};
    distinct_next = 0;
    cell_expand(c[3], &text);
    struct heur_result r;
    heur_run(&hx, s, p, text.p, text.len, false, &r, &out);
    // Expected: keep | keep=>TEXT | reason | reason=value
    char *exp = c[2];
    if (strncmp(exp, "keep", 4) == 0) {
        CHECK_MSG(r.reason == NULL, "heuristics.tsv:%d: expected keep, got %s (%g)", lineno,
                  r.reason, r.value);
        if (strncmp(exp, "keep=>", 6) == 0) {
            cell_expand(exp + 6, &want);
            CHECK_MSG(r.rewritten && out.len == want.len && memcmp(out.p, want.p, want.len) == 0,
                      "heuristics.tsv:%d: rewritten to \"%.*s\"", lineno, (int)out.len,
                      out.p ? out.p : "");
        }
    } else {
        char *eq = strchr(exp, '=');
        size_t rl = eq ? (size_t)(eq - exp) : strlen(exp);
        CHECK_MSG(r.reason && strlen(r.reason) == rl && strncmp(r.reason, exp, rl) == 0,
                  "heuristics.tsv:%d: expected %s, got %s (%g)", lineno, exp,
                  r.reason ? r.reason : "keep", r.value);
        if (eq && r.reason)
            CHECK_MSG(fabs(r.value - strtod(eq + 1, NULL)) < 1e-9,
                      "heuristics.tsv:%d: value %.12g, expected %s", lineno, r.value, eq + 1);
    }
    // Annotating measures everything and agrees on the reason.
    struct heur_result ra;
    heur_run(&hx, s, p, text.p, text.len, true, &ra, &out);
    CHECK_MSG((ra.reason == NULL) == (r.reason == NULL) &&
                  (!r.reason || strcmp(ra.reason, r.reason) == 0),
              "heuristics.tsv:%d: annotate disagrees", lineno);
    buf_free(&text);
    buf_free(&out);
    buf_free(&want);
}

// ---- pii.tsv: types, input, expected output ------------------------------------------------

static void
pii_case(char **c, int n, int lineno)
{
    CHECK_MSG(n == 3, "pii.tsv:%d: want 3 cells, got %d", lineno, n);
    if (n != 3)
        return;
    unsigned mask;
    struct kerr err;
    CHECK_MSG(pii_mask_parse(c[0], &mask, &err) == 0, "pii.tsv:%d: %s", lineno, err.msg);
    struct buf in = {0}, want = {0}, out = {0};
    cell_expand(c[1], &in);
    cell_expand(c[2], &want);
    uint64_t counts[PII_NTYPES] = {0};
    size_t k = pii_redact(in.p, in.len, mask, &out, counts);
    if (k == 0) { // nothing replaced: out untouched
        CHECK_EQ_INT(out.len, 0);
        buf_append(&out, in.p, in.len);
    }
    CHECK_MSG(out.len == want.len && memcmp(out.p, want.p, want.len) == 0,
              "pii.tsv:%d:\n  got  %s\n  want %s", lineno, out.p, want.p);
    uint64_t sum = 0;
    for (int t = 0; t < PII_NTYPES; t++)
        sum += counts[t];
    CHECK_EQ_INT(sum, k);
    buf_free(&in);
    buf_free(&want);
    buf_free(&out);
}

static void
test_pii_mask(void)
{
    unsigned m;
    struct kerr err;
    CHECK_EQ_INT(pii_mask_parse("email,ipv6", &m, &err), 0);
    CHECK_EQ_INT(m, (1u << PII_EMAIL) | (1u << PII_IPV6));
    CHECK_EQ_INT(pii_mask_parse("all", &m, &err), 0);
    CHECK_EQ_INT(m, PII_ALL);
    CHECK_EQ_INT(pii_mask_parse("email,ssn", &m, &err), -1);
    CHECK(strstr(err.msg, "'ssn'") != NULL);
}

// ---- rules.tsv: rules text, ok[:steps] | error:LINE:COL:part ----------------------------------

static void
rules_case(char **c, int n, int lineno)
{
    CHECK_MSG(n == 2, "rules.tsv:%d: want 2 cells, got %d", lineno, n);
    if (n != 2)
        return;
    struct buf text = {0};
    cell_expand(c[0], &text);
    struct rules r;
    rules_init(&r);
    struct kerr err = {{0}};
    int rc = rules_parse(&r, "t.rules", text.p, text.len, &err);
    if (strncmp(c[1], "ok", 2) == 0) {
        CHECK_MSG(rc == 0, "rules.tsv:%d: %s", lineno, err.msg);
        if (c[1][2] == ':')
            CHECK_MSG(r.n == (size_t)atoi(c[1] + 3), "rules.tsv:%d: %zu steps", lineno, r.n);
    } else {
        int line = 0, col = 0, off = 0;
        sscanf(c[1], "error:%d:%d:%n", &line, &col, &off);
        char want[128];
        snprintf(want, sizeof want, "t.rules:%d:%d: ", line, col);
        CHECK_MSG(rc == -1 && strncmp(err.msg, want, strlen(want)) == 0 &&
                      strstr(err.msg, c[1] + off) != NULL,
                  "rules.tsv:%d: got \"%s\", want %s", lineno, rc ? err.msg : "ok", c[1]);
    }
    rules_free(&r);
    buf_free(&text);
}

// ---- rules_eval.tsv: rule, record, pass | fail[=value] ----------------------------------------

static struct rules_scratch rx;

static void
eval_case(char **c, int n, int lineno)
{
    CHECK_MSG(n == 3, "rules_eval.tsv:%d: want 3 cells, got %d", lineno, n);
    if (n != 3)
        return;
    struct rules r;
    rules_init(&r);
    struct kerr err;
    if (rules_parse(&r, "t.rules", c[0], strlen(c[0]), &err) < 0 || r.n != 1) {
        CHECK_MSG(0, "rules_eval.tsv:%d: %s", lineno, err.msg);
        rules_free(&r);
        return;
    }
    struct json_obj o;
    json_obj_init(&o);
    struct json_error je;
    CHECK_MSG(json_obj_parse(&o, c[1], strlen(c[1]), &je) == 0, "rules_eval.tsv:%d: %s", lineno,
              je.msg);
    struct buf text = {0};
    const struct json_field *tf = json_obj_get(&o, "text");
    if (tf && tf->val.type == JSON_STRING)
        json_str(&tf->val, &text);
    struct rule_value v;
    int rc = rules_eval(&r.steps[0], &o, "text", tf ? (text.p ? text.p : "") : NULL, text.len,
                        &rx, &v, &err);
    if (strcmp(c[2], "pass") == 0) {
        CHECK_MSG(rc == 1, "rules_eval.tsv:%d: expected pass", lineno);
    } else {
        CHECK_MSG(rc == 0, "rules_eval.tsv:%d: expected fail, got %d", lineno, rc);
        const char *eq = strchr(c[2], '=');
        if (eq && strcmp(eq + 1, "missing") == 0) {
            CHECK_MSG(v.missing, "rules_eval.tsv:%d: expected missing", lineno);
        } else if (eq && eq[1] == '"') {
            size_t k = strlen(eq + 2) - 1;
            CHECK_MSG(v.str && v.str_len == k && memcmp(v.str, eq + 2, k) == 0,
                      "rules_eval.tsv:%d: value \"%.*s\"", lineno, (int)v.str_len,
                      v.str ? v.str : "");
        } else if (eq) {
            CHECK_MSG(v.is_num && fabs(v.num - strtod(eq + 1, NULL)) < 1e-12,
                      "rules_eval.tsv:%d: value %g", lineno, v.num);
        }
    }
    buf_free(&text);
    json_obj_free(&o);
    rules_free(&r);
}

static void
test_rules_cli(void)
{
    struct rules r;
    rules_init(&r);
    struct kerr err;
    CHECK_EQ_INT(rules_set_option(&r, "gopher-quality.min_words=20", &err), 0);
    CHECK_EQ_INT(rules_set_option(&r, "gopher-quality.min_words=abc", &err), -1);
    CHECK(strstr(err.msg, "--set 'gopher-quality.min_words=abc': expected a number") != NULL);
    CHECK_EQ_INT(rules_set_option(&r, "nope.x=1", &err), -1);
    CHECK_EQ_INT(rules_add_sets(&r, "default,c4", &err), 0);
    CHECK_EQ_INT(rules_add_sets(&r, "gopher", &err), -1);
    CHECK_EQ_INT(rules_add_transforms(&r, "email,html", &err), 0);
    CHECK_EQ_INT(rules_add_redact(&r, "all", &err), 0);
    CHECK_EQ_INT(rules_add_redact(&r, "mail", &err), -1);
    CHECK(strstr(err.msg, "--redact 'mail'") != NULL);
    const char *file = "use gopher-quality max_doc_words=500\nset gopher-quality.min_doc_words=10\n";
    CHECK_EQ_INT(rules_parse(&r, "f", file, strlen(file), &err), 0);
    rules_finish(&r);
    CHECK_EQ_INT(r.n, 7);
    CHECK_EQ_INT(r.steps[0].params[0], 10); // --set then file 'set': the last one wins
    CHECK_EQ_INT(r.steps[6].params[0], 10);
    CHECK_EQ_INT(r.steps[6].params[1], 500); // inline only for that use
    CHECK_EQ_INT(r.steps[0].params[1], 100000);
    CHECK_EQ_INT(r.steps[3].kind, STEP_TRANSFORM);
    CHECK_EQ_INT(r.steps[5].pii_mask, PII_ALL);
    rules_free(&r);
}

// ---- transform.tsv: transform, input, expected ----------------------------------------------

static void
transform_case(char **c, int n, int lineno)
{
    CHECK_MSG(n == 3 || (n == 2 && !c[1][0]), "transform.tsv:%d: want 3 cells, got %d", lineno, n);
    if (n != 3)
        return;
    int t = -1;
    for (int i = 0; i < TR_COUNT; i++)
        if (strcmp(transform_names[i], c[0]) == 0)
            t = i;
    CHECK_MSG(t >= 0, "transform.tsv:%d: unknown transform %s", lineno, c[0]);
    if (t < 0)
        return;
    struct buf in = {0}, want = {0}, out = {0};
    cell_expand(c[1], &in);
    cell_expand(c[2], &want);
    struct kerr err;
    int rc = transform_apply((enum transform_id)t, in.p, in.len, &out, &err);
    CHECK_MSG(rc >= 0 && out.len == want.len && memcmp(out.p, want.p, want.len) == 0,
              "transform.tsv:%d:\n  got  \"%s\"\n  want \"%s\"", lineno, out.p, want.p);
    CHECK_EQ_INT(rc, !(in.len == want.len && memcmp(in.p, want.p, in.len) == 0));
    CHECK(utf8_valid_prefix(out.p, out.len) == out.len);
    buf_free(&in);
    buf_free(&want);
    buf_free(&out);
}

static void
test_words(void)
{
    struct ts_words w = {0};
    const char *s = "Hello, world... (don't) e-mail a@b.com \xE2\x80\x9CQuoted\xE2\x80\x9D it\xE2\x80\x99s #";
    ts_words_split(s, strlen(s), &w);
    const char *want[] = {"Hello", ",", "world", "...", "(", "do", "n't", ")", "e-mail",
                          "a@b.com", "\xE2\x80\x9C", "Quoted", "\xE2\x80\x9D", "it",
                          "\xE2\x80\x99s", "#"};
    CHECK_EQ_INT(w.n, KILN_ARRAY_LEN(want));
    for (size_t i = 0; i < w.n && i < KILN_ARRAY_LEN(want); i++)
        CHECK_EQ_MEM(s + w.v[i].off, w.v[i].len, want[i], strlen(want[i]));
    CHECK(w.v[1].flags & TS_WORD_SYMBOL);
    CHECK(w.v[0].flags & TS_WORD_ALPHA);
    CHECK_EQ_INT(w.v[11].cps, 6);
    ts_words_free(&w);

    // splitlines: \r\n is one separator, a trailing separator adds no line.
    const char *t = "a\r\nb\rc\n\nd\n";
    size_t pos = 0, a, len, k = 0;
    while (ts_line_next(t, strlen(t), &pos, &a, &len))
        k++;
    CHECK_EQ_INT(k, 5);

    struct ts_classes c;
    ts_classes_count("Ab1 \xC3\x89!", 7, &c);
    CHECK_EQ_INT(c.chars, 6);
    CHECK_EQ_INT(c.letters, 3);
    CHECK_EQ_INT(c.upper, 2);
    CHECK_EQ_INT(c.digits, 1);
    CHECK_EQ_INT(c.space, 1);
    CHECK_EQ_INT(c.symbols, 1);
    CHECK_EQ_INT(c.nonascii, 1);
}

int
main(void)
{
    test_words();
    heur_ctx_init(&hx);
    CHECK(tsv_each("heuristics.tsv", heur_case) > 0);
    heur_ctx_free(&hx);
    test_pii_mask();
    CHECK(tsv_each("pii.tsv", pii_case) > 0);
    CHECK(tsv_each("rules.tsv", rules_case) > 0);
    rules_scratch_init(&rx);
    CHECK(tsv_each("rules_eval.tsv", eval_case) > 0);
    regex_set_jit(false); // the same answers without the PCRE2 JIT
    CHECK(tsv_each("rules_eval.tsv", eval_case) > 0);
    regex_set_jit(true);
    rules_scratch_free(&rx);
    test_rules_cli();
    CHECK(tsv_each("transform.tsv", transform_case) > 0);
    return test_summary();
}

// SPDX-License-Identifier: MIT
// Unit tests for the filter stage: table-driven cases read from tests/data/filter/*.tsv.
// The stage's sources are compiled in directly (stages link only through main()).
//
// TSV cells use escapes \n \t \r \\, repetition {TOKEN*N} (TOKEN expanded N times) and
// {@N}: N distinct four-letter words joined by spaces (5N-1 characters; distinct within a
// cell), so a case can sit exactly at a threshold: "the and {word *48}" is 50 words.
#include "../../stages/filter/heur.c"
#include "../../stages/filter/pii.c"
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
    return test_summary();
}

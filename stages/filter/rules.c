// SPDX-License-Identifier: MIT
// rules: the rules-file parser and rule evaluation (format in rules.h). The parser works one
// line at a time with a cursor; every error names the line and the 1-based column (in bytes)
// where the offending token starts.
#include "rules.h"

#include "pii.h"
#include "textstats.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const rule_func_names[FN_COUNT] = {"chars",   "words",     "lines",
                                               "letters", "digits",    "symbols",
                                               "uppercase", "nonascii", "whitespace"};
const char *const transform_names[TR_COUNT] = {"email", "html", "nfkc", "whitespace"};

void
rules_init(struct rules *r)
{
    memset(r, 0, sizeof *r);
    for (int s = 0; s < HEUR_NSETS; s++)
        heur_params_default(s, r->set_params[s]);
}

static void
step_free(struct step *st)
{
    free(st->name);
    free(st->field);
    regex_del(st->re);
    for (size_t i = 0; i < st->n_items; i++)
        free(st->items[i]);
    free(st->items);
}

void
rules_free(struct rules *r)
{
    for (size_t i = 0; i < r->n; i++)
        step_free(&r->steps[i]);
    free(r->steps);
    memset(r, 0, sizeof *r);
}

static struct step *
step_new(struct rules *r, enum step_kind kind, const char *name, int line, int col)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->steps = xrealloc(r->steps, r->cap * sizeof *r->steps);
    }
    struct step *st = &r->steps[r->n++];
    memset(st, 0, sizeof *st);
    st->kind = kind;
    st->name = xstrdup(name);
    st->line = line;
    st->col = col;
    return st;
}

// ---- parameters (shared by "set", "use ... k=v" and --set) -------------------------------

// Checks a value for parameter k of set s. Returns NULL or a message.
static const char *
param_check(int s, int k, double v, char *msg, size_t cap)
{
    const struct heur_param *p = &heur_sets[s].params[k];
    if (!isfinite(v) || v < p->min || v > p->max) {
        snprintf(msg, cap, "threshold %s.%s = %g out of range [%g, %g]", heur_sets[s].name,
                 p->name, v, p->min, p->max);
        return msg;
    }
    if (p->integer && v != floor(v)) {
        snprintf(msg, cap, "threshold %s.%s must be an integer", heur_sets[s].name, p->name);
        return msg;
    }
    return NULL;
}

// ---- the parser -----------------------------------------------------------------------------

struct cursor {
    const char *name;
    const char *line; // start of the current line
    const char *p, *end; // position and end of the line (comment excluded)
    int lineno;
    bool cmdline; // a command-line option, not a file: steps get line 0
    struct kerr *err;
};

static int
perr(struct cursor *c, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
perr(struct cursor *c, const char *at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kerr_set(c->err, "%s:%d:%d: %s", c->name, c->lineno, (int)(at - c->line) + 1, msg);
}

static void
skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r'))
        c->p++;
}

static bool
at_end(struct cursor *c)
{
    skip_ws(c);
    return c->p >= c->end;
}

static bool
ident_char(char ch, bool first)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
           (!first && ((ch >= '0' && ch <= '9') || ch == '-'));
}

// An identifier (letters, digits, '_', '-'; extra chars allowed in `also`). Returns its
// length (0 = none) and sets *start.
static size_t
ident(struct cursor *c, const char *also, const char **start)
{
    skip_ws(c);
    const char *a = c->p;
    while (c->p < c->end &&
           (ident_char(*c->p, c->p == a) || (c->p > a && also && strchr(also, *c->p))))
        c->p++;
    *start = a;
    return (size_t)(c->p - a);
}

static bool
accept(struct cursor *c, const char *tok)
{
    skip_ws(c);
    size_t k = strlen(tok);
    if ((size_t)(c->end - c->p) >= k && memcmp(c->p, tok, k) == 0) {
        c->p += k;
        return true;
    }
    return false;
}

static int
number(struct cursor *c, double *v)
{
    skip_ws(c);
    const char *a = c->p;
    char tmp[64];
    size_t k = 0;
    while (a + k < c->end && k < sizeof tmp - 1 && strchr("0123456789+-.eE", a[k]))
        k++;
    memcpy(tmp, a, k);
    tmp[k] = 0;
    char *e;
    *v = k ? strtod(tmp, &e) : 0;
    if (!k || *e || !isfinite(*v))
        return perr(c, a, "expected a number");
    c->p = a + k;
    return 0;
}

static int
expect_end(struct cursor *c)
{
    if (!at_end(c))
        return perr(c, c->p, "unexpected '%.*s'", (int)(c->end - c->p), c->p);
    return 0;
}

// "use SET [k=v ...]"
static int
parse_use(struct rules *r, struct cursor *c, const char *kw)
{
    const char *a;
    size_t k = ident(c, NULL, &a);
    if (!k)
        return perr(c, c->p, "expected a rule set name after 'use'");
    char *name = xstrndup(a, k);
    int s = heur_set_find(name);
    free(name);
    if (s < 0)
        return perr(c, a, "unknown rule set '%.*s' (expected gopher-quality, "
                          "gopher-repetition, c4 or fineweb)", (int)k, a);
    struct step *st = step_new(r, STEP_SET, heur_sets[s].name, c->lineno, (int)(kw - c->line) + 1);
    st->set = s;
    while (!at_end(c)) {
        size_t pk = ident(c, NULL, &a);
        if (!pk)
            return perr(c, c->p, "expected PARAM=VALUE");
        char *pn = xstrndup(a, pk);
        int pi = heur_param_find(s, pn);
        free(pn);
        if (pi < 0)
            return perr(c, a, "unknown threshold '%.*s' of %s", (int)pk, a, heur_sets[s].name);
        if (!accept(c, "="))
            return perr(c, c->p, "expected '=' after %.*s", (int)pk, a);
        const char *vat = (skip_ws(c), c->p);
        double v;
        if (number(c, &v) < 0)
            return -1;
        char msg[256];
        if (param_check(s, pi, v, msg, sizeof msg))
            return perr(c, vat, "%s", msg);
        st->inline_val[pi] = v;
        st->inline_mask |= 1u << pi;
    }
    return 0;
}

// "SET.PARAM = VALUE" (after "set"); also used by --set.
static int
parse_assign(struct rules *r, struct cursor *c)
{
    const char *a;
    size_t k = ident(c, NULL, &a);
    if (!k)
        return perr(c, c->p, "expected SET.PARAM");
    char *name = xstrndup(a, k);
    int s = heur_set_find(name);
    free(name);
    if (s < 0)
        return perr(c, a, "unknown rule set '%.*s'", (int)k, a);
    if (!accept(c, "."))
        return perr(c, c->p, "expected '.' after the set name");
    const char *pa;
    size_t pk = ident(c, NULL, &pa);
    char *pn = xstrndup(pa, pk);
    int pi = heur_param_find(s, pn);
    free(pn);
    if (pi < 0)
        return perr(c, pa, "unknown threshold '%.*s' of %s", (int)pk, pa, heur_sets[s].name);
    if (!accept(c, "="))
        return perr(c, c->p, "expected '='");
    const char *vat = (skip_ws(c), c->p);
    double v;
    if (number(c, &v) < 0)
        return -1;
    char msg[256];
    if (param_check(s, pi, v, msg, sizeof msg))
        return perr(c, vat, "%s", msg);
    r->set_params[s][pi] = v;
    return expect_end(c);
}

// Transform names or PII types separated by commas and/or spaces. Each transform is a step;
// the PII types of one statement make one redaction step.
static int
parse_names(struct rules *r, struct cursor *c, const char *kw, bool transform)
{
    int count = 0;
    unsigned mask = 0;
    while (!at_end(c)) {
        if (count && accept(c, ","))
            continue;
        const char *a;
        size_t k = ident(c, NULL, &a);
        if (!k)
            return perr(c, c->p, "expected a %s name", transform ? "transform" : "PII type");
        char *nm = xstrndup(a, k);
        if (transform) {
            int t = -1;
            for (int i = 0; i < TR_COUNT; i++)
                if (strcmp(transform_names[i], nm) == 0)
                    t = i;
            if (t < 0) {
                free(nm);
                return perr(c, a, "unknown transform '%.*s' (expected email, html, nfkc or "
                                  "whitespace)", (int)k, a);
            }
            struct step *st = step_new(r, STEP_TRANSFORM, nm, c->cmdline ? 0 : c->lineno,
                                       c->cmdline ? 0 : (int)(a - c->line) + 1);
            st->tr = (enum transform_id)t;
        } else {
            unsigned m;
            struct kerr e;
            if (pii_mask_parse(nm, &m, &e) < 0) {
                free(nm);
                return perr(c, a, "%s", e.msg);
            }
            mask |= m;
        }
        free(nm);
        count++;
    }
    if (!count)
        return perr(c, c->p, "expected at least one name after '%s'",
                    transform ? "transform" : "redact");
    if (!transform) {
        struct step *st = step_new(r, STEP_REDACT, "redact", c->cmdline ? 0 : c->lineno,
                                   c->cmdline ? 0 : (int)(kw - c->line) + 1);
        st->pii_mask = mask;
    }
    return 0;
}

// A dotted field path: identifiers joined by single dots.
static int
parse_field(struct cursor *c, char **out, const char **at)
{
    const char *a;
    size_t k = ident(c, ".", &a);
    *at = a;
    if (!k || a[k - 1] == '.')
        return perr(c, a, "expected a field name (e.g. text, label, metadata.url)");
    for (size_t i = 1; i < k; i++)
        if (a[i] == '.' && !ident_char(a[i + 1], true))
            return perr(c, a + i + 1, "bad field path: each part must start with a letter or '_'");
    *out = xstrndup(a, k);
    return 0;
}

static int
parse_op(struct cursor *c, enum rule_op *op)
{
    skip_ws(c);
    static const struct {
        const char *t;
        enum rule_op op;
    } ops[] = {{"<=", OP_LE}, {">=", OP_GE}, {"==", OP_EQ}, {"!=", OP_NE},
               {"<", OP_LT},  {">", OP_GT}};
    for (size_t i = 0; i < KILN_ARRAY_LEN(ops); i++)
        if (accept(c, ops[i].t)) {
            *op = ops[i].op;
            return 0;
        }
    return perr(c, c->p, "expected a comparison (< <= > >= == !=)");
}

// /regex/flags with \/ for a slash inside.
static int
parse_regex(struct cursor *c, struct step *st)
{
    skip_ws(c);
    const char *a = c->p;
    if (c->p >= c->end || *c->p != '/')
        return perr(c, c->p, "expected /regex/");
    struct buf pat = {0};
    c->p++;
    while (c->p < c->end && *c->p != '/') {
        if (*c->p == '\\' && c->p + 1 < c->end && c->p[1] == '/') {
            buf_putc(&pat, '/');
            c->p += 2;
            continue;
        }
        buf_putc(&pat, *c->p++);
    }
    if (c->p >= c->end) {
        buf_free(&pat);
        return perr(c, a, "unterminated regex (missing closing '/')");
    }
    c->p++;
    int flags = 0;
    while (c->p < c->end && ident_char(*c->p, true)) {
        char f = *c->p;
        if (f == 'i')
            flags |= REGEX_CASELESS;
        else if (f == 'm')
            flags |= REGEX_MULTILINE;
        else if (f == 's')
            flags |= REGEX_DOTALL;
        else {
            buf_free(&pat);
            return perr(c, c->p, "unknown regex flag '%c' (expected i, m or s)", f);
        }
        c->p++;
    }
    struct kerr e;
    st->re = regex_new(pat.p ? pat.p : "", flags, &e);
    buf_free(&pat);
    if (!st->re) {
        // e.msg is "column C: message": point into the rules file.
        int col = 0;
        const char *msg = e.msg;
        if (sscanf(e.msg, "column %d:", &col) == 1 && strchr(e.msg, ':'))
            msg = strchr(e.msg, ':') + 2;
        return perr(c, a + (col > 0 ? col : 1), "bad regex: %s", msg);
    }
    return 0;
}

// A quoted string "..." (with \" and \\) or a bare word.
static int
parse_item(struct cursor *c, char **out)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == '"') {
        const char *a = c->p++;
        struct buf b = {0};
        while (c->p < c->end && *c->p != '"') {
            if (*c->p == '\\' && c->p + 1 < c->end)
                c->p++;
            buf_putc(&b, *c->p++);
        }
        if (c->p >= c->end) {
            buf_free(&b);
            return perr(c, a, "unterminated string");
        }
        c->p++;
        *out = b.p ? buf_detach(&b) : xstrdup("");
        return 0;
    }
    const char *a = c->p;
    while (c->p < c->end && !strchr(" \t,[]\"", *c->p))
        c->p++;
    if (c->p == a)
        return perr(c, a, "expected a list item");
    *out = xstrndup(a, (size_t)(c->p - a));
    return 0;
}

static int
parse_list(struct cursor *c, struct step *st)
{
    if (!accept(c, "["))
        return perr(c, c->p, "expected '[' to start the list");
    size_t cap = 0;
    if (accept(c, "]"))
        return perr(c, c->p - 1, "empty list");
    for (;;) {
        char *item = NULL;
        if (parse_item(c, &item) < 0)
            return -1;
        if (st->n_items == cap) {
            cap = cap ? cap * 2 : 8;
            st->items = xrealloc(st->items, cap * sizeof *st->items);
        }
        st->items[st->n_items++] = item;
        if (accept(c, "]"))
            return 0;
        if (!accept(c, ","))
            return perr(c, c->p, "expected ',' or ']'");
    }
}

static int
parse_rule(struct rules *r, struct cursor *c, const char *name, size_t name_len)
{
    char *nm = xstrndup(name, name_len);
    for (size_t i = 0; i < r->n; i++)
        if (r->steps[i].kind == STEP_RULE && strcmp(r->steps[i].name, nm) == 0) {
            free(nm);
            return perr(c, name, "duplicate rule name '%.*s' (first on line %d)", (int)name_len,
                        name, r->steps[i].line);
        }
    struct step *st = step_new(r, STEP_RULE, nm, c->lineno, (int)(name - c->line) + 1);
    free(nm);
    const char *a;
    skip_ws(c);
    if (at_end(c))
        return perr(c, c->p, "expected a condition after ':'");
    const char *save = c->p;
    size_t k = ident(c, NULL, &a);
    skip_ws(c);
    if (k && c->p < c->end && *c->p == '(') { // FUNC(FIELD) OP NUMBER
        int fn = -1;
        for (int i = 0; i < FN_COUNT; i++)
            if (strlen(rule_func_names[i]) == k && strncmp(rule_func_names[i], a, k) == 0)
                fn = i;
        if (fn < 0)
            return perr(c, a, "unknown function '%.*s' (expected chars, words, lines, letters, "
                              "digits, symbols, uppercase, nonascii, whitespace)", (int)k, a);
        c->p++;
        const char *fat;
        if (parse_field(c, &st->field, &fat) < 0)
            return -1;
        if (!accept(c, ")"))
            return perr(c, c->p, "expected ')'");
        st->rk = RULE_MEASURE;
        st->fn = (enum rule_func)fn;
        if (parse_op(c, &st->op) < 0)
            return -1;
        const char *vat = (skip_ws(c), c->p);
        if (number(c, &st->num) < 0)
            return -1;
        if (fn <= FN_LINES && st->num < 0)
            return perr(c, vat, "threshold %g out of range: %s() counts are >= 0", st->num,
                        rule_func_names[fn]);
        if (fn > FN_LINES && (st->num < 0 || st->num > 1))
            return perr(c, vat, "threshold %g out of range: %s() is a share in [0, 1]",
                        st->num, rule_func_names[fn]);
        return expect_end(c);
    }
    c->p = save;
    const char *fat;
    if (parse_field(c, &st->field, &fat) < 0)
        return -1;
    skip_ws(c);
    if (accept(c, "!~") || accept(c, "~")) {
        st->rk = RULE_REGEX;
        st->negate = c->p[-2] == '!';
        if (parse_regex(c, st) < 0)
            return -1;
        return expect_end(c);
    }
    const char *kat = c->p;
    const char *w;
    size_t wk = ident(c, NULL, &w);
    if (wk == 3 && strncmp(w, "not", 3) == 0) {
        st->negate = true;
        wk = ident(c, NULL, &w);
    }
    if (wk == 2 && strncmp(w, "in", 2) == 0) {
        st->rk = RULE_LIST;
        if (parse_list(c, st) < 0)
            return -1;
        return expect_end(c);
    }
    if (st->negate)
        return perr(c, w, "expected 'in' after 'not'");
    c->p = kat;
    st->rk = RULE_NUMBER;
    if (parse_op(c, &st->op) < 0)
        return perr(c, kat, "expected a comparison, '~', '!~', 'in' or 'not in' after the field");
    if (number(c, &st->num) < 0)
        return -1;
    return expect_end(c);
}

// Finds where a comment starts on the line: '#' outside "strings" and /regexes/.
static const char *
comment_start(const char *a, const char *e)
{
    bool str = false, re = false;
    for (const char *p = a; p < e; p++) {
        if ((str || re) && *p == '\\' && p + 1 < e) {
            p++;
            continue;
        }
        if (!re && *p == '"')
            str = !str;
        else if (!str && *p == '/' && (re || p == a || strchr(" \t~", p[-1])))
            re = !re;
        else if (!str && !re && *p == '#')
            return p;
    }
    return e;
}

static int
parse_line(struct rules *r, struct cursor *c)
{
    if (at_end(c))
        return 0;
    const char *a;
    size_t k = ident(c, ".", &a);
    if (!k)
        return perr(c, c->p, "expected a rule (NAME: CONDITION) or use/set/transform/redact");
    skip_ws(c);
    if (c->p < c->end && *c->p == ':')
        return c->p++, parse_rule(r, c, a, k);
    if (k == 3 && strncmp(a, "use", 3) == 0)
        return parse_use(r, c, a);
    if (k == 3 && strncmp(a, "set", 3) == 0)
        return parse_assign(r, c);
    if (k == 9 && strncmp(a, "transform", 9) == 0)
        return parse_names(r, c, a, true);
    if (k == 6 && strncmp(a, "redact", 6) == 0)
        return parse_names(r, c, a, false);
    return perr(c, a, "unknown statement '%.*s' (a rule needs ':' after its name)", (int)k, a);
}

int
rules_parse(struct rules *r, const char *name, const char *text, size_t n, struct kerr *err)
{
    struct cursor c = {.name = name, .err = err};
    const char *p = text, *end = text + n;
    c.lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        c.lineno++;
        c.line = p;
        c.p = p;
        if (memchr(p, 0, (size_t)(le - p)))
            return perr(&c, (const char *)memchr(p, 0, (size_t)(le - p)), "NUL byte");
        size_t valid = utf8_valid_prefix(p, (size_t)(le - p));
        if (valid < (size_t)(le - p))
            return perr(&c, p + valid, "invalid UTF-8");
        c.end = comment_start(p, le);
        if (parse_line(r, &c) < 0)
            return -1;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

// Rewrites a cursor message "OPT:1:COL: what" as "OPT 'ARG': what" (reads better for options).
static int
option_error(struct kerr *err, const char *opt, const char *arg)
{
    const char *m = strchr(err->msg, ' ');
    char tmp[sizeof err->msg];
    snprintf(tmp, sizeof tmp, "%s", m ? m + 1 : err->msg);
    return kerr_set(err, "%s '%s': %s", opt, arg, tmp);
}

int
rules_set_option(struct rules *r, const char *assign, struct kerr *err)
{
    struct cursor c = {.name = "--set", .line = assign, .p = assign,
                       .end = assign + strlen(assign), .lineno = 1, .cmdline = true, .err = err};
    return parse_assign(r, &c) < 0 ? option_error(err, "--set", assign) : 0;
}

// A comma-separated command-line list of transforms or PII types.
static int
add_list(struct rules *r, const char *opt, const char *list, bool transform, struct kerr *err)
{
    struct cursor c = {.name = opt, .line = list, .p = list, .end = list + strlen(list),
                       .lineno = 1, .cmdline = true, .err = err};
    return parse_names(r, &c, list, transform) < 0 ? option_error(err, opt, list) : 0;
}

int
rules_add_transforms(struct rules *r, const char *list, struct kerr *err)
{
    return add_list(r, "--transform", list, true, err);
}

int
rules_add_redact(struct rules *r, const char *list, struct kerr *err)
{
    return add_list(r, "--redact", list, false, err);
}

int
rules_add_sets(struct rules *r, const char *list, struct kerr *err)
{
    const char *p = list;
    while (*p) {
        size_t k = strcspn(p, ",");
        char *nm = xstrndup(p, k);
        if (strcmp(nm, "default") == 0) {
            step_new(r, STEP_SET, "gopher-quality", 0, 0)->set = HEUR_GOPHER_QUALITY;
            step_new(r, STEP_SET, "gopher-repetition", 0, 0)->set = HEUR_GOPHER_REPETITION;
        } else {
            int s = heur_set_find(nm);
            if (s < 0) {
                kerr_set(err, "--builtin: unknown rule set '%s' (expected gopher-quality, "
                              "gopher-repetition, c4, fineweb or default)", nm);
                free(nm);
                return -1;
            }
            step_new(r, STEP_SET, heur_sets[s].name, 0, 0)->set = s;
        }
        free(nm);
        p += k;
        if (*p == ',')
            p++;
    }
    return 0;
}

void
rules_finish(struct rules *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct step *st = &r->steps[i];
        if (st->kind != STEP_SET)
            continue;
        for (size_t k = 0; k < heur_sets[st->set].n_params; k++)
            st->params[k] =
                (st->inline_mask >> k) & 1 ? st->inline_val[k] : r->set_params[st->set][k];
    }
}

// ---- evaluation -----------------------------------------------------------------------------

void
rules_scratch_init(struct rules_scratch *x)
{
    memset(x, 0, sizeof *x);
    x->m = regex_match_new();
}

void
rules_scratch_free(struct rules_scratch *x)
{
    buf_free(&x->val);
    regex_match_del(x->m);
    ts_words_free(&x->words);
    memset(x, 0, sizeof *x);
}

static bool
compare(double a, enum rule_op op, double b)
{
    switch (op) {
    case OP_LT:
        return a < b;
    case OP_LE:
        return a <= b;
    case OP_GT:
        return a > b;
    case OP_GE:
        return a >= b;
    case OP_EQ:
        return a == b;
    case OP_NE:
        return a != b;
    }
    return false;
}

static double
rule_measure(enum rule_func fn, const char *s, size_t n, struct rules_scratch *x)
{
    if (fn == FN_CHARS)
        return (double)ts_cps(s, n);
    if (fn == FN_WORDS) {
        ts_words_split(s, n, &x->words);
        size_t k = 0;
        for (size_t i = 0; i < x->words.n; i++)
            k += !(x->words.v[i].flags & TS_WORD_SYMBOL);
        return (double)k;
    }
    if (fn == FN_LINES) {
        size_t pos = 0, a, len, k = 0;
        while (ts_line_next(s, n, &pos, &a, &len))
            k++;
        return (double)k;
    }
    struct ts_classes c;
    ts_classes_count(s, n, &c);
    double total = (double)c.chars;
    switch (fn) {
    case FN_LETTERS:
        return total ? (double)c.letters / total : 0;
    case FN_DIGITS:
        return total ? (double)c.digits / total : 0;
    case FN_SYMBOLS:
        return total ? (double)c.symbols / total : 0;
    case FN_UPPERCASE:
        return c.letters ? (double)c.upper / (double)c.letters : 0;
    case FN_NONASCII:
        return total ? (double)c.nonascii / total : 0;
    case FN_WHITESPACE:
        return total ? (double)c.space / total : 0;
    default:
        return 0;
    }
}

int
rules_eval(const struct step *st, const struct json_obj *o, const char *text_field,
           const char *text, size_t text_n, struct rules_scratch *x, struct rule_value *v,
           struct kerr *err)
{
    memset(v, 0, sizeof *v);
    // The field's value: the current text, an unescaped string, or raw JSON text.
    const char *s = NULL;
    size_t n = 0;
    bool present = true, is_number = false;
    double num = 0;
    if (strcmp(st->field, text_field) == 0 && text) {
        s = text;
        n = text_n;
    } else {
        struct json_val jv;
        if (!json_obj_path(o, st->field, &jv)) {
            present = false;
        } else if (jv.type == JSON_STRING) {
            x->val.len = 0;
            json_str(&jv, &x->val);
            s = x->val.p ? x->val.p : "";
            n = x->val.len;
        } else {
            s = jv.raw;
            n = jv.raw_len;
            is_number = jv.type == JSON_NUMBER && json_double(&jv, &num) == 0;
        }
    }
    switch (st->rk) {
    case RULE_MEASURE: {
        double m = present ? rule_measure(st->fn, s, n, x) : 0;
        v->is_num = true;
        v->num = m;
        v->missing = !present;
        return compare(m, st->op, st->num);
    }
    case RULE_NUMBER:
        if (!present || !is_number) {
            v->missing = true;
            return 0;
        }
        v->is_num = true;
        v->num = num;
        return compare(num, st->op, st->num);
    case RULE_REGEX: {
        if (!present) {
            v->missing = true;
            return st->negate;
        }
        size_t ms, me;
        int rc = regex_find(st->re, x->m, s, n, 0, &ms, &me, err);
        if (rc < 0)
            return -1;
        if (rc == 1 && st->negate) {
            v->str = s + ms;
            v->str_len = me - ms;
        }
        return st->negate ? rc == 0 : rc == 1;
    }
    case RULE_LIST: {
        if (!present) {
            v->missing = true;
            return st->negate;
        }
        bool found = false;
        for (size_t i = 0; i < st->n_items && !found; i++)
            found = strlen(st->items[i]) == n && memcmp(st->items[i], s, n) == 0;
        v->str = s;
        v->str_len = n;
        return st->negate ? !found : found;
    }
    }
    return 1;
}

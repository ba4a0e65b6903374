// SPDX-License-Identifier: MIT
// recipe: parsing datasets/*.recipe files and applying their selection and label rules
// (format in recipe.h and datasets/README.md).
#include "recipe.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

void
recipe_add_str(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
}

void
recipe_add_rule(struct glob_rule **v, size_t *n, const char *glob, const char *value)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = (struct glob_rule){xstrdup(glob), xstrdup(value)};
}

int
recipe_parse_decode(const char *s, enum decode_mode *out)
{
    static const char *names[] = {"replace", "latin1", "strict"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (enum decode_mode)i;
            return 0;
        }
    return -1;
}

int
recipe_parse_on_bad(const char *s, enum on_bad *out)
{
    static const char *names[] = {"fail", "drop", "keep"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i]) || (i == ON_BAD_DROP && !strcmp(s, "skip"))) {
            *out = (enum on_bad)i;
            return 0;
        }
    return -1;
}

static bool
recipe_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
            return false;
    return true;
}

// Splits line in place into at most max blank-separated words; returns the count (max + 1
// when there are more).
static int
recipe_split(char *line, char **w, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return n;
        if (n == max)
            return max + 1;
        w[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
}

static int
recipe_directive(struct recipe *r, char **w, int n, struct kerr *err)
{
    const char *k = w[0];
    struct {
        const char *key;
        int args;
    } arity[] = {{"name", 1},
                 {"npm", 2},
                 {"integrity", 1},
                 {"url", 1},
                 {"path", 1},
                 {"source", 1},
                 {"include", 1},
                 {"exclude", 1},
                 {"label", 2},
                 {"unlabeled", 1},
                 {"checksums", 2},
                 {"decode", 1},
                 {"checksum-mismatch", 1},
                 {"source-rule", 2}};
    int want = -1;
    for (size_t i = 0; i < KILN_ARRAY_LEN(arity); i++)
        if (!strcmp(k, arity[i].key))
            want = arity[i].args;
    if (want < 0)
        return kerr_set(err, "unknown directive '%s'", k);
    if (n - 1 != want)
        return kerr_set(err, "'%s' takes %d value%s, got %d", k, want, want > 1 ? "s" : "", n - 1);
    char **once[] = {&r->name, &r->integrity, &r->url, &r->path, &r->source};
    const char *once_keys[] = {"name", "integrity", "url", "path", "source"};
    for (size_t i = 0; i < KILN_ARRAY_LEN(once); i++)
        if (!strcmp(k, once_keys[i])) {
            if (*once[i])
                return kerr_set(err, "'%s' given twice", k);
            *once[i] = xstrdup(w[1]);
            if (i == 0 && !recipe_name_ok(w[1]))
                return kerr_set(err, "bad name '%s' (letters, digits, '.', '_', '-')", w[1]);
            if (i == 1 && strncmp(w[1], "sha512-", 7))
                return kerr_set(err, "integrity must be 'sha512-BASE64' as npm reports it");
            return 0;
        }
    if (!strcmp(k, "npm")) {
        if (r->npm_name)
            return kerr_set(err, "'npm' given twice");
        if (!isdigit((unsigned char)w[2][0]))
            return kerr_set(err, "npm version must be exact (e.g. 1.2.3), got '%s'", w[2]);
        r->npm_name = xstrdup(w[1]);
        r->npm_version = xstrdup(w[2]);
    } else if (!strcmp(k, "include")) {
        recipe_add_str(&r->include, &r->n_include, w[1]);
    } else if (!strcmp(k, "exclude")) {
        recipe_add_str(&r->exclude, &r->n_exclude, w[1]);
    } else if (!strcmp(k, "label")) {
        recipe_add_rule(&r->labels, &r->n_labels, w[1], w[2]);
    } else if (!strcmp(k, "source-rule")) {
        recipe_add_rule(&r->sources, &r->n_sources, w[1], w[2]);
    } else if (!strcmp(k, "unlabeled")) {
        if (recipe_parse_on_bad(w[1], &r->unlabeled) < 0)
            return kerr_set(err, "unlabeled: expected keep, skip or fail, got '%s'", w[1]);
    } else if (!strcmp(k, "checksum-mismatch")) {
        if (recipe_parse_on_bad(w[1], &r->on_mismatch) < 0)
            return kerr_set(err, "checksum-mismatch: expected fail, drop or keep, got '%s'", w[1]);
    } else if (!strcmp(k, "decode")) {
        if (recipe_parse_decode(w[1], &r->decode) < 0)
            return kerr_set(err, "decode: expected replace, latin1 or strict, got '%s'", w[1]);
    } else if (!strcmp(k, "checksums")) {
        if (strcmp(w[2], "datapackage"))
            return kerr_set(err, "checksums: unknown format '%s' (known: datapackage)", w[2]);
        r->checksums = xrealloc(r->checksums, (r->n_checksums + 1) * sizeof *r->checksums);
        r->checksums[r->n_checksums++] = (struct checksum_src){xstrdup(w[1]), xstrdup(w[2])};
    }
    return 0;
}

int
recipe_load(struct recipe *r, const char *path, struct kerr *err)
{
    *r = (struct recipe){.unlabeled = ON_BAD_KEEP, .on_mismatch = ON_BAD_FAIL};
    r->file = xstrdup(path);
    const char *slash = strrchr(path, '/');
    r->dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    struct buf text = {0};
    if (read_file(path, 1 << 20, &text, err) < 0)
        return -1;
    int ret = 0;
    char *p = text.p;
    for (int lineno = 1; p && *p; lineno++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        char *line = p;
        p = nl ? nl + 1 : NULL;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        char *w[4];
        int n = recipe_split(line, w, 3);
        if (n == 0 || w[0][0] == '#')
            continue;
        if (n > 3) {
            ret = kerr_set(err, "%s:%d: too many values for '%s'", path, lineno, w[0]);
            break;
        }
        if (recipe_directive(r, w, n, err) < 0) {
            ret = kerr_prefix(err, "%s:%d", path, lineno);
            break;
        }
    }
    buf_free(&text);
    if (ret)
        return -1;
    if (!r->name)
        return kerr_set(err, "%s: missing 'name'", path);
    if (!r->npm_name == !r->path)
        return kerr_set(err, "%s: exactly one source is needed: 'npm' or 'path'", path);
    if (r->npm_name && !r->integrity)
        return kerr_set(err, "%s: an npm source needs its 'integrity'", path);
    if (!r->source)
        r->source = xstrdup(r->name);
    return 0;
}

void
recipe_free(struct recipe *r)
{
    free(r->file);
    free(r->dir);
    free(r->name);
    free(r->npm_name);
    free(r->npm_version);
    free(r->integrity);
    free(r->url);
    free(r->path);
    free(r->source);
    for (size_t i = 0; i < r->n_include; i++)
        free(r->include[i]);
    for (size_t i = 0; i < r->n_exclude; i++)
        free(r->exclude[i]);
    for (size_t i = 0; i < r->n_labels; i++) {
        free(r->labels[i].glob);
        free(r->labels[i].value);
    }
    for (size_t i = 0; i < r->n_sources; i++) {
        free(r->sources[i].glob);
        free(r->sources[i].value);
    }
    free(r->sources);
    for (size_t i = 0; i < r->n_checksums; i++) {
        free(r->checksums[i].member);
        free(r->checksums[i].format);
    }
    free(r->include);
    free(r->exclude);
    free(r->labels);
    free(r->checksums);
    *r = (struct recipe){0};
}

bool
recipe_selects(const struct recipe *r, const char *member)
{
    for (size_t i = 0; i < r->n_exclude; i++)
        if (!fnmatch(r->exclude[i], member, FNM_PATHNAME))
            return false;
    if (!r->n_include)
        return true;
    for (size_t i = 0; i < r->n_include; i++)
        if (!fnmatch(r->include[i], member, FNM_PATHNAME))
            return true;
    return false;
}

static const char *
recipe_rule_match(const struct glob_rule *v, size_t n, const char *member)
{
    for (size_t i = 0; i < n; i++)
        if (!fnmatch(v[i].glob, member, FNM_PATHNAME))
            return v[i].value;
    return NULL;
}

const char *
recipe_label(const struct recipe *r, const char *member)
{
    return recipe_rule_match(r->labels, r->n_labels, member);
}

const char *
recipe_source(const struct recipe *r, const char *member)
{
    const char *s = recipe_rule_match(r->sources, r->n_sources, member);
    return s ? s : r->source;
}

char *
recipe_cache_path(const struct recipe *r, const char *cache_dir)
{
    struct buf b = {0};
    buf_printf(&b, "%s/npm/", cache_dir);
    for (const char *s = r->npm_name; *s; s++)
        if (*s != '@')
            buf_putc(&b, *s == '/' ? '-' : *s);
    buf_printf(&b, "-%s.tgz", r->npm_version);
    return buf_detach(&b);
}

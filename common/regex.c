// SPDX-License-Identifier: MIT
// regex: PCRE2 (8-bit) wrapper with UTF + UCP and JIT. See regex.h. PCRE2's error codes are
// translated once here with pcre2_get_error_message.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <pcre2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct regex {
    pcre2_code *code;
    bool jit;
};

struct regex_match {
    pcre2_match_data *md;
    uint32_t pairs;
    int set; // pairs set by the last successful match
};

static atomic_bool use_jit = true;

void
regex_set_jit(bool on)
{
    atomic_store(&use_jit, on);
}

static void
pcre_msg(int code, char *out, size_t n)
{
    if (pcre2_get_error_message(code, (PCRE2_UCHAR *)out, n) < 0)
        snprintf(out, n, "PCRE2 error %d", code);
}

struct regex *
regex_new(const char *pattern, int flags, struct kerr *err)
{
    uint32_t opts = PCRE2_UTF | PCRE2_UCP;
    if (flags & REGEX_CASELESS)
        opts |= PCRE2_CASELESS;
    if (flags & REGEX_MULTILINE)
        opts |= PCRE2_MULTILINE;
    if (flags & REGEX_DOTALL)
        opts |= PCRE2_DOTALL;
    int code;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &off,
                                  NULL);
    if (!c) {
        char msg[256];
        pcre_msg(code, msg, sizeof msg);
        kerr_set(err, "column %zu: %s", (size_t)off + 1, msg);
        return NULL;
    }
    struct regex *re = xcalloc(1, sizeof *re);
    re->code = c;
    if (atomic_load(&use_jit))
        re->jit = pcre2_jit_compile(c, PCRE2_JIT_COMPLETE) == 0;
    return re;
}

void
regex_del(struct regex *re)
{
    if (!re)
        return;
    pcre2_code_free(re->code);
    free(re);
}

bool
regex_jit_enabled(const struct regex *re)
{
    return re->jit;
}

struct regex_match *
regex_match_new(void)
{
    struct regex_match *m = xcalloc(1, sizeof *m);
    m->pairs = 16;
    m->md = pcre2_match_data_create(m->pairs, NULL);
    if (!m->md)
        xmalloc((size_t)-1);
    return m;
}

void
regex_match_del(struct regex_match *m)
{
    if (!m)
        return;
    pcre2_match_data_free(m->md);
    free(m);
}

int
regex_find(const struct regex *re, struct regex_match *m, const char *s, size_t n, size_t start,
           size_t *mstart, size_t *mend, struct kerr *err)
{
    uint32_t groups = 0;
    pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (groups + 1 > m->pairs) {
        pcre2_match_data_free(m->md);
        m->pairs = groups + 1;
        m->md = pcre2_match_data_create(m->pairs, NULL);
        if (!m->md)
            xmalloc((size_t)-1);
    }
    int rc;
    if (re->jit)
        rc = pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, start, 0, m->md, NULL);
    else
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, m->md, NULL);
    m->set = 0;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        char msg[256];
        pcre_msg(rc, msg, sizeof msg);
        return kerr_set(err, "regex match failed: %s", msg);
    }
    m->set = rc == 0 ? (int)m->pairs : rc;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    *mstart = ov[0];
    *mend = ov[1] >= ov[0] ? ov[1] : ov[0]; // \K can put the end before the start
    return 1;
}

int
regex_group(const struct regex_match *m, int g, size_t *gs, size_t *ge)
{
    if (g < 0 || g >= m->set)
        return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    if (ov[2 * g] == PCRE2_UNSET)
        return 0;
    *gs = ov[2 * g];
    *ge = ov[2 * g + 1];
    return 1;
}

const char *
regex_version(void)
{
    static char v[64];
    if (!v[0])
        pcre2_config(PCRE2_CONFIG_VERSION, v);
    return v;
}

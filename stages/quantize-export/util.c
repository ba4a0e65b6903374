// SPDX-License-Identifier: MIT
// util: quantize-export's file helpers — atomic output directories (written as
// PARENT/.kiln-tmp-NAME and renamed; a killed run's leftovers are removed by the next run),
// byte-for-byte copies — and the GGUF tokenizer metadata of a struct tok.
#include "qx.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
qx_dir_remove(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            struct buf p;
            buf_init(&p);
            buf_printf(&p, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p.p, &st) == 0 && S_ISDIR(st.st_mode))
                qx_dir_remove(p.p);
            else
                unlink(p.p);
            buf_free(&p);
        }
        closedir(d);
    }
    rmdir(path);
}

// PARENT/.kiln-PREFIX-NAME for DIR = PARENT/NAME (trailing slashes ignored), the naming
// pipelines/step.c uses for its temporaries: hidden, and unique to the output.
static char *
dir_sibling(const char *dir, const char *prefix)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t base = n;
    while (base > 0 && dir[base - 1] != '/')
        base--;
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%.*s.kiln-%s-%.*s", (int)base, dir, prefix, (int)(n - base), dir + base);
    return buf_detach(&b);
}

char *
qx_dir_begin(const char *dir, bool force, struct kerr *err)
{
    struct stat st;
    if (!force && stat(dir, &st) == 0) {
        kerr_set(err, "%s: already exists (-f replaces it)", dir);
        return NULL;
    }
    // Leftovers of a run killed while writing (tmp) or while swapping (old) this output.
    char *tmp = dir_sibling(dir, "tmp"), *old = dir_sibling(dir, "old");
    qx_dir_remove(tmp);
    if (stat(dir, &st) == 0)
        qx_dir_remove(old);
    else if (stat(old, &st) == 0 && rename(old, dir) != 0) // killed between the two renames
        qx_dir_remove(old);
    free(old);
    if (mkdir(tmp, 0755)) {
        kerr_set(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return NULL;
    }
    return tmp;
}

int
qx_dir_commit(const char *tmp, const char *dir, bool force, struct kerr *err)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!force)
            return kerr_set(err, "%s: already exists (-f replaces it)", dir);
        char *old = dir_sibling(dir, "old");
        qx_dir_remove(old);
        if (rename(dir, old)) {
            kerr_set(err, "%s: cannot move aside: %s", dir, strerror(errno));
            free(old);
            return -1;
        }
        int rc = rename(tmp, dir);
        if (rc) {
            kerr_set(err, "%s: cannot rename to %s: %s", tmp, dir, strerror(errno));
            rename(old, dir);
        } else {
            qx_dir_remove(old);
        }
        free(old);
        return rc ? -1 : 0;
    }
    if (rename(tmp, dir))
        return kerr_set(err, "%s: cannot rename to %s: %s", tmp, dir, strerror(errno));
    return 0;
}

int
qx_copy_file(const char *from, const char *to, struct kerr *err)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return kerr_set(err, "%s: %s", from, strerror(errno));
    struct buf tmp;
    buf_init(&tmp);
    buf_printf(&tmp, "%s.tmp", to);
    FILE *out = fopen(tmp.p, "wb");
    int rc = 0;
    if (!out) {
        rc = kerr_set(err, "%s: %s", tmp.p, strerror(errno));
    } else {
        char block[1 << 16];
        size_t n;
        while ((n = fread(block, 1, sizeof(block), in)) > 0)
            if (fwrite(block, 1, n, out) != n) {
                rc = kerr_set(err, "%s: write failed: %s", tmp.p, strerror(errno));
                break;
            }
        if (rc == 0 && ferror(in))
            rc = kerr_set(err, "%s: read failed", from);
        if (fclose(out) && rc == 0)
            rc = kerr_set(err, "%s: write failed: %s", tmp.p, strerror(errno));
        if (rc == 0 && rename(tmp.p, to))
            rc = kerr_set(err, "%s: cannot rename: %s", tmp.p, strerror(errno));
        if (rc)
            unlink(tmp.p);
    }
    fclose(in);
    buf_free(&tmp);
    return rc;
}

// The special token among names that exists in t, or -1.
static int32_t
special_any(const struct tok *t, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = tok_special_id(t, *names);
        if (id >= 0)
            return id;
    }
    return -1;
}

int
qx_gguf_tok_init(struct qx_gguf_tok *g, const struct tok *t, const struct model_config *c,
                 struct kerr *err)
{
    memset(g, 0, sizeof(*g));
    const char *pre = tok_pre_gguf_name(tok_pre_kind(t));
    if (!pre)
        return kerr_set(err, "tokenizer: its pre-tokenizer regex (%s) has no llama.cpp "
                             "tokenizer.ggml.pre name",
                        tok_pre_regex(t));
    size_t n = tok_vocab_size(t), nm = tok_merge_count(t);
    g->tokens = xcalloc(n ? n : 1, sizeof(char *));
    g->types = xcalloc(n ? n : 1, sizeof(int32_t));
    g->merges = xcalloc(nm ? nm : 1, sizeof(char *));
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&b);
        tok_token_unicode(t, (int32_t)i, &b);
        g->tokens[i] = xstrndup(b.p ? b.p : "", b.len);
        g->types[i] = (int32_t)tok_token_type(t, (int32_t)i);
    }
    for (size_t i = 0; i < nm; i++) {
        int32_t a, bb, cc;
        tok_merge_get(t, i, &a, &bb, &cc);
        buf_reset(&b);
        tok_token_unicode(t, a, &b);
        buf_putc(&b, ' ');
        tok_token_unicode(t, bb, &b);
        g->merges[i] = xstrndup(b.p, b.len);
    }
    buf_free(&b);
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", NULL};
    static const char *const eos_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>",
                                            "<|eot_id|>", NULL};
    static const char *const pad_names[] = {"<|pad|>", "<pad>", "[PAD]", NULL};
    int64_t eos = c->eos_id >= 0 ? c->eos_id : special_any(t, eos_names);
    int64_t bos = c->bos_id >= 0 ? c->bos_id : special_any(t, bos_names);
    int64_t pad = special_any(t, pad_names);
    g->p = (struct gguf_tokenizer_params){
        .pre = pre,
        .tokens = (const char *const *)g->tokens,
        .n_tokens = n,
        .token_types = g->types,
        .merges = (const char *const *)g->merges,
        .n_merges = nm,
        .bos_id = bos >= 0 ? bos : eos,
        .eos_id = eos,
        .pad_id = pad >= 0 ? pad : eos,
        .add_bos = 0, // kiln trains without a BOS token in front
    };
    return 0;
}

void
qx_gguf_tok_free(struct qx_gguf_tok *g)
{
    for (size_t i = 0; i < g->p.n_tokens; i++)
        free(g->tokens[i]);
    for (size_t i = 0; i < g->p.n_merges; i++)
        free(g->merges[i]);
    free(g->tokens);
    free(g->merges);
    free(g->types);
    memset(g, 0, sizeof(*g));
}

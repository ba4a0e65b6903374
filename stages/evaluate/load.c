// SPDX-License-Identifier: MIT
// load.c: the model under evaluation — a Hugging Face checkpoint directory (checkpoint.h), the
// same plus a PEFT LoRA adapter merged into the weights (W += s·B·A with s = alpha/r, or
// alpha/sqrt(r) with use_rslora), or a GGUF file dequantized into the same f32 slab
// (gguf_model.h), so every format is scored by the same forward pass. Also the tokenizer and
// the check that it fits the model.
#include "checkpoint.h"
#include "evaluate.h"
#include "gguf_model.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool
is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// Reads a number member of a JSON object text; def when absent.
static int
config_number(const struct json_obj *o, const char *key, double def, double *out,
              const char *name, struct kerr *err)
{
    const struct json_field *f = json_obj_get(o, key);
    if (!f) {
        *out = def;
        return 0;
    }
    if (json_double(&f->val, out) < 0)
        return kerr_set(err, "%s: '%s' is not a number", name, key);
    return 0;
}

// Merges DIR/adapter_model.safetensors into m per DIR/adapter_config.json.
static int
adapter_merge(struct model *m, const char *dir, struct kerr *err)
{
    struct buf path = {0}, text = {0};
    struct json_obj o;
    json_obj_init(&o);
    struct st_file f = {0};
    float *a = NULL, *b = NULL;
    int rc = -1;
    buf_printf(&path, "%s/adapter_config.json", dir);
    if (read_file(path.p, 1 << 20, &text, err) < 0)
        goto out;
    struct json_error je;
    if (json_obj_parse(&o, text.p, text.len, &je) < 0) {
        kerr_set(err, "%s:1:%zu: invalid JSON: %s", path.p, je.offset + 1, je.msg);
        goto out;
    }
    double r, alpha;
    if (config_number(&o, "r", 8, &r, path.p, err) < 0 ||
        config_number(&o, "lora_alpha", 8, &alpha, path.p, err) < 0)
        goto out;
    const struct json_field *rs = json_obj_get(&o, "use_rslora");
    double scale = rs && rs->val.type == JSON_TRUE ? alpha / sqrt(r) : alpha / r;
    buf_reset(&path);
    buf_printf(&path, "%s/adapter_model.safetensors", dir);
    if (st_open(&f, path.p, err) < 0)
        goto out;
    int merged = 0;
    for (size_t i = 0; i < f.n; i++) {
        const char *nm = f.tensors[i].name, *pa = strstr(nm, ".lora_A.weight");
        if (!pa)
            continue;
        const char *base = nm;
        if (strncmp(base, "base_model.model.", 17) == 0)
            base += 17;
        char target[256], bname[300];
        snprintf(target, sizeof target, "%.*s.weight", (int)(pa - base), base);
        snprintf(bname, sizeof bname, "%.*s.lora_B.weight", (int)(pa - nm), nm);
        const struct model_tensor *w = model_tensor_find(m, target);
        const struct st_tensor *ta = &f.tensors[i], *tb = st_find(&f, bname);
        if (!w || w->ndim != 2) {
            kerr_set(err, "%s: %s: no 2-D model tensor %s to adapt", path.p, nm, target);
            goto out;
        }
        if (!tb) {
            kerr_set(err, "%s: %s has no %s", path.p, nm, bname);
            goto out;
        }
        int64_t rank = ta->shape[0], out_f = w->shape[0], in_f = w->shape[1];
        if (ta->ndim != 2 || tb->ndim != 2 || ta->shape[1] != in_f || tb->shape[0] != out_f ||
            tb->shape[1] != rank) {
            kerr_set(err, "%s: %s: A [%lld,%lld] and B [%lld,%lld] do not fit %s [%lld,%lld]",
                     path.p, nm, (long long)ta->shape[0], (long long)ta->shape[1],
                     (long long)tb->shape[0], (long long)tb->shape[1], target,
                     (long long)out_f, (long long)in_f);
            goto out;
        }
        a = xrealloc(a, (size_t)(rank * in_f) * sizeof *a);
        b = xrealloc(b, (size_t)(out_f * rank) * sizeof *b);
        if (st_read_f32(&f, ta, a, err) < 0 || st_read_f32(&f, tb, b, err) < 0)
            goto out;
        float *wp = m->params + w->offset; // [out, in] += scale * B[out, r] A[r, in]
        for (int64_t oi = 0; oi < out_f; oi++)
            for (int64_t k = 0; k < rank; k++) {
                float s = (float)scale * b[oi * rank + k];
                const float *ar = a + k * in_f;
                float *wr = wp + oi * in_f;
                for (int64_t j = 0; j < in_f; j++)
                    wr[j] += s * ar[j];
            }
        merged++;
    }
    if (!merged) {
        kerr_set(err, "%s: no lora_A/lora_B tensors", path.p);
        goto out;
    }
    rc = 0;
out:
    free(a);
    free(b);
    st_close(&f);
    json_obj_free(&o);
    buf_free(&text);
    buf_free(&path);
    return rc;
}

int
eval_model_load(struct eval_model *em, const char *path, const char *adapter,
                const char *tokenizer, struct kerr *err)
{
    memset(em, 0, sizeof *em);
    struct buf tpath = {0}, desc = {0};
    bool loaded = false;
    if (is_dir(path)) {
        if (ckpt_load(path, &em->m, NULL, err) < 0)
            goto fail;
        if (!tokenizer)
            buf_printf(&tpath, "%s/tokenizer.json", path);
    } else {
        struct gguf_file g;
        if (gguf_open(&g, path, err) < 0)
            goto fail;
        int rc = gguf_model_read(&g, &em->m, err);
        gguf_close(&g);
        if (rc < 0) {
            kerr_prefix(err, "%s", path);
            goto fail;
        }
        if (!tokenizer) {
            const char *slash = strrchr(path, '/');
            buf_printf(&tpath, "%.*stokenizer.json", slash ? (int)(slash - path + 1) : 0, path);
        }
    }
    loaded = true;
    buf_puts(&desc, path);
    if (adapter) {
        if (adapter_merge(&em->m, adapter, err) < 0)
            goto fail;
        buf_printf(&desc, "+%s", adapter);
    }
    if (tokenizer)
        buf_puts(&tpath, tokenizer);
    else if (!is_file(tpath.p)) {
        kerr_set(err, "%s: no tokenizer (looked for %s): give --tokenizer FILE", path, tpath.p);
        goto fail;
    }
    if (!(em->tok = tok_load_file(tpath.p, NULL, err)))
        goto fail;
    size_t tv = tok_vocab_size(em->tok);
    if (tv > (size_t)em->m.cfg.vocab) {
        kerr_set(err,
                 "model and tokenizer do not match: %s has %zu ids but the model's vocabulary "
                 "is %d",
                 tpath.p, tv, em->m.cfg.vocab);
        goto fail;
    }
    em->eos = em->m.cfg.eos_id;
    if (em->eos < 0)
        em->eos = tok_special_id(em->tok, "<|endoftext|>");
    em->desc = buf_detach(&desc);
    buf_free(&tpath);
    return 0;
fail:
    if (loaded)
        model_free(&em->m);
    tok_del(em->tok);
    em->tok = NULL;
    buf_free(&tpath);
    buf_free(&desc);
    return -1;
}

void
eval_model_free(struct eval_model *em)
{
    model_free(&em->m);
    tok_del(em->tok);
    free(em->desc);
}

int
eval_ids_check(const struct eval_model *em, const int32_t *ids, size_t n, struct kerr *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= em->m.cfg.vocab)
            return kerr_set(err, "token id %d at index %zu is outside the model's vocabulary (%d)",
                            ids[i], i, em->m.cfg.vocab);
    return 0;
}

// SPDX-License-Identifier: MIT
// load.c: the model under evaluation — a Hugging Face checkpoint directory (checkpoint.h), the
// same plus a PEFT LoRA adapter merged into the weights (W += s·B·A with s = alpha/r, or
// alpha/sqrt(r) with use_rslora), or a GGUF file dequantized into the same f32 slab
// (gguf_model.h), so every format is scored by the same forward pass. Also the tokenizer and
// the check that it fits the model.
#include "checkpoint.h"
#include "evaluate.h"
#include "gguf_model.h"
#include "lora.h"

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

// Merges the PEFT LoRA adapter in DIR into m (common/lora: the config and every tensor are
// checked against m's shapes, so an adapter for another base model is an error).
static int
adapter_merge(struct model *m, const char *dir, struct kerr *err)
{
    struct lora lo;
    if (lora_load(dir, &lo, m, err) < 0)
        return -1;
    lora_merge(&lo, m, NULL);
    lora_free(&lo);
    return 0;
}

int
eval_model_load(struct eval_model *em, const char *path, const char *adapter, const char *tokenizer,
                struct kerr *err)
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

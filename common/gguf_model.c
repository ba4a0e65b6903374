// SPDX-License-Identifier: MIT
// gguf_model: model.h <-> GGUF (see gguf_model.h for the conventions).

#include "gguf_model.h"
#include "quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const layer_names[9] = {"attn_norm", "attn_q",      "attn_k",
                                           "attn_v",    "attn_output", "ffn_norm",
                                           "ffn_gate",  "ffn_up",      "ffn_down"};

void
gguf_model_tensor_name(const struct model *m, int i, char *out)
{
    int L = m->cfg.n_layers;
    if (i == 0)
        snprintf(out, GGUF_MAX_NAME + 1, "token_embd.weight");
    else if (i == 1 + 9 * L)
        snprintf(out, GGUF_MAX_NAME + 1, "output_norm.weight");
    else if (i == 2 + 9 * L)
        snprintf(out, GGUF_MAX_NAME + 1, "output.weight");
    else
        snprintf(out, GGUF_MAX_NAME + 1, "blk.%d.%s.weight", (i - 1) / 9, layer_names[(i - 1) % 9]);
}

// Heads whose rows tensor i permutes for RoPE: n_heads for q, n_kv_heads for k, else 0.
static int
rope_heads(const struct model *m, int i)
{
    if (i < 1 || i > 9 * m->cfg.n_layers)
        return 0;
    int k = (i - 1) % 9;
    return k == 1 ? m->cfg.n_heads : k == 2 ? m->cfg.n_kv_heads : 0;
}

// Row r of a [heads*hd, in] matrix in HF order goes to row perm_row(r) in llama.cpp order:
// per head, HF row j*hd/2 + i (j = 0, 1) becomes 2i + j.
static int64_t
perm_row(int64_t r, int hd)
{
    int64_t h = r / hd, w = r % hd, j = w / (hd / 2), i = w % (hd / 2);
    return h * hd + 2 * i + j;
}

void
gguf_export_report_free(struct gguf_export_report *r)
{
    free(r->t);
    memset(r, 0, sizeof *r);
}

// llama.cpp's use_more_bits: the layers of n whose attn_v and ffn_down Q4_K_M keeps at Q6_K
// (the first and last eighth, and every third one between).
static bool
use_more_bits(int layer, int n)
{
    return layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
}

// The type tensor i gets: 1-D F32; in the Q4_K_M mix (llama.cpp's llama_tensor_get_type for
// LLAMA_FTYPE_MOSTLY_Q4_K_M) output.weight at Q6_K (Q8_0 when its rows do not fit 256),
// attn_v and ffn_down at Q6_K in the use_more_bits layers, and token_embd at Q6_K too (the
// one departure: llama.cpp leaves it Q4_K unless tied, as with --token-embedding-type q6_k);
// else o->type, widened until the row length fits its block.
static int
export_type(const struct model *m, int i, const struct gguf_export_opts *o, bool *fallback)
{
    const struct model_tensor *t = &m->tensors[i];
    *fallback = false;
    if (t->ndim == 1)
        return QTYPE_F32;
    int type = o->type;
    int L = m->cfg.n_layers;
    if (o->mixed && type == QTYPE_Q4_K) {
        int k = (i - 1) % 9, layer = (i - 1) / 9;
        if (i == 0 || i == 2 + 9 * L)
            type = quant_row_size(QTYPE_Q6_K, t->shape[1]) ? QTYPE_Q6_K : QTYPE_Q8_0;
        else if ((k == 3 || k == 8) && use_more_bits(layer, L))
            type = QTYPE_Q6_K;
    }
    while (quant_row_size(type, t->shape[1]) == 0) {
        *fallback = true;
        type =
            type == QTYPE_Q4_K || type == QTYPE_Q4_0 || type == QTYPE_Q6_K ? QTYPE_Q8_0 : QTYPE_F16;
    }
    return type;
}

static uint32_t
file_type_of(const struct gguf_export_opts *o)
{
    switch (o->type) {
    case QTYPE_F32:
        return 0;
    case QTYPE_F16:
        return 1;
    case QTYPE_Q4_0:
        return 2;
    case QTYPE_Q8_0:
        return 7;
    case QTYPE_Q4_K:
        return o->mixed ? 15 : 14; // Q4_K_M : Q4_K_S
    case QTYPE_BF16:
        return 32;
    }
    return 0;
}

int
gguf_model_write(const char *path, const struct model *m, const struct gguf_tokenizer_params *tok,
                 const struct gguf_export_opts *o, struct gguf_export_report *rep, struct kerr *err)
{
    if (o->type != QTYPE_F32 && o->type != QTYPE_F16 && o->type != QTYPE_BF16 &&
        o->type != QTYPE_Q8_0 && o->type != QTYPE_Q4_0 && o->type != QTYPE_Q4_K)
        return kerr_set(err, "%s: cannot export as %s", path, quant_type_name(o->type));
    const struct model_config *c = &m->cfg;
    if ((uint64_t)tok->n_tokens != (uint64_t)c->vocab)
        return kerr_set(err, "%s: tokenizer has %zu tokens, the model's vocabulary is %d", path,
                        tok->n_tokens, c->vocab);
    struct gguf_writer *w = gguf_writer_new();
    struct gguf_llama_params lp = {.name = o->name,
                                   .file_type = file_type_of(o),
                                   .context_length = (uint32_t)c->max_seq,
                                   .embedding_length = (uint32_t)c->dim,
                                   .block_count = (uint32_t)c->n_layers,
                                   .feed_forward_length = (uint32_t)c->ffn,
                                   .head_count = (uint32_t)c->n_heads,
                                   .head_count_kv = (uint32_t)c->n_kv_heads,
                                   .vocab_size = (uint32_t)c->vocab,
                                   .rms_eps = c->norm_eps,
                                   .rope_freq_base = c->rope_theta};
    gguf_set_llama(w, &lp);
    gguf_set_tokenizer_gpt2(w, tok);

    struct gguf_export_tensor *rt = xcalloc((size_t)m->n_tensors, sizeof(*rt));
    void **data = xcalloc((size_t)m->n_tensors, sizeof(void *));
    float *tmp = NULL, *back = NULL;
    size_t tmp_cap = 0;
    int rc = 0, n = 0;
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const struct model_tensor *t = &m->tensors[i];
        struct gguf_export_tensor *e = &rt[n++];
        gguf_model_tensor_name(m, i, e->name);
        int64_t cols = t->ndim == 1 ? t->shape[0] : t->shape[1];
        int64_t rows = t->ndim == 1 ? 1 : t->shape[0];
        e->ne[0] = cols;
        e->ne[1] = rows;
        e->type = export_type(m, i, o, &e->fallback);
        if (tmp_cap < t->numel) {
            tmp_cap = t->numel;
            free(tmp);
            free(back);
            tmp = xmalloc(tmp_cap * sizeof(float));
            back = xmalloc(tmp_cap * sizeof(float));
        }
        const float *src = m->params + t->offset;
        int heads = rope_heads(m, i);
        if (heads) {
            if (rows != (int64_t)heads * m->hd) {
                rc = kerr_set(err, "%s: tensor %s has %" PRId64 " rows, want %d", path, t->name,
                              rows, heads * m->hd);
                break;
            }
            for (int64_t r = 0; r < rows; r++)
                memcpy(tmp + perm_row(r, m->hd) * cols, src + r * cols, (size_t)cols * 4);
            src = tmp;
        }
        size_t rs = quant_row_size(e->type, cols);
        data[i] = xmalloc(rs * (size_t)rows);
        double se = 0, mx = 0;
        for (int64_t r = 0; r < rows; r++) {
            uint8_t *q = (uint8_t *)data[i] + (size_t)r * rs;
            quant_row_quantize(e->type, src + r * cols, q, cols);
            quant_row_dequantize(e->type, q, back, cols);
            for (int64_t k = 0; k < cols; k++) {
                double d = fabs((double)back[k] - src[r * cols + k]);
                se += d * d;
                mx = d > mx ? d : mx;
            }
        }
        e->rmse = sqrt(se / (double)(rows * cols));
        e->max_err = mx;
        rc = gguf_writer_add_tensor(w, e->name, e->type, t->ndim, e->ne, data[i], err);
    }
    if (rc == 0)
        rc = gguf_writer_write(w, path, err);
    gguf_writer_del(w);
    for (int i = 0; i < m->n_tensors; i++)
        free(data[i]);
    free(data);
    free(tmp);
    free(back);
    if (rc == 0 && rep) {
        rep->n = n;
        rep->t = rt;
        rep->file_type = file_type_of(o);
    } else {
        free(rt);
    }
    return rc;
}

// A u32-range integer key.
static int
get_dim(const struct gguf_file *g, const char *key, int *out, struct kerr *err)
{
    int64_t v;
    if (gguf_get_int(g, key, &v, err))
        return -1;
    if (v < 0 || v > INT32_MAX)
        return kerr_set(err, "key '%s': %" PRId64 " out of range", key, v);
    *out = (int)v;
    return 0;
}

int
gguf_model_read(const struct gguf_file *g, struct model *m, struct kerr *err)
{
    memset(m, 0, sizeof *m);
    struct gguf_str arch;
    if (gguf_get_str(g, "general.architecture", &arch, err))
        return -1;
    if (arch.n != 5 || memcmp(arch.p, "llama", 5) != 0)
        return kerr_set(err, "general.architecture is '%.*s', not 'llama'",
                        (int)(arch.n < 40 ? arch.n : 40), arch.p);
    struct model_config c = {.bos_id = -1, .eos_id = -1};
    double eps, theta = 10000.0;
    int64_t v;
    if (get_dim(g, "llama.embedding_length", &c.dim, err) ||
        get_dim(g, "llama.block_count", &c.n_layers, err) ||
        get_dim(g, "llama.feed_forward_length", &c.ffn, err) ||
        get_dim(g, "llama.attention.head_count", &c.n_heads, err) ||
        get_dim(g, "llama.context_length", &c.max_seq, err) ||
        gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &eps, err))
        return -1;
    c.n_kv_heads = c.n_heads;
    if (gguf_find_kv(g, "llama.attention.head_count_kv") &&
        get_dim(g, "llama.attention.head_count_kv", &c.n_kv_heads, err))
        return -1;
    if (gguf_find_kv(g, "llama.rope.freq_base") &&
        gguf_get_float(g, "llama.rope.freq_base", &theta, err))
        return -1;
    const struct gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return kerr_set(err, "tensor token_embd.weight: missing or not 2-D");
    c.vocab = (int)(emb->ne[1] > INT32_MAX ? -1 : emb->ne[1]);
    if (gguf_find_kv(g, "llama.vocab_size") &&
        (gguf_get_int(g, "llama.vocab_size", &v, err) || v != c.vocab))
        return kerr_set(err, "llama.vocab_size disagrees with token_embd.weight (%d rows)",
                        c.vocab);
    c.norm_eps = (float)eps;
    c.rope_theta = (float)theta;
    c.tie_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
    if (gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v, NULL) == 0 && v < INT32_MAX)
        c.bos_id = (int)v;
    if (gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v, NULL) == 0 && v < INT32_MAX)
        c.eos_id = (int)v;
    if (model_config_check(&c, err))
        return -1;
    // Before allocating: the file's tensors must hold at least the values the config needs
    // (a lying header cannot make us allocate more than a few times the file's size).
    uint64_t have = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        have += (uint64_t)g->tensors[i].n_elem;
    if (have < model_config_params(&c))
        return kerr_set(err, "the tensors hold %" PRIu64 " values, the config needs %zu", have,
                        model_config_params(&c));
    if (model_init(m, &c, err))
        return -1;

    float *tmp = NULL;
    size_t tmp_cap = 0;
    int rc = 0;
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const struct model_tensor *t = &m->tensors[i];
        char name[GGUF_MAX_NAME + 1];
        gguf_model_tensor_name(m, i, name);
        const struct gguf_tensor *gt = gguf_find_tensor(g, name);
        int64_t cols = t->ndim == 1 ? t->shape[0] : t->shape[1];
        int64_t rows = t->ndim == 1 ? 1 : t->shape[0];
        if (!gt) {
            rc = kerr_set(err, "tensor %s: missing", name);
        } else if (gt->ne[0] != cols || gt->n_elem != rows * cols) {
            rc = kerr_set(err,
                          "tensor %s: shape {%" PRId64 ", %" PRId64 "}, the config needs {%" PRId64
                          ", %" PRId64 "}",
                          name, gt->ne[0], gt->ne[1], cols, rows);
        } else if (tmp_cap < t->numel) {
            tmp_cap = t->numel;
            free(tmp);
            tmp = xmalloc(tmp_cap * sizeof(float));
        }
        if (rc || gguf_tensor_to_f32(gt, tmp, err)) {
            rc = -1;
            break;
        }
        float *dst = m->params + t->offset;
        int heads = rope_heads(m, i);
        if (heads)
            for (int64_t r = 0; r < rows; r++)
                memcpy(dst + r * cols, tmp + perm_row(r, m->hd) * cols, (size_t)cols * 4);
        else
            memcpy(dst, tmp, t->numel * sizeof(float));
    }
    free(tmp);
    if (rc)
        model_free(m);
    return rc;
}

// SPDX-License-Identifier: MIT
// model: Llama forward/backward over the parameter slab, the KV-cache forward, AdamW, lr
// schedules, clipping and the seeded generator (contracts in model.h).
//
// Activations: with training, every layer keeps its own buffers (backward needs them);
// without, the layer buffers are one slot reused by every layer, the residual stream is one
// slot updated in place and attention keeps no probabilities: forward-only passes run their
// own attention and RMSNorm kernels (kern_attn_fwd_infer, kern_rmsnorm_fwd_infer: the same
// values to float rounding, faster). Backward walks the layers in reverse with one set of
// gradient buffers; dx is the gradient of the residual stream and is updated in place.
#include "model.h"

// Run-time trip counts (AdamW, embedding gradient): see kernels.c.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- configuration -----------------------------------------------------------------------

int
model_config_preset(struct model_config *c, const char *name)
{
    int vocab = c->vocab;
    struct model_config base = {.vocab = vocab, .norm_eps = 1e-5, .rope_theta = 10000.0,
                                .tie_embeddings = false, .bos_id = -1, .eos_id = -1};
    if (strcmp(name, "tiny") == 0) {
        base.dim = 128, base.n_layers = 4, base.n_heads = 4, base.n_kv_heads = 4;
        base.ffn = 352, base.max_seq = 256;
    } else if (strcmp(name, "small") == 0) {
        base.dim = 256, base.n_layers = 6, base.n_heads = 4, base.n_kv_heads = 2;
        base.ffn = 704, base.max_seq = 512;
    } else if (strcmp(name, "base") == 0) {
        base.dim = 512, base.n_layers = 8, base.n_heads = 8, base.n_kv_heads = 8;
        base.ffn = 1376, base.max_seq = 1024;
    } else {
        return -1;
    }
    *c = base;
    return 0;
}

int
model_config_check(const struct model_config *c, struct kerr *err)
{
    if (c->vocab <= 0 || c->vocab > (1 << 24))
        return kerr_set(err, "vocab_size %d out of range (1..16777216)", c->vocab);
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->ffn <= 0)
        return kerr_set(err, "hidden_size, num_hidden_layers, num_attention_heads, "
                             "num_key_value_heads and intermediate_size must be positive");
    if (c->dim > 65536 || c->ffn > 262144 || c->n_layers > 1024 || c->n_heads > 1024)
        return kerr_set(err, "model dimensions too large");
    if (c->dim % c->n_heads != 0)
        return kerr_set(err, "num_attention_heads %d does not divide hidden_size %d", c->n_heads,
                        c->dim);
    if (c->n_heads % c->n_kv_heads != 0)
        return kerr_set(err, "num_key_value_heads %d does not divide num_attention_heads %d",
                        c->n_kv_heads, c->n_heads);
    if ((c->dim / c->n_heads) % 2 != 0)
        return kerr_set(err, "head dimension %d is odd (RoPE needs pairs)", c->dim / c->n_heads);
    if (c->max_seq <= 0 || c->max_seq > 1 << 20)
        return kerr_set(err, "max_position_embeddings %d out of range", c->max_seq);
    if (!(c->norm_eps > 0) || !(c->rope_theta > 0))
        return kerr_set(err, "rms_norm_eps and rope_theta must be positive");
    return 0;
}

static void
model_shapes(const struct model_config *c, int64_t shapes[9][2])
{
    int64_t d = c->dim, hd = c->dim / c->n_heads, f = c->ffn;
    int64_t tab[9][2] = {{d, 0},
                         {c->n_heads * hd, d},
                         {c->n_kv_heads * hd, d},
                         {c->n_kv_heads * hd, d},
                         {d, c->n_heads * hd},
                         {d, 0},
                         {f, d},
                         {f, d},
                         {d, f}};
    memcpy(shapes, tab, sizeof tab);
}

size_t
model_config_params(const struct model_config *c)
{
    int64_t shapes[9][2];
    model_shapes(c, shapes);
    size_t layer = 0;
    for (int k = 0; k < 9; k++)
        layer += (size_t)shapes[k][0] * (size_t)(shapes[k][1] ? shapes[k][1] : 1);
    size_t emb = (size_t)c->vocab * (size_t)c->dim;
    return emb * (c->tie_embeddings ? 1 : 2) + layer * (size_t)c->n_layers + (size_t)c->dim;
}

static const char *const layer_names[9] = {
    "input_layernorm",       "self_attn.q_proj", "self_attn.k_proj",
    "self_attn.v_proj",      "self_attn.o_proj", "post_attention_layernorm",
    "mlp.gate_proj",         "mlp.up_proj",      "mlp.down_proj",
};

static void
tensor_add(struct model *m, const char *name, int64_t rows, int64_t cols, size_t *off)
{
    struct model_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = (size_t)rows * (size_t)(cols ? cols : 1);
    t->offset = *off;
    t->decay = cols != 0;
    *off += t->numel;
}

int
model_init(struct model *m, const struct model_config *c, struct kerr *err)
{
    memset(m, 0, sizeof *m);
    if (model_config_check(c, err) < 0)
        return -1;
    m->cfg = *c;
    m->hd = c->dim / c->n_heads;
    int cap = 3 + 9 * c->n_layers;
    m->tensors = xcalloc((size_t)cap, sizeof *m->tensors);
    m->frozen = xcalloc((size_t)cap, sizeof *m->frozen);
    int64_t shapes[9][2];
    model_shapes(c, shapes);
    size_t off = 0;
    char name[MODEL_NAME_MAX];
    tensor_add(m, "model.embed_tokens.weight", c->vocab, c->dim, &off);
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < 9; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, layer_names[k]);
            tensor_add(m, name, shapes[k][0], shapes[k][1], &off);
        }
    tensor_add(m, "model.norm.weight", c->dim, 0, &off);
    if (!c->tie_embeddings)
        tensor_add(m, "lm_head.weight", c->vocab, c->dim, &off);
    m->n_params = off;
    m->params = xcalloc(off, sizeof(float));
    int half = m->hd / 2;
    m->max_t = c->max_seq < MODEL_MAX_CONTEXT ? c->max_seq : MODEL_MAX_CONTEXT;
    m->rope_cos = xmalloc(sizeof(float) * (size_t)m->max_t * half);
    m->rope_sin = xmalloc(sizeof(float) * (size_t)m->max_t * half);
    kern_rope_table(m->rope_cos, m->rope_sin, m->max_t, m->hd, c->rope_theta);
    return 0;
}

void
model_free(struct model *m)
{
    free(m->tensors);
    free(m->frozen);
    free(m->params);
    free(m->grads);
    free(m->rope_cos);
    free(m->rope_sin);
    memset(m, 0, sizeof *m);
}

void
model_init_random(struct model *m, uint64_t seed)
{
    struct model_rng r;
    model_rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const struct model_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        for (size_t j = 0; j < t->numel; j++)
            p[j] = t->ndim == 1 ? 1.0f : (float)(0.02 * model_rng_normal(&r));
    }
}

void
model_grads_alloc(struct model *m)
{
    if (!m->grads)
        m->grads = xcalloc(m->n_params, sizeof(float));
}

void
model_grads_zero(struct model *m)
{
    if (m->grads)
        memset(m->grads, 0, sizeof(float) * m->n_params);
}

const struct model_tensor *
model_tensor_find(const struct model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

int
model_layer_tensor(const struct model *m, int layer, int k)
{
    return 1 + 9 * layer + k;
}

// ---- activations -------------------------------------------------------------------------

struct acts_sizes {
    size_t nd, nqkv, nao, ngu, nh, natt, nv, scratch;
    int slots, xslots;
};

static struct acts_sizes
acts_sizes(const struct model_config *c, int b, int t, bool training, int n_threads)
{
    struct acts_sizes s;
    size_t n = (size_t)b * t, hd = (size_t)(c->dim / c->n_heads);
    s.nd = n * c->dim;
    s.nqkv = n * (c->n_heads + 2 * c->n_kv_heads) * hd;
    s.nao = n * c->n_heads * hd;
    s.ngu = n * 2 * (size_t)c->ffn;
    s.nh = n * c->ffn;
    // forward only: no attention probabilities (kern_attn_fwd_infer's scratch per thread), one
    // residual slot updated in place
    s.natt = training ? (size_t)b * c->n_heads * t * t
                      : (size_t)(n_threads < 1 ? 1 : n_threads) *
                            kern_attn_rows_scratch(t, c->dim / c->n_heads);
    s.nv = n * (size_t)c->vocab;
    s.slots = training ? c->n_layers : 1;
    s.xslots = training ? c->n_layers + 1 : 1;
    s.scratch = (size_t)(n_threads < 1 ? 1 : n_threads) * t * t;
    return s;
}

size_t
model_acts_bytes(const struct model_config *c, int b, int t, bool training, int n_threads)
{
    struct acts_sizes s = acts_sizes(c, b, t, training, n_threads);
    size_t n = (size_t)b * t;
    size_t f = s.nd * s.xslots + (size_t)s.slots * (2 * s.nd + 2 * n + s.nqkv + s.natt + s.nao +
                                                   s.ngu + s.nh) +
               s.nd + n + s.nv + n;
    if (training)
        f += (size_t)s.slots * s.nd + 2 * s.nd + s.nqkv + s.nao + s.ngu + s.nh + s.scratch;
    return f * sizeof(float) + 3 * n * sizeof(int);
}

int
model_acts_init(struct model_acts *a, const struct model *m, int b, int t, bool training,
                int n_threads, struct kerr *err)
{
    memset(a, 0, sizeof *a);
    if (b <= 0 || t <= 0)
        return kerr_set(err, "batch %d x %d: both must be positive", b, t);
    if (t > m->max_t)
        return kerr_set(err, "sequence length %d exceeds the model's context %d", t, m->max_t);
    if ((int64_t)b * t > (1 << 22) || (int64_t)b * m->cfg.n_heads * t * t > ((int64_t)1 << 34))
        return kerr_set(err, "batch %d x %d too large", b, t);
    struct acts_sizes s = acts_sizes(&m->cfg, b, t, training, n_threads);
    size_t n = (size_t)b * t;
    a->b = b, a->t = t, a->cur_t = t, a->training = training, a->n = (int)n;
    a->n_threads = n_threads < 1 ? 1 : n_threads;
    a->tokens = xcalloc(n, sizeof(int));
    a->sel = xcalloc(2 * n, sizeof(int));
    a->x = xcalloc(s.nd * s.xslots, sizeof(float));
    if (training)
        a->xmid = xcalloc(s.nd * s.slots, sizeof(float));
    a->xn1 = xcalloc(s.nd * s.slots, sizeof(float));
    a->xn2 = xcalloc(s.nd * s.slots, sizeof(float));
    a->rstd1 = xcalloc(n * s.slots, sizeof(float));
    a->rstd2 = xcalloc(n * s.slots, sizeof(float));
    a->qkv = xcalloc(s.nqkv * s.slots, sizeof(float));
    a->att = xcalloc(s.natt * s.slots, sizeof(float));
    a->ao = xcalloc(s.nao * s.slots, sizeof(float));
    a->gu = xcalloc(s.ngu * s.slots, sizeof(float));
    a->h = xcalloc(s.nh * s.slots, sizeof(float));
    a->xnf = xcalloc(s.nd, sizeof(float));
    a->rstdf = xcalloc(n, sizeof(float));
    a->logits = xcalloc(s.nv, sizeof(float));
    a->loss = xcalloc(n, sizeof(float));
    if (training) {
        a->dx = xcalloc(s.nd, sizeof(float));
        a->dxn = xcalloc(s.nd, sizeof(float));
        a->dqkv = xcalloc(s.nqkv, sizeof(float));
        a->dao = xcalloc(s.nao, sizeof(float));
        a->dgu = xcalloc(s.ngu, sizeof(float));
        a->dh = xcalloc(s.nh, sizeof(float));
        a->dattn = xcalloc(s.scratch, sizeof(float));
    }
    return 0;
}

void
model_acts_free(struct model_acts *a)
{
    float *bufs[] = {a->x,     a->xmid, a->xn1, a->xn2,    a->rstd1, a->rstd2, a->qkv,
                     a->att,   a->ao,   a->gu,  a->h,      a->xnf,   a->rstdf, a->logits,
                     a->loss,  a->dx,   a->dxn, a->dqkv,   a->dao,   a->dgu,   a->dh,
                     a->dattn};
    for (size_t i = 0; i < KILN_ARRAY_LEN(bufs); i++)
        free(bufs[i]);
    free(a->tokens);
    free(a->sel);
    memset(a, 0, sizeof *a);
}

// ---- forward -----------------------------------------------------------------------------

// Pointers to one layer's weights (or gradients, with base = m->grads).
struct layer_w {
    float *ln1, *wqkv, *wq, *wk, *wv, *wo, *ln2, *wgu, *wgate, *wup, *wdown;
};

static struct layer_w
layer_ptrs(const struct model *m, float *base, int l)
{
    const struct model_tensor *t = &m->tensors[model_layer_tensor(m, l, 0)];
    struct layer_w w = {
        .ln1 = base + t[0].offset, .wq = base + t[1].offset,   .wk = base + t[2].offset,
        .wv = base + t[3].offset,  .wo = base + t[4].offset,   .ln2 = base + t[5].offset,
        .wgate = base + t[6].offset, .wup = base + t[7].offset, .wdown = base + t[8].offset,
    };
    w.wqkv = w.wq;
    w.wgu = w.wgate;
    return w;
}

static float *
head_weight(const struct model *m, float *base)
{
    int i = m->cfg.tie_embeddings ? 0 : 2 + 9 * m->cfg.n_layers;
    return base + m->tensors[i].offset;
}

static void
hook_fwd(const struct model *m, int l, enum model_linear w, const float *x, float *y, int n)
{
    if (m->hooks && m->hooks->fwd)
        m->hooks->fwd(m->hooks->ctx, l, w, x, y, n);
}

static void
hook_bwd(const struct model *m, int l, enum model_linear w, const float *x, const float *dy,
         float *dx, int n)
{
    if (m->hooks && m->hooks->bwd)
        m->hooks->bwd(m->hooks->ctx, l, w, x, dy, dx, n);
}

// y = x W^T (+ y) for one layer linear, through the base ops when the weights live outside
// the slab.
static void
lin_fwd(const struct model *m, struct kpool *p, int l, enum model_linear which, float *y,
        const float *x, const float *w, int n, int in, int out, bool acc)
{
    if (m->base)
        m->base->fwd(m->base->ctx, p, l, which, x, y, n, acc);
    else
        kern_linear_fwd(p, y, x, w, n, in, out, acc);
}

// dx = dy W for one layer linear (overwrite).
static void
lin_bwd_x(const struct model *m, struct kpool *p, int l, enum model_linear which, float *dx,
          const float *dy, const float *w, int n, int in, int out)
{
    if (m->base)
        m->base->bwd_x(m->base->ctx, p, l, which, dy, dx, n);
    else
        kern_linear_bwd_x(p, dx, dy, w, n, in, out, false);
}

// RMSNorm of the forward pass: training's, which backward's gradient checks were made
// against, or the forward-only kernel (the same values to float rounding, vectorized).
static void
norm_fwd(bool training, struct kpool *p, float *y, float *rstd, const float *x, const float *w,
         int n, int d, float eps)
{
    if (training)
        kern_rmsnorm_fwd(p, y, rstd, x, w, n, d, eps);
    else
        kern_rmsnorm_fwd_infer(p, y, rstd, x, w, n, d, eps);
}

// Buffers of layer l within the activations.
struct layer_a {
    float *x, *xnext, *xmid, *xn1, *xn2, *rstd1, *rstd2, *qkv, *att, *ao, *gu, *h;
};

static struct layer_a
layer_acts(const struct model *m, const struct model_acts *a, int l)
{
    const struct model_config *c = &m->cfg;
    size_t n = (size_t)a->b * a->t, hd = (size_t)m->hd;
    size_t s = a->training ? (size_t)l : 0;
    size_t nq = n * (c->n_heads + 2 * c->n_kv_heads) * hd;
    // forward only: x, xmid and xnext are the one residual slot, updated in place
    struct layer_a la = {
        .x = a->x + s * n * c->dim,
        .xnext = a->x + (a->training ? s + 1 : 0) * n * c->dim,
        .xmid = a->training ? a->xmid + s * n * c->dim : a->x,
        .xn1 = a->xn1 + s * n * c->dim,
        .xn2 = a->xn2 + s * n * c->dim,
        .rstd1 = a->rstd1 + s * n,
        .rstd2 = a->rstd2 + s * n,
        .qkv = a->qkv + s * nq,
        .att = a->att + s * (size_t)a->b * c->n_heads * a->t * a->t,
        .ao = a->ao + s * n * c->n_heads * hd,
        .gu = a->gu + s * n * 2 * c->ffn,
        .h = a->h + s * n * c->ffn,
    };
    return la;
}

// The layers of the forward pass; returns the residual stream leaving the last one [n, dim].
static const float *
forward_layers(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens, int b,
               int t)
{
    const struct model_config *c = &m->cfg;
    int n = b * t, d = c->dim, hd = m->hd, f = c->ffn;
    int nq = (c->n_heads + 2 * c->n_kv_heads) * hd, no = c->n_heads * hd;
    a->n = n;
    a->cur_t = t;
    memcpy(a->tokens, tokens, sizeof(int) * (size_t)n);
    const float *emb = m->params + m->tensors[0].offset;
    for (int r = 0; r < n; r++)
        memcpy(a->x + (size_t)r * d, emb + (size_t)tokens[r] * d, sizeof(float) * d);
    // training keeps every sequence's attention probabilities for backward; forward only
    // keeps none (kern_attn_fwd_infer: the same values to float rounding)
    struct kern_attn ka = {b, t, c->n_heads, c->n_kv_heads, hd};
    for (int l = 0; l < c->n_layers; l++) {
        struct layer_w w = layer_ptrs(m, m->params, l);
        struct layer_a la = layer_acts(m, a, l);
        norm_fwd(a->training, p, la.xn1, la.rstd1, la.x, w.ln1, n, d, c->norm_eps);
        lin_fwd(m, p, l, MODEL_LIN_QKV, la.qkv, la.xn1, w.wqkv, n, d, nq, false);
        hook_fwd(m, l, MODEL_LIN_QKV, la.xn1, la.qkv, n);
        kern_rope(p, la.qkv, n, nq, 0, c->n_heads + c->n_kv_heads, hd, t, NULL, m->rope_cos,
                  m->rope_sin, false);
        if (a->training)
            kern_attn_fwd(p, &ka, la.ao, la.att, la.qkv);
        else
            kern_attn_fwd_infer(p, &ka, la.ao, la.att, la.qkv);
        if (la.xmid != la.x)
            memcpy(la.xmid, la.x, sizeof(float) * (size_t)n * d);
        lin_fwd(m, p, l, MODEL_LIN_O, la.xmid, la.ao, w.wo, n, no, d, true);
        hook_fwd(m, l, MODEL_LIN_O, la.ao, la.xmid, n);
        norm_fwd(a->training, p, la.xn2, la.rstd2, la.xmid, w.ln2, n, d, c->norm_eps);
        lin_fwd(m, p, l, MODEL_LIN_GU, la.gu, la.xn2, w.wgu, n, d, 2 * f, false);
        hook_fwd(m, l, MODEL_LIN_GU, la.xn2, la.gu, n);
        kern_swiglu_fwd(p, la.h, la.gu, n, f);
        if (la.xnext != la.xmid)
            memcpy(la.xnext, la.xmid, sizeof(float) * (size_t)n * d);
        lin_fwd(m, p, l, MODEL_LIN_DOWN, la.xnext, la.h, w.wdown, n, f, d, true);
        hook_fwd(m, l, MODEL_LIN_DOWN, la.h, la.xnext, n);
    }
    return layer_acts(m, a, c->n_layers - 1).xnext;
}

void
model_forward(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens, int b,
              int t)
{
    const struct model_config *c = &m->cfg;
    int n = b * t, d = c->dim;
    const float *xl = forward_layers(m, a, p, tokens, b, t);
    const float *normw = m->params + m->tensors[1 + 9 * c->n_layers].offset;
    norm_fwd(a->training, p, a->xnf, a->rstdf, xl, normw, n, d, c->norm_eps);
    kern_linear_fwd(p, a->logits, a->xnf, head_weight(m, m->params), n, d, c->vocab, false);
}

// Rows of the output projection per task of model_forward_logprobs: their logits [rows, vocab]
// are reduced to log-probabilities while still in cache; big enough that packing the head
// weight once per task costs little.
#define HEAD_ROWS 512

struct head_job {
    const float *w, *xn;
    float *logits, *lp;
    const int *targets;
    int n, d, v, rows;
    bool per_thread; // logits scratch per thread (else per task)
};

static void
head_task(void *ctx, int task, int thread)
{
    struct head_job *j = ctx;
    int r0 = task * j->rows, rows = j->n - r0 < j->rows ? j->n - r0 : j->rows;
    float *lg = j->logits + (size_t)(j->per_thread ? thread : task) * j->rows * j->v;
    // lg [rows, v] = xn[r0..] W^T, as kern_linear_fwd computes each row
    kern_gemm1(false, true, rows, j->v, j->d, 1.0f, j->xn + (size_t)r0 * j->d, j->d, j->w, j->d,
               0.0f, lg, j->v);
    kern_logprobs(NULL, lg, j->lp + r0, j->targets + r0, rows, j->v);
}

void
model_forward_logprobs(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens,
                       const int *targets, int b, int t, float *lp)
{
    const struct model_config *c = &m->cfg;
    int n = b * t, d = c->dim, k = 0;
    const float *xl = forward_layers(m, a, p, tokens, b, t);
    // the scored rows: sel[0..k) their indices, sel[n..n+k) their targets; their final
    // residuals gathered into xn1 (free after the layers), normed into xnf
    int *sel = a->sel, *tg = a->sel + n;
    for (int r = 0; r < n; r++) {
        lp[r] = 0;
        if (targets[r] < 0)
            continue;
        memcpy(a->xn1 + (size_t)k * d, xl + (size_t)r * d, sizeof(float) * d);
        sel[k] = r;
        tg[k++] = targets[r];
    }
    if (k == 0)
        return;
    const float *normw = m->params + m->tensors[1 + 9 * c->n_layers].offset;
    norm_fwd(a->training, p, a->xnf, a->rstdf, a->xn1, normw, k, d, c->norm_eps);
    // row blocks as kern_gemm cuts k rows (OpenBLAS rounds a row differently in a block of
    // another size): with every row scored, the bits of model_forward + model_logprobs
    int rows = (k / 4 + KERN_ROWS - 1) / KERN_ROWS * KERN_ROWS;
    rows = rows < KERN_ROWS ? KERN_ROWS : rows > HEAD_ROWS ? HEAD_ROWS : rows;
    // per-thread scratch when it fits: fewer pages touched, and they stay in cache
    struct head_job j = {head_weight(m, m->params), a->xnf, a->logits, a->loss, tg, k, d,
                         c->vocab, rows,
                         (int64_t)kpool_threads(p) * rows <= (int64_t)a->b * a->t};
    kpool_run(p, (k + rows - 1) / rows, head_task, &j);
    for (int i = 0; i < k; i++)
        lp[sel[i]] = a->loss[i];
}

void
model_logprobs(struct model *m, struct model_acts *a, struct kpool *p, const int *targets,
               float *lp)
{
    kern_logprobs(p, a->logits, lp, targets, a->n, m->cfg.vocab);
}

// Where tensor ti's weight gradient accumulates.
static float *
grad_of(const struct model *m, int ti)
{
    if (m->grad_to && m->grad_to[ti])
        return m->grad_to[ti];
    return m->grads + m->tensors[ti].offset;
}

// dw += dy^T x for one tensor unless frozen. dy [n, ldy] read from column col0.
static void
weight_grad(struct model *m, struct kpool *p, int ti, const float *dy, int ldy, int col0,
            const float *x, int n)
{
    if (m->frozen[ti])
        return;
    const struct model_tensor *t = &m->tensors[ti];
    int out = (int)t->shape[0], in = (int)t->shape[1];
    kern_gemm(p, true, false, out, in, n, 1.0f, dy + col0, ldy, x, in, 1.0f, grad_of(m, ti),
              in);
}

static void
norm_grad(struct model *m, struct kpool *p, int ti, float *dx, const float *dy, const float *x,
          const float *rstd, int n)
{
    const struct model_tensor *t = &m->tensors[ti];
    // A frozen norm still passes its input gradient; its weight gradient goes to a scratch
    // row-free path: reuse the kernel with a throwaway accumulator.
    float *dw = m->frozen[ti] ? NULL : grad_of(m, ti);
    float *tmp = NULL;
    if (m->frozen[ti])
        dw = tmp = xcalloc((size_t)t->numel, sizeof(float));
    kern_rmsnorm_bwd(p, dx, dw, dy, x, m->params + t->offset, rstd, n, (int)t->numel);
    free(tmp);
}

void
model_backward(struct model *m, struct model_acts *a, struct kpool *p)
{
    const struct model_config *c = &m->cfg;
    int t = a->cur_t, n = a->n, b = n / t, d = c->dim, hd = m->hd, f = c->ffn, L = c->n_layers;
    int nq = (c->n_heads + 2 * c->n_kv_heads) * hd, no = c->n_heads * hd;
    int head_i = c->tie_embeddings ? 0 : 2 + 9 * L;
    struct kern_attn ka = {b, t, c->n_heads, c->n_kv_heads, hd};
    if (kpool_threads(p) > a->n_threads) { // attention scratch is per thread
        a->n_threads = kpool_threads(p);
        free(a->dattn);
        a->dattn = xcalloc((size_t)a->n_threads * t * t, sizeof(float));
    }

    // logits = xnf W^T
    kern_linear_bwd_x(p, a->dxn, a->logits, head_weight(m, m->params), n, d, c->vocab, false);
    weight_grad(m, p, head_i, a->logits, c->vocab, 0, a->xnf, n);
    memset(a->dx, 0, sizeof(float) * (size_t)n * d);
    norm_grad(m, p, 1 + 9 * L, a->dx, a->dxn, layer_acts(m, a, L - 1).xnext, a->rstdf, n);

    for (int l = L - 1; l >= 0; l--) {
        struct layer_w w = layer_ptrs(m, m->params, l);
        struct layer_a la = layer_acts(m, a, l);
        int ti = model_layer_tensor(m, l, 0);
        // xnext = xmid + down(h)
        lin_bwd_x(m, p, l, MODEL_LIN_DOWN, a->dh, a->dx, w.wdown, n, f, d);
        hook_bwd(m, l, MODEL_LIN_DOWN, la.h, a->dx, a->dh, n);
        weight_grad(m, p, ti + 8, a->dx, d, 0, la.h, n);
        kern_swiglu_bwd(p, a->dgu, a->dh, la.gu, n, f);
        lin_bwd_x(m, p, l, MODEL_LIN_GU, a->dxn, a->dgu, w.wgu, n, d, 2 * f);
        hook_bwd(m, l, MODEL_LIN_GU, la.xn2, a->dgu, a->dxn, n);
        weight_grad(m, p, ti + 6, a->dgu, 2 * f, 0, la.xn2, n);
        weight_grad(m, p, ti + 7, a->dgu, 2 * f, f, la.xn2, n);
        norm_grad(m, p, ti + 5, a->dx, a->dxn, la.xmid, la.rstd2, n);
        // xmid = x + o(ao)
        lin_bwd_x(m, p, l, MODEL_LIN_O, a->dao, a->dx, w.wo, n, no, d);
        hook_bwd(m, l, MODEL_LIN_O, la.ao, a->dx, a->dao, n);
        weight_grad(m, p, ti + 4, a->dx, d, 0, la.ao, n);
        kern_attn_bwd(p, &ka, a->dqkv, a->dao, la.att, la.qkv, a->dattn);
        kern_rope(p, a->dqkv, n, nq, 0, c->n_heads + c->n_kv_heads, hd, t, NULL, m->rope_cos,
                  m->rope_sin, true);
        // below layer 0 only the embedding: with it and ln1 frozen nothing needs dxn
        bool need_dx = l > 0 || !m->frozen[0] || !m->frozen[ti];
        if (need_dx)
            lin_bwd_x(m, p, l, MODEL_LIN_QKV, a->dxn, a->dqkv, w.wqkv, n, d, nq);
        hook_bwd(m, l, MODEL_LIN_QKV, la.xn1, a->dqkv, need_dx ? a->dxn : NULL, n);
        weight_grad(m, p, ti + 1, a->dqkv, nq, 0, la.xn1, n);
        weight_grad(m, p, ti + 2, a->dqkv, nq, no, la.xn1, n);
        weight_grad(m, p, ti + 3, a->dqkv, nq, no + c->n_kv_heads * hd, la.xn1, n);
        if (need_dx)
            norm_grad(m, p, ti + 0, a->dx, a->dxn, la.x, la.rstd1, n);
    }
    if (!m->frozen[0]) {
        float *demb = grad_of(m, 0);
        for (int r = 0; r < n; r++) {
            float *dst = demb + (size_t)a->tokens[r] * d;
            const float *src = a->dx + (size_t)r * d;
            for (int i = 0; i < d; i++)
                dst[i] += src[i];
        }
    }
}

double
model_forward_backward(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens,
                       const int *targets, int b, int t, float grad_scale, int *n_scored)
{
    model_forward(m, a, p, tokens, b, t);
    kern_xent(p, a->logits, a->loss, targets, a->n, m->cfg.vocab, grad_scale);
    double sum = 0;
    int cnt = 0;
    for (int r = 0; r < a->n; r++)
        if (targets[r] >= 0) {
            sum += a->loss[r];
            cnt++;
        }
    if (n_scored)
        *n_scored = cnt;
    model_backward(m, a, p);
    return sum;
}

// ---- incremental forward -----------------------------------------------------------------

#define KV_CHUNK KERN_ROWS

int
model_kv_init(struct model_kv *kv, const struct model *m, int max_t, struct kerr *err)
{
    memset(kv, 0, sizeof *kv);
    const struct model_config *c = &m->cfg;
    if (max_t <= 0 || max_t > m->max_t)
        return kerr_set(err, "KV cache length %d out of range (1..%d)", max_t, m->max_t);
    size_t hd = (size_t)m->hd, kvw = (size_t)c->n_kv_heads * hd, r = KV_CHUNK;
    kv->max_t = max_t;
    kv->k = xcalloc((size_t)c->n_layers * max_t * kvw, sizeof(float));
    kv->v = xcalloc((size_t)c->n_layers * max_t * kvw, sizeof(float));
    kv->x = xcalloc(r * c->dim, sizeof(float));
    kv->xn = xcalloc(r * c->dim, sizeof(float));
    kv->qkv = xcalloc(r * (c->n_heads + 2 * c->n_kv_heads) * hd, sizeof(float));
    kv->ao = xcalloc(r * c->n_heads * hd, sizeof(float));
    kv->gu = xcalloc(r * 2 * c->ffn, sizeof(float));
    kv->h = xcalloc(r * c->ffn, sizeof(float));
    kv->att = xcalloc((size_t)c->n_heads * kern_attn_rows_scratch(max_t, m->hd), sizeof(float));
    kv->rstd = xcalloc(r, sizeof(float));
    kv->logits = xcalloc(r * c->vocab, sizeof(float)); // pages touched only when scoring
    return 0;
}

void
model_kv_free(struct model_kv *kv)
{
    float *bufs[] = {kv->k,  kv->v,  kv->x,   kv->xn,   kv->qkv,   kv->ao,
                     kv->gu, kv->h,  kv->att, kv->rstd, kv->logits};
    for (size_t i = 0; i < KILN_ARRAY_LEN(bufs); i++)
        free(bufs[i]);
    memset(kv, 0, sizeof *kv);
}

void
model_kv_reset(struct model_kv *kv)
{
    kv->len = 0;
}

void
model_kv_rewind(struct model_kv *kv, int len)
{
    if (len >= 0 && len < kv->len)
        kv->len = len;
}

struct kv_attn_job {
    const struct model *m;
    struct model_kv *kv;
    int l, n, pos0;
};

// One query head over the n new rows against the cache [0, pos0 + n).
static void
kv_attn_task(void *ctx, int h, int thread)
{
    struct kv_attn_job *j = ctx;
    const struct model_config *c = &j->m->cfg;
    int hd = j->m->hd, nq = (c->n_heads + 2 * c->n_kv_heads) * hd, kvw = c->n_kv_heads * hd;
    int g = h / (c->n_heads / c->n_kv_heads);
    size_t layer = (size_t)j->l * j->kv->max_t * kvw;
    struct kern_attn_rows r = {
        .q = j->kv->qkv + h * hd,
        .k = j->kv->k + layer + g * hd,
        .v = j->kv->v + layer + g * hd,
        .out = j->kv->ao + h * hd,
        .ldq = nq, .ldk = kvw, .ldv = kvw, .ldo = c->n_heads * hd,
        .n = j->n, .pos0 = j->pos0, .hd = hd,
    };
    kern_attn_rows(&r, j->kv->att + (size_t)h * kern_attn_rows_scratch(j->kv->max_t, hd));
}

static void
kv_chunk(struct model *m, struct model_kv *kv, struct kpool *p, const int *tokens, int n)
{
    const struct model_config *c = &m->cfg;
    int d = c->dim, hd = m->hd, f = c->ffn, kvw = c->n_kv_heads * hd;
    int nq = (c->n_heads + 2 * c->n_kv_heads) * hd, no = c->n_heads * hd;
    int pos[KV_CHUNK];
    for (int i = 0; i < n; i++)
        pos[i] = kv->len + i;
    const float *emb = m->params + m->tensors[0].offset;
    for (int r = 0; r < n; r++)
        memcpy(kv->x + (size_t)r * d, emb + (size_t)tokens[r] * d, sizeof(float) * d);
    for (int l = 0; l < c->n_layers; l++) {
        struct layer_w w = layer_ptrs(m, m->params, l);
        kern_rmsnorm_fwd_infer(p, kv->xn, kv->rstd, kv->x, w.ln1, n, d, c->norm_eps);
        lin_fwd(m, p, l, MODEL_LIN_QKV, kv->qkv, kv->xn, w.wqkv, n, d, nq, false);
        hook_fwd(m, l, MODEL_LIN_QKV, kv->xn, kv->qkv, n);
        kern_rope(p, kv->qkv, n, nq, 0, c->n_heads + c->n_kv_heads, hd, 1, pos, m->rope_cos,
                  m->rope_sin, false);
        for (int r = 0; r < n; r++) {
            size_t at = ((size_t)l * kv->max_t + kv->len + r) * kvw;
            memcpy(kv->k + at, kv->qkv + (size_t)r * nq + no, sizeof(float) * kvw);
            memcpy(kv->v + at, kv->qkv + (size_t)r * nq + no + kvw, sizeof(float) * kvw);
        }
        struct kv_attn_job j = {m, kv, l, n, kv->len};
        kpool_run(p, c->n_heads, kv_attn_task, &j);
        lin_fwd(m, p, l, MODEL_LIN_O, kv->x, kv->ao, w.wo, n, no, d, true);
        hook_fwd(m, l, MODEL_LIN_O, kv->ao, kv->x, n);
        kern_rmsnorm_fwd_infer(p, kv->xn, kv->rstd, kv->x, w.ln2, n, d, c->norm_eps);
        lin_fwd(m, p, l, MODEL_LIN_GU, kv->gu, kv->xn, w.wgu, n, d, 2 * f, false);
        hook_fwd(m, l, MODEL_LIN_GU, kv->xn, kv->gu, n);
        kern_swiglu_fwd(p, kv->h, kv->gu, n, f);
        lin_fwd(m, p, l, MODEL_LIN_DOWN, kv->x, kv->h, w.wdown, n, f, d, true);
        hook_fwd(m, l, MODEL_LIN_DOWN, kv->h, kv->x, n);
    }
    kv->len += n;
}

void
model_kv_forward(struct model *m, struct model_kv *kv, struct kpool *p, const int *tokens, int n,
                 float *logits)
{
    const struct model_config *c = &m->cfg;
    int last = 0;
    for (int i = 0; i < n; i += KV_CHUNK) {
        last = n - i < KV_CHUNK ? n - i : KV_CHUNK;
        kv_chunk(m, kv, p, tokens + i, last);
    }
    const float *normw = m->params + m->tensors[1 + 9 * c->n_layers].offset;
    const float *xl = kv->x + (size_t)(last - 1) * c->dim;
    kern_rmsnorm_fwd_infer(p, kv->xn, kv->rstd, xl, normw, 1, c->dim, c->norm_eps);
    kern_linear_fwd(p, logits, kv->xn, head_weight(m, m->params), 1, c->dim, c->vocab, false);
}

void
model_kv_forward_logprobs(struct model *m, struct model_kv *kv, struct kpool *p,
                          const int *tokens, const int *targets, int n, float *lp)
{
    const struct model_config *c = &m->cfg;
    int d = c->dim;
    const float *normw = m->params + m->tensors[1 + 9 * c->n_layers].offset;
    for (int i = 0; i < n; i += KV_CHUNK) {
        int rows = n - i < KV_CHUNK ? n - i : KV_CHUNK, k = 0;
        kv_chunk(m, kv, p, tokens + i, rows);
        if (!targets)
            continue;
        // the chunk's scored rows gathered into xn, normed in place, then model_forward_logprobs'
        // output projection and log-softmax
        int sel[KV_CHUNK], tg[KV_CHUNK];
        for (int r = 0; r < rows; r++) {
            lp[i + r] = 0;
            if (targets[i + r] < 0)
                continue;
            memcpy(kv->xn + (size_t)k * d, kv->x + (size_t)r * d, sizeof(float) * d);
            sel[k] = r;
            tg[k++] = targets[i + r];
        }
        if (k == 0)
            continue;
        kern_rmsnorm_fwd_infer(p, kv->xn, kv->rstd, kv->xn, normw, k, d, c->norm_eps);
        // log-probabilities into rstd (free after the norm)
        struct head_job j = {head_weight(m, m->params), kv->xn, kv->logits, kv->rstd, tg, k, d,
                             c->vocab, KV_CHUNK, false};
        head_task(&j, 0, 0);
        for (int r = 0; r < k; r++)
            lp[i + sel[r]] = kv->rstd[r];
    }
}

// ---- optimizer ---------------------------------------------------------------------------

#define OPT_CHUNK 65536

struct adamw_job {
    struct adamw *o;
    struct model *m;
    float lr;
    double bc1, bc2;
};

// Task i covers chunk i of the slab: [i*OPT_CHUNK, ...) clipped to one tensor's range by
// looking up which tensors intersect it.
static void
adamw_task(void *ctx, int task, int thread)
{
    struct adamw_job *j = ctx;
    struct adamw *o = j->o;
    struct model *m = j->m;
    size_t c0 = (size_t)task * OPT_CHUNK, c1 = c0 + OPT_CHUNK;
    if (c1 > m->n_params)
        c1 = m->n_params;
    float step_size = (float)(j->lr / j->bc1), bc2s = (float)sqrt(j->bc2);
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const struct model_tensor *t = &m->tensors[ti];
        size_t i0 = t->offset > c0 ? t->offset : c0;
        size_t i1 = t->offset + t->numel < c1 ? t->offset + t->numel : c1;
        if (i0 >= i1 || m->frozen[ti])
            continue;
        float decay = t->decay ? 1.0f - j->lr * o->weight_decay : 1.0f;
        float *restrict pp = m->params, *restrict mm = o->m, *restrict vv = o->v;
        const float *restrict g = m->grads;
        for (size_t i = i0; i < i1; i++) {
            pp[i] *= decay;
            mm[i] = b1 * mm[i] + (1.0f - b1) * g[i];
            vv[i] = b2 * vv[i] + (1.0f - b2) * g[i] * g[i];
            float denom = sqrtf(vv[i]) / bc2s + eps;
            pp[i] -= step_size * mm[i] / denom;
        }
    }
}

void
adamw_init(struct adamw *o, const struct model *m, float beta1, float beta2, float eps,
           float weight_decay)
{
    memset(o, 0, sizeof *o);
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps, o->weight_decay = weight_decay;
    o->m = xcalloc(m->n_params, sizeof(float));
    o->v = xcalloc(m->n_params, sizeof(float));
}

void
adamw_free(struct adamw *o)
{
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void
adamw_update(struct adamw *o, struct model *m, struct kpool *p, float lr)
{
    o->step++;
    o->lr = lr;
    struct adamw_job j = {o, m, lr, 1.0 - pow(o->beta1, (double)o->step),
                          1.0 - pow(o->beta2, (double)o->step)};
    kpool_run(p, (int)((m->n_params + OPT_CHUNK - 1) / OPT_CHUNK), adamw_task, &j);
}

double
model_grad_norm(struct model *m, struct kpool *p)
{
    double s = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (!m->frozen[i])
            s += kern_sumsq(p, m->grads + m->tensors[i].offset, m->tensors[i].numel);
    return sqrt(s);
}

double
model_grad_clip(struct model *m, struct kpool *p, double max_norm)
{
    double norm = model_grad_norm(m, p);
    double coef = max_norm / (norm + 1e-6);
    if (max_norm > 0 && coef < 1.0)
        for (int i = 0; i < m->n_tensors; i++)
            if (!m->frozen[i])
                kern_scale(p, m->grads + m->tensors[i].offset, m->tensors[i].numel,
                           (float)coef);
    return norm;
}

float
lr_at(enum lr_sched s, float lr, int64_t step, int64_t warmup, int64_t total, float min_ratio)
{
    if (warmup > 0 && step <= warmup)
        return lr * (float)step / (float)warmup;
    if (s == LR_CONSTANT || total <= warmup)
        return lr;
    double prog = (double)(step - warmup) / (double)(total - warmup);
    prog = prog < 0 ? 0 : prog > 1 ? 1 : prog;
    double k = s == LR_COSINE ? 0.5 * (1.0 + cos(M_PI * prog)) : 1.0 - prog;
    return (float)(lr * (min_ratio + (1.0 - min_ratio) * k));
}

// ---- generator ------------------------------------------------------------------------------

static uint64_t
splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void
model_rng_seed(struct model_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t
model_rng_next(struct model_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double
model_rng_uniform(struct model_rng *r)
{
    return (double)(model_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double
model_rng_normal(struct model_rng *r)
{
    double u1 = ((double)(model_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = model_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

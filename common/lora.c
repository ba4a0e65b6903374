// SPDX-License-Identifier: MIT
// lora: PEFT-compatible low-rank adapters as model hooks (see lora.h for the semantics and
// the file format).
#include "lora.h"

#include "checkpoint.h"
#include "hash.h"
#include "json.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const target_hf[LORA_N_TARGETS] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};
static const char *const target_short[LORA_N_TARGETS] = {
    "q", "k", "v", "o", "gate", "up", "down",
};
// Index of the base tensor within a layer (model_layer_tensor's k).
static const int target_layer_k[LORA_N_TARGETS] = {1, 2, 3, 4, 6, 7, 8};

const char *
lora_target_hf(enum lora_target t)
{
    return target_hf[t];
}

const char *
lora_target_short(enum lora_target t)
{
    return target_short[t];
}

static int
target_lookup(const char *s, size_t n)
{
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if ((strlen(target_hf[t]) == n && memcmp(s, target_hf[t], n) == 0) ||
            (strlen(target_short[t]) == n && memcmp(s, target_short[t], n) == 0))
            return t;
    return -1;
}

int
lora_targets_parse(const char *list, unsigned *mask, struct kerr *err)
{
    *mask = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 3 && memcmp(p, "all", 3) == 0) {
            *mask = LORA_ALL_TARGETS;
        } else {
            int t = target_lookup(p, n);
            if (t < 0)
                return kerr_set(err, "unknown LoRA target '%.*s' (expected q,k,v,o,gate,up,down)",
                                (int)n, p);
            *mask |= 1u << t;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

static const char *const module_hf[LORA_N_MODULES] = {"embed_tokens", "lm_head"};

static int
module_lookup(const char *s, size_t n)
{
    for (int k = 0; k < LORA_N_MODULES; k++)
        if (strlen(module_hf[k]) == n && memcmp(s, module_hf[k], n) == 0)
            return k;
    return n == 5 && memcmp(s, "embed", 5) == 0 ? LORA_MOD_EMBED : -1;
}

int
lora_modules_parse(const char *list, unsigned *mask, struct kerr *err)
{
    *mask = 0;
    for (const char *p = list;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int k = module_lookup(p, n);
        if (k < 0)
            return kerr_set(err, "module to save '%.*s' is not supported (expected embed_tokens, "
                            "lm_head)", (int)n, p);
        *mask |= 1u << k;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

// The base tensor of a module to save.
static int
module_tensor(const struct model *m, enum lora_module k)
{
    return k == LORA_MOD_EMBED || m->cfg.tie_embeddings ? 0 : 2 + 9 * m->cfg.n_layers;
}

void
lora_config_default(struct lora_config *c)
{
    memset(c, 0, sizeof *c);
    c->r = 8;
    c->alpha = 16;
    c->targets = 1u << LORA_Q | 1u << LORA_V;
}

int
lora_config_check(const struct lora_config *c, struct kerr *err)
{
    if (c->r < 1 || c->r > 65536)
        return kerr_set(err, "LoRA rank r %d out of range (1..65536)", c->r);
    if (!(c->alpha > 0) || !isfinite(c->alpha))
        return kerr_set(err, "lora_alpha must be a positive number");
    if (!(c->dropout >= 0 && c->dropout < 1))
        return kerr_set(err, "lora_dropout %g outside [0, 1)", c->dropout);
    if (!(c->targets & LORA_ALL_TARGETS) || (c->targets & ~LORA_ALL_TARGETS))
        return kerr_set(err, "no LoRA target modules");
    if (c->modules >> LORA_N_MODULES)
        return kerr_set(err, "unknown module to save");
    return 0;
}

// Shape facts of one target in a model: the base tensor, and where its output columns sit in
// the hook's y (col0 within rows of ld floats).
struct target_geom {
    int in, out, col0, ld;
    enum model_linear which;
};

static struct target_geom
target_geom(const struct model_config *c, int hd, enum lora_target t)
{
    int nq = c->n_heads * hd, nkv = c->n_kv_heads * hd, qkv = nq + 2 * nkv;
    switch (t) {
    case LORA_Q: return (struct target_geom){c->dim, nq, 0, qkv, MODEL_LIN_QKV};
    case LORA_K: return (struct target_geom){c->dim, nkv, nq, qkv, MODEL_LIN_QKV};
    case LORA_V: return (struct target_geom){c->dim, nkv, nq + nkv, qkv, MODEL_LIN_QKV};
    case LORA_O: return (struct target_geom){nq, c->dim, 0, c->dim, MODEL_LIN_O};
    case LORA_GATE: return (struct target_geom){c->dim, c->ffn, 0, 2 * c->ffn, MODEL_LIN_GU};
    case LORA_UP: return (struct target_geom){c->dim, c->ffn, c->ffn, 2 * c->ffn, MODEL_LIN_GU};
    default: return (struct target_geom){c->ffn, c->dim, 0, c->dim, MODEL_LIN_DOWN};
    }
}

static void
adapter_name(char *out, size_t cap, int layer, enum lora_target t, char ab)
{
    snprintf(out, cap, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", layer,
             t >= LORA_GATE ? "mlp" : "self_attn", target_hf[t], ab);
}

// ---- hooks -------------------------------------------------------------------------------

// The dropout mask of (batch, layer, target): element i is dropped when
// hash_mix64(key + i) / 2^64 < p.
static uint64_t
mask_key(const struct lora *lo, int layer, enum lora_target t)
{
    return hash_mix64(lo->seed ^
                      hash_mix64(lo->batch * 4096u + (uint64_t)layer * 8u + (uint64_t)t));
}

// x with dropout applied into lo->xd (or x itself when there is none).
static const float *
dropped_input(struct lora *lo, int layer, enum lora_target t, const float *x, int n, int in)
{
    double p = lo->cfg.dropout;
    if (!lo->training || p <= 0)
        return x;
    uint64_t key = mask_key(lo, layer, t);
    float keep_scale = (float)(1.0 / (1.0 - p));
    size_t total = (size_t)n * in;
    for (size_t i = 0; i < total; i++) {
        double u = (double)(hash_mix64(key + i) >> 11) * 0x1.0p-53;
        lo->xd[i] = u < p ? 0.0f : x[i] * keep_scale;
    }
    return lo->xd;
}

static void
scratch_reserve(struct lora *lo, int n, int in)
{
    size_t u = (size_t)n * LORA_N_TARGETS * lo->cfg.r, x = (size_t)n * in;
    if (u > lo->u_cap) {
        lo->u = xrealloc(lo->u, u * sizeof(float));
        lo->du = xrealloc(lo->du, u * sizeof(float));
        lo->u_cap = u;
    }
    if (lo->cfg.dropout > 0 && x > lo->xd_cap) {
        lo->xd = xrealloc(lo->xd, x * sizeof(float));
        lo->xd_cap = x;
    }
}

// Targets of each linear hook, in column order: [lin_first, lin_first + lin_count).
static const int lin_first[4] = {LORA_Q, LORA_O, LORA_GATE, LORA_DOWN};
static const int lin_count[4] = {3, 1, 2, 1};

static float *
tensor_at(const struct lora *lo, float *base, int layer, int t, int ab)
{
    return base + lo->view.tensors[lo->index[layer * LORA_N_TARGETS + t] + ab].offset;
}

// u [n, k r] = x [A_1; ...; A_k]^T for group g of layer (its A matrices are adjacent).
static void
group_u(struct lora *lo, struct lora_group *g, int layer, const float *x, int n, int in)
{
    size_t need = (size_t)n * g->k * lo->cfg.r;
    if (need > g->cap) {
        g->u = xrealloc(g->u, need * sizeof(float));
        g->cap = need;
    }
    const float *A = tensor_at(lo, lo->view.params, layer, g->first, 0);
    kern_gemm(lo->pool, false, true, n, g->k * lo->cfg.r, in, 1.0f, x, in, A, in, 0.0f, g->u,
              g->k * lo->cfg.r);
    g->x = x, g->rows = n;
}

// Whether layer linears of n rows run merged (see struct lora).
static bool
merged(const struct lora *lo, int n)
{
    return lo->m && lo->m->base == &lo->base && n >= lo->merge_rows &&
           !(lo->training && lo->cfg.dropout > 0);
}

// The base weight of linear `which` in layer: [ld, in] (q,k,v and gate,up adjacent).
static const float *
base_weight(const struct lora *lo, int layer, enum model_linear which)
{
    const struct model *m = lo->m;
    return m->params + m->tensors[model_layer_tensor(m, layer, target_layer_k[lin_first[which]])]
                           .offset;
}

// wm [ld, in] = W + scale B A for each adapted target of the linear.
static const float *
merged_weight(struct lora *lo, struct kpool *p, int layer, enum model_linear which)
{
    struct target_geom g0 = target_geom(&lo->view.cfg, lo->view.hd, lin_first[which]);
    size_t need = (size_t)g0.ld * g0.in;
    if (need > lo->wm_cap) {
        lo->wm = xrealloc(lo->wm, need * sizeof(float));
        lo->wm_cap = need;
    }
    memcpy(lo->wm, base_weight(lo, layer, which), need * sizeof(float));
    for (int t = lin_first[which]; t < lin_first[which] + lin_count[which]; t++) {
        if (lo->index[layer * LORA_N_TARGETS + t] < 0)
            continue;
        struct target_geom g = target_geom(&lo->view.cfg, lo->view.hd, t);
        kern_gemm(p, false, false, g.out, g.in, lo->cfg.r, lo->scale,
                  tensor_at(lo, lo->view.params, layer, t, 1), lo->cfg.r,
                  tensor_at(lo, lo->view.params, layer, t, 0), g.in, 1.0f,
                  lo->wm + (size_t)g.col0 * g.in, g.in);
    }
    return lo->wm;
}

// The weight layer `layer`'s linear `which` uses over n rows: W + scale B A when its adapters are
// merged in for this call (merged()), else the base's W.
static const float *
layer_weight(struct lora *lo, struct kpool *p, int layer, enum model_linear which, int n)
{
    return lo->groups[layer * 4 + which].k && merged(lo, n) ? merged_weight(lo, p, layer, which)
                                                             : base_weight(lo, layer, which);
}

static void
base_fwd(void *ctx, struct kpool *p, int layer, enum model_linear which, const float *x,
         float *y, int n, bool acc)
{
    struct lora *lo = ctx;
    struct target_geom g0 = target_geom(&lo->view.cfg, lo->view.hd, lin_first[which]);
    kern_linear_fwd(p, y, x, layer_weight(lo, p, layer, which, n), n, g0.in, g0.ld, acc);
}

static void
base_bwd_x(void *ctx, struct kpool *p, int layer, enum model_linear which, const float *dy,
           float *dx, int n)
{
    struct lora *lo = ctx;
    struct target_geom g0 = target_geom(&lo->view.cfg, lo->view.hd, lin_first[which]);
    kern_linear_bwd_x(p, dx, dy, layer_weight(lo, p, layer, which, n), n, g0.in, g0.ld, false);
}

static void
hook_fwd(void *ctx, int layer, enum model_linear which, const float *x, float *y, int n)
{
    struct lora *lo = ctx;
    struct lora_group *g = &lo->groups[layer * 4 + which];
    if (g->k == 0)
        return;
    if (merged(lo, n)) { // y already has the adapter's part; u is made by the backward
        g->x = NULL;
        return;
    }
    int r = lo->cfg.r, kr = g->k * r;
    bool drop = lo->training && lo->cfg.dropout > 0;
    struct target_geom g0 = target_geom(&lo->view.cfg, lo->view.hd, g->first);
    if (drop) { // a mask per target: no shared product
        scratch_reserve(lo, n, g0.in);
        g->x = NULL;
    } else {
        group_u(lo, g, layer, x, n, g0.in);
    }
    int j = 0;
    for (int t = lin_first[which]; t < lin_first[which] + lin_count[which]; t++) {
        if (lo->index[layer * LORA_N_TARGETS + t] < 0)
            continue;
        struct target_geom tg = target_geom(&lo->view.cfg, lo->view.hd, t);
        const float *u = g->u + j++ * r;
        int ldu = kr;
        if (drop) { // u[n,r] = dropout(x) A^T
            const float *xd = dropped_input(lo, layer, t, x, n, tg.in);
            kern_gemm(lo->pool, false, true, n, r, tg.in, 1.0f, xd, tg.in,
                      tensor_at(lo, lo->view.params, layer, t, 0), tg.in, 0.0f, lo->u, r);
            u = lo->u, ldu = r;
        }
        // y[:, col0..] += scale u B^T
        kern_gemm(lo->pool, false, true, n, tg.out, r, lo->scale, u, ldu,
                  tensor_at(lo, lo->view.params, layer, t, 1), r, 1.0f, y + tg.col0, tg.ld);
    }
}

// Backward of one target with dropout: its own mask, so its own products (dx may be NULL).
static void
bwd_dropout(struct lora *lo, int layer, enum lora_target t, const float *x, const float *dy,
            float *dx, int n)
{
    int r = lo->cfg.r;
    struct target_geom g = target_geom(&lo->view.cfg, lo->view.hd, t);
    const float *A = tensor_at(lo, lo->view.params, layer, t, 0);
    const float *B = tensor_at(lo, lo->view.params, layer, t, 1);
    float *dA = tensor_at(lo, lo->view.grads, layer, t, 0);
    float *dB = tensor_at(lo, lo->view.grads, layer, t, 1);
    const float *dyt = dy + g.col0;
    scratch_reserve(lo, n, g.in);
    const float *xd = dropped_input(lo, layer, t, x, n, g.in);
    kern_gemm(lo->pool, false, true, n, r, g.in, 1.0f, xd, g.in, A, g.in, 0.0f, lo->u, r);
    // dB[out,r] += scale dy^T u; du[n,r] = scale dy B; dA[r,in] += du^T xd
    kern_gemm(lo->pool, true, false, g.out, r, n, lo->scale, dyt, g.ld, lo->u, r, 1.0f, dB, r);
    kern_gemm(lo->pool, false, false, n, r, g.out, lo->scale, dyt, g.ld, B, r, 0.0f, lo->du, r);
    kern_gemm(lo->pool, true, false, r, g.in, n, 1.0f, lo->du, r, xd, g.in, 1.0f, dA, g.in);
    if (!dx)
        return;
    // dx += (du A) ⊙ mask / (1-p), the mask regenerated from its key.
    float *tmp = xmalloc(sizeof(float) * (size_t)n * g.in);
    kern_gemm(lo->pool, false, false, n, g.in, r, 1.0f, lo->du, r, A, g.in, 0.0f, tmp, g.in);
    float keep_scale = (float)(1.0 / (1.0 - lo->cfg.dropout));
    uint64_t key = mask_key(lo, layer, t);
    for (size_t i = 0; i < (size_t)n * g.in; i++) {
        double u = (double)(hash_mix64(key + i) >> 11) * 0x1.0p-53;
        if (u >= lo->cfg.dropout)
            dx[i] += tmp[i] * keep_scale;
    }
    free(tmp);
}

static void
hook_bwd(void *ctx, int layer, enum model_linear which, const float *x, const float *dy,
         float *dx, int n)
{
    struct lora *lo = ctx;
    struct lora_group *g = &lo->groups[layer * 4 + which];
    if (g->k == 0)
        return;
    if (lo->training && lo->cfg.dropout > 0) {
        for (int t = lin_first[which]; t < lin_first[which] + lin_count[which]; t++)
            if (lo->index[layer * LORA_N_TARGETS + t] >= 0)
                bwd_dropout(lo, layer, t, x, dy, dx, n);
        return;
    }
    int r = lo->cfg.r, kr = g->k * r, in = target_geom(&lo->view.cfg, lo->view.hd, g->first).in;
    if (g->x != x || g->rows != n) // not the input of the last forward: recompute u
        group_u(lo, g, layer, x, n, in);
    scratch_reserve(lo, n, in);
    int j = 0;
    for (int t = lin_first[which]; t < lin_first[which] + lin_count[which]; t++) {
        if (lo->index[layer * LORA_N_TARGETS + t] < 0)
            continue;
        struct target_geom tg = target_geom(&lo->view.cfg, lo->view.hd, t);
        const float *dyt = dy + tg.col0;
        // dB[out,r] += scale dy^T u; du[:, j r..] = scale dy B
        kern_gemm(lo->pool, true, false, tg.out, r, n, lo->scale, dyt, tg.ld, g->u + j * r, kr,
                  1.0f, tensor_at(lo, lo->view.grads, layer, t, 1), r);
        kern_gemm(lo->pool, false, false, n, r, tg.out, lo->scale, dyt, tg.ld,
                  tensor_at(lo, lo->view.params, layer, t, 1), r, 0.0f, lo->du + j * r, kr);
        j++;
    }
    // [dA_1; ...] [k r, in] += du^T x; dx += du [A_1; ...] (merged: dy W' had it)
    kern_gemm(lo->pool, true, false, kr, in, n, 1.0f, lo->du, kr, x, in, 1.0f,
              tensor_at(lo, lo->view.grads, layer, g->first, 0), in);
    if (dx && !merged(lo, n))
        kern_gemm(lo->pool, false, false, n, in, kr, 1.0f, lo->du, kr,
                  tensor_at(lo, lo->view.params, layer, g->first, 0), in, 1.0f, dx, in);
}

// ---- lifetime ----------------------------------------------------------------------------

int
lora_init(struct lora *lo, const struct model *m, const struct lora_config *c, uint64_t seed,
          struct kerr *err)
{
    memset(lo, 0, sizeof *lo);
    if (lora_config_check(c, err) < 0)
        return -1;
    if ((c->modules & (1u << LORA_MOD_HEAD)) && m->cfg.tie_embeddings)
        return kerr_set(err, "module to save lm_head: the base model ties lm_head to "
                             "embed_tokens (save embed_tokens)");
    lo->cfg = *c;
    lo->scale = (float)(c->rslora ? c->alpha / sqrt((double)c->r) : c->alpha / c->r);
    lo->n_layers = m->cfg.n_layers;
    lo->seed = seed;
    int n_slots = lo->n_layers * LORA_N_TARGETS, n_t = 0;
    lo->index = xmalloc(sizeof(int) * (size_t)n_slots);
    for (int i = 0; i < n_slots; i++)
        if (c->targets & (1u << (i % LORA_N_TARGETS)))
            n_t += 2;
    for (int k = 0; k < LORA_N_MODULES; k++)
        n_t += (c->modules >> k) & 1;
    struct model *v = &lo->view;
    v->cfg = m->cfg;
    v->hd = m->hd;
    v->tensors = xcalloc((size_t)(n_t ? n_t : 1), sizeof *v->tensors);
    v->frozen = xcalloc((size_t)(n_t ? n_t : 1), sizeof(bool));
    // Slab: per layer the A matrices of every target, then the B matrices, so the A's of
    // targets sharing an input are adjacent (one product for the group, see struct lora).
    lo->groups = xcalloc((size_t)lo->n_layers * 4, sizeof *lo->groups);
    size_t off = 0;
    for (int l = 0; l < lo->n_layers; l++) {
        size_t a_size = 0;
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (c->targets & (1u << t))
                a_size += (size_t)c->r * (size_t)target_geom(&m->cfg, m->hd, t).in;
        size_t a_off = off, b_off = off + a_size;
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            lo->index[l * LORA_N_TARGETS + t] = -1;
            if (!(c->targets & (1u << t)))
                continue;
            struct target_geom g = target_geom(&m->cfg, m->hd, t);
            struct lora_group *gr = &lo->groups[l * 4 + g.which];
            if (gr->k++ == 0)
                gr->first = t;
            lo->index[l * LORA_N_TARGETS + t] = v->n_tensors;
            for (int ab = 0; ab < 2; ab++) {
                struct model_tensor *mt = &v->tensors[v->n_tensors++];
                adapter_name(mt->name, sizeof mt->name, l, t, ab ? 'B' : 'A');
                mt->ndim = 2;
                mt->shape[0] = ab ? g.out : c->r;
                mt->shape[1] = ab ? c->r : g.in;
                mt->numel = (size_t)mt->shape[0] * (size_t)mt->shape[1];
                size_t *o = ab ? &b_off : &a_off;
                mt->offset = *o;
                mt->decay = true;
                *o += mt->numel;
            }
        }
        off = b_off;
    }
    int n_adapter = v->n_tensors;
    for (int k = 0; k < LORA_N_MODULES; k++) { // then the modules to save, as in m
        lo->mod_index[k] = -1;
        if (!(c->modules & (1u << k)))
            continue;
        const struct model_tensor *bt = &m->tensors[module_tensor(m, k)];
        lo->mod_index[k] = v->n_tensors;
        struct model_tensor *mt = &v->tensors[v->n_tensors++];
        *mt = *bt;
        snprintf(mt->name, sizeof mt->name, "base_model.model.%.60s", bt->name);
        mt->offset = off;
        off += mt->numel;
    }
    v->n_params = off;
    v->params = xcalloc(off ? off : 1, sizeof(float));
    // A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)); B stays zero.
    struct model_rng rng;
    model_rng_seed(&rng, seed);
    for (int k = 0; k < LORA_N_MODULES; k++)
        if (lo->mod_index[k] >= 0) {
            const struct model_tensor *mt = &v->tensors[lo->mod_index[k]];
            memcpy(v->params + mt->offset, m->params + m->tensors[module_tensor(m, k)].offset,
                   mt->numel * sizeof(float));
        }
    for (int i = 0; i < n_adapter; i += 2) {
        const struct model_tensor *ta = &v->tensors[i];
        double bound = 1.0 / sqrt((double)ta->shape[1]);
        for (size_t j = 0; j < ta->numel; j++)
            v->params[ta->offset + j] = (float)((2.0 * model_rng_uniform(&rng) - 1.0) * bound);
    }
    lo->hooks = (struct model_hooks){hook_fwd, hook_bwd, lo};
    return 0;
}

void
lora_free(struct lora *lo)
{
    for (int i = 0; lo->groups && i < lo->n_layers * 4; i++)
        free(lo->groups[i].u);
    free(lo->groups);
    free(lo->grad_to);
    free(lo->index);
    free(lo->view.tensors);
    free(lo->view.frozen);
    free(lo->view.params);
    free(lo->view.grads);
    free(lo->u);
    free(lo->du);
    free(lo->wm);
    free(lo->xd);
    memset(lo, 0, sizeof *lo);
}

size_t
lora_params(const struct lora *lo)
{
    return lo->view.n_params;
}

void
lora_attach(struct lora *lo, struct model *m, struct kpool *pool)
{
    for (int i = 0; i < m->n_tensors; i++)
        m->frozen[i] = true;
    lo->pool = pool;
    lo->training = true;
    m->hooks = &lo->hooks;
    lo->m = m;
    lo->merge_rows = LORA_MERGE_ROWS;
    if (lo->cfg.modules) { // trained in full: gradients into the view, values back after steps
        model_grads_alloc(&lo->view);
        free(lo->grad_to);
        lo->grad_to = xcalloc((size_t)m->n_tensors, sizeof *lo->grad_to);
        for (int k = 0; k < LORA_N_MODULES; k++)
            if (lo->mod_index[k] >= 0) {
                int ti = module_tensor(m, k);
                m->frozen[ti] = false;
                lo->grad_to[ti] = lo->view.grads + lo->view.tensors[lo->mod_index[k]].offset;
            }
        m->grad_to = lo->grad_to;
        lora_sync(lo);
    }
    if (!m->base) {
        lo->base = (struct model_base_ops){base_fwd, base_bwd_x, lo};
        m->base = &lo->base;
    }
}

void
lora_detach(struct lora *lo, struct model *m)
{
    m->hooks = NULL;
    if (m->base == &lo->base)
        m->base = NULL;
    if (m->grad_to && m->grad_to == lo->grad_to) {
        m->grad_to = NULL;
        for (int k = 0; k < LORA_N_MODULES; k++)
            if (lo->mod_index[k] >= 0)
                m->frozen[module_tensor(m, k)] = true;
    }
    lo->m = NULL;
}

// The modules to save of lo's view into m's tensors.
static void
modules_copy(const struct lora *lo, struct model *m)
{
    for (int k = 0; k < LORA_N_MODULES; k++)
        if (lo->mod_index[k] >= 0) {
            const struct model_tensor *vt = &lo->view.tensors[lo->mod_index[k]];
            memcpy(m->params + m->tensors[module_tensor(m, k)].offset,
                   lo->view.params + vt->offset, vt->numel * sizeof(float));
        }
}

void
lora_sync(struct lora *lo)
{
    if (lo->m)
        modules_copy(lo, lo->m);
}

void
lora_next_batch(struct lora *lo)
{
    lo->batch++;
}

void
lora_merge(const struct lora *lo, struct model *m, struct kpool *pool)
{
    for (int l = 0; l < lo->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            int ai = lo->index[l * LORA_N_TARGETS + t];
            if (ai < 0)
                continue;
            const struct model_tensor *w = &m->tensors[model_layer_tensor(m, l, target_layer_k[t])];
            int out = (int)w->shape[0], in = (int)w->shape[1], r = lo->cfg.r;
            const float *A = lo->view.params + lo->view.tensors[ai].offset;
            const float *B = lo->view.params + lo->view.tensors[ai + 1].offset;
            kern_gemm(pool, false, false, out, in, r, lo->scale, B, r, A, in, 1.0f,
                      m->params + w->offset, in);
        }
    modules_copy(lo, m);
}

// ---- files -------------------------------------------------------------------------------

int
lora_save(const char *dir, const struct lora *lo, struct kerr *err)
{
    const struct lora_config *c = &lo->cfg;
    struct buf b = {0};
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "alpha_pattern"), jw_raw(&w, "{}", 2);
    jw_key(&w, "auto_mapping"), jw_null(&w);
    jw_key(&w, "base_model_name_or_path");
    if (c->base_model[0])
        jw_str(&w, c->base_model);
    else
        jw_null(&w);
    jw_key(&w, "bias"), jw_str(&w, "none");
    jw_key(&w, "fan_in_fan_out"), jw_bool(&w, false);
    jw_key(&w, "inference_mode"), jw_bool(&w, true);
    jw_key(&w, "init_lora_weights"), jw_bool(&w, true);
    jw_key(&w, "layers_pattern"), jw_null(&w);
    jw_key(&w, "layers_to_transform"), jw_null(&w);
    jw_key(&w, "lora_alpha"), jw_double(&w, c->alpha);
    jw_key(&w, "lora_dropout"), jw_double(&w, c->dropout);
    jw_key(&w, "modules_to_save");
    if (c->modules) {
        jw_arr_begin(&w);
        for (int k = 0; k < LORA_N_MODULES; k++)
            if (c->modules & (1u << k))
                jw_str(&w, module_hf[k]);
        jw_arr_end(&w);
    } else {
        jw_null(&w);
    }
    jw_key(&w, "peft_type"), jw_str(&w, "LORA");
    jw_key(&w, "r"), jw_int(&w, c->r);
    jw_key(&w, "rank_pattern"), jw_raw(&w, "{}", 2);
    jw_key(&w, "revision"), jw_null(&w);
    jw_key(&w, "target_modules"), jw_arr_begin(&w);
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (c->targets & (1u << t))
            jw_str(&w, target_hf[t]);
    jw_arr_end(&w);
    jw_key(&w, "task_type"), jw_str(&w, "CAUSAL_LM");
    jw_key(&w, "use_dora"), jw_bool(&w, false);
    jw_key(&w, "use_rslora"), jw_bool(&w, c->rslora);
    jw_obj_end(&w);
    buf_putc(&b, '\n');

    struct buf path = {0};
    buf_printf(&path, "%s/adapter_config.json", dir);
    int rc = ckpt_write_file(path.p, b.p, b.len, err);
    buf_free(&b);
    if (rc == 0) {
        const struct model *v = &lo->view;
        struct st_out *outs = xcalloc((size_t)(v->n_tensors ? v->n_tensors : 1), sizeof *outs);
        for (int i = 0; i < v->n_tensors; i++) {
            outs[i].name = v->tensors[i].name;
            outs[i].ndim = v->tensors[i].ndim;
            outs[i].shape[0] = v->tensors[i].shape[0];
            outs[i].shape[1] = v->tensors[i].shape[1];
            outs[i].data = v->params + v->tensors[i].offset;
        }
        buf_reset(&path);
        buf_printf(&path, "%s/adapter_model.safetensors", dir);
        const char *meta[] = {"format", "pt", NULL};
        rc = st_write(path.p, outs, (size_t)v->n_tensors, ST_F32, meta, err);
        free(outs);
    }
    buf_free(&path);
    return rc;
}

static bool
member(const struct json_val *o, const char *key, struct json_val *out)
{
    return json_val_member(o, key, strlen(key), out) && out->type != JSON_NULL;
}

// A key that must be absent, null, false, or an empty object/array to be supported.
static int
refuse_feature(const struct json_val *o, const char *key, const char *name, struct kerr *err)
{
    struct json_val v;
    if (!member(o, key, &v) || v.type == JSON_FALSE)
        return 0;
    if ((v.type == JSON_OBJECT || v.type == JSON_ARRAY)) {
        struct json_iter it;
        json_iter_init(&it, &v);
        if (!json_iter_next(&it))
            return 0;
    }
    return kerr_set(err, "%s: %s is not supported by kiln's LoRA", name, key);
}

int
lora_config_parse(struct lora_config *c, const char *text, size_t n, const char *name,
                  struct kerr *err)
{
    lora_config_default(c);
    struct json_val root, v;
    struct json_error je;
    if (json_parse_value(text, n, &root, &je) < 0)
        return kerr_set(err, "%s:1:%zu: %s", name, je.offset + 1, je.msg);
    if (root.type != JSON_OBJECT)
        return kerr_set(err, "%s: not a JSON object", name);
    if (!member(&root, "peft_type", &v) || !json_str_eq(&v, "LORA", 4))
        return kerr_set(err, "%s: peft_type must be \"LORA\"", name);
    int64_t r;
    if (!member(&root, "r", &v) || json_int(&v, &r) < 0 || r < 1 || r > 65536)
        return kerr_set(err, "%s: r must be an integer in 1..65536", name);
    c->r = (int)r;
    c->alpha = 8; // PEFT's default lora_alpha
    if (member(&root, "lora_alpha", &v) && (json_double(&v, &c->alpha) < 0 || !(c->alpha > 0)))
        return kerr_set(err, "%s: lora_alpha must be a positive number", name);
    if (member(&root, "lora_dropout", &v) &&
        (json_double(&v, &c->dropout) < 0 || !(c->dropout >= 0 && c->dropout < 1)))
        return kerr_set(err, "%s: lora_dropout must be a number in [0, 1)", name);
    if (member(&root, "use_rslora", &v)) {
        if (v.type != JSON_TRUE && v.type != JSON_FALSE)
            return kerr_set(err, "%s: use_rslora must be true or false", name);
        c->rslora = v.type == JSON_TRUE;
    }
    if (member(&root, "bias", &v) && !json_str_eq(&v, "none", 4))
        return kerr_set(err, "%s: bias other than \"none\" is not supported", name);
    static const char *const refused[] = {"fan_in_fan_out", "use_dora", "rank_pattern",
                                          "alpha_pattern", "layers_to_transform",
                                          "layer_replication"};
    for (size_t i = 0; i < KILN_ARRAY_LEN(refused); i++)
        if (refuse_feature(&root, refused[i], name, err) < 0)
            return -1;
    if (!member(&root, "target_modules", &v) || v.type != JSON_ARRAY)
        return kerr_set(err, "%s: target_modules must be a list of module names (q_proj, ...)",
                        name);
    c->targets = 0;
    struct json_iter it;
    json_iter_init(&it, &v);
    struct buf s = {0};
    while (json_iter_next(&it)) {
        buf_reset(&s);
        json_str(&it.val, &s);
        int t = it.val.type == JSON_STRING ? target_lookup(s.p, s.len) : -1;
        if (t < 0 || s.len < 3) { // short names are not PEFT module names
            kerr_set(err, "%s: target module '%s' is not supported (kiln adapts q_proj, "
                     "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", name,
                     s.p ? s.p : "");
            buf_free(&s);
            return -1;
        }
        c->targets |= 1u << t;
    }
    if (!c->targets) {
        buf_free(&s);
        return kerr_set(err, "%s: target_modules is empty", name);
    }
    if (member(&root, "modules_to_save", &v)) {
        if (v.type != JSON_ARRAY) {
            buf_free(&s);
            return kerr_set(err, "%s: modules_to_save must be a list of module names", name);
        }
        json_iter_init(&it, &v);
        while (json_iter_next(&it)) {
            buf_reset(&s);
            json_str(&it.val, &s);
            int k = it.val.type == JSON_STRING ? module_lookup(s.p, s.len) : -1;
            if (k < 0 || s.len == 5) { // "embed" is kiln's short name, not a module
                kerr_set(err, "%s: module to save '%s' is not supported (kiln trains "
                         "embed_tokens, lm_head)", name, s.p ? s.p : "");
                buf_free(&s);
                return -1;
            }
            c->modules |= 1u << k;
        }
    }
    buf_reset(&s);
    if (member(&root, "base_model_name_or_path", &v) && v.type == JSON_STRING) {
        json_str(&v, &s);
        snprintf(c->base_model, sizeof c->base_model, "%s", s.p ? s.p : "");
    }
    buf_free(&s);
    return 0;
}

int
lora_load(const char *dir, struct lora *lo, const struct model *m, struct kerr *err)
{
    struct buf path = {0}, text = {0};
    struct lora_config c;
    buf_printf(&path, "%s/adapter_config.json", dir);
    int rc = read_file(path.p, 1 << 20, &text, err);
    if (rc == 0)
        rc = lora_config_parse(&c, text.p, text.len, path.p, err);
    buf_free(&text);
    if (rc < 0) {
        buf_free(&path);
        return -1;
    }
    if (lora_init(lo, m, &c, 0, err) < 0) {
        buf_free(&path);
        return -1;
    }
    buf_reset(&path);
    buf_printf(&path, "%s/adapter_model.safetensors", dir);
    struct st_file f;
    if (st_open(&f, path.p, err) < 0)
        goto fail;
    const struct model *v = &lo->view;
    for (int i = 0; i < v->n_tensors; i++) {
        const struct model_tensor *mt = &v->tensors[i];
        const struct st_tensor *st = st_find(&f, mt->name);
        if (!st) {
            const char *mod = "", *kind = "target module";
            for (int t = 0; t < LORA_N_TARGETS; t++)
                if (strstr(mt->name, target_hf[t]))
                    mod = target_hf[t];
            for (int k = 0; k < LORA_N_MODULES; k++)
                if (i == lo->mod_index[k])
                    mod = module_hf[k], kind = "module to save";
            kerr_set(err, "%s: missing tensor '%s' for %s %s of adapter_config.json", path.p,
                     mt->name, kind, mod);
            goto fail_st;
        }
        if (st->ndim != mt->ndim || st->shape[0] != mt->shape[0] ||
            (mt->ndim == 2 && st->shape[1] != mt->shape[1])) {
            char have[64];
            if (st->ndim == 2)
                snprintf(have, sizeof have, "[%lld, %lld]", (long long)st->shape[0],
                         (long long)st->shape[1]);
            else
                snprintf(have, sizeof have, "%d dimensions", st->ndim);
            kerr_set(err, "%s: tensor '%s' has shape %s, the base model needs [%lld, %lld] "
                     "(an adapter for a different base model?)", path.p, mt->name, have,
                     (long long)mt->shape[0], (long long)mt->shape[1]);
            goto fail_st;
        }
        if (st_read_f32(&f, st, lo->view.params + mt->offset, err) < 0) {
            kerr_prefix(err, "%s", path.p);
            goto fail_st;
        }
    }
    for (size_t i = 0; i < f.n; i++) {
        bool known = false;
        for (int j = 0; j < v->n_tensors && !known; j++)
            known = strcmp(f.tensors[i].name, v->tensors[j].name) == 0;
        if (!known) {
            kerr_set(err, "%s: unexpected tensor '%s' (not a target of adapter_config.json, "
                     "or an adapter for a different base model)", path.p, f.tensors[i].name);
            goto fail_st;
        }
    }
    st_close(&f);
    buf_free(&path);
    return 0;
fail_st:
    st_close(&f);
fail:
    buf_free(&path);
    lora_free(lo);
    return -1;
}

// SPDX-License-Identifier: MIT
// qlora: NF4 storage with double quantization (or Q8_0 / Q4_0 blocks) for a model's frozen
// layer linears and the on-the-fly dequantizing linear forward/backward (see qlora.h).
#include "qlora.h"

#include "quant.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// Floats of W dequantized at a time inside a linear (a fixed number of rows per chunk, so
// results do not depend on the thread count).
#define QLORA_CHUNK 65536

// ---- the dynamic 8-bit map (second level) --------------------------------------------------

static float dyn_map[256];
static pthread_once_t dyn_once = PTHREAD_ONCE_INIT;

static int
cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for
// decade i = 0..6, the midpoints of linspace(0.1, 1, 2^i + 1) times 10^(i-6), with both
// signs; then 0 and 1. 2·127 + 2 = 256 values.
static void
dyn_map_build(void)
{
    int n = 0;
    for (int i = 0; i < 7; i++) {
        int items = (1 << i) + 1;
        double decade = pow(10.0, i - 6);
        for (int j = 0; j + 1 < items; j++) {
            double lo = 0.1 + 0.9 * j / (items - 1), hi = 0.1 + 0.9 * (j + 1) / (items - 1);
            float v = (float)(decade * (lo + hi) / 2);
            dyn_map[n++] = v;
            dyn_map[n++] = -v;
        }
    }
    dyn_map[n++] = 0.0f;
    dyn_map[n++] = 1.0f;
    qsort(dyn_map, 256, sizeof(float), cmp_float);
}

const float *
qlora_dynamic_map(void)
{
    pthread_once(&dyn_once, dyn_map_build);
    return dyn_map;
}

// Index of the code nearest to v (ties to the lower code).
static uint8_t
dyn_nearest(const float *map, float v)
{
    int lo = 0, hi = 255; // map[lo] <= v <= map[hi] after clamping
    if (v <= map[0])
        return 0;
    if (v >= map[255])
        return 255;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (map[mid] <= v)
            lo = mid;
        else
            hi = mid;
    }
    return (uint8_t)(v - map[lo] <= map[hi] - v ? lo : hi);
}

// ---- one tensor ----------------------------------------------------------------------------

// Q8_0 / Q4_0: the flattened weight in quant.h blocks of 32 values (the last one padded).
static void
ggml_quantize(struct qlora_tensor *t, const float *w)
{
    int bv = quant_block_values(t->type);
    size_t bb = quant_block_bytes(t->type);
    t->n_blocks = (t->numel + bv - 1) / bv;
    t->qs = xmalloc((size_t)t->n_blocks * bb);
    int64_t full = t->numel / bv;
    if (full > 0)
        quant_row_quantize(t->type, w, t->qs, full * bv);
    if (full < t->n_blocks) {
        float pad[64] = {0};
        memcpy(pad, w + full * bv, sizeof(float) * (size_t)(t->numel - full * bv));
        quant_row_quantize(t->type, pad, t->qs + (size_t)full * bb, bv);
    }
}

void
qlora_tensor_quantize(struct qlora_tensor *t, int type, const float *w, int64_t out, int64_t in)
{
    const float *map = qlora_dynamic_map();
    memset(t, 0, sizeof *t);
    t->type = type ? type : QTYPE_NF4;
    t->out = out;
    t->in = in;
    t->numel = out * in;
    if (t->type != QTYPE_NF4) {
        ggml_quantize(t, w);
        return;
    }
    t->n_blocks = (t->numel + QLORA_BLOCK - 1) / QLORA_BLOCK;
    int64_t nb = t->n_blocks, ng = (nb + QLORA_DQ_GROUP - 1) / QLORA_DQ_GROUP;
    size_t bb = quant_block_bytes(QTYPE_NF4); // f32 absmax | u8 qs[32]
    t->qs = xmalloc((size_t)nb * 32);
    t->qabs = xmalloc((size_t)nb);
    t->scale = xmalloc(sizeof(float) * (size_t)ng);
    float *absmax = xmalloc(sizeof(float) * (size_t)nb);
    unsigned char blk[64];
    float pad[QLORA_BLOCK];
    for (int64_t b = 0; b < nb; b++) {
        const float *src = w + b * QLORA_BLOCK;
        int64_t have = t->numel - b * QLORA_BLOCK;
        if (have < QLORA_BLOCK) { // the last block of a shape that is not a multiple of 64
            memset(pad, 0, sizeof pad);
            memcpy(pad, src, sizeof(float) * (size_t)have);
            src = pad;
        }
        quant_row_quantize(QTYPE_NF4, src, blk, QLORA_BLOCK);
        memcpy(&absmax[b], blk, sizeof(float));
        memcpy(t->qs + b * 32, blk + sizeof(float), bb - sizeof(float));
    }
    double sum = 0;
    for (int64_t b = 0; b < nb; b++)
        sum += absmax[b];
    t->mean = (float)(sum / (double)nb);
    for (int64_t g = 0; g < ng; g++) {
        int64_t b0 = g * QLORA_DQ_GROUP, b1 = b0 + QLORA_DQ_GROUP < nb ? b0 + QLORA_DQ_GROUP : nb;
        float s = 0;
        for (int64_t b = b0; b < b1; b++)
            s = fmaxf(s, fabsf(absmax[b] - t->mean));
        t->scale[g] = s;
        for (int64_t b = b0; b < b1; b++)
            t->qabs[b] = dyn_nearest(map, s > 0 ? (absmax[b] - t->mean) / s : 0.0f);
    }
    free(absmax);
}

void
qlora_tensor_free(struct qlora_tensor *t)
{
    free(t->qs);
    free(t->qabs);
    free(t->scale);
    memset(t, 0, sizeof *t);
}

size_t
qlora_tensor_bytes(const struct qlora_tensor *t)
{
    if (t->type != QTYPE_NF4)
        return (size_t)t->n_blocks * quant_block_bytes(t->type);
    int64_t ng = (t->n_blocks + QLORA_DQ_GROUP - 1) / QLORA_DQ_GROUP;
    return (size_t)t->n_blocks * 33 + sizeof(float) * ((size_t)ng + 1);
}

void
qlora_tensor_dequantize(const struct qlora_tensor *t, int64_t start, int64_t count, float *y)
{
    const float *map = qlora_dynamic_map();
    int64_t end = start + count;
    if (t->type != QTYPE_NF4) {
        int bv = quant_block_values(t->type);
        size_t bb = quant_block_bytes(t->type);
        for (int64_t b = start / bv; b * bv < end; b++) {
            float v[64];
            quant_row_dequantize(t->type, t->qs + (size_t)b * bb, v, bv);
            int64_t i0 = b * bv < start ? start - b * bv : 0;
            int64_t i1 = end - b * bv < bv ? end - b * bv : bv;
            memcpy(y + (b * bv + i0 - start), v + i0, sizeof(float) * (size_t)(i1 - i0));
        }
        return;
    }
    for (int64_t b = start / QLORA_BLOCK; b * QLORA_BLOCK < end; b++) {
        float a = map[t->qabs[b]] * t->scale[b / QLORA_DQ_GROUP] + t->mean;
        float v[QLORA_BLOCK];
        const uint8_t *qs = t->qs + b * 32;
        for (int j = 0; j < 32; j++) {
            v[2 * j] = a * quant_nf4_codes[qs[j] >> 4];
            v[2 * j + 1] = a * quant_nf4_codes[qs[j] & 15];
        }
        int64_t i0 = b * QLORA_BLOCK < start ? start - b * QLORA_BLOCK : 0;
        int64_t i1 = end - b * QLORA_BLOCK < QLORA_BLOCK ? end - b * QLORA_BLOCK : QLORA_BLOCK;
        memcpy(y + (b * QLORA_BLOCK + i0 - start), v + i0, sizeof(float) * (size_t)(i1 - i0));
    }
}

// ---- the model's base ops ------------------------------------------------------------------

static int
linear_tensor(const struct model *m, int layer, int k)
{
    return model_layer_tensor(m, layer, k < 4 ? k + 1 : k + 2);
}

// The tensors (k of 0..6) a linear hook position covers, and its output width.
static int
group(enum model_linear which, int *k0)
{
    switch (which) {
    case MODEL_LIN_QKV:
        *k0 = 0;
        return 3;
    case MODEL_LIN_O:
        *k0 = 3;
        return 1;
    case MODEL_LIN_GU:
        *k0 = 4;
        return 2;
    default:
        *k0 = 6;
        return 1;
    }
}

static void
base_fwd(void *ctx, struct kpool *p, int layer, enum model_linear which, const float *x, float *y,
         int n, bool acc)
{
    struct qlora *q = ctx;
    int k0, nk = group(which, &k0);
    int64_t ldy = 0;
    for (int k = k0; k < k0 + nk; k++)
        ldy += q->w[layer * QLORA_N_LINEAR + k].out;
    int64_t col = 0;
    for (int k = k0; k < k0 + nk; k++) {
        const struct qlora_tensor *t = &q->w[layer * QLORA_N_LINEAR + k];
        int64_t rows = QLORA_CHUNK / t->in > 0 ? QLORA_CHUNK / t->in : 1;
        for (int64_t r0 = 0; r0 < t->out; r0 += rows) {
            int64_t nr = t->out - r0 < rows ? t->out - r0 : rows;
            qlora_tensor_dequantize(t, r0 * t->in, nr * t->in, q->chunk);
            // y[:, col+r0 .. +nr] (+)= x W[r0..r0+nr]^T
            kern_gemm(p, false, true, n, (int)nr, (int)t->in, 1.0f, x, (int)t->in, q->chunk,
                      (int)t->in, acc ? 1.0f : 0.0f, y + col + r0, (int)ldy);
        }
        col += t->out;
    }
}

static void
base_bwd_x(void *ctx, struct kpool *p, int layer, enum model_linear which, const float *dy,
           float *dx, int n)
{
    struct qlora *q = ctx;
    int k0, nk = group(which, &k0);
    int64_t ldy = 0;
    for (int k = k0; k < k0 + nk; k++)
        ldy += q->w[layer * QLORA_N_LINEAR + k].out;
    int64_t col = 0;
    bool first = true;
    for (int k = k0; k < k0 + nk; k++) {
        const struct qlora_tensor *t = &q->w[layer * QLORA_N_LINEAR + k];
        int64_t rows = QLORA_CHUNK / t->in > 0 ? QLORA_CHUNK / t->in : 1;
        for (int64_t r0 = 0; r0 < t->out; r0 += rows) {
            int64_t nr = t->out - r0 < rows ? t->out - r0 : rows;
            qlora_tensor_dequantize(t, r0 * t->in, nr * t->in, q->chunk);
            // dx[n,in] (+)= dy[:, col+r0 .. +nr] W[r0..r0+nr]
            kern_gemm(p, false, false, n, (int)t->in, (int)nr, 1.0f, dy + col + r0, (int)ldy,
                      q->chunk, (int)t->in, first ? 0.0f : 1.0f, dx, (int)t->in);
            first = false;
        }
        col += t->out;
    }
}

// ---- attach / detach -----------------------------------------------------------------------

static bool
is_linear(const struct model *m, int ti)
{
    int L = m->cfg.n_layers;
    if (ti < 1 || ti > 9 * L)
        return false;
    int k = (ti - 1) % 9; // ln1 q k v o ln2 gate up down
    return k != 0 && k != 5;
}

static void
alloc_tables(struct qlora *q, const struct model *m)
{
    if (q->w)
        return;
    q->n_layers = m->cfg.n_layers;
    q->w = xcalloc((size_t)q->n_layers * QLORA_N_LINEAR, sizeof *q->w);
    q->taken = xcalloc((size_t)q->n_layers * QLORA_N_LINEAR, sizeof *q->taken);
}

bool
qlora_divert(void *ctx, const struct model *m, int i, const float *data)
{
    if (!is_linear(m, i))
        return false;
    if (data) {
        struct qlora *q = ctx;
        alloc_tables(q, m);
        int l = (i - 1) / 9, k = (i - 1) % 9; // ln1 q k v o ln2 gate up down
        int j = l * QLORA_N_LINEAR + (k < 5 ? k - 1 : k - 2);
        qlora_tensor_quantize(&q->w[j], q->type, data, m->tensors[i].shape[0],
                              m->tensors[i].shape[1]);
        q->taken[j] = true;
    }
    return true;
}

void
qlora_attach(struct qlora *q, struct model *m)
{
    alloc_tables(q, m);
    int L = m->cfg.n_layers;
    q->n_params = m->n_params;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < QLORA_N_LINEAR; k++) {
            int ti = linear_tensor(m, l, k);
            const struct model_tensor *t = &m->tensors[ti];
            if (!q->taken[l * QLORA_N_LINEAR + k])
                qlora_tensor_quantize(&q->w[l * QLORA_N_LINEAR + k], q->type,
                                      m->params + t->offset, t->shape[0], t->shape[1]);
            m->frozen[ti] = true;
        }
    q->offset = xmalloc(sizeof(size_t) * (size_t)m->n_tensors);
    for (int i = 0; i < m->n_tensors; i++) {
        q->offset[i] = m->tensors[i].offset;
        if (!is_linear(m, i))
            q->slab += m->tensors[i].numel;
    }
    float *slab = xmalloc(sizeof(float) * q->slab);
    size_t off = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        struct model_tensor *t = &m->tensors[i];
        if (is_linear(m, i)) {
            t->offset = 0; // no data while attached
            continue;
        }
        memcpy(slab + off, m->params + t->offset, sizeof(float) * t->numel);
        t->offset = off;
        off += t->numel;
    }
    free(m->params);
    m->params = slab;
    q->chunk = xmalloc(sizeof(float) * QLORA_CHUNK);
    q->ops = (struct model_base_ops){base_fwd, base_bwd_x, q};
    m->base = &q->ops;
}

void
qlora_detach(struct qlora *q, struct model *m)
{
    float *slab = xcalloc(q->n_params, sizeof(float));
    for (int i = 0; i < m->n_tensors; i++) {
        struct model_tensor *t = &m->tensors[i];
        if (!is_linear(m, i))
            memcpy(slab + q->offset[i], m->params + t->offset, sizeof(float) * t->numel);
        t->offset = q->offset[i];
    }
    for (int l = 0; l < q->n_layers; l++)
        for (int k = 0; k < QLORA_N_LINEAR; k++) {
            const struct qlora_tensor *w = &q->w[l * QLORA_N_LINEAR + k];
            qlora_tensor_dequantize(w, 0, w->numel,
                                    slab + m->tensors[linear_tensor(m, l, k)].offset);
        }
    free(m->params);
    m->params = slab;
    m->base = NULL;
}

void
qlora_free(struct qlora *q)
{
    for (int i = 0; q->w && i < q->n_layers * QLORA_N_LINEAR; i++)
        qlora_tensor_free(&q->w[i]);
    free(q->w);
    free(q->taken);
    free(q->offset);
    free(q->chunk);
    memset(q, 0, sizeof *q);
}

size_t
qlora_bytes(const struct qlora *q)
{
    size_t n = 0;
    for (int i = 0; i < q->n_layers * QLORA_N_LINEAR; i++)
        n += qlora_tensor_bytes(&q->w[i]);
    return n;
}

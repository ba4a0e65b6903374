// SPDX-License-Identifier: MIT
// model: a Llama-style decoder-only transformer on the CPU — configuration and presets, the
// parameter slab with Hugging Face tensor names, forward and backward over a batch, log-probs
// for evaluation, an incremental (KV-cache) forward for generation, AdamW, learning-rate
// schedules and gradient clipping. It knows nothing of JSON, files or SQLite: formats
// (safetensors.h, checkpoint.h) turn files into a config and tensors.
//
// Architecture: x = embed[tok]; per layer x += o(attn(rope(q), rope(k), v)) over
// rmsnorm(x), x += down(silu(gate(h)) * up(h)) over rmsnorm(x); logits = lm_head(rmsnorm(x)).
// No biases; GQA when n_kv_heads < n_heads; lm_head shares the embedding when tied. RoPE uses
// the HF rotate-half convention. Everything is float32.
//
// How to use it (evaluate, quantize-export, PEFT):
//
//   struct model m;  ckpt_load(dir, &m, NULL, err)   // a HF directory (checkpoint.h), or
//   model_config_preset(&cfg, "small") / ckpt_config_parse(...), then
//   model_init(&m, &cfg, err);              // slab allocated, zeroed; then either
//   model_init_random(&m, seed);            // HF-style init, or fill tensors:
//   for (i < m.n_tensors) m.tensors[i] -> {name, shape, offset}; data = m.params + offset
//   struct kpool *pool = kpool_new(threads);
//   struct model_acts a; model_acts_init(&a, &m, B, T, training, kpool_threads(pool));
//   model_forward(&m, &a, pool, tokens, B, T); // tokens [B*T] → a.logits [B*T, V]
//   model_logprobs(&m, &a, pool, targets, lp); // log p(targets[r] | prefix) per row
//   // (sequences shorter than T: call with a smaller t, or pad and set targets to -1)
//   // training: model_grads_alloc(&m) once; then per micro-batch
//   loss_sum = model_forward_backward(&m, &a, pool, tokens, targets, B, T, 1.0f / n_scored, NULL);
//   // or any loss on the logits: model_forward, write dL/dlogits into a.logits, model_backward
//   // generation: struct model_kv kv; model_kv_init(&kv, &m, max_t);
//   model_kv_forward(&m, &kv, pool, prompt, n, logits_V); ... one token at a time after.
//   // saving: ckpt_save(dir, &m, ST_F32 | ST_F16 | ST_BF16, err) (checkpoint.h)
//
// Tensor layout in the slab (the order of m.tensors): embed, then per layer
// input_layernorm, q, k, v, o, post_attention_layernorm, gate, up, down, then norm, lm_head.
// q,k,v are adjacent so they form one [(nh+2nkv)hd, dim] matrix (one sgemm); gate and up form
// one [2ffn, dim] matrix. Weights are [out,in] as in HF.
//
// Extension points for adapters (LoRA, HFT): m.frozen[i] skips tensor i's weight gradient
// (its input gradient still flows); hooks add a side path to each linear layer; base ops
// replace the layer weights' own product (weights stored elsewhere, e.g. quantized).
//
// Ownership: model_init allocates, model_free releases; acts and kv likewise. Thread safety:
// one call at a time per model; the pool parallelizes inside. Results are bit-identical for
// any thread count (see kernels.h).
#ifndef KILN_MODEL_H
#define KILN_MODEL_H

#include "kernels.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Longest context the model runs (RoPE table size); training uses up to 2,048.
#define MODEL_MAX_CONTEXT 8192
#define MODEL_NAME_MAX 80

struct model_config {
    int vocab;        // vocab_size
    int dim;          // hidden_size
    int n_layers;     // num_hidden_layers
    int n_heads;      // num_attention_heads
    int n_kv_heads;   // num_key_value_heads (= n_heads without GQA)
    int ffn;          // intermediate_size
    int max_seq;      // max_position_embeddings
    double norm_eps;  // rms_norm_eps (the kernels use it as float, like torch)
    double rope_theta; // rope_theta
    bool tie_embeddings;
    int bos_id, eos_id; // -1 when unknown
};

// Presets (every width a multiple of 32; head dim 64 except tiny's 32):
//   tiny  dim 128, 4 layers, 4 heads,  ffn 352,  max_seq 256
//   small dim 256, 6 layers, 8 heads (4 kv), ffn 704,  max_seq 512
//   base  dim 512, 8 layers, 8 heads,  ffn 1376, max_seq 1024
// vocab is left as given (the tokenizer decides it). Returns 0, or -1 for an unknown name.
int model_config_preset(struct model_config *c, const char *name);
// Checks sizes (positive, heads divide dim, kv heads divide heads, even head dim, ...).
// 0 or -1 with err ("num_attention_heads 5 does not divide hidden_size 128").
int model_config_check(const struct model_config *c, struct kerr *err);
// Parameter count of a config (what model_init allocates).
size_t model_config_params(const struct model_config *c);

struct model_tensor {
    char name[MODEL_NAME_MAX]; // HF name, e.g. "model.layers.0.self_attn.q_proj.weight"
    int ndim;                  // 1 or 2
    int64_t shape[2];          // [out,in] for weights, [dim] for norms
    size_t offset, numel;      // position in the slab (floats)
    bool decay;                // AdamW weight decay applies (2-D weights, not norms)
};

// Which linear layer a hook sees.
enum model_linear {
    MODEL_LIN_QKV,  // y [n, (nh+2nkv)hd]: columns q | k | v (before RoPE)
    MODEL_LIN_O,    // y [n, dim]
    MODEL_LIN_GU,   // y [n, 2ffn]: columns gate | up
    MODEL_LIN_DOWN, // y [n, dim]
};

// Side paths added to linear layers (e.g. LoRA). fwd adds to y[n,out] given x[n,in];
// bwd adds to dx[n,in] given dy[n,out] and x (accumulating its own parameters' gradients);
// dx is NULL when nothing needs the input gradient (layer 0's q,k,v with the embedding and
// input_layernorm frozen).
// Called only for layers where the hook is set; ctx is passed through.
struct model_hooks {
    void (*fwd)(void *ctx, int layer, enum model_linear which, const float *x, float *y, int n);
    void (*bwd)(void *ctx, int layer, enum model_linear which, const float *x, const float *dy,
                float *dx, int n);
    void *ctx;
};

// A replacement for the base product of each layer's linear maps, for weights held outside
// the slab (QLoRA: NF4 blocks dequantized on the fly, qlora.h). fwd: y[n,out] = x[n,in] W^T
// (+ y when acc); bwd_x: dx[n,in] = dy[n,out] W (overwrite). When set, the slab's q k v o
// gate up down weights are never read (they must be frozen: no weight gradient either).
struct model_base_ops {
    void (*fwd)(void *ctx, struct kpool *p, int layer, enum model_linear which, const float *x,
                float *y, int n, bool acc);
    void (*bwd_x)(void *ctx, struct kpool *p, int layer, enum model_linear which,
                  const float *dy, float *dx, int n);
    void *ctx;
};

struct model {
    struct model_config cfg;
    int hd;                 // head dim
    int n_tensors;
    struct model_tensor *tensors;
    bool *frozen;           // [n_tensors], all false after init
    size_t n_params;
    float *params;          // [n_params]
    float *grads;           // [n_params] after model_grads_alloc, else NULL
    int max_t;              // min(max_seq, MODEL_MAX_CONTEXT): longest sequence run
    float *rope_cos, *rope_sin; // [max_t, hd/2]
    const struct model_hooks *hooks; // NULL = none
    const struct model_base_ops *base; // NULL = the slab's layer weights
    // Weight gradients kept outside m->grads (LoRA's modules_to_save train in the adapter's
    // slab): NULL, or [n_tensors] destinations, NULL entries = m->grads + offset. Backward only.
    float *const *grad_to;
};

// Allocates the slab (zeroed) and tensor table for a checked config. 0 or -1 with err.
int model_init(struct model *m, const struct model_config *c, struct kerr *err);
void model_free(struct model *m);
// HF Llama init: weights N(0, 0.02) from a seeded generator, norms 1. Deterministic.
void model_init_random(struct model *m, uint64_t seed);
// Allocates (zeroed) m->grads if needed.
void model_grads_alloc(struct model *m);
void model_grads_zero(struct model *m);
// Tensor by HF name, NULL if absent.
const struct model_tensor *model_tensor_find(const struct model *m, const char *name);
// Index of layer tensors: model_layer_tensor(m, l, k) with k in 0..8 (ln1 q k v o ln2 gate up
// down); embed is tensor 0, norm is 1 + 9 L, lm_head (untied) 2 + 9 L.
int model_layer_tensor(const struct model *m, int layer, int k);

// Activations for batches of up to b sequences of t positions (b*t rows). training keeps
// what backward needs and allocates the gradient buffers.
struct model_acts {
    int b, t, n_threads; // capacity: b sequences of t positions
    bool training;
    int n, cur_t;   // the current batch: n = b' * cur_t rows
    int *tokens;    // [b*t] copy of the current inputs
    int *sel;       // [2*b*t] model_forward_logprobs: scored rows, then their targets
    float *x;       // [L+1, n, dim] residual stream entering each layer, then the final one
                    // (forward only: [n, dim], updated in place)
    float *xmid;    // [L, n, dim] residual after attention (training only)
    float *xn1, *xn2; // [L, n, dim] normed inputs of attention and MLP
    float *rstd1, *rstd2; // [L, n]
    float *qkv;     // [L, n, (nh+2nkv)hd] (q, k rotated)
    float *att;     // [L, b, nh, t, t] attention probabilities (forward only: scratch)
    float *ao;      // [L, n, nh*hd] attention output before o_proj
    float *gu;      // [L, n, 2ffn]
    float *h;       // [L, n, ffn] silu(gate)*up
    float *xnf;     // [n, dim] final normed
    float *rstdf;   // [n]
    float *logits;  // [n, vocab] (after a backward call: dL/dlogits)
    float *loss;    // [n] per-row loss or log-prob
    // backward scratch
    float *dx, *dxn, *dqkv, *dao, *dgu, *dh, *dattn; // dattn: [threads, t, t]
};
// 0 or -1 with err (b*t too large, t > max_seq).
int model_acts_init(struct model_acts *a, const struct model *m, int b, int t, bool training,
                    int n_threads, struct kerr *err);
void model_acts_free(struct model_acts *a);
// Bytes model_acts_init would allocate (for the memory breakdown).
size_t model_acts_bytes(const struct model_config *c, int b, int t, bool training,
                        int n_threads);

// Forward over b sequences of t tokens (row r = sequence r / t, position r % t), with
// t ≤ a->t and b*t ≤ a->b * a->t (short batches reuse the buffers). Every id must be in
// [0, vocab) (checked by the caller). Leaves logits in a->logits. Forward-only activations
// (training false) give the training forward's values to float rounding, not its bits.
void model_forward(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens,
                   int b, int t);
// After model_forward: lp[r] = log p(targets[r] | tokens[..r]) (0 where targets[r] < 0).
void model_logprobs(struct model *m, struct model_acts *a, struct kpool *p, const int *targets,
                    float *lp);
// Forward-only scoring: lp[r] = log p(targets[r] | tokens[..r]) for rows with targets[r] ≥ 0,
// 0 elsewhere — model_forward then model_logprobs, except that the output projection runs only
// for the scored rows, a block of rows at a time whose logits are reduced while in cache
// (a->logits is scratch afterwards). Same values as model_forward + model_logprobs.
void model_forward_logprobs(struct model *m, struct model_acts *a, struct kpool *p,
                            const int *tokens, const int *targets, int b, int t, float *lp);
// Backward from a->logits holding dL/dlogits (overwrites the activations' gradient buffers);
// adds parameter gradients into m->grads (except frozen tensors). Needs training acts.
void model_backward(struct model *m, struct model_acts *a, struct kpool *p);
// Forward, cross-entropy on targets (< 0 = not scored) and backward with gradient scale
// grad_scale (pass 1/number of scored tokens in the optimizer step). Returns the sum of the
// per-token losses (double, in row order); *n_scored gets the scored count.
double model_forward_backward(struct model *m, struct model_acts *a, struct kpool *p,
                              const int *tokens, const int *targets, int b, int t,
                              float grad_scale, int *n_scored);

// ---- incremental forward (generation) ------------------------------------------------------

struct model_kv {
    int max_t, len;     // capacity and positions filled
    float *k, *v;       // [L, max_t, nkv*hd]
    float *x, *xn, *qkv, *ao, *gu, *h, *att, *rstd; // scratch for a chunk of rows
    float *logits; // [chunk, vocab] scratch of model_kv_forward_logprobs
};
int model_kv_init(struct model_kv *kv, const struct model *m, int max_t, struct kerr *err);
void model_kv_free(struct model_kv *kv);
void model_kv_reset(struct model_kv *kv); // len = 0
void model_kv_rewind(struct model_kv *kv, int len); // len = min(len, kv->len): drop the rest
// Appends n tokens at positions len..len+n-1 (len + n ≤ max_t) and writes the logits of the
// last one into logits[vocab]. Matches model_forward on the same prefix (to float rounding).
void model_kv_forward(struct model *m, struct model_kv *kv, struct kpool *p, const int *tokens,
                      int n, float *logits);

// Appends n tokens as model_kv_forward does; instead of the last one's logits, lp[i] =
// log p(targets[i] | the cached tokens and tokens[..i]) for targets[i] ≥ 0 (0 elsewhere), the
// output projection run only for those rows. targets NULL: the cache only (lp unused).
// Positions already cached are never rewritten, so a shared prefix runs once: append it, then
// for each continuation model_kv_rewind to its length and append the continuation.
void model_kv_forward_logprobs(struct model *m, struct model_kv *kv, struct kpool *p,
                               const int *tokens, const int *targets, int n, float *lp);

// ---- optimizer ---------------------------------------------------------------------------

struct adamw {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t step;  // updates done
    float *m, *v;  // [n_params]
};
void adamw_init(struct adamw *o, const struct model *m, float beta1, float beta2, float eps,
                float weight_decay);
void adamw_free(struct adamw *o);
// One update with learning rate lr from m->grads (torch.optim.AdamW semantics: decoupled
// decay p *= 1 - lr wd on 2-D tensors only; bias-corrected moments). Frozen tensors are
// left untouched.
void adamw_update(struct adamw *o, struct model *m, struct kpool *p, float lr);

// Global L2 norm of the gradients (non-frozen tensors), deterministic.
double model_grad_norm(struct model *m, struct kpool *p);
// torch clip_grad_norm_: scales gradients by max_norm / (norm + 1e-6) when that is < 1.
// Returns the norm before clipping.
double model_grad_clip(struct model *m, struct kpool *p, double max_norm);

enum lr_sched { LR_COSINE, LR_LINEAR, LR_CONSTANT };
// Learning rate for update number step (1-based) of total: linear warmup over warmup updates
// (lr * step / warmup), then decay from lr to lr * min_ratio (cosine or linear) at total.
float lr_at(enum lr_sched s, float lr, int64_t step, int64_t warmup, int64_t total,
            float min_ratio);

// A small seeded generator (xoshiro256**), state saved by the trainer for exact resume.
struct model_rng {
    uint64_t s[4];
};
void model_rng_seed(struct model_rng *r, uint64_t seed);
uint64_t model_rng_next(struct model_rng *r);
double model_rng_uniform(struct model_rng *r); // [0,1)
double model_rng_normal(struct model_rng *r);  // N(0,1), Box-Muller (no cached value)

#endif

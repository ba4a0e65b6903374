// SPDX-License-Identifier: MIT
// lora: low-rank adapters (LoRA, Hu et al. 2021) on the linear layers of a model (model.h),
// with the semantics and file format of Hugging Face PEFT, so adapters move between kiln and
// PEFT both ways.
//
// For a target linear layer y = x W^T (W [out,in]) the adapter adds
//     y += scale · dropout(x) A^T B^T        A [r,in], B [out,r]
// with scale = alpha / r (or alpha / sqrt(r) with rslora). Initialisation as PEFT's
// init_lora_weights=True: A kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)),
// from a generator seeded with the given seed; B zero (so a fresh adapter changes nothing).
// Dropout (training only) zeroes each input element with probability p and scales the rest
// by 1/(1-p), with a mask drawn per (batch number, layer, target) from the seed so the
// backward pass regenerates it instead of storing it.
//
// Targets: q, k, v, o (self_attn.{q,k,v,o}_proj), gate, up, down (mlp.{gate,up,down}_proj).
// The model's QKV and GU hooks carry the concatenated outputs [q | k | v] and [gate | up];
// each target reads and writes its own column range.
//
// modules_to_save (PEFT): embed_tokens and/or lm_head train in full beside the adapters.
// The view holds their trained copy, named as PEFT saves it — PEFT keeps the module as
// "<path>.modules_to_save.default.weight" and get_peft_model_state_dict strips
// "modules_to_save." and ".default", so the file has "base_model.model.model.embed_tokens.weight"
// [vocab, dim] and "base_model.model.lm_head.weight" — and adapter_config.json lists
// "modules_to_save": ["embed_tokens", "lm_head"]. While attached the base model's tensor is
// unfrozen with its gradient going to the view (m->grad_to); lora_sync copies the updated
// values back into the base after each optimizer step; lora_merge copies them in.
//
// Parameters live in their own slab described by a second struct model (lo->view): its
// tensors are the adapter matrices named as in PEFT's adapter_model.safetensors, e.g.
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" [r,in] and
// "...q_proj.lora_B.weight" [out,r], in layer order, then q k v o gate up down, A before B.
// The view has params and grads only, so adamw_init/adamw_update/model_grad_clip work on it
// unchanged and the optimizer state covers the adapter alone.
//
// Use:
//   struct lora lo; lora_init(&lo, &m, &cfg, seed, err);   // or lora_load(dir, &lo, &m, err)
//   lora_attach(&lo, &m, pool);   // freezes every base tensor (but modules to save), hooks
//   model_grads_alloc(&lo.view); adamw_init(&opt, &lo.view, ...);
//   per micro-batch: lora_next_batch(&lo); model_forward_backward(&m, ...);
//   adamw_update(&opt, &lo.view, pool, lr); lora_sync(&lo); model_grads_zero(&lo.view);
//   lora_save(dir, &lo, err);  or  lora_merge(&lo, &m, pool) then ckpt_save (plain model).
//
// adapter_config.json is written with sorted keys as PEFT writes it (peft_type "LORA",
// task_type "CAUSAL_LM", r, lora_alpha, lora_dropout, use_rslora, target_modules with HF
// names, base_model_name_or_path, bias "none", fan_in_fan_out false, ...). Reading accepts
// any PEFT LoRA config whose features kiln implements and refuses the rest with a message
// (a regex string for target_modules, bias other than "none", fan_in_fan_out, DoRA,
// rank/alpha patterns, layers_to_transform, modules_to_save other than embed_tokens and
// lm_head).
#ifndef KILN_LORA_H
#define KILN_LORA_H

#include "model.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

enum lora_target { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS };

#define LORA_ALL_TARGETS ((1u << LORA_N_TARGETS) - 1)

// modules_to_save: whole tensors trained beside the adapters (PEFT semantics).
enum lora_module { LORA_MOD_EMBED, LORA_MOD_HEAD, LORA_N_MODULES };

struct lora_config {
    int r;
    double alpha;
    double dropout;       // [0, 1)
    bool rslora;          // scale = alpha / sqrt(r)
    unsigned targets;     // bit (1 << enum lora_target) per adapted layer kind
    unsigned modules;     // bit (1 << enum lora_module) per module to save (0 = none)
    char base_model[512]; // base_model_name_or_path ("" = null)
};

struct lora {
    struct lora_config cfg;
    float scale;
    int n_layers;
    int *index;        // [n_layers * LORA_N_TARGETS] tensor index of A in view (B follows), -1
    int mod_index[LORA_N_MODULES]; // view tensor of each module to save, -1
    float **grad_to;   // [base n_tensors] the base's m->grad_to while attached
    struct model view; // the adapter slab (tensors, params, grads; cfg copied from the base)
    // Run state for the hooks:
    struct model_hooks hooks;
    struct kpool *pool;
    bool training;     // dropout active (set by lora_attach; toggle for evaluation)
    uint64_t seed, batch; // dropout masks depend on both
    // Per (layer, linear) group of targets sharing an input (q,k,v; o; gate,up; down): the
    // A matrices of a group are adjacent in the slab, so without dropout one product gives
    // u = x [A_1; A_2; ...]^T [rows, k r] for the whole group. The forward keeps u for the
    // backward (valid while x and rows match the last forward of that group).
    struct lora_group {
        int first, k;   // first target (enum lora_target) and how many are adapted
        float *u;       // [rows, k r] from the last forward
        size_t cap;
        const float *x; // its input, NULL = none kept
        int rows;
    } *groups;          // [n_layers * 4] by enum model_linear
    float *u, *du, *xd; // scratch [rows, 7 r] (u, du), [rows, in]
    size_t u_cap, xd_cap;
    // Merged products (lora_attach on a model without base ops): from LORA_MERGE_ROWS rows
    // on and without dropout, each layer linear runs as one product with W' = W + scale B A
    // (forward y = x W'^T, backward dx = dy W'), rebuilt per call into wm; the hooks then add
    // only the adapter gradients. Bases held elsewhere (QLoRA replaces m->base) keep the
    // side path.
    struct model_base_ops base;
    struct model *m;       // the model attached to
    int merge_rows;        // LORA_MERGE_ROWS (tests lower it)
    float *wm;
    size_t wm_cap;
};

#define LORA_MERGE_ROWS 256

// HF module name of a target ("q_proj", "gate_proj", ...) and its short name ("q", "gate").
const char *lora_target_hf(enum lora_target t);
const char *lora_target_short(enum lora_target t);
// Parses "q,k,v,o,gate,up,down" (short or HF names, "all" for every one) into a bit mask.
// 0 or -1 with err ("unknown LoRA target 'lm_head' (expected q,k,v,o,gate,up,down)").
int lora_targets_parse(const char *list, unsigned *mask, struct kerr *err);

// Parses "embed_tokens,lm_head" (also "embed") into a bit mask; 0 or -1 with err.
int lora_modules_parse(const char *list, unsigned *mask, struct kerr *err);

// Fills in defaults: r 8, alpha 16, dropout 0, no rslora, targets q,v (PEFT's Llama default).
void lora_config_default(struct lora_config *c);
// 0 or -1 with err for r < 1, alpha ≤ 0, dropout outside [0,1), no targets.
int lora_config_check(const struct lora_config *c, struct kerr *err);

// Allocates and initialises adapters for model m (its config and shapes; modules to save
// start as m's tensors). 0 or -1 with err (lm_head of a model with tied embeddings).
int lora_init(struct lora *lo, const struct model *m, const struct lora_config *c,
              uint64_t seed, struct kerr *err);
void lora_free(struct lora *lo);
// Number of adapter parameters.
size_t lora_params(const struct lora *lo);

// Freezes every tensor of m, sets m->hooks to the adapter's (and m->base to the merged
// products when m has no base ops) and remembers pool for the hooks; training on (dropout
// applies). lora_detach removes them (frozen flags stay).
void lora_attach(struct lora *lo, struct model *m, struct kpool *pool);
void lora_detach(struct lora *lo, struct model *m);
// After an optimizer step on lo->view: the modules to save, updated, into the attached base.
void lora_sync(struct lora *lo);
// Advances the dropout mask to the next micro-batch (call before each forward in training).
void lora_next_batch(struct lora *lo);

// W += scale · B A for every adapted layer of m (m must be the model lo was made for); the
// modules to save replace m's tensors.
void lora_merge(const struct lora *lo, struct model *m, struct kpool *pool);

// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (F32) atomically. DIR must
// exist. 0 or -1 with err.
int lora_save(const char *dir, const struct lora *lo, struct kerr *err);
// Parses adapter_config.json text (name for messages) into c. 0 or -1 with err.
int lora_config_parse(struct lora_config *c, const char *text, size_t n, const char *name,
                      struct kerr *err);
// Reads DIR/adapter_config.json and DIR/adapter_model.safetensors for base model m. Every
// tensor the config implies must be present with the shape m implies and nothing else:
// "DIR/adapter_model.safetensors: tensor '...q_proj.lora_A.weight' has shape [8, 64], the
// base model needs [8, 128] (an adapter for a different base model?)". 0 or -1 with err.
int lora_load(const char *dir, struct lora *lo, const struct model *m, struct kerr *err);

#endif

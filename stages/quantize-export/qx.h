// SPDX-License-Identifier: MIT
// quantize-export internals shared by its subcommands: PEFT LoRA adapters (validation and
// merging into a model), the GGUF tokenizer metadata of a struct tok, atomic output
// directories, and the bundle/verify commands.
#ifndef KILN_QX_H
#define KILN_QX_H

#include "model.h"
#include "safetensors.h"
#include "tok.h"
#include "util.h"
#include "gguf.h"

#include <stdbool.h>

// One LoRA pair of a PEFT adapter: W[out,in] += scale · B[out,r] · A[r,in].
struct qx_lora_pair {
    char target[MODEL_NAME_MAX]; // HF weight name, "model.layers.0.self_attn.q_proj.weight"
    const struct st_tensor *a, *b;
    // modules_to_save ("base_model.model.lm_head.weight"): the whole tensor, which replaces
    // the base's (a, b NULL)
    const struct st_tensor *full;
};

// A loaded PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
struct qx_lora {
    char *dir;
    struct buf config;     // adapter_config.json bytes
    struct st_file st;     // adapter_model.safetensors (mapped)
    int r;                 // rank
    double alpha;          // lora_alpha
    double scale;          // alpha / r, or alpha / sqrt(r) with use_rslora
    struct qx_lora_pair *pairs;
    int n_pairs;
    bool modules_to_save; // the config lists modules_to_save (whole tensors in the file)
};

// Loads and validates DIR: peft_type LORA, r > 0, lora_alpha, no fan_in_fan_out, no biases,
// no rank/alpha patterns; every lora_A has its lora_B with shapes [r,in] / [out,r]. 0 or -1
// with err naming the file and tensor.
int qx_lora_load(struct qx_lora *l, const char *dir, struct kerr *err);
void qx_lora_free(struct qx_lora *l);
// Checks the adapter against a base model (every target exists with matching in/out widths);
// 0 or -1 with err ("adapter for another base: ...").
int qx_lora_check(const struct qx_lora *l, const struct model *m, struct kerr *err);
// Checks, then merges into m's weights. 0 or -1 with err.
int qx_lora_merge(const struct qx_lora *l, struct model *m, struct kerr *err);

// GGUF tokenizer metadata of t (strings owned here); bos/eos from the model config when set.
struct qx_gguf_tok {
    struct gguf_tokenizer_params p;
    char **tokens, **merges;
    int32_t *types;
};
// 0, or -1 with err (a custom pre-tokenizer regex llama.cpp has no name for).
int qx_gguf_tok_init(struct qx_gguf_tok *g, const struct tok *t, const struct model_config *c,
                     struct kerr *err);
void qx_gguf_tok_free(struct qx_gguf_tok *g);

// Atomic output directories, named like pipelines/step.c's temporaries: qx_dir_begin creates
// PARENT/.kiln-tmp-NAME for DIR = PARENT/NAME and returns its path (free()), first removing
// what a run killed with SIGKILL left (that temporary; PARENT/.kiln-old-NAME, the previous DIR
// moved aside by a -f replacement, which is put back if DIR is missing); qx_dir_commit renames
// it to DIR (replacing an existing DIR only when force); qx_dir_remove deletes a directory
// tree (best effort).
char *qx_dir_begin(const char *dir, bool force, struct kerr *err);
int qx_dir_commit(const char *tmp, const char *dir, bool force, struct kerr *err);
void qx_dir_remove(const char *path);
// Copies a file byte for byte (to path.tmp, renamed). 0 or -1 with err.
int qx_copy_file(const char *from, const char *to, struct kerr *err);

// Subcommands (argc/argv after the subcommand name; return the exit status).
int qx_bundle_main(int argc, char **argv);
int qx_verify_main(int argc, char **argv);

#endif

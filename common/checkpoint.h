// SPDX-License-Identifier: MIT
// checkpoint: Hugging Face style model directories — config.json (LlamaConfig) to and from
// struct model_config, and a model's weights to and from model.safetensors (single file or
// sharded with model.safetensors.index.json), plus generation_config.json.
//
// Loading checks that the file's tensors are exactly the ones the config implies: a missing
// tensor, an unexpected one or a shape mismatch is an error naming the tensor and both shapes.
// Ignored on purpose: "*.rotary_emb.inv_freq" buffers some exporters include, and
// "lm_head.weight" when the config ties embeddings. F32, F16 and BF16 are converted to float32.
//
// config.json fields read: vocab_size, hidden_size, intermediate_size, num_hidden_layers,
// num_attention_heads, num_key_value_heads (default: heads), max_position_embeddings
// (default 2048), rms_norm_eps (default 1e-6), rope_theta (default 10000),
// tie_word_embeddings (default false), bos_token_id, eos_token_id (first of a list). Refused:
// model_type other than "llama", hidden_act other than "silu", rope_scaling, attention or MLP
// biases, a head_dim that differs from hidden_size / num_attention_heads.
#ifndef KILN_CHECKPOINT_H
#define KILN_CHECKPOINT_H

#include "model.h"
#include "safetensors.h"
#include "util.h"

// Parses config.json text (name for messages). 0 or -1 with err ("config.json: ...").
int ckpt_config_parse(struct model_config *c, const char *text, size_t n, const char *name,
                      struct kerr *err);
// Appends config.json text for c (sorted keys, as transformers writes it, ending in "\n").
void ckpt_config_format(const struct model_config *c, struct buf *out);

// Reads DIR/config.json and the weights into m (model_init'ed here; model_free on success
// only). *dtype_out (may be NULL) gets the dtype of the first tensor. 0 or -1 with err.
int ckpt_load(const char *dir, struct model *m, enum st_dtype *dtype_out, struct kerr *err);
// ckpt_load for a caller that keeps some tensors elsewhere (QLoRA's NF4 base): divert(ctx, m,
// i, NULL) asks whether tensor i is diverted; if so divert(ctx, m, i, data) receives its
// values (f32 [numel], a temporary buffer) and m's slab pages for it are never written (so
// never resident). The file's pages of every tensor are released once it is read, so the
// load peak stays near the kept tensors plus one tensor. Same checks and errors.
int ckpt_load_divert(const char *dir, struct model *m, enum st_dtype *dtype_out,
                     bool (*divert)(void *ctx, const struct model *m, int i, const float *data),
                     void *ctx, struct kerr *err);
// Writes DIR/config.json, DIR/generation_config.json and DIR/model.safetensors (in dtype),
// each atomically. DIR must exist. 0 or -1 with err.
int ckpt_save(const char *dir, const struct model *m, enum st_dtype dtype, struct kerr *err);

// Writes bytes to path via path.tmp + rename. 0 or -1 with err.
int ckpt_write_file(const char *path, const void *p, size_t n, struct kerr *err);

#endif

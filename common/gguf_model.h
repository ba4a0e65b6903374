// SPDX-License-Identifier: MIT
// gguf_model: a Llama model (model.h: HF tensor names, [out,in] weights, rotate-half RoPE) to
// a llama.cpp GGUF file and back.
//
// Export: tensor names become llama.cpp's (token_embd, blk.N.attn_q, ..., output_norm,
// output — omitted when tied); weights keep their bytes ([out,in] row-major is ne {in,out});
// Q and K rows are permuted for llama.cpp's interleaved-pair RoPE (per head, row
// j*hd/2 + i moves to 2i + j); 1-D tensors stay F32; 2-D tensors get the requested type, or
// a wider one when their row length is not a multiple of its block (Q4_K, Q4_0, Q6_K -> Q8_0 ->
// F16), which the report records. The Q4_K_M mix is llama.cpp's (output, and attn_v and
// ffn_down in the layers its use_more_bits rule picks, at Q6_K) plus token_embd at Q6_K.
// Import reverses all of it and dequantizes into a model's f32 slab, so evaluate can score a
// GGUF with the same forward pass it uses for checkpoints.
#ifndef KILN_GGUF_MODEL_H
#define KILN_GGUF_MODEL_H

#include "gguf.h"
#include "model.h"

struct gguf_export_opts {
    int type;         // QTYPE_F32, F16, BF16, Q8_0, Q4_0 or Q4_K for 2-D weights
    bool mixed;       // with QTYPE_Q4_K: the Q4_K_M mix (see above); else ignored
    const char *name; // general.name, or NULL
};

// One line of the quantization report.
struct gguf_export_tensor {
    char name[GGUF_MAX_NAME + 1]; // GGUF name
    int type;                     // type written
    bool fallback;                // the requested type did not fit the row length
    int64_t ne[2];
    double rmse, max_err; // of the dequantized values against the f32 weights
};

struct gguf_export_report {
    int n;
    struct gguf_export_tensor *t; // n entries, in file order; free with _free()
    uint32_t file_type;           // general.file_type written
};
void gguf_export_report_free(struct gguf_export_report *r);

// Writes m (with the tokenizer metadata tok) to path atomically. rep may be NULL. Returns 0,
// or -1 with err (an unsupported type, tensor shapes that disagree with the config, I/O).
int gguf_model_write(const char *path, const struct model *m,
                     const struct gguf_tokenizer_params *tok, const struct gguf_export_opts *o,
                     struct gguf_export_report *rep, struct kerr *err);

// Reads a llama GGUF into m (model_init'ed here from the llama.* keys; free with
// model_free). Every tensor must be present with the configured shape and a type quant.h
// dequantizes. Returns 0, or -1 with err naming the key or tensor.
int gguf_model_read(const struct gguf_file *g, struct model *m, struct kerr *err);

// The GGUF name of model tensor i ("blk.3.attn_q.weight"), into out (GGUF_MAX_NAME + 1).
void gguf_model_tensor_name(const struct model *m, int i, char *out);

#endif

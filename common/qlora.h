// SPDX-License-Identifier: MIT
// qlora: the frozen base of QLoRA (Dettmers et al. 2023) — a model's seven linear weights per
// layer (q k v o gate up down) held in 4-bit NormalFloat with double quantization, and
// dequantized on the fly, block by block, inside the linear forward and backward (model.h base
// ops). LoRA adapters (lora.h) train on top as usual; compute is fp32.
//
// Storage of one weight W [out,in], flattened row-major into blocks of 64 values (the last one
// zero-padded, so any shape works):
//   first level   NF4 as quant.h (QTYPE_NF4, reused byte for byte): per block an fp32 absmax
//                 and 32 bytes of 4-bit codes, x = absmax · NF4[code]
//   second level  (double quantization, §3 of the paper) the fp32 absmax constants of the
//                 tensor minus their mean, quantized to 8 bits in groups of 256 blocks with
//                 the signed dynamic 8-bit map of bitsandbytes (create_dynamic_map: 7 decades,
//                 0 and 1; absmax of the group as its fp32 scale)
//   so absmax' = dyn[qabs[b]] · scale[b / 256] + mean, and x = absmax' · NF4[code].
// That is 4 + 8/64 + 32/(64·256) ≈ 4.127 bits per weight (the paper's 0.127 bits of
// constants). Embedding, norms and lm_head stay fp32.
// The base may instead be held in ggml's Q8_0 or Q4_0 blocks (quant.h, byte for byte: 32
// values per block with an fp16 scale; 8.5 and 4.5 bits per weight), the flattened weight cut
// into blocks of 32 (the last one zero-padded) — the 8-bit and 4-bit formats of
// ../shared/REFERENCE.md, for comparing with NF4 (struct qlora's type, set before loading).
//
// Use:
//   struct qlora q = {0};
//   ckpt_load_divert(dir, &m, NULL, qlora_divert, &q, err); // or ckpt_load: quantizing
//                              // while loading keeps the fp32 linears from being resident
//   lora_init(&lo, &m, ...); lora_attach(&lo, &m, pool);    // adapters; the base frozen
//   qlora_attach(&q, &m);   // quantizes what was not yet, shrinks m's slab, sets m.base
//   ... train the adapter (model_forward_backward etc. unchanged) ...
//   qlora_detach(&q, &m);  // m gets back a full slab with the dequantized weights
//   qlora_free(&q);
// While attached, m's q k v o gate up down tensor entries hold no data (offset 0: nothing may
// read them; model.c does not); everything else in m is as before. Deterministic and
// bit-identical for any thread count (fixed chunks, kern_gemm).
#ifndef KILN_QLORA_H
#define KILN_QLORA_H

#include "model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QLORA_BLOCK 64     // values per NF4 block
#define QLORA_DQ_GROUP 256 // blocks per second-level (double quantization) group

// One weight in NF4 with double-quantized absmax, or in Q8_0 / Q4_0 blocks.
struct qlora_tensor {
    int type; // QTYPE_NF4, QTYPE_Q8_0 or QTYPE_Q4_0
    int64_t out, in, numel, n_blocks;
    uint8_t *qs;   // NF4: [n_blocks * 32] codes, two per byte (high nibble first);
                   // Q8_0/Q4_0: [n_blocks] quant.h blocks of 32 values
    uint8_t *qabs; // NF4: [n_blocks] absmax − mean, 8-bit dynamic code
    float *scale;  // NF4: [ceil(n_blocks / 256)] second-level scales
    float mean;    // NF4: mean of the first-level absmax values
};

// Quantizes w [out*in] into t in type (QTYPE_NF4, QTYPE_Q8_0 or QTYPE_Q4_0; 0 = NF4).
// qlora_tensor_free releases it.
void qlora_tensor_quantize(struct qlora_tensor *t, int type, const float *w, int64_t out,
                           int64_t in);
void qlora_tensor_free(struct qlora_tensor *t);
// y[count] = values start..start+count-1 of the flattened weight.
void qlora_tensor_dequantize(const struct qlora_tensor *t, int64_t start, int64_t count, float *y);
// Bytes of the quantized storage.
size_t qlora_tensor_bytes(const struct qlora_tensor *t);

// The signed dynamic 8-bit code book of the second level (256 values, ascending, in [-1, 1]).
const float *qlora_dynamic_map(void);

// Layer linears: index k in 0..6 = q k v o gate up down (the model's layer tensor k+1, k+2
// for gate up down: model_layer_tensor(m, l, k < 4 ? k + 1 : k + 2)).
#define QLORA_N_LINEAR 7

struct qlora {
    int type;               // of the base: QTYPE_NF4 (0 also means NF4), QTYPE_Q8_0, QTYPE_Q4_0
    int n_layers;
    bool *taken;            // [n_layers * 7] quantized by qlora_divert during the load
    struct qlora_tensor *w; // [n_layers * 7]
    size_t *offset;         // [n_tensors] m's offsets before attach (to restore)
    size_t n_params;        // m's slab size before attach (floats)
    size_t slab;            // floats kept in m's slab while attached
    float *chunk;           // dequantization scratch (the callbacks run one at a time)
    struct model_base_ops ops;
};

// The ckpt_load_divert callback: takes the layer linears (data NULL: "is tensor i one?").
bool qlora_divert(void *ctx, const struct model *m, int i, const float *data);
// Quantizes m's layer linears (those qlora_divert did not take; q zeroed before), shrinks m's slab
// to the rest (embed, norms, lm_head), freezes the linears and points m->base at the NF4 product. m
// must have no gradient buffer for the base (LoRA: the adapter's view has them).
void qlora_attach(struct qlora *q, struct model *m);
// Restores a full slab in m with the dequantized weights and removes the base ops.
void qlora_detach(struct qlora *q, struct model *m);
void qlora_free(struct qlora *q);
// Bytes of the quantized weights (all layers; m's remaining slab is q->slab floats).
size_t qlora_bytes(const struct qlora *q);

#endif

// SPDX-License-Identifier: MIT
// quant: block quantization of f32 rows into the tensor types kiln writes and reads — ggml's
// F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K (byte-identical to ggml's reference quantizers, the
// ones llama-quantize uses for files), and NF4 (QLoRA's 4-bit NormalFloat, kiln-internal), with
// dequantization and dot products of a quantized row with an f32 vector.
//
// Block layouts (little-endian; fp16 is IEEE binary16):
//
//   Q8_0  32 values, 34 bytes:  fp16 d | int8 q[32]            x = d*q
//         d = amax/127, q = roundf(x/d) (half away from zero)
//   Q4_0  32 values, 18 bytes:  fp16 d | u8 qs[16]             x = d*(q - 8)
//         d = max/-8 (max: the signed value of largest magnitude, first one on ties),
//         q = min(15, (int)(x/d + 8.5)); qs[j] = q[j] | q[j+16] << 4
//   Q4_K  256 values (8 sub-blocks of 32), 144 bytes:
//         fp16 d | fp16 dmin | u8 scales[12] | u8 qs[128]      x = d*sc[s]*q - dmin*m[s]
//         scales: 6-bit sc[s] and m[s], s = 0..7, packed as
//           s < 4:  sc = scales[s] & 63,                 m = scales[s+4] & 63
//           s >= 4: sc = scales[s+4] & 15 | (scales[s-4] >> 6) << 4,
//                   m  = scales[s+4] >> 4 | (scales[s]   >> 6) << 4
//         qs: for each 64-value chunk c, 32 bytes: low nibble value 64c+l, high 64c+32+l.
//         Per sub-block scale and min come from ggml's make_qkx2_quants search (weights
//         sqrt(mean x^2) + |x|, 21 candidate scales), quantized to 6 bits against the block
//         maxima.
//   Q6_K  256 values (16 sub-blocks of 16), 210 bytes:
//         u8 ql[128] | u8 qh[64] | int8 scales[16] | fp16 d    x = d*scales[s]*(q - 32)
//         q (6 bits): for each 128-value half h, value 128h + 32k + l (k = 0..3, l < 32) has
//           low 4 bits in ql[64h + l + 32(k&1)] (low nibble for k < 2, high for k >= 2) and
//           high 2 bits at bit 2k of qh[32h + l].
//         Per sub-block signed scale from ggml's make_qx_quants (weights x^2, 19 candidate
//         scales), quantized to int8 against the largest-magnitude one (d = max/-128).
//   NF4   64 values, 36 bytes:  f32 absmax | u8 qs[32]          x = absmax*NF4[q]
//         q = index of the nearest NF4 code to x/absmax (ties to the lower code);
//         qs[j] = q[2j] << 4 | q[2j+1] (bitsandbytes order). Not a ggml type: never in GGUF.
//   F16 / BF16 / F32: one value per "block" (via half.h, round to nearest even).
//
// Inputs must be finite for the quantized types; non-finite inputs give unspecified (but
// memory-safe) blocks. The vectorized paths (AVX2 for Q8_0 and Q4_K, AVX-512 for Q4_K; chosen
// at compile time) produce exactly the bytes of the scalar code, which follows ggml's reference
// operation by operation.
#ifndef KILN_QUANT_H
#define KILN_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Values are ggml's type ids (GGUF tensor types), except QTYPE_NF4.
enum qtype {
    QTYPE_F32 = 0,
    QTYPE_F16 = 1,
    QTYPE_Q4_0 = 2,
    QTYPE_Q8_0 = 8,
    QTYPE_Q4_K = 12,
    QTYPE_Q6_K = 14,
    QTYPE_BF16 = 30,
    QTYPE_NF4 = 1000, // kiln-internal
};

#define QUANT_QK8_0 32
#define QUANT_QK4_0 32
#define QUANT_QK_K 256
#define QUANT_QKNF4 64

// True for the types this module implements.
bool quant_type_known(int type);
// "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K", "NF4"; "?" for anything else.
const char *quant_type_name(int type);
// Parses a name as above (case-insensitive). Returns the type or -1.
int quant_type_parse(const char *name);
// Values per block and bytes per block; 0 for unknown types.
int quant_block_values(int type);
size_t quant_block_bytes(int type);
// Bytes of a row of n values; 0 if the type is unknown or n is not a multiple of the block.
size_t quant_row_size(int type, int64_t n);

// Quantizes n values of x (n a multiple of the block) into dst (quant_row_size bytes).
// Returns 0, or -1 if the type is unknown or n does not fit the block size.
int quant_row_quantize(int type, const float *x, void *dst, int64_t n);
// Dequantizes n values from src into y. Returns 0 or -1 (as above).
int quant_row_dequantize(int type, const void *src, float *y, int64_t n);
// Dot product of a quantized row of n values with x (accumulated in double, per block).
// Returns the value; NAN if the type or n is invalid.
float quant_row_dot(int type, const void *row, const float *x, int64_t n);

// quant_row_quantize through the scalar code only (the reference the vector paths must match
// byte for byte; for tests and benchmarks).
int quant_row_quantize_scalar(int type, const float *x, void *dst, int64_t n);

// The NF4 code book (16 values in [-1, 1], ascending).
extern const float quant_nf4_codes[16];

#endif

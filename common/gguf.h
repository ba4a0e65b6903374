// SPDX-License-Identifier: MIT
// gguf: reader and writer of GGUF v3 files, the model format of llama.cpp / ggml.
//
// Byte layout (all integers little-endian; str = u64 length + bytes, no NUL):
//
//   u8[4]  magic "GGUF"
//   u32    version (3; 2 is read too: same layout)
//   i64    n_tensors
//   i64    n_kv
//   n_kv x { str key; i32 type; value }
//            value: u8 i8 u16 i16 u32 i32 f32 bool(u8 0/1) str u64 i64 f64 by type 0..12,
//                   array (type 9) = i32 element type, u64 count, count elements (no nesting)
//   n_tensors x { str name; u32 n_dims (1..4); i64 ne[n_dims]; i32 ggml type; u64 offset }
//            ne[0] is the contiguous dimension (a HF [out, in] weight has ne {in, out});
//            offset is relative to the data section and a multiple of the alignment
//   zero padding to the alignment (general.alignment, u32 power of two, default 32)
//   data section: each tensor's bytes (rows of quant_row_size(type, ne[0])), each padded with
//            zeros to the alignment; tensor i+1 starts where tensor i's padded bytes end.
//
// Writer: collect KVs (in insertion order; setting a key again replaces its value in place) and
// tensors (data borrowed until the write), then gguf_writer_write() serializes twice — a
// counting pass and a writing pass through the same code — asserting every tensor offset and
// the total, checking every write and the close, into PATH.tmp renamed to PATH on success.
//
// Reader: the whole file is mapped (or a caller's buffer borrowed) and every count, length and
// offset is checked against the bytes that remain before anything is allocated or read; a
// truncated or lying header gives an error naming the byte offset, never an out-of-bounds read.
// Strings stay in the image (struct gguf_str, not NUL-terminated); keys and tensor names are
// copied as C strings (NUL bytes in them are refused).
#ifndef KILN_GGUF_H
#define KILN_GGUF_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 63 // tensor name bytes (ggml's GGML_MAX_NAME - 1)

enum gguf_type {
    GGUF_TYPE_U8 = 0,
    GGUF_TYPE_I8 = 1,
    GGUF_TYPE_U16 = 2,
    GGUF_TYPE_I16 = 3,
    GGUF_TYPE_U32 = 4,
    GGUF_TYPE_I32 = 5,
    GGUF_TYPE_F32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_U64 = 10,
    GGUF_TYPE_I64 = 11,
    GGUF_TYPE_F64 = 12,
};

// "u8", "i8", ..., "string", "array", ...; "?" when out of range.
const char *gguf_type_name(int type);
// ggml tensor type name ("F32", "Q4_K", "Q6_K", ...) or "?"; the reader knows the sizes of
// ggml's common types, quant.h dequantizes F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K.
const char *gguf_tensor_type_name(int type);

// ---- writer ----

struct gguf_writer;

// Returns a new, empty writer; free with gguf_writer_del().
struct gguf_writer *gguf_writer_new(void);
void gguf_writer_del(struct gguf_writer *w);

void gguf_set_u8(struct gguf_writer *w, const char *key, uint8_t v);
void gguf_set_i8(struct gguf_writer *w, const char *key, int8_t v);
void gguf_set_u16(struct gguf_writer *w, const char *key, uint16_t v);
void gguf_set_i16(struct gguf_writer *w, const char *key, int16_t v);
void gguf_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
void gguf_set_i32(struct gguf_writer *w, const char *key, int32_t v);
void gguf_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
void gguf_set_i64(struct gguf_writer *w, const char *key, int64_t v);
void gguf_set_f32(struct gguf_writer *w, const char *key, float v);
void gguf_set_f64(struct gguf_writer *w, const char *key, double v);
void gguf_set_bool(struct gguf_writer *w, const char *key, bool v);
void gguf_set_str(struct gguf_writer *w, const char *key, const char *s);
// An array of n fixed-size elements of type elem (any type but string and array), copied from
// data in host (little-endian) order; bool elements are one byte, 0 or 1.
void gguf_set_arr(struct gguf_writer *w, const char *key, enum gguf_type elem, const void *data,
                  size_t n);
// An array of n strings (copied).
void gguf_set_arr_str(struct gguf_writer *w, const char *key, const char *const *s, size_t n);

// Adds a tensor of type `type` (a ggml type id from quant.h) and shape ne[0..n_dims-1]; data
// holds its bytes (quant_row_size(type, ne[0]) per row) and is borrowed: it must stay valid
// until gguf_writer_write(). Returns 0, or -1 with err for a bad name (empty, too long,
// duplicate), a bad shape, an unknown type or a row length that is not a multiple of the block.
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims,
                           const int64_t *ne, const void *data, struct kerr *err);

// Writes the file atomically (PATH.tmp, then rename). Returns 0, or -1 with err (I/O errors
// with strerror; a general.alignment that is not a u32 power of two). Nothing is left at PATH
// or PATH.tmp on failure.
int gguf_writer_write(struct gguf_writer *w, const char *path, struct kerr *err);
// The number of bytes gguf_writer_write() would write (the counting pass alone).
uint64_t gguf_writer_size(struct gguf_writer *w);

// ---- metadata helpers for llama-architecture files (plain values, no model dependency) ----

struct gguf_llama_params {
    const char *name;   // general.name, or NULL
    uint32_t file_type; // general.file_type (0 F32, 1 F16, 2 Q4_0, 7 Q8_0, 15 Q4_K_M)
    uint32_t context_length;
    uint32_t embedding_length;
    uint32_t block_count;
    uint32_t feed_forward_length;
    uint32_t head_count;
    uint32_t head_count_kv;
    uint32_t vocab_size;
    float rms_eps;
    float rope_freq_base;
};
// Sets general.architecture "llama", general.name, general.file_type,
// general.quantization_version 2 and the llama.* hyperparameters (rope.dimension_count =
// embedding_length / head_count).
void gguf_set_llama(struct gguf_writer *w, const struct gguf_llama_params *p);

struct gguf_tokenizer_params {
    const char *pre;           // tokenizer.ggml.pre (tok_pre_gguf_name in tok.h)
    const char *const *tokens; // n_tokens, in GPT-2 byte-to-unicode form (tok_token_unicode)
    size_t n_tokens;
    const int32_t *token_types; // n_tokens (1 normal, 3 control, ...), or NULL = all 1
    const char *const *merges;  // n_merges, "a b" in byte-to-unicode form
    size_t n_merges;
    int64_t bos_id, eos_id, pad_id; // -1 = not written
    int add_bos;                    // tokenizer.ggml.add_bos_token: 0, 1, or -1 = not written
};
// Sets tokenizer.ggml.model "gpt2" and the keys above.
void gguf_set_tokenizer_gpt2(struct gguf_writer *w, const struct gguf_tokenizer_params *t);

// ---- reader ----

struct gguf_str {
    const char *p; // into the file image, not NUL-terminated
    uint64_t n;
};

struct gguf_kv {
    char *key;             // NUL-terminated copy
    enum gguf_type type;   // value type
    enum gguf_type elem;   // element type of an array (type == GGUF_TYPE_ARRAY)
    uint64_t n;            // array length; 1 for a scalar
    const uint8_t *data;   // scalar value or first array element (fixed-size types), unaligned
    struct gguf_str *strs; // string value (1) or string array elements (n), else NULL
    uint64_t offset;       // byte offset of the KV in the file
};

struct gguf_tensor {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; // unused dimensions are 1
    int type;                  // ggml type id
    uint64_t offset;           // relative to the data section
    uint64_t nbytes;
    int64_t n_elem;
    const uint8_t *data; // into the file image
};

struct gguf_file {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    struct gguf_kv *kv;
    struct gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset; // file offset of the data section
    const uint8_t *image;
    size_t size;
    bool mapped;
};

// Maps and parses PATH. Returns 0, or -1 with err ("PATH: offset N: what"); g is then empty
// and gguf_close() is harmless. Close with gguf_close().
int gguf_open(struct gguf_file *g, const char *path, struct kerr *err);
// Parses n bytes at p (borrowed: must outlive g). Same checks and errors.
int gguf_open_mem(struct gguf_file *g, const void *p, size_t n, struct kerr *err);
void gguf_close(struct gguf_file *g);

// Finds a key or tensor by name; NULL if absent.
const struct gguf_kv *gguf_find_kv(const struct gguf_file *g, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name);

// Typed access to a KV. Integers (and bool) convert to int64 when the value fits (a u64 above
// INT64_MAX does not); floats from f32/f64. Return 0, or -1 with err naming the key and why.
int gguf_kv_int(const struct gguf_kv *kv, int64_t *out, struct kerr *err);
int gguf_kv_float(const struct gguf_kv *kv, double *out, struct kerr *err);
int gguf_kv_str(const struct gguf_kv *kv, struct gguf_str *out, struct kerr *err);
// Element i of an array KV (i < kv->n), with the same conversions.
int gguf_kv_arr_int(const struct gguf_kv *kv, uint64_t i, int64_t *out, struct kerr *err);
int gguf_kv_arr_float(const struct gguf_kv *kv, uint64_t i, double *out, struct kerr *err);
int gguf_kv_arr_str(const struct gguf_kv *kv, uint64_t i, struct gguf_str *out, struct kerr *err);
// Lookup plus conversion: -1 with "key K: missing" when absent.
int gguf_get_int(const struct gguf_file *g, const char *key, int64_t *out, struct kerr *err);
int gguf_get_float(const struct gguf_file *g, const char *key, double *out, struct kerr *err);
int gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out,
                 struct kerr *err);

// Dequantizes tensor t into out (t->n_elem floats). Returns 0, or -1 with err when quant.h
// does not implement the tensor's type.
int gguf_tensor_to_f32(const struct gguf_tensor *t, float *out, struct kerr *err);

#endif

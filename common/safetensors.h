// SPDX-License-Identifier: MIT
// safetensors: reading and writing the Hugging Face safetensors tensor format.
//
// Byte layout:
//   [0, 8)          N, u64 little-endian: header length
//   [8, 8 + N)      header: a JSON object, UTF-8, padded with spaces (kiln pads to 8 bytes)
//                   {"NAME": {"dtype": "F32", "shape": [d0, d1, ...],
//                             "data_offsets": [begin, end]}, ...,
//                    "__metadata__": {"key": "value", ...}}      (metadata optional)
//   [8 + N, EOF)    data; offsets are relative to its start
//
// The reader checks everything before any byte of data is used: N ≤ 100 MB and within the
// file; the header is strict JSON (json.h) and an object; each tensor has a known dtype, a
// shape of at most 8 non-negative dimensions whose element count does not overflow,
// end - begin == elements × dtype size, and the tensors' byte ranges tile the data exactly
// (sorted by begin: first at 0, no gaps or overlaps, last ends at EOF). Errors name the file
// and the tensor. Conversion to float32 is offered for F32, F16 and BF16.
//
// The writer emits F32, F16 or BF16 from float32 arrays, tensors in the order given,
// "__metadata__" first, and writes PATH.tmp then renames it over PATH.
#ifndef KILN_SAFETENSORS_H
#define KILN_SAFETENSORS_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAX_DIMS 8

enum st_dtype {
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
    ST_U16,
    ST_U32,
    ST_U64,
    ST_F8_E4M3,
    ST_F8_E5M2,
};

const char *st_dtype_name(enum st_dtype d);
size_t st_dtype_size(enum st_dtype d);

struct st_tensor {
    char *name; // unescaped, NUL-terminated
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; // byte range within the data section
};

// A parsed file. st_open maps the file (read-only); st_parse works over caller bytes that
// must outlive it. st_close releases either.
struct st_file {
    const uint8_t *base; // whole file
    size_t size;
    const uint8_t *data; // base + 8 + N
    size_t data_size;
    struct st_tensor *tensors; // in header order
    size_t n;
    char *metadata_json; // raw "__metadata__" object text (NUL-terminated) or NULL
    bool mapped;
};

// Parses bytes[0, n). name is used in messages. 0, or -1 with err
// ("NAME: tensor 'x': data_offsets [0, 12] do not match shape [2, 2] of F32 (16 bytes)").
int st_parse(struct st_file *f, const void *bytes, size_t n, const char *name,
             struct kerr *err);
int st_open(struct st_file *f, const char *path, struct kerr *err);
void st_close(struct st_file *f);
const struct st_tensor *st_find(const struct st_file *f, const char *name);
// Converts a F32/F16/BF16 tensor to float32 into out[numel]. -1 with err for other dtypes.
int st_read_f32(const struct st_file *f, const struct st_tensor *t, float *out,
                struct kerr *err);

// One tensor to write: float32 data of shape[ndim] stored as dtype (F32, F16 or BF16).
struct st_out {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
};

// Writes path atomically. meta: NULL or alternating key, value strings ending with NULL.
// 0 or -1 with err.
int st_write(const char *path, const struct st_out *t, size_t n, enum st_dtype dtype,
             const char *const *meta, struct kerr *err);

#endif

// SPDX-License-Identifier: MIT
// Unit tests for common/gguf: writer -> reader round trips of every KV type and tensor type,
// exact header bytes, alignment, writer errors, every class of malformed header (each must be
// refused with a message, never read out of bounds: run under SAN=1), and the metadata helpers.
#include "gguf.h"
#include "quant.h"
#include "test.h"
#include "util.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static const char *
tmp_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static bool
file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool
str_eq(struct gguf_str s, const char *c)
{
    return s.n == strlen(c) && memcmp(s.p, c, s.n) == 0;
}

// ---- round trip ----

static void
test_round_trip(uint32_t alignment)
{
    struct gguf_writer *w = gguf_writer_new();
    struct kerr err;
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_u8(w, "t.u8", 250);
    gguf_set_i8(w, "t.i8", -100);
    gguf_set_u16(w, "t.u16", 65000);
    gguf_set_i16(w, "t.i16", -32000);
    gguf_set_u32(w, "t.u32", 4000000000u);
    gguf_set_i32(w, "t.i32", -2000000000);
    gguf_set_u64(w, "t.u64", UINT64_MAX);
    gguf_set_i64(w, "t.i64", INT64_MIN);
    gguf_set_f32(w, "t.f32", 1.5f);
    gguf_set_f64(w, "t.f64", -2.25e100);
    gguf_set_bool(w, "t.bool", true);
    gguf_set_str(w, "t.empty", "");
    gguf_set_u32(w, "t.replaced", 1);
    int32_t ints[] = {1, -2, 3};
    float floats[] = {0.5f, -1e-30f};
    bool bools[] = {true, false, true};
    const char *strs[] = {"a", "", "Ġhello wörld"};
    gguf_set_arr(w, "t.arr.i32", GGUF_TYPE_I32, ints, 3);
    gguf_set_arr(w, "t.arr.f32", GGUF_TYPE_F32, floats, 2);
    gguf_set_arr(w, "t.arr.bool", GGUF_TYPE_BOOL, bools, 3);
    gguf_set_arr_str(w, "t.arr.str", strs, 3);
    gguf_set_arr(w, "t.arr.empty", GGUF_TYPE_U8, NULL, 0);
    gguf_set_i64(w, "t.replaced", -7); // replaces in place, with a new type
    if (alignment != GGUF_DEFAULT_ALIGNMENT)
        gguf_set_u32(w, "general.alignment", alignment);

    // Tensors: one per type, rows of 256, plus a 1-D F32 vector of odd length.
    enum { COLS = 256, ROWS = 3 };
    static const int types[] = {QTYPE_F32,  QTYPE_F16,  QTYPE_BF16,
                                QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q4_K};
    float *x = xmalloc(COLS * ROWS * 4);
    for (int i = 0; i < COLS * ROWS; i++)
        x[i] = sinf((float)i * 0.37f) * (1 + i % 7);
    void *data[KILN_ARRAY_LEN(types)];
    char name[64];
    for (size_t k = 0; k < KILN_ARRAY_LEN(types); k++) {
        data[k] = xmalloc(quant_row_size(types[k], COLS) * ROWS);
        for (int r = 0; r < ROWS; r++)
            quant_row_quantize(types[k], x + r * COLS,
                               (char *)data[k] + r * quant_row_size(types[k], COLS), COLS);
        snprintf(name, sizeof name, "blk.%zu.weight", k);
        int64_t ne[2] = {COLS, ROWS};
        CHECK_EQ_INT(gguf_writer_add_tensor(w, name, types[k], 2, ne, data[k], &err), 0);
    }
    float vec[7] = {1, 2, 3, 4, 5, 6, 7};
    int64_t ne1[1] = {7};
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "output_norm.weight", QTYPE_F32, 1, ne1, vec, &err), 0);

    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("rt.gguf"));
    int rc = gguf_writer_write(w, path, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    uint64_t counted = gguf_writer_size(w);
    gguf_writer_del(w);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == counted);
    CHECK(!file_exists(tmp_path("rt.gguf.tmp")));

    struct gguf_file g;
    rc = gguf_open(&g, path, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        goto out;
    CHECK_EQ_INT(g.version, 3);
    CHECK_EQ_INT(g.alignment, alignment);
    CHECK_EQ_INT(g.data_offset % alignment, 0);
    CHECK_EQ_INT(g.n_kv, 19 + (alignment != GGUF_DEFAULT_ALIGNMENT));
    CHECK_EQ_STR(g.kv[0].key, "general.architecture");
    int64_t iv;
    double fv;
    struct gguf_str sv;
    CHECK(gguf_get_int(&g, "t.u8", &iv, &err) == 0 && iv == 250);
    CHECK(gguf_get_int(&g, "t.i8", &iv, &err) == 0 && iv == -100);
    CHECK(gguf_get_int(&g, "t.u16", &iv, &err) == 0 && iv == 65000);
    CHECK(gguf_get_int(&g, "t.i16", &iv, &err) == 0 && iv == -32000);
    CHECK(gguf_get_int(&g, "t.u32", &iv, &err) == 0 && iv == 4000000000ll);
    CHECK(gguf_get_int(&g, "t.i32", &iv, &err) == 0 && iv == -2000000000);
    CHECK(gguf_get_int(&g, "t.i64", &iv, &err) == 0 && iv == INT64_MIN);
    CHECK(gguf_get_int(&g, "t.bool", &iv, &err) == 0 && iv == 1);
    CHECK(gguf_get_int(&g, "t.u64", &iv, &err) == -1); // does not fit int64
    const struct gguf_kv *kv = gguf_find_kv(&g, "t.u64");
    CHECK(kv && kv->type == GGUF_TYPE_U64 &&
          memcmp(kv->data, "\xff\xff\xff\xff\xff\xff\xff\xff", 8) == 0);
    CHECK(gguf_get_float(&g, "t.f32", &fv, &err) == 0 && fv == 1.5);
    CHECK(gguf_get_float(&g, "t.f64", &fv, &err) == 0 && fv == -2.25e100);
    CHECK(gguf_get_str(&g, "general.architecture", &sv, &err) == 0 && str_eq(sv, "llama"));
    CHECK(gguf_get_str(&g, "t.empty", &sv, &err) == 0 && sv.n == 0);
    kv = gguf_find_kv(&g, "t.replaced");
    CHECK(kv && kv->type == GGUF_TYPE_I64 && kv == &g.kv[13]);
    CHECK(gguf_get_int(&g, "t.replaced", &iv, &err) == 0 && iv == -7);
    // Type mismatches and missing keys are errors naming the key.
    CHECK(gguf_get_str(&g, "t.u8", &sv, &err) == -1 && strstr(err.msg, "t.u8"));
    CHECK(gguf_get_float(&g, "t.i32", &fv, &err) == -1);
    CHECK(gguf_get_int(&g, "nope", &iv, &err) == -1 && strstr(err.msg, "missing"));

    kv = gguf_find_kv(&g, "t.arr.i32");
    CHECK(kv && kv->type == GGUF_TYPE_ARRAY && kv->elem == GGUF_TYPE_I32 && kv->n == 3);
    CHECK(gguf_kv_arr_int(kv, 1, &iv, &err) == 0 && iv == -2);
    CHECK(gguf_kv_arr_int(kv, 3, &iv, &err) == -1);
    kv = gguf_find_kv(&g, "t.arr.f32");
    CHECK(kv && gguf_kv_arr_float(kv, 1, &fv, &err) == 0 && fv == (double)-1e-30f);
    kv = gguf_find_kv(&g, "t.arr.bool");
    CHECK(kv && kv->elem == GGUF_TYPE_BOOL && gguf_kv_arr_int(kv, 2, &iv, &err) == 0 && iv == 1);
    kv = gguf_find_kv(&g, "t.arr.str");
    CHECK(kv && kv->elem == GGUF_TYPE_STRING && kv->n == 3);
    CHECK(gguf_kv_arr_str(kv, 2, &sv, &err) == 0 && str_eq(sv, strs[2]));
    CHECK(gguf_kv_arr_str(kv, 1, &sv, &err) == 0 && sv.n == 0);
    CHECK(gguf_kv_arr_int(kv, 0, &iv, &err) == -1);
    kv = gguf_find_kv(&g, "t.arr.empty");
    CHECK(kv && kv->n == 0 && kv->elem == GGUF_TYPE_U8);

    CHECK_EQ_INT(g.n_tensors, KILN_ARRAY_LEN(types) + 1);
    float *back = xmalloc(COLS * ROWS * 4), *want = xmalloc(COLS * ROWS * 4);
    for (size_t k = 0; k < KILN_ARRAY_LEN(types); k++) {
        snprintf(name, sizeof name, "blk.%zu.weight", k);
        const struct gguf_tensor *t = gguf_find_tensor(&g, name);
        CHECK(t != NULL);
        if (!t)
            continue;
        CHECK(t->type == types[k] && t->n_dims == 2 && t->ne[0] == COLS && t->ne[1] == ROWS);
        CHECK_EQ_INT(t->offset % alignment, 0);
        CHECK_EQ_INT(t->nbytes, quant_row_size(types[k], COLS) * ROWS);
        CHECK(memcmp(t->data, data[k], t->nbytes) == 0);
        CHECK_EQ_INT(gguf_tensor_to_f32(t, back, &err), 0);
        for (int r = 0; r < ROWS; r++)
            quant_row_dequantize(types[k], (char *)data[k] + r * quant_row_size(types[k], COLS),
                                 want + r * COLS, COLS);
        CHECK(memcmp(back, want, COLS * ROWS * 4) == 0);
    }
    const struct gguf_tensor *t = gguf_find_tensor(&g, "output_norm.weight");
    CHECK(t && t->n_dims == 1 && t->ne[0] == 7 && t->ne[1] == 1 && t->n_elem == 7);
    CHECK(t && memcmp(t->data, vec, sizeof vec) == 0);
    CHECK(gguf_find_tensor(&g, "missing") == NULL);
    free(back);
    free(want);
    gguf_close(&g);
out:
    for (size_t k = 0; k < KILN_ARRAY_LEN(types); k++)
        free(data[k]);
    free(x);
}

// The exact bytes of a small file.
static void
test_exact_bytes(void)
{
    struct gguf_writer *w = gguf_writer_new();
    struct kerr err;
    gguf_set_u32(w, "a", 7);
    float v[2] = {1.0f, -2.0f};
    int64_t ne[1] = {2};
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", QTYPE_F32, 1, ne, v, &err), 0);
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("exact.gguf"));
    CHECK_EQ_INT(gguf_writer_write(w, path, &err), 0);
    gguf_writer_del(w);
    struct buf f = {0};
    CHECK_EQ_INT(read_file(path, 0, &f, &err), 0);
    static const uint8_t want[] = {
        'G', 'G', 'U',  'F',  3, 0, 0, 0,                                 // magic, version
        1,   0,   0,    0,    0, 0, 0, 0,    1,   0, 0, 0, 0, 0, 0, 0,    // n_tensors, n_kv
        1,   0,   0,    0,    0, 0, 0, 0,    'a', 4, 0, 0, 0, 7, 0, 0, 0, // "a": u32 7
        1,   0,   0,    0,    0, 0, 0, 0,    't', 1, 0, 0, 0,             // "t", 1 dim
        2,   0,   0,    0,    0, 0, 0, 0,    0,   0, 0, 0,                // ne[0] = 2, F32
        0,   0,   0,    0,    0, 0, 0, 0,                                 // offset 0
        0,   0,   0,    0,    0, 0, 0, 0,    0,   0, 0, 0, 0, 0, 0, 0,    // pad 74 -> 96
        0,   0,   0,    0,    0, 0,                                       //
        0,   0,   0x80, 0x3f, 0, 0, 0, 0xc0,                              // 1.0f, -2.0f
        0,   0,   0,    0,    0, 0, 0, 0,    0,   0, 0, 0, 0, 0, 0, 0,    // pad 104 -> 128
        0,   0,   0,    0,    0, 0, 0, 0,
    };
    CHECK_EQ_INT(f.len, sizeof want);
    CHECK(f.len == sizeof want && memcmp(f.p, want, sizeof want) == 0);
    buf_free(&f);
}

static void
test_writer_errors(void)
{
    struct gguf_writer *w = gguf_writer_new();
    struct kerr err;
    float v[512] = {0};
    int64_t ne[2] = {256, 2};
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "", QTYPE_F32, 1, ne, v, &err), -1);
    char long_name[80];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[79] = 0;
    CHECK_EQ_INT(gguf_writer_add_tensor(w, long_name, QTYPE_F32, 1, ne, v, &err), -1);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", QTYPE_F32, 0, ne, v, &err), -1);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", QTYPE_F32, 5, ne, v, &err), -1);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", QTYPE_NF4, 1, ne, v, &err), -1);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", 77, 1, ne, v, &err), -1);
    int64_t bad[2] = {100, 2};
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", QTYPE_Q4_K, 2, bad, v, &err), -1);
    CHECK(strstr(err.msg, "multiple of") != NULL);
    int64_t neg[2] = {32, -1};
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", QTYPE_F32, 2, neg, v, &err), -1);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", QTYPE_F32, 2, ne, v, &err), 0);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", QTYPE_F32, 2, ne, v, &err), -1);
    CHECK(strstr(err.msg, "twice") != NULL);
    // Unwritable destination: error, nothing left behind.
    CHECK_EQ_INT(gguf_writer_write(w, tmp_path("no/such/dir/x.gguf"), &err), -1);
    CHECK(strstr(err.msg, "No such file") != NULL);
    // A bad alignment is refused before anything is written.
    gguf_set_u32(w, "general.alignment", 24);
    CHECK_EQ_INT(gguf_writer_write(w, tmp_path("align.gguf"), &err), -1);
    CHECK(!file_exists(tmp_path("align.gguf")) && !file_exists(tmp_path("align.gguf.tmp")));
    gguf_set_u16(w, "general.alignment", 64);
    CHECK_EQ_INT(gguf_writer_write(w, tmp_path("align.gguf"), &err), -1);
    gguf_writer_del(w);
}

// ---- malformed files, built byte by byte ----

struct mk {
    struct buf b;
};

static void
mk_le(struct mk *m, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        buf_putc(&m->b, (char)(uint8_t)(v >> (8 * i)));
}

static void
mk_str(struct mk *m, const char *s)
{
    mk_le(m, strlen(s), 8);
    buf_append(&m->b, s, strlen(s));
}

static void
mk_header(struct mk *m, uint64_t nt, uint64_t nkv)
{
    buf_init(&m->b);
    buf_append(&m->b, "GGUF", 4);
    mk_le(m, 3, 4);
    mk_le(m, nt, 8);
    mk_le(m, nkv, 8);
}

static void
mk_pad(struct mk *m, size_t align)
{
    while (m->b.len % align)
        buf_putc(&m->b, 0);
}

// Expects the image to be refused with a message containing `needle`.
static void
expect_bad(struct mk *m, const char *needle, const char *what)
{
    struct gguf_file g;
    struct kerr err = {{0}};
    // Copy to an exact-size heap block so ASan catches any read past the end.
    char *p = xmalloc(m->b.len ? m->b.len : 1);
    memcpy(p, m->b.p, m->b.len);
    int rc = gguf_open_mem(&g, p, m->b.len, &err);
    CHECK_MSG(rc == -1, "%s: accepted", what);
    CHECK_MSG(rc == 0 || strstr(err.msg, needle), "%s: message \"%s\" lacks \"%s\"", what, err.msg,
              needle);
    if (rc == 0)
        gguf_close(&g);
    free(p);
    buf_free(&m->b);
}

// A valid file with one KV and one tensor of 8 f32 (32 bytes, so no trailing padding).
static void
mk_valid(struct mk *m)
{
    mk_header(m, 1, 1);
    mk_str(m, "k");
    mk_le(m, GGUF_TYPE_U32, 4);
    mk_le(m, 5, 4);
    mk_str(m, "w");
    mk_le(m, 1, 4);
    mk_le(m, 8, 8);
    mk_le(m, QTYPE_F32, 4);
    mk_le(m, 0, 8);
    mk_pad(m, 32);
    for (int i = 0; i < 8; i++)
        mk_le(m, 0x3f800000, 4);
}

static void
test_malformed(void)
{
    struct mk m;
    struct gguf_file g;
    struct kerr err;

    mk_valid(&m);
    CHECK_EQ_INT(gguf_open_mem(&g, m.b.p, m.b.len, &err), 0);
    gguf_close(&g);
    // Every truncation of a valid file is refused.
    size_t full = m.b.len;
    int refused = 0;
    for (size_t n = 0; n < full; n++) {
        char *p = xmalloc(n ? n : 1);
        memcpy(p, m.b.p, n);
        if (gguf_open_mem(&g, p, n, &err) == -1)
            refused++;
        else
            gguf_close(&g);
        free(p);
    }
    CHECK_EQ_INT(refused, full);
    buf_free(&m.b);

    mk_header(&m, 0, 0);
    m.b.p[0] = 'X';
    expect_bad(&m, "bad magic", "magic");
    mk_header(&m, 0, 0);
    m.b.p[4] = 1;
    expect_bad(&m, "version 1", "version 1");
    mk_header(&m, 0, 0);
    m.b.p[4] = 4;
    expect_bad(&m, "unsupported GGUF version 4", "version 4");
    mk_header(&m, 0, 0);
    m.b.p[4] = 0, m.b.p[7] = 3;
    expect_bad(&m, "big-endian", "big-endian");
    mk_header(&m, 0, 1000);
    expect_bad(&m, "KV count 1000", "KV count");
    mk_header(&m, (uint64_t)1 << 62, 0);
    expect_bad(&m, "tensor count", "tensor count");
    mk_header(&m, 0, UINT64_MAX); // -1 as i64
    expect_bad(&m, "KV count", "negative KV count");

    // KV-level lies.
    mk_header(&m, 0, 1);
    mk_le(&m, 1000000, 8);
    buf_append(&m.b, "abcdefgh", 8);
    expect_bad(&m, "string length 1000000 exceeds", "key length");
    mk_header(&m, 0, 1);
    mk_le(&m, UINT64_MAX, 8);
    buf_append(&m.b, "abcdefgh", 8);
    expect_bad(&m, "exceeds", "key length 2^64-1");
    mk_header(&m, 0, 1);
    mk_str(&m, "");
    mk_le(&m, GGUF_TYPE_U8, 4);
    mk_le(&m, 0, 1);
    expect_bad(&m, "empty", "empty key");
    mk_header(&m, 0, 1);
    mk_le(&m, 3, 8);
    buf_append(&m.b, "a\0b", 3);
    mk_le(&m, GGUF_TYPE_U8, 4);
    mk_le(&m, 0, 1);
    expect_bad(&m, "NUL", "NUL in key");
    mk_header(&m, 0, 1);
    mk_str(&m, "k");
    mk_le(&m, 13, 4);
    mk_le(&m, 0, 8);
    expect_bad(&m, "unknown value type 13", "value type");
    mk_header(&m, 0, 1);
    mk_str(&m, "k");
    mk_le(&m, GGUF_TYPE_U64, 4);
    mk_le(&m, 0, 4);
    expect_bad(&m, "offset 37: k: needs 8 bytes", "short scalar");
    mk_header(&m, 0, 1);
    mk_str(&m, "k");
    mk_le(&m, GGUF_TYPE_BOOL, 4);
    mk_le(&m, 2, 1);
    expect_bad(&m, "bool value 2", "bool 2");
    mk_header(&m, 0, 1);
    mk_str(&m, "k");
    mk_le(&m, GGUF_TYPE_ARRAY, 4);
    mk_le(&m, GGUF_TYPE_ARRAY, 4);
    mk_le(&m, 0, 8);
    expect_bad(&m, "array of arrays", "nested array");
    mk_header(&m, 0, 1);
    mk_str(&m, "k");
    mk_le(&m, GGUF_TYPE_ARRAY, 4);
    mk_le(&m, 99, 4);
    mk_le(&m, 0, 8);
    expect_bad(&m, "unknown type", "array element type");
    mk_header(&m, 0, 1);
    mk_str(&m, "k");
    mk_le(&m, GGUF_TYPE_ARRAY, 4);
    mk_le(&m, GGUF_TYPE_U32, 4);
    mk_le(&m, (uint64_t)1 << 61, 8);
    mk_le(&m, 0, 8);
    expect_bad(&m, "elements exceed", "array count");
    mk_header(&m, 0, 1);
    mk_str(&m, "k");
    mk_le(&m, GGUF_TYPE_ARRAY, 4);
    mk_le(&m, GGUF_TYPE_STRING, 4);
    mk_le(&m, UINT64_MAX, 8);
    mk_le(&m, 0, 8);
    expect_bad(&m, "strings cannot fit", "string array count");
    mk_header(&m, 0, 1);
    mk_str(&m, "k");
    mk_le(&m, GGUF_TYPE_ARRAY, 4);
    mk_le(&m, GGUF_TYPE_STRING, 4);
    mk_le(&m, 2, 8);
    mk_str(&m, "ok");
    mk_le(&m, 50, 8);
    expect_bad(&m, "string length 50", "string element");
    mk_header(&m, 0, 2);
    for (int i = 0; i < 2; i++) {
        mk_str(&m, "dup");
        mk_le(&m, GGUF_TYPE_U8, 4);
        mk_le(&m, 1, 1);
    }
    expect_bad(&m, "duplicate key 'dup'", "duplicate key");
    static const struct {
        int type;
        uint64_t v;
    } aligns[] = {{GGUF_TYPE_U32, 0}, {GGUF_TYPE_U32, 48}, {GGUF_TYPE_U64, 32}};
    for (size_t i = 0; i < KILN_ARRAY_LEN(aligns); i++) {
        mk_header(&m, 0, 1);
        mk_str(&m, "general.alignment");
        mk_le(&m, (uint64_t)aligns[i].type, 4);
        mk_le(&m, aligns[i].v, aligns[i].type == GGUF_TYPE_U64 ? 8 : 4);
        expect_bad(&m, "power of two", "alignment");
    }

    // Tensor-info lies.
    struct {
        const char *name;
        uint64_t ndims, ne0, ne1, type, offset;
        const char *needle;
    } tc[] = {
        {"w", 0, 8, 1, 0, 0, "0 dimensions"},
        {"w", 5, 8, 1, 0, 0, "5 dimensions"},
        {"w", 2, 8, UINT64_MAX, 0, 0, "negative dimension"},
        {"w", 2, (uint64_t)1 << 62, 1 << 20, 0, 0, "overflows"},
        {"w", 1, 8, 1, 99, 0, "unknown ggml type 99"},
        {"w", 1, 8, 1, QTYPE_Q4_K, 0, "not a multiple"},
        {"w", 1, 8, 1, 0, 32, "expected 0"},
        {"w", 1, 1 << 20, 1, 0, 0, "past the end"},
        {"wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww", 1, 8, 1, 0, 0,
         "longer than"},
    };
    for (size_t i = 0; i < KILN_ARRAY_LEN(tc); i++) {
        mk_header(&m, 1, 0);
        mk_str(&m, tc[i].name);
        mk_le(&m, tc[i].ndims, 4);
        for (uint64_t d = 0; d < tc[i].ndims && d < 2; d++)
            mk_le(&m, d == 0 ? tc[i].ne0 : tc[i].ne1, 8);
        for (uint64_t d = 2; d < tc[i].ndims && d < 5; d++)
            mk_le(&m, 1, 8);
        mk_le(&m, tc[i].type, 4);
        mk_le(&m, tc[i].offset, 8);
        mk_pad(&m, 32);
        for (int k = 0; k < 16; k++)
            mk_le(&m, 0, 4);
        char what[64];
        snprintf(what, sizeof what, "tensor case %zu", i);
        expect_bad(&m, tc[i].needle, what);
    }
    // Two tensors with the same name; a second tensor whose offset overlaps the first.
    for (int c = 0; c < 2; c++) {
        mk_header(&m, 2, 0);
        for (int t = 0; t < 2; t++) {
            mk_str(&m, c == 0 ? "same" : t ? "b" : "a");
            mk_le(&m, 1, 4);
            mk_le(&m, 8, 8);
            mk_le(&m, 0, 4);
            mk_le(&m, 0, 8);
        }
        mk_pad(&m, 32);
        for (int k = 0; k < 16; k++)
            mk_le(&m, 0, 4);
        expect_bad(&m, c == 0 ? "duplicate tensor 'same'" : "expected 32", "two tensors");
    }

    // Files on disk: missing, empty, a directory.
    CHECK(gguf_open(&g, tmp_path("missing.gguf"), &err) == -1 && strstr(err.msg, "No such file"));
    FILE *f = fopen(tmp_path("empty.gguf"), "wb");
    fclose(f);
    CHECK(gguf_open(&g, tmp_path("empty.gguf"), &err) == -1 && strstr(err.msg, "empty.gguf"));
    CHECK(gguf_open(&g, tmpdir, &err) == -1 && strstr(err.msg, "not a regular file"));
    gguf_close(&g); // harmless on a failed open
}

static void
test_metadata_helpers(void)
{
    struct gguf_writer *w = gguf_writer_new();
    struct gguf_llama_params p = {.name = "tiny",
                                  .file_type = 7,
                                  .context_length = 128,
                                  .embedding_length = 64,
                                  .block_count = 2,
                                  .feed_forward_length = 160,
                                  .head_count = 4,
                                  .head_count_kv = 2,
                                  .vocab_size = 3,
                                  .rms_eps = 1e-5f,
                                  .rope_freq_base = 10000};
    gguf_set_llama(w, &p);
    const char *toks[] = {"a", "b", "ab"};
    const char *merges[] = {"a b"};
    int32_t types[] = {1, 1, 3};
    struct gguf_tokenizer_params t = {.pre = "gpt-2",
                                      .tokens = toks,
                                      .n_tokens = 3,
                                      .token_types = types,
                                      .merges = merges,
                                      .n_merges = 1,
                                      .bos_id = 2,
                                      .eos_id = 2,
                                      .pad_id = -1,
                                      .add_bos = 0};
    gguf_set_tokenizer_gpt2(w, &t);
    struct kerr err;
    CHECK_EQ_INT(gguf_writer_write(w, tmp_path("meta.gguf"), &err), 0);
    gguf_writer_del(w);
    struct gguf_file g;
    CHECK_EQ_INT(gguf_open(&g, tmp_path("meta.gguf"), &err), 0);
    int64_t iv;
    double fv;
    struct gguf_str sv;
    CHECK(gguf_get_str(&g, "general.architecture", &sv, &err) == 0 && str_eq(sv, "llama"));
    CHECK(gguf_get_int(&g, "llama.rope.dimension_count", &iv, &err) == 0 && iv == 16);
    CHECK(gguf_get_int(&g, "llama.attention.head_count_kv", &iv, &err) == 0 && iv == 2);
    CHECK(gguf_get_int(&g, "general.quantization_version", &iv, &err) == 0 && iv == 2);
    CHECK(gguf_get_float(&g, "llama.attention.layer_norm_rms_epsilon", &fv, &err) == 0 &&
          fv == (double)1e-5f);
    CHECK(gguf_get_str(&g, "tokenizer.ggml.model", &sv, &err) == 0 && str_eq(sv, "gpt2"));
    CHECK(gguf_get_str(&g, "tokenizer.ggml.pre", &sv, &err) == 0 && str_eq(sv, "gpt-2"));
    const struct gguf_kv *kv = gguf_find_kv(&g, "tokenizer.ggml.merges");
    CHECK(kv && kv->n == 1 && gguf_kv_arr_str(kv, 0, &sv, &err) == 0 && str_eq(sv, "a b"));
    kv = gguf_find_kv(&g, "tokenizer.ggml.token_type");
    CHECK(kv && kv->elem == GGUF_TYPE_I32 && gguf_kv_arr_int(kv, 2, &iv, &err) == 0 && iv == 3);
    CHECK(gguf_get_int(&g, "tokenizer.ggml.bos_token_id", &iv, &err) == 0 && iv == 2);
    CHECK(gguf_find_kv(&g, "tokenizer.ggml.padding_token_id") == NULL);
    kv = gguf_find_kv(&g, "tokenizer.ggml.add_bos_token");
    CHECK(kv && kv->type == GGUF_TYPE_BOOL && kv->data[0] == 0);
    gguf_close(&g);
}

int
main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-test-gguf-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip(GGUF_DEFAULT_ALIGNMENT);
    test_round_trip(64);
    test_exact_bytes();
    test_writer_errors();
    test_malformed();
    test_metadata_helpers();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return test_summary();
}

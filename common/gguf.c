// SPDX-License-Identifier: MIT
// gguf: GGUF v3 reader and writer (byte layout in gguf.h).
//
// The writer keeps each KV's value already serialized (type-specific payload bytes), so the
// serializer is one function that emits header, KVs, tensor infos, padding and data through a
// sink that either counts or writes. The reader is a cursor over the file image whose every
// read is preceded by a bounds check against the bytes left; counts are validated against the
// smallest encoding of their items before any allocation.

#include "gguf.h"
#include "cli.h"
#include "quant.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const type_names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                         "bool", "string", "array", "u64", "i64", "f64"};
static const size_t type_sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *
gguf_type_name(int type)
{
    return type >= 0 && type <= GGUF_TYPE_F64 ? type_names[type] : "?";
}

// ggml tensor types the reader can size: id, values per block, bytes per block.
static const struct {
    int type;
    const char *name;
    int blck;
    int size;
} ggml_types[] = {
    {0, "F32", 1, 4},       {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},    {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},    {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},  {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292}, {24, "I8", 1, 1},       {25, "I16", 1, 2},
    {26, "I32", 1, 4},      {27, "I64", 1, 8},      {28, "F64", 1, 8},      {30, "BF16", 1, 2},
};

static int
ggml_type_index(int type)
{
    for (size_t i = 0; i < KILN_ARRAY_LEN(ggml_types); i++)
        if (ggml_types[i].type == type)
            return (int)i;
    return -1;
}

const char *
gguf_tensor_type_name(int type)
{
    int i = ggml_type_index(type);
    return i < 0 ? "?" : ggml_types[i].name;
}

static uint64_t
pad_to(uint64_t x, uint64_t align)
{
    return (x + align - 1) / align * align;
}

// ---------------------------------------------------------------- writer

struct wkv {
    char *key;
    enum gguf_type type;
    struct buf val; // serialized value (for arrays: element type, count, elements)
};

struct wtensor {
    char *name;
    int type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
    uint64_t nbytes, offset;
};

struct gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
};

struct gguf_writer *
gguf_writer_new(void)
{
    return xcalloc(1, sizeof(struct gguf_writer));
}

void
gguf_writer_del(struct gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        buf_free(&w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

// Returns the KV for key, emptied, with the given type (existing keys keep their position).
static struct buf *
wkv_slot(struct gguf_writer *w, const char *key, enum gguf_type type)
{
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            w->kv[i].type = type;
            buf_reset(&w->kv[i].val);
            return &w->kv[i].val;
        }
    }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 32;
        w->kv = xrealloc(w->kv, w->cap_kv * sizeof(*w->kv));
    }
    struct wkv *kv = &w->kv[w->n_kv++];
    kv->key = xstrdup(key);
    kv->type = type;
    buf_init(&kv->val);
    return &kv->val;
}

static void
put_le(struct buf *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, tmp, n);
}

static void
put_str(struct buf *b, const char *s, size_t n)
{
    put_le(b, n, 8);
    buf_append(b, s, n);
}

#define GGUF_SET_INT(fn, ctype, gtype, n)                                                          \
    void fn(struct gguf_writer *w, const char *key, ctype v)                                       \
    {                                                                                              \
        put_le(wkv_slot(w, key, gtype), (uint64_t)v, n);                                           \
    }
GGUF_SET_INT(gguf_set_u8, uint8_t, GGUF_TYPE_U8, 1)
GGUF_SET_INT(gguf_set_i8, int8_t, GGUF_TYPE_I8, 1)
GGUF_SET_INT(gguf_set_u16, uint16_t, GGUF_TYPE_U16, 2)
GGUF_SET_INT(gguf_set_i16, int16_t, GGUF_TYPE_I16, 2)
GGUF_SET_INT(gguf_set_u32, uint32_t, GGUF_TYPE_U32, 4)
GGUF_SET_INT(gguf_set_i32, int32_t, GGUF_TYPE_I32, 4)
GGUF_SET_INT(gguf_set_u64, uint64_t, GGUF_TYPE_U64, 8)
GGUF_SET_INT(gguf_set_i64, int64_t, GGUF_TYPE_I64, 8)
#undef GGUF_SET_INT

void
gguf_set_f32(struct gguf_writer *w, const char *key, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_le(wkv_slot(w, key, GGUF_TYPE_F32), u, 4);
}

void
gguf_set_f64(struct gguf_writer *w, const char *key, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_le(wkv_slot(w, key, GGUF_TYPE_F64), u, 8);
}

void
gguf_set_bool(struct gguf_writer *w, const char *key, bool v)
{
    put_le(wkv_slot(w, key, GGUF_TYPE_BOOL), v ? 1 : 0, 1);
}

void
gguf_set_str(struct gguf_writer *w, const char *key, const char *s)
{
    put_str(wkv_slot(w, key, GGUF_TYPE_STRING), s, strlen(s));
}

void
gguf_set_arr(struct gguf_writer *w, const char *key, enum gguf_type elem, const void *data,
             size_t n)
{
    assert(elem <= GGUF_TYPE_F64 && elem != GGUF_TYPE_STRING && elem != GGUF_TYPE_ARRAY);
    struct buf *b = wkv_slot(w, key, GGUF_TYPE_ARRAY);
    put_le(b, (uint32_t)elem, 4);
    put_le(b, n, 8);
    const uint8_t *p = data;
    size_t es = type_sizes[elem];
    buf_reserve(b, n * es);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        memcpy(&v, p + i * es, es); // host order is little-endian (x86-64, aarch64)
        if (elem == GGUF_TYPE_BOOL)
            v = v != 0;
        put_le(b, v, es);
    }
}

void
gguf_set_arr_str(struct gguf_writer *w, const char *key, const char *const *s, size_t n)
{
    struct buf *b = wkv_slot(w, key, GGUF_TYPE_ARRAY);
    put_le(b, GGUF_TYPE_STRING, 4);
    put_le(b, n, 8);
    for (size_t i = 0; i < n; i++)
        put_str(b, s[i], strlen(s[i]));
}

int
gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims,
                       const int64_t *ne, const void *data, struct kerr *err)
{
    size_t len = strlen(name);
    if (len == 0 || len > GGUF_MAX_NAME)
        return kerr_set(err, "tensor name '%s': length %zu not in 1..%d", name, len, GGUF_MAX_NAME);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return kerr_set(err, "tensor '%s' added twice", name);
    if (!quant_type_known(type) || type == QTYPE_NF4)
        return kerr_set(err, "tensor '%s': type %d cannot be written to GGUF", name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return kerr_set(err, "tensor '%s': %d dimensions (1..%d)", name, n_dims, GGUF_MAX_DIMS);
    uint64_t rows = 1;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] < 1 || ne[i] > (int64_t)1 << 40)
            return kerr_set(err, "tensor '%s': dimension %d is %" PRId64, name, i, ne[i]);
        if (i > 0)
            rows *= (uint64_t)ne[i];
    }
    size_t rs = quant_row_size(type, ne[0]);
    if (!rs)
        return kerr_set(err,
                        "tensor '%s': row length %" PRId64 " is not a multiple of %s's block of %d",
                        name, ne[0], quant_type_name(type), quant_block_values(type));
    if (rows > UINT64_MAX / 2 / rs)
        return kerr_set(err, "tensor '%s': too large", name);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 32;
        w->t = xrealloc(w->t, w->cap_t * sizeof(*w->t));
    }
    struct wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->type = type;
    t->n_dims = n_dims;
    for (int i = 0; i < GGUF_MAX_DIMS; i++)
        t->ne[i] = i < n_dims ? ne[i] : 1;
    t->data = data;
    t->nbytes = rows * rs;
    return 0;
}

// general.alignment if set (must be a u32 power of two), else the default.
static int
writer_alignment(const struct gguf_writer *w, uint64_t *align, struct kerr *err)
{
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment"))
            continue;
        uint32_t a = 0;
        if (w->kv[i].type == GGUF_TYPE_U32)
            memcpy(&a, w->kv[i].val.p, 4);
        if (a == 0 || (a & (a - 1)))
            return kerr_set(err, "general.alignment must be a u32 power of two");
        *align = a;
    }
    return 0;
}

// The sink of the serializer: counts bytes (fp NULL) or writes them.
struct sink {
    FILE *fp;
    uint64_t pos;
    int errnum; // first write error
};

static void
sink_put(struct sink *s, const void *p, size_t n)
{
    if (s->fp && !s->errnum && n && fwrite(p, 1, n, s->fp) != n)
        s->errnum = errno ? errno : EIO;
    s->pos += n;
}

static void
sink_le(struct sink *s, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    sink_put(s, tmp, n);
}

static void
sink_pad(struct sink *s, uint64_t align)
{
    static const uint8_t zeros[256];
    uint64_t n = pad_to(s->pos, align) - s->pos;
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        sink_put(s, zeros, k);
        n -= k;
    }
}

// The one serializer. Tensor offsets are planned here on the counting pass and asserted on
// the writing pass. Returns 0, or -1 if an offset disagrees with the plan (a bug).
static int
serialize(struct gguf_writer *w, struct sink *s, uint64_t align, struct kerr *err)
{
    bool counting = s->fp == NULL;
    if (counting) {
        uint64_t off = 0;
        for (size_t i = 0; i < w->n_t; i++) {
            w->t[i].offset = off;
            off = pad_to(off + w->t[i].nbytes, align);
        }
    }
    sink_put(s, "GGUF", 4);
    sink_le(s, 3, 4);
    sink_le(s, w->n_t, 8);
    sink_le(s, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        const struct wkv *kv = &w->kv[i];
        sink_le(s, strlen(kv->key), 8);
        sink_put(s, kv->key, strlen(kv->key));
        sink_le(s, (uint32_t)kv->type, 4);
        sink_put(s, kv->val.p, kv->val.len);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        sink_le(s, strlen(t->name), 8);
        sink_put(s, t->name, strlen(t->name));
        sink_le(s, (uint32_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++)
            sink_le(s, (uint64_t)t->ne[d], 8);
        sink_le(s, (uint32_t)t->type, 4);
        sink_le(s, t->offset, 8);
    }
    sink_pad(s, align);
    uint64_t data_start = s->pos;
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        if (s->pos - data_start != t->offset) {
            assert(!"gguf: tensor offset differs from the plan");
            return kerr_set(err, "internal error: tensor '%s' at %" PRIu64 ", planned %" PRIu64,
                            t->name, s->pos - data_start, t->offset);
        }
        sink_put(s, t->data, t->nbytes);
        sink_pad(s, align);
    }
    return 0;
}

uint64_t
gguf_writer_size(struct gguf_writer *w)
{
    uint64_t align;
    if (writer_alignment(w, &align, NULL))
        align = GGUF_DEFAULT_ALIGNMENT;
    struct sink s = {0};
    serialize(w, &s, align, NULL);
    return s.pos;
}

int
gguf_writer_write(struct gguf_writer *w, const char *path, struct kerr *err)
{
    uint64_t align;
    if (writer_alignment(w, &align, err))
        return kerr_prefix(err, "%s", path);
    struct sink count = {0};
    if (serialize(w, &count, align, err))
        return -1;

    struct buf tmp = {0};
    buf_printf(&tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp.p, "wb");
    if (!fp) {
        kerr_set(err, "%s: %s", tmp.p, strerror(errno));
        buf_free(&tmp);
        return -1;
    }
    int slot = cli_tmp_register(tmp.p);
    struct sink out = {.fp = fp};
    int rc = serialize(w, &out, align, err);
    if (rc == 0 && !out.errnum && out.pos != count.pos) {
        assert(!"gguf: written size differs from the counted size");
        rc = kerr_set(err, "%s: internal error: wrote %" PRIu64 " bytes, counted %" PRIu64, path,
                      out.pos, count.pos);
    }
    if (rc == 0 && !out.errnum && fflush(fp) != 0)
        out.errnum = errno;
    if (rc == 0 && !out.errnum && fsync(fileno(fp)) != 0 && errno != EINVAL)
        out.errnum = errno;
    if (fclose(fp) != 0 && !out.errnum)
        out.errnum = errno ? errno : EIO;
    if (rc == 0 && out.errnum)
        rc = kerr_set(err, "%s: %s", tmp.p, strerror(out.errnum));
    if (rc == 0 && rename(tmp.p, path) != 0)
        rc = kerr_set(err, "%s: rename: %s", path, strerror(errno));
    if (rc != 0)
        unlink(tmp.p);
    cli_tmp_forget(slot);
    buf_free(&tmp);
    return rc;
}

// ---------------------------------------------------------------- metadata helpers

void
gguf_set_llama(struct gguf_writer *w, const struct gguf_llama_params *p)
{
    gguf_set_str(w, "general.architecture", "llama");
    if (p->name)
        gguf_set_str(w, "general.name", p->name);
    gguf_set_u32(w, "general.file_type", p->file_type);
    gguf_set_u32(w, "general.quantization_version", 2);
    gguf_set_u32(w, "llama.context_length", p->context_length);
    gguf_set_u32(w, "llama.embedding_length", p->embedding_length);
    gguf_set_u32(w, "llama.block_count", p->block_count);
    gguf_set_u32(w, "llama.feed_forward_length", p->feed_forward_length);
    gguf_set_u32(w, "llama.attention.head_count", p->head_count);
    gguf_set_u32(w, "llama.attention.head_count_kv", p->head_count_kv);
    gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", p->rms_eps);
    gguf_set_f32(w, "llama.rope.freq_base", p->rope_freq_base);
    gguf_set_u32(w, "llama.rope.dimension_count",
                 p->head_count ? p->embedding_length / p->head_count : 0);
    gguf_set_u32(w, "llama.vocab_size", p->vocab_size);
}

void
gguf_set_tokenizer_gpt2(struct gguf_writer *w, const struct gguf_tokenizer_params *t)
{
    gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", t->pre);
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", t->tokens, t->n_tokens);
    if (t->token_types) {
        gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, t->token_types, t->n_tokens);
    } else {
        int32_t *types = xmalloc((t->n_tokens ? t->n_tokens : 1) * sizeof(int32_t));
        for (size_t i = 0; i < t->n_tokens; i++)
            types[i] = 1;
        gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types, t->n_tokens);
        free(types);
    }
    gguf_set_arr_str(w, "tokenizer.ggml.merges", t->merges, t->n_merges);
    if (t->bos_id >= 0)
        gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos_id);
    if (t->eos_id >= 0)
        gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos_id);
    if (t->pad_id >= 0)
        gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)t->pad_id);
    if (t->add_bos >= 0)
        gguf_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos != 0);
}

// ---------------------------------------------------------------- reader

struct cursor {
    const uint8_t *p;
    size_t n, off;
    struct kerr *err;
};

static int
cur_need(struct cursor *c, uint64_t k, const char *what)
{
    if (k > c->n - c->off)
        return kerr_set(c->err, "offset %zu: %s: needs %" PRIu64 " bytes, %zu left", c->off, what,
                        k, c->n - c->off);
    return 0;
}

static int
cur_le(struct cursor *c, size_t n, uint64_t *v, const char *what)
{
    if (cur_need(c, n, what))
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)c->p[c->off + i] << (8 * i);
    c->off += n;
    *v = x;
    return 0;
}

static int
cur_str(struct cursor *c, struct gguf_str *s, const char *what)
{
    uint64_t len;
    size_t at = c->off;
    if (cur_le(c, 8, &len, what))
        return -1;
    if (len > c->n - c->off)
        return kerr_set(c->err,
                        "offset %zu: %s: string length %" PRIu64 " exceeds the %zu bytes left", at,
                        what, len, c->n - c->off);
    s->p = (const char *)c->p + c->off;
    s->n = len;
    c->off += (size_t)len;
    return 0;
}

// A C-string copy of a name (key or tensor); refuses NUL bytes and empty names.
static int
cur_name(struct cursor *c, char **out, const char *what)
{
    struct gguf_str s;
    size_t at = c->off;
    if (cur_str(c, &s, what))
        return -1;
    if (s.n == 0)
        return kerr_set(c->err, "offset %zu: %s is empty", at, what);
    if (memchr(s.p, 0, s.n))
        return kerr_set(c->err, "offset %zu: %s contains a NUL byte", at, what);
    *out = xstrndup(s.p, s.n);
    return 0;
}

void
gguf_close(struct gguf_file *g)
{
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].strs);
        }
    }
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++)
            free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    if (g->mapped && g->image)
        munmap((void *)g->image, g->size);
    memset(g, 0, sizeof *g);
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Finds a duplicate among n names (sorted copy of the pointers). Returns it or NULL.
static const char *
find_duplicate(char **names, size_t n)
{
    if (n < 2)
        return NULL;
    char **s = xmalloc(n * sizeof(char *));
    memcpy(s, names, n * sizeof(char *));
    qsort(s, n, sizeof(char *), cmp_names);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0)
            dup = s[i];
    free(s);
    return dup;
}

static int
parse_kv(struct cursor *c, struct gguf_kv *kv)
{
    kv->offset = c->off;
    if (cur_name(c, &kv->key, "key"))
        return -1;
    uint64_t type;
    size_t at = c->off;
    if (cur_le(c, 4, &type, "value type"))
        return -1;
    if (type > GGUF_TYPE_F64)
        return kerr_set(c->err, "offset %zu: key '%s': unknown value type %" PRIu64, at, kv->key,
                        type);
    kv->type = (enum gguf_type)type;
    kv->n = 1;
    if (type == GGUF_TYPE_STRING) {
        kv->strs = xmalloc(sizeof(struct gguf_str));
        return cur_str(c, kv->strs, kv->key);
    }
    if (type != GGUF_TYPE_ARRAY) {
        if (cur_need(c, type_sizes[type], kv->key))
            return -1;
        kv->data = c->p + c->off;
        c->off += type_sizes[type];
        if (type == GGUF_TYPE_BOOL && kv->data[0] > 1)
            return kerr_set(c->err, "offset %zu: key '%s': bool value %u", c->off - 1, kv->key,
                            kv->data[0]);
        return 0;
    }
    uint64_t elem, n;
    at = c->off;
    if (cur_le(c, 4, &elem, "array element type") || cur_le(c, 8, &n, "array length"))
        return -1;
    if (elem > GGUF_TYPE_F64 || elem == GGUF_TYPE_ARRAY)
        return kerr_set(c->err, "offset %zu: key '%s': array of %s is not supported", at, kv->key,
                        elem == GGUF_TYPE_ARRAY ? "arrays" : "unknown type");
    kv->elem = (enum gguf_type)elem;
    kv->n = n;
    size_t left = c->n - c->off;
    if (elem == GGUF_TYPE_STRING) {
        if (n > left / 8)
            return kerr_set(c->err,
                            "offset %zu: key '%s': %" PRIu64
                            " strings cannot fit in the %zu bytes left",
                            at, kv->key, n, left);
        kv->strs = xmalloc((size_t)(n ? n : 1) * sizeof(struct gguf_str));
        for (uint64_t i = 0; i < n; i++)
            if (cur_str(c, &kv->strs[i], kv->key))
                return -1;
        return 0;
    }
    if (n > left / type_sizes[elem])
        return kerr_set(c->err,
                        "offset %zu: key '%s': %" PRIu64 " %s elements exceed the %zu bytes left",
                        at, kv->key, n, type_names[elem], left);
    kv->data = c->p + c->off;
    c->off += (size_t)n * type_sizes[elem];
    if (elem == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (kv->data[i] > 1)
                return kerr_set(c->err, "offset %zu: key '%s': bool element %" PRIu64 " is %u",
                                (size_t)(kv->data + i - c->p), kv->key, i, kv->data[i]);
    return 0;
}

static int
parse_tensor(struct cursor *c, struct gguf_tensor *t)
{
    size_t at = c->off;
    if (cur_name(c, &t->name, "tensor name"))
        return -1;
    if (strlen(t->name) > GGUF_MAX_NAME)
        return kerr_set(c->err, "offset %zu: tensor name '%.20s...' longer than %d bytes", at,
                        t->name, GGUF_MAX_NAME);
    uint64_t nd, v;
    at = c->off;
    if (cur_le(c, 4, &nd, "n_dims"))
        return -1;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return kerr_set(c->err, "offset %zu: tensor '%s': %" PRIu64 " dimensions (1..%d)", at,
                        t->name, nd, GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    t->n_elem = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        at = c->off;
        if (cur_le(c, 8, &v, "dimension"))
            return -1;
        if (v > INT64_MAX)
            return kerr_set(c->err, "offset %zu: tensor '%s': negative dimension", at, t->name);
        t->ne[d] = (int64_t)v;
        if (t->ne[d] && t->n_elem > INT64_MAX / t->ne[d])
            return kerr_set(c->err, "offset %zu: tensor '%s': element count overflows", at,
                            t->name);
        t->n_elem *= t->ne[d];
    }
    at = c->off;
    if (cur_le(c, 4, &v, "tensor type"))
        return -1;
    int ti = v <= 1000 ? ggml_type_index((int)v) : -1;
    if (ti < 0)
        return kerr_set(c->err, "offset %zu: tensor '%s': unknown ggml type %" PRIu64, at, t->name,
                        v);
    t->type = (int)v;
    if (t->ne[0] % ggml_types[ti].blck)
        return kerr_set(c->err,
                        "offset %zu: tensor '%s': row length %" PRId64
                        " is not a multiple of %s's block of %d",
                        at, t->name, t->ne[0], ggml_types[ti].name, ggml_types[ti].blck);
    // bytes = blocks * block size; n_elem <= INT64_MAX so this fits in 128 bits: check 64.
    uint64_t blocks = (uint64_t)t->n_elem / (uint64_t)ggml_types[ti].blck;
    if (blocks > UINT64_MAX / 2 / (uint64_t)ggml_types[ti].size)
        return kerr_set(c->err, "offset %zu: tensor '%s': size overflows", at, t->name);
    t->nbytes = blocks * (uint64_t)ggml_types[ti].size;
    if (cur_le(c, 8, &t->offset, "tensor offset"))
        return -1;
    return 0;
}

static int
parse(struct gguf_file *g, struct kerr *err)
{
    struct cursor c = {.p = g->image, .n = g->size, .err = err};
    uint64_t version, nt, nkv;
    if (g->size < 4 || memcmp(g->image, "GGUF", 4) != 0)
        return kerr_set(err, "offset 0: not a GGUF file (bad magic)");
    c.off = 4;
    if (cur_le(&c, 4, &version, "version"))
        return -1;
    if (version == 1)
        return kerr_set(err, "offset 4: GGUF version 1 is not supported (use version 3)");
    if (version != 2 && version != 3)
        return kerr_set(err, "offset 4: unsupported GGUF version %" PRIu64 "%s", version,
                        (version & 0xffff) == 0 ? " (big-endian file?)" : "");
    g->version = (uint32_t)version;
    if (cur_le(&c, 8, &nt, "tensor count") || cur_le(&c, 8, &nkv, "KV count"))
        return -1;
    size_t left = c.n - c.off;
    // Smallest encodings: a KV is 8 (key) + 4 + 1 bytes; a tensor info 8 + 1 + 4 + 8 + 4 + 8.
    if (nkv > left / 13)
        return kerr_set(err, "offset 16: KV count %" PRIu64 " cannot fit in the %zu bytes left",
                        nkv, left);
    if (nt > left / 33)
        return kerr_set(err, "offset 8: tensor count %" PRIu64 " cannot fit in the %zu bytes left",
                        nt, left);
    g->kv = xcalloc((size_t)(nkv ? nkv : 1), sizeof(struct gguf_kv));
    g->n_kv = nkv;
    for (uint64_t i = 0; i < nkv; i++)
        if (parse_kv(&c, &g->kv[i]))
            return -1;
    char **names = xmalloc((size_t)(nkv > nt ? nkv : nt ? nt : 1) * sizeof(char *));
    for (uint64_t i = 0; i < nkv; i++)
        names[i] = g->kv[i].key;
    const char *dup = find_duplicate(names, (size_t)nkv);
    if (dup) {
        kerr_set(err, "duplicate key '%s'", dup);
        free(names);
        return -1;
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *al = gguf_find_kv(g, "general.alignment");
    if (al) {
        uint32_t a = 0;
        if (al->type == GGUF_TYPE_U32)
            memcpy(&a, al->data, 4);
        if (a == 0 || (a & (a - 1))) {
            kerr_set(err, "offset %" PRIu64 ": general.alignment must be a u32 power of two",
                     al->offset);
            free(names);
            return -1;
        }
        g->alignment = a;
    }

    left = c.n - c.off;
    if (nt > left / 33) {
        kerr_set(err, "offset %zu: tensor count %" PRIu64 " cannot fit in the %zu bytes left",
                 c.off, nt, left);
        free(names);
        return -1;
    }
    g->tensors = xcalloc((size_t)(nt ? nt : 1), sizeof(struct gguf_tensor));
    g->n_tensors = nt;
    for (uint64_t i = 0; i < nt; i++) {
        if (parse_tensor(&c, &g->tensors[i])) {
            free(names);
            return -1;
        }
        names[i] = g->tensors[i].name;
    }
    dup = find_duplicate(names, (size_t)nt);
    free(names);
    if (dup)
        return kerr_set(err, "duplicate tensor '%s'", dup);

    g->data_offset = pad_to(c.off, g->alignment);
    uint64_t expect = 0;
    for (uint64_t i = 0; i < nt; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        if (t->offset != expect)
            return kerr_set(err, "tensor '%s': data offset %" PRIu64 ", expected %" PRIu64, t->name,
                            t->offset, expect);
        if (g->data_offset > g->size || t->nbytes > g->size - g->data_offset ||
            t->offset > g->size - g->data_offset - t->nbytes)
            return kerr_set(err,
                            "tensor '%s': data at offset %" PRIu64 " (%" PRIu64
                            " bytes) extends past the end of the file (%zu bytes)",
                            t->name, g->data_offset + t->offset, t->nbytes, g->size);
        t->data = g->image + g->data_offset + t->offset;
        expect = pad_to(t->offset + t->nbytes, g->alignment);
    }
    return 0;
}

int
gguf_open_mem(struct gguf_file *g, const void *p, size_t n, struct kerr *err)
{
    memset(g, 0, sizeof *g);
    g->image = p;
    g->size = n;
    if (parse(g, err)) {
        gguf_close(g);
        return -1;
    }
    return 0;
}

int
gguf_open(struct gguf_file *g, const char *path, struct kerr *err)
{
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kerr_set(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        kerr_set(err, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return kerr_set(err, "%s: not a regular file", path);
    }
    if (st.st_size < 4) {
        close(fd);
        return kerr_set(err, "%s: offset 0: not a GGUF file (%lld bytes)", path,
                        (long long)st.st_size);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return kerr_set(err, "%s: mmap: %s", path, strerror(errno));
    g->image = m;
    g->size = (size_t)st.st_size;
    g->mapped = true;
    if (parse(g, err)) {
        gguf_close(g);
        return kerr_prefix(err, "%s", path);
    }
    return 0;
}

const struct gguf_kv *
gguf_find_kv(const struct gguf_file *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0)
            return &g->kv[i];
    return NULL;
}

const struct gguf_tensor *
gguf_find_tensor(const struct gguf_file *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}

static uint64_t
load_le(const uint8_t *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)p[i] << (8 * i);
    return x;
}

// Converts one fixed-size value of type `type` at p to int64. Returns 0 or -1 (not an
// integer type, or a u64 above INT64_MAX).
static int
value_int(enum gguf_type type, const uint8_t *p, int64_t *out)
{
    uint64_t u;
    switch (type) {
    case GGUF_TYPE_U8:
    case GGUF_TYPE_BOOL:
        *out = p[0];
        return 0;
    case GGUF_TYPE_I8:
        *out = (int8_t)p[0];
        return 0;
    case GGUF_TYPE_U16:
        *out = (uint16_t)load_le(p, 2);
        return 0;
    case GGUF_TYPE_I16:
        *out = (int16_t)load_le(p, 2);
        return 0;
    case GGUF_TYPE_U32:
        *out = (uint32_t)load_le(p, 4);
        return 0;
    case GGUF_TYPE_I32:
        *out = (int32_t)load_le(p, 4);
        return 0;
    case GGUF_TYPE_I64:
        *out = (int64_t)load_le(p, 8);
        return 0;
    case GGUF_TYPE_U64:
        u = load_le(p, 8);
        if (u > INT64_MAX)
            return -1;
        *out = (int64_t)u;
        return 0;
    default:
        return -1;
    }
}

static int
value_float(enum gguf_type type, const uint8_t *p, double *out)
{
    if (type == GGUF_TYPE_F32) {
        uint32_t u = (uint32_t)load_le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        return 0;
    }
    if (type == GGUF_TYPE_F64) {
        uint64_t u = load_le(p, 8);
        memcpy(out, &u, 8);
        return 0;
    }
    return -1;
}

int
gguf_kv_int(const struct gguf_kv *kv, int64_t *out, struct kerr *err)
{
    if (kv->type == GGUF_TYPE_ARRAY || kv->type == GGUF_TYPE_STRING ||
        value_int(kv->type, kv->data, out))
        return kerr_set(err, "key '%s': expected an integer, found %s", kv->key,
                        gguf_type_name(kv->type));
    return 0;
}

int
gguf_kv_float(const struct gguf_kv *kv, double *out, struct kerr *err)
{
    if (kv->type == GGUF_TYPE_ARRAY || kv->type == GGUF_TYPE_STRING ||
        value_float(kv->type, kv->data, out))
        return kerr_set(err, "key '%s': expected a float, found %s", kv->key,
                        gguf_type_name(kv->type));
    return 0;
}

int
gguf_kv_str(const struct gguf_kv *kv, struct gguf_str *out, struct kerr *err)
{
    if (kv->type != GGUF_TYPE_STRING)
        return kerr_set(err, "key '%s': expected a string, found %s", kv->key,
                        gguf_type_name(kv->type));
    *out = kv->strs[0];
    return 0;
}

static int
arr_check(const struct gguf_kv *kv, uint64_t i, struct kerr *err)
{
    if (kv->type != GGUF_TYPE_ARRAY)
        return kerr_set(err, "key '%s': expected an array, found %s", kv->key,
                        gguf_type_name(kv->type));
    if (i >= kv->n)
        return kerr_set(err, "key '%s': index %" PRIu64 " past the array's %" PRIu64 " elements",
                        kv->key, i, kv->n);
    return 0;
}

int
gguf_kv_arr_int(const struct gguf_kv *kv, uint64_t i, int64_t *out, struct kerr *err)
{
    if (arr_check(kv, i, err))
        return -1;
    if (kv->elem == GGUF_TYPE_STRING ||
        value_int(kv->elem, kv->data + i * type_sizes[kv->elem], out))
        return kerr_set(err, "key '%s': element %" PRIu64 ": expected an integer, found %s",
                        kv->key, i, gguf_type_name(kv->elem));
    return 0;
}

int
gguf_kv_arr_float(const struct gguf_kv *kv, uint64_t i, double *out, struct kerr *err)
{
    if (arr_check(kv, i, err))
        return -1;
    if (kv->elem == GGUF_TYPE_STRING ||
        value_float(kv->elem, kv->data + i * type_sizes[kv->elem], out))
        return kerr_set(err, "key '%s': element %" PRIu64 ": expected a float, found %s", kv->key,
                        i, gguf_type_name(kv->elem));
    return 0;
}

int
gguf_kv_arr_str(const struct gguf_kv *kv, uint64_t i, struct gguf_str *out, struct kerr *err)
{
    if (arr_check(kv, i, err))
        return -1;
    if (kv->elem != GGUF_TYPE_STRING)
        return kerr_set(err, "key '%s': expected an array of strings, found %s", kv->key,
                        gguf_type_name(kv->elem));
    *out = kv->strs[i];
    return 0;
}

static const struct gguf_kv *
find_or_err(const struct gguf_file *g, const char *key, struct kerr *err)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        kerr_set(err, "key '%s': missing", key);
    return kv;
}

int
gguf_get_int(const struct gguf_file *g, const char *key, int64_t *out, struct kerr *err)
{
    const struct gguf_kv *kv = find_or_err(g, key, err);
    return kv ? gguf_kv_int(kv, out, err) : -1;
}

int
gguf_get_float(const struct gguf_file *g, const char *key, double *out, struct kerr *err)
{
    const struct gguf_kv *kv = find_or_err(g, key, err);
    return kv ? gguf_kv_float(kv, out, err) : -1;
}

int
gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out, struct kerr *err)
{
    const struct gguf_kv *kv = find_or_err(g, key, err);
    return kv ? gguf_kv_str(kv, out, err) : -1;
}

int
gguf_tensor_to_f32(const struct gguf_tensor *t, float *out, struct kerr *err)
{
    if (!quant_type_known(t->type) || t->type == QTYPE_NF4)
        return kerr_set(err, "tensor '%s': cannot dequantize type %s", t->name,
                        gguf_tensor_type_name(t->type));
    int64_t rows = t->ne[0] ? t->n_elem / t->ne[0] : 0;
    size_t rs = quant_row_size(t->type, t->ne[0]);
    for (int64_t r = 0; r < rows; r++)
        quant_row_dequantize(t->type, t->data + (size_t)r * rs, out + r * t->ne[0], t->ne[0]);
    return 0;
}

// SPDX-License-Identifier: MIT
// safetensors: the reader validates the whole header before any data is used; the writer
// builds the header once with the final offsets, pads it to 8 bytes and streams the data.
// (Layout and checks in safetensors.h.)
#include "safetensors.h"

#include "cli.h"
#include "half.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [ST_F32] = {"F32", 4},  [ST_F16] = {"F16", 2},         [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8},  [ST_I64] = {"I64", 8},         [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},           [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_U16] = {"U16", 2},        [ST_U32] = {"U32", 4},
    [ST_U64] = {"U64", 8},  [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *
st_dtype_name(enum st_dtype d)
{
    return dtypes[d].name;
}

size_t
st_dtype_size(enum st_dtype d)
{
    return dtypes[d].size;
}

static void
st_free_tensors(struct st_file *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->metadata_json);
    f->tensors = NULL;
    f->metadata_json = NULL;
    f->n = 0;
}

// Reads a JSON array of non-negative integers into out[max]; returns the count or -1.
static int
read_uints(const struct json_val *v, int64_t *out, int max)
{
    if (v->type != JSON_ARRAY)
        return -1;
    struct json_iter it;
    json_iter_init(&it, v);
    int n = 0;
    while (json_iter_next(&it)) {
        int64_t x;
        if (n == max || json_int(&it.val, &x) < 0 || x < 0)
            return -1;
        out[n++] = x;
    }
    return n;
}

static int
cmp_begin(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

// One tensor entry: fills t (name already set). -1 with err.
static int
parse_entry(struct st_tensor *t, const struct json_val *v, size_t data_size, const char *fname,
            struct kerr *err)
{
    if (v->type != JSON_OBJECT)
        return kerr_set(err, "%s: tensor '%s': entry is not an object", fname, t->name);
    struct json_val dt, shape, offs;
    if (!json_val_member(v, "dtype", 5, &dt) || dt.type != JSON_STRING)
        return kerr_set(err, "%s: tensor '%s': missing or non-string dtype", fname, t->name);
    if (!json_val_member(v, "shape", 5, &shape))
        return kerr_set(err, "%s: tensor '%s': missing shape", fname, t->name);
    if (!json_val_member(v, "data_offsets", 12, &offs))
        return kerr_set(err, "%s: tensor '%s': missing data_offsets", fname, t->name);
    size_t k = 0;
    for (; k < KILN_ARRAY_LEN(dtypes); k++)
        if (json_str_eq(&dt, dtypes[k].name, strlen(dtypes[k].name)))
            break;
    if (k == KILN_ARRAY_LEN(dtypes))
        return kerr_set(err, "%s: tensor '%s': unknown dtype %.*s", fname, t->name,
                        (int)(dt.raw_len < 40 ? dt.raw_len : 40), dt.raw);
    t->dtype = (enum st_dtype)k;
    int nd = read_uints(&shape, t->shape, ST_MAX_DIMS);
    if (nd < 0)
        return kerr_set(err, "%s: tensor '%s': shape must be an array of at most %d "
                             "non-negative integers", fname, t->name, ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        if (t->shape[i] != 0 && numel > UINT64_MAX / 16 / (uint64_t)t->shape[i])
            return kerr_set(err, "%s: tensor '%s': shape too large", fname, t->name);
        numel *= (uint64_t)t->shape[i];
    }
    t->numel = numel;
    int64_t o[2];
    if (read_uints(&offs, o, 2) != 2 || o[0] > o[1])
        return kerr_set(err, "%s: tensor '%s': data_offsets must be [begin, end] with "
                             "begin <= end", fname, t->name);
    t->begin = (uint64_t)o[0];
    t->end = (uint64_t)o[1];
    uint64_t want = numel * dtypes[k].size;
    if (t->end - t->begin != want)
        return kerr_set(err, "%s: tensor '%s': data_offsets [%llu, %llu] do not match %s "
                             "shape (%llu bytes)", fname, t->name,
                        (unsigned long long)t->begin, (unsigned long long)t->end,
                        dtypes[k].name, (unsigned long long)want);
    if (t->end > data_size)
        return kerr_set(err, "%s: tensor '%s': data_offsets end %llu beyond the data (%zu "
                             "bytes)", fname, t->name, (unsigned long long)t->end, data_size);
    return 0;
}

int
st_parse(struct st_file *f, const void *bytes, size_t n, const char *name, struct kerr *err)
{
    memset(f, 0, sizeof *f);
    f->base = bytes;
    f->size = n;
    if (n < 8)
        return kerr_set(err, "%s: too short for a safetensors file (%zu bytes)", name, n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | f->base[i];
    if (hlen > ST_MAX_HEADER)
        return kerr_set(err, "%s: header length %llu exceeds the 100 MB limit", name,
                        (unsigned long long)hlen);
    if (hlen > n - 8)
        return kerr_set(err, "%s: header length %llu beyond the end of the file (%zu bytes)",
                        name, (unsigned long long)hlen, n);
    const char *h = (const char *)f->base + 8;
    f->data = f->base + 8 + hlen;
    f->data_size = n - 8 - (size_t)hlen;
    struct json_val root;
    struct json_error je;
    if (json_parse_value(h, (size_t)hlen, &root, &je) < 0)
        return kerr_set(err, "%s: header: invalid JSON at byte %zu: %s", name, 8 + je.offset,
                        je.msg);
    if (root.type != JSON_OBJECT)
        return kerr_set(err, "%s: header is not a JSON object", name);
    struct json_iter it;
    json_iter_init(&it, &root);
    size_t cap = 0;
    struct buf key = {0};
    while (json_iter_next(&it)) {
        buf_reset(&key);
        json_unescape(it.key, it.key_len, &key);
        if (strcmp(key.p ? key.p : "", "__metadata__") == 0) {
            if (it.val.type != JSON_OBJECT) {
                buf_free(&key);
                st_free_tensors(f);
                return kerr_set(err, "%s: __metadata__ is not an object", name);
            }
            f->metadata_json = xstrndup(it.val.raw, it.val.raw_len);
            continue;
        }
        if (f->n == cap) {
            cap = cap ? cap * 2 : 64;
            f->tensors = xrealloc(f->tensors, cap * sizeof *f->tensors);
        }
        struct st_tensor *t = &f->tensors[f->n++];
        memset(t, 0, sizeof *t);
        t->name = xstrdup(key.p ? key.p : "");
        if (parse_entry(t, &it.val, f->data_size, name, err) < 0) {
            buf_free(&key);
            st_free_tensors(f);
            return -1;
        }
    }
    buf_free(&key);
    // The byte ranges must tile the data exactly.
    const struct st_tensor **order = xmalloc((f->n + 1) * sizeof *order);
    for (size_t i = 0; i < f->n; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->n, sizeof *order, cmp_begin);
    uint64_t at = 0;
    int rc = 0;
    for (size_t i = 0; i < f->n && rc == 0; i++) {
        if (order[i]->begin != at)
            rc = kerr_set(err, "%s: tensor '%s': data starts at %llu, expected %llu (%s)", name,
                          order[i]->name, (unsigned long long)order[i]->begin,
                          (unsigned long long)at,
                          order[i]->begin > at ? "gap in the data" : "overlaps another tensor");
        at = order[i]->end;
    }
    if (rc == 0 && at != f->data_size)
        rc = kerr_set(err, "%s: tensors cover %llu bytes of data but the file holds %zu", name,
                      (unsigned long long)at, f->data_size);
    free(order);
    if (rc < 0)
        st_free_tensors(f);
    return rc;
}

int
st_open(struct st_file *f, const char *path, struct kerr *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kerr_set(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return kerr_set(err, "%s: %s", path, S_ISREG(st.st_mode) ? strerror(e) : "not a file");
    }
    size_t n = (size_t)st.st_size;
    void *p = n ? mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (n && p == MAP_FAILED)
        return kerr_set(err, "%s: mmap: %s", path, strerror(errno));
    if (st_parse(f, p, n, path, err) < 0) {
        if (n)
            munmap(p, n);
        memset(f, 0, sizeof *f);
        return -1;
    }
    f->mapped = true;
    return 0;
}

void
st_close(struct st_file *f)
{
    st_free_tensors(f);
    if (f->mapped && f->size)
        munmap((void *)f->base, f->size);
    memset(f, 0, sizeof *f);
}

const struct st_tensor *
st_find(const struct st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

int
st_read_f32(const struct st_file *f, const struct st_tensor *t, float *out, struct kerr *err)
{
    const uint8_t *p = f->data + t->begin;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, p, (size_t)t->numel * 4);
        return 0;
    case ST_F16:
    case ST_BF16:
        for (uint64_t i = 0; i < t->numel; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = t->dtype == ST_F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
        return 0;
    default:
        return kerr_set(err, "tensor '%s': dtype %s cannot be loaded as float (F32, F16 or "
                             "BF16 only)", t->name, st_dtype_name(t->dtype));
    }
}

int
st_write(const char *path, const struct st_out *t, size_t n, enum st_dtype dtype,
         const char *const *meta, struct kerr *err)
{
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return kerr_set(err, "%s: can only write F32, F16 or BF16", path);
    size_t es = st_dtype_size(dtype);
    struct buf h = {0};
    struct json_writer w;
    json_writer_init(&w, &h);
    jw_obj_begin(&w);
    if (meta && meta[0]) {
        jw_key(&w, "__metadata__");
        jw_obj_begin(&w);
        for (size_t i = 0; meta[i] && meta[i + 1]; i += 2) {
            jw_key(&w, meta[i]);
            jw_str(&w, meta[i + 1]);
        }
        jw_obj_end(&w);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t numel = 1;
        jw_key(&w, t[i].name);
        jw_obj_begin(&w);
        jw_key(&w, "dtype");
        jw_str(&w, st_dtype_name(dtype));
        jw_key(&w, "shape");
        jw_arr_begin(&w);
        for (int d = 0; d < t[i].ndim; d++) {
            jw_int(&w, t[i].shape[d]);
            numel *= (uint64_t)t[i].shape[d];
        }
        jw_arr_end(&w);
        jw_key(&w, "data_offsets");
        jw_arr_begin(&w);
        jw_uint(&w, off);
        jw_uint(&w, off + numel * es);
        jw_arr_end(&w);
        jw_obj_end(&w);
        off += numel * es;
    }
    jw_obj_end(&w);
    while (h.len % 8)
        buf_putc(&h, ' ');

    struct buf tmp = {0};
    buf_printf(&tmp, "%s.tmp", path);
    int slot = cli_tmp_register(tmp.p);
    FILE *fp = fopen(tmp.p, "wb");
    int rc = 0;
    if (!fp) {
        rc = kerr_set(err, "%s: %s", tmp.p, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(h.p, 1, h.len, fp);
    uint16_t chunk[4096];
    for (size_t i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= (uint64_t)t[i].shape[d];
        if (dtype == ST_F32) {
            fwrite(t[i].data, 4, (size_t)numel, fp);
            continue;
        }
        for (uint64_t j = 0; j < numel; j += 4096) {
            size_t m = numel - j < 4096 ? (size_t)(numel - j) : 4096;
            for (size_t k = 0; k < m; k++)
                chunk[k] = dtype == ST_F16 ? f32_to_f16(t[i].data[j + k])
                                           : f32_to_bf16(t[i].data[j + k]);
            fwrite(chunk, 2, m, fp);
        }
    }
    if (ferror(fp) | (fclose(fp) != 0)) {
        rc = kerr_set(err, "%s: write failed: %s", tmp.p, strerror(errno));
        unlink(tmp.p);
    } else if (rename(tmp.p, path) < 0) {
        rc = kerr_set(err, "%s: rename: %s", path, strerror(errno));
        unlink(tmp.p);
    }
done:
    cli_tmp_forget(slot);
    buf_free(&tmp);
    buf_free(&h);
    return rc;
}

// SPDX-License-Identifier: MIT
// checkpoint: config.json and model.safetensors of a Hugging Face Llama directory (see
// checkpoint.h for what is read, refused and ignored).
#include "checkpoint.h"

#include "cli.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- config.json -------------------------------------------------------------------------

static int
cfg_int(const struct json_obj *o, const char *key, bool required, int64_t def, int64_t min,
        int64_t max, int *out, const char *name, struct kerr *err)
{
    const struct json_field *f = json_obj_get(o, key);
    int64_t v = def;
    if (!f || f->val.type == JSON_NULL) {
        if (required)
            return kerr_set(err, "%s: missing %s", name, key);
    } else if (json_int(&f->val, &v) < 0) {
        return kerr_set(err, "%s: %s must be an integer", name, key);
    }
    if (v < min || v > max)
        return kerr_set(err, "%s: %s %lld out of range (%lld..%lld)", name, key, (long long)v,
                        (long long)min, (long long)max);
    *out = (int)v;
    return 0;
}

static int
cfg_double(const struct json_obj *o, const char *key, double def, double *out, const char *name,
           struct kerr *err)
{
    const struct json_field *f = json_obj_get(o, key);
    *out = def;
    if (f && f->val.type != JSON_NULL && (json_double(&f->val, out) < 0 || !(*out > 0)))
        return kerr_set(err, "%s: %s must be a positive number", name, key);
    return 0;
}

// bos/eos: an integer, null, or a list of integers (the first is taken).
static int
cfg_token(const struct json_obj *o, const char *key, int *out, const char *name,
          struct kerr *err)
{
    const struct json_field *f = json_obj_get(o, key);
    *out = -1;
    if (!f || f->val.type == JSON_NULL)
        return 0;
    struct json_val v = f->val;
    if (v.type == JSON_ARRAY) {
        struct json_iter it;
        json_iter_init(&it, &f->val);
        if (!json_iter_next(&it))
            return 0;
        v = it.val;
    }
    int64_t x;
    if (json_int(&v, &x) < 0 || x < 0 || x > INT32_MAX)
        return kerr_set(err, "%s: %s must be a non-negative integer", name, key);
    *out = (int)x;
    return 0;
}

static bool
field_is(const struct json_obj *o, const char *key, enum json_type t)
{
    const struct json_field *f = json_obj_get(o, key);
    return f && f->val.type == t;
}

int
ckpt_config_parse(struct model_config *c, const char *text, size_t n, const char *name,
                  struct kerr *err)
{
    memset(c, 0, sizeof *c);
    struct json_obj o;
    json_obj_init(&o);
    struct json_error je;
    int rc = -1;
    if (json_obj_parse(&o, text, n, &je) < 0) {
        kerr_set(err, "%s:1:%zu: invalid JSON: %s", name, je.offset + 1, je.msg);
        goto done;
    }
    const struct json_field *mt = json_obj_get(&o, "model_type");
    if (mt && !json_str_eq(&mt->val, "llama", 5)) {
        kerr_set(err, "%s: model_type %.*s is not supported (llama only)", name,
                 (int)(mt->val.raw_len < 40 ? mt->val.raw_len : 40), mt->val.raw);
        goto done;
    }
    const struct json_field *act = json_obj_get(&o, "hidden_act");
    if (act && !json_str_eq(&act->val, "silu", 4)) {
        kerr_set(err, "%s: hidden_act %.*s is not supported (silu only)", name,
                 (int)(act->val.raw_len < 40 ? act->val.raw_len : 40), act->val.raw);
        goto done;
    }
    if (json_obj_get(&o, "rope_scaling") && !field_is(&o, "rope_scaling", JSON_NULL)) {
        kerr_set(err, "%s: rope_scaling is not supported", name);
        goto done;
    }
    if (field_is(&o, "attention_bias", JSON_TRUE) || field_is(&o, "mlp_bias", JSON_TRUE)) {
        kerr_set(err, "%s: attention_bias/mlp_bias are not supported (Llama has no biases)",
                 name);
        goto done;
    }
    if (cfg_int(&o, "vocab_size", true, 0, 1, 1 << 24, &c->vocab, name, err) < 0 ||
        cfg_int(&o, "hidden_size", true, 0, 1, 65536, &c->dim, name, err) < 0 ||
        cfg_int(&o, "intermediate_size", true, 0, 1, 262144, &c->ffn, name, err) < 0 ||
        cfg_int(&o, "num_hidden_layers", true, 0, 1, 1024, &c->n_layers, name, err) < 0 ||
        cfg_int(&o, "num_attention_heads", true, 0, 1, 1024, &c->n_heads, name, err) < 0 ||
        cfg_int(&o, "num_key_value_heads", false, c->n_heads, 1, 1024, &c->n_kv_heads, name,
                err) < 0 ||
        cfg_int(&o, "max_position_embeddings", false, 2048, 1, 1 << 20, &c->max_seq, name,
                err) < 0 ||
        cfg_double(&o, "rms_norm_eps", 1e-6, &c->norm_eps, name, err) < 0 ||
        cfg_double(&o, "rope_theta", 10000.0, &c->rope_theta, name, err) < 0 ||
        cfg_token(&o, "bos_token_id", &c->bos_id, name, err) < 0 ||
        cfg_token(&o, "eos_token_id", &c->eos_id, name, err) < 0)
        goto done;
    c->tie_embeddings = field_is(&o, "tie_word_embeddings", JSON_TRUE);
    int head_dim = 0;
    if (cfg_int(&o, "head_dim", false, 0, 0, 65536, &head_dim, name, err) < 0)
        goto done;
    if (head_dim && head_dim * c->n_heads != c->dim) {
        kerr_set(err, "%s: head_dim %d differs from hidden_size / num_attention_heads",
                 name, head_dim);
        goto done;
    }
    if (model_config_check(c, err) < 0) {
        kerr_prefix(err, "%s", name);
        goto done;
    }
    rc = 0;
done:
    json_obj_free(&o);
    return rc;
}

void
ckpt_config_format(const struct model_config *c, struct buf *out)
{
    struct json_writer w;
    json_writer_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "architectures");
    jw_arr_begin(&w);
    jw_str(&w, "LlamaForCausalLM");
    jw_arr_end(&w);
    jw_key(&w, "attention_bias");
    jw_bool(&w, false);
    jw_key(&w, "bos_token_id");
    c->bos_id >= 0 ? jw_int(&w, c->bos_id) : jw_null(&w);
    jw_key(&w, "eos_token_id");
    c->eos_id >= 0 ? jw_int(&w, c->eos_id) : jw_null(&w);
    jw_key(&w, "hidden_act");
    jw_str(&w, "silu");
    jw_key(&w, "hidden_size");
    jw_int(&w, c->dim);
    jw_key(&w, "initializer_range");
    jw_double(&w, 0.02);
    jw_key(&w, "intermediate_size");
    jw_int(&w, c->ffn);
    jw_key(&w, "max_position_embeddings");
    jw_int(&w, c->max_seq);
    jw_key(&w, "mlp_bias");
    jw_bool(&w, false);
    jw_key(&w, "model_type");
    jw_str(&w, "llama");
    jw_key(&w, "num_attention_heads");
    jw_int(&w, c->n_heads);
    jw_key(&w, "num_hidden_layers");
    jw_int(&w, c->n_layers);
    jw_key(&w, "num_key_value_heads");
    jw_int(&w, c->n_kv_heads);
    jw_key(&w, "rms_norm_eps");
    jw_double(&w, c->norm_eps);
    jw_key(&w, "rope_scaling");
    jw_null(&w);
    jw_key(&w, "rope_theta");
    jw_double(&w, c->rope_theta);
    jw_key(&w, "tie_word_embeddings");
    jw_bool(&w, c->tie_embeddings);
    jw_key(&w, "torch_dtype");
    jw_str(&w, "float32");
    jw_key(&w, "vocab_size");
    jw_int(&w, c->vocab);
    jw_obj_end(&w);
    buf_putc(out, '\n');
}

// ---- weights -----------------------------------------------------------------------------

int
ckpt_write_file(const char *path, const void *p, size_t n, struct kerr *err)
{
    struct buf tmp = {0};
    buf_printf(&tmp, "%s.tmp", path);
    int slot = cli_tmp_register(tmp.p);
    int rc = 0;
    FILE *f = fopen(tmp.p, "wb");
    if (!f) {
        rc = kerr_set(err, "%s: %s", tmp.p, strerror(errno));
    } else {
        size_t w = fwrite(p, 1, n, f);
        int bad = w != n || ferror(f);
        if ((fclose(f) != 0) | bad)
            rc = kerr_set(err, "%s: write failed: %s", tmp.p, strerror(errno));
        else if (rename(tmp.p, path) != 0)
            rc = kerr_set(err, "%s: %s", path, strerror(errno));
        if (rc < 0)
            unlink(tmp.p);
    }
    cli_tmp_forget(slot);
    buf_free(&tmp);
    return rc;
}

static void
shape_str(char *s, size_t n, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(s, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(s + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < n)
        snprintf(s + at, n - at, "]");
}

// The shard files of a checkpoint: model.safetensors, or the files named by
// model.safetensors.index.json's weight_map.
struct shards {
    struct st_file *f;
    char **names;
    size_t n;
};

static void
shards_free(struct shards *s)
{
    for (size_t i = 0; i < s->n; i++) {
        st_close(&s->f[i]);
        free(s->names[i]);
    }
    free(s->f);
    free(s->names);
    memset(s, 0, sizeof *s);
}

static int
shards_open(struct shards *s, const char *dir, struct kerr *err)
{
    memset(s, 0, sizeof *s);
    struct buf path = {0}, index = {0}, fname = {0};
    int rc = -1;
    buf_printf(&path, "%s/model.safetensors", dir);
    struct stat st;
    if (stat(path.p, &st) == 0 || errno != ENOENT) {
        s->f = xcalloc(1, sizeof *s->f);
        s->names = xcalloc(1, sizeof *s->names);
        if (st_open(&s->f[0], path.p, err) < 0) {
            free(s->f);
            free(s->names);
            memset(s, 0, sizeof *s);
            goto done;
        }
        s->names[0] = xstrdup("model.safetensors");
        s->n = 1;
        rc = 0;
        goto done;
    }
    buf_reset(&path);
    buf_printf(&path, "%s/model.safetensors.index.json", dir);
    if (read_file(path.p, 64u << 20, &index, err) < 0) {
        kerr_set(err, "%s: no model.safetensors (nor model.safetensors.index.json)", dir);
        goto done;
    }
    struct json_obj o;
    json_obj_init(&o);
    struct json_error je;
    struct json_val wm;
    if (json_obj_parse(&o, index.p, index.len, &je) < 0 ||
        !json_obj_path(&o, "weight_map", &wm) || wm.type != JSON_OBJECT) {
        kerr_set(err, "%s: not a safetensors index (object with weight_map)", path.p);
        json_obj_free(&o);
        goto done;
    }
    struct json_iter it;
    json_iter_init(&it, &wm);
    rc = 0;
    while (rc == 0 && json_iter_next(&it)) {
        buf_reset(&fname);
        if (it.val.type != JSON_STRING) {
            rc = kerr_set(err, "%s: weight_map values must be file names", path.p);
            break;
        }
        json_str(&it.val, &fname);
        if (strchr(fname.p, '/') || strcmp(fname.p, "..") == 0) {
            rc = kerr_set(err, "%s: shard name '%s' must be a plain file name", path.p, fname.p);
            break;
        }
        bool seen = false;
        for (size_t i = 0; i < s->n && !seen; i++)
            seen = strcmp(s->names[i], fname.p) == 0;
        if (seen)
            continue;
        s->f = xrealloc(s->f, (s->n + 1) * sizeof *s->f);
        s->names = xrealloc(s->names, (s->n + 1) * sizeof *s->names);
        struct buf sp = {0};
        buf_printf(&sp, "%s/%s", dir, fname.p);
        if (st_open(&s->f[s->n], sp.p, err) < 0)
            rc = -1;
        else
            s->names[s->n++] = xstrdup(fname.p);
        buf_free(&sp);
    }
    json_obj_free(&o);
    if (rc < 0)
        shards_free(s);
done:
    buf_free(&path);
    buf_free(&index);
    buf_free(&fname);
    return rc;
}

static bool
ignorable(const struct model *m, const char *name)
{
    size_t n = strlen(name), k = strlen("rotary_emb.inv_freq");
    if (n >= k && strcmp(name + n - k, "rotary_emb.inv_freq") == 0)
        return true;
    return m->cfg.tie_embeddings && strcmp(name, "lm_head.weight") == 0;
}

// Drops the resident pages of a mapped tensor's bytes (whole pages inside the range only);
// a later read faults them back in from the file.
static void
release_pages(const struct st_file *f, const struct st_tensor *t)
{
    if (!f->mapped)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)(f->data + t->begin), b = (uintptr_t)(f->data + t->end);
    a = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    b &= ~((uintptr_t)pg - 1);
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

int
ckpt_load(const char *dir, struct model *m, enum st_dtype *dtype_out, struct kerr *err)
{
    return ckpt_load_divert(dir, m, dtype_out, NULL, NULL, err);
}

int
ckpt_load_divert(const char *dir, struct model *m, enum st_dtype *dtype_out,
                 bool (*divert)(void *ctx, const struct model *m, int i, const float *data),
                 void *ctx, struct kerr *err)
{
    struct buf path = {0}, text = {0};
    struct model_config c;
    struct shards s = {0};
    bool inited = false;
    int rc = -1;
    buf_printf(&path, "%s/config.json", dir);
    if (read_file(path.p, 1u << 20, &text, err) < 0 ||
        ckpt_config_parse(&c, text.p, text.len, path.p, err) < 0)
        goto done;
    if (model_init(m, &c, err) < 0) {
        kerr_prefix(err, "%s", path.p);
        goto done;
    }
    inited = true;
    if (shards_open(&s, dir, err) < 0)
        goto done;
    char want[96], got[96];
    bool first = true;
    for (int i = 0; i < m->n_tensors; i++) {
        const struct model_tensor *mt = &m->tensors[i];
        const struct st_tensor *t = NULL;
        size_t k = 0;
        for (; k < s.n && !t; k++)
            t = st_find(&s.f[k], mt->name);
        shape_str(want, sizeof want, mt->ndim, mt->shape);
        if (!t) {
            kerr_set(err, "%s: missing tensor '%s' (config expects shape %s)", dir, mt->name,
                     want);
            goto done;
        }
        shape_str(got, sizeof got, t->ndim, t->shape);
        if (t->ndim != mt->ndim || t->shape[0] != mt->shape[0] ||
            (mt->ndim == 2 && t->shape[1] != mt->shape[1])) {
            kerr_set(err, "%s/%s: tensor '%s' has shape %s, config expects %s", dir,
                     s.names[k - 1], mt->name, got, want);
            goto done;
        }
        if (divert && divert(ctx, m, i, NULL)) {
            float *tmp = xmalloc(sizeof(float) * mt->numel);
            int r = st_read_f32(&s.f[k - 1], t, tmp, err);
            if (r == 0)
                divert(ctx, m, i, tmp);
            free(tmp);
            if (r < 0) {
                kerr_prefix(err, "%s/%s", dir, s.names[k - 1]);
                goto done;
            }
        } else if (st_read_f32(&s.f[k - 1], t, m->params + mt->offset, err) < 0) {
            kerr_prefix(err, "%s/%s", dir, s.names[k - 1]);
            goto done;
        }
        if (divert)
            release_pages(&s.f[k - 1], t);
        if (first && dtype_out)
            *dtype_out = t->dtype;
        first = false;
    }
    for (size_t k = 0; k < s.n; k++)
        for (size_t j = 0; j < s.f[k].n; j++) {
            const char *name = s.f[k].tensors[j].name;
            if (!model_tensor_find(m, name) && !ignorable(m, name)) {
                kerr_set(err, "%s/%s: unexpected tensor '%s' (not in a Llama model with this "
                              "config)", dir, s.names[k], name);
                goto done;
            }
        }
    rc = 0;
done:
    shards_free(&s);
    if (rc < 0 && inited)
        model_free(m);
    buf_free(&path);
    buf_free(&text);
    return rc;
}

int
ckpt_save(const char *dir, const struct model *m, enum st_dtype dtype, struct kerr *err)
{
    struct buf path = {0}, text = {0};
    int rc = -1;
    ckpt_config_format(&m->cfg, &text);
    buf_printf(&path, "%s/config.json", dir);
    if (ckpt_write_file(path.p, text.p, text.len, err) < 0)
        goto done;
    buf_reset(&text);
    struct json_writer w;
    json_writer_init(&w, &text);
    jw_obj_begin(&w);
    jw_key(&w, "_from_model_config");
    jw_bool(&w, true);
    jw_key(&w, "bos_token_id");
    m->cfg.bos_id >= 0 ? jw_int(&w, m->cfg.bos_id) : jw_null(&w);
    jw_key(&w, "eos_token_id");
    m->cfg.eos_id >= 0 ? jw_int(&w, m->cfg.eos_id) : jw_null(&w);
    jw_obj_end(&w);
    buf_putc(&text, '\n');
    buf_reset(&path);
    buf_printf(&path, "%s/generation_config.json", dir);
    if (ckpt_write_file(path.p, text.p, text.len, err) < 0)
        goto done;
    struct st_out *t = xcalloc((size_t)m->n_tensors, sizeof *t);
    for (int i = 0; i < m->n_tensors; i++) {
        t[i].name = m->tensors[i].name;
        t[i].ndim = m->tensors[i].ndim;
        t[i].shape[0] = m->tensors[i].shape[0];
        t[i].shape[1] = m->tensors[i].shape[1];
        t[i].data = m->params + m->tensors[i].offset;
    }
    static const char *const meta[] = {"format", "pt", NULL};
    buf_reset(&path);
    buf_printf(&path, "%s/model.safetensors", dir);
    rc = st_write(path.p, t, (size_t)m->n_tensors, dtype, meta, err);
    free(t);
done:
    buf_free(&path);
    buf_free(&text);
    return rc;
}

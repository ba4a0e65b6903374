// SPDX-License-Identifier: MIT
// lora: PEFT LoRA adapter directories — adapter_config.json (peft_type "LORA", r, lora_alpha,
// target_modules, use_rslora) and adapter_model.safetensors with tensors named
//   base_model.model.<HF module path>.lora_A.weight   [r, in]
//   base_model.model.<HF module path>.lora_B.weight   [out, r]
// — validated, checked against a base model and merged into it: W[out,in] += s · B · A with
// s = lora_alpha / r (lora_alpha / sqrt(r) when use_rslora), accumulated in double per
// element. Adapters whose layers differ (rank_pattern, alpha_pattern), fan_in_fan_out layers
// and trained biases are refused: merging them here would silently give another model.
// modules_to_save tensors (base_model.model.<HF name>, e.g. lm_head.weight) replace the base's
// tensor of that name when the config lists modules_to_save.
#include "json.h"
#include "qx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LORA_PREFIX "base_model.model."

static int
cfg_number(const struct json_val *root, const char *key, double *out, bool required,
           const char *name, struct kerr *err)
{
    struct json_val v;
    if (!json_val_member(root, key, strlen(key), &v) || v.type == JSON_NULL) {
        if (required)
            return kerr_set(err, "%s: missing \"%s\"", name, key);
        return 1;
    }
    if (json_double(&v, out))
        return kerr_set(err, "%s: \"%s\" is not a number", name, key);
    return 0;
}

// A pattern field ("rank_pattern") must be absent, null or {}.
static bool
cfg_empty_object(const struct json_val *root, const char *key)
{
    struct json_val v;
    if (!json_val_member(root, key, strlen(key), &v) || v.type == JSON_NULL)
        return true;
    if (v.type != JSON_OBJECT)
        return false;
    struct json_iter it;
    json_iter_init(&it, &v);
    return !json_iter_next(&it);
}

static int
lora_config_parse(struct qx_lora *l, const char *name, struct kerr *err)
{
    struct json_val root, v;
    struct json_error je;
    if (json_parse_value(l->config.p, l->config.len, &root, &je))
        return kerr_set(err, "%s:1:%zu: %s", name, je.offset + 1, je.msg);
    if (root.type != JSON_OBJECT)
        return kerr_set(err, "%s: not a JSON object", name);
    if (json_val_member(&root, "peft_type", 9, &v) && !json_str_eq(&v, "LORA", 4))
        return kerr_set(err, "%s: peft_type is not \"LORA\"", name);
    double r, alpha;
    if (cfg_number(&root, "r", &r, true, name, err) ||
        cfg_number(&root, "lora_alpha", &alpha, true, name, err))
        return -1;
    if (r < 1 || r > 65536 || r != floor(r))
        return kerr_set(err, "%s: \"r\" must be a positive integer", name);
    if (!isfinite(alpha))
        return kerr_set(err, "%s: \"lora_alpha\" is not finite", name);
    if (json_val_member(&root, "fan_in_fan_out", 14, &v) && v.type == JSON_TRUE)
        return kerr_set(err, "%s: fan_in_fan_out adapters are not supported", name);
    if (json_val_member(&root, "bias", 4, &v) && v.type == JSON_STRING && !json_str_eq(&v, "none", 4))
        return kerr_set(err, "%s: adapters with trained biases are not supported", name);
    if (!cfg_empty_object(&root, "rank_pattern") || !cfg_empty_object(&root, "alpha_pattern"))
        return kerr_set(err, "%s: per-layer rank_pattern/alpha_pattern are not supported", name);
    bool rslora = json_val_member(&root, "use_rslora", 10, &v) && v.type == JSON_TRUE;
    if (json_val_member(&root, "modules_to_save", 15, &v) && v.type == JSON_ARRAY) {
        struct json_iter it;
        json_iter_init(&it, &v);
        l->modules_to_save = json_iter_next(&it);
    }
    l->r = (int)r;
    l->alpha = alpha;
    l->scale = rslora ? alpha / sqrt(r) : alpha / r;
    return 0;
}

// Splits "base_model.model.X.lora_A.weight" into X ("...q_proj") and which ('A' or 'B').
static bool
lora_name_split(const char *name, char *module, size_t cap, char *which)
{
    size_t n = strlen(name), pl = strlen(LORA_PREFIX);
    const char *suf_a = ".lora_A.weight", *suf_b = ".lora_B.weight";
    size_t sl = strlen(suf_a);
    if (n <= pl + sl || strncmp(name, LORA_PREFIX, pl))
        return false;
    if (!strcmp(name + n - sl, suf_a))
        *which = 'A';
    else if (!strcmp(name + n - sl, suf_b))
        *which = 'B';
    else
        return false;
    size_t ml = n - sl - pl;
    if (ml + sizeof(".weight") > cap)
        return false;
    memcpy(module, name + pl, ml);
    memcpy(module + ml, ".weight", sizeof(".weight"));
    return true;
}

int
qx_lora_load(struct qx_lora *l, const char *dir, struct kerr *err)
{
    memset(l, 0, sizeof(*l));
    l->dir = xstrdup(dir);
    buf_init(&l->config);
    struct buf path;
    buf_init(&path);
    buf_printf(&path, "%s/adapter_config.json", dir);
    int rc = read_file(path.p, 1 << 20, &l->config, err);
    if (rc == 0)
        rc = lora_config_parse(l, path.p, err);
    buf_reset(&path);
    buf_printf(&path, "%s/adapter_model.safetensors", dir);
    if (rc == 0)
        rc = st_open(&l->st, path.p, err);
    if (rc) {
        buf_free(&path);
        return -1;
    }
    l->pairs = xcalloc(l->st.n ? l->st.n : 1, sizeof(*l->pairs));
    for (size_t i = 0; i < l->st.n && rc == 0; i++) {
        const struct st_tensor *t = &l->st.tensors[i];
        char module[MODEL_NAME_MAX];
        char which;
        if (!lora_name_split(t->name, module, sizeof(module), &which)) {
            size_t pl = strlen(LORA_PREFIX);
            if (strncmp(t->name, LORA_PREFIX, pl) == 0 && strlen(t->name) - pl < MODEL_NAME_MAX &&
                l->modules_to_save) { // a module to save, whole
                snprintf(l->pairs[l->n_pairs].target, MODEL_NAME_MAX, "%s", t->name + pl);
                l->pairs[l->n_pairs++].full = t;
                continue;
            }
            rc = kerr_set(err, "%s: tensor '%s' is not a LoRA weight (%s*.lora_A/B.weight)",
                          path.p, t->name, LORA_PREFIX);
            break;
        }
        if (t->ndim != 2 || (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)) {
            rc = kerr_set(err, "%s: tensor '%s' must be a 2-D F32/F16/BF16 matrix", path.p,
                          t->name);
            break;
        }
        int k = 0;
        while (k < l->n_pairs && strcmp(l->pairs[k].target, module))
            k++;
        if (k == l->n_pairs) {
            snprintf(l->pairs[k].target, MODEL_NAME_MAX, "%s", module);
            l->n_pairs++;
        }
        const struct st_tensor **slot = which == 'A' ? &l->pairs[k].a : &l->pairs[k].b;
        if (*slot)
            rc = kerr_set(err, "%s: duplicate tensor '%s'", path.p, t->name);
        *slot = t;
    }
    for (int k = 0; k < l->n_pairs && rc == 0; k++) {
        const struct qx_lora_pair *p = &l->pairs[k];
        if (p->full)
            continue;
        if (!p->a || !p->b) {
            rc = kerr_set(err, "%s: %s has lora_%c but no lora_%c", path.p, p->target,
                          p->a ? 'A' : 'B', p->a ? 'B' : 'A');
        } else if (p->a->shape[0] != l->r || p->b->shape[1] != l->r) {
            rc = kerr_set(err,
                          "%s: %s: lora_A [%lld, %lld] and lora_B [%lld, %lld] do not have rank "
                          "r = %d",
                          path.p, p->target, (long long)p->a->shape[0],
                          (long long)p->a->shape[1], (long long)p->b->shape[0],
                          (long long)p->b->shape[1], l->r);
        }
    }
    if (rc == 0 && l->n_pairs == 0)
        rc = kerr_set(err, "%s: no LoRA tensors", path.p);
    buf_free(&path);
    return rc;
}

void
qx_lora_free(struct qx_lora *l)
{
    if (l->st.base)
        st_close(&l->st);
    buf_free(&l->config);
    free(l->pairs);
    free(l->dir);
    memset(l, 0, sizeof(*l));
}

int
qx_lora_check(const struct qx_lora *l, const struct model *m, struct kerr *err)
{
    for (int k = 0; k < l->n_pairs; k++) {
        const struct qx_lora_pair *p = &l->pairs[k];
        const struct model_tensor *t = model_tensor_find(m, p->target);
        if (!t || t->ndim != 2)
            return kerr_set(err, "%s: adapter for another base: the model has no weight '%s'",
                            l->dir, p->target);
        if (p->full) {
            if (p->full->ndim != 2 || p->full->shape[0] != t->shape[0] ||
                p->full->shape[1] != t->shape[1])
                return kerr_set(err, "%s: adapter for another base: module to save %s is not "
                                "[%lld, %lld]", l->dir, p->target, (long long)t->shape[0],
                                (long long)t->shape[1]);
            continue;
        }
        if (p->a->shape[1] != t->shape[1] || p->b->shape[0] != t->shape[0])
            return kerr_set(err,
                            "%s: adapter for another base: %s is [%lld, %lld] but lora_B·lora_A "
                            "is [%lld, %lld]",
                            l->dir, p->target, (long long)t->shape[0], (long long)t->shape[1],
                            (long long)p->b->shape[0], (long long)p->a->shape[1]);
    }
    return 0;
}

int
qx_lora_merge(const struct qx_lora *l, struct model *m, struct kerr *err)
{
    if (qx_lora_check(l, m, err))
        return -1;
    for (int k = 0; k < l->n_pairs; k++) {
        const struct qx_lora_pair *p = &l->pairs[k];
        const struct model_tensor *t = model_tensor_find(m, p->target);
        if (p->full) { // modules_to_save: the trained tensor replaces the base's
            if (st_read_f32(&l->st, p->full, m->params + t->offset, err))
                return -1;
            continue;
        }
        int64_t out = t->shape[0], in = t->shape[1], r = l->r;
        float *a = xmalloc((size_t)(r * in) * sizeof(float)); // [r, in]
        float *b = xmalloc((size_t)(out * r) * sizeof(float)); // [out, r]
        double *row = xmalloc((size_t)in * sizeof(double));
        int rc = st_read_f32(&l->st, p->a, a, err) || st_read_f32(&l->st, p->b, b, err) ? -1 : 0;
        float *w = m->params + t->offset; // [out, in]
        for (int64_t i = 0; i < out && rc == 0; i++) {
            for (int64_t j = 0; j < in; j++)
                row[j] = 0;
            for (int64_t q = 0; q < r; q++) {
                double bq = b[i * r + q];
                const float *aq = a + q * in;
                for (int64_t j = 0; j < in; j++)
                    row[j] += bq * aq[j];
            }
            for (int64_t j = 0; j < in; j++)
                w[i * in + j] = (float)(w[i * in + j] + l->scale * row[j]);
        }
        free(a);
        free(b);
        free(row);
        if (rc)
            return -1;
    }
    return 0;
}

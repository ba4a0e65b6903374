// SPDX-License-Identifier: MIT
// peft: tensor selection patterns, AdamW with learning-rate multipliers, Half Fine-Tuning
// rounds and the DPO objective (see peft.h).
#include "peft.h"

#include "hash.h"
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- patterns ------------------------------------------------------------------------------

static int
select_layers(const struct model *m, const char *item, size_t n, bool *sel, struct kerr *err)
{
    const char *p = item + 7, *end = item + n; // after "layers."
    char *e;
    errno = 0;
    long a = strtol(p, &e, 10), b = a;
    if (e == p || errno)
        return kerr_set(err, "'%.*s': expected layers.A, layers.A-B or layers.A-B.NAME", (int)n,
                        item);
    if (e < end && *e == '-') {
        p = e + 1;
        b = strtol(p, &e, 10);
        if (e == p || errno)
            return kerr_set(err, "'%.*s': expected a layer number after '-'", (int)n, item);
    }
    if (a < 0 || b < a || b >= m->cfg.n_layers)
        return kerr_set(err, "'%.*s': layers %ld-%ld outside 0-%d", (int)n, item, a, b,
                        m->cfg.n_layers - 1);
    const char *sub = e < end && *e == '.' ? e + 1 : e;
    size_t sub_n = (size_t)(end - sub);
    if (e < end && *e != '.')
        return kerr_set(err, "'%.*s': unexpected '%c' after the layer numbers", (int)n, item, *e);
    bool any = false;
    for (long l = a; l <= b; l++)
        for (int k = 0; k < 9; k++) {
            int ti = model_layer_tensor(m, (int)l, k);
            const char *name = strchr(m->tensors[ti].name + strlen("model.layers."), '.') + 1;
            char want[MODEL_NAME_MAX];
            snprintf(want, sizeof want, "%.*s", (int)sub_n, sub);
            if (strstr(name, want)) {
                sel[ti] = true;
                any = true;
            }
        }
    if (!any)
        return kerr_set(err, "'%.*s' matches no tensor", (int)n, item);
    return 0;
}

int
peft_select(const struct model *m, const char *pattern, bool *sel, struct kerr *err)
{
    int L = m->cfg.n_layers;
    const char *p = pattern;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        char item[MODEL_NAME_MAX];
        if (n == 0 || n >= sizeof item)
            return kerr_set(err, "'%s': empty or overlong item", pattern);
        snprintf(item, sizeof item, "%.*s", (int)n, p);
        if (strcmp(item, "embed") == 0) {
            sel[0] = true;
        } else if (strcmp(item, "lm_head") == 0) {
            sel[m->cfg.tie_embeddings ? 0 : 2 + 9 * L] = true;
        } else if (strcmp(item, "norm") == 0) {
            sel[1 + 9 * L] = true;
        } else if (strncmp(item, "layers.", 7) == 0) {
            if (select_layers(m, item, n, sel, err) < 0)
                return -1;
        } else {
            bool any = false;
            for (int i = 0; i < m->n_tensors; i++)
                if (strstr(m->tensors[i].name, item)) {
                    sel[i] = true;
                    any = true;
                }
            if (!any)
                return kerr_set(err, "'%s' matches no tensor", item);
        }
        if (!c)
            return 0;
        p = c + 1;
    }
}

void
peft_adamw_update(struct adamw *o, struct model *m, struct kpool *p, float lr, const float *mult)
{
    if (!mult) {
        adamw_update(o, m, p, lr);
        return;
    }
    bool *orig = xmalloc(sizeof(bool) * (size_t)m->n_tensors);
    bool *done = xcalloc((size_t)m->n_tensors, sizeof(bool));
    memcpy(orig, m->frozen, sizeof(bool) * (size_t)m->n_tensors);
    int64_t step = o->step;
    // One pass per distinct multiplier, each over the tensors that have it, all at the same
    // step number (so the bias corrections are those of one update).
    for (int i = 0; i < m->n_tensors; i++) {
        if (done[i] || orig[i] || mult[i] == 0.0f)
            continue;
        float g = mult[i];
        for (int j = 0; j < m->n_tensors; j++) {
            m->frozen[j] = orig[j] || mult[j] != g;
            if (!m->frozen[j])
                done[j] = true;
        }
        o->step = step;
        adamw_update(o, m, p, lr * g);
    }
    o->step = step + 1;
    o->lr = lr;
    memcpy(m->frozen, orig, sizeof(bool) * (size_t)m->n_tensors);
    free(orig);
    free(done);
}

// ---- HFT -----------------------------------------------------------------------------------

// Marks k of the n tensors idx[] trainable (the rest frozen), uniformly at random.
static void
choose(struct model *m, struct model_rng *r, const int *idx, int n, int k)
{
    int perm[4];
    for (int i = 0; i < n; i++)
        perm[i] = idx[i];
    for (int i = 0; i < k; i++) { // partial Fisher-Yates
        int j = i + (int)(model_rng_next(r) % (uint64_t)(n - i));
        int tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    for (int i = 0; i < n; i++)
        m->frozen[perm[i]] = i >= k;
}

size_t
peft_hft_round(struct model *m, uint64_t seed, int64_t round)
{
    struct model_rng r;
    model_rng_seed(&r, hash_mix64(seed ^ hash_mix64((uint64_t)round + 0x48465431u)));
    int L = m->cfg.n_layers;
    m->frozen[0] = false; // embed (and the tied lm_head) always trains
    if (!m->cfg.tie_embeddings)
        m->frozen[2 + 9 * L] = false; // lm_head
    int nrm[1] = {1 + 9 * L};
    choose(m, &r, nrm, 1, (int)(model_rng_next(&r) & 1));
    // The layers whose MLP trains 2 of its 3 matrices: a uniform random half of them (for
    // an odd count, L/2 rounded down or up by a fair coin); the others train 1 of 3.
    int *order = xmalloc(sizeof(int) * (size_t)(L > 0 ? L : 1));
    bool *two = xcalloc((size_t)(L > 0 ? L : 1), sizeof(bool));
    for (int l = 0; l < L; l++)
        order[l] = l;
    int h = L / 2 + (L % 2 ? (int)(model_rng_next(&r) & 1) : 0);
    for (int i = 0; i < h; i++) { // partial Fisher-Yates
        int j = i + (int)(model_rng_next(&r) % (uint64_t)(L - i));
        int tmp = order[i];
        order[i] = order[j], order[j] = tmp;
        two[order[i]] = true;
    }
    for (int l = 0; l < L; l++) {
        int t0 = model_layer_tensor(m, l, 0);
        int attn[4] = {t0 + 1, t0 + 2, t0 + 3, t0 + 4}, mlp[3] = {t0 + 6, t0 + 7, t0 + 8};
        int norms[2] = {t0, t0 + 5};
        choose(m, &r, attn, 4, 2);
        choose(m, &r, mlp, 3, two[l] ? 2 : 1);
        choose(m, &r, norms, 2, 1);
    }
    free(order);
    free(two);
    size_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (!m->frozen[i])
            n += m->tensors[i].numel;
    return n;
}

void
peft_hft_describe(const struct model *m, struct buf *out)
{
    static const char *const k_names[9] = {"ln1", "q", "k", "v", "o", "ln2", "gate", "up", "down"};
    int L = m->cfg.n_layers;
    bool sep = false;
    if (!m->frozen[0])
        buf_puts(out, "embed"), sep = true;
    if (!m->cfg.tie_embeddings && !m->frozen[2 + 9 * L])
        buf_puts(out, sep ? " lm_head" : "lm_head"), sep = true;
    if (!m->frozen[1 + 9 * L])
        buf_puts(out, sep ? " norm" : "norm"), sep = true;
    for (int l = 0; l < L; l++) {
        buf_printf(out, "%sL%d:", sep ? " " : "", l);
        sep = true;
        bool first = true;
        for (int k = 0; k < 9; k++)
            if (!m->frozen[model_layer_tensor(m, l, k)]) {
                buf_printf(out, "%s%s", first ? "" : ",", k_names[k]);
                first = false;
            }
    }
}

// ---- DPO -----------------------------------------------------------------------------------

void
dpo_loss(double logp_c, double logp_r, double ref_c, double ref_r, double beta,
         struct dpo_result *out)
{
    out->logp_chosen = logp_c;
    out->logp_rejected = logp_r;
    out->reward_chosen = beta * (logp_c - ref_c);
    out->reward_rejected = beta * (logp_r - ref_r);
    double z = out->reward_chosen - out->reward_rejected;
    out->margin = z;
    out->correct = z > 0;
    // softplus(-z) and sigmoid(-z), both stable for large |z|
    out->loss = z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
    double sig = z > 0 ? exp(-z) / (1 + exp(-z)) : 1 / (1 + exp(z));
    out->dlogp_chosen = -beta * sig;
    out->dlogp_rejected = beta * sig;
}

int
dpo_pair_batch(const int *prompt, int n_prompt, const int *chosen, int n_chosen,
               const int *rejected, int n_rejected, int t, int *tokens, int *targets)
{
    if (n_prompt >= t + 1)
        return 0;
    int used = 0;
    for (int row = 0; row < 2; row++) {
        const int *resp = row ? rejected : chosen;
        int nr = row ? n_rejected : n_chosen;
        if (n_prompt + nr > t + 1)
            nr = t + 1 - n_prompt;
        int len = n_prompt + nr; // sequence of len tokens → len-1 predictions
        int *tok = tokens + (size_t)row * t, *tgt = targets + (size_t)row * t;
        for (int i = 0; i < t; i++) {
            int cur = i < n_prompt ? prompt[i] : i < len ? resp[i - n_prompt] : 0;
            int nxt = i + 1 < n_prompt ? prompt[i + 1] : i + 1 < len ? resp[i + 1 - n_prompt] : -1;
            tok[i] = cur;
            tgt[i] = i + 1 >= n_prompt && i + 1 < len ? nxt : -1;
        }
        used = len - 1 > used ? len - 1 : used;
    }
    return used;
}

// Per-row sums of a->loss (log-probs) over scored positions.
static void
row_sums(const struct model_acts *a, const int *targets, int t, double lp[2])
{
    for (int row = 0; row < 2; row++) {
        lp[row] = 0;
        for (int i = 0; i < t; i++)
            if (targets[row * t + i] >= 0)
                lp[row] += a->loss[row * t + i];
    }
}

void
dpo_logps(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens,
          const int *targets, int t, double lp[2])
{
    model_forward(m, a, p, tokens, 2, t);
    kern_logprobs(p, a->logits, a->loss, targets, 2 * t, m->cfg.vocab);
    row_sums(a, targets, t, lp);
}

void
dpo_forward_backward(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens,
                     const int *targets, int t, const double ref[2], double beta,
                     float grad_scale, struct dpo_result *out)
{
    double lp[2];
    dpo_logps(m, a, p, tokens, targets, t, lp);
    dpo_loss(lp[0], lp[1], ref[0], ref[1], beta, out);
    int V = m->cfg.vocab;
    // dL/dlogits = dL/dlogp · (onehot − softmax) = (−dL/dlogp) · (softmax − onehot), which is
    // the cross-entropy gradient scaled by −dL/dlogp.
    for (int row = 0; row < 2; row++) {
        double d = row ? out->dlogp_rejected : out->dlogp_chosen;
        float gs = (float)(-d * grad_scale);
        float *lg = a->logits + (size_t)row * t * V;
        if (gs == 0.0f)
            memset(lg, 0, sizeof(float) * (size_t)t * V);
        else
            kern_xent(p, lg, a->loss + (size_t)row * t, targets + (size_t)row * t, t, V, gs);
    }
    model_backward(m, a, p);
}

static int
id_array(const struct json_obj *o, const char *key, int vocab, int **ids, int *n,
         struct kerr *err)
{
    const struct json_field *f = json_obj_get(o, key);
    if (!f)
        return kerr_set(err, "missing field '%s' (DPO records need prompt_ids, chosen_ids and "
                        "rejected_ids)", key);
    if (f->val.type != JSON_ARRAY)
        return kerr_set(err, "%s must be an array of token ids", key);
    struct json_iter it;
    json_iter_init(&it, &f->val);
    size_t cap = 16, cnt = 0;
    int *v = xmalloc(sizeof(int) * cap);
    while (json_iter_next(&it)) {
        int64_t x;
        if (json_int(&it.val, &x) < 0 || x < 0 || x >= vocab) {
            free(v);
            if (json_int(&it.val, &x) < 0)
                return kerr_set(err, "%s[%zu]: not an integer token id", key, cnt);
            return kerr_set(err, "%s[%zu]: id %lld outside the vocabulary (%d)", key, cnt,
                            (long long)x, vocab);
        }
        if (cnt == cap)
            v = xrealloc(v, sizeof(int) * (cap *= 2));
        v[cnt++] = (int)x;
    }
    if (cnt == 0) {
        free(v);
        return kerr_set(err, "%s is empty", key);
    }
    *ids = v;
    *n = (int)cnt;
    return 0;
}

int
dpo_record_parse(const char *text, size_t n, int vocab, int **prompt, int *n_prompt,
                 int **chosen, int *n_chosen, int **rejected, int *n_rejected, struct kerr *err)
{
    struct json_obj o;
    struct json_error je;
    json_obj_init(&o);
    *prompt = *chosen = *rejected = NULL;
    int rc = -1;
    if (json_obj_parse(&o, text, n, &je) < 0)
        kerr_set(err, "%zu: %s", je.offset + 1, je.msg);
    else if (id_array(&o, "prompt_ids", vocab, prompt, n_prompt, err) == 0 &&
             id_array(&o, "chosen_ids", vocab, chosen, n_chosen, err) == 0 &&
             id_array(&o, "rejected_ids", vocab, rejected, n_rejected, err) == 0)
        rc = 0;
    if (rc < 0) {
        free(*prompt);
        free(*chosen);
        free(*rejected);
        *prompt = *chosen = *rejected = NULL;
    }
    json_obj_free(&o);
    return rc;
}

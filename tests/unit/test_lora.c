// SPDX-License-Identifier: MIT
// test_lora: LoRA adapters — gradients of A and B (all seven targets, with dropout) against
// central finite differences, the merged model's logits against base + adapter, PEFT file
// names and adapter_config.json fields (tests/data/peft/adapter_config.json is a config as
// PEFT writes it), save/load round trip, errors for an adapter of another base / a missing
// target / unsupported features, and a short training run that leaves every base tensor
// byte-identical while the loss falls. Then peft.h: --freeze patterns and learning-rate
// multipliers, HFT rounds (never touching a frozen byte), DPO loss and gradient against the
// formula and finite differences, DPO record errors.
#include "json.h"
#include "lora.h"
#include "peft.h"
#include "safetensors.h"
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct model_config
tiny_cfg(void)
{
    struct model_config c = {.vocab = 19, .dim = 16, .n_layers = 2, .n_heads = 4,
                             .n_kv_heads = 2, .ffn = 24, .max_seq = 16, .norm_eps = 1e-5f,
                             .rope_theta = 10000.0f, .tie_embeddings = false, .bos_id = -1,
                             .eos_id = -1};
    return c;
}

static void
make_batch(int n, int vocab, uint64_t seed, int *tok, int *tgt)
{
    struct model_rng r;
    model_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        tok[i] = (int)(model_rng_next(&r) % (uint64_t)vocab);
        tgt[i] = (int)(model_rng_next(&r) % (uint64_t)vocab);
    }
}

static double
loss_only(struct model *m, struct model_acts *a, struct kpool *p, const int *tok, const int *tgt,
          int b, int t)
{
    model_forward(m, a, p, tok, b, t);
    model_logprobs(m, a, p, tgt, a->loss);
    double s = 0;
    for (int r = 0; r < a->n; r++)
        s -= a->loss[r];
    return s;
}

// A model and an adapter on every target with B made non-zero (a fresh B is zero, which
// would leave A's gradient zero too).
static void
setup(struct model *m, struct lora *lo, double dropout, bool rslora)
{
    struct kerr err;
    struct model_config c = tiny_cfg();
    CHECK(model_init(m, &c, &err) == 0);
    model_init_random(m, 7);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] *= 2.0f;
    struct lora_config lc;
    lora_config_default(&lc);
    lc.r = 3, lc.alpha = 6, lc.dropout = dropout, lc.rslora = rslora;
    lc.targets = LORA_ALL_TARGETS;
    CHECK(lora_init(lo, m, &lc, 11, &err) == 0);
    struct model_rng r;
    model_rng_seed(&r, 99);
    for (int i = 1; i < lo->view.n_tensors; i += 2)
        for (size_t j = 0; j < lo->view.tensors[i].numel; j++)
            lo->view.params[lo->view.tensors[i].offset + j] =
                (float)(0.2 * (model_rng_uniform(&r) - 0.5));
}

static void
test_init(void)
{
    struct model m;
    struct lora lo;
    struct kerr err;
    struct model_config c = tiny_cfg();
    CHECK(model_init(&m, &c, &err) == 0);
    struct lora_config lc;
    lora_config_default(&lc);
    lc.targets = LORA_ALL_TARGETS;
    CHECK(lora_init(&lo, &m, &lc, 1, &err) == 0);
    CHECK_EQ_INT(lo.view.n_tensors, 2 * 7 * 2);
    CHECK_NEAR(lo.scale, 2.0, 1e-7);
    // Shapes: A [r,in], B [out,r]; q [16,16], k/v [8,16] (GQA: head dim 4, 2 kv heads),
    // o [16,16], gate/up [24,16], down [16,24].
    const int64_t want[7][2] = {{16, 16}, {8, 16}, {8, 16}, {16, 16}, {24, 16}, {24, 16}, {16, 24}};
    size_t total = 0;
    for (int t = 0; t < 7; t++) {
        const struct model_tensor *A = &lo.view.tensors[2 * t], *B = &lo.view.tensors[2 * t + 1];
        CHECK(A->shape[0] == 8 && A->shape[1] == want[t][1]);
        CHECK(B->shape[0] == want[t][0] && B->shape[1] == 8);
        double bound = 1.0 / sqrt((double)want[t][1]), maxabs = 0;
        for (size_t j = 0; j < A->numel; j++) {
            double x = fabs(lo.view.params[A->offset + j]);
            maxabs = x > maxabs ? x : maxabs;
            CHECK(x <= bound);
        }
        CHECK(maxabs > 0.8 * bound); // uniform over the whole range
        for (size_t j = 0; j < B->numel; j++)
            CHECK(lo.view.params[B->offset + j] == 0.0f);
        total += A->numel + B->numel;
    }
    CHECK_EQ_STR(lo.view.tensors[0].name,
                 "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    CHECK_EQ_STR(lo.view.tensors[13].name,
                 "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
    CHECK_EQ_STR(lo.view.tensors[14 + 9].name,
                 "base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight");
    CHECK_EQ_INT(lora_params(&lo), 2 * total);
    // Seeded: the same seed gives the same A, another seed another.
    struct lora lo2, lo3;
    CHECK(lora_init(&lo2, &m, &lc, 1, &err) == 0);
    CHECK(lora_init(&lo3, &m, &lc, 2, &err) == 0);
    CHECK(memcmp(lo.view.params, lo2.view.params, lo.view.n_params * sizeof(float)) == 0);
    CHECK(memcmp(lo.view.params, lo3.view.params, lo.view.n_params * sizeof(float)) != 0);
    lc.rslora = true;
    lora_free(&lo2);
    CHECK(lora_init(&lo2, &m, &lc, 1, &err) == 0);
    CHECK_NEAR(lo2.scale, 16.0 / sqrt(8.0), 1e-6);
    unsigned mask;
    CHECK(lora_targets_parse("q,v,down", &mask, &err) == 0);
    CHECK_EQ_INT(mask, 1u << LORA_Q | 1u << LORA_V | 1u << LORA_DOWN);
    CHECK(lora_targets_parse("q_proj,gate_proj", &mask, &err) == 0);
    CHECK_EQ_INT(mask, 1u << LORA_Q | 1u << LORA_GATE);
    CHECK(lora_targets_parse("q,lm_head", &mask, &err) == -1);
    CHECK(strstr(err.msg, "'lm_head'") != NULL);
    lora_free(&lo2);
    lc.r = 0;
    CHECK(lora_init(&lo2, &m, &lc, 1, &err) == -1);
    CHECK(strstr(err.msg, "rank r 0") != NULL);
    lora_free(&lo);
    lora_free(&lo3);
    model_free(&m);
}

// Every adapter parameter's gradient against fourth-order central differences, with the
// side path or (merged) the products with W + scale B A (lora.h).
static void
test_gradcheck(double dropout, bool merged)
{
    struct kerr err;
    struct model m;
    struct lora lo;
    setup(&m, &lo, dropout, dropout > 0);
    struct kpool *p = kpool_new(1);
    lora_attach(&lo, &m, p);
    lo.merge_rows = merged ? 1 : INT_MAX;
    lora_next_batch(&lo);
    model_grads_alloc(&lo.view);
    int b = 2, t = 7, tok[14], tgt[14];
    make_batch(b * t, m.cfg.vocab, 3, tok, tgt);
    struct model_acts a, e;
    CHECK(model_acts_init(&a, &m, b, t, true, 1, &err) == 0);
    CHECK(model_acts_init(&e, &m, b, t, false, 1, &err) == 0);
    double loss = model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f, NULL);
    CHECK_NEAR(loss, loss_only(&m, &e, p, tok, tgt, b, t), 1e-5);
    CHECK(m.grads == NULL); // the base has no gradient buffer at all
    for (int ti = 0; ti < lo.view.n_tensors; ti++) {
        const struct model_tensor *tt = &lo.view.tensors[ti];
        double err2 = 0, ref2 = 0, maxref = 0, maxerr = 0;
        for (size_t j = 0; j < tt->numel; j++) {
            float *w = &lo.view.params[tt->offset + j];
            float w0 = *w, h = 8e-3f * (fabsf(w0) > 1 ? fabsf(w0) : 1);
            double f[4];
            const float steps[4] = {2, 1, -1, -2};
            for (int k = 0; k < 4; k++) {
                *w = w0 + steps[k] * h;
                f[k] = loss_only(&m, &e, p, tok, tgt, b, t);
            }
            *w = w0;
            double fd = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12.0 * h);
            double an = lo.view.grads[tt->offset + j];
            err2 += (an - fd) * (an - fd);
            ref2 += fd * fd;
            maxref = fabs(fd) > maxref ? fabs(fd) : maxref;
            maxerr = fabs(an - fd) > maxerr ? fabs(an - fd) : maxerr;
        }
        double rel = sqrt(err2) / (sqrt(ref2) + 1e-12);
        CHECK_MSG(rel <= 3e-3 && maxerr <= 5e-3 * maxref + 1e-6,
                  "%s (dropout %g, merged %d): relative L2 error %.2e, max error %.2e of max %.2e",
                  tt->name, dropout, merged, rel, maxerr, maxref);
        CHECK(ref2 > 0);
    }
    if (dropout > 0) { // the mask changes with the batch and is off in evaluation
        double l1 = loss_only(&m, &e, p, tok, tgt, b, t);
        lora_next_batch(&lo);
        double l2 = loss_only(&m, &e, p, tok, tgt, b, t);
        lo.training = false;
        double l3 = loss_only(&m, &e, p, tok, tgt, b, t);
        CHECK(l1 != l2 && l2 != l3 && l1 != l3);
    }
    model_acts_free(&a);
    model_acts_free(&e);
    kpool_del(p);
    lora_free(&lo);
    model_free(&m);
}

// Merged weights give the logits of base + adapter; detached, the base's own logits.
static void
test_merge(void)
{
    struct kerr err;
    struct model m;
    struct lora lo;
    setup(&m, &lo, 0.1, false);
    struct kpool *p = kpool_new(2);
    int b = 2, t = 9, tok[18], tgt[18];
    make_batch(b * t, m.cfg.vocab, 5, tok, tgt);
    struct model_acts e;
    CHECK(model_acts_init(&e, &m, b, t, false, 2, &err) == 0);
    size_t nl = (size_t)b * t * m.cfg.vocab;
    float *base = xmalloc(nl * sizeof(float)), *adapted = xmalloc(nl * sizeof(float));
    model_forward(&m, &e, p, tok, b, t);
    memcpy(base, e.logits, nl * sizeof(float));
    lora_attach(&lo, &m, p);
    lo.training = false; // no dropout: the adapter as inference sees it
    model_forward(&m, &e, p, tok, b, t);
    memcpy(adapted, e.logits, nl * sizeof(float));
    lo.merge_rows = 1; // the products with W + scale B A: the same logits
    model_forward(&m, &e, p, tok, b, t);
    double mdiff = 0;
    for (size_t i = 0; i < nl; i++)
        mdiff = fmax(mdiff, fabs(e.logits[i] - adapted[i]) / fmax(fabs(adapted[i]), 1.0));
    CHECK_MSG(mdiff <= 1e-5, "merged products vs side path differ by %.3e", mdiff);
    lora_detach(&lo, &m);
    CHECK(m.base == NULL && m.hooks == NULL);
    lora_merge(&lo, &m, p);
    model_forward(&m, &e, p, tok, b, t);
    double maxdiff = 0, maxchange = 0;
    for (size_t i = 0; i < nl; i++) {
        double d = fabs(e.logits[i] - adapted[i]) / (fabs(adapted[i]) > 1 ? fabs(adapted[i]) : 1);
        maxdiff = d > maxdiff ? d : maxdiff;
        maxchange = fabs(adapted[i] - base[i]) > maxchange ? fabs(adapted[i] - base[i]) : maxchange;
    }
    CHECK_MSG(maxdiff <= 1e-5, "merged vs adapter logits differ by %.3e", maxdiff);
    CHECK_MSG(maxchange > 0.1, "the adapter hardly changes the logits (%.3e)", maxchange);
    free(base);
    free(adapted);
    model_acts_free(&e);
    kpool_del(p);
    lora_free(&lo);
    model_free(&m);
}

static void
write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static void
test_files(void)
{
    struct kerr err;
    struct model m;
    struct lora lo, back;
    setup(&m, &lo, 0.05, true);
    snprintf(lo.cfg.base_model, sizeof lo.cfg.base_model, "kiln/tiny");
    char dir[] = "/tmp/test_lora_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(lora_save(dir, &lo, &err) == 0);
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    struct buf text = {0};
    CHECK(read_file(path, 0, &text, &err) == 0);
    struct json_val root, v;
    CHECK(json_parse_value(text.p, text.len, &root, NULL) == 0);
    CHECK(json_val_member(&root, "peft_type", 9, &v) && json_str_eq(&v, "LORA", 4));
    CHECK(json_val_member(&root, "task_type", 9, &v) && json_str_eq(&v, "CAUSAL_LM", 9));
    CHECK(json_val_member(&root, "base_model_name_or_path", 23, &v) &&
          json_str_eq(&v, "kiln/tiny", 9));
    int64_t r;
    double d;
    CHECK(json_val_member(&root, "r", 1, &v) && json_int(&v, &r) == 0 && r == 3);
    CHECK(json_val_member(&root, "lora_alpha", 10, &v) && json_double(&v, &d) == 0 && d == 6);
    CHECK(json_val_member(&root, "lora_dropout", 12, &v) && json_double(&v, &d) == 0 &&
          d == 0.05);
    CHECK(json_val_member(&root, "use_rslora", 10, &v) && v.type == JSON_TRUE);
    CHECK(strstr(text.p, "\"target_modules\":[\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\","
                         "\"gate_proj\",\"up_proj\",\"down_proj\"]") != NULL);
    // The tensors as PEFT names them, F32, with the shapes [r,in] / [out,r].
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    struct st_file f;
    CHECK(st_open(&f, path, &err) == 0);
    CHECK_EQ_INT(f.n, 28);
    const struct st_tensor *st =
        st_find(&f, "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight");
    CHECK(st && st->dtype == ST_F32 && st->ndim == 2 && st->shape[0] == 8 && st->shape[1] == 3);
    st = st_find(&f, "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
    CHECK(st && st->shape[0] == 3 && st->shape[1] == 24);
    st_close(&f);

    CHECK(lora_load(dir, &back, &m, &err) == 0);
    CHECK_EQ_INT(back.cfg.r, 3);
    CHECK(back.cfg.rslora && back.cfg.dropout == 0.05 && back.cfg.targets == LORA_ALL_TARGETS);
    CHECK_EQ_STR(back.cfg.base_model, "kiln/tiny");
    CHECK(back.scale == lo.scale);
    CHECK(back.view.n_params == lo.view.n_params &&
          memcmp(back.view.params, lo.view.params, lo.view.n_params * sizeof(float)) == 0);
    lora_free(&back);

    // A different base: wider model → shape mismatch named; more layers → missing tensor.
    struct model other;
    struct model_config oc = tiny_cfg();
    oc.dim = 32;
    CHECK(model_init(&other, &oc, &err) == 0);
    CHECK(lora_load(dir, &back, &other, &err) == -1);
    CHECK(strstr(err.msg, "layers.0.self_attn.q_proj.lora_A.weight' has shape [3, 16], the "
                          "base model needs [3, 32]") != NULL);
    model_free(&other);
    oc = tiny_cfg();
    oc.n_layers = 3;
    CHECK(model_init(&other, &oc, &err) == 0);
    CHECK(lora_load(dir, &back, &other, &err) == -1);
    CHECK(strstr(err.msg, "missing tensor 'base_model.model.model.layers.2.self_attn.q_proj") !=
          NULL);
    model_free(&other);
    oc.n_layers = 1; // fewer layers → unexpected tensors
    CHECK(model_init(&other, &oc, &err) == 0);
    CHECK(lora_load(dir, &back, &other, &err) == -1);
    CHECK(strstr(err.msg, "unexpected tensor 'base_model.model.model.layers.1.") != NULL);
    model_free(&other);

    // A config naming a target whose tensors are missing; unsupported modules and features.
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    struct lora q;
    struct lora_config qc;
    lora_config_default(&qc);
    qc.targets = 1u << LORA_Q;
    CHECK(lora_init(&q, &m, &qc, 3, &err) == 0);
    CHECK(lora_save(dir, &q, &err) == 0);
    lora_free(&q);
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16,"
                     " \"target_modules\": [\"q_proj\", \"v_proj\"]}");
    CHECK(lora_load(dir, &back, &m, &err) == -1);
    CHECK(strstr(err.msg, "missing tensor 'base_model.model.model.layers.0.self_attn.v_proj."
                          "lora_A.weight' for target module v_proj") != NULL);
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 8, \"target_modules\": [\"lm_head\"]}");
    CHECK(lora_load(dir, &back, &m, &err) == -1);
    CHECK(strstr(err.msg, "target module 'lm_head' is not supported") != NULL);
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 8, \"target_modules\": \"q_proj|v_proj\"}");
    CHECK(lora_load(dir, &back, &m, &err) == -1);
    CHECK(strstr(err.msg, "target_modules must be a list") != NULL);
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 8, \"use_dora\": true, "
                     "\"target_modules\": [\"q_proj\"]}");
    CHECK(lora_load(dir, &back, &m, &err) == -1);
    CHECK(strstr(err.msg, "use_dora is not supported") != NULL);
    write_text(path, "{\"peft_type\": \"PREFIX_TUNING\", \"r\": 8}");
    CHECK(lora_load(dir, &back, &m, &err) == -1);
    CHECK(strstr(err.msg, "peft_type must be \"LORA\"") != NULL);
    // PEFT's own config (every field PEFT 0.13 writes) loads and matches the file we wrote.
    struct buf fx = {0};
    CHECK(read_file("tests/data/peft/adapter_config.json", 0, &fx, &err) == 0);
    write_text(path, fx.p ? fx.p : "");
    CHECK(lora_load(dir, &back, &m, &err) == 0);
    CHECK(back.cfg.r == 8 && back.cfg.alpha == 16 && back.cfg.dropout == 0.05 &&
          !back.cfg.rslora && back.cfg.targets == 1u << LORA_Q);
    CHECK_EQ_STR(back.cfg.base_model, "meta-llama/Llama-3.2-1B");
    lora_free(&back);
    buf_free(&fx);

    unlink(path);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    buf_free(&text);
    lora_free(&lo);
    model_free(&m);
}

// A few AdamW steps on the adapter: the loss falls, the base slab keeps every byte, the
// optimizer state covers only the adapter.
static void
test_train(void)
{
    struct kerr err;
    struct model m;
    struct lora lo;
    struct model_config c = tiny_cfg();
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 3);
    for (size_t i = 0; i < m.n_params; i++) // a head strong enough to fit with frozen weights
        m.params[i] *= 10.0f;
    struct lora_config lc;
    lora_config_default(&lc);
    lc.targets = LORA_ALL_TARGETS;
    lc.dropout = 0.1;
    CHECK(lora_init(&lo, &m, &lc, 5, &err) == 0);
    float *before = xmalloc(m.n_params * sizeof(float));
    memcpy(before, m.params, m.n_params * sizeof(float));
    struct kpool *p = kpool_new(2);
    lora_attach(&lo, &m, p);
    model_grads_alloc(&lo.view);
    struct adamw opt;
    adamw_init(&opt, &lo.view, 0.9f, 0.999f, 1e-8f, 0.01f);
    int b = 2, t = 12, tok[24], tgt[24];
    make_batch(b * t, c.vocab, 8, tok, tgt);
    struct model_acts a;
    CHECK(model_acts_init(&a, &m, b, t, true, 2, &err) == 0);
    double first = 0, last = 0;
    for (int s = 0; s < 30; s++) {
        lora_next_batch(&lo);
        model_grads_zero(&lo.view);
        double l = model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f / (b * t), NULL);
        model_grad_clip(&lo.view, p, 1.0);
        adamw_update(&opt, &lo.view, p, 5e-2f);
        if (s == 0)
            first = l;
        last = l;
    }
    CHECK_MSG(last < 0.9 * first, "loss %.4f -> %.4f", first, last);
    CHECK(memcmp(before, m.params, m.n_params * sizeof(float)) == 0);
    for (int i = 0; i < m.n_tensors; i++)
        CHECK(m.frozen[i]);
    CHECK(m.grads == NULL);
    free(before);
    adamw_free(&opt);
    model_acts_free(&a);
    kpool_del(p);
    lora_free(&lo);
    model_free(&m);
}


// Runs `steps` full-model AdamW steps on a fixed batch with the current frozen flags.
static void
train_steps(struct model *m, struct kpool *p, int steps, const float *mult)
{
    struct kerr err;
    struct adamw opt;
    adamw_init(&opt, m, 0.9f, 0.999f, 1e-8f, 0.1f);
    model_grads_alloc(m);
    int b = 2, t = 6, tok[12], tgt[12];
    make_batch(b * t, m->cfg.vocab, 4, tok, tgt);
    struct model_acts a;
    CHECK(model_acts_init(&a, m, b, t, true, 1, &err) == 0);
    for (int s = 0; s < steps; s++) {
        model_grads_zero(m);
        model_forward_backward(m, &a, p, tok, tgt, b, t, 1.0f / (b * t), NULL);
        peft_adamw_update(&opt, m, p, 1e-2f, mult);
    }
    CHECK_EQ_INT(opt.step, steps);
    model_acts_free(&a);
    adamw_free(&opt);
}

static bool
tensor_same(const struct model *m, const float *before, int i)
{
    const struct model_tensor *t = &m->tensors[i];
    return memcmp(before + t->offset, m->params + t->offset, t->numel * sizeof(float)) == 0;
}

static void
test_freeze(void)
{
    struct kerr err;
    struct model m;
    struct model_config c = tiny_cfg();
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 2);
    bool *sel = xcalloc((size_t)m.n_tensors, sizeof(bool));
    CHECK(peft_select(&m, "embed,layers.1.mlp,norm", sel, &err) == 0);
    int n_sel = 0;
    for (int i = 0; i < m.n_tensors; i++)
        n_sel += sel[i];
    CHECK_EQ_INT(n_sel, 5);
    CHECK(sel[0] && sel[model_layer_tensor(&m, 1, 6)] && sel[model_layer_tensor(&m, 1, 8)]);
    CHECK(sel[1 + 9 * 2] && !sel[model_layer_tensor(&m, 0, 6)]);
    memset(sel, 0, (size_t)m.n_tensors);
    CHECK(peft_select(&m, "layers.0-1,q_proj", sel, &err) == 0);
    CHECK(sel[model_layer_tensor(&m, 1, 0)] && !sel[0]);
    CHECK(peft_select(&m, "layers.2", sel, &err) == -1);
    CHECK(strstr(err.msg, "layers 2-2 outside 0-1") != NULL);
    CHECK(peft_select(&m, "embed,qproj", sel, &err) == -1);
    CHECK(strstr(err.msg, "'qproj' matches no tensor") != NULL);
    CHECK(peft_select(&m, "layers.x", sel, &err) == -1);

    // --freeze embed,layers.0 with full training: frozen bytes stay, the rest moves; a
    // multiplier 0 acts as a freeze too.
    memset(sel, 0, (size_t)m.n_tensors);
    CHECK(peft_select(&m, "embed,layers.0", sel, &err) == 0);
    memcpy(m.frozen, sel, (size_t)m.n_tensors);
    float *before = xmalloc(m.n_params * sizeof(float));
    memcpy(before, m.params, m.n_params * sizeof(float));
    float *mult = xmalloc(sizeof(float) * (size_t)m.n_tensors);
    for (int i = 0; i < m.n_tensors; i++)
        mult[i] = 1.0f;
    int down1 = model_layer_tensor(&m, 1, 8);
    mult[down1] = 0.0f;
    struct kpool *p = kpool_new(2);
    train_steps(&m, p, 3, mult);
    for (int i = 0; i < m.n_tensors; i++)
        CHECK_MSG(tensor_same(&m, before, i) == (sel[i] || i == down1), "%s", m.tensors[i].name);

    // A multiplier scales the first Adam step (≈ lr · sign(g)) per tensor.
    model_init_random(&m, 2);
    memset(m.frozen, 0, (size_t)m.n_tensors);
    memcpy(before, m.params, m.n_params * sizeof(float));
    for (int i = 0; i < m.n_tensors; i++)
        mult[i] = i % 2 ? 0.25f : 1.0f;
    train_steps(&m, p, 1, mult);
    for (int i = 2; i < 4; i++) {
        const struct model_tensor *t = &m.tensors[i];
        double mx = 0;
        for (size_t j = 0; j < t->numel; j++) { // decay is lr·mult·wd·w, tiny here
            double d = fabs(m.params[t->offset + j] - before[t->offset + j]);
            mx = d > mx ? d : mx;
        }
        CHECK_MSG(fabs(mx - 1e-2 * mult[i]) < 0.05 * 1e-2 * mult[i], "%s moved %.4g",
                  t->name, mx);
    }

    // HFT (arXiv 2404.18466 §3): per layer 2 of 4 attention matrices and 1 of 2 norms; 2 of
    // the 3 MLP matrices in half of the layers, 1 in the others; embed and lm_head train;
    // seeded; rounds differ; frozen tensors keep their bytes through training.
    size_t n0 = peft_hft_round(&m, 42, 0);
    struct buf d0 = {0}, d1 = {0}, d0b = {0};
    peft_hft_describe(&m, &d0);
    int mlp_total = 0;
    for (int l = 0; l < 2; l++) {
        int t0 = model_layer_tensor(&m, l, 0), attn = 0, mlp = 0;
        for (int k = 1; k <= 4; k++)
            attn += !m.frozen[t0 + k];
        for (int k = 6; k <= 8; k++)
            mlp += !m.frozen[t0 + k];
        CHECK_EQ_INT(attn, 2);
        CHECK(mlp == 1 || mlp == 2);
        mlp_total += mlp;
        CHECK_EQ_INT(!m.frozen[t0] + !m.frozen[t0 + 5], 1);
    }
    CHECK_EQ_INT(mlp_total, 3); // one layer 2 of 3, the other 1 of 3: half of the 6
    CHECK(!m.frozen[0] && !m.frozen[2 + 9 * 2]); // embed and lm_head
    CHECK(n0 > 0 && n0 < m.n_params);
    peft_hft_round(&m, 42, 1);
    peft_hft_describe(&m, &d1);
    peft_hft_round(&m, 42, 0);
    peft_hft_describe(&m, &d0b);
    CHECK(strcmp(d0.p, d0b.p) == 0);
    CHECK(strcmp(d0.p, d1.p) != 0);
    CHECK(strstr(d0.p, "L1:") != NULL);
    memcpy(before, m.params, m.n_params * sizeof(float));
    memcpy(sel, m.frozen, (size_t)m.n_tensors);
    train_steps(&m, p, 2, NULL);
    for (int i = 0; i < m.n_tensors; i++)
        CHECK_MSG(tensor_same(&m, before, i) == sel[i], "HFT %s", m.tensors[i].name);
    buf_free(&d0);
    buf_free(&d1);
    buf_free(&d0b);

    // An odd layer count (3): 1 or 2 layers get two MLP matrices, both happen across
    // rounds, and each layer is among them in some round; a tied embedding always trains.
    struct model m3;
    struct model_config c3 = tiny_cfg();
    c3.n_layers = 3;
    c3.tie_embeddings = true;
    CHECK(model_init(&m3, &c3, &err) == 0);
    int seen_h[3] = {0}, seen_two[3] = {0};
    for (int round = 0; round < 32; round++) {
        peft_hft_round(&m3, 7, round);
        int h = 0;
        for (int l = 0; l < 3; l++) {
            int t0 = model_layer_tensor(&m3, l, 0), mlp = 0;
            for (int k = 6; k <= 8; k++)
                mlp += !m3.frozen[t0 + k];
            CHECK(mlp == 1 || mlp == 2);
            h += mlp == 2;
            seen_two[l] += mlp == 2;
        }
        CHECK(h == 1 || h == 2);
        seen_h[h]++;
        CHECK(!m3.frozen[0]);
    }
    CHECK(seen_h[1] > 0 && seen_h[2] > 0);
    CHECK(seen_two[0] > 0 && seen_two[1] > 0 && seen_two[2] > 0);
    model_free(&m3);
    free(before);
    free(mult);
    free(sel);
    kpool_del(p);
    model_free(&m);
}

static double
dpo_only(struct model *m, struct model_acts *e, struct kpool *p, const int *tok, const int *tgt,
         int t, const double ref[2], double beta)
{
    double lp[2];
    struct dpo_result r;
    dpo_logps(m, e, p, tok, tgt, t, lp);
    dpo_loss(lp[0], lp[1], ref[0], ref[1], beta, &r);
    return r.loss;
}

static void
test_dpo(void)
{
    struct kerr err;
    struct dpo_result r;
    // The formula: z = beta((pc - rc) - (pr - rr)), loss = -log sigmoid(z).
    dpo_loss(-10, -12, -11, -11.5, 0.1, &r);
    double z = 0.1 * ((-10 + 11) - (-12 + 11.5));
    CHECK_NEAR(r.margin, z, 1e-12);
    CHECK_NEAR(r.loss, -log(1 / (1 + exp(-z))), 1e-12);
    CHECK_NEAR(r.dlogp_chosen, -0.1 * (1 - 1 / (1 + exp(-z))), 1e-12);
    CHECK_NEAR(r.reward_chosen, 0.1, 1e-12);
    CHECK(r.correct);
    dpo_loss(-1000, 0, 0, 0, 1, &r); // stable far out
    CHECK(isfinite(r.loss) && fabs(r.loss - 1000) < 1e-9 && !r.correct);

    struct model m;
    struct model_config c = tiny_cfg();
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 9);
    for (size_t i = 0; i < m.n_params; i++)
        m.params[i] *= 3.0f;
    model_grads_alloc(&m);
    int prompt[3] = {1, 5, 7}, chosen[4] = {2, 3, 4, 18}, rejected[2] = {9, 10};
    int t = 8, tok[16], tgt[16];
    CHECK_EQ_INT(dpo_pair_batch(prompt, 3, chosen, 4, rejected, 2, t, tok, tgt), 6);
    CHECK(tgt[1] == -1 && tgt[2] == 2 && tgt[5] == 18 && tgt[6] == -1);
    CHECK(tgt[8 + 2] == 9 && tgt[8 + 3] == 10 && tgt[8 + 4] == -1);
    CHECK_EQ_INT(dpo_pair_batch(prompt, 3, chosen, 4, rejected, 2, 2, tok, tgt), 0);
    CHECK_EQ_INT(dpo_pair_batch(prompt, 3, chosen, 4, rejected, 2, t, tok, tgt), 6);
    struct kpool *p = kpool_new(1);
    struct model_acts a, e;
    CHECK(model_acts_init(&a, &m, 2, t, true, 1, &err) == 0);
    CHECK(model_acts_init(&e, &m, 2, t, false, 1, &err) == 0);
    double ref[2] = {-9.5, -5.0}, beta = 0.5;
    double lp[2];
    dpo_logps(&m, &e, p, tok, tgt, t, lp);
    // The log-probs are sums over the response tokens only.
    model_forward(&m, &e, p, tok, 2, t);
    float lps[16];
    model_logprobs(&m, &e, p, tgt, lps);
    CHECK_NEAR(lp[0], lps[2] + lps[3] + lps[4] + lps[5], 1e-6);
    CHECK_NEAR(lp[1], lps[10] + lps[11], 1e-6);
    dpo_forward_backward(&m, &a, p, tok, tgt, t, ref, beta, 1.0f, &r);
    double zz = beta * ((lp[0] - ref[0]) - (lp[1] - ref[1]));
    CHECK_NEAR(r.loss, log1p(exp(-zz)), 1e-6);
    // Gradients of a few tensors (all elements) against central differences.
    const int check[3] = {model_layer_tensor(&m, 0, 0), model_layer_tensor(&m, 1, 3),
                          2 + 9 * 2};
    for (int ci = 0; ci < 3; ci++) {
        const struct model_tensor *tt = &m.tensors[check[ci]];
        double err2 = 0, ref2 = 0;
        size_t stride = tt->numel > 64 ? tt->numel / 64 : 1;
        for (size_t j = 0; j < tt->numel; j += stride) {
            float *w = &m.params[tt->offset + j], w0 = *w, h = 4e-3f;
            *w = w0 + h;
            double fp = dpo_only(&m, &e, p, tok, tgt, t, ref, beta);
            *w = w0 - h;
            double fm = dpo_only(&m, &e, p, tok, tgt, t, ref, beta);
            *w = w0;
            double fd = (fp - fm) / (2 * h), an = m.grads[tt->offset + j];
            err2 += (an - fd) * (an - fd);
            ref2 += fd * fd;
        }
        double rel = sqrt(err2) / (sqrt(ref2) + 1e-12);
        CHECK_MSG(rel < 2e-2 && ref2 > 0, "DPO gradient of %s: relative error %.2e", tt->name,
                  rel);
    }
    model_acts_free(&a);
    model_acts_free(&e);
    kpool_del(p);
    model_free(&m);

    int *pp, *cc, *rr, np, nc, nr;
    const char *good = "{\"prompt_ids\":[1,2],\"chosen_ids\":[3],\"rejected_ids\":[4,5],\"x\":1}";
    CHECK(dpo_record_parse(good, strlen(good), 10, &pp, &np, &cc, &nc, &rr, &nr, &err) == 0);
    CHECK(np == 2 && nc == 1 && nr == 2 && rr[1] == 5);
    free(pp), free(cc), free(rr);
    const char *missing = "{\"prompt_ids\":[1,2],\"chosen_ids\":[3]}";
    CHECK(dpo_record_parse(missing, strlen(missing), 10, &pp, &np, &cc, &nc, &rr, &nr, &err) == -1);
    CHECK(strstr(err.msg, "missing field 'rejected_ids'") != NULL);
    const char *range = "{\"prompt_ids\":[1,2],\"chosen_ids\":[3,10],\"rejected_ids\":[4]}";
    CHECK(dpo_record_parse(range, strlen(range), 10, &pp, &np, &cc, &nc, &rr, &nr, &err) == -1);
    CHECK(strstr(err.msg, "chosen_ids[1]: id 10 outside the vocabulary (10)") != NULL);
}

// modules_to_save: with a fresh adapter (B = 0) the function is the base's, so the gradients
// of embed_tokens and lm_head in the view equal full training's; an update reaches the base
// (lora_sync); names, save/load and merge.
static void
test_modules(void)
{
    struct kerr err;
    struct model m;
    struct model_config c = tiny_cfg();
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 5);
    struct kpool *p = kpool_new(1);
    int b = 2, t = 7, tok[14], tgt[14];
    make_batch(b * t, m.cfg.vocab, 4, tok, tgt);
    struct model_acts a;
    CHECK(model_acts_init(&a, &m, b, t, true, 1, &err) == 0);
    model_grads_alloc(&m);
    model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f, NULL);
    unsigned mods;
    CHECK(lora_modules_parse("embed,lm_head", &mods, &err) == 0);
    CHECK_EQ_INT(mods, 3);
    CHECK(lora_modules_parse("embed_tokens,norm", &mods, &err) == -1);
    CHECK(strstr(err.msg, "'norm'") != NULL);
    struct lora_config lc;
    lora_config_default(&lc);
    lc.r = 2, lc.modules = 1u << LORA_MOD_EMBED | 1u << LORA_MOD_HEAD;
    struct lora lo;
    CHECK(lora_init(&lo, &m, &lc, 3, &err) == 0);
    CHECK_EQ_INT(lo.view.n_tensors, 2 * 2 * 2 + 2);
    const struct model_tensor *ve = &lo.view.tensors[lo.mod_index[LORA_MOD_EMBED]];
    const struct model_tensor *vh = &lo.view.tensors[lo.mod_index[LORA_MOD_HEAD]];
    CHECK_EQ_STR(ve->name, "base_model.model.model.embed_tokens.weight");
    CHECK_EQ_STR(vh->name, "base_model.model.lm_head.weight");
    lora_attach(&lo, &m, p);
    float *full = m.grads;
    m.grads = NULL; // the base needs no gradient buffer: the modules' go to the view
    model_grads_zero(&lo.view);
    model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f, NULL);
    const struct model_tensor *he = &m.tensors[0], *hh = model_tensor_find(&m, "lm_head.weight");
    double maxd = 0;
    for (size_t j = 0; j < he->numel; j++)
        maxd = fmax(maxd, fabs(lo.view.grads[ve->offset + j] - full[he->offset + j]));
    for (size_t j = 0; j < hh->numel; j++)
        maxd = fmax(maxd, fabs(lo.view.grads[vh->offset + j] - full[hh->offset + j]));
    CHECK_MSG(maxd < 1e-5, "module gradients differ from full training's by %.3e", maxd);
    struct adamw o;
    adamw_init(&o, &lo.view, 0.9f, 0.999f, 1e-8f, 0.0f);
    adamw_update(&o, &lo.view, p, 1e-2f);
    lora_sync(&lo);
    CHECK(memcmp(m.params + hh->offset, lo.view.params + vh->offset,
                 hh->numel * sizeof(float)) == 0);
    char dir[] = "/tmp/test_lora_mod_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(lora_save(dir, &lo, &err) == 0);
    struct model m2;
    CHECK(model_init(&m2, &c, &err) == 0);
    model_init_random(&m2, 5);
    struct lora back;
    CHECK(lora_load(dir, &back, &m2, &err) == 0);
    CHECK_EQ_INT(back.cfg.modules, lc.modules);
    CHECK(memcmp(back.view.params, lo.view.params, lo.view.n_params * sizeof(float)) == 0);
    lora_merge(&back, &m2, p);
    CHECK(memcmp(m2.params + hh->offset, lo.view.params + vh->offset,
                 hh->numel * sizeof(float)) == 0);
    CHECK(memcmp(m2.params, lo.view.params + ve->offset, he->numel * sizeof(float)) == 0);
    lora_detach(&lo, &m);
    CHECK(m.grad_to == NULL && m.frozen[0]);
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    // lm_head of a model with tied embeddings is embed_tokens
    c.tie_embeddings = true;
    struct model mt;
    CHECK(model_init(&mt, &c, &err) == 0);
    lc.modules = 1u << LORA_MOD_HEAD;
    lora_free(&back);
    CHECK(lora_init(&back, &mt, &lc, 1, &err) == -1);
    CHECK(strstr(err.msg, "ties lm_head") != NULL);
    model_free(&mt);
    free(full);
    adamw_free(&o);
    lora_free(&back);
    lora_free(&lo);
    model_acts_free(&a);
    model_free(&m2);
    model_free(&m);
    kpool_del(p);
}

int
main(void)
{
    test_init();
    test_gradcheck(0.0, false);
    test_gradcheck(0.0, true);
    test_gradcheck(0.2, false);
    test_gradcheck(0.2, true); // dropout: never merged in training
    test_merge();
    test_modules();
    test_files();
    test_train();
    test_freeze();
    test_dpo();
    return test_summary();
}

// SPDX-License-Identifier: MIT
// test_model: the model's numerics — analytic gradients against central finite differences
// for every parameter tensor, bit-identical results for 1, 2 and 3 threads, the KV-cache
// forward against the batched one, AdamW/clipping/schedules against hand-computed values,
// memorization of a small batch, and the PyTorch reference fixture (tests/data/train/,
// made by tests/tools/make_train_fixture.py) for loss, every gradient and 10 AdamW steps.
#include "model.h"
#include "test.h"

#include <stdlib.h>


static struct model_config
tiny_cfg(bool tied)
{
    struct model_config c = {.vocab = 19, .dim = 16, .n_layers = 2, .n_heads = 4,
                             .n_kv_heads = 2, .ffn = 24, .max_seq = 16, .norm_eps = 1e-5f,
                             .rope_theta = 10000.0f, .tie_embeddings = tied, .bos_id = -1,
                             .eos_id = -1};
    return c;
}

static void
make_batch(int b, int t, int vocab, uint64_t seed, int *tok, int *tgt)
{
    struct model_rng r;
    model_rng_seed(&r, seed);
    for (int i = 0; i < b * t; i++) {
        tok[i] = (int)(model_rng_next(&r) % (uint64_t)vocab);
        tgt[i] = (int)(model_rng_next(&r) % (uint64_t)vocab);
        if (i % 7 == 3)
            tgt[i] = -1; // masked positions
    }
}

static double
loss_only(struct model *m, struct model_acts *a, struct kpool *p, const int *tok, const int *tgt,
          int b)
{
    model_forward(m, a, p, tok, b, a->t);
    model_logprobs(m, a, p, tgt, a->loss);
    double s = 0;
    for (int r = 0; r < a->n; r++)
        s -= a->loss[r];
    return s;
}

// Every element of every tensor against central differences of the summed loss (float
// forward; fourth-order differences with a relative step of 1e-2).
static void
test_gradcheck(bool tied)
{
    struct kerr err;
    struct model_config c = tiny_cfg(tied);
    struct model m;
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 7);
    // Larger weights than the 0.02 init so gradients are well above float noise.
    for (size_t i = 0; i < m.n_params; i++)
        m.params[i] *= 5.0f;
    for (int i = 0; i < m.n_tensors; i++)
        if (m.tensors[i].ndim == 1)
            for (size_t j = 0; j < m.tensors[i].numel; j++)
                m.params[m.tensors[i].offset + j] = 1.0f + 0.1f * (float)((j * 7) % 5);
    model_grads_alloc(&m);
    struct kpool *p = kpool_new(1);
    int b = 2, t = 7, tok[14], tgt[14];
    make_batch(b, t, c.vocab, 3, tok, tgt);
    struct model_acts a, e;
    CHECK(model_acts_init(&a, &m, b, t, true, 1, &err) == 0);
    CHECK(model_acts_init(&e, &m, b, t, false, 1, &err) == 0);
    int n_scored = 0;
    double loss = model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f, &n_scored);
    CHECK_EQ_INT(n_scored, 12);
    CHECK_NEAR(loss, loss_only(&m, &e, p, tok, tgt, b), 1e-5);
    // Tolerance: per tensor, the L2 error relative to the tensor's gradient norm ≤ 3e-3, and
    // each element within 5e-3 of the tensor's largest |gradient|.
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const struct model_tensor *tt = &m.tensors[ti];
        double err2 = 0, ref2 = 0, maxref = 0, maxerr = 0;
        for (size_t j = 0; j < tt->numel; j++) {
            float *w = &m.params[tt->offset + j];
            // Fourth-order central difference: truncation error O(h^4), so h can stay large
            // enough that float rounding of the loss does not matter.
            float w0 = *w, h = 8e-3f * (fabsf(w0) > 1 ? fabsf(w0) : 1);
            double f[4];
            const float steps[4] = {2, 1, -1, -2};
            for (int k = 0; k < 4; k++) {
                *w = w0 + steps[k] * h;
                f[k] = loss_only(&m, &e, p, tok, tgt, b);
            }
            *w = w0;
            double fd = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12.0 * h);
            double an = m.grads[tt->offset + j];
            err2 += (an - fd) * (an - fd);
            ref2 += fd * fd;
            maxref = fabs(fd) > maxref ? fabs(fd) : maxref;
            maxerr = fabs(an - fd) > maxerr ? fabs(an - fd) : maxerr;
        }
        double rel = sqrt(err2) / (sqrt(ref2) + 1e-12);
        CHECK_MSG(rel <= 3e-3 && maxerr <= 5e-3 * maxref + 1e-6,
                  "%s%s: relative L2 error %.2e, max error %.2e of max %.2e", tt->name,
                  tied ? " (tied)" : "", rel, maxerr, maxref);
        CHECK(ref2 > 0);
        if (getenv("GC_VERBOSE")) fprintf(stderr, "%-50s rel %.2e maxerr/maxref %.2e\n", tt->name, rel, maxerr / maxref);
    }
    model_acts_free(&a);
    model_acts_free(&e);
    kpool_del(p);
    model_free(&m);
}

// Gradients and an AdamW step give the same bytes for 1, 2 and 3 threads, with more rows than
// one block so the partition matters.
static void
test_threads(void)
{
    struct kerr err;
    struct model_config c = tiny_cfg(false);
    c.dim = 64, c.n_heads = 4, c.n_kv_heads = 2, c.ffn = 96, c.vocab = 97, c.max_seq = 80;
    int b = 3, t = 70, n = b * t;
    int *tok = xmalloc(sizeof(int) * n), *tgt = xmalloc(sizeof(int) * n);
    make_batch(b, t, c.vocab, 11, tok, tgt);
    float *ref = NULL;
    double ref_loss = 0;
    for (int th = 1; th <= 3; th++) {
        struct model m;
        CHECK(model_init(&m, &c, &err) == 0);
        model_init_random(&m, 5);
        model_grads_alloc(&m);
        struct kpool *p = kpool_new(th);
        CHECK_EQ_INT(kpool_threads(p), th);
        struct model_acts a;
        CHECK(model_acts_init(&a, &m, b, t, true, th, &err) == 0);
        double loss = model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f / n, NULL);
        struct adamw o;
        adamw_init(&o, &m, 0.9f, 0.95f, 1e-8f, 0.1f);
        model_grad_clip(&m, p, 0.5);
        adamw_update(&o, &m, p, 1e-3f);
        if (!ref) {
            ref = xmalloc(sizeof(float) * m.n_params * 2);
            memcpy(ref, m.grads, sizeof(float) * m.n_params);
            memcpy(ref + m.n_params, m.params, sizeof(float) * m.n_params);
            ref_loss = loss;
        } else {
            CHECK_MSG(memcmp(ref, m.grads, sizeof(float) * m.n_params) == 0,
                      "gradients differ with %d threads", th);
            CHECK_MSG(memcmp(ref + m.n_params, m.params, sizeof(float) * m.n_params) == 0,
                      "weights differ with %d threads", th);
            CHECK(loss == ref_loss);
        }
        adamw_free(&o);
        model_acts_free(&a);
        kpool_del(p);
        model_free(&m);
    }
    free(ref);
    free(tok);
    free(tgt);
}

// The KV-cache path (prefill in pieces, then one token at a time) matches batched logits.
static void
test_kv(void)
{
    struct kerr err;
    struct model_config c = tiny_cfg(true);
    c.max_seq = 100;
    struct model m;
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 9);
    for (size_t i = 0; i < m.n_params; i++)
        m.params[i] *= 10.0f;
    int t = 90, tok[90];
    for (int i = 0; i < t; i++)
        tok[i] = (i * 7 + 3) % c.vocab;
    struct kpool *p = kpool_new(2);
    struct model_acts a;
    CHECK(model_acts_init(&a, &m, 1, t, false, 2, &err) == 0);
    model_forward(&m, &a, p, tok, 1, t);
    // A shorter batch in bigger buffers gives the same bits.
    struct model_acts big;
    CHECK(model_acts_init(&big, &m, 3, 100, false, 2, &err) == 0);
    model_forward(&m, &big, p, tok, 1, t);
    CHECK(memcmp(big.logits, a.logits, sizeof(float) * t * c.vocab) == 0);
    model_acts_free(&big);
    struct model_kv kv;
    CHECK(model_kv_init(&kv, &m, t, &err) == 0);
    float logits[19];
    double maxdiff = 0;
    model_kv_forward(&m, &kv, p, tok, 70, logits); // two chunks
    for (int v = 0; v < c.vocab; v++)
        maxdiff = fmax(maxdiff, fabs(logits[v] - a.logits[69 * c.vocab + v]));
    for (int i = 70; i < t; i++) {
        model_kv_forward(&m, &kv, p, tok + i, 1, logits);
        for (int v = 0; v < c.vocab; v++)
            maxdiff = fmax(maxdiff, fabs(logits[v] - a.logits[(size_t)i * c.vocab + v]));
    }
    CHECK_EQ_INT(kv.len, t);
    CHECK_MSG(maxdiff < 1e-4, "KV logits differ by %g", maxdiff);
    struct model_kv kv2;
    CHECK(model_kv_init(&kv2, &m, 101, &err) == -1);
    model_kv_free(&kv);
    model_acts_free(&a);
    kpool_del(p);
    model_free(&m);
}

static void
test_config(void)
{
    struct kerr err;
    struct model_config c = {.vocab = 4096};
    CHECK(model_config_preset(&c, "tiny") == 0);
    CHECK_EQ_INT(c.vocab, 4096);
    CHECK(model_config_check(&c, &err) == 0);
    const char *names[] = {"tiny", "small", "base"};
    for (int i = 0; i < 3; i++) {
        CHECK(model_config_preset(&c, names[i]) == 0);
        CHECK(c.dim % 32 == 0 && c.ffn % 32 == 0 && (c.dim / c.n_heads) % 32 == 0);
    }
    CHECK(model_config_preset(&c, "huge") == -1);
    c.n_heads = 5;
    CHECK(model_config_check(&c, &err) == -1);
    CHECK(strstr(err.msg, "num_attention_heads 5 does not divide hidden_size 512") != NULL);
    model_config_preset(&c, "small");
    c.n_kv_heads = 3;
    CHECK(model_config_check(&c, &err) == -1);
    struct model m;
    model_config_preset(&c, "tiny");
    c.vocab = 100;
    CHECK(model_init(&m, &c, &err) == 0);
    CHECK_EQ_INT(m.n_params, model_config_params(&c));
    CHECK_EQ_INT(m.n_tensors, 2 + 9 * 4 + 1);
    const struct model_tensor *t = model_tensor_find(&m, "model.layers.3.mlp.down_proj.weight");
    CHECK(t && t->shape[0] == 128 && t->shape[1] == 352 && t->decay);
    t = model_tensor_find(&m, "model.norm.weight");
    CHECK(t && t->ndim == 1 && !t->decay);
    CHECK(model_tensor_find(&m, "lm_head.weight") != NULL);
    model_free(&m);
}

static void
test_optim(void)
{
    // lr schedule
    CHECK_NEAR(lr_at(LR_COSINE, 1.0f, 1, 4, 14, 0), 0.25, 1e-7);
    CHECK_NEAR(lr_at(LR_COSINE, 1.0f, 4, 4, 14, 0), 1.0, 1e-7);
    CHECK_NEAR(lr_at(LR_COSINE, 1.0f, 9, 4, 14, 0), 0.5, 1e-6);
    CHECK_NEAR(lr_at(LR_COSINE, 1.0f, 14, 4, 14, 0.1f), 0.1, 1e-6);
    CHECK_NEAR(lr_at(LR_LINEAR, 2.0f, 9, 4, 14, 0), 1.0, 1e-6);
    CHECK_NEAR(lr_at(LR_CONSTANT, 2.0f, 9, 4, 14, 0), 2.0, 1e-7);
    // AdamW on a hand-made model: one step moves each weight by about lr (sign of grad).
    struct kerr err;
    struct model_config c = tiny_cfg(true);
    struct model m;
    CHECK(model_init(&m, &c, &err) == 0);
    model_grads_alloc(&m);
    for (size_t i = 0; i < m.n_params; i++) {
        m.params[i] = 1.0f;
        m.grads[i] = (i % 2) ? 3.0f : -4.0f;
    }
    struct kpool *p = kpool_new(2);
    double norm = model_grad_clip(&m, p, 1.0);
    double expect = sqrt((double)(m.n_params / 2) * 9 + (double)(m.n_params - m.n_params / 2) * 16);
    CHECK_NEAR(norm, expect, 1e-6);
    CHECK_NEAR(model_grad_norm(&m, p), 1.0, 1e-5);
    m.frozen[1] = true; // the first layer norm stays put
    struct adamw o;
    adamw_init(&o, &m, 0.9f, 0.999f, 1e-8f, 0.5f);
    adamw_update(&o, &m, p, 0.1f);
    const struct model_tensor *e = &m.tensors[0], *ln = &m.tensors[1], *q = &m.tensors[2];
    // decayed: 1 * (1 - 0.05) - 0.1 * sign(g)
    size_t i0 = e->offset; // g < 0 at even index
    CHECK_NEAR(m.params[i0], 0.95 + 0.1, 1e-5);
    CHECK_NEAR(m.params[i0 + 1], 0.95 - 0.1, 1e-5);
    CHECK(m.params[ln->offset] == 1.0f);
    // a norm of layer 1 (not frozen): no decay
    const struct model_tensor *ln2 = &m.tensors[model_layer_tensor(&m, 1, 0)];
    CHECK_NEAR(m.params[ln2->offset + (ln2->offset % 2 ? 1 : 0)], 1.1, 1e-5);
    CHECK(q->decay);
    adamw_free(&o);
    kpool_del(p);
    model_free(&m);
    // generator
    struct model_rng r1, r2;
    model_rng_seed(&r1, 42);
    model_rng_seed(&r2, 42);
    double s = 0, s2 = 0;
    for (int i = 0; i < 20000; i++) {
        double z = model_rng_normal(&r1);
        s += z, s2 += z * z;
    }
    CHECK(fabs(s / 20000) < 0.03 && fabs(s2 / 20000 - 1) < 0.05);
    for (int i = 0; i < 20000 * 2; i++)
        model_rng_next(&r2);
    CHECK(model_rng_next(&r1) == model_rng_next(&r2));
}

// A tiny model drives the loss on one batch close to zero.
static void
test_memorize(void)
{
    struct kerr err;
    struct model_config c = tiny_cfg(false);
    c.dim = 32, c.n_heads = 2, c.n_kv_heads = 2, c.ffn = 64, c.vocab = 32, c.max_seq = 16;
    struct model m;
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 1);
    model_grads_alloc(&m);
    int b = 4, t = 16, tok[64], tgt[64];
    make_batch(b, t, c.vocab, 5, tok, tgt);
    struct kpool *p = kpool_new(2);
    struct model_acts a;
    CHECK(model_acts_init(&a, &m, b, t, true, 2, &err) == 0);
    struct adamw o;
    adamw_init(&o, &m, 0.9f, 0.95f, 1e-8f, 0.0f);
    double first = 0, loss = 0;
    for (int s = 0; s < 150; s++) {
        model_grads_zero(&m);
        int n = 0;
        loss = model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f / 55, &n);
        loss /= n;
        if (s == 0)
            first = loss;
        model_grad_clip(&m, p, 1.0);
        adamw_update(&o, &m, p, lr_at(LR_COSINE, 1e-2f, s + 1, 10, 150, 0.1f));
    }
    CHECK_MSG(first > 3.0 && loss < 0.05, "loss %g -> %g", first, loss);
    adamw_free(&o);
    model_acts_free(&a);
    kpool_del(p);
    model_free(&m);
}

// Reads the fixture written by tests/tools/make_train_fixture.py (layout documented there).
struct ref_reader {
    const char *p, *end;
    bool ok;
};

static void
ref_take(struct ref_reader *r, void *dst, size_t n)
{
    if (!r->ok || (size_t)(r->end - r->p) < n) {
        r->ok = false;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
}

// Same initial weights and batch as PyTorch: the loss and every gradient within 1e-4
// relative (elementwise, relative to the tensor's largest gradient), and the losses of 10
// AdamW steps with clipping and the warmup+cosine schedule.
static void
test_torch_reference(void)
{
    const char *root = getenv("KILN_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/train/ref.bin", root ? root : ".");
    struct buf file = {0};
    struct kerr err;
    if (read_file(path, 0, &file, &err) < 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    struct ref_reader r = {file.p, file.p + file.len, true};
    char magic[8];
    int32_t hdr[10], sched[2];
    double hyper[7];
    ref_take(&r, magic, 8);
    ref_take(&r, hdr, sizeof hdr);
    ref_take(&r, hyper, sizeof hyper);
    ref_take(&r, sched, sizeof sched);
    CHECK(r.ok && memcmp(magic, "KILNREF1", 8) == 0);
    struct model_config c = {.vocab = hdr[0], .dim = hdr[1], .n_layers = hdr[2],
                             .n_heads = hdr[3], .n_kv_heads = hdr[4], .ffn = hdr[5],
                             .max_seq = hdr[7], .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                             .tie_embeddings = hdr[8] != 0, .bos_id = -1, .eos_id = -1};
    int b = hdr[6], t = hdr[7], n = b * t;
    struct model m;
    CHECK(model_init(&m, &c, &err) == 0);
    CHECK_EQ_INT(m.n_params, hdr[9]);
    if (m.n_params != (size_t)hdr[9]) {
        buf_free(&file);
        model_free(&m);
        return;
    }
    ref_take(&r, m.params, sizeof(float) * m.n_params);
    int *tok = xmalloc(sizeof(int) * n), *tgt = xmalloc(sizeof(int) * n);
    float *grads = xmalloc(sizeof(float) * m.n_params);
    double ref_loss, losses[64];
    int32_t steps;
    ref_take(&r, tok, sizeof(int) * n);
    ref_take(&r, tgt, sizeof(int) * n);
    ref_take(&r, &ref_loss, sizeof ref_loss);
    ref_take(&r, grads, sizeof(float) * m.n_params);
    ref_take(&r, &steps, sizeof steps);
    CHECK(r.ok && steps > 0 && steps <= 64);
    ref_take(&r, losses, sizeof(double) * (size_t)(steps > 0 && steps <= 64 ? steps : 0));
    CHECK(r.ok && r.p == r.end);

    model_grads_alloc(&m);
    struct kpool *p = kpool_new(2);
    struct model_acts a;
    CHECK(model_acts_init(&a, &m, b, t, true, 2, &err) == 0);
    int n_scored = 0;
    for (int i = 0; i < n; i++)
        n_scored += tgt[i] >= 0;
    double loss = model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f / n_scored, NULL);
    loss /= n_scored;
    CHECK_MSG(fabs(loss - ref_loss) <= 1e-4 * fabs(ref_loss), "loss %.8f vs torch %.8f", loss,
              ref_loss);
    double worst = 0;
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const struct model_tensor *tt = &m.tensors[ti];
        double maxref = 0, maxerr = 0;
        for (size_t j = 0; j < tt->numel; j++) {
            double g = grads[tt->offset + j], an = m.grads[tt->offset + j];
            maxref = fmax(maxref, fabs(g));
            maxerr = fmax(maxerr, fabs(an - g));
        }
        worst = fmax(worst, maxerr / maxref);
        CHECK_MSG(maxerr <= 1e-4 * maxref, "%s: max error %.3e of max %.3e", tt->name, maxerr,
                  maxref);
    }
    if (getenv("GC_VERBOSE"))
        fprintf(stderr, "torch: loss %.9f vs %.9f, worst gradient error %.2e\n", loss, ref_loss,
                worst);

    // 10 AdamW steps on the same batch, from the initial weights again.
    model_free(&m);
    CHECK(model_init(&m, &c, &err) == 0);
    memcpy(m.params, file.p + 8 + sizeof hdr + sizeof hyper + sizeof sched,
           sizeof(float) * m.n_params);
    model_grads_alloc(&m);
    struct adamw o;
    adamw_init(&o, &m, (float)hyper[2], (float)hyper[3], (float)hyper[4], (float)hyper[1]);
    double worst_step = 0;
    for (int s = 0; s < steps; s++) {
        model_grads_zero(&m);
        double l = model_forward_backward(&m, &a, p, tok, tgt, b, t, 1.0f / n_scored, NULL);
        l /= n_scored;
        model_grad_clip(&m, p, hyper[5]);
        adamw_update(&o, &m, p,
                     lr_at(LR_COSINE, (float)hyper[0], s + 1, sched[0], sched[1],
                           (float)hyper[6]));
        worst_step = fmax(worst_step, fabs(l - losses[s]) / losses[s]);
        CHECK_MSG(fabs(l - losses[s]) <= 1e-4 * losses[s], "step %d: loss %.8f vs torch %.8f",
                  s + 1, l, losses[s]);
    }
    if (getenv("GC_VERBOSE"))
        fprintf(stderr, "torch: worst step loss error %.2e (last %.6f)\n", worst_step,
                losses[steps - 1]);
    adamw_free(&o);
    model_acts_free(&a);
    kpool_del(p);
    model_free(&m);
    free(tok);
    free(tgt);
    free(grads);
    buf_free(&file);
}

int
main(void)
{
    test_config();
    test_optim();
    test_gradcheck(false);
    test_gradcheck(true);
    test_threads();
    test_kv();
    test_memorize();
    test_torch_reference();
    return test_summary();
}

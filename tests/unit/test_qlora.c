// SPDX-License-Identifier: MIT
// test_qlora: the NF4 base of QLoRA — the second-level code book against bitsandbytes'
// construction, the stored first-level codes against quant.h's NF4 bytes, dequantization
// against the formula (shapes that are not a multiple of 64 too) and the double-quantization
// error bound; then a model: the QLoRA forward/backward (loss, logits, adapter gradients)
// against a plain model whose base weights were replaced by their dequantized values (an
// independent path: kern_linear_* on an fp32 slab), adapter gradients against finite
// differences, bit-identical results for 1 and 2 threads, the base never receiving a
// gradient, detach giving back a full model with the dequantized weights, and quantizing
// while loading (ckpt_load_divert) giving the same bytes as quantizing after a full load.
#include "checkpoint.h"
#include "lora.h"
#include "qlora.h"
#include "quant.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// dim 36 with 2 heads (head dim 18), ffn 20: q is 36x36 = 1296 values, not a multiple of 64.
static struct model_config
odd_cfg(void)
{
    struct model_config c = {.vocab = 23,
                             .dim = 36,
                             .n_layers = 2,
                             .n_heads = 2,
                             .n_kv_heads = 1,
                             .ffn = 20,
                             .max_seq = 16,
                             .norm_eps = 1e-5,
                             .rope_theta = 10000.0,
                             .tie_embeddings = false,
                             .bos_id = -1,
                             .eos_id = -1};
    return c;
}

static void
fill(float *x, size_t n, uint64_t seed, double amp)
{
    struct model_rng r;
    model_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(amp * model_rng_normal(&r));
}

static void
test_dynamic_map(void)
{
    const float *map = qlora_dynamic_map();
    // Rebuilt here from bitsandbytes' description: per decade i the midpoints of
    // linspace(0.1, 1, 2^i + 1) scaled by 10^(i-6), both signs, plus 0 and 1.
    int pos = 0, neg = 0, zero = 0, one = 0;
    for (int k = 0; k < 256; k++) {
        if (k)
            CHECK(map[k] > map[k - 1]);
        zero += map[k] == 0.0f;
        one += map[k] == 1.0f;
        pos += map[k] > 0 && map[k] < 1;
        neg += map[k] < 0;
    }
    CHECK_EQ_INT(zero, 1);
    CHECK_EQ_INT(one, 1);
    CHECK_EQ_INT(pos, 127);
    CHECK_EQ_INT(neg, 127);
    CHECK_NEAR(map[0], -(0.1 + 0.9 * 63.5 / 64), 1e-7); // largest negative: last midpoint
    CHECK_NEAR(map[127], 0.0, 0);
    CHECK_NEAR(map[128], 0.55e-6, 1e-12);              // decade 0: one midpoint
    CHECK_NEAR(map[129], 1e-5 * (0.1 + 0.225), 1e-12); // decade 1: first of two
}

static void
test_tensor(int64_t out, int64_t in)
{
    int64_t n = out * in;
    float *w = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    fill(w, (size_t)n, (uint64_t)n, 0.05);
    w[5] = 0.4f; // one block with a large absmax
    struct qlora_tensor t;
    qlora_tensor_quantize(&t, QTYPE_NF4, w, out, in);
    CHECK_EQ_INT(t.n_blocks, (n + 63) / 64);
    qlora_tensor_dequantize(&t, 0, n, y);
    const float *map = qlora_dynamic_map();
    double max_rel = 0;
    for (int64_t b = 0; b < t.n_blocks; b++) {
        // The first level is quant.h's NF4, byte for byte.
        float blk[64] = {0};
        int64_t have = n - 64 * b < 64 ? n - 64 * b : 64;
        memcpy(blk, w + 64 * b, sizeof(float) * (size_t)have);
        unsigned char ref[36];
        CHECK(quant_row_quantize(QTYPE_NF4, blk, ref, 64) == 0);
        CHECK(memcmp(ref + 4, t.qs + 32 * b, 32) == 0);
        float absmax;
        memcpy(&absmax, ref, 4);
        float a = map[t.qabs[b]] * t.scale[b / 256] + t.mean;
        // Off by at most half the map's widest gap (0.9/64, near ±1) times the group scale.
        double rel = fabs(a - absmax) / (t.scale[b / 256] * 0.9 / 128 + 1e-7 * absmax);
        max_rel = rel > max_rel ? rel : max_rel;
        for (int64_t i = 0; i < have; i++) {
            int j = (int)i;
            int code = j % 2 ? t.qs[32 * b + j / 2] & 15 : t.qs[32 * b + j / 2] >> 4;
            float want = a * quant_nf4_codes[code];
            if (y[64 * b + i] != want) {
                CHECK_MSG(0, "block %lld value %d: %g, want %g", (long long)b, j,
                          (double)y[64 * b + i], (double)want);
                b = t.n_blocks;
                break;
            }
        }
    }
    CHECK_MSG(max_rel <= 1, "double quantization: absmax error %.3g of the bound", max_rel);
    // A partial range equals the same slice of the whole.
    float *z = malloc(sizeof(float) * (size_t)n);
    qlora_tensor_dequantize(&t, 37, n - 50, z);
    CHECK(memcmp(z, y + 37, sizeof(float) * (size_t)(n - 50)) == 0);
    CHECK_EQ_INT(qlora_tensor_bytes(&t), 33 * t.n_blocks + 4 * ((t.n_blocks + 255) / 256 + 1));
    free(z);
    qlora_tensor_free(&t);
    free(w);
    free(y);
}

// Q8_0 / Q4_0: quant.h's blocks byte for byte (the last one zero-padded), dequantized as
// quant.h does, any range equal to the slice of the whole, 34 or 18 bytes per block.
static void
test_tensor_ggml(int type, int64_t out, int64_t in)
{
    int64_t n = out * in;
    float *w = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    fill(w, (size_t)n, (uint64_t)n + 1, 0.05);
    struct qlora_tensor t;
    qlora_tensor_quantize(&t, type, w, out, in);
    size_t bb = quant_block_bytes(type);
    CHECK_EQ_INT(t.n_blocks, (n + 31) / 32);
    CHECK_EQ_INT(qlora_tensor_bytes(&t), (int64_t)bb * t.n_blocks);
    qlora_tensor_dequantize(&t, 0, n, y);
    for (int64_t b = 0; b < t.n_blocks; b++) {
        float blk[32] = {0}, want[32];
        int64_t have = n - 32 * b < 32 ? n - 32 * b : 32;
        memcpy(blk, w + 32 * b, sizeof(float) * (size_t)have);
        unsigned char ref[34];
        CHECK(quant_row_quantize(type, blk, ref, 32) == 0);
        CHECK_MSG(memcmp(ref, t.qs + bb * (size_t)b, bb) == 0, "block %lld", (long long)b);
        CHECK(quant_row_dequantize(type, ref, want, 32) == 0);
        CHECK(memcmp(want, y + 32 * b, sizeof(float) * (size_t)have) == 0);
    }
    double err = 0, ref2 = 0; // the round trip is close: 8-bit well under 1%, 4-bit under 15%
    for (int64_t i = 0; i < n; i++)
        err += (y[i] - w[i]) * (y[i] - w[i]), ref2 += w[i] * w[i];
    CHECK(sqrt(err / ref2) < (type == QTYPE_Q8_0 ? 0.01 : 0.15));
    float *z = malloc(sizeof(float) * (size_t)n);
    qlora_tensor_dequantize(&t, 37, n - 50, z);
    CHECK(memcmp(z, y + 37, sizeof(float) * (size_t)(n - 50)) == 0);
    free(z);
    qlora_tensor_free(&t);
    free(w);
    free(y);
}

// A model with every target adapted and B non-zero.
static void
setup(struct model *m, struct lora *lo)
{
    struct kerr err;
    struct model_config c = odd_cfg();
    CHECK(model_init(m, &c, &err) == 0);
    model_init_random(m, 5);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] *= 4.0f; // larger weights: gradients well above float rounding
    struct lora_config lc;
    lora_config_default(&lc);
    lc.r = 2, lc.alpha = 4, lc.targets = LORA_ALL_TARGETS;
    CHECK(lora_init(lo, m, &lc, 3, &err) == 0);
    for (int i = 1; i < lo->view.n_tensors; i += 2)
        fill(lo->view.params + lo->view.tensors[i].offset, lo->view.tensors[i].numel, 40 + i, 0.2);
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

static void
test_model(int type)
{
    struct kerr err;
    struct model mq, mr;
    struct lora lq, lr;
    setup(&mq, &lq);
    setup(&mr, &lr);
    struct kpool *p1 = kpool_new(1), *p2 = kpool_new(2);
    lora_attach(&lq, &mq, p1);
    lora_attach(&lr, &mr, p1);
    struct qlora q = {.type = type};
    qlora_attach(&q, &mq);
    CHECK(mq.base != NULL);
    CHECK(q.slab < mq.n_params / 2);
    CHECK_EQ_INT(q.w[0].type, type);
    // The reference: a plain fp32 model holding the dequantized weights.
    for (int l = 0; l < mr.cfg.n_layers; l++)
        for (int k = 0; k < QLORA_N_LINEAR; k++) {
            const struct model_tensor *t =
                &mr.tensors[model_layer_tensor(&mr, l, k < 4 ? k + 1 : k + 2)];
            qlora_tensor_dequantize(&q.w[l * QLORA_N_LINEAR + k], 0, (int64_t)t->numel,
                                    mr.params + t->offset);
        }
    int b = 2, t = 9, tok[18], tgt[18];
    struct model_rng r;
    model_rng_seed(&r, 8);
    for (int i = 0; i < b * t; i++) {
        tok[i] = (int)(model_rng_next(&r) % 23);
        tgt[i] = i % 5 == 0 ? -1 : (int)(model_rng_next(&r) % 23);
    }
    struct model_acts aq, ar, e;
    CHECK(model_acts_init(&aq, &mq, b, t, true, 2, &err) == 0);
    CHECK(model_acts_init(&ar, &mr, b, t, true, 2, &err) == 0);
    CHECK(model_acts_init(&e, &mq, b, t, false, 2, &err) == 0);
    model_grads_alloc(&lq.view);
    model_grads_alloc(&lr.view);
    double loss_q = model_forward_backward(&mq, &aq, p1, tok, tgt, b, t, 0.1f, NULL);
    double loss_r = model_forward_backward(&mr, &ar, p1, tok, tgt, b, t, 0.1f, NULL);
    CHECK_NEAR(loss_q, loss_r, 1e-5 * fabs(loss_r));
    double gmax = 0, gerr = 0;
    for (size_t i = 0; i < lq.view.n_params; i++) {
        gmax = fmax(gmax, fabs(lr.view.grads[i]));
        gerr = fmax(gerr, fabs(lq.view.grads[i] - lr.view.grads[i]));
    }
    CHECK_MSG(gerr <= 1e-5 * gmax && gmax > 0, "adapter gradients: max diff %.3g of %.3g", gerr,
              gmax);
    CHECK(mq.grads == NULL);

    // 2 threads: bit-identical gradients.
    float *g1 = malloc(sizeof(float) * lq.view.n_params);
    memcpy(g1, lq.view.grads, sizeof(float) * lq.view.n_params);
    model_grads_zero(&lq.view);
    double loss2 = model_forward_backward(&mq, &aq, p2, tok, tgt, b, t, 0.1f, NULL);
    CHECK(loss2 == loss_q);
    CHECK(memcmp(g1, lq.view.grads, sizeof(float) * lq.view.n_params) == 0);
    free(g1);

    // Finite differences on a sample of every adapter tensor (the loss through the NF4 path).
    for (int ti = 0; ti < lq.view.n_tensors; ti++) {
        const struct model_tensor *tt = &lq.view.tensors[ti];
        double err2 = 0, ref2 = 0;
        for (size_t j = 0; j < tt->numel; j += 7) {
            float *w = &lq.view.params[tt->offset + j];
            float w0 = *w, h = 8e-3f;
            const float steps[4] = {2, 1, -1, -2};
            double f[4];
            for (int k = 0; k < 4; k++) {
                *w = w0 + steps[k] * h;
                f[k] = loss_only(&mq, &e, p1, tok, tgt, b, t);
            }
            *w = w0;
            double fd = 0.1 * (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12.0 * h);
            double an = lq.view.grads[tt->offset + j];
            err2 += (an - fd) * (an - fd);
            ref2 += fd * fd;
        }
        double rel = sqrt(err2) / (sqrt(ref2) + 1e-12);
        CHECK_MSG(rel <= 1e-2 && ref2 > 0, "%s: relative L2 error %.2e", tt->name, rel);
    }

    // Logits of the KV-cache path go through the base ops too.
    struct model_kv kq, kr;
    CHECK(model_kv_init(&kq, &mq, t, &err) == 0);
    CHECK(model_kv_init(&kr, &mr, t, &err) == 0);
    float lgq[23], lgr[23];
    model_kv_forward(&mq, &kq, p1, tok, t, lgq);
    model_kv_forward(&mr, &kr, p1, tok, t, lgr);
    for (int v = 0; v < 23; v++)
        CHECK_NEAR(lgq[v], lgr[v], 1e-4);
    model_kv_free(&kq);
    model_kv_free(&kr);

    // Detach: a full slab with the dequantized weights, equal to the reference model's bytes.
    lora_detach(&lq, &mq);
    lora_detach(&lr, &mr);
    qlora_detach(&q, &mq);
    CHECK(mq.base == NULL);
    CHECK(memcmp(mq.params, mr.params, sizeof(float) * mr.n_params) == 0);

    qlora_free(&q);
    model_acts_free(&aq);
    model_acts_free(&ar);
    model_acts_free(&e);
    kpool_del(p1);
    kpool_del(p2);
    lora_free(&lq);
    lora_free(&lr);
    model_free(&mq);
    model_free(&mr);
}

// Quantizing while loading (ckpt_load_divert) stores the same bytes as after a full load.
static void
test_load_divert(void)
{
    struct kerr err;
    struct model m, a, b;
    struct model_config c = odd_cfg();
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 9);
    char dir[] = "/tmp/test_qlora.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(ckpt_save(dir, &m, ST_F32, &err) == 0);
    struct qlora qa = {0}, qb = {0};
    CHECK(ckpt_load(dir, &a, NULL, &err) == 0);
    qlora_attach(&qa, &a);
    CHECK(ckpt_load_divert(dir, &b, NULL, qlora_divert, &qb, &err) == 0);
    for (int i = 0; i < b.cfg.n_layers * QLORA_N_LINEAR; i++)
        CHECK(qb.taken[i]);
    qlora_attach(&qb, &b);
    CHECK(qa.slab == qb.slab);
    CHECK(memcmp(a.params, b.params, sizeof(float) * qa.slab) == 0);
    for (int i = 0; i < a.cfg.n_layers * QLORA_N_LINEAR; i++) {
        CHECK(memcmp(qa.w[i].qs, qb.w[i].qs, (size_t)qa.w[i].n_blocks * 32) == 0);
        CHECK(memcmp(qa.w[i].qabs, qb.w[i].qabs, (size_t)qa.w[i].n_blocks) == 0);
        CHECK(qa.w[i].mean == qb.w[i].mean);
    }
    // A bad checkpoint is still refused with the tensor named.
    struct buf path = {0};
    buf_printf(&path, "%s/config.json", dir);
    FILE *f = fopen(path.p, "w");
    fputs("{\"hidden_size\": 8}", f);
    fclose(f);
    struct model x;
    struct qlora qx = {0};
    CHECK(ckpt_load_divert(dir, &x, NULL, qlora_divert, &qx, &err) == -1);
    qlora_free(&qx);
    buf_reset(&path);
    buf_printf(&path, "rm -rf '%s'", dir);
    CHECK(system(path.p) == 0);
    buf_free(&path);
    qlora_free(&qa);
    qlora_free(&qb);
    model_free(&a);
    model_free(&b);
    model_free(&m);
}

int
main(void)
{
    test_dynamic_map();
    test_tensor(36, 36);   // 1296 values: 20 full blocks and a partial one
    test_tensor(40, 128);  // whole blocks
    test_tensor(300, 256); // more than one second-level group (1200 blocks)
    test_model(QTYPE_NF4);
    test_model(QTYPE_Q8_0);
    test_model(QTYPE_Q4_0);
    test_tensor_ggml(QTYPE_Q8_0, 36, 36); // 1296 values: 40 full blocks and a partial one
    test_tensor_ggml(QTYPE_Q4_0, 36, 36);
    test_tensor_ggml(QTYPE_Q4_0, 40, 128);
    test_load_divert();
    return test_summary();
}

// SPDX-License-Identifier: MIT
// test_model_score: the forward-only scoring paths of the model against model_forward +
// model_logprobs — model_forward_logprobs (output projection for the scored rows only; the
// same bits when every row is scored, for 1 and 2 threads, in forward-only and in training
// activations, whose attention kernels differ) and model_kv_forward_logprobs with a shared
// prefix reused through model_kv_rewind.
#include "model.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 3, T = 80, V = 37 }; // T > 64: KV appends span chunks

static void
init_model(struct model *m)
{
    struct kerr err;
    struct model_config c = {.vocab = V,
                             .dim = 32,
                             .n_layers = 2,
                             .n_heads = 4,
                             .n_kv_heads = 2,
                             .ffn = 48,
                             .max_seq = 96,
                             .norm_eps = 1e-5,
                             .rope_theta = 10000.0,
                             .bos_id = -1,
                             .eos_id = -1};
    CHECK(model_init(m, &c, &err) == 0);
    model_init_random(m, 3);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] *= 8.0f; // far from uniform predictions
}

// Reference: log-probabilities of the full forward pass.
static void
reference(struct model *m, const int *tok, const int *tgt, int b, bool training, float *lp)
{
    struct kerr err;
    struct kpool *p = kpool_new(1);
    struct model_acts a;
    CHECK(model_acts_init(&a, m, b, T, training, 1, &err) == 0);
    model_forward(m, &a, p, tok, b, T);
    model_logprobs(m, &a, p, tgt, lp);
    model_acts_free(&a);
    kpool_del(p);
}

static void
test_forward_logprobs(void)
{
    struct kerr err;
    struct model m;
    init_model(&m);
    int tok[B * T], tgt[B * T], part[B * T];
    float want[2][B * T], got[B * T], want_part[2][B * T];
    struct model_rng r;
    model_rng_seed(&r, 11);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int)(model_rng_next(&r) % V);
        tgt[i] = (int)(model_rng_next(&r) % V);
        part[i] = i % T >= 60 ? tgt[i] : -1; // a completion: the last rows of each sequence
    }
    for (int training = 0; training <= 1; training++) {
        reference(&m, tok, tgt, B, training, want[training]);
        reference(&m, tok, part, B, training, want_part[training]);
    }
    // the two attention kernels: the same values to float rounding (which the weights scaled
    // by 8 amplify)
    double dk = 0;
    for (int i = 0; i < B * T; i++)
        dk = fmax(dk, fabs(want[0][i] - want[1][i]));
    CHECK_MSG(dk < 1e-3 && dk > 0, "forward-only and training forward differ by %g", dk);
    for (int th = 1; th <= 2; th++) {
        struct kpool *p = kpool_new(th);
        for (int training = 0; training <= 1; training++) {
            struct model_acts a;
            CHECK(model_acts_init(&a, &m, B, T, training, th, &err) == 0);
            model_forward_logprobs(&m, &a, p, tok, tgt, B, T, got);
            CHECK_MSG(memcmp(got, want[training], sizeof got) == 0,
                      "every row scored: %d threads, training %d", th, training);
            model_forward_logprobs(&m, &a, p, tok, part, B, T, got);
            double d = 0;
            for (int i = 0; i < B * T; i++) {
                d = fmax(d, fabs(got[i] - want_part[training][i]));
                if (part[i] < 0)
                    CHECK(got[i] == 0);
            }
            CHECK_MSG(d < 1e-5, "completion rows differ by %g", d);
            model_acts_free(&a);
        }
        kpool_del(p);
    }
    model_free(&m);
}

// Two continuations of one prompt: the prompt once, then each continuation after a rewind,
// against each whole sequence through model_forward.
static void
test_kv_prefix(void)
{
    struct kerr err;
    struct model m;
    init_model(&m);
    int seq[2][T], tgt[2][T], pre = 50;
    for (int i = 0; i < T; i++) {
        seq[0][i] = seq[1][i] = (i * 7 + 3) % V;
        if (i >= pre) // the continuations differ
            seq[1][i] = (i * 5 + 1) % V;
    }
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < T; i++)
            tgt[c][i] = i + 1 < T && i >= pre - 1 ? seq[c][i + 1] : -1;
    float want[2 * T];
    reference(&m, &seq[0][0], &tgt[0][0], 2, false, want);
    struct kpool *p = kpool_new(2);
    struct model_kv kv;
    CHECK(model_kv_init(&kv, &m, T, &err) == 0);
    model_kv_forward_logprobs(&m, &kv, p, seq[0], NULL, pre, NULL);
    CHECK_EQ_INT(kv.len, pre);
    float lp[T];
    double d = 0;
    for (int c = 0; c < 2; c++) {
        model_kv_rewind(&kv, pre);
        model_kv_forward_logprobs(&m, &kv, p, seq[c] + pre, tgt[c] + pre, T - pre, lp);
        CHECK_EQ_INT(kv.len, T);
        for (int i = pre; i < T; i++)
            d = fmax(d, fabs(lp[i - pre] - want[c * T + i]));
    }
    CHECK_MSG(d < 1e-4, "KV scores differ by %g", d);
    // the row that predicts the first continuation token is the prompt's last: score it too
    model_kv_reset(&kv);
    float all[T];
    model_kv_forward_logprobs(&m, &kv, p, seq[1], tgt[1], T, all); // two chunks
    d = 0;
    for (int i = 0; i < T; i++)
        d = fmax(d, fabs(all[i] - want[T + i]));
    CHECK_MSG(d < 1e-4, "KV scores from the start differ by %g", d);
    model_kv_rewind(&kv, T + 5); // longer than the cache: unchanged
    CHECK_EQ_INT(kv.len, T);
    model_kv_free(&kv);
    kpool_del(p);
    model_free(&m);
}

int
main(void)
{
    test_forward_logprobs();
    test_kv_prefix();
    return test_summary();
}

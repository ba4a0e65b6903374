// SPDX-License-Identifier: MIT
// test_kernels: the forward-only kernels against the training ones they stand in for —
// kern_attn_fwd_infer against kern_attn_fwd (head widths that take the vector path, the
// scalar tail or both; lengths that leave a short last block of query rows;
// grouped kv heads; 1 and 2 threads giving the same bits), kern_attn_rows over a KV-cache
// layout continuing at pos0 > 0, and kern_rmsnorm_fwd_infer against kern_rmsnorm_fwd.
#include "kernels.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float
rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static void
test_attn_infer(int b, int t, int nh, int nkv, int hd)
{
    int ld = (nh + 2 * nkv) * hd;
    size_t nq = (size_t)b * t * ld, no = (size_t)b * t * nh * hd;
    float *qkv = malloc(sizeof(float) * nq), *want = malloc(sizeof(float) * no);
    float *got = malloc(sizeof(float) * no), *got2 = malloc(sizeof(float) * no);
    float *att = malloc(sizeof(float) * (size_t)b * nh * t * t);
    float *scratch = malloc(sizeof(float) * 2 * kern_attn_rows_scratch(t, hd));
    unsigned s = (unsigned)(t * 131 + hd);
    for (size_t i = 0; i < nq; i++)
        qkv[i] = 3.0f * rnd(&s);
    struct kern_attn a = {b, t, nh, nkv, hd};
    kern_attn_fwd(NULL, &a, want, att, qkv);
    kern_attn_fwd_infer(NULL, &a, got, scratch, qkv);
    struct kpool *p = kpool_new(2);
    kern_attn_fwd_infer(p, &a, got2, scratch, qkv);
    kpool_del(p);
    double d = 0;
    for (size_t i = 0; i < no; i++)
        d = fmax(d, fabs(got[i] - want[i]));
    CHECK_MSG(d < 1e-5, "attention b %d t %d nh %d nkv %d hd %d: differs by %g", b, t, nh, nkv,
              hd, d);
    CHECK_MSG(memcmp(got, got2, sizeof(float) * no) == 0, "1 and 2 threads differ (hd %d)", hd);

    // the last 13 rows of sequence 0, head 1, as a KV cache continuing at pos0 = t - 13:
    // keys and values in their own [t, hd] arrays
    int n = 13, pos0 = t - n, kvh = 1 / (nh / nkv);
    float *k = malloc(sizeof(float) * (size_t)t * hd), *v = malloc(sizeof(float) * (size_t)t * hd);
    float *out = malloc(sizeof(float) * (size_t)n * hd);
    for (int r = 0; r < t; r++)
        for (int c = 0; c < hd; c++) {
            k[(size_t)r * hd + c] = qkv[(size_t)r * ld + (nh + kvh) * hd + c];
            v[(size_t)r * hd + c] = qkv[(size_t)r * ld + (nh + nkv + kvh) * hd + c];
        }
    struct kern_attn_rows r = {.q = qkv + (size_t)pos0 * ld + hd, .k = k, .v = v, .out = out,
                               .ldq = ld, .ldk = hd, .ldv = hd, .ldo = hd, .n = n,
                               .pos0 = pos0, .hd = hd};
    kern_attn_rows(&r, scratch);
    d = 0;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < hd; c++)
            d = fmax(d, fabs(out[(size_t)i * hd + c] -
                             want[(size_t)(pos0 + i) * nh * hd + hd + c]));
    CHECK_MSG(d < 1e-5, "KV rows at pos0 %d (hd %d) differ by %g", pos0, hd, d);
    free(k), free(v), free(out);
    free(qkv), free(want), free(got), free(got2), free(att), free(scratch);
}

static void
test_rmsnorm_infer(void)
{
    enum { N = 70, D = 37 };
    float x[N * D], w[D], y1[N * D], y2[N * D], r1[N], r2[N];
    unsigned s = 5;
    for (int i = 0; i < N * D; i++)
        x[i] = 4.0f * rnd(&s);
    for (int i = 0; i < D; i++)
        w[i] = 1.0f + rnd(&s);
    kern_rmsnorm_fwd(NULL, y1, r1, x, w, N, D, 1e-5f);
    kern_rmsnorm_fwd_infer(NULL, y2, r2, x, w, N, D, 1e-5f);
    double d = 0;
    for (int i = 0; i < N * D; i++)
        d = fmax(d, fabs(y1[i] - y2[i]) / fmax(1, fabs(y1[i])));
    CHECK_MSG(d < 1e-6, "rmsnorm differs by %g", d);
    for (int i = 0; i < N; i++)
        CHECK_NEAR(r1[i], r2[i], 1e-6 * r1[i]);
}

int
main(void)
{
    test_attn_infer(2, 37, 4, 2, 32); // a short last block (37 = 4 * 8 + 5), grouped kv
    test_attn_infer(1, 80, 2, 2, 8);  // hd below one vector: the scalar tail only
    test_attn_infer(2, 21, 4, 4, 24); // hd = 16 + 8: the vector path, then the scalar tail
    test_attn_infer(1, 130, 2, 1, 64);
    test_rmsnorm_infer();
    return test_summary();
}

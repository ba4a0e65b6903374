// SPDX-License-Identifier: MIT
// Unit tests for common/quant: exact bytes against ggml's reference quantizers (a committed
// fixture produced by tests/tools/gen_quant_ref from llama.cpp's libggml-base.so: Q8_0, Q4_0,
// Q4_K, Q6_K), hand-derived blocks, vector path == scalar path, round-trip error bounds, edge
// cases, dot products.
#include "half.h"
#include "quant.h"
#include "test.h"
#include "util.h"

#include <stdlib.h>

static uint64_t rng = 12345;

static float
rnd_normal(void)
{
    float s = 0;
    for (int k = 0; k < 6; k++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        s += (float)(rng >> 40) / (float)(1 << 24);
    }
    return (s - 3.0f) * 1.41421356f;
}

// Quantizes x with the vector path and the scalar path; both must give `want` (if non-NULL)
// and each other.
static void
check_bytes(int type, const float *x, int64_t n, const uint8_t *want, const char *what)
{
    size_t bytes = quant_row_size(type, n);
    uint8_t *v = xmalloc(bytes), *s = xmalloc(bytes);
    CHECK_EQ_INT(quant_row_quantize(type, x, v, n), 0);
    CHECK_EQ_INT(quant_row_quantize_scalar(type, x, s, n), 0);
    size_t bb = quant_block_bytes(type), bad_v = 0, bad_s = 0, first = (size_t)-1;
    for (size_t b = 0; b < bytes / bb; b++) {
        if (want && memcmp(v + b * bb, want + b * bb, bb)) {
            bad_v++;
            if (first == (size_t)-1)
                first = b;
        }
        if (memcmp(s + b * bb, want ? want + b * bb : v + b * bb, bb))
            bad_s++;
    }
    CHECK_MSG(bad_v == 0, "%s %s: %zu blocks differ from the reference (first: block %zu)",
              quant_type_name(type), what, bad_v, first);
    CHECK_MSG(bad_s == 0, "%s %s: scalar path: %zu blocks differ", quant_type_name(type), what,
              bad_s);
    free(v);
    free(s);
}

static void
test_ggml_fixture(void)
{
    const char *root = getenv("KILN_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/unit/data/quant_ggml_ref.bin", root ? root : ".");
    struct buf f = {0};
    struct kerr err;
    int rc = read_file(path, 1 << 20, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK(f.len > 12 && memcmp(f.p, "KQREF1\0\0", 8) == 0);
    uint32_t n;
    memcpy(&n, f.p + 8, 4);
    size_t off = 12 + (size_t)n * 4;
    CHECK(off <= f.len);
    float *x = xmalloc((size_t)n * 4);
    memcpy(x, f.p + 12, (size_t)n * 4);
    int seen = 0;
    while (off + 8 <= f.len) {
        uint32_t type, nb;
        memcpy(&type, f.p + off, 4);
        memcpy(&nb, f.p + off + 4, 4);
        off += 8;
        CHECK(off + nb <= f.len && nb == quant_row_size((int)type, n));
        if (off + nb > f.len)
            break;
        check_bytes((int)type, x, n, (const uint8_t *)f.p + off, "ggml fixture");
        off += nb;
        seen++;
    }
    CHECK_EQ_INT(seen, 4);
    free(x);
    buf_free(&f);
}

static void
test_hand_blocks(void)
{
    float x[256];
    uint8_t y[144];

    // Q8_0: x = j - 16; amax 16, d = 16/127 -> fp16 0x3008; q = roundf(x * 127/16).
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    quant_row_quantize(QTYPE_Q8_0, x, y, 32);
    CHECK(y[0] == 0x08 && y[1] == 0x30);
    CHECK_EQ_INT((int8_t)y[2 + 0], -127);
    CHECK_EQ_INT((int8_t)y[2 + 17], 8);   // 1 * 7.9375
    CHECK_EQ_INT((int8_t)y[2 + 18], 16);  // 15.875
    CHECK_EQ_INT((int8_t)y[2 + 31], 119); // 119.06
    CHECK_EQ_INT((int8_t)y[2 + 14], -16); // -2 * 7.9375 = -15.875
    // Ties go away from zero (roundf): amax 127 gives d = 1, so 2.5 -> 3, -3.5 -> -4.
    memset(x, 0, sizeof x);
    x[0] = 127, x[1] = 2.5f, x[2] = -3.5f, x[3] = 0.5f, x[4] = -0.5f;
    quant_row_quantize(QTYPE_Q8_0, x, y, 32);
    CHECK(y[0] == 0x00 && y[1] == 0x3c);
    CHECK((int8_t)y[3] == 3 && (int8_t)y[4] == -4 && (int8_t)y[5] == 1 && (int8_t)y[6] == -1);

    // Q4_0: the first value of largest magnitude is -8, so d = 1 and q = x + 8.
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 16) - 8;
    quant_row_quantize(QTYPE_Q4_0, x, y, 32);
    CHECK(y[0] == 0x00 && y[1] == 0x3c);
    int ok = 1;
    for (int j = 0; j < 16; j++)
        ok &= y[2 + j] == (uint8_t)(j * 17);
    CHECK(ok);
    // +8 as the largest value: d = -1, so 8 maps to q 0 and -7 to q 15 (clamped from 15.5).
    x[0] = 8;
    x[1] = -7;
    quant_row_quantize(QTYPE_Q4_0, x, y, 32);
    CHECK(y[0] == 0x00 && y[1] == 0xbc);
    CHECK((y[2] & 15) == 0 && (y[3] & 15) == 15);
    // All zeros: d = 0/-8 = -0.0 (fp16 0x8000), every nibble 8 — as ggml writes it.
    memset(x, 0, sizeof x);
    quant_row_quantize(QTYPE_Q4_0, x, y, 32);
    CHECK(y[0] == 0x00 && y[1] == 0x80 && y[2] == 0x88 && y[17] == 0x88);

    // Q4_K: zeros give an all-zero block.
    quant_row_quantize(QTYPE_Q4_K, x, y, 256);
    ok = 1;
    for (int j = 0; j < 144; j++)
        ok &= y[j] == 0;
    CHECK(ok);
    // Q4_K layout: values 0..15 step 1, min 0: the levels come out as the values (scale 1 up
    // to fp16 rounding of d), low nibbles hold values 64c + l, high nibbles 64c + 32 + l.
    for (int j = 0; j < 256; j++)
        x[j] = (float)(j % 16);
    quant_row_quantize(QTYPE_Q4_K, x, y, 256);
    float back[256];
    quant_row_dequantize(QTYPE_Q4_K, y, back, 256);
    ok = 1;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            ok &= (y[16 + 32 * c + l] & 15) == (64 * c + l) % 16 &&
                  (y[16 + 32 * c + l] >> 4) == (64 * c + 32 + l) % 16;
    CHECK(ok);
    double worst = 0;
    for (int j = 0; j < 256; j++)
        worst = fmax(worst, fabs(back[j] - x[j]));
    CHECK(worst < 0.01);

    // NF4: codes 0 and 15 at the ends, 7 (0.0) elsewhere; high nibble first.
    memset(x, 0, sizeof x);
    x[0] = -2, x[1] = 2, x[2] = 2 * 0.0795802995f, x[3] = -2 * 0.0910500363f;
    quant_row_quantize(QTYPE_NF4, x, y, 64);
    float amax;
    memcpy(&amax, y, 4);
    CHECK(amax == 2.0f);
    CHECK(y[4] == 0x0f && y[5] == 0x86 && y[6] == 0x77);
    quant_row_dequantize(QTYPE_NF4, y, back, 64);
    CHECK(back[0] == -2 && back[1] == 2 && back[2] == 2 * quant_nf4_codes[8] && back[9] == 0);

    // F16 / BF16 bytes.
    x[0] = 1.0f, x[1] = -2.0f;
    quant_row_quantize(QTYPE_F16, x, y, 2);
    CHECK(y[0] == 0x00 && y[1] == 0x3c && y[2] == 0x00 && y[3] == 0xc0);
    quant_row_quantize(QTYPE_BF16, x, y, 2);
    CHECK(y[0] == 0x80 && y[1] == 0x3f && y[2] == 0x00 && y[3] == 0xc0);
}

// Round trips of Gaussian rows: RMSE relative to the data's RMS, and per-block max error.
static void
test_round_trip(void)
{
    enum { N = 256 * 64 };
    float *x = xmalloc(N * 4), *y = xmalloc(N * 4);
    uint8_t *q = xmalloc(N * 4);
    for (int i = 0; i < N; i++)
        x[i] = rnd_normal() * ((i / 256) % 3 == 0 ? 0.02f : 1.0f);
    static const struct {
        int type;
        double rel_rmse;
    } cases[] = {{QTYPE_F32, 0},     {QTYPE_F16, 4e-4},  {QTYPE_BF16, 3e-3},  {QTYPE_Q8_0, 6e-3},
                 {QTYPE_Q4_0, 0.12}, {QTYPE_Q4_K, 0.09}, {QTYPE_Q6_K, 0.025}, {QTYPE_NF4, 0.11}};
    for (size_t c = 0; c < KILN_ARRAY_LEN(cases); c++) {
        int t = cases[c].type;
        CHECK_EQ_INT(quant_row_quantize(t, x, q, N), 0);
        CHECK_EQ_INT(quant_row_dequantize(t, q, y, N), 0);
        double se = 0, ss = 0;
        for (int i = 0; i < N; i++) {
            se += (double)(x[i] - y[i]) * (x[i] - y[i]);
            ss += (double)x[i] * x[i];
        }
        double rel = sqrt(se / ss);
        CHECK_MSG(rel <= cases[c].rel_rmse, "%s: relative RMSE %.5f > %.5f", quant_type_name(t),
                  rel, cases[c].rel_rmse);
        if (t == QTYPE_F32)
            CHECK(memcmp(x, y, N * 4) == 0);
        // The dot helper agrees with dequantize-then-dot.
        double ref = 0;
        for (int i = 0; i < N; i++)
            ref += (double)y[i] * x[i];
        CHECK_NEAR(quant_row_dot(t, q, x, N), ref, 1e-4);
        check_bytes(t, x, N, NULL, "random rows");
    }
    // An odd number of Q4_K super-blocks: pairs take the AVX-512 path, the last one AVX2.
    check_bytes(QTYPE_Q4_K, x + 256, 256 * 3, NULL, "three super-blocks");
    // Per-element bounds: Q8_0 within half a step (plus fp16 rounding of d), Q4_0 within one
    // step, for each block.
    quant_row_quantize(QTYPE_Q8_0, x, q, N);
    quant_row_dequantize(QTYPE_Q8_0, q, y, N);
    int bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
        for (int j = 0; j < 32; j++)
            bad += fabsf(x[32 * b + j] - y[32 * b + j]) > amax / 127 * 0.57f;
    }
    CHECK_EQ_INT(bad, 0);
    quant_row_quantize(QTYPE_Q4_0, x, q, N);
    quant_row_dequantize(QTYPE_Q4_0, q, y, N);
    bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
        for (int j = 0; j < 32; j++)
            bad += fabsf(x[32 * b + j] - y[32 * b + j]) > amax / 8 * 1.01f;
    }
    CHECK_EQ_INT(bad, 0);
    free(x);
    free(y);
    free(q);
}

static void
test_edge_cases(void)
{
    static const int types[] = {QTYPE_F32,  QTYPE_F16,  QTYPE_BF16, QTYPE_Q8_0,
                                QTYPE_Q4_0, QTYPE_Q4_K, QTYPE_Q6_K, QTYPE_NF4};
    float x[256], y[256];
    uint8_t q[1024];
    for (size_t t = 0; t < KILN_ARRAY_LEN(types); t++) {
        int ty = types[t];
        const char *nm = quant_type_name(ty);
        // All zeros come back as zeros.
        memset(x, 0, sizeof x);
        quant_row_quantize(ty, x, q, 256);
        quant_row_dequantize(ty, q, y, 256);
        int ok = 1;
        for (int i = 0; i < 256; i++)
            ok &= y[i] == 0;
        CHECK_MSG(ok, "%s: zeros", nm);
        // Constant rows (positive and negative) come back within fp16 rounding of the scale.
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            for (int i = 0; i < 256; i++)
                x[i] = sgn * 0.3f;
            quant_row_quantize(ty, x, q, 256);
            quant_row_dequantize(ty, q, y, 256);
            double worst = 0;
            for (int i = 0; i < 256; i++)
                worst = fmax(worst, fabs(y[i] - x[i]));
            CHECK_MSG(worst <= 0.3 * (ty == QTYPE_BF16 ? 4e-3 : 2e-3), "%s: constant %g: error %g",
                      nm, sgn * 0.3, worst);
        }
        // Subnormal inputs: finite output, no larger than the input scale.
        for (int i = 0; i < 256; i++)
            x[i] = (i % 7 - 3) * 1e-41f;
        quant_row_quantize(ty, x, q, 256);
        quant_row_dequantize(ty, q, y, 256);
        ok = 1;
        for (int i = 0; i < 256; i++)
            ok &= isfinite(y[i]) && fabsf(y[i]) <= 4e-41f;
        CHECK_MSG(ok, "%s: subnormals", nm);
        // Large values within fp16 range of the scale survive with the type's precision.
        for (int i = 0; i < 256; i++)
            x[i] = (float)(i % 11 - 5) * 1000.0f;
        quant_row_quantize(ty, x, q, 256);
        quant_row_dequantize(ty, q, y, 256);
        double worst = 0;
        for (int i = 0; i < 256; i++)
            worst = fmax(worst, fabs(y[i] - x[i]));
        CHECK_MSG(worst <= 5000 * 0.15, "%s: large values: error %g", nm, worst);
    }
    // Huge values: F32 is exact; Q8_0's scale overflows fp16 to Inf (as in ggml).
    for (int i = 0; i < 32; i++)
        x[i] = 1e30f * (i - 16);
    quant_row_quantize(QTYPE_F32, x, q, 32);
    quant_row_dequantize(QTYPE_F32, q, y, 32);
    CHECK(memcmp(x, y, 32 * 4) == 0);
    quant_row_quantize(QTYPE_Q8_0, x, q, 32);
    CHECK(q[0] == 0x00 && q[1] == 0x7c);
}

static void
test_api(void)
{
    CHECK_EQ_INT(quant_row_size(QTYPE_Q8_0, 64), 68);
    CHECK_EQ_INT(quant_row_size(QTYPE_Q4_0, 64), 36);
    CHECK_EQ_INT(quant_row_size(QTYPE_Q4_K, 512), 288);
    CHECK_EQ_INT(quant_row_size(QTYPE_Q6_K, 512), 420);
    CHECK_EQ_INT(quant_row_size(QTYPE_Q6_K, 128), 0);
    CHECK_EQ_INT(quant_row_size(QTYPE_NF4, 128), 72);
    CHECK_EQ_INT(quant_row_size(QTYPE_F16, 3), 6);
    CHECK_EQ_INT(quant_row_size(QTYPE_Q4_K, 32), 0);
    CHECK_EQ_INT(quant_row_size(QTYPE_Q8_0, 33), 0);
    CHECK_EQ_INT(quant_row_size(99, 32), 0);
    float x[64] = {0};
    uint8_t q[64];
    CHECK_EQ_INT(quant_row_quantize(QTYPE_Q8_0, x, q, 33), -1);
    CHECK_EQ_INT(quant_row_quantize(77, x, q, 32), -1);
    CHECK_EQ_INT(quant_row_dequantize(QTYPE_Q4_K, q, x, 64), -1);
    CHECK(isnan(quant_row_dot(QTYPE_Q4_0, q, x, 31)));
    CHECK_EQ_STR(quant_type_name(QTYPE_Q4_K), "Q4_K");
    CHECK_EQ_INT(quant_type_parse("q8_0"), QTYPE_Q8_0);
    CHECK_EQ_INT(quant_type_parse("bf16"), QTYPE_BF16);
    CHECK_EQ_INT(quant_type_parse("q6_k"), QTYPE_Q6_K);
    CHECK_EQ_INT(quant_type_parse("Q5_K"), -1);
    CHECK(quant_type_known(QTYPE_NF4) && !quant_type_known(3));
}

int
main(void)
{
    test_api();
    test_ggml_fixture();
    test_hand_blocks();
    test_round_trip();
    test_edge_cases();
    return test_summary();
}

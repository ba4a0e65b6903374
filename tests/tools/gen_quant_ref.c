// SPDX-License-Identifier: MIT
// gen_quant_ref: writes the committed fixture tests/unit/data/quant_ggml_ref.bin by running
// ggml's own reference quantizers (quantize_row_{q8_0,q4_0,q4_K,q6_K}_ref from libggml-base.so, as
// shipped in the npm package node-llama-cpp 3.21.1) on a fixed set of input blocks that cover
// the edge cases (zeros, constants, ties, outliers, subnormals, huge values, random rows).
// Run once by hand; the unit test reads the fixture and needs neither this tool nor ggml:
//
//   gen_quant_ref PATH/TO/libggml-base.so OUT.bin
//
// Fixture layout (little-endian): "KQREF1\0\0", u32 n (floats), n f32 inputs, then for each of
// Q8_0, Q4_0, Q4_K, Q6_K: u32 ggml type, u32 byte count, the bytes. Also prints ggml's dequantized
// Q4_K row checksum for a sanity check of our dequantizer.
#include "quant.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*quant_fn)(const float *x, void *y, int64_t k);

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double
rng_uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static float
rng_normal(void)
{
    double u = rng_uniform(), v = rng_uniform();
    return (float)(sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

enum { NBLK = 24, N = NBLK * 256 };

static void
make_inputs(float *x)
{
    for (int b = 0; b < NBLK; b++) {
        float *p = x + 256 * b;
        for (int i = 0; i < 256; i++) {
            float r = rng_normal();
            switch (b) {
            case 0:
                p[i] = 0.0f;
                break; // zeros
            case 1:
                p[i] = 0.5f;
                break; // constant > 0
            case 2:
                p[i] = -0.25f;
                break; // constant < 0
            case 3:
                p[i] = (float)((i % 255) - 127);
                break; // ints, amax 127
            case 4:
                p[i] = (float)(i % 17) - 8.0f + ((i & 1) ? 0.5f : 0);
                break; // ties
            case 5:
                p[i] = r * 1e-3f;
                break;
            case 6:
                p[i] = r * 1e4f;
                break; // large
            case 7:
                p[i] = r * 1e6f;
                break; // fp16 scale overflow
            case 8:
                p[i] = r * 1e-40f;
                break; // subnormal inputs
            case 9:
                p[i] = r * 1e-30f;
                break; // tiny normal
            case 10:
                p[i] = fabsf(r) + 0.1f;
                break; // all positive
            case 11:
                p[i] = -fabsf(r) - 0.1f;
                break; // all negative
            case 12:
                p[i] = (i == 77) ? 40.0f : r * 0.02f;
                break; // outlier
            case 13:
                p[i] = (i % 32 == 5) ? -9.0f : r;
                break; // negative outliers
            case 14:
                p[i] = (i / 32 == 3) ? 0.0f : r;
                break; // one flat sub-block
            case 15:
                p[i] = (i / 32) % 2 ? r * 100 : r * 0.01f;
                break; // mixed sub-blocks
            case 16:
                p[i] = (i % 32 < 16) ? 1.0f : -1.0f;
                break; // two levels
            case 17:
                p[i] = (float)(i % 5) * 0.25f;
                break; // min 0, exact grid
            default:
                p[i] = r * (float)pow(10.0, (b % 5) - 2);
                break; // random rows
            }
        }
    }
}

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_quant_ref LIBGGML_BASE_SO OUT\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "gen_quant_ref: %s\n", dlerror());
        return 1;
    }
    static const struct {
        int type;
        const char *sym;
    } fns[] = {{QTYPE_Q8_0, "quantize_row_q8_0_ref"},
               {QTYPE_Q4_0, "quantize_row_q4_0_ref"},
               {QTYPE_Q4_K, "quantize_row_q4_K_ref"},
               {QTYPE_Q6_K, "quantize_row_q6_K_ref"}};
    float *x = malloc(N * sizeof(float));
    make_inputs(x);
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    uint32_t n = N;
    fwrite("KQREF1\0\0", 1, 8, f);
    fwrite(&n, 4, 1, f);
    fwrite(x, 4, N, f);
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        quant_fn fn = (quant_fn)dlsym(h, fns[i].sym);
        if (!fn) {
            fprintf(stderr, "gen_quant_ref: %s: %s\n", fns[i].sym, dlerror());
            return 1;
        }
        size_t bytes = quant_row_size(fns[i].type, N);
        uint8_t *y = calloc(1, bytes);
        fn(x, y, N);
        uint32_t t = (uint32_t)fns[i].type, nb = (uint32_t)bytes;
        fwrite(&t, 4, 1, f);
        fwrite(&nb, 4, 1, f);
        fwrite(y, 1, bytes, f);
        // How many blocks differ from ours (informational).
        uint8_t *ours = calloc(1, bytes);
        quant_row_quantize(fns[i].type, x, ours, N);
        size_t bb = quant_block_bytes(fns[i].type), diff = 0;
        for (size_t k = 0; k < bytes / bb; k++)
            diff += memcmp(y + k * bb, ours + k * bb, bb) != 0;
        printf("%s: %zu bytes, %zu of %zu blocks differ from kiln\n", fns[i].sym, bytes, diff,
               bytes / bb);
        free(ours);
        free(y);
    }
    if (fclose(f) != 0) {
        perror(argv[2]);
        return 1;
    }
    free(x);
    dlclose(h);
    return 0;
}

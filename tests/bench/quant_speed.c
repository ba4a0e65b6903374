// SPDX-License-Identifier: MIT
// quant_speed: single-thread throughput of quant_row_quantize / quant_row_dequantize per type,
// in MB/s of f32 (4 bytes per value), on a fixed pseudo-random matrix (rows of 4096 values,
// 16 MiB of f32 by default). Prints one line per type and direction:
//
//   quant_speed [MIB] [TYPE...]      e.g. quant_speed 16 Q8_0 Q4_K
//
// Each measurement repeats until at least 0.5 s have passed and reports the best of three
// such runs (the machine is shared and noisy). The vector path is the default; set
// QUANT_SCALAR=1 to time the scalar reference. With QUANT_GGML_LIB=path/to/libggml-base.so
// (llama.cpp's, e.g. from node-llama-cpp) a third column times ggml's reference quantizer of
// the same type on the same rows — the one llama-quantize uses — as a baseline.
#include "quant.h"
#include "util.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool scalar; // time the scalar path (QUANT_SCALAR=1)

typedef void (*ggml_quant_fn)(const float *x, void *y, int64_t k);

// ggml: when non-NULL, times ggml's quantizer instead of ours.
static double
run(int type, bool dequant, ggml_quant_fn ggml, const float *x, void *q, float *y, int64_t rows,
    int64_t cols)
{
    size_t rs = quant_row_size(type, cols);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_seconds(), t;
        int64_t done = 0;
        do {
            for (int64_t r = 0; r < rows; r++) {
                if (ggml)
                    ggml(x + r * cols, (char *)q + r * rs, cols);
                else if (dequant)
                    quant_row_dequantize(type, (char *)q + r * rs, y + r * cols, cols);
                else if (scalar)
                    quant_row_quantize_scalar(type, x + r * cols, (char *)q + r * rs, cols);
                else
                    quant_row_quantize(type, x + r * cols, (char *)q + r * rs, cols);
            }
            done += rows * cols;
            t = now_seconds() - t0;
        } while (t < 0.5);
        double mbs = done * 4.0 / t / 1e6;
        if (mbs > best)
            best = mbs;
    }
    return best;
}

int
main(int argc, char **argv)
{
    int mib = argc > 1 ? atoi(argv[1]) : 16;
    if (mib <= 0)
        mib = 16;
    const int64_t cols = 4096, rows = (int64_t)mib * 1024 * 1024 / 4 / cols;
    float *x = xmalloc((size_t)(rows * cols) * 4), *y = xmalloc((size_t)(rows * cols) * 4);
    uint64_t s = 42;
    for (int64_t i = 0; i < rows * cols; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = ((float)(s >> 40) / (float)(1 << 24) - 0.5f) * 0.1f;
    }
    void *q = xmalloc(quant_row_size(QTYPE_F32, rows * cols));
    scalar = getenv("QUANT_SCALAR") && atoi(getenv("QUANT_SCALAR"));
    const char *lib = getenv("QUANT_GGML_LIB");
    void *ggml = lib && *lib ? dlopen(lib, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (lib && *lib && !ggml)
        fprintf(stderr, "quant_speed: %s\n", dlerror());
    static const char *all[] = {"F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "NF4"};
    int ntypes = argc > 2 ? argc - 2 : (int)(sizeof(all) / sizeof(all[0]));
    for (int i = 0; i < ntypes; i++) {
        const char *name = argc > 2 ? argv[2 + i] : all[i];
        int type = quant_type_parse(name);
        if (type < 0) {
            fprintf(stderr, "quant_speed: unknown type %s\n", name);
            return 2;
        }
        double qs = run(type, false, NULL, x, q, y, rows, cols);
        double ds = run(type, true, NULL, x, q, y, rows, cols);
        printf("%-5s quantize %8.1f MB/s   dequantize %8.1f MB/s%s", name, qs, ds,
               scalar ? "   (scalar)" : "");
        char sym[64];
        snprintf(sym, sizeof sym, "quantize_row_%s_ref", name);
        for (char *c = sym + 13; *c; c++) // ggml's names: q8_0, q4_0, q4_K
            if (*c != 'K')
                *c = (char)tolower((unsigned char)*c);
        ggml_quant_fn fn = ggml ? (ggml_quant_fn)dlsym(ggml, sym) : NULL;
        if (fn)
            printf("   ggml %8.1f MB/s", run(type, false, fn, x, q, y, rows, cols));
        printf("\n");
    }
    if (ggml)
        dlclose(ggml);
    free(x);
    free(y);
    free(q);
    return 0;
}

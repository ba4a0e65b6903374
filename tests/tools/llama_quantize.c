// SPDX-License-Identifier: MIT
// llama_quantize: quantizes a GGUF with llama.cpp's own llama_model_quantize (dlopen'ed from
// the libllama of the npm package node-llama-cpp 3.21.1) and compares the result with a file
// kiln wrote, tensor by tensor: same names, types, shapes and bytes. The interop test uses it to
// check that kiln's Q4_K_M mix is llama.cpp's, block for block.
//
//   llama_quantize LIBLLAMA_SO IN.gguf OUT.gguf FTYPE [EMBD_TYPE] KILN.gguf
//
// FTYPE is a llama_ftype number (15 = Q4_K_M); EMBD_TYPE a ggml type number for
// token_embd.weight (llama-quantize's --token-embedding-type), or -1 for llama.cpp's default.
// Prints one line per differing tensor and a summary; exit 0 when every tensor is identical.
#include "gguf.h"
#include "quant.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The leading fields of llama.cpp's llama_model_quantize_params (stable across versions);
// the padding leaves room for the fields newer versions append. Returned by value from
// llama_model_quantize_default_params: larger than 16 bytes, so through a caller-provided
// buffer on x86-64 and AArch64 alike, which the padding makes big enough.
struct quantize_params {
    int32_t nthread;
    int32_t ftype;
    int32_t output_tensor_type;
    int32_t token_embedding_type;
    bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split;
    void *imatrix, *kv_overrides, *tensor_types, *prune_layers;
    unsigned char pad[512];
};

typedef struct quantize_params (*default_params_fn)(void);
typedef uint32_t (*quantize_fn)(const char *in, const char *out, const struct quantize_params *p);

int
main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: llama_quantize LIBLLAMA_SO IN.gguf OUT.gguf FTYPE EMBD_TYPE "
                        "KILN.gguf\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "llama_quantize: %s\n", dlerror());
        return 1;
    }
    default_params_fn defaults = (default_params_fn)dlsym(h, "llama_model_quantize_default_params");
    quantize_fn quantize = (quantize_fn)dlsym(h, "llama_model_quantize");
    if (!defaults || !quantize) {
        fprintf(stderr, "llama_quantize: %s\n", dlerror());
        return 1;
    }
    struct quantize_params p = defaults();
    // Sanity of the layout: both type overrides are unset (GGML_TYPE_COUNT, above every type
    // quant.h knows) and quantize_output_tensor is on.
    if (p.output_tensor_type != p.token_embedding_type || p.output_tensor_type < 30 ||
        !p.quantize_output_tensor) {
        fprintf(stderr, "llama_quantize: unexpected llama_model_quantize_params layout\n");
        return 1;
    }
    p.nthread = 1;
    p.ftype = atoi(argv[4]);
    if (atoi(argv[5]) >= 0)
        p.token_embedding_type = atoi(argv[5]);
    if (quantize(argv[2], argv[3], &p) != 0) {
        fprintf(stderr, "llama_quantize: llama_model_quantize failed\n");
        return 1;
    }

    struct gguf_file a, b;
    struct kerr err;
    if (gguf_open(&a, argv[3], &err) || gguf_open(&b, argv[6], &err)) {
        fprintf(stderr, "llama_quantize: %s\n", err.msg);
        return 1;
    }
    int bad = 0;
    if (a.n_tensors != b.n_tensors) {
        printf("tensor count: llama.cpp %llu, kiln %llu\n", (unsigned long long)a.n_tensors,
               (unsigned long long)b.n_tensors);
        bad++;
    }
    for (uint64_t i = 0; i < a.n_tensors; i++) {
        const struct gguf_tensor *x = &a.tensors[i], *y = gguf_find_tensor(&b, x->name);
        if (!y) {
            printf("%s: missing from kiln's file\n", x->name);
            bad++;
        } else if (x->type != y->type) {
            printf("%s: llama.cpp %s, kiln %s\n", x->name, gguf_tensor_type_name(x->type),
                   gguf_tensor_type_name(y->type));
            bad++;
        } else if (x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes) != 0) {
            printf("%s (%s): bytes differ\n", x->name, gguf_tensor_type_name(x->type));
            bad++;
        }
    }
    int n_q6k = 0;
    for (uint64_t i = 0; i < a.n_tensors; i++)
        n_q6k += a.tensors[i].type == QTYPE_Q6_K;
    printf("%llu tensors (%d Q6_K), %d differ\n", (unsigned long long)a.n_tensors, n_q6k, bad);
    gguf_close(&a);
    gguf_close(&b);
    dlclose(h);
    return bad ? 1 : 0;
}

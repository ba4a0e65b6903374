// SPDX-License-Identifier: MIT
// fuzz_gguf: libFuzzer target for the GGUF reader. Any input must either be refused with an
// error or parse into a file whose every KV, array element and tensor can be read (and small
// tensors dequantized) without going out of bounds; gguf_model_read then runs on it too.
#include "gguf.h"
#include "gguf_model.h"
#include "quant.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file g;
    struct kerr err;
    if (gguf_open_mem(&g, data, size, &err) != 0)
        return 0;
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const struct gguf_kv *kv = &g.kv[i];
        int64_t iv;
        double fv;
        struct gguf_str sv;
        if (gguf_kv_int(kv, &iv, NULL) == 0)
            sink += (uint64_t)iv;
        if (gguf_kv_float(kv, &fv, NULL) == 0)
            sink += fv != 0;
        if (gguf_kv_str(kv, &sv, NULL) == 0 && sv.n)
            sink += (uint8_t)sv.p[sv.n - 1];
        if (kv->type == GGUF_TYPE_ARRAY) {
            for (uint64_t j = 0; j < kv->n && j < 4096; j++) {
                if (gguf_kv_arr_int(kv, j, &iv, NULL) == 0)
                    sink += (uint64_t)iv;
                if (gguf_kv_arr_float(kv, j, &fv, NULL) == 0)
                    sink += fv != 0;
                if (gguf_kv_arr_str(kv, j, &sv, NULL) == 0 && sv.n)
                    sink += (uint8_t)sv.p[0];
            }
        }
        if (gguf_find_kv(&g, kv->key) == NULL)
            abort();
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const struct gguf_tensor *t = &g.tensors[i];
        if (t->nbytes && (t->data < data || t->data + t->nbytes > data + size))
            abort();
        if (t->n_elem > 0 && t->n_elem <= (1 << 16)) {
            float *out = malloc((size_t)t->n_elem * sizeof(float));
            if (gguf_tensor_to_f32(t, out, NULL) == 0)
                sink += out[t->n_elem - 1] != 0;
            free(out);
        }
        if (gguf_find_tensor(&g, t->name) == NULL)
            abort();
    }
    // The model reader validates the llama keys and tensor shapes on top (bounded allocation).
    struct model m;
    if (gguf_model_read(&g, &m, NULL) == 0)
        model_free(&m);
    (void)sink;
    gguf_close(&g);
    return 0;
}

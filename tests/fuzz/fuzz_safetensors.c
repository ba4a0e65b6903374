// SPDX-License-Identifier: MIT
// fuzz_safetensors: st_parse on arbitrary bytes must either fail cleanly or accept a file
// whose every float tensor can be converted without reading outside the input.
#include "safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // A private copy so reads past the end are caught exactly at the boundary.
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    struct st_file f;
    struct kerr err;
    if (st_parse(&f, copy, size, "fuzz", &err) == 0) {
        for (size_t i = 0; i < f.n; i++) {
            const struct st_tensor *t = &f.tensors[i];
            float *out = malloc((size_t)t->numel * sizeof(float) + 1);
            st_read_f32(&f, t, out, &err);
            free(out);
        }
        st_close(&f);
    }
    free(copy);
    return 0;
}

// SPDX-License-Identifier: MIT
// fuzz_tiktoken: libFuzzer target for the tiktoken rank-file loader. Properties: no crash or
// leak on any input; an accepted vocabulary encodes the input itself (any bytes) and decodes
// it back exactly, with the hand-written and the regex pre-tokenizers alike.
#include "tok.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const patterns[] = {"gpt2", "o200k", "\\p{L}+|\\s+|."};
    struct kerr err;
    const char *pat = patterns[size % 3];
    struct tok *t = tok_load_tiktoken((const char *)data, size, "fuzz", pat, &err);
    if (!t)
        return 0;
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids ids = {0};
    struct buf back = {0};
    if (tok_encode(e, (const char *)data, size, 0, &ids, &err) == 0) {
        if (tok_decode(t, ids.v, ids.n, &back, &err) != 0 || back.len != size ||
            memcmp(back.p, data, size) != 0)
            abort();
    }
    tok_ids_free(&ids);
    buf_free(&back);
    tok_enc_del(e);
    tok_del(t);
    return 0;
}

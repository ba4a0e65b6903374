// SPDX-License-Identifier: MIT
// fuzz_tokjson: libFuzzer target for the JSON tokenizer loaders (HF tokenizer.json and the npm
// tiktoken encoder JSON). Properties: no crash or leak on any input; an accepted tokenizer
// encodes and decodes back a fixed text and the input itself, and save → load → save gives
// identical bytes.
#include "tok.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
check(struct tok *t, const uint8_t *data, size_t size)
{
    struct kerr err;
    struct tok_enc *e = tok_enc_new(t);
    static const char text[] = "Hello, world! It's 2024 <|endoftext|>\r\n  \xf0\x9f\x98\x80 caf\xc3\xa9";
    const char *inputs[2] = {text, (const char *)data};
    size_t lens[2] = {sizeof text - 1, size < 4096 ? size : 4096};
    for (int k = 0; k < 2; k++) {
        struct tok_ids ids = {0};
        struct buf back = {0};
        if (tok_encode(e, inputs[k], lens[k], k ? TOK_ALLOW_SPECIAL : 0, &ids, &err) == 0 &&
            tok_decode(t, ids.v, ids.n, &back, &err) == 0 &&
            (back.len != lens[k] || memcmp(back.p, inputs[k], lens[k]) != 0))
            abort();
        tok_ids_free(&ids);
        buf_free(&back);
    }
    tok_enc_del(e);
    struct buf j1 = {0}, j2 = {0};
    tok_save_hf(t, &j1);
    struct tok *t2 = tok_load_hf(j1.p, j1.len, "saved", &err);
    if (!t2)
        abort(); // what we write, we must read
    tok_save_hf(t2, &j2);
    if (j1.len != j2.len || memcmp(j1.p, j2.p, j1.len) != 0)
        abort();
    tok_del(t2);
    buf_free(&j1);
    buf_free(&j2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kerr err;
    struct tok *t = tok_load_hf((const char *)data, size, "fuzz", &err);
    if (t) {
        check(t, data, size);
        tok_del(t);
    }
    t = tok_load_npm((const char *)data, size, "fuzz", &err);
    if (t) {
        check(t, data, size);
        tok_del(t);
    }
    return 0;
}

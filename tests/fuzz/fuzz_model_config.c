// SPDX-License-Identifier: MIT
// fuzz_model_config: the JSON configs that come with a downloaded model — config.json
// (ckpt_config_parse) and a PEFT adapter's adapter_config.json (lora_config_parse). Any bytes
// must either fail cleanly with a message or give a config; an accepted model config that
// passes model_config_check formats to text that parses back to the same text (a fixed point).
#include "checkpoint.h"
#include "lora.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    struct kerr err = {{0}};
    struct model_config c;
    if (ckpt_config_parse(&c, copy, size, "config.json", &err) == 0 &&
        model_config_check(&c, &err) == 0) {
        struct buf out;
        buf_init(&out);
        ckpt_config_format(&c, &out);
        struct model_config again;
        struct buf out2;
        buf_init(&out2);
        if (ckpt_config_parse(&again, out.p, out.len, "formatted", &err) != 0)
            abort();
        ckpt_config_format(&again, &out2);
        if (out.len != out2.len || memcmp(out.p, out2.p, out.len) != 0)
            abort();
        buf_free(&out);
        buf_free(&out2);
    } else if (!err.msg[0]) {
        abort(); // a failure must say why
    }
    struct lora_config lc;
    err.msg[0] = 0;
    if (lora_config_parse(&lc, copy, size, "adapter_config.json", &err) != 0 && !err.msg[0])
        abort();
    free(copy);
    return 0;
}

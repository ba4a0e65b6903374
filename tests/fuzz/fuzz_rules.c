// SPDX-License-Identifier: MIT
// libFuzzer target: the filter rules-file parser (stages/filter/rules.c) on arbitrary bytes.
// A parse either succeeds or fails with a "name:line:col: " message; a successful parse is
// then evaluated against a small record, so regex compilation and evaluation run too.
#include "../../stages/filter/heur.c"
#include "../../stages/filter/pii.c"
#include "../../stages/filter/rules.c"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rules r;
    rules_init(&r);
    struct kerr err = {{0}};
    int rc = rules_parse(&r, "f", (const char *)data, size, &err);
    if (rc < 0) {
        assert(strncmp(err.msg, "f:", 2) == 0);
    } else {
        rules_finish(&r);
        static const char rec[] = "{\"text\":\"Hello wörld 123\",\"label\":\"ham\","
                                  "\"metadata\":{\"score\":0.5,\"a\":{\"b\":\"x\"}}}";
        struct json_obj o;
        json_obj_init(&o);
        struct json_error je;
        json_obj_parse(&o, rec, sizeof rec - 1, &je);
        struct rules_scratch x;
        rules_scratch_init(&x);
        for (size_t i = 0; i < r.n; i++) {
            if (r.steps[i].kind != STEP_RULE)
                continue;
            struct rule_value v;
            rules_eval(&r.steps[i], &o, "text", "Hello wörld 123", 16, &x, &v, &err);
        }
        rules_scratch_free(&x);
        json_obj_free(&o);
    }
    rules_free(&r);
    return 0;
}

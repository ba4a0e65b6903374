// SPDX-License-Identifier: MIT
// Tests for common/tok_template: escapes, fields, overrides and errors.
#include "../../common/tok_template.h"
#include "test.h"

#include <string.h>

static void
expand_eq(const char *tpl, const char *rec, const char *okey, const char *oval, const char *want)
{
    struct kerr err = {{0}};
    struct tok_tpl *t = tok_tpl_new(tpl, &err);
    CHECK_MSG(t != NULL, "%s: %s", tpl, err.msg);
    if (!t)
        return;
    struct json_obj o;
    json_obj_init(&o);
    CHECK(json_obj_parse(&o, rec, strlen(rec), NULL) == 0);
    struct buf out = {0};
    int rc = tok_tpl_expand(t, &o, okey, oval, &out, &err);
    if (want) {
        CHECK_MSG(rc == 0, "%s: %s", tpl, err.msg);
        CHECK_EQ_STR(out.p ? out.p : "", want);
    } else {
        CHECK(rc == -1);
    }
    buf_free(&out);
    json_obj_free(&o);
    tok_tpl_del(t);
}

int
main(void)
{
    expand_eq("{text}\\nLabel:", "{\"text\":\"hi \\\"you\\\"\"}", NULL, NULL, "hi \"you\"\nLabel:");
    expand_eq(" {label}", "{\"label\":\"spam\"}", "label", "ham", " ham");
    expand_eq("{{x}} \\t\\\\ \\q {n}/{b}", "{\"n\":1.5e3,\"b\":true}", NULL, NULL,
              "{x} \t\\ q 1.5e3/true");
    expand_eq("{m.u}", "{\"m\":{\"u\":\"deep\"}}", NULL, NULL, "deep");
    expand_eq("{missing}", "{\"text\":\"a\"}", NULL, NULL, NULL);
    expand_eq("{a}", "{\"a\":[1]}", NULL, NULL, NULL);
    expand_eq("{a}", "{\"a\":null}", NULL, NULL, NULL);
    struct kerr err;
    CHECK(tok_tpl_new("{open", &err) == NULL);
    CHECK(strstr(err.msg, "unclosed") != NULL);
    CHECK(tok_tpl_new("a}b", &err) == NULL);
    CHECK(tok_tpl_new("{}", &err) == NULL);
    struct tok_tpl *t = tok_tpl_new("{text} {label}", &err);
    CHECK(tok_tpl_uses(t, "label") && !tok_tpl_uses(t, "id"));
    tok_tpl_del(t);
    return test_summary();
}

// SPDX-License-Identifier: MIT
// libFuzzer target: e-mail/MIME decoding (common/mime) and the HTML and whitespace transforms
// on arbitrary bytes (repaired to UTF-8 first, as text from JSON always is). The output must
// be valid UTF-8 and decoding must terminate.
#include "../../stages/filter/heur.c"
#include "../../stages/filter/pii.c"
#include "../../stages/filter/rules.c"
#include "../../stages/filter/transform.c"
#include "mime.h"

#include <assert.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf in = {0}, out = {0};
    utf8_repair((const char *)data, size, &in);
    const char *s = in.p ? in.p : "";
    mime_email_text(s, in.len, &out);
    assert(utf8_valid_prefix(out.p ? out.p : "", out.len) == out.len);
    for (int t = 0; t < TR_COUNT; t++) {
        struct kerr err;
        transform_apply((enum transform_id)t, s, in.len, &out, &err);
        assert(utf8_valid_prefix(out.p, out.len) == out.len);
    }
    out.len = 0;
    uint64_t counts[PII_NTYPES] = {0};
    pii_redact(s, in.len, PII_ALL, &out, counts);
    assert(utf8_valid_prefix(out.p ? out.p : "", out.len) == out.len);
    // Raw bytes straight into the decoders (they take any bytes).
    out.len = 0;
    mime_qp_decode((const char *)data, size, &out);
    mime_base64_decode((const char *)data, size, &out);
    out.len = 0;
    mime_header_decode((const char *)data, size, &out);
    assert(utf8_valid_prefix(out.p ? out.p : "", out.len) == out.len);
    buf_free(&in);
    buf_free(&out);
    return 0;
}

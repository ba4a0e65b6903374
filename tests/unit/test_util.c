// SPDX-License-Identifier: MIT
// Unit tests for common/util (buffers, errors, files), common/hash and common/json_write.
#include "cli.h"
#include "half.h"
#include "hash.h"
#include "json.h"
#include "test.h"
#include "util.h"

#include <stdlib.h>

static void
test_buf(void)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "abc");
    buf_putc(&b, 'd');
    buf_printf(&b, "%d-%s", 42, "x");
    CHECK_EQ_STR(b.p, "abcd42-x");
    CHECK_EQ_INT(b.len, 8);
    // Long printf exceeds the internal stack buffer.
    buf_reset(&b);
    buf_printf(&b, "%0300d", 7);
    CHECK_EQ_INT(b.len, 300);
    CHECK(b.p[299] == '7' && b.p[0] == '0');
    char *p = buf_detach(&b);
    CHECK(b.p == NULL && b.len == 0);
    free(p);
    buf_free(&b);
}

static void
test_kerr(void)
{
    struct kerr e;
    CHECK_EQ_INT(kerr_set(&e, "line %d: bad", 3), -1);
    kerr_prefix(&e, "%s", "f.jsonl");
    CHECK_EQ_STR(e.msg, "f.jsonl: line 3: bad");
    CHECK_EQ_INT(kerr_set(NULL, "x"), -1);
}

static void
test_hash(void)
{
    uint8_t d[32];
    char hex[65];
    sha256_buf("abc", 3, d);
    hex_encode(d, 32, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_buf("", 0, d);
    hex_encode(d, 32, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    // XXH3_64bits("") is a published constant.
    CHECK(hash64("", 0) == 0x2D06800538D394C2ull);
    CHECK(hash64("a", 1) != hash64("b", 1));
    CHECK(hash64_seed("a", 1, 1) != hash64_seed("a", 1, 2));
    CHECK(hash_mix64(0) != hash_mix64(1));
    struct kerr e;
    CHECK_EQ_INT(sha256_file("/nonexistent/kiln", d, &e), -1);
}

static void
test_json_write(void)
{
    struct buf b;
    buf_init(&b);
    { const char *s = "a\"b\\c\n\t\x01 é"; json_write_str(&b, s, strlen(s)); }
    CHECK_EQ_STR(b.p, "\"a\\\"b\\\\c\\n\\t\\u0001 é\"");
    buf_reset(&b);
    json_write_double(&b, 0.1);
    CHECK_EQ_STR(b.p, "0.1");
    buf_reset(&b);
    json_write_double(&b, 1.0 / 3);
    CHECK_EQ_STR(b.p, "0.3333333333333333");
    buf_reset(&b);
    json_write_double(&b, 3);
    CHECK_EQ_STR(b.p, "3");
    buf_reset(&b);
    json_write_double(&b, NAN);
    CHECK_EQ_STR(b.p, "null");

    buf_reset(&b);
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "a");
    jw_int(&w, -5);
    jw_key(&w, "b");
    jw_arr_begin(&w);
    jw_str(&w, "x");
    jw_bool(&w, true);
    jw_null(&w);
    jw_obj_begin(&w);
    jw_obj_end(&w);
    jw_arr_end(&w);
    jw_key(&w, "c");
    jw_double(&w, 2.5);
    jw_key(&w, "d");
    jw_raw(&w, "[1,2]", 5);
    jw_obj_end(&w);
    CHECK_EQ_STR(b.p, "{\"a\":-5,\"b\":[\"x\",true,null,{}],\"c\":2.5,\"d\":[1,2]}");
    buf_free(&b);
}

static void
test_half(void)
{
    // Exhaustive: every finite fp16 value survives f16 -> f32 -> f16.
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; // NaN payloads are not preserved bit for bit
        if (f32_to_f16(f16_to_f32((uint16_t)h)) != h)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(f16_to_f32(0x3c00) == 1.0f);
    CHECK(f16_to_f32(0xc000) == -2.0f);
    CHECK(f16_to_f32(0x0001) == 5.960464477539063e-08f);
    CHECK(f32_to_f16(65504.0f) == 0x7bff);
    CHECK(f32_to_f16(65520.0f) == 0x7c00);
    CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);  // tie -> even
    CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);  // tie -> even (up)
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    CHECK(f32_to_bf16(1.0f) == 0x3f80);
    CHECK(f32_to_bf16(half_bits_f32(0x3f808000u)) == 0x3f80); // tie -> even
    CHECK(f32_to_bf16(half_bits_f32(0x3f818000u)) == 0x3f82);
    CHECK(isnan(f16_to_f32(f32_to_f16(NAN))));
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

int
main(void)
{
    test_half();
    test_buf();
    test_kerr();
    test_hash();
    test_json_write();
    return test_summary();
}

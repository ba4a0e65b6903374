// SPDX-License-Identifier: MIT
// test_shard: shard assignment, the "_kiln_seq" tag and its removal (byte for byte, wherever
// a stage moved it).
#include "shard.h"
#include "test.h"

static void
roundtrip(const char *line, uint64_t seq)
{
    struct json_obj o, scratch;
    json_obj_init(&o);
    json_obj_init(&scratch);
    struct json_error je;
    struct kerr err;
    struct buf t = {0}, back = {0};
    CHECK(json_obj_parse(&o, line, strlen(line), &je) == 0);
    CHECK(shard_seq_tag(line, strlen(line), &o, seq, &t, &err) == 0);
    uint64_t got = 0;
    CHECK(shard_seq_strip(t.p, t.len, &got, &back, &scratch, &err) == 0);
    CHECK_EQ_STR(back.p, line);
    CHECK(got == seq);
    // Tagging a tagged record is refused.
    CHECK(json_obj_parse(&o, t.p, t.len, &je) == 0);
    buf_reset(&back);
    CHECK(shard_seq_tag(t.p, t.len, &o, 1, &back, &err) == -1);
    buf_free(&t);
    buf_free(&back);
    json_obj_free(&o);
    json_obj_free(&scratch);
}

static void
strip_moved(const char *in, const char *want, uint64_t want_seq)
{
    struct json_obj scratch;
    json_obj_init(&scratch);
    struct kerr err;
    struct buf out = {0};
    uint64_t seq = 0;
    CHECK(shard_seq_strip(in, strlen(in), &seq, &out, &scratch, &err) == 0);
    CHECK_EQ_STR(out.p, want);
    CHECK(seq == want_seq);
    buf_free(&out);
    json_obj_free(&scratch);
}

int
main(void)
{
    roundtrip("{\"id\":\"a\",\"text\":\"x\"}", 0);
    roundtrip("{}", 7);
    roundtrip("  {\"id\": 3 , \"text\" : \"y\"}  ", 123456789012ULL);
    strip_moved("{\"id\":\"a\",\"_kiln_seq\":5,\"text\":\"x\"}", "{\"id\":\"a\",\"text\":\"x\"}", 5);
    strip_moved("{\"id\":\"a\",\"_kiln_seq\":5}", "{\"id\":\"a\"}", 5);
    strip_moved("{\"_kiln_seq\":9}", "{}", 9);

    struct json_obj scratch;
    json_obj_init(&scratch);
    struct kerr err;
    struct buf out = {0};
    uint64_t seq;
    const char *bad[] = {"{\"id\":\"a\"}", "{\"_kiln_seq\":-1}", "{\"_kiln_seq\":\"3\"}",
                         "{\"_kiln_seq\":01}", "not json"};
    for (size_t i = 0; i < KILN_ARRAY_LEN(bad); i++)
        CHECK_MSG(shard_seq_strip(bad[i], strlen(bad[i]), &seq, &out, &scratch, &err) == -1,
                  "%s", bad[i]);

    // Peek: only a position leading the object, without a parse.
    const char *front = "  {\"_kiln_seq\":42,\"id\":\"a\"}";
    CHECK(shard_seq_peek(front, strlen(front), &seq) == 1 && seq == 42);
    CHECK(shard_seq_peek("{\"_kiln_seq\":7}", 15, &seq) == 1 && seq == 7);
    const char *no_peek[] = {"{\"id\":\"a\",\"_kiln_seq\":5}", "{\"_kiln_seq\":01,\"x\":1}",
                             "{\"_kiln_seq\":5 ,\"x\":1}", "{\"_kiln_seq\":", "{\"_kiln_seq\":-1}"};
    for (size_t i = 0; i < KILN_ARRAY_LEN(no_peek); i++)
        CHECK_MSG(shard_seq_peek(no_peek[i], strlen(no_peek[i]), &seq) == 0, "%s", no_peek[i]);

    // Assignment: deterministic, by id (string ids unescaped), spread over the shards.
    struct json_obj o;
    json_obj_init(&o);
    struct json_error je;
    struct buf tmp = {0}, line = {0};
    uint32_t count[8] = {0};
    for (int i = 0; i < 8000; i++) {
        buf_reset(&line);
        buf_printf(&line, "{\"id\":\"doc-%d\"}", i);
        CHECK(json_obj_parse(&o, line.p, line.len, &je) == 0);
        uint32_t s = shard_of(&o, "id", (uint64_t)i, 8, &tmp);
        CHECK(s < 8);
        count[s]++;
        CHECK(shard_of(&o, "id", 99, 8, &tmp) == s); // the position does not matter
    }
    for (int s = 0; s < 8; s++)
        CHECK_MSG(count[s] > 850 && count[s] < 1150, "shard %d got %u", s, count[s]);
    const char *a = "{\"id\":\"\\u0041b\"}", *b = "{\"id\":\"Ab\"}";
    CHECK(json_obj_parse(&o, a, strlen(a), &je) == 0);
    uint32_t sa = shard_of(&o, "id", 0, 1000, &tmp);
    CHECK(json_obj_parse(&o, b, strlen(b), &je) == 0);
    CHECK(shard_of(&o, "id", 1, 1000, &tmp) == sa);
    CHECK(shard_of(&o, "id", 1, 1, &tmp) == 0);

    buf_free(&tmp);
    buf_free(&line);
    buf_free(&out);
    json_obj_free(&o);
    json_obj_free(&scratch);
    return test_summary();
}

// SPDX-License-Identifier: MIT
// test_safetensors: the safetensors reader on hand-built files (valid ones and one case per
// check), writer round trips in F32/F16/BF16, config.json parsing and formatting, and model
// checkpoint save/load with every mismatch error.
#include "checkpoint.h"
#include "half.h"
#include "safetensors.h"
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

// A file from a header string and n data bytes (0x00.. pattern).
static void
make_file(struct buf *b, const char *header, size_t data_n)
{
    buf_reset(b);
    uint64_t n = strlen(header);
    for (int i = 0; i < 8; i++)
        buf_putc(b, (char)(n >> (8 * i)));
    buf_puts(b, header);
    for (size_t i = 0; i < data_n; i++)
        buf_putc(b, (char)i);
}

static void
expect_error(const char *header, size_t data_n, const char *msg)
{
    struct buf b = {0};
    make_file(&b, header, data_n);
    struct st_file f;
    struct kerr err = {{0}};
    int rc = st_parse(&f, b.p, b.len, "x.safetensors", &err);
    CHECK_MSG(rc == -1 && strstr(err.msg, msg), "header %s: got rc %d, \"%s\", want \"%s\"",
              header, rc, err.msg, msg);
    if (rc == 0)
        st_close(&f);
    buf_free(&b);
}

static void
test_reader(void)
{
    struct buf b = {0};
    // Two tensors, listed out of data order, with metadata.
    make_file(&b,
              "{\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[8,14]},"
              "\"__metadata__\":{\"format\":\"pt\"},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]}}  ",
              14);
    struct st_file f;
    struct kerr err;
    CHECK(st_parse(&f, b.p, b.len, "x", &err) == 0);
    CHECK_EQ_INT(f.n, 2);
    const struct st_tensor *a = st_find(&f, "a"), *t = st_find(&f, "b");
    CHECK(a && t && a->ndim == 2 && a->shape[0] == 2 && t->dtype == ST_F16 && t->numel == 3);
    CHECK(f.metadata_json && strstr(f.metadata_json, "\"pt\""));
    // F16 values from bytes 8..13: 0x0908, 0x0b0a, 0x0d0c.
    float out[3];
    CHECK(st_read_f32(&f, t, out, &err) == 0);
    CHECK(out[0] == f16_to_f32(0x0908) && out[2] == f16_to_f32(0x0d0c));
    st_close(&f);
    // Zero-size tensors and an empty header are fine.
    make_file(&b, "{\"e\":{\"dtype\":\"I64\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", 0);
    CHECK(st_parse(&f, b.p, b.len, "x", &err) == 0);
    CHECK(st_read_f32(&f, &f.tensors[0], out, &err) == -1 && strstr(err.msg, "I64"));
    st_close(&f);
    make_file(&b, "{}", 0);
    CHECK(st_parse(&f, b.p, b.len, "x", &err) == 0 && f.n == 0);
    st_close(&f);

    // One case per check.
    CHECK(st_parse(&f, "1234567", 7, "x", &err) == -1 && strstr(err.msg, "too short"));
    const char big[8] = {0, 0, 0, 0x10, 0, 0, 0, 0}; // 256 MB header
    CHECK(st_parse(&f, big, 8, "x", &err) == -1 && strstr(err.msg, "100 MB"));
    const char past[9] = {9, 0, 0, 0, 0, 0, 0, 0, '{'};
    CHECK(st_parse(&f, past, 9, "x", &err) == -1 && strstr(err.msg, "beyond the end"));
    expect_error("{\"a\":", 0, "invalid JSON");
    expect_error("[1,2]", 0, "not a JSON object");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing data_offsets");
    expect_error("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    expect_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                 "unknown dtype");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                 "shape must be");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                 "\"data_offsets\":[0,4]}}", 4, "shape must be");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                 "\"data_offsets\":[0,4]}}", 4, "too large");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                 "do not match");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
                 "begin <= end");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 4,
                 "beyond the data");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                 "gap in the data");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                 "overlaps");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6,
                 "cover 4 bytes");
    expect_error("{\"a\":1}", 0, "not an object");
    expect_error("{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
    buf_free(&b);
}

static void
test_writer(void)
{
    char dir[] = "/tmp/kiln-st-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    float a[6] = {1.0f, -2.5f, 3.14159f, 1e-8f, 65504.0f, 1e30f}, b[1] = {0.1f};
    struct st_out t[2] = {{"w.a", 2, {2, 3}, a}, {"w\"b", 1, {1}, b}};
    const char *meta[] = {"format", "pt", NULL};
    enum st_dtype dts[3] = {ST_F32, ST_F16, ST_BF16};
    struct kerr err;
    for (int k = 0; k < 3; k++) {
        CHECK(st_write(path, t, 2, dts[k], meta, &err) == 0);
        struct st_file f;
        CHECK(st_open(&f, path, &err) == 0);
        CHECK(f.n == 2 && (8 + (f.data - f.base - 8)) % 8 == 0);
        const struct st_tensor *x = st_find(&f, "w.a"), *y = st_find(&f, "w\"b");
        CHECK(x && y && x->dtype == dts[k] && x->shape[1] == 3);
        float out[6];
        CHECK(st_read_f32(&f, x, out, &err) == 0);
        for (int i = 0; i < 6; i++) {
            float want = dts[k] == ST_F32   ? a[i]
                         : dts[k] == ST_F16 ? f16_to_f32(f32_to_f16(a[i]))
                                            : bf16_to_f32(f32_to_bf16(a[i]));
            CHECK(memcmp(&out[i], &want, 4) == 0);
        }
        st_close(&f);
    }
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/t.safetensors.tmp", dir);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/missing/t.safetensors", dir);
    CHECK(st_write(path, t, 2, ST_F32, NULL, &err) == -1);
    struct st_file f;
    CHECK(st_open(&f, path, &err) == -1 && strstr(err.msg, "No such file"));
    snprintf(path, sizeof path, "rm -rf %s", dir);
    CHECK(system(path) == 0);
}

static void
test_config(void)
{
    struct model_config c;
    struct kerr err;
    const char *hf = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                     "\"intermediate_size\":160,\"num_hidden_layers\":2,"
                     "\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                     "\"vocab_size\":300,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,"
                     "\"tie_word_embeddings\":true,\"bos_token_id\":1,"
                     "\"eos_token_id\":[2,7],\"model_type\":\"llama\",\"hidden_act\":\"silu\","
                     "\"rope_scaling\":null,\"torch_dtype\":\"bfloat16\"}";
    CHECK(ckpt_config_parse(&c, hf, strlen(hf), "config.json", &err) == 0);
    CHECK(c.dim == 64 && c.ffn == 160 && c.n_kv_heads == 2 && c.vocab == 300);
    CHECK(c.tie_embeddings && c.bos_id == 1 && c.eos_id == 2 && c.max_seq == 2048);
    CHECK(c.norm_eps == 1e-5 && c.rope_theta == 500000.0);
    struct buf out = {0};
    ckpt_config_format(&c, &out);
    CHECK(strstr(out.p, "\"rms_norm_eps\":1e-05") && strstr(out.p, "\"LlamaForCausalLM\""));
    struct model_config c2;
    CHECK(ckpt_config_parse(&c2, out.p, out.len, "config.json", &err) == 0);
    CHECK(memcmp(&c, &c2, sizeof c) == 0);
    buf_free(&out);
    struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"hidden_size\":64}", "missing vocab_size"},
        {"{\"vocab_size\":10,\"hidden_size\":60,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":7}",
         "num_attention_heads 7 does not divide hidden_size 60"},
        {"{\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"model_type\":\"gpt2\"}",
         "model_type \"gpt2\""},
        {"{\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"rope_scaling\":{\"type\":\"x\"}}",
         "rope_scaling"},
        {"{\"vocab_size\":\"10\"}", "vocab_size must be an integer"},
        {"{\"vocab_size\":0}", "vocab_size 0 out of range"},
        {"{\"vocab_size\":10,", "invalid JSON"},
    };
    for (size_t i = 0; i < KILN_ARRAY_LEN(bad); i++) {
        int rc = ckpt_config_parse(&c, bad[i].json, strlen(bad[i].json), "config.json", &err);
        CHECK_MSG(rc == -1 && strstr(err.msg, bad[i].msg), "%s: \"%s\"", bad[i].json, err.msg);
    }
}

static void
test_checkpoint(void)
{
    char dir[] = "/tmp/kiln-ck-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct model_config c = {.vocab = 50, .dim = 32, .n_layers = 2, .n_heads = 4,
                             .n_kv_heads = 2, .ffn = 64, .max_seq = 64, .norm_eps = 1e-5,
                             .rope_theta = 10000, .bos_id = 0, .eos_id = 1};
    struct model m, m2;
    struct kerr err;
    CHECK(model_init(&m, &c, &err) == 0);
    model_init_random(&m, 3);
    CHECK(ckpt_save(dir, &m, ST_F32, &err) == 0);
    enum st_dtype dt = ST_U8;
    CHECK(ckpt_load(dir, &m2, &dt, &err) == 0);
    CHECK(dt == ST_F32 && m2.n_params == m.n_params);
    CHECK(memcmp(m.params, m2.params, sizeof(float) * m.n_params) == 0);
    model_free(&m2);
    CHECK(ckpt_save(dir, &m, ST_BF16, &err) == 0);
    CHECK(ckpt_load(dir, &m2, &dt, &err) == 0 && dt == ST_BF16);
    CHECK(m2.params[5] == bf16_to_f32(f32_to_bf16(m.params[5])));
    model_free(&m2);

    // A checkpoint whose tensors do not match its config: write the weights of one config
    // under another config.json.
    char path[512];
    struct model_config c3 = c;
    c3.ffn = 96;
    struct buf text = {0};
    ckpt_config_format(&c3, &text);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(ckpt_write_file(path, text.p, text.len, &err) == 0);
    CHECK(ckpt_load(dir, &m2, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [64, 32], "
                              "config expects [96, 32]"), "%s", err.msg);
    // Tied config: lm_head.weight present in the file is ignored; an extra layer is not.
    c3 = c;
    c3.tie_embeddings = true;
    buf_reset(&text);
    ckpt_config_format(&c3, &text);
    CHECK(ckpt_write_file(path, text.p, text.len, &err) == 0);
    CHECK(ckpt_load(dir, &m2, NULL, &err) == 0);
    model_free(&m2);
    c3 = c;
    c3.n_layers = 1;
    buf_reset(&text);
    ckpt_config_format(&c3, &text);
    CHECK(ckpt_write_file(path, text.p, text.len, &err) == 0);
    CHECK(ckpt_load(dir, &m2, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "unexpected tensor 'model.layers.1."), "%s", err.msg);
    c3 = c;
    c3.n_layers = 3;
    buf_reset(&text);
    ckpt_config_format(&c3, &text);
    CHECK(ckpt_write_file(path, text.p, text.len, &err) == 0);
    CHECK(ckpt_load(dir, &m2, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "missing tensor 'model.layers.2.input_layernorm.weight'"), "%s",
              err.msg);
    buf_reset(&text);
    ckpt_config_format(&c, &text);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(ckpt_write_file(path, text.p, text.len, &err) == 0);
    buf_free(&text);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    CHECK(ckpt_load(dir, &m2, NULL, &err) == -1 && strstr(err.msg, "no model.safetensors"));

    // Sharded: two files named by model.safetensors.index.json (F16 in one of them).
    struct st_out *t = xcalloc((size_t)m.n_tensors, sizeof *t);
    struct buf index = {0};
    buf_puts(&index, "{\"metadata\":{},\"weight_map\":{");
    for (int i = 0; i < m.n_tensors; i++) {
        t[i] = (struct st_out){m.tensors[i].name, m.tensors[i].ndim,
                               {m.tensors[i].shape[0], m.tensors[i].shape[1]},
                               m.params + m.tensors[i].offset};
        buf_printf(&index, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "",
                   m.tensors[i].name, i < 7 ? 1 : 2);
    }
    buf_puts(&index, "}}");
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(st_write(path, t, 7, ST_F32, NULL, &err) == 0);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(st_write(path, t + 7, (size_t)m.n_tensors - 7, ST_F16, NULL, &err) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(ckpt_write_file(path, index.p, index.len, &err) == 0);
    CHECK_MSG(ckpt_load(dir, &m2, &dt, &err) == 0, "%s", err.msg);
    if (m2.params) {
        size_t last = m.tensors[m.n_tensors - 1].offset;
        CHECK(memcmp(m.params, m2.params, sizeof(float) * m.tensors[7].offset) == 0);
        CHECK(m2.params[last] == f16_to_f32(f32_to_f16(m.params[last])));
        model_free(&m2);
    }
    buf_free(&index);
    free(t);
    model_free(&m);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    CHECK(system(path) == 0);
}

int
main(void)
{
    test_reader();
    test_writer();
    test_config();
    test_checkpoint();
    return test_summary();
}

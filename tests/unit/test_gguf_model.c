// SPDX-License-Identifier: MIT
// Unit tests for common/gguf_model: model.h -> GGUF -> model.h round trips (exact for F32,
// within quantization error otherwise), the Q/K RoPE permutation on disk, type fallbacks and
// the Q4_K_M-style mix in the report, tied embeddings, and refused inputs.
#include "gguf_model.h"
#include "quant.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

static const char *
tmp_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

// A byte-level toy vocabulary of n tokens ("t0", "t1", ...).
struct vocab {
    char **tok;
    struct gguf_tokenizer_params p;
};

static void
vocab_init(struct vocab *v, int n)
{
    v->tok = xmalloc((size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        char s[16];
        snprintf(s, sizeof s, "t%d", i);
        v->tok[i] = xstrdup(s);
    }
    v->p = (struct gguf_tokenizer_params){.pre = "gpt-2",
                                          .tokens = (const char *const *)v->tok,
                                          .n_tokens = (size_t)n,
                                          .bos_id = 0,
                                          .eos_id = 1,
                                          .pad_id = -1,
                                          .add_bos = -1};
}

static void
vocab_free(struct vocab *v)
{
    for (size_t i = 0; i < v->p.n_tokens; i++)
        free(v->tok[i]);
    free(v->tok);
}

static void
make_model(struct model *m, int dim, int ffn, bool tied)
{
    struct model_config c = {.vocab = 40,
                             .dim = dim,
                             .n_layers = 2,
                             .n_heads = 4,
                             .n_kv_heads = 2,
                             .ffn = ffn,
                             .max_seq = 64,
                             .norm_eps = 1e-6f,
                             .rope_theta = 500000.0f,
                             .tie_embeddings = tied,
                             .bos_id = 0,
                             .eos_id = 1};
    struct kerr err;
    int rc = model_init(m, &c, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    model_init_random(m, 7);
    // Norm weights other than 1 so their placement is checked too.
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].ndim == 1)
            for (size_t k = 0; k < m->tensors[i].numel; k++)
                m->params[m->tensors[i].offset + k] = 1.0f + 0.01f * (float)(k % 7);
}

static void
test_f32_round_trip(bool tied)
{
    struct model m, back;
    struct vocab v;
    struct kerr err;
    make_model(&m, 128, 256, tied);
    vocab_init(&v, 40);
    struct gguf_export_opts o = {.type = QTYPE_F32, .name = "t"};
    struct gguf_export_report rep;
    CHECK_EQ_INT(gguf_model_write(tmp_path("f32.gguf"), &m, &v.p, &o, &rep, &err), 0);
    CHECK_EQ_INT(rep.n, m.n_tensors);
    CHECK_EQ_INT(rep.file_type, 0);
    for (int i = 0; i < rep.n; i++)
        CHECK(rep.t[i].type == QTYPE_F32 && rep.t[i].rmse == 0 && !rep.t[i].fallback);
    gguf_export_report_free(&rep);

    struct gguf_file g;
    CHECK_EQ_INT(gguf_open(&g, tmp_path("f32.gguf"), &err), 0);
    CHECK((gguf_find_tensor(&g, "output.weight") == NULL) == tied);
    int64_t iv;
    CHECK(gguf_get_int(&g, "llama.rope.dimension_count", &iv, &err) == 0 && iv == 32);
    // On disk, Q rows are in llama.cpp's order: row 2i+j of a head is HF row j*hd/2 + i.
    const struct gguf_tensor *q = gguf_find_tensor(&g, "blk.1.attn_q.weight");
    const struct model_tensor *hq = &m.tensors[model_layer_tensor(&m, 1, 1)];
    CHECK(q && q->ne[0] == 128 && q->ne[1] == 128);
    if (q) {
        int ok = 1;
        for (int h = 0; h < 4; h++)
            for (int i = 0; i < 16; i++)
                for (int j = 0; j < 2; j++)
                    ok &= memcmp(q->data + (size_t)(h * 32 + 2 * i + j) * 128 * 4,
                                 m.params + hq->offset + (size_t)(h * 32 + j * 16 + i) * 128,
                                 128 * 4) == 0;
        CHECK(ok);
    }
    // A tensor without permutation keeps its bytes.
    const struct gguf_tensor *dn = gguf_find_tensor(&g, "blk.0.ffn_down.weight");
    const struct model_tensor *hd = &m.tensors[model_layer_tensor(&m, 0, 8)];
    CHECK(dn && dn->ne[0] == 256 && dn->ne[1] == 128 &&
          memcmp(dn->data, m.params + hd->offset, hd->numel * 4) == 0);

    int rc = gguf_model_read(&g, &back, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    gguf_close(&g);
    if (rc == 0) {
        CHECK(back.cfg.dim == 128 && back.cfg.n_kv_heads == 2 && back.cfg.ffn == 256 &&
              back.cfg.vocab == 40 && back.cfg.max_seq == 64 && back.cfg.tie_embeddings == tied &&
              back.cfg.rope_theta == 500000.0f && back.cfg.norm_eps == 1e-6f &&
              back.cfg.bos_id == 0 && back.cfg.eos_id == 1);
        CHECK(back.n_params == m.n_params &&
              memcmp(back.params, m.params, m.n_params * sizeof(float)) == 0);
        model_free(&back);
    }
    vocab_free(&v);
    model_free(&m);
}

static void
test_quantized(void)
{
    struct model m, back;
    struct vocab v;
    struct kerr err;
    // dim 128: Q4_K rows of 128 do not fit its 256 block, so those fall back to Q8_0;
    // ffn_down's rows (ffn 256) do fit.
    make_model(&m, 128, 256, false);
    vocab_init(&v, 40);
    struct gguf_export_opts o = {.type = QTYPE_Q4_K, .mixed = true};
    struct gguf_export_report rep;
    CHECK_EQ_INT(gguf_model_write(tmp_path("q4k.gguf"), &m, &v.p, &o, &rep, &err), 0);
    CHECK_EQ_INT(rep.file_type, 15);
    int fallbacks = 0, q4k = 0;
    for (int i = 0; i < rep.n; i++) {
        const struct gguf_export_tensor *t = &rep.t[i];
        fallbacks += t->fallback;
        q4k += t->type == QTYPE_Q4_K;
        if (strstr(t->name, "norm"))
            CHECK(t->type == QTYPE_F32 && t->rmse == 0);
        else if (strstr(t->name, "ffn_down")) // layer 1 of 2 is a use_more_bits layer
            CHECK(t->type == (t->name[4] == '1' ? QTYPE_Q6_K : QTYPE_Q4_K) && !t->fallback);
        else if (strcmp(t->name, "token_embd.weight") == 0 || strcmp(t->name, "output.weight") == 0)
            CHECK(t->type == QTYPE_Q8_0 && !t->fallback); // llama.cpp's rule, not a fallback
        else
            CHECK_MSG(t->type == QTYPE_Q8_0 && t->fallback, "%s", t->name);
        CHECK(t->rmse <= t->max_err && t->max_err < 0.02);
    }
    CHECK_EQ_INT(q4k, 1);
    CHECK_EQ_INT(fallbacks, 2 * 6);
    gguf_export_report_free(&rep);

    struct gguf_file g;
    CHECK_EQ_INT(gguf_open(&g, tmp_path("q4k.gguf"), &err), 0);
    int rc = gguf_model_read(&g, &back, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    gguf_close(&g);
    if (rc == 0) {
        double se = 0, ss = 0;
        for (size_t k = 0; k < m.n_params; k++) {
            double d = back.params[k] - m.params[k];
            se += d * d;
            ss += (double)m.params[k] * m.params[k];
        }
        CHECK_MSG(sqrt(se / ss) < 0.05, "relative error %g", sqrt(se / ss));
        model_free(&back);
    }

    // F16 keeps every weight within 1e-3 relative.
    o = (struct gguf_export_opts){.type = QTYPE_F16};
    CHECK_EQ_INT(gguf_model_write(tmp_path("f16.gguf"), &m, &v.p, &o, NULL, &err), 0);
    CHECK_EQ_INT(gguf_open(&g, tmp_path("f16.gguf"), &err), 0);
    CHECK_EQ_INT(gguf_model_read(&g, &back, &err), 0);
    gguf_close(&g);
    double worst = 0;
    for (size_t k = 0; k < m.n_params; k++)
        worst = fmax(worst, fabs(back.params[k] - m.params[k]) / (fabs(m.params[k]) + 1e-3));
    CHECK(worst < 1e-3);
    model_free(&back);
    vocab_free(&v);
    model_free(&m);
}

static void
test_errors(void)
{
    struct model m, back;
    struct vocab v;
    struct kerr err;
    make_model(&m, 128, 256, false);
    vocab_init(&v, 39);
    struct gguf_export_opts o = {.type = QTYPE_Q8_0};
    CHECK_EQ_INT(gguf_model_write(tmp_path("bad.gguf"), &m, &v.p, &o, NULL, &err), -1);
    CHECK(strstr(err.msg, "39 tokens") != NULL);
    vocab_free(&v);
    vocab_init(&v, 40);
    o.type = QTYPE_NF4;
    CHECK_EQ_INT(gguf_model_write(tmp_path("bad.gguf"), &m, &v.p, &o, NULL, &err), -1);
    CHECK(access(tmp_path("bad.gguf"), F_OK) != 0);

    // A GGUF that lacks a tensor, or is not llama.
    struct gguf_writer *w = gguf_writer_new();
    gguf_set_str(w, "general.architecture", "gpt2");
    CHECK_EQ_INT(gguf_writer_write(w, tmp_path("gpt2.gguf"), &err), 0);
    gguf_writer_del(w);
    struct gguf_file g;
    CHECK_EQ_INT(gguf_open(&g, tmp_path("gpt2.gguf"), &err), 0);
    CHECK(gguf_model_read(&g, &back, &err) == -1 && strstr(err.msg, "not 'llama'"));
    gguf_close(&g);

    // A header that claims a huge model over a tiny tensor is refused before allocation.
    w = gguf_writer_new();
    struct gguf_llama_params lp = {.context_length = 64,
                                   .embedding_length = 1024,
                                   .block_count = 8,
                                   .feed_forward_length = 4096,
                                   .head_count = 16,
                                   .head_count_kv = 16,
                                   .vocab_size = 4,
                                   .rms_eps = 1e-5f,
                                   .rope_freq_base = 1e4f};
    gguf_set_llama(w, &lp);
    float tiny[4 << 10] = {0};
    int64_t ne[2] = {1 << 10, 4};
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "token_embd.weight", QTYPE_F32, 2, ne, tiny, &err), 0);
    CHECK_EQ_INT(gguf_writer_write(w, tmp_path("liar.gguf"), &err), 0);
    gguf_writer_del(w);
    CHECK_EQ_INT(gguf_open(&g, tmp_path("liar.gguf"), &err), 0);
    CHECK(gguf_model_read(&g, &back, &err) == -1);
    CHECK_MSG(strstr(err.msg, "config needs") != NULL, "%s", err.msg);
    gguf_close(&g);

    o.type = QTYPE_F32;
    CHECK_EQ_INT(gguf_model_write(tmp_path("ok.gguf"), &m, &v.p, &o, NULL, &err), 0);
    CHECK_EQ_INT(gguf_open(&g, tmp_path("ok.gguf"), &err), 0);
    // Rename one tensor in the image copy: the reader names what is missing.
    size_t n = g.size;
    char *img = xmalloc(n);
    memcpy(img, g.image, n);
    gguf_close(&g);
    char *hit = memmem(img, n, "blk.1.ffn_up.weight", 19);
    CHECK(hit != NULL);
    if (hit) {
        hit[4] = 'X';
        CHECK_EQ_INT(gguf_open_mem(&g, img, n, &err), 0);
        CHECK(gguf_model_read(&g, &back, &err) == -1 &&
              strstr(err.msg, "blk.1.ffn_up.weight: missing"));
        gguf_close(&g);
    }
    free(img);
    vocab_free(&v);
    model_free(&m);
}

// The Q4_K_M mix on 8 layers of width 256 (every row fits a K block): llama.cpp's
// use_more_bits picks layers 0, 3, 6 and 7 for attn_v and ffn_down at Q6_K; output and
// token_embd are Q6_K; every other matrix is Q4_K; nothing falls back.
static void
test_q4_k_m_mix(void)
{
    struct model m;
    struct vocab v;
    struct kerr err;
    struct model_config c = {.vocab = 40,
                             .dim = 256,
                             .n_layers = 8,
                             .n_heads = 4,
                             .n_kv_heads = 2,
                             .ffn = 256,
                             .max_seq = 16,
                             .norm_eps = 1e-6f,
                             .rope_theta = 10000.0f,
                             .bos_id = 0,
                             .eos_id = 1};
    CHECK_EQ_INT(model_init(&m, &c, &err), 0);
    model_init_random(&m, 3);
    vocab_init(&v, 40);
    struct gguf_export_opts o = {.type = QTYPE_Q4_K, .mixed = true};
    struct gguf_export_report rep;
    CHECK_EQ_INT(gguf_model_write(tmp_path("mix.gguf"), &m, &v.p, &o, &rep, &err), 0);
    int q6k = 0;
    for (int i = 0; i < rep.n; i++) {
        const struct gguf_export_tensor *t = &rep.t[i];
        int layer = -1;
        sscanf(t->name, "blk.%d.", &layer);
        bool more = layer == 0 || layer == 3 || layer == 6 || layer == 7;
        int want = QTYPE_Q4_K;
        if (strstr(t->name, "norm"))
            want = QTYPE_F32;
        else if (layer < 0 || (more && (strstr(t->name, "attn_v") || strstr(t->name, "ffn_down"))))
            want = QTYPE_Q6_K;
        CHECK_MSG(t->type == want && !t->fallback, "%s: %s", t->name, quant_type_name(t->type));
        q6k += t->type == QTYPE_Q6_K;
    }
    CHECK_EQ_INT(q6k, 2 + 2 * 4);
    gguf_export_report_free(&rep);
    vocab_free(&v);
    model_free(&m);
}

int
main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-test-gguf-model-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_f32_round_trip(false);
    test_f32_round_trip(true);
    test_quantized();
    test_q4_k_m_mix();
    test_errors();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return test_summary();
}

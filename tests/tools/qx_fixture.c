// SPDX-License-Identifier: MIT
// qx_fixture: tiny checkpoints, PEFT adapters and reference computations for the
// quantize-export tests, independent of the stage's own code.
//
//   qx_fixture model DIR [SEED [STEPS [DIM [LAYERS [FFN]]]]]
//                        HF checkpoint dir: a BPE tokenizer trained on a built-in English
//                        text (tokenizer.json, vocab 300), a Llama with DIM (64) hidden,
//                        LAYERS (2) layers, 4 heads (2 KV), FFN (256), context 128, random
//                        init then STEPS (0) AdamW steps on that text
//   qx_fixture adapter DIR MODEL_DIR R ALPHA [SEED]
//                        PEFT LoRA adapter for MODEL_DIR's shapes on q_proj and v_proj of
//                        every layer (random A and B)
//   qx_fixture check-merge BASE_DIR ADAPTER_DIR MERGED_DIR
//                        max |merged - (base + alpha/r · B·A)| over every weight, computed
//                        naively in double; exit 1 when above 1e-5 (or a shape differs)
//   qx_fixture roundtrip MODEL_DIR FILE.gguf REPORT.json
//                        reads the GGUF back (gguf_model_read) and checks every tensor's RMSE
//                        and max error against the model equal the report's (rel. 1e-4)
//   qx_fixture ids MODEL_DIR TEXT          token ids of TEXT, space-separated
//   qx_fixture text                        the built-in training text
//   qx_fixture logits MODEL ID...          next-token log-probs (model_forward on the
//                                          checkpoint dir, or on a .gguf read back with
//                                          gguf_model_read), JSON as llama_logits.mjs
//   qx_fixture generate MODEL_DIR N ID...  N greedy tokens (KV-cache forward), same JSON
//   qx_fixture meta FILE.gguf              general.* and tokenizer.ggml.* facts, one per line
//   qx_fixture card-db DB NAME             a store.h database with a run NAME (params with a
//                                          seed, results, the stats of one stage)
#include "checkpoint.h"
#include "gguf_model.h"
#include "json.h"
#include "kernels.h"
#include "model.h"
#include "safetensors.h"
#include "store.h"
#include "tok.h"
#include "util.h"

#define TINY_LLAMA_PROG "qx_fixture"
#include "tiny_llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const TEXT =
    "The cat sat on the mat. The dog sat on the log. A bird sang in the tree and the cat "
    "watched the bird. The sun was warm and the day was long. In the garden the children "
    "played with a red ball, and the dog ran after it. When the rain came, they went inside "
    "and read a book about the sea. The sea was deep and blue, and the fish swam in the "
    "water. Every morning the baker made bread, and the smell filled the street. People "
    "walked to the market to buy apples, bread and milk. The old man told stories about the "
    "mountains, the rivers and the long road to the city. ";

static struct tok *
tok_of_dir(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    struct kerr err;
    struct tok *t = tok_load_file(path, NULL, &err);
    if (!t)
        tiny_llama_die("tokenizer", &err);
    return t;
}

static void
encode(const struct tok *t, const char *s, struct tok_ids *ids)
{
    struct kerr err;
    struct tok_enc *e = tok_enc_new(t);
    if (tok_encode(e, s, strlen(s), 0, ids, &err))
        tiny_llama_die("encode", &err);
    tok_enc_del(e);
}

static void
train_steps(struct model *m, const struct tok *t, int steps)
{
    struct tok_ids ids = {0};
    encode(t, TEXT, &ids);
    enum { B = 4, T = 32 };
    struct kerr err;
    struct kpool *pool = kpool_new(1);
    struct model_acts a;
    if (model_acts_init(&a, m, B, T, true, 1, &err))
        tiny_llama_die("acts", &err);
    model_grads_alloc(m);
    struct adamw o;
    adamw_init(&o, m, 0.9f, 0.95f, 1e-8f, 0.0f);
    int tokens[B * T], targets[B * T];
    size_t pos = 0;
    for (int s = 0; s < steps; s++) {
        for (int r = 0; r < B * T; r++) {
            if (r % T == 0 && pos + T + 1 > ids.n)
                pos = 0;
            tokens[r] = ids.v[pos];
            targets[r] = ids.v[pos + 1];
            pos++;
        }
        model_grads_zero(m);
        int n = 0;
        double loss = model_forward_backward(m, &a, pool, tokens, targets, B, T,
                                             1.0f / (B * T), &n);
        adamw_update(&o, m, pool, 3e-3f);
        if (s == steps - 1)
            fprintf(stderr, "qx_fixture: step %d loss %.4f\n", s + 1, loss / n);
    }
    adamw_free(&o);
    model_acts_free(&a);
    kpool_del(pool);
    tok_ids_free(&ids);
}

static int
cmd_model(const char *dir, uint64_t seed, int steps, int dim, int layers, int ffn)
{
    struct kerr err;
    static const char *const specials[] = {"<|endoftext|>"};
    struct tok_train_opts to = {.vocab_size = 300, .specials = specials, .n_specials = 1,
                                .pre = TOK_PRE_GPT2};
    struct tok_trainer *tr = tok_trainer_new(&to, &err);
    if (!tr || tok_trainer_add(tr, TEXT, strlen(TEXT), &err))
        tiny_llama_die("tokenizer training", &err);
    struct tok *t = tok_trainer_finish(tr, &err);
    if (!t)
        tiny_llama_die("tokenizer training", &err);
    tok_trainer_del(tr);
    struct model_config c = {.vocab = (int)tok_vocab_size(t), .dim = dim, .n_layers = layers,
                             .n_heads = 4, .n_kv_heads = 2, .ffn = ffn, .max_seq = 128,
                             .norm_eps = 1e-5, .rope_theta = 10000, .tie_embeddings = false,
                             .bos_id = -1, .eos_id = tok_special_id(t, "<|endoftext|>")};
    struct model m;
    tiny_llama_new(&m, &c, seed, 1);
    if (steps > 0)
        train_steps(&m, t, steps);
    mkdir(dir, 0755);
    if (ckpt_save(dir, &m, ST_F32, &err))
        tiny_llama_die("save", &err);
    struct buf b = {0};
    tok_save_hf(t, &b);
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    if (ckpt_write_file(path, b.p, b.len, &err))
        tiny_llama_die("tokenizer.json", &err);
    buf_free(&b);
    tok_del(t);
    model_free(&m);
    return 0;
}

static int
cmd_adapter(const char *dir, const char *model_dir, int r, double alpha, uint64_t seed)
{
    struct model m;
    tiny_llama_load(model_dir, &m);
    struct model_rng rng;
    model_rng_seed(&rng, seed);
    int L = m.cfg.n_layers;
    struct st_out *out = xcalloc((size_t)(4 * L), sizeof(*out));
    char (*names)[128] = xcalloc((size_t)(4 * L), sizeof(*names));
    int n = 0;
    static const char *const mods[] = {"q_proj", "v_proj"};
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 2; k++) {
            char target[MODEL_NAME_MAX];
            snprintf(target, sizeof(target), "model.layers.%d.self_attn.%s.weight", l, mods[k]);
            const struct model_tensor *t = model_tensor_find(&m, target);
            int64_t shapes[2][2] = {{r, t->shape[1]}, {t->shape[0], r}};
            for (int ab = 0; ab < 2; ab++) {
                snprintf(names[n], sizeof(names[n]),
                         "base_model.model.model.layers.%d.self_attn.%s.lora_%c.weight", l,
                         mods[k], ab ? 'B' : 'A');
                size_t numel = (size_t)(shapes[ab][0] * shapes[ab][1]);
                float *d = xmalloc(numel * sizeof(float));
                for (size_t i = 0; i < numel; i++)
                    d[i] = (float)(0.05 * model_rng_normal(&rng));
                out[n] = (struct st_out){.name = names[n], .ndim = 2,
                                         .shape = {shapes[ab][0], shapes[ab][1]}, .data = d};
                n++;
            }
        }
    mkdir(dir, 0755);
    char path[4096];
    struct kerr err;
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    if (st_write(path, out, (size_t)n, ST_F32, NULL, &err))
        tiny_llama_die("adapter", &err);
    char cfg[512];
    int len = snprintf(cfg, sizeof(cfg),
                       "{\"base_model_name_or_path\": \"%s\", \"bias\": \"none\", "
                       "\"fan_in_fan_out\": false, \"lora_alpha\": %g, \"lora_dropout\": 0.0, "
                       "\"peft_type\": \"LORA\", \"r\": %d, \"target_modules\": [\"q_proj\", "
                       "\"v_proj\"], \"task_type\": \"CAUSAL_LM\", \"use_rslora\": false}\n",
                       model_dir, alpha, r);
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    if (ckpt_write_file(path, cfg, (size_t)len, &err))
        tiny_llama_die("adapter_config.json", &err);
    for (int i = 0; i < n; i++)
        free((void *)out[i].data);
    free(out);
    free(names);
    model_free(&m);
    return 0;
}

static int
cmd_check_merge(const char *base_dir, const char *adapter_dir, const char *merged_dir)
{
    struct model base, merged;
    tiny_llama_load(base_dir, &base);
    tiny_llama_load(merged_dir, &merged);
    struct kerr err;
    char path[4096];
    snprintf(path, sizeof(path), "%s/adapter_config.json", adapter_dir);
    struct buf cfg = {0};
    if (read_file(path, 1 << 20, &cfg, &err))
        tiny_llama_die("adapter_config.json", &err);
    struct json_val root, v;
    double r = 0, alpha = 0;
    if (json_parse_value(cfg.p, cfg.len, &root, NULL) ||
        !json_val_member(&root, "r", 1, &v) || json_double(&v, &r) ||
        !json_val_member(&root, "lora_alpha", 10, &v) || json_double(&v, &alpha))
        tiny_llama_die("adapter_config.json: r and lora_alpha", NULL);
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", adapter_dir);
    struct st_file st;
    if (st_open(&st, path, &err))
        tiny_llama_die("adapter", &err);
    double worst = 0;
    int merged_pairs = 0;
    for (int i = 0; i < base.n_tensors; i++) {
        const struct model_tensor *t = &base.tensors[i];
        const struct model_tensor *u = model_tensor_find(&merged, t->name);
        if (!u || u->numel != t->numel)
            tiny_llama_die("merged model has other shapes", NULL);
        float *w = base.params + t->offset, *wm = merged.params + u->offset;
        double *want = xmalloc(t->numel * sizeof(double));
        for (size_t k = 0; k < t->numel; k++)
            want[k] = w[k];
        char stem[160], an[200], bn[200];
        snprintf(stem, sizeof(stem), "%.*s", (int)(strlen(t->name) - 7), t->name);
        snprintf(an, sizeof(an), "base_model.model.%s.lora_A.weight", stem);
        snprintf(bn, sizeof(bn), "base_model.model.%s.lora_B.weight", stem);
        const struct st_tensor *ta = st_find(&st, an), *tb = st_find(&st, bn);
        if (ta && tb) {
            int64_t out = t->shape[0], in = t->shape[1], R = (int64_t)r;
            float *A = xmalloc((size_t)(R * in) * sizeof(float));
            float *B = xmalloc((size_t)(out * R) * sizeof(float));
            if (st_read_f32(&st, ta, A, &err) || st_read_f32(&st, tb, B, &err))
                tiny_llama_die("adapter", &err);
            for (int64_t o = 0; o < out; o++)
                for (int64_t j = 0; j < in; j++) {
                    double s = 0;
                    for (int64_t q = 0; q < R; q++)
                        s += (double)B[o * R + q] * A[q * in + j];
                    want[o * in + j] += alpha / r * s;
                }
            free(A);
            free(B);
            merged_pairs++;
        }
        for (size_t k = 0; k < t->numel; k++)
            worst = fmax(worst, fabs(wm[k] - want[k]));
        free(want);
    }
    printf("pairs %d max_abs_diff %.3g\n", merged_pairs, worst);
    st_close(&st);
    buf_free(&cfg);
    model_free(&base);
    model_free(&merged);
    return worst <= 1e-5 && merged_pairs > 0 ? 0 : 1;
}

static int
cmd_roundtrip(const char *model_dir, const char *gguf_path, const char *report_path)
{
    struct model m, q;
    tiny_llama_load(model_dir, &m);
    struct kerr err;
    struct gguf_file g;
    if (gguf_open(&g, gguf_path, &err) || gguf_model_read(&g, &q, &err))
        tiny_llama_die(gguf_path, &err);
    gguf_close(&g);
    struct buf rep = {0};
    struct json_val root, arr;
    if (read_file(report_path, 1 << 24, &rep, &err))
        tiny_llama_die(report_path, &err);
    if (json_parse_value(rep.p, rep.len, &root, NULL) ||
        !json_val_member(&root, "tensors", 7, &arr))
        tiny_llama_die("report: no tensors", NULL);
    int bad = 0, checked = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const struct model_tensor *t = &m.tensors[i];
        const float *a = m.params + t->offset, *b = q.params + q.tensors[i].offset;
        double se = 0, mx = 0;
        for (size_t k = 0; k < t->numel; k++) {
            double d = fabs((double)a[k] - b[k]);
            se += d * d;
            mx = fmax(mx, d);
        }
        double rmse = sqrt(se / (double)t->numel);
        char gname[GGUF_MAX_NAME + 1];
        gguf_model_tensor_name(&m, i, gname);
        struct json_iter it;
        json_iter_init(&it, &arr);
        bool found = false;
        while (json_iter_next(&it)) {
            struct json_val v;
            if (!json_val_member(&it.val, "name", 4, &v) || !json_str_eq(&v, gname, strlen(gname)))
                continue;
            double want_rmse = -1, want_max = -1;
            if (json_val_member(&it.val, "rmse", 4, &v))
                json_double(&v, &want_rmse);
            if (json_val_member(&it.val, "max_err", 7, &v))
                json_double(&v, &want_max);
            found = true;
            if (fabs(rmse - want_rmse) > 1e-4 * want_rmse + 1e-9 ||
                fabs(mx - want_max) > 1e-4 * want_max + 1e-9) {
                fprintf(stderr, "%s: read back rmse %.6g max %.6g, report %.6g %.6g\n", gname,
                        rmse, mx, want_rmse, want_max);
                bad++;
            }
        }
        if (!found && strcmp(t->name, "lm_head.weight")) {
            fprintf(stderr, "%s: not in the report\n", gname);
            bad++;
        }
        checked++;
    }
    printf("tensors %d mismatches %d\n", checked, bad);
    buf_free(&rep);
    model_free(&m);
    model_free(&q);
    return bad ? 1 : 0;
}

static int
cmd_logits(const char *dir, const int *ids, int n, int gen)
{
    struct model m;
    tiny_llama_load(dir, &m);
    int V = m.cfg.vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            tiny_llama_die("token id out of range", NULL);
    if (!gen) {
        int rc = tiny_llama_print_logprobs(&m, ids, n);
        model_free(&m);
        return rc;
    }
    struct kerr err;
    struct kpool *pool = kpool_new(1);
    tiny_llama_print_head(V, ids, n);
    struct model_kv kv;
    if (model_kv_init(&kv, &m, n + gen, &err))
        tiny_llama_die("kv", &err);
    float *lg = xmalloc((size_t)V * sizeof(float));
    model_kv_forward(&m, &kv, pool, ids, n, lg);
    printf(",\"generated\":[");
    for (int g = 0; g < gen; g++) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (lg[v] > lg[best])
                best = v;
        printf("%s%d", g ? "," : "", best);
        if (g + 1 < gen)
            model_kv_forward(&m, &kv, pool, &best, 1, lg);
    }
    printf("]}\n");
    free(lg);
    model_kv_free(&kv);
    kpool_del(pool);
    model_free(&m);
    return fflush(stdout) ? 1 : 0;
}

static int
cmd_meta(const char *path)
{
    struct gguf_file g;
    struct kerr err;
    if (gguf_open(&g, path, &err))
        tiny_llama_die(path, &err);
    static const char *const strs[] = {"general.architecture", "general.name",
                                       "tokenizer.ggml.model", "tokenizer.ggml.pre"};
    static const char *const ints[] = {"general.file_type", "tokenizer.ggml.bos_token_id",
                                       "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.padding_token_id", "llama.vocab_size",
                                       "llama.block_count"};
    for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
        struct gguf_str v;
        if (gguf_get_str(&g, strs[i], &v, &err) == 0)
            printf("%s=%.*s\n", strs[i], (int)v.n, v.p);
    }
    for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++) {
        int64_t v;
        if (gguf_get_int(&g, ints[i], &v, &err) == 0)
            printf("%s=%lld\n", ints[i], (long long)v);
    }
    static const char *const arrs[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                                       "tokenizer.ggml.merges"};
    for (size_t i = 0; i < sizeof(arrs) / sizeof(*arrs); i++) {
        const struct gguf_kv *kv = gguf_find_kv(&g, arrs[i]);
        if (kv)
            printf("%s.count=%llu\n", arrs[i], (unsigned long long)kv->n);
    }
    gguf_close(&g);
    return 0;
}

static int
cmd_card_db(const char *path, const char *name)
{
    struct kerr err;
    struct store *s = store_open(path, &err);
    if (!s)
        tiny_llama_die(path, &err);
    struct store_run r = {.uuid = "0f1e2d3c-qx", .kind = "train", .name = name,
                          .model = "tiny", .dataset = "fixture-text", .seed = 42, .threads = 1};
    int64_t id;
    static const char stats[] = "{\"stage\":\"filter\",\"version\":\"0.1.0\","
                                "\"records_in\":100,\"records_out\":90,\"bytes_in\":1000,"
                                "\"bytes_out\":900,\"seconds\":1.5}";
    if (store_run_begin(s, &r, &id, &err) || store_param(s, id, "lr", "0.003", &err) ||
        store_param(s, id, "data_seed", "7", &err) ||
        store_result(s, id, "valid_loss", 1.875, 0.01, &err) ||
        store_result(s, id, "perplexity", 6.52, NAN, &err) ||
        store_stage_stats(s, id, stats, sizeof(stats) - 1, &err) ||
        store_run_end(s, id, "done", &err))
        tiny_llama_die(path, &err);
    store_close(s);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "text"))
        return fputs(TEXT, stdout) < 0;
    if (argc == 3 && !strcmp(argv[1], "meta"))
        return cmd_meta(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "card-db"))
        return cmd_card_db(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "model"))
        return cmd_model(argv[2], argc > 3 ? strtoull(argv[3], NULL, 10) : 1,
                         argc > 4 ? atoi(argv[4]) : 0, argc > 5 ? atoi(argv[5]) : 64,
                         argc > 6 ? atoi(argv[6]) : 2, argc > 7 ? atoi(argv[7]) : 256);
    if (argc >= 6 && !strcmp(argv[1], "adapter"))
        return cmd_adapter(argv[2], argv[3], atoi(argv[4]), atof(argv[5]),
                           argc > 6 ? strtoull(argv[6], NULL, 10) : 7);
    if (argc == 5 && !strcmp(argv[1], "check-merge"))
        return cmd_check_merge(argv[2], argv[3], argv[4]);
    if (argc == 5 && !strcmp(argv[1], "roundtrip"))
        return cmd_roundtrip(argv[2], argv[3], argv[4]);
    if (argc == 4 && !strcmp(argv[1], "ids")) {
        struct tok *t = tok_of_dir(argv[2]);
        struct tok_ids ids = {0};
        encode(t, argv[3], &ids);
        for (size_t i = 0; i < ids.n; i++)
            printf("%s%d", i ? " " : "", ids.v[i]);
        printf("\n");
        tok_ids_free(&ids);
        tok_del(t);
        return 0;
    }
    bool gen = argc >= 5 && !strcmp(argv[1], "generate");
    if (gen || (argc >= 4 && !strcmp(argv[1], "logits"))) {
        int first = gen ? 4 : 3, n = argc - first;
        if (n < 1)
            tiny_llama_die("no token ids", NULL);
        int *ids = xmalloc((size_t)n * sizeof(int));
        for (int i = 0; i < n; i++)
            ids[i] = atoi(argv[first + i]);
        int rc = cmd_logits(argv[2], ids, n, gen ? atoi(argv[3]) : 0);
        free(ids);
        return rc;
    }
    fprintf(stderr, "usage: see tests/tools/qx_fixture.c\n");
    return 2;
}

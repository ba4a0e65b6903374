// SPDX-License-Identifier: MIT
// gguf_tiny_llama: a tiny random Llama model written as GGUF with common/gguf, and a naive
// reference forward pass over any such GGUF — for interop tests against llama.cpp without the
// model module.
//
//   gguf_tiny_llama write OUT.gguf [TYPE [SEED]]   TYPE: F32 (default) F16 BF16 Q8_0 Q4_0 Q4_K
//   gguf_tiny_llama logits MODEL.gguf ID...        next-token log-probabilities at every
//                                                  position, as JSON (the format of
//                                                  tests/tools/llama_logits.mjs)
//   gguf_tiny_llama generate MODEL.gguf N ID...    N greedy next tokens, as JSON
//   gguf_tiny_llama export OUT.gguf [TYPE [SEED [mixed] [tied]]]
//                                                  the same shapes as a model.h model (HF
//                                                  conventions, random init) exported by
//                                                  gguf_model_write; report on stderr
//   gguf_tiny_llama model-logits MODEL.gguf ID...  log-probabilities from model.h's forward
//                                                  over the GGUF read by gguf_model_read
//
// The model: vocab 260 (256 byte tokens in GPT-2 byte-to-unicode form, the merged tokens "Ġt",
// "he", "Ġthe", and "<|endoftext|>" as a control token), n_embd 256, 2 layers, 4 heads of 64
// with 2 KV heads (GQA), FFN 512, context 128, untied output; widths are multiples of 256 so
// every matrix can be Q4_K. Weights are stored in llama.cpp's conventions (ne[0] = input
// width; Q and K rows already in llama.cpp's interleaved-pair RoPE order), and the reference
// forward uses the same conventions: RMSNorm, RoPE on consecutive pairs, causal GQA
// attention, SwiGLU, final norm, output projection — all in double precision over the
// dequantized weights.
#include "gguf.h"
#include "gguf_model.h"
#include "kernels.h"
#include "model.h"
#include "tok.h"
#include "quant.h"
#include "util.h"

#define TINY_LLAMA_PROG "gguf_tiny_llama"
#include "tiny_llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { VOCAB = 260, EMBD = 256, LAYERS = 2, HEADS = 4, KV_HEADS = 2, FFN = 512, CTX = 128 };
#define HEAD_DIM (EMBD / HEADS)
#define RMS_EPS 1e-5f
#define ROPE_BASE 10000.0f

static uint64_t rng;

static float
rnd_normal(void)
{
    double s = 0;
    for (int k = 0; k < 4; k++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        s += (double)(rng >> 11) / 9007199254740992.0;
    }
    return (float)((s - 2.0) * 1.7320508); // variance 1
}

struct wt {
    char name[64];
    int n_dims;
    int64_t ne[2];
    float scale, bias; // values: bias + scale * normal
    bool norm;         // 1-D norm weights stay F32
};

static int
list_tensors(struct wt *t)
{
    int n = 0;
#define ADD(nm, d0, d1, sc, bi, nrm)                                                               \
    do {                                                                                           \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                           \
        t[n].n_dims = (d1) ? 2 : 1;                                                                \
        t[n].ne[0] = d0;                                                                           \
        t[n].ne[1] = (d1) ? (d1) : 1;                                                              \
        t[n].scale = sc;                                                                           \
        t[n].bias = bi;                                                                            \
        t[n].norm = nrm;                                                                           \
        n++;                                                                                       \
    } while (0)
    char nm[64];
    ADD("token_embd.weight", EMBD, VOCAB, 0.5f, 0, false);
    for (int l = 0; l < LAYERS; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        ADD(nm, EMBD, 0, 0.1f, 1, true);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l);
        ADD(nm, EMBD, EMBD, 0.06f, 0, false);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l);
        ADD(nm, EMBD, KV_HEADS * HEAD_DIM, 0.06f, 0, false);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);
        ADD(nm, EMBD, KV_HEADS * HEAD_DIM, 0.06f, 0, false);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l);
        ADD(nm, EMBD, EMBD, 0.06f, 0, false);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        ADD(nm, EMBD, 0, 0.1f, 1, true);
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l);
        ADD(nm, EMBD, FFN, 0.06f, 0, false);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);
        ADD(nm, EMBD, FFN, 0.06f, 0, false);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
        ADD(nm, FFN, EMBD, 0.05f, 0, false);
    }
    ADD("output_norm.weight", EMBD, 0, 0.1f, 1, true);
    ADD("output.weight", EMBD, VOCAB, 0.1f, 0, false);
#undef ADD
    return n;
}

// The vocabulary: 256 byte tokens, three merged tokens, one control token (also eos/bos).
// tok[] entries are allocated (free them).
static const char *const vocab_merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he"};

static void
vocab_make(struct gguf_tokenizer_params *tp, char **tok, int32_t *ttype)
{
    for (int i = 0; i < 256; i++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)i); // below U+0800: one or two UTF-8 bytes
        char s[3] = {(char)cp, 0, 0};
        if (cp >= 0x80) {
            s[0] = (char)(0xC0 | cp >> 6);
            s[1] = (char)(0x80 | (cp & 0x3F));
        }
        tok[i] = xstrdup(s);
        ttype[i] = 1;
    }
    tok[256] = xstrdup("\xC4\xA0t"); // "Ġt"
    tok[257] = xstrdup("he");
    tok[258] = xstrdup("\xC4\xA0the");
    tok[259] = xstrdup("<|endoftext|>");
    for (int i = 256; i < 259; i++)
        ttype[i] = 1;
    ttype[259] = 3;
    *tp = (struct gguf_tokenizer_params){.pre = "gpt-2",
                                         .tokens = (const char *const *)tok,
                                         .n_tokens = VOCAB,
                                         .token_types = ttype,
                                         .merges = vocab_merges,
                                         .n_merges = 3,
                                         .bos_id = 259,
                                         .eos_id = 259,
                                         .pad_id = -1,
                                         .add_bos = 0};
}

static int
cmd_write(const char *out, int type, uint64_t seed)
{
    rng = seed * 0x9e3779b97f4a7c15ull + 1;
    struct wt t[64];
    int n = list_tensors(t);
    struct gguf_writer *w = gguf_writer_new();
    static const uint32_t file_types[] = {[QTYPE_F32] = 0,  [QTYPE_F16] = 1,   [QTYPE_Q4_0] = 2,
                                          [QTYPE_Q8_0] = 7, [QTYPE_Q4_K] = 15, [QTYPE_BF16] = 32};
    struct gguf_llama_params p = {.name = "kiln-tiny-random",
                                  .file_type = file_types[type],
                                  .context_length = CTX,
                                  .embedding_length = EMBD,
                                  .block_count = LAYERS,
                                  .feed_forward_length = FFN,
                                  .head_count = HEADS,
                                  .head_count_kv = KV_HEADS,
                                  .vocab_size = VOCAB,
                                  .rms_eps = RMS_EPS,
                                  .rope_freq_base = ROPE_BASE};
    gguf_set_llama(w, &p);

    char *tok[VOCAB];
    int32_t ttype[VOCAB];
    struct gguf_tokenizer_params tp;
    vocab_make(&tp, tok, ttype);
    gguf_set_tokenizer_gpt2(w, &tp);

    void *data[64];
    struct kerr err;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t cnt = t[i].ne[0] * t[i].ne[1];
        float *x = xmalloc((size_t)cnt * 4);
        for (int64_t k = 0; k < cnt; k++)
            x[k] = t[i].bias + t[i].scale * rnd_normal();
        int ty = t[i].norm ? QTYPE_F32 : type;
        size_t rs = quant_row_size(ty, t[i].ne[0]);
        data[i] = xmalloc(rs * (size_t)t[i].ne[1]);
        for (int64_t r = 0; r < t[i].ne[1]; r++)
            quant_row_quantize(ty, x + r * t[i].ne[0], (char *)data[i] + r * rs, t[i].ne[0]);
        free(x);
        rc = gguf_writer_add_tensor(w, t[i].name, ty, t[i].n_dims, t[i].ne, data[i], &err);
        if (rc)
            n = i + 1;
    }
    if (rc == 0)
        rc = gguf_writer_write(w, out, &err);
    if (rc)
        fprintf(stderr, "gguf_tiny_llama: %s\n", err.msg);
    for (int i = 0; i < n; i++)
        free(data[i]);
    for (int i = 0; i < VOCAB; i++)
        free(tok[i]);
    gguf_writer_del(w);
    return rc ? 1 : 0;
}

// ---- reference forward ----

struct mat {
    float *w; // [rows][cols], cols = ne[0]
    int rows, cols;
};

static int
load(const struct gguf_file *g, const char *name, int rows, int cols, struct mat *m,
     struct kerr *err)
{
    const struct gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t)
        return kerr_set(err, "tensor %s missing", name);
    if (t->ne[0] != cols || t->n_elem != (int64_t)rows * cols)
        return kerr_set(err, "tensor %s: shape %lldx%lld, want %dx%d", name, (long long)t->ne[0],
                        (long long)t->ne[1], cols, rows);
    m->rows = rows;
    m->cols = cols;
    m->w = xmalloc((size_t)rows * cols * 4);
    return gguf_tensor_to_f32(t, m->w, err);
}

// out[r] = sum_c m[r][c] * x[c]
static void
matvec(const struct mat *m, const double *x, double *out)
{
    for (int r = 0; r < m->rows; r++) {
        const float *row = m->w + (size_t)r * m->cols;
        double s = 0;
        for (int c = 0; c < m->cols; c++)
            s += row[c] * x[c];
        out[r] = s;
    }
}

static void
rmsnorm(const double *x, const struct mat *w, double *out, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + RMS_EPS);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * s * w->w[i];
}

// llama.cpp's normal RoPE: pairs (2i, 2i+1) of each head rotated by pos * base^(-2i/d).
static void
rope(double *v, int n_heads, int pos)
{
    for (int h = 0; h < n_heads; h++) {
        double *x = v + h * HEAD_DIM;
        for (int i = 0; i < HEAD_DIM / 2; i++) {
            double th = pos * pow(ROPE_BASE, -2.0 * i / HEAD_DIM);
            double c = cos(th), s = sin(th), a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * c - b * s;
            x[2 * i + 1] = a * s + b * c;
        }
    }
}

struct ref_model {
    struct mat emb, out_norm, out, L[LAYERS][9];
};

static int
ref_load(struct ref_model *m, const char *path, struct kerr *err)
{
    struct gguf_file g;
    memset(m, 0, sizeof *m);
    if (gguf_open(&g, path, err))
        return -1;
    int rc = load(&g, "token_embd.weight", VOCAB, EMBD, &m->emb, err);
    rc = rc ? rc : load(&g, "output_norm.weight", 1, EMBD, &m->out_norm, err);
    rc = rc ? rc : load(&g, "output.weight", VOCAB, EMBD, &m->out, err);
    static const char *names[9] = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                                   "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
    const int shapes[9][2] = {{1, EMBD},
                              {EMBD, EMBD},
                              {KV_HEADS * HEAD_DIM, EMBD},
                              {KV_HEADS * HEAD_DIM, EMBD},
                              {EMBD, EMBD},
                              {1, EMBD},
                              {FFN, EMBD},
                              {FFN, EMBD},
                              {EMBD, FFN}};
    for (int l = 0; l < LAYERS && rc == 0; l++)
        for (int k = 0; k < 9 && rc == 0; k++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, names[k]);
            rc = load(&g, nm, shapes[k][0], shapes[k][1], &m->L[l][k], err);
        }
    gguf_close(&g);
    return rc;
}

static void
ref_free(struct ref_model *m)
{
    free(m->emb.w);
    free(m->out_norm.w);
    free(m->out.w);
    for (int l = 0; l < LAYERS; l++)
        for (int k = 0; k < 9; k++)
            free(m->L[l][k].w);
}

// lp is (n, VOCAB): next-token log-probabilities at every position of ids[0..n-1].
static void
ref_forward(const struct ref_model *m, int n, const int *ids, double *lp)
{
    const int kvd = KV_HEADS * HEAD_DIM;
    double *x = xcalloc((size_t)n * EMBD, sizeof(double));
    double *kc = xcalloc((size_t)LAYERS * n * kvd, sizeof(double));
    double *vc = xcalloc((size_t)LAYERS * n * kvd, sizeof(double));
    double h[EMBD], q[EMBD], att[EMBD], o[EMBD], gt[FFN], up[FFN];
    double *sc = xmalloc((size_t)n * sizeof(double));
    for (int p = 0; p < n; p++) {
        double *xp = x + (size_t)p * EMBD;
        for (int i = 0; i < EMBD; i++)
            xp[i] = m->emb.w[(size_t)ids[p] * EMBD + i];
        for (int l = 0; l < LAYERS; l++) {
            const struct mat *L = m->L[l];
            double *kl = kc + ((size_t)l * n + p) * kvd, *vl = vc + ((size_t)l * n + p) * kvd;
            rmsnorm(xp, &L[0], h, EMBD);
            matvec(&L[1], h, q);
            matvec(&L[2], h, kl);
            matvec(&L[3], h, vl);
            rope(q, HEADS, p);
            rope(kl, KV_HEADS, p);
            for (int hd = 0; hd < HEADS; hd++) {
                int kvh = hd / (HEADS / KV_HEADS);
                double mx = -INFINITY, sum = 0;
                for (int t = 0; t <= p; t++) {
                    const double *kt = kc + ((size_t)l * n + t) * kvd + kvh * HEAD_DIM;
                    double s = 0;
                    for (int i = 0; i < HEAD_DIM; i++)
                        s += q[hd * HEAD_DIM + i] * kt[i];
                    sc[t] = s / sqrt((double)HEAD_DIM);
                    mx = fmax(mx, sc[t]);
                }
                for (int t = 0; t <= p; t++)
                    sum += (sc[t] = exp(sc[t] - mx));
                for (int i = 0; i < HEAD_DIM; i++) {
                    double a = 0;
                    for (int t = 0; t <= p; t++)
                        a += sc[t] * vc[((size_t)l * n + t) * kvd + kvh * HEAD_DIM + i];
                    att[hd * HEAD_DIM + i] = a / sum;
                }
            }
            matvec(&L[4], att, o);
            for (int i = 0; i < EMBD; i++)
                xp[i] += o[i];
            rmsnorm(xp, &L[5], h, EMBD);
            matvec(&L[6], h, gt);
            matvec(&L[7], h, up);
            for (int i = 0; i < FFN; i++)
                gt[i] = gt[i] / (1 + exp(-gt[i])) * up[i];
            matvec(&L[8], gt, o);
            for (int i = 0; i < EMBD; i++)
                xp[i] += o[i];
        }
        double *lg = lp + (size_t)p * VOCAB;
        rmsnorm(xp, &m->out_norm, h, EMBD);
        matvec(&m->out, h, lg);
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < VOCAB; v++)
            mx = fmax(mx, lg[v]);
        for (int v = 0; v < VOCAB; v++)
            sum += exp(lg[v] - mx);
        for (int v = 0; v < VOCAB; v++)
            lg[v] = lg[v] - mx - log(sum);
    }
    free(x);
    free(kc);
    free(vc);
    free(sc);
}

// Prints log-probabilities at every position, or (gen > 0) the gen greedy continuations.
static int
cmd_logits(const char *path, int n, int *ids, int gen)
{
    struct ref_model m;
    struct kerr err;
    if (ref_load(&m, path, &err)) {
        fprintf(stderr, "gguf_tiny_llama: %s\n", err.msg);
        ref_free(&m);
        return 1;
    }
    double *lp = xmalloc((size_t)(n + gen) * VOCAB * sizeof(double));
    printf("{\"n_vocab\":%d,\"tokens\":[", VOCAB);
    for (int p = 0; p < n; p++)
        printf("%s%d", p ? "," : "", ids[p]);
    if (gen) {
        printf("],\"generated\":[");
        for (int k = 0; k < gen; k++) {
            ref_forward(&m, n + k, ids, lp);
            const double *last = lp + (size_t)(n + k - 1) * VOCAB;
            int best = 0;
            for (int v = 1; v < VOCAB; v++)
                if (last[v] > last[best])
                    best = v;
            ids[n + k] = best;
            printf("%s%d", k ? "," : "", best);
        }
        printf("]}\n");
    } else {
        ref_forward(&m, n, ids, lp);
        printf("],\"logprobs\":[");
        for (int p = 0; p < n; p++) {
            printf("%s[", p ? "," : "");
            for (int v = 0; v < VOCAB; v++)
                printf("%s%.7g", v ? "," : "", lp[(size_t)p * VOCAB + v]);
            printf("]");
        }
        printf("]}\n");
    }
    free(lp);
    ref_free(&m);
    return ferror(stdout) || fflush(stdout) ? 1 : 0;
}

// ---- the same shapes through model.h (HF conventions) and gguf_model ----

static void
model_config_tiny(struct model_config *c, bool tied)
{
    *c = (struct model_config){.vocab = VOCAB,
                               .dim = EMBD,
                               .n_layers = LAYERS,
                               .n_heads = HEADS,
                               .n_kv_heads = KV_HEADS,
                               .ffn = FFN,
                               .max_seq = CTX,
                               .norm_eps = RMS_EPS,
                               .rope_theta = ROPE_BASE,
                               .tie_embeddings = tied,
                               .bos_id = 259,
                               .eos_id = 259};
}

// A random model.h model (HF init, weights scaled up 3x so logits are not flat) exported
// with gguf_model_write; prints the quantization report.
static int
cmd_export(const char *out, int type, uint64_t seed, bool mixed, bool tied)
{
    struct model_config c;
    struct model m;
    struct kerr err;
    model_config_tiny(&c, tied);
    tiny_llama_new(&m, &c, seed, 3);
    char *tok[VOCAB];
    int32_t ttype[VOCAB];
    struct gguf_tokenizer_params tp;
    vocab_make(&tp, tok, ttype);
    struct gguf_export_opts o = {.type = type, .mixed = mixed, .name = "kiln-tiny-model"};
    struct gguf_export_report rep;
    int rc = gguf_model_write(out, &m, &tp, &o, &rep, &err);
    if (rc) {
        fprintf(stderr, "gguf_tiny_llama: %s\n", err.msg);
    } else {
        for (int i = 0; i < rep.n; i++)
            fprintf(stderr, "%-28s %-5s%s rmse %.3g max %.3g\n", rep.t[i].name,
                    quant_type_name(rep.t[i].type), rep.t[i].fallback ? " (fallback)" : "",
                    rep.t[i].rmse, rep.t[i].max_err);
        gguf_export_report_free(&rep);
    }
    for (int i = 0; i < VOCAB; i++)
        free(tok[i]);
    model_free(&m);
    return rc ? 1 : 0;
}

// Log-probabilities from model.h's forward over a GGUF read back with gguf_model_read.
static int
cmd_model_logits(const char *path, int n, const int *ids)
{
    struct model m;
    tiny_llama_load(path, &m);
    int rc = tiny_llama_print_logprobs(&m, ids, n);
    model_free(&m);
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "write") == 0) {
        int type = argc > 3 ? quant_type_parse(argv[3]) : QTYPE_F32;
        if (type < 0 || type == QTYPE_NF4) {
            fprintf(stderr, "gguf_tiny_llama: unknown type %s\n", argv[3]);
            return 2;
        }
        return cmd_write(argv[2], type, argc > 4 ? strtoull(argv[4], NULL, 10) : 1);
    }
    if (argc >= 3 && strcmp(argv[1], "export") == 0) {
        int type = argc > 3 ? quant_type_parse(argv[3]) : QTYPE_F32;
        if (type < 0) {
            fprintf(stderr, "gguf_tiny_llama: unknown type %s\n", argv[3]);
            return 2;
        }
        bool mixed = false, tied = false;
        for (int i = 5; i < argc; i++) {
            mixed |= strcmp(argv[i], "mixed") == 0;
            tied |= strcmp(argv[i], "tied") == 0;
        }
        return cmd_export(argv[2], type, argc > 4 ? strtoull(argv[4], NULL, 10) : 1, mixed, tied);
    }
    if (argc >= 4 && strcmp(argv[1], "model-logits") == 0) {
        int n = argc - 3;
        int *ids = xmalloc((size_t)n * sizeof(int));
        for (int i = 0; i < n; i++)
            ids[i] = atoi(argv[3 + i]);
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= VOCAB || n > CTX) {
                fprintf(stderr, "gguf_tiny_llama: bad token id or too many tokens\n");
                free(ids);
                return 2;
            }
        int rc = cmd_model_logits(argv[2], n, ids);
        free(ids);
        return rc;
    }
    if (argc >= 4 && (strcmp(argv[1], "logits") == 0 || strcmp(argv[1], "generate") == 0)) {
        int gen = 0, first = 3;
        if (argv[1][0] == 'g') {
            gen = atoi(argv[3]);
            first = 4;
            if (gen < 1 || argc < 5) {
                fprintf(stderr, "gguf_tiny_llama: generate needs a count and token ids\n");
                return 2;
            }
        }
        int n = argc - first;
        if (n + gen > CTX) {
            fprintf(stderr, "gguf_tiny_llama: at most %d tokens\n", CTX);
            return 2;
        }
        int *ids = xmalloc((size_t)(n + gen) * sizeof(int));
        for (int i = 0; i < n; i++) {
            ids[i] = atoi(argv[first + i]);
            if (ids[i] < 0 || ids[i] >= VOCAB) {
                fprintf(stderr, "gguf_tiny_llama: token id %s out of range\n", argv[first + i]);
                free(ids);
                return 2;
            }
        }
        int rc = cmd_logits(argv[2], n, ids, gen);
        free(ids);
        return rc;
    }
    fprintf(stderr, "usage: gguf_tiny_llama write OUT.gguf [TYPE [SEED]]\n"
                    "       gguf_tiny_llama logits MODEL.gguf ID...\n"
                    "       gguf_tiny_llama generate MODEL.gguf N ID...\n"
                    "       gguf_tiny_llama export OUT.gguf [TYPE [SEED [mixed] [tied]]]\n"
                    "       gguf_tiny_llama model-logits MODEL.gguf ID...\n");
    return 2;
}

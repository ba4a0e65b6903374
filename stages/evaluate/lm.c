// SPDX-License-Identifier: MIT
// lm.c: `evaluate lm` — language-modelling loss, perplexity and bits per byte.
//
// Rolling (default; lm-evaluation-harness's loglikelihood_rolling): each document is scored
// alone. Its tokens X = [EOS] + ids (the end-of-sequence token stands in for a beginning, as
// lm-eval's prefix token), every token of ids is predicted; a document longer than the context
// T is cut into chunks of T predicted tokens, each chunk predicted from a full window of the T
// tokens before it. Records with loss_start (supervised pairs) are scored from that token on,
// with no prefix — the trainer's SFT validation on the same records.
//
// Packed (--packed): the trainer's pretraining validation exactly — every document's ids
// joined into one stream with an EOS after each (unless it already ends in one), windows
// stream[i*T .. i*T+T] (inputs T tokens, targets shifted by one), the tail that does not fill a
// window dropped. With the trainer's --seq-len the loss equals its logged valid_loss.
//
// Input records carry input_ids (tokenize encode output) or text (encoded here with the
// model's tokenizer, EOS appended, as tokenize encode does). Bits per byte divide by the
// UTF-8 bytes of the scored tokens (control tokens count 0 bytes).
#include "evaluate.h"
#include "metrics.h"
#include "rec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lm_opts {
    struct eval_common c;
    int seq_len, iters;
    bool packed;
};

static void
lm_usage(FILE *f)
{
    fputs("usage: evaluate lm --model DIR|FILE.gguf [--adapter DIR] [--tokenizer FILE]\n"
          "         [--seq-len T] [--packed] [--bootstrap-iters N] [--seed N] [--threads N]\n"
          "         [--batch N] [-o RESULTS.jsonl] [--db DB [--run-name NAME]] [FILE...]\n"
          "Records with input_ids (or text). --seq-len defaults to the model's context;\n"
          "--packed scores the stream as the trainer's validation does.\n",
          f);
}

enum { OPT_SEQ_LEN = EOPT_CMD, OPT_PACKED, OPT_ITERS };

struct lm_doc {
    char *id;
    int32_t *ids;
    size_t n, loss_start;
};

// Bytes a token contributes to bits per byte (control tokens none).
static uint64_t
token_bytes(const struct tok *t, int32_t id)
{
    size_t len = 0;
    if ((size_t)id >= tok_vocab_size(t) || tok_token_type(t, id) == TOK_TYPE_CONTROL)
        return 0;
    tok_token_bytes(t, id, &len);
    return len;
}

// Per scoring unit (document or window): log-likelihood, tokens, bytes.
struct lm_units {
    double *ll;
    double *tok, *bytes;
};

static double
stat_loss(void *ctx, const size_t *idx, size_t n)
{
    const struct lm_units *u = ctx;
    double ll = 0, t = 0;
    for (size_t i = 0; i < n; i++)
        ll += u->ll[idx[i]], t += u->tok[idx[i]];
    return t > 0 ? -ll / t : 0;
}

static double
stat_bpb(void *ctx, const size_t *idx, size_t n)
{
    const struct lm_units *u = ctx;
    double ll = 0, b = 0;
    for (size_t i = 0; i < n; i++)
        ll += u->ll[idx[i]], b += u->bytes[idx[i]];
    return b > 0 ? -ll / b / log(2) : 0;
}

int
cmd_lm(int argc, char **argv)
{
    struct lm_opts o;
    eval_common_init(&o.c);
    o.seq_len = 0;
    o.iters = 1000;
    o.packed = false;
    static const struct option longopts[] = {
        EVAL_LONGOPTS,
        {"seq-len", required_argument, 0, OPT_SEQ_LEN},
        {"packed", no_argument, 0, OPT_PACKED},
        {"bootstrap-iters", required_argument, 0, OPT_ITERS},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_SEQ_LEN:
            o.seq_len = (int)cli_parse_int("--seq-len", optarg, 1, 1 << 20);
            break;
        case OPT_PACKED:
            o.packed = true;
            break;
        case OPT_ITERS:
            o.iters = (int)cli_parse_int("--bootstrap-iters", optarg, 0, 10000000);
            break;
        default:
            if (!eval_common_opt(&o.c, opt, optarg, lm_usage))
                die_usage("unexpected option");
        }
    }
    char **files = eval_inputs(argc, argv);
    struct eval_model em;
    eval_common_model(&o.c, &em);
    int T = o.seq_len ? o.seq_len : em.m.max_t;
    if (T > em.m.max_t)
        die_usage("--seq-len %d is longer than the model's context (%d)", T, em.m.max_t);
    if (em.eos < 0)
        die("%s: no end-of-sequence token known (config eos_token_id or <|endoftext|>)", em.desc);
    struct kerr err;
    struct tok_enc *enc = tok_enc_new(em.tok);

    // Documents.
    struct lm_doc *docs = NULL;
    size_t n_docs = 0, cap = 0;
    struct json_obj obj;
    json_obj_init(&obj);
    struct buf text = {0};
    for (char **f = files; *f; f++) {
        struct rec_reader *r = rec_reader_open(*f, &err);
        if (!r)
            die_kerr(&err);
        struct rec_line line;
        int rc;
        while ((rc = rec_reader_next_obj(r, &line, &obj, &err)) == 1) {
            const char *name = rec_reader_name(r);
            unsigned long long ln = (unsigned long long)line.lineno;
            if (n_docs == cap) {
                cap = cap ? 2 * cap : 256;
                docs = xrealloc(docs, cap * sizeof *docs);
            }
            struct lm_doc *d = &docs[n_docs];
            memset(d, 0, sizeof *d);
            struct tok_ids ids = {0};
            const struct json_field *fi = json_obj_get(&obj, "input_ids");
            struct json_val tv;
            if (fi) {
                if (fi->val.type != JSON_ARRAY)
                    die("%s:%llu: input_ids is not an array", name, ln);
                struct json_iter it;
                json_iter_init(&it, &fi->val);
                while (json_iter_next(&it)) {
                    int64_t x;
                    if (json_int(&it.val, &x) < 0 || x < 0 || x >= em.m.cfg.vocab)
                        die("%s:%llu: input_ids[%zu] is not a token id of the model (vocabulary "
                            "%d): model and data do not match",
                            name, ln, it.index, em.m.cfg.vocab);
                    tok_ids_push(&ids, (int32_t)x);
                }
            } else if (json_obj_path(&obj, "text", &tv) && tv.type == JSON_STRING) {
                buf_reset(&text);
                json_str(&tv, &text);
                if (tok_encode(enc, text.p ? text.p : "", text.len, 0, &ids, &err) < 0)
                    die("%s:%llu: %s", name, ln, err.msg);
                tok_ids_push(&ids, em.eos);
                if (eval_ids_check(&em, ids.v, ids.n, &err) < 0)
                    die("%s:%llu: %s: the model and tokenizer do not match", name, ln, err.msg);
            } else {
                die("%s:%llu: record has neither input_ids nor a text string", name, ln);
            }
            const struct json_field *fl = json_obj_get(&obj, "loss_start");
            int64_t ls = 0;
            if (fl && (json_int(&fl->val, &ls) < 0 || ls < 0))
                die("%s:%llu: loss_start is not a non-negative integer", name, ln);
            d->loss_start = (size_t)ls;
            struct json_val idv;
            struct buf b = {0};
            if (json_obj_path(&obj, "id", &idv) && idv.type == JSON_STRING)
                json_str(&idv, &b);
            else
                buf_printf(&b, "%s:%llu", name, ln);
            d->id = b.p ? buf_detach(&b) : xstrdup("");
            d->ids = ids.v;
            d->n = ids.n;
            n_docs++;
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    if (n_docs == 0)
        die("no records to evaluate");

    // Sequences to score, and which unit (document or window) each belongs to.
    struct score_seq *seqs = NULL;
    size_t *unit_of = NULL, n_seq = 0, seq_cap = 0, n_units;
    int32_t *stream = NULL;
    int32_t **xs = xcalloc(n_docs, sizeof *xs);
#define PUSH_SEQ(tk, ln, fr, u)                                                                    \
    do {                                                                                           \
        if (n_seq == seq_cap) {                                                                    \
            seq_cap = seq_cap ? 2 * seq_cap : 256;                                                 \
            seqs = xrealloc(seqs, seq_cap * sizeof *seqs);                                         \
            unit_of = xrealloc(unit_of, seq_cap * sizeof *unit_of);                                \
        }                                                                                          \
        seqs[n_seq] = (struct score_seq){.tokens = (tk), .len = (ln), .from = (fr)};               \
        unit_of[n_seq++] = (u);                                                                    \
    } while (0)
    if (o.packed) {
        size_t n_tok = 0;
        for (size_t i = 0; i < n_docs; i++)
            n_tok += docs[i].n + 1;
        stream = xmalloc((n_tok ? n_tok : 1) * sizeof *stream);
        n_tok = 0;
        for (size_t i = 0; i < n_docs; i++) {
            memcpy(stream + n_tok, docs[i].ids, docs[i].n * sizeof *stream);
            n_tok += docs[i].n;
            if (docs[i].n > 0 && docs[i].ids[docs[i].n - 1] != em.eos)
                stream[n_tok++] = em.eos;
        }
        n_units = n_tok > 0 ? (n_tok - 1) / (size_t)T : 0;
        if (n_units == 0)
            die("--packed: %zu tokens do not fill one window of %d + 1", n_tok, T);
        for (size_t w = 0; w < n_units; w++)
            PUSH_SEQ(stream + w * (size_t)T, T + 1, 1, w);
    } else {
        n_units = n_docs;
        for (size_t i = 0; i < n_docs; i++) {
            struct lm_doc *d = &docs[i];
            // X = [EOS] + ids scored from 1, or ids scored from loss_start (≥ 1)
            size_t nx, first;
            if (d->loss_start > 0) {
                xs[i] = d->ids;
                nx = d->n;
                first = d->loss_start;
            } else {
                xs[i] = xmalloc((d->n + 1) * sizeof *xs[i]);
                xs[i][0] = em.eos;
                memcpy(xs[i] + 1, d->ids, d->n * sizeof *xs[i]);
                nx = d->n + 1;
                first = 1;
            }
            for (size_t a = first; a < nx;) {
                size_t b = a + (size_t)T < nx ? a + (size_t)T : nx;
                size_t w0 = b - 1 > (size_t)T ? b - 1 - (size_t)T : 0;
                PUSH_SEQ(xs[i] + w0, (int)(b - w0), (int)(a - w0), i);
                a = b;
            }
        }
    }
#undef PUSH_SEQ

    struct kpool *pool = kpool_new(o.c.threads);
    struct scorer sc;
    int t_max = 1;
    for (size_t i = 0; i < n_seq; i++)
        if (seqs[i].len > t_max)
            t_max = seqs[i].len;
    if (scorer_init(&sc, &em, pool, o.c.batch, t_max - 1, &err) < 0)
        die_kerr(&err);
    double t0 = now_seconds();
    scorer_run(&sc, seqs, n_seq);
    double secs = now_seconds() - t0;

    struct lm_units u = {xcalloc(n_units, sizeof(double)), xcalloc(n_units, sizeof(double)),
                         xcalloc(n_units, sizeof(double))};
    for (size_t i = 0; i < n_seq; i++) {
        size_t k = unit_of[i];
        u.ll[k] += seqs[i].logprob;
        u.tok[k] += seqs[i].scored;
        for (int p = seqs[i].from; p < seqs[i].len; p++)
            u.bytes[k] += (double)token_bytes(em.tok, seqs[i].tokens[p]);
    }
    double ll = 0, ntok = 0, nbytes = 0;
    for (size_t k = 0; k < n_units; k++)
        ll += u.ll[k], ntok += u.tok[k], nbytes += u.bytes[k];
    if (ntok == 0)
        die("nothing to score: every record is empty or scored from its end");
    double loss = -ll / ntok, bpb = nbytes > 0 ? -ll / nbytes / log(2) : NAN;
    double se_loss = metrics_bootstrap(n_units, o.iters, o.c.cli.seed, stat_loss, &u);
    double se_bpb = metrics_bootstrap(n_units, o.iters, o.c.cli.seed, stat_bpb, &u);
    info("%zu records, %.0f tokens scored in %.2f s (%.0f tokens/s): loss %.4f, perplexity "
         "%.3f, bits per byte %.4f",
         n_docs, ntok, secs, (double)sc.tokens_run / (secs > 0 ? secs : 1), loss, exp(loss), bpb);

    struct buf out = {0};
    struct json_writer w;
    for (size_t k = 0; k < n_units; k++) {
        json_writer_init(&w, &out);
        jw_obj_begin(&w);
        jw_key(&w, "id");
        if (o.packed) {
            char id[32];
            snprintf(id, sizeof id, "window-%zu", k);
            jw_str(&w, id);
        } else {
            jw_str(&w, docs[k].id);
        }
        jw_key(&w, "logprob");
        jw_double(&w, u.ll[k]);
        jw_key(&w, "tokens");
        jw_int(&w, (int64_t)u.tok[k]);
        jw_key(&w, "bytes");
        jw_int(&w, (int64_t)u.bytes[k]);
        jw_key(&w, "loss");
        jw_double(&w, u.tok[k] > 0 ? -u.ll[k] / u.tok[k] : 0);
        jw_obj_end(&w);
        buf_putc(&out, '\n');
    }
    json_writer_init(&w, &out);
    jw_obj_begin(&w);
    jw_key(&w, "summary");
    jw_obj_begin(&w);
    jw_key(&w, "task");
    jw_str(&w, o.packed ? "lm-packed" : "lm-rolling");
    jw_key(&w, "n");
    jw_uint(&w, n_docs);
    jw_key(&w, "seq_len");
    jw_int(&w, T);
    jw_key(&w, "tokens");
    jw_int(&w, (int64_t)ntok);
    jw_key(&w, "bytes");
    jw_int(&w, (int64_t)nbytes);
    jw_key(&w, "loss");
    jw_double(&w, loss);
    jw_key(&w, "perplexity");
    jw_double(&w, exp(loss));
    jw_key(&w, "bits_per_byte");
    jw_double(&w, bpb);
    jw_key(&w, "stderr");
    jw_obj_begin(&w);
    jw_key(&w, "loss");
    jw_double(&w, se_loss);
    jw_key(&w, "perplexity"); // delta method: d exp(x) = exp(x) dx
    jw_double(&w, exp(loss) * se_loss);
    jw_key(&w, "bits_per_byte");
    jw_double(&w, se_bpb);
    jw_obj_end(&w);
    jw_key(&w, "bootstrap_iters");
    jw_int(&w, o.iters);
    jw_key(&w, "seed");
    jw_uint(&w, o.c.cli.seed);
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(&out, '\n');

    const char *params[] = {"task", o.packed ? "lm-packed" : "lm-rolling", NULL};
    eval_results_finish(&o.c, em.desc, files, params, &out);
    struct stats st;
    stats_init(&st, "evaluate");
    st.records_in = n_docs;
    st.records_out = n_units;
    stats_u64(&st, "positions", sc.tokens_run);
    stats_f64(&st, "tokens_per_s", (double)sc.tokens_run / (secs > 0 ? secs : 1));
    if (stats_write(&st, o.c.cli.stats, &err) < 0)
        die_kerr(&err);
    stats_free(&st);

    for (size_t i = 0; i < n_docs; i++) {
        if (xs[i] != docs[i].ids)
            free(xs[i]);
        free(docs[i].ids);
        free(docs[i].id);
    }
    free(xs), free(docs), free(seqs), free(unit_of), free(stream);
    free(u.ll), free(u.tok), free(u.bytes);
    buf_free(&out), buf_free(&text);
    json_obj_free(&obj);
    scorer_free(&sc);
    kpool_del(pool);
    tok_enc_del(enc);
    eval_model_free(&em);
    return 0;
}

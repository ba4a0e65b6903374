// SPDX-License-Identifier: MIT
// classify.c: `evaluate classify` — classification by label log-likelihood, as
// lm-evaluation-harness's multiple_choice tasks do it. For each record and each candidate
// label c, the text is prompt + completion(c) built with tokenize's templates (prompt and
// completion encoded separately and concatenated, --max-len shortening the prompt only, as
// `tokenize encode` does); the score is log p(completion tokens | prompt). The prediction is
// the best score (acc) or the best score per character of the completion (acc_norm); the
// candidates' probabilities are the softmax of their scores (for ECE and the reliability
// diagram). The end-of-sequence token is not scored (lm-eval scores the continuation only).
//
// Output: one JSON line per record in input order, then {"summary": {...}}. No times and no
// paths: the same model, data and options give the same bytes, for any --threads (--batch
// changes which sequences share a forward pass, and so float rounding: keep it fixed).
#include "evaluate.h"
#include "metrics.h"
#include "rec.h"
#include "tok_template.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cls_opts {
    struct eval_common c;
    const char *choices, *prompt, *completion, *field, *predictions;
    int max_len, bins, iters;
    bool keep_tail;
};

struct cls_example {
    char *id;
    int gold;
    struct tok_ids prompt;
    struct tok_ids *comp; // [k]
};

static void
cls_usage(FILE *f)
{
    fputs("usage: evaluate classify --model DIR|FILE.gguf [--adapter DIR] [--tokenizer FILE]\n"
          "         [--choices A,B,...] [--prompt T] [--completion T] [--field NAME]\n"
          "         [--max-len N] [--keep head|tail] [--bins N] [--bootstrap-iters N]\n"
          "         [--seed N] [--threads N] [-o RESULTS.jsonl] [--predictions FILE]\n"
          "         [--db DB [--run-name NAME] [--pipeline NAME]] [FILE...]\n"
          "Defaults: --prompt '{text}\\nLabel:' --completion ' {label}' --field label,\n"
          "choices = every label seen (sorted), --bins 10, --bootstrap-iters 1000, --seed 1234.\n",
          f);
}

enum {
    OPT_CHOICES = EOPT_CMD,
    OPT_PROMPT,
    OPT_COMPLETION,
    OPT_FIELD,
    OPT_MAX_LEN,
    OPT_KEEP,
    OPT_BINS,
    OPT_ITERS,
    OPT_PREDICTIONS,
};

static void
cls_parse(struct cls_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    eval_common_init(&o->c);
    o->prompt = "{text}\\nLabel:";
    o->completion = " {label}";
    o->field = "label";
    o->bins = 10;
    o->iters = 1000;
    static const struct option longopts[] = {
        EVAL_LONGOPTS,
        {"choices", required_argument, 0, OPT_CHOICES},
        {"prompt", required_argument, 0, OPT_PROMPT},
        {"completion", required_argument, 0, OPT_COMPLETION},
        {"field", required_argument, 0, OPT_FIELD},
        {"max-len", required_argument, 0, OPT_MAX_LEN},
        {"keep", required_argument, 0, OPT_KEEP},
        {"bins", required_argument, 0, OPT_BINS},
        {"bootstrap-iters", required_argument, 0, OPT_ITERS},
        {"predictions", required_argument, 0, OPT_PREDICTIONS},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_PREDICTIONS:
            o->predictions = optarg;
            break;
        case OPT_CHOICES:
            o->choices = optarg;
            break;
        case OPT_PROMPT:
            o->prompt = optarg;
            break;
        case OPT_COMPLETION:
            o->completion = optarg;
            break;
        case OPT_FIELD:
            o->field = optarg;
            break;
        case OPT_MAX_LEN:
            o->max_len = (int)cli_parse_int("--max-len", optarg, 2, 1 << 20);
            break;
        case OPT_KEEP:
            if (strcmp(optarg, "head") && strcmp(optarg, "tail"))
                die_usage("--keep: expected head or tail, got '%s'", optarg);
            o->keep_tail = !strcmp(optarg, "tail");
            break;
        case OPT_BINS:
            o->bins = (int)cli_parse_int("--bins", optarg, 1, 1000);
            break;
        case OPT_ITERS:
            o->iters = (int)cli_parse_int("--bootstrap-iters", optarg, 0, 10000000);
            break;
        default:
            if (!eval_common_opt(&o->c, opt, optarg, cls_usage))
                die_usage("unexpected option");
        }
    }
}

// Labels: a growable list of strings with lookup.
struct labels {
    char **v;
    int n;
};

static int
labels_find(const struct labels *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s))
            return i;
    return -1;
}

static int
labels_add(struct labels *l, const char *s)
{
    int i = labels_find(l, s);
    if (i >= 0)
        return i;
    l->v = xrealloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
    l->v[l->n] = xstrdup(s);
    return l->n++;
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Characters (UTF-8 code points) of s: lm-eval's acc_norm divides by len(choice).
static size_t
utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

// The gold label of a record as text: a string, or the JSON text of a number or boolean.
static int
record_label(const struct json_obj *o, const char *field, struct buf *out, struct kerr *err)
{
    struct json_val v;
    if (!json_obj_path(o, field, &v))
        return kerr_set(err, "record has no '%s' field (the gold label)", field);
    if (v.type == JSON_STRING)
        json_str(&v, out);
    else if (v.type == JSON_NUMBER || v.type == JSON_TRUE || v.type == JSON_FALSE)
        buf_append(out, v.raw, v.raw_len);
    else
        return kerr_set(err, "field '%s' is not a string, number or boolean", field);
    return 0;
}

// Per-example data the bootstrap statistics read.
struct cls_data {
    int k, n_bins;
    int *gold, *pred, *correct;
    double *conf;
    uint64_t *conf_mat;
};

static double
stat_macro_f1(void *ctx, const size_t *idx, size_t n)
{
    struct cls_data *d = ctx;
    double f1;
    metrics_confusion(d->k, d->gold, d->pred, idx, n, d->conf_mat);
    metrics_from_confusion(d->k, d->conf_mat, NULL, NULL, &f1, NULL);
    return f1;
}

static double
stat_mcc(void *ctx, const size_t *idx, size_t n)
{
    struct cls_data *d = ctx;
    double mcc;
    metrics_confusion(d->k, d->gold, d->pred, idx, n, d->conf_mat);
    metrics_from_confusion(d->k, d->conf_mat, NULL, NULL, NULL, &mcc);
    return mcc;
}

static double
stat_ece(void *ctx, const size_t *idx, size_t n)
{
    struct cls_data *d = ctx;
    return metrics_ece(d->conf, d->correct, idx, n, d->n_bins, NULL);
}

// A {choice: value} object of one record's k values.
static void
jw_choice_obj(struct json_writer *w, const struct labels *choices, const double *v)
{
    jw_obj_begin(w);
    for (int c = 0; c < choices->n; c++) {
        jw_key(w, choices->v[c]);
        jw_double(w, v[c]);
    }
    jw_obj_end(w);
}

// --predictions: the input record with prediction, prediction_norm, logprobs and probs set
// (json_obj_rewrite: every other field, an unknown one or shard's tag, passes through).
static void
write_prediction(struct rec_writer *pw, struct json_obj *obj, const char *rec,
                 const struct labels *choices, int best, int best_n, const double *lp,
                 const double *prob, struct buf *vals, struct buf *line)
{
    if (json_obj_parse(obj, rec, strlen(rec), NULL) < 0)
        die("internal: a record does not parse again");
    size_t at[4];
    struct json_writer w;
    buf_reset(vals);
    at[0] = vals->len;
    json_writer_init(&w, vals);
    jw_str(&w, choices->v[best]);
    at[1] = vals->len;
    json_writer_init(&w, vals);
    jw_str(&w, choices->v[best_n]);
    at[2] = vals->len;
    json_writer_init(&w, vals);
    jw_choice_obj(&w, choices, lp);
    at[3] = vals->len;
    json_writer_init(&w, vals);
    jw_choice_obj(&w, choices, prob);
    const char *keys[] = {"prediction", "prediction_norm", "logprobs", "probs"};
    struct json_edit ed[4];
    for (int i = 0; i < 4; i++)
        ed[i] =
            (struct json_edit){keys[i], vals->p + at[i], (i < 3 ? at[i + 1] : vals->len) - at[i]};
    buf_reset(line);
    json_obj_rewrite(obj, ed, 4, line);
    struct kerr err;
    if (rec_writer_write(pw, line->p, line->len, &err) < 0)
        die_kerr(&err);
}

int
cmd_classify(int argc, char **argv)
{
    struct cls_opts o;
    cls_parse(&o, argc, argv);
    char **files = eval_inputs(argc, argv);
    struct kerr err;
    struct tok_tpl *tp = tok_tpl_new(o.prompt, &err), *tc = NULL;
    if (!tp || !(tc = tok_tpl_new(o.completion, &err)))
        die_usage("%s", err.msg);
    if (!tok_tpl_uses(tc, o.field))
        die_usage("--completion '%s' does not use {%s}: every choice would read the same",
                  o.completion, o.field);
    struct labels choices = {0};
    if (o.choices) {
        char *list = xstrdup(o.choices), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (labels_find(&choices, t) >= 0)
                die_usage("--choices: '%s' given twice", t);
            else
                labels_add(&choices, t);
        free(list);
        if (choices.n < 2)
            die_usage("--choices needs at least two labels");
    }

    struct eval_model em;
    eval_common_model(&o.c, &em);
    struct tok_enc *enc = tok_enc_new(em.tok);

    // Read every record: id, gold label text and the encoded prompt; completions come once
    // the choices are known. Records keep the parsed object's text for the completion.
    struct cls_example *ex = NULL;
    char **gold_text = NULL, **rec_text = NULL;
    size_t n = 0, cap = 0;
    struct json_obj obj;
    json_obj_init(&obj);
    struct buf text = {0}, lab = {0};
    for (char **f = files; *f; f++) {
        struct rec_reader *r = rec_reader_open(*f, &err);
        if (!r)
            die_kerr(&err);
        struct rec_line line;
        int rc;
        while ((rc = rec_reader_next_obj(r, &line, &obj, &err)) == 1) {
            const char *name = rec_reader_name(r);
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                ex = xrealloc(ex, cap * sizeof *ex);
                gold_text = xrealloc(gold_text, cap * sizeof *gold_text);
                rec_text = xrealloc(rec_text, cap * sizeof *rec_text);
            }
            struct cls_example *e = &ex[n];
            memset(e, 0, sizeof *e);
            buf_reset(&lab);
            buf_reset(&text);
            if (record_label(&obj, o.field, &lab, &err) < 0 ||
                tok_tpl_expand(tp, &obj, NULL, NULL, &text, &err) < 0)
                die("%s:%llu: %s", name, (unsigned long long)line.lineno, err.msg);
            struct json_val idv;
            if (json_obj_path(&obj, "id", &idv) && idv.type == JSON_STRING) {
                struct buf b = {0};
                json_str(&idv, &b);
                e->id = b.p ? buf_detach(&b) : xstrdup("");
            } else {
                struct buf b = {0};
                buf_printf(&b, "%s:%llu", name, (unsigned long long)line.lineno);
                e->id = buf_detach(&b);
            }
            gold_text[n] = xstrndup(lab.p ? lab.p : "", lab.len);
            if (o.choices && labels_find(&choices, gold_text[n]) < 0)
                die("%s:%llu: label '%s' is not one of --choices %s", name,
                    (unsigned long long)line.lineno, gold_text[n], o.choices);
            if (tok_encode(enc, text.p ? text.p : "", text.len, 0, &e->prompt, &err) < 0)
                die("%s:%llu: %s", name, (unsigned long long)line.lineno, err.msg);
            rec_text[n] = xstrndup(line.p, line.n);
            n++;
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    if (n == 0)
        die("no records to evaluate");
    if (!o.choices) {
        for (size_t i = 0; i < n; i++)
            labels_add(&choices, gold_text[i]);
        qsort(choices.v, (size_t)choices.n, sizeof *choices.v, str_cmp);
        if (choices.n < 2)
            die("only one label seen ('%s'): give --choices", choices.v[0]);
    }
    int k = choices.n;

    // Completions and sequences: n*k of them, prompt shortened to fit.
    int limit = em.m.max_t;
    if (o.max_len && o.max_len < limit)
        limit = o.max_len;
    struct score_seq *seqs = xcalloc(n * (size_t)k, sizeof *seqs);
    int32_t **seq_tok = xcalloc(n * (size_t)k, sizeof *seq_tok);
    size_t *comp_chars = xcalloc(n * (size_t)k, sizeof *comp_chars);
    int t_max = 1;
    uint64_t truncated = 0;
    for (size_t i = 0; i < n; i++) {
        struct cls_example *e = &ex[i];
        e->gold = labels_find(&choices, gold_text[i]);
        e->comp = xcalloc((size_t)k, sizeof *e->comp);
        if (json_obj_parse(&obj, rec_text[i], strlen(rec_text[i]), NULL) < 0)
            die("internal: record %zu does not parse again", i);
        if (eval_ids_check(&em, e->prompt.v, e->prompt.n, &err) < 0)
            die("record %s: %s: the model and tokenizer do not match", e->id, err.msg);
        bool cut = false;
        for (int c = 0; c < k; c++) {
            buf_reset(&text);
            if (tok_tpl_expand(tc, &obj, o.field, choices.v[c], &text, &err) < 0)
                die("record %s: --completion: %s", e->id, err.msg);
            comp_chars[i * (size_t)k + (size_t)c] = utf8_chars(text.p ? text.p : "", text.len);
            if (tok_encode(enc, text.p ? text.p : "", text.len, 0, &e->comp[c], &err) < 0)
                die("choice '%s': %s", choices.v[c], err.msg);
            if (e->comp[c].n == 0)
                die("choice '%s' cannot be tokenized: its completion '%s' gives no tokens",
                    choices.v[c], text.p ? text.p : "");
            if (eval_ids_check(&em, e->comp[c].v, e->comp[c].n, &err) < 0)
                die("choice '%s': %s: the model and tokenizer do not match", choices.v[c], err.msg);
            // tokenize's --max-len counts the end-of-sequence token it appends
            int room = limit - (int)e->comp[c].n - (o.max_len && em.eos >= 0 ? 1 : 0);
            if (room < 1)
                die("choice '%s': its completion (%zu tokens) leaves no room for the prompt "
                    "within %d tokens",
                    choices.v[c], e->comp[c].n, limit);
            size_t np = e->prompt.n, skip = 0;
            if (np > (size_t)room) {
                skip = o.keep_tail ? np - (size_t)room : 0;
                np = (size_t)room;
                cut = true;
            }
            if (np == 0)
                die("record %s: the prompt gives no tokens", e->id);
            size_t len = np + e->comp[c].n;
            int32_t *s = xmalloc(len * sizeof *s);
            memcpy(s, e->prompt.v + skip, np * sizeof *s);
            memcpy(s + np, e->comp[c].v, e->comp[c].n * sizeof *s);
            size_t q = i * (size_t)k + (size_t)c;
            seq_tok[q] = s;
            seqs[q] = (struct score_seq){.tokens = s, .len = (int)len, .from = (int)np};
            if ((int)len > t_max)
                t_max = (int)len;
        }
        truncated += cut;
    }

    struct kpool *pool = kpool_new(o.c.threads);
    struct group_scorer sc;
    if (group_scorer_init(&sc, &em, pool, t_max, &err) < 0)
        die_kerr(&err);
    double t0 = now_seconds();
    group_scorer_run(&sc, seqs, n, k);
    double secs = now_seconds() - t0;
    info("%zu records x %d choices: %llu positions in %.2f s (%.0f tokens/s)%s", n, k,
         (unsigned long long)sc.tokens_run, secs, (double)sc.tokens_run / (secs > 0 ? secs : 1),
         truncated ? "; prompts shortened to fit" : "");

    // Predictions and per-example rows.
    struct cls_data d = {.k = k, .n_bins = o.bins};
    d.gold = xmalloc(n * sizeof *d.gold);
    d.pred = xmalloc(n * sizeof *d.pred);
    d.correct = xmalloc(n * sizeof *d.correct);
    d.conf = xmalloc(n * sizeof *d.conf);
    d.conf_mat = xmalloc((size_t)k * (size_t)k * sizeof *d.conf_mat);
    double *acc_v = xmalloc(n * sizeof *acc_v), *accn_v = xmalloc(n * sizeof *accn_v);
    double *prob = xmalloc((size_t)k * sizeof *prob), *lps = xmalloc((size_t)k * sizeof *lps);
    struct buf out = {0}, pvals = {0}, pline = {0};
    struct rec_wopts wo = {.level = o.c.cli.level, .plain = o.c.cli.plain, .force = o.c.cli.force};
    struct rec_writer *pw = NULL;
    if (o.predictions && !(pw = rec_writer_open(o.predictions, &wo, &err)))
        die_kerr(&err);
    for (size_t i = 0; i < n; i++) {
        const struct score_seq *s = seqs + i * (size_t)k;
        int best = 0, best_n = 0;
        double mx = s[0].logprob;
        for (int c = 1; c < k; c++) {
            if (s[c].logprob > s[best].logprob)
                best = c;
            double a = s[c].logprob / (double)comp_chars[i * (size_t)k + (size_t)c];
            double b = s[best_n].logprob / (double)comp_chars[i * (size_t)k + (size_t)best_n];
            if (a > b)
                best_n = c;
            if (s[c].logprob > mx)
                mx = s[c].logprob;
        }
        double z = 0;
        for (int c = 0; c < k; c++)
            z += prob[c] = exp(s[c].logprob - mx);
        for (int c = 0; c < k; c++)
            prob[c] /= z;
        d.gold[i] = ex[i].gold;
        d.pred[i] = best;
        d.correct[i] = best == ex[i].gold;
        d.conf[i] = prob[best];
        acc_v[i] = d.correct[i];
        accn_v[i] = best_n == ex[i].gold;
        if (pw) {
            for (int c = 0; c < k; c++)
                lps[c] = s[c].logprob;
            write_prediction(pw, &obj, rec_text[i], &choices, best, best_n, lps, prob, &pvals,
                             &pline);
        }

        struct json_writer w;
        json_writer_init(&w, &out);
        jw_obj_begin(&w);
        jw_key(&w, "id");
        jw_str(&w, ex[i].id);
        jw_key(&w, "gold");
        jw_str(&w, choices.v[ex[i].gold]);
        jw_key(&w, "prediction");
        jw_str(&w, choices.v[best]);
        jw_key(&w, "prediction_norm");
        jw_str(&w, choices.v[best_n]);
        jw_key(&w, "correct");
        jw_bool(&w, d.correct[i]);
        jw_key(&w, "correct_norm");
        jw_bool(&w, accn_v[i] > 0);
        for (int c = 0; c < k; c++)
            lps[c] = s[c].logprob;
        jw_key(&w, "logprobs");
        jw_choice_obj(&w, &choices, lps);
        jw_key(&w, "probs");
        jw_choice_obj(&w, &choices, prob);
        jw_obj_end(&w);
        buf_putc(&out, '\n');
    }

    // Summary.
    struct metrics_class *cls = xmalloc((size_t)k * sizeof *cls);
    double acc, macro_f1, mcc;
    metrics_confusion(k, d.gold, d.pred, NULL, n, d.conf_mat);
    metrics_from_confusion(k, d.conf_mat, cls, &acc, &macro_f1, &mcc);
    uint64_t *conf_mat = xmalloc((size_t)k * (size_t)k * sizeof *conf_mat);
    memcpy(conf_mat, d.conf_mat, (size_t)k * (size_t)k * sizeof *conf_mat);
    double acc_norm = 0;
    for (size_t i = 0; i < n; i++)
        acc_norm += accn_v[i];
    acc_norm /= (double)n;
    struct metrics_bin *bins = xmalloc((size_t)o.bins * sizeof *bins);
    double ece = metrics_ece(d.conf, d.correct, NULL, n, o.bins, bins);
    double se_f1 = metrics_bootstrap(n, o.iters, o.c.cli.seed, stat_macro_f1, &d);
    double se_mcc = metrics_bootstrap(n, o.iters, o.c.cli.seed, stat_mcc, &d);
    double se_ece = metrics_bootstrap(n, o.iters, o.c.cli.seed, stat_ece, &d);
    // majority-class baseline: always predict the most frequent gold label (first on ties)
    int maj = 0;
    for (int c = 1; c < k; c++)
        if (cls[c].support > cls[maj].support)
            maj = c;
    for (size_t i = 0; i < n; i++)
        d.pred[i] = maj;
    double maj_acc, maj_f1, maj_mcc;
    metrics_confusion(k, d.gold, d.pred, NULL, n, d.conf_mat);
    metrics_from_confusion(k, d.conf_mat, NULL, &maj_acc, &maj_f1, &maj_mcc);

    struct json_writer w;
    json_writer_init(&w, &out);
    jw_obj_begin(&w);
    jw_key(&w, "summary");
    jw_obj_begin(&w);
    jw_key(&w, "task");
    jw_str(&w, "classify");
    jw_key(&w, "n");
    jw_uint(&w, n);
    jw_key(&w, "choices");
    jw_arr_begin(&w);
    for (int c = 0; c < k; c++)
        jw_str(&w, choices.v[c]);
    jw_arr_end(&w);
    const struct {
        const char *key;
        double v;
    } mets[] = {{"acc", acc},
                {"acc_norm", acc_norm},
                {"macro_f1", macro_f1},
                {"mcc", mcc},
                {"ece", ece},
                {"majority_acc", maj_acc},
                {"majority_macro_f1", maj_f1},
                {"majority_mcc", maj_mcc}};
    for (size_t i = 0; i < KILN_ARRAY_LEN(mets); i++) {
        jw_key(&w, mets[i].key);
        jw_double(&w, mets[i].v);
    }
    jw_key(&w, "majority_class");
    jw_str(&w, choices.v[maj]);
    jw_key(&w, "truncated");
    jw_uint(&w, truncated);
    jw_key(&w, "stderr");
    jw_obj_begin(&w);
    jw_key(&w, "acc");
    jw_double(&w, metrics_mean_stderr(acc_v, n));
    jw_key(&w, "acc_norm");
    jw_double(&w, metrics_mean_stderr(accn_v, n));
    jw_key(&w, "macro_f1");
    jw_double(&w, se_f1);
    jw_key(&w, "mcc");
    jw_double(&w, se_mcc);
    jw_key(&w, "ece");
    jw_double(&w, se_ece);
    jw_obj_end(&w);
    jw_key(&w, "per_class");
    jw_obj_begin(&w);
    for (int c = 0; c < k; c++) {
        jw_key(&w, choices.v[c]);
        jw_obj_begin(&w);
        jw_key(&w, "precision");
        jw_double(&w, cls[c].precision);
        jw_key(&w, "recall");
        jw_double(&w, cls[c].recall);
        jw_key(&w, "f1");
        jw_double(&w, cls[c].f1);
        jw_key(&w, "support");
        jw_uint(&w, cls[c].support);
        jw_obj_end(&w);
    }
    jw_obj_end(&w);
    jw_key(&w, "confusion");
    jw_obj_begin(&w);
    jw_key(&w, "labels");
    jw_arr_begin(&w);
    for (int c = 0; c < k; c++)
        jw_str(&w, choices.v[c]);
    jw_arr_end(&w);
    jw_key(&w, "matrix"); // rows gold, columns predicted
    jw_arr_begin(&w);
    for (int g = 0; g < k; g++) {
        jw_arr_begin(&w);
        for (int p = 0; p < k; p++)
            jw_uint(&w, conf_mat[(size_t)g * (size_t)k + (size_t)p]);
        jw_arr_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    jw_key(&w, "reliability");
    jw_arr_begin(&w);
    for (int b = 0; b < o.bins; b++) {
        jw_obj_begin(&w);
        jw_key(&w, "count");
        jw_uint(&w, bins[b].count);
        jw_key(&w, "conf_lo");
        jw_double(&w, bins[b].conf_lo);
        jw_key(&w, "conf_hi");
        jw_double(&w, bins[b].conf_hi);
        jw_key(&w, "confidence");
        jw_double(&w, bins[b].confidence);
        jw_key(&w, "accuracy");
        jw_double(&w, bins[b].accuracy);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "bins");
    jw_int(&w, o.bins);
    jw_key(&w, "bootstrap_iters");
    jw_int(&w, o.iters);
    jw_key(&w, "seed");
    jw_uint(&w, o.c.cli.seed);
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(&out, '\n');

    info("acc %.4f  acc_norm %.4f  macro-F1 %.4f (±%.4f)  MCC %.4f  ECE %.4f  majority %.4f", acc,
         acc_norm, macro_f1, se_f1, mcc, ece, maj_acc);

    const char *params[] = {"task",       "classify", "prompt", o.prompt, "completion",
                            o.completion, "field",    o.field,  NULL};
    // the predictions stay in FILE.tmp until the results (and the database) are done: a
    // failure there removes them
    eval_results_finish(&o.c, em.desc, files, params, &out);
    if (pw && rec_writer_close(pw, &err) < 0)
        die_kerr(&err);

    struct stats st;
    stats_init(&st, "evaluate");
    st.records_in = n;
    st.records_out = n;
    stats_u64(&st, "choices", (uint64_t)k);
    stats_u64(&st, "positions", sc.tokens_run);
    stats_u64(&st, "truncated", truncated);
    stats_f64(&st, "tokens_per_s", (double)sc.tokens_run / (secs > 0 ? secs : 1));
    if (stats_write(&st, o.c.cli.stats, &err) < 0)
        die_kerr(&err);
    stats_free(&st);

    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < k; c++) {
            tok_ids_free(&ex[i].comp[c]);
            free(seq_tok[i * (size_t)k + (size_t)c]);
        }
        free(ex[i].comp);
        tok_ids_free(&ex[i].prompt);
        free(ex[i].id);
        free(gold_text[i]);
        free(rec_text[i]);
    }
    for (int c = 0; c < k; c++)
        free(choices.v[c]);
    free(choices.v);
    free(ex), free(gold_text), free(rec_text), free(seqs), free(seq_tok), free(comp_chars);
    free(d.gold), free(d.pred), free(d.correct), free(d.conf), free(d.conf_mat);
    free(acc_v), free(accn_v), free(prob), free(lps), free(cls), free(conf_mat), free(bins);
    buf_free(&out), buf_free(&text), buf_free(&lab), buf_free(&pvals), buf_free(&pline);
    json_obj_free(&obj);
    group_scorer_free(&sc);
    kpool_del(pool);
    tok_enc_del(enc);
    tok_tpl_del(tp);
    tok_tpl_del(tc);
    eval_model_free(&em);
    return 0;
}

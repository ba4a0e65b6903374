// SPDX-License-Identifier: MIT
// kiln-hpo: the driver of the early-stage hyperparameter search study (pipelines/study-hpo.mk;
// Oliver & Wang 2024 scored candidates at 20% of their training budget). Candidates are points
// (learning rate on a log scale, batch size, epochs); each is trained once to completion with a
// checkpoint saved at its early budget, scored on the validation split at the checkpoint
// ("early") and at the end ("final"). The subcommands are the pipeline's steps:
//
//   propose  the next candidate from the history of scored ones: random search, or Bayesian
//            optimization (a Gaussian process on [0,1]^3 — common/gp — whose hyperparameters
//            maximize the log marginal likelihood, and the pool point of highest expected
//            improvement). Both methods share the first --init candidates (a random design), so
//            a comparison starts from the same points; everything is a function of --seed, the
//            candidate's index and the history, never of time.
//   args     the train options of a candidate (--lr --batch --steps --warmup --save-every
//            --keep)
//   field    one field of a candidate (e.g. early_steps, for the checkpoint's path)
//   record   a candidate with its early and final scores from two `evaluate classify` outputs
//   summary  per history: top-k overlap of early and final scores, Spearman's rho, Kendall's
//            tau-b, and the compute saved by stopping all but the early top k
//   import   the histories into the SQLite store for `evaluate report`: a run of kind "hpo"
//            per candidate, its hyperparameters as params, its scores as metric points
//
// A history is JSON Lines of records (the output of `record`, concatenated): "lr", "batch",
// "epochs" and the scores. Compute is counted in training examples (steps x batch) and in
// tokens (examples x the training set's mean tokens per example, from its tokenize --stats).
#include "../common/cli.h"
#include "../common/gp.h"
#include "../common/json.h"
#include "../common/rank.h"
#include "../common/store.h"
#include "../common/util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NDIM = 3, MAX_BATCHES = 16 };

// ---- the search space ----------------------------------------------------------------------

struct space {
    double lr_lo, lr_hi;        // learning rate range (sampled log-uniformly)
    int batches[MAX_BATCHES];   // batch sizes (sampled uniformly)
    int nb;
    double ep_lo, ep_hi;        // epochs (uniform, 2 significant digits)
};

struct cand {
    double lr, epochs;
    int batch;
};

// Position of a candidate in [0,1]^3, the GP's input.
static void
cand_encode(const struct space *sp, const struct cand *c, double *x)
{
    x[0] = (log10(c->lr) - log10(sp->lr_lo)) / (log10(sp->lr_hi) - log10(sp->lr_lo));
    int bi = 0;
    while (bi < sp->nb - 1 && sp->batches[bi] != c->batch)
        bi++;
    x[1] = sp->nb > 1 ? (double)bi / (sp->nb - 1) : 0.5;
    x[2] = sp->ep_hi > sp->ep_lo ? (c->epochs - sp->ep_lo) / (sp->ep_hi - sp->ep_lo) : 0.5;
}

// splitmix64: a stream per (seed, index, purpose).
static uint64_t
mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double
uniform(uint64_t *s)
{
    return (double)(mix(s) >> 11) * 0x1.0p-53;
}

// A random candidate; values are rounded (learning rate to 3 significant digits, epochs to 2)
// so that they print and parse back exactly and name the run readably.
static struct cand
cand_sample(const struct space *sp, uint64_t *rng)
{
    struct cand c;
    double e = log10(sp->lr_lo) + uniform(rng) * (log10(sp->lr_hi) - log10(sp->lr_lo));
    char t[32];
    snprintf(t, sizeof t, "%.3g", pow(10, e));
    c.lr = strtod(t, NULL);
    c.lr = fmin(fmax(c.lr, sp->lr_lo), sp->lr_hi);
    c.batch = sp->batches[(int)(uniform(rng) * sp->nb) % sp->nb];
    snprintf(t, sizeof t, "%.2g", sp->ep_lo + uniform(rng) * (sp->ep_hi - sp->ep_lo));
    c.epochs = fmin(fmax(strtod(t, NULL), sp->ep_lo), sp->ep_hi);
    return c;
}

// ---- files ---------------------------------------------------------------------------------

// Writes b to path atomically (stdout when path is NULL or "-").
static void
write_out(const char *path, const struct buf *b)
{
    if (!path || !strcmp(path, "-")) {
        fwrite(b->p ? b->p : "", 1, b->len, stdout);
        cli_finish_stdout();
        return;
    }
    struct buf tmp = {0};
    buf_printf(&tmp, "%s.tmp", path);
    int slot = cli_tmp_register(tmp.p);
    FILE *f = fopen(tmp.p, "w");
    if (!f)
        die("%s:", tmp.p);
    if (fwrite(b->p ? b->p : "", 1, b->len, f) != b->len || fclose(f) != 0)
        die("%s: write failed:", tmp.p);
    if (rename(tmp.p, path) < 0)
        die("%s:", path);
    cli_tmp_forget(slot);
    buf_free(&tmp);
}

// A number member of a parsed line; dies "file:line: ..." when absent or not a number.
static double
num_field(const struct json_obj *o, const char *key, const char *file, size_t line)
{
    const struct json_field *f = json_obj_get(o, key);
    double v;
    if (!f || f->val.type != JSON_NUMBER || json_double(&f->val, &v) < 0)
        die("%s:%zu: \"%s\" %s", file, line, key, f ? "is not a number" : "is missing");
    return v;
}

// One scored candidate of a history.
struct trial {
    struct cand c;
    int64_t index, steps, early_steps;
    double early, final, early_acc, final_acc, tokens_per_example;
    char method[16];
};

struct history {
    struct trial *t;
    size_t n;
};

// Reads a history (JSON Lines). need_scores: every line must carry "early" and "final";
// otherwise only the candidate's fields are required. Dies with file:line[:col] on bad input.
static void
history_read(const char *path, bool need_scores, struct history *h)
{
    struct buf text = {0};
    struct kerr err = {0};
    if (read_file(path, 64u << 20, &text, &err) < 0)
        die_kerr(&err);
    struct json_obj o;
    json_obj_init(&o);
    size_t line = 0, cap = 0;
    h->t = NULL;
    h->n = 0;
    for (char *p = text.p ? text.p : ""; *p;) {
        char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        line++;
        size_t s = 0;
        while (s < len && (p[s] == ' ' || p[s] == '\t' || p[s] == '\r'))
            s++;
        if (s < len) {
            struct json_error je;
            if (json_obj_parse(&o, p, len, &je) < 0)
                die("%s:%zu:%zu: %s", path, line, je.offset + 1, je.msg);
            if (h->n == cap)
                h->t = xrealloc(h->t, (cap = cap ? 2 * cap : 16) * sizeof *h->t);
            struct trial *t = &h->t[h->n++];
            memset(t, 0, sizeof *t);
            t->c.lr = num_field(&o, "lr", path, line);
            double b = num_field(&o, "batch", path, line);
            t->c.epochs = num_field(&o, "epochs", path, line);
            if (!(t->c.lr > 0) || !(b >= 1 && b <= 1 << 20 && b == floor(b)) ||
                !(t->c.epochs > 0))
                die("%s:%zu: lr and epochs must be positive, batch a positive integer", path,
                    line);
            t->c.batch = (int)b;
            t->early = t->final = t->early_acc = t->final_acc = NAN;
            const char *opt[] = {"index", "steps", "early_steps", "early", "final", "early_acc",
                                 "final_acc", "tokens_per_example"};
            double v[8];
            for (int k = 0; k < 8; k++)
                v[k] = (need_scores && k >= 3 && k <= 4) || json_obj_get(&o, opt[k])
                           ? num_field(&o, opt[k], path, line)
                           : NAN;
            t->index = isnan(v[0]) ? (int64_t)h->n : (int64_t)v[0];
            t->steps = isnan(v[1]) ? 0 : (int64_t)v[1];
            t->early_steps = isnan(v[2]) ? 0 : (int64_t)v[2];
            t->early = v[3], t->final = v[4], t->early_acc = v[5], t->final_acc = v[6];
            t->tokens_per_example = v[7];
            const struct json_field *m = json_obj_get(&o, "method");
            struct buf mb = {0};
            if (m && m->val.type == JSON_STRING)
                json_str(&m->val, &mb);
            snprintf(t->method, sizeof t->method, "%s", mb.p ? mb.p : "");
            buf_free(&mb);
        }
        p += len + (e != NULL);
    }
    json_obj_free(&o);
    buf_free(&text);
}

// Reads records_out and tokens of a tokenize --stats file.
static void
train_stats_read(const char *path, int64_t *n, double *tokens)
{
    struct buf text = {0};
    struct kerr err = {0};
    if (read_file(path, 1u << 20, &text, &err) < 0)
        die_kerr(&err);
    struct json_obj o;
    json_obj_init(&o);
    struct json_error je;
    if (json_obj_parse(&o, text.p, text.len, &je) < 0)
        die("%s:1:%zu: %s", path, je.offset + 1, je.msg);
    double r = num_field(&o, "records_out", path, 1);
    *tokens = num_field(&o, "tokens", path, 1);
    if (!(r >= 1))
        die("%s: no training records", path);
    *n = (int64_t)r;
    json_obj_free(&o);
    buf_free(&text);
}

// ---- propose -------------------------------------------------------------------------------

static void
usage(FILE *f)
{
    fputs("usage: kiln-hpo propose --method bo|random --history FILE (--train-size N |\n"
          "                        --train-stats FILE) [--seed N] [--init K] [--pool M]\n"
          "                        [--score early|final] [--kernel matern|rbf]\n"
          "                        [--early-frac X] [--lr-range LO,HI] [--batches B,B,...]\n"
          "                        [--epochs-range LO,HI] [-o FILE]\n"
          "       kiln-hpo args CANDIDATE\n"
          "       kiln-hpo field CANDIDATE KEY\n"
          "       kiln-hpo record --candidate FILE --early EVAL --final EVAL\n"
          "                       [--metric macro_f1|acc] [-o FILE]\n"
          "       kiln-hpo summary [--top K] HISTORY...\n"
          "       kiln-hpo import --db DB [--pipeline NAME] HISTORY...\n"
          "Early-stage hyperparameter search (pipelines/study-hpo.mk): proposes candidates by\n"
          "Bayesian optimization or random search, records their early and final validation\n"
          "scores, and measures how well the early scores rank the final ones.\n",
          f);
}

enum {
    OPT_METHOD = CLI_OPT_FIRST_STAGE,
    OPT_HISTORY,
    OPT_TRAIN_SIZE,
    OPT_TRAIN_STATS,
    OPT_INIT,
    OPT_POOL,
    OPT_SCORE,
    OPT_KERNEL,
    OPT_EARLY_FRAC,
    OPT_LR_RANGE,
    OPT_BATCHES,
    OPT_EPOCHS_RANGE,
    OPT_CANDIDATE,
    OPT_EARLY,
    OPT_FINAL,
    OPT_METRIC,
    OPT_TOP,
    OPT_DB,
    OPT_PIPELINE,
};

static const struct option longopts[] = {
    CLI_COMMON_LONGOPTS,
    {"method", required_argument, 0, OPT_METHOD},
    {"history", required_argument, 0, OPT_HISTORY},
    {"train-size", required_argument, 0, OPT_TRAIN_SIZE},
    {"train-stats", required_argument, 0, OPT_TRAIN_STATS},
    {"init", required_argument, 0, OPT_INIT},
    {"pool", required_argument, 0, OPT_POOL},
    {"score", required_argument, 0, OPT_SCORE},
    {"kernel", required_argument, 0, OPT_KERNEL},
    {"early-frac", required_argument, 0, OPT_EARLY_FRAC},
    {"lr-range", required_argument, 0, OPT_LR_RANGE},
    {"batches", required_argument, 0, OPT_BATCHES},
    {"epochs-range", required_argument, 0, OPT_EPOCHS_RANGE},
    {"candidate", required_argument, 0, OPT_CANDIDATE},
    {"early", required_argument, 0, OPT_EARLY},
    {"final", required_argument, 0, OPT_FINAL},
    {"metric", required_argument, 0, OPT_METRIC},
    {"top", required_argument, 0, OPT_TOP},
    {"db", required_argument, 0, OPT_DB},
    {"pipeline", required_argument, 0, OPT_PIPELINE},
    {0, 0, 0, 0},
};

// "LO,HI" with 0 < LO <= HI.
static void
parse_range(const char *opt, const char *arg, double *lo, double *hi)
{
    char *end;
    errno = 0;
    *lo = strtod(arg, &end);
    if (*end != ',' || errno)
        die_usage("%s: expected LO,HI, got '%s'", opt, arg);
    *hi = strtod(end + 1, &end);
    if (*end || errno || !(*lo > 0) || !(*hi >= *lo) || !isfinite(*hi))
        die_usage("%s: expected 0 < LO <= HI, got '%s'", opt, arg);
}

struct opts {
    struct cli_common c;
    const char *method, *history, *train_stats, *score, *candidate, *early, *final, *metric;
    const char *db, *pipeline;
    int64_t train_size, init, pool, top;
    double early_frac;
    enum gp_kernel kernel;
    struct space sp;
};

static void
opts_parse(struct opts *o, int argc, char **argv)
{
    cli_common_init(&o->c);
    *o = (struct opts){.c = o->c, .score = "early", .metric = "macro_f1", .init = 4,
                       .pool = 2048, .top = 5, .early_frac = 0.2, .kernel = GP_MATERN52,
                       .pipeline = "study-hpo",
                       .sp = {.lr_lo = 1e-4, .lr_hi = 1e-2, .batches = {4, 8, 16, 32}, .nb = 4,
                              .ep_lo = 0.5, .ep_hi = 3}};
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&o->c, opt, optarg, usage))
            continue;
        switch (opt) {
        case OPT_METHOD:
            if (strcmp(optarg, "bo") && strcmp(optarg, "random"))
                die_usage("--method: '%s' is not bo or random", optarg);
            o->method = optarg;
            break;
        case OPT_HISTORY: o->history = optarg; break;
        case OPT_TRAIN_SIZE: o->train_size = cli_parse_int("--train-size", optarg, 1, INT64_MAX); break;
        case OPT_TRAIN_STATS: o->train_stats = optarg; break;
        case OPT_INIT: o->init = cli_parse_int("--init", optarg, 1, 1000); break;
        case OPT_POOL: o->pool = cli_parse_int("--pool", optarg, 1, 1 << 20); break;
        case OPT_SCORE:
            if (strcmp(optarg, "early") && strcmp(optarg, "final"))
                die_usage("--score: '%s' is not early or final", optarg);
            o->score = optarg;
            break;
        case OPT_KERNEL:
            if (!strcmp(optarg, "matern"))
                o->kernel = GP_MATERN52;
            else if (!strcmp(optarg, "rbf"))
                o->kernel = GP_RBF;
            else
                die_usage("--kernel: '%s' is not matern or rbf", optarg);
            break;
        case OPT_EARLY_FRAC: o->early_frac = cli_parse_double("--early-frac", optarg, 1e-6, 1); break;
        case OPT_LR_RANGE: parse_range("--lr-range", optarg, &o->sp.lr_lo, &o->sp.lr_hi); break;
        case OPT_EPOCHS_RANGE: parse_range("--epochs-range", optarg, &o->sp.ep_lo, &o->sp.ep_hi); break;
        case OPT_BATCHES: {
            o->sp.nb = 0;
            for (const char *p = optarg; *p;) {
                char *end;
                long b = strtol(p, &end, 10);
                if (end == p || b < 1 || b > 1 << 20 || (*end && *end != ',') ||
                    o->sp.nb == MAX_BATCHES)
                    die_usage("--batches: expected up to %d positive integers, got '%s'",
                              MAX_BATCHES, optarg);
                o->sp.batches[o->sp.nb++] = (int)b;
                p = *end ? end + 1 : end;
            }
            if (!o->sp.nb)
                die_usage("--batches: empty");
            break;
        }
        case OPT_CANDIDATE: o->candidate = optarg; break;
        case OPT_EARLY: o->early = optarg; break;
        case OPT_FINAL: o->final = optarg; break;
        case OPT_METRIC:
            if (strcmp(optarg, "macro_f1") && strcmp(optarg, "acc"))
                die_usage("--metric: '%s' is not macro_f1 or acc", optarg);
            o->metric = optarg;
            break;
        case OPT_TOP: o->top = cli_parse_int("--top", optarg, 1, 1000); break;
        case OPT_DB: o->db = optarg; break;
        case OPT_PIPELINE: o->pipeline = optarg; break;
        default: die_usage("unexpected option");
        }
    }
}

static int
cmd_propose(struct opts *o, int argc, char **argv)
{
    if (!o->method)
        die_usage("propose: --method bo|random is required");
    if (!o->history)
        die_usage("propose: --history FILE is required (an empty file for the first)");
    if (!o->train_size == !o->train_stats)
        die_usage("propose: give one of --train-size N and --train-stats FILE");
    if (optind < argc)
        die_usage("propose: unexpected argument '%s'", argv[optind]);
    int64_t n_train = o->train_size;
    double tokens = NAN;
    if (o->train_stats)
        train_stats_read(o->train_stats, &n_train, &tokens);
    bool bo = !strcmp(o->method, "bo");
    struct history h;
    history_read(o->history, bo, &h);
    int64_t index = (int64_t)h.n + 1;

    // The random design: candidate i of either method is the same function of (seed, i).
    uint64_t rng = o->c.seed * 0x2545f4914f6cdd1dull + (uint64_t)index;
    mix(&rng);
    struct cand c = cand_sample(&o->sp, &rng);
    const char *how = "random";
    double ei = NAN, mean = NAN, sd = NAN;
    struct gp_hyper hyp = {0};
    if (bo && index > o->init) {
        how = "ei";
        size_t n = h.n;
        double *x = xmalloc(sizeof(double) * NDIM * n), *y = xmalloc(sizeof(double) * n);
        double best = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            cand_encode(&o->sp, &h.t[i].c, x + NDIM * i);
            y[i] = !strcmp(o->score, "early") ? h.t[i].early : h.t[i].final;
            best = fmax(best, y[i]);
        }
        struct gp g;
        struct kerr err = {0};
        if (gp_fit_ml(&g, o->kernel, x, y, (int)n, NDIM, &err) < 0)
            die_kerr(&err);
        hyp = g.h;
        uint64_t prng = rng ^ 0xb0b0b0b0b0b0b0b0ull;
        size_t m = (size_t)o->pool;
        struct cand *pool = xmalloc(m * sizeof *pool);
        double *px = xmalloc(sizeof(double) * NDIM * m), *mu = xmalloc(sizeof(double) * m),
               *var = xmalloc(sizeof(double) * m);
        for (size_t j = 0; j < m; j++) {
            pool[j] = cand_sample(&o->sp, &prng);
            cand_encode(&o->sp, &pool[j], px + NDIM * j);
        }
        gp_predict(&g, px, (int)m, mu, var);
        size_t arg = 0;
        ei = -1;
        for (size_t j = 0; j < m; j++) {
            double v = gp_ei(mu[j], sqrt(var[j]), best, 0);
            if (v > ei) {
                ei = v;
                arg = j;
            }
        }
        c = pool[arg];
        mean = mu[arg];
        sd = sqrt(var[arg]);
        gp_free(&g);
        free(pool);
        free(px);
        free(mu);
        free(var);
        free(x);
        free(y);
    }
    int64_t steps = llround(c.epochs * (double)n_train / c.batch);
    if (steps < 5)
        steps = 5;
    int64_t early = llround(o->early_frac * (double)steps);
    if (early < 1)
        early = 1;
    struct buf out = {0};
    struct json_writer w;
    json_writer_init(&w, &out);
    jw_obj_begin(&w);
    jw_key(&w, "method");
    jw_str(&w, o->method);
    jw_key(&w, "index");
    jw_int(&w, index);
    jw_key(&w, "seed");
    jw_uint(&w, o->c.seed);
    jw_key(&w, "lr");
    jw_double(&w, c.lr);
    jw_key(&w, "batch");
    jw_int(&w, c.batch);
    jw_key(&w, "epochs");
    jw_double(&w, c.epochs);
    jw_key(&w, "steps");
    jw_int(&w, steps);
    jw_key(&w, "early_steps");
    jw_int(&w, early);
    jw_key(&w, "train_size");
    jw_int(&w, n_train);
    // Names the training run by what determines it, so the pipeline can point both methods'
    // evaluations of the same candidate at one path (and so at one cached step).
    char key[96];
    snprintf(key, sizeof key, "lr%g-b%d-s%lld-e%lld", c.lr, c.batch, (long long)steps,
             (long long)early);
    jw_key(&w, "run_key");
    jw_str(&w, key);
    if (!isnan(tokens)) {
        jw_key(&w, "tokens_per_example");
        jw_double(&w, tokens / (double)n_train);
    }
    jw_key(&w, "proposed_by");
    jw_str(&w, how);
    if (!isnan(ei)) {
        const char *k[] = {"ei", "gp_mean", "gp_sd", "gp_ls", "gp_sf2", "gp_sn2"};
        double v[] = {ei, mean, sd, hyp.ls, hyp.sf2, hyp.sn2};
        for (int i = 0; i < 6; i++) {
            jw_key(&w, k[i]);
            jw_double(&w, v[i]);
        }
    }
    jw_obj_end(&w);
    buf_putc(&out, '\n');
    write_out(o->c.output, &out);
    buf_free(&out);
    free(h.t);
    return 0;
}

// ---- args, field, record -------------------------------------------------------------------

// The single candidate of FILE.
static struct trial
candidate_read(const char *path)
{
    struct history h;
    history_read(path, false, &h);
    if (h.n != 1)
        die("%s: expected one candidate, found %zu", path, h.n);
    if (h.t[0].steps < 1 || h.t[0].early_steps < 1 || h.t[0].early_steps > h.t[0].steps)
        die("%s:1: needs steps >= early_steps >= 1", path);
    struct trial t = h.t[0];
    free(h.t);
    return t;
}

static int
cmd_args(int argc, char **argv)
{
    if (argc - optind != 1)
        die_usage("args: expected one CANDIDATE file");
    struct trial t = candidate_read(argv[optind]);
    // Checkpoints every early_steps: the first is the early model; keep them all.
    // Warm-up over the first tenth of the steps, as in the default pipeline.
    int64_t keep = t.steps / t.early_steps + 1, warmup = t.steps / 10;
    printf("--lr %.17g --batch %d --steps %lld --warmup %lld --save-every %lld --keep %lld\n",
           t.c.lr, t.c.batch, (long long)t.steps, (long long)warmup, (long long)t.early_steps,
           (long long)keep);
    cli_finish_stdout();
    return 0;
}

static int
cmd_field(int argc, char **argv)
{
    if (argc - optind != 2)
        die_usage("field: expected CANDIDATE KEY");
    struct buf text = {0};
    struct kerr err = {0};
    if (read_file(argv[optind], 1u << 20, &text, &err) < 0)
        die_kerr(&err);
    struct json_obj o;
    json_obj_init(&o);
    struct json_error je;
    size_t n = text.len;
    while (n && (text.p[n - 1] == '\n' || text.p[n - 1] == '\r'))
        n--;
    if (json_obj_parse(&o, text.p, n, &je) < 0)
        die("%s:1:%zu: %s", argv[optind], je.offset + 1, je.msg);
    const struct json_field *f = json_obj_get(&o, argv[optind + 1]);
    if (!f)
        die("%s: no field \"%s\"", argv[optind], argv[optind + 1]);
    struct buf v = {0};
    if (f->val.type == JSON_STRING)
        json_str(&f->val, &v);
    else
        buf_append(&v, f->val.raw, f->val.raw_len);
    printf("%s\n", v.p ? v.p : "");
    cli_finish_stdout();
    buf_free(&v);
    json_obj_free(&o);
    buf_free(&text);
    return 0;
}

// summary.<metric> of the last line of an `evaluate classify` output.
static double
eval_metric(const char *path, const char *metric)
{
    struct buf text = {0};
    struct kerr err = {0};
    if (read_file(path, 256u << 20, &text, &err) < 0)
        die_kerr(&err);
    size_t end = text.len, line = 1;
    while (end && (text.p[end - 1] == '\n' || text.p[end - 1] == '\r'))
        end--;
    size_t start = end;
    while (start && text.p[start - 1] != '\n')
        start--;
    for (size_t i = 0; i < start; i++)
        line += text.p[i] == '\n';
    struct json_obj o;
    json_obj_init(&o);
    struct json_error je;
    if (json_obj_parse(&o, text.p + start, end - start, &je) < 0)
        die("%s:%zu:%zu: %s", path, line, je.offset + 1, je.msg);
    struct buf key = {0};
    buf_printf(&key, "summary.%s", metric);
    struct json_val v;
    double x;
    if (!json_obj_path(&o, key.p, &v) || json_double(&v, &x) < 0)
        die("%s:%zu: no number %s (not an `evaluate classify` output?)", path, line, key.p);
    buf_free(&key);
    json_obj_free(&o);
    buf_free(&text);
    return x;
}

static int
cmd_record(struct opts *o, int argc, char **argv)
{
    if (!o->candidate || !o->early || !o->final)
        die_usage("record: --candidate, --early and --final are required");
    if (optind < argc)
        die_usage("record: unexpected argument '%s'", argv[optind]);
    candidate_read(o->candidate); // validates
    struct buf text = {0};
    struct kerr err = {0};
    if (read_file(o->candidate, 1u << 20, &text, &err) < 0)
        die_kerr(&err);
    size_t n = text.len;
    while (n && (text.p[n - 1] == '\n' || text.p[n - 1] == '\r' || text.p[n - 1] == ' '))
        n--;
    // The candidate's object with the scores added before its closing brace.
    struct buf out = {0};
    buf_append(&out, text.p, n - 1);
    const char *other = strcmp(o->metric, "acc") ? "acc" : "macro_f1";
    double v[4] = {eval_metric(o->early, o->metric), eval_metric(o->final, o->metric),
                   eval_metric(o->early, other), eval_metric(o->final, other)};
    const char *k[4] = {"early", "final", "early_", "final_"};
    for (int i = 0; i < 4; i++) {
        buf_printf(&out, ",\"%s%s\":", k[i], i < 2 ? "" : other);
        json_write_double(&out, v[i]);
    }
    buf_printf(&out, ",\"metric\":\"%s\"}\n", o->metric);
    write_out(o->c.output, &out);
    buf_free(&out);
    buf_free(&text);
    return 0;
}

// ---- summary and import --------------------------------------------------------------------

// Compute of a trial: training examples to the end and to the early checkpoint.
static double
examples(const struct trial *t, bool early)
{
    return (double)(early ? t->early_steps : t->steps) * t->c.batch;
}

static int
cmd_summary(struct opts *o, int argc, char **argv)
{
    if (optind >= argc)
        die_usage("summary: expected HISTORY files");
    struct buf out = {0};
    for (int a = optind; a < argc; a++) {
        struct history h;
        history_read(argv[a], true, &h);
        size_t n = h.n, k = (size_t)o->top < n ? (size_t)o->top : n;
        double *e = xmalloc((n + 1) * sizeof *e), *f = xmalloc((n + 1) * sizeof *f);
        double full = 0, best = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            e[i] = h.t[i].early;
            f[i] = h.t[i].final;
            full += examples(&h.t[i], false);
            best = fmax(best, f[i]);
        }
        buf_printf(&out, "%s: %zu candidates, best final %.4f\n", argv[a], n, best);
        buf_printf(&out, "  top-%zu overlap of early and final: %zu of %zu\n", k,
                   rank_top_overlap(e, f, n, k), k);
        buf_printf(&out, "  Spearman rho %.4f, Kendall tau-b %.4f\n", rank_spearman(e, f, n),
                   rank_kendall(e, f, n));
        double *ec = xmalloc((n + 1) * sizeof *ec), *fc = xmalloc((n + 1) * sizeof *fc);
        for (size_t i = 0; i < n; i++)
            ec[i] = examples(&h.t[i], true), fc[i] = examples(&h.t[i], false);
        for (size_t kk = 1; kk <= k; kk++) {
            double kept, used = rank_early_stop_cost(e, f, ec, fc, n, kk, &kept);
            buf_printf(&out,
                       "  continue top %zu: %.0f of %.0f training examples (%.1f%% saved), "
                       "best final kept %.4f (regret %.4f)\n",
                       kk, used, full, full > 0 ? 100 * (1 - used / full) : 0, kept,
                       best - kept);
        }
        free(ec);
        free(fc);
        free(e);
        free(f);
        free(h.t);
    }
    write_out(o->c.output, &out);
    buf_free(&out);
    return 0;
}

static void
kdie(struct store *s, struct kerr *err)
{
    store_rollback(s);
    die_kerr(err);
}

static int
cmd_import(struct opts *o, int argc, char **argv)
{
    if (!o->db)
        die_usage("import: --db DB is required");
    if (optind >= argc)
        die_usage("import: expected HISTORY files");
    struct history *hs = xcalloc((size_t)(argc - optind), sizeof *hs);
    for (int a = optind; a < argc; a++)
        history_read(argv[a], true, &hs[a - optind]); // all valid before anything is written
    struct kerr err = {0};
    struct store *s = store_open(o->db, &err);
    if (!s)
        die_kerr(&err);
    if (store_begin(s, &err) < 0)
        die_kerr(&err);
    for (int a = optind; a < argc; a++) {
        const struct history *h = &hs[a - optind];
        for (size_t i = 0; i < h->n; i++) {
            const struct trial *t = &h->t[i];
            const char *method = t->method[0] ? t->method : "unknown";
            struct buf name = {0}, uuid = {0};
            buf_printf(&name, "hpo-%s-%02lld", method, (long long)t->index);
            buf_printf(&uuid, "%s:%s:%s:%lld", o->pipeline, argv[a], method,
                       (long long)t->index);
            struct store_run r = {.uuid = uuid.p, .kind = "hpo", .name = name.p,
                                  .pipeline = o->pipeline, .seed = (int64_t)o->c.seed};
            int64_t id;
            if (store_run_begin(s, &r, &id, &err) < 0)
                kdie(s, &err);
            char v[64];
            const struct {
                const char *k;
                double x;
                const char *fmt;
            } ps[] = {{"index", (double)t->index, "%.0f"}, {"lr", t->c.lr, "%.17g"},
                      {"batch", t->c.batch, "%.0f"},      {"epochs", t->c.epochs, "%.17g"},
                      {"steps", (double)t->steps, "%.0f"},
                      {"early_steps", (double)t->early_steps, "%.0f"},
                      {"examples", examples(t, false), "%.0f"},
                      {"early_examples", examples(t, true), "%.0f"},
                      {"tokens_per_example", t->tokens_per_example, "%.17g"}};
            if (store_param(s, id, "method", method, &err) < 0)
                kdie(s, &err);
            for (size_t p = 0; p < KILN_ARRAY_LEN(ps); p++) {
                if (isnan(ps[p].x))
                    continue;
                snprintf(v, sizeof v, ps[p].fmt, ps[p].x);
                if (store_param(s, id, ps[p].k, v, &err) < 0)
                    kdie(s, &err);
            }
            // Scores as metric points at the step they were taken (results would make these
            // runs the report's "latest evaluation").
            const struct {
                const char *k;
                int64_t step;
                double x;
            } ms[] = {{"hpo_early", t->early_steps, t->early},
                      {"hpo_final", t->steps, t->final},
                      {"hpo_early_acc", t->early_steps, t->early_acc},
                      {"hpo_final_acc", t->steps, t->final_acc}};
            for (size_t p = 0; p < KILN_ARRAY_LEN(ms); p++)
                if (!isnan(ms[p].x) &&
                    store_metric(s, id, ms[p].k, ms[p].step, ms[p].x, &err) < 0)
                    kdie(s, &err);
            if (store_run_end(s, id, "ok", &err) < 0)
                kdie(s, &err);
            buf_free(&name);
            buf_free(&uuid);
        }
    }
    if (store_commit(s, &err) < 0)
        kdie(s, &err);
    store_close(s);
    for (int a = optind; a < argc; a++)
        free(hs[a - optind].t);
    free(hs);
    return 0;
}

int
main(int argc, char **argv)
{
    cli_init("kiln-hpo");
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    struct opts o;
    opts_parse(&o, argc - 1, argv + 1);
    argc--, argv++;
    if (!strcmp(cmd, "propose"))
        return cmd_propose(&o, argc, argv);
    if (!strcmp(cmd, "args"))
        return cmd_args(argc, argv);
    if (!strcmp(cmd, "field"))
        return cmd_field(argc, argv);
    if (!strcmp(cmd, "record"))
        return cmd_record(&o, argc, argv);
    if (!strcmp(cmd, "summary"))
        return cmd_summary(&o, argc, argv);
    if (!strcmp(cmd, "import"))
        return cmd_import(&o, argc, argv);
    die_usage("unknown command '%s' (propose, args, field, record, summary, import)", cmd);
}

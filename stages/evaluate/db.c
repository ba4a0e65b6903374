// SPDX-License-Identifier: MIT
// db.c: the store glue of evaluate — `evaluate import` (results files, stage --stats files
// and trainer --log lines into one run, in one transaction) and `evaluate compare` (metric
// diff of two runs or results files with the standard error of the difference and a gate).
//
// How a results file maps to the store: each per-example line becomes an examples row (id,
// gold, prediction, correct, probs; the whole line as extra); the summary's numbers become
// results rows (value, stderr from summary.stderr when present), per_class scores become
// results "f1/LABEL", "precision/LABEL", "recall/LABEL"; the summary itself (confusion matrix,
// reliability bins, choices) is kept as the run's param "summary" for the report.
#include "evaluate.h"
#include "hash.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct store *
eval_db_open(const char *path, int busy_ms)
{
    struct kerr err;
    struct store *s = store_open(path, &err);
    if (!s)
        die_kerr(&err);
    store_busy_timeout(s, busy_ms);
    return s;
}

int
eval_db_run_begin(struct store *s, const char *kind, const char *name, const char *pipeline,
                  const char *model, const char *dataset, uint64_t seed, int threads,
                  int64_t *run_id, struct kerr *err)
{
    // A run id unique across processes and machines: time, pid and a counter hashed.
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t key[4] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid(), ++counter};
    uint64_t h[2];
    hash128(key, sizeof key, h);
    char uuid[40];
    snprintf(uuid, sizeof uuid, "%016llx%016llx", (unsigned long long)h[0],
             (unsigned long long)h[1]);
    struct store_run r = {.uuid = uuid,
                          .kind = kind,
                          .name = name ? name : kind,
                          .pipeline = pipeline,
                          .model = model,
                          .dataset = dataset,
                          .seed = (int64_t)seed,
                          .threads = threads};
    return store_run_begin(s, &r, run_id, err);
}

static void
val_text(const struct json_val *v, struct buf *out)
{
    buf_reset(out);
    if (v->type == JSON_STRING)
        json_str(v, out);
    else
        buf_append(out, v->raw, v->raw_len);
}

static int
found_cb(void *ctx, int ncol, const char *const *names, const char *const *values)
{
    (void)ncol, (void)names, (void)values;
    *(bool *)ctx = true;
    return 1;
}

// True when run_id already has a row named name in results (table "results") or params.
static bool
run_has(struct store *s, int64_t run_id, bool result, const char *name)
{
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)run_id);
    const char *params[4] = {id, name, NULL, NULL};
    bool found = false;
    struct kerr err;
    store_query(s,
                result ? "SELECT 1 FROM results WHERE run_id = CAST(?1 AS INTEGER) AND metric = ?2"
                       : "SELECT 1 FROM params WHERE run_id = CAST(?1 AS INTEGER) AND key = ?2",
                params, found_cb, &found, &err);
    return found;
}

// Several results files may go into one run (classify and lm of the same model): a name the
// run already has gets the file's task as a prefix ("lm-rolling/n").
static void
unique_name(struct store *s, int64_t run_id, bool result, const char *task, const char *name,
            struct buf *out)
{
    buf_reset(out);
    if (run_has(s, run_id, result, name))
        buf_printf(out, "%s/", task);
    buf_puts(out, name);
}

static int
load_summary(struct store *s, int64_t run_id, const struct json_val *sum, struct kerr *err)
{
    struct json_val tv;
    struct buf task = {0}, uname = {0};
    if (json_val_member(sum, "task", 4, &tv) && tv.type == JSON_STRING)
        json_str(&tv, &task);
    else
        buf_puts(&task, "results");
    struct json_val se_obj, v;
    bool has_se = json_val_member(sum, "stderr", 6, &se_obj) && se_obj.type == JSON_OBJECT;
    struct json_iter it;
    json_iter_init(&it, sum);
    struct buf key = {0}, name = {0};
    int rc = 0;
    while (rc == 0 && json_iter_next(&it)) {
        buf_reset(&key);
        json_unescape(it.key, it.key_len, &key);
        static const char *const settings[] = {"seed", "bins", "bootstrap_iters", "seq_len",
                                               "max_tokens", "top_k", "top_p", "temperature"};
        bool setting = false;
        for (size_t j = 0; j < KILN_ARRAY_LEN(settings); j++)
            setting |= !strcmp(key.p, settings[j]);
        if (it.val.type == JSON_NUMBER && !setting) {
            double x, se = NAN;
            json_double(&it.val, &x);
            if (has_se && json_val_member(&se_obj, key.p, key.len, &v) && v.type == JSON_NUMBER)
                json_double(&v, &se);
            unique_name(s, run_id, true, task.p, key.p, &uname);
            rc = store_result(s, run_id, uname.p, x, se, err);
        } else if (!strcmp(key.p, "per_class") && it.val.type == JSON_OBJECT) {
            struct json_iter ci;
            json_iter_init(&ci, &it.val);
            while (rc == 0 && json_iter_next(&ci)) {
                static const char *const sc[] = {"precision", "recall", "f1"};
                struct buf lab = {0};
                json_unescape(ci.key, ci.key_len, &lab);
                for (int j = 0; j < 3 && rc == 0; j++) {
                    double x;
                    if (!json_val_member(&ci.val, sc[j], strlen(sc[j]), &v) ||
                        json_double(&v, &x) < 0)
                        continue;
                    buf_reset(&name);
                    buf_printf(&name, "%s/%s", sc[j], lab.p ? lab.p : "");
                    unique_name(s, run_id, true, task.p, name.p, &uname);
                    rc = store_result(s, run_id, uname.p, x, NAN, err);
                }
                buf_free(&lab);
            }
        }
    }
    if (rc == 0) {
        struct buf text = {0};
        buf_append(&text, sum->raw, sum->raw_len);
        unique_name(s, run_id, false, task.p, "summary", &uname);
        rc = store_param(s, run_id, uname.p, text.p, err);
        buf_free(&text);
    }
    buf_free(&key);
    buf_free(&name);
    buf_free(&task);
    buf_free(&uname);
    return rc;
}

int
eval_db_load_results(struct store *s, int64_t run_id, const char *text, size_t n,
                     const char *name, struct kerr *err)
{
    struct json_obj o;
    json_obj_init(&o);
    struct buf id = {0}, gold = {0}, pred = {0}, probs = {0}, extra = {0};
    size_t lineno = 0;
    int rc = 0, summaries = 0;
    for (size_t pos = 0; pos < n && rc == 0;) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - text - pos) : n - pos;
        const char *line = text + pos;
        pos += len + 1;
        lineno++;
        struct json_error je;
        if (json_obj_parse(&o, line, len, &je) < 0) {
            rc = kerr_set(err, "%s:%zu:%zu: invalid JSON: %s", name, lineno, je.offset + 1,
                          je.msg);
            break;
        }
        const struct json_field *f = json_obj_get(&o, "summary");
        if (f) {
            if (f->val.type != JSON_OBJECT) {
                rc = kerr_set(err, "%s:%zu: \"summary\" is not an object", name, lineno);
                break;
            }
            summaries++;
            if ((rc = load_summary(s, run_id, &f->val, err)) < 0)
                kerr_prefix(err, "%s:%zu", name, lineno);
            continue;
        }
        if (!(f = json_obj_get(&o, "id"))) {
            rc = kerr_set(err, "%s:%zu: a results row needs an \"id\"", name, lineno);
            break;
        }
        val_text(&f->val, &id);
        const char *g = NULL, *p = NULL, *pr = NULL;
        if ((f = json_obj_get(&o, "gold")))
            val_text(&f->val, &gold), g = gold.p ? gold.p : "";
        if ((f = json_obj_get(&o, "prediction")))
            val_text(&f->val, &pred), p = pred.p ? pred.p : "";
        if ((f = json_obj_get(&o, "probs"))) {
            buf_reset(&probs);
            buf_append(&probs, f->val.raw, f->val.raw_len);
            pr = probs.p;
        }
        int correct = -1;
        if ((f = json_obj_get(&o, "correct")))
            correct = f->val.type == JSON_TRUE ? 1 : f->val.type == JSON_FALSE ? 0 : -1;
        buf_reset(&extra);
        buf_append(&extra, line, len);
        if ((rc = store_example(s, run_id, id.p ? id.p : "", g, p, correct, pr, extra.p, err)) <
            0)
            kerr_prefix(err, "%s:%zu", name, lineno);
    }
    if (rc == 0 && summaries != 1)
        rc = kerr_set(err, "%s: expected one {\"summary\": ...} line, found %d", name,
                      summaries);
    json_obj_free(&o);
    buf_free(&id), buf_free(&gold), buf_free(&pred), buf_free(&probs), buf_free(&extra);
    return rc;
}

void
eval_results_finish(const struct eval_common *c, const char *model, char **files,
                    const char *const *params, const struct buf *out)
{
    struct kerr err;
    struct store *db = NULL;
    if (c->db) {
        // Database rows first (uncommitted), then the results file, then the commit: a failure
        // at any point leaves neither a half-filled run nor a results file behind.
        db = eval_db_open(c->db, c->busy_ms);
        int64_t run_id;
        struct buf ds = {0};
        for (char **f = files; f && *f; f++)
            buf_printf(&ds, "%s%s", f == files ? "" : " ", *f);
        int rc = store_begin(db, &err);
        if (rc == 0)
            rc = eval_db_run_begin(db, "evaluate", c->run_name, c->pipeline, model, ds.p,
                                   c->cli.seed, c->threads, &run_id, &err);
        for (const char *const *p = params; rc == 0 && p && *p; p += 2)
            rc = store_param(db, run_id, p[0], p[1], &err);
        if (rc == 0)
            rc = eval_db_load_results(db, run_id, out->p, out->len, "results", &err);
        if (rc == 0)
            rc = store_run_end(db, run_id, "ok", &err);
        buf_free(&ds);
        if (rc < 0) {
            store_rollback(db);
            store_close(db);
            die_kerr(&err);
        }
    }
    if (eval_write_output(c->cli.output, out->p, out->len, &err) < 0) {
        if (db)
            store_rollback(db), store_close(db);
        die_kerr(&err);
    }
    if (db) {
        if (store_commit(db, &err) < 0) {
            if (c->cli.output && strcmp(c->cli.output, "-"))
                remove(c->cli.output);
            die_kerr(&err);
        }
        store_close(db);
    }
}

// ---- import --------------------------------------------------------------------------------

// Trainer --log lines: {"step": N, key: number, ...} → metric histories.
static int
load_trainlog(struct store *s, int64_t run_id, const char *text, size_t n, const char *name,
              struct kerr *err)
{
    struct json_obj o;
    json_obj_init(&o);
    struct buf key = {0};
    size_t lineno = 0;
    int rc = 0;
    for (size_t pos = 0; pos < n && rc == 0;) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - text - pos) : n - pos;
        const char *line = text + pos;
        pos += len + 1;
        lineno++;
        struct json_error je;
        int64_t step;
        const struct json_field *sf;
        if (json_obj_parse(&o, line, len, &je) < 0) {
            rc = kerr_set(err, "%s:%zu:%zu: invalid JSON: %s", name, lineno, je.offset + 1,
                          je.msg);
            break;
        }
        if (!(sf = json_obj_get(&o, "step")) || json_int(&sf->val, &step) < 0) {
            rc = kerr_set(err, "%s:%zu: a trainer log line needs an integer \"step\"", name,
                          lineno);
            break;
        }
        for (size_t i = 0; i < o.n && rc == 0; i++) {
            const struct json_field *f = &o.fields[i];
            double x;
            if (f == sf || f->val.type != JSON_NUMBER || json_double(&f->val, &x) < 0)
                continue;
            buf_reset(&key);
            json_unescape(f->key, f->key_len, &key);
            rc = store_metric(s, run_id, key.p, step, x, err);
        }
    }
    json_obj_free(&o);
    buf_free(&key);
    return rc;
}

enum file_kind { KIND_UNKNOWN, KIND_RESULTS, KIND_STATS, KIND_TRAINLOG };

static enum file_kind
file_kind(const char *text, size_t n)
{
    struct json_obj o;
    json_obj_init(&o);
    const char *nl = memchr(text, '\n', n);
    size_t len = nl ? (size_t)(nl - text) : n;
    enum file_kind k = KIND_UNKNOWN;
    if (json_obj_parse(&o, text, len, NULL) == 0) {
        if (json_obj_get(&o, "stage") && json_obj_get(&o, "records_in"))
            k = KIND_STATS;
        else if (json_obj_get(&o, "step"))
            k = KIND_TRAINLOG;
        else if (json_obj_get(&o, "summary") || json_obj_get(&o, "id"))
            k = KIND_RESULTS;
    }
    json_obj_free(&o);
    return k;
}

static void
import_usage(FILE *f)
{
    fputs("usage: evaluate import --db DB [--run-name NAME] [--pipeline NAME] [--kind KIND]\n"
          "         [--artifact FILE]... RESULTS.jsonl|STATS.json|TRAINLOG.jsonl...\n"
          "Loads every file into one new run, in one transaction: results files (evaluate\n"
          "classify/lm/generate -o), stage --stats files and trainer --log files.\n",
          f);
}

enum { OPT_KIND = EOPT_CMD, OPT_ARTIFACT, OPT_GATE, OPT_K };

int
cmd_import(int argc, char **argv)
{
    struct eval_common c;
    eval_common_init(&c);
    const char *kind = NULL;
    const char **artifacts = xcalloc((size_t)argc, sizeof *artifacts);
    int n_art = 0;
    static const struct option longopts[] = {
        EVAL_LONGOPTS,
        {"kind", required_argument, 0, OPT_KIND},
        {"artifact", required_argument, 0, OPT_ARTIFACT},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (opt == OPT_KIND)
            kind = optarg;
        else if (opt == OPT_ARTIFACT)
            artifacts[n_art++] = optarg;
        else if (!eval_common_opt(&c, opt, optarg, import_usage))
            die_usage("unexpected option");
    }
    if (!c.db)
        die_usage("--db DB is required");
    if (optind >= argc && !n_art)
        die_usage("nothing to import: give results, --stats or trainer log files");
    // Read and classify every file before touching the database.
    int nf = argc - optind;
    struct buf *texts = xcalloc((size_t)(nf ? nf : 1), sizeof *texts);
    enum file_kind *kinds = xcalloc((size_t)(nf ? nf : 1), sizeof *kinds);
    struct kerr err;
    for (int i = 0; i < nf; i++) {
        const char *path = argv[optind + i];
        if (read_file(path, 0, &texts[i], &err) < 0)
            die_kerr(&err);
        if (texts[i].len == 0)
            die("%s: empty file", path);
        if ((kinds[i] = file_kind(texts[i].p, texts[i].len)) == KIND_UNKNOWN)
            die("%s:1: not a results file, a --stats file or a trainer log", path);
    }
    struct store *s = eval_db_open(c.db, c.busy_ms);
    int64_t run_id;
    if (store_begin(s, &err) < 0)
        die_kerr(&err);
    int rc = eval_db_run_begin(s, kind ? kind : c.pipeline ? "pipeline" : "import", c.run_name,
                               c.pipeline, c.model, NULL, c.cli.seed, 0, &run_id, &err);
    for (int i = 0; i < nf && rc == 0; i++) {
        const char *path = argv[optind + i];
        switch (kinds[i]) {
        case KIND_RESULTS:
            rc = eval_db_load_results(s, run_id, texts[i].p, texts[i].len, path, &err);
            break;
        case KIND_STATS:
            if ((rc = store_stage_stats(s, run_id, texts[i].p, texts[i].len, &err)) < 0)
                kerr_prefix(&err, "%s", path);
            break;
        case KIND_TRAINLOG:
            rc = load_trainlog(s, run_id, texts[i].p, texts[i].len, path, &err);
            break;
        case KIND_UNKNOWN: break;
        }
    }
    for (int i = 0; i < n_art && rc == 0; i++) {
        uint8_t sha[32];
        char hex[65];
        if ((rc = sha256_file(artifacts[i], sha, &err)) < 0)
            break;
        hex_encode(sha, 32, hex);
        FILE *f = fopen(artifacts[i], "rb");
        long size = -1;
        if (f && fseek(f, 0, SEEK_END) == 0)
            size = ftell(f);
        if (f)
            fclose(f);
        rc = store_artifact(s, run_id, artifacts[i], hex, size < 0 ? 0 : (uint64_t)size, NULL,
                            &err);
    }
    if (rc == 0)
        rc = store_run_end(s, run_id, "ok", &err);
    if (rc == 0)
        rc = store_commit(s, &err);
    if (rc < 0) {
        store_rollback(s);
        store_close(s);
        die_kerr(&err);
    }
    store_close(s);
    info("imported %d file%s into run %lld", nf + n_art, nf + n_art == 1 ? "" : "s",
         (long long)run_id);
    for (int i = 0; i < nf; i++)
        buf_free(&texts[i]);
    free(texts), free(kinds), free(artifacts);
    return 0;
}

// ---- compare -------------------------------------------------------------------------------

struct metric_set {
    char **name;
    double *v, *se;
    int n;
};

static void
mset_add(struct metric_set *m, const char *name, double v, double se)
{
    m->name = xrealloc(m->name, (size_t)(m->n + 1) * sizeof *m->name);
    m->v = xrealloc(m->v, (size_t)(m->n + 1) * sizeof *m->v);
    m->se = xrealloc(m->se, (size_t)(m->n + 1) * sizeof *m->se);
    m->name[m->n] = xstrdup(name);
    m->v[m->n] = v;
    m->se[m->n++] = se;
}

static int
mset_find(const struct metric_set *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->name[i], name))
            return i;
    return -1;
}

static void
mset_free(struct metric_set *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->name[i]);
    free(m->name), free(m->v), free(m->se);
}

static int
mset_cb(void *ctx, const char *metric, double v, double se)
{
    mset_add(ctx, metric, v, se);
    return 0;
}

// Metrics of a results file (its summary line) or of a run (uuid, name or id) in the store.
static void
mset_load(struct metric_set *m, const char *what, struct store *s)
{
    struct kerr err;
    struct buf text = {0};
    if (access(what, F_OK) == 0) {
        if (read_file(what, 0, &text, &err) < 0)
            die_kerr(&err);
        const char *last = NULL;
        for (const char *p = text.p; p && p < text.p + text.len;) {
            const char *nl = memchr(p, '\n', (size_t)(text.p + text.len - p));
            if (nl != p)
                last = p;
            p = nl ? nl + 1 : NULL;
        }
        struct json_obj o;
        json_obj_init(&o);
        const struct json_field *f;
        struct json_val se_obj, v;
        size_t len = last ? strcspn(last, "\n") : 0;
        if (!last || json_obj_parse(&o, last, len, NULL) < 0 || !(f = json_obj_get(&o, "summary")) ||
            f->val.type != JSON_OBJECT)
            die("%s: no {\"summary\": ...} line at the end: not a results file", what);
        bool has_se = json_val_member(&f->val, "stderr", 6, &se_obj);
        struct json_iter it;
        json_iter_init(&it, &f->val);
        struct buf key = {0};
        while (json_iter_next(&it)) {
            double x, se = NAN;
            if (it.val.type != JSON_NUMBER || json_double(&it.val, &x) < 0)
                continue;
            buf_reset(&key);
            json_unescape(it.key, it.key_len, &key);
            if (has_se && json_val_member(&se_obj, key.p, key.len, &v))
                json_double(&v, &se);
            mset_add(m, key.p, x, se);
        }
        buf_free(&key);
        json_obj_free(&o);
        buf_free(&text);
        return;
    }
    if (!s)
        die("%s: no such file (give --db DB to compare runs by name)", what);
    int64_t id;
    if (store_run_find(s, what, &id, &err) < 0 ||
        store_results_each(s, id, mset_cb, m, &err) < 0)
        die_kerr(&err);
}

// Metrics where smaller is better.
static bool
lower_better(const char *m)
{
    static const char *const lows[] = {"loss", "perplexity", "ppl", "bits_per_byte", "ece",
                                       "word_perplexity", "byte_perplexity"};
    for (size_t i = 0; i < KILN_ARRAY_LEN(lows); i++)
        if (!strcmp(m, lows[i]))
            return true;
    return false;
}

static void
compare_usage(FILE *f)
{
    fputs("usage: evaluate compare [--db DB] [--gate METRIC] [--k K] A B\n"
          "A and B are results files or runs (uuid, name or id) in --db. Prints each metric\n"
          "of both with B - A and its standard error sqrt(se_A^2 + se_B^2). With --gate, exits\n"
          "3 when METRIC got worse by more than K (default 2) standard errors.\n",
          f);
}

int
cmd_compare(int argc, char **argv)
{
    struct eval_common c;
    eval_common_init(&c);
    const char *gate = NULL;
    double k = 2;
    static const struct option longopts[] = {
        EVAL_LONGOPTS,
        {"gate", required_argument, 0, OPT_GATE},
        {"k", required_argument, 0, OPT_K},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (opt == OPT_GATE)
            gate = optarg;
        else if (opt == OPT_K)
            k = cli_parse_double("--k", optarg, 0, 1e6);
        else if (!eval_common_opt(&c, opt, optarg, compare_usage))
            die_usage("unexpected option");
    }
    if (argc - optind != 2)
        die_usage("compare needs two results files or runs: A B");
    struct store *s = c.db ? eval_db_open(c.db, c.busy_ms) : NULL;
    struct metric_set a = {0}, b = {0};
    mset_load(&a, argv[optind], s);
    mset_load(&b, argv[optind + 1], s);
    if (s)
        store_close(s);
    printf("%-24s %12s %12s %12s %10s %8s\n", "metric", "A", "B", "B-A", "se", "z");
    int worse = 0;
    for (int i = 0; i < a.n; i++) {
        int j = mset_find(&b, a.name[i]);
        if (j < 0)
            continue;
        double d = b.v[j] - a.v[i];
        double sa = isnan(a.se[i]) ? 0 : a.se[i], sb = isnan(b.se[j]) ? 0 : b.se[j];
        double se = sqrt(sa * sa + sb * sb);
        bool has_se = !isnan(a.se[i]) || !isnan(b.se[j]);
        char zs[32] = "-";
        if (has_se && se > 0)
            snprintf(zs, sizeof zs, "%.2f", d / se);
        char ses[32] = "-";
        if (has_se)
            snprintf(ses, sizeof ses, "%.4g", se);
        bool gated = gate && !strcmp(gate, a.name[i]);
        printf("%-24s %12.6g %12.6g %+12.6g %10s %8s%s\n", a.name[i], a.v[i], b.v[j], d, ses, zs,
               gated ? "  <- gate" : "");
        if (gated) {
            double worse_by = lower_better(a.name[i]) ? d : -d;
            worse = worse_by > k * se ? 2 : 1;
        }
    }
    if (gate && !worse)
        die("--gate %s: the metric is not in both A and B", gate);
    mset_free(&a);
    mset_free(&b);
    if (worse == 2) {
        fflush(stdout);
        fprintf(stderr, "%s: %s regressed by more than %g standard errors\n", cli_prog, gate, k);
        cli_finish_stdout();
        exit(3);
    }
    return 0;
}

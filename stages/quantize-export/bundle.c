// SPDX-License-Identifier: MIT
// bundle: `quantize-export bundle` packs files (GGUFs, tokenizer.json, config.json, ...) with a
// generated model card README.md and MANIFEST.json into a deterministic tar (archive.h: sorted
// entries, fixed mtime from SOURCE_DATE_EPOCH, uid/gid 0, fixed modes, optional zstd), so the
// same inputs give the same bytes; `quantize-export verify` re-hashes every member against
// the manifest and names each mismatch.
//
// MANIFEST.json (keys in this order, members sorted by name):
//   {"format":"kiln-bundle/1",
//    "files":[{"name":"README.md","size":N,"sha256":"hex"}, ...every entry but the manifest],
//    "provenance":{"kiln_version":..., "stages":{"quantize-export":...},
//                  "libraries":{"zstd":..,"sqlite":..,"pcre2":..,"openblas":..},
//                  "run":{...runs row, params, results} (with --card-db),
//                  "seeds":[...], "inputs":[{"name","size","sha256"} of --provenance files],
//                  "steps":[every --provenance record, verbatim]}}
#include "archive.h"
#include "checkpoint.h"
#include "cli.h"
#include "gguf.h"
#include "hash.h"
#include "json.h"
#include "kernels.h"
#include "qx.h"
#include "rec.h"
#include "regex.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    OPT_CARD_DB = CLI_OPT_FIRST_STAGE,
    OPT_RUN_NAME,
    OPT_PROVENANCE,
    OPT_TITLE,
};

static void
bundle_usage(FILE *f)
{
    fprintf(f, "Usage: quantize-export bundle -o BUNDLE.tar[.zst] [--card-db DB --run-name NAME]\n"
               "                              [--provenance FILE.jsonl]... [--title TEXT] FILE...\n"
               "Pack FILEs with a model card README.md and MANIFEST.json into a reproducible tar\n"
               "(zstd-compressed when the name ends in .zst). mtime: SOURCE_DATE_EPOCH or 1980-01-01.\n");
}

struct entry {
    char *name, *path;
    uint64_t size;
    char sha[65];
};

static const char *
base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void
entry_hash(struct entry *e, const char *path)
{
    struct kerr err;
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode))
        die("%s: not a readable regular file", path);
    uint8_t h[32];
    if (sha256_file(path, h, &err))
        die_kerr(&err);
    hex_encode(h, 32, e->sha);
    e->size = (uint64_t)st.st_size;
    e->path = xstrdup(path);
    e->name = xstrdup(base_name(path));
}

static int
entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

// ---- the SQLite run: card sections and provenance ----------------------------------------

struct rows {
    struct buf md;        // Markdown lines
    struct json_writer *w; // JSON of the same rows (NULL = none)
    int n;
};

static int
row_kv(void *ctx, int ncol, const char *const *names, const char *const *values)
{
    struct rows *r = ctx;
    buf_puts(&r->md, "|");
    for (int i = 0; i < ncol; i++)
        buf_printf(&r->md, " %s |", values[i] ? values[i] : "");
    buf_putc(&r->md, '\n');
    if (r->w) {
        jw_obj_begin(r->w);
        for (int i = 0; i < ncol; i++) {
            jw_key(r->w, names[i]);
            if (values[i])
                jw_str(r->w, values[i]);
            else
                jw_null(r->w);
        }
        jw_obj_end(r->w);
    }
    r->n++;
    return 0;
}

struct card_run {
    struct buf run_md, params_md, results_md, data_md;
    struct buf json; // {"runs":..., "params":[...], "results":[...]}
    struct buf seeds; // comma-separated JSON numbers/strings
};

static void
card_query(struct store *s, const char *sql, const char *run_id, struct buf *md,
           struct json_writer *w, const char *key, const char *header)
{
    struct kerr err;
    struct rows r = {.w = w};
    buf_init(&r.md);
    const char *params[4] = {run_id, NULL, NULL, NULL};
    jw_key(w, key);
    jw_arr_begin(w);
    if (store_query(s, sql, params, row_kv, &r, &err))
        die_kerr(&err);
    jw_arr_end(w);
    if (r.n) {
        buf_puts(md, header);
        buf_append(md, r.md.p, r.md.len);
    }
    buf_free(&r.md);
}

static int
seed_row(void *ctx, int ncol, const char *const *names, const char *const *values)
{
    (void)names;
    struct buf *seeds = ctx;
    if (ncol >= 2 && values[1]) {
        if (seeds->len)
            buf_putc(seeds, ',');
        struct buf tmp;
        buf_init(&tmp);
        buf_printf(&tmp, "%s=%s", values[0] ? values[0] : "", values[1]);
        json_write_str(seeds, tmp.p, tmp.len);
        buf_free(&tmp);
    }
    return 0;
}

static void
card_run_load(struct card_run *c, const char *db, const char *run_name)
{
    struct kerr err;
    struct store *s = store_open(db, &err);
    if (!s)
        die_kerr(&err);
    int64_t id;
    if (store_run_find(s, run_name, &id, &err))
        die_kerr(&err);
    char ids[32];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    struct json_writer w;
    json_writer_init(&w, &c->json);
    jw_obj_begin(&w);
    card_query(s,
               "SELECT uuid, kind, name, model, dataset, status, git_rev, seed FROM runs "
               "WHERE id = ?1",
               ids, &c->run_md, &w, "run",
               "| uuid | kind | name | model | dataset | status | git rev | seed |\n"
               "|---|---|---|---|---|---|---|---|\n");
    card_query(s, "SELECT key, value FROM params WHERE run_id = ?1 ORDER BY key", ids,
               &c->params_md, &w, "params", "| parameter | value |\n|---|---|\n");
    card_query(s,
               "SELECT metric, value, stderr FROM results WHERE run_id = ?1 ORDER BY metric",
               ids, &c->results_md, &w, "results",
               "| metric | value | stderr |\n|---|---|---|\n");
    card_query(s,
               "SELECT stage, version, records_in, records_out, bytes_in, bytes_out FROM "
               "stage_stats WHERE run_id = ?1 ORDER BY stage, rowid",
               ids, &c->data_md, &w, "stage_stats",
               "| stage | version | records in | records out | bytes in | bytes out |\n"
               "|---|---|---|---|---|---|\n");
    jw_obj_end(&w);
    const char *params[4] = {ids, NULL, NULL, NULL};
    if (store_query(s,
                    "SELECT 'run', seed FROM runs WHERE id = ?1 AND seed IS NOT NULL "
                    "UNION ALL SELECT key, value FROM params WHERE run_id = ?1 AND key LIKE "
                    "'%seed%' ORDER BY 1",
                    params, seed_row, &c->seeds, &err))
        die_kerr(&err);
    store_close(s);
}

// ---- provenance files -----------------------------------------------------------------------

struct prov {
    struct buf steps;  // comma-separated raw records
    struct buf inputs; // comma-separated {"name","size","sha256"}
    struct buf seeds;
};

static void
prov_add(struct prov *p, const char *path)
{
    struct kerr err;
    struct entry e;
    entry_hash(&e, path);
    if (p->inputs.len)
        buf_putc(&p->inputs, ',');
    struct json_writer w;
    json_writer_init(&w, &p->inputs);
    jw_obj_begin(&w);
    jw_key(&w, "name");
    jw_str(&w, e.name);
    jw_key(&w, "size");
    jw_uint(&w, e.size);
    jw_key(&w, "sha256");
    jw_str(&w, e.sha);
    jw_obj_end(&w);
    free(e.name);
    free(e.path);

    struct rec_reader *r = rec_reader_open(path, &err);
    if (!r)
        die_kerr(&err);
    struct rec_line line;
    struct json_obj o;
    json_obj_init(&o);
    int rc;
    while ((rc = rec_reader_next_obj(r, &line, &o, &err)) == 1) {
        if (p->steps.len)
            buf_putc(&p->steps, ',');
        buf_append(&p->steps, o.src, o.len);
        const struct json_field *f = json_obj_get(&o, "seed");
        if (f && (f->val.type == JSON_NUMBER || f->val.type == JSON_STRING)) {
            if (p->seeds.len)
                buf_putc(&p->seeds, ',');
            buf_append(&p->seeds, f->val.raw, f->val.raw_len);
        }
    }
    if (rc < 0)
        die_kerr(&err);
    json_obj_free(&o);
    rec_reader_close(r);
}

// ---- model card ---------------------------------------------------------------------------

// A line per GGUF (type, size) and the architecture from config.json, when given.
static void
card_model(struct buf *md, const struct entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        struct kerr err;
        size_t len = strlen(e[i].name);
        if (len > 5 && !strcmp(e[i].name + len - 5, ".gguf")) {
            struct gguf_file g;
            if (gguf_open(&g, e[i].path, &err))
                die_kerr(&err);
            int64_t ft = -1;
            struct kerr ignore;
            gguf_get_int(&g, "general.file_type", &ft, &ignore);
            buf_printf(md, "- `%s`: GGUF, general.file_type %lld, %llu tensors, %llu bytes\n",
                       e[i].name, (long long)ft, (unsigned long long)g.n_tensors,
                       (unsigned long long)e[i].size);
            gguf_close(&g);
        } else if (!strcmp(e[i].name, "config.json")) {
            struct buf text;
            buf_init(&text);
            struct model_config c;
            if (read_file(e[i].path, 1 << 20, &text, &err) ||
                ckpt_config_parse(&c, text.p, text.len, e[i].path, &err))
                die_kerr(&err);
            buf_printf(md,
                       "- Architecture (config.json): Llama, vocabulary %d, hidden size %d, "
                       "%d layers, %d heads (%d KV), FFN %d, context %d, %s embeddings\n",
                       c.vocab, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn, c.max_seq,
                       c.tie_embeddings ? "tied" : "untied");
            buf_free(&text);
        }
    }
}

static void
card_write(struct buf *md, const char *title, const struct entry *e, int n,
           const struct card_run *run)
{
    buf_printf(md, "# %s\n\n", title);
    buf_puts(md, "A Llama-style language model built with kiln (raw text to an evaluated, "
                 "quantized model with small Unix programs). Every file in this bundle is listed "
                 "with its size and SHA-256 in MANIFEST.json; `quantize-export verify` checks "
                 "them.\n\n## Files\n\n| file | bytes | sha256 |\n|---|---|---|\n");
    for (int i = 0; i < n; i++)
        buf_printf(md, "| %s | %llu | `%.16s…` |\n", e[i].name, (unsigned long long)e[i].size,
                   e[i].sha);
    buf_puts(md, "\n## Model\n\n");
    size_t before = md->len;
    card_model(md, e, n);
    if (md->len == before)
        buf_puts(md, "No GGUF or config.json in the bundle.\n");
    const char *none = "Not recorded: the bundle was built without --card-db.\n";
    buf_puts(md, "\n## Data\n\n");
    buf_puts(md, run && run->data_md.len ? run->data_md.p : none);
    buf_puts(md, "\n## Training\n\n");
    if (run && run->run_md.len)
        buf_append(md, run->run_md.p, run->run_md.len);
    if (run && run->params_md.len) {
        buf_putc(md, '\n');
        buf_append(md, run->params_md.p, run->params_md.len);
    }
    if (!run || (!run->run_md.len && !run->params_md.len))
        buf_puts(md, none);
    buf_puts(md, "\n## Metrics\n\n");
    buf_puts(md, run && run->results_md.len ? run->results_md.p : none);
    buf_puts(md,
             "\n## Intended use\n\n"
             "Research and experimentation with small language models: studying training, "
             "quantization and evaluation, and local text completion where mistakes are "
             "harmless. The GGUF files run in llama.cpp.\n"
             "\n## Limitations\n\n"
             "A small model trained on a limited corpus: it produces fluent-looking text that "
             "is often wrong, repeats itself, and reflects the biases and errors of its "
             "training data. It has no safety tuning. Quantized files (Q8_0, Q4_0, Q4_K_M) lose "
             "some accuracy against F32 (see the metrics and the quantization report). Do not "
             "use it for decisions about people, or where factual accuracy matters.\n");
}

static void
manifest_write(struct buf *out, const struct entry *e, int n, const struct card_run *run,
               const struct prov *p)
{
    struct json_writer w;
    json_writer_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "format");
    jw_str(&w, "kiln-bundle/1");
    jw_key(&w, "files");
    jw_arr_begin(&w);
    for (int i = 0; i < n; i++) {
        jw_obj_begin(&w);
        jw_key(&w, "name");
        jw_str(&w, e[i].name);
        jw_key(&w, "size");
        jw_uint(&w, e[i].size);
        jw_key(&w, "sha256");
        jw_str(&w, e[i].sha);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "provenance");
    jw_obj_begin(&w);
    jw_key(&w, "kiln_version");
    jw_str(&w, KILN_VERSION);
    jw_key(&w, "stages");
    jw_obj_begin(&w);
    jw_key(&w, "quantize-export");
    jw_str(&w, KILN_VERSION);
    jw_obj_end(&w);
    jw_key(&w, "libraries");
    jw_obj_begin(&w);
    jw_key(&w, "zstd");
    jw_str(&w, rec_zstd_version());
    jw_key(&w, "sqlite");
    jw_str(&w, store_sqlite_version());
    jw_key(&w, "pcre2");
    jw_str(&w, regex_version());
    jw_key(&w, "openblas");
    jw_str(&w, kern_blas_version());
    jw_obj_end(&w);
    if (run) {
        jw_key(&w, "run");
        jw_raw(&w, run->json.p, run->json.len);
    }
    struct buf seeds;
    buf_init(&seeds);
    buf_putc(&seeds, '[');
    if (run && run->seeds.len)
        buf_append(&seeds, run->seeds.p, run->seeds.len);
    if (p->seeds.len) {
        if (seeds.len > 1)
            buf_putc(&seeds, ',');
        buf_append(&seeds, p->seeds.p, p->seeds.len);
    }
    buf_putc(&seeds, ']');
    jw_key(&w, "seeds");
    jw_raw(&w, seeds.p, seeds.len);
    buf_free(&seeds);
    const struct buf *arrays[2] = {&p->inputs, &p->steps};
    const char *keys[2] = {"inputs", "steps"};
    for (int k = 0; k < 2; k++) {
        jw_key(&w, keys[k]);
        jw_arr_begin(&w);
        if (arrays[k]->len)
            jw_raw(&w, arrays[k]->p, arrays[k]->len);
        jw_arr_end(&w);
    }
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(out, '\n');
}

int
qx_bundle_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"card-db", required_argument, 0, OPT_CARD_DB},
        {"run-name", required_argument, 0, OPT_RUN_NAME},
        {"provenance", required_argument, 0, OPT_PROVENANCE},
        {"title", required_argument, 0, OPT_TITLE},
        {0, 0, 0, 0},
    };
    struct cli_common c;
    cli_common_init(&c);
    const char *db = NULL, *run_name = NULL, *title = "kiln model";
    const char **provs = xcalloc((size_t)argc, sizeof(char *));
    int n_prov = 0, opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&c, opt, optarg, bundle_usage))
            continue;
        switch (opt) {
        case OPT_CARD_DB: db = optarg; break;
        case OPT_RUN_NAME: run_name = optarg; break;
        case OPT_PROVENANCE: provs[n_prov++] = optarg; break;
        case OPT_TITLE: title = optarg; break;
        default: die_usage("unexpected option");
        }
    }
    if (!c.output)
        die_usage("-o BUNDLE.tar[.zst] is required");
    if (optind == argc)
        die_usage("no files to bundle");
    if (!db != !run_name)
        die_usage("--card-db and --run-name go together");

    int n = argc - optind;
    struct entry *e = xcalloc((size_t)n + 1, sizeof(*e));
    for (int i = 0; i < n; i++) {
        entry_hash(&e[i], argv[optind + i]);
        if (!strcmp(e[i].name, "README.md") || !strcmp(e[i].name, "MANIFEST.json"))
            die("%s: %s is generated by the bundle; rename the file", e[i].path, e[i].name);
    }
    qsort(e, (size_t)n, sizeof(*e), entry_cmp);
    for (int i = 1; i < n; i++)
        if (!strcmp(e[i].name, e[i - 1].name))
            die("%s and %s: two files named %s", e[i - 1].path, e[i].path, e[i].name);

    struct card_run run = {0}, *runp = NULL;
    buf_init(&run.run_md);
    buf_init(&run.params_md);
    buf_init(&run.results_md);
    buf_init(&run.data_md);
    buf_init(&run.json);
    buf_init(&run.seeds);
    if (db) {
        card_run_load(&run, db, run_name);
        runp = &run;
    }
    struct prov p;
    buf_init(&p.steps);
    buf_init(&p.inputs);
    buf_init(&p.seeds);
    for (int i = 0; i < n_prov; i++)
        prov_add(&p, provs[i]);

    struct buf card, manifest;
    buf_init(&card);
    buf_init(&manifest);
    card_write(&card, title, e, n, runp);
    // The card is an entry of the manifest like any other file.
    struct entry *all = xcalloc((size_t)n + 1, sizeof(*all));
    memcpy(all, e, (size_t)n * sizeof(*e));
    all[n].name = "README.md";
    all[n].size = card.len;
    uint8_t h[32];
    sha256_buf(card.p, card.len, h);
    hex_encode(h, 32, all[n].sha);
    qsort(all, (size_t)n + 1, sizeof(*all), entry_cmp);
    manifest_write(&manifest, all, n + 1, runp, &p);

    struct kerr err;
    size_t ol = strlen(c.output);
    struct arc_wopts wo = {.zstd = ol > 4 && !strcmp(c.output + ol - 4, ".zst"), .mtime = -1};
    struct buf tmp;
    buf_init(&tmp);
    buf_printf(&tmp, "%s.tmp", c.output);
    int slot = cli_tmp_register(tmp.p);
    struct arc_writer *w = arc_writer_open(c.output, &wo, &err);
    if (!w)
        die_kerr(&err);
    int rc = arc_writer_add(w, "README.md", card.p, card.len, false, &err);
    if (rc == 0)
        rc = arc_writer_add(w, "MANIFEST.json", manifest.p, manifest.len, false, &err);
    for (int i = 0; i < n && rc == 0; i++)
        rc = arc_writer_add_file(w, e[i].name, e[i].path, false, &err);
    if (rc) {
        arc_writer_abort(w);
        die_kerr(&err);
    }
    if (arc_writer_close(w, &err))
        die_kerr(&err);
    cli_tmp_forget(slot);
    info("wrote %s: %d files + README.md + MANIFEST.json", c.output, n);

    buf_free(&tmp);
    buf_free(&card);
    buf_free(&manifest);
    buf_free(&p.steps);
    buf_free(&p.inputs);
    buf_free(&p.seeds);
    buf_free(&run.run_md);
    buf_free(&run.params_md);
    buf_free(&run.results_md);
    buf_free(&run.data_md);
    buf_free(&run.json);
    buf_free(&run.seeds);
    for (int i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].path);
    }
    free(all);
    free(e);
    free(provs);
    return 0;
}

// ---- verify ----------------------------------------------------------------------------------

struct member {
    char *name;
    uint64_t size;
    char sha[65];
    bool listed;
};

int
qx_verify_main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS, {0, 0, 0, 0}};
    struct cli_common c;
    cli_common_init(&c);
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1)
        if (!cli_common_opt(&c, opt, optarg, bundle_usage))
            die_usage("unexpected option");
    if (optind + 1 != argc)
        die_usage("verify takes one BUNDLE");
    const char *path = argv[optind];
    struct kerr err;
    // Members are hashed in memory: allow model-sized members and any compression ratio (a
    // GGUF of zeros compresses enormously; the sizes come from our own manifest anyway).
    struct arc_limits lim = {.max_member = UINT64_C(1) << 40, .max_total = UINT64_C(1) << 42,
                             .max_ratio = 1e12};
    struct arc_reader *r = arc_reader_open(path, &lim, &err);
    if (!r)
        die_kerr(&err);
    struct member *m = NULL;
    int n = 0, cap = 0, rc;
    struct buf data, manifest;
    buf_init(&data);
    buf_init(&manifest);
    bool have_manifest = false;
    struct arc_member am;
    while ((rc = arc_reader_next(r, &am, &err)) == 1) {
        buf_reset(&data);
        if (arc_reader_read(r, &data, &err))
            die_kerr(&err);
        if (!strcmp(am.path, "MANIFEST.json")) {
            buf_append(&manifest, data.p, data.len);
            have_manifest = true;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            m = xrealloc(m, (size_t)cap * sizeof(*m));
        }
        m[n].name = xstrdup(am.path);
        m[n].size = data.len;
        m[n].listed = false;
        uint8_t h[32];
        sha256_buf(data.p, data.len, h);
        hex_encode(h, 32, m[n].sha);
        n++;
    }
    if (rc < 0)
        die_kerr(&err);
    arc_reader_close(r);
    if (!have_manifest)
        die("%s: no MANIFEST.json", path);
    struct json_val root, files, v;
    struct json_error je;
    if (json_parse_value(manifest.p, manifest.len, &root, &je))
        die("%s: MANIFEST.json:1:%zu: %s", path, je.offset + 1, je.msg);
    if (root.type != JSON_OBJECT || !json_val_member(&root, "files", 5, &files) ||
        files.type != JSON_ARRAY)
        die("%s: MANIFEST.json has no \"files\" array", path);
    int bad = 0, listed = 0;
    struct json_iter it;
    json_iter_init(&it, &files);
    struct buf name, sha;
    buf_init(&name);
    buf_init(&sha);
    while (json_iter_next(&it)) {
        int64_t size = -1;
        buf_reset(&name);
        buf_reset(&sha);
        if (it.val.type != JSON_OBJECT || !json_val_member(&it.val, "name", 4, &v) ||
            v.type != JSON_STRING)
            die("%s: MANIFEST.json: files[%zu] has no name", path, it.index);
        json_str(&v, &name);
        if (json_val_member(&it.val, "sha256", 6, &v))
            json_str(&v, &sha);
        if (json_val_member(&it.val, "size", 4, &v))
            json_int(&v, &size);
        listed++;
        int k = 0;
        while (k < n && strcmp(m[k].name, name.p))
            k++;
        if (k == n) {
            warnx_("%s: %s: listed in MANIFEST.json but missing", path, name.p);
            bad++;
            continue;
        }
        m[k].listed = true;
        if (size != (int64_t)m[k].size) {
            warnx_("%s: %s: size %llu, MANIFEST.json says %lld", path, name.p,
                   (unsigned long long)m[k].size, (long long)size);
            bad++;
        } else if (!sha.p || strcmp(sha.p, m[k].sha)) {
            warnx_("%s: %s: sha256 %s, MANIFEST.json says %s", path, name.p, m[k].sha,
                   sha.p ? sha.p : "nothing");
            bad++;
        }
    }
    for (int k = 0; k < n; k++)
        if (!m[k].listed) {
            warnx_("%s: %s: not listed in MANIFEST.json", path, m[k].name);
            bad++;
        }
    if (bad)
        die("%s: %d mismatches", path, bad);
    info("%s: %d files verified", path, listed);
    for (int k = 0; k < n; k++)
        free(m[k].name);
    free(m);
    buf_free(&name);
    buf_free(&sha);
    buf_free(&data);
    buf_free(&manifest);
    return 0;
}

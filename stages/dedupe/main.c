// SPDX-License-Identifier: MIT
// dedupe: removes exact and near-duplicate records from a record stream, keeping the first
// occurrence in input order, and says what it removed and why. Options, the read loop and
// output; the decisions are in engine.c, the algorithms in common/minhash.c and the index
// file in common/dedup_index.c. See dedupe.1.
#include "cli.h"
#include "engine.h"
#include "sharded.h"
#include "json.h"
#include "rec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_KEY = CLI_OPT_FIRST_STAGE,
    OPT_ID,
    OPT_NORMALIZE,
    OPT_MODE,
    OPT_PRESET,
    OPT_THRESHOLD,
    OPT_BANDS,
    OPT_ROWS,
    OPT_SHINGLE,
    OPT_NGRAM,
    OPT_MISSING,
    OPT_REJECTS,
    OPT_CLUSTERS,
    OPT_SAVE_INDEX,
    OPT_AGAINST,
    OPT_PHASE,
    OPT_WORK,
    OPT_SHARDS,
    OPT_RANGES,
    OPT_SHARD,
    OPT_RANGE,
};

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: dedupe [OPTIONS] [FILE...]\n"
            "Remove exact and near-duplicate records; the first occurrence is kept.\n"
            "Reads JSON Lines (zstd or plain) from FILEs as one stream, or stdin.\n"
            "\n"
            "  --key PATH            field to compare (default text; nested: metadata.url)\n"
            "  --id PATH             field naming a record in reports (default id)\n"
            "  --normalize MODE      none | ws-lower (default) | nfkc\n"
            "  --mode MODE           exact | near (default; exact duplicates first)\n"
            "  --preset NAME         datatrove (default: word 5-grams, 14x8) | nemo (char\n"
            "                        24-grams, 20x13) | lee (word 5-grams, 450x20)\n"
            "  --threshold J         Jaccard similarity to remove at (default 0.8); without\n"
            "                        --preset/--bands it also chooses bands x rows\n"
            "  --bands B --rows R    LSH layout (B x R permutations)\n"
            "  --shingle word|char   shingle unit;  --ngram N  units per shingle\n"
            "  --missing POLICY      key field absent or not a string: error (default),\n"
            "                        keep (pass through) or drop (to --rejects)\n"
            "  --rejects FILE        removed records with reason, duplicate_of, similarity\n"
            "  --clusters FILE       one line per cluster: cluster, size, survivor, members\n"
            "  --save-index FILE     store this run's keys and signatures\n"
            "  --against FILE        dedupe against an index saved earlier (repeatable)\n"
            "  --seed N              permutation seed (default 0)\n"
            "  --phase PHASE         a step of a sharded run: sign | bucket | cluster | apply\n"
            "                        (see dedupe(1), SHARDED RUNS); with --work DIR,\n"
            "                        --shards N, --ranges R (default N), --shard I, --range J\n"
            "  -o, --output FILE     output (default stdout); --level N, --plain, -f\n"
            "  --stats FILE          counts, clusters, peak memory as JSON\n"
            "  -q, -v, --progress, -h, --version\n");
}

struct opts {
    struct cli_common c;
    struct dedupe_conf conf;
    const char *preset;
    bool threshold_set, layout_set;
    int bands, rows, ngram;
    int kind; // -1 = preset's
    const char *rejects, *clusters, *save_index;
    const char **against;
    size_t n_against;
    struct dedupe_shard_opts so;
};

static int
parse_enum(const char *opt, const char *arg, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(arg, names[i]) == 0)
            return i;
    die_usage("%s: unknown value '%s'", opt, arg);
}

static void
parse_options(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"key", required_argument, 0, OPT_KEY},
        {"id", required_argument, 0, OPT_ID},
        {"normalize", required_argument, 0, OPT_NORMALIZE},
        {"mode", required_argument, 0, OPT_MODE},
        {"preset", required_argument, 0, OPT_PRESET},
        {"threshold", required_argument, 0, OPT_THRESHOLD},
        {"bands", required_argument, 0, OPT_BANDS},
        {"rows", required_argument, 0, OPT_ROWS},
        {"shingle", required_argument, 0, OPT_SHINGLE},
        {"ngram", required_argument, 0, OPT_NGRAM},
        {"missing", required_argument, 0, OPT_MISSING},
        {"rejects", required_argument, 0, OPT_REJECTS},
        {"clusters", required_argument, 0, OPT_CLUSTERS},
        {"save-index", required_argument, 0, OPT_SAVE_INDEX},
        {"against", required_argument, 0, OPT_AGAINST},
        {"phase", required_argument, 0, OPT_PHASE},
        {"work", required_argument, 0, OPT_WORK},
        {"shards", required_argument, 0, OPT_SHARDS},
        {"ranges", required_argument, 0, OPT_RANGES},
        {"shard", required_argument, 0, OPT_SHARD},
        {"range", required_argument, 0, OPT_RANGE},
        {0, 0, 0, 0},
    };
    static const char *const norms[] = {"none", "ws-lower", "nfkc"};
    static const char *const modes[] = {"exact", "near"};
    static const char *const kinds[] = {"word", "char"};
    static const char *const missing[] = {"error", "keep", "drop"};
    cli_common_init(&o->c);
    o->conf.key = "text";
    o->conf.id_path = "id";
    o->conf.norm = DEDUP_NORM_WS_LOWER;
    o->conf.mode = DEDUPE_NEAR;
    o->kind = -1;
    o->so.shard = o->so.range = -1;
    double threshold = 0.8;
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&o->c, opt, optarg, usage))
            continue;
        switch (opt) {
        case OPT_KEY:
        case OPT_ID:
            if (!*optarg || optarg[0] == '.' || optarg[strlen(optarg) - 1] == '.' ||
                strstr(optarg, ".."))
                die_usage("--%s: invalid field path '%s'", opt == OPT_KEY ? "key" : "id", optarg);
            *(opt == OPT_KEY ? &o->conf.key : &o->conf.id_path) = optarg;
            break;
        case OPT_NORMALIZE:
            o->conf.norm = (enum dedup_norm)parse_enum("--normalize", optarg, norms, 3);
            break;
        case OPT_MODE:
            o->conf.mode = (enum dedupe_mode)parse_enum("--mode", optarg, modes, 2);
            break;
        case OPT_PRESET: {
            struct minhash_params p;
            if (minhash_preset(optarg, &p) != 0)
                die_usage("--preset: unknown preset '%s' (datatrove, nemo, lee)", optarg);
            o->preset = optarg;
            break;
        }
        case OPT_THRESHOLD:
            threshold = cli_parse_double("--threshold", optarg, 0, 1);
            if (threshold <= 0)
                die_usage("--threshold: must be above 0");
            o->threshold_set = true;
            break;
        case OPT_BANDS:
            o->bands = (int)cli_parse_int("--bands", optarg, 1, MINHASH_MAX_PERM);
            o->layout_set = true;
            break;
        case OPT_ROWS:
            o->rows = (int)cli_parse_int("--rows", optarg, 1, MINHASH_MAX_PERM);
            o->layout_set = true;
            break;
        case OPT_SHINGLE:
            o->kind = parse_enum("--shingle", optarg, kinds, 2);
            break;
        case OPT_NGRAM:
            o->ngram = (int)cli_parse_int("--ngram", optarg, 1, 4096);
            break;
        case OPT_MISSING:
            o->conf.missing = (enum dedupe_missing)parse_enum("--missing", optarg, missing, 3);
            break;
        case OPT_REJECTS:
            o->rejects = optarg;
            break;
        case OPT_CLUSTERS:
            o->clusters = optarg;
            break;
        case OPT_SAVE_INDEX:
            o->save_index = optarg;
            break;
        case OPT_AGAINST:
            o->against = xrealloc(o->against, (o->n_against + 1) * sizeof *o->against);
            o->against[o->n_against++] = optarg;
            break;
        case OPT_PHASE: {
            static const char *const phases[] = {"sign", "bucket", "cluster", "apply"};
            o->so.phase = (enum dedupe_phase)(parse_enum("--phase", optarg, phases, 4) + 1);
            break;
        }
        case OPT_WORK:
            o->so.work = optarg;
            break;
        case OPT_SHARDS:
            o->so.shards = (uint32_t)cli_parse_int("--shards", optarg, 1, 65535);
            break;
        case OPT_RANGES:
            o->so.ranges = (uint32_t)cli_parse_int("--ranges", optarg, 1, 65535);
            break;
        case OPT_SHARD:
            o->so.shard = cli_parse_int("--shard", optarg, 0, 65534);
            break;
        case OPT_RANGE:
            o->so.range = cli_parse_int("--range", optarg, 0, 65534);
            break;
        default:
            die_usage("unexpected option");
        }
    }

    // Near-duplicate parameters: preset, then explicit shingling, layout and threshold.
    struct minhash_params *mh = &o->conf.mh;
    minhash_preset(o->preset ? o->preset : "datatrove", mh);
    if (o->kind >= 0 && (enum minhash_kind)o->kind != mh->kind) {
        mh->kind = (enum minhash_kind)o->kind;
        mh->ngram = mh->kind == MINHASH_CHARS ? 24 : 5;
    }
    if (o->ngram)
        mh->ngram = o->ngram;
    mh->threshold = threshold;
    if (o->layout_set) {
        if (!o->bands || !o->rows)
            die_usage("--bands and --rows go together");
        if (o->bands * o->rows > MINHASH_MAX_PERM)
            die_usage("--bands x --rows: at most %d permutations", MINHASH_MAX_PERM);
        mh->bands = o->bands;
        mh->rows = o->rows;
    } else if (o->threshold_set && !o->preset) {
        minhash_choose(threshold, 128, &mh->bands, &mh->rows);
    }
    mh->seed = o->c.seed;
    o->conf.keep_ids = o->rejects || o->clusters || o->save_index;
    o->conf.clusters = o->clusters != NULL;
    if (!o->so.ranges)
        o->so.ranges = o->so.shards;
    o->so.rejects = o->rejects;
    if (o->so.phase && (o->clusters || o->save_index || o->n_against))
        die_usage("--clusters, --save-index and --against are not available with --phase");
}

static void
write_reject(struct rec_writer *w, struct dedupe *d, const struct json_obj *o,
             const struct dedupe_verdict *v, struct buf *line, struct buf *vals)
{
    struct kerr err;
    struct buf id = {0};
    if ((v->kind == VERDICT_EXACT || v->kind == VERDICT_NEAR) &&
        dedupe_kept_id(d, v->survivor, &id, &err) != 0)
        die_kerr(&err);
    dedupe_reject_line(o, v->kind, id.p, id.len, v->similarity, line, vals);
    buf_free(&id);
    if (rec_writer_write(w, line->p, line->len, &err) != 0)
        die_kerr(&err);
}

static void
stats_fill(struct stats *st, struct dedupe *d, const struct opts *o)
{
    struct dedupe_counts c;
    dedupe_counts(d, &c);
    stats_str(st, "mode", o->conf.mode == DEDUPE_NEAR ? "near" : "exact");
    stats_str(st, "key", o->conf.key);
    stats_str(st, "normalize", dedup_norm_name(o->conf.norm));
    if (o->conf.mode == DEDUPE_NEAR) {
        const struct minhash_params *mh = &o->conf.mh;
        stats_str(st, "shingle", mh->kind == MINHASH_CHARS ? "char" : "word");
        stats_u64(st, "ngram", (uint64_t)mh->ngram);
        stats_u64(st, "bands", (uint64_t)mh->bands);
        stats_u64(st, "rows", (uint64_t)mh->rows);
        stats_f64(st, "threshold", mh->threshold);
    }
    stats_u64(st, "exact_removed", c.exact);
    stats_u64(st, "near_removed", c.near);
    stats_u64(st, "missing_kept", c.missing_kept);
    stats_u64(st, "missing_dropped", c.missing_dropped);
    stats_u64(st, "against_records", c.against_records);
    stats_u64(st, "candidates_verified", c.candidates);
    stats_u64(st, "candidates_below_threshold", c.false_candidates);
    stats_u64(st, "clusters", c.clusters);
    stats_u64(st, "largest_cluster", c.largest_cluster);
    stats_u64(st, "table_bytes", c.ram_bytes);
    stats_u64(st, "spool_bytes", c.spool_bytes);
    double n = c.records ? (double)c.records : 1;
    stats_f64(st, "table_bytes_per_record", round(c.ram_bytes / n * 10) / 10);
    stats_f64(st, "spool_bytes_per_record", round(c.spool_bytes / n * 10) / 10);
}

int
main(int argc, char **argv)
{
    cli_init(argv[0]);
    struct opts o = {0};
    parse_options(argc, argv, &o);
    if (o.so.phase) {
        dedupe_shard_run(&o.conf, &o.c, &o.so, (const char *const *)argv + optind,
                         (size_t)(argc - optind));
        cli_finish_stdout();
        return 0;
    }
    struct kerr err;
    struct stats st;
    stats_init(&st, "dedupe");

    struct dedupe *d = dedupe_new(&o.conf, &err);
    if (!d)
        die_kerr(&err);
    for (size_t i = 0; i < o.n_against; i++)
        if (dedupe_load_index(d, o.against[i], &err) != 0)
            die_kerr(&err);

    struct rec_wopts wo = {.level = o.c.level, .plain = o.c.plain, .force = o.c.force};
    struct rec_writer *out = rec_writer_open(o.c.output, &wo, &err);
    if (!out)
        die_kerr(&err);
    struct rec_writer *rej = NULL, *clu = NULL;
    if (o.rejects && !(rej = rec_writer_open(o.rejects, &wo, &err)))
        die_kerr(&err);
    if (o.clusters && !(clu = rec_writer_open(o.clusters, &wo, &err)))
        die_kerr(&err);

    const char *stdin_only[] = {"-"};
    const char *const *files = optind < argc ? (const char *const *)argv + optind : stdin_only;
    size_t n_files = optind < argc ? (size_t)(argc - optind) : 1;
    struct json_obj obj;
    json_obj_init(&obj);
    struct rec_line line;
    struct buf rline = {0}, vals = {0};
    struct progress pg;
    progress_init(&pg, &o.c, "records", 0);
    for (size_t f = 0; f < n_files; f++) {
        struct rec_reader *r = rec_reader_open(files[f], &err);
        if (!r)
            die_kerr(&err);
        int rc;
        while ((rc = rec_reader_next(r, &line, &err)) == 1) {
            struct json_error je;
            if (json_obj_parse(&obj, line.p, line.n, &je) != 0)
                die("%s:%llu:%zu: invalid JSON: %s", rec_reader_name(r),
                    (unsigned long long)line.lineno, je.offset + 1, je.msg);
            st.records_in++;
            st.bytes_in += line.n + 1;
            struct dedupe_verdict v;
            if (dedupe_record(d, &obj, &v, &err) != 0)
                die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)line.lineno,
                    err.msg);
            if (v.kind == VERDICT_KEEP || v.kind == VERDICT_MISSING_KEEP) {
                if (rec_writer_write(out, line.p, line.n, &err) != 0)
                    die_kerr(&err);
            } else if (rej) {
                write_reject(rej, d, &obj, &v, &rline, &vals);
            }
            progress_update(&pg, st.records_in, st.bytes_in);
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    progress_end(&pg);

    if (clu && dedupe_write_clusters(d, clu, &err) != 0)
        die_kerr(&err);
    if (o.save_index && dedupe_save_index(d, o.save_index, &err) != 0)
        die_kerr(&err);
    st.records_out = rec_writer_records(out);
    st.bytes_out = rec_writer_bytes(out);
    if ((clu && rec_writer_close(clu, &err) != 0) || (rej && rec_writer_close(rej, &err) != 0) ||
        rec_writer_close(out, &err) != 0)
        die_kerr(&err);
    stats_fill(&st, d, &o);
    if (stats_write(&st, o.c.stats, &err) != 0)
        die_kerr(&err);

    stats_free(&st);
    json_obj_free(&obj);
    buf_free(&rline);
    buf_free(&vals);
    dedupe_del(d);
    free(o.against);
    cli_finish_stdout();
    return 0;
}

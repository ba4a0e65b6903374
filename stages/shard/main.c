// SPDX-License-Identifier: MIT
// shard: cuts a record stream into N shards by a hash of the record id, and merges the
// outputs of per-shard runs back into the order of the unsharded stream. See shard.1.
//
//   shard split -n N [--id PATH] -o 'DIR/part-{}.jsonl.zst' FILE...
//   shard merge [--keep-seq] [-o OUT] PART...
//   shard keys [--field F]... [-o OUT] PART           (per shard)
//   shard route --plan FILE... -o 'OUT-{}.jsonl.zst' PART   (per shard)
//
// keys and route run a whole-stream decision (balance's stratified splits, or any stage that
// selects records and keeps their order) on a small stream of keys instead of the records:
// keys writes each record's position and the fields the decision reads; the keys of all
// shards are merged (--keep-seq) and given to the stage once; route then sends each record of
// a shard to the output of the plan file that holds its position ('{}' = the plan file's name
// without .jsonl[.zst]). The decision sees the same fields in the same order as on the whole
// stream, so the routed, merged outputs equal the stage's own outputs.
//
// split tags each record with its input position ("_kiln_seq", common/shard.h); merge takes
// the smallest position among the parts' next records (ties: the earlier PART, then file
// order, as oversampled copies share a position) and removes the tag, so a record-wise stage
// run per shard and merged writes byte for byte what it writes unsharded.
#include "cli.h"
#include "json.h"
#include "rec.h"
#include "shard.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_ID = CLI_OPT_FIRST_STAGE, OPT_FIELD, OPT_KEEP_SEQ, OPT_PLAN };

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: shard split -n N [--id PATH] -o PATTERN [FILE...]\n"
            "       shard merge [--keep-seq] [-o OUT] PART...\n"
            "       shard keys [--field F]... [-o OUT] PART\n"
            "       shard route --plan FILE... -o PATTERN PART\n"
            "split: cut records into N shards by xxh3 of the id (PATTERN's '{}' is the shard\n"
            "       number 0..N-1); each record gets its input position as \"_kiln_seq\".\n"
            "merge: put per-shard outputs back into input order and remove \"_kiln_seq\".\n"
            "keys:  the position and the top-level fields a decision reads (default id, label).\n"
            "route: send each record to PATTERN with '{}' = the name of the --plan file (a\n"
            "       stage's output over the merged keys) that holds its position.\n"
            "\n"
            "  -n, --shards N        number of shards (1..%d)\n"
            "      --id PATH         field hashed to choose the shard (default id; records\n"
            "                        without it go by input position)\n"
            "      --field F         keys: a field to keep (repeatable; its first path segment)\n"
            "      --keep-seq        merge: keep \"_kiln_seq\" (to merge keys)\n"
            "      --plan FILE       route: a plan file (repeatable)\n"
            "  -o, --output FILE     output (merge, keys: default stdout; split, route: PATTERN)\n"
            "      --stats FILE      records and bytes per shard as JSON\n"
            "      --level N, --plain, -f, -q, -v, -h, --version\n",
            SHARD_MAX);
}

struct opts {
    struct cli_common c;
    uint32_t shards;
    const char *id;
    const char **fields, **plans;
    size_t n_fields, n_plans;
    bool keep_seq;
};

static void
parse_options(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"shards", required_argument, 0, 'n'},
        {"id", required_argument, 0, OPT_ID},
        {"field", required_argument, 0, OPT_FIELD},
        {"keep-seq", no_argument, 0, OPT_KEEP_SEQ},
        {"plan", required_argument, 0, OPT_PLAN},
        {0, 0, 0, 0},
    };
    cli_common_init(&o->c);
    o->id = "id";
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "n:", longopts, NULL)) != -1) {
        if (cli_common_opt(&o->c, opt, optarg, usage))
            continue;
        switch (opt) {
        case 'n':
            o->shards = (uint32_t)cli_parse_int("--shards", optarg, 1, SHARD_MAX);
            break;
        case OPT_ID:
            if (!*optarg)
                die_usage("--id: empty field path");
            o->id = optarg;
            break;
        case OPT_FIELD:
            if (!*optarg || *optarg == '.')
                die_usage("--field: invalid field path '%s'", optarg);
            o->fields = xrealloc(o->fields, (o->n_fields + 1) * sizeof *o->fields);
            o->fields[o->n_fields++] = optarg;
            break;
        case OPT_KEEP_SEQ:
            o->keep_seq = true;
            break;
        case OPT_PLAN:
            o->plans = xrealloc(o->plans, (o->n_plans + 1) * sizeof *o->plans);
            o->plans[o->n_plans++] = optarg;
            break;
        default:
            die_usage("unexpected option");
        }
    }
}

static char *
part_path(const char *pattern, uint32_t i)
{
    const char *at = strstr(pattern, "{}");
    struct buf p = {0};
    buf_append(&p, pattern, (size_t)(at - pattern));
    buf_printf(&p, "%u", i);
    buf_puts(&p, at + 2);
    return buf_detach(&p);
}

#define PART_CHUNK ((size_t)128 << 10) // buffer size when many parts are open at once

// Writers of the many parts split and route write at once: zstd in one thread each, with
// small hand-over buffers. With zstd's job threads (the default writer) every part would hold
// two 8 MiB jobs; the parts are intermediates whose processes run one per core anyway, and
// merge writes the final stream with the default writer (the bytes of an unsharded run).
static struct rec_wopts
part_wopts(const struct opts *o)
{
    return (struct rec_wopts){.level = o->c.level, .plain = o->c.plain, .force = o->c.force,
                              .chunk_bytes = PART_CHUNK, .workers = REC_WORKERS_NONE};
}

static int
cmd_split(struct opts *o, int nfiles, char **files)
{
    if (!o->shards)
        die_usage("split: -n N is required");
    if (!o->c.output || !strstr(o->c.output, "{}"))
        die_usage("split: -o PATTERN with '{}' for the shard number is required");
    struct kerr err;
    struct stats st;
    stats_init(&st, "shard");
    struct rec_wopts wo = part_wopts(o);
    struct rec_writer **w = xcalloc(o->shards, sizeof *w);
    for (uint32_t i = 0; i < o->shards; i++) {
        char *path = part_path(o->c.output, i);
        if (!(w[i] = rec_writer_open(path, &wo, &err)))
            die_kerr(&err);
        free(path);
    }
    const char *stdin_only[] = {"-"};
    const char *const *in = nfiles ? (const char *const *)files : stdin_only;
    size_t n_in = nfiles ? (size_t)nfiles : 1;
    struct json_obj obj;
    json_obj_init(&obj);
    struct buf line = {0}, scratch = {0};
    struct rec_line l;
    uint64_t seq = 0;
    for (size_t f = 0; f < n_in; f++) {
        struct rec_reader *r = rec_reader_open(in[f], &err);
        if (!r)
            die_kerr(&err);
        int rc;
        while ((rc = rec_reader_next_obj(r, &l, &obj, &err)) == 1) {
            uint32_t s = shard_of(&obj, o->id, seq, o->shards, &scratch);
            buf_reset(&line);
            if (shard_seq_tag(l.p, l.n, &obj, seq, &line, &err) != 0)
                die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)l.lineno, err.msg);
            if (rec_writer_write(w[s], line.p, line.len, &err) != 0)
                die_kerr(&err);
            st.records_in++;
            st.bytes_in += l.n + 1;
            seq++;
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    struct buf per = {0};
    struct json_writer jw;
    json_writer_init(&jw, &per);
    jw_arr_begin(&jw);
    for (uint32_t i = 0; i < o->shards; i++) {
        jw_uint(&jw, rec_writer_records(w[i]));
        st.records_out += rec_writer_records(w[i]);
        st.bytes_out += rec_writer_bytes(w[i]);
        if (rec_writer_close(w[i], &err) != 0)
            die_kerr(&err);
    }
    jw_arr_end(&jw);
    stats_u64(&st, "shards", o->shards);
    stats_raw(&st, "records_per_shard", per.p, per.len);
    if (stats_write(&st, o->c.stats, &err) != 0)
        die_kerr(&err);
    stats_free(&st);
    json_obj_free(&obj);
    buf_free(&line);
    buf_free(&scratch);
    buf_free(&per);
    free(w);
    return 0;
}

// One input of the merge: its reader and the current line with the tag removed.
struct part {
    struct rec_reader *r;
    bool live;
    uint64_t seq, lineno;
    struct buf line;
};

static void
part_advance(struct part *p, struct json_obj *scratch, bool keep)
{
    struct kerr err;
    struct rec_line l;
    int rc = rec_reader_next(p->r, &l, &err);
    if (rc < 0)
        die_kerr(&err);
    if (rc == 0) {
        p->live = false;
        return;
    }
    uint64_t prev = p->seq;
    buf_reset(&p->line);
    if (shard_seq_strip(l.p, l.n, &p->seq, &p->line, scratch, &err) != 0)
        die("%s:%llu: %s", rec_reader_name(p->r), (unsigned long long)l.lineno, err.msg);
    if (keep) {
        buf_reset(&p->line);
        buf_append(&p->line, l.p, l.n);
    }
    if (p->lineno && p->seq < prev)
        die("%s:%llu: \"%s\" goes down from %llu to %llu (shards keep input order)",
            rec_reader_name(p->r), (unsigned long long)l.lineno, SHARD_SEQ_KEY,
            (unsigned long long)prev, (unsigned long long)p->seq);
    p->lineno = l.lineno;
}

static int
cmd_merge(struct opts *o, int nfiles, char **files)
{
    if (nfiles < 1)
        die_usage("merge: no PART files given");
    struct kerr err;
    struct stats st;
    stats_init(&st, "shard");
    struct part *p = xcalloc((size_t)nfiles, sizeof *p);
    struct json_obj scratch;
    json_obj_init(&scratch);
    for (int i = 0; i < nfiles; i++) {
        if (!(p[i].r = rec_reader_open(files[i], &err)))
            die_kerr(&err);
        rec_reader_set_chunk(p[i].r, PART_CHUNK); // many open at once
        p[i].live = true;
        part_advance(&p[i], &scratch, o->keep_seq);
    }
    struct rec_wopts wo = {.level = o->c.level, .plain = o->c.plain, .force = o->c.force};
    struct rec_writer *w = rec_writer_open(o->c.output, &wo, &err);
    if (!w)
        die_kerr(&err);
    // A linear scan over the parts: N is small (shards), and it keeps ties in PART order.
    for (;;) {
        int best = -1;
        for (int i = 0; i < nfiles; i++)
            if (p[i].live && (best < 0 || p[i].seq < p[best].seq))
                best = i;
        if (best < 0)
            break;
        if (rec_writer_write(w, p[best].line.p, p[best].line.len, &err) != 0)
            die_kerr(&err);
        st.records_in++;
        part_advance(&p[best], &scratch, o->keep_seq);
    }
    st.records_out = rec_writer_records(w);
    st.bytes_out = rec_writer_bytes(w);
    if (rec_writer_close(w, &err) != 0)
        die_kerr(&err);
    stats_u64(&st, "parts", (uint64_t)nfiles);
    if (stats_write(&st, o->c.stats, &err) != 0)
        die_kerr(&err);
    for (int i = 0; i < nfiles; i++) {
        rec_reader_close(p[i].r);
        buf_free(&p[i].line);
    }
    free(p);
    json_obj_free(&scratch);
    stats_free(&st);
    return 0;
}

// The first segment of a dotted path ("metadata" for "metadata.lang").
static bool
same_segment(const char *key, size_t key_len, const char *path)
{
    size_t n = strcspn(path, ".");
    return n == key_len && memcmp(key, path, n) == 0;
}

static int
cmd_keys(struct opts *o, int nfiles, char **files)
{
    static const char *defaults[] = {"id", "label"};
    const char **fields = o->n_fields ? o->fields : defaults;
    size_t nf = o->n_fields ? o->n_fields : 2;
    if (nfiles > 1)
        die_usage("keys: one PART at a time");
    struct kerr err;
    struct rec_reader *r = rec_reader_open(nfiles ? files[0] : "-", &err);
    struct rec_wopts wo = {.level = o->c.level, .plain = o->c.plain, .force = o->c.force};
    struct rec_writer *w = r ? rec_writer_open(o->c.output, &wo, &err) : NULL;
    if (!w)
        die_kerr(&err);
    struct json_obj obj;
    json_obj_init(&obj);
    struct buf line = {0};
    struct rec_line l;
    int rc;
    while ((rc = rec_reader_next_obj(r, &l, &obj, &err)) == 1) {
        uint64_t seq;
        if (shard_seq_get(&obj, &seq, &err) != 0)
            die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)l.lineno, err.msg);
        buf_reset(&line);
        buf_printf(&line, "{\"" SHARD_SEQ_KEY "\":%llu", (unsigned long long)seq);
        for (size_t i = 0; i < obj.n; i++) { // members in record order, as the stage sees them
            const struct json_field *f = &obj.fields[i];
            bool want = false;
            for (size_t k = 0; k < nf && !want; k++)
                want = !f->key_escaped && same_segment(f->key, f->key_len, fields[k]);
            if (!want)
                continue;
            buf_puts(&line, ",\"");
            buf_append(&line, f->key, f->key_len);
            buf_puts(&line, "\":");
            buf_append(&line, f->val.raw, f->val.raw_len);
        }
        buf_putc(&line, '}');
        if (rec_writer_write(w, line.p, line.len, &err) != 0)
            die_kerr(&err);
    }
    if (rc < 0 || rec_writer_close(w, &err) != 0)
        die_kerr(&err);
    rec_reader_close(r);
    json_obj_free(&obj);
    buf_free(&line);
    return 0;
}

// The name a plan file gives its output: its base name without .jsonl.zst / .jsonl.
static char *
plan_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    static const char *exts[] = {".jsonl.zst", ".jsonl", ".zst"};
    for (size_t i = 0; i < KILN_ARRAY_LEN(exts); i++) {
        size_t k = strlen(exts[i]);
        if (n > k && !strcmp(b + n - k, exts[i])) {
            n -= k;
            break;
        }
    }
    return xstrndup(b, n);
}

static int
cmd_route(struct opts *o, int nfiles, char **files)
{
    if (!o->n_plans)
        die_usage("route: no --plan files given");
    if (!o->c.output || !strstr(o->c.output, "{}"))
        die_usage("route: -o PATTERN with '{}' for the plan's name is required");
    if (nfiles > 1)
        die_usage("route: one PART at a time");
    struct kerr err;
    struct stats st;
    stats_init(&st, "shard");
    struct rec_wopts wo = part_wopts(o);
    size_t np = o->n_plans;
    struct part *p = xcalloc(np, sizeof *p);
    struct rec_writer **w = xcalloc(np, sizeof *w);
    struct json_obj scratch, obj;
    json_obj_init(&scratch);
    json_obj_init(&obj);
    for (size_t i = 0; i < np; i++) {
        if (!(p[i].r = rec_reader_open(o->plans[i], &err)))
            die_kerr(&err);
        rec_reader_set_chunk(p[i].r, PART_CHUNK); // many open at once
        p[i].live = true;
        part_advance(&p[i], &scratch, false);
        char *name = plan_name(o->plans[i]);
        const char *at = strstr(o->c.output, "{}");
        struct buf path = {0};
        buf_append(&path, o->c.output, (size_t)(at - o->c.output));
        buf_puts(&path, name);
        buf_puts(&path, at + 2);
        if (!(w[i] = rec_writer_open(path.p, &wo, &err)))
            die_kerr(&err);
        buf_free(&path);
        free(name);
    }
    struct rec_reader *r = rec_reader_open(nfiles ? files[0] : "-", &err);
    if (!r)
        die_kerr(&err);
    struct rec_line l;
    int rc;
    uint64_t dropped = 0;
    while ((rc = rec_reader_next_obj(r, &l, &obj, &err)) == 1) {
        uint64_t seq;
        if (shard_seq_get(&obj, &seq, &err) != 0)
            die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)l.lineno, err.msg);
        st.records_in++;
        bool sent = false;
        for (size_t i = 0; i < np; i++) {
            while (p[i].live && p[i].seq < seq)
                part_advance(&p[i], &scratch, false);
            if (!p[i].live || p[i].seq != seq)
                continue;
            if (sent)
                die("%s: position %llu is in two plan files", o->plans[i],
                    (unsigned long long)seq);
            if (rec_writer_write(w[i], l.p, l.n, &err) != 0)
                die_kerr(&err);
            sent = true;
            part_advance(&p[i], &scratch, false);
            if (p[i].live && p[i].seq == seq)
                die("%s: position %llu appears twice (copies cannot be routed)", o->plans[i],
                    (unsigned long long)seq);
        }
        dropped += !sent;
    }
    if (rc < 0)
        die_kerr(&err);
    rec_reader_close(r);
    for (size_t i = 0; i < np; i++) {
        st.records_out += rec_writer_records(w[i]);
        if (rec_writer_close(w[i], &err) != 0)
            die_kerr(&err);
        rec_reader_close(p[i].r);
        buf_free(&p[i].line);
    }
    stats_u64(&st, "dropped", dropped);
    if (stats_write(&st, o->c.stats, &err) != 0)
        die_kerr(&err);
    stats_free(&st);
    json_obj_free(&scratch);
    json_obj_free(&obj);
    free(p);
    free(w);
    return 0;
}

int
main(int argc, char **argv)
{
    cli_init(argv[0]);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("shard (kiln) %s\n", KILN_VERSION);
        return 0;
    }
    const char *cmd = argv[1];
    struct opts o = {0};
    parse_options(argc - 1, argv + 1, &o);
    int nfiles = argc - 1 - optind;
    char **files = argv + 1 + optind;
    int rc;
    if (!strcmp(cmd, "split"))
        rc = cmd_split(&o, nfiles, files);
    else if (!strcmp(cmd, "merge"))
        rc = cmd_merge(&o, nfiles, files);
    else if (!strcmp(cmd, "keys"))
        rc = cmd_keys(&o, nfiles, files);
    else if (!strcmp(cmd, "route"))
        rc = cmd_route(&o, nfiles, files);
    else
        die_usage("unknown command '%s' (split, merge, keys, route)", cmd);
    free(o.fields);
    free(o.plans);
    cli_finish_stdout();
    return rc;
}

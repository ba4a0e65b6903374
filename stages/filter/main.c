// SPDX-License-Identifier: MIT
// filter: drops or rewrites records by rules and says why. Options and the record loop; the
// steps live in rules.c (user rules), heur.c (built-in sets), pii.c (redaction) and
// transform.c (rewrites). See filter.1.
//
// Each record runs through the steps in order: transforms and redaction rewrite the text
// field, rules and sets test it (c4 also rewrites). The first failing rule or set drops the
// record (its name is the reason); --annotate keeps every record and adds what was measured
// under metadata.filter instead. Kept records are written as read unless their text changed,
// in which case only that field is re-serialized (every other field passes byte for byte).
#include "cli.h"
#include "heur.h"
#include "json.h"
#include "pii.h"
#include "rec.h"
#include "regex.h"
#include "rules.h"
#include "transform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_SET = CLI_OPT_FIRST_STAGE,
    OPT_REDACT,
    OPT_FIELD,
    OPT_ANNOTATE,
    OPT_REJECTS,
    OPT_NO_JIT,
};

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: filter [OPTIONS] [FILE...]\n"
            "Drop or rewrite records by quality heuristics, rules and PII redaction.\n"
            "\n"
            "  -r, --rules FILE        rules file (format in filter(1))\n"
            "  -b, --builtin LIST      built-in rule sets: gopher-quality, gopher-repetition,\n"
            "                          c4, fineweb, default (= gopher-quality,gopher-repetition)\n"
            "      --set SET.PARAM=V   change a threshold, e.g. gopher-quality.min_words=20\n"
            "      --redact LIST       replace PII: email,ipv4,ipv6,phone,card,url or all\n"
            "  -t, --transform LIST    rewrite text: email,html,nfkc,whitespace\n"
            "      --field NAME        the text field (default: text)\n"
            "      --annotate          keep every record; add measurements under metadata.filter\n"
            "      --rejects FILE      write dropped records there with reason and measured\n"
            "      --no-jit            compile regexes without PCRE2 JIT (for benchmarks)\n"
            "  -o, --output FILE       output (default stdout)\n"
            "      --stats FILE        counts per rule, redactions, records and bytes\n"
            "      --level N, --plain  zstd level (default 3) or uncompressed output\n"
            "  -f, --force             compressed output to a terminal\n"
            "  -q, -v, --progress, --no-progress, -h, --version\n"
            "\n"
            "Steps run in this order: --transform, the rules file, --builtin, --redact.\n"
            "With none of them: --builtin default --redact all.\n");
}

struct config {
    struct cli_common c;
    const char *rules_file, *builtin, *redact, *transforms, *field, *rejects;
    const char **sets;
    size_t n_sets;
    bool annotate, no_jit;
    char **inputs;
    int n_inputs;
};

// Counters for --stats, keyed by name in order of first use.
struct counter {
    char *name;
    uint64_t n;
};
struct counters {
    struct counter *v;
    size_t n, cap;
};

static void
counter_add(struct counters *cs, const char *name, uint64_t k)
{
    for (size_t i = 0; i < cs->n; i++)
        if (strcmp(cs->v[i].name, name) == 0) {
            cs->v[i].n += k;
            return;
        }
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 16;
        cs->v = xrealloc(cs->v, cs->cap * sizeof *cs->v);
    }
    cs->v[cs->n++] = (struct counter){xstrdup(name), k};
}

static void
counters_json(const struct counters *cs, struct buf *out)
{
    struct json_writer w;
    json_writer_init(&w, out);
    jw_obj_begin(&w);
    for (size_t i = 0; i < cs->n; i++) {
        jw_key(&w, cs->v[i].name);
        jw_uint(&w, cs->v[i].n);
    }
    jw_obj_end(&w);
}

static void
counters_free(struct counters *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        free(cs->v[i].name);
    free(cs->v);
}

// Everything the record loop needs.
struct run {
    const struct config *cfg;
    struct rules rules;
    struct heur_ctx hx;
    struct rules_scratch rx;
    struct buf text[2], out, ann, raw, meta; // text[]: alternating homes of the current text
    struct buf reasons;                      // --annotate: JSON array of failing rules
    struct json_obj obj;
    struct rec_writer *w, *rej;
    struct counters dropped, transformed;
    uint64_t redacted[PII_NTYPES];
    uint64_t rewritten, kept, records, bytes;
};

static void
write_value(struct json_writer *w, const struct rule_value *v)
{
    if (v->missing)
        jw_null(w);
    else if (v->is_num)
        jw_double(w, v->num);
    else if (v->str)
        jw_strn(w, v->str, v->str_len);
    else
        jw_null(w);
}

// Rebuilds the metadata object with "filter" set to ann (raw JSON); into r->meta.
static int
metadata_with(struct run *r, const char *ann, size_t ann_len, struct kerr *err)
{
    r->meta.len = 0;
    const struct json_field *mf = json_obj_get(&r->obj, "metadata");
    struct json_writer w;
    json_writer_init(&w, &r->meta);
    jw_obj_begin(&w);
    if (mf) {
        if (mf->val.type != JSON_OBJECT)
            return kerr_set(err, "metadata is not an object (cannot add metadata.filter)");
        struct json_iter it;
        json_iter_init(&it, &mf->val);
        while (json_iter_next(&it)) {
            struct buf key = {0};
            json_unescape(it.key, it.key_len, &key);
            bool skip = key.len == 6 && memcmp(key.p, "filter", 6) == 0;
            if (!skip) {
                jw_key(&w, key.p ? key.p : "");
                jw_raw(&w, it.val.raw, it.val.raw_len);
            }
            buf_free(&key);
        }
    }
    jw_key(&w, "filter");
    jw_raw(&w, ann, ann_len);
    jw_obj_end(&w);
    return 0;
}

// The record's current text: a span of the input line (no escapes) or one of r->text[].
struct cur_text {
    const char *p;
    size_t n;
    int home; // index into r->text, or -1 for the input line
};

// The buffer a step writes its output to (never the one holding the current text).
static struct buf *
spare(struct run *r, const struct cur_text *t)
{
    struct buf *b = &r->text[t->home == 0 ? 1 : 0];
    b->len = 0;
    return b;
}

// Makes the spare buffer the current text after a step changed it.
static void
take(struct run *r, struct cur_text *t, struct buf *b)
{
    t->home = (int)(b - r->text);
    buf_reserve(b, 1);
    t->p = b->p;
    t->n = b->len;
    r->hx.words_text = NULL; // the word cache keys on the buffer address
}

// Processes one parsed record (line of input `name`). Returns 0, or -1 with err.
static int
process(struct run *r, const char *name, const struct rec_line *line, struct kerr *err)
{
    const struct config *cfg = r->cfg;
    const struct json_field *tf = json_obj_get(&r->obj, cfg->field);
    bool has_text = tf && tf->val.type == JSON_STRING;
    struct cur_text cur = {"", 0, -1};
    if (has_text && !tf->val.escaped) {
        cur.p = tf->val.raw + 1;
        cur.n = tf->val.raw_len - 2;
    } else if (has_text) {
        struct buf *b = spare(r, &cur);
        json_str(&tf->val, b);
        take(r, &cur, b);
    }
    r->hx.words_text = NULL;
    bool changed = false;
    const char *reason = NULL;
    struct rule_value rv = {0};
    bool have_rv = false;

    // --annotate: measurements go to r->ann (an object), failing names to r->reasons.
    const bool ann = cfg->annotate;
    struct json_writer aw;
    r->ann.len = 0;
    json_writer_init(&aw, &r->ann);
    jw_obj_begin(&aw);
    r->reasons.len = 0;
    buf_putc(&r->reasons, '[');
    size_t n_reasons = 0;
    uint64_t rec_redacted[PII_NTYPES] = {0};

    for (size_t i = 0; i < r->rules.n; i++) {
        const struct step *st = &r->rules.steps[i];
        switch (st->kind) {
        case STEP_TRANSFORM: {
            if (!has_text)
                break;
            struct buf *b = spare(r, &cur);
            int rc = transform_apply(st->tr, cur.p, cur.n, b, err);
            if (rc < 0)
                return kerr_prefix(err, "%s:%llu: transform %s", name,
                                   (unsigned long long)line->lineno, st->name);
            if (rc) {
                take(r, &cur, b);
                changed = true;
                counter_add(&r->transformed, st->name, 1);
            }
            break;
        }
        case STEP_REDACT: {
            if (!has_text)
                break;
            struct buf *b = spare(r, &cur);
            if (pii_redact(cur.p, cur.n, st->pii_mask, b, rec_redacted)) {
                take(r, &cur, b);
                changed = true;
            }
            break;
        }
        case STEP_SET: {
            struct heur_result hr;
            struct buf *b = spare(r, &cur);
            heur_run(&r->hx, st->set, st->params, cur.p, cur.n, cfg->annotate, &hr, b);
            for (size_t k = 0; ann && k < hr.nm; k++) {
                jw_key(&aw, hr.m[k].name);
                jw_double(&aw, hr.m[k].v);
            }
            if (hr.reason) {
                if (!reason) {
                    reason = hr.reason;
                    rv = (struct rule_value){.is_num = true, .num = hr.value};
                    have_rv = true;
                }
                if (ann && n_reasons++)
                    buf_putc(&r->reasons, ',');
                if (ann)
                    json_write_str(&r->reasons, hr.reason, strlen(hr.reason));
            } else if (hr.rewritten && has_text) {
                take(r, &cur, b);
                changed = true;
            }
            break;
        }
        case STEP_RULE: {
            struct rule_value v;
            int rc = rules_eval(st, &r->obj, cfg->field, has_text ? cur.p : NULL, cur.n, &r->rx,
                                &v, err);
            if (rc < 0)
                return kerr_prefix(err, "%s:%llu: rule %s", name,
                                   (unsigned long long)line->lineno, st->name);
            if (ann) {
                jw_key(&aw, st->name);
                write_value(&aw, &v);
            }
            if (rc == 0) {
                if (!reason) {
                    reason = st->name;
                    rv = v;
                    have_rv = true;
                }
                if (ann && n_reasons++)
                    buf_putc(&r->reasons, ',');
                if (ann)
                    json_write_str(&r->reasons, st->name, strlen(st->name));
            }
            break;
        }
        }
        if (reason && !ann)
            break;
    }
    for (int t = 0; t < PII_NTYPES; t++) {
        r->redacted[t] += rec_redacted[t];
        if (ann && rec_redacted[t]) {
            char key[32];
            snprintf(key, sizeof key, "pii_%s", pii_names[t]);
            jw_key(&aw, key);
            jw_uint(&aw, rec_redacted[t]);
        }
    }
    if (ann) {
        buf_putc(&r->reasons, ']');
        jw_key(&aw, "reasons");
        jw_raw(&aw, r->reasons.p, r->reasons.len);
        jw_obj_end(&aw);
    }

    if (reason)
        counter_add(&r->dropped, reason, 1);
    if (reason && !ann) {
        if (r->rej) {
            struct buf val = {0};
            struct json_writer vw;
            json_writer_init(&vw, &val);
            if (have_rv)
                write_value(&vw, &rv);
            else
                jw_null(&vw);
            struct buf rs = {0};
            json_write_str(&rs, reason, strlen(reason));
            struct json_edit edits[2] = {{"reason", rs.p, rs.len}, {"measured", val.p, val.len}};
            r->out.len = 0;
            json_obj_rewrite(&r->obj, edits, 2, &r->out);
            int rc = rec_writer_write(r->rej, r->out.p, r->out.len, err);
            buf_free(&val);
            buf_free(&rs);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    // Kept (or annotated).
    struct json_edit edits[2];
    size_t ne = 0;
    if (changed) {
        r->raw.len = 0;
        json_write_str(&r->raw, cur.p, cur.n);
        edits[ne++] = (struct json_edit){cfg->field, r->raw.p, r->raw.len};
        r->rewritten++;
    }
    if (ann) {
        if (metadata_with(r, r->ann.p, r->ann.len, err) < 0)
            return kerr_prefix(err, "%s:%llu", name, (unsigned long long)line->lineno);
        edits[ne++] = (struct json_edit){"metadata", r->meta.p, r->meta.len};
    }
    r->kept++;
    if (ne == 0)
        return rec_writer_write(r->w, line->p, line->n, err);
    r->out.len = 0;
    json_obj_rewrite(&r->obj, edits, ne, &r->out);
    return rec_writer_write(r->w, r->out.p, r->out.len, err);
}

static noreturn void
die_rules(const struct kerr *err)
{
    cli_tmp_remove_all();
    fprintf(stderr, "%s: %s\n", cli_prog, err->msg);
    exit(2);
}

static void
build_rules(struct run *r, const struct config *cfg)
{
    struct kerr err;
    rules_init(&r->rules);
    bool any = cfg->rules_file || cfg->builtin || cfg->redact || cfg->transforms;
    if (cfg->transforms && rules_add_transforms(&r->rules, cfg->transforms, &err) < 0)
        die_rules(&err);
    if (cfg->rules_file) {
        struct buf text = {0};
        if (read_file(cfg->rules_file, 16u << 20, &text, &err) < 0)
            die_kerr(&err);
        if (rules_parse(&r->rules, cfg->rules_file, text.p ? text.p : "", text.len, &err) < 0)
            die_rules(&err);
        buf_free(&text);
    }
    if ((cfg->builtin || !any) && rules_add_sets(&r->rules, cfg->builtin ? cfg->builtin : "default",
                                                 &err) < 0)
        die_rules(&err);
    if ((cfg->redact || !any) && rules_add_redact(&r->rules, cfg->redact ? cfg->redact : "all",
                                                  &err) < 0)
        die_rules(&err);
    for (size_t i = 0; i < cfg->n_sets; i++) {
        if (rules_set_option(&r->rules, cfg->sets[i], &err) < 0)
            die_rules(&err);
        bool used = false;
        size_t k = strcspn(cfg->sets[i], ".");
        for (size_t j = 0; j < r->rules.n && !used; j++)
            used = r->rules.steps[j].kind == STEP_SET &&
                   strlen(r->rules.steps[j].name) == k &&
                   strncmp(r->rules.steps[j].name, cfg->sets[i], k) == 0;
        if (!used)
            warnx_("--set %s: rule set %.*s is not used", cfg->sets[i], (int)k, cfg->sets[i]);
    }
    rules_finish(&r->rules);
}

static void
parse_args(struct config *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"rules", required_argument, 0, 'r'},
        {"builtin", required_argument, 0, 'b'},
        {"transform", required_argument, 0, 't'},
        {"set", required_argument, 0, OPT_SET},
        {"redact", required_argument, 0, OPT_REDACT},
        {"field", required_argument, 0, OPT_FIELD},
        {"annotate", no_argument, 0, OPT_ANNOTATE},
        {"rejects", required_argument, 0, OPT_REJECTS},
        {"no-jit", no_argument, 0, OPT_NO_JIT},
        {0, 0, 0, 0},
    };
    memset(cfg, 0, sizeof *cfg);
    cli_common_init(&cfg->c);
    cfg->field = "text";
    cfg->sets = xmalloc((size_t)argc * sizeof *cfg->sets);
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "r:b:t:", longopts, NULL)) != -1) {
        if (cli_common_opt(&cfg->c, opt, optarg, usage))
            continue;
        switch (opt) {
        case 'r':
            cfg->rules_file = optarg;
            break;
        case 'b':
            cfg->builtin = optarg;
            break;
        case 't':
            cfg->transforms = optarg;
            break;
        case OPT_SET:
            cfg->sets[cfg->n_sets++] = optarg;
            break;
        case OPT_REDACT:
            cfg->redact = optarg;
            break;
        case OPT_FIELD:
            if (!*optarg)
                die_usage("--field: empty field name");
            cfg->field = optarg;
            break;
        case OPT_ANNOTATE:
            cfg->annotate = true;
            break;
        case OPT_REJECTS:
            cfg->rejects = optarg;
            break;
        case OPT_NO_JIT:
            cfg->no_jit = true;
            break;
        default:
            die_usage("unknown option");
        }
    }
    cfg->inputs = argv + optind;
    cfg->n_inputs = argc - optind;
    if (cfg->annotate && cfg->rejects)
        die_usage("--annotate keeps every record: --rejects would stay empty");
}

int
main(int argc, char **argv)
{
    cli_init("filter");
    struct config cfg;
    parse_args(&cfg, argc, argv);
    if (cfg.no_jit)
        regex_set_jit(false);

    struct run r;
    memset(&r, 0, sizeof r);
    r.cfg = &cfg;
    build_rules(&r, &cfg); // every rules error is reported before any record is read
    heur_ctx_init(&r.hx);
    rules_scratch_init(&r.rx);
    json_obj_init(&r.obj);

    struct stats st;
    stats_init(&st, "filter");
    struct kerr err;
    struct rec_wopts wo = {.level = cfg.c.level, .plain = cfg.c.plain, .force = cfg.c.force};
    r.w = rec_writer_open(cfg.c.output, &wo, &err);
    if (!r.w)
        die_kerr(&err);
    if (cfg.rejects) {
        r.rej = rec_writer_open(cfg.rejects, &wo, &err);
        if (!r.rej)
            die_kerr(&err);
    }

    static char *stdin_only[] = {"-"};
    char **inputs = cfg.n_inputs ? cfg.inputs : stdin_only;
    int n_inputs = cfg.n_inputs ? cfg.n_inputs : 1;
    struct progress pg;
    for (int f = 0; f < n_inputs; f++) {
        struct rec_reader *rd = rec_reader_open(inputs[f], &err);
        if (!rd)
            die_kerr(&err);
        progress_init(&pg, &cfg.c, "records", rec_reader_size(rd));
        uint64_t first = r.records;
        struct rec_line line;
        int rc;
        while ((rc = rec_reader_next_obj(rd, &line, &r.obj, &err)) > 0) {
            r.records++;
            r.bytes += line.n + 1;
            if (process(&r, rec_reader_name(rd), &line, &err) < 0)
                die_kerr(&err);
            progress_update(&pg, r.records - first, rec_reader_bytes_read(rd));
        }
        if (rc < 0)
            die_kerr(&err);
        progress_end(&pg);
        rec_reader_close(rd);
    }

    st.records_in = r.records;
    st.bytes_in = r.bytes;
    st.records_out = rec_writer_records(r.w);
    st.bytes_out = rec_writer_bytes(r.w);
    if (r.rej && rec_writer_close(r.rej, &err) < 0)
        die_kerr(&err);
    if (rec_writer_close(r.w, &err) < 0)
        die_kerr(&err);

    struct buf j = {0};
    stats_u64(&st, "records_dropped", cfg.annotate ? 0 : r.records - r.kept);
    stats_u64(&st, "records_rewritten", r.rewritten);
    counters_json(&r.dropped, &j);
    stats_raw(&st, cfg.annotate ? "would_drop" : "dropped", j.p, j.len);
    j.len = 0;
    struct json_writer w;
    json_writer_init(&w, &j);
    jw_obj_begin(&w);
    for (int t = 0; t < PII_NTYPES; t++) {
        jw_key(&w, pii_names[t]);
        jw_uint(&w, r.redacted[t]);
    }
    jw_obj_end(&w);
    stats_raw(&st, "redacted", j.p, j.len);
    j.len = 0;
    counters_json(&r.transformed, &j);
    stats_raw(&st, "transformed", j.p, j.len);
    stats_str(&st, "regex_jit", cfg.no_jit ? "off" : "on");
    buf_free(&j);
    if (stats_write(&st, cfg.c.stats, &err) < 0)
        die_kerr(&err);
    if (cli_verbosity >= 2)
        info("%llu records in, %llu out", (unsigned long long)r.records,
             (unsigned long long)r.kept);

    stats_free(&st);
    counters_free(&r.dropped);
    counters_free(&r.transformed);
    json_obj_free(&r.obj);
    rules_scratch_free(&r.rx);
    heur_ctx_free(&r.hx);
    rules_free(&r.rules);
    buf_free(&r.text[0]);
    buf_free(&r.text[1]);
    buf_free(&r.out);
    buf_free(&r.ann);
    buf_free(&r.raw);
    buf_free(&r.meta);
    buf_free(&r.reasons);
    free(cfg.sets);
    cli_finish_stdout();
    return 0;
}

// SPDX-License-Identifier: MIT
// balance: rebalances classes, mixes sources, mixes in replay data, and cuts deterministic
// stratified splits and nested subsamples of a record stream.
//
// Pipeline, in this order (each step optional):
//   1. resampling of groups — classes (--strategy undersample|oversample|target on --field,
//      default "label") or sources (--weights / --temperature on "source"); who is kept or
//      copied is decided by the rank of hash(seed, id) inside the group, so it is a
//      deterministic function of the input set and the seed; a copy's id gets "#copyN";
//   2. --sample N: a stratified subsample by class; per-class quotas come from a
//      house-monotone rule and the lowest hashes are kept, so the sample for N is contained
//      in the sample for any larger N (same seed and input);
//   3. --split NAME=F,...: inside each class, records ranked by hash are cut into consecutive
//      runs whose sizes are the largest-remainder apportionment of the class over the
//      fractions — each split holds within one record of its share of every class;
//   4. --replay FILE:F: records of an earlier stream mixed into the output (the train split
//      when splitting) so that they make up F of it (within one record), spread evenly.
// Records keep their input order inside each output. Fields pass through byte for byte (only
// a copy's id is rewritten).
//
// Memory and passes. Plain pass-through (only --missing / --stats) is one pass holding nothing.
// Every other mode reads the input twice: pass 1 keeps 16 bytes per record (id hash, group,
// class) plus 13 bytes per output unit (record or copy), pass 2 re-reads and writes. Texts are
// never held. Standard input is spooled to a temporary file for the second pass. --replay
// keeps 12 bytes per replay record and reads that file twice too.
#include "cli.h"
#include "hash.h"
#include "json.h"
#include "plan.h"
#include "rec.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DROP 0xFF
#define NONE UINT32_MAX
#define MAX_SPLITS 8

enum { STRAT_NONE, STRAT_UNDER, STRAT_OVER, STRAT_TARGET };
enum { MISSING_FAIL, MISSING_DROP, MISSING_KEEP };

enum {
    OPT_FIELD = CLI_OPT_FIRST_STAGE,
    OPT_MISSING,
    OPT_STRATEGY,
    OPT_SAMPLING,
    OPT_WEIGHTS,
    OPT_TEMPERATURE,
    OPT_CAP,
    OPT_MIX_TOTAL,
    OPT_REPLAY,
    OPT_SPLIT,
    OPT_SPLIT_DIR,
    OPT_SAMPLE,
    OPT_REJECTS,
};

// Interned strings (class or source names) with an open-addressing index.
struct names {
    char **s;
    uint64_t *h;
    size_t n, cap;
    uint32_t *tab; // NONE = empty
    size_t tcap;
};

struct split {
    char name[32];
    double frac;
};

struct kv {
    char *key;
    double value;
    bool mult; // "xF": a multiplier of the original count
};

struct balance {
    struct cli_common c;
    const char *field;
    int missing;
    int strategy;
    const char *sampling; // auto|majority|... or a float or CLASS=N list
    struct kv *weights;
    size_t n_weights;
    double temperature;
    uint64_t mix_cap, mix_total;
    bool mixing;
    const char *replay_file;
    double replay_frac;
    struct split splits[MAX_SPLITS];
    size_t n_splits;
    const char *split_dir;
    uint64_t sample;
    bool sample_set;
    const char *rejects_path;
    struct rec_writer *rejects;
    uint64_t rejected;

    char **inputs;
    size_t n_inputs;
    char *spool; // stdin copy for the second pass
    int spool_slot;

    // pass 1 (per record) and plan (per unit)
    uint64_t *rhash;
    uint32_t *rgroup, *rclass, *copies;
    size_t n, cap;
    uint64_t *uhash;
    uint32_t *uclass;
    uint8_t *dest;
    size_t units;
    struct names classes, groups;
    uint64_t *group_in, *group_target; // sources when mixing
    uint64_t missing_dropped, missing_kept;

    // replay
    uint64_t *phash;
    uint32_t *pcopies;
    size_t np, pcap;
    uint64_t replay_units;
    int replay_dest;

    struct stats st;
    struct progress prog;
};

static void
usage(FILE *f)
{
    fprintf(f, "Usage: balance [OPTIONS] [FILE...]\n"
               "Rebalance classes, mix sources, add replay data, cut stratified splits.\n\n"
               "  --field PATH            class field (default label; dotted paths allowed)\n"
               "  --missing fail|drop|keep  records without the field (default fail)\n"
               "  --strategy undersample|oversample|target|none\n"
               "  --sampling SPEC         auto, majority, minority, not-minority, not-majority,\n"
               "                          all, a ratio R (two classes), or CLASS=N,... targets\n"
               "                          (target also takes CLASS=xF multipliers)\n"
               "  --weights SRC=W,...     mix sources by weight (field source)\n"
               "  --temperature T         mix sources with rate ~ min(n, cap)^(1/T)\n"
               "  --cap K                 temperature cap in records (default none)\n"
               "  --mix-total N           records after mixing (default: the input's count)\n"
               "  --replay FILE:F         mix in records of FILE as fraction F of the output\n"
               "  --sample N              stratified subsample (nested across N for one seed)\n"
               "  --split NAME=F,...      splits (train, valid, validation, dev, test, eval,\n"
               "                          holdout); fractions sum to 1\n"
               "  --split-dir DIR         write DIR/NAME.jsonl.zst; or -o PREFIX writes\n"
               "                          PREFIX.NAME.jsonl.zst ('{split}' in PREFIX is replaced)\n"
               "  --rejects FILE          write removed records there with a \"reason\"\n"
            "  --seed N                hash seed (default 0)\n"
               "Common: -o FILE, --stats FILE, --level N, --plain, -f, -q, -v, --progress, -h,\n"
               "        --version\n");
}

// ---- names ----------------------------------------------------------------------------

static uint32_t
names_get(struct names *t, const char *s, size_t len, bool add)
{
    uint64_t h = hash64(s, len);
    if (t->tcap) {
        size_t j = h & (t->tcap - 1);
        for (; t->tab[j] != NONE; j = (j + 1) & (t->tcap - 1)) {
            uint32_t i = t->tab[j];
            if (t->h[i] == h && strlen(t->s[i]) == len && !memcmp(t->s[i], s, len))
                return i;
        }
    }
    if (!add)
        return NONE;
    if (2 * (t->n + 1) > t->tcap) {
        size_t nc = t->tcap ? 2 * t->tcap : 64;
        free(t->tab);
        t->tab = xmalloc(nc * sizeof *t->tab);
        memset(t->tab, 0xFF, nc * sizeof *t->tab);
        t->tcap = nc;
        for (uint32_t i = 0; i < t->n; i++) {
            size_t j = t->h[i] & (nc - 1);
            while (t->tab[j] != NONE)
                j = (j + 1) & (nc - 1);
            t->tab[j] = i;
        }
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->s = xrealloc(t->s, t->cap * sizeof *t->s);
        t->h = xrealloc(t->h, t->cap * sizeof *t->h);
    }
    uint32_t i = (uint32_t)t->n++;
    t->s[i] = xstrndup(s, len);
    t->h[i] = h;
    size_t j = h & (t->tcap - 1);
    while (t->tab[j] != NONE)
        j = (j + 1) & (t->tcap - 1);
    t->tab[j] = i;
    return i;
}

static void
names_free(struct names *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->h);
    free(t->tab);
}

// Indices 0..n-1 in the byte order of the names (for stable reporting and tie-breaking).
static const struct names *names_sort_tab;
static int
names_idx_cmp(const void *a, const void *b)
{
    return strcmp(names_sort_tab->s[*(const uint32_t *)a], names_sort_tab->s[*(const uint32_t *)b]);
}
static uint32_t *
names_sorted(const struct names *t)
{
    uint32_t *o = xmalloc((t->n ? t->n : 1) * sizeof *o);
    for (uint32_t i = 0; i < t->n; i++)
        o[i] = i;
    names_sort_tab = t;
    qsort(o, t->n, sizeof *o, names_idx_cmp);
    return o;
}

// ---- option parsing -------------------------------------------------------------------

static const char *split_names[] = {"train", "valid", "validation", "dev",
                                    "test",  "eval",  "holdout"};

static void
parse_split(struct balance *b, const char *arg)
{
    char *s = xstrdup(arg), *save = NULL;
    double sum = 0;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            die_usage("--split: expected NAME=FRACTION, got '%s'", tok);
        *eq = '\0';
        bool known = false;
        for (size_t i = 0; i < KILN_ARRAY_LEN(split_names); i++)
            known |= !strcmp(tok, split_names[i]);
        if (!known)
            die_usage("--split: unknown split name '%s' (train, valid, validation, dev, test, "
                      "eval, holdout)",
                      tok);
        for (size_t i = 0; i < b->n_splits; i++)
            if (!strcmp(b->splits[i].name, tok))
                die_usage("--split: '%s' given twice", tok);
        if (b->n_splits == MAX_SPLITS)
            die_usage("--split: at most %d splits", MAX_SPLITS);
        double f = cli_parse_double("--split", eq + 1, 0, 1);
        if (!(f > 0))
            die_usage("--split: fraction of '%s' must be > 0", tok);
        snprintf(b->splits[b->n_splits].name, sizeof b->splits[0].name, "%s", tok);
        b->splits[b->n_splits++].frac = f;
        sum += f;
    }
    free(s);
    if (!b->n_splits)
        die_usage("--split: no splits given");
    if (fabs(sum - 1) > 1e-9)
        die_usage("--split: fractions sum to %.10g, not 1", sum);
}

// CLASS=N / CLASS=xF / CLASS=W lists.
static void
parse_kv(const char *opt, const char *arg, struct kv **out, size_t *n, bool allow_mult)
{
    char *s = xstrdup(arg), *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strrchr(tok, '=');
        if (!eq || eq == tok || !eq[1])
            die_usage("%s: expected NAME=VALUE, got '%s'", opt, tok);
        *eq = '\0';
        for (size_t i = 0; i < *n; i++)
            if (!strcmp((*out)[i].key, tok))
                die_usage("%s: '%s' given twice", opt, tok);
        struct kv v = {.key = xstrdup(tok)};
        const char *num = eq + 1;
        if (allow_mult && num[0] == 'x') {
            v.mult = true;
            num++;
        }
        v.value = cli_parse_double(opt, num, 0, 1e15);
        *out = xrealloc(*out, (*n + 1) * sizeof **out);
        (*out)[(*n)++] = v;
    }
    free(s);
    if (!*n)
        die_usage("%s: empty list", opt);
}

// ---- pass 1 ---------------------------------------------------------------------------

// The class (or source) value of a record as a string: unescaped for strings, raw JSON for
// other types. Returns false when absent or null.
static bool
field_value(const struct json_obj *o, const char *path, struct buf *out)
{
    struct json_val v;
    if (!json_obj_path(o, path, &v) || v.type == JSON_NULL)
        return false;
    buf_reset(out);
    if (v.type == JSON_STRING)
        json_str(&v, out);
    else
        buf_append(out, v.raw, v.raw_len);
    return true;
}

static uint64_t
id_hash(const struct json_obj *o, uint64_t seed, struct buf *tmp, const char *name,
        uint64_t lineno)
{
    const struct json_field *f = json_obj_get(o, "id");
    if (!f || f->val.type != JSON_STRING)
        die("%s:%llu: record has no string \"id\" (balance hashes ids)", name,
            (unsigned long long)lineno);
    buf_reset(tmp);
    json_str(&f->val, tmp);
    return hash64_seed(tmp->p, tmp->len, seed);
}

// What pass 1 and pass 2 agree on for one record: 0 skip it (field missing, --missing=drop),
// 1 keep it; *has tells whether val holds its class. Missing with --missing=fail exits.
static int
record_class(struct balance *b, const struct json_obj *o, struct buf *val, const char *name,
             uint64_t lineno, bool *has)
{
    *has = field_value(o, b->field, val);
    if (*has)
        return 1;
    if (b->missing == MISSING_FAIL)
        die("%s:%llu: record has no field '%s' (use --missing=drop or --missing=keep)", name,
            (unsigned long long)lineno, b->field);
    return b->missing == MISSING_KEEP;
}

static void
pass1_push(struct balance *b, uint64_t h, uint32_t group, uint32_t cls)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4096;
        b->rhash = xrealloc(b->rhash, b->cap * sizeof *b->rhash);
        b->rgroup = xrealloc(b->rgroup, b->cap * sizeof *b->rgroup);
        b->rclass = xrealloc(b->rclass, b->cap * sizeof *b->rclass);
    }
    b->rhash[b->n] = h;
    b->rgroup[b->n] = group;
    b->rclass[b->n] = cls;
    b->n++;
}

static void
spool_stdin(struct balance *b)
{
    const char *tmpdir = getenv("TMPDIR");
    struct buf p = {0};
    buf_printf(&p, "%s/kiln-balance-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(p.p);
    if (fd < 0)
        die("%s:", p.p);
    b->spool = buf_detach(&p);
    b->spool_slot = cli_tmp_register(b->spool);
    FILE *f = fdopen(fd, "wb");
    struct kerr err;
    struct rec_reader *r = rec_reader_open("-", &err);
    if (!r || !f)
        die_kerr(&err);
    struct rec_line line;
    int rc;
    while ((rc = rec_reader_next(r, &line, &err)) == 1) {
        fwrite(line.p, 1, line.n, f);
        fputc('\n', f);
    }
    if (rc < 0)
        die_kerr(&err);
    rec_reader_close(r);
    if (ferror(f) || fclose(f) != 0)
        die("%s: write failed:", b->spool);
}

// Standard input is read from its spool once there is one.
static const char *
input_path(const struct balance *b, size_t i)
{
    return b->spool && !strcmp(b->inputs[i], "-") ? b->spool : b->inputs[i];
}

static const char *
input_name(const struct balance *b, size_t i)
{
    return strcmp(b->inputs[i], "-") ? b->inputs[i] : "<stdin>";
}

static void reject(struct balance *b, const struct json_obj *obj, const char *reason);

// What a pass does with a record read_inputs keeps: name and line locate it for messages, cls
// is its class id (of "" when has is false: the record has no class field).
struct record_fn {
    void (*fn)(struct balance *b, void *ctx, const struct json_obj *o,
               const struct rec_line *line, const char *name, uint32_t cls, bool has);
    void *ctx;
};

// Reads every input in order, counting records and bytes in and applying --missing: a record
// without the class field that --missing drops is counted (and with reject_missing written to
// --rejects); every other one goes to f. The progress line shows *shown records (NULL: the
// records read).
static void
read_inputs(struct balance *b, bool reject_missing, const size_t *shown, struct record_fn f)
{
    struct kerr err;
    struct json_obj o;
    json_obj_init(&o);
    struct buf val = {0};
    for (size_t i = 0; i < b->n_inputs; i++) {
        struct rec_reader *r = rec_reader_open(input_path(b, i), &err);
        if (!r)
            die_kerr(&err);
        struct rec_line line;
        int rc;
        while ((rc = rec_reader_next_obj(r, &line, &o, &err)) == 1) {
            b->st.records_in++;
            b->st.bytes_in += line.n + 1;
            bool has;
            if (!record_class(b, &o, &val, input_name(b, i), line.lineno, &has)) {
                b->missing_dropped++;
                if (reject_missing)
                    reject(b, &o, "missing_field");
                continue;
            }
            if (!has)
                b->missing_kept++;
            uint32_t cls = names_get(&b->classes, has ? val.p : "", has ? val.len : 0, true);
            f.fn(b, f.ctx, &o, &line, input_name(b, i), cls, has);
            progress_update(&b->prog, shown ? *shown : b->st.records_in, b->st.bytes_in);
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    json_obj_free(&o);
    buf_free(&val);
}

// Scratch of pass1_record.
struct pass1_scratch {
    struct buf tmp, src;
};

static void
pass1_record(struct balance *b, void *ctx, const struct json_obj *o, const struct rec_line *line,
             const char *name, uint32_t cls, bool has)
{
    struct pass1_scratch *s = ctx;
    uint32_t group = NONE;
    if (b->mixing) {
        if (!field_value(o, "source", &s->src))
            die("%s:%llu: record has no \"source\" (needed by --weights/--temperature)", name,
                (unsigned long long)line->lineno);
        group = names_get(&b->groups, s->src.p, s->src.len, true);
    } else if (b->strategy != STRAT_NONE && has) {
        group = cls;
    }
    pass1_push(b, id_hash(o, b->c.seed, &s->tmp, name, line->lineno), group, cls);
}

static void
pass1(struct balance *b)
{
    struct pass1_scratch s = {0};
    read_inputs(b, false, &b->n, (struct record_fn){pass1_record, &s});
    buf_free(&s.tmp);
    buf_free(&s.src);
}

// ---- plan -----------------------------------------------------------------------------

static const struct kv *
kv_find(const struct kv *v, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].key, key))
            return &v[i];
    return NULL;
}

// Resampling targets per group (imbalanced-learn semantics for classes; mixing for sources).
static void
plan_targets(struct balance *b, const uint64_t *n, uint64_t *t)
{
    size_t k = b->mixing ? b->groups.n : b->classes.n;
    const struct names *nm = b->mixing ? &b->groups : &b->classes;
    for (size_t g = 0; g < k; g++)
        t[g] = n[g];
    if (b->mixing) {
        double *rate = xcalloc(k ? k : 1, sizeof *rate);
        uint64_t total = 0;
        for (size_t g = 0; g < k; g++)
            total += n[g];
        if (b->n_weights) {
            for (size_t i = 0; i < b->n_weights; i++)
                if (names_get(&b->groups, b->weights[i].key, strlen(b->weights[i].key), false) ==
                    NONE)
                    warnx_("--weights: source '%s' does not occur in the input", b->weights[i].key);
            for (size_t g = 0; g < k; g++) {
                const struct kv *w = kv_find(b->weights, b->n_weights, nm->s[g]);
                if (!w)
                    die("source '%s' has no weight in --weights", nm->s[g]);
                rate[g] = w->value;
            }
        } else {
            plan_temperature(n, k, b->temperature, b->mix_cap, rate);
        }
        plan_apportion(b->mix_total ? b->mix_total : total, rate, k, t);
        free(rate);
        return;
    }
    // Classes. minority/majority: smallest/largest count, ties to the first name in byte order.
    uint32_t *order = names_sorted(&b->classes);
    size_t mn = k, mx = k;
    for (size_t j = 0; j < k; j++) {
        size_t g = order[j];
        if (!n[g])
            continue; // the missing-kept class "" has no resampling count
        if (mn == k || n[g] < n[mn])
            mn = g;
        if (mx == k || n[g] > n[mx])
            mx = g;
    }
    free(order);
    const char *s = b->sampling ? b->sampling : "auto";
    if (b->strategy == STRAT_TARGET || strchr(s, '=')) {
        struct kv *v = NULL;
        size_t nv = 0;
        parse_kv("--sampling", s, &v, &nv, b->strategy == STRAT_TARGET);
        for (size_t i = 0; i < nv; i++) {
            uint32_t g = names_get(&b->classes, v[i].key, strlen(v[i].key), false);
            if (g == NONE || !n[g])
                die("--sampling: class '%s' does not occur in the input", v[i].key);
            uint64_t want =
                v[i].mult ? (uint64_t)floor(v[i].value * (double)n[g]) : (uint64_t)v[i].value;
            if (!v[i].mult && v[i].value != floor(v[i].value))
                die("--sampling: '%s' needs a whole number of records (or xF)", v[i].key);
            if (b->strategy == STRAT_UNDER && want > n[g])
                die("--sampling: undersampling cannot raise '%s' from %llu to %llu", v[i].key,
                    (unsigned long long)n[g], (unsigned long long)want);
            if (b->strategy == STRAT_OVER && want < n[g])
                die("--sampling: oversampling cannot lower '%s' from %llu to %llu", v[i].key,
                    (unsigned long long)n[g], (unsigned long long)want);
            t[g] = want;
            free(v[i].key);
        }
        free(v);
        return;
    }
    if (mn == k)
        return;
    char *end;
    double ratio = strtod(s, &end);
    if (end != s && !*end) {
        size_t live = 0;
        for (size_t g = 0; g < k; g++)
            live += n[g] > 0;
        if (live != 2)
            die("--sampling %s: a ratio needs exactly two classes, found %zu", s, live);
        if (!(ratio > 0 && ratio <= 1))
            die_usage("--sampling: a ratio must be in (0, 1], got %s", s);
        if (b->strategy == STRAT_UNDER)
            t[mx] = (uint64_t)floor((double)n[mn] / ratio);
        else
            t[mn] = (uint64_t)floor((double)n[mx] * ratio);
        if (b->strategy == STRAT_UNDER && t[mx] > n[mx])
            die("--sampling %s: the majority would grow (%llu > %llu)", s,
                (unsigned long long)t[mx], (unsigned long long)n[mx]);
        if (b->strategy == STRAT_OVER && t[mn] < n[mn])
            die("--sampling %s: the minority would shrink (%llu < %llu)", s,
                (unsigned long long)t[mn], (unsigned long long)n[mn]);
        return;
    }
    bool under = b->strategy == STRAT_UNDER;
    if (!strcmp(s, "auto"))
        s = under ? "not-minority" : "not-majority";
    uint64_t level = under ? n[mn] : n[mx];
    for (size_t g = 0; g < k; g++) {
        if (!n[g])
            continue;
        bool sel = !strcmp(s, "all") || (!strcmp(s, "majority") && g == mx) ||
                   (!strcmp(s, "minority") && g == mn) || (!strcmp(s, "not-minority") && g != mn) ||
                   (!strcmp(s, "not-majority") && g != mx);
        if (sel)
            t[g] = level;
    }
}

// Groups the indices 0..n-1 by key[] (values < k, NONE ignored) into one array with offsets
// off[0..k]; inside each group sorted by hash.
static uint32_t *
group_by(const uint32_t *key, const uint64_t *hash, size_t n, size_t k, uint64_t *off)
{
    memset(off, 0, (k + 1) * sizeof *off);
    for (size_t i = 0; i < n; i++)
        if (key[i] != NONE)
            off[key[i] + 1]++;
    for (size_t g = 0; g < k; g++)
        off[g + 1] += off[g];
    uint32_t *idx = xmalloc((off[k] ? off[k] : 1) * sizeof *idx);
    uint64_t *fill = xmalloc((k ? k : 1) * sizeof *fill);
    memcpy(fill, off, k * sizeof *fill);
    for (size_t i = 0; i < n; i++)
        if (key[i] != NONE)
            idx[fill[key[i]]++] = (uint32_t)i;
    free(fill);
    for (size_t g = 0; g < k; g++)
        plan_sort_by_key(idx + off[g], off[g + 1] - off[g], hash);
    return idx;
}

static void
plan_make(struct balance *b)
{
    if (b->n >= UINT32_MAX)
        die("too many records for one balance run (%zu)", b->n);
    // 1. copies per record
    b->copies = xmalloc((b->n ? b->n : 1) * sizeof *b->copies);
    for (size_t i = 0; i < b->n; i++)
        b->copies[i] = 1;
    size_t k = b->mixing ? b->groups.n : b->classes.n;
    if (b->mixing || b->strategy != STRAT_NONE) {
        uint64_t *off = xmalloc((k + 1) * sizeof *off);
        uint32_t *idx = group_by(b->rgroup, b->rhash, b->n, k, off);
        uint64_t *cnt = xmalloc((k ? k : 1) * sizeof *cnt), *t = xmalloc((k ? k : 1) * sizeof *t);
        for (size_t g = 0; g < k; g++)
            cnt[g] = off[g + 1] - off[g];
        plan_targets(b, cnt, t);
        for (size_t g = 0; g < k; g++)
            for (uint64_t r = 0; r < cnt[g]; r++)
                b->copies[idx[off[g] + r]] = plan_copies_for_rank(r, cnt[g], t[g]);
        free(off);
        free(idx);
        b->group_in = cnt;
        b->group_target = t;
    }
    // 2. units
    size_t u = 0;
    for (size_t i = 0; i < b->n; i++)
        u += b->copies[i];
    if (u >= UINT32_MAX)
        die("too many output records (%zu)", u);
    b->units = u;
    b->uhash = xmalloc((u ? u : 1) * sizeof *b->uhash);
    b->uclass = xmalloc((u ? u : 1) * sizeof *b->uclass);
    b->dest = xmalloc(u ? u : 1);
    u = 0;
    for (size_t i = 0; i < b->n; i++)
        for (uint32_t j = 0; j < b->copies[i]; j++, u++) {
            b->uhash[u] = j ? hash_mix64(b->rhash[i] ^ hash_mix64(j)) : b->rhash[i];
            b->uclass[u] = b->rclass[i];
            b->dest[u] = 0;
        }
    free(b->rgroup);
    b->rgroup = NULL;
    // 3. sample and 4. split, per class by unit hash
    k = b->classes.n;
    uint64_t *off = xmalloc((k + 1) * sizeof *off);
    uint32_t *idx = group_by(b->uclass, b->uhash, b->units, k, off);
    uint64_t *size = xmalloc((k ? k : 1) * sizeof *size),
             *quota = xmalloc((k ? k : 1) * sizeof *quota);
    for (size_t g = 0; g < k; g++)
        size[g] = quota[g] = off[g + 1] - off[g];
    if (b->sample_set) {
        // classes in name order so that the quota rule's ties do not depend on input order
        uint32_t *order = names_sorted(&b->classes);
        uint64_t *sz = xmalloc((k ? k : 1) * sizeof *sz), *q = xmalloc((k ? k : 1) * sizeof *q);
        for (size_t j = 0; j < k; j++)
            sz[j] = size[order[j]];
        plan_apportion_nested(b->sample, sz, k, q);
        for (size_t j = 0; j < k; j++)
            quota[order[j]] = q[j];
        free(order);
        free(sz);
        free(q);
        if (b->sample > b->units)
            warnx_("--sample %llu: only %zu records available", (unsigned long long)b->sample,
                   b->units);
    }
    double fr[MAX_SPLITS];
    for (size_t s = 0; s < b->n_splits; s++)
        fr[s] = b->splits[s].frac;
    for (size_t g = 0; g < k; g++) {
        uint64_t per[MAX_SPLITS] = {0};
        if (b->n_splits)
            plan_apportion(quota[g], fr, b->n_splits, per);
        else
            per[0] = quota[g];
        uint64_t r = 0;
        for (size_t s = 0; s < (b->n_splits ? b->n_splits : 1); s++)
            for (uint64_t j = 0; j < per[s]; j++, r++)
                b->dest[idx[off[g] + r]] = (uint8_t)s;
        for (; r < size[g]; r++)
            b->dest[idx[off[g] + r]] = DROP;
    }
    free(off);
    free(idx);
    free(size);
    free(quota);
}

// ---- replay ---------------------------------------------------------------------------

static uint64_t
replay_seed(const struct balance *b)
{
    return hash_mix64(b->c.seed ^ 0x7265706c61790000ull);
}

static void
replay_plan(struct balance *b)
{
    b->replay_dest = 0;
    for (size_t s = 0; s < b->n_splits; s++)
        if (!strcmp(b->splits[s].name, "train"))
            b->replay_dest = (int)s;
    uint64_t m = 0;
    for (size_t u = 0; u < b->units; u++)
        m += b->dest[u] == b->replay_dest;
    double f = b->replay_frac;
    b->replay_units = (uint64_t)llround(f * (double)m / (1 - f));
    struct kerr err;
    struct rec_reader *r = rec_reader_open(b->replay_file, &err);
    if (!r)
        die_kerr(&err);
    struct json_obj o;
    json_obj_init(&o);
    struct buf tmp = {0};
    struct rec_line line;
    int rc;
    while ((rc = rec_reader_next_obj(r, &line, &o, &err)) == 1) {
        if (b->np == b->pcap) {
            b->pcap = b->pcap ? 2 * b->pcap : 4096;
            b->phash = xrealloc(b->phash, b->pcap * sizeof *b->phash);
        }
        b->phash[b->np++] = id_hash(&o, replay_seed(b), &tmp, b->replay_file, line.lineno);
    }
    if (rc < 0)
        die_kerr(&err);
    rec_reader_close(r);
    json_obj_free(&o);
    buf_free(&tmp);
    if (b->replay_units && !b->np)
        die("%s: replay file has no records", b->replay_file);
    if (b->replay_units > b->np)
        warnx_("%s: %zu records for %llu replay slots: some are repeated (ids get #copyN)",
               b->replay_file, b->np, (unsigned long long)b->replay_units);
    uint32_t *idx = xmalloc((b->np ? b->np : 1) * sizeof *idx);
    for (size_t i = 0; i < b->np; i++)
        idx[i] = (uint32_t)i;
    plan_sort_by_key(idx, b->np, b->phash);
    b->pcopies = xmalloc((b->np ? b->np : 1) * sizeof *b->pcopies);
    for (size_t r2 = 0; r2 < b->np; r2++)
        b->pcopies[idx[r2]] = plan_copies_for_rank(r2, b->np, b->replay_units);
    free(idx);
}

// ---- pass 2 ---------------------------------------------------------------------------

struct out {
    struct rec_writer *w[MAX_SPLITS];
    size_t n;
    uint64_t *counts; // [split][class]
    struct buf rec, id;
    // replay cursor
    struct rec_reader *rr;
    struct json_obj ro;
    struct rec_line rline;
    size_t ri;      // index of the current replay record
    uint32_t rdone; // copies of it already written
    bool rhave;
    uint64_t rwritten, mwritten, mtotal;
};

static void
write_copy(struct out *o, int d, const struct json_obj *obj, const char *p, size_t n,
           uint32_t copy)
{
    struct kerr err;
    if (copy) {
        const struct json_field *f = json_obj_get(obj, "id");
        buf_reset(&o->id);
        json_str(&f->val, &o->id);
        buf_printf(&o->id, "#copy%u", copy);
        struct buf v = {0};
        json_write_str(&v, o->id.p, o->id.len);
        struct json_edit ed = {"id", v.p, v.len};
        buf_reset(&o->rec);
        json_obj_rewrite(obj, &ed, 1, &o->rec);
        buf_free(&v);
        p = o->rec.p;
        n = o->rec.len;
    }
    if (rec_writer_write(o->w[d], p, n, &err) < 0)
        die_kerr(&err);
}

// A removed input record goes to --rejects with "reason" added (missing_field, undersample,
// mix or sample).
static void
reject(struct balance *b, const struct json_obj *obj, const char *reason)
{
    b->rejected++;
    if (!b->rejects)
        return;
    struct buf v = {0}, out = {0};
    json_write_str(&v, reason, strlen(reason));
    struct json_edit ed = {"reason", v.p, v.len};
    json_obj_rewrite(obj, &ed, 1, &out);
    struct kerr err;
    if (rec_writer_write(b->rejects, out.p, out.len, &err) < 0)
        die_kerr(&err);
    buf_free(&v);
    buf_free(&out);
}

// Writes the next replay unit; false when the replay stream is exhausted. The parsed record
// points into the reader's line, which stays valid until the next read.
static bool
replay_one(struct balance *b, struct out *o)
{
    struct kerr err;
    while (!o->rhave || o->rdone == b->pcopies[o->ri]) {
        if (o->rhave)
            o->ri++;
        int rc = rec_reader_next_obj(o->rr, &o->rline, &o->ro, &err);
        if (rc < 0)
            die_kerr(&err);
        if (rc == 0)
            return false;
        if (o->ri >= b->np)
            die("%s: changed while balance was reading it", b->replay_file);
        o->rhave = true;
        o->rdone = 0;
    }
    write_copy(o, b->replay_dest, &o->ro, o->rline.p, o->rline.n, o->rdone);
    o->rdone++;
    o->rwritten++;
    return true;
}

static void
replay_catch_up(struct balance *b, struct out *o, bool final)
{
    if (!o->rr)
        return;
    uint64_t due =
        final || !o->mtotal ? b->replay_units : o->mwritten * b->replay_units / o->mtotal;
    while (o->rwritten < due && replay_one(b, o))
        ;
}

static char *
split_path(const struct balance *b, const char *name)
{
    struct buf p = {0};
    const char *ext = b->c.plain ? ".jsonl" : ".jsonl.zst";
    if (b->split_dir) {
        buf_printf(&p, "%s/%s%s", b->split_dir, name, ext);
        return buf_detach(&p);
    }
    const char *o = b->c.output, *at = strstr(o, "{split}");
    if (at) {
        buf_append(&p, o, (size_t)(at - o));
        buf_puts(&p, name);
        buf_puts(&p, at + 7);
        return buf_detach(&p);
    }
    size_t n = strlen(o);
    static const char *exts[] = {".jsonl.zst", ".jsonl"};
    for (size_t i = 0; i < 2; i++) {
        size_t k = strlen(exts[i]);
        if (n > k && !strcmp(o + n - k, exts[i])) {
            n -= k;
            ext = exts[i];
            break;
        }
    }
    buf_append(&p, o, n);
    buf_printf(&p, ".%s%s", name, ext);
    return buf_detach(&p);
}

// mkdir -p for --split-dir.
static void
make_dirs(const char *dir)
{
    char *p = xstrdup(dir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) < 0 && errno != EEXIST)
                die("%s:", p);
            if (!c)
                break;
            *s = c;
        }
    }
    free(p);
}

static void
pass2(struct balance *b, struct out *o)
{
    struct kerr err;
    if (b->split_dir)
        make_dirs(b->split_dir);
    struct rec_wopts wo = {.level = b->c.level, .plain = b->c.plain, .force = b->c.force};
    o->n = b->n_splits ? b->n_splits : 1;
    for (size_t s = 0; s < o->n; s++) {
        char *path = b->n_splits ? split_path(b, b->splits[s].name) : NULL;
        o->w[s] = rec_writer_open(b->n_splits ? path : b->c.output, &wo, &err);
        free(path);
        if (!o->w[s])
            die_kerr(&err);
    }
    o->counts = xcalloc(o->n * (b->classes.n ? b->classes.n : 1), sizeof *o->counts);
    if (b->replay_file) {
        o->rr = rec_reader_open(b->replay_file, &err);
        if (!o->rr)
            die_kerr(&err);
        json_obj_init(&o->ro);
        for (size_t u = 0; u < b->units; u++)
            o->mtotal += b->dest[u] == b->replay_dest;
    }
    struct json_obj obj;
    json_obj_init(&obj);
    struct buf val = {0};
    size_t rec = 0, unit = 0;
    for (size_t i = 0; i < b->n_inputs; i++) {
        struct rec_reader *r = rec_reader_open(input_path(b, i), &err);
        if (!r)
            die_kerr(&err);
        struct rec_line line;
        int rc;
        while ((rc = rec_reader_next_obj(r, &line, &obj, &err)) == 1) {
            bool has, kept = false;
            if (!record_class(b, &obj, &val, input_name(b, i), line.lineno, &has)) {
                reject(b, &obj, "missing_field");
                continue;
            }
            if (rec >= b->n)
                die("%s: changed while balance was reading it", input_name(b, i));
            for (uint32_t j = 0; j < b->copies[rec]; j++, unit++) {
                int d = b->dest[unit];
                if (d == DROP)
                    continue;
                kept = true;
                write_copy(o, d, &obj, line.p, line.n, j);
                o->counts[(size_t)d * b->classes.n + b->uclass[unit]]++;
                if (o->rr && d == b->replay_dest) {
                    o->mwritten++;
                    replay_catch_up(b, o, false);
                }
            }
            if (!kept)
                reject(b, &obj, !b->copies[rec] ? (b->mixing ? "mix" : "undersample") : "sample");
            rec++;
            progress_update(&b->prog, rec, rec_reader_bytes_out(r));
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    if (rec != b->n)
        die("input changed while balance was reading it (%zu records, expected %zu)", rec, b->n);
    replay_catch_up(b, o, true);
    json_obj_free(&obj);
    buf_free(&val);
    for (size_t s = 0; s < o->n; s++) {
        b->st.records_out += rec_writer_records(o->w[s]);
        b->st.bytes_out += rec_writer_bytes(o->w[s]);
        if (rec_writer_close(o->w[s], &err) < 0)
            die_kerr(&err);
    }
    if (o->rr) {
        rec_reader_close(o->rr);
        json_obj_free(&o->ro);
    }
    buf_free(&o->rec);
    buf_free(&o->id);
}

// Records of pass_through: the output and the count of each class.
struct through {
    struct rec_writer *w;
    uint64_t *cnt;
    size_t ncnt;
};

static void
through_record(struct balance *b, void *ctx, const struct json_obj *o,
               const struct rec_line *line, const char *name, uint32_t cls, bool has)
{
    struct through *t = ctx;
    struct kerr err;
    if (cls >= t->ncnt) {
        t->cnt = xrealloc(t->cnt, (cls + 1) * sizeof *t->cnt);
        memset(t->cnt + t->ncnt, 0, (cls + 1 - t->ncnt) * sizeof *t->cnt);
        t->ncnt = cls + 1;
    }
    t->cnt[cls]++;
    if (rec_writer_write(t->w, line->p, line->n, &err) < 0)
        die_kerr(&err);
}

// One pass: no decisions need counts (only --missing and --stats).
static void
pass_through(struct balance *b, struct out *o)
{
    struct kerr err;
    struct rec_wopts wo = {.level = b->c.level, .plain = b->c.plain, .force = b->c.force};
    o->n = 1;
    o->w[0] = rec_writer_open(b->c.output, &wo, &err);
    if (!o->w[0])
        die_kerr(&err);
    struct through t = {.w = o->w[0]};
    read_inputs(b, true, NULL, (struct record_fn){through_record, &t});
    o->counts = xcalloc(b->classes.n ? b->classes.n : 1, sizeof *o->counts);
    if (t.ncnt)
        memcpy(o->counts, t.cnt, t.ncnt * sizeof *t.cnt);
    free(t.cnt);
    b->st.records_out = rec_writer_records(o->w[0]);
    b->st.bytes_out = rec_writer_bytes(o->w[0]);
    if (rec_writer_close(o->w[0], &err) < 0)
        die_kerr(&err);
}

// ---- stats ----------------------------------------------------------------------------

static void
stats_classes(struct json_writer *w, const struct names *nm, const uint32_t *order,
              const uint64_t *cnt)
{
    jw_obj_begin(w);
    for (size_t j = 0; j < nm->n; j++) {
        uint32_t c = order[j];
        jw_key(w, nm->s[c][0] ? nm->s[c] : "(missing)");
        jw_uint(w, cnt[c]);
    }
    jw_obj_end(w);
}

static void
write_stats(struct balance *b, const struct out *o)
{
    uint32_t *order = names_sorted(&b->classes);
    size_t k = b->classes.n;
    uint64_t *in = xcalloc(k ? k : 1, sizeof *in), *out = xcalloc(k ? k : 1, sizeof *out);
    if (b->n) {
        for (size_t i = 0; i < b->n; i++)
            in[b->rclass[i]]++;
    } else {
        memcpy(in, o->counts, k * sizeof *in); // pass-through: in == out
    }
    for (size_t s = 0; s < o->n; s++)
        for (size_t c = 0; c < k; c++)
            out[c] += o->counts[s * k + c];
    struct buf j = {0};
    struct json_writer w;
    stats_str(&b->st, "field", b->field);
    stats_u64(&b->st, "missing_dropped", b->missing_dropped);
    stats_u64(&b->st, "missing_kept", b->missing_kept);
    stats_u64(&b->st, "rejected", b->rejected);
    json_writer_init(&w, &j);
    stats_classes(&w, &b->classes, order, in);
    stats_raw(&b->st, "classes_in", j.p, j.len);
    buf_reset(&j);
    json_writer_init(&w, &j);
    stats_classes(&w, &b->classes, order, out);
    stats_raw(&b->st, "classes_out", j.p, j.len);
    if (b->n_splits) {
        buf_reset(&j);
        json_writer_init(&w, &j);
        jw_obj_begin(&w);
        for (size_t s = 0; s < b->n_splits; s++) {
            jw_key(&w, b->splits[s].name);
            stats_classes(&w, &b->classes, order, o->counts + s * k);
        }
        jw_obj_end(&w);
        stats_raw(&b->st, "splits", j.p, j.len);
    }
    if (b->mixing) {
        uint32_t *gorder = names_sorted(&b->groups);
        const char *keys[] = {"sources_in", "sources_target"};
        const uint64_t *vals[] = {b->group_in, b->group_target};
        for (int t = 0; t < 2; t++) {
            buf_reset(&j);
            json_writer_init(&w, &j);
            stats_classes(&w, &b->groups, gorder, vals[t]);
            stats_raw(&b->st, keys[t], j.p, j.len);
        }
        free(gorder);
    }
    if (b->replay_file) {
        stats_u64(&b->st, "replay_available", b->np);
        stats_u64(&b->st, "replay_records", o->rwritten);
    }
    if (b->sample_set)
        stats_u64(&b->st, "sample", b->sample);
    stats_u64(&b->st, "seed", b->c.seed);
    buf_free(&j);
    free(in);
    free(out);
    free(order);
    struct kerr err;
    if (stats_write(&b->st, b->c.stats, &err) < 0)
        die_kerr(&err);
}

// ---- main -----------------------------------------------------------------------------

int
main(int argc, char **argv)
{
    cli_init("balance");
    static struct balance b;
    cli_common_init(&b.c);
    b.field = "label";
    b.spool_slot = -1;
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"field", required_argument, 0, OPT_FIELD},
        {"missing", required_argument, 0, OPT_MISSING},
        {"strategy", required_argument, 0, OPT_STRATEGY},
        {"sampling", required_argument, 0, OPT_SAMPLING},
        {"weights", required_argument, 0, OPT_WEIGHTS},
        {"temperature", required_argument, 0, OPT_TEMPERATURE},
        {"cap", required_argument, 0, OPT_CAP},
        {"mix-total", required_argument, 0, OPT_MIX_TOTAL},
        {"replay", required_argument, 0, OPT_REPLAY},
        {"split", required_argument, 0, OPT_SPLIT},
        {"split-dir", required_argument, 0, OPT_SPLIT_DIR},
        {"sample", required_argument, 0, OPT_SAMPLE},
        {"rejects", required_argument, 0, OPT_REJECTS},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&b.c, opt, optarg, usage))
            continue;
        switch (opt) {
        case OPT_FIELD:
            if (!*optarg)
                die_usage("--field: empty");
            b.field = optarg;
            break;
        case OPT_MISSING:
            if (!strcmp(optarg, "fail"))
                b.missing = MISSING_FAIL;
            else if (!strcmp(optarg, "drop"))
                b.missing = MISSING_DROP;
            else if (!strcmp(optarg, "keep"))
                b.missing = MISSING_KEEP;
            else
                die_usage("--missing: expected fail, drop or keep, got '%s'", optarg);
            break;
        case OPT_STRATEGY:
            if (!strcmp(optarg, "undersample"))
                b.strategy = STRAT_UNDER;
            else if (!strcmp(optarg, "oversample"))
                b.strategy = STRAT_OVER;
            else if (!strcmp(optarg, "target"))
                b.strategy = STRAT_TARGET;
            else if (!strcmp(optarg, "none"))
                b.strategy = STRAT_NONE;
            else
                die_usage("--strategy: expected undersample, oversample, target or none, got "
                          "'%s'",
                          optarg);
            break;
        case OPT_SAMPLING:
            b.sampling = optarg;
            break;
        case OPT_WEIGHTS:
            parse_kv("--weights", optarg, &b.weights, &b.n_weights, false);
            b.mixing = true;
            break;
        case OPT_TEMPERATURE:
            b.temperature = cli_parse_double("--temperature", optarg, 1e-3, 1e6);
            b.mixing = true;
            break;
        case OPT_CAP:
            b.mix_cap = (uint64_t)cli_parse_int("--cap", optarg, 1, INT64_MAX);
            break;
        case OPT_MIX_TOTAL:
            b.mix_total = (uint64_t)cli_parse_int("--mix-total", optarg, 1, INT64_MAX);
            break;
        case OPT_REPLAY: {
            const char *colon = strrchr(optarg, ':');
            if (!colon || colon == optarg)
                die_usage("--replay: expected FILE:FRACTION, got '%s'", optarg);
            b.replay_frac = cli_parse_double("--replay", colon + 1, 0, 0.999999);
            b.replay_file = xstrndup(optarg, (size_t)(colon - optarg));
            break;
        }
        case OPT_SPLIT:
            if (b.n_splits)
                die_usage("--split given twice");
            parse_split(&b, optarg);
            break;
        case OPT_SPLIT_DIR:
            b.split_dir = optarg;
            break;
        case OPT_REJECTS:
            b.rejects_path = optarg;
            break;
        case OPT_SAMPLE:
            b.sample = (uint64_t)cli_parse_int("--sample", optarg, 0, INT64_MAX);
            b.sample_set = true;
            break;
        default:
            die_usage("unexpected option");
        }
    }
    if (b.mixing && b.strategy != STRAT_NONE)
        die_usage("class rebalancing (--strategy) and source mixing (--weights/--temperature) "
                  "are separate runs: pipe one balance into another");
    if (b.n_weights && b.temperature > 0)
        die_usage("--weights and --temperature exclude each other");
    if ((b.mix_cap || b.mix_total) && !b.mixing)
        die_usage("--cap and --mix-total need --weights or --temperature");
    if (b.sampling && b.strategy == STRAT_NONE)
        die_usage("--sampling needs --strategy");
    if (b.strategy == STRAT_TARGET && !b.sampling)
        die_usage("--strategy target needs --sampling CLASS=N,...");
    if (b.n_splits && !b.split_dir && !b.c.output)
        die_usage("--split needs --split-dir DIR or -o PREFIX (one file per split)");
    if (!b.n_splits && b.split_dir)
        die_usage("--split-dir needs --split");
    b.inputs = optind < argc ? argv + optind : (char *[]){"-"};
    b.n_inputs = optind < argc ? (size_t)(argc - optind) : 1;
    size_t stdin_uses = 0;
    for (size_t i = 0; i < b.n_inputs; i++)
        stdin_uses += !strcmp(b.inputs[i], "-");
    if (stdin_uses > 1)
        die_usage("standard input ('-') given more than once");

    stats_init(&b.st, "balance");
    progress_init(&b.prog, &b.c, "balance", 0);
    static struct out o;
    struct kerr err;
    if (b.rejects_path) {
        struct rec_wopts wo = {.level = b.c.level, .plain = b.c.plain, .force = b.c.force};
        b.rejects = rec_writer_open(b.rejects_path, &wo, &err);
        if (!b.rejects)
            die_kerr(&err);
    }
    bool planned =
        b.strategy != STRAT_NONE || b.mixing || b.sample_set || b.n_splits || b.replay_file;
    if (!planned) {
        pass_through(&b, &o);
    } else {
        if (stdin_uses)
            spool_stdin(&b);
        pass1(&b);
        plan_make(&b);
        if (b.replay_file)
            replay_plan(&b);
        pass2(&b, &o);
    }
    progress_end(&b.prog);
    if (b.rejects && rec_writer_close(b.rejects, &err) < 0)
        die_kerr(&err);
    write_stats(&b, &o);
    if (b.spool) {
        remove(b.spool);
        cli_tmp_forget(b.spool_slot);
        free(b.spool);
    }
    stats_free(&b.st);
    names_free(&b.classes);
    names_free(&b.groups);
    for (size_t i = 0; i < b.n_weights; i++)
        free(b.weights[i].key);
    free(b.weights);
    free((char *)b.replay_file);
    free(b.rhash);
    free(b.rgroup);
    free(b.rclass);
    free(b.copies);
    free(b.uhash);
    free(b.uclass);
    free(b.dest);
    free(b.phash);
    free(b.pcopies);
    free(b.group_in);
    free(b.group_target);
    free(o.counts);
    cli_finish_stdout();
    return 0;
}

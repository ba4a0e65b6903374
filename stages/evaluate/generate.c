// SPDX-License-Identifier: MIT
// generate.c: `evaluate generate` — text generation with the KV cache (model_kv_forward):
// greedy (temperature 0, the default) or sampled with temperature, top-k and top-p (nucleus)
// from a generator seeded per example (seed, example index), so output does not depend on
// batching or threads. Generation stops at the end-of-sequence token, at --max-tokens, or at
// the first stop sequence (which is cut from the text). When records carry the target field,
// exact match compares generation and target with surrounding whitespace stripped (lm-eval's
// exact_match with ignore_whitespace at the ends).
#include "evaluate.h"
#include "hash.h"
#include "metrics.h"
#include "rec.h"
#include "tok_template.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gen_opts {
    struct eval_common c;
    const char *prompt, *target;
    const char **stops;
    int n_stops, max_tokens, top_k;
    double temperature, top_p;
};

static void
gen_usage(FILE *f)
{
    fputs("usage: evaluate generate --model DIR|FILE.gguf [--adapter DIR] [--tokenizer FILE]\n"
          "         [--prompt T] [--target FIELD] [--max-tokens N] [--stop S]...\n"
          "         [--temperature X] [--top-k K] [--top-p P] [--seed N]\n"
          "         [-o RESULTS.jsonl] [--db DB [--run-name NAME]] [FILE...]\n"
          "Defaults: --prompt '{prompt}' --target completion --max-tokens 64, greedy.\n",
          f);
}

enum { OPT_PROMPT = EOPT_CMD, OPT_TARGET, OPT_MAX_TOKENS, OPT_STOP, OPT_TEMP, OPT_TOPK, OPT_TOPP };

struct cand {
    float p;
    int id;
};

static int
cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

// Picks the next token from logits[V]: argmax at temperature 0, else a sample from the
// temperature-scaled softmax restricted to the top k and to the smallest prefix of mass ≥ p.
static int
gen_pick(const struct gen_opts *o, float *logits, int V, struct cand *c, struct model_rng *rng)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    if (o->temperature <= 0)
        return best;
    double z = 0, mx = logits[best];
    for (int i = 0; i < V; i++) {
        c[i].id = i;
        c[i].p = (float)exp((logits[i] - mx) / o->temperature);
        z += c[i].p;
    }
    qsort(c, (size_t)V, sizeof *c, cand_cmp);
    int n = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    double mass = 0, keep = 0;
    int m = 0;
    for (; m < n; m++) {
        mass += c[m].p / z;
        keep += c[m].p;
        if (mass >= o->top_p) {
            m++;
            break;
        }
    }
    double u = model_rng_uniform(rng) * keep, acc = 0;
    for (int i = 0; i < m; i++) {
        acc += c[i].p;
        if (u < acc)
            return c[i].id;
    }
    return c[m - 1].id;
}

static void
strip(const char *s, size_t n, const char **out, size_t *len)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    *out = s;
    *len = n;
}

int
cmd_generate(int argc, char **argv)
{
    struct gen_opts o = {0};
    eval_common_init(&o.c);
    o.prompt = "{prompt}";
    o.target = "completion";
    o.max_tokens = 64;
    o.top_p = 1;
    o.stops = xcalloc((size_t)argc, sizeof *o.stops);
    static const struct option longopts[] = {
        EVAL_LONGOPTS,
        {"prompt", required_argument, 0, OPT_PROMPT},
        {"target", required_argument, 0, OPT_TARGET},
        {"max-tokens", required_argument, 0, OPT_MAX_TOKENS},
        {"stop", required_argument, 0, OPT_STOP},
        {"temperature", required_argument, 0, OPT_TEMP},
        {"top-k", required_argument, 0, OPT_TOPK},
        {"top-p", required_argument, 0, OPT_TOPP},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_PROMPT:
            o.prompt = optarg;
            break;
        case OPT_TARGET:
            o.target = optarg;
            break;
        case OPT_MAX_TOKENS:
            o.max_tokens = (int)cli_parse_int("--max-tokens", optarg, 1, 1 << 20);
            break;
        case OPT_STOP:
            if (!*optarg)
                die_usage("--stop: empty stop sequence");
            o.stops[o.n_stops++] = optarg;
            break;
        case OPT_TEMP:
            o.temperature = cli_parse_double("--temperature", optarg, 0, 100);
            break;
        case OPT_TOPK:
            o.top_k = (int)cli_parse_int("--top-k", optarg, 0, 1 << 30);
            break;
        case OPT_TOPP:
            o.top_p = cli_parse_double("--top-p", optarg, 1e-9, 1);
            break;
        default:
            if (!eval_common_opt(&o.c, opt, optarg, gen_usage))
                die_usage("unexpected option");
        }
    }
    struct kerr err;
    struct tok_tpl *tp = tok_tpl_new(o.prompt, &err);
    if (!tp)
        die_usage("%s", err.msg);
    // stop sequences take the template escapes (\n, \t, \\)
    char **stops = xcalloc((size_t)(o.n_stops ? o.n_stops : 1), sizeof *stops);
    struct json_obj empty;
    json_obj_init(&empty);
    json_obj_parse(&empty, "{}", 2, NULL);
    for (int i = 0; i < o.n_stops; i++) {
        struct tok_tpl *st = tok_tpl_new(o.stops[i], &err);
        struct buf b = {0};
        if (!st || tok_tpl_expand(st, &empty, NULL, NULL, &b, &err) < 0)
            die_usage("--stop: %s", err.msg);
        stops[i] = b.p ? buf_detach(&b) : xstrdup("");
        tok_tpl_del(st);
    }
    char **files = eval_inputs(argc, argv);
    struct eval_model em;
    eval_common_model(&o.c, &em);
    int V = em.m.cfg.vocab, max_t = em.m.max_t;
    if (o.max_tokens >= max_t)
        die_usage("--max-tokens %d leaves no room for a prompt in the context of %d", o.max_tokens,
                  max_t);
    struct kpool *pool = kpool_new(o.c.threads);
    struct model_kv kv;
    if (model_kv_init(&kv, &em.m, max_t, &err) < 0)
        die_kerr(&err);
    struct tok_enc *enc = tok_enc_new(em.tok);
    float *logits = xmalloc((size_t)V * sizeof *logits);
    struct cand *cands = xmalloc((size_t)V * sizeof *cands);
    struct json_obj obj;
    json_obj_init(&obj);
    struct buf text = {0}, gen = {0}, gold = {0}, out = {0};
    struct tok_ids ids = {0};
    double *em_v = NULL;
    size_t n = 0, n_gold = 0;
    uint64_t gen_tokens = 0;
    double t0 = now_seconds();
    for (char **f = files; *f; f++) {
        struct rec_reader *r = rec_reader_open(*f, &err);
        if (!r)
            die_kerr(&err);
        struct rec_line line;
        int rc;
        while ((rc = rec_reader_next_obj(r, &line, &obj, &err)) == 1) {
            const char *name = rec_reader_name(r);
            unsigned long long ln = (unsigned long long)line.lineno;
            buf_reset(&text);
            ids.n = 0;
            if (tok_tpl_expand(tp, &obj, NULL, NULL, &text, &err) < 0 ||
                tok_encode(enc, text.p ? text.p : "", text.len, 0, &ids, &err) < 0)
                die("%s:%llu: %s", name, ln, err.msg);
            if (ids.n == 0)
                die("%s:%llu: the prompt gives no tokens", name, ln);
            if (eval_ids_check(&em, ids.v, ids.n, &err) < 0)
                die("%s:%llu: %s: the model and tokenizer do not match", name, ln, err.msg);
            size_t room = (size_t)(max_t - o.max_tokens), skip = ids.n > room ? ids.n - room : 0;
            struct model_rng rng;
            model_rng_seed(&rng, hash_mix64(o.c.cli.seed ^ hash_mix64(n)));
            model_kv_reset(&kv);
            model_kv_forward(&em.m, &kv, pool, ids.v + skip, (int)(ids.n - skip), logits);
            struct tok_ids out_ids = {0};
            const char *stop_hit = NULL;
            size_t cut = 0;
            for (int s = 0; s < o.max_tokens; s++) {
                int next = gen_pick(&o, logits, V, cands, &rng);
                if (next == em.eos)
                    break;
                tok_ids_push(&out_ids, next);
                buf_reset(&gen);
                if (tok_decode(em.tok, out_ids.v, out_ids.n, &gen, &err) < 0)
                    die("%s:%llu: %s", name, ln, err.msg);
                for (int k = 0; k < o.n_stops && !stop_hit; k++) {
                    const char *hit = gen.p ? strstr(gen.p, stops[k]) : NULL;
                    if (hit)
                        stop_hit = stops[k], cut = (size_t)(hit - gen.p);
                }
                if (stop_hit || s + 1 == o.max_tokens)
                    break;
                model_kv_forward(&em.m, &kv, pool, &next, 1, logits);
            }
            gen_tokens += out_ids.n;
            buf_reset(&gen);
            tok_decode(em.tok, out_ids.v, out_ids.n, &gen, &err);
            size_t glen = stop_hit ? cut : gen.len;
            // output must be valid UTF-8: a token may end inside a character
            struct buf fixed = {0};
            utf8_repair(gen.p ? gen.p : "", glen, &fixed);

            struct json_writer w;
            json_writer_init(&w, &out);
            jw_obj_begin(&w);
            jw_key(&w, "id");
            struct json_val idv;
            if (json_obj_path(&obj, "id", &idv) && idv.type == JSON_STRING)
                jw_raw(&w, idv.raw, idv.raw_len);
            else {
                char id[64];
                snprintf(id, sizeof id, "%llu", ln);
                jw_str(&w, id);
            }
            jw_key(&w, "prompt");
            jw_strn(&w, text.p ? text.p : "", text.len);
            struct json_val gv;
            bool has_gold = json_obj_path(&obj, o.target, &gv) && gv.type == JSON_STRING;
            em_v = xrealloc(em_v, (n + 1) * sizeof *em_v);
            em_v[n] = NAN;
            if (has_gold) {
                buf_reset(&gold);
                json_str(&gv, &gold);
                const char *a, *b;
                size_t la, lb;
                strip(gold.p ? gold.p : "", gold.len, &a, &la);
                strip(fixed.p ? fixed.p : "", fixed.len, &b, &lb);
                bool ok = la == lb && memcmp(a, b, la) == 0;
                em_v[n_gold++] = ok;
                jw_key(&w, "gold");
                jw_raw(&w, gv.raw, gv.raw_len);
                jw_key(&w, "prediction");
                jw_strn(&w, fixed.p ? fixed.p : "", fixed.len);
                jw_key(&w, "correct");
                jw_bool(&w, ok);
            } else {
                jw_key(&w, "prediction");
                jw_strn(&w, fixed.p ? fixed.p : "", fixed.len);
            }
            jw_key(&w, "tokens");
            jw_uint(&w, out_ids.n);
            jw_key(&w, "stop");
            if (stop_hit)
                jw_str(&w, stop_hit);
            else
                jw_null(&w);
            jw_obj_end(&w);
            buf_putc(&out, '\n');
            buf_free(&fixed);
            tok_ids_free(&out_ids);
            n++;
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    if (n == 0)
        die("no records to evaluate");
    double secs = now_seconds() - t0;
    double em_mean = 0;
    for (size_t i = 0; i < n_gold; i++)
        em_mean += em_v[i];
    em_mean = n_gold ? em_mean / (double)n_gold : NAN;
    info("%zu records, %llu tokens generated in %.2f s (%.1f tokens/s)%s", n,
         (unsigned long long)gen_tokens, secs, (double)gen_tokens / (secs > 0 ? secs : 1),
         n_gold ? "" : "; no targets: exact match not computed");
    struct json_writer w;
    json_writer_init(&w, &out);
    jw_obj_begin(&w);
    jw_key(&w, "summary");
    jw_obj_begin(&w);
    jw_key(&w, "task");
    jw_str(&w, "generate");
    jw_key(&w, "n");
    jw_uint(&w, n);
    jw_key(&w, "exact_match");
    jw_double(&w, em_mean);
    jw_key(&w, "stderr");
    jw_obj_begin(&w);
    jw_key(&w, "exact_match");
    jw_double(&w, n_gold ? metrics_mean_stderr(em_v, n_gold) : NAN);
    jw_obj_end(&w);
    jw_key(&w, "temperature");
    jw_double(&w, o.temperature);
    jw_key(&w, "top_k");
    jw_int(&w, o.top_k);
    jw_key(&w, "top_p");
    jw_double(&w, o.top_p);
    jw_key(&w, "max_tokens");
    jw_int(&w, o.max_tokens);
    jw_key(&w, "seed");
    jw_uint(&w, o.c.cli.seed);
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(&out, '\n');

    const char *params[] = {"task", "generate", "prompt", o.prompt, NULL};
    eval_results_finish(&o.c, em.desc, files, params, &out);
    for (int i = 0; i < o.n_stops; i++)
        free(stops[i]);
    free(stops), free(o.stops), free(logits), free(cands), free(em_v);
    buf_free(&text), buf_free(&gen), buf_free(&gold), buf_free(&out);
    tok_ids_free(&ids);
    json_obj_free(&obj);
    json_obj_free(&empty);
    tok_enc_del(enc);
    model_kv_free(&kv);
    kpool_del(pool);
    tok_tpl_del(tp);
    eval_model_free(&em);
    return 0;
}

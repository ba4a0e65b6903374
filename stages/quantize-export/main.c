// SPDX-License-Identifier: MIT
// quantize-export: turns a checkpoint (HF directory, optionally with a PEFT LoRA adapter merged
// in) into deployable, verifiable artifacts. Subcommands:
//   gguf    a llama.cpp GGUF (F32, F16, Q8_0, Q4_0, Q4_K as llama.cpp's Q4_K_M mix) + JSON report
//   hf      an HF directory (config.json, model.safetensors in f32/f16/bf16, tokenizer.json,
//           generation_config.json)
//   peft    a validated copy of a PEFT adapter directory
//   bundle  a reproducible tar with a model card and MANIFEST.json (bundle.c)
//   verify  checks a bundle's hashes (bundle.c)
// Directories are written as PARENT/.kiln-tmp-NAME and renamed (the next run removes one a
// SIGKILL left); files as FILE.tmp and renamed. See quantize-export.1.
#include "checkpoint.h"
#include "cli.h"
#include "gguf_model.h"
#include "json.h"
#include "quant.h"
#include "qx.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    OPT_MODEL = CLI_OPT_FIRST_STAGE,
    OPT_ADAPTER,
    OPT_TYPE,
    OPT_DTYPE,
    OPT_REPORT,
    OPT_TOKENIZER,
    OPT_NAME,
};

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: quantize-export gguf --model DIR [--adapter DIR] --type TYPE -o FILE.gguf\n"
            "                            [--report FILE.json] [--tokenizer FILE] [--name NAME]\n"
            "       quantize-export hf --model DIR [--adapter DIR] --dtype f32|f16|bf16 -o DIR\n"
            "       quantize-export peft --adapter DIR [--model DIR] -o DIR\n"
            "       quantize-export bundle -o BUNDLE.tar[.zst] [--card-db DB --run-name NAME]\n"
            "                              [--provenance FILE.jsonl]... FILE...\n"
            "       quantize-export verify BUNDLE\n"
            "Export a checkpoint as GGUF (TYPE f32 f16 q8_0 q4_0 q4_k), an HF or PEFT directory,\n"
            "or a reproducible bundle; verify a bundle's hashes.\n"
            "\n"
            "  --model DIR       HF checkpoint directory (config.json, model.safetensors,\n"
            "                    tokenizer.json)\n"
            "  --adapter DIR     PEFT LoRA adapter, merged into the weights (peft: validated)\n"
            "  --type TYPE       GGUF weight type; q4_k is llama.cpp's Q4_K_M mix (Q6_K output,\n"
            "                    token_embd, and attn_v/ffn_down in its use_more_bits layers)\n"
            "  --dtype DTYPE     model.safetensors dtype for hf\n"
            "  --report FILE     per-tensor type, fallback, RMSE and max error as JSON\n"
            "  --tokenizer FILE  tokenizer (default DIR/tokenizer.json)\n"
            "  --name NAME       general.name (default: the model directory's name)\n"
            "  -o, --output      output file or directory\n"
            "  -f, --force       replace an existing output directory\n"
            "  -q, -v, -h, --version, --stats FILE\n");
}

struct opts {
    struct cli_common c;
    const char *model, *adapter, *report, *tokenizer, *name;
    int type;                  // QTYPE_*, -1 unset
    enum st_dtype dtype;
    bool dtype_set;
};

static void
opts_parse(struct opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"model", required_argument, 0, OPT_MODEL},
        {"adapter", required_argument, 0, OPT_ADAPTER},
        {"type", required_argument, 0, OPT_TYPE},
        {"dtype", required_argument, 0, OPT_DTYPE},
        {"report", required_argument, 0, OPT_REPORT},
        {"tokenizer", required_argument, 0, OPT_TOKENIZER},
        {"name", required_argument, 0, OPT_NAME},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof(*o));
    cli_common_init(&o->c);
    o->type = -1;
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&o->c, opt, optarg, usage))
            continue;
        switch (opt) {
        case OPT_MODEL: o->model = optarg; break;
        case OPT_ADAPTER: o->adapter = optarg; break;
        case OPT_REPORT: o->report = optarg; break;
        case OPT_TOKENIZER: o->tokenizer = optarg; break;
        case OPT_NAME: o->name = optarg; break;
        case OPT_TYPE: {
            static const struct { const char *s; int t; } types[] = {
                {"f32", QTYPE_F32}, {"f16", QTYPE_F16}, {"q8_0", QTYPE_Q8_0},
                {"q4_0", QTYPE_Q4_0}, {"q4_k", QTYPE_Q4_K}, {"q4_k_m", QTYPE_Q4_K}};
            for (size_t i = 0; i < KILN_ARRAY_LEN(types); i++)
                if (!strcasecmp(optarg, types[i].s))
                    o->type = types[i].t;
            if (o->type < 0)
                die_usage("--type: unknown type '%s' (f32, f16, q8_0, q4_0, q4_k)", optarg);
            break;
        }
        case OPT_DTYPE:
            if (!strcasecmp(optarg, "f32"))
                o->dtype = ST_F32;
            else if (!strcasecmp(optarg, "f16"))
                o->dtype = ST_F16;
            else if (!strcasecmp(optarg, "bf16"))
                o->dtype = ST_BF16;
            else
                die_usage("--dtype: unknown dtype '%s' (f32, f16, bf16)", optarg);
            o->dtype_set = true;
            break;
        default: die_usage("unexpected option");
        }
    }
    if (optind != argc)
        die_usage("unexpected argument '%s'", argv[optind]);
}

// Loads --model and merges --adapter into it.
static void
model_load(const struct opts *o, struct model *m)
{
    struct kerr err;
    if (!o->model)
        die_usage("--model DIR is required");
    if (ckpt_load(o->model, m, NULL, &err))
        die_kerr(&err);
    if (o->adapter) {
        struct qx_lora l;
        if (qx_lora_load(&l, o->adapter, &err) || qx_lora_merge(&l, m, &err))
            die_kerr(&err);
        info("merged %d LoRA pairs (r %d, scale %g) from %s", l.n_pairs, l.r, l.scale,
             o->adapter);
        qx_lora_free(&l);
    }
}

static struct tok *
tokenizer_load(const struct opts *o)
{
    struct kerr err;
    struct buf path;
    buf_init(&path);
    if (o->tokenizer)
        buf_puts(&path, o->tokenizer);
    else
        buf_printf(&path, "%s/tokenizer.json", o->model);
    struct tok *t = tok_load_file(path.p, NULL, &err);
    if (!t)
        die_kerr(&err);
    buf_free(&path);
    return t;
}

static void
report_write(const char *path, const struct opts *o, const struct gguf_export_report *rep)
{
    struct buf b;
    buf_init(&b);
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "model");
    jw_str(&w, o->model);
    if (o->adapter) {
        jw_key(&w, "adapter");
        jw_str(&w, o->adapter);
    }
    jw_key(&w, "type");
    jw_str(&w, quant_type_name(o->type));
    jw_key(&w, "file_type");
    jw_uint(&w, rep->file_type);
    jw_key(&w, "tensors");
    jw_arr_begin(&w);
    for (int i = 0; i < rep->n; i++) {
        const struct gguf_export_tensor *t = &rep->t[i];
        jw_obj_begin(&w);
        jw_key(&w, "name");
        jw_str(&w, t->name);
        jw_key(&w, "type");
        jw_str(&w, quant_type_name(t->type));
        jw_key(&w, "fallback");
        jw_bool(&w, t->fallback);
        jw_key(&w, "shape");
        jw_arr_begin(&w);
        jw_int(&w, t->ne[1]);
        jw_int(&w, t->ne[0]);
        jw_arr_end(&w);
        jw_key(&w, "rmse");
        jw_double(&w, t->rmse);
        jw_key(&w, "max_err");
        jw_double(&w, t->max_err);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    buf_putc(&b, '\n');
    struct kerr err;
    if (ckpt_write_file(path, b.p, b.len, &err))
        die_kerr(&err);
    buf_free(&b);
}

// The last path component of dir (for general.name).
static char *
dir_basename(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/')
        s--;
    return xstrndup(dir + s, n - s);
}

static int
cmd_gguf(int argc, char **argv)
{
    struct opts o;
    opts_parse(&o, argc, argv);
    if (o.type < 0)
        die_usage("--type is required (f32, f16, q8_0, q4_0, q4_k)");
    if (!o.c.output)
        die_usage("-o FILE.gguf is required");
    struct model m;
    model_load(&o, &m);
    struct tok *t = tokenizer_load(&o);
    struct kerr err;
    struct qx_gguf_tok gt;
    if (qx_gguf_tok_init(&gt, t, &m.cfg, &err))
        die_kerr(&err);
    char *name = o.name ? xstrdup(o.name) : dir_basename(o.model);
    struct gguf_export_opts eo = {.type = o.type, .mixed = o.type == QTYPE_Q4_K, .name = name};
    struct gguf_export_report rep = {0};
    int slot = 0;
    {
        struct buf tmp;
        buf_init(&tmp);
        buf_printf(&tmp, "%s.tmp", o.c.output);
        slot = cli_tmp_register(tmp.p);
        buf_free(&tmp);
    }
    if (gguf_model_write(o.c.output, &m, &gt.p, &eo, &rep, &err))
        die_kerr(&err);
    cli_tmp_forget(slot);
    int fallbacks = 0;
    double worst = 0;
    for (int i = 0; i < rep.n; i++) {
        fallbacks += rep.t[i].fallback;
        if (rep.t[i].rmse > worst)
            worst = rep.t[i].rmse;
        if (rep.t[i].fallback)
            info("%s: row length %lld does not fit %s; written as %s", rep.t[i].name,
                 (long long)rep.t[i].ne[0], quant_type_name(o.type),
                 quant_type_name(rep.t[i].type));
    }
    info("wrote %s: %d tensors as %s (%d fallbacks, largest RMSE %.3g)", o.c.output, rep.n,
         quant_type_name(o.type), fallbacks, worst);
    if (o.report)
        report_write(o.report, &o, &rep);
    gguf_export_report_free(&rep);
    qx_gguf_tok_free(&gt);
    tok_del(t);
    free(name);
    model_free(&m);
    return 0;
}

static int
cmd_hf(int argc, char **argv)
{
    struct opts o;
    opts_parse(&o, argc, argv);
    if (!o.dtype_set)
        die_usage("--dtype is required (f32, f16, bf16)");
    if (!o.c.output)
        die_usage("-o DIR is required");
    struct model m;
    model_load(&o, &m);
    struct tok *t = tokenizer_load(&o);
    struct kerr err;
    if ((size_t)m.cfg.vocab != tok_vocab_size(t))
        die("tokenizer has %zu tokens, the model's vocabulary is %d", tok_vocab_size(t),
            m.cfg.vocab);
    char *tmp = qx_dir_begin(o.c.output, o.c.force, &err);
    if (!tmp)
        die_kerr(&err);
    struct buf tj, path;
    buf_init(&tj);
    buf_init(&path);
    tok_save_hf(t, &tj);
    buf_printf(&path, "%s/tokenizer.json", tmp);
    int rc = ckpt_save(tmp, &m, o.dtype, &err);
    if (rc == 0)
        rc = ckpt_write_file(path.p, tj.p, tj.len, &err);
    if (rc == 0)
        rc = qx_dir_commit(tmp, o.c.output, o.c.force, &err);
    if (rc) {
        qx_dir_remove(tmp);
        die_kerr(&err);
    }
    info("wrote %s (%s)", o.c.output, st_dtype_name(o.dtype));
    buf_free(&tj);
    buf_free(&path);
    free(tmp);
    tok_del(t);
    model_free(&m);
    return 0;
}

static int
cmd_peft(int argc, char **argv)
{
    struct opts o;
    opts_parse(&o, argc, argv);
    if (!o.adapter)
        die_usage("--adapter DIR is required");
    if (!o.c.output)
        die_usage("-o DIR is required");
    struct kerr err;
    struct qx_lora l;
    if (qx_lora_load(&l, o.adapter, &err))
        die_kerr(&err);
    if (o.model) {
        struct model m;
        if (ckpt_load(o.model, &m, NULL, &err) || qx_lora_check(&l, &m, &err))
            die_kerr(&err);
        model_free(&m);
    }
    char *tmp = qx_dir_begin(o.c.output, o.c.force, &err);
    if (!tmp)
        die_kerr(&err);
    static const char *const files[] = {"adapter_config.json", "adapter_model.safetensors",
                                        "README.md"};
    int rc = 0;
    for (size_t i = 0; i < KILN_ARRAY_LEN(files) && rc == 0; i++) {
        struct buf from, to;
        buf_init(&from);
        buf_init(&to);
        buf_printf(&from, "%s/%s", o.adapter, files[i]);
        buf_printf(&to, "%s/%s", tmp, files[i]);
        struct stat st;
        if (i < 2 || stat(from.p, &st) == 0) // README.md is optional
            rc = qx_copy_file(from.p, to.p, &err);
        buf_free(&from);
        buf_free(&to);
    }
    if (rc == 0)
        rc = qx_dir_commit(tmp, o.c.output, o.c.force, &err);
    if (rc) {
        qx_dir_remove(tmp);
        die_kerr(&err);
    }
    info("wrote %s: %d LoRA pairs, r %d, alpha %g", o.c.output, l.n_pairs, l.r, l.alpha);
    free(tmp);
    qx_lora_free(&l);
    return 0;
}

int
main(int argc, char **argv)
{
    cli_init("quantize-export");
    if (argc < 2)
        die_usage("a subcommand is required (gguf, hf, peft, bundle, verify)");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("quantize-export (kiln) %s\n", KILN_VERSION);
        return 0;
    }
    argc--;
    argv++;
    if (!strcmp(cmd, "gguf"))
        return cmd_gguf(argc, argv);
    if (!strcmp(cmd, "hf"))
        return cmd_hf(argc, argv);
    if (!strcmp(cmd, "peft"))
        return cmd_peft(argc, argv);
    if (!strcmp(cmd, "bundle"))
        return qx_bundle_main(argc, argv);
    if (!strcmp(cmd, "verify"))
        return qx_verify_main(argc, argv);
    die_usage("unknown subcommand '%s' (gguf, hf, peft, bundle, verify)", cmd);
}

// SPDX-License-Identifier: MIT
// train: pretrains or fine-tunes a Llama-style model on tokenized record streams, on the CPU.
//
// The loop: each optimizer step takes batch × accum sequences from a seeded per-epoch
// permutation of the training sequences, runs forward/backward per micro-batch with the
// gradient scaled by 1 / (scored tokens in the whole step), clips by global norm, and applies
// AdamW at the scheduled learning rate. Every --valid-every steps it measures the validation
// loss, keeps the best checkpoint and stops early after --patience validations without
// improvement. Checkpoints hold the full state (weights, AdamW moments, step, generator), so
// --resume continues bit for bit; the results do not depend on --threads.
//
// Data-parallel (mpirun -np R train ...): every rank loads the data and builds the same
// global batch; micro-batch a of the step's accum runs on the rank owning it (a contiguous
// block of accum / R) into a zeroed gradient, and the micro-batch gradients are summed by
// dist_tree_sum in one fixed tree over a — the same tree in a single process — so the weights
// are byte-identical for any R and for the threaded trainer. Every rank then clips and
// updates its own copy identically; rank 0 alone writes checkpoints, the log and stats.
//
// Output directory (-o DIR): DIR/checkpoint-N/ every --save-every steps (newest --keep kept),
// DIR/best/ (with --valid), and at the end the final model's files in DIR itself.
#include "checkpoint.h"
#include "cli.h"
#include "dist.h"
#include "json.h"
#include "kernels.h"
#include "model.h"
#include "peft.h"
#include "class_weights.h"
#include "peft_cli.h"
#include "rec.h"
#include "safetensors.h"
#include "tok.h"
#include "train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct opts {
    struct cli_common c;
    const char *preset, *config, *init, *resume, *tokenizer, *valid, *log;
    enum st_dtype save_dtype; // of the final model.safetensors
    int mode; // -1 auto, 0 pretrain, 1 sft
    int vocab, dim, layers, heads, kv_heads, ffn, max_seq, tie, eos;
    int seq_len, batch, batch_tokens, accum, threads, keep;
    int64_t steps, warmup, valid_every, patience, save_every;
    double epochs, lr, min_lr_ratio, weight_decay, beta1, beta2, adam_eps, clip;
    enum lr_sched sched;
    struct peft_run pr;     // --method and its options (peft_cli.h)
    // --class-weights, --label-field (class_weights.h)
    struct class_weights cw;
    bool dpo;               // --objective dpo
    double beta;            // DPO beta
    const char *retain;     // --retain FILE: a language-model stream watched for forgetting
    int64_t retain_every;
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: train [OPTIONS] -o DIR [FILE...]\n"
            "Train a Llama-style model on tokenized records (input_ids, optional loss_start).\n"
            "\n"
            "Model (new):  --model tiny|small|base  --config config.json  --vocab N --dim N\n"
            "              --layers N --heads N --kv-heads N --ffn N --max-seq N --tie\n"
            "Model (load): --init DIR (Hugging Face checkpoint)   --resume DIR (exact resume)\n"
            "Data:         --mode auto|pretrain|sft  --seq-len T  --eos ID  --tokenizer FILE\n"
            "              --valid FILE  --valid-every N  --patience N\n"
            "Batch:        --batch N (sequences) | --batch-tokens N   --accum N\n"
            "              --steps N | --epochs X\n"
            "Optimizer:    --lr X  --schedule cosine|linear|constant  --warmup N\n"
            "              --min-lr-ratio X  --weight-decay X  --beta1 X  --beta2 X\n"
            "              --adam-eps X  --clip X (0 = off)\n"
            "Fine-tuning:  --method full|lora|qlora|hft  --qlora-type nf4|q8_0|q4_0\n"
            "              --lora-r N  --lora-alpha X  --rslora\n"
            "              --lora-targets q,k,v,o,gate,up,down  --lora-dropout X\n"
            "              --lora-modules-to-save embed_tokens,lm_head\n"
            "              --adapter DIR  --merge  --freeze PATTERN  --lr-mult PATTERN=X\n"
            "              --hft-every N  --objective lm|dpo  --beta X\n"
            "              --retain FILE  --retain-every N   (see PEFT.md)\n"
            "              --class-weights auto|LABEL=W,...  --label-field NAME\n"
            "Output:       -o DIR  --save-every N  --keep N  --save-dtype f32|f16|bf16\n"
            "              --log FILE  --stats FILE\n"
            "Run:          --threads N  --seed N  -q  -v  --progress|--no-progress\n"
            "See train(1).\n");
}

enum {
    OPT_MODEL = CLI_OPT_FIRST_STAGE,
    OPT_CONFIG,
    OPT_INIT,
    OPT_RESUME,
    OPT_TOKENIZER,
    OPT_VALID,
    OPT_LOG,
    OPT_MODE,
    OPT_VOCAB,
    OPT_DIM,
    OPT_LAYERS,
    OPT_HEADS,
    OPT_KV_HEADS,
    OPT_FFN,
    OPT_MAX_SEQ,
    OPT_TIE,
    OPT_EOS,
    OPT_SEQ_LEN,
    OPT_BATCH,
    OPT_BATCH_TOKENS,
    OPT_ACCUM,
    OPT_THREADS,
    OPT_KEEP,
    OPT_STEPS,
    OPT_EPOCHS,
    OPT_WARMUP,
    OPT_VALID_EVERY,
    OPT_PATIENCE,
    OPT_SAVE_EVERY,
    OPT_LR,
    OPT_SCHEDULE,
    OPT_MIN_LR,
    OPT_WD,
    OPT_BETA1,
    OPT_BETA2,
    OPT_ADAM_EPS,
    OPT_CLIP,
    OPT_SAVE_DTYPE,
    OPT_OBJECTIVE,
    OPT_BETA,
    OPT_RETAIN,
    OPT_RETAIN_EVERY,
};

static void
parse_args(struct opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"model", required_argument, 0, OPT_MODEL},
        {"config", required_argument, 0, OPT_CONFIG},
        {"init", required_argument, 0, OPT_INIT},
        {"resume", required_argument, 0, OPT_RESUME},
        {"tokenizer", required_argument, 0, OPT_TOKENIZER},
        {"valid", required_argument, 0, OPT_VALID},
        {"log", required_argument, 0, OPT_LOG},
        {"mode", required_argument, 0, OPT_MODE},
        {"vocab", required_argument, 0, OPT_VOCAB},
        {"dim", required_argument, 0, OPT_DIM},
        {"layers", required_argument, 0, OPT_LAYERS},
        {"heads", required_argument, 0, OPT_HEADS},
        {"kv-heads", required_argument, 0, OPT_KV_HEADS},
        {"ffn", required_argument, 0, OPT_FFN},
        {"max-seq", required_argument, 0, OPT_MAX_SEQ},
        {"tie", no_argument, 0, OPT_TIE},
        {"eos", required_argument, 0, OPT_EOS},
        {"seq-len", required_argument, 0, OPT_SEQ_LEN},
        {"batch", required_argument, 0, OPT_BATCH},
        {"batch-tokens", required_argument, 0, OPT_BATCH_TOKENS},
        {"accum", required_argument, 0, OPT_ACCUM},
        {"threads", required_argument, 0, OPT_THREADS},
        {"keep", required_argument, 0, OPT_KEEP},
        {"steps", required_argument, 0, OPT_STEPS},
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"warmup", required_argument, 0, OPT_WARMUP},
        {"valid-every", required_argument, 0, OPT_VALID_EVERY},
        {"patience", required_argument, 0, OPT_PATIENCE},
        {"save-every", required_argument, 0, OPT_SAVE_EVERY},
        {"lr", required_argument, 0, OPT_LR},
        {"schedule", required_argument, 0, OPT_SCHEDULE},
        {"min-lr-ratio", required_argument, 0, OPT_MIN_LR},
        {"weight-decay", required_argument, 0, OPT_WD},
        {"beta1", required_argument, 0, OPT_BETA1},
        {"beta2", required_argument, 0, OPT_BETA2},
        {"adam-eps", required_argument, 0, OPT_ADAM_EPS},
        {"clip", required_argument, 0, OPT_CLIP},
        {"save-dtype", required_argument, 0, OPT_SAVE_DTYPE},
        {"objective", required_argument, 0, OPT_OBJECTIVE},
        {"beta", required_argument, 0, OPT_BETA},
        {"retain", required_argument, 0, OPT_RETAIN},
        {"retain-every", required_argument, 0, OPT_RETAIN_EVERY},
        PEFT_LONGOPTS,
        CW_LONGOPTS,
        {0, 0, 0, 0},
    };
    cli_common_init(&o->c);
    *o = (struct opts){.c = o->c, .mode = -1, .tie = -1, .eos = -1, .batch = 8, .accum = 1,
                       .keep = 2, .epochs = 1, .lr = 3e-4, .min_lr_ratio = 0.1,
                       .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.95, .adam_eps = 1e-8,
                       .clip = 1.0, .sched = LR_COSINE, .beta = 0.1};
    peft_run_defaults(&o->pr);
    cw_defaults(&o->cw);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN) / dist_local_size(); // ranks share the cores
    o->threads = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu;
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&o->c, opt, optarg, usage) || peft_run_opt(&o->pr, opt, optarg) ||
            cw_opt(&o->cw, opt, optarg))
            continue;
        switch (opt) {
        case OPT_OBJECTIVE:
            if (strcmp(optarg, "lm") == 0 || strcmp(optarg, "dpo") == 0)
                o->dpo = optarg[0] == 'd';
            else
                die_usage("--objective: '%s' is not lm or dpo", optarg);
            break;
        case OPT_BETA: o->beta = cli_parse_double("--beta", optarg, 1e-9, 1e6); break;
        case OPT_RETAIN: o->retain = optarg; break;
        case OPT_RETAIN_EVERY:
            o->retain_every = cli_parse_int("--retain-every", optarg, 1, INT64_MAX / 2);
            break;
        case OPT_MODEL: o->preset = optarg; break;
        case OPT_CONFIG: o->config = optarg; break;
        case OPT_INIT: o->init = optarg; break;
        case OPT_RESUME: o->resume = optarg; break;
        case OPT_TOKENIZER: o->tokenizer = optarg; break;
        case OPT_VALID: o->valid = optarg; break;
        case OPT_LOG: o->log = optarg; break;
        case OPT_MODE:
            if (strcmp(optarg, "auto") == 0)
                o->mode = -1;
            else if (strcmp(optarg, "pretrain") == 0)
                o->mode = 0;
            else if (strcmp(optarg, "sft") == 0)
                o->mode = 1;
            else
                die_usage("--mode: '%s' is not auto, pretrain or sft", optarg);
            break;
        case OPT_VOCAB: o->vocab = (int)cli_parse_int("--vocab", optarg, 1, 1 << 24); break;
        case OPT_DIM: o->dim = (int)cli_parse_int("--dim", optarg, 1, 65536); break;
        case OPT_LAYERS: o->layers = (int)cli_parse_int("--layers", optarg, 1, 1024); break;
        case OPT_HEADS: o->heads = (int)cli_parse_int("--heads", optarg, 1, 1024); break;
        case OPT_KV_HEADS:
            o->kv_heads = (int)cli_parse_int("--kv-heads", optarg, 1, 1024);
            break;
        case OPT_FFN: o->ffn = (int)cli_parse_int("--ffn", optarg, 1, 262144); break;
        case OPT_MAX_SEQ:
            o->max_seq = (int)cli_parse_int("--max-seq", optarg, 1, MODEL_MAX_CONTEXT);
            break;
        case OPT_TIE: o->tie = 1; break;
        case OPT_EOS: o->eos = (int)cli_parse_int("--eos", optarg, 0, 1 << 24); break;
        case OPT_SEQ_LEN:
            o->seq_len = (int)cli_parse_int("--seq-len", optarg, 1, MODEL_MAX_CONTEXT);
            break;
        case OPT_BATCH: o->batch = (int)cli_parse_int("--batch", optarg, 1, 1 << 16); break;
        case OPT_BATCH_TOKENS:
            o->batch_tokens = (int)cli_parse_int("--batch-tokens", optarg, 1, 1 << 24);
            break;
        case OPT_ACCUM: o->accum = (int)cli_parse_int("--accum", optarg, 1, 1 << 16); break;
        case OPT_THREADS: o->threads = (int)cli_parse_int("--threads", optarg, 1, 256); break;
        case OPT_KEEP: o->keep = (int)cli_parse_int("--keep", optarg, 1, 1 << 20); break;
        case OPT_STEPS: o->steps = cli_parse_int("--steps", optarg, 1, INT64_MAX / 2); break;
        case OPT_EPOCHS: o->epochs = cli_parse_double("--epochs", optarg, 1e-9, 1e9); break;
        case OPT_WARMUP: o->warmup = cli_parse_int("--warmup", optarg, 0, INT64_MAX / 2); break;
        case OPT_VALID_EVERY:
            o->valid_every = cli_parse_int("--valid-every", optarg, 0, INT64_MAX / 2);
            break;
        case OPT_PATIENCE:
            o->patience = cli_parse_int("--patience", optarg, 0, INT64_MAX / 2);
            break;
        case OPT_SAVE_EVERY:
            o->save_every = cli_parse_int("--save-every", optarg, 0, INT64_MAX / 2);
            break;
        case OPT_LR: o->lr = cli_parse_double("--lr", optarg, 0, 1e6); break;
        case OPT_SCHEDULE:
            if (strcmp(optarg, "cosine") == 0)
                o->sched = LR_COSINE;
            else if (strcmp(optarg, "linear") == 0)
                o->sched = LR_LINEAR;
            else if (strcmp(optarg, "constant") == 0)
                o->sched = LR_CONSTANT;
            else
                die_usage("--schedule: '%s' is not cosine, linear or constant", optarg);
            break;
        case OPT_MIN_LR: o->min_lr_ratio = cli_parse_double("--min-lr-ratio", optarg, 0, 1); break;
        case OPT_WD: o->weight_decay = cli_parse_double("--weight-decay", optarg, 0, 1e3); break;
        case OPT_BETA1: o->beta1 = cli_parse_double("--beta1", optarg, 0, 0.999999); break;
        case OPT_BETA2: o->beta2 = cli_parse_double("--beta2", optarg, 0, 0.999999999); break;
        case OPT_ADAM_EPS: o->adam_eps = cli_parse_double("--adam-eps", optarg, 0, 1); break;
        case OPT_CLIP: o->clip = cli_parse_double("--clip", optarg, 0, 1e9); break;
        case OPT_SAVE_DTYPE:
            if (strcmp(optarg, "f32") == 0)
                o->save_dtype = ST_F32;
            else if (strcmp(optarg, "f16") == 0)
                o->save_dtype = ST_F16;
            else if (strcmp(optarg, "bf16") == 0)
                o->save_dtype = ST_BF16;
            else
                die_usage("--save-dtype: '%s' is not f32, f16 or bf16", optarg);
            break;
        default: die_usage("unexpected option");
        }
    }
    if (!o->c.output)
        die_usage("-o DIR is required (the output directory)");
    if ((o->init || o->resume) && (o->preset || o->config))
        die_usage("--init/--resume take the model from the checkpoint, not --model/--config");
    if (o->init && o->resume)
        die_usage("--init and --resume exclude each other");
    if (o->preset && o->config)
        die_usage("--model and --config exclude each other");
    if (o->patience && !o->valid_every)
        die_usage("--patience needs --valid-every");
    if (o->valid_every && !o->valid)
        die_usage("--valid-every needs --valid FILE");
    if (o->resume && o->pr.method == METHOD_LORA)
        die_usage("--resume with --method lora: continue an adapter with --init BASE --adapter DIR");
    if (o->dpo && o->valid)
        die_usage("--valid takes language-model records; with --objective dpo use --retain FILE");
    if (o->dpo && o->cw.spec)
        die_usage("--class-weights weights supervised examples; not with --objective dpo");
    if (o->retain_every && !o->retain)
        die_usage("--retain-every needs --retain FILE");
}

// ---- model setup ---------------------------------------------------------------------------

static const char *const eos_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"};
static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<bos>"};

static int
special_of(const struct tok *t, const char *const *names, size_t n)
{
    for (size_t i = 0; t && i < n; i++) {
        int32_t id = tok_special_id(t, names[i]);
        if (id >= 0)
            return id;
    }
    return -1;
}

// Builds, loads or resumes the model. *tok_src gets the tokenizer.json to copy (or NULL);
// *resume_dir the checkpoint to resume from.
static void
setup_model(struct opts *o, struct model *m, const char **tok_src, struct buf *resume_dir)
{
    struct kerr err;
    struct tok *tk = NULL;
    static struct buf src;
    *tok_src = o->tokenizer;
    if (o->tokenizer) {
        tk = tok_load_file(o->tokenizer, NULL, &err);
        if (!tk)
            die_kerr(&err);
    }
    const char *from = o->resume ? NULL : o->init;
    if (o->resume) {
        if (state_find(o->resume, resume_dir, &err) < 0)
            die_kerr(&err);
        from = resume_dir->p;
    }
    if (from) {
        enum st_dtype dt = ST_F32;
        // QLoRA quantizes the layer linears as they are read (never all resident in fp32).
        int rc = o->pr.qlora && !o->resume
                     ? ckpt_load_divert(from, m, &dt, qlora_divert, &o->pr.q, &err)
                     : ckpt_load(from, m, &dt, &err);
        if (rc < 0)
            die_kerr(&err);
        info("%s %s (%s weights)", o->resume ? "resuming from" : "initialized from", from,
             st_dtype_name(dt));
        // Size options repeated with --init/--resume must agree with the checkpoint.
        const struct model_config *c = &m->cfg;
        const struct {
            const char *name;
            int given, have;
        } sizes[] = {{"--vocab", o->vocab, c->vocab},     {"--dim", o->dim, c->dim},
                     {"--layers", o->layers, c->n_layers}, {"--heads", o->heads, c->n_heads},
                     {"--kv-heads", o->kv_heads, c->n_kv_heads}, {"--ffn", o->ffn, c->ffn},
                     {"--max-seq", o->max_seq, c->max_seq},
                     {"--tie", o->tie == 1, o->tie == 1 ? c->tie_embeddings : 1}};
        for (size_t i = 0; i < KILN_ARRAY_LEN(sizes); i++)
            if (sizes[i].given && sizes[i].given != sizes[i].have)
                die("%s %d differs from the checkpoint's %d (%s)", sizes[i].name,
                    sizes[i].given, sizes[i].have, from);
        if (!o->tokenizer) {
            buf_reset(&src);
            buf_printf(&src, "%s/tokenizer.json", from);
            if (access(src.p, R_OK) == 0)
                *tok_src = src.p;
        }
    } else {
        struct model_config c = {0};
        if (o->config) {
            struct buf text = {0};
            if (read_file(o->config, 1u << 20, &text, &err) < 0 ||
                ckpt_config_parse(&c, text.p, text.len, o->config, &err) < 0)
                die_kerr(&err);
            buf_free(&text);
        } else if (model_config_preset(&c, o->preset ? o->preset : "tiny") < 0) {
            die_usage("--model: '%s' is not tiny, small or base", o->preset);
        }
        if (o->vocab)
            c.vocab = o->vocab;
        else if (tk && !o->config)
            c.vocab = (int)tok_vocab_size(tk);
        if (o->dim) c.dim = o->dim;
        if (o->layers) c.n_layers = o->layers;
        if (o->heads) c.n_heads = c.n_kv_heads = o->heads;
        if (o->kv_heads) c.n_kv_heads = o->kv_heads;
        if (o->ffn) c.ffn = o->ffn;
        if (o->max_seq) c.max_seq = o->max_seq;
        if (o->tie == 1) c.tie_embeddings = true;
        if (c.vocab <= 0)
            die_usage("a new model needs --vocab N or --tokenizer FILE for its vocabulary size");
        if (c.eos_id < 0)
            c.eos_id = o->eos >= 0 ? o->eos : special_of(tk, eos_names, KILN_ARRAY_LEN(eos_names));
        if (c.bos_id < 0)
            c.bos_id = special_of(tk, bos_names, KILN_ARRAY_LEN(bos_names));
        if (model_init(m, &c, &err) < 0)
            die_kerr(&err);
        model_init_random(m, o->c.seed);
    }
    if (tk && tok_vocab_size(tk) > (size_t)m->cfg.vocab)
        die("%s: the tokenizer has %zu tokens but the model's vocabulary is %d", o->tokenizer,
            tok_vocab_size(tk), m->cfg.vocab);
    if (o->eos < 0)
        o->eos = m->cfg.eos_id >= 0 ? m->cfg.eos_id
                                    : special_of(tk, eos_names, KILN_ARRAY_LEN(eos_names));
    if (o->eos >= m->cfg.vocab)
        die("--eos %d is outside the vocabulary (0..%d)", o->eos, m->cfg.vocab - 1);
    tok_del(tk);
}

// ---- helpers -------------------------------------------------------------------------------

static void
make_perm(size_t *perm, size_t n, struct model_rng *r)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(model_rng_next(r) % i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

// The options an exact resume depends on, as a JSON object.
static void
args_json(const struct opts *o, const struct dataset *d, int batch, int64_t total,
          struct buf *out)
{
    static const char *const sched[] = {"cosine", "linear", "constant"};
    struct json_writer w;
    json_writer_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "mode");
    jw_str(&w, d->sft ? "sft" : "pretrain");
    jw_key(&w, "sequences");
    jw_uint(&w, d->n_seq);
    jw_key(&w, "seq_len");
    jw_int(&w, d->t);
    jw_key(&w, "batch");
    jw_int(&w, batch);
    jw_key(&w, "accum");
    jw_int(&w, o->accum);
    jw_key(&w, "total_steps");
    jw_int(&w, total);
    jw_key(&w, "lr");
    jw_double(&w, o->lr);
    jw_key(&w, "schedule");
    jw_str(&w, sched[o->sched]);
    jw_key(&w, "warmup");
    jw_int(&w, o->warmup);
    jw_key(&w, "min_lr_ratio");
    jw_double(&w, o->min_lr_ratio);
    jw_key(&w, "weight_decay");
    jw_double(&w, o->weight_decay);
    jw_key(&w, "beta1");
    jw_double(&w, o->beta1);
    jw_key(&w, "beta2");
    jw_double(&w, o->beta2);
    jw_key(&w, "adam_eps");
    jw_double(&w, o->adam_eps);
    jw_key(&w, "clip");
    jw_double(&w, o->clip);
    jw_key(&w, "eos");
    jw_int(&w, o->eos);
    jw_key(&w, "valid_every");
    jw_int(&w, o->valid_every);
    jw_key(&w, "patience");
    jw_int(&w, o->patience);
    jw_key(&w, "seed");
    jw_uint(&w, o->c.seed);
    if (o->cw.spec) {
        jw_key(&w, "class_weights");
        cw_json(&o->cw, &w);
    }
    jw_obj_end(&w);
}

// Removes all but the newest keep checkpoint-N directories of dir.
static void
prune_checkpoints(const char *dir, int keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    long *ns = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "checkpoint-", 11) != 0)
            continue;
        long k = strtol(e->d_name + 11, &end, 10);
        if (*end || end == e->d_name + 11)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ns = xrealloc(ns, cap * sizeof *ns);
        }
        ns[n++] = k;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        size_t newer = 0;
        for (size_t j = 0; j < n; j++)
            newer += ns[j] > ns[i];
        if (newer >= (size_t)keep) {
            struct buf p = {0};
            struct kerr err;
            buf_printf(&p, "%s/checkpoint-%ld", dir, ns[i]);
            if (state_remove_tree(p.p, &err) < 0)
                warnx_("%s", err.msg);
            buf_free(&p);
        }
    }
    free(ns);
}

// Removes .tmp-* directories a killed run left in dir.
static void
remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".tmp-", 5) != 0)
            continue;
        struct buf p = {0};
        struct kerr err;
        buf_printf(&p, "%s/%s", dir, e->d_name);
        if (state_remove_tree(p.p, &err) < 0)
            warnx_("%s", err.msg);
        buf_free(&p);
    }
    closedir(d);
}

// On resume: drops the log lines of steps after the checkpoint (a killed run logged them
// already; the resumed run logs them again).
static void
log_trim(const char *path, int64_t step)
{
    struct buf in = {0}, out = {0};
    struct kerr err;
    if (read_file(path, 0, &in, &err) < 0) {
        buf_free(&in);
        return; // no log yet
    }
    struct json_obj o;
    json_obj_init(&o);
    for (char *p = in.p, *end = in.p + in.len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct json_error je;
        const struct json_field *f;
        int64_t s = 0;
        if (json_obj_parse(&o, p, n, &je) == 0 && (f = json_obj_get(&o, "step")) &&
            json_int(&f->val, &s) == 0 && s <= step) {
            buf_append(&out, p, n);
            buf_putc(&out, '\n');
        }
        p += n + 1;
    }
    json_obj_free(&o);
    if (ckpt_write_file(path, out.p ? out.p : "", out.len, &err) < 0)
        die_kerr(&err);
    buf_free(&in);
    buf_free(&out);
}

static double
mib(size_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

// The loss a unigram model of the training targets (add-one smoothed) gets on the validation
// targets: the baseline a trained model must clearly beat.
static double
unigram_loss(const struct dataset *tr, const struct dataset *va, int vocab)
{
    uint64_t *cnt = xcalloc((size_t)vocab, sizeof *cnt), total = 0;
    int *tok = xmalloc(sizeof(int) * (size_t)tr->t), *tgt = xmalloc(sizeof(int) * (size_t)tr->t);
    for (size_t i = 0; i < tr->n_seq; i++) {
        int scored = 0;
        data_seq(tr, i, tok, tgt, &scored);
        for (int k = 0; k < tr->t; k++)
            if (tgt[k] >= 0)
                cnt[tgt[k]]++, total++;
    }
    double sum = 0;
    uint64_t n = 0;
    for (size_t i = 0; i < va->n_seq; i++) {
        int scored = 0;
        data_seq(va, i, tok, tgt, &scored);
        for (int k = 0; k < va->t; k++)
            if (tgt[k] >= 0)
                sum -= log((double)(cnt[tgt[k]] + 1) / (double)(total + (uint64_t)vocab)), n++;
    }
    free(cnt);
    free(tok);
    free(tgt);
    return n ? sum / (double)n : NAN;
}

// Mean loss per scored token over the whole validation set (forward only).
static double
validate(struct model *m, struct model_acts *a, struct kpool *p, const struct dataset *v,
         int *tok, int *tgt)
{
    double sum = 0;
    uint64_t cnt = 0;
    int t = v->t;
    struct lora *lo = m->hooks ? m->hooks->ctx : NULL; // LoRA: no dropout while measuring
    bool was_training = lo && lo->training;
    if (lo)
        lo->training = false;
    for (size_t i = 0; i < v->n_seq; i += (size_t)a->b) {
        int b = v->n_seq - i < (size_t)a->b ? (int)(v->n_seq - i) : a->b, scored = 0;
        for (int j = 0; j < b; j++)
            data_seq(v, i + (size_t)j, tok + (size_t)j * t, tgt + (size_t)j * t, &scored);
        model_forward(m, a, p, tok, b, t);
        model_logprobs(m, a, p, tgt, a->loss);
        for (int r = 0; r < b * t; r++)
            sum -= a->loss[r];
        cnt += (uint64_t)scored;
    }
    if (lo)
        lo->training = was_training;
    return sum / (double)cnt;
}

// A named checkpoint (best, checkpoint-N) in the output directory: the full trainer state,
// or for LoRA the adapter files.
static int
save_named(const struct opts *o, const char *name, const struct model *m, const struct adamw *opt,
           const struct train_state *st, const char *args, const char *tok_src, struct kerr *err)
{
    if (o->pr.method != METHOD_LORA)
        return state_save_dir(o->c.output, name, m, opt, st, args, tok_src, err);
    struct buf dir = {0};
    buf_printf(&dir, "%s/%s", o->c.output, name);
    int rc = 0;
    if (mkdir(dir.p, 0777) < 0 && errno != EEXIST)
        rc = kerr_set(err, "%s: %s", dir.p, strerror(errno));
    else
        rc = lora_save(dir.p, &o->pr.lo, err);
    buf_free(&dir);
    return rc;
}

// One optimizer step's micro-batches: a's sequences are tok/tgt + a·batch·t, packed to te[a]
// positions each.
struct step_mb {
    struct model *m, *om;
    struct model_acts *acts;
    struct kpool *pool;
    int *tok, *tgt, *te;
    int batch, t, scored;
    const float *roww; // --class-weights: each sequence's weight (NULL: unweighted)
    double wscored;    // the step's scored tokens counted with their weights
};

// dist_leaf_fn: micro-batch a's gradient (scaled by 1 / the step's scored tokens) into v;
// returns its summed loss.
static double
step_mb_grad(void *ctx, int a, float *v)
{
    struct step_mb *s = ctx;
    size_t off = (size_t)a * s->batch * s->t;
    model_grads_zero(s->om);
    double loss =
        s->roww ? cw_forward_backward(s->m, s->acts, s->pool, s->tok + off, s->tgt + off,
                                      s->roww + (size_t)a * s->batch, s->batch, s->te[a],
                                      (float)(1.0 / s->wscored))
                : model_forward_backward(s->m, s->acts, s->pool, s->tok + off, s->tgt + off,
                                         s->batch, s->te[a], 1.0f / (float)s->scored, NULL);
    memcpy(v, s->om->grads, s->om->n_params * sizeof(float));
    return loss;
}

// A usage error every rank detects alike: rank 0 says it and exits 2, which becomes the job's
// status. The other ranks leave quietly with 0: had they exited 2 too, mpirun could end the
// job on their status and kill rank 0 before its message reached the terminal.
static noreturn void
die_usage_all(const char *msg)
{
    dist_finalize();
    if (dist_rank() != 0)
        exit(0);
    die_usage("%s", msg);
}

// ---- main ----------------------------------------------------------------------------------

int
main(int argc, char **argv)
{
    cli_init("train");
    struct kerr err;
    if (dist_init(&argc, &argv, &err) < 0)
        die_kerr(&err);
    int rank = dist_rank(), ranks = dist_size();
    struct opts o;
    parse_args(&o, argc, argv);
    if (rank != 0) // rank 0 speaks for the job
        cli_verbosity = 0, o.c.progress = 0;
    if (ranks > 1 && o.dpo)
        die_usage_all("--objective dpo does not run data-parallel; start it without mpirun");
    if (o.accum % ranks != 0) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "--accum %d is not divisible by the %d MPI ranks: the global batch (--accum "
                 "micro-batches of --batch sequences) is split by whole micro-batches",
                 o.accum, ranks);
        die_usage_all(msg);
    }
    char *stdin_only[] = {"-", NULL};
    char **files = optind < argc ? argv + optind : stdin_only;
    for (char **f = files; ranks > 1 && *f; f++)
        if (strcmp(*f, "-") == 0)
            die_usage_all("under MPI every rank reads the training data: give it as files "
                          "(mpirun passes stdin to rank 0 only)");
    double t_start = now_seconds();

    struct kpool *pool = kpool_new(o.threads);
    info("%d threads, BLAS %s", kpool_threads(pool), kern_blas_desc());
    if (dist_active())
        info("data-parallel: %d MPI ranks (%s), %d threads each", ranks, dist_desc(),
             kpool_threads(pool));

    struct model m;
    const char *tok_src = NULL;
    struct buf resume_dir = {0};
    setup_model(&o, &m, &tok_src, &resume_dir);
    int t = o.seq_len ? o.seq_len : (m.max_t < 256 ? m.max_t : 256);
    if (t > m.max_t)
        die("--seq-len %d exceeds the model's context of %d positions", t, m.max_t);

    struct dataset train = {0}, valid = {0}, retain = {0};
    struct dpo_set pairs = {0};
    if (o.dpo) { // preference pairs: the permutation runs over pairs
        if (dpo_set_load(&pairs, files, m.cfg.vocab, t, &err) < 0)
            die_kerr(&err);
        train.t = t;
        train.n_seq = pairs.n;
        train.records = pairs.n;
        if (pairs.cut)
            warnx_("%d pairs cut to %d tokens", pairs.cut, t + 1);
    } else if (data_load(&train, files, o.mode, m.cfg.vocab, o.eos, t, &err) < 0 ||
               cw_setup(&o.cw, &train, files, &err) < 0) {
        die_kerr(&err);
    }
    if (o.retain) {
        char *rf[] = {(char *)o.retain, NULL};
        if (data_load(&retain, rf, -1, m.cfg.vocab, o.eos, t, &err) < 0)
            die_kerr(&err);
    }
    if (o.valid) {
        char *vf[] = {(char *)o.valid, NULL};
        if (data_load(&valid, vf, train.sft, m.cfg.vocab, o.eos, t, &err) < 0)
            die_kerr(&err);
    }
    int batch = o.batch_tokens ? (o.batch_tokens / t > 0 ? o.batch_tokens / t : 1) : o.batch;
    int64_t per_step = (int64_t)batch * o.accum;
    int64_t total = o.steps ? o.steps : (int64_t)(o.epochs * (double)train.n_seq / per_step);
    if (total < 1)
        total = 1;

    const struct model_config *c = &m.cfg;
    info("model: %.3fM parameters (vocab %d, dim %d, %d layers, %d/%d heads, ffn %d, %s)",
         (double)m.n_params / 1e6, c->vocab, c->dim, c->n_layers, c->n_heads, c->n_kv_heads,
         c->ffn, c->tie_embeddings ? "tied embeddings" : "untied");
    info("data: %llu records, %zu %s sequences of %d tokens%s; %d x %d sequences per step, "
         "%lld steps (%.2f epochs)",
         (unsigned long long)train.records, train.n_seq, train.sft ? "supervised" : "packed", t,
         valid.n_seq ? ", validation set loaded" : "", batch, o.accum, (long long)total,
         (double)total * per_step / (double)train.n_seq);
    double unigram = valid.n_seq ? unigram_loss(&train, &valid, m.cfg.vocab) : NAN;
    if (valid.n_seq)
        info("validation: %zu sequences; unigram baseline loss %.4f (perplexity %.2f)",
             valid.n_seq, unigram, exp(unigram));
    if (train.truncated || train.skipped)
        warnx_("%llu examples cut to %d tokens, %llu with nothing to score skipped",
               (unsigned long long)train.truncated, t + 1, (unsigned long long)train.skipped);

    peft_run_setup(&o.pr, &m, pool, o.c.seed);
    struct model *om = o.pr.om; // what the optimizer updates (the adapter's slab for LoRA)
    int acts_b = o.dpo ? 2 : batch; // DPO: one pair (two rows) at a time
    struct model_acts acts;
    if (model_acts_init(&acts, &m, acts_b, t, true, kpool_threads(pool), &err) < 0)
        die_kerr(&err);
    model_grads_alloc(om);
    struct adamw opt;
    adamw_init(&opt, om, (float)o.beta1, (float)o.beta2, (float)o.adam_eps,
               (float)o.weight_decay);
    size_t pbytes = peft_run_base_bytes(&o.pr, &m), obytes = om->n_params * sizeof(float);
    size_t abytes = model_acts_bytes(c, acts_b, t, true, kpool_threads(pool));
    if (om != &m)
        pbytes += obytes;
    info("memory: parameters %.1f MiB, gradients %.1f MiB, AdamW %.1f MiB, activations %.1f "
         "MiB, total %.1f MiB",
         mib(pbytes), mib(obytes), mib(2 * obytes), mib(abytes),
         mib(pbytes + 3 * obytes + abytes));
    if (o.dpo) {
        bool lora_on = o.pr.method == METHOD_LORA;
        if (lora_on)
            o.pr.lo.training = false;
        dpo_set_reference(&pairs, &m, pool, t);
        if (lora_on)
            o.pr.lo.training = true;
        info("DPO: %zu pairs, beta %g, reference log-probs of the initial model cached",
             pairs.n, o.beta);
    }

    struct buf args = {0};
    args_json(&o, &train, batch, total, &args);
    struct train_state st = {.total_steps = total, .seed = o.c.seed, .best_loss = NAN,
                             .ranks = dist_active() ? ranks : 0};
    model_rng_seed(&st.rng_epoch, o.c.seed ^ 0x747261696e000000ull); // "train"
    if (o.resume) {
        if (state_load(resume_dir.p, &m, &opt, &st, args.p, &err) < 0)
            die_kerr(&err);
        info("resuming at step %lld of %lld", (long long)st.step, (long long)total);
    }
    size_t *perm = xmalloc(train.n_seq * sizeof *perm);
    struct model_rng rng = st.rng_epoch;
    make_perm(perm, train.n_seq, &rng);

    bool writer = rank == 0; // the one rank that writes files
    if (writer && mkdir(o.c.output, 0777) < 0 && errno != EEXIST)
        die("%s: cannot create:", o.c.output);
    if (writer)
        remove_stale_tmp(o.c.output);
    FILE *logf = NULL;
    if (writer && o.log && o.resume)
        log_trim(o.log, st.step);
    if (writer && o.log && !(logf = fopen(o.log, o.resume ? "a" : "w")))
        die("%s:", o.log);

    size_t rows = (size_t)(per_step > 2 ? per_step : 2);
    int *tok = xmalloc(sizeof(int) * rows * t);
    int *tgt = xmalloc(sizeof(int) * rows * t);
    size_t *pair_idx = xmalloc(sizeof(size_t) * (size_t)per_step);
    double dpo_margin = 0, dpo_acc = 0;
    int64_t retain_every = o.retain_every ? o.retain_every : o.valid_every ? o.valid_every : 10;
    int *lens = xmalloc(sizeof(int) * (size_t)per_step);
    float *roww = xmalloc(sizeof(float) * (size_t)per_step);
    struct step_mb mb = {.m = &m, .om = om, .acts = &acts, .pool = pool, .tok = tok, .tgt = tgt,
                         .te = xmalloc(sizeof(int) * (size_t)o.accum), .batch = batch, .t = t,
                         .roww = o.cw.spec ? roww : NULL};
    double *mb_loss = xmalloc(sizeof(double) * (size_t)o.accum);
    float *gsum = o.dpo ? NULL : xmalloc(om->n_params * sizeof(float));
    bool progress = o.c.progress == 1 || (o.c.progress < 0 && isatty(2) && cli_verbosity > 0);
    double t_loop = now_seconds(), last_draw = 0, loss = NAN;
    int64_t start_step = st.step;
    uint64_t start_tokens = st.tokens_seen;
    struct buf last_saved = {0};
    buf_puts(&last_saved, o.resume ? resume_dir.p : "none");
    const char *kill_at = getenv("KILN_TRAIN_KILL_AFTER_STEP"); // test hook: SIGKILL after N
    struct buf line = {0};
    bool stopped_early = false;
    for (int64_t step = st.step + 1; step <= total; step++) {
        double ts = now_seconds();
        peft_run_step(&o.pr, &m, step, (int64_t)train.n_seq / per_step, o.c.seed);
        if (o.pr.hft_trains.p) {
            st.hft_round = o.pr.hft_round;
            st.hft_trains = o.pr.hft_trains.p;
        }
        model_grads_zero(om);
        int scored = 0;
        double wscored = 0; // scored tokens, each counted with its example's class weight
        int64_t g0 = (step - 1) * per_step;
        for (int64_t k = 0; k < per_step; k++) {
            int64_t g = g0 + k, ep = g / (int64_t)train.n_seq;
            while (st.epoch < ep) { // next epoch: a new permutation from the running generator
                st.epoch++;
                st.rng_epoch = rng;
                make_perm(perm, train.n_seq, &rng);
            }
            size_t seq = perm[g % (int64_t)train.n_seq];
            if (o.dpo)
                pair_idx[k] = seq;
            else {
                int before = scored;
                lens[k] = data_seq(&train, seq, tok + k * t, tgt + k * t, &scored);
                roww[k] = cw_weight(&o.cw, seq);
                wscored += (double)roww[k] * (scored - before);
            }
        }
        double loss_sum = 0;
        uint64_t step_tokens = 0;
        if (o.dpo) {
            loss_sum = dpo_set_step(&pairs, &m, &acts, pool, t, pair_idx, (int)per_step, o.beta,
                                    &dpo_margin, &dpo_acc) * (double)per_step;
            scored = (int)per_step;
            for (int64_t k = 0; k < per_step; k++) {
                size_t i = pair_idx[k];
                step_tokens += (uint64_t)(2 * pairs.np[i] + pairs.nc[i] + pairs.nr[i]);
            }
        }
        for (int a = 0; a < (o.dpo ? 0 : o.accum); a++) {
            int *bt = tok + (size_t)a * batch * t, *bg = tgt + (size_t)a * batch * t;
            int te = t;
            if (train.sft) { // supervised: run only up to the longest example of the batch
                te = 1;
                for (int j = 0; j < batch; j++)
                    te = lens[a * batch + j] > te ? lens[a * batch + j] : te;
                for (int j = 1; j < batch && te < t; j++) {
                    memmove(bt + (size_t)j * te, bt + (size_t)j * t, sizeof(int) * te);
                    memmove(bg + (size_t)j * te, bg + (size_t)j * t, sizeof(int) * te);
                }
            }
            mb.te[a] = te;
            step_tokens += (uint64_t)batch * te;
        }
        if (!o.dpo) { // micro-batch gradients summed in the fixed tree, over the ranks
            mb.scored = scored;
            mb.wscored = wscored;
            if (dist_tree_sum(o.accum, step_mb_grad, &mb, gsum, om->n_params, mb_loss, &err) < 0)
                die_kerr(&err);
            memcpy(om->grads, gsum, om->n_params * sizeof(float));
            for (int a = 0; a < o.accum; a++)
                loss_sum += mb_loss[a];
        }
        loss = loss_sum / (o.cw.spec ? wscored : scored);
        double norm = o.clip > 0 ? model_grad_clip(om, pool, o.clip) : model_grad_norm(om, pool);
        if (!isfinite(loss) || !isfinite(norm)) { // nothing is written: checkpoints stay good
            if (progress)
                fputs("\r\033[K", stderr);
            die("step %lld: the %s is %s; stopping (last good checkpoint: %s)", (long long)step,
                isfinite(loss) ? "gradient norm" : "loss",
                isnan(isfinite(loss) ? norm : loss) ? "NaN" : "infinite", last_saved.p);
        }
        float lr = lr_at(o.sched, (float)o.lr, step, o.warmup, total, (float)o.min_lr_ratio);
        peft_run_update(&o.pr, &opt, pool, lr);
        st.step = step;
        st.tokens_seen += step_tokens;
        double now = now_seconds(), elapsed = now - t_loop;
        if (logf) {
            buf_reset(&line);
            struct json_writer w;
            json_writer_init(&w, &line);
            jw_obj_begin(&w);
            jw_key(&w, "step");
            jw_int(&w, step);
            jw_key(&w, "loss");
            jw_double(&w, loss);
            jw_key(&w, "lr");
            jw_double(&w, lr);
            jw_key(&w, "grad_norm");
            jw_double(&w, norm);
            jw_key(&w, "tokens");
            jw_uint(&w, step_tokens);
            jw_key(&w, "scored_tokens");
            jw_int(&w, scored);
            jw_key(&w, "tokens_per_s");
            jw_double(&w, (double)step_tokens / (now - ts));
            jw_key(&w, "elapsed");
            jw_double(&w, elapsed);
            if (o.dpo) {
                jw_key(&w, "reward_margin");
                jw_double(&w, dpo_margin);
                jw_key(&w, "accuracy");
                jw_double(&w, dpo_acc);
            }
            jw_obj_end(&w);
            fprintf(logf, "%s\n", line.p);
            fflush(logf);
        }
        if (progress && (now - last_draw > 0.16 || step == total)) {
            double rate = (double)(st.tokens_seen - start_tokens) /
                          (elapsed > 0 ? elapsed : 1);
            double eta = (now - t_loop) / (double)(step - start_step) * (double)(total - step);
            fprintf(stderr, "\r\033[Kstep %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %.0fs",
                    (long long)step, (long long)total, loss, lr, rate, eta);
            last_draw = now;
        }
        if (retain.n_seq && (step % retain_every == 0 || step == total)) {
            double rl = validate(&m, &acts, pool, &retain, tok, tgt);
            if (progress)
                fputs("\r\033[K", stderr);
            info("step %lld: task loss %.4f, retain loss %.4f", (long long)step, loss, rl);
            if (logf) {
                fprintf(logf, "{\"step\":%lld,\"loss\":", (long long)step);
                buf_reset(&line);
                json_write_double(&line, loss);
                buf_puts(&line, ",\"retain_loss\":");
                json_write_double(&line, rl);
                fprintf(logf, "%s}\n", line.p);
                fflush(logf);
            }
        }
        if (valid.n_seq && ((o.valid_every && step % o.valid_every == 0) || step == total)) {
            double vl = validate(&m, &acts, pool, &valid, tok, tgt);
            if (progress)
                fputs("\r\033[K", stderr);
            bool better = isnan(st.best_loss) || vl < st.best_loss;
            info("step %lld: valid loss %.4f, perplexity %.3f%s", (long long)step, vl, exp(vl),
                 better ? " (best)" : "");
            if (logf) {
                buf_reset(&line);
                struct json_writer w;
                json_writer_init(&w, &line);
                jw_obj_begin(&w);
                jw_key(&w, "step");
                jw_int(&w, step);
                jw_key(&w, "valid_loss");
                jw_double(&w, vl);
                jw_key(&w, "valid_ppl");
                jw_double(&w, exp(vl));
                jw_obj_end(&w);
                fprintf(logf, "%s\n", line.p);
                fflush(logf);
            }
            if (!isfinite(vl))
                die("step %lld: the validation loss is not finite; stopping", (long long)step);
            if (better) {
                st.best_loss = vl;
                st.best_step = step;
                st.bad_validations = 0;
                if (writer && save_named(&o, "best", &m, &opt, &st, args.p, tok_src, &err) < 0)
                    die_kerr(&err);
            } else if (o.patience && ++st.bad_validations >= o.patience) {
                stopped_early = true;
            }
        }
        if (o.save_every && step % o.save_every == 0 && step != total && !stopped_early) {
            char name[64];
            snprintf(name, sizeof name, "checkpoint-%lld", (long long)step);
            if (writer && save_named(&o, name, &m, &opt, &st, args.p, tok_src, &err) < 0)
                die_kerr(&err);
            if (writer)
                prune_checkpoints(o.c.output, o.keep);
            buf_reset(&last_saved);
            buf_printf(&last_saved, "%s/%s", o.c.output, name);
        }
        if (kill_at && atoll(kill_at) == step && writer) // under MPI mpirun ends the others
            raise(SIGKILL);
        if (stopped_early) {
            if (progress)
                fputs("\r\033[K", stderr);
            info("step %lld: no improvement in %lld validations; stopping early (best: step "
                 "%lld, loss %.4f)",
                 (long long)step, (long long)o.patience, (long long)st.best_step, st.best_loss);
            break;
        }
    }
    if (progress)
        fputs("\r\033[K", stderr);
    double secs = now_seconds() - t_loop;
    if (writer && !peft_run_save(&o.pr, &m, pool, o.c.output, o.save_dtype) &&
        state_save_files(o.c.output, &m, &opt, &st, args.p, tok_src, o.save_dtype, &err) < 0)
        die_kerr(&err);
    if (logf && fclose(logf) != 0)
        die("%s: write failed:", o.log);
    info("done: %lld steps, loss %.4f, %.0f tokens/s, %.1f s, model in %s", (long long)st.step,
         loss, secs > 0 ? (double)(st.tokens_seen - start_tokens) / secs : 0,
         now_seconds() - t_start,
         o.c.output);

    struct stats stats;
    stats_init(&stats, "train");
    stats.t0 = t_start; // the whole run, not just the writing of the stats
    stats.records_in = train.records;
    stats_u64(&stats, "steps", (uint64_t)st.step);
    stats_u64(&stats, "tokens", st.tokens_seen);
    stats_u64(&stats, "parameters", m.n_params);
    stats_u64(&stats, "threads", (uint64_t)kpool_threads(pool));
    if (dist_active()) {
        stats_u64(&stats, "mpi_ranks", (uint64_t)ranks);
        stats_u64(&stats, "mpi_bytes_sent_rank0", dist_bytes_sent());
    }
    stats_f64(&stats, "final_loss", loss);
    stats_f64(&stats, "tokens_per_s",
              secs > 0 ? (double)(st.tokens_seen - start_tokens) / secs : 0);
    if (!isnan(st.best_loss)) {
        stats_f64(&stats, "best_valid_loss", st.best_loss);
        stats_f64(&stats, "unigram_valid_loss", unigram);
    }
    if (writer && stats_write(&stats, o.c.stats, &err) < 0)
        die_kerr(&err);
    stats_free(&stats);

    free(tok);
    free(tgt);
    free(lens);
    free(roww);
    free(mb.te);
    free(mb_loss);
    free(gsum);
    free(pair_idx);
    free(perm);
    peft_run_free(&o.pr);
    cw_free(&o.cw);
    dpo_set_free(&pairs);
    data_free(&retain);
    buf_free(&line);
    buf_free(&last_saved);
    buf_free(&args);
    buf_free(&resume_dir);
    adamw_free(&opt);
    model_acts_free(&acts);
    data_free(&train);
    data_free(&valid);
    model_free(&m);
    kpool_del(pool);
    cli_finish_stdout();
    dist_finalize();
    return 0;
}

// SPDX-License-Identifier: MIT
// peft_cli: the train stage's fine-tuning methods (see peft_cli.h): full training, LoRA
// (adapter saved in PEFT format, optionally merged) and Half Fine-Tuning, with --freeze and
// --lr-mult on top of full/HFT training.
#include "peft_cli.h"

#include "checkpoint.h"
#include "peft.h"
#include "quant.h"
#include "rec.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
peft_run_defaults(struct peft_run *r)
{
    memset(r, 0, sizeof *r);
    lora_config_default(&r->lc);
    r->hft_round = -1;
}

bool
peft_run_opt(struct peft_run *r, int opt, const char *arg)
{
    struct kerr err;
    switch (opt) {
    case PEFT_OPT_METHOD:
        if (strcmp(arg, "full") == 0)
            r->method = METHOD_FULL;
        else if (strcmp(arg, "lora") == 0)
            r->method = METHOD_LORA;
        else if (strcmp(arg, "hft") == 0)
            r->method = METHOD_HFT;
        else if (strcmp(arg, "qlora") == 0)
            r->method = METHOD_LORA;
        else
            die_usage("--method: '%s' is not full, lora, qlora or hft", arg);
        r->qlora = strcmp(arg, "qlora") == 0;
        return true;
    case PEFT_OPT_LORA_R: r->lc.r = (int)cli_parse_int("--lora-r", arg, 1, 65536); return true;
    case PEFT_OPT_LORA_ALPHA:
        r->lc.alpha = cli_parse_double("--lora-alpha", arg, 1e-9, 1e9);
        return true;
    case PEFT_OPT_LORA_DROPOUT:
        r->lc.dropout = cli_parse_double("--lora-dropout", arg, 0, 0.999);
        return true;
    case PEFT_OPT_LORA_TARGETS:
        if (lora_targets_parse(arg, &r->lc.targets, &err) < 0)
            die_usage("--lora-targets: %s", err.msg);
        return true;
    case PEFT_OPT_LORA_MODULES:
        if (lora_modules_parse(arg, &r->lc.modules, &err) < 0)
            die_usage("--lora-modules-to-save: %s", err.msg);
        return true;
    case PEFT_OPT_RSLORA: r->lc.rslora = true; return true;
    case PEFT_OPT_ADAPTER: r->adapter = arg; return true;
    case PEFT_OPT_MERGE: r->merge = true; return true;
    case PEFT_OPT_FREEZE: r->freeze = arg; return true;
    case PEFT_OPT_LR_MULT:
        if (r->n_lr_mult == PEFT_MAX_LR_MULT)
            die_usage("--lr-mult: at most %d", PEFT_MAX_LR_MULT);
        if (!strchr(arg, '='))
            die_usage("--lr-mult: expected PATTERN=X, got '%s'", arg);
        r->lr_mult[r->n_lr_mult++] = arg;
        return true;
    case PEFT_OPT_HFT_EVERY:
        r->hft_every = cli_parse_int("--hft-every", arg, 0, INT64_MAX / 2);
        return true;
    case PEFT_OPT_QLORA_TYPE:
        if (strcasecmp(arg, "nf4") == 0)
            r->q.type = QTYPE_NF4;
        else if (strcasecmp(arg, "q8_0") == 0)
            r->q.type = QTYPE_Q8_0;
        else if (strcasecmp(arg, "q4_0") == 0)
            r->q.type = QTYPE_Q4_0;
        else
            die_usage("--qlora-type: '%s' is not nf4, q8_0 or q4_0", arg);
        return true;
    default: return false;
    }
}

void
peft_run_setup(struct peft_run *r, struct model *m, struct kpool *pool, uint64_t seed)
{
    struct kerr err;
    r->om = m;
    const char *name = r->qlora ? "qlora" : "lora";
    if (r->method != METHOD_LORA && (r->adapter || r->merge || r->lc.modules))
        die_usage("--adapter, --merge and --lora-modules-to-save need --method lora or qlora");
    if (r->method == METHOD_LORA && (r->freeze || r->n_lr_mult))
        die_usage("--freeze and --lr-mult apply to --method full|hft (--method %s freezes the "
                  "base)", name);
    if (r->method != METHOD_HFT && r->hft_every)
        die_usage("--hft-every needs --method hft");
    if (!r->qlora && r->q.type)
        die_usage("--qlora-type needs --method qlora");
    if (r->method == METHOD_LORA) {
        if (r->adapter) {
            if (lora_load(r->adapter, &r->lo, m, &err) < 0)
                die_kerr(&err);
            r->lo.seed = seed;
            r->lc = r->lo.cfg;
        } else if (lora_init(&r->lo, m, &r->lc, seed, &err) < 0) {
            die_kerr(&err);
        }
        lora_attach(&r->lo, m, pool);
        r->om = &r->lo.view;
        if (r->qlora) {
            size_t before = m->n_params * sizeof(float);
            qlora_attach(&r->q, m);
            size_t after = qlora_bytes(&r->q) + r->q.slab * sizeof(float);
            if (r->q.w[0].type == QTYPE_NF4)
                info("QLoRA: base layer linears in NF4 (blocks of %d, double-quantized absmax): "
                     "weights %.2f MiB instead of %.2f MiB",
                     QLORA_BLOCK, (double)after / 1048576.0, (double)before / 1048576.0);
            else
                info("QLoRA: base layer linears in %s (blocks of 32): weights %.2f MiB instead "
                     "of %.2f MiB", quant_type_name(r->q.w[0].type),
                     (double)after / 1048576.0, (double)before / 1048576.0);
        }
        size_t n = lora_params(&r->lo);
        for (int k = 0; k < LORA_N_MODULES; k++) // the modules to save are reported below
            if (r->lo.mod_index[k] >= 0)
                n -= r->lo.view.tensors[r->lo.mod_index[k]].numel;
        info("%s: r %d, alpha %g (scale %.4g%s), dropout %g, %zu adapter parameters "
             "(%.3f%% of %zu)%s%s",
             r->qlora ? "QLoRA" : "LoRA", r->lc.r, r->lc.alpha, r->lo.scale,
             r->lc.rslora ? ", rslora" : "", r->lc.dropout, n, 100.0 * (double)n / (double)m->n_params, m->n_params,
             r->adapter ? ", continuing " : "", r->adapter ? r->adapter : "");
        for (int k = 0; k < LORA_N_MODULES; k++)
            if (r->lo.mod_index[k] >= 0)
                info("module to save (trained in full): %s, %zu parameters",
                     r->lo.view.tensors[r->lo.mod_index[k]].name,
                     r->lo.view.tensors[r->lo.mod_index[k]].numel);
        return;
    }
    if (r->freeze && peft_select(m, r->freeze, m->frozen, &err) < 0)
        die("--freeze: %s", err.msg);
    if (r->n_lr_mult) {
        r->mult = xmalloc(sizeof(float) * (size_t)m->n_tensors);
        for (int i = 0; i < m->n_tensors; i++)
            r->mult[i] = 1.0f;
        bool *sel = xmalloc((size_t)m->n_tensors);
        for (int k = 0; k < r->n_lr_mult; k++) { // later ones win
            const char *eq = strrchr(r->lr_mult[k], '=');
            char *pat = xstrndup(r->lr_mult[k], (size_t)(eq - r->lr_mult[k]));
            double x = cli_parse_double("--lr-mult", eq + 1, 0, 1e6);
            memset(sel, 0, (size_t)m->n_tensors);
            if (peft_select(m, pat, sel, &err) < 0)
                die("--lr-mult: %s", err.msg);
            for (int i = 0; i < m->n_tensors; i++)
                if (sel[i])
                    r->mult[i] = (float)x;
            free(pat);
        }
        free(sel);
    }
    size_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        n += m->frozen[i] ? 0 : m->tensors[i].numel;
    if (r->freeze)
        info("--freeze %s: %zu of %zu parameters train", r->freeze, n, m->n_params);
}

void
peft_run_step(struct peft_run *r, struct model *m, int64_t step, int64_t steps_per_epoch,
              uint64_t seed)
{
    if (r->method == METHOD_LORA) {
        lora_next_batch(&r->lo);
        return;
    }
    if (r->method != METHOD_HFT)
        return;
    int64_t every = r->hft_every ? r->hft_every : (steps_per_epoch > 0 ? steps_per_epoch : 1);
    int64_t round = (step - 1) / every;
    if (round == r->hft_round)
        return;
    r->hft_round = round;
    size_t n = peft_hft_round(m, seed, round);
    if (r->freeze) { // --freeze stays frozen whatever the round picks
        struct kerr err;
        if (peft_select(m, r->freeze, m->frozen, &err) < 0)
            die("--freeze: %s", err.msg);
    }
    buf_reset(&r->hft_trains);
    peft_hft_describe(m, &r->hft_trains);
    info("step %lld: HFT round %lld trains %zu of %zu parameters: %s", (long long)step,
         (long long)round, n, m->n_params, r->hft_trains.p ? r->hft_trains.p : "");
}

size_t
peft_run_base_bytes(const struct peft_run *r, const struct model *m)
{
    if (r->method == METHOD_LORA && r->qlora)
        return qlora_bytes(&r->q) + r->q.slab * sizeof(float);
    return m->n_params * sizeof(float);
}

void
peft_run_update(struct peft_run *r, struct adamw *o, struct kpool *pool, float lr)
{
    peft_adamw_update(o, r->om, pool, lr, r->mult);
    if (r->method == METHOD_LORA)
        lora_sync(&r->lo); // modules to save: the updated copies into the base
}

bool
peft_run_save(struct peft_run *r, struct model *m, struct kpool *pool, const char *dir,
              enum st_dtype dtype)
{
    if (r->method != METHOD_LORA)
        return false;
    struct kerr err;
    if (lora_save(dir, &r->lo, &err) < 0)
        die_kerr(&err);
    if (r->merge) {
        lora_detach(&r->lo, m);
        if (r->qlora) // the base the adapter was trained against, dequantized
            qlora_detach(&r->q, m);
        lora_merge(&r->lo, m, pool);
        if (ckpt_save(dir, m, dtype, &err) < 0)
            die_kerr(&err);
        info("merged the adapter into the base: %s/model.safetensors", dir);
    }
    return true;
}

void
peft_run_free(struct peft_run *r)
{
    if (r->method == METHOD_LORA)
        lora_free(&r->lo);
    if (r->qlora)
        qlora_free(&r->q);
    free(r->mult);
    buf_free(&r->hft_trains);
}

// ---- DPO -----------------------------------------------------------------------------------

int
dpo_set_load(struct dpo_set *d, char *const *files, int vocab, int t, struct kerr *err)
{
    memset(d, 0, sizeof *d);
    int rc = 0;
    for (int i = 0; files[i] && rc == 0; i++) {
        struct rec_reader *rr = rec_reader_open(files[i], err);
        if (!rr)
            return dpo_set_free(d), -1;
        struct rec_line line;
        int got;
        while ((got = rec_reader_next(rr, &line, err)) == 1) {
            int *p, *c, *r, np, nc, nr;
            if (dpo_record_parse(line.p, line.n, vocab, &p, &np, &c, &nc, &r, &nr, err) < 0) {
                kerr_prefix(err, "%s:%llu", rec_reader_name(rr), (unsigned long long)line.lineno);
                got = -1;
                break;
            }
            if (np >= t) {
                kerr_set(err, "%s:%llu: prompt_ids has %d tokens, no room for a response in "
                         "--seq-len %d", rec_reader_name(rr), (unsigned long long)line.lineno,
                         np, t);
                free(p), free(c), free(r);
                got = -1;
                break;
            }
            if (np + nc > t + 1 || np + nr > t + 1)
                d->cut++;
            if (d->n == d->pcap) {
                d->pcap = d->pcap ? 2 * d->pcap : 256;
                d->off = xrealloc(d->off, d->pcap * sizeof *d->off);
                d->np = xrealloc(d->np, d->pcap * sizeof(int));
                d->nc = xrealloc(d->nc, d->pcap * sizeof(int));
                d->nr = xrealloc(d->nr, d->pcap * sizeof(int));
            }
            size_t need = d->n_ids + (size_t)np + nc + nr;
            if (need > d->cap) {
                d->cap = need * 2;
                d->ids = xrealloc(d->ids, d->cap * sizeof(int));
            }
            d->off[d->n] = d->n_ids;
            d->np[d->n] = np, d->nc[d->n] = nc, d->nr[d->n] = nr;
            memcpy(d->ids + d->n_ids, p, sizeof(int) * np);
            memcpy(d->ids + d->n_ids + np, c, sizeof(int) * nc);
            memcpy(d->ids + d->n_ids + np + nc, r, sizeof(int) * nr);
            d->n_ids = need;
            d->n++;
            free(p), free(c), free(r);
        }
        if (got < 0)
            rc = -1;
        rec_reader_close(rr);
    }
    if (rc == 0 && d->n == 0)
        rc = kerr_set(err, "%s: no preference pairs", files[0] && strcmp(files[0], "-") ? files[0]
                                                                                    : "<stdin>");
    if (rc < 0)
        dpo_set_free(d);
    return rc;
}

void
dpo_set_free(struct dpo_set *d)
{
    free(d->ids);
    free(d->off);
    free(d->np);
    free(d->nc);
    free(d->nr);
    free(d->ref);
    memset(d, 0, sizeof *d);
}

static int
pair_batch(const struct dpo_set *d, size_t i, int t, int *tok, int *tgt)
{
    const int *p = d->ids + d->off[i];
    return dpo_pair_batch(p, d->np[i], p + d->np[i], d->nc[i], p + d->np[i] + d->nc[i],
                          d->nr[i], t, tok, tgt);
}

void
dpo_set_reference(struct dpo_set *d, struct model *m, struct kpool *pool, int t)
{
    struct model_acts e;
    struct kerr err;
    if (model_acts_init(&e, m, 2, t, false, kpool_threads(pool), &err) < 0)
        die_kerr(&err);
    int *tok = xmalloc(sizeof(int) * 2 * (size_t)t), *tgt = xmalloc(sizeof(int) * 2 * (size_t)t);
    d->ref = xmalloc(sizeof(double) * 2 * d->n);
    for (size_t i = 0; i < d->n; i++) {
        int te = pair_batch(d, i, t, tok, tgt);
        for (int j = 0; j < te; j++) { // both rows packed to te positions
            tok[te + j] = tok[t + j];
            tgt[te + j] = tgt[t + j];
        }
        dpo_logps(m, &e, pool, tok, tgt, te, d->ref + 2 * i);
    }
    free(tok);
    free(tgt);
    model_acts_free(&e);
}

double
dpo_set_step(const struct dpo_set *d, struct model *m, struct model_acts *a, struct kpool *pool,
             int t, const size_t *idx, int k, double beta, double *margin, double *acc)
{
    int *tok = xmalloc(sizeof(int) * 2 * (size_t)t), *tgt = xmalloc(sizeof(int) * 2 * (size_t)t);
    double loss = 0, mg = 0, ac = 0;
    for (int j = 0; j < k; j++) {
        size_t i = idx[j];
        int te = pair_batch(d, i, t, tok, tgt);
        for (int q = 0; q < te; q++) {
            tok[te + q] = tok[t + q];
            tgt[te + q] = tgt[t + q];
        }
        struct dpo_result res;
        dpo_forward_backward(m, a, pool, tok, tgt, te, d->ref + 2 * i, beta, 1.0f / (float)k,
                             &res);
        loss += res.loss;
        mg += res.margin;
        ac += res.correct;
    }
    free(tok);
    free(tgt);
    *margin = mg / k;
    *acc = ac / k;
    return loss / k;
}

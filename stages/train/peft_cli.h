// SPDX-License-Identifier: MIT
// peft_cli.h: the train stage's fine-tuning methods — the --method, --lora-*, --adapter,
// --merge, --freeze, --lr-mult and --hft-every options and what they do to the model and the
// optimizer (peft_cli.c, on common/lora.h and common/peft.h). main.c calls these hooks.
#ifndef KILN_TRAIN_PEFT_CLI_H
#define KILN_TRAIN_PEFT_CLI_H

#include "cli.h"
#include "lora.h"
#include "model.h"
#include "qlora.h"
#include "safetensors.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

enum {
    PEFT_OPT_METHOD = CLI_OPT_FIRST_STAGE + 200,
    PEFT_OPT_LORA_R,
    PEFT_OPT_LORA_ALPHA,
    PEFT_OPT_LORA_DROPOUT,
    PEFT_OPT_LORA_TARGETS,
    PEFT_OPT_RSLORA,
    PEFT_OPT_ADAPTER,
    PEFT_OPT_MERGE,
    PEFT_OPT_FREEZE,
    PEFT_OPT_LR_MULT,
    PEFT_OPT_HFT_EVERY,
    PEFT_OPT_QLORA_TYPE,
    PEFT_OPT_LORA_MODULES,
};

#define PEFT_LONGOPTS                                                                          \
    {"method", required_argument, 0, PEFT_OPT_METHOD},                                         \
        {"lora-r", required_argument, 0, PEFT_OPT_LORA_R},                                     \
        {"lora-alpha", required_argument, 0, PEFT_OPT_LORA_ALPHA},                             \
        {"lora-dropout", required_argument, 0, PEFT_OPT_LORA_DROPOUT},                         \
        {"lora-targets", required_argument, 0, PEFT_OPT_LORA_TARGETS},                         \
        {"rslora", no_argument, 0, PEFT_OPT_RSLORA},                                           \
        {"adapter", required_argument, 0, PEFT_OPT_ADAPTER},                                   \
        {"merge", no_argument, 0, PEFT_OPT_MERGE},                                             \
        {"freeze", required_argument, 0, PEFT_OPT_FREEZE},                                     \
        {"lr-mult", required_argument, 0, PEFT_OPT_LR_MULT},                                   \
        {"hft-every", required_argument, 0, PEFT_OPT_HFT_EVERY},                               \
        {"qlora-type", required_argument, 0, PEFT_OPT_QLORA_TYPE},                             \
        {"lora-modules-to-save", required_argument, 0, PEFT_OPT_LORA_MODULES}

#define PEFT_MAX_LR_MULT 32

enum peft_method { METHOD_FULL, METHOD_LORA, METHOD_HFT };

struct peft_run {
    enum peft_method method;
    struct lora_config lc;
    const char *adapter; // --adapter DIR: continue training this adapter
    bool merge;
    const char *freeze;
    const char *lr_mult[PEFT_MAX_LR_MULT];
    int n_lr_mult;
    int64_t hft_every; // steps per HFT round (0: one round per epoch)
    bool qlora;        // --method qlora: METHOD_LORA over an NF4 base (qlora.h)
    // run state
    struct lora lo;
    struct qlora q;    // the quantized base when qlora
    float *mult;       // [n_tensors] or NULL
    struct model *om;  // what the optimizer updates: the model, or the adapter's view
    int64_t hft_round;
    struct buf hft_trains; // the current round's trainable set (peft_hft_describe)
};

void peft_run_defaults(struct peft_run *r);
// Handles one of the options above: true when opt was one (dies with a usage error on a bad
// value).
bool peft_run_opt(struct peft_run *r, int opt, const char *arg);
// After the model is loaded: adapters, freezing, multipliers. Dies with a clear message on
// an error (exit 1). Logs what is trained.
void peft_run_setup(struct peft_run *r, struct model *m, struct kpool *pool, uint64_t seed);
// Before each optimizer step (1-based): HFT rounds, dropout masks.
void peft_run_step(struct peft_run *r, struct model *m, int64_t step, int64_t steps_per_epoch,
                   uint64_t seed);
// Bytes of the model's weights as held in memory (the slab, plus the NF4 base for QLoRA).
size_t peft_run_base_bytes(const struct peft_run *r, const struct model *m);
// The AdamW update with the multipliers.
void peft_run_update(struct peft_run *r, struct adamw *o, struct kpool *pool, float lr);
// The output: LoRA writes the adapter into dir (and, with --merge, the merged model);
// returns true when it wrote the model files itself.
bool peft_run_save(struct peft_run *r, struct model *m, struct kpool *pool, const char *dir,
                   enum st_dtype dtype);
void peft_run_free(struct peft_run *r);

#endif

// ---- DPO (--objective dpo) -----------------------------------------------------------------

// Preference pairs from tokenized records with prompt_ids, chosen_ids, rejected_ids, and the
// reference log-probs of each pair under the initial model (filled by dpo_set_reference).
struct dpo_set {
    int *ids;          // prompt, chosen, rejected of pair i at off[i] (lengths np, nc, nr)
    size_t n_ids, cap;
    size_t *off;
    int *np, *nc, *nr;
    size_t n, pcap;
    double *ref;       // [2n]: log π_ref(chosen), log π_ref(rejected)
    int cut;           // pairs whose responses were cut to fit the sequence length
};
// Loads files (NULL-terminated; "-" stdin). Errors name file:line and the field. 0 or -1.
int dpo_set_load(struct dpo_set *d, char *const *files, int vocab, int t, struct kerr *err);
void dpo_set_free(struct dpo_set *d);
// Reference log-probs of every pair with the model as it is now (cached for the run).
void dpo_set_reference(struct dpo_set *d, struct model *m, struct kpool *pool, int t);
// One optimizer step's forward/backward over pairs idx[0..k): gradients scaled by 1/k.
// Returns the mean loss; *margin and *acc get the mean reward margin and preference accuracy.
double dpo_set_step(const struct dpo_set *d, struct model *m, struct model_acts *a,
                    struct kpool *pool, int t, const size_t *idx, int k, double beta,
                    double *margin, double *acc);

// SPDX-License-Identifier: MIT
// train.h: what the train stage's files share — the training data (data.c) and the trainer
// state kept in checkpoints for exact resume (state.c). main.c holds options and the loop.
#ifndef KILN_TRAIN_H
#define KILN_TRAIN_H

#include "model.h"
#include "safetensors.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---- data (data.c) -----------------------------------------------------------------------

// Training or validation sequences.
//   pretrain: every record's input_ids joined into one stream, an EOS after each document
//             (unless it already ends with one); sequence i is the window tok[i*t, i*t+t]
//             (inputs [0,t), targets shifted by one), so windows share their boundary token.
//   sft:      one example per record: inputs ids[0, L-1), targets ids[1, L) scored from
//             position loss_start - 1 on (the prediction of token loss_start); examples longer
//             than t+1 are cut to t+1; padded with pad_id (targets -1), never packed.
struct dataset {
    bool sft;
    int t, pad_id;
    int32_t *tok; // all ids: the stream (pretrain) or the examples one after another (sft)
    size_t n_tok, cap;
    size_t *ex_off; // sft: start of example i in tok
    int *ex_len, *ex_ls;
    uint64_t *ex_rec; // sft: index of example i's record among all records read (0-based)
    size_t n_ex, ex_cap;
    size_t n_seq;     // sequences available
    uint64_t records, truncated, skipped; // skipped: sft examples with nothing to score
};

// Reads tokenized records (input_ids, optional loss_start) from files (NULL-terminated list,
// "-" = stdin). mode: 0 pretrain, 1 sft, -1 auto (sft when the first record has loss_start).
// vocab bounds the ids; eos joins documents (pretrain; needed then). Returns 0 or -1 with
// err "name:line: what". An input with no usable sequence is an error.
int data_load(struct dataset *d, char *const *files, int mode, int vocab, int eos, int t,
              struct kerr *err);
void data_free(struct dataset *d);
// Sequence i into tokens[t], targets[t]; returns its length (positions up to the last scored
// one, ≤ t) and adds the scored count to *scored.
int data_seq(const struct dataset *d, size_t i, int *tokens, int *targets, int *scored);

// ---- trainer state (state.c) -------------------------------------------------------------

struct train_state {
    int64_t step, total_steps;
    int64_t epoch;            // epoch of the current permutation
    uint64_t seed;
    struct model_rng rng_epoch; // generator state before the current epoch's permutation
    double best_loss;         // NAN when no validation yet
    int64_t best_step;
    int64_t bad_validations;  // validations since the last improvement
    uint64_t tokens_seen;
    int64_t ranks;            // MPI ranks of the run that saved it; 0 = not under MPI (not saved)
    int64_t hft_round;        // --method hft: the current round and its trainable set (saved
    const char *hft_trains;   // as "hft": {"round", "trains"}); NULL = not HFT (not saved)
};

// Nothing time-dependent is saved, so a checkpoint's bytes depend only on the inputs and options.
// Checkpoint directory contents: config.json, generation_config.json, model.safetensors,
// optimizer.safetensors (exp_avg.NAME, exp_avg_sq.NAME), trainer_state.json ({state, "args":
// args_json}) and tokenizer.json (copied from tokenizer, when given).
// Writes dir atomically: DIR/.tmp-NAME then rename (swapping with an existing one).
int state_save_dir(const char *dir, const char *name, const struct model *m,
                   const struct adamw *o, const struct train_state *s, const char *args_json,
                   const char *tokenizer, struct kerr *err);
// Writes the same files straight into dir (each file atomically), the weights in dtype
// (checkpoint directories always use F32 so a resume is exact).
int state_save_files(const char *dir, const struct model *m, const struct adamw *o,
                     const struct train_state *s, const char *args_json, const char *tokenizer,
                     enum st_dtype dtype, struct kerr *err);
// Finds the checkpoint to resume from: dir itself when it holds trainer_state.json, else its
// newest checkpoint-N subdirectory. Writes the path into out. 0 or -1 with err.
int state_find(const char *dir, struct buf *out, struct kerr *err);
// Loads optimizer moments and trainer state from a checkpoint (the model is loaded with
// ckpt_load). args_json must equal the saved args key by key; a difference is an error naming
// the option. 0 or -1 with err.
int state_load(const char *dir, const struct model *m, struct adamw *o, struct train_state *s,
               const char *args_json, struct kerr *err);
// rm -rf path (ignores a missing path). 0 or -1 with err.
int state_remove_tree(const char *path, struct kerr *err);

#endif

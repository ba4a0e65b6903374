// SPDX-License-Identifier: MIT
// evaluate.h: what the evaluate stage's files share — the model under evaluation (model.c:
// checkpoint directory, checkpoint + LoRA adapter, or GGUF; with its tokenizer), the scorer
// that runs batched forward passes (score.c), the subcommands, and the store glue (db.c).
#ifndef KILN_EVALUATE_H
#define KILN_EVALUATE_H

#include "cli.h"
#include "json.h"
#include "kernels.h"
#include "model.h"
#include "store.h"
#include "tok.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

// ---- the model (model.c) -------------------------------------------------------------------

struct eval_model {
    struct model m;
    struct tok *tok;
    int eos;    // end-of-sequence id, -1 when unknown
    char *desc; // what was loaded, for messages and the store ("DIR", "F.gguf", "DIR+ADAPTER")
};

// Loads path (a checkpoint directory or a .gguf file), merges a PEFT LoRA adapter directory
// when adapter is not NULL, and loads the tokenizer (tokenizer, else PATH/tokenizer.json, else
// tokenizer.json beside a GGUF). Checks that the tokenizer's ids fit the model's vocabulary.
// 0 or -1 with err.
int eval_model_load(struct eval_model *em, const char *path, const char *adapter,
                    const char *tokenizer, struct kerr *err);
void eval_model_free(struct eval_model *em);
// Checks every id of ids[0..n) is below the model's vocabulary; -1 with err naming the first.
int eval_ids_check(const struct eval_model *em, const int32_t *ids, size_t n, struct kerr *err);

// ---- batched scoring (score.c) -------------------------------------------------------------

// One sequence to score: tokens[0..len), of which the predictions of positions
// [from, len) are summed (from ≥ 1: position p is predicted from tokens[0..p)).
struct score_seq {
    const int32_t *tokens;
    int len, from;
    double logprob; // result: sum of log p(tokens[p] | tokens[..p]) over p in [from, len)
    int scored;     // result: len - from
};

struct scorer {
    struct eval_model *em;
    struct kpool *pool;
    int batch, t, n_threads;
    struct model_acts *acts; // [n_threads]: one batch per thread at a time
    int *tok, *tgt;          // [n_threads, batch * t]
    float *lp;               // [n_threads, batch * t]
    uint64_t tokens_run;     // positions run through the model (padding included)
};
// Activations for batches of batch sequences of up to t + 1 tokens (t inputs). 0 or -1.
int scorer_init(struct scorer *s, struct eval_model *em, struct kpool *pool, int batch, int t,
                struct kerr *err);
void scorer_free(struct scorer *s);
// Scores seqs[0..n) (each len ≤ s->t + 1, from ≥ 1) in batches of consecutive sequences;
// fills logprob and scored. Whole batches run in parallel, one per thread (no thread waits
// on another inside a forward pass); batches left over when fewer than the threads remain
// run one at a time with the threads inside. Either way a batch's scores are the same bits.
void scorer_run(struct scorer *s, struct score_seq *seqs, size_t n);

// Groups of k sequences scored one group at a time (a record's candidates, which share their
// prompt): the group's common prefix, up to its first scored position, runs through a KV
// cache once, then each sequence's rest on top of it. A group's scores depend on that group
// alone — not on batching, on the other records or on threads — so per-record results are
// the same on any shard of the input. Groups run in parallel, one per thread.
struct group_scorer {
    struct eval_model *em;
    struct kpool *pool;
    int n_threads, max_len;
    struct model_kv *kv; // [n_threads]
    int *tgt;            // [n_threads, max_len]
    float *lp;           // [n_threads, max_len]
    uint64_t tokens_run; // positions run through the model
};
// For sequences of up to max_len tokens. 0 or -1 with err.
int group_scorer_init(struct group_scorer *g, struct eval_model *em, struct kpool *pool,
                      int max_len, struct kerr *err);
void group_scorer_free(struct group_scorer *g);
// Scores seqs[0..n_groups * k) (each len ≤ max_len, from ≥ 1), group i being
// seqs[i*k .. i*k + k); fills logprob and scored.
void group_scorer_run(struct group_scorer *g, struct score_seq *seqs, size_t n_groups, int k);

// ---- subcommands ---------------------------------------------------------------------------

struct eval_common {
    struct cli_common cli;
    const char *model, *adapter, *tokenizer;
    const char *db, *run_name, *pipeline;
    int threads, batch;
    int busy_ms;
};

int cmd_classify(int argc, char **argv);
int cmd_lm(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_report(int argc, char **argv);

// ---- store glue (db.c) ---------------------------------------------------------------------

// Opens the database with the busy timeout; dies with a clear message on failure.
struct store *eval_db_open(const char *path, int busy_ms);
// Loads a results file's text (one JSON object per line: per-example rows and the final
// {"summary": ...}) into run run_id: results with stderr, examples. name: for messages.
// 0 or -1 with err "name:line: what".
int eval_db_load_results(struct store *s, int64_t run_id, const char *text, size_t n,
                         const char *name, struct kerr *err);
// Starts a run row: kind, name (NULL = kind), pipeline, model, dataset. Dies on error.
int eval_db_run_begin(struct store *s, const char *kind, const char *name, const char *pipeline,
                      const char *model, const char *dataset, uint64_t seed, int threads,
                      int64_t *run_id, struct kerr *err);

// Finishes a scoring subcommand: with --db, the run (kind "evaluate"), its params (NULL-
// terminated key, value pairs) and the results in one transaction; the results file (-o, or
// stdout). Nothing is left half-written on failure. Dies on error.
void eval_results_finish(const struct eval_common *c, const char *model, char **files,
                         const char *const *params, const struct buf *out);
// Writes text to path atomically ("-"/NULL = stdout). 0 or -1 with err.
int eval_write_output(const char *path, const char *text, size_t n, struct kerr *err);

// ---- options shared by the subcommands (main.c) ------------------------------------------

enum {
    EOPT_MODEL = CLI_OPT_FIRST_STAGE,
    EOPT_ADAPTER,
    EOPT_TOKENIZER,
    EOPT_DB,
    EOPT_RUN_NAME,
    EOPT_PIPELINE,
    EOPT_THREADS,
    EOPT_BATCH,
    EOPT_BUSY,
    EOPT_CMD = CLI_OPT_FIRST_STAGE + 0x40, // subcommands number their own options from here
};
#define EVAL_LONGOPTS                                                                              \
    CLI_COMMON_LONGOPTS, {"model", required_argument, 0, EOPT_MODEL},                              \
        {"adapter", required_argument, 0, EOPT_ADAPTER},                                           \
        {"tokenizer", required_argument, 0, EOPT_TOKENIZER},                                       \
        {"db", required_argument, 0, EOPT_DB}, {"run-name", required_argument, 0, EOPT_RUN_NAME},  \
        {"pipeline", required_argument, 0, EOPT_PIPELINE},                                         \
        {"threads", required_argument, 0, EOPT_THREADS},                                           \
        {"batch", required_argument, 0, EOPT_BATCH},                                               \
    {                                                                                              \
        "busy-timeout", required_argument, 0, EOPT_BUSY                                            \
    }

void eval_common_init(struct eval_common *c);
// Handles a shared option (including cli's); true when it was one.
bool eval_common_opt(struct eval_common *c, int opt, const char *arg, void (*usage)(FILE *));
// Loads the model named by --model (dies on error).
void eval_common_model(const struct eval_common *c, struct eval_model *em);
// The input files after options (argv + optind, or stdin).
char **eval_inputs(int argc, char **argv);
#endif

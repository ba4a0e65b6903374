// SPDX-License-Identifier: MIT
// peft: parameter-efficient and preference fine-tuning pieces that work on a model's tensor
// table (model.h) — tensor selection patterns (--freeze, --lr-mult), AdamW with per-tensor
// learning-rate multipliers, Half Fine-Tuning rounds, and the DPO objective. LoRA adapters
// are in lora.h.
//
// Patterns: a comma-separated list of items, each selecting tensors by HF name:
//   embed           model.embed_tokens.weight
//   lm_head         lm_head.weight (the embedding when tied)
//   norm            the final model.norm.weight
//   layers.A[-B][.S] every tensor of layers A..B whose name after "layers.N." contains S
//                   (e.g. layers.0-3, layers.2.mlp, layers.0-5.self_attn.q_proj)
//   anything else   every tensor whose name contains it (q_proj, mlp, layernorm, ...)
// An item that selects nothing is an error (a typo must not silently train everything).
//
// HFT (Hui et al. 2024, arXiv 2404.18466, "half fine-tuning"): at the start of each round
// half of the parameters are frozen at the category level, the choice drawn from a generator
// seeded with (seed, round). The paper's rule (§3, for LLaMA-2; see stages/train/PEFT.md):
// per layer 2 of the 4 attention matrices (q, k, v, o) train; of the 3 MLP matrices (gate,
// up, down) 2 train in a random half of the layers and 1 in the other half (odd layer
// count: the half rounded down or up by a fair coin), so exactly half overall; 1 of the 2
// RMSNorms trains. The embedding and lm_head always train; the final norm with probability
// 1/2. peft_hft_describe records the choice.
//
// DPO (Rafailov et al. 2023): for a prompt x with chosen y_w and rejected y_l,
//   z = beta · [(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))]
//   loss = −log σ(z) = softplus(−z)
// log π(y|x) sums the log-probs of the response tokens only. Reference log-probs come from
// the initial model (computed once by the caller and cached). Tokenized DPO records carry
// prompt_ids, chosen_ids and rejected_ids (arrays of token ids; chosen and rejected are the
// responses without the prompt).
#ifndef KILN_PEFT_H
#define KILN_PEFT_H

#include "model.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

// sel[i] = true for each tensor of m the pattern selects (others left unchanged, so several
// patterns can be OR'ed). 0 or -1 with err ("--freeze: 'layers.9' matches no tensor").
int peft_select(const struct model *m, const char *pattern, bool *sel, struct kerr *err);

// AdamW step with a learning rate lr * mult[i] for tensor i (mult NULL = all 1; 0 skips the
// tensor like a frozen one). One optimizer step (o->step advances by one) whatever the number
// of distinct multipliers.
void peft_adamw_update(struct adamw *o, struct model *m, struct kpool *p, float lr,
                       const float *mult);

// HFT: sets m->frozen for round `round` (0-based) from seed; returns the number of trainable
// parameters.
size_t peft_hft_round(struct model *m, uint64_t seed, int64_t round);
// Appends the trainable set, e.g. "embed norm L0:q,o,ln2,gate,up L1:k,v,ln1,down".
void peft_hft_describe(const struct model *m, struct buf *out);

// ---- DPO -----------------------------------------------------------------------------------

struct dpo_result {
    double loss;
    double reward_chosen, reward_rejected; // beta · (log π − log π_ref)
    double margin;                         // reward_chosen − reward_rejected (= z)
    bool correct;                          // margin > 0 (preference accuracy)
    double logp_chosen, logp_rejected;     // log π of the two responses
    double dlogp_chosen, dlogp_rejected;   // dloss / dlogp
};

// The loss and its derivatives from the four sequence log-probs.
void dpo_loss(double logp_c, double logp_r, double ref_c, double ref_r, double beta,
              struct dpo_result *out);

// One preference pair as a batch of two rows of t positions: row 0 is prompt+chosen, row 1
// prompt+rejected; tokens[2t], targets[2t] (targets −1 outside the response). Responses are
// cut so each sequence fits t+1 tokens; the prompt is kept whole (0 returned when the prompt
// leaves no room: the caller reports it). Returns the positions used (≤ t).
int dpo_pair_batch(const int *prompt, int n_prompt, const int *chosen, int n_chosen,
                   const int *rejected, int n_rejected, int t, int *tokens, int *targets);
// Sums of response log-probs of the two rows (forward only): lp[0] chosen, lp[1] rejected.
void dpo_logps(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens,
               const int *targets, int t, double lp[2]);
// Forward, DPO loss against ref[2] and backward with gradient scale grad_scale (1/pairs per
// step). Needs training acts for b ≥ 2.
void dpo_forward_backward(struct model *m, struct model_acts *a, struct kpool *p,
                          const int *tokens, const int *targets, int t, const double ref[2],
                          double beta, float grad_scale, struct dpo_result *out);

// Parses one tokenized DPO record (JSON object text) into three id arrays (caller frees
// with free()). Every field must be a non-empty array of ids in [0, vocab). 0 or -1 with err
// ("missing field 'rejected_ids'", "chosen_ids[3]: id 70000 outside the vocabulary (32000)").
int dpo_record_parse(const char *text, size_t n, int vocab, int **prompt, int *n_prompt,
                     int **chosen, int *n_chosen, int **rejected, int *n_rejected,
                     struct kerr *err);

#endif

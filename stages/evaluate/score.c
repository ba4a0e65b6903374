// SPDX-License-Identifier: MIT
// score.c: forward-only scoring of token sequences in batches. Sequences of a batch are
// padded at the end to the batch's longest (its last token is a target only, never an input) (causal attention: padding after a position never
// changes it), run through model_forward, and the log-probabilities of the scored positions
// are summed in double, in position order, so a sequence's score does not depend on which
// batch it landed in beyond float rounding of the forward pass (and not at all on threads).
#include "evaluate.h"

#include <stdlib.h>
#include <string.h>

int
scorer_init(struct scorer *s, struct eval_model *em, struct kpool *pool, int batch, int t,
            struct kerr *err)
{
    memset(s, 0, sizeof *s);
    if (t < 1)
        t = 1;
    if (model_acts_init(&s->acts, &em->m, batch, t, false, kpool_threads(pool), err) < 0)
        return -1;
    s->em = em;
    s->pool = pool;
    s->batch = batch;
    s->t = t;
    s->tok = xmalloc((size_t)batch * (size_t)t * sizeof *s->tok);
    s->tgt = xmalloc((size_t)batch * (size_t)t * sizeof *s->tgt);
    s->lp = xmalloc((size_t)batch * (size_t)t * sizeof *s->lp);
    return 0;
}

void
scorer_free(struct scorer *s)
{
    model_acts_free(&s->acts);
    free(s->tok);
    free(s->tgt);
    free(s->lp);
}

void
scorer_run(struct scorer *s, struct score_seq *seqs, size_t n)
{
    int pad = s->em->eos >= 0 ? s->em->eos : 0;
    for (size_t i = 0; i < n; i += (size_t)s->batch) {
        // the last token of a sequence is only a target: t = longest len - 1 inputs
        int b = n - i < (size_t)s->batch ? (int)(n - i) : s->batch, t = 1;
        for (int j = 0; j < b; j++)
            if (seqs[i + j].len - 1 > t)
                t = seqs[i + j].len - 1;
        // tokens [b, t]; tgt[r] = the token row r predicts when scored, else -1
        for (int j = 0; j < b; j++) {
            const struct score_seq *q = &seqs[i + j];
            int *tk = s->tok + (size_t)j * t, *tg = s->tgt + (size_t)j * t;
            for (int p = 0; p < t; p++) {
                tk[p] = p < q->len ? q->tokens[p] : pad;
                tg[p] = p + 1 < q->len && p + 1 >= q->from ? q->tokens[p + 1] : -1;
            }
        }
        model_forward(&s->em->m, &s->acts, s->pool, s->tok, b, t);
        model_logprobs(&s->em->m, &s->acts, s->pool, s->tgt, s->lp);
        s->tokens_run += (uint64_t)b * (uint64_t)t;
        for (int j = 0; j < b; j++) {
            struct score_seq *q = &seqs[i + j];
            double sum = 0;
            for (int p = q->from - 1; p < q->len - 1; p++)
                sum += s->lp[(size_t)j * t + (size_t)p];
            q->logprob = sum;
            q->scored = q->len - q->from;
        }
    }
}

// SPDX-License-Identifier: MIT
// score.c: forward-only scoring of token sequences in batches. Sequences of a batch are
// padded at the end to the batch's longest (its last token is a target only, never an input)
// (causal attention: padding after a position never changes it), run through
// model_forward_logprobs (the output projection only for the scored positions), and the
// log-probabilities of the scored positions are summed in double, in position order, so a
// sequence's score does not depend on which batch it landed in beyond float rounding of the forward
// pass (and not at all on threads).
//
// The group scorer (classification) runs each record's candidates alone, through a KV cache
// with their shared prompt computed once (model_kv_forward_logprobs), so a record's scores
// are a function of that record only.
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
    s->em = em;
    s->pool = pool;
    s->batch = batch;
    s->t = t;
    s->n_threads = kpool_threads(pool);
    s->acts = xcalloc((size_t)s->n_threads, sizeof *s->acts);
    for (int i = 0; i < s->n_threads; i++)
        if (model_acts_init(&s->acts[i], &em->m, batch, t, false, s->n_threads, err) < 0) {
            scorer_free(s);
            return -1;
        }
    size_t rows = (size_t)s->n_threads * (size_t)batch * (size_t)t;
    s->tok = xmalloc(rows * sizeof *s->tok);
    s->tgt = xmalloc(rows * sizeof *s->tgt);
    s->lp = xmalloc(rows * sizeof *s->lp);
    return 0;
}

void
scorer_free(struct scorer *s)
{
    for (int i = 0; s->acts && i < s->n_threads; i++)
        model_acts_free(&s->acts[i]);
    free(s->acts);
    free(s->tok);
    free(s->tgt);
    free(s->lp);
    memset(s, 0, sizeof *s);
}

// Runs batch number i (sequences [i*batch, ...)) with thread slot `slot`'s buffers; p is the
// pool to run inside the forward pass, or NULL to run it on the calling thread.
static uint64_t
scorer_batch(struct scorer *s, struct score_seq *seqs, size_t n, size_t i, int slot,
             struct kpool *p)
{
    int pad = s->em->eos >= 0 ? s->em->eos : 0;
    size_t first = i * (size_t)s->batch;
    // the last token of a sequence is only a target: t = longest len - 1 inputs
    int b = n - first < (size_t)s->batch ? (int)(n - first) : s->batch, t = 1;
    for (int j = 0; j < b; j++)
        if (seqs[first + j].len - 1 > t)
            t = seqs[first + j].len - 1;
    size_t at = (size_t)slot * (size_t)s->batch * (size_t)s->t;
    int *tok = s->tok + at, *tgt = s->tgt + at;
    float *lp = s->lp + at;
    // tokens [b, t]; tgt[r] = the token row r predicts when scored, else -1
    for (int j = 0; j < b; j++) {
        const struct score_seq *q = &seqs[first + j];
        int *tk = tok + (size_t)j * t, *tg = tgt + (size_t)j * t;
        for (int c = 0; c < t; c++) {
            tk[c] = c < q->len ? q->tokens[c] : pad;
            tg[c] = c + 1 < q->len && c + 1 >= q->from ? q->tokens[c + 1] : -1;
        }
    }
    model_forward_logprobs(&s->em->m, &s->acts[slot], p, tok, tgt, b, t, lp);
    for (int j = 0; j < b; j++) {
        struct score_seq *q = &seqs[first + j];
        double sum = 0;
        for (int c = q->from - 1; c < q->len - 1; c++)
            sum += lp[(size_t)j * t + (size_t)c];
        q->logprob = sum;
        q->scored = q->len - q->from;
    }
    return (uint64_t)b * (uint64_t)t;
}

struct scorer_job {
    struct scorer *s;
    struct score_seq *seqs;
    size_t n;
    uint64_t *runs; // [batches] positions run per batch
};

static void
scorer_task(void *ctx, int task, int thread)
{
    struct scorer_job *j = ctx;
    j->runs[task] = scorer_batch(j->s, j->seqs, j->n, (size_t)task, thread, NULL);
}

void
scorer_run(struct scorer *s, struct score_seq *seqs, size_t n)
{
    size_t batches = (n + (size_t)s->batch - 1) / (size_t)s->batch;
    size_t par = s->n_threads > 1 ? batches / (size_t)s->n_threads * (size_t)s->n_threads : 0;
    struct scorer_job j = {s, seqs, n, xcalloc(batches ? batches : 1, sizeof *j.runs)};
    kpool_run(s->pool, (int)par, scorer_task, &j);
    for (size_t i = par; i < batches; i++)
        j.runs[i] = scorer_batch(s, seqs, n, i, 0, s->pool);
    for (size_t i = 0; i < batches; i++)
        s->tokens_run += j.runs[i];
    free(j.runs);
}

int
group_scorer_init(struct group_scorer *g, struct eval_model *em, struct kpool *pool, int max_len,
                  struct kerr *err)
{
    memset(g, 0, sizeof *g);
    g->em = em;
    g->pool = pool;
    g->n_threads = kpool_threads(pool);
    g->max_len = max_len < 1 ? 1 : max_len;
    g->kv = xcalloc((size_t)g->n_threads, sizeof *g->kv);
    for (int i = 0; i < g->n_threads; i++)
        if (model_kv_init(&g->kv[i], &em->m, g->max_len, err) < 0) {
            group_scorer_free(g);
            return -1;
        }
    g->tgt = xmalloc((size_t)g->n_threads * (size_t)g->max_len * sizeof *g->tgt);
    g->lp = xmalloc((size_t)g->n_threads * (size_t)g->max_len * sizeof *g->lp);
    return 0;
}

void
group_scorer_free(struct group_scorer *g)
{
    for (int i = 0; g->kv && i < g->n_threads; i++)
        model_kv_free(&g->kv[i]);
    free(g->kv);
    free(g->tgt);
    free(g->lp);
    memset(g, 0, sizeof *g);
}

struct group_job {
    struct group_scorer *g;
    struct score_seq *seqs;
    int k;
    uint64_t *runs; // [n_groups] positions run per group
};

// Group task: one KV cache per thread, the model run on the calling thread only (a NULL
// pool), so the bits do not depend on which thread runs it.
static void
group_task(void *ctx, int group, int thread)
{
    struct group_job *j = ctx;
    struct group_scorer *g = j->g;
    struct score_seq *q = j->seqs + (size_t)group * (size_t)j->k;
    struct model_kv *kv = &g->kv[thread];
    int *tgt = g->tgt + (size_t)thread * g->max_len;
    float *lp = g->lp + (size_t)thread * g->max_len;
    // prefix: the tokens all sequences share, short of every sequence's first predicting row
    int pre = q[0].len;
    for (int c = 0; c < j->k; c++) {
        if (q[c].from - 1 < pre)
            pre = q[c].from - 1;
        int e = 0;
        while (e < pre && q[c].tokens[e] == q[0].tokens[e])
            e++;
        pre = e;
    }
    model_kv_reset(kv);
    model_kv_forward_logprobs(&g->em->m, kv, NULL, q[0].tokens, NULL, pre, NULL);
    uint64_t run = (uint64_t)pre;
    for (int c = 0; c < j->k; c++) {
        // rows pre .. len-2 (the last token is only a target); row p predicts tokens[p + 1]
        int rows = q[c].len - 1 - pre;
        for (int r = 0; r < rows; r++) {
            int p = pre + r;
            tgt[r] = p + 1 >= q[c].from ? q[c].tokens[p + 1] : -1;
        }
        model_kv_rewind(kv, pre);
        model_kv_forward_logprobs(&g->em->m, kv, NULL, q[c].tokens + pre, tgt, rows, lp);
        double sum = 0;
        for (int p = q[c].from - 1; p < q[c].len - 1; p++)
            sum += lp[p - pre];
        q[c].logprob = sum;
        q[c].scored = q[c].len - q[c].from;
        run += (uint64_t)rows;
    }
    j->runs[group] = run;
}

void
group_scorer_run(struct group_scorer *g, struct score_seq *seqs, size_t n_groups, int k)
{
    struct group_job j = {g, seqs, k, xcalloc(n_groups ? n_groups : 1, sizeof *j.runs)};
    kpool_run(g->pool, (int)n_groups, group_task, &j);
    for (size_t i = 0; i < n_groups; i++)
        g->tokens_run += j.runs[i];
    free(j.runs);
}

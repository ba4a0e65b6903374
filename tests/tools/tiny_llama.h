// SPDX-License-Identifier: MIT
// tiny_llama.h: what the test tools gguf_tiny_llama and qx_fixture share about their tiny Llama
// models (header-only: tests/tools are single-file programs): a random model.h model of a
// given config, loading a model back from a checkpoint directory or a GGUF file (read as
// evaluate reads one), and its next-token log-probabilities as JSON in the format of
// tests/tools/llama_logits.mjs. Errors print "PROG: what: message" on stderr and exit 1 (test
// tools only; PROG is the including program's TINY_LLAMA_PROG).
#ifndef KILN_TESTS_TINY_LLAMA_H
#define KILN_TESTS_TINY_LLAMA_H

#include "checkpoint.h"
#include "gguf_model.h"
#include "kernels.h"
#include "model.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TINY_LLAMA_PROG
#error "define TINY_LLAMA_PROG (the program name for messages) before including tiny_llama.h"
#endif

static inline void
tiny_llama_die(const char *what, const struct kerr *err)
{
    fprintf(stderr, "%s: %s%s%s\n", TINY_LLAMA_PROG, what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

// A model of config c with model.h's random init (seed), its matrices (2-D tensors) then
// multiplied by scale (1: as initialized; larger: logits that are not flat). model_free(m).
static inline void
tiny_llama_new(struct model *m, const struct model_config *c, uint64_t seed, float scale)
{
    struct kerr err;
    if (model_init(m, c, &err))
        tiny_llama_die("model", &err);
    model_init_random(m, seed);
    if (scale != 1)
        for (int i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].ndim == 2)
                for (size_t k = 0; k < m->tensors[i].numel; k++)
                    m->params[m->tensors[i].offset + k] *= scale;
}

// A checkpoint directory, or a GGUF file when path ends in .gguf. model_free(m).
static inline void
tiny_llama_load(const char *path, struct model *m)
{
    struct kerr err;
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".gguf")) {
        struct gguf_file g;
        if (gguf_open(&g, path, &err) || gguf_model_read(&g, m, &err))
            tiny_llama_die(path, &err);
        gguf_close(&g);
    } else if (ckpt_load(path, m, NULL, &err)) {
        tiny_llama_die(path, &err);
    }
}

// Prints the start of the JSON answer: {"n_vocab":V,"tokens":[ids...]  (no closing brace).
static inline void
tiny_llama_print_head(int vocab, const int *ids, int n)
{
    printf("{\"n_vocab\":%d,\"tokens\":[", vocab);
    for (int p = 0; p < n; p++)
        printf("%s%d", p ? "," : "", ids[p]);
    printf("]");
}

// Prints {"n_vocab":V,"tokens":[...],"logprobs":[[...] per position]}: next-token
// log-probabilities at every position of ids[0..n) from model_forward (ids must be < vocab,
// n <= max_seq). Returns 0, or 1 when stdout fails.
static inline int
tiny_llama_print_logprobs(struct model *m, const int *ids, int n)
{
    struct kerr err;
    struct kpool *pool = kpool_new(1);
    struct model_acts a;
    if (model_acts_init(&a, m, 1, n, false, 1, &err))
        tiny_llama_die("activations", &err);
    model_forward(m, &a, pool, ids, 1, n);
    int V = m->cfg.vocab;
    tiny_llama_print_head(V, ids, n);
    printf(",\"logprobs\":[");
    for (int p = 0; p < n; p++) {
        const float *lg = a.logits + (size_t)p * V; // (n, V)
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++)
            mx = fmax(mx, lg[v]);
        for (int v = 0; v < V; v++)
            sum += exp(lg[v] - mx);
        printf("%s[", p ? "," : "");
        for (int v = 0; v < V; v++)
            printf("%s%.7g", v ? "," : "", lg[v] - mx - log(sum));
        printf("]");
    }
    printf("]}\n");
    model_acts_free(&a);
    kpool_del(pool);
    return ferror(stdout) || fflush(stdout) ? 1 : 0;
}

#endif

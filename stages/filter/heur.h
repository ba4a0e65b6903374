// SPDX-License-Identifier: MIT
// heur: filter's built-in rule sets — datatrove's GopherQualityFilter, GopherRepetitionFilter,
// C4QualityFilter and FineWebQualityFilter with their default thresholds and reason names.
// Every threshold is a named parameter (heur_sets[].params) that rules files and --set
// override. Words come from common/textstats (an approximation of the NLTK/spaCy tokenizers
// datatrove uses, documented there); lengths are in code points as in Python.
//
// Where datatrove would divide by zero (no words, no lines, empty text) the ratio is 0, except
// FineWeb's newlines per word, which is +inf with no words (the document is dropped).
#ifndef KILN_FILTER_HEUR_H
#define KILN_FILTER_HEUR_H

#include "textstats.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum heur_set_id { HEUR_GOPHER_QUALITY, HEUR_GOPHER_REPETITION, HEUR_C4, HEUR_FINEWEB, HEUR_NSETS };

// One threshold: name (as in datatrove), default and the accepted range (inclusive).
struct heur_param {
    const char *name;
    double def, min, max;
    bool integer;
    const char *help;
};

#define HEUR_MAX_PARAMS 16
#define HEUR_MAX_MEASURES 24

struct heur_set {
    const char *name; // "gopher-quality"
    const struct heur_param *params;
    size_t n_params;
};
extern const struct heur_set heur_sets[HEUR_NSETS];

// Index of a set by name, or -1.
int heur_set_find(const char *name);
// Index of a parameter of set s by name (aliases: min_words, max_words), or -1.
int heur_param_find(int s, const char *name);
// Fills p[] with the defaults of set s.
void heur_params_default(int s, double *p);

// Scratch reused from record to record (not shared between threads).
struct heur_ctx {
    struct ts_words words;
    const char *words_text; // text the words were split from (cache key with words_n)
    size_t words_n;
    // Open-addressing table: key 0 = empty slot; count, first index, byte span per entry.
    struct heur_slot {
        uint64_t key;
        uint32_t count, first, off, len;
    } *slots;
    size_t cap, mask, alloc;
    uint64_t *wpoly, *wpow; // per-word polynomial hash and base^bytes (mod 2^61-1)
    uint64_t *ngram;        // n-gram keys, NGRAM_MAX - 1 per word position
    uint32_t *ncps;         // n-gram lengths in code points, same layout
    size_t wcap;
    struct buf tmp;
};
void heur_ctx_init(struct heur_ctx *x);
void heur_ctx_free(struct heur_ctx *x);
// Words of text, cached by (text, n): a caller that changes the bytes at text without moving
// them sets x->words_text = NULL first.
const struct ts_words *heur_words(struct heur_ctx *x, const char *text, size_t n);

// Result of one set on one text.
struct heur_result {
    const char *reason; // NULL when the text passes
    double value;       // measured value of the failing check
    struct {
        const char *name;
        double v;
    } m[HEUR_MAX_MEASURES]; // measured statistics, in order (for --annotate)
    size_t nm;
    bool rewritten; // c4 only: *out holds the kept lines
};

// Runs set s with parameters p on text[0..n). With all=false it stops at the first failing
// check (as datatrove does); with all=true it measures everything (for --annotate) and still
// reports the first failing check as the reason. c4 writes its rewritten text to out.
void heur_run(struct heur_ctx *x, int s, const double *p, const char *text, size_t n, bool all,
              struct heur_result *r, struct buf *out);

#endif

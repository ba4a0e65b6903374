// SPDX-License-Identifier: MIT
// metrics: classification and calibration metrics as lm-evaluation-harness and scikit-learn
// define them — confusion matrix, per-class precision / recall / F1, macro-F1, multiclass MCC
// (Gorodkin's R_K, sklearn's matthews_corrcoef), expected calibration error over equal-mass
// bins (HELM) with the reliability diagram's points, the standard error of a mean and seeded
// bootstrap standard errors. Pure computation: no I/O, no allocation failures reported (xmalloc).
//
// Conventions: classes are 0..k-1; gold[i] and pred[i] are class indices. A ratio whose
// denominator is 0 is 0 (sklearn's zero_division=0). Macro-F1 averages over the classes that
// occur in gold or pred (sklearn's default label set); a class that never occurs in either is
// left out.
#ifndef KILN_METRICS_H
#define KILN_METRICS_H

#include <stddef.h>
#include <stdint.h>

// conf[g * k + p] = number of examples with gold g predicted p (k*k counts, overwritten).
// idx selects the examples (NULL = 0..n-1), so a bootstrap resample needs no copy.
void metrics_confusion(int k, const int *gold, const int *pred, const size_t *idx, size_t n,
                       uint64_t *conf);

struct metrics_class {
    double precision, recall, f1;
    uint64_t support; // gold count
    uint64_t predicted;
};

// From a k*k confusion matrix: per-class scores into cls[k] (may be NULL), accuracy,
// macro-F1 and MCC into the out pointers (each may be NULL).
void metrics_from_confusion(int k, const uint64_t *conf, struct metrics_class *cls, double *acc,
                            double *macro_f1, double *mcc);

// One bin of a reliability diagram.
struct metrics_bin {
    size_t count;
    double conf_lo, conf_hi; // smallest and largest confidence in the bin
    double confidence;       // mean confidence
    double accuracy;         // share correct
};

// Expected calibration error with n_bins equal-mass bins: examples sorted by confidence (ties
// by index) and split as numpy.array_split does (the first n % n_bins bins hold one more).
// ECE = sum over bins of count/n * |accuracy - confidence|. bins[n_bins] may be NULL; bins
// beyond n (when n < n_bins) are empty. conf[i] in [0,1], correct[i] 0 or 1. idx as above.
double metrics_ece(const double *conf, const int *correct, const size_t *idx, size_t n,
                   int n_bins, struct metrics_bin *bins);

// Standard error of the mean of x[0..n) (sample standard deviation / sqrt(n), as
// lm-evaluation-harness's mean_stderr). 0 when n < 2.
double metrics_mean_stderr(const double *x, size_t n);

// Bootstrap standard error of a statistic: iters resamples of n indices drawn with
// replacement from a generator seeded with seed (splitmix64 stream: index = next % n); the
// result is the sample standard deviation of the iters values of stat(ctx, idx, n).
// Deterministic for a given seed. 0 when n == 0 or iters < 2.
double metrics_bootstrap(size_t n, int iters, uint64_t seed,
                         double (*stat)(void *ctx, const size_t *idx, size_t n), void *ctx);

#endif

// SPDX-License-Identifier: MIT
// rank: rank statistics for comparing two scorings of the same items — average ranks with
// ties, Spearman's rank correlation (Pearson's r of the average ranks, so ties are handled
// exactly), Kendall's tau-b (tie-corrected, O(n^2): meant for tens of items), and the top-k
// set of a scoring with its overlap with another's. Higher scores rank first everywhere.
#ifndef KILN_RANK_H
#define KILN_RANK_H

#include <stddef.h>

// r[i] = the 1-based rank of x[i] in ascending order, ties given the mean of their ranks.
void rank_average(const double *x, size_t n, double *r);
// Spearman's rho of x and y (n ≥ 2); NaN when either is constant.
double rank_spearman(const double *x, const double *y, size_t n);
// Kendall's tau-b of x and y; NaN when either is constant or n < 2.
double rank_kendall(const double *x, const double *y, size_t n);
// idx[0..k) = the indices of the k highest x, best first; ties go to the lower index.
// k is cut to n. Returns the number written.
size_t rank_top(const double *x, size_t n, size_t k, size_t *idx);
// How many of the top k of x are also among the top k of y.
size_t rank_top_overlap(const double *x, const double *y, size_t n, size_t k);
// Early stopping by a first scoring: every item runs to its early cost, the top k by early
// continue to their full cost. Returns that total cost; *kept = the best final score among
// the k that continued (NULL: not wanted).
double rank_early_stop_cost(const double *early, const double *final, const double *early_cost,
                            const double *full_cost, size_t n, size_t k, double *kept);

#endif

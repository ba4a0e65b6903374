// SPDX-License-Identifier: MIT
// rank: average ranks, Spearman's rho, Kendall's tau-b and top-k overlap (see rank.h).
#include "rank.h"

#include "util.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

// Stable insertion sort of indices by key ascending (n is small: tens of candidates).
static void
sort_idx(size_t *idx, const double *key, size_t n, bool descending)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && (descending ? key[idx[j - 1]] < key[v] : key[idx[j - 1]] > key[v])) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

void
rank_average(const double *x, size_t n, double *r)
{
    size_t *idx = xmalloc((n ? n : 1) * sizeof *idx);
    sort_idx(idx, x, n, false);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && x[idx[j + 1]] == x[idx[i]])
            j++;
        double mean = (double)(i + j) / 2 + 1; // ranks i+1 .. j+1
        for (size_t k = i; k <= j; k++)
            r[idx[k]] = mean;
        i = j + 1;
    }
    free(idx);
}

double
rank_spearman(const double *x, const double *y, size_t n)
{
    if (n < 2)
        return NAN;
    double *rx = xmalloc(n * sizeof *rx), *ry = xmalloc(n * sizeof *ry);
    rank_average(x, n, rx);
    rank_average(y, n, ry);
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++)
        mx += rx[i], my += ry[i];
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    free(ry);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

double
rank_kendall(const double *x, const double *y, size_t n)
{
    // tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)), n1/n2 = pairs tied in x / in y.
    double c = 0, d = 0, tx = 0, ty = 0, n0 = (double)n * (double)(n - (n > 0)) / 2;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            double a = x[i] - x[j], b = y[i] - y[j];
            if (a == 0)
                tx++;
            if (b == 0)
                ty++;
            if (a * b > 0)
                c++;
            else if (a * b < 0)
                d++;
        }
    double den = sqrt((n0 - tx) * (n0 - ty));
    return n >= 2 && den > 0 ? (c - d) / den : NAN;
}

size_t
rank_top(const double *x, size_t n, size_t k, size_t *idx)
{
    size_t *all = xmalloc((n ? n : 1) * sizeof *all);
    sort_idx(all, x, n, true);
    if (k > n)
        k = n;
    for (size_t i = 0; i < k; i++)
        idx[i] = all[i];
    free(all);
    return k;
}

size_t
rank_top_overlap(const double *x, const double *y, size_t n, size_t k)
{
    size_t *a = xmalloc((n ? n : 1) * sizeof *a), *b = xmalloc((n ? n : 1) * sizeof *b);
    size_t ka = rank_top(x, n, k, a), kb = rank_top(y, n, k, b), same = 0;
    for (size_t i = 0; i < ka; i++)
        for (size_t j = 0; j < kb; j++)
            same += a[i] == b[j];
    free(a);
    free(b);
    return same;
}

double
rank_early_stop_cost(const double *early, const double *final, const double *early_cost,
                     const double *full_cost, size_t n, size_t k, double *kept)
{
    size_t *idx = xmalloc((n ? n : 1) * sizeof *idx);
    k = rank_top(early, n, k, idx);
    double cost = 0, best = -INFINITY;
    for (size_t i = 0; i < n; i++)
        cost += early_cost[i];
    for (size_t i = 0; i < k; i++) {
        cost += full_cost[idx[i]] - early_cost[idx[i]];
        best = fmax(best, final[idx[i]]);
    }
    if (kept)
        *kept = best;
    free(idx);
    return cost;
}

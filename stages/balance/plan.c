// SPDX-License-Identifier: MIT
// plan: apportionment and mixing arithmetic for balance (see plan.h).
#include "plan.h"

#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void
plan_apportion(uint64_t total, const double *w, size_t n, uint64_t *out)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += w[i];
    double *rem = xmalloc((n ? n : 1) * sizeof *rem);
    uint64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        double exact = sum > 0 ? (double)total * w[i] / sum : 0;
        out[i] = (uint64_t)floor(exact);
        rem[i] = exact - (double)out[i];
        given += out[i];
    }
    while (given < total && n) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (rem[i] > rem[best])
                best = i;
        out[best]++;
        rem[best] = -1;
        given++;
    }
    free(rem);
}

void
plan_apportion_nested(uint64_t k, const uint64_t *size, size_t n, uint64_t *out)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += size[i];
        out[i] = 0;
    }
    if (k > sum)
        k = sum;
    for (uint64_t j = 1; j <= k; j++) {
        size_t best = n;
        double best_def = 0;
        for (size_t g = 0; g < n; g++) {
            if (out[g] >= size[g])
                continue;
            double def = (double)j * (double)size[g] / (double)sum - (double)out[g];
            if (best == n || def > best_def) {
                best = g;
                best_def = def;
            }
        }
        out[best]++;
    }
}

void
plan_temperature(const uint64_t *n, size_t k, double T, uint64_t cap, double *rate)
{
    double sum = 0;
    for (size_t i = 0; i < k; i++) {
        double x = (double)(cap && n[i] > cap ? cap : n[i]);
        rate[i] = pow(x, 1.0 / T);
        sum += rate[i];
    }
    for (size_t i = 0; i < k; i++)
        rate[i] = sum > 0 ? rate[i] / sum : 0;
}

static const uint64_t *plan_sort_key;

static int
plan_idx_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint64_t kx = plan_sort_key[x], ky = plan_sort_key[y];
    if (kx != ky)
        return kx < ky ? -1 : 1;
    return x < y ? -1 : x > y;
}

void
plan_sort_by_key(uint32_t *idx, size_t n, const uint64_t *key)
{
    plan_sort_key = key;
    qsort(idx, n, sizeof *idx, plan_idx_cmp);
    plan_sort_key = NULL;
}

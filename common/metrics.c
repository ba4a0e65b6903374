// SPDX-License-Identifier: MIT
// metrics: confusion-matrix scores, ECE with equal-mass bins, standard errors. See metrics.h.
#include "metrics.h"
#include "hash.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void
metrics_confusion(int k, const int *gold, const int *pred, const size_t *idx, size_t n,
                  uint64_t *conf)
{
    memset(conf, 0, (size_t)k * (size_t)k * sizeof *conf);
    for (size_t j = 0; j < n; j++) {
        size_t i = idx ? idx[j] : j;
        conf[(size_t)gold[i] * (size_t)k + (size_t)pred[i]]++;
    }
}

static double
ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

void
metrics_from_confusion(int k, const uint64_t *conf, struct metrics_class *cls, double *acc,
                       double *macro_f1, double *mcc)
{
    double total = 0, trace = 0, f1_sum = 0, sum_pt = 0, sum_p2 = 0, sum_t2 = 0;
    int present = 0;
    for (int c = 0; c < k; c++) {
        double tp = (double)conf[(size_t)c * (size_t)k + (size_t)c], t = 0, p = 0;
        for (int j = 0; j < k; j++) {
            t += (double)conf[(size_t)c * (size_t)k + (size_t)j];
            p += (double)conf[(size_t)j * (size_t)k + (size_t)c];
        }
        double prec = ratio(tp, p), rec = ratio(tp, t), f1 = ratio(2 * prec * rec, prec + rec);
        if (cls)
            cls[c] = (struct metrics_class){prec, rec, f1, (uint64_t)t, (uint64_t)p};
        if (t > 0 || p > 0) {
            f1_sum += f1;
            present++;
        }
        total += t;
        trace += tp;
        sum_pt += p * t;
        sum_p2 += p * p;
        sum_t2 += t * t;
    }
    if (acc)
        *acc = ratio(trace, total);
    if (macro_f1)
        *macro_f1 = ratio(f1_sum, present);
    if (mcc) {
        // Gorodkin: (c s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
        double den = (total * total - sum_p2) * (total * total - sum_t2);
        *mcc = den > 0 ? (trace * total - sum_pt) / sqrt(den) : 0;
    }
}


struct ece_item {
    double conf;
    size_t i;
};

static int
ece_cmp(const void *a, const void *b)
{
    const struct ece_item *x = a, *y = b;
    if (x->conf != y->conf)
        return x->conf < y->conf ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

double
metrics_ece(const double *conf, const int *correct, const size_t *idx, size_t n, int n_bins,
            struct metrics_bin *bins)
{
    struct ece_item *ord = xmalloc((n ? n : 1) * sizeof *ord);
    for (size_t j = 0; j < n; j++) {
        ord[j].i = idx ? idx[j] : j;
        ord[j].conf = conf[ord[j].i];
    }
    qsort(ord, n, sizeof *ord, ece_cmp);
    double ece = 0;
    size_t base = n / (size_t)n_bins, extra = n % (size_t)n_bins, pos = 0;
    for (int b = 0; b < n_bins; b++) {
        size_t cnt = base + ((size_t)b < extra);
        double sc = 0, sa = 0;
        for (size_t j = pos; j < pos + cnt; j++) {
            sc += ord[j].conf;
            sa += correct[ord[j].i];
        }
        double mc = ratio(sc, (double)cnt), ma = ratio(sa, (double)cnt);
        if (bins)
            bins[b] = (struct metrics_bin){cnt, cnt ? ord[pos].conf : 0,
                                           cnt ? ord[pos + cnt - 1].conf : 0, mc, ma};
        if (cnt)
            ece += (double)cnt / (double)n * fabs(ma - mc);
        pos += cnt;
    }
    free(ord);
    return ece;
}

static double
sample_stddev(const double *x, size_t n)
{
    if (n < 2)
        return 0;
    double mean = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        mean += x[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - mean) * (x[i] - mean);
    return sqrt(ss / (double)(n - 1));
}

double
metrics_mean_stderr(const double *x, size_t n)
{
    return n < 2 ? 0 : sample_stddev(x, n) / sqrt((double)n);
}

double
metrics_bootstrap(size_t n, int iters, uint64_t seed,
                  double (*stat)(void *ctx, const size_t *idx, size_t n), void *ctx)
{
    if (n == 0 || iters < 2)
        return 0;
    size_t *idx = xmalloc(n * sizeof *idx);
    double *vals = xmalloc((size_t)iters * sizeof *vals);
    uint64_t state = seed;
    for (int it = 0; it < iters; it++) {
        for (size_t j = 0; j < n; j++) {
            state += 0x9E3779B97F4A7C15ull;
            idx[j] = (size_t)(hash_mix64(state) % n);
        }
        vals[it] = stat(ctx, idx, n);
    }
    double se = sample_stddev(vals, (size_t)iters);
    free(idx);
    free(vals);
    return se;
}

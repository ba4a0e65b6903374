// SPDX-License-Identifier: MIT
// gp: Gaussian-process regression with a Matérn 5/2 or RBF kernel and expected improvement
// (see gp.h). Sizes are small (tens of points), so everything is plain double loops except the
// Cholesky factorization and solves (LAPACK via common/kernels).
#include "gp.h"

#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double
gp_kernel_eval(enum gp_kernel k, const struct gp_hyper *h, const double *a, const double *b,
               int d)
{
    double r2 = 0;
    for (int i = 0; i < d; i++)
        r2 += (a[i] - b[i]) * (a[i] - b[i]);
    if (k == GP_RBF)
        return h->sf2 * exp(-r2 / (2 * h->ls * h->ls));
    double s = sqrt(5 * r2) / h->ls; // sqrt(5) r / l
    return h->sf2 * (1 + s + s * s / 3) * exp(-s);
}

void
gp_free(struct gp *g)
{
    free(g->x);
    free(g->l);
    free(g->alpha);
    memset(g, 0, sizeof *g);
}

// Fits standardized targets ys with hyperparameters h into g (whose x, n, d are set).
static int
fit_std(struct gp *g, const struct gp_hyper *h, const double *ys)
{
    int n = g->n;
    g->h = *h;
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            g->l[i * n + j] = g->l[j * n + i] =
                gp_kernel_eval(g->kernel, h, g->x + i * g->d, g->x + j * g->d, g->d) +
                (i == j ? h->sn2 : 0);
    if (kern_cholesky(g->l, n) < 0)
        return -1;
    memcpy(g->alpha, ys, sizeof(double) * (size_t)n);
    kern_cholesky_solve(g->l, n, g->alpha, 1);
    double fit = 0, logdet = 0;
    for (int i = 0; i < n; i++) {
        fit += ys[i] * g->alpha[i];
        logdet += log(g->l[i * n + i]);
    }
    g->lml = -0.5 * fit - logdet - 0.5 * n * log(2 * M_PI);
    return 0;
}

// Allocates g for n points and standardizes y into ys (caller frees).
static double *
setup(struct gp *g, enum gp_kernel k, const double *x, const double *y, int n, int d)
{
    memset(g, 0, sizeof *g);
    g->kernel = k;
    g->n = n;
    g->d = d;
    g->x = xmalloc(sizeof(double) * (size_t)n * (size_t)d);
    memcpy(g->x, x, sizeof(double) * (size_t)n * (size_t)d);
    g->l = xmalloc(sizeof(double) * (size_t)n * (size_t)n);
    g->alpha = xmalloc(sizeof(double) * (size_t)n);
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
        m += y[i];
    m /= n;
    for (int i = 0; i < n; i++)
        v += (y[i] - m) * (y[i] - m);
    v /= n;
    g->ymean = m;
    g->ystd = v > 0 ? sqrt(v) : 1;
    double *ys = xmalloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++)
        ys[i] = (y[i] - m) / g->ystd;
    return ys;
}

int
gp_fit(struct gp *g, enum gp_kernel k, const struct gp_hyper *h, const double *x,
       const double *y, int n, int d, struct kerr *err)
{
    double *ys = setup(g, k, x, y, n, d);
    int rc = fit_std(g, h, ys);
    free(ys);
    if (rc < 0) {
        gp_free(g);
        return kerr_set(err, "gp: kernel matrix of %d points is not positive definite", n);
    }
    return 0;
}

int
gp_fit_ml(struct gp *g, enum gp_kernel k, const double *x, const double *y, int n, int d,
          struct kerr *err)
{
    static const double ls[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0};
    static const double sf2[] = {0.25, 0.5, 1, 2, 4};
    static const double sn2[] = {1e-6, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.3};
    double *ys = setup(g, k, x, y, n, d);
    struct gp_hyper best = {0};
    double best_lml = -INFINITY;
    for (size_t a = 0; a < KILN_ARRAY_LEN(ls); a++)
        for (size_t b = 0; b < KILN_ARRAY_LEN(sf2); b++)
            for (size_t c = 0; c < KILN_ARRAY_LEN(sn2); c++) {
                struct gp_hyper h = {ls[a], sf2[b], sn2[c]};
                if (fit_std(g, &h, ys) == 0 && g->lml > best_lml) {
                    best_lml = g->lml;
                    best = h;
                }
            }
    int rc = best_lml > -INFINITY ? fit_std(g, &best, ys) : -1;
    free(ys);
    if (rc < 0) {
        gp_free(g);
        return kerr_set(err, "gp: no grid point gives a positive definite kernel matrix");
    }
    return 0;
}

void
gp_predict(const struct gp *g, const double *xs, int m, double *mean, double *var)
{
    int n = g->n;
    double *ks = xmalloc(sizeof(double) * (size_t)n * (size_t)m); // [n,m] k(X, xs)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++)
            ks[(size_t)i * m + j] =
                gp_kernel_eval(g->kernel, &g->h, g->x + i * g->d, xs + (size_t)j * g->d, g->d);
    double *v = xmalloc(sizeof(double) * (size_t)n * (size_t)m);
    memcpy(v, ks, sizeof(double) * (size_t)n * (size_t)m);
    kern_cholesky_solve(g->l, n, v, m); // K^-1 k*
    for (int j = 0; j < m; j++) {
        double mu = 0, q = 0;
        for (int i = 0; i < n; i++) {
            mu += ks[(size_t)i * m + j] * g->alpha[i];
            q += ks[(size_t)i * m + j] * v[(size_t)i * m + j];
        }
        const double *p = xs + (size_t)j * g->d;
        double s2 = gp_kernel_eval(g->kernel, &g->h, p, p, g->d) - q;
        mean[j] = g->ymean + g->ystd * mu;
        var[j] = (s2 > 0 ? s2 : 0) * g->ystd * g->ystd;
    }
    free(ks);
    free(v);
}

double
gp_ei(double mu, double sigma, double best, double xi)
{
    double imp = mu - best - xi;
    if (!(sigma > 0))
        return imp > 0 ? imp : 0;
    double z = imp / sigma;
    double cdf = 0.5 * erfc(-z / M_SQRT2), pdf = exp(-0.5 * z * z) / sqrt(2 * M_PI);
    return imp * cdf + sigma * pdf;
}

// SPDX-License-Identifier: MIT
// gp: Gaussian-process regression and expected improvement for Bayesian optimization over a
// few dimensions (kiln-hpo). An isotropic Matérn 5/2 or RBF kernel on inputs scaled to
// [0,1]^d; targets are standardized (zero mean, unit variance) before fitting and predictions
// are returned in the original units. The kernel's hyperparameters (length scale, signal
// variance, noise variance) are either given or chosen by maximizing the log marginal
// likelihood over a fixed grid (deterministic; no restarts). The Cholesky factorization and
// solves are LAPACK's, through common/kernels.
//
//   K = k(X, X) + sn2 I = L L^T,  alpha = K^-1 y
//   mean(x*) = k*^T alpha,  var(x*) = k(x*, x*) - k*^T K^-1 k*
//   log p(y | X) = -y^T alpha / 2 - sum log L_ii - n/2 log 2 pi
#ifndef KILN_GP_H
#define KILN_GP_H

#include "util.h"

enum gp_kernel { GP_MATERN52, GP_RBF };

struct gp_hyper {
    double ls;  // length scale (inputs in [0,1])
    double sf2; // signal variance (standardized units)
    double sn2; // noise variance (standardized units)
};

struct gp {
    enum gp_kernel kernel;
    struct gp_hyper h;
    int n, d;
    double *x;     // [n,d] training inputs
    double *l;     // [n,n] Cholesky factor of K (lower triangle)
    double *alpha; // [n] K^-1 y (standardized y)
    double ymean, ystd;
    double lml;    // log marginal likelihood of the standardized targets
};

// k(a, b) for two points of dimension d.
double gp_kernel_eval(enum gp_kernel k, const struct gp_hyper *h, const double *a,
                      const double *b, int d);
// Fits with fixed hyperparameters. x[n,d], y[n]; n ≥ 1. -1 with err if K is not positive
// definite.
int gp_fit(struct gp *g, enum gp_kernel k, const struct gp_hyper *h, const double *x,
           const double *y, int n, int d, struct kerr *err);
// Fits with the hyperparameters of the grid point of highest log marginal likelihood
// (length scales 0.05..2, signal variances 0.25..4, noise variances 1e-6..0.3).
int gp_fit_ml(struct gp *g, enum gp_kernel k, const double *x, const double *y, int n, int d,
              struct kerr *err);
// Posterior mean and variance (original units) at m points xs[m,d].
void gp_predict(const struct gp *g, const double *xs, int m, double *mean, double *var);
void gp_free(struct gp *g);

// Expected improvement over best when maximizing, for a normal posterior (mu, sigma):
// (mu - best - xi) Phi(z) + sigma phi(z), z = (mu - best - xi) / sigma; max(mu - best - xi, 0)
// when sigma is 0.
double gp_ei(double mu, double sigma, double best, double xi);

#endif

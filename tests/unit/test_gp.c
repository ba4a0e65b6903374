// SPDX-License-Identifier: MIT
// test_gp: common/gp against an independent torch reference (tests/unit/data/gp_fixture.h:
// posterior mean and variance of both kernels, log marginal likelihood, the grid search's
// choice), closed-form one-point cases, expected improvement in closed form, and the LAPACK
// Cholesky wrapper in common/kernels.
#include "../../common/gp.h"
#include "../../common/kernels.h"
#include "data/gp_fixture.h"
#include "test.h"

#include <math.h>

static void
test_cholesky(void)
{
    // A = [[4,2],[2,3]] = L L^T with L = [[2,0],[1,sqrt 2]].
    double a[4] = {4, 2, 2, 3};
    CHECK_EQ_INT(kern_cholesky(a, 2), 0);
    CHECK_NEAR(a[0], 2, 1e-15);
    CHECK_NEAR(a[2], 1, 1e-15);
    CHECK_NEAR(a[3], sqrt(2), 1e-15);
    // Solve A X = B for two right-hand sides: X = A^-1 B, A^-1 = [[3,-2],[-2,4]] / 8.
    double b[4] = {1, 0, 0, 1};
    kern_cholesky_solve(a, 2, b, 2);
    CHECK_NEAR(b[0], 3.0 / 8, 1e-15);
    CHECK_NEAR(b[1], -2.0 / 8, 1e-15);
    CHECK_NEAR(b[2], -2.0 / 8, 1e-15);
    CHECK_NEAR(b[3], 4.0 / 8, 1e-15);
    double bad[4] = {1, 2, 2, 1}; // indefinite
    CHECK_EQ_INT(kern_cholesky(bad, 2), -1);
}

static void
check_fixture(enum gp_kernel k, const double *mean, const double *var, double lml)
{
    struct gp g;
    struct gp_hyper h = {0.4, 1.5, 0.01};
    struct kerr err = {0};
    CHECK_EQ_INT(gp_fit(&g, k, &h, gpf_x, gpf_y, GPF_N, GPF_D, &err), 0);
    CHECK_NEAR(g.lml, lml, 1e-9);
    double mu[GPF_M], v[GPF_M];
    gp_predict(&g, gpf_xs, GPF_M, mu, v);
    for (int j = 0; j < GPF_M; j++) {
        CHECK_NEAR(mu[j], mean[j], 1e-10);
        CHECK_NEAR(v[j], var[j], 1e-10);
    }
    // At a training point with tiny noise the posterior interpolates.
    struct gp_hyper h0 = {0.4, 1.5, 1e-9};
    gp_free(&g);
    CHECK_EQ_INT(gp_fit(&g, k, &h0, gpf_x, gpf_y, GPF_N, GPF_D, &err), 0);
    gp_predict(&g, gpf_x + GPF_D, 1, mu, v);
    CHECK_NEAR(mu[0], gpf_y[1], 1e-6);
    CHECK(v[0] < 1e-6);
    gp_free(&g);
}

static void
test_one_point(void)
{
    // One observation (y = 5): standardized target 0, so the mean is 5 everywhere; the
    // variance is (sf2 - k^2 / (sf2 + sn2)) * ystd^2 with ystd = 1.
    double x[2] = {0.2, 0.3}, y = 5, xs[2] = {0.5, 0.7};
    struct gp_hyper h = {0.5, 2, 0.1};
    struct gp g;
    struct kerr err = {0};
    CHECK_EQ_INT(gp_fit(&g, GP_RBF, &h, x, &y, 1, 2, &err), 0);
    double mu, v;
    gp_predict(&g, xs, 1, &mu, &v);
    double r2 = 0.3 * 0.3 + 0.4 * 0.4, k = 2 * exp(-r2 / (2 * 0.25));
    CHECK_NEAR(mu, 5, 1e-12);
    CHECK_NEAR(v, 2 - k * k / 2.1, 1e-12);
    CHECK_NEAR(g.lml, -0.5 * log(2.1) - 0.5 * log(2 * M_PI), 1e-12);
    // Matérn 5/2 at distance r = 0.5 with l = 0.5: s = sqrt 5, k = sf2 (1 + s + s^2/3) e^-s.
    double a[1] = {0}, b[1] = {0.5}, s = sqrt(5);
    CHECK_NEAR(gp_kernel_eval(GP_MATERN52, &h, a, b, 1), 2 * (1 + s + 5.0 / 3) * exp(-s), 1e-14);
    gp_free(&g);
}

static void
test_grid(void)
{
    struct gp g;
    struct kerr err = {0};
    CHECK_EQ_INT(gp_fit_ml(&g, GP_MATERN52, gpf_x, gpf_y, GPF_N, GPF_D, &err), 0);
    CHECK_NEAR(g.h.ls, gpf_ml_ls, 1e-12);
    CHECK_NEAR(g.h.sf2, gpf_ml_sf2, 1e-12);
    CHECK_NEAR(g.h.sn2, gpf_ml_sn2, 1e-15);
    CHECK_NEAR(g.lml, gpf_ml_lml, 1e-8);
    gp_free(&g);
}

static void
test_ei(void)
{
    // mu = best: EI = sigma phi(0) = sigma / sqrt(2 pi).
    CHECK_NEAR(gp_ei(1, 2, 1, 0), 2 / sqrt(2 * M_PI), 1e-15);
    // mu - best = 1, sigma = 1: Phi(1) + phi(1).
    CHECK_NEAR(gp_ei(3, 1, 2, 0), 0.8413447460685429 + 0.24197072451914337, 1e-12);
    // xi shifts the incumbent; sigma 0 gives the plain improvement.
    CHECK_NEAR(gp_ei(3, 1, 2, 1), 1 / sqrt(2 * M_PI), 1e-15);
    CHECK_NEAR(gp_ei(3, 0, 2, 0), 1, 0);
    CHECK_NEAR(gp_ei(1, 0, 2, 0), 0, 0);
    // Far below the incumbent EI is tiny but positive, and grows with sigma.
    CHECK(gp_ei(0, 0.1, 1, 0) > 0 && gp_ei(0, 0.1, 1, 0) < 1e-20);
    CHECK(gp_ei(0, 1, 1, 0) > gp_ei(0, 0.5, 1, 0));
}

int
main(void)
{
    test_cholesky();
    check_fixture(GP_MATERN52, gpf_matern_mean, gpf_matern_var, gpf_matern_lml);
    check_fixture(GP_RBF, gpf_rbf_mean, gpf_rbf_var, gpf_rbf_lml);
    test_one_point();
    test_grid();
    test_ei();
    return test_summary();
}

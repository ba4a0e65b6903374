// SPDX-License-Identifier: MIT
// Tests for common/metrics: every number below was computed by hand (the working is in the
// comments), not by the code under test.
#include "../../common/metrics.h"
#include "test.h"

#include <math.h>

// 10 examples, 3 classes.
//   gold: 0 0 0 0 1 1 1 2 2 2
//   pred: 0 0 1 2 1 1 0 2 2 1
static const int gold[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
static const int pred[10] = {0, 0, 1, 2, 1, 1, 0, 2, 2, 1};

static void
test_confusion(void)
{
    uint64_t conf[9];
    metrics_confusion(3, gold, pred, NULL, 10, conf);
    // rows = gold, columns = predicted
    static const uint64_t want[9] = {2, 1, 1, 1, 2, 0, 0, 1, 2};
    for (int i = 0; i < 9; i++)
        CHECK_EQ_INT((int)conf[i], (int)want[i]);

    struct metrics_class cls[3];
    double acc, f1, mcc;
    metrics_from_confusion(3, conf, cls, &acc, &f1, &mcc);
    CHECK_NEAR(acc, 0.6, 1e-12);
    // class 0: tp 2, predicted 3, support 4 -> P 2/3, R 1/2, F1 4/7
    CHECK_NEAR(cls[0].precision, 2.0 / 3, 1e-12);
    CHECK_NEAR(cls[0].recall, 0.5, 1e-12);
    CHECK_NEAR(cls[0].f1, 4.0 / 7, 1e-12);
    CHECK_EQ_INT((int)cls[0].support, 4);
    // class 1: tp 2, predicted 4, support 3 -> P 1/2, R 2/3, F1 4/7
    CHECK_NEAR(cls[1].precision, 0.5, 1e-12);
    CHECK_NEAR(cls[1].recall, 2.0 / 3, 1e-12);
    CHECK_NEAR(cls[1].f1, 4.0 / 7, 1e-12);
    // class 2: tp 2, predicted 3, support 3 -> F1 2/3
    CHECK_NEAR(cls[2].f1, 2.0 / 3, 1e-12);
    // macro-F1 = (4/7 + 4/7 + 2/3) / 3 = 38/63
    CHECK_NEAR(f1, 38.0 / 63, 1e-12);
    // MCC: c 6, s 10, p (3,4,3), t (4,3,3): (60 - 33) / sqrt((100-34)(100-34)) = 27/66
    CHECK_NEAR(mcc, 27.0 / 66, 1e-12);

    // binary: perfect and inverted predictions give MCC 1 and -1; a constant prediction 0
    int g2[4] = {0, 0, 1, 1}, p2[4] = {1, 1, 0, 0}, c2[4] = {0, 0, 0, 0};
    uint64_t cm[4];
    metrics_confusion(2, g2, g2, NULL, 4, cm);
    metrics_from_confusion(2, cm, NULL, NULL, NULL, &mcc);
    CHECK_NEAR(mcc, 1, 1e-12);
    metrics_confusion(2, g2, p2, NULL, 4, cm);
    metrics_from_confusion(2, cm, NULL, &acc, &f1, &mcc);
    CHECK_NEAR(mcc, -1, 1e-12);
    CHECK_NEAR(acc, 0, 1e-12);
    CHECK_NEAR(f1, 0, 1e-12);
    metrics_confusion(2, g2, c2, NULL, 4, cm);
    metrics_from_confusion(2, cm, NULL, &acc, &f1, &mcc);
    CHECK_NEAR(mcc, 0, 1e-12);
    // class 0: P 1/2 R 1 F1 2/3; class 1: 0 -> macro 1/3
    CHECK_NEAR(f1, 1.0 / 3, 1e-12);

    // an index list selects (and repeats) examples: 0, 0, 4 -> gold 0,0,1 pred 0,0,1
    size_t idx[3] = {0, 0, 4};
    metrics_confusion(3, gold, pred, idx, 3, conf);
    CHECK_EQ_INT((int)conf[0], 2);
    CHECK_EQ_INT((int)conf[4], 1);
    // class 2 is absent from gold and pred: left out of the macro average
    metrics_from_confusion(3, conf, NULL, &acc, &f1, NULL);
    CHECK_NEAR(f1, 1, 1e-12);
}

static void
test_ece(void)
{
    double conf[10] = {0.9, 0.8, 0.4, 0.6, 0.7, 0.95, 0.5, 0.85, 0.65, 0.55};
    int correct[10];
    for (int i = 0; i < 10; i++)
        correct[i] = gold[i] == pred[i];
    // sorted: .4 .5 .55 .6 (all wrong) | .65 .7 .8 (right) | .85 .9 .95 (right)
    // bins of 4, 3, 3: .4*|0-.5125| + .3*|1-.716667| + .3*|1-.9| = .205 + .085 + .03 = .32
    struct metrics_bin bins[3];
    double ece = metrics_ece(conf, correct, NULL, 10, 3, bins);
    CHECK_NEAR(ece, 0.32, 1e-12);
    CHECK_EQ_INT((int)bins[0].count, 4);
    CHECK_EQ_INT((int)bins[2].count, 3);
    CHECK_NEAR(bins[0].confidence, 0.5125, 1e-12);
    CHECK_NEAR(bins[0].accuracy, 0, 1e-12);
    CHECK_NEAR(bins[1].confidence, 2.15 / 3, 1e-12);
    CHECK_NEAR(bins[2].accuracy, 1, 1e-12);
    CHECK_NEAR(bins[0].conf_lo, 0.4, 1e-12);
    CHECK_NEAR(bins[0].conf_hi, 0.6, 1e-12);
    // 10 bins over 10 examples: the mean of |correct - conf|
    // = (.1+.2+.4+.6+.3+.05+.5+.15+.35+.55)/10 = 3.2/10
    CHECK_NEAR(metrics_ece(conf, correct, NULL, 10, 10, NULL), 0.32, 1e-12);
    // fewer examples than bins: empty bins carry no weight
    struct metrics_bin b10[10];
    CHECK_NEAR(metrics_ece(conf, correct, NULL, 2, 10, b10), (0.1 + 0.2) / 2, 1e-12);
    CHECK_EQ_INT((int)b10[9].count, 0);
}

static double
stat_mean(void *ctx, const size_t *idx, size_t n)
{
    const double *x = ctx;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[idx[i]];
    return s / (double)n;
}

static double
stat_const(void *ctx, const size_t *idx, size_t n)
{
    (void)ctx, (void)idx, (void)n;
    return 0.5;
}

static void
test_stderr(void)
{
    // [1,1,1,0,0]: mean .6, sample variance (3*.16 + 2*.36)/4 = .3, se = sqrt(.3/5)
    double x[5] = {1, 1, 1, 0, 0};
    CHECK_NEAR(metrics_mean_stderr(x, 5), sqrt(0.3 / 5), 1e-12);
    CHECK_NEAR(metrics_mean_stderr(x, 1), 0, 0);

    double a = metrics_bootstrap(5, 2000, 1234, stat_mean, x);
    double b = metrics_bootstrap(5, 2000, 1234, stat_mean, x);
    double c = metrics_bootstrap(5, 2000, 99, stat_mean, x);
    CHECK(a == b); // fixed seed: the same value
    CHECK(a != c);
    // the bootstrap se of a mean approaches the population sd / sqrt(n) = sqrt(.24/5) = .2191
    CHECK_NEAR(a, sqrt(0.24 / 5), 0.012);
    CHECK_NEAR(c, sqrt(0.24 / 5), 0.012);
    CHECK_NEAR(metrics_bootstrap(5, 100, 1, stat_const, NULL), 0, 0);
    CHECK_NEAR(metrics_bootstrap(0, 100, 1, stat_mean, x), 0, 0);
}

int
main(void)
{
    test_confusion();
    test_ece();
    test_stderr();
    return test_summary();
}

// SPDX-License-Identifier: MIT
// test_rank: average ranks with ties, Spearman's rho and Kendall's tau-b (against values
// computed by hand and with scipy.stats' definitions), top-k and overlap.
#include "../../common/rank.h"
#include "test.h"

#include <math.h>

int
main(void)
{
    double x[] = {10, 20, 20, 5, 30}, r[5];
    rank_average(x, 5, r);
    CHECK_NEAR(r[0], 2, 0);
    CHECK_NEAR(r[1], 3.5, 0);
    CHECK_NEAR(r[2], 3.5, 0);
    CHECK_NEAR(r[3], 1, 0);
    CHECK_NEAR(r[4], 5, 0);

    double a[] = {1, 2, 3, 4, 5}, b[] = {5, 6, 7, 8, 7}, c[] = {5, 4, 3, 2, 1};
    CHECK_NEAR(rank_spearman(a, a, 5), 1, 1e-15);
    CHECK_NEAR(rank_spearman(a, c, 5), -1, 1e-15);
    // b's ranks 1 2 3.5 5 3.5: rho = 0.8207826816681233 (scipy.stats.spearmanr).
    CHECK_NEAR(rank_spearman(a, b, 5), 0.8207826816681233, 1e-12);
    // tau-b: C = 8, D = 1, one tie in b: (8 - 1) / sqrt(10 * 9) = 0.7378647873726218.
    CHECK_NEAR(rank_kendall(a, b, 5), 0.7378647873726218, 1e-12);
    CHECK_NEAR(rank_kendall(a, c, 5), -1, 1e-15);
    // Ties on both sides: x = 1 1 2 3, y = 1 2 2 3 → C = 4, D = 0, n0 = 6, tx = ty = 1:
    // tau-b = 4 / 5; rho = pearson((1.5,1.5,3,4), (1,2.5,2.5,4)) = 5/6.
    double p[] = {1, 1, 2, 3}, q[] = {1, 2, 2, 3};
    CHECK_NEAR(rank_kendall(p, q, 4), 0.8, 1e-15);
    CHECK_NEAR(rank_spearman(p, q, 4), 5.0 / 6, 1e-12);
    double k[] = {2, 2, 2};
    CHECK(isnan(rank_spearman(a, k, 3)));
    CHECK(isnan(rank_kendall(a, k, 3)));
    CHECK(isnan(rank_kendall(a, a, 1)));

    // Top 3 of x (10 20 20 5 30): 4, then the tie 1 before 2.
    size_t idx[5];
    CHECK_EQ_INT(rank_top(x, 5, 3, idx), 3);
    CHECK_EQ_INT(idx[0], 4);
    CHECK_EQ_INT(idx[1], 1);
    CHECK_EQ_INT(idx[2], 2);
    CHECK_EQ_INT(rank_top(x, 5, 9, idx), 5);
    CHECK_EQ_INT(rank_top_overlap(a, b, 5, 2), 1); // {4,3} vs {3, 2 (tie 2,4 → 2)}
    CHECK_EQ_INT(rank_top_overlap(a, c, 5, 2), 0);
    CHECK_EQ_INT(rank_top_overlap(a, a, 5, 5), 5);

    // Early stopping: costs 1 early / 5 full each; keep the top 2 by early (a: items 4, 3).
    double ec[] = {1, 1, 1, 1, 1}, fc[] = {5, 5, 5, 5, 5}, kept;
    CHECK_NEAR(rank_early_stop_cost(a, b, ec, fc, 5, 2, &kept), 5 + 2 * 4, 0);
    CHECK_NEAR(kept, 8, 0); // b[3]
    CHECK_NEAR(rank_early_stop_cost(a, b, ec, fc, 5, 9, NULL), 25, 0);
    CHECK_NEAR(rank_early_stop_cost(c, b, ec, fc, 5, 1, &kept), 9, 0);
    CHECK_NEAR(kept, 5, 0); // c's best is item 0, b[0] = 5
    return test_summary();
}

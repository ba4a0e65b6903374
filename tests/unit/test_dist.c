// SPDX-License-Identifier: MIT
// Unit tests for dist: the fixed summation tree over leaves (whose float additions do not
// associate, so any other order shows), leaf return values, and the one-rank fallback.
// Started by mpirun (tests/e2e/mpi.bats runs it with 3 ranks) the same checks run over
// MPI: every rank must get exactly the one-process tree's bits, for leaf counts that split
// unevenly over the ranks and give a rank several tree nodes.
#include "dist.h"
#include "test.h"

#include <stdlib.h>

#define N 7 // vector length: slices of 2 or 3 floats over 3 ranks

// Leaf i: values of very different magnitude, so sums depend on the order of additions.
static float
leaf_val(int i, int k)
{
    return (float)((i * 7 + k * 13) % 11 - 5) * ldexpf(1.0f, (i * 5 + k * 3) % 9 * 3 - 12) +
           0.1f * (float)(i + 1);
}

static int calls, prev_leaf;
static bool ordered;

static double
leaf(void *ctx, int i, float *v)
{
    (void)ctx;
    for (int k = 0; k < N; k++)
        v[k] = leaf_val(i, k);
    ordered &= i > prev_leaf;
    prev_leaf = i;
    calls++;
    return 0.5 * i;
}

// The tree of dist.h written out: [lo, lo+n) = [lo, lo+n/2) + [lo+n/2, lo+n).
static void
tree_ref(int lo, int n, float *v)
{
    if (n == 1) {
        for (int k = 0; k < N; k++)
            v[k] = leaf_val(lo, k);
        return;
    }
    float r[N];
    tree_ref(lo, n / 2, v);
    tree_ref(lo + n / 2, n - n / 2, r);
    for (int k = 0; k < N; k++)
        v[k] += r[k];
}

int
main(int argc, char **argv)
{
    struct kerr err;
    CHECK_EQ_INT(dist_init(&argc, &argv, &err), 0);
    CHECK(dist_size() >= 1 && dist_rank() >= 0 && dist_rank() < dist_size());
    if (!dist_active())
        CHECK(dist_size() == 1 && dist_local_size() == 1 && strcmp(dist_desc(), "none") == 0);

    // The tree differs from a left-to-right sum for these leaves (else the test proves nothing).
    float seq[N] = {0}, ref[N];
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < N; k++)
            seq[k] += leaf_val(i, k);
    tree_ref(0, 6, ref);
    CHECK(memcmp(seq, ref, sizeof seq) != 0);

    for (int L = 1; L <= 9; L++) {
        float out[N], want[N];
        double ret[9];
        calls = 0, prev_leaf = -1, ordered = true;
        memset(out, 0xff, sizeof out);
        CHECK_EQ_INT(dist_tree_sum(L, leaf, NULL, out, N, ret, &err), 0);
        tree_ref(0, L, want);
        CHECK_MSG(memcmp(out, want, sizeof out) == 0, "L %d: not the fixed tree's bits", L);
        int lo, hi;
        dist_leaf_range(L, &lo, &hi);
        CHECK_EQ_INT(calls, hi - lo);
        CHECK(ordered);
        for (int i = 0; i < L; i++)
            CHECK_MSG(ret[i] == 0.5 * i, "L %d: leaf %d returned %g", L, i, ret[i]);
    }
    CHECK_EQ_INT(dist_tree_sum(0, leaf, NULL, NULL, N, NULL, &err), -1);

    // bcast from the last rank.
    int x = dist_rank() == dist_size() - 1 ? 42 : 0;
    CHECK_EQ_INT(dist_bcast(&x, sizeof x, dist_size() - 1, &err), 0);
    CHECK_EQ_INT(x, 42);
    CHECK_EQ_INT(dist_barrier(&err), 0);
    dist_finalize();
    return test_summary();
}

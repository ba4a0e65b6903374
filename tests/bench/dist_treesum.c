// SPDX-License-Identifier: MIT
// dist_treesum: time of one dist_tree_sum (common/dist.c) of a training step's gradient size,
// for bench_mpi.sh. Run under mpirun: every rank owns the same number of leaves (a cheap fill
// stands in for a micro-batch's backward pass), a barrier precedes each sum, and each rank
// prints its median wall and mean CPU milliseconds per sum. Usage: dist_treesum FLOATS [ITERS]
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t n_floats;

static double
fill(void *ctx, int leaf, float *v)
{
    (void)ctx;
    for (size_t k = 0; k < n_floats; k++)
        v[k] = (float)(leaf + (int)(k % 7));
    return 0;
}

static double
clock_s(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
    struct kerr err;
    if (dist_init(&argc, &argv, &err) < 0 || argc < 2) {
        fprintf(stderr, "usage: mpirun -np R dist_treesum FLOATS [ITERS]%s%s\n",
                argc < 2 ? "" : ": ", argc < 2 ? "" : err.msg);
        return 2;
    }
    n_floats = strtoull(argv[1], NULL, 10);
    int iters = argc > 2 ? atoi(argv[2]) : 20, leaves = dist_size();
    float *out = malloc(n_floats * sizeof *out);
    double *wall = malloc((size_t)iters * sizeof *wall);
    if (!out || !wall || dist_tree_sum(leaves, fill, NULL, out, n_floats, NULL, &err) < 0)
        return 1; // the first sum allocates: not timed
    double cpu = 0;
    for (int i = 0; i < iters; i++) {
        if (dist_barrier(&err) < 0)
            return 1;
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        if (dist_tree_sum(leaves, fill, NULL, out, n_floats, NULL, &err) < 0) {
            fprintf(stderr, "dist_treesum: %s\n", err.msg);
            return 1;
        }
        wall[i] = clock_s(CLOCK_MONOTONIC) - w0;
        cpu += clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    qsort(wall, (size_t)iters, sizeof *wall, cmp_double);
    printf("%d %.3f %.3f\n", dist_rank(), wall[iters / 2] * 1e3, cpu / iters * 1e3);
    free(out);
    free(wall);
    dist_finalize();
    return 0;
}

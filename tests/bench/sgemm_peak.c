// SPDX-License-Identifier: MIT
// sgemm_peak: the sgemm throughput this machine reaches right now, the denominator of the
// trainer's model FLOP utilization. Usage: sgemm_peak THREADS [N]. THREADS = 1 measures one
// OpenBLAS thread; THREADS > 1 runs that many single-threaded sgemms at once through kiln's
// pool (how the trainer uses the cores). Prints the best of several N×N×N products in
// GFLOP/s on one line; with --cpu as the first argument, measured in CPU time instead of wall
// time (FLOPs per CPU second times THREADS), the rate that does not depend on how much of a
// shared machine the process got.
#include "kernels.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct job {
    int n;
    float *a, *b, *c;
};

static void
one(void *ctx, int task, int thread)
{
    struct job *j = ctx;
    size_t nn = (size_t)j->n * j->n;
    kern_gemm1(false, true, j->n, j->n, j->n, 1.0f, j->a + task * nn, j->n, j->b + task * nn,
               j->n, 0.0f, j->c + task * nn, j->n);
}

int
main(int argc, char **argv)
{
    bool cpu = argc > 1 && strcmp(argv[1], "--cpu") == 0;
    if (cpu) {
        argc--;
        argv++;
    }
    int threads = argc > 1 ? atoi(argv[1]) : 1, n = argc > 2 ? atoi(argv[2]) : 512;
    if (threads < 1 || n < 16) {
        fprintf(stderr, "usage: sgemm_peak [--cpu] THREADS [N]\n");
        return 2;
    }
    struct kpool *p = kpool_new(threads);
    size_t nn = (size_t)n * n;
    struct job j = {n, xmalloc(sizeof(float) * nn * threads), xmalloc(sizeof(float) * nn * threads),
                    xmalloc(sizeof(float) * nn * threads)};
    for (size_t i = 0; i < nn * threads; i++) {
        j.a[i] = (float)(i % 17) * 0.01f;
        j.b[i] = (float)(i % 13) * 0.02f;
    }
    double best = 0;
    for (int rep = 0; rep < 12; rep++) {
        double t0 = cpu ? cpu_seconds() : now_seconds();
        int inner = 4;
        for (int k = 0; k < inner; k++)
            kpool_run(p, threads, one, &j);
        double dt = cpu ? (cpu_seconds() - t0) / threads : now_seconds() - t0;
        double gf = 2.0 * n * (double)n * n * threads * inner / dt / 1e9;
        best = gf > best ? gf : best;
    }
    printf("%.1f\n", best);
    free(j.a);
    free(j.b);
    free(j.c);
    kpool_del(p);
    return 0;
}

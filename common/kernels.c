// SPDX-License-Identifier: MIT
// kernels: thread pool, sgemm wrapper and the layer math (see kernels.h for the contracts).
//
// The pool: workers sleep on a condition variable; kpool_run publishes a job (function,
// context, task count) under a new generation number, every thread (the caller included)
// claims task indices from an atomic counter until none are left, and the caller waits for
// the workers to report done. Tasks are independent and each writes its own outputs, so the
// order in which threads claim them cannot change any result.
#include "kernels.h"

// The elementwise loops here have run-time trip counts, which GCC's -O2 cost model does not
// vectorize; these few loops are a good part of the non-sgemm time.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include "util.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kpool {
    int n;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;
    uint64_t gen;
    int busy; // workers still running the current job
    bool quit;
    kpool_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next;
};

struct kpool_worker {
    struct kpool *p;
    int id;
};

static void
kpool_drain(struct kpool *p, int thread)
{
    for (;;) {
        int t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks)
            break;
        p->fn(p->ctx, t, thread);
    }
}

static void *
kpool_main(void *arg)
{
    struct kpool_worker *w = arg;
    struct kpool *p = w->p;
    int id = w->id;
    free(w);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->quit)
            pthread_cond_wait(&p->cv_start, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        kpool_drain(p, id);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct kpool *
kpool_new(int n_threads)
{
    openblas_set_num_threads(1);
    struct kpool *p = xcalloc(1, sizeof *p);
    p->n = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_start, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->th = xcalloc((size_t)p->n, sizeof *p->th);
    for (int i = 1; i < p->n; i++) {
        struct kpool_worker *w = xmalloc(sizeof *w);
        w->p = p;
        w->id = i;
        if (pthread_create(&p->th[i], NULL, kpool_main, w) != 0) {
            // Fewer threads only costs speed, never changes results.
            free(w);
            p->n = i;
            break;
        }
    }
    return p;
}

void
kpool_del(struct kpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_start);
    pthread_cond_destroy(&p->cv_done);
    free(p->th);
    free(p);
}

int
kpool_threads(const struct kpool *p)
{
    return p ? p->n : 1;
}

void
kpool_run(struct kpool *p, int n_tasks, kpool_fn fn, void *ctx)
{
    if (n_tasks <= 0)
        return;
    if (!p || p->n == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    kpool_drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

const char *
kern_blas_desc(void)
{
    static char desc[256];
    snprintf(desc, sizeof desc, "%s (core %s)", openblas_get_config(), openblas_get_corename());
    return desc;
}

const char *
kern_blas_version(void)
{
    return openblas_get_config();
}

// LAPACK's Fortran entry points in OpenBLAS (no lapacke.h is installed), with the hidden
// string-length arguments of gfortran's calling convention. A row-major lower triangle is the
// column-major upper triangle, hence "U".
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t);

int
kern_cholesky(double *a, int n)
{
    int info = 0;
    dpotrf_("U", &n, a, &n, &info, 1);
    return info ? -1 : 0;
}

void
kern_cholesky_solve(const double *l, int n, double *b, int nrhs)
{
    // B is row-major [n,nrhs]: column-major it is B^T [nrhs,n]; solve column by column via a
    // transposed copy so LAPACK sees contiguous right-hand sides.
    double *t = xmalloc(sizeof(double) * (size_t)n * (size_t)nrhs);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nrhs; j++)
            t[(size_t)j * n + i] = b[(size_t)i * nrhs + j];
    int info = 0;
    dpotrs_("U", &n, &nrhs, l, &n, t, &n, &info, 1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nrhs; j++)
            b[(size_t)i * nrhs + j] = t[(size_t)j * n + i];
    free(t);
}

// e^x for the softmax, cross-entropy and SiLU loops: Cephes' expf polynomial (relative error
// below 2e-7 on the whole range) written so the compiler vectorizes it, unlike libm's expf.
// Arguments below -87.3 give about 1e-38 instead of a subnormal or 0.
static inline float
kexp(float x)
{
    x = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
    float k = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

// max of x[0, n) (n ≥ 1), as the left-to-right loop `m = x[c] > m ? x[c] : m` gives it, in 8
// lanes so it vectorizes (a max does not depend on the order).
static inline float
kmax(const float *x, int n)
{
    float mx[8];
    for (int k = 0; k < 8; k++)
        mx[k] = x[0];
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int k = 0; k < 8; k++)
            mx[k] = x[c + k] > mx[k] ? x[c + k] : mx[k];
    for (; c < n; c++)
        mx[0] = x[c] > mx[0] ? x[c] : mx[0];
    float m = mx[0];
    for (int k = 1; k < 8; k++)
        m = mx[k] > m ? mx[k] : m;
    return m;
}

static int
kern_blocks(int rows)
{
    return (rows + KERN_ROWS - 1) / KERN_ROWS;
}

// ---- matrix products -------------------------------------------------------------------

void
kern_gemm1(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
           const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) { // OpenBLAS handles this too, but make "C = beta C" explicit
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Rows of C per gemm task: about a quarter of the rows, rounded up to a multiple of 64, at
// least 64 and at most 512. Each task packs the shared operand again, so fewer, larger tasks
// cost less (the packing was ~8% of a training step with eighths); four still balance two
// threads. Depends on M only.
static int
gemm_block_rows(int M)
{
    int r = (M / 4 + KERN_ROWS - 1) / KERN_ROWS * KERN_ROWS;
    return r < KERN_ROWS ? KERN_ROWS : r > 8 * KERN_ROWS ? 8 * KERN_ROWS : r;
}

struct gemm_job {
    bool ta, tb;
    int rows; // per task
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
};

static void
gemm_task(void *ctx, int task, int thread)
{
    struct gemm_job *g = ctx;
    int m0 = task * g->rows;
    int m = g->M - m0 < g->rows ? g->M - m0 : g->rows;
    const float *A = g->ta ? g->A + m0 : g->A + (size_t)m0 * g->lda;
    kern_gemm1(g->ta, g->tb, m, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta,
               g->C + (size_t)m0 * g->ldc, g->ldc);
}

void
kern_gemm(struct kpool *p, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
          int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int rows = gemm_block_rows(M);
    struct gemm_job g = {ta, tb, rows, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
    kpool_run(p, (M + rows - 1) / rows, gemm_task, &g);
}

void
kern_linear_fwd(struct kpool *p, float *y, const float *x, const float *w, int n, int in, int out,
                bool accumulate)
{
    kern_gemm(p, false, true, n, out, in, 1.0f, x, in, w, in, accumulate ? 1.0f : 0.0f, y, out);
}

void
kern_linear_bwd_x(struct kpool *p, float *dx, const float *dy, const float *w, int n, int in,
                  int out, bool accumulate)
{
    kern_gemm(p, false, false, n, in, out, 1.0f, dy, out, w, in, accumulate ? 1.0f : 0.0f, dx,
              in);
}

void
kern_linear_bwd_w(struct kpool *p, float *dw, const float *dy, const float *x, int n, int in,
                  int out)
{
    // dw[out,in] += dy^T x: rows of dw are output features; the sum over n stays in one task.
    kern_gemm(p, true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

// ---- RMSNorm -----------------------------------------------------------------------------

struct rms_job {
    float *y, *rstd, *dx, *dw;
    const float *x, *w, *dy;
    const float *rstd_in;
    int n, d;
    float eps;
    bool lanes; // sum of squares in 8 lanes (kern_rmsnorm_fwd_infer)
};

static void
rms_fwd_task(void *ctx, int task, int thread)
{
    struct rms_job *j = ctx;
    int r1 = (task + 1) * KERN_ROWS < j->n ? (task + 1) * KERN_ROWS : j->n;
    for (int r = task * KERN_ROWS; r < r1; r++) {
        const float *x = j->x + (size_t)r * j->d;
        float *y = j->y + (size_t)r * j->d;
        float ss = 0;
        if (j->lanes) { // forward only: 8 partial sums, so the loop vectorizes
            float part[8] = {0};
            int i = 0;
            for (; i + 8 <= j->d; i += 8)
                for (int k = 0; k < 8; k++)
                    part[k] += x[i + k] * x[i + k];
            for (; i < j->d; i++)
                part[0] += x[i] * x[i];
            for (int k = 0; k < 8; k++)
                ss += part[k];
        } else {
            for (int i = 0; i < j->d; i++)
                ss += x[i] * x[i];
        }
        float rs = 1.0f / sqrtf(ss / (float)j->d + j->eps);
        j->rstd[r] = rs;
        for (int i = 0; i < j->d; i++)
            y[i] = x[i] * rs * j->w[i];
    }
}

void
kern_rmsnorm_fwd(struct kpool *p, float *y, float *rstd, const float *x, const float *w, int n,
                 int d, float eps)
{
    struct rms_job j = {.y = y, .rstd = rstd, .x = x, .w = w, .n = n, .d = d, .eps = eps};
    kpool_run(p, kern_blocks(n), rms_fwd_task, &j);
}

void
kern_rmsnorm_fwd_infer(struct kpool *p, float *y, float *rstd, const float *x, const float *w,
                       int n, int d, float eps)
{
    struct rms_job j = {.y = y, .rstd = rstd, .x = x, .w = w, .n = n, .d = d, .eps = eps,
                        .lanes = true};
    kpool_run(p, kern_blocks(n), rms_fwd_task, &j);
}

static void
rms_bwd_x_task(void *ctx, int task, int thread)
{
    struct rms_job *j = ctx;
    int r1 = (task + 1) * KERN_ROWS < j->n ? (task + 1) * KERN_ROWS : j->n;
    for (int r = task * KERN_ROWS; r < r1; r++) {
        const float *x = j->x + (size_t)r * j->d, *dy = j->dy + (size_t)r * j->d;
        float *dx = j->dx + (size_t)r * j->d;
        float rs = j->rstd_in[r];
        // xhat = x rs; g = dy w; dx = rs (g - xhat mean(g xhat))
        float dot = 0;
        for (int i = 0; i < j->d; i++)
            dot += dy[i] * j->w[i] * x[i];
        float c = dot * rs * rs / (float)j->d;
        for (int i = 0; i < j->d; i++)
            dx[i] += rs * (dy[i] * j->w[i] - x[i] * c);
    }
}

// dw columns in blocks of KERN_ROWS; each column's sum over rows runs in row order.
static void
rms_bwd_w_task(void *ctx, int task, int thread)
{
    struct rms_job *j = ctx;
    int c0 = task * KERN_ROWS, c1 = c0 + KERN_ROWS < j->d ? c0 + KERN_ROWS : j->d;
    float acc[KERN_ROWS] = {0};
    for (int r = 0; r < j->n; r++) {
        const float *x = j->x + (size_t)r * j->d, *dy = j->dy + (size_t)r * j->d;
        float rs = j->rstd_in[r];
        for (int c = c0; c < c1; c++)
            acc[c - c0] += dy[c] * x[c] * rs;
    }
    for (int c = c0; c < c1; c++)
        j->dw[c] += acc[c - c0];
}

void
kern_rmsnorm_bwd(struct kpool *p, float *dx, float *dw, const float *dy, const float *x,
                 const float *w, const float *rstd, int n, int d)
{
    struct rms_job j = {.dx = dx, .dw = dw, .x = x, .w = w, .dy = dy, .rstd_in = rstd, .n = n,
                        .d = d};
    kpool_run(p, kern_blocks(n), rms_bwd_x_task, &j);
    kpool_run(p, kern_blocks(d), rms_bwd_w_task, &j);
}

// ---- RoPE -------------------------------------------------------------------------------

void
kern_rope_table(float *cos_t, float *sin_t, int max_pos, int hd, float theta)
{
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        for (int pos = 0; pos < max_pos; pos++) {
            float a = (float)pos * inv;
            cos_t[(size_t)pos * half + i] = cosf(a);
            sin_t[(size_t)pos * half + i] = sinf(a);
        }
    }
}

struct rope_job {
    float *x;
    int n, ld, col0, nh, hd, t;
    const int *pos;
    const float *cos_t, *sin_t;
    bool inverse;
};

static void
rope_task(void *ctx, int task, int thread)
{
    struct rope_job *j = ctx;
    int half = j->hd / 2;
    int r1 = (task + 1) * KERN_ROWS < j->n ? (task + 1) * KERN_ROWS : j->n;
    float s_sign = j->inverse ? -1.0f : 1.0f;
    for (int r = task * KERN_ROWS; r < r1; r++) {
        int pos = j->pos ? j->pos[r] : r % j->t;
        const float *c = j->cos_t + (size_t)pos * half, *s = j->sin_t + (size_t)pos * half;
        float *row = j->x + (size_t)r * j->ld + j->col0;
        for (int h = 0; h < j->nh; h++) {
            float *a = row + h * j->hd, *b = a + half;
            for (int i = 0; i < half; i++) {
                float x1 = a[i], x2 = b[i], si = s_sign * s[i];
                a[i] = x1 * c[i] - x2 * si;
                b[i] = x2 * c[i] + x1 * si;
            }
        }
    }
}

void
kern_rope(struct kpool *p, float *x, int n, int ld, int col0, int n_heads, int hd, int t,
          const int *pos, const float *cos_t, const float *sin_t, bool inverse)
{
    struct rope_job j = {x, n, ld, col0, n_heads, hd, t, pos, cos_t, sin_t, inverse};
    kpool_run(p, kern_blocks(n), rope_task, &j);
}

// ---- SwiGLU -----------------------------------------------------------------------------

struct swiglu_job {
    float *out;
    const float *in, *gu;
    int n, f;
};

static void
swiglu_fwd_task(void *ctx, int task, int thread)
{
    struct swiglu_job *j = ctx;
    int r1 = (task + 1) * KERN_ROWS < j->n ? (task + 1) * KERN_ROWS : j->n;
    for (int r = task * KERN_ROWS; r < r1; r++) {
        const float *restrict g = j->gu + (size_t)r * 2 * j->f, *restrict u = g + j->f;
        float *restrict h = j->out + (size_t)r * j->f;
        for (int i = 0; i < j->f; i++)
            h[i] = g[i] / (1.0f + kexp(-g[i])) * u[i];
    }
}

void
kern_swiglu_fwd(struct kpool *p, float *h, const float *gu, int n, int f)
{
    struct swiglu_job j = {h, NULL, gu, n, f};
    kpool_run(p, kern_blocks(n), swiglu_fwd_task, &j);
}

static void
swiglu_bwd_task(void *ctx, int task, int thread)
{
    struct swiglu_job *j = ctx;
    int r1 = (task + 1) * KERN_ROWS < j->n ? (task + 1) * KERN_ROWS : j->n;
    for (int r = task * KERN_ROWS; r < r1; r++) {
        const float *restrict g = j->gu + (size_t)r * 2 * j->f, *restrict u = g + j->f;
        const float *restrict dh = j->in + (size_t)r * j->f;
        float *restrict dg = j->out + (size_t)r * 2 * j->f, *restrict du = dg + j->f;
        for (int i = 0; i < j->f; i++) {
            float sg = 1.0f / (1.0f + kexp(-g[i]));
            float silu = g[i] * sg;
            du[i] = dh[i] * silu;
            dg[i] = dh[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
        }
    }
}

void
kern_swiglu_bwd(struct kpool *p, float *dgu, const float *dh, const float *gu, int n, int f)
{
    struct swiglu_job j = {dgu, dh, gu, n, f};
    kpool_run(p, kern_blocks(n), swiglu_bwd_task, &j);
}

// ---- attention --------------------------------------------------------------------------
//
// Each task handles one sequence and one head (forward) or one kv head with its group of
// query heads (backward, so dk and dv sum over the group in a fixed order). Inside a task,
// query rows go in blocks of KERN_ROWS and only the causal columns [0, r1) are computed.

struct attn_job {
    const struct kern_attn *a;
    float *out, *att, *dqkv, *scratch;
    const float *qkv, *dout, *att_in;
};

static void
attn_fwd_task(void *ctx, int task, int thread)
{
    struct attn_job *j = ctx;
    const struct kern_attn *a = j->a;
    int b = task / a->nh, h = task % a->nh, t = a->t, hd = a->hd;
    int ld = (a->nh + 2 * a->nkv) * hd, kvh = h / (a->nh / a->nkv);
    const float *q = j->qkv + (size_t)b * t * ld + h * hd;
    const float *k = j->qkv + (size_t)b * t * ld + (a->nh + kvh) * hd;
    const float *v = j->qkv + (size_t)b * t * ld + (a->nh + a->nkv + kvh) * hd;
    float *att = j->att + (size_t)task * t * t;
    float *out = j->out + (size_t)b * t * a->nh * hd + h * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int r0 = 0; r0 < t; r0 += KERN_ROWS) {
        int r1 = r0 + KERN_ROWS < t ? r0 + KERN_ROWS : t;
        float *s = att + (size_t)r0 * t;
        kern_gemm1(false, true, r1 - r0, r1, hd, scale, q + (size_t)r0 * ld, ld, k, ld, 0.0f, s,
                   t);
        for (int i = r0; i < r1; i++) {
            float *row = att + (size_t)i * t;
            float m = row[0];
            for (int c = 1; c <= i; c++)
                m = row[c] > m ? row[c] : m;
            float sum = 0;
            for (int c = 0; c <= i; c++) {
                row[c] = kexp(row[c] - m);
                sum += row[c];
            }
            float inv = 1.0f / sum;
            for (int c = 0; c <= i; c++)
                row[c] *= inv;
            memset(row + i + 1, 0, sizeof(float) * (size_t)(t - i - 1));
        }
        kern_gemm1(false, false, r1 - r0, hd, r1, 1.0f, s, t, v, ld, 0.0f,
                   out + (size_t)r0 * a->nh * hd, a->nh * hd);
    }
}

void
kern_attn_fwd(struct kpool *p, const struct kern_attn *a, float *out, float *att,
              const float *qkv)
{
    struct attn_job j = {.a = a, .out = out, .att = att, .qkv = qkv};
    kpool_run(p, a->b * a->nh, attn_fwd_task, &j);
}

// ---- forward-only attention --------------------------------------------------------------
//
// kern_attn_rows: one head, query rows in blocks of ATTN_R, vectorized with GCC vector
// extensions (8 floats; AVX2 or wider under -march=native, plain code elsewhere). The keys
// are transposed once into panels of 16 columns so a block's scores run along the columns; the
// softmax keeps exp(s - max) unnormalized and each output row is scaled by 1/sum at the end;
// the probability-weighted values run along hd. Only the causal columns are computed
// (rounded up to 16), and nothing is zeroed beyond them. Scores, softmax and the 1/sum scale
// round differently from kern_attn_fwd (same accuracy against a double reference).

#define ATTN_R 8 // query rows per block

// Row s[0, valid) → exp(s - max), 0 in [valid, ncol) (s has room up to valid rounded up to
// 8); returns 1 / sum.
static float
attn_softmax_row(float *s, int valid, int ncol)
{
    float m = kmax(s, valid), part[8] = {0};
    int c = 0;
    for (; c < valid; c += 8) // whole lanes of 8: the last one masked
        for (int k = 0; k < 8; k++) {
            float e = kexp(s[c + k] - m);
            e = c + k < valid ? e : 0.0f;
            s[c + k] = e;
            part[k] += e;
        }
    for (; c < ncol; c++)
        s[c] = 0;
    float sum = 0;
    for (int k = 0; k < 8; k++)
        sum += part[k];
    return 1.0f / sum;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast") // a * b + c as one FMA in the loops below
#endif

typedef float kv8 __attribute__((vector_size(32)));
typedef float kv8u __attribute__((vector_size(32), aligned(4))); // unaligned access

static inline kv8
kv8_load(const float *p)
{
    return *(const kv8u *)p;
}

static inline void
kv8_store(float *p, kv8 v)
{
    *(kv8u *)p = v;
}

static int
attn_len16(int len)
{
    return (len + 15) / 16 * 16;
}

size_t
kern_attn_rows_scratch(int len, int hd)
{
    return (size_t)attn_len16(len) * (size_t)(hd + ATTN_R) + (size_t)ATTN_R * hd;
}

// s [ATTN_R, len16] rows of scores for the ATTN_R query rows q (stride ldq), columns
// [0, ncol) (ncol a multiple of 16) against kt [len16 / 16, hd, 16].
static void
attn_scores(float *s, const float *q, int ldq, const float *kt, int len16, int ncol, int hd,
            float scale)
{
    for (int c0 = 0; c0 < ncol; c0 += 16) {
        kv8 acc[ATTN_R][2] = {{{0}}};
        const float *k = kt + (size_t)c0 * hd;
        for (int d = 0; d < hd; d++, k += 16) {
            kv8 k0 = kv8_load(k), k1 = kv8_load(k + 8);
#pragma GCC unroll 8
            for (int r = 0; r < ATTN_R; r++) {
                float qv = q[(size_t)r * ldq + d];
                acc[r][0] += qv * k0;
                acc[r][1] += qv * k1;
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < ATTN_R; r++) {
            kv8_store(s + (size_t)r * len16 + c0, acc[r][0] * scale);
            kv8_store(s + (size_t)r * len16 + c0 + 8, acc[r][1] * scale);
        }
    }
}

// out rows [rows, hd] (stride ldo) = inv[r] * s[r, 0..ncol) v[0..ncol) (v rows of stride ldv).
static void
attn_values(float *out, int ldo, const float *s, int len16, const float *v, int ldv, int ncol,
            int hd, int rows, const float *inv)
{
    int d0 = 0;
    for (; d0 + 16 <= hd; d0 += 16) {
        kv8 acc[ATTN_R][2] = {{{0}}};
        const float *vr = v + d0;
        for (int c = 0; c < ncol; c++, vr += ldv) {
            kv8 v0 = kv8_load(vr), v1 = kv8_load(vr + 8);
#pragma GCC unroll 8
            for (int r = 0; r < ATTN_R; r++) {
                float p = s[(size_t)r * len16 + c];
                acc[r][0] += p * v0;
                acc[r][1] += p * v1;
            }
        }
        for (int r = 0; r < rows; r++) {
            kv8_store(out + (size_t)r * ldo + d0, acc[r][0] * inv[r]);
            kv8_store(out + (size_t)r * ldo + d0 + 8, acc[r][1] * inv[r]);
        }
    }
    for (; d0 < hd; d0++) // hd not a multiple of 16
        for (int r = 0; r < rows; r++) {
            float acc = 0;
            for (int c = 0; c < ncol; c++)
                acc += s[(size_t)r * len16 + c] * v[(size_t)c * ldv + d0];
            out[(size_t)r * ldo + d0] = acc * inv[r];
        }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

void
kern_attn_rows(const struct kern_attn_rows *a, float *scratch)
{
    int len = a->pos0 + a->n, len16 = attn_len16(len), hd = a->hd;
    float *kt = scratch, *s = scratch + (size_t)hd * len16, *q = s + (size_t)ATTN_R * len16;
    // kt [len16 / 16, hd, 16]: the keys transposed in panels of 16 columns, zero past len
    for (int c = 0; c < len; c++) {
        float *panel = kt + (size_t)(c / 16) * 16 * hd + c % 16;
        for (int d = 0; d < hd; d++)
            panel[(size_t)d * 16] = a->k[(size_t)c * a->ldk + d];
    }
    for (int c = len; c < len16; c++)
        for (int d = 0; d < hd; d++)
            kt[(size_t)(c / 16) * 16 * hd + (size_t)d * 16 + c % 16] = 0;
    float scale = 1.0f / sqrtf((float)hd), inv[ATTN_R];
    for (int r0 = 0; r0 < a->n; r0 += ATTN_R) {
        int rows = a->n - r0 < ATTN_R ? a->n - r0 : ATTN_R;
        int last = a->pos0 + r0 + rows; // columns [0, last) are visible to some row
        int ncol = attn_len16(last);
        const float *qb = a->q + (size_t)r0 * a->ldq;
        int ldq = a->ldq;
        if (rows < ATTN_R) { // a short last block: its rows padded with zeros in q [ATTN_R, hd]
            memset(q, 0, sizeof(float) * ATTN_R * (size_t)hd);
            for (int r = 0; r < rows; r++)
                memcpy(q + (size_t)r * hd, qb + (size_t)r * ldq, sizeof(float) * (size_t)hd);
            qb = q, ldq = hd;
        }
        attn_scores(s, qb, ldq, kt, len16, ncol, hd, scale);
        for (int r = 0; r < ATTN_R; r++)
            if (r < rows)
                inv[r] = attn_softmax_row(s + (size_t)r * len16, a->pos0 + r0 + r + 1, last);
            else
                memset(s + (size_t)r * len16, 0, sizeof(float) * (size_t)last);
        attn_values(a->out + (size_t)r0 * a->ldo, a->ldo, s, len16, a->v, a->ldv, last, hd, rows,
                    inv);
    }
}

static void
attn_infer_task(void *ctx, int task, int thread)
{
    struct attn_job *j = ctx;
    const struct kern_attn *a = j->a;
    int b = task / a->nh, h = task % a->nh, t = a->t, hd = a->hd;
    int ld = (a->nh + 2 * a->nkv) * hd, kvh = h / (a->nh / a->nkv);
    const float *base = j->qkv + (size_t)b * t * ld;
    struct kern_attn_rows r = {
        .q = base + h * hd,
        .k = base + (a->nh + kvh) * hd,
        .v = base + (a->nh + a->nkv + kvh) * hd,
        .out = j->out + (size_t)b * t * a->nh * hd + h * hd,
        .ldq = ld, .ldk = ld, .ldv = ld, .ldo = a->nh * hd,
        .n = t, .pos0 = 0, .hd = hd,
    };
    kern_attn_rows(&r, j->scratch + (size_t)thread * kern_attn_rows_scratch(t, hd));
}

void
kern_attn_fwd_infer(struct kpool *p, const struct kern_attn *a, float *out, float *scratch,
                    const float *qkv)
{
    struct attn_job j = {.a = a, .out = out, .scratch = scratch, .qkv = qkv};
    kpool_run(p, a->b * a->nh, attn_infer_task, &j);
}

static void
attn_bwd_task(void *ctx, int task, int thread)
{
    struct attn_job *j = ctx;
    const struct kern_attn *a = j->a;
    int b = task / a->nkv, g = task % a->nkv, t = a->t, hd = a->hd;
    int rep = a->nh / a->nkv, ld = (a->nh + 2 * a->nkv) * hd, ldo = a->nh * hd;
    size_t base = (size_t)b * t * ld;
    const float *k = j->qkv + base + (a->nh + g) * hd;
    const float *v = j->qkv + base + (a->nh + a->nkv + g) * hd;
    float *dk = j->dqkv + base + (a->nh + g) * hd;
    float *dv = j->dqkv + base + (a->nh + a->nkv + g) * hd;
    float *ds = j->scratch + (size_t)thread * t * t;
    float scale = 1.0f / sqrtf((float)hd);
    for (int r = 0; r < rep; r++) {
        int h = g * rep + r;
        const float *q = j->qkv + base + h * hd;
        float *dq = j->dqkv + base + h * hd;
        const float *dout = j->dout + (size_t)b * t * ldo + h * hd;
        const float *att = j->att_in + ((size_t)b * a->nh + h) * t * t;
        float beta = r == 0 ? 0.0f : 1.0f;
        // dv[t,hd] (+)= att^T dout
        kern_gemm1(true, false, t, hd, t, 1.0f, att, t, dout, ldo, beta, dv, ld);
        for (int r0 = 0; r0 < t; r0 += KERN_ROWS) {
            int r1 = r0 + KERN_ROWS < t ? r0 + KERN_ROWS : t;
            float *s = ds + (size_t)r0 * t;
            // dp = dout v^T, then ds = att (dp - rowsum(att dp)) * scale
            kern_gemm1(false, true, r1 - r0, r1, hd, 1.0f, dout + (size_t)r0 * ldo, ldo, v, ld,
                       0.0f, s, t);
            for (int i = r0; i < r1; i++) {
                float *row = ds + (size_t)i * t;
                const float *pa = att + (size_t)i * t;
                float dot = 0;
                for (int c = 0; c <= i; c++)
                    dot += pa[c] * row[c];
                for (int c = 0; c <= i; c++)
                    row[c] = pa[c] * (row[c] - dot) * scale;
                memset(row + i + 1, 0, sizeof(float) * (size_t)(t - i - 1));
            }
            // dq rows [r0,r1) = ds k
            kern_gemm1(false, false, r1 - r0, hd, r1, 1.0f, s, t, k, ld, 0.0f,
                       dq + (size_t)r0 * ld, ld);
        }
        // dk[t,hd] (+)= ds^T q
        kern_gemm1(true, false, t, hd, t, 1.0f, ds, t, q, ld, beta, dk, ld);
    }
}

void
kern_attn_bwd(struct kpool *p, const struct kern_attn *a, float *dqkv, const float *dout,
              const float *att, const float *qkv, float *scratch)
{
    struct attn_job j = {.a = a, .dqkv = dqkv, .scratch = scratch, .qkv = qkv, .dout = dout,
                         .att_in = att};
    kpool_run(p, a->b * a->nkv, attn_bwd_task, &j);
}

// ---- loss --------------------------------------------------------------------------------

struct xent_job {
    float *logits, *loss;
    const float *logits_in;
    const int *targets;
    int n, v;
    float scale;
};

static void
xent_task(void *ctx, int task, int thread)
{
    struct xent_job *j = ctx;
    int r1 = (task + 1) * KERN_ROWS < j->n ? (task + 1) * KERN_ROWS : j->n;
    for (int r = task * KERN_ROWS; r < r1; r++) {
        float *l = j->logits + (size_t)r * j->v;
        int tg = j->targets[r];
        if (tg < 0) {
            j->loss[r] = 0;
            if (j->scale != 0)
                memset(l, 0, sizeof(float) * (size_t)j->v);
            continue;
        }
        float m = l[0], lt = l[tg];
        for (int c = 1; c < j->v; c++)
            m = l[c] > m ? l[c] : m;
        // Partial sums over 8 lanes keep the loop vectorized and the order fixed.
        float part[8] = {0};
        if (j->scale != 0) { // keep exp(l - m) for the gradient
            int c = 0;
            for (; c + 8 <= j->v; c += 8)
                for (int k = 0; k < 8; k++) {
                    l[c + k] = kexp(l[c + k] - m);
                    part[k] += l[c + k];
                }
            for (; c < j->v; c++) {
                l[c] = kexp(l[c] - m);
                part[0] += l[c];
            }
        } else {
            int c = 0;
            for (; c + 8 <= j->v; c += 8)
                for (int k = 0; k < 8; k++)
                    part[k] += kexp(l[c + k] - m);
            for (; c < j->v; c++)
                part[0] += kexp(l[c] - m);
        }
        double sum = 0;
        for (int k = 0; k < 8; k++)
            sum += part[k];
        j->loss[r] = m + (float)log(sum) - lt;
        if (j->scale != 0) {
            float f = (float)(1.0 / sum) * j->scale;
            for (int c = 0; c < j->v; c++)
                l[c] *= f;
            l[tg] -= j->scale;
        }
    }
}

void
kern_xent(struct kpool *p, float *logits, float *loss, const int *targets, int n, int v,
          float grad_scale)
{
    struct xent_job j = {logits, loss, NULL, targets, n, v, grad_scale};
    kpool_run(p, kern_blocks(n), xent_task, &j);
}

static void
logprob_task(void *ctx, int task, int thread)
{
    struct xent_job *j = ctx;
    int r1 = (task + 1) * KERN_ROWS < j->n ? (task + 1) * KERN_ROWS : j->n;
    for (int r = task * KERN_ROWS; r < r1; r++) {
        const float *l = j->logits_in + (size_t)r * j->v;
        int tg = j->targets[r];
        if (tg < 0) {
            j->loss[r] = 0;
            continue;
        }
        float m = kmax(l, j->v);
        float part[8] = {0};
        int c = 0;
        for (; c + 8 <= j->v; c += 8)
            for (int k = 0; k < 8; k++)
                part[k] += kexp(l[c + k] - m);
        for (; c < j->v; c++)
            part[0] += kexp(l[c] - m);
        double sum = 0;
        for (int k = 0; k < 8; k++)
            sum += part[k];
        j->loss[r] = l[tg] - m - (float)log(sum);
    }
}

void
kern_logprobs(struct kpool *p, const float *logits, float *lp, const int *targets, int n, int v)
{
    struct xent_job j = {NULL, lp, logits, targets, n, v, 0};
    kpool_run(p, kern_blocks(n), logprob_task, &j);
}

// ---- reductions ----------------------------------------------------------------------------

#define KERN_CHUNK 65536

struct vec_job {
    float *x;
    const float *cx;
    size_t n;
    float s;
    double *part;
};

static void
sumsq_task(void *ctx, int task, int thread)
{
    struct vec_job *j = ctx;
    size_t i0 = (size_t)task * KERN_CHUNK, i1 = i0 + KERN_CHUNK < j->n ? i0 + KERN_CHUNK : j->n;
    double acc = 0;
    for (size_t i = i0; i < i1; i++)
        acc += (double)j->cx[i] * j->cx[i];
    j->part[task] = acc;
}

double
kern_sumsq(struct kpool *p, const float *x, size_t n)
{
    int chunks = (int)((n + KERN_CHUNK - 1) / KERN_CHUNK);
    struct vec_job j = {.cx = x, .n = n, .part = xcalloc((size_t)chunks + 1, sizeof(double))};
    kpool_run(p, chunks, sumsq_task, &j);
    double s = 0;
    for (int i = 0; i < chunks; i++)
        s += j.part[i];
    free(j.part);
    return s;
}

static void
scale_task(void *ctx, int task, int thread)
{
    struct vec_job *j = ctx;
    size_t i0 = (size_t)task * KERN_CHUNK, i1 = i0 + KERN_CHUNK < j->n ? i0 + KERN_CHUNK : j->n;
    for (size_t i = i0; i < i1; i++)
        j->x[i] *= j->s;
}

void
kern_scale(struct kpool *p, float *x, size_t n, float s)
{
    struct vec_job j = {.x = x, .n = n, .s = s};
    kpool_run(p, (int)((n + KERN_CHUNK - 1) / KERN_CHUNK), scale_task, &j);
}

// SPDX-License-Identifier: MIT
// kernels: the math under the model — a thread pool over fixed work partitions, the OpenBLAS
// sgemm wrapper (the only module that includes cblas.h) and the transformer layers' forward
// and backward passes on flat float32 arrays.
//
// Determinism: every parallel loop is split into tasks by a partition that depends only on
// the problem size (row blocks of matrix products, one (batch, head) per attention task,
// fixed chunks for reductions), never on the thread count, and each task calls OpenBLAS
// single-threaded. Which thread runs a task does not change a single bit of its result, and
// every reduction across tasks sums the per-task partials in task order. So results are
// bit-identical for any thread count.
//
// Layout conventions (row-major): a matrix [M,K] has rows of K floats. Linear weights are
// [out,in] as in Hugging Face, so y = x W^T. Shapes are given in comments as [rows,cols].
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Rows per matrix block of the fixed partition (≥ 7 keeps OpenBLAS on its blocked kernel).
#define KERN_ROWS 64

// ---- thread pool ---------------------------------------------------------------------------

struct kpool;

// A pool of n_threads (the caller counts as one; n_threads - 1 workers are started). Also sets
// OpenBLAS to one thread. n_threads < 1 is taken as 1. kpool_del() joins and frees.
struct kpool *kpool_new(int n_threads);
void kpool_del(struct kpool *p);
int kpool_threads(const struct kpool *p);

// Runs fn(ctx, task, thread) for task in [0, n_tasks), spread over the pool's threads;
// returns when all are done. thread is in [0, kpool_threads) (for per-thread scratch).
typedef void (*kpool_fn)(void *ctx, int task, int thread);
void kpool_run(struct kpool *p, int n_tasks, kpool_fn fn, void *ctx);

// "OpenBLAS 0.3.21 core SkylakeX" style description for the start-up line.
const char *kern_blas_desc(void);
// OpenBLAS's version and build configuration (openblas_get_config: "OpenBLAS 0.3.21
// DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"), for provenance records.
const char *kern_blas_version(void);

// ---- small dense linear algebra (LAPACK in OpenBLAS, double precision) ---------------------

// Cholesky factorization in place: a[n,n] (row-major, symmetric positive definite; only the
// lower triangle is read) becomes L with A = L L^T in its lower triangle (the strict upper
// triangle is left as it was). Returns 0, or -1 when A is not positive definite.
int kern_cholesky(double *a, int n);
// Solves A X = B given L from kern_cholesky: b[n,nrhs] (row-major) is overwritten by X.
void kern_cholesky_solve(const double *l, int n, double *b, int nrhs);

// ---- matrix products -----------------------------------------------------------------------

// C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, split into fixed blocks of rows of C
// (about M/4 rounded up to a multiple of KERN_ROWS, at least KERN_ROWS, at most 512:
// a function of M alone). ta: A is stored [K,M] (lda ≥ M) instead of [M,K]; tb likewise for B ([N,K]).
void kern_gemm(struct kpool *p, bool ta, bool tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
// The same on the calling thread only (no partition), for use inside a task.
void kern_gemm1(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

// y[n,out] = x[n,in] W^T (+ y when accumulate); W is [out,in].
void kern_linear_fwd(struct kpool *p, float *y, const float *x, const float *w, int n, int in,
                     int out, bool accumulate);
// dx[n,in] = dy[n,out] W (+ dx when accumulate).
void kern_linear_bwd_x(struct kpool *p, float *dx, const float *dy, const float *w, int n,
                       int in, int out, bool accumulate);
// dw[out,in] += dy[n,out]^T x[n,in].
void kern_linear_bwd_w(struct kpool *p, float *dw, const float *dy, const float *x, int n, int in,
                       int out);

// ---- elementwise layers ---------------------------------------------------------------------

// RMSNorm: y = x / sqrt(mean(x^2) + eps) * w. x,y [n,d]; rstd[n] saved for backward.
void kern_rmsnorm_fwd(struct kpool *p, float *y, float *rstd, const float *x, const float *w,
                      int n, int d, float eps);
// The same for forward-only passes: the sum of squares in another order (vectorized), so the
// values differ from kern_rmsnorm_fwd's by float rounding.
void kern_rmsnorm_fwd_infer(struct kpool *p, float *y, float *rstd, const float *x,
                            const float *w, int n, int d, float eps);
// dx[n,d] += grad through the norm; dw[d] += sum over rows of dy * x * rstd.
void kern_rmsnorm_bwd(struct kpool *p, float *dx, float *dw, const float *dy, const float *x,
                      const float *w, const float *rstd, int n, int d);

// Rotary tables for positions [0,max_pos) and head dim hd: cos,sin [max_pos, hd/2], with
// inv_freq[i] = theta^(-2i/hd) as in Hugging Face (computed in float like torch).
void kern_rope_table(float *cos_t, float *sin_t, int max_pos, int hd, float theta);
// Rotates, in place, heads n_heads of width hd starting at column col0 of each row of x
// (row stride ld), row r being at position pos[r] (pos NULL: position = r % t).
// HF rotate-half: pairs (i, i + hd/2). inverse rotates back (the backward pass).
void kern_rope(struct kpool *p, float *x, int n, int ld, int col0, int n_heads, int hd, int t,
               const int *pos, const float *cos_t, const float *sin_t, bool inverse);

// SwiGLU: h[n,f] = silu(gu[:, :f]) * gu[:, f:2f] (gu is [n,2f], gate then up).
void kern_swiglu_fwd(struct kpool *p, float *h, const float *gu, int n, int f);
// dgu[n,2f] = gradient for gate and up from dh[n,f].
void kern_swiglu_bwd(struct kpool *p, float *dgu, const float *dh, const float *gu, int n, int f);

// ---- attention -----------------------------------------------------------------------------

// Shapes for causal grouped-query attention over b sequences of t positions.
// qkv [b*t, (nh + 2*nkv)*hd]: q heads, then k heads, then v heads (q, k already rotated);
// query head h reads kv head h / (nh / nkv).
struct kern_attn {
    int b, t, nh, nkv, hd;
};

// att[b,nh,t,t] = softmax(q k^T / sqrt(hd)) (causal; the upper triangle is 0);
// out[b*t, nh*hd] = att v.
void kern_attn_fwd(struct kpool *p, const struct kern_attn *a, float *out, float *att,
                   const float *qkv);
// Forward only, without the probabilities: out[b*t, nh*hd] as kern_attn_fwd computes it (to
// float rounding: another summation order). scratch: kpool_threads * kern_attn_rows_scratch(t,
// hd) floats.
void kern_attn_fwd_infer(struct kpool *p, const struct kern_attn *a, float *out, float *scratch,
                         const float *qkv);

// One head of causal attention on the calling thread: query rows at positions pos0 ..
// pos0+n-1 (q [n, hd], stride ldq) against keys and values at positions 0 .. pos0+n-1 (k, v
// [pos0+n, hd], strides ldk, ldv); out [n, hd] (stride ldo). The forward-only attention of
// kern_attn_fwd_infer and of the KV cache.
struct kern_attn_rows {
    const float *q, *k, *v;
    float *out;
    int ldq, ldk, ldv, ldo, n, pos0, hd;
};
void kern_attn_rows(const struct kern_attn_rows *a, float *scratch);
// Floats of scratch kern_attn_rows needs for pos0 + n = len.
size_t kern_attn_rows_scratch(int len, int hd);

// dqkv [b*t, (nh+2nkv)*hd] = gradients for q, k, v from dout [b*t, nh*hd].
// scratch: kpool_threads * t * t floats.
void kern_attn_bwd(struct kpool *p, const struct kern_attn *a, float *dqkv, const float *dout,
                   const float *att, const float *qkv, float *scratch);

// ---- loss ----------------------------------------------------------------------------------

// Cross-entropy on logits [n,v] with targets[n] (< 0 = not scored). Per row: loss[r] =
// logsumexp - logit[target] (0 when not scored). When grad_scale != 0, logits is overwritten
// with the gradient (softmax - onehot) * grad_scale (rows not scored get 0).
void kern_xent(struct kpool *p, float *logits, float *loss, const int *targets, int n, int v,
               float grad_scale);
// log_softmax(logits[r])[targets[r]] into lp[r] (targets < 0 give 0); logits unchanged.
void kern_logprobs(struct kpool *p, const float *logits, float *lp, const int *targets, int n,
                   int v);

// ---- reductions ----------------------------------------------------------------------------

// Sum of squares of x[0,n) in double, deterministic (fixed chunks summed in order).
double kern_sumsq(struct kpool *p, const float *x, size_t n);
// x *= s.
void kern_scale(struct kpool *p, float *x, size_t n, float s);

#endif

// SPDX-License-Identifier: MIT
// dist: data-parallel processes over MPI (Open MPI) — the only module that includes mpi.h.
//
// A program started by mpirun runs as one of R ranks; started any other way (or built
// without MPI) it is the single rank 0 of 1 and nothing here touches MPI, so a stage behaves
// exactly as without this module. MPI is only initialized when the launcher's environment
// says so (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK).
//
// The one reduction, dist_tree_sum, is deterministic and independent of R: the sum of L leaf
// vectors is always the same fixed pairwise tree over the leaf index (node [lo, lo+n) =
// [lo, lo+n/2) + [lo+n/2, lo+n), elementwise float adds), whichever rank computes which leaf.
// Each rank computes the leaves of its contiguous block and the largest tree nodes inside it;
// the node sums are exchanged per slice of the vector (rank j assembles slice j of the tree:
// a deterministic reduce-scatter) and the slices are gathered by everyone (allgather, no
// arithmetic). Bytes sent per rank per call, with one node per rank (R a power of two dividing
// L): 2 (R-1)/R × n × 4 — the volume of a ring all-reduce. MPI_Allreduce is never used: its
// summation order depends on the implementation and the arrival of messages.
//
// Thread use: call from the main thread only (MPI_THREAD_FUNNELED).
#ifndef KILN_DIST_H
#define KILN_DIST_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Joins the MPI job when launched by mpirun (MPI_Init_thread; argc/argv may be NULL).
// Built without MPI but launched as one of several ranks is an error. 0 or -1 with err.
int dist_init(int *argc, char ***argv, struct kerr *err);
// Leaves the job (MPI_Finalize) after a successful run; nothing when MPI is not in use.
void dist_finalize(void);
// Ends every rank of the job with code (MPI_Abort); exit(code) without MPI.
_Noreturn void dist_abort(int code);

bool dist_active(void);    // running under MPI (also with one rank)
int dist_rank(void);       // 0..size-1
int dist_size(void);       // ranks in the job, 1 without MPI
int dist_local_size(void); // ranks on this machine, 1 without MPI
// "Open MPI v4.1.4" style library description, or "none".
const char *dist_desc(void);
// Bytes this rank has sent to other ranks so far.
uint64_t dist_bytes_sent(void);

// Waits for every rank. 0 or -1 with err.
int dist_barrier(struct kerr *err);
// Copies n bytes at p from rank root to every rank. 0 or -1 with err.
int dist_bcast(void *p, size_t n, int root, struct kerr *err);
// Leaves [*lo, *hi) of n_leaves this rank computes: rank r gets [r L / R, (r+1) L / R).
void dist_leaf_range(int n_leaves, int *lo, int *hi);

// Computes leaf i into v[0,n) (all of it: v holds garbage on entry) and returns a number
// (e.g. its loss) that dist_tree_sum hands to every rank.
typedef double (*dist_leaf_fn)(void *ctx, int leaf, float *v);
// out[0,n) = the fixed-tree sum of the n_leaves leaf vectors, on every rank; leaf(ctx, i, .)
// is called only on the rank owning leaf i, in increasing i. ret[n_leaves] (may be NULL) gets
// every leaf's return value on every rank. n ≤ INT_MAX. 0 or -1 with err.
int dist_tree_sum(int n_leaves, dist_leaf_fn leaf, void *ctx, float *out, size_t n,
                  double *ret, struct kerr *err);

#endif

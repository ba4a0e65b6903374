// SPDX-License-Identifier: MIT
// dist: data-parallel processes over MPI and the deterministic tree sum (see dist.h). Built
// without KILN_HAVE_MPI (no Open MPI found by the Makefile) only the one-rank path exists.
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KILN_HAVE_MPI
#include <mpi.h>
#endif

static struct {
    bool active;
    int rank, size, local_size;
    uint64_t sent;
    char desc[96];
    float **tmp; // per-depth scratch vectors of tmp_n floats (local sums, received slices)
    int n_tmp;
    size_t tmp_n;
} g = {.size = 1, .local_size = 1};

bool
dist_active(void)
{
    return g.active;
}

int
dist_rank(void)
{
    return g.rank;
}

int
dist_size(void)
{
    return g.size;
}

int
dist_local_size(void)
{
    return g.local_size;
}

uint64_t
dist_bytes_sent(void)
{
    return g.sent;
}

const char *
dist_desc(void)
{
    return g.active ? g.desc : "none";
}

// Launched as a rank of an MPI job: the launchers' environment variables.
static bool
launched_by_mpirun(int *size)
{
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s)
        s = getenv("PMI_SIZE");
    *size = s ? atoi(s) : 1;
    return s || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

#ifdef KILN_HAVE_MPI
static int
mpi_fail(int rc, const char *what, struct kerr *err)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", rc);
    return kerr_set(err, "MPI %s: %s", what, msg);
}
#define MPI_TRY(call, what)                                                                        \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != MPI_SUCCESS)                                                                    \
            return mpi_fail(rc_, what, err);                                                       \
    } while (0)
#endif

int
dist_init(int *argc, char ***argv, struct kerr *err)
{
    int size;
    if (!launched_by_mpirun(&size))
        return 0;
#ifdef KILN_HAVE_MPI
    int provided;
    MPI_TRY(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "init");
    g.active = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &g.rank), "rank");
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &g.size), "size");
    MPI_Comm local;
    MPI_TRY(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL,
                                &local),
            "split by node");
    MPI_TRY(MPI_Comm_size(local, &g.local_size), "local size");
    MPI_Comm_free(&local);
    char ver[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(ver, &len);
    ver[strcspn(ver, ",\n")] = 0; // "Open MPI v4.1.4, package: ..." → "Open MPI v4.1.4"
    size_t n = strlen(ver) < sizeof g.desc - 1 ? strlen(ver) : sizeof g.desc - 1;
    memcpy(g.desc, ver, n);
    g.desc[n] = 0;
    return 0;
#else
    (void)argc, (void)argv;
    if (size > 1)
        return kerr_set(err, "launched as one of %d MPI ranks, but built without MPI "
                             "(install libopenmpi-dev and rebuild)",
                        size);
    return 0;
#endif
}

static void
tmp_free(void)
{
    for (int i = 0; i < g.n_tmp; i++)
        free(g.tmp[i]);
    free(g.tmp);
    g.tmp = NULL;
    g.n_tmp = 0;
    g.tmp_n = 0;
}

void
dist_finalize(void)
{
    tmp_free();
#ifdef KILN_HAVE_MPI
    if (g.active)
        MPI_Finalize();
#endif
    g.active = false;
}

_Noreturn void
dist_abort(int code)
{
#ifdef KILN_HAVE_MPI
    if (g.active)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

int
dist_barrier(struct kerr *err)
{
#ifdef KILN_HAVE_MPI
    if (g.active)
        MPI_TRY(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#endif
    (void)err;
    return 0;
}

int
dist_bcast(void *p, size_t n, int root, struct kerr *err)
{
#ifdef KILN_HAVE_MPI
    if (g.active && g.size > 1)
        for (size_t off = 0; off < n;) {
            int k = n - off > (size_t)INT_MAX ? INT_MAX : (int)(n - off);
            MPI_TRY(MPI_Bcast((char *)p + off, k, MPI_BYTE, root, MPI_COMM_WORLD), "bcast");
            if (g.rank == root)
                g.sent += (uint64_t)k * (uint64_t)(g.size - 1);
            off += (size_t)k;
        }
#endif
    (void)p, (void)n, (void)root, (void)err;
    return 0;
}

static int
block_lo(int r, int n_leaves)
{
    return (int)((int64_t)r * n_leaves / g.size);
}

void
dist_leaf_range(int n_leaves, int *lo, int *hi)
{
    *lo = block_lo(g.rank, n_leaves);
    *hi = block_lo(g.rank + 1, n_leaves);
}

// Scratch vector for recursion depth d (n floats).
static float *
tmp_get(int d, size_t n)
{
    if (n > g.tmp_n)
        tmp_free();
    g.tmp_n = n > g.tmp_n ? n : g.tmp_n;
    if (d >= g.n_tmp) {
        g.tmp = xrealloc(g.tmp, (size_t)(d + 1) * sizeof *g.tmp);
        for (int i = g.n_tmp; i <= d; i++)
            g.tmp[i] = xmalloc(g.tmp_n * sizeof(float));
        g.n_tmp = d + 1;
    }
    return g.tmp[d];
}

struct tree {
    int n_leaves;
    dist_leaf_fn leaf;
    void *ctx;
    double *ret;
};

// The fixed tree computed locally: dst[n] = sum of leaves [lo, lo+cnt).
static void
tree_local(const struct tree *t, int lo, int cnt, float *dst, size_t n, int depth)
{
    if (cnt == 1) {
        double r = t->leaf(t->ctx, lo, dst);
        if (t->ret)
            t->ret[lo] = r;
        return;
    }
    int h = cnt / 2;
    tree_local(t, lo, h, dst, n, depth + 1);
    float *right = tmp_get(depth, n);
    tree_local(t, lo + h, cnt - h, right, n, depth + 1);
    for (size_t i = 0; i < n; i++)
        dst[i] += right[i];
}

#ifdef KILN_HAVE_MPI
// The rank whose block holds all of [lo, lo+cnt), or -1 when it spans several.
static int
tree_owner(int lo, int cnt, int n_leaves)
{
    for (int r = 0; r < g.size; r++)
        if (block_lo(r, n_leaves) <= lo && lo + cnt <= block_lo(r + 1, n_leaves))
            return r;
    return -1;
}

struct node {
    int lo, cnt;
    float *v;
};

// This rank's maximal tree nodes (inside its block, parent not), in increasing lo.
static void
tree_mine(int lo, int cnt, int n_leaves, int blo, int bhi, struct node *out, int *n_out)
{
    if (lo + cnt <= blo || lo >= bhi)
        return;
    if (tree_owner(lo, cnt, n_leaves) == g.rank) {
        out[(*n_out)++] = (struct node){lo, cnt, NULL};
        return;
    }
    int h = cnt / 2;
    tree_mine(lo, h, n_leaves, blo, bhi, out, n_out);
    tree_mine(lo + h, cnt - h, n_leaves, blo, bhi, out, n_out);
}

// Slice [s0, s0+len) of the tree sum of [lo, lo+cnt) into dst: own nodes copied, other
// ranks' maximal nodes received (each rank sends them in increasing lo, the order walked here).
static int
tree_assemble(int lo, int cnt, int n_leaves, const struct node *mine, int *k, size_t s0,
              size_t len, float *dst, int depth, struct kerr *err)
{
    int q = tree_owner(lo, cnt, n_leaves);
    if (q == g.rank) {
        memcpy(dst, mine[(*k)++].v + s0, len * sizeof(float));
        return 0;
    }
    if (q >= 0) {
        MPI_TRY(MPI_Recv(dst, (int)len, MPI_FLOAT, q, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                "receive");
        return 0;
    }
    int h = cnt / 2;
    if (tree_assemble(lo, h, n_leaves, mine, k, s0, len, dst, depth + 1, err) < 0)
        return -1;
    float *right = tmp_get(depth, len);
    if (tree_assemble(lo + h, cnt - h, n_leaves, mine, k, s0, len, right, depth + 1, err) < 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        dst[i] += right[i];
    return 0;
}

static size_t
slice_lo(int r, size_t n)
{
    return (size_t)((uint64_t)r * n / (uint64_t)g.size);
}

static int
tree_sum_mpi(const struct tree *t, float *out, size_t n, struct kerr *err)
{
    int L = t->n_leaves, R = g.size, blo, bhi;
    dist_leaf_range(L, &blo, &bhi);
    struct node *mine = xcalloc((size_t)2 * 64 + 2, sizeof *mine);
    int n_mine = 0;
    tree_mine(0, L, L, blo, bhi, mine, &n_mine);
    for (int k = 0; k < n_mine; k++) {
        mine[k].v = xmalloc(n * sizeof(float));
        tree_local(t, mine[k].lo, mine[k].cnt, mine[k].v, n, 0);
    }
    MPI_Request *req = xmalloc((size_t)(n_mine * R + 1) * sizeof *req);
    int n_req = 0, rc = 0;
    for (int k = 0; k < n_mine && rc == 0; k++)
        for (int j = 0; j < R && rc == 0; j++) {
            size_t s0 = slice_lo(j, n), len = slice_lo(j + 1, n) - s0;
            if (j == g.rank || len == 0)
                continue;
            int e = MPI_Isend(mine[k].v + s0, (int)len, MPI_FLOAT, j, 0, MPI_COMM_WORLD,
                              &req[n_req]);
            if (e != MPI_SUCCESS)
                rc = mpi_fail(e, "send", err);
            else
                n_req++, g.sent += len * sizeof(float);
        }
    size_t s0 = slice_lo(g.rank, n), len = slice_lo(g.rank + 1, n) - s0;
    int k = 0;
    if (rc == 0 && len > 0)
        rc = tree_assemble(0, L, L, mine, &k, s0, len, out + s0, 0, err);
    int *counts = xmalloc(2 * (size_t)R * sizeof *counts), *displs = counts + R;
    if (rc == 0) {
        for (int j = 0; j < R; j++)
            displs[j] = (int)slice_lo(j, n), counts[j] = (int)(slice_lo(j + 1, n) - slice_lo(j, n));
        int e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, out, counts, displs, MPI_FLOAT,
                               MPI_COMM_WORLD);
        if (e != MPI_SUCCESS)
            rc = mpi_fail(e, "allgather", err);
        g.sent += len * sizeof(float) * (uint64_t)(R - 1);
    }
    if (rc == 0 && t->ret) {
        for (int j = 0; j < R; j++)
            displs[j] = block_lo(j, L), counts[j] = block_lo(j + 1, L) - block_lo(j, L);
        int e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DOUBLE, t->ret, counts, displs, MPI_DOUBLE,
                               MPI_COMM_WORLD);
        if (e != MPI_SUCCESS)
            rc = mpi_fail(e, "allgather", err);
        g.sent += (uint64_t)(bhi - blo) * sizeof(double) * (uint64_t)(R - 1);
    }
    int e = MPI_Waitall(n_req, req, MPI_STATUSES_IGNORE);
    if (rc == 0 && e != MPI_SUCCESS)
        rc = mpi_fail(e, "send", err);
    for (int i = 0; i < n_mine; i++)
        free(mine[i].v);
    free(mine);
    free(req);
    free(counts);
    return rc;
}
#endif

int
dist_tree_sum(int n_leaves, dist_leaf_fn leaf, void *ctx, float *out, size_t n, double *ret,
              struct kerr *err)
{
    if (n_leaves < 1)
        return kerr_set(err, "tree sum over %d leaves", n_leaves);
    if (n > (size_t)INT_MAX)
        return kerr_set(err, "tree sum over %zu floats (at most %d)", n, INT_MAX);
    struct tree t = {n_leaves, leaf, ctx, ret};
#ifdef KILN_HAVE_MPI
    if (g.size > 1)
        return tree_sum_mpi(&t, out, n, err);
#endif
    tree_local(&t, 0, n_leaves, out, n, 0);
    return 0;
}

// SPDX-License-Identifier: MIT
// dist: data-parallel processes over MPI and the deterministic tree sum (see dist.h). Built
// without KILN_HAVE_MPI (no Open MPI found by the Makefile) only the one-rank path exists.
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    // Per-node vectors of the MPI tree sum, kept from call to call: a training step sums a
    // gradient of the same size every time, and fresh memory each step costs a page fault
    // per 4 KiB (measured: ~12% of a rank's CPU time on this machine's VM).
    float **node;
    size_t *node_cap;
    int n_node;
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
    for (int i = 0; i < g.n_node; i++)
        free(g.node[i]);
    free(g.node);
    free(g.node_cap);
    g.node = NULL;
    g.node_cap = NULL;
    g.n_node = 0;
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

// A maximal node: inside one rank's block, its parent not. v: the whole sum (own nodes) or
// this rank's slice of it (received).
struct node {
    int lo, cnt, owner;
    float *v;
};

struct nodes {
    struct node *p;
    int n, cap;
};

// Every maximal node of the tree, in tree (increasing lo) order.
static void
tree_nodes(int lo, int cnt, int n_leaves, struct nodes *out)
{
    int q = tree_owner(lo, cnt, n_leaves);
    if (q >= 0) {
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 16;
            out->p = xrealloc(out->p, (size_t)out->cap * sizeof *out->p);
        }
        out->p[out->n++] = (struct node){lo, cnt, q, NULL};
        return;
    }
    tree_nodes(lo, cnt / 2, n_leaves, out);
    tree_nodes(lo + cnt / 2, cnt - cnt / 2, n_leaves, out);
}

// Slice [s0, s0+len) of the tree sum of [lo, lo+cnt) into dst, node k of nd next.
static void
tree_assemble(int lo, int cnt, int n_leaves, const struct nodes *nd, int *k, size_t s0,
              size_t len, float *dst, int depth)
{
    if (tree_owner(lo, cnt, n_leaves) >= 0) {
        const struct node *x = &nd->p[(*k)++];
        memcpy(dst, x->owner == g.rank ? x->v + s0 : x->v, len * sizeof(float));
        return;
    }
    int h = cnt / 2;
    tree_assemble(lo, h, n_leaves, nd, k, s0, len, dst, depth + 1);
    float *right = tmp_get(depth, len);
    tree_assemble(lo + h, cnt - h, n_leaves, nd, k, s0, len, right, depth + 1);
    for (size_t i = 0; i < len; i++)
        dst[i] += right[i];
}

// Waits for the requests, sleeping between polls: Open MPI's blocking calls spin, which on a
// machine with more processes than cores takes CPU from the ranks still computing. The sleep
// doubles from 10 µs to at most 160 µs: without a single-copy mechanism a large message moves
// through shared memory in fragments, each needing both sides to poll, so a longer sleep
// multiplies (measured: 1.85 M floats between 2 ranks took 3-4× longer in wall time with a
// 1 ms cap, for the same CPU time).
static int
wait_all(int n, MPI_Request *req, struct kerr *err)
{
    long ns = 10000;
    for (;;) {
        int done = 0;
        MPI_TRY(MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE), "transfer");
        if (done)
            return 0;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        ns = ns < 100000 ? 2 * ns : ns;
    }
}

static size_t
slice_lo(int r, size_t n)
{
    return (size_t)((uint64_t)r * n / (uint64_t)g.size);
}

// Posts a send or receive of count items; on failure fills err and returns -1.
static int
post(bool send, void *p, size_t count, MPI_Datatype type, size_t size, int peer,
     MPI_Request *req, int *n_req, struct kerr *err)
{
    if (count == 0)
        return 0;
    int e = send ? MPI_Isend(p, (int)count, type, peer, 0, MPI_COMM_WORLD, &req[*n_req])
                 : MPI_Irecv(p, (int)count, type, peer, 0, MPI_COMM_WORLD, &req[*n_req]);
    if (e != MPI_SUCCESS)
        return mpi_fail(e, send ? "send" : "receive", err);
    (*n_req)++;
    if (send)
        g.sent += count * size;
    return 0;
}

// The kept vector of node k, at least n floats.
static float *
node_get(int k, size_t n)
{
    if (k >= g.n_node) {
        g.node = xrealloc(g.node, (size_t)(k + 1) * sizeof *g.node);
        g.node_cap = xrealloc(g.node_cap, (size_t)(k + 1) * sizeof *g.node_cap);
        for (int i = g.n_node; i <= k; i++) {
            g.node[i] = NULL;
            g.node_cap[i] = 0;
        }
        g.n_node = k + 1;
    }
    if (n > g.node_cap[k]) {
        free(g.node[k]);
        g.node[k] = xmalloc(n * sizeof(float));
        g.node_cap[k] = n;
    }
    return g.node[k];
}

static int
tree_sum_mpi(const struct tree *t, float *out, size_t n, struct kerr *err)
{
    int L = t->n_leaves, R = g.size, me = g.rank;
    struct nodes nd = {0};
    tree_nodes(0, L, L, &nd);
    size_t s0 = slice_lo(me, n), len = slice_lo(me + 1, n) - s0;
    for (int k = 0; k < nd.n; k++) {
        struct node *x = &nd.p[k];
        x->v = node_get(k, x->owner == me ? n : len ? len : 1);
        if (x->owner == me)
            tree_local(t, x->lo, x->cnt, x->v, n, 0);
    }
    // Reduce-scatter: slice j of every node goes to rank j, which sums its slice in tree order.
    MPI_Request *req = xmalloc((size_t)(nd.n * R + 4 * R) * sizeof *req);
    int n_req = 0, rc = 0;
    for (int k = 0; k < nd.n && rc == 0; k++) {
        struct node *x = &nd.p[k];
        if (x->owner != me)
            rc = post(false, x->v, len, MPI_FLOAT, sizeof(float), x->owner, req, &n_req, err);
        else
            for (int j = 0; j < R && rc == 0; j++)
                if (j != me)
                    rc = post(true, x->v + slice_lo(j, n), slice_lo(j + 1, n) - slice_lo(j, n),
                              MPI_FLOAT, sizeof(float), j, req, &n_req, err);
    }
    if (rc == 0)
        rc = wait_all(n_req, req, err);
    if (rc == 0 && len > 0) {
        int k = 0;
        tree_assemble(0, L, L, &nd, &k, s0, len, out + s0, 0);
    }
    // Allgather of the slices (and of the leaves' return values): copies, no arithmetic.
    n_req = 0;
    for (int j = 0; j < R && rc == 0; j++) {
        if (j == me)
            continue;
        size_t j0 = slice_lo(j, n), jn = slice_lo(j + 1, n) - j0;
        int b0 = block_lo(j, L), bn = block_lo(j + 1, L) - b0;
        int m0 = block_lo(me, L), mn = block_lo(me + 1, L) - m0;
        if ((rc = post(true, out + s0, len, MPI_FLOAT, sizeof(float), j, req, &n_req, err)) ||
            (rc = post(false, out + j0, jn, MPI_FLOAT, sizeof(float), j, req, &n_req, err)))
            break;
        if (t->ret &&
            ((rc = post(true, t->ret + m0, (size_t)mn, MPI_DOUBLE, sizeof(double), j, req,
                        &n_req, err)) ||
             (rc = post(false, t->ret + b0, (size_t)bn, MPI_DOUBLE, sizeof(double), j, req,
                        &n_req, err))))
            break;
    }
    if (rc == 0)
        rc = wait_all(n_req, req, err);
    free(nd.p);
    free(req);
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

// SPDX-License-Identifier: MIT
// rec: record streams (JSON Lines, zstd or plain, gzip/xz/bzip2 in). See rec.h.
//
// Both directions hand buffers to a worker thread through a ring of REC_NSLOT buffers. The
// reader's worker reads and decompresses compressed input into the ring while the caller
// frames lines out of it (plain input is read by the caller directly: a thread would only add
// hand-overs); the writer's worker compresses and writes what the caller puts in. A worker
// blocked on a pipe or terminal waits in poll() on its descriptor and an eventfd, so closing
// a reader (or aborting a writer) early never hangs on a stalled peer.
//
// Invariants: a slot in [cons, prod) is full and belongs to the consumer; the consumer also
// owns slot `cons` between ring_take() and ring_release(); the producer owns slot `prod`
// between ring_acquire() and ring_publish(). Nothing else touches a slot.

#include "rec.h"
#include "cli.h"

#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#define REC_NSLOT 4
#define REC_CHUNK_DEFAULT ((size_t)1 << 20)
#define REC_MAX_LINE_DEFAULT ((size_t)1 << 30)
#define REC_INBUF ((size_t)1 << 18) // compressed input read size
#define REC_ZSTD_WORKERS_MAX 4
#define REC_LINE_KEEP ((size_t)16 << 20) // a line buffer larger than this is freed after use

// ---- the ring of buffers between two threads ----------------------------------------------

struct slot {
    char *p;
    size_t len, cap;
};

struct ring {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot s[REC_NSLOT];
    uint64_t prod, cons; // slots published, slots released
    bool done;           // the producer has published its last slot
    bool stop;           // the owner asks the worker to stop now
    bool failed;         // the worker failed; msg says why
    char msg[sizeof(struct kerr)];
    int wakefd; // eventfd written by ring_stop() to wake a worker in poll()
};

static int
ring_init(struct ring *g, size_t cap, struct kerr *err)
{
    memset(g, 0, sizeof *g);
    g->wakefd = eventfd(0, EFD_CLOEXEC);
    if (g->wakefd < 0)
        return kerr_set(err, "eventfd: %s", strerror(errno));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    for (int i = 0; i < REC_NSLOT; i++) {
        g->s[i].p = xmalloc(cap);
        g->s[i].cap = cap;
    }
    return 0;
}

static void
ring_free(struct ring *g)
{
    for (int i = 0; i < REC_NSLOT; i++)
        free(g->s[i].p);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    close(g->wakefd);
}

// Producer: an empty slot to fill, or NULL when told to stop (or the consumer failed).
static struct slot *
ring_acquire(struct ring *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->prod - g->cons >= REC_NSLOT && !g->stop && !g->failed)
        pthread_cond_wait(&g->cv, &g->mu);
    struct slot *s = g->stop || g->failed ? NULL : &g->s[g->prod % REC_NSLOT];
    pthread_mutex_unlock(&g->mu);
    if (s)
        s->len = 0;
    return s;
}

static void
ring_publish(struct ring *g)
{
    pthread_mutex_lock(&g->mu);
    g->prod++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

// Producer: no more slots.
static void
ring_finish(struct ring *g)
{
    pthread_mutex_lock(&g->mu);
    g->done = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

// The worker failed (the first message is kept). For the reader's worker this comes just
// before ring_finish(); for the writer's, the caller's next ring_acquire() returns NULL.
static void ring_fail(struct ring *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
ring_fail(struct ring *g, const char *fmt, ...)
{
    pthread_mutex_lock(&g->mu);
    if (!g->failed) {
        g->failed = true;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->msg, sizeof g->msg, fmt, ap);
        va_end(ap);
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

// Consumer: the next full slot, or NULL at the end (done, or told to stop).
static struct slot *
ring_take(struct ring *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->prod == g->cons && !g->done && !g->stop)
        pthread_cond_wait(&g->cv, &g->mu);
    struct slot *s = g->stop || g->prod == g->cons ? NULL : &g->s[g->cons % REC_NSLOT];
    pthread_mutex_unlock(&g->mu);
    return s;
}

static void
ring_release(struct ring *g)
{
    pthread_mutex_lock(&g->mu);
    g->cons++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void
ring_stop(struct ring *g)
{
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    uint64_t one = 1;
    ssize_t n = write(g->wakefd, &one, sizeof one);
    (void)n; // the counter cannot overflow with one write
}

static bool
ring_stopped(struct ring *g)
{
    pthread_mutex_lock(&g->mu);
    bool s = g->stop;
    pthread_mutex_unlock(&g->mu);
    return s;
}

// Waits until fd is ready for events (POLLIN or POLLOUT) or the ring is stopped: 0 ready,
// -1 stopped. Regular files are always ready and are not polled.
static int
ring_wait_fd(struct ring *g, int fd, short events)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = g->wakefd, .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[1].revents)
            return -1;
        if (p[0].revents)
            return 0;
    }
}

// Starts a worker with the termination signals and SIGPIPE blocked: signals go to the main
// thread (cli's handlers), and a write to a closed pipe fails with EPIPE instead of killing.
static int
thread_start(pthread_t *t, void *(*fn)(void *), void *arg, struct kerr *err)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return kerr_set(err, "cannot start a thread: %s", strerror(rc));
    return 0;
}

// ---- reader -------------------------------------------------------------------------------

enum rec_kind { KIND_PLAIN, KIND_ZSTD, KIND_GZIP, KIND_XZ, KIND_BZIP2 };

static const char *const kind_names[] = {"plain", "zstd", "gzip", "xz", "bzip2"};

struct rec_reader {
    char *name;
    int fd;
    bool own_fd, regular;
    enum rec_kind kind;
    uint64_t size;
    // Bytes read at open to detect the format; the worker hands them out first.
    unsigned char peek[8];
    size_t npeek, peek_pos;
    _Atomic uint64_t bytes_read; // from the descriptor, including the peeked bytes

    // Compressed input is read and decompressed by a worker into the ring; plain input is
    // read by the caller into `plain` (a thread would only add hand-overs).
    struct ring ring;
    struct slot plain;
    size_t chunk;
    bool started, threaded;
    bool plain_failed; // plain: src_read failed, wmsg says why
    pthread_t thread;
    char *inbuf;    // worker: compressed input
    char wmsg[400]; // why a read failed

    // Consumer side.
    struct slot *cur; // slot being framed, or NULL
    size_t pos;       // next unread byte in cur
    struct buf line;  // a line that spans slots
    uint64_t lineno;  // lines returned so far
    uint64_t offset;  // decompressed offset of the next line
    size_t max_line;
    int state; // 0 reading, 1 at end, -1 failed (msg in saved)
    struct kerr saved;
};

// Reads up to n bytes of the raw input (peeked bytes first): bytes read, 0 at end of input,
// -1 on an error (r->wmsg) or when stopped.
static ssize_t
src_read(struct rec_reader *r, void *dst, size_t n)
{
    if (r->peek_pos < r->npeek) {
        size_t k = r->npeek - r->peek_pos;
        if (k > n)
            k = n;
        memcpy(dst, r->peek + r->peek_pos, k);
        r->peek_pos += k;
        return (ssize_t)k;
    }
    for (;;) {
        if (r->threaded && !r->regular && ring_wait_fd(&r->ring, r->fd, POLLIN) < 0) {
            snprintf(r->wmsg, sizeof r->wmsg, "reading stopped");
            return -1;
        }
        ssize_t k = read(r->fd, dst, n);
        if (k >= 0) {
            atomic_fetch_add(&r->bytes_read, (uint64_t)k);
            return k;
        }
        if (errno == EINTR || errno == EAGAIN)
            continue;
        snprintf(r->wmsg, sizeof r->wmsg, "read failed: %s", strerror(errno));
        return -1;
    }
}

// True when reading now would wait (a pipe or terminal with nothing to read yet): the worker
// then hands over a partly filled slot first, so a slow producer's records are not held back.
static bool
src_would_block(struct rec_reader *r)
{
    if (r->regular || r->peek_pos < r->npeek)
        return false;
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

static int
read_zstd(struct rec_reader *r)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d) {
        snprintf(r->wmsg, sizeof r->wmsg, "zstd: cannot create a decompression context");
        return -1;
    }
    int rc = -1;
    uint64_t consumed = 0; // compressed bytes before inbuf
    ZSTD_inBuffer in = {r->inbuf, 0, 0};
    bool eof = false;
    size_t last = 0; // last ZSTD_decompressStream result: 0 = at a frame boundary
    struct slot *s = ring_acquire(&r->ring);
    while (s) {
        if (in.pos == in.size && !eof) {
            if (s->len && src_would_block(r)) {
                ring_publish(&r->ring);
                s = ring_acquire(&r->ring);
                continue;
            }
            consumed += in.size;
            ssize_t k = src_read(r, r->inbuf, REC_INBUF);
            if (k < 0)
                break;
            eof = k == 0;
            in.size = (size_t)k;
            in.pos = 0;
        }
        if (eof && in.pos == in.size && last == 0) {
            rc = 0; // at a frame boundary: a clean end
            break;
        }
        ZSTD_outBuffer out = {s->p, s->cap, s->len};
        size_t ret = ZSTD_decompressStream(d, &out, &in);
        s->len = out.pos;
        if (ZSTD_isError(ret)) {
            const char *hint = ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge
                                   ? " (window larger than 128 MiB)"
                                   : "";
            snprintf(r->wmsg, sizeof r->wmsg, "zstd: %s%s at compressed byte %" PRIu64,
                     ZSTD_getErrorName(ret), hint, consumed + in.pos);
            break;
        }
        last = ret;
        if (s->len == s->cap) {
            ring_publish(&r->ring);
            s = ring_acquire(&r->ring);
            continue;
        }
        if (eof && in.pos == in.size) {
            if (last != 0)
                snprintf(r->wmsg, sizeof r->wmsg, "truncated zstd frame");
            else
                rc = 0;
            break;
        }
    }
    if (s && s->len)
        ring_publish(&r->ring);
    ZSTD_freeDCtx(d);
    return rc;
}

static la_ssize_t
archive_read_cb(struct archive *a, void *ud, const void **buf)
{
    struct rec_reader *r = ud;
    *buf = r->inbuf;
    ssize_t k = src_read(r, r->inbuf, REC_INBUF);
    if (k < 0)
        archive_set_error(a, EIO, "%s", r->wmsg);
    return k;
}

// gzip, xz and bzip2 through libarchive's raw format (a single unnamed entry).
static int
read_archive(struct rec_reader *r)
{
    const char *what = kind_names[r->kind];
    struct archive *a = archive_read_new();
    if (!a) {
        snprintf(r->wmsg, sizeof r->wmsg, "%s: cannot create a libarchive reader", what);
        return -1;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_format_raw(a);
    archive_read_support_format_empty(a); // a stream that decompresses to nothing
    int rc = -1;
    struct archive_entry *e;
    struct slot *s = NULL;
    if (archive_read_open(a, r, NULL, archive_read_cb, NULL) != ARCHIVE_OK)
        goto fail;
    // The magic matched, so the filter must have been applied; when the input is too short
    // for libarchive to recognise it, it would otherwise hand out the compressed bytes.
    if (archive_filter_count(a) < 2) {
        snprintf(r->wmsg, sizeof r->wmsg, "%s: truncated %s header", what, what);
        archive_read_free(a);
        return -1;
    }
    int st = archive_read_next_header(a, &e);
    if (st == ARCHIVE_EOF) {
        rc = 0;
        goto done;
    }
    if (st < ARCHIVE_WARN)
        goto fail;
    while ((s = ring_acquire(&r->ring))) {
        while (s->len < s->cap) {
            la_ssize_t k = archive_read_data(a, s->p + s->len, s->cap - s->len);
            if (k < 0)
                goto fail;
            if (k == 0) {
                rc = 0;
                goto done;
            }
            s->len += (size_t)k;
        }
        ring_publish(&r->ring);
        s = NULL;
    }
    goto done; // stopped
fail:
    snprintf(r->wmsg, sizeof r->wmsg, "%s: %s", what,
             archive_error_string(a) ? archive_error_string(a) : "read failed");
done:
    if (s && s->len)
        ring_publish(&r->ring);
    archive_read_free(a);
    return rc;
}

static void *
reader_main(void *arg)
{
    struct rec_reader *r = arg;
    int rc = r->kind == KIND_ZSTD ? read_zstd(r) : read_archive(r);
    if (rc)
        ring_fail(&r->ring, "%s", r->wmsg);
    ring_finish(&r->ring);
    return NULL;
}

// Magic numbers; a set bit in mask is significant.
static const struct {
    enum rec_kind kind;
    unsigned char len, magic[6], mask[6];
} magics[] = {
    {KIND_ZSTD, 4, {0x28, 0xB5, 0x2F, 0xFD}, {0xFF, 0xFF, 0xFF, 0xFF}},
    {KIND_ZSTD, 4, {0x50, 0x2A, 0x4D, 0x18}, {0xF0, 0xFF, 0xFF, 0xFF}}, // skippable frame
    {KIND_GZIP, 2, {0x1F, 0x8B}, {0xFF, 0xFF}},
    {KIND_XZ, 6, {0xFD, '7', 'z', 'X', 'Z', 0x00}, {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
    {KIND_BZIP2, 4, {'B', 'Z', 'h', 0x30}, {0xFF, 0xFF, 0xFF, 0xF0}}, // "BZh" + block size
};

// The format of an input starting with b[0..n): KIND_* when known, -1 when more bytes could
// still complete a magic number (so a stalled pipe is not read further than needed).
static int
detect_kind(const unsigned char *b, size_t n)
{
    bool undecided = false;
    for (size_t i = 0; i < KILN_ARRAY_LEN(magics); i++) {
        size_t k = 0;
        while (k < n && k < magics[i].len && (b[k] & magics[i].mask[k]) == magics[i].magic[k])
            k++;
        if (k == magics[i].len)
            return (int)magics[i].kind;
        if (k == n)
            undecided = true;
    }
    return undecided ? -1 : KIND_PLAIN;
}

struct rec_reader *
rec_reader_open(const char *path, struct kerr *err)
{
    bool std = !path || strcmp(path, "-") == 0;
    const char *name = std ? "<stdin>" : path;
    int fd = std ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        kerr_set(err, "%s: %s", name, strerror(errno));
        return NULL;
    }
    struct stat st;
    int e = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (e) {
        kerr_set(err, "%s: %s", name, strerror(e));
        if (!std)
            close(fd);
        return NULL;
    }
    struct rec_reader *r = xcalloc(1, sizeof *r);
    r->name = xstrdup(name);
    r->fd = fd;
    r->own_fd = !std;
    r->regular = S_ISREG(st.st_mode);
    r->size = r->regular ? (uint64_t)st.st_size : 0;
    r->chunk = REC_CHUNK_DEFAULT;
    r->max_line = REC_MAX_LINE_DEFAULT;
    buf_init(&r->line);
    atomic_init(&r->bytes_read, 0);
    // Peek at the magic bytes (a pipe may deliver them piecemeal).
    int kind;
    while ((kind = detect_kind(r->peek, r->npeek)) < 0) {
        ssize_t k = read(fd, r->peek + r->npeek, sizeof r->peek - r->npeek);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            kerr_set(err, "%s: %s", name, strerror(errno));
            rec_reader_close(r);
            return NULL;
        }
        if (k == 0) {
            kind = KIND_PLAIN;
            break;
        }
        r->npeek += (size_t)k;
    }
    atomic_store(&r->bytes_read, r->npeek);
    r->kind = (enum rec_kind)kind;
    return r;
}

const char *
rec_reader_name(const struct rec_reader *r)
{
    return r->name;
}

void
rec_reader_set_max_line(struct rec_reader *r, size_t max)
{
    r->max_line = max;
}

void
rec_reader_set_chunk(struct rec_reader *r, size_t bytes)
{
    if (!r->started && bytes > 0)
        r->chunk = bytes;
}

// Starts the worker at the first read (so the chunk size can still be set). 0 or -1 with err.
static int
reader_start(struct rec_reader *r, struct kerr *err)
{
    r->started = true;
    if (r->kind == KIND_PLAIN) {
        r->plain.p = xmalloc(r->chunk);
        r->plain.cap = r->chunk;
        return 0;
    }
    if (ring_init(&r->ring, r->chunk, err) < 0)
        return -1;
    r->inbuf = xmalloc(REC_INBUF);
    if (thread_start(&r->thread, reader_main, r, err) < 0) {
        ring_free(&r->ring);
        return -1;
    }
    r->threaded = true;
    return 0;
}

// The next slot of input, or NULL at the end of input or on a read error.
static struct slot *
reader_take(struct rec_reader *r)
{
    if (r->threaded)
        return ring_take(&r->ring);
    ssize_t k = src_read(r, r->plain.p, r->plain.cap);
    r->plain_failed = k < 0;
    r->plain.len = k > 0 ? (size_t)k : 0;
    return k > 0 ? &r->plain : NULL;
}

// Records a failure: sticky, returned again by later calls.
static int reader_fail(struct rec_reader *r, struct kerr *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
reader_fail(struct rec_reader *r, struct kerr *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->saved.msg, sizeof r->saved.msg, fmt, ap);
    va_end(ap);
    r->state = -1;
    return kerr_set(err, "%s", r->saved.msg);
}

// Input ended (the worker finished): why, as a status for rec_reader_next.
static int
reader_end(struct rec_reader *r, struct kerr *err)
{
    uint64_t at = r->lineno + 1;
    if (r->plain_failed)
        return reader_fail(r, err, "%s:%" PRIu64 ": %s", r->name, at, r->wmsg);
    if (r->threaded && r->ring.failed) // written before done, read after ring_take saw done
        return reader_fail(r, err, "%s:%" PRIu64 ": %s", r->name, at, r->ring.msg);
    if (atomic_load(&r->bytes_read) == 0)
        return reader_fail(r, err, "%s:1: empty input (0 bytes)", r->name);
    if (r->line.len)
        return reader_fail(r, err, "%s:%" PRIu64 ": missing newline at end of file", r->name, at);
    r->state = 1;
    return 0;
}

static int
line_too_long(struct rec_reader *r, struct kerr *err)
{
    return reader_fail(r, err, "%s:%" PRIu64 ": line longer than %zu bytes", r->name, r->lineno + 1,
                       r->max_line);
}

int
rec_reader_next(struct rec_reader *r, struct rec_line *line, struct kerr *err)
{
    if (r->state > 0)
        return 0;
    if (r->state < 0)
        return kerr_set(err, "%s", r->saved.msg);
    if (!r->started) {
        struct kerr e = {""};
        if (reader_start(r, &e) < 0)
            return reader_fail(r, err, "%s: %s", r->name, e.msg);
    }
    if (r->line.cap > REC_LINE_KEEP)
        buf_free(&r->line); // do not hold on to the memory of one huge line
    buf_reset(&r->line);
    for (;;) {
        if (r->cur && r->pos < r->cur->len) {
            char *s = r->cur->p + r->pos;
            size_t avail = r->cur->len - r->pos;
            char *nl = memchr(s, '\n', avail);
            size_t k = nl ? (size_t)(nl - s) : avail;
            if (r->line.len + k > r->max_line)
                return line_too_long(r, err);
            r->pos += nl ? k + 1 : k;
            if (nl && r->line.len == 0) {
                line->p = s; // the whole line is in this slot: no copy
                line->n = k;
            } else {
                buf_append(&r->line, s, k);
                line->p = r->line.p;
                line->n = r->line.len;
            }
            if (nl)
                break;
        }
        if (r->cur && r->threaded)
            ring_release(&r->ring);
        r->cur = reader_take(r);
        r->pos = 0;
        if (!r->cur)
            return reader_end(r, err);
    }
    line->lineno = ++r->lineno;
    line->offset = r->offset;
    r->offset += line->n + 1;
    const char *nul = memchr(line->p, 0, line->n);
    if (nul)
        return reader_fail(r, err, "%s:%" PRIu64 ":%zu: NUL byte", r->name, r->lineno,
                           (size_t)(nul - line->p) + 1);
    return 1;
}

int
rec_reader_next_obj(struct rec_reader *r, struct rec_line *line, struct json_obj *o,
                    struct kerr *err)
{
    int rc = rec_reader_next(r, line, err);
    if (rc != 1)
        return rc;
    struct json_error je;
    if (json_obj_parse(o, line->p, line->n, &je) < 0)
        return kerr_set(err, "%s:%" PRIu64 ":%zu: invalid JSON: %s", r->name, line->lineno,
                        je.offset + 1, je.msg);
    return 1;
}

uint64_t
rec_reader_bytes_read(const struct rec_reader *r)
{
    return atomic_load(&((struct rec_reader *)r)->bytes_read);
}

uint64_t
rec_reader_size(const struct rec_reader *r)
{
    return r->size;
}

uint64_t
rec_reader_bytes_out(const struct rec_reader *r)
{
    return r->offset;
}

void
rec_reader_close(struct rec_reader *r)
{
    if (!r)
        return;
    if (r->threaded) {
        ring_stop(&r->ring);
        pthread_join(r->thread, NULL);
        ring_free(&r->ring);
    }
    free(r->plain.p);
    if (r->own_fd)
        close(r->fd);
    buf_free(&r->line);
    free(r->inbuf);
    free(r->name);
    free(r);
}

// ---- writer -------------------------------------------------------------------------------

struct rec_writer {
    char *name; // for messages: the path being written (PATH.tmp) or "<stdout>"
    char *path; // final path when renaming, else NULL
    char *tmp;  // PATH.tmp, else NULL
    int tmp_slot;
    int fd;
    bool own_fd, regular;

    struct ring ring;
    pthread_t thread;
    struct slot *cur; // the slot being filled by the caller; NULL once the worker failed

    // Worker side.
    ZSTD_CCtx *cctx; // NULL for plain output
    char *obuf;
    size_t ocap;

    uint64_t records, bytes;
};

// Worker: writes all of p[0..n); 0, or -1 after ring_fail().
static int
writer_put(struct rec_writer *w, const char *p, size_t n)
{
    while (n > 0) {
        if (!w->regular && ring_wait_fd(&w->ring, w->fd, POLLOUT) < 0)
            return -1;
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0) {
            ring_fail(&w->ring, "%s: write failed: %s", w->name,
                      k < 0 ? strerror(errno) : "no progress");
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

// Worker: compresses (or copies) in[0..n); with end, finishes the frame.
static int
writer_compress(struct rec_writer *w, const char *p, size_t n, bool end)
{
    if (!w->cctx)
        return writer_put(w, p, n);
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->obuf, w->ocap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left)) {
            ring_fail(&w->ring, "%s: zstd: %s", w->name, ZSTD_getErrorName(left));
            return -1;
        }
        if (writer_put(w, w->obuf, out.pos) < 0)
            return -1;
        if (end ? left == 0 : in.pos == in.size)
            return 0;
    }
}

static void *
writer_main(void *arg)
{
    struct rec_writer *w = arg;
    struct slot *s;
    while ((s = ring_take(&w->ring))) {
        if (writer_compress(w, s->p, s->len, false) < 0)
            return NULL;
        ring_release(&w->ring);
    }
    if (!ring_stopped(&w->ring))
        writer_compress(w, NULL, 0, true);
    return NULL;
}

static void
writer_free(struct rec_writer *w)
{
    ring_free(&w->ring);
    ZSTD_freeCCtx(w->cctx);
    free(w->obuf);
    free(w->name);
    free(w->path);
    free(w->tmp);
    free(w);
}

// Closes the descriptor and removes the .tmp when failed; frees w. Returns rc.
static int
writer_finish(struct rec_writer *w, int rc, struct kerr *err)
{
    if (w->own_fd && close(w->fd) != 0 && rc == 0)
        rc = kerr_set(err, "%s: close failed: %s", w->name, strerror(errno));
    if (w->tmp) {
        if (rc == 0 && rename(w->tmp, w->path) != 0)
            rc = kerr_set(err, "%s: cannot rename to %s: %s", w->tmp, w->path, strerror(errno));
        if (rc != 0)
            unlink(w->tmp);
        cli_tmp_forget(w->tmp_slot);
    }
    writer_free(w);
    return rc;
}

// zstd's own compression threads. Any count >= 1 gives the same bytes (zstd cuts the input
// into jobs of a size fixed by the level, never by timing), so the count only sets speed;
// 0 (REC_WORKERS_NONE) is zstd's single-threaded streaming mode.
static int
zstd_workers(int want)
{
    if (want != REC_WORKERS_DEFAULT)
        return want < 0 ? 0 : want > REC_ZSTD_WORKERS_MAX ? REC_ZSTD_WORKERS_MAX : want;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > REC_ZSTD_WORKERS_MAX ? REC_ZSTD_WORKERS_MAX : (int)n;
}

struct rec_writer *
rec_writer_open(const char *path, const struct rec_wopts *opts, struct kerr *err)
{
    static const struct rec_wopts defaults = {0};
    if (!opts)
        opts = &defaults;
    struct rec_writer *w = xcalloc(1, sizeof *w);
    if (ring_init(&w->ring, opts->chunk_bytes ? opts->chunk_bytes : REC_CHUNK_DEFAULT, err) < 0) {
        free(w);
        return NULL;
    }
    w->tmp_slot = -1;
    bool std = !path || strcmp(path, "-") == 0;
    struct stat st;
    if (std) {
        w->name = xstrdup("<stdout>");
        w->fd = STDOUT_FILENO;
    } else if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        w->name = xstrdup(path); // /dev/null, a FIFO, /dev/stdout: written in place
        w->fd = open(path, O_WRONLY | O_CLOEXEC);
        w->own_fd = w->fd >= 0;
    } else {
        w->path = xstrdup(path);
        size_t n = strlen(path);
        w->tmp = xmalloc(n + 5);
        memcpy(w->tmp, path, n);
        memcpy(w->tmp + n, ".tmp", 5);
        w->name = xstrdup(w->tmp);
        w->tmp_slot = cli_tmp_register(w->tmp); // before it exists: no window for a signal
        w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        w->own_fd = w->fd >= 0;
    }
    if (w->fd < 0) {
        kerr_set(err, "%s: %s", w->name, strerror(errno));
        goto fail;
    }
    w->regular = fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode);
    if (!opts->plain && !opts->force && isatty(w->fd)) {
        kerr_set(err, "refusing to write compressed data to a terminal; use -o, --plain or -f");
        goto fail;
    }
    if (!opts->plain) {
        int level = opts->level ? opts->level : 3;
        w->cctx = ZSTD_createCCtx();
        if (!w->cctx) {
            kerr_set(err, "zstd: cannot create a compression context");
            goto fail;
        }
        size_t rc = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(rc))
            rc = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
        if (!ZSTD_isError(rc))
            rc = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, zstd_workers(opts->workers));
        if (ZSTD_isError(rc)) {
            kerr_set(err, "zstd level %d: %s", level, ZSTD_getErrorName(rc));
            goto fail;
        }
        w->ocap = ZSTD_CStreamOutSize();
        w->obuf = xmalloc(w->ocap);
    }
    if (thread_start(&w->thread, writer_main, w, err) < 0)
        goto fail;
    w->cur = ring_acquire(&w->ring);
    return w;
fail:
    writer_finish(w, -1, NULL);
    return NULL;
}

int
rec_writer_write_raw(struct rec_writer *w, const char *p, size_t n, struct kerr *err)
{
    while (n > 0) {
        struct slot *s = w->cur;
        if (!s)
            return kerr_set(err, "%s", w->ring.msg);
        size_t k = s->cap - s->len < n ? s->cap - s->len : n;
        memcpy(s->p + s->len, p, k);
        s->len += k;
        w->bytes += k;
        p += k;
        n -= k;
        if (s->len == s->cap) {
            ring_publish(&w->ring);
            w->cur = ring_acquire(&w->ring); // NULL when the worker failed
        }
    }
    return 0;
}

int
rec_writer_write(struct rec_writer *w, const char *p, size_t n, struct kerr *err)
{
    if (rec_writer_write_raw(w, p, n, err) < 0 || rec_writer_write_raw(w, "\n", 1, err) < 0)
        return -1;
    w->records++;
    return 0;
}

uint64_t
rec_writer_records(const struct rec_writer *w)
{
    return w->records;
}

uint64_t
rec_writer_bytes(const struct rec_writer *w)
{
    return w->bytes;
}

int
rec_writer_close(struct rec_writer *w, struct kerr *err)
{
    if (w->cur && w->cur->len)
        ring_publish(&w->ring);
    ring_finish(&w->ring);
    pthread_join(w->thread, NULL);
    int rc = 0;
    if (w->ring.failed) // set by the worker before it exited; joined
        rc = kerr_set(err, "%s", w->ring.msg);
    return writer_finish(w, rc, err);
}

void
rec_writer_abort(struct rec_writer *w)
{
    if (!w)
        return;
    ring_stop(&w->ring);
    pthread_join(w->thread, NULL);
    writer_finish(w, -1, NULL);
}

const char *
rec_zstd_version(void)
{
    return ZSTD_versionString();
}

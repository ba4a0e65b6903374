// SPDX-License-Identifier: MIT
// util: the small things every module uses — fatal allocation, growable byte buffers, error
// messages passed up from common/ to a stage, clocks and peak memory.
//
// Error convention: common/ functions that can fail take a `struct kerr *` and return a status
// (0 ok, -1 failed). They fill err->msg with "file:line:col: what" (whatever location they
// know); only a stage's main path prints it (prefixed with the program name) and exits.
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef KILN_VERSION
#define KILN_VERSION "0.1.0"
#endif

#define KILN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

// Allocation. Out of memory is fatal: prints "<prog>: out of memory" and exits 1.
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

// struct buf: a growable byte buffer, always NUL-terminated after len (p may be NULL while
// cap == 0). Embed it, buf_init() or zero-initialise, buf_free() when done. Any append may
// move p: pointers into it are invalidated.
struct buf {
    char *p;
    size_t len, cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);              // len = 0, keeps the memory
void buf_reserve(struct buf *b, size_t extra); // room for len + extra + 1 bytes
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
// Detaches the bytes: returns p (caller frees) and leaves b empty.
char *buf_detach(struct buf *b);

// struct kerr: an error message travelling up from common/ to the stage.
struct kerr {
    char msg[1024];
};

// Formats the message; returns -1 so callers can `return kerr_set(err, ...)`. err may be NULL.
int kerr_set(struct kerr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Prepends "prefix: " to an existing message (e.g. a file name), returns -1.
int kerr_prefix(struct kerr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Seconds since an arbitrary fixed point (CLOCK_MONOTONIC).
double now_seconds(void);
// Peak resident set size of this process in bytes (getrusage), 0 if unknown.
uint64_t peak_rss_bytes(void);

// Reads a whole file into *out (NUL-terminated). Returns 0 or -1 with err ("path: strerror").
// max_bytes guards against huge inputs (0 = no limit).
int read_file(const char *path, size_t max_bytes, struct buf *out, struct kerr *err);

#endif

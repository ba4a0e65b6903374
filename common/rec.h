// SPDX-License-Identifier: MIT
// rec: record streams — JSON Lines, zstd-compressed or plain, from files or stdin, to files
// or stdout. The only module that speaks zstd (and libarchive's raw reader for gzip/xz/bz2
// input). It knows nothing of what the records mean.
//
// Reader: detects zstd by magic (28 B5 2F FD), gzip/xz/bzip2 by theirs (read through
// libarchive's raw format), otherwise plain. Decompression runs on a worker thread. Lines are
// framed on '\n' (a trailing '\r' is kept: it is inside the JSON text only if the producer put
// it there); there is no practical length limit (lines grow in memory; rec_reader_max_line
// caps them, default 1 GiB). Every line carries its 1-based number and byte offset for
// messages. An unterminated last line is an error ("missing newline at end of file"), as are
// NUL bytes ("NUL byte at column C") and a truncated compressed frame.
//
// Writer: appends '\n' after each record; zstd (level 3 default) on a worker thread so
// compression overlaps the stage's work; output is deterministic for a given level whatever
// the timing. "-"/NULL is stdout; compressed output to a terminal is refused unless forced.
// A named output is written to "PATH.tmp" and renamed on rec_writer_close(); the .tmp is
// registered with cli so SIGINT/SIGTERM remove it, and rec_writer_abort() removes it too.
#ifndef KILN_REC_H
#define KILN_REC_H

#include "json.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

struct rec_reader;

// One line, valid until the next call on the reader. n excludes the '\n'.
struct rec_line {
    const char *p;
    size_t n;
    uint64_t lineno; // 1-based
    uint64_t offset; // byte offset of the line start in the decompressed stream
};

// Opens path ("-" or NULL = stdin). Returns NULL with err ("path: No such file or directory").
struct rec_reader *rec_reader_open(const char *path, struct kerr *err);
// Display name used in messages ("<stdin>" for stdin).
const char *rec_reader_name(const struct rec_reader *r);
// Next line: 1 got one, 0 end of input, -1 error (err: "name:line: what").
int rec_reader_next(struct rec_reader *r, struct rec_line *line, struct kerr *err);
// Next line parsed as a JSON object into *o: 1, 0 at end, -1 with err
// "name:line:col: invalid JSON: what" (or any read error).
int rec_reader_next_obj(struct rec_reader *r, struct rec_line *line, struct json_obj *o,
                        struct kerr *err);
// Compressed (on-disk) bytes consumed so far and total input size (0 when unknown, e.g. a
// pipe), for progress and stats; uncompressed bytes delivered so far.
uint64_t rec_reader_bytes_read(const struct rec_reader *r);
uint64_t rec_reader_size(const struct rec_reader *r);
uint64_t rec_reader_bytes_out(const struct rec_reader *r);
void rec_reader_set_max_line(struct rec_reader *r, size_t max);
void rec_reader_close(struct rec_reader *r);

struct rec_wopts {
    int level;       // zstd level, default 3 (0 means default)
    bool plain;      // no compression
    bool force;      // allow compressed output to a terminal
};

struct rec_writer;

// Opens path ("-" or NULL = stdout). Returns NULL with err.
struct rec_writer *rec_writer_open(const char *path, const struct rec_wopts *opts,
                                   struct kerr *err);
// Writes one record (n bytes, no newline; one is appended). 0 or -1 with err.
int rec_writer_write(struct rec_writer *w, const char *p, size_t n, struct kerr *err);
// Writes raw bytes into the stream as they are (for non-record text outputs).
int rec_writer_write_raw(struct rec_writer *w, const char *p, size_t n, struct kerr *err);
// Records and uncompressed bytes written so far.
uint64_t rec_writer_records(const struct rec_writer *w);
uint64_t rec_writer_bytes(const struct rec_writer *w);
// Flushes, finishes the frame, checks every write and the close, renames PATH.tmp to PATH.
// Frees w. Returns 0 or -1 with err (the .tmp is then removed).
int rec_writer_close(struct rec_writer *w, struct kerr *err);
// Discards: removes PATH.tmp, frees w. Safe with NULL.
void rec_writer_abort(struct rec_writer *w);

// The zstd library version string, for provenance.
const char *rec_zstd_version(void);

#endif

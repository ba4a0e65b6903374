// SPDX-License-Identifier: MIT
// rec: record streams — JSON Lines, zstd-compressed or plain, from files or stdin, to files
// or stdout. The only module that speaks zstd (and libarchive's raw reader for gzip/xz/bz2
// input). It knows nothing of what the records mean.
//
// Reader: detects zstd by magic (28 B5 2F FD, or a skippable frame), gzip/xz/bzip2 by theirs
// (read through libarchive's raw format), otherwise plain. Decompression runs on a worker
// thread that fills a ring of buffers while the caller parses (plain input is read by the
// caller). Lines are framed on '\n'
// (a trailing '\r' is kept: it is inside the JSON text only if the producer put it there);
// there is no practical length limit (a line that spans buffers is assembled in memory;
// rec_reader_set_max_line caps it, default 1 GiB). Every line carries its 1-based number and
// byte offset for messages. Errors, all "name:line[:col]: what" where line is the line being
// read when it happened:
//   - "empty input (0 bytes)": a 0-byte file or stdin (a compressed stream that holds zero
//     records is a valid empty stream);
//   - "missing newline at end of file": an unterminated last line;
//   - "NUL byte" (with the column): binary data in a line;
//   - "line longer than N bytes": the max-line cap;
//   - "truncated zstd frame", "zstd: <ZSTD_getErrorName> at compressed byte N" (corrupt data,
//     garbage after a frame, checksum mismatch), "gzip: <archive_error_string>" and the like.
// Errors are sticky: later calls return -1 with the same message.
//
// Writer: appends '\n' after each record; zstd (level 3 default, checksummed frames) on a
// worker thread so compression overlaps the stage's work. The caller's bytes go to the worker
// in fixed-size chunks (rec_wopts.chunk_bytes, default 1 MiB, four of them in flight); the
// worker feeds zstd's multithreaded job mode (rec_wopts.workers threads, by default as many as
// CPUs, at most 4), which cuts the stream into jobs whose size depends on the level only, so
// the output is deterministic for a given level and zstd version whatever the timing, chunk
// size or thread count (it is byte for byte what `zstd -3 -T1 < in` writes). Memory: about
// 4 × chunk_bytes plus, in job mode, two jobs' input and output per zstd thread (a job is
// 8 MiB at level 3); small processes of a sharded run that write files which never leave the
// machine use a smaller chunk and REC_WORKERS_NONE. "-"/NULL is stdout; compressed output to a terminal is refused
// unless forced. A named output is written to "PATH.tmp" and renamed on rec_writer_close(); the
// .tmp is registered with cli so SIGINT/SIGTERM remove it, and rec_writer_abort() or a failed close
// remove it too. A named output that exists and is not a regular file (/dev/null, a FIFO) is
// written in place. Write errors (EPIPE on a closed pipe, ENOSPC, ...) are reported as errors
// ("<stdout>: write failed: Broken pipe"), not as SIGPIPE: the worker threads block SIGPIPE,
// SIGINT, SIGTERM and SIGHUP so signals reach the main thread and cli's handlers.
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
// Next line parsed as a JSON object into *o (json_obj_parse; o points into the line): 1, 0 at
// end, -1 with err "name:line:col: invalid JSON: what" (or any read error).
int rec_reader_next_obj(struct rec_reader *r, struct rec_line *line, struct json_obj *o,
                        struct kerr *err);
// Compressed (on-disk) bytes consumed so far and total input size (0 when unknown, e.g. a
// pipe), for progress and stats; uncompressed bytes delivered so far.
uint64_t rec_reader_bytes_read(const struct rec_reader *r);
uint64_t rec_reader_size(const struct rec_reader *r);
uint64_t rec_reader_bytes_out(const struct rec_reader *r);
// Longest line accepted (bytes, without the '\n'); default 1 GiB.
void rec_reader_set_max_line(struct rec_reader *r, size_t max);
// Size of the buffers the worker fills (default 1 MiB). Only before the first read; small
// values are for tests that exercise lines spanning buffers.
void rec_reader_set_chunk(struct rec_reader *r, size_t bytes);
void rec_reader_close(struct rec_reader *r);

// Compression threads (rec_wopts.workers). Any count >= 1 writes the same bytes; NONE
// compresses on the writer's own thread in zstd's single-threaded streaming mode: other bytes
// (still deterministic, still `zstd -d` readable), no job buffers, the least memory.
#define REC_WORKERS_DEFAULT 0 // as many as CPUs, at most 4
#define REC_WORKERS_NONE (-1)

struct rec_wopts {
    int level;          // zstd level, default 3 (0 means default)
    bool plain;         // no compression
    bool force;         // allow compressed output to a terminal
    size_t chunk_bytes; // hand-over size to the worker, 0 = 1 MiB (output does not depend on it)
    int workers;        // zstd threads: REC_WORKERS_DEFAULT, n >= 1, or REC_WORKERS_NONE
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

// SPDX-License-Identifier: MIT
// archive: reading archive members into memory and writing deterministic tar files — the only
// module that speaks libarchive (rec.c's raw gzip/xz/bzip2 stream reader is the one sanctioned
// exception). Names use the prefix arc_ because libarchive owns archive_*.
//
// Reader. Opens tar (every variant, compressed with gzip, bzip2, xz, zstd, lz4, ...), zip, 7z
// and cpio from a file or from memory. arc_reader_next() moves to the next *regular file*
// member; everything else is skipped and counted in struct arc_counts:
//   - directories (harmless, counted),
//   - symbolic and hard links, devices, FIFOs, sockets (never followed or created),
//   - absolute paths, paths with a ".." component, empty paths (unsafe),
//   - members whose declared size exceeds the member limit.
// Members are never written to disk: arc_reader_read() appends the current member's bytes to a
// caller's buffer. Limits stop archive bombs:
//   - max_member: a member larger than this (declared or actually read) — declared: skipped
//     and counted; actual (a lying header): the read fails;
//   - max_total: all member bytes read in one archive — the read fails;
//   - max_ratio: bytes delivered / bytes read from the file, checked once min_ratio_bytes have
//     been delivered — the read fails ("archive bomb suspected").
// A corrupt or unrecognized archive fails with libarchive's message prefixed by the name:
// "x.tgz: corrupt archive: Truncated tar archive". Member paths are reported as stored, with a
// leading "./" removed.
//
// Writer. A deterministic tar (POSIX pax, restricted: pax headers only for long names) whose
// bytes depend only on the entries' names and contents:
//   - entries are buffered (memory or file path) and written sorted by name (bytewise) at close;
//   - mtime = SOURCE_DATE_EPOCH when set (a decimal integer), else ARC_DEFAULT_MTIME
//     (1980-01-01T00:00:00Z), unless the caller fixes it; no atime/ctime;
//   - uid = gid = 0 with empty user and group names; modes 0644, or 0755 when executable;
//   - regular files only (no directory entries);
//   - optional zstd compression (libarchive's filter, single-threaded, fixed level).
// The output goes to PATH.tmp (registered for signal cleanup by the caller if wanted) and is
// renamed to PATH at close; any failure removes the temporary.

// common/ is on the include path, so this file shadows libarchive's <archive.h> for every file
// that includes either (rec.c uses libarchive's raw reader). Pull the real one in first, outside
// the guard, so both sets of declarations are visible whichever way the file was found (when
// found through the source's own folder, #include_next lands on this file via -Icommon once,
// and from there on libarchive's).
#ifdef __clang__
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winclude-next-absolute-path"
#endif
#include_next <archive.h>
#ifdef __clang__
#pragma clang diagnostic pop
#endif

#ifndef KILN_ARCHIVE_H
#define KILN_ARCHIVE_H

#include "util.h"

#include <stdbool.h>
#include <stdint.h>

#define ARC_DEFAULT_MTIME 315532800 // 1980-01-01T00:00:00Z

struct arc_limits {
    uint64_t max_member;      // bytes per member; 0 = default 64 MiB
    uint64_t max_total;       // bytes per archive; 0 = default 16 GiB
    double max_ratio;         // delivered / read; 0 = default 100
    uint64_t min_ratio_bytes; // ratio checked once this much is delivered; 0 = default 4 MiB
};

// What the reader skipped (and why), for --stats and warnings.
struct arc_counts {
    uint64_t files;        // regular file members returned by arc_reader_next
    uint64_t dirs;         // directory entries
    uint64_t links;        // symbolic and hard links
    uint64_t specials;     // devices, FIFOs, sockets
    uint64_t unsafe_paths; // absolute, "..", empty
    uint64_t too_large;    // declared size over max_member
    uint64_t bytes;        // member bytes delivered by arc_reader_read
};

// The current member; path is valid until the next arc_reader_next call.
struct arc_member {
    const char *path;
    uint64_t size; // declared size (0 if the format does not say)
    bool size_known;
    int64_t mtime;
};

struct arc_reader;

// Opens an archive file (path) or memory (p, n; must outlive the reader). name is used in
// messages. limits may be NULL (defaults). Returns NULL with err on failure.
struct arc_reader *arc_reader_open(const char *path, const struct arc_limits *limits,
                                   struct kerr *err);
struct arc_reader *arc_reader_open_memory(const void *p, size_t n, const char *name,
                                          const struct arc_limits *limits, struct kerr *err);
// Moves to the next regular file member: 1 and *m filled, 0 at the end, -1 with err
// ("name: corrupt archive: ..."). A member that is not read is skipped.
int arc_reader_next(struct arc_reader *r, struct arc_member *m, struct kerr *err);
// Appends the current member's bytes to out (limits enforced). 0, or -1 with err. Call at most
// once per member.
int arc_reader_read(struct arc_reader *r, struct buf *out, struct kerr *err);
const struct arc_counts *arc_reader_counts(const struct arc_reader *r);
// Bytes read from the underlying file or memory so far (compressed).
uint64_t arc_reader_bytes_read(const struct arc_reader *r);
const char *arc_reader_name(const struct arc_reader *r);
void arc_reader_close(struct arc_reader *r);

// True when path is a member path the reader accepts (relative, no "..", not empty).
bool arc_path_safe(const char *path);

// ---- deterministic tar writer ---------------------------------------------------------

struct arc_wopts {
    bool zstd;     // compress the tar with zstd
    int level;     // zstd level (0 = 19)
    int64_t mtime; // < 0: SOURCE_DATE_EPOCH or ARC_DEFAULT_MTIME
};

struct arc_writer;

// Starts a tar at path (written to path.tmp until arc_writer_close). opts may be NULL
// (uncompressed, mtime from SOURCE_DATE_EPOCH or the default). Returns NULL with err (an
// invalid SOURCE_DATE_EPOCH is an error).
struct arc_writer *arc_writer_open(const char *path, const struct arc_wopts *opts,
                                   struct kerr *err);
// Adds an entry with the bytes p[0..n) (copied). name must be arc_path_safe and unique.
int arc_writer_add(struct arc_writer *w, const char *name, const void *p, size_t n, bool executable,
                   struct kerr *err);
// Adds an entry whose bytes are read from file at close time. Errors then name the file.
int arc_writer_add_file(struct arc_writer *w, const char *name, const char *file, bool executable,
                        struct kerr *err);
// Sorts, writes every entry, checks every write and the close, renames path.tmp to path.
// Frees w. 0, or -1 with err (path.tmp removed).
int arc_writer_close(struct arc_writer *w, struct kerr *err);
// Discards everything (removes path.tmp), frees w. Safe with NULL.
void arc_writer_abort(struct arc_writer *w);

// The mtime the writer uses when opts->mtime < 0: 0 and *out, or -1 with err for a malformed
// SOURCE_DATE_EPOCH.
int arc_source_date_epoch(int64_t *out, struct kerr *err);

#endif

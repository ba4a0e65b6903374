// SPDX-License-Identifier: MIT
// dedup_index: the file that carries what a dedupe run has seen to later runs (--save-index,
// --against) and, later, between the phases of a sharded run. It holds, per kept record, the
// exact key, the record id, the LSH band hashes and the sorted shingle set that candidate
// verification needs. The reader validates everything (it is fed untrusted files; see
// tests/fuzz/fuzz_dedupe_index.c) and refuses a corrupt file with the byte offset and what is
// wrong; dedup_index_check() refuses an incompatible one naming the mismatching parameter.
//
// Byte layout (little-endian):
//
//   header, 64 bytes
//     0  char[8] magic "KILNDDIX"
//     8  u32     version (1)
//    12  u32     flags: bit 0 = near-duplicate data present (bands and shingles)
//    16  u32     normalization (0 none, 1 ws-lower, 2 nfkc)
//    20  u32     shingle kind (0 word n-grams, 1 character n-grams)   } 0 without near data
//    24  u32     n-gram length                                         }
//    28  u32     bands                                                 }
//    32  u32     rows                                                  }
//    36  u32     reserved, 0
//    40  u64     permutation seed                                      } 0 without near data
//    48  u64     number of records (< 2^32 − 1)
//    56  u64     reserved, 0
//   records, each a multiple of 8 bytes
//     u32 id length L (≤ 1 MiB)        u32 number of shingles S (0 without near data)
//     u64 key[2]                        exact key: xxh3-128 of the normalized field
//     u8  id[L], zero-padded to a multiple of 8
//     u64 band[bands]                   near data only
//     u64 shingle[S]                    near data only, strictly ascending
//   trailer, 16 bytes
//     char[8] "KILNDEND"
//     u64     checksum: c = 0; c = xxh3_64(record bytes, seed c) for each record in order;
//             checksum = xxh3_64(header bytes 0..63, seed c)
#ifndef KILN_DEDUP_INDEX_H
#define KILN_DEDUP_INDEX_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEDUP_INDEX_VERSION 1
#define DEDUP_INDEX_HEADER 64
#define DEDUP_INDEX_TRAILER 16
#define DEDUP_INDEX_MAX_ID (1u << 20)
#define DEDUP_INDEX_MAX_RECORDS (UINT32_MAX - 1)
#define DEDUP_INDEX_MAX_BANDS 16384

enum dedup_norm { DEDUP_NORM_NONE = 0, DEDUP_NORM_WS_LOWER = 1, DEDUP_NORM_NFKC = 2 };

struct dedup_index_meta {
    uint32_t version;
    bool near;          // bands and shingles present
    uint32_t normalize; // enum dedup_norm
    uint32_t kind;      // enum minhash_kind
    uint32_t ngram, bands, rows;
    uint64_t seed;
    uint64_t records;
};

// One record as read. id and band point into the reader's buffer (valid until the next call);
// the shingles stay in the file at shingle_off (read them with dedup_index_read_shingles).
struct dedup_index_rec {
    uint64_t key[2];
    const char *id;
    uint32_t id_len;
    const uint64_t *band; // (bands) or NULL
    uint32_t n_shingles;
    uint64_t offset;      // file offset of the record
    uint64_t shingle_off; // file offset of its shingle array
};

// Bytes of one encoded record.
size_t dedup_index_rec_size(uint32_t id_len, uint32_t bands, uint32_t n_shingles);
// Appends one encoded record to out. bands/shingles may be NULL when their counts are 0.
void dedup_index_rec_encode(struct buf *out, const uint64_t key[2], const char *id,
                            uint32_t id_len, const uint64_t *band, uint32_t bands,
                            const uint64_t *shingle, uint32_t n_shingles);

// ---- reading ------------------------------------------------------------------------------

struct dedup_index_reader;

// Opens and checks the header. Returns NULL with err ("path: what").
struct dedup_index_reader *dedup_index_open(const char *path, struct dedup_index_meta *meta,
                                            struct kerr *err);
// Next record: 1, or 0 at the end once the trailer and checksum are verified, or -1 with err
// ("path: offset N: what"). Records must not be trusted before 0 is returned.
int dedup_index_next(struct dedup_index_reader *r, struct dedup_index_rec *rec,
                     struct kerr *err);
// Hands the open file descriptor to the caller (who closes it) for later shingle reads.
int dedup_index_take_fd(struct dedup_index_reader *r);
void dedup_index_close(struct dedup_index_reader *r);

// Reads n shingles at file offset off of fd into out (pread). 0 or -1 with err.
int dedup_index_read_shingles(int fd, uint64_t off, uint32_t n, uint64_t *out,
                              struct kerr *err);

// Refuses an index whose parameters differ from what this run uses: returns -1 with err
// naming the mismatch ("index.ddx: built with --normalize nfkc, this run uses ws-lower").
// need_near: this run looks for near duplicates, so the index must carry near data with the
// same shingling, bands, rows and seed.
int dedup_index_check(const char *path, const struct dedup_index_meta *want,
                      const struct dedup_index_meta *have, bool need_near, struct kerr *err);
const char *dedup_norm_name(uint32_t norm);

// ---- writing ------------------------------------------------------------------------------

struct dedup_index_writer;

// Creates PATH.tmp (removed on signals and on abort); renamed to path on close.
struct dedup_index_writer *dedup_index_writer_open(const char *path,
                                                   const struct dedup_index_meta *meta,
                                                   struct kerr *err);
// Appends one encoded record (as made by dedup_index_rec_encode). 0 or -1 with err.
int dedup_index_writer_add(struct dedup_index_writer *w, const void *rec, size_t n,
                           struct kerr *err);
// Writes the trailer and the final header, checks every write, renames. Frees w.
int dedup_index_writer_close(struct dedup_index_writer *w, struct kerr *err);
void dedup_index_writer_abort(struct dedup_index_writer *w);

#endif

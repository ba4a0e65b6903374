// SPDX-License-Identifier: MIT
// engine: dedupe's state and per-record decision, separate from option parsing and I/O.
//
// Records are decided one at a time in input order. A record's key field is normalized and
// hashed (xxh3-128): a key seen before makes it an exact duplicate of the kept record that
// first had it. Otherwise, in near mode, its shingle set is signed and banded; every kept
// record sharing a band is a candidate, and each candidate's stored shingle set is compared
// with the record's by real Jaccard similarity. The record is a near duplicate of the most
// similar candidate at or above the threshold (ties: the earliest). Only kept records are
// stored and matched, so every removed record is within the threshold of its survivor, which
// is the first record of its cluster in input order (records from --against indexes count as
// earlier than all input). Nothing holds record texts: per kept record the engine keeps an
// exact-table entry, LSH entries and a 24-byte locator; ids, band hashes and shingle sets go
// to a spool file (the body of the index that --save-index writes) and are read back when a
// candidate is verified or a survivor's id is reported.
//
// The phases a sharded run separates are separate functions here: sign (normalize, shingle,
// MinHash, bands), candidates (LSH buckets), verify (Jaccard), cluster (union-find), and the
// filter decision the caller acts on.
#ifndef KILN_DEDUPE_ENGINE_H
#define KILN_DEDUPE_ENGINE_H

#include "dedup_index.h"
#include "json.h"
#include "minhash.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

enum dedupe_mode { DEDUPE_EXACT, DEDUPE_NEAR };
enum dedupe_missing { MISSING_ERROR, MISSING_KEEP, MISSING_DROP };

struct dedupe_conf {
    enum dedupe_mode mode;
    enum dedup_norm norm;
    const char *key;     // dotted path of the field to compare
    const char *id_path; // dotted path of the record id
    enum dedupe_missing missing;
    struct minhash_params mh; // near mode
    bool keep_ids;       // ids of kept records are needed (rejects, clusters, save-index)
    bool clusters;       // collect cluster members for dedupe_write_clusters
};

enum dedupe_kind { VERDICT_KEEP, VERDICT_EXACT, VERDICT_NEAR, VERDICT_MISSING_KEEP,
                   VERDICT_MISSING_DROP };

struct dedupe_verdict {
    enum dedupe_kind kind;
    uint32_t survivor; // kept-record number (EXACT, NEAR)
    double similarity; // 1 for EXACT; the verified Jaccard similarity for NEAR
};

struct dedupe;

// Creates the engine (spool file in $TMPDIR, unlinked at once). NULL with err.
struct dedupe *dedupe_new(const struct dedupe_conf *conf, struct kerr *err);
void dedupe_del(struct dedupe *d);

// Loads an index written by --save-index: its records become earlier kept records.
// -1 with err naming a corrupt file or the mismatching parameter.
int dedupe_load_index(struct dedupe *d, const char *path, struct kerr *err);

// Decides one record (o parsed from the line). On a missing or non-string key field with
// MISSING_ERROR returns -1 with err "what" (the caller adds file and line).
int dedupe_record(struct dedupe *d, const struct json_obj *o, struct dedupe_verdict *v,
                  struct kerr *err);

// ---- the phases on their own, for a sharded run (shard.c) ----------------------------------

// 0 when o has the key field as a string; 1 when not and conf->missing is keep or drop; -1
// with err ("no field 'text'") when not and missing is error.
int dedupe_key_missing(const struct dedupe_conf *conf, const struct json_obj *o,
                       struct kerr *err);

// A record's exact key and, in near mode, its shingle set and band hashes. The arrays belong
// to d and are valid until the next call.
struct dedupe_sig {
    uint64_t key[2];
    const uint64_t *shingles; // (n_shingles) ascending
    size_t n_shingles;
    const uint64_t *band; // (bands)
};
// Signs o (whose key field is present: see dedupe_key_missing). 0 or -1 with err.
int dedupe_sign(struct dedupe *d, const struct json_obj *o, struct dedupe_sig *s,
                struct kerr *err);

// Appends o's raw JSON id (string or number as written) to out, or "#pos" when it has none.
// -1 with err when the id is longer than DEDUP_INDEX_MAX_ID.
int dedupe_raw_id(const struct dedupe_conf *conf, const struct json_obj *o, uint64_t pos,
                  struct buf *out, struct kerr *err);

// Appends the raw JSON id of kept record k (a string or number as it appeared, or "#N" with
// N the record's 1-based position in the input when it had none) to out.
int dedupe_kept_id(struct dedupe *d, uint32_t k, struct buf *out, struct kerr *err);

// Writes one JSON line per cluster of two or more records, in survivor order:
// {"cluster":N,"size":S,"survivor":ID,"members":[ID,...]} (survivor first, then input order).
struct rec_writer;
int dedupe_write_clusters(struct dedupe *d, struct rec_writer *w, struct kerr *err);
// Writes this run's kept records as an index file (atomic). -1 with err.
int dedupe_save_index(struct dedupe *d, const char *path, struct kerr *err);

struct dedupe_counts {
    uint64_t records, kept, exact, near, missing_kept, missing_dropped;
    uint64_t against_records;
    uint64_t candidates;       // candidate pairs verified
    uint64_t false_candidates; // verified below the threshold
    uint64_t clusters, largest_cluster;
    uint64_t ram_bytes;        // engine tables (exact, LSH, locators, union-find)
    uint64_t spool_bytes;      // bytes written to the spool
};
void dedupe_counts(const struct dedupe *d, struct dedupe_counts *c);

#endif

// SPDX-License-Identifier: MIT
// sharded: dedupe across shards in four phases, each a separate process, whose result equals
// a single `dedupe` run over the whole input record for record (see sharded.c for why).
//
//   sign    (per shard I)  key, shingles, id and LSH bucket entries of every record
//   bucket  (per range J)  candidate pairs: records sharing a bucket whose tag is in range J
//   cluster (one process)  replays the decisions in input order over the candidate pairs
//   apply   (per shard I)  writes the shard's kept records, and its rejects
//
// Shards are made by `shard split` (each record carries its input position "_kiln_seq").
// Work files live in one folder shared by all phases (--work DIR).
#ifndef KILN_DEDUPE_SHARD_H
#define KILN_DEDUPE_SHARD_H

#include "cli.h"
#include "engine.h"

enum dedupe_phase { PHASE_NONE, PHASE_SIGN, PHASE_BUCKET, PHASE_CLUSTER, PHASE_APPLY };

struct dedupe_shard_opts {
    enum dedupe_phase phase;
    const char *work;        // --work DIR
    uint32_t shards, ranges; // --shards N, --ranges R (default N)
    int64_t shard, range;    // --shard I, --range J (-1 = not given)
    const char *rejects;
};

// Runs one phase; inputs are the shard files (sign, apply). Exits on errors like a stage.
void dedupe_shard_run(const struct dedupe_conf *conf, const struct cli_common *c,
                      const struct dedupe_shard_opts *so, const char *const *files,
                      size_t n_files);

// Appends record o as a reject: reason ("exact", "near", "missing"), and for exact and near
// duplicate_of (raw JSON id) and similarity (rounded to 6 decimals). vals is scratch.
void dedupe_reject_line(const struct json_obj *o, enum dedupe_kind kind, const char *dup_id,
                        size_t dup_len, double sim, struct buf *line, struct buf *vals);

#endif

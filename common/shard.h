// SPDX-License-Identifier: MIT
// shard: what a sharded run needs to cut a record stream into N shards and put the results of
// record-wise stages back together in the unsharded order.
//
// A record goes to shard xxh3_64(id, SHARD_SEED) mod N, where id is the unescaped string or the
// raw number of the id field; a record without one is hashed by its input position. Each
// record in a shard carries its position in the whole input (0-based, counted over all input
// files) as a leading member "_kiln_seq":N, inserted right after the opening brace so every
// other byte of the line is untouched. Stages pass unknown fields through in order, so the tag
// survives filter, tokenize, dedupe and balance; merging takes, among the shards' next records,
// the one with the smallest sequence number and removes the tag, which gives back exactly the
// bytes the unsharded run writes. Shards keep input order, so each shard's sequence numbers
// ascend and the merge is a k-way merge holding one line per shard.
#ifndef KILN_SHARD_H
#define KILN_SHARD_H

#include "json.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

#define SHARD_SEED UINT64_C(0x6b696c6e2d736872) // "kiln-shr"
#define SHARD_SEQ_KEY "_kiln_seq"
#define SHARD_MAX 4096

// The shard (0..n-1) of a record: by its id field at dotted path id_path (a string or a
// number), else by seq. scratch holds the unescaped id.
uint32_t shard_of(const struct json_obj *o, const char *id_path, uint64_t seq, uint32_t n,
                  struct buf *scratch);

// Appends line p[0..n) (parsed as o) with "_kiln_seq":seq as first member to out (no newline);
// every other byte, blanks around the object included, is kept. Returns -1 with err when o
// already carries a sequence number (sharding a shard).
int shard_seq_tag(const char *p, size_t n, const struct json_obj *o, uint64_t seq,
                  struct buf *out, struct kerr *err);

// The sequence number of a tagged record (parsed), or -1 with err when absent or malformed.
int shard_seq_get(const struct json_obj *o, uint64_t *seq, struct kerr *err);

// The sequence number of line p[0..n) when it leads the object, where shard_seq_tag put it
// (no parse): 1 with *seq set; 0 when it is not there (parse the line and use shard_seq_get).
int shard_seq_peek(const char *p, size_t n, uint64_t *seq);

// Line p[0..n) without its sequence member appended to out (no newline), *seq set. The tag is
// found at the front (where shard_seq_tag put it) without a full parse; elsewhere (a stage that
// rewrote the record moved it) through a parse, removing the member and one comma. -1 with err
// when the line has none.
int shard_seq_strip(const char *p, size_t n, uint64_t *seq, struct buf *out,
                    struct json_obj *scratch, struct kerr *err);

#endif

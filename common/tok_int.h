// SPDX-License-Identifier: MIT
// tok_int: the tokenizer's internals shared by tok.c (core, encode, decode, rank files),
// tok_json.c (tokenizer.json and npm encoder JSON) and tok_train.c. Not for stages.
//
// Building a tokenizer: tok_alloc, tok_set_token for each id, tok_index (checks the 256 byte
// tokens, builds the bytes → id map), then either tok_push_merge for each listed merge
// (tokenizer.json, training) or nothing (tiktoken), and tok_finish (builds the pair table;
// tiktoken needs none: a pair's rank is the id of the two tokens' concatenated bytes).
#ifndef KILN_TOK_INT_H
#define KILN_TOK_INT_H

#include "tok.h"

#include <pthread.h>
#include <stdatomic.h>

struct tok_ent {
    uint32_t off, len; // bytes in t->slab
    uint8_t type;      // enum tok_type, 0 = hole
};

struct tok_pair { // open-addressing slot: key (a << 32 | b), 0 = empty (a pair never is 0:0 twice)
    uint64_t key;
    int32_t rank, c;
    bool used;
};

struct tok_bslot { // bytes → id, open addressing
    uint64_t word; // the token's key word (tok.c: key_word): all its bytes when len <= 8
    int32_t id;
    uint32_t len; // 0 = empty slot (no token is empty)
};

struct tok_rank { // rank and result of merging a pair of single-byte tokens
    int32_t rank, res; // INT32_MAX, -1: they do not merge
};

struct tok_merge {
    int32_t a, b, c;
};

struct tok {
    size_t n, cap; // ids 0..n-1; room for cap
    struct tok_ent *ent;
    struct buf slab;
    struct tok_bslot *bmap; // ordinary bytes → id, open addressing (id -1 = empty)
    size_t bmask;
    struct tok_pair *pairs;
    size_t pmask;
    struct tok_rank *byte_pairs; // [256 * 256]: the first merges of every piece, by table
    struct tok_merge *merges; // tiktoken: derived on first use (tok_merges_derive)
    size_t n_merges, cap_merges;
    atomic_bool merges_ready;
    struct tok_pc_ent *cache; // the piece cache all encoders share (tok.c), made on first use
    pthread_mutex_t lazy_lock; // guards making the merge list and the cache
    int32_t byte_id[256];
    bool tiktoken;      // merges derived from the vocabulary, rank = id
    bool ignore_merges; // whole-piece shortcut (always on for tiktoken)
    enum tok_pre pre;
    char *regex; // the regex text as loaded or chosen
    int32_t *spec; // special/added token ids, longest text first
    size_t n_spec;
    bool spec_first[256];
};

struct tok *tok_alloc(enum tok_pre pre, const char *regex);
// Memory for large tables. From 512 KB up it is rounded up to 2 MB, aligned and advised into
// transparent huge pages: touching a 4 MB table page by page costs ~1,000 page faults (~17 ms
// on our virtual machines), and random lookups miss the TLB less.
// tok_big_alloc: not zeroed; free(), realloc() as usual.
// tok_table_alloc: zeroed (fresh pages, zeroed on first touch); free with tok_table_free and
// the same size.
void *tok_big_alloc(size_t bytes);
void *tok_table_alloc(size_t bytes);
void tok_table_free(void *p, size_t bytes);
// Sets id to bytes s[0..n) of the given type (ids may come in any order; holes stay holes).
// -1 with err when the id is already set.
int tok_set_token(struct tok *t, int32_t id, const char *s, size_t n, enum tok_type type,
                  struct kerr *err);
// Room for about `ids` ids and `bytes` bytes of tokens, allocated once (tok_table_alloc) when
// nothing is allocated yet — loaders that know their size skip the growth copies.
void tok_reserve(struct tok *t, size_t ids, size_t bytes);
int tok_index(struct tok *t, struct kerr *err);
// Adds ordinary token id to the bytes map (the caller keeps the map under half full); -1, or
// the id already holding the same bytes (then nothing is added).
int32_t tok_bmap_put(struct tok *t, int32_t id);
void tok_push_merge(struct tok *t, int32_t a, int32_t b, int32_t c);
int tok_finish(struct tok *t, bool tiktoken, bool ignore_merges, struct kerr *err);
// Makes t->merges complete: a tiktoken vocabulary derives its merge list on first use (encoding
// never needs it, so loading skips it). Safe to call from several threads.
void tok_merges_derive(const struct tok *t);

// Appends the byte-level (byte-to-unicode) form of bytes s[0..n).
void tok_bytes_to_unicode(const char *s, size_t n, struct buf *out);
// Converts byte-level text back to bytes; -1 when a character is outside the map.
int tok_unicode_to_bytes(const char *s, size_t n, struct buf *out);

// Adds token `rank` from its base64 text s[0..n) (tiktoken files), decoding straight into the
// slab. On a base64 error *bad is the offset of the offending character. 0 or -1 with err.
int tok_add_b64_token(struct tok *t, const char *s, size_t n, int64_t rank, size_t *bad,
                      struct kerr *err);
// How many bytes of s[0..n) are c.
size_t tok_count_byte(const char *s, size_t n, char c);
// The fast path of the npm encoder JSON's "bpe_ranks": adds the space-separated base64 items
// of s[i..n) as tokens *rank, *rank + 1, ... while they are well-formed and their ids free;
// returns where it stopped (n, a "!" item, or an item the caller's item-by-item loop must
// judge: the errors and their positions are that loop's).
size_t tok_add_b64_items(struct tok *t, const char *s, size_t n, size_t i, int64_t *rank);

#endif

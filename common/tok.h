// SPDX-License-Identifier: MIT
// tok: byte-level BPE tokenizers as GPT-2, tiktoken and Hugging Face `tokenizers` define them —
// loading (HF tokenizer.json with either merge form, tiktoken rank files, the npm `tiktoken`
// encoder JSON), saving tokenizer.json, encoding, decoding, training, and the vocabulary view
// that GGUF export needs.
//
// Model. A token is a byte string with an id. Ordinary tokens are merged by rank: the encoder
// splits text with a pre-tokenizer (a preset, hand-written to give exactly its regex's pieces,
// or a custom PCRE2 regex), maps each piece to single-byte tokens and repeatedly merges the
// adjacent pair with the lowest merge rank (leftmost on ties). Where the merge table comes from:
//   - tiktoken (rank files, npm JSON): any pair whose concatenation is a token merges, with
//     rank = that token's id; a piece that is itself a token is emitted whole;
//   - tokenizer.json: the listed merges, rank = position in the list; the whole-piece shortcut
//     only when the model says "ignore_merges": true.
// Special (added) tokens are never produced from ordinary text unless the caller allows it
// (TOK_ALLOW_SPECIAL), in which case their literal text anywhere in the input becomes their id.
//
// Threads: a struct tok is immutable after loading and may be shared (the merge list of a
// tiktoken vocabulary is derived on first use, under a lock); each thread encodes with its own
// struct tok_enc, and the encoders of one tokenizer share a cache of encoded pieces.
#ifndef KILN_TOK_H
#define KILN_TOK_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Pre-tokenizer presets. Each has a hand-written splitter equal to its regex.
enum tok_pre {
    TOK_PRE_GPT2,   // GPT-2 / r50k (HF ByteLevel use_regex)
    TOK_PRE_CL100K, // cl100k_base
    TOK_PRE_O200K,  // o200k_base
    TOK_PRE_LLAMA3, // Llama 3 = the original cl100k form (tiktoken JSON pat_str)
    TOK_PRE_CUSTOM, // a user regex through common/regex
};

// The regex of a preset (tiktoken's current, possessive form).
const char *tok_pre_regex_of(enum tok_pre p);
// Preset by name ("gpt2", "cl100k", "cl100k_base", "o200k", "o200k_base", "llama3");
// -1 when unknown.
int tok_pre_from_name(const char *name);
// Preset whose regex (any known spelling: current, original, HF's) equals pattern; -1 if none.
int tok_pre_from_regex(const char *pattern);
const char *tok_pre_name_of(enum tok_pre p);
// Parses a pattern option: a preset name, a preset's regex, or a custom regex (anything with a
// regex metacharacter). Returns 0 with *pre and *regex (the preset's text, or s), or -1 with
// err "unknown pattern 'x' (...)".
int tok_pattern_parse(const char *s, enum tok_pre *pre, const char **regex, struct kerr *err);

struct tok;

// ---- loading and saving --------------------------------------------------------------------
// Every loader returns a new tokenizer (free with tok_del) or NULL with err
// "name:line:col: what" (name is the file name used in messages).

// Reads a file and picks the loader by content: a JSON object with "bpe_ranks" is the npm
// encoder JSON, one with "model" is tokenizer.json; anything else is a tiktoken rank file, which
// needs a pattern (preset name or regex; NULL = "cl100k").
struct tok *tok_load_file(const char *path, const char *pattern, struct kerr *err);
struct tok *tok_load_hf(const char *s, size_t n, const char *name, struct kerr *err);
struct tok *tok_load_tiktoken(const char *s, size_t n, const char *name, const char *pattern,
                              struct kerr *err);
struct tok *tok_load_npm(const char *s, size_t n, const char *name, struct kerr *err);
void tok_del(struct tok *t);

// Adds a special token (text → id; id may be new or the id of an existing hole). Used for
// rank files, whose specials live outside the file. 0, or -1 with err (id taken, duplicate).
int tok_add_special(struct tok *t, const char *text, int32_t id, struct kerr *err);

// Appends the tokenizer as HF tokenizer.json (deterministic bytes; merges as [a, b] pairs;
// pre_tokenizer ByteLevel for gpt2, Split(regex, Isolated) + ByteLevel otherwise).
void tok_save_hf(const struct tok *t, struct buf *out);

// ---- encoding and decoding -----------------------------------------------------------------

struct tok_ids {
    int32_t *v;
    size_t n, cap;
};
void tok_ids_push(struct tok_ids *ids, int32_t id);
void tok_ids_free(struct tok_ids *ids);

enum {
    TOK_ALLOW_SPECIAL = 1, // literal special-token text in the input becomes the control token
};

struct tok_enc;
struct tok_enc *tok_enc_new(const struct tok *t);
void tok_enc_del(struct tok_enc *e);
// Appends the ids of s[0..n) to out. Any bytes are accepted (invalid UTF-8 is split into
// single-byte pieces). Returns 0, or -1 with err (a custom regex failed to match).
int tok_encode(struct tok_enc *e, const char *s, size_t n, int flags, struct tok_ids *out,
               struct kerr *err);
// Appends the bytes of ids to out. Returns 0, or -1 with err naming the first unknown id.
int tok_decode(const struct tok *t, const int32_t *ids, size_t n, struct buf *out,
               struct kerr *err);

// ---- vocabulary ----------------------------------------------------------------------------

enum tok_type { // GGUF token types
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER = 4, // added token that is not special
    TOK_TYPE_UNUSED = 5,
};

// Ids run 0..tok_vocab_size()-1; an id with no token (a hole in a rank file) is TOK_TYPE_UNUSED.
size_t tok_vocab_size(const struct tok *t);
// Raw bytes of a token (NULL with *len 0 for a hole).
const char *tok_token_bytes(const struct tok *t, int32_t id, size_t *len);
// Appends the token in byte-to-unicode form (specials: their text; holes: "[UNUSED<id>]").
void tok_token_unicode(const struct tok *t, int32_t id, struct buf *out);
enum tok_type tok_token_type(const struct tok *t, int32_t id);
// Id of a token given its bytes (ordinary or special), -1 when absent.
int32_t tok_token_id(const struct tok *t, const char *s, size_t n);
// Id of a special token given its text, -1 when absent.
int32_t tok_special_id(const struct tok *t, const char *text);
// Merges in rank order: merge i joins tokens *a and *b into *c. For tiktoken vocabularies the
// list is derived (the pair each multi-byte token is built from), one per token.
size_t tok_merge_count(const struct tok *t);
void tok_merge_get(const struct tok *t, size_t i, int32_t *a, int32_t *b, int32_t *c);
enum tok_pre tok_pre_kind(const struct tok *t);
// The GGUF tokenizer.ggml.pre value llama.cpp knows for a preset: "gpt-2", "llama-bpe" (llama3;
// also cl100k, whose regex differs only in how a whitespace run with a line break at the very
// end of the text is split, which gave identical ids on every case we tried), "gpt-4o"
// (o200k); NULL for a custom regex.
const char *tok_pre_gguf_name(enum tok_pre p);
const char *tok_pre_regex(const struct tok *t); // the regex text in use

// The GPT-2 byte-to-unicode map: the code point byte b is shown as (U+0021.. or U+0100..).
uint32_t tok_byte_to_cp(uint8_t b);
// Inverse: the byte of code point cp, -1 when cp is not in the map.
int tok_cp_to_byte(uint32_t cp);

// ---- pre-tokenizer -------------------------------------------------------------------------
// Splits s[0..n) into pieces; calls fn(arg, piece, len) for each in order. Invalid UTF-8 bytes
// become pieces of their own (custom regex) or behave as punctuation (presets).
// Returns 0, or -1 with err. One struct tok_split per thread.
struct tok_split;
struct tok_split *tok_split_new(enum tok_pre p, const char *regex, struct kerr *err);
void tok_split_del(struct tok_split *sp);
typedef void (*tok_piece_fn)(void *arg, const char *p, size_t n);
int tok_split_run(struct tok_split *sp, const char *s, size_t n, tok_piece_fn fn, void *arg,
                  struct kerr *err);
// Forces the regex path for a preset (tests compare it with the hand-written splitter).
struct tok_split *tok_split_new_regex(enum tok_pre p, struct kerr *err);

// ---- training ------------------------------------------------------------------------------
// Hugging Face BpeTrainer semantics: ids are the specials (in the given order), then the 256
// byte symbols in code point order of their byte-to-unicode form, then one per merge; the
// most frequent adjacent pair is merged first, ties broken by the smaller (left id, right id);
// training stops at vocab_size or when the best count is below min_frequency.
struct tok_train_opts {
    size_t vocab_size;
    uint64_t min_frequency; // 0 or 1: no limit
    const char *const *specials;
    size_t n_specials;
    enum tok_pre pre;
    const char *regex; // TOK_PRE_CUSTOM only
};
struct tok_trainer;
struct tok_trainer *tok_trainer_new(const struct tok_train_opts *o, struct kerr *err);
// Pre-tokenizes text and adds its pieces to the word counts. 0 or -1 with err.
int tok_trainer_add(struct tok_trainer *tr, const char *s, size_t n, struct kerr *err);
// Runs the merges; returns the tokenizer (and frees the trainer's counts) or NULL with err.
struct tok *tok_trainer_finish(struct tok_trainer *tr, struct kerr *err);
void tok_trainer_del(struct tok_trainer *tr);
// Distinct words counted so far (for stats).
size_t tok_trainer_words(const struct tok_trainer *tr);

#endif

// SPDX-License-Identifier: MIT
// json: the one strict RFC 8259 JSON parser and writer of kiln.
//
// Records are JSON objects, one per line. The parser validates a whole document strictly
// (grammar, UTF-8 in strings, control characters, escapes, surrogate pairs, nesting depth,
// duplicate keys) and builds an index of the *top-level* fields only: for each field, the raw
// key bytes and the raw value bytes as they appear in the input. Values are unescaped or
// converted only when a stage asks (json_str, json_int, ...). Nested values are reached with
// dotted paths ("metadata.url"), parsed on demand from the already validated bytes.
//
// The writer re-emits a record with fields added, replaced or removed while every other field
// passes through byte for byte and in order (json_obj_rewrite), or builds documents from
// scratch (struct json_writer) with deterministic number formatting.
//
// Policy, chosen for "never silently wrong":
//   - duplicate keys in any object are an error;
//   - a lone surrogate escape (\ud800 without its pair) is an error (it has no UTF-8 form);
//   - invalid UTF-8 (overlong, surrogates, > U+10FFFF, truncated) is an error;
//   - nesting deeper than JSON_MAX_DEPTH is an error;
//   - leading/trailing JSON whitespace around the object is allowed; anything else is not.
#ifndef KILN_JSON_H
#define KILN_JSON_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 256

enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

// A value inside a validated document. For strings, raw includes the quotes.
struct json_val {
    enum json_type type;
    const char *raw;
    size_t raw_len;
    bool escaped; // strings only: contains at least one backslash escape
};

// A top-level field: raw key bytes between the quotes (still escaped) and its value.
struct json_field {
    const char *key;
    size_t key_len;
    bool key_escaped;
    struct json_val val;
};

// A parsed object. Points into the caller's bytes, which must outlive it. Embed it, zero it or
// json_obj_init(); json_obj_parse() may be called repeatedly (memory is reused, nothing is
// allocated per record once warm); json_obj_free().
struct json_obj {
    const char *src; // the object's bytes, '{' to '}' (surrounding whitespace excluded)
    size_t len;
    struct json_field *fields;
    size_t n, cap;
    struct json_scratch *scratch; // the parser's reusable working memory (private)
};

// Where parsing failed: byte offset into the document (0-based) and a message such as
// "expected ',' or '}'" or "invalid UTF-8 in string". Column = offset + 1.
struct json_error {
    size_t offset;
    char msg[160];
};

void json_obj_init(struct json_obj *o);
void json_obj_free(struct json_obj *o);

// Validates s[0..n) as one JSON object and indexes its top-level fields (in document order).
// s need not be NUL-terminated. Returns 0, or -1 with *e filled (the object is then empty;
// e may be NULL).
int json_obj_parse(struct json_obj *o, const char *s, size_t n, struct json_error *e);

// Validates any JSON value (used for whole files such as tokenizer.json, config.json) and
// returns it in *out. Returns 0 or -1 with *e.
int json_parse_value(const char *s, size_t n, struct json_val *out, struct json_error *e);

// Top-level lookup by (unescaped) key. NULL when absent.
const struct json_field *json_obj_get(const struct json_obj *o, const char *key);

// Dotted-path lookup: "text", "metadata.url", "a.b.c" (object members only; a key that itself
// contains '.' cannot be reached this way: use json_val_member). Returns true and fills *out
// when found. A path segment that is not an object yields false.
bool json_obj_path(const struct json_obj *o, const char *path, struct json_val *out);

// Member lookup inside an object value (validated): true and *out when found.
bool json_val_member(const struct json_val *obj, const char *key, size_t key_len,
                     struct json_val *out);

// Iteration over a validated object or array value without building an index.
// Usage: struct json_iter it; json_iter_init(&it, &v); while (json_iter_next(&it)) { it.key ... it.val }
struct json_iter {
    const char *p, *end;
    bool object;
    // Current element: for objects the raw key (escaped, without quotes); for arrays key is NULL.
    const char *key;
    size_t key_len;
    bool key_escaped;
    struct json_val val;
    size_t index;
};
void json_iter_init(struct json_iter *it, const struct json_val *container);
bool json_iter_next(struct json_iter *it);

// Appends the unescaped UTF-8 bytes of a string value to out (appends nothing unless
// v->type == JSON_STRING). "\u0000" unescapes to a NUL byte: use out->len, not strlen.
void json_str(const struct json_val *v, struct buf *out);
// Unescapes raw string contents (between quotes) into out. Meant for validated strings; on
// invalid escapes it stays in bounds and deterministic (a lone surrogate becomes U+FFFD).
void json_unescape(const char *raw, size_t n, struct buf *out);
// True when the string value equals s exactly (after unescaping).
bool json_str_eq(const struct json_val *v, const char *s, size_t n);

// Numbers. Return 0 on success, -1 when v is not a number or does not fit (int64: must be an
// integer literal without fraction/exponent, or an exact integer value ≤ 2^53 in other forms
// such as 1.0 or 1.5e1; double: -1 when the value overflows, e.g. 1e400; underflow gives 0).
int json_int(const struct json_val *v, int64_t *out);
int json_double(const struct json_val *v, double *out);

// ---- writing ---------------------------------------------------------------------------

// Appends s[0..n) as a JSON string literal (quotes included). Escapes '"', '\\', control
// characters (\n \r \t \b \f, others \u00XX); non-ASCII UTF-8 is copied as is. Input must be
// valid UTF-8 (callers that take arbitrary bytes validate or repair first; see utf8_* below).
void json_write_str(struct buf *out, const char *s, size_t n);
// Shortest representation that round-trips (%.17g fallback), deterministic; NaN/Inf are
// written as null (JSON has no form for them).
void json_write_double(struct buf *out, double x);
void json_write_int(struct buf *out, int64_t x);

// Streaming writer with automatic commas. Embed; json_writer_init(&w, &buf) appends to buf.
struct json_writer {
    struct buf *out;
    int depth;
    bool first[JSON_MAX_DEPTH + 1]; // no element written yet at this depth
    bool after_key;
};
void json_writer_init(struct json_writer *w, struct buf *out);
void jw_obj_begin(struct json_writer *w);
void jw_obj_end(struct json_writer *w);
void jw_arr_begin(struct json_writer *w);
void jw_arr_end(struct json_writer *w);
void jw_key(struct json_writer *w, const char *key); // key must be plain (no escaping needed is not assumed: it is escaped)
void jw_str(struct json_writer *w, const char *s);
void jw_strn(struct json_writer *w, const char *s, size_t n);
void jw_int(struct json_writer *w, int64_t x);
void jw_uint(struct json_writer *w, uint64_t x);
void jw_double(struct json_writer *w, double x);
void jw_bool(struct json_writer *w, bool x);
void jw_null(struct json_writer *w);
void jw_raw(struct json_writer *w, const char *raw, size_t n); // an already-serialized value

// Re-emits o with edits applied, appending one line's bytes (no newline) to out.
// An edit with raw != NULL sets the field to that serialized JSON value: in place if the key
// exists, appended after the last field otherwise. raw == NULL removes the field. Untouched
// fields are copied byte for byte, in order (from the key's opening quote to the value's end;
// the separators between fields become a bare ','). Keys match after unescaping; when several
// edits name the same key the last one wins; new keys are appended in the order of their
// last edit. With no edits the output is the object's bytes with surrounding whitespace
// trimmed (o->src, o->len).
struct json_edit {
    const char *key;
    const char *raw;
    size_t raw_len;
};
void json_obj_rewrite(const struct json_obj *o, const struct json_edit *edits, size_t n_edits,
                      struct buf *out);

// ---- UTF-8 helpers (shared by every module that handles text) -----------------------------

// Length of the longest valid UTF-8 prefix of s[0..n) (== n when all valid).
size_t utf8_valid_prefix(const char *s, size_t n);
// Appends s with each invalid byte replaced by U+FFFD; returns the number of replacements.
size_t utf8_repair(const char *s, size_t n, struct buf *out);

#endif

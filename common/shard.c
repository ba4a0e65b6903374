// SPDX-License-Identifier: MIT
// shard: shard assignment by id hash and the "_kiln_seq" tag that carries a record's input
// position through a sharded run. See shard.h.
#include "shard.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

uint32_t
shard_of(const struct json_obj *o, const char *id_path, uint64_t seq, uint32_t n,
         struct buf *scratch)
{
    struct json_val v;
    uint64_t h;
    if (json_obj_path(o, id_path, &v) && v.type == JSON_STRING) {
        buf_reset(scratch);
        json_str(&v, scratch);
        h = hash64_seed(scratch->p, scratch->len, SHARD_SEED);
    } else if (json_obj_path(o, id_path, &v) && v.type == JSON_NUMBER) {
        h = hash64_seed(v.raw, v.raw_len, SHARD_SEED);
    } else {
        h = hash_mix64(seq ^ SHARD_SEED);
    }
    return (uint32_t)(h % n);
}

int
shard_seq_tag(const char *p, size_t n, const struct json_obj *o, uint64_t seq,
              struct buf *out, struct kerr *err)
{
    size_t brace = (size_t)(o->src - p); // o->src is the '{' inside the line
    if (json_obj_get(o, SHARD_SEQ_KEY))
        return kerr_set(err, "record already has a \"%s\" member (is this a shard?)",
                        SHARD_SEQ_KEY);
    buf_append(out, p, brace + 1);
    buf_printf(out, "\"" SHARD_SEQ_KEY "\":%llu", (unsigned long long)seq);
    if (o->n > 0)
        buf_putc(out, ',');
    buf_append(out, o->src + 1, n - brace - 1); // everything after '{'
    return 0;
}

static int
parse_seq(const char *p, size_t n, uint64_t *seq)
{
    if (n == 0 || n > 19 || (n > 1 && p[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *seq = v;
    return 0;
}

int
shard_seq_get(const struct json_obj *o, uint64_t *seq, struct kerr *err)
{
    const struct json_field *f = json_obj_get(o, SHARD_SEQ_KEY);
    if (!f)
        return kerr_set(err, "record has no \"%s\" member (not a shard made by `shard split`)",
                        SHARD_SEQ_KEY);
    if (f->val.type != JSON_NUMBER || parse_seq(f->val.raw, f->val.raw_len, seq) != 0)
        return kerr_set(err, "\"%s\" is not a sequence number", SHARD_SEQ_KEY);
    return 0;
}

// Where the sequence member leads the object: 1 with *seq and *end (the index after its
// value) set, else 0.
static int
seq_front(const char *p, size_t n, uint64_t *seq, size_t *lead, size_t *end)
{
    static const char key[] = "{\"" SHARD_SEQ_KEY "\":";
    size_t klen = sizeof key - 1, l = 0;
    while (l < n && (p[l] == ' ' || p[l] == '\t'))
        l++;
    if (n - l <= klen || memcmp(p + l, key, klen) != 0)
        return 0;
    size_t d = l + klen, e = d;
    while (e < n && p[e] >= '0' && p[e] <= '9')
        e++;
    if (e == n || (p[e] != ',' && p[e] != '}') || parse_seq(p + d, e - d, seq) != 0)
        return 0;
    *lead = l;
    *end = e;
    return 1;
}

int
shard_seq_peek(const char *p, size_t n, uint64_t *seq)
{
    size_t lead, end;
    return seq_front(p, n, seq, &lead, &end);
}

int
shard_seq_strip(const char *p, size_t n, uint64_t *seq, struct buf *out,
                struct json_obj *scratch, struct kerr *err)
{
    size_t lead, end;
    if (seq_front(p, n, seq, &lead, &end)) {
        buf_append(out, p, lead + 1); // leading blanks and '{'
        size_t rest = p[end] == ',' ? end + 1 : end;
        buf_append(out, p + rest, n - rest);
        return 0;
    }
    // Moved by a stage: parse and cut the member out with one separating comma.
    struct json_error je;
    if (json_obj_parse(scratch, p, n, &je) != 0)
        return kerr_set(err, "invalid JSON at column %zu: %s", je.offset + 1, je.msg);
    if (shard_seq_get(scratch, seq, err) != 0)
        return -1;
    const struct json_field *f = json_obj_get(scratch, SHARD_SEQ_KEY);
    size_t b = (size_t)(f->key - 1 - p), e = (size_t)(f->val.raw + f->val.raw_len - p);
    size_t c = e; // a following comma (with blanks before it) goes with the member
    while (c < n && (p[c] == ' ' || p[c] == '\t' || p[c] == '\n' || p[c] == '\r'))
        c++;
    if (c < n && p[c] == ',') {
        e = c + 1;
        while (e < n && (p[e] == ' ' || p[e] == '\t'))
            e++;
    } else { // the last member: take the comma before it
        size_t a = b;
        while (a > 0 && p[a - 1] != ',' && p[a - 1] != '{')
            a--;
        if (a > 0 && p[a - 1] == ',')
            b = a - 1;
    }
    buf_append(out, p, b);
    buf_append(out, p + e, n - e);
    return 0;
}

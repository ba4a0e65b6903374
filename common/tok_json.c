// SPDX-License-Identifier: MIT
// tok_json: tokenizers in JSON — Hugging Face tokenizer.json (read and written) and the npm
// `tiktoken` package's encoder JSON (read), plus tok_load_file, which picks the loader.
//
// tokenizer.json support is the byte-level BPE subset: model.type "BPE" without dropout,
// unk_token, subword prefix/suffix or byte fallback; normalizer null; pre_tokenizer ByteLevel
// (use_regex true, no prefix space) or Sequence[Split(Regex, "Isolated"), ByteLevel(use_regex
// false)]. Anything else is refused with the position of the offending value rather than
// tokenized differently from Hugging Face. Merges are read in both forms ("a b" and ["a","b"])
// and written as pairs. Writing is deterministic: save → load → save gives identical bytes.
//
// npm encoder JSON: {"pat_str": regex, "special_tokens": {text: id}, "bpe_ranks": "! 0 IQ== Ig==
// ..."}, where "! N" sets the next rank and each base64 token takes the next rank.
#include "tok_int.h"

#include "json.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

// "name:line:col: " for a byte offset into the document.
static int
pos_err(struct kerr *err, const char *name, const char *doc, const char *at, const char *what)
{
    size_t line = 1, col = 1;
    for (const char *p = doc; p < at; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*p & 0xC0) != 0x80) {
            col++;
        }
    }
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", what); // what may be err->msg itself
    return kerr_set(err, "%s:%zu:%zu: %s", name, line, col, msg);
}

static bool
member(const struct json_val *obj, const char *key, struct json_val *out)
{
    return json_val_member(obj, key, strlen(key), out);
}

// Optional member that must be null, absent, false or an empty string.
static bool
is_off(const struct json_val *obj, const char *key, const struct json_val **bad,
       struct json_val *tmp)
{
    if (!member(obj, key, tmp))
        return true;
    if (tmp->type == JSON_NULL || tmp->type == JSON_FALSE)
        return true;
    if (tmp->type == JSON_STRING && tmp->raw_len == 2)
        return true;
    *bad = tmp;
    return false;
}

static bool
str_is(const struct json_val *v, const char *s)
{
    return v->type == JSON_STRING && json_str_eq(v, s, strlen(s));
}

static bool
bool_member(const struct json_val *obj, const char *key, bool dflt)
{
    struct json_val v;
    if (!member(obj, key, &v))
        return dflt;
    return v.type == JSON_TRUE ? true : v.type == JSON_FALSE ? false : dflt;
}

// Reads pre_tokenizer into *pre and the regex text into *regex (a buf). 0 or -1 with err.
static int
hf_pre(const struct json_val *pt, const char *name, const char *doc, enum tok_pre *pre,
       struct buf *regex, struct kerr *err)
{
    struct json_val type, v;
    if (pt->type != JSON_OBJECT || !member(pt, "type", &type))
        return pos_err(err, name, doc, pt->raw, "pre_tokenizer: expected an object with \"type\"");
    if (str_is(&type, "ByteLevel")) {
        if (!bool_member(pt, "use_regex", true))
            return pos_err(err, name, doc, pt->raw,
                           "pre_tokenizer: ByteLevel without use_regex is not supported");
        if (bool_member(pt, "add_prefix_space", false))
            return pos_err(err, name, doc, pt->raw,
                           "pre_tokenizer: add_prefix_space is not supported");
        *pre = TOK_PRE_GPT2;
        buf_puts(regex, tok_pre_regex_of(TOK_PRE_GPT2));
        return 0;
    }
    if (!str_is(&type, "Sequence") || !member(pt, "pretokenizers", &v) || v.type != JSON_ARRAY)
        return pos_err(err, name, doc, pt->raw,
                       "pre_tokenizer: expected ByteLevel or Sequence[Split, ByteLevel]");
    struct json_iter it;
    json_iter_init(&it, &v);
    struct json_val split = {0}, bl = {0};
    int k = 0;
    while (json_iter_next(&it)) {
        if (k == 0)
            split = it.val;
        else if (k == 1)
            bl = it.val;
        k++;
    }
    struct json_val t1, t2, pat, re, beh;
    if (k != 2 || !member(&split, "type", &t1) || !str_is(&t1, "Split") ||
        !member(&bl, "type", &t2) || !str_is(&t2, "ByteLevel"))
        return pos_err(err, name, doc, v.raw,
                       "pre_tokenizer: expected Sequence[Split, ByteLevel]");
    if (bool_member(&bl, "use_regex", true) || bool_member(&bl, "add_prefix_space", false))
        return pos_err(err, name, doc, bl.raw,
                       "pre_tokenizer: the ByteLevel after Split must have use_regex false and no "
                       "prefix space");
    if (!member(&split, "behavior", &beh) || !str_is(&beh, "Isolated") ||
        bool_member(&split, "invert", false))
        return pos_err(err, name, doc, split.raw,
                       "pre_tokenizer: only Split behavior \"Isolated\" without invert is "
                       "supported");
    if (!member(&split, "pattern", &pat) || !member(&pat, "Regex", &re) ||
        re.type != JSON_STRING)
        return pos_err(err, name, doc, split.raw,
                       "pre_tokenizer: Split needs a {\"Regex\": ...} pattern");
    json_str(&re, regex);
    int p = tok_pre_from_regex(regex->p);
    *pre = p >= 0 ? (enum tok_pre)p : TOK_PRE_CUSTOM;
    return 0;
}

struct tok *
tok_load_hf(const char *s, size_t n, const char *name, struct kerr *err)
{
    struct json_val doc, model, vocab, merges, v, added;
    const struct json_val *bad = NULL;
    struct json_error je;
    struct tok *t = NULL;
    struct buf regex = {0}, key = {0}, bytes = {0}, b2 = {0};
    if (json_parse_value(s, n, &doc, &je) < 0) {
        pos_err(err, name, s, s + je.offset, je.msg);
        return NULL;
    }
    if (doc.type != JSON_OBJECT || !member(&doc, "model", &model) || model.type != JSON_OBJECT) {
        pos_err(err, name, s, doc.raw, "expected an object with a \"model\" object");
        return NULL;
    }
    if (member(&model, "type", &v) && !str_is(&v, "BPE")) {
        pos_err(err, name, s, v.raw, "model type is not \"BPE\"");
        return NULL;
    }
    struct json_val tmp;
    const char *off_keys[] = {"dropout", "unk_token", "continuing_subword_prefix",
                              "end_of_word_suffix", "byte_fallback"};
    for (size_t i = 0; i < KILN_ARRAY_LEN(off_keys); i++)
        if (!is_off(&model, off_keys[i], &bad, &tmp)) {
            struct buf m = {0};
            buf_printf(&m, "model.%s is not supported (byte-level BPE only)", off_keys[i]);
            pos_err(err, name, s, bad->raw, m.p);
            buf_free(&m);
            return NULL;
        }
    if (member(&doc, "normalizer", &v) && v.type != JSON_NULL) {
        pos_err(err, name, s, v.raw, "normalizer is not supported (must be null)");
        return NULL;
    }
    enum tok_pre pre = TOK_PRE_GPT2;
    if (!member(&doc, "pre_tokenizer", &v) || v.type == JSON_NULL) {
        pos_err(err, name, s, doc.raw, "pre_tokenizer missing (byte-level BPE needs one)");
        return NULL;
    }
    if (hf_pre(&v, name, s, &pre, &regex, err) < 0)
        goto fail;
    if (pre == TOK_PRE_CUSTOM) {
        struct tok_split *sp = tok_split_new(pre, regex.p, err);
        if (!sp) {
            kerr_prefix(err, "%s", name);
            goto fail;
        }
        tok_split_del(sp);
    }
    t = tok_alloc(pre, regex.p);
    if (!member(&model, "vocab", &vocab) || vocab.type != JSON_OBJECT) {
        pos_err(err, name, s, model.raw, "model.vocab: expected an object");
        goto fail;
    }
    // Added tokens first: their ids are taken out of the byte-level vocabulary.
    if (member(&doc, "added_tokens", &added)) {
        if (added.type != JSON_ARRAY) {
            pos_err(err, name, s, added.raw, "added_tokens: expected an array");
            goto fail;
        }
        struct json_iter it;
        json_iter_init(&it, &added);
        while (json_iter_next(&it)) {
            struct json_val id, content;
            int64_t idv;
            if (!member(&it.val, "id", &id) || json_int(&id, &idv) < 0 ||
                !member(&it.val, "content", &content) || content.type != JSON_STRING) {
                pos_err(err, name, s, it.val.raw, "added token: expected {\"id\": int, "
                                                  "\"content\": string}");
                goto fail;
            }
            buf_reset(&key);
            json_str(&content, &key);
            enum tok_type ty = bool_member(&it.val, "special", false) ? TOK_TYPE_CONTROL
                                                                      : TOK_TYPE_USER;
            if (idv < 0 || idv > INT32_MAX ||
                tok_set_token(t, (int32_t)idv, key.p, key.len, ty, err) < 0) {
                if (idv < 0 || idv > INT32_MAX)
                    kerr_set(err, "id out of range");
                pos_err(err, name, s, it.val.raw, err->msg);
                goto fail;
            }
        }
    }
    struct json_iter it;
    json_iter_init(&it, &vocab);
    while (json_iter_next(&it)) {
        int64_t id;
        if (json_int(&it.val, &id) < 0 || id < 0 || id > INT32_MAX) {
            pos_err(err, name, s, it.val.raw, "vocab: expected a non-negative integer id");
            goto fail;
        }
        if ((size_t)id < t->n && (t->ent[id].type == TOK_TYPE_CONTROL ||
                                  t->ent[id].type == TOK_TYPE_USER))
            continue; // the added token
        buf_reset(&key);
        json_unescape(it.key, it.key_len, &key);
        buf_reset(&bytes);
        if (tok_unicode_to_bytes(key.p, key.len, &bytes) < 0) {
            pos_err(err, name, s, it.key - 1, "vocab: token is not in byte-level (GPT-2) form");
            goto fail;
        }
        if (tok_set_token(t, (int32_t)id, bytes.p, bytes.len, TOK_TYPE_NORMAL, err) < 0) {
            pos_err(err, name, s, it.val.raw, err->msg);
            goto fail;
        }
    }
    if (tok_index(t, err) < 0) {
        kerr_prefix(err, "%s", name);
        goto fail;
    }
    if (!member(&model, "merges", &merges) || merges.type != JSON_ARRAY) {
        pos_err(err, name, s, model.raw, "model.merges: expected an array");
        goto fail;
    }
    json_iter_init(&it, &merges);
    while (json_iter_next(&it)) {
        buf_reset(&bytes);
        buf_reset(&b2);
        buf_reset(&key);
        bool ok = false;
        if (it.val.type == JSON_STRING) { // "a b"
            json_str(&it.val, &key);
            const char *sp = memchr(key.p, ' ', key.len);
            ok = sp && !memchr(sp + 1, ' ', key.len - (size_t)(sp + 1 - key.p)) &&
                 tok_unicode_to_bytes(key.p, (size_t)(sp - key.p), &bytes) == 0 &&
                 tok_unicode_to_bytes(sp + 1, key.len - (size_t)(sp + 1 - key.p), &b2) == 0;
        } else if (it.val.type == JSON_ARRAY) { // ["a", "b"]
            struct json_iter jt;
            json_iter_init(&jt, &it.val);
            int k = 0;
            ok = true;
            while (json_iter_next(&jt)) {
                if (jt.val.type != JSON_STRING || k >= 2) {
                    ok = false;
                    break;
                }
                buf_reset(&key);
                json_str(&jt.val, &key);
                if (tok_unicode_to_bytes(key.p, key.len, k ? &b2 : &bytes) < 0)
                    ok = false;
                k++;
            }
            ok = ok && k == 2;
        }
        if (!ok || !bytes.len || !b2.len) {
            pos_err(err, name, s, it.val.raw,
                    "merge: expected \"a b\" or [\"a\", \"b\"] of byte-level tokens");
            goto fail;
        }
        int32_t a = tok_token_id(t, bytes.p, bytes.len), b = tok_token_id(t, b2.p, b2.len);
        buf_append(&bytes, b2.p, b2.len);
        int32_t c = tok_token_id(t, bytes.p, bytes.len);
        if (a < 0 || b < 0 || c < 0 || tok_token_type(t, c) != TOK_TYPE_NORMAL) {
            pos_err(err, name, s, it.val.raw,
                    a < 0 || b < 0 ? "merge: a part is not in the vocabulary"
                                   : "merge: the merged token is not in the vocabulary");
            goto fail;
        }
        tok_push_merge(t, a, b, c);
    }
    if (tok_finish(t, false, bool_member(&model, "ignore_merges", false), err) < 0)
        goto fail;
    buf_free(&regex);
    buf_free(&key);
    buf_free(&bytes);
    buf_free(&b2);
    return t;
fail:
    tok_del(t);
    buf_free(&regex);
    buf_free(&key);
    buf_free(&bytes);
    buf_free(&b2);
    return NULL;
}

// The npm encoder JSON s[0..n), already parsed into doc.
static struct tok *
load_npm_doc(const char *s, const struct json_val *doc, const char *name, struct kerr *err)
{
    struct json_val pat, spec, ranks;
    if (doc->type != JSON_OBJECT || !member(doc, "pat_str", &pat) || pat.type != JSON_STRING ||
        !member(doc, "bpe_ranks", &ranks) || ranks.type != JSON_STRING) {
        pos_err(err, name, s, doc->raw, "expected {\"pat_str\": string, \"bpe_ranks\": string}");
        return NULL;
    }
    struct buf regex = {0}, text = {0};
    struct tok *t = NULL;
    json_str(&pat, &regex);
    enum tok_pre pre;
    const char *re;
    if (tok_pattern_parse(regex.p, &pre, &re, err) < 0) {
        pos_err(err, name, s, pat.raw, err->msg);
        goto fail;
    }
    struct tok_split *sp = tok_split_new(pre, re, err);
    if (!sp) {
        pos_err(err, name, s, pat.raw, err->msg);
        goto fail;
    }
    tok_split_del(sp);
    t = tok_alloc(pre, re);
    // The ranks string has no escapes in practice: it is read in place, and positions inside
    // it are exact then.
    const char *tp = ranks.raw + 1;
    size_t tn = ranks.raw_len - 2;
    if (ranks.escaped) {
        json_str(&ranks, &text);
        tp = text.p;
        tn = text.len;
    }
    const char *base = ranks.escaped ? ranks.raw : ranks.raw + 1;
    tok_reserve(t, tok_count_byte(tp, tn, ' ') + 1, tn / 4 * 3);
    int64_t rank = 0;
    bool want_offset = false;
    for (size_t i = 0; i < tn;) {
        if (!want_offset && (i = tok_add_b64_items(t, tp, tn, i, &rank)) >= tn)
            break;
        const char *space = memchr(tp + i, ' ', tn - i);
        size_t j = space ? (size_t)(space - tp) : tn;
        const char *at = ranks.escaped ? base : base + i;
        if (j == i) {
            pos_err(err, name, s, at, "bpe_ranks: empty item");
            goto fail;
        }
        if (want_offset) {
            int64_t v = 0;
            for (size_t k = i; k < j; k++) {
                if (tp[k] < '0' || tp[k] > '9' || v > (1 << 24)) {
                    pos_err(err, name, s, at, "bpe_ranks: '!' must be followed by a rank");
                    goto fail;
                }
                v = v * 10 + (tp[k] - '0');
            }
            rank = v;
            want_offset = false;
        } else if (j == i + 1 && tp[i] == '!') {
            want_offset = true;
        } else {
            size_t bad = 0; // the item start when the rank is too large
            if (rank >= (1 << 24) ||
                tok_add_b64_token(t, tp + i, j - i, rank, &bad, err) < 0) {
                pos_err(err, name, s, ranks.escaped ? at : at + bad,
                        rank >= (1 << 24) ? "bpe_ranks: rank too large" : err->msg);
                goto fail;
            }
            rank++;
        }
        i = j + (j < tn);
    }
    if (tok_index(t, err) < 0 || tok_finish(t, true, true, err) < 0) {
        kerr_prefix(err, "%s", name);
        goto fail;
    }
    if (member(doc, "special_tokens", &spec)) {
        struct json_iter it;
        json_iter_init(&it, &spec);
        while (json_iter_next(&it)) {
            int64_t id;
            buf_reset(&text);
            json_unescape(it.key, it.key_len, &text);
            if (json_int(&it.val, &id) < 0 || id < 0 || id >= (1 << 24) || text.len == 0) {
                pos_err(err, name, s, it.val.raw, "special token: expected \"text\": id");
                goto fail;
            }
            if (tok_add_special(t, text.p, (int32_t)id, err) < 0) {
                pos_err(err, name, s, it.val.raw, err->msg);
                goto fail;
            }
        }
    }
    buf_free(&regex);
    buf_free(&text);
    return t;
fail:
    tok_del(t);
    buf_free(&regex);
    buf_free(&text);
    return NULL;
}

struct tok *
tok_load_npm(const char *s, size_t n, const char *name, struct kerr *err)
{
    struct json_val doc;
    struct json_error je;
    if (json_parse_value(s, n, &doc, &je) < 0) {
        pos_err(err, name, s, s + je.offset, je.msg);
        return NULL;
    }
    return load_npm_doc(s, &doc, name, err);
}

struct tok *
tok_load_file(const char *path, const char *pattern, struct kerr *err)
{
    struct buf b = {0};
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        // Room for read_file's last 64 KB read: the buffer never grows (a grown buffer's
        // every page would be a page fault again).
        b.cap = (size_t)st.st_size + (1 << 16) + 1;
        b.p = tok_big_alloc(b.cap);
    }
    if (read_file(path, 0, &b, err) < 0) {
        buf_free(&b);
        return NULL;
    }
    size_t i = 0;
    while (i < b.len && (b.p[i] == ' ' || b.p[i] == '\t' || b.p[i] == '\n' || b.p[i] == '\r'))
        i++;
    struct tok *t;
    if (i < b.len && b.p[i] == '{') {
        struct json_val doc, v;
        struct json_error je;
        if (json_parse_value(b.p, b.len, &doc, &je) < 0) {
            pos_err(err, path, b.p, b.p + je.offset, je.msg);
            t = NULL;
        } else if (member(&doc, "bpe_ranks", &v)) {
            t = load_npm_doc(b.p, &doc, path, err);
        } else if (member(&doc, "model", &v)) {
            t = tok_load_hf(b.p, b.len, path, err);
        } else {
            pos_err(err, path, b.p, doc.raw,
                    "neither a tokenizer.json (no \"model\") nor a tiktoken encoder JSON (no "
                    "\"bpe_ranks\")");
            t = NULL;
        }
    } else {
        t = tok_load_tiktoken(b.p, b.len, path, pattern, err);
    }
    buf_free(&b);
    return t;
}

// ---- saving --------------------------------------------------------------------------------

static void
put_str(struct buf *out, const char *s, size_t n)
{
    json_write_str(out, s, n);
}

static void
put_unicode(struct buf *out, struct buf *tmp, const struct tok *t, int32_t id)
{
    buf_reset(tmp);
    tok_token_unicode(t, id, tmp);
    put_str(out, tmp->p, tmp->len);
}

void
tok_save_hf(const struct tok *t, struct buf *out)
{
    tok_merges_derive(t);
    struct buf tmp = {0};
    buf_puts(out, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
                  "  \"added_tokens\": [");
    bool first = true;
    for (size_t id = 0; id < t->n; id++) {
        enum tok_type ty = tok_token_type(t, (int32_t)id);
        if (ty != TOK_TYPE_CONTROL && ty != TOK_TYPE_USER)
            continue;
        buf_printf(out, "%s\n    {\"id\": %zu, \"content\": ", first ? "" : ",", id);
        put_str(out, t->slab.p + t->ent[id].off, t->ent[id].len);
        buf_printf(out, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                        "\"normalized\": false, \"special\": %s}",
                   ty == TOK_TYPE_CONTROL ? "true" : "false");
        first = false;
    }
    buf_puts(out, first ? "],\n" : "\n  ],\n");
    buf_puts(out, "  \"normalizer\": null,\n  \"pre_tokenizer\": ");
    if (t->pre == TOK_PRE_GPT2) {
        buf_puts(out, "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": "
                      "true, \"use_regex\": true},\n");
    } else {
        buf_puts(out, "{\"type\": \"Sequence\", \"pretokenizers\": [\n    {\"type\": \"Split\", "
                      "\"pattern\": {\"Regex\": ");
        put_str(out, t->regex, strlen(t->regex));
        buf_puts(out, "}, \"behavior\": \"Isolated\", \"invert\": false},\n    {\"type\": "
                      "\"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
                      "\"use_regex\": false}\n  ]},\n");
    }
    buf_puts(out, "  \"post_processor\": null,\n  \"decoder\": {\"type\": \"ByteLevel\", "
                  "\"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n");
    buf_printf(out, "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n"
                    "    \"unk_token\": null,\n    \"continuing_subword_prefix\": null,\n"
                    "    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
                    "    \"byte_fallback\": false,\n    \"ignore_merges\": %s,\n    \"vocab\": {",
               t->ignore_merges ? "true" : "false");
    first = true;
    for (size_t id = 0; id < t->n; id++) {
        if (!t->ent[id].type)
            continue;
        buf_puts(out, first ? "\n      " : ",\n      ");
        put_unicode(out, &tmp, t, (int32_t)id);
        buf_printf(out, ": %zu", id);
        first = false;
    }
    buf_puts(out, first ? "},\n    \"merges\": [" : "\n    },\n    \"merges\": [");
    for (size_t i = 0; i < t->n_merges; i++) {
        buf_puts(out, i ? ",\n      [" : "\n      [");
        put_unicode(out, &tmp, t, t->merges[i].a);
        buf_puts(out, ", ");
        put_unicode(out, &tmp, t, t->merges[i].b);
        buf_putc(out, ']');
    }
    buf_puts(out, t->n_merges ? "\n    ]\n  }\n}\n" : "]\n  }\n}\n");
    buf_free(&tmp);
}

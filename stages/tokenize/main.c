// SPDX-License-Identifier: MIT
// tokenize: train, apply and invert byte-level BPE tokenizers on record streams.
//
//   tokenize train  [OPTIONS] [FILE...]   records → tokenizer.json
//   tokenize encode [OPTIONS] [FILE...]   records → records with input_ids (and loss_start)
//   tokenize decode [OPTIONS] [FILE...]   records with input_ids → records with text
//
// Encoding runs in batches: the main thread reads a batch of lines, cuts it into chunks of
// CHUNK_RECORDS consecutive records (where the cuts fall depends on the batch alone), and N
// threads (the main thread and N-1 workers) claim chunks from a counter until none are left,
// each chunk encoded into its own output; then the main thread writes the chunks in input
// order. So the output does not depend on N or timing, and a thread that is slow or
// descheduled on a shared machine holds up one small chunk, not a fixed half of the batch.
// The first error in input order stops the run.
// The tokenizer itself lives in common/tok; this file is options, templates and glue.
#include "cli.h"
#include "json.h"
#include "rec.h"
#include "tok.h"
#include "tok_template.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum mode { MODE_TRAIN, MODE_ENCODE, MODE_DECODE };

struct opts {
    struct cli_common c;
    enum mode mode;
    const char *tokenizer; // tokenizer.json, npm encoder JSON or rank file
    const char *pattern;   // for rank files / training
    const char *field;     // encode/train: text field; decode: ids field
    size_t vocab_size;
    uint64_t min_frequency;
    const char **specials;
    size_t n_specials;
    bool prompt_set, completion_set;
    struct tok_tpl *prompt, *completion; // from common/tok_template, as evaluate uses
    int64_t max_len; // 0 = none
    bool keep_tail;  // truncation keeps the tail of the prompt
    const char *eos; // NULL = default
    bool no_eos;
    bool allow_special;
    bool raw;
    int threads;
};

enum {
    OPT_TOKENIZER = CLI_OPT_FIRST_STAGE,
    OPT_TIKTOKEN,
    OPT_PATTERN,
    OPT_FIELD,
    OPT_VOCAB,
    OPT_MINFREQ,
    OPT_SPECIAL,
    OPT_PROMPT,
    OPT_COMPLETION,
    OPT_MAXLEN,
    OPT_KEEP,
    OPT_EOS,
    OPT_NO_EOS,
    OPT_ALLOW_SPECIAL,
    OPT_RAW,
    OPT_THREADS,
};

static void
usage(FILE *f) {
    fprintf(f, "usage: tokenize train  [OPTIONS] [FILE...]\n"
               "       tokenize encode [OPTIONS] [FILE...]\n"
               "       tokenize decode [OPTIONS] [FILE...]\n"
               "Byte-level BPE (GPT-2 / tiktoken / Hugging Face) on record streams.\n"
               "\n"
               "train: learn a vocabulary from the records' text; writes tokenizer.json.\n"
               "  --vocab-size N        vocabulary size including specials (default 8192)\n"
               "  --min-frequency N     stop when the best pair occurs fewer times (default 2)\n"
               "  --special TOKEN       special token (repeatable; default <|endoftext|> <|pad|>)\n"
               "  --pattern P           pre-tokenizer: gpt2 (default), cl100k, o200k, llama3 or a "
               "regex\n"
               "  --field NAME          text field (default: text, or prompt and completion)\n"
               "\n"
               "encode: add input_ids (and loss_start with a completion template).\n"
               "  --tokenizer FILE      tokenizer.json, npm tiktoken encoder JSON or rank file\n"
               "  --tiktoken FILE       a tiktoken rank file (with --pattern, default cl100k)\n"
               "  --field NAME          text field to encode (default text)\n"
               "  --prompt TEMPLATE     e.g. '{text}\\nLabel:' ({field} substitution, \\n \\t \\\\ "
               "{{ }})\n"
               "  --completion TEMPLATE e.g. ' {label}': the loss starts at its first token\n"
               "  --max-len N           truncate to N tokens; the completion is never cut\n"
               "  --keep head|tail      which end of the prompt/text survives truncation (default "
               "head)\n"
               "  --eos TOKEN           end-of-sequence token (default <|endoftext|>)\n"
               "  --no-eos              do not append one\n"
               "  --allow-special       special-token text in the input becomes the control token\n"
               "                        (default: it is encoded as ordinary text)\n"
               "  --raw                 each FILE is raw bytes, one record {\"input_ids\": [...]}\n"
               "  --threads N           worker threads (default 1); output identical for any N\n"
               "\n"
               "decode: ids (--field, default input_ids) back to text (field text).\n"
               "  --raw                 write the decoded bytes only, no records\n"
               "\n"
               "common: -o FILE, --stats FILE, --level N, --plain, -f, -q, -v, --progress, -h, "
               "--version\n");
}

// --prompt/--completion: parses the template (a repeated option replaces the earlier one).
static struct tok_tpl *
template_opt(struct tok_tpl *old, const char *opt, const char *text) {
    struct kerr err;
    struct tok_tpl *t = tok_tpl_new(text, &err);
    if (!t)
        die_usage("%s: %s", opt, err.msg);
    tok_tpl_del(old);
    return t;
}

// ---- encoding work -----------------------------------------------------------------------

struct batch {
    struct buf data; // the lines, back to back
    size_t *off, *len;
    uint64_t *lineno;
    size_t n, cap;
    const char *name; // input name for messages
};

struct counts {
    uint64_t records, text_bytes, tokens, truncated;
};

#define CHUNK_RECORDS 64

// The results of one chunk, records [from, to) of the batch.
struct chunk {
    size_t from, to;
    struct buf out; // records back to back
    size_t *end;    // per record: end offset in out
    size_t end_cap;
    struct counts cnt;
    size_t err_at; // index of the failing record, SIZE_MAX when none
    struct kerr err;
};

struct worker {
    const struct opts *o;
    const struct tok *t;
    struct tok_enc *enc;
    int32_t eos;
    struct batch *b;
    struct chunk *chunks; // of the batch: n_chunks, claimed through *next
    size_t n_chunks;
    atomic_size_t *next;
    struct chunk *c; // the chunk being encoded
    // scratch
    struct json_obj obj;
    struct buf text, ids_json, num;
    struct tok_ids p_ids, c_ids;
};

// Appends "[a,b,...]" (ids are non-negative; formatted by hand: printf is a hot spot here).
static void
ids_json2(struct buf *out, const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    buf_reserve(out, 12 * (na + nb) + 2);
    char *p = out->p + out->len;
    *p++ = '[';
    for (size_t i = 0; i < na + nb; i++) {
        uint32_t x = (uint32_t)(i < na ? a[i] : b[i - na]);
        char tmp[12];
        int k = 0;
        do {
            tmp[k++] = (char)('0' + x % 10);
            x /= 10;
        } while (x);
        if (i)
            *p++ = ',';
        while (k)
            *p++ = tmp[--k];
    }
    *p++ = ']';
    out->len = (size_t)(p - out->p);
    out->p[out->len] = 0;
}

static void
ids_json(struct buf *out, const int32_t *v, size_t n) {
    ids_json2(out, v, n, NULL, 0);
}

// Encodes record i of the batch into w->c->out. 0, or -1 with w->c->err.
static int
encode_one(struct worker *w, size_t i) {
    const struct opts *o = w->o;
    const struct batch *b = w->b;
    const char *line = b->data.p + b->off[i];
    struct json_error je;
    struct kerr *err = &w->c->err;
    if (json_obj_parse(&w->obj, line, b->len[i], &je) < 0)
        return kerr_set(err, "%s:%llu:%zu: invalid JSON: %s", b->name,
                        (unsigned long long)b->lineno[i], je.offset + 1, je.msg);
    w->p_ids.n = w->c_ids.n = 0;
    int flags = o->allow_special ? TOK_ALLOW_SPECIAL : 0;
    buf_reset(&w->text);
    if (o->prompt_set || o->completion_set) {
        if (tok_tpl_expand(o->prompt, &w->obj, NULL, NULL, &w->text, err) < 0)
            goto template;
        w->c->cnt.text_bytes += w->text.len;
        if (tok_encode(w->enc, w->text.p, w->text.len, flags, &w->p_ids, err) < 0)
            goto located;
        buf_reset(&w->text);
        if (tok_tpl_expand(o->completion, &w->obj, NULL, NULL, &w->text, err) < 0)
            goto template;
    } else {
        struct json_val v;
        if (!json_obj_path(&w->obj, o->field, &v)) {
            kerr_set(err, "field '%s' is missing", o->field);
            goto located;
        }
        if (v.type != JSON_STRING) {
            kerr_set(err, "field '%s' is not a string", o->field);
            goto located;
        }
        json_str(&v, &w->text);
    }
    w->c->cnt.text_bytes += w->text.len;
    // Without a completion the text (or rendered prompt) is the truncatable part.
    if (tok_encode(w->enc, w->text.p, w->text.len, flags, o->completion_set ? &w->c_ids : &w->p_ids,
                   err) < 0)
        goto located;
    if (w->eos >= 0)
        tok_ids_push(o->completion_set ? &w->c_ids : &w->p_ids, w->eos);
    // Truncation: the completion (+EOS) is kept whole; the prompt (or text) gives way. Without
    // a completion, EOS survives truncation too.
    size_t keep_after = w->c_ids.n; // tokens that must survive
    struct tok_ids *cut = &w->p_ids;
    size_t cut_eos = 0;
    if (!o->completion_set && w->eos >= 0 && cut->n) {
        cut_eos = 1; // the last prompt token is EOS: keep it
        keep_after += 1;
    }
    if (o->max_len > 0 && w->p_ids.n + w->c_ids.n > (size_t)o->max_len) {
        if (keep_after > (size_t)o->max_len) {
            kerr_set(err, "the completion alone is %zu tokens, more than --max-len %lld",
                     keep_after, (long long)o->max_len);
            goto located;
        }
        size_t room = (size_t)o->max_len - keep_after; // prompt tokens that fit
        size_t body = cut->n - cut_eos;
        if (o->keep_tail)
            memmove(cut->v, cut->v + (body - room), (room + cut_eos) * sizeof *cut->v);
        else if (cut_eos)
            cut->v[room] = cut->v[body];
        cut->n = room + cut_eos;
        w->c->cnt.truncated++;
    }
    // Output: the record with input_ids (and loss_start) set.
    buf_reset(&w->ids_json);
    ids_json2(&w->ids_json, w->p_ids.v, w->p_ids.n, w->c_ids.v, w->c_ids.n);
    struct json_edit ed[2] = {{"input_ids", w->ids_json.p, w->ids_json.len}, {0}};
    size_t ne = 1;
    if (o->completion_set) {
        buf_reset(&w->num);
        json_write_int(&w->num, (int64_t)w->p_ids.n);
        ed[1] = (struct json_edit){"loss_start", w->num.p, w->num.len};
        ne = 2;
    }
    json_obj_rewrite(&w->obj, ed, ne, &w->c->out);
    w->c->cnt.records++;
    w->c->cnt.tokens += w->p_ids.n + w->c_ids.n;
    return 0;
template:
    kerr_prefix(err, "template");
located:
    kerr_prefix(err, "%s:%llu", b->name, (unsigned long long)b->lineno[i]);
    return -1;
}

static void *
worker_run(void *arg) {
    struct worker *w = arg;
    for (;;) {
        size_t k = atomic_fetch_add(w->next, 1);
        if (k >= w->n_chunks)
            break;
        struct chunk *c = w->c = &w->chunks[k];
        buf_reset(&c->out);
        c->cnt = (struct counts){0};
        c->err_at = SIZE_MAX;
        size_t need = c->to - c->from;
        if (need > c->end_cap) {
            c->end_cap = need;
            c->end = xrealloc(c->end, need * sizeof *c->end);
        }
        for (size_t i = c->from; i < c->to; i++) {
            if (encode_one(w, i) < 0) {
                c->err_at = i;
                break;
            }
            c->end[i - c->from] = c->out.len;
        }
    }
    return NULL;
}

// ---- loading -----------------------------------------------------------------------------

// Rank files carry no special tokens; tiktoken adds them by encoding name. We do the same
// when the pattern and the vocabulary size are those of gpt2, cl100k_base or o200k_base.
static struct tok *
load_tokenizer(const struct opts *o) {
    if (!o->tokenizer)
        die_usage("--tokenizer FILE or --tiktoken FILE is required");
    struct kerr err;
    struct tok *t = tok_load_file(o->tokenizer, o->pattern, &err);
    if (!t)
        die_kerr(&err);
    enum tok_pre pre = tok_pre_kind(t);
    if (tok_special_id(t, "<|endoftext|>") >= 0)
        return t;
    if ((pre == TOK_PRE_CL100K || pre == TOK_PRE_LLAMA3) && tok_vocab_size(t) == 100256) {
        static const struct {
            const char *s;
            int32_t id;
        } cl[] = {{"<|endoftext|>", 100257},
                  {"<|fim_prefix|>", 100258},
                  {"<|fim_middle|>", 100259},
                  {"<|fim_suffix|>", 100260},
                  {"<|endofprompt|>", 100276}};
        for (size_t i = 0; i < KILN_ARRAY_LEN(cl); i++)
            if (tok_add_special(t, cl[i].s, cl[i].id, &err) < 0)
                die_kerr(&err);
    } else if (pre == TOK_PRE_GPT2 && tok_vocab_size(t) == 50256) {
        if (tok_add_special(t, "<|endoftext|>", 50256, &err) < 0)
            die_kerr(&err);
    } else if (pre == TOK_PRE_O200K && tok_vocab_size(t) == 199998) {
        if (tok_add_special(t, "<|endoftext|>", 199999, &err) < 0 ||
            tok_add_special(t, "<|endofprompt|>", 200018, &err) < 0)
            die_kerr(&err);
    }
    return t;
}

static int32_t
eos_id(const struct opts *o, const struct tok *t) {
    if (o->no_eos)
        return -1;
    const char *name = o->eos ? o->eos : "<|endoftext|>";
    int32_t id = tok_special_id(t, name);
    if (id < 0)
        die_usage("end-of-sequence token %s is not a special token of %s (use --eos TOKEN or "
                  "--no-eos)",
                  name, o->tokenizer);
    return id;
}

// ---- encode ------------------------------------------------------------------------------

static void
batch_add(struct batch *b, const struct rec_line *l) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->off = xrealloc(b->off, b->cap * sizeof *b->off);
        b->len = xrealloc(b->len, b->cap * sizeof *b->len);
        b->lineno = xrealloc(b->lineno, b->cap * sizeof *b->lineno);
    }
    b->off[b->n] = b->data.len;
    b->len[b->n] = l->n;
    b->lineno[b->n] = l->lineno;
    buf_append(&b->data, l->p, l->n);
    b->n++;
}

static void
add_counts(struct counts *a, const struct counts *b) {
    a->records += b->records;
    a->text_bytes += b->text_bytes;
    a->tokens += b->tokens;
    a->truncated += b->truncated;
}

static void
write_stats(const struct opts *o, struct stats *st, const struct counts *c) {
    struct kerr err;
    stats_u64(st, "tokens", c->tokens);
    stats_u64(st, "text_bytes", c->text_bytes);
    stats_f64(st, "bytes_per_token", c->tokens ? (double)c->text_bytes / (double)c->tokens : 0);
    stats_u64(st, "truncated", c->truncated);
    if (stats_write(st, o->c.stats, &err) < 0)
        die_kerr(&err);
}

static void
run_raw_encode(const struct opts *o, const struct tok *t, char **files, int nfiles,
               struct rec_writer *out, struct stats *st, struct counts *c) {
    struct kerr err;
    struct tok_enc *enc = tok_enc_new(t);
    int32_t eos = eos_id(o, t);
    struct buf data = {0}, rec = {0};
    struct tok_ids ids = {0};
    for (int f = 0; f < (nfiles ? nfiles : 1); f++) {
        const char *path = nfiles ? files[f] : "/dev/stdin";
        buf_reset(&data);
        if (read_file(path, 0, &data, &err) < 0)
            die_kerr(&err);
        ids.n = 0;
        if (tok_encode(enc, data.p, data.len, o->allow_special ? TOK_ALLOW_SPECIAL : 0, &ids,
                       &err) < 0)
            die("%s: %s", path, err.msg);
        if (eos >= 0)
            tok_ids_push(&ids, eos);
        if (o->max_len > 0 && ids.n > (size_t)o->max_len)
            die("%s: %zu tokens, more than --max-len (raw input is not truncated)", path, ids.n);
        buf_reset(&rec);
        buf_puts(&rec, "{\"input_ids\":");
        ids_json(&rec, ids.v, ids.n);
        buf_putc(&rec, '}');
        if (rec_writer_write(out, rec.p, rec.len, &err) < 0)
            die_kerr(&err);
        st->records_in++;
        st->bytes_in += data.len;
        c->records++;
        c->text_bytes += data.len;
        c->tokens += ids.n;
    }
    tok_ids_free(&ids);
    buf_free(&data);
    buf_free(&rec);
    tok_enc_del(enc);
}

static void
run_encode(const struct opts *o, char **files, int nfiles) {
    struct tok *t = load_tokenizer(o);
    struct kerr err;
    struct rec_wopts wo = {.level = o->c.level, .plain = o->c.plain, .force = o->c.force};
    struct rec_writer *out = rec_writer_open(o->c.output, &wo, &err);
    if (!out)
        die_kerr(&err);
    struct stats st;
    stats_init(&st, "tokenize");
    struct counts total = {0};
    if (o->raw) {
        run_raw_encode(o, t, files, nfiles, out, &st, &total);
    } else {
        int nt = o->threads;
        struct worker *w = xcalloc((size_t)nt, sizeof *w);
        int32_t eos = eos_id(o, t);
        struct batch b = {0};
        for (int k = 0; k < nt; k++) {
            w[k].o = o;
            w[k].t = t;
            w[k].enc = tok_enc_new(t);
            w[k].eos = eos;
            w[k].b = &b;
        }
        pthread_t *th = xcalloc((size_t)nt, sizeof *th);
        struct chunk *chunks = NULL;
        size_t chunks_cap = 0;
        atomic_size_t next;
        struct progress pr;
        progress_init(&pr, &o->c, "records", 0);
        for (int f = 0; f < (nfiles ? nfiles : 1); f++) {
            struct rec_reader *r = rec_reader_open(nfiles ? files[f] : "-", &err);
            if (!r)
                die_kerr(&err);
            b.name = rec_reader_name(r);
            bool eof = false;
            while (!eof) {
                b.n = 0;
                buf_reset(&b.data);
                struct rec_line l;
                while (b.n < 65536 && b.data.len < (8u << 20)) {
                    int rc = rec_reader_next(r, &l, &err);
                    if (rc < 0) {
                        rec_writer_abort(out);
                        die_kerr(&err);
                    }
                    if (rc == 0) {
                        eof = true;
                        break;
                    }
                    batch_add(&b, &l);
                }
                if (!b.n)
                    break;
                size_t n_chunks = (b.n + CHUNK_RECORDS - 1) / CHUNK_RECORDS;
                if (n_chunks > chunks_cap) {
                    chunks = xrealloc(chunks, n_chunks * sizeof *chunks);
                    memset(chunks + chunks_cap, 0, (n_chunks - chunks_cap) * sizeof *chunks);
                    chunks_cap = n_chunks;
                }
                for (size_t k = 0; k < n_chunks; k++) {
                    chunks[k].from = k * CHUNK_RECORDS;
                    chunks[k].to = k + 1 < n_chunks ? (k + 1) * CHUNK_RECORDS : b.n;
                }
                atomic_store(&next, 0);
                for (int k = 0; k < nt; k++) {
                    w[k].chunks = chunks;
                    w[k].n_chunks = n_chunks;
                    w[k].next = &next;
                }
                // Workers 1..nt-1 on their own threads, worker 0 on this one.
                int started = 1;
                for (; started < nt && (size_t)started < n_chunks; started++)
                    if (pthread_create(&th[started], NULL, worker_run, &w[started]) != 0)
                        die("cannot start a thread:");
                worker_run(&w[0]);
                for (int k = 1; k < started; k++)
                    pthread_join(th[k], NULL);
                for (size_t k = 0; k < n_chunks; k++) {
                    struct chunk *c = &chunks[k];
                    if (c->err_at != SIZE_MAX) {
                        rec_writer_abort(out);
                        die_kerr(&c->err);
                    }
                    size_t start = 0;
                    for (size_t i = 0; i < c->to - c->from; i++) {
                        if (rec_writer_write(out, c->out.p + start, c->end[i] - start, &err) < 0) {
                            rec_writer_abort(out);
                            die_kerr(&err);
                        }
                        start = c->end[i];
                    }
                    add_counts(&total, &c->cnt);
                }
                st.records_in += b.n;
                st.bytes_in += b.data.len + b.n;
                progress_update(&pr, st.records_in, st.bytes_in);
            }
            rec_reader_close(r);
        }
        progress_end(&pr);
        for (int k = 0; k < nt; k++) {
            tok_enc_del(w[k].enc);
            json_obj_free(&w[k].obj);
            buf_free(&w[k].text);
            buf_free(&w[k].ids_json);
            buf_free(&w[k].num);
            tok_ids_free(&w[k].p_ids);
            tok_ids_free(&w[k].c_ids);
        }
        for (size_t k = 0; k < chunks_cap; k++) {
            buf_free(&chunks[k].out);
            free(chunks[k].end);
        }
        free(chunks);
        free(w);
        free(th);
        buf_free(&b.data);
        free(b.off);
        free(b.len);
        free(b.lineno);
    }
    st.records_out = rec_writer_records(out);
    st.bytes_out = rec_writer_bytes(out);
    if (rec_writer_close(out, &err) < 0)
        die_kerr(&err);
    if (total.truncated)
        info("%llu of %llu records truncated to --max-len %lld",
             (unsigned long long)total.truncated, (unsigned long long)total.records,
             (long long)o->max_len);
    write_stats(o, &st, &total);
    stats_free(&st);
    tok_del(t);
}

// ---- decode ------------------------------------------------------------------------------

// Next record as a JSON object: 1, 0 at the end, -1 with err "name:line:col: invalid JSON: ...".
static int
next_obj(struct rec_reader *r, struct rec_line *l, struct json_obj *o, struct kerr *err) {
    int rc = rec_reader_next(r, l, err);
    if (rc <= 0)
        return rc;
    struct json_error je;
    if (json_obj_parse(o, l->p, l->n, &je) < 0)
        return kerr_set(err, "%s:%llu:%zu: invalid JSON: %s", rec_reader_name(r),
                        (unsigned long long)l->lineno, je.offset + 1, je.msg);
    return 1;
}

static void
run_decode(const struct opts *o, char **files, int nfiles) {
    struct tok *t = load_tokenizer(o);
    struct kerr err;
    struct rec_wopts wo = {
        .level = o->c.level, .plain = o->c.plain || o->raw, .force = o->c.force || o->raw};
    struct rec_writer *out = rec_writer_open(o->c.output, &wo, &err);
    if (!out)
        die_kerr(&err);
    struct stats st;
    stats_init(&st, "tokenize");
    struct counts c = {0};
    struct json_obj obj = {0};
    struct buf text = {0}, rec = {0}, repaired = {0};
    struct tok_ids ids = {0};
    const char *field = o->field ? o->field : "input_ids";
    uint64_t invalid = 0;
    for (int f = 0; f < (nfiles ? nfiles : 1); f++) {
        struct rec_reader *r = rec_reader_open(nfiles ? files[f] : "-", &err);
        if (!r)
            die_kerr(&err);
        struct rec_line l;
        int rc;
        while ((rc = next_obj(r, &l, &obj, &err)) > 0) {
            st.records_in++;
            st.bytes_in += l.n + 1;
            struct json_val v;
            if (!json_obj_path(&obj, field, &v) || v.type != JSON_ARRAY) {
                rec_writer_abort(out);
                die("%s:%llu: field '%s' is missing or not an array", rec_reader_name(r),
                    (unsigned long long)l.lineno, field);
            }
            ids.n = 0;
            struct json_iter it;
            json_iter_init(&it, &v);
            while (json_iter_next(&it)) {
                int64_t id;
                if (json_int(&it.val, &id) < 0 || id < 0 || id > INT32_MAX) {
                    rec_writer_abort(out);
                    die("%s:%llu: %s[%zu] is not a token id", rec_reader_name(r),
                        (unsigned long long)l.lineno, field, it.index);
                }
                tok_ids_push(&ids, (int32_t)id);
            }
            buf_reset(&text);
            if (tok_decode(t, ids.v, ids.n, &text, &err) < 0) {
                rec_writer_abort(out);
                die("%s:%llu: %s", rec_reader_name(r), (unsigned long long)l.lineno, err.msg);
            }
            c.records++;
            c.tokens += ids.n;
            c.text_bytes += text.len;
            if (o->raw) {
                if (rec_writer_write_raw(out, text.p, text.len, &err) < 0)
                    die_kerr(&err);
                continue;
            }
            buf_reset(&repaired);
            invalid += utf8_repair(text.p, text.len, &repaired) ? 1 : 0;
            buf_reset(&rec);
            buf_reset(&text);
            json_write_str(&text, repaired.p, repaired.len);
            struct json_edit ed = {"text", text.p, text.len};
            json_obj_rewrite(&obj, &ed, 1, &rec);
            if (rec_writer_write(out, rec.p, rec.len, &err) < 0)
                die_kerr(&err);
        }
        if (rc < 0) {
            rec_writer_abort(out);
            die_kerr(&err);
        }
        rec_reader_close(r);
    }
    if (invalid)
        warnx_("%llu records decoded to invalid UTF-8 (replaced by U+FFFD in text; --raw keeps "
               "the bytes)",
               (unsigned long long)invalid);
    st.records_out = o->raw ? 0 : rec_writer_records(out);
    st.bytes_out = rec_writer_bytes(out);
    if (rec_writer_close(out, &err) < 0)
        die_kerr(&err);
    stats_u64(&st, "invalid_utf8_records", invalid);
    write_stats(o, &st, &c);
    stats_free(&st);
    json_obj_free(&obj);
    buf_free(&text);
    buf_free(&rec);
    buf_free(&repaired);
    tok_ids_free(&ids);
    tok_del(t);
}

// ---- train -------------------------------------------------------------------------------

static void
train_field(struct tok_trainer *tr, const struct json_obj *obj, const char *field, struct buf *text,
            const char *name, uint64_t lineno, bool required, uint64_t *bytes) {
    struct json_val v;
    struct kerr err;
    if (!json_obj_path(obj, field, &v)) {
        if (required)
            die("%s:%llu: field '%s' is missing", name, (unsigned long long)lineno, field);
        return;
    }
    if (v.type != JSON_STRING)
        die("%s:%llu: field '%s' is not a string", name, (unsigned long long)lineno, field);
    buf_reset(text);
    json_str(&v, text);
    *bytes += text->len;
    if (tok_trainer_add(tr, text->p, text->len, &err) < 0)
        die("%s:%llu: %s", name, (unsigned long long)lineno, err.msg);
}

static void
run_train(const struct opts *o, char **files, int nfiles) {
    struct kerr err;
    static const char *const dflt[] = {"<|endoftext|>", "<|pad|>"};
    enum tok_pre pre = TOK_PRE_GPT2;
    const char *regex = NULL;
    if (o->pattern && tok_pattern_parse(o->pattern, &pre, &regex, &err) < 0)
        die_usage("--pattern: %s", err.msg);
    struct tok_train_opts to = {
        .vocab_size = o->vocab_size,
        .min_frequency = o->min_frequency,
        .specials = o->n_specials ? o->specials : (const char **)dflt,
        .n_specials = o->n_specials ? o->n_specials : 2,
        .pre = pre,
        .regex = regex,
    };
    struct tok_trainer *tr = tok_trainer_new(&to, &err);
    if (!tr)
        die_usage("%s", err.msg);
    struct stats st;
    stats_init(&st, "tokenize");
    struct json_obj obj = {0};
    struct buf text = {0};
    uint64_t bytes = 0;
    struct progress pr;
    progress_init(&pr, &o->c, "records", 0);
    for (int f = 0; f < (nfiles ? nfiles : 1); f++) {
        struct rec_reader *r = rec_reader_open(nfiles ? files[f] : "-", &err);
        if (!r)
            die_kerr(&err);
        struct rec_line l;
        int rc;
        while ((rc = next_obj(r, &l, &obj, &err)) > 0) {
            st.records_in++;
            st.bytes_in += l.n + 1;
            const char *name = rec_reader_name(r);
            if (o->field) {
                train_field(tr, &obj, o->field, &text, name, l.lineno, true, &bytes);
            } else if (json_obj_get(&obj, "text")) {
                train_field(tr, &obj, "text", &text, name, l.lineno, true, &bytes);
            } else if (json_obj_get(&obj, "prompt") || json_obj_get(&obj, "completion")) {
                train_field(tr, &obj, "prompt", &text, name, l.lineno, false, &bytes);
                train_field(tr, &obj, "completion", &text, name, l.lineno, false, &bytes);
            } else {
                die("%s:%llu: no 'text' (or 'prompt'/'completion') field; use --field", name,
                    (unsigned long long)l.lineno);
            }
            progress_update(&pr, st.records_in, st.bytes_in);
        }
        if (rc < 0)
            die_kerr(&err);
        rec_reader_close(r);
    }
    progress_end(&pr);
    size_t words = tok_trainer_words(tr);
    struct tok *t = tok_trainer_finish(tr, &err);
    tok_trainer_del(tr);
    if (!t)
        die_kerr(&err);
    if (tok_vocab_size(t) < o->vocab_size)
        info("vocabulary stopped at %zu of %zu: no pair occurs %llu times or more",
             tok_vocab_size(t), o->vocab_size,
             (unsigned long long)(o->min_frequency ? o->min_frequency : 1));
    struct buf json = {0};
    tok_save_hf(t, &json);
    struct rec_wopts wo = {.plain = true, .force = true};
    struct rec_writer *out = rec_writer_open(o->c.output, &wo, &err);
    if (!out || rec_writer_write_raw(out, json.p, json.len, &err) < 0)
        die_kerr(&err);
    st.bytes_out = json.len;
    if (rec_writer_close(out, &err) < 0)
        die_kerr(&err);
    stats_u64(&st, "text_bytes", bytes);
    stats_u64(&st, "distinct_words", words);
    stats_u64(&st, "vocab_size", tok_vocab_size(t));
    stats_u64(&st, "merges", tok_merge_count(t));
    if (stats_write(&st, o->c.stats, &err) < 0)
        die_kerr(&err);
    stats_free(&st);
    buf_free(&json);
    buf_free(&text);
    json_obj_free(&obj);
    tok_del(t);
}

// ---- main --------------------------------------------------------------------------------

int
main(int argc, char **argv) {
    cli_init(argv[0]);
    struct opts o = {.vocab_size = 8192, .min_frequency = 2, .threads = 1};
    cli_common_init(&o.c);
    if (argc < 2)
        die_usage("expected a command: train, encode or decode");
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0)
        o.mode = MODE_TRAIN;
    else if (strcmp(cmd, "encode") == 0)
        o.mode = MODE_ENCODE;
    else if (strcmp(cmd, "decode") == 0)
        o.mode = MODE_DECODE;
    else if (cmd[0] == '-')
        o.mode = (enum mode) - 1; // options only (-h, --version)
    else
        die_usage("unknown command '%s' (train, encode or decode)", cmd);
    if ((int)o.mode >= 0) {
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"tokenizer", required_argument, 0, OPT_TOKENIZER},
        {"encoder", required_argument, 0, OPT_TOKENIZER},
        {"tiktoken", required_argument, 0, OPT_TIKTOKEN},
        {"pattern", required_argument, 0, OPT_PATTERN},
        {"field", required_argument, 0, OPT_FIELD},
        {"vocab-size", required_argument, 0, OPT_VOCAB},
        {"min-frequency", required_argument, 0, OPT_MINFREQ},
        {"special", required_argument, 0, OPT_SPECIAL},
        {"prompt", required_argument, 0, OPT_PROMPT},
        {"completion", required_argument, 0, OPT_COMPLETION},
        {"max-len", required_argument, 0, OPT_MAXLEN},
        {"keep", required_argument, 0, OPT_KEEP},
        {"eos", required_argument, 0, OPT_EOS},
        {"no-eos", no_argument, 0, OPT_NO_EOS},
        {"allow-special", no_argument, 0, OPT_ALLOW_SPECIAL},
        {"raw", no_argument, 0, OPT_RAW},
        {"threads", required_argument, 0, OPT_THREADS},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&o.c, opt, optarg, usage))
            continue;
        switch (opt) {
        case OPT_TOKENIZER:
        case OPT_TIKTOKEN:
            o.tokenizer = optarg;
            break;
        case OPT_PATTERN:
            o.pattern = optarg;
            break;
        case OPT_FIELD:
            o.field = optarg;
            break;
        case OPT_VOCAB:
            o.vocab_size = (size_t)cli_parse_int("--vocab-size", optarg, 1, 1 << 24);
            break;
        case OPT_MINFREQ:
            o.min_frequency = cli_parse_u64("--min-frequency", optarg);
            break;
        case OPT_SPECIAL:
            o.specials = xrealloc(o.specials, (o.n_specials + 1) * sizeof *o.specials);
            o.specials[o.n_specials++] = optarg;
            break;
        case OPT_PROMPT:
            o.prompt = template_opt(o.prompt, "--prompt", optarg);
            o.prompt_set = true;
            break;
        case OPT_COMPLETION:
            o.completion = template_opt(o.completion, "--completion", optarg);
            o.completion_set = true;
            break;
        case OPT_MAXLEN:
            o.max_len = cli_parse_int("--max-len", optarg, 1, INT32_MAX);
            break;
        case OPT_KEEP:
            if (strcmp(optarg, "head") && strcmp(optarg, "tail"))
                die_usage("--keep: expected head or tail, not '%s'", optarg);
            o.keep_tail = strcmp(optarg, "tail") == 0;
            break;
        case OPT_EOS:
            o.eos = optarg;
            break;
        case OPT_NO_EOS:
            o.no_eos = true;
            break;
        case OPT_ALLOW_SPECIAL:
            o.allow_special = true;
            break;
        case OPT_RAW:
            o.raw = true;
            break;
        case OPT_THREADS:
            o.threads = (int)cli_parse_int("--threads", optarg, 1, 256);
            break;
        default:
            die_usage("unexpected option");
        }
    }
    if ((int)o.mode < 0)
        die_usage("expected a command: train, encode or decode");
    enum tok_pre pre = TOK_PRE_GPT2;
    const char *regex = NULL;
    struct kerr perr;
    if (o.pattern && tok_pattern_parse(o.pattern, &pre, &regex, &perr) < 0)
        die_usage("--pattern: %s", perr.msg);
    if (o.mode == MODE_ENCODE && o.field && (o.prompt_set || o.completion_set))
        die_usage("--field and --prompt/--completion are exclusive");
    if (!o.field && o.mode == MODE_ENCODE)
        o.field = "text";
    if (o.prompt_set && !o.completion_set)
        o.completion = template_opt(NULL, "--completion", "");
    if (o.completion_set && !o.prompt_set)
        o.prompt = template_opt(NULL, "--prompt", "");
    char **files = argv + optind;
    int nfiles = argc - optind;
    if (o.mode == MODE_TRAIN)
        run_train(&o, files, nfiles);
    else if (o.mode == MODE_ENCODE)
        run_encode(&o, files, nfiles);
    else
        run_decode(&o, files, nfiles);
    tok_tpl_del(o.prompt);
    tok_tpl_del(o.completion);
    free(o.specials);
    cli_finish_stdout();
    return 0;
}

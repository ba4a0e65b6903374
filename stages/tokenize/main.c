// SPDX-License-Identifier: MIT
// tokenize: train, apply and invert byte-level BPE tokenizers on record streams.
//
//   tokenize train  [OPTIONS] [FILE...]   records → tokenizer.json
//   tokenize encode [OPTIONS] [FILE...]   records → records with input_ids (and loss_start)
//   tokenize decode [OPTIONS] [FILE...]   records with input_ids → records with text
//
// Encoding is a pipeline of chunks (consecutive input lines, at most CHUNK_RECORDS records or
// about CHUNK_BYTES bytes). Each of the N threads (the main thread and N-1 workers) loops:
// when the oldest unwritten chunk is done and nobody is writing, it writes that chunk;
// otherwise, when nobody is reading and a slot is free, it reads the next chunk and encodes it.
// Reading, encoding and writing overlap, so no thread waits on a serial phase, and a thread
// that is slow or descheduled on a shared machine holds up one small chunk. Chunks are written
// in input order, so the output does not depend on N or timing. The first error in input
// order stops the run.
// The tokenizer itself lives in common/tok; this file is options, templates and glue.
#include "cli.h"
#include "json.h"
#include "rec.h"
#include "tok.h"
#include "tok_template.h"

#include <pthread.h>
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

struct counts {
    uint64_t records, text_bytes, tokens, truncated;
};

#define CHUNK_RECORDS 1024
#define CHUNK_BYTES (64u << 10)
// Chunks in flight per thread: a thread can read and encode one chunk while its previous one
// waits for an older chunk to be written. Every slot's buffers are first touched page by page
// (~100 page faults of ~17 µs each), so no more than that.
#define SLOTS_PER_THREAD 2
// The reader's and writer's buffers (rec's default: 1 MiB each, four for the writer): every
// first touch of a page is a page fault (~17 µs on our virtual machines), and 256 KiB is as
// fast to hand over. The output bytes do not depend on it.
#define IO_CHUNK_BYTES ((size_t)256 << 10)

// One chunk of the pipeline: its input lines and, once encoded, its output records.
struct chunk {
    enum { SLOT_FREE, SLOT_BUSY, SLOT_DONE } state;
    struct buf name; // input name for messages
    struct buf data; // the lines, back to back
    size_t *off, *len, *end; // per line: offset and length in data; end offset in out
    uint64_t *lineno;
    size_t n, cap;
    struct buf out; // records back to back
    struct counts cnt;
    size_t err_at; // index of the failing record (n: the read error after the lines), or SIZE_MAX
    bool read_failed;
    struct kerr err, read_err;
};

struct pipeline {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **files;
    int nfiles, file; // the next file to open
    struct rec_reader *r;
    bool ready; // the tokenizer, the encoders and the output are set up
    bool reading, writing, read_done, failed;
    uint64_t next_read, next_write; // chunk sequence numbers; slot = seq % n_slots
    struct chunk *slots;
    size_t n_slots;
    struct rec_writer *out;
    struct counts total;
    uint64_t records_in, bytes_in;
    struct progress pr;
    struct kerr err; // why the run failed
};

// Workers sit in one array, each on its own cache lines (the scratch is written per record:
// two threads must not share a line).
struct worker {
    _Alignas(64) const struct opts *o;
    struct pipeline *p;
    struct tok_enc *enc;
    int32_t eos;
    // scratch
    struct json_obj obj;
    struct buf text, ids_json, num;
    struct tok_ids p_ids, c_ids;
};

// Appends "[a,b,...]" (ids are non-negative; formatted by hand, two digits at a time: printf
// is a hot spot here).
static void
ids_json2(struct buf *out, const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                "31323334353637383940414243444546474849505152535455565758596061"
                                "62636465666768697071727374757677787980818283848586878889909192"
                                "93949596979899";
    buf_reserve(out, 12 * (na + nb) + 2);
    char *p = out->p + out->len;
    *p++ = '[';
    for (size_t i = 0; i < na + nb; i++) {
        uint32_t x = (uint32_t)(i < na ? a[i] : b[i - na]);
        char tmp[12];
        char *q = tmp + sizeof tmp;
        while (x >= 100) {
            q -= 2;
            memcpy(q, pairs + 2 * (x % 100), 2);
            x /= 100;
        }
        if (x >= 10) {
            q -= 2;
            memcpy(q, pairs + 2 * x, 2);
        } else {
            *--q = (char)('0' + x);
        }
        if (i)
            *p++ = ',';
        size_t k = (size_t)(tmp + sizeof tmp - q);
        memcpy(p, q, k);
        p += k;
    }
    *p++ = ']';
    out->len = (size_t)(p - out->p);
    out->p[out->len] = 0;
}

static void
ids_json(struct buf *out, const int32_t *v, size_t n) {
    ids_json2(out, v, n, NULL, 0);
}

// Encodes record i of chunk c into c->out. 0, or -1 with c->err.
static int
encode_one(struct worker *w, struct chunk *c, size_t i) {
    const struct opts *o = w->o;
    const char *line = c->data.p + c->off[i];
    struct json_error je;
    struct kerr *err = &c->err;
    if (json_obj_parse(&w->obj, line, c->len[i], &je) < 0)
        return kerr_set(err, "%s:%llu:%zu: invalid JSON: %s", c->name.p,
                        (unsigned long long)c->lineno[i], je.offset + 1, je.msg);
    w->p_ids.n = w->c_ids.n = 0;
    int flags = o->allow_special ? TOK_ALLOW_SPECIAL : 0;
    buf_reset(&w->text);
    if (o->prompt_set || o->completion_set) {
        if (tok_tpl_expand(o->prompt, &w->obj, NULL, NULL, &w->text, err) < 0)
            goto template;
        c->cnt.text_bytes += w->text.len;
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
    c->cnt.text_bytes += w->text.len;
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
        c->cnt.truncated++;
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
    json_obj_rewrite(&w->obj, ed, ne, &c->out);
    c->cnt.records++;
    c->cnt.tokens += w->p_ids.n + w->c_ids.n;
    return 0;
template:
    kerr_prefix(err, "template");
located:
    kerr_prefix(err, "%s:%llu", c->name.p, (unsigned long long)c->lineno[i]);
    return -1;
}

static void
add_counts(struct counts *a, const struct counts *b) {
    a->records += b->records;
    a->text_bytes += b->text_bytes;
    a->tokens += b->tokens;
    a->truncated += b->truncated;
}

static void
chunk_add(struct chunk *c, const struct rec_line *l) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->off = xrealloc(c->off, c->cap * sizeof *c->off);
        c->len = xrealloc(c->len, c->cap * sizeof *c->len);
        c->end = xrealloc(c->end, c->cap * sizeof *c->end);
        c->lineno = xrealloc(c->lineno, c->cap * sizeof *c->lineno);
    }
    c->off[c->n] = c->data.len;
    c->len[c->n] = l->n;
    c->lineno[c->n] = l->lineno;
    buf_append(&c->data, l->p, l->n);
    c->n++;
}

// Reads the next chunk (lines of one file) into c; a read error ends it with c->read_failed.
// False when the input is exhausted. Only the thread holding p->reading calls it.
static bool
chunk_read(struct pipeline *p, struct chunk *c) {
    c->n = 0;
    buf_reset(&c->data);
    c->read_failed = false;
    while (c->n < CHUNK_RECORDS && c->data.len < CHUNK_BYTES) {
        if (!p->r) {
            if (c->n || p->file >= (p->nfiles ? p->nfiles : 1))
                break;
            const char *path = p->nfiles ? p->files[p->file] : "-";
            p->file++;
            p->r = rec_reader_open(path, &c->read_err);
            if (!p->r) {
                c->read_failed = true;
                return true;
            }
            rec_reader_set_chunk(p->r, IO_CHUNK_BYTES);
            buf_reset(&c->name);
            buf_puts(&c->name, rec_reader_name(p->r));
        }
        struct rec_line l;
        int rc = rec_reader_next(p->r, &l, &c->read_err);
        if (rc < 0) {
            c->read_failed = true;
            return true;
        }
        if (rc == 0) {
            rec_reader_close(p->r);
            p->r = NULL;
            continue;
        }
        if (!c->n) {
            buf_reset(&c->name);
            buf_puts(&c->name, rec_reader_name(p->r));
        }
        chunk_add(c, &l);
    }
    return c->n > 0 || c->read_failed;
}

static void
chunk_encode(struct worker *w, struct chunk *c) {
    buf_reset(&c->out);
    c->cnt = (struct counts){0};
    c->err_at = SIZE_MAX;
    for (size_t i = 0; i < c->n; i++) {
        if (encode_one(w, c, i) < 0) {
            c->err_at = i;
            return;
        }
        c->end[i] = c->out.len;
    }
    if (c->read_failed) {
        c->err_at = c->n;
        c->err = c->read_err;
    }
}

// Writes the records of a done chunk; false (with p->err) when the chunk failed or the write
// did. Only the thread holding p->writing calls it.
static bool
chunk_write(struct pipeline *p, struct chunk *c) {
    size_t start = 0, n = c->err_at < c->n ? c->err_at : c->n;
    for (size_t i = 0; i < n; i++) {
        if (rec_writer_write(p->out, c->out.p + start, c->end[i] - start, &p->err) < 0)
            return false;
        start = c->end[i];
    }
    if (c->err_at != SIZE_MAX) {
        p->err = c->err;
        return false;
    }
    add_counts(&p->total, &c->cnt);
    p->records_in += c->n;
    p->bytes_in += c->data.len + c->n;
    progress_update(&p->pr, p->records_in, p->bytes_in);
    return true;
}

static void *
pipeline_run(void *arg) {
    struct worker *w = arg;
    struct pipeline *p = w->p;
    pthread_mutex_lock(&p->mu);
    while (!p->failed) {
        struct chunk *c = &p->slots[p->next_write % p->n_slots];
        if (!p->writing && p->next_write < p->next_read && c->state == SLOT_DONE) {
            p->writing = true;
            pthread_mutex_unlock(&p->mu);
            bool ok = chunk_write(p, c);
            pthread_mutex_lock(&p->mu);
            p->writing = false;
            c->state = SLOT_FREE;
            p->next_write++;
            p->failed = p->failed || !ok;
            pthread_cond_broadcast(&p->cv);
            continue;
        }
        if (p->read_done && p->next_write == p->next_read)
            break;
        c = &p->slots[p->next_read % p->n_slots];
        if (!p->reading && !p->read_done && c->state == SLOT_FREE) {
            p->reading = true;
            c->state = SLOT_BUSY;
            pthread_mutex_unlock(&p->mu);
            bool got = chunk_read(p, c);
            pthread_mutex_lock(&p->mu);
            p->reading = false;
            if (!got) {
                c->state = SLOT_FREE;
                p->read_done = true;
                pthread_cond_broadcast(&p->cv);
                continue;
            }
            p->read_done = c->read_failed;
            p->next_read++;
            pthread_cond_broadcast(&p->cv); // the next chunk may be read now
            while (!p->ready) // the first chunks are read while the vocabulary loads
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
            chunk_encode(w, c);
            pthread_mutex_lock(&p->mu);
            c->state = SLOT_DONE;
            pthread_cond_broadcast(&p->cv);
            continue;
        }
        pthread_cond_wait(&p->cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
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

static struct rec_writer *
open_output(const struct opts *o) {
    struct kerr err;
    struct rec_wopts wo = {.level = o->c.level,
                           .plain = o->c.plain,
                           .force = o->c.force,
                           .chunk_bytes = IO_CHUNK_BYTES};
    struct rec_writer *out = rec_writer_open(o->c.output, &wo, &err);
    if (!out)
        die_kerr(&err);
    return out;
}

static void
run_encode(const struct opts *o, char **files, int nfiles) {
    struct kerr err;
    struct tok *t;
    struct rec_writer *out;
    struct stats st;
    stats_init(&st, "tokenize");
    struct counts total = {0};
    if (o->raw) {
        t = load_tokenizer(o);
        out = open_output(o);
        run_raw_encode(o, t, files, nfiles, out, &st, &total);
    } else {
        int nt = o->threads;
        struct pipeline p = {.files = files, .nfiles = nfiles};
        pthread_mutex_init(&p.mu, NULL);
        pthread_cond_init(&p.cv, NULL);
        p.n_slots = (size_t)nt * SLOTS_PER_THREAD;
        p.slots = xcalloc(p.n_slots, sizeof *p.slots);
        progress_init(&p.pr, &o->c, "records", 0);
        struct worker *w = aligned_alloc(64, (size_t)nt * sizeof *w);
        if (!w)
            die("out of memory");
        memset(w, 0, (size_t)nt * sizeof *w);
        for (int k = 0; k < nt; k++) {
            w[k].o = o;
            w[k].p = &p;
        }
        // Workers 1..nt-1 on their own threads, started now: they read the first chunks while
        // this thread loads the vocabulary. Worker 0 is this thread.
        pthread_t *th = xcalloc((size_t)nt, sizeof *th);
        for (int k = 1; k < nt; k++)
            if (pthread_create(&th[k], NULL, pipeline_run, &w[k]) != 0)
                die("cannot start a thread:");
        t = load_tokenizer(o);
        int32_t eos = eos_id(o, t);
        out = open_output(o);
        pthread_mutex_lock(&p.mu);
        for (int k = 0; k < nt; k++) {
            w[k].enc = tok_enc_new(t);
            w[k].eos = eos;
        }
        p.out = out;
        p.ready = true;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        pipeline_run(&w[0]);
        for (int k = 1; k < nt; k++)
            pthread_join(th[k], NULL);
        if (p.failed) {
            rec_writer_abort(out);
            die_kerr(&p.err);
        }
        progress_end(&p.pr);
        total = p.total;
        st.records_in = p.records_in;
        st.bytes_in = p.bytes_in;
        if (p.r)
            rec_reader_close(p.r);
        for (int k = 0; k < nt; k++) {
            tok_enc_del(w[k].enc);
            json_obj_free(&w[k].obj);
            buf_free(&w[k].text);
            buf_free(&w[k].ids_json);
            buf_free(&w[k].num);
            tok_ids_free(&w[k].p_ids);
            tok_ids_free(&w[k].c_ids);
        }
        for (size_t k = 0; k < p.n_slots; k++) {
            struct chunk *c = &p.slots[k];
            buf_free(&c->name);
            buf_free(&c->data);
            buf_free(&c->out);
            free(c->off);
            free(c->len);
            free(c->end);
            free(c->lineno);
        }
        free(p.slots);
        free(w);
        free(th);
        pthread_mutex_destroy(&p.mu);
        pthread_cond_destroy(&p.cv);
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

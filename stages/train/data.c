// SPDX-License-Identifier: MIT
// data: tokenized records to training sequences — packed windows for pretraining, padded
// examples with completion-only targets for supervised fine-tuning (see train.h).
#include "train.h"

#include "json.h"
#include "rec.h"

#include <stdlib.h>
#include <string.h>

static void
tok_push(struct dataset *d, int32_t id)
{
    if (d->n_tok == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1 << 16;
        d->tok = xrealloc(d->tok, d->cap * sizeof *d->tok);
    }
    d->tok[d->n_tok++] = id;
}

static void
ex_push(struct dataset *d, size_t off, int len, int ls)
{
    if (d->n_ex == d->ex_cap) {
        d->ex_cap = d->ex_cap ? d->ex_cap * 2 : 1024;
        d->ex_off = xrealloc(d->ex_off, d->ex_cap * sizeof *d->ex_off);
        d->ex_len = xrealloc(d->ex_len, d->ex_cap * sizeof *d->ex_len);
        d->ex_ls = xrealloc(d->ex_ls, d->ex_cap * sizeof *d->ex_ls);
        d->ex_rec = xrealloc(d->ex_rec, d->ex_cap * sizeof *d->ex_rec);
    }
    d->ex_rec[d->n_ex] = d->records - 1;
    d->ex_off[d->n_ex] = off;
    d->ex_len[d->n_ex] = len;
    d->ex_ls[d->n_ex] = ls;
    d->n_ex++;
}

// One record: appends its ids. Returns 0 or -1 with err (without the "name:line: " prefix).
static int
data_record(struct dataset *d, const struct json_obj *o, int vocab, int eos, struct kerr *err)
{
    const struct json_field *f = json_obj_get(o, "input_ids");
    if (!f)
        return kerr_set(err, "record has no input_ids");
    if (f->val.type != JSON_ARRAY)
        return kerr_set(err, "input_ids is not an array");
    int64_t ls = 0;
    const struct json_field *lf = json_obj_get(o, "loss_start");
    if (lf && (json_int(&lf->val, &ls) < 0 || ls < 0))
        return kerr_set(err, "loss_start is not a non-negative integer");
    size_t start = d->n_tok;
    struct json_iter it;
    json_iter_init(&it, &f->val);
    while (json_iter_next(&it)) {
        int64_t id;
        if (json_int(&it.val, &id) < 0)
            return kerr_set(err, "input_ids[%zu] is not an integer", it.index);
        if (id < 0 || id >= vocab)
            return kerr_set(err, "input_ids[%zu] = %lld is outside the vocabulary (0..%d)",
                            it.index, (long long)id, vocab - 1);
        tok_push(d, (int32_t)id);
    }
    size_t len = d->n_tok - start;
    if ((size_t)ls > len)
        return kerr_set(err, "loss_start %lld is beyond the %zu input_ids", (long long)ls, len);
    d->records++;
    if (!d->sft) {
        if (len > 0 && d->tok[d->n_tok - 1] != eos)
            tok_push(d, eos);
        return 0;
    }
    if (len > (size_t)d->t + 1) {
        d->n_tok = start + (size_t)d->t + 1;
        len = (size_t)d->t + 1;
        d->truncated++;
    }
    // Position i predicts token i+1; it is scored when i+1 >= loss_start.
    if (len < 2 || (size_t)ls >= len) {
        d->n_tok = start;
        d->skipped++;
        return 0;
    }
    ex_push(d, start, (int)len, (int)ls);
    return 0;
}

int
data_load(struct dataset *d, char *const *files, int mode, int vocab, int eos, int t,
          struct kerr *err)
{
    memset(d, 0, sizeof *d);
    d->t = t;
    d->pad_id = eos >= 0 ? eos : 0;
    struct json_obj o;
    json_obj_init(&o);
    int rc = 0;
    for (int i = 0; files[i] && rc == 0; i++) {
        struct rec_reader *r = rec_reader_open(files[i], err);
        if (!r) {
            rc = -1;
            break;
        }
        struct rec_line line;
        int got;
        while ((got = rec_reader_next_obj(r, &line, &o, err)) == 1) {
            if (mode < 0) // auto: the first record decides
                mode = json_obj_get(&o, "loss_start") != NULL;
            d->sft = mode == 1;
            if (!d->sft && eos < 0) {
                kerr_set(err, "pretraining joins documents with EOS: give --eos ID (or a "
                              "tokenizer or config that names it)");
                got = -1;
                break;
            }
            if (data_record(d, &o, vocab, eos, err) < 0) {
                kerr_prefix(err, "%s:%llu", rec_reader_name(r), (unsigned long long)line.lineno);
                got = -1;
                break;
            }
        }
        if (got < 0)
            rc = -1;
        rec_reader_close(r);
    }
    json_obj_free(&o);
    if (rc < 0) {
        data_free(d);
        return -1;
    }
    d->n_seq = d->sft ? d->n_ex : (d->n_tok > 0 ? (d->n_tok - 1) / (size_t)t : 0);
    if (d->n_seq == 0) {
        const char *name = files[0] && strcmp(files[0], "-") != 0 ? files[0] : "<stdin>";
        if (d->records == 0)
            kerr_set(err, "%s: no records", name);
        else if (d->sft)
            kerr_set(err, "%s: no example has a token to score (%llu records)", name,
                     (unsigned long long)d->records);
        else
            kerr_set(err, "%s: %zu tokens are fewer than one sequence of %d + 1", name,
                     d->n_tok, t);
        data_free(d);
        return -1;
    }
    return 0;
}

void
data_free(struct dataset *d)
{
    free(d->tok);
    free(d->ex_off);
    free(d->ex_len);
    free(d->ex_ls);
    free(d->ex_rec);
    memset(d, 0, sizeof *d);
}

int
data_seq(const struct dataset *d, size_t i, int *tokens, int *targets, int *scored)
{
    int t = d->t;
    if (!d->sft) {
        const int32_t *w = d->tok + i * (size_t)t;
        for (int k = 0; k < t; k++) {
            tokens[k] = w[k];
            targets[k] = w[k + 1];
        }
        *scored += t;
        return t;
    }
    const int32_t *x = d->tok + d->ex_off[i];
    int len = d->ex_len[i], ls = d->ex_ls[i];
    for (int k = 0; k < t; k++) {
        bool in = k < len - 1;
        tokens[k] = in ? x[k] : d->pad_id;
        targets[k] = in && k + 1 >= ls ? x[k + 1] : -1;
        *scored += targets[k] >= 0;
    }
    return len - 1;
}

// SPDX-License-Identifier: MIT
// class_weights: the class-weighted loss of supervised fine-tuning (see class_weights.h) —
// option parsing, each example's label read from the training files, inverse-frequency or
// explicit weights, and the weighted forward/backward on the model's cross-entropy kernel.
#include "class_weights.h"

#include "rec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void
cw_defaults(struct class_weights *cw)
{
    memset(cw, 0, sizeof *cw);
    cw->field = "label";
}

// Checks an explicit list LABEL=W,... (W > 0) at option time.
static void
cw_check_list(const char *arg)
{
    const char *p = arg;
    while (*p) {
        const char *e = strchr(p, ','), *end = e ? e : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq == p)
            die_usage("--class-weights: '%.*s' is not LABEL=WEIGHT (or use auto)", (int)(end - p),
                      p);
        char num[64];
        size_t nl = (size_t)(end - eq - 1);
        if (nl == 0 || nl >= sizeof num)
            die_usage("--class-weights: '%.*s' has no weight", (int)(end - p), p);
        memcpy(num, eq + 1, nl);
        num[nl] = 0;
        cli_parse_double("--class-weights", num, 1e-6, 1e6);
        p = e ? e + 1 : end;
        if (e && !*p)
            die_usage("--class-weights: empty entry after ','");
    }
}

bool
cw_opt(struct class_weights *cw, int opt, const char *arg)
{
    switch (opt) {
    case CW_OPT_CLASS_WEIGHTS:
        if (strcmp(arg, "auto") != 0) {
            if (!*arg)
                die_usage("--class-weights: give auto or LABEL=WEIGHT,...");
            cw_check_list(arg);
        }
        cw->spec = arg;
        return true;
    case CW_OPT_LABEL_FIELD:
        if (!*arg)
            die_usage("--label-field: empty field name");
        cw->field = arg;
        return true;
    default:
        return false;
    }
}

static int
cw_class(struct class_weights *cw, const char *label, bool add)
{
    for (int c = 0; c < cw->n_class; c++)
        if (!strcmp(cw->label[c], label))
            return c;
    if (!add || cw->n_class == CW_MAX_CLASSES)
        return -1;
    cw->label[cw->n_class] = xstrdup(label);
    cw->w[cw->n_class] = 0;
    cw->count[cw->n_class] = 0;
    return cw->n_class++;
}

int
cw_setup(struct class_weights *cw, const struct dataset *d, char *const *files, struct kerr *err)
{
    if (!cw->spec)
        return 0;
    if (!d->sft)
        return kerr_set(err, "--class-weights needs supervised examples (records with loss_start)");
    for (int i = 0; files[i]; i++)
        if (!strcmp(files[i], "-"))
            return kerr_set(err, "--class-weights reads the labels in a second pass: give the "
                                 "training data as files, not stdin");
    bool expl = strcmp(cw->spec, "auto") != 0;
    if (expl) { // the listed classes, in order
        char *s = xstrdup(cw->spec), *save = NULL;
        for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(t, '=');
            *eq = 0;
            int c = cw_class(cw, t, true);
            if (c < 0) {
                free(s);
                return kerr_set(err, "--class-weights: more than %d classes", CW_MAX_CLASSES);
            }
            cw->w[c] = strtod(eq + 1, NULL);
        }
        free(s);
    }
    // Record r's class, for the records that became examples (d->ex_rec ascending).
    int *cls = xmalloc((d->n_ex ? d->n_ex : 1) * sizeof *cls);
    struct json_obj o;
    json_obj_init(&o);
    struct buf lab = {0};
    uint64_t rec = 0;
    size_t ex = 0;
    int rc = 0;
    for (int i = 0; files[i] && rc == 0 && ex < d->n_ex; i++) {
        struct rec_reader *r = rec_reader_open(files[i], err);
        if (!r) {
            rc = -1;
            break;
        }
        struct rec_line line;
        int got = 0;
        while (ex < d->n_ex && (got = rec_reader_next_obj(r, &line, &o, err)) == 1) {
            if (rec++ != d->ex_rec[ex])
                continue;
            const struct json_field *f = json_obj_get(&o, cw->field);
            int c = -1;
            buf_reset(&lab);
            if (f && f->val.type == JSON_STRING) {
                json_str(&f->val, &lab);
                buf_puts(&lab, ""); // "" stays a string
                c = cw_class(cw, lab.p, !expl);
            }
            if (c < 0) {
                if (!f || f->val.type != JSON_STRING)
                    kerr_set(err, "%s:%llu: no string field '%s' (the label for --class-weights)",
                             rec_reader_name(r), (unsigned long long)line.lineno, cw->field);
                else if (expl)
                    kerr_set(err, "%s:%llu: label '%s' is not in --class-weights",
                             rec_reader_name(r), (unsigned long long)line.lineno, lab.p);
                else
                    kerr_set(err, "%s:%llu: more than %d classes", rec_reader_name(r),
                             (unsigned long long)line.lineno, CW_MAX_CLASSES);
                got = -1;
                break;
            }
            cls[ex++] = c;
            cw->count[c]++;
        }
        if (got < 0)
            rc = -1;
        rec_reader_close(r);
    }
    json_obj_free(&o);
    buf_free(&lab);
    if (rc == 0 && ex < d->n_ex)
        rc = kerr_set(err, "training files changed while reading labels for --class-weights");
    if (rc == 0 && !expl) { // inverse frequency: N / (K n_c)
        int k = 0;
        for (int c = 0; c < cw->n_class; c++)
            k += cw->count[c] > 0;
        for (int c = 0; c < cw->n_class; c++)
            cw->w[c] = (double)d->n_ex / ((double)k * (double)cw->count[c]);
    }
    if (rc == 0) {
        cw->ex_w = xmalloc((d->n_ex ? d->n_ex : 1) * sizeof *cw->ex_w);
        for (size_t i = 0; i < d->n_ex; i++)
            cw->ex_w[i] = (float)cw->w[cls[i]];
        for (int c = 0; c < cw->n_class; c++)
            info("class weight %s = %.4g (%llu examples)", cw->label[c], cw->w[c],
                 (unsigned long long)cw->count[c]);
    }
    free(cls);
    return rc;
}

float
cw_weight(const struct class_weights *cw, size_t i)
{
    return cw->ex_w ? cw->ex_w[i] : 1.0f;
}

void
cw_json(const struct class_weights *cw, struct json_writer *w)
{
    jw_obj_begin(w);
    for (int c = 0; c < cw->n_class; c++) {
        jw_key(w, cw->label[c]);
        jw_double(w, cw->w[c]);
    }
    jw_obj_end(w);
}

double
cw_forward_backward(struct model *m, struct model_acts *a, struct kpool *p, const int *tokens,
                    const int *targets, const float *row_w, int b, int t, float grad_scale)
{
    model_forward(m, a, p, tokens, b, t);
    size_t v = (size_t)m->cfg.vocab;
    kern_xent(p, a->logits, a->loss, targets, a->n, (int)v, grad_scale);
    double sum = 0;
    for (int r = 0; r < a->n; r++) {
        if (targets[r] < 0)
            continue;
        float w = row_w[r / t];
        sum += (double)w * a->loss[r];
        if (w != 1.0f) // dL/dlogits of this row: (softmax - onehot) * grad_scale * w
            for (float *g = a->logits + (size_t)r * v, *e = g + v; g < e; g++)
                *g *= w;
    }
    model_backward(m, a, p);
    return sum;
}

void
cw_free(struct class_weights *cw)
{
    for (int c = 0; c < cw->n_class; c++)
        free(cw->label[c]);
    free(cw->ex_w);
    cw_defaults(cw);
}

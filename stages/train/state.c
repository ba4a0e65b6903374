// SPDX-License-Identifier: MIT
// state: checkpoints with everything an exact resume needs — the model (checkpoint.h), the
// AdamW moments in optimizer.safetensors and trainer_state.json (step, epoch, generator
// state, best validation, the options that must not change). A checkpoint directory is built
// under a temporary name and renamed into place, so a crash leaves either the old or the new
// one, never a mix.
#include "train.h"

#include "checkpoint.h"
#include "json.h"
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int
state_remove_tree(const char *path, struct kerr *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : kerr_set(err, "%s: %s", path, strerror(errno));
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
        return kerr_set(err, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

static int
copy_file(const char *src, const char *dst, struct kerr *err)
{
    struct buf b = {0};
    int rc = read_file(src, 0, &b, err);
    if (rc == 0)
        rc = ckpt_write_file(dst, b.p, b.len, err);
    buf_free(&b);
    return rc;
}

static void
state_json(const struct train_state *s, const char *args_json, struct buf *out)
{
    struct json_writer w;
    json_writer_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "global_step");
    jw_int(&w, s->step);
    jw_key(&w, "total_steps");
    jw_int(&w, s->total_steps);
    jw_key(&w, "epoch");
    jw_int(&w, s->epoch);
    jw_key(&w, "seed");
    jw_uint(&w, s->seed);
    jw_key(&w, "rng_state");
    jw_arr_begin(&w);
    for (int i = 0; i < 4; i++) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, s->rng_epoch.s[i]);
        jw_str(&w, hex);
    }
    jw_arr_end(&w);
    jw_key(&w, "best_valid_loss");
    isnan(s->best_loss) ? jw_null(&w) : jw_double(&w, s->best_loss);
    jw_key(&w, "best_step");
    jw_int(&w, s->best_step);
    jw_key(&w, "bad_validations");
    jw_int(&w, s->bad_validations);
    jw_key(&w, "tokens_seen");
    jw_uint(&w, s->tokens_seen);
    if (s->ranks > 0) { // recorded under MPI only, so other runs' files stay as they were
        jw_key(&w, "mpi_ranks");
        jw_int(&w, s->ranks);
    }
    if (s->hft_trains) { // the round's draw, also logged (a resume recomputes it from seed)
        jw_key(&w, "hft");
        jw_obj_begin(&w);
        jw_key(&w, "round");
        jw_int(&w, s->hft_round);
        jw_key(&w, "trains");
        jw_str(&w, s->hft_trains);
        jw_obj_end(&w);
    }
    jw_key(&w, "args");
    jw_raw(&w, args_json, strlen(args_json));
    jw_obj_end(&w);
    buf_putc(out, '\n');
}

static int
save_optimizer(const char *path, const struct model *m, const struct adamw *o,
               struct kerr *err)
{
    size_t n = (size_t)m->n_tensors;
    struct st_out *t = xcalloc(2 * n, sizeof *t);
    char (*names)[MODEL_NAME_MAX + 16] = xcalloc(2 * n, sizeof *names);
    for (size_t i = 0; i < 2 * n; i++) {
        const struct model_tensor *mt = &m->tensors[i % n];
        snprintf(names[i], sizeof names[i], "%s.%s", i < n ? "exp_avg" : "exp_avg_sq",
                 mt->name);
        t[i].name = names[i];
        t[i].ndim = mt->ndim;
        t[i].shape[0] = mt->shape[0];
        t[i].shape[1] = mt->shape[1];
        t[i].data = (i < n ? o->m : o->v) + mt->offset;
    }
    static const char *const meta[] = {"format", "kiln-adamw", NULL};
    int rc = st_write(path, t, 2 * n, ST_F32, meta, err);
    free(names);
    free(t);
    return rc;
}

int
state_save_files(const char *dir, const struct model *m, const struct adamw *o,
                 const struct train_state *s, const char *args_json, const char *tokenizer,
                 enum st_dtype dtype, struct kerr *err)
{
    struct buf path = {0}, text = {0};
    int rc = ckpt_save(dir, m, dtype, err);
    if (rc == 0) {
        buf_printf(&path, "%s/optimizer.safetensors", dir);
        rc = save_optimizer(path.p, m, o, err);
    }
    if (rc == 0 && tokenizer) {
        buf_reset(&path);
        buf_printf(&path, "%s/tokenizer.json", dir);
        rc = copy_file(tokenizer, path.p, err);
    }
    if (rc == 0) {
        state_json(s, args_json, &text);
        buf_reset(&path);
        buf_printf(&path, "%s/trainer_state.json", dir);
        rc = ckpt_write_file(path.p, text.p, text.len, err);
    }
    buf_free(&path);
    buf_free(&text);
    return rc;
}

int
state_save_dir(const char *dir, const char *name, const struct model *m,
               const struct adamw *o, const struct train_state *s, const char *args_json,
               const char *tokenizer, struct kerr *err)
{
    struct buf tmp = {0}, dst = {0};
    buf_printf(&tmp, "%s/.tmp-%s", dir, name);
    buf_printf(&dst, "%s/%s", dir, name);
    int rc = state_remove_tree(tmp.p, err);
    if (rc == 0 && mkdir(tmp.p, 0777) < 0)
        rc = kerr_set(err, "%s: %s", tmp.p, strerror(errno));
    if (rc == 0)
        rc = state_save_files(tmp.p, m, o, s, args_json, tokenizer, ST_F32, err);
    const char *kill_at = getenv("KILN_TRAIN_KILL_IN_SAVE");
    if (rc == 0 && kill_at && atoll(kill_at) == s->step)
        raise(SIGKILL); // test hook: die with a complete temporary directory not yet renamed
    if (rc == 0) {
        // Swap with an existing directory of that name, or plain rename.
        if (renameat2(AT_FDCWD, tmp.p, AT_FDCWD, dst.p, RENAME_EXCHANGE) == 0)
            rc = state_remove_tree(tmp.p, err);
        else if (rename(tmp.p, dst.p) < 0)
            rc = kerr_set(err, "%s: %s", dst.p, strerror(errno));
    }
    if (rc < 0) {
        struct kerr ignore;
        state_remove_tree(tmp.p, &ignore);
    }
    buf_free(&tmp);
    buf_free(&dst);
    return rc;
}

int
state_find(const char *dir, struct buf *out, struct kerr *err)
{
    struct buf p = {0};
    buf_printf(&p, "%s/trainer_state.json", dir);
    bool here = access(p.p, F_OK) == 0;
    buf_free(&p);
    buf_reset(out);
    if (here) {
        buf_puts(out, dir);
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d)
        return kerr_set(err, "%s: %s", dir, strerror(errno));
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "checkpoint-", 11) != 0)
            continue;
        long n = strtol(e->d_name + 11, &end, 10);
        if (*end || end == e->d_name + 11 || n <= best)
            continue;
        struct buf sp = {0};
        buf_printf(&sp, "%s/%s/trainer_state.json", dir, e->d_name);
        if (access(sp.p, F_OK) == 0)
            best = n;
        buf_free(&sp);
    }
    closedir(d);
    if (best < 0)
        return kerr_set(err, "%s: no trainer_state.json and no checkpoint-N directory to "
                             "resume from", dir);
    buf_printf(out, "%s/checkpoint-%ld", dir, best);
    return 0;
}

static int
get_i64(const struct json_obj *o, const char *key, int64_t *out, const char *name,
        struct kerr *err)
{
    const struct json_field *f = json_obj_get(o, key);
    if (!f || json_int(&f->val, out) < 0)
        return kerr_set(err, "%s: missing or invalid %s", name, key);
    return 0;
}

// Every key of the current args must be in the saved ones with the same JSON text.
static int
check_args(const struct json_val *saved, const char *args_json, const char *name,
           struct kerr *err)
{
    struct json_val cur;
    struct json_error je;
    if (json_parse_value(args_json, strlen(args_json), &cur, &je) < 0)
        return kerr_set(err, "internal: bad args JSON");
    struct json_iter it;
    json_iter_init(&it, &cur);
    while (json_iter_next(&it)) {
        struct json_val old;
        if (!json_val_member(saved, it.key, it.key_len, &old))
            return kerr_set(err, "%s: args lack %.*s", name, (int)it.key_len, it.key);
        if (old.raw_len != it.val.raw_len || memcmp(old.raw, it.val.raw, old.raw_len) != 0)
            return kerr_set(err, "%s: %.*s is %.*s in the checkpoint but %.*s now (resume "
                                 "with the same options)", name, (int)it.key_len, it.key,
                            (int)old.raw_len, old.raw, (int)it.val.raw_len, it.val.raw);
    }
    return 0;
}

static int
load_optimizer(const char *path, const struct model *m, struct adamw *o, struct kerr *err)
{
    struct st_file f;
    if (st_open(&f, path, err) < 0)
        return -1;
    int rc = 0;
    char name[MODEL_NAME_MAX + 16];
    for (int i = 0; i < 2 * m->n_tensors && rc == 0; i++) {
        const struct model_tensor *mt = &m->tensors[i % m->n_tensors];
        snprintf(name, sizeof name, "%s.%s", i < m->n_tensors ? "exp_avg" : "exp_avg_sq",
                 mt->name);
        const struct st_tensor *t = st_find(&f, name);
        if (!t || t->dtype != ST_F32 || t->numel != mt->numel)
            rc = kerr_set(err, "%s: missing or mismatched tensor '%s'", path, name);
        else
            rc = st_read_f32(&f, t, (i < m->n_tensors ? o->m : o->v) + mt->offset, err);
    }
    if (rc == 0 && f.n != (size_t)(2 * m->n_tensors))
        rc = kerr_set(err, "%s: %zu tensors, expected %d", path, f.n, 2 * m->n_tensors);
    st_close(&f);
    return rc;
}

int
state_load(const char *dir, const struct model *m, struct adamw *o, struct train_state *s,
           const char *args_json, struct kerr *err)
{
    struct buf path = {0}, text = {0};
    struct json_obj j;
    json_obj_init(&j);
    int rc = -1;
    buf_printf(&path, "%s/optimizer.safetensors", dir);
    if (load_optimizer(path.p, m, o, err) < 0)
        goto done;
    buf_reset(&path);
    buf_printf(&path, "%s/trainer_state.json", dir);
    if (read_file(path.p, 1u << 20, &text, err) < 0)
        goto done;
    struct json_error je;
    if (json_obj_parse(&j, text.p, text.len, &je) < 0) {
        kerr_set(err, "%s:1:%zu: invalid JSON: %s", path.p, je.offset + 1, je.msg);
        goto done;
    }
    int64_t tokens;
    if (get_i64(&j, "global_step", &s->step, path.p, err) < 0 ||
        get_i64(&j, "total_steps", &s->total_steps, path.p, err) < 0 ||
        get_i64(&j, "epoch", &s->epoch, path.p, err) < 0 ||
        get_i64(&j, "best_step", &s->best_step, path.p, err) < 0 ||
        get_i64(&j, "bad_validations", &s->bad_validations, path.p, err) < 0 ||
        get_i64(&j, "tokens_seen", &tokens, path.p, err) < 0)
        goto done;
    s->tokens_seen = (uint64_t)tokens;
    const struct json_field *f = json_obj_get(&j, "seed");
    struct buf num = {0};
    if (!f || f->val.type != JSON_NUMBER) {
        kerr_set(err, "%s: missing seed", path.p);
        goto done;
    }
    buf_append(&num, f->val.raw, f->val.raw_len);
    s->seed = strtoull(num.p, NULL, 10);
    buf_free(&num);
    f = json_obj_get(&j, "best_valid_loss");
    s->best_loss = NAN;
    if (f && f->val.type == JSON_NUMBER)
        json_double(&f->val, &s->best_loss);
    f = json_obj_get(&j, "rng_state");
    int k = 0;
    if (f && f->val.type == JSON_ARRAY) {
        struct json_iter it;
        json_iter_init(&it, &f->val);
        struct buf h = {0};
        while (k < 4 && json_iter_next(&it) && it.val.type == JSON_STRING) {
            buf_reset(&h);
            json_str(&it.val, &h);
            char *end;
            s->rng_epoch.s[k++] = strtoull(h.p, &end, 16);
            if (*end || h.len != 16)
                k = -100;
        }
        buf_free(&h);
    }
    if (k != 4) {
        kerr_set(err, "%s: rng_state must be 4 hex strings", path.p);
        goto done;
    }
    f = json_obj_get(&j, "args");
    if (!f || f->val.type != JSON_OBJECT) {
        kerr_set(err, "%s: missing args", path.p);
        goto done;
    }
    if (check_args(&f->val, args_json, path.p, err) < 0)
        goto done;
    o->step = s->step;
    rc = 0;
done:
    json_obj_free(&j);
    buf_free(&path);
    buf_free(&text);
    return rc;
}

// SPDX-License-Identifier: MIT
// kiln-step: content-hashed caching, audit and pruning for Makefile pipelines.
//
//   kiln-step run   [--cache DIR] [--log FILE] [--name NAME] [--in F]... [--out F]... [--dep F]...
//                   -- COMMAND [ARG...]
//   kiln-step audit [--cache DIR] LOG
//   kiln-step gc    [--cache DIR] [--max-age DAYS] [--max-size BYTES]
//
// run: the step's key is the SHA-256 of a canonical description: the command line with every
// --in/--out path replaced by a placeholder (@in0, @out0, ...), the contents' hashes of the
// command's binary, of every --in and of every --dep. Identical steps in two pipelines (other
// paths, same contents) therefore share a key. On a hit, each output is verified against its
// recorded hash (a corrupt object is discarded and the step rebuilt) and linked into place; the
// command does not run. On a miss the command runs with each output path replaced by a
// temporary (OUT.kiln-tmp) that is renamed into place only when the command succeeds: a failed
// or killed step leaves no output and no cache entry. Outputs and inputs are stored in the
// content-addressed object store (DIR/objects/xx/sha256, read-only, hard-linked when possible);
// the entry DIR/steps/KEY.json names the outputs' hashes. File hashes are remembered in an
// SQLite state table (DIR/state.db: path, device, inode, size, mtime → sha256) so unchanged
// files are not rehashed. One JSON line per step goes to --log (the pipeline's run record).
//
// audit: re-executes every step recorded in LOG from scratch in a scratch directory, with the
// recorded inputs restored from the object store, and compares each output's SHA-256 with the
// record. Prints a table; exit 1 on any mismatch.
//
// gc: removes cache entries and objects not used for --max-age days, then the least recently
// used until the store is under --max-size bytes.
//
// Exit codes: 0 ok; 1 failure (or the command's own non-zero status); 2 usage; 128+signal.
#include "cli.h"
#include "hash.h"
#include "json.h"
#include "store.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXF 64

struct step {
    const char *cache, *log, *name;
    const char *ins[MAXF], *outs[MAXF], *deps[MAXF];
    int nin, nout, ndep;
    char **cmd;
    int ncmd;
    struct store *db;
    char in_sha[MAXF][65], out_sha[MAXF][65], dep_sha[MAXF][65], bin_sha[65];
    char key[65];
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: kiln-step run [--cache DIR] [--log FILE] [--name NAME] [--in FILE]...\n"
               "                     [--out FILE]... [--dep FILE]... -- COMMAND [ARG...]\n"
               "       kiln-step audit [--cache DIR] LOG\n"
               "       kiln-step gc [--cache DIR] [--max-age DAYS] [--max-size BYTES]\n"
               "Content-hashed caching of pipeline steps; see pipelines/README.md.\n");
}

static void
mkdirs(const char *path)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        die("cannot create %s:", p);
    free(p);
}

static void
parent_dirs(const char *path)
{
    char *p = xstrdup(path);
    char *slash = strrchr(p, '/');
    if (slash && slash != p) {
        *slash = 0;
        mkdirs(p);
    }
    free(p);
}

// SHA-256 of a file, through the state table when its (dev, inode, size, mtime) is unchanged.
static void
file_sha(struct step *s, const char *path, char out[65])
{
    struct stat st;
    if (stat(path, &st) != 0)
        die("%s:", path);
    if (!S_ISREG(st.st_mode))
        die("%s: not a regular file", path);
    int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    char *abs = realpath(path, NULL);
    if (!abs)
        die("%s:", path);
    struct kerr err;
    int r = store_file_state_get(s->db, abs, st.st_dev, st.st_ino, (uint64_t)st.st_size, mt, out,
                                 &err);
    if (r < 0)
        die_kerr(&err);
    if (r == 0) {
        uint8_t d[32];
        if (sha256_file(path, d, &err))
            die_kerr(&err);
        hex_encode(d, 32, out);
        if (store_file_state_put(s->db, abs, st.st_dev, st.st_ino, (uint64_t)st.st_size, mt, out,
                                 &err))
            die_kerr(&err);
    }
    free(abs);
}

static char *
object_path(const char *cache, const char *sha)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s/objects/%.2s/%s", cache, sha, sha);
    return buf_detach(&b);
}

// Copies src to dst (used when a hard link is impossible, e.g. across file systems).
static int
copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return -1;
    }
    char b[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, b, sizeof b)) > 0)
        if (write(out, b, (size_t)n) != n) {
            rc = -1;
            break;
        }
    if (n < 0)
        rc = -1;
    close(in);
    if (close(out) != 0)
        rc = -1;
    return rc;
}

// Puts path's content into the object store under sha (no-op when present).
static void
object_put(const char *cache, const char *path, const char *sha)
{
    char *obj = object_path(cache, sha);
    if (access(obj, F_OK) == 0) {
        free(obj);
        return;
    }
    parent_dirs(obj);
    struct buf tmp;
    buf_init(&tmp);
    buf_printf(&tmp, "%s.%d.tmp", obj, (int)getpid());
    if (link(path, tmp.p) != 0 && copy_file(path, tmp.p) != 0)
        die("cannot store %s in the cache:", path);
    chmod(tmp.p, 0444);
    if (rename(tmp.p, obj) != 0)
        die("%s:", obj);
    buf_free(&tmp);
    free(obj);
}

// Verifies an object's content hash; a corrupt object is removed. 1 ok, 0 missing/corrupt.
static int
object_verify(const char *cache, const char *sha)
{
    char *obj = object_path(cache, sha);
    uint8_t d[32];
    char hex[65];
    struct kerr err;
    int ok = 0;
    if (sha256_file(obj, d, &err) == 0) {
        hex_encode(d, 32, hex);
        ok = strcmp(hex, sha) == 0;
        if (!ok) {
            warnx_("corrupt cache object %s (content hash %s): discarded, rebuilding", obj, hex);
            unlink(obj);
        }
    }
    free(obj);
    return ok;
}

// Places object sha at path (replacing it), via a temporary and rename.
static void
object_get(const char *cache, const char *sha, const char *path)
{
    char *obj = object_path(cache, sha);
    parent_dirs(path);
    struct buf tmp;
    buf_init(&tmp);
    buf_printf(&tmp, "%s.kiln-tmp", path);
    unlink(tmp.p);
    if (link(obj, tmp.p) != 0 && copy_file(obj, tmp.p) != 0)
        die("cannot restore %s from the cache:", path);
    if (rename(tmp.p, path) != 0)
        die("%s:", path);
    // Make sees a fresh output even when the object is older than the inputs.
    utimensat(AT_FDCWD, path, NULL, 0);
    buf_free(&tmp);
    free(obj);
}

// Replaces every occurrence of each path in arg by its placeholder (longest paths first).
static void
substitute(const char *arg, const char *const *paths, const char *const *marks, int n,
           struct buf *out)
{
    size_t i = 0, len = strlen(arg);
    while (i < len) {
        int best = -1;
        size_t bl = 0;
        for (int k = 0; k < n; k++) {
            size_t pl = strlen(paths[k]);
            if (pl > bl && pl <= len - i && memcmp(arg + i, paths[k], pl) == 0) {
                best = k;
                bl = pl;
            }
        }
        if (best >= 0) {
            buf_puts(out, marks[best]);
            i += bl;
        } else {
            buf_putc(out, arg[i++]);
        }
    }
}

// Resolves a command name through PATH like execvp would.
static char *
which(const char *cmd)
{
    if (strchr(cmd, '/'))
        return xstrdup(cmd);
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    struct buf b;
    buf_init(&b);
    while (*path) {
        const char *e = strchr(path, ':');
        size_t n = e ? (size_t)(e - path) : strlen(path);
        buf_reset(&b);
        buf_append(&b, path, n);
        buf_printf(&b, "/%s", cmd);
        if (access(b.p, X_OK) == 0)
            return buf_detach(&b);
        path += n + (e ? 1 : 0);
    }
    buf_free(&b);
    die("%s: command not found", cmd);
}

// The placeholders and real paths a step's command refers to: ins then outs.
static int
path_table(const struct step *s, const char **paths, const char **marks, char names[][16])
{
    int n = 0;
    for (int i = 0; i < s->nin; i++, n++) {
        snprintf(names[n], 16, "@in%d", i);
        paths[n] = s->ins[i];
        marks[n] = names[n];
    }
    for (int i = 0; i < s->nout; i++, n++) {
        snprintf(names[n], 16, "@out%d", i);
        paths[n] = s->outs[i];
        marks[n] = names[n];
    }
    return n;
}

static void
compute_key(struct step *s)
{
    const char *paths[2 * MAXF], *marks[2 * MAXF];
    char names[2 * MAXF][16];
    int np = path_table(s, paths, marks, names);
    char *bin = which(s->cmd[0]);
    file_sha(s, bin, s->bin_sha);
    free(bin);
    for (int i = 0; i < s->nin; i++)
        file_sha(s, s->ins[i], s->in_sha[i]);
    for (int i = 0; i < s->ndep; i++)
        file_sha(s, s->deps[i], s->dep_sha[i]);

    struct buf b, arg;
    buf_init(&b);
    buf_init(&arg);
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "v");
    jw_int(&w, 1);
    jw_key(&w, "cmd");
    jw_arr_begin(&w);
    for (int i = 1; i < s->ncmd; i++) {
        buf_reset(&arg);
        substitute(s->cmd[i], paths, marks, np, &arg);
        jw_strn(&w, arg.p ? arg.p : "", arg.len);
    }
    jw_arr_end(&w);
    jw_key(&w, "bin");
    jw_str(&w, s->bin_sha);
    jw_key(&w, "in");
    jw_arr_begin(&w);
    for (int i = 0; i < s->nin; i++)
        jw_str(&w, s->in_sha[i]);
    jw_arr_end(&w);
    jw_key(&w, "dep");
    jw_arr_begin(&w);
    for (int i = 0; i < s->ndep; i++)
        jw_str(&w, s->dep_sha[i]);
    jw_arr_end(&w);
    jw_key(&w, "outs");
    jw_int(&w, s->nout);
    jw_obj_end(&w);
    uint8_t d[32];
    sha256_buf(b.p, b.len, d);
    hex_encode(d, 32, s->key);
    buf_free(&b);
    buf_free(&arg);
}

static char *
entry_path(const char *cache, const char *key)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s/steps/%.2s/%s.json", cache, key, key);
    return buf_detach(&b);
}

// Loads a cache entry's output hashes. 1 when present, valid and every object verifies.
static int
entry_load(struct step *s)
{
    char *path = entry_path(s->cache, s->key);
    struct buf text;
    buf_init(&text);
    struct kerr err;
    int ok = 0;
    if (read_file(path, 1 << 20, &text, &err) == 0) {
        struct json_val v, outs;
        struct json_error je;
        if (json_parse_value(text.p, text.len, &v, &je) == 0 && v.type == JSON_OBJECT &&
            json_val_member(&v, "outs", 4, &outs) && outs.type == JSON_ARRAY) {
            struct json_iter it;
            json_iter_init(&it, &outs);
            int n = 0;
            ok = 1;
            while (json_iter_next(&it)) {
                struct buf h;
                buf_init(&h);
                if (n >= s->nout || it.val.type != JSON_STRING) {
                    ok = 0;
                    buf_free(&h);
                    break;
                }
                json_str(&it.val, &h);
                if (h.len != 64) {
                    ok = 0;
                    buf_free(&h);
                    break;
                }
                memcpy(s->out_sha[n++], h.p, 65);
                buf_free(&h);
            }
            if (n != s->nout)
                ok = 0;
        }
        if (!ok)
            warnx_("%s: unreadable cache entry, rebuilding", path);
        for (int i = 0; ok && i < s->nout; i++)
            if (!object_verify(s->cache, s->out_sha[i]))
                ok = 0;
        if (!ok)
            unlink(path);
    }
    buf_free(&text);
    free(path);
    return ok;
}

static void
entry_save(struct step *s)
{
    char *path = entry_path(s->cache, s->key);
    parent_dirs(path);
    struct buf b, tmp;
    buf_init(&b);
    buf_init(&tmp);
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "key");
    jw_str(&w, s->key);
    jw_key(&w, "name");
    jw_str(&w, s->name ? s->name : "");
    jw_key(&w, "outs");
    jw_arr_begin(&w);
    for (int i = 0; i < s->nout; i++)
        jw_str(&w, s->out_sha[i]);
    jw_arr_end(&w);
    jw_obj_end(&w);
    buf_putc(&b, '\n');
    buf_printf(&tmp, "%s.%d.tmp", path, (int)getpid());
    FILE *f = fopen(tmp.p, "w");
    if (!f || fwrite(b.p, 1, b.len, f) != b.len || fclose(f) != 0)
        die("%s:", tmp.p);
    if (rename(tmp.p, path) != 0)
        die("%s:", path);
    buf_free(&b);
    buf_free(&tmp);
    free(path);
}

// Runs argv, returns its exit status the shell way (128+signal when killed).
static int
spawn(char **argv, const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork:");
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (dir && chdir(dir) != 0) {
            fprintf(stderr, "kiln-step: %s: %s\n", dir, strerror(errno));
            _exit(127);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "kiln-step: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            die("waitpid:");
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static void
log_step(struct step *s, bool hit, double secs)
{
    if (!s->log)
        return;
    struct buf b;
    buf_init(&b);
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "name");
    jw_str(&w, s->name ? s->name : s->cmd[0]);
    jw_key(&w, "key");
    jw_str(&w, s->key);
    jw_key(&w, "hit");
    jw_bool(&w, hit);
    jw_key(&w, "seconds");
    jw_double(&w, secs);
    jw_key(&w, "cmd");
    jw_arr_begin(&w);
    for (int i = 0; i < s->ncmd; i++)
        jw_str(&w, s->cmd[i]);
    jw_arr_end(&w);
    jw_key(&w, "bin");
    jw_str(&w, s->bin_sha);
    const struct {
        const char *k;
        const char **p;
        char (*h)[65];
        int n;
    } groups[3] = {{"in", s->ins, s->in_sha, s->nin},
                   {"out", s->outs, s->out_sha, s->nout},
                   {"dep", s->deps, s->dep_sha, s->ndep}};
    for (int g = 0; g < 3; g++) {
        jw_key(&w, groups[g].k);
        jw_arr_begin(&w);
        for (int i = 0; i < groups[g].n; i++) {
            jw_obj_begin(&w);
            jw_key(&w, "path");
            jw_str(&w, groups[g].p[i]);
            jw_key(&w, "sha256");
            jw_str(&w, groups[g].h[i]);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
    }
    jw_obj_end(&w);
    buf_putc(&b, '\n');
    parent_dirs(s->log);
    int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(fd, b.p, b.len) != (ssize_t)b.len ||
        close(fd) != 0)
        die("%s:", s->log);
    buf_free(&b);
}

static int
cmd_run(struct step *s)
{
    double t0 = now_seconds();
    struct kerr err;
    struct buf dbp;
    buf_init(&dbp);
    mkdirs(s->cache);
    buf_printf(&dbp, "%s/state.db", s->cache);
    if (!(s->db = store_open(dbp.p, &err)))
        die_kerr(&err);
    buf_free(&dbp);
    compute_key(s);
    // Inputs go into the object store too, so an audit can restore exactly what was used.
    for (int i = 0; i < s->nin; i++)
        object_put(s->cache, s->ins[i], s->in_sha[i]);

    if (entry_load(s)) {
        for (int i = 0; i < s->nout; i++)
            object_get(s->cache, s->out_sha[i], s->outs[i]);
        if (cli_verbosity > 0)
            fprintf(stderr, "kiln-step: %s: cached (%.12s)\n", s->name ? s->name : s->cmd[0],
                    s->key);
        log_step(s, true, now_seconds() - t0);
        store_close(s->db);
        return 0;
    }

    // Run with every output path replaced by its temporary.
    char **argv = xcalloc((size_t)s->ncmd + 1, sizeof *argv);
    const char *tmp_paths[MAXF];
    int slots[MAXF];
    for (int i = 0; i < s->nout; i++) {
        struct buf t;
        buf_init(&t);
        buf_printf(&t, "%s.kiln-tmp", s->outs[i]);
        tmp_paths[i] = buf_detach(&t);
        unlink(s->outs[i]);
        unlink(tmp_paths[i]);
        parent_dirs(s->outs[i]);
        slots[i] = cli_tmp_register(tmp_paths[i]);
    }
    for (int i = 0; i < s->ncmd; i++) {
        struct buf a;
        buf_init(&a);
        substitute(s->cmd[i], s->outs, tmp_paths, s->nout, &a);
        argv[i] = buf_detach(&a);
    }
    if (cli_verbosity > 0)
        fprintf(stderr, "kiln-step: %s: running\n", s->name ? s->name : s->cmd[0]);
    int rc = spawn(argv, NULL);
    for (int i = 0; rc == 0 && i < s->nout; i++) {
        if (access(tmp_paths[i], F_OK) != 0) {
            fprintf(stderr, "kiln-step: %s: the command did not write %s\n",
                    s->name ? s->name : s->cmd[0], s->outs[i]);
            rc = 1;
        }
    }
    if (rc == 0) {
        for (int i = 0; i < s->nout; i++) {
            if (rename(tmp_paths[i], s->outs[i]) != 0)
                die("%s:", s->outs[i]);
            cli_tmp_forget(slots[i]);
            file_sha(s, s->outs[i], s->out_sha[i]);
            object_put(s->cache, s->outs[i], s->out_sha[i]);
        }
        entry_save(s);
        log_step(s, false, now_seconds() - t0);
    } else {
        cli_tmp_remove_all();
        if (rc > 128)
            raise(rc - 128); // killed: die the same way (the handler removed the temporaries)
        fprintf(stderr, "kiln-step: %s: failed (exit %d); no output kept\n",
                s->name ? s->name : s->cmd[0], rc);
    }
    for (int i = 0; i < s->nout; i++)
        free((char *)tmp_paths[i]);
    for (int i = 0; i < s->ncmd; i++)
        free(argv[i]);
    free(argv);
    store_close(s->db);
    return rc;
}

// ---- audit ------------------------------------------------------------------------------

struct audit_file {
    char *path, *sha;
};

static int
audit_files(const struct json_val *v, const char *key, struct audit_file *f, int max)
{
    struct json_val arr;
    if (!json_val_member(v, key, strlen(key), &arr) || arr.type != JSON_ARRAY)
        return -1;
    struct json_iter it;
    json_iter_init(&it, &arr);
    int n = 0;
    while (json_iter_next(&it) && n < max) {
        struct json_val p, h;
        if (!json_val_member(&it.val, "path", 4, &p) || !json_val_member(&it.val, "sha256", 6, &h))
            return -1;
        struct buf a, b;
        buf_init(&a);
        buf_init(&b);
        json_str(&p, &a);
        json_str(&h, &b);
        f[n].path = buf_detach(&a);
        f[n].sha = buf_detach(&b);
        n++;
    }
    return n;
}

static int
cmd_audit(const char *cache, const char *log)
{
    struct buf text;
    buf_init(&text);
    struct kerr err;
    if (read_file(log, 0, &text, &err))
        die_kerr(&err);
    char tmpl[] = "/tmp/kiln-audit-XXXXXX";
    char *scratch = mkdtemp(tmpl);
    if (!scratch)
        die("mkdtemp:");
    int steps = 0, bad = 0;
    printf("%-24s %-14s %-14s %s\n", "step", "expected", "got", "match");
    char *line = text.p;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        struct json_val v;
        struct json_error je;
        if (json_parse_value(line, n, &v, &je) != 0 || v.type != JSON_OBJECT)
            die("%s:%d: invalid step record: %s", log, steps + 1, je.msg);
        struct audit_file ins[MAXF], outs[MAXF];
        int nin = audit_files(&v, "in", ins, MAXF), nout = audit_files(&v, "out", outs, MAXF);
        struct json_val cmdv, namev;
        if (nin < 0 || nout < 0 || !json_val_member(&v, "cmd", 3, &cmdv) ||
            !json_val_member(&v, "name", 4, &namev))
            die("%s:%d: incomplete step record", log, steps + 1);
        struct buf name;
        buf_init(&name);
        json_str(&namev, &name);
        steps++;
        // Fresh directory per step: inputs restored from the object store by hash.
        struct buf dir;
        buf_init(&dir);
        buf_printf(&dir, "%s/step%d", scratch, steps);
        mkdirs(dir.p);
        const char *paths[2 * MAXF], *repl[2 * MAXF];
        for (int i = 0; i < nin; i++) {
            char *obj = object_path(cache, ins[i].sha);
            if (!object_verify(cache, ins[i].sha))
                die("%s: input %s (%.12s) is not in the cache", name.p, ins[i].path, ins[i].sha);
            struct buf p;
            buf_init(&p);
            buf_printf(&p, "%s/in%d", dir.p, i);
            if (copy_file(obj, p.p) != 0)
                die("%s:", p.p);
            paths[i] = ins[i].path;
            repl[i] = buf_detach(&p);
            free(obj);
        }
        for (int i = 0; i < nout; i++) {
            struct buf p;
            buf_init(&p);
            buf_printf(&p, "%s/out%d", dir.p, i);
            paths[nin + i] = outs[i].path;
            repl[nin + i] = buf_detach(&p);
        }
        struct json_iter it;
        json_iter_init(&it, &cmdv);
        char *argv[1024];
        int argc = 0;
        while (json_iter_next(&it) && argc < 1023) {
            struct buf a, sub;
            buf_init(&a);
            buf_init(&sub);
            json_str(&it.val, &a);
            substitute(a.p ? a.p : "", paths, repl, nin + nout, &sub);
            argv[argc++] = buf_detach(&sub);
            buf_free(&a);
        }
        argv[argc] = NULL;
        int rc = spawn(argv, NULL);
        for (int i = 0; i < nout; i++) {
            char got[65] = "(failed)";
            uint8_t d[32];
            if (rc == 0 && sha256_file(repl[nin + i], d, &err) == 0)
                hex_encode(d, 32, got);
            else if (rc == 0)
                strcpy(got, "(missing)");
            bool ok = strcmp(got, outs[i].sha) == 0;
            bad += !ok;
            char label[64];
            snprintf(label, sizeof label, "%s%s%d", name.p, nout > 1 ? ":" : "", nout > 1 ? i : 0);
            if (nout == 1)
                snprintf(label, sizeof label, "%s", name.p);
            printf("%-24s %-14.12s %-14.12s %s\n", label, outs[i].sha, got, ok ? "yes" : "NO");
        }
        for (int i = 0; i < argc; i++)
            free(argv[i]);
        for (int i = 0; i < nin + nout; i++)
            free((char *)repl[i]);
        for (int i = 0; i < nin; i++) {
            free(ins[i].path);
            free(ins[i].sha);
        }
        for (int i = 0; i < nout; i++) {
            free(outs[i].path);
            free(outs[i].sha);
        }
        buf_free(&name);
        buf_free(&dir);
        line = nl ? nl + 1 : NULL;
    }
    char *rm[] = {"rm", "-rf", scratch, NULL};
    spawn(rm, NULL);
    printf("audit: %d steps, %d mismatches\n", steps, bad);
    buf_free(&text);
    return bad ? 1 : 0;
}

// ---- gc ---------------------------------------------------------------------------------

struct gc_obj {
    char *path;
    time_t atime;
    off_t size;
};

static int
gc_cmp(const void *a, const void *b)
{
    const struct gc_obj *x = a, *y = b;
    if (x->atime != y->atime)
        return x->atime < y->atime ? -1 : 1;
    return strcmp(x->path, y->path);
}

static void
gc_walk(const char *dir, struct gc_obj **v, size_t *n, size_t *cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        struct buf p;
        buf_init(&p);
        buf_printf(&p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p.p, &st) == 0 && S_ISDIR(st.st_mode)) {
            gc_walk(p.p, v, n, cap);
            buf_free(&p);
        } else if (lstat(p.p, &st) == 0) {
            if (*n == *cap) {
                *cap = *cap ? 2 * *cap : 256;
                *v = xrealloc(*v, *cap * sizeof **v);
            }
            (*v)[(*n)++] = (struct gc_obj){buf_detach(&p), st.st_mtime > st.st_atime ? st.st_mtime : st.st_atime, st.st_size};
        } else {
            buf_free(&p);
        }
    }
    closedir(d);
}

static int
cmd_gc(const char *cache, double max_age_days, uint64_t max_size)
{
    struct gc_obj *v = NULL;
    size_t n = 0, cap = 0;
    struct buf p;
    buf_init(&p);
    buf_printf(&p, "%s/steps", cache);
    gc_walk(p.p, &v, &n, &cap);
    size_t nsteps = n;
    buf_reset(&p);
    buf_printf(&p, "%s/objects", cache);
    gc_walk(p.p, &v, &n, &cap);
    buf_free(&p);
    time_t now = time(NULL);
    uint64_t total = 0, removed = 0, freed = 0;
    for (size_t i = 0; i < n; i++)
        total += (uint64_t)v[i].size;
    // Entries first (so no entry points at a removed object), then objects, oldest first.
    qsort(v, nsteps, sizeof *v, gc_cmp);
    qsort(v + nsteps, n - nsteps, sizeof *v, gc_cmp);
    for (size_t i = 0; i < n; i++) {
        bool old = max_age_days > 0 && difftime(now, v[i].atime) > max_age_days * 86400;
        bool big = max_size > 0 && total > max_size && i >= nsteps;
        if (old || big) {
            if (unlink(v[i].path) == 0) {
                removed++;
                freed += (uint64_t)v[i].size;
                total -= (uint64_t)v[i].size;
            }
        }
        free(v[i].path);
    }
    free(v);
    printf("gc: removed %llu files, %.1f MB freed, %.1f MB kept\n", (unsigned long long)removed,
           (double)freed / 1e6, (double)total / 1e6);
    return 0;
}

int
main(int argc, char **argv)
{
    cli_init("kiln-step");
    cli_prog = "kiln-step";
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        usage(stdout);
        cli_finish_stdout();
        return 0;
    }
    struct step s;
    memset(&s, 0, sizeof s);
    s.cache = getenv("KILN_CACHE_DIR") ? getenv("KILN_CACHE_DIR") : "build/cache/steps";
    double max_age = 0;
    uint64_t max_size = 0;
    int i = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            cli_verbosity = 0;
            continue;
        }
        if (a[0] != '-' || a[1] != '-')
            break;
        if (!val)
            die_usage("%s needs a value", a);
        i++;
        if (!strcmp(a, "--cache"))
            s.cache = val;
        else if (!strcmp(a, "--log"))
            s.log = val;
        else if (!strcmp(a, "--name"))
            s.name = val;
        else if (!strcmp(a, "--in") && s.nin < MAXF)
            s.ins[s.nin++] = val;
        else if (!strcmp(a, "--out") && s.nout < MAXF)
            s.outs[s.nout++] = val;
        else if (!strcmp(a, "--dep") && s.ndep < MAXF)
            s.deps[s.ndep++] = val;
        else if (!strcmp(a, "--max-age"))
            max_age = cli_parse_double("--max-age", val, 0, 1e6);
        else if (!strcmp(a, "--max-size"))
            max_size = cli_parse_u64("--max-size", val);
        else
            die_usage("unknown option %s", a);
    }
    if (!strcmp(sub, "run")) {
        if (i >= argc)
            die_usage("run: no command after --");
        if (s.nout == 0)
            die_usage("run: at least one --out is needed");
        s.cmd = argv + i;
        s.ncmd = argc - i;
        return cmd_run(&s);
    }
    if (!strcmp(sub, "audit")) {
        if (i != argc - 1)
            die_usage("audit: one LOG file expected");
        int rc = cmd_audit(s.cache, argv[i]);
        cli_finish_stdout();
        return rc;
    }
    if (!strcmp(sub, "gc")) {
        int rc = cmd_gc(s.cache, max_age, max_size);
        cli_finish_stdout();
        return rc;
    }
    die_usage("unknown command '%s'", sub);
}

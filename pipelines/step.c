// SPDX-License-Identifier: MIT
// kiln-step: content-hashed caching, audit and pruning for Makefile pipelines.
//
//   kiln-step run   [--cache DIR] [--log FILE] [--name NAME] [--in F]... [--in-dir D]...
//                   [--dep F]... [--out F]... [--out-dir D]... [--aux F]... -- COMMAND [ARG...]
//   kiln-step audit [--cache DIR] LOG
//   kiln-step provenance [--exclude NAME]... -o FILE LOG
//   kiln-step gc    [--cache DIR] [--max-age DAYS] [--max-size BYTES]
//
// run: the step's key is the SHA-256 of a canonical description: the command line with every
// --in/--out path replaced by a placeholder (@in0, @out0, ...), the contents' hashes of the
// command's binary, of every --in, of every --in-dir (a tree hash over its files' names, modes,
// sizes and contents) and of every --dep. Identical steps in two pipelines (other
// paths, same contents) therefore share a key. On a hit, each output is verified against its
// recorded hash (a corrupt object is discarded and the step rebuilt) and linked into place; the
// command does not run. On a miss the command runs with each output path replaced by a
// temporary (DIR/.kiln-tmp-NAME) that is renamed into place only when the command succeeded and
// its result is stored: a failed or killed step, or one that cannot store its result (full
// disk), leaves no output and no cache entry. Steps writing the same output path are
// serialised by a lock (DIR/locks/), so concurrent runs of one tree never share a temporary. Outputs and inputs are stored in the
// content-addressed object store (DIR/objects/xx/sha256, read-only, hard-linked when possible);
// --out-dir names a directory output (e.g. a checkpoint), stored file by file; --aux names a
// volatile output (stats with timings, logs) that is cached and restored like the others but
// never compared by an audit;
// the entry DIR/steps/KEY.json names the outputs' hashes.
// Audits use only the last record per output path in LOG (the step that produced what is
// there now), so a log that grows over many runs stays correct. File hashes are remembered in an
// SQLite state table (DIR/state.db: path, device, inode, size, mtime → sha256) so unchanged
// files are not rehashed. One JSON line per step goes to --log (the pipeline's run record).
//
// audit: re-executes every step recorded in LOG from scratch in a scratch directory, with the
// recorded inputs restored from the object store, and compares each output's SHA-256 with the
// record. Prints a table; exit 1 on any mismatch.
//
// provenance: the latest record per output of LOG without timings, sorted by step name — a
// deterministic account of how the current outputs were made (bundles carry it).
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
#include <ftw.h>
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

enum out_kind { OUT_FILE, OUT_DIR, OUT_AUX };
static const char *const kind_names[] = {"file", "dir", "aux"};

// One output (or directory input): a file (nfiles = 1, rel[0] = "") or a directory's regular
// files (sorted relative paths). sha[i] is the content hash of file i, mode[i] its permissions
// as git records them (0755 when the owner may execute it, else 0644).
struct out {
    const char *path;
    enum out_kind kind;
    char *tmp; // DIR/.kiln-tmp-NAME while the command runs
    int nfiles;
    char **rel;
    char (*sha)[65];
    unsigned *mode;
};

struct step {
    const char *cache, *log, *name;
    const char *ins[MAXF], *deps[MAXF];
    bool in_dir[MAXF];        // --in-dir: ins[i] is a directory, hashed as a tree
    struct out in_tree[MAXF]; // its files (in_sha[i] is the tree hash)
    struct out outs[MAXF];
    int nin, nout, ndep;
    char **cmd;
    int ncmd;
    struct store *db;
    int lock_fd[MAXF];
    char in_sha[MAXF][65], dep_sha[MAXF][65], bin_sha[65];
    char key[65];
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: kiln-step run [--cache DIR] [--log FILE] [--name NAME] [--in FILE]...\n"
               "                     [--in-dir DIR]... [--dep FILE]... [--out FILE]...\n"
               "                     [--out-dir DIR]...\n"
               "                     [--aux FILE]... -- COMMAND [ARG...]\n"
               "       kiln-step audit [--cache DIR] LOG\n"
               "       kiln-step provenance [--exclude NAME]... -o FILE LOG\n"
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

// SHA-256 of a file without the state table.
static void
file_sha_direct(const char *path, char out[65])
{
    uint8_t d[32];
    struct kerr err;
    if (sha256_file(path, d, &err))
        die_kerr(&err);
    hex_encode(d, 32, out);
}

// Records in the state table that path (as it is now) has content hash sha.
static void
state_remember(struct step *s, const char *path, const struct stat *st, const char *sha)
{
    int64_t mt = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    char *abs = realpath(path, NULL);
    struct kerr err;
    if (!abs)
        die("%s:", path);
    if (store_file_state_put(s->db, abs, st->st_dev, st->st_ino, (uint64_t)st->st_size, mt, sha,
                             &err))
        die_kerr(&err);
    free(abs);
}

// SHA-256 of a file, through the state table when its (dev, inode, size, mtime) is unchanged
// (s NULL: always hashed).
static void
file_sha(struct step *s, const char *path, char out[65])
{
    struct stat st;
    if (stat(path, &st) != 0)
        die("%s:", path);
    if (!S_ISREG(st.st_mode))
        die("%s: not a regular file", path);
    if (!s) {
        file_sha_direct(path, out);
        return;
    }
    int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    char *abs = realpath(path, NULL);
    if (!abs)
        die("%s:", path);
    struct kerr err;
    int r = store_file_state_get(s->db, abs, st.st_dev, st.st_ino, (uint64_t)st.st_size, mt, out,
                                 &err);
    if (r < 0)
        die_kerr(&err);
    free(abs);
    if (r == 0) {
        file_sha_direct(path, out);
        state_remember(s, path, &st, out);
    }
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
    while (rc == 0 && (n = read(in, b, sizeof b)) > 0)
        for (ssize_t done = 0, w; rc == 0 && done < n; done += w)
            if ((w = write(out, b + done, (size_t)(n - done))) < 0)
                rc = -1; // errno says why (ENOSPC, EFBIG)
    if (rc == 0 && n < 0)
        rc = -1;
    int e = errno;
    close(in);
    if (close(out) != 0 && rc == 0)
        rc = -1, e = errno;
    errno = e;
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
    // A copy cut short (a full disk) must not stay behind as a half-written object.
    int slot = cli_tmp_register(tmp.p);
    if (link(path, tmp.p) != 0 && copy_file(path, tmp.p) != 0)
        die("cannot store %s in the cache %s:", path, cache);
    chmod(tmp.p, 0444);
    if (rename(tmp.p, obj) != 0)
        die("%s:", obj);
    cli_tmp_forget(slot);
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
    int slot = cli_tmp_register(tmp.p);
    if (link(obj, tmp.p) != 0 && copy_file(obj, tmp.p) != 0)
        die("cannot restore %s from the cache:", path);
    if (rename(tmp.p, path) != 0)
        die("%s:", path);
    cli_tmp_forget(slot);
    // Make sees a fresh output even when the object is older than the inputs.
    utimensat(AT_FDCWD, path, NULL, 0);
    buf_free(&tmp);
    free(obj);
}

// A character that can continue a file name: a path matched inside an argument must not be
// preceded by one of these or by '/' (it would be the tail of another path: "x.jsonl" in
// "data/x.jsonl") nor followed by one ("out" in "out.txt"); a following '/' is fine ("base" in
// "base/config.json").
static bool
name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
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
        bool at_start = i == 0 || !(name_char(arg[i - 1]) || arg[i - 1] == '/');
        for (int k = 0; k < n && at_start; k++) {
            size_t pl = strlen(paths[k]);
            if (pl > bl && pl <= len - i && memcmp(arg + i, paths[k], pl) == 0 &&
                !name_char(arg[i + pl])) {
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

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

// rm -rf path (no error when absent).
static void
remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        die("cannot remove %s:", path);
}

static void
out_files_free(struct out *o)
{
    for (int i = 0; i < o->nfiles; i++)
        free(o->rel[i]);
    free(o->rel);
    free(o->sha);
    free(o->mode);
    o->rel = NULL;
    o->sha = NULL;
    o->mode = NULL;
    o->nfiles = 0;
}

static void
out_add_file(struct out *o, const char *rel, const char *sha, unsigned mode)
{
    o->rel = xrealloc(o->rel, (size_t)(o->nfiles + 1) * sizeof *o->rel);
    o->sha = xrealloc(o->sha, (size_t)(o->nfiles + 1) * sizeof *o->sha);
    o->mode = xrealloc(o->mode, (size_t)(o->nfiles + 1) * sizeof *o->mode);
    o->rel[o->nfiles] = xstrdup(rel);
    snprintf(o->sha[o->nfiles], 65, "%s", sha ? sha : "");
    o->mode[o->nfiles] = mode;
    o->nfiles++;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Lists the regular files under dir (relative paths, names sorted bytewise at each level, so
// the order is deterministic) with their git-style modes. Symlinks, devices, sockets and fifos
// are refused: a tree's content must be its files' bytes, not what a link points to. Empty
// directories are not recorded (as in git).
static void
list_tree(const char *dir, const char *prefix, struct out *o)
{
    DIR *d = opendir(dir);
    if (!d)
        die("%s:", dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        struct buf full, rel;
        buf_init(&full);
        buf_init(&rel);
        buf_printf(&full, "%s/%s", dir, names[i]);
        buf_printf(&rel, "%s%s%s", prefix, *prefix ? "/" : "", names[i]);
        struct stat st;
        if (lstat(full.p, &st) != 0)
            die("%s:", full.p);
        if (S_ISDIR(st.st_mode))
            list_tree(full.p, rel.p, o);
        else if (S_ISREG(st.st_mode))
            out_add_file(o, rel.p, NULL, st.st_mode & S_IXUSR ? 0755 : 0644);
        else
            die("%s: %s; directory inputs and outputs may hold only regular files and directories",
                full.p, S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
        buf_free(&full);
        buf_free(&rel);
        free(names[i]);
    }
    free(names);
}

static char *
join(const char *dir, const char *rel)
{
    struct buf b;
    buf_init(&b);
    if (*rel)
        buf_printf(&b, "%s/%s", dir, rel);
    else
        buf_puts(&b, dir);
    return buf_detach(&b);
}

// The content hash of a directory tree (--in-dir): SHA-256 over one line per file, in
// list_tree's order, "MODE SIZE SHA256 PATH\n" (MODE 755 or 644). t receives the files.
// s NULL: every file is hashed (no state table).
static void
tree_sha(struct step *s, const char *dir, struct out *t, char out[65])
{
    struct stat st;
    if (stat(dir, &st) != 0)
        die("%s:", dir);
    if (!S_ISDIR(st.st_mode))
        die("%s: not a directory", dir);
    out_files_free(t);
    list_tree(dir, "", t);
    struct sha256 h;
    sha256_init(&h);
    struct buf line;
    buf_init(&line);
    for (int f = 0; f < t->nfiles; f++) {
        char *p = join(dir, t->rel[f]);
        if (strchr(t->rel[f], '\n'))
            die("%s: file names with a newline are not supported in a directory input", p);
        file_sha(s, p, t->sha[f]);
        if (stat(p, &st) != 0)
            die("%s:", p);
        buf_reset(&line);
        buf_printf(&line, "%o %lld %s %s\n", t->mode[f], (long long)st.st_size, t->sha[f],
                   t->rel[f]);
        sha256_update(&h, line.p, line.len);
        free(p);
    }
    uint8_t d[32];
    sha256_final(&h, d);
    hex_encode(d, 32, out);
    buf_free(&line);
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
        paths[n] = s->outs[i].path;
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
    for (int i = 0; i < s->nin; i++) {
        if (s->in_dir[i])
            tree_sha(s, s->ins[i], &s->in_tree[i], s->in_sha[i]);
        else
            file_sha(s, s->ins[i], s->in_sha[i]);
    }
    for (int i = 0; i < s->ndep; i++)
        file_sha(s, s->deps[i], s->dep_sha[i]);

    struct buf b, arg;
    buf_init(&b);
    buf_init(&arg);
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "v");
    jw_int(&w, 2);
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
    for (int i = 0; i < s->nin; i++) {
        buf_reset(&arg);
        buf_printf(&arg, "%s%s", s->in_dir[i] ? "tree:" : "", s->in_sha[i]);
        jw_str(&w, arg.p);
    }
    jw_arr_end(&w);
    jw_key(&w, "dep");
    jw_arr_begin(&w);
    for (int i = 0; i < s->ndep; i++)
        jw_str(&w, s->dep_sha[i]);
    jw_arr_end(&w);
    jw_key(&w, "outs");
    jw_arr_begin(&w);
    for (int i = 0; i < s->nout; i++)
        jw_str(&w, kind_names[s->outs[i].kind]);
    jw_arr_end(&w);
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

// Writes the outputs as JSON: [{"path","kind","files":[{"path","sha256"}]}].
static void
write_outs(struct json_writer *w, const struct out *outs, int n)
{
    jw_arr_begin(w);
    for (int i = 0; i < n; i++) {
        jw_obj_begin(w);
        jw_key(w, "path");
        jw_str(w, outs[i].path);
        jw_key(w, "kind");
        jw_str(w, kind_names[outs[i].kind]);
        jw_key(w, "files");
        jw_arr_begin(w);
        for (int f = 0; f < outs[i].nfiles; f++) {
            jw_obj_begin(w);
            jw_key(w, "path");
            jw_str(w, outs[i].rel[f]);
            jw_key(w, "sha256");
            jw_str(w, outs[i].sha[f]);
            jw_obj_end(w);
        }
        jw_arr_end(w);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static bool
member_str(const struct json_val *v, const char *key, struct buf *out)
{
    struct json_val m;
    buf_reset(out);
    if (!json_val_member(v, key, strlen(key), &m) || m.type != JSON_STRING)
        return false;
    json_str(&m, out);
    return true;
}

static void
free_outs(struct out *outs, int n)
{
    for (int i = 0; i < n; i++) {
        out_files_free(&outs[i]);
        free((char *)outs[i].path);
    }
}

// Reads one {"path","kind","files":[{"path","sha256","mode"}]} object (an output, or an input
// directory of a record) into o. 0 or -1 when malformed.
static int
read_one(const struct json_val *v, struct out *o)
{
    struct buf p, k, h, m;
    buf_init(&p);
    buf_init(&k);
    buf_init(&h);
    buf_init(&m);
    memset(o, 0, sizeof *o);
    struct json_val files;
    int rc = member_str(v, "path", &p) && member_str(v, "kind", &k) &&
                     json_val_member(v, "files", 5, &files) && files.type == JSON_ARRAY
                 ? 0
                 : -1;
    if (rc == 0) {
        o->path = xstrdup(p.p);
        o->kind = !strcmp(k.p, "dir") ? OUT_DIR : !strcmp(k.p, "aux") ? OUT_AUX : OUT_FILE;
        struct json_iter fi;
        json_iter_init(&fi, &files);
        while (rc == 0 && json_iter_next(&fi)) {
            if (!member_str(&fi.val, "path", &p) || !member_str(&fi.val, "sha256", &h) ||
                h.len != 64)
                rc = -1;
            else
                out_add_file(o, p.p, h.p,
                             member_str(&fi.val, "mode", &m) && !strcmp(m.p, "755") ? 0755 : 0644);
        }
    }
    buf_free(&p);
    buf_free(&k);
    buf_free(&h);
    buf_free(&m);
    return rc;
}

// Reads outputs written by write_outs into outs[0..max). Returns the count or -1.
static int
read_outs(const struct json_val *arr, struct out *outs, int max)
{
    if (arr->type != JSON_ARRAY)
        return -1;
    struct json_iter it;
    json_iter_init(&it, arr);
    int n = 0;
    while (json_iter_next(&it)) {
        if (n >= max || read_one(&it.val, &outs[n++]) != 0) {
            free_outs(outs, n);
            return -1;
        }
    }
    return n;
}


// Loads a cache entry into s->outs' file lists. 1 when present, valid and every object
// verifies; a damaged entry is removed.
static int
entry_load(struct step *s)
{
    char *path = entry_path(s->cache, s->key);
    struct buf text;
    buf_init(&text);
    struct kerr err;
    int ok = 0;
    if (read_file(path, 16 << 20, &text, &err) == 0) {
        struct json_val v, arr;
        struct json_error je;
        struct out got[MAXF];
        int n = -1;
        if (json_parse_value(text.p, text.len, &v, &je) == 0 && v.type == JSON_OBJECT &&
            json_val_member(&v, "outs", 4, &arr))
            n = read_outs(&arr, got, MAXF);
        ok = n == s->nout;
        for (int i = 0; ok && i < n; i++)
            ok = got[i].kind == s->outs[i].kind && got[i].nfiles >= (got[i].kind != OUT_DIR);
        if (!ok)
            warnx_("%s: unreadable cache entry, rebuilding", path);
        for (int i = 0; ok && i < n; i++)
            for (int f = 0; ok && f < got[i].nfiles; f++)
                ok = object_verify(s->cache, got[i].sha[f]);
        for (int i = 0; ok && i < n; i++) {
            out_files_free(&s->outs[i]);
            for (int f = 0; f < got[i].nfiles; f++)
                out_add_file(&s->outs[i], got[i].rel[f], got[i].sha[f], got[i].mode[f]);
        }
        if (n > 0)
            free_outs(got, n);
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
    write_outs(&w, s->outs, s->nout);
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

// Builds an output at o->tmp from the object store.
static void
out_build(const char *cache, struct out *o)
{
    remove_tree(o->tmp);
    if (o->kind == OUT_DIR) {
        mkdirs(o->tmp);
        for (int f = 0; f < o->nfiles; f++) {
            char *p = join(o->tmp, o->rel[f]);
            object_get(cache, o->sha[f], p);
            free(p);
        }
    } else {
        object_get(cache, o->sha[0], o->tmp);
    }
}

// Moves o->tmp into place with a fresh mtime (make must see the output as new).
static void
out_place(struct out *o)
{
    remove_tree(o->path);
    if (rename(o->tmp, o->path) != 0)
        die("%s:", o->path);
    utimensat(AT_FDCWD, o->path, NULL, 0);
}

// After a successful command: hashes o->tmp's files and puts them in the object store. The
// output is moved into place only after every object, the entry and the record are written,
// so a step that cannot store its result (a full disk) leaves no output behind.
static void
out_store(struct step *s, struct out *o)
{
    struct stat st;
    if (lstat(o->tmp, &st) != 0)
        die("%s: the command did not write %s", s->name ? s->name : s->cmd[0], o->path);
    if ((o->kind == OUT_DIR) != (S_ISDIR(st.st_mode) != 0))
        die("%s: %s is %s a directory", s->name ? s->name : s->cmd[0], o->path,
            o->kind == OUT_DIR ? "not" : "unexpectedly");
    out_files_free(o);
    if (o->kind == OUT_DIR)
        list_tree(o->tmp, "", o);
    else
        out_add_file(o, "", NULL, 0644);
    for (int f = 0; f < o->nfiles; f++) {
        char *p = join(o->tmp, o->rel[f]);
        file_sha_direct(p, o->sha[f]);
        object_put(s->cache, p, o->sha[f]);
        free(p);
    }
}

// Once o is in place: its files' hashes go to the state table, so the next step that reads
// them does not hash them again.
static void
out_remember(struct step *s, const struct out *o)
{
    for (int f = 0; f < o->nfiles; f++) {
        char *p = join(o->path, o->rel[f]);
        struct stat st;
        if (stat(p, &st) != 0)
            die("%s:", p);
        state_remember(s, p, &st, o->sha[f]);
        free(p);
    }
}

// Temporaries to remove when kiln-step exits before its outputs are in place (die() on a
// full disk, a store error): no half-written output stays behind.
static struct step *pending;

static void
remove_pending(void)
{
    for (int i = 0; pending && i < pending->nout; i++) {
        struct stat st;
        const char *t = pending->outs[i].tmp;
        if (t && lstat(t, &st) == 0 && (S_ISDIR(st.st_mode) ? nftw(t, rm_one, 16, FTW_DEPTH | FTW_PHYS) : unlink(t)) != 0)
            fprintf(stderr, "kiln-step: cannot remove %s: %s\n", t, strerror(errno));
    }
}

// Serialises steps that write the same output path (two runs of one tree at once, a step
// started while another run's identical step is still running): an exclusive flock on
// CACHE/locks/SHA256(absolute output path), taken in sorted order. The second run waits, then
// usually finds the first one's result in the cache. A lock file removed by gc while we
// waited is reopened.
static void
lock_outputs(struct step *s)
{
    char names[MAXF][65];
    int n = 0;
    for (int i = 0; i < s->nout; i++) {
        char *dir = xstrdup(s->outs[i].path);
        char *slash = strrchr(dir, '/');
        const char *base = slash ? slash + 1 : dir;
        if (slash)
            *slash = 0;
        char *abs = realpath(slash ? (*dir ? dir : "/") : ".", NULL);
        if (!abs)
            die("%s:", s->outs[i].path);
        struct buf b;
        buf_init(&b);
        buf_printf(&b, "%s/%s", abs, base);
        uint8_t d[32];
        sha256_buf(b.p, b.len, d);
        hex_encode(d, 32, names[n]);
        bool dup = false;
        for (int k = 0; k < n; k++)
            dup |= !strcmp(names[k], names[n]);
        n += !dup;
        buf_free(&b);
        free(abs);
        free(dir);
    }
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    struct buf p;
    buf_init(&p);
    buf_printf(&p, "%s/locks", s->cache);
    mkdirs(p.p);
    for (int i = 0; i < n; i++) {
        buf_reset(&p);
        buf_printf(&p, "%s/locks/%s", s->cache, names[i]);
        for (bool warned = false;;) {
            int fd = open(p.p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0)
                die("%s:", p.p);
            if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
                if (errno != EWOULDBLOCK)
                    die("%s:", p.p);
                if (!warned && cli_verbosity > 0)
                    fprintf(stderr, "kiln-step: %s: waiting for another run writing %s\n",
                            s->name ? s->name : s->cmd[0], s->outs[0].path);
                warned = true;
                if (flock(fd, LOCK_EX) != 0)
                    die("%s:", p.p);
            }
            struct stat a, b;
            if (fstat(fd, &a) == 0 && stat(p.p, &b) == 0 && a.st_ino == b.st_ino &&
                a.st_dev == b.st_dev) {
                futimens(fd, NULL); // gc removes locks unused for --max-age days
                s->lock_fd[i] = fd;
                break;
            }
            close(fd);
        }
    }
    for (int i = n; i < MAXF; i++)
        s->lock_fd[i] = -1;
    buf_free(&p);
}

static volatile sig_atomic_t child_pid, got_signal;

static void
forward_signal(int sig)
{
    got_signal = sig;
    if (child_pid > 0)
        kill((pid_t)child_pid, sig);
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
        signal(SIGXFSZ, SIG_DFL); // kiln-step ignores it (to report EFBIG); the command must not
        if (dir && chdir(dir) != 0) {
            fprintf(stderr, "kiln-step: %s: %s\n", dir, strerror(errno));
            _exit(127);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "kiln-step: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    child_pid = pid;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            die("waitpid:");
    child_pid = 0;
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
    } groups[2] = {{"in", s->ins, s->in_sha, s->nin}, {"dep", s->deps, s->dep_sha, s->ndep}};
    for (int g = 0; g < 2; g++) {
        jw_key(&w, groups[g].k);
        jw_arr_begin(&w);
        for (int i = 0; i < groups[g].n; i++) {
            jw_obj_begin(&w);
            jw_key(&w, "path");
            jw_str(&w, groups[g].p[i]);
            jw_key(&w, "sha256");
            jw_str(&w, groups[g].h[i]);
            if (g == 0 && s->in_dir[i]) { // a tree: its files, so an audit can rebuild it
                const struct out *t = &s->in_tree[i];
                jw_key(&w, "kind");
                jw_str(&w, "dir");
                jw_key(&w, "files");
                jw_arr_begin(&w);
                for (int f = 0; f < t->nfiles; f++) {
                    jw_obj_begin(&w);
                    jw_key(&w, "path");
                    jw_str(&w, t->rel[f]);
                    jw_key(&w, "sha256");
                    jw_str(&w, t->sha[f]);
                    jw_key(&w, "mode");
                    jw_str(&w, t->mode[f] == 0755 ? "755" : "644");
                    jw_obj_end(&w);
                }
                jw_arr_end(&w);
            }
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
    }
    jw_key(&w, "out");
    write_outs(&w, s->outs, s->nout);
    jw_obj_end(&w);
    buf_putc(&b, '\n');
    parent_dirs(s->log);
    // One line, appended under an exclusive lock (concurrent steps of make -j); a write cut
    // short (full disk) is truncated away so the log never holds half a record.
    int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || flock(fd, LOCK_EX) != 0 || fstat(fd, &st) != 0)
        die("%s:", s->log);
    size_t done = 0;
    for (ssize_t nw; done < b.len && (nw = write(fd, b.p + done, b.len - done)) >= 0;)
        done += (size_t)nw;
    if (done < b.len) {
        int e = errno; // ENOSPC, EFBIG
        int t = ftruncate(fd, st.st_size); // best effort; the error below is what matters
        (void)t;
        errno = e;
        die("cannot append to the run record %s:", s->log);
    }
    if (close(fd) != 0)
        die("%s:", s->log);
    buf_free(&b);
}

static const char *
step_label(const struct step *s)
{
    return s->name ? s->name : s->cmd[0];
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
    for (int i = 0; i < s->nout; i++)
        parent_dirs(s->outs[i].path);
    lock_outputs(s);
    compute_key(s);
    // Inputs go into the object store too, so an audit can restore exactly what was used.
    for (int i = 0; i < s->nin; i++) {
        if (!s->in_dir[i]) {
            object_put(s->cache, s->ins[i], s->in_sha[i]);
            continue;
        }
        for (int f = 0; f < s->in_tree[i].nfiles; f++) {
            char *p = join(s->ins[i], s->in_tree[i].rel[f]);
            object_put(s->cache, p, s->in_tree[i].sha[f]);
            free(p);
        }
    }
    for (int i = 0; i < s->nout; i++) {
        // The temporary keeps the output's name as its suffix (DIR/.kiln-tmp-NAME), so
        // commands that choose a format by extension (.zst, .gguf) behave the same.
        struct buf t;
        buf_init(&t);
        const char *slash = strrchr(s->outs[i].path, '/');
        if (slash)
            buf_printf(&t, "%.*s/.kiln-tmp-%s", (int)(slash - s->outs[i].path), s->outs[i].path,
                       slash + 1);
        else
            buf_printf(&t, ".kiln-tmp-%s", s->outs[i].path);
        s->outs[i].tmp = buf_detach(&t);
        remove_tree(s->outs[i].tmp); // left over from a killed run
    }
    pending = s;

    int rc = 0;
    if (entry_load(s)) {
        for (int i = 0; i < s->nout; i++)
            out_build(s->cache, &s->outs[i]);
        log_step(s, true, now_seconds() - t0);
        for (int i = 0; i < s->nout; i++)
            out_place(&s->outs[i]);
        if (cli_verbosity > 0)
            fprintf(stderr, "kiln-step: %s: cached (%.12s)\n", step_label(s), s->key);
    } else {
        // Run with every output path replaced by its temporary. While the command runs,
        // SIGINT/SIGTERM/SIGHUP are forwarded to it; we clean up once it has exited, then die
        // of the same signal.
        const char *paths[MAXF], *tmps[MAXF];
        for (int i = 0; i < s->nout; i++) {
            paths[i] = s->outs[i].path;
            tmps[i] = s->outs[i].tmp;
            remove_tree(s->outs[i].path);
        }
        char **argv = xcalloc((size_t)s->ncmd + 1, sizeof *argv);
        for (int i = 0; i < s->ncmd; i++) {
            struct buf a;
            buf_init(&a);
            substitute(s->cmd[i], paths, tmps, s->nout, &a);
            argv[i] = buf_detach(&a);
        }
        if (cli_verbosity > 0)
            fprintf(stderr, "kiln-step: %s: running\n", step_label(s));
        struct sigaction fwd, old_int, old_term, old_hup;
        memset(&fwd, 0, sizeof fwd);
        fwd.sa_handler = forward_signal;
        sigaction(SIGINT, &fwd, &old_int);
        sigaction(SIGTERM, &fwd, &old_term);
        sigaction(SIGHUP, &fwd, &old_hup);
        rc = spawn(argv, NULL);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        if (got_signal && (rc == 0 || rc == 128 + got_signal))
            rc = 128 + got_signal; // interrupted (even if the command ignored it)
        if (rc == 0) {
            for (int i = 0; i < s->nout; i++)
                out_store(s, &s->outs[i]);
            entry_save(s);
            log_step(s, false, now_seconds() - t0);
            for (int i = 0; i < s->nout; i++) {
                out_place(&s->outs[i]);
                out_remember(s, &s->outs[i]);
            }
        } else {
            for (int i = 0; i < s->nout; i++)
                remove_tree(s->outs[i].tmp);
            if (got_signal) {
                signal(got_signal, SIG_DFL);
                raise(got_signal); // interrupted: die the same way
            }
            if (rc > 128)
                fprintf(stderr, "kiln-step: %s: killed by signal %d (%s); no output kept\n",
                        step_label(s), rc - 128, strsignal(rc - 128));
            else
                fprintf(stderr, "kiln-step: %s: failed (exit %d); no output kept\n",
                        step_label(s), rc);
        }
        for (int i = 0; i < s->ncmd; i++)
            free(argv[i]);
        free(argv);
    }
    pending = NULL;
    for (int i = 0; i < s->nout; i++) {
        free(s->outs[i].tmp);
        out_files_free(&s->outs[i]);
    }
    for (int i = 0; i < s->nin; i++)
        out_files_free(&s->in_tree[i]);
    for (int i = 0; i < MAXF && s->lock_fd[i] >= 0; i++)
        close(s->lock_fd[i]);
    store_close(s->db);
    return rc;
}

// ---- audit ------------------------------------------------------------------------------

// Copies object sha to dest with the given mode, verifying the object first.
static void
object_restore(const char *cache, const char *step, const char *what, const char *sha,
               const char *dest, unsigned mode)
{
    if (!object_verify(cache, sha))
        die("%s: input %s (%.12s) is not in the cache", step, what, sha);
    char *obj = object_path(cache, sha);
    parent_dirs(dest);
    if (copy_file(obj, dest) != 0 || chmod(dest, mode) != 0)
        die("%s:", dest);
    free(obj);
}

// Rebuilds a recorded input at dest from the object store, by content: a file by its SHA-256;
// a directory file by file (with modes), then checked as a whole against its tree hash, so a
// step that reads a checkpoint directory is audited on exactly the bytes it used.
static void
input_restore(const char *cache, const struct json_val *in, const char *step, const char *path,
              const char *sha, const char *dest)
{
    struct buf kind;
    buf_init(&kind);
    bool is_dir = member_str(in, "kind", &kind) && !strcmp(kind.p, "dir");
    buf_free(&kind);
    if (!is_dir) {
        object_restore(cache, step, path, sha, dest, 0644);
        return;
    }
    struct out t, check;
    memset(&check, 0, sizeof check);
    if (read_one(in, &t) != 0)
        die("%s: bad directory input %s in the record", step, path);
    mkdirs(dest);
    for (int f = 0; f < t.nfiles; f++) {
        char *p = join(dest, t.rel[f]);
        object_restore(cache, step, p, t.sha[f], p, t.mode[f]);
        free(p);
    }
    char got[65];
    tree_sha(NULL, dest, &check, got);
    if (strcmp(got, sha))
        die("%s: directory input %s rebuilt from the cache has tree hash %.12s, recorded %.12s",
            step, path, got, sha);
    out_files_free(&check);
    free_outs(&t, 1);
}

struct record {
    struct json_val v;
    struct out outs[MAXF];
    int nout;
    bool superseded; // a later record wrote the same first output
};

// The audit's scratch directory, removed at exit if the audit dies (an input not in the cache).
static const char *audit_scratch;

static void
remove_scratch(void)
{
    if (audit_scratch)
        nftw(audit_scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
cmd_audit(const char *cache, const char *log)
{
    atexit(remove_scratch);
    struct buf text;
    buf_init(&text);
    struct kerr err;
    if (read_file(log, 0, &text, &err))
        die_kerr(&err);
    // Parse every record first: only the last one per output path is audited.
    struct record *recs = NULL;
    size_t nrec = 0;
    char *line = text.p;
    for (size_t lineno = 1; line && *line; lineno++) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        struct json_error je;
        struct json_val v, outv;
        if (json_parse_value(line, n, &v, &je) != 0 || v.type != JSON_OBJECT)
            die("%s:%zu:%zu: invalid step record: %s", log, lineno, je.offset + 1, je.msg);
        recs = xrealloc(recs, (nrec + 1) * sizeof *recs);
        struct record *r = &recs[nrec++];
        memset(r, 0, sizeof *r);
        r->v = v;
        if (!json_val_member(&v, "out", 3, &outv) || (r->nout = read_outs(&outv, r->outs, MAXF)) < 1)
            die("%s:%zu: step record without outputs", log, lineno);
        line = nl ? nl + 1 : NULL;
    }
    for (size_t i = 0; i < nrec; i++)
        for (size_t j = i + 1; j < nrec && !recs[i].superseded; j++)
            if (!strcmp(recs[i].outs[0].path, recs[j].outs[0].path))
                recs[i].superseded = true;

    char tmpl[] = "/tmp/kiln-audit-XXXXXX";
    char *scratch = mkdtemp(tmpl);
    if (!scratch)
        die("mkdtemp:");
    audit_scratch = scratch;
    int steps = 0, bad = 0, compared = 0;
    printf("%-32s %-12s %-12s %s\n", "step/output", "expected", "got", "match");
    struct buf name, a, dir;
    buf_init(&name);
    buf_init(&a);
    buf_init(&dir);
    for (size_t r = 0; r < nrec; r++) {
        if (recs[r].superseded)
            continue;
        const struct json_val *v = &recs[r].v;
        struct json_val cmdv, insv;
        if (!member_str(v, "name", &name) || !json_val_member(v, "cmd", 3, &cmdv) ||
            !json_val_member(v, "in", 2, &insv) || insv.type != JSON_ARRAY)
            die("%s: incomplete step record %zu", log, r + 1);
        steps++;
        buf_reset(&dir);
        buf_printf(&dir, "%s/step%d", scratch, steps);
        mkdirs(dir.p);
        // Inputs restored from the object store by hash; outputs go to fresh paths.
        const char *paths[2 * MAXF], *repl[2 * MAXF];
        int np = 0;
        struct json_iter it;
        json_iter_init(&it, &insv);
        while (json_iter_next(&it) && np < MAXF) {
            struct buf ip, ih;
            buf_init(&ip);
            buf_init(&ih);
            if (!member_str(&it.val, "path", &ip) || !member_str(&it.val, "sha256", &ih))
                die("%s: bad input in step record %zu", log, r + 1);
            // Same base name as the original: some commands record names (bundles, logs).
            struct buf p;
            buf_init(&p);
            buf_printf(&p, "%s/in%d", dir.p, np);
            mkdirs(p.p);
            const char *base = strrchr(ip.p, '/');
            buf_printf(&p, "/%s", base ? base + 1 : ip.p);
            input_restore(cache, &it.val, name.p, ip.p, ih.p, p.p);
            paths[np] = buf_detach(&ip);
            repl[np++] = buf_detach(&p);
            buf_free(&ih);
        }
        int nin = np;
        for (int i = 0; i < recs[r].nout; i++) {
            struct buf p;
            buf_init(&p);
            buf_printf(&p, "%s/out%d", dir.p, i);
            mkdirs(p.p);
            const char *base = strrchr(recs[r].outs[i].path, '/');
            buf_printf(&p, "/%s", base ? base + 1 : recs[r].outs[i].path);
            paths[np] = xstrdup(recs[r].outs[i].path);
            repl[np++] = buf_detach(&p);
        }
        char *argv[1024];
        int argc = 0;
        json_iter_init(&it, &cmdv);
        while (json_iter_next(&it) && argc < 1023) {
            struct buf sub;
            buf_init(&sub);
            buf_reset(&a);
            json_str(&it.val, &a);
            substitute(a.p ? a.p : "", paths, repl, np, &sub);
            argv[argc++] = buf_detach(&sub);
        }
        argv[argc] = NULL;
        int rc = spawn(argv, NULL);
        for (int i = 0; i < recs[r].nout; i++) {
            const struct out *o = &recs[r].outs[i];
            if (o->kind == OUT_AUX)
                continue;
            // A directory must hold exactly the recorded files.
            struct out got;
            memset(&got, 0, sizeof got);
            got.kind = o->kind;
            struct stat st;
            if (rc == 0 && o->kind == OUT_DIR && stat(repl[nin + i], &st) == 0 && S_ISDIR(st.st_mode))
                list_tree(repl[nin + i], "", &got);
            for (int f = 0; f < o->nfiles; f++) {
                char *p = join(repl[nin + i], o->rel[f]);
                char h[65] = "(missing)";
                uint8_t d[32];
                if (rc != 0)
                    strcpy(h, "(failed)");
                else if (sha256_file(p, d, &err) == 0)
                    hex_encode(d, 32, h);
                bool ok = strcmp(h, o->sha[f]) == 0;
                bad += !ok;
                compared++;
                char label[256];
                snprintf(label, sizeof label, "%s%s%s", name.p, *o->rel[f] ? ":" : "", o->rel[f]);
                printf("%-32s %-12.12s %-12.12s %s\n", label, o->sha[f], h, ok ? "yes" : "NO");
                free(p);
            }
            if (o->kind == OUT_DIR && rc == 0 && got.nfiles != o->nfiles) {
                printf("%-32s %-12d %-12d %s\n", name.p, o->nfiles, got.nfiles,
                       "NO (file count)");
                bad++;
            }
            out_files_free(&got);
        }
        for (int i = 0; i < argc; i++)
            free(argv[i]);
        for (int i = 0; i < np; i++) {
            free((char *)paths[i]);
            free((char *)repl[i]);
        }
    }
    audit_scratch = NULL;
    remove_tree(scratch);
    printf("audit: %d steps, %d outputs compared, %d mismatches\n", steps, compared, bad);
    for (size_t r = 0; r < nrec; r++)
        free_outs(recs[r].outs, recs[r].nout);
    free(recs);
    buf_free(&name);
    buf_free(&a);
    buf_free(&dir);
    buf_free(&text);
    return bad ? 1 : 0;
}

// ---- provenance ---------------------------------------------------------------------------

// Writes the latest record per output path of LOG, without the volatile fields (seconds,
// hit, --aux outputs), sorted by step name, skipping steps named in exclude: a deterministic summary of how
// the current outputs were made, for bundles.
static int
cmd_provenance(const char *log, const char *out, const char *const *exclude, int nexclude)
{
    struct buf text, o, name;
    buf_init(&text);
    buf_init(&o);
    buf_init(&name);
    struct kerr err;
    if (read_file(log, 0, &text, &err))
        die_kerr(&err);
    struct prov {
        struct json_val v;
        char *name, *first_out;
    } *recs = NULL;
    size_t n = 0;
    char *line = text.p;
    for (size_t lineno = 1; line && *line; lineno++) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        struct json_error je;
        struct json_val v, outv;
        struct out outs[MAXF];
        int nout;
        if (json_parse_value(line, len, &v, &je) != 0 || v.type != JSON_OBJECT ||
            !member_str(&v, "name", &name) || !json_val_member(&v, "out", 3, &outv) ||
            (nout = read_outs(&outv, outs, MAXF)) < 1)
            die("%s:%zu: invalid step record", log, lineno);
        bool skip = false;
        for (int i = 0; i < nexclude; i++)
            skip |= !strcmp(name.p, exclude[i]);
        if (!skip) {
            recs = xrealloc(recs, (n + 1) * sizeof *recs);
            recs[n++] = (struct prov){v, xstrdup(name.p), xstrdup(outs[0].path)};
        }
        free_outs(outs, nout);
        line = nl ? nl + 1 : NULL;
    }
    // Keep the last record per first output, then order by name (stable on log order).
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool later = false;
        for (size_t j = i + 1; j < n && !later; j++)
            later = !strcmp(recs[i].first_out, recs[j].first_out);
        if (later) {
            free(recs[i].name);
            free(recs[i].first_out);
        } else {
            recs[kept++] = recs[i];
        }
    }
    for (size_t i = 1; i < kept; i++) // insertion sort: stable, small n
        for (size_t j = i; j > 0 && strcmp(recs[j - 1].name, recs[j].name) > 0; j--) {
            struct prov t = recs[j];
            recs[j] = recs[j - 1];
            recs[j - 1] = t;
        }
    static const char *const keep_keys[] = {"name", "key", "cmd", "bin", "in", "dep", "out"};
    for (size_t i = 0; i < kept; i++) {
        buf_putc(&o, '{');
        for (size_t k = 0; k < KILN_ARRAY_LEN(keep_keys); k++) {
            struct json_val m;
            if (!json_val_member(&recs[i].v, keep_keys[k], strlen(keep_keys[k]), &m))
                continue;
            if (o.p[o.len - 1] != '{')
                buf_putc(&o, ',');
            json_write_str(&o, keep_keys[k], strlen(keep_keys[k]));
            buf_putc(&o, ':');
            struct out outs[MAXF];
            int nout;
            if (strcmp(keep_keys[k], "out") || (nout = read_outs(&m, outs, MAXF)) < 0) {
                buf_append(&o, m.raw, m.raw_len);
                continue;
            }
            // --aux outputs (stats with timings, logs) differ from run to run: their hashes
            // would make the provenance, and the bundle that carries it, nondeterministic.
            int keep = 0;
            for (int f = 0; f < nout; f++) {
                if (outs[f].kind == OUT_AUX) {
                    free_outs(&outs[f], 1);
                    continue;
                }
                outs[keep++] = outs[f];
            }
            struct json_writer w;
            json_writer_init(&w, &o);
            write_outs(&w, outs, keep);
            free_outs(outs, keep);
        }
        buf_puts(&o, "}\n");
        free(recs[i].name);
        free(recs[i].first_out);
    }
    free(recs);
    struct buf tmp;
    buf_init(&tmp);
    buf_printf(&tmp, "%s.%d.tmp", out, (int)getpid());
    int slot = cli_tmp_register(tmp.p);
    FILE *f = fopen(tmp.p, "w");
    if (!f || fwrite(o.p ? o.p : "", 1, o.len, f) != o.len || fclose(f) != 0)
        die("%s:", tmp.p);
    if (rename(tmp.p, out) != 0)
        die("%s:", out);
    cli_tmp_forget(slot);
    buf_free(&tmp);
    buf_free(&o);
    buf_free(&name);
    buf_free(&text);
    return 0;
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
    // Output locks unused for --max-age days, unless held right now (lock_outputs reopens a
    // lock file that disappears while it waits).
    buf_init(&p);
    buf_printf(&p, "%s/locks", cache);
    DIR *d = max_age_days > 0 ? opendir(p.p) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        struct buf f;
        buf_init(&f);
        buf_printf(&f, "%s/%s", p.p, e->d_name);
        struct stat st;
        int fd = -1;
        if (e->d_name[0] != '.' && stat(f.p, &st) == 0 && S_ISREG(st.st_mode) &&
            difftime(now, st.st_mtime) > max_age_days * 86400 &&
            (fd = open(f.p, O_RDONLY | O_CLOEXEC)) >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlink(f.p);
        if (fd >= 0)
            close(fd);
        buf_free(&f);
    }
    if (d)
        closedir(d);
    buf_free(&p);
    printf("gc: removed %llu files, %.1f MB freed, %.1f MB kept\n", (unsigned long long)removed,
           (double)freed / 1e6, (double)total / 1e6);
    return 0;
}

int
main(int argc, char **argv)
{
    cli_init("kiln-step");
    cli_prog = "kiln-step";
    // A file size limit (ulimit -f) makes our own writes fail with EFBIG, reported and cleaned
    // up like a full disk, instead of killing us mid-write.
    signal(SIGXFSZ, SIG_IGN);
    atexit(remove_pending);
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
    const char *exclude[MAXF], *prov_out = NULL;
    int nexclude = 0;
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
        if (a[0] != '-' || (a[1] != '-' && strcmp(a, "-o")))
            break;
        if (!val)
            die_usage("%s needs a value", a);
        i++;
        bool is_out = !strcmp(a, "--out") || !strcmp(a, "--out-dir") || !strcmp(a, "--aux");
        if ((is_out && s.nout >= MAXF) || ((!strcmp(a, "--in") || !strcmp(a, "--in-dir")) && s.nin >= MAXF) ||
            (!strcmp(a, "--dep") && s.ndep >= MAXF))
            die_usage("too many %s (at most %d)", a, MAXF);
        if (!strcmp(a, "--cache"))
            s.cache = val;
        else if (!strcmp(a, "--log"))
            s.log = val;
        else if (!strcmp(a, "--name"))
            s.name = val;
        else if (!strcmp(a, "--in") || !strcmp(a, "--in-dir")) {
            s.in_dir[s.nin] = !strcmp(a, "--in-dir");
            s.ins[s.nin++] = val;
        }
        else if (!strcmp(a, "--dep"))
            s.deps[s.ndep++] = val;
        else if (is_out)
            s.outs[s.nout++] = (struct out){
                .path = val,
                .kind = !strcmp(a, "--out") ? OUT_FILE : !strcmp(a, "--aux") ? OUT_AUX : OUT_DIR};
        else if (!strcmp(a, "--exclude") && nexclude < MAXF)
            exclude[nexclude++] = val;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            prov_out = val;
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
            die_usage("run: at least one --out, --out-dir or --aux is needed");
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
    if (!strcmp(sub, "provenance")) {
        if (i != argc - 1 || !prov_out)
            die_usage("provenance: LOG and -o FILE expected");
        return cmd_provenance(argv[i], prov_out, exclude, nexclude);
    }
    if (!strcmp(sub, "gc")) {
        int rc = cmd_gc(s.cache, max_age, max_size);
        cli_finish_stdout();
        return rc;
    }
    die_usage("unknown command '%s'", sub);
}

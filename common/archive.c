// SPDX-License-Identifier: MIT
// archive: libarchive wrapper — members read into memory with safety limits, and a
// deterministic tar writer. See archive.h for the contract; this file translates libarchive's
// status codes and messages into struct kerr once.
#include "archive.h"

#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ARC_BLOCK 65536

struct arc_reader {
    struct archive *a;
    char *name;
    struct arc_limits lim;
    struct arc_counts counts;
    struct buf path; // current member path, "./" stripped
    bool have_member, member_read;
    uint64_t member_declared;
    bool member_size_known;
};

static void
arc_limits_fill(struct arc_limits *out, const struct arc_limits *in)
{
    *out = in ? *in : (struct arc_limits){0};
    if (!out->max_member)
        out->max_member = 64ull << 20;
    if (!out->max_total)
        out->max_total = 16ull << 30;
    if (out->max_ratio <= 0)
        out->max_ratio = 100;
    if (!out->min_ratio_bytes)
        out->min_ratio_bytes = 4ull << 20;
}

static struct archive *
arc_read_new(void)
{
    struct archive *a = archive_read_new();
    if (!a) {
        fprintf(stderr, "archive_read_new: out of memory\n");
        exit(1);
    }
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_format_zip(a);
    archive_read_support_format_7zip(a);
    archive_read_support_format_cpio(a);
    return a;
}

// libarchive's message, or (some readers, e.g. cpio's, give none when a header runs past the
// end of the data) the likely cause.
static const char *
arc_errstr(struct archive *a)
{
    const char *s = archive_error_string(a);
    return s ? s : "truncated or damaged data (libarchive gives no detail)";
}

static struct arc_reader *
arc_reader_opened(struct arc_reader *r, int rc, struct kerr *err)
{
    if (rc != ARCHIVE_OK) {
        int e = archive_errno(r->a);
        if (e == ENOENT || e == EACCES || e == EISDIR)
            kerr_set(err, "%s: %s", r->name, strerror(e));
        else
            kerr_set(err, "%s: not a readable archive: %s", r->name, arc_errstr(r->a));
        arc_reader_close(r);
        return NULL;
    }
    return r;
}

struct arc_reader *
arc_reader_open(const char *path, const struct arc_limits *limits, struct kerr *err)
{
    struct arc_reader *r = xcalloc(1, sizeof *r);
    r->name = xstrdup(path);
    arc_limits_fill(&r->lim, limits);
    r->a = arc_read_new();
    return arc_reader_opened(r, archive_read_open_filename(r->a, path, ARC_BLOCK), err);
}

struct arc_reader *
arc_reader_open_memory(const void *p, size_t n, const char *name, const struct arc_limits *limits,
                       struct kerr *err)
{
    struct arc_reader *r = xcalloc(1, sizeof *r);
    r->name = xstrdup(name ? name : "<memory>");
    arc_limits_fill(&r->lim, limits);
    r->a = arc_read_new();
    return arc_reader_opened(r, archive_read_open_memory(r->a, p, n), err);
}

bool
arc_path_safe(const char *path)
{
    if (!path || !*path || path[0] == '/')
        return false;
    const char *s = path;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return false;
        if (!e)
            break;
        s = e + 1;
    }
    return true;
}

int
arc_reader_next(struct arc_reader *r, struct arc_member *m, struct kerr *err)
{
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(r->a, &e);
        if (rc == ARCHIVE_EOF) {
            r->have_member = false;
            return 0;
        }
        if (rc == ARCHIVE_WARN)
            rc = ARCHIVE_OK; // e.g. unknown pax keywords: the entry itself is usable
        if (rc != ARCHIVE_OK)
            return kerr_set(err, "%s: corrupt archive: %s", r->name, arc_errstr(r->a));
        const char *p = archive_entry_pathname(e);
        if (!p)
            p = archive_entry_pathname_utf8(e);
        if (archive_entry_hardlink(e) || archive_entry_filetype(e) == AE_IFLNK) {
            r->counts.links++;
            continue;
        }
        unsigned type = archive_entry_filetype(e);
        if (type == AE_IFDIR) {
            r->counts.dirs++;
            continue;
        }
        if (type != AE_IFREG) {
            r->counts.specials++;
            continue;
        }
        while (p && p[0] == '.' && p[1] == '/')
            p += 2;
        if (!arc_path_safe(p)) {
            r->counts.unsafe_paths++;
            continue;
        }
        bool known = archive_entry_size_is_set(e);
        uint64_t size = known ? (uint64_t)archive_entry_size(e) : 0;
        if (known && size > r->lim.max_member) {
            r->counts.too_large++;
            continue;
        }
        buf_reset(&r->path);
        buf_puts(&r->path, p);
        r->have_member = true;
        r->member_read = false;
        r->member_declared = size;
        r->member_size_known = known;
        r->counts.files++;
        m->path = r->path.p;
        m->size = size;
        m->size_known = known;
        m->mtime = (int64_t)archive_entry_mtime(e);
        return 1;
    }
}

int
arc_reader_read(struct arc_reader *r, struct buf *out, struct kerr *err)
{
    if (!r->have_member || r->member_read)
        return kerr_set(err, "%s: no current member to read", r->name);
    r->member_read = true;
    uint64_t got = 0;
    if (r->member_size_known)
        buf_reserve(out, (size_t)r->member_declared);
    for (;;) {
        buf_reserve(out, ARC_BLOCK);
        la_ssize_t n = archive_read_data(r->a, out->p + out->len, ARC_BLOCK);
        if (n < 0)
            return kerr_set(err, "%s: %s: corrupt archive: %s", r->name, r->path.p,
                            arc_errstr(r->a));
        if (n == 0)
            break;
        out->len += (size_t)n;
        out->p[out->len] = '\0';
        got += (uint64_t)n;
        r->counts.bytes += (uint64_t)n;
        if (got > r->lim.max_member)
            return kerr_set(err, "%s: %s: member larger than the limit of %llu bytes", r->name,
                            r->path.p, (unsigned long long)r->lim.max_member);
        if (r->counts.bytes > r->lim.max_total)
            return kerr_set(err, "%s: archive larger than the limit of %llu bytes", r->name,
                            (unsigned long long)r->lim.max_total);
        if (r->counts.bytes >= r->lim.min_ratio_bytes) {
            uint64_t in = arc_reader_bytes_read(r);
            double ratio = (double)r->counts.bytes / (double)(in ? in : 1);
            if (ratio > r->lim.max_ratio)
                return kerr_set(err,
                                "%s: %s: archive bomb suspected: %.0f:1 expansion exceeds the "
                                "limit of %.0f:1",
                                r->name, r->path.p, ratio, r->lim.max_ratio);
        }
    }
    return 0;
}

const struct arc_counts *
arc_reader_counts(const struct arc_reader *r)
{
    return &r->counts;
}

uint64_t
arc_reader_bytes_read(const struct arc_reader *r)
{
    la_int64_t n = archive_filter_bytes(r->a, -1);
    return n > 0 ? (uint64_t)n : 0;
}

const char *
arc_reader_name(const struct arc_reader *r)
{
    return r->name;
}

void
arc_reader_close(struct arc_reader *r)
{
    if (!r)
        return;
    if (r->a)
        archive_read_free(r->a);
    buf_free(&r->path);
    free(r->name);
    free(r);
}

// ---- writer ---------------------------------------------------------------------------

struct arc_wentry {
    char *name;
    char *file; // NULL: data holds the bytes
    char *data;
    size_t n;
    bool exec;
};

struct arc_writer {
    char *path, *tmp;
    struct arc_wopts opts;
    int64_t mtime;
    struct arc_wentry *e;
    size_t n, cap;
};

int
arc_source_date_epoch(int64_t *out, struct kerr *err)
{
    const char *s = getenv("SOURCE_DATE_EPOCH");
    if (!s || !*s) {
        *out = ARC_DEFAULT_MTIME;
        return 0;
    }
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
            return kerr_set(err, "SOURCE_DATE_EPOCH: not a non-negative integer: '%s'", s);
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

struct arc_writer *
arc_writer_open(const char *path, const struct arc_wopts *opts, struct kerr *err)
{
    struct arc_wopts o = opts ? *opts : (struct arc_wopts){.mtime = -1};
    int64_t mtime = o.mtime;
    if (mtime < 0 && arc_source_date_epoch(&mtime, err) < 0)
        return NULL;
    struct arc_writer *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    struct buf t = {0};
    buf_printf(&t, "%s.tmp", path);
    w->tmp = buf_detach(&t);
    w->opts = o;
    w->mtime = mtime;
    return w;
}

static int
arc_writer_push(struct arc_writer *w, const char *name, struct kerr *err)
{
    if (!arc_path_safe(name))
        return kerr_set(err, "%s: unsafe entry name '%s'", w->path, name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->e = xrealloc(w->e, w->cap * sizeof *w->e);
    }
    w->e[w->n] = (struct arc_wentry){.name = xstrdup(name)};
    w->n++;
    return 0;
}

int
arc_writer_add(struct arc_writer *w, const char *name, const void *p, size_t n, bool executable,
               struct kerr *err)
{
    if (arc_writer_push(w, name, err) < 0)
        return -1;
    struct arc_wentry *e = &w->e[w->n - 1];
    e->data = xmalloc(n ? n : 1);
    if (n)
        memcpy(e->data, p, n);
    e->n = n;
    e->exec = executable;
    return 0;
}

int
arc_writer_add_file(struct arc_writer *w, const char *name, const char *file, bool executable,
                    struct kerr *err)
{
    if (arc_writer_push(w, name, err) < 0)
        return -1;
    w->e[w->n - 1].file = xstrdup(file);
    w->e[w->n - 1].exec = executable;
    return 0;
}

static int
arc_wentry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct arc_wentry *)a)->name, ((const struct arc_wentry *)b)->name);
}

static void
arc_writer_free(struct arc_writer *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].file);
        free(w->e[i].data);
    }
    free(w->e);
    free(w->path);
    free(w->tmp);
    free(w);
}

// Writes one entry's header and bytes. For a file entry the size is taken from stat and the
// bytes read must match it.
static int
arc_writer_entry(struct arc_writer *w, struct archive *a, const struct arc_wentry *we,
                 struct kerr *err)
{
    FILE *f = NULL;
    uint64_t size = we->n;
    if (we->file) {
        f = fopen(we->file, "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
            int e = f ? (errno ? errno : EINVAL) : errno;
            if (f)
                fclose(f);
            return kerr_set(err, "%s: %s", we->file, strerror(e));
        }
        size = (uint64_t)st.st_size;
    }
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, we->name);
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, we->exec ? 0755 : 0644);
    archive_entry_set_size(ae, (la_int64_t)size);
    archive_entry_set_mtime(ae, (time_t)w->mtime, 0);
    archive_entry_set_uid(ae, 0);
    archive_entry_set_gid(ae, 0);
    archive_entry_set_uname(ae, "");
    archive_entry_set_gname(ae, "");
    int rc = archive_write_header(a, ae);
    archive_entry_free(ae);
    if (rc != ARCHIVE_OK) {
        if (f)
            fclose(f);
        return kerr_set(err, "%s: %s: %s", w->path, we->name, arc_errstr(a));
    }
    if (!f) {
        if (size && archive_write_data(a, we->data, we->n) != (la_ssize_t)we->n)
            return kerr_set(err, "%s: %s: %s", w->path, we->name, arc_errstr(a));
        return 0;
    }
    char *chunk = xmalloc(ARC_BLOCK);
    uint64_t done = 0;
    size_t k;
    int ret = 0;
    while ((k = fread(chunk, 1, ARC_BLOCK, f)) > 0) {
        done += k;
        if (done > size) {
            ret = kerr_set(err, "%s: file grew while being archived", we->file);
            break;
        }
        if (archive_write_data(a, chunk, k) != (la_ssize_t)k) {
            ret = kerr_set(err, "%s: %s: %s", w->path, we->name, arc_errstr(a));
            break;
        }
    }
    if (!ret && ferror(f))
        ret = kerr_set(err, "%s: %s", we->file, strerror(errno));
    else if (!ret && done != size)
        ret = kerr_set(err, "%s: file shrank while being archived", we->file);
    fclose(f);
    free(chunk);
    return ret;
}

int
arc_writer_close(struct arc_writer *w, struct kerr *err)
{
    qsort(w->e, w->n, sizeof *w->e, arc_wentry_cmp);
    for (size_t i = 1; i < w->n; i++)
        if (!strcmp(w->e[i - 1].name, w->e[i].name)) {
            kerr_set(err, "%s: duplicate entry '%s'", w->path, w->e[i].name);
            arc_writer_abort(w);
            return -1;
        }
    struct archive *a = archive_write_new();
    int rc = archive_write_set_format_pax_restricted(a);
    if (rc == ARCHIVE_OK && w->opts.zstd) {
        char lv[32];
        snprintf(lv, sizeof lv, "%d", w->opts.level > 0 ? w->opts.level : 19);
        rc = archive_write_add_filter_zstd(a);
        if (rc == ARCHIVE_OK)
            rc = archive_write_set_filter_option(a, "zstd", "compression-level", lv);
    }
    if (rc == ARCHIVE_OK)
        rc = archive_write_open_filename(a, w->tmp);
    int ret = 0;
    if (rc != ARCHIVE_OK)
        ret = kerr_set(err, "%s: %s", w->tmp, arc_errstr(a));
    for (size_t i = 0; !ret && i < w->n; i++)
        ret = arc_writer_entry(w, a, &w->e[i], err);
    if (!ret && archive_write_close(a) != ARCHIVE_OK)
        ret = kerr_set(err, "%s: %s", w->tmp, arc_errstr(a));
    archive_write_free(a);
    if (!ret && rename(w->tmp, w->path) < 0)
        ret = kerr_set(err, "%s: rename: %s", w->path, strerror(errno));
    if (ret)
        remove(w->tmp);
    arc_writer_free(w);
    return ret;
}

void
arc_writer_abort(struct arc_writer *w)
{
    if (!w)
        return;
    remove(w->tmp);
    arc_writer_free(w);
}

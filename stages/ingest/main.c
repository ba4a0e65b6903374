// SPDX-License-Identifier: MIT
// ingest: turns datasets into a record stream — dataset recipes (a pinned npm tarball read
// straight from the cache), local archives (tar, zip, 7z, cpio, any compression), folders of
// text files and JSON Lines. Archive members are read into memory through common/archive and
// never written to disk; links, devices, absolute and ".." paths are skipped and counted.
//
// Each member becomes {"id": member path, "text", "source", "label" (when a rule matches),
// "metadata": {"member", "size", "sha256", "checksum", "checksum_ok", "invalid_bytes"}}.
// Invalid UTF-8 is handled as the recipe (or --decode) says and counted. JSON Lines records
// pass through byte for byte (a missing "source" is added when --source is given); every
// record needs a string "id" and "text". Ids must be unique across the whole output: a
// repeated id (compared by 64-bit hash) is an error.
//
// Recipes name their tarball in the cache (KILN_CACHE, default build/cache); datasets/fetch
// downloads it there and verifies the integrity hash first (ingest does not go to the network).
#include "archive.h"
#include "cli.h"
#include "hash.h"
#include "json.h"
#include "md5.h"
#include "rec.h"
#include "recipe.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    OPT_SOURCE = CLI_OPT_FIRST_STAGE,
    OPT_INCLUDE,
    OPT_EXCLUDE,
    OPT_LABEL,
    OPT_UNLABELED,
    OPT_DECODE,
    OPT_MISMATCH,
    OPT_MAX_MEMBER,
    OPT_MAX_TOTAL,
    OPT_MAX_RATIO,
    OPT_CACHE,
    OPT_ARCHIVE,
};

// One expected checksum from a datapackage: member path, algorithm, lowercase hex.
struct cksum {
    char *member;
    bool sha256; // else md5
    char hex[65];
};

struct label_count {
    char *label;
    uint64_t n;
};

// A set of 64-bit id hashes (open addressing, 0 marks an empty slot; hash 0 is remapped).
struct idset {
    uint64_t *slot;
    size_t cap, n;
};

struct ingest {
    struct cli_common c;
    struct recipe rules; // for archives, folders and JSON Lines given directly
    const char *source_opt, *cache_dir, *archive_override;
    bool decode_set, mismatch_set;
    enum decode_mode decode;
    enum on_bad mismatch;
    struct arc_limits lim;
    struct rec_writer *out;
    struct buf rec, text, data, name;
    struct idset ids;
    struct cksum *ck;
    size_t n_ck;
    struct label_count *labels;
    size_t n_labels;
    struct arc_counts arc; // summed over archives and folders
    uint64_t excluded, unlabeled_dropped, invalid_bytes, members_repaired;
    uint64_t checksum_ok, checksum_bad, checksum_dropped, jsonl_records;
    struct progress prog;
    struct stats st;
};

static void
usage(FILE *f)
{
    fprintf(f, "Usage: ingest [OPTIONS] INPUT...\n"
               "Turn datasets into a record stream (zstd JSON Lines).\n"
               "INPUT is a recipe (*.recipe), an archive (tar/zip/7z/cpio, compressed or not), a\n"
               "folder of text files, or JSON Lines (*.jsonl, *.jsonl.zst, '-').\n\n"
               "Rules for archives and folders given directly (recipes carry their own):\n"
               "  --source NAME          records' source (default: the input's base name)\n"
               "  --include GLOB         select members (repeatable; default all)\n"
               "  --exclude GLOB         drop members (repeatable)\n"
               "  --label GLOB=LABEL     label rule, first match wins (repeatable)\n"
               "  --unlabeled keep|skip|fail  members no rule labels (default keep)\n"
               "Decoding and checks (override the recipe):\n"
               "  --decode replace|latin1|strict   invalid UTF-8 handling (default replace)\n"
               "  --checksum-mismatch fail|drop|keep  (default fail)\n"
               "Archive limits:\n"
               "  --max-member BYTES     per member (default 64 MiB; larger ones are skipped)\n"
               "  --max-total BYTES      per archive (default 16 GiB)\n"
               "  --max-ratio R          expansion ratio (default 100)\n"
               "Recipes:\n"
               "  --cache DIR            tarball cache (default $KILN_CACHE or build/cache)\n"
               "  --archive FILE         read this tarball for the recipe instead of the cache\n"
               "Common: -o FILE, --stats FILE, --level N, --plain, -f, -q, -v, --progress, -h,\n"
               "        --version\n");
}

// ---- small helpers --------------------------------------------------------------------

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static char *
base_name_stem(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *s = path;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/')
            s = path + i + 1;
    size_t len = (size_t)(path + n - s);
    const char *dot = memchr(s, '.', len);
    if (dot && dot > s)
        len = (size_t)(dot - s);
    return xstrndup(s, len);
}

static void
idset_free(struct idset *s)
{
    free(s->slot);
}

// Inserts h; false when it was already there.
static bool
idset_add(struct idset *s, uint64_t h)
{
    if (!h)
        h = 1;
    if (2 * (s->n + 1) > s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 1024;
        uint64_t *ns = xcalloc(ncap, sizeof *ns);
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) {
                size_t j = s->slot[i] & (ncap - 1);
                while (ns[j])
                    j = (j + 1) & (ncap - 1);
                ns[j] = s->slot[i];
            }
        free(s->slot);
        s->slot = ns;
        s->cap = ncap;
    }
    size_t j = h & (s->cap - 1);
    while (s->slot[j]) {
        if (s->slot[j] == h)
            return false;
        j = (j + 1) & (s->cap - 1);
    }
    s->slot[j] = h;
    s->n++;
    return true;
}

static void
count_label(struct ingest *g, const char *label)
{
    for (size_t i = 0; i < g->n_labels; i++)
        if (!strcmp(g->labels[i].label, label)) {
            g->labels[i].n++;
            return;
        }
    g->labels = xrealloc(g->labels, (g->n_labels + 1) * sizeof *g->labels);
    g->labels[g->n_labels++] = (struct label_count){xstrdup(label), 1};
}

static void
add_counts(struct arc_counts *sum, const struct arc_counts *c)
{
    sum->files += c->files;
    sum->dirs += c->dirs;
    sum->links += c->links;
    sum->specials += c->specials;
    sum->unsafe_paths += c->unsafe_paths;
    sum->too_large += c->too_large;
    sum->bytes += c->bytes;
}

// Decodes raw bytes into g->text as UTF-8; returns the number of invalid bytes handled, or
// -1 (strict) with err naming the offset.
static int64_t
decode_text(struct ingest *g, enum decode_mode mode, const char *p, size_t n, struct kerr *err)
{
    buf_reset(&g->text);
    if (mode == DECODE_REPLACE)
        return (int64_t)utf8_repair(p, n, &g->text);
    size_t i = 0, bad = 0;
    buf_reserve(&g->text, n);
    while (i < n) {
        size_t k = utf8_valid_prefix(p + i, n - i);
        buf_append(&g->text, p + i, k);
        i += k;
        if (i == n)
            break;
        if (mode == DECODE_STRICT)
            return kerr_set(err, "invalid UTF-8 at byte %zu", i);
        unsigned char b = (unsigned char)p[i++];
        buf_putc(&g->text, (char)(0xC0 | (b >> 6)));
        buf_putc(&g->text, (char)(0x80 | (b & 0x3F)));
        bad++;
    }
    return (int64_t)bad;
}

static const struct cksum *
cksum_find(const struct ingest *g, const char *member)
{
    size_t lo = 0, hi = g->n_ck;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(g->ck[mid].member, member);
        if (!c)
            return &g->ck[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int
cksum_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cksum *)a)->member, ((const struct cksum *)b)->member);
}

static void
cksum_clear(struct ingest *g)
{
    for (size_t i = 0; i < g->n_ck; i++)
        free(g->ck[i].member);
    free(g->ck);
    g->ck = NULL;
    g->n_ck = 0;
}

// ---- records --------------------------------------------------------------------------

static int
write_record(struct ingest *g, const char *id, const char *p, size_t n, struct kerr *err)
{
    if (!idset_add(&g->ids, hash64(id, strlen(id))))
        return kerr_set(err, "duplicate id '%s'", id);
    if (rec_writer_write(g->out, p, n, err) < 0)
        return -1;
    g->st.records_out++;
    return 0;
}

// Turns one member's raw bytes into a record (or drops it by the rules). where names the
// input for messages.
static int
emit_member(struct ingest *g, const struct recipe *r, const char *source, const char *where,
            const char *member, const char *p, size_t n, struct kerr *err)
{
    g->st.records_in++;
    g->st.bytes_in += n;
    const char *label = recipe_label(r, member);
    if (!label && r->unlabeled != ON_BAD_KEEP) {
        if (r->unlabeled == ON_BAD_FAIL)
            return kerr_set(err, "%s: %s: no label rule matches", where, member);
        g->unlabeled_dropped++;
        return 0;
    }
    enum decode_mode mode = g->decode_set ? g->decode : r->decode;
    int64_t bad = decode_text(g, mode, p, n, err);
    if (bad < 0)
        return kerr_prefix(err, "%s: %s", where, member);
    uint8_t d[32];
    char sha[65], hexbuf[65];
    sha256_buf(p, n, d);
    hex_encode(d, 32, sha);
    const struct cksum *ck = cksum_find(g, member);
    bool ck_ok = true;
    if (ck) {
        if (ck->sha256) {
            memcpy(hexbuf, sha, sizeof sha);
        } else {
            md5_buf(p, n, d);
            hex_encode(d, 16, hexbuf);
        }
        ck_ok = !strcmp(hexbuf, ck->hex);
        if (ck_ok) {
            g->checksum_ok++;
        } else {
            enum on_bad pol = g->mismatch_set ? g->mismatch : r->on_mismatch;
            g->checksum_bad++;
            if (pol == ON_BAD_FAIL)
                return kerr_set(err, "%s: %s: checksum mismatch: expected %s:%s, got %s", where,
                                member, ck->sha256 ? "sha256" : "md5", ck->hex, hexbuf);
            warnx_("%s: %s: checksum mismatch: expected %s:%s, got %s (%s)", where, member,
                   ck->sha256 ? "sha256" : "md5", ck->hex, hexbuf,
                   pol == ON_BAD_DROP ? "dropped" : "kept, metadata.checksum_ok = false");
            if (pol == ON_BAD_DROP) {
                g->checksum_dropped++;
                return 0;
            }
        }
    }
    if (bad) {
        g->invalid_bytes += (uint64_t)bad;
        g->members_repaired++;
    }
    struct json_writer w;
    buf_reset(&g->rec);
    json_writer_init(&w, &g->rec);
    jw_obj_begin(&w);
    jw_key(&w, "id");
    jw_str(&w, member);
    jw_key(&w, "text");
    jw_strn(&w, g->text.p ? g->text.p : "", g->text.len);
    jw_key(&w, "source");
    jw_str(&w, r->n_sources ? recipe_source(r, member) : source);
    if (label) {
        jw_key(&w, "label");
        jw_str(&w, label);
        count_label(g, label);
    }
    jw_key(&w, "metadata");
    jw_obj_begin(&w);
    jw_key(&w, "member");
    jw_str(&w, member);
    jw_key(&w, "size");
    jw_uint(&w, n);
    jw_key(&w, "sha256");
    jw_str(&w, sha);
    if (ck) {
        buf_reset(&g->name);
        buf_printf(&g->name, "%s:%s", ck->sha256 ? "sha256" : "md5", ck->hex);
        jw_key(&w, "checksum");
        jw_str(&w, g->name.p);
        jw_key(&w, "checksum_ok");
        jw_bool(&w, ck_ok);
    }
    if (bad) {
        jw_key(&w, "invalid_bytes");
        jw_uint(&w, (uint64_t)bad);
        jw_key(&w, "decode");
        jw_str(&w, mode == DECODE_LATIN1 ? "latin1" : "replace");
    }
    jw_obj_end(&w);
    jw_obj_end(&w);
    if (write_record(g, member, g->rec.p, g->rec.len, err) < 0)
        return kerr_prefix(err, "%s", where);
    progress_update(&g->prog, g->st.records_out, g->st.bytes_in);
    return 0;
}

// ---- archives -------------------------------------------------------------------------

// Reads a frictionless datapackage.json (resources[].path relative to its folder, .hash as
// "md5hex", "md5:hex" or "sha256:hex") into g->ck.
static int
load_datapackage(struct ingest *g, const char *member, const char *p, size_t n, struct kerr *err)
{
    struct json_val root, res, item, v;
    struct json_error je;
    if (json_parse_value(p, n, &root, &je) < 0)
        return kerr_set(err, "%s: invalid JSON at byte %zu: %s", member, je.offset, je.msg);
    if (root.type != JSON_OBJECT || !json_val_member(&root, "resources", 9, &res) ||
        res.type != JSON_ARRAY)
        return kerr_set(err, "%s: no \"resources\" array", member);
    const char *slash = strrchr(member, '/');
    size_t dirlen = slash ? (size_t)(slash - member + 1) : 0;
    struct json_iter it;
    json_iter_init(&it, &res);
    struct buf path = {0}, hash = {0};
    while (json_iter_next(&it)) {
        item = it.val;
        if (item.type != JSON_OBJECT || !json_val_member(&item, "path", 4, &v) ||
            v.type != JSON_STRING)
            continue;
        buf_reset(&path);
        buf_append(&path, member, dirlen);
        size_t at = path.len;
        json_str(&v, &path);
        const char *rel = path.p + at;
        if (!strncmp(rel, "./", 2))
            memmove(path.p + at, rel + 2, strlen(rel + 2) + 1), path.len -= 2;
        if (!json_val_member(&item, "hash", 4, &v) || v.type != JSON_STRING)
            continue;
        buf_reset(&hash);
        json_str(&v, &hash);
        if (!hash.len)
            continue;
        const char *h = hash.p;
        bool sha = false;
        if (!strncmp(h, "md5:", 4)) {
            h += 4;
        } else if (!strncmp(h, "sha256:", 7)) {
            h += 7;
            sha = true;
        } else if (strchr(h, ':')) {
            continue; // an algorithm we do not verify (sha1, ...)
        }
        size_t hl = strlen(h);
        if (hl != (sha ? 64u : 32u) || strspn(h, "0123456789abcdefABCDEF") != hl) {
            buf_free(&path);
            buf_free(&hash);
            return kerr_set(err, "%s: malformed hash for '%s'", member, path.p);
        }
        g->ck = xrealloc(g->ck, (g->n_ck + 1) * sizeof *g->ck);
        struct cksum *c = &g->ck[g->n_ck++];
        c->member = xstrdup(path.p);
        c->sha256 = sha;
        for (size_t i = 0; i <= hl; i++)
            c->hex[i] = (char)((h[i] >= 'A' && h[i] <= 'F') ? h[i] + 32 : h[i]);
    }
    buf_free(&path);
    buf_free(&hash);
    return 0;
}

// First pass over an archive: reads the recipe's checksum manifests.
static int
archive_checksums(struct ingest *g, const struct recipe *r, const char *file, struct kerr *err)
{
    cksum_clear(g);
    if (!r->n_checksums)
        return 0;
    struct arc_reader *a = arc_reader_open(file, &g->lim, err);
    if (!a)
        return -1;
    size_t found = 0;
    struct arc_member m;
    int rc = 0;
    while (found < r->n_checksums && (rc = arc_reader_next(a, &m, err)) == 1) {
        for (size_t i = 0; i < r->n_checksums; i++) {
            if (strcmp(m.path, r->checksums[i].member))
                continue;
            buf_reset(&g->data);
            if (arc_reader_read(a, &g->data, err) < 0 ||
                load_datapackage(g, m.path, g->data.p, g->data.len, err) < 0) {
                arc_reader_close(a);
                return kerr_prefix(err, "%s", file);
            }
            found++;
        }
    }
    arc_reader_close(a);
    if (found < r->n_checksums) {
        if (rc < 0)
            return -1;
        return kerr_set(err, "%s: checksum manifest not found in the archive", file);
    }
    qsort(g->ck, g->n_ck, sizeof *g->ck, cksum_cmp);
    info("%s: %zu checksums from %zu manifest%s", file, g->n_ck, r->n_checksums,
         r->n_checksums > 1 ? "s" : "");
    return 0;
}

static int
ingest_archive(struct ingest *g, const struct recipe *r, const char *source, const char *file,
               struct kerr *err)
{
    if (archive_checksums(g, r, file, err) < 0)
        return -1;
    struct arc_reader *a = arc_reader_open(file, &g->lim, err);
    if (!a)
        return -1;
    struct arc_member m;
    int rc;
    while ((rc = arc_reader_next(a, &m, err)) == 1) {
        if (!recipe_selects(r, m.path)) {
            g->excluded++;
            continue;
        }
        buf_reset(&g->data);
        if (arc_reader_read(a, &g->data, err) < 0 ||
            emit_member(g, r, source, file, m.path, g->data.p, g->data.len, err) < 0) {
            rc = -1;
            break;
        }
    }
    const struct arc_counts *c = arc_reader_counts(a);
    add_counts(&g->arc, c);
    if (rc == 0 && (c->links || c->specials || c->unsafe_paths || c->too_large))
        warnx_("%s: skipped %llu link(s), %llu device/special member(s), %llu unsafe path(s), "
               "%llu member(s) over the size limit",
               file, (unsigned long long)c->links, (unsigned long long)c->specials,
               (unsigned long long)c->unsafe_paths, (unsigned long long)c->too_large);
    arc_reader_close(a);
    return rc < 0 ? -1 : 0;
}

// ---- folders --------------------------------------------------------------------------

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Walks root/rel in sorted order; rel is "" at the top.
static int
ingest_dir_walk(struct ingest *g, const struct recipe *r, const char *source, const char *root,
                const char *rel, struct kerr *err)
{
    struct buf dir = {0};
    buf_printf(&dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir.p);
    if (!d) {
        kerr_set(err, "%s: %s", dir.p, strerror(errno));
        buf_free(&dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        recipe_add_str(&names, &n, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    int ret = 0;
    struct buf sub = {0}, full = {0};
    for (size_t i = 0; i < n && !ret; i++) {
        buf_reset(&sub);
        buf_printf(&sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        buf_reset(&full);
        buf_printf(&full, "%s/%s", root, sub.p);
        struct stat st;
        if (lstat(full.p, &st) < 0) {
            ret = kerr_set(err, "%s: %s", full.p, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            g->arc.dirs++;
            ret = ingest_dir_walk(g, r, source, root, sub.p, err);
        } else if (S_ISLNK(st.st_mode)) {
            g->arc.links++;
        } else if (!S_ISREG(st.st_mode)) {
            g->arc.specials++;
        } else if (!recipe_selects(r, sub.p)) {
            g->excluded++;
        } else if ((uint64_t)st.st_size > g->lim.max_member) {
            g->arc.too_large++;
        } else {
            g->arc.files++;
            buf_reset(&g->data);
            ret = read_file(full.p, (size_t)g->lim.max_member, &g->data, err);
            if (!ret) {
                g->arc.bytes += g->data.len;
                ret = emit_member(g, r, source, root, sub.p, g->data.p, g->data.len, err);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    buf_free(&sub);
    buf_free(&full);
    buf_free(&dir);
    return ret;
}

// ---- JSON Lines -----------------------------------------------------------------------

static int
ingest_jsonl(struct ingest *g, const char *file, struct kerr *err)
{
    struct rec_reader *in = rec_reader_open(file, err);
    if (!in)
        return -1;
    struct rec_line line;
    struct json_obj o;
    json_obj_init(&o);
    struct buf id = {0}, src = {0};
    int rc;
    while ((rc = rec_reader_next_obj(in, &line, &o, err)) == 1) {
        g->st.records_in++;
        g->st.bytes_in += line.n;
        g->jsonl_records++;
        const struct json_field *fid = json_obj_get(&o, "id");
        const struct json_field *ftext = json_obj_get(&o, "text");
        const char *missing = !fid || fid->val.type != JSON_STRING       ? "\"id\""
                              : !ftext || ftext->val.type != JSON_STRING ? "\"text\""
                                                                         : NULL;
        if (missing) {
            rc = kerr_set(err, "%s:%llu: record needs a string %s", rec_reader_name(in),
                          (unsigned long long)line.lineno, missing);
            break;
        }
        const struct json_field *flabel = json_obj_get(&o, "label");
        if (flabel && flabel->val.type == JSON_STRING) {
            buf_reset(&src);
            json_str(&flabel->val, &src);
            count_label(g, src.p);
        }
        buf_reset(&id);
        json_str(&fid->val, &id);
        const char *p = line.p;
        size_t n = line.n;
        if (g->source_opt && !json_obj_get(&o, "source")) {
            buf_reset(&src);
            json_write_str(&src, g->source_opt, strlen(g->source_opt));
            struct json_edit ed = {"source", src.p, src.len};
            buf_reset(&g->rec);
            json_obj_rewrite(&o, &ed, 1, &g->rec);
            p = g->rec.p;
            n = g->rec.len;
        }
        if (write_record(g, id.p, p, n, err) < 0) {
            rc = kerr_prefix(err, "%s:%llu", rec_reader_name(in), (unsigned long long)line.lineno);
            break;
        }
        progress_update(&g->prog, g->st.records_out, g->st.bytes_in);
    }
    json_obj_free(&o);
    buf_free(&id);
    buf_free(&src);
    rec_reader_close(in);
    return rc < 0 ? -1 : 0;
}

// ---- dispatch -------------------------------------------------------------------------

static bool
is_jsonl(const char *path)
{
    static const char *ext[] = {".jsonl",    ".jsonl.zst", ".jsonl.gz",
                                ".jsonl.xz", ".jsonl.bz2", ".ndjson"};
    if (!strcmp(path, "-"))
        return true;
    for (size_t i = 0; i < KILN_ARRAY_LEN(ext); i++)
        if (ends_with(path, ext[i]))
            return true;
    return false;
}

// An archive, folder or JSON Lines file, under the rules r.
static int
ingest_path(struct ingest *g, const struct recipe *r, const char *source, const char *path,
            struct kerr *err)
{
    if (is_jsonl(path))
        return ingest_jsonl(g, path, err);
    struct stat st;
    if (stat(path, &st) < 0)
        return kerr_set(err, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return ingest_dir_walk(g, r, source, path, "", err);
    return ingest_archive(g, r, source, path, err);
}

static int
ingest_recipe(struct ingest *g, const char *file, struct kerr *err)
{
    struct recipe r;
    int ret = recipe_load(&r, file, err);
    if (!ret && r.path) {
        struct buf p = {0};
        if (r.path[0] == '/')
            buf_puts(&p, r.path);
        else
            buf_printf(&p, "%s/%s", r.dir, r.path);
        ret = ingest_path(g, &r, r.source, p.p, err);
        buf_free(&p);
    } else if (!ret) {
        char *cached = g->archive_override ? xstrdup(g->archive_override)
                                           : recipe_cache_path(&r, g->cache_dir);
        struct stat st;
        if (stat(cached, &st) < 0)
            ret = kerr_set(err,
                           "%s: %s@%s is not in the cache (%s); run 'datasets/fetch %s' or "
                           "'make datasets' first",
                           file, r.npm_name, r.npm_version, cached, file);
        else
            ret = ingest_archive(g, &r, r.source, cached, err);
        free(cached);
    }
    recipe_free(&r);
    return ret;
}

static void
write_stats(struct ingest *g)
{
    struct stats *s = &g->st;
    stats_u64(s, "members", g->arc.files);
    stats_u64(s, "excluded", g->excluded);
    stats_u64(s, "skipped_dirs", g->arc.dirs);
    stats_u64(s, "skipped_links", g->arc.links);
    stats_u64(s, "skipped_specials", g->arc.specials);
    stats_u64(s, "skipped_unsafe_paths", g->arc.unsafe_paths);
    stats_u64(s, "skipped_too_large", g->arc.too_large);
    stats_u64(s, "unlabeled_dropped", g->unlabeled_dropped);
    stats_u64(s, "invalid_bytes", g->invalid_bytes);
    stats_u64(s, "members_with_invalid_bytes", g->members_repaired);
    stats_u64(s, "checksum_ok", g->checksum_ok);
    stats_u64(s, "checksum_mismatch", g->checksum_bad);
    stats_u64(s, "checksum_dropped", g->checksum_dropped);
    stats_u64(s, "jsonl_records", g->jsonl_records);
    struct buf b = {0};
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    for (size_t i = 0; i < g->n_labels; i++) {
        jw_key(&w, g->labels[i].label);
        jw_uint(&w, g->labels[i].n);
    }
    jw_obj_end(&w);
    stats_raw(s, "labels", b.p, b.len);
    buf_free(&b);
    struct kerr err;
    if (stats_write(s, g->c.stats, &err) < 0)
        die_kerr(&err);
}

static uint64_t
parse_bytes(const char *opt, const char *arg)
{
    return (uint64_t)cli_parse_int(opt, arg, 1, INT64_MAX);
}

int
main(int argc, char **argv)
{
    cli_init("ingest");
    static struct ingest g;
    cli_common_init(&g.c);
    g.rules = (struct recipe){.unlabeled = ON_BAD_KEEP, .on_mismatch = ON_BAD_FAIL};
    g.cache_dir = getenv("KILN_CACHE");
    if (!g.cache_dir || !*g.cache_dir)
        g.cache_dir = "build/cache";
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"source", required_argument, 0, OPT_SOURCE},
        {"include", required_argument, 0, OPT_INCLUDE},
        {"exclude", required_argument, 0, OPT_EXCLUDE},
        {"label", required_argument, 0, OPT_LABEL},
        {"unlabeled", required_argument, 0, OPT_UNLABELED},
        {"decode", required_argument, 0, OPT_DECODE},
        {"checksum-mismatch", required_argument, 0, OPT_MISMATCH},
        {"max-member", required_argument, 0, OPT_MAX_MEMBER},
        {"max-total", required_argument, 0, OPT_MAX_TOTAL},
        {"max-ratio", required_argument, 0, OPT_MAX_RATIO},
        {"cache", required_argument, 0, OPT_CACHE},
        {"archive", required_argument, 0, OPT_ARCHIVE},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&g.c, opt, optarg, usage))
            continue;
        switch (opt) {
        case OPT_SOURCE:
            g.source_opt = optarg;
            break;
        case OPT_INCLUDE:
            recipe_add_str(&g.rules.include, &g.rules.n_include, optarg);
            break;
        case OPT_EXCLUDE:
            recipe_add_str(&g.rules.exclude, &g.rules.n_exclude, optarg);
            break;
        case OPT_LABEL: {
            char *eq = strrchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1])
                die_usage("--label: expected GLOB=LABEL, got '%s'", optarg);
            *eq = '\0';
            recipe_add_rule(&g.rules.labels, &g.rules.n_labels, optarg, eq + 1);
            break;
        }
        case OPT_UNLABELED:
            if (recipe_parse_on_bad(optarg, &g.rules.unlabeled) < 0)
                die_usage("--unlabeled: expected keep, skip or fail, got '%s'", optarg);
            break;
        case OPT_DECODE:
            if (recipe_parse_decode(optarg, &g.decode) < 0)
                die_usage("--decode: expected replace, latin1 or strict, got '%s'", optarg);
            g.decode_set = true;
            break;
        case OPT_MISMATCH:
            if (recipe_parse_on_bad(optarg, &g.mismatch) < 0)
                die_usage("--checksum-mismatch: expected fail, drop or keep, got '%s'", optarg);
            g.mismatch_set = true;
            break;
        case OPT_MAX_MEMBER:
            g.lim.max_member = parse_bytes("--max-member", optarg);
            break;
        case OPT_MAX_TOTAL:
            g.lim.max_total = parse_bytes("--max-total", optarg);
            break;
        case OPT_MAX_RATIO:
            g.lim.max_ratio = cli_parse_double("--max-ratio", optarg, 1, 1e12);
            break;
        case OPT_CACHE:
            g.cache_dir = optarg;
            break;
        case OPT_ARCHIVE:
            g.archive_override = optarg;
            break;
        default:
            die_usage("unexpected option");
        }
    }
    if (optind == argc)
        die_usage("no input (a recipe, archive, folder or JSON Lines file)");
    int n_recipes = 0;
    for (int i = optind; i < argc; i++)
        n_recipes += ends_with(argv[i], ".recipe");
    if (g.archive_override && n_recipes != 1)
        die_usage("--archive needs exactly one recipe input");
    if (!g.lim.max_member)
        g.lim.max_member = 64ull << 20; // the folder walker uses it directly

    struct kerr err;
    struct rec_wopts wo = {.level = g.c.level, .plain = g.c.plain, .force = g.c.force};
    g.out = rec_writer_open(g.c.output, &wo, &err);
    if (!g.out)
        die_kerr(&err);
    stats_init(&g.st, "ingest");
    progress_init(&g.prog, &g.c, "ingest", 0);
    int ret = 0;
    for (int i = optind; i < argc && !ret; i++) {
        const char *in = argv[i];
        if (ends_with(in, ".recipe")) {
            ret = ingest_recipe(&g, in, &err);
        } else {
            char *stem = g.source_opt ? NULL : base_name_stem(in);
            ret = ingest_path(&g, &g.rules, g.source_opt ? g.source_opt : stem, in, &err);
            free(stem);
        }
    }
    progress_end(&g.prog);
    if (ret < 0) {
        rec_writer_abort(g.out);
        die_kerr(&err);
    }
    g.st.bytes_out = rec_writer_bytes(g.out);
    if (rec_writer_close(g.out, &err) < 0)
        die_kerr(&err);
    if (g.invalid_bytes)
        info("%llu invalid UTF-8 byte(s) in %llu member(s) decoded explicitly",
             (unsigned long long)g.invalid_bytes, (unsigned long long)g.members_repaired);
    info("%llu records", (unsigned long long)g.st.records_out);
    write_stats(&g);
    stats_free(&g.st);
    cksum_clear(&g);
    for (size_t i = 0; i < g.n_labels; i++)
        free(g.labels[i].label);
    free(g.labels);
    idset_free(&g.ids);
    recipe_free(&g.rules);
    buf_free(&g.rec);
    buf_free(&g.text);
    buf_free(&g.data);
    buf_free(&g.name);
    cli_finish_stdout();
    return 0;
}

// SPDX-License-Identifier: MIT
// mkarchive: builds small archives for the ingest tests, including hostile members that
// ordinary tools refuse to create (".." and absolute paths, links, devices).
//
//   mkarchive FORMAT OUT ENTRY...
//   FORMAT: tar, tar.gz, tar.xz, zip, cpio, 7z
//   ENTRY:  f:PATH=TEXT    regular file with TEXT ("\n" stays literal; use $'...' in shell)
//           z:PATH=N       regular file of N zero bytes (a compression bomb when large)
//           l:PATH=TARGET  symbolic link
//           h:PATH=TARGET  hard link (tar only)
//           d:PATH         directory
//           c:PATH         character device
// Entries are written in the order given. Exit 0, or 1 with a message.
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
fail(struct archive *a, const char *what)
{
    fprintf(stderr, "mkarchive: %s: %s\n", what, archive_error_string(a));
    return 1;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: mkarchive FORMAT OUT ENTRY...\n");
        return 2;
    }
    const char *fmt = argv[1];
    struct archive *a = archive_write_new();
    int rc;
    if (!strcmp(fmt, "zip"))
        rc = archive_write_set_format_zip(a);
    else if (!strcmp(fmt, "cpio"))
        rc = archive_write_set_format_cpio_newc(a);
    else if (!strcmp(fmt, "7z"))
        rc = archive_write_set_format_7zip(a);
    else
        rc = archive_write_set_format_pax_restricted(a);
    if (rc == ARCHIVE_OK && !strcmp(fmt, "tar.gz"))
        rc = archive_write_add_filter_gzip(a);
    if (rc == ARCHIVE_OK && !strcmp(fmt, "tar.xz"))
        rc = archive_write_add_filter_xz(a);
    if (rc != ARCHIVE_OK || archive_write_open_filename(a, argv[2]) != ARCHIVE_OK)
        return fail(a, argv[2]);
    for (int i = 3; i < argc; i++) {
        char kind = argv[i][0];
        if (!kind || argv[i][1] != ':') {
            fprintf(stderr, "mkarchive: bad entry '%s'\n", argv[i]);
            return 2;
        }
        char *path = strdup(argv[i] + 2), *val = strchr(path, '=');
        if (val)
            *val++ = '\0';
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, path);
        archive_entry_set_mtime(e, 946684800, 0);
        archive_entry_set_perm(e, 0644);
        size_t n = 0;
        char *data = NULL;
        switch (kind) {
        case 'f':
            data = strdup(val ? val : "");
            n = strlen(data);
            archive_entry_set_filetype(e, AE_IFREG);
            break;
        case 'z':
            n = (size_t)strtoull(val ? val : "0", NULL, 10);
            data = calloc(1, n ? n : 1);
            archive_entry_set_filetype(e, AE_IFREG);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, val ? val : "");
            n = 0;
            archive_entry_set_size(e, val ? (la_int64_t)strlen(val) : 0);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, val ? val : "");
            break;
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdev(e, 0x0103);
            break;
        default:
            fprintf(stderr, "mkarchive: unknown entry kind '%c'\n", kind);
            return 2;
        }
        if (kind == 'f' || kind == 'z')
            archive_entry_set_size(e, (la_int64_t)n);
        else if (kind != 'l')
            archive_entry_set_size(e, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK)
            return fail(a, path);
        if (n && (kind == 'f' || kind == 'z') && archive_write_data(a, data, n) != (la_ssize_t)n)
            return fail(a, path);
        archive_entry_free(e);
        free(data);
        free(path);
    }
    if (archive_write_close(a) != ARCHIVE_OK)
        return fail(a, argv[2]);
    archive_write_free(a);
    return 0;
}

// SPDX-License-Identifier: MIT
// replay.c: runs a fuzz target's entry point (LLVMFuzzerTestOneInput) over every file of its
// seed corpus without libFuzzer, so `make test` (and `make test SAN=1`, under ASan + UBSan)
// checks each parser of untrusted input against every input it has ever been seeded with.
// Usage: replay_fuzz_NAME DIR|FILE... ; a crash or sanitizer report fails the run. Ends with
// "N passed, 0 failed" (one per input) like the unit tests.
#include "util.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
replay_file(const char *path, int *n)
{
    struct buf b;
    struct kerr err;
    buf_init(&b);
    if (read_file(path, 0, &b, &err) < 0) {
        fprintf(stderr, "replay: %s\n", err.msg);
        exit(1);
    }
    // A private copy exactly size bytes long, so ASan sees any read past the end.
    uint8_t *copy = xmalloc(b.len ? b.len : 1);
    memcpy(copy, b.p, b.len);
    LLVMFuzzerTestOneInput(copy, b.len);
    free(copy);
    buf_free(&b);
    (*n)++;
}

int
main(int argc, char **argv)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            replay_file(argv[i], &n);
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            perror(argv[i]);
            return 1;
        }
        char **names = NULL;
        size_t k = 0;
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.') {
                struct buf p;
                buf_init(&p);
                buf_printf(&p, "%s/%s", argv[i], e->d_name);
                names = xrealloc(names, (k + 1) * sizeof *names);
                names[k++] = buf_detach(&p);
            }
        closedir(d);
        qsort(names, k, sizeof *names, cmp_str);
        for (size_t j = 0; j < k; j++) {
            replay_file(names[j], &n);
            free(names[j]);
        }
        free(names);
    }
    printf("%d passed, 0 failed\n", n);
    return 0;
}

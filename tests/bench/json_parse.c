// SPDX-License-Identifier: MIT
// json_parse: parse throughput of JSON Lines, kiln's parser against cJSON.
//
//   json_parse (--kiln | --cjson) [--reps N] [--chunk BYTES | --cold] FILE
//
// Reads FILE into memory, then parses every line N times (default 1): --kiln with
// json_obj_parse (strict validation + top-level field index, one reused json_obj), --cjson with
// cJSON_ParseWithLength + cJSON_Delete (a tree per record; no UTF-8 or duplicate-key checks).
// Lines are found (memchr) before the clock starts: only parsing is timed, as the record reader
// hands lines over already split. Any line that fails to parse is an error (exit 1).
//
// By default the input is handed over in chunks of whole lines (--chunk, default 1 MiB) copied
// into a reused buffer outside the timed region, the way rec's decompressor delivers records:
// the parser sees data that is already in cache. --cold parses straight from the whole file in
// memory instead, so the timing also includes streaming it from RAM.
//
// Prints one line to stdout:
//   "<impl> <bytes> x N: wall W s, cpu C s, X MB/s wall, Y MB/s cpu (parse only; ...)"
// The CPU-time figure is the steadier one on a shared machine (time spent waiting for a core is
// not counted).
#include "json.h"
#include "util.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct counts {
    size_t records, fields, line;
};

struct line {
    const char *p;
    size_t n;
};

// Splits s[0..n) into lines (outside the timed region: finding records is rec's job).
static size_t
split_lines(const char *s, size_t n, struct line **lines, size_t *cap)
{
    const char *p = s, *end = s + n;
    size_t k = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        if (k == *cap) {
            *cap = *cap ? *cap * 2 : 1024;
            *lines = xrealloc(*lines, *cap * sizeof **lines);
        }
        (*lines)[k++] = (struct line){p, len};
        p += len + 1;
    }
    return k;
}

// Parses the lines. Returns 0 or -1 after printing the error.
static int
parse_lines(int impl, struct json_obj *o, const struct line *lines, size_t k, struct counts *c,
            const char *path)
{
    for (size_t i = 0; i < k; i++) {
        const char *p = lines[i].p;
        size_t len = lines[i].n;
        c->line++;
        if (impl == 0) {
            struct json_error e;
            if (json_obj_parse(o, p, len, &e) < 0) {
                fprintf(stderr, "json_parse: %s:%zu:%zu: %s\n", path, c->line, e.offset + 1,
                        e.msg);
                return -1;
            }
            c->fields += o->n;
        } else {
            cJSON *j = cJSON_ParseWithLength(p, len);
            if (!j) {
                fprintf(stderr, "json_parse: %s:%zu: cJSON failed\n", path, c->line);
                return -1;
            }
            c->fields += (size_t)cJSON_GetArraySize(j);
            cJSON_Delete(j);
        }
        c->records++;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    int impl = -1, reps = 1;
    size_t chunk = 1 << 20;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kiln") == 0)
            impl = 0;
        else if (strcmp(argv[i], "--cjson") == 0)
            impl = 1;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc)
            chunk = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--cold") == 0)
            chunk = 0;
        else
            path = argv[i];
    }
    if (impl < 0 || !path || reps < 1) {
        fprintf(stderr, "usage: json_parse (--kiln | --cjson) [--reps N] [--chunk BYTES | --cold] "
                        "FILE\n");
        return 2;
    }
    struct buf data = {0}, hot = {0};
    struct kerr err;
    if (read_file(path, 0, &data, &err) < 0) {
        fprintf(stderr, "json_parse: %s\n", err.msg);
        return 1;
    }
    struct json_obj o;
    json_obj_init(&o);
    struct counts c = {0};
    struct line *lines = NULL;
    size_t cap = 0;
    double wall = 0, cpu = 0;
    for (int r = 0; r < reps; r++) {
        c.line = 0;
        size_t off = 0;
        while (off < data.len) {
            const char *s = data.p + off;
            size_t n = data.len - off;
            if (chunk) {
                // Whole lines up to the chunk size (at least one line), copied untimed.
                size_t take = n < chunk ? n : chunk;
                if (take < n) {
                    const char *nl = memrchr(s, '\n', take);
                    if (!nl)
                        nl = memchr(s + take, '\n', n - take);
                    take = nl ? (size_t)(nl - s) + 1 : n;
                }
                buf_reset(&hot);
                buf_append(&hot, s, take);
                s = hot.p;
                n = take;
            }
            size_t k = split_lines(s, n, &lines, &cap);
            double t0 = now_seconds(), c0 = cpu_seconds();
            int rc = parse_lines(impl, &o, lines, k, &c, path);
            wall += now_seconds() - t0;
            cpu += cpu_seconds() - c0;
            if (rc < 0)
                return 1;
            off += n;
        }
    }
    double mb = (double)data.len * reps / 1e6;
    printf("%s %zu x %d: wall %.3f s, cpu %.3f s, %.1f MB/s wall, %.1f MB/s cpu (parse only, %s; "
           "%zu records, %zu fields)\n",
           impl ? "cjson" : "kiln", data.len, reps, wall, cpu, mb / wall, mb / cpu,
           chunk ? "hot chunks" : "cold", c.records, c.fields);
    json_obj_free(&o);
    buf_free(&data);
    buf_free(&hot);
    free(lines);
    return 0;
}

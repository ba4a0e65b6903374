// SPDX-License-Identifier: MIT
// json_parse: parse throughput of JSON Lines, kiln's parser against cJSON.
//
//   json_parse (--kiln | --cjson) [--reps N] FILE
//
// Reads FILE into memory, then parses every line N times (default 1): --kiln with
// json_obj_parse (strict validation + top-level field index, one reused json_obj), --cjson with
// cJSON_ParseWithLength + cJSON_Delete (a tree per record; no UTF-8 or duplicate-key checks).
// Any line that fails to parse is an error (exit 1). Prints one line to stdout,
//   "<impl> <bytes> x N: wall W s, cpu C s, X MB/s wall, Y MB/s cpu (parse only)"
// so benchmarks can report in-process speed next to whole-command timings. The CPU-time figure
// is the steadier one on a shared machine (time spent waiting for a core is not counted).
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

int
main(int argc, char **argv)
{
    int impl = -1, reps = 1;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kiln") == 0)
            impl = 0;
        else if (strcmp(argv[i], "--cjson") == 0)
            impl = 1;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else
            path = argv[i];
    }
    if (impl < 0 || !path || reps < 1) {
        fprintf(stderr, "usage: json_parse (--kiln | --cjson) [--reps N] FILE\n");
        return 2;
    }
    struct buf data = {0};
    struct kerr err;
    if (read_file(path, 0, &data, &err) < 0) {
        fprintf(stderr, "json_parse: %s\n", err.msg);
        return 1;
    }
    struct json_obj o;
    json_obj_init(&o);
    size_t records = 0, fields = 0;
    double t0 = now_seconds(), c0 = cpu_seconds();
    for (int r = 0; r < reps; r++) {
        const char *p = data.p, *end = data.p + data.len;
        size_t line = 0;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = (size_t)((nl ? nl : end) - p);
            line++;
            if (impl == 0) {
                struct json_error e;
                if (json_obj_parse(&o, p, n, &e) < 0) {
                    fprintf(stderr, "json_parse: %s:%zu:%zu: %s\n", path, line, e.offset + 1,
                            e.msg);
                    return 1;
                }
                fields += o.n;
            } else {
                cJSON *j = cJSON_ParseWithLength(p, n);
                if (!j) {
                    fprintf(stderr, "json_parse: %s:%zu: cJSON failed\n", path, line);
                    return 1;
                }
                fields += (size_t)cJSON_GetArraySize(j);
                cJSON_Delete(j);
            }
            records++;
            p += n + 1;
        }
    }
    double t = now_seconds() - t0, c = cpu_seconds() - c0, mb = (double)data.len * reps / 1e6;
    printf("%s %zu x %d: wall %.3f s, cpu %.3f s, %.1f MB/s wall, %.1f MB/s cpu (parse only; "
           "%zu records, %zu fields)\n",
           impl ? "cjson" : "kiln", data.len, reps, t, c, mb / t, mb / c, records, fields);
    json_obj_free(&o);
    buf_free(&data);
    return 0;
}

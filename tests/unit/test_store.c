// SPDX-License-Identifier: MIT
// Unit tests for common/store: schema creation and versioning, runs, params, metrics, results,
// examples, stage stats, artifacts, read-only queries, transactions, file state, and errors.
#include "store.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dbpath[256];

struct rows {
    int n;
    char last[4][128];
};

static int
collect(void *ctx, int ncol, const char *const *names, const char *const *vals)
{
    struct rows *r = ctx;
    for (int i = 0; i < ncol && i < 4; i++)
        snprintf(r->last[i], sizeof r->last[i], "%s", vals[i] ? vals[i] : "NULL");
    r->n++;
    return 0;
}

struct res {
    int n;
    double acc, acc_se;
};

static int
on_result(void *ctx, const char *metric, double v, double se)
{
    struct res *r = ctx;
    if (!strcmp(metric, "acc")) {
        r->acc = v;
        r->acc_se = se;
    }
    r->n++;
    return 0;
}

static void
test_roundtrip(void)
{
    struct kerr e;
    struct store *s = store_open(dbpath, &e);
    CHECK(s != NULL);
    if (!s)
        return;
    struct store_run r = {.uuid = "u-1", .kind = "evaluate", .name = "base", .seed = 7,
                          .threads = 2};
    int64_t id = 0;
    CHECK_EQ_INT(store_begin(s, &e), 0);
    CHECK_EQ_INT(store_run_begin(s, &r, &id, &e), 0);
    CHECK(id > 0);
    CHECK_EQ_INT(store_param(s, id, "lr", "0.001", &e), 0);
    CHECK_EQ_INT(store_param(s, id, "lr", "0.002", &e), 0); // replaced
    for (int step = 0; step < 5; step++)
        CHECK_EQ_INT(store_metric(s, id, "train/loss", step, 5.0 - step, &e), 0);
    CHECK_EQ_INT(store_result(s, id, "acc", 0.9, 0.01, &e), 0);
    CHECK_EQ_INT(store_result(s, id, "ppl", 12.5, NAN, &e), 0);
    CHECK_EQ_INT(store_example(s, id, "ex1", "spam", "ham", 0, "{\"spam\":0.4}", NULL, &e), 0);
    const char *stats = "{\"stage\":\"filter\",\"version\":\"0.1.0\",\"records_in\":10,"
                        "\"records_out\":8,\"bytes_in\":100,\"bytes_out\":80,\"seconds\":0.5}";
    CHECK_EQ_INT(store_stage_stats(s, id, stats, strlen(stats), &e), 0);
    CHECK_EQ_INT(store_stage_stats(s, id, "{\"x\":1}", 7, &e), -1);
    CHECK(strstr(e.msg, "stage") != NULL);
    CHECK_EQ_INT(store_stage_stats(s, id, "{bad", 4, &e), -1);
    CHECK_EQ_INT(store_artifact(s, id, "m.gguf", "abc", 10, "gguf", &e), 0);
    CHECK_EQ_INT(store_run_end(s, id, "ok", &e), 0);
    CHECK_EQ_INT(store_commit(s, &e), 0);

    struct rows rows = {0};
    CHECK_EQ_INT(store_query(s, "SELECT value FROM params WHERE run_id=?1 AND key='lr'",
                             (const char *const[4]){"1", NULL, NULL, NULL}, collect, &rows, &e),
                 0);
    CHECK_EQ_INT(rows.n, 1);
    CHECK_EQ_STR(rows.last[0], "0.002");
    memset(&rows, 0, sizeof rows);
    CHECK_EQ_INT(store_query(s, "SELECT count(*), min(value), max(step) FROM metrics", NULL,
                             collect, &rows, &e),
                 0);
    CHECK_EQ_STR(rows.last[0], "5");
    CHECK_EQ_STR(rows.last[1], "1.0");
    CHECK_EQ_STR(rows.last[2], "4");
    memset(&rows, 0, sizeof rows);
    CHECK_EQ_INT(store_query(s, "SELECT stage, records_out, seconds FROM stage_stats", NULL,
                             collect, &rows, &e),
                 0);
    CHECK_EQ_STR(rows.last[0], "filter");
    CHECK_EQ_STR(rows.last[1], "8");
    // Writes through the query interface are refused.
    CHECK_EQ_INT(store_query(s, "DELETE FROM runs", NULL, collect, &rows, &e), -1);
    CHECK(strstr(e.msg, "refusing") != NULL);
    CHECK_EQ_INT(store_query(s, "SELECT nope FROM nothing", NULL, collect, &rows, &e), -1);

    struct res res = {0};
    CHECK_EQ_INT(store_results_each(s, id, on_result, &res, &e), 0);
    CHECK_EQ_INT(res.n, 2);
    CHECK_NEAR(res.acc, 0.9, 1e-12);
    CHECK_NEAR(res.acc_se, 0.01, 1e-12);

    int64_t found = 0;
    CHECK_EQ_INT(store_run_find(s, "base", &found, &e), 0);
    CHECK_EQ_INT(found, id);
    CHECK_EQ_INT(store_run_find(s, "u-1", &found, &e), 0);
    CHECK_EQ_INT(store_run_find(s, "missing", &found, &e), -1);
    CHECK(strstr(e.msg, "no run named") != NULL);
    // Duplicate uuid is refused.
    CHECK_EQ_INT(store_run_begin(s, &r, &id, &e), -1);

    // A rolled-back transaction leaves nothing.
    CHECK_EQ_INT(store_begin(s, &e), 0);
    struct store_run r2 = {.uuid = "u-2", .kind = "train"};
    CHECK_EQ_INT(store_run_begin(s, &r2, &id, &e), 0);
    store_rollback(s);
    CHECK_EQ_INT(store_run_find(s, "u-2", &found, &e), -1);

    char sha[65];
    CHECK_EQ_INT(store_file_state_get(s, "/x", 1, 2, 3, 4, sha, &e), 0);
    const char *h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    CHECK_EQ_INT(store_file_state_put(s, "/x", 1, 2, 3, 4, h, &e), 0);
    CHECK_EQ_INT(store_file_state_get(s, "/x", 1, 2, 3, 4, sha, &e), 1);
    CHECK_EQ_STR(sha, h);
    CHECK_EQ_INT(store_file_state_get(s, "/x", 1, 2, 3, 5, sha, &e), 0); // mtime changed
    store_close(s);

    // Reopening keeps the data; a newer schema is refused.
    s = store_open(dbpath, &e);
    CHECK(s != NULL);
    CHECK_EQ_INT(store_run_find(s, "base", &found, &e), 0);
    store_close(s);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "sqlite3 %s 'PRAGMA user_version=99'", dbpath);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK(store_open(dbpath, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "newer") != NULL, "%s", e.msg);
}

static void
test_errors(void)
{
    struct kerr e;
    CHECK(store_open("/nonexistent-dir/kiln/x.db", &e) == NULL);
    CHECK(strstr(e.msg, "cannot open") != NULL);
    char bad[300];
    snprintf(bad, sizeof bad, "%s.garbage", dbpath);
    FILE *f = fopen(bad, "w");
    fputs("this is not a database, not at all, really not a database file\n", f);
    fclose(f);
    CHECK(store_open(bad, &e) == NULL);
    unlink(bad);
}

static void
unlink_db(const char *path)
{
    char p[320];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

// Several processes creating the same database at once (two kiln-step runs on a fresh cache)
// must all open it: switching to WAL ignores the busy handler, so store_open retries.
static void
test_concurrent_create(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s.conc", dbpath);
    int failed = 0;
    for (int trial = 0; trial < 100; trial++) {
        unlink_db(path);
        for (int c = 0; c < 8; c++) {
            pid_t pid = fork();
            if (pid == 0) {
                struct kerr e;
                struct store *s = store_open(path, &e);
                if (!s) {
                    fprintf(stderr, "child: %s\n", e.msg);
                    _exit(1);
                }
                store_close(s);
                _exit(0);
            }
        }
        int st;
        while (wait(&st) > 0)
            failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    CHECK_EQ_INT(failed, 0);
    unlink_db(path);
}

int
main(void)
{
    snprintf(dbpath, sizeof dbpath, "/tmp/kiln-test-store-%d.db", (int)getpid());
    test_roundtrip();
    test_errors();
    test_concurrent_create();
    unlink_db(dbpath);
    return test_summary();
}

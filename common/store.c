// SPDX-License-Identifier: MIT
// store: the SQLite database behind evaluation, reports and the pipeline cache. See store.h.
//
// SCHEMA (version 1; every timestamp is UTC ISO 8601 text):
//   runs(id PK, uuid UNIQUE, kind, name, pipeline, model, dataset, status, started_at,
//        ended_at, git_rev, binary_sha256, seed, threads)
//   params(run_id → runs, key, value)                      PRIMARY KEY (run_id, key)
//   metrics(run_id, key, step, value, at)                  full history, e.g. train/loss per step
//   results(run_id, metric, value, stderr)                 final metrics, PRIMARY KEY (run_id, metric)
//   examples(run_id, example_id, gold, prediction, correct, probs, extra)   per-example rows
//   stage_stats(run_id, stage, version, records_in, records_out, bytes_in, bytes_out,
//               seconds, json)                             one row per stage --stats file
//   artifacts(run_id, path, sha256, size, kind)
//   file_state(path PK, dev, inode, size, mtime_ns, sha256)   pipeline cache: avoids rehashing
#include "store.h"
#include "json.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store {
    sqlite3 *db;
    char *path;
};

static const char *schema_v1 =
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
    " name TEXT, pipeline TEXT, model TEXT, dataset TEXT, status TEXT NOT NULL,"
    " started_at TEXT NOT NULL, ended_at TEXT, git_rev TEXT, binary_sha256 TEXT,"
    " seed INTEGER, threads INTEGER);"
    "CREATE INDEX runs_name ON runs(name, id);"
    "CREATE TABLE params(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL, value TEXT, PRIMARY KEY(run_id, key));"
    "CREATE TABLE metrics(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL, step INTEGER NOT NULL, value REAL, at TEXT NOT NULL);"
    "CREATE INDEX metrics_run_key ON metrics(run_id, key, step);"
    "CREATE TABLE results(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " metric TEXT NOT NULL, value REAL, stderr REAL, PRIMARY KEY(run_id, metric));"
    "CREATE TABLE examples(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " example_id TEXT NOT NULL, gold TEXT, prediction TEXT, correct INTEGER, probs TEXT,"
    " extra TEXT);"
    "CREATE INDEX examples_run ON examples(run_id, example_id);"
    "CREATE TABLE stage_stats(run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,"
    " stage TEXT NOT NULL, version TEXT, records_in INTEGER, records_out INTEGER,"
    " bytes_in INTEGER, bytes_out INTEGER, seconds REAL, json TEXT NOT NULL);"
    "CREATE TABLE artifacts(run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,"
    " path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER, kind TEXT);"
    "CREATE TABLE file_state(path TEXT PRIMARY KEY, dev INTEGER, inode INTEGER, size INTEGER,"
    " mtime_ns INTEGER, sha256 TEXT NOT NULL);";

static int
db_err(struct store *s, struct kerr *err, const char *what)
{
    return kerr_set(err, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int
exec(struct store *s, const char *sql, struct kerr *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        kerr_set(err, "%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void
utc_now(char out[64])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static int
user_version(struct store *s, int *v, struct kerr *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_err(s, err, "reading schema version");
    *v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return 0;
}

static int
migrate(struct store *s, struct kerr *err)
{
    int v;
    if (user_version(s, &v, err))
        return -1;
    if (v == STORE_SCHEMA_VERSION)
        return 0;
    if (v > STORE_SCHEMA_VERSION)
        return kerr_set(err, "%s: schema version %d is newer than this kiln (%d)", s->path, v,
                        STORE_SCHEMA_VERSION);
    if (store_begin(s, err))
        return -1;
    // Re-check under the write lock: another process may have migrated meanwhile.
    if (user_version(s, &v, err))
        goto fail;
    if (v == 0) {
        if (exec(s, schema_v1, err))
            goto fail;
        v = 1;
    }
    // Future migrations: if (v == 1) { ALTER ...; v = 2; }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v);
    if (exec(s, sql, err))
        goto fail;
    return store_commit(s, err);
fail:
    store_rollback(s);
    return -1;
}

// Switching a database to WAL takes an exclusive lock without consulting the busy handler, so
// two processes creating the same database at once can see SQLITE_BUSY here however long the
// timeout. The mode is persistent: once any opener has set it, the others find it set. Retry
// for as long as the busy timeout would have waited.
static int
set_wal(struct store *s, struct kerr *err)
{
    for (int waited_ms = 0;; waited_ms += 20) {
        int rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return 0;
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= 30000)
            return kerr_set(err, "%s: setting WAL journal mode: %s", s->path,
                            sqlite3_errmsg(s->db));
        sqlite3_sleep(20);
    }
}

struct store *
store_open(const char *path, struct kerr *err)
{
    struct store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        kerr_set(err, "%s: cannot open database: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        store_close(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 30000);
    if (set_wal(s, err) || exec(s, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err) ||
        migrate(s, err)) {
        store_close(s);
        return NULL;
    }
    return s;
}

void
store_busy_timeout(struct store *s, int ms)
{
    sqlite3_busy_timeout(s->db, ms);
}

void
store_close(struct store *s)
{
    if (!s)
        return;
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

const char *
store_sqlite_version(void)
{
    return sqlite3_libversion();
}

int
store_begin(struct store *s, struct kerr *err)
{
    return exec(s, "BEGIN IMMEDIATE", err);
}

int
store_commit(struct store *s, struct kerr *err)
{
    return exec(s, "COMMIT", err);
}

void
store_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

// Prepares sql, binds args described by fmt ('t' text, 'i' int64, 'd' double, 'D' double or
// NULL when NaN), steps once. Returns 0 or -1 with err.
static int
run_stmt(struct store *s, struct kerr *err, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i]; i++) {
        int col = i + 1;
        switch (fmt[i]) {
        case 't': {
            const char *t = va_arg(ap, const char *);
            if (t)
                sqlite3_bind_text(st, col, t, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(st, col);
            break;
        }
        case 'i':
            sqlite3_bind_int64(st, col, va_arg(ap, int64_t));
            break;
        case 'd':
        case 'D': {
            double d = va_arg(ap, double);
            if (isnan(d) || isinf(d))
                sqlite3_bind_null(st, col);
            else
                sqlite3_bind_double(st, col, d);
            break;
        }
        }
    }
    va_end(ap);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return db_err(s, err, "write");
    return 0;
}

int
store_run_begin(struct store *s, const struct store_run *r, int64_t *run_id, struct kerr *err)
{
    char now[64];
    utc_now(now);
    if (run_stmt(s, err,
                 "INSERT INTO runs(uuid, kind, name, pipeline, model, dataset, status,"
                 " started_at, git_rev, binary_sha256, seed, threads)"
                 " VALUES(?,?,?,?,?,?,'running',?,?,?,?,?)",
                 "tttttttttii", r->uuid, r->kind, r->name, r->pipeline, r->model, r->dataset, now,
                 r->git_rev, r->binary_sha256, (int64_t)r->seed, (int64_t)r->threads))
        return -1;
    *run_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int
store_run_end(struct store *s, int64_t run_id, const char *status, struct kerr *err)
{
    char now[64];
    utc_now(now);
    return run_stmt(s, err, "UPDATE runs SET status=?, ended_at=? WHERE id=?", "tti", status,
                    now, run_id);
}

int
store_run_find(struct store *s, const char *key, int64_t *run_id, struct kerr *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id FROM runs WHERE uuid=?1 OR name=?1 OR CAST(id AS TEXT)=?1"
                           " ORDER BY (uuid=?1) DESC, id DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *run_id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return kerr_set(err, "%s: no run named '%s'", s->path, key);
    return db_err(s, err, "query");
}

int
store_param(struct store *s, int64_t run_id, const char *key, const char *value,
            struct kerr *err)
{
    return run_stmt(s, err, "INSERT OR REPLACE INTO params(run_id, key, value) VALUES(?,?,?)",
                    "itt", run_id, key, value);
}

int
store_metric(struct store *s, int64_t run_id, const char *key, int64_t step, double value,
             struct kerr *err)
{
    char now[64];
    utc_now(now);
    return run_stmt(s, err, "INSERT INTO metrics(run_id, key, step, value, at) VALUES(?,?,?,?,?)",
                    "itidt", run_id, key, step, value, now);
}

int
store_result(struct store *s, int64_t run_id, const char *metric, double value, double se,
             struct kerr *err)
{
    return run_stmt(s, err,
                    "INSERT OR REPLACE INTO results(run_id, metric, value, stderr) VALUES(?,?,?,?)",
                    "itdD", run_id, metric, value, se);
}

int
store_example(struct store *s, int64_t run_id, const char *example_id, const char *gold,
              const char *prediction, int correct, const char *probs_json,
              const char *extra_json, struct kerr *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO examples(run_id, example_id, gold, prediction, correct,"
                           " probs, extra) VALUES(?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, example_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, gold, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, prediction, -1, SQLITE_TRANSIENT);
    if (correct < 0)
        sqlite3_bind_null(st, 5);
    else
        sqlite3_bind_int(st, 5, correct);
    sqlite3_bind_text(st, 6, probs_json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, extra_json, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_err(s, err, "write");
}

int
store_stage_stats(struct store *s, int64_t run_id, const char *js, size_t n, struct kerr *err)
{
    struct json_obj o;
    json_obj_init(&o);
    struct json_error je;
    if (json_obj_parse(&o, js, n, &je) != 0) {
        json_obj_free(&o);
        return kerr_set(err, "stats: column %zu: invalid JSON: %s", je.offset + 1, je.msg);
    }
    struct buf stage, version;
    buf_init(&stage);
    buf_init(&version);
    const struct json_field *f = json_obj_get(&o, "stage");
    if (!f || f->val.type != JSON_STRING) {
        json_obj_free(&o);
        return kerr_set(err, "stats: missing string field \"stage\"");
    }
    json_str(&f->val, &stage);
    if ((f = json_obj_get(&o, "version")) && f->val.type == JSON_STRING)
        json_str(&f->val, &version);
    int64_t num[4] = {0, 0, 0, 0};
    static const char *const keys[4] = {"records_in", "records_out", "bytes_in", "bytes_out"};
    for (int i = 0; i < 4; i++)
        if ((f = json_obj_get(&o, keys[i])))
            json_int(&f->val, &num[i]);
    double secs = NAN;
    if ((f = json_obj_get(&o, "seconds")))
        json_double(&f->val, &secs);
    struct buf text;
    buf_init(&text);
    buf_append(&text, js, n);
    int rc = run_stmt(s, err,
                      "INSERT INTO stage_stats(run_id, stage, version, records_in, records_out,"
                      " bytes_in, bytes_out, seconds, json) VALUES(?,?,?,?,?,?,?,?,?)",
                      "ittiiiiDt", run_id, stage.p, version.p, num[0], num[1], num[2], num[3],
                      secs, text.p);
    buf_free(&text);
    buf_free(&stage);
    buf_free(&version);
    json_obj_free(&o);
    return rc;
}

int
store_artifact(struct store *s, int64_t run_id, const char *path, const char *sha256,
               uint64_t size, const char *kind, struct kerr *err)
{
    return run_stmt(s, err,
                    "INSERT INTO artifacts(run_id, path, sha256, size, kind) VALUES(?,?,?,?,?)",
                    "ittit", run_id, path, sha256, (int64_t)size, kind);
}

int
store_results_each(struct store *s, int64_t run_id,
                   int (*fn)(void *ctx, const char *metric, double value, double se), void *ctx,
                   struct kerr *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT metric, value, stderr FROM results WHERE run_id=? ORDER BY metric",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
    sqlite3_bind_int64(st, 1, run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        double v = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
        double se = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2);
        if (fn(ctx, (const char *)sqlite3_column_text(st, 0), v, se))
            break;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(s, err, "query");
    return 0;
}

int
store_query(struct store *s, const char *sql, const char *const params[4],
            int (*fn)(void *ctx, int ncol, const char *const *names, const char *const *values),
            void *ctx, struct kerr *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(s, err, "query");
    if (!sqlite3_stmt_readonly(st)) {
        sqlite3_finalize(st);
        return kerr_set(err, "%s: refusing a statement that writes: %.60s", s->path, sql);
    }
    for (int i = 0; params && i < 4; i++)
        if (params[i])
            sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_TRANSIENT);
    int ncol = sqlite3_column_count(st);
    const char **names = xcalloc((size_t)ncol + 1, sizeof *names);
    const char **vals = xcalloc((size_t)ncol + 1, sizeof *vals);
    for (int i = 0; i < ncol; i++)
        names[i] = sqlite3_column_name(st, i);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < ncol; i++)
            vals[i] = (const char *)sqlite3_column_text(st, i);
        if (fn(ctx, ncol, names, vals))
            break;
    }
    int bad = rc != SQLITE_ROW && rc != SQLITE_DONE;
    if (bad)
        db_err(s, err, "query");
    sqlite3_finalize(st);
    free(names);
    free(vals);
    return bad ? -1 : 0;
}

int
store_file_state_get(struct store *s, const char *path, uint64_t dev, uint64_t ino,
                     uint64_t size, int64_t mtime_ns, char sha_hex[65], struct kerr *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT sha256 FROM file_state WHERE path=? AND dev=? AND inode=?"
                           " AND size=? AND mtime_ns=?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
    sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (int64_t)dev);
    sqlite3_bind_int64(st, 3, (int64_t)ino);
    sqlite3_bind_int64(st, 4, (int64_t)size);
    sqlite3_bind_int64(st, 5, mtime_ns);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 0);
        if (h && strlen(h) == 64) {
            memcpy(sha_hex, h, 65);
            found = 1;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(s, err, "query");
    return found;
}

int
store_file_state_put(struct store *s, const char *path, uint64_t dev, uint64_t ino,
                     uint64_t size, int64_t mtime_ns, const char *sha_hex, struct kerr *err)
{
    return run_stmt(s, err,
                    "INSERT OR REPLACE INTO file_state(path, dev, inode, size, mtime_ns, sha256)"
                    " VALUES(?,?,?,?,?,?)",
                    "tiiiit", path, (int64_t)dev, (int64_t)ino, (int64_t)size, mtime_ns, sha_hex);
}

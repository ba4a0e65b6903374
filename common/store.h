// SPDX-License-Identifier: MIT
// store: kiln's SQLite database — the only module that speaks SQL. Runs with their params,
// provenance and status; metric histories per step; final metrics with standard errors;
// per-example predictions; stage statistics; artifacts with sha256; and the pipeline cache's
// file-state table. Reports are rendered from this database alone.
//
// The database is opened in WAL mode with a busy timeout (default 30 s) so a cron run and a
// report can overlap. Writers group a run's rows in one transaction (store_begin /
// store_commit): a failure leaves nothing half-written. The schema is versioned
// (PRAGMA user_version) and migrated forward on open; a newer schema than this binary knows is
// refused. Schema documentation: see SCHEMA below and the README.
//
// Errors: sqlite3_errmsg translated once here, as "DB: what" in struct kerr.
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include "util.h"

#include <stdbool.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1

struct store;

// Opens (creating if missing) the database at path. Returns NULL with err.
struct store *store_open(const char *path, struct kerr *err);
void store_close(struct store *s);
// How long a statement waits for another connection's lock before failing (default 30 s).
void store_busy_timeout(struct store *s, int ms);
const char *store_sqlite_version(void);

// Transactions (BEGIN IMMEDIATE: takes the write lock at once, waiting up to the timeout).
int store_begin(struct store *s, struct kerr *err);
int store_commit(struct store *s, struct kerr *err);
void store_rollback(struct store *s);

// A run: one execution of a stage or pipeline step that produced results.
struct store_run {
    const char *uuid;      // caller-chosen unique id (e.g. derived from inputs + time); required
    const char *kind;      // "train", "evaluate", "pipeline", ...
    const char *name;      // human label, e.g. "finetune-full"
    const char *pipeline;  // pipeline name or NULL
    const char *model;     // model path/identity or NULL
    const char *dataset;   // dataset path/identity or NULL
    const char *git_rev;   // or NULL
    const char *binary_sha256; // or NULL
    int64_t seed;
    int threads;
};
// Inserts a run with status "running" and started_at = now (UTC ISO 8601). *run_id set.
int store_run_begin(struct store *s, const struct store_run *r, int64_t *run_id,
                    struct kerr *err);
// Sets status ("ok", "failed", ...) and ended_at = now.
int store_run_end(struct store *s, int64_t run_id, const char *status, struct kerr *err);
// Looks a run up by uuid, or by name (the most recent with that name). 0 found, -1 not found
// or error (err says which).
int store_run_find(struct store *s, const char *uuid_or_name, int64_t *run_id, struct kerr *err);

int store_param(struct store *s, int64_t run_id, const char *key, const char *value,
                struct kerr *err);
// A point of a metric history (training loss per step, validation loss, ...).
int store_metric(struct store *s, int64_t run_id, const char *key, int64_t step, double value,
                 struct kerr *err);
// A final metric with its standard error (NaN = none).
int store_result(struct store *s, int64_t run_id, const char *metric, double value,
                 double stderr_, struct kerr *err);
// One evaluated example. probs_json: a JSON object/array text or NULL; correct: -1 unknown.
int store_example(struct store *s, int64_t run_id, const char *example_id, const char *gold,
                  const char *prediction, int correct, const char *probs_json,
                  const char *extra_json, struct kerr *err);
// A stage's --stats JSON object (validated; stage, records/bytes in/out, seconds extracted).
int store_stage_stats(struct store *s, int64_t run_id, const char *stats_json, size_t n,
                      struct kerr *err);
int store_artifact(struct store *s, int64_t run_id, const char *path, const char *sha256,
                   uint64_t size, const char *kind, struct kerr *err);

// Reads back final metrics of a run: calls fn for each (metric, value, stderr) in name order.
int store_results_each(struct store *s, int64_t run_id,
                       int (*fn)(void *ctx, const char *metric, double value, double se),
                       void *ctx, struct kerr *err);

// Generic read-only query for reports: runs sql (with up to 4 text parameters bound to ?1..?4;
// NULL = SQL NULL) and calls fn per row with column count, names and values as text (NULL for
// SQL NULL). fn returns non-zero to stop. Refuses statements that are not read-only.
int store_query(struct store *s, const char *sql, const char *const params[4],
                int (*fn)(void *ctx, int ncol, const char *const *names,
                          const char *const *values),
                void *ctx, struct kerr *err);

// Pipeline cache file-state table: (path, dev, inode, size, mtime_ns) → sha256 hex.
// store_file_state_get returns 1 and fills sha_hex (65 bytes) when the row matches all of
// dev/inode/size/mtime, 0 when absent or stale, -1 on error.
int store_file_state_get(struct store *s, const char *path, uint64_t dev, uint64_t ino,
                         uint64_t size, int64_t mtime_ns, char sha_hex[65], struct kerr *err);
int store_file_state_put(struct store *s, const char *path, uint64_t dev, uint64_t ino,
                         uint64_t size, int64_t mtime_ns, const char *sha_hex, struct kerr *err);

#endif

// SPDX-License-Identifier: MIT
// cli: what every stage's main() shares — the program name and verbosity, error messages and
// exit codes, the common options, removal of half-written outputs on signals, the progress
// line and the --stats file.
//
// Exit codes: 0 success; 1 the run failed (bad data, I/O, library error); 2 usage error;
// 128+signal when killed by SIGINT/SIGTERM/SIGHUP/SIGPIPE (half-written outputs removed first).
// Messages: "prog: file:line:col: what". A format ending in ':' gets ": strerror(errno)".
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "util.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdnoreturn.h>

extern const char *cli_prog; // program name for messages
extern int cli_verbosity;    // 0 quiet (-q), 1 normal, 2 verbose (-v)

// Sets the program name and installs the signal handlers. Call first in main().
void cli_init(const char *prog);

// "prog: msg\n" to stderr and exit 1 (die) or 2 (die_usage, adds "Try 'prog --help'.").
noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prints err->msg prefixed with the program name and exits 1.
noreturn void die_kerr(const struct kerr *err);
// Warning (suppressed by -q).
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Informational line (suppressed by -q), to stderr.
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Temporary outputs to remove if the process is killed. cli keeps its own copy of the path.
// Returns a slot id for cli_tmp_forget(). Up to 256 at once.
int cli_tmp_register(const char *path);
void cli_tmp_forget(int slot);
// Removes every registered temporary (used on fatal errors too: die() calls it).
void cli_tmp_remove_all(void);

// The options every stage accepts. Fill with cli_common_init(), then in the getopt loop pass
// each option to cli_common_opt() first.
struct cli_common {
    const char *output;  // -o FILE (NULL = stdout)
    const char *stats;   // --stats FILE
    int level;           // --level N (zstd), default 3
    bool plain;          // --plain
    bool force;          // -f/--force: compressed output to a terminal
    uint64_t seed;       // --seed N (default 0)
    bool seed_set;
    int progress;        // --progress 1, --no-progress 0, default -1 = auto (stderr is a tty)
};

enum {
    CLI_OPT_VERSION = 0x1000,
    CLI_OPT_STATS,
    CLI_OPT_LEVEL,
    CLI_OPT_PLAIN,
    CLI_OPT_PROGRESS,
    CLI_OPT_NO_PROGRESS,
    CLI_OPT_SEED,
    CLI_OPT_FIRST_STAGE = 0x1100, // stages number their own long-only options from here
};

#define CLI_COMMON_SHORTOPTS "hqvo:f"
#define CLI_COMMON_LONGOPTS                                                                    \
    {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, CLI_OPT_VERSION},               \
        {"quiet", no_argument, 0, 'q'}, {"verbose", no_argument, 0, 'v'},                      \
        {"output", required_argument, 0, 'o'}, {"force", no_argument, 0, 'f'},                 \
        {"stats", required_argument, 0, CLI_OPT_STATS},                                        \
        {"level", required_argument, 0, CLI_OPT_LEVEL},                                        \
        {"plain", no_argument, 0, CLI_OPT_PLAIN},                                              \
        {"progress", no_argument, 0, CLI_OPT_PROGRESS},                                        \
        {"no-progress", no_argument, 0, CLI_OPT_NO_PROGRESS},                                  \
        {"seed", required_argument, 0, CLI_OPT_SEED}

void cli_common_init(struct cli_common *c);
// Handles a common option. Returns true when it was one. -h prints usage (the stage's
// function) to stdout and exits 0; --version prints "prog (kiln) VERSION" and exits 0;
// an unknown option ('?') exits 2.
bool cli_common_opt(struct cli_common *c, int opt, const char *arg, void (*usage)(FILE *));

// Strict number parsing for option values: die_usage() naming the option on failure.
int64_t cli_parse_int(const char *opt, const char *arg, int64_t min, int64_t max);
uint64_t cli_parse_u64(const char *opt, const char *arg);
double cli_parse_double(const char *opt, const char *arg, double min, double max);

// Before exit 0: flush stdout and check for write errors (closed pipe, full disk).
void cli_finish_stdout(void);

// ---- progress ---------------------------------------------------------------------------
// A one-line status on stderr ("records/s, MB/s, ETA"), redrawn about six times a second,
// only when enabled (auto: stderr is a terminal and not -q).
struct progress {
    bool on;
    double t0, last;
    uint64_t total_bytes; // 0 = unknown (no ETA)
    const char *what;
};
void progress_init(struct progress *p, const struct cli_common *c, const char *what,
                   uint64_t total_bytes);
// Cheap to call per record: checks the clock at most every 1024 calls.
void progress_update(struct progress *p, uint64_t records, uint64_t bytes);
void progress_end(struct progress *p);

// ---- stats ----------------------------------------------------------------------------
// The --stats file: {"stage","version","records_in","bytes_in","records_out","bytes_out",
// "seconds","peak_rss_bytes", ...stage-specific fields}. Stage fields are added in order.
struct stats {
    const char *stage;
    uint64_t records_in, bytes_in, records_out, bytes_out;
    double t0;
    struct buf extra; // serialized ,"key":value pairs
};
void stats_init(struct stats *s, const char *stage);
void stats_free(struct stats *s);
void stats_u64(struct stats *s, const char *key, uint64_t v);
void stats_f64(struct stats *s, const char *key, double v);
void stats_str(struct stats *s, const char *key, const char *v);
void stats_raw(struct stats *s, const char *key, const char *json, size_t n); // any JSON value
// Writes the file atomically (PATH.tmp + rename). 0 or -1 with err. path NULL: no-op.
int stats_write(struct stats *s, const char *path, struct kerr *err);

#endif

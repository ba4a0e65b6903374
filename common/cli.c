// SPDX-License-Identifier: MIT
// cli: program name, messages, exit codes, common options, signal-safe removal of temporary
// outputs, progress line, --stats files. See cli.h.

#include "cli.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cli_prog = "kiln";
int cli_verbosity = 1;

#define TMP_SLOTS 256
// Paths the signal handler must remove. Written only outside the handler, with the slot's
// pointer published last so the handler never sees a half-written path.
static char *volatile tmp_paths[TMP_SLOTS];

static void
on_signal(int sig)
{
    for (int i = 0; i < TMP_SLOTS; i++) {
        char *p = tmp_paths[i];
        if (p)
            unlink(p);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void
cli_init(const char *prog)
{
    const char *slash = strrchr(prog, '/');
    cli_prog = slash ? slash + 1 : prog;
    if (strncmp(cli_prog, "kiln-", 5) == 0)
        cli_prog += 5;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < KILN_ARRAY_LEN(sigs); i++)
        sigaction(sigs[i], &sa, NULL);
}

int
cli_tmp_register(const char *path)
{
    for (int i = 0; i < TMP_SLOTS; i++) {
        if (!tmp_paths[i]) {
            tmp_paths[i] = xstrdup(path);
            return i;
        }
    }
    die("too many temporary outputs open");
}

void
cli_tmp_forget(int slot)
{
    if (slot < 0 || slot >= TMP_SLOTS)
        return;
    char *p = tmp_paths[slot];
    tmp_paths[slot] = NULL;
    free(p);
}

void
cli_tmp_remove_all(void)
{
    for (int i = 0; i < TMP_SLOTS; i++) {
        char *p = tmp_paths[i];
        if (p) {
            unlink(p);
            tmp_paths[i] = NULL;
            free(p);
        }
    }
}

static void
vmsg(const char *fmt, va_list ap, int errnum)
{
    fflush(stdout);
    fprintf(stderr, "%s: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    size_t n = strlen(fmt);
    if (n && fmt[n - 1] == ':')
        fprintf(stderr, " %s", strerror(errnum));
    fputc('\n', stderr);
}

void
die(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap, e);
    va_end(ap);
    cli_tmp_remove_all();
    exit(1);
}

void
die_usage(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap, e);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog);
    cli_tmp_remove_all();
    exit(2);
}

void
die_kerr(const struct kerr *err)
{
    die("%s", err->msg);
}

void
warnx_(const char *fmt, ...)
{
    if (cli_verbosity < 1)
        return;
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: warning: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    size_t n = strlen(fmt);
    if (n && fmt[n - 1] == ':')
        fprintf(stderr, " %s", strerror(e));
    fputc('\n', stderr);
    va_end(ap);
}

void
info(const char *fmt, ...)
{
    if (cli_verbosity < 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void
cli_common_init(struct cli_common *c)
{
    memset(c, 0, sizeof *c);
    c->level = 3;
    c->progress = -1;
}

bool
cli_common_opt(struct cli_common *c, int opt, const char *arg, void (*usage)(FILE *))
{
    switch (opt) {
    case 'h':
        usage(stdout);
        cli_finish_stdout();
        exit(0);
    case CLI_OPT_VERSION:
        printf("%s (kiln) %s\n", cli_prog, KILN_VERSION);
        cli_finish_stdout();
        exit(0);
    case 'q':
        cli_verbosity = 0;
        return true;
    case 'v':
        cli_verbosity = 2;
        return true;
    case 'o':
        c->output = arg;
        return true;
    case 'f':
        c->force = true;
        return true;
    case CLI_OPT_STATS:
        c->stats = arg;
        return true;
    case CLI_OPT_LEVEL:
        c->level = (int)cli_parse_int("--level", arg, 1, 19);
        return true;
    case CLI_OPT_PLAIN:
        c->plain = true;
        return true;
    case CLI_OPT_PROGRESS:
        c->progress = 1;
        return true;
    case CLI_OPT_NO_PROGRESS:
        c->progress = 0;
        return true;
    case CLI_OPT_SEED:
        c->seed = cli_parse_u64("--seed", arg);
        c->seed_set = true;
        return true;
    case '?':
    case ':':
        fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog);
        exit(2);
    default:
        return false;
    }
}

int64_t
cli_parse_int(const char *opt, const char *arg, int64_t min, int64_t max)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end)
        die_usage("%s: not an integer: '%s'", opt, arg);
    if (v < min || v > max)
        die_usage("%s: %lld is out of range [%" PRId64 ", %" PRId64 "]", opt, v, min, max);
    return v;
}

uint64_t
cli_parse_u64(const char *opt, const char *arg)
{
    char *end;
    errno = 0;
    if (arg[0] == '-')
        die_usage("%s: not a non-negative integer: '%s'", opt, arg);
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || end == arg || *end)
        die_usage("%s: not a non-negative integer: '%s'", opt, arg);
    return v;
}

double
cli_parse_double(const char *opt, const char *arg, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v))
        die_usage("%s: not a number: '%s'", opt, arg);
    if (v < min || v > max)
        die_usage("%s: %g is out of range [%g, %g]", opt, v, min, max);
    return v;
}

void
cli_finish_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        die("error writing standard output:");
}

// ---- progress ---------------------------------------------------------------------------

void
progress_init(struct progress *p, const struct cli_common *c, const char *what,
              uint64_t total_bytes)
{
    memset(p, 0, sizeof *p);
    int mode = c ? c->progress : -1;
    p->on = mode == 1 || (mode == -1 && cli_verbosity > 0 && isatty(STDERR_FILENO));
    p->t0 = p->last = now_seconds();
    p->total_bytes = total_bytes;
    p->what = what ? what : "records";
}

void
progress_update(struct progress *p, uint64_t records, uint64_t bytes)
{
    if (!p->on || (records & 1023) != 0)
        return;
    double t = now_seconds();
    if (t - p->last < 1.0 / 6)
        return;
    p->last = t;
    double dt = t - p->t0 > 1e-9 ? t - p->t0 : 1e-9;
    double mbs = (double)bytes / dt / 1e6;
    fprintf(stderr, "\r%s: %" PRIu64 " %s, %.0f/s, %.1f MB/s", cli_prog, records, p->what,
            (double)records / dt, mbs);
    if (p->total_bytes && bytes <= p->total_bytes && bytes > 0) {
        double eta = (double)(p->total_bytes - bytes) / ((double)bytes / dt);
        fprintf(stderr, ", %.0f%%, ETA %.0fs", 100.0 * (double)bytes / (double)p->total_bytes,
                eta);
    }
    fputs("\033[K", stderr);
}

void
progress_end(struct progress *p)
{
    if (p->on)
        fputs("\r\033[K", stderr);
}

// ---- stats ----------------------------------------------------------------------------

void
stats_init(struct stats *s, const char *stage)
{
    memset(s, 0, sizeof *s);
    s->stage = stage;
    s->t0 = now_seconds();
    buf_init(&s->extra);
}

void
stats_free(struct stats *s)
{
    buf_free(&s->extra);
}

static void
stats_key(struct stats *s, const char *key)
{
    buf_putc(&s->extra, ',');
    json_write_str(&s->extra, key, strlen(key));
    buf_putc(&s->extra, ':');
}

void
stats_u64(struct stats *s, const char *key, uint64_t v)
{
    stats_key(s, key);
    buf_printf(&s->extra, "%" PRIu64, v);
}

void
stats_f64(struct stats *s, const char *key, double v)
{
    stats_key(s, key);
    json_write_double(&s->extra, v);
}

void
stats_str(struct stats *s, const char *key, const char *v)
{
    stats_key(s, key);
    json_write_str(&s->extra, v, strlen(v));
}

void
stats_raw(struct stats *s, const char *key, const char *json, size_t n)
{
    stats_key(s, key);
    buf_append(&s->extra, json, n);
}

int
stats_write(struct stats *s, const char *path, struct kerr *err)
{
    if (!path)
        return 0;
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"stage\":");
    json_write_str(&b, s->stage, strlen(s->stage));
    buf_printf(&b,
               ",\"version\":\"%s\",\"records_in\":%" PRIu64 ",\"bytes_in\":%" PRIu64
               ",\"records_out\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"seconds\":",
               KILN_VERSION, s->records_in, s->bytes_in, s->records_out, s->bytes_out);
    json_write_double(&b, now_seconds() - s->t0);
    buf_printf(&b, ",\"peak_rss_bytes\":%" PRIu64, peak_rss_bytes());
    buf_append(&b, s->extra.p ? s->extra.p : "", s->extra.len);
    buf_puts(&b, "}\n");

    struct buf tmp;
    buf_init(&tmp);
    buf_printf(&tmp, "%s.tmp", path);
    int slot = cli_tmp_register(tmp.p);
    int rc = 0;
    FILE *f = fopen(tmp.p, "w");
    if (!f) {
        rc = kerr_set(err, "%s: %s", tmp.p, strerror(errno));
    } else {
        size_t w = fwrite(b.p, 1, b.len, f);
        int bad = w != b.len || ferror(f);
        if (fclose(f) != 0 || bad)
            rc = kerr_set(err, "%s: write failed: %s", tmp.p, strerror(errno));
        else if (rename(tmp.p, path) != 0)
            rc = kerr_set(err, "%s: %s", path, strerror(errno));
    }
    if (rc)
        unlink(tmp.p);
    cli_tmp_forget(slot);
    buf_free(&tmp);
    buf_free(&b);
    return rc;
}

// SPDX-License-Identifier: MIT
// passthrough: the record pass-through used by the benchmarks and the CLI tests of the record
// layer. Reads FILE... (or stdin), parses every record as a JSON object and writes it out
// unchanged, with the options every stage has. It is the smallest complete stage: what it
// costs over `zstd -dc | zstd -3` is what the record layer costs.
//
//   passthrough [-o FILE] [--plain] [--level N] [-f] [--stats FILE] [--max-line BYTES] [FILE...]
#include "cli.h"
#include "json.h"
#include "rec.h"
#include "util.h"

#include <stdlib.h>

enum { OPT_MAX_LINE = CLI_OPT_FIRST_STAGE };

static void
usage(FILE *f)
{
    fprintf(f, "Usage: passthrough [OPTIONS] [FILE...]\n"
               "Copy JSON Lines records (zstd, gzip, xz, bzip2 or plain) to a zstd stream,\n"
               "validating every record as a JSON object.\n\n"
               "  -o, --output FILE   write FILE (atomically) instead of stdout\n"
               "      --plain         write uncompressed JSON Lines\n"
               "      --level N       zstd level 1-19 (default 3)\n"
               "  -f, --force         write compressed data to a terminal\n"
               "      --max-line N    longest accepted line in bytes (default 1 GiB)\n"
               "      --stats FILE    write run statistics as JSON\n"
               "  -q, --quiet         no progress or warnings\n"
               "  -h, --help          this help\n");
}

static void
fail(struct rec_writer *w, struct rec_reader *r, const struct kerr *err)
{
    rec_writer_abort(w);
    rec_reader_close(r);
    die_kerr(err);
}

int
main(int argc, char **argv)
{
    cli_init(argv[0]);
    struct cli_common c;
    cli_common_init(&c);
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"max-line", required_argument, 0, OPT_MAX_LINE},
        {0, 0, 0, 0},
    };
    size_t max_line = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&c, opt, optarg, usage))
            continue;
        if (opt == OPT_MAX_LINE)
            max_line = (size_t)cli_parse_int("--max-line", optarg, 1, INT64_MAX);
    }
    static const char *stdin_only[] = {"-"};
    const char **files = optind < argc ? (const char **)argv + optind : stdin_only;
    int nfiles = optind < argc ? argc - optind : 1;

    struct stats st;
    stats_init(&st, "passthrough");
    struct kerr err;
    struct rec_wopts wo = {.level = c.level, .plain = c.plain, .force = c.force};
    struct rec_writer *w = rec_writer_open(c.output, &wo, &err);
    if (!w)
        die_kerr(&err);
    struct json_obj o;
    json_obj_init(&o);
    struct progress prog;
    uint64_t records = 0;
    for (int i = 0; i < nfiles; i++) {
        struct rec_reader *r = rec_reader_open(files[i], &err);
        if (!r)
            fail(w, NULL, &err);
        if (max_line)
            rec_reader_set_max_line(r, max_line);
        progress_init(&prog, &c, "records", rec_reader_size(r));
        struct rec_line line;
        int rc;
        while ((rc = rec_reader_next_obj(r, &line, &o, &err)) == 1) {
            if (rec_writer_write(w, line.p, line.n, &err) < 0)
                fail(w, r, &err);
            progress_update(&prog, ++records, rec_reader_bytes_read(r));
        }
        if (rc < 0)
            fail(w, r, &err);
        progress_end(&prog);
        st.bytes_in += rec_reader_bytes_out(r);
        rec_reader_close(r);
    }
    st.records_in = records;
    st.records_out = rec_writer_records(w);
    st.bytes_out = rec_writer_bytes(w);
    json_obj_free(&o);
    if (rec_writer_close(w, &err) < 0)
        die_kerr(&err);
    stats_str(&st, "zstd_version", rec_zstd_version());
    if (stats_write(&st, c.stats, &err) < 0)
        die_kerr(&err);
    stats_free(&st);
    return 0;
}

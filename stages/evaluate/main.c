// SPDX-License-Identifier: MIT
// evaluate: scores a model on record streams and keeps everything in SQLite.
//
//   evaluate classify  label log-likelihood classification (acc, macro-F1, MCC, ECE, ...)
//   evaluate lm        loss, perplexity, bits per byte (rolling windows)
//   evaluate generate  greedy / sampled generation with exact match
//   evaluate import    results, --stats and trainer logs into the database
//   evaluate compare   metric diff of two runs with a statistical gate (exit 3)
//   evaluate report    HTML and Markdown reports rendered from the database alone
//
// This file: subcommand dispatch and the options they share. Each subcommand lives in its own
// file; the model (load.c), batched scoring (score.c) and the store glue (db.c) are shared.
#include "evaluate.h"
#include "rec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *f)
{
    fputs("usage: evaluate classify --model DIR|FILE.gguf [--adapter DIR] [--choices A,B]\n"
          "                         [--prompt T] [--completion T] [--field F] [FILE...]\n"
          "       evaluate lm --model DIR|FILE.gguf [--seq-len N] [--packed] [FILE...]\n"
          "       evaluate generate --model DIR|FILE.gguf [--max-tokens N] [--temperature X]\n"
          "                         [--top-k K] [--top-p P] [--stop S] [FILE...]\n"
          "       evaluate import --db DB [--run-name NAME] FILE...\n"
          "       evaluate compare [--db DB] [--gate METRIC] [--k K] A B\n"
          "       evaluate report --db DB [-o report.html] [--md report.md]\n"
          "Each subcommand has --help. See evaluate(1).\n",
          f);
}

void
eval_common_init(struct eval_common *c)
{
    memset(c, 0, sizeof *c);
    cli_common_init(&c->cli);
    c->cli.seed = 1234; // lm-evaluation-harness's bootstrap seed
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->threads = n < 1 ? 1 : n > 8 ? 8 : (int)n;
    c->batch = 8;
    c->busy_ms = 30000;
}

bool
eval_common_opt(struct eval_common *c, int opt, const char *arg, void (*use)(FILE *))
{
    switch (opt) {
    case EOPT_MODEL: c->model = arg; return true;
    case EOPT_ADAPTER: c->adapter = arg; return true;
    case EOPT_TOKENIZER: c->tokenizer = arg; return true;
    case EOPT_DB: c->db = arg; return true;
    case EOPT_RUN_NAME: c->run_name = arg; return true;
    case EOPT_PIPELINE: c->pipeline = arg; return true;
    case EOPT_THREADS: c->threads = (int)cli_parse_int("--threads", arg, 1, 256); return true;
    case EOPT_BATCH: c->batch = (int)cli_parse_int("--batch", arg, 1, 4096); return true;
    case EOPT_BUSY:
        c->busy_ms = (int)(cli_parse_double("--busy-timeout", arg, 0, 86400) * 1000);
        return true;
    default: return cli_common_opt(&c->cli, opt, arg, use);
    }
}

void
eval_common_model(const struct eval_common *c, struct eval_model *em)
{
    if (!c->model)
        die_usage("--model DIR|FILE.gguf is required");
    struct kerr err;
    if (eval_model_load(em, c->model, c->adapter, c->tokenizer, &err) < 0)
        die_kerr(&err);
}

char **
eval_inputs(int argc, char **argv)
{
    static char *stdin_only[] = {"-", NULL};
    return optind < argc ? argv + optind : stdin_only;
}

int
eval_write_output(const char *path, const char *text, size_t n, struct kerr *err)
{
    struct rec_wopts wo = {.plain = true};
    struct rec_writer *w = rec_writer_open(path, &wo, err);
    if (!w)
        return -1;
    if (rec_writer_write_raw(w, text, n, err) < 0) {
        rec_writer_abort(w);
        return -1;
    }
    return rec_writer_close(w, err);
}

int
main(int argc, char **argv)
{
    cli_init("evaluate");
    if (argc < 2)
        die_usage("a subcommand is required: classify, lm, generate, import, compare, report");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("evaluate (kiln) %s\n", KILN_VERSION);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"classify", cmd_classify}, {"lm", cmd_lm},           {"generate", cmd_generate},
                {"import", cmd_import},     {"compare", cmd_compare}, {"report", cmd_report}};
    for (size_t i = 0; i < KILN_ARRAY_LEN(cmds); i++)
        if (!strcmp(cmd, cmds[i].name)) {
            int rc = cmds[i].fn(argc - 1, argv + 1);
            cli_finish_stdout();
            return rc;
        }
    die_usage("unknown subcommand '%s' (classify, lm, generate, import, compare, report)", cmd);
}

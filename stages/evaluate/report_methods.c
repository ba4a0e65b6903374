// SPDX-License-Identifier: MIT
// report_methods.c: the "Fine-tuning methods and forgetting" section of `evaluate report`
// (issue 12, study 3; pipelines/study-methods.mk). It reads the runs of kind study-methods —
// one per method plus "base" — and shows, per method, task accuracy and macro-F1 (evaluate
// classify), the perplexity of the retention sample of pretraining text after fine-tuning
// against the base's (evaluate lm), and tokens/s and peak RSS of the training run (train
// --stats), as a table and as a chart of accuracy against retention perplexity (log10).
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char methods_sql[] =
    "SELECT r.name,"
    " (SELECT value FROM results WHERE run_id = r.id AND metric = 'acc'),"
    " (SELECT stderr FROM results WHERE run_id = r.id AND metric = 'acc'),"
    " (SELECT value FROM results WHERE run_id = r.id AND metric = 'macro_f1'),"
    " (SELECT value FROM results WHERE run_id = r.id AND metric = 'perplexity'),"
    " (SELECT json_extract(json, '$.tokens_per_s') FROM stage_stats"
    "   WHERE run_id = r.id AND stage = 'train'),"
    " (SELECT json_extract(json, '$.peak_rss_bytes') / 1048576.0 FROM stage_stats"
    "   WHERE run_id = r.id AND stage = 'train')"
    " FROM runs r WHERE r.kind = 'study-methods' ORDER BY r.id";

enum { C_NAME, C_ACC, C_ACC_SE, C_F1, C_PPL, C_TOKS, C_RSS, C_N };

// Retention perplexity relative to the base run's, as "+1.2%"; "" when either is missing.
static void
ppl_change(struct buf *b, const char *ppl, const char *base)
{
    if (*ppl && *base && atof(base) > 0)
        buf_printf(b, "%+.1f%%", 100.0 * (atof(ppl) / atof(base) - 1));
}

void
report_section_methods(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table t;
    report_query_sql(s, methods_sql, NULL, &t);
    if (!t.nrow) {
        report_table_free(&t);
        return;
    }
    const char *base_ppl = "";
    for (size_t r = 0; r < t.nrow; r++)
        if (!strcmp(report_cell(&t, r, C_NAME), "base"))
            base_ppl = report_cell(&t, r, C_PPL);

    static const char *const head[] = {
        "method",  "accuracy", "± s.e.",        "macro-F1", "retention perplexity",
        "vs base", "tokens/s", "peak RSS (MiB)"};
    buf_puts(h, "<h2>Fine-tuning methods and forgetting</h2>\n"
                "<p>Same data, same base: task accuracy on the test split, perplexity of a "
                "sample of the pretraining text after fine-tuning (lower = less forgetting), "
                "training speed and peak memory.</p>\n<table><tr>");
    buf_puts(md, "## Fine-tuning methods and forgetting\n\n|");
    for (size_t k = 0; k < KILN_ARRAY_LEN(head); k++) {
        buf_printf(h, "<th>%s</th>", head[k]);
        buf_printf(md, " %s |", head[k]);
    }
    buf_puts(h, "</tr>\n");
    buf_puts(md, "\n|");
    for (size_t k = 0; k < KILN_ARRAY_LEN(head); k++)
        buf_puts(md, "---|");
    buf_puts(md, "\n");
    for (size_t r = 0; r < t.nrow; r++) {
        struct buf cells[8] = {{0}};
        report_esc(&cells[0], report_cell(&t, r, C_NAME));
        report_num(&cells[1], report_cell(&t, r, C_ACC));
        report_num(&cells[2], report_cell(&t, r, C_ACC_SE));
        report_num(&cells[3], report_cell(&t, r, C_F1));
        report_num(&cells[4], report_cell(&t, r, C_PPL));
        ppl_change(&cells[5], report_cell(&t, r, C_PPL), base_ppl);
        report_num(&cells[6], report_cell(&t, r, C_TOKS));
        report_num(&cells[7], report_cell(&t, r, C_RSS));
        buf_puts(h, "<tr>");
        buf_puts(md, "|");
        for (int k = 0; k < 8; k++) {
            buf_printf(h, "<td>%s</td>", cells[k].p ? cells[k].p : "");
            buf_printf(md, " %s |", cells[k].p && *cells[k].p ? cells[k].p : "–");
            buf_free(&cells[k]);
        }
        buf_puts(h, "</tr>\n");
        buf_puts(md, "\n");
    }
    buf_puts(h, "</table>\n");
    buf_puts(md, "\n");

    // Chart: one point per method, accuracy (± 1.96 s.e.) against log10 retention perplexity.
    struct report_series sr[REPORT_NCOLORS] = {0};
    int ns = 0;
    for (size_t r = 0; r < t.nrow && ns < REPORT_NCOLORS; r++) {
        const char *ppl = report_cell(&t, r, C_PPL), *acc = report_cell(&t, r, C_ACC);
        if (!*ppl || !*acc)
            continue;
        struct report_series *q = &sr[ns];
        q->name = report_cell(&t, r, C_NAME);
        q->color = report_colors[ns];
        q->n = 1;
        q->x = xmalloc(sizeof *q->x);
        q->y = xmalloc(sizeof *q->y);
        q->x[0] = log10(fmax(atof(ppl), 1.0)); // perplexities here span 10^2..10^6
        q->y[0] = atof(acc);
        double se = atof(report_cell(&t, r, C_ACC_SE));
        if (se > 0 && isfinite(se)) {
            q->lo = xmalloc(sizeof *q->lo);
            q->hi = xmalloc(sizeof *q->hi);
            q->lo[0] = q->y[0] - 1.96 * se;
            q->hi[0] = q->y[0] + 1.96 * se;
        }
        ns++;
    }
    if (ns)
        report_svg_lines(h, "test accuracy against retention perplexity (95% intervals)",
                         "perplexity of pretraining text after fine-tuning, log10 (3 = 1,000)",
                         sr, ns);
    for (int k = 0; k < ns; k++)
        report_series_free(&sr[k]);
    report_table_free(&t);
}

// SPDX-License-Identifier: MIT
// report_hpo.c: the report's "Early-stage hyperparameter search" section (issue 12, study 2;
// pipelines/study-hpo.mk), from the runs of kind "hpo" that `kiln-hpo import` writes. Per
// search method (Bayesian optimization, random): how well the scores at the early checkpoint
// rank the final ones (overlap of the top 5, Spearman's rho, Kendall's tau-b), the compute
// that stopping all but the early top k would have saved and what it would have cost in final
// score; a chart of the best final score found against the number of candidates; and every
// candidate with its scores and ranks. Renders nothing when the database has no such runs.
#include "report.h"

#include "../../common/rank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { C_METHOD, C_IDX, C_LR, C_BATCH, C_EPOCHS, C_STEPS, C_ESTEPS, C_EX, C_EEX, C_TPE,
       C_EARLY, C_FINAL };

// A row of both tables: HTML cells and a Markdown line.
static void
row(struct buf *h, struct buf *md, const char *const *cells, int n, bool head)
{
    buf_puts(h, "<tr>");
    buf_puts(md, "|");
    for (int c = 0; c < n; c++) {
        buf_printf(h, "<%s%s>", head ? "th" : "td", c == 0 ? " class=\"l\"" : "");
        report_esc(h, cells[c]);
        buf_printf(h, "</%s>", head ? "th" : "td");
        buf_putc(md, ' ');
        report_md_esc(md, cells[c], 40);
        buf_puts(md, " |");
    }
    buf_puts(h, "</tr>\n");
    buf_puts(md, "\n");
    if (head) {
        buf_puts(md, "|");
        for (int c = 0; c < n; c++)
            buf_puts(md, "---|");
        buf_puts(md, "\n");
    }
}

static void
row_end(struct buf *h, struct buf *md)
{
    buf_puts(h, "</table>\n");
    buf_puts(md, "\n");
}

// The summary rows of one group of candidates (rows[] of t): size, best final score, top-5
// overlap, rank correlations, and for k = 1, 3, 5 the compute of continuing only the early
// top k and the best final score that keeps.
static void
stats_rows(struct buf *h, struct buf *md, const char *name, const struct report_table *t,
           const size_t *rows, size_t n)
{
    double *e = xmalloc(n * sizeof *e), *f = xmalloc(n * sizeof *f),
           *ec = xmalloc(n * sizeof *ec), *fc = xmalloc(n * sizeof *fc);
    double full = 0, top = -INFINITY, tpe_sum = 0;
    size_t tpe_n = 0;
    for (size_t i = 0; i < n; i++) {
        e[i] = atof(report_cell(t, rows[i], C_EARLY));
        f[i] = atof(report_cell(t, rows[i], C_FINAL));
        ec[i] = atof(report_cell(t, rows[i], C_EEX));
        fc[i] = atof(report_cell(t, rows[i], C_EX));
        full += fc[i];
        if (*report_cell(t, rows[i], C_TPE)) {
            tpe_sum += atof(report_cell(t, rows[i], C_TPE));
            tpe_n++;
        }
        top = fmax(top, f[i]);
    }
    // Tokens use the mean tokens per example (all candidates train on the same data).
    double tpe = tpe_n ? tpe_sum / (double)tpe_n : NAN;
    size_t k5 = n < 5 ? n : 5;
    static const size_t ks[] = {1, 3, 5};
    for (size_t q = 0; q < KILN_ARRAY_LEN(ks) && ks[q] <= n; q++) {
        double kept, used = rank_early_stop_cost(e, f, ec, fc, n, ks[q], &kept);
        char c[11][64] = {{0}};
        if (!q) {
            snprintf(c[0], 64, "%s", name);
            snprintf(c[1], 64, "%zu", n);
            snprintf(c[2], 64, "%.4f", top);
            snprintf(c[3], 64, "%zu of %zu", rank_top_overlap(e, f, n, k5), k5);
            snprintf(c[4], 64, "%.3f", rank_spearman(e, f, n));
            snprintf(c[5], 64, "%.3f", rank_kendall(e, f, n));
        }
        snprintf(c[6], 64, "%zu", ks[q]);
        snprintf(c[7], 64, "%.0f (of %.0f)", used, full);
        if (isnan(tpe))
            snprintf(c[8], 64, "–");
        else
            snprintf(c[8], 64, "%.3g (of %.3g)", used * tpe, full * tpe);
        snprintf(c[9], 64, "%.1f%%", full > 0 ? 100 * (1 - used / full) : 0);
        snprintf(c[10], 64, "%.4f (regret %.4f)", kept, top - kept);
        const char *cp[11];
        for (int i = 0; i < 11; i++)
            cp[i] = c[i];
        row(h, md, cp, 11, false);
    }
    free(e);
    free(f);
    free(ec);
    free(fc);
}

report_section_fn report_section_hpo;

void
report_section_hpo(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table t;
    report_query(s, "hpo.sql", NULL, &t);
    if (!t.nrow) {
        report_table_free(&t);
        return;
    }
    buf_puts(h, "<h2>Early-stage hyperparameter search</h2>\n");
    buf_puts(md, "## Early-stage hyperparameter search\n\n");
    const char *intro =
        "Each candidate (learning rate, batch size, epochs) was fine-tuned to completion with a "
        "checkpoint at its early budget and scored on the validation split at both. Compute is "
        "in training examples (steps × batch; tokens ≈ examples × mean tokens per example). "
        "\"Continue top k\": every candidate trained to its early checkpoint, only the k best "
        "by early score to the end.";
    buf_puts(h, "<p>");
    report_esc(h, intro);
    buf_puts(h, "</p>\n");
    buf_printf(md, "%s\n\n", intro);

    // Methods: runs of rows with the same method (the query orders by method); at most
    // REPORT_NCOLORS of them (kiln-hpo has two).
    size_t starts[REPORT_NCOLORS + 1], r = 0;
    int nm = 0;
    for (; r < t.nrow; r++)
        if (!r || strcmp(report_cell(&t, r, C_METHOD), report_cell(&t, r - 1, C_METHOD))) {
            if (nm == REPORT_NCOLORS)
                break;
            starts[nm++] = r;
        }
    starts[nm] = r;

    static const char *const sh[] = {"method", "candidates", "best final", "top-5 overlap",
                                      "Spearman", "Kendall tau-b", "continue top k",
                                      "examples (of all)", "tokens", "saved",
                                      "best final kept"};
    buf_puts(h, "<table>");
    row(h, md, sh, 11, true);
    struct report_series best[REPORT_NCOLORS] = {0};
    size_t n_all = t.nrow;
    double *early_rank = xcalloc(n_all, sizeof *early_rank),
           *final_rank = xcalloc(n_all, sizeof *final_rank);
    size_t *rows = xmalloc(n_all * sizeof *rows), nd = 0;
    for (int m = 0; m < nm; m++) {
        size_t a = starts[m], n = starts[m + 1] - a;
        for (size_t i = 0; i < n; i++)
            rows[i] = a + i;
        stats_rows(h, md, report_cell(&t, a, C_METHOD), &t, rows, n);
        best[m].name = report_cell(&t, a, C_METHOD);
        best[m].color = report_colors[m];
        best[m].n = n;
        best[m].x = xmalloc(n * sizeof(double));
        best[m].y = xmalloc(n * sizeof(double));
        double *e = xmalloc(n * sizeof *e), *f = xmalloc(n * sizeof *f), top = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            e[i] = atof(report_cell(&t, a + i, C_EARLY));
            f[i] = atof(report_cell(&t, a + i, C_FINAL));
            top = fmax(top, f[i]);
            best[m].x[i] = (double)(i + 1);
            best[m].y[i] = top;
        }
        rank_average(e, n, early_rank + a);
        rank_average(f, n, final_rank + a);
        free(e);
        free(f);
    }
    // All methods together, each distinct training run once (the methods share candidates).
    for (size_t r2 = 0; r2 < starts[nm] && nm > 1; r2++) {
        bool dup = false;
        for (size_t j = 0; j < nd && !dup; j++) {
            dup = true;
            for (int c = C_LR; c <= C_ESTEPS; c++)
                dup = dup && !strcmp(report_cell(&t, rows[j], c), report_cell(&t, r2, c));
        }
        if (!dup)
            rows[nd++] = r2;
    }
    if (nd)
        stats_rows(h, md, "all (distinct runs)", &t, rows, nd);
    free(rows);
    row_end(h, md);

    report_svg_lines(h, "best final validation score found", "candidates", best, nm);
    buf_puts(md, "Best final score found after n candidates:\n\n");
    for (int m = 0; m < nm; m++) {
        buf_printf(md, "- %s:", best[m].name);
        for (size_t i = 0; i < best[m].n; i++)
            buf_printf(md, " %.4f", best[m].y[i]);
        buf_puts(md, "\n");
        report_series_free(&best[m]);
    }
    buf_puts(md, "\n");

    static const char *const ch[] = {"method", "#", "lr", "batch", "epochs", "steps",
                                     "early step", "early", "final", "early rank",
                                     "final rank"};
    buf_puts(h, "<h3>Candidates</h3>\n<table>");
    buf_puts(md, "Candidates (ranks: 1 = best, ties share the mean rank):\n\n");
    row(h, md, ch, 11, true);
    for (int m = 0; m < nm; m++) {
        size_t a = starts[m], n = starts[m + 1] - a;
        for (size_t i = a; i < a + n; i++) {
            char c[11][48];
            snprintf(c[0], 48, "%s", report_cell(&t, i, C_METHOD));
            snprintf(c[1], 48, "%s", report_cell(&t, i, C_IDX));
            snprintf(c[2], 48, "%.3g", atof(report_cell(&t, i, C_LR)));
            snprintf(c[3], 48, "%s", report_cell(&t, i, C_BATCH));
            snprintf(c[4], 48, "%g", atof(report_cell(&t, i, C_EPOCHS)));
            snprintf(c[5], 48, "%s", report_cell(&t, i, C_STEPS));
            snprintf(c[6], 48, "%s", report_cell(&t, i, C_ESTEPS));
            snprintf(c[7], 48, "%.4f", atof(report_cell(&t, i, C_EARLY)));
            snprintf(c[8], 48, "%.4f", atof(report_cell(&t, i, C_FINAL)));
            // Ranks with 1 = best: n + 1 - ascending rank.
            snprintf(c[9], 48, "%g", (double)n + 1 - early_rank[i]);
            snprintf(c[10], 48, "%g", (double)n + 1 - final_rank[i]);
            const char *cp[11];
            for (int k = 0; k < 11; k++)
                cp[k] = c[k];
            row(h, md, cp, 11, false);
        }
    }
    row_end(h, md);
    free(early_rank);
    free(final_rank);
    report_table_free(&t);
}

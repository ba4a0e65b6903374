// SPDX-License-Identifier: MIT
// report_generate.c: the report's Generations section — the newest `evaluate generate` run's
// exact match (with its bootstrap standard error) and its first generations: prompt, generated
// text, target, exact match, tokens generated and the stop sequence that ended each
// (reports/generations.sql, from the results lines kept in the examples table). Nothing when
// the database holds no generate run.
#include "report.h"

#include <string.h>

// Columns of generations.sql.
enum { G_RUN, G_NAME, G_EM, G_EM_SE, G_ID, G_PROMPT, G_GEN, G_GOLD, G_OK, G_TOKENS, G_STOP };

void
report_section_generate(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table t;
    report_query(s, "generations.sql", NULL, &t);
    if (!t.nrow) {
        report_table_free(&t);
        return;
    }
    buf_puts(h, "<h2>Generations</h2>\n<p>Run ");
    report_esc(h, report_cell(&t, 0, G_RUN));
    buf_puts(h, " <b>");
    report_esc(h, report_cell(&t, 0, G_NAME));
    buf_puts(h, "</b>");
    buf_printf(md, "## Generations\n\nRun %s **", report_cell(&t, 0, G_RUN));
    report_md_esc(md, report_cell(&t, 0, G_NAME), 60);
    buf_puts(md, "**");
    if (*report_cell(&t, 0, G_EM)) {
        buf_puts(h, ": exact match ");
        report_num(h, report_cell(&t, 0, G_EM));
        buf_puts(md, ": exact match ");
        report_num(md, report_cell(&t, 0, G_EM));
        if (*report_cell(&t, 0, G_EM_SE)) {
            buf_puts(h, " ± ");
            report_num(h, report_cell(&t, 0, G_EM_SE));
            buf_puts(md, " ± ");
            report_num(md, report_cell(&t, 0, G_EM_SE));
        }
    }
    buf_puts(h, ".</p>\n<table><tr><th class=\"l\">id</th><th class=\"l\">prompt</th>"
                "<th class=\"l\">generation</th><th class=\"l\">target</th><th>exact</th>"
                "<th>tokens</th><th class=\"l\">stop</th></tr>\n");
    buf_puts(md, ".\n\n| id | prompt | generation | target | exact | tokens | stop |\n"
                 "|---|---|---|---|---|---|---|\n");
    for (size_t r = 0; r < t.nrow; r++) {
        const char *c = report_cell(&t, r, G_OK);
        const char *mark = !*c ? "–" : !strcmp(c, "1") ? "yes" : "no";
        static const int text_cols[] = {G_ID, G_PROMPT, G_GEN, G_GOLD};
        buf_puts(h, "<tr>");
        buf_puts(md, "|");
        for (size_t k = 0; k < sizeof text_cols / sizeof text_cols[0]; k++) {
            buf_puts(h, "<td class=\"l\">");
            report_esc(h, report_cell(&t, r, text_cols[k]));
            buf_puts(h, "</td>");
            buf_putc(md, ' ');
            report_md_esc(md, report_cell(&t, r, text_cols[k]), k == 0 ? 40 : 80);
            buf_puts(md, " |");
        }
        buf_printf(h, "<td class=\"%s\">%s</td><td>",
                   !strcmp(mark, "yes")  ? "ok"
                   : !strcmp(mark, "no") ? "bad"
                                         : "",
                   mark);
        report_esc(h, report_cell(&t, r, G_TOKENS));
        buf_puts(h, "</td><td class=\"l\">");
        report_esc(h, report_cell(&t, r, G_STOP));
        buf_puts(h, "</td></tr>\n");
        buf_printf(md, " %s | %s | ", mark, report_cell(&t, r, G_TOKENS));
        report_md_esc(md, report_cell(&t, r, G_STOP), 20);
        buf_puts(md, " |\n");
    }
    buf_puts(h, "</table>\n");
    buf_puts(md, "\n");
    report_table_free(&t);
}

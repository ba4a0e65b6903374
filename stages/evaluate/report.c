// SPDX-License-Identifier: MIT
// report.c: `evaluate report` — an HTML page and a Markdown summary rendered from the SQLite
// store alone. The SQL lives in reports/*.sql and the page template and style in
// reports/report.html and reports/report.css, embedded into the binary (report_asset). Charts
// are inline SVG drawn here: data funnel (stage_stats), training and validation loss (metrics),
// the metric table with standard errors and a comparison of the two newest evaluated runs
// (results), confusion matrix and reliability diagram (the run's summary param), and sample
// predictions (examples); studies add their own sections (report_study_data.c: data efficiency
// and imbalance). No scripts and no external references, so it opens anywhere offline. The output
// depends only on the database contents.
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- sections ------------------------------------------------------------------------------

static void
section_runs(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table t;
    report_query(s, "runs.sql", NULL, &t);
    buf_puts(h, "<h2>Runs</h2>\n");
    buf_puts(md, "## Runs\n\n");
    if (!t.nrow) {
        buf_puts(h, "<p class=\"none\">No runs recorded.</p>\n");
        buf_puts(md, "No runs recorded.\n\n");
        report_table_free(&t);
        return;
    }
    static const char *const hd[] = {"id",     "kind",    "name",  "pipeline",
                                     "status", "started", "ended", "model"};
    buf_puts(h, "<table><tr>");
    buf_puts(md, "|");
    for (int c = 0; c < 8; c++) {
        buf_printf(h, "<th class=\"l\">%s</th>", hd[c]);
        buf_printf(md, " %s |", hd[c]);
    }
    buf_puts(h, "</tr>\n");
    buf_puts(md, "\n|");
    for (int c = 0; c < 8; c++)
        buf_puts(md, "---|");
    buf_puts(md, "\n");
    for (size_t r = 0; r < t.nrow; r++) {
        buf_puts(h, "<tr>");
        buf_puts(md, "|");
        for (int c = 0; c < 8; c++) {
            bool st = c == 4;
            buf_printf(h, "<td class=\"l%s\">",
                       st ? (strcmp(report_cell(&t, r, c), "ok") ? " bad" : " ok") : "");
            report_esc(h, report_cell(&t, r, c));
            buf_puts(h, "</td>");
            buf_putc(md, ' ');
            report_md_esc(md, report_cell(&t, r, c), 60);
            buf_puts(md, " |");
        }
        buf_puts(h, "</tr>\n");
        buf_puts(md, "\n");
    }
    buf_puts(h, "</table>\n");
    buf_puts(md, "\n");
    report_table_free(&t);
}

static void
section_funnel(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table t;
    report_query(s, "funnel.sql", NULL, &t);
    buf_puts(h, "<h2>Data funnel</h2>\n");
    buf_puts(md, "## Data funnel\n\n");
    if (!t.nrow) {
        buf_puts(h, "<p class=\"none\">No stage statistics (import stages' --stats files).</p>\n");
        buf_puts(md, "No stage statistics.\n\n");
        report_table_free(&t);
        return;
    }
    double mx = 1;
    for (size_t r = 0; r < t.nrow; r++)
        mx = fmax(mx, fmax(atof(report_cell(&t, r, 1)), atof(report_cell(&t, r, 2))));
    double W = 640, row = 26, H = 30 + row * (double)t.nrow, L = 120, bw = W - L - 140;
    buf_printf(h, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">", W,
               H, W, H);
    buf_puts(h, "<text x=\"10\" y=\"18\" font-size=\"13\">records in (grey) and out (blue) per "
                "stage</text>");
    buf_puts(md, "| stage | records in | records out | kept |\n|---|---|---|---|\n");
    for (size_t r = 0; r < t.nrow; r++) {
        double in = atof(report_cell(&t, r, 1)), out = atof(report_cell(&t, r, 2)),
               y = 28 + row * (double)r;
        buf_printf(h, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">", L - 6,
                   y + 14);
        report_esc(h, report_cell(&t, r, 0));
        buf_puts(h, "</text>");
        buf_printf(h, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"9\" fill=\"#bbb\"/>", L,
                   y + 2, bw * in / mx);
        buf_printf(h, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"9\" fill=\"#2b6cb0\"/>",
                   L, y + 11, bw * out / mx);
        buf_printf(h, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\">%.0f → %.0f</text>", L + bw + 6,
                   y + 14, in, out);
        buf_puts(md, "| ");
        report_md_esc(md, report_cell(&t, r, 0), 40);
        buf_printf(md, " | %.0f | %.0f | %.1f%% |\n", in, out, in > 0 ? 100 * out / in : 0);
    }
    buf_puts(h, "</svg>\n");
    buf_puts(md, "\n");
    report_table_free(&t);
}

static void
section_loss(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table tr, va;
    report_query(s, "loss.sql", "loss", &tr);
    report_query(s, "loss.sql", "valid_loss", &va);
    buf_puts(h, "<h2>Training</h2>\n");
    buf_puts(md, "## Training\n\n");
    if (!tr.nrow && !va.nrow) {
        buf_puts(h, "<p class=\"none\">No training log imported.</p>\n");
        buf_puts(md, "No training log imported.\n\n");
    } else {
        struct report_series sr[2] = {0};
        int ns = 0;
        if (tr.nrow)
            report_series_from(&sr[ns++], &tr, 0, 1, "train loss", "#2b6cb0");
        if (va.nrow)
            report_series_from(&sr[ns++], &va, 0, 1, "valid loss", "#dd6b20");
        report_svg_lines(h, "loss per step", "step", sr, ns);
        for (int k = 0; k < ns; k++) {
            buf_printf(md, "- %s: %zu points, last %.4f at step %.0f\n", sr[k].name, sr[k].n,
                       sr[k].y[sr[k].n - 1], sr[k].x[sr[k].n - 1]);
            report_series_free(&sr[k]);
        }
        buf_puts(md, "\n");
    }
    report_table_free(&tr);
    report_table_free(&va);
}

// Confusion matrix and reliability diagram from a classify summary's JSON text.
static void
section_classify(const char *summary, struct buf *h, struct buf *md)
{
    struct json_val v, conf, labels, matrix, rel;
    if (json_parse_value(summary, strlen(summary), &v, NULL) < 0 || v.type != JSON_OBJECT)
        return;
    if (json_val_member(&v, "confusion", 9, &conf) &&
        json_val_member(&conf, "labels", 6, &labels) &&
        json_val_member(&conf, "matrix", 6, &matrix)) {
        char *lab[64];
        int k = 0;
        struct json_iter it;
        json_iter_init(&it, &labels);
        while (json_iter_next(&it) && k < 64) {
            struct buf b = {0};
            json_str(&it.val, &b);
            lab[k++] = b.p ? buf_detach(&b) : xstrdup("");
        }
        double *m = xcalloc((size_t)k * (size_t)k + 1, sizeof *m), mx = 1;
        int r = 0;
        json_iter_init(&it, &matrix);
        while (json_iter_next(&it) && r < k) {
            struct json_iter ic;
            json_iter_init(&ic, &it.val);
            int c = 0;
            while (json_iter_next(&ic) && c < k) {
                json_double(&ic.val, &m[r * k + c]);
                mx = fmax(mx, m[r * k + c]);
                c++;
            }
            r++;
        }
        double cs = 60, L = 110, T = 50;
        double W = L + cs * k + 20, H = T + cs * k + 20;
        buf_puts(h, "<h3>Confusion matrix (rows gold, columns predicted)</h3>\n");
        buf_printf(h, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">",
                   W, H, W, H);
        buf_puts(md, "Confusion matrix (rows gold, columns predicted):\n\n| gold \\ pred |");
        for (int c = 0; c < k; c++) {
            buf_printf(h, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">",
                       L + cs * c + cs / 2, T - 8);
            report_esc(h, lab[c]);
            buf_puts(h, "</text>");
            buf_putc(md, ' ');
            report_md_esc(md, lab[c], 30);
            buf_puts(md, " |");
        }
        buf_puts(md, "\n|---|");
        for (int c = 0; c < k; c++)
            buf_puts(md, "---|");
        buf_puts(md, "\n");
        for (int g = 0; g < k; g++) {
            buf_printf(h, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">",
                       L - 6, T + cs * g + cs / 2 + 4);
            report_esc(h, lab[g]);
            buf_puts(h, "</text>");
            buf_puts(md, "| ");
            report_md_esc(md, lab[g], 30);
            buf_puts(md, " |");
            for (int c = 0; c < k; c++) {
                double x = m[g * k + c], a = 0.1 + 0.9 * x / mx;
                buf_printf(h,
                           "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
                           "fill=\"%s\" fill-opacity=\"%.2f\" stroke=\"#fff\"/>",
                           L + cs * c, T + cs * g, cs, cs, g == c ? "#2b6cb0" : "#c53030", a);
                buf_printf(h,
                           "<text x=\"%.0f\" y=\"%.0f\" font-size=\"13\" "
                           "text-anchor=\"middle\">%.0f</text>",
                           L + cs * c + cs / 2, T + cs * g + cs / 2 + 5, x);
                buf_printf(md, " %.0f |", x);
            }
            buf_puts(md, "\n");
        }
        buf_puts(h, "</svg>\n");
        buf_puts(md, "\n");
        for (int c = 0; c < k; c++)
            free(lab[c]);
        free(m);
    }
    if (json_val_member(&v, "reliability", 11, &rel) && rel.type == JSON_ARRAY) {
        double W = 360, H = 360, L = 50, T = 30, S = 280;
        buf_puts(h, "<h3>Reliability diagram (equal-mass bins)</h3>\n");
        buf_printf(h, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">",
                   W, H, W, H);
        buf_printf(h,
                   "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                   "stroke=\"#888\"/>",
                   L, T, S, S);
        buf_printf(h,
                   "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#aaa\" "
                   "stroke-dasharray=\"4\"/>",
                   L, T + S, L + S, T);
        buf_printf(
            h,
            "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">confidence</text>",
            L + S / 2, T + S + 28);
        buf_printf(h,
                   "<text x=\"12\" y=\"%.0f\" font-size=\"11\" transform=\"rotate(-90 12 %.0f)\" "
                   "text-anchor=\"middle\">accuracy</text>",
                   T + S / 2, T + S / 2);
        for (int i = 0; i <= 4; i++)
            buf_printf(
                h,
                "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" text-anchor=\"middle\">%.2f</text>"
                "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" text-anchor=\"end\">%.2f</text>",
                L + S * i / 4, T + S + 14, i / 4.0, L - 4, T + S - S * i / 4 + 3, i / 4.0);
        buf_puts(md, "Reliability (equal-mass bins): confidence → accuracy (count):");
        struct json_iter it;
        json_iter_init(&it, &rel);
        while (json_iter_next(&it)) {
            struct json_val cv, av, nv;
            double c = 0, a = 0, n = 0;
            if (json_val_member(&it.val, "confidence", 10, &cv))
                json_double(&cv, &c);
            if (json_val_member(&it.val, "accuracy", 8, &av))
                json_double(&av, &a);
            if (json_val_member(&it.val, "count", 5, &nv))
                json_double(&nv, &n);
            if (n <= 0)
                continue;
            buf_printf(h,
                       "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"#2b6cb0\" "
                       "fill-opacity=\"0.7\"/>",
                       L + S * c, T + S - S * a, 3 + fmin(6, sqrt(n)));
            buf_printf(md, " %.3f→%.3f (%.0f)", c, a, n);
        }
        buf_puts(h, "</svg>\n");
        buf_puts(md, "\n\n");
    }
}

static void
section_results(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table runs;
    report_query(s, "eval_runs.sql", NULL, &runs);
    buf_puts(h, "<h2>Evaluation</h2>\n");
    buf_puts(md, "## Evaluation\n\n");
    if (!runs.nrow) {
        buf_puts(h, "<p class=\"none\">No evaluated runs.</p>\n");
        buf_puts(md, "No evaluated runs.\n\n");
        report_table_free(&runs);
        return;
    }
    const char *id = report_cell(&runs, 0, 0);
    struct report_table res, prev = {0};
    report_query(s, "results.sql", id, &res);
    bool cmp = runs.nrow > 1;
    if (cmp)
        report_query(s, "results.sql", report_cell(&runs, 1, 0), &prev);
    buf_puts(h, "<p>Run ");
    report_esc(h, id);
    buf_puts(h, " <b>");
    report_esc(h, report_cell(&runs, 0, 1));
    buf_puts(h, "</b> (");
    report_esc(h, report_cell(&runs, 0, 4));
    buf_puts(h, ")");
    buf_printf(md, "Run %s **", id);
    report_md_esc(md, report_cell(&runs, 0, 1), 60);
    buf_printf(md, "** (%s)", report_cell(&runs, 0, 4));
    if (cmp) {
        buf_puts(h, " compared with run ");
        report_esc(h, report_cell(&runs, 1, 0));
        buf_puts(h, " <b>");
        report_esc(h, report_cell(&runs, 1, 1));
        buf_puts(h, "</b>");
        buf_printf(md, " compared with run %s **", report_cell(&runs, 1, 0));
        report_md_esc(md, report_cell(&runs, 1, 1), 60);
        buf_puts(md, "**");
    }
    buf_puts(h, ".</p>\n<table><tr><th class=\"l\">metric</th><th>value</th><th>stderr</th>");
    buf_puts(md, ".\n\n| metric | value | stderr |");
    if (cmp) {
        buf_puts(h, "<th>previous</th><th>difference</th><th>se of difference</th>");
        buf_puts(md, " previous | difference | se of difference |");
    }
    buf_puts(h, "</tr>\n");
    buf_puts(md, cmp ? "\n|---|---|---|---|---|---|\n" : "\n|---|---|---|\n");
    for (size_t r = 0; r < res.nrow; r++) {
        buf_puts(h, "<tr><td class=\"l\">");
        report_esc(h, report_cell(&res, r, 0));
        buf_puts(h, "</td><td>");
        report_num(h, report_cell(&res, r, 1));
        buf_puts(h, "</td><td>");
        report_num(h, report_cell(&res, r, 2));
        buf_puts(h, "</td>");
        buf_printf(md, "| %s | ", report_cell(&res, r, 0));
        report_num(md, report_cell(&res, r, 1));
        buf_puts(md, " | ");
        report_num(md, report_cell(&res, r, 2));
        buf_puts(md, " |");
        if (cmp) {
            size_t j = 0;
            while (j < prev.nrow && strcmp(report_cell(&prev, j, 0), report_cell(&res, r, 0)))
                j++;
            if (j < prev.nrow) {
                double a = atof(report_cell(&prev, j, 1)), b = atof(report_cell(&res, r, 1));
                double sa = *report_cell(&prev, j, 2) ? atof(report_cell(&prev, j, 2)) : 0;
                double sb = *report_cell(&res, r, 2) ? atof(report_cell(&res, r, 2)) : 0;
                double se = sqrt(sa * sa + sb * sb);
                buf_printf(h, "<td>%.4g</td><td>%+.4g</td><td>%.4g</td>", a, b - a, se);
                buf_printf(md, " %.4g | %+.4g | %.4g |", a, b - a, se);
            } else {
                buf_puts(h, "<td>–</td><td>–</td><td>–</td>");
                buf_puts(md, " – | – | – |");
            }
        }
        buf_puts(h, "</tr>\n");
        buf_puts(md, "\n");
    }
    buf_puts(h, "</table>\n");
    buf_puts(md, "\n");
    if (cmp) {
        // run-vs-run bars for the metrics both share with a stderr
        struct buf svg = {0};
        int nb = 0;
        for (size_t r = 0; r < res.nrow && nb < 12; r++)
            for (size_t j = 0; j < prev.nrow; j++)
                if (!strcmp(report_cell(&prev, j, 0), report_cell(&res, r, 0)) &&
                    *report_cell(&res, r, 2)) {
                    double a = atof(report_cell(&prev, j, 1)), b = atof(report_cell(&res, r, 1));
                    double y = 30 + 34.0 * nb, mx = fmax(fabs(a), fabs(b));
                    mx = mx > 0 ? mx : 1;
                    buf_printf(&svg,
                               "<text x=\"150\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">",
                               y + 14);
                    report_esc(&svg, report_cell(&res, r, 0));
                    buf_puts(&svg, "</text>");
                    buf_printf(
                        &svg,
                        "<rect x=\"156\" y=\"%.0f\" width=\"%.1f\" height=\"10\" fill=\"#bbb\"/>"
                        "<rect x=\"156\" y=\"%.0f\" width=\"%.1f\" height=\"10\" fill=\"#2b6cb0\"/>"
                        "<text x=\"520\" y=\"%.0f\" font-size=\"10\">%.4g → %.4g</text>",
                        y + 2, 350 * fabs(a) / mx, y + 13, 350 * fabs(b) / mx, y + 14, a, b);
                    nb++;
                    break;
                }
        if (nb) {
            buf_puts(h, "<h3>Run against run (grey previous, blue newest)</h3>\n");
            buf_printf(h, "<svg width=\"640\" height=\"%d\" viewBox=\"0 0 640 %d\" role=\"img\">",
                       40 + 34 * nb, 40 + 34 * nb);
            buf_append(h, svg.p, svg.len);
            buf_puts(h, "</svg>\n");
        }
        buf_free(&svg);
    }
    struct report_table sum;
    report_query(s, "summary.sql", id, &sum);
    if (sum.nrow)
        section_classify(report_cell(&sum, 0, 0), h, md);
    report_table_free(&sum);

    struct report_table ex;
    report_query(s, "examples.sql", id, &ex);
    if (ex.nrow) {
        buf_puts(h,
                 "<h3>Sample predictions</h3>\n<table><tr><th class=\"l\">id</th>"
                 "<th class=\"l\">gold</th><th class=\"l\">prediction</th><th>correct</th></tr>\n");
        buf_puts(
            md, "Sample predictions:\n\n| id | gold | prediction | correct |\n|---|---|---|---|\n");
        for (size_t r = 0; r < ex.nrow; r++) {
            const char *c = report_cell(&ex, r, 3);
            const char *mark = !*c ? "–" : !strcmp(c, "1") ? "yes" : "no";
            buf_puts(h, "<tr><td class=\"l\">");
            report_esc(h, report_cell(&ex, r, 0));
            buf_puts(h, "</td><td class=\"l\">");
            report_esc(h, report_cell(&ex, r, 1));
            buf_puts(h, "</td><td class=\"l\">");
            report_esc(h, report_cell(&ex, r, 2));
            buf_printf(h, "</td><td class=\"%s\">%s</td></tr>\n",
                       !strcmp(mark, "yes")  ? "ok"
                       : !strcmp(mark, "no") ? "bad"
                                             : "",
                       mark);
            buf_puts(md, "| ");
            report_md_esc(md, report_cell(&ex, r, 0), 40);
            buf_puts(md, " | ");
            report_md_esc(md, report_cell(&ex, r, 1), 60);
            buf_puts(md, " | ");
            report_md_esc(md, report_cell(&ex, r, 2), 60);
            buf_printf(md, " | %s |\n", mark);
        }
        buf_puts(h, "</table>\n");
        buf_puts(md, "\n");
    }
    report_table_free(&ex);
    report_table_free(&res);
    report_table_free(&prev);
    report_table_free(&runs);
}

// The page's sections in order. A study or stage with its own section adds it here; its code
// lives in report_<name>.c (see report.h).
report_section_fn report_section_methods;  // report_methods.c (study 3)
report_section_fn report_section_generate; // report_generate.c
report_section_fn report_section_hpo;      // report_hpo.c (study 2)
report_section_fn report_section_efficiency, report_section_imbalance; // report_study_data.c

// One section per line (clang-format off), so additions merge cleanly.
// clang-format off
static report_section_fn *const sections[] = {
    section_runs,
    section_funnel,
    section_loss,
    section_results,
    report_section_generate,
    report_section_efficiency, // the studies of issue 12, in order
    report_section_hpo,
    report_section_methods,
    report_section_imbalance,
};
// clang-format on

static void
report_usage(FILE *f)
{
    fputs("usage: evaluate report --db DB [-o report.html] [--md report.md]\n"
          "Renders a self-contained HTML report (inline SVG, no network) and optionally a\n"
          "Markdown summary from the database alone.\n",
          f);
}

enum { OPT_MD = EOPT_CMD };

// Replaces the first "@KEY@" in tpl with val.
static void
fill(struct buf *out, const char *tpl, size_t n, const char *const *kv)
{
    for (size_t i = 0; i < n;) {
        bool done = false;
        for (const char *const *p = kv; *p && !done; p += 2) {
            size_t kl = strlen(p[0]);
            if (i + kl <= n && !memcmp(tpl + i, p[0], kl)) {
                buf_puts(out, p[1]);
                i += kl;
                done = true;
            }
        }
        if (!done)
            buf_putc(out, tpl[i++]);
    }
}

int
cmd_report(int argc, char **argv)
{
    struct eval_common c;
    eval_common_init(&c);
    const char *md_path = NULL;
    static const struct option longopts[] = {
        EVAL_LONGOPTS,
        {"md", required_argument, 0, OPT_MD},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (opt == OPT_MD)
            md_path = optarg;
        else if (!eval_common_opt(&c, opt, optarg, report_usage))
            die_usage("unexpected option");
    }
    if (!c.db)
        die_usage("--db DB is required");
    if (optind < argc)
        die_usage("report takes no files (it reads only --db)");
    if (access(c.db, R_OK) != 0)
        die("%s:", c.db);
    struct store *s = eval_db_open(c.db, c.busy_ms);
    struct buf body = {0}, md = {0}, dbesc = {0}, css = {0}, html = {0};
    buf_puts(&md, "# kiln report\n\n");
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++)
        sections[i](s, &body, &md);
    store_close(s);
    size_t tl, cl;
    const unsigned char *tpl = report_asset("report.html", &tl);
    const unsigned char *cs = report_asset("report.css", &cl);
    if (!tpl || !cs)
        die("internal: report template missing");
    buf_append(&css, cs, cl);
    report_esc(&dbesc, c.db);
    const char *kv[] = {"@CSS@", css.p, "@DB@", dbesc.p, "@BODY@", body.p ? body.p : "", NULL};
    fill(&html, (const char *)tpl, tl, kv);
    struct kerr err;
    if (eval_write_output(c.cli.output, html.p, html.len, &err) < 0)
        die_kerr(&err);
    if (md_path && eval_write_output(md_path, md.p, md.len, &err) < 0)
        die_kerr(&err);
    buf_free(&body), buf_free(&md), buf_free(&dbesc), buf_free(&css), buf_free(&html);
    return 0;
}

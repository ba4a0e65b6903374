// SPDX-License-Identifier: MIT
// report_study_data.c: the report sections of the data studies run by pipelines/study-data.mk
// (issue 12, studies 1 and 4), from runs of pipelines "study-efficiency" and "study-imbalance"
// (run name = arm, seed = seed) and a run "base" of each (the base model; its results hold the
// majority-class baseline).
//
//   Data efficiency: test accuracy and macro-F1 against the number of training records, mean
//   and ±1 sample standard deviation over seeds (error bars), x on a log scale, base model
//   and majority class as dashed lines; the saturation point = the smallest size whose mean is
//   within 0.01 (1 point) of the best mean.
//   Imbalance: per arm (raw split, undersampled, oversampled, class-weighted loss) macro-F1,
//   accuracy, MCC, per-class recall, ECE and Brier score, mean ± sd over seeds; a bar chart
//   of macro-F1, ECE and Brier with ±sd whiskers.
// Each renders nothing when the database holds no such runs.
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Mean and sample standard deviation (0 for one value) of x[0..n).
struct stat_ms {
    double mean, sd;
    int n;
};

static struct stat_ms
stat_of(const double *x, int n)
{
    struct stat_ms s = {0, 0, n};
    if (n < 1)
        return (struct stat_ms){NAN, NAN, 0};
    for (int i = 0; i < n; i++)
        s.mean += x[i];
    s.mean /= n;
    if (n > 1) {
        for (int i = 0; i < n; i++)
            s.sd += (x[i] - s.mean) * (x[i] - s.mean);
        s.sd = sqrt(s.sd / (n - 1));
    }
    return s;
}

// "0.8123 ± 0.0120" (or "0.8123" for a single seed) into b.
static void
put_ms(struct buf *b, struct stat_ms s)
{
    if (s.n < 1)
        buf_puts(b, "–");
    else if (s.n == 1)
        buf_printf(b, "%.4f", s.mean);
    else
        buf_printf(b, "%.4f ± %.4f", s.mean, s.sd);
}

// ---- data efficiency -------------------------------------------------------------------------

enum { EFF_ACC, EFF_F1, EFF_NMETRIC };
static const char *const eff_name[EFF_NMETRIC] = {"accuracy", "macro-F1"};

struct eff_point {
    double size;
    struct stat_ms m[EFF_NMETRIC];
};

// The smallest size whose mean is within tol of the best mean (points ascend by size).
static size_t
eff_saturation(const struct eff_point *p, size_t n, int k, double tol)
{
    double best = -INFINITY;
    for (size_t i = 0; i < n; i++)
        best = fmax(best, p[i].m[k].mean);
    for (size_t i = 0; i < n; i++)
        if (p[i].m[k].mean >= best - tol)
            return i;
    return n - 1;
}

report_section_fn report_section_efficiency;

void
report_section_efficiency(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table t, base;
    report_query(s, "study_efficiency.sql", NULL, &t);
    if (!t.nrow) {
        report_table_free(&t);
        return;
    }
    report_query(s, "study_base.sql", "study-efficiency", &base);
    // Group rows (ordered by size) into points.
    struct eff_point *pt = xcalloc(t.nrow, sizeof *pt);
    double *v[EFF_NMETRIC];
    for (int k = 0; k < EFF_NMETRIC; k++)
        v[k] = xmalloc(t.nrow * sizeof *v[k]);
    size_t np = 0;
    int max_seeds = 0;
    for (size_t r = 0; r < t.nrow;) {
        size_t e = r;
        while (e < t.nrow && !strcmp(report_cell(&t, e, 0), report_cell(&t, r, 0)))
            e++;
        pt[np].size = atof(report_cell(&t, r, 0));
        for (int k = 0; k < EFF_NMETRIC; k++) {
            int n = 0;
            for (size_t i = r; i < e; i++)
                if (*report_cell(&t, i, 2 + k))
                    v[k][n++] = atof(report_cell(&t, i, 2 + k));
            pt[np].m[k] = stat_of(v[k], n);
        }
        max_seeds = (int)(e - r) > max_seeds ? (int)(e - r) : max_seeds;
        np++;
        r = e;
    }
    bool has_base = base.nrow > 0;
    double ref[4]; // base acc, base macro-F1, majority acc, majority macro-F1
    for (int c = 0; c < 4; c++)
        ref[c] = has_base && *report_cell(&base, 0, c) ? atof(report_cell(&base, 0, c)) : NAN;

    buf_puts(h, "<h2>Data efficiency</h2>\n");
    buf_puts(md, "## Data efficiency\n\n");
    static const char *const intro =
        "Fine-tuned from the base model on nested stratified subsets of the training split "
        "(each smaller subset is contained in the larger one of the same seed), the same number "
        "of optimizer steps for every size; test-set metrics, mean over seeds with error bars "
        "of ±1 sample standard deviation. Saturation: the smallest size whose mean is within "
        "0.01 (1 point) of the best mean.";
    buf_printf(h, "<p>%s</p>\n", intro);
    buf_printf(md, "%s\n\n", intro);

    // The reference lines span the sizes (a decade when there is one size).
    double x0 = pt[0].size, x1 = np > 1 ? pt[np - 1].size : 10 * x0;
    for (int k = 0; k < EFF_NMETRIC; k++) {
        struct report_series sr[3] = {0};
        int ns = 0;
        struct report_series *q = &sr[ns++];
        q->name = "fine-tuned (mean ± sd)";
        q->color = report_colors[0];
        q->n = np;
        q->x = xmalloc(np * sizeof *q->x), q->y = xmalloc(np * sizeof *q->y);
        q->lo = xmalloc(np * sizeof *q->lo), q->hi = xmalloc(np * sizeof *q->hi);
        for (size_t i = 0; i < np; i++) {
            q->x[i] = pt[i].size;
            q->y[i] = pt[i].m[k].mean;
            q->lo[i] = q->y[i] - pt[i].m[k].sd;
            q->hi[i] = q->y[i] + pt[i].m[k].sd;
        }
        static const char *const ref_name[2] = {"base model", "majority class"};
        for (int j = 0; j < 2; j++) {
            double y = ref[2 * j + k];
            if (isnan(y))
                continue;
            q = &sr[ns];
            q->name = ref_name[j];
            q->color = report_colors[1 + j];
            q->dashed = true;
            q->n = 2;
            q->x = xmalloc(2 * sizeof *q->x), q->y = xmalloc(2 * sizeof *q->y);
            q->x[0] = x0, q->x[1] = x1;
            q->y[0] = q->y[1] = y;
            ns++;
        }
        struct buf title = {0};
        buf_printf(&title, "test %s against training records", eff_name[k]);
        report_svg_lines_scaled(h, title.p, "training records (log scale)", REPORT_LOG10, sr, ns);
        buf_free(&title);
        for (int j = 0; j < ns; j++) {
            free(sr[j].lo), free(sr[j].hi);
            sr[j].lo = sr[j].hi = NULL;
            report_series_free(&sr[j]);
        }
    }

    // Table: size | seeds | accuracy | macro-F1, then the references.
    buf_puts(h, "<table><tr><th>training records</th><th>seeds</th>");
    buf_puts(md, "| training records | seeds |");
    for (int k = 0; k < EFF_NMETRIC; k++) {
        buf_printf(h, "<th>%s (mean ± sd)</th>", eff_name[k]);
        buf_printf(md, " %s (mean ± sd) |", eff_name[k]);
    }
    buf_puts(h, "</tr>\n");
    buf_puts(md, "\n|---|---|---|---|\n");
    for (size_t i = 0; i < np; i++) {
        buf_printf(h, "<tr><td>%.0f</td><td>%d</td>", pt[i].size, pt[i].m[0].n);
        buf_printf(md, "| %.0f | %d |", pt[i].size, pt[i].m[0].n);
        for (int k = 0; k < EFF_NMETRIC; k++) {
            buf_puts(h, "<td>");
            put_ms(h, pt[i].m[k]);
            buf_puts(h, "</td>");
            buf_putc(md, ' ');
            put_ms(md, pt[i].m[k]);
            buf_puts(md, " |");
        }
        buf_puts(h, "</tr>\n");
        buf_puts(md, "\n");
    }
    static const char *const ref_row[2] = {"base model (no fine-tuning)", "majority class"};
    for (int j = 0; j < 2; j++)
        if (!isnan(ref[2 * j])) {
            buf_printf(h, "<tr><td class=\"l\">%s</td><td>–</td><td>%.4f</td><td>%.4f</td></tr>\n",
                       ref_row[j], ref[2 * j], ref[2 * j + 1]);
            buf_printf(md, "| %s | – | %.4f | %.4f |\n", ref_row[j], ref[2 * j], ref[2 * j + 1]);
        }
    buf_puts(h, "</table>\n");
    buf_puts(md, "\n");

    buf_puts(h, "<p>");
    for (int k = 0; k < EFF_NMETRIC; k++) {
        size_t sat = eff_saturation(pt, np, k, 0.01), best = 0;
        for (size_t i = 0; i < np; i++)
            if (pt[i].m[k].mean > pt[best].m[k].mean)
                best = i;
        buf_printf(h,
                   "%s saturates at <b>%.0f</b> training records (mean %.4f; best mean %.4f at "
                   "%.0f).%s",
                   eff_name[k], pt[sat].size, pt[sat].m[k].mean, pt[best].m[k].mean, pt[best].size,
                   k + 1 < EFF_NMETRIC ? " " : "");
        buf_printf(md,
                   "- %s saturates at **%.0f** training records (mean %.4f; best mean %.4f at "
                   "%.0f)\n",
                   eff_name[k], pt[sat].size, pt[sat].m[k].mean, pt[best].m[k].mean, pt[best].size);
    }
    if (max_seeds < 2) {
        buf_puts(h, " One seed per size: no error bars.");
        buf_puts(md, "- one seed per size: no error bars\n");
    }
    buf_puts(h, "</p>\n");
    buf_puts(md, "\n");

    for (int k = 0; k < EFF_NMETRIC; k++)
        free(v[k]);
    free(pt);
    report_table_free(&base);
    report_table_free(&t);
}

// ---- imbalance -------------------------------------------------------------------------------

enum { IMB_MAX_ARMS = 16, IMB_MAX_COLS = 16 };

// Arms in first-import order; per arm, per column, the values over seeds.
struct imb {
    const char *arm[IMB_MAX_ARMS];
    int narm;
    const char *col[IMB_MAX_COLS]; // metric names (table cells; live as long as the table)
    int ncol;
    double *val[IMB_MAX_ARMS][IMB_MAX_COLS];
    int nval[IMB_MAX_ARMS][IMB_MAX_COLS];
};

static int
imb_index(const char **names, int *n, int max, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], name))
            return i;
    if (*n == max)
        return -1;
    names[*n] = name;
    return (*n)++;
}

// Which metrics the table shows: these, then recall/<label> in the order met.
static bool
imb_wanted(const char *m)
{
    static const char *const fixed[] = {"macro_f1", "acc", "mcc", "ece", "brier"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!strcmp(m, fixed[i]))
            return true;
    return !strncmp(m, "recall/", 7);
}

static int
imb_col(const struct imb *d, const char *name)
{
    for (int c = 0; c < d->ncol; c++)
        if (!strcmp(d->col[c], name))
            return c;
    return -1;
}

// Horizontal bars of one metric per arm, mean with a ±sd whisker, scaled to [0, max(1, hi)].
static void
imb_bars(struct buf *h, const struct imb *d, const char *const *metrics, const char *const *label,
         int nm)
{
    double W = 640, L = 150, bw = 360, row = 18, gap = 26;
    double H = 20 + nm * (gap + row * d->narm) + 10;
    buf_printf(h, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">", W,
               H, W, H);
    double y = 12;
    for (int k = 0; k < nm; k++) {
        int c = imb_col(d, metrics[k]);
        buf_printf(h, "<text x=\"10\" y=\"%.0f\" font-size=\"12\" font-weight=\"bold\">%s</text>",
                   y + 12, label[k]);
        y += gap;
        double mx = 1;
        struct stat_ms st[IMB_MAX_ARMS];
        for (int a = 0; a < d->narm; a++) {
            st[a] = c >= 0 ? stat_of(d->val[a][c], d->nval[a][c]) : stat_of(NULL, 0);
            if (st[a].n)
                mx = fmax(mx, st[a].mean + st[a].sd);
        }
        for (int a = 0; a < d->narm; a++, y += row) {
            buf_printf(h, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">",
                       L - 6, y + 10);
            report_esc(h, d->arm[a]);
            buf_puts(h, "</text>");
            if (!st[a].n)
                continue;
            double m = st[a].mean, lo = fmax(0, m - st[a].sd), hi = m + st[a].sd;
            buf_printf(h, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"12\" fill=\"%s\"/>",
                       L, y + 1, bw * m / mx, report_colors[a % REPORT_NCOLORS]);
            buf_printf(h,
                       "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fv8M%.1f %.1fv8\" stroke=\"#222\" "
                       "fill=\"none\"/>",
                       L + bw * lo / mx, y + 7, L + bw * hi / mx, L + bw * lo / mx, y + 3,
                       L + bw * hi / mx, y + 3);
            buf_printf(h, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\">", L + bw + 10, y + 10);
            put_ms(h, st[a]);
            buf_puts(h, "</text>");
        }
    }
    buf_puts(h, "</svg>\n");
}

report_section_fn report_section_imbalance;

void
report_section_imbalance(struct store *s, struct buf *h, struct buf *md)
{
    struct report_table t, base;
    report_query(s, "study_imbalance.sql", NULL, &t);
    if (!t.nrow) {
        report_table_free(&t);
        return;
    }
    report_query(s, "study_base.sql", "study-imbalance", &base);
    struct imb *d = xcalloc(1, sizeof *d);
    static const char *const fixed[] = {"macro_f1", "acc", "mcc"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        d->col[d->ncol++] = fixed[i];
    for (size_t r = 0; r < t.nrow; r++) { // recall/<label>, then ECE and Brier last
        const char *m = report_cell(&t, r, 2);
        if (!strncmp(m, "recall/", 7))
            imb_index(d->col, &d->ncol, IMB_MAX_COLS - 2, m);
    }
    d->col[d->ncol++] = "ece";
    d->col[d->ncol++] = "brier";
    int max_seeds = 0;
    for (size_t r = 0; r < t.nrow; r++) {
        const char *m = report_cell(&t, r, 2);
        int a = imb_index(d->arm, &d->narm, IMB_MAX_ARMS, report_cell(&t, r, 0));
        int c = imb_wanted(m) ? imb_col(d, m) : -1;
        if (a < 0 || c < 0 || !*report_cell(&t, r, 3))
            continue;
        if (!d->val[a][c])
            d->val[a][c] = xmalloc(t.nrow * sizeof(double));
        d->val[a][c][d->nval[a][c]++] = atof(report_cell(&t, r, 3));
        max_seeds = d->nval[a][c] > max_seeds ? d->nval[a][c] : max_seeds;
    }

    buf_puts(h, "<h2>Imbalance handling</h2>\n");
    buf_puts(md, "## Imbalance handling\n\n");
    static const char *const intro =
        "Fine-tuned from the base model on the raw (imbalanced) training split, an undersampled "
        "and an oversampled copy (balance --strategy), and the raw split with a class-weighted "
        "loss (train --class-weights auto, inverse frequency), the same number of optimizer "
        "steps each; test-set metrics, mean ± 1 sample standard deviation over seeds. ECE: 10 "
        "equal-mass bins; Brier: mean over examples of the sum over classes of (p − [gold])²; "
        "lower is better for both.";
    buf_printf(h, "<p>%s</p>\n", intro);
    buf_printf(md, "%s\n\n", intro);
    static const char *const bar_m[] = {"macro_f1", "ece", "brier"};
    static const char *const bar_l[] = {"macro-F1 (higher is better)", "ECE (lower is better)",
                                        "Brier score (lower is better)"};
    imb_bars(h, d, bar_m, bar_l, 3);

    buf_puts(h, "<table><tr><th class=\"l\">arm</th><th>seeds</th>");
    buf_puts(md, "| arm | seeds |");
    for (int c = 0; c < d->ncol; c++) {
        const char *name = !strcmp(d->col[c], "acc") ? "accuracy" : d->col[c];
        buf_puts(h, "<th>");
        report_esc(h, name);
        buf_puts(h, "</th>");
        buf_putc(md, ' ');
        report_md_esc(md, name, 40);
        buf_puts(md, " |");
    }
    buf_puts(h, "</tr>\n");
    buf_puts(md, "\n|---|---|");
    for (int c = 0; c < d->ncol; c++)
        buf_puts(md, "---|");
    buf_puts(md, "\n");
    for (int a = 0; a < d->narm; a++) {
        buf_puts(h, "<tr><td class=\"l\">");
        report_esc(h, d->arm[a]);
        buf_printf(h, "</td><td>%d</td>", d->nval[a][0]);
        buf_puts(md, "| ");
        report_md_esc(md, d->arm[a], 40);
        buf_printf(md, " | %d |", d->nval[a][0]);
        for (int c = 0; c < d->ncol; c++) {
            struct stat_ms st = stat_of(d->val[a][c], d->nval[a][c]);
            buf_puts(h, "<td>");
            put_ms(h, st);
            buf_puts(h, "</td>");
            buf_putc(md, ' ');
            put_ms(md, st);
            buf_puts(md, " |");
        }
        buf_puts(h, "</tr>\n");
        buf_puts(md, "\n");
    }
    if (base.nrow && *report_cell(&base, 0, 2)) {
        buf_printf(h,
                   "<tr><td class=\"l\">majority class</td><td>–</td><td>%.4f</td><td>%.4f</td>"
                   "<td colspan=\"%d\"></td></tr>\n",
                   atof(report_cell(&base, 0, 3)), atof(report_cell(&base, 0, 2)), d->ncol - 2);
        buf_printf(md, "| majority class | – | %.4f | %.4f |", atof(report_cell(&base, 0, 3)),
                   atof(report_cell(&base, 0, 2)));
        for (int c = 2; c < d->ncol; c++)
            buf_puts(md, " – |");
        buf_puts(md, "\n");
    }
    buf_puts(h, "</table>\n");
    buf_puts(md, "\n");

    // The best arm on each headline metric (by mean).
    static const char *const head[] = {"macro_f1", "ece", "brier"};
    buf_puts(h, "<p>");
    for (int k = 0; k < 3; k++) {
        int c = imb_col(d, head[k]), best = -1;
        double bv = 0;
        for (int a = 0; a < d->narm && c >= 0; a++) {
            struct stat_ms st = stat_of(d->val[a][c], d->nval[a][c]);
            if (st.n && (best < 0 || (k == 0 ? st.mean > bv : st.mean < bv)))
                best = a, bv = st.mean;
        }
        if (best < 0)
            continue;
        buf_printf(h, "Best %s: <b>", bar_l[k]);
        report_esc(h, d->arm[best]);
        buf_printf(h, "</b> (%.4f). ", bv);
        buf_printf(md, "- best %s: **", bar_l[k]);
        report_md_esc(md, d->arm[best], 40);
        buf_printf(md, "** (%.4f)\n", bv);
    }
    if (max_seeds < 2) {
        buf_puts(h, "One seed per arm: no spread.");
        buf_puts(md, "- one seed per arm: no spread\n");
    }
    buf_puts(h, "</p>\n");
    buf_puts(md, "\n");

    for (int a = 0; a < d->narm; a++)
        for (int c = 0; c < d->ncol; c++)
            free(d->val[a][c]);
    free(d);
    report_table_free(&base);
    report_table_free(&t);
}

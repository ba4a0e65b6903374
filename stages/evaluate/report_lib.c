// SPDX-License-Identifier: MIT
// report_lib.c: the helpers every report section uses (see report.h): query results as string
// tables, escaping, number cells and inline SVG line charts (linear or log10 x axis).
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const report_colors[REPORT_NCOLORS] = {"#2b6cb0", "#dd6b20", "#38a169", "#805ad5",
                                                   "#c53030", "#319795", "#b7791f", "#4a5568"};

// ---- query results as a table of strings ---------------------------------------------------

int
report_table_row(void *ctx, int ncol, const char *const *names, const char *const *values)
{
    (void)names;
    struct report_table *t = ctx;
    t->ncol = ncol;
    t->cell = xrealloc(t->cell, (t->nrow + 1) * (size_t)ncol * sizeof *t->cell);
    for (int c = 0; c < ncol; c++)
        t->cell[t->nrow * (size_t)ncol + (size_t)c] = values[c] ? xstrdup(values[c]) : NULL;
    t->nrow++;
    return 0;
}

const char *
report_cell(const struct report_table *t, size_t r, int c)
{
    const char *s = t->cell[r * (size_t)t->ncol + (size_t)c];
    return s ? s : "";
}

void
report_table_free(struct report_table *t)
{
    for (size_t i = 0; i < t->nrow * (size_t)t->ncol; i++)
        free(t->cell[i]);
    free(t->cell);
    memset(t, 0, sizeof *t);
}

void
report_query_sql(struct store *s, const char *sql, const char *const *params,
                 struct report_table *t)
{
    const char *p[4] = {0};
    for (int i = 0; params && i < 4 && params[i]; i++)
        p[i] = params[i];
    struct kerr err;
    memset(t, 0, sizeof *t);
    if (store_query(s, sql, p, report_table_row, t, &err) < 0)
        die("report query: %s", err.msg);
}

void
report_query(struct store *s, const char *name, const char *p1, struct report_table *t)
{
    size_t len;
    const unsigned char *sql = report_asset(name, &len);
    if (!sql)
        die("internal: report asset %s is missing", name);
    const char *params[4] = {p1, NULL, NULL, NULL};
    struct kerr err;
    memset(t, 0, sizeof *t);
    if (store_query(s, (const char *)sql, params, report_table_row, t, &err) < 0)
        die("%s: %s", name, err.msg);
}

// ---- HTML helpers --------------------------------------------------------------------------

void
report_esc(struct buf *b, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<':
            buf_puts(b, "&lt;");
            break;
        case '>':
            buf_puts(b, "&gt;");
            break;
        case '&':
            buf_puts(b, "&amp;");
            break;
        case '"':
            buf_puts(b, "&quot;");
            break;
        default:
            buf_putc(b, *s);
        }
}

// Markdown table cell: pipes and newlines would break the row.
void
report_md_esc(struct buf *b, const char *s, size_t max)
{
    size_t n = 0;
    for (; *s && n < max; s++, n++)
        if (*s == '|')
            buf_puts(b, "\\|");
        else if (*s == '\n' || *s == '\r')
            buf_putc(b, ' ');
        else
            buf_putc(b, *s);
    if (*s)
        buf_puts(b, "…");
}

void
report_num(struct buf *b, const char *s)
{
    if (!*s) {
        buf_puts(b, "–");
        return;
    }
    char *end;
    double x = strtod(s, &end);
    if (*end)
        report_esc(b, s);
    else
        buf_printf(b, "%.4g", x);
}

// A point's position along the x axis: x, or log10(x) on a log axis (NAN for x <= 0).
static double
axis_pos(enum report_scale sc, double x)
{
    if (sc == REPORT_LINEAR)
        return x;
    return x > 0 ? log10(x) : NAN;
}

// Whether point i of q is drawn: a finite position and value.
static bool
point_drawn(enum report_scale sc, const struct report_series *q, size_t i)
{
    return isfinite(axis_pos(sc, q->x[i])) && isfinite(q->y[i]);
}

// Ticks of a log10 axis sit at m x 10^k, m = 1..9; labelled are those with m = 1, 2 or 5
// (only m = 1 when decades).
static bool
log_labelled(int m, bool decades)
{
    return m == 1 || (!decades && (m == 2 || m == 5));
}

// The number of labelled ticks within [a, c] (log10 units).
static int
log_nlabels(double a, double c, bool decades)
{
    int n = 0;
    for (int k = (int)floor(a); k <= (int)ceil(c); k++)
        for (int m = 1; m <= 9; m++) {
            double l = log10(m) + k;
            n += log_labelled(m, decades) && l >= a - 1e-9 && l <= c + 1e-9;
        }
    return n;
}

// The x ticks of a log10 axis spanning [a, c] (log10 units), drawn at px = left + width * (l -
// a) / (c - a) below the line at y: labelled at 1, 2 and 5 times the powers of ten (only the
// powers when that would be more than 8 labels), short and unlabelled at the other multiples;
// 5 evenly spaced labels instead when fewer than 2 would be labelled.
static void
svg_log_ticks(struct buf *b, double a, double c, double left, double width, double y)
{
    bool decades = log_nlabels(a, c, false) > 8;
    if (log_nlabels(a, c, decades) < 2) {
        for (int i = 0; i <= 4; i++)
            buf_printf(b,
                       "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\" "
                       "text-anchor=\"middle\">%.3g</text>",
                       left + width * i / 4, y + 14, pow(10, a + (c - a) * i / 4));
        return;
    }
    for (int k = (int)floor(a); k <= (int)ceil(c); k++)
        for (int m = 1; m <= 9; m++) {
            double l = log10(m) + k;
            if (l < a - 1e-9 || l > c + 1e-9)
                continue;
            double px = left + width * (l - a) / (c - a);
            bool label = log_labelled(m, decades);
            buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" "
                       "stroke=\"#888\"/>",
                       px, y, px, y + (label ? 5 : 3));
            if (label)
                buf_printf(b,
                           "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\" "
                           "text-anchor=\"middle\">%g</text>",
                           px, y + 14, m * pow(10, k));
        }
}

void
report_svg_lines(struct buf *b, const char *title, const char *xlabel,
                 const struct report_series *s, int ns)
{
    report_svg_lines_scaled(b, title, xlabel, REPORT_LINEAR, s, ns);
}

void
report_svg_lines_scaled(struct buf *b, const char *title, const char *xlabel,
                        enum report_scale xscale, const struct report_series *s, int ns)
{
    const double W = 640, T = 30, B = 40, L = 60, R = 150;
    const double H = fmax(300, T + B + 16.0 * ns + 20);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            if (!point_drawn(xscale, &s[k], i))
                continue;
            double x = axis_pos(xscale, s[k].x[i]);
            x0 = fmin(x0, x), x1 = fmax(x1, x);
            y0 = fmin(y0, s[k].lo ? s[k].lo[i] : s[k].y[i]);
            y1 = fmax(y1, s[k].hi ? s[k].hi[i] : s[k].y[i]);
        }
    if (!isfinite(x0))
        x0 = 0, x1 = 1;
    if (!isfinite(y0))
        y0 = 0, y1 = 1;
    if (!(x1 > x0))
        x1 = x0 + 1;
    if (!(y1 > y0))
        y1 = y0 + 1;
#define PX(v) (L + (W - L - R) * (axis_pos(xscale, v) - x0) / (x1 - x0))
#define PY(v) (H - B - (H - T - B) * ((v)-y0) / (y1 - y0))
    buf_printf(b, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">", W,
               H, W, H);
    buf_puts(b, "<text x=\"10\" y=\"18\" font-size=\"13\">");
    report_esc(b, title);
    buf_puts(b, "</text>");
    buf_printf(b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>", L,
               H - B, W - R, H - B);
    buf_printf(b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>", L, T,
               L, H - B);
    for (int i = 0; i <= 4; i++) {
        double v = y0 + (y1 - y0) * i / 4, py = H - B - (H - T - B) * i / 4;
        buf_printf(b,
                   "<text x=\"%.0f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>",
                   L - 4, py + 3, v);
        if (xscale != REPORT_LINEAR)
            continue;
        double xv = x0 + (x1 - x0) * i / 4, px = L + (W - L - R) * i / 4;
        buf_printf(
            b, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\" text-anchor=\"middle\">%.4g</text>",
            px, H - B + 14, xv);
    }
    if (xscale == REPORT_LOG10)
        svg_log_ticks(b, x0, x1, L, W - L - R, H - B);
    buf_printf(b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">",
               (W - R + L) / 2, H - 6);
    report_esc(b, xlabel);
    buf_puts(b, "</text>");
    for (int k = 0; k < ns; k++) {
        const struct report_series *q = &s[k];
        buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                   q->color, q->dashed ? " stroke-dasharray=\"6 4\"" : "");
        for (size_t i = 0; i < q->n; i++)
            if (point_drawn(xscale, q, i))
                buf_printf(b, "%.1f,%.1f ", PX(q->x[i]), PY(q->y[i]));
        buf_puts(b, "\"/>");
        for (size_t i = 0; i < q->n; i++) {
            if (!point_drawn(xscale, q, i))
                continue;
            if (q->n == 1 || q->lo)
                buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", PX(q->x[i]),
                           PY(q->y[i]), q->color);
            if (q->lo && q->hi && isfinite(q->lo[i]) && isfinite(q->hi[i])) {
                double px = PX(q->x[i]), a = PY(q->lo[i]), c = PY(q->hi[i]);
                buf_printf(b,
                           "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8\" stroke=\"%s\" "
                           "fill=\"none\"/>",
                           px, a, c, px - 4, a, px - 4, c, q->color);
            }
        }
        buf_printf(b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"4\" fill=\"%s\"/>",
                   W - R + 10, T + 16.0 * k, q->color);
        buf_printf(b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">", W - R + 26,
                   T + 16.0 * k + 5);
        report_esc(b, q->name);
        buf_puts(b, "</text>");
    }
#undef PX
#undef PY
    buf_puts(b, "</svg>\n");
}

void
report_series_from(struct report_series *s, const struct report_table *t, int xc, int yc,
                   const char *name, const char *color)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->color = color;
    s->n = t->nrow;
    s->x = xmalloc((t->nrow + 1) * sizeof *s->x);
    s->y = xmalloc((t->nrow + 1) * sizeof *s->y);
    for (size_t i = 0; i < t->nrow; i++) {
        s->x[i] = atof(report_cell(t, i, xc));
        s->y[i] = atof(report_cell(t, i, yc));
    }
}

void
report_series_free(struct report_series *s)
{
    free(s->x), free(s->y), free(s->lo), free(s->hi);
    memset(s, 0, sizeof *s);
}

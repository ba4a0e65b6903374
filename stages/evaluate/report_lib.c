// SPDX-License-Identifier: MIT
// report_lib.c: the helpers every report section uses (see report.h): query results as string
// tables, escaping, number cells and inline SVG line charts.
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

void
report_svg_lines(struct buf *b, const char *title, const char *xlabel,
                 const struct report_series *s, int ns)
{
    const double W = 640, T = 30, B = 40, L = 60, R = 150;
    const double H = fmax(300, T + B + 16.0 * ns + 20);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            x0 = fmin(x0, s[k].x[i]), x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].lo ? s[k].lo[i] : s[k].y[i]);
            y1 = fmax(y1, s[k].hi ? s[k].hi[i] : s[k].y[i]);
        }
    if (!(x1 > x0))
        x1 = x0 + 1;
    if (!(y1 > y0))
        y1 = y0 + 1;
#define PX(v) (L + (W - L - R) * ((v)-x0) / (x1 - x0))
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
        double xv = x0 + (x1 - x0) * i / 4, px = L + (W - L - R) * i / 4;
        buf_printf(
            b, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\" text-anchor=\"middle\">%.4g</text>",
            px, H - B + 14, xv);
    }
    buf_printf(b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">",
               (W - R + L) / 2, H - 6);
    report_esc(b, xlabel);
    buf_puts(b, "</text>");
    for (int k = 0; k < ns; k++) {
        const struct report_series *q = &s[k];
        buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                   q->color, q->dashed ? " stroke-dasharray=\"6 4\"" : "");
        for (size_t i = 0; i < q->n; i++)
            buf_printf(b, "%.1f,%.1f ", PX(q->x[i]), PY(q->y[i]));
        buf_puts(b, "\"/>");
        for (size_t i = 0; i < q->n; i++) {
            if (q->n == 1 || q->lo)
                buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", PX(q->x[i]),
                           PY(q->y[i]), q->color);
            if (q->lo && q->hi) {
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

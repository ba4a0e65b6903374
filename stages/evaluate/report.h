// SPDX-License-Identifier: MIT
// report.h: what the sections of `evaluate report` share — SQL results as tables of strings,
// HTML and Markdown escaping, and inline SVG line charts (with error bars, dashed reference
// lines and a linear or log10 x axis). A section is a function that appends HTML to h and Markdown
// to md; sections live in report.c or in their own report_<name>.c and are listed in report.c's
// sections[] in page order. A section renders nothing when the database holds nothing for it.
#ifndef KILN_EVALUATE_REPORT_H
#define KILN_EVALUATE_REPORT_H

#include "evaluate.h"

typedef void report_section_fn(struct store *s, struct buf *h, struct buf *md);

// The embedded reports/NAME asset (SQL, template, style); NULL if there is none.
const unsigned char *report_asset(const char *name, size_t *len);

// A query's rows as strings: cell[r * ncol + c], NULL for SQL NULL.
struct report_table {
    int ncol;
    size_t nrow;
    char **cell;
};

// Runs the embedded reports/NAME with ?1 bound to p1 (may be NULL) into t. Dies on error.
void report_query(struct store *s, const char *name, const char *p1, struct report_table *t);
// Runs literal SQL (for sections whose query is built at run time). Dies on error.
void report_query_sql(struct store *s, const char *sql, const char *const *params,
                      struct report_table *t);
// The cell's text; "" for NULL.
const char *report_cell(const struct report_table *t, size_t r, int c);
void report_table_free(struct report_table *t);

// HTML-escapes s into b.
void report_esc(struct buf *b, const char *s);
// Markdown table cell: escapes pipes, flattens newlines, cuts at max bytes with an ellipsis.
void report_md_esc(struct buf *b, const char *s, size_t max);
// A number cell printed with 4 significant digits; "–" for empty, text escaped as is.
void report_num(struct buf *b, const char *s);

// One line of a chart: points (x[i], y[i]), x ascending. lo/hi, when not NULL, give each
// point's error bar. dashed draws a reference line (e.g. a baseline: two points spanning x).
struct report_series {
    const char *name, *color;
    double *x, *y, *lo, *hi;
    size_t n;
    bool dashed;
};

// Colors for up to REPORT_NCOLORS series, in order.
enum { REPORT_NCOLORS = 8 };
extern const char *const report_colors[REPORT_NCOLORS];

// The x axis of a line chart. On REPORT_LOG10, points at x <= 0 are left out and the axis is
// labelled at 1, 2 and 5 times powers of ten (only powers of ten when those are too many),
// with unlabelled ticks at the other multiples.
enum report_scale { REPORT_LINEAR, REPORT_LOG10 };

// Appends an SVG line chart of ns series (any ns; the legend lists them all), x linear.
void report_svg_lines(struct buf *b, const char *title, const char *xlabel,
                      const struct report_series *s, int ns);
// The same with the x axis on xscale.
void report_svg_lines_scaled(struct buf *b, const char *title, const char *xlabel,
                             enum report_scale xscale, const struct report_series *s, int ns);
// Fills s from columns xc, yc of t (allocates x and y; free with report_series_free).
void report_series_from(struct report_series *s, const struct report_table *t, int xc, int yc,
                        const char *name, const char *color);
void report_series_free(struct report_series *s);

#endif

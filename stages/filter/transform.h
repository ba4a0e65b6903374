// SPDX-License-Identifier: MIT
// transform: filter's opt-in text rewrites.
//   email       a raw e-mail becomes "Subject: ..." plus its decoded text parts (common/mime:
//               headers dropped, quoted-printable and base64 decoded, multipart resolved,
//               charsets converted); text that does not start with e-mail headers is unchanged
//   html        HTML tags removed (only names of real HTML elements, so "<jane@x.org>" and
//               "a < b" stay), <script>, <style> and <head> contents and comments dropped,
//               block elements (p, div, br, li, tr, h1-h6, ...) become line breaks, character
//               references (&amp; &#233; &#xE9; and about 40 common names) decoded
//   nfkc        Unicode NFKC normalization
//   whitespace  \r\n and \r become \n; runs of spaces, tabs and other horizontal Unicode
//               spaces become one space; spaces at line ends go; at most one blank line in a
//               row; leading and trailing blank space of the text removed
#ifndef KILN_FILTER_TRANSFORM_H
#define KILN_FILTER_TRANSFORM_H

#include "rules.h"
#include "util.h"

#include <stdbool.h>

// Applies t to in[0..n) (valid UTF-8), replacing out's contents. Returns 1 when the text
// changed, 0 when out equals the input, -1 with err on failure (invalid UTF-8 for nfkc).
int transform_apply(enum transform_id t, const char *in, size_t n, struct buf *out,
                    struct kerr *err);

// The individual transforms, appending to out.
void transform_html(const char *s, size_t n, struct buf *out);
void transform_whitespace(const char *s, size_t n, struct buf *out);

#endif

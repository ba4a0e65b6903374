// SPDX-License-Identifier: MIT
// tok_template: the prompt/completion templates of `tokenize encode --prompt/--completion`,
// shared with `evaluate`, so a model is scored on exactly the text it was trained on.
//
// Syntax: {name} is replaced by the record's field name (a dotted path such as metadata.url
// reaches nested objects): a string gives its unescaped text, a number or boolean its JSON
// text; null, arrays and objects are errors. Escapes: \n newline, \t tab, \r carriage
// return, a backslash before any other character gives that character (\\ a backslash, \{ a
// brace), {{ and }} literal braces. A lone '}', an unclosed '{' or an empty {} is a template
// error. (The same rules as tokenize encode's --prompt/--completion.)
#ifndef KILN_TOK_TEMPLATE_H
#define KILN_TOK_TEMPLATE_H

#include "json.h"
#include "util.h"

struct tok_tpl;

// Parses text. Returns a template (free with tok_tpl_del) or NULL with err
// "template 'x': what at column N".
struct tok_tpl *tok_tpl_new(const char *text, struct kerr *err);
void tok_tpl_del(struct tok_tpl *t);
// True when the template names field name.
bool tok_tpl_uses(const struct tok_tpl *t, const char *name);
// Appends the expansion for record o to out. The field override_key (NULL = none) takes the
// text override_val instead of the record's value (evaluate substitutes each candidate label).
// Returns 0, or -1 with err "no field 'x'" / "field 'x' is an array (need a string, number or
// boolean)".
int tok_tpl_expand(const struct tok_tpl *t, const struct json_obj *o, const char *override_key,
                   const char *override_val, struct buf *out, struct kerr *err);

#endif

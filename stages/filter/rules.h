// SPDX-License-Identifier: MIT
// rules: filter's processing program — an ordered list of steps (user rules, built-in rule
// sets, transforms, redaction) read from a rules file and from command-line options, and the
// evaluation of user rules against one record.
//
// Rules file format (one statement per line; '#' starts a comment outside quotes and regexes):
//
//   use SET [PARAM=VALUE ...]       run a built-in set here (gopher-quality, gopher-repetition,
//                                   c4, fineweb), optionally with thresholds for this use
//   set SET.PARAM = VALUE           change a threshold of SET wherever it is used
//   transform NAME [NAME ...]       email, html, nfkc, whitespace (see transform.h)
//   redact TYPE[,TYPE ...]          email, ipv4, ipv6, phone, card, url or all
//   NAME: CONDITION                 a rule: records that fail CONDITION are dropped with
//                                   reason NAME
//
// Conditions say what a kept record satisfies:
//   FUNC(FIELD) OP NUMBER     FUNC: chars, words, lines (counts) or letters, digits, symbols,
//                             uppercase, nonascii, whitespace (shares in [0,1] of the field's
//                             characters; uppercase is the share of letters that are upper case)
//   FIELD OP NUMBER           the field is a JSON number (missing or not a number: fails)
//   FIELD ~ /REGEX/FLAGS      must match (PCRE2, UTF and UCP; flags i m s); missing fails
//   FIELD !~ /REGEX/FLAGS     must not match; missing passes
//   FIELD in [A, "B C", ...]  allow list (exact string); missing fails
//   FIELD not in [...]        deny list; missing passes
// OP is one of < <= > >= == !=. FIELD is a dotted path (text, label, metadata.url, a.b.c);
// the stage's text field (--field, default text) is seen as transformed by earlier steps.
// Counts of a missing field are 0; a non-string value is measured on its JSON text. words
// counts words that are not only punctuation (common/textstats tokenization).
// Steps run in order; the first failing rule or set gives the record's reason.
#ifndef KILN_FILTER_RULES_H
#define KILN_FILTER_RULES_H

#include "heur.h"
#include "json.h"
#include "regex.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>

enum step_kind { STEP_RULE, STEP_SET, STEP_TRANSFORM, STEP_REDACT };
enum rule_kind { RULE_MEASURE, RULE_NUMBER, RULE_REGEX, RULE_LIST };
enum rule_func {
    FN_CHARS,
    FN_WORDS,
    FN_LINES,
    FN_LETTERS,
    FN_DIGITS,
    FN_SYMBOLS,
    FN_UPPERCASE,
    FN_NONASCII,
    FN_WHITESPACE,
    FN_COUNT
};
enum rule_op { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE };
enum transform_id { TR_EMAIL, TR_HTML, TR_NFKC, TR_WHITESPACE, TR_COUNT };

extern const char *const rule_func_names[FN_COUNT];
extern const char *const transform_names[TR_COUNT];

struct step {
    enum step_kind kind;
    char *name; // rule name (the reject reason), set or transform name
    int line, col; // where it was defined (0 for command-line steps)
    // STEP_RULE
    enum rule_kind rk;
    char *field;
    enum rule_func fn;
    enum rule_op op;
    double num;
    struct regex *re;
    bool negate; // !~ and "not in"
    char **items;
    size_t n_items;
    // STEP_SET
    int set;
    double params[HEUR_MAX_PARAMS];
    double inline_val[HEUR_MAX_PARAMS];
    unsigned inline_mask;
    // STEP_TRANSFORM
    enum transform_id tr;
    // STEP_REDACT
    unsigned pii_mask;
};

struct rules {
    struct step *steps;
    size_t n, cap;
    double set_params[HEUR_NSETS][HEUR_MAX_PARAMS]; // thresholds changed by set / --set
};

void rules_init(struct rules *r);
void rules_free(struct rules *r);

// Parses a rules file (name is used in messages) and appends its steps. Returns 0, or -1 with
// err "name:line:col: what" (syntax, bad regex, unknown set/parameter/transform/type,
// threshold out of range, duplicate rule name).
int rules_parse(struct rules *r, const char *name, const char *text, size_t n, struct kerr *err);
// --set SET.PARAM=VALUE. 0 or -1 with err.
int rules_set_option(struct rules *r, const char *assign, struct kerr *err);
// Appends a built-in set ("default" = gopher-quality, gopher-repetition), transforms and
// redaction given on the command line (comma-separated lists). 0 or -1 with err.
int rules_add_sets(struct rules *r, const char *list, struct kerr *err);
int rules_add_transforms(struct rules *r, const char *list, struct kerr *err);
int rules_add_redact(struct rules *r, const char *list, struct kerr *err);
// Resolves every set step's thresholds (defaults, then set/--set, then the step's own).
void rules_finish(struct rules *r);

// What a rule measured, for --rejects and --annotate.
struct rule_value {
    bool missing;    // the field is absent (or, for RULE_NUMBER, not a number)
    bool is_num;
    double num;
    const char *str; // for regex/list rules: the offending string (may be NULL)
    size_t str_len;
};

// Scratch for rule evaluation (one per thread).
struct rules_scratch {
    struct buf val;
    struct regex_match *m;
    struct ts_words words;
};
void rules_scratch_init(struct rules_scratch *x);
void rules_scratch_free(struct rules_scratch *x);

// Evaluates rule st on record o whose text field (named text_field) currently reads
// text[0..text_n). Returns 1 (passes), 0 (fails; *v says why) or -1 on a matching error
// (match limit) with err.
int rules_eval(const struct step *st, const struct json_obj *o, const char *text_field,
               const char *text, size_t text_n, struct rules_scratch *x, struct rule_value *v,
               struct kerr *err);

#endif

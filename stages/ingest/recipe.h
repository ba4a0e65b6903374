// SPDX-License-Identifier: MIT
// recipe: the dataset recipe file (datasets/*.recipe) — where a dataset comes from and how its
// members become records. Also the rules ingest applies to plain archives and folders (the
// same struct, filled from command-line options).
//
// Format: one directive per line, "KEY VALUE..." separated by blanks; '#' starts a comment
// line; blank lines are ignored. Unknown keys and malformed values are errors with the line
// number. Directives (see datasets/README.md for the full description):
//   name NAME                      recipe name (required; [A-Za-z0-9._-]+)
//   npm PACKAGE VERSION            source: an npm package at an exact version
//   integrity sha512-BASE64        the tarball's integrity, as `npm view P@V dist.integrity`
//   url URL                        tarball URL (default: the npm registry's)
//   path PATH                      source: a local archive, folder or JSON Lines file
//                                  (relative to the recipe's folder); instead of npm
//   source NAME                    the records' "source" (default: name)
//   source-rule GLOB NAME          per-member source, first match wins (else source)
//   include GLOB / exclude GLOB    member selection (fnmatch, '*' does not cross '/');
//                                  no include = every member; exclude wins
//   label GLOB LABEL               first matching rule gives the label
//   unlabeled keep|skip|fail       members no label rule matches (default keep: no label)
//   checksums MEMBER datapackage   a frictionless datapackage.json listing path + hash
//   checksum-mismatch fail|drop|keep   (default fail)
//   decode replace|latin1|strict   invalid UTF-8: U+FFFD, the byte as U+0080..U+00FF, or an
//                                  error (default replace); replaced bytes are counted
#ifndef KILN_INGEST_RECIPE_H
#define KILN_INGEST_RECIPE_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>

enum decode_mode { DECODE_REPLACE, DECODE_LATIN1, DECODE_STRICT };
enum on_bad { ON_BAD_FAIL, ON_BAD_DROP, ON_BAD_KEEP };

struct glob_rule {
    char *glob, *value;
};

struct checksum_src {
    char *member, *format;
};

struct recipe {
    char *file; // the recipe file, NULL when built from options
    char *dir;  // its folder ("." otherwise)
    char *name, *npm_name, *npm_version, *integrity, *url, *path, *source;
    char **include, **exclude;
    size_t n_include, n_exclude;
    struct glob_rule *labels, *sources;
    size_t n_labels, n_sources;
    struct checksum_src *checksums;
    size_t n_checksums;
    enum on_bad unlabeled; // KEEP = no label field
    enum on_bad on_mismatch;
    enum decode_mode decode;
};

// Parses a recipe file. 0, or -1 with err "file:line: what".
int recipe_load(struct recipe *r, const char *path, struct kerr *err);
void recipe_free(struct recipe *r);
// Convenience for option-built recipes.
void recipe_add_str(char ***v, size_t *n, const char *s);
void recipe_add_rule(struct glob_rule **v, size_t *n, const char *glob, const char *value);

// Member selection and label; label NULL when no rule matches.
bool recipe_selects(const struct recipe *r, const char *member);
const char *recipe_label(const struct recipe *r, const char *member);
// The member's source: the first matching source-rule, else r->source.
const char *recipe_source(const struct recipe *r, const char *member);

// The cache path of an npm recipe's tarball: CACHE/npm/<scope-name>-<version>.tgz with '@'
// dropped and '/' turned into '-' (npm pack's file name). Caller frees.
char *recipe_cache_path(const struct recipe *r, const char *cache_dir);

int recipe_parse_decode(const char *s, enum decode_mode *out);
int recipe_parse_on_bad(const char *s, enum on_bad *out);

#endif

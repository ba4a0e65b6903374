// SPDX-License-Identifier: MIT
// textstats: text statistics that data stages share — word splitting, line splitting with
// Python's str.splitlines() rules, code point counts and character-class counts over UTF-8.
//
// Word splitting approximates the English word tokenizers that datatrove's heuristics use
// (NLTK / spaCy): text is split on Unicode whitespace; from each chunk, leading and trailing
// punctuation and symbols are peeled off as tokens of their own (one code point each, except
// that a run of '.' is one token, so "..." stays whole); English clitics are split from the
// end of the core ("don't" → "do" "n't", "it's" → "it" "'s", also 're 've 'll 'd 'm, with ' or
// ’). Inner punctuation stays inside the word ("e-mail", "3.14", "a@b.com"). There is no
// abbreviation list ("U.S." → "U.S" "."). Lengths are in code points, as Python's len().
//
// Inputs must be valid UTF-8 (strings from parsed JSON are); invalid bytes count as one
// code point of class 0 and never crash.
#ifndef KILN_TEXTSTATS_H
#define KILN_TEXTSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TS_WORD_ALPHA = 1,  // contains at least one letter (Python str.isalpha on some char)
    TS_WORD_SYMBOL = 2, // only punctuation, symbols or control characters
};

// One word: a byte span of the text and its length in code points.
struct ts_word {
    uint32_t off, len; // bytes
    uint32_t cps;      // code points
    uint32_t flags;    // TS_WORD_*
};

// A growable list of words. Zero-initialise; ts_words_free() when done. Reused across
// calls to ts_words_split (which resets n).
struct ts_words {
    struct ts_word *v;
    size_t n, cap;
};

// Splits s[0..n) into words (see above), replacing the contents of w. Offsets must fit in 32
// bits: texts longer than 4 GiB are split as if they ended there.
void ts_words_split(const char *s, size_t n, struct ts_words *w);
void ts_words_free(struct ts_words *w);

// Number of code points in s[0..n) (bytes that do not continue a UTF-8 sequence).
size_t ts_cps(const char *s, size_t n);

// Python str.isspace() for one code point (Unicode White_Space plus U+001C..U+001F).
bool ts_is_space(int32_t cp);

// Python str.splitlines() iteration: line separators are \n, \r, \r\n, \v, \f, \x1c, \x1d,
// \x1e, U+0085, U+2028, U+2029; a separator at the very end does not start another line.
// Usage: size_t pos = 0, a, len; while (ts_line_next(s, n, &pos, &a, &len)) { s + a, len }
bool ts_line_next(const char *s, size_t n, size_t *pos, size_t *start, size_t *len);

// Span of s[0..n) without leading / trailing Python whitespace (str.strip()).
void ts_strip(const char *s, size_t n, size_t *start, size_t *len);

// Character-class counts in code points.
struct ts_classes {
    uint64_t chars;    // all code points
    uint64_t letters;  // L*
    uint64_t upper;    // Lu, Lt
    uint64_t digits;   // N*
    uint64_t symbols;  // P* and S* (punctuation and symbols)
    uint64_t space;    // Python whitespace
    uint64_t nonascii; // code points >= U+0080
};
void ts_classes_count(const char *s, size_t n, struct ts_classes *c);

#endif

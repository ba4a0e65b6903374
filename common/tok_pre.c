// SPDX-License-Identifier: MIT
// tok_pre: pre-tokenizers — split text into the pieces BPE works on.
//
// The presets (gpt2, cl100k, o200k, llama3) have hand-written splitters that return exactly the
// pieces their regex returns under leftmost-alternative, backtracking semantics (the tiktoken
// regexes below); tests compare them with the PCRE2 path on varied text. The splitters decode
// the input once into code points and classes, then walk the alternatives in order. Character
// classes follow the regexes: \p{L}, \p{N}, \s (Unicode White_Space, as tiktoken's Rust regex;
// PCRE2's \s differs only at U+180E), and for o200k the letter groups
//   U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]   W = [\p{Ll}\p{Lm}\p{Lo}\p{M}].
// An invalid UTF-8 byte counts as one punctuation character (tiktoken never sees one).
//
// A custom regex (or a preset forced onto the regex path) runs through common/regex with
// Hugging Face Split "Isolated" semantics: matches are pieces and so are the gaps between them.
// Invalid UTF-8 bytes are pieces of their own and the regex runs on the valid stretches.
#include "tok.h"

#include "regex.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

static const char *const pre_regex[] = {
    [TOK_PRE_GPT2] = "'(?:[sdmt]|ll|ve|re)| ?\\p{L}++| ?\\p{N}++| ?[^\\s\\p{L}\\p{N}]++|\\s++$|"
                     "\\s+(?!\\S)|\\s",
    [TOK_PRE_CL100K] = "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| "
                       "?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s",
    [TOK_PRE_O200K] =
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
        "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    [TOK_PRE_LLAMA3] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                       "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

// Other spellings of the same splitters: the original cl100k (tiktoken's JSON, = llama3), the
// original GPT-2 (tiktoken's JSON and Hugging Face's ByteLevel regex).
static const struct {
    const char *re;
    enum tok_pre pre;
} pre_alias[] = {
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
     TOK_PRE_GPT2},
};

static const char *const pre_names[] = {
    [TOK_PRE_GPT2] = "gpt2",   [TOK_PRE_CL100K] = "cl100k", [TOK_PRE_O200K] = "o200k",
    [TOK_PRE_LLAMA3] = "llama3", [TOK_PRE_CUSTOM] = "custom",
};

const char *
tok_pre_regex_of(enum tok_pre p)
{
    return p < TOK_PRE_CUSTOM ? pre_regex[p] : NULL;
}

const char *
tok_pre_name_of(enum tok_pre p)
{
    return pre_names[p];
}

const char *
tok_pre_gguf_name(enum tok_pre p)
{
    switch (p) {
    case TOK_PRE_GPT2:
        return "gpt-2";
    case TOK_PRE_CL100K:
    case TOK_PRE_LLAMA3:
        return "llama-bpe";
    case TOK_PRE_O200K:
        return "gpt-4o";
    default:
        return NULL;
    }
}

int
tok_pre_from_name(const char *name)
{
    static const struct {
        const char *name;
        enum tok_pre pre;
    } names[] = {
        {"gpt2", TOK_PRE_GPT2},         {"r50k", TOK_PRE_GPT2},     {"r50k_base", TOK_PRE_GPT2},
        {"cl100k", TOK_PRE_CL100K},     {"cl100k_base", TOK_PRE_CL100K},
        {"o200k", TOK_PRE_O200K},       {"o200k_base", TOK_PRE_O200K},
        {"llama3", TOK_PRE_LLAMA3},
    };
    for (size_t i = 0; i < KILN_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i].name) == 0)
            return (int)names[i].pre;
    return -1;
}

int
tok_pre_from_regex(const char *pattern)
{
    for (int p = 0; p < TOK_PRE_CUSTOM; p++)
        if (strcmp(pattern, pre_regex[p]) == 0)
            return p;
    for (size_t i = 0; i < KILN_ARRAY_LEN(pre_alias); i++)
        if (strcmp(pattern, pre_alias[i].re) == 0)
            return (int)pre_alias[i].pre;
    return -1;
}

// ---- character classes -----------------------------------------------------------------

enum {
    C_L = 1,     // \p{L}
    C_N = 2,     // \p{N}
    C_WS = 4,    // \s
    C_CRLF = 8,  // \r or \n
    C_U = 16,    // o200k upper-ish: Lu Lt Lm Lo M
    C_W = 32,    // o200k lower-ish: Ll Lm Lo M
    C_O = 64,    // [^\s\p{L}\p{N}]
    C_SLASH = 128,
};

static uint8_t ascii_cls[128];

static uint8_t
cls_of_cp(int32_t cp)
{
    unsigned u = uni_class_of(cp);
    uint8_t c = 0;
    if (u & UNI_LETTER) {
        c |= C_L;
        if (!(u & UNI_LOWER))
            c |= C_U;
        if (!(u & UNI_UPPER))
            c |= C_W;
    } else if (u & UNI_DIGIT) {
        c |= C_N;
    } else if (u & UNI_SPACE) {
        c |= C_WS;
    } else {
        c |= C_O;
        if (u & UNI_MARK)
            c |= C_U | C_W;
    }
    if (cp == '\r' || cp == '\n')
        c |= C_CRLF;
    if (cp == '/')
        c |= C_SLASH;
    return c;
}

static void
ascii_init(void)
{
    // Idempotent; a race writes the same bytes.
    if (ascii_cls['a'])
        return;
    for (int i = 127; i >= 0; i--)
        ascii_cls[i] = cls_of_cp(i);
}

// ---- the splitter --------------------------------------------------------------------------

struct tok_split {
    enum tok_pre pre;
    bool use_regex;
    struct regex *re;
    struct regex_match *m;
    // Decoded input: code point i spans bytes off[i]..off[i+1). All-ASCII text (the common
    // case) skips cp and off: code point i is byte i of text.
    bool ascii;
    const unsigned char *text;
    int32_t *cp;
    uint8_t *cls;
    size_t *off;
    size_t cap;
};

static inline int32_t
cp_at(const struct tok_split *sp, size_t i)
{
    return sp->ascii ? sp->text[i] : sp->cp[i];
}

static inline size_t
off_at(const struct tok_split *sp, size_t i)
{
    return sp->ascii ? i : sp->off[i];
}

static struct tok_split *
split_alloc(enum tok_pre p)
{
    ascii_init();
    struct tok_split *sp = xcalloc(1, sizeof *sp);
    sp->pre = p;
    return sp;
}

struct tok_split *
tok_split_new(enum tok_pre p, const char *regex, struct kerr *err)
{
    if (p != TOK_PRE_CUSTOM)
        return split_alloc(p);
    struct tok_split *sp = split_alloc(p);
    sp->use_regex = true;
    sp->re = regex_new(regex, 0, err);
    if (!sp->re) {
        kerr_prefix(err, "pre-tokenizer regex");
        tok_split_del(sp);
        return NULL;
    }
    sp->m = regex_match_new();
    return sp;
}

struct tok_split *
tok_split_new_regex(enum tok_pre p, struct kerr *err)
{
    struct tok_split *sp = tok_split_new(TOK_PRE_CUSTOM, pre_regex[p], err);
    if (sp)
        sp->pre = p;
    return sp;
}

void
tok_split_del(struct tok_split *sp)
{
    if (!sp)
        return;
    regex_del(sp->re);
    regex_match_del(sp->m);
    free(sp->cp);
    free(sp->cls);
    free(sp->off);
    free(sp);
}

// Strict UTF-8 decoding of one code point at s[0..n): its length (1..4) and *cp, or 0 when the
// bytes are not valid UTF-8 (overlong, surrogate, above U+10FFFF, truncated).
static int
utf8_one(const unsigned char *s, size_t n, int32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = (int32_t)v;
    return len;
}

// Length of the valid UTF-8 prefix of s[0..n).
static size_t
utf8_prefix(const char *s, size_t n)
{
    size_t i = 0;
    int32_t cp;
    while (i < n) {
        int l = utf8_one((const unsigned char *)s + i, n - i, &cp);
        if (!l)
            break;
        i += (size_t)l;
    }
    return i;
}

static bool
all_ascii(const char *s, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= (unsigned char)s[i];
    return !(acc & 0x8080808080808080ull);
}

// Decodes s into sp->cls and (unless it is all ASCII) sp->cp/off; returns the number of code
// points.
static size_t
split_decode(struct tok_split *sp, const char *s, size_t n)
{
    sp->text = (const unsigned char *)s;
    sp->ascii = all_ascii(s, n);
    if (n + 1 > sp->cap) {
        sp->cap = n + 1 + n / 2;
        sp->cls = xrealloc(sp->cls, sp->cap * sizeof *sp->cls);
        free(sp->cp); // allocated again at the new size when needed
        free(sp->off);
        sp->cp = NULL;
        sp->off = NULL;
    }
    if (sp->ascii) {
        for (size_t i = 0; i < n; i++)
            sp->cls[i] = ascii_cls[sp->text[i]];
        return n;
    }
    if (!sp->cp) {
        sp->cp = xmalloc(sp->cap * sizeof *sp->cp);
        sp->off = xmalloc(sp->cap * sizeof *sp->off);
    }
    size_t k = 0, i = 0;
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        sp->off[k] = i;
        if (b < 0x80) {
            sp->cp[k] = b;
            sp->cls[k] = ascii_cls[b];
            i++;
        } else {
            int32_t c;
            int l = utf8_one((const unsigned char *)s + i, n - i, &c);
            if (!l) { // invalid byte: one punctuation character
                sp->cp[k] = -1;
                sp->cls[k] = C_O;
                i++;
            } else {
                sp->cp[k] = c;
                sp->cls[k] = cls_of_cp(c);
                i += (size_t)l;
            }
        }
        k++;
    }
    sp->off[k] = n;
    return k;
}

static inline size_t
run(const uint8_t *cls, size_t i, size_t n, uint8_t mask)
{
    while (i < n && (cls[i] & mask))
        i++;
    return i;
}

// Length in code points of a contraction ('s 't 'd 'm 'll 've 're) at i, 0 if none.
// Caseless matching folds ASCII and U+017F (long s, which folds to s).
static size_t
contraction(const struct tok_split *sp, size_t i, size_t n, bool caseless)
{
    if (i + 1 >= n || cp_at(sp, i) != '\'')
        return 0;
    int32_t a = cp_at(sp, i + 1), b = i + 2 < n ? cp_at(sp, i + 2) : 0;
    if (caseless) {
        if (a == 0x17F)
            a = 's';
        if (a >= 'A' && a <= 'Z')
            a += 32;
        if (b >= 'A' && b <= 'Z')
            b += 32;
    }
    if (a == 's' || a == 'd' || a == 'm' || a == 't')
        return 2;
    if ((a == 'l' && b == 'l') || (a == 'v' && b == 'e') || (a == 'r' && b == 'e'))
        return 3;
    return 0;
}

// Each returns the end (code point index) of the piece starting at i < n.
static size_t
next_gpt2(const struct tok_split *sp, size_t i, size_t n)
{
    const uint8_t *c = sp->cls;
    size_t k = contraction(sp, i, n, false);
    if (k)
        return i + k;
    bool sp1 = cp_at(sp, i) == ' ' && i + 1 < n;
    if (c[i] & C_L)
        return run(c, i, n, C_L);
    if (sp1 && (c[i + 1] & C_L))
        return run(c, i + 1, n, C_L);
    if (c[i] & C_N)
        return run(c, i, n, C_N);
    if (sp1 && (c[i + 1] & C_N))
        return run(c, i + 1, n, C_N);
    if (c[i] & C_O)
        return run(c, i, n, C_O);
    if (sp1 && (c[i + 1] & C_O))
        return run(c, i + 1, n, C_O);
    size_t e = run(c, i, n, C_WS); // c[i] is whitespace
    if (e == n)
        return e;
    return e - i >= 2 ? e - 1 : i + 1;
}

// cl100k and llama3. They differ only in a whitespace run at the very end of the text that
// holds a line break: cl100k (\s++$ first) keeps it whole, llama3 (the original cl100k form,
// also the pat_str of tiktoken's JSON) ends the piece at the last line break.
static size_t
next_cl100k(const struct tok_split *sp, size_t i, size_t n, bool orig)
{
    const uint8_t *c = sp->cls;
    size_t k = contraction(sp, i, n, true);
    if (k)
        return i + k;
    if (c[i] & C_L)
        return run(c, i, n, C_L);
    if (!(c[i] & (C_CRLF | C_N)) && i + 1 < n && (c[i + 1] & C_L))
        return run(c, i + 1, n, C_L);
    if (c[i] & C_N) {
        size_t e = run(c, i, n, C_N);
        return e - i > 3 ? i + 3 : e;
    }
    size_t j = cp_at(sp, i) == ' ' && i + 1 < n && (c[i + 1] & C_O) ? i + 1 : i;
    if (c[j] & C_O)
        return run(c, run(c, j, n, C_O), n, C_CRLF);
    size_t e = run(c, i, n, C_WS);
    if (e == n && !orig)
        return e;
    for (size_t p = e; p > i; p--)
        if (c[p - 1] & C_CRLF)
            return p;
    if (e == n)
        return e;
    return e - i >= 2 ? e - 1 : i + 1;
}

static size_t
o200k_word(const struct tok_split *sp, size_t q, size_t n)
{
    return q + contraction(sp, q, n, true);
}

static size_t
next_o200k(const struct tok_split *sp, size_t i, size_t n)
{
    const uint8_t *c = sp->cls;
    bool pfx = !(c[i] & (C_CRLF | C_L | C_N));
    size_t starts[2] = {pfx ? i + 1 : i, i};
    int nstarts = pfx ? 2 : 1;
    // [P]?U*W+('s..)?: the U* run gives back characters until W+ can match.
    for (int s = 0; s < nstarts; s++) {
        size_t j = starts[s];
        size_t e = run(c, j, n, C_U);
        for (size_t p = e + 1; p-- > j;)
            if (p < n && (c[p] & C_W))
                return o200k_word(sp, run(c, p, n, C_W), n);
    }
    // [P]?U+W*('s..)?
    for (int s = 0; s < nstarts; s++) {
        size_t j = starts[s];
        size_t e = run(c, j, n, C_U);
        if (e > j)
            return o200k_word(sp, run(c, e, n, C_W), n);
    }
    if (c[i] & C_N) {
        size_t e = run(c, i, n, C_N);
        return e - i > 3 ? i + 3 : e;
    }
    size_t j = cp_at(sp, i) == ' ' && i + 1 < n && (c[i + 1] & C_O) ? i + 1 : i;
    if (c[j] & C_O)
        return run(c, run(c, j, n, C_O), n, C_CRLF | C_SLASH);
    size_t e = run(c, i, n, C_WS);
    for (size_t p = e; p > i; p--)
        if (c[p - 1] & C_CRLF)
            return p;
    if (e == n)
        return e;
    return e - i >= 2 ? e - 1 : e;
}

static int
split_regex(struct tok_split *sp, const char *s, size_t n, tok_piece_fn fn, void *arg,
            struct kerr *err)
{
    size_t pos = 0;
    while (pos < n) {
        // The next valid UTF-8 stretch [pos, end); invalid bytes are pieces of their own.
        size_t end = pos + utf8_prefix(s + pos, n - pos);
        if (end == pos) {
            fn(arg, s + pos, 1);
            pos++;
            continue;
        }
        size_t at = pos;
        while (at < end) {
            size_t ms, me;
            int r = regex_find(sp->re, sp->m, s + pos, end - pos, at - pos, &ms, &me, err);
            if (r < 0)
                return -1;
            if (r == 0)
                break;
            ms += pos;
            me += pos;
            if (me == ms) { // empty match: step over one character
                int32_t cp;
                at = ms + (size_t)utf8_one((const unsigned char *)s + ms, end - ms, &cp);
                continue;
            }
            fn(arg, s + ms, me - ms);
            at = me;
        }
        pos = end;
    }
    return 0;
}

// The regex path with gaps: wraps split_regex to emit unmatched text between matches.
struct gap_state {
    const char *base;
    size_t last;
    tok_piece_fn fn;
    void *arg;
};

static void
gap_piece(void *arg, const char *p, size_t n)
{
    struct gap_state *g = arg;
    size_t at = (size_t)(p - g->base);
    if (at > g->last)
        g->fn(g->arg, g->base + g->last, at - g->last);
    g->fn(g->arg, p, n);
    g->last = at + n;
}

int
tok_split_run(struct tok_split *sp, const char *s, size_t n, tok_piece_fn fn, void *arg,
              struct kerr *err)
{
    if (sp->use_regex) {
        struct gap_state g = {s, 0, fn, arg};
        if (split_regex(sp, s, n, gap_piece, &g, err) < 0)
            return -1;
        if (g.last < n)
            fn(arg, s + g.last, n - g.last);
        return 0;
    }
    size_t k = split_decode(sp, s, n);
    size_t i = 0;
    while (i < k) {
        size_t e;
        switch (sp->pre) {
        case TOK_PRE_GPT2:
            e = next_gpt2(sp, i, k);
            break;
        case TOK_PRE_O200K:
            e = next_o200k(sp, i, k);
            break;
        default:
            e = next_cl100k(sp, i, k, sp->pre == TOK_PRE_LLAMA3);
            break;
        }
        fn(arg, s + off_at(sp, i), off_at(sp, e) - off_at(sp, i));
        i = e;
    }
    return 0;
}

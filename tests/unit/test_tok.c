// SPDX-License-Identifier: MIT
// test_tok: the tokenizer module — byte-to-unicode map, hand-written pre-tokenizers against
// the PCRE2 path of the same regex, BPE on a hand-made rank file (whole-piece shortcut,
// merging order, long runs), special-token policy, arbitrary-byte round trips, training
// (HF merge order and ties, stop rules), tokenizer.json save → load → save, both merge forms,
// and loader errors with positions. The exact-ids test against tiktoken's real vocabularies is
// tests/cli/tokenize_tiktoken.bats (it needs the npm package from the cache).
#include "json.h"
#include "tok.h"

#include "test.h"

#include <pthread.h>
#include <stdlib.h>

static uint64_t rng = 42;
static uint64_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

// ---- pre-tokenizer ------------------------------------------------------------------------

static void
utf8_put(struct buf *b, uint32_t cp)
{
    if (cp < 0x80) {
        buf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        buf_putc(b, (char)(0xC0 | cp >> 6));
        buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        buf_putc(b, (char)(0xE0 | cp >> 12));
        buf_putc(b, (char)(0x80 | (cp >> 6 & 0x3F)));
        buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        buf_putc(b, (char)(0xF0 | cp >> 18));
        buf_putc(b, (char)(0x80 | (cp >> 12 & 0x3F)));
        buf_putc(b, (char)(0x80 | (cp >> 6 & 0x3F)));
        buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

// A random code point from blocks of every character class that have been stable across
// Unicode versions (the splitters' classes and PCRE2's may come from different versions, and
// characters assigned recently — e.g. U+0CF3 in 15.0 — can differ between them).
static uint32_t
random_cp(uint64_t r)
{
    static const uint32_t blocks[][2] = {
        {0x00, 0x7F},       {0x80, 0x24F},      {0x250, 0x2FF},     {0x300, 0x36F},
        {0x370, 0x3FF},     {0x400, 0x4FF},     {0x5D0, 0x5EA},     {0x620, 0x669},
        {0x900, 0x963},     {0x2000, 0x206F},   {0x2070, 0x209C},   {0x2100, 0x218B},
        {0x2190, 0x23FF},   {0x3000, 0x303F},   {0x3041, 0x30FF},   {0x4E00, 0x9FA5},
        {0xAC00, 0xD7A3},   {0xFF01, 0xFFEE},   {0x1F300, 0x1F64F}, {0x1D400, 0x1D7FF},
    };
    const uint32_t *b = blocks[r % KILN_ARRAY_LEN(blocks)];
    return b[0] + (uint32_t)(r >> 8) % (b[1] - b[0] + 1);
}

struct pieces {
    struct buf b; // pieces joined by 0x01 separators
};

static void
collect(void *arg, const char *p, size_t n)
{
    struct pieces *ps = arg;
    buf_append(&ps->b, p, n);
    buf_putc(&ps->b, '\x01');
}

// Splits s with the hand-written splitter and the regex path; CHECKs they agree.
static int
same_split(struct tok_split *hand, struct tok_split *re, const char *s, size_t n,
           const char *what)
{
    struct pieces a = {0}, b = {0};
    struct kerr err;
    int ok1 = tok_split_run(hand, s, n, collect, &a, &err);
    int ok2 = tok_split_run(re, s, n, collect, &b, &err);
    int same = ok1 == 0 && ok2 == 0 && a.b.len == b.b.len &&
               (a.b.len == 0 || memcmp(a.b.p, b.b.p, a.b.len) == 0);
    if (!same) {
        fprintf(stderr, "%s: split differs on \"%.*s\"\n hand: ", what, (int)n, s);
        for (size_t i = 0; i < a.b.len; i++)
            fputc(a.b.p[i] == 1 ? '|' : a.b.p[i], stderr);
        fputs("\n  re:  ", stderr);
        for (size_t i = 0; i < b.b.len; i++)
            fputc(b.b.p[i] == 1 ? '|' : b.b.p[i], stderr);
        fputc('\n', stderr);
    }
    buf_free(&a.b);
    buf_free(&b.b);
    return same;
}

static void
test_pretokenizers(void)
{
    struct buf fx = {0};
    struct kerr err;
    const char *root = getenv("KILN_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/tok/tiktoken_fixture.jsonl", root ? root : ".");
    CHECK_MSG(read_file(path, 0, &fx, &err) == 0, "%s", err.msg);
    // Strings the regexes treat specially, plus the fixture texts and random mixtures.
    static const char *const pool[] = {
        "a", "b", "s", "t", "l", "v", "e", "r", "d", "m", "A", "S", "T", "L", "É", "ß", "ʰ",
        "ǅ", "中", "ア", "ا", "\xcc\x81", "\xcc\x88", "0", "7", "٣", "½", " ", " ", "  ", "\t",
        "\n", "\r", "\r\n", "\xc2\xa0", "\xe3\x80\x80", "'", "'", ".", ",", "!", "/", "-", "$",
        "😀", "ſ", "K", "\xe2\x80\xa8", "\x0b", "\x0c", "\xc2\x85", "ǈ", "ᾈ",
    };
    static const char *const ascii_pool[] = {
        "a", "s", "t", "d", "m", "l", "v", "e", "r", "S", "T", "LL", "Ve", "x", "Z", "'", "'",
        " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "0", "7", "1234", ".", ",",
        "!", "/", "-", "$", "_", "\x01", "the", " the", "ing",
    };
    for (int p = 0; p < TOK_PRE_CUSTOM; p++) {
        struct tok_split *hand = tok_split_new((enum tok_pre)p, NULL, &err);
        struct tok_split *re = tok_split_new_regex((enum tok_pre)p, &err);
        CHECK_MSG(hand && re, "%s", err.msg);
        if (!hand || !re)
            continue;
        const char *name = tok_pre_name_of((enum tok_pre)p);
        int bad = 0;
        // fixture texts
        struct json_obj o = {0};
        struct json_error je;
        struct buf text = {0};
        for (char *line = fx.p; line && line < fx.p + fx.len;) {
            char *nl = memchr(line, '\n', (size_t)(fx.p + fx.len - line));
            size_t n = nl ? (size_t)(nl - line) : (size_t)(fx.p + fx.len - line);
            if (n && json_obj_parse(&o, line, n, &je) == 0) {
                const struct json_field *f = json_obj_get(&o, "text");
                buf_reset(&text);
                json_str(&f->val, &text);
                bad += !same_split(hand, re, text.p, text.len, name);
            }
            line = nl ? nl + 1 : NULL;
        }
        json_obj_free(&o);
        for (int i = 0; i < 3000 && bad < 5; i++) {
            buf_reset(&text);
            int len = 1 + (int)(rnd() % 16);
            for (int k = 0; k < len; k++)
                buf_puts(&text, pool[rnd() % KILN_ARRAY_LEN(pool)]);
            bad += !same_split(hand, re, text.p, text.len, name);
        }
        // All-ASCII texts take the splitters' ASCII path.
        for (int i = 0; i < 3000 && bad < 5; i++) {
            buf_reset(&text);
            int len = 1 + (int)(rnd() % 24);
            for (int k = 0; k < len; k++)
                buf_puts(&text, ascii_pool[rnd() % KILN_ARRAY_LEN(ascii_pool)]);
            bad += !same_split(hand, re, text.p, text.len, name);
        }
        // Random code points of every class (ASCII included).
        for (int i = 0; i < 1000 && bad < 5; i++) {
            buf_reset(&text);
            int len = 1 + (int)(rnd() % 24);
            for (int k = 0; k < len; k++) {
                uint64_t r = rnd();
                if (r % 4 == 0)
                    buf_putc(&text, (char)(r >> 8 & 0x7F));
                else
                    utf8_put(&text, random_cp(r >> 8));
            }
            bad += !same_split(hand, re, text.p, text.len, name);
        }
        CHECK_MSG(bad == 0, "%s: %d texts split differently", name, bad);
        buf_free(&text);
        tok_split_del(hand);
        tok_split_del(re);
    }
    buf_free(&fx);
    // Names and spellings.
    CHECK_EQ_INT(tok_pre_from_name("cl100k_base"), TOK_PRE_CL100K);
    CHECK_EQ_INT(tok_pre_from_name("nope"), -1);
    CHECK_EQ_STR(tok_pre_gguf_name(TOK_PRE_LLAMA3), "llama-bpe");
    CHECK(tok_pre_gguf_name(TOK_PRE_CUSTOM) == NULL);
    CHECK_EQ_INT(tok_pre_from_regex(tok_pre_regex_of(TOK_PRE_O200K)), TOK_PRE_O200K);
    CHECK_EQ_INT(tok_pre_from_regex("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| "
                                    "?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"),
                 TOK_PRE_GPT2);
    // A custom regex: gaps between matches are pieces too (HF Split "Isolated").
    struct tok_split *sp = tok_split_new(TOK_PRE_CUSTOM, "[0-9]+", &err);
    struct pieces ps = {0};
    CHECK(sp && tok_split_run(sp, "ab12cd3", 7, collect, &ps, &err) == 0);
    CHECK_EQ_MEM(ps.b.p, ps.b.len, "ab\x01" "12\x01" "cd\x01" "3\x01", 11);
    buf_free(&ps.b);
    tok_split_del(sp);
    CHECK(tok_split_new(TOK_PRE_CUSTOM, "(unclosed", &err) == NULL);
    CHECK(strstr(err.msg, "column") != NULL);
}

// ---- byte-to-unicode ----------------------------------------------------------------------

static void
test_bytes_unicode(void)
{
    CHECK_EQ_INT(tok_byte_to_cp(' '), 0x120);
    CHECK_EQ_INT(tok_byte_to_cp('\n'), 0x10A);
    CHECK_EQ_INT(tok_byte_to_cp('A'), 'A');
    CHECK_EQ_INT(tok_byte_to_cp(0xAD), 0x143);
    CHECK_EQ_INT(tok_byte_to_cp(0), 0x100);
    int ok = 1;
    for (int b = 0; b < 256; b++)
        ok &= tok_cp_to_byte(tok_byte_to_cp((uint8_t)b)) == b;
    CHECK(ok);
    CHECK_EQ_INT(tok_cp_to_byte(0x20), -1);
    CHECK_EQ_INT(tok_cp_to_byte(0x144), -1);
}

// ---- a hand-made rank file ---------------------------------------------------------------

static void
b64(const unsigned char *s, size_t n, struct buf *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        buf_putc(out, tab[w >> 18]);
        buf_putc(out, tab[(w >> 12) & 63]);
        buf_putc(out, i + 1 < n ? tab[(w >> 6) & 63] : '=');
        buf_putc(out, i + 2 < n ? tab[w & 63] : '=');
    }
}

// 256 bytes, then the extra tokens in rank order.
static struct tok *
rank_vocab(const char *const *extra, size_t n_extra, const char *pattern)
{
    struct buf f = {0};
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        b64(&c, 1, &f);
        buf_printf(&f, " %d\n", b);
    }
    for (size_t i = 0; i < n_extra; i++) {
        b64((const unsigned char *)extra[i], strlen(extra[i]), &f);
        buf_printf(&f, " %zu\n", 256 + i);
    }
    struct kerr err;
    struct tok *t = tok_load_tiktoken(f.p, f.len, "ranks", pattern, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    buf_free(&f);
    return t;
}

static void
encode_is(struct tok *t, const char *s, int flags, const int32_t *want, size_t n_want)
{
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids ids = {0};
    struct kerr err;
    CHECK(tok_encode(e, s, strlen(s), flags, &ids, &err) == 0);
    int same = ids.n == n_want && (n_want == 0 || memcmp(ids.v, want, n_want * 4) == 0);
    CHECK_MSG(same, "encoding \"%s\": got %zu ids", s, ids.n);
    if (!same)
        for (size_t i = 0; i < ids.n; i++)
            fprintf(stderr, " %d", ids.v[i]);
    tok_ids_free(&ids);
    tok_enc_del(e);
}

static void
test_rank_bpe(void)
{
    static const char *const extra[] = {"ab", "bc", "abc", "aa", "aaaa", "cd", "bcd", "xyz"};
    struct tok *t = rank_vocab(extra, KILN_ARRAY_LEN(extra), "gpt2");
    if (!t)
        return;
    CHECK_EQ_INT(tok_vocab_size(t), 264);
    // Whole piece; merges by rank (ab=256 before bc=257; then ab+c = abc).
    encode_is(t, "abc", 0, (const int32_t[]){258}, 1);
    encode_is(t, "abcd", 0, (const int32_t[]){258, 'd'}, 2); // ab (256), then ab+c (258) < cd
    encode_is(t, "xbcd", 0, (const int32_t[]){'x', 262}, 2); // bc, then bc+d
    encode_is(t, "xyz", 0, (const int32_t[]){263}, 1);        // whole piece, no pair path
    encode_is(t, "aaaaa", 0, (const int32_t[]){260, 'a'}, 2); // leftmost on equal ranks
    // Derived merges: every split of a token into two tokens, ordered by result id.
    // ab, bc, abc = a+bc | ab+c, aa, aaaa, cd, bcd = b+cd | bc+d; xyz has no split.
    CHECK_EQ_INT(tok_merge_count(t), 9);
    int32_t a, b, c;
    tok_merge_get(t, 2, &a, &b, &c);
    CHECK(c == 258 && a == 'a' && b == 257);
    tok_merge_get(t, 3, &a, &b, &c);
    CHECK(c == 258 && a == 256 && b == 'c');
    // A 1 MB run of one letter: one piece, the long-piece path; 4-byte tokens.
    size_t n = 1 << 20;
    char *run = xmalloc(n + 1);
    memset(run, 'a', n);
    run[n] = 0;
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids ids = {0};
    struct kerr err;
    double t0 = now_seconds();
    CHECK(tok_encode(e, run, n, 0, &ids, &err) == 0);
    double dt = now_seconds() - t0;
    CHECK_EQ_INT(ids.n, n / 4);
    int all = 1;
    for (size_t i = 0; i < ids.n; i++)
        all &= ids.v[i] == 260;
    CHECK(all);
    CHECK_MSG(dt < 20, "1 MB run took %.1f s", dt);
    // Arbitrary bytes round trip (invalid UTF-8 included).
    for (size_t i = 0; i < n; i++)
        run[i] = (char)(rnd() & 0xFF);
    ids.n = 0;
    CHECK(tok_encode(e, run, 100000, 0, &ids, &err) == 0);
    struct buf back = {0};
    CHECK(tok_decode(t, ids.v, ids.n, &back, &err) == 0);
    CHECK_EQ_MEM(back.p, back.len, run, 100000);
    int32_t badid = 999;
    CHECK(tok_decode(t, &badid, 1, &back, &err) < 0 && strstr(err.msg, "999"));
    buf_free(&back);
    free(run);
    tok_ids_free(&ids);
    tok_enc_del(e);
    // Special tokens: ordinary text by default, control tokens only when allowed.
    CHECK(tok_add_special(t, "<|endoftext|>", 300, &err) == 0);
    CHECK(tok_add_special(t, "<|x|>", 300, &err) < 0);
    CHECK_EQ_INT(tok_special_id(t, "<|endoftext|>"), 300);
    CHECK_EQ_INT(tok_token_type(t, 300), TOK_TYPE_CONTROL);
    CHECK_EQ_INT(tok_token_type(t, 299), TOK_TYPE_UNUSED);
    encode_is(t, "ab<|endoftext|>", TOK_ALLOW_SPECIAL, (const int32_t[]){256, 300}, 2);
    struct tok_enc *e2 = tok_enc_new(t);
    struct tok_ids i2 = {0};
    CHECK(tok_encode(e2, "ab<|endoftext|>", 15, 0, &i2, &err) == 0);
    int has = 0;
    for (size_t i = 0; i < i2.n; i++)
        has |= i2.v[i] == 300;
    CHECK(!has && i2.n > 2);
    tok_ids_free(&i2);
    tok_enc_del(e2);
    // Save as tokenizer.json, load, save again: identical bytes, same ids.
    struct buf j1 = {0}, j2 = {0};
    tok_save_hf(t, &j1);
    struct tok *t2 = tok_load_hf(j1.p, j1.len, "t.json", &err);
    CHECK_MSG(t2 != NULL, "%s", err.msg);
    if (t2) {
        tok_save_hf(t2, &j2);
        CHECK_EQ_MEM(j1.p, j1.len, j2.p, j2.len);
        encode_is(t2, "abcd xbcd aaaaa", 0, (const int32_t[]){258, 'd', ' ', 'x', 262, ' ', 260, 'a'}, 8);
        tok_del(t2);
    }
    buf_free(&j1);
    buf_free(&j2);
    tok_del(t);
}

// ---- loaders: errors with positions, both merge forms ------------------------------------

// A loader's result t must be NULL with an error containing want.
static void
check_fails(struct tok *t, const struct kerr *err, const char *want)
{
    CHECK_MSG(t == NULL && strstr(err->msg, want), "want \"%s\", got \"%s\"", want, err->msg);
    tok_del(t);
}

static void
load_fails(const char *doc, const char *want)
{
    struct kerr err = {{0}};
    check_fails(tok_load_hf(doc, strlen(doc), "t.json", &err), &err, want);
}

// ---- base64 token loading: rank file and npm JSON agree with the bytes they encode ------------

static void
rank_fails(const char *doc, const char *want)
{
    struct kerr err = {{0}};
    check_fails(tok_load_tiktoken(doc, strlen(doc), "r", "gpt2", &err), &err, want);
}

static void
npm_fails(const char *doc, const char *want)
{
    struct kerr err = {{0}};
    check_fails(tok_load_npm(doc, strlen(doc), "e.json", &err), &err, want);
}

static void
test_b64_loaders(void)
{
    // 256 bytes, then 300 random tokens of 2..40 bytes (every padding case), in a rank file,
    // an npm JSON with "! offset" runs, and the same with an escaped separator.
    enum { EXTRA = 300 };
    static unsigned char tokbytes[EXTRA][40];
    size_t toklen[EXTRA];
    struct buf rf = {0}, ranks = {0};
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        b64(&c, 1, &rf);
        buf_printf(&rf, " %d\n", b);
        if (b % 100 == 0)
            buf_printf(&ranks, "%s! %d ", b ? " " : "", b); // a run may restate its offset
        else
            buf_putc(&ranks, ' ');
        b64(&c, 1, &ranks);
    }
    buf_puts(&ranks, " ! 256");
    for (size_t i = 0; i < EXTRA; i++) {
        toklen[i] = 2 + rnd() % 39;
        tokbytes[i][0] = (unsigned char)i; // distinct
        tokbytes[i][1] = (unsigned char)(i >> 8) | 0x80;
        for (size_t k = 2; k < toklen[i]; k++)
            tokbytes[i][k] = (unsigned char)rnd();
        b64(tokbytes[i], toklen[i], &rf);
        buf_printf(&rf, " %zu\n", 256 + i);
        buf_putc(&ranks, ' ');
        b64(tokbytes[i], toklen[i], &ranks);
    }
    struct buf npm = {0}, esc = {0};
    buf_printf(&npm, "{\"pat_str\": \"gpt2\", \"special_tokens\": {\"<|endoftext|>\": %d}, "
                     "\"bpe_ranks\": \"%s\"}",
               256 + EXTRA, ranks.p);
    const char *sp = strchr(strstr(npm.p, "bpe_ranks") + 14, ' ');
    buf_append(&esc, npm.p, (size_t)(sp - npm.p));
    buf_puts(&esc, "\\u0020");
    buf_puts(&esc, sp + 1);
    // The rank file again with CRLF line ends, blank lines and no final line end.
    struct buf crlf = {0};
    for (size_t i = 0; i + 1 < rf.len; i++) {
        if (rf.p[i] == '\n')
            buf_puts(&crlf, i % 7 ? "\r\n" : "\n\r\n");
        else
            buf_putc(&crlf, rf.p[i]);
    }
    struct kerr err;
    struct tok *t[4] = {tok_load_tiktoken(rf.p, rf.len, "r", "gpt2", &err),
                        tok_load_npm(npm.p, npm.len, "e.json", &err),
                        tok_load_npm(esc.p, esc.len, "e.json", &err),
                        tok_load_tiktoken(crlf.p, crlf.len, "r", "gpt2", &err)};
    for (int k = 0; k < 4; k++) {
        CHECK_MSG(t[k] != NULL, "loader %d: %s", k, err.msg);
        if (!t[k])
            continue;
        for (size_t i = 0; i < EXTRA; i++) {
            size_t n;
            const char *b = tok_token_bytes(t[k], (int32_t)(256 + i), &n);
            CHECK(b && n == toklen[i] && memcmp(b, tokbytes[i], n) == 0);
            CHECK_EQ_INT(tok_token_id(t[k], (const char *)tokbytes[i], toklen[i]),
                         (int)(256 + i));
        }
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            CHECK_EQ_INT(tok_token_id(t[k], &c, 1), b);
        }
        if (k == 1 || k == 2)
            CHECK_EQ_INT(tok_special_id(t[k], "<|endoftext|>"), 256 + EXTRA);
        tok_del(t[k]);
    }
    buf_free(&rf);
    buf_free(&crlf);
    buf_free(&ranks);
    buf_free(&npm);
    buf_free(&esc);
    // Malformed base64: the column of the offending character, in every group and padding case.
    rank_fails("QUJD*UJD 0\n", "r:1:5: invalid base64");
    rank_fails("QUJDQUJ* 0\n", "r:1:8: invalid base64");
    rank_fails("QUJD=UJD 0\n", "r:1:5: invalid base64"); // padding before the last group
    rank_fails("QU=D 0\n", "r:1:4: invalid base64");     // data after padding
    rank_fails("Q=== 0\n", "r:1:2: invalid base64");     // at most two '='
    rank_fails("QUJ 0\n", "r:1:4: invalid base64");      // not a multiple of 4
    rank_fails("QQ== 0\nQg== 1\n\nQw== 2\r\nRA== x\n", "r:5:6: rank is not a number");
    rank_fails("QQ== 0\r\nQg== 1\r\nQw==  2\n", "r:3:6: rank is not a number");
    rank_fails("QQ== 0\nQg== 16777216\n", "r:2:6: rank too large");
    rank_fails("QQ== 0\nQg== 1\r\r\n", "r:2:7: rank is not a number");
    rank_fails("QQ== 0\nQg==\n", "r:2:5: expected 'base64 rank'");
    rank_fails("QQ== 0\nQg== \n", "r:2:6: missing rank");
    rank_fails("QQ== 0\nQQ== 1\n", "appears twice");
    rank_fails("QQ== 0\nQg== 0\n", "r:2:1: token id 0 appears twice");
    npm_fails("{\"pat_str\": \"gpt2\", \"bpe_ranks\": \"! 0 QQ== Q*== \"}",
              "e.json:1:45: invalid base64");
    npm_fails("{\"pat_str\": \"gpt2\", \"bpe_ranks\": \"! 0 QQ==  Qg==\"}",
              "e.json:1:44: bpe_ranks: empty item");
    npm_fails("{\"pat_str\": \"gpt2\", \"bpe_ranks\": \"! 0 QQ== ! 0 Qg==\"}",
              "e.json:1:48: token id 0 appears twice");
    npm_fails("{\"pat_str\": \"gpt2\", \"bpe_ranks\": \"! 0 QQ== QQ Qg==\"}",
              "e.json:1:46: invalid base64");
    npm_fails("{\"pat_str\": \"gpt2\", \"bpe_ranks\": \"! 0 QQ== QQ==Qg==\"}",
              "e.json:1:46: invalid base64");
    npm_fails("{\"pat_str\": \"gpt2\", \"bpe_ranks\": \"! 16777215 QQ== Qg==\"}",
              "e.json:1:51: bpe_ranks: rank too large");
    npm_fails("{\"pat_str\": \"gpt2\", \"bpe_ranks\": \"! x QQ==\"}",
              "e.json:1:37: bpe_ranks: '!' must be followed by a rank");
}

static void
test_loaders(void)
{
    struct kerr err;
    // Rank file errors carry line and column.
    const char *bad_rank = "IQ== 0\nIg== x\n";
    CHECK(tok_load_tiktoken(bad_rank, strlen(bad_rank), "r.tiktoken", "gpt2", &err) == NULL);
    CHECK_MSG(strstr(err.msg, "r.tiktoken:2:6: rank is not a number"), "%s", err.msg);
    const char *bad_b64 = "IQ== 0\nI*== 1\n";
    CHECK(tok_load_tiktoken(bad_b64, strlen(bad_b64), "r.tiktoken", "gpt2", &err) == NULL);
    CHECK_MSG(strstr(err.msg, "r.tiktoken:2:2: invalid base64"), "%s", err.msg);
    const char *few = "IQ== 0\n";
    CHECK(tok_load_tiktoken(few, strlen(few), "r.tiktoken", "gpt2", &err) == NULL);
    CHECK_MSG(strstr(err.msg, "lacks the single-byte token"), "%s", err.msg);
    CHECK(tok_load_tiktoken(few, strlen(few), "r", "bogus", &err) == NULL);
    CHECK_MSG(strstr(err.msg, "unknown pattern 'bogus'"), "%s", err.msg);
    // tokenizer.json errors.
    load_fails("{\"model\": [1,}", "t.json:1:14:");
    load_fails("{\n\"x\": 1}", "t.json:1:1: expected an object with a \"model\"");
    load_fails("{\"model\": {\"type\": \"WordPiece\"}}", "t.json:1:20: model type is not");
    load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"normalizer\": "
               "{\"type\": \"NFC\"}}",
               "normalizer is not supported");
    // Both merge forms give the same tokenizer.
    const char *specs[1] = {"<|endoftext|>"};
    struct tok_train_opts o = {.vocab_size = 262, .specials = specs, .n_specials = 1,
                               .pre = TOK_PRE_GPT2};
    struct tok_trainer *tr = tok_trainer_new(&o, &err);
    const char *text = "low lower lowest newer newest";
    CHECK(tr && tok_trainer_add(tr, text, strlen(text), &err) == 0);
    struct tok *t = tok_trainer_finish(tr, &err);
    tok_trainer_del(tr);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (!t)
        return;
    struct buf j = {0}, legacy = {0};
    tok_save_hf(t, &j);
    // Rewrite ["a", "b"] pairs as "a b" strings.
    for (size_t i = 0; i < j.len; i++) {
        if (j.p[i] == '[' && i + 1 < j.len && j.p[i + 1] == '"') { // ["x", "y"] → "x y"
            size_t k = i + 1;
            const char *end = strstr(j.p + i, "\"]");
            const char *mid = strstr(j.p + i, "\", \"");
            if (end && mid && mid < end) {
                buf_append(&legacy, j.p + k, (size_t)(mid - (j.p + k)));
                buf_putc(&legacy, ' ');
                buf_append(&legacy, mid + 4, (size_t)(end - (mid + 4)) + 1);
                i = (size_t)(end - j.p) + 1;
                continue;
            }
        }
        buf_putc(&legacy, j.p[i]);
    }
    CHECK(strstr(legacy.p, "\"l o\"") != NULL);
    struct tok *t2 = tok_load_hf(legacy.p, legacy.len, "legacy.json", &err);
    CHECK_MSG(t2 != NULL, "%s", err.msg);
    if (t2) {
        struct buf j2 = {0};
        tok_save_hf(t2, &j2);
        CHECK_EQ_MEM(j.p, j.len, j2.p, j2.len);
        buf_free(&j2);
        tok_del(t2);
    }
    buf_free(&j);
    buf_free(&legacy);
    tok_del(t);
}

// ---- training ----------------------------------------------------------------------------

static struct tok *
train(const char *text, size_t vocab, uint64_t minf, struct kerr *err)
{
    const char *specs[2] = {"<|endoftext|>", "<|pad|>"};
    struct tok_train_opts o = {.vocab_size = vocab, .min_frequency = minf, .specials = specs,
                               .n_specials = 2, .pre = TOK_PRE_GPT2};
    struct tok_trainer *tr = tok_trainer_new(&o, err);
    if (!tr)
        return NULL;
    struct tok *t = tok_trainer_add(tr, text, strlen(text), err) == 0
                        ? tok_trainer_finish(tr, err)
                        : NULL;
    tok_trainer_del(tr);
    return t;
}

static void
merge_is(struct tok *t, size_t i, const char *a, const char *b)
{
    int32_t x, y, z;
    size_t la, lb;
    CHECK(i < tok_merge_count(t));
    if (i >= tok_merge_count(t))
        return;
    tok_merge_get(t, i, &x, &y, &z);
    const char *sa = tok_token_bytes(t, x, &la), *sb = tok_token_bytes(t, y, &lb);
    CHECK_MSG(la == strlen(a) && lb == strlen(b) && !memcmp(sa, a, la) && !memcmp(sb, b, lb),
              "merge %zu is \"%.*s\" + \"%.*s\", want \"%s\" + \"%s\"", i, (int)la, sa, (int)lb,
              sb, a, b);
}

static void
test_train(void)
{
    struct kerr err;
    // Ids: specials, then bytes in code point order of their byte-level form.
    struct tok *t = train("hello hello", 258, 0, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        CHECK_EQ_INT(tok_vocab_size(t), 258);
        CHECK_EQ_INT(tok_special_id(t, "<|pad|>"), 1);
        CHECK_EQ_INT(tok_token_id(t, "!", 1), 2);
        CHECK_EQ_INT(tok_token_id(t, "\x00", 1), 2 + 188); // U+0100 comes after the 188 printables
        CHECK_EQ_INT(tok_merge_count(t), 0);
        tok_del(t);
    }
    // Counts: "ab" x3 and "cd" x3 tie (3 each): the smaller pair (ids of a,b < c,d) first;
    // "xy" x2 comes after; min_frequency 3 stops before it.
    // Pieces "ab", " ab" x2, " cd" x3, " xy" x2: (a,b), (c,d) and (" ",c) all count 3; the
    // smallest pair wins each tie (letters have smaller ids than the byte-level space).
    t = train("ab ab ab cd cd cd xy xy", 300, 3, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        CHECK_EQ_INT(tok_merge_count(t), 3);
        merge_is(t, 0, "a", "b");
        merge_is(t, 1, "c", "d");
        merge_is(t, 2, " ", "cd");
        tok_del(t);
    }
    t = train("ab.ab.ab.cd.cd.cd.xy.xy", 300, 3, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        // Pieces: ab ab ab cd cd cd xy xy and "." x7 (no pairs inside "." pieces).
        CHECK_EQ_INT(tok_merge_count(t), 2);
        merge_is(t, 0, "a", "b");
        merge_is(t, 1, "c", "d");
        tok_del(t);
    }
    t = train("ab.ab.ab.cd.cd.cd.xy.xy", 259, 0, &err); // room for one merge only
    if (t) {
        CHECK_EQ_INT(tok_merge_count(t), 1);
        CHECK_EQ_INT(tok_vocab_size(t), 259);
        tok_del(t);
    }
    // Overlapping pairs: "aaaa" merges (a,a) twice per word, leaving (aa,aa).
    t = train("aaaa aaaa", 270, 0, &err);
    if (t) {
        merge_is(t, 0, "a", "a");
        merge_is(t, 1, "aa", "aa");
        struct tok_enc *e = tok_enc_new(t);
        struct tok_ids ids = {0};
        CHECK(tok_encode(e, "aaaa", 4, 0, &ids, &err) == 0 && ids.n == 1);
        tok_ids_free(&ids);
        tok_enc_del(e);
        tok_del(t);
    }
    // A realistic run: save → load → save, identical; encoding round trips.
    struct buf text = {0};
    static const char *const words[] = {"the", "tokenizer", "splits", "text", "into", "pieces",
                                        "and", "merges", "pairs", "by", "rank", "Ünïcødé", "😀",
                                        "1234", "  ", "\n", "don't", "WE'LL"};
    for (int i = 0; i < 3000; i++) {
        buf_puts(&text, words[rnd() % KILN_ARRAY_LEN(words)]);
        buf_putc(&text, rnd() % 5 ? ' ' : '.');
    }
    t = train(text.p, 400, 2, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        struct buf j1 = {0}, j2 = {0}, back = {0};
        tok_save_hf(t, &j1);
        struct tok *t2 = tok_load_hf(j1.p, j1.len, "t.json", &err);
        CHECK_MSG(t2 != NULL, "%s", err.msg);
        if (t2) {
            tok_save_hf(t2, &j2);
            CHECK_EQ_MEM(j1.p, j1.len, j2.p, j2.len);
            struct tok_enc *e = tok_enc_new(t2);
            struct tok_ids ids = {0};
            CHECK(tok_encode(e, text.p, text.len, 0, &ids, &err) == 0);
            CHECK(ids.n < text.len / 2);
            CHECK(tok_decode(t2, ids.v, ids.n, &back, &err) == 0);
            CHECK_EQ_MEM(back.p, back.len, text.p, text.len);
            tok_ids_free(&ids);
            tok_enc_del(e);
            tok_del(t2);
        }
        buf_free(&j1);
        buf_free(&j2);
        buf_free(&back);
        tok_del(t);
    }
    buf_free(&text);
    // Too small a vocabulary.
    CHECK(train("x", 257, 0, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "below 256 + 2 specials"), "%s", err.msg);
}

// ---- the encoder against a plain reference -----------------------------------------------
// The encoder's fast paths (piece cache, byte-pair table, flat small-piece BPE, the min-tree
// for long pieces) against a direct transcription of the definition, on random vocabularies
// and random text with repeated words (cache hits) and long runs (the long-piece path).

// Rank and result of merging ids a and b in a tokenizer.json vocabulary: the position of the
// pair in the merge list.
static int32_t
hf_rank(const struct tok *t, int32_t a, int32_t b, int32_t *res)
{
    for (size_t i = 0; i < tok_merge_count(t); i++) {
        int32_t x, y, z;
        tok_merge_get(t, i, &x, &y, &z);
        if (x == a && y == b) {
            *res = z;
            return (int32_t)i;
        }
    }
    return INT32_MAX;
}

struct ref {
    const struct tok *t;
    bool hf; // merge ranks from the merge list, no whole-piece shortcut
    struct tok_ids *out;
};

// One piece: tiktoken's definition (a piece that is a token is emitted whole; otherwise merge
// the leftmost lowest-rank adjacent pair, rank = id of the concatenation, until none merges),
// or Hugging Face's (rank = merge list position).
static void
ref_piece(void *arg, const char *p, size_t n)
{
    struct ref *r = arg;
    if (!r->hf) {
        int32_t whole = tok_token_id(r->t, p, n);
        if (whole >= 0) {
            tok_ids_push(r->out, whole);
            return;
        }
    }
    size_t m = n, *st = xmalloc((n + 1) * sizeof *st);
    int32_t *id = xmalloc(n * sizeof *id);
    for (size_t i = 0; i < n; i++) {
        st[i] = i;
        id[i] = tok_token_id(r->t, p + i, 1);
    }
    st[n] = n;
    for (;;) {
        int32_t best = INT32_MAX, bres = -1;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            int32_t rank, res;
            if (r->hf) {
                rank = hf_rank(r->t, id[i], id[i + 1], &res);
            } else {
                res = tok_token_id(r->t, p + st[i], st[i + 2] - st[i]);
                rank = res < 0 ? INT32_MAX : res;
            }
            if (rank < best) {
                best = rank;
                bi = i;
                bres = res;
            }
        }
        if (best == INT32_MAX)
            break;
        id[bi] = bres;
        memmove(id + bi + 1, id + bi + 2, (m - bi - 2) * sizeof *id);
        memmove(st + bi + 1, st + bi + 2, (m - bi - 1) * sizeof *st);
        m--;
    }
    for (size_t i = 0; i < m; i++)
        tok_ids_push(r->out, id[i]);
    free(st);
    free(id);
}

// Random text over a small alphabet: repeated words, single characters, and long runs.
static void
random_text(struct buf *b, const char *const *words, size_t n_words)
{
    static const char *const chars[] = {"a", "b", "c", " ", " ", "\n", "1", "é", "'", ".", "\xff"};
    buf_reset(b);
    int parts = 1 + (int)(rnd() % 40);
    for (int k = 0; k < parts; k++) {
        uint64_t r = rnd();
        if (r % 50 == 0) {
            size_t len = 49 + (r >> 8) % 400;
            const char *c = chars[(r >> 20) % 3];
            for (size_t i = 0; i < len; i++)
                buf_puts(b, (r >> 30) % 2 ? c : chars[rnd() % 3]);
        } else if (r % 3 == 0) {
            buf_puts(b, chars[(r >> 8) % KILN_ARRAY_LEN(chars)]);
        } else {
            buf_puts(b, words[(r >> 8) % n_words]);
        }
    }
}

static int
encode_matches_ref(struct tok *t, bool hf, const char *what)
{
    struct kerr err;
    char words[60][16];
    const char *wp[60];
    for (int i = 0; i < 60; i++) {
        int len = 1 + (int)(rnd() % 14);
        for (int k = 0; k < len; k++)
            words[i][k] = "abc ab'"[rnd() % 7];
        words[i][len] = 0;
        wp[i] = words[i];
    }
    struct tok_enc *e = tok_enc_new(t);
    struct tok_split *sp = tok_split_new(tok_pre_kind(t), tok_pre_regex(t), &err);
    struct buf text = {0};
    struct tok_ids got = {0}, want = {0};
    int bad = 0;
    for (int i = 0; i < 400 && bad < 3; i++) {
        random_text(&text, wp, KILN_ARRAY_LEN(wp));
        got.n = want.n = 0;
        struct ref r = {t, hf, &want};
        CHECK(tok_encode(e, text.p, text.len, 0, &got, &err) == 0);
        CHECK(tok_split_run(sp, text.p, text.len, ref_piece, &r, &err) == 0);
        if (got.n != want.n || memcmp(got.v, want.v, got.n * sizeof *got.v) != 0) {
            bad++;
            fprintf(stderr, "%s: ids differ from the reference on \"%.*s\"\n", what,
                    (int)text.len, text.p);
        }
    }
    buf_free(&text);
    tok_ids_free(&got);
    tok_ids_free(&want);
    tok_split_del(sp);
    tok_enc_del(e);
    return bad;
}

static void
test_encode_vs_reference(void)
{
    // tiktoken-style ranks: 256 bytes, then random concatenations of earlier tokens over the
    // text's alphabet (so pieces merge in many orders), under two pre-tokenizers.
    static const char *const seeds[] = {"a", "b", "c", " ", "\xc3", "\xa9", "'", "1"};
    for (int v = 0; v < 2; v++) {
        char *extra[400];
        size_t n_extra = 0;
        while (n_extra < KILN_ARRAY_LEN(extra)) {
            size_t pool = KILN_ARRAY_LEN(seeds) + n_extra;
            size_t i = rnd() % pool, j = rnd() % pool;
            const char *x = i < KILN_ARRAY_LEN(seeds) ? seeds[i] : extra[i - KILN_ARRAY_LEN(seeds)];
            const char *y = j < KILN_ARRAY_LEN(seeds) ? seeds[j] : extra[j - KILN_ARRAY_LEN(seeds)];
            if (strlen(x) + strlen(y) > 12)
                continue;
            char tok[32];
            snprintf(tok, sizeof tok, "%s%s", x, y);
            bool dup = strlen(tok) == 1;
            for (size_t k = 0; k < n_extra && !dup; k++)
                dup = strcmp(extra[k], tok) == 0;
            if (!dup)
                extra[n_extra++] = xstrdup(tok);
        }
        struct tok *t = rank_vocab((const char *const *)extra, n_extra, v ? "[^\\n]+" : "gpt2");
        if (t) {
            int bad = encode_matches_ref(t, false, v ? "ranks, custom regex" : "ranks, gpt2");
            CHECK_MSG(bad == 0, "random rank vocabulary %d: %d texts differ", v, bad);
            tok_del(t);
        }
        for (size_t k = 0; k < n_extra; k++)
            free(extra[k]);
    }
    // A trained tokenizer.json (merge-list ranks, no whole-piece shortcut).
    struct kerr err;
    struct buf corpus = {0};
    const char *wp[] = {"abc", "aab", "ba", "cab", "c'b", " abca", "bbb"};
    for (int i = 0; i < 200; i++) {
        struct buf tx = {0};
        random_text(&tx, wp, KILN_ARRAY_LEN(wp));
        buf_append(&corpus, tx.p, tx.len);
        buf_free(&tx);
    }
    struct tok *t = train(corpus.p, 400, 0, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        int bad = encode_matches_ref(t, true, "trained");
        CHECK_MSG(bad == 0, "trained vocabulary: %d texts differ", bad);
        tok_del(t);
    }
    buf_free(&corpus);
}

// ---- encoders on several threads share one piece cache --------------------------------------

struct shared_job {
    struct tok *t;
    const struct buf *texts;
    const struct tok_ids *want;
    size_t n, first;
    int bad;
};

static void *
shared_encode(void *arg)
{
    struct shared_job *j = arg;
    struct tok_enc *e = tok_enc_new(j->t);
    struct tok_ids got = {0};
    struct kerr err;
    for (int round = 0; round < 2; round++)
        for (size_t k = 0; k < j->n; k++) {
            size_t i = (j->first + k) % j->n;
            got.n = 0;
            if (tok_encode(e, j->texts[i].p, j->texts[i].len, 0, &got, &err) < 0 ||
                got.n != j->want[i].n || memcmp(got.v, j->want[i].v, got.n * sizeof *got.v))
                j->bad++;
        }
    tok_ids_free(&got);
    tok_enc_del(e);
    return NULL;
}

static void
test_shared_cache(void)
{
    // Many distinct short pieces (so cache entries are overwritten while others read them),
    // encoded by four threads at once — two in the same order, racing for the same entries —
    // must give the ids a tokenizer of its own gives on one thread.
    static const char *const extra[] = {"ab", "ba", "abc", "ca", " a", " b", "cc", "a1", "1é"};
    struct tok *shared = rank_vocab(extra, KILN_ARRAY_LEN(extra), "gpt2");
    struct tok *alone = rank_vocab(extra, KILN_ARRAY_LEN(extra), "gpt2");
    if (!shared || !alone)
        return;
    enum { TEXTS = 300 };
    struct buf *texts = xcalloc(TEXTS, sizeof *texts);
    struct tok_ids *want = xcalloc(TEXTS, sizeof *want);
    struct tok_enc *e = tok_enc_new(alone);
    struct kerr err;
    for (size_t i = 0; i < TEXTS; i++) {
        for (int w = 0; w < 150; w++) {
            buf_putc(&texts[i], ' ');
            for (int k = 1 + (int)(rnd() % 15); k > 0; k--)
                buf_puts(&texts[i], (const char *[]){"a", "b", "c", "1", "\xc3\xa9"}[rnd() % 5]);
        }
        CHECK(tok_encode(e, texts[i].p, texts[i].len, 0, &want[i], &err) == 0);
    }
    tok_enc_del(e);
    struct shared_job jobs[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        jobs[k] = (struct shared_job){shared, texts, want, TEXTS, k < 2 ? 0 : (size_t)k * 97, 0};
        CHECK(pthread_create(&th[k], NULL, shared_encode, &jobs[k]) == 0);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        CHECK_MSG(jobs[k].bad == 0, "thread %d: %d texts differ", k, jobs[k].bad);
    }
    for (size_t i = 0; i < TEXTS; i++) {
        buf_free(&texts[i]);
        tok_ids_free(&want[i]);
    }
    free(texts);
    free(want);
    tok_del(shared);
    tok_del(alone);
}

int
main(void)
{
    test_bytes_unicode();
    test_pretokenizers();
    test_rank_bpe();
    test_encode_vs_reference();
    test_shared_cache();
    test_loaders();
    test_b64_loaders();
    test_train();
    return test_summary();
}

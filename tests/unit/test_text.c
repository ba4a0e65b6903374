// SPDX-License-Identifier: MIT
// Unit tests for common/regex (PCRE2 wrapper) and common/unicode (utf8proc wrapper).
#include "regex.h"
#include "test.h"
#include "unicode.h"

#include <string.h>

static void
test_regex(void)
{
    struct kerr e;
    struct regex *re = regex_new("(\\p{L}+)@(\\d+)", 0, &e);
    CHECK(re != NULL);
    struct regex_match *m = regex_match_new();
    const char *s = "xx héllo@42 yy";
    size_t a, b, gs, ge;
    CHECK_EQ_INT(regex_find(re, m, s, strlen(s), 0, &a, &b, &e), 1);
    CHECK_EQ_INT(a, 3);
    CHECK_EQ_INT(b, 12);
    CHECK_EQ_INT(regex_group(m, 1, &gs, &ge), 1);
    CHECK_EQ_MEM(s + gs, ge - gs, "héllo", strlen("héllo"));
    CHECK_EQ_INT(regex_group(m, 5, &gs, &ge), 0);
    CHECK_EQ_INT(regex_find(re, m, s, strlen(s), 12, &a, &b, &e), 0);
    regex_del(re);

    // More groups than the initial scratch holds.
    re = regex_new("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)(m)(n)(o)(p)(q)(r)", REGEX_CASELESS, &e);
    CHECK(re != NULL);
    s = "ABCDEFGHIJKLMNOPQR";
    CHECK_EQ_INT(regex_find(re, m, s, strlen(s), 0, &a, &b, &e), 1);
    CHECK_EQ_INT(regex_group(m, 18, &gs, &ge), 1);
    CHECK_EQ_INT(gs, 17);
    regex_del(re);

    CHECK(regex_new("a(b", 0, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "column 4") != NULL, "%s", e.msg);

    regex_set_jit(false);
    re = regex_new("\\s+", 0, &e);
    CHECK(re && !regex_jit_enabled(re));
    CHECK_EQ_INT(regex_find(re, m, "a \t b", 5, 0, &a, &b, &e), 1);
    CHECK_EQ_INT(b - a, 3);
    regex_del(re);
    regex_set_jit(true);
    regex_match_del(m);
    CHECK(regex_version()[0] >= '1');
}

static void
test_unicode(void)
{
    struct buf b;
    buf_init(&b);
    struct kerr e;
    CHECK_EQ_INT(uni_nfkc("ﬁ ＡＢ ①", strlen("ﬁ ＡＢ ①"), &b, &e), 0);
    CHECK_EQ_STR(b.p, "fi AB 1");
    buf_reset(&b);
    CHECK_EQ_INT(uni_nfkc("e\xcc\x81", 3, &b, &e), 0); // e + combining acute -> é
    CHECK_EQ_STR(b.p, "é");
    buf_reset(&b);
    CHECK_EQ_INT(uni_lower("HeLLo ÀÉÎ Σ", strlen("HeLLo ÀÉÎ Σ"), &b, &e), 0);
    CHECK_EQ_STR(b.p, "hello àéî σ");
    buf_reset(&b);
    CHECK_EQ_INT(uni_lower("\xff", 1, &b, &e), -1);
    buf_reset(&b);
    const char *ws = " \t a  b\n\u3000c\u00a0 ";
    uni_collapse_ws(ws, strlen(ws), &b);
    CHECK_EQ_STR(b.p, "a b c");
    int32_t cp;
    CHECK_EQ_INT(uni_decode("€", 3, &cp), 3);
    CHECK_EQ_INT(cp, 0x20ac);
    CHECK_EQ_INT(uni_decode("\xe2\x82", 2, &cp), 1);
    CHECK_EQ_INT(cp, 0xfffd);
    CHECK(uni_class_of('A') == (UNI_LETTER | UNI_UPPER));
    CHECK(uni_class_of(0x3b1) == (UNI_LETTER | UNI_LOWER)); // α
    CHECK(uni_class_of(0x4e2d) == UNI_LETTER);              // 中
    CHECK(uni_class_of('7') == UNI_DIGIT);
    CHECK(uni_class_of('!') == UNI_PUNCT);
    CHECK(uni_class_of('$') == UNI_SYMBOL);
    CHECK(uni_class_of(0x301) == UNI_MARK);
    CHECK(uni_class_of(' ') & UNI_SPACE);
    buf_free(&b);
}

int
main(void)
{
    test_regex();
    test_unicode();
    return test_summary();
}

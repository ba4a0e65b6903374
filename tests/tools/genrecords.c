// SPDX-License-Identifier: MIT
// genrecords: writes deterministic, realistic e-mail-like records as JSON Lines on stdout, for
// benchmarks and tests until a real corpus is at hand.
//
//   genrecords [--bytes N] [--records N] [--seed S]
//
// Each line is {"id","text","source","label","metadata"}: text is a raw e-mail (headers,
// a quoted-printable or plain body with paragraphs, URLs, non-ASCII words in several scripts,
// emoji, tabs and quotes, sometimes long unbroken lines such as HTML or base64), label is
// "spam" or "ham" (spam bodies use spam vocabulary), metadata is an object with strings,
// integers, a double, an array and a nested object. About one record in five writes its
// non-ASCII characters as \u escapes (surrogate pairs for emoji) instead of raw UTF-8, so both
// string forms occur. Output stops after the record that reaches --bytes (default 1 MB) or
// after --records records. Same options → same bytes.
#include "cli.h"
#include "json.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_s;

static uint64_t
rng(void)
{
    uint64_t z = (rng_s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t
pick(size_t n)
{
    return (size_t)(rng() % n);
}

#define PICK(a) ((a)[pick(KILN_ARRAY_LEN(a))])

static const char *words[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be",
    "at", "by", "this", "have", "from", "or", "an", "but", "not", "are", "your", "all", "can",
    "meeting", "project", "report", "please", "attached", "review", "thanks", "regards", "team",
    "schedule", "tomorrow", "question", "update", "patch", "kernel", "mailing", "list", "build",
    "release", "version", "server", "config", "error", "fixed", "issue", "thread", "reply",
    "documentation", "performance", "benchmark", "results", "should", "would", "could", "about",
};
static const char *spam_words[] = {
    "FREE", "winner", "click", "here", "now", "limited", "offer", "cash", "prize", "guaranteed",
    "viagra", "cheap", "discount", "act", "urgent", "million", "dollars", "bank", "transfer",
    "unsubscribe", "!!!", "$$$", "100%", "risk-free", "credit", "loan", "casino", "bonus",
};
static const char *unicode_words[] = {
    "caf\xC3\xA9", "na\xC3\xAFve", "r\xC3\xA9sum\xC3\xA9", "Stra\xC3\x9F" "e", "\xC3\xBC" "ber",
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",
    "\xCE\xB1\xCE\xB2\xCE\xB3", "\xE2\x82\xAC" "50", "\xE2\x80\x94", "\xE2\x80\x9Cquoted\xE2\x80\x9D",
    "\xF0\x9F\x98\x80", "\xF0\x9F\x8E\x89", "\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A", "\xEA\xB0\x80",
};
static const char *names[] = {"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace",
                              "Heidi", "Ivan", "Judy", "Mallory", "Peggy", "Ren\xC3\xA9"};
static const char *domains[] = {"example.com", "example.org", "lists.example.net", "mail.test",
                                "corp.example", "univ.example.edu"};
static const char *sources[] = {"easy_ham", "hard_ham", "spam", "spam_2", "easy_ham_2"};
static const char *mailers[] = {"Mutt/1.5.23", "Microsoft Outlook 16.0", "Thunderbird 115.3",
                                "Apple Mail (2.3654)", "PHPMailer 5.2"};

static void
put_url(struct buf *b)
{
    buf_printf(b, "%s://%s%s/%s?id=%u&ref=%s", pick(3) ? "https" : "http", pick(2) ? "www." : "",
               PICK(domains), PICK(words), (unsigned)pick(100000), PICK(words));
}

// One paragraph of words, with lines wrapped at ~72 columns (or one long line).
static void
put_paragraph(struct buf *b, bool spam, bool long_line)
{
    size_t n = 8 + pick(60), col = 0;
    for (size_t i = 0; i < n; i++) {
        struct buf w = {0};
        size_t r = pick(100);
        if (r < 4)
            put_url(&w);
        else if (r < 10)
            buf_puts(&w, PICK(unicode_words));
        else if (spam && r < 40)
            buf_puts(&w, PICK(spam_words));
        else if (r < 42)
            buf_printf(&w, "\"%s\"", PICK(words));
        else if (r < 44)
            buf_printf(&w, "%u", (unsigned)pick(10000));
        else
            buf_puts(&w, PICK(words));
        if (i && !long_line && col + w.len > 72) {
            buf_putc(b, '\n');
            col = 0;
        } else if (i) {
            buf_putc(b, pick(40) ? ' ' : '\t');
            col++;
        }
        buf_append(b, w.p, w.len);
        col += w.len;
        buf_free(&w);
    }
    buf_puts(b, pick(3) ? ".\n\n" : "!\n\n");
}

// Quoted-printable encoding of s (soft breaks at 76 columns, =XX for '=' and non-ASCII).
static void
put_qp(struct buf *b, const char *s, size_t n)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char enc[4];
        if (c == '\n') {
            buf_putc(b, '\n');
            col = 0;
            continue;
        }
        if (c == '=' || c >= 0x80)
            snprintf(enc, sizeof enc, "=%02X", c);
        else {
            enc[0] = (char)c;
            enc[1] = 0;
        }
        size_t k = strlen(enc);
        if (col + k > 75) {
            buf_puts(b, "=\n");
            col = 0;
        }
        buf_puts(b, enc);
        col += k;
    }
}

static void
put_email(struct buf *b, bool spam, uint64_t n)
{
    const char *from = PICK(names), *to = PICK(names), *dom = PICK(domains);
    buf_printf(b, "From %s@%s  Mon Sep %2u %02u:%02u:%02u 2002\n", from, dom,
               (unsigned)(1 + pick(28)), (unsigned)pick(24), (unsigned)pick(60),
               (unsigned)pick(60));
    buf_printf(b, "Return-Path: <%s@%s>\n", from, dom);
    buf_printf(b, "Received: from mail.%s (localhost [127.0.0.1])\n\tby %s (Postfix) with ESMTP "
                  "id %08X\n\tfor <%s@%s>; Mon, %u Sep 2002 %02u:%02u:%02u +0100\n",
               dom, PICK(domains), (unsigned)rng(), to, PICK(domains), (unsigned)(1 + pick(28)),
               (unsigned)pick(24), (unsigned)pick(60), (unsigned)pick(60));
    buf_printf(b, "From: \"%s\" <%s@%s>\n", from, from, dom);
    buf_printf(b, "To: %s@%s\n", to, PICK(domains));
    if (spam)
        buf_printf(b, "Subject: %s %s %s!!!\n", PICK(spam_words), PICK(spam_words),
                   PICK(spam_words));
    else
        buf_printf(b, "Subject: Re: [%s] %s %s\n", PICK(words), PICK(words), PICK(words));
    buf_printf(b, "Message-ID: <%016llx.%llu@%s>\n", (unsigned long long)rng(),
               (unsigned long long)n, dom);
    buf_printf(b, "X-Mailer: %s\nMIME-Version: 1.0\n", PICK(mailers));
    bool qp = pick(3) == 0, html = spam && pick(2);
    buf_printf(b, "Content-Type: text/%s; charset=\"utf-8\"\n", html ? "html" : "plain");
    buf_printf(b, "Content-Transfer-Encoding: %s\n\n", qp ? "quoted-printable" : "8bit");

    struct buf body = {0};
    if (!spam && pick(2))
        buf_printf(&body, "On %s, %s wrote:\n> %s %s %s\n> %s\n\n", PICK(words), PICK(names),
                   PICK(words), PICK(words), PICK(words), PICK(words));
    size_t paras = 1 + pick(6);
    for (size_t i = 0; i < paras; i++) {
        if (html && i == 0)
            buf_printf(&body, "<html><body><table width=\"100%%\"><tr><td><a href=\"");
        if (html && i == 0) {
            put_url(&body);
            buf_puts(&body, "\"><img src=\"");
            put_url(&body);
            buf_puts(&body, "\"></a></td></tr></table>");
        }
        put_paragraph(&body, spam, pick(8) == 0);
    }
    if (pick(6) == 0) { // an attachment-like long line
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t len = 200 + pick(1500);
        for (size_t i = 0; i < len; i++)
            buf_putc(&body, b64[pick(64)]);
        buf_putc(&body, '\n');
    }
    buf_printf(&body, "-- \n%s\n", from);
    if (spam) {
        buf_puts(&body, "To unsubscribe click here: ");
        put_url(&body);
        buf_putc(&body, '\n');
    }
    if (qp)
        put_qp(b, body.p, body.len);
    else
        buf_append(b, body.p, body.len);
    buf_free(&body);
}

// A JSON string literal; with ascii, every non-ASCII character becomes a \u escape.
static void
put_str(struct buf *out, const char *s, size_t n, bool ascii)
{
    if (!ascii) {
        json_write_str(out, s, n);
        return;
    }
    struct buf tmp = {0};
    json_write_str(&tmp, s, n);
    for (size_t i = 0; i < tmp.len;) {
        unsigned char c = (unsigned char)tmp.p[i];
        if (c < 0x80) {
            buf_putc(out, (char)c);
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        cp = c & (k == 2 ? 0x1F : k == 3 ? 0x0F : 0x07);
        for (size_t j = 1; j < k; j++)
            cp = (cp << 6) | ((unsigned char)tmp.p[i + j] & 0x3F);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            buf_printf(out, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
        } else
            buf_printf(out, "\\u%04x", cp);
        i += k;
    }
    buf_free(&tmp);
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: genrecords [--bytes N] [--records N] [--seed S]\n"
               "Writes deterministic e-mail-like JSON Lines records to stdout.\n");
}

int
main(int argc, char **argv)
{
    cli_init("genrecords");
    struct cli_common c;
    cli_common_init(&c);
    enum { OPT_BYTES = CLI_OPT_FIRST_STAGE, OPT_RECORDS };
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"bytes", required_argument, 0, OPT_BYTES},
        {"records", required_argument, 0, OPT_RECORDS},
        {0, 0, 0, 0},
    };
    int64_t max_bytes = 1 << 20, max_records = INT64_MAX;
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (cli_common_opt(&c, opt, optarg, usage))
            continue;
        if (opt == OPT_BYTES)
            max_bytes = cli_parse_int("--bytes", optarg, 0, INT64_MAX);
        else if (opt == OPT_RECORDS)
            max_records = cli_parse_int("--records", optarg, 0, INT64_MAX);
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    rng_s = c.seed * 0x2545F4914F6CDD1Dull + 1;

    struct buf line = {0}, text = {0};
    int64_t bytes = 0;
    for (int64_t n = 0; n < max_records && bytes < max_bytes; n++) {
        bool spam = pick(10) < 4, ascii = pick(5) == 0;
        buf_reset(&text);
        put_email(&text, spam, (uint64_t)n);
        buf_reset(&line);
        buf_printf(&line, "{\"id\":\"gen-%llu-%08lld\",\"text\":", (unsigned long long)c.seed,
                   (long long)n);
        put_str(&line, text.p, text.len, ascii);
        buf_printf(&line, ",\"source\":\"%s\",\"label\":\"%s\",", PICK(sources),
                   spam ? "spam" : "ham");
        buf_printf(&line, "\"metadata\":{\"lang\":\"%s\",\"size\":%zu,\"received\":"
                          "\"2002-09-%02uT%02u:%02u:00Z\",\"score\":",
                   pick(4) ? "en" : "fr", text.len, (unsigned)(1 + pick(28)), (unsigned)pick(24),
                   (unsigned)pick(60));
        json_write_double(&line, (double)(rng() >> 11) / 9007199254740992.0 * 10 - 5);
        buf_puts(&line, ",\"tags\":[");
        size_t nt = pick(4);
        for (size_t i = 0; i < nt; i++) {
            const char *w = pick(4) ? PICK(words) : PICK(unicode_words);
            if (i)
                buf_putc(&line, ',');
            put_str(&line, w, strlen(w), ascii);
        }
        buf_puts(&line, "],\"headers\":{\"x-mailer\":");
        const char *m = PICK(mailers);
        json_write_str(&line, m, strlen(m));
        buf_printf(&line, ",\"x-spam-level\":%u,\"reply\":%s}}}\n", (unsigned)pick(10),
                   pick(2) ? "true" : "null");
        fwrite(line.p, 1, line.len, stdout);
        bytes += (int64_t)line.len;
    }
    buf_free(&line);
    buf_free(&text);
    cli_finish_stdout();
    return 0;
}

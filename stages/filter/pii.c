// SPDX-License-Identifier: MIT
// pii: hand-written scanners and validators for personal data (rules in pii.h).
// The scan copies lazily: text between matches is appended in one piece, so a text without
// any match costs one pass over a byte table.
#include "pii.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

const char *const pii_names[PII_NTYPES] = {"email", "ipv4", "ipv6", "phone", "card", "url"};
const char *const pii_placeholders[PII_NTYPES] = {"<EMAIL>", "<IPV4>",  "<IPV6>",
                                                  "<PHONE>", "<CARD>", "<URL>"};
static const size_t placeholder_len[PII_NTYPES] = {7, 6, 6, 7, 6, 5};

int
pii_mask_parse(const char *list, unsigned *mask, struct kerr *err)
{
    *mask = 0;
    const char *p = list;
    while (*p) {
        size_t k = strcspn(p, ",");
        bool found = false;
        if (k == 3 && strncmp(p, "all", 3) == 0) {
            *mask |= PII_ALL;
            found = true;
        }
        for (int t = 0; t < PII_NTYPES && !found; t++)
            if (strlen(pii_names[t]) == k && strncmp(p, pii_names[t], k) == 0) {
                *mask |= 1u << t;
                found = true;
            }
        if (!found)
            return kerr_set(err, "unknown PII type '%.*s' (expected email, ipv4, ipv6, phone, "
                                 "card, url or all)", (int)k, p);
        p += k;
        if (*p == ',')
            p++;
    }
    return 0;
}

// ---- character classes --------------------------------------------------------------------

static inline bool
is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static inline bool
is_alpha(int c)
{
    return (c | 32) >= 'a' && (c | 32) <= 'z';
}
static inline bool
is_alnum(int c)
{
    return is_digit(c) || is_alpha(c);
}
static inline bool
is_hex(int c)
{
    return is_digit(c) || ((c | 32) >= 'a' && (c | 32) <= 'f');
}
static inline bool
is_local(int c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
static inline bool
is_label(int c)
{
    return is_alnum(c) || c == '-';
}

// Byte at i, or 0 outside the text.
#define AT(i) ((i) < n ? (unsigned char)s[(i)] : 0)
#define BEFORE(i) ((i) > 0 ? (unsigned char)s[(i) - 1] : 0)

// ---- validators: each returns the end of a match starting at a (0 = none) ------------------

// Domain at s[a..): labels separated by '.', at least two, last one 2+ letters. Returns the end.
static size_t
domain_end(const char *s, size_t n, size_t a)
{
    size_t i = a, labels = 0, end = 0, last_start = a;
    for (;;) {
        size_t st = i;
        while (i < n && is_label((unsigned char)s[i]))
            i++;
        if (i == st || s[st] == '-' || s[i - 1] == '-')
            break;
        labels++;
        last_start = st;
        end = i;
        if (i < n && s[i] == '.' && i + 1 < n && is_label((unsigned char)s[i + 1]))
            i++;
        else
            break;
    }
    if (labels < 2)
        return 0;
    // The last label must be 2+ letters; otherwise back off to the previous label.
    for (size_t j = last_start; j < end; j++)
        if (!is_alpha((unsigned char)s[j]))
            return 0;
    return end - last_start >= 2 ? end : 0;
}

// E-mail with '@' at s[at]; the local part may start no earlier than lo. Sets *start.
static size_t
match_email(const char *s, size_t n, size_t at, size_t lo, size_t *start)
{
    size_t a = at;
    while (a > lo && is_local((unsigned char)s[a - 1]))
        a--;
    while (a < at && s[a] == '.') // a local part does not start with '.'
        a++;
    if (a == at || s[at - 1] == '.')
        return 0;
    size_t e = domain_end(s, n, at + 1);
    if (!e)
        return 0;
    *start = a;
    return e;
}

// URL from s[a..] where a scheme or "www." starts. Returns the end after trimming.
static size_t
url_end(const char *s, size_t n, size_t a, size_t host)
{
    if (host >= n || !(is_alnum((unsigned char)s[host]) || (unsigned char)s[host] >= 0x80 ||
                       s[host] == '['))
        return 0;
    size_t i = host;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '\'' || c == '`' ||
            c == '{' || c == '}' || c == '|' || c == '\\' || c == '^')
            break;
        i++;
    }
    // Trim trailing punctuation and unbalanced closing brackets.
    while (i > host) {
        char c = s[i - 1];
        if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' || c == '*') {
            i--;
            continue;
        }
        if (c == ')' || c == ']') {
            char open = c == ')' ? '(' : '[';
            int bal = 0;
            for (size_t j = a; j < i; j++)
                bal += (s[j] == open) - (s[j] == c);
            if (bal < 0) {
                i--;
                continue;
            }
        }
        break;
    }
    return i > host ? i : 0;
}

static bool
ci_prefix_n(const char *s, size_t n, size_t i, const char *w, size_t k)
{
    if (i + k > n)
        return false;
    for (size_t j = 0; j < k; j++)
        if ((s[i + j] | 32) != w[j])
            return false;
    return true;
}

#define ci_prefix(s, n, i, w) ci_prefix_n(s, n, i, w, sizeof(w) - 1)

// URL whose "://" starts at s[colon]: back up over the scheme. Sets *start.
static size_t
match_scheme_url(const char *s, size_t n, size_t colon, size_t lo, size_t *start)
{
    static const char *const schemes[] = {"https", "http", "ftp"};
    static const size_t lens[] = {5, 4, 3};
    for (size_t k = 0; k < KILN_ARRAY_LEN(schemes); k++) {
        size_t len = lens[k];
        if (colon < lo + len)
            continue;
        size_t a = colon - len;
        if (!ci_prefix_n(s, n, a, schemes[k], len) || is_alnum(BEFORE(a)))
            continue;
        size_t e = url_end(s, n, a, colon + 3);
        if (e) {
            *start = a;
            return e;
        }
    }
    return 0;
}

// Decimal octet at s[i..]: returns its length (1-3) or 0; no leading zeros, value <= 255.
static size_t
octet(const char *s, size_t n, size_t i)
{
    size_t k = 0;
    int v = 0;
    while (k < 3 && is_digit(AT(i + k)))
        v = v * 10 + (s[i + k] - '0'), k++;
    if (k == 0 || is_digit(AT(i + k)) || v > 255 || (k > 1 && s[i] == '0'))
        return 0;
    return k;
}

// True when the text before a says a version number follows ("version 1.2.3.4", "v1.2.3.4").
static bool
after_version_word(const char *s, size_t a)
{
    static const char *const words[] = {"version", "release", "build", "ver", "rev", "v"};
    size_t i = a;
    bool sep = false;
    while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == ':' || s[i - 1] == '\t'))
        i--, sep = true;
    for (size_t k = 0; k < KILN_ARRAY_LEN(words); k++) {
        size_t len = strlen(words[k]);
        if (i < len)
            continue;
        size_t w = i - len;
        bool ok = true;
        for (size_t j = 0; j < len && ok; j++)
            ok = (s[w + j] | 32) == words[k][j];
        if (!ok || (w > 0 && is_alpha((unsigned char)s[w - 1])))
            continue;
        if (len == 1 && sep) // a lone "v" counts only when glued: "v1.2.3.4"
            continue;
        return true;
    }
    return false;
}

static size_t
match_ipv4(const char *s, size_t n, size_t a)
{
    unsigned char b = BEFORE(a);
    if (is_alnum(b) || b == '.' || b == '_')
        return 0;
    size_t i = a;
    for (int k = 0; k < 4; k++) {
        if (k) {
            if (AT(i) != '.')
                return 0;
            i++;
        }
        size_t len = octet(s, n, i);
        if (!len)
            return 0;
        i += len;
    }
    unsigned char c = AT(i);
    if (is_alnum(c) || c == '_' || ((c == '.' || c == '-') && is_digit(AT(i + 1))))
        return 0;
    if (after_version_word(s, a))
        return 0;
    return i;
}

// IPv6 in the hex/colon/dot run around position p (a ':' or a hex digit); lo bounds the
// start. Sets *start.
static size_t
match_ipv6(const char *s, size_t n, size_t p, size_t lo, size_t *start)
{
    size_t a = p;
    while (a > lo && (is_hex(BEFORE(a)) || BEFORE(a) == ':'))
        a--;
    unsigned char b = BEFORE(a);
    if (is_alnum(b) || b == '_' || b == '.')
        return 0;
    size_t e = p;
    while (e < n && (is_hex((unsigned char)s[e]) || s[e] == ':' || s[e] == '.'))
        e++;
    // Trailing '.' or a single ':' belongs to the sentence, not the address.
    while (e > a && (s[e - 1] == '.' || (s[e - 1] == ':' && !(e - a >= 2 && s[e - 2] == ':'))))
        e--;
    if (e < n && (is_alnum((unsigned char)s[e]) || s[e] == '_'))
        return 0;
    // Parse groups.
    int groups = 0, nonempty = 0;
    bool dbl = false;
    size_t i = a;
    if (i + 1 < e && s[i] == ':' && s[i + 1] == ':') {
        dbl = true;
        i += 2;
    } else if (i < e && s[i] == ':') {
        return 0;
    }
    while (i < e) {
        size_t st = i;
        while (i < e && is_hex((unsigned char)s[i]) && i - st < 5)
            i++;
        if (i < e && s[i] == '.') { // embedded IPv4 as the last two groups
            size_t v4 = match_ipv4(s, e, st);
            if (!v4 || v4 != e)
                return 0;
            groups += 2, nonempty += 2;
            i = e;
            break;
        }
        size_t len = i - st;
        if (len == 0 || len > 4)
            return 0;
        groups++, nonempty++;
        if (i == e)
            break;
        if (s[i] != ':')
            return 0;
        i++;
        if (i < e && s[i] == ':') {
            if (dbl)
                return 0;
            dbl = true;
            i++;
        } else if (i == e) {
            return 0; // ends with a single ':'
        }
    }
    if (dbl ? groups > 7 : groups != 8)
        return 0;
    if (nonempty < 2 && !(dbl && nonempty == 1 && e - a == 3)) // "::1" or at least two groups
        return 0;
    *start = a;
    return e;
}

static bool
luhn_ok(const char *digits, size_t n)
{
    int sum = 0;
    for (size_t k = 0; k < n; k++) {
        int d = digits[n - 1 - k] - '0';
        if (k & 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

static size_t
match_card(const char *s, size_t n, size_t a)
{
    unsigned char b = BEFORE(a);
    if (is_alnum(b) || b == '_' || ((b == '.' || b == '-') && is_digit(a >= 2 ? s[a - 2] : 0)))
        return 0;
    if (s[a] < '2' || s[a] > '6')
        return 0;
    char digits[20];
    size_t nd = 0, i = a, group = 0;
    char sep = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (is_digit(c)) {
            if (nd == 19)
                return 0;
            digits[nd++] = (char)c;
            group++;
            i++;
            continue;
        }
        if ((c == ' ' || c == '-') && is_digit(AT(i + 1)) && (sep == 0 || sep == (char)c) &&
            group >= 3 && group <= 6) {
            sep = (char)c;
            group = 0;
            i++;
            continue;
        }
        break;
    }
    if (sep && (group < 3 || group > 6))
        return 0;
    unsigned char c = AT(i);
    // Not glued to more of a token: "<1234...3456.ABC@host>" is a message id, not a card.
    if (is_alnum(c) || c == '_' || c == '@' || ((c == '.' || c == '-') && is_alnum(AT(i + 1))))
        return 0;
    if (nd < 13 || !luhn_ok(digits, nd))
        return 0;
    return i;
}

// Exactly k digits at s[i..]; returns true and advances *i.
static bool
digits_k(const char *s, size_t n, size_t *i, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if (!is_digit(AT(*i + j)))
            return false;
    if (is_digit(AT(*i + k)))
        return false;
    *i += k;
    return true;
}

static bool
is_phone_sep(int c)
{
    return c == ' ' || c == '-' || c == '.';
}

// North American number starting at a: [1 sep] (NXX) [sep] XXX sep XXXX, or NXX s XXX s XXXX.
static size_t
match_phone_nanp(const char *s, size_t n, size_t a)
{
    unsigned char b = BEFORE(a);
    if (is_alnum(b) || b == '_' || b == '.' || b == '-' || b == '/')
        return 0;
    size_t i = a;
    if (AT(i) == '1' && is_phone_sep(AT(i + 1)) && (AT(i + 2) == '(' || is_digit(AT(i + 2))))
        i += 2;
    char sep;
    if (AT(i) == '(') {
        i++;
        if (AT(i) < '2' || !digits_k(s, n, &i, 3) || AT(i) != ')')
            return 0;
        i++;
        if (AT(i) == ' ' || AT(i) == '-' || AT(i) == '.')
            i++;
        if (!digits_k(s, n, &i, 3))
            return 0;
        sep = (char)AT(i);
        if (sep != '-' && sep != '.' && sep != ' ')
            return 0;
        i++;
    } else {
        if (AT(i) < '2' || !digits_k(s, n, &i, 3))
            return 0;
        sep = (char)AT(i);
        if (!is_phone_sep(sep))
            return 0;
        i++;
        if (!digits_k(s, n, &i, 3) || AT(i) != (unsigned char)sep)
            return 0;
        i++;
    }
    if (!digits_k(s, n, &i, 4))
        return 0;
    unsigned char c = AT(i);
    if (is_alnum(c) || c == '_' || ((c == '.' || c == '-' || c == '/') && is_digit(AT(i + 1))))
        return 0;
    return i;
}

// International number: '+' at a, 8-15 digits in groups.
static size_t
match_phone_intl(const char *s, size_t n, size_t a)
{
    unsigned char b = BEFORE(a);
    if (is_alnum(b) || b == '+')
        return 0;
    size_t i = a + 1, nd = 0, end = 0;
    if (!is_digit(AT(i)) || AT(i) == '0')
        return 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (is_digit(c)) {
            nd++;
            i++;
            end = i;
            continue;
        }
        if (is_phone_sep(c) && (is_digit(AT(i + 1)) || AT(i + 1) == '(')) {
            i++;
            continue;
        }
        if (c == '(' && is_digit(AT(i + 1))) {
            size_t j = i + 1;
            while (is_digit(AT(j)))
                j++;
            if (AT(j) != ')' || j - i - 1 > 4)
                break;
            nd += j - i - 1;
            i = j + 1;
            end = i;
            if (AT(i) == ' ' || AT(i) == '-' || AT(i) == '.')
                continue;
            continue;
        }
        break;
    }
    if (nd < 8 || nd > 15)
        return 0;
    unsigned char c = AT(end);
    if (is_alpha(c) || c == '_' || ((c == '.' || c == '-') && is_digit(AT(end + 1))))
        return 0;
    return end;
}

// ---- the scan -----------------------------------------------------------------------------

enum { T_AT = 1, T_COLON, T_W, T_PLUS, T_PAREN, T_DIGIT };
static unsigned char trigger[256];
static pthread_once_t trigger_once = PTHREAD_ONCE_INIT;

static void
trigger_fill(void)
{
    for (int c = '0'; c <= '9'; c++)
        trigger[c] = T_DIGIT;
    trigger[':'] = T_COLON;
    trigger['w'] = trigger['W'] = T_W;
    trigger['+'] = T_PLUS;
    trigger['('] = T_PAREN;
    trigger['@'] = T_AT;
}

static void
trigger_init(void)
{
    pthread_once(&trigger_once, trigger_fill);
}

size_t
pii_redact(const char *s, size_t n, unsigned mask, struct buf *out, uint64_t counts[PII_NTYPES])
{
    trigger_init();
    size_t last = 0, i = 0, total = 0;
    const bool want_email = mask & (1u << PII_EMAIL), want_url = mask & (1u << PII_URL),
               want_v4 = mask & (1u << PII_IPV4), want_v6 = mask & (1u << PII_IPV6),
               want_phone = mask & (1u << PII_PHONE), want_card = mask & (1u << PII_CARD);
    while (i < n) {
        unsigned char t = trigger[(unsigned char)s[i]];
        if (!t) {
            i++;
            continue;
        }
        size_t a = i, e = 0;
        int type = -1;
        switch (t) {
        case T_AT:
            if (want_email && (e = match_email(s, n, i, last, &a)))
                type = PII_EMAIL;
            break;
        case T_COLON:
            if (want_url && AT(i + 1) == '/' && AT(i + 2) == '/' &&
                (e = match_scheme_url(s, n, i, last, &a)))
                type = PII_URL;
            else if (want_v6 && (e = match_ipv6(s, n, i, last, &a)))
                type = PII_IPV6;
            break;
        case T_W:
            if (want_url && !is_alnum(BEFORE(i)) && BEFORE(i) != '.' && BEFORE(i) != '@' &&
                BEFORE(i) != '/' && ci_prefix(s, n, i, "www.") && domain_end(s, n, i) &&
                (e = url_end(s, n, i, i + 4)))
                type = PII_URL;
            break;
        case T_PLUS:
            if (want_phone && (e = match_phone_intl(s, n, i)))
                type = PII_PHONE;
            break;
        case T_PAREN:
            if (want_phone && (e = match_phone_nanp(s, n, i)))
                type = PII_PHONE;
            break;
        case T_DIGIT:
            if (is_alnum(BEFORE(i))) // only at the start of a number
                break;
            if (want_v4 && (e = match_ipv4(s, n, i)))
                type = PII_IPV4;
            else if (want_card && (e = match_card(s, n, i)))
                type = PII_CARD;
            else if (want_phone && (e = match_phone_nanp(s, n, i)))
                type = PII_PHONE;
            break;
        default:
            break;
        }
        if (type < 0) {
            i++;
            continue;
        }
        buf_append(out, s + last, a - last);
        buf_append(out, pii_placeholders[type], placeholder_len[type]);
        counts[type]++;
        total++;
        last = i = e;
    }
    if (total)
        buf_append(out, s + last, n - last);
    return total;
}

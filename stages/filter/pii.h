// SPDX-License-Identifier: MIT
// pii: redaction of personal data in text — e-mail addresses, IPv4 and IPv6 addresses, phone
// numbers, payment card numbers and URLs, each replaced by a typed placeholder (<EMAIL>,
// <IPV4>, <IPV6>, <PHONE>, <CARD>, <URL>).
//
// One left-to-right pass: a byte table finds trigger characters ('@', ':', "www.", '+', '(',
// digits) and a hand-written validator for each type confirms the candidate around it; no
// regular expressions. What counts (the man page repeats these rules):
//   EMAIL  local@domain: local part of [A-Za-z0-9._%+-] not starting or ending with '.', a
//          domain of at least two dot-separated labels of [A-Za-z0-9-], the last one 2+ letters.
//   URL    http://, https://, ftp:// (any case) or www. followed by a host; it runs to
//          whitespace or one of <>"'`{}|\^; trailing . , ; : ! ? * and unbalanced ) ] are
//          left out. A URL wins over an e-mail address or IP inside it.
//   IPV4   four decimal octets 0..255 without leading zeros, not part of a longer dotted or
//          alphanumeric run ("1.2.3.4.5" is not an address). Version numbers: a candidate
//          right after "v", "version", "ver", "release", "build" or "rev" (any case, then spaces
//          or ':') is left alone, so "version 1.2.3.4" stays.
//   IPV6   RFC 4291 text form: eight groups of 1-4 hex digits, or fewer with one "::", the
//          last two groups possibly a dotted IPv4; not glued to letters, digits or '_'.
//          Times (12:30:45) and MAC addresses (six groups) do not qualify.
//   PHONE  "+" then 8-15 digits in groups separated by single spaces, dots or dashes (or a
//          parenthesized group); or the North American form [1 sep] (NXX) or NXX, sep, XXX,
//          sep, XXXX with N in 2-9 and sep one of space, dot, dash (the same one twice).
//          Dates (2023-10-15, 10/15/2023, 15.10.2023) have the wrong shape and stay.
//   CARD   13-19 digits, contiguous or in groups of 3-6 separated by one kind of single space
//          or dash, first digit 2-6 (Visa, Mastercard, Amex, Discover, JCB, UnionPay ranges)
//          and a valid Luhn checksum. A 16-digit number failing Luhn stays.
// Every candidate must stand alone: the characters around it may not continue it (letters,
// digits, and for numbers '.', '-' followed by a digit; for cards also '@' or '.'/'-' followed
// by a letter, as in message ids).
#ifndef KILN_FILTER_PII_H
#define KILN_FILTER_PII_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>

enum pii_type { PII_EMAIL, PII_IPV4, PII_IPV6, PII_PHONE, PII_CARD, PII_URL, PII_NTYPES };

extern const char *const pii_names[PII_NTYPES];        // "email", "ipv4", ...
extern const char *const pii_placeholders[PII_NTYPES]; // "<EMAIL>", ...

#define PII_ALL ((1u << PII_NTYPES) - 1)

// Parses a comma-separated list of type names or "all" into a bit mask (1 << type).
// Returns 0, or -1 with err naming the unknown type.
int pii_mask_parse(const char *list, unsigned *mask, struct kerr *err);

// Appends s[0..n) to out with every match of a type in mask replaced by its placeholder;
// adds the number of replacements per type to counts[]. Returns the total replaced; when it
// is 0, out is left untouched (no copy is made).
size_t pii_redact(const char *s, size_t n, unsigned mask, struct buf *out,
                  uint64_t counts[PII_NTYPES]);

#endif

// SPDX-License-Identifier: MIT
// mime: raw e-mail (RFC 5322 / MIME) to plain text — header parsing and unfolding, RFC 2047
// encoded words, quoted-printable and base64 bodies, multipart messages, and conversion of
// the common single-byte charsets to UTF-8.
//
// mime_email_text() keeps what a text model should see: the Subject line and the text parts
// of the body. Headers other than Subject are dropped; multipart/alternative contributes its
// text/plain part (its text/html part when there is no plain one); other multiparts contribute
// every text/* part in order, separated by a blank line; attachments (any other type, or a
// Content-Disposition of attachment) are dropped. Nesting is followed to depth 8.
// Charsets: utf-8 and us-ascii as they are, iso-8859-1/latin1/iso-8859-15 and windows-1252
// mapped to UTF-8; anything else is taken as UTF-8. Invalid UTF-8 in the result becomes U+FFFD,
// so the output is always valid UTF-8.
// Nothing here allocates beyond the output buffers; malformed input never fails, it decodes as
// much as makes sense (an unterminated multipart ends at the end of the text).
#ifndef KILN_MIME_H
#define KILN_MIME_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>

// Appends the quoted-printable decoding of s[0..n) ("=XX" escapes, "=" soft line breaks).
// Malformed escapes are kept as they are.
void mime_qp_decode(const char *s, size_t n, struct buf *out);
// Appends the base64 decoding of s[0..n), skipping whitespace and stopping at '=' padding or
// the first byte outside the alphabet. Returns the number of bytes appended.
size_t mime_base64_decode(const char *s, size_t n, struct buf *out);
// Appends s[0..n) in charset cs (NUL-terminated name, any case; NULL = utf-8) as UTF-8.
void mime_charset_to_utf8(const char *cs, const char *s, size_t n, struct buf *out);
// Appends a header value with RFC 2047 encoded words (=?cs?B?..?= and =?cs?Q?..?=) decoded and
// whitespace between adjacent encoded words removed.
void mime_header_decode(const char *s, size_t n, struct buf *out);

// True when s starts like an e-mail message: a header line "Name: value" (or an mbox
// "From " line) followed by more header lines up to a blank line or the end.
bool mime_looks_like_email(const char *s, size_t n);

// Appends the text of the message s[0..n) to out: "Subject: ..." and a blank line when there
// is a subject, then the decoded text parts. Returns false (and appends nothing) when s does not
// look like an e-mail message.
bool mime_email_text(const char *s, size_t n, struct buf *out);

#endif

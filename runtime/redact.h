/*
** redact.h: find secrets in text and rewrite them so they can be shown,
** logged or stored (DESIGN.md, "Secrets hygiene"). Pure C, no Lua.
**
** Redacted form of one secret: a short visible prefix, an ellipsis "…"
** (UTF-8, 3 bytes) and "[fp:XXXXXXXX]", the first 8 hex digits of SHA-256
** of the whole secret, e.g. "SG.AbCd…[fp:1a2b3c4d]". An operator checks a
** finding against a key they hold with
**     printf %s "$KEY" | sha256sum | cut -c1-8
**
** Visible prefix:
**   - known format: its fixed prefix plus the next 4 characters ("SG.AbCd",
**     "ghp_AbCd", "AKIAABCD"); a PEM block shows "-----BEGIN PRIVATE KEY-----"
**     and a Slack webhook URL shows "https://hooks.slack.com/services/";
**   - anything else: the first 4 bytes if the secret is at least 16 bytes
**     long and those 4 bytes are printable ASCII, else nothing.
**
** Formats found by ato_redact_text (a prefix-based token must not follow
** [A-Za-z0-9]; when more of [A-Za-z0-9_-] follow a match, the whole run is
** the secret, so a tail is over-redacted rather than leaked):
**   SendGrid SG.<22>.<43>; GitHub gh[pousr]_<36>, github_pat_<82>; npm_<36>;
**   AWS AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA + 16 [A-Z0-9];
**   Slack xox[abprs]-<10+> and https://hooks.slack.com/services/<path>;
**   Stripe [sr]k_(live|test)_<16+>; Twilio SK + 32 hex; Mailgun key-<32>;
**   Google AIza<35>; JWT eyJ..<10+>.eyJ..<10+>.<10+>; PEM private key
**   blocks (to the END line or the end of input); the token after
**   "Bearer " / "Basic " (any case, 8+ of [A-Za-z0-9._~+/=-]); the password
**   of scheme://user:password@host; and the value of assignments
**   `name = value`, `name: value`, `"name": "value"`, `name => value` whose
**   name passes ato_redact_is_secret_name.
** Assignment values: an opening quote runs the value to the matching
** closing quote (backslash escapes honoured, at most to the end of the line),
** spaces included; an unquoted value ends at whitespace, a quote, ',', ';'
** or '&'. Empty values, null/true/false, values that start with '{' or '['
** (nested structures, whose own keys are checked) and values that are
** already in redacted form are left alone. A value that a specific format
** above covers entirely is redacted by that format; after a "Bearer",
** "Basic" or "Token" scheme word only the credential is redacted.
** Redacting already-redacted text changes nothing (idempotent), and so does
** ato_redact_value on a value that is already in redacted form.
**
** Errors: no function aborts. Appending functions report an allocation
** failure through the buffer's sticky `oom` flag (and a return value where
** the signature has one); after a failure the buffer holds an incomplete
** copy that still contains no unredacted secret. The caller frees it.
**
** Strings are byte arrays with explicit lengths; NUL bytes are ordinary.
** All matching is ASCII; other bytes are never part of a format's token.
*/
#ifndef ATO_REDACT_H
#define ATO_REDACT_H

#include <stddef.h>

/* Growable byte buffer the redactor appends to. Zero it or use
** ATO_REDACT_BUF_INIT / ato_redact_buf_init before the first use. */
typedef struct ato_redact_buf {
  char *data;   /* NUL-terminated after a successful append; NULL before */
  size_t len;   /* bytes in data, not counting the NUL */
  size_t cap;   /* bytes allocated for data */
  int oom;      /* 1 once an allocation failed; later appends do nothing */
} ato_redact_buf;

#define ATO_REDACT_BUF_INIT {NULL, 0, 0, 0}

/* ato_redact_text's return value when an allocation failed. */
#define ATO_REDACT_ENOMEM ((size_t)-1)

/* Make b an empty buffer that owns no memory. */
void ato_redact_buf_init (ato_redact_buf *b);

/* Release b's memory and make it empty again (oom flag cleared). */
void ato_redact_buf_free (ato_redact_buf *b);

/* Append n bytes of p to b; 0 on success, -1 (and b->oom set) on failure. */
int ato_redact_buf_append (ato_redact_buf *b, const void *p, size_t n);

/* Append the redacted copy of in[0, len) to out; return how many secrets were
** redacted, or ATO_REDACT_ENOMEM. Time is linear in len. */
size_t ato_redact_text (const char *in, size_t len, ato_redact_buf *out);

/* Append the redacted form of a string known to be one secret (known-format
** prefix if the whole string, ignoring trailing whitespace, is one; else
** the generic rule). The fingerprint covers all len bytes. 0 or -1 (oom). */
int ato_redact_value (const char *secret, size_t len, ato_redact_buf *out);

/* 1 if a field called name[0, len) holds a secret, else 0. Rule:
** split the name into words (at non-alphanumerics, camelCase humps and
** letter/digit changes; ASCII case ignored), drop numeric words and the
** qualifiers value, confirm, confirmation, plaintext; then the name is
** secret when its LAST word
**   - ends with password, passwd, pwd, passphrase, secret, token, auth,
**     authorization, cookie, session, sessionid, sessid, credential,
**     apikey, accesskey, privatekey or secretkey, or is "pass"
**     (a plural "s" is allowed: tokens, credentials);
** or its last two words are <..api|access|private|secret|signing|
**   encryption|master|auth|session> key(s), <..session|secret> id.
** So password, api_key, apiKey, SENDGRID_API_KEY, client_secret, x-api-key,
** set-cookie, DB_PASS2 are secret; author, keyboard, monkey, key_id,
** api_key_id, AWS_ACCESS_KEY_ID, tokens_count, token_type, password_file
** are not (they name something about a secret, not the secret). */
int ato_redact_is_secret_name (const char *name, size_t len);

/* Write the first 8 hex digits of SHA-256 of s[0, len), plus a NUL. */
void ato_redact_fingerprint (const char *s, size_t len, char out[9]);

#endif

/*
** redact.c: the secret redactor (contracts in redact.h).
**
** One forward pass over the input. At each offset the matchers below are
** tried in order: known token formats, "Bearer/Basic <token>", a pending
** URL password, then `name = value` assignments. A hit names the bytes of
** one secret; the text before it is copied as it is, the secret is replaced
** by its redacted form and the scan resumes after it.
**
** Linear time: every matcher, when it fails, has read either a bounded
** number of bytes or a run that no later attempt of the same matcher can
** start inside (a key-name run is only tried at its first byte, a URL
** authority or PEM label never contains the byte that starts the next
** attempt). JWTs are the exception, handled by scan.jwt_skip. When a
** matcher succeeds, the scan resumes after everything it read.
*/
#include "redact.h"
#include "sha256.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ELLIPSIS "\xE2\x80\xA6"              /* U+2026, "…" */
#define MARKER_LEN (3 + 4 + 8 + 1)          /* "…[fp:" 8 hex "]" */
#define MAX_SHOWN 40    /* longest visible prefix we emit (webhook: 33) */
#define PEM_LABEL "-----BEGIN PRIVATE KEY-----"
#define SLACK_WEBHOOK "https://hooks.slack.com/services/"

/* ---------------------------------------------------------------------- */
/* Buffer                                                                  */
/* ---------------------------------------------------------------------- */

void ato_redact_buf_init (ato_redact_buf *b) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}

void ato_redact_buf_free (ato_redact_buf *b) {
  free(b->data);
  ato_redact_buf_init(b);
}

/* Make room for extra more bytes plus the NUL; 0 or -1 (sets oom). */
static int buf_reserve (ato_redact_buf *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (b->oom)
    return -1;
  if (extra > SIZE_MAX - 1 - b->len)
    goto fail;
  need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  for (cap = b->cap ? b->cap : 64; cap < need; )
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = realloc(b->data, cap);
  if (p == NULL)
    goto fail;
  b->data = p;
  b->cap = cap;
  return 0;
fail:
  b->oom = 1;
  return -1;
}

int ato_redact_buf_append (ato_redact_buf *b, const void *p, size_t n) {
  if (buf_reserve(b, n) != 0)
    return -1;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static void append_str (ato_redact_buf *b, const char *s) {
  ato_redact_buf_append(b, s, strlen(s));
}

/* ---------------------------------------------------------------------- */
/* Character classes (ASCII only, never locale-dependent)                  */
/* ---------------------------------------------------------------------- */

typedef int (*char_class)(int c);

static int is_digit (int c) { return c >= '0' && c <= '9'; }
static int is_upper (int c) { return c >= 'A' && c <= 'Z'; }
static int is_lower (int c) { return c >= 'a' && c <= 'z'; }
static int is_alnum (int c) { return is_digit(c) || is_upper(c) || is_lower(c); }
static int is_hex_lower (int c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
static int is_lower_alnum (int c) { return is_digit(c) || is_lower(c); }
static int is_upper_alnum (int c) { return is_digit(c) || is_upper(c); }
static int is_alnum_us (int c) { return is_alnum(c) || c == '_'; }
static int is_alnum_dash (int c) { return is_alnum(c) || c == '-'; }
static int is_b64url (int c) { return is_alnum(c) || c == '_' || c == '-'; }
static int is_space_tab (int c) { return c == ' ' || c == '\t'; }
static int is_pem_label (int c) { return is_upper_alnum(c) || c == ' '; }
static int is_webhook_path (int c) { return is_b64url(c) || c == '/'; }

static int is_space (int c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

static int is_bearer_char (int c) {
  return is_alnum(c) || (c != 0 && strchr("._~+/=-", c) != NULL);
}

/* Bytes of a key name in `name = value`. */
static int is_key_char (int c) {
  return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

static int is_space_or_quote (int c) {
  return is_space_tab(c) || c == '"' || c == '\'';
}

static int is_scheme_char (int c) {
  return is_alnum(c) || c == '+' || c == '.' || c == '-';
}

/* Bytes of a URL authority (userinfo@host:port) as found in free text. */
static int is_authority_char (int c) {
  return c > ' ' && c != 0x7f && strchr("/?#\"'<>`\\", c) == NULL;
}

/* Ends an unquoted assignment value. */
static int ends_bare_value (int c) {
  return is_space(c) || (c != 0 && strchr("\"',;&", c) != NULL);
}

static int lower_ascii (int c) {
  return is_upper(c) ? c - 'A' + 'a' : c;
}

/* ---------------------------------------------------------------------- */
/* Scanner and hits                                                        */
/* ---------------------------------------------------------------------- */

typedef struct scan {
  const char *s;
  size_t n;
  size_t jwt_skip;    /* no JWT can start before this offset (match_jwt) */
  size_t pw_start;    /* pending URL password s[pw_start, pw_end) ... */
  size_t pw_end;      /* ... when pw_end != 0 */
} scan;

typedef struct hit {
  size_t start, end;  /* the secret is s[start, end) */
  size_t shown;       /* leading bytes of the secret left visible */
  const char *label;  /* printed instead of the shown bytes when not NULL */
  int keep;           /* copy s[start, end) unchanged: already redacted */
} hit;

static void scan_init (scan *sc, const char *s, size_t n) {
  sc->s = s;
  sc->n = n;
  sc->jwt_skip = 0;
  sc->pw_start = sc->pw_end = 0;
}

/* Byte at offset i, or -1 past the end. */
static int byte_at (const scan *sc, size_t i) {
  return i < sc->n ? (unsigned char)sc->s[i] : -1;
}

static int one_of (int c, const char *set) {
  return c > 0 && strchr(set, c) != NULL;
}

/* Does the literal lit occur at offset i? */
static int has (const scan *sc, size_t i, const char *lit) {
  size_t k = strlen(lit);
  return i <= sc->n && sc->n - i >= k && memcmp(sc->s + i, lit, k) == 0;
}

/* Same, ignoring ASCII case; lit is lowercase. */
static int has_ci (const scan *sc, size_t i, const char *lit) {
  size_t k;
  for (k = 0; lit[k] != '\0'; k++)
    if (lower_ascii(byte_at(sc, i + k)) != lit[k])
      return 0;
  return 1;
}

/* Length of the run of cls bytes at offset i, at most max. */
static size_t run_of (const scan *sc, size_t i, size_t max, char_class cls) {
  size_t k = 0;
  while (k < max && i + k < sc->n && cls((unsigned char)sc->s[i + k]))
    k++;
  return k;
}

/* A prefix-based token may not continue a word. */
static int at_word_start (const scan *sc, size_t i) {
  return i == 0 || !is_alnum((unsigned char)sc->s[i - 1]);
}

static int set_hit (hit *h, size_t start, size_t end, size_t shown) {
  h->start = start;
  h->end = end;
  h->shown = shown;
  h->label = NULL;
  h->keep = 0;
  return 1;
}

/* Does "…[fp:xxxxxxxx]" start at p[0]? */
static int is_marker (const char *p, size_t n) {
  size_t k;
  if (n < MARKER_LEN || memcmp(p, ELLIPSIS "[fp:", 7) != 0 || p[15] != ']')
    return 0;
  for (k = 7; k < 15; k++)
    if (!is_hex_lower((unsigned char)p[k]))
      return 0;
  return 1;
}

static int marker_at (const scan *sc, size_t i) {
  return i <= sc->n && is_marker(sc->s + i, sc->n - i);
}

/* Is p[0, n) a redacted form we could have written ("abcd…[fp:..]")? */
static int already_redacted (const char *p, size_t n) {
  return n >= MARKER_LEN && n - MARKER_LEN <= MAX_SHOWN &&
         is_marker(p + n - MARKER_LEN, MARKER_LEN);
}

/* ---------------------------------------------------------------------- */
/* Known token formats                                                     */
/* ---------------------------------------------------------------------- */

/* The token goes on over any following [A-Za-z0-9_-]. */
static size_t extend_tail (const scan *sc, size_t end) {
  return end + run_of(sc, end, SIZE_MAX, is_b64url);
}

/* Prefix of plen bytes at i, then exactly len bytes of cls. */
static int fixed_body (const scan *sc, size_t i, size_t plen, size_t len,
                      char_class cls, hit *h) {
  size_t b = i + plen;
  if (run_of(sc, b, len, cls) < len)
    return 0;
  return set_hit(h, i, extend_tail(sc, b + len), plen + 4);
}

/* Prefix of plen bytes at i, then at least min bytes of cls. */
static int min_body (const scan *sc, size_t i, size_t plen, size_t min,
                    char_class cls, hit *h) {
  size_t b = i + plen, k = run_of(sc, b, min, cls);
  if (k < min)
    return 0;
  return set_hit(h, i, extend_tail(sc, b + k + run_of(sc, b + k, SIZE_MAX, cls)),
                 plen + 4);
}

static int match_sendgrid (const scan *sc, size_t i, hit *h) {
  size_t dot = i + 3 + 22;
  if (!has(sc, i, "SG.") || run_of(sc, i + 3, 22, is_b64url) < 22 ||
      byte_at(sc, dot) != '.' || run_of(sc, dot + 1, 43, is_b64url) < 43)
    return 0;
  return set_hit(h, i, extend_tail(sc, dot + 1 + 43), 3 + 4);
}

static int match_twilio (const scan *sc, size_t i, hit *h) {
  return has(sc, i, "SK") && fixed_body(sc, i, 2, 32, is_hex_lower, h);
}

static int match_github (const scan *sc, size_t i, hit *h) {
  if (has(sc, i, "github_pat_"))
    return fixed_body(sc, i, 11, 82, is_alnum_us, h);
  if (has(sc, i, "gh") && one_of(byte_at(sc, i + 2), "pousr") &&
      byte_at(sc, i + 3) == '_')
    return fixed_body(sc, i, 4, 36, is_alnum, h);
  return 0;
}

static int match_npm (const scan *sc, size_t i, hit *h) {
  return has(sc, i, "npm_") && fixed_body(sc, i, 4, 36, is_alnum, h);
}

static int match_aws (const scan *sc, size_t i, hit *h) {
  static const char *const prefixes[] = {
    "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"
  };
  size_t k;
  for (k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++)
    if (has(sc, i, prefixes[k]))
      return fixed_body(sc, i, 4, 16, is_upper_alnum, h);
  return 0;
}

static int match_google (const scan *sc, size_t i, hit *h) {
  return has(sc, i, "AIza") && fixed_body(sc, i, 4, 35, is_b64url, h);
}

static int match_slack (const scan *sc, size_t i, hit *h) {
  return has(sc, i, "xox") && one_of(byte_at(sc, i + 3), "abprs") &&
         byte_at(sc, i + 4) == '-' && min_body(sc, i, 5, 10, is_alnum_dash, h);
}

static int match_slack_webhook (const scan *sc, size_t i, hit *h) {
  size_t plen = strlen(SLACK_WEBHOOK), k;
  if (!has(sc, i, SLACK_WEBHOOK))
    return 0;
  k = run_of(sc, i + plen, SIZE_MAX, is_webhook_path);
  return k > 0 && set_hit(h, i, i + plen + k, plen);  /* whole URL is the secret */
}

static int match_stripe (const scan *sc, size_t i, hit *h) {
  if (!(has(sc, i, "sk_") || has(sc, i, "rk_")) ||
      !(has(sc, i + 3, "live_") || has(sc, i + 3, "test_")))
    return 0;
  return min_body(sc, i, 8, 16, is_alnum, h);
}

static int match_mailgun (const scan *sc, size_t i, hit *h) {
  return has(sc, i, "key-") && fixed_body(sc, i, 4, 32, is_lower_alnum, h);
}

/* eyJ<10+>.eyJ<10+>.<10+> in base64url. A failed attempt records the end
** of its first segment's run: an attempt starting inside that run would
** reach the same dots and fail the same way, so it is never made (this is
** what keeps 1 MB of "eyJ_eyJ_..." linear). */
static int match_jwt (scan *sc, size_t i, hit *h) {
  size_t e1, e2, e3;
  if (i < sc->jwt_skip || !has(sc, i, "eyJ"))
    return 0;
  e1 = i + 3 + run_of(sc, i + 3, SIZE_MAX, is_b64url);
  if (e1 - i - 3 >= 10 && byte_at(sc, e1) == '.' && has(sc, e1 + 1, "eyJ")) {
    e2 = e1 + 4 + run_of(sc, e1 + 4, SIZE_MAX, is_b64url);
    if (e2 - e1 - 4 >= 10 && byte_at(sc, e2) == '.') {
      e3 = e2 + 1 + run_of(sc, e2 + 1, SIZE_MAX, is_b64url);
      if (e3 - e2 - 1 >= 10)
        return set_hit(h, i, e3, 3 + 4);
    }
  }
  sc->jwt_skip = e1;
  return 0;
}

/* At j, a PEM label such as "RSA PRIVATE KEY" or "PGP PRIVATE KEY BLOCK"
** then "-----": return the offset after the dashes, else 0. The label
** holds no '-', so label runs of different attempts never overlap. */
static size_t pem_label_end (const scan *sc, size_t j) {
  size_t r = j + run_of(sc, j, SIZE_MAX, is_pem_label);
  int ok = (r - j >= 11 && has(sc, r - 11, "PRIVATE KEY")) ||
           (r - j >= 17 && has(sc, r - 17, "PRIVATE KEY BLOCK"));
  return ok && has(sc, r, "-----") ? r + 5 : 0;
}

/* End of the block whose BEGIN line ends at from: after the first
** "-----END <label>-----" line, or the end of input. */
static size_t pem_block_end (const scan *sc, size_t from) {
  size_t k = from, e;
  while (k < sc->n) {
    const char *dash = memchr(sc->s + k, '-', sc->n - k);
    if (dash == NULL)
      break;
    k = (size_t)(dash - sc->s);
    if (has(sc, k, "-----END ") && (e = pem_label_end(sc, k + 9)) != 0)
      return e;
    k++;
  }
  return sc->n;
}

static int match_pem (const scan *sc, size_t i, hit *h) {
  size_t e;
  if (!has(sc, i, "-----BEGIN ") || (e = pem_label_end(sc, i + 11)) == 0)
    return 0;
  if (marker_at(sc, e))         /* our own "-----BEGIN PRIVATE KEY-----…" */
    return 0;
  set_hit(h, i, pem_block_end(sc, e), 0);
  h->label = PEM_LABEL;
  return 1;
}

/* Any known format starting exactly at i. */
static int match_token (scan *sc, size_t i, hit *h) {
  int c = byte_at(sc, i);
  if (c == '-')
    return match_pem(sc, i, h);
  if (!at_word_start(sc, i))
    return 0;
  switch (c) {
    case 'S': return match_sendgrid(sc, i, h) || match_twilio(sc, i, h);
    case 'g': return match_github(sc, i, h);
    case 'n': return match_npm(sc, i, h);
    case 'A': return match_aws(sc, i, h) || match_google(sc, i, h);
    case 'x': return match_slack(sc, i, h);
    case 's': case 'r': return match_stripe(sc, i, h);
    case 'k': return match_mailgun(sc, i, h);
    case 'e': return match_jwt(sc, i, h);
    case 'h': return match_slack_webhook(sc, i, h);
    default: return 0;
  }
}

/* ---------------------------------------------------------------------- */
/* Secrets without a format: visible prefix, classification, output        */
/* ---------------------------------------------------------------------- */

/* Generic rule: show 4 bytes of a 16+ byte secret if they are printable
** ASCII (never cut a UTF-8 sequence or echo control bytes). */
static size_t generic_shown (const char *p, size_t n) {
  size_t k;
  if (n < 16)
    return 0;
  for (k = 0; k < 4; k++)
    if ((unsigned char)p[k] <= ' ' || (unsigned char)p[k] >= 0x7f)
      return 0;
  return 4;
}

/* How to show p[0, n) when it is known to be one secret: as the known
** format that covers it (trailing whitespace aside), else generically.
** The hit always spans all n bytes. */
static void classify_secret (const char *p, size_t n, hit *h) {
  scan sub;
  scan_init(&sub, p, n);
  if (match_token(&sub, 0, h) && h->end + run_of(&sub, h->end, SIZE_MAX, is_space) == n) {
    h->end = n;
    return;
  }
  set_hit(h, 0, n, generic_shown(p, n));
}

/* Hit for the secret s[start, end) of the scanned text. */
static int secret_hit (const scan *sc, size_t start, size_t end, hit *h) {
  classify_secret(sc->s + start, end - start, h);
  h->start += start;
  h->end += start;
  return 1;
}

static void emit_hit (ato_redact_buf *out, const char *s, const hit *h) {
  char fp[9];
  ato_redact_fingerprint(s + h->start, h->end - h->start, fp);
  if (h->label != NULL)
    append_str(out, h->label);
  else
    ato_redact_buf_append(out, s + h->start, h->shown);
  append_str(out, ELLIPSIS "[fp:");
  ato_redact_buf_append(out, fp, 8);
  append_str(out, "]");
}

/* ---------------------------------------------------------------------- */
/* Context-based secrets: auth headers, URL passwords, assignments        */
/* ---------------------------------------------------------------------- */

/* Length of an auth scheme word at i followed by a space or tab, else 0.
** with_token also accepts "token" (GitHub's "Authorization: token X"). */
static size_t scheme_at (const scan *sc, size_t i, int with_token) {
  static const char *const words[] = {"bearer", "basic", "token"};
  size_t k, nwords = with_token ? 3 : 2;
  for (k = 0; k < nwords; k++) {
    size_t w = strlen(words[k]);
    if (has_ci(sc, i, words[k]) && is_space_tab(byte_at(sc, i + w)))
      return w;
  }
  return 0;
}

/* "Bearer <token>" / "Basic <token>" in free text: redact the token. */
static int match_auth_header (const scan *sc, size_t i, hit *h) {
  size_t w = scheme_at(sc, i, 0), t, k;
  if (w == 0 || !at_word_start(sc, i))
    return 0;
  t = i + w + run_of(sc, i + w, SIZE_MAX, is_space_tab);
  k = run_of(sc, t, SIZE_MAX, is_bearer_char);
  if (k < 8 || marker_at(sc, t + k))
    return 0;
  return secret_hit(sc, t, t + k, h);
}

/* At "://" (offset i): if the authority that follows has a password
** (user:password@host), remember it; the main loop redacts it on reaching
** it, after the user part has been scanned like any other text. */
static void note_url_password (scan *sc, size_t i) {
  size_t a = i + 3, e, at, pw;
  const char *colon;
  if (i == 0 || !is_scheme_char((unsigned char)sc->s[i - 1]) || !has(sc, i, "://"))
    return;
  e = a + run_of(sc, a, SIZE_MAX, is_authority_char);
  for (at = e; at > a && sc->s[at - 1] != '@'; at--)
    ;                                   /* the last '@' ends the userinfo */
  if (at == a)
    return;
  at--;
  colon = memchr(sc->s + a, ':', at - a);
  if (colon == NULL)
    return;
  pw = (size_t)(colon - sc->s) + 1;
  if (pw == at || already_redacted(sc->s + pw, at - pw))
    return;
  sc->pw_start = pw;
  sc->pw_end = at;
}

/* Offset after the separator of an assignment whose name ends at k
** (`name=`, `name:`, `"name" :`, `name =>`, `name :=`), or 0. */
static size_t assignment_sep (const scan *sc, size_t k) {
  size_t j = k + run_of(sc, k, SIZE_MAX, is_space_or_quote);
  int c = byte_at(sc, j), d = byte_at(sc, j + 1);
  if (c == '=')
    return d == '=' ? 0 : j + 1 + (d == '>');     /* "==" is a comparison */
  if (c == ':')
    return d == ':' ? 0 : j + 1 + (d == '=');     /* "::" is a scope */
  return 0;
}

/* Unquoted values that are not secrets (null/true/false) or that open a
** nested structure whose keys are checked on their own. Checked before
** the value is read, so a refusal costs O(1). */
static int is_non_secret_value (const scan *sc, size_t v) {
  static const char *const literals[] = {"null", "true", "false"};
  size_t k;
  if (one_of(byte_at(sc, v), "{["))
    return 1;
  for (k = 0; k < 3; k++) {
    size_t w = strlen(literals[k]);
    int next = byte_at(sc, v + w);
    if (has_ci(sc, v, literals[k]) && !is_key_char(next))
      return 1;
  }
  return 0;
}

/* End of a value opened by quote q at v-1: the closing q (escapes
** skipped), the end of the line, or the end of input. */
static size_t quoted_end (const scan *sc, size_t v, int q) {
  size_t e = v;
  while (e < sc->n && sc->s[e] != q && sc->s[e] != '\n')
    e += (sc->s[e] == '\\' && e + 1 < sc->n && sc->s[e + 1] != '\n') ? 2 : 1;
  return e;
}

static size_t bare_end (const scan *sc, size_t v) {
  size_t e = v;
  while (e < sc->n && !ends_bare_value((unsigned char)sc->s[e]))
    e++;
  return e;
}

/* Start of the credential in a value: after "Bearer ", "Basic " or
** "Token " when a credential follows, else v itself. */
static size_t skip_scheme (const scan *sc, size_t v, int quote) {
  size_t w = scheme_at(sc, v, 1), t;
  int c;
  if (w == 0)
    return v;
  t = v + w + run_of(sc, v + w, SIZE_MAX, is_space_tab);
  c = byte_at(sc, t);
  return c < 0 || c == quote || (!quote && ends_bare_value(c)) ? v : t;
}

/* A name = value assignment whose name is a secret name, tried only where
** a name run starts (so each run is read once). */
static int match_assignment (scan *sc, size_t i, hit *h) {
  size_t k, v, t, e;
  int quote;
  hit tok;
  if (!is_key_char(byte_at(sc, i)) || (i > 0 && is_key_char((unsigned char)sc->s[i - 1])))
    return 0;
  k = i + run_of(sc, i, SIZE_MAX, is_key_char);
  v = assignment_sep(sc, k);
  if (v == 0 || !ato_redact_is_secret_name(sc->s + i, k - i))
    return 0;
  v += run_of(sc, v, SIZE_MAX, is_space_tab);
  quote = one_of(byte_at(sc, v), "\"'") ? sc->s[v++] : 0;
  if (!quote && is_non_secret_value(sc, v))
    return 0;
  t = skip_scheme(sc, v, quote);
  e = quote ? quoted_end(sc, t, quote) : bare_end(sc, t);
  if (e == t)
    return 0;                           /* empty value */
  if (already_redacted(sc->s + t, e - t)) {
    set_hit(h, t, e, 0);
    h->keep = 1;
    return 1;
  }
  if (match_token(sc, t, &tok) && tok.end >= e)
    return 0;                           /* the format itself redacts it at t */
  return secret_hit(sc, t, e, h);
}

/* The next secret starting at i, if any. A pending URL password is
** dropped once a hit that started before it has run past it. */
static int find_hit (scan *sc, size_t i, hit *h) {
  if (sc->pw_end != 0 && i >= sc->pw_start) {
    size_t end = sc->pw_end;
    sc->pw_end = 0;
    if (i == sc->pw_start)
      return secret_hit(sc, i, end, h);
  }
  if (match_token(sc, i, h) || match_auth_header(sc, i, h))
    return 1;
  if (byte_at(sc, i) == ':' && sc->pw_end == 0)
    note_url_password(sc, i);
  /* in a URL's userinfo, "user:" is not an assignment */
  return sc->pw_end == 0 && match_assignment(sc, i, h);
}

/* ---------------------------------------------------------------------- */
/* Public API                                                              */
/* ---------------------------------------------------------------------- */

size_t ato_redact_text (const char *in, size_t len, ato_redact_buf *out) {
  scan sc;
  size_t i = 0, copied = 0, count = 0;
  hit h;
  scan_init(&sc, in, len);
  while (i < len && !out->oom) {
    if (!find_hit(&sc, i, &h)) {
      i++;
    } else if (h.keep) {
      i = h.end;                        /* copied later with the plain text */
    } else {
      ato_redact_buf_append(out, in + copied, h.start - copied);
      emit_hit(out, in, &h);
      count++;
      i = copied = h.end;
    }
  }
  ato_redact_buf_append(out, in + copied, len - copied);
  return out->oom ? ATO_REDACT_ENOMEM : count;
}

int ato_redact_value (const char *secret, size_t len, ato_redact_buf *out) {
  hit h;
  if (already_redacted(secret, len)) {   /* idempotent, as ato_redact_text */
    ato_redact_buf_append(out, secret, len);
    return out->oom ? -1 : 0;
  }
  classify_secret(secret, len, &h);
  emit_hit(out, secret, &h);
  return out->oom ? -1 : 0;
}

void ato_redact_fingerprint (const char *s, size_t len, char out[9]) {
  char hex[65];
  ato_sha256_hex(s, len, hex);
  memcpy(out, hex, 8);
  out[8] = '\0';
}

/* ---------------------------------------------------------------------- */
/* Secret field names (rule in redact.h)                                   */
/* ---------------------------------------------------------------------- */

typedef struct word {
  const char *p;
  size_t n;
} word;

/* Words the last word of a secret name may end with. */
static const char *const secret_suffixes[] = {
  "password", "passwd", "pwd", "passphrase", "secret", "token", "auth",
  "authorization", "cookie", "session", "sessionid", "sessid", "credential",
  "apikey", "accesskey", "privatekey", "secretkey", NULL
};

/* Secret only as a whole word ("db_pass", but not "bypass"). */
static const char *const secret_words[] = {"pass", NULL};

/* Secret two-word endings: first word ends with [0], second word is [1]. */
static const char *const secret_pairs[][2] = {
  {"api", "key"}, {"access", "key"}, {"private", "key"}, {"secret", "key"},
  {"signing", "key"}, {"encryption", "key"}, {"master", "key"},
  {"auth", "key"}, {"session", "key"}, {"session", "id"}, {"secret", "id"},
  {NULL, NULL}
};

/* Words that qualify the word before them without changing what it is. */
static const char *const transparent_words[] = {
  "value", "confirm", "confirmation", "plaintext", NULL
};

static int word_equals (word w, const char *lit) {
  size_t k, n = strlen(lit);
  if (w.n != n)
    return 0;
  for (k = 0; k < n; k++)
    if (lower_ascii((unsigned char)w.p[k]) != lit[k])
      return 0;
  return 1;
}

static int word_ends_with (word w, const char *lit) {
  size_t n = strlen(lit);
  word tail;
  if (w.n < n)
    return 0;
  tail.p = w.p + w.n - n;
  tail.n = n;
  return word_equals(tail, lit);
}

static int word_in (word w, const char *const *list, int suffix) {
  for (; *list != NULL; list++)
    if (suffix ? word_ends_with(w, *list) : word_equals(w, *list))
      return 1;
  return 0;
}

/* w without a plural "s" (or w itself when it has none). */
static word singular (word w) {
  if (w.n > 1 && lower_ascii((unsigned char)w.p[w.n - 1]) == 's')
    w.n--;
  return w;
}

static int is_numeric (word w) {
  size_t k;
  for (k = 0; k < w.n; k++)
    if (!is_digit((unsigned char)w.p[k]))
      return 0;
  return 1;
}

/* Is there a word break between s[j-1] and s[j] (both alphanumeric)? */
static int word_break (const char *s, size_t n, size_t j) {
  int a = (unsigned char)s[j - 1], b = (unsigned char)s[j];
  if (is_digit(a) != is_digit(b))
    return 1;                           /* password2, oauth2 */
  if (is_lower(a) && is_upper(b))
    return 1;                           /* apiKey */
  return is_upper(a) && is_upper(b) && j + 1 < n &&
         is_lower((unsigned char)s[j + 1]);   /* APIKey */
}

/* Next word of s[0, n) at or after *pos; 0 when there is none. */
static int next_word (const char *s, size_t n, size_t *pos, word *w) {
  size_t i = *pos, j;
  while (i < n && !is_alnum((unsigned char)s[i]))
    i++;
  if (i >= n)
    return 0;
  for (j = i + 1; j < n && is_alnum((unsigned char)s[j]) && !word_break(s, n, j); j++)
    ;
  w->p = s + i;
  w->n = j - i;
  *pos = j;
  return 1;
}

static int last_word_is_secret (word w) {
  word one = singular(w);
  return word_in(w, secret_suffixes, 1) || word_in(one, secret_suffixes, 1) ||
         word_in(w, secret_words, 0);
}

static int last_pair_is_secret (word first, word second) {
  size_t k;
  if (first.n == 0)
    return 0;
  for (k = 0; secret_pairs[k][0] != NULL; k++)
    if (word_ends_with(first, secret_pairs[k][0]) &&
        (word_equals(second, secret_pairs[k][1]) ||
         word_equals(singular(second), secret_pairs[k][1])))
      return 1;
  return 0;
}

int ato_redact_is_secret_name (const char *name, size_t len) {
  word w, last = {NULL, 0}, prev = {NULL, 0};
  size_t pos = 0;
  while (next_word(name, len, &pos, &w)) {
    if (is_numeric(w) || word_in(w, transparent_words, 0))
      continue;
    prev = last;
    last = w;
  }
  return last.n > 0 && (last_word_is_secret(last) || last_pair_is_secret(prev, last));
}

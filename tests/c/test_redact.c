/*
** test_redact.c: the secret redactor (runtime/redact.h).
**
** Every test secret is fake but format-valid: a real prefix plus a body from
** a seeded pseudo-random generator, built at run time. Failure messages
** never print a secret or an output that might hold one: they give lengths,
** offsets and fingerprints.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "redact.h"
#include "sha256.h"

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define DIGITS "0123456789"
#define ALNUM LOWER UPPER DIGITS
#define B64URL ALNUM "_-"
#define B64 ALNUM "+/"
#define HEX_LOWER DIGITS "abcdef"
#define ELLIPSIS "\xE2\x80\xA6"

/* ---------------------------------------------------------------------- */
/* Building text                                                           */
/* ---------------------------------------------------------------------- */

/* A growing text under construction (fixed capacity, checked). */
typedef struct text {
  char p[8192];
  size_t n;
} text;

static void put (text *t, const char *s, size_t n) {
  assert_true(t->n + n <= sizeof t->p);
  memcpy(t->p + t->n, s, n);
  t->n += n;
}

static void put_str (text *t, const char *s) {
  put(t, s, strlen(s));
}

/* n bytes drawn from alphabet by a seeded LCG: deterministic fake bodies. */
static void put_random (text *t, size_t n, const char *alphabet, unsigned *seed) {
  size_t k, m = strlen(alphabet);
  for (k = 0; k < n; k++) {
    *seed = *seed * 1103515245u + 12345u;
    put(t, alphabet + (*seed >> 16) % m, 1);
  }
}

/* visible + "…[fp:" + first 8 hex digits of SHA-256(secret) + "]", with the
** fingerprint computed here independently of the redactor. */
static void put_redacted (text *t, const char *visible, size_t vn,
                         const char *secret, size_t sn) {
  char hex[65];
  ato_sha256_hex(secret, sn, hex);
  put(t, visible, vn);
  put_str(t, ELLIPSIS "[fp:");
  put(t, hex, 8);
  put_str(t, "]");
}

/* ---------------------------------------------------------------------- */
/* Running the redactor and checking without printing secrets              */
/* ---------------------------------------------------------------------- */

typedef struct result {
  ato_redact_buf out;
  size_t count;
} result;

static result redact (const char *in, size_t n) {
  result r;
  ato_redact_buf_init(&r.out);
  r.count = ato_redact_text(in, n, &r.out);
  assert_true(r.count != ATO_REDACT_ENOMEM);
  assert_non_null(r.out.data);
  assert_int_equal(r.out.data[r.out.len], '\0');
  return r;
}

static int contains (const char *hay, size_t hn, const char *needle, size_t nn) {
  size_t k;
  if (nn == 0)
    return 1;
  for (k = 0; k + nn <= hn; k++)
    if (memcmp(hay + k, needle, nn) == 0)
      return 1;
  return 0;
}

static void assert_absent (const ato_redact_buf *b, const char *secret, size_t n) {
  char fp[9];
  if (n == 0 || !contains(b->data, b->len, secret, n))
    return;
  ato_redact_fingerprint(secret, n, fp);
  fail_msg("a secret of %zu bytes [fp:%s] is still in the output", n, fp);
}

/* The output holds "[fp:<fingerprint of secret>]". */
static void assert_fingerprint_present (const ato_redact_buf *b, const char *secret,
                                       size_t n) {
  char hex[65], tag[14];
  ato_sha256_hex(secret, n, hex);
  memcpy(tag, "[fp:", 4);
  memcpy(tag + 4, hex, 8);
  tag[12] = ']';
  tag[13] = '\0';
  if (!contains(b->data, b->len, tag, 13))
    fail_msg("no %s for a secret of %zu bytes", tag, n);
}

static void assert_same_text (const char *got, size_t gn, const char *want, size_t wn) {
  char gfp[9], wfp[9];
  size_t k;
  if (gn == wn && memcmp(got, want, wn) == 0)
    return;
  for (k = 0; k < gn && k < wn && got[k] == want[k]; k++)
    ;
  ato_redact_fingerprint(got, gn, gfp);
  ato_redact_fingerprint(want, wn, wfp);
  fail_msg("output differs from byte %zu: got %zu bytes [fp:%s], want %zu bytes [fp:%s]",
           k, gn, gfp, wn, wfp);
}

/* Redacting want again changes nothing and finds nothing. */
static void assert_idempotent (const char *want, size_t wn) {
  result r = redact(want, wn);
  assert_int_equal(r.count, 0);
  assert_same_text(r.out.data, r.out.len, want, wn);
  ato_redact_buf_free(&r.out);
}

/* in must come out as want, with count secrets found, and stay so. */
static void check (const text *in, const text *want, size_t count) {
  result r = redact(in->p, in->n);
  assert_int_equal(r.count, count);
  assert_same_text(r.out.data, r.out.len, want->p, want->n);
  ato_redact_buf_free(&r.out);
  assert_idempotent(want->p, want->n);
}

/* "found <secret> in log" must become "found <shown>…[fp:..] in log". */
static void check_redacts (const text *secret, size_t shown) {
  text in = {{0}, 0}, want = {{0}, 0};
  result r;
  put_str(&in, "found ");
  put(&in, secret->p, secret->n);
  put_str(&in, " in log\n");
  put_str(&want, "found ");
  put_redacted(&want, secret->p, shown, secret->p, secret->n);
  put_str(&want, " in log\n");
  r = redact(in.p, in.n);
  assert_absent(&r.out, secret->p, secret->n);
  ato_redact_buf_free(&r.out);
  check(&in, &want, 1);
}

static void check_untouched (const char *s, size_t n) {
  result r = redact(s, n);
  assert_int_equal(r.count, 0);
  assert_same_text(r.out.data, r.out.len, s, n);
  ato_redact_buf_free(&r.out);
}

static void check_untouched_text (const text *t) {
  check_untouched(t->p, t->n);
}

/* "found <word> in log" with no secret in it. */
static void check_untouched_word (const text *word) {
  text in = {{0}, 0};
  put_str(&in, "found ");
  put(&in, word->p, word->n);
  put_str(&in, " in log\n");
  check_untouched_text(&in);
}

/* ---------------------------------------------------------------------- */
/* Formats made of a prefix and one body                                   */
/* ---------------------------------------------------------------------- */

typedef struct simple_format {
  const char *prefix;
  size_t min;             /* shortest (or only) valid body length */
  size_t len;             /* body length used for the positive case */
  const char *alphabet;
} simple_format;

static const simple_format simple_formats[] = {
  {"ghp_", 36, 36, ALNUM}, {"gho_", 36, 36, ALNUM}, {"ghu_", 36, 36, ALNUM},
  {"ghs_", 36, 36, ALNUM}, {"ghr_", 36, 36, ALNUM},
  {"github_pat_", 82, 82, ALNUM "_"},
  {"npm_", 36, 36, ALNUM},
  {"AKIA", 16, 16, UPPER DIGITS}, {"ASIA", 16, 16, UPPER DIGITS},
  {"AGPA", 16, 16, UPPER DIGITS}, {"AIDA", 16, 16, UPPER DIGITS},
  {"AROA", 16, 16, UPPER DIGITS}, {"ANPA", 16, 16, UPPER DIGITS},
  {"ANVA", 16, 16, UPPER DIGITS}, {"AIPA", 16, 16, UPPER DIGITS},
  {"xoxa-", 10, 40, ALNUM "-"}, {"xoxb-", 10, 10, ALNUM "-"},
  {"xoxp-", 10, 60, ALNUM "-"}, {"xoxr-", 10, 24, ALNUM "-"},
  {"xoxs-", 10, 24, ALNUM "-"},
  {"sk_live_", 16, 24, ALNUM}, {"rk_live_", 16, 16, ALNUM},
  {"sk_test_", 16, 99, ALNUM}, {"rk_test_", 16, 24, ALNUM},
  {"SK", 32, 32, HEX_LOWER},
  {"key-", 32, 32, LOWER DIGITS},
  {"AIza", 35, 35, B64URL},
};

#define NSIMPLE (sizeof simple_formats / sizeof simple_formats[0])

static text simple_secret (const simple_format *f, size_t body, unsigned seed) {
  text t = {{0}, 0};
  put_str(&t, f->prefix);
  put_random(&t, body, f->alphabet, &seed);
  return t;
}

static void test_simple_formats_redacted (void **state) {
  size_t k;
  (void)state;
  for (k = 0; k < NSIMPLE; k++) {
    const simple_format *f = &simple_formats[k];
    text secret = simple_secret(f, f->len, 1000u + (unsigned)k);
    check_redacts(&secret, strlen(f->prefix) + 4);
  }
}

/* A fixed-length match followed by more token bytes: the whole run goes. */
static void test_tail_after_match_is_redacted (void **state) {
  size_t k;
  (void)state;
  for (k = 0; k < NSIMPLE; k++) {
    const simple_format *f = &simple_formats[k];
    text secret = simple_secret(f, f->len, 2000u + (unsigned)k);
    put_str(&secret, "Zq_9-x");
    check_redacts(&secret, strlen(f->prefix) + 4);
  }
}

static void test_simple_formats_too_short (void **state) {
  size_t k;
  (void)state;
  for (k = 0; k < NSIMPLE; k++) {
    const simple_format *f = &simple_formats[k];
    text word = simple_secret(f, f->min - 1, 3000u + (unsigned)k);
    check_untouched_word(&word);
  }
}

/* A byte outside every token alphabet in the middle of the body. */
static void test_simple_formats_broken_body (void **state) {
  size_t k;
  (void)state;
  for (k = 0; k < NSIMPLE; k++) {
    const simple_format *f = &simple_formats[k];
    text word = simple_secret(f, f->len, 4000u + (unsigned)k);
    word.p[strlen(f->prefix) + f->min / 2] = '!';
    check_untouched_word(&word);
  }
}

/* The prefix inside a longer word is not a token start. */
static void test_simple_formats_inside_word (void **state) {
  size_t k;
  (void)state;
  for (k = 0; k < NSIMPLE; k++) {
    const simple_format *f = &simple_formats[k];
    text body = simple_secret(f, f->len, 5000u + (unsigned)k), word = {{0}, 0};
    put_str(&word, "x9");
    put(&word, body.p, body.n);
    check_untouched_word(&word);
  }
}

/* Near misses with the right length but the wrong alphabet. */
static void test_wrong_charset (void **state) {
  static const simple_format misses[] = {
    {"AKIA", 16, 16, LOWER},            /* AWS ids are upper case */
    {"SK", 32, 32, DIGITS "ABCDEF"},    /* Twilio SIDs are lower-case hex */
    {"key-", 32, 32, UPPER},            /* Mailgun keys are lower case */
    {"ghp_", 36, 36, "-"},              /* GitHub bodies are alphanumeric */
    {"npm_", 36, 36, "_"},
  };
  size_t k;
  (void)state;
  for (k = 0; k < sizeof misses / sizeof misses[0]; k++) {
    text word = simple_secret(&misses[k], misses[k].len, 6000u + (unsigned)k);
    check_untouched_word(&word);
  }
}

static void test_monkey_is_not_mailgun (void **state) {
  unsigned seed = 7;
  text word = {{0}, 0};
  (void)state;
  put_str(&word, "monkey-");
  put_random(&word, 32, LOWER DIGITS, &seed);
  check_untouched_word(&word);
}

/* ---------------------------------------------------------------------- */
/* SendGrid, JWT, PEM, Slack webhooks                                      */
/* ---------------------------------------------------------------------- */

static text sendgrid_key (size_t id_len, size_t secret_len, unsigned seed) {
  text t = {{0}, 0};
  put_str(&t, "SG.");
  put_random(&t, id_len, B64URL, &seed);
  put_str(&t, ".");
  put_random(&t, secret_len, B64URL, &seed);
  return t;
}

static void test_sendgrid (void **state) {
  text key = sendgrid_key(22, 43, 11);
  (void)state;
  check_redacts(&key, 3 + 4);
}

static void test_sendgrid_near_misses (void **state) {
  text a = sendgrid_key(21, 43, 12), b = sendgrid_key(22, 42, 13);
  text c = sendgrid_key(22, 43, 14), d = {{0}, 0};
  (void)state;
  check_untouched_word(&a);
  check_untouched_word(&b);
  put_str(&d, "MSG");                     /* "MSG." + ...: inside a word */
  put(&d, c.p + 2, c.n - 2);
  check_untouched_word(&d);
}

static text jwt (size_t h, size_t p, size_t s, const char *second, unsigned seed) {
  text t = {{0}, 0};
  put_str(&t, "eyJ");
  put_random(&t, h, B64URL, &seed);
  put_str(&t, ".");
  put_str(&t, second);
  put_random(&t, p, B64URL, &seed);
  put_str(&t, ".");
  put_random(&t, s, B64URL, &seed);
  return t;
}

static void test_jwt (void **state) {
  text token = jwt(20, 60, 43, "eyJ", 21);
  (void)state;
  check_redacts(&token, 3 + 4);
}

static void test_jwt_near_misses (void **state) {
  text short_sig = jwt(20, 60, 9, "eyJ", 22);
  text not_json = jwt(20, 60, 43, "abc", 23);
  text short_head = jwt(9, 60, 43, "eyJ", 24);
  text two = {{0}, 0};
  unsigned seed = 25;
  (void)state;
  check_untouched_word(&short_sig);
  check_untouched_word(&not_json);
  check_untouched_word(&short_head);
  put_str(&two, "eyJ");
  put_random(&two, 20, B64URL, &seed);
  put_str(&two, ".eyJ");
  put_random(&two, 20, B64URL, &seed);
  check_untouched_word(&two);
}

static text pem_block (const char *label, int with_end, unsigned seed) {
  text t = {{0}, 0};
  int line;
  put_str(&t, "-----BEGIN ");
  put_str(&t, label);
  put_str(&t, "-----\n");
  for (line = 0; line < 4; line++) {
    put_random(&t, 64, B64, &seed);
    put_str(&t, "\n");
  }
  put_random(&t, 20, B64, &seed);
  put_str(&t, "==");
  if (with_end) {
    put_str(&t, "\n-----END ");
    put_str(&t, label);
    put_str(&t, "-----");
  }
  return t;
}

static void check_pem (const char *label, int with_end, unsigned seed) {
  text block = pem_block(label, with_end, seed), in = {{0}, 0}, want = {{0}, 0};
  const char *after = with_end ? "\nkey above\n" : "";
  result r;
  put_str(&in, "id_rsa:\n");
  put(&in, block.p, block.n);
  put_str(&in, after);
  put_str(&want, "id_rsa:\n");
  put_redacted(&want, "-----BEGIN PRIVATE KEY-----", 27, block.p, block.n);
  put_str(&want, after);
  r = redact(in.p, in.n);
  assert_absent(&r.out, block.p + 40, 64);      /* a line of the key body */
  ato_redact_buf_free(&r.out);
  check(&in, &want, 1);
}

static void test_pem_private_keys (void **state) {
  (void)state;
  check_pem("RSA PRIVATE KEY", 1, 31);
  check_pem("PRIVATE KEY", 1, 32);
  check_pem("EC PRIVATE KEY", 1, 33);
  check_pem("OPENSSH PRIVATE KEY", 1, 34);
  check_pem("ENCRYPTED PRIVATE KEY", 1, 35);
  check_pem("PGP PRIVATE KEY BLOCK", 1, 36);
}

/* A block cut short (a truncated log line) is redacted to the end. */
static void test_pem_without_end (void **state) {
  (void)state;
  check_pem("RSA PRIVATE KEY", 0, 37);
}

static void test_pem_public_material_untouched (void **state) {
  text pub = pem_block("PUBLIC KEY", 1, 38), cert = pem_block("CERTIFICATE", 1, 39);
  (void)state;
  check_untouched_text(&pub);
  check_untouched_text(&cert);
}

static void test_slack_webhook (void **state) {
  text url = {{0}, 0}, in = {{0}, 0}, want = {{0}, 0};
  const char *prefix = "https://hooks.slack.com/services/";
  unsigned seed = 41;
  result r;
  (void)state;
  put_str(&url, prefix);
  put_str(&url, "T");
  put_random(&url, 8, UPPER DIGITS, &seed);
  put_str(&url, "/B");
  put_random(&url, 10, UPPER DIGITS, &seed);
  put_str(&url, "/");
  put_random(&url, 24, ALNUM, &seed);
  put_str(&in, "webhook: ");
  put(&in, url.p, url.n);
  put_str(&in, "\n");
  put_str(&want, "webhook: ");
  put_redacted(&want, prefix, strlen(prefix), url.p, url.n);   /* fp of the whole URL */
  put_str(&want, "\n");
  r = redact(in.p, in.n);
  assert_absent(&r.out, url.p + strlen(prefix), url.n - strlen(prefix));
  ato_redact_buf_free(&r.out);
  check(&in, &want, 1);
}

static void test_slack_webhook_without_path (void **state) {
  static const char s[] = "docs: https://hooks.slack.com/services/ explains it";
  (void)state;
  check_untouched(s, strlen(s));
}

/* ---------------------------------------------------------------------- */
/* Bearer/Basic, URL passwords                                             */
/* ---------------------------------------------------------------------- */

/* before + secret + after -> before + value-rule form + after. */
static void check_context (const char *before, const text *secret, const char *after,
                          size_t shown) {
  text in = {{0}, 0}, want = {{0}, 0};
  result r;
  put_str(&in, before);
  put(&in, secret->p, secret->n);
  put_str(&in, after);
  put_str(&want, before);
  put_redacted(&want, secret->p, shown, secret->p, secret->n);
  put_str(&want, after);
  r = redact(in.p, in.n);
  assert_absent(&r.out, secret->p, secret->n);
  ato_redact_buf_free(&r.out);
  check(&in, &want, 1);
}

static text random_text (size_t n, const char *alphabet, unsigned seed) {
  text t = {{0}, 0};
  put_random(&t, n, alphabet, &seed);
  return t;
}

static void test_bearer_and_basic (void **state) {
  text tok = random_text(40, ALNUM "._-", 51), b64 = random_text(16, B64, 52);
  text sg = sendgrid_key(22, 43, 53), short_tok = random_text(12, ALNUM, 54);
  (void)state;
  check_context("Authorization: Bearer ", &tok, "\n", 4);
  check_context("curl -H 'bearer ", &tok, "' https://api.test/", 4);
  check_context("Authorization: Basic ", &b64, "\r\n", 4);
  check_context("BASIC\t", &b64, "", 4);
  check_context("Authorization: Bearer ", &sg, "\n", 3 + 4);  /* SendGrid's own header */
  check_context("x-header: Bearer ", &short_tok, ";", 0);     /* < 16 bytes: no prefix */
}

static void test_bearer_near_misses (void **state) {
  static const char *const texts[] = {
    "The bearer of this letter is welcome.",
    "Bearer abc1234 (7 bytes)",
    "xBearer abcdefghijklmnop",
    "Bearers abcdefghijklmnop",
    "Bearer\nabcdefghijklmnop",
  };
  size_t k;
  (void)state;
  for (k = 0; k < sizeof texts / sizeof texts[0]; k++)
    check_untouched(texts[k], strlen(texts[k]));
}

static void test_url_password (void **state) {
  text pw = random_text(12, ALNUM "!*~", 61), long_pw = random_text(24, ALNUM, 62);
  text at_pw = {{0}, 0};
  (void)state;
  check_context("DATABASE_URL=postgres://app:", &pw, "@db.internal:5432/app\n", 0);
  check_context("connect redis://:", &long_pw, "@cache:6379/0 now", 4);
  put_str(&at_pw, "p@ss");                       /* the last '@' ends the userinfo */
  put(&at_pw, pw.p, pw.n);
  check_context("amqp://guest:", &at_pw, "@mq/", 4);   /* 16 bytes: 4 shown */
}

static void test_url_token_as_user (void **state) {
  simple_format ghp = {"ghp_", 36, 36, ALNUM};
  text token = simple_secret(&ghp, 36, 63), in = {{0}, 0}, want = {{0}, 0};
  text pw = {{0}, 0};
  (void)state;
  put_str(&in, "git clone https://");
  put(&in, token.p, token.n);
  put_str(&in, ":x-oauth-basic@github.com/o/r.git");
  put_str(&pw, "x-oauth-basic");
  put_str(&want, "git clone https://");
  put_redacted(&want, token.p, 8, token.p, token.n);
  put_str(&want, ":");
  put_redacted(&want, "", 0, pw.p, pw.n);
  put_str(&want, "@github.com/o/r.git");
  check(&in, &want, 2);
}

static void test_url_near_misses (void **state) {
  static const char *const texts[] = {
    "https://user@example.com/path",
    "https://example.com:8443/a:b@c",
    "https://user:@example.com/",
    "mailto:someone@example.com",
    "see http://example.com/?q=a:b@c and ://x:y@z",
  };
  size_t k;
  (void)state;
  for (k = 0; k < sizeof texts / sizeof texts[0]; k++)
    check_untouched(texts[k], strlen(texts[k]));
}

/* ---------------------------------------------------------------------- */
/* Assignments                                                             */
/* ---------------------------------------------------------------------- */

static void test_assignments (void **state) {
  text pw = random_text(7, ALNUM, 71), long_pw = random_text(30, ALNUM "#%", 72);
  text spaced = {{0}, 0}, quoted_escape = {{0}, 0};
  (void)state;
  check_context("password=", &pw, "\n", 0);
  check_context("DB_PASSWORD = ", &long_pw, "\n", 4);
  check_context("{\"client_secret\": \"", &long_pw, "\", \"name\": \"x\"}", 4);
  check_context("  api-key: '", &pw, "'\n", 0);
  check_context("  'smtp_pass' => '", &pw, "',", 0);
  check_context("export GITHUB_TOKEN=", &long_pw, "; make", 4);
  check_context("callback?code=1&access_token=", &long_pw, "&state=2", 4);
  check_context("<user password=\"", &pw, "\"/>", 0);
  check_context("x-api-key:", &long_pw, "", 4);
  check_context("Cookie: ", &pw, "; theme=dark", 0);
  put_str(&spaced, "correct horse battery staple");   /* quoted: spaces are kept inside */
  check_context("MAIL_PASSWORD=\"", &spaced, "\"\n", 4);
  put_str(&quoted_escape, "ab\\\"cd\\\\ef");
  check_context("{\"token\":\"", &quoted_escape, "\"}", 0);
}

/* "Authorization: <scheme> <credential>": only the credential goes. */
static void test_assignment_auth_scheme (void **state) {
  text tok = random_text(5, ALNUM, 81), gh = random_text(40, HEX_LOWER, 82);
  (void)state;
  check_context("Authorization: Bearer ", &tok, "\n", 0);
  check_context("\"Authorization\": \"token ", &gh, "\"", 4);
  check_context("proxy-authorization: Basic ", &tok, "", 0);
}

/* A value that is exactly a known format keeps that format's prefix (one
** redaction, not two); a value longer than the format goes whole. */
static void test_assignment_with_known_format (void **state) {
  text key = sendgrid_key(22, 43, 91), pem = pem_block("RSA PRIVATE KEY", 1, 92);
  text longer = {{0}, 0}, in = {{0}, 0}, want = {{0}, 0};
  simple_format akia = {"AKIA", 16, 16, UPPER DIGITS};
  text id = simple_secret(&akia, 16, 93);
  (void)state;
  check_context("SENDGRID_API_KEY=", &key, "\n", 7);
  check_context("\"apiKey\": \"", &key, "\"", 7);
  put(&longer, id.p, id.n);
  put_str(&longer, "/extra+tail");
  check_context("secret_key=", &longer, "\n", 4);
  put_str(&in, "private_key = \"");
  put(&in, pem.p, pem.n);
  put_str(&in, "\"\n");
  put_str(&want, "private_key = \"");
  put_redacted(&want, "-----BEGIN PRIVATE KEY-----", 27, pem.p, pem.n);
  put_str(&want, "\"\n");
  check(&in, &want, 1);
}

static void test_assignment_non_secrets (void **state) {
  static const char s[] =
    "api_key_id=abc123\n"
    "AWS_ACCESS_KEY_ID=not-a-real-id\n"
    "key_id: k-1\n"
    "author: Jane Doe\n"
    "tokens_count=5\n"
    "token_type: bearer\n"
    "password_file=/run/secrets/db\n"
    "name=ato keyboard=us monkey: yes\n"
    "password=\n"
    "secret: \"\"\n"
    "{\"token\": null, \"auth\": true, \"session\": {\"id\": 7}, \"secrets\": [1]}\n"
    "if password == guess then\n"
    "std::token::parse\n";
  (void)state;
  check_untouched(s, sizeof s - 1);
}

/* ---------------------------------------------------------------------- */
/* Several secrets, empty input, NUL bytes, buffer behaviour               */
/* ---------------------------------------------------------------------- */

static void test_env_file_with_several_secrets (void **state) {
  simple_format ghp = {"ghp_", 36, 36, ALNUM}, akia = {"AKIA", 16, 16, UPPER DIGITS};
  text sg = sendgrid_key(22, 43, 101), gh = simple_secret(&ghp, 36, 102);
  text id = simple_secret(&akia, 16, 103), aws = random_text(40, B64, 104);
  text db = random_text(18, ALNUM, 105), mail = random_text(9, ALNUM, 106);
  text jwt_tok = jwt(20, 50, 43, "eyJ", 107), env = {{0}, 0};
  const text *secrets[] = {&sg, &gh, &id, &aws, &db, &mail, &jwt_tok};
  result r;
  size_t k;
  (void)state;
  put_str(&env, "APP_NAME=ato\nDEBUG=false\nSENDGRID_API_KEY=");
  put(&env, sg.p, sg.n);
  put_str(&env, "\nGITHUB_TOKEN=\"");
  put(&env, gh.p, gh.n);
  put_str(&env, "\"\nAWS_ACCESS_KEY_ID=");
  put(&env, id.p, id.n);
  put_str(&env, "\nAWS_SECRET_ACCESS_KEY=");
  put(&env, aws.p, aws.n);
  put_str(&env, "\nDATABASE_URL=postgres://app:");
  put(&env, db.p, db.n);
  put_str(&env, "@db:5432/app\nMAIL_PASSWORD='");
  put(&env, mail.p, mail.n);
  put_str(&env, "'\n# session from the log: ");
  put(&env, jwt_tok.p, jwt_tok.n);
  put_str(&env, "\n");
  r = redact(env.p, env.n);
  assert_int_equal(r.count, 7);
  for (k = 0; k < sizeof secrets / sizeof secrets[0]; k++) {
    assert_absent(&r.out, secrets[k]->p, secrets[k]->n);
    assert_fingerprint_present(&r.out, secrets[k]->p, secrets[k]->n);
  }
  assert_true(contains(r.out.data, r.out.len, "APP_NAME=ato\nDEBUG=false\n", 25));
  assert_true(contains(r.out.data, r.out.len, "@db:5432/app\n", 13));
  assert_idempotent(r.out.data, r.out.len);
  ato_redact_buf_free(&r.out);
}

static void test_empty_input (void **state) {
  result r = redact("", 0), n = redact(NULL, 0);
  (void)state;
  assert_int_equal(r.count, 0);
  assert_int_equal(r.out.len, 0);
  assert_int_equal(n.count, 0);
  assert_int_equal(n.out.len, 0);
  ato_redact_buf_free(&r.out);
  ato_redact_buf_free(&n.out);
}

static void test_nul_bytes_are_data (void **state) {
  static const char in[] = "a\0b password=x\0y z\0";
  text pw = {{0}, 0}, want = {{0}, 0};
  result r;
  (void)state;
  put(&pw, "x\0y", 3);
  put(&want, "a\0b password=", 13);
  put_redacted(&want, "", 0, pw.p, pw.n);
  put(&want, " z\0", 3);
  r = redact(in, sizeof in - 1);
  assert_int_equal(r.count, 1);
  assert_same_text(r.out.data, r.out.len, want.p, want.n);
  ato_redact_buf_free(&r.out);
}

static void test_text_appends_to_buffer (void **state) {
  ato_redact_buf b = ATO_REDACT_BUF_INIT;
  (void)state;
  assert_int_equal(ato_redact_buf_append(&b, "log: ", 5), 0);
  assert_int_equal(ato_redact_text("plain", 5, &b), 0);
  assert_int_equal(b.len, 10);
  assert_string_equal(b.data, "log: plain");
  ato_redact_buf_free(&b);
  assert_null(b.data);
  assert_int_equal(b.len, 0);
}

/* Allocation failure is sticky and reported; nothing is written after it. */
static void test_allocation_failure (void **state) {
  ato_redact_buf b = ATO_REDACT_BUF_INIT;
  (void)state;
  assert_int_equal(ato_redact_buf_append(&b, "ok", 2), 0);
  assert_int_equal(ato_redact_buf_append(&b, "x", SIZE_MAX), -1);   /* size overflow */
  assert_int_equal(b.oom, 1);
  assert_int_equal(b.len, 2);
  assert_int_equal(ato_redact_text("password=abc", 12, &b), ATO_REDACT_ENOMEM);
  assert_int_equal(ato_redact_value("abc", 3, &b), -1);
  assert_int_equal(b.len, 2);
  ato_redact_buf_free(&b);
  assert_int_equal(b.oom, 0);
  assert_int_equal(ato_redact_value("abc", 3, &b), 0);
  ato_redact_buf_free(&b);
}

/* ---------------------------------------------------------------------- */
/* Adversarial input: 1 MB that must finish (linear time, no timing asserted) */
/* ---------------------------------------------------------------------- */

#define ONE_MB (1u << 20)

static char *repeat (const char *unit, size_t *n) {
  size_t k, u = strlen(unit);
  char *p = malloc(ONE_MB);
  assert_non_null(p);
  for (k = 0; k < ONE_MB; k++)
    p[k] = unit[k % u];
  *n = ONE_MB;
  return p;
}

static void test_adversarial_untouched (void **state) {
  static const char *const units[] = {
    "SG.", "a", "aaa_", "eyJ_", "eyJ-a.", "-----BEGIN ", "-----END PRIVATE KEY-----",
    "a://", "://a:", "Bearer ", "bearer\t", "ghp_", "sk_live_", "xoxb_", "SK",
    "key-", "a:", "a=", "\"", "a\"", "x:y@",
    "https://hooks.slack.com/services/ ", "password==", "token::", "{\"a\":",
    "password={", "auth: null,",
  };
  size_t k, n;
  (void)state;
  for (k = 0; k < sizeof units / sizeof units[0]; k++) {
    char *in = repeat(units[k], &n);
    check_untouched(in, n);
    free(in);
  }
}

/* Inputs that do hold secrets (1 MB of "AKIA" is an AWS key id followed
** by a long tail); they must finish, with a plausible count. */
static void test_adversarial_with_secrets (void **state) {
  static const struct { const char *unit; size_t count; } cases[] = {
    {"password=", 1}, {"token:", 1}, {"xoxb-", 1}, {"github_pat_", 1},
    {"AKIA", 1}, {"AIza_", 1}, {"-----BEGIN PRIVATE KEY-----\n", 1},
    {"https://u:p@", ONE_MB / 12},
    {"\"password\": \"\\", 0},      /* 0: many, count not checked */
  };
  size_t k, n;
  (void)state;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char *in = repeat(cases[k].unit, &n);
    result r = redact(in, n);
    if (cases[k].count > 0)
      assert_int_equal(r.count, cases[k].count);
    else
      assert_true(r.count > 1);
    ato_redact_buf_free(&r.out);
    free(in);
  }
}

/* 1 MB of fragments of every format, shuffled by a seeded generator. */
static void test_adversarial_mixture (void **state) {
  static const char *const parts[] = {
    "SG.", "eyJ", ".", "_", "-", "a", "Z", "9", "://", ":", "@", "=", "\"",
    "'", " ", "\n", "Bearer ", "password", "token", "-----BEGIN ",
    "PRIVATE KEY-----", "-----END ", "ghp_", "AKIA", "xoxb-", "key-", "\\",
  };
  size_t n = 0, nparts = sizeof parts / sizeof parts[0];
  unsigned seed = 4242;
  char *in = malloc(ONE_MB + 64);
  result r;
  (void)state;
  assert_non_null(in);
  while (n < ONE_MB) {
    const char *p;
    seed = seed * 1103515245u + 12345u;
    p = parts[(seed >> 16) % nparts];
    memcpy(in + n, p, strlen(p));
    n += strlen(p);
  }
  r = redact(in, n);
  assert_true(r.count < n);
  ato_redact_buf_free(&r.out);
  free(in);
}

/* ---------------------------------------------------------------------- */
/* ato_redact_value, ato_redact_fingerprint, ato_redact_is_secret_name     */
/* ---------------------------------------------------------------------- */

static void check_value (const char *secret, size_t n, const char *visible, size_t vn) {
  ato_redact_buf b = ATO_REDACT_BUF_INIT;
  text want = {{0}, 0};
  put_redacted(&want, visible, vn, secret, n);
  assert_int_equal(ato_redact_value(secret, n, &b), 0);
  assert_absent(&b, secret, n);
  assert_same_text(b.data, b.len, want.p, want.n);
  ato_redact_buf_free(&b);
}

static void test_value (void **state) {
  simple_format ghp = {"ghp_", 36, 36, ALNUM};
  text sg = sendgrid_key(22, 43, 111), gh = simple_secret(&ghp, 36, 112);
  text generic = random_text(20, ALNUM, 113), short_one = random_text(15, ALNUM, 114);
  text pem = pem_block("EC PRIVATE KEY", 1, 115), utf8 = {{0}, 0};
  (void)state;
  check_value(sg.p, sg.n, sg.p, 7);
  put_str(&gh, "\n");                         /* as read from a file */
  check_value(gh.p, gh.n, gh.p, 8);
  check_value(generic.p, generic.n, generic.p, 4);
  check_value(short_one.p, short_one.n, "", 0);
  check_value(pem.p, pem.n, "-----BEGIN PRIVATE KEY-----", 27);
  put_str(&utf8, "\xC3\xA9t\xC3\xA9-mot-de-passe-long");
  check_value(utf8.p, utf8.n, "", 0);        /* never cut a UTF-8 sequence */
  check_value("", 0, "", 0);
  check_value("Bearer abcdefgh12345678", 23, "Bear", 4);   /* no context in value() */
}

/* value() of an already redacted value gives it back unchanged (a log field
   named "secret" holding a finding's redacted form must not be re-hashed). */
static void test_value_idempotent (void **state) {
  text sg = sendgrid_key(22, 43, 131);
  ato_redact_buf once = ATO_REDACT_BUF_INIT, twice = ATO_REDACT_BUF_INIT;
  (void)state;
  assert_int_equal(ato_redact_value(sg.p, sg.n, &once), 0);
  assert_int_equal(ato_redact_value(once.data, once.len, &twice), 0);
  assert_int_equal(once.len, twice.len);
  assert_memory_equal(once.data, twice.data, once.len);
  ato_redact_buf_free(&once);
  ato_redact_buf_free(&twice);
}

static void test_fingerprint (void **state) {
  char fp[9], hex[65];
  text key = sendgrid_key(22, 43, 121);
  (void)state;
  ato_redact_fingerprint(key.p, key.n, fp);
  ato_sha256_hex(key.p, key.n, hex);
  assert_int_equal(strlen(fp), 8);
  assert_memory_equal(fp, hex, 8);
  ato_redact_fingerprint("abc", 3, fp);
  assert_string_equal(fp, "ba7816bf");
}

static void test_is_secret_name (void **state) {
  static const char *const secret[] = {
    "password", "PASSWORD", "passwd", "pwd", "db_pass", "DB_PASS2", "passphrase",
    "api_key", "apiKey", "APIKey", "apikey", "SENDGRID_API_KEY", "x-api-key",
    "api_keys", "authorization", "Proxy-Authorization", "auth", "oauth_token",
    "token", "accessToken", "refresh_token", "csrftoken", "secret",
    "client_secret", "clientSecret", "private_key", "privateKey", "cookie",
    "set-cookie", "Cookie", "session", "session_id", "JSESSIONID", "PHPSESSID",
    "laravel_session", "credentials", "aws_secret_access_key", "secret_id",
    "password_confirmation", "token2", "db.password", "tokens",
  };
  static const char *const not_secret[] = {
    "", "_", "123", "name", "author", "keyboard", "monkey", "key", "key_id",
    "api_key_id", "apiKeyId", "AWS_ACCESS_KEY_ID", "tokens_count", "token_type",
    "token_expires_at", "password_file", "passwordless", "bypass", "compass",
    "session_timeout", "secretary", "authenticated", "tokenizer", "cookie_name",
    "client_id", "username", "auth_method",
  };
  size_t k;
  (void)state;
  for (k = 0; k < sizeof secret / sizeof secret[0]; k++)
    if (!ato_redact_is_secret_name(secret[k], strlen(secret[k])))
      fail_msg("\"%s\" should be a secret name", secret[k]);
  for (k = 0; k < sizeof not_secret / sizeof not_secret[0]; k++)
    if (ato_redact_is_secret_name(not_secret[k], strlen(not_secret[k])))
      fail_msg("\"%s\" should not be a secret name", not_secret[k]);
  assert_true(ato_redact_is_secret_name("token\0junk", 5));
}

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_simple_formats_redacted),
    cmocka_unit_test(test_tail_after_match_is_redacted),
    cmocka_unit_test(test_simple_formats_too_short),
    cmocka_unit_test(test_simple_formats_broken_body),
    cmocka_unit_test(test_simple_formats_inside_word),
    cmocka_unit_test(test_wrong_charset),
    cmocka_unit_test(test_monkey_is_not_mailgun),
    cmocka_unit_test(test_sendgrid),
    cmocka_unit_test(test_sendgrid_near_misses),
    cmocka_unit_test(test_jwt),
    cmocka_unit_test(test_jwt_near_misses),
    cmocka_unit_test(test_pem_private_keys),
    cmocka_unit_test(test_pem_without_end),
    cmocka_unit_test(test_pem_public_material_untouched),
    cmocka_unit_test(test_slack_webhook),
    cmocka_unit_test(test_slack_webhook_without_path),
    cmocka_unit_test(test_bearer_and_basic),
    cmocka_unit_test(test_bearer_near_misses),
    cmocka_unit_test(test_url_password),
    cmocka_unit_test(test_url_token_as_user),
    cmocka_unit_test(test_url_near_misses),
    cmocka_unit_test(test_assignments),
    cmocka_unit_test(test_assignment_auth_scheme),
    cmocka_unit_test(test_assignment_with_known_format),
    cmocka_unit_test(test_assignment_non_secrets),
    cmocka_unit_test(test_env_file_with_several_secrets),
    cmocka_unit_test(test_empty_input),
    cmocka_unit_test(test_nul_bytes_are_data),
    cmocka_unit_test(test_text_appends_to_buffer),
    cmocka_unit_test(test_allocation_failure),
    cmocka_unit_test(test_adversarial_untouched),
    cmocka_unit_test(test_adversarial_with_secrets),
    cmocka_unit_test(test_adversarial_mixture),
    cmocka_unit_test(test_value),
    cmocka_unit_test(test_value_idempotent),
    cmocka_unit_test(test_fingerprint),
    cmocka_unit_test(test_is_secret_name),
  };
  return cmocka_run_group_tests_name("redact", tests, NULL, NULL);
}

/*
** test_scan_engine.c: the scanning engine with a small realistic rule set
** (SendGrid, GitHub with its checksum, AWS key id, PEM private key, a
** generic password assignment, a generic API token whose lookahead needs
** prefilter mode). Secrets are generated with a fixed-seed PRNG; the rule
** examples hide their prefixes behind \x escapes. Findings are checked by
** offsets, never printed.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scan.h"

static const char RULES[] =
  "[sendgrid-api-key]\n"
  "name = SendGrid API key\n"
  "provider = sendgrid\n"
  "severity = critical\n"
  "pattern = (?<![\\w.-])(SG\\.[\\w-]{22}\\.[\\w-]{43})(?![\\w-])\n"
  "prefilter = yes\n"
  "entropy = 4.0\n"
  "example = SENDGRID_API_KEY=SG\\x2edw18ZoL2dfjx1_xWTIqw0g.rbXxgXdxS7p_LuzZHyir4m7OBEj_RFLK6Ka7usuRSxC\n"
  "example = \"SG\\x2e-O8atBooY8KPdTylqMvoHS.4WtMEcMUOXxkmcv6UpDVf2WybhnyJku4t1nb-5j6ooJ\",\n"
  "negative = SG.short.key\n"
  "negative = xSG\\x2edw18ZoL2dfjx1_xWTIqw0g.rbXxgXdxS7p_LuzZHyir4m7OBEj_RFLK6Ka7usuRSxC\n"
  "\n"
  "[github-token]\n"
  "name = GitHub token\n"
  "provider = github\n"
  "severity = high\n"
  "pattern = \\b(gh[pousr]_[A-Za-z0-9]{36})\\b\n"
  "validator = github_crc32\n"
  "example = token=gh\\x70_7TQUoGbwsFRKCzRYOs4MQvIqsaWL380yavFU\n"
  "example = gh\\x6f_fujbG8vyWvJbiZ4uuffNG2QbatDT3b4Gor9U\n"
  "negative = gh\\x70_7TQUoGbwsFRKCzRYOs4MQvIqsaWL380yavFV\n"
  "negative = ghp_short\n"
  "\n"
  "[aws-access-key-id]\n"
  "name = AWS access key id\n"
  "provider = aws\n"
  "severity = high\n"
  "pattern = \\b((?:AKIA|ASIA)[0-9A-Z]{16})\\b\n"
  "example = aws_access_key_id = AKI\\x41JTMKOFVM3OB4ZO6L\n"
  "example = \"AKI\\x41YBD6QTTMTF7ULDS4\",\n"
  "negative = AKIA1234\n"
  "negative = AKI\\x41JTMKOFVM3OB4ZO6LX\n"
  "\n"
  "[private-key-pem]\n"
  "name = Private key (PEM)\n"
  "provider = generic\n"
  "severity = critical\n"
  "pattern = (-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----[\\s\\S]*?"
            "-----END (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----)\n"
  "window = 8192\n"
  "example = -----BEGIN RSA PRIVATE KEY\\x2d----\\nMIIEowIBAAKCAQEA7vQ3k9Zp2Lx8\\n-----END RSA PRIVATE KEY-----\n"
  "example = -----BEGIN PRIVATE KEY\\x2d----\\r\\nMC4CAQAwBQYDK2VwBCIEIJ5y\\r\\n-----END PRIVATE KEY-----\n"
  "negative = -----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZI\\n-----END PUBLIC KEY-----\n"
  "negative = -----BEGIN RSA PRIVATE KEY-----\\nno end marker\n"
  "\n"
  "[generic-password]\n"
  "name = Password assignment\n"
  "provider = generic\n"
  "severity = medium\n"
  "pattern = (?i)\\b(?:password|passwd|pwd|secret)\\s*[:=]\\s*[\"']([^\"'\\s]{8,64})[\"']\n"
  "entropy = 3.0\n"
  "example = password = \"Tr0ub4dor&3x!Q\"\n"
  "example = db.secret: 'k9$Lm2#pQ7zW'\n"
  "negative = password = \"aaaabbbb\"\n"
  "negative = password = \"changeme-now\"\n"
  "\n"
  "[generic-api-token]\n"
  "name = Generic API token\n"
  "provider = generic\n"
  "severity = medium\n"
  "pattern = (?i)\\b(?:api[_-]?key|token)[ \\t]*[:=][ \\t]*[\"']?(?=[a-z]*[0-9])"
            "([a-z0-9]{32,40})(?![a-z0-9])\n"
  "prefilter = yes\n"
  "entropy = 3.5\n"
  "example = api_key = \"u9gkbipdv49rbh39i4805hu9cc5k9sb0olp1\"\n"
  "example = TOKEN: 6yu6p872wtv43qsrlb1cuy68t1y4krmt7j74\n"
  "negative = token = abcdefghijklmnopqrstuvwxyzabcdefgh\n"
  "negative = api_key = u9gkbipdv49rbh39i4805hu9cc5k9sb0olp1x2y3z\n";

enum { R_SG, R_GH, R_AWS, R_PEM, R_PWD, R_TOKEN };

static char err[512];

/* {====================================================== fixtures */

static void load_rules (scan_ruleset *rs, const char *text) {
  scan_rules_init(rs);
  if (scan_rules_parse(rs, text, strlen(text), "test.rules", err, sizeof err) != 0)
    fail_msg("rules: %s", err);
}

static scan_engine *new_engine (const char *text, const char *cache_dir) {
  scan_ruleset rs;
  scan_engine *e;
  load_rules(&rs, text);
  e = scan_engine_new(&rs, cache_dir, err, sizeof err);
  scan_rules_free(&rs);
  if (e == NULL) fail_msg("engine: %s", err);
  return e;
}

static scan_engine *engine;       /* the shared engine of most tests */
static scan_ctx *ctx;

static int setup (void **state) {
  (void)state;
  engine = new_engine(RULES, NULL);
  ctx = scan_ctx_new(engine);
  return ctx == NULL ? -1 : 0;
}

static int teardown (void **state) {
  (void)state;
  scan_ctx_free(ctx);
  scan_engine_free(engine);
  return 0;
}

/* }====================================================== */

/* {====================================================== collecting */

typedef struct found {
  size_t rule, start, end, mstart, mend, line, column, line_start, line_end;
} found;

typedef struct results {
  found *f;
  size_t n, cap;
  size_t stop_after;              /* 0: never stop */
} results;

/* Records a hit and checks what every hit must satisfy. */
static int collect (void *ud, const scan_hit *h, const char *data, size_t len) {
  results *r = ud;
  found *f;
  size_t i, line = 1, ls = 0;
  assert_true(h->start < h->end && h->end <= len);
  assert_true(h->match_start <= h->start && h->end <= h->match_end);
  assert_true(h->match_end <= len);
  assert_true(h->line_start <= h->start && h->start <= h->line_end);
  assert_true(h->line_end == len || data[h->line_end] == '\n');
  assert_int_equal(h->column, h->start - h->line_start + 1);
  if (r->n > 0) {
    const found *p = &r->f[r->n - 1];
    assert_true(p->start < h->start || (p->start == h->start &&
                (p->end < h->end || (p->end == h->end && p->rule < h->rule))));
  }
  if (len < (1u << 16)) {          /* line numbers from scratch, small inputs */
    for (i = 0; i < h->start; i++)
      if (data[i] == '\n') { line++; ls = i + 1; }
    assert_int_equal(h->line, line);
    assert_int_equal(h->line_start, ls);
  }
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->f = realloc(r->f, r->cap * sizeof *r->f);
    assert_non_null(r->f);
  }
  f = &r->f[r->n++];
  f->rule = h->rule; f->start = h->start; f->end = h->end;
  f->mstart = h->match_start; f->mend = h->match_end;
  f->line = h->line; f->column = h->column;
  f->line_start = h->line_start; f->line_end = h->line_end;
  return r->stop_after != 0 && r->n == r->stop_after;
}

static void results_free (results *r) {
  free(r->f);
  memset(r, 0, sizeof *r);
}

static results scan_with (scan_ctx *c, const char *data, size_t len,
                          int no_validators) {
  results r;
  scan_options opt;
  memset(&r, 0, sizeof r);
  opt.no_validators = no_validators;
  assert_int_equal(scan_buffer(c, data, len, &opt, collect, &r), 0);
  return r;
}

static results scan_str (const char *s) {
  return scan_with(ctx, s, strlen(s), 0);
}

static size_t count_str (const char *s, int no_validators) {
  results r = scan_with(ctx, s, strlen(s), no_validators);
  size_t n = r.n;
  results_free(&r);
  return n;
}

static void expect_hit (const results *r, size_t i, size_t rule, size_t start,
                        size_t end, size_t line, size_t column) {
  assert_true(i < r->n);
  assert_int_equal(r->f[i].rule, rule);
  assert_int_equal(r->f[i].start, start);
  assert_int_equal(r->f[i].end, end);
  assert_int_equal(r->f[i].line, line);
  assert_int_equal(r->f[i].column, column);
}

/* }====================================================== */

/* {====================================================== fake secrets */

static uint32_t next_rand (uint32_t *x) {
  *x ^= *x << 13; *x ^= *x >> 17; *x ^= *x << 5;
  return *x;
}

static void random_chars (char *out, size_t n, const char *alphabet, uint32_t *x) {
  size_t k = strlen(alphabet), i;
  for (i = 0; i < n; i++) out[i] = alphabet[next_rand(x) % k];
}

static const char ALNUM[] =
  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char URLSAFE[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/* A segment is usable when a validator would not reject it by accident. */
static int plausible (const char *s, size_t n) {
  return !scan_is_placeholder(s, n) && scan_entropy(s, n) >= 4.0;
}

#define SG_LEN 69
static void make_sg (char out[SG_LEN + 1], uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  do {
    memcpy(out, "SG.", 3);
    random_chars(out + 3, 22, URLSAFE, &x);
    out[25] = '.';
    random_chars(out + 26, 43, URLSAFE, &x);
  } while (!plausible(out, SG_LEN) || out[3] == '-' || out[SG_LEN - 1] == '-');
  out[SG_LEN] = '\0';
}

static uint32_t crc32_bits (const char *s, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  size_t i;
  int k;
  for (i = 0; i < n; i++) {
    crc ^= (unsigned char)s[i];
    for (k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

#define GH_LEN 40
static void make_gh (char out[GH_LEN + 1], uint32_t seed) {
  uint32_t x = seed * 2246822519u + 3, crc;
  int i;
  do {
    memcpy(out, "ghp_", 4);
    random_chars(out + 4, 30, ALNUM, &x);
    crc = crc32_bits(out + 4, 30);
    for (i = 39; i >= 34; i--) { out[i] = ALNUM[crc % 62]; crc /= 62; }
  } while (!plausible(out, GH_LEN));
  out[GH_LEN] = '\0';
}

#define AWS_LEN 20
static void make_aws (char out[AWS_LEN + 1], uint32_t seed) {
  uint32_t x = seed * 3266489917u + 5;
  do {
    memcpy(out, "AKIA", 4);
    random_chars(out + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", &x);
  } while (scan_is_placeholder(out, AWS_LEN));
  out[AWS_LEN] = '\0';
}

#define TOKEN_LEN 36
static void make_token (char out[TOKEN_LEN + 1], uint32_t seed) {
  uint32_t x = seed * 668265263u + 7;
  do random_chars(out, TOKEN_LEN, "abcdefghijklmnopqrstuvwxyz0123456789", &x);
  while (!plausible(out, TOKEN_LEN) || strpbrk(out, "0123456789") == NULL);
  out[TOKEN_LEN] = '\0';
}

/* A PEM block of `lines` base64 lines; returns its length (no final \n). */
static size_t make_pem (char *out, int lines, uint32_t seed) {
  static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint32_t x = seed * 374761393u + 11;
  size_t n = (size_t)sprintf(out, "-----BEGIN RSA PRIVATE KEY-----\n");
  int i;
  for (i = 0; i < lines; i++) {
    do random_chars(out + n, 64, B64, &x);
    while (scan_is_placeholder(out + n, 64));
    n += 64;
    out[n++] = '\n';
  }
  n += (size_t)sprintf(out + n, "-----END RSA PRIVATE KEY-----");
  return n;
}

/* A growable buffer that remembers where pieces went. */
typedef struct buf { char *s; size_t n, cap; } buf;

static size_t put (buf *b, const char *s, size_t n) {
  size_t at = b->n;
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->s = realloc(b->s, b->cap);
    assert_non_null(b->s);
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
  return at;
}

static size_t puts_ (buf *b, const char *s) { return put(b, s, strlen(s)); }

/* }====================================================== */

/* {====================================================== findings */

static void test_single_finding (void **state) {
  char sg[SG_LEN + 1], text[128];
  results r;
  (void)state;
  make_sg(sg, 1);
  snprintf(text, sizeof text, "key: %s\n", sg);
  r = scan_str(text);
  assert_int_equal(r.n, 1);
  expect_hit(&r, 0, R_SG, 5, 5 + SG_LEN, 1, 6);
  assert_int_equal(r.f[0].mstart, 5);
  assert_int_equal(r.f[0].mend, 5 + SG_LEN);
  assert_int_equal(r.f[0].line_start, 0);
  assert_int_equal(r.f[0].line_end, 5 + SG_LEN);
  results_free(&r);
}

static void test_several_on_lines (void **state) {
  char sg[SG_LEN + 1], sg2[SG_LEN + 1], gh[GH_LEN + 1], aws[AWS_LEN + 1];
  char tok[TOKEN_LEN + 1];
  size_t at_sg, at_gh, at_aws, at_sg2, at_tok, at_pw, line3;
  buf b = { 0 };
  results r;
  (void)state;
  make_sg(sg, 2); make_sg(sg2, 3); make_gh(gh, 4); make_aws(aws, 5); make_token(tok, 6);
  puts_(&b, "a=");
  at_sg = puts_(&b, sg);
  puts_(&b, " b=");
  at_gh = puts_(&b, gh);
  puts_(&b, "\n\n");
  line3 = puts_(&b, "c=");
  at_aws = puts_(&b, aws);
  puts_(&b, " ");
  at_sg2 = puts_(&b, sg2);
  puts_(&b, " token: ");
  at_tok = puts_(&b, tok);
  puts_(&b, "\n\tpassword: \"");
  at_pw = puts_(&b, "Zq8#mW2$kR5!");
  puts_(&b, "\"\n");
  r = scan_with(ctx, b.s, b.n, 0);
  assert_int_equal(r.n, 6);
  expect_hit(&r, 0, R_SG, at_sg, at_sg + SG_LEN, 1, 3);
  expect_hit(&r, 1, R_GH, at_gh, at_gh + GH_LEN, 1, at_gh + 1);
  expect_hit(&r, 2, R_AWS, at_aws, at_aws + AWS_LEN, 3, 3);
  expect_hit(&r, 3, R_SG, at_sg2, at_sg2 + SG_LEN, 3, at_sg2 - line3 + 1);
  expect_hit(&r, 4, R_TOKEN, at_tok, at_tok + TOKEN_LEN, 3, at_tok - line3 + 1);
  assert_int_equal(r.f[4].mstart, at_tok - strlen("token: "));
  expect_hit(&r, 5, R_PWD, at_pw, at_pw + 12, 4, 13);
  assert_int_equal(r.f[5].mstart, at_pw - strlen("password: \""));
  assert_int_equal(r.f[5].mend, at_pw + 13);
  assert_int_equal(r.f[0].line_end, at_gh + GH_LEN);
  assert_int_equal(r.f[2].line_start, line3);
  results_free(&r);
  free(b.s);
}

static void test_buffer_start_and_end (void **state) {
  char sg[SG_LEN + 1], gh[GH_LEN + 1], aws[AWS_LEN + 1], text[128];
  results r;
  (void)state;
  make_sg(sg, 7); make_gh(gh, 8); make_aws(aws, 9);
  r = scan_with(ctx, sg, SG_LEN, 0);           /* the whole buffer */
  assert_int_equal(r.n, 1);
  expect_hit(&r, 0, R_SG, 0, SG_LEN, 1, 1);
  assert_int_equal(r.f[0].line_end, SG_LEN);
  results_free(&r);
  snprintf(text, sizeof text, "%s %s", gh, aws);  /* no final newline */
  r = scan_str(text);
  assert_int_equal(r.n, 2);
  expect_hit(&r, 0, R_GH, 0, GH_LEN, 1, 1);
  expect_hit(&r, 1, R_AWS, GH_LEN + 1, GH_LEN + 1 + AWS_LEN, 1, GH_LEN + 2);
  results_free(&r);
}

static void test_adjacent_and_many (void **state) {
  char gh[GH_LEN + 1], sg[SG_LEN + 1];
  buf b = { 0 };
  size_t i, *at = malloc(2000 * sizeof *at);
  results r;
  (void)state;
  /* 1000 tokens one separator apart: far denser than a window, none lost */
  for (i = 0; i < 2000; i++) {
    if (i % 2 == 0) { make_gh(gh, 100 + (uint32_t)i); at[i] = puts_(&b, gh); }
    else { make_sg(sg, 100 + (uint32_t)i); at[i] = puts_(&b, sg); }
    puts_(&b, i % 7 == 6 ? "\n" : " ");
  }
  r = scan_with(ctx, b.s, b.n, 0);
  assert_int_equal(r.n, 2000);
  for (i = 0; i < 2000; i++) {
    assert_int_equal(r.f[i].start, at[i]);
    assert_int_equal(r.f[i].rule, i % 2 == 0 ? R_GH : R_SG);
    assert_int_equal(r.f[i].line, i / 7 + 1);
  }
  results_free(&r);
  free(b.s);
  free(at);
}

static void test_near_misses (void **state) {
  char sg[SG_LEN + 1], gh[GH_LEN + 1], aws[AWS_LEN + 1], text[256];
  char pem[4096];
  size_t n;
  (void)state;
  make_sg(sg, 10); make_gh(gh, 11); make_aws(aws, 12);
  /* SendGrid: a short middle part, one char too many, glued to a word */
  snprintf(text, sizeof text, "%.24s%s", sg, sg + 25);
  assert_int_equal(count_str(text, 1), 0);
  snprintf(text, sizeof text, "%sx", sg);
  assert_int_equal(count_str(text, 1), 0);
  snprintf(text, sizeof text, "x%s", sg);
  assert_int_equal(count_str(text, 1), 0);
  snprintf(text, sizeof text, ".%s", sg);
  assert_int_equal(count_str(text, 1), 0);
  /* GitHub: a wrong checksum is a regex match only */
  snprintf(text, sizeof text, "%s", gh);
  text[20] = text[20] == 'a' ? 'b' : 'a';
  assert_int_equal(count_str(text, 0), 0);
  assert_int_equal(count_str(text, 1), 1);
  snprintf(text, sizeof text, "ghx_%s", gh + 4);
  assert_int_equal(count_str(text, 1), 0);
  /* AWS: lowercase, short, long */
  snprintf(text, sizeof text, "akia%s", aws + 4);
  assert_int_equal(count_str(text, 1), 0);
  snprintf(text, sizeof text, "%.19s", aws);
  assert_int_equal(count_str(text, 1), 0);
  snprintf(text, sizeof text, "%sQ", aws);
  assert_int_equal(count_str(text, 1), 0);
  /* PEM: no END, or a public key */
  n = make_pem(pem, 3, 1);
  pem[n - 10] = '\0';
  assert_int_equal(count_str(pem, 1), 0);
  assert_int_equal(count_str("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQ\n-----END PUBLIC KEY-----", 1), 0);
  /* assignments */
  assert_int_equal(count_str("password = \"short\"", 1), 0);
  assert_int_equal(count_str("passwords = \"Zq8#mW2$kR5!\"", 1), 0);
  assert_int_equal(count_str("mypassword = \"Zq8#mW2$kR5!\"", 1), 0);
  assert_int_equal(count_str("token = qwertyuiopasdfghjklzxcvbnmqwertyu", 1), 0);  /* no digit */
  assert_int_equal(count_str("token = q1ertyuiopasdfghjklzxcvbnmqwertyuiopasdfg", 1), 0); /* 41 */
  assert_int_equal(count_str("", 1), 0);
}

static void test_pem_block (void **state) {
  static char pem[8192];
  size_t n = make_pem(pem, 25, 2), at, line = 1, i;
  buf b = { 0 };
  results r;
  (void)state;
  for (i = 0; i < 200; i++) {                      /* ~10 KiB before it */
    puts_(&b, "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n");
    line++;
  }
  puts_(&b, "key:\n");
  line++;
  at = put(&b, pem, n);
  puts_(&b, "\nmore text after the key\n");
  r = scan_with(ctx, b.s, b.n, 0);
  assert_int_equal(r.n, 1);
  expect_hit(&r, 0, R_PEM, at, at + n, line, 1);
  assert_int_equal(r.f[0].line_end, at + strlen("-----BEGIN RSA PRIVATE KEY-----"));
  results_free(&r);
  /* two blocks back to back stay two findings */
  b.n = 0;
  at = put(&b, pem, n);
  puts_(&b, "\n");
  i = put(&b, pem, n);
  r = scan_with(ctx, b.s, b.n, 0);
  assert_int_equal(r.n, 2);
  expect_hit(&r, 0, R_PEM, at, at + n, 1, 1);
  expect_hit(&r, 1, R_PEM, i, i + n, 28, 1);
  results_free(&r);
  free(b.s);
}

/* Unbounded rules try a short window first: long matches must still be
   found — alone, first in a run of two ends, spanning lines, or with
   others in a longer run. */
static size_t put_long_password (buf *b, size_t spaces) {
  size_t i;
  puts_(b, "password");
  for (i = 0; i < spaces; i++) puts_(b, " ");
  puts_(b, "= \"");
  i = puts_(b, "Zq8#mW2$kR5!");
  puts_(b, "\"\n");
  return i;
}

static void test_long_matches_in_unbounded_rules (void **state) {
  buf b = { 0 };
  size_t at1, at2, at3, i;
  results r;
  (void)state;
  at1 = put_long_password(&b, 300);                 /* alone */
  r = scan_with(ctx, b.s, b.n, 0);
  assert_int_equal(r.n, 1);
  expect_hit(&r, 0, R_PWD, at1, at1 + 12, 1, at1 + 1);
  assert_int_equal(r.f[0].mstart, 0);
  results_free(&r);

  puts_(&b, "pwd = '");                             /* then a short one */
  at2 = puts_(&b, "Xk4%nB7&pL2?");
  puts_(&b, "'\n");
  r = scan_with(ctx, b.s, b.n, 0);
  assert_int_equal(r.n, 2);
  expect_hit(&r, 0, R_PWD, at1, at1 + 12, 1, at1 + 1);
  expect_hit(&r, 1, R_PWD, at2, at2 + 12, 2, 8);
  results_free(&r);

  b.n = 0;                                          /* over 50 lines */
  puts_(&b, "secret:\n");
  for (i = 0; i < 50; i++) puts_(&b, "\t\t\t\t\t\t\t\t\n");
  puts_(&b, "  \"");
  at3 = puts_(&b, "Vm9#qT3!zR8$");
  puts_(&b, "\"\n");
  r = scan_with(ctx, b.s, b.n, 0);
  assert_int_equal(r.n, 1);
  expect_hit(&r, 0, R_PWD, at3, at3 + 12, 52, 4);
  assert_int_equal(r.f[0].mstart, 0);
  results_free(&r);

  b.n = 0;                                          /* a run of three */
  at1 = put_long_password(&b, 300);
  at2 = put_long_password(&b, 1);
  at3 = put_long_password(&b, 500);
  r = scan_with(ctx, b.s, b.n, 0);
  assert_int_equal(r.n, 3);
  expect_hit(&r, 0, R_PWD, at1, at1 + 12, 1, at1 + 1);
  expect_hit(&r, 1, R_PWD, at2, at2 + 12, 2, 13);
  expect_hit(&r, 2, R_PWD, at3, at3 + 12, 3, 512);
  results_free(&r);
  free(b.s);
}

static void test_allow_comment (void **state) {
  char sg[SG_LEN + 1], text[256], pem[4096];
  size_t n;
  results r;
  (void)state;
  make_sg(sg, 13);
  snprintf(text, sizeof text, "k = %s  # ato:allow", sg);
  assert_int_equal(count_str(text, 0), 0);
  assert_int_equal(count_str(text, 1), 0);         /* not a validator */
  snprintf(text, sizeof text, "/* ato:allow */ k = %s", sg);
  assert_int_equal(count_str(text, 0), 0);
  snprintf(text, sizeof text, "# ato:allow\nk = %s\n", sg);
  assert_int_equal(count_str(text, 0), 1);
  snprintf(text, sizeof text, "k = %s\n# ato:allow\n", sg);
  assert_int_equal(count_str(text, 0), 1);
  snprintf(text, sizeof text, "k = %s # ato:allo", sg);
  assert_int_equal(count_str(text, 0), 1);
  snprintf(text, sizeof text, "a = %s\nb = %s # ato:allow\nc = %s\n", sg, sg, sg);
  r = scan_str(text);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.f[0].line, 1);
  assert_int_equal(r.f[1].line, 3);
  results_free(&r);
  /* a secret spanning lines is allowed from any line it touches */
  n = make_pem(pem, 3, 3);
  memcpy(pem + n, " ato:allow", 11);
  assert_int_equal(count_str(pem, 0), 0);
  pem[n] = '\0';
  assert_int_equal(count_str(pem, 0), 1);
}

static void test_entropy_and_placeholders (void **state) {
  char sg[SG_LEN + 1];
  (void)state;
  assert_int_equal(count_str("password = \"Zq8#mW2$kR5!\"", 0), 1);
  assert_int_equal(count_str("password = \"aaaabbbb\"", 0), 0);     /* 1 bit */
  assert_int_equal(count_str("password = \"aaaabbbb\"", 1), 1);
  assert_int_equal(count_str("password = \"ab12ab12ab12\"", 0), 0); /* 2 bits < 3 */
  assert_int_equal(count_str("password = \"EXAMPLE-pass-1\"", 0), 0);
  assert_int_equal(count_str("password = \"EXAMPLE-pass-1\"", 1), 1);
  assert_int_equal(count_str("PWD: 'hunter2hunter2'", 0), 0);     /* 2.8 bits */
  assert_int_equal(count_str("PWD: 'hunter2hunter2'", 1), 1);
  /* a low-entropy SendGrid-shaped key */
  memcpy(sg, "SG.", 3);
  memset(sg + 3, 'a', 22);
  sg[3] = 'b'; sg[4] = 'c';
  sg[25] = '.';
  memset(sg + 26, 'c', 43);
  sg[26] = 'd'; sg[27] = 'e';
  sg[SG_LEN] = '\0';
  assert_int_equal(count_str(sg, 0), 0);
  assert_int_equal(count_str(sg, 1), 1);
}

static void test_examples_and_negatives (void **state) {
  size_t i, j, k;
  (void)state;
  for (i = 0; i < scan_engine_nrules(engine); i++) {
    const scan_rule *rule = scan_engine_rule(engine, i);
    for (j = 0; j < rule->nexamples + rule->nnegatives; j++) {
      int example = j < rule->nexamples;
      const scan_text *t = example ? &rule->examples[j] : &rule->negatives[j - rule->nexamples];
      results r = scan_with(ctx, t->data, t->len, 0);
      size_t mine = 0;
      for (k = 0; k < r.n; k++) mine += r.f[k].rule == i;
      if (example ? mine == 0 : mine != 0)
        fail_msg("rule %s: %s %zu", rule->id, example ? "example" : "negative",
                 example ? j + 1 : j - rule->nexamples + 1);
      results_free(&r);
    }
  }
  assert_null(scan_engine_rule(engine, scan_engine_nrules(engine)));
}

static int stop_at_second (void *ud, const scan_hit *h, const char *d, size_t n) {
  int *count = ud;
  (void)h; (void)d; (void)n;
  return ++*count == 2;
}

static void test_emit_stops (void **state) {
  char sg[SG_LEN + 1], text[512];
  int count = 0;
  (void)state;
  make_sg(sg, 14);
  snprintf(text, sizeof text, "%s\n%s\n%s\n", sg, sg, sg);
  assert_int_equal(scan_buffer(ctx, text, strlen(text), NULL, stop_at_second, &count), 1);
  assert_int_equal(count, 2);
  /* the ctx is fine afterwards */
  assert_int_equal(count_str(text, 0), 3);
  assert_int_equal(scan_buffer(ctx, text, strlen(text), NULL, NULL, NULL), 0);
}

/* }====================================================== */

/* {====================================================== adversarial input */

#define DENSE (10u << 20)

static void fill_pattern (char *s, size_t n, const char *unit) {
  size_t k = strlen(unit), i;
  for (i = 0; i < n; i++) s[i] = unit[i % k];
}

static void test_dense_inputs (void **state) {
  char *s = malloc(DENSE);
  uint32_t x = 99;
  (void)state;
  assert_non_null(s);
  memset(s, 'a', DENSE);
  assert_int_equal(scan_with(ctx, s, DENSE, 0).n, 0);
  fill_pattern(s, DENSE, "SG.");
  assert_int_equal(scan_with(ctx, s, DENSE, 0).n, 0);
  fill_pattern(s, DENSE, ALNUM);
  assert_int_equal(scan_with(ctx, s, DENSE, 0).n, 0);
  random_chars(s, DENSE, ALNUM, &x);
  assert_int_equal(scan_with(ctx, s, DENSE, 0).n, 0);
  fill_pattern(s, DENSE, "password=\"");
  assert_int_equal(scan_with(ctx, s, DENSE, 0).n, 0);
  fill_pattern(s, DENSE, "-----BEGIN RSA PRIVATE KEY-----\n");
  assert_int_equal(scan_with(ctx, s, DENSE, 0).n, 0);
  free(s);
}

/* The thinning case from the design: every byte ends a match. */
static const char DENSE_RULES[] =
  "[alnum-run]\nname = n\nprovider = p\nseverity = low\n"
  "pattern = ([A-Za-z0-9]{20,40})\n"
  "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n"
  "[alnum-word]\nname = n\nprovider = p\nseverity = low\n"
  "pattern = (?<![A-Za-z0-9])([A-Za-z0-9]{20,40})(?![A-Za-z0-9])\nprefilter = yes\n"
  "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n";

static void test_dense_thinning (void **state) {
  scan_engine *e = new_engine(DENSE_RULES, NULL);
  scan_ctx *c = scan_ctx_new(e);
  char *s = malloc(DENSE);
  results r;
  size_t i;
  uint32_t x = 5;
  (void)state;
  assert_non_null(c);
  assert_non_null(s);
  memset(s, 'a', DENSE);
  assert_int_equal(scan_with(c, s, DENSE, 0).n, 0);     /* all placeholders */
  r = scan_with(c, s, DENSE, 1);
  /* greedy, back to back, none lost or repeated; no alnum-word match */
  assert_int_equal(r.n, DENSE / 40);
  for (i = 0; i < r.n; i++) {
    assert_int_equal(r.f[i].start, 40 * i);
    assert_int_equal(r.f[i].end, 40 * i + 40);
    assert_int_equal(r.f[i].rule, 0);
  }
  results_free(&r);
  random_chars(s, DENSE, ALNUM, &x);
  r = scan_with(c, s, DENSE, 1);
  assert_int_equal(r.n, DENSE / 40);
  results_free(&r);
  /* words of 30 between spaces: both rules, each word once */
  for (i = 0; i < DENSE; i++) s[i] = i % 31 == 30 ? ' ' : ALNUM[(i * 7 + i / 31) % 62];
  r = scan_with(c, s, DENSE, 1);
  assert_int_equal(r.n, 2 * ((DENSE + 1) / 31));
  results_free(&r);
  free(s);
  scan_ctx_free(c);
  scan_engine_free(e);
}

static void test_random_bytes (void **state) {
  size_t n = 1u << 20, i;
  char *s = malloc(n);
  uint32_t x = 12345;
  results r;
  (void)state;
  assert_non_null(s);
  for (i = 0; i < n; i++) s[i] = (char)(next_rand(&x) & 0xff);
  r = scan_with(ctx, s, n, 0);
  assert_int_equal(r.n, 0);
  results_free(&r);
  r = scan_with(ctx, s, n, 1);
  assert_int_equal(r.n, 0);
  results_free(&r);
  free(s);
}

/* }====================================================== */

/* {====================================================== engines */

/*
** Triggers: vectorscan runs the trigger, PCRE2 confirms the pattern around
** each trigger match. Two rules share one trigger (each still finds its
** own matches); the secret lies far after the trigger (the window is the
** pattern's width); a trigger that does not lie inside the pattern's
** matches finds nothing, which is why --check-rules runs the examples.
*/
static const char TRIGGER_RULES[] =
  "[kv-secret]\nname = n\nprovider = p\nseverity = low\n"
  "pattern = ^[a-z_]{0,40}(?:secret|token)[a-z_]{0,40}=([A-Za-z0-9]{10,300})$\n"
  "trigger = (?:secret|token)\n"
  "example = x\nexample = y\nnegative = z\nnegative = w\n\n"
  "[json-secret]\nname = n\nprovider = p\nseverity = low\n"
  "pattern = \"[a-z_]{0,40}(?:secret|token)[a-z_]{0,40}\": \"([A-Za-z0-9]{10,300})\"\n"
  "trigger = (?:secret|token)\n"
  "example = x\nexample = y\nnegative = z\nnegative = w\n\n"
  "[off-target]\nname = n\nprovider = p\nseverity = low\n"
  "pattern = (XYZ[0-9]{12})\n"
  "trigger = nowhere\n"
  "example = x\nexample = y\nnegative = z\nnegative = w\n";

static void test_triggers (void **state) {
  scan_engine *e = new_engine(TRIGGER_RULES, NULL);
  scan_ctx *c = scan_ctx_new(e);
  char value[301], text[1024];
  results r;
  size_t at1, at2;
  (void)state;
  assert_non_null(c);
  memset(value, 'Q', 300);
  value[0] = '7';                   /* (not a placeholder: two symbols) */
  value[300] = '\0';
  /* the value ends ~340 bytes after the keyword: within W, found */
  snprintf(text, sizeof text, "noise\napi_secret_key=%s\n{\"auth_token\": \"abc123def456\"}\nXYZ123456789012\n",
           value);
  at1 = strlen("noise\napi_secret_key=");
  at2 = (size_t)(strstr(text, "abc123") - text);
  r = scan_with(c, text, strlen(text), 1);
  assert_int_equal(r.n, 2);
  expect_hit(&r, 0, 0, at1, at1 + 300, 2, 16);
  assert_int_equal(r.f[1].rule, 1);
  assert_int_equal(r.f[1].start, at2);
  results_free(&r);
  /* a keyword with no assignment: the triggers fire, PCRE2 finds nothing */
  r = scan_with(c, "the token and the secret\n", 25, 1);
  assert_int_equal(r.n, 0);
  results_free(&r);
  assert_string_equal(scan_engine_rule(e, 0)->trigger, "(?:secret|token)");
  scan_ctx_free(c);
  scan_engine_free(e);
}

static void test_empty_rule_set (void **state) {
  scan_ruleset rs;
  scan_engine *e;
  scan_ctx *c;
  (void)state;
  scan_rules_init(&rs);
  e = scan_engine_new(&rs, NULL, err, sizeof err);
  assert_non_null(e);
  assert_int_equal(scan_engine_nrules(e), 0);
  assert_non_null(c = scan_ctx_new(e));
  assert_int_equal(scan_buffer(c, "ghp_x", 5, NULL, collect, NULL), 0);
  scan_ctx_free(c);
  scan_engine_free(e);
}

static void expect_compile_error (const char *pattern, const char *extra,
                                  const char *want_prefix, const char *want_part) {
  char text[1024];
  scan_ruleset rs;
  scan_engine *e;
  snprintf(text, sizeof text,
           "[fine]\nname = n\nprovider = p\nseverity = low\npattern = (ok\\d+)\n"
           "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n\n"
           "[broken-rule]\nname = n\nprovider = p\nseverity = low\npattern = %s\n%s"
           "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n", pattern, extra);
  load_rules(&rs, text);
  e = scan_engine_new(&rs, NULL, err, sizeof err);
  scan_rules_free(&rs);
  assert_null(e);
  if (strncmp(err, want_prefix, strlen(want_prefix)) != 0 || strstr(err, want_part) == NULL)
    fail_msg("unexpected error: %s", err);
  assert_null(strchr(err, '\n'));
}

static void test_compile_errors (void **state) {
  (void)state;
  expect_compile_error("(abc", "", "rule broken-rule (test.rules:11): vectorscan: ",
                       "parenthesis");
  expect_compile_error("(a)(?=b)", "",
                       "rule broken-rule (test.rules:11): vectorscan: ",
                       "(prefilter = yes lets PCRE2 decide)");
  expect_compile_error("abc", "", "rule broken-rule (test.rules:11): ",
                       "exactly one capturing group (the secret), has 0");
  expect_compile_error("(a)(b)", "", "rule broken-rule (test.rules:11): ",
                       "exactly one capturing group (the secret), has 2");
  expect_compile_error("(a*)", "", "rule broken-rule (test.rules:11): vectorscan: ",
                       "pattern can match the empty string");
  /* vectorscan's prefilter accepts what PCRE2 then rejects */
  expect_compile_error("(a)(?<=a+)", "prefilter = yes\n",
                       "rule broken-rule (test.rules:11): pcre2: ", "lookbehind");
}

/* }====================================================== */

/* {====================================================== the cache */

static size_t count_files (const char *dir, char *name, size_t namelen) {
  DIR *d = opendir(dir);
  struct dirent *de;
  size_t n = 0;
  assert_non_null(d);
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
        (de->d_name[1] == '.' && de->d_name[2] == '\0')))
      continue;
    if (name) snprintf(name, namelen, "%s/%s", dir, de->d_name);
    n++;
  }
  closedir(d);
  return n;
}

static void same_findings (scan_engine *a, scan_engine *b, const char *text) {
  scan_ctx *ca = scan_ctx_new(a), *cb = scan_ctx_new(b);
  results ra = scan_with(ca, text, strlen(text), 0);
  results rb = scan_with(cb, text, strlen(text), 0);
  assert_true(ra.n > 0);
  assert_int_equal(ra.n, rb.n);
  assert_memory_equal(ra.f, rb.f, ra.n * sizeof *ra.f);
  results_free(&ra); results_free(&rb);
  scan_ctx_free(ca); scan_ctx_free(cb);
}

/*
** Regression: vectorscan 5.4.9's AVX-512 hs_scan variant missed matches of
** this rule depending on the buffer's address (engine.c calls the AVX2
** variant). Both lines must be found whatever the offset of the text.
*/
static void test_alignment_independent (void **state) {
  /* rules/generic.rules' generic-secret-env (prefilter): the shape that failed */
  static const char rules[] =
    "[assign]\nname = a\nprovider = generic\nseverity = low\nprefilter = yes\n"
    "pattern = ^[ \\t]*(?:export[ \\t]+|ENV[ \\t]+|-[ \\t]+)?(?:[A-Za-z_][A-Za-z0-9_.-]{0,40})?(?i:passw(?:or)?d|pwd|secret|token|api[_.-]?key|access[_.-]?key|private[_.-]?key|credentials?)[A-Za-z0-9_.-]{0,40}=[\"']?(?=[A-Za-z/+=_.-]*[0-9])(?!_*[A-Za-z][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)+(?:[^A-Za-z0-9/+=_.-]|$))(?!_*[a-z][a-z0-9]*(?:[_.-]+[a-z0-9]+)+(?:[^A-Za-z0-9/+=_.-]|$))(?!_*[A-Z][A-Z0-9]*(?:[_.-]+[A-Z0-9]+)+(?:[^A-Za-z0-9/+=_.-]|$))(?![A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[a-z]{2,12}(?:[^A-Za-z0-9/+=_.-]|$))([A-Za-z0-9_+=][A-Za-z0-9/+=_.-]{10,500}[A-Za-z0-9/+=_-])(?:[\"']|[ \\t\\r]*(?:#[^\\r\\n]*)?$)\n"
    "example = A=1\nexample = B=2\nnegative = x\nnegative = y\n";
  static const char text[] =
    "TF_TOKEN_app_terraform_io=dKjmXq6rlhhv63.atlasv1.VXDUoUovGs1e09MhTaBOKgc2EwENC6_iHf9ppoCjukg7aFi5EecpOOLnu9P\n\n"
    "TF_TOKEN_app_terraform_io=kB7xs5aGMujXh0.atlasv2.yTr53_Nz2ZcnhV4Ij-wdYfYSjLqz_loeraGAK49mtOgJTa0BQoCuTCRnE5EKQ9UwNwJ\n";
  scan_ruleset rs;
  scan_engine *e;
  scan_ctx *c;
  char msg[512], *text_at = malloc(sizeof text + 64);
  int k;
  (void)state;
  assert_non_null(text_at);
  scan_rules_init(&rs);
  assert_int_equal(scan_rules_parse(&rs, rules, sizeof rules - 1, "t", msg, sizeof msg), 0);
  e = scan_engine_new(&rs, NULL, msg, sizeof msg);
  assert_non_null(e);
  c = scan_ctx_new(e);
  for (k = 0; k < 64; k++) {
    results r;
    memset(text_at, '#', (size_t)k);
    text_at[k] = '\n';
    memcpy(text_at + k + 1, text, sizeof text);
    r = scan_with(c, text_at, strlen(text_at), 1);
    assert_int_equal(r.n, 1);        /* the first line; the rule rejects the second */
    results_free(&r);
  }
  scan_ctx_free(c);
  scan_engine_free(e);
  scan_rules_free(&rs);
  free(text_at);
}

static void test_cache (void **state) {
  char root[] = "/tmp/ato-scan-cache-XXXXXX", dir[64], file[512], text[512];
  char sg[SG_LEN + 1], gh[GH_LEN + 1];
  scan_engine *e1, *e2, *e3, *e4;
  struct stat st;
  FILE *f;
  (void)state;
  assert_non_null(mkdtemp(root));
  snprintf(dir, sizeof dir, "%s/a/b", root);       /* created, with parents */
  make_sg(sg, 20); make_gh(gh, 21);
  snprintf(text, sizeof text, "x = %s\ny = %s\npassword = 'Zq8#mW2$kR5!'\n", sg, gh);

  e1 = new_engine(RULES, dir);
  assert_int_equal(scan_engine_cached(e1), 0);
  assert_null(scan_engine_cache_error(e1));
  assert_int_equal(count_files(dir, file, sizeof file), 1);
  assert_non_null(strstr(file, "/scan-"));
  assert_int_equal(stat(file, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);

  e2 = new_engine(RULES, dir);                     /* from the cache */
  assert_int_equal(scan_engine_cached(e2), 1);
  same_findings(e1, e2, text);

  /* a flipped byte in the database: ignored and replaced */
  assert_non_null(f = fopen(file, "r+b"));
  fseek(f, 200, SEEK_SET);
  fputc(fgetc(f) ^ 0x55, f);
  fclose(f);
  e3 = new_engine(RULES, dir);
  assert_int_equal(scan_engine_cached(e3), 0);
  assert_null(scan_engine_cache_error(e3));
  same_findings(e1, e3, text);
  e4 = new_engine(RULES, dir);
  assert_int_equal(scan_engine_cached(e4), 1);
  scan_engine_free(e4);

  /* garbage, then a truncated file */
  assert_non_null(f = fopen(file, "wb"));
  fputs("not a database", f);
  fclose(f);
  e4 = new_engine(RULES, dir);
  assert_int_equal(scan_engine_cached(e4), 0);
  scan_engine_free(e4);
  assert_int_equal(stat(file, &st), 0);
  assert_int_equal(truncate(file, st.st_size / 2), 0);
  e4 = new_engine(RULES, dir);
  assert_int_equal(scan_engine_cached(e4), 0);
  scan_engine_free(e4);
  e4 = new_engine(RULES, dir);
  assert_int_equal(scan_engine_cached(e4), 1);
  same_findings(e1, e4, text);
  scan_engine_free(e4);
  assert_int_equal(count_files(dir, NULL, 0), 1);  /* no temporary left */

  /* another rule set: another file */
  e4 = new_engine(DENSE_RULES, dir);
  assert_int_equal(scan_engine_cached(e4), 0);
  scan_engine_free(e4);
  assert_int_equal(count_files(dir, NULL, 0), 2);

  /* a cache dir that cannot exist is no error, only a note */
  snprintf(dir, sizeof dir, "%s/file", root);
  assert_non_null(f = fopen(dir, "w"));
  fclose(f);
  snprintf(file, sizeof file, "%s/sub", dir);
  e4 = new_engine(RULES, file);
  assert_int_equal(scan_engine_cached(e4), 0);
  assert_non_null(scan_engine_cache_error(e4));
  assert_non_null(strstr(scan_engine_cache_error(e4), "cannot create directory cache"));
  same_findings(e1, e4, text);
  scan_engine_free(e4);

  scan_engine_free(e1); scan_engine_free(e2); scan_engine_free(e3);
  snprintf(text, sizeof text, "rm -rf '%s'", root);
  assert_int_equal(system(text), 0);
}

/* }====================================================== */

/* {====================================================== threads */

typedef struct job {
  const scan_engine *e;
  const char *data;
  size_t len;
  results r;
  int rc;
} job;

static void *scan_job (void *ud) {
  job *j = ud;
  scan_ctx *c = scan_ctx_new(j->e);
  int round;
  if (c == NULL) { j->rc = -2; return NULL; }
  for (round = 0; round < 3; round++) {  /* overlap in time with the other thread */
    free(j->r.f);
    memset(&j->r, 0, sizeof j->r);
    j->rc = scan_buffer(c, j->data, j->len, NULL, collect, &j->r);
    if (j->rc != 0) break;
  }
  scan_ctx_free(c);
  return NULL;
}

static void test_threads (void **state) {
  char sg[SG_LEN + 1], gh[GH_LEN + 1], aws[AWS_LEN + 1];
  static char pem[4096];
  size_t n = make_pem(pem, 10, 4), i;
  uint32_t x = 77;
  buf b = { 0 };
  job jobs[2];
  pthread_t t[2];
  results want;
  (void)state;
  for (i = 0; i < 3000; i++) {
    char noise[200];
    random_chars(noise, sizeof noise, " abcdefghij\n", &x);
    put(&b, noise, sizeof noise);
    puts_(&b, " ");
    switch (i % 4) {
      case 0: make_sg(sg, (uint32_t)i); puts_(&b, sg); break;
      case 1: make_gh(gh, (uint32_t)i); puts_(&b, gh); break;
      case 2: make_aws(aws, (uint32_t)i); puts_(&b, aws); break;
      default: if (i % 40 == 3) put(&b, pem, n); break;
    }
    puts_(&b, "\n");
  }
  want = scan_with(ctx, b.s, b.n, 0);
  assert_true(want.n > 2000);
  for (i = 0; i < 2; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].e = engine; jobs[i].data = b.s; jobs[i].len = b.n;
    assert_int_equal(pthread_create(&t[i], NULL, scan_job, &jobs[i]), 0);
  }
  for (i = 0; i < 2; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(jobs[i].rc, 0);
    assert_int_equal(jobs[i].r.n, want.n);
    assert_memory_equal(jobs[i].r.f, want.f, want.n * sizeof *want.f);
    results_free(&jobs[i].r);
  }
  results_free(&want);
  free(b.s);
}

/* }====================================================== */

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_single_finding),
    cmocka_unit_test(test_several_on_lines),
    cmocka_unit_test(test_buffer_start_and_end),
    cmocka_unit_test(test_adjacent_and_many),
    cmocka_unit_test(test_near_misses),
    cmocka_unit_test(test_pem_block),
    cmocka_unit_test(test_long_matches_in_unbounded_rules),
    cmocka_unit_test(test_allow_comment),
    cmocka_unit_test(test_entropy_and_placeholders),
    cmocka_unit_test(test_examples_and_negatives),
    cmocka_unit_test(test_emit_stops),
    cmocka_unit_test(test_dense_inputs),
    cmocka_unit_test(test_dense_thinning),
    cmocka_unit_test(test_random_bytes),
    cmocka_unit_test(test_triggers),
    cmocka_unit_test(test_empty_rule_set),
    cmocka_unit_test(test_compile_errors),
    cmocka_unit_test(test_alignment_independent),
    cmocka_unit_test(test_cache),
    cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests_name("scan_engine", tests, setup, teardown);
}

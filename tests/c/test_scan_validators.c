/*
** test_scan_validators.c: entropy, the GitHub/npm CRC32 token checksum
** (checked against an independent bitwise CRC32 written here) and the
** placeholder stop-words. Tokens are generated, never literal.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "scan.h"

#define EPS 1e-9

static void test_entropy_known (void **state) {
  char all[256];
  int i;
  (void)state;
  assert_true(scan_entropy("", 0) == 0.0);
  assert_true(scan_entropy("aaaa", 4) == 0.0);
  assert_true(scan_entropy("ab", 2) > 1.0 - EPS && scan_entropy("ab", 2) < 1.0 + EPS);
  assert_true(scan_entropy("aabb", 4) > 1.0 - EPS && scan_entropy("aabb", 4) < 1.0 + EPS);
  assert_true(scan_entropy("abcd", 4) > 2.0 - EPS && scan_entropy("abcd", 4) < 2.0 + EPS);
  assert_true(scan_entropy("0123456789abcdef", 16) > 4.0 - EPS &&
              scan_entropy("0123456789abcdef", 16) < 4.0 + EPS);
  /* -(2/3 log2 2/3 + 1/3 log2 1/3) */
  assert_true(scan_entropy("aab", 3) > 0.9182958340544896 - EPS &&
              scan_entropy("aab", 3) < 0.9182958340544896 + EPS);
  for (i = 0; i < 256; i++) all[i] = (char)i;
  assert_true(scan_entropy(all, 256) > 8.0 - EPS && scan_entropy(all, 256) < 8.0 + EPS);
  /* 1000 bytes, 10 symbols equally often: log2 10 */
  {
    char buf[1000];
    for (i = 0; i < 1000; i++) buf[i] = (char)('0' + i % 10);
    assert_true(scan_entropy(buf, 1000) > 3.321928094887362 - EPS &&
                scan_entropy(buf, 1000) < 3.321928094887362 + EPS);
  }
}

/* {====================================================== tokens */

/* CRC-32/IEEE bit by bit, independent of the nibble table in validators.c */
static uint32_t bitwise_crc32 (const char *s, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  size_t i;
  int k;
  for (i = 0; i < n; i++) {
    crc ^= (unsigned char)s[i];
    for (k = 0; k < 8; k++)
      crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

static const char B62[] =
  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static uint32_t next_rand (uint32_t *x) {
  *x ^= *x << 13; *x ^= *x >> 17; *x ^= *x << 5;
  return *x;
}

/* prefix (4) + 30 random base62 + 6-digit base62 CRC32: 40 chars + NUL */
static void make_token (char out[41], const char *prefix, uint32_t seed) {
  uint32_t x = seed ? seed : 1, crc;
  int i;
  memcpy(out, prefix, 4);
  for (i = 4; i < 34; i++) out[i] = B62[next_rand(&x) % 62];
  crc = bitwise_crc32(out + 4, 30);
  for (i = 39; i >= 34; i--) { out[i] = B62[crc % 62]; crc /= 62; }
  out[40] = '\0';
}

static void test_crc32_reference (void **state) {
  (void)state;
  /* the check value of CRC-32/ISO-HDLC, to trust the test's own CRC */
  assert_int_equal(bitwise_crc32("123456789", 9), 0xCBF43926u);
}

static char other_base62 (char ch) {
  return ch == 'a' ? 'b' : 'a';
}

static void test_github_checksum (void **state) {
  static const char *const prefixes[] = { "ghp_", "gho_", "ghu_", "ghs_", "ghr_" };
  char tok[41];
  size_t p;
  int i;
  uint32_t seed;
  (void)state;
  for (seed = 1; seed < 200; seed++)
    for (p = 0; p < 5; p++) {
      make_token(tok, prefixes[p], seed * 7919 + (uint32_t)p);
      assert_true(scan_check_github_crc32(tok, 40));
      assert_false(scan_check_npm_crc32(tok, 40));
    }
  make_token(tok, "ghp_", 42);
  for (i = 4; i < 40; i++) {              /* any one changed char fails */
    char saved = tok[i];
    tok[i] = other_base62(saved);
    assert_false(scan_check_github_crc32(tok, 40));
    tok[i] = saved;
  }
  assert_true(scan_check_github_crc32(tok, 40));
  assert_false(scan_check_github_crc32(tok, 39));   /* length */
  tok[2] = 'x';                                      /* ghx_ */
  assert_false(scan_check_github_crc32(tok, 40));
  tok[2] = 'p';
  tok[10] = '-';                                     /* not base62 */
  assert_false(scan_check_github_crc32(tok, 40));
}

static void test_npm_checksum (void **state) {
  char tok[41];
  int i;
  uint32_t seed;
  (void)state;
  for (seed = 1; seed < 500; seed++) {
    make_token(tok, "npm_", seed * 104729);
    assert_true(scan_check_npm_crc32(tok, 40));
    assert_false(scan_check_github_crc32(tok, 40));
  }
  make_token(tok, "npm_", 7);
  for (i = 4; i < 40; i++) {
    char saved = tok[i];
    tok[i] = other_base62(saved);
    assert_false(scan_check_npm_crc32(tok, 40));
    tok[i] = saved;
  }
  tok[0] = 'N';
  assert_false(scan_check_npm_crc32(tok, 40));
}

/* A CRC below 62^5 must be left-padded with '0'. Search for a body whose
   CRC is small enough, then check both forms. */
static void test_checksum_padding (void **state) {
  char tok[41];
  uint32_t seed, crc = 0;
  (void)state;
  for (seed = 1; seed < 2000000; seed++) {
    make_token(tok, "ghp_", seed);
    crc = bitwise_crc32(tok + 4, 30);
    if (crc < 916132832u) break;           /* 62^5: 5 digits, padded */
  }
  assert_true(crc < 916132832u);
  assert_int_equal(tok[34], '0');
  assert_true(scan_check_github_crc32(tok, 40));
}

/* }====================================================== */

static void test_placeholders (void **state) {
  static const char *const yes[] = {
    "AKIAIOSFODNN7EXAMPLE", "my-sample-key-9f8e", "DUMMY_TOKEN_value",
    "<placeholder>", "YOUR-API-KEY", "your_api_key_here", "YourApiKey",
    "ChangeMe!", "[REDACTED]", "xxxxxxxx", "sk_XXXX_4f9Qz", "tok12345678zq",
    "k-67890123-z", "QabcdefghZ", "aaaaaaaaaaaaaaaa", "0000-0000-0000",
    "aaaaXaaa", "zzz", NULL
  };
  static const char *const no[] = {
    "Zx81kQp2LmT9vR4w", "hunter2hunter2", "correct-horse-battery",
    "1234567", "9f8e7d6c5b4a", "ab", "abc", "aaaaBBBB", "q0Wn3-_Rk2",
    "testing-Tkn93", NULL
  };
  size_t i;
  (void)state;
  for (i = 0; yes[i] != NULL; i++)
    if (!scan_is_placeholder(yes[i], strlen(yes[i])))
      fail_msg("expected a placeholder: case %zu", i);
  for (i = 0; no[i] != NULL; i++)
    if (scan_is_placeholder(no[i], strlen(no[i])))
      fail_msg("expected no placeholder: case %zu", i);
  assert_true(scan_is_placeholder("", 0));
  /* length-bounded: the stop-word past len does not count */
  assert_false(scan_is_placeholder("Qz81kEXAMPLE", 5));
}

/* "xxxx" turns up in long random text (a PEM body): only short secrets
   count it; the longer stop-words count everywhere. */
static void test_xxxx_only_in_short_secrets (void **state) {
  char s[400];
  uint32_t x = 3;
  int i;
  (void)state;
  for (i = 0; i < 400; i++) s[i] = B62[next_rand(&x) % 62];
  memcpy(s + 60, "xXxx", 4);
  assert_true(scan_is_placeholder(s, 128));
  assert_false(scan_is_placeholder(s, 129));
  assert_false(scan_is_placeholder(s, 400));
  memcpy(s + 300, "dummy", 5);
  assert_true(scan_is_placeholder(s, 400));
}

static void test_generated_tokens_not_placeholders (void **state) {
  char tok[41];
  uint32_t seed;
  int hits = 0;
  (void)state;
  for (seed = 1; seed < 1000; seed++) {
    make_token(tok, "ghp_", seed);
    hits += scan_is_placeholder(tok, 40);
  }
  assert_true(hits <= 1);   /* random tokens: a stop-word is a rare accident */
}

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_entropy_known),
    cmocka_unit_test(test_crc32_reference),
    cmocka_unit_test(test_github_checksum),
    cmocka_unit_test(test_npm_checksum),
    cmocka_unit_test(test_checksum_padding),
    cmocka_unit_test(test_placeholders),
    cmocka_unit_test(test_xxxx_only_in_short_secrets),
    cmocka_unit_test(test_generated_tokens_not_placeholders),
  };
  return cmocka_run_group_tests_name("scan_validators", tests, NULL, NULL);
}

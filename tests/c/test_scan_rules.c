/*
** test_scan_rules.c: the rule-file parser — a valid file with every field,
** each error with its exact "FILE:LINE: problem" text, escapes, CRLF, a
** missing final newline, NUL bytes, huge lines, duplicate ids across two
** calls, and rs being left unchanged by a failed call.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scan.h"

/* The required fields and two examples and negatives, for error cases. */
#define BODY "name = N\nprovider = p\nseverity = high\npattern = (x+)\n" \
             "example = x1\nexample = x2\nnegative = y1\nnegative = y2\n"

static const char VALID[] =
  "# three rules with every field\n"
  "\n"
  "[sendgrid-api-key]\n"
  "name = SendGrid API key\n"
  "provider = sendgrid\n"
  "severity = critical\n"
  "pattern = (?<![\\w.-])(SG\\.[\\w-]{22}\\.[\\w-]{43})(?![\\w-])   \n"
  "prefilter = yes\n"
  "keywords = SG.\n"
  "entropy = 4.5\n"
  "verify = sendgrid\n"
  "reference = https://docs.sendgrid.com/ui/account-and-settings/api-keys\n"
  "reference = https://example.invalid/second # not a comment\n"
  "example = key: SG\\x2eabc\n"
  "example = line1\\nline2\\tTab\\r\\\\end\n"
  "negative = SG.short\n"
  "negative = \\x00\\xff\\x41\n"
  "  # an indented comment\n"
  "[github-token]\n"
  "  name   =   GitHub token\t \n"
  "provider=github\n"
  "severity =low\n"
  "pattern = \\b(gh[pousr]_[A-Za-z0-9]{36})\\b\n"
  "validator = github_crc32\n"
  "prefilter = no\n"
  "example = a\n"
  "example = b\n"
  "negative = c\n"
  "negative = d\n"
  "[pem-private-key-2]\n"
  "name = Private key\n"
  "provider = generic\n"
  "severity = medium\n"
  "pattern = (-----BEGIN[ A-Z]*PRIVATE KEY-----[\\s\\S]*?-----END[ A-Z]*PRIVATE KEY-----)\n"
  "window = 8192\n"
  "validator = npm_crc32\n"
  "entropy = .5\n"
  "example = e1\n"
  "example = e2\n"
  "example = e3\n"
  "negative = n1\n"
  "negative = n2";                      /* no final newline */

static char err[512];

static void parse_ok (scan_ruleset *rs, const char *text, size_t len,
                      const char *file) {
  int rc = scan_rules_parse(rs, text, len, file, err, sizeof err);
  if (rc != 0) fail_msg("unexpected error: %s", err);
}

/* Parses text into a fresh set and expects exactly `want`. */
static void expect_error (const char *text, size_t len, const char *want) {
  scan_ruleset rs;
  int rc;
  scan_rules_init(&rs);
  rc = scan_rules_parse(&rs, text, len, "t.rules", err, sizeof err);
  assert_int_equal(rc, -1);
  assert_int_equal(errno, EINVAL);
  assert_string_equal(err, want);
  assert_null(strchr(err, '\n'));
  assert_int_equal(rs.n, 0);
  scan_rules_free(&rs);
}

static void expect_err (const char *text, const char *want) {
  expect_error(text, strlen(text), want);
}

static void test_valid_file (void **state) {
  scan_ruleset rs;
  const scan_rule *r;
  (void)state;
  scan_rules_init(&rs);
  parse_ok(&rs, VALID, strlen(VALID), "valid.rules");
  assert_int_equal(rs.n, 3);

  r = &rs.rules[0];
  assert_string_equal(r->id, "sendgrid-api-key");
  assert_string_equal(r->name, "SendGrid API key");
  assert_string_equal(r->provider, "sendgrid");
  assert_string_equal(r->severity, "critical");
  assert_string_equal(r->pattern, "(?<![\\w.-])(SG\\.[\\w-]{22}\\.[\\w-]{43})(?![\\w-])");
  assert_int_equal(r->prefilter, 1);
  assert_string_equal(r->keywords, "SG.");
  assert_true(r->entropy > 4.49 && r->entropy < 4.51);
  assert_string_equal(r->verify, "sendgrid");
  assert_null(r->validator);
  assert_int_equal(r->window, 0);
  assert_int_equal(r->nreferences, 2);
  assert_string_equal(r->references[1], "https://example.invalid/second # not a comment");
  assert_int_equal(r->nexamples, 2);
  assert_int_equal(r->examples[0].len, 11);
  assert_memory_equal(r->examples[0].data, "key: SG.abc", 11);
  assert_int_equal(r->examples[1].len, 20);
  assert_memory_equal(r->examples[1].data, "line1\nline2\tTab\r\\end", 20);
  assert_int_equal(r->examples[1].data[20], '\0');
  assert_int_equal(r->nnegatives, 2);
  assert_int_equal(r->negatives[1].len, 3);
  assert_memory_equal(r->negatives[1].data, "\0\xff" "A", 3);
  assert_string_equal(r->file, "valid.rules");
  assert_int_equal(r->line, 3);

  r = &rs.rules[1];
  assert_string_equal(r->id, "github-token");
  assert_string_equal(r->name, "GitHub token");
  assert_string_equal(r->provider, "github");
  assert_string_equal(r->severity, "low");
  assert_string_equal(r->validator, "github_crc32");
  assert_int_equal(r->prefilter, 0);
  assert_null(r->keywords);
  assert_null(r->verify);
  assert_true(r->entropy == 0.0);
  assert_int_equal(r->line, 19);

  r = &rs.rules[2];
  assert_string_equal(r->id, "pem-private-key-2");
  assert_int_equal(r->window, 8192);
  assert_string_equal(r->validator, "npm_crc32");
  assert_true(r->entropy > 0.49 && r->entropy < 0.51);
  assert_int_equal(r->nexamples, 3);
  assert_int_equal(r->nnegatives, 2);
  assert_string_equal(r->negatives[1].data, "n2");
  scan_rules_free(&rs);
  assert_int_equal(rs.n, 0);
  assert_null(rs.rules);
}

static void test_crlf_and_no_final_newline (void **state) {
  static const char text[] =
    "# crlf\r\n[r]\r\nname = Name  \r\nprovider = p\r\nseverity = high\r\n"
    "pattern = (a+)\r\nexample = one\\r\r\nexample = two\r\n"
    "negative = three\r\nnegative = four";
  scan_ruleset rs;
  (void)state;
  scan_rules_init(&rs);
  parse_ok(&rs, text, strlen(text), "crlf.rules");
  assert_int_equal(rs.n, 1);
  assert_string_equal(rs.rules[0].name, "Name");
  assert_string_equal(rs.rules[0].pattern, "(a+)");
  assert_int_equal(rs.rules[0].examples[0].len, 4);
  assert_memory_equal(rs.rules[0].examples[0].data, "one\r", 4);
  assert_string_equal(rs.rules[0].negatives[1].data, "four");
  scan_rules_free(&rs);
  /* an error in a CRLF file still counts lines right */
  expect_err("[r]\r\n" BODY "bogus = 1\r\n", "t.rules:10: unknown key 'bogus' in [r]");
}

static void test_empty_and_comment_only (void **state) {
  scan_ruleset rs;
  (void)state;
  scan_rules_init(&rs);
  parse_ok(&rs, "", 0, "empty.rules");
  parse_ok(&rs, "# only\n\n   \n\t# comments\n", 24, "c.rules");
  assert_int_equal(rs.n, 0);
  scan_rules_free(&rs);
}

static void test_key_errors (void **state) {
  (void)state;
  expect_err("[r]\nname = x\ncolour = red\n", "t.rules:3: unknown key 'colour' in [r]");
  expect_err("[r]\nname x\n", "t.rules:2: missing '=' after 'name'");
  expect_err("[r]\nname\n", "t.rules:2: missing '=' after 'name'");
  expect_err("# c\nname = x\n", "t.rules:2: key 'name' before any [rule-id] section");
  expect_err("[r]\n" BODY "%%%\n",
             "t.rules:10: expected 'key = value', '[rule-id]' or '# comment'");
  expect_err("[r]\n= value\n",
             "t.rules:2: expected 'key = value', '[rule-id]' or '# comment'");
  expect_err("[r]\n" BODY "name = again\n", "t.rules:10: duplicate key 'name' in [r]");
  expect_err("[r]\nname =   \n", "t.rules:2: empty value for 'name' in [r]");
  expect_err("[r]\nexample =\n", "t.rules:2: empty value for 'example' in [r]");
}

static void test_section_errors (void **state) {
  (void)state;
  expect_err("[a]\n" BODY "[a]\n" BODY,
             "t.rules:10: duplicate rule id [a] (first defined at t.rules:1)");
  expect_err("[My_Rule]\n",
             "t.rules:1: bad rule id [My_Rule] (lowercase letters, digits and '-' only)");
  expect_err("[]\n", "t.rules:1: bad rule id [] (lowercase letters, digits and '-' only)");
  expect_err("[ r ]\n", "t.rules:1: bad rule id [ r ] (lowercase letters, digits and '-' only)");
  expect_err("[abc\n", "t.rules:1: bad section header '[abc' (expected [rule-id])");
  expect_err("[abc] x\n", "t.rules:1: bad section header '[abc] x' (expected [rule-id])");
}

static void test_missing_fields (void **state) {
  (void)state;
  expect_err("# x\n[r]\nprovider = p\nseverity = low\npattern = (a)\n",
             "t.rules:2: [r] has no 'name'");
  expect_err("[r]\nname = n\nseverity = low\npattern = (a)\n",
             "t.rules:1: [r] has no 'provider'");
  expect_err("[r]\nname = n\nprovider = p\npattern = (a)\n",
             "t.rules:1: [r] has no 'severity'");
  expect_err("[r]\nname = n\nprovider = p\nseverity = low\n[s]\n",
             "t.rules:1: [r] has no 'pattern'");
  expect_err("[r]\nname = n\nprovider = p\nseverity = low\npattern = (a)\n"
             "example = 1\nnegative = 1\nnegative = 2\n",
             "t.rules:1: [r] needs at least 2 'example' values (has 1)");
  expect_err("[r]\nname = n\nprovider = p\nseverity = low\npattern = (a)\n"
             "example = 1\nexample = 2\n",
             "t.rules:1: [r] needs at least 2 'negative' values (has 0)");
}

static void test_value_errors (void **state) {
  (void)state;
  expect_err("[r]\nseverity = urgent\n",
             "t.rules:2: bad severity 'urgent' in [r] (critical, high, medium or low)");
  expect_err("[r]\nseverity = High\n",
             "t.rules:2: bad severity 'High' in [r] (critical, high, medium or low)");
  expect_err("[r]\nentropy = abc\n",
             "t.rules:2: bad entropy 'abc' in [r] (a number from 0 to 8)");
  expect_err("[r]\nentropy = 9\n",
             "t.rules:2: bad entropy '9' in [r] (a number from 0 to 8)");
  expect_err("[r]\nentropy = 8.01\n",
             "t.rules:2: bad entropy '8.01' in [r] (a number from 0 to 8)");
  expect_err("[r]\nentropy = -1\n",
             "t.rules:2: bad entropy '-1' in [r] (a number from 0 to 8)");
  expect_err("[r]\nentropy = 1e0\n",
             "t.rules:2: bad entropy '1e0' in [r] (a number from 0 to 8)");
  expect_err("[r]\nentropy = .\n",
             "t.rules:2: bad entropy '.' in [r] (a number from 0 to 8)");
  expect_err("[r]\nvalidator = luhn\n",
             "t.rules:2: unknown validator 'luhn' in [r] (github_crc32 or npm_crc32)");
  expect_err("[r]\nprefilter = maybe\n",
             "t.rules:2: bad prefilter 'maybe' in [r] (yes or no)");
  expect_err("[r]\nwindow = 0\n",
             "t.rules:2: bad window '0' in [r] (bytes, 1 to 1048576)");
  expect_err("[r]\nwindow = 1048577\n",
             "t.rules:2: bad window '1048577' in [r] (bytes, 1 to 1048576)");
  expect_err("[r]\nwindow = 12k\n",
             "t.rules:2: bad window '12k' in [r] (bytes, 1 to 1048576)");
}

static void test_escape_errors (void **state) {
  (void)state;
  expect_err("[r]\nexample = a\\qb\n", "t.rules:2: bad escape '\\q' in 'example' of [r]");
  expect_err("[r]\nnegative = end\\\n", "t.rules:2: bad escape '\\' in 'negative' of [r]");
  expect_err("[r]\nexample = \\x4\n", "t.rules:2: bad escape '\\x4' in 'example' of [r]");
  expect_err("[r]\nexample = \\xZZ!\n", "t.rules:2: bad escape '\\xZZ' in 'example' of [r]");
  expect_err("[r]\nexample = \\0\n", "t.rules:2: bad escape '\\0' in 'example' of [r]");
}

static void test_nul_bytes (void **state) {
  static const char text[] = "[r]\nname = a\0b\n";
  static const char text2[] = "[r]\0\n";
  (void)state;
  expect_error(text, sizeof text - 1, "t.rules:2: NUL byte in line");
  expect_error(text2, sizeof text2 - 1, "t.rules:1: NUL byte in line");
  expect_error("\0", 1, "t.rules:1: NUL byte in line");
}

static void test_unprintable_names_are_shown_safely (void **state) {
  static const char text[] = "[r]\n\x01\x7f=\n";
  scan_ruleset rs;
  char big[200];
  (void)state;
  expect_err("[r]\nna\x1bme = x\n", "t.rules:2: missing '=' after 'na'");
  expect_error(text, sizeof text - 1,
               "t.rules:2: expected 'key = value', '[rule-id]' or '# comment'");
  /* a long key name is cut */
  memset(big, 'k', sizeof big);
  memcpy(big, "[r]\n", 4);
  memcpy(big + sizeof big - 5, " = 1\n", 5);
  scan_rules_init(&rs);
  assert_int_equal(scan_rules_parse(&rs, big, sizeof big, "t.rules", err, sizeof err), -1);
  assert_string_equal(err, "t.rules:2: unknown key "
    "'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' in [r]");
  scan_rules_free(&rs);
}

static void test_huge_line (void **state) {
  size_t n = 4u << 20, i;
  char *text = malloc(n + 200);
  scan_ruleset rs;
  size_t len;
  (void)state;
  assert_non_null(text);
  len = (size_t)sprintf(text, "[r]\nname = n\nprovider = p\nseverity = low\npattern = (");
  for (i = 0; i < n; i++) text[len++] = 'a';
  len += (size_t)sprintf(text + len, ")\nexample = 1\nexample = 2\nnegative = 1\nnegative = 2\n");
  scan_rules_init(&rs);
  parse_ok(&rs, text, len, "huge.rules");
  assert_int_equal(strlen(rs.rules[0].pattern), n + 2);
  scan_rules_free(&rs);
  /* a huge garbage line */
  memset(text, '~', n);
  expect_error(text, n, "t.rules:1: expected 'key = value', '[rule-id]' or '# comment'");
  free(text);
}

static void test_duplicates_across_calls (void **state) {
  scan_ruleset rs;
  (void)state;
  scan_rules_init(&rs);
  parse_ok(&rs, "[a]\n" BODY "[b]\n" BODY, strlen("[a]\n" BODY "[b]\n" BODY), "one.rules");
  assert_int_equal(rs.n, 2);
  assert_int_equal(scan_rules_parse(&rs, "[c]\n" BODY "\n[b]\n" BODY,
                                    strlen("[c]\n" BODY "\n[b]\n" BODY),
                                    "two.rules", err, sizeof err), -1);
  assert_string_equal(err, "two.rules:11: duplicate rule id [b] (first defined at one.rules:10)");
  assert_int_equal(rs.n, 2);                 /* [c] was rolled back */
  parse_ok(&rs, "[c]\n" BODY, strlen("[c]\n" BODY), "three.rules");
  assert_int_equal(rs.n, 3);
  assert_string_equal(rs.rules[2].file, "three.rules");
  scan_rules_free(&rs);
}

static void test_failed_call_leaves_set_unchanged (void **state) {
  scan_ruleset rs;
  (void)state;
  scan_rules_init(&rs);
  parse_ok(&rs, VALID, strlen(VALID), "valid.rules");
  assert_int_equal(scan_rules_parse(&rs, "[x]\n" BODY "[y]\n" BODY "[z]\nseverity = no\n",
                                    strlen("[x]\n" BODY "[y]\n" BODY "[z]\nseverity = no\n"),
                                    "bad.rules", err, sizeof err), -1);
  assert_string_equal(err, "bad.rules:20: bad severity 'no' in [z] (critical, high, medium or low)");
  assert_int_equal(rs.n, 3);
  assert_string_equal(rs.rules[2].id, "pem-private-key-2");
  scan_rules_free(&rs);
}

static void test_small_error_buffer (void **state) {
  scan_ruleset rs;
  char small[8];
  (void)state;
  scan_rules_init(&rs);
  assert_int_equal(scan_rules_parse(&rs, "[r]\nfoo = 1\n", 12, "t.rules", small, sizeof small), -1);
  assert_string_equal(small, "t.rules");
  assert_int_equal(scan_rules_parse(&rs, "[r]\nfoo = 1\n", 12, "t.rules", NULL, 0), -1);
  scan_rules_free(&rs);
}

static void test_copy (void **state) {
  scan_ruleset a, b;
  size_t i;
  (void)state;
  scan_rules_init(&a);
  scan_rules_init(&b);
  parse_ok(&a, VALID, strlen(VALID), "valid.rules");
  assert_int_equal(scan_rules_copy(&b, &a), 0);
  assert_int_equal(b.n, 3);
  for (i = 0; i < 3; i++) {
    assert_string_equal(a.rules[i].id, b.rules[i].id);
    assert_string_equal(a.rules[i].pattern, b.rules[i].pattern);
    assert_true(a.rules[i].pattern != b.rules[i].pattern);
    assert_int_equal(a.rules[i].nexamples, b.rules[i].nexamples);
    assert_int_equal(a.rules[i].line, b.rules[i].line);
    assert_int_equal(a.rules[i].window, b.rules[i].window);
  }
  assert_memory_equal(a.rules[0].negatives[1].data, b.rules[0].negatives[1].data, 3);
  scan_rules_free(&a);
  assert_string_equal(b.rules[1].validator, "github_crc32");
  scan_rules_free(&b);
}

static void test_load_file (void **state) {
  char dir[] = "/tmp/ato-rules-XXXXXX", path[64], want[256];
  scan_ruleset rs;
  FILE *f;
  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/ok.rules", dir);
  assert_non_null(f = fopen(path, "w"));
  fputs(VALID, f);
  fclose(f);
  scan_rules_init(&rs);
  assert_int_equal(scan_rules_load_file(&rs, path, err, sizeof err), 0);
  assert_int_equal(rs.n, 3);
  assert_string_equal(rs.rules[0].file, path);
  /* loading it again: every id is a duplicate */
  assert_int_equal(scan_rules_load_file(&rs, path, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s:3: duplicate rule id [sendgrid-api-key] (first defined at %s:3)",
           path, path);
  assert_string_equal(err, want);
  assert_int_equal(rs.n, 3);
  unlink(path);

  assert_int_equal(scan_rules_load_file(&rs, path, err, sizeof err), -1);
  assert_int_equal(errno, ENOENT);
  snprintf(want, sizeof want, "%s: No such file or directory", path);
  assert_string_equal(err, want);

  assert_int_equal(scan_rules_load_file(&rs, dir, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s: is a directory", dir);
  assert_string_equal(err, want);

  snprintf(path, sizeof path, "%s/bad.rules", dir);
  assert_non_null(f = fopen(path, "w"));
  fputs("[r]\nname = n\nsecret = 1\n", f);
  fclose(f);
  assert_int_equal(scan_rules_load_file(&rs, path, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s:3: unknown key 'secret' in [r]", path);
  assert_string_equal(err, want);
  unlink(path);
  rmdir(dir);
  assert_int_equal(rs.n, 3);
  scan_rules_free(&rs);
}

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_valid_file),
    cmocka_unit_test(test_crlf_and_no_final_newline),
    cmocka_unit_test(test_empty_and_comment_only),
    cmocka_unit_test(test_key_errors),
    cmocka_unit_test(test_section_errors),
    cmocka_unit_test(test_missing_fields),
    cmocka_unit_test(test_value_errors),
    cmocka_unit_test(test_escape_errors),
    cmocka_unit_test(test_nul_bytes),
    cmocka_unit_test(test_unprintable_names_are_shown_safely),
    cmocka_unit_test(test_huge_line),
    cmocka_unit_test(test_duplicates_across_calls),
    cmocka_unit_test(test_failed_call_leaves_set_unchanged),
    cmocka_unit_test(test_small_error_buffer),
    cmocka_unit_test(test_copy),
    cmocka_unit_test(test_load_file),
  };
  return cmocka_run_group_tests_name("scan_rules", tests, NULL, NULL);
}

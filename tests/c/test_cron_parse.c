/*
** test_cron_parse.c: the cron expression parser — the value sets of lists,
** ranges, steps, names and macros, cronie's star flags, the seconds field
** (required, refused, auto-detected), the normalised text, and every class
** of bad expression with its exact one-line message.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cron.h"

static char err[CRON_ERRLEN];

/* Bits lo..hi step `step` of a 64-bit set. */
static uint64_t range (int lo, int hi, int step) {
  uint64_t b = 0;
  int i;
  for (i = lo; i <= hi; i += step) b |= (uint64_t)1 << i;
  return b;
}

static void parse_ok (cron_expr *c, const char *text, int seconds) {
  if (cron_parse(c, text, seconds, err, sizeof err) != 0)
    fail_msg("\"%s\": unexpected error: %s", text, err);
}

static void expect_error (const char *text, int seconds, const char *want) {
  cron_expr c;
  err[0] = '\0';
  if (cron_parse(&c, text, seconds, err, sizeof err) == 0)
    fail_msg("\"%s\" parsed, expected: %s", text, want);
  assert_string_equal(err, want);
  assert_null(strchr(err, '\n'));
}

static void expect_err (const char *text, const char *want) {
  expect_error(text, CRON_SECONDS_AUTO, want);
}

static void test_simple_fields (void **state) {
  cron_expr c;
  (void)state;
  parse_ok(&c, "30 4 1,15 * 5", CRON_SECONDS_AUTO);
  assert_true(c.second == 1);
  assert_true(c.minute == (uint64_t)1 << 30);
  assert_true(c.hour == 1u << 4);
  assert_true(c.dom == ((1u << 1) | (1u << 15)));
  assert_true(c.month == range(1, 12, 1));
  assert_true(c.dow == 1u << 5);
  assert_int_equal(c.flags, 0);
  assert_string_equal(c.text, "30 4 1,15 * 5");
  assert_false(cron_is_wildcard(&c));

  parse_ok(&c, "* * * * *", CRON_SECONDS_AUTO);
  assert_true(c.minute == range(0, 59, 1));
  assert_true(c.hour == range(0, 23, 1));
  assert_true(c.dom == range(1, 31, 1));
  assert_true(c.dow == 0x7f);
  assert_int_equal(c.flags, CRON_MIN_STAR | CRON_HOUR_STAR | CRON_DOM_STAR | CRON_DOW_STAR);
  assert_true(cron_is_wildcard(&c));
}

static void test_ranges_and_steps (void **state) {
  cron_expr c;
  (void)state;
  parse_ok(&c, "*/15 9-17/2 */10 2-11/3 1-5", CRON_SECONDS_AUTO);
  assert_true(c.minute == range(0, 59, 15));
  assert_true(c.hour == range(9, 17, 2));
  assert_true(c.dom == range(1, 31, 10));         /* 1, 11, 21, 31 */
  assert_true(c.month == range(2, 11, 3));
  assert_true(c.dow == range(1, 5, 1));
  assert_int_equal(c.flags, CRON_MIN_STAR | CRON_DOM_STAR);

  parse_ok(&c, "5/20 3/7 10/5 4/4 2/2", CRON_SECONDS_AUTO);     /* a/n = a-MAX/n */
  assert_true(c.minute == range(5, 59, 20));
  assert_true(c.hour == range(3, 23, 7));
  assert_true(c.dom == range(10, 31, 5));
  assert_true(c.month == range(4, 12, 4));
  assert_true(c.dow == range(2, 6, 2));           /* 2-7/2: 2, 4, 6 */
  parse_ok(&c, "0 0 * * 1/2", CRON_SECONDS_AUTO);
  assert_true(c.dow == (range(1, 5, 2) | 1));     /* 1-7/2: 1, 3, 5, 7 = Sunday */

  parse_ok(&c, "0,1,2,58-59 0 1 1 */2", CRON_SECONDS_AUTO);
  assert_true(c.minute == (range(0, 2, 1) | range(58, 59, 1)));
  assert_true(c.dow == (range(0, 6, 2)));         /* 0-7/2: 0, 2, 4, 6 */
  assert_int_equal(c.flags, CRON_DOW_STAR);

  parse_ok(&c, "*/90 */24 */31 */12 */7", CRON_SECONDS_AUTO);  /* steps past the range */
  assert_true(c.minute == 1 && c.hour == 1 && c.dom == 2 && c.month == 2 && c.dow == 1);

  parse_ok(&c, "0 0 * * *,5", CRON_SECONDS_AUTO);
  assert_true(c.flags & CRON_DOW_STAR);           /* starts with '*' */
  parse_ok(&c, "0 0 1-31 * 0-7", CRON_SECONDS_AUTO);
  assert_false(c.flags & (CRON_DOM_STAR | CRON_DOW_STAR));     /* full, but no star */
}

static void test_names (void **state) {
  cron_expr c;
  (void)state;
  parse_ok(&c, "0 0 * JAN,mar-May/2,Dec Mon-FRI", CRON_SECONDS_AUTO);
  assert_true(c.month == ((1u << 1) | (1u << 3) | (1u << 5) | (1u << 12)));
  assert_true(c.dow == range(1, 5, 1));
  assert_string_equal(c.text, "0 0 * jan,mar-may/2,dec mon-fri");

  parse_ok(&c, "0 0 * * sun,7", CRON_SECONDS_AUTO);
  assert_true(c.dow == 1);
  parse_ok(&c, "0 0 * * 0", CRON_SECONDS_AUTO);
  assert_true(c.dow == 1);
  parse_ok(&c, "0 0 * * 7", CRON_SECONDS_AUTO);
  assert_true(c.dow == 1);
  parse_ok(&c, "0 0 * * fri-sun", CRON_SECONDS_AUTO);   /* cronie's wrap: 5-7 */
  assert_true(c.dow == ((1u << 5) | (1u << 6) | 1u));
  parse_ok(&c, "0 0 * * 6-0", CRON_SECONDS_AUTO);
  assert_true(c.dow == ((1u << 6) | 1u));
  parse_ok(&c, "0 0 * 1-dec *", CRON_SECONDS_AUTO);
  assert_true(c.month == range(1, 12, 1));
}

static void test_macros (void **state) {
  cron_expr c;
  (void)state;
  parse_ok(&c, "@yearly", CRON_SECONDS_AUTO);
  assert_true(c.second == 1 && c.minute == 1 && c.hour == 1 && c.dom == 2 && c.month == 2);
  assert_true(c.dow == 0x7f);
  assert_int_equal(c.flags, CRON_DOW_STAR);
  assert_string_equal(c.text, "@yearly");
  parse_ok(&c, "  @annually\t", CRON_SECONDS_AUTO);
  assert_int_equal(c.flags, CRON_DOW_STAR);
  assert_string_equal(c.text, "@annually");

  parse_ok(&c, "@monthly", CRON_SECONDS_AUTO);
  assert_true(c.dom == 2 && c.month == range(1, 12, 1) && c.dow == 0x7f);
  assert_int_equal(c.flags, CRON_DOW_STAR);

  parse_ok(&c, "@weekly", CRON_SECONDS_AUTO);
  assert_true(c.dom == range(1, 31, 1) && c.dow == 1);
  assert_int_equal(c.flags, CRON_DOM_STAR);

  parse_ok(&c, "@daily", CRON_SECONDS_YES);       /* macros take any seconds mode */
  assert_true(c.minute == 1 && c.hour == 1 && c.dom == range(1, 31, 1) && c.dow == 0x7f);
  assert_int_equal(c.flags, 0);
  assert_false(cron_is_wildcard(&c));
  parse_ok(&c, "@midnight", CRON_SECONDS_NO);
  assert_int_equal(c.flags, 0);

  parse_ok(&c, "@hourly", CRON_SECONDS_AUTO);
  assert_true(c.minute == 1 && c.hour == range(0, 23, 1));
  assert_int_equal(c.flags, CRON_HOUR_STAR);
  assert_true(cron_is_wildcard(&c));

  parse_ok(&c, "@reboot", CRON_SECONDS_AUTO);
  assert_int_equal(c.flags, CRON_REBOOT);
}

static void test_seconds_field (void **state) {
  cron_expr c;
  (void)state;
  parse_ok(&c, "*/10 0 12 * * *", CRON_SECONDS_AUTO);   /* 6 fields: seconds first */
  assert_true(c.second == range(0, 59, 10));
  assert_true(c.minute == 1 && c.hour == 1u << 12);
  assert_int_equal(c.flags, CRON_SECONDS | CRON_DOM_STAR | CRON_DOW_STAR);
  assert_false(cron_is_wildcard(&c));             /* the seconds field does not count */
  assert_string_equal(c.text, "*/10 0 12 * * *");

  parse_ok(&c, "0 0 12 * * *", CRON_SECONDS_YES);
  assert_true(c.flags & CRON_SECONDS);
  parse_ok(&c, "0 12 * * *", CRON_SECONDS_NO);
  assert_false(c.flags & CRON_SECONDS);
  assert_true(c.second == 1);

  expect_error("0 12 * * *", CRON_SECONDS_YES, "cron: expected 6 fields (second minute hour "
               "day-of-month month day-of-week), got 5");
  expect_error("0 0 12 * * *", CRON_SECONDS_NO, "cron: expected 5 fields (minute hour "
               "day-of-month month day-of-week), got 6");
  expect_error("60 0 12 * * *", CRON_SECONDS_YES,
               "cron: field 1 (second) \"60\": out of range 0-59");
  expect_error("0 60 12 * * *", CRON_SECONDS_AUTO,
               "cron: field 2 (minute) \"60\": out of range 0-59");
}

static void test_normalised_text (void **state) {
  cron_expr c, again;
  (void)state;
  parse_ok(&c, " \t0   9\t*  * MON-Fri \n", CRON_SECONDS_AUTO);
  assert_string_equal(c.text, "0 9 * * mon-fri");
  parse_ok(&again, c.text, CRON_SECONDS_AUTO);
  assert_true(again.minute == c.minute && again.hour == c.hour && again.dow == c.dow &&
              again.flags == c.flags);
}

static void test_field_errors (void **state) {
  (void)state;
  expect_err("0 0 32 * *", "cron: field 3 (day of month) \"32\": out of range 1-31");
  expect_err("0 0 0 * *", "cron: field 3 (day of month) \"0\": out of range 1-31");
  expect_err("60 * * * *", "cron: field 1 (minute) \"60\": out of range 0-59");
  expect_err("0 24 * * *", "cron: field 2 (hour) \"24\": out of range 0-23");
  expect_err("0 0 * 13 *", "cron: field 4 (month) \"13\": out of range 1-12");
  expect_err("0 0 * 0 *", "cron: field 4 (month) \"0\": out of range 1-12");
  expect_err("0 0 * * 8", "cron: field 5 (day of week) \"8\": out of range 0-7");
  expect_err("0 0 1,40 * *", "cron: field 3 (day of month) \"40\": out of range 1-31");
  expect_err("0 0 1-40 * *", "cron: field 3 (day of month) \"1-40\": 40 out of range 1-31");
  expect_err("99999999999999 * * * *",
             "cron: field 1 (minute) \"99999999999999\": out of range 0-59");
  expect_err("5-1 * * * *", "cron: field 1 (minute) \"5-1\": reversed range");
  expect_err("0 0 * dec-jan *", "cron: field 4 (month) \"dec-jan\": reversed range");
  expect_err("0 0 * * 5-1", "cron: field 5 (day of week) \"5-1\": reversed range");
  expect_err("*/0 * * * *", "cron: field 1 (minute) \"*/0\": step 0");
  expect_err("0 1-5/0 * * *", "cron: field 2 (hour) \"1-5/0\": step 0");
  expect_err("*/ * * * *", "cron: field 1 (minute) \"*/\": missing step after \"/\"");
  expect_err("*/x * * * *", "cron: field 1 (minute) \"*/x\": missing step after \"/\"");
  expect_err("*/100000 * * * *", "cron: field 1 (minute) \"*/100000\": step too large");
  expect_err("1,,2 * * * *", "cron: field 1 (minute) \"1,,2\": empty list item");
  expect_err(",1 * * * *", "cron: field 1 (minute) \",1\": empty list item");
  expect_err("1, * * * *", "cron: field 1 (minute) \"1,\": empty list item");
  expect_err("1- * * * *", "cron: field 1 (minute) \"1-\": missing number");
  expect_err("-1 * * * *", "cron: field 1 (minute) \"-1\": missing number");
  expect_err("0 0 * foo *",
             "cron: field 4 (month) \"foo\": unknown name \"foo\" (expected jan-dec)");
  expect_err("0 0 * january *",
             "cron: field 4 (month) \"january\": unknown name \"january\" (expected jan-dec)");
  expect_err("0 0 * * mo",
             "cron: field 5 (day of week) \"mo\": unknown name \"mo\" (expected sun-sat)");
  expect_err("0 0 mon * *", "cron: field 3 (day of month) \"mon\": not a number");
  expect_err("5x * * * *", "cron: field 1 (minute) \"5x\": unexpected \"x\"");
  expect_err("1-2-3 * * * *", "cron: field 1 (minute) \"1-2-3\": unexpected \"-3\"");
  expect_err("*5 * * * *", "cron: field 1 (minute) \"*5\": unexpected \"5\"");
  expect_err("1/2/3 * * * *", "cron: field 1 (minute) \"1/2/3\": unexpected \"/3\"");
  expect_err("0 0 ? * *", "cron: field 3 (day of month) \"?\": unexpected \"?\"");
  expect_err("0 0 L * *", "cron: field 3 (day of month) \"L\": not a number");
  expect_err("0 0 * * 5#3", "cron: field 5 (day of week) \"5#3\": unexpected \"#3\"");
  expect_err("0 0 1~5 * *", "cron: field 3 (day of month) \"1~5\": unexpected \"~5\"");
  expect_err("0 0 H * *", "cron: field 3 (day of month) \"H\": not a number");
  expect_err("0 0 * * 1 x", "cron: field 6 (day of week) \"x\": unknown name \"x\" "
             "(expected sun-sat)");
}

static void test_expression_errors (void **state) {
  (void)state;
  expect_err("", "cron: empty expression");
  expect_err(" \t\n", "cron: empty expression");
  expect_err("* * * *", "cron: expected 5 fields (minute hour day-of-month month "
             "day-of-week) or 6 (second first), got 4");
  expect_err("* * * * * * *", "cron: expected 5 fields (minute hour day-of-month month "
             "day-of-week) or 6 (second first), got 7");
  expect_err("1 2 3 4 5 6 7 8 9 10 11", "cron: expected 5 fields (minute hour "
             "day-of-month month day-of-week) or 6 (second first), got 11");
  expect_err("@weekly 1", "cron: unexpected \"1\" after @weekly");
  expect_err("@often", "cron: unknown macro \"@often\" (expected @yearly, @annually, "
             "@monthly, @weekly, @daily, @midnight, @hourly or @reboot)");
  expect_err("@DAILY", "cron: unknown macro \"@DAILY\" (expected @yearly, @annually, "
             "@monthly, @weekly, @daily, @midnight, @hourly or @reboot)");
  expect_err("@", "cron: unknown macro \"@\" (expected @yearly, @annually, "
             "@monthly, @weekly, @daily, @midnight, @hourly or @reboot)");
  expect_err("0 0 \x01 * *", "cron: field 3 (day of month) \"?\": unexpected \"?\"");
}

static void test_long_and_odd_input (void **state) {
  char big[CRON_MAX_TEXT + 10], want[128];
  cron_expr c;
  size_t i;
  (void)state;
  memset(big, '1', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  snprintf(want, sizeof want, "cron: expression longer than %d bytes", CRON_MAX_TEXT - 1);
  expect_err(big, want);

  /* a long but legal list: every minute written out */
  for (i = 0; i < 60; i++) snprintf(big + 3 * i, 4, "%02d,", (int)i);
  big[3 * 60 - 1] = '\0';
  strcat(big, " * * * *");
  parse_ok(&c, big, CRON_SECONDS_AUTO);
  assert_true(c.minute == range(0, 59, 1));
  assert_false(c.flags & CRON_MIN_STAR);

  /* a long item is quoted shortened */
  expect_err("0 0 * * aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
             "cron: field 5 (day of week) \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": "
             "unknown name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" (expected sun-sat)");

  /* a tiny error buffer is still terminated, and errlen 0 writes nothing */
  {
    char small[8];
    assert_int_equal(cron_parse(&c, "0 0 32 * *", CRON_SECONDS_AUTO, small, sizeof small), -1);
    assert_string_equal(small, "cron: f");
    assert_int_equal(cron_parse(&c, "0 0 32 * *", CRON_SECONDS_AUTO, NULL, 0), -1);
  }
}

static void test_never_flag (void **state) {
  cron_expr c;
  (void)state;
  parse_ok(&c, "0 0 30 2 *", CRON_SECONDS_AUTO);
  assert_true(c.flags & CRON_NEVER);
  parse_ok(&c, "0 0 31 4,6,9,11 *", CRON_SECONDS_AUTO);
  assert_true(c.flags & CRON_NEVER);
  parse_ok(&c, "0 0 30,31 2 */2", CRON_SECONDS_AUTO);    /* AND: still impossible */
  assert_true(c.flags & CRON_NEVER);
  parse_ok(&c, "0 0 29 2 *", CRON_SECONDS_AUTO);         /* leap days exist */
  assert_false(c.flags & CRON_NEVER);
  parse_ok(&c, "0 0 30 2 1", CRON_SECONDS_AUTO);         /* OR: every Monday in February */
  assert_false(c.flags & CRON_NEVER);
  parse_ok(&c, "0 0 31 2,3 *", CRON_SECONDS_AUTO);
  assert_false(c.flags & CRON_NEVER);
}

static void test_match_day (void **state) {
  cron_expr c;
  (void)state;
  parse_ok(&c, "0 0 1,15 * 5", CRON_SECONDS_AUTO);       /* OR */
  assert_true(cron_match_day(&c, 1, 3));
  assert_true(cron_match_day(&c, 2, 5));
  assert_false(cron_match_day(&c, 2, 4));
  parse_ok(&c, "0 0 */2 * 1", CRON_SECONDS_AUTO);        /* AND: odd days that are Mondays */
  assert_true(cron_match_day(&c, 3, 1));
  assert_false(cron_match_day(&c, 3, 2));
  assert_false(cron_match_day(&c, 2, 1));
  parse_ok(&c, "0 0 1 * *,1", CRON_SECONDS_AUTO);        /* AND via "*,1" */
  assert_true(cron_match_day(&c, 1, 4));
  assert_false(cron_match_day(&c, 8, 1));
}

/* Random fields over cron's alphabet never crash, and every failure is one
   "cron: " line. */
static void test_random_text (void **state) {
  static const char alphabet[] = "0123456789*/-,1234*@?LW#HjanJANmonSUNx\x01\t";
  uint32_t r = 12345;
  int i, ok = 0;
  (void)state;
  for (i = 0; i < 50000; i++) {
    char text[64];
    cron_expr c;
    size_t n = 0;
    int f, k, nf, len;
    r = r * 1103515245u + 12345u;
    nf = 4 + (int)((r >> 16) % 4);
    for (f = 0; f < nf; f++) {
      r = r * 1103515245u + 12345u;
      len = 1 + (int)((r >> 16) % 2);
      for (k = 0; k < len; k++) {
        r = r * 1103515245u + 12345u;
        text[n++] = (r >> 20) % 3 ? "0123456789"[(r >> 16) % 10]
                                  : alphabet[(r >> 16) % (sizeof alphabet - 1)];
      }
      text[n++] = ' ';
    }
    text[n] = '\0';
    if (cron_parse(&c, text, CRON_SECONDS_AUTO, err, sizeof err) == 0) ok++;
    else if (strncmp(err, "cron: ", 6) != 0 || strchr(err, '\n') != NULL)
      fail_msg("\"%s\": bad message %s", text, err);
  }
  assert_true(ok > 100);
}

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_simple_fields),
    cmocka_unit_test(test_ranges_and_steps),
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_macros),
    cmocka_unit_test(test_seconds_field),
    cmocka_unit_test(test_normalised_text),
    cmocka_unit_test(test_field_errors),
    cmocka_unit_test(test_expression_errors),
    cmocka_unit_test(test_long_and_odd_input),
    cmocka_unit_test(test_never_flag),
    cmocka_unit_test(test_match_day),
    cmocka_unit_test(test_random_text),
  };
  return cmocka_run_group_tests_name("cron_parse", tests, NULL, NULL);
}

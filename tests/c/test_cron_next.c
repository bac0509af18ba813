/*
** test_cron_next.c: next-fire computation — calendar edge cases in UTC
** (leap days, month ends, the day rule, steps, seconds, macros, @reboot,
** impossible dates), cronie's DST rule in New York, London and Lord Howe
** (30-minute DST) before and after 2037, gaps and folds of the sizes where
** cronie changes behaviour (< 5 min, >= 3 h), and a minute-by-minute
** reference scanner, written independently of the field-jumping search,
** that must agree with it on random expressions around DST changes.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"

static char err[CRON_ERRLEN];

static int64_t utc (int64_t y, int mon, int d, int h, int mi, int s) {
  return tz_days_from_civil(y, mon, d) * 86400 + h * 3600 + mi * 60 + s;
}

static tz_zone *zone (const char *name) {
  tz_zone *z = name[0] == '<' || strchr(name, ',') ? tz_parse_posix(name, name, err, sizeof err)
                                                  : tz_load(name, err, sizeof err);
  if (z == NULL) fail_msg("zone %s: %s", name, err);
  return z;
}

static void parse (cron_expr *c, const char *text) {
  if (cron_parse(c, text, CRON_SECONDS_AUTO, err, sizeof err) != 0)
    fail_msg("%s: %s", text, err);
}

static const char *iso (int64_t t, char buf[32]) {
  int64_t y;
  int m, d, sod;
  tz_civil_from_days(tz_floor_day(t, &sod), &y, &m, &d);
  snprintf(buf, 32, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d, sod / 3600,
           sod / 60 % 60, sod % 60);
  return buf;
}

/*
** Asserts the first n fire times of expr after `after` in zone tz; want
** lists them (UTC instants), and a count below n means the list ends.
*/
static void expect_next (const char *expr, const char *tz, int64_t after, size_t n,
                         size_t nwant, const int64_t *want) {
  cron_expr c;
  tz_zone *z = zone(tz);
  int64_t got[64];
  size_t k, i;
  char a[32], b[32], w[32];
  parse(&c, expr);
  k = cron_next(&c, z, after, got, n);
  for (i = 0; i < k && i < nwant; i++)
    if (got[i] != want[i])
      fail_msg("%s in %s after %s: #%d is %s, want %s", expr, tz, iso(after, a), (int)i + 1,
               iso(got[i], b), iso(want[i], w));
  if (k != nwant) fail_msg("%s in %s: %d times, want %d", expr, tz, (int)k, (int)nwant);
  for (i = 0; i < k; i++)                              /* matches() agrees */
    if (!cron_matches(&c, z, got[i]) || cron_matches(&c, z, got[i] - 1))
      fail_msg("%s in %s: matches() disagrees at %s", expr, tz, iso(got[i], a));
  tz_free(z);
}

#define T(...) ((const int64_t[]){__VA_ARGS__})
#define NEXT(expr, tz, after, n, ...) \
  expect_next(expr, tz, after, n, sizeof T(__VA_ARGS__) / sizeof(int64_t), T(__VA_ARGS__))
#define NONE(expr, tz, after) expect_next(expr, tz, after, 3, 0, NULL)

/* {====================================================== UTC calendar */

static void test_basics (void **state) {
  int64_t t = utc(2025, 1, 1, 0, 0, 0);
  (void)state;
  NEXT("* * * * *", "UTC", t, 3, t + 60, t + 120, t + 180);
  NEXT("* * * * *", "UTC", t - 1, 2, t, t + 60);              /* strictly after */
  NEXT("* * * * *", "UTC", t + 59, 1, t + 60);
  NEXT("*/20 * * * * *", "UTC", t, 4, t + 20, t + 40, t + 60, t + 80);
  NEXT("30 0 12 * * *", "UTC", t, 2, utc(2025, 1, 1, 12, 0, 30), utc(2025, 1, 2, 12, 0, 30));
  NEXT("0 */23 * * *", "UTC", t, 3, utc(2025, 1, 1, 23, 0, 0), utc(2025, 1, 2, 0, 0, 0),
       utc(2025, 1, 2, 23, 0, 0));
  NEXT("59 23 31 12 *", "UTC", t, 2, utc(2025, 12, 31, 23, 59, 0), utc(2026, 12, 31, 23, 59, 0));
  NEXT("0 0 31 * *", "UTC", t, 4, utc(2025, 1, 31, 0, 0, 0), utc(2025, 3, 31, 0, 0, 0),
       utc(2025, 5, 31, 0, 0, 0), utc(2025, 7, 31, 0, 0, 0));
  NEXT("0 9 * jun-aug mon-fri", "UTC", t, 2, utc(2025, 6, 2, 9, 0, 0), utc(2025, 6, 3, 9, 0, 0));
  NEXT("15 10 * * *", "UTC", -86400 * 3, 1, -86400 * 3 + 36900);   /* before 1970 */
  NEXT("0 0 1 1 *", "UTC", utc(9998, 6, 1, 0, 0, 0), 1, utc(9999, 1, 1, 0, 0, 0));
}

static void test_leap_days (void **state) {
  (void)state;
  NEXT("0 0 29 2 *", "UTC", utc(2023, 6, 1, 0, 0, 0), 3, utc(2024, 2, 29, 0, 0, 0),
       utc(2028, 2, 29, 0, 0, 0), utc(2032, 2, 29, 0, 0, 0));
  NEXT("0 0 29 2 *", "UTC", utc(2096, 3, 1, 0, 0, 0), 1, utc(2104, 2, 29, 0, 0, 0));  /* 2100 */
  NEXT("0 0 29 2 *", "UTC", utc(2399, 1, 1, 0, 0, 0), 1, utc(2400, 2, 29, 0, 0, 0));
  /* AND (dow starts with '*'): Feb 29 that is a Sunday; OR: every Sunday in Feb too */
  NEXT("0 0 29 2 */7", "UTC", utc(2024, 3, 1, 0, 0, 0), 3, utc(2032, 2, 29, 0, 0, 0),
       utc(2060, 2, 29, 0, 0, 0), utc(2088, 2, 29, 0, 0, 0));
  NEXT("0 0 29 2 0", "UTC", utc(2024, 3, 1, 0, 0, 0), 2, utc(2025, 2, 2, 0, 0, 0),
       utc(2025, 2, 9, 0, 0, 0));
}

static void test_day_rule (void **state) {
  int64_t t = utc(2025, 1, 1, 0, 0, 0);                       /* a Wednesday */
  (void)state;
  /* OR: the 1st, the 15th and every Friday */
  NEXT("30 4 1,15 * 5", "UTC", t, 4, utc(2025, 1, 1, 4, 30, 0), utc(2025, 1, 3, 4, 30, 0),
       utc(2025, 1, 10, 4, 30, 0), utc(2025, 1, 15, 4, 30, 0));
  /* AND: "*\/2" is a star: odd days that are Mondays (Jan 13, Jan 27, Feb 3) */
  NEXT("0 0 */2 * 1", "UTC", t, 3, utc(2025, 1, 13, 0, 0, 0), utc(2025, 1, 27, 0, 0, 0),
       utc(2025, 2, 3, 0, 0, 0));
  NEXT("0 0 1-31 * 1", "UTC", t, 2, utc(2025, 1, 2, 0, 0, 0), utc(2025, 1, 3, 0, 0, 0));
  NEXT("0 0 13 * 5", "UTC", t, 3, utc(2025, 1, 3, 0, 0, 0), utc(2025, 1, 10, 0, 0, 0),
       utc(2025, 1, 13, 0, 0, 0));
  NEXT("0 0 * * fri-sun", "UTC", t, 3, utc(2025, 1, 3, 0, 0, 0), utc(2025, 1, 4, 0, 0, 0),
       utc(2025, 1, 5, 0, 0, 0));
}

static void test_macros_and_never (void **state) {
  int64_t t = utc(2025, 5, 15, 12, 0, 0);                     /* a Thursday */
  (void)state;
  NEXT("@yearly", "UTC", t, 1, utc(2026, 1, 1, 0, 0, 0));
  NEXT("@monthly", "UTC", t, 1, utc(2025, 6, 1, 0, 0, 0));
  NEXT("@weekly", "UTC", t, 2, utc(2025, 5, 18, 0, 0, 0), utc(2025, 5, 25, 0, 0, 0));
  NEXT("@daily", "UTC", t, 1, utc(2025, 5, 16, 0, 0, 0));
  NEXT("@hourly", "UTC", t, 1, utc(2025, 5, 15, 13, 0, 0));
  NONE("@reboot", "UTC", t);
  NONE("0 0 30 2 *", "UTC", t);
  NONE("0 0 31 4,6,9,11 *", "America/New_York", t);
}

static void test_limits (void **state) {
  cron_expr c;
  tz_zone *z = zone("UTC");
  int64_t out[4];
  clock_t start;
  (void)state;
  parse(&c, "* * * * *");
  assert_int_equal(cron_next(&c, z, CRON_TIME_MAX + 1, out, 1), 0);
  assert_int_equal(cron_next(&c, z, CRON_TIME_MIN - 1, out, 1), 0);
  assert_int_equal(cron_next(&c, z, CRON_TIME_MAX, out, 1), 1);
  assert_int_equal(cron_next(&c, z, 0, out, 0), 0);
  assert_false(cron_matches(&c, z, INT64_MIN));
  assert_false(cron_matches(&c, z, INT64_MAX));
  assert_true(cron_matches(&c, z, 0));
  assert_true(cron_next_local(&c, INT64_MAX - 1, INT64_MAX) == CRON_NONE);
  assert_true(cron_next_local(&c, INT64_MIN, 0) == CRON_NONE);
  tz_free(z);
  /* a rare expression in a DST zone is still fast: it jumps, it does not scan */
  z = zone("America/New_York");
  parse(&c, "0 0 29 2 */7");
  start = clock();
  assert_int_equal(cron_next(&c, z, utc(2024, 3, 1, 0, 0, 0), out, 4), 4);
  assert_true(out[3] == utc(2128, 2, 29, 5, 0, 0));
  parse(&c, "0 0 30 2 *");
  assert_int_equal(cron_next(&c, z, 0, out, 1), 0);
  assert_true((double)(clock() - start) / CLOCKS_PER_SEC < 0.5);
  tz_free(z);
}

/* }====================================================== */

/* {====================================================== DST */

static void test_new_york_spring (void **state) {
  /* 2026-03-08 02:00 EST -> 03:00 EDT at 07:00Z */
  int64_t t = utc(2026, 3, 7, 0, 0, 0), jump = utc(2026, 3, 8, 7, 0, 0);
  (void)state;
  NEXT("30 2 * * *", "America/New_York", t, 3, utc(2026, 3, 7, 7, 30, 0), jump,
       utc(2026, 3, 9, 6, 30, 0));
  NEXT("0,15,30,45 2 * * *", "America/New_York", utc(2026, 3, 8, 0, 0, 0), 2, jump,
       utc(2026, 3, 9, 6, 0, 0));
  NEXT("0 3 * * *", "America/New_York", utc(2026, 3, 8, 0, 0, 0), 1, jump);
  NEXT("30 2,3 * * *", "America/New_York", utc(2026, 3, 8, 0, 0, 0), 2, jump, jump + 1800);
  /* wildcard jobs do not replay the gap */
  NEXT("*/30 2 * * *", "America/New_York", utc(2026, 3, 7, 8, 0, 0), 2,
       utc(2026, 3, 9, 6, 0, 0), utc(2026, 3, 9, 6, 30, 0));
  NEXT("0 * * * *", "America/New_York", utc(2026, 3, 8, 5, 30, 0), 3,
       utc(2026, 3, 8, 6, 0, 0), jump, jump + 3600);
  NEXT("* * * * *", "America/New_York", jump - 120, 3, jump - 60, jump, jump + 60);
  /* seconds: the replay happens at the jump, once */
  NEXT("*/20 30 2 * * *", "America/New_York", utc(2026, 3, 8, 0, 0, 0), 2, jump,
       utc(2026, 3, 9, 6, 30, 0));
  /* after the table: 2040-03-11 */
  NEXT("30 2 * * *", "America/New_York", utc(2040, 3, 10, 12, 0, 0), 2,
       utc(2040, 3, 11, 7, 0, 0), utc(2040, 3, 12, 6, 30, 0));
}

static void test_new_york_fall (void **state) {
  /* 2025-11-02 02:00 EDT -> 01:00 EST at 06:00Z: 01:xx happens twice */
  int64_t t = utc(2025, 11, 2, 4, 0, 0);
  (void)state;
  NEXT("30 1 * * *", "America/New_York", t, 2, utc(2025, 11, 2, 5, 30, 0),
       utc(2025, 11, 3, 6, 30, 0));
  NEXT("0 1 * * *", "America/New_York", t, 2, utc(2025, 11, 2, 5, 0, 0), utc(2025, 11, 3, 6, 0, 0));
  NEXT("30 0-2 * * *", "America/New_York", t, 3, utc(2025, 11, 2, 4, 30, 0),
       utc(2025, 11, 2, 5, 30, 0), utc(2025, 11, 2, 7, 30, 0));
  NEXT("0 * * * *", "America/New_York", t, 4, utc(2025, 11, 2, 5, 0, 0),
       utc(2025, 11, 2, 6, 0, 0), utc(2025, 11, 2, 7, 0, 0), utc(2025, 11, 2, 8, 0, 0));
  NEXT("@hourly", "America/New_York", t + 3600, 2, utc(2025, 11, 2, 6, 0, 0), utc(2025, 11, 2, 7, 0, 0));
  NEXT("*/30 1 * * *", "America/New_York", t, 5, utc(2025, 11, 2, 5, 0, 0),
       utc(2025, 11, 2, 5, 30, 0), utc(2025, 11, 2, 6, 0, 0), utc(2025, 11, 2, 6, 30, 0),
       utc(2025, 11, 3, 6, 0, 0));
  /* starting inside the second pass: a fixed job waits for 02:00 EST */
  NEXT("45 1,2 * * *", "America/New_York", utc(2025, 11, 2, 6, 10, 0), 1, utc(2025, 11, 2, 7, 45, 0));
  /* after the table: 2040-11-04 */
  NEXT("30 1 * * *", "America/New_York", utc(2040, 11, 4, 0, 0, 0), 2, utc(2040, 11, 4, 5, 30, 0),
       utc(2040, 11, 5, 6, 30, 0));
}

static void test_london (void **state) {
  (void)state;
  /* 2025-03-30 01:00 GMT -> 02:00 BST at 01:00Z; 2025-10-26 02:00 BST -> 01:00 GMT */
  NEXT("30 1 * * *", "Europe/London", utc(2025, 3, 29, 12, 0, 0), 2, utc(2025, 3, 30, 1, 0, 0),
       utc(2025, 3, 31, 0, 30, 0));
  NEXT("30 1 * * *", "Europe/London", utc(2025, 10, 25, 12, 0, 0), 2, utc(2025, 10, 26, 0, 30, 0),
       utc(2025, 10, 27, 1, 30, 0));
  NEXT("*/30 1 * * *", "Europe/London", utc(2025, 10, 25, 12, 0, 0), 4, utc(2025, 10, 26, 0, 0, 0),
       utc(2025, 10, 26, 0, 30, 0), utc(2025, 10, 26, 1, 0, 0), utc(2025, 10, 26, 1, 30, 0));
  NEXT("0 0 * * *", "Europe/London", utc(2050, 3, 26, 12, 0, 0), 2, utc(2050, 3, 27, 0, 0, 0),
       utc(2050, 3, 27, 23, 0, 0));
}

static void test_lord_howe (void **state) {
  /* +10:30 / +11: 2025-10-05 02:00 -> 02:30 at 15:30Z (Oct 4);
     2025-04-06 02:00 -> 01:30 at 15:00Z (Apr 5) */
  int64_t gap = utc(2025, 10, 4, 15, 30, 0), fold = utc(2025, 4, 5, 15, 0, 0);
  (void)state;
  NEXT("15 2 * * *", "Australia/Lord_Howe", utc(2025, 10, 4, 0, 0, 0), 2, gap,
       utc(2025, 10, 5, 15, 15, 0));
  NEXT("0,15 2 * * *", "Australia/Lord_Howe", utc(2025, 10, 4, 0, 0, 0), 2, gap,
       utc(2025, 10, 5, 15, 0, 0));
  NEXT("45 2 * * *", "Australia/Lord_Howe", utc(2025, 10, 4, 0, 0, 0), 1, gap + 900);
  NEXT("*/10 2 * * *", "Australia/Lord_Howe", utc(2025, 10, 4, 15, 0, 0), 3, gap, gap + 600,
       gap + 1200);
  NEXT("45 1 * * *", "Australia/Lord_Howe", utc(2025, 4, 5, 12, 0, 0), 2, fold - 900,
       utc(2025, 4, 6, 15, 15, 0));
  NEXT("*/15 1 * * *", "Australia/Lord_Howe", utc(2025, 4, 5, 12, 0, 0), 6, fold - 3600,
       fold - 2700, fold - 1800, fold - 900, fold, fold + 900);
  /* the footer era, southern hemisphere: 2045-10-01 */
  NEXT("15 2 * * *", "Australia/Lord_Howe", utc(2045, 9, 30, 0, 0, 0), 1, utc(2045, 9, 30, 15, 30, 0));
}

static void test_jump_sizes (void **state) {
  /* a 4-minute DST (< 5 min): every job replays, wildcard ones too */
  const char *small = "AAA0BBB-0:04,M3.2.0,M11.1.0";
  /* 4-hour and 3-hour DST: gaps of 3 h or more replay nothing; a 4 h fold
     repeats fixed jobs (clock correction), a 3 h fold does not */
  const char *big = "AAA0BBB-4,M3.2.0,M11.1.0", *three = "AAA0BBB-3,M3.2.0,M11.1.0";
  int64_t spring = utc(2025, 3, 9, 2, 0, 0);                  /* 02:00 AAA = 02:00Z */
  (void)state;
  NEXT("*/5 * * * *", small, spring - 600, 3, spring - 300, spring, spring + 60);
  NEXT("0 2 * * *", small, spring - 600, 1, spring);
  NEXT("0 3 * * *", big, spring - 600, 1, utc(2025, 3, 9, 23, 0, 0));
  NEXT("0 3 * * *", three, spring - 600, 1, utc(2025, 3, 10, 0, 0, 0));
  NEXT("0 5 * * *", three, spring - 600, 1, spring);          /* 05:00 BBB exists */
  /* fall back 2025-11-02 02:00 BBB: +4 -> 0 at 2025-11-01 22:00Z */
  NEXT("0 23 * * *", big, utc(2025, 11, 1, 12, 0, 0), 2, utc(2025, 11, 1, 19, 0, 0),
       utc(2025, 11, 1, 23, 0, 0));
  NEXT("0 23 * * *", three, utc(2025, 11, 1, 12, 0, 0), 2, utc(2025, 11, 1, 20, 0, 0),
       utc(2025, 11, 2, 23, 0, 0));
  /* Samoa skipped 2011-12-30 (24 h): nothing replays */
  NEXT("0 12 * * *", "Pacific/Apia", utc(2011, 12, 29, 0, 0, 0), 2, utc(2011, 12, 29, 22, 0, 0),
       utc(2011, 12, 30, 22, 0, 0));
}

/* }====================================================== */

/* {====================================================== reference scanner */

/* Does the naive local time L match every field? */
static int naive_match (const cron_expr *c, int64_t local) {
  tz_tm tm;
  int sod;
  int64_t days = tz_floor_day(local, &sod);
  tz_civil_from_days(days, &tm.year, &tm.mon, &tm.mday);
  tm.hour = sod / 3600;
  tm.min = sod / 60 % 60;
  tm.sec = sod % 60;
  tm.wday = tz_weekday(days);
  return cron_match_tm(c, &tm);
}

/*
** cronie's rule, one minute at a time (cron.h), through tz_localtime and
** tz_local_to_utc instead of the search's segment walk.
*/
static int ref_is_fire (const cron_expr *c, const tz_zone *z, int64_t t) {
  tz_tm tm;
  tz_segment seg;
  int64_t out[2], local;
  int wild = cron_is_wildcard(c), n;
  tz_segment_at(z, t, &seg);
  if (seg.start == t && seg.utoff > seg.prev_utoff) {
    int64_t jump = seg.utoff - seg.prev_utoff, l;
    if (jump < CRON_GAP_LARGE && (!wild || jump < CRON_JUMP_SMALL))
      for (l = t + seg.prev_utoff; l < t + seg.utoff; l += 60)
        if (naive_match(c, l)) return 1;
  }
  tz_localtime(z, t, &tm);
  if (!cron_match_tm(c, &tm)) return 0;
  local = t + tm.utoff;
  n = tz_local_to_utc(z, local, out);
  if (n == 2 && t == out[1] && !wild && out[1] - out[0] <= CRON_FOLD_LARGE) return 0;
  return 1;
}

static uint32_t rng = 0x2545F491u;

static int rnd (int n) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return (int)(rng % (uint32_t)n);
}

/* A random field over lo..hi: *, a, a-b, a-b/n, *\/n, a,b. */
static void rnd_field (char *out, size_t len, int lo, int hi) {
  int a = lo + rnd(hi - lo + 1), b = a + rnd(hi - a + 1), k = 1 + rnd(4);
  switch (rnd(7)) {
    case 0: case 1: snprintf(out, len, "*"); break;
    case 2: snprintf(out, len, "%d", a); break;
    case 3: snprintf(out, len, "%d-%d", a, b); break;
    case 4: snprintf(out, len, "%d-%d/%d", a, b, k); break;
    case 5: snprintf(out, len, "*/%d", k + 1); break;
    default: snprintf(out, len, "%d,%d", a, lo + rnd(hi - lo + 1)); break;
  }
}

static void rnd_expr (char *out, size_t len) {
  char f[5][32];
  rnd_field(f[0], sizeof f[0], 0, 59);
  rnd_field(f[1], sizeof f[1], 0, 23);
  if (rnd(3) == 0) snprintf(f[1], sizeof f[1], "%d-%d", rnd(2), 2 + rnd(2));   /* DST hours */
  rnd_field(f[2], sizeof f[2], 1, 31);
  snprintf(f[3], sizeof f[3], "*");
  rnd_field(f[4], sizeof f[4], 0, 7);
  snprintf(out, len, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
}

static void test_reference_scanner (void **state) {
  static const char *zones[] = {"America/New_York", "Europe/London", "Australia/Lord_Howe",
                                "AAA0BBB-0:04,M3.2.0,M11.1.0", "AAA0BBB-4,M3.2.0,M11.1.0",
                                NULL};
  /* a few days before each change in 2025 (US / EU / AU rules), and 2040 */
  const int64_t starts[] = {utc(2025, 3, 7, 0, 0, 0), utc(2025, 3, 28, 0, 0, 0),
                            utc(2025, 4, 4, 0, 0, 0), utc(2025, 10, 3, 0, 0, 0),
                            utc(2025, 10, 24, 0, 0, 0), utc(2025, 10, 31, 0, 0, 0),
                            utc(2040, 11, 2, 0, 0, 0)};
  const int64_t window = 5 * 86400;
  int zi, e, compared = 0;
  (void)state;
  for (zi = 0; zones[zi] != NULL; zi++) {
    tz_zone *z = zone(zones[zi]);
    for (e = 0; e < 40; e++) {
      char text[160];
      cron_expr c;
      size_t si;
      rnd_expr(text, sizeof text);
      parse(&c, text);
      for (si = 0; si < sizeof starts / sizeof starts[0]; si++) {
        int64_t after = starts[si] + rnd(3600), t, got[64];
        size_t k = cron_next(&c, z, after, got, 64), i = 0;
        char a[32];
        for (t = (after / 60 + 1) * 60; t <= after + window; t += 60) {
          if (!ref_is_fire(&c, z, t)) continue;
          if (i >= k || got[i] != t)
            fail_msg("%s in %s after %lld: reference fires at %s, next() says %s", text,
                     zones[zi], (long long)after, iso(t, a),
                     i < k ? iso(got[i], a + 0) : "nothing");
          i++;
          compared++;
          if (i == 64) break;
        }
        if (i < k && got[i] <= after + window && i < 64)
          fail_msg("%s in %s: next() fires at %s, the reference does not", text, zones[zi],
                   iso(got[i], a));
      }
    }
    tz_free(z);
  }
  assert_true(compared > 10000);
}

/* }====================================================== */

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_basics),
    cmocka_unit_test(test_leap_days),
    cmocka_unit_test(test_day_rule),
    cmocka_unit_test(test_macros_and_never),
    cmocka_unit_test(test_limits),
    cmocka_unit_test(test_new_york_spring),
    cmocka_unit_test(test_new_york_fall),
    cmocka_unit_test(test_london),
    cmocka_unit_test(test_lord_howe),
    cmocka_unit_test(test_jump_sizes),
    cmocka_unit_test(test_reference_scanner),
  };
  return cmocka_run_group_tests_name("cron_next", tests, NULL, NULL);
}

/*
** test_cron_tz.c: the time zone reader — the civil calendar, the built-in
** UTC, real database zones around their DST changes (New York, London,
** Lord Howe's 30-minute DST, Nuuk's negative rule times) before and after
** 2037 (where the footer takes over), gaps and folds of the local -> UTC
** mapping, glibc's localtime_r as an independent check over three
** centuries, crafted TZif files of each version and each kind of damage,
** POSIX TZ strings, zone names, "local" and $TZDIR.
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
#include <time.h>
#include <unistd.h>

#include "tz.h"

static char err[256];

static tz_zone *load (const char *name) {
  tz_zone *z = tz_load(name, err, sizeof err);
  if (z == NULL) fail_msg("tz_load(%s): %s", name, err);
  return z;
}

/* UTC instant of a UTC civil time. */
static int64_t utc (int64_t y, int mon, int d, int h, int mi, int s) {
  return tz_days_from_civil(y, mon, d) * 86400 + h * 3600 + mi * 60 + s;
}

/* Asserts the local reading of t in z. */
static void expect_local (const tz_zone *z, int64_t t, int64_t y, int mon, int d, int h,
                          int mi, int s, int32_t utoff, int isdst, const char *abbr) {
  tz_tm tm;
  tz_localtime(z, t, &tm);
  if (tm.year != y || tm.mon != mon || tm.mday != d || tm.hour != h || tm.min != mi ||
      tm.sec != s || tm.utoff != utoff || tm.isdst != isdst || strcmp(tm.abbr, abbr) != 0)
    fail_msg("%s at %lld: got %lld-%02d-%02d %02d:%02d:%02d %d %d %s, want "
             "%lld-%02d-%02d %02d:%02d:%02d %d %d %s", tz_name(z), (long long)t,
             (long long)tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec, (int)tm.utoff,
             tm.isdst, tm.abbr, (long long)y, mon, d, h, mi, s, (int)utoff, isdst, abbr);
}

/* Asserts how a wall-clock time maps back: n instants, a and b. */
static void expect_mktime (const tz_zone *z, int64_t y, int mon, int d, int h, int mi,
                           int n, int64_t a, int64_t b) {
  int64_t out[2];
  int got = tz_mktime(z, y, mon, d, h, mi, 0, out);
  if (got != n || (n > 0 && out[0] != a) || (n > 1 && out[1] != b))
    fail_msg("%s %lld-%02d-%02d %02d:%02d: %d instants (%lld %lld), want %d (%lld %lld)",
             tz_name(z), (long long)y, mon, d, h, mi, got, (long long)(got > 0 ? out[0] : 0),
             (long long)(got > 1 ? out[1] : 0), n, (long long)a, (long long)b);
}

/* {====================================================== calendar */

static void test_civil (void **state) {
  int64_t d, y;
  int m, md;
  (void)state;
  assert_int_equal(tz_days_from_civil(1970, 1, 1), 0);
  assert_int_equal(tz_days_from_civil(2000, 3, 1), 11017);
  assert_int_equal(tz_days_from_civil(1969, 12, 31), -1);
  assert_int_equal(tz_days_from_civil(1, 1, 1), -719162);
  assert_int_equal(tz_weekday(0), 4);                        /* Thursday */
  assert_int_equal(tz_weekday(-1), 3);
  assert_int_equal(tz_weekday(tz_days_from_civil(2026, 3, 8)), 0);
  for (d = -800000; d <= 800000; d += 7) {
    tz_civil_from_days(d, &y, &m, &md);
    if (tz_days_from_civil(y, m, md) != d || md < 1 || md > tz_days_in_month(y, m))
      fail_msg("day %lld round trip", (long long)d);
  }
  assert_true(tz_is_leap(2000) && tz_is_leap(2024) && !tz_is_leap(1900) && !tz_is_leap(2100));
  assert_int_equal(tz_days_in_month(2024, 2), 29);
  assert_int_equal(tz_days_in_month(2100, 2), 28);
  assert_int_equal(tz_days_in_month(2025, 13), 0);
  {
    int sod;
    assert_int_equal(tz_floor_day(-1, &sod), -1);
    assert_int_equal(sod, 86399);
    assert_int_equal(tz_floor_day(86400, &sod), 1);
    assert_int_equal(sod, 0);
  }
}

/* }====================================================== */

/* {====================================================== real zones */

static void test_utc (void **state) {
  tz_zone *z = load("UTC");
  tz_segment seg;
  int64_t out[2];
  (void)state;
  assert_string_equal(tz_name(z), "UTC");
  expect_local(z, 0, 1970, 1, 1, 0, 0, 0, 0, 0, "UTC");
  expect_local(z, -1, 1969, 12, 31, 23, 59, 59, 0, 0, "UTC");
  expect_local(z, utc(9999, 12, 31, 23, 59, 59), 9999, 12, 31, 23, 59, 59, 0, 0, "UTC");
  assert_int_equal(tz_local_to_utc(z, 12345, out), 1);
  assert_int_equal(out[0], 12345);
  tz_segment_at(z, 0, &seg);
  assert_true(seg.start == INT64_MIN && seg.end == INT64_MAX && seg.utoff == 0);
  tz_free(z);
}

static void test_new_york (void **state) {
  tz_zone *z = load("America/New_York");
  tz_segment seg;
  (void)state;
  /* 2025: spring forward 2025-03-09 02:00 EST, fall back 2025-11-02 02:00 EDT */
  expect_local(z, utc(2025, 3, 9, 6, 59, 59), 2025, 3, 9, 1, 59, 59, -18000, 0, "EST");
  expect_local(z, utc(2025, 3, 9, 7, 0, 0), 2025, 3, 9, 3, 0, 0, -14400, 1, "EDT");
  expect_local(z, utc(2025, 11, 2, 5, 59, 59), 2025, 11, 2, 1, 59, 59, -14400, 1, "EDT");
  expect_local(z, utc(2025, 11, 2, 6, 0, 0), 2025, 11, 2, 1, 0, 0, -18000, 0, "EST");
  expect_mktime(z, 2025, 3, 9, 1, 59, 1, utc(2025, 3, 9, 6, 59, 0), 0);
  expect_mktime(z, 2025, 3, 9, 2, 0, 0, 0, 0);               /* the gap */
  expect_mktime(z, 2025, 3, 9, 2, 30, 0, 0, 0);
  expect_mktime(z, 2025, 3, 9, 3, 0, 1, utc(2025, 3, 9, 7, 0, 0), 0);
  expect_mktime(z, 2025, 11, 2, 0, 59, 1, utc(2025, 11, 2, 4, 59, 0), 0);
  expect_mktime(z, 2025, 11, 2, 1, 0, 2, utc(2025, 11, 2, 5, 0, 0), utc(2025, 11, 2, 6, 0, 0));
  expect_mktime(z, 2025, 11, 2, 1, 30, 2, utc(2025, 11, 2, 5, 30, 0), utc(2025, 11, 2, 6, 30, 0));
  expect_mktime(z, 2025, 11, 2, 2, 0, 1, utc(2025, 11, 2, 7, 0, 0), 0);

  tz_segment_at(z, utc(2025, 7, 1, 0, 0, 0), &seg);
  assert_true(seg.start == utc(2025, 3, 9, 7, 0, 0));
  assert_true(seg.end == utc(2025, 11, 2, 6, 0, 0));
  assert_int_equal(seg.utoff, -14400);
  assert_int_equal(seg.prev_utoff, -18000);
  assert_int_equal(seg.isdst, 1);

  /* after the table (2037): the footer EST5EDT,M3.2.0,M11.1.0 */
  expect_local(z, utc(2040, 3, 11, 6, 59, 59), 2040, 3, 11, 1, 59, 59, -18000, 0, "EST");
  expect_local(z, utc(2040, 3, 11, 7, 0, 0), 2040, 3, 11, 3, 0, 0, -14400, 1, "EDT");
  expect_local(z, utc(2040, 11, 4, 6, 0, 0), 2040, 11, 4, 1, 0, 0, -18000, 0, "EST");
  expect_mktime(z, 2040, 11, 4, 1, 30, 2, utc(2040, 11, 4, 5, 30, 0), utc(2040, 11, 4, 6, 30, 0));
  expect_mktime(z, 2040, 3, 11, 2, 30, 0, 0, 0);
  tz_segment_at(z, utc(2040, 7, 1, 0, 0, 0), &seg);
  assert_true(seg.start == utc(2040, 3, 11, 7, 0, 0));
  assert_true(seg.end == utc(2040, 11, 4, 6, 0, 0));
  assert_int_equal(seg.prev_utoff, -18000);
  /* the seam: the last table entry (2037-11-01) and the first footer change */
  tz_segment_at(z, utc(2037, 12, 25, 0, 0, 0), &seg);
  assert_true(seg.start == utc(2037, 11, 1, 6, 0, 0));
  assert_true(seg.end == utc(2038, 3, 14, 7, 0, 0));
  assert_int_equal(seg.prev_utoff, -14400);
  expect_local(z, utc(2400, 6, 1, 12, 0, 0), 2400, 6, 1, 8, 0, 0, -14400, 1, "EDT");
  /* before the first transition: LMT, -4:56:02 */
  expect_local(z, utc(1800, 1, 1, 12, 0, 0), 1800, 1, 1, 7, 3, 58, -17762, 0, "LMT");
  tz_free(z);
}

static void test_london (void **state) {
  tz_zone *z = load("Europe/London");
  (void)state;
  expect_local(z, utc(2025, 3, 30, 0, 59, 59), 2025, 3, 30, 0, 59, 59, 0, 0, "GMT");
  expect_local(z, utc(2025, 3, 30, 1, 0, 0), 2025, 3, 30, 2, 0, 0, 3600, 1, "BST");
  expect_local(z, utc(2025, 10, 26, 1, 0, 0), 2025, 10, 26, 1, 0, 0, 0, 0, "GMT");
  expect_mktime(z, 2025, 3, 30, 1, 30, 0, 0, 0);
  expect_mktime(z, 2025, 10, 26, 1, 30, 2, utc(2025, 10, 26, 0, 30, 0), utc(2025, 10, 26, 1, 30, 0));
  /* footer GMT0BST,M3.5.0/1,M10.5.0: 2050-03-27 and 2050-10-30 */
  expect_local(z, utc(2050, 3, 27, 1, 0, 0), 2050, 3, 27, 2, 0, 0, 3600, 1, "BST");
  expect_local(z, utc(2050, 10, 30, 0, 59, 59), 2050, 10, 30, 1, 59, 59, 3600, 1, "BST");
  expect_local(z, utc(2050, 10, 30, 1, 0, 0), 2050, 10, 30, 1, 0, 0, 0, 0, "GMT");
  tz_free(z);
}

static void test_lord_howe (void **state) {
  tz_zone *z = load("Australia/Lord_Howe");
  tz_segment seg;
  (void)state;
  /* +10:30 standard, +11 summer: 2025-04-06 02:00 -> 01:30, 2025-10-05 02:00 -> 02:30 */
  expect_local(z, utc(2025, 4, 5, 14, 59, 59), 2025, 4, 6, 1, 59, 59, 39600, 1, "+11");
  expect_local(z, utc(2025, 4, 5, 15, 0, 0), 2025, 4, 6, 1, 30, 0, 37800, 0, "+1030");
  expect_local(z, utc(2025, 10, 4, 15, 29, 59), 2025, 10, 5, 1, 59, 59, 37800, 0, "+1030");
  expect_local(z, utc(2025, 10, 4, 15, 30, 0), 2025, 10, 5, 2, 30, 0, 39600, 1, "+11");
  expect_mktime(z, 2025, 10, 5, 2, 15, 0, 0, 0);
  expect_mktime(z, 2025, 4, 6, 1, 45, 2, utc(2025, 4, 5, 14, 45, 0), utc(2025, 4, 5, 15, 15, 0));
  expect_mktime(z, 2025, 4, 6, 1, 15, 1, utc(2025, 4, 5, 14, 15, 0), 0);
  tz_segment_at(z, utc(2025, 10, 4, 15, 30, 0), &seg);
  assert_int_equal(seg.utoff - seg.prev_utoff, 1800);
  /* footer, southern hemisphere: DST spans the new year */
  expect_local(z, utc(2045, 1, 15, 0, 0, 0), 2045, 1, 15, 11, 0, 0, 39600, 1, "+11");
  expect_local(z, utc(2045, 7, 15, 0, 0, 0), 2045, 7, 15, 10, 30, 0, 37800, 0, "+1030");
  /* 2045-10-01 is the first Sunday of October */
  expect_mktime(z, 2045, 10, 1, 2, 10, 0, 0, 0);
  expect_local(z, utc(2045, 9, 30, 15, 30, 0), 2045, 10, 1, 2, 30, 0, 39600, 1, "+11");
  tz_free(z);
}

static void test_nuuk_negative_rule_time (void **state) {
  /* <-02>2<-01>,M3.5.0/-1,M10.5.0/0: changes at -1:00 local on Sundays */
  tz_zone *z = tz_load("America/Nuuk", err, sizeof err);
  (void)state;
  if (z == NULL) skip();
  /* 2050-03-27 is the last Sunday of March: -1:00 that day = 2050-03-26 23:00 -02 */
  expect_local(z, utc(2050, 3, 27, 0, 59, 59), 2050, 3, 26, 22, 59, 59, -7200, 0, "-02");
  expect_local(z, utc(2050, 3, 27, 1, 0, 0), 2050, 3, 27, 0, 0, 0, -3600, 1, "-01");
  tz_free(z);
}

/*
** glibc's localtime_r reads the same files with code of its own: an
** independent check of offsets, DST flags and fields every ~3 days from
** 1850 to 2150 (and every 2 h 17 min across 2024-2027) in a set of zones.
*/
static void test_against_glibc (void **state) {
  static const char *zones[] = {"America/New_York", "Europe/London", "Australia/Lord_Howe",
                                "Asia/Kolkata", "America/Nuuk", "Pacific/Apia",
                                "Africa/Casablanca", "America/Sao_Paulo", "Asia/Tokyo",
                                "Antarctica/Troll", "Europe/Dublin", NULL};
  const char *old = getenv("TZ");
  char *saved = old ? strdup(old) : NULL;
  int i;
  (void)state;
  for (i = 0; zones[i] != NULL; i++) {
    tz_zone *z = tz_load(zones[i], err, sizeof err);
    int64_t t;
    if (z == NULL) continue;                  /* not every tzdata has every zone */
    setenv("TZ", zones[i], 1);
    tzset();
    for (t = utc(1850, 1, 1, 0, 0, 0); t < utc(2150, 1, 1, 0, 0, 0);
         t += (t > utc(2024, 1, 1, 0, 0, 0) && t < utc(2027, 1, 1, 0, 0, 0)) ? 8220 : 260017) {
      time_t tt = (time_t)t;
      struct tm g;
      tz_tm m;
      assert_non_null(localtime_r(&tt, &g));
      tz_localtime(z, t, &m);
      if (m.year != g.tm_year + 1900 || m.mon != g.tm_mon + 1 || m.mday != g.tm_mday ||
          m.hour != g.tm_hour || m.min != g.tm_min || m.sec != g.tm_sec ||
          m.wday != g.tm_wday || m.yday != g.tm_yday || m.utoff != g.tm_gmtoff ||
          m.isdst != (g.tm_isdst > 0) || strcmp(m.abbr, g.tm_zone) != 0)
        fail_msg("%s at %lld: ato %lld-%02d-%02d %02d:%02d:%02d %d %s, glibc "
                 "%d-%02d-%02d %02d:%02d:%02d %ld %s", zones[i], (long long)t,
                 (long long)m.year, m.mon, m.mday, m.hour, m.min, m.sec, (int)m.utoff,
                 m.abbr, g.tm_year + 1900, g.tm_mon + 1, g.tm_mday, g.tm_hour, g.tm_min,
                 g.tm_sec, (long)g.tm_gmtoff, g.tm_zone);
    }
    tz_free(z);
  }
  if (saved) { setenv("TZ", saved, 1); free(saved); }
  else unsetenv("TZ");
  tzset();
}

/* Every instant maps to a wall-clock time that maps back to it. */
static void test_round_trip (void **state) {
  static const char *zones[] = {"America/New_York", "Europe/London", "Australia/Lord_Howe",
                                "Pacific/Apia", NULL};
  int i;
  (void)state;
  for (i = 0; zones[i] != NULL; i++) {
    tz_zone *z = load(zones[i]);
    int64_t t;
    for (t = utc(2010, 1, 1, 0, 0, 0); t < utc(2045, 1, 1, 0, 0, 0); t += 1799) {
      tz_tm tm;
      int64_t out[2];
      int n, k, hit = 0;
      tz_localtime(z, t, &tm);
      n = tz_mktime(z, tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec, out);
      for (k = 0; k < n; k++) hit |= out[k] == t;
      if (n < 1 || !hit) fail_msg("%s: %lld does not map back", zones[i], (long long)t);
    }
    tz_free(z);
  }
}

static void test_apia_skipped_day (void **state) {
  /* Samoa skipped 2011-12-30: 2011-12-29 23:59:59 -10 -> 2011-12-31 00:00 +14 */
  tz_zone *z = load("Pacific/Apia");
  (void)state;
  expect_local(z, utc(2011, 12, 30, 9, 59, 59), 2011, 12, 29, 23, 59, 59, -36000, 1, "-10");
  expect_local(z, utc(2011, 12, 30, 10, 0, 0), 2011, 12, 31, 0, 0, 0, 50400, 1, "+14");
  expect_mktime(z, 2011, 12, 30, 12, 0, 0, 0, 0);
  tz_free(z);
}

/* }====================================================== */

/* {====================================================== crafted TZif */

typedef struct tzbuf { unsigned char b[4096]; size_t n; } tzbuf;

static void put (tzbuf *t, const void *p, size_t n) {
  if (n == 0) return;
  memcpy(t->b + t->n, p, n);
  t->n += n;
}

static void put32 (tzbuf *t, int64_t v) {
  unsigned char q[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 8), (unsigned char)v};
  put(t, q, 4);
}

static void put64 (tzbuf *t, int64_t v) {
  put32(t, v >> 32);
  put32(t, v & 0xffffffff);
}

typedef struct ttype { int32_t utoff; int isdst, abbr; } ttype;

static void header (tzbuf *t, char version, size_t ntrans, size_t ntypes, size_t nchars,
                    size_t nleap) {
  unsigned char pad[15] = {0};
  put(t, "TZif", 4);
  put(t, &version, 1);
  put(t, pad, 15);
  put32(t, 0);                      /* isutcnt */
  put32(t, 0);                      /* isstdcnt */
  put32(t, (int64_t)nleap);
  put32(t, (int64_t)ntrans);
  put32(t, (int64_t)ntypes);
  put32(t, (int64_t)nchars);
}

static void block (tzbuf *t, int wide, const int64_t *trans, const unsigned char *idx,
                   size_t ntrans, const ttype *types, size_t ntypes, const char *chars,
                   size_t nchars, size_t nleap) {
  size_t i;
  for (i = 0; i < ntrans; i++) { if (wide) put64(t, trans[i]); else put32(t, trans[i]); }
  put(t, idx, ntrans);
  for (i = 0; i < ntypes; i++) {
    unsigned char q[2] = {(unsigned char)types[i].isdst, (unsigned char)types[i].abbr};
    put32(t, types[i].utoff);
    put(t, q, 2);
  }
  put(t, chars, nchars);
  for (i = 0; i < nleap; i++) { if (wide) put64(t, 0); else put32(t, 0); put32(t, 1); }
}

/* Two transitions: 1000 -> +1 h "DST", 2000 -> back to "STD". */
static const int64_t TRANS[2] = {1000, 2000};
static const unsigned char IDX[2] = {1, 0};
static const ttype TYPES[2] = {{0, 0, 0}, {3600, 1, 4}};
static const char CHARS[] = "STD\0DST";           /* 8 bytes with the final NUL */

static size_t build (tzbuf *t, char version, const char *footer) {
  t->n = 0;
  header(t, version, 2, 2, 8, 0);
  block(t, 0, TRANS, IDX, 2, TYPES, 2, CHARS, 8, 0);
  if (version != 0) {
    header(t, version, 2, 2, 8, 0);
    block(t, 1, TRANS, IDX, 2, TYPES, 2, CHARS, 8, 0);
    put(t, footer, strlen(footer));
  }
  return t->n;
}

static void test_tzif_versions (void **state) {
  tzbuf t;
  tz_zone *z;
  (void)state;
  /* version 1: 32-bit data only */
  build(&t, 0, "");
  assert_non_null(z = tz_parse_tzif(t.b, t.n, "v1", err, sizeof err));
  expect_local(z, 999, 1970, 1, 1, 0, 16, 39, 0, 0, "STD");
  expect_local(z, 1000, 1970, 1, 1, 1, 16, 40, 3600, 1, "DST");
  expect_local(z, 2000, 1970, 1, 1, 0, 33, 20, 0, 0, "STD");
  expect_local(z, 100000000, 1973, 3, 3, 9, 46, 40, 0, 0, "STD");   /* last type stays */
  tz_free(z);

  /* version 2 with an empty footer, 3 and 4 with one */
  build(&t, '2', "\n\n");
  assert_non_null(z = tz_parse_tzif(t.b, t.n, "v2", err, sizeof err));
  expect_local(z, 1500, 1970, 1, 1, 1, 25, 0, 3600, 1, "DST");
  tz_free(z);
  build(&t, '3', "\nAAA-2BBB,J1/0,J365/23\n");
  assert_non_null(z = tz_parse_tzif(t.b, t.n, "v3", err, sizeof err));
  expect_local(z, 5000, 1970, 1, 1, 4, 23, 20, 10800, 1, "BBB");    /* footer after 2000 */
  /* DST ends Dec 31 23:00 BBB (20:00Z), starts Jan 1 00:00 AAA (22:00Z) */
  expect_local(z, utc(2030, 12, 31, 21, 0, 0), 2030, 12, 31, 23, 0, 0, 7200, 0, "AAA");
  expect_local(z, utc(2030, 12, 31, 22, 0, 0), 2031, 1, 1, 1, 0, 0, 10800, 1, "BBB");
  tz_free(z);
  build(&t, '4', "\nUTC0\n");
  assert_non_null(z = tz_parse_tzif(t.b, t.n, "v4", err, sizeof err));
  expect_local(z, 5000, 1970, 1, 1, 1, 23, 20, 0, 0, "UTC");
  tz_free(z);
}

static void expect_bad (const unsigned char *data, size_t len, const char *why) {
  char want[256];
  tz_zone *z = tz_parse_tzif(data, len, "X", err, sizeof err);
  if (z != NULL) { tz_free(z); fail_msg("accepted, want: %s", why); }
  snprintf(want, sizeof want, "time zone \"X\": invalid TZif data (%s)", why);
  assert_string_equal(err, want);
  assert_int_equal(errno, EINVAL);
}

static void test_tzif_damage (void **state) {
  tzbuf t, u;
  size_t n, cut;
  (void)state;
  n = build(&t, '2', "\nSTD0\n");
  expect_bad(t.b, 10, "truncated header");
  memcpy(&u, &t, sizeof t);
  u.b[0] = 'X';
  expect_bad(u.b, n, "not a TZif file");
  memcpy(&u, &t, sizeof t);
  u.b[4] = '1';
  expect_bad(u.b, n, "unknown version");
  expect_bad(t.b, 60, "truncated data");
  for (cut = 0; cut < n; cut++) {                  /* every truncation fails cleanly */
    tz_zone *z = tz_parse_tzif(t.b, cut, "X", err, sizeof err);
    assert_null(z);
  }
  expect_bad(t.b, n - 1, "unterminated footer");
  expect_bad(t.b, n - 6, "missing footer");

  build(&u, '2', "\nnot a tz string\n");
  expect_bad(u.b, u.n, "bad TZ string in the footer");
  build(&u, '2', "STD0\n");
  expect_bad(u.b, u.n, "bad footer");

  /* leap seconds, a bad type index, transitions out of order, a bad offset */
  u.n = 0;
  header(&u, 0, 2, 2, 8, 1);
  block(&u, 0, TRANS, IDX, 2, TYPES, 2, CHARS, 8, 1);
  expect_bad(u.b, u.n, "leap-second zones (right/...) are not supported");
  {
    static const unsigned char bad_idx[2] = {1, 2};
    static const int64_t bad_trans[2] = {2000, 1000};
    static const ttype bad_types[2] = {{0, 0, 0}, {100000, 1, 4}};
    static const ttype bad_dst[2] = {{0, 2, 0}, {3600, 1, 4}};
    static const ttype bad_abbr[2] = {{0, 0, 0}, {3600, 1, 8}};
    u.n = 0;
    header(&u, 0, 2, 2, 8, 0);
    block(&u, 0, TRANS, bad_idx, 2, TYPES, 2, CHARS, 8, 0);
    expect_bad(u.b, u.n, "bad transition type");
    u.n = 0;
    header(&u, 0, 2, 2, 8, 0);
    block(&u, 0, bad_trans, IDX, 2, TYPES, 2, CHARS, 8, 0);
    expect_bad(u.b, u.n, "transitions out of order");
    u.n = 0;
    header(&u, 0, 2, 2, 8, 0);
    block(&u, 0, TRANS, IDX, 2, bad_types, 2, CHARS, 8, 0);
    expect_bad(u.b, u.n, "bad UT offset");
    u.n = 0;
    header(&u, 0, 2, 2, 8, 0);
    block(&u, 0, TRANS, IDX, 2, bad_dst, 2, CHARS, 8, 0);
    expect_bad(u.b, u.n, "bad DST indicator");
    u.n = 0;
    header(&u, 0, 2, 2, 8, 0);
    block(&u, 0, TRANS, IDX, 2, bad_abbr, 2, CHARS, 8, 0);
    expect_bad(u.b, u.n, "bad abbreviation index");
    u.n = 0;
    header(&u, 0, 0, 0, 8, 0);
    expect_bad(u.b, u.n, "bad type count");
    u.n = 0;
    header(&u, 0, 0, 1, 0, 0);
    expect_bad(u.b, u.n, "bad abbreviation size");
  }
  /* an abbreviation without its NUL stays inside the zone's memory */
  {
    static const ttype one[1] = {{0, 0, 0}};
    tz_zone *z;
    tz_tm tm;
    u.n = 0;
    header(&u, 0, 0, 1, 3, 0);
    block(&u, 0, NULL, NULL, 0, one, 1, "ABC", 3, 0);
    assert_non_null(z = tz_parse_tzif(u.b, u.n, "X", err, sizeof err));
    tz_localtime(z, 0, &tm);
    assert_string_equal(tm.abbr, "ABC");
    tz_free(z);
  }
}

/* }====================================================== */

/* {====================================================== POSIX strings */

static tz_zone *posix (const char *spec) {
  tz_zone *z = tz_parse_posix(spec, spec, err, sizeof err);
  if (z == NULL) fail_msg("%s: %s", spec, err);
  return z;
}

/* The POSIX rule of a zone agrees with the zone's own table, 2008-2036. */
static void same_as (const char *spec, const char *name) {
  tz_zone *a = posix(spec), *b = load(name);
  int64_t t;
  for (t = utc(2008, 1, 1, 0, 0, 0); t < utc(2037, 1, 1, 0, 0, 0); t += 3571) {
    tz_tm x, y;
    tz_localtime(a, t, &x);
    tz_localtime(b, t, &y);
    if (x.utoff != y.utoff || x.isdst != y.isdst || strcmp(x.abbr, y.abbr) != 0)
      fail_msg("%s vs %s at %lld: %d/%s vs %d/%s", spec, name, (long long)t, (int)x.utoff,
               x.abbr, (int)y.utoff, y.abbr);
  }
  tz_free(a);
  tz_free(b);
}

static void test_posix_rules (void **state) {
  tz_zone *z;
  (void)state;
  same_as("EST5EDT,M3.2.0,M11.1.0", "America/New_York");
  same_as("EST5EDT", "America/New_York");             /* default US rules */
  same_as("GMT0BST,M3.5.0/1,M10.5.0", "Europe/London");
  same_as("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Berlin");
  same_as("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", "Australia/Lord_Howe");

  /* Jn never counts Feb 29; n does */
  z = posix("AAA3BBB,J60/2,J300/2");                  /* Mar 1 and Oct 27 */
  expect_local(z, utc(2024, 3, 1, 4, 59, 59), 2024, 3, 1, 1, 59, 59, -10800, 0, "AAA");
  expect_local(z, utc(2024, 3, 1, 5, 0, 0), 2024, 3, 1, 3, 0, 0, -7200, 1, "BBB");
  tz_free(z);
  z = posix("AAA3BBB,59/2,300/2");                    /* 2024: Feb 29 and Oct 27 */
  expect_local(z, utc(2024, 2, 29, 5, 0, 0), 2024, 2, 29, 3, 0, 0, -7200, 1, "BBB");
  expect_local(z, utc(2025, 3, 1, 5, 0, 0), 2025, 3, 1, 3, 0, 0, -7200, 1, "BBB");
  tz_free(z);
  /* all-year DST (version 3 idiom): never changes */
  z = posix("EST5EDT4,0/0,J365/25");
  {
    int64_t t;
    tz_segment seg;
    for (t = utc(2020, 1, 1, 0, 0, 0); t < utc(2030, 1, 1, 0, 0, 0); t += 3600 * 7) {
      tz_tm tm;
      tz_localtime(z, t, &tm);
      if (tm.utoff != -14400 || !tm.isdst) fail_msg("all-year DST broken at %lld", (long long)t);
    }
    tz_segment_at(z, utc(2025, 6, 1, 0, 0, 0), &seg);
    assert_true(seg.end == INT64_MAX);
  }
  tz_free(z);
  /* explicit DST offset, minutes and seconds, <...> names */
  z = posix("<-0330>3:30<-0230>2:30,M3.2.0/2:30:15,M11.1.0");
  expect_local(z, utc(2025, 1, 1, 3, 30, 0), 2025, 1, 1, 0, 0, 0, -12600, 0, "-0330");
  tz_free(z);
  z = posix("XXX-14");
  expect_local(z, 0, 1970, 1, 1, 14, 0, 0, 50400, 0, "XXX");
  tz_free(z);
}

static void test_posix_errors (void **state) {
  static const char *bad[] = {"", "EST", "E5", "EST5EDT,M13.1.0,M11.1.0",
                              "EST5EDT,M3.2.0", "EST5EDT,M3.2.0,M11.1.0x", "EST25",
                              "EST5EDT,M3.6.0,M11.1.0", "EST5EDT,M3.2.7,M11.1.0",
                              "EST5EDT,J0,J365", "EST5EDT,366,1", "<AB>5",
                              "EST5EDT,M3.2.0/168,M11.1.0", "EST5:60", "ESTTTTTTTTTTTTTT5",
                              NULL};
  int i;
  (void)state;
  for (i = 0; bad[i] != NULL; i++) {
    tz_zone *z = tz_parse_posix(bad[i], "P", err, sizeof err);
    if (z != NULL) { tz_free(z); fail_msg("accepted %s", bad[i]); }
    assert_non_null(strstr(err, "invalid TZ string"));
  }
  {
    tz_zone *z = tz_parse_posix("EST5EDT,M3.2.0/-167,M11.1.0/167", "P", err, sizeof err);
    assert_non_null(z);                               /* version 3 extremes */
    tz_free(z);
  }
}

/* }====================================================== */

/* {====================================================== names, loading */

static void test_names (void **state) {
  static const char *good[] = {"America/New_York", "Etc/GMT+5", "Etc/GMT-14", "UTC",
                               "local", "America/Argentina/Buenos_Aires", "a.b", "..a",
                               NULL};
  static const char *bad[] = {"", "/etc/passwd", "../etc/passwd", "a/../b", "a/./b", "..",
                              ".", "a//b", "a/", "a b", "a\\b", "a\nb", "ä", NULL};
  char longname[300];
  int i;
  (void)state;
  for (i = 0; good[i] != NULL; i++)
    if (!tz_name_ok(good[i])) fail_msg("refused %s", good[i]);
  for (i = 0; bad[i] != NULL; i++)
    if (tz_name_ok(bad[i])) fail_msg("accepted %s", bad[i]);
  memset(longname, 'a', 256);
  longname[256] = '\0';
  assert_false(tz_name_ok(longname));
  longname[255] = '\0';
  assert_true(tz_name_ok(longname));
}

static void expect_load_error (const char *name, int errnum, const char *want) {
  tz_zone *z = tz_load(name, err, sizeof err);
  if (z != NULL) { tz_free(z); fail_msg("loaded %s", name); }
  assert_int_equal(errno, errnum);
  assert_string_equal(err, want);
}

static void test_load_errors (void **state) {
  (void)state;
  expect_load_error("Mars/Base", ENOENT, "unknown time zone \"Mars/Base\"");
  expect_load_error("America", ENOENT, "unknown time zone \"America\"");
  expect_load_error("../../etc/passwd", EINVAL, "invalid time zone name \"../../etc/passwd\"");
  expect_load_error("/etc/localtime", EINVAL, "invalid time zone name \"/etc/localtime\"");
  expect_load_error("bad\x01name", EINVAL, "invalid time zone name \"bad?name\"");
  expect_load_error("zone.tab", EINVAL, "time zone \"zone.tab\": invalid TZif data (not a TZif file)");
  expect_load_error("right/UTC", EINVAL, "time zone \"right/UTC\": invalid TZif data "
                    "(leap-second zones (right/...) are not supported)");
}

static void with_tz (const char *value) {
  if (value) setenv("TZ", value, 1);
  else unsetenv("TZ");
}

static void test_local (void **state) {
  const char *old = getenv("TZ");
  char *saved = old ? strdup(old) : NULL;
  tz_zone *z;
  tz_tm tm;
  int64_t summer = utc(2025, 7, 1, 12, 0, 0);
  (void)state;
  with_tz("America/New_York");
  z = load("local");
  assert_string_equal(tz_name(z), "local");
  tz_localtime(z, summer, &tm);
  assert_int_equal(tm.utoff, -14400);
  tz_free(z);
  with_tz(":Europe/London");
  z = load("local");
  tz_localtime(z, summer, &tm);
  assert_string_equal(tm.abbr, "BST");
  tz_free(z);
  with_tz(":/usr/share/zoneinfo/Asia/Tokyo");
  z = load("local");
  tz_localtime(z, summer, &tm);
  assert_int_equal(tm.utoff, 32400);
  tz_free(z);
  with_tz("");
  z = load("local");
  tz_localtime(z, summer, &tm);
  assert_int_equal(tm.utoff, 0);
  tz_free(z);
  with_tz("CET-1CEST,M3.5.0,M10.5.0/3");
  z = load("local");
  tz_localtime(z, summer, &tm);
  assert_int_equal(tm.utoff, 7200);
  assert_string_equal(tm.abbr, "CEST");
  tz_free(z);
  with_tz("Bogus/Zone");
  assert_null(tz_load("local", err, sizeof err));
  assert_string_equal(err, "time zone \"local\": $TZ \"Bogus/Zone\" is neither a zone name "
                      "nor a TZ string");
  with_tz(NULL);                                     /* /etc/localtime, or UTC */
  z = load("local");
  tz_localtime(z, summer, &tm);
  {
    time_t tt = (time_t)summer;
    struct tm g;
    tzset();
    localtime_r(&tt, &g);
    assert_int_equal(tm.utoff, g.tm_gmtoff);
  }
  tz_free(z);
  if (saved) { setenv("TZ", saved, 1); free(saved); }
  else unsetenv("TZ");
}

static void test_tzdir (void **state) {
  char dir[] = "/tmp/ato-tz-XXXXXX", path[256];
  tzbuf t;
  FILE *f;
  tz_zone *z;
  tz_tm tm;
  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/Test_Zone", dir);
  build(&t, '2', "\nSTD0DST,M3.2.0,M11.1.0\n");
  assert_non_null(f = fopen(path, "wb"));
  assert_int_equal(fwrite(t.b, 1, t.n, f), t.n);
  fclose(f);
  setenv("TZDIR", dir, 1);
  z = load("Test_Zone");
  tz_localtime(z, 1500, &tm);
  assert_string_equal(tm.abbr, "DST");
  tz_free(z);
  unsetenv("TZDIR");
  expect_load_error("Test_Zone", ENOENT, "unknown time zone \"Test_Zone\"");
  unlink(path);
  rmdir(dir);
}

/* {====================================================== robustness */

/* Damaged copies of a real file parse or fail, and whatever parses works. */
static void test_mutated_files (void **state) {
  FILE *f = fopen("/usr/share/zoneinfo/America/New_York", "rb");
  unsigned char orig[8192], data[8192];
  size_t len;
  uint32_t r = 777;
  int i, parsed = 0;
  (void)state;
  assert_non_null(f);
  len = fread(orig, 1, sizeof orig, f);
  fclose(f);
  assert_true(len > 100 && len < sizeof orig);
  for (i = 0; i < 3000; i++) {
    tz_zone *z;
    int k, flips;
    memcpy(data, orig, len);
    r = r * 1103515245u + 12345u;
    flips = 1 + (int)((r >> 16) % 4);
    for (k = 0; k < flips; k++) {
      r = r * 1103515245u + 12345u;
      data[(r >> 8) % len] ^= (unsigned char)(1u << ((r >> 4) % 8));
    }
    if ((z = tz_parse_tzif(data, len, "M", err, sizeof err)) != NULL) {
      static const int64_t at[] = {INT64_MIN, -TZ_TIME_LIMIT, -1, 0, 1700000000, 2200000000,
                                   TZ_TIME_LIMIT, INT64_MAX};
      size_t j;
      parsed++;
      for (j = 0; j < sizeof at / sizeof at[0]; j++) {
        tz_tm tm;
        int64_t out[2];
        tz_localtime(z, at[j], &tm);
        tz_local_to_utc(z, at[j], out);
      }
      tz_free(z);
    } else {
      assert_null(strchr(err, '\n'));
    }
  }
  assert_true(parsed > 0);
}

/* Extreme instants: clamped, no overflow (UBSan watches). */
static void test_extremes (void **state) {
  static const char *zones[] = {"UTC", "America/New_York", "Australia/Lord_Howe", NULL};
  static const int64_t at[] = {INT64_MIN, INT64_MIN + 1, -TZ_TIME_LIMIT - 1, -TZ_TIME_LIMIT,
                               TZ_TIME_LIMIT, TZ_TIME_LIMIT + 1, INT64_MAX - 1, INT64_MAX};
  int i;
  size_t j;
  (void)state;
  for (i = 0; zones[i] != NULL; i++) {
    tz_zone *z = load(zones[i]);
    for (j = 0; j < sizeof at / sizeof at[0]; j++) {
      tz_tm tm;
      tz_segment seg;
      int64_t out[2];
      tz_localtime(z, at[j], &tm);
      tz_segment_at(z, at[j], &seg);
      assert_true(seg.start <= seg.end);
      assert_true(tz_local_to_utc(z, at[j], out) <= 2);
    }
    assert_int_equal(tz_mktime(z, 2000000000, 1, 1, 0, 0, 0, (int64_t[2]){0, 0}), 0);
    tz_free(z);
  }
}

/* }====================================================== */

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_civil),
    cmocka_unit_test(test_utc),
    cmocka_unit_test(test_new_york),
    cmocka_unit_test(test_london),
    cmocka_unit_test(test_lord_howe),
    cmocka_unit_test(test_nuuk_negative_rule_time),
    cmocka_unit_test(test_against_glibc),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_apia_skipped_day),
    cmocka_unit_test(test_tzif_versions),
    cmocka_unit_test(test_tzif_damage),
    cmocka_unit_test(test_posix_rules),
    cmocka_unit_test(test_posix_errors),
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_load_errors),
    cmocka_unit_test(test_local),
    cmocka_unit_test(test_tzdir),
    cmocka_unit_test(test_mutated_files),
    cmocka_unit_test(test_extremes),
  };
  return cmocka_run_group_tests_name("cron_tz", tests, NULL, NULL);
}

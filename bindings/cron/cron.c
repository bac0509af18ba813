/*
** cron.c — cron expressions (semantics in cron.h): a one-pass parser into
** bit sets, the calendar search over naive local time, and the DST rule
** that turns local matches into fire instants segment by segment.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cron.h"

#define DAY 86400
#define SHOWN 48                     /* bytes of an item quoted in errors */
/* 400 Gregorian years in seconds: the search horizon of next(). */
#define SEARCH_SECS ((int64_t)CRON_SEARCH_YEARS * 146097 / 400 * DAY)

static const char *const MONTHS[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const DAYS[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

typedef struct field_def {
  const char *name;
  int lo, hi;
  const char *const *names;          /* names[i] is value lo + i, or NULL */
} field_def;

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, NFIELDS };

static const field_def FIELDS[NFIELDS] = {
  {"second", 0, 59, NULL},
  {"minute", 0, 59, NULL},
  {"hour", 0, 23, NULL},
  {"day of month", 1, 31, NULL},
  {"month", 1, 12, MONTHS},
  {"day of week", 0, 7, DAYS},
};

typedef struct parser {
  char *err;
  size_t errlen;
  int pos;                           /* the field's number as written */
  const field_def *def;
  const char *item;                  /* the list item being parsed */
} parser;

/* {====================================================== errors */

/* s[0, n) as printable text: control and non-ASCII bytes become '?'. */
static void show (char out[SHOWN + 4], const char *s, size_t n) {
  size_t i, k = n > SHOWN ? SHOWN : n;
  for (i = 0; i < k; i++) {
    unsigned char ch = (unsigned char)s[i];
    out[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
  }
  if (k < n) { memcpy(out + k, "...", 3); k += 3; }
  out[k] = '\0';
}

static int fail (char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* "cron: field 3 (day of month) "ITEM": REASON" */
static int field_fail (parser *p, const char *fmt, ...) {
  char item[SHOWN + 4], reason[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  show(item, p->item, strlen(p->item));
  return fail(p->err, p->errlen, "cron: field %d (%s) \"%s\": %s", p->pos, p->def->name,
              item, reason);
}

/* }====================================================== */

/* {====================================================== fields */

static int is_digit (char ch) { return ch >= '0' && ch <= '9'; }

static int is_alpha (char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static char lower (char ch) {
  return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* A value at *s (digits, or a name where the field has names); advances
   *s past it. Checks the field's range. */
static int parse_value (parser *p, const char **s, int *out) {
  const field_def *d = p->def;
  const char *q = *s;
  size_t n = 0;
  if (is_digit(*q)) {
    long v = 0;
    for (; is_digit(q[n]); n++)
      if (v < 100000) v = v * 10 + (q[n] - '0');   /* saturates: still out of range */
    if (v < d->lo || v > d->hi) {
      if (q == p->item && q[n] == '\0') return field_fail(p, "out of range %d-%d", d->lo, d->hi);
      return field_fail(p, "%.*s out of range %d-%d", (int)(n > 9 ? 9 : n), q, d->lo, d->hi);
    }
    *out = (int)v;
  } else if (is_alpha(*q)) {
    int i = 0;
    char word[4];
    while (is_alpha(q[n])) n++;
    if (d->names == NULL) return field_fail(p, "not a number");
    if (n == 3) {
      for (i = 0; i < 3; i++) word[i] = lower(q[i]);
      word[3] = '\0';
      for (i = 0; d->names[i] != NULL; i++)
        if (strcmp(word, d->names[i]) == 0) break;
    }
    if (n != 3 || d->names[i] == NULL) {
      char shown[SHOWN + 4];
      show(shown, q, n);
      return field_fail(p, "unknown name \"%s\" (expected %s-%s)", shown, d->names[0],
                        d == &FIELDS[F_MON] ? "dec" : "sat");
    }
    *out = d->lo + i;
  } else if (*q == '\0' || *q == ',' || *q == '-' || *q == '/') {
    return field_fail(p, "missing number");
  } else {
    char shown[SHOWN + 4];
    show(shown, q, strlen(q));
    return field_fail(p, "unexpected \"%s\"", shown);
  }
  *s = q + n;
  return 0;
}

/* A step after '/': 1 to 99999. */
static int parse_step (parser *p, const char **s, int *out) {
  const char *q = *s;
  long v = 0;
  size_t n;
  if (!is_digit(*q)) return field_fail(p, "missing step after \"/\"");
  for (n = 0; is_digit(q[n]); n++)
    if (v < 100000) v = v * 10 + (q[n] - '0');
  if (v == 0) return field_fail(p, "step 0");
  if (v > 99999) return field_fail(p, "step too large");
  *out = (int)v;
  *s = q + n;
  return 0;
}

/* One list item (NUL-terminated) into *bits. */
static int parse_item (parser *p, const char *item, uint64_t *bits) {
  const field_def *d = p->def;
  const char *s = item;
  int a, b, step = 1, single = 0, i;
  p->item = item;
  if (*s == '*') {
    a = d->lo;
    b = d->hi;
    s++;
  } else {
    if (parse_value(p, &s, &a) != 0) return -1;
    b = a;
    single = 1;
    if (*s == '-') {
      s++;
      if (parse_value(p, &s, &b) != 0) return -1;
      single = 0;
    }
  }
  if (*s == '/') {
    s++;
    if (parse_step(p, &s, &step) != 0) return -1;
    if (single) b = d->hi;                        /* a/n = a-MAX/n */
  }
  if (*s != '\0') {
    char shown[SHOWN + 4];
    show(shown, s, strlen(s));
    return field_fail(p, "unexpected \"%s\"", shown);
  }
  if (a > b) {
    if (d != &FIELDS[F_DOW] || b != 0) return field_fail(p, "reversed range");
    b = 7;                                        /* fri-sun: cronie's wrap */
  }
  for (i = a; i <= b; i += step) *bits |= (uint64_t)1 << i;
  return 0;
}

/* A whole field (NUL-terminated, no blanks) into *bits. */
static int parse_field (parser *p, char *text, uint64_t *bits) {
  char *item = text;
  *bits = 0;
  for (;;) {
    char *comma = strchr(item, ',');
    int rc;
    if (comma != NULL) *comma = '\0';
    if (*item == '\0') {
      p->item = text;
      if (comma != NULL) *comma = ',';
      return field_fail(p, "empty list item");
    }
    rc = parse_item(p, item, bits);
    if (comma != NULL) *comma = ',';
    if (rc != 0) return -1;
    if (comma == NULL) return 0;
    item = comma + 1;
  }
}

/* }====================================================== */

/* {====================================================== expressions */

static int is_blank (char ch) { return ch == ' ' || ch == '\t'; }

static int is_space (char ch) {
  return is_blank(ch) || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Sets every field to all values (macros then narrow some). */
static void set_all (cron_expr *c) {
  c->second = 1;
  c->minute = ((uint64_t)1 << 60) - 1;
  c->hour = ((uint32_t)1 << 24) - 1;
  c->dom = (((uint32_t)1 << 31) - 1) << 1;
  c->month = (uint16_t)(((1u << 12) - 1) << 1);
  c->dow = 0x7f;
}

/* The macros, with cronie's sets and flags (src/entry.c load_entry). */
static int parse_macro (cron_expr *c, const char *word, char *err, size_t errlen) {
  set_all(c);
  c->minute = 1;
  c->hour = 1;
  if (strcmp(word, "@reboot") == 0) {
    c->flags |= CRON_REBOOT;
  } else if (strcmp(word, "@yearly") == 0 || strcmp(word, "@annually") == 0) {
    c->dom = 1u << 1;
    c->month = 1u << 1;
    c->flags |= CRON_DOW_STAR;
  } else if (strcmp(word, "@monthly") == 0) {
    c->dom = 1u << 1;
    c->flags |= CRON_DOW_STAR;
  } else if (strcmp(word, "@weekly") == 0) {
    c->dow = 1;
    c->flags |= CRON_DOM_STAR;
  } else if (strcmp(word, "@daily") == 0 || strcmp(word, "@midnight") == 0) {
    /* no flags: dom and dow are both full, so OR and AND agree */
  } else if (strcmp(word, "@hourly") == 0) {
    c->hour = ((uint32_t)1 << 24) - 1;
    c->flags |= CRON_HOUR_STAR;
  } else {
    char shown[SHOWN + 4];
    show(shown, word, strlen(word));
    return fail(err, errlen, "cron: unknown macro \"%s\" (expected @yearly, @annually, "
                "@monthly, @weekly, @daily, @midnight, @hourly or @reboot)", shown);
  }
  return 0;
}

/* Splits text (blanks already trimmed) into fields, in place; keeps the
   first 7 and returns how many there are. */
static int split (char *text, char *fields[7]) {
  int n = 0;
  char *s = text;
  while (*s != '\0') {
    if (n < 7) fields[n] = s;
    n++;
    while (*s != '\0' && !is_blank(*s)) s++;
    if (*s == '\0') break;
    *s++ = '\0';
    while (is_blank(*s)) s++;
  }
  return n;
}

static int count_fail (int seconds, int n, char *err, size_t errlen) {
  if (seconds == CRON_SECONDS_YES)
    return fail(err, errlen, "cron: expected 6 fields (second minute hour day-of-month "
                "month day-of-week), got %d", n);
  if (seconds == CRON_SECONDS_NO)
    return fail(err, errlen, "cron: expected 5 fields (minute hour day-of-month month "
                "day-of-week), got %d", n);
  return fail(err, errlen, "cron: expected 5 fields (minute hour day-of-month month "
              "day-of-week) or 6 (second first), got %d", n);
}

/* Can some (month, day of month) pair exist when the day rule ANDs? */
static int day_possible (const cron_expr *c) {
  static const int maxdays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int m;
  if (!(c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))) return 1;   /* OR: dow always hits */
  for (m = 1; m <= 12; m++) {
    uint64_t days = (((uint64_t)1 << (maxdays[m] + 1)) - 1) & ~(uint64_t)1;
    if ((c->month >> m & 1) && (c->dom & days) != 0) return 1;
  }
  return 0;
}

static int parse_fields (cron_expr *c, char **f, int nf, char *err, size_t errlen) {
  static const unsigned star[NFIELDS] = {0, CRON_MIN_STAR, CRON_HOUR_STAR, CRON_DOM_STAR,
                                         0, CRON_DOW_STAR};
  uint64_t bits[NFIELDS];
  parser p;
  int i, first = nf == 6 ? F_SEC : F_MIN;
  p.err = err;
  p.errlen = errlen;
  bits[F_SEC] = 1;                                /* 5 fields: second 0 */
  for (i = first; i < NFIELDS; i++) {
    p.pos = i - first + 1;
    p.def = &FIELDS[i];
    if (f[i - first][0] == '*') c->flags |= star[i];
    if (parse_field(&p, f[i - first], &bits[i]) != 0) return -1;
  }
  if (nf == 6) c->flags |= CRON_SECONDS;
  c->second = bits[F_SEC];
  c->minute = bits[F_MIN];
  c->hour = (uint32_t)bits[F_HOUR];
  c->dom = (uint32_t)bits[F_DOM];
  c->month = (uint16_t)bits[F_MON];
  c->dow = (uint8_t)((bits[F_DOW] | bits[F_DOW] >> 7) & 0x7f);   /* 7 is Sunday */
  return 0;
}

/* The fields of text, lower-cased and joined by single spaces, into out. */
static void normalise (char *out, char **f, int nf) {
  size_t k = 0;
  int i;
  for (i = 0; i < nf; i++) {
    const char *s;
    if (i > 0) out[k++] = ' ';
    for (s = f[i]; *s != '\0'; s++) out[k++] = lower(*s);
  }
  out[k] = '\0';
}

int cron_parse (cron_expr *c, const char *text, int seconds, char *err, size_t errlen) {
  char buf[CRON_MAX_TEXT], *fields[7];
  size_t len;
  int nf;
  memset(c, 0, sizeof *c);
  while (is_space(*text)) text++;
  len = strlen(text);
  while (len > 0 && is_space(text[len - 1])) len--;
  if (len == 0) return fail(err, errlen, "cron: empty expression");
  if (len >= sizeof buf) return fail(err, errlen, "cron: expression longer than %d bytes",
                                     CRON_MAX_TEXT - 1);
  memcpy(buf, text, len);
  buf[len] = '\0';
  nf = split(buf, fields);
  if (buf[0] == '@') {
    if (nf > 1) {
      char shown[SHOWN + 4];
      show(shown, fields[1], strlen(fields[1]));
      return fail(err, errlen, "cron: unexpected \"%s\" after %s", shown, fields[0]);
    }
    if (parse_macro(c, fields[0], err, errlen) != 0) return -1;
  } else {
    if (nf < 5 || nf > 6 || (seconds == CRON_SECONDS_YES && nf != 6) ||
        (seconds == CRON_SECONDS_NO && nf != 5))
      return count_fail(seconds, nf, err, errlen);
    if (parse_fields(c, fields, nf, err, errlen) != 0) return -1;
  }
  if (!day_possible(c)) c->flags |= CRON_NEVER;
  normalise(c->text, fields, nf);
  return 0;
}

/* }====================================================== */

/* {====================================================== matching */

int cron_is_wildcard (const cron_expr *c) {
  return (c->flags & (CRON_MIN_STAR | CRON_HOUR_STAR)) != 0;
}

int cron_match_day (const cron_expr *c, int mday, int wday) {
  int dom = (int)(c->dom >> mday & 1), dow = c->dow >> wday & 1;
  if (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR)) return dom && dow;
  return dom || dow;
}

int cron_match_tm (const cron_expr *c, const tz_tm *tm) {
  if (c->flags & (CRON_REBOOT | CRON_NEVER)) return 0;
  return (c->second >> tm->sec & 1) && (c->minute >> tm->min & 1) &&
         (c->hour >> tm->hour & 1) && (c->month >> tm->mon & 1) &&
         cron_match_day(c, tm->mday, tm->wday);
}

/* The smallest value >= from in set (bits below 64), or -1. */
static int next_in (uint64_t set, int from) {
  if (from >= 64 || (set >> from) == 0) return -1;
  return from + __builtin_ctzll(set >> from);
}

typedef struct civil { int64_t y; int mon, day, hour, min, sec; } civil;

/* Day 1 of month mon (13: January of the next year), 00:00:00. */
static void next_month (civil *p, int mon) {
  if (mon > 12) { p->y++; mon = 1; }
  p->mon = mon;
  p->day = 1;
  p->hour = p->min = p->sec = 0;
}

static void next_day (civil *p) {
  p->day++;
  p->hour = p->min = p->sec = 0;
}

/*
** One field at a time, from the largest: a month not in the set jumps to
** the next month that is, a day that fails the day rule to the next day, an
** hour/minute/second to the next value in its set; running off the end of
** a unit carries into the next larger one and restarts the smaller ones.
*/
int64_t cron_next_local (const cron_expr *c, int64_t from, int64_t limit) {
  civil p;
  int sod, v;
  int64_t days, max_year;
  if ((c->flags & (CRON_REBOOT | CRON_NEVER)) || from >= limit || from < -TZ_TIME_LIMIT ||
      from > TZ_TIME_LIMIT)
    return CRON_NONE;
  tz_civil_from_days(tz_floor_day(from, &sod), &p.y, &p.mon, &p.day);
  p.hour = sod / 3600;
  p.min = sod / 60 % 60;
  p.sec = sod % 60;
  max_year = p.y + CRON_SEARCH_YEARS + 1;
  for (;;) {
    if (p.y > max_year) return CRON_NONE;
    if (!(c->month >> p.mon & 1)) {
      if ((v = next_in(c->month, p.mon + 1)) < 0) { p.y++; v = next_in(c->month, 1); }
      next_month(&p, v);
      continue;
    }
    if (p.day > tz_days_in_month(p.y, p.mon)) { next_month(&p, p.mon + 1); continue; }
    days = tz_days_from_civil(p.y, p.mon, p.day);
    if (days * DAY >= limit) return CRON_NONE;
    if (!cron_match_day(c, p.day, tz_weekday(days))) { next_day(&p); continue; }
    if ((v = next_in(c->hour, p.hour)) < 0) { next_day(&p); continue; }
    if (v != p.hour) { p.hour = v; p.min = p.sec = 0; }
    if ((v = next_in(c->minute, p.min)) < 0) { p.hour++; p.min = p.sec = 0; continue; }
    if (v != p.min) { p.min = v; p.sec = 0; }
    if ((v = next_in(c->second, p.sec)) < 0) { p.min++; p.sec = 0; continue; }
    p.sec = v;
    days = days * DAY + p.hour * 3600 + p.min * 60 + p.sec;
    return days < limit ? days : CRON_NONE;
  }
}

/* Does a gap of `jump` seconds at a transition replay this job's skipped
   slots (cronie: small or medium jump forward)? */
static int gap_replays (const cron_expr *c, int64_t jump) {
  if (jump <= 0 || jump >= CRON_GAP_LARGE) return 0;
  return jump < CRON_JUMP_SMALL || !cron_is_wildcard(c);
}

/* The first fire instant after `after` (cron.h), or CRON_NONE. */
static int64_t next_fire (const cron_expr *c, const tz_zone *z, int64_t after) {
  int64_t t = after + 1, horizon = after + SEARCH_SECS;
  int wild = cron_is_wildcard(c);
  tz_segment seg;
  while (t < horizon) {
    int64_t la, lb, found, fold;
    tz_segment_at(z, t, &seg);
    /* the gap just before this segment: its skipped slots fire at its start */
    if (seg.start == t && gap_replays(c, (int64_t)seg.utoff - seg.prev_utoff) &&
        cron_next_local(c, t + seg.prev_utoff, t + seg.utoff) != CRON_NONE)
      return t;
    la = t + seg.utoff;
    fold = (int64_t)seg.prev_utoff - seg.utoff;
    /* a fixed-time job skips the wall-clock times it already had before the fold */
    if (!wild && seg.start != INT64_MIN && fold > 0 && fold <= CRON_FOLD_LARGE &&
        la < seg.start + seg.prev_utoff)
      la = seg.start + seg.prev_utoff;
    lb = (seg.end >= horizon ? horizon : seg.end) + seg.utoff;
    found = cron_next_local(c, la, lb);
    if (found != CRON_NONE) return found - seg.utoff;
    if (seg.end >= horizon) return CRON_NONE;
    t = seg.end;
  }
  return CRON_NONE;
}

size_t cron_next (const cron_expr *c, const tz_zone *z, int64_t after, int64_t *out,
                  size_t n) {
  size_t i;
  if (c->flags & (CRON_REBOOT | CRON_NEVER)) return 0;
  for (i = 0; i < n; i++) {
    int64_t t;
    if (after < CRON_TIME_MIN || after > CRON_TIME_MAX) break;
    if ((t = next_fire(c, z, after)) == CRON_NONE) break;
    out[i] = after = t;
  }
  return i;
}

int cron_matches (const cron_expr *c, const tz_zone *z, int64_t t) {
  int64_t got;
  if (t <= CRON_TIME_MIN || t > CRON_TIME_MAX) return 0;
  return cron_next(c, z, t - 1, &got, 1) == 1 && got == t;
}

/* }====================================================== */

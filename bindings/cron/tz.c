/*
** tz.c — time zones (format and rules in tz.h): the TZif reader, the POSIX
** TZ string rules of a file's footer, segments of constant offset, and the
** mapping of wall-clock readings back to instants. Everything works on
** int64 seconds and a zone never changes once loaded (thread-safe).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tz.h"

#define DEFAULT_TZDIR "/usr/share/zoneinfo"
#define ABBR_MAX 15                  /* longest abbreviation kept from a TZ string */
#define POSIX_MAX 255                /* longest TZ string accepted */
#define SHOWN 64                     /* bytes of a name quoted in errors */
#define DAY 86400

typedef struct tz_type {
  int32_t utoff;
  int isdst;
  const char *abbr;
} tz_type;

/* A date rule of a TZ string: Jn (1-365, no Feb 29), n (0-365), Mm.w.d. */
typedef struct tz_rule {
  char kind;                         /* 'J', 'N' or 'M' */
  int mon, week, day;                /* M: 1-12, 1-5, 0-6; J/N: day only */
  int32_t time;                      /* local seconds after midnight */
} tz_rule;

typedef struct tz_posix {
  int32_t std_off, dst_off;          /* utoff (east of UTC) */
  int has_dst;
  tz_rule start, end;                /* DST starts (in std time), ends (in DST) */
  char std_abbr[ABBR_MAX + 1], dst_abbr[ABBR_MAX + 1];
} tz_posix;

struct tz_zone {
  char name[TZ_NAME_MAX + 1];
  size_t ntrans, ntypes;
  int64_t *trans;                    /* ascending */
  unsigned char *tidx;               /* type of each transition */
  tz_type *types;                    /* types[0] before the first transition */
  char *chars;                       /* abbreviations, NUL-terminated */
  int has_footer;
  tz_posix footer;                   /* after the last transition */
};

/* {====================================================== helpers */

/* Writes the message, sets errno (ENOENT: no such zone, ENOMEM, EINVAL:
   anything else) and returns -1. */
static int fail_errno (int errnum, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  errno = errnum;
  return -1;
}

static int fail (char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  errno = EINVAL;
  return -1;
}

/* s as printable text for an error message: control and non-ASCII bytes
   become '?', long names end with "...". */
static void show (char out[SHOWN + 4], const char *s) {
  size_t i, n = strlen(s), k = n > SHOWN ? SHOWN : n;
  for (i = 0; i < k; i++) {
    unsigned char ch = (unsigned char)s[i];
    out[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
  }
  if (k < n) { memcpy(out + k, "...", 3); k += 3; }
  out[k] = '\0';
}

static void set_name (tz_zone *z, const char *name) {
  size_t n = strlen(name);
  if (n > TZ_NAME_MAX) n = TZ_NAME_MAX;
  memcpy(z->name, name, n);
  z->name[n] = '\0';
}

/* }====================================================== */

/* {====================================================== civil calendar */

/*
** Days are counted in 400-year eras (146097 days each) of years that start
** on March 1, so that the leap day is the last day of its year and the
** month lengths from March on follow (153 * m + 2) / 5.
*/
int64_t tz_days_from_civil (int64_t year, int mon, int mday) {
  int64_t y = year - (mon <= 2);
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;                          /* [0, 399] */
  int64_t doy = (153 * ((mon + 9) % 12) + 2) / 5 + mday - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* [0, 146096] */
  return era * 146097 + doe - 719468;                   /* 719468: 0000-03-01 to 1970 */
}

void tz_civil_from_days (int64_t days, int64_t *year, int *mon, int *mday) {
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;                     /* March = 0 */
  int m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *mday = (int)(doy - (153 * mp + 2) / 5 + 1);
  *mon = m;
  *year = yoe + era * 400 + (m <= 2);
}

int tz_is_leap (int64_t year) {
  return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

int tz_days_in_month (int64_t year, int mon) {
  static const unsigned char len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mon < 1 || mon > 12) return 0;
  return len[mon - 1] + (mon == 2 && tz_is_leap(year));
}

int tz_weekday (int64_t days) {
  return (int)(((days % 7) + 7 + 4) % 7);   /* 1970-01-01 was a Thursday */
}

int64_t tz_floor_day (int64_t secs, int *secs_of_day) {
  int64_t d = secs / DAY, r = secs % DAY;
  if (r < 0) { r += DAY; d--; }
  *secs_of_day = (int)r;
  return d;
}

/* }====================================================== */

/* {====================================================== zone objects */

static tz_zone *zone_new (const char *name) {
  tz_zone *z = calloc(1, sizeof *z);
  if (z != NULL) set_name(z, name);
  return z;
}

void tz_free (tz_zone *z) {
  if (z == NULL) return;
  free(z->trans);
  free(z->tidx);
  free(z->types);
  free(z->chars);
  free(z);
}

const char *tz_name (const tz_zone *z) {
  return z->name;
}

/* Makes z a zone with one type and nothing else (UTC). */
static int zone_fixed (tz_zone *z, int32_t utoff, const char *abbr) {
  size_t n = strlen(abbr);
  z->types = calloc(1, sizeof *z->types);
  z->chars = malloc(n + 1);
  if (z->types == NULL || z->chars == NULL) return -1;
  memcpy(z->chars, abbr, n + 1);
  z->ntypes = 1;
  z->types[0].utoff = utoff;
  z->types[0].abbr = z->chars;
  return 0;
}

static tz_zone *zone_utc (const char *name, char *err, size_t errlen) {
  tz_zone *z = zone_new(name);
  if (z == NULL || zone_fixed(z, 0, "UTC") != 0) {
    tz_free(z);
    fail_errno(ENOMEM, err, errlen, "out of memory");
    return NULL;
  }
  return z;
}

/* }====================================================== */

/* {====================================================== POSIX TZ strings */

static int is_alpha (char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static int is_digit (char ch) {
  return ch >= '0' && ch <= '9';
}

/* A zone abbreviation: three or more letters, or <[A-Za-z0-9+-]{3,}>. */
static const char *p_abbr (const char *s, char out[ABBR_MAX + 1]) {
  size_t n = 0;
  if (*s == '<') {
    s++;
    while (is_alpha(s[n]) || is_digit(s[n]) || s[n] == '+' || s[n] == '-') n++;
    if (s[n] != '>' || n < 3 || n > ABBR_MAX) return NULL;
    memcpy(out, s, n);
    out[n] = '\0';
    return s + n + 1;
  }
  while (is_alpha(s[n])) n++;
  if (n < 3 || n > ABBR_MAX) return NULL;
  memcpy(out, s, n);
  out[n] = '\0';
  return s + n;
}

/* An unsigned number of 1 to `digits` digits, at most max. */
static const char *p_num (const char *s, int digits, int max, int *out) {
  int v = 0, n = 0;
  while (is_digit(*s) && n < digits) { v = v * 10 + (*s - '0'); s++; n++; }
  if (n == 0 || v > max || is_digit(*s)) return NULL;
  *out = v;
  return s;
}

/* [+-]hh[:mm[:ss]] with hours up to max_hours, as signed seconds. */
static const char *p_hms (const char *s, int max_hours, int32_t *out) {
  int sign = 1, h, m = 0, sec = 0;
  if (*s == '+' || *s == '-') sign = (*s++ == '-') ? -1 : 1;
  if ((s = p_num(s, 3, max_hours, &h)) == NULL) return NULL;
  if (*s == ':') {
    if ((s = p_num(s + 1, 2, 59, &m)) == NULL) return NULL;
    if (*s == ':' && (s = p_num(s + 1, 2, 59, &sec)) == NULL) return NULL;
  }
  *out = sign * (h * 3600 + m * 60 + sec);
  return s;
}

/* date[/time]: Jn, n or Mm.w.d; time defaults to 02:00 and may be
   negative or beyond 24 h (RFC 8536 version 3: -167 to 167 hours). */
static const char *p_rule (const char *s, tz_rule *r) {
  r->mon = r->week = r->day = 0;
  if (*s == 'J') {
    r->kind = 'J';
    if ((s = p_num(s + 1, 3, 365, &r->day)) == NULL || r->day < 1) return NULL;
  } else if (*s == 'M') {
    r->kind = 'M';
    if ((s = p_num(s + 1, 2, 12, &r->mon)) == NULL || r->mon < 1 || *s != '.') return NULL;
    if ((s = p_num(s + 1, 1, 5, &r->week)) == NULL || r->week < 1 || *s != '.') return NULL;
    if ((s = p_num(s + 1, 1, 6, &r->day)) == NULL) return NULL;
  } else {
    r->kind = 'N';
    if ((s = p_num(s, 3, 365, &r->day)) == NULL) return NULL;
  }
  r->time = 7200;
  if (*s == '/') s = p_hms(s + 1, 167, &r->time);
  return s;
}

/* Parses a whole TZ string into p; 0 or -1. */
static int parse_posix (const char *s, tz_posix *p) {
  int32_t west;
  memset(p, 0, sizeof *p);
  if (strlen(s) > POSIX_MAX) return -1;
  if ((s = p_abbr(s, p->std_abbr)) == NULL) return -1;
  if ((s = p_hms(s, 24, &west)) == NULL) return -1;
  p->std_off = -west;                          /* POSIX counts west of UTC */
  if (*s == '\0') return 0;
  if ((s = p_abbr(s, p->dst_abbr)) == NULL) return -1;
  p->has_dst = 1;
  p->dst_off = p->std_off + 3600;
  if (*s != ',' && *s != '\0') {
    if ((s = p_hms(s, 24, &west)) == NULL) return -1;
    p->dst_off = -west;
  }
  if (*s == '\0') {                            /* glibc's default: US rules */
    s = ",M3.2.0,M11.1.0";
  }
  if (*s != ',' || (s = p_rule(s + 1, &p->start)) == NULL) return -1;
  if (*s != ',' || (s = p_rule(s + 1, &p->end)) == NULL) return -1;
  return *s == '\0' ? 0 : -1;
}

tz_zone *tz_parse_posix (const char *spec, const char *name, char *err, size_t errlen) {
  char shown[SHOWN + 4];
  tz_zone *z = zone_new(name);
  if (z == NULL) {
    fail_errno(ENOMEM, err, errlen, "out of memory");
    return NULL;
  }
  if (parse_posix(spec, &z->footer) != 0) {
    show(shown, spec);
    fail(err, errlen, "time zone \"%s\": invalid TZ string \"%s\"", z->name, shown);
    tz_free(z);
    return NULL;
  }
  z->has_footer = 1;
  return z;
}

/* Days since the epoch of rule r's date in year. */
static int64_t rule_day (const tz_rule *r, int64_t year) {
  int64_t jan1 = tz_days_from_civil(year, 1, 1), first;
  int mday;
  if (r->kind == 'J') return jan1 + r->day - 1 + (tz_is_leap(year) && r->day >= 60);
  if (r->kind == 'N') return jan1 + r->day;
  first = tz_days_from_civil(year, r->mon, 1);
  mday = 1 + (r->day - tz_weekday(first) + 7) % 7 + 7 * (r->week - 1);
  if (mday > tz_days_in_month(year, r->mon)) mday -= 7;   /* week 5: the last one */
  return first + mday - 1;
}

/* The instant rule r fires in year, its time being read at offset utoff. */
static int64_t rule_instant (const tz_rule *r, int64_t year, int32_t utoff) {
  return rule_day(r, year) * DAY + r->time - utoff;
}

typedef struct change { int64_t at; int dst; } change;

/*
** The DST changes of rule p around year, as instants where the state
** really changes, sorted. The rule's instants for year-2 .. year+2 are
** grouped by instant (rules whose end and next start coincide, as in
** "all-year DST" strings, cancel out); the state after a group is that of
** its last instant, but whether the first and the last group change
** anything depends on years not computed, so neither counts as a change
** (t lies in `year`, at least a year away from both). Returns the count;
** *before is the state before the first change.
*/
static int rule_changes (const tz_posix *p, int64_t year, change out[10], int *before) {
  change c[10], g[10];
  int i, j, n = 0, ng = 0, k = 0, state;
  for (i = -2; i <= 2; i++) {
    c[n].at = rule_instant(&p->start, year + i, p->std_off); c[n++].dst = 1;
    c[n].at = rule_instant(&p->end, year + i, p->dst_off); c[n++].dst = 0;
  }
  for (i = 1; i < n; i++) {                    /* stable insertion sort */
    change x = c[i];
    for (j = i; j > 0 && c[j - 1].at > x.at; j--) c[j] = c[j - 1];
    c[j] = x;
  }
  for (i = 0; i < n; i = j) {
    for (j = i; j < n && c[j].at == c[i].at; j++) g[ng].dst = c[j].dst;
    g[ng++].at = c[i].at;
  }
  state = *before = g[0].dst;
  for (i = 1; i < ng - 1; i++)
    if (g[i].dst != state) { out[k++] = g[i]; state = g[i].dst; }
  return k;
}

static void footer_fill (const tz_posix *p, int dst, tz_segment *seg) {
  seg->isdst = dst;
  seg->utoff = dst ? p->dst_off : p->std_off;
  seg->prev_utoff = dst ? p->std_off : p->dst_off;
  seg->abbr = dst ? p->dst_abbr : p->std_abbr;
}

/*
** The segment around t under the footer rules, which apply from lo on
** (INT64_MIN: always); lo_prev is the offset in force just before lo.
*/
static void footer_segment (const tz_posix *p, int64_t t, int64_t lo, int32_t lo_prev,
                            tz_segment *seg) {
  change ch[10];
  int64_t year;
  int n, i, dst, sod, mon, mday;
  seg->start = INT64_MIN;
  seg->end = INT64_MAX;
  if (!p->has_dst) {
    footer_fill(p, 0, seg);
    seg->prev_utoff = p->std_off;
  } else {
    tz_civil_from_days(tz_floor_day(t + p->std_off, &sod), &year, &mon, &mday);
    n = rule_changes(p, year, ch, &dst);
    footer_fill(p, dst, seg);
    for (i = 0; i < n && ch[i].at <= t; i++) {
      footer_fill(p, ch[i].dst, seg);
      seg->start = ch[i].at;
    }
    if (i < n) seg->end = ch[i].at;
    if (seg->start == INT64_MIN) seg->prev_utoff = seg->utoff;   /* no change known */
  }
  if (lo != INT64_MIN && seg->start <= lo) {
    seg->start = lo;
    seg->prev_utoff = lo_prev;
  }
}

/* }====================================================== */

/* {====================================================== segments */

static void type_segment (const tz_type *ty, tz_segment *seg) {
  seg->utoff = ty->utoff;
  seg->isdst = ty->isdst;
  seg->abbr = ty->abbr;
}

/* Index of the last transition <= t (the caller checked trans[0] <= t). */
static size_t last_transition (const tz_zone *z, int64_t t) {
  size_t lo = 0, hi = z->ntrans;               /* trans[lo] <= t < trans[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (z->trans[mid] <= t) lo = mid;
    else hi = mid;
  }
  return lo;
}

static int64_t clamp (int64_t t) {
  return t < -TZ_TIME_LIMIT ? -TZ_TIME_LIMIT : t > TZ_TIME_LIMIT ? TZ_TIME_LIMIT : t;
}

void tz_segment_at (const tz_zone *z, int64_t t, tz_segment *seg) {
  size_t i;
  int32_t prev;
  t = clamp(t);                                /* keeps the footer's year arithmetic exact */
  if (z->ntrans == 0 || t < z->trans[0]) {
    if (z->ntrans == 0 && z->has_footer) {
      footer_segment(&z->footer, t, INT64_MIN, 0, seg);
      return;
    }
    type_segment(&z->types[0], seg);
    seg->start = INT64_MIN;
    seg->end = z->ntrans ? z->trans[0] : INT64_MAX;
    seg->prev_utoff = seg->utoff;
    return;
  }
  i = last_transition(z, t);
  prev = z->types[i > 0 ? z->tidx[i - 1] : 0].utoff;
  if (i == z->ntrans - 1 && z->has_footer) {
    footer_segment(&z->footer, t, z->trans[i], prev, seg);
    return;
  }
  type_segment(&z->types[z->tidx[i]], seg);
  seg->start = z->trans[i];
  seg->end = i + 1 < z->ntrans ? z->trans[i + 1] : INT64_MAX;
  seg->prev_utoff = prev;
}

void tz_localtime (const tz_zone *z, int64_t t, tz_tm *tm) {
  tz_segment seg;
  int sod;
  int64_t days;
  t = clamp(t);
  tz_segment_at(z, t, &seg);
  days = tz_floor_day(t + seg.utoff, &sod);
  tz_civil_from_days(days, &tm->year, &tm->mon, &tm->mday);
  tm->hour = sod / 3600;
  tm->min = sod / 60 % 60;
  tm->sec = sod % 60;
  tm->wday = tz_weekday(days);
  tm->yday = (int)(days - tz_days_from_civil(tm->year, 1, 1));
  tm->utoff = seg.utoff;
  tm->isdst = seg.isdst;
  tm->abbr = seg.abbr;
}

/*
** Every instant u that shows `local` has u = local - utoff inside a segment
** with that utoff; offsets are below 26 h, so walking the segments that
** meet [local - 26 h, local + 26 h] finds them all, in ascending order.
*/
int tz_local_to_utc (const tz_zone *z, int64_t local, int64_t out[2]) {
  const int64_t span = TZ_MAX_UTOFF + 1;
  tz_segment seg;
  int n = 0;
  if (local < -TZ_TIME_LIMIT || local > TZ_TIME_LIMIT) return 0;
  tz_segment_at(z, local - span, &seg);
  for (;;) {
    int64_t u = local - seg.utoff;
    if (u >= seg.start && u < seg.end) {
      if (n < 2) out[n++] = u;
      else out[1] = u;                         /* never in real data: keep the last */
    }
    if (seg.end > local + span || seg.end > TZ_TIME_LIMIT) break;
    tz_segment_at(z, seg.end, &seg);
  }
  return n;
}

int tz_mktime (const tz_zone *z, int64_t year, int mon, int mday, int hour,
               int min, int sec, int64_t out[2]) {
  if (mon < 1 || mon > 12 || mday < 1 || mday > tz_days_in_month(year, mon) ||
      hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 59 ||
      year < -1000000000 || year > 1000000000)
    return 0;
  return tz_local_to_utc(z, tz_days_from_civil(year, mon, mday) * DAY +
                         hour * 3600 + min * 60 + sec, out);
}

/* }====================================================== */

/* {====================================================== TZif */

typedef struct tzif_header {
  int version;                       /* 1, 2, 3, 4 ... */
  uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_header;

static uint32_t be32 (const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64 (const unsigned char *p) {
  uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
  return (int64_t)v;                 /* two's complement on every target we build for */
}

static int32_t be32s (const unsigned char *p) {
  return (int32_t)be32(p);
}

/* Reads the 44-byte header at data[0]; NULL or why it is bad. */
static const char *read_header (const unsigned char *p, size_t len, tzif_header *h) {
  if (len < 44) return "truncated header";
  if (memcmp(p, "TZif", 4) != 0) return "not a TZif file";
  if (p[4] == 0) h->version = 1;
  else if (p[4] >= '2' && p[4] <= '9') h->version = p[4] - '0';
  else return "unknown version";
  h->isutcnt = be32(p + 20);
  h->isstdcnt = be32(p + 24);
  h->leapcnt = be32(p + 28);
  h->timecnt = be32(p + 32);
  h->typecnt = be32(p + 36);
  h->charcnt = be32(p + 40);
  if (h->typecnt == 0 || h->typecnt > 256) return "bad type count";
  if (h->charcnt == 0) return "bad abbreviation size";
  if (h->isutcnt != 0 && h->isutcnt != h->typecnt) return "bad UT indicator count";
  if (h->isstdcnt != 0 && h->isstdcnt != h->typecnt) return "bad standard indicator count";
  if (h->timecnt > TZ_MAX_FILE || h->charcnt > TZ_MAX_FILE || h->leapcnt > TZ_MAX_FILE)
    return "counts too large";
  return NULL;
}

/* Bytes of the data block that follows a header, for 4- or 8-byte times. */
static uint64_t block_size (const tzif_header *h, unsigned tsize) {
  return (uint64_t)h->timecnt * (tsize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
         (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

/* Reads the data block at p (already known to be complete) into z. */
static const char *read_block (tz_zone *z, const tzif_header *h, const unsigned char *p,
                               unsigned tsize) {
  size_t i;
  if (h->leapcnt != 0) return "leap-second zones (right/...) are not supported";
  z->ntrans = h->timecnt;
  z->ntypes = h->typecnt;
  z->trans = malloc((h->timecnt ? h->timecnt : 1) * sizeof *z->trans);
  z->tidx = malloc(h->timecnt ? h->timecnt : 1);
  z->types = calloc(h->typecnt, sizeof *z->types);
  z->chars = malloc((size_t)h->charcnt + 1);
  if (!z->trans || !z->tidx || !z->types || !z->chars) return "out of memory";
  for (i = 0; i < z->ntrans; i++, p += tsize) {
    z->trans[i] = tsize == 8 ? be64(p) : be32s(p);
    if (i > 0 && z->trans[i] <= z->trans[i - 1]) return "transitions out of order";
  }
  for (i = 0; i < z->ntrans; i++, p++) {
    if (*p >= h->typecnt) return "bad transition type";
    z->tidx[i] = *p;
  }
  memcpy(z->chars, p + (size_t)h->typecnt * 6, h->charcnt);
  z->chars[h->charcnt] = '\0';     /* an unterminated last abbreviation stays bounded */
  for (i = 0; i < z->ntypes; i++, p += 6) {
    z->types[i].utoff = be32s(p);
    if (z->types[i].utoff < -89999 || z->types[i].utoff > TZ_MAX_UTOFF) return "bad UT offset";
    if (p[4] > 1) return "bad DST indicator";
    if (p[5] >= h->charcnt) return "bad abbreviation index";
    z->types[i].isdst = p[4];
    z->types[i].abbr = z->chars + p[5];
  }
  return NULL;
}

/* The footer "\nTZ\n" at data[off, len); NULL or why it is bad. */
static const char *read_footer (tz_zone *z, const unsigned char *data, size_t off, size_t len) {
  char spec[POSIX_MAX + 1];
  size_t n = 0;
  if (off == len) return "missing footer";
  if (data[off] != '\n') return "bad footer";
  for (off++; off < len && data[off] != '\n'; off++) {
    if (data[off] == '\0' || n >= POSIX_MAX) return "bad footer";
    spec[n++] = (char)data[off];
  }
  if (off == len) return "unterminated footer";
  spec[n] = '\0';
  if (n == 0) return NULL;                      /* empty: last type stays in force */
  if (parse_posix(spec, &z->footer) != 0) return "bad TZ string in the footer";
  z->has_footer = 1;
  return NULL;
}

static const char *parse_tzif (tz_zone *z, const unsigned char *data, size_t len) {
  tzif_header h;
  uint64_t size;
  size_t off = 44;
  const char *why = read_header(data, len, &h);
  if (why != NULL) return why;
  size = block_size(&h, 4);
  if (size > len - off) return "truncated data";
  if (h.version == 1) return read_block(z, &h, data + off, 4);
  off += (size_t)size;                          /* skip the 32-bit data */
  if ((why = read_header(data + off, len - off, &h)) != NULL) return why;
  off += 44;
  size = block_size(&h, 8);
  if (size > len - off) return "truncated data";
  if ((why = read_block(z, &h, data + off, 8)) != NULL) return why;
  return read_footer(z, data, off + (size_t)size, len);
}

tz_zone *tz_parse_tzif (const unsigned char *data, size_t len, const char *name,
                        char *err, size_t errlen) {
  const char *why;
  tz_zone *z = zone_new(name);
  if (z == NULL) {
    fail_errno(ENOMEM, err, errlen, "out of memory");
    return NULL;
  }
  if ((why = parse_tzif(z, data, len)) != NULL) {
    if (strcmp(why, "out of memory") == 0) fail_errno(ENOMEM, err, errlen, "out of memory");
    else fail(err, errlen, "time zone \"%s\": invalid TZif data (%s)", z->name, why);
    tz_free(z);
    return NULL;
  }
  return z;
}

/* }====================================================== */

/* {====================================================== loading */

int tz_name_ok (const char *name) {
  size_t i, comp = 0, len = strlen(name);
  if (len == 0 || len > TZ_NAME_MAX || name[0] == '/') return 0;
  for (i = 0; i <= len; i++) {
    char ch = name[i];
    if (ch == '/' || ch == '\0') {
      size_t start = i - comp;
      if (comp == 0) return 0;                  /* "a//b", "a/" */
      if (name[start] == '.' && (comp == 1 || (comp == 2 && name[start + 1] == '.')))
        return 0;                               /* "." and ".." */
      comp = 0;
    } else if (is_alpha(ch) || is_digit(ch) || ch == '_' || ch == '-' || ch == '+' ||
               ch == '.') {
      comp++;
    } else {
      return 0;
    }
  }
  return 1;
}

/* Reads a regular file of at most TZ_MAX_FILE bytes; 0, or an errno. */
static int read_file (const char *path, unsigned char **data, size_t *len) {
  struct stat st;
  size_t got = 0;
  int e, fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  if (fstat(fd, &st) != 0) e = errno;
  else if (!S_ISREG(st.st_mode)) e = EISDIR;  /* a directory such as "America" */
  else if (st.st_size > (off_t)TZ_MAX_FILE) e = EFBIG;
  else e = 0;
  if (e != 0) {
    close(fd);
    return e;
  }
  if ((*data = malloc((size_t)st.st_size + 1)) == NULL) {
    close(fd);
    return ENOMEM;
  }
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, *data + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      e = n < 0 ? errno : EIO;
      free(*data);
      close(fd);
      return e;
    }
    got += (size_t)n;
  }
  close(fd);
  *len = got;
  return 0;
}

static tz_zone *load_path (const char *path, const char *name, char *err, size_t errlen) {
  unsigned char *data = NULL;
  size_t len = 0;
  char shown[SHOWN + 4], msg[128];
  tz_zone *z;
  int e = read_file(path, &data, &len);
  if (e == ENOMEM) {
    fail_errno(ENOMEM, err, errlen, "out of memory");
    return NULL;
  }
  if (e != 0) {
    show(shown, name);
    if (e == ENOENT || e == ENOTDIR || e == EISDIR || e == ENAMETOOLONG || e == ELOOP)
      fail_errno(ENOENT, err, errlen, "unknown time zone \"%s\"", shown);
    else {
      if (strerror_r(e, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "error %d", e);
      fail_errno(EIO, err, errlen, "time zone \"%s\": cannot read %s: %s", shown, path, msg);
    }
    return NULL;
  }
  z = tz_parse_tzif(data, len, name, err, errlen);
  free(data);
  return z;
}

static tz_zone *load_db (const char *name, const char *as, char *err, size_t errlen) {
  const char *dir = getenv("TZDIR");
  char path[4096];
  if (dir == NULL || dir[0] == '\0') dir = DEFAULT_TZDIR;
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
    fail(err, errlen, "time zone \"%s\": path too long", as);
    return NULL;
  }
  return load_path(path, as, err, errlen);
}

/* "local": $TZ, else /etc/localtime, else UTC (see tz.h). */
static tz_zone *load_local (char *err, size_t errlen) {
  const char *tz = getenv("TZ");
  tz_zone *z;
  if (tz == NULL) {
    if (access("/etc/localtime", F_OK) != 0) return zone_utc("local", err, errlen);
    return load_path("/etc/localtime", "local", err, errlen);
  }
  if (*tz == ':') tz++;
  if (*tz == '\0' || strcmp(tz, "UTC") == 0) return zone_utc("local", err, errlen);
  if (*tz == '/') return load_path(tz, "local", err, errlen);
  if (tz_name_ok(tz) && (z = load_db(tz, "local", err, errlen)) != NULL) return z;
  if ((z = tz_parse_posix(tz, "local", err, errlen)) != NULL) return z;
  {
    char shown[SHOWN + 4];
    show(shown, tz);
    fail(err, errlen, "time zone \"local\": $TZ \"%s\" is neither a zone name nor a TZ string",
         shown);
  }
  return NULL;
}

tz_zone *tz_load (const char *name, char *err, size_t errlen) {
  char shown[SHOWN + 4];
  if (strcmp(name, "UTC") == 0) return zone_utc("UTC", err, errlen);
  if (strcmp(name, "local") == 0) return load_local(err, errlen);
  if (!tz_name_ok(name)) {
    show(shown, name);
    fail(err, errlen, "invalid time zone name \"%s\"", shown);
    return NULL;
  }
  return load_db(name, name, err, errlen);
}

/* }====================================================== */

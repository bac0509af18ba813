/*
** tz.h — time zones for the cron engine (C core, no Lua): a reader of the
** system time zone database plus the two built-in zones "UTC" and "local".
**
** Sources of a zone:
**   "UTC"        built in (offset 0, no file needed);
**   "local"      $TZ when set: "" is UTC (as glibc), ":NAME" or "NAME" a
**                database zone, ":/abs/path" or "/abs/path" a TZif file,
**                anything else a POSIX TZ string such as
**                "EST5EDT,M3.2.0,M11.1.0"; when $TZ is unset,
**                /etc/localtime, and UTC when that is missing too. It is
**                resolved when loaded (load it again to see a change);
**   IANA names   "America/New_York": the TZif file under $TZDIR, else
**                /usr/share/zoneinfo. A name is 1-255 bytes of
**                [A-Za-z0-9._+-] components separated by single "/", with
**                no "." or ".." component and no leading "/": no name can
**                reach outside the database directory.
**
** TZif (RFC 8536) versions 1 to 4 are read: version 1 files through their
** 32-bit data, later ones through their 64-bit data and the footer, a
** POSIX TZ string (with the version 3 extensions: rule times from -167 to
** 167 hours) that gives local time after the last transition — Debian 12's
** files stop their tables in 2037 and the footer takes over from there.
** Before the first transition, time type 0 applies. Files with leap-second
** records (the right/ zones) are refused: their times are not POSIX times.
**
** A loaded zone is immutable and holds no global state, so it may be used
** from any number of threads at once; nothing here calls setenv, tzset or
** localtime (loading "local" reads $TZ with getenv).
**
** Times are int64 seconds. "Naive local" seconds are a wall-clock reading
** counted as if it were UTC (days_from_civil * 86400 + seconds of day):
** local time = UTC + utoff, where utoff is the offset east of Greenwich.
*/
#ifndef ATO_CRON_TZ_H
#define ATO_CRON_TZ_H

#include <stddef.h>
#include <stdint.h>

#define TZ_NAME_MAX 255              /* longest database name */
#define TZ_MAX_FILE (1u << 20)       /* TZif files larger than this are refused */
#define TZ_MAX_UTOFF 93599           /* |offset| bound of RFC 8536 (< 26 h) */
/* Instants beyond +-2^55 s (a billion years) are clamped to it. */
#define TZ_TIME_LIMIT ((int64_t)1 << 55)

typedef struct tz_zone tz_zone;

/*
** Loads "UTC", "local" or an IANA name. NULL with a one-line err (when
** errlen > 0): `invalid time zone name "../x"`, `unknown time zone "X"`,
** `time zone "X": invalid TZif data (reason)`, or "out of memory"; errno
** is then ENOENT (no such zone), ENOMEM, EIO (the file could not be read)
** or EINVAL (anything else). The other constructors report the same way.
*/
tz_zone *tz_load (const char *name, char *err, size_t errlen);

/* 1 if name is "UTC", "local" or a well-formed database name (see above);
   says nothing about whether the file exists. */
int tz_name_ok (const char *name);

/* Parses TZif data (any version) into a zone called name. */
tz_zone *tz_parse_tzif (const unsigned char *data, size_t len, const char *name,
                        char *err, size_t errlen);

/* A zone from a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3"). DST
   without rules gets the US rules M3.2.0,M11.1.0 (glibc's default). */
tz_zone *tz_parse_posix (const char *spec, const char *name, char *err, size_t errlen);

void tz_free (tz_zone *z);
const char *tz_name (const tz_zone *z);

/*
** A segment: the longest run of instants [start, end) around t that share
** one time type. prev_utoff is the offset in force just before start
** (= utoff when start is INT64_MIN); end is INT64_MAX when no further
** change is known. Boundaries where only isdst or the abbreviation change
** are segment boundaries too (their offsets are equal).
*/
typedef struct tz_segment {
  int64_t start, end;
  int32_t utoff, prev_utoff;
  int isdst;
  const char *abbr;                  /* lives as long as the zone */
} tz_segment;

void tz_segment_at (const tz_zone *z, int64_t t, tz_segment *seg);

/* Broken-down local time. */
typedef struct tz_tm {
  int64_t year;
  int mon, mday;                     /* 1-12, 1-31 */
  int hour, min, sec;                /* 0-23, 0-59, 0-59 */
  int wday, yday;                    /* 0-6 (Sunday 0), 0-365 */
  int32_t utoff;                     /* seconds east of UTC */
  int isdst;
  const char *abbr;
} tz_tm;

/* UTC instant -> local broken-down time, offset, isdst. */
void tz_localtime (const tz_zone *z, int64_t t, tz_tm *tm);

/*
** Naive local seconds -> the UTC instants that show that wall-clock time,
** ascending, in out[0..return): 0 in a gap (spring forward), 1 normally,
** 2 in a fold (fall back; the earlier is the first pass).
*/
int tz_local_to_utc (const tz_zone *z, int64_t local, int64_t out[2]);

/* The same from fields (mon 1-12, mday 1-31, no normalisation: a field
   out of range gives 0). */
int tz_mktime (const tz_zone *z, int64_t year, int mon, int mday, int hour,
               int min, int sec, int64_t out[2]);

/* {====================================================== civil calendar */

/* Days since 1970-01-01 of a proleptic Gregorian date (mon 1-12). */
int64_t tz_days_from_civil (int64_t year, int mon, int mday);
void tz_civil_from_days (int64_t days, int64_t *year, int *mon, int *mday);
int tz_is_leap (int64_t year);
int tz_days_in_month (int64_t year, int mon);
int tz_weekday (int64_t days);       /* 0 Sunday .. 6 Saturday */
/* Floor division by 86400 and its remainder in [0, 86400). */
int64_t tz_floor_day (int64_t secs, int *secs_of_day);

/* }====================================================== */

#endif

/*
** cron.h — cron expressions for `ato.cron` / `ato.sched` (C core, no Lua):
** the parser, the matcher and the next-fire computation, with cronie's
** (Vixie cron's) semantics as the specification.
**
** Syntax (in this file `*\/` stands for star-slash, which C comments
** cannot hold). Five fields, `minute hour day-of-month month day-of-week`,
** separated by blanks (spaces, tabs; leading and trailing white space is
** ignored), optionally preceded by a sixth, `second`: with
** CRON_SECONDS_YES the expression must have 6 fields, with CRON_SECONDS_NO
** 5, and with CRON_SECONDS_AUTO 6 fields mean a leading seconds field (as
** cron-parser reads them) and 5 fields mean second 0. A field is a list of
** items separated by ",", each item one of
**     *          every value of the field
**     a          one value
**     a-b        a to b inclusive (a <= b)
**     *\/n a-b/n every n-th value of the range, starting at its first
**     a/n        a-MAX/n (an extension: cronie refuses it, cron-parser,
**                Quartz and others take it this way)
** with ranges second 0-59, minute 0-59, hour 0-23, day of month 1-31,
** month 1-12 or jan-dec, day of week 0-7 or sun-sat (0 and 7 are both
** Sunday; `*` is 0-7, so `*\/2` is 0,2,4,6). Names are exactly three
** letters, in any case. A step may exceed its range (`*\/90`: only the
** first value). In the day-of-week field a range that ends at 0 wraps
** to 7 (`fri-sun` = 5-7), as cronie does; any other a > b is an error.
** Macros (whole expression, lower case): @yearly @annually (0 0 1 1 *),
** @monthly (0 0 1 * *), @weekly (0 0 * * 0), @daily @midnight (0 0 * * *),
** @hourly (0 * * * *), @reboot (no calendar times). cronie's `~` random
** ranges and cron-parser's `?`, `L`, `W`, `#`, `H` are errors.
**
** Errors name the field as written (1-based, counting the seconds field
** when there is one), the item and the reason:
**     cron: field 3 (day of month) "32": out of range 1-31
**
** Day rule (cronie src/cron.c find_jobs). A field is a "star" when its
** text STARTS with `*` (`*`, `*\/2`, `*,5`). When the day-of-month or the
** day-of-week field is a star, a day must match both; when neither is, a
** day matches when EITHER does: "30 4 1,15 * 5" runs on the 1st, the 15th
** and every Friday, while "0 0 *\/2 * 1" runs only on odd-numbered Mondays.
** Macros set the flags as cronie does: @yearly and @monthly mark day of
** week as a star, @weekly day of month, so all of them AND.
**
** Time zones and DST. The calendar fields are matched against the local
** wall-clock time of a zone (tz.h). An expression is a WILDCARD job when
** its minute or hour field starts with `*` (@hourly too), otherwise a
** FIXED-TIME job; the seconds field does not count. Following cronie for
** its own zone (man cron.8 "Daylight Saving Time and other time changes",
** src/cron.c main loop: wakeupKind small / medium / negative / large):
**   - A fire time is every instant whose local time matches, except:
**   - Gap (clock jumps forward by G, spring forward): wall-clock times in
**     the gap never happen. If 0 < G < 3 h and the job is fixed-time, or
**     G < 5 min (any job), and some skipped wall-clock time matches, the
**     job runs ONCE at the first instant after the jump (the transition
**     instant; together with a match of the landing time itself: once).
**     Wildcard jobs do not replay the skipped slots of a 5 min - 3 h gap;
**     no job replays a gap of 3 h or more (a clock correction to cronie).
**   - Fold (clock goes back by F, fall back): the repeated wall-clock
**     times happen twice. A fixed-time job runs only in the first pass
**     (its times up to the local time the clock reached before going back
**     are not run again), a wildcard job at each instant, in both passes.
**     A fold of more than 3 h 1 min (cronie: timeDiff < -180 min) is a
**     clock correction: fixed-time jobs run in both passes too.
** "Next" never adds 86400: it steps through local calendar fields (month,
** day, hour, minute, second — by jumps, not minute by minute) inside each
** segment of constant offset and maps the result back through the zone.
** The search is bounded (CRON_SEARCH_YEARS; the Gregorian calendar repeats
** its weekdays every 400 years, so nothing is missed) and expressions that
** can never match a day (`0 0 30 2 *`, with an ANDed day rule) are known
** at parse time (CRON_NEVER): both give no time instead of looping.
*/
#ifndef ATO_CRON_H
#define ATO_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "tz.h"

#define CRON_MAX_TEXT 1024           /* longest expression, with its NUL */
#define CRON_ERRLEN 256              /* enough for any error message */
#define CRON_SEARCH_YEARS 400        /* next() looks this far ahead */
#define CRON_NONE INT64_MAX          /* "no time" */
/* Instants accepted by cron_next/cron_matches (about +-139000 years). */
#define CRON_TIME_MAX ((int64_t)1 << 42)
#define CRON_TIME_MIN (-CRON_TIME_MAX)

/* cronie's thresholds for clock jumps, in seconds (see above). */
#define CRON_JUMP_SMALL 300          /* gaps below 5 min replay every job */
#define CRON_GAP_LARGE 10800         /* gaps of 3 h or more replay nothing */
#define CRON_FOLD_LARGE 10860        /* folds above 3 h 1 min repeat every job */

enum { CRON_SECONDS_AUTO = -1, CRON_SECONDS_NO = 0, CRON_SECONDS_YES = 1 };

#define CRON_MIN_STAR  0x01u         /* minute field starts with '*' */
#define CRON_HOUR_STAR 0x02u         /* hour field starts with '*' */
#define CRON_DOM_STAR  0x04u         /* day-of-month field starts with '*' */
#define CRON_DOW_STAR  0x08u         /* day-of-week field starts with '*' */
#define CRON_REBOOT    0x10u         /* @reboot: no calendar times */
#define CRON_SECONDS   0x20u         /* written with a seconds field */
#define CRON_NEVER     0x40u         /* no day can ever match */

typedef struct cron_expr {
  uint64_t second, minute;           /* bit i set: value i matches */
  uint32_t hour;                     /* bits 0-23 */
  uint32_t dom;                      /* bits 1-31 */
  uint16_t month;                    /* bits 1-12 */
  uint8_t dow;                       /* bits 0-6 (7 is folded into 0) */
  unsigned flags;
  /* Normalised text: the fields (or the macro) lower-cased and joined by
     single spaces; parsing it again gives the same expression. */
  char text[CRON_MAX_TEXT];
} cron_expr;

/*
** Parses text (seconds: CRON_SECONDS_*) into c. 0, or -1 with a one-line
** message in err (when errlen > 0), always starting "cron: ".
*/
int cron_parse (cron_expr *c, const char *text, int seconds, char *err, size_t errlen);

/* 1 for a wildcard job (minute or hour field starts with '*'). */
int cron_is_wildcard (const cron_expr *c);

/* Does the day (mday 1-31, wday 0-6) pass the day rule? */
int cron_match_day (const cron_expr *c, int mday, int wday);

/* Does a wall-clock time match every field (no DST rule)? */
int cron_match_tm (const cron_expr *c, const tz_tm *tm);

/* The first naive-local time (tz.h) in [from, limit) that matches every
   field, or CRON_NONE (also for |from| > TZ_TIME_LIMIT). */
int64_t cron_next_local (const cron_expr *c, int64_t from, int64_t limit);

/*
** The first n fire instants strictly after `after` in zone z (DST rule
** above), ascending, into out; returns how many were found (fewer than n
** when the search horizon ends; 0 for @reboot and CRON_NEVER, and when
** `after` is outside [CRON_TIME_MIN, CRON_TIME_MAX]).
*/
size_t cron_next (const cron_expr *c, const tz_zone *z, int64_t after, int64_t *out,
                  size_t n);

/* 1 when t is a fire instant: the first one after t - 1 is t (0 outside
   the range of cron_next). */
int cron_matches (const cron_expr *c, const tz_zone *z, int64_t t);

#endif

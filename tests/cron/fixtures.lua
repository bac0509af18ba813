-- Named fixtures for ato.cron: the cases where cronie's semantics (our
-- specification, bindings/cron/cron.h) and cron-parser (the test oracle)
-- part ways, plus the DST controls around them, each with the expected
-- times written out by hand (UTC). tests/lua/cron_spec.lua checks every
-- fixture against ato.cron.next, and checks `oracle` against cron-parser
-- 5.10.6 so that a fixture documents a real difference:
--   oracle = "differs"  cron-parser gives other times (noted in `parser`)
--   oracle = "agrees"   cron-parser gives the same times (a control)
--   oracle = "refuses"  cron-parser rejects the expression
--
-- Zone changes used below (local wall clock):
--   America/New_York   2026-03-08 02:00 EST -> 03:00 EDT at 07:00Z
--                      2025-11-02 02:00 EDT -> 01:00 EST at 06:00Z
--                      2040-03-11 (after the 2037 end of the file's table)
--   Europe/London      2025-03-30 01:00 GMT -> 02:00 BST at 01:00Z
--                      2025-10-26 02:00 BST -> 01:00 GMT at 01:00Z
--   Australia/Lord_Howe (30-minute DST, +10:30 / +11)
--                      2025-10-05 02:00 -> 02:30 at 2025-10-04 15:30Z
--                      2025-04-06 02:00 -> 01:30 at 2025-04-05 15:00Z
--   Pacific/Apia       2011-12-30 skipped (-10 -> +14 at 2011-12-30 10:00Z)
return {
  -- {====================================================== spring forward (gaps)
  {
    name = "New York gap: a fixed-time job in the gap runs once, right after the jump",
    expr = "30 2 * * *", tz = "America/New_York", from = "2026-03-07T00:00:00Z",
    want = {"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
    oracle = "differs", parser = "2026-03-08T07:30:00Z: 03:30 EDT, shifted by the gap",
    why = "cronie src/cron.c, wakeupKind medium: missed fixed-time jobs run at once",
  },
  {
    name = "New York gap: several fixed slots in the gap coalesce into one run",
    expr = "0,15,30,45 2 * * *", tz = "America/New_York", from = "2026-03-08T00:00:00Z",
    want = {"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:15:00Z"},
    oracle = "differs", parser = "03:00, 03:15, 03:30, 03:45 EDT on the 8th",
    why = "the catch-up runs each job once for the jump (job_add skips a queued job)",
  },
  {
    name = "New York gap: a wildcard job does not replay the skipped hour",
    expr = "*/30 2 * * *", tz = "America/New_York", from = "2026-03-08T00:00:00Z",
    want = {"2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:00:00Z"},
    oracle = "differs", parser = "03:00 and 03:30 EDT on the 8th",
    why = "wakeupKind medium runs wildcard jobs for the current minute only",
  },
  {
    name = "New York gap: an hourly job skips 02:00 and runs at 03:00 EDT",
    expr = "0 * * * *", tz = "America/New_York", from = "2026-03-08T05:30:00Z",
    want = {"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"},
    oracle = "agrees",
  },
  {
    name = "New York gap after 2037 (the file's footer rule): same replay",
    expr = "30 2 * * *", tz = "America/New_York", from = "2040-03-10T12:00:00Z",
    want = {"2040-03-11T07:00:00Z", "2040-03-12T06:30:00Z"},
    oracle = "differs", parser = "2040-03-11T07:30:00Z",
  },
  {
    name = "London gap: 01:30 does not exist on 2025-03-30; the job runs at the jump",
    expr = "30 1 * * *", tz = "Europe/London", from = "2025-03-29T12:00:00Z",
    want = {"2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"},
    oracle = "differs", parser = "2025-03-30T01:30:00Z: 02:30 BST, shifted",
  },
  {
    name = "Lord Howe 30-minute gap: a fixed-time job at 02:15 runs at the jump (02:30)",
    expr = "15 2 * * *", tz = "Australia/Lord_Howe", from = "2025-10-03T00:00:00Z",
    want = {"2025-10-03T15:45:00Z", "2025-10-04T15:30:00Z", "2025-10-05T15:15:00Z"},
    oracle = "differs", parser = "skips 2025-10-05 local entirely: 10-03 15:45, 10-05 15:15, 10-06 15:15",
  },
  {
    name = "Lord Howe 30-minute gap: a wildcard job resumes at 02:30 without replay",
    expr = "*/10 2 * * *", tz = "Australia/Lord_Howe", from = "2025-10-04T15:00:00Z",
    want = {"2025-10-04T15:30:00Z", "2025-10-04T15:40:00Z", "2025-10-04T15:50:00Z"},
    oracle = "differs", parser = "03:00, 03:10, 03:20 local (16:00Z-16:20Z): hour 3, not 2",
  },
  {
    name = "Samoa skipped a whole day (a 24 h jump is a clock change, not DST): no replay",
    expr = "0 12 * * *", tz = "Pacific/Apia", from = "2011-12-29T00:00:00Z",
    want = {"2011-12-29T22:00:00Z", "2011-12-30T22:00:00Z"},
    why = "jumps of 3 h or more are wakeupKind large: virtual time is reset",
  },
  -- }======================================================

  -- {====================================================== fall back (folds)
  {
    name = "New York fold: a fixed-time job in the repeated hour runs once (first pass)",
    expr = "30 1 * * *", tz = "America/New_York", from = "2025-11-02T04:00:00Z",
    want = {"2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"},
    oracle = "agrees",
  },
  {
    name = "New York fold: fixed-time hours around the fold",
    expr = "30 0-2 * * *", tz = "America/New_York", from = "2025-11-02T04:00:00Z",
    want = {"2025-11-02T04:30:00Z", "2025-11-02T05:30:00Z", "2025-11-02T07:30:00Z"},
    oracle = "agrees",
  },
  {
    name = "New York fold: a wildcard job runs in both passes of the repeated hour",
    expr = "*/30 1 * * *", tz = "America/New_York", from = "2025-11-02T04:00:00Z",
    want = {"2025-11-02T05:00:00Z", "2025-11-02T05:30:00Z", "2025-11-02T06:00:00Z",
            "2025-11-02T06:30:00Z", "2025-11-03T06:00:00Z"},
    oracle = "differs", parser = "05:00 and 05:30 only (first pass)",
    why = "wakeupKind negative runs wildcard jobs for each repeated minute",
  },
  {
    name = "New York fold: an hourly job runs at 01:00 EDT and 01:00 EST",
    expr = "0 * * * *", tz = "America/New_York", from = "2025-11-02T04:30:00Z",
    want = {"2025-11-02T05:00:00Z", "2025-11-02T06:00:00Z", "2025-11-02T07:00:00Z"},
    oracle = "agrees",
  },
  {
    name = "New York fold: @hourly is a wildcard job (hour field starts with *)",
    expr = "@hourly", tz = "America/New_York", from = "2025-11-02T04:30:00Z",
    want = {"2025-11-02T05:00:00Z", "2025-11-02T06:00:00Z", "2025-11-02T07:00:00Z"},
    oracle = "agrees",
  },
  {
    name = "London fold: a wildcard job runs in both passes",
    expr = "*/20 1 * * *", tz = "Europe/London", from = "2025-10-25T23:00:00Z",
    want = {"2025-10-26T00:00:00Z", "2025-10-26T00:20:00Z", "2025-10-26T00:40:00Z",
            "2025-10-26T01:00:00Z", "2025-10-26T01:20:00Z", "2025-10-26T01:40:00Z"},
    oracle = "differs", parser = "the first pass only",
  },
  {
    name = "Lord Howe 30-minute fold: a fixed-time job at 01:45 runs once",
    expr = "45 1 * * *", tz = "Australia/Lord_Howe", from = "2025-04-05T12:00:00Z",
    want = {"2025-04-05T14:45:00Z", "2025-04-06T15:15:00Z"},
    oracle = "agrees",
  },
  {
    name = "Lord Howe 30-minute fold: a wildcard job runs 01:30 and 01:45 twice",
    expr = "*/15 1 * * *", tz = "Australia/Lord_Howe", from = "2025-04-05T12:00:00Z",
    want = {"2025-04-05T14:00:00Z", "2025-04-05T14:15:00Z", "2025-04-05T14:30:00Z",
            "2025-04-05T14:45:00Z", "2025-04-05T15:00:00Z", "2025-04-05T15:15:00Z"},
    oracle = "differs", parser = "the first pass only",
  },
  -- }======================================================

  -- {====================================================== UTC controls
  {
    name = "UTC control: no DST, the same expression every day",
    expr = "30 2 * * *", tz = "UTC", from = "2026-03-07T00:00:00Z",
    want = {"2026-03-07T02:30:00Z", "2026-03-08T02:30:00Z", "2026-03-09T02:30:00Z"},
    oracle = "agrees",
  },
  {
    name = "UTC control: every 30 minutes through 01:00-02:00",
    expr = "*/30 1 * * *", tz = "UTC", from = "2025-11-02T00:00:00Z",
    want = {"2025-11-02T01:00:00Z", "2025-11-02T01:30:00Z", "2025-11-03T01:00:00Z"},
    oracle = "agrees",
  },
  -- }======================================================

  -- {====================================================== day rule
  {
    name = "Day rule: */2 in day of month is a star, so the fields AND (odd Mondays)",
    expr = "0 0 */2 * 1", tz = "UTC", from = "2025-01-01T00:00:00Z",
    want = {"2025-01-13T00:00:00Z", "2025-01-27T00:00:00Z", "2025-02-03T00:00:00Z"},
    oracle = "differs", parser = "ORs: 2025-01-01, 01-03, 01-05 (every odd day and Mondays)",
    why = "cronie src/entry.c sets DOM_STAR when the field starts with '*'",
  },
  {
    name = "Day rule: Feb 29 that is a Sunday (*/7 in day of week is a star)",
    expr = "0 0 29 2 */7", tz = "UTC", from = "2024-03-01T00:00:00Z",
    want = {"2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z", "2088-02-29T00:00:00Z"},
    oracle = "differs", parser = "every Sunday in February and Feb 29",
  },
  {
    name = "Day rule: both restricted without a star: OR (1st, 15th and Fridays)",
    expr = "30 4 1,15 * 5", tz = "UTC", from = "2025-01-01T00:00:00Z",
    want = {"2025-01-01T04:30:00Z", "2025-01-03T04:30:00Z", "2025-01-10T04:30:00Z",
            "2025-01-15T04:30:00Z"},
    oracle = "agrees",
  },
  -- }======================================================

  -- {====================================================== what cron-parser refuses
  {
    name = "Impossible date: cronie accepts 30 Feb and never runs it",
    expr = "0 0 30 2 *", tz = "UTC", from = "2025-01-01T00:00:00Z", want = {},
    oracle = "refuses",
  },
  {
    name = "Impossible date: day 31 in 30-day months only",
    expr = "0 0 31 4,6,9,11 *", tz = "America/New_York", from = "2025-01-01T00:00:00Z",
    want = {}, oracle = "refuses",
  },
  {
    name = "A repeated value in a list is harmless (cronie sets a bit twice)",
    expr = "0,0 12 * * *", tz = "UTC", from = "2025-01-01T00:00:00Z",
    want = {"2025-01-01T12:00:00Z", "2025-01-02T12:00:00Z"},
    oracle = "refuses",
  },
  {
    name = "Sunday written as 0 and 7 at once",
    expr = "0 0 * * 0,7", tz = "UTC", from = "2025-01-01T00:00:00Z",
    want = {"2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"},
    oracle = "refuses",
  },
  {
    name = "Day-of-week range ending at Sunday wraps (cronie: 5-0 is 5-7)",
    expr = "0 0 * * fri-sun", tz = "UTC", from = "2025-01-01T00:00:00Z",
    want = {"2025-01-03T00:00:00Z", "2025-01-04T00:00:00Z", "2025-01-05T00:00:00Z",
            "2025-01-10T00:00:00Z"},
    oracle = "refuses",
  },
  {
    name = "@midnight is @daily (cronie's alias; cron-parser lacks it)",
    expr = "@midnight", tz = "UTC", from = "2025-01-01T12:00:00Z",
    want = {"2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"},
    oracle = "refuses",
  },
  {
    name = "@reboot has no calendar times",
    expr = "@reboot", tz = "UTC", from = "2025-01-01T00:00:00Z", want = {},
    oracle = "refuses",
  },
  -- }======================================================
}

// node tests/cron/oracle.mjs < request.json > answer.json
//
// The independent implementation that tests/lua/cron_spec.lua checks
// ato.cron against: cron-parser (pinned in package.json; install with
// npm ci --prefix tests/cron). It reads one JSON request on stdin:
//
//   {"cases": [{"expr": "0 9 * * 1-5", "from": 1735689600, "tz": "UTC", "n": 5,
//               "to": 1767225600 (optional: no times after it)}, ...],
//    "zones": [{"tz": "America/New_York", "from": 1735689600, "to": 1893456000}, ...]}
//
// and prints {"cases": [...], "zones": [...]} in the same order:
//   - each case: {"times": [epoch seconds, ...]} (the next n times strictly
//     after `from`, fewer if cron-parser stops) or {"error": "message"};
//   - each zone: the UTC offset changes in [from, to] as
//     [{"at": epoch seconds, "before": seconds east, "after": seconds east}],
//     found with luxon (Node's ICU time zone data, not the system's files:
//     an independent source for the spec's DST predicates). Offsets are
//     sampled daily and each change is bisected to the second, so two
//     changes within one day would be missed (none in the zones and years
//     the spec uses).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { CronExpressionParser } = require("cron-parser");
const { DateTime } = require("luxon");

function nextTimes({ expr, from, tz, n, to }) {
  let it;
  const options = { currentDate: new Date(from * 1000), tz };
  if (to != null) options.endDate = new Date(to * 1000);
  try {
    it = CronExpressionParser.parse(expr, options);
  } catch (e) {
    return { error: String(e.message || e) };
  }
  const times = [];
  for (let i = 0; i < n; i++) {
    try {
      times.push(Math.floor(it.next().getTime() / 1000));
    } catch {
      break;                 // past `to`, "loop limit exceeded" and the like: no more times
    }
  }
  return { times };
}

function offsetAt(tz, t) {
  return DateTime.fromSeconds(t, { zone: tz }).offset * 60;
}

function changes({ tz, from, to }) {
  const out = [];
  const day = 86400;
  let t = from, off = offsetAt(tz, from);
  while (t < to) {
    const u = Math.min(t + day, to);
    const o = offsetAt(tz, u);
    if (o !== off) {
      let lo = t, hi = u;                  // offset(lo) = off, offset(hi) = o
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (offsetAt(tz, mid) === off) lo = mid;
        else hi = mid;
      }
      out.push({ at: hi, before: off, after: o });
    }
    t = u;
    off = o;
  }
  return out;
}

const request = JSON.parse(readFileSync(0, "utf8"));
const answer = {
  cases: (request.cases || []).map(nextTimes),
  zones: (request.zones || []).map(changes),
};
process.stdout.write(JSON.stringify(answer));

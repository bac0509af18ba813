-- ato.calendar: calendar arithmetic in UTC, pure Lua (no time zones: those
-- are ato.cron's, which reads the system's tz database).
local M = {}

--- Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian).
function M.days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Epoch seconds of a UTC wall-clock time (fields as integers, not checked).
function M.utc(y, mo, d, h, mi, s)
  return M.days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

return M

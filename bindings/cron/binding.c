/*
** binding.c — `require "ato.cron"`: cron expressions and time zones (the
** C core in cron.h and tz.h) for Lua; `ato.sched` builds on it.
**
**   cron.parse(expr [, {seconds = true|false}]) -> c | nil, err
**       seconds: true needs 6 fields, false 5, nil takes either (6 fields
**       = a leading seconds field)
**   cron.next(expr_or_c [, from [, tz [, n]]]) -> {t1, ..., tn} | nil, err
**       the first n (default 1, at most 100000) fire times strictly after
**       `from` (epoch seconds, default now; fractions are floored), as
**       integer UTC epoch seconds; fewer when the 400-year search ends,
**       none for @reboot and for expressions that can never match
**   cron.matches(expr_or_c, t [, tz]) -> boolean | nil, err
**       is t (floored) a fire time: the first one after t - 1?
**   cron.zone(name) -> true | nil, err
**   c:next(...), c:matches(...), tostring(c) (normalised text),
**   c.reboot, c.seconds (written with a seconds field), c.wildcard
**       (minute or hour starts with '*': the DST rule of a wildcard job)
**
** tz is "UTC", "local" (the default, as cron's own zone: $TZ, else
** /etc/localtime) or an IANA name such as "Europe/London". A bad
** expression or zone is an expected failure: nil and an error object
** (kind "invalid"; "not_found" for an unknown zone, "io" for an unreadable
** zone file) whose tostring is one line,
** `cron: field 3 (day of month) "32": out of range 1-31`. Wrong argument
** types, from/t beyond +-2^42 s and n outside 0-100000 raise.
**
** Loaded zones are kept for the life of the Lua state, one per name (so
** "local" is resolved once: a later change of $TZ is not seen).
*/
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "cron.h"
#include "task.h"
#include "tz.h"

int luaopen_ato_cron (lua_State *L);

#define EXPR_META "ato.cron.expr"
#define ZONE_META "ato.cron.zone"
#define ZONES_KEY "ato.cron.zones"   /* registry: name -> zone box */
#define MAX_N 100000

typedef struct zone_box { tz_zone *z; } zone_box;

/* {====================================================== zones */

static int zone_gc (lua_State *L) {
  zone_box *b = luaL_checkudata(L, 1, ZONE_META);
  tz_free(b->z);
  b->z = NULL;
  return 0;
}

/*
** [-0, +0 | +2] The zone called name (from the cache, or loaded and
** cached). NULL when it cannot be had: then nil and an error object are
** on the stack.
*/
static const tz_zone *get_zone (lua_State *L, const char *name, size_t len) {
  char err[CRON_ERRLEN];
  zone_box *b;
  tz_zone *z;
  lua_getfield(L, LUA_REGISTRYINDEX, ZONES_KEY);
  if (lua_getfield(L, -1, name) == LUA_TUSERDATA) {
    b = lua_touserdata(L, -1);
    lua_pop(L, 2);                               /* the cache keeps it alive */
    return b->z;
  }
  lua_pop(L, 1);
  if (strlen(name) != len) {
    lua_pop(L, 1);
    ato_return_error(L, "invalid", "invalid time zone name (NUL byte)");
    return NULL;
  }
  b = lua_newuserdatauv(L, sizeof *b, 0);        /* before loading: no leak on error */
  b->z = NULL;
  luaL_setmetatable(L, ZONE_META);
  if ((z = tz_load(name, err, sizeof err)) == NULL) {
    int e = errno;
    lua_pop(L, 2);
    if (e == ENOMEM) luaL_error(L, "not enough memory");
    ato_return_error(L, e == ENOENT ? "not_found" : e == EIO ? "io" : "invalid", "%s", err);
    return NULL;
  }
  b->z = z;
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
  return z;
}

/* [-0, +0 | +2] The zone named at idx (nil or none: "local"). */
static const tz_zone *opt_zone (lua_State *L, int idx) {
  size_t len = 5;
  const char *name = lua_isnoneornil(L, idx) ? "local" : luaL_checklstring(L, idx, &len);
  return get_zone(L, name, len);
}

/* cron.zone(name) -> true | nil, err */
static int l_zone (lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  if (get_zone(L, name, len) == NULL) return 2;
  lua_pushboolean(L, 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== expressions */

/* Parses the string at idx into c; 0, or -1 with nil, err pushed. */
static int parse_into (lua_State *L, int idx, cron_expr *c, int seconds) {
  char err[CRON_ERRLEN];
  size_t len;
  const char *text = lua_tolstring(L, idx, &len);
  if (strlen(text) != len) {
    ato_return_error(L, "invalid", "cron: expression contains a NUL byte");
    return -1;
  }
  if (cron_parse(c, text, seconds, err, sizeof err) != 0) {
    ato_return_error(L, "invalid", "%s", err);
    return -1;
  }
  return 0;
}

/*
** The expression at idx: a parsed one, or a string parsed into *tmp. NULL
** with nil, err pushed for a bad string.
*/
static const cron_expr *get_expr (lua_State *L, int idx, cron_expr *tmp) {
  if (lua_type(L, idx) == LUA_TSTRING)
    return parse_into(L, idx, tmp, CRON_SECONDS_AUTO) == 0 ? tmp : NULL;
  return luaL_checkudata(L, idx, EXPR_META);
}

/* cron.parse(expr [, {seconds = bool}]) -> c | nil, err */
static int l_parse (lua_State *L) {
  int seconds = CRON_SECONDS_AUTO;
  cron_expr *c;
  luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "seconds");
    if (lua_isboolean(L, -1)) seconds = lua_toboolean(L, -1) ? CRON_SECONDS_YES : CRON_SECONDS_NO;
    else if (!lua_isnil(L, -1)) luaL_argerror(L, 2, "seconds must be a boolean");
    lua_pop(L, 1);
  }
  c = lua_newuserdatauv(L, sizeof *c, 0);
  if (parse_into(L, 1, c, seconds) != 0) return 2;
  luaL_setmetatable(L, EXPR_META);
  return 1;
}

/* A time argument: a finite number within the range cron accepts, floored. */
static int64_t check_time (lua_State *L, int idx) {
  lua_Number t = luaL_checknumber(L, idx);
  int64_t i;
  luaL_argcheck(L, t == t && t >= (lua_Number)CRON_TIME_MIN && t <= (lua_Number)CRON_TIME_MAX,
                idx, "time out of range");
  i = (int64_t)t;                                /* truncates toward zero ... */
  return (lua_Number)i > t ? i - 1 : i;          /* ... so step down below zero */
}

/* cron.next(expr_or_c [, from [, tz [, n]]]) -> {t...} | nil, err */
static int l_next (lua_State *L) {
  cron_expr tmp;
  const cron_expr *c;
  const tz_zone *z;
  int64_t after, t;
  lua_Integer i, n;
  after = lua_isnoneornil(L, 2) ? (int64_t)time(NULL) : check_time(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checkstring(L, 3);
  n = luaL_optinteger(L, 4, 1);
  luaL_argcheck(L, n >= 0 && n <= MAX_N, 4, "count must be 0 to 100000");
  if ((c = get_expr(L, 1, &tmp)) == NULL) return 2;
  if ((z = opt_zone(L, 3)) == NULL) return 2;
  lua_createtable(L, (int)(n < 64 ? n : 64), 0);
  for (i = 1; i <= n && cron_next(c, z, after, &t, 1) == 1; i++) {
    lua_pushinteger(L, (lua_Integer)t);
    lua_rawseti(L, -2, i);
    after = t;
  }
  return 1;
}

/* cron.matches(expr_or_c, t [, tz]) -> boolean | nil, err */
static int l_matches (lua_State *L) {
  cron_expr tmp;
  const cron_expr *c;
  const tz_zone *z;
  int64_t t = check_time(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checkstring(L, 3);
  if ((c = get_expr(L, 1, &tmp)) == NULL) return 2;
  if ((z = opt_zone(L, 3)) == NULL) return 2;
  lua_pushboolean(L, cron_matches(c, z, t));
  return 1;
}

static int expr_tostring (lua_State *L) {
  const cron_expr *c = luaL_checkudata(L, 1, EXPR_META);
  lua_pushstring(L, c->text);
  return 1;
}

/* c.reboot, c.seconds, c.wildcard, else the methods (upvalue 1). */
static int expr_index (lua_State *L) {
  const cron_expr *c = luaL_checkudata(L, 1, EXPR_META);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "reboot") == 0) lua_pushboolean(L, c->flags & CRON_REBOOT);
  else if (k != NULL && strcmp(k, "seconds") == 0) lua_pushboolean(L, c->flags & CRON_SECONDS);
  else if (k != NULL && strcmp(k, "wildcard") == 0) lua_pushboolean(L, cron_is_wildcard(c));
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

/* }====================================================== */

static const luaL_Reg expr_methods[] = {
  {"next", l_next},
  {"matches", l_matches},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"parse", l_parse},
  {"next", l_next},
  {"matches", l_matches},
  {"zone", l_zone},
  {NULL, NULL}
};

int luaopen_ato_cron (lua_State *L) {
  if (luaL_newmetatable(L, EXPR_META)) {
    luaL_newlib(L, expr_methods);
    lua_pushcclosure(L, expr_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, expr_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, ZONE_META)) {
    lua_pushcfunction(L, zone_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, ZONES_KEY) != LUA_TTABLE) {
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ZONES_KEY);
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}

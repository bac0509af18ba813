/*
** bindings/redact.c: the Lua module "ato.redact" (runtime/redact.h).
**
**   redact.text(s)            -> redacted copy of s, number of secrets
**   redact.value(s)           -> redacted form of s, a string known to be a secret
**   redact.fingerprint(s)     -> first 8 hex digits of SHA-256(s)
**   redact.sha256(s)          -> all 64 hex digits of SHA-256(s)
**   redact.is_secret_name(n)  -> true if a field called n holds a secret
**
** Bad argument types raise (numbers are accepted as strings, as everywhere
** in Lua); running out of memory raises "not enough memory".
*/
#include <lua.h>
#include <lauxlib.h>

#include "host.h"       /* luaopen_ato_redact, linked into the host */
#include "redact.h"
#include "sha256.h"

#define BUFBOX "ato.redact.buf"

/* __gc/__close of a buffer box: free what the box still owns. */
static int box_gc (lua_State *L) {
  ato_redact_buf_free(luaL_checkudata(L, 1, BUFBOX));
  return 0;
}

/* Push a userdata that owns an empty buffer, so that a Lua error raised
** while the buffer is in use (by lua_pushlstring) cannot leak it.
** [-0, +1, m] */
static ato_redact_buf *newbox (lua_State *L) {
  ato_redact_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  ato_redact_buf_init(b);
  luaL_setmetatable(L, BUFBOX);
  return b;
}

/* Replace the box on top of the stack with its contents as a string and
** free the buffer. [-1, +1, m] */
static void pushbox (lua_State *L, ato_redact_buf *b) {
  if (b->oom)
    luaL_error(L, "not enough memory");
  lua_pushlstring(L, b->len > 0 ? b->data : "", b->len);
  ato_redact_buf_free(b);
  lua_remove(L, -2);
}

static int redact_text (lua_State *L) {
  size_t len, count;
  const char *s = luaL_checklstring(L, 1, &len);
  ato_redact_buf *b = newbox(L);
  count = ato_redact_text(s, len, b);
  pushbox(L, b);
  lua_pushinteger(L, (lua_Integer)count);
  return 2;
}

static int redact_value (lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  ato_redact_buf *b = newbox(L);
  ato_redact_value(s, len, b);
  pushbox(L, b);
  return 1;
}

static int redact_fingerprint (lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char fp[9];
  ato_redact_fingerprint(s, len, fp);
  lua_pushlstring(L, fp, 8);
  return 1;
}

/* redact.sha256(s) -> 64 hex digits: to store or compare a secret
   without keeping it (the sandbox keeps only its keys' digests) */
static int redact_sha256 (lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[65];
  ato_sha256_hex(s, len, hex);
  lua_pushlstring(L, hex, 64);
  return 1;
}

static int redact_is_secret_name (lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  lua_pushboolean(L, ato_redact_is_secret_name(name, len));
  return 1;
}

static const luaL_Reg redact_funcs[] = {
  {"text", redact_text},
  {"value", redact_value},
  {"fingerprint", redact_fingerprint},
  {"sha256", redact_sha256},
  {"is_secret_name", redact_is_secret_name},
  {NULL, NULL}
};

/* Metatable of buffer boxes; they never leave the C functions above. */
static void create_box_meta (lua_State *L) {
  luaL_newmetatable(L, BUFBOX);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

int luaopen_ato_redact (lua_State *L) {
  create_box_meta(L);
  luaL_newlib(L, redact_funcs);
  return 1;
}

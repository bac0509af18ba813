/*
** errors.c — error objects: the `err` of every `nil, err` the runtime
** returns, and the value raised on cancellation. A table {kind=, message=,
** ...} whose metatable gives it a readable tostring(), so that both
** `if err.kind == "timeout"` and `print(err)` do the right thing.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "host.h"
#include "redact.h"
#include "task.h"

static int error_tostring (lua_State *L) {
  if (lua_getfield(L, 1, "message") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_getfield(L, 1, "kind");
    if (!lua_isstring(L, -1)) lua_pushliteral(L, "error");
  }
  return 1;
}

/* [-0, +0] Creates the "ato.error" metatable in the registry. */
void ato_errors_init (lua_State *L) {
  luaL_newmetatable(L, ATO_ERROR_META);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

static void push_error_v (lua_State *L, const char *kind, const char *fmt,
                          va_list ap) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushvfstring(L, fmt, ap);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, ATO_ERROR_META);
}

void ato_push_error (lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_error_v(L, kind, fmt, ap);
  va_end(ap);
}

int ato_return_error (lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  va_start(ap, fmt);
  push_error_v(L, kind, fmt, ap);
  va_end(ap);
  return 2;
}

const char *ato_uverror_kind (int uverr) {
  switch (uverr) {
    case UV_ENOENT: return "not_found";
    case UV_EACCES: case UV_EPERM: case UV_EROFS: return "permission";
    case UV_EEXIST: case UV_ENOTEMPTY: return "exists";
    case UV_EISDIR: return "is_directory";
    case UV_ENOTDIR: return "not_directory";
    case UV_ENOSPC: return "no_space";
    case UV_EMFILE: case UV_ENFILE: case UV_ENOMEM: return "resources";
    case UV_ETIMEDOUT: return "timeout";
    case UV_ECANCELED: return "cancelled";
    case UV_EINVAL: return "invalid";
    case UV_ELOOP: case UV_ENAMETOOLONG: return "invalid_path";
    default: return "io";
  }
}

/* "open /etc/x: no such file or directory", with code = "ENOENT" */
int ato_return_uverror (lua_State *L, int uverr, const char *op,
                        const char *path) {
  if (path) ato_return_error(L, ato_uverror_kind(uverr), "%s %s: %s", op, path,
                             uv_strerror(uverr));
  else ato_return_error(L, ato_uverror_kind(uverr), "%s: %s", op,
                        uv_strerror(uverr));
  lua_pushstring(L, uv_err_name(uverr));
  lua_setfield(L, -2, "code");
  if (path) {
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
  }
  return 2;
}

/*
** Every message the runtime itself prints (uncaught errors, tracebacks,
** load errors) goes through here: an error message can quote a secret
** (a failed request's URL, a line of source), and DESIGN.md says a secret
** is never printed whole.
*/
void ato_report (const char *fmt, ...) {
  va_list ap;
  char small[512], *text = small;
  size_t len;
  int n;
  ato_redact_buf out = ATO_REDACT_BUF_INIT;
  va_start(ap, fmt);
  n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  len = (size_t)n;
  if (len >= sizeof small) {
    if ((text = malloc(len + 1)) != NULL) {
      va_start(ap, fmt);
      vsnprintf(text, len + 1, fmt, ap);
      va_end(ap);
    } else {  /* out of memory: the truncated message */
      text = small;
      len = sizeof small - 1;
    }
  }
  if (ato_redact_text(text, len, &out) != ATO_REDACT_ENOMEM)
    fprintf(stderr, "ato: %s\n", out.data ? out.data : "");
  else
    fprintf(stderr, "ato: (message withheld: out of memory while redacting)\n");
  fflush(stderr);
  ato_redact_buf_free(&out);
  if (text != small) free(text);
}

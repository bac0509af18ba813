/*
** http.c — `require "ato.http"`, a loadable module (lib/ato/http.so) so
** that libcurl and its ~35 shared libraries load only when a script uses
** HTTP, not at every start of `ato`.
**
** This first slice only reports libcurl's version; the client and server
** arrive with their own issue.
*/
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

int luaopen_ato_http (lua_State *L);

/* http.version() -> {libcurl=, ssl=, libz=, nghttp2=, protocols={...}} */
static int l_version (lua_State *L) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  const char *const *p;
  int i = 0;
  lua_createtable(L, 0, 5);
  lua_pushstring(L, v->version);
  lua_setfield(L, -2, "libcurl");
  lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
  lua_setfield(L, -2, "ssl");
  lua_pushstring(L, v->libz_version ? v->libz_version : "");
  lua_setfield(L, -2, "libz");
  lua_pushstring(L, v->nghttp2_version ? v->nghttp2_version : "");
  lua_setfield(L, -2, "nghttp2");
  lua_newtable(L);
  for (p = v->protocols; p && *p; p++) {
    lua_pushstring(L, *p);
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "protocols");
  return 1;
}

static const luaL_Reg http_funcs[] = {
  {"version", l_version},
  {NULL, NULL}
};

int luaopen_ato_http (lua_State *L) {
  luaL_newlib(L, http_funcs);
  return 1;
}

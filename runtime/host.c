/*
** host.c — what a script finds in its Lua state: ato's stdlib and modules
** on the search paths (in the source tree and after `make install`), the
** modules linked into the binary, task-aware coroutines and os.exit.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "host.h"

static char exe_dir[PATH_MAX];

const char *ato_host_exe_dir (void) {
  if (exe_dir[0] == '\0') {
    size_t size = sizeof exe_dir;
    char *slash;
    if (uv_exepath(exe_dir, &size) != 0) exe_dir[0] = '\0';
    else if ((slash = strrchr(exe_dir, '/')) != NULL) *slash = '\0';
  }
  return exe_dir;
}

/* The stdlib next to the binary: source tree first, then an install. */
static const char *stdlib_dir (char *buf, size_t size) {
  const char *dir = ato_host_exe_dir();
  char probe[PATH_MAX + 32];
  snprintf(probe, sizeof probe, "%s/../stdlib/ato/init.lua", dir);
  if (access(probe, R_OK) == 0) snprintf(buf, size, "%s/../stdlib", dir);
  else snprintf(buf, size, "%s/../share/ato/lua", dir);
  return buf;
}

/* [-0, +0] Puts ato's directories in front of package.path/cpath. */
static void set_paths (lua_State *L) {
  char lib[PATH_MAX + 16];
  lua_getglobal(L, "package");
  stdlib_dir(lib, sizeof lib);
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", lib, lib, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  lua_getfield(L, -1, "cpath");
  lua_pushfstring(L, "%s/../lib/?.so;%s", ato_host_exe_dir(), lua_tostring(L, -1));
  lua_setfield(L, -3, "cpath");
  lua_pop(L, 2);
}

static const luaL_Reg linked_modules[] = {
  {"ato.core", luaopen_ato_core},
  {"ato.fs", luaopen_ato_fs},
  {"ato.exec", luaopen_ato_exec},
  {"ato.redact", luaopen_ato_redact},
  {NULL, NULL}
};

static void preload_modules (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  luaL_setfuncs(L, linked_modules, 0);
  lua_pop(L, 1);
}

/*
** os.exit([code]): flushes and ends the process. From a task it stops the
** loop and lets ato_rt_close release everything (so sanitizers see a clean
** exit); elsewhere it can only exit on the spot.
*/
static int os_exit (lua_State *L) {
  ato_rt *rt = ato_rt_get(L);
  int code;
  if (lua_isboolean(L, 1)) code = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else code = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  fflush(stdout);
  fflush(stderr);
  rt->exit_requested = 1;
  rt->exit_code = code;
  if (rt->current != NULL && rt->chain_ok && lua_isyieldable(L)) {
    uv_stop(&rt->loop);
    return ato_task_wait(L, rt->current, NULL, NULL, NULL, -1);
  }
  exit(code);
}

void ato_host_setup (ato_rt *rt) {
  lua_State *L = rt->L;
  set_paths(L);
  preload_modules(L);
  ato_coro_install(L);
  lua_getglobal(L, "os");
  lua_pushcfunction(L, os_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
}

void ato_host_main_ended (ato_rt *rt, ato_task_state st, const char *reason) {
  if (st == ATO_TASK_DONE) return;
  rt->main_failed = 1;  /* failed or cancelled: the script did not finish */
  if (st == ATO_TASK_CANCELLED && !rt->exit_signal && !rt->deadlocked)
    ato_report("main task cancelled: %s", reason ? reason : "task cancelled");
  ato_sched_cancel_all(rt, st == ATO_TASK_FAILED
                               ? "cancelled: the main task failed"
                               : "cancelled: the main task was cancelled");
}

/*
** host.h — the Lua environment ato gives a script: module paths, the
** modules linked into the binary, coroutine functions that let a task wait
** inside its own coroutines, and os.exit that shuts the loop down cleanly.
*/
#ifndef ATO_HOST_H
#define ATO_HOST_H

#include <lua.h>

#include "task.h"

/* Sets up rt->L for scripts (after ato_rt_init). */
void ato_host_setup (ato_rt *rt);

/* Called by the scheduler when the main task ends in state st. */
void ato_host_main_ended (ato_rt *rt, ato_task_state st, const char *reason);

/* The directory of the running executable ("" if unknown). */
const char *ato_host_exe_dir (void);

/* Replaces coroutine.resume/wrap/close (coro.c). */
void ato_coro_install (lua_State *L);

/* Creates the "ato.error" metatable (errors.c). */
void ato_errors_init (lua_State *L);

/* Creates the metatables of task handles and conditions (bindings/core.c). */
void ato_core_init_types (lua_State *L);

/* Modules linked into the host, registered in package.preload. */
int luaopen_ato_core (lua_State *L);
int luaopen_ato_fs (lua_State *L);
int luaopen_ato_exec (lua_State *L);
int luaopen_ato_redact (lua_State *L);

#endif

/*
** core.c — `require "ato.core"`: tasks, sleeping, conditions, error
** objects and runtime facts. The `ato` module (stdlib/ato/init.lua)
** re-exports these and builds timeout, gather and channels on them.
*/
#include <math.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "host.h"
#include "task.h"

#define COND_META "ato.cond"

/* Optional timeout in seconds at idx: -1 when absent. */
static double opt_timeout (lua_State *L, int idx) {
  lua_Number s;
  if (lua_isnoneornil(L, idx)) return -1;
  s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0, idx, "timeout must be a number >= 0 (seconds)");
  return s;
}

/* {====================================================== task handles */

static ato_task *check_task (lua_State *L, int idx) {
  return luaL_checkudata(L, idx, ATO_TASK_META);
}

static int l_spawn (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  ato_task_spawn(L, lua_gettop(L) - 1);
  return 1;
}

static int join_resume (lua_State *L, ato_task *self, void *op, ato_wake wake) {
  ato_task *t = check_task(L, 1);
  (void)self;
  (void)op;
  if (wake == ATO_WAKE_TIMEOUT)
    return ato_return_error(L, "timeout", "task %d still running after %f s",
                            (int)t->id, luaL_checknumber(L, 2));
  return ato_task_push_outcome(L, t, 1);
}

/* task:join([timeout]) -> the task's results, or nil, err */
static int task_join (lua_State *L) {
  ato_task *t = check_task(L, 1), *self;
  double timeout = opt_timeout(L, 2);
  lua_settop(L, 2);
  if (ato_task_finished(t)) return ato_task_push_outcome(L, t, 1);
  self = ato_task_enter(L, "task:join");
  if (self == t) return luaL_error(L, "a task cannot join itself");
  ato_waitq_push(&t->joiners, self);
  return ato_task_wait(L, self, NULL, NULL, join_resume, timeout);
}

/* task:cancel() -> true if the task was still running */
static int task_cancel (lua_State *L) {
  lua_pushboolean(L, ato_task_cancel(check_task(L, 1), "task cancelled"));
  return 1;
}

static int task_status (lua_State *L) {
  lua_pushstring(L, ato_task_state_name(check_task(L, 1)));
  return 1;
}

static int task_id (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_task(L, 1)->id);
  return 1;
}

/* task:age() -> seconds since it was spawned */
static int task_age (lua_State *L) {
  lua_pushnumber(L, ato_now() - check_task(L, 1)->started_at);
  return 1;
}

static int task_tostring (lua_State *L) {
  ato_task *t = check_task(L, 1);
  lua_pushfstring(L, "ato.task %d (%s)", (int)t->id, ato_task_state_name(t));
  return 1;
}

/* A handle in a <close> variable cancels its task when the scope ends. */
static int task_close (lua_State *L) {
  ato_task_cancel(check_task(L, 1), "task cancelled (its scope ended)");
  return 0;
}

static const luaL_Reg task_methods[] = {
  {"join", task_join},
  {"cancel", task_cancel},
  {"status", task_status},
  {"id", task_id},
  {"age", task_age},
  {NULL, NULL}
};

static const luaL_Reg task_meta[] = {
  {"__tostring", task_tostring},
  {"__close", task_close},
  {NULL, NULL}
};

/* }====================================================== */

/* {====================================================== sleeping */

/* ato.sleep(seconds): waits; 0 (or less) lets the other ready tasks run */
static int l_sleep (lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  ato_task *t;
  luaL_argcheck(L, s == s, 1, "not a number");
  t = ato_task_enter(L, "ato.sleep");
  if (s <= 0) return ato_task_yield(L, t);
  return ato_task_wait(L, t, NULL, NULL, NULL, s);
}

static int l_yield (lua_State *L) {
  return ato_task_yield(L, ato_task_enter(L, "ato.yield"));
}

static int l_now (lua_State *L) {
  lua_pushnumber(L, ato_now());
  return 1;
}

static int l_time (lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* }====================================================== */

/* {====================================================== conditions */

/* A condition: tasks wait until another task signals it. No value is
   passed: waiters re-check their own state (channels do). */
static ato_waitq *check_cond (lua_State *L) {
  return luaL_checkudata(L, 1, COND_META);
}

static int l_cond (lua_State *L) {
  ato_waitq *q = lua_newuserdatauv(L, sizeof *q, 0);
  q->head = q->tail = NULL;
  luaL_setmetatable(L, COND_META);
  return 1;
}

static int cond_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  (void)t;
  (void)op;
  if (wake == ATO_WAKE_TIMEOUT)
    return ato_return_error(L, "timeout", "wait timed out after %f s",
                            luaL_checknumber(L, 2));
  lua_pushboolean(L, 1);
  return 1;
}

/* cond:wait([timeout]) -> true, or nil, err (kind "timeout") */
static int cond_wait (lua_State *L) {
  ato_waitq *q = check_cond(L);
  double timeout = opt_timeout(L, 2);
  ato_task *t = ato_task_enter(L, "cond:wait");
  lua_settop(L, 2);
  ato_waitq_push(q, t);
  return ato_task_wait(L, t, NULL, NULL, cond_resume, timeout);
}

/* cond:signal() -> true if a waiting task was woken */
static int cond_signal (lua_State *L) {
  ato_task *t = ato_waitq_first(check_cond(L));
  if (t) ato_task_wake(t, ATO_WAKE_OK);
  lua_pushboolean(L, t != NULL);
  return 1;
}

/* cond:broadcast() -> number of tasks woken */
static int cond_broadcast (lua_State *L) {
  ato_waitq *q = check_cond(L);
  lua_Integer n = 0;
  ato_task *t;
  for (t = q->head; t != NULL; t = t->qnext) n++;
  ato_waitq_wake_all(q, ATO_WAKE_OK);
  lua_pushinteger(L, n);
  return 1;
}

static const luaL_Reg cond_methods[] = {
  {"wait", cond_wait},
  {"signal", cond_signal},
  {"broadcast", cond_broadcast},
  {NULL, NULL}
};

/* }====================================================== */

/* {====================================================== signal traps */

#define TRAP_META "ato.trap"

/* A task's view of one trapped signal: how many it has seen so far. */
typedef struct trap { int index; unsigned long seen; } trap;

/* ato.trap("term"|"int"|"hup" [, {repeat = true}]) -> trap: from now on
   that signal wakes trap:wait() instead of cancelling every task (task.h,
   ato_rt_trap); with repeat, a second one does not exit either. */
static int l_trap (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  ato_rt *rt = ato_rt_get(L);
  int i = ato_rt_trap(rt, name);
  trap *tp;
  if (i < 0) return luaL_argerror(L, 1, "\"term\", \"int\" or \"hup\" expected");
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "repeat");
    ato_rt_trap_repeat(rt, i, lua_toboolean(L, -1));
    lua_pop(L, 1);
  }
  tp = lua_newuserdatauv(L, sizeof *tp, 0);
  tp->index = i;
  tp->seen = rt->trap_received[i];
  luaL_setmetatable(L, TRAP_META);
  return 1;
}

/* op is the runtime while the task counts as waiting, NULL after */
static void trap_detach (void *op) {
  ato_rt_trap_waiting(op, -1);
}

static int trap_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  trap *tp = luaL_checkudata(L, 1, TRAP_META);
  if (op != NULL) ato_rt_trap_waiting(op, -1);   /* woken by the signal */
  if (wake == ATO_WAKE_TIMEOUT)
    return ato_return_error(L, "timeout", "no signal within %f s", luaL_checknumber(L, 2));
  tp->seen = t->rt->trap_received[tp->index];
  lua_pushboolean(L, 1);
  return 1;
}

/* trap:wait([timeout]) -> true once the signal came (at once if it came
   since the last wait), or nil, err (kind "timeout") */
static int trap_wait (lua_State *L) {
  trap *tp = luaL_checkudata(L, 1, TRAP_META);
  double timeout = opt_timeout(L, 2);
  ato_task *t = ato_task_enter(L, "trap:wait");
  ato_rt *rt = t->rt;
  if (rt->trap_received[tp->index] != tp->seen) {
    tp->seen = rt->trap_received[tp->index];
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 2);
  ato_waitq_push(&rt->trap_waiters[tp->index], t);
  ato_rt_trap_waiting(rt, 1);
  return ato_task_wait(L, t, rt, trap_detach, trap_resume, timeout);
}

static const luaL_Reg trap_methods[] = {
  {"wait", trap_wait},
  {NULL, NULL}
};

/* }====================================================== */

/* {====================================================== runtime facts */

/* ato.err(kind, message [, fields]) -> an error object (not raised) */
static int l_err (lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *msg = luaL_optstring(L, 2, kind);
  ato_push_error(L, kind, "%s", msg);
  if (lua_istable(L, 3)) {                  /* copy the extra fields */
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -4);
    }
  }
  return 1;
}

static int l_current (lua_State *L) {
  ato_task *t = ato_rt_get(L)->current;
  if (t == NULL) lua_pushnil(L);
  else lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  return 1;
}

/* ato.tasks() -> the live tasks' handles, oldest first */
static int l_tasks (lua_State *L) {
  ato_rt *rt = ato_rt_get(L);
  ato_task *t;
  lua_Integer i = (lua_Integer)rt->nlive;
  lua_createtable(L, (int)rt->nlive, 0);
  for (t = rt->live; t != NULL; t = t->next) {  /* newest first in the list */
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_rawseti(L, -2, i--);
  }
  return 1;
}

static void set_int (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static int l_stats (lua_State *L) {
  ato_rt *rt = ato_rt_get(L);
  ato_task *t;
  lua_Integer ready = 0;
  for (t = rt->ready_head; t != NULL; t = t->ready_next) ready++;
  lua_createtable(L, 0, 6);
  set_int(L, "live", (lua_Integer)rt->nlive);
  set_int(L, "ready", ready);
  set_int(L, "deadlines", (lua_Integer)rt->timers.count);
  set_int(L, "spawned", (lua_Integer)rt->spawned);
  set_int(L, "unobserved_failures", (lua_Integer)rt->unobserved);
  set_int(L, "lua_kb", lua_gc(L, LUA_GCCOUNT, 0));
  return 1;
}

static int l_config (lua_State *L) {
  ato_rt *rt = ato_rt_get(L);
  char exe[4096];
  size_t size = sizeof exe;
  lua_createtable(L, 0, 4);
  if (uv_exepath(exe, &size) == 0) {   /* for starting more ato processes */
    lua_pushlstring(L, exe, size);
    lua_setfield(L, -2, "exe");
  }
  lua_pushstring(L, rt->log_json < 0 ? "auto" : rt->log_json ? "json" : "human");
  lua_setfield(L, -2, "log_format");
  lua_pushstring(L, rt->log_level);
  lua_setfield(L, -2, "log_level");
  lua_pushstring(L, ATO_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

static int l_isatty (lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* }====================================================== */

static const luaL_Reg core_funcs[] = {
  {"spawn", l_spawn},
  {"sleep", l_sleep},
  {"yield", l_yield},
  {"now", l_now},
  {"time", l_time},
  {"cond", l_cond},
  {"trap", l_trap},
  {"err", l_err},
  {"current", l_current},
  {"tasks", l_tasks},
  {"stats", l_stats},
  {"config", l_config},
  {"isatty", l_isatty},
  {NULL, NULL}
};

/* [-0, +0] metatable with methods as __index */
static void new_type (lua_State *L, const char *name, const luaL_Reg *meta,
                      const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  if (meta) luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void ato_core_init_types (lua_State *L) {
  new_type(L, ATO_TASK_META, task_meta, task_methods);
  new_type(L, COND_META, NULL, cond_methods);
  new_type(L, TRAP_META, NULL, trap_methods);
}

int luaopen_ato_core (lua_State *L) {
  luaL_newlib(L, core_funcs);
  return 1;
}

/*
** coro.c — coroutine.resume/wrap/close that let a task wait inside its own
** coroutines (an iterator built with coroutine.wrap may call http.get).
**
** When a binding parks the task from inside a user coroutine, the yield
** reaches our resume first. We recognise it (the task is no longer
** running) and yield again from the resumer's thread with a continuation,
** and so on up to the scheduler. When the scheduler resumes the task, each
** continuation resumes the coroutine below it, down to the binding's own
** continuation. A user's plain coroutine.yield() still returns to its
** resumer as usual. The same idea as NSE's and OpenResty's resume wrappers.
**
** While parked, a coroutine is marked so that no other task resumes or
** closes it under the waiting task's feet.
*/
#include <lauxlib.h>

#include "host.h"
#include "task.h"

#define OWNER(co) (*(void **)lua_getextraspace(co))

static char parked_mark;  /* OWNER(co) == &parked_mark while co is parked */

static lua_State *check_co (lua_State *L, int idx) {
  lua_State *co = lua_tothread(L, idx);
  luaL_argexpected(L, co != NULL, idx, "coroutine");
  return co;
}

/* what: "resume" or "close" */
static void check_resumable (lua_State *L, lua_State *co, const char *what) {
  void *owner = OWNER(co);
  if (owner == &parked_mark)
    luaL_error(L, "cannot %s a coroutine that is waiting for an operation "
               "(another task owns it)", what);
  if (owner != NULL)
    luaL_error(L, "cannot %s a task's coroutine (use the task handle)", what);
}

/*
** Resumes co with narg values from L's top. Returns the status; results,
** yielded values or the error object are moved to L (*nres of them). If co
** parked the task, yields L with continuation k (it never returns then).
*/
static int run_co (lua_State *L, lua_State *co, int narg, lua_KFunction k,
                   int *nres) {
  ato_rt *rt = ato_rt_get(L);
  lua_State *saved_running = rt->running;
  int saved_chain = rt->chain_ok;
  int status;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    *nres = 1;
    return LUA_ERRRUN;
  }
  lua_xmove(L, co, narg);
  rt->chain_ok = saved_chain && lua_isyieldable(L);
  rt->running = co;
  status = lua_resume(co, L, narg, nres);
  rt->running = saved_running;
  rt->chain_ok = saved_chain;
  if (status == LUA_YIELD && rt->current != NULL &&
      rt->current->state != ATO_TASK_RUNNING) {
    lua_pop(co, *nres);                   /* a park yields no values */
    OWNER(co) = &parked_mark;
    return lua_yieldk(L, 0, (lua_KContext)co, k);
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, *nres + 1)) {
      lua_pop(co, *nres);
      lua_pushliteral(L, "too many results to resume");
      *nres = 1;
      return LUA_ERRRUN;
    }
    lua_xmove(co, L, *nres);
  } else {
    lua_xmove(co, L, 1);                  /* the error object */
    *nres = 1;
  }
  return status;
}

/* {====================================================== resume */

static int resume_results (lua_State *L, int status, int nres) {
  lua_pushboolean(L, status == LUA_OK || status == LUA_YIELD);
  lua_insert(L, -(nres + 1));             /* ok, values... */
  return nres + 1;
}

static int resume_k (lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = (lua_State *)ctx;
  int nres;
  (void)status;
  OWNER(co) = NULL;
  status = run_co(L, co, 0, resume_k, &nres);
  return resume_results(L, status, nres);
}

static int co_resume (lua_State *L) {
  lua_State *co = check_co(L, 1);
  int nres, status;
  check_resumable(L, co, "resume");
  status = run_co(L, co, lua_gettop(L) - 1, resume_k, &nres);
  return resume_results(L, status, nres);
}

/* }====================================================== */

/* {====================================================== wrap */

/* As lcorolib's auxwrap: close a failed coroutine, locate string errors. */
static int wrap_results (lua_State *L, lua_State *co, int status, int nres) {
  int st;
  if (status == LUA_OK || status == LUA_YIELD) return nres;
  st = lua_status(co);
  if (st != LUA_OK && st != LUA_YIELD) {  /* the coroutine itself failed */
    st = lua_resetthread(co);             /* close its tbc variables */
    lua_xmove(co, L, 1);
  }
  if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int wrap_k (lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = (lua_State *)ctx;
  int nres;
  (void)status;
  OWNER(co) = NULL;
  status = run_co(L, co, 0, wrap_k, &nres);
  return wrap_results(L, co, status, nres);
}

static int wrap_call (lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int nres, status;
  check_resumable(L, co, "resume");
  status = run_co(L, co, lua_gettop(L), wrap_k, &nres);
  return wrap_results(L, co, status, nres);
}

static int co_wrap (lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);                  /* f co */
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, wrap_call, 1);
  return 1;
}

/* }====================================================== */

/* coroutine.close, refusing coroutines that a task is waiting inside. */
static int co_close (lua_State *L) {
  check_resumable(L, check_co(L, 1), "close");
  lua_pushvalue(L, lua_upvalueindex(1));  /* the original close */
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

void ato_coro_install (lua_State *L) {
  lua_getglobal(L, "coroutine");          /* co */
  lua_pushcfunction(L, co_resume);
  lua_setfield(L, -2, "resume");
  lua_pushcfunction(L, co_wrap);
  lua_setfield(L, -2, "wrap");
  lua_getfield(L, -1, "close");           /* co close */
  lua_pushcclosure(L, co_close, 1);
  lua_setfield(L, -2, "close");
  lua_pop(L, 1);
}

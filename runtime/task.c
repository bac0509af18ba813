/*
** task.c — tasks, the ready queue, waits, deadlines and cancellation.
** See task.h for the model. Everything here runs on the loop thread.
*/
#include "task.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "host.h"

/* Resumes per check callback before the loop polls I/O again. */
#define DRAIN_BUDGET 4096

/* Longest deadline we arm: far enough to mean "never", small enough for ns. */
#define MAX_WAIT_SECONDS 1e9

/*
** Waits a cancelled task may still attempt (each raising the cancellation
** again, after a yield) before the scheduler stops resuming it and resets
** its coroutine: a `while true do pcall(ato.sleep, 1) end` must end.
*/
#define CANCEL_GRACE 8

#define TASK_OF(co) (*(ato_task **)lua_getextraspace(co))
#define TASK_FROM_TIMER(tm) \
  ((ato_task *)((char *)(tm) - offsetof(ato_task, timer)))

/* {====================================================== ready queue */

static void on_idle (uv_idle_t *h) {
  (void)h;  /* only there so that poll does not block while tasks are ready */
}

static void enqueue (ato_rt *rt, ato_task *t) {
  t->state = ATO_TASK_READY;
  t->ready_next = NULL;
  if (rt->ready_tail) rt->ready_tail->ready_next = t;
  else rt->ready_head = t;
  rt->ready_tail = t;
  if (!rt->idle_active && !rt->closing) {
    uv_idle_start(&rt->idle, on_idle);
    rt->idle_active = 1;
  }
}

static ato_task *dequeue (ato_rt *rt) {
  ato_task *t = rt->ready_head;
  if (t == NULL) return NULL;
  rt->ready_head = t->ready_next;
  if (rt->ready_head == NULL) rt->ready_tail = NULL;
  t->ready_next = NULL;
  return t;
}

/* }====================================================== */

/* {====================================================== wait queues */

void ato_waitq_push (ato_waitq *q, ato_task *t) {
  t->queue = q;
  t->qnext = NULL;
  t->qprev = q->tail;
  if (q->tail) q->tail->qnext = t;
  else q->head = t;
  q->tail = t;
}

static void waitq_remove (ato_task *t) {
  ato_waitq *q = t->queue;
  if (q == NULL) return;
  if (t->qprev) t->qprev->qnext = t->qnext;
  else q->head = t->qnext;
  if (t->qnext) t->qnext->qprev = t->qprev;
  else q->tail = t->qprev;
  t->queue = NULL;
  t->qprev = t->qnext = NULL;
}

ato_task *ato_waitq_first (const ato_waitq *q) {
  return q->head;
}

void ato_waitq_wake_all (ato_waitq *q, ato_wake wake) {
  ato_task *t;
  while ((t = q->head) != NULL) {
    waitq_remove(t);  /* even if it somehow is not waiting: never loop */
    ato_task_wake(t, wake);
  }
}

/* }====================================================== */

/* {====================================================== deadlines */

static void on_timer (uv_timer_t *h);

/* Arms the single uv timer for the earliest deadline, or stops it. */
static void arm_timer (ato_rt *rt) {
  ato_timer *first = ato_timerheap_peek(&rt->timers);
  uint64_t now, ms;
  if (first == NULL) {
    if (rt->timer_armed) uv_timer_stop(&rt->timer);
    rt->timer_armed = 0;
    return;
  }
  if (rt->timer_armed && rt->timer_when <= first->when) return;
  now = uv_hrtime();
  ms = first->when > now ? (first->when - now + 999999) / 1000000 : 0;
  uv_timer_start(&rt->timer, on_timer, ms, 0);
  rt->timer_armed = 1;
  rt->timer_when = first->when;
}

static void detach_op (ato_task *t) {
  ato_detach_fn detach = t->detach;
  if (detach == NULL) return;
  t->detach = NULL;
  detach(t->op);
  t->op = NULL;  /* the binding owns it now */
}

static void on_timer (uv_timer_t *h) {
  ato_rt *rt = h->data;
  uint64_t now = uv_hrtime();
  ato_timer *tm;
  rt->timer_armed = 0;
  while ((tm = ato_timerheap_pop_due(&rt->timers, now)) != NULL) {
    ato_task *t = TASK_FROM_TIMER(tm);
    if (t->state != ATO_TASK_WAITING) continue;
    detach_op(t);
    ato_task_wake(t, ATO_WAKE_TIMEOUT);
  }
  arm_timer(rt);
}

static uint64_t deadline_after (double seconds) {
  if (seconds > MAX_WAIT_SECONDS) seconds = MAX_WAIT_SECONDS;
  return uv_hrtime() + (uint64_t)(seconds * 1e9);
}

/* }====================================================== */

/* {====================================================== waiting */

static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  ato_task *t = (ato_task *)ctx;
  void *op = t->op;
  ato_resume_fn resume = t->resume;
  ato_wake wake = t->wake;
  (void)status;
  t->op = NULL;
  t->detach = NULL;
  t->resume = NULL;
  if (wake == ATO_WAKE_CANCELLED) return ato_task_raise_cancelled(L, t);
  return resume ? resume(L, t, op, wake) : 0;
}

int ato_task_wait (lua_State *L, ato_task *t, void *op, ato_detach_fn detach,
                   ato_resume_fn resume, double timeout) {
  ato_rt *rt = t->rt;
  t->op = op;
  t->detach = detach;
  t->resume = resume;
  t->wake = ATO_WAKE_OK;
  t->state = ATO_TASK_WAITING;
  if (timeout >= 0) {
    if (ato_timerheap_push(&rt->timers, &t->timer, deadline_after(timeout))) {
      t->state = ATO_TASK_RUNNING;
      waitq_remove(t);
      detach_op(t);
      return luaL_error(L, "not enough memory");
    }
    arm_timer(rt);
  }
  return lua_yieldk(L, 0, (lua_KContext)t, wait_k);
}

int ato_task_yield (lua_State *L, ato_task *t) {
  t->op = NULL;
  t->detach = NULL;
  t->resume = NULL;
  t->wake = ATO_WAKE_OK;
  enqueue(t->rt, t);
  return lua_yieldk(L, 0, (lua_KContext)t, wait_k);
}

void ato_task_wake (ato_task *t, ato_wake wake) {
  ato_rt *rt = t->rt;
  if (t->state != ATO_TASK_WAITING || rt->closing) return;
  if (ato_timer_active(&t->timer)) {
    ato_timerheap_remove(&rt->timers, &t->timer);
    /* an armed uv timer with nothing left would keep the loop alive */
    if (ato_timerheap_peek(&rt->timers) == NULL) arm_timer(rt);
  }
  waitq_remove(t);
  t->wake = wake;
  enqueue(rt, t);
}

static int raise_cancelled_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return ato_task_raise_cancelled(L, (ato_task *)ctx);
}

ato_task *ato_task_enter (lua_State *L, const char *what) {
  ato_rt *rt = ato_rt_get(L);
  ato_task *t = rt->current;
  if (t == NULL)
    luaL_error(L, "%s must be called from a task", what);
  if (!rt->chain_ok || !lua_isyieldable(L))
    luaL_error(L, "%s cannot wait here (a metamethod, a finalizer, a __close "
               "handler of an unwinding task, a chunk being required, or a C "
               "callback such as a table.sort comparator cannot be suspended)",
               what);
  if (t->cancelled) {
    /* it caught its cancellation and waits again: let the loop run first
       (the task may be looping), then raise again */
    t->cancel_retries++;
    enqueue(rt, t);
    lua_yieldk(L, 0, (lua_KContext)t, raise_cancelled_k);
  }
  return t;
}

/* }====================================================== */

/* {====================================================== cancellation */

int ato_task_raise_cancelled (lua_State *L, ato_task *t) {
  ato_push_error(L, "cancelled", "%s",
                 t->cancel_reason ? t->cancel_reason : "task cancelled");
  return lua_error(L);
}

int ato_task_finished (const ato_task *t) {
  return t->state >= ATO_TASK_DONE;
}

int ato_task_cancel (ato_task *t, const char *reason) {
  if (ato_task_finished(t) || t->rt->closing) return 0;
  if (!t->cancelled) {
    t->cancelled = 1;
    t->cancel_reason = reason;
  }
  if (t->state == ATO_TASK_WAITING) {
    detach_op(t);
    ato_task_wake(t, ATO_WAKE_CANCELLED);
  }
  return 1;
}

void ato_sched_cancel_all (ato_rt *rt, const char *reason) {
  ato_task *t;
  for (t = rt->live; t != NULL; t = t->next)  /* cancel never unlinks */
    ato_task_cancel(t, reason);
}

/* }====================================================== */

/* {====================================================== spawning */

static void link_live (ato_rt *rt, ato_task *t) {
  t->prev = NULL;
  t->next = rt->live;
  if (rt->live) rt->live->prev = t;
  rt->live = t;
  rt->nlive++;
}

static void unlink_live (ato_rt *rt, ato_task *t) {
  if (t->prev) t->prev->next = t->next;
  else rt->live = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  rt->nlive--;
}

ato_task *ato_task_spawn (lua_State *L, int narg) {
  ato_rt *rt = ato_rt_get(L);
  ato_task *t;
  lua_State *co;
  luaL_checkstack(L, 3, NULL);
  t = lua_newuserdatauv(L, sizeof *t, 2);            /* f args t */
  memset(t, 0, sizeof *t);
  t->rt = rt;
  t->ref = LUA_NOREF;
  t->id = ++rt->next_id;
  t->started_at = ato_now();
  t->state = ATO_TASK_READY;
  luaL_setmetatable(L, ATO_TASK_META);
  /* a fresh coroutine per task: a recycled one would let code that kept
     it (from coroutine.running()) see the next task as the same thread */
  co = lua_newthread(L);                             /* f args t co */
  lua_setiuservalue(L, -2, 1);                       /* f args t */
  if (!lua_checkstack(co, narg + 1))
    luaL_error(L, "too many arguments for a task");
  lua_rotate(L, -(narg + 2), 1);                     /* t f args */
  lua_xmove(L, co, narg + 1);                        /* t */
  t->co = co;
  t->nargs = narg;
  TASK_OF(co) = t;
  lua_pushvalue(L, -1);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);           /* live: anchored */
  link_live(rt, t);
  rt->spawned++;
  enqueue(rt, t);
  return t;
}

/* }====================================================== */

/* {====================================================== finishing */

static int is_cancel_error (lua_State *L, int idx) {
  int yes;
  if (!lua_istable(L, idx)) return 0;
  idx = lua_absindex(L, idx);
  lua_pushliteral(L, "kind");
  lua_rawget(L, idx);                 /* raw: no user __index in the scheduler */
  yes = lua_type(L, -1) == LUA_TSTRING &&
        strcmp(lua_tostring(L, -1), "cancelled") == 0;
  lua_pop(L, 1);
  return yes;
}

/* [-0, +1] Releases the coroutine and wakes joiners; handle at hidx. */
static void end_task (ato_rt *rt, ato_task *t, int hidx, ato_task_state st) {
  lua_State *L = rt->L, *co = t->co;
  t->state = st;
  t->co = NULL;
  unlink_live(rt, t);
  TASK_OF(co) = NULL;
  lua_settop(co, 0);
  lua_pushnil(L);
  lua_setiuservalue(L, hidx, 1);                     /* drop the coroutine */
  ato_waitq_wake_all(&t->joiners, ATO_WAKE_OK);
  luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
  t->ref = LUA_NOREF;
  if (t == rt->main) {
    ato_host_main_ended(rt, st, t->cancel_reason);
    rt->main = NULL;                                 /* the handle may be collected */
  }
}

/* Moves co's nres results into the handle's user value 2 as {n=, ...}. */
static void finish_ok (ato_rt *rt, ato_task *t, int nres) {
  lua_State *L = rt->L;
  int i, hidx;
  luaL_checkstack(L, nres + 3, "too many results");
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);         /* handle */
  hidx = lua_gettop(L);
  if (nres > 0) {
    lua_createtable(L, nres, 1);                     /* handle res */
    lua_xmove(t->co, L, nres);                       /* handle res v1..vn */
    for (i = nres; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    lua_setiuservalue(L, hidx, 2);                   /* handle */
  }
  end_task(rt, t, hidx, ATO_TASK_DONE);
  lua_settop(L, hidx - 1);
}

/* [-0, +1] The error at idx as text, without letting __tostring escape. */
static int tostring_aux (lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

static const char *error_text (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushvalue(L, idx);
  } else if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushcfunction(L, tostring_aux);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "(error object whose __tostring failed)");
    }
  } else {
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
  return lua_tostring(L, -1);
}

static void report_failure (ato_rt *rt, ato_task *t, const char *trace) {
  if (t == rt->main) ato_report("%s", trace);
  else ato_report("task %lu failed: %s", t->id, trace);
}

/* A failure is reported when nobody waits for it: joiners get it instead. */
static void note_failure (ato_rt *rt, ato_task *t, const char *text) {
  if (t == rt->main || t->joiners.head == NULL) {
    report_failure(rt, t, text);
    if (t != rt->main) {
      t->reported = 1;
      rt->unobserved++;
    }
  } else {
    t->observed = 1;
  }
}

/*
** A __close handler raised while the failed coroutine was reset. The
** report mentions both errors; the outcome stays the original error, or
** becomes the handler's for a cancellation (which is then a failure).
** Stack: handle err text (text is nil for a cancellation).
*/
static void closing_failed (lua_State *L, lua_State *co, int hidx,
                            int *cancelled) {
  lua_xmove(co, L, 1);                               /* h err text err2 */
  if (lua_rawequal(L, -1, hidx + 1)) { lua_pop(L, 1); return; }
  error_text(L, -1);                                 /* h err text err2 m2 */
  if (*cancelled) {
    lua_pushfstring(L, "error in __close: %s", lua_tostring(L, -1));
    lua_replace(L, hidx + 2);                        /* h err t2 err2 m2 */
    lua_pop(L, 1);
    lua_replace(L, hidx + 1);                        /* h err2 t2 */
    *cancelled = 0;
    return;
  }
  lua_pushfstring(L, "%s\n(and in __close: %s)", lua_tostring(L, hidx + 2),
                  lua_tostring(L, -1));              /* h err text err2 m2 t2 */
  lua_replace(L, hidx + 2);                          /* h err t2 err2 m2 */
  lua_pop(L, 2);                                     /* h err t2 */
}

/*
** The coroutine raised; its error is on its stack top. Builds the
** traceback while the stack is intact, then resets the coroutine, which
** runs its pending __close handlers (they get the error).
*/
static void finish_error (ato_rt *rt, ato_task *t) {
  lua_State *L = rt->L, *co = t->co;
  int hidx, cancelled;
  luaL_checkstack(L, 8, NULL);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);         /* h */
  hidx = lua_gettop(L);
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);                               /* h err */
  cancelled = t->cancelled && is_cancel_error(L, -1);
  if (cancelled) {
    lua_pushnil(L);                                  /* h err nil */
  } else {
    error_text(L, -1);                               /* h err msg */
    luaL_traceback(L, co, lua_tostring(L, -1), 0);   /* h err msg tb */
    lua_remove(L, -2);                               /* h err tb */
  }
  /* __close handlers run now: as part of t (ato.current() works), but
     unable to wait (the coroutine is not resumable any more) */
  rt->current = t;
  rt->chain_ok = 0;
  rt->running = co;
  lua_sethook(co, NULL, 0, 0);  /* a signal's hook must not fail the handlers */
  if (lua_resetthread(co) != LUA_OK) closing_failed(L, co, hidx, &cancelled);
  rt->running = NULL;
  rt->current = NULL;
  lua_settop(co, 0);
  lua_pushvalue(L, hidx + 1);
  lua_setiuservalue(L, hidx, 2);                     /* outcome: the error */
  if (!cancelled) note_failure(rt, t, lua_tostring(L, hidx + 2));
  end_task(rt, t, hidx, cancelled ? ATO_TASK_CANCELLED : ATO_TASK_FAILED);
  lua_settop(L, hidx - 1);
}

/*
** Ends a cancelled task without resuming it: it never started, or it kept
** waiting after its cancellation (CANCEL_GRACE). Resetting the suspended
** coroutine runs its pending __close handlers.
*/
static void end_unresumed (ato_rt *rt, ato_task *t) {
  lua_State *L = rt->L;
  int hidx;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  hidx = lua_gettop(L);
  if (t->started) {
    rt->current = t;
    rt->chain_ok = 0;
    rt->running = t->co;
    lua_sethook(t->co, NULL, 0, 0);
    if (lua_resetthread(t->co) != LUA_OK) {
      lua_xmove(t->co, L, 1);
      ato_report("task %lu: error in __close: %s", t->id, error_text(L, -1));
    }
    rt->current = NULL;
    rt->running = NULL;
  }
  lua_settop(t->co, 0);
  lua_settop(L, hidx);
  ato_push_error(L, "cancelled", "%s", t->cancel_reason ? t->cancel_reason
                                                        : "task cancelled");
  lua_setiuservalue(L, hidx, 2);
  end_task(rt, t, hidx, ATO_TASK_CANCELLED);
  lua_settop(L, hidx - 1);
}

/* }====================================================== */

/* {====================================================== the scheduler */

static void resume_task (ato_rt *rt, ato_task *t) {
  lua_State *co = t->co;
  int nargs = 0, nres = 0, status;
  if (t->cancelled && (!t->started || t->cancel_retries > CANCEL_GRACE)) {
    end_unresumed(rt, t);
    return;
  }
  if (!t->started) {
    t->started = 1;
    nargs = t->nargs;
  }
  t->state = ATO_TASK_RUNNING;
  rt->current = t;
  rt->chain_ok = 1;
  rt->running = co;
  status = lua_resume(co, rt->L, nargs, &nres);
  rt->running = NULL;
  rt->current = NULL;
  if (status == LUA_YIELD) {
    lua_pop(co, nres);
    /* a plain coroutine.yield() at the task's top level: run again later
       (and count it against the grace of a cancelled task) */
    if (t->state == ATO_TASK_RUNNING) {
      t->cancel_retries += t->cancelled;
      enqueue(rt, t);
    }
  } else if (status == LUA_OK) {
    finish_ok(rt, t, nres);
  } else {
    finish_error(rt, t);
  }
}

/* Runs inside lua_pcall on the main thread: an out-of-memory error in the
   scheduler's own Lua API calls is caught there instead of panicking. */
static int drain (lua_State *L) {
  ato_rt *rt = lua_touserdata(L, 1);
  int budget = DRAIN_BUDGET;
  ato_task *t;
  while (budget-- > 0 && !rt->exit_requested && (t = dequeue(rt)) != NULL)
    resume_task(rt, t);
  return 0;
}

static void on_check (uv_check_t *h) {
  ato_rt *rt = h->data;
  lua_State *L = rt->L;
  if (rt->closing) return;
  lua_pushcfunction(L, drain);
  lua_pushlightuserdata(L, rt);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    ato_report("fatal: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    rt->exit_requested = 1;
    rt->exit_code = 70;
  }
  if (rt->ready_head == NULL && rt->idle_active) {
    uv_idle_stop(&rt->idle);
    rt->idle_active = 0;
  }
  if (rt->exit_requested) uv_stop(&rt->loop);
}

int ato_sched_init (ato_rt *rt) {
  ato_timerheap_init(&rt->timers);
  if (uv_timer_init(&rt->loop, &rt->timer) || uv_check_init(&rt->loop, &rt->check)
      || uv_idle_init(&rt->loop, &rt->idle))
    return -1;
  rt->timer.data = rt->check.data = rt->idle.data = rt;
  uv_check_start(&rt->check, on_check);
  uv_unref((uv_handle_t *)&rt->check);  /* ready tasks keep the loop alive via idle */
  return 0;
}

static void on_closed (uv_handle_t *h) {
  (void)h;
}

void ato_sched_close_handles (ato_rt *rt) {
  uv_close((uv_handle_t *)&rt->timer, on_closed);
  uv_close((uv_handle_t *)&rt->check, on_closed);
  uv_close((uv_handle_t *)&rt->idle, on_closed);
}

/*
** Before the loop shuts down: every task that still holds an operation
** gives it back, including tasks woken but never resumed (their resume
** function, which would have released the op, will not run now).
*/
void ato_sched_detach_all (ato_rt *rt) {
  ato_task *t;
  size_t i;
  for (t = rt->live; t != NULL; t = t->next) detach_op(t);
  for (i = 0; i < rt->timers.count; i++) rt->timers.nodes[i]->index = 0;
  ato_timerheap_free(&rt->timers);
}

/* }====================================================== */

/* {====================================================== handles' view */

static const char *const state_names[] = {
  "ready", "running", "waiting", "done", "failed", "cancelled"
};

const char *ato_task_state_name (const ato_task *t) {
  return state_names[t->state];
}

int ato_task_push_outcome (lua_State *L, ato_task *t, int hidx) {
  int i, n;
  hidx = lua_absindex(L, hidx);
  if (!t->observed) {
    t->observed = 1;
    if (t->reported) t->rt->unobserved--;
  }
  lua_getiuservalue(L, hidx, 2);                     /* outcome */
  if (t->state != ATO_TASK_DONE) {                   /* nil, err */
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  lua_getfield(L, -1, "n");
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);    /* res v1..vi */
  lua_remove(L, -(n + 1));
  return n;
}

/* }====================================================== */

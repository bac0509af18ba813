/*
** rt.c — the runtime's life: create the loop and the Lua state, run until
** the work is done, handle SIGINT/SIGTERM, shut down without leaks.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "host.h"
#include "task.h"

/* How long shutdown waits for bindings to release their handles. */
#define CLOSE_GRACE_MS 3000

/* The signal handler's only way to the runtime (one runtime per process). */
static ato_rt *signal_rt;

/*
** Process groups of running children (ato.exec starts each in a session of
** its own, so the terminal's Ctrl-C does not reach them). When a second
** signal makes ato exit at once, the handler kills these groups first:
** nothing else would. A fixed array of sig_atomic_t, so the handler reads
** it safely whatever the loop thread was doing.
*/
#define MAX_CHILD_GROUPS 1024
static volatile sig_atomic_t child_groups[MAX_CHILD_GROUPS];

int ato_child_group_add (int pgid) {
  int i;
  for (i = 0; i < MAX_CHILD_GROUPS; i++)
    if (child_groups[i] == 0) { child_groups[i] = pgid; return 0; }
  return -1;  /* full: this group is not killed on a forced exit */
}

void ato_child_group_remove (int pgid) {
  int i;
  for (i = 0; i < MAX_CHILD_GROUPS; i++)
    if (child_groups[i] == pgid) { child_groups[i] = 0; return; }
}

static void kill_child_groups (void) {
  int i;
  for (i = 0; i < MAX_CHILD_GROUPS; i++)
    if (child_groups[i] > 0) kill(-child_groups[i], SIGKILL);
}

/* {====================================================== Lua state */

/* The allocator's user data is the runtime: ato_rt_get() is one call. */
static void *rt_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

static int rt_panic (lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "ato: fatal: unprotected Lua error: %s\n",
          msg ? msg : "(not a string)");
  fflush(stderr);
  return 0;  /* Lua aborts */
}

ato_rt *ato_rt_get (lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

uv_loop_t *ato_loop (lua_State *L) {
  return &ato_rt_get(L)->loop;
}

double ato_now (void) {
  return (double)uv_hrtime() / 1e9;
}

/* }====================================================== */

/* {====================================================== signals */

static const char *signal_reason (int sig) {
  return sig == SIGTERM ? "terminated (SIGTERM)" : "interrupted (SIGINT)";
}

/*
** Runs inside Lua code that was executing when the signal came, and raises
** there, so a task that never waits is still stopped. It stays installed
** while that task runs: after the first raise, which unwinds normally, it
** raises at every line (Redis does the same for SCRIPT KILL), so a pcall in
** a loop cannot swallow it.
*/
static void interrupt_hook (lua_State *L, lua_Debug *ar) {
  ato_rt *rt = ato_rt_get(L);
  ato_task *t = rt->current;
  int sig = rt->signal_pending ? rt->signal_pending : rt->exit_signal;
  int mask;
  (void)ar;
  if (sig == 0 || t == NULL) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (rt->exit_signal == 0) rt->exit_signal = sig;
  ato_task_cancel(t, signal_reason(sig));
  mask = rt->interrupts++ == 0 ? LUA_MASKCOUNT : LUA_MASKCOUNT | LUA_MASKLINE;
  lua_sethook(L, interrupt_hook, mask, 1000);
  if (t->co != NULL && t->co != L) lua_sethook(t->co, interrupt_hook, mask, 1000);
  ato_task_raise_cancelled(L, t);
}

static int trap_index (int sig) {
  return sig == SIGTERM ? ATO_TRAP_TERM : sig == SIGINT ? ATO_TRAP_INT
       : sig == SIGHUP ? ATO_TRAP_HUP : -1;
}

/*
** Async-signal context: only a flag, lua_sethook (documented as safe here,
** as lua.c uses it) and uv_async_send. A second signal exits at once
** (SIGHUP, only ever trapped, never does).
*/
static void on_signal (int sig) {
  ato_rt *rt = signal_rt;
  lua_State *running;
  int trap = trap_index(sig);
  if (rt != NULL && trap >= 0 && rt->trap_on[trap] &&
      (sig == SIGHUP || rt->trap_repeat[trap] || rt->signal_count++ == 0)) {
    rt->trap_pending[trap] = 1;       /* on_wakeup tells the waiting tasks */
    uv_async_send(&rt->wakeup);
    return;
  }
  if (rt == NULL || rt->signal_count++ > 0) {
    kill_child_groups();
    _exit(128 + sig);
  }
  rt->signal_pending = sig;
  running = rt->running;
  if (running)
    lua_sethook(running, interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  uv_async_send(&rt->wakeup);
}

/* Back on the loop: trapped signals wake their waiters; any other cancels
   every task, and the process ends once they unwind. */
static void on_wakeup (uv_async_t *h) {
  ato_rt *rt = h->data;
  int sig = rt->signal_pending, i;
  for (i = 0; i < 3; i++) {
    if (!rt->trap_pending[i]) continue;
    rt->trap_pending[i] = 0;
    rt->trap_received[i]++;
    ato_waitq_wake_all(&rt->trap_waiters[i], ATO_WAKE_OK);
  }
  if (sig == 0) return;
  rt->signal_pending = 0;
  if (rt->exit_signal == 0) rt->exit_signal = sig;
  ato_sched_cancel_all(rt, signal_reason(sig));
}

/*
** No SA_RESTART: a script blocked in a plain read (io.read) gets EINTR and
** reaches the hook; libuv retries its own calls. Each signal blocks the
** other while its handler runs, so the count stays consistent.
*/
static void set_signal_handlers (void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int ato_rt_trap (ato_rt *rt, const char *name) {
  static const char *const names[] = {"term", "int", "hup"};
  static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
  int i;
  for (i = 0; i < 3 && strcmp(name, names[i]) != 0; i++) {}
  if (i == 3) return -1;
  if (!rt->trap_on[i] && sigs[i] == SIGHUP) {   /* TERM and INT have on_signal already */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGHUP, &sa, NULL);
  }
  rt->trap_on[i] = 1;
  return i;
}

void ato_rt_trap_repeat (ato_rt *rt, int index, int repeat) {
  rt->trap_repeat[index] = repeat;
}

void ato_rt_trap_waiting (ato_rt *rt, int delta) {
  rt->trap_nwaiting += delta;
  if (rt->trap_nwaiting > 0) uv_ref((uv_handle_t *)&rt->wakeup);
  else uv_unref((uv_handle_t *)&rt->wakeup);
}

static void on_sigpipe (int sig) {
  (void)sig;
}

/*
** A peer that goes away (a child not reading its stdin, an HTTP client
** closing early) must give EPIPE on that write, not end the process. A
** handler rather than SIG_IGN: an ignored signal stays ignored across
** exec, and os.execute's or io.popen's children would inherit it.
*/
static void catch_sigpipe (void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigpipe;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

/* }====================================================== */

/* {====================================================== life cycle */

int ato_rt_init (ato_rt *rt) {
  int err;
  memset(rt, 0, sizeof *rt);
  rt->log_json = -1;
  rt->log_level = "info";
  if ((err = uv_loop_init(&rt->loop)) != 0) {
    fprintf(stderr, "ato: cannot create the event loop: %s\n", uv_strerror(err));
    return -1;
  }
  rt->L = lua_newstate(rt_alloc, rt);
  if (rt->L == NULL) {
    fprintf(stderr, "ato: not enough memory for the Lua state\n");
    uv_loop_close(&rt->loop);
    return -1;
  }
  /* every new coroutine copies the main thread's extra space, where task.c
     and coro.c keep a coroutine's owner: start it at NULL */
  memset(lua_getextraspace(rt->L), 0, LUA_EXTRASPACE);
  lua_atpanic(rt->L, rt_panic);
  luaL_openlibs(rt->L);
  ato_errors_init(rt->L);
  ato_core_init_types(rt->L);
  if (ato_sched_init(rt) != 0 ||
      uv_async_init(&rt->loop, &rt->wakeup, on_wakeup) != 0) {
    fprintf(stderr, "ato: cannot initialise the scheduler\n");
    return -1;  /* the process exits: nothing worth unwinding */
  }
  rt->wakeup.data = rt;
  uv_unref((uv_handle_t *)&rt->wakeup);
  signal_rt = rt;
  set_signal_handlers(on_signal);
  catch_sigpipe();
  return 0;
}

static void report_deadlock (ato_rt *rt) {
  ato_task *t;
  int shown = 0;
  fprintf(stderr, "ato: deadlock: %lu task(s) wait and nothing can wake them:",
          (unsigned long)rt->nlive);
  for (t = rt->live; t != NULL && shown < 8; t = t->next, shown++)
    fprintf(stderr, " task %lu%s", t->id, t == rt->main ? " (main)" : "");
  fprintf(stderr, "%s\n", t != NULL ? " ..." : "");
}

static int exit_status (ato_rt *rt) {
  if (rt->exit_requested) return rt->exit_code;
  if (rt->exit_signal) {
    fprintf(stderr, "ato: %s\n", signal_reason(rt->exit_signal));
    return 128 + rt->exit_signal;
  }
  if (rt->main_failed || rt->deadlocked || rt->unobserved) return 1;
  return 0;
}

int ato_rt_run (ato_rt *rt) {
  for (;;) {
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    if (rt->exit_requested || rt->nlive == 0) break;
    if (rt->ready_head != NULL) continue;
    /* live tasks, and no handle or request left that could wake one */
    report_deadlock(rt);
    rt->deadlocked = 1;
    ato_sched_cancel_all(rt, "cancelled: deadlock");
  }
  return exit_status(rt);
}

static void close_any (uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Bindings had their chance to release their handles: force the rest. */
static void on_close_grace (uv_timer_t *h) {
  fprintf(stderr, "ato: warning: native handles still open at exit; "
          "closing them\n");
  uv_walk(h->loop, close_any, NULL);
}

int ato_rt_at_close (lua_State *L, void (*fn) (void *), void *data) {
  ato_rt *rt = ato_rt_get(L);
  int n = (int)(sizeof rt->at_close / sizeof rt->at_close[0]);
  if (rt->nat_close >= n) return -1;
  rt->at_close[rt->nat_close].fn = fn;
  rt->at_close[rt->nat_close].data = data;
  rt->nat_close++;
  return 0;
}

static void run_at_close (ato_rt *rt) {
  while (rt->nat_close > 0) {
    rt->nat_close--;
    rt->at_close[rt->nat_close].fn(rt->at_close[rt->nat_close].data);
  }
}

void ato_rt_close (ato_rt *rt) {
  uv_timer_t grace;
  set_signal_handlers(SIG_DFL);
  if (rt->trap_on[ATO_TRAP_HUP]) signal(SIGHUP, SIG_DFL);
  signal_rt = NULL;
  rt->closing = 1;
  ato_sched_detach_all(rt);
  run_at_close(rt);
  ato_sched_close_handles(rt);
  uv_close((uv_handle_t *)&rt->wakeup, NULL);
  uv_timer_init(&rt->loop, &grace);
  uv_update_time(&rt->loop);  /* the cached time may be a long Lua run old */
  uv_timer_start(&grace, on_close_grace, CLOSE_GRACE_MS, 0);
  uv_unref((uv_handle_t *)&grace);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  if (!uv_is_closing((uv_handle_t *)&grace)) uv_close((uv_handle_t *)&grace, NULL);
  uv_run(&rt->loop, UV_RUN_NOWAIT);
  lua_close(rt->L);
  rt->L = NULL;
  if (uv_loop_close(&rt->loop) != 0)
    fprintf(stderr, "ato: warning: event loop still busy at exit\n");
}

/* }====================================================== */

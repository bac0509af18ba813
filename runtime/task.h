/*
** task.h — the runtime: one libuv loop, one Lua state, and the task
** scheduler that bridges coroutines and callbacks (DESIGN.md, "The async
** model").
**
** A task is a Lua coroutine owned by the runtime. An async binding called
** from a task starts its native operation, then parks the task with
** ato_task_wait(), which yields (lua_yieldk) with a continuation. Native
** callbacks never run Lua: they call ato_task_wake(), which puts the task on
** the ready queue. Only the scheduler resumes tasks, from one place
** (a uv_check handle, with a uv_idle handle keeping the poll non-blocking
** while tasks are ready). When the task resumes, the continuation calls the
** binding's resume function, which pushes the binding's results.
**
** Cancellation (task:cancel(), a timeout, SIGINT) detaches the pending
** operation (the binding's detach function stops the native work and frees
** it later on its own) and resumes the task with a "cancelled" error raised
** at the wait point, so to-be-closed variables and __close handlers run.
** Cancellation is level-triggered: every later wait in that task raises too.
*/
#ifndef ATO_TASK_H
#define ATO_TASK_H

#include <signal.h>
#include <stddef.h>

#include <lua.h>
#include <uv.h>

#include "timerheap.h"

typedef struct ato_rt ato_rt;
typedef struct ato_task ato_task;

typedef enum {
  ATO_TASK_READY,       /* on the ready queue */
  ATO_TASK_RUNNING,     /* being resumed right now */
  ATO_TASK_WAITING,     /* parked in ato_task_wait */
  ATO_TASK_DONE,        /* returned normally */
  ATO_TASK_FAILED,      /* raised an error */
  ATO_TASK_CANCELLED    /* ended by cancellation */
} ato_task_state;

typedef enum {
  ATO_WAKE_OK,          /* the operation completed (ato_task_wake) */
  ATO_WAKE_TIMEOUT,     /* the wait's deadline passed */
  ATO_WAKE_CANCELLED    /* the task was cancelled */
} ato_wake;

/*
** Stops a binding's native operation when its task stops waiting for it:
** cancellation, the wait's deadline, or shutdown. At shutdown it can also
** come after the op completed and woke the task, when the resume function
** will never run. Runs on the loop thread, never inside Lua; must not touch
** the task afterwards. The binding frees `op` when the native side is
** finished with it (for a uv handle: in its close callback).
*/
typedef void (*ato_detach_fn) (void *op);

/*
** Runs in the waiting coroutine when it resumes for any reason but
** cancellation; pushes the binding's results and returns how many. `op` is
** NULL when the operation was detached (deadline passed and detach ran).
*/
typedef int (*ato_resume_fn) (lua_State *L, ato_task *t, void *op,
                              ato_wake wake);

typedef struct ato_waitq { ato_task *head, *tail; } ato_waitq;

struct ato_task {
  ato_rt *rt;
  lua_State *co;              /* its coroutine (user value 1 of the handle) */
  int ref;                    /* registry ref anchoring the handle while live */
  unsigned long id;
  unsigned char state;        /* ato_task_state */
  unsigned char started;
  unsigned char cancelled;    /* level-triggered: later waits raise */
  unsigned char observed;     /* its outcome was collected (join) */
  unsigned char reported;     /* its failure was printed as unobserved */
  unsigned char cancel_retries; /* waits attempted after the cancellation */
  const char *cancel_reason;  /* static string, e.g. "task cancelled" */
  int nargs;                  /* arguments waiting for the first resume */
  double started_at;          /* ato_now() at spawn */
  /* the current wait */
  ato_wake wake;
  void *op;
  ato_detach_fn detach;
  ato_resume_fn resume;
  ato_timer timer;            /* deadline node in rt->timers */
  ato_waitq *queue;           /* wait queue holding this task, if any */
  ato_task *qprev, *qnext;
  /* scheduler links */
  ato_task *ready_next;
  ato_task *prev, *next;      /* live tasks */
  ato_waitq joiners;
};

struct ato_rt {
  uv_loop_t loop;
  lua_State *L;               /* main thread: runs the scheduler (and only
                                 finalizers and __tostring of user code) */
  ato_task *current;          /* task being resumed, NULL in the loop */
  lua_State *volatile running;/* thread executing Lua now (signal hook target) */
  int chain_ok;               /* can the running thread yield up to the scheduler? */
  ato_task *ready_head, *ready_tail;
  ato_task *live;             /* list of live tasks */
  size_t nlive;
  unsigned long next_id, spawned;
  ato_task *main;
  ato_timerheap timers;
  uv_timer_t timer;
  int timer_armed;
  uint64_t timer_when;
  uv_check_t check;
  uv_idle_t idle;
  int idle_active;
  uv_async_t wakeup;          /* signals wake the loop through this */
  volatile sig_atomic_t signal_pending, signal_count;
  int exit_signal;            /* first SIGINT/SIGTERM received, or 0 */
  int interrupts;             /* raises by the signal hook so far */
  int exit_requested;         /* os.exit() */
  int exit_code;
  int main_failed;
  int deadlocked;
  unsigned long unobserved;   /* failed tasks nobody joined */
  int closing;                /* shutting down: no more resumes */
  struct { void (*fn) (void *); void *data; } at_close[16];
  int nat_close;
  /* signals a script took over (ato.trap), by ATO_TRAP_* index */
  int trap_on[3];
  int trap_repeat[3];         /* every signal goes to the trap (the REPL's Ctrl-C) */
  volatile sig_atomic_t trap_pending[3];
  unsigned long trap_received[3];
  ato_waitq trap_waiters[3];
  int trap_nwaiting;
  int log_json;               /* --log-format: -1 auto, 0 human, 1 json */
  const char *log_level;
};

/* {====================================================== runtime */

int  ato_rt_init (ato_rt *rt);                 /* 0, or -1 (message on stderr) */
int  ato_rt_run (ato_rt *rt);                  /* runs until done; exit status */
void ato_rt_close (ato_rt *rt);                /* closes handles, Lua, the loop */
ato_rt *ato_rt_get (lua_State *L);             /* the runtime owning L */
uv_loop_t *ato_loop (lua_State *L);
double ato_now (void);                         /* monotonic seconds */

/*
** Registers fn(data) to run at shutdown, after every task's pending
** operation was detached and before the loop's last run: a module closes
** its own handles there (with close callbacks that free them). Runs once,
** in reverse order of registration. Returns -1 if the table (16) is full.
*/
int ato_rt_at_close (lua_State *L, void (*fn) (void *), void *data);

/*
** ato.trap: a script takes over SIGTERM, SIGINT or SIGHUP. A trapped
** signal no longer cancels every task; it bumps trap_received[i] and wakes
** the tasks in trap_waiters[i] instead. A second SIGTERM or SIGINT still
** exits at once (kill_child_groups, then _exit), as untrapped ones do, so
** a stuck graceful shutdown can always be cut short. Returns the index or
** -1 for an unknown name ("term", "int", "hup").
*/
enum { ATO_TRAP_TERM, ATO_TRAP_INT, ATO_TRAP_HUP };
int ato_rt_trap (ato_rt *rt, const char *name);
/* With repeat, every such signal goes to the trap, none exits: for a
   console where Ctrl-C is an everyday key. */
void ato_rt_trap_repeat (ato_rt *rt, int index, int repeat);
/* Counts tasks waiting on traps (delta +1 or -1): while there are some,
   the loop stays alive, since a signal may be the only thing left to come. */
void ato_rt_trap_waiting (ato_rt *rt, int delta);

/* Child process groups that a forced exit (second SIGINT) must kill. Add
   returns -1 when the list (1,024) is full; remove only what was added. */
int  ato_child_group_add (int pgid);
void ato_child_group_remove (int pgid);

/* }====================================================== */

/* {====================================================== tasks */

/*
** [-(narg+1), +1, m] Pops a function and narg arguments from L and pushes
** the handle of a new task that will call it; the task is queued, not run.
*/
ato_task *ato_task_spawn (lua_State *L, int narg);

/*
** The task running L, checked for use by a blocking binding: raises
** "<what> must be called from a task" when L cannot yield up to the
** scheduler, and the cancellation error when the task was cancelled.
*/
ato_task *ato_task_enter (lua_State *L, const char *what);

/*
** Parks t (running in L) until ato_task_wake, the deadline (timeout in
** seconds; < 0 for none) or cancellation; then `resume` produces the
** results. Use as `return ato_task_wait(...)`: it yields.
*/
int ato_task_wait (lua_State *L, ato_task *t, void *op, ato_detach_fn detach,
                   ato_resume_fn resume, double timeout);

/* Puts t back on the ready queue and yields: other ready tasks run first.
   Use as `return ato_task_yield(L, t)`. */
int ato_task_yield (lua_State *L, ato_task *t);

/* Makes a waiting task ready (no-op unless it waits). Loop thread only. */
void ato_task_wake (ato_task *t, ato_wake wake);

/* Cancels t (see the top of this file). Returns 0 if it had already ended. */
int ato_task_cancel (ato_task *t, const char *reason);

/* [-0, +0, e] Raises t's cancellation error in L. */
int ato_task_raise_cancelled (lua_State *L, ato_task *t);

int ato_task_finished (const ato_task *t);
const char *ato_task_state_name (const ato_task *t);

/* [-0, +n] Pushes t's outcome as join() returns it; marks it observed. */
int ato_task_push_outcome (lua_State *L, ato_task *t, int handle_idx);

/* Wait queues: a task waits in at most one; waking removes it. */
void ato_waitq_push (ato_waitq *q, ato_task *t);
ato_task *ato_waitq_first (const ato_waitq *q);
void ato_waitq_wake_all (ato_waitq *q, ato_wake wake);

#define ATO_TASK_META "ato.task"
#define ATO_ERROR_META "ato.error"

/* Scheduler internals used by rt.c. */
int  ato_sched_init (ato_rt *rt);
void ato_sched_cancel_all (ato_rt *rt, const char *reason);
void ato_sched_detach_all (ato_rt *rt);
void ato_sched_close_handles (ato_rt *rt);

/* }====================================================== */

/* {====================================================== errors */

/*
** [-0, +1, m] Pushes an error object {kind=, message=} (metatable
** "ato.error": __tostring gives the message).
*/
void ato_push_error (lua_State *L, const char *kind, const char *fmt, ...);

/* [-0, +2, m] Pushes nil and an error object; returns 2. */
int ato_return_error (lua_State *L, const char *kind, const char *fmt, ...);

/* [-0, +2, m] nil + error object for an errno-style libuv code (negative). */
int ato_return_uverror (lua_State *L, int uverr, const char *op,
                        const char *path);

/* Prints "ato: <message>" on stderr, secrets redacted. */
void ato_report (const char *fmt, ...);

/* Error kind for a libuv error code: "not_found", "permission", ... */
const char *ato_uverror_kind (int uverr);

/* }====================================================== */

#endif

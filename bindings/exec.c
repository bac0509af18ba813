/*
** exec.c — `require "ato.exec"`: run a program without blocking the loop.
**
**   local r, err = exec{"git", "log", "-1", cwd = dir, timeout = 10}
**   -- r = {code=, signal=, ok=, stdout=, stderr=, pid=, elapsed=}
**
** Options: cwd; env (NAME = value merged over ato's environment, false
** removes NAME; "NAME=value" strings in the list part too); clear_env (start
** from an empty environment); stdin (a string written to the child, then
** closed; without it the child reads /dev/null); stdout, stderr ("capture",
** "inherit" or "ignore"); timeout (seconds); max_output (bytes per captured
** stream, 64 MiB by default). A non-zero exit code is a result, not an
** error. nil, err kinds: not_found, permission (the program or cwd), spawn
** (any other uv_spawn failure), timeout, too_large (an output over
** max_output), resources (no memory for an output). Cancellation raises.
**
** The child is started with uv_spawn in a process group of its own
** (UV_PROCESS_DETACHED makes it a session leader), so that a timeout or a
** cancellation can stop it together with its own children. The group is
** also registered with the runtime (ato_child_group_add), whose forced exit
** (a second SIGINT) kills it: nothing else would. libuv resets every signal
** disposition and the signal mask in the child, so the runtime's ignored
** SIGPIPE (rt.c) does not leak into it.
**
** Process group IDs. The group's ID is the child's pid. While the child is
** not reaped, its zombie keeps that ID, so signalling the group is safe.
** Once libuv has reaped it, the group lives on only while other members
** remain; when it empties, the kernel may give the ID to a new process that
** makes itself a group leader. So after the reap, every group kill checks
** first that some process still has the ID (kill(-pgid, 0)); once none has,
** the op never signals the group again. The race left: the group empties
** and its ID is reused between that check and the kill, or (for the
** runtime's forced exit) before the op is freed. Pids are handed out
** cyclically, so that takes pid_max new processes within that instant.
**
** Ownership. One exec_op (malloc'ed) holds the process handle, up to three
** pipes, the SIGKILL timer, the output buffers and a copy of the input.
** `nhandles` counts its handles that were initialised and whose close
** callback has not run yet; the close callback that brings it to zero frees
** the op, and nothing else ever frees it. The process handle is closed only
** once libuv has reaped the child (closing it earlier would leave a zombie
** and lose the exit callback), so the op stays alive while the child runs,
** whatever happened to the task that started it. There are three ways out:
**
** - completion: the exit callback and both EOFs (and the end of the stdin
**   write) wake the task; its resume function copies the results to Lua,
**   then op_release closes every handle (but the timer while a SIGKILL is
**   still due: after a failure, the task has its error once the child has
**   exited, but the rest of the group may still be there).
** - nobody waits any more: the runtime calls op_detach (cancellation,
**   deadline, shutdown), or the op failed on its own (an output over
**   max_output, no memory) and the task takes the error. The group gets
**   SIGTERM, and SIGKILL from the timer a second later if it still has
**   members, even when the child itself has exited meanwhile (its children
**   may ignore SIGTERM). The pipes are closed at once, the process handle
**   once the child was reaped, the timer once it fired (or at the child's
**   exit if the group was empty by then): see op_finish.
** - uv_spawn fails: every handle is closed before exec returns nil, err.
**
** `task` is the waiting task, NULL once nobody waits. Callbacks only touch
** the op; at completion they call ato_task_wake, never Lua.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "host.h"
#include "task.h"

#define DEFAULT_MAX_OUTPUT ((lua_Integer)64 << 20)  /* bytes per stream */
#define KILL_GRACE_MS 1000      /* SIGTERM first, SIGKILL this much later */
#define READ_CHUNK 65536        /* least free space offered to each read */
#define FAIL_TOO_LARGE 1        /* op->failure: else 0 or a libuv error */

/* exec's stack slots, kept while it waits: the resume function reads them */
#define SLOT_OPTS 1             /* the argument table */
#define SLOT_PROG 2             /* the program name, for messages */
#define SLOT_TIMEOUT 3          /* timeout in seconds, or nil */
#define SLOT_KEEP 4             /* table anchoring argv/env strings */
#define SLOT_PID SLOT_KEEP      /* after the spawn the pid takes its place:
                                   uv_spawn has copied argv and env */

extern char **environ;

typedef enum { MODE_CAPTURE, MODE_INHERIT, MODE_IGNORE, MODE_APPEND } stream_mode;

static const char *const mode_names[] = {"capture", "inherit", "ignore", NULL};

static const char *const option_names[] = {
  "cwd", "env", "clear_env", "stdin", "stdout", "stderr", "timeout",
  "max_output", NULL
};

/* What exec was asked to do, once checked. Strings point into Lua. */
typedef struct exec_opts {
  char **argv;                /* NULL-terminated */
  char **env;                 /* NULL-terminated, or NULL: ato's own */
  const char *cwd;            /* NULL: ato's */
  const char *input;          /* NULL: stdin is /dev/null */
  size_t input_len;
  double timeout;             /* seconds, < 0 for none */
  size_t limit;               /* max_output */
  stream_mode mode[3];        /* [1] stdout, [2] stderr */
  const char *append[3];      /* MODE_APPEND: the file (a string in Lua) */
  int fd[3];                  /* MODE_APPEND: opened by open_appends, or -1 */
} exec_opts;

/* A captured output stream: its pipe and what was read from it. */
typedef struct out_stream {
  uv_pipe_t pipe;
  const char *name;           /* "stdout" or "stderr" */
  char *data;
  size_t len, cap;
  unsigned char open;         /* the pipe was initialised */
  unsigned char done;         /* EOF, a read error, or given up */
} out_stream;

typedef struct exec_op {
  uv_process_t proc;
  uv_timer_t killer;          /* SIGTERM -> SIGKILL escalation */
  uv_pipe_t in;
  uv_write_t write;
  out_stream out, err;
  ato_task *task;             /* the waiting task; NULL once nobody waits */
  char *input;                /* our copy: a write may outlive the Lua string */
  size_t input_len;
  size_t limit;               /* max_output */
  int nhandles;               /* initialised, close callback not run yet */
  int pid;
  int failure;                /* 0, FAIL_TOO_LARGE or a libuv error */
  const char *failed_stream;
  int64_t exit_status;
  int term_signal;
  double started, elapsed;
  unsigned char in_open;      /* the stdin pipe was initialised */
  unsigned char in_done;      /* stdin written (or given up) and closing */
  unsigned char proc_open;    /* uv_spawn was called: proc must be closed */
  unsigned char exited;       /* libuv reaped the child */
  unsigned char terminating;  /* SIGTERM sent (or the group was gone) */
  unsigned char woken;        /* the task was woken with the results */
  unsigned char registered;   /* the group is in the runtime's kill list */
  unsigned char group_gone;   /* seen empty after the reap: never signal */
} exec_op;

/* {====================================================== the group */

/* The group no longer needs killing: out of the runtime's list, once. */
static void forget_group (exec_op *op) {
  if (!op->registered) return;
  op->registered = 0;
  ato_child_group_remove(op->pid);
}

/*
** May the group still have members (see "Process group IDs" above)?
** Before the reap, yes. After, kill(-pgid, 0) tells: ESRCH means empty for
** good, and the ID is no longer ours.
*/
static int group_alive (exec_op *op) {
  if (op->group_gone) return 0;
  if (!op->exited) return 1;
  if (kill(-op->pid, 0) == 0 || errno != ESRCH) return 1;
  op->group_gone = 1;
  forget_group(op);
  return 0;
}

static void signal_group (exec_op *op, int sig) {
  if (group_alive(op)) kill(-op->pid, sig);
}

/* }====================================================== */

/* {====================================================== life of an op */

static void op_free (exec_op *op) {
  forget_group(op);
  free(op->out.data);
  free(op->err.data);
  free(op->input);
  free(op);
}

static void on_closed (uv_handle_t *h) {
  exec_op *op = h->data;
  if (--op->nhandles == 0) op_free(op);
}

static void close_handle (uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, on_closed);
}

static void close_stream (out_stream *s) {
  if (s->open) close_handle((uv_handle_t *)&s->pipe);
  s->done = 1;
}

static void close_stdin (exec_op *op) {
  if (op->in_open) close_handle((uv_handle_t *)&op->in);
  op->in_done = 1;
}

static void close_pipes (exec_op *op) {
  close_stdin(op);
  close_stream(&op->out);
  close_stream(&op->err);
}

/* Everything at once; only when uv_spawn failed. */
static void close_all (exec_op *op) {
  close_pipes(op);
  close_handle((uv_handle_t *)&op->killer);
  if (op->proc_open) close_handle((uv_handle_t *)&op->proc);
}

/*
** Nobody waits for the op (task == NULL): closes what it no longer needs.
** The process handle waits for the reap (closing it earlier would leave a
** zombie and lose the exit callback), and a running timer for its SIGKILL;
** both callbacks come back here.
*/
static void op_finish (exec_op *op) {
  close_pipes(op);
  if (!op->exited) return;
  if (op->proc_open) close_handle((uv_handle_t *)&op->proc);
  if (!uv_is_active((uv_handle_t *)&op->killer))
    close_handle((uv_handle_t *)&op->killer);
}

/* The grace period is over: SIGKILL whatever is left of the group, child
   or not. */
static void on_kill_timer (uv_timer_t *h) {
  exec_op *op = h->data;
  signal_group(op, SIGKILL);
  if (op->task == NULL) op_finish(op);
}

/*
** SIGTERM to the child's process group, and SIGKILL a second later to
** whatever is left of it. The group is signalled even when the child has
** exited: we only get here then while a pipe is still open, so one of its
** children probably holds it.
*/
static void terminate (exec_op *op) {
  if (op->terminating) return;
  op->terminating = 1;
  if (!group_alive(op)) return;
  kill(-op->pid, SIGTERM);
  uv_timer_start(&op->killer, on_kill_timer, KILL_GRACE_MS, 0);
}

/* Wakes the task once the child exited and every stream has ended. */
static void check_done (exec_op *op) {
  if (op->task == NULL || op->woken) return;
  if (!op->exited || !op->in_done || !op->out.done || !op->err.done) return;
  op->woken = 1;
  op->elapsed = ato_now() - op->started;
  ato_task_wake(op->task, ATO_WAKE_OK);
}

/* The op cannot go on (an output too large, no memory): stop the child;
   the task gets the error once the child has exited. */
static void fail (exec_op *op, int why, const char *stream) {
  if (op->failure == 0) {
    op->failure = why;
    op->failed_stream = stream;
  }
  terminate(op);
  close_pipes(op);
  check_done(op);
}

/*
** The task stopped waiting (ato_detach_fn): the op finishes on its own.
** At shutdown this can come after the op woke the task; a woken op has
** nothing left to stop (its child was reaped and its pipes ended, though a
** SIGKILL may still be due): it is only finished.
*/
static void op_detach (void *p) {
  exec_op *op = p;
  op->task = NULL;
  if (!op->woken) terminate(op);
  op_finish(op);
}

/* The task has the results (the child was reaped): let the op go. */
static void op_release (exec_op *op) {
  op->task = NULL;
  op_finish(op);
}

/* }====================================================== */

/* {====================================================== callbacks */

static void on_process_exit (uv_process_t *p, int64_t status, int sig) {
  exec_op *op = p->data;
  op->exited = 1;
  op->exit_status = status;
  op->term_signal = sig;
  /* a pending SIGKILL is still due if other members of the group remain */
  if (uv_is_active((uv_handle_t *)&op->killer) && !group_alive(op))
    uv_timer_stop(&op->killer);
  if (op->task == NULL) op_finish(op);
  else check_done(op);
}

static out_stream *stream_of (exec_op *op, uv_handle_t *h) {
  return h == (uv_handle_t *)&op->out.pipe ? &op->out : &op->err;
}

/*
** Offers the free end of the stream's buffer, growing it by doubling. The
** buffer never grows past limit + 1 bytes: one byte over the limit is
** enough to know the output is too large. On malloc failure the read
** callback gets UV_ENOBUFS.
*/
static void on_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  exec_op *op = h->data;
  out_stream *s = stream_of(op, h);
  size_t most = op->limit + 1, want = s->len + READ_CHUNK;
  (void)suggested;
  if (want > most) want = most;
  if (s->cap < want) {
    size_t cap = s->cap ? s->cap : READ_CHUNK;
    char *p;
    while (cap < want) cap *= 2;
    if (cap > most) cap = most;
    p = realloc(s->data, cap);
    if (p == NULL) {
      buf->base = NULL;
      buf->len = 0;
      return;
    }
    s->data = p;
    s->cap = cap;
  }
  buf->base = s->data + s->len;
  buf->len = s->cap - s->len;
}

static void on_read (uv_stream_t *h, ssize_t n, const uv_buf_t *buf) {
  exec_op *op = h->data;
  out_stream *s = stream_of(op, (uv_handle_t *)h);
  (void)buf;
  if (n > 0) {
    s->len += (size_t)n;
    if (s->len > op->limit) fail(op, FAIL_TOO_LARGE, s->name);
  } else if (n == UV_ENOBUFS) {
    fail(op, UV_ENOMEM, s->name);
  } else if (n < 0) {  /* EOF, or a read error: the stream ended either way */
    close_stream(s);
    check_done(op);
  }
}

/* EPIPE is no error: the child exited without reading all of its input. */
static void on_written (uv_write_t *w, int status) {
  exec_op *op = w->data;
  (void)status;
  close_stdin(op);
  check_done(op);
}

/* }====================================================== */

/* {====================================================== starting */

/* A new op with its timer and the pipes o asks for; NULL when out of
   memory. Lua is not touched: nothing here can raise. */
static exec_op *op_new (lua_State *L, const exec_opts *o) {
  uv_loop_t *loop = ato_loop(L);
  exec_op *op = calloc(1, sizeof *op);
  if (op == NULL) return NULL;
  if (o->input != NULL && o->input_len > 0) {
    op->input = malloc(o->input_len);
    if (op->input == NULL) {
      free(op);
      return NULL;
    }
    memcpy(op->input, o->input, o->input_len);
    op->input_len = o->input_len;
  }
  op->limit = o->limit;
  op->out.name = "stdout";
  op->err.name = "stderr";
  op->out.done = o->mode[1] != MODE_CAPTURE;
  op->err.done = o->mode[2] != MODE_CAPTURE;
  op->in_done = o->input == NULL;
  /* on unix these only initialise structs: they cannot fail */
  uv_timer_init(loop, &op->killer);
  op->killer.data = op;
  op->nhandles = 1;
  if (o->input != NULL) {
    uv_pipe_init(loop, &op->in, 0);
    op->in.data = op;
    op->in_open = 1;
    op->nhandles++;
  }
  if (o->mode[1] == MODE_CAPTURE) {
    uv_pipe_init(loop, &op->out.pipe, 0);
    op->out.pipe.data = op;
    op->out.open = 1;
    op->nhandles++;
  }
  if (o->mode[2] == MODE_CAPTURE) {
    uv_pipe_init(loop, &op->err.pipe, 0);
    op->err.pipe.data = op;
    op->err.open = 1;
    op->nhandles++;
  }
  return op;
}

static void set_output (uv_stdio_container_t *c, stream_mode mode,
                        out_stream *s, int fd) {
  if (mode == MODE_CAPTURE) {
    c->flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;  /* the child's view */
    c->data.stream = (uv_stream_t *)&s->pipe;
  } else if (mode == MODE_INHERIT) {
    c->flags = UV_INHERIT_FD;
    c->data.fd = fd;
    fflush(fd == 1 ? stdout : stderr);  /* keep ato's own output in order */
  } else if (mode == MODE_APPEND) {
    c->flags = UV_INHERIT_FD;
    c->data.fd = fd;                    /* the file's descriptor, see open_appends */
  } else {
    c->flags = UV_IGNORE;  /* libuv opens /dev/null for fds 0-2 */
  }
}

static int spawn (lua_State *L, exec_op *op, const exec_opts *o) {
  uv_process_options_t po;
  uv_stdio_container_t stdio[3];
  int r;
  memset(&po, 0, sizeof po);
  memset(stdio, 0, sizeof stdio);
  if (o->input != NULL) {
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&op->in;
  } else {
    stdio[0].flags = UV_IGNORE;  /* /dev/null: never the terminal */
  }
  set_output(&stdio[1], o->mode[1], &op->out, o->mode[1] == MODE_APPEND ? o->fd[1] : 1);
  set_output(&stdio[2], o->mode[2], &op->err, o->mode[2] == MODE_APPEND ? o->fd[2] : 2);
  po.exit_cb = on_process_exit;
  po.file = o->argv[0];
  po.args = o->argv;
  po.env = o->env;
  po.cwd = o->cwd;
  po.flags = UV_PROCESS_DETACHED;
  po.stdio_count = 3;
  po.stdio = stdio;
  op->started = ato_now();
  r = uv_spawn(ato_loop(L), &op->proc, &po);
  op->proc.data = op;
  op->proc_open = 1;  /* uv_spawn initialised it, even when it failed */
  op->nhandles++;
  if (r == 0) {
    op->pid = op->proc.pid;
    op->registered = ato_child_group_add(op->pid) == 0;
  }
  return r;
}

/* Starts reading the outputs and writing the input; failures here only
   mean the stream ends at once. */
static void start_io (exec_op *op) {
  if (op->out.open && uv_read_start((uv_stream_t *)&op->out.pipe, on_alloc,
                                    on_read) != 0)
    close_stream(&op->out);
  if (op->err.open && uv_read_start((uv_stream_t *)&op->err.pipe, on_alloc,
                                    on_read) != 0)
    close_stream(&op->err);
  if (op->in_open) {
    uv_buf_t b;
    b.base = op->input;
    b.len = op->input_len;
    op->write.data = op;
    if (op->input_len == 0 ||
        uv_write(&op->write, (uv_stream_t *)&op->in, &b, 1, on_written) != 0)
      close_stdin(op);
  }
}

/* }====================================================== */

/* {====================================================== results */

static const char *uv_kind (int r) {
  return r == UV_ENOENT ? "not_found" : r == UV_EACCES ? "permission"
                                                       : "spawn";
}

/* [-0, +0] err.code = "ENOENT"...: the error object is on top. */
static void set_code (lua_State *L, int r) {
  lua_pushstring(L, uv_err_name(r));
  lua_setfield(L, -2, "code");
}

/* The reason chdir(cwd) would fail (a uv error), or 0. A blocking stat,
   but only after uv_spawn failed, to tell a bad cwd from a bad program. */
static int cwd_problem (const char *cwd) {
  struct stat st;
  if (stat(cwd, &st) != 0) return uv_translate_sys_error(errno);
  if (!S_ISDIR(st.st_mode)) return UV_ENOTDIR;
  if (access(cwd, X_OK) != 0) return uv_translate_sys_error(errno);
  return 0;
}

/* [-0, +2] nil, err for a failed uv_spawn */
static int spawn_error (lua_State *L, int r, const exec_opts *o) {
  const char *prog = o->argv[0];
  int dir = o->cwd != NULL ? cwd_problem(o->cwd) : 0;
  if (dir != 0) {  /* the child could not chdir: blame the directory */
    ato_return_error(L, uv_kind(dir), "exec %s: cwd %s: %s", prog, o->cwd,
                     uv_strerror(dir));
    set_code(L, dir);
    lua_pushstring(L, o->cwd);
    lua_setfield(L, -2, "path");
  } else {
    ato_return_error(L, uv_kind(r), "exec %s: %s", prog, uv_strerror(r));
    set_code(L, r);
  }
  lua_pushstring(L, prog);
  lua_setfield(L, -2, "program");
  return 2;
}

/* [-0, +2] nil, err after the deadline; op is gone: the stack has the rest */
static int timeout_error (lua_State *L) {
  char secs[32];
  snprintf(secs, sizeof secs, "%g", lua_tonumber(L, SLOT_TIMEOUT));
  ato_return_error(L, "timeout", "exec %s: timed out after %s s",
                   lua_tostring(L, SLOT_PROG), secs);
  lua_pushvalue(L, SLOT_TIMEOUT);
  lua_setfield(L, -2, "seconds");
  lua_pushvalue(L, SLOT_PID);
  lua_setfield(L, -2, "pid");
  return 2;
}

static int failure_error (lua_State *L, exec_op *op, const char *prog) {
  if (op->failure == FAIL_TOO_LARGE) {
    ato_return_error(L, "too_large", "exec %s: %s exceeded max_output "
                     "(%I bytes)", prog, op->failed_stream,
                     (lua_Integer)op->limit);
    lua_pushinteger(L, (lua_Integer)op->limit);
    lua_setfield(L, -2, "limit");
  } else {
    ato_return_error(L, ato_uverror_kind(op->failure), "exec %s: reading "
                     "its %s: %s", prog, op->failed_stream,
                     uv_strerror(op->failure));
    set_code(L, op->failure);
  }
  lua_pushstring(L, op->failed_stream);
  lua_setfield(L, -2, "stream");
  lua_pushinteger(L, op->pid);
  lua_setfield(L, -2, "pid");
  return 2;
}

static void set_string (lua_State *L, const char *k, const out_stream *s) {
  lua_pushlstring(L, s->len ? s->data : "", s->len);
  lua_setfield(L, -2, k);
}

/*
** [-0, +1|2] The result table, or nil, err. Arguments: the op (light
** userdata) and the program name. Runs protected (see exec_resume).
*/
static int push_outcome (lua_State *L) {
  exec_op *op = lua_touserdata(L, 1);
  const char *prog = lua_tostring(L, 2);
  if (op->failure) return failure_error(L, op, prog);
  lua_createtable(L, 0, 7);
  if (op->term_signal != 0) {
    lua_pushinteger(L, op->term_signal);
    lua_setfield(L, -2, "signal");
  } else {
    lua_pushinteger(L, (lua_Integer)op->exit_status);
    lua_setfield(L, -2, "code");
  }
  lua_pushboolean(L, op->term_signal == 0 && op->exit_status == 0);
  lua_setfield(L, -2, "ok");
  set_string(L, "stdout", &op->out);
  set_string(L, "stderr", &op->err);
  lua_pushinteger(L, op->pid);
  lua_setfield(L, -2, "pid");
  lua_pushnumber(L, op->elapsed);
  lua_setfield(L, -2, "elapsed");
  return 1;
}

/*
** The task resumes (ato_resume_fn). The results are built under lua_pcall
** so that a memory error there cannot skip op_release: the op would then
** keep its handles forever.
*/
static int exec_resume (lua_State *L, ato_task *t, void *p, ato_wake wake) {
  exec_op *op = p;
  int top = lua_gettop(L), status;
  (void)t;
  if (wake == ATO_WAKE_TIMEOUT) return timeout_error(L);  /* op detached */
  lua_pushcfunction(L, push_outcome);
  lua_pushlightuserdata(L, op);
  lua_pushvalue(L, SLOT_PROG);
  status = lua_pcall(L, 2, LUA_MULTRET, 0);
  op_release(op);
  if (status != LUA_OK) return lua_error(L);
  return lua_gettop(L) - top;
}

/* }====================================================== */

/* {====================================================== arguments */

static int opt_error (lua_State *L, const char *name, const char *expected) {
  return luaL_argerror(L, 1, lua_pushfstring(L, "option '%s' must be %s "
                       "(got %s)", name, expected, luaL_typename(L, -1)));
}

/* The string at idx, which must not contain a NUL byte. */
static const char *check_nul (lua_State *L, int idx, const char *what,
                              size_t *len) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (strlen(s) != n)
    luaL_argerror(L, 1, lua_pushfstring(L, "%s contains a NUL byte", what));
  if (len) *len = n;
  return s;
}

static int is_option (const char *k) {
  int i;
  for (i = 0; option_names[i] != NULL; i++)
    if (strcmp(k, option_names[i]) == 0) return 1;
  return 0;
}

/* Every key is an argument index 1..n or a known option (catches typos). */
static void check_keys (lua_State *L, lua_Integer n) {
  lua_pushnil(L);
  while (lua_next(L, SLOT_OPTS)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      if (!is_option(lua_tostring(L, -1)))
        luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'",
                                            lua_tostring(L, -1)));
    } else if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
               lua_tointeger(L, -1) > n) {
      luaL_argerror(L, 1, "the command and its arguments must be a list "
                          "without holes");
    }
  }
}

/* [-0, +1] The command line as a NULL-terminated array (a userdata); its
   strings (numbers converted) are anchored in the table at SLOT_KEEP. */
static char **build_argv (lua_State *L, lua_Integer n) {
  char **argv;
  lua_Integer i;
  if ((size_t)n >= INT_MAX / sizeof *argv)
    luaL_argerror(L, 1, "too many arguments");
  argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
  for (i = 1; i <= n; i++) {
    int tp = lua_rawgeti(L, SLOT_OPTS, i);
    if (tp != LUA_TSTRING && tp != LUA_TNUMBER)
      luaL_argerror(L, 1, lua_pushfstring(L, "argument %I must be a string "
                    "or a number (got %s)", i, luaL_typename(L, -1)));
    argv[i - 1] = (char *)check_nul(L, -1, "an argument", NULL);
    lua_rawseti(L, SLOT_KEEP, i);
  }
  argv[n] = NULL;
  return argv;
}

/* name[0..len) must be a non-empty name without '=' or NUL */
static void check_env_name (lua_State *L, const char *name, size_t len) {
  if (len == 0 || memchr(name, '=', len) != NULL ||
      memchr(name, '\0', len) != NULL) {
    lua_pushlstring(L, name, len);
    luaL_argerror(L, 1, lua_pushfstring(L, "bad environment variable name "
                                        "'%s'", lua_tostring(L, -1)));
  }
}

/* [-0, +0] Copies ato's environment into the table on top: NAME -> "N=V". */
static void import_environ (lua_State *L) {
  char **e;
  for (e = environ; *e != NULL; e++) {
    const char *eq = strchr(*e, '=');
    if (eq == NULL || eq == *e) continue;
    lua_pushlstring(L, *e, (size_t)(eq - *e));
    lua_pushstring(L, *e);
    lua_rawset(L, -3);
  }
}

/*
** [-0, +0] Applies the env option (at idx) to the table on top. Entries are
** NAME = value (a string or number; false removes NAME) or, in the list
** part, "NAME=value" strings.
*/
static void merge_env (lua_State *L, int idx) {
  int map = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {                     /* key value */
    size_t nlen;
    const char *name;
    if (lua_type(L, -2) == LUA_TSTRING) {
      name = lua_tolstring(L, -2, &nlen);
      check_env_name(L, name, nlen);
      lua_pushvalue(L, -2);                      /* key value name */
      if (lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2)) {
        lua_pushnil(L);                          /* key value name nil */
      } else if (lua_type(L, -2) == LUA_TSTRING ||
                 lua_type(L, -2) == LUA_TNUMBER) {
        check_nul(L, -2, "an env value", NULL);
        lua_pushfstring(L, "%s=%s", name, lua_tostring(L, -2));
      } else {
        lua_pushfstring(L, "env value of %s must be a string, a number or "
                        "false (got %s)", name, luaL_typename(L, -2));
        luaL_argerror(L, 1, lua_tostring(L, -1));
      }
    } else if (lua_isinteger(L, -2) && lua_type(L, -1) == LUA_TSTRING) {
      const char *s = check_nul(L, -1, "an env entry", NULL);
      const char *eq = strchr(s, '=');
      if (eq == NULL)
        luaL_argerror(L, 1, lua_pushfstring(L, "env entry '%s' is not "
                                            "NAME=value", s));
      check_env_name(L, s, (size_t)(eq - s));  /* s's prefix: no '=' */
      lua_pushlstring(L, s, (size_t)(eq - s));   /* key value name */
      lua_pushvalue(L, -2);                      /* key value name entry */
    } else {
      luaL_argerror(L, 1, "option 'env' must map names to values");
    }
    lua_rawset(L, map);                          /* key value */
    lua_pop(L, 1);                               /* key */
  }
}

/* [-0, +1] The child's environment: nil (ato's own) or a NULL-terminated
   array (a userdata) whose strings are anchored in the table at SLOT_KEEP. */
static char **build_env (lua_State *L) {
  int clear, env, map;
  size_t n = 0;
  char **arr;
  lua_getfield(L, SLOT_OPTS, "clear_env");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    opt_error(L, "clear_env", "a boolean");
  clear = lua_toboolean(L, -1);
  lua_pop(L, 1);
  env = lua_gettop(L) + 1;
  if (lua_getfield(L, SLOT_OPTS, "env") == LUA_TNIL && !clear)
    return NULL;                                 /* nil */
  if (!lua_isnil(L, env) && !lua_istable(L, env))
    opt_error(L, "env", "a table");
  lua_newtable(L);                               /* env map */
  map = env + 1;
  if (!clear) import_environ(L);
  if (lua_istable(L, env)) merge_env(L, env);
  lua_pushnil(L);
  while (lua_next(L, map)) {
    lua_pop(L, 1);
    n++;
  }
  arr = lua_newuserdatauv(L, (n + 1) * sizeof *arr, 0);  /* env map arr */
  n = 0;
  lua_pushnil(L);
  while (lua_next(L, map)) {
    arr[n++] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  arr[n] = NULL;
  lua_insert(L, env);                            /* arr env map */
  lua_setfield(L, SLOT_KEEP, "env");             /* arr env */
  lua_pop(L, 1);                                 /* arr */
  return arr;
}

/* An optional string option, anchored in the table at SLOT_KEEP (the
   options table might produce it from an __index metamethod). Only data
   (binary = 1) may hold NUL bytes: names cannot. */
static const char *opt_string (lua_State *L, const char *name, int binary,
                               size_t *len) {
  const char *s = NULL;
  int tp = lua_getfield(L, SLOT_OPTS, name);
  if (tp == LUA_TSTRING && binary) {
    s = lua_tolstring(L, -1, len);
  } else if (tp == LUA_TSTRING) {
    lua_pushfstring(L, "option '%s'", name);
    s = check_nul(L, -2, lua_tostring(L, -1), len);
    lua_pop(L, 1);
  } else if (tp != LUA_TNIL) {
    opt_error(L, name, "a string");
  }
  lua_setfield(L, SLOT_KEEP, name);
  return s;
}

/* stdout/stderr: a mode name, or {append = PATH} (the path is kept alive
   in SLOT_KEEP). */
static stream_mode opt_mode (lua_State *L, const char *name, const char **path) {
  int i = MODE_CAPTURE;
  int t = lua_getfield(L, SLOT_OPTS, name);
  if (t == LUA_TTABLE) {
    if (lua_getfield(L, -1, "append") != LUA_TSTRING)
      opt_error(L, name, "\"capture\", \"inherit\", \"ignore\" or {append = PATH}");
    check_nul(L, -1, name, NULL);
    *path = lua_tostring(L, -1);
    lua_setfield(L, SLOT_KEEP, name);
    lua_pop(L, 1);
    return MODE_APPEND;
  }
  if (t != LUA_TNIL) {
    const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : "";
    for (i = 0; mode_names[i] && strcmp(s, mode_names[i]) != 0; i++) {}
    if (mode_names[i] == NULL)
      opt_error(L, name, "\"capture\", \"inherit\", \"ignore\" or {append = PATH}");
  }
  lua_pop(L, 1);
  return (stream_mode)i;
}

/* Opens the {append = PATH} outputs (created 0600): 0, or -1 with the
   failing stream's index in *which and errno set. */
static int open_appends (exec_opts *o, int *which) {
  int i;
  for (i = 1; i <= 2; i++) {
    if (o->mode[i] != MODE_APPEND) continue;
    o->fd[i] = open(o->append[i], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (o->fd[i] < 0) {
      *which = i;
      return -1;
    }
  }
  return 0;
}

static void close_appends (exec_opts *o) {
  int i;
  for (i = 1; i <= 2; i++)
    if (o->fd[i] >= 0) {
      close(o->fd[i]);
      o->fd[i] = -1;
    }
}

/* [-0, +1] Pushes the timeout (a number, or nil) at SLOT_TIMEOUT. */
static double opt_timeout (lua_State *L) {
  lua_Number s;
  if (lua_getfield(L, SLOT_OPTS, "timeout") == LUA_TNIL) return -1;
  s = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(s >= 0))  /* NaN fails too */
    opt_error(L, "timeout", "a number of seconds >= 0");
  return s;
}

static size_t opt_limit (lua_State *L) {
  lua_Integer v = DEFAULT_MAX_OUTPUT;
  if (lua_getfield(L, SLOT_OPTS, "max_output") != LUA_TNIL) {
    int isint;
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || lua_type(L, -1) != LUA_TNUMBER || v < 0)
      opt_error(L, "max_output", "an integer >= 0 (bytes)");
  }
  lua_pop(L, 1);
  if ((lua_Unsigned)v > SIZE_MAX / 4) v = (lua_Integer)(SIZE_MAX / 4);
  return (size_t)v;
}

/*
** Checks exec's argument and fills o. Leaves the stack as SLOT_OPTS,
** SLOT_PROG, SLOT_TIMEOUT, SLOT_KEEP, argv, env (userdata or nil).
** Raises on misuse.
*/
static void check_options (lua_State *L, exec_opts *o) {
  lua_Integer n;
  luaL_checktype(L, SLOT_OPTS, LUA_TTABLE);
  lua_settop(L, SLOT_OPTS);
  n = (lua_Integer)lua_rawlen(L, SLOT_OPTS);
  if (lua_rawgeti(L, SLOT_OPTS, 1) != LUA_TSTRING)    /* SLOT_PROG */
    luaL_argerror(L, 1, "command expected: {\"program\", args..., "
                        "options...}");
  check_nul(L, SLOT_PROG, "the command", NULL);
  check_keys(L, n);
  o->timeout = opt_timeout(L);                        /* SLOT_TIMEOUT */
  lua_newtable(L);                                    /* SLOT_KEEP */
  o->argv = build_argv(L, n);
  o->env = build_env(L);
  o->cwd = opt_string(L, "cwd", 0, NULL);
  o->input = opt_string(L, "stdin", 1, &o->input_len);
  o->mode[0] = MODE_IGNORE;
  o->append[0] = o->append[1] = o->append[2] = NULL;
  o->fd[0] = o->fd[1] = o->fd[2] = -1;
  o->mode[1] = opt_mode(L, "stdout", &o->append[1]);
  o->mode[2] = opt_mode(L, "stderr", &o->append[2]);
  o->limit = opt_limit(L);
}

/* }====================================================== */

/*
** exec{cmd, args..., cwd=, env=, clear_env=, stdin=, stdout=, stderr=,
**      timeout=, max_output=} -> result, or nil, err
*/
static int l_exec (lua_State *L) {
  exec_opts o;
  exec_op *op;
  ato_task *t;
  int r;
  int which;
  check_options(L, &o);
  t = ato_task_enter(L, "exec");
  if (open_appends(&o, &which) != 0) {
    int e = errno;
    close_appends(&o);
    ato_return_error(L, uv_kind(-e), "exec %s: %s file %s: %s", o.argv[0],
                     which == 1 ? "stdout" : "stderr", o.append[which], strerror(e));
    lua_pushstring(L, o.append[which]);
    lua_setfield(L, -2, "path");
    return 2;
  }
  op = op_new(L, &o);
  if (op == NULL) {
    close_appends(&o);
    return luaL_error(L, "not enough memory");
  }
  /* from here on, the op is freed only by its close callbacks */
  r = spawn(L, op, &o);
  close_appends(&o);                  /* the child has its copies */
  if (r != 0) {
    close_all(op);
    return spawn_error(L, r, &o);
  }
  start_io(op);
  op->task = t;
  lua_settop(L, SLOT_TIMEOUT);  /* argv and env were only needed by uv_spawn */
  lua_pushinteger(L, op->pid);  /* SLOT_PID */
  return ato_task_wait(L, t, op, op_detach, exec_resume, o.timeout);
}

/* The module is the function itself: require("ato.exec"){...} */
int luaopen_ato_exec (lua_State *L) {
  lua_pushcfunction(L, l_exec);
  return 1;
}

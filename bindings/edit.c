/*
** edit.c — `require "ato.edit"`: line editing for `ato repl` through
** libedit's readline-compatible CALLBACK interface, driven by a uv_poll on
** standard input, so the loop (timers, tasks, transfers, servers) keeps
** running while the operator types. A loadable module: libedit is loaded
** only by the REPL.
**
**   edit.readline(prompt) -> line | nil at end of input (Ctrl-D)   (yields)
**   edit.interrupt()       Ctrl-C at the prompt: drop the line, new prompt
**   edit.write(text)       output above the prompt and the line being edited
**   edit.add_history(line), edit.set_completer(fn)
**
** While no readline is pending the handler is removed, so the terminal is
** in its normal mode while a line is evaluated and its output is plain.
**
** Completion: libedit asks synchronously, from inside rl_callback_read_char
** (so from the uv_poll callback). The completer is a Lua function run on
** the main Lua thread with lua_pcall: it must not wait (it only looks at
** tables). This is the one place where a libuv callback runs Lua, and the
** main thread's stack is idle there: the scheduler resumes tasks from its
** uv_check handle, never from inside a poll callback.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <lauxlib.h>
#include <lua.h>

#include "task.h"

int luaopen_ato_edit (lua_State *L);

/* One editor per process: libedit's readline interface is global state. */
static struct {
  lua_State *L;               /* the main thread, for the completer */
  uv_poll_t poll;
  int poll_open, polling;
  int installed;              /* rl_callback_handler_install is in effect */
  ato_task *waiter;           /* task in edit.readline */
  char *line;                 /* the line read, handed to the waiter */
  int eof;
  int completer_ref;          /* LUA_NOREF: none */
} ed = {NULL, {0}, 0, 0, 0, NULL, NULL, 0, LUA_NOREF};

static void stop_polling (void) {
  if (ed.polling) {
    uv_poll_stop(&ed.poll);
    ed.polling = 0;
  }
}

static void remove_handler (void) {
  if (ed.installed) {
    rl_callback_handler_remove();
    ed.installed = 0;
  }
}

/* libedit: a whole line (or NULL at end of input). */
static void on_line (char *line) {
  ato_task *t = ed.waiter;
  free(ed.line);
  ed.line = line;
  ed.eof = line == NULL;
  stop_polling();
  remove_handler();           /* the terminal back to normal for the evaluation */
  ed.waiter = NULL;
  if (t) ato_task_wake(t, ATO_WAKE_OK);
}

static void on_readable (uv_poll_t *h, int status, int events) {
  (void)h;
  (void)events;
  if (status < 0) {           /* stdin is gone: treat as end of input */
    on_line(NULL);
    return;
  }
  rl_callback_read_char();
}

static void readline_detach (void *op) {
  (void)op;
  ed.waiter = NULL;
  stop_polling();
  remove_handler();
}

static int readline_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  (void)t;
  (void)op;
  (void)wake;
  if (ed.eof) {
    ed.eof = 0;
    lua_pushnil(L);
    return 1;
  }
  lua_pushstring(L, ed.line ? ed.line : "");
  free(ed.line);
  ed.line = NULL;
  return 1;
}

/* edit.readline(prompt) -> line | nil */
static int l_readline (lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  ato_task *t = ato_task_enter(L, "edit.readline");
  if (ed.waiter != NULL) return luaL_error(L, "edit.readline: another task is reading");
  if (!ed.poll_open) {
    if (uv_poll_init(ato_loop(L), &ed.poll, STDIN_FILENO) != 0)
      return luaL_error(L, "edit.readline: cannot watch standard input");
    ed.poll_open = 1;
  }
  fflush(stdout);
  rl_callback_handler_install(prompt, on_line);
  ed.installed = 1;
  ed.waiter = t;
  if (uv_poll_start(&ed.poll, UV_READABLE, on_readable) != 0) {
    readline_detach(NULL);
    return luaL_error(L, "edit.readline: cannot watch standard input");
  }
  ed.polling = 1;
  return ato_task_wait(L, t, NULL, readline_detach, readline_resume, -1);
}

/* edit.interrupt(): Ctrl-C at the prompt drops the line being edited. */
static int l_interrupt (lua_State *L) {
  (void)L;
  if (!ed.installed) return 0;
  /* libedit's rl_replace_line ignores an empty text, and rl_stuff_char
     inserts literally; rl_insert pushes a KEY into its input (el_push):
     Ctrl-A (start of line) then Ctrl-K (kill to the end), read now */
  if (rl_end > 0) {
    rl_insert(1, '\001');
    rl_insert(1, '\013');
    rl_callback_read_char();
    rl_callback_read_char();
  }
  fputs("^C\n", rl_outstream ? rl_outstream : stdout);
  rl_on_new_line();
  rl_forced_update_display();
  return 0;
}

/*
** edit.write(text): prints text (which should end with a newline) above
** the prompt and the partial line, then draws them again, so background
** output never breaks the line being edited.
*/
static int l_write (lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  FILE *out = rl_outstream ? rl_outstream : stdout;
  if (!ed.installed) {
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    return 0;
  }
  fputs("\r\033[K", out);     /* the prompt's line, erased */
  fwrite(s, 1, n, out);
  if (n > 0 && s[n - 1] != '\n') fputc('\n', out);
  fflush(out);
  rl_on_new_line();
  rl_forced_update_display();
  return 0;
}

static int l_add_history (lua_State *L) {
  add_history(luaL_checkstring(L, 1));
  return 0;
}

/* {====================================================== completion */

static char **pending_matches;    /* the completer's answer, for the generator */
static size_t pending_next;

static char *next_match (const char *text, int state) {
  (void)text;
  if (state == 0) pending_next = 0;
  if (pending_matches == NULL || pending_matches[pending_next] == NULL) return NULL;
  return strdup(pending_matches[pending_next++]);
}

static void free_pending (void) {
  size_t i;
  if (pending_matches == NULL) return;
  for (i = 0; pending_matches[i]; i++) free(pending_matches[i]);
  free(pending_matches);
  pending_matches = NULL;
}

/* Calls the Lua completer (text, line before the cursor); keeps its list. */
static void ask_completer (const char *text, int start) {
  lua_State *L = ed.L;
  int top = lua_gettop(L);
  lua_Integer i, n;
  free_pending();
  lua_rawgeti(L, LUA_REGISTRYINDEX, ed.completer_ref);
  lua_pushstring(L, text);
  lua_pushlstring(L, rl_line_buffer ? rl_line_buffer : "", (size_t)(start > 0 ? start : 0));
  if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    lua_settop(L, top);
    return;
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  if ((pending_matches = calloc((size_t)n + 1, sizeof *pending_matches)) == NULL) {
    lua_settop(L, top);
    return;
  }
  for (i = 1; i <= n; i++) {
    const char *m;
    lua_rawgeti(L, -1, i);
    m = lua_tostring(L, -1);
    pending_matches[i - 1] = m ? strdup(m) : strdup("");
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

static char **on_complete (const char *text, int start, int end) {
  char **matches;
  (void)end;
  rl_attempted_completion_over = 1;     /* never fall back to file names */
  if (ed.completer_ref == LUA_NOREF) return NULL;
  ask_completer(text, start);
  matches = rl_completion_matches(text, next_match);
  free_pending();
  return matches;
}

/* edit.set_completer(fn(word, line_before_word) -> {candidates}) */
static int l_set_completer (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (ed.completer_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, ed.completer_ref);
  lua_pushvalue(L, 1);
  ed.completer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  rl_attempted_completion_function = on_complete;
  /* Lua: a word ends at anything but identifier characters, '.' and ':' */
  rl_completer_word_break_characters = (char *)" \t\n\"'`@$><=;|&{(,+-*/%^#~[]";
  rl_completion_append_character = '\0';
  return 0;
}

/* }====================================================== */

static void close_poll (void *data) {
  (void)data;
  readline_detach(NULL);
  if (ed.poll_open) {
    uv_close((uv_handle_t *)&ed.poll, NULL);
    ed.poll_open = 0;
  }
  free(ed.line);
  ed.line = NULL;
}

static const luaL_Reg funcs[] = {
  {"readline", l_readline},
  {"interrupt", l_interrupt},
  {"write", l_write},
  {"add_history", l_add_history},
  {"set_completer", l_set_completer},
  {NULL, NULL}
};

int luaopen_ato_edit (lua_State *L) {
  lua_State *main;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (ed.L == NULL) {
    ed.L = main;
    rl_readline_name = "ato";
    rl_catch_signals = 0;         /* SIGINT is the runtime's (ato.trap) */
    using_history();
    if (ato_rt_at_close(L, close_poll, NULL) != 0)
      return luaL_error(L, "ato.edit: too many shutdown hooks");
  }
  luaL_newlib(L, funcs);
  return 1;
}

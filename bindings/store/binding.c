/*
** binding.c — `require "ato.storedb"`: the state store's SQLite core
** (store.h) for Lua. Every call that touches the file runs in libuv's
** thread pool and parks only the calling task. The facade `ato.store`
** (stdlib/ato/store.lua) builds on it:
**
**   storedb.open(path [, {busy_ms =, readonly =}]) -> db | nil, err (yields)
**   db:exec(sql, ...) -> rows, info | nil, err (yields)
**       rows: {{column = value, ...}, ...} (NULL columns are absent);
**       info: {changes =, last_id =}; parameters ?1.. are the extra
**       arguments (nil, boolean, integer, float, string)
**   db:script(sql) -> true | nil, err (yields): several statements, no rows
**   db:in_transaction() -> boolean
**   db:abort() rolls back an open transaction now, without yielding (for
**       __close handlers of cancelled tasks, which cannot wait)
**   db:path(), db:version(); db:close() (also __gc and __close)
**
** Calls on one connection run one at a time, in the order made: a call
** made while another runs waits in the connection's queue. A task
** cancelled while its statement runs leaves the statement to finish (it is
** interrupted) and the queue goes on.
**
** Ownership: the connection (dbref) is freed when its userdata is closed
** AND no operation holds it; operations hold it from the call until their
** work item completed.
*/
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "store.h"
#include "task.h"

int luaopen_ato_storedb (lua_State *L);

#define DB_META "ato.storedb.db"
#define ERRLEN 1024

typedef struct op op;

typedef struct dbref {
  store *s;
  int refs;                   /* userdata + operations holding it */
  op *running;                /* in the thread pool, or NULL */
  op *head, *tail;            /* waiting their turn */
} dbref;

typedef struct db_box { dbref *ref; } db_box;

enum { OP_OPEN, OP_EXEC, OP_SCRIPT };

struct op {
  uv_work_t work;
  uv_loop_t *loop;
  int kind;
  ato_task *task;             /* NULL once its task stopped waiting */
  dbref *ref;                 /* NULL for OP_OPEN until it succeeds */
  char *sql;                  /* OP_OPEN: the path */
  store_value *params;
  int nparams;
  store_options opt;
  store_result res;
  store_status status;
  char err[ERRLEN];
  op *next;                   /* in the connection's queue */
};

/* {====================================================== references */

static void dbref_release (dbref *r) {
  if (r == NULL || --r->refs > 0) return;
  store_close(r->s);
  free(r);
}

static void op_free (op *o) {
  int i;
  for (i = 0; i < o->nparams; i++)
    if (o->params[i].type == STORE_TEXT || o->params[i].type == STORE_BLOB)
      free((char *)o->params[i].s);
  free(o->params);
  free(o->sql);
  store_result_free(&o->res);
  dbref_release(o->ref);
  free(o);
}

static dbref *check_db (lua_State *L, int idx) {
  db_box *b = luaL_checkudata(L, idx, DB_META);
  if (b->ref == NULL) luaL_error(L, "attempt to use a closed store");
  return b->ref;
}

/* }====================================================== */

/* {====================================================== running ops */

static void op_work (uv_work_t *w) {
  op *o = w->data;
  if (o->kind == OP_OPEN) {
    store *s = store_open(o->sql, &o->opt, &o->status, o->err, sizeof o->err);
    if (s != NULL) {
      if ((o->ref = calloc(1, sizeof *o->ref)) == NULL) {
        store_close(s);
        o->status = STORE_ENOMEM;
        snprintf(o->err, sizeof o->err, "%s: out of memory", o->sql);
      } else {
        o->ref->s = s;
        o->ref->refs = 1;
      }
    }
  } else if (o->kind == OP_EXEC) {
    o->status = store_exec(o->ref->s, o->sql, o->params, o->nparams, &o->res,
                           o->err, sizeof o->err);
  } else {
    o->status = store_exec_script(o->ref->s, o->sql, o->err, sizeof o->err);
  }
}

static void op_done (uv_work_t *w, int status);

static int op_start (op *o) {
  o->work.data = o;
  if (o->ref) o->ref->running = o;
  return uv_queue_work(o->loop, &o->work, op_work, op_done);
}

/* The next queued op of r, if any, goes to the pool. */
static void start_next (dbref *r) {
  while (r->running == NULL && r->head != NULL) {
    op *o = r->head;
    r->head = o->next;
    if (r->head == NULL) r->tail = NULL;
    if (op_start(o) != 0) {           /* cannot happen with a live loop */
      o->status = STORE_EIO;
      snprintf(o->err, sizeof o->err, "cannot queue the statement");
      r->running = NULL;
      if (o->task) ato_task_wake(o->task, ATO_WAKE_OK);
      else op_free(o);
    }
  }
}

static void op_done (uv_work_t *w, int status) {
  op *o = w->data;
  dbref *r = o->kind == OP_OPEN ? NULL : o->ref;
  (void)status;
  if (r) {
    r->running = NULL;
    r->refs++;                        /* keep r alive across op_free */
  }
  if (o->task) ato_task_wake(o->task, ATO_WAKE_OK);
  else op_free(o);                    /* detached: nobody takes the result */
  if (r) {
    start_next(r);
    dbref_release(r);
  }
}

/* Cancelled or timed out: a queued op leaves the queue; a running one is
   interrupted and freed by op_done. */
static void op_detach (void *p) {
  op *o = p;
  dbref *r = o->kind == OP_OPEN ? NULL : o->ref;
  o->task = NULL;
  if (r && r->running == o) {
    store_interrupt(r->s);
    return;
  }
  if (r) {
    op **pp = &r->head, *prev = NULL;
    for (; *pp && *pp != o; prev = *pp, pp = &(*pp)->next) {}
    if (*pp == o) {
      *pp = o->next;
      if (r->tail == o) r->tail = prev;
      op_free(o);
      return;
    }
  }
  /* OP_OPEN in the pool: op_done frees it (and the store it opened) */
}

/* Queues o on its connection, or starts it. */
static int op_submit (lua_State *L, op *o, ato_task *t, ato_resume_fn resume) {
  o->task = t;
  o->loop = ato_loop(L);
  if (o->ref && o->ref->running != NULL) {
    o->next = NULL;
    if (o->ref->tail) o->ref->tail->next = o;
    else o->ref->head = o;
    o->ref->tail = o;
  } else if (op_start(o) != 0) {
    if (o->ref) o->ref->running = NULL;
    op_free(o);
    return luaL_error(L, "cannot queue the statement");
  }
  return ato_task_wait(L, t, o, op_detach, resume, -1);
}

static op *op_new (lua_State *L, int kind, const char *sql) {
  op *o = calloc(1, sizeof *o);
  if (o == NULL || (o->sql = strdup(sql)) == NULL) {
    free(o);
    luaL_error(L, "not enough memory");
  }
  o->kind = kind;
  store_result_init(&o->res);
  return o;
}

/* }====================================================== */

/* {====================================================== results */

static int push_failure (lua_State *L, op *o) {
  int n = ato_return_error(L, store_status_kind(o->status), "store: %s", o->err);
  op_free(o);
  return n;
}

/* [-0, +1] A column value (NULL never reaches here). */
static void push_value (lua_State *L, const store_value *v) {
  switch (v->type) {
    case STORE_INT: lua_pushinteger(L, (lua_Integer)v->i); break;
    case STORE_REAL: lua_pushnumber(L, v->d); break;
    default: lua_pushlstring(L, v->s, v->len); break;
  }
}

/* [-0, +2] rows, info */
static int push_rows (lua_State *L, const store_result *res) {
  size_t r;
  int c;
  lua_createtable(L, res->nrows > (size_t)INT32_MAX ? 0 : (int)res->nrows, 0);
  for (r = 0; r < res->nrows; r++) {
    lua_createtable(L, 0, res->ncols);
    for (c = 0; c < res->ncols; c++) {
      const store_value *v = &res->vals[r * (size_t)res->ncols + (size_t)c];
      if (v->type == STORE_NULL) continue;
      push_value(L, v);
      lua_setfield(L, -2, res->names[c]);
    }
    lua_rawseti(L, -2, (lua_Integer)r + 1);
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)res->changes);
  lua_setfield(L, -2, "changes");
  lua_pushinteger(L, (lua_Integer)res->last_id);
  lua_setfield(L, -2, "last_id");
  return 2;
}

/* Resumes run in the task; an error while pushing must not leak o, so
   the pushing runs under pcall with o freed either way. */
static int push_exec (lua_State *L) {
  return push_rows(L, lua_touserdata(L, 1));
}

static int exec_resume (lua_State *L, ato_task *t, void *p, ato_wake wake) {
  op *o = p;
  int status;
  (void)t;
  (void)wake;
  if (o->status != STORE_OK) return push_failure(L, o);
  lua_pushcfunction(L, push_exec);
  lua_pushlightuserdata(L, &o->res);
  status = lua_pcall(L, 1, 2, 0);
  op_free(o);
  if (status != LUA_OK) return lua_error(L);
  return 2;
}

static int script_resume (lua_State *L, ato_task *t, void *p, ato_wake wake) {
  op *o = p;
  (void)t;
  (void)wake;
  if (o->status != STORE_OK) return push_failure(L, o);
  op_free(o);
  lua_pushboolean(L, 1);
  return 1;
}

static int open_resume (lua_State *L, ato_task *t, void *p, ato_wake wake) {
  op *o = p;
  db_box *box;
  (void)t;
  (void)wake;
  if (o->status != STORE_OK) return push_failure(L, o);
  box = lua_newuserdatauv(L, sizeof *box, 0);
  box->ref = o->ref;
  o->ref = NULL;                      /* the userdata owns the reference now */
  luaL_setmetatable(L, DB_META);
  op_free(o);
  return 1;
}

/* }====================================================== */

/* {====================================================== functions */

static int opt_int (lua_State *L, int idx, const char *k, int dflt) {
  int v;
  if (lua_isnoneornil(L, idx)) return dflt;
  lua_getfield(L, idx, k);
  v = lua_isnil(L, -1) ? dflt : (int)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* storedb.open(path [, opts]) */
static int l_open (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  ato_task *t;
  op *o;
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  t = ato_task_enter(L, "store.open");
  o = op_new(L, OP_OPEN, path);
  o->opt.busy_ms = opt_int(L, 2, "busy_ms", 0);
  if (!lua_isnoneornil(L, 2)) {
    lua_getfield(L, 2, "readonly");
    o->opt.readonly = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return op_submit(L, o, t, open_resume);
}

/* Copies argument i into v; raises for a type SQLite cannot take. */
static int take_param (lua_State *L, int i, store_value *v) {
  size_t len;
  const char *s;
  memset(v, 0, sizeof *v);
  switch (lua_type(L, i)) {
    case LUA_TNIL: case LUA_TNONE: v->type = STORE_NULL; return 0;
    case LUA_TBOOLEAN: v->type = STORE_INT; v->i = lua_toboolean(L, i); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, i)) { v->type = STORE_INT; v->i = lua_tointeger(L, i); }
      else { v->type = STORE_REAL; v->d = lua_tonumber(L, i); }
      return 0;
    case LUA_TSTRING:
      s = lua_tolstring(L, i, &len);
      if ((v->s = malloc(len + 1)) == NULL) return -1;
      memcpy((char *)v->s, s, len + 1);
      v->type = STORE_TEXT;
      v->len = len;
      return 0;
    default:
      return -2;
  }
}

/* db:exec(sql, ...) */
static int db_exec (lua_State *L) {
  dbref *r = check_db(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  int i, n = lua_gettop(L) - 2;
  ato_task *t = ato_task_enter(L, "store:exec");
  op *o = op_new(L, OP_EXEC, sql);
  if (n > 0 && (o->params = calloc((size_t)n, sizeof *o->params)) == NULL) {
    op_free(o);
    return luaL_error(L, "not enough memory");
  }
  for (i = 0; i < n; i++) {
    int rc = take_param(L, i + 3, &o->params[i]);
    if (rc != 0) {
      o->nparams = i;
      op_free(o);
      if (rc == -1) return luaL_error(L, "not enough memory");
      return luaL_argerror(L, i + 3, "nil, boolean, number or string expected");
    }
    o->nparams = i + 1;
  }
  o->ref = r;
  r->refs++;
  return op_submit(L, o, t, exec_resume);
}

/* db:script(sql) */
static int db_script (lua_State *L) {
  dbref *r = check_db(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  ato_task *t = ato_task_enter(L, "store:script");
  op *o = op_new(L, OP_SCRIPT, sql);
  o->ref = r;
  r->refs++;
  return op_submit(L, o, t, script_resume);
}

static int db_in_transaction (lua_State *L) {
  lua_pushboolean(L, store_in_transaction(check_db(L, 1)->s));
  return 1;
}

/*
** db:abort(): ROLLBACK on the loop thread, now. A statement still running
** for a cancelled task is interrupted first; SQLite's connection mutex
** makes the ROLLBACK wait for it to notice (a few milliseconds at most).
*/
static int db_abort (lua_State *L) {
  dbref *r = check_db(L, 1);
  char err[ERRLEN];
  if (r->running) store_interrupt(r->s);
  if (store_in_transaction(r->s) &&
      store_exec_script(r->s, "ROLLBACK", err, sizeof err) != STORE_OK &&
      store_in_transaction(r->s))
    return luaL_error(L, "store: %s", err);
  return 0;
}

static int db_path (lua_State *L) {
  lua_pushstring(L, store_path(check_db(L, 1)->s));
  return 1;
}

static int db_version (lua_State *L) {
  lua_pushinteger(L, store_schema_version(check_db(L, 1)->s));
  return 1;
}

/* One idempotent close for :close(), __close and __gc. Operations still
   holding the connection keep it open until they complete. */
static int db_close (lua_State *L) {
  db_box *b = luaL_checkudata(L, 1, DB_META);
  dbref *r = b->ref;
  b->ref = NULL;
  dbref_release(r);
  return 0;
}

static int db_tostring (lua_State *L) {
  db_box *b = luaL_checkudata(L, 1, DB_META);
  if (b->ref == NULL) lua_pushliteral(L, "ato.store (closed)");
  else lua_pushfstring(L, "ato.store (%s)", store_path(b->ref->s));
  return 1;
}

/* }====================================================== */

static const luaL_Reg db_methods[] = {
  {"exec", db_exec},
  {"script", db_script},
  {"in_transaction", db_in_transaction},
  {"abort", db_abort},
  {"path", db_path},
  {"version", db_version},
  {"close", db_close},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {NULL, NULL}
};

int luaopen_ato_storedb (lua_State *L) {
  if (luaL_newmetatable(L, DB_META)) {
    luaL_newlib(L, db_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, db_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, db_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, db_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, STORE_SCHEMA_VERSION);
  lua_setfield(L, -2, "SCHEMA_VERSION");
  return 1;
}

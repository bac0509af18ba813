/*
** binding.c — `require "ato.scanner"`: the C scanner for Lua. The facade
** `ato.scan` (stdlib/ato/scan.lua) builds on it:
**
**   scanner.engine{files = {...}, cache_dir = dir} -> engine (yields: the
**     compile runs in libuv's thread pool), or nil, err
**   engine:rules() -> {{id=, name=, provider=, severity=, ...}, ...}
**   engine:check() -> problems: {{rule=, problem=}, ...} (examples/negatives)
**   engine:cached() -> true if the database came from the disk cache
**   scanner.job(engine, kind, sources, opts) -> job    kind: text|files|git
**   job:next([timeout]) -> findings, stats, done, skips, error (yields)
**   job:cancel(); a job in a <close> variable is cancelled at scope end
**
** Ownership. A job runs threads that use the engine, so both live in C
** memory with the loop thread's reference counts, not only in userdata:
** an engine is freed when neither its userdata nor a job holds it; a job
** (jobref) is freed when its userdata is gone AND its threads have exited,
** which the threads report through the jobref's uv_async (the only libuv
** call made off the loop thread). The uv_async is closed only then.
*/
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"
#include "job.h"
#include "scan.h"
#include "task.h"

int luaopen_ato_scanner (lua_State *L);

#define ENGINE_META "ato.scanner.engine"
#define JOB_META "ato.scanner.job"
#define ERRLEN 1024

/* {====================================================== engines */

typedef struct engine_ref {
  scan_engine *eng;
  scan_ruleset rules;
  int refs;                   /* the userdata, plus one per live job */
} engine_ref;

typedef struct engine_box { engine_ref *ref; } engine_box;

static void engine_release (engine_ref *r) {
  if (r == NULL || --r->refs > 0) return;
  scan_engine_free(r->eng);
  scan_rules_free(&r->rules);
  free(r);
}

static engine_ref *check_engine (lua_State *L, int idx) {
  engine_box *b = luaL_checkudata(L, idx, ENGINE_META);
  if (b->ref == NULL) luaL_error(L, "attempt to use a freed scanner engine");
  return b->ref;
}

static int engine_gc (lua_State *L) {
  engine_box *b = luaL_checkudata(L, 1, ENGINE_META);
  engine_release(b->ref);
  b->ref = NULL;
  return 0;
}

/* The build request: parse (on the loop, fast), compile (thread pool). */
typedef struct build_req {
  uv_work_t work;
  ato_task *task;             /* NULL once the task stopped waiting */
  engine_ref *ref;
  char *cache_dir;
  char err[ERRLEN];
} build_req;

static void build_work (uv_work_t *w) {
  build_req *b = w->data;
  b->ref->eng = scan_engine_new(&b->ref->rules, b->cache_dir, b->err, sizeof b->err);
}

static void build_free (build_req *b) {
  if (b->ref) engine_release(b->ref);
  free(b->cache_dir);
  free(b);
}

static void build_done (uv_work_t *w, int status) {
  build_req *b = w->data;
  (void)status;
  if (b->task) ato_task_wake(b->task, ATO_WAKE_OK);
  else build_free(b);                 /* detached: nobody takes the result */
}

static void build_detach (void *op) {
  ((build_req *)op)->task = NULL;     /* the work item frees it when done */
}

static int build_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  build_req *b = op;
  engine_box *box;
  (void)t;
  (void)wake;
  if (b->ref->eng == NULL) {
    int n = ato_return_error(L, "rules", "%s", b->err);
    build_free(b);
    return n;
  }
  box = lua_newuserdatauv(L, sizeof *box, 0);
  box->ref = b->ref;
  b->ref = NULL;                      /* the userdata owns the reference now */
  luaL_setmetatable(L, ENGINE_META);
  build_free(b);
  return 1;
}

/* Parses the rule files listed at opts.files; 0 or -1 with err. */
static int load_rule_files (lua_State *L, scan_ruleset *rs, char *err) {
  lua_Integer i, n;
  lua_getfield(L, 1, "files");
  n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    const char *path;
    lua_rawgeti(L, -1, i);
    path = lua_tostring(L, -1);
    if (path == NULL || scan_rules_load_file(rs, path, err, ERRLEN) != 0) {
      if (path == NULL) snprintf(err, ERRLEN, "rule file #%d is not a string", (int)i);
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* scanner.engine{files = {...}, cache_dir = dir} -> engine | nil, err */
static int l_engine (lua_State *L) {
  build_req *b;
  ato_task *t;
  const char *cache_dir;
  luaL_checktype(L, 1, LUA_TTABLE);
  t = ato_task_enter(L, "scanner.engine");
  lua_getfield(L, 1, "cache_dir");
  cache_dir = lua_tostring(L, -1);
  if ((b = calloc(1, sizeof *b)) == NULL || (b->ref = calloc(1, sizeof *b->ref)) == NULL) {
    free(b);
    return luaL_error(L, "not enough memory");
  }
  b->ref->refs = 1;
  scan_rules_init(&b->ref->rules);
  b->cache_dir = cache_dir ? strdup(cache_dir) : NULL;
  lua_pop(L, 1);
  if (load_rule_files(L, &b->ref->rules, b->err) != 0) {
    int n = ato_return_error(L, "rules", "%s", b->err);
    build_free(b);
    return n;
  }
  b->task = t;
  b->work.data = b;
  if (uv_queue_work(ato_loop(L), &b->work, build_work, build_done) != 0) {
    build_free(b);
    return luaL_error(L, "cannot queue the rule compilation");
  }
  return ato_task_wait(L, t, b, build_detach, build_resume, -1);
}

static void set_str (lua_State *L, const char *k, const char *v) {
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* [-0, +1] A rule as a table (its metadata, not its examples). */
static void push_rule (lua_State *L, const scan_rule *r) {
  size_t i;
  lua_createtable(L, 0, 10);
  set_str(L, "id", r->id);
  set_str(L, "name", r->name);
  set_str(L, "provider", r->provider);
  set_str(L, "severity", r->severity);
  set_str(L, "pattern", r->pattern);
  set_str(L, "trigger", r->trigger);
  set_str(L, "keywords", r->keywords);
  set_str(L, "validator", r->validator);
  set_str(L, "verify", r->verify);
  lua_pushnumber(L, r->entropy);
  lua_setfield(L, -2, "entropy");
  lua_pushfstring(L, "%s:%d", r->file ? r->file : "?", r->line);
  lua_setfield(L, -2, "defined_at");
  lua_createtable(L, (int)r->nreferences, 0);
  for (i = 0; i < r->nreferences; i++) {
    lua_pushstring(L, r->references[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "references");
}

static int engine_rules (lua_State *L) {
  engine_ref *r = check_engine(L, 1);
  size_t i, n = scan_engine_nrules(r->eng);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    push_rule(L, scan_engine_rule(r->eng, i));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int engine_cached (lua_State *L) {
  lua_pushboolean(L, scan_engine_cached(check_engine(L, 1)->eng));
  return 1;
}

/* {------------------------------------------------------ check */

typedef struct rule_probe { size_t rule; int found; } rule_probe;

static int probe_hit (void *ud, const scan_hit *hit, const char *data, size_t len) {
  rule_probe *p = ud;
  (void)data;
  (void)len;
  if (hit->rule == p->rule) p->found = 1;
  return p->found;                    /* stop once found */
}

static int rule_finds (scan_ctx *c, size_t rule, const scan_text *t) {
  rule_probe p = {rule, 0};
  scan_options so;
  memset(&so, 0, sizeof so);
  scan_buffer(c, t->data, t->len, &so, probe_hit, &p);
  return p.found;
}

/* [-0, +0] Appends {rule=, problem=} to the table on top. */
static void add_problem (lua_State *L, const scan_rule *r, const char *fmt, size_t i) {
  lua_createtable(L, 0, 3);
  set_str(L, "rule", r->id);
  lua_pushfstring(L, fmt, (int)i + 1);
  lua_setfield(L, -2, "problem");
  lua_pushfstring(L, "%s:%d", r->file ? r->file : "?", r->line);
  lua_setfield(L, -2, "defined_at");
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
}

/*
** engine:check() -> list of problems: every example must give its rule,
** no negative may. The examples are small: this runs on the loop thread
** (a few milliseconds for hundreds of rules) as part of `--check-rules`.
*/
static int engine_check (lua_State *L) {
  engine_ref *r = check_engine(L, 1);
  scan_ctx *c = scan_ctx_new(r->eng);
  size_t i, k, n = scan_engine_nrules(r->eng);
  if (c == NULL) return luaL_error(L, "not enough memory");
  lua_newtable(L);
  for (i = 0; i < n; i++) {
    const scan_rule *rule = scan_engine_rule(r->eng, i);
    for (k = 0; k < rule->nexamples; k++)
      if (!rule_finds(c, i, &rule->examples[k]))
        add_problem(L, rule, "example %d is not found", k);
    for (k = 0; k < rule->nnegatives; k++)
      if (rule_finds(c, i, &rule->negatives[k]))
        add_problem(L, rule, "negative %d is found", k);
  }
  scan_ctx_free(c);
  return 1;
}

/* }------------------------------------------------------ */

/* }====================================================== */

/* {====================================================== jobs */

typedef struct job_list job_list;
typedef struct job_box job_box;

typedef struct jobref {
  scan_job *job;
  engine_ref *eng;
  job_list *list;
  uv_async_t async;
  ato_task *waiter;           /* task in job:next(), or NULL */
  job_box *box;               /* the userdata, or NULL once it let go */
  int orphan;                 /* the userdata is gone */
  int freed;                  /* scan_job_free done: only the handle remains */
  double started;
  struct jobref *prev, *next;
} jobref;

struct job_box { jobref *ref; };

/* Live jobs, for shutdown (only touched on the loop thread). */
struct job_list { jobref *head; int hooked; };

static job_list *get_jobs (lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static void free_jobref_memory (uv_handle_t *h) {
  free(h->data);
}

/* Threads have exited and nobody holds the job: release everything. */
static void job_release (jobref *r, job_list *jobs) {
  if (r->freed) return;
  r->freed = 1;
  scan_job_free(r->job);              /* joins threads that already exited */
  r->job = NULL;
  engine_release(r->eng);
  r->eng = NULL;
  if (r->prev) r->prev->next = r->next;
  else if (jobs->head == r) jobs->head = r->next;
  if (r->next) r->next->prev = r->prev;
  uv_close((uv_handle_t *)&r->async, free_jobref_memory);
}

/*
** The handle keeps the loop alive only while a task waits on the job: a job
** nobody waits on (left open by a script that ended or failed) must not
** hold the process; shutdown_jobs cancels and joins it at exit.
*/
static void set_waiter (jobref *r, ato_task *t) {
  r->waiter = t;
  if (t != NULL) uv_ref((uv_handle_t *)&r->async);
  else uv_unref((uv_handle_t *)&r->async);
}

/* Any thread may call this (uv_async_send is the thread-safe libuv call). */
static void notify_job (void *ud) {
  uv_async_send(&((jobref *)ud)->async);
}

/* Loop thread: wake the waiting task; free an orphan that finished. */
static void on_job_async (uv_async_t *h) {
  jobref *r = h->data;
  if (r->freed) return;
  if (r->waiter) {
    ato_task *t = r->waiter;
    set_waiter(r, NULL);
    ato_task_wake(t, ATO_WAKE_OK);
  }
  if (r->orphan && scan_job_finished(r->job)) job_release(r, r->list);
}

static jobref *check_job (lua_State *L, int idx) {
  job_box *b = luaL_checkudata(L, idx, JOB_META);
  if (b->ref == NULL) luaL_error(L, "attempt to use a closed scan job");
  return b->ref;
}

/* The userdata goes (GC, <close>, :close()): cancel; free once finished. */
static int job_close (lua_State *L) {
  job_box *b = luaL_checkudata(L, 1, JOB_META);
  jobref *r = b->ref;
  if (r == NULL) return 0;
  b->ref = NULL;
  r->box = NULL;
  r->orphan = 1;
  set_waiter(r, NULL);
  scan_job_cancel(r->job);
  if (scan_job_finished(r->job)) job_release(r, get_jobs(L));
  return 0;
}

static int job_cancel (lua_State *L) {
  scan_job_cancel(check_job(L, 1)->job);
  return 0;
}

/* }====================================================== */

/* {====================================================== findings */

static void set_int (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void push_commit (lua_State *L, jobref *r, long index) {
  scan_commit_info c;
  char date[40];
  struct tm tm;
  time_t at;
  if (scan_job_commit(r->job, index, &c) != 0) return;
  set_str(L, "commit", c.id);
  set_str(L, "author", c.author);
  set_str(L, "email", c.email);
  set_int(L, "time", (lua_Integer)c.time);
  at = (time_t)c.time;
  if (gmtime_r(&at, &tm) && strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm))
    set_str(L, "date", date);
}

/* [-0, +1] One finding as the facade documents it. */
static void push_record (lua_State *L, jobref *r, const scan_record *rec) {
  const scan_rule *rule = scan_engine_rule(r->eng->eng, rec->rule);
  lua_createtable(L, 0, 18);
  set_str(L, "rule", rule->id);
  set_str(L, "name", rule->name);
  set_str(L, "provider", rule->provider);
  set_str(L, "severity", rule->severity);
  set_str(L, "verify", rule->verify);
  set_str(L, "path", rec->path);
  set_int(L, "line", (lua_Integer)rec->line);
  set_int(L, "column", (lua_Integer)rec->column);
  set_int(L, "offset", (lua_Integer)rec->offset);
  lua_pushlstring(L, rec->secret, rec->secret_len);
  lua_setfield(L, -2, "secret");
  set_str(L, "fingerprint", rec->fingerprint);
  set_str(L, "redacted", rec->redacted);
  set_str(L, "line_text", rec->line_text);
  if (rec->commit >= 0) push_commit(L, r, rec->commit);
}

static void push_stats (lua_State *L, jobref *r, const scan_job_stats *s) {
  lua_createtable(L, 0, 9);
  set_int(L, "files", (lua_Integer)s->files);
  set_int(L, "bytes", (lua_Integer)s->bytes);
  set_int(L, "blobs", (lua_Integer)s->blobs);
  set_int(L, "commits", (lua_Integer)s->commits);
  set_int(L, "binary_skipped", (lua_Integer)s->binary_skipped);
  set_int(L, "skipped", (lua_Integer)s->skipped);
  set_int(L, "findings", (lua_Integer)s->findings);
  lua_pushnumber(L, ato_now() - r->started);
  lua_setfield(L, -2, "elapsed");
}

/* Runs under lua_pcall: lists are freed by the caller whatever happens. */
typedef struct take {
  jobref *r;
  scan_record *recs;
  scan_skip *skips;
  scan_job_stats st;
  int finished;
} take;

static int push_take (lua_State *L) {
  take *tk = lua_touserdata(L, 1);
  scan_record *rec;
  scan_skip *sk;
  int i = 0;
  const char *err;
  lua_newtable(L);                                        /* findings */
  for (rec = tk->recs; rec; rec = rec->next) {
    push_record(L, tk->r, rec);
    lua_rawseti(L, -2, ++i);
  }
  push_stats(L, tk->r, &tk->st);                          /* findings stats */
  lua_pushboolean(L, tk->finished);                       /* ... done */
  lua_newtable(L);                                        /* ... skips */
  for (i = 0, sk = tk->skips; sk; sk = sk->next) {
    lua_createtable(L, 0, 2);
    set_str(L, "path", sk->path);
    set_str(L, "reason", sk->reason);
    lua_rawseti(L, -2, ++i);
  }
  err = scan_job_error(tk->r->job);
  if (err) lua_pushstring(L, err);
  else lua_pushnil(L);
  return 5;
}

/* [-0, +5] What the job produced since the last call. */
static int push_batch (lua_State *L, jobref *r) {
  take tk;
  int status;
  tk.r = r;
  /* finished first: records added before a thread exits are then taken */
  tk.finished = scan_job_finished(r->job);
  scan_job_take(r->job, &tk.recs, &tk.skips, &tk.st);
  lua_pushcfunction(L, push_take);
  lua_pushlightuserdata(L, &tk);
  status = lua_pcall(L, 1, 5, 0);
  scan_record_free(tk.recs);
  scan_skip_free(tk.skips);
  if (status != LUA_OK) return lua_error(L);
  return 5;
}

static void next_detach (void *op) {
  set_waiter(op, NULL);      /* the job goes on; its owner decides */
}

static int next_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  jobref *r = check_job(L, 1);
  (void)t;
  (void)op;
  (void)wake;
  set_waiter(r, NULL);
  return push_batch(L, r);
}

/*
** job:next([timeout]) -> findings, stats, done, skips, error
** Waits until the job produced something, finished, or the timeout (for
** progress reports) passed; then returns what is there.
*/
static int job_next (lua_State *L) {
  jobref *r = check_job(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  ato_task *t = ato_task_enter(L, "job:next");
  if (scan_job_finished(r->job)) return push_batch(L, r);
  if (r->waiter) return luaL_error(L, "another task is waiting on this scan job");
  set_waiter(r, t);
  lua_settop(L, 2);
  return ato_task_wait(L, t, r, next_detach, next_resume, timeout);
}

/* }====================================================== */

/* {====================================================== starting jobs */

static size_t opt_size (lua_State *L, int t, const char *k, size_t dflt) {
  lua_Number v;
  lua_getfield(L, t, k);
  v = lua_isnil(L, -1) ? (lua_Number)dflt : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v < 0 ? 0 : v >= 9e18 ? (size_t)-1 : (size_t)v;
}

static int opt_flag (lua_State *L, int t, const char *k) {
  int v;
  lua_getfield(L, t, k);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static void read_job_options (lua_State *L, int t, scan_job_options *o) {
  memset(o, 0, sizeof *o);
  if (lua_isnoneornil(L, t)) {
    o->max_file_size = 64u << 20;
    return;
  }
  luaL_checktype(L, t, LUA_TTABLE);
  o->threads = (int)opt_size(L, t, "threads", 0);
  o->max_file_size = opt_size(L, t, "max_file_size", 64u << 20);
  o->binary = opt_flag(L, t, "binary");
  o->gitignore = opt_flag(L, t, "gitignore");
  o->all_objects = opt_flag(L, t, "all_objects");
  o->no_validators = opt_flag(L, t, "no_validators");
  o->follow_links = opt_flag(L, t, "follow_links");
}

/* Sources at idx: a string or a list of strings; n of them in out. */
static const char **read_sources (lua_State *L, int idx, size_t *n) {
  const char **out;
  size_t i;
  if (lua_type(L, idx) == LUA_TSTRING) {
    *n = 1;
  } else {
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = (size_t)luaL_len(L, idx);
  }
  out = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *out, 0);  /* freed by GC */
  if (lua_type(L, idx) == LUA_TSTRING) {
    out[0] = lua_tostring(L, idx);
    return out;
  }
  for (i = 0; i < *n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    out[i] = lua_tostring(L, -1);
    if (out[i] == NULL) luaL_argerror(L, idx, "list of path strings expected");
    lua_pop(L, 1);                    /* still anchored by the list */
  }
  return out;
}

static scan_job_kind check_kind (lua_State *L, int idx) {
  static const char *const kinds[] = {"text", "files", "git", NULL};
  static const scan_job_kind values[] = {SCAN_JOB_TEXT, SCAN_JOB_FILES, SCAN_JOB_GIT};
  return values[luaL_checkoption(L, idx, NULL, kinds)];
}

static void hook_shutdown (lua_State *L, job_list *jobs);

/*
** scanner.job(engine, kind, sources, opts [, text]) -> job
** text: sources is the label and arg 5 the text (the job copies it: its
** threads may outlive the userdata).
*/
static int l_job (lua_State *L) {
  engine_ref *eng = check_engine(L, 1);
  scan_job_kind kind = check_kind(L, 2);
  job_list *jobs = get_jobs(L);
  scan_job_options o;
  const char **sources;
  const char *text = NULL;
  size_t nsources, text_len = 0;
  char err[ERRLEN];
  jobref *r;
  job_box *box;
  read_job_options(L, 4, &o);
  sources = read_sources(L, 3, &nsources);
  if (kind == SCAN_JOB_TEXT) text = luaL_checklstring(L, 5, &text_len);
  if (kind != SCAN_JOB_FILES && nsources != 1)
    return luaL_argerror(L, 3, "exactly one source expected");
  hook_shutdown(L, jobs);
  if ((r = calloc(1, sizeof *r)) == NULL) return luaL_error(L, "not enough memory");
  box = lua_newuserdatauv(L, sizeof *box, 0);             /* ... job */
  box->ref = NULL;
  luaL_setmetatable(L, JOB_META);
  uv_async_init(ato_loop(L), &r->async, on_job_async);
  uv_unref((uv_handle_t *)&r->async);   /* see set_waiter */
  r->async.data = r;
  r->list = jobs;
  r->started = ato_now();
  r->job = scan_job_start(eng->eng, kind, sources, nsources, text, text_len, &o,
                          notify_job, r, err, sizeof err);
  if (r->job == NULL) {
    r->freed = 1;
    uv_close((uv_handle_t *)&r->async, free_jobref_memory);
    return ato_return_error(L, kind == SCAN_JOB_GIT ? "git" : "scan", "%s", err);
  }
  r->eng = eng;
  eng->refs++;
  r->next = jobs->head;
  if (jobs->head) jobs->head->prev = r;
  jobs->head = r;
  box->ref = r;
  r->box = box;
  return 1;
}

/* At exit: cancel every job and wait for its threads (they stop between
   files), then close the handles before the loop's last run. */
static void shutdown_jobs (void *data) {
  job_list *jobs = data;
  while (jobs->head) {
    jobref *r = jobs->head;
    /* the userdata outlives this (lua_close collects it later): its
       close must find the job gone, not this freed jobref */
    if (r->box != NULL) r->box->ref = NULL;
    r->box = NULL;
    r->orphan = 1;
    set_waiter(r, NULL);
    job_release(r, jobs);
  }
}

static void hook_shutdown (lua_State *L, job_list *jobs) {
  if (jobs->hooked) return;
  if (ato_rt_at_close(L, shutdown_jobs, jobs) != 0)
    luaL_error(L, "ato.scanner: too many shutdown hooks");
  jobs->hooked = 1;
}

/* }====================================================== */

/* scanner.rules_dir() -> the built-in rules' directory, or nil */
static int l_rules_dir (lua_State *L) {
  const char *exe = ato_host_exe_dir();
  char path[4096], real[4096];
  snprintf(path, sizeof path, "%s/../rules", exe);
  if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/../share/ato/rules", exe);
  if (access(path, R_OK) != 0) return 0;
  lua_pushstring(L, realpath(path, real) ? real : path);  /* "…/bin/.." reads badly */
  return 1;
}

static const luaL_Reg engine_methods[] = {
  {"rules", engine_rules},
  {"check", engine_check},
  {"cached", engine_cached},
  {NULL, NULL}
};

static const luaL_Reg job_methods[] = {
  {"next", job_next},
  {"cancel", job_cancel},
  {"close", job_close},
  {NULL, NULL}
};

static const luaL_Reg module_funcs[] = {
  {"engine", l_engine},
  {"job", l_job},
  {"rules_dir", l_rules_dir},
  {NULL, NULL}
};

/* [-0, +0] metatable name with methods; metamethods get the job list too */
static void new_type (lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction gc) {
  luaL_newmetatable(L, name);                 /* list mt */
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, gc, 1);
  lua_setfield(L, -2, "__gc");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, gc, 1);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

int luaopen_ato_scanner (lua_State *L) {
  job_list *jobs;
  if (lua_getfield(L, LUA_REGISTRYINDEX, "ato.scanner.jobs") != LUA_TUSERDATA) {
    lua_pop(L, 1);
    jobs = lua_newuserdatauv(L, sizeof *jobs, 0);
    jobs->head = NULL;
    jobs->hooked = 0;
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "ato.scanner.jobs");  /* never collected */
  }
  new_type(L, ENGINE_META, engine_methods, engine_gc);
  new_type(L, JOB_META, job_methods, job_close);
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, module_funcs, 1);
  return 1;
}

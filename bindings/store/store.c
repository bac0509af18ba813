/*
** store.c — the state store's C core on SQLite (see store.h for the
** contract: files and modes, WAL + synchronous=FULL, migrations, errors).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

struct store {
  sqlite3 *db;
  char *path;
  int version;                /* schema version after migration */
};

/* {====================================================== schema */

/*
** Migration i takes the schema from version i to i + 1. Never edit a
** migration that has shipped: add the next one (and bump
** STORE_SCHEMA_VERSION), since files in the field are at every version.
**
** Times are UTC epoch seconds (REAL). JSON columns hold what the Lua
** facade encodes. runs.slot is the due time the run is for; (job, slot,
** attempt) is unique, which is what makes claiming an occurrence a single
** INSERT that a second daemon cannot repeat.
*/
static const char *const MIGRATIONS[STORE_SCHEMA_VERSION] = {
  /* 0 -> 1 */
  "CREATE TABLE kv ("
  "  key TEXT PRIMARY KEY NOT NULL,"
  "  value TEXT NOT NULL,"
  "  updated_at REAL NOT NULL"
  ") WITHOUT ROWID;"
  "CREATE TABLE audit ("
  "  id INTEGER PRIMARY KEY,"
  "  at REAL NOT NULL,"
  "  actor TEXT NOT NULL,"
  "  action TEXT NOT NULL,"
  "  target TEXT,"
  "  details TEXT"
  ");"
  "CREATE INDEX audit_at ON audit(at);"
  "CREATE TABLE jobs ("
  "  name TEXT PRIMARY KEY NOT NULL,"
  "  schedule TEXT NOT NULL,"      /* {kind = cron|every|at, ...} */
  "  command TEXT NOT NULL,"       /* {script =, args = {...}} */
  "  options TEXT NOT NULL,"       /* overlap, missed, timeout, attempts, env */
  "  paused INTEGER NOT NULL DEFAULT 0,"
  "  next_due REAL,"               /* NULL: nothing left to run */
  "  last_slot REAL,"              /* last occurrence handled */
  "  created_at REAL NOT NULL,"
  "  updated_at REAL NOT NULL"
  ");"
  "CREATE INDEX jobs_due ON jobs(next_due) WHERE paused = 0 AND next_due IS NOT NULL;"
  "CREATE TABLE runs ("
  "  id INTEGER PRIMARY KEY,"
  "  job TEXT NOT NULL,"
  "  slot REAL NOT NULL,"
  "  attempt INTEGER NOT NULL DEFAULT 1,"
  "  status TEXT NOT NULL,"        /* queued claimed running ok failed timeout interrupted skipped */
  "  due REAL NOT NULL,"           /* when it should start: slot, or a retry's time */
  "  owner TEXT,"                  /* the daemon holding the lease */
  "  lease_until REAL,"
  "  claimed_at REAL,"
  "  started_at REAL,"
  "  ended_at REAL,"
  "  exit_code INTEGER,"
  "  signal INTEGER,"
  "  output TEXT,"                 /* the tail of its output */
  "  error TEXT,"
  "  UNIQUE (job, slot, attempt)"
  ");"
  "CREATE INDEX runs_job ON runs(job, id);"
  "CREATE INDEX runs_open ON runs(status) WHERE status IN ('claimed', 'running');"
  "CREATE INDEX runs_queued ON runs(due) WHERE status = 'queued';",
};

/* }====================================================== */

/* {====================================================== errors */

const char *store_status_kind (store_status st) {
  switch (st) {
    case STORE_OK: return "ok";
    case STORE_EBUSY: return "busy";
    case STORE_ECORRUPT: return "corrupt";
    case STORE_EREADONLY: return "readonly";
    case STORE_EFULL: return "full";
    case STORE_ECONSTRAINT: return "constraint";
    case STORE_ESCHEMA: return "schema";
    case STORE_EOPEN: return "open";
    case STORE_EINTERRUPT: return "interrupted";
    case STORE_ENOMEM: return "nomem";
    case STORE_EIO: return "io";
    case STORE_ESQL: return "sql";
  }
  return "store";
}

static store_status status_of (int rc) {
  switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return STORE_OK;
    case SQLITE_BUSY: case SQLITE_LOCKED: return STORE_EBUSY;
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return STORE_ECORRUPT;
    case SQLITE_READONLY: case SQLITE_PERM: return STORE_EREADONLY;
    case SQLITE_FULL: return STORE_EFULL;
    case SQLITE_CONSTRAINT: return STORE_ECONSTRAINT;
    case SQLITE_CANTOPEN: return STORE_EOPEN;
    case SQLITE_INTERRUPT: return STORE_EINTERRUPT;
    case SQLITE_NOMEM: return STORE_ENOMEM;
    case SQLITE_IOERR: return STORE_EIO;
    default: return STORE_ESQL;
  }
}

/* What to tell a user about the status, after SQLite's own message. */
static const char *advice_of (store_status st) {
  switch (st) {
    case STORE_EBUSY: return " (another process holds the database; try again, or stop it)";
    case STORE_ECORRUPT: return " (the file is damaged or not an ato database: move it"
                                " away and restore a backup, or start over)";
    case STORE_EREADONLY: return " (the file or its directory is not writable)";
    case STORE_EFULL: return " (the disk is full)";
    default: return "";
  }
}

static void set_err (char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  char *p;
  if (errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  for (p = err; *p; p++)          /* one line: SQLite messages may hold SQL */
    if ((unsigned char)*p < 0x20) *p = ' ';
}

/* Fills err with "PATH: sqlite's message (advice)" for rc; returns status. */
static store_status fail (sqlite3 *db, const char *path, int rc, char *err,
                          size_t errlen) {
  store_status st = status_of(rc);
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if (st == STORE_EBUSY) msg = "database is locked";
  set_err(err, errlen, "%s: %s%s", path, msg, advice_of(st));
  return st;
}

/* }====================================================== */

/* {====================================================== files */

/* mkdir -p for the directories above path, mode 0700; 0 or -1/errno. */
static int make_parents (const char *path) {
  char *dir = strdup(path), *p;
  int rc = 0;
  if (dir == NULL) return -1;
  for (p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) { rc = -1; break; }
    *p = '/';
  }
  free(dir);
  return rc;
}

/* Creates path with mode 0600 if missing; tightens a file others can read.
   Readonly opens touch nothing. 0 or -1 with err. */
static int prepare_file (const char *path, int readonly, store_status *st,
                         char *err, size_t errlen) {
  struct stat sb;
  int fd;
  if (stat(path, &sb) == 0) {
    if (!S_ISREG(sb.st_mode)) {
      *st = STORE_EOPEN;
      set_err(err, errlen, "%s: not a regular file", path);
      return -1;
    }
    if (!readonly && (sb.st_mode & 077) != 0 && sb.st_uid == geteuid())
      (void)chmod(path, sb.st_mode & 0700);   /* best effort: SQLite reports real trouble */
    return 0;
  }
  if (errno != ENOENT) {
    *st = errno == EACCES || errno == EPERM ? STORE_EREADONLY : STORE_EOPEN;
    set_err(err, errlen, "%s: cannot access: %s", path, strerror(errno));
    return -1;
  }
  if (readonly) return 0;                     /* SQLite will say it is missing */
  if (make_parents(path) != 0 ||
      ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 && errno != EEXIST)) {
    *st = (errno == EACCES || errno == EROFS || errno == EPERM) ? STORE_EREADONLY : STORE_EOPEN;
    set_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    return -1;
  }
  if (fd >= 0) close(fd);
  return 0;
}

/* }====================================================== */

/* {====================================================== opening */

static store_status run_script (sqlite3 *db, const char *path, const char *sql,
                                char *err, size_t errlen) {
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? STORE_OK : fail(db, path, rc, err, errlen);
}

static store_status read_version (store *s, int *version, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *version = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? STORE_OK : fail(s->db, s->path, rc, err, errlen);
}

/* Applies migrations from the file's version up; each its own transaction.
   BEGIN IMMEDIATE takes the write lock first, so two processes opening a
   new file at once migrate it once: the second re-reads the version. */
static store_status migrate (store *s, char *err, size_t errlen) {
  store_status st;
  int v;
  for (;;) {
    char sql[64];
    if ((st = read_version(s, &v, err, errlen)) != STORE_OK) return st;
    if (v > STORE_SCHEMA_VERSION) {
      set_err(err, errlen, "%s: schema version %d is newer than this ato knows (%d):"
              " use a newer ato, this one would not understand it", s->path, v,
              STORE_SCHEMA_VERSION);
      return STORE_ESCHEMA;
    }
    if (v == STORE_SCHEMA_VERSION) break;
    if ((st = run_script(s->db, s->path, "BEGIN IMMEDIATE", err, errlen)) != STORE_OK) return st;
    if ((st = read_version(s, &v, err, errlen)) != STORE_OK ||
        (v < STORE_SCHEMA_VERSION &&
         (st = run_script(s->db, s->path, MIGRATIONS[v], err, errlen)) != STORE_OK)) {
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      return st;
    }
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v < STORE_SCHEMA_VERSION ? v + 1 : v);
    if ((st = run_script(s->db, s->path, sql, err, errlen)) != STORE_OK ||
        (st = run_script(s->db, s->path, "COMMIT", err, errlen)) != STORE_OK) {
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      return st;
    }
  }
  s->version = v;
  return STORE_OK;
}

/* Connection settings; journal_mode=WAL needs the write lock once. */
static store_status configure (store *s, int readonly, char *err, size_t errlen) {
  store_status st;
  if (!readonly &&
      (st = run_script(s->db, s->path, "PRAGMA journal_mode = WAL", err, errlen)) != STORE_OK)
    return st;
  return run_script(s->db, s->path,
                    "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                    "PRAGMA trusted_schema = OFF", err, errlen);
}

store *store_open (const char *path, const store_options *opt,
                   store_status *status, char *err, size_t errlen) {
  store_options none = {0, 0};
  store_status st = STORE_OK;
  store *s;
  int rc, flags;
  if (opt == NULL) opt = &none;
  if (prepare_file(path, opt->readonly, &st, err, errlen) != 0) goto failed;
  if ((s = calloc(1, sizeof *s)) == NULL || (s->path = strdup(path)) == NULL) {
    free(s);
    st = STORE_ENOMEM;
    set_err(err, errlen, "%s: out of memory", path);
    goto failed;
  }
  flags = (opt->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
          SQLITE_OPEN_FULLMUTEX;
  rc = sqlite3_open_v2(path, &s->db, flags, NULL);
  if (rc != SQLITE_OK) {
    st = fail(s->db, path, rc, err, errlen);
    goto close;
  }
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_timeout(s->db, opt->busy_ms > 0 ? opt->busy_ms : STORE_BUSY_MS);
  if ((st = configure(s, opt->readonly, err, errlen)) != STORE_OK) goto close;
  if (opt->readonly) {
    if ((st = read_version(s, &s->version, err, errlen)) == STORE_OK &&
        s->version > STORE_SCHEMA_VERSION) {
      set_err(err, errlen, "%s: schema version %d is newer than this ato knows (%d)",
              path, s->version, STORE_SCHEMA_VERSION);
      st = STORE_ESCHEMA;
    }
  } else {
    st = migrate(s, err, errlen);
  }
  if (st == STORE_OK) {
    *status = STORE_OK;
    return s;
  }
close:
  store_close(s);
failed:
  *status = st;
  return NULL;
}

void store_close (store *s) {
  if (s == NULL) return;
  if (s->db) sqlite3_close_v2(s->db);   /* v2: unfinalized statements cannot leak it */
  free(s->path);
  free(s);
}

const char *store_path (const store *s) { return s->path; }
int store_schema_version (const store *s) { return s->version; }
int store_in_transaction (store *s) { return !sqlite3_get_autocommit(s->db); }
void store_interrupt (store *s) { sqlite3_interrupt(s->db); }

store_status store_exec_script (store *s, const char *sql, char *err, size_t errlen) {
  return run_script(s->db, s->path, sql, err, errlen);
}

/* }====================================================== */

/* {====================================================== statements */

void store_result_init (store_result *res) {
  memset(res, 0, sizeof *res);
}

void store_result_free (store_result *res) {
  size_t i, n;
  int c;
  if (res == NULL) return;
  n = res->nrows * (size_t)res->ncols;
  for (i = 0; i < n; i++)
    if (res->vals[i].type == STORE_TEXT || res->vals[i].type == STORE_BLOB)
      free((char *)res->vals[i].s);
  free(res->vals);
  for (c = 0; c < res->ncols; c++) free(res->names[c]);
  free(res->names);
  store_result_init(res);
}

static int bind_params (sqlite3_stmt *st, const store_value *p, int n) {
  int i, rc = SQLITE_OK;
  if (n != sqlite3_bind_parameter_count(st)) return SQLITE_RANGE;
  for (i = 0; i < n && rc == SQLITE_OK; i++) {
    switch (p[i].type) {
      case STORE_NULL: rc = sqlite3_bind_null(st, i + 1); break;
      case STORE_INT: rc = sqlite3_bind_int64(st, i + 1, p[i].i); break;
      case STORE_REAL: rc = sqlite3_bind_double(st, i + 1, p[i].d); break;
      case STORE_TEXT:
        rc = sqlite3_bind_text64(st, i + 1, p[i].s, p[i].len, SQLITE_STATIC, SQLITE_UTF8);
        break;
      case STORE_BLOB: rc = sqlite3_bind_blob64(st, i + 1, p[i].s, p[i].len, SQLITE_STATIC); break;
    }
  }
  return rc;
}

static int take_names (sqlite3_stmt *st, store_result *res) {
  int c, n = sqlite3_column_count(st);
  if (n == 0) return 0;
  if ((res->names = calloc((size_t)n, sizeof *res->names)) == NULL) return -1;
  res->ncols = n;
  for (c = 0; c < n; c++) {
    const char *name = sqlite3_column_name(st, c);
    if ((res->names[c] = strdup(name ? name : "?")) == NULL) return -1;
  }
  return 0;
}

/* Copies column c of the current row; -1 when out of memory. */
static int take_value (sqlite3_stmt *st, int c, store_value *v) {
  memset(v, 0, sizeof *v);
  switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER: v->type = STORE_INT; v->i = sqlite3_column_int64(st, c); return 0;
    case SQLITE_FLOAT: v->type = STORE_REAL; v->d = sqlite3_column_double(st, c); return 0;
    case SQLITE_NULL: v->type = STORE_NULL; return 0;
    default: {
      int blob = sqlite3_column_type(st, c) == SQLITE_BLOB;
      const void *src = blob ? sqlite3_column_blob(st, c) : sqlite3_column_text(st, c);
      size_t len = (size_t)sqlite3_column_bytes(st, c);
      char *copy = malloc(len + 1);
      if (copy == NULL) return -1;
      if (len) memcpy(copy, src, len);
      copy[len] = '\0';
      v->type = blob ? STORE_BLOB : STORE_TEXT;
      v->s = copy;
      v->len = len;
      return 0;
    }
  }
}

static int take_row (sqlite3_stmt *st, store_result *res) {
  size_t need = (res->nrows + 1) * (size_t)res->ncols;
  int c;
  if (need > res->cap) {
    size_t ncap = res->cap ? res->cap * 2 : (size_t)res->ncols * 16;
    store_value *v;
    while (ncap < need) ncap *= 2;
    if ((v = realloc(res->vals, ncap * sizeof *v)) == NULL) return -1;
    res->vals = v;
    res->cap = ncap;
  }
  for (c = 0; c < res->ncols; c++) {
    if (take_value(st, c, &res->vals[res->nrows * (size_t)res->ncols + (size_t)c]) != 0) {
      while (c-- > 0) {       /* this row's copies so far */
        store_value *v = &res->vals[res->nrows * (size_t)res->ncols + (size_t)c];
        if (v->type == STORE_TEXT || v->type == STORE_BLOB) free((char *)v->s);
      }
      return -1;
    }
  }
  res->nrows++;
  return 0;
}

/* Only blanks and semicolons may follow the statement. */
static int only_blanks (const char *tail) {
  for (; tail && *tail; tail++)
    if (*tail != ';' && *tail != ' ' && *tail != '\t' && *tail != '\n' && *tail != '\r')
      return 0;
  return 1;
}

store_status store_exec (store *s, const char *sql, const store_value *params,
                         int nparams, store_result *res, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, &tail);
  if (rc != SQLITE_OK) return fail(s->db, s->path, rc, err, errlen);
  if (st == NULL || !only_blanks(tail)) {
    sqlite3_finalize(st);
    set_err(err, errlen, "%s: %s", s->path, st == NULL ? "empty statement"
            : "one statement at a time (found more after the first)");
    return STORE_ESQL;
  }
  if ((rc = bind_params(st, params, nparams)) != SQLITE_OK) {
    if (rc == SQLITE_RANGE)
      set_err(err, errlen, "%s: the statement takes %d parameter(s), %d given", s->path,
              sqlite3_bind_parameter_count(st), nparams);
    else
      fail(s->db, s->path, rc, err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_RANGE ? STORE_ESQL : status_of(rc);
  }
  if (res && take_names(st, res) != 0) rc = SQLITE_NOMEM;
  else
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      if (res && res->ncols > 0 && take_row(st, res) != 0) { rc = SQLITE_NOMEM; break; }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  if (rc != SQLITE_OK) {
    store_status out = fail(s->db, s->path, rc, err, errlen);
    if (rc == SQLITE_NOMEM) set_err(err, errlen, "%s: out of memory", s->path);
    sqlite3_finalize(st);
    return out;
  }
  if (res) {
    res->changes = sqlite3_stmt_readonly(st) ? 0 : sqlite3_changes64(s->db);
    res->last_id = sqlite3_last_insert_rowid(s->db);
  }
  sqlite3_finalize(st);
  return STORE_OK;
}

/* }====================================================== */

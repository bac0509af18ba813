/*
** store.h — the state store's C core (no Lua): one SQLite file holding
** jobs, their runs, playbook key/value state and the audit log (DESIGN.md,
** "State"). The Lua binding (binding.c, `require "ato.storedb"`) runs
** every call below in libuv's thread pool; the facade `ato.store`
** (stdlib/ato/store.lua) adds JSON values, transactions and the default
** database.
**
** Files. store_open creates missing parent directories (mode 0700) and the
** database file (mode 0600; an existing file readable by others is brought
** back to 0600, since it holds playbook state and the audit log). SQLite
** gives the -wal and -shm files the database's mode. The connection runs in
** WAL mode with synchronous=FULL: a commit is on disk when it returns, so a
** claimed job run or a recorded run outcome survives a crash or a power
** cut, which is what the scheduler's "lose nothing" needs; writes are rare
** enough that the extra fsync does not matter (batch them in a transaction
** when they are not).
**
** Schema. PRAGMA user_version is the schema version; store_open applies
** the missing migrations (each in its own IMMEDIATE transaction, so a crash
** leaves the file at one version or the next) and refuses a file whose
** version is newer than STORE_SCHEMA_VERSION, without touching it.
**
** Errors. Every failure fills err with one line that names the file and
** says what is wrong, and returns a store_status that the binding turns
** into an error kind: a locked database (another process holds the write
** lock longer than the busy timeout; SQLite's busy handler retries with
** growing sleeps meanwhile), a corrupt or non-database file, a read-only
** file or directory, a full disk, a constraint, bad SQL.
**
** Threads. A store is used by one thread at a time (the binding serialises
** its calls); store_interrupt may be called from any thread.
*/
#ifndef ATO_STORE_H
#define ATO_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1
#define STORE_BUSY_MS 5000         /* default busy timeout */

typedef enum {
  STORE_OK = 0,
  STORE_EBUSY,        /* locked past the busy timeout */
  STORE_ECORRUPT,     /* malformed database or not a database */
  STORE_EREADONLY,    /* read-only file, directory or file system */
  STORE_EFULL,        /* disk or quota full */
  STORE_ECONSTRAINT,  /* UNIQUE, NOT NULL, CHECK, ... */
  STORE_ESCHEMA,      /* schema newer than this build knows */
  STORE_EOPEN,        /* cannot create or open the file */
  STORE_EINTERRUPT,   /* store_interrupt stopped the statement */
  STORE_ENOMEM,
  STORE_EIO,
  STORE_ESQL          /* bad SQL, wrong parameter count, misuse */
} store_status;

/* "busy", "corrupt", ...: the error kind of a status, for ato.err. */
const char *store_status_kind (store_status st);

typedef enum { STORE_NULL, STORE_INT, STORE_REAL, STORE_TEXT, STORE_BLOB } store_type;

/* One parameter or column value. Text and blob bytes are not terminated
   in parameters; in results they are owned by the result and terminated. */
typedef struct store_value {
  store_type type;
  int64_t i;
  double d;
  const char *s;
  size_t len;
} store_value;

/* The rows of one statement: vals[row * ncols + col]. */
typedef struct store_result {
  int ncols;
  char **names;
  size_t nrows, cap;
  store_value *vals;
  int64_t changes;            /* rows changed by an INSERT/UPDATE/DELETE */
  int64_t last_id;            /* rowid of the last INSERT on this connection */
} store_result;

typedef struct store store;

typedef struct store_options {
  int busy_ms;                /* 0: STORE_BUSY_MS */
  int readonly;               /* open an existing file for reading only */
} store_options;

/* Opens (creating if needed) and migrates the database at path; NULL with
   err and *status on failure. opt may be NULL. */
store *store_open (const char *path, const store_options *opt,
                   store_status *status, char *err, size_t errlen);
void store_close (store *s);
const char *store_path (const store *s);
int store_schema_version (const store *s);

/*
** Runs ONE SQL statement with parameters params[0, nparams) bound to ?1..?n
** and collects its rows into res (store_result_free releases them; res may
** be NULL to discard rows). Trailing blanks and semicolons are allowed, a
** second statement is an error.
*/
store_status store_exec (store *s, const char *sql, const store_value *params,
                         int nparams, store_result *res, char *err, size_t errlen);

/* Runs several statements with no parameters and no rows (schema, BEGIN). */
store_status store_exec_script (store *s, const char *sql, char *err, size_t errlen);

/* 1 inside a transaction (BEGIN without COMMIT/ROLLBACK yet). */
int store_in_transaction (store *s);

/* Makes the running statement stop with STORE_EINTERRUPT; any thread. */
void store_interrupt (store *s);

void store_result_init (store_result *res);
void store_result_free (store_result *res);

#endif

/*
** test_store_core.c: the state store's C core without Lua, on real files
** in a fresh temporary directory: creation and modes, migration to the
** current schema, statements with parameters and typed results, the
** one-statement rule, constraint errors, a schema newer than the build,
** a read-only open, and a file that is not a database.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static char dir[64];
static char err[1024];

static int make_dir (void **state) {
  (void)state;
  strcpy(dir, "/tmp/ato-store-test.XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir (void **state) {
  char cmd[128];
  (void)state;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of (const char *name) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

static store *open_ok (const char *name) {
  store_status st;
  store *s = store_open(path_of(name), NULL, &st, err, sizeof err);
  if (s == NULL) fail_msg("store_open: %s", err);
  assert_int_equal(st, STORE_OK);
  return s;
}

static store_value text (const char *s) {
  store_value v = {STORE_TEXT, 0, 0, s, strlen(s)};
  return v;
}

static store_value integer (int64_t i) {
  store_value v = {STORE_INT, i, 0, NULL, 0};
  return v;
}

static void test_creates_and_migrates (void **state) {
  struct stat sb;
  store *s;
  store_result res;
  (void)state;
  s = open_ok("sub/dir/a.db");
  assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
  assert_int_equal(stat(path_of("sub/dir/a.db"), &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(stat(path_of("sub"), &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  store_result_init(&res);
  assert_int_equal(store_exec(s, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                              NULL, 0, &res, err, sizeof err), STORE_OK);
  assert_int_equal(res.nrows, 4);
  assert_string_equal(res.vals[0].s, "audit");
  assert_string_equal(res.vals[1].s, "jobs");
  assert_string_equal(res.vals[2].s, "kv");
  assert_string_equal(res.vals[3].s, "runs");
  store_result_free(&res);
  store_close(s);
  s = open_ok("sub/dir/a.db");            /* reopening migrates nothing */
  assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
  store_close(s);
}

static void test_params_and_types (void **state) {
  store *s = open_ok("types.db");
  store_result res;
  store_value p[3];
  (void)state;
  p[0] = text("k");
  p[1] = text("v\0w");
  p[1].len = 3;                           /* embedded NUL survives */
  p[2] = integer(42);
  assert_int_equal(store_exec(s, "INSERT INTO kv VALUES (?1, ?2, ?3)", p, 3, NULL, err, sizeof err),
                   STORE_OK);
  store_result_init(&res);
  assert_int_equal(store_exec(s, "SELECT value, updated_at, 1.5 AS f, NULL AS n, x'00ff' AS b FROM kv",
                              NULL, 0, &res, err, sizeof err), STORE_OK);
  assert_int_equal(res.nrows, 1);
  assert_int_equal(res.ncols, 5);
  assert_string_equal(res.names[2], "f");
  assert_int_equal(res.vals[0].type, STORE_TEXT);
  assert_int_equal(res.vals[0].len, 3);
  assert_memory_equal(res.vals[0].s, "v\0w", 3);
  assert_int_equal(res.vals[1].type, STORE_REAL);   /* REAL affinity: 42 -> 42.0 */
  assert_true(res.vals[1].d == 42.0);
  assert_int_equal(res.vals[2].type, STORE_REAL);
  assert_true(res.vals[2].d == 1.5);
  assert_int_equal(res.vals[3].type, STORE_NULL);
  assert_int_equal(res.vals[4].type, STORE_BLOB);
  assert_int_equal(res.vals[4].len, 2);
  store_result_free(&res);
  /* a second INSERT of the same key breaks the primary key */
  assert_int_equal(store_exec(s, "INSERT INTO kv VALUES (?1, ?2, ?3)", p, 3, NULL, err, sizeof err),
                   STORE_ECONSTRAINT);
  assert_non_null(strstr(err, "UNIQUE"));
  assert_non_null(strstr(err, path_of("types.db")));
  store_close(s);
}

static void test_statement_rules (void **state) {
  store *s = open_ok("rules.db");
  store_value one = integer(1);
  (void)state;
  assert_int_equal(store_exec(s, "SELECT 1; SELECT 2", NULL, 0, NULL, err, sizeof err), STORE_ESQL);
  assert_non_null(strstr(err, "one statement at a time"));
  assert_int_equal(store_exec(s, "SELECT 1 ;  \n", NULL, 0, NULL, err, sizeof err), STORE_OK);
  assert_int_equal(store_exec(s, "SELECT ?1, ?2", &one, 1, NULL, err, sizeof err), STORE_ESQL);
  assert_non_null(strstr(err, "takes 2 parameter(s), 1 given"));
  assert_int_equal(store_exec(s, "   ", NULL, 0, NULL, err, sizeof err), STORE_ESQL);
  assert_int_equal(store_exec(s, "SELEC 1", NULL, 0, NULL, err, sizeof err), STORE_ESQL);
  assert_null(strchr(err, '\n'));
  store_close(s);
}

static void test_newer_schema_refused (void **state) {
  store *s = open_ok("newer.db");
  store_status st;
  (void)state;
  assert_int_equal(store_exec_script(s, "PRAGMA user_version = 7", err, sizeof err), STORE_OK);
  store_close(s);
  assert_null(store_open(path_of("newer.db"), NULL, &st, err, sizeof err));
  assert_int_equal(st, STORE_ESCHEMA);
  assert_non_null(strstr(err, "schema version 7 is newer"));
  assert_string_equal(store_status_kind(st), "schema");
}

static void test_readonly_open (void **state) {
  store_options ro = {0, 1};
  store_status st;
  store *s = open_ok("ro.db");
  store_value p[3];
  (void)state;
  store_close(s);
  s = store_open(path_of("ro.db"), &ro, &st, err, sizeof err);
  assert_non_null(s);
  p[0] = text("k"); p[1] = text("v"); p[2] = integer(1);
  assert_int_equal(store_exec(s, "INSERT INTO kv VALUES (?1, ?2, ?3)", p, 3, NULL, err, sizeof err),
                   STORE_EREADONLY);
  store_close(s);
  /* a missing file is not created by a read-only open */
  assert_null(store_open(path_of("missing.db"), &ro, &st, err, sizeof err));
  assert_int_equal(st, STORE_EOPEN);
  assert_int_equal(access(path_of("missing.db"), F_OK), -1);
}

static void test_not_a_database (void **state) {
  FILE *f = fopen(path_of("junk.db"), "w");
  store_status st;
  int i;
  (void)state;
  assert_non_null(f);
  for (i = 0; i < 300; i++) fputs("this is not a database\n", f);
  fclose(f);
  assert_null(store_open(path_of("junk.db"), NULL, &st, err, sizeof err));
  assert_int_equal(st, STORE_ECORRUPT);
  assert_non_null(strstr(err, "file is not a database"));
  assert_non_null(strstr(err, path_of("junk.db")));
}

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_creates_and_migrates),
    cmocka_unit_test(test_params_and_types),
    cmocka_unit_test(test_statement_rules),
    cmocka_unit_test(test_newer_schema_refused),
    cmocka_unit_test(test_readonly_open),
    cmocka_unit_test(test_not_a_database),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}

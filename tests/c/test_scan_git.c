/*
** test_scan_git.c: the git-history source of the scanner (bindings/scan/
** git.c) on real repositories built with the git CLI in a temporary
** directory: first commits and paths, refs of every kind, stashes,
** deduplication, unreachable objects, packs, bare and shallow clones,
** broken objects, and reading from several threads against git cat-file.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "git.h"

static char base[64];           /* the temporary directory of this run */
static long tick = 1700000000;  /* commit dates: one minute per command */

/* {====================================================== shell */

static char *vformat (const char *f, va_list ap) {
  va_list aq;
  int n;
  char *s;
  va_copy(aq, ap);
  n = vsnprintf(NULL, 0, f, aq);
  va_end(aq);
  assert_true(n >= 0);
  s = malloc((size_t)n + 1);
  assert_non_null(s);
  vsnprintf(s, (size_t)n + 1, f, ap);
  return s;
}

static char *format (const char *f, ...) {
  va_list ap;
  char *s;
  va_start(ap, f);
  s = vformat(f, ap);
  va_end(ap);
  return s;
}

/* cmd in dir, with this command's dates (offset +02:00) exported. */
static char *command (const char *dir, const char *cmd) {
  tick += 60;
  return format("cd '%s' && export GIT_AUTHOR_DATE='%ld +0200' "
                "GIT_COMMITTER_DATE='%ld +0200' && { %s; }",
                dir, tick, tick, cmd);
}

/* Runs a shell command in dir; it must succeed. */
static void sh (const char *dir, const char *f, ...) {
  va_list ap;
  char *cmd, *full;
  int rc;
  va_start(ap, f);
  cmd = vformat(f, ap);
  va_end(ap);
  full = command(dir, cmd);
  rc = system(full);
  if (rc != 0) fprintf(stderr, "# failed (%d): %s\n", rc, cmd);
  assert_int_equal(rc, 0);
  free(full);
  free(cmd);
}

/* Output of a shell command in dir (binary-safe, *len bytes). */
static char *sh_out (const char *dir, size_t *len, const char *f, ...) {
  va_list ap;
  char *cmd, *full, *buf = NULL;
  size_t n = 0, cap = 0, got;
  FILE *p;
  va_start(ap, f);
  cmd = vformat(f, ap);
  va_end(ap);
  full = command(dir, cmd);
  p = popen(full, "r");
  assert_non_null(p);
  do {
    if (cap - n < 65536) {
      cap = cap ? 2 * cap : 65536;
      buf = realloc(buf, cap + 1);
      assert_non_null(buf);
    }
    got = fread(buf + n, 1, cap - n, p);
    n += got;
  } while (got > 0);
  assert_int_equal(pclose(p), 0);
  buf[n] = '\0';
  if (len != NULL) *len = n;
  free(full);
  free(cmd);
  return buf;
}

/* One line of output, without its newline. */
static char *line (const char *dir, const char *f, ...) {
  va_list ap;
  char *cmd, *out;
  size_t n;
  va_start(ap, f);
  cmd = vformat(f, ap);
  va_end(ap);
  out = sh_out(dir, &n, "%s", cmd);
  while (n > 0 && out[n - 1] == '\n') out[--n] = '\0';
  free(cmd);
  return out;
}

static void write_file (const char *dir, const char *name, const void *data,
                        size_t len) {
  char *path = format("%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
  free(path);
}

static void put (const char *dir, const char *name, const char *text) {
  write_file(dir, name, text, strlen(text));
}

/* A new repository base/name (work tree), on branch main. */
static char *new_repo (const char *name) {
  char *dir = format("%s/%s", base, name);
  sh(base, "git init -q -b main '%s'", name);
  return dir;
}

/* Commits everything in the work tree; its id. */
static char *commit (const char *dir, const char *msg) {
  sh(dir, "git add -A && git commit -q --allow-empty -m '%s'", msg);
  return line(dir, "git rev-parse HEAD");
}

static char *blob_id (const char *dir, const char *text) {
  return line(dir, "printf '%%s' '%s' | git hash-object --stdin", text);
}

/* }====================================================== */

/* {====================================================== checks */

static scan_git *load (const char *dir, int flags) {
  scan_git *g;
  char err[512];
  if (scan_git_open(dir, &g, err, sizeof err) < 0) fail_msg("open: %s", err);
  if (scan_git_enumerate(g, flags, err, sizeof err) < 0)
    fail_msg("enumerate: %s", err);
  return g;
}

/* Index of the blob with hex id, -1 if absent; it must not be twice. */
static long find (const scan_git *g, const char *hex) {
  size_t n, i;
  const scan_git_blob *b = scan_git_blobs(g, &n);
  long at = -1;
  for (i = 0; i < n; i++) {
    char h[41];
    scan_git_oid_hex(b[i].oid, h);
    if (strcmp(h, hex) == 0) {
      assert_int_equal(at, -1);
      at = (long)i;
    }
  }
  return at;
}

static const scan_git_blob *blob (const scan_git *g, const char *hex) {
  size_t n;
  long i = find(g, hex);
  if (i < 0) fail_msg("blob %s not listed", hex);
  return &scan_git_blobs(g, &n)[i];
}

/* The blob's first commit (hex) and path. */
static void check_blob (const scan_git *g, const char *hex,
                        const char *commit_id, const char *path) {
  const scan_git_blob *b = blob(g, hex);
  size_t nc;
  const scan_git_commit *c = scan_git_commits(g, &nc);
  if (commit_id == NULL)
    assert_int_equal(b->commit, -1);
  else {
    assert_true(b->commit >= 0 && (size_t)b->commit < nc);
    assert_string_equal(c[b->commit].id, commit_id);
  }
  if (path == NULL)
    assert_null(b->path);
  else {
    assert_non_null(b->path);
    assert_string_equal(b->path, path);
  }
}

static int cmp_str (const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Our blob ids, sorted, one a line; they must be unique. */
static char *our_set (const scan_git *g) {
  size_t n, i;
  const scan_git_blob *b = scan_git_blobs(g, &n);
  char **hex = calloc(n + 1, sizeof *hex), *out = calloc(n * 41 + 1, 1);
  assert_non_null(hex);
  assert_non_null(out);
  for (i = 0; i < n; i++) {
    hex[i] = malloc(41);
    scan_git_oid_hex(b[i].oid, hex[i]);
  }
  qsort(hex, n, sizeof *hex, cmp_str);
  for (i = 0; i < n; i++) {
    if (i > 0) assert_string_not_equal(hex[i - 1], hex[i]);
    memcpy(out + 41 * i, hex[i], 40);
    out[41 * i + 40] = '\n';
  }
  for (i = 0; i < n; i++) free(hex[i]);
  free(hex);
  return out;
}

/* What git says: blobs reachable from all refs, HEAD and stash entries;
   with all, every blob in the object database. */
static char *git_set (const char *dir, int all) {
  return sh_out(dir, NULL, all
    ? "git cat-file --batch-all-objects --batch-check='%%(objecttype) "
      "%%(objectname)' | awk '$1 == \"blob\" {print $2}' | LC_ALL=C sort"
    : "git rev-list --objects --no-object-names --all "
      "$(git stash list --format=%%H 2>/dev/null) | "
      "git cat-file --batch-check='%%(objecttype) %%(objectname)' | "
      "awk '$1 == \"blob\" {print $2}' | LC_ALL=C sort");
}

static void check_set (const scan_git *g, const char *dir, int all) {
  char *ours = our_set(g), *theirs = git_set(dir, all);
  assert_string_equal(ours, theirs);
  free(ours);
  free(theirs);
}

static void check_clean (const scan_git *g) {
  scan_git_progress p;
  size_t n;
  scan_git_get_progress(g, &p);
  if (p.warnings != 0) fail_msg("warning: %s", scan_git_warning(g));
  assert_null(scan_git_warning(g));
  scan_git_blobs(g, &n);
  assert_int_equal(p.blobs, n);
}

/* }====================================================== */

/* {====================================================== tests */

/* a.txt added in 1, changed in 3, removed in 5: each version once. */
static void test_history (void **state) {
  char *dir = new_repo("history"), *c[6], *a1, *a2, *keep, *b, *d;
  scan_git *g;
  scan_git_progress p;
  const scan_git_commit *cs;
  size_t n, nc;
  (void)state;
  put(dir, "a.txt", "alpha v1\n");
  put(dir, "keep.txt", "keep\n");
  c[1] = commit(dir, "one");
  put(dir, "b.txt", "bravo\n");
  c[2] = commit(dir, "two");
  put(dir, "a.txt", "alpha v2\n");
  c[3] = commit(dir, "three");
  sh(dir, "mkdir -p dir/sub && printf 'delta\\n' > dir/sub/d.txt");
  c[4] = commit(dir, "four");
  sh(dir, "git rm -q a.txt");
  c[5] = commit(dir, "five");
  a1 = blob_id(dir, "alpha v1\n");
  a2 = blob_id(dir, "alpha v2\n");
  keep = blob_id(dir, "keep\n");
  b = blob_id(dir, "bravo\n");
  d = blob_id(dir, "delta\n");

  g = load(dir, 0);
  check_clean(g);
  check_set(g, dir, 0);
  scan_git_blobs(g, &n);
  assert_int_equal(n, 5);
  check_blob(g, a1, c[1], "a.txt");
  check_blob(g, keep, c[1], "keep.txt");
  check_blob(g, b, c[2], "b.txt");
  check_blob(g, a2, c[3], "a.txt");
  check_blob(g, d, c[4], "dir/sub/d.txt");
  assert_int_equal(find(g, a1), 0);         /* discovery order */
  assert_int_equal(find(g, d), 4);
  /* commits 1 to 4 introduced blobs, 5 only removed one */
  cs = scan_git_commits(g, &nc);
  assert_int_equal(nc, 4);
  assert_string_equal(cs[0].id, c[1]);
  assert_string_equal(cs[0].author_name, "Ato Tester");
  assert_string_equal(cs[0].author_email, "ato@example.test");
  assert_int_equal(cs[0].author_offset, 120);
  assert_true(cs[0].author_time > 1700000000);
  assert_true(cs[0].author_time < cs[1].author_time);
  scan_git_get_progress(g, &p);
  assert_int_equal(p.commits, 5);
  assert_int_equal(p.walked, 5);
  assert_int_equal(p.trees, 7);   /* 5 root trees, dir, dir/sub */
  scan_git_close(g);
  for (n = 1; n <= 5; n++) free(c[n]);
  free(a1); free(a2); free(keep); free(b); free(d); free(dir);
}

/* Side branches, tags (annotated, nested, on a tree, on a blob), remotes,
   notes, a detached HEAD, a gitlink. */
static void test_refs (void **state) {
  char *dir = new_repo("refs"), *c1, *cs, *ct, *cr, *c2, *cd, *cg;
  char *side, *tagged, *remote, *note, *det, *bt, *inner, *tree, *notes;
  scan_git *g;
  (void)state;
  put(dir, "base.txt", "base\n");
  c1 = commit(dir, "base");
  sh(dir, "git checkout -q -b side");
  put(dir, "side.txt", "only on side\n");
  cs = commit(dir, "side");
  sh(dir, "git checkout -q -b tmp main");
  put(dir, "tagged.txt", "only through a tag\n");
  ct = commit(dir, "tagged");
  sh(dir, "git tag -a -m one v1 HEAD && "
          "git -c advice.nestedTag=false tag -a -m two v1-again v1");
  sh(dir, "git checkout -q -B tmp main");
  put(dir, "remote.txt", "only on a remote\n");
  cr = commit(dir, "remote");
  sh(dir, "git update-ref refs/remotes/origin/feature HEAD");
  sh(dir, "git checkout -q main && git branch -q -D tmp");
  put(dir, "main.txt", "main\n");
  c2 = commit(dir, "main");
  sh(dir, "git notes add -m 'a note' HEAD");
  sh(dir, "git update-index --add --cacheinfo "
          "160000,0123456789abcdef0123456789abcdef01234567,sub");
  sh(dir, "git commit -q -m gitlink");
  cg = line(dir, "git rev-parse HEAD");
  bt = line(dir, "printf 'tagged blob\\n' | git hash-object -w --stdin");
  sh(dir, "git tag blobtag %s", bt);
  inner = line(dir, "printf 'in a tagged tree\\n' | git hash-object -w --stdin");
  tree = line(dir, "printf '100644 blob %s\\tinner.txt\\n' | git mktree", inner);
  sh(dir, "git tag -a -m tree treetag %s", tree);
  sh(dir, "git checkout -q --detach");
  put(dir, "det.txt", "detached\n");
  cd = commit(dir, "detached");
  side = blob_id(dir, "only on side\n");
  tagged = blob_id(dir, "only through a tag\n");
  remote = blob_id(dir, "only on a remote\n");
  note = blob_id(dir, "a note\n");
  det = blob_id(dir, "detached\n");
  notes = line(dir, "git rev-parse refs/notes/commits");

  g = load(dir, 0);
  check_clean(g);
  check_set(g, dir, 0);
  check_blob(g, side, cs, "side.txt");
  check_blob(g, tagged, ct, "tagged.txt");
  check_blob(g, remote, cr, "remote.txt");
  check_blob(g, note, notes, c2);
  check_blob(g, det, cd, "det.txt");
  check_blob(g, bt, NULL, NULL);
  check_blob(g, inner, NULL, "inner.txt");
  scan_git_close(g);
  free(c1); free(cs); free(ct); free(cr); free(c2); free(cd); free(cg);
  free(side); free(tagged); free(remote); free(note); free(det); free(bt);
  free(inner); free(tree); free(notes); free(dir);
}

/* stash@{0} (index, work tree, untracked) and stash@{1}, only in the
   reflog of refs/stash. */
static void test_stash (void **state) {
  char *dir = new_repo("stash"), *s0, *s1, *s0i, *s0u, *one, *two, *staged;
  char *untracked;
  scan_git *g;
  (void)state;
  put(dir, "f.txt", "clean\n");
  free(commit(dir, "clean"));
  put(dir, "f.txt", "stash one\n");
  sh(dir, "git stash -q");
  put(dir, "f.txt", "stash two\n");
  put(dir, "g.txt", "staged\n");
  sh(dir, "git add g.txt");
  put(dir, "u.txt", "untracked\n");
  sh(dir, "git stash -q -u");
  s0 = line(dir, "git rev-parse stash@{0}");
  s1 = line(dir, "git rev-parse stash@{1}");
  s0i = line(dir, "git rev-parse stash@{0}^2");
  s0u = line(dir, "git rev-parse stash@{0}^3");
  one = blob_id(dir, "stash one\n");
  two = blob_id(dir, "stash two\n");
  staged = blob_id(dir, "staged\n");
  untracked = blob_id(dir, "untracked\n");

  g = load(dir, 0);
  check_clean(g);
  check_set(g, dir, 0);
  check_blob(g, one, s1, "f.txt");
  check_blob(g, two, s0, "f.txt");
  /* the index commit is a parent of the stash commit: it comes first */
  check_blob(g, staged, s0i, "g.txt");
  check_blob(g, untracked, s0u, "u.txt");
  scan_git_close(g);
  free(s0i); free(s0u); free(s0); free(s1);
  free(one); free(two); free(staged); free(untracked);
  free(dir);
}

/*
** Two branches make the same content: the older commit by date has it,
** whichever branch is found first. A merge commit may introduce content
** of its own.
*/
static void test_merge (void **state) {
  char *dir = new_repo("merge"), *m1, *f1, *mg, *shared, *merged;
  scan_git *g;
  (void)state;
  put(dir, "base.txt", "base\n");
  free(commit(dir, "base"));
  sh(dir, "git branch feat");
  put(dir, "y.txt", "shared\n");
  m1 = commit(dir, "on main, older");
  sh(dir, "git checkout -q feat");
  put(dir, "x.txt", "shared\n");
  f1 = commit(dir, "on feat, newer");
  sh(dir, "git checkout -q main && "
          "git merge -q --no-ff --no-commit feat >/dev/null 2>&1");
  put(dir, "m.txt", "in merge\n");
  mg = commit(dir, "merge");
  shared = blob_id(dir, "shared\n");
  merged = blob_id(dir, "in merge\n");
  g = load(dir, 0);
  check_clean(g);
  check_set(g, dir, 0);
  check_blob(g, shared, m1, "y.txt");
  check_blob(g, merged, mg, "m.txt");
  scan_git_close(g);
  free(m1); free(f1); free(mg); free(shared); free(merged); free(dir);
}

/* The same content in 50 commits, under two paths, removed and re-added. */
static void test_duplicates (void **state) {
  char *dir = new_repo("dups"), *first = NULL, *dup;
  scan_git *g;
  size_t n;
  int i;
  (void)state;
  for (i = 1; i <= 50; i++) {
    char num[16];
    snprintf(num, sizeof num, "%d\n", i);
    put(dir, "n.txt", num);
    if (i != 20) put(dir, "dup.txt", "same content\n");
    else sh(dir, "rm dup.txt");
    if (i == 10) sh(dir, "mkdir -p copy && cp dup.txt copy/dup.txt");
    if (i == 1) first = commit(dir, "first");
    else free(commit(dir, "next"));
  }
  dup = blob_id(dir, "same content\n");

  g = load(dir, 0);
  check_clean(g);
  check_set(g, dir, 0);
  scan_git_blobs(g, &n);
  assert_int_equal(n, 51);
  check_blob(g, dup, first, "dup.txt");
  scan_git_close(g);
  free(first); free(dup); free(dir);
}

/* A blob never committed and a commit dropped by reset --hard (still in
   the reflog and ORIG_HEAD, which are not refs). */
static char *make_unreachable (const char *name) {
  char *dir = new_repo(name);
  put(dir, "a.txt", "kept\n");
  free(commit(dir, "kept"));
  sh(dir, "printf 'never committed\\n' | git hash-object -w --stdin >/dev/null");
  put(dir, "dropped.txt", "dropped\n");
  free(commit(dir, "dropped"));
  sh(dir, "git reset -q --hard HEAD~1");
  return dir;
}

static void test_unreachable (void **state) {
  char *dir = make_unreachable("unreachable");
  char *never = blob_id(dir, "never committed\n");
  char *dropped = blob_id(dir, "dropped\n");
  char *kept = blob_id(dir, "kept\n"), *head = line(dir, "git rev-parse HEAD");
  const scan_git_blob *b;
  scan_git *g;
  (void)state;
  g = load(dir, 0);
  check_clean(g);
  check_set(g, dir, 0);
  assert_int_equal(find(g, never), -1);
  assert_int_equal(find(g, dropped), -1);
  scan_git_close(g);

  g = load(dir, SCAN_GIT_ALL_OBJECTS);
  check_clean(g);
  check_set(g, dir, 1);
  check_blob(g, never, NULL, NULL);
  check_blob(g, dropped, NULL, NULL);
  b = blob(g, never);
  assert_int_equal(b->size, 16);
  check_blob(g, kept, head, "a.txt");
  scan_git_close(g);
  free(kept); free(head); free(never); free(dropped); free(dir);
}

/* The same list, in the same order, loose or packed. */
static void check_same (const scan_git *a, const scan_git *b) {
  size_t na, nb, nca, ncb, i;
  const scan_git_blob *ba = scan_git_blobs(a, &na), *bb = scan_git_blobs(b, &nb);
  const scan_git_commit *ca = scan_git_commits(a, &nca);
  const scan_git_commit *cb = scan_git_commits(b, &ncb);
  assert_int_equal(na, nb);
  for (i = 0; i < na; i++) {
    assert_memory_equal(ba[i].oid, bb[i].oid, 20);
    assert_int_equal(ba[i].commit, bb[i].commit);
    if (ba[i].commit >= 0)
      assert_string_equal(ca[ba[i].commit].id, cb[bb[i].commit].id);
    if (ba[i].path == NULL) assert_null(bb[i].path);
    else assert_string_equal(ba[i].path, bb[i].path);
  }
  assert_int_equal(nca, ncb);
}

static void test_packed (void **state) {
  char *dir = make_unreachable("loose"), *packed = format("%s/packed", base);
  char *loose_all, *packed_all, *count;
  scan_git *a, *b;
  int i;
  (void)state;
  /* some history to pack, with deltas */
  for (i = 0; i < 30; i++) {
    sh(dir, "seq 1 %d > big.txt", 200 + i);
    free(commit(dir, "more"));
  }
  /* gc packs what refs reach (the reflog expires: the dates are old), then
     a second pack takes every object, unreachable ones too, and no loose
     object is left (some are now in two packs) */
  sh(base, "cp -a loose packed && cd packed && git gc -q && "
           "git cat-file --batch-all-objects --batch-check='%%(objectname)' | "
           "git pack-objects -q .git/objects/pack/pack >/dev/null && "
           "git prune-packed");
  count = line(packed, "git count-objects -v | grep -c '^count: 0$'");
  assert_string_equal(count, "1");
  free(count);

  a = load(dir, 0);
  b = load(packed, 0);
  check_clean(b);
  check_set(b, packed, 0);
  check_same(a, b);
  scan_git_close(a);
  scan_git_close(b);

  a = load(dir, SCAN_GIT_ALL_OBJECTS);
  b = load(packed, SCAN_GIT_ALL_OBJECTS);
  check_clean(b);
  check_set(b, packed, 1);
  loose_all = our_set(a);
  packed_all = our_set(b);
  assert_string_equal(loose_all, packed_all);
  scan_git_close(a);
  scan_git_close(b);
  free(loose_all); free(packed_all); free(packed); free(dir);
}

/* A bare clone; a .git directory named directly. */
static void test_bare (void **state) {
  char *src = format("%s/history", base), *bare = format("%s/bare.git", base);
  char *gitdir = format("%s/.git", src);
  scan_git *a, *b, *c;
  scan_git_reader *r;
  const char *data;
  size_t len, i, n;
  char err[512];
  (void)state;
  sh(base, "git clone -q --bare history bare.git");
  a = load(src, 0);
  b = load(bare, 0);
  c = load(gitdir, 0);
  check_clean(b);
  check_set(b, bare, 0);
  check_same(a, b);
  check_same(a, c);
  r = scan_git_reader_new(b, err, sizeof err);
  if (r == NULL) fail_msg("reader: %s", err);
  scan_git_blobs(b, &n);
  for (i = 0; i < n; i++)
    assert_int_equal(scan_git_read(r, i, &data, &len), 0);
  scan_git_reader_free(r);
  scan_git_close(a);
  scan_git_close(b);
  scan_git_close(c);
  free(src); free(bare); free(gitdir);
}

/* A shallow clone: history stops at the boundary, silently. */
static void test_shallow (void **state) {
  char *dir = format("%s/shallow", base), *dup, *head;
  scan_git *g;
  size_t n;
  (void)state;
  sh(base, "git clone -q --depth 1 file://%s/dups shallow", base);
  dup = blob_id(dir, "same content\n");
  head = line(dir, "git rev-parse HEAD");
  g = load(dir, 0);
  check_clean(g);
  check_set(g, dir, 0);
  scan_git_blobs(g, &n);
  assert_int_equal(n, 2);                 /* n.txt (50) and the duplicate */
  check_blob(g, dup, head, "copy/dup.txt");
  scan_git_close(g);
  free(head); free(dup); free(dir);
}

static void check_open_fails (const char *path) {
  scan_git *g = (scan_git *)1;
  char err[512] = "";
  assert_int_equal(scan_git_open(path, &g, err, sizeof err), -1);
  assert_null(g);
  if (strstr(err, path) == NULL)
    fail_msg("error does not name %s: %s", path, err);
}

static void test_not_a_repository (void **state) {
  char *empty = format("%s/empty", base), *missing = format("%s/missing", base);
  char *inside = format("%s/history/dir", base);
  (void)state;
  sh(base, "mkdir empty");
  check_open_fails(empty);
  check_open_fails(missing);
  check_open_fails(inside);     /* no search upwards */
  free(empty); free(missing); free(inside);
}

/* Empty repository, enumerate twice, cancel. */
static void test_misc (void **state) {
  char *dir = new_repo("nothing");
  scan_git *g;
  size_t n;
  char err[512];
  (void)state;
  g = load(dir, SCAN_GIT_ALL_OBJECTS);
  check_clean(g);
  scan_git_blobs(g, &n);
  assert_int_equal(n, 0);
  assert_int_equal(scan_git_enumerate(g, 0, err, sizeof err), -1);
  assert_non_null(strstr(err, "already"));
  scan_git_close(g);
  free(dir);

  dir = format("%s/history", base);
  assert_int_equal(scan_git_open(dir, &g, err, sizeof err), 0);
  scan_git_cancel(g);
  assert_int_equal(scan_git_enumerate(g, 0, err, sizeof err), -1);
  assert_non_null(strstr(err, "cancelled"));
  scan_git_close(g);
  free(dir);
  assert_int_equal(scan_git_threadsafe(), 1);   /* Debian's libgit2 */
}

static void read_ok (scan_git_reader *r, const scan_git *g, const char *hex,
                     const char *want) {
  const char *data;
  size_t len, size;
  if (scan_git_read(r, (size_t)find(g, hex), &data, &len) != 0)
    fail_msg("read %s: %s", hex, scan_git_reader_error(r));
  assert_int_equal(len, strlen(want));
  assert_memory_equal(data, want, len);
  assert_int_equal(scan_git_read_size(r, (size_t)find(g, hex), &size), 0);
  assert_int_equal(size, len);
}

static void read_fails (scan_git_reader *r, const scan_git *g, const char *hex) {
  const char *data;
  size_t len;
  assert_int_equal(scan_git_read(r, (size_t)find(g, hex), &data, &len), -1);
  assert_null(data);
  if (strstr(scan_git_reader_error(r), hex) == NULL)
    fail_msg("error does not name %s: %s", hex, scan_git_reader_error(r));
}

/*
** Damaged objects fail to read, one by one, and the reader goes on: a
** missing blob, a garbled loose one, a flipped byte in a pack; an object
** stored under another's id only with SCAN_GIT_VERIFY_HASHES. A missing
** tree is a warning of the enumeration.
*/
static void test_broken (void **state) {
  char *dir = new_repo("broken"), *good, *swapped, *gone, *garbled, *packed;
  char *other, *tree, *off;
  const char *w;
  scan_git *g;
  scan_git_reader *r;
  const char *data;
  size_t len;
  char err[512];
  int verify;
  (void)state;
  sh(dir, "seq 1 2000 > packed.txt && git add packed.txt && "
          "git commit -q -m p && git gc -q");
  put(dir, "good.txt", "good\n");
  put(dir, "swapped.txt", "swapped\n");
  put(dir, "gone.txt", "gone\n");
  put(dir, "garbled.txt", "garbled\n");
  sh(dir, "mkdir sub && printf 'under\\n' > sub/under.txt");
  free(commit(dir, "all"));
  good = blob_id(dir, "good\n");
  swapped = blob_id(dir, "swapped\n");
  gone = blob_id(dir, "gone\n");
  garbled = blob_id(dir, "garbled\n");
  packed = line(dir, "git rev-parse HEAD:packed.txt");
  other = line(dir, "printf 'other\\n' | git hash-object -w --stdin");
  tree = line(dir, "git rev-parse HEAD:sub");
  sh(dir, "cd .git/objects && chmod -R u+w . && cp %.2s/%s %.2s/%s && "
          "printf 'not zlib at all' > %.2s/%s && rm %.2s/%s %.2s/%s",
     other, other + 2, swapped, swapped + 2, garbled, garbled + 2,
     gone, gone + 2, tree, tree + 2);
  /* a byte in the middle of the packed blob's deflated data */
  off = line(dir, "git verify-pack -v .git/objects/pack/*.idx | "
                  "awk '$1 == \"%s\" {print $5 + int($4 / 2)}'", packed);
  sh(dir, "p=$(ls .git/objects/pack/*.pack) && chmod u+w $p && "
          "printf '\\377' | dd of=$p bs=1 seek=%s conv=notrunc status=none", off);

  for (verify = 0; verify <= 1; verify++) {
    g = load(dir, verify ? SCAN_GIT_VERIFY_HASHES : 0);
    w = scan_git_warning(g);
    assert_non_null(w);
    assert_non_null(strstr(w, tree));
    r = scan_git_reader_new(g, err, sizeof err);
    if (r == NULL) fail_msg("reader: %s", err);
    read_ok(r, g, good, "good\n");
    read_fails(r, g, gone);
    read_fails(r, g, garbled);
    read_fails(r, g, packed);
    if (verify) read_fails(r, g, swapped);
    else read_ok(r, g, swapped, "other\n");   /* as git cat-file does */
    assert_int_equal(scan_git_read(r, 1000, &data, &len), -1);
    read_ok(r, g, good, "good\n");
    scan_git_reader_free(r);
    scan_git_close(g);
  }
  free(good); free(swapped); free(gone); free(garbled); free(packed);
  free(other); free(tree); free(off); free(dir);
}

/* {------------------------------------------------------ threads */

typedef struct expect { char **data; size_t *len; size_t n; } expect;

typedef struct worker {
  const scan_git *g;
  const expect *want;
  size_t start;
  int failures, opened;
} worker;

static void *work (void *ud) {
  worker *w = ud;
  char err[512];
  scan_git_reader *r = scan_git_reader_new(w->g, err, sizeof err);
  size_t k;
  if (r == NULL) return NULL;
  w->opened = 1;
  for (k = 0; k < w->want->n; k++) {
    size_t i = (w->start + k) % w->want->n, len, size;
    const char *data;
    if (scan_git_read(r, i, &data, &len) != 0 || len != w->want->len[i] ||
        memcmp(data, w->want->data[i], len) != 0 ||
        scan_git_read_size(r, i, &size) != 0 || size != len)
      w->failures++;
  }
  scan_git_reader_free(r);
  return NULL;
}

/* Every blob's bytes according to git cat-file --batch. */
static void cat_all (const char *dir, const scan_git *g, expect *e) {
  size_t n, i, total;
  const scan_git_blob *b = scan_git_blobs(g, &n);
  char *list = format("%s/list", base), *out, *p;
  FILE *f = fopen(list, "w");
  assert_non_null(f);
  for (i = 0; i < n; i++) {
    char hex[41];
    scan_git_oid_hex(b[i].oid, hex);
    fprintf(f, "%s\n", hex);
  }
  fclose(f);
  out = sh_out(dir, &total, "git cat-file --batch < '%s'", list);
  e->n = n;
  e->data = calloc(n, sizeof *e->data);
  e->len = calloc(n, sizeof *e->len);
  for (i = 0, p = out; i < n; i++) {
    char hex[41], type[16];
    size_t len;
    assert_int_equal(sscanf(p, "%40s %15s %zu", hex, type, &len), 3);
    assert_string_equal(type, "blob");
    p = strchr(p, '\n') + 1;
    e->len[i] = len;
    e->data[i] = malloc(len + 1);
    memcpy(e->data[i], p, len);
    p += len + 1;
  }
  assert_true(p == out + total);
  free(out);
  free(list);
}

static void test_threads (void **state) {
  char *dir = new_repo("threads");
  unsigned char bin[4096];
  char *big = malloc(1 << 20);
  uint32_t x = 12345;
  pthread_t th[4];
  worker w[4];
  expect want;
  scan_git *g;
  size_t i;
  int k, verify;
  (void)state;
  for (i = 0; i < sizeof bin; i++) bin[i] = (unsigned char)i;
  for (i = 0; i < (1u << 20); i++) {
    x = x * 1103515245u + 12345u;
    big[i] = (char)('a' + (x >> 16) % 26);
  }
  write_file(dir, "empty", "", 0);
  write_file(dir, "bin", bin, sizeof bin);
  write_file(dir, "big", big, 1 << 20);
  free(commit(dir, "files"));
  for (k = 0; k < 60; k++) {
    char name[32], text[64];
    snprintf(name, sizeof name, "f%d.txt", k % 7);
    snprintf(text, sizeof text, "version %d of %s\n", k, name);
    put(dir, name, text);
    big[k * 1000] = '!';          /* a delta against the previous version */
    if (k % 10 == 0) write_file(dir, "big", big, 1 << 20);
    free(commit(dir, "step"));
  }
  sh(dir, "git gc -q");           /* half packed, half loose: */
  put(dir, "late.txt", "written after the pack\n");
  free(commit(dir, "late"));

  for (verify = 0; verify <= 1; verify++) {
    g = load(dir, verify ? SCAN_GIT_VERIFY_HASHES : 0);
    check_clean(g);
    check_set(g, dir, 0);
    cat_all(dir, g, &want);
    assert_true(want.n > 60);
    for (k = 0; k < 4; k++) {
      w[k].g = g;
      w[k].want = &want;
      w[k].start = (size_t)k * want.n / 4;
      w[k].failures = w[k].opened = 0;
      assert_int_equal(pthread_create(&th[k], NULL, work, &w[k]), 0);
    }
    for (k = 0; k < 4; k++) {
      assert_int_equal(pthread_join(th[k], NULL), 0);
      assert_int_equal(w[k].opened, 1);
      assert_int_equal(w[k].failures, 0);
    }
    for (i = 0; i < want.n; i++) free(want.data[i]);
    free(want.data);
    free(want.len);
    scan_git_close(g);
  }
  free(big);
  free(dir);
}

/* }------------------------------------------------------ */

/* }====================================================== */

static int setup (void **state) {
  (void)state;
  snprintf(base, sizeof base, "/tmp/ato-scan-git-XXXXXX");
  if (mkdtemp(base) == NULL) return -1;
  /* a git that reads no user or system configuration */
  setenv("HOME", base, 1);
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  setenv("GIT_CONFIG_COUNT", "2", 1);
  setenv("GIT_CONFIG_KEY_0", "gc.auto", 1);
  setenv("GIT_CONFIG_VALUE_0", "0", 1);
  setenv("GIT_CONFIG_KEY_1", "advice.detachedHead", 1);
  setenv("GIT_CONFIG_VALUE_1", "false", 1);
  setenv("GIT_AUTHOR_NAME", "Ato Tester", 1);
  setenv("GIT_AUTHOR_EMAIL", "ato@example.test", 1);
  setenv("GIT_COMMITTER_NAME", "Ato Committer", 1);
  setenv("GIT_COMMITTER_EMAIL", "committer@example.test", 1);
  return 0;
}

static int teardown (void **state) {
  char *cmd;
  int rc;
  (void)state;
  if (base[0] == '\0' || getenv("ATO_KEEP_TMP") != NULL) return 0;
  cmd = format("rm -rf '%s'", base);
  rc = system(cmd);
  free(cmd);
  return rc == 0 ? 0 : -1;
}

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_history),
    cmocka_unit_test(test_refs),
    cmocka_unit_test(test_stash),
    cmocka_unit_test(test_merge),
    cmocka_unit_test(test_duplicates),
    cmocka_unit_test(test_unreachable),
    cmocka_unit_test(test_packed),
    cmocka_unit_test(test_bare),
    cmocka_unit_test(test_shallow),
    cmocka_unit_test(test_not_a_repository),
    cmocka_unit_test(test_misc),
    cmocka_unit_test(test_broken),
    cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests_name("scan_git", tests, setup, teardown);
}

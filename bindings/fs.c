/*
** fs.c — `require "ato.fs"`: files and directories without blocking the
** loop thread. Every call checks its arguments, parks its task and queues
** ONE work item in libuv's thread pool that performs the whole operation
** with plain blocking POSIX calls (read = open + fstat + read loop + close;
** an atomic write = temp file + write loop + fchmod + fsync + rename + fsync
** of the directory). The after-work callback wakes the task; the resume
** function, back in Lua, turns the outcome into results. Work functions
** never touch Lua, and a request owns copies of all its strings.
**
** Ownership of a request (fs_req, plain malloc'd memory):
**  - while its task waits, a "box" userdata on the calling frame's stack
**    holds it: if pushing the results raises (out of memory), or the task
**    is woken and never resumed (shutdown), the box's __gc frees it;
**  - when the task stops waiting early (cancel, a timeout's cancel,
**    shutdown), the detach function takes it out of the box, marks it
**    detached and tries uv_cancel; from then on the thread-pool side owns
**    it and the after-work callback frees it. A running work item looks at
**    the flag between chunks and before an atomic write's rename, so a
**    cancelled read or write stops early and never leaves a temp file.
**    At shutdown the detach function can also come after completion: the
**    request is no longer in flight and is freed at once.
** No wait has a deadline, so a resume function always gets its op.
**
** Limit: nothing interrupts a system call. A read of a FIFO that has no
** writer (or a hung network mount) keeps one of libuv's pool threads (4
** by default) until the call returns, even after its task was cancelled,
** and the process waits for that thread when it exits.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <lauxlib.h>

#include "host.h"
#include "task.h"

#define BOX_META "ato.fs.request"
#define WALK_META "ato.fs.walk"

/* fs.read's default limit: 1 GiB. */
#define DEFAULT_MAX ((lua_Integer)1 << 30)

/* Bytes per read/write call: a cancelled transfer stops within one chunk. */
#define IO_CHUNK ((size_t)4 << 20)

/* First buffer for files whose size fstat does not tell (/proc, pipes). */
#define UNSIZED_CHUNK ((size_t)64 << 10)

/* Names tried for an atomic write's temp file before giving up. */
#define TEMP_TRIES 100

/* Outcomes that are not an errno. */
#define ERR_TOO_LARGE 1     /* the file exceeds fs.read's max */
#define ERR_NOT_REGULAR 2   /* fs.write over a device, a FIFO, a socket */

/* {====================================================== requests */

enum { T_UNKNOWN, T_FILE, T_DIR, T_LINK, T_FIFO, T_SOCKET, T_CHAR, T_BLOCK };

static const char *const type_names[] = {
  "unknown", "file", "directory", "link", "fifo", "socket", "char", "block"
};

typedef struct fs_entry {
  char *name;
  unsigned char type;       /* T_*, of the entry itself (never followed) */
  unsigned char target;     /* T_* of a link's target (walk, follow_links) */
  dev_t dev;                /* the target's identity: the walk's cycle check */
  ino_t ino;
} fs_entry;

typedef struct fs_req fs_req;

typedef void (*fs_work_fn) (fs_req *r);                 /* thread pool */
typedef int (*fs_push_fn) (lua_State *L, fs_req *r);    /* Lua, on success */

struct fs_req {
  uv_work_t work;
  ato_task *task;
  atomic_int detached;      /* set on the loop thread, read by the worker */
  int inflight;             /* queued, after-work not run yet (loop thread) */
  fs_work_fn run;
  fs_push_fn push;
  /* the outcome */
  int err;                  /* 0, a negative errno (= libuv's codes on
                               Linux), or ERR_TOO_LARGE */
  const char *errop;        /* the call that failed: "open", "read", ... */
  char *errpath;            /* the path it failed on, when not `path` */
  /* arguments (owned copies) and results */
  char *path, *path2;
  char *data;               /* write/append: input; read: output */
  size_t len;
  size_t max;               /* read: the limit */
  int mode;                 /* write/mkdir: permission bits, -1 if not given */
  int flag;                 /* parents, recursive, lstat, no-follow, exists */
  struct stat st;
  fs_entry *entries;        /* list/walk: sorted by name */
  size_t n;
};

/* Holds a request while its task waits; a walk embeds one first. */
typedef struct fs_box { fs_req *r; } fs_box;

static void free_entries (fs_entry *e, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) free(e[i].name);
  free(e);
}

static void req_free (fs_req *r) {
  free(r->errpath);
  free(r->path);
  free(r->path2);
  free(r->data);
  free_entries(r->entries, r->n);
  free(r);
}

static int is_detached (fs_req *r) {
  return atomic_load(&r->detached);
}

/* Worker side: records a failure of `op` with errno value e; returns -1. */
static int fail (fs_req *r, const char *op, int e) {
  r->err = -e;
  r->errop = op;
  return -1;
}

/* The same, for a path other than the request's own (copied, if it can). */
static int fail_at (fs_req *r, const char *op, int e, const char *path) {
  free(r->errpath);
  r->errpath = strdup(path);  /* NULL: the message names r->path instead */
  return fail(r, op, e);
}

/* Gives up on r: frees it now, or lets the thread pool free it when done. */
static void box_release (fs_box *box) {
  fs_req *r = box->r;
  box->r = NULL;
  if (r == NULL) return;
  if (!r->inflight) { req_free(r); return; }
  atomic_store(&r->detached, 1);
  uv_cancel((uv_req_t *)&r->work);  /* succeeds only if still queued */
}

/* ato_detach_fn: the task stopped waiting (cancelled), or the runtime
   shuts down, maybe after completion (then r is freed at once). */
static void req_detach (void *op) {
  box_release(op);
}

static int box_gc (lua_State *L) {
  box_release(luaL_checkudata(L, 1, BOX_META));
  return 0;
}

static void work_cb (uv_work_t *w) {
  fs_req *r = w->data;
  r->run(r);
}

/* status is UV_ECANCELED only after uv_cancel, which only a detached
   request gets: nobody waits for it then. */
static void after_work_cb (uv_work_t *w, int status) {
  fs_req *r = w->data;
  (void)status;
  r->inflight = 0;
  if (is_detached(r)) req_free(r);
  else ato_task_wake(r->task, ATO_WAKE_OK);
}

/* A zeroed request, or NULL when memory is short. */
static fs_req *alloc_req (fs_work_fn run, fs_push_fn push) {
  fs_req *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  atomic_init(&r->detached, 0);
  r->work.data = r;
  r->run = run;
  r->push = push;
  r->mode = -1;
  return r;
}

/* [-0, +1, m] A new request, held by a box pushed on the stack. */
static fs_req *new_req (lua_State *L, fs_work_fn run, fs_push_fn push) {
  fs_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->r = NULL;
  luaL_setmetatable(L, BOX_META);
  if ((box->r = alloc_req(run, push)) == NULL)
    luaL_error(L, "not enough memory");
  return box->r;
}

/* [-0, +0, m] A malloc'd copy of s, owned by the caller. */
static char *copy_string (lua_State *L, const char *s, size_t len) {
  char *c = malloc(len + 1);
  if (c == NULL) luaL_error(L, "not enough memory");
  memcpy(c, s, len);
  c[len] = '\0';
  return c;
}

/* [-0, +2] nil, err for a failed request. */
static int push_failure (lua_State *L, fs_req *r) {
  const char *path = r->errpath ? r->errpath : r->path;
  if (r->err == ERR_TOO_LARGE) {
    ato_return_error(L, "too_large", "read %s: larger than the limit of %I "
                     "bytes", path, (lua_Integer)r->max);
    lua_pushinteger(L, (lua_Integer)r->max);
    lua_setfield(L, -2, "limit");
  } else if (r->err == ERR_NOT_REGULAR) {
    ato_return_error(L, "invalid", "write %s: not a regular file (fs.append "
                     "writes to devices and FIFOs)", path);
  } else {
    return ato_return_uverror(L, r->err, r->errop, path);
  }
  lua_pushstring(L, path);
  lua_setfield(L, -2, "path");
  return 2;
}

/* ato_resume_fn: pushes the outcome; the box frees r if that raises. */
static int req_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  fs_box *box = op;
  fs_req *r = box->r;
  int n;
  (void)t; (void)wake;
  n = r->err ? push_failure(L, r) : r->push(L, r);
  box->r = NULL;
  req_free(r);
  return n;
}

/*
** Queues box's request for task t and parks the task, without a deadline.
** Use as `return start(...)`: it yields.
*/
static int start (lua_State *L, ato_task *t, fs_box *box,
                  ato_resume_fn resume) {
  fs_req *r = box->r;
  int rc;
  r->task = t;
  rc = uv_queue_work(ato_loop(L), &r->work, work_cb, after_work_cb);
  if (rc != 0) {
    box->r = NULL;
    req_free(r);
    return ato_return_uverror(L, rc, "uv_queue_work", NULL);
  }
  r->inflight = 1;
  return ato_task_wait(L, t, box, req_detach, resume, -1);
}

/* [-0, +0] The box new_req pushed, now on top of the stack. */
static int start_top (lua_State *L, ato_task *t) {
  return start(L, t, lua_touserdata(L, -1), req_resume);
}

/* }====================================================== */

/* {====================================================== worker helpers */

static unsigned char mode_type (mode_t m) {
  if (S_ISREG(m)) return T_FILE;
  if (S_ISDIR(m)) return T_DIR;
  if (S_ISLNK(m)) return T_LINK;
  if (S_ISFIFO(m)) return T_FIFO;
  if (S_ISSOCK(m)) return T_SOCKET;
  if (S_ISCHR(m)) return T_CHAR;
  if (S_ISBLK(m)) return T_BLOCK;
  return T_UNKNOWN;
}

static unsigned char dirent_type (unsigned char d_type) {
  switch (d_type) {
    case DT_REG: return T_FILE;
    case DT_DIR: return T_DIR;
    case DT_LNK: return T_LINK;
    case DT_FIFO: return T_FIFO;
    case DT_SOCK: return T_SOCKET;
    case DT_CHR: return T_CHAR;
    case DT_BLK: return T_BLOCK;
    default: return T_UNKNOWN;
  }
}

/* "dir/name", or "dir" + "name" when dir already ends in a slash. */
static char *join_path (const char *dir, const char *name) {
  size_t dl = strlen(dir), nl = strlen(name);
  int slash = dl > 0 && dir[dl - 1] != '/';
  char *p = malloc(dl + slash + nl + 1);
  if (p == NULL) return NULL;
  memcpy(p, dir, dl);
  if (slash) p[dl] = '/';
  memcpy(p + dl + slash, name, nl + 1);
  return p;
}

/* Writes all of data in calls of at most `chunk` bytes. 0, or -1. */
static int write_all (fs_req *r, int fd, size_t chunk, int cancellable) {
  size_t done = 0;
  while (done < r->len) {
    size_t want = r->len - done < chunk ? r->len - done : chunk;
    ssize_t n;
    if (cancellable && is_detached(r)) return fail(r, "write", ECANCELED);
    n = write(fd, r->data + done, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(r, "write", errno);
    }
    done += (size_t)n;
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== read */

static size_t min_size (size_t a, size_t b) {
  return a < b ? a : b;
}

/*
** Reads fd to its end into r->data. The buffer never exceeds max + 1
** bytes: one byte more than the limit is how "too large" is detected for
** files whose size fstat does not know.
*/
static void read_all (fs_req *r, int fd, const struct stat *st) {
  size_t len = 0, cap, limit = r->max + 1;
  char *buf;
  if (S_ISREG(st->st_mode) && (uintmax_t)st->st_size > r->max) {
    r->err = ERR_TOO_LARGE;
    return;
  }
  cap = S_ISREG(st->st_mode) && st->st_size > 0 ? (size_t)st->st_size + 1
                                                : UNSIZED_CHUNK;
  cap = min_size(cap, limit);
  if ((buf = malloc(cap)) == NULL) { fail(r, "read", ENOMEM); return; }
  for (;;) {
    ssize_t n;
    if (len == cap) {             /* file grew, or size unknown */
      char *nb;
      if (cap == limit) break;
      cap = cap <= limit / 2 ? cap * 2 : limit;
      if ((nb = realloc(buf, cap)) == NULL) {
        free(buf);
        fail(r, "read", ENOMEM);
        return;
      }
      buf = nb;
    }
    if (is_detached(r)) { free(buf); fail(r, "read", ECANCELED); return; }
    n = read(fd, buf + len, min_size(cap - len, IO_CHUNK));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      free(buf);
      fail(r, "read", errno);
      return;
    }
    len += (size_t)n;
  }
  if (len > r->max) { free(buf); r->err = ERR_TOO_LARGE; return; }
  r->data = buf;
  r->len = len;
}

static void do_read (fs_req *r) {
  struct stat st;
  int fd = open(r->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { fail(r, "open", errno); return; }
  if (fstat(fd, &st) != 0) fail(r, "fstat", errno);
  else if (S_ISDIR(st.st_mode)) fail(r, "read", EISDIR);
  else read_all(r, fd, &st);
  close(fd);  /* read-only: nothing to lose if close fails */
}

static int push_read (lua_State *L, fs_req *r) {
  lua_pushlstring(L, r->data, r->len);
  return 1;
}

/* }====================================================== */

/* {====================================================== write, append */

/*
** The temp file's name: fixed length, so that any name the directory
** accepts for the target can be written (a name derived from the target's
** would be too long for a target of 248 bytes or more).
*/
#define TEMP_NAME ".ato-XXXXXXXX.tmp"
#define TEMP_RANDOM 8                       /* the X's */
#define TEMP_SUFFIX (sizeof ".tmp" - 1)     /* after them */

/* TEMP_NAME next to path: the rename then stays in one directory. */
static char *temp_template (const char *path) {
  const char *slash = strrchr(path, '/');
  size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
  char *t = malloc(dl + sizeof TEMP_NAME);
  if (t == NULL) return NULL;
  memcpy(t, path, dl);
  memcpy(t + dl, TEMP_NAME, sizeof TEMP_NAME);
  return t;
}

/*
** Creates tmp (its X's replaced at random) exclusively. Not mkstemp:
** mkstemp always creates 0600, and a new file without an explicit mode
** must get 0666 & ~umask, which only the kernel knows race-free (umask()
** would change it for every thread while we read it).
*/
static int open_temp (char *tmp, mode_t mode) {
  static const char chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  char *x = tmp + strlen(tmp) - TEMP_SUFFIX - TEMP_RANDOM;
  int attempt;
  for (attempt = 0; attempt < TEMP_TRIES; attempt++) {
    unsigned char rnd[TEMP_RANDOM];
    int i, fd;
    if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0) {
      uint64_t h = uv_hrtime() + (uint64_t)attempt * 7919;
      for (i = 0; i < TEMP_RANDOM; i++, h >>= 8) rnd[i] = (unsigned char)h;
    }
    for (i = 0; i < TEMP_RANDOM; i++) x[i] = chars[rnd[i] % (sizeof chars - 1)];
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

/* Makes the data durable in the temp file, with its final mode. */
static int fill_temp (fs_req *r, int fd, const struct stat *old) {
  if (write_all(r, fd, IO_CHUNK, 1) != 0) return -1;
  /* best effort: root rewriting a user's file should not take it over */
  if (old && (old->st_uid != geteuid() || old->st_gid != getegid()))
    (void)!fchown(fd, old->st_uid, old->st_gid);
  if (r->mode >= 0 || old) {  /* after fchown, which may clear set-id bits */
    mode_t m = r->mode >= 0 ? (mode_t)r->mode : old->st_mode & 07777;
    if (fchmod(fd, m) != 0) return fail(r, "fchmod", errno);
  }
  if (fsync(fd) != 0) return fail(r, "fsync", errno);
  return 0;
}

/* Best effort: the rename happened, so the call succeeds regardless. */
static void sync_parent (const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  int fd;
  if (slash == NULL) dir = strdup(".");
  else if (slash == path) dir = strdup("/");
  else dir = strndup(path, (size_t)(slash - path));
  if (dir == NULL) return;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (fd < 0) return;
  (void)fsync(fd);
  close(fd);
}

/*
** A path fs.write cannot replace: "", one that can only name a directory
** ("x/", an existing one), or a device, a FIFO or a socket, which the
** rename would swap for a regular file (as root, /dev/null). `old` is
** stat's (a symlink is followed: /dev/stderr is a link to one of those).
*/
static int write_target_error (fs_req *r, int have_old,
                               const struct stat *old) {
  size_t pl = strlen(r->path);
  if (pl == 0) return fail(r, "open", ENOENT);
  if (r->path[pl - 1] == '/' || (have_old && S_ISDIR(old->st_mode)))
    return fail(r, "open", EISDIR);
  if (have_old && !S_ISREG(old->st_mode)) {
    r->err = ERR_NOT_REGULAR;
    return -1;
  }
  return 0;
}

/*
** The atomic write. The old file is replaced by rename() only after the
** whole new content and its mode are on disk; any failure before that
** removes the temp file and leaves the old file as it was. Cancellation:
** checked between chunks and once more just before rename(); a cancelled
** write then removes its temp file. If the cancel comes after that last
** check, the rename still happens (the new content is in place, complete)
** although the task was told "cancelled". Either way no temp file stays.
*/
static void do_write (fs_req *r) {
  struct stat old;
  int have_old = stat(r->path, &old) == 0, fd, ok;
  char *tmp;
  if (write_target_error(r, have_old, &old) != 0) return;
  if ((tmp = temp_template(r->path)) == NULL) {
    fail(r, "open", ENOMEM);
    return;
  }
  /* 0600 until fchmod when the final mode is known; else let umask act */
  fd = open_temp(tmp, r->mode >= 0 || have_old ? 0600 : 0666);
  if (fd < 0) {
    fail(r, "open", errno);
    free(tmp);
    return;
  }
  ok = fill_temp(r, fd, have_old ? &old : NULL) == 0;
  if (close(fd) != 0 && ok) ok = fail(r, "close", errno) == 0;
  if (ok && is_detached(r)) ok = fail(r, "rename", ECANCELED) == 0;
  if (ok && rename(tmp, r->path) != 0) ok = fail(r, "rename", errno) == 0;
  if (ok) sync_parent(r->path);
  else unlink(tmp);
  free(tmp);
}

/*
** One write() call for all the data (a loop only if the kernel writes
** less): with O_APPEND, concurrent appenders' records then do not
** interleave. Not cancellable midway, so a record is never cut short.
*/
static void do_append (fs_req *r) {
  int fd = open(r->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  int ok;
  if (fd < 0) { fail(r, "open", errno); return; }
  ok = write_all(r, fd, r->len > 0 ? r->len : 1, 0) == 0;
  if (close(fd) != 0 && ok) fail(r, "close", errno);
}

static int push_true (lua_State *L, fs_req *r) {
  (void)r;
  lua_pushboolean(L, 1);
  return 1;
}

/* }====================================================== */

/* {====================================================== stat, exists */

static void do_stat (fs_req *r) {
  if (r->flag) {
    if (lstat(r->path, &r->st) != 0) fail(r, "lstat", errno);
  } else if (stat(r->path, &r->st) != 0) {
    fail(r, "stat", errno);
  }
}

static void do_exists (fs_req *r) {
  struct stat st;
  r->flag = stat(r->path, &st) == 0;
}

static void set_int (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_time (lua_State *L, const char *k, struct timespec ts) {
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  lua_setfield(L, -2, k);
}

static int push_stat (lua_State *L, fs_req *r) {
  const struct stat *st = &r->st;
  char perms[8];
  lua_createtable(L, 0, 13);
  lua_pushstring(L, type_names[mode_type(st->st_mode)]);
  lua_setfield(L, -2, "type");
  set_int(L, "size", (lua_Integer)st->st_size);
  set_int(L, "mode", (lua_Integer)(st->st_mode & 07777));
  snprintf(perms, sizeof perms, "%04o", (unsigned)(st->st_mode & 07777));
  lua_pushstring(L, perms);
  lua_setfield(L, -2, "perms");
  set_time(L, "mtime", st->st_mtim);
  set_time(L, "atime", st->st_atim);
  set_time(L, "ctime", st->st_ctim);
  set_int(L, "uid", (lua_Integer)st->st_uid);
  set_int(L, "gid", (lua_Integer)st->st_gid);
  set_int(L, "ino", (lua_Integer)st->st_ino);
  set_int(L, "dev", (lua_Integer)st->st_dev);
  set_int(L, "nlink", (lua_Integer)st->st_nlink);
  return 1;
}

static int push_exists (lua_State *L, fs_req *r) {
  lua_pushboolean(L, r->flag);
  return 1;
}

/* }====================================================== */

/* {====================================================== list */

#define LIST_NOFOLLOW 1   /* flag: fail on a symlink (walk's descent) */
#define LIST_TARGETS  2   /* flag: stat links' targets (follow_links) */

static int by_name (const void *a, const void *b) {
  return strcmp(((const fs_entry *)a)->name, ((const fs_entry *)b)->name);
}

/* Fills in what readdir did not say: the type, a link's target. */
static void stat_entry (int dfd, fs_entry *e, int targets) {
  struct stat st;
  if (e->type == T_UNKNOWN &&
      fstatat(dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    e->type = mode_type(st.st_mode);
  if (targets && e->type == T_LINK && fstatat(dfd, e->name, &st, 0) == 0) {
    e->target = mode_type(st.st_mode);
    e->dev = st.st_dev;
    e->ino = st.st_ino;
  }
}

static int add_entry (fs_req *r, size_t *cap, const struct dirent *de) {
  fs_entry *e;
  if (r->n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 32;
    fs_entry *ne = realloc(r->entries, ncap * sizeof *ne);
    if (ne == NULL) return fail(r, "readdir", ENOMEM);
    r->entries = ne;
    *cap = ncap;
  }
  e = &r->entries[r->n];
  memset(e, 0, sizeof *e);
  if ((e->name = strdup(de->d_name)) == NULL) return fail(r, "readdir", ENOMEM);
  e->type = dirent_type(de->d_type);
  r->n++;
  return 0;
}

static int read_entries (fs_req *r, DIR *d) {
  size_t cap = 0, i;
  struct dirent *de;
  for (;;) {
    errno = 0;
    if ((de = readdir(d)) == NULL) break;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (add_entry(r, &cap, de) != 0) return -1;
  }
  if (errno != 0) return fail(r, "readdir", errno);
  for (i = 0; i < r->n; i++)
    stat_entry(dirfd(d), &r->entries[i], r->flag & LIST_TARGETS);
  if (r->n > 1) qsort(r->entries, r->n, sizeof *r->entries, by_name);
  return 0;
}

/* Lists r->path; r->st gets the directory's own identity (walk). */
static void do_list (fs_req *r) {
  int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  int fd = open(r->path, r->flag & LIST_NOFOLLOW ? flags | O_NOFOLLOW : flags);
  DIR *d;
  if (fd < 0) { fail(r, "opendir", errno); return; }
  if (fstat(fd, &r->st) != 0) {
    fail(r, "fstat", errno);
    close(fd);
    return;
  }
  if ((d = fdopendir(fd)) == NULL) {
    fail(r, "opendir", errno);
    close(fd);
    return;
  }
  read_entries(r, d);
  closedir(d);
}

static int push_list (lua_State *L, fs_req *r) {
  size_t i;
  luaL_checkstack(L, 3, NULL);
  lua_createtable(L, r->n < INT_MAX ? (int)r->n : INT_MAX, 0);
  for (i = 0; i < r->n; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, r->entries[i].name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, type_names[r->entries[i].type]);
    lua_setfield(L, -2, "type");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* }====================================================== */

/* {====================================================== mkdir */

static int is_dir (const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p's part: creates every missing ancestor of r->path. */
static int make_parents (fs_req *r) {
  char *p = strdup(r->path), *s;
  if (p == NULL) return fail(r, "mkdir", ENOMEM);
  for (s = p; *s == '/'; s++) {}
  while ((s = strchr(s, '/')) != NULL) {
    *s = '\0';
    /* EEXIST for a file is left to the next mkdir, which says ENOTDIR */
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      fail_at(r, "mkdir", errno, p);
      free(p);
      return -1;
    }
    *s = '/';
    while (*s == '/') s++;
  }
  free(p);
  return 0;
}

/*
** An explicit mode is applied exactly, as with fs.write: no umask. Through
** a descriptor of the new directory, not chmod(path), which would follow a
** symlink swapped in for it meanwhile. The directory starts as 0700, so
** that the owner can open it whatever the final mode (unless the umask
** takes the owner's read bit: then open fails).
*/
static void set_dir_mode (fs_req *r) {
  int fd = open(r->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) { fail(r, "open", errno); return; }
  if (fchmod(fd, (mode_t)r->mode) != 0) fail(r, "chmod", errno);
  close(fd);
}

static void do_mkdir (fs_req *r) {
  if (r->flag && make_parents(r) != 0) return;
  if (mkdir(r->path, r->mode >= 0 ? 0700 : 0777) != 0) {
    int e = errno;
    if (!(e == EEXIST && r->flag && is_dir(r->path))) fail(r, "mkdir", e);
    return;  /* mkdir -p leaves an existing directory's mode alone */
  }
  if (r->mode >= 0) set_dir_mode(r);
}

/* }====================================================== */

/* {====================================================== remove, rename */

static int remove_tree (fs_req *r, int pfd, const char *name,
                        const char *path);

static int entry_is_dir (int dfd, const struct dirent *de) {
  struct stat st;
  if (de->d_type != DT_UNKNOWN) return de->d_type == DT_DIR;
  return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISDIR(st.st_mode);
}

/* Removes one entry of the open directory d (whose path is dpath). */
static int remove_entry (fs_req *r, DIR *d, const char *dpath,
                         const struct dirent *de) {
  int dfd = dirfd(d), rc = 0, dir = entry_is_dir(dfd, de);
  char *path;
  if (!dir && unlinkat(dfd, de->d_name, 0) == 0) return 0;
  if ((path = join_path(dpath, de->d_name)) == NULL)
    return fail_at(r, "remove", ENOMEM, dpath);
  if (dir) rc = remove_tree(r, dfd, de->d_name, path);
  else rc = fail_at(r, "unlink", errno, path);
  free(path);
  return rc;
}

/*
** rm -r on name in directory pfd, through file descriptors: entries are
** never looked up again by path, so a directory swapped for a symlink
** mid-way fails (O_NOFOLLOW) instead of leading the removal elsewhere.
** Uses one descriptor per level of depth.
*/
static int remove_tree (fs_req *r, int pfd, const char *name,
                        const char *path) {
  int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int rc = 0;
  struct dirent *de;
  DIR *d;
  if (fd < 0) return fail_at(r, "open", errno, path);
  if ((d = fdopendir(fd)) == NULL) {
    rc = fail_at(r, "opendir", errno, path);
    close(fd);
    return rc;
  }
  for (;;) {
    errno = 0;
    if ((de = readdir(d)) == NULL) {
      if (errno != 0) rc = fail_at(r, "readdir", errno, path);
      break;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if ((rc = remove_entry(r, d, path, de)) != 0) break;
  }
  closedir(d);
  if (rc == 0 && unlinkat(pfd, name, AT_REMOVEDIR) != 0)
    rc = fail_at(r, "rmdir", errno, path);
  return rc;
}

#define REMOVE_RECURSIVE 1  /* flag: rm -r */
#define REMOVE_DIR 2        /* flag: the path ended in '/' */

/*
** r->path2 is r->path without its trailing slashes: lstat("link/") would
** follow the link, and rm -r would empty the directory it points to. The
** slash still says "a directory": anything else fails with ENOTDIR, as
** rmdir("x/") would.
*/
static void do_remove (fs_req *r) {
  const char *p = r->path2;
  struct stat st;
  if (lstat(p, &st) != 0) fail(r, "remove", errno);
  else if (!S_ISDIR(st.st_mode)) {
    if (r->flag & REMOVE_DIR) fail(r, "remove", ENOTDIR);
    else if (unlink(p) != 0) fail(r, "unlink", errno);
  } else if (r->flag & REMOVE_RECURSIVE) {
    remove_tree(r, AT_FDCWD, p, p);
  } else if (rmdir(p) != 0) {
    fail(r, "rmdir", errno);
  }
}

static void do_rename (fs_req *r) {
  if (rename(r->path, r->path2) != 0) fail(r, "rename", errno);
}

/* }====================================================== */

/* {====================================================== argument checks */

/* A path argument: a string without NUL bytes (C would cut it there).
   len may be NULL. */
static const char *check_path (lua_State *L, int idx, size_t *len) {
  size_t n;
  const char *p = luaL_checklstring(L, idx, &n);
  luaL_argcheck(L, strlen(p) == n, idx, "path contains a NUL byte");
  if (len) *len = n;
  return p;
}

/* [-0, +0, m] r->path := a copy of the path at idx. */
static void req_path (lua_State *L, fs_req *r, int idx) {
  size_t len;
  const char *p = lua_tolstring(L, idx, &len);
  r->path = copy_string(L, p, len);
}

/* A mode: an integer (384) or octal digits ("600", "0600", "0o600"). */
static int check_mode (lua_State *L, int idx) {
  lua_Integer m = 0;
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tostring(L, idx);
    if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) s += 2;
    luaL_argcheck(L, *s != '\0', idx, "mode has no octal digits");
    for (; *s; s++) {
      luaL_argcheck(L, *s >= '0' && *s <= '7', idx,
                    "mode must be octal digits such as \"0644\"");
      m = m * 8 + (*s - '0');
      luaL_argcheck(L, m <= 07777, idx, "mode out of range (0 to 0o7777)");
    }
    return (int)m;
  }
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_typeerror(L, idx, "integer or octal string");
  m = luaL_checkinteger(L, idx);
  luaL_argcheck(L, m >= 0 && m <= 07777, idx,
                "mode out of range (0 to 0o7777)");
  return (int)m;
}

/* An options table at idx: none, nil or a table. */
static void check_opts (lua_State *L, int idx) {
  if (!lua_isnoneornil(L, idx)) luaL_checktype(L, idx, LUA_TTABLE);
}

static int opt_bool (lua_State *L, int idx, const char *k, int def) {
  int v = def;
  if (lua_isnoneornil(L, idx)) return def;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) {
    if (!lua_isboolean(L, -1))
      luaL_argerror(L, idx, lua_pushfstring(L, "'%s' must be a boolean", k));
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* An integer >= 0: a number, never a numeric string (as in ato.exec). */
static lua_Integer opt_count (lua_State *L, int idx, const char *k,
                              lua_Integer def) {
  lua_Integer v = def;
  int isint = 0;
  if (lua_isnoneornil(L, idx)) return def;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 0)
      luaL_argerror(L, idx, lua_pushfstring(L, "'%s' must be an integer >= 0 "
                                            "(got %s)", k,
                                            luaL_typename(L, -1)));
  }
  lua_pop(L, 1);
  return v;
}

/* }====================================================== */

/* {====================================================== the functions */

/* fs.read(path [, {max=bytes}]) -> string | nil, err */
static int l_read (lua_State *L) {
  lua_Integer max;
  ato_task *t;
  fs_req *r;
  check_path(L, 1, NULL);
  check_opts(L, 2);
  max = opt_count(L, 2, "max", DEFAULT_MAX);
  t = ato_task_enter(L, "fs.read");
  r = new_req(L, do_read, push_read);
  req_path(L, r, 1);
  /* a buffer is at most max + 1 bytes: keep that representable */
  r->max = (uintmax_t)max < SIZE_MAX - 1 ? (size_t)max : SIZE_MAX - 1;
  return start_top(L, t);
}

/* Shared by write and append: path, data (copied). */
static int start_output (lua_State *L, const char *what, fs_work_fn run,
                         int mode) {
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  ato_task *t = ato_task_enter(L, what);
  fs_req *r = new_req(L, run, push_true);
  req_path(L, r, 1);
  r->data = copy_string(L, data, len);
  r->len = len;
  r->mode = mode;
  return start_top(L, t);
}

/* fs.write(path, data [, mode]) -> true | nil, err (atomic) */
static int l_write (lua_State *L) {
  int mode;
  check_path(L, 1, NULL);
  luaL_checkstring(L, 2);
  mode = lua_isnoneornil(L, 3) ? -1 : check_mode(L, 3);
  return start_output(L, "fs.write", do_write, mode);
}

/* fs.append(path, data) -> true | nil, err */
static int l_append (lua_State *L) {
  check_path(L, 1, NULL);
  luaL_checkstring(L, 2);
  return start_output(L, "fs.append", do_append, -1);
}

/* Shared by the one-path operations. */
static int start_simple (lua_State *L, const char *what, fs_work_fn run,
                         fs_push_fn push, int flag, int mode) {
  ato_task *t = ato_task_enter(L, what);
  fs_req *r = new_req(L, run, push);
  req_path(L, r, 1);
  r->flag = flag;
  r->mode = mode;
  return start_top(L, t);
}

/* fs.stat(path) -> table | nil, err */
static int l_stat (lua_State *L) {
  check_path(L, 1, NULL);
  return start_simple(L, "fs.stat", do_stat, push_stat, 0, -1);
}

/* fs.lstat(path) -> table | nil, err (a symlink is not followed) */
static int l_lstat (lua_State *L) {
  check_path(L, 1, NULL);
  return start_simple(L, "fs.lstat", do_stat, push_stat, 1, -1);
}

/* fs.exists(path) -> boolean (follows symlinks: a dangling one is false) */
static int l_exists (lua_State *L) {
  check_path(L, 1, NULL);
  return start_simple(L, "fs.exists", do_exists, push_exists, 0, -1);
}

/* fs.list(dir) -> {{name=, type=}, ...} sorted by name | nil, err */
static int l_list (lua_State *L) {
  check_path(L, 1, NULL);
  return start_simple(L, "fs.list", do_list, push_list, 0, -1);
}

/* fs.mkdir(path [, mode] [, {parents=true}]) -> true | nil, err */
static int l_mkdir (lua_State *L) {
  int mode = -1, oidx = 3;
  check_path(L, 1, NULL);
  if (lua_istable(L, 2)) oidx = 2;
  else if (!lua_isnoneornil(L, 2)) mode = check_mode(L, 2);
  check_opts(L, oidx);
  return start_simple(L, "fs.mkdir", do_mkdir, push_true,
                      opt_bool(L, oidx, "parents", 0), mode);
}

/*
** What fs.remove refuses, as rm does, whatever the options: the root
** directory ("/", "//"; rm's --preserve-root: a typo must not empty the
** whole machine), and a last component "." or ".." ("/.", "a/..", "."),
** which names a directory that contains the path itself. NULL if p is fine.
*/
static const char *remove_refusal (const char *p, size_t len) {
  size_t end = len, start;
  while (end > 0 && p[end - 1] == '/') end--;
  if (end == 0) return len > 0 ? "the root directory" : NULL;
  for (start = end; start > 0 && p[start - 1] != '/'; start--) {}
  if (p[start] == '.' && (end - start == 1 ||
                          (end - start == 2 && p[start + 1] == '.')))
    return "a path ending in . or ..";
  return NULL;
}

/* fs.remove(path [, {recursive=true}]) -> true | nil, err */
static int l_remove (lua_State *L) {
  size_t len, end;
  const char *p = check_path(L, 1, &len);
  const char *refused = remove_refusal(p, len);
  int flag;
  ato_task *t;
  fs_req *r;
  check_opts(L, 2);
  flag = opt_bool(L, 2, "recursive", 0) ? REMOVE_RECURSIVE : 0;
  t = ato_task_enter(L, "fs.remove");
  if (refused != NULL) {
    ato_return_error(L, "invalid", "remove %s: refusing to remove %s", p,
                     refused);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "path");
    return 2;
  }
  for (end = len; end > 1 && p[end - 1] == '/'; end--) {}
  if (end < len) flag |= REMOVE_DIR;
  r = new_req(L, do_remove, push_true);
  req_path(L, r, 1);
  r->path2 = copy_string(L, p, end);
  r->flag = flag;
  return start_top(L, t);
}

static int push_rename_failure (lua_State *L, fs_req *r) {
  ato_return_uverror(L, r->err, "rename", r->path);
  lua_pushfstring(L, "rename %s -> %s: %s", r->path, r->path2,
                  uv_strerror(r->err));
  lua_setfield(L, -2, "message");
  lua_pushstring(L, r->path2);
  lua_setfield(L, -2, "to");
  return 2;
}

static int rename_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  fs_box *box = op;
  if (box->r->err != 0) {
    int n = push_rename_failure(L, box->r);
    box_release(box);  /* done: not in flight, so freed now */
    return n;
  }
  return req_resume(L, t, op, wake);
}

/* fs.rename(from, to) -> true | nil, err */
static int l_rename (lua_State *L) {
  size_t len;
  ato_task *t;
  fs_req *r;
  check_path(L, 1, NULL);
  check_path(L, 2, &len);
  t = ato_task_enter(L, "fs.rename");
  r = new_req(L, do_rename, push_true);
  req_path(L, r, 1);
  r->path2 = copy_string(L, lua_tostring(L, 2), len);
  return start(L, t, lua_touserdata(L, -1), rename_resume);
}

/* }====================================================== */

/* {====================================================== walk */

/*
** The walk keeps one level per directory on the current path: its sorted
** entries and the position of the next one. Memory is bounded by depth
** times the entries of one directory, whatever the size of the tree.
** Each step yields one entry without I/O, except the step after a
** directory was yielded: it lists that directory first (one work item).
**
** Types: an entry is "directory" only if it is one (or, with follow_links,
** a link to one); a symlink is "link" and not entered, unless follow_links
** is set: then it gets its target's type ("link" when dangling) and a
** linked directory is entered, except one already on the current path
** (a cycle), which stays "link".
*/
typedef struct walk_level {
  fs_entry *entries;
  size_t n, next;
  char *path;               /* the directory, as the walk names it */
  dev_t dev;                /* its identity, for the cycle check */
  ino_t ino;
} walk_level;

typedef struct fs_walk {
  fs_box box;               /* first: the listing in flight, if any */
  walk_level *levels;
  int depth, cap;           /* levels in use, allocated */
  int max_depth;
  int follow;
  int started, done;
  int listing;              /* a task waits for box's listing */
  int closed;               /* closed meanwhile: that task gets an error */
  char *root;
  char *descend;            /* directory yielded last: listed next */
} fs_walk;

/*
** Ends the walk (at its end, by __close or __gc). A listing that a task
** waits for stays in the box: that task's resume function (or the detach
** function, if it stops waiting) owns the request, and the task is told
** the walk was closed. Freeing it here would leave the task waiting for a
** wake-up that never comes. Can run again on a walk already ended.
*/
static void walk_free (fs_walk *w) {
  int i;
  if (w->listing && w->box.r != NULL) w->closed = 1;
  else box_release(&w->box);
  for (i = 0; i < w->depth; i++) {
    free_entries(w->levels[i].entries, w->levels[i].n);
    free(w->levels[i].path);
  }
  free(w->levels);
  free(w->root);
  free(w->descend);
  w->levels = NULL;
  w->depth = w->cap = 0;
  w->root = w->descend = NULL;
  w->done = 1;
}

static int walk_gc (lua_State *L) {
  walk_free(luaL_checkudata(L, 1, WALK_META));
  return 0;
}

/* Is (dev, ino) a directory on the current path? A link to it loops. */
static int on_path (const fs_walk *w, dev_t dev, ino_t ino) {
  int i;
  for (i = 0; i < w->depth; i++)
    if (w->levels[i].dev == dev && w->levels[i].ino == ino) return 1;
  return 0;
}

/* [-0, +(0|2)] The next entry: path, type; or nothing at the end. */
static int walk_advance (lua_State *L, fs_walk *w) {
  for (;;) {
    walk_level *lv;
    fs_entry *e;
    int type;
    luaL_Buffer b;
    size_t pl;
    if (w->depth == 0) {
      walk_free(w);
      return 0;
    }
    lv = &w->levels[w->depth - 1];
    if (lv->next == lv->n) {            /* this directory is done */
      free_entries(lv->entries, lv->n);
      free(lv->path);
      w->depth--;
      continue;
    }
    e = &lv->entries[lv->next++];
    type = e->type;
    if (type == T_LINK && w->follow && e->target != T_UNKNOWN)
      type = e->target == T_DIR && on_path(w, e->dev, e->ino) ? T_LINK
                                                               : e->target;
    pl = strlen(lv->path);
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, lv->path, pl);
    if (pl > 0 && lv->path[pl - 1] != '/') luaL_addchar(&b, '/');
    luaL_addstring(&b, e->name);
    luaL_pushresult(&b);                          /* path */
    if (type == T_DIR && w->depth < w->max_depth) {
      size_t len;
      const char *p = lua_tolstring(L, -1, &len);
      w->descend = copy_string(L, p, len);
    }
    lua_pushstring(L, type_names[type]);          /* path type */
    return 2;
  }
}

/*
** ato_resume_fn for a listing: a new level, or the directory's error. A
** walk closed (by another task) while this one waited raises: ending the
** loop quietly would pass for a complete walk.
*/
static int walk_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  fs_walk *w = op;
  fs_req *r = w->box.r;
  walk_level *lv;
  (void)t; (void)wake;
  w->listing = 0;
  if (w->closed) {
    box_release(&w->box);
    return luaL_error(L, "fs.walk: the walk was closed while this task "
                      "waited for it");
  }
  if (r->err != 0) {                    /* path, "error", err: walk goes on */
    lua_pushstring(L, r->errpath ? r->errpath : r->path);
    lua_pushliteral(L, "error");
    push_failure(L, r);
    lua_remove(L, -2);                  /* the nil */
    box_release(&w->box);
    return 3;
  }
  if (w->depth == w->cap) {
    int ncap = w->cap ? w->cap * 2 : 8;
    walk_level *nl = realloc(w->levels, (size_t)ncap * sizeof *nl);
    if (nl == NULL) {
      box_release(&w->box);
      return luaL_error(L, "not enough memory");
    }
    w->levels = nl;
    w->cap = ncap;
  }
  lv = &w->levels[w->depth++];
  lv->entries = r->entries;
  lv->n = r->n;
  lv->next = 0;
  lv->path = r->path;
  lv->dev = r->st.st_dev;
  lv->ino = r->st.st_ino;
  r->entries = NULL;
  r->n = 0;
  r->path = NULL;
  box_release(&w->box);
  return walk_advance(L, w);
}

/* Lists `path`, a malloc'd string the request takes over. */
static int walk_list (lua_State *L, ato_task *t, fs_walk *w, char *path,
                      int nofollow) {
  fs_req *r = alloc_req(do_list, NULL);
  if (r == NULL) {
    free(path);
    return luaL_error(L, "not enough memory");
  }
  r->path = path;
  r->flag = (nofollow ? LIST_NOFOLLOW : 0) | (w->follow ? LIST_TARGETS : 0);
  w->box.r = r;
  w->listing = 1;  /* start clears box.r if it fails */
  return start(L, t, &w->box, walk_resume);
}

/* The iterator: for path, type [, err] in fs.walk(root) do ... end */
static int walk_next (lua_State *L) {
  fs_walk *w = luaL_checkudata(L, 1, WALK_META);
  ato_task *t;
  char *path;
  if (w->box.r != NULL)
    return luaL_error(L, "fs.walk: this walk is already waiting in another "
                      "task");
  if (w->done) return 0;
  if (w->started && w->descend == NULL) return walk_advance(L, w);
  t = ato_task_enter(L, "fs.walk");
  if (!w->started) {
    w->started = 1;
    if (w->max_depth == 0) { walk_free(w); return 0; }
    path = strdup(w->root);
    if (path == NULL) return luaL_error(L, "not enough memory");
    return walk_list(L, t, w, path, 0);
  }
  path = w->descend;
  w->descend = NULL;
  /* a directory found by readdir must still be one: O_NOFOLLOW */
  return walk_list(L, t, w, path, !w->follow);
}

/* fs.walk(root [, {follow_links=false, max_depth=n}]) -> iterator */
static int l_walk (lua_State *L) {
  size_t len;
  const char *root = check_path(L, 1, &len);
  int follow;
  lua_Integer max_depth;
  fs_walk *w;
  check_opts(L, 2);
  follow = opt_bool(L, 2, "follow_links", 0);
  max_depth = opt_count(L, 2, "max_depth", INT_MAX);
  ato_task_enter(L, "fs.walk");         /* fail now, not at the first step */
  lua_pushcfunction(L, walk_next);      /* iterator */
  w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  luaL_setmetatable(L, WALK_META);      /* iterator w */
  w->follow = follow;
  w->max_depth = max_depth < INT_MAX ? (int)max_depth : INT_MAX;
  w->root = copy_string(L, root, len);
  lua_pushnil(L);                       /* iterator w nil */
  lua_pushvalue(L, -2);                 /* iterator w nil w: closed by `for` */
  return 4;
}

/* }====================================================== */

static const luaL_Reg fs_funcs[] = {
  {"read", l_read},
  {"write", l_write},
  {"append", l_append},
  {"stat", l_stat},
  {"lstat", l_lstat},
  {"exists", l_exists},
  {"list", l_list},
  {"walk", l_walk},
  {"mkdir", l_mkdir},
  {"remove", l_remove},
  {"rename", l_rename},
  {NULL, NULL}
};

int luaopen_ato_fs (lua_State *L) {
  luaL_newmetatable(L, BOX_META);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, WALK_META);
  lua_pushcfunction(L, walk_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, walk_gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaL_newlib(L, fs_funcs);
  return 1;
}

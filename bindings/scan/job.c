/*
** job.c — scan jobs: see job.h. One walker thread turns the sources into a
** bounded queue of paths; N worker threads each own a scan context and a
** read buffer, read one file at a time (open, fstat, read: no mmap, whose
** munmap costs a TLB shootdown per file), skip what must be skipped, scan,
** and append finding records under the job's mutex. Git jobs enumerate the
** history first (git.c) and hand blob indexes to the workers the same way.
*/
#include "job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "git.h"
#include "redact.h"
#include "sha256.h"

#define QUEUE_CAP 4096          /* paths waiting for a worker */
#define BINARY_PROBE 8192       /* a NUL in this prefix marks a binary file */
#define MAX_SKIPS 1000          /* skip reports kept; the rest only counted */
#define LINE_CONTEXT 80         /* bytes of the line kept each side of a secret */

struct scan_job {
  const scan_engine *e;
  scan_job_kind kind;
  scan_job_options opt;
  void (*notify) (void *ud);
  void *ud;
  pthread_mutex_t mu;
  pthread_cond_t has_items, has_space;
  /* work queue: paths (FILES) or blob indexes (GIT) */
  char **paths;
  size_t *blobs;
  size_t qhead, qcount;
  int producer_done;
  /* results */
  scan_record *rec_head, *rec_tail;
  scan_skip *skip_head, *skip_tail;
  scan_job_stats stats;
  atomic_int cancelled;
  int running;                /* threads not yet exited */
  char *error;                /* fatal, set once */
  /* threads */
  pthread_t *threads;
  int nthreads, started;
  /* sources */
  char **sources;
  size_t nsources;
  char *text;                 /* our copy: the caller's may not outlive us */
  size_t text_len;
  scan_git *git;
};

/* {====================================================== results */

static char *dup_bytes (const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = '\0';
  }
  return s;
}

void scan_record_free (scan_record *r) {
  while (r) {
    scan_record *next = r->next;
    free(r->path);
    free(r->secret);
    free(r->redacted);
    free(r->line_text);
    free(r);
    r = next;
  }
}

void scan_skip_free (scan_skip *s) {
  while (s) {
    scan_skip *next = s->next;
    free(s->path);
    free(s->reason);
    free(s);
    s = next;
  }
}

static void set_error (scan_job *j, const char *msg) {
  pthread_mutex_lock(&j->mu);
  if (j->error == NULL) j->error = strdup(msg);
  pthread_mutex_unlock(&j->mu);
}

/* Reports a skipped input (kept up to MAX_SKIPS, counted always). */
static void add_skip (scan_job *j, const char *path, const char *reason) {
  scan_skip *s = NULL;
  pthread_mutex_lock(&j->mu);
  j->stats.skipped++;
  if (j->stats.skipped <= MAX_SKIPS && (s = calloc(1, sizeof *s)) != NULL) {
    s->path = strdup(path);
    s->reason = strdup(reason);
    if (j->skip_tail) j->skip_tail->next = s;
    else j->skip_head = s;
    j->skip_tail = s;
  }
  pthread_mutex_unlock(&j->mu);
}

void scan_job_take (scan_job *j, scan_record **records, scan_skip **skips,
                    scan_job_stats *stats) {
  pthread_mutex_lock(&j->mu);
  *records = j->rec_head;
  *skips = j->skip_head;
  j->rec_head = j->rec_tail = NULL;
  j->skip_head = j->skip_tail = NULL;
  *stats = j->stats;
  pthread_mutex_unlock(&j->mu);
}

/* }====================================================== */

/* {====================================================== findings */

/* The hits of one buffer, collected before records are built: a record's
   line text must have every secret on that line redacted. */
typedef struct hit_list {
  scan_hit *items;
  size_t n, cap;
} hit_list;

static int collect_hit (void *ud, const scan_hit *hit, const char *data,
                        size_t len) {
  hit_list *h = ud;
  (void)data;
  (void)len;
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 16;
    scan_hit *items = realloc(h->items, cap * sizeof *items);
    if (items == NULL) return 1;      /* stop: memory is gone */
    h->items = items;
    h->cap = cap;
  }
  h->items[h->n++] = *hit;
  return 0;
}

/* Appends s[0,n) to out, replacing every secret of hits (on the same line)
   that lies inside [from, to) by its redacted form. */
static void append_redacted_span (ato_redact_buf *out, const char *data,
                                  size_t from, size_t to, const hit_list *h,
                                  size_t line_start) {
  size_t pos = from, i;
  for (i = 0; i < h->n; i++) {
    const scan_hit *x = &h->items[i];
    if (x->line_start != line_start || x->end <= pos || x->start >= to) continue;
    if (x->start > pos) ato_redact_buf_append(out, data + pos, x->start - pos);
    ato_redact_value(data + x->start, x->end - x->start, out);
    pos = x->end;
  }
  if (pos < to) ato_redact_buf_append(out, data + pos, to - pos);
}

/* The secret's line, cut around it, with secrets redacted (ours and any
   other the redactor knows). */
static char *line_text (const char *data, const scan_hit *hit, const hit_list *h) {
  size_t from = hit->line_start, to = hit->line_end;
  ato_redact_buf first = ATO_REDACT_BUF_INIT, second = ATO_REDACT_BUF_INIT;
  char *result = NULL;
  if (hit->start > from + LINE_CONTEXT) from = hit->start - LINE_CONTEXT;
  if (to > hit->end + LINE_CONTEXT) to = hit->end + LINE_CONTEXT;
  if (from > hit->line_start) ato_redact_buf_append(&first, "…", 3);
  append_redacted_span(&first, data, from, to, h, hit->line_start);
  if (to < hit->line_end) ato_redact_buf_append(&first, "…", 3);
  if (!first.oom && ato_redact_text(first.data ? first.data : "", first.len, &second)
      != ATO_REDACT_ENOMEM)
    result = dup_bytes(second.data ? second.data : "", second.len);
  ato_redact_buf_free(&first);
  ato_redact_buf_free(&second);
  return result;
}

static scan_record *make_record (const char *path, const char *data,
                                 const scan_hit *hit, const hit_list *h,
                                 long commit) {
  scan_record *r = calloc(1, sizeof *r);
  ato_redact_buf red = ATO_REDACT_BUF_INIT;
  if (r == NULL) return NULL;
  r->rule = hit->rule;
  r->line = hit->line;
  r->column = hit->column;
  r->offset = hit->start;
  r->commit = commit;
  r->secret_len = hit->end - hit->start;
  r->secret = dup_bytes(data + hit->start, r->secret_len);
  r->path = strdup(path);
  ato_sha256_hex(data + hit->start, r->secret_len, r->fingerprint);
  if (ato_redact_value(data + hit->start, r->secret_len, &red) == 0)
    r->redacted = dup_bytes(red.data ? red.data : "", red.len);
  ato_redact_buf_free(&red);
  r->line_text = line_text(data, hit, h);
  if (!r->secret || !r->path || !r->redacted || !r->line_text) {
    scan_record_free(r);
    return NULL;
  }
  return r;
}

/* Scans one buffer and appends its records to the job. */
static void scan_one (scan_job *j, scan_ctx *ctx, hit_list *h, const char *path,
                      const char *data, size_t len, long commit) {
  scan_options so;
  scan_record *head = NULL, *tail = NULL;
  size_t i, n = 0;
  memset(&so, 0, sizeof so);
  so.no_validators = j->opt.no_validators;
  h->n = 0;
  if (scan_buffer(ctx, data, len, &so, collect_hit, h) < 0) {
    char reason[128];
    snprintf(reason, sizeof reason, "scan failed: %s", strerror(errno));
    add_skip(j, path, reason);
    return;
  }
  for (i = 0; i < h->n; i++) {
    scan_record *r = make_record(path, data, &h->items[i], h, commit);
    if (r == NULL) continue;          /* out of memory: this record is lost */
    if (tail) tail->next = r;
    else head = r;
    tail = r;
    n++;
  }
  if (head == NULL) return;
  pthread_mutex_lock(&j->mu);
  if (j->rec_tail) j->rec_tail->next = head;
  else j->rec_head = head;
  j->rec_tail = tail;
  j->stats.findings += n;
  pthread_mutex_unlock(&j->mu);
  j->notify(j->ud);
}

/* }====================================================== */

/* {====================================================== reading files */

typedef struct worker {
  scan_job *j;
  scan_ctx *ctx;
  hit_list hits;
  char *buf;
  size_t cap;
} worker;

static int is_binary (const char *data, size_t len) {
  return memchr(data, '\0', len < BINARY_PROBE ? len : BINARY_PROBE) != NULL;
}

/* Reads fd's size bytes into the worker's buffer; 0 or errno. */
static int read_all (worker *w, int fd, size_t size, size_t *got) {
  size_t off = 0;
  if (size + 1 > w->cap) {
    char *buf = realloc(w->buf, size + 1);
    if (buf == NULL) return ENOMEM;
    w->buf = buf;
    w->cap = size + 1;
  }
  while (off < size) {
    ssize_t r = read(fd, w->buf + off, size - off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    if (r == 0) break;                /* the file shrank meanwhile */
    off += (size_t)r;
  }
  *got = off;
  return 0;
}

static void skip_errno (scan_job *j, const char *path, const char *what, int err) {
  char reason[256];
  snprintf(reason, sizeof reason, "%s: %s", what, strerror(err));
  add_skip(j, path, reason);
}

static void scan_file (worker *w, const char *path) {
  scan_job *j = w->j;
  struct stat st;
  size_t got = 0;
  int err, fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { skip_errno(j, path, "cannot open", errno); return; }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    if (!S_ISREG(st.st_mode)) add_skip(j, path, "not a regular file");
    return;
  }
  if ((size_t)st.st_size > j->opt.max_file_size) {
    char reason[128];
    close(fd);
    snprintf(reason, sizeof reason, "too large: %lld bytes (limit %zu)",
             (long long)st.st_size, j->opt.max_file_size);
    add_skip(j, path, reason);
    return;
  }
  err = read_all(w, fd, (size_t)st.st_size, &got);
  close(fd);
  if (err) { skip_errno(j, path, "cannot read", err); return; }
  if (!j->opt.binary && is_binary(w->buf, got)) {
    pthread_mutex_lock(&j->mu);
    j->stats.binary_skipped++;
    pthread_mutex_unlock(&j->mu);
    return;
  }
  scan_one(j, w->ctx, &w->hits, path, w->buf, got, -1);
  pthread_mutex_lock(&j->mu);
  j->stats.files++;
  j->stats.bytes += got;
  pthread_mutex_unlock(&j->mu);
}

/* A blob's label: its path, or "blob <hex id>" for an unreachable one. */
static void blob_label (const scan_git_blob *b, char *out, size_t n) {
  char hex[41];
  if (b->path) {
    snprintf(out, n, "%s", b->path);
    return;
  }
  scan_git_oid_hex(b->oid, hex);
  snprintf(out, n, "blob %s", hex);
}

static void scan_blob (worker *w, scan_git_reader *reader, size_t index) {
  scan_job *j = w->j;
  size_t nblobs, len, size;
  const scan_git_blob *b = &scan_git_blobs(j->git, &nblobs)[index];
  const char *data;
  char label[4096];
  blob_label(b, label, sizeof label);
  if (scan_git_read_size(reader, index, &size) == 0 && size > j->opt.max_file_size) {
    char reason[128];
    snprintf(reason, sizeof reason, "too large: %zu bytes (limit %zu)", size,
             j->opt.max_file_size);
    add_skip(j, label, reason);
    return;
  }
  if (scan_git_read(reader, index, &data, &len) != 0) {
    add_skip(j, label, scan_git_reader_error(reader));
    return;
  }
  if (!j->opt.binary && is_binary(data, len)) {
    pthread_mutex_lock(&j->mu);
    j->stats.binary_skipped++;
    pthread_mutex_unlock(&j->mu);
    return;
  }
  scan_one(j, w->ctx, &w->hits, label, data, len, b->commit);
  pthread_mutex_lock(&j->mu);
  j->stats.blobs++;
  j->stats.bytes += len;
  pthread_mutex_unlock(&j->mu);
}

/* }====================================================== */

/* {====================================================== the queue */

/* Producer side: waits for room; 0, or -1 when cancelled. */
static int push_path (scan_job *j, char *path) {
  pthread_mutex_lock(&j->mu);
  while (j->qcount == QUEUE_CAP && !atomic_load(&j->cancelled))
    pthread_cond_wait(&j->has_space, &j->mu);
  if (atomic_load(&j->cancelled)) {
    pthread_mutex_unlock(&j->mu);
    free(path);
    return -1;
  }
  j->paths[(j->qhead + j->qcount++) % QUEUE_CAP] = path;
  pthread_cond_signal(&j->has_items);
  pthread_mutex_unlock(&j->mu);
  return 0;
}

/* Consumer side: a path (caller frees) or NULL when all is done. */
static char *pop_path (scan_job *j) {
  char *path = NULL;
  pthread_mutex_lock(&j->mu);
  while (j->qcount == 0 && !j->producer_done && !atomic_load(&j->cancelled))
    pthread_cond_wait(&j->has_items, &j->mu);
  if (j->qcount > 0 && !atomic_load(&j->cancelled)) {
    path = j->paths[j->qhead];
    j->qhead = (j->qhead + 1) % QUEUE_CAP;
    j->qcount--;
    pthread_cond_signal(&j->has_space);
  }
  pthread_mutex_unlock(&j->mu);
  return path;
}

static void producer_finished (scan_job *j) {
  pthread_mutex_lock(&j->mu);
  j->producer_done = 1;
  pthread_cond_broadcast(&j->has_items);
  pthread_mutex_unlock(&j->mu);
}

/* }====================================================== */

/* {====================================================== walking trees */

/* Directories entered, by (dev, ino): followed symlinks cannot loop. An
   open-addressing set; it only grows. */
typedef struct scan_seen {
  uint64_t *keys;             /* (dev * 2^40 ^ ino) + 1: 0 marks a free slot */
  size_t n, cap;
} scan_seen;

static void scan_seen_init (scan_seen *s) {
  s->keys = NULL;
  s->n = s->cap = 0;
}

static void scan_seen_free (scan_seen *s) {
  free(s->keys);
}

static int seen_insert (uint64_t *keys, size_t cap, uint64_t key) {
  size_t i = (size_t)(key * 0x9E3779B97F4A7C15ULL) & (cap - 1);
  while (keys[i] != 0) {
    if (keys[i] == key) return 0;
    i = (i + 1) & (cap - 1);
  }
  keys[i] = key;
  return 1;
}

/* 1 if (dev, ino) is new (and now recorded), 0 if seen (or no memory). */
static int scan_seen_add (scan_seen *s, uint64_t dev, uint64_t ino) {
  uint64_t key = ((dev << 40) ^ ino) + 1;   /* +1, not |1: inodes 2k, 2k+1 differ */
  if (key == 0) key = 1;
  if ((s->n + 1) * 2 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256, i;
    uint64_t *keys = calloc(cap, sizeof *keys);
    if (keys == NULL) return 0;
    for (i = 0; i < s->cap; i++)
      if (s->keys[i]) seen_insert(keys, cap, s->keys[i]);
    free(s->keys);
    s->keys = keys;
    s->cap = cap;
  }
  if (!seen_insert(s->keys, s->cap, key)) return 0;
  s->n++;
  return 1;
}

/* .gitignore rules of the work tree holding a directory, through libgit2
   (the same rules git applies, nested .gitignore files included). As in
   git, a tracked file is never ignored: the classic leak is a committed
   .env that was added to .gitignore afterwards. */
typedef struct scan_gitignore {
  git_repository *repo;
  git_index *index;           /* NULL: treat nothing as tracked */
  size_t workdir_len;
} scan_gitignore;

static scan_gitignore *scan_gitignore_open (const char *dir) {
  scan_gitignore *g = calloc(1, sizeof *g);
  const char *workdir;
  char real[4096];
  if (g == NULL) return NULL;
  git_libgit2_init();
  if (realpath(dir, real) == NULL ||
      git_repository_open_ext(&g->repo, real, 0, NULL) != 0 ||
      (workdir = git_repository_workdir(g->repo)) == NULL) {
    if (g->repo) git_repository_free(g->repo);
    free(g);
    git_libgit2_shutdown();
    return NULL;                       /* not in a work tree: nothing ignored */
  }
  g->workdir_len = strlen(workdir);
  if (git_repository_index(&g->index, g->repo) != 0) g->index = NULL;
  return g;
}

/* Is rel (a file), or anything under rel/ (a directory), in the index? */
static int is_tracked (scan_gitignore *g, const char *rel, int is_dir) {
  size_t pos;
  if (g->index == NULL) return 0;
  if (!is_dir) return git_index_get_bypath(g->index, rel, 0) != NULL;
  return git_index_find_prefix(&pos, g->index, rel) == 0;  /* rel ends in '/' */
}

static int scan_gitignore_ignored (scan_gitignore *g, const char *path, int is_dir) {
  char real[4096], rel[4096];
  int ignored = 0;
  (void)is_dir;
  if (realpath(path, real) == NULL || strlen(real) + 1 < g->workdir_len) return 0;
  snprintf(rel, sizeof rel, "%s%s", real + g->workdir_len - 1 + (real[g->workdir_len - 1] == '/'),
           is_dir ? "/" : "");
  if (git_ignore_path_is_ignored(&ignored, g->repo, rel) != 0) return 0;
  return ignored && !is_tracked(g, rel, is_dir);
}

static void scan_gitignore_close (scan_gitignore *g) {
  if (g == NULL) return;
  git_index_free(g->index);
  git_repository_free(g->repo);
  free(g);
  git_libgit2_shutdown();
}

static char *join_path (const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (p == NULL) return NULL;
  memcpy(p, dir, a);
  if (a > 0 && dir[a - 1] != '/') p[a++] = '/';
  memcpy(p + a, name, b + 1);
  return p;
}

typedef struct dir_stack {
  char **items;
  size_t n, cap;
} dir_stack;

static int stack_push (dir_stack *s, char *dir) {
  if (dir == NULL) return -1;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    char **items = realloc(s->items, cap * sizeof *items);
    if (items == NULL) { free(dir); return -1; }
    s->items = items;
    s->cap = cap;
  }
  s->items[s->n++] = dir;
  return 0;
}

/* Type of a directory entry, with lstat when the file system hides it. */
static unsigned entry_type (const char *path, unsigned char d_type) {
  struct stat st;
  if (d_type != DT_UNKNOWN) return d_type;
  if (lstat(path, &st) != 0) return DT_UNKNOWN;
  if (S_ISDIR(st.st_mode)) return DT_DIR;
  if (S_ISREG(st.st_mode)) return DT_REG;
  if (S_ISLNK(st.st_mode)) return DT_LNK;
  return DT_UNKNOWN;
}

/* A symlink's target kind (followed), for follow_links. */
static unsigned link_target_type (const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return DT_UNKNOWN;
  return S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
}

/* Lists one directory: files go to the queue, directories to the stack. */
static int walk_dir (scan_job *j, const char *dir, dir_stack *stack,
                     scan_gitignore *ignore) {
  DIR *d = opendir(dir);
  struct dirent *ent;
  if (d == NULL) { skip_errno(j, dir, "cannot list", errno); return 0; }
  while ((ent = readdir(d)) != NULL && !atomic_load(&j->cancelled)) {
    const char *name = ent->d_name;
    char *path;
    unsigned type;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
    if (strcmp(name, ".git") == 0) continue;   /* git internals: --git scans history */
    if ((path = join_path(dir, name)) == NULL) break;
    type = entry_type(path, ent->d_type);
    if (type == DT_LNK && j->opt.follow_links) type = link_target_type(path);
    if (ignore && scan_gitignore_ignored(ignore, path, type == DT_DIR)) {
      free(path);
      continue;
    }
    if (type == DT_DIR) stack_push(stack, path);
    else if (type == DT_REG) { if (push_path(j, path) != 0) break; }
    else free(path);                   /* links (not followed), devices... */
  }
  closedir(d);
  return 0;
}

/* Depth-first over one source (a file or a directory). Directories already
   entered are remembered by (dev, ino) so followed links cannot loop. */
static void walk_source (scan_job *j, const char *source) {
  struct stat st;
  dir_stack stack = {NULL, 0, 0};
  scan_gitignore *ignore = NULL;
  scan_seen seen;
  if (stat(source, &st) != 0) { skip_errno(j, source, "cannot open", errno); return; }
  if (!S_ISDIR(st.st_mode)) { push_path(j, strdup(source)); return; }
  scan_seen_init(&seen);
  if (j->opt.gitignore) ignore = scan_gitignore_open(source);
  stack_push(&stack, strdup(source));
  while (stack.n > 0 && !atomic_load(&j->cancelled)) {
    char *dir = stack.items[--stack.n];
    if (stat(dir, &st) == 0 && scan_seen_add(&seen, (uint64_t)st.st_dev, (uint64_t)st.st_ino))
      walk_dir(j, dir, &stack, ignore);
    free(dir);
  }
  while (stack.n > 0) free(stack.items[--stack.n]);
  free(stack.items);
  scan_seen_free(&seen);
  scan_gitignore_close(ignore);
}

/* }====================================================== */

/* {====================================================== threads */

static void thread_exit (scan_job *j) {
  int last;
  pthread_mutex_lock(&j->mu);
  last = --j->running == 0;
  pthread_mutex_unlock(&j->mu);
  if (last) j->notify(j->ud);
}

static void *walker_main (void *arg) {
  scan_job *j = arg;
  size_t i;
  for (i = 0; i < j->nsources && !atomic_load(&j->cancelled); i++)
    walk_source(j, j->sources[i]);
  producer_finished(j);
  thread_exit(j);
  return NULL;
}

/* Enumerates the history; the workers then take blob indexes. */
static void *git_producer_main (void *arg) {
  scan_job *j = arg;
  char err[512];
  scan_git_progress p;
  if (scan_git_enumerate(j->git, j->opt.all_objects ? SCAN_GIT_ALL_OBJECTS : 0,
                         err, sizeof err) != 0 && !atomic_load(&j->cancelled))
    set_error(j, err);
  scan_git_get_progress(j->git, &p);
  pthread_mutex_lock(&j->mu);
  j->stats.commits = p.commits;
  pthread_mutex_unlock(&j->mu);
  producer_finished(j);
  thread_exit(j);
  return NULL;
}

static int worker_init (worker *w, scan_job *j) {
  memset(w, 0, sizeof *w);
  w->j = j;
  w->ctx = scan_ctx_new(j->e);
  return w->ctx ? 0 : -1;
}

static void worker_free (worker *w) {
  scan_ctx_free(w->ctx);
  free(w->hits.items);
  free(w->buf);
}

/* Git workers take blob indexes from a shared counter, once the history
   is enumerated (the blob list is complete and no longer moves). */
static void next_blob_wait (scan_job *j) {
  pthread_mutex_lock(&j->mu);
  while (!j->producer_done && !atomic_load(&j->cancelled))
    pthread_cond_wait(&j->has_items, &j->mu);
  pthread_mutex_unlock(&j->mu);
}

static size_t next_blob (scan_job *j, int *done) {
  size_t index = 0, total = 0;
  pthread_mutex_lock(&j->mu);
  while (!j->producer_done && !atomic_load(&j->cancelled))
    pthread_cond_wait(&j->has_items, &j->mu);
  *done = 1;
  if (!atomic_load(&j->cancelled) && j->error == NULL) scan_git_blobs(j->git, &total);
  if (j->qhead < total) {
    index = j->qhead++;
    *done = 0;
  }
  pthread_mutex_unlock(&j->mu);
  return index;
}

static void run_git_worker (worker *w) {
  scan_job *j = w->j;
  char err[512];
  int done = 0;
  scan_git_reader *reader;
  next_blob_wait(j);                   /* readers need the enumerated history */
  if (scan_job_error(j) || atomic_load(&j->cancelled)) return;
  if ((reader = scan_git_reader_new(j->git, err, sizeof err)) == NULL) {
    set_error(j, err);
    return;
  }
  for (;;) {
    size_t index = next_blob(j, &done);
    if (done) break;
    scan_blob(w, reader, index);
  }
  scan_git_reader_free(reader);
}

static void *worker_main (void *arg) {
  scan_job *j = arg;
  worker w;
  if (worker_init(&w, j) != 0) set_error(j, "not enough memory for a scan context");
  else if (j->kind == SCAN_JOB_TEXT) {
    scan_one(j, w.ctx, &w.hits, j->sources[0], j->text, j->text_len, -1);
    pthread_mutex_lock(&j->mu);
    j->stats.bytes += j->text_len;
    pthread_mutex_unlock(&j->mu);
  } else if (j->kind == SCAN_JOB_GIT) {
    run_git_worker(&w);
  } else {
    char *path;
    while ((path = pop_path(j)) != NULL) {
      scan_file(&w, path);
      free(path);
    }
  }
  worker_free(&w);
  thread_exit(j);
  return NULL;
}

static int default_threads (void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* }====================================================== */

/* {====================================================== life */

static void job_free_memory (scan_job *j) {
  size_t i;
  while (j->qcount > 0) {
    free(j->paths[j->qhead]);
    j->qhead = (j->qhead + 1) % QUEUE_CAP;
    j->qcount--;
  }
  for (i = 0; i < j->nsources; i++) free(j->sources[i]);
  free(j->sources);
  free(j->text);
  free(j->paths);
  free(j->threads);
  scan_record_free(j->rec_head);
  scan_skip_free(j->skip_head);
  if (j->git) scan_git_close(j->git);
  free(j->error);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->has_items);
  pthread_cond_destroy(&j->has_space);
  free(j);
}

static int copy_sources (scan_job *j, const char *const *sources, size_t n) {
  size_t i;
  if ((j->sources = calloc(n ? n : 1, sizeof *j->sources)) == NULL) return -1;
  for (i = 0; i < n; i++)
    if ((j->sources[i] = strdup(sources[i])) == NULL) return -1;
  j->nsources = n;
  return 0;
}

/* Starts thread i running fn; counts it as running before it can exit. */
static int start_thread (scan_job *j, void *(*fn) (void *)) {
  int r;
  pthread_mutex_lock(&j->mu);
  j->running++;
  pthread_mutex_unlock(&j->mu);
  r = pthread_create(&j->threads[j->started], NULL, fn, j);
  if (r != 0) {
    pthread_mutex_lock(&j->mu);
    j->running--;
    pthread_mutex_unlock(&j->mu);
    return r;
  }
  j->started++;
  return 0;
}

scan_job *scan_job_start (const scan_engine *e, scan_job_kind kind,
                          const char *const *sources, size_t nsources,
                          const char *text, size_t text_len,
                          const scan_job_options *opt,
                          void (*notify) (void *ud), void *ud,
                          char *err, size_t errlen) {
  scan_job *j = calloc(1, sizeof *j);
  int workers, i;
  if (j == NULL) { snprintf(err, errlen, "not enough memory"); return NULL; }
  j->e = e;
  j->kind = kind;
  j->opt = *opt;
  j->notify = notify;
  j->ud = ud;
  j->text_len = text_len;
  atomic_init(&j->cancelled, 0);
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->has_items, NULL);
  pthread_cond_init(&j->has_space, NULL);
  workers = kind == SCAN_JOB_TEXT ? 1 : (opt->threads > 0 ? opt->threads : default_threads());
  if (copy_sources(j, sources, nsources) != 0 ||
      (kind == SCAN_JOB_TEXT && (j->text = dup_bytes(text ? text : "", text_len)) == NULL) ||
      (j->paths = calloc(QUEUE_CAP, sizeof *j->paths)) == NULL ||
      (j->threads = calloc((size_t)workers + 1, sizeof *j->threads)) == NULL) {
    snprintf(err, errlen, "not enough memory");
    job_free_memory(j);
    return NULL;
  }
  if (kind == SCAN_JOB_GIT) {
    if (scan_git_open(sources[0], &j->git, err, errlen) != 0) {
      j->git = NULL;
      job_free_memory(j);
      return NULL;
    }
    if (!scan_git_threadsafe()) workers = 1;
  }
  if (kind == SCAN_JOB_TEXT) j->producer_done = 1;
  else if (start_thread(j, kind == SCAN_JOB_GIT ? git_producer_main : walker_main) != 0)
    goto no_thread;
  for (i = 0; i < workers; i++)
    if (start_thread(j, worker_main) != 0) {
      if (i == 0) goto no_thread;
      break;                           /* fewer workers than asked: fine */
    }
  return j;
no_thread:
  snprintf(err, errlen, "cannot start a scan thread");
  scan_job_cancel(j);
  for (i = 0; i < j->started; i++) pthread_join(j->threads[i], NULL);
  job_free_memory(j);
  return NULL;
}

int scan_job_finished (scan_job *j) {
  int done;
  pthread_mutex_lock(&j->mu);
  done = j->running == 0;
  pthread_mutex_unlock(&j->mu);
  return done;
}

const char *scan_job_error (scan_job *j) {
  const char *e;
  pthread_mutex_lock(&j->mu);
  e = j->error;
  pthread_mutex_unlock(&j->mu);
  return e;
}

void scan_job_cancel (scan_job *j) {
  atomic_store(&j->cancelled, 1);
  if (j->git) scan_git_cancel(j->git);
  pthread_mutex_lock(&j->mu);
  pthread_cond_broadcast(&j->has_items);
  pthread_cond_broadcast(&j->has_space);
  pthread_mutex_unlock(&j->mu);
}

void scan_job_free (scan_job *j) {
  int i;
  if (j == NULL) return;
  scan_job_cancel(j);
  for (i = 0; i < j->started; i++) pthread_join(j->threads[i], NULL);
  job_free_memory(j);
}

int scan_job_commit (scan_job *j, long index, scan_commit_info *out) {
  const scan_git_commit *commits;
  size_t n = 0;
  memset(out, 0, sizeof *out);
  if (j->git == NULL || index < 0) return -1;
  commits = scan_git_commits(j->git, &n);
  if ((size_t)index >= n) return -1;
  out->id = commits[index].id;
  out->author = commits[index].author_name;
  out->email = commits[index].author_email;
  out->time = commits[index].author_time;
  out->offset = commits[index].author_offset;
  return 0;
}

/* }====================================================== */

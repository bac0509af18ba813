/*
** bench/readall.c — the reading ceiling of the scan benchmark: what a file
** scanner could do at best on this machine if matching cost nothing.
**
**   readall [-t THREADS] DIR...
**
** Walks every DIR (opendir/readdir, d_type; symlinks are not followed, as
** `ato scan` does not follow them) and reads each regular file whole into a
** reused buffer, the way a scanner must before it matches: open, fstat,
** read until EOF, close. No mmap (its munmap is a TLB shootdown per file).
** Each buffer is touched with memchr for a byte that text does not hold, so
** the data really goes through the CPU. With -t 1 one thread walks and
** reads; with -t N (N >= 2) the main thread walks and N threads read from
** a bounded queue. Prints one JSON line: files, bytes, threads, seconds
** (in-process), hits (buffers holding byte 0x01; a checksum of sorts).
**
** Built by bench/scan.lua: cc -O2 -pthread -o bench/out/readall bench/readall.c
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QCAP 4096

typedef struct reader {
  char *buf;
  size_t cap;
  long long files, bytes, hits;
} reader;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t has_items, has_space;
  char *items[QCAP];
  size_t head, count;
  int done;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static void read_file (reader *r, const char *path) {
  int fd = open(path, O_RDONLY | O_NOATIME | O_CLOEXEC);
  if (fd < 0) fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { fprintf(stderr, "readall: %s: %s\n", path, strerror(errno)); return; }
  struct stat st;
  size_t want = 0, got = 0;
  if (fstat(fd, &st) == 0 && st.st_size > 0) want = (size_t)st.st_size;
  if (want + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 1 << 16;
    while (cap < want + 1) cap *= 2;
    char *nb = realloc(r->buf, cap);
    if (nb == NULL) { close(fd); fprintf(stderr, "readall: out of memory\n"); exit(1); }
    r->buf = nb;
    r->cap = cap;
  }
  for (;;) {                         /* read to EOF: the file may have grown */
    if (got == r->cap) {
      char *nb = realloc(r->buf, r->cap * 2);
      if (nb == NULL) { close(fd); fprintf(stderr, "readall: out of memory\n"); exit(1); }
      r->buf = nb;
      r->cap *= 2;
    }
    ssize_t n = read(fd, r->buf + got, r->cap - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "readall: %s: %s\n", path, strerror(errno));
      break;
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  close(fd);
  r->files++;
  r->bytes += (long long)got;
  if (got > 0 && memchr(r->buf, 1, got) != NULL) r->hits++;
}

static void push (char *path) {
  pthread_mutex_lock(&q.mu);
  while (q.count == QCAP) pthread_cond_wait(&q.has_space, &q.mu);
  q.items[(q.head + q.count) % QCAP] = path;
  q.count++;
  pthread_cond_signal(&q.has_items);
  pthread_mutex_unlock(&q.mu);
}

static char *pop (void) {
  char *p = NULL;
  pthread_mutex_lock(&q.mu);
  while (q.count == 0 && !q.done) pthread_cond_wait(&q.has_items, &q.mu);
  if (q.count > 0) {
    p = q.items[q.head];
    q.head = (q.head + 1) % QCAP;
    q.count--;
    pthread_cond_signal(&q.has_space);
  }
  pthread_mutex_unlock(&q.mu);
  return p;
}

static void *worker (void *ud) {
  reader *r = ud;
  char *p;
  while ((p = pop()) != NULL) {
    read_file(r, p);
    free(p);
  }
  return NULL;
}

/* Walks dir; each regular file goes to r (inline) or to the queue. */
static void walk (const char *dir, reader *inline_reader) {
  DIR *d = opendir(dir);
  if (d == NULL) { fprintf(stderr, "readall: %s: %s\n", dir, strerror(errno)); return; }
  struct dirent *e;
  size_t dl = strlen(dir);
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
    size_t nl = strlen(n);
    char *p = malloc(dl + nl + 2);
    if (p == NULL) { fprintf(stderr, "readall: out of memory\n"); exit(1); }
    memcpy(p, dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, n, nl + 1);
    unsigned char t = e->d_type;
    if (t == DT_UNKNOWN) {
      struct stat st;
      if (lstat(p, &st) == 0)
        t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
    }
    if (t == DT_DIR) {
      walk(p, inline_reader);
      free(p);
    } else if (t == DT_REG) {
      if (inline_reader) { read_file(inline_reader, p); free(p); }
      else push(p);
    } else {
      free(p);
    }
  }
  closedir(d);
}

int main (int argc, char **argv) {
  int threads = 1, i = 1;
  if (argc > 2 && strcmp(argv[1], "-t") == 0) { threads = atoi(argv[2]); i = 3; }
  if (threads < 1 || i >= argc) {
    fprintf(stderr, "usage: readall [-t THREADS] DIR...\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  reader *rs = calloc((size_t)threads, sizeof *rs);
  if (rs == NULL) return 1;
  if (threads == 1) {
    for (; i < argc; i++) walk(argv[i], &rs[0]);
  } else {
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    if (tids == NULL) return 1;
    for (int k = 0; k < threads; k++) pthread_create(&tids[k], NULL, worker, &rs[k]);
    for (; i < argc; i++) walk(argv[i], NULL);
    pthread_mutex_lock(&q.mu);
    q.done = 1;
    pthread_cond_broadcast(&q.has_items);
    pthread_mutex_unlock(&q.mu);
    for (int k = 0; k < threads; k++) pthread_join(tids[k], NULL);
    free(tids);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long files = 0, bytes = 0, hits = 0;
  for (int k = 0; k < threads; k++) {
    files += rs[k].files;
    bytes += rs[k].bytes;
    hits += rs[k].hits;
    free(rs[k].buf);
  }
  free(rs);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("{\"files\":%lld,\"bytes\":%lld,\"threads\":%d,\"seconds\":%.6f,\"hits\":%lld}\n",
         files, bytes, threads, secs, hits);
  return 0;
}

/*
** engine.c — the scanning engine: vectorscan finds where each rule may
** match, PCRE2-JIT confirms in a bounded window and extracts the secret,
** validators decide, findings come out in offset order with their line
** and column. The pipeline and its window arithmetic are described in
** scan.h. An engine is immutable after scan_engine_new; each thread scans
** with its own scan_ctx (vectorscan scratch, PCRE2 match data and JIT
** stack, and the growable arrays of one scan).
*/
#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hs/hs.h>
#include <pcre2.h>

/*
** Debian 12's vectorscan 5.4.9 is a "fat" build: hs_scan dispatches to a
** variant for the CPU. Its AVX-512 variant misses matches depending on the
** buffer's address (a rule like `^...(?i:token|...)[A-Za-z0-9_.-]{0,40}=`
** finds one of two lines at 55 of 64 offsets; the AVX2 variant finds both,
** as does the AVX-512 machine under valgrind, which hides AVX-512). The
** build exports its variants, so we call the AVX2 one where the CPU has
** AVX2. Weak: a libhs without these symbols leaves them NULL.
*/
extern hs_error_t avx2_hs_scan (const hs_database_t *db, const char *data,
                                unsigned int length, unsigned int flags,
                                hs_scratch_t *scratch,
                                match_event_handler onEvent, void *context)
  __attribute__((weak));

typedef hs_error_t (*hs_scan_fn) (const hs_database_t *, const char *,
                                  unsigned int, unsigned int, hs_scratch_t *,
                                  match_event_handler, void *);

static int use_avx2_variant (void) {
  return avx2_hs_scan != NULL && __builtin_cpu_supports("avx2");
}

static hs_scan_fn pick_scan_variant (void) {
  return use_avx2_variant() ? avx2_hs_scan : hs_scan;
}

/* The platform the database is built for: the host's, without AVX-512
   when the AVX2 variant scans (it refuses databases that use AVX-512). */
static void target_platform (hs_platform_info_t *pl) {
  memset(pl, 0, sizeof *pl);
  if (hs_populate_platform(pl) != HS_SUCCESS) memset(pl, 0, sizeof *pl);
  if (use_avx2_variant())
    pl->cpu_features &= ~(unsigned long long)(HS_CPU_FEATURES_AVX512 |
                                              HS_CPU_FEATURES_AVX512VBMI);
}

#include "sha256.h"
#include "scan.h"

/* vectorscan takes an unsigned int length: bigger buffers are scanned in
   chunks of this size that overlap by the widest rule's width. Tests may
   shrink it with -D. */
#ifndef SCAN_HS_CHUNK
#define SCAN_HS_CHUNK ((size_t)1 << 30)
#endif

#define LOOKAHEAD 256             /* subject bytes past a window's last match */
#define MATCH_LIMIT 100000        /* PCRE2 backtracking per start position */
#define HEAP_LIMIT_KIB 32768      /* PCRE2 interpreter heap per match */
#define JIT_STACK_MIN (32 * 1024)
#define JIT_STACK_MAX (1024 * 1024)
#define KEEP_BYTES (1u << 20)     /* ctx arrays bigger than this are freed after a scan */

#define CACHE_FORMAT "ato-scan-cache-2"     /* 2: triggers */
#define CACHE_MAGIC "ATOHSDB1"
#define CACHE_HEADER (8 + 32 + 32)
#define CACHE_MAX ((size_t)512 << 20)

#define ALLOW_TAG "ato:allow"
#define ALLOW_LEN 9
#define SHORT_BACK 256            /* first try for where a match starts, see confirm_run */

enum { V_NONE, V_GITHUB, V_NPM };

/* What the engine knows about one rule beyond its text. */
typedef struct rule_rt {
  pcre2_code *code;
  int jit;                  /* pcre2_jit_compile succeeded */
  int validator;            /* V_* */
  size_t width;             /* W: longest match considered (scan.h) */
  size_t step;              /* S = max(W, SCAN_MIN_STEP) */
  size_t next_shared;       /* the next rule with the same trigger, or NONE */
  int in_db;                /* its expression (pattern or trigger) is in the db */
} rule_rt;

#define NONE ((size_t)-1)

struct scan_engine {
  scan_ruleset rules;       /* own deep copy */
  rule_rt *rt;
  hs_database_t *db;        /* NULL when there are no rules */
  size_t overlap;           /* chunk overlap for buffers over SCAN_HS_CHUNK */
  int cached;
  char cache_error[512];    /* "" when the cache worked or was not asked for */
  hs_scan_fn scan_fn;       /* hs_scan, or its AVX2 variant (see above) */
};

/* A run of vectorscan ends of one rule: the first (to), the last (tmax)
   and how many; ends within one step after `to` join its run. */
typedef struct record { size_t to, tmax, count, rule; } record;
typedef struct cand { size_t start, end, mstart, mend, rule; } cand;

struct scan_ctx {
  const scan_engine *e;
  hs_scratch_t *scratch;
  pcre2_match_data *md;
  pcre2_match_context *mc;
  pcre2_jit_stack *js;
  size_t *last;             /* per rule: index + 1 of its last record, 0 = none */
  size_t base;              /* offset of the chunk vectorscan is scanning */
  int oom;                  /* the match callback ran out of memory */
  record *recs; size_t nrecs, caprecs;
  cand *cands; size_t ncands, capcands;
};

/* {====================================================== small helpers */

static size_t min_size (size_t a, size_t b) { return a < b ? a : b; }

/* a + b, or limit when the sum would pass it (or overflow) */
static size_t add_clip (size_t a, size_t b, size_t limit) {
  return (b > limit || a > limit - b) ? limit : a + b;
}

/* Makes room for one more element of size `size` in *arr. */
static int reserve (void **arr, size_t *cap, size_t n, size_t size) {
  size_t ncap;
  void *a;
  if (n < *cap) return 0;
  ncap = *cap ? *cap * 2 : 64;
  if (ncap < *cap || ncap > SIZE_MAX / size) return -1;
  if ((a = realloc(*arr, ncap * size)) == NULL) return -1;
  *arr = a;
  *cap = ncap;
  return 0;
}

/* Newlines and other control bytes would break the one-line contract. */
static void one_line (char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20) *s = ' ';
}

static void set_err (char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  one_line(err);
}

static void rule_err (char *err, size_t errlen, const scan_rule *r,
                      const char *fmt, ...) {
  va_list ap;
  int n;
  if (errlen == 0) return;
  n = snprintf(err, errlen, "rule %s (%s:%d): ", r->id ? r->id : "?",
               r->file ? r->file : "?", r->line);
  if (n >= 0 && (size_t)n < errlen) {
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  one_line(err);
}

/* }====================================================== */

/* {====================================================== compiling rules */

static unsigned hs_flags_of (const scan_rule *r) {
  return HS_FLAG_MULTILINE | (r->prefilter ? HS_FLAG_PREFILTER : 0);
}

/* What vectorscan runs for a rule: its trigger (exact), or its pattern. */
static const char *hs_expression_of (const scan_rule *r, unsigned *flags) {
  if (r->trigger != NULL) {
    *flags = HS_FLAG_MULTILINE;
    return r->trigger;
  }
  *flags = hs_flags_of(r);
  return r->pattern;
}

/*
** Rules with the same trigger share one vectorscan expression: the first
** of them is in the database, and its match is recorded for each rule of
** its chain (on_match): a family of rules that starts from the same
** keywords makes one callback per keyword, not one per rule.
*/
static void link_shared_triggers (scan_engine *e) {
  size_t i, j;
  for (i = 0; i < e->rules.n; i++) {
    e->rt[i].next_shared = NONE;
    e->rt[i].in_db = 1;
  }
  for (i = 0; i < e->rules.n; i++) {
    const char *t = e->rules.rules[i].trigger;
    size_t tail = i;
    if (t == NULL || !e->rt[i].in_db) continue;
    for (j = i + 1; j < e->rules.n; j++) {
      const char *u = e->rules.rules[j].trigger;
      if (u != NULL && e->rt[j].in_db && strcmp(t, u) == 0) {
        e->rt[j].in_db = 0;
        e->rt[tail].next_shared = j;
        tail = j;
      }
    }
  }
}

static int validator_of (const scan_rule *r, int *out) {
  if (r->validator == NULL) *out = V_NONE;
  else if (strcmp(r->validator, "github_crc32") == 0) *out = V_GITHUB;
  else if (strcmp(r->validator, "npm_crc32") == 0) *out = V_NPM;
  else return -1;
  return 0;
}

/* W from vectorscan's analysis; an unbounded pattern gets its window. */
static int measure_width (const scan_rule *r, rule_rt *rt, char *err,
                          size_t errlen) {
  hs_expr_info_t *info = NULL;
  hs_compile_error_t *ce = NULL;
  if (hs_expression_info(r->pattern, hs_flags_of(r), &info, &ce) != HS_SUCCESS) {
    const char *msg = ce && ce->message ? ce->message : "cannot analyse pattern";
    /* vectorscan has no lookaround or backreferences; prefilter mode
       approximates them and lets PCRE2 decide. */
    int hint = !r->prefilter && strstr(msg, "support") != NULL;
    rule_err(err, errlen, r, "vectorscan: %s%s", msg,
             hint ? " (prefilter = yes lets PCRE2 decide)" : "");
    if (ce != NULL) hs_free_compile_error(ce);
    free(info);
    errno = EINVAL;
    return -1;
  }
  if (info->max_width == UINT_MAX)
    rt->width = r->window ? r->window : SCAN_DEFAULT_WINDOW;
  else
    rt->width = info->max_width;
  rt->step = rt->width > SCAN_MIN_STEP ? rt->width : SCAN_MIN_STEP;
  free(info);
  return 0;
}

static int compile_pcre2 (const scan_rule *r, rule_rt *rt, char *err,
                          size_t errlen) {
  int ec;
  PCRE2_SIZE eo;
  uint32_t groups = 0;
  /* PCRE2_USE_OFFSET_LIMIT: windows bound where a match may start. */
  rt->code = pcre2_compile((PCRE2_SPTR)r->pattern, PCRE2_ZERO_TERMINATED,
                           PCRE2_MULTILINE | PCRE2_USE_OFFSET_LIMIT, &ec, &eo,
                           NULL);
  if (rt->code == NULL) {
    PCRE2_UCHAR msg[256];
    if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
      snprintf((char *)msg, sizeof msg, "error %d", ec);
    rule_err(err, errlen, r, "pcre2: %s at offset %zu", (char *)msg, (size_t)eo);
    errno = ec == PCRE2_ERROR_HEAP_FAILED ? ENOMEM : EINVAL;
    return -1;
  }
  pcre2_pattern_info(rt->code, PCRE2_INFO_CAPTURECOUNT, &groups);
  if (groups != 1) {
    rule_err(err, errlen, r,
             "pattern must have exactly one capturing group (the secret), has %u",
             (unsigned)groups);
    errno = EINVAL;
    return -1;
  }
  rt->jit = pcre2_jit_compile(rt->code, PCRE2_JIT_COMPLETE) == 0;
  return 0;
}

static int prepare_rule (scan_engine *e, size_t i, char *err, size_t errlen) {
  const scan_rule *r = &e->rules.rules[i];
  rule_rt *rt = &e->rt[i];
  if (r->pattern == NULL || r->id == NULL) {
    rule_err(err, errlen, r, "no pattern");
    errno = EINVAL;
    return -1;
  }
  if (validator_of(r, &rt->validator) != 0) {
    rule_err(err, errlen, r, "unknown validator '%s'", r->validator);
    errno = EINVAL;
    return -1;
  }
  if (measure_width(r, rt, err, errlen) != 0) return -1;
  if (compile_pcre2(r, rt, err, errlen) != 0) return -1;
  if (rt->width + LOOKAHEAD > e->overlap) e->overlap = rt->width + LOOKAHEAD;
  return 0;
}

static int compile_database (scan_engine *e, char *err, size_t errlen) {
  hs_platform_info_t pl;
  size_t n = e->rules.n, i, m = 0;
  const char **exprs = calloc(n, sizeof *exprs);
  unsigned *flags = calloc(n, sizeof *flags), *ids = calloc(n, sizeof *ids);
  hs_compile_error_t *ce = NULL;
  int rc = -1;
  if (exprs == NULL || flags == NULL || ids == NULL) {
    set_err(err, errlen, "out of memory");
    errno = ENOMEM;
    goto done;
  }
  for (i = 0; i < n; i++) {
    if (!e->rt[i].in_db) continue;     /* its trigger is another rule's */
    exprs[m] = hs_expression_of(&e->rules.rules[i], &flags[m]);
    ids[m++] = (unsigned)i;
  }
  target_platform(&pl);
  if (hs_compile_multi(exprs, flags, ids, (unsigned)m, HS_MODE_BLOCK, &pl,
                       &e->db, &ce) != HS_SUCCESS) {
    const char *msg = ce && ce->message ? ce->message : "compile failed";
    /* its advice (HS_FLAG_ALLOWEMPTY) is not the rule author's to take */
    if (strstr(msg, "matches empty buffer") != NULL)
      msg = "pattern can match the empty string";
    if (ce && ce->expression >= 0 && (size_t)ce->expression < m)
      rule_err(err, errlen, &e->rules.rules[ids[ce->expression]], "vectorscan: %s%s", msg,
               e->rules.rules[ids[ce->expression]].trigger ? " (in its trigger)" : "");
    else
      set_err(err, errlen, "vectorscan: %s", msg);
    e->db = NULL;
    errno = EINVAL;
    goto done;
  }
  rc = 0;
done:
  if (ce != NULL) hs_free_compile_error(ce);
  free(exprs); free(flags); free(ids);
  return rc;
}

/* }====================================================== */

/* {====================================================== the cache */

static void hash_bytes (ato_sha256_ctx *h, const void *s, size_t n) {
  unsigned char len[8];
  int i;
  for (i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)n >> (8 * i));
  ato_sha256_update(h, len, sizeof len);   /* length-prefixed: no ambiguity */
  ato_sha256_update(h, s, n);
}

static void hash_str (ato_sha256_ctx *h, const char *s) {
  hash_bytes(h, s, strlen(s));
}

/* Everything the vectorscan database depends on. */
static void cache_key (const scan_engine *e, unsigned char key[32]) {
  ato_sha256_ctx h;
  hs_platform_info_t pl;
  size_t i;
  ato_sha256_init(&h);
  hash_str(&h, CACHE_FORMAT);
  hash_str(&h, hs_version());
  target_platform(&pl);
  {
    unsigned long long feat[2] = { pl.tune, pl.cpu_features };
    hash_bytes(&h, feat, sizeof feat);
  }
  for (i = 0; i < e->rules.n; i++) {
    const scan_rule *r = &e->rules.rules[i];
    char pf = (char)(r->prefilter ? '1' : '0');
    hash_str(&h, r->id);
    hash_str(&h, r->pattern);
    hash_str(&h, r->trigger ? r->trigger : "");
    hash_bytes(&h, &pf, 1);
  }
  ato_sha256_final(&h, key);
}

static char *cache_path (const char *dir, const unsigned char key[32]) {
  static const char HEX[] = "0123456789abcdef";
  char hex[65];
  size_t n;
  char *path;
  int i;
  for (i = 0; i < 32; i++) {
    hex[2 * i] = HEX[key[i] >> 4];
    hex[2 * i + 1] = HEX[key[i] & 15];
  }
  hex[64] = '\0';
  n = strlen(dir) + sizeof "/scan-.hsdb" + 64;
  if ((path = malloc(n)) == NULL) return NULL;
  snprintf(path, n, "%s/scan-%s.hsdb", dir, hex);
  return path;
}

/* Reads the whole regular file at path; NULL with errno. */
static char *read_file (const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf = NULL;
  size_t n = 0;
  int saved;
  if (fd < 0) return NULL;
  if (fstat(fd, &st) != 0) goto fail;
  if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > CACHE_MAX) {
    errno = EINVAL;
    goto fail;
  }
  if ((buf = malloc((size_t)st.st_size + 1)) == NULL) goto fail;
  while (n < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) goto fail;
    if (r == 0) break;                     /* shrank: the digest will tell */
    n += (size_t)r;
  }
  close(fd);
  *len = n;
  return buf;
fail:
  saved = errno;
  free(buf);
  close(fd);
  errno = saved;
  return NULL;
}

/* A database that vectorscan accepts and can allocate scratch for. */
static hs_database_t *usable_database (const char *bytes, size_t n) {
  hs_database_t *db = NULL;
  hs_scratch_t *s = NULL;
  if (hs_deserialize_database(bytes, n, &db) != HS_SUCCESS) return NULL;
  if (hs_alloc_scratch(db, &s) != HS_SUCCESS) {
    hs_free_database(db);
    return NULL;
  }
  hs_free_scratch(s);
  return db;
}

/* The cached database, or NULL (missing, unreadable, corrupt, another
   key). Unreadable for another reason than absence is noted in e. */
static hs_database_t *cache_load (scan_engine *e, const char *path,
                                  const unsigned char key[32]) {
  unsigned char digest[32];
  hs_database_t *db = NULL;
  size_t n = 0;
  char *buf = read_file(path, &n);
  if (buf == NULL) {
    if (errno != ENOENT && errno != EINVAL)
      snprintf(e->cache_error, sizeof e->cache_error, "cannot read cache %s: %s",
               path, strerror(errno));
    return NULL;
  }
  if (n > CACHE_HEADER && memcmp(buf, CACHE_MAGIC, 8) == 0 &&
      memcmp(buf + 8, key, 32) == 0) {
    ato_sha256(buf + CACHE_HEADER, n - CACHE_HEADER, digest);
    if (memcmp(buf + 40, digest, 32) == 0)
      db = usable_database(buf + CACHE_HEADER, n - CACHE_HEADER);
  }
  free(buf);
  return db;
}

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs (const char *dir) {
  char *p = malloc(strlen(dir) + 1), *s;
  int rc = 0;
  if (p == NULL) return -1;
  strcpy(p, dir);
  for (s = p + 1; ; s++) {
    if (*s == '/' || *s == '\0') {
      char ch = *s;
      *s = '\0';
      if (mkdir(p, 0700) != 0 && errno != EEXIST) { rc = -1; break; }
      *s = ch;
      if (ch == '\0') break;
    }
  }
  free(p);
  return rc;
}

static int write_all (int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Writes header + serialized database to a temporary file in dir, then
   renames it over path: readers see the old file or the whole new one. */
static void cache_save (scan_engine *e, const char *dir, const char *path,
                        const unsigned char key[32]) {
  char header[CACHE_HEADER], *bytes = NULL, *tmp = NULL;
  const char *what = "serialize";
  size_t n = 0;
  int fd = -1;
  if (make_dirs(dir) != 0) { what = "create directory"; goto fail; }
  if (hs_serialize_database(e->db, &bytes, &n) != HS_SUCCESS) {
    errno = ENOMEM;
    goto fail;
  }
  what = "write";
  if ((tmp = malloc(strlen(dir) + sizeof "/.scan-XXXXXX")) == NULL) goto fail;
  sprintf(tmp, "%s/.scan-XXXXXX", dir);
  if ((fd = mkstemp(tmp)) < 0) { free(tmp); tmp = NULL; goto fail; }
  memcpy(header, CACHE_MAGIC, 8);
  memcpy(header + 8, key, 32);
  ato_sha256(bytes, n, (unsigned char *)header + 40);
  if (fchmod(fd, 0600) != 0 || write_all(fd, header, sizeof header) != 0 ||
      write_all(fd, bytes, n) != 0 || fsync(fd) != 0)
    goto fail;
  if (close(fd) != 0) { fd = -1; goto fail; }
  fd = -1;
  if (rename(tmp, path) != 0) goto fail;
  free(tmp);
  free(bytes);
  return;
fail:
  snprintf(e->cache_error, sizeof e->cache_error, "cannot %s cache %s: %s",
           what, path, strerror(errno));
  if (fd >= 0) close(fd);
  if (tmp != NULL) { unlink(tmp); free(tmp); }
  free(bytes);
}

/* Loads the database from the cache or compiles (and caches) it. */
static int build_database (scan_engine *e, const char *cache_dir, char *err,
                           size_t errlen) {
  unsigned char key[32];
  char *path = NULL;
  if (cache_dir != NULL && *cache_dir != '\0') {
    cache_key(e, key);
    if ((path = cache_path(cache_dir, key)) == NULL) {
      set_err(err, errlen, "out of memory");
      errno = ENOMEM;
      return -1;
    }
    if ((e->db = cache_load(e, path, key)) != NULL) {
      e->cached = 1;
      free(path);
      return 0;
    }
  }
  if (compile_database(e, err, errlen) != 0) {
    free(path);
    return -1;
  }
  if (path != NULL) cache_save(e, cache_dir, path, key);
  one_line(e->cache_error);
  free(path);
  return 0;
}

/* }====================================================== */

/* {====================================================== engine */

void scan_engine_free (scan_engine *e) {
  size_t i;
  int saved = errno;
  if (e == NULL) return;
  if (e->rt != NULL)
    for (i = 0; i < e->rules.n; i++) pcre2_code_free(e->rt[i].code);
  free(e->rt);
  if (e->db != NULL) hs_free_database(e->db);
  scan_rules_free(&e->rules);
  free(e);
  errno = saved;
}

scan_engine *scan_engine_new (const scan_ruleset *rs, const char *cache_dir,
                              char *err, size_t errlen) {
  scan_engine *e = calloc(1, sizeof *e);
  size_t i;
  if (errlen > 0) err[0] = '\0';
  if (e == NULL) goto nomem;
  scan_rules_init(&e->rules);
  e->scan_fn = pick_scan_variant();
  if (scan_rules_copy(&e->rules, rs) != 0) goto nomem;
  if (e->rules.n > UINT_MAX) {
    set_err(err, errlen, "too many rules (%zu)", e->rules.n);
    errno = EINVAL;
    goto fail;
  }
  if ((e->rt = calloc(e->rules.n ? e->rules.n : 1, sizeof *e->rt)) == NULL)
    goto nomem;
  for (i = 0; i < e->rules.n; i++)
    if (prepare_rule(e, i, err, errlen) != 0) goto fail;
  link_shared_triggers(e);
  if (e->overlap > SCAN_HS_CHUNK / 2) e->overlap = SCAN_HS_CHUNK / 2;
  if (e->rules.n > 0 && build_database(e, cache_dir, err, errlen) != 0)
    goto fail;
  return e;
nomem:
  set_err(err, errlen, "out of memory");
  errno = ENOMEM;
fail:
  scan_engine_free(e);
  return NULL;
}

size_t scan_engine_nrules (const scan_engine *e) { return e->rules.n; }

const scan_rule *scan_engine_rule (const scan_engine *e, size_t i) {
  return i < e->rules.n ? &e->rules.rules[i] : NULL;
}

int scan_engine_cached (const scan_engine *e) { return e->cached; }

const char *scan_engine_cache_error (const scan_engine *e) {
  return e->cache_error[0] ? e->cache_error : NULL;
}

/* }====================================================== */

/* {====================================================== contexts */

void scan_ctx_free (scan_ctx *c) {
  int saved = errno;
  if (c == NULL) return;
  if (c->scratch != NULL) hs_free_scratch(c->scratch);
  pcre2_match_data_free(c->md);
  pcre2_match_context_free(c->mc);
  pcre2_jit_stack_free(c->js);
  free(c->last); free(c->recs); free(c->cands);
  free(c);
  errno = saved;
}

static int needs_jit_stack (const scan_engine *e) {
  size_t i;
  for (i = 0; i < e->rules.n; i++)
    if (e->rt[i].jit) return 1;
  return 0;
}

scan_ctx *scan_ctx_new (const scan_engine *e) {
  scan_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) goto nomem;
  c->e = e;
  if (e->db != NULL && hs_alloc_scratch(e->db, &c->scratch) != HS_SUCCESS) {
    c->scratch = NULL;
    goto nomem;
  }
  c->md = pcre2_match_data_create(2, NULL);   /* group 0 and the secret */
  c->mc = pcre2_match_context_create(NULL);
  c->last = calloc(e->rules.n ? e->rules.n : 1, sizeof *c->last);
  if (c->md == NULL || c->mc == NULL || c->last == NULL) goto nomem;
  pcre2_set_match_limit(c->mc, MATCH_LIMIT);
  pcre2_set_heap_limit(c->mc, HEAP_LIMIT_KIB);
  if (needs_jit_stack(e)) {
    /* the default 32 KiB machine stack is too small for some patterns;
       each ctx (thread) needs its own */
    if ((c->js = pcre2_jit_stack_create(JIT_STACK_MIN, JIT_STACK_MAX, NULL)) == NULL)
      goto nomem;
    pcre2_jit_stack_assign(c->mc, NULL, c->js);
  }
  return c;
nomem:
  scan_ctx_free(c);
  errno = ENOMEM;
  return NULL;
}

/* }====================================================== */

/* {====================================================== recording */

/*
** vectorscan's match callback: only records. An end that lies within one
** step after the first end of the rule's last run joins that run (its
** window will cover it), so dense input makes one record per step. Ends
** that come out of order (assertions may do that) start a new run.
*/
static int record_end (scan_ctx *c, size_t rule, size_t end) {
  size_t last = c->last[rule];
  record *r;
  if (last != 0) {
    r = &c->recs[last - 1];
    if (end >= r->to && end - r->to < c->e->rt[rule].step) {
      if (end > r->tmax) r->tmax = end;
      r->count++;
      return 0;
    }
  }
  if (reserve((void **)&c->recs, &c->caprecs, c->nrecs, sizeof *c->recs) != 0) {
    c->oom = 1;
    return 1;                          /* stops hs_scan */
  }
  r = &c->recs[c->nrecs++];
  r->to = r->tmax = end;
  r->count = 1;
  r->rule = rule;
  c->last[rule] = c->nrecs;
  return 0;
}

/* A shared trigger's match counts for every rule of its chain. */
static int on_match (unsigned int id, unsigned long long from,
                     unsigned long long to, unsigned int flags, void *ud) {
  scan_ctx *c = ud;
  size_t end = c->base + (size_t)to, r;
  (void)from; (void)flags;
  for (r = id; r != NONE; r = c->e->rt[r].next_shared)
    if (record_end(c, r, end) != 0) return 1;
  return 0;
}

static int hs_errno (hs_error_t rc) {
  switch (rc) {
    case HS_NOMEM: return ENOMEM;
    case HS_SCRATCH_IN_USE: return EBUSY;
    default: return EINVAL;
  }
}

static int collect_records (scan_ctx *c, const char *data, size_t len) {
  const scan_engine *e = c->e;
  size_t base = 0;
  for (;;) {
    size_t n = min_size(len - base, SCAN_HS_CHUNK);
    hs_error_t rc;
    c->base = base;
    rc = e->scan_fn(e->db, data + base, (unsigned)n, 0, c->scratch, on_match, c);
    if (c->oom) { errno = ENOMEM; return -1; }
    if (rc != HS_SUCCESS) { errno = hs_errno(rc); return -1; }
    if (base + n >= len) return 0;
    base += n - e->overlap;            /* a match no wider than W fits in one chunk */
  }
}

static int cmp_record (const void *a, const void *b) {
  const record *x = a, *y = b;
  if (x->rule != y->rule) return x->rule < y->rule ? -1 : 1;
  return x->to < y->to ? -1 : x->to > y->to;
}

/* }====================================================== */

/* {====================================================== confirming */

static int passes_validators (const scan_engine *e, size_t r, const char *s,
                              size_t n) {
  const scan_rule *rule = &e->rules.rules[r];
  if (rule->entropy > 0 && scan_entropy(s, n) < rule->entropy) return 0;
  if (e->rt[r].validator == V_GITHUB && !scan_check_github_crc32(s, n)) return 0;
  if (e->rt[r].validator == V_NPM && !scan_check_npm_crc32(s, n)) return 0;
  return !scan_is_placeholder(s, n);
}

/* Validates the PCRE2 match in c->md and keeps it as a candidate. */
static int add_candidate (scan_ctx *c, size_t r, const char *data,
                          const scan_options *opt) {
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
  cand *k;
  if (ov[2] == PCRE2_UNSET || ov[3] <= ov[2]) return 0;   /* empty secret */
  if (!opt->no_validators &&
      !passes_validators(c->e, r, data + ov[2], ov[3] - ov[2]))
    return 0;
  if (reserve((void **)&c->cands, &c->capcands, c->ncands, sizeof *c->cands) != 0) {
    errno = ENOMEM;
    return -1;
  }
  k = &c->cands[c->ncands++];
  k->start = ov[2]; k->end = ov[3];
  k->mstart = ov[0]; k->mend = ov[1] > ov[0] ? ov[1] : ov[0];
  k->rule = r;
  return 0;
}

static int match_at (scan_ctx *c, const rule_rt *rt, const char *data,
                     size_t subject_len, size_t from) {
  if (rt->jit)
    return pcre2_jit_match(rt->code, (PCRE2_SPTR)data, subject_len, from, 0,
                           c->md, c->mc);
  return pcre2_match(rt->code, (PCRE2_SPTR)data, subject_len, from, 0, c->md,
                     c->mc);
}

/* Resource limits stop one window, not the scan. */
static int is_limit (int rc) {
  return rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT ||
         rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT;
}

/*
** One PCRE2 search of rule r: every match starting in [from, hi), on the
** subject data[0, subject). Ends `want1`/`want2` are looked for among the
** match ends: *explained counts them. Returns where the search stopped,
** or SIZE_MAX on an error (errno set).
*/
static size_t search (scan_ctx *c, size_t r, const char *data, size_t from,
                      size_t hi, size_t subject, size_t want1, size_t want2,
                      const scan_options *opt, int *explained) {
  const rule_rt *rt = &c->e->rt[r];
  size_t p = from;
  int seen1 = 0, seen2 = 0;
  pcre2_set_offset_limit(c->mc, hi - 1);
  while (p < hi) {
    PCRE2_SIZE *ov;
    int rc = match_at(c, rt, data, subject, p);
    if (rc == PCRE2_ERROR_NOMATCH || is_limit(rc)) { p = hi; break; }
    if (rc == PCRE2_ERROR_NOMEMORY) { errno = ENOMEM; return SIZE_MAX; }
    if (rc < 0) { errno = EINVAL; return SIZE_MAX; }
    if (add_candidate(c, r, data, opt) != 0) return SIZE_MAX;
    ov = pcre2_get_ovector_pointer(c->md);
    seen1 |= ov[1] == want1;
    seen2 |= ov[1] == want2;
    p = ov[1] > p ? ov[1] : p + 1;     /* empty match: step on */
  }
  *explained = seen1 && seen2;
  return p;
}

/*
** PCRE2 over one rule's runs of ends (ascending). A match ending at e in
** [to, tmax] starts in [e - W, e], so the run's starts are [to - W, tmax]
** — but never before `pos`, where the previous search of this rule
** stopped, so no byte is searched twice. Most matches are short while W
** may be 4096 or more (unbounded patterns): when every end of the run is
** known (count <= 2) a search from SHORT_BACK bytes before `to` comes
** first, and it stands if PCRE2 matches end exactly at those ends.
** Otherwise its candidates are dropped and the full window is searched.
*/
static int confirm_rule (scan_ctx *c, size_t r, const record *recs, size_t n,
                         const char *data, size_t len, const scan_options *opt) {
  const rule_rt *rt = &c->e->rt[r];
  int has_trigger = c->e->rules.rules[r].trigger != NULL;
  size_t pos = 0, i;
  for (i = 0; i < n; i++) {
    const record *k = &recs[i];
    size_t hi = k->tmax < len ? k->tmax + 1 : len;       /* starts < hi */
    size_t subject = add_clip(hi, rt->width + LOOKAHEAD, len);
    size_t lo = k->to > rt->width ? k->to - rt->width : 0;
    size_t p;
    int explained = 0;
    if (lo < pos) lo = pos;
    if (lo >= hi) continue;
    /* (a trigger's ends are not the pattern's: the short search would
       never stand, only cost a second search) */
    if (!has_trigger && k->count <= 2 && k->to > lo && k->to - lo > SHORT_BACK) {
      size_t mark = c->ncands;
      p = search(c, r, data, k->to - SHORT_BACK, hi, subject, k->to, k->tmax,
                 opt, &explained);
      if (p == SIZE_MAX) return -1;
      if (explained) { pos = p; continue; }
      c->ncands = mark;
    }
    p = search(c, r, data, lo, hi, subject, k->to, k->tmax, opt, &explained);
    if (p == SIZE_MAX) return -1;
    pos = p;
  }
  return 0;
}

static int confirm_all (scan_ctx *c, const char *data, size_t len,
                        const scan_options *opt) {
  size_t i = 0;
  if (c->nrecs == 0) return 0;        /* qsort(NULL, 0) is undefined */
  qsort(c->recs, c->nrecs, sizeof *c->recs, cmp_record);
  while (i < c->nrecs) {
    size_t j = i;
    while (j < c->nrecs && c->recs[j].rule == c->recs[i].rule) j++;
    if (confirm_rule(c, c->recs[i].rule, c->recs + i, j - i, data, len, opt) != 0)
      return -1;
    i = j;
  }
  return 0;
}

static int cmp_cand (const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return x->rule < y->rule ? -1 : x->rule > y->rule;
}

/* Sorts the candidates by offset and drops repeated (rule, start, end). */
static void sort_candidates (scan_ctx *c) {
  size_t i, k = 0;
  if (c->ncands == 0) return;         /* qsort(NULL, 0) is undefined */
  qsort(c->cands, c->ncands, sizeof *c->cands, cmp_cand);
  for (i = 0; i < c->ncands; i++) {
    const cand *x = &c->cands[i];
    if (k > 0 && c->cands[k - 1].start == x->start &&
        c->cands[k - 1].end == x->end && c->cands[k - 1].rule == x->rule)
      continue;
    c->cands[k++] = *x;
  }
  c->ncands = k;
}

/* }====================================================== */

/* {====================================================== emitting */

/*
** One forward pass over the buffer, as far as the last finding: newlines
** counted a word at a time up to each start; line ends through a cache
** (starts only grow, so each byte is searched once); "ato:allow" looked
** for only on the lines that hold findings, each line once.
*/
typedef struct sweep {
  const char *data;
  size_t len;
  size_t cur, line, line_start;    /* newlines counted in [0, cur) */
  size_t nl_from, nl_at;           /* first '\n' at or after nl_from is nl_at */
  size_t memo_line[2];             /* a line start (SIZE_MAX: none) ... */
  int memo_allow[2];               /* ... and whether the line has the tag */
} sweep;

#define ONES 0x0101010101010101ull
#define LOW7 0x7F7F7F7F7F7F7F7Full

/* Newlines in s[0, n), 8 bytes at a time: a byte of x is 0 exactly where
   s has '\n'; the high bit of each byte of t marks those zero bytes. */
static size_t count_newlines (const char *s, size_t n) {
  size_t count = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, t;
    memcpy(&x, s + i, 8);
    x ^= ONES * '\n';
    t = ~(((x & LOW7) + LOW7) | x | LOW7);
    count += (size_t)(((t >> 7) * ONES) >> 56);  /* sum of the 0/1 bytes */
  }
  for (; i < n; i++) count += s[i] == '\n';
  return count;
}

static void advance_lines (sweep *s, size_t to) {
  size_t n, q;
  if (to <= s->cur) return;
  n = count_newlines(s->data + s->cur, to - s->cur);
  if (n > 0) {
    s->line += n;
    for (q = to; s->data[q - 1] != '\n'; q--)   /* the last one, from the end */
      ;
    s->line_start = q;
  }
  s->cur = to;
}

static size_t newline_at_or_after (const sweep *s, size_t q, size_t *from,
                                   size_t *at) {
  const char *nl;
  if (q >= *from && q <= *at) return *at;
  nl = q < s->len ? memchr(s->data + q, '\n', s->len - q) : NULL;
  *from = q;
  *at = nl ? (size_t)(nl - s->data) : s->len;
  return *at;
}

static int has_tag (const char *s, size_t n) {
  const char *p = s, *end = s + n;
  while (end - p >= ALLOW_LEN && (p = memchr(p, 'a', (size_t)(end - p) - ALLOW_LEN + 1)) != NULL) {
    if (memcmp(p, ALLOW_TAG, ALLOW_LEN) == 0) return 1;
    p++;
  }
  return 0;
}

/* Does the line starting at ls hold the tag? le is its end, or SIZE_MAX
   to find it. Memo slot `slot` remembers one line, so a line shared by
   many findings is searched once. */
static int line_allowed (sweep *s, int slot, size_t ls, size_t le) {
  if (s->memo_line[slot] != ls) {
    if (le == SIZE_MAX) {
      const char *nl = memchr(s->data + ls, '\n', s->len - ls);
      le = nl ? (size_t)(nl - s->data) : s->len;
    }
    s->memo_line[slot] = ls;
    s->memo_allow[slot] = has_tag(s->data + ls, le - ls);
  }
  return s->memo_allow[slot];
}

/* "ato:allow" on any line the secret [start, end) touches; the first of
   them is [s->line_start, line_end). */
static int allowed (sweep *s, size_t line_end, size_t end) {
  size_t last_start;
  if (line_allowed(s, 0, s->line_start, line_end)) return 1;
  if (end - 1 <= line_end) return 0;   /* one line */
  /* the secret's last byte is on the line after its last inner '\n'
     (there is one: line_end < end - 1) */
  for (last_start = end - 1; s->data[last_start - 1] != '\n'; last_start--)
    ;
  if (last_start - 1 > line_end &&
      has_tag(s->data + line_end + 1, last_start - 1 - (line_end + 1)))
    return 1;                          /* a line in between */
  return line_allowed(s, 1, last_start, SIZE_MAX);
}

static int emit_all (scan_ctx *c, const char *data, size_t len,
                     scan_emit_fn emit, void *ud) {
  sweep s;
  size_t i;
  memset(&s, 0, sizeof s);
  s.data = data; s.len = len; s.line = 1;
  s.nl_from = SIZE_MAX;
  s.memo_line[0] = s.memo_line[1] = SIZE_MAX;
  for (i = 0; i < c->ncands; i++) {
    const cand *k = &c->cands[i];
    size_t line_end;
    scan_hit hit;
    advance_lines(&s, k->start);
    line_end = newline_at_or_after(&s, k->start, &s.nl_from, &s.nl_at);
    if (allowed(&s, line_end, k->end)) continue;
    hit.rule = k->rule;
    hit.start = k->start; hit.end = k->end;
    hit.match_start = k->mstart; hit.match_end = k->mend;
    hit.line = s.line;
    hit.column = k->start - s.line_start + 1;
    hit.line_start = s.line_start;
    hit.line_end = line_end;
    if (emit != NULL && emit(ud, &hit, data, len) != 0) return 1;
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== scan_buffer */

/* A huge scan should not pin its peak memory in the ctx. */
static void trim_ctx (scan_ctx *c) {
  if (c->caprecs * sizeof *c->recs > KEEP_BYTES) {
    free(c->recs); c->recs = NULL; c->caprecs = 0;
  }
  if (c->capcands * sizeof *c->cands > KEEP_BYTES) {
    free(c->cands); c->cands = NULL; c->capcands = 0;
  }
  c->nrecs = c->ncands = 0;
}

int scan_buffer (scan_ctx *c, const char *data, size_t len,
                 const scan_options *opt, scan_emit_fn emit, void *ud) {
  static const scan_options defaults = { 0 };
  const scan_engine *e = c->e;
  int rc = 0;
  if (opt == NULL) opt = &defaults;
  c->nrecs = c->ncands = 0;
  c->oom = 0;
  if (len == 0 || e->db == NULL) return 0;
  memset(c->last, 0, e->rules.n * sizeof *c->last);
  if (collect_records(c, data, len) != 0 || confirm_all(c, data, len, opt) != 0)
    rc = -1;
  else if (c->ncands > 0) {
    sort_candidates(c);
    rc = emit_all(c, data, len, emit, ud);
  }
  {
    int saved = errno;
    trim_ctx(c);
    errno = saved;
  }
  return rc;
}

/* }====================================================== */

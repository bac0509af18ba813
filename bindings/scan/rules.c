/*
** rules.c — the rule-file parser (format in scan.h). One pass over the
** text, line by line, in place: no line length limit, NUL bytes and
** garbage give an error instead of a crash. On any error the rules added
** by the failing call are removed again, so the caller's set is unchanged.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scan.h"

#define NAME_SHOWN 48            /* bytes of a key/id/value quoted in errors */

typedef struct parser {
  scan_ruleset *rs;
  const char *file;
  char *err;
  size_t errlen;
  size_t first;                  /* rs->n on entry: rules to drop on error */
  size_t first_cap;              /* rs->cap on entry */
  int line;                      /* current line, 1-based (saturates) */
  scan_rule *cur;                /* rule being filled, or NULL */
} parser;

/* {====================================================== helpers */

static char *dup_bytes (const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d == NULL) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static char *dup_str (const char *s) {
  return s == NULL ? NULL : dup_bytes(s, strlen(s));
}

static int is_blank (unsigned char ch) {
  return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Copies s[0, n) into out as printable text for an error message: control
   and non-ASCII bytes become '?', long names end with "...". */
static void show (char out[NAME_SHOWN + 4], const char *s, size_t n) {
  size_t i, k = n > NAME_SHOWN ? NAME_SHOWN : n;
  for (i = 0; i < k; i++) {
    unsigned char ch = (unsigned char)s[i];
    out[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
  }
  if (k < n) { memcpy(out + k, "...", 3); k += 3; }
  out[k] = '\0';
}

static int fail (parser *p, int line, int errnum, const char *fmt, ...) {
  va_list ap;
  int n = 0;
  if (p->errlen > 0) {
    n = snprintf(p->err, p->errlen, "%s:%d: ", p->file, line);
    if (n >= 0 && (size_t)n < p->errlen) {
      va_start(ap, fmt);
      vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  errno = errnum;
  return -1;
}

static int fail_nomem (parser *p) {
  return fail(p, p->line, ENOMEM, "out of memory");
}

/* }====================================================== */

/* {====================================================== rule sets */

static void rule_free (scan_rule *r) {
  size_t i;
  free(r->id); free(r->name); free(r->provider); free(r->severity);
  free(r->pattern); free(r->trigger); free(r->keywords); free(r->validator);
  free(r->verify);
  for (i = 0; i < r->nreferences; i++) free(r->references[i]);
  free(r->references);
  for (i = 0; i < r->nexamples; i++) free(r->examples[i].data);
  free(r->examples);
  for (i = 0; i < r->nnegatives; i++) free(r->negatives[i].data);
  free(r->negatives);
  free(r->file);
  memset(r, 0, sizeof *r);
}

void scan_rules_init (scan_ruleset *rs) {
  rs->rules = NULL;
  rs->n = rs->cap = 0;
}

static void truncate_rules (scan_ruleset *rs, size_t n) {
  while (rs->n > n) rule_free(&rs->rules[--rs->n]);
}

void scan_rules_free (scan_ruleset *rs) {
  truncate_rules(rs, 0);
  free(rs->rules);
  scan_rules_init(rs);
}

/* A new zeroed rule at the end of rs, or NULL. */
static scan_rule *push_rule (scan_ruleset *rs) {
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? rs->cap * 2 : 16;
    scan_rule *r;
    if (cap > SIZE_MAX / sizeof *r) return NULL;
    r = realloc(rs->rules, cap * sizeof *r);
    if (r == NULL) return NULL;
    rs->rules = r;
    rs->cap = cap;
  }
  memset(&rs->rules[rs->n], 0, sizeof rs->rules[rs->n]);
  return &rs->rules[rs->n++];
}

static int grow (void **arr, size_t n, size_t size) {
  void *a;
  if (n > SIZE_MAX / size - 1) return -1;
  a = realloc(*arr, (n + 1) * size);
  if (a == NULL) return -1;
  *arr = a;
  return 0;
}

static int copy_texts (scan_text **dst, const scan_text *src, size_t n) {
  size_t i;
  *dst = NULL;
  if (n == 0) return 0;
  if ((*dst = calloc(n, sizeof **dst)) == NULL) return -1;
  for (i = 0; i < n; i++) {
    if (((*dst)[i].data = dup_bytes(src[i].data, src[i].len)) == NULL) return -1;
    (*dst)[i].len = src[i].len;
  }
  return 0;
}

/* Deep copy; on failure d holds what was copied so far (rule_free it).
   The counts are set before the arrays fill so rule_free sees them. */
static int rule_copy (scan_rule *d, const scan_rule *s) {
  size_t i;
  memset(d, 0, sizeof *d);
  d->entropy = s->entropy;
  d->prefilter = s->prefilter;
  d->window = s->window;
  d->line = s->line;
  if ((s->id && !(d->id = dup_str(s->id))) ||
      (s->name && !(d->name = dup_str(s->name))) ||
      (s->provider && !(d->provider = dup_str(s->provider))) ||
      (s->severity && !(d->severity = dup_str(s->severity))) ||
      (s->pattern && !(d->pattern = dup_str(s->pattern))) ||
      (s->trigger && !(d->trigger = dup_str(s->trigger))) ||
      (s->keywords && !(d->keywords = dup_str(s->keywords))) ||
      (s->validator && !(d->validator = dup_str(s->validator))) ||
      (s->verify && !(d->verify = dup_str(s->verify))) ||
      (s->file && !(d->file = dup_str(s->file))))
    return -1;
  if (s->nreferences > 0) {
    if ((d->references = calloc(s->nreferences, sizeof *d->references)) == NULL)
      return -1;
    d->nreferences = s->nreferences;
    for (i = 0; i < s->nreferences; i++)
      if ((d->references[i] = dup_str(s->references[i])) == NULL) return -1;
  }
  d->nexamples = s->nexamples;
  if (copy_texts(&d->examples, s->examples, s->nexamples) != 0) {
    if (d->examples == NULL) d->nexamples = 0;
    return -1;
  }
  d->nnegatives = s->nnegatives;
  if (copy_texts(&d->negatives, s->negatives, s->nnegatives) != 0) {
    if (d->negatives == NULL) d->nnegatives = 0;
    return -1;
  }
  return 0;
}

int scan_rules_copy (scan_ruleset *dst, const scan_ruleset *src) {
  size_t first = dst->n, first_cap = dst->cap, i;
  for (i = 0; i < src->n; i++) {
    scan_rule *r = push_rule(dst);
    if (r == NULL || rule_copy(r, &src->rules[i]) != 0) {
      truncate_rules(dst, first);
      if (first_cap == 0) scan_rules_free(dst);
      errno = ENOMEM;
      return -1;
    }
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== values */

static int hex_digit (unsigned char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Decodes the escapes of an example/negative value into t. */
static int decode_text (parser *p, const char *key, const char *v, size_t n,
                        scan_text *t) {
  char *out = malloc(n + 1), shown[NAME_SHOWN + 4];
  size_t i = 0, k = 0;
  if (out == NULL) return fail_nomem(p);
  while (i < n) {
    unsigned char ch = (unsigned char)v[i++];
    if (ch != '\\') { out[k++] = (char)ch; continue; }
    ch = i < n ? (unsigned char)v[i] : 0;
    switch (ch) {
      case 'n': out[k++] = '\n'; i++; break;
      case 't': out[k++] = '\t'; i++; break;
      case 'r': out[k++] = '\r'; i++; break;
      case '\\': out[k++] = '\\'; i++; break;
      case 'x': {
        int hi = i + 1 < n ? hex_digit((unsigned char)v[i + 1]) : -1;
        int lo = i + 2 < n ? hex_digit((unsigned char)v[i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
          out[k++] = (char)(hi * 16 + lo);
          i += 3;
          break;
        }
        show(shown, v + i - 1, n - (i - 1) < 4 ? n - (i - 1) : 4);
        free(out);
        return fail(p, p->line, EINVAL, "bad escape '%s' in '%s' of [%s]",
                    shown, key, p->cur->id);
      }
      default:
        show(shown, v + i - 1, i < n ? 2 : 1);
        free(out);
        return fail(p, p->line, EINVAL, "bad escape '%s' in '%s' of [%s]",
                    shown, key, p->cur->id);
    }
  }
  out[k] = '\0';
  t->data = out;
  t->len = k;
  return 0;
}

/* "4", "3.5", ".5", "8.0": 0 to 8; no exponent, sign or locale. */
static int parse_entropy (const char *v, double *out) {
  double x = 0, scale = 1;
  int digits = 0;
  for (; *v >= '0' && *v <= '9'; v++, digits++) {
    x = x * 10 + (*v - '0');
    if (x > 8) return -1;
  }
  if (*v == '.')
    for (v++; *v >= '0' && *v <= '9'; v++, digits++) {
      scale /= 10;
      x += (*v - '0') * scale;
    }
  if (*v != '\0' || digits == 0 || x > 8) return -1;
  *out = x;
  return 0;
}

/* decimal 1..SCAN_MAX_WINDOW */
static int parse_window (const char *v, size_t *out) {
  size_t x = 0;
  if (*v == '\0') return -1;
  for (; *v >= '0' && *v <= '9'; v++) {
    x = x * 10 + (size_t)(*v - '0');
    if (x > SCAN_MAX_WINDOW) return -1;
  }
  if (*v != '\0' || x == 0) return -1;
  *out = x;
  return 0;
}

static int known_severity (const char *v) {
  return strcmp(v, "critical") == 0 || strcmp(v, "high") == 0 ||
         strcmp(v, "medium") == 0 || strcmp(v, "low") == 0;
}

static int known_validator (const char *v) {
  return strcmp(v, "github_crc32") == 0 || strcmp(v, "npm_crc32") == 0;
}

/* }====================================================== */

/* {====================================================== keys */

typedef enum key_kind {
  K_NAME, K_PROVIDER, K_SEVERITY, K_PATTERN, K_KEYWORDS, K_ENTROPY,
  K_VALIDATOR, K_PREFILTER, K_VERIFY, K_WINDOW, K_TRIGGER, K_REFERENCE,
  K_EXAMPLE, K_NEGATIVE, K_UNKNOWN
} key_kind;

static const char *const KEY_NAMES[] = {
  "name", "provider", "severity", "pattern", "keywords", "entropy",
  "validator", "prefilter", "verify", "window", "trigger", "reference",
  "example", "negative", NULL
};

static key_kind key_of (const char *k, size_t n) {
  int i;
  for (i = 0; KEY_NAMES[i] != NULL; i++)
    if (strlen(KEY_NAMES[i]) == n && memcmp(KEY_NAMES[i], k, n) == 0)
      return (key_kind)i;
  return K_UNKNOWN;
}

/* The string slot of a single-valued string key, or NULL. */
static char **string_slot (scan_rule *r, key_kind k) {
  switch (k) {
    case K_NAME: return &r->name;
    case K_PROVIDER: return &r->provider;
    case K_SEVERITY: return &r->severity;
    case K_PATTERN: return &r->pattern;
    case K_TRIGGER: return &r->trigger;
    case K_KEYWORDS: return &r->keywords;
    case K_VALIDATOR: return &r->validator;
    case K_VERIFY: return &r->verify;
    default: return NULL;
  }
}

static int add_text (parser *p, key_kind k, const char *v, size_t n) {
  scan_rule *r = p->cur;
  scan_text **arr = k == K_EXAMPLE ? &r->examples : &r->negatives;
  size_t *cnt = k == K_EXAMPLE ? &r->nexamples : &r->nnegatives;
  scan_text t;
  if (decode_text(p, KEY_NAMES[k], v, n, &t) != 0) return -1;
  if (grow((void **)arr, *cnt, sizeof **arr) != 0) {
    free(t.data);
    return fail_nomem(p);
  }
  (*arr)[(*cnt)++] = t;
  return 0;
}

static int add_reference (parser *p, const char *v, size_t n) {
  scan_rule *r = p->cur;
  char *s = dup_bytes(v, n);
  if (s == NULL || grow((void **)&r->references, r->nreferences,
                        sizeof *r->references) != 0) {
    free(s);
    return fail_nomem(p);
  }
  r->references[r->nreferences++] = s;
  return 0;
}

/* Stores one value; numbers and enumerations are checked at once so the
   error names this line. */
static int set_key (parser *p, key_kind k, const char *v, size_t n) {
  scan_rule *r = p->cur;
  char shown[NAME_SHOWN + 4], *s, **slot;
  int bad = 0;
  if (n == 0)
    return fail(p, p->line, EINVAL, "empty value for '%s' in [%s]",
                KEY_NAMES[k], r->id);
  if (k == K_EXAMPLE || k == K_NEGATIVE) return add_text(p, k, v, n);
  if (k == K_REFERENCE) return add_reference(p, v, n);
  if ((s = dup_bytes(v, n)) == NULL) return fail_nomem(p);
  show(shown, v, n);
  switch (k) {
    case K_ENTROPY: bad = parse_entropy(s, &r->entropy) != 0; break;
    case K_WINDOW: bad = parse_window(s, &r->window) != 0; break;
    case K_PREFILTER:
      r->prefilter = strcmp(s, "yes") == 0;
      bad = !r->prefilter && strcmp(s, "no") != 0;
      break;
    case K_SEVERITY: bad = !known_severity(s); break;
    case K_VALIDATOR: bad = !known_validator(s); break;
    default: break;
  }
  if ((slot = string_slot(r, k)) != NULL && !bad) {
    *slot = s;
    return 0;
  }
  free(s);
  if (!bad) return 0;
  switch (k) {
    case K_ENTROPY:
      return fail(p, p->line, EINVAL,
                  "bad entropy '%s' in [%s] (a number from 0 to 8)", shown, r->id);
    case K_WINDOW:
      return fail(p, p->line, EINVAL, "bad window '%s' in [%s] (bytes, 1 to %d)",
                  shown, r->id, SCAN_MAX_WINDOW);
    case K_PREFILTER:
      return fail(p, p->line, EINVAL, "bad prefilter '%s' in [%s] (yes or no)",
                  shown, r->id);
    case K_SEVERITY:
      return fail(p, p->line, EINVAL,
                  "bad severity '%s' in [%s] (critical, high, medium or low)",
                  shown, r->id);
    default:
      return fail(p, p->line, EINVAL,
                  "unknown validator '%s' in [%s] (github_crc32 or npm_crc32)",
                  shown, r->id);
  }
}

/* }====================================================== */

/* {====================================================== lines */

/* Bit per single-valued key seen in the current rule, to reject repeats. */
typedef struct seen_keys { unsigned bits; } seen_keys;

static int finish_rule (parser *p) {
  static const key_kind required[] = { K_NAME, K_PROVIDER, K_SEVERITY, K_PATTERN };
  scan_rule *r = p->cur;
  size_t i;
  if (r == NULL) return 0;
  for (i = 0; i < sizeof required / sizeof required[0]; i++)
    if (*string_slot(r, required[i]) == NULL)
      return fail(p, r->line, EINVAL, "[%s] has no '%s'", r->id,
                  KEY_NAMES[required[i]]);
  if (r->nexamples < 2)
    return fail(p, r->line, EINVAL, "[%s] needs at least 2 'example' values (has %zu)",
                r->id, r->nexamples);
  if (r->nnegatives < 2)
    return fail(p, r->line, EINVAL, "[%s] needs at least 2 'negative' values (has %zu)",
                r->id, r->nnegatives);
  p->cur = NULL;
  return 0;
}

static int valid_id (const char *s, size_t n) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
      return 0;
  }
  return 1;
}

static const scan_rule *find_rule (const scan_ruleset *rs, const char *id,
                                   size_t n) {
  size_t i;
  for (i = 0; i < rs->n; i++)
    if (strlen(rs->rules[i].id) == n && memcmp(rs->rules[i].id, id, n) == 0)
      return &rs->rules[i];
  return NULL;
}

/* "[id]" with s[0] == '[' and no trailing blanks. */
static int section_line (parser *p, const char *s, size_t n, seen_keys *seen) {
  char shown[NAME_SHOWN + 4];
  const scan_rule *dup;
  scan_rule *r;
  if (finish_rule(p) != 0) return -1;
  if (n < 2 || s[n - 1] != ']') {
    show(shown, s, n);
    return fail(p, p->line, EINVAL, "bad section header '%s' (expected [rule-id])",
                shown);
  }
  s++; n -= 2;
  show(shown, s, n);
  if (!valid_id(s, n))
    return fail(p, p->line, EINVAL,
                "bad rule id [%s] (lowercase letters, digits and '-' only)", shown);
  if ((dup = find_rule(p->rs, s, n)) != NULL)
    return fail(p, p->line, EINVAL, "duplicate rule id [%s] (first defined at %s:%d)",
                shown, dup->file, dup->line);
  if ((r = push_rule(p->rs)) == NULL) return fail_nomem(p);
  r->line = p->line;
  if ((r->id = dup_bytes(s, n)) == NULL || (r->file = dup_str(p->file)) == NULL)
    return fail_nomem(p);
  p->cur = r;
  seen->bits = 0;
  return 0;
}

static int is_key_char (unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
}

/* "key = value" with s[0] not blank and no trailing blanks. */
static int key_line (parser *p, const char *s, size_t n, seen_keys *seen) {
  char shown[NAME_SHOWN + 4];
  size_t klen = 0, i;
  key_kind k;
  while (klen < n && is_key_char((unsigned char)s[klen])) klen++;
  if (klen == 0)
    return fail(p, p->line, EINVAL,
                "expected 'key = value', '[rule-id]' or '# comment'");
  show(shown, s, klen);
  for (i = klen; i < n && is_blank((unsigned char)s[i]); i++)
    ;
  if (i == n || s[i] != '=')
    return fail(p, p->line, EINVAL, "missing '=' after '%s'", shown);
  if (p->cur == NULL)
    return fail(p, p->line, EINVAL, "key '%s' before any [rule-id] section", shown);
  k = key_of(s, klen);
  if (k == K_UNKNOWN)
    return fail(p, p->line, EINVAL, "unknown key '%s' in [%s]", shown, p->cur->id);
  if (k < K_REFERENCE) {
    if (seen->bits & (1u << k))
      return fail(p, p->line, EINVAL, "duplicate key '%s' in [%s]", shown,
                  p->cur->id);
    seen->bits |= 1u << k;
  }
  for (i++; i < n && is_blank((unsigned char)s[i]); i++)
    ;
  return set_key(p, k, s + i, n - i);
}

static int parse_line (parser *p, const char *s, size_t n, seen_keys *seen) {
  while (n > 0 && is_blank((unsigned char)s[n - 1])) n--;
  while (n > 0 && is_blank((unsigned char)*s)) { s++; n--; }
  if (n == 0 || *s == '#') return 0;
  if (*s == '[') return section_line(p, s, n, seen);
  return key_line(p, s, n, seen);
}

int scan_rules_parse (scan_ruleset *rs, const char *text, size_t len,
                      const char *file, char *err, size_t errlen) {
  parser p;
  seen_keys seen = { 0 };
  size_t pos = 0;
  p.rs = rs; p.file = file ? file : "?"; p.err = err; p.errlen = errlen;
  p.first = rs->n; p.first_cap = rs->cap; p.line = 0; p.cur = NULL;
  if (errlen > 0) err[0] = '\0';
  while (pos < len) {
    const char *s = text + pos;
    const char *nl = memchr(s, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - s) : len - pos;
    if (p.line < INT_MAX) p.line++;
    if (memchr(s, '\0', n) != NULL) {
      fail(&p, p.line, EINVAL, "NUL byte in line");
      goto error;
    }
    if (parse_line(&p, s, n, &seen) != 0) goto error;
    pos += n + (nl != NULL);
  }
  if (finish_rule(&p) != 0) goto error;
  return 0;
error:
  truncate_rules(rs, p.first);
  if (p.first_cap == 0) {             /* it had no array: give ours back */
    int saved = errno;
    scan_rules_free(rs);
    errno = saved;
  }
  return -1;
}

/* }====================================================== */

/* {====================================================== files */

static int file_fail (const char *path, char *err, size_t errlen, int errnum,
                      const char *what) {
  if (errlen > 0) snprintf(err, errlen, "%s: %s", path, what);
  errno = errnum;
  return -1;
}

/* Reads all of fd (a regular file of at most SCAN_MAX_RULE_FILE bytes). */
static int read_all (int fd, char **out, size_t *outlen, int *errnum,
                     const char **what) {
  struct stat st;
  size_t cap, n = 0;
  char *buf;
  if (fstat(fd, &st) != 0) { *errnum = errno; *what = strerror(errno); return -1; }
  if (S_ISDIR(st.st_mode)) { *errnum = EISDIR; *what = "is a directory"; return -1; }
  if (st.st_size > (off_t)SCAN_MAX_RULE_FILE) {
    *errnum = EFBIG; *what = "too large for a rule file (over 16 MiB)"; return -1;
  }
  cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
  if ((buf = malloc(cap)) == NULL) { *errnum = ENOMEM; *what = "out of memory"; return -1; }
  for (;;) {
    ssize_t r;
    if (n == cap) {
      char *b;
      if (cap > SCAN_MAX_RULE_FILE) {
        free(buf);
        *errnum = EFBIG; *what = "too large for a rule file (over 16 MiB)";
        return -1;
      }
      if ((b = realloc(buf, cap * 2)) == NULL) {
        free(buf);
        *errnum = ENOMEM; *what = "out of memory";
        return -1;
      }
      buf = b; cap *= 2;
    }
    r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { *errnum = errno; *what = strerror(errno); free(buf); return -1; }
    if (r == 0) break;
    n += (size_t)r;
  }
  *out = buf;
  *outlen = n;
  return 0;
}

int scan_rules_load_file (scan_ruleset *rs, const char *path, char *err,
                          size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC), rc, errnum = 0;
  const char *what = NULL;
  char *text = NULL;
  size_t len = 0;
  if (fd < 0) return file_fail(path, err, errlen, errno, strerror(errno));
  rc = read_all(fd, &text, &len, &errnum, &what);
  close(fd);
  if (rc != 0) return file_fail(path, err, errlen, errnum, what);
  rc = scan_rules_parse(rs, text, len, path, err, errlen);
  errnum = errno;
  free(text);
  errno = errnum;
  return rc;
}

/* }====================================================== */

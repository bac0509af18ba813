/*
** scan.h — the secret-scanning engine of `ato.scan` (C core, no Lua).
**
** Pipeline for one buffer: every rule's pattern is compiled into ONE
** vectorscan (Hyperscan API) block-mode database; its match callback only
** records (rule, end offset), grouped so that dense input cannot flood
** it; then, per rule and in ascending order, a PCRE2-JIT pattern re-runs
** in a bounded window around the recorded ends to confirm the match and
** extract the secret (the pattern's capture group 1); then validators
** (minimum entropy, checksums, placeholder stop-words) decide, and
** `ato:allow` on the secret's line suppresses. Findings come out sorted,
** with line and column from one pass over the buffer.
**
** Windows. A rule's width W is the longest match it can report: the
** pattern's maximum width from hs_expression_info, or, for an unbounded
** pattern (`+`, `*`, `{n,}`), the rule's `window` key, default
** SCAN_DEFAULT_WINDOW (4096) bytes. Its step is max(W, SCAN_MIN_STEP).
** The callback groups a rule's ends into runs: an end within one step
** after the first end `to` of the rule's current run joins it (the run
** keeps its last end `tmax` and a count), so dense input (10 MB of "aaaa"
** against [A-Za-z0-9]{20,40}) makes one record per step. A match ending
** in [to, tmax] starts in [to - W, tmax]: PCRE2 looks for every match
** STARTING there, never before the end of the previous PCRE2 search of
** that rule (so no byte is searched twice and the work stays linear), on
** the subject data[0, tmax + 1 + W + 256) — lookbehind sees the real
** preceding bytes and short lookaheads the real following ones. Because
** W may be thousands of bytes while most matches are short, a run whose
** ends are all known (at most two) is first searched from 256 bytes
** before `to`; that stands when PCRE2 matches end exactly at those ends,
** otherwise the full window is searched. A match longer than W (only
** possible for unbounded patterns) is cut or missed: give such rules a
** `window`, or better, bounded repeats (`\s{0,8}`, not `\s*`). PCRE2
** backtracking is capped per start position (match limit 100000); a
** window that hits a PCRE2 resource limit is skipped.
**
** Files (rules.c): rules are data, one format for all (the .rules files in rules/):
**
**   # comment
**   [sendgrid-api-key]
**   name = SendGrid API key
**   provider = sendgrid
**   severity = critical            (critical | high | medium | low)
**   pattern = \b(SG\.[\w-]{22}\.[\w-]{43})(?![\w-])
**   prefilter = yes                (optional, yes | no: vectorscan only
**                                   approximates the pattern; PCRE2
**                                   decides. Required for patterns that
**                                   vectorscan cannot run exactly, such as
**                                   the lookahead above)
**   keywords = SG.                 (optional, comma-separated, documentation)
**   entropy = 4.0                  (optional: minimum Shannon bits per byte
**                                   of the secret, 0 to 8)
**   validator = github_crc32       (optional: github_crc32 | npm_crc32)
**   verify = sendgrid              (optional: liveness verifier name)
**   window = 8192                  (optional: W in bytes, 1 to 1048576, for
**                                   an unbounded pattern; ignored when
**                                   the pattern's width is bounded)
**   trigger = (?i:secret|token)    (optional: what vectorscan runs in place
**                                   of the pattern, for patterns it runs
**                                   slowly — long bounded repeats of
**                                   classes with no literal to filter on.
**                                   Every match of the pattern must
**                                   contain a match of the trigger; PCRE2
**                                   then confirms the pattern around each
**                                   trigger match, in the same window
**                                   (W is the pattern's width). Rules with
**                                   the same trigger share one vectorscan
**                                   expression.)
**   reference = https://...        (repeatable)
**   example = text                 (>= 2; C escapes: \n \t \r \\ \xHH)
**   negative = text                (>= 2; must not produce this rule)
**
** Lines end with LF or CRLF; the last one may lack its newline. Blank
** lines and lines whose first non-blank is `#` are ignored (a `#` later
** in a line is part of the value). Leading blanks are ignored. A value
** runs from after "=" and its following blanks to the end of the line,
** trailing blanks (space, tab, CR) trimmed; write `[ ]` or `\x20` for a
** significant trailing space. Patterns and all other values are taken
** literally (no escape processing); only example and negative values
** decode the escapes above, and any other backslash sequence in them is an
** error. An id is [a-z0-9-]+. Every key except reference, example and
** negative may appear once per rule; empty values are errors. A NUL byte
** anywhere in the text is an error (use \x00 in examples).
**
** The pattern must have exactly one capturing group (the secret); it is
** compiled by vectorscan with HS_FLAG_MULTILINE (plus HS_FLAG_PREFILTER
** with prefilter = yes) and by PCRE2 with PCRE2_MULTILINE, both in byte
** (non-UTF) mode; it must not match the empty string.
*/
#ifndef ATO_SCAN_H
#define ATO_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define SCAN_DEFAULT_WINDOW 4096     /* W of an unbounded pattern without `window` */
#define SCAN_MAX_WINDOW 1048576      /* largest `window` value */
#define SCAN_MIN_STEP 128            /* smallest thinning step, see above */
#define SCAN_MAX_RULE_FILE (16u << 20)  /* scan_rules_load_file refuses larger */

/* {====================================================== rules */

typedef struct scan_text { char *data; size_t len; } scan_text;  /* data[len] == 0 */

typedef struct scan_rule {
  char *id, *name, *provider, *severity, *pattern;
  char *trigger;              /* NULL: vectorscan runs the pattern itself */
  char *keywords;             /* NULL: none */
  char *validator;            /* NULL: none */
  char *verify;               /* NULL: no verifier */
  double entropy;             /* 0: no minimum */
  int prefilter;              /* 0 or 1 */
  size_t window;              /* 0: SCAN_DEFAULT_WINDOW (unbounded patterns only) */
  char **references; size_t nreferences;
  scan_text *examples; size_t nexamples;
  scan_text *negatives; size_t nnegatives;
  char *file; int line;       /* where it was defined (its [id] line) */
} scan_rule;

typedef struct scan_ruleset {
  scan_rule *rules;
  size_t n, cap;
} scan_ruleset;

void scan_rules_init (scan_ruleset *rs);
void scan_rules_free (scan_ruleset *rs);   /* frees the rules; rs is left empty */

/*
** Parses rule text (file names the source in errors) and appends its rules
** to rs. 0, or -1 with err = "FILE:LINE: problem" (one line; it names the
** key or the [id], never an example's value) and rs unchanged (errno is
** ENOMEM when memory ran out, EINVAL otherwise). A rule id already in rs
** is an error. Validates the fields (required ones — name, provider,
** severity, pattern — present, severity known, entropy a number from 0 to
** 8, >= 2 examples and negatives, known validator, prefilter yes/no,
** window in range) but not the pattern (the engine compiles it). Missing
** fields and too few examples are reported at the rule's [id] line.
*/
int scan_rules_parse (scan_ruleset *rs, const char *text, size_t len,
                      const char *file, char *err, size_t errlen);

/* Reads and parses a file, as above (the file's path is FILE). Errors
   reading it: "PATH: problem". Files over SCAN_MAX_RULE_FILE bytes are
   refused. */
int scan_rules_load_file (scan_ruleset *rs, const char *path, char *err,
                          size_t errlen);

/* Appends deep copies of src's rules to dst (ids are not checked). 0, or
   -1 (ENOMEM) with dst unchanged. */
int scan_rules_copy (scan_ruleset *dst, const scan_ruleset *src);

/* }====================================================== */

/* {====================================================== engine */

typedef struct scan_engine scan_engine;   /* immutable once built: shared by threads */
typedef struct scan_ctx scan_ctx;         /* per thread: scratch space */

/*
** Compiles the rules (vectorscan + PCRE2-JIT). With cache_dir (created
** with mode 0700, parents too, if missing), the vectorscan database is
** loaded from / saved to cache_dir/scan-<hex>.hsdb, where hex is the
** SHA-256 of a format version, hs_version(), the host platform and every
** rule's id, pattern and prefilter flag. The file is a 72-byte header
** ("ATOHSDB1", the key's 32-byte digest, the payload's SHA-256) followed by
** hs_serialize_database's bytes; it is written atomically (a temporary
** file in cache_dir, mode 0600, then rename). A missing, corrupt or
** mismatched file is ignored and replaced. Failing to read or write the
** cache is not an error (see scan_engine_cache_error). PCRE2 always
** compiles (fast).
** NULL with err = "rule ID (FILE:LINE): problem" (one line, naming
** vectorscan's or PCRE2's message) when a rule does not compile, has not
** exactly one capturing group or names an unknown validator; errno is
** ENOMEM when memory ran out. An empty rule set builds an engine that
** finds nothing. The engine keeps its own copy of the rules.
*/
scan_engine *scan_engine_new (const scan_ruleset *rs, const char *cache_dir,
                              char *err, size_t errlen);
void scan_engine_free (scan_engine *e);

size_t scan_engine_nrules (const scan_engine *e);
const scan_rule *scan_engine_rule (const scan_engine *e, size_t i);
int scan_engine_cached (const scan_engine *e);   /* 1: database came from the cache */
/* NULL, or why the cache could not be read or written (one line). */
const char *scan_engine_cache_error (const scan_engine *e);

scan_ctx *scan_ctx_new (const scan_engine *e);   /* NULL on ENOMEM */
void scan_ctx_free (scan_ctx *c);

/* One finding in a buffer. Offsets are bytes from the buffer's start. */
typedef struct scan_hit {
  size_t rule;                /* index in the engine's rules */
  size_t start, end;          /* the secret (capture group 1) */
  size_t match_start, match_end;  /* the whole PCRE2 match */
  size_t line, column;        /* of start; 1-based; column in bytes */
  size_t line_start, line_end;/* the line holding start: [line_start,
                                 line_end), line_end is its '\n' or len */
} scan_hit;

/* Called for each finding, in ascending (start, end, rule) order. Nonzero
   stops. It must not use the same ctx. */
typedef int (*scan_emit_fn) (void *ud, const scan_hit *hit,
                             const char *data, size_t len);

typedef struct scan_options {
  int no_validators;          /* report regex matches that fail validators
                                 (entropy, checksum, placeholder);
                                 `ato:allow` still suppresses */
} scan_options;

/*
** Scans data[0, len): emits every confirmed finding. opt may be NULL. A
** finding is dropped when "ato:allow" appears anywhere on a line its
** secret touches. 0, 1 if emit stopped the scan, -1 on an engine error
** with errno ENOMEM (out of memory), EBUSY (ctx in use by another thread)
** or EINVAL (vectorscan refused the database or scratch). Thread-safe with
** one ctx per thread. Buffers over 4 GiB are scanned by vectorscan in
** overlapping chunks (PCRE2 always sees the whole buffer).
*/
int scan_buffer (scan_ctx *c, const char *data, size_t len,
                 const scan_options *opt, scan_emit_fn emit, void *ud);

/* }====================================================== */

/* {====================================================== validators */

/* Shannon entropy of s in bits per byte (0 for an empty string). */
double scan_entropy (const char *s, size_t len);

/* GitHub (ghp_/gho_/ghu_/ghs_/ghr_) and npm (npm_) tokens: exactly 40
   bytes, the 4-char prefix, 30 base62 chars, then the CRC32 (zlib/IEEE)
   of those 30 chars in base62 (0-9A-Za-z, most significant digit first,
   left-padded with '0' to 6 chars). 1 if the checksum holds. */
int scan_check_github_crc32 (const char *s, size_t len);
int scan_check_npm_crc32 (const char *s, size_t len);

/*
** 1 if the secret looks like a placeholder (case-insensitive): it contains
** example, sample, dummy, placeholder, your-api-key, your_api_key,
** yourapikey, changeme or redacted, or xxxx when it is at most 128 bytes
** long (random base64 holds xxxx too often); or a run of 8 ascending
** characters (12345678, 67890123 — digits wrap from 9 to 0 — or abcdefgh);
** or one byte makes up more than half of it (aaaaaaaa, aaaaXaaa); or it is
** empty.
*/
int scan_is_placeholder (const char *s, size_t len);

/* }====================================================== */

#endif

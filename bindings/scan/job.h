/*
** job.h — a scan job: worker threads that read files (or git blobs, or one
** text) and scan them with a shared engine, producing finding records that
** the loop thread collects. No Lua and no libuv here: the binding wakes its
** task through the `notify` callback (which must be thread-safe, e.g.
** uv_async_send) and drains with scan_job_take.
**
** Life: scan_job_start spawns the threads; the job runs until its sources
** are exhausted or scan_job_cancel; scan_job_finished tells when every
** thread has exited (then scan_job_free joins and frees). Memory is bounded
** by the path queue (a walker thread feeds the workers), one read buffer per
** worker, and the findings not yet taken.
*/
#ifndef ATO_SCAN_JOB_H
#define ATO_SCAN_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "scan.h"

typedef enum { SCAN_JOB_TEXT, SCAN_JOB_FILES, SCAN_JOB_GIT } scan_job_kind;

typedef struct scan_job_options {
  int threads;                /* workers; <= 0: one per online CPU */
  size_t max_file_size;       /* larger files are skipped (reported) */
  int binary;                 /* scan files with a NUL in their first 8 KiB */
  int gitignore;              /* honour .gitignore in trees inside a repo */
  int all_objects;            /* git: unreachable blobs too */
  int no_validators;
  int follow_links;           /* enter symlinked directories (cycle-safe) */
} scan_job_options;

/* One finding, owned by the job until taken. Strings are NUL-terminated. */
typedef struct scan_record {
  size_t rule;
  char *path;                 /* file path, blob path, or the text's label */
  size_t line, column, offset;
  char *secret;  size_t secret_len;
  char fingerprint[65];       /* hex SHA-256 of the secret */
  char *redacted;             /* the secret's redacted form */
  char *line_text;            /* its line, every secret on it redacted, cut */
  long commit;                /* git: index in the job's commit table, or -1 */
  struct scan_record *next;
} scan_record;

/* A skipped input: too large, unreadable (binary files are only counted). */
typedef struct scan_skip {
  char *path;
  char *reason;
  struct scan_skip *next;
} scan_skip;

typedef struct scan_job_stats {
  uint64_t files, bytes, blobs, commits, binary_skipped, findings;
  uint64_t skipped;           /* entries in the skip list (it is capped) */
} scan_job_stats;

typedef struct scan_job scan_job;

/*
** Starts a job. sources: for TEXT one label and the buffer (text,
** text_len; copied), for FILES nsources paths
** (files or directories), for GIT one repository path. notify(ud) is called
** from any thread when records are available or the job finished. NULL
** with err on failure to start (no threads then).
*/
scan_job *scan_job_start (const scan_engine *e, scan_job_kind kind,
                          const char *const *sources, size_t nsources,
                          const char *text, size_t text_len,
                          const scan_job_options *opt,
                          void (*notify) (void *ud), void *ud,
                          char *err, size_t errlen);

/* Takes the records and skips produced so far (lists in production order,
   caller frees with scan_record_free / scan_skip_free); fills stats. */
void scan_job_take (scan_job *j, scan_record **records, scan_skip **skips,
                    scan_job_stats *stats);

int scan_job_finished (scan_job *j);    /* every thread has exited */
const char *scan_job_error (scan_job *j);  /* a fatal error (git open), or NULL */
void scan_job_cancel (scan_job *j);     /* threads stop soon; idempotent */
void scan_job_free (scan_job *j);       /* after finished: joins, frees */

/* git jobs: the commit of a record (NULL fields when unknown). */
typedef struct scan_commit_info {
  const char *id, *author, *email;
  int64_t time;               /* epoch seconds */
  int offset;                 /* minutes east of UTC */
} scan_commit_info;
int scan_job_commit (scan_job *j, long index, scan_commit_info *out);

void scan_record_free (scan_record *r);   /* the whole list */
void scan_skip_free (scan_skip *s);

#endif

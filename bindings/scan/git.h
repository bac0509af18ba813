/*
** git.h — the git-history source of `ato.scan` (C core, no Lua; libgit2).
**
** Lists every blob of a repository exactly once (deduplicated by blob id),
** reading objects natively, each with the FIRST commit that holds it and
** the path where it appears there; then hands blob contents to several
** scanning threads, each through its own reader.
**
**   scan_git *g;
**   if (scan_git_open(path, &g, err, sizeof err) < 0) ...
**   if (scan_git_enumerate(g, SCAN_GIT_ALL_OBJECTS, err, sizeof err) < 0) ...
**   blobs = scan_git_blobs(g, &n);          (then, in each thread:)
**   r = scan_git_reader_new(g, err, sizeof err);
**   for (i = ...) if (scan_git_read(r, i, &data, &len) == 0) scan(data, len);
**   scan_git_reader_free(r);                (all readers before:)
**   scan_git_close(g);
**
** What is "reachable": every ref (branches, tags — annotated tags peeled —,
** remotes, notes, refs/stash, anything under refs/), HEAD even if detached,
** the HEAD of every linked worktree, and every stash entry (stash@{n} for
** n > 0 lives only in the reflog of refs/stash, yet `git stash list` shows
** it). Other reflogs and pseudo-refs (ORIG_HEAD, FETCH_HEAD) are not refs:
** what only they reach is listed with SCAN_GIT_ALL_OBJECTS, like any other
** unreachable object. A ref whose target peels to a tree or a blob (a tag
** of a key file, say) makes that tree or blob reachable too; their blobs
** have no commit. Gitlinks (submodule commits) belong to other
** repositories and are skipped. Shallow clones work: missing parents of
** the shallow boundary end the history there.
**
** "First commit": commits are ordered parents-before-children and, among
** the commits whose parents are all done, oldest committer date first
** (much like git log --date-order --reverse); a blob belongs to the first
** commit in that order whose tree holds it, under the first path in that
** tree (ls-tree -r order). Trees already walked are not walked again: they
** hold no blob not seen before. Memory is O(commits + unique trees +
** unique blobs).
**
** Threads: libgit2 objects are not shared; each reader opens the
** repository again. scan_git_threadsafe() says whether libgit2 was built
** with thread support (Debian's is); if not, use a single reader.
*/
#ifndef ATO_SCAN_GIT_H
#define ATO_SCAN_GIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct scan_git scan_git;                 /* one repository */
typedef struct scan_git_reader scan_git_reader;   /* per thread */

/* A commit that introduced at least one blob (only those are kept). */
typedef struct scan_git_commit {
  char id[41];                  /* hex */
  const char *author_name;      /* "" if the commit could not be re-read */
  const char *author_email;
  int64_t author_time;          /* seconds since the epoch */
  int author_offset;            /* minutes east of UTC */
} scan_git_commit;

/* A unique blob. Raw id, not hex: there are many of them. */
typedef struct scan_git_blob {
  unsigned char oid[20];
  int32_t commit;               /* index in scan_git_commits(), -1: none */
  int64_t size;                 /* bytes; -1 if not known before reading */
  const char *path;             /* in that commit's tree; NULL: none */
} scan_git_blob;

/* Counters, readable from another thread while scan_git_enumerate runs. */
typedef struct scan_git_progress {
  size_t commits;               /* commits found from the refs */
  size_t walked;                /* commits whose trees were walked */
  size_t trees;                 /* unique trees walked */
  size_t blobs;                 /* unique blobs found */
  size_t warnings;              /* non-fatal problems (see scan_git_warning) */
} scan_git_progress;

/* scan_git_enumerate flag: also list every blob in the object database
   (loose and packed) that no ref reaches; those get no commit nor path. */
#define SCAN_GIT_ALL_OBJECTS 1
/* scan_git_enumerate flag: check the SHA-1 of every object read (trees
   while enumerating, blobs in readers), which catches an object stored
   under another's id. Off, as in git (only fsck checks): zlib's checksum
   still catches damaged data, and reading is ~1.7x faster. */
#define SCAN_GIT_VERIFY_HASHES 2

/*
** Opens the repository at path: a work tree (its .git) or a bare
** repository; parent directories are not searched. 0, or -1 with
** err = "PATH: reason".
*/
int scan_git_open (const char *path, scan_git **out, char *err,
                   size_t errlen);

/* Frees g and everything it returned. Free its readers first. */
void scan_git_close (scan_git *g);

/*
** Lists the blobs (once per g). 0, or -1 with err on a fatal error (out of
** memory, unreadable refs, cancelled). Objects that are missing or corrupt
** (a tree, a commit, a ref target) are skipped and counted as warnings.
*/
int scan_git_enumerate (scan_git *g, int flags, char *err, size_t errlen);

/* Makes a running scan_git_enumerate stop soon with "cancelled" (any
   thread). */
void scan_git_cancel (scan_git *g);

void scan_git_get_progress (const scan_git *g, scan_git_progress *p);

/* The first warning of scan_git_enumerate, or NULL; read it afterwards. */
const char *scan_git_warning (const scan_git *g);

/*
** The results of scan_git_enumerate, in discovery order (commit by commit,
** oldest first; then blobs reached only through refs to trees or blobs;
** then unreachable ones). Valid until scan_git_close.
*/
const scan_git_blob *scan_git_blobs (const scan_git *g, size_t *n);
const scan_git_commit *scan_git_commits (const scan_git *g, size_t *n);

void scan_git_oid_hex (const unsigned char oid[20], char hex[41]);

/* 1 if several readers may run in parallel (libgit2 built with threads). */
int scan_git_threadsafe (void);

/*
** A reader for one thread, on an enumerated g (which must outlive it).
** NULL with err = "PATH: reason" on failure.
*/
scan_git_reader *scan_git_reader_new (const scan_git *g, char *err,
                                      size_t errlen);
void scan_git_reader_free (scan_git_reader *r);

/*
** The raw content of blob i: *data, *len stay valid until the next call on
** r. 0, or -1 if the object is missing, damaged (zlib), stored under a
** wrong id (with SCAN_GIT_VERIFY_HASHES) or not a blob: the scan goes on,
** scan_git_reader_error(r) says why ("blob HEX: reason").
*/
int scan_git_read (scan_git_reader *r, size_t i, const char **data,
                   size_t *len);

/* Size of blob i from the object header only (no inflating of the
   content): to skip large blobs before reading them. 0 or -1, as above. */
int scan_git_read_size (scan_git_reader *r, size_t i, size_t *size);

const char *scan_git_reader_error (const scan_git_reader *r);

#endif

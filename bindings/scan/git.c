/*
** git.c — the git-history source of `ato.scan`: every blob of a
** repository once, with its first commit and path (see git.h).
**
** Enumeration, in three steps:
**   1. tips: the target of every ref, HEAD, worktree HEADs and stash
**      entries, tags peeled; commits go to step 2, trees and blobs wait;
**   2. graph: every commit reachable from the tips (id, tree id, committer
**      date, parents), breadth first. libgit2's revwalk is not used: in
**      1.5 it fails on a shallow clone (the boundary's parents are
**      missing), which is what CI checkouts are;
**   3. walk: Kahn's algorithm over the graph, parents first, oldest date
**      first among the ready commits (a heap); each commit's tree is
**      walked, skipping subtrees already walked, and each blob seen for
**      the first time is recorded with the commit and its path.
** Then the trees and blobs named by refs, then (SCAN_GIT_ALL_OBJECTS) the
** object database's blobs that none of this reached.
**
** Ids are kept raw (20 bytes) in arrays; sets over them are open-addressing
** tables of indices into those arrays (8 bytes a slot at most half full),
** so a unique tree costs ~36 bytes, a blob ~56 plus its path, interned.
*/
#include "git.h"

#include <git2.h>
#include <git2/sys/odb_backend.h>

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLEN GIT_OID_RAWSZ

_Static_assert(GIT_OID_RAWSZ == 20, "scan_git_blob.oid holds SHA-1 ids");

/* {====================================================== helpers */

static void fmt (char *buf, size_t len, const char *f, ...) {
  va_list ap;
  if (buf == NULL || len == 0) return;
  va_start(ap, f);
  vsnprintf(buf, len, f, ap);
  va_end(ap);
}

static const char *gitmsg (void) {
  const git_error *e = git_error_last();
  return (e != NULL && e->message != NULL) ? e->message : "unknown libgit2 error";
}

/*
** Grows the array *p (of *cap elements of size sz) to hold at least need.
** p is the address of any object pointer; it is accessed with memcpy, not
** through a void ** (which would break the aliasing rules).
*/
static int grow (void *p, size_t *cap, size_t need, size_t sz) {
  void *old, *np;
  size_t ncap;
  if (need <= *cap) return 0;
  ncap = *cap ? *cap : 64;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2 / sz) return -1;
    ncap *= 2;
  }
  memcpy(&old, p, sizeof old);
  if ((np = realloc(old, ncap * sz)) == NULL) return -1;
  memcpy(p, &np, sizeof np);
  *cap = ncap;
  return 0;
}

void scan_git_oid_hex (const unsigned char oid[20], char hex[41]) {
  static const char digits[] = "0123456789abcdef";
  int i;
  for (i = 0; i < IDLEN; i++) {
    hex[2 * i] = digits[oid[i] >> 4];
    hex[2 * i + 1] = digits[oid[i] & 15];
  }
  hex[40] = '\0';
}

/* }====================================================== */

/* {====================================================== raw objects */

/* An object's content, from git_odb_read or straight from a backend. */
typedef struct raw {
  git_odb_object *obj;
  git_odb_backend *backend;     /* the owner of data when obj is NULL */
  void *data;
  size_t len;
  git_object_t type;
} raw;

static void raw_free (raw *r) {
  if (r->obj != NULL) git_odb_object_free(r->obj);
  else if (r->data != NULL) git_odb_backend_data_free(r->backend, r->data);
  memset(r, 0, sizeof *r);
}

/*
** Reads id into r. git_odb_read hashes every object it returns (SHA-1 with
** collision detection: libgit2's "strict hash verification"), which took
** 2/3 of the enumeration time and 40% of the reading. git itself checks
** hashes only in fsck, and zlib's checksum still catches damaged data; so
** unless verify, the backends are asked directly, in the odb's order as
** git_odb_read does. A miss there goes to git_odb_read, which refreshes
** the list of packs and knows the (virtual) empty tree.
*/
static int raw_read (raw *r, git_odb *odb, const git_oid *id, int verify) {
  memset(r, 0, sizeof *r);
  if (!verify) {
    size_t i, n = git_odb_num_backends(odb);
    for (i = 0; i < n; i++) {
      git_odb_backend *b;
      int rc;
      if (git_odb_get_backend(&b, odb, i) < 0 || b->read == NULL) continue;
      rc = b->read(&r->data, &r->len, &r->type, b, id);
      if (rc == 0) {
        r->backend = b;
        return 0;
      }
      r->data = NULL;
      if (rc != GIT_ENOTFOUND && rc != GIT_PASSTHROUGH) return -1;
    }
  }
  if (git_odb_read(&r->obj, odb, id) < 0) {
    r->obj = NULL;
    return -1;
  }
  r->data = (void *)git_odb_object_data(r->obj);
  r->len = git_odb_object_size(r->obj);
  r->type = git_odb_object_type(r->obj);
  return 0;
}

/* }====================================================== */

/* {====================================================== id sets */

/*
** A set of ids stored elsewhere: slot holds index + 1 into an array whose
** element i has its id at base + i * stride (0: empty). The array may move
** between calls, so its address is passed each time.
*/
typedef struct idset { uint32_t *slot; size_t cap, n; } idset;

#define AT(base, stride, i) \
  ((const unsigned char *)(base) + (size_t)(i) * (stride))

/* SHA-1 ids are uniform: their first bytes are a hash already. */
static size_t idhash (const unsigned char *id) {
  uint64_t h;
  memcpy(&h, id, sizeof h);
  return (size_t)h;
}

static uint32_t *idset_slot (const idset *s, const unsigned char *id,
                             const void *base, size_t stride) {
  size_t i = idhash(id) & (s->cap - 1);
  for (;;) {
    uint32_t v = s->slot[i];
    if (v == 0 || memcmp(AT(base, stride, v - 1), id, IDLEN) == 0)
      return &s->slot[i];
    i = (i + 1) & (s->cap - 1);
  }
}

/* Makes room for one more entry (load <= 1/2). */
static int idset_reserve (idset *s, const void *base, size_t stride) {
  idset ns;
  size_t i;
  if (2 * (s->n + 1) <= s->cap) return 0;
  if (s->n >= UINT32_MAX - 1) return -1;
  ns.cap = s->cap ? 2 * s->cap : 1024;
  ns.n = s->n;
  ns.slot = calloc(ns.cap, sizeof *ns.slot);
  if (ns.slot == NULL) return -1;
  for (i = 0; i < s->cap; i++) {
    uint32_t v = s->slot[i];
    if (v != 0) *idset_slot(&ns, AT(base, stride, v - 1), base, stride) = v;
  }
  free(s->slot);
  *s = ns;
  return 0;
}

/* Index of id in the array, or -1. */
static int64_t idset_find (const idset *s, const unsigned char *id,
                           const void *base, size_t stride) {
  uint32_t v;
  if (s->cap == 0) return -1;
  v = *idset_slot(s, id, base, stride);
  return v ? (int64_t)v - 1 : -1;
}

static void idset_free (idset *s) {
  free(s->slot);
  memset(s, 0, sizeof *s);
}

/* }====================================================== */

/* {====================================================== strings */

/* Interned strings (paths, names): blocks that never move, and a set. */
typedef struct block { struct block *next; size_t used, cap; char data[]; } block;

typedef struct strtab {
  block *blocks;
  const char **slot;
  size_t cap, n;
} strtab;

static size_t strhash (const char *s, size_t len) {
  uint64_t h = 1469598103934665603u;    /* FNV-1a */
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
  return (size_t)h;
}

static const char **str_slot (const strtab *t, const char *s, size_t len) {
  size_t i = strhash(s, len) & (t->cap - 1);
  for (;;) {
    const char *v = t->slot[i];
    if (v == NULL || (strncmp(v, s, len) == 0 && v[len] == '\0'))
      return &t->slot[i];
    i = (i + 1) & (t->cap - 1);
  }
}

static int str_reserve (strtab *t) {
  strtab nt;
  size_t i;
  if (2 * (t->n + 1) <= t->cap) return 0;
  nt.cap = t->cap ? 2 * t->cap : 1024;
  nt.slot = calloc(nt.cap, sizeof *nt.slot);
  if (nt.slot == NULL) return -1;
  for (i = 0; i < t->cap; i++)
    if (t->slot[i] != NULL)
      *str_slot(&nt, t->slot[i], strlen(t->slot[i])) = t->slot[i];
  free(t->slot);
  t->slot = nt.slot;
  t->cap = nt.cap;
  return 0;
}

static char *str_alloc (strtab *t, size_t len) {
  block *b = t->blocks;
  char *p;
  if (b == NULL || b->cap - b->used < len + 1) {
    size_t cap = len + 1 > 65536 ? len + 1 : 65536;
    b = malloc(sizeof *b + cap);
    if (b == NULL) return NULL;
    b->used = 0;
    b->cap = cap;
    b->next = t->blocks;
    t->blocks = b;
  }
  p = b->data + b->used;
  b->used += len + 1;
  return p;
}

/* The one copy of s[0, len), or NULL on ENOMEM. */
static const char *str_intern (strtab *t, const char *s, size_t len) {
  const char **slot;
  char *p;
  if (str_reserve(t) < 0) return NULL;
  slot = str_slot(t, s, len);
  if (*slot != NULL) return *slot;
  if ((p = str_alloc(t, len)) == NULL) return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  t->n++;
  return *slot = p;
}

static void str_free (strtab *t) {
  while (t->blocks != NULL) {
    block *b = t->blocks;
    t->blocks = b->next;
    free(b);
  }
  free(t->slot);
  memset(t, 0, sizeof *t);
}

/* }====================================================== */

/* {====================================================== state */

/* A commit of the graph. */
typedef struct node {
  unsigned char id[IDLEN], tree[IDLEN];
  int64_t time;                 /* committer date: the order among equals */
  uint32_t par, npar;           /* parents: pidx[par .. par + npar) */
  uint32_t kid, nkid;           /* children: kids[kid .. kid + nkid) */
  uint32_t waiting;             /* parents not walked yet */
  int32_t commit;               /* index in g->commits, -1: none yet */
} node;

#define NOPARENT UINT32_MAX

/* A ref target that is a tree or a blob. */
typedef struct tip { unsigned char id[IDLEN]; git_object_t type; } tip;

/* A tree being walked, raw: its entries before p are done. */
typedef struct frame {
  raw obj;
  const char *p, *end;
  size_t pathlen;
  unsigned char id[IDLEN];      /* for messages */
} frame;

struct scan_git {
  git_repository *repo;
  git_odb *odb;                 /* trees are read raw (see push_tree) */
  char *path;                   /* what readers reopen */
  int shallow, enumerated, verify;
  /* graph */
  node *nodes; size_t nnodes, capnodes;
  idset nodeset;
  unsigned char *pids; size_t npids, cappids;   /* parent ids, then: */
  uint32_t *pidx;               /* parent indices (NOPARENT: missing) */
  uint32_t *kids;
  uint32_t *heap; size_t nheap;
  tip *tips; size_t ntips, captips;
  /* walk */
  unsigned char *trees; size_t ntrees, captrees;
  idset treeset;
  frame *stack; size_t nstack, capstack;
  char *pathbuf; size_t cappath;
  /* results */
  scan_git_blob *blobs; size_t nblobs, capblobs;
  idset blobset;
  scan_git_commit *commits; size_t ncommits, capcommits;
  strtab strings;
  /* progress */
  atomic_size_t pcommits, pwalked, ptrees, pblobs, pwarnings;
  atomic_int cancelled;
  char warning[256];
  char fatal[256];              /* why a step failed */
};

static void warn (scan_git *g, const char *f, ...) {
  if (atomic_fetch_add_explicit(&g->pwarnings, 1, memory_order_relaxed) == 0) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(g->warning, sizeof g->warning, f, ap);
    va_end(ap);
  }
}

static int nomem (scan_git *g) {
  fmt(g->fatal, sizeof g->fatal, "%s: out of memory", g->path);
  return -1;
}

static int cancelled (scan_git *g) {
  if (!atomic_load_explicit(&g->cancelled, memory_order_relaxed)) return 0;
  fmt(g->fatal, sizeof g->fatal, "%s: cancelled", g->path);
  return 1;
}

static void hexof (const unsigned char *id, char hex[41]) {
  scan_git_oid_hex(id, hex);
}

static void tooid (git_oid *o, const unsigned char *id) {
  memcpy(o->id, id, IDLEN);
}

/* }====================================================== */

/* {====================================================== open, close */

int scan_git_threadsafe (void) {
  return (git_libgit2_features() & GIT_FEATURE_THREADS) != 0;
}

/* Opens path as it is: no search upwards, so a directory inside some
   other repository is not mistaken for the one asked for. */
static int open_repo (git_repository **repo, const char *path, char *err,
                      size_t errlen) {
  if (git_repository_open_ext(repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH,
                              NULL) < 0) {
    fmt(err, errlen, "%s: %s", path, gitmsg());
    *repo = NULL;
    return -1;
  }
  return 0;
}

int scan_git_open (const char *path, scan_git **out, char *err,
                   size_t errlen) {
  scan_git *g;
  char *real;
  *out = NULL;
  if (git_libgit2_init() < 0) {
    fmt(err, errlen, "%s: cannot initialise libgit2: %s", path, gitmsg());
    return -1;
  }
  if ((g = calloc(1, sizeof *g)) == NULL) {
    fmt(err, errlen, "%s: out of memory", path);
    git_libgit2_shutdown();
    return -1;
  }
  if (open_repo(&g->repo, path, err, errlen) < 0) {
    scan_git_close(g);
    return -1;
  }
  /* readers reopen it from other threads: an absolute path does not
     depend on the working directory then */
  real = realpath(path, NULL);
  g->path = real != NULL ? real : strdup(path);
  if (g->path == NULL) {
    fmt(err, errlen, "%s: out of memory", path);
    scan_git_close(g);
    return -1;
  }
  g->shallow = git_repository_is_shallow(g->repo) == 1;
  *out = g;
  return 0;
}

static void free_walk (scan_git *g) {
  while (g->nstack > 0) raw_free(&g->stack[--g->nstack].obj);
  free(g->stack); g->stack = NULL; g->capstack = 0;
  free(g->nodes); g->nodes = NULL; g->nnodes = g->capnodes = 0;
  idset_free(&g->nodeset);
  free(g->pids); g->pids = NULL; g->npids = g->cappids = 0;
  free(g->pidx); g->pidx = NULL;
  free(g->kids); g->kids = NULL;
  free(g->heap); g->heap = NULL; g->nheap = 0;
  free(g->tips); g->tips = NULL; g->ntips = g->captips = 0;
  free(g->trees); g->trees = NULL; g->ntrees = g->captrees = 0;
  idset_free(&g->treeset);
  idset_free(&g->blobset);
  free(g->pathbuf); g->pathbuf = NULL; g->cappath = 0;
  git_odb_free(g->odb); g->odb = NULL;
}

void scan_git_close (scan_git *g) {
  if (g == NULL) return;
  free_walk(g);
  free(g->blobs);
  free(g->commits);
  str_free(&g->strings);
  git_repository_free(g->repo);
  free(g->path);
  free(g);
  git_libgit2_shutdown();
}

/* }====================================================== */

/* {====================================================== tips and graph */

/*
** Adds commit id to the graph if new. A commit that cannot be read is a
** warning, except beyond a shallow boundary where it is expected.
*/
static int add_commit (scan_git *g, const unsigned char *id, int is_parent) {
  git_commit *c;
  git_oid o;
  node *nd;
  unsigned i, np;
  uint32_t *slot;
  if (idset_reserve(&g->nodeset, g->nodes, sizeof *g->nodes) < 0)
    return nomem(g);
  slot = idset_slot(&g->nodeset, id, g->nodes, sizeof *g->nodes);
  if (*slot != 0) return 0;
  tooid(&o, id);
  if (git_commit_lookup(&c, g->repo, &o) < 0) {
    char hex[41];
    if (is_parent && g->shallow) return 0;
    hexof(id, hex);
    warn(g, "commit %s: %s", hex, gitmsg());
    return 0;
  }
  np = git_commit_parentcount(c);
  if (grow(&g->nodes, &g->capnodes, g->nnodes + 1, sizeof *g->nodes) < 0 ||
      grow(&g->pids, &g->cappids, g->npids + np, IDLEN) < 0 ||
      g->nnodes >= UINT32_MAX - 1 || g->npids + np >= UINT32_MAX - 1) {
    git_commit_free(c);
    return nomem(g);
  }
  nd = &g->nodes[g->nnodes];
  memset(nd, 0, sizeof *nd);
  memcpy(nd->id, id, IDLEN);
  memcpy(nd->tree, git_commit_tree_id(c)->id, IDLEN);
  nd->time = git_commit_time(c);
  nd->commit = -1;
  nd->par = (uint32_t)g->npids;
  nd->npar = np;
  for (i = 0; i < np; i++)
    memcpy(g->pids + IDLEN * g->npids++, git_commit_parent_id(c, i)->id, IDLEN);
  git_commit_free(c);
  *slot = (uint32_t)++g->nnodes;
  g->nodeset.n++;
  atomic_store_explicit(&g->pcommits, g->nnodes, memory_order_relaxed);
  return 0;
}

/* Peels annotated tags; commits join the graph, trees and blobs wait. */
static int add_tip (scan_git *g, const git_oid *target, const char *name) {
  git_object *obj, *next;
  int depth;
  if (git_object_lookup(&obj, g->repo, target, GIT_OBJECT_ANY) < 0) {
    warn(g, "%s: %s", name, gitmsg());
    return 0;
  }
  /* a chain of tags ends: each tag's id hashes its target's */
  for (depth = 0; git_object_type(obj) == GIT_OBJECT_TAG; depth++) {
    int rc = git_tag_target(&next, (git_tag *)obj);
    git_object_free(obj);
    if (rc < 0) {
      warn(g, "%s: %s", name, gitmsg());
      return 0;
    }
    obj = next;
  }
  switch (git_object_type(obj)) {
    case GIT_OBJECT_COMMIT: {
      unsigned char id[IDLEN];
      memcpy(id, git_object_id(obj)->id, IDLEN);
      git_object_free(obj);
      return add_commit(g, id, 0);
    }
    case GIT_OBJECT_TREE: case GIT_OBJECT_BLOB: {
      if (grow(&g->tips, &g->captips, g->ntips + 1, sizeof *g->tips) < 0) {
        git_object_free(obj);
        return nomem(g);
      }
      memcpy(g->tips[g->ntips].id, git_object_id(obj)->id, IDLEN);
      g->tips[g->ntips++].type = git_object_type(obj);
      git_object_free(obj);
      return 0;
    }
    default:
      git_object_free(obj);
      return 0;
  }
}

static int add_ref (scan_git *g, git_reference *ref) {
  git_reference *res;
  int rc;
  if (git_reference_resolve(&res, ref) < 0) {   /* dangling symbolic ref */
    warn(g, "%s: %s", git_reference_name(ref), gitmsg());
    return 0;
  }
  rc = add_tip(g, git_reference_target(res), git_reference_name(ref));
  git_reference_free(res);
  return rc;
}

static int add_refs (scan_git *g) {
  git_reference_iterator *it;
  git_reference *ref;
  int rc;
  if (git_reference_iterator_new(&it, g->repo) < 0) {
    fmt(g->fatal, sizeof g->fatal, "%s: cannot list refs: %s", g->path, gitmsg());
    return -1;
  }
  while ((rc = git_reference_next(&ref, it)) == 0) {
    rc = add_ref(g, ref);
    git_reference_free(ref);
    if (rc < 0) break;
  }
  git_reference_iterator_free(it);
  if (rc == GIT_ITEROVER) return 0;
  if (rc < 0 && g->fatal[0] == '\0')
    fmt(g->fatal, sizeof g->fatal, "%s: cannot list refs: %s", g->path, gitmsg());
  return -1;
}

/* HEAD, detached or not; an unborn branch (empty repository) is no tip. */
static int add_head (scan_git *g) {
  git_oid id;
  if (git_reference_name_to_id(&id, g->repo, "HEAD") < 0) return 0;
  return add_tip(g, &id, "HEAD");
}

static int add_worktrees (scan_git *g) {
  git_strarray names = { NULL, 0 };
  size_t i;
  int rc = 0;
  if (git_worktree_list(&names, g->repo) < 0) {
    warn(g, "worktrees: %s", gitmsg());
    return 0;
  }
  for (i = 0; i < names.count && rc == 0; i++) {
    git_reference *head;
    if (git_repository_head_for_worktree(&head, g->repo, names.strings[i]) < 0)
      continue;                 /* pruned, or an unborn branch */
    rc = add_ref(g, head);
    git_reference_free(head);
  }
  git_strarray_dispose(&names);
  return rc;
}

/* stash@{1} and older are only in the reflog of refs/stash. */
static int add_stashes (scan_git *g) {
  git_reflog *log;
  size_t i, n;
  int rc = 0;
  if (git_reflog_read(&log, g->repo, "refs/stash") < 0) {
    warn(g, "refs/stash reflog: %s", gitmsg());
    return 0;
  }
  n = git_reflog_entrycount(log);
  for (i = 0; i < n && rc == 0; i++) {
    const git_reflog_entry *e = git_reflog_entry_byindex(log, i);
    if (e != NULL && !git_oid_is_zero(git_reflog_entry_id_new(e)))
      rc = add_tip(g, git_reflog_entry_id_new(e), "refs/stash reflog");
  }
  git_reflog_free(log);
  return rc;
}

/* Every commit reachable from the tips: the node array is the queue. */
static int add_ancestors (scan_git *g) {
  size_t i;
  uint32_t k;
  for (i = 0; i < g->nnodes; i++) {
    if (cancelled(g)) return -1;
    for (k = 0; k < g->nodes[i].npar; k++) {
      unsigned char id[IDLEN];  /* g->pids moves when a commit is added */
      memcpy(id, g->pids + IDLEN * (g->nodes[i].par + k), IDLEN);
      if (add_commit(g, id, 1) < 0) return -1;
    }
  }
  return 0;
}

/* Parent ids to indices, and the children lists (the reverse edges). */
static int link_graph (scan_git *g) {
  size_t i, total = 0;
  uint32_t k;
  g->pidx = malloc((g->npids ? g->npids : 1) * sizeof *g->pidx);
  if (g->pidx == NULL) return nomem(g);
  for (i = 0; i < g->nnodes; i++) {
    node *nd = &g->nodes[i];
    for (k = 0; k < nd->npar; k++) {
      int64_t p = idset_find(&g->nodeset, g->pids + IDLEN * (nd->par + k),
                             g->nodes, sizeof *g->nodes);
      g->pidx[nd->par + k] = p < 0 ? NOPARENT : (uint32_t)p;
      if (p >= 0) {
        g->nodes[p].nkid++;
        nd->waiting++;
        total++;
      }
    }
  }
  free(g->pids); g->pids = NULL; g->npids = g->cappids = 0;
  g->kids = malloc((total ? total : 1) * sizeof *g->kids);
  if (g->kids == NULL) return nomem(g);
  for (i = 0, total = 0; i < g->nnodes; i++) {
    g->nodes[i].kid = (uint32_t)total;
    total += g->nodes[i].nkid;
    g->nodes[i].nkid = 0;       /* refilled below */
  }
  for (i = 0; i < g->nnodes; i++) {
    node *nd = &g->nodes[i];
    for (k = 0; k < nd->npar; k++) {
      uint32_t p = g->pidx[nd->par + k];
      if (p != NOPARENT)
        g->kids[g->nodes[p].kid + g->nodes[p].nkid++] = (uint32_t)i;
    }
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== ready heap */

/* Older first; discovery order among equal dates, for determinism. */
static int before (const scan_git *g, uint32_t a, uint32_t b) {
  if (g->nodes[a].time != g->nodes[b].time)
    return g->nodes[a].time < g->nodes[b].time;
  return a < b;
}

static void heap_push (scan_git *g, uint32_t v) {
  size_t i = g->nheap++;
  while (i > 0 && before(g, v, g->heap[(i - 1) / 2])) {
    g->heap[i] = g->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  g->heap[i] = v;
}

static uint32_t heap_pop (scan_git *g) {
  uint32_t top = g->heap[0], v = g->heap[--g->nheap];
  size_t i = 0, n = g->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && before(g, g->heap[c + 1], g->heap[c])) c++;
    if (!before(g, g->heap[c], v)) break;
    g->heap[i] = g->heap[c];
    i = c;
  }
  if (n > 0) g->heap[i] = v;
  return top;
}

/* }====================================================== */

/* {====================================================== tree walk */

/* The commit record of node ni, made when it first introduces a blob. */
static int commit_of (scan_git *g, uint32_t ni, int32_t *out) {
  scan_git_commit *rec;
  git_commit *c;
  git_oid o;
  if (g->nodes[ni].commit >= 0) {
    *out = g->nodes[ni].commit;
    return 0;
  }
  if (g->ncommits >= INT32_MAX ||
      grow(&g->commits, &g->capcommits, g->ncommits + 1, sizeof *g->commits) < 0)
    return nomem(g);
  rec = &g->commits[g->ncommits];
  memset(rec, 0, sizeof *rec);
  hexof(g->nodes[ni].id, rec->id);
  rec->author_name = rec->author_email = "";
  tooid(&o, g->nodes[ni].id);
  if (git_commit_lookup(&c, g->repo, &o) == 0) {
    const git_signature *a = git_commit_author(c);
    const char *n = a->name ? a->name : "", *m = a->email ? a->email : "";
    const char *name = str_intern(&g->strings, n, strlen(n));
    const char *mail = str_intern(&g->strings, m, strlen(m));
    rec->author_time = a->when.time;
    rec->author_offset = a->when.offset;
    git_commit_free(c);
    if (name == NULL || mail == NULL) return nomem(g);
    rec->author_name = name;
    rec->author_email = mail;
  }
  else
    warn(g, "commit %s: %s", rec->id, gitmsg());
  *out = g->nodes[ni].commit = (int32_t)g->ncommits++;
  return 0;
}

/* 1 if tree id is new (now marked), 0 if walked already, -1 on ENOMEM. */
static int visit_tree (scan_git *g, const unsigned char *id) {
  uint32_t *slot;
  if (idset_reserve(&g->treeset, g->trees, IDLEN) < 0) return nomem(g);
  slot = idset_slot(&g->treeset, id, g->trees, IDLEN);
  if (*slot != 0) return 0;
  if (grow(&g->trees, &g->captrees, g->ntrees + 1, IDLEN) < 0) return nomem(g);
  memcpy(g->trees + IDLEN * g->ntrees, id, IDLEN);
  *slot = (uint32_t)++g->ntrees;
  g->treeset.n++;
  atomic_store_explicit(&g->ptrees, g->ntrees, memory_order_relaxed);
  return 1;
}

/*
** Records blob id if new. ni is the commit being walked (NOPARENT: none),
** path[0, pathlen) where it is (path NULL: none), size -1 if unknown.
*/
static int add_blob (scan_git *g, const unsigned char *id, uint32_t ni,
                     const char *path, size_t pathlen, int64_t size) {
  scan_git_blob *b;
  uint32_t *slot;
  int32_t commit = -1;
  const char *ipath = NULL;
  if (idset_reserve(&g->blobset, g->blobs, sizeof *g->blobs) < 0)
    return nomem(g);
  slot = idset_slot(&g->blobset, id, g->blobs, sizeof *g->blobs);
  if (*slot != 0) return 0;
  if (ni != NOPARENT && commit_of(g, ni, &commit) < 0) return -1;
  if (path != NULL && (ipath = str_intern(&g->strings, path, pathlen)) == NULL)
    return nomem(g);
  if (grow(&g->blobs, &g->capblobs, g->nblobs + 1, sizeof *g->blobs) < 0)
    return nomem(g);
  b = &g->blobs[g->nblobs];
  memcpy(b->oid, id, IDLEN);
  b->commit = commit;
  b->size = size;
  b->path = ipath;
  *slot = (uint32_t)++g->nblobs;
  g->blobset.n++;
  atomic_store_explicit(&g->pblobs, g->nblobs, memory_order_relaxed);
  return 0;
}

static int path_room (scan_git *g, size_t need) {
  return grow(&g->pathbuf, &g->cappath, need, 1) < 0 ? nomem(g) : 0;
}

/*
** Pushes tree id, whose path prefix (with its '/') is pathbuf[0, pathlen).
** Trees are read from the object database and parsed here, not with
** git_tree_lookup: that one builds an entry array for every tree (and the
** root tree of a big project changes in every commit), which made up most
** of the enumeration time.
*/
static int push_tree (scan_git *g, const unsigned char *id, size_t pathlen) {
  raw obj;
  git_oid o;
  frame *f;
  char hex[41];
  tooid(&o, id);
  if (raw_read(&obj, g->odb, &o, g->verify) < 0) {
    hexof(id, hex);
    warn(g, "tree %s: %s", hex, gitmsg());
    return 0;
  }
  if (obj.type != GIT_OBJECT_TREE) {
    raw_free(&obj);
    hexof(id, hex);
    warn(g, "tree %s: not a tree", hex);
    return 0;
  }
  if (grow(&g->stack, &g->capstack, g->nstack + 1, sizeof *g->stack) < 0) {
    raw_free(&obj);
    return nomem(g);
  }
  f = &g->stack[g->nstack++];
  f->obj = obj;
  f->p = obj.data;
  f->end = f->p + obj.len;
  f->pathlen = pathlen;
  memcpy(f->id, id, IDLEN);
  return 0;
}

/*
** Parses the next entry of f: "MODE NAME\0" and a 20-byte id. 0, or -1 if
** the tree is malformed (the rest of it is skipped, with a warning).
*/
static int next_entry (scan_git *g, frame *f, unsigned *mode,
                       const char **name, size_t *len, const unsigned char **id) {
  const char *p = f->p, *nul;
  unsigned m = 0;
  while (p < f->end && *p >= '0' && *p <= '7' && m < 01000000)
    m = m * 8 + (unsigned)(*p++ - '0');
  if (p == f->p || p >= f->end || *p++ != ' ' ||
      (nul = memchr(p, '\0', (size_t)(f->end - p))) == NULL || nul == p ||
      f->end - (nul + 1) < IDLEN) {
    char hex[41];
    hexof(f->id, hex);
    warn(g, "tree %s: malformed entry at byte %td", hex,
         f->p - (const char *)f->obj.data);
    f->p = f->end;
    return -1;
  }
  *mode = m;
  *name = p;
  *len = (size_t)(nul - p);
  *id = (const unsigned char *)nul + 1;
  f->p = nul + 1 + IDLEN;
  return 0;
}

/* One entry of the top frame: a blob to record or a subtree to enter. */
static int walk_entry (scan_git *g, uint32_t ni) {
  frame *f = &g->stack[g->nstack - 1];
  size_t base = f->pathlen, len;
  const unsigned char *id;
  const char *name;
  unsigned mode;
  int rc;
  if (next_entry(g, f, &mode, &name, &len, &id) < 0) return 0;
  switch (mode & 0170000) {
    case 0040000:               /* a subtree */
      if ((rc = visit_tree(g, id)) <= 0) return rc;
      if (path_room(g, base + len + 2) < 0) return -1;
      memcpy(g->pathbuf + base, name, len);
      g->pathbuf[base + len] = '/';
      return push_tree(g, id, base + len + 1);  /* f moves: used no more */
    case 0160000:               /* gitlinks: another repository's commits */
      return 0;
    default:                    /* files, executables and symlinks */
      if (path_room(g, base + len + 1) < 0) return -1;
      memcpy(g->pathbuf + base, name, len);
      return add_blob(g, id, ni, g->pathbuf, base + len, -1);
  }
}

/* Walks tree id and its subtrees not walked yet, depth first. */
static int walk_tree (scan_git *g, const unsigned char *id, uint32_t ni) {
  int rc = visit_tree(g, id);
  size_t steps = 0;
  if (rc <= 0) return rc;
  if (push_tree(g, id, 0) < 0) return -1;
  while (g->nstack > 0) {
    frame *f = &g->stack[g->nstack - 1];
    if (f->p == f->end) {
      raw_free(&f->obj);
      g->nstack--;
      continue;
    }
    if ((++steps & 1023) == 0 && cancelled(g)) return -1;
    if (walk_entry(g, ni) < 0) return -1;
  }
  return 0;
}

/* Kahn's algorithm: a commit is walked once all its parents were. */
static int walk_commits (scan_git *g) {
  size_t i, walked = 0;
  g->heap = malloc((g->nnodes ? g->nnodes : 1) * sizeof *g->heap);
  if (g->heap == NULL) return nomem(g);
  for (i = 0; i < g->nnodes; i++)
    if (g->nodes[i].waiting == 0) heap_push(g, (uint32_t)i);
  while (g->nheap > 0) {
    uint32_t ni = heap_pop(g), k;
    if (cancelled(g)) return -1;
    if (walk_tree(g, g->nodes[ni].tree, ni) < 0) return -1;
    for (k = 0; k < g->nodes[ni].nkid; k++) {
      uint32_t c = g->kids[g->nodes[ni].kid + k];
      if (--g->nodes[c].waiting == 0) heap_push(g, c);
    }
    atomic_store_explicit(&g->pwalked, ++walked, memory_order_relaxed);
  }
  return 0;
}

/* Trees and blobs that refs name directly: no commit. */
static int walk_tips (scan_git *g) {
  size_t i;
  for (i = 0; i < g->ntips; i++) {
    const tip *t = &g->tips[i];
    int rc = t->type == GIT_OBJECT_TREE
      ? walk_tree(g, t->id, NOPARENT)
      : add_blob(g, t->id, NOPARENT, NULL, 0, -1);
    if (rc < 0) return -1;
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== all objects */

typedef struct odbwalk { scan_git *g; int rc; } odbwalk;

static int known (scan_git *g, const unsigned char *id) {
  return idset_find(&g->blobset, id, g->blobs, sizeof *g->blobs) >= 0 ||
         idset_find(&g->treeset, id, g->trees, IDLEN) >= 0 ||
         idset_find(&g->nodeset, id, g->nodes, sizeof *g->nodes) >= 0;
}

/* foreach reports every object (any type, maybe twice: loose and in a
   pack); only the header says which are blobs. */
static int odb_each (const git_oid *id, void *ud) {
  odbwalk *w = ud;
  size_t len;
  git_object_t type;
  if (cancelled(w->g)) { w->rc = -1; return 1; }
  if (known(w->g, id->id)) return 0;
  if (git_odb_read_header(&len, &type, w->g->odb, id) < 0) {
    warn(w->g, "object %s: %s", git_oid_tostr_s(id), gitmsg());
    return 0;
  }
  if (type != GIT_OBJECT_BLOB) return 0;
  if (add_blob(w->g, id->id, NOPARENT, NULL, 0, (int64_t)len) < 0) {
    w->rc = -1;
    return 1;
  }
  return 0;
}

static int add_unreachable (scan_git *g) {
  odbwalk w = { g, 0 };
  int rc = git_odb_foreach(g->odb, odb_each, &w);
  if (w.rc < 0) return -1;
  if (rc < 0) {
    fmt(g->fatal, sizeof g->fatal, "%s: listing objects: %s", g->path, gitmsg());
    return -1;
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== enumerate */

int scan_git_enumerate (scan_git *g, int flags, char *err, size_t errlen) {
  int rc;
  if (g->enumerated) {
    fmt(err, errlen, "%s: already enumerated", g->path);
    return -1;
  }
  g->enumerated = 1;
  g->verify = (flags & SCAN_GIT_VERIFY_HASHES) != 0;
  g->fatal[0] = '\0';
  if (git_repository_odb(&g->odb, g->repo) < 0) {
    fmt(err, errlen, "%s: object database: %s", g->path, gitmsg());
    return -1;
  }
  rc = add_refs(g) < 0 || add_head(g) < 0 || add_worktrees(g) < 0 ||
       add_stashes(g) < 0 || add_ancestors(g) < 0 || link_graph(g) < 0 ||
       walk_commits(g) < 0 || walk_tips(g) < 0 ||
       ((flags & SCAN_GIT_ALL_OBJECTS) && add_unreachable(g) < 0)
       ? -1 : 0;
  free_walk(g);                 /* only the results stay */
  if (rc < 0) {
    if (g->fatal[0] == '\0') nomem(g);
    fmt(err, errlen, "%s", g->fatal);
  }
  return rc;
}

void scan_git_cancel (scan_git *g) {
  atomic_store(&g->cancelled, 1);
}

void scan_git_get_progress (const scan_git *g, scan_git_progress *p) {
  scan_git *m = (scan_git *)g;  /* atomic loads take non-const pointers */
  p->commits = atomic_load_explicit(&m->pcommits, memory_order_relaxed);
  p->walked = atomic_load_explicit(&m->pwalked, memory_order_relaxed);
  p->trees = atomic_load_explicit(&m->ptrees, memory_order_relaxed);
  p->blobs = atomic_load_explicit(&m->pblobs, memory_order_relaxed);
  p->warnings = atomic_load_explicit(&m->pwarnings, memory_order_relaxed);
}

const char *scan_git_warning (const scan_git *g) {
  return g->warning[0] ? g->warning : NULL;
}

const scan_git_blob *scan_git_blobs (const scan_git *g, size_t *n) {
  *n = g->nblobs;
  return g->blobs;
}

const scan_git_commit *scan_git_commits (const scan_git *g, size_t *n) {
  *n = g->ncommits;
  return g->commits;
}

/* }====================================================== */

/* {====================================================== readers */

struct scan_git_reader {
  const scan_git *g;
  git_repository *repo;
  git_odb *odb;
  raw obj;                      /* the last blob read: its data is lent out */
  char error[256];
};

scan_git_reader *scan_git_reader_new (const scan_git *g, char *err,
                                      size_t errlen) {
  scan_git_reader *r;
  if (git_libgit2_init() < 0) {
    fmt(err, errlen, "%s: cannot initialise libgit2: %s", g->path, gitmsg());
    return NULL;
  }
  if ((r = calloc(1, sizeof *r)) == NULL) {
    fmt(err, errlen, "%s: out of memory", g->path);
    git_libgit2_shutdown();
    return NULL;
  }
  r->g = g;
  if (open_repo(&r->repo, g->path, err, errlen) < 0) {
    scan_git_reader_free(r);
    return NULL;
  }
  if (git_repository_odb(&r->odb, r->repo) < 0) {
    fmt(err, errlen, "%s: object database: %s", g->path, gitmsg());
    scan_git_reader_free(r);
    return NULL;
  }
  return r;
}

void scan_git_reader_free (scan_git_reader *r) {
  if (r == NULL) return;
  raw_free(&r->obj);
  git_odb_free(r->odb);
  git_repository_free(r->repo);
  free(r);
  git_libgit2_shutdown();
}

/* Blob i's id, or NULL with r->error. */
static const unsigned char *blob_id (scan_git_reader *r, size_t i) {
  if (i >= r->g->nblobs) {
    fmt(r->error, sizeof r->error, "no blob %zu (%zu blobs)", i, r->g->nblobs);
    return NULL;
  }
  return r->g->blobs[i].oid;
}

static int read_error (scan_git_reader *r, const unsigned char *id,
                       const char *why) {
  char hex[41];
  hexof(id, hex);
  fmt(r->error, sizeof r->error, "blob %s: %s", hex, why);
  return -1;
}

int scan_git_read (scan_git_reader *r, size_t i, const char **data,
                   size_t *len) {
  const unsigned char *id = blob_id(r, i);
  git_oid o;
  *data = NULL;
  *len = 0;
  raw_free(&r->obj);
  if (id == NULL) return -1;
  tooid(&o, id);
  if (raw_read(&r->obj, r->odb, &o, r->g->verify) < 0)
    return read_error(r, id, gitmsg());
  if (r->obj.type != GIT_OBJECT_BLOB) {
    raw_free(&r->obj);
    return read_error(r, id, "not a blob");
  }
  *data = r->obj.data != NULL ? r->obj.data : "";  /* empty: still a buffer */
  *len = r->obj.len;
  return 0;
}

int scan_git_read_size (scan_git_reader *r, size_t i, size_t *size) {
  const unsigned char *id = blob_id(r, i);
  git_object_t type;
  git_oid o;
  *size = 0;
  if (id == NULL) return -1;
  tooid(&o, id);
  if (git_odb_read_header(size, &type, r->odb, &o) < 0)
    return read_error(r, id, gitmsg());
  if (type != GIT_OBJECT_BLOB) return read_error(r, id, "not a blob");
  return 0;
}

const char *scan_git_reader_error (const scan_git_reader *r) {
  return r->error;
}

/* }====================================================== */

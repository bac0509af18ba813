/*
** httpc.c — `require "ato.httpc"`: HTTP transfers on libcurl's multi_socket
** interface, driven by the runtime's libuv loop. A loadable module
** (lib/ato/httpc.so): libcurl and its ~35 shared libraries load only when a
** script uses HTTP, so `ato -e ''` starts as fast as lua5.4 does.
**
** One transfer per call: httpc.request(opts) yields its task until the
** transfer ends. Redirects, connection reuse, HTTP/2, TLS and proxies are
** libcurl's; retries, rate limits and the response object are the Lua
** facade's (stdlib/ato/http.lua).
**
** The engine (one per runtime) follows curl's multi_socket protocol:
** - libcurl tells which sockets to watch (on_socket): one uv_poll per
**   socket, created on first interest, stopped and closed on REMOVE;
** - libcurl asks for one timer (on_curl_timer): a uv_timer; 0 means "soon,
**   not from inside this callback", -1 means stop;
** - readiness and timer expiry call curl_multi_socket_action, then every
**   finished transfer is collected (collect_done): removed from the multi
**   handle, its task woken. No curl callback runs Lua or calls curl.
**
** Ownership: a transfer is malloc'ed by request() and freed exactly once,
** by the resume function (results copied to Lua) or by the detach function
** (the task was cancelled or the runtime shuts down: the easy handle is
** removed from the multi handle at once). A socket context is freed in its
** poll handle's close callback. The engine is a userdata anchored by the
** module; at shutdown (ato_rt_at_close) it cleans up the multi handle and
** closes its handles before the loop's last run.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include "redact.h"
#include "task.h"

int luaopen_ato_httpc (lua_State *L);

#define ENGINE_META "ato.httpc.engine"
#define ENGINE_ANCHOR "ato.httpc.engine.instance"

/* Easy handles kept for reuse: curl_easy_init costs more than the rest of
   a keep-alive request; a reset handle keeps its buffers (and the DNS and
   TLS session caches it shares through the multi handle). */
#define EASY_POOL 256

/* Connections kept open for reuse across all hosts. */
#define MAX_IDLE_CONNECTIONS 512
#define USER_AGENT "ato/" ATO_VERSION

typedef struct transfer transfer;

typedef struct engine {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  int closing;
  struct sockctx *sockets;    /* watched sockets, for shutdown */
  transfer *transfers;        /* transfers in the multi handle */
  CURL *idle[EASY_POOL];      /* reset easy handles kept for reuse */
  int nidle;
} engine;

typedef struct sockctx {
  uv_poll_t poll;
  curl_socket_t fd;
  engine *e;
  struct sockctx *prev, *next;
} sockctx;

typedef struct buffer { char *data; size_t len, cap; } buffer;

struct transfer {
  engine *e;
  CURL *easy;
  ato_task *task;
  struct curl_slist *req_headers;
  char *url;                  /* our copy, for error messages */
  buffer body;
  buffer head;                /* header lines of the last response, '\n'-ended */
  size_t max_body;
  int too_large;
  int out_fd;                 /* the body file's temporary, or -1 */
  char *out_temp, *out_path;  /* renamed temp -> path when the transfer succeeds */
  int write_errno;
  int done;
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
  transfer *prev, *next;
};

/* {====================================================== buffers */

static int buf_append (buffer *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *data;
    while (cap < b->len + n + 1) cap *= 2;
    if ((data = realloc(b->data, cap)) == NULL) return -1;
    b->data = data;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static void buf_free (buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* }====================================================== */

/* {====================================================== curl callbacks */

/* Response body: to memory (bounded by max_body) or to the body file. The
   file write blocks the loop thread, but for page-cache writes of a
   network-sized chunk that is microseconds. */
static size_t on_body (char *p, size_t size, size_t n, void *ud) {
  transfer *tr = ud;
  size_t len = size * n;
  if (tr->out_fd >= 0) {
    size_t off = 0;
    while (off < len) {
      ssize_t w = write(tr->out_fd, p + off, len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) { tr->write_errno = errno; return 0; }
      off += (size_t)w;
    }
    return len;
  }
  if (tr->body.len + len > tr->max_body) {
    tr->too_large = 1;
    return 0;                         /* aborts with CURLE_WRITE_ERROR */
  }
  return buf_append(&tr->body, p, len) == 0 ? len : 0;
}

/* Header lines; a status line starts a new response (redirect, 100). */
static size_t on_header (char *p, size_t size, size_t n, void *ud) {
  transfer *tr = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) tr->head.len = 0;
  while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) len--;
  if (len == 0) return size * n;      /* the blank line ending the head */
  if (buf_append(&tr->head, p, len) != 0 || buf_append(&tr->head, "\n", 1) != 0)
    return 0;
  return size * n;
}

static void on_poll (uv_poll_t *h, int status, int events);

static void close_socket_ctx (sockctx *ctx);

/* CURLMOPT_SOCKETFUNCTION: watch s for what libcurl asks, or stop. */
static int on_socket (CURL *easy, curl_socket_t s, int what, void *userp,
                      void *socketp) {
  engine *e = userp;
  sockctx *ctx = socketp;
  int events = 0;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (ctx) {
      curl_multi_assign(e->multi, s, NULL);
      close_socket_ctx(ctx);
    }
    return 0;
  }
  if (ctx == NULL) {
    if (e->closing) return 0;         /* no new watchers while shutting down */
    if ((ctx = calloc(1, sizeof *ctx)) == NULL) return -1;
    if (uv_poll_init_socket(e->loop, &ctx->poll, s) != 0) {
      free(ctx);
      return -1;
    }
    ctx->fd = s;
    ctx->e = e;
    ctx->poll.data = ctx;
    ctx->next = e->sockets;
    if (e->sockets) e->sockets->prev = ctx;
    e->sockets = ctx;
    curl_multi_assign(e->multi, s, ctx);
  }
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  return uv_poll_start(&ctx->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_curl_timeout (uv_timer_t *h);

/* CURLMOPT_TIMERFUNCTION: one timer; -1 stops it, 0 fires on the next
   loop iteration (never call curl from inside this callback). */
static int on_curl_timer (CURLM *multi, long timeout_ms, void *userp) {
  engine *e = userp;
  (void)multi;
  if (timeout_ms < 0) uv_timer_stop(&e->timer);
  else uv_timer_start(&e->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

/* }====================================================== */

/* {====================================================== the engine */

static void unlink_transfer (transfer *tr) {
  engine *e = tr->e;
  if (tr->prev) tr->prev->next = tr->next;
  else if (e->transfers == tr) e->transfers = tr->next;
  if (tr->next) tr->next->prev = tr->prev;
  tr->prev = tr->next = NULL;
}

/* Takes every finished transfer out of the multi handle and wakes its task. */
static void collect_done (engine *e) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
    transfer *tr = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&tr);
    tr->result = msg->data.result;    /* msg dies with the removal: copy first */
    curl_multi_remove_handle(e->multi, tr->easy);
    unlink_transfer(tr);
    tr->done = 1;
    if (tr->task) ato_task_wake(tr->task, ATO_WAKE_OK);
  }
}

/*
** After a failed curl_multi_socket_action the multi handle is unusable
** until every transfer is removed: end them all (their tasks get an error)
** rather than leave tasks waiting forever.
*/
static void fail_all (engine *e, CURLMcode why) {
  while (e->transfers) {
    transfer *tr = e->transfers;
    curl_multi_remove_handle(e->multi, tr->easy);
    unlink_transfer(tr);
    tr->result = CURLE_FAILED_INIT;
    snprintf(tr->errbuf, sizeof tr->errbuf, "curl multi handle failed: %s",
             curl_multi_strerror(why));
    tr->done = 1;
    if (tr->task) ato_task_wake(tr->task, ATO_WAKE_OK);
  }
}

static void drive (engine *e, curl_socket_t fd, int flags) {
  int running;
  CURLMcode r = curl_multi_socket_action(e->multi, fd, flags, &running);
  collect_done(e);
  if (r != CURLM_OK) fail_all(e, r);
}

static void on_poll (uv_poll_t *h, int status, int events) {
  sockctx *ctx = h->data;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;   /* let curl find out what broke */
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  drive(ctx->e, ctx->fd, flags);
}

static void on_curl_timeout (uv_timer_t *h) {
  drive(h->data, CURL_SOCKET_TIMEOUT, 0);
}

static void free_socket_ctx (uv_handle_t *h) {
  free(h->data);
}

static void close_socket_ctx (sockctx *ctx) {
  engine *e = ctx->e;
  if (ctx->prev) ctx->prev->next = ctx->next;
  else e->sockets = ctx->next;
  if (ctx->next) ctx->next->prev = ctx->prev;
  uv_poll_stop(&ctx->poll);           /* stop now: the fd may be reused */
  uv_close((uv_handle_t *)&ctx->poll, free_socket_ctx);
}

/* An easy handle from the pool, or a new one. */
static CURL *take_easy (engine *e) {
  return e->nidle > 0 ? e->idle[--e->nidle] : curl_easy_init();
}

/* Back to the pool (reset to defaults), or cleaned up. */
static void give_easy (engine *e, CURL *easy) {
  if (e->nidle < EASY_POOL && !e->closing) {
    curl_easy_reset(easy);
    e->idle[e->nidle++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

/* A body file is written to a temporary next to it and renamed only when
   the transfer succeeded: a failed download never destroys the old file. */
static void finish_body_file (transfer *tr) {
  if (tr->out_fd >= 0) close(tr->out_fd);
  tr->out_fd = -1;
  if (tr->out_temp == NULL) return;
  if (tr->result == CURLE_OK && rename(tr->out_temp, tr->out_path) != 0) {
    tr->write_errno = errno;
    tr->result = CURLE_WRITE_ERROR;
  }
  if (tr->result != CURLE_OK) unlink(tr->out_temp);
  free(tr->out_temp);
  tr->out_temp = NULL;
}

static void free_transfer (transfer *tr) {
  if (tr->easy) give_easy(tr->e, tr->easy);
  if (tr->result == CURLE_OK && !tr->done) tr->result = CURLE_ABORTED_BY_CALLBACK;
  finish_body_file(tr);
  curl_slist_free_all(tr->req_headers);
  free(tr->url);
  free(tr->out_path);
  buf_free(&tr->body);
  buf_free(&tr->head);
  free(tr);
}

/* ato_detach_fn: the task stopped waiting (cancelled, or shutdown). The
   transfer leaves the multi handle at once: its connection is closed or
   returned to the pool by curl. */
static void detach_transfer (void *op) {
  transfer *tr = op;
  if (!tr->done) {
    curl_multi_remove_handle(tr->e->multi, tr->easy);
    unlink_transfer(tr);
  }
  free_transfer(tr);
}

/* At shutdown, after every waiting task's transfer was detached. */
static void engine_shutdown (void *data) {
  engine *e = data;
  e->closing = 1;
  while (e->transfers) {              /* none expected: detached already */
    transfer *tr = e->transfers;
    tr->task = NULL;
    detach_transfer(tr);
  }
  while (e->nidle > 0) curl_easy_cleanup(e->idle[--e->nidle]);
  curl_multi_cleanup(e->multi);       /* may REMOVE sockets through on_socket */
  e->multi = NULL;
  while (e->sockets) close_socket_ctx(e->sockets);
  uv_close((uv_handle_t *)&e->timer, NULL);
}

/* [-0, +0] The engine of this runtime (upvalue 1 of every function). */
static engine *get_engine (lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/*
** [-0, +1] The runtime's engine: created by the first require, reused by
** any later one (busted's insulation, package.loaded reset): the shutdown
** hook holds a pointer to it, so it must never be collected or doubled.
*/
static engine *push_engine (lua_State *L) {
  engine *e;
  if (lua_getfield(L, LUA_REGISTRYINDEX, ENGINE_ANCHOR) == LUA_TUSERDATA)
    return lua_touserdata(L, -1);
  lua_pop(L, 1);
  e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  luaL_setmetatable(L, ENGINE_META);
  e->loop = ato_loop(L);
  if ((e->multi = curl_multi_init()) == NULL) luaL_error(L, "curl_multi_init failed");
  if (ato_rt_at_close(L, engine_shutdown, e) != 0) {
    curl_multi_cleanup(e->multi);
    luaL_error(L, "ato.httpc: too many shutdown hooks");
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, ENGINE_ANCHOR);  /* never collected */
  uv_timer_init(e->loop, &e->timer);
  e->timer.data = e;
  curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
  curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
  curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* curl's default cache size follows the number of easy handles added at
     the moment; ours come and go per request, so idle connections were
     closed whenever few transfers happened to be running */
  curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)MAX_IDLE_CONNECTIONS);
  return e;
}

/* }====================================================== */

/* {====================================================== errors */

/* The kinds the facade documents: dns, connect, tls, timeout, too_large,
   protocol, invalid, io. */
static const char *error_kind (const transfer *tr) {
  if (tr->too_large) return "too_large";
  if (tr->write_errno) return "io";
  switch (tr->result) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
      return "dns";
    case CURLE_COULDNT_CONNECT:
      return "connect";
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_FILESIZE_EXCEEDED:
      return "too_large";
    case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL:
      return "invalid";
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE: case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND: case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED: case CURLE_USE_SSL_FAILED:
      return "tls";
    default:
      return "protocol";
  }
}

/* [-0, +2] nil, err; the message names the URL with credentials redacted. */
static int push_transfer_error (lua_State *L, transfer *tr) {
  const char *detail = tr->errbuf[0] ? tr->errbuf : curl_easy_strerror(tr->result);
  ato_redact_buf safe = ATO_REDACT_BUF_INIT;
  const char *shown = "(url withheld)";
  if (ato_redact_text(tr->url, strlen(tr->url), &safe) != ATO_REDACT_ENOMEM && safe.data)
    shown = safe.data;
  if (tr->too_large)
    ato_return_error(L, "too_large", "%s: response body over %I bytes", shown,
                     (lua_Integer)tr->max_body);
  else if (tr->write_errno)
    ato_return_error(L, "io", "%s: writing the body file: %s", shown,
                     strerror(tr->write_errno));
  else
    ato_return_error(L, error_kind(tr), "%s: %s", shown, detail);
  ato_redact_buf_free(&safe);
  lua_pushinteger(L, (lua_Integer)tr->result);
  lua_setfield(L, -2, "curl_code");
  return 2;
}

/* }====================================================== */

/* {====================================================== request */

/* Options the facade hands over, read from the table at index 1. */
typedef struct request_opts {
  const char *method, *url, *body, *body_file, *ca_file;
  size_t body_len;
  double timeout, connect_timeout;
  curl_off_t max_body;
  long max_redirects;
  int follow, verify;
} request_opts;

/* Strings only (a number converted here would not stay anchored). */
static const char *opt_string (lua_State *L, const char *key, size_t *len) {
  const char *s = NULL;
  int t = lua_getfield(L, 1, key);
  if (t == LUA_TSTRING) s = lua_tolstring(L, -1, len);
  else if (t != LUA_TNIL) luaL_error(L, "ato.httpc: option '%s' must be a string", key);
  lua_pop(L, 1);                      /* the string stays anchored in opts */
  return s;
}

/* A number >= 0; math.huge is accepted and means "no limit". */
static double opt_number (lua_State *L, const char *key, double dflt) {
  double v = dflt;
  int t = lua_getfield(L, 1, key);
  if (t == LUA_TNUMBER) v = lua_tonumber(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "ato.httpc: option '%s' must be a number", key);
  lua_pop(L, 1);
  if (!(v >= 0)) luaL_error(L, "ato.httpc: option '%s' must be >= 0", key);
  return v;
}

static int opt_bool (lua_State *L, const char *key, int dflt) {
  int v;
  lua_getfield(L, 1, key);
  v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Bytes as curl_off_t; infinite or huge means no limit. */
static curl_off_t to_size (double v) {
  return v >= 9.0e18 ? (curl_off_t)0 : (curl_off_t)v;
}

static void read_options (lua_State *L, request_opts *o) {
  luaL_checktype(L, 1, LUA_TTABLE);
  o->body_len = 0;                    /* also when there is no body */
  o->method = opt_string(L, "method", NULL);
  o->url = opt_string(L, "url", NULL);
  o->body = opt_string(L, "body", &o->body_len);
  o->body_file = opt_string(L, "body_file", NULL);
  o->ca_file = opt_string(L, "ca_file", NULL);
  o->timeout = opt_number(L, "timeout", 0);
  o->connect_timeout = opt_number(L, "connect_timeout", 0);
  o->max_body = to_size(opt_number(L, "max_body", 64.0 * 1024 * 1024));
  o->max_redirects = (long)opt_number(L, "max_redirects", 10);
  o->follow = opt_bool(L, "follow_redirects", 1);
  o->verify = opt_bool(L, "verify", 1);
  if (o->url == NULL) luaL_error(L, "ato.httpc: option 'url' is required");
  if (o->method == NULL) o->method = o->body ? "POST" : "GET";
}

/* Request headers: the list at opts.headers of "Name: value" strings. */
static struct curl_slist *read_headers (lua_State *L) {
  struct curl_slist *list = NULL, *grown;
  lua_Integer i, n;
  lua_getfield(L, 1, "headers");
  n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    grown = lua_type(L, -1) == LUA_TSTRING
              ? curl_slist_append(list, lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    if (grown == NULL) {
      curl_slist_free_all(list);
      lua_pop(L, 1);
      luaL_error(L, "ato.httpc: bad or unstorable header #%d", (int)i);
    }
    list = grown;
  }
  lua_pop(L, 1);
  /* no "Expect: 100-continue" round trip before large bodies */
  if ((grown = curl_slist_append(list, "Expect:")) == NULL) {
    curl_slist_free_all(list);
    luaL_error(L, "not enough memory");
  }
  return grown;
}

/* Seconds to curl's milliseconds: 0 or infinite is "none", a positive
   fraction of a millisecond is still a limit. */
static long ms (double seconds) {
  if (seconds <= 0 || seconds >= 2.0e6) return 0;
  return seconds * 1000.0 < 1.0 ? 1L : (long)(seconds * 1000.0 + 0.5);
}

/*
** The method and body. POST uses curl's own POST, which a 301/302/303
** turns into a GET as browsers do. Other methods are custom requests,
** which curl would re-send unchanged to a redirect target, so they do not
** follow redirects (the 3xx is returned). POST, PUT and PATCH always send a
** body, empty if none was given, so that Content-Length: 0 goes out.
*/
static void set_method (CURL *c, const request_opts *o, int *follow) {
  const char *m = o->method;
  int sends_body = o->body != NULL || strcmp(m, "POST") == 0 ||
                   strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
  if (sends_body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body ? o->body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
  }
  if (strcmp(m, "HEAD") == 0) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (strcmp(m, "POST") != 0 && (strcmp(m, "GET") != 0 || sends_body)) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
    *follow = 0;
  }
}

/* Configures tr->easy from the options; 0, or a CURLcode. */
static CURLcode configure (transfer *tr, const request_opts *o) {
  CURL *c = tr->easy;
  int follow = o->follow && o->verify;  /* never follow unverified TLS away */
  CURLcode r = curl_easy_setopt(c, CURLOPT_URL, o->url);
  if (r != CURLE_OK) return r;
  curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)tr);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  /* do not wait for a resolver thread when a transfer is cancelled */
  curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, tr->errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, tr);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, tr);
  curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");     /* what curl can decode */
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, tr->req_headers);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, o->max_redirects);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms(o->timeout));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms(o->connect_timeout));
  if (tr->out_fd < 0) curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, o->max_body);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (o->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
  if (!o->verify) {                   /* the facade allows it for loopback only */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  set_method(c, o, &follow);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, (long)follow);
  return CURLE_OK;
}

/* [-0, +1] The response table from a finished transfer. */
static void push_response (lua_State *L, transfer *tr) {
  long status = 0, version = 0, redirects = 0;
  char *url = NULL, *ip = NULL;
  double total = 0;
  curl_easy_getinfo(tr->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(tr->easy, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(tr->easy, CURLINFO_REDIRECT_COUNT, &redirects);
  curl_easy_getinfo(tr->easy, CURLINFO_EFFECTIVE_URL, &url);
  curl_easy_getinfo(tr->easy, CURLINFO_PRIMARY_IP, &ip);
  curl_easy_getinfo(tr->easy, CURLINFO_TOTAL_TIME, &total);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, tr->head.data ? tr->head.data : "", tr->head.len);
  lua_setfield(L, -2, "head");
  lua_pushlstring(L, tr->body.data ? tr->body.data : "", tr->body.len);
  lua_setfield(L, -2, "body");
  lua_pushstring(L, url ? url : "");
  lua_setfield(L, -2, "url");
  lua_pushstring(L, ip ? ip : "");
  lua_setfield(L, -2, "ip");
  lua_pushnumber(L, total);
  lua_setfield(L, -2, "elapsed");
  lua_pushinteger(L, redirects);
  lua_setfield(L, -2, "redirects");
  lua_pushstring(L, version == CURL_HTTP_VERSION_2_0 ? "2"
                    : version == CURL_HTTP_VERSION_1_0 ? "1.0" : "1.1");
  lua_setfield(L, -2, "http_version");
}

/* Runs under lua_pcall: a memory error building the results must not skip
   freeing the transfer. */
static int push_outcome (lua_State *L) {
  transfer *tr = lua_touserdata(L, 1);
  if (tr->result != CURLE_OK) return push_transfer_error(L, tr);
  push_response(L, tr);
  return 1;
}

/* [-0, +n] The outcome, then the transfer is freed whatever happens. */
static int finish (lua_State *L, transfer *tr) {
  int top = lua_gettop(L), status;
  finish_body_file(tr);               /* a failed rename is the outcome too */
  lua_pushcfunction(L, push_outcome);
  lua_pushlightuserdata(L, tr);
  status = lua_pcall(L, 1, LUA_MULTRET, 0);
  free_transfer(tr);
  if (status != LUA_OK) return lua_error(L);
  return lua_gettop(L) - top;
}

/* ato_resume_fn: the transfer ended (no deadline: curl times out itself,
   so op is always the transfer). */
static int resume_transfer (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  (void)t;
  (void)wake;
  return finish(L, op);
}

static transfer *new_transfer (engine *e, const request_opts *o) {
  transfer *tr = calloc(1, sizeof *tr);
  if (tr == NULL) return NULL;
  tr->e = e;
  tr->out_fd = -1;
  tr->max_body = o->max_body > 0 ? (size_t)o->max_body : SIZE_MAX;
  if ((tr->easy = take_easy(e)) == NULL || (tr->url = strdup(o->url)) == NULL) {
    free_transfer(tr);
    return NULL;
  }
  return tr;
}

/* The body goes to "<dir>/.<name>.XXXXXX" (mode 0600: a response may hold
   secrets), renamed over path on success; 0 or errno. */
static int open_body_file (transfer *tr, const char *path) {
  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
  size_t n = strlen(path) + 16;
  if ((tr->out_temp = malloc(n)) == NULL || (tr->out_path = strdup(path)) == NULL)
    return ENOMEM;
  snprintf(tr->out_temp, n, "%.*s.%s.XXXXXX", (int)dirlen, path, path + dirlen);
  if ((tr->out_fd = mkstemp(tr->out_temp)) < 0) {
    int err = errno;
    free(tr->out_temp);
    tr->out_temp = NULL;
    return err;
  }
  fcntl(tr->out_fd, F_SETFD, FD_CLOEXEC);  /* not inherited by ato.exec's children */
  return 0;
}

/*
** httpc.request(opts) -> response table, or nil, err
** opts: method, url, headers (list of "Name: value"), body, timeout,
** connect_timeout, follow_redirects, max_redirects, max_body, body_file,
** ca_file, verify. The facade validates and fills them. The body string is
** not copied: it stays on this frame's stack (slot 2) during the wait.
*/
static int l_request (lua_State *L) {
  engine *e = get_engine(L);
  request_opts o;
  struct curl_slist *headers;
  transfer *tr;
  ato_task *t;
  int err;
  CURLcode r;
  read_options(L, &o);
  t = ato_task_enter(L, "http.request");
  lua_settop(L, 1);
  lua_getfield(L, 1, "body");         /* slot 2: anchors the body we send */
  headers = read_headers(L);          /* may raise: before any allocation */
  if ((tr = new_transfer(e, &o)) == NULL) {
    curl_slist_free_all(headers);
    return luaL_error(L, "not enough memory");
  }
  tr->req_headers = headers;
  if (o.body_file && (err = open_body_file(tr, o.body_file)) != 0) {
    free_transfer(tr);
    return ato_return_uverror(L, -err, "open", o.body_file);
  }
  if ((r = configure(tr, &o)) != CURLE_OK ||
      curl_multi_add_handle(e->multi, tr->easy) != CURLM_OK) {
    tr->result = r != CURLE_OK ? r : CURLE_FAILED_INIT;
    tr->done = 1;
    return finish(L, tr);
  }
  tr->task = t;
  tr->next = e->transfers;
  if (e->transfers) e->transfers->prev = tr;
  e->transfers = tr;
  return ato_task_wait(L, t, tr, detach_transfer, resume_transfer, -1);
}

/* }====================================================== */

/* httpc.version() -> {libcurl=, ssl=, libz=, nghttp2=, protocols={...}} */
static int l_version (lua_State *L) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  const char *const *p;
  int i = 0;
  lua_createtable(L, 0, 5);
  lua_pushstring(L, v->version);
  lua_setfield(L, -2, "libcurl");
  lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
  lua_setfield(L, -2, "ssl");
  lua_pushstring(L, v->libz_version ? v->libz_version : "");
  lua_setfield(L, -2, "libz");
  lua_pushstring(L, v->nghttp2_version ? v->nghttp2_version : "");
  lua_setfield(L, -2, "nghttp2");
  lua_newtable(L);
  for (p = v->protocols; p && *p; p++) {
    lua_pushstring(L, *p);
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "protocols");
  return 1;
}

/* httpc.stats() -> {transfers=, sockets=} (tests check nothing is left) */
static int l_stats (lua_State *L) {
  engine *e = get_engine(L);
  lua_Integer transfers = 0, sockets = 0;
  transfer *tr;
  sockctx *s;
  for (tr = e->transfers; tr; tr = tr->next) transfers++;
  for (s = e->sockets; s; s = s->next) sockets++;
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, transfers);
  lua_setfield(L, -2, "transfers");
  lua_pushinteger(L, sockets);
  lua_setfield(L, -2, "sockets");
  return 1;
}

static const luaL_Reg httpc_funcs[] = {
  {"request", l_request},
  {"version", l_version},
  {"stats", l_stats},
  {NULL, NULL}
};

int luaopen_ato_httpc (lua_State *L) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return luaL_error(L, "curl_global_init failed");
  luaL_newmetatable(L, ENGINE_META);
  lua_pop(L, 1);
  lua_newtable(L);                    /* module */
  push_engine(L);                     /* module engine */
  luaL_setfuncs(L, httpc_funcs, 1);   /* each function gets the engine */
  return 1;
}

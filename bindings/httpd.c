/*
** httpd.c — `require "ato.httpd"`: the native half of ato's HTTP/1.1
** server (stdlib/ato/http/server.lua is the Lua facade most code uses).
**
**   local srv, err = httpd.listen{port = 8080, dispatch = function(req)
**     req:respond(200, {["Content-Type"] = "text/plain"}, "hello\n")
**   end}
**   srv:address()        --> "127.0.0.1", 8080
**   srv:close([timeout]) --> true, drained
**
** listen options: host (an IPv4 or IPv6 literal, "127.0.0.1" by default:
** never every interface unless the caller names "0.0.0.0" or "::"), port
** (0 picks a free one), dispatch (required), max_header (request line,
** headers and trailers, 8 KiB), max_body (1 MiB), idle_timeout (a
** connection with no request started, 60 s), read_timeout (a request
** started but not complete, 30 s), write_timeout (a response the client
** does not read, 30 s), max_connections (1024), backlog (511). Sizes in
** bytes, timeouts in seconds. A failed bind or listen is nil, err; bad
** options raise.
**
** Every complete request becomes a task that calls dispatch(req). The
** request is a plain table (fields cost nothing to read, handlers may add
** their own, and pairs() shows everything) whose shared metatable gives
** the methods; the native part, a small "exchange" userdata, sits in it
** under a light-userdata key that Lua code cannot spell by accident:
**
**   req.method, req.target (raw request-target), req.path (raw, before
**   '?'), req.query (raw, after '?', or nil), req.headers ({{name, value},
**   ...} as received), req.trailers (the same for the trailer fields of a
**   chunked body; nil when there were none: never merged into headers),
**   req.body (a string, "" when none), req.http_version ("1.0"/"1.1"),
**   req.keep_alive, req.remote (peer IP), req.remote_port
**   req:header(name) -> first value (case-insensitive), req:header_all(name)
**   req:respond(status, headers, body) -> true, or nil, err: kind "closed"
**     (the connection is gone) or "timeout" (the client read nothing of
**     the response for write_timeout)
**   req:responded() -> whether respond was called
**
** Response headers are nil, a list of {name, value} pairs, or a map
** name -> value or list of values: a table with a [1] is a list, any
** other table a map, and a list with other keys too raises.
**
** The dispatch function runs in its task behind a small C frame whose
** to-be-closed exchange answers 500 when the task ends with the request
** unanswered, however it ends (returned, raised, cancelled): a request is
** answered at the latest when its task ends. So a dispatch function that
** hands req to another task and returns has its request answered 500 at
** once (the other task's respond gets "closed"): it must wait itself. The
** exchange's __gc does the same as a last resort (a task cancelled before
** it ever ran).
**
** Protocol. A connection answers its requests strictly one at a time:
** when a request is complete the parser is paused (http_parser_pause) and
** reading stops (uv_read_stop) until the response has been written; then
** the parser resumes on the bytes already buffered (pipelined requests are
** answered in order) and reading starts again. Limits get a real status,
** then the connection is closed: 431 (request line + headers over
** max_header; http_parser counts them, with its process-wide limit set to
** this server's before each parse; trailers share that budget, counted as
** name + value + 4 bytes each), 414 (the same limit reached within the
** request-target), 413 (a Content-Length over max_body, answered before
** any body is read, or a chunked body growing past it), 408 (read_timeout
** passed), 417 (an Expect other than 100-continue), 505 (HTTP/2 and up),
** 400 (anything the parser rejects, and what its lenient build lets
** through but a proxy in front could read differently: a header name with
** a space or tab in it, such as "Transfer-Encoding : chunked"; obs-fold
** continuation lines; an HTTP/1.1 request without exactly one Host, or any
** with more than one; an HTTP/0.9 request line; Content-Length together
** with Transfer-Encoding, or twice). Over max_connections a connection is
** accepted and closed at once, with no response: answering would need
** buffers for exactly the connections we have no room for. "Expect:
** 100-continue" gets "HTTP/1.1 100 Continue" before the body is read (or
** the 413 instead). The body buffer grows as the body arrives (64 KiB are
** reserved up front at most, whatever the Content-Length says). An idle
** connection (no byte of a request yet) whose idle_timeout passes is
** closed without a response. A response, or an error the server writes,
** is checked every write_timeout: a check that finds no progress since the
** previous one (the kernel took none of it: the client does not read)
** aborts the connection, so a client reading nothing is dropped after one
** to two write_timeouts, and a slow one that reads keeps going. A closing
** connection is shut down for writing, then drained until the peer's EOF
** (at most LINGER_MS): closing with unread input would send an RST that
** can destroy the response before the client reads it.
**
** Ownership. The server is its userdata (the listener handle is embedded
** in it), anchored in the registry (self_ref) from listen until it is
** done: closing, the listener's close callback has run and every
** connection is freed. So libuv never holds a handle inside collected
** memory, and a server nobody refers to keeps serving until it is closed
** (as a running task does). The dispatch function is its user value.
**
** A connection (conn, malloc'ed) holds a TCP handle and a timer (idle,
** read, write and linger timeouts); `nhandles` counts those whose close
** callback has not run, and the callback that brings it to zero frees the
** conn; nothing else frees it. conn_abort() is the one way to close it.
** The request's exchange and the conn point at each other (ex->conn,
** c->ex) while the request is unanswered or its response is being
** written; whichever side goes first clears the other's pointer: the conn
** when it closes (a later respond returns nil, "closed"), the exchange when
** its task ends (or it is collected) unanswered: the connection then
** answers 500 itself. respond() builds the head in the conn's own buffer
** and waits with the exchange as its op: the write callback records the
** status there and wakes the task; a cancelled respond (detach) aborts the
** connection, since libuv must stop reading the body string, which only
** the task's stack anchors, and a half-written response cannot be
** continued anyway.
**
** Callbacks never run user Lua and never resume a task: they call
** ato_task_wake, or dispatch(), which spawns the request's task inside
** lua_pcall on the runtime's main thread (ato_task_spawn only queues the
** task: no user code runs before the scheduler gets to it, bar the
** finalizers a GC step may run there as after any allocation; the pcall
** keeps a memory error from unwinding through libuv).
**
** Shutdown. close() closes the listener at once (new connections are
** refused), closes idle connections, and lets the others finish: a request
** being received is still served, and every response written from then on
** says "Connection: close". close() then waits for the last connection (a
** wait queue of tasks, woken from the conn's free), or until its timeout,
** when the rest are aborted; without a timeout it waits write_timeout at
** most, so that neither a stuck client nor a stuck handler holds it
** forever (close(math.huge) waits without limit). It returns true and
** whether every connection finished by itself (false: some were aborted).
** (So a handler that closes its own server waits for its own request too:
** it should respond first, or close from another task.) __close and __gc
** start the same close without waiting. At process exit the runtime's
** at-close hook aborts every connection and listener of every server still
** open, and their close callbacks run in the runtime's last loop run.
**
** A server's handles are unref'ed: a server does not keep ato running by
** itself (the process lives while tasks live, so SIGINT, which cancels
** them, ends a serving script); a script serves by keeping a task waiting.
** While a task waits in close(), the connections' handles are ref'ed, so
** that the wait is not mistaken for a deadlock (unref'ed again when the
** last waiter stops waiting).
*/
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <http_parser.h>
#include <lauxlib.h>

#include "host.h"
#include "task.h"

#define SERVER_META "ato.httpd.server"
#define EXCHANGE_META "ato.httpd.exchange"
#define REQUEST_META "ato.httpd.request"
#define STATE_KEY "ato.httpd.state"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_MAX_HEADER 8192
#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_IDLE 60.0
#define DEFAULT_READ 30.0
#define DEFAULT_WRITE 30.0
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_BACKLOG 511
#define MAX_HEADER_LIMIT 0x7fffffff   /* http_parser counts in a uint32_t */
#define LINGER_MS 2000                 /* drain a closing connection this long */
#define READ_BUF_SIZE 65536
#define BODY_RESERVE 65536             /* reserved up front for a body, at most */
#define MAX_SECONDS 1e9

/* the key of a request table's exchange: its address is unique */
static const char handle_key = 0;

typedef struct server server;
typedef struct conn conn;

/* Per Lua state: the servers not yet done (for the at-close hook), the
   shared metatables (registry refs: no lookup by name per request) and the
   buffer every connection reads into (its bytes are parsed at once). */
typedef struct httpd_state {
  server *servers;
  int hooked;                 /* the at-close hook is registered */
  int req_mt, ex_mt;          /* registry refs of the two metatables */
  char rbuf[READ_BUF_SIZE];
} httpd_state;

typedef enum {
  PH_IDLE,                    /* no byte of a request yet: idle timer */
  PH_READING,                 /* a request started: read timer */
  PH_DISPATCHED,              /* complete; its task runs; not reading; no timer */
  PH_WRITING,                 /* its response is being written: write timer */
  PH_CLOSING,                 /* a server-generated error is being written:
                                 write timer */
  PH_LINGER                   /* shut down for writing: draining to EOF */
} conn_phase;

/* A growable byte buffer (malloc'ed) */
typedef struct hbuf { char *p; size_t n, cap; } hbuf;

/* A header as offsets into conn.arena */
typedef struct hfield { size_t name, nlen, value, vlen; } hfield;

/* The native side of one request (userdata EXCHANGE_META). */
typedef struct exchange {
  conn *conn;                 /* NULL once answered or the conn is gone */
  ato_task *task;             /* waiting in respond for the write */
  int wstatus;                /* the write's status, for respond_resume:
                                 UV_ETIMEDOUT for write_timeout */
  unsigned char responded;
} exchange;

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;            /* the response, or a server-generated one */
  uv_write_t creq;            /* "100 Continue" */
  uv_shutdown_t sreq;
  http_parser parser;
  server *srv;
  conn *prev, *next;          /* srv->conns */
  exchange *ex;               /* the dispatched request, or NULL */
  int nhandles;               /* initialised, close callback not run yet */
  int reject;                 /* status for a callback's refusal, or 0 */
  conn_phase phase;
  unsigned char closing;      /* conn_abort ran */
  unsigned char reading;
  unsigned char complete;     /* the request being parsed is complete */
  unsigned char keep_alive;   /* http_should_keep_alive of the request */
  unsigned char head;         /* it is a HEAD request: no body is sent */
  unsigned char upgrade;      /* Upgrade/CONNECT: close after answering */
  unsigned char close_after;  /* close once the response is written */
  unsigned char continuing;   /* a "100 Continue" write is pending */
  unsigned char last_value;   /* the last header callback was a value */
  unsigned char url_done;     /* the request-target was read to its end */
  unsigned char headers_done; /* later fields are trailers */
  unsigned char in_head;      /* parsing a header or trailer section */
  unsigned char lf;           /* the last byte scanned there was an LF */
  /* the request being received */
  char *arena;                /* its target, then header names and values */
  size_t alen, acap, url_len;
  hfield *fields;             /* its headers, then its trailers */
  size_t nfields, fcap, hcount;  /* hcount: the headers among the fields */
  char *body;
  size_t blen, bcap, clen;    /* clen: its Content-Length, 0 if chunked */
  /* the bytes being parsed (conn_feed), and how far the head was scanned
     for obs-fold */
  const char *feed_end, *scan;
  size_t wqueue;              /* libuv's write queue at the last check */
  hbuf rhead;                 /* the response's status line and headers */
  /* bytes received after a complete request (pipelining) */
  char *pending;
  size_t plen, poff;
  int remote_port;
  char remote[INET6_ADDRSTRLEN];
  char ebuf[400];             /* a server-generated response */
};

struct server {
  uv_tcp_t tcp;               /* the listener */
  uv_tcp_t spare;             /* to refuse a connection without memory */
  httpd_state *state;
  lua_State *L;               /* the runtime's main thread */
  server *prev, *next;        /* state->servers, until done */
  conn *conns;
  size_t nconns;
  ato_waitq closers;          /* tasks waiting in close() */
  int self_ref;               /* anchors the userdata until done */
  int nwaiting;               /* tasks in close(): conns are ref'ed */
  size_t max_header, max_body, max_conns;
  uint64_t idle_ms, read_ms, write_ms;
  int port;
  char host[INET6_ADDRSTRLEN];
  unsigned char tcp_open;     /* listener initialised, close cb not run */
  unsigned char spare_busy;   /* spare initialised, close cb not run */
  unsigned char stalled;      /* a connection waits to be accepted */
  unsigned char closing;
  unsigned char forced;       /* connections were aborted by the close */
  unsigned char done;
};

/* {====================================================== text */

/* The standard reason phrase, or one for the status class (statuses are
   200 to 599 here: respond checks them, and ours are all standard). */
static const char *status_reason (int status) {
  const char *r = http_status_str((enum http_status)status);
  if (r != NULL && r[0] != '<') return r;     /* "<unknown>" otherwise */
  switch (status / 100) {
    case 2: return "Success";
    case 3: return "Redirection";
    case 4: return "Client Error";
    default: return "Server Error";
  }
}

/* The IMF-fixdate of now, recomputed once a second. Our own names: strftime
   would follow os.setlocale. */
static const char *http_date (void) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu",
                                     "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May",
                                       "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"};
  static char buf[64];
  static time_t last = (time_t)-1;
  time_t now = time(NULL);
  struct tm tm;
  if (now != last && gmtime_r(&now, &tm) != NULL) {
    snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    last = now;
  }
  return buf;
}

static int lower (int ch) {
  return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* ASCII case-insensitive equality of a[0..n) and the C string b */
static int name_is (const char *a, size_t n, const char *b) {
  size_t i;
  for (i = 0; i < n; i++)
    if (b[i] == '\0' || lower((unsigned char)a[i]) != b[i]) return 0;
  return b[n] == '\0';
}

/* Does s[0..n) hold `word` (lower case) as a comma-separated token? */
static int has_token (const char *s, size_t n, const char *word) {
  size_t i = 0, wl = strlen(word);
  while (i < n) {
    size_t j;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
    j = i;
    while (j < n && s[j] != ',') j++;
    {
      size_t k = j;
      while (k > i && (s[k - 1] == ' ' || s[k - 1] == '\t')) k--;
      if (k - i == wl && name_is(s + i, wl, word)) return 1;
    }
    i = j;
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== life of a server */

static void on_listener_closed (uv_handle_t *h);

/* Done: nothing of the server is left in libuv; the GC may have it. */
static void server_check_done (server *s) {
  int ref;
  if (s->done || !s->closing || s->tcp_open || s->spare_busy || s->nconns)
    return;
  s->done = 1;
  if (s->prev) s->prev->next = s->next;
  else s->state->servers = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  ref = s->self_ref;
  s->self_ref = LUA_NOREF;
  /* no allocation: t[ref] and the free list's slot exist */
  luaL_unref(s->L, LUA_REGISTRYINDEX, ref);
}

/* }====================================================== */

/* {====================================================== life of a conn */

static void conn_feed (conn *c, const char *data, size_t len, int pending);
static void on_timer (uv_timer_t *h);

static void conn_free (conn *c) {
  server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  free(c->arena);
  free(c->fields);
  free(c->body);
  free(c->pending);
  free(c->rhead.p);
  free(c);
  if (s->closing && s->nconns == 0)
    ato_waitq_wake_all(&s->closers, ATO_WAKE_OK);
  server_check_done(s);
}

static void on_conn_closed (uv_handle_t *h) {
  conn *c = h->data;
  if (--c->nhandles == 0) conn_free(c);
}

/*
** The exchange and the conn part: a task waiting in respond learns that
** its response will not be written (status `why`).
*/
static void unlink_exchange (conn *c, int why) {
  exchange *ex = c->ex;
  if (ex == NULL) return;
  c->ex = NULL;
  ex->conn = NULL;
  ex->wstatus = why;
  if (ex->task != NULL) {
    ato_task *t = ex->task;
    ex->task = NULL;
    ato_task_wake(t, ATO_WAKE_OK);
  }
}

/* Closes the connection now. Pending writes get UV_ECANCELED first. */
static void conn_abort (conn *c) {
  if (c->closing) return;
  c->closing = 1;
  unlink_exchange(c, UV_ECANCELED);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/*
** A write was started (a response, or an error of ours): the timer watches
** that it makes progress. libuv has already written what the socket took.
*/
static void arm_write_timer (conn *c) {
  c->wqueue = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
  uv_timer_start(&c->timer, on_timer, c->srv->write_ms, 0);
}

static void on_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  /* shared: libuv calls on_read right after, and on_read is done with it */
  buf->base = c->srv->state->rbuf;
  buf->len = sizeof c->srv->state->rbuf;
}

static void on_read (uv_stream_t *h, ssize_t n, const uv_buf_t *buf);

static int conn_read (conn *c, int on) {
  int r = 0;
  if (on && !c->reading)
    r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  else if (!on && c->reading)
    r = uv_read_stop((uv_stream_t *)&c->tcp);
  if (r == 0) c->reading = (unsigned char)on;
  return r;
}

static void on_shutdown (uv_shutdown_t *req, int status) {
  conn *c = req->data;
  if (!c->closing && status < 0) conn_abort(c);
}

/* The last response is written: FIN, then drain until the peer's EOF. */
static void conn_finish (conn *c) {
  c->phase = PH_LINGER;
  uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
      conn_read(c, 1) != 0)
    conn_abort(c);
}

static void on_error_written (uv_write_t *w, int status) {
  conn *c = w->data;
  if (c->closing) return;
  if (status < 0) conn_abort(c);
  else conn_finish(c);
}

/*
** A response the server writes itself (an error, a timeout, an unanswered
** request), then the connection closes. Not while a response is being
** written or the connection is already closing.
*/
static void reply_error (conn *c, int status) {
  const char *reason = status_reason(status);
  char body[96];
  int blen, n;
  uv_buf_t b;
  if (c->closing || c->phase == PH_WRITING || c->phase >= PH_CLOSING) return;
  conn_read(c, 0);
  uv_timer_stop(&c->timer);
  c->phase = PH_CLOSING;
  blen = snprintf(body, sizeof body, "%d %s\n", status, reason);
  n = snprintf(c->ebuf, sizeof c->ebuf, "HTTP/1.1 %d %s\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Length: %d\r\nConnection: close\r\nDate: %s\r\n"
               "Server: ato/" ATO_VERSION "\r\n\r\n%s",
               status, reason, blen, http_date(), body);
  if (n < 0 || (size_t)n >= sizeof c->ebuf) {  /* cannot happen: short */
    conn_abort(c);
    return;
  }
  b = uv_buf_init(c->ebuf, (unsigned int)n);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_error_written))
    conn_abort(c);
  else
    arm_write_timer(c);
}

static void on_timer (uv_timer_t *h) {
  conn *c = h->data;
  size_t q;
  if (c->closing) return;
  switch (c->phase) {
    case PH_IDLE:             /* nothing to answer: close quietly */
    case PH_LINGER:
      conn_abort(c);
      break;
    case PH_READING:
      reply_error(c, 408);
      break;
    case PH_WRITING:
    case PH_CLOSING:
      q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
      if (q < c->wqueue) {    /* the client reads: give it more time */
        c->wqueue = q;
        uv_timer_start(&c->timer, on_timer, c->srv->write_ms, 0);
        break;
      }
      unlink_exchange(c, UV_ETIMEDOUT);   /* respond tells why */
      conn_abort(c);
      break;
    case PH_DISPATCHED:       /* no timer runs then */
      break;
  }
}

/* }====================================================== */

/* {====================================================== dispatching */

/* [-0, +1, m] The fields from..to of c as a list of {name, value} pairs */
static void push_fields (lua_State *L, const conn *c, size_t from,
                         size_t to) {
  size_t i;
  lua_createtable(L, (int)(to - from), 0);
  for (i = from; i < to; i++) {
    const hfield *f = &c->fields[i];
    size_t vlen = f->vlen;
    while (vlen > 0 && (c->arena[f->value + vlen - 1] == ' ' ||
                        c->arena[f->value + vlen - 1] == '\t'))
      vlen--;                 /* trailing whitespace is not part of it */
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, c->arena + f->name, f->nlen);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, vlen ? c->arena + f->value : "", vlen);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)(i - from) + 1);
  }
}

/*
** [-0, +2, m] The request table and its exchange (also in the table),
** not yet linked to c.
*/
static exchange *push_request (lua_State *L, conn *c) {
  const http_parser *p = &c->parser;
  const httpd_state *st = c->srv->state;
  const char *url = c->arena ? c->arena : "";
  const char *q = c->url_len ? memchr(url, '?', c->url_len) : NULL;
  exchange *ex;
  luaL_checkstack(L, 8, NULL);
  lua_createtable(L, 0, 13);
  lua_pushstring(L, http_method_str((enum http_method)p->method));
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, url, c->url_len);
  lua_setfield(L, -2, "target");
  lua_pushlstring(L, url, q ? (size_t)(q - url) : c->url_len);
  lua_setfield(L, -2, "path");
  if (q != NULL) {
    lua_pushlstring(L, q + 1, c->url_len - (size_t)(q - url) - 1);
    lua_setfield(L, -2, "query");
  }
  push_fields(L, c, 0, c->hcount);
  lua_setfield(L, -2, "headers");
  if (c->nfields > c->hcount) {
    push_fields(L, c, c->hcount, c->nfields);
    lua_setfield(L, -2, "trailers");
  }
  lua_pushlstring(L, c->blen ? c->body : "", c->blen);
  lua_setfield(L, -2, "body");
  if (p->http_minor == 1) lua_pushliteral(L, "1.1");  /* major is 1 here */
  else if (p->http_minor == 0) lua_pushliteral(L, "1.0");
  else lua_pushfstring(L, "1.%d", (int)p->http_minor);
  lua_setfield(L, -2, "http_version");
  lua_pushboolean(L, c->keep_alive);
  lua_setfield(L, -2, "keep_alive");
  lua_pushstring(L, c->remote);
  lua_setfield(L, -2, "remote");
  lua_pushinteger(L, c->remote_port);
  lua_setfield(L, -2, "remote_port");
  ex = lua_newuserdatauv(L, sizeof *ex, 0);
  memset(ex, 0, sizeof *ex);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->ex_mt);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, -3, &handle_key);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->req_mt);
  lua_setmetatable(L, -3);
  return ex;
}

/*
** The body of a request's task: dispatch(req), with the exchange as a
** to-be-closed variable, whose __close (ex_close) answers 500 if the
** request is still unanswered when the task ends, however it ends: by
** returning, by an error or by a cancellation (the runtime resets a failed
** coroutine, which closes it too).
*/
static int serve_k (lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;                   /* closes the exchange */
}

static int serve_request (lua_State *L) {   /* dispatch req ex */
  lua_settop(L, 3);
  lua_toclose(L, 3);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_callk(L, 1, 0, 0, serve_k);
  return serve_k(L, LUA_OK, 0);
}

/*
** [-0, +0, m] Runs protected on the main thread: dispatch(req) as a new
** task. Spawning only queues the task; no user code runs here.
*/
static int dispatch_aux (lua_State *L) {
  conn *c = lua_touserdata(L, 1);
  exchange *ex;
  lua_pushcfunction(L, serve_request);                 /* c serve */
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->self_ref);
  lua_getiuservalue(L, -1, 1);
  lua_remove(L, -2);                                   /* c serve dispatch */
  ex = push_request(L, c);                         /* c serve dispatch req ex */
  ex->conn = c;
  c->ex = ex;
  ato_task_spawn(L, 3);                                /* c task */
  return 0;
}

/* A complete request: stop reading and hand it to a task. */
static void dispatch (conn *c) {
  lua_State *L = c->srv->L;
  c->phase = PH_DISPATCHED;
  c->head = c->parser.method == HTTP_HEAD;
  c->upgrade = c->parser.upgrade;
  conn_read(c, 0);
  uv_timer_stop(&c->timer);
  lua_pushcfunction(L, dispatch_aux);
  lua_pushlightuserdata(L, c);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {   /* out of memory */
    ato_report("httpd: cannot start the task of a request: %s",
               lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
    if (c->ex != NULL) {  /* its orphaned exchange must not answer too */
      c->ex->conn = NULL;
      c->ex = NULL;
    }
    reply_error(c, 500);
  }
  if (c->bcap > 64 * 1024) {  /* the body is in Lua now; keep small ones */
    free(c->body);
    c->body = NULL;
    c->bcap = 0;
  }
}

/* }====================================================== */

/* {====================================================== parsing */

/* Appends to the arena; -1 without memory. The parser's header limit
   bounds it. */
static int arena_add (conn *c, const char *at, size_t len) {
  if (len > c->acap - c->alen) {
    size_t cap = c->acap ? c->acap : 1024;
    char *p;
    while (cap - c->alen < len) cap *= 2;
    if ((p = realloc(c->arena, cap)) == NULL) return -1;
    c->arena = p;
    c->acap = cap;
  }
  memcpy(c->arena + c->alen, at, len);
  c->alen += len;
  return 0;
}

static int refuse (conn *c, int status) {
  if (c->reject == 0) c->reject = status;
  return -1;                  /* any non-zero stops the parser */
}

/*
** obs-fold. http_parser (built lenient) joins a header line that starts
** with a space or a tab to the previous value; a proxy in front of us may
** not. We refuse it: the bytes of every header and trailer section are
** scanned once, up to the end of each callback's data and, at the end of
** a feed, to the end of what was parsed, for an LF followed by SP or HTAB.
** (Field names and values hold no LF, so the LFs seen are line ends.) Only
** a continuation of blanks alone can follow the last value unseen, which
** changes nothing.
*/
static int scan_head (conn *c, const char *end) {
  const char *p = c->scan;
  int lf = c->lf;
  for (; p < end; p++) {
    if (lf && (*p == ' ' || *p == '\t')) return -1;
    lf = *p == '\n';
  }
  c->lf = (unsigned char)lf;
  if (end > c->scan) c->scan = end;
  return 0;
}

static int on_message_begin (http_parser *p) {
  conn *c = p->data;
  c->alen = c->url_len = c->nfields = c->hcount = c->blen = c->clen = 0;
  c->last_value = 0;
  c->complete = 0;
  c->reject = 0;
  c->url_done = c->headers_done = 0;
  c->in_head = 1;
  c->lf = 0;
  c->phase = PH_READING;
  uv_timer_start(&c->timer, on_timer, c->srv->read_ms, 0);
  return 0;
}

static int on_url (http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  /* The parser ends the target at a byte after it: a call ending at the
     end of the data is only a part of it. */
  if (at + len < c->feed_end) {
    c->url_done = 1;
    /* "GET /" CRLF: HTTP/0.9, the only way the parser sets 0.9 */
    if (p->http_major == 0 && p->http_minor == 9) return refuse(c, 400);
  }
  if (arena_add(c, at, len) != 0) return refuse(c, 500);
  c->url_len += len;
  return 0;
}

/* Trailers share max_header with the head: the parser gives them a fresh
   count of their own, so we count them as name + value + 4 bytes each. */
static int trailers_fit (const conn *c) {
  return c->alen + 4 * c->nfields <= c->srv->max_header;
}

static int on_header_field (http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  size_t i;
  if (c->headers_done && !c->in_head) {   /* the trailer section starts */
    c->in_head = 1;
    c->scan = at;
    c->lf = 0;
  }
  if (scan_head(c, at + len) != 0) return refuse(c, 400);
  for (i = 0; i < len; i++)   /* "Content-Length : 5" is not Content-Length */
    if (at[i] == ' ' || at[i] == '\t') return refuse(c, 400);
  if (c->nfields == 0 || c->last_value) {  /* a new header */
    hfield *f;
    if (c->nfields == c->fcap) {
      size_t cap = c->fcap ? c->fcap * 2 : 16;
      hfield *nf = realloc(c->fields, cap * sizeof *nf);
      if (nf == NULL) return refuse(c, 500);
      c->fields = nf;
      c->fcap = cap;
    }
    f = &c->fields[c->nfields++];
    f->name = f->value = c->alen;
    f->nlen = f->vlen = 0;
    c->last_value = 0;
  }
  if (arena_add(c, at, len) != 0) return refuse(c, 500);
  c->fields[c->nfields - 1].nlen += len;
  if (c->headers_done && !trailers_fit(c)) return refuse(c, 431);
  return 0;
}

static int on_header_value (http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  hfield *f;
  if (c->nfields == 0) return refuse(c, 400);  /* the parser prevents it */
  if (scan_head(c, at + len) != 0) return refuse(c, 400);
  f = &c->fields[c->nfields - 1];
  if (!c->last_value) {
    f->value = c->alen;
    c->last_value = 1;
  }
  if (arena_add(c, at, len) != 0) return refuse(c, 500);
  f->vlen += len;
  if (c->headers_done && !trailers_fit(c)) return refuse(c, 431);
  return 0;
}

/*
** The Expect headers: 1 for "100-continue", 0 for none, -1 for any other
** expectation (answered 417). An empty value expects nothing.
*/
static int expectation (const conn *c) {
  size_t i;
  int r = 0;
  for (i = 0; i < c->hcount; i++) {
    const hfield *f = &c->fields[i];
    const char *v = c->arena + f->value;
    size_t n = f->vlen;
    if (!name_is(c->arena + f->name, f->nlen, "expect")) continue;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (n == 0) continue;
    if (!name_is(v, n, "100-continue")) return -1;
    r = 1;
  }
  return r;
}

static void on_continue_written (uv_write_t *w, int status) {
  conn *c = w->data;
  (void)status;  /* a failed write fails the response too */
  c->continuing = 0;
}

static void send_continue (conn *c) {
  static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
  if (c->continuing) return;
  c->creq.data = c;
  if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1,
               on_continue_written) == 0)
    c->continuing = 1;
}

static int on_headers_complete (http_parser *p) {
  conn *c = p->data;
  int has_length = p->content_length != ULLONG_MAX;  /* no Content-Length */
  int has_body = (p->flags & F_CHUNKED) ||
                 (has_length && p->content_length > 0);
  int expect;
  size_t i, hosts = 0;
  c->hcount = c->nfields;
  c->headers_done = 1;
  c->in_head = 0;
  if (p->http_major == 0) return refuse(c, 400);     /* HTTP/0.9 */
  if (p->http_major > 1) return refuse(c, 505);
  for (i = 0; i < c->hcount; i++)
    hosts += name_is(c->arena + c->fields[i].name, c->fields[i].nlen, "host");
  if (hosts > 1 || (hosts == 0 && p->http_minor >= 1))
    return refuse(c, 400);    /* RFC 9112, section 3.2 */
  c->keep_alive = (unsigned char)http_should_keep_alive(p);
  if ((expect = expectation(c)) < 0) return refuse(c, 417);
  if (has_length && p->content_length > c->srv->max_body)
    return refuse(c, 413);    /* before reading any of it */
  if (has_length) c->clen = (size_t)p->content_length;  /* <= max_body */
  if (has_body && expect && p->http_minor >= 1)  /* 1.0: ignored */
    send_continue(c);
  if (c->clen > c->bcap && c->bcap < BODY_RESERVE) {  /* grows in on_body */
    size_t cap = c->clen < BODY_RESERVE ? c->clen : BODY_RESERVE;
    char *b = realloc(c->body, cap);
    if (b == NULL) return refuse(c, 500);
    c->body = b;
    c->bcap = cap;
  }
  return 0;
}

static int on_body (http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  if (len > c->srv->max_body - c->blen) return refuse(c, 413);
  if (len > c->bcap - c->blen) {
    /* up to the Content-Length (the parser never passes more), or
       max_body for a chunked body */
    size_t limit = c->clen ? c->clen : c->srv->max_body;
    size_t cap = c->bcap ? c->bcap : 4096;
    char *b;
    while (cap - c->blen < len) cap *= 2;
    if (cap > limit) cap = limit;
    if ((b = realloc(c->body, cap)) == NULL) return refuse(c, 500);
    c->body = b;
    c->bcap = cap;
  }
  memcpy(c->body + c->blen, at, len);
  c->blen += len;
  return 0;
}

/* Pausing makes http_parser_execute return right after this message. */
static int on_message_complete (http_parser *p) {
  conn *c = p->data;
  c->complete = 1;
  c->in_head = 0;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
  on_message_begin, on_url, NULL, on_header_field, on_header_value,
  on_headers_complete, on_body, on_message_complete, NULL, NULL
};

/*
** Parses data: up to the end of a complete request (then dispatched; what
** follows is kept in c->pending, or stays there when data came from it),
** or to the end of data, or to an error (answered, then closed).
*/
static void conn_feed (conn *c, const char *data, size_t len, int pending) {
  size_t n;
  enum http_errno e;
  c->scan = data;
  c->feed_end = data + len;
  /* the limit is process-wide; only this thread parses */
  http_parser_set_max_header_size((uint32_t)c->srv->max_header);
  n = http_parser_execute(&c->parser, &settings, data, len);
  e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_OK && c->in_head && scan_head(c, data + n) != 0) {
    reply_error(c, 400);      /* an obs-fold at the end of the data */
  } else if (e == HPE_PAUSED && c->complete) {
    if (pending) {
      c->poff += n;
    } else if (n < len) {
      if ((c->pending = malloc(len - n)) == NULL) {
        conn_abort(c);
        return;
      }
      memcpy(c->pending, data + n, len - n);
      c->plen = len - n;
      c->poff = 0;
    }
    dispatch(c);
  } else if (e != HPE_OK) {
    int status = c->reject;
    if (status == 0 && e == HPE_HEADER_OVERFLOW)  /* within the target? */
      status = c->phase == PH_READING && !c->url_done ? 414 : 431;
    reply_error(c, status ? status : 400);
  } else if (pending) {
    c->poff = c->plen;
  }
}

static void on_read (uv_stream_t *h, ssize_t n, const uv_buf_t *buf) {
  conn *c = h->data;
  if (c->closing) return;
  if (c->phase == PH_LINGER) {  /* discard; the peer's EOF ends it */
    if (n < 0) conn_abort(c);
  } else if (n > 0) {
    conn_feed(c, buf->base, (size_t)n, 0);
  } else if (n < 0) {           /* EOF or an error: nobody to answer */
    conn_abort(c);
  }
}

/* The response was written on a kept-alive connection: the next request. */
static void conn_next (conn *c) {
  server *s = c->srv;
  c->phase = PH_IDLE;
  c->complete = 0;
  http_parser_pause(&c->parser, 0);
  if (c->pending != NULL) {
    char *p = c->pending;
    conn_feed(c, p + c->poff, c->plen - c->poff, 1);
    if (c->pending == p && c->poff >= c->plen) {
      free(c->pending);
      c->pending = NULL;
      c->plen = c->poff = 0;
    }
  }
  if (c->closing) return;
  if (c->phase == PH_IDLE) {
    /* on_response_written finishes the connection of a closing server
       instead of coming here; only a finalizer run by a GC step in
       conn_feed (dispatch allocates) could close the server meanwhile */
    if (s->closing) {
      conn_abort(c);
      return;
    }
    uv_timer_start(&c->timer, on_timer, s->idle_ms, 0);
  }
  if ((c->phase == PH_IDLE || c->phase == PH_READING) && conn_read(c, 1))
    conn_abort(c);
}

/* }====================================================== */

/* {====================================================== accepting */

static void on_connection (uv_stream_t *l, int status);

static void on_refused (uv_handle_t *h) {
  server *s = h->data;
  if (s == NULL) {            /* a malloc'ed one */
    free(h);
    return;
  }
  s->spare_busy = 0;
  if (s->stalled && !s->closing) {  /* its connection is still queued */
    s->stalled = 0;
    on_connection((uv_stream_t *)&s->tcp, 0);
  }
  server_check_done(s);
}

/*
** Accepts the queued connection and closes it at once. Without memory for
** a handle the spare is used; if it is busy too, the connection stays
** queued (libuv stops watching the listener until uv_accept) until the
** spare's close callback takes it.
*/
static void refuse_connection (server *s) {
  uv_tcp_t *h = malloc(sizeof *h);
  if (h == NULL) {
    if (s->spare_busy) {
      s->stalled = 1;
      return;
    }
    h = &s->spare;
    s->spare_busy = 1;
  }
  if (uv_tcp_init(s->tcp.loop, h) != 0) {  /* cannot fail on unix */
    if (h == &s->spare) s->spare_busy = 0;
    else free(h);
    s->stalled = 1;
    return;
  }
  h->data = h == &s->spare ? s : NULL;
  uv_accept((uv_stream_t *)&s->tcp, (uv_stream_t *)h);  /* either way the
                                                          fd is taken */
  uv_close((uv_handle_t *)h, on_refused);
}

static void peer_name (conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  strcpy(c->remote, "?");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, c->remote, sizeof c->remote);
    c->remote_port = ntohs(a->sin6_port);
  } else if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, c->remote, sizeof c->remote);
    c->remote_port = ntohs(a->sin_port);
  }
}

static void on_connection (uv_stream_t *l, int status) {
  server *s = l->data;
  conn *c;
  if (status < 0 || s->closing) return;  /* EMFILE...: libuv retries */
  if (s->nconns >= s->max_conns || (c = calloc(1, sizeof *c)) == NULL) {
    refuse_connection(s);
    return;
  }
  if (uv_tcp_init(l->loop, &c->tcp) != 0) {
    free(c);
    refuse_connection(s);
    return;
  }
  uv_timer_init(l->loop, &c->timer);  /* only initialises a struct */
  c->tcp.data = c->timer.data = c;
  c->nhandles = 2;
  c->srv = s;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  uv_unref((uv_handle_t *)&c->tcp);
  uv_unref((uv_handle_t *)&c->timer);
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    conn_abort(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  peer_name(c);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->phase = PH_IDLE;
  uv_timer_start(&c->timer, on_timer, s->idle_ms, 0);
  if (conn_read(c, 1) != 0) conn_abort(c);
}

/* }====================================================== */

/* {====================================================== closing */

static void on_listener_closed (uv_handle_t *h) {
  server *s = h->data;
  s->tcp_open = 0;
  server_check_done(s);
}

/* Stops accepting and closes idle connections; the others finish. */
static void server_begin_close (server *s) {
  conn *c, *next;
  if (s->closing) return;
  s->closing = 1;
  if (s->tcp_open) uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
  for (c = s->conns; c != NULL; c = next) {
    next = c->next;           /* conn_abort never unlinks: freeing does */
    if (c->phase == PH_IDLE) conn_abort(c);
  }
}

static void server_force (server *s) {
  conn *c;
  server_begin_close(s);
  for (c = s->conns; c != NULL; c = c->next)
    if (!c->closing) {
      s->forced = 1;
      conn_abort(c);
    }
}

/* The runtime shuts down (ato_rt_at_close): every handle closes now. */
static void at_close (void *data) {
  httpd_state *st = data;
  server *s;
  for (s = st->servers; s != NULL; s = s->next) server_force(s);
}

/* }====================================================== */

/* {====================================================== server methods */

static server *check_server (lua_State *L) {
  return luaL_checkudata(L, 1, SERVER_META);
}

static server *check_open (lua_State *L) {
  server *s = check_server(L);
  if (s->closing) luaL_error(L, "attempt to use a closed server");
  return s;
}

/* server:address() -> host, port */
static int srv_address (lua_State *L) {
  server *s = check_open(L);
  lua_pushstring(L, s->host);
  lua_pushinteger(L, s->port);
  return 2;
}

/* While a task waits in close(), the connections keep the loop running. */
static void ref_conns (server *s, int on) {
  conn *c;
  for (c = s->conns; c != NULL; c = c->next) {
    if (on) {
      uv_ref((uv_handle_t *)&c->tcp);
      uv_ref((uv_handle_t *)&c->timer);
    } else {
      uv_unref((uv_handle_t *)&c->tcp);
      uv_unref((uv_handle_t *)&c->timer);
    }
  }
}

static void close_waited (server *s) {
  if (s->nwaiting > 0 && --s->nwaiting == 0) ref_conns(s, 0);
}

/* A closer stopped waiting: cancelled, its deadline, or shutdown. */
static void close_detach (void *op) {
  close_waited(op);
}

static int close_resume (lua_State *L, ato_task *t, void *op, ato_wake wake) {
  server *s = lua_touserdata(L, 1);  /* op is NULL after a deadline */
  (void)t;
  if (op != NULL) close_waited(s);
  if (wake == ATO_WAKE_TIMEOUT) server_force(s);  /* the grace is over */
  lua_pushboolean(L, 1);
  lua_pushboolean(L, !s->forced);
  return 2;
}

/*
** server:close([timeout]) -> true, drained: once every connection is
** closed, or once the timeout (write_timeout by default) passed and the
** rest were aborted (drained is false when some connection was aborted,
** by this close or an earlier one). The close starts before anything but
** the server's own check can raise: a caller that cannot wait, or passes a
** bad timeout, still closed the server.
*/
static int srv_close (lua_State *L) {
  server *s = check_server(L);
  lua_Number timeout = (lua_Number)s->write_ms / 1000;
  ato_task *t;
  server_begin_close(s);
  if (!lua_isnoneornil(L, 2)) {
    timeout = luaL_checknumber(L, 2);
    luaL_argcheck(L, timeout >= 0, 2, "timeout must be a number >= 0");
  }
  if (s->nconns == 0) {
    lua_pushboolean(L, 1);
    lua_pushboolean(L, !s->forced);
    return 2;
  }
  t = ato_task_enter(L, "server:close");
  lua_settop(L, 1);           /* close_resume finds the server there */
  if (s->nwaiting++ == 0) ref_conns(s, 1);  /* see the top of this file */
  ato_waitq_push(&s->closers, t);
  return ato_task_wait(L, t, s, close_detach, close_resume, (double)timeout);
}

/* __close and __gc: close without waiting */
static int srv_gc (lua_State *L) {
  server_begin_close(check_server(L));
  return 0;
}

static int srv_tostring (lua_State *L) {
  server *s = check_server(L);
  if (s->closing) lua_pushliteral(L, "ato.httpd.server (closed)");
  else if (strchr(s->host, ':'))
    lua_pushfstring(L, "ato.httpd.server ([%s]:%d)", s->host, s->port);
  else lua_pushfstring(L, "ato.httpd.server (%s:%d)", s->host, s->port);
  return 1;
}

/* }====================================================== */

/* {====================================================== request methods */

/*
** [-0, +1] The exchange of the request at idx (pushed), or raises. The
** request methods have the state as their upvalue.
*/
static exchange *check_request (lua_State *L, int idx) {
  const httpd_state *st = lua_touserdata(L, lua_upvalueindex(1));
  exchange *ex = NULL;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_rawgetp(L, idx, &handle_key) == LUA_TUSERDATA &&
      lua_getmetatable(L, -1)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->ex_mt);
    if (lua_rawequal(L, -1, -2)) ex = lua_touserdata(L, -3);
    lua_pop(L, 2);
  }
  if (ex == NULL) luaL_argerror(L, idx, "ato.httpd request expected");
  return ex;
}

/* [-0, +1] req.headers, raw (the metatable's methods are not fields) */
static int get_headers (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushliteral(L, "headers");
  return lua_rawget(L, 1) == LUA_TTABLE;
}

/*
** Calls back for each value of header `name` in req.headers, in order,
** with the value on the stack top; stops when `each` returns 0.
*/
static void each_header (lua_State *L, const char *name, size_t nlen,
                         int (*each) (lua_State *L, void *ud), void *ud) {
  lua_Integer i, n;
  int list = lua_gettop(L);
  n = (lua_Integer)lua_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, list, i) == LUA_TTABLE &&
        lua_rawgeti(L, -1, 1) == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      if (len == nlen) {
        size_t j;
        for (j = 0; j < len && lower((unsigned char)s[j]) ==
                               lower((unsigned char)name[j]); j++) {}
        if (j == len) {
          int go;
          lua_rawgeti(L, -2, 2);
          go = each(L, ud);
          lua_settop(L, list);
          if (!go) return;
          continue;
        }
      }
    }
    lua_settop(L, list);
  }
}

static int first_value (lua_State *L, void *ud) {
  lua_copy(L, -1, *(int *)ud);  /* the result slot */
  return 0;
}

/* req:header(name) -> its first value, or nil (case-insensitive) */
static int req_header (lua_State *L) {
  size_t nlen;
  const char *name = luaL_checklstring(L, 2, &nlen);
  int slot;
  lua_settop(L, 2);
  lua_pushnil(L);             /* 3: the result */
  slot = 3;
  if (get_headers(L)) each_header(L, name, nlen, first_value, &slot);
  lua_settop(L, 3);
  return 1;
}

static int add_value (lua_State *L, void *ud) {
  int *n = ud;
  lua_pushvalue(L, -1);
  lua_rawseti(L, 3, ++*n);
  return 1;
}

/* req:header_all(name) -> {values...} in order, maybe empty */
static int req_header_all (lua_State *L) {
  size_t nlen;
  const char *name = luaL_checklstring(L, 2, &nlen);
  int n = 0;
  lua_settop(L, 2);
  lua_newtable(L);            /* 3: the result */
  if (get_headers(L)) each_header(L, name, nlen, add_value, &n);
  lua_settop(L, 3);
  return 1;
}

static int req_responded (lua_State *L) {
  lua_pushboolean(L, check_request(L, 1)->responded);
  return 1;
}

static int req_tostring (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushliteral(L, "method");
  lua_rawget(L, 1);
  lua_pushliteral(L, "target");
  lua_rawget(L, 1);
  lua_pushfstring(L, "ato.httpd.request (%s %s)",
                  lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?",
                  lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : "?");
  return 1;
}

/*
** The request's task ended (__close), or its exchange is collected (__gc,
** the last resort): if it was never answered, the server answers 500. One
** being answered by another task is left to finish.
*/
static int ex_close (lua_State *L) {
  exchange *ex = lua_touserdata(L, 1);
  conn *c = ex->conn;
  if (c != NULL && !ex->responded) {
    ex->conn = NULL;
    c->ex = NULL;
    reply_error(c, 500);
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== respond */

typedef struct head_info {
  int close;                  /* the handler sent "Connection: close" */
  int has_date, has_server;
} head_info;

/* Appends to b; a NULL b only checks (the connection is gone). Raises
   without memory. */
static void hb_add (lua_State *L, hbuf *b, const char *s, size_t n) {
  if (b == NULL) return;
  if (n > b->cap - b->n) {
    size_t cap = b->cap ? b->cap : 512;
    char *p;
    while (cap - b->n < n) cap *= 2;
    if ((p = realloc(b->p, cap)) == NULL) luaL_error(L, "not enough memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

#define hb_lit(L, b, s) hb_add(L, b, "" s, sizeof(s) - 1)

static int is_tchar (int ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

/*
** Checks one header (name and value at absolute indices; the value slot
** may be converted to a string in place) and appends "name: value" CRLF
** to b. A response cannot be split by a value: CR, LF and NUL are refused.
*/
static void add_header (lua_State *L, hbuf *b, int ni, int vi,
                        head_info *hi) {
  size_t nlen, vlen, i;
  const char *name, *value;
  if (lua_type(L, ni) != LUA_TSTRING)
    luaL_error(L, "respond: header name must be a string (got %s)",
               luaL_typename(L, ni));
  name = lua_tolstring(L, ni, &nlen);
  for (i = 0; i < nlen && is_tchar((unsigned char)name[i]); i++) {}
  if (nlen == 0 || i < nlen)
    luaL_error(L, "respond: bad header name '%s'", name);
  if (lua_type(L, vi) != LUA_TSTRING && lua_type(L, vi) != LUA_TNUMBER)
    luaL_error(L, "respond: value of header '%s' must be a string or a "
               "number (got %s)", name, luaL_typename(L, vi));
  value = lua_tolstring(L, vi, &vlen);   /* a number converts in its slot */
  for (i = 0; i < vlen; i++)
    if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
      luaL_error(L, "respond: value of header '%s' contains a line break "
                 "or a NUL byte", name);
  switch (lower((unsigned char)name[0])) {   /* the few names we look at */
    case 'c':
      if (name_is(name, nlen, "content-length"))
        luaL_error(L, "respond: header '%s' is set by respond itself", name);
      if (name_is(name, nlen, "connection")) {  /* ours: keep-alive or close */
        if (has_token(value, vlen, "close")) hi->close = 1;
        return;
      }
      break;
    case 't':
      if (name_is(name, nlen, "transfer-encoding"))
        luaL_error(L, "respond: header '%s' is set by respond itself", name);
      break;
    case 'd':
      if (name_is(name, nlen, "date")) hi->has_date = 1;
      break;
    case 's':
      if (name_is(name, nlen, "server")) hi->has_server = 1;
      break;
  }
  hb_add(L, b, name, nlen);
  hb_lit(L, b, ": ");
  hb_add(L, b, value, vlen);
  hb_lit(L, b, "\r\n");
}

/*
** The headers argument at idx: nil, a list of {name, value} pairs (a table
** with a [1]), or a map name -> value or list of values (any other
** table); checked and appended to b. A list with other keys than 1..n
** raises: the two readings would disagree. Raises on anything malformed.
*/
static void add_headers (lua_State *L, int idx, hbuf *b, head_info *hi) {
  int top = lua_gettop(L);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_rawgeti(L, idx, 1) != LUA_TNIL) {   /* a list of pairs */
    lua_Integer i, n;
    for (i = 1; lua_type(L, -1) != LUA_TNIL; i++) {   /* top+1: pair i */
      if (lua_type(L, -1) != LUA_TTABLE)
        luaL_error(L, "respond: header %d must be a {name, value} pair "
                   "(got %s)", (int)i, luaL_typename(L, -1));
      lua_rawgeti(L, top + 1, 1);
      lua_rawgeti(L, top + 1, 2);
      add_header(L, b, top + 2, top + 3, hi);
      lua_settop(L, top);
      lua_rawgeti(L, idx, i + 1);
    }
    n = i - 1;
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, idx)) {           /* top+1: key, top+2: value */
      lua_Integer k = lua_tointeger(L, top + 1);
      if (!lua_isinteger(L, top + 1) || k < 1 || k > n)
        luaL_error(L, "respond: headers mix a list of pairs with other "
                   "keys (key %s)", luaL_tolstring(L, top + 1, NULL));
      lua_settop(L, top + 1);
    }
    return;
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, idx)) {             /* top+1: key, top+2: value */
    if (lua_type(L, top + 2) == LUA_TTABLE) {  /* repeated: a list */
      lua_Integer i, n = (lua_Integer)lua_rawlen(L, top + 2);
      for (i = 1; i <= n; i++) {
        lua_rawgeti(L, top + 2, i);      /* top+3: a value */
        add_header(L, b, top + 1, top + 3, hi);
        lua_settop(L, top + 2);
      }
    } else {
      add_header(L, b, top + 1, top + 2, hi);
    }
    lua_settop(L, top + 1);
  }
}

/* The write completed (or was cancelled by conn_abort, which woke the
   task itself): wake the task, then go on with the connection. */
static void on_response_written (uv_write_t *w, int status) {
  conn *c = w->data;
  unlink_exchange(c, status);
  if (c->closing) return;
  if (status < 0) conn_abort(c);
  else if (c->close_after || c->srv->closing) conn_finish(c);
  else conn_next(c);
}

/* Cancellation or shutdown while the response is written: see the top. */
static void respond_detach (void *op) {
  exchange *ex = op;
  ex->task = NULL;            /* not woken by the abort: the runtime wakes */
  if (ex->conn != NULL) conn_abort(ex->conn);
}

static int respond_resume (lua_State *L, ato_task *t, void *op,
                           ato_wake wake) {
  exchange *ex = op;
  (void)t;
  (void)wake;                 /* no deadline: always ATO_WAKE_OK */
  if (ex->wstatus == UV_ETIMEDOUT)
    return ato_return_error(L, "timeout", "respond: the client read none "
                            "of the response for write_timeout; the "
                            "connection was aborted");
  if (ex->wstatus < 0)
    return ato_return_error(L, "closed", "respond: the connection closed "
                            "(%s)", uv_strerror(ex->wstatus));
  lua_pushboolean(L, 1);
  return 1;
}

/*
** req:respond(status, headers, body) -> true, or nil, err. Waits until
** the response is written: the body stays anchored on this stack, and a
** slow client slows its handler down (write_timeout at most without
** progress). The status line and headers go straight into the conn's head
** buffer (only checked when the connection is gone).
*/
static int req_respond (lua_State *L) {
  exchange *ex;
  lua_Integer status;
  const char *body;
  size_t blen = 0;
  head_info hi = {0, 0, 0};
  ato_task *t;
  conn *c;
  hbuf *hb;
  uv_buf_t bufs[2];
  char line[64];
  int close, r, n, nbufs = 1;
  lua_settop(L, 4);
  ex = check_request(L, 1);                       /* 5: the exchange */
  status = lua_tointeger(L, 2);  /* strictly an integer: not "200", 2e2 */
  luaL_argcheck(L, lua_isinteger(L, 2) && status >= 200 && status <= 599, 2,
                "status must be an integer from 200 to 599");
  body = luaL_optlstring(L, 4, NULL, &blen);
  luaL_argcheck(L, blen <= UINT_MAX, 4, "body too large");  /* uv_buf_t */
  luaL_argcheck(L, blen == 0 || (status != 204 && status != 205 &&
                                 status != 304), 4,
                "a 204, 205 or 304 response has no body");
  if (ex->responded) return luaL_error(L, "respond: the request was "
                                       "already answered");
  c = ex->conn;
  hb = c != NULL ? &c->rhead : NULL;
  if (hb != NULL) hb->n = 0;
  n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", (int)status,
               status_reason((int)status));
  hb_add(L, hb, line, (size_t)n);
  add_headers(L, 3, hb, &hi);
  t = ato_task_enter(L, "respond");
  if ((c = ex->conn) == NULL) {  /* hb is NULL then: no wait since */
    ex->responded = 1;
    return ato_return_error(L, "closed", "respond: the connection is closed");
  }
  close = !c->keep_alive || c->upgrade || c->srv->closing || hi.close;
  if (status != 204 && status != 304) {   /* 205: "Content-Length: 0" */
    n = snprintf(line, sizeof line, "Content-Length: %zu\r\n", blen);
    hb_add(L, hb, line, (size_t)n);
  }
  if (close) hb_lit(L, hb, "Connection: close\r\n");
  else hb_lit(L, hb, "Connection: keep-alive\r\n");
  if (!hi.has_date) {
    hb_lit(L, hb, "Date: ");
    hb_add(L, hb, http_date(), strlen(http_date()));
    hb_lit(L, hb, "\r\n");
  }
  if (!hi.has_server) hb_lit(L, hb, "Server: ato/" ATO_VERSION "\r\n");
  hb_lit(L, hb, "\r\n");
  ex->responded = 1;
  bufs[0] = uv_buf_init(hb->p, (unsigned int)hb->n);
  if (blen > 0 && !c->head) {   /* a HEAD response has no body */
    bufs[1] = uv_buf_init((char *)body, (unsigned int)blen);
    nbufs = 2;
  }
  c->close_after = (unsigned char)close;
  c->wreq.data = c;
  r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs,
               on_response_written);
  if (r != 0) {
    conn_abort(c);            /* ex->task is NULL: nobody is woken */
    return ato_return_error(L, "closed", "respond: %s", uv_strerror(r));
  }
  c->phase = PH_WRITING;
  arm_write_timer(c);
  ex->task = t;
  ex->wstatus = 0;
  return ato_task_wait(L, t, ex, respond_detach, respond_resume, -1);
}

/* }====================================================== */

/* {====================================================== listen */

static const char *const listen_options[] = {
  "host", "port", "dispatch", "max_header", "max_body", "idle_timeout",
  "read_timeout", "write_timeout", "max_connections", "backlog", NULL
};

static int opt_error (lua_State *L, const char *name, const char *expected) {
  return luaL_argerror(L, 1, lua_pushfstring(L, "option '%s' must be %s",
                                             name, expected));
}

static void check_keys (lua_State *L) {
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    int i = 0;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING)
      for (; listen_options[i]; i++)
        if (strcmp(lua_tostring(L, -1), listen_options[i]) == 0) break;
    if (lua_type(L, -1) != LUA_TSTRING || listen_options[i] == NULL)
      luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'",
                                          luaL_tolstring(L, -1, NULL)));
  }
}

static lua_Integer opt_int (lua_State *L, const char *name, lua_Integer def,
                            lua_Integer lo, lua_Integer hi) {
  lua_Integer v = def;
  if (lua_getfield(L, 1, name) != LUA_TNIL) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || lua_type(L, -1) != LUA_TNUMBER || v < lo || v > hi) {
      lua_pushfstring(L, "an integer from %I to %I", lo, hi);
      opt_error(L, name, lua_tostring(L, -1));
    }
  }
  lua_pop(L, 1);
  return v;
}

/* seconds > 0 as milliseconds (at least 1) */
static uint64_t opt_ms (lua_State *L, const char *name, double def) {
  lua_Number s = def;
  if (lua_getfield(L, 1, name) != LUA_TNIL) {
    s = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(s > 0))  /* NaN fails too */
      opt_error(L, name, "a number of seconds > 0");
  }
  lua_pop(L, 1);
  if (s > MAX_SECONDS) s = MAX_SECONDS;
  return s * 1000 < 1 ? 1 : (uint64_t)(s * 1000 + 0.5);
}

/* nil, err for a failed bind or listen, naming the address */
static int listen_error (lua_State *L, int r, const char *host, int port) {
  int v6 = strchr(host, ':') != NULL;
  ato_return_error(L, ato_uverror_kind(r), "listen %s%s%s:%d: %s",
                   v6 ? "[" : "", host, v6 ? "]" : "", port, uv_strerror(r));
  lua_pushstring(L, uv_err_name(r));
  lua_setfield(L, -2, "code");
  return 2;
}

/* The address the listener really has (port 0 becomes the port). */
static void bound_name (server *s) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, s->host, sizeof s->host);
    s->port = ntohs(a->sin6_port);
  } else if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, s->host, sizeof s->host);
    s->port = ntohs(a->sin_port);
  }
}

/* httpd.listen{host=, port=, dispatch=, ...} -> server, or nil, err */
static int l_listen (lua_State *L) {
  httpd_state *st = lua_touserdata(L, lua_upvalueindex(1));
  struct sockaddr_storage addr;
  const char *host;
  lua_Integer port, backlog;
  server *s;
  int r;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_keys(L);
  if (lua_getfield(L, 1, "host") == LUA_TNIL) {   /* 2: host */
    lua_pop(L, 1);
    lua_pushliteral(L, DEFAULT_HOST);
  } else if (lua_type(L, 2) != LUA_TSTRING) {
    opt_error(L, "host", "a string");
  }
  host = lua_tostring(L, 2);
  port = opt_int(L, "port", 0, 0, 65535);
  if (lua_getfield(L, 1, "dispatch") != LUA_TFUNCTION)  /* 3: dispatch */
    opt_error(L, "dispatch", "a function");
  memset(&addr, 0, sizeof addr);
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr) != 0)
    luaL_argerror(L, 1, lua_pushfstring(L, "option 'host' must be an IPv4 "
                  "or IPv6 address, not a name (got '%s')", host));
  s = lua_newuserdatauv(L, sizeof *s, 1);         /* 4: the server */
  memset(s, 0, sizeof *s);
  s->self_ref = LUA_NOREF;
  s->closing = s->done = 1;   /* until the listener exists */
  luaL_setmetatable(L, SERVER_META);
  s->max_header = (size_t)opt_int(L, "max_header", DEFAULT_MAX_HEADER, 256,
                                  MAX_HEADER_LIMIT);
  s->max_body = (size_t)opt_int(L, "max_body", DEFAULT_MAX_BODY, 0,
                                (lua_Integer)(SIZE_MAX >> 2));
  s->idle_ms = opt_ms(L, "idle_timeout", DEFAULT_IDLE);
  s->read_ms = opt_ms(L, "read_timeout", DEFAULT_READ);
  s->write_ms = opt_ms(L, "write_timeout", DEFAULT_WRITE);
  s->max_conns = (size_t)opt_int(L, "max_connections",
                                 DEFAULT_MAX_CONNECTIONS, 1, INT_MAX);
  backlog = opt_int(L, "backlog", DEFAULT_BACKLOG, 1, INT_MAX);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 4, 1);
  s->state = st;
  s->L = ato_rt_get(L)->L;
  snprintf(s->host, sizeof s->host, "%s", host);
  s->port = (int)port;
  lua_pushvalue(L, 4);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);  /* before any handle */
  if ((r = uv_tcp_init(ato_loop(L), &s->tcp)) != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    s->self_ref = LUA_NOREF;
    return listen_error(L, r, host, (int)port);
  }
  s->tcp.data = s;
  s->tcp_open = 1;
  s->closing = s->done = 0;
  s->next = st->servers;
  if (st->servers) st->servers->prev = s;
  st->servers = s;
  uv_unref((uv_handle_t *)&s->tcp);
  r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&s->tcp, (int)backlog,
                            on_connection);
  if (r != 0) {
    server_begin_close(s);    /* done (and unanchored) in its callback */
    return listen_error(L, r, host, (int)port);
  }
  bound_name(s);
  lua_settop(L, 4);
  return 1;
}

/* }====================================================== */

static const luaL_Reg server_methods[] = {
  {"address", srv_address},
  {"close", srv_close},
  {NULL, NULL}
};

static const luaL_Reg server_meta[] = {
  {"__gc", srv_gc},
  {"__close", srv_gc},
  {"__tostring", srv_tostring},
  {NULL, NULL}
};

static const luaL_Reg request_methods[] = {
  {"respond", req_respond},
  {"header", req_header},
  {"header_all", req_header_all},
  {"responded", req_responded},
  {NULL, NULL}
};

/* [-0, +0] The metatables, created once per Lua state; the request's and
   the exchange's are kept as registry refs in st. */
static void create_metatables (lua_State *L, httpd_state *st) {
  if (luaL_newmetatable(L, SERVER_META)) {
    luaL_setfuncs(L, server_meta, 0);
    luaL_newlib(L, server_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, EXCHANGE_META)) {
    lua_pushcfunction(L, ex_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ex_close);
    lua_setfield(L, -2, "__close");
  }
  if (st->ex_mt == 0) st->ex_mt = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_pop(L, 1);
  if (luaL_newmetatable(L, REQUEST_META)) {
    lua_pushcfunction(L, req_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlibtable(L, request_methods);
    lua_pushlightuserdata(L, st);
    luaL_setfuncs(L, request_methods, 1);
    lua_setfield(L, -2, "__index");
  }
  if (st->req_mt == 0) st->req_mt = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_pop(L, 1);
}

/* [-0, +1] The state of this Lua state, created (and hooked) once. */
static httpd_state *push_state (lua_State *L) {
  httpd_state *st;
  if (lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY) == LUA_TNIL) {
    lua_pop(L, 1);
    st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, STATE_KEY);
  }
  st = lua_touserdata(L, -1);
  if (!st->hooked) {
    if (ato_rt_at_close(L, at_close, st) != 0)
      luaL_error(L, "ato.httpd: the runtime's at-close table is full");
    st->hooked = 1;
  }
  return st;
}

int luaopen_ato_httpd (lua_State *L);  /* loaded by require, not linked */

int luaopen_ato_httpd (lua_State *L) {
  httpd_state *st;
  lua_newtable(L);
  st = push_state(L);
  create_metatables(L, st);
  lua_pushcclosure(L, l_listen, 1);
  lua_setfield(L, -2, "listen");
  return 1;
}

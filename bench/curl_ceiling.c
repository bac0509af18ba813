/*
** bench/curl_ceiling.c URL N C: libcurl's own ceiling on this machine. A
** minimal C client on the same interface ato.http uses (curl multi_socket
** driven by libuv), with no Lua, no tasks and no response handling: N GETs
** of URL, C in flight, one JSON line. bench/http.lua builds and runs it, so
** ato's client is measured against the library it is built on.
*/
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <uv.h>

typedef struct { uv_poll_t poll; curl_socket_t fd; } watch;

static uv_loop_t *loop;
static uv_timer_t timer;
static CURLM *multi;
static const char *url;
static int total, started, finished;

static size_t discard (char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n;
}

static void start_one (void) {
  CURL *easy = curl_easy_init();
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_multi_add_handle(multi, easy);
  started++;
}

static void collect (void) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
    CURL *easy = msg->easy_handle;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    finished++;
    if (started < total) start_one();
  }
}

static void on_poll (uv_poll_t *h, int status, int events) {
  int flags = status < 0 ? CURL_CSELECT_ERR : 0, running;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(multi, ((watch *)h)->fd, flags, &running);
  collect();
}

static void on_timeout (uv_timer_t *h) {
  int running;
  (void)h;
  curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
  collect();
}

static void free_watch (uv_handle_t *h) {
  free(h);
}

static int on_socket (CURL *e, curl_socket_t s, int what, void *up, void *sp) {
  watch *w = sp;
  (void)e;
  (void)up;
  if (what == CURL_POLL_REMOVE) {
    if (w) {
      uv_poll_stop(&w->poll);
      uv_close((uv_handle_t *)&w->poll, free_watch);
      curl_multi_assign(multi, s, NULL);
    }
    return 0;
  }
  if (w == NULL) {
    w = malloc(sizeof *w);
    uv_poll_init_socket(loop, &w->poll, s);
    w->fd = s;
    curl_multi_assign(multi, s, w);
  }
  uv_poll_start(&w->poll, ((what & CURL_POLL_IN) ? UV_READABLE : 0) |
                ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0), on_poll);
  return 0;
}

static int on_timer (CURLM *m, long ms, void *up) {
  (void)m;
  (void)up;
  if (ms < 0) uv_timer_stop(&timer);
  else uv_timer_start(&timer, on_timeout, (uint64_t)ms, 0);
  return 0;
}

int main (int argc, char **argv) {
  int in_flight, i;
  uint64_t t0;
  double wall;
  if (argc < 4) {
    fprintf(stderr, "usage: curl_ceiling URL N C\n");
    return 2;
  }
  url = argv[1];
  total = atoi(argv[2]);
  in_flight = atoi(argv[3]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  loop = uv_default_loop();
  uv_timer_init(loop, &timer);
  multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 512L);
  t0 = uv_hrtime();
  for (i = 0; i < in_flight && i < total; i++) start_one();
  uv_run(loop, UV_RUN_DEFAULT);
  wall = (double)(uv_hrtime() - t0) / 1e9;
  printf("{\"requests\":%d,\"in_flight\":%d,\"wall_s\":%.3f,\"req_per_s\":%.0f}\n",
         finished, in_flight, wall, finished / wall);
  return 0;
}

/*
** bench/pty_prompt.c: start-up to first prompt through a pseudo-terminal,
** and the round trip of trivial lines, for bench/repl.lua.
**
**   pty_prompt PROMPT LINES -- COMMAND [ARGS...]
**
** Runs COMMAND on a new pty, waits until PROMPT appears in its output
** (start-up), then LINES times: types "1\n" and waits for PROMPT again.
** Prints JSON: {"startup_ms":..., "line_ms":... (mean per line), "lines":N}.
*/
#define _DEFAULT_SOURCE
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Reads from fd until `prompt` has been seen after `since` bytes of this
   call's window; 0, or -1 after 10 s or at end of output. */
static int wait_for (int fd, const char *prompt) {
  static char window[65536];
  static size_t len;
  double deadline = now_ms() + 10000;
  len = 0;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;
    if (now_ms() > deadline) return -1;
    if (poll(&p, 1, 100) <= 0) continue;
    if (len + 4096 >= sizeof window) {      /* keep the tail */
      memmove(window, window + len - 256, 256);
      len = 256;
    }
    n = read(fd, window + len, 4096);
    if (n <= 0) return -1;
    len += (size_t)n;
    window[len] = '\0';
    if (strstr(window, prompt) != NULL) return 0;
  }
}

int main (int argc, char **argv) {
  const char *prompt;
  int lines, master, i, status;
  pid_t pid;
  double t0, t1, t2;
  if (argc < 5 || strcmp(argv[3], "--") != 0) {
    fprintf(stderr, "usage: pty_prompt PROMPT LINES -- COMMAND [ARGS...]\n");
    return 2;
  }
  prompt = argv[1];
  lines = atoi(argv[2]);
  t0 = now_ms();
  pid = forkpty(&master, NULL, NULL, NULL);
  if (pid < 0) { perror("forkpty"); return 1; }
  if (pid == 0) {
    execvp(argv[4], argv + 4);
    _exit(127);
  }
  if (wait_for(master, prompt) != 0) { fprintf(stderr, "no prompt\n"); kill(pid, SIGKILL); return 1; }
  t1 = now_ms();
  for (i = 0; i < lines; i++) {
    if (write(master, "1\r", 2) != 2 || wait_for(master, prompt) != 0) {
      fprintf(stderr, "no prompt after line %d\n", i);
      kill(pid, SIGKILL);
      return 1;
    }
  }
  t2 = now_ms();
  if (write(master, "\004", 1) != 1) kill(pid, SIGTERM);   /* Ctrl-D */
  waitpid(pid, &status, 0);
  printf("{\"startup_ms\":%.3f,\"line_ms\":%.4f,\"lines\":%d}\n", t1 - t0,
         lines ? (t2 - t1) / lines : 0.0, lines);
  return 0;
}

/*
** main.c — the `ato` command line: parse, then run a script as the main
** task of the runtime. Exit status: 0 success, 1 the script failed,
** 2 usage error, 128+N after signal N.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "host.h"
#include "task.h"

#define EXIT_USAGE 2

static const char usage_text[] =
"usage: ato [OPTIONS] COMMAND [ARGS...]\n"
"       ato [OPTIONS] FILE [ARGS...]\n"
"\n"
"ato runs account-takeover response playbooks: Lua 5.4 scripts on one\n"
"libuv event loop, where waiting calls (sleep, exec, fs, HTTP) suspend only\n"
"the task that makes them.\n"
"\n"
"Commands:\n"
"  run FILE [ARGS...]   run a Lua script as the main task (same as: ato FILE)\n"
"  -e CODE [ARGS...]    run CODE as the main task\n"
"  - [ARGS...]          read the script from standard input\n"
"  scan [PATH|-]...     find leaked secrets in files, trees, stdin or git\n"
"                       history (ato scan --help)\n"
"  repl                 the incident console (also bare `ato` on a terminal)\n"
"  jobs COMMAND ...     durable scheduled jobs: add, list, show, rm, pause,\n"
"                       resume, run, history (ato jobs --help)\n"
"  daemon [--listen A]  run the due jobs (ato daemon --help)\n"
"  sandbox [OPTIONS]    a local SendGrid account to drill on (ato sandbox --help)\n"
"  version [--json]     versions of ato and of each library it uses\n"
"  help                 this text\n"
"\n"
"Options (before the command):\n"
"  --log-format FORMAT  human, json or auto (default auto: human when stderr\n"
"                       is a terminal, JSON lines otherwise)\n"
"  --log-level LEVEL    debug, info, warn or error (default info)\n"
"  --db PATH            the state database (default $ATO_DB, else\n"
"                       $XDG_STATE_HOME/ato/ato.db or ~/.local/state/ato/ato.db)\n"
"  -h, --help           this text\n"
"  -V, --version        same as 'ato version'\n"
"\n"
"Scripts:\n"
"  The arguments are in `arg` (arg[0] is the script, or -e or -; arg[1]...\n"
"  the rest) and in `...`, as with lua5.4. `require \"ato\"` gives the task\n"
"  runtime: spawn, sleep, timeout, gather, channel, exec, fs, log (README.md).\n"
"  ato's Lua library is searched before LUA_PATH/LUA_CPATH.\n"
"\n"
"Environment:\n"
"  ATO_LOG_FORMAT, ATO_LOG_LEVEL   defaults for --log-format, --log-level\n"
"  ATO_DB                          the state database (--db sets it)\n"
"  NO_COLOR                        no colours in human-readable logs\n"
"\n"
"Exit status:\n"
"  0    success\n"
"  1    the script failed: an uncaught error (message, file:line and a\n"
"       traceback on stderr), a failed task nobody joined, or a deadlock\n"
"  2    usage error: unknown command or option, missing or unreadable script\n"
"  70   internal error (the runtime itself ran out of memory)\n"
"  130  interrupted by SIGINT (Ctrl-C; a second one exits at once), 143 SIGTERM\n"
"\n"
"  Use `ato -- FILE` for a script whose name starts with '-'.\n";

typedef struct {
  int log_json;            /* -1 auto, 0 human, 1 json */
  const char *log_level;
} options;

static int usage_error (const char *fmt, const char *arg) {
  fprintf(stderr, "ato: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see 'ato --help')\n");
  return EXIT_USAGE;
}

/* {====================================================== options */

static int parse_log_format (const char *v, int *out) {
  if (strcmp(v, "json") == 0) *out = 1;
  else if (strcmp(v, "human") == 0) *out = 0;
  else if (strcmp(v, "auto") == 0) *out = -1;
  else return -1;
  return 0;
}

static int valid_level (const char *v) {
  return strcmp(v, "debug") == 0 || strcmp(v, "info") == 0 ||
         strcmp(v, "warn") == 0 || strcmp(v, "error") == 0;
}

static void default_options (options *o) {
  const char *fmt = getenv("ATO_LOG_FORMAT"), *lvl = getenv("ATO_LOG_LEVEL");
  o->log_json = -1;
  o->log_level = "info";
  if (fmt && *fmt && parse_log_format(fmt, &o->log_json) != 0)
    fprintf(stderr, "ato: ignoring ATO_LOG_FORMAT='%s' (human, json or auto)\n", fmt);
  if (lvl && *lvl) {
    if (valid_level(lvl)) o->log_level = lvl;
    else fprintf(stderr, "ato: ignoring ATO_LOG_LEVEL='%s' (debug, info, warn "
                 "or error)\n", lvl);
  }
}

/*
** Value of "--name VALUE" or "--name=VALUE" at argv[*i], or NULL when
** argv[*i] is another option; "" when the value is missing.
*/
static const char *option_value (int argc, char **argv, int *i,
                                 const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0') return NULL;
  if (*i + 1 >= argc) return "";
  return argv[++*i];
}

static int bad_value (const char *opt, const char *allowed, const char *v) {
  fprintf(stderr, "ato: %s must be %s, %s%s%s (see 'ato --help')\n", opt,
          allowed, *v ? "not '" : "and it is missing", v, *v ? "'" : "");
  return EXIT_USAGE;
}

/*
** Parses options up to the command; returns its index, or -status.
** *file_only is set after "--": the next word is a script, whatever it is.
*/
static int parse_options (int argc, char **argv, options *o, int *file_only) {
  int i;
  const char *v;
  *file_only = 0;
  for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
    if (strcmp(argv[i], "--") == 0) {
      *file_only = 1;
      return i + 1;
    }
    if ((v = option_value(argc, argv, &i, "--log-format")) != NULL) {
      if (parse_log_format(v, &o->log_json) != 0)
        return -bad_value("--log-format", "human, json or auto", v);
    } else if ((v = option_value(argc, argv, &i, "--log-level")) != NULL) {
      if (!valid_level(v))
        return -bad_value("--log-level", "debug, info, warn or error", v);
      o->log_level = v;
    } else if ((v = option_value(argc, argv, &i, "--db")) != NULL) {
      /* through the environment, so child `ato` processes (jobs) get it too */
      if (*v == '\0') return -bad_value("--db", "a file path", v);
      setenv("ATO_DB", v, 1);
    } else {
      break;  /* --help, --version, or unknown: the command decides */
    }
  }
  return i;
}

/* }====================================================== */

/* {====================================================== version */

/* [-0, +1] Pushes require(name)[field] or nil, without raising. */
static const char *module_field (lua_State *L, const char *name,
                                 const char *call, const char *field) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return NULL;
  }
  if (call != NULL) {  /* module[call]()[field] */
    lua_getfield(L, -1, call);
    lua_remove(L, -2);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_pushnil(L);
      return NULL;
    }
  }
  lua_getfield(L, -1, field);
  lua_remove(L, -2);
  return lua_tostring(L, -1);
}

static int print_version (int json) {
  ato_rt rt;
  const char *cjson, *curl, *ssl;
  if (ato_rt_init(&rt) != 0) return 1;
  ato_host_setup(&rt);
  cjson = module_field(rt.L, "cjson", NULL, "_VERSION");
  curl = module_field(rt.L, "ato.httpc", "version", "libcurl");
  ssl = module_field(rt.L, "ato.httpc", "version", "ssl");
  if (cjson && strncmp(cjson, "lua-cjson ", 10) == 0) cjson += 10;
  if (json)
    printf("{\"ato\":\"%s\",\"lua\":\"%s\",\"libuv\":\"%s\",\"libcurl\":\"%s\","
           "\"ssl\":\"%s\",\"lua-cjson\":\"%s\"}\n", ATO_VERSION,
           LUA_VERSION_MAJOR "." LUA_VERSION_MINOR "." LUA_VERSION_RELEASE,
           uv_version_string(), curl ? curl : "", ssl ? ssl : "",
           cjson ? cjson : "");
  else
    printf("ato %s\n%s\nlibuv %s\nlibcurl %s%s%s%s\nlua-cjson %s\n", ATO_VERSION,
           LUA_RELEASE, uv_version_string(),
           curl ? curl : "(module ato.httpc not found)",
           ssl ? " (" : "", ssl ? ssl : "", ssl ? ")" : "",
           cjson ? cjson : "(not found)");
  ato_rt_close(&rt);
  return 0;
}

/* }====================================================== */

/* {====================================================== running */

/* Checks that path names a readable regular file; 0 or an exit status. */
static int check_script (const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "ato: cannot open script '%s': %s\n", path, strerror(errno));
    return EXIT_USAGE;
  }
  if (S_ISDIR(st.st_mode)) {
    fprintf(stderr, "ato: '%s' is a directory, not a script\n", path);
    return EXIT_USAGE;
  }
  if (access(path, R_OK) != 0) {
    fprintf(stderr, "ato: cannot open script '%s': %s\n", path, strerror(errno));
    return EXIT_USAGE;
  }
  return 0;
}

typedef enum { MAIN_FILE, MAIN_CODE, MAIN_STDIN } main_kind;

/* [-0, +1] Loads the main chunk; 0, or an exit status after a message. */
static int load_main (lua_State *L, main_kind kind, const char *src) {
  int status;
  if (kind == MAIN_CODE)
    status = luaL_loadbuffer(L, src, strlen(src), "=(command line)");
  else if (kind == MAIN_STDIN)
    status = luaL_loadfile(L, NULL);
  else
    status = luaL_loadfile(L, src);
  if (status == LUA_OK) return 0;
  ato_report("%s", lua_tostring(L, -1));
  return status == LUA_ERRFILE ? EXIT_USAGE : EXIT_FAILURE;
}

/*
** [-0, +0] The global `arg`, laid out as lua.c does: arg[0] the script,
** arg[1..] its arguments, negative indices what came before the script.
*/
static void set_arg_table (lua_State *L, int argc, char **argv, int script,
                           int first_arg) {
  int i;
  lua_createtable(L, argc - first_arg, script + 1);
  for (i = 0; i <= script && i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  for (i = first_arg; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - first_arg + 1);
  }
  lua_setglobal(L, "arg");
}

/*
** Runs the main chunk: src is the path or the code (NULL for stdin);
** arg[0] is argv[script] and the chunk's arguments start at argv[first_arg].
*/
/*
** ATO_NOT_BEFORE=EPOCH: `ato daemon` starts a job's process a little before
** its due time and sets this, so that process start-up and loading the
** script are paid before the due time and the script itself starts on
** time. Waits (after loading, before running) until that wall-clock time;
** a signal ends the wait early (the main task then sees it). The variable
** is removed, so the job's own children do not wait again.
*/
static void wait_not_before (ato_rt *rt) {
  const char *v = getenv("ATO_NOT_BEFORE");
  char *end;
  double when;
  struct timespec ts;
  if (v == NULL) return;
  when = strtod(v, &end);
  unsetenv("ATO_NOT_BEFORE");
  if (end == v || when <= 0 || when > 1e11) return;   /* not a time: run now */
  ts.tv_sec = (time_t)when;
  ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
  while (rt->signal_count == 0 &&
         clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static int run_main (int argc, char **argv, int script, int first_arg,
                     main_kind kind, const char *src, const options *o) {
  ato_rt rt;
  int status, i;
  if (ato_rt_init(&rt) != 0) return EXIT_FAILURE;
  rt.log_json = o->log_json;
  rt.log_level = o->log_level;
  ato_host_setup(&rt);
  if ((status = load_main(rt.L, kind, src)) != 0) {
    ato_rt_close(&rt);
    return status;
  }
  set_arg_table(rt.L, argc, argv, script, first_arg);
  luaL_checkstack(rt.L, argc - first_arg + 1, "too many arguments");
  for (i = first_arg; i < argc; i++) lua_pushstring(rt.L, argv[i]);
  if (kind == MAIN_FILE) wait_not_before(&rt);
  rt.main = ato_task_spawn(rt.L, argc - first_arg);
  lua_pop(rt.L, 1);  /* the handle; the runtime anchors the task */
  status = ato_rt_run(&rt);
  ato_rt_close(&rt);
  return status;
}

static int run_file (int argc, char **argv, int script, const options *o) {
  int status = check_script(argv[script]);
  if (status != 0) return status;
  return run_main(argc, argv, script, script + 1, MAIN_FILE, argv[script], o);
}

/* Commands written in Lua: `ato NAME ARGS...` runs MODULE.main(ARGS...) as
   the main task and exits with the status it returns. */
static const struct { const char *name, *module; } lua_commands[] = {
  {"scan", "ato.scan.cli"},
  {"jobs", "ato.jobs.cli"},
  {"daemon", "ato.daemon"},
  {"repl", "ato.repl"},
  {"sandbox", "ato.sendgrid.sandbox"},
  {NULL, NULL}
};

static int run_lua_command (int argc, char **argv, int i, const char *module,
                            const options *o) {
  char code[256];
  snprintf(code, sizeof code, "os.exit(require('%s').main(...))", module);
  return run_main(argc, argv, i, i + 1, MAIN_CODE, code, o);
}

/* A bare word that is no command and no file: most likely a typo. */
static int looks_like_command (const char *word) {
  return strchr(word, '/') == NULL && strchr(word, '.') == NULL;
}

/* }====================================================== */

/*
** A process started with 0, 1 or 2 closed would hand those numbers to the
** first files and sockets it opens (libuv asserts on that, and a print
** would land in a socket): give them /dev/null.
*/
static void ensure_std_fds (void) {
  int fd;
  while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) {}
  if (fd > 2) close(fd);
}

int main (int argc, char **argv) {
  options o;
  int i, k, file_only;
  const char *cmd;
  ensure_std_fds();
  default_options(&o);
  i = parse_options(argc, argv, &o, &file_only);
  if (i < 0) return -i;
  if (file_only && i < argc) return run_file(argc, argv, i, &o);
  if (i >= argc) {
    if (isatty(0))            /* a terminal: the console */
      return run_lua_command(argc, argv, argc - 1, "ato.repl", &o);
    return run_main(argc, argv, 0, argc, MAIN_STDIN, NULL, &o);
  }
  cmd = argv[i];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "help") == 0) {
    fputs(usage_text, stdout);
    return EXIT_SUCCESS;
  }
  if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0)
    return print_version(0);
  if (strcmp(cmd, "version") == 0) {
    if (i + 2 < argc || (i + 1 < argc && strcmp(argv[i + 1], "--json") != 0))
      return usage_error("version: unknown argument '%s'", argv[argc - 1]);
    return print_version(i + 1 < argc);
  }
  if (strcmp(cmd, "run") == 0) {
    if (i + 1 >= argc) return usage_error("%s: missing script file", "run");
    return run_file(argc, argv, i + 1, &o);
  }
  if (strcmp(cmd, "-e") == 0) {
    if (i + 1 >= argc) return usage_error("%s: missing code", "-e");
    return run_main(argc, argv, i, i + 2, MAIN_CODE, argv[i + 1], &o);
  }
  if (strcmp(cmd, "-") == 0)
    return run_main(argc, argv, i, i + 1, MAIN_STDIN, NULL, &o);
  for (k = 0; lua_commands[k].name; k++)
    if (strcmp(cmd, lua_commands[k].name) == 0)
      return run_lua_command(argc, argv, i, lua_commands[k].module, &o);
  if (cmd[0] == '-') return usage_error("unknown option '%s'", cmd);
  if (access(cmd, F_OK) != 0 && looks_like_command(cmd))
    return usage_error("unknown command '%s'", cmd);
  return run_file(argc, argv, i, &o);
}

/*
** fuzz_scan.c: libFuzzer target for scan_buffer. The engine is built once
** from an embedded rule set (SendGrid, GitHub with checksum, AWS, PEM, a
** generic high-entropy password assignment, a prefilter token rule); each
** input is scanned with and without validators, and every hit must be in
** bounds, in order, with the right line and column, and (with validators)
** pass them. A scan stopped by emit must say so.
*/
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scan.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char RULES[] =
  "[sendgrid-api-key]\nname = SendGrid API key\nprovider = sendgrid\nseverity = critical\n"
  "pattern = (?<![\\w.-])(SG\\.[\\w-]{22}\\.[\\w-]{43})(?![\\w-])\nprefilter = yes\nentropy = 4.0\n"
  "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n"
  "[github-token]\nname = GitHub token\nprovider = github\nseverity = high\n"
  "pattern = \\b(gh[pousr]_[A-Za-z0-9]{36})\\b\nvalidator = github_crc32\n"
  "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n"
  "[npm-token]\nname = npm token\nprovider = npm\nseverity = high\n"
  "pattern = \\b(npm_[A-Za-z0-9]{36})\\b\nvalidator = npm_crc32\n"
  "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n"
  "[aws-access-key-id]\nname = AWS access key id\nprovider = aws\nseverity = high\n"
  "pattern = \\b((?:AKIA|ASIA)[0-9A-Z]{16})\\b\n"
  "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n"
  "[private-key-pem]\nname = Private key\nprovider = generic\nseverity = critical\n"
  "pattern = (-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----[\\s\\S]*?"
  "-----END (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----)\nwindow = 8192\n"
  "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n"
  "[generic-password]\nname = Password assignment\nprovider = generic\nseverity = medium\n"
  "pattern = (?i)\\b(?:password|passwd|pwd|secret)\\s*[:=]\\s*[\"']([^\"'\\s]{8,64})[\"']\n"
  "entropy = 3.0\nexample = 1\nexample = 2\nnegative = 3\nnegative = 4\n"
  "[generic-api-token]\nname = Generic API token\nprovider = generic\nseverity = medium\n"
  "pattern = (?i)\\b(?:api[_-]?key|token)[ \\t]*[:=][ \\t]*[\"']?(?=[a-z]*[0-9])"
  "([a-z0-9]{32,40})(?![a-z0-9])\nprefilter = yes\nentropy = 3.5\n"
  "example = 1\nexample = 2\nnegative = 3\nnegative = 4\n";

static scan_engine *engine;
static scan_ctx *ctx;

typedef struct state {
  int validators;
  size_t n, stop_after;
  size_t prev_start, prev_end, prev_rule;
} state;

static int passes (const scan_hit *h, const char *data) {
  const scan_rule *r = scan_engine_rule(engine, h->rule);
  const char *s = data + h->start;
  size_t n = h->end - h->start;
  if (r->entropy > 0 && scan_entropy(s, n) < r->entropy) return 0;
  if (r->validator && strcmp(r->validator, "github_crc32") == 0 &&
      !scan_check_github_crc32(s, n))
    return 0;
  if (r->validator && strcmp(r->validator, "npm_crc32") == 0 &&
      !scan_check_npm_crc32(s, n))
    return 0;
  return !scan_is_placeholder(s, n);
}

static int check_hit (void *ud, const scan_hit *h, const char *data, size_t len) {
  state *st = ud;
  size_t i, line = 1, ls = 0;
  if (h->rule >= scan_engine_nrules(engine)) abort();
  if (!(h->start < h->end && h->end <= len)) abort();
  if (!(h->match_start <= h->start && h->end <= h->match_end && h->match_end <= len))
    abort();
  if (!(h->line_start <= h->start && h->start <= h->line_end && h->line_end <= len))
    abort();
  if (h->line_end < len && data[h->line_end] != '\n') abort();
  for (i = 0; i < h->start; i++)
    if (data[i] == '\n') { line++; ls = i + 1; }
  if (h->line != line || h->line_start != ls || h->column != h->start - ls + 1) abort();
  if (memchr(data + ls, '\n', h->line_end - ls) != NULL) abort();
  if (st->n > 0 && (h->start < st->prev_start ||
      (h->start == st->prev_start && (h->end < st->prev_end ||
       (h->end == st->prev_end && h->rule <= st->prev_rule)))))
    abort();
  if (st->validators && !passes(h, data)) abort();
  st->prev_start = h->start; st->prev_end = h->end; st->prev_rule = h->rule;
  st->n++;
  return st->stop_after != 0 && st->n == st->stop_after;
}

static void init_engine (void) {
  scan_ruleset rs;
  char err[256];
  scan_rules_init(&rs);
  if (scan_rules_parse(&rs, RULES, strlen(RULES), "fuzz.rules", err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    abort();
  }
  engine = scan_engine_new(&rs, NULL, err, sizeof err);
  scan_rules_free(&rs);
  if (engine == NULL) { fprintf(stderr, "%s\n", err); abort(); }
  if ((ctx = scan_ctx_new(engine)) == NULL) abort();
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  /* a copy of exactly size bytes, so ASan sees any read past the end */
  char *buf = malloc(size ? size : 1);
  scan_options opt;
  state st;
  size_t with_validators;
  if (engine == NULL) init_engine();
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  memset(&st, 0, sizeof st);
  st.validators = 1;
  opt.no_validators = 0;
  if (scan_buffer(ctx, buf, size, &opt, check_hit, &st) != 0) abort();
  with_validators = st.n;
  memset(&st, 0, sizeof st);
  opt.no_validators = 1;
  if (scan_buffer(ctx, buf, size, &opt, check_hit, &st) != 0) abort();
  if (st.n < with_validators) abort();
  if (st.n > 0) {
    memset(&st, 0, sizeof st);
    st.stop_after = 1;
    if (scan_buffer(ctx, buf, size, &opt, check_hit, &st) != 1) abort();
    if (st.n != 1) abort();
  }
  free(buf);
  return 0;
}

/*
** fuzz_rules.c: libFuzzer target for the rule-file parser. Any input must
** parse or fail with one non-empty line of error and the set unchanged;
** parsing the same text again must fail on the duplicate ids; a parsed
** set must copy faithfully and hold only complete rules.
*/
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void check_rule (const scan_rule *r) {
  size_t i;
  if (!r->id || !r->name || !r->provider || !r->severity || !r->pattern ||
      !r->file || r->line < 1)
    abort();
  if (r->nexamples < 2 || r->nnegatives < 2) abort();
  if (r->entropy < 0 || r->entropy > 8) abort();
  if (r->window > SCAN_MAX_WINDOW) abort();
  for (i = 0; r->id[i]; i++)
    if (!((r->id[i] >= 'a' && r->id[i] <= 'z') ||
          (r->id[i] >= '0' && r->id[i] <= '9') || r->id[i] == '-'))
      abort();
  for (i = 0; i < r->nexamples; i++)
    if (r->examples[i].data[r->examples[i].len] != '\0') abort();
}

/* Both absent, or both present and equal. */
static int same_optional (const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

static void check_error (const char *err) {
  if (err[0] == '\0' || strchr(err, '\n') != NULL) abort();
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  scan_ruleset rs, copy;
  char err[256];
  size_t i, n;
  scan_rules_init(&rs);
  if (scan_rules_parse(&rs, text, size, "fuzz.rules", err, sizeof err) != 0) {
    check_error(err);
    if (rs.n != 0 || rs.rules != NULL) abort();
    return 0;
  }
  n = rs.n;
  for (i = 0; i < n; i++) check_rule(&rs.rules[i]);
  if (scan_rules_parse(&rs, text, size, "again.rules", err, sizeof err) == 0) {
    if (n > 0) abort();                 /* every id is a duplicate now */
  } else {
    check_error(err);
  }
  if (rs.n != n) abort();
  scan_rules_init(&copy);
  if (scan_rules_copy(&copy, &rs) == 0) {
    if (copy.n != n) abort();
    for (i = 0; i < n; i++)
      if (strcmp(copy.rules[i].id, rs.rules[i].id) != 0 ||
          strcmp(copy.rules[i].pattern, rs.rules[i].pattern) != 0 ||
          !same_optional(copy.rules[i].trigger, rs.rules[i].trigger) ||
          copy.rules[i].nexamples != rs.rules[i].nexamples)
        abort();
  }
  scan_rules_free(&copy);
  scan_rules_free(&rs);
  return 0;
}

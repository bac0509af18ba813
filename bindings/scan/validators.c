/*
** validators.c — checks a candidate secret must pass before it is
** reported: Shannon entropy, the CRC32 checksum inside GitHub and npm
** tokens, and placeholder stop-words. Pure functions, no allocation, no
** libm (the fuzzers link without it), so they are safe from any thread.
*/
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "scan.h"

/* {====================================================== entropy */

#define LN2 0.69314718055994530942

/*
** log2 of x > 0 without libm: x = m * 2^e with m in [1, 2), and
** ln m = 2 atanh(t) = 2 (t + t^3/3 + t^5/5 + ...) with t = (m-1)/(m+1)
** in [0, 1/3), so the series converges fast (t^2 < 1/9).
*/
static double log2_of (double x) {
  int e = 0, k;
  double t, t2, term, sum = 0;
  while (x >= 2.0) { x *= 0.5; e++; }
  while (x < 1.0) { x *= 2.0; e--; }
  t = (x - 1.0) / (x + 1.0);
  t2 = t * t;
  term = t;
  for (k = 1; k < 64 && term > 1e-20; k += 2) {
    sum += term / k;
    term *= t2;
  }
  return e + 2.0 * sum / LN2;
}

/* H = -sum p log2 p = log2 n - (1/n) sum c log2 c, over byte counts c. */
double scan_entropy (const char *s, size_t len) {
  size_t count[256] = {0};
  size_t i;
  double sum = 0;
  if (len == 0) return 0;
  for (i = 0; i < len; i++) count[(unsigned char)s[i]]++;
  for (i = 0; i < 256; i++)
    if (count[i] > 1) sum += (double)count[i] * log2_of((double)count[i]);
  return log2_of((double)len) - sum / (double)len;
}

/* }====================================================== */

/* {====================================================== checksums */

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as in zlib), one
   nibble at a time: a 16-entry constant table instead of 256. */
static const uint32_t CRC_NIBBLE[16] = {
  0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu,
  0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
  0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
  0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu
};

static uint32_t crc32_of (const char *s, size_t len) {
  uint32_t crc = 0xFFFFFFFFu;
  size_t i;
  for (i = 0; i < len; i++) {
    crc ^= (unsigned char)s[i];
    crc = (crc >> 4) ^ CRC_NIBBLE[crc & 15];
    crc = (crc >> 4) ^ CRC_NIBBLE[crc & 15];
  }
  return crc ^ 0xFFFFFFFFu;
}

static const char BASE62[] =
  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int is_base62 (unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= 'a' && ch <= 'z');
}

#define TOKEN_PREFIX 4
#define TOKEN_BODY 30
#define TOKEN_SUM 6
#define TOKEN_LEN (TOKEN_PREFIX + TOKEN_BODY + TOKEN_SUM)

/* The 36 chars after the prefix are base62 and the last 6 encode the CRC32
   of the 30 before them (62^6 > 2^32, so 6 digits always suffice). */
static int token_checksum_holds (const char *s) {
  char sum[TOKEN_SUM];
  uint32_t crc;
  int i;
  for (i = TOKEN_PREFIX; i < TOKEN_LEN; i++)
    if (!is_base62((unsigned char)s[i])) return 0;
  crc = crc32_of(s + TOKEN_PREFIX, TOKEN_BODY);
  for (i = TOKEN_SUM - 1; i >= 0; i--) {
    sum[i] = BASE62[crc % 62];
    crc /= 62;
  }
  return memcmp(sum, s + TOKEN_PREFIX + TOKEN_BODY, TOKEN_SUM) == 0;
}

int scan_check_github_crc32 (const char *s, size_t len) {
  if (len != TOKEN_LEN || s[0] != 'g' || s[1] != 'h' || s[3] != '_' ||
      strchr("pousr", s[2]) == NULL || s[2] == '\0')
    return 0;
  return token_checksum_holds(s);
}

int scan_check_npm_crc32 (const char *s, size_t len) {
  if (len != TOKEN_LEN || memcmp(s, "npm_", TOKEN_PREFIX) != 0) return 0;
  return token_checksum_holds(s);
}

/* }====================================================== */

/* {====================================================== placeholders */

static const char *const STOP_WORDS[] = {
  "example", "sample", "dummy", "placeholder", "your-api-key",
  "your_api_key", "yourapikey", "changeme", "redacted", "xxxx", NULL
};

/* "xxxx" is short enough to turn up in random text: a 1.6 KB base64 PEM
   body holds it about once in 700 keys. It counts only in secrets up to
   this long (the longer words are too unlikely by chance to matter). */
#define SHORT_WORD_MAX_SECRET 128

#define ASCENDING_RUN 8

static unsigned char lower (unsigned char ch) {
  return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch - 'A' + 'a') : ch;
}

/* Some stop-word occurs in s, ignoring case: one pass, a word is only
   compared where its first letter is. */
static int has_stop_word (const char *s, size_t len) {
  size_t i, j, k;
  for (i = 0; i < len; i++) {
    unsigned char ch = lower((unsigned char)s[i]);
    for (k = 0; STOP_WORDS[k] != NULL; k++) {
      const char *w = STOP_WORDS[k];
      if ((unsigned char)w[0] != ch) continue;
      if (w[4] == '\0' && len > SHORT_WORD_MAX_SECRET) continue;  /* "xxxx" */
      for (j = 1; w[j] && i + j < len && lower((unsigned char)s[i + j]) == (unsigned char)w[j]; j++)
        ;
      if (w[j] == '\0') return 1;
    }
  }
  return 0;
}

/* b follows a in the sequences 0123456789 (wrapping) or a..z */
static int follows (unsigned char a, unsigned char b) {
  a = lower(a); b = lower(b);
  if (a >= '0' && a <= '9') return b == (a == '9' ? '0' : a + 1);
  return a >= 'a' && a < 'z' && b == a + 1;
}

static int has_ascending_run (const char *s, size_t len) {
  size_t i, run = 1;
  for (i = 1; i < len; i++) {
    run = follows((unsigned char)s[i - 1], (unsigned char)s[i]) ? run + 1 : 1;
    if (run >= ASCENDING_RUN) return 1;
  }
  return 0;
}

/* One byte makes up more than half of s: "aaaaaaaa", "0000-0000-0000". */
static int mostly_one_byte (const char *s, size_t len) {
  size_t count[256] = {0};
  size_t i, top = 0;
  for (i = 0; i < len; i++) {
    size_t c = ++count[(unsigned char)s[i]];
    if (c > top) top = c;
  }
  return top > len / 2;
}

int scan_is_placeholder (const char *s, size_t len) {
  if (len == 0) return 1;
  return has_stop_word(s, len) || has_ascending_run(s, len) ||
         mostly_one_byte(s, len);
}

/* }====================================================== */

/*
** sha256.c: SHA-256 written from FIPS 180-4 (sections 4.1.2, 4.2.2, 5.1.1,
** 5.3.3 and 6.2). Byte order is handled with shifts, so the code does not
** depend on the host's endianness or alignment.
*/
#include "sha256.h"

#include <string.h>

/* First 32 bits of the fractional parts of the cube roots of the first
** 64 primes (FIPS 180-4, 4.2.2). */
static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
  0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
  0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

/* Initial hash value H(0): fractional parts of the square roots of the
** first 8 primes (5.3.3). */
static const uint32_t H0[8] = {
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
};

static uint32_t rotr (uint32_t x, unsigned n) {
  return (x >> n) | (x << (32 - n));
}

/* The six logical functions of 4.1.2. */
static uint32_t ch (uint32_t x, uint32_t y, uint32_t z) {
  return (x & y) ^ (~x & z);
}

static uint32_t maj (uint32_t x, uint32_t y, uint32_t z) {
  return (x & y) ^ (x & z) ^ (y & z);
}

static uint32_t big_sigma0 (uint32_t x) {
  return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}

static uint32_t big_sigma1 (uint32_t x) {
  return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}

static uint32_t small_sigma0 (uint32_t x) {
  return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3);
}

static uint32_t small_sigma1 (uint32_t x) {
  return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10);
}

static uint32_t load_be32 (const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
         (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32 (unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* Process one 512-bit block (6.2.2, steps 1 to 4). */
static void compress (uint32_t h[8], const unsigned char block[64]) {
  uint32_t w[64], a, b, c, d, e, f, g, hh;
  int t;
  for (t = 0; t < 16; t++)
    w[t] = load_be32(block + 4 * t);
  for (t = 16; t < 64; t++)
    w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
  a = h[0]; b = h[1]; c = h[2]; d = h[3];
  e = h[4]; f = h[5]; g = h[6]; hh = h[7];
  for (t = 0; t < 64; t++) {
    uint32_t t1 = hh + big_sigma1(e) + ch(e, f, g) + K[t] + w[t];
    uint32_t t2 = big_sigma0(a) + maj(a, b, c);
    hh = g; g = f; f = e; e = d + t1;
    d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d;
  h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void ato_sha256_init (ato_sha256_ctx *ctx) {
  memcpy(ctx->h, H0, sizeof H0);
  ctx->total = 0;
  ctx->used = 0;
}

void ato_sha256_update (ato_sha256_ctx *ctx, const void *data, size_t len) {
  const unsigned char *p = data;
  if (len == 0)
    return;                               /* data may be NULL */
  ctx->total += len;
  if (ctx->used > 0) {                    /* top up the pending block first */
    size_t take = 64 - ctx->used < len ? 64 - ctx->used : len;
    memcpy(ctx->block + ctx->used, p, take);
    ctx->used += take;
    p += take;
    len -= take;
    if (ctx->used < 64)
      return;
    compress(ctx->h, ctx->block);
    ctx->used = 0;
  }
  for (; len >= 64; p += 64, len -= 64)   /* whole blocks straight from input */
    compress(ctx->h, p);
  if (len > 0)
    memcpy(ctx->block, p, len);
  ctx->used = len;
}

/* Padding (5.1.1): a 1 bit, zeros up to 56 mod 64 bytes, then the
** message length in bits as a 64-bit big-endian integer. */
void ato_sha256_final (ato_sha256_ctx *ctx, unsigned char out[32]) {
  uint64_t bits = ctx->total * 8;
  int i;
  ctx->block[ctx->used++] = 0x80;
  if (ctx->used > 56) {                   /* no room for the length here */
    memset(ctx->block + ctx->used, 0, 64 - ctx->used);
    compress(ctx->h, ctx->block);
    ctx->used = 0;
  }
  memset(ctx->block + ctx->used, 0, 56 - ctx->used);
  store_be32(ctx->block + 56, (uint32_t)(bits >> 32));
  store_be32(ctx->block + 60, (uint32_t)bits);
  compress(ctx->h, ctx->block);
  for (i = 0; i < 8; i++)
    store_be32(out + 4 * i, ctx->h[i]);
  memset(ctx, 0, sizeof *ctx);            /* do not leave message bytes behind */
}

void ato_sha256 (const void *data, size_t len, unsigned char out[32]) {
  ato_sha256_ctx ctx;
  ato_sha256_init(&ctx);
  ato_sha256_update(&ctx, data, len);
  ato_sha256_final(&ctx, out);
}

void ato_sha256_hex (const void *data, size_t len, char out[65]) {
  static const char digits[] = "0123456789abcdef";
  unsigned char md[32];
  int i;
  ato_sha256(data, len, md);
  for (i = 0; i < 32; i++) {
    out[2 * i] = digits[md[i] >> 4];
    out[2 * i + 1] = digits[md[i] & 0x0f];
  }
  out[64] = '\0';
}

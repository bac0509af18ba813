/*
** sha256.h: SHA-256 (FIPS 180-4) in portable C11, no external library.
** Used for secret fingerprints (see redact.h); not constant-time, so do not
** use it to compare secrets against attacker-controlled input.
*/
#ifndef ATO_SHA256_H
#define ATO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define ATO_SHA256_DIGEST_LEN 32
#define ATO_SHA256_HEX_LEN 64          /* hex digits, without the NUL */

/* State of an incremental hash; treat the fields as private. */
typedef struct ato_sha256_ctx {
  uint32_t h[8];              /* intermediate hash value H(i) */
  uint64_t total;             /* bytes hashed so far (messages < 2^61 bytes) */
  unsigned char block[64];    /* pending bytes of the current block */
  size_t used;                /* bytes in block, 0..63 */
} ato_sha256_ctx;

/* Start a new hash in ctx. */
void ato_sha256_init (ato_sha256_ctx *ctx);

/* Feed len bytes of data (data may be NULL when len is 0). */
void ato_sha256_update (ato_sha256_ctx *ctx, const void *data, size_t len);

/* Finish: write the 32-byte digest to out; ctx must be re-initialised to reuse. */
void ato_sha256_final (ato_sha256_ctx *ctx, unsigned char out[32]);

/* One-shot digest of data[0, len). */
void ato_sha256 (const void *data, size_t len, unsigned char out[32]);

/* One-shot digest as 64 lowercase hex digits plus a NUL. */
void ato_sha256_hex (const void *data, size_t len, char out[65]);

#endif

/*
** test_sha256.c: SHA-256 against the FIPS 180-4 examples (NIST CSRC
** "Examples with Intermediate Values") and the padding boundaries.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sha256.h"

static const char MSG_448[] =
  "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char MSG_896[] =
  "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
  "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

static void digest_to_hex (const unsigned char md[32], char hex[65]) {
  int i;
  for (i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void check_one_shot (const char *msg, size_t len, const char *want) {
  char hex[65];
  unsigned char md[32];
  ato_sha256_hex(msg, len, hex);
  assert_string_equal(hex, want);
  ato_sha256(msg, len, md);
  digest_to_hex(md, hex);
  assert_string_equal(hex, want);
}

static void test_empty (void **state) {
  (void)state;
  check_one_shot("", 0,
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  check_one_shot(NULL, 0,
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc (void **state) {
  (void)state;
  check_one_shot("abc", 3,
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_448_bits (void **state) {
  (void)state;
  assert_int_equal(strlen(MSG_448) * 8, 448);
  check_one_shot(MSG_448, strlen(MSG_448),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bits (void **state) {
  (void)state;
  assert_int_equal(strlen(MSG_896) * 8, 896);
  check_one_shot(MSG_896, strlen(MSG_896),
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a', fed in pieces of odd, changing sizes so that updates
** start and end at every offset within a block. */
static void test_million_a_incremental (void **state) {
  static const size_t sizes[] = {1, 3, 7, 13, 31, 63, 64, 65, 127, 1000, 4099};
  char chunk[4099];
  unsigned char md[32];
  char hex[65];
  ato_sha256_ctx ctx;
  size_t done = 0, k = 0;
  (void)state;
  memset(chunk, 'a', sizeof chunk);
  ato_sha256_init(&ctx);
  while (done < 1000000) {
    size_t n = sizes[k++ % (sizeof sizes / sizeof sizes[0])];
    if (n > 1000000 - done)
      n = 1000000 - done;
    ato_sha256_update(&ctx, chunk, n);
    done += n;
  }
  ato_sha256_final(&ctx, md);
  digest_to_hex(md, hex);
  assert_string_equal(hex,
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the padding boundary (55 fits the length in one block,
** 56 needs a second); digests from coreutils sha256sum. */
static void test_padding_boundaries (void **state) {
  static const struct { size_t len; const char *hex; } cases[] = {
    {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
    {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
    {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
    {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
    {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
  };
  char a[65];
  size_t k;
  (void)state;
  memset(a, 'a', sizeof a);
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++)
    check_one_shot(a, cases[k].len, cases[k].hex);
}

/* Splitting a message anywhere gives the one-shot digest. */
static void test_incremental_matches_one_shot (void **state) {
  unsigned char whole[32], parts[32];
  size_t len = strlen(MSG_896), cut;
  (void)state;
  ato_sha256(MSG_896, len, whole);
  for (cut = 0; cut <= len; cut++) {
    ato_sha256_ctx ctx;
    ato_sha256_init(&ctx);
    ato_sha256_update(&ctx, MSG_896, cut);
    ato_sha256_update(&ctx, NULL, 0);
    ato_sha256_update(&ctx, MSG_896 + cut, len - cut);
    ato_sha256_final(&ctx, parts);
    assert_memory_equal(whole, parts, 32);
  }
}

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_abc),
    cmocka_unit_test(test_448_bits),
    cmocka_unit_test(test_896_bits),
    cmocka_unit_test(test_million_a_incremental),
    cmocka_unit_test(test_padding_boundaries),
    cmocka_unit_test(test_incremental_matches_one_shot),
  };
  return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}

/*
** test_timerheap.c — the deadline heap on its own: ordering, FIFO among
** equal deadlines, removal from anywhere, pop_due against a clock.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "timerheap.h"

#define N 20000

static ato_timer nodes[N];

static uint64_t next_random (uint64_t *state) {
  *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
  return *state >> 33;
}

static void pops_in_deadline_order (void **ctx) {
  ato_timerheap h;
  uint64_t seed = 7, last = 0;
  size_t i;
  (void)ctx;
  ato_timerheap_init(&h);
  for (i = 0; i < N; i++)
    assert_int_equal(ato_timerheap_push(&h, &nodes[i], next_random(&seed) % 1000), 0);
  assert_int_equal(h.count, N);
  for (i = 0; i < N; i++) {
    ato_timer *t = ato_timerheap_pop_due(&h, UINT64_MAX);
    assert_non_null(t);
    assert_true(t->when >= last);
    assert_false(ato_timer_active(t));
    last = t->when;
  }
  assert_null(ato_timerheap_peek(&h));
  ato_timerheap_free(&h);
}

static void equal_deadlines_fire_fifo (void **ctx) {
  ato_timerheap h;
  size_t i;
  (void)ctx;
  ato_timerheap_init(&h);
  for (i = 0; i < 100; i++) ato_timerheap_push(&h, &nodes[i], 5);
  for (i = 0; i < 100; i++) assert_ptr_equal(ato_timerheap_pop_due(&h, 5), &nodes[i]);
  ato_timerheap_free(&h);
}

static void pop_due_respects_now (void **ctx) {
  ato_timerheap h;
  (void)ctx;
  ato_timerheap_init(&h);
  ato_timerheap_push(&h, &nodes[0], 10);
  ato_timerheap_push(&h, &nodes[1], 20);
  assert_null(ato_timerheap_pop_due(&h, 9));
  assert_ptr_equal(ato_timerheap_pop_due(&h, 10), &nodes[0]);
  assert_null(ato_timerheap_pop_due(&h, 19));
  assert_ptr_equal(ato_timerheap_pop_due(&h, 25), &nodes[1]);
  assert_null(ato_timerheap_pop_due(&h, 100));
  ato_timerheap_free(&h);
}

/* Removing every third node from the middle keeps the rest in order. */
static void remove_from_anywhere (void **ctx) {
  ato_timerheap h;
  uint64_t seed = 99, last = 0;
  size_t i, left = 0;
  (void)ctx;
  ato_timerheap_init(&h);
  for (i = 0; i < N; i++) ato_timerheap_push(&h, &nodes[i], next_random(&seed) % 5000);
  for (i = 0; i < N; i += 3) ato_timerheap_remove(&h, &nodes[i]);
  for (i = 0; i < N; i += 3) {
    assert_false(ato_timer_active(&nodes[i]));
    ato_timerheap_remove(&h, &nodes[i]);  /* idempotent */
  }
  for (i = 0; i < N; i++) left += (i % 3) != 0;
  assert_int_equal(h.count, left);
  while (h.count) {
    ato_timer *t = ato_timerheap_pop_due(&h, UINT64_MAX);
    assert_true(t->when >= last);
    assert_true((size_t)(t - nodes) % 3 != 0);
    last = t->when;
  }
  ato_timerheap_free(&h);
}

static void remove_last_and_only (void **ctx) {
  ato_timerheap h;
  (void)ctx;
  ato_timerheap_init(&h);
  ato_timerheap_push(&h, &nodes[0], 1);
  ato_timerheap_remove(&h, &nodes[0]);
  assert_int_equal(h.count, 0);
  assert_null(ato_timerheap_peek(&h));
  ato_timerheap_push(&h, &nodes[0], 1);
  ato_timerheap_push(&h, &nodes[1], 2);
  ato_timerheap_remove(&h, &nodes[1]);
  assert_ptr_equal(ato_timerheap_peek(&h), &nodes[0]);
  ato_timerheap_free(&h);
}

int main (void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(pops_in_deadline_order),
    cmocka_unit_test(equal_deadlines_fire_fifo),
    cmocka_unit_test(pop_due_respects_now),
    cmocka_unit_test(remove_from_anywhere),
    cmocka_unit_test(remove_last_and_only),
  };
  return cmocka_run_group_tests_name("timerheap", tests, NULL, NULL);
}

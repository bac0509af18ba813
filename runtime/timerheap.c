/*
** timerheap.c — see timerheap.h. Index arithmetic is 0-based inside the
** array; nodes store index + 1 so that 0 can mean "not in the heap".
*/
#include "timerheap.h"

#include <stdlib.h>

void ato_timerheap_init (ato_timerheap *h) {
  h->nodes = NULL;
  h->count = h->cap = 0;
  h->next_seq = 0;
}

void ato_timerheap_free (ato_timerheap *h) {
  free(h->nodes);
  ato_timerheap_init(h);
}

static int earlier (const ato_timer *a, const ato_timer *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void place (ato_timerheap *h, size_t i, ato_timer *t) {
  h->nodes[i] = t;
  t->index = i + 1;
}

static void sift_up (ato_timerheap *h, size_t i) {
  ato_timer *t = h->nodes[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(t, h->nodes[parent])) break;
    place(h, i, h->nodes[parent]);
    i = parent;
  }
  place(h, i, t);
}

static void sift_down (ato_timerheap *h, size_t i) {
  ato_timer *t = h->nodes[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= h->count) break;
    if (child + 1 < h->count && earlier(h->nodes[child + 1], h->nodes[child]))
      child++;
    if (!earlier(h->nodes[child], t)) break;
    place(h, i, h->nodes[child]);
    i = child;
  }
  place(h, i, t);
}

static int grow (ato_timerheap *h) {
  size_t cap = h->cap ? h->cap * 2 : 64;
  ato_timer **nodes = realloc(h->nodes, cap * sizeof *nodes);
  if (nodes == NULL) return -1;
  h->nodes = nodes;
  h->cap = cap;
  return 0;
}

int ato_timerheap_push (ato_timerheap *h, ato_timer *t, uint64_t when) {
  if (h->count == h->cap && grow(h) != 0) return -1;
  t->when = when;
  t->seq = h->next_seq++;
  place(h, h->count++, t);
  sift_up(h, h->count - 1);
  return 0;
}

void ato_timerheap_remove (ato_timerheap *h, ato_timer *t) {
  size_t i;
  ato_timer *last;
  if (t->index == 0) return;
  i = t->index - 1;
  t->index = 0;
  last = h->nodes[--h->count];
  if (i == h->count) return;  /* t was the last node */
  place(h, i, last);
  /* the moved node may belong above or below its new spot */
  if (i > 0 && earlier(last, h->nodes[(i - 1) / 2])) sift_up(h, i);
  else sift_down(h, i);
}

ato_timer *ato_timerheap_peek (const ato_timerheap *h) {
  return h->count ? h->nodes[0] : NULL;
}

ato_timer *ato_timerheap_pop_due (ato_timerheap *h, uint64_t now) {
  ato_timer *t = ato_timerheap_peek(h);
  if (t == NULL || t->when > now) return NULL;
  ato_timerheap_remove(h, t);
  return t;
}

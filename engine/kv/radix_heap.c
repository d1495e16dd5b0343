/* The LRU heap: a binary min-heap on last_access over the evictable leaves, so that eviction
 * finds the least recently used one in O(log n) and a parent that becomes a leaf joins in
 * O(log n) too.
 *
 * Invariants (radix_check.c verifies them as R6):
 *   a node is in the heap exactly when radix_heap_wants says so, heap[n->heap_idx] == n, and
 *   no entry is older than its heap parent. Room for every node is reserved when the node is
 *   made, so nothing here allocates or fails. */
#include "error.h"
#include "radix_tree.h"

int radix_heap_wants(const yaie_radix_node *n) {
  return n->parent && n->n_kids == 0 && n->lock_ref == 0;
}

static void place(yaie_radix *t, yaie_radix_node *n, int i) {
  t->heap[i] = n;
  n->heap_idx = i;
}

static void sift_up(yaie_radix *t, int i) {
  yaie_radix_node *n = t->heap[i];
  while (i > 0) {
    int up = (i - 1) / 2;
    if (t->heap[up]->last_access <= n->last_access)
      break;
    place(t, t->heap[up], i);
    i = up;
  }
  place(t, n, i);
}

static void sift_down(yaie_radix *t, int i) {
  yaie_radix_node *n = t->heap[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= t->heap_n)
      break;
    if (c + 1 < t->heap_n && t->heap[c + 1]->last_access < t->heap[c]->last_access)
      c++;
    if (n->last_access <= t->heap[c]->last_access)
      break;
    place(t, t->heap[c], i);
    i = c;
  }
  place(t, n, i);
}

static void heap_remove(yaie_radix *t, yaie_radix_node *n) {
  int i = n->heap_idx;
  yaie_radix_node *last = t->heap[--t->heap_n];
  n->heap_idx = -1;
  if (last == n)
    return;
  place(t, last, i);
  sift_up(t, i);
  sift_down(t, last->heap_idx);
}

void radix_heap_sync(yaie_radix *t, yaie_radix_node *n) {
  int wants = radix_heap_wants(n);
  if (wants && n->heap_idx < 0) {
    place(t, n, t->heap_n++);
    sift_up(t, n->heap_idx);
  } else if (!wants && n->heap_idx >= 0) {
    heap_remove(t, n);
  }
}

void radix_heap_fix(yaie_radix *t, yaie_radix_node *n) {
  if (n->heap_idx < 0)
    return;
  sift_up(t, n->heap_idx);
  sift_down(t, n->heap_idx);
}

yaie_radix_node *radix_heap_pop(yaie_radix *t) {
  if (t->heap_n == 0)
    return NULL;
  yaie_radix_node *n = t->heap[0];
  heap_remove(t, n);
  return n;
}

yaie_status radix_heap_check(const yaie_radix *t) {
  if (t->heap_n < 0 || t->heap_n > t->heap_cap)
    return yaie_fail(YAIE_ERR_STATE, "radix check (R6): heap of %d entries in %d slots", t->heap_n,
                     t->heap_cap);
  for (int i = 0; i < t->heap_n; i++) {
    const yaie_radix_node *n = t->heap[i];
    if (n->heap_idx != i || !n->serial)
      return yaie_fail(YAIE_ERR_STATE, "radix check (R6): heap slot %d holds a node that says %d",
                       i, n->heap_idx);
    if (!radix_heap_wants(n))
      return yaie_fail(YAIE_ERR_STATE,
                       "radix check (R6): heap slot %d holds a node that is not "
                       "an unlocked leaf",
                       i);
    if (i > 0 && t->heap[(i - 1) / 2]->last_access > n->last_access)
      return yaie_fail(YAIE_ERR_STATE, "radix check (R6): heap order broken at slot %d", i);
  }
  return YAIE_OK;
}

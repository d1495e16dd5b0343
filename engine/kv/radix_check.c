/* The radix tree's invariant check (the R numbers are those of radix_tree.c, radix_node.c and
 * radix_heap.c) and the read-only walking API used by dumps and tests. The check visits every
 * node once and every page once: O(nodes + pages), meant for specs and for an idle engine. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "radix_tree.h"

typedef struct check_sums {
  int64_t nodes, roots, cached, evictable, protected_;
  uint8_t *seen; /* per page of the pool: held by a node already */
} check_sums;

static yaie_status fail_at(const yaie_radix_node *n, const char *rule, const char *what) {
  return yaie_fail(YAIE_ERR_STATE, "radix check (%s): node %llu (%d tokens) %s", rule,
                   (unsigned long long)(n->serial & ((1ull << RADIX_SERIAL_BITS) - 1)), n->len,
                   what);
}

/* R1 and the parts of R3 and R4 that relate a node to its children. */
static yaie_status check_kids(const yaie_radix_node *n) {
  int count = 0;
  int64_t lock_sum = n->own_locks;
  if (n->kid_cap & (n->kid_cap - 1) || (n->kid_cap == 0) != (n->kids == NULL))
    return fail_at(n, "R1", "has a child table whose size is not a power of two");
  if (n->n_kids * 4 > n->kid_cap * 3)
    return fail_at(n, "R1", "has a child table over 3/4 full");
  for (int i = 0; i < n->kid_cap; i++) {
    const yaie_radix_node *k = n->kids[i];
    if (!k)
      continue;
    count++;
    if (!k->serial || k->parent != n)
      return fail_at(n, "R1", "lists a child that is free or names another parent");
    if (k->last_access > n->last_access)
      return fail_at(n, "R4", "is older than one of its children");
    lock_sum += k->lock_ref;
  }
  if (count != n->n_kids)
    return fail_at(n, "R1", "counts its children wrong");
  if (n->own_locks < 0 || lock_sum != n->lock_ref)
    return fail_at(n, "R3", "has a lock count that is not its own locks plus its children's");
  return YAIE_OK;
}

/* R2: shape and the parent's table; R1: the parent finds this node by its first page. */
static yaie_status check_shape(const yaie_radix *t, const yaie_radix_node *n) {
  if (n->serial >> RADIX_SERIAL_BITS != t->id)
    return fail_at(n, "R8", "has a serial of another tree");
  if (!n->parent)
    return n->len == 0 && !n->tokens ? YAIE_OK : fail_at(n, "R2", "is a root with tokens");
  if (n->len <= 0 || n->len % t->page_size)
    return fail_at(n, "R2", "is not a whole number of pages");
  if (!n->parent->serial)
    return fail_at(n, "R2", "has a freed parent");
  if (n->key_hash != radix_page_hash(n->tokens, t->page_size))
    return fail_at(n, "R1", "has a stale first-page hash");
  if (radix_kid_find(t, n->parent, n->tokens, n->key_hash) != n)
    return fail_at(n, "R1", "cannot be found under its parent by its first page");
  return YAIE_OK;
}

/* R5: the pages of one node against the pool. */
static yaie_status check_pages(const yaie_radix *t, const yaie_radix_node *n, check_sums *s) {
  int n_pages = yaie_pool_n_pages(t->pool);
  for (int j = 0; j < n->len / t->page_size; j++) {
    int32_t p = node_pages(n)[j];
    if (p < 0 || p >= n_pages)
      return fail_at(n, "R5", "holds a page id out of range");
    if (s->seen[p]++)
      return fail_at(n, "R5", "holds a page that the tree holds elsewhere too");
    int flags = yaie_pool_flags(t->pool, p);
    if (yaie_pool_refcount(t->pool, p) == 0 || !(flags & YAIE_PAGE_CACHED))
      return fail_at(n, "R5", "holds a page the pool has as free or not cached");
    if (!(flags & YAIE_PAGE_PROTECTED) != (n->lock_ref == 0))
      return fail_at(n, "R5", "holds a page whose protection disagrees with the node's locks");
  }
  return YAIE_OK;
}

static yaie_status check_node(const yaie_radix *t, const yaie_radix_node *n, check_sums *s) {
  YAIE_TRY(check_shape(t, n));
  YAIE_TRY(check_kids(n));
  if ((n->heap_idx >= 0) != radix_heap_wants(n))
    return fail_at(n, "R6",
                   radix_heap_wants(n) ? "is an unlocked leaf missing from the heap"
                                       : "is in the heap but not an unlocked leaf");
  if (n->heap_idx >= 0 && (n->heap_idx >= t->heap_n || t->heap[n->heap_idx] != n))
    return fail_at(n, "R6", "has a heap position that holds another node");
  if (!n->parent) {
    s->roots++;
    return YAIE_OK;
  }
  YAIE_TRY(check_pages(t, n, s));
  s->nodes++;
  s->cached += n->len;
  *(n->lock_ref ? &s->protected_ : &s->evictable) += n->len;
  return YAIE_OK;
}

/* R2's reachability: the nodes found from the roots are all the live ones, so no node hangs in
 * a cycle or under a lost parent. */
static yaie_status check_reach(const yaie_radix *t, int64_t live) {
  const yaie_radix_node **stack = malloc((size_t)(live > 0 ? live : 1) * sizeof *stack);
  int64_t top = 0, reached = 0;
  if (!stack)
    return yaie_fail(YAIE_ERR_NOMEM, "radix check: out of memory");
  for (int i = 0; i < t->root_cap; i++)
    if (t->roots[i].node && top < live)
      stack[top++] = t->roots[i].node;
  while (top > 0) {
    const yaie_radix_node *n = stack[--top];
    reached++;
    for (int i = 0; i < n->kid_cap; i++)
      if (n->kids[i] && top < live)
        stack[top++] = n->kids[i];
  }
  free(stack);
  if (reached != live)
    return yaie_fail(YAIE_ERR_STATE,
                     "radix check (R2): %lld of %lld nodes reachable from the roots",
                     (long long)reached, (long long)live);
  return YAIE_OK;
}

/* R7 and R8 (roots), R9 (bytes), and R5's total against the pool. */
static yaie_status check_sums_match(const yaie_radix *t, const check_sums *s) {
  if (s->nodes != t->nodes || s->cached != t->cached_tokens ||
      s->evictable != t->evictable_tokens || s->protected_ != t->protected_tokens)
    return yaie_fail(YAIE_ERR_STATE,
                     "radix check (R7): counted %lld nodes, %lld cached, %lld "
                     "evictable, %lld protected tokens; found %lld, %lld, %lld, %lld",
                     (long long)t->nodes, (long long)t->cached_tokens,
                     (long long)t->evictable_tokens, (long long)t->protected_tokens,
                     (long long)s->nodes, (long long)s->cached, (long long)s->evictable,
                     (long long)s->protected_);
  yaie_pool_usage u;
  yaie_pool_stats(t->pool, &u);
  if ((int64_t)u.cached * t->page_size != t->cached_tokens)
    return yaie_fail(YAIE_ERR_STATE,
                     "radix check (R5): the pool has %d cached pages for %lld "
                     "cached tokens",
                     u.cached, (long long)t->cached_tokens);
  if (s->roots != t->n_roots)
    return yaie_fail(YAIE_ERR_STATE, "radix check (R8): %lld roots for %d namespaces",
                     (long long)s->roots, t->n_roots);
  for (int i = 0; i < t->root_cap; i++) {
    const radix_root *r = &t->roots[i];
    if (r->node && (r->node->parent || radix_root_find(t, r->ns) != r->node))
      return yaie_fail(YAIE_ERR_STATE, "radix check (R8): namespace table slot %d is lost", i);
  }
  if (radix_bytes_recount(t) != t->bytes)
    return yaie_fail(YAIE_ERR_STATE, "radix check (R9): %lld bytes counted, %lld held",
                     (long long)t->bytes, (long long)radix_bytes_recount(t));
  return YAIE_OK;
}

yaie_status yaie_radix_check(const yaie_radix *t) {
  YAIE_TRY(yaie_pool_check(t->pool));
  check_sums s = {0};
  s.seen = calloc((size_t)yaie_pool_n_pages(t->pool), 1);
  if (!s.seen)
    return yaie_fail(YAIE_ERR_NOMEM, "radix check: out of memory");
  yaie_status st = YAIE_OK;
  radix_iter it = {0};
  for (yaie_radix_node *n; st == YAIE_OK && (n = radix_next_node(t, &it));)
    st = check_node(t, n, &s);
  free(s.seen);
  YAIE_TRY(st);
  YAIE_TRY(check_sums_match(t, &s));
  YAIE_TRY(check_reach(t, s.nodes + s.roots));
  return radix_heap_check(t);
}

/* ---------------------------------------------------------------------------------------------
 * Walking */

yaie_status yaie_radix_roots(const yaie_radix *t, yaie_radix_handle *out, int cap, int *n) {
  *n = 0;
  for (int i = 0; i < t->root_cap; i++)
    if (t->roots[i].node) {
      if (*n < cap)
        out[*n] = radix_handle(t->roots[i].node);
      ++*n;
    }
  return YAIE_OK;
}

static uint64_t namespace_of(const yaie_radix *t, const yaie_radix_node *root) {
  for (int i = 0; i < t->root_cap; i++)
    if (t->roots[i].node == root)
      return t->roots[i].ns;
  return 0;
}

yaie_status yaie_radix_node_info_get(const yaie_radix *t, yaie_radix_handle h,
                                     yaie_radix_node_info *out) {
  yaie_radix_node *n = NULL;
  YAIE_TRY(radix_node_from(t, h, "node info", &n));
  memset(out, 0, sizeof *out);
  out->parent = radix_handle(n->parent);
  out->tokens = n->tokens;
  out->n_tokens = n->len;
  out->pages = n->len ? node_pages(n) : NULL;
  out->n_pages = n->len / t->page_size;
  out->n_children = n->n_kids;
  out->lock_ref = n->lock_ref;
  out->own_locks = n->own_locks;
  out->last_access = n->last_access;
  const yaie_radix_node *x = n;
  for (; x->parent; x = x->parent)
    out->depth += x->len;
  out->ns = namespace_of(t, x);
  return YAIE_OK;
}

yaie_status yaie_radix_children(const yaie_radix *t, yaie_radix_handle h, yaie_radix_handle *out,
                                int cap, int *n) {
  yaie_radix_node *node = NULL;
  *n = 0;
  YAIE_TRY(radix_node_from(t, h, "children", &node));
  for (int i = 0; i < node->kid_cap; i++)
    if (node->kids[i]) {
      if (*n < cap)
        out[*n] = radix_handle(node->kids[i]);
      ++*n;
    }
  return YAIE_OK;
}

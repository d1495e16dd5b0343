/* The radix tree's operations: match, insert, lock, unlock, evict. Storage and child tables are
 * in radix_node.c, the LRU heap in radix_heap.c, the invariant check in radix_check.c.
 *
 * Invariants kept here (radix_check.c verifies each, numbered as there):
 *   R2  a root has no tokens; any other node has a whole number of pages (len % page_size == 0,
 *       len > 0), is listed by its parent under the hash of its first page, and is reachable
 *       from a root. Only whole pages enter the tree, so a node never needs cutting mid-page.
 *   R3  lock_ref == own_locks + the children's lock_ref: a lock covers its node and every
 *       ancestor, so an ancestor of a locked node is never evicted from under it.
 *   R4  last_access of a node >= each child's: match and insert stamp the whole path, so a
 *       parent that becomes a leaf is never older than the leaf that went before it.
 *   R5  every page in the tree is in range, held once, referenced, flagged CACHED in the pool,
 *       and PROTECTED exactly when its node's lock_ref > 0 (the pool's evictable count).
 *   R7  nodes, cached_tokens, evictable_tokens (lock_ref == 0) and protected_tokens
 *       (lock_ref > 0) are the sums over the nodes. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "radix_tree.h"

yaie_status yaie_radix_new(yaie_pool *pool, yaie_radix **out) {
  *out = NULL;
  yaie_radix *t = calloc(1, sizeof *t);
  if (!t)
    return yaie_fail(YAIE_ERR_NOMEM, "radix: out of memory");
  yaie_status st = yaie_pool_attach(pool);
  if (st != YAIE_OK) {
    free(t);
    return st;
  }
  t->pool = pool;
  t->page_size = yaie_pool_page_size(pool);
  t->id = radix_next_tree_id();
  t->next_serial = 1;
  t->bytes = (int64_t)sizeof *t;
  *out = t;
  return YAIE_OK;
}

void yaie_radix_free(yaie_radix *t) {
  if (!t)
    return;
  radix_free_nodes(t);
  radix_dealloc(t, t->heap, (size_t)t->heap_cap * sizeof *t->heap);
  radix_dealloc(t, t->roots, (size_t)t->root_cap * sizeof *t->roots);
  yaie_pool_detach(t->pool);
  free(t);
}

int yaie_radix_page_size(const yaie_radix *t) { return t->page_size; }

/* ---------------------------------------------------------------------------------------------
 * Walking down */

/* Where a key's path through the tree ends: after node's whole edge, plus part_len tokens into
 * the child part when the key stops or diverges inside that child's edge. */
typedef struct radix_walk {
  yaie_radix_node *node;
  int matched;
  yaie_radix_node *part;
  int part_len;
} radix_walk;

/* The common prefix of a and b[0, n), in whole pages. */
static int common_pages(const yaie_radix *t, const int32_t *a, const int32_t *b, int n) {
  if (memcmp(a, b, (size_t)n * sizeof *a) == 0)
    return n;
  int i = 0;
  while (a[i] == b[i])
    i++;
  return i - i % t->page_size;
}

static void descend(const yaie_radix *t, yaie_radix_node *root, const int32_t *tokens, int n,
                    radix_walk *w) {
  int ps = t->page_size;
  n -= n % ps;
  w->node = root;
  w->matched = 0;
  w->part = NULL;
  w->part_len = 0;
  while (w->matched < n) {
    const int32_t *key = tokens + w->matched;
    yaie_radix_node *kid = radix_kid_find(t, w->node, key, radix_page_hash(key, ps));
    if (!kid)
      return;
    int room = kid->len < n - w->matched ? kid->len : n - w->matched;
    int k = common_pages(t, kid->tokens, key, room); /* >= one page: the first page matched */
    if (k < kid->len) {
      w->part = kid;
      w->part_len = k;
      return;
    }
    w->node = kid;
    w->matched += k;
  }
}

/* Cuts n after its first k tokens: a new node with tokens [0, k) takes n's place under its
 * parent, and n keeps the rest. n keeps its identity, so a handle to it still names the node
 * ending where it did; the new node inherits n's locks (R3) and age (R4). */
static yaie_status split(yaie_radix *t, yaie_radix_node *n, int k, yaie_radix_node **upper_out) {
  int ps = t->page_size, rest_len = n->len - k;
  yaie_radix_node *upper = NULL;
  YAIE_TRY(radix_node_new(t, n->tokens, node_pages(n), k, &upper));
  int32_t *rest = radix_alloc(t, radix_data_bytes(t, rest_len));
  if (!rest || radix_kid_reserve(t, upper, 1) != YAIE_OK) {
    radix_dealloc(t, rest, radix_data_bytes(t, rest_len));
    radix_node_release(t, upper);
    return yaie_fail(YAIE_ERR_NOMEM, "radix: out of memory splitting a node");
  }
  memcpy(rest, n->tokens + k, (size_t)rest_len * sizeof *rest);
  memcpy(rest + rest_len, node_pages(n) + k / ps, (size_t)(rest_len / ps) * sizeof *rest);
  radix_dealloc(t, n->tokens, radix_data_bytes(t, n->len));
  upper->last_access = n->last_access;
  upper->lock_ref = n->lock_ref;
  radix_kid_replace(n->parent, n, upper);
  n->tokens = rest;
  n->len = rest_len;
  n->key_hash = radix_page_hash(rest, ps);
  radix_kid_add(upper, n);
  t->nodes++;
  *upper_out = upper;
  return YAIE_OK;
}

/* Follows tokens down from root, splitting where the path ends inside an edge, so that the
 * node returned ends exactly at *matched. */
static yaie_status descend_split(yaie_radix *t, yaie_radix_node *root, const int32_t *tokens, int n,
                                 yaie_radix_node **end, int *matched) {
  radix_walk w;
  descend(t, root, tokens, n, &w);
  *end = w.node;
  *matched = w.matched;
  if (w.part) {
    YAIE_TRY(split(t, w.part, w.part_len, end));
    *matched += w.part_len;
  }
  return YAIE_OK;
}

/* Stamps the path from the root to n with a new tick (R4); only n can be a leaf in the heap. */
static void touch(yaie_radix *t, yaie_radix_node *n) {
  uint64_t now = ++t->clock;
  for (yaie_radix_node *x = n; x; x = x->parent)
    x->last_access = now;
  radix_heap_fix(t, n);
}

static yaie_status check_key(const char *what, const int32_t *tokens, int n) {
  if (n < 0 || (n > 0 && !tokens))
    return yaie_fail(YAIE_ERR_ARG, "%s: %d tokens", what, n);
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Match and peek */

/* Copies the page ids of the path from the root to n, n ending at token depth. */
static void path_pages(const yaie_radix *t, const yaie_radix_node *n, int depth, int32_t *out) {
  int pos = depth / t->page_size;
  for (; n->parent; n = n->parent) {
    int np = n->len / t->page_size;
    pos -= np;
    memcpy(out + pos, node_pages(n), (size_t)np * sizeof *out);
  }
}

yaie_status yaie_radix_match(yaie_radix *t, uint64_t ns, const int32_t *tokens, int n,
                             int32_t *pages, int cap, int *n_matched, yaie_radix_handle *node) {
  yaie_radix_node *root = NULL, *end = NULL;
  *n_matched = 0;
  *node = radix_handle(NULL);
  YAIE_TRY(check_key("match", tokens, n));
  if (pages && cap < n / t->page_size)
    return yaie_fail(YAIE_ERR_ARG, "match: room for %d pages, %d tokens may need %d", cap, n,
                     n / t->page_size);
  YAIE_TRY(radix_get_root(t, ns, 1, &root));
  YAIE_TRY(descend_split(t, root, tokens, n, &end, n_matched));
  touch(t, end);
  if (pages)
    path_pages(t, end, *n_matched, pages);
  t->hit_tokens += *n_matched;
  t->miss_tokens += n - *n_matched;
  *node = radix_handle(end);
  return YAIE_OK;
}

yaie_status yaie_radix_peek(const yaie_radix *t, uint64_t ns, const int32_t *tokens, int n,
                            int *n_matched) {
  *n_matched = 0;
  YAIE_TRY(check_key("peek", tokens, n));
  yaie_radix_node *root = radix_root_find(t, ns);
  if (!root)
    return YAIE_OK;
  radix_walk w;
  descend(t, root, tokens, n, &w);
  *n_matched = w.matched + w.part_len;
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Insert. Every page is checked before anything changes, so a bad call leaves no trace. */

/* The caller's page at a place where the tree holds tree_page (-1: nothing yet). Any page but
 * the tree's own must be the caller's: in use, not cached, not listed twice (marked). */
static yaie_status check_page(yaie_radix *t, int32_t page, int32_t tree_page, int pos) {
  if (page == tree_page)
    return YAIE_OK;
  int n_pages = yaie_pool_n_pages(t->pool);
  if (page < 0 || page >= n_pages)
    return yaie_fail(YAIE_ERR_ARG,
                     "insert: page id %d (page %d of the key) is out of range [0, %d)", (int)page,
                     pos, n_pages);
  const char *why = yaie_pool_refcount(t->pool, page) == 0              ? "is free"
                    : yaie_pool_flags(t->pool, page) & YAIE_PAGE_CACHED ? "is already cached"
                    : yaie_pool_flags(t->pool, page) & YAIE_PAGE_MARK   ? "is listed twice"
                                                                        : NULL;
  if (why)
    return yaie_fail(YAIE_ERR_ARG, "insert: page id %d (page %d of the key) %s", (int)page, pos,
                     why);
  yaie_pool_set_flag(t->pool, &page, 1, YAIE_PAGE_MARK, 1);
  return YAIE_OK;
}

static yaie_status check_pages(yaie_radix *t, yaie_radix_node *root, const int32_t *tokens,
                               int full, const int32_t *pages) {
  int ps = t->page_size;
  radix_walk w;
  descend(t, root, tokens, full, &w);
  int pos = w.matched / ps;
  for (yaie_radix_node *x = w.node; x->parent; x = x->parent) {
    int np = x->len / ps;
    pos -= np;
    if (memcmp(pages + pos, node_pages(x), (size_t)np * sizeof *pages) == 0)
      continue; /* the common case: the caller's pages came from match */
    for (int j = 0; j < np; j++)
      YAIE_TRY(check_page(t, pages[pos + j], node_pages(x)[j], pos + j));
  }
  pos = w.matched / ps;
  for (int j = 0; j < w.part_len / ps; j++)
    YAIE_TRY(check_page(t, pages[pos + j], node_pages(w.part)[j], pos + j));
  for (pos += w.part_len / ps; pos < full / ps; pos++)
    YAIE_TRY(check_page(t, pages[pos], -1, pos));
  return YAIE_OK;
}

/* Drops the caller's pages that duplicate the tree's along the path ending at end (depth
 * tokens): the tree keeps its own copy. */
static void drop_duplicates(yaie_radix *t, const yaie_radix_node *end, int depth,
                            const int32_t *pages) {
  int pos = depth / t->page_size;
  for (const yaie_radix_node *x = end; x->parent; x = x->parent) {
    int np = x->len / t->page_size;
    pos -= np;
    if (memcmp(pages + pos, node_pages(x), (size_t)np * sizeof *pages) == 0)
      continue;
    for (int j = 0; j < np; j++)
      if (pages[pos + j] != node_pages(x)[j])
        yaie_pool_unref(t->pool, &pages[pos + j], 1); /* checked: the caller's, in use */
  }
}

/* Hangs a new leaf under parent; the tree takes the caller's references to its pages. */
static yaie_status add_leaf(yaie_radix *t, yaie_radix_node *parent, const int32_t *tokens,
                            const int32_t *pages, int len, yaie_radix_node **out) {
  yaie_radix_node *leaf = NULL;
  YAIE_TRY(radix_node_new(t, tokens, pages, len, &leaf));
  yaie_status st = radix_kid_reserve(t, parent, parent->n_kids + 1);
  if (st != YAIE_OK) {
    radix_node_release(t, leaf);
    return st;
  }
  radix_kid_add(parent, leaf);
  yaie_pool_set_flag(t->pool, pages, len / t->page_size, YAIE_PAGE_CACHED, 1);
  t->nodes++;
  t->cached_tokens += len;
  t->evictable_tokens += len;
  radix_heap_sync(t, parent); /* no longer a leaf */
  *out = leaf;
  return YAIE_OK;
}

yaie_status yaie_radix_insert(yaie_radix *t, uint64_t ns, const int32_t *tokens, int n,
                              const int32_t *pages, int n_pages, int *already,
                              yaie_radix_handle *node) {
  int ps = t->page_size, full = n - n % ps, matched = 0;
  yaie_radix_node *root = NULL, *end = NULL;
  *already = 0;
  if (node)
    *node = radix_handle(NULL);
  YAIE_TRY(check_key("insert", tokens, n));
  if (n_pages < full / ps || (full > 0 && !pages))
    return yaie_fail(YAIE_ERR_ARG, "insert: %d tokens fill %d pages, %d given", n, full / ps,
                     n_pages);
  YAIE_TRY(radix_get_root(t, ns, 1, &root));
  yaie_status st = check_pages(t, root, tokens, full, pages);
  yaie_pool_clear_marks(t->pool, pages, full / ps);
  YAIE_TRY(st);
  YAIE_TRY(descend_split(t, root, tokens, full, &end, &matched));
  yaie_radix_node *last = end;
  if (matched < full)
    YAIE_TRY(add_leaf(t, end, tokens + matched, pages + matched / ps, full - matched, &last));
  drop_duplicates(t, end, matched, pages);
  touch(t, last);
  radix_heap_sync(t, last);
  *already = matched;
  if (node)
    *node = radix_handle(last);
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Locks and eviction */

/* A node's lock_ref went from 0 to 1 (on) or back: its tokens change sides and its pages stop
 * or start counting as evictable in the pool (R5, R7). */
static void protect(yaie_radix *t, yaie_radix_node *x, int on) {
  if (!x->parent)
    return;
  t->evictable_tokens += on ? -x->len : x->len;
  t->protected_tokens += on ? x->len : -x->len;
  yaie_pool_set_flag(t->pool, node_pages(x), x->len / t->page_size, YAIE_PAGE_PROTECTED, on);
  radix_heap_sync(t, x);
}

yaie_status yaie_radix_lock(yaie_radix *t, yaie_radix_handle h) {
  yaie_radix_node *n = NULL;
  YAIE_TRY(radix_node_from(t, h, "lock", &n));
  for (yaie_radix_node *x = n; x; x = x->parent)
    if (x->lock_ref++ == 0)
      protect(t, x, 1);
  n->own_locks++;
  return YAIE_OK;
}

yaie_status yaie_radix_unlock(yaie_radix *t, yaie_radix_handle h) {
  yaie_radix_node *n = NULL;
  YAIE_TRY(radix_node_from(t, h, "unlock", &n));
  if (n->own_locks == 0)
    return yaie_fail(YAIE_ERR_STATE, "unlock: the node is not locked (%d locks below it)",
                     n->lock_ref);
  n->own_locks--;
  for (yaie_radix_node *x = n; x; x = x->parent)
    if (--x->lock_ref == 0)
      protect(t, x, 0);
  return YAIE_OK;
}

/* Removes an unlocked leaf; returns how many of its pages went back to the free list. */
static int drop_leaf(yaie_radix *t, yaie_radix_node *leaf) {
  yaie_radix_node *parent = leaf->parent;
  int freed = yaie_pool_uncache(t->pool, node_pages(leaf), leaf->len / t->page_size);
  t->nodes--;
  t->cached_tokens -= leaf->len;
  t->evictable_tokens -= leaf->len;
  radix_kid_remove(t, parent, leaf);
  radix_node_release(t, leaf);
  radix_heap_sync(t, parent); /* may have become an evictable leaf */
  return freed;
}

yaie_status yaie_radix_evict(yaie_radix *t, int n_pages, int *freed) {
  *freed = 0;
  if (n_pages < 0)
    return yaie_fail(YAIE_ERR_ARG, "evict: %d pages", n_pages);
  yaie_radix_node *leaf;
  while (*freed < n_pages && (leaf = radix_heap_pop(t)))
    *freed += drop_leaf(t, leaf);
  return YAIE_OK;
}

void yaie_radix_stats(const yaie_radix *t, yaie_radix_usage *out) {
  out->nodes = t->nodes;
  out->namespaces = t->n_roots;
  out->cached_tokens = t->cached_tokens;
  out->evictable_tokens = t->evictable_tokens;
  out->protected_tokens = t->protected_tokens;
  out->hit_tokens = t->hit_tokens;
  out->miss_tokens = t->miss_tokens;
  out->bytes = t->bytes;
}

/* The KV page pool: page ids, their reference counts and a free list. The page storage itself
 * belongs to the backend context; this file only decides which ids are in use.
 *
 * Invariants (yaie_pool_check verifies each, in the order listed):
 *   P1  stack[0, n_free) holds distinct ids in [0, n_pages), each with ref == 0, and every page
 *       with ref == 0 is there: a page is free exactly when nobody references it.
 *   P2  flags: PROTECTED implies CACHED, a CACHED page has ref >= 1, MARK is clear between calls.
 *   P3  evictable counts the pages whose flags are exactly CACHED (no lock covers them) and whose
 *       ref is 1 (the tree's own): the pages that eviction would give back.
 *   P4  cached counts the CACHED pages; without an attached tree there are none. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "page_pool.h"

struct yaie_pool {
  int n_pages;
  int page_size;
  size_t page_bytes;
  uint32_t *ref;  /* references per page */
  uint8_t *flags; /* YAIE_PAGE_* bits per page, set by the radix tree */
  int32_t *stack; /* the free list: stack[0, n_free), popped from the top */
  int n_free;
  int evictable; /* P3 */
  int cached;    /* P4 */
  int holds;     /* the caller's handle plus an attached tree; the pool goes at 0 */
  int has_tree;
  size_t host_bytes;
};

/* ---------------------------------------------------------------------------------------------
 * Creation */

static yaie_status page_geometry(const yaie_pool_params *p, size_t *bytes) {
  *bytes = 0;
  if (p->n_layers <= 0 && p->n_kv_heads <= 0 && p->head_dim <= 0 && p->dtype_bytes <= 0)
    return YAIE_OK;
  if (p->n_layers <= 0 || p->n_kv_heads <= 0 || p->head_dim <= 0 || p->dtype_bytes <= 0)
    return yaie_fail(YAIE_ERR_ARG,
                     "pool: a page geometry needs layers, kv_heads, head_dim and dtype "
                     "(got %d, %d, %d, %d bytes)",
                     p->n_layers, p->n_kv_heads, p->head_dim, p->dtype_bytes);
  /* K and V, every layer, every KV head, page_size tokens. */
  *bytes = 2 * (size_t)p->n_layers * (size_t)p->n_kv_heads * (size_t)p->head_dim *
           (size_t)p->dtype_bytes * (size_t)p->page_size;
  return YAIE_OK;
}

static yaie_status pool_size(const yaie_pool_params *p, size_t page_bytes, int *n_pages) {
  if (p->n_pages > 0) {
    *n_pages = p->n_pages;
    return YAIE_OK;
  }
  if (p->n_pages < 0)
    return yaie_fail(YAIE_ERR_ARG, "pool: %d pages", p->n_pages);
  if (page_bytes == 0)
    return yaie_fail(YAIE_ERR_ARG, "pool: give a number of pages, or bytes with the page geometry");
  size_t n = p->bytes / page_bytes;
  if (n == 0)
    return yaie_fail(YAIE_ERR_ARG, "pool: %zu bytes hold no page of %zu bytes", p->bytes,
                     page_bytes);
  if (n > (size_t)INT32_MAX)
    return yaie_fail(YAIE_ERR_ARG, "pool: %zu pages is more than a pool can index", n);
  *n_pages = (int)n;
  return YAIE_OK;
}

yaie_status yaie_pool_new(const yaie_pool_params *params, yaie_pool **out) {
  *out = NULL;
  if (params->page_size < 1 || params->page_size > 256)
    return yaie_fail(YAIE_ERR_ARG, "pool: page_size %d is not in 1..256", params->page_size);
  size_t page_bytes = 0;
  int n = 0;
  YAIE_TRY(page_geometry(params, &page_bytes));
  YAIE_TRY(pool_size(params, page_bytes, &n));
  yaie_pool *pool = calloc(1, sizeof *pool);
  if (!pool)
    return yaie_fail(YAIE_ERR_NOMEM, "pool: out of memory");
  pool->ref = calloc((size_t)n, sizeof *pool->ref);
  pool->flags = calloc((size_t)n, sizeof *pool->flags);
  pool->stack = malloc((size_t)n * sizeof *pool->stack);
  if (!pool->ref || !pool->flags || !pool->stack) {
    yaie_pool_free(pool);
    return yaie_fail(YAIE_ERR_NOMEM, "pool: out of memory for %d pages", n);
  }
  pool->n_pages = n;
  pool->page_size = params->page_size;
  pool->page_bytes = page_bytes;
  pool->holds = 1;
  /* Reversed, so that a fresh pool hands out 0, 1, 2, ...: easier to read in dumps. */
  for (int i = 0; i < n; i++)
    pool->stack[i] = n - 1 - i;
  pool->n_free = n;
  pool->host_bytes =
      sizeof *pool + (size_t)n * (sizeof *pool->ref + sizeof *pool->flags + sizeof *pool->stack);
  *out = pool;
  return YAIE_OK;
}

static void release_hold(yaie_pool *pool) {
  if (--pool->holds > 0)
    return;
  free(pool->ref);
  free(pool->flags);
  free(pool->stack);
  free(pool);
}

void yaie_pool_free(yaie_pool *pool) {
  if (pool)
    release_hold(pool);
}

/* ---------------------------------------------------------------------------------------------
 * References. Every change to a page's ref or flags goes through these two, which keep P3. */

static int counts_evictable(const yaie_pool *pool, int32_t p) {
  return (pool->flags[p] & (YAIE_PAGE_CACHED | YAIE_PAGE_PROTECTED)) == YAIE_PAGE_CACHED &&
         pool->ref[p] == 1;
}

static void add_ref(yaie_pool *pool, int32_t p, int delta) {
  int before = counts_evictable(pool, p);
  pool->ref[p] = (uint32_t)((int64_t)pool->ref[p] + delta);
  pool->evictable += counts_evictable(pool, p) - before;
}

static yaie_status check_range(const yaie_pool *pool, const char *what, int32_t p) {
  if (p < 0 || p >= pool->n_pages)
    return yaie_fail(YAIE_ERR_ARG, "%s: page id %d is out of range [0, %d)", what, (int)p,
                     pool->n_pages);
  return YAIE_OK;
}

yaie_status yaie_pool_alloc(yaie_pool *pool, int n, int32_t *pages) {
  if (n < 0)
    return yaie_fail(YAIE_ERR_ARG, "pool alloc: %d pages", n);
  if (n > pool->n_free)
    return yaie_fail(YAIE_ERR_NOMEM, "pool exhausted: %d pages asked, %d free of %d (%d evictable)",
                     n, pool->n_free, pool->n_pages, pool->evictable);
  for (int i = 0; i < n; i++) {
    int32_t p = pool->stack[--pool->n_free];
    add_ref(pool, p, 1);
    pages[i] = p;
  }
  return YAIE_OK;
}

yaie_status yaie_pool_ref(yaie_pool *pool, const int32_t *pages, int n) {
  /* All checked first: a page listed twice is fine, it gets two references. */
  for (int i = 0; i < n; i++) {
    YAIE_TRY(check_range(pool, "pool ref", pages[i]));
    if (pool->ref[pages[i]] == 0)
      return yaie_fail(YAIE_ERR_STATE, "pool ref: page %d is free (allocate it first)",
                       (int)pages[i]);
  }
  for (int i = 0; i < n; i++)
    add_ref(pool, pages[i], 1);
  return YAIE_OK;
}

static yaie_status unref_refusal(const yaie_pool *pool, int32_t p) {
  YAIE_TRY(check_range(pool, "pool free", p));
  if (pool->ref[p] == 0)
    return yaie_fail(YAIE_ERR_STATE, "pool free: page %d is already free", (int)p);
  if ((pool->flags[p] & YAIE_PAGE_CACHED) && pool->ref[p] == 1)
    return yaie_fail(YAIE_ERR_STATE,
                     "pool free: page %d is held only by the radix cache "
                     "(evict it from the tree instead)",
                     (int)p);
  return YAIE_OK;
}

/* Undoes pages[0, i) of an unref, newest first, so that the pages it pushed leave from the top. */
static void unref_rollback(yaie_pool *pool, const int32_t *pages, int i) {
  while (i-- > 0) {
    if (pool->ref[pages[i]] == 0)
      pool->n_free--;
    add_ref(pool, pages[i], 1);
  }
}

yaie_status yaie_pool_unref(yaie_pool *pool, const int32_t *pages, int n) {
  /* Applied one by one, since a page listed twice may legitimately drop two references; the
   * first refusal rolls the earlier ones back. */
  for (int i = 0; i < n; i++) {
    yaie_status st = unref_refusal(pool, pages[i]);
    if (st != YAIE_OK) {
      unref_rollback(pool, pages, i);
      return st;
    }
    add_ref(pool, pages[i], -1);
    if (pool->ref[pages[i]] == 0)
      pool->stack[pool->n_free++] = pages[i];
  }
  return YAIE_OK;
}

void yaie_pool_stats(const yaie_pool *pool, yaie_pool_usage *out) {
  out->total = pool->n_pages;
  out->free = pool->n_free;
  out->used = pool->n_pages - pool->n_free;
  out->evictable = pool->evictable;
  out->cached = pool->cached;
  out->page_size = pool->page_size;
  out->page_bytes = pool->page_bytes;
  out->host_bytes = pool->host_bytes;
}

/* ---------------------------------------------------------------------------------------------
 * The radix tree's side (page_pool.h). The tree only passes pages it validated or owns. */

int yaie_pool_n_pages(const yaie_pool *pool) { return pool->n_pages; }
int yaie_pool_page_size(const yaie_pool *pool) { return pool->page_size; }
uint32_t yaie_pool_refcount(const yaie_pool *pool, int32_t page) { return pool->ref[page]; }
int yaie_pool_flags(const yaie_pool *pool, int32_t page) { return pool->flags[page]; }

void yaie_pool_set_flag(yaie_pool *pool, const int32_t *pages, int n, int flag, int on) {
  for (int i = 0; i < n; i++) {
    int32_t p = pages[i];
    int before = counts_evictable(pool, p);
    int was_cached = pool->flags[p] & YAIE_PAGE_CACHED;
    pool->flags[p] = (uint8_t)(on ? pool->flags[p] | flag : pool->flags[p] & ~flag);
    pool->cached += (pool->flags[p] & YAIE_PAGE_CACHED ? 1 : 0) - (was_cached ? 1 : 0);
    pool->evictable += counts_evictable(pool, p) - before;
  }
}

void yaie_pool_clear_marks(yaie_pool *pool, const int32_t *pages, int n) {
  for (int i = 0; i < n; i++)
    if (pages[i] >= 0 && pages[i] < pool->n_pages)
      pool->flags[pages[i]] &= (uint8_t)~YAIE_PAGE_MARK;
}

int yaie_pool_uncache(yaie_pool *pool, const int32_t *pages, int n) {
  int freed = 0;
  yaie_pool_set_flag(pool, pages, n, YAIE_PAGE_CACHED | YAIE_PAGE_PROTECTED, 0);
  for (int i = 0; i < n; i++) {
    add_ref(pool, pages[i], -1);
    if (pool->ref[pages[i]] == 0) {
      pool->stack[pool->n_free++] = pages[i];
      freed++;
    }
  }
  return freed;
}

yaie_status yaie_pool_attach(yaie_pool *pool) {
  if (pool->has_tree)
    return yaie_fail(YAIE_ERR_STATE,
                     "radix: this pool already has a radix tree (one tree per pool; "
                     "use namespaces to keep caches apart)");
  pool->has_tree = 1;
  pool->holds++;
  return YAIE_OK;
}

void yaie_pool_detach(yaie_pool *pool) {
  pool->has_tree = 0;
  release_hold(pool);
}

/* ---------------------------------------------------------------------------------------------
 * The invariant check */

static yaie_status check_free_list(const yaie_pool *pool, uint8_t *seen) {
  if (pool->n_free < 0 || pool->n_free > pool->n_pages)
    return yaie_fail(YAIE_ERR_STATE, "pool check (P1): %d free pages of %d", pool->n_free,
                     pool->n_pages);
  for (int i = 0; i < pool->n_free; i++) {
    int32_t p = pool->stack[i];
    if (p < 0 || p >= pool->n_pages)
      return yaie_fail(YAIE_ERR_STATE, "pool check (P1): free list slot %d holds id %d", i, (int)p);
    if (seen[p]++)
      return yaie_fail(YAIE_ERR_STATE, "pool check (P1): page %d is on the free list twice",
                       (int)p);
    if (pool->ref[p] != 0)
      return yaie_fail(YAIE_ERR_STATE,
                       "pool check (P1): page %d is both free and referenced "
                       "(%u references)",
                       (int)p, pool->ref[p]);
  }
  for (int p = 0; p < pool->n_pages; p++)
    if (pool->ref[p] == 0 && !seen[p])
      return yaie_fail(YAIE_ERR_STATE,
                       "pool check (P1): page %d has no reference and is not on "
                       "the free list (leaked)",
                       p);
  return YAIE_OK;
}

static yaie_status check_flags(const yaie_pool *pool) {
  int evictable = 0, cached = 0;
  for (int p = 0; p < pool->n_pages; p++) {
    int f = pool->flags[p];
    if ((f & YAIE_PAGE_PROTECTED) && !(f & YAIE_PAGE_CACHED))
      return yaie_fail(YAIE_ERR_STATE, "pool check (P2): page %d is protected but not cached", p);
    if ((f & YAIE_PAGE_CACHED) && pool->ref[p] == 0)
      return yaie_fail(YAIE_ERR_STATE, "pool check (P2): page %d is cached but free", p);
    if (f & YAIE_PAGE_MARK)
      return yaie_fail(YAIE_ERR_STATE, "pool check (P2): page %d keeps a scratch mark", p);
    evictable += counts_evictable(pool, p);
    cached += (f & YAIE_PAGE_CACHED) != 0;
  }
  if (evictable != pool->evictable)
    return yaie_fail(YAIE_ERR_STATE, "pool check (P3): %d evictable pages counted, %d found",
                     pool->evictable, evictable);
  if (cached != pool->cached || (cached && !pool->has_tree))
    return yaie_fail(YAIE_ERR_STATE, "pool check (P4): %d cached pages counted, %d found%s",
                     pool->cached, cached, pool->has_tree ? "" : " without a tree");
  return YAIE_OK;
}

yaie_status yaie_pool_check(const yaie_pool *pool) {
  uint8_t *seen = calloc((size_t)pool->n_pages, 1);
  if (!seen)
    return yaie_fail(YAIE_ERR_NOMEM, "pool check: out of memory");
  yaie_status st = check_free_list(pool, seen);
  free(seen);
  YAIE_TRY(st);
  return check_flags(pool);
}

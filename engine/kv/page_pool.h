/* The pool's side of its contract with the radix tree (engine/kv/radix_*.c), not part of the public
 * API: the tree marks the pages it caches, and which of those lie in locked nodes, so that the
 * pool keeps its evictable count in O(1) and can refuse to free a page the tree still holds. */
#ifndef YAIE_PAGE_POOL_H
#define YAIE_PAGE_POOL_H

#include "yaie_cache.h"

enum {
  YAIE_PAGE_CACHED = 1,    /* the radix tree holds one reference */
  YAIE_PAGE_PROTECTED = 2, /* ... in a node that a lock covers */
  YAIE_PAGE_MARK = 4       /* scratch bit for duplicate detection inside one call */
};

int yaie_pool_n_pages(const yaie_pool *pool);
int yaie_pool_page_size(const yaie_pool *pool);
uint32_t yaie_pool_refcount(const yaie_pool *pool, int32_t page);
int yaie_pool_flags(const yaie_pool *pool, int32_t page);
/* Sets (on) or clears a YAIE_PAGE_* bit on n pages, keeping the counts. */
void yaie_pool_set_flag(yaie_pool *pool, const int32_t *pages, int n, int flag, int on);
/* Clears YAIE_PAGE_MARK on the pages in range among n (MARK leaves every count alone). */
void yaie_pool_clear_marks(yaie_pool *pool, const int32_t *pages, int n);
/* The tree lets go of pages: clears their flags and drops its reference; returns how many went
 * back to the free list. */
int yaie_pool_uncache(yaie_pool *pool, const int32_t *pages, int n);
/* A tree takes the pool (one tree per pool), keeping it alive until yaie_pool_detach. */
yaie_status yaie_pool_attach(yaie_pool *pool);
void yaie_pool_detach(yaie_pool *pool);

#endif

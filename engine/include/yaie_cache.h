/* yaie: the KV page pool and the radix-tree prefix cache. Like yaie.h, LuaJIT's FFI cdef's this
 * file once lines starting with '#' are dropped, so it holds only plain declarations. */
#ifndef YAIE_CACHE_H
#define YAIE_CACHE_H

#include "yaie.h"

/* ---------------------------------------------------------------------------------------------
 * The page pool (engine/page_pool.c). The KV cache is a set of fixed-size pages of page_size
 * tokens; one page id covers K and V of every layer. The pool hands out page ids and counts
 * references to them; the backend context owns the page storage and reads page tables of these
 * ids, so nothing here assumes the pages live in host memory. */
typedef struct yaie_pool yaie_pool;

typedef struct yaie_pool_params {
  int n_pages;     /* pages in the pool; 0 to derive them from bytes and the geometry below */
  int page_size;   /* tokens per page, 1..256 */
  size_t bytes;    /* the KV budget, used when n_pages is 0 */
  int n_layers;    /* the geometry of a page: needed with bytes, reported in page_bytes */
  int n_kv_heads;
  int head_dim;
  int dtype_bytes; /* bytes per K or V element: 4 (f32), 2 (bf16, f16) */
} yaie_pool_params;

typedef struct yaie_pool_usage {
  int total;         /* pages in the pool */
  int free;          /* pages on the free list */
  int used;          /* pages with a reference: total - free */
  int evictable;     /* pages whose only reference is the radix cache's, in unlocked nodes */
  int cached;        /* pages the radix cache holds, locked or not */
  int page_size;
  size_t page_bytes; /* bytes of K and V per page; 0 when no geometry was given */
  size_t host_bytes; /* host memory of the pool's own bookkeeping */
} yaie_pool_usage;

yaie_status yaie_pool_new(const yaie_pool_params *params, yaie_pool **out);
/* Drops the caller's hold; the pool itself goes once a radix tree built on it is freed too. */
void yaie_pool_free(yaie_pool *pool);
/* Takes n pages off the free list, each with one reference (the caller's), all or none:
 * YAIE_ERR_NOMEM when fewer than n are free. */
yaie_status yaie_pool_alloc(yaie_pool *pool, int n, int32_t *pages);
/* Adds a reference to each page (in use already), e.g. a page shared by two sequences. */
yaie_status yaie_pool_ref(yaie_pool *pool, const int32_t *pages, int n);
/* Drops a reference from each page; a page whose count reaches 0 goes back to the free list.
 * A free page, an id out of range, or the radix cache's own reference is an error, and an
 * error changes nothing. */
yaie_status yaie_pool_unref(yaie_pool *pool, const int32_t *pages, int n);
/* Cannot fail: it copies counters. */
void yaie_pool_stats(const yaie_pool *pool, yaie_pool_usage *out);
/* Verifies every invariant; the message names the first one broken. */
yaie_status yaie_pool_check(const yaie_pool *pool);

/* ---------------------------------------------------------------------------------------------
 * The radix tree (engine/radix_*.c): a prefix cache from token ids to the pages holding their
 * K/V. With page_size > 1 only whole pages are matched and inserted; a request's partial last
 * page stays its own. One tree per pool; namespaces (a model, an adapter, a user salt) keep
 * caches apart inside it while eviction stays one LRU order over all of them.
 *
 * Node handles: match and insert return a handle to a node. A handle stays usable while its
 * node is cached: any insert, match or evict may split nodes (the handle then names the deeper
 * part, which still ends where it did) and evict may free it. Lock the node to keep it; a
 * handle whose node was evicted is refused with YAIE_ERR_STATE, never followed. */
typedef struct yaie_radix yaie_radix;
typedef struct yaie_radix_node yaie_radix_node;

typedef struct yaie_radix_handle {
  yaie_radix_node *node;
  uint64_t serial; /* the node's identity: its tree and its creation */
} yaie_radix_handle;

typedef struct yaie_radix_usage {
  int64_t nodes;            /* cached nodes, namespace roots not counted */
  int64_t namespaces;       /* namespace roots */
  int64_t cached_tokens;
  int64_t evictable_tokens; /* in nodes no lock covers */
  int64_t protected_tokens; /* in nodes a lock covers (the locked node or a descendant) */
  int64_t hit_tokens;       /* matched by yaie_radix_match, summed over calls */
  int64_t miss_tokens;      /* asked for and not matched */
  int64_t bytes;            /* host memory the tree holds: nodes, keys, child tables, heap */
} yaie_radix_usage;

typedef struct yaie_radix_node_info {
  yaie_radix_handle parent; /* node NULL for a namespace root */
  uint64_t ns;              /* the namespace of the node's root */
  const int32_t *tokens;    /* the node's edge: n_tokens ids (valid until the next change) */
  int n_tokens;
  const int32_t *pages;     /* n_tokens / page_size page ids */
  int n_pages;
  int depth;                /* tokens from the root to the end of this node */
  int n_children;
  int lock_ref;             /* locks on this node or below it */
  int own_locks;            /* locks taken on this node itself */
  uint64_t last_access;     /* the tree's logical clock at the last match or insert through it */
} yaie_radix_node_info;

yaie_status yaie_radix_new(yaie_pool *pool, yaie_radix **out);
/* Frees every node and returns the cache's pages to the pool (locks included). */
void yaie_radix_free(yaie_radix *tree);
/* The namespace id of a name (a 64-bit hash); the empty name is 0, the default namespace. */
uint64_t yaie_radix_namespace(const char *name, size_t len);

/* Finds the longest cached prefix of tokens[0, n) in whole pages, splitting the node where it
 * ends inside one. *n_matched tokens; their pages go to pages (cap >= n / page_size; pages may
 * be NULL); *node is the node ending there (the namespace root when nothing matched). Marks
 * the path as used now for the LRU order. */
yaie_status yaie_radix_match(yaie_radix *tree, uint64_t ns, const int32_t *tokens, int n,
                             int32_t *pages, int cap, int *n_matched, yaie_radix_handle *node);
/* The length match would return, changing nothing (no split, no recency, no statistics). */
yaie_status yaie_radix_peek(const yaie_radix *tree, uint64_t ns, const int32_t *tokens, int n,
                            int *n_matched);
/* Caches tokens[0, n) (whole pages only) with pages[0, n / page_size). *already is how much was
 * cached before. The caller hands over its reference to every page of that range except the
 * ones that are the tree's own page at the same place (got from match): the tree keeps a new
 * page, and drops a duplicate of a page it already caches. Pages past n / page_size stay the
 * caller's. *node (may be NULL) is the node ending at the inserted prefix. A bad page (free,
 * out of range, cached elsewhere, listed twice) fails before anything changes. */
yaie_status yaie_radix_insert(yaie_radix *tree, uint64_t ns, const int32_t *tokens, int n,
                              const int32_t *pages, int n_pages, int *already,
                              yaie_radix_handle *node);
/* Protects the node and its ancestors from eviction until the matching unlock. */
yaie_status yaie_radix_lock(yaie_radix *tree, yaie_radix_handle node);
/* Fails with YAIE_ERR_STATE when the node holds no lock of its own. */
yaie_status yaie_radix_unlock(yaie_radix *tree, yaie_radix_handle node);
/* Evicts unlocked leaves, least recently used first, until at least n_pages went back to the
 * pool or nothing is left to evict; *freed says how many did. */
yaie_status yaie_radix_evict(yaie_radix *tree, int n_pages, int *freed);
/* Cannot fail: it copies counters. */
void yaie_radix_stats(const yaie_radix *tree, yaie_radix_usage *out);
int yaie_radix_page_size(const yaie_radix *tree);
/* Verifies every invariant of the tree and of its pool; the message names the first broken. */
yaie_status yaie_radix_check(const yaie_radix *tree);

/* Walking the tree (for dumps and tests): the namespace roots, a node's description and its
 * children. Each writes at most cap handles and sets *n to how many there are. */
yaie_status yaie_radix_roots(const yaie_radix *tree, yaie_radix_handle *out, int cap, int *n);
yaie_status yaie_radix_node_info_get(const yaie_radix *tree, yaie_radix_handle node,
                                     yaie_radix_node_info *out);
yaie_status yaie_radix_children(const yaie_radix *tree, yaie_radix_handle node,
                                yaie_radix_handle *out, int cap, int *n);

#endif

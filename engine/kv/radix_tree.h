/* The radix tree's insides, shared by its files: radix_node.c (node storage and child tables),
 * radix_heap.c (the LRU heap), radix_tree.c (match, insert, lock, evict) and radix_check.c
 * (the invariant check and the walking API). */
#ifndef YAIE_RADIX_TREE_H
#define YAIE_RADIX_TREE_H

#include "page_pool.h"

/* A node is an edge of len tokens (a multiple of page_size) with the pages holding them. A
 * namespace root has no tokens and no parent. */
struct yaie_radix_node {
  yaie_radix_node *parent; /* NULL for a root; the next free slot while the slot is free */
  yaie_radix_node **kids;  /* open-addressed child table of kid_cap slots, by first page */
  int32_t *tokens;         /* len tokens, then len / page_size page ids: one allocation */
  uint64_t serial;         /* 0 while the slot is free; see yaie_radix_handle */
  uint64_t last_access;    /* the tree's clock at the last match or insert through here */
  int32_t len;
  uint32_t key_hash; /* hash of the first page of tokens: the key in the parent's table */
  int32_t n_kids, kid_cap;
  int32_t lock_ref;  /* locks on this node or on a descendant */
  int32_t own_locks; /* locks taken on this node itself */
  int32_t heap_idx;  /* position in the LRU heap, or -1 */
};

typedef struct radix_slab radix_slab;

typedef struct radix_root {
  uint64_t ns;
  yaie_radix_node *node;
} radix_root;

struct yaie_radix {
  yaie_pool *pool;
  int page_size;
  uint32_t id; /* the high bits of every serial: which tree a handle belongs to */
  uint64_t next_serial;
  uint64_t clock;    /* logical time: one tick per match or insert */
  radix_slab *slabs; /* node storage; slots never go back to malloc before the tree */
  yaie_radix_node *free_nodes;
  radix_root *roots; /* open-addressed by namespace, root_cap slots */
  int n_roots, root_cap;
  yaie_radix_node **heap; /* min-heap on last_access of the evictable leaves */
  int heap_n, heap_cap;
  int64_t nodes, cached_tokens, evictable_tokens, protected_tokens, hit_tokens, miss_tokens;
  int64_t bytes; /* every allocation the tree holds, kept by radix_alloc & co */
};

enum { RADIX_SERIAL_BITS = 40 };

static inline int32_t *node_pages(const yaie_radix_node *n) { return n->tokens + n->len; }

/* Bytes of a node's key and page ids, which share one allocation. */
static inline size_t radix_data_bytes(const yaie_radix *t, int len) {
  return (size_t)(len + len / t->page_size) * sizeof(int32_t);
}

/* Visits every live node (roots included) in storage order:
 * `radix_iter it = {0}; while ((n = radix_next_node(t, &it))) ...` */
typedef struct radix_iter {
  const radix_slab *slab;
  int i;
  int started;
} radix_iter;

/* radix_node.c: memory (counted in bytes), node slots, child tables, handles. Internal names
 * carry the radix_ prefix because the shared library exports them. */
void *radix_alloc(yaie_radix *t, size_t size);
void *radix_realloc(yaie_radix *t, void *p, size_t old_size, size_t size);
void radix_dealloc(yaie_radix *t, void *p, size_t size);
uint32_t radix_page_hash(const int32_t *tokens, int page_size);
/* A node holding a copy of tokens[0, len) and pages[0, len / page_size); the heap gets room
 * for it at once, so that heap updates never allocate. */
yaie_status radix_node_new(yaie_radix *t, const int32_t *tokens, const int32_t *pages, int len,
                           yaie_radix_node **out);
void radix_node_release(yaie_radix *t, yaie_radix_node *n);
/* Frees every node, handing the cached pages back to the pool first. */
void radix_free_nodes(yaie_radix *t);
yaie_radix_node *radix_next_node(const yaie_radix *t, radix_iter *it);
/* What bytes should be, recounted from the storage (check R9). */
int64_t radix_bytes_recount(const yaie_radix *t);
yaie_radix_node *radix_kid_find(const yaie_radix *t, const yaie_radix_node *parent,
                                const int32_t *page, uint32_t hash);
/* Grows parent's table for n_kids children; the only child-table call that can fail. */
yaie_status radix_kid_reserve(yaie_radix *t, yaie_radix_node *parent, int n_kids);
void radix_kid_add(yaie_radix_node *parent, yaie_radix_node *kid);
void radix_kid_remove(yaie_radix *t, yaie_radix_node *parent, yaie_radix_node *kid);
void radix_kid_replace(yaie_radix_node *parent, yaie_radix_node *old, yaie_radix_node *kid);
yaie_status radix_node_from(const yaie_radix *t, yaie_radix_handle h, const char *what,
                            yaie_radix_node **out);
yaie_radix_handle radix_handle(const yaie_radix_node *n);
/* The namespace root, created when create is set (NULL when absent or out of memory). */
yaie_status radix_get_root(yaie_radix *t, uint64_t ns, int create, yaie_radix_node **out);
yaie_radix_node *radix_root_find(const yaie_radix *t, uint64_t ns);
/* Process-wide tree ids for the serials' high bits: never 0. */
uint32_t radix_next_tree_id(void);

/* radix_heap.c: the evictable leaves (not a root, no children, no lock) in LRU order */
int radix_heap_wants(const yaie_radix_node *n);
/* Puts n in the heap or takes it out, as radix_heap_wants says. */
void radix_heap_sync(yaie_radix *t, yaie_radix_node *n);
/* Restores the order after n's last_access changed. */
void radix_heap_fix(yaie_radix *t, yaie_radix_node *n);
yaie_radix_node *radix_heap_pop(yaie_radix *t);
yaie_status radix_heap_check(const yaie_radix *t);

#endif

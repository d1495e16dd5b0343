/* The radix tree's storage: counted allocations, node slots, child tables, handles and the
 * namespace roots. Nothing here knows about matching or eviction (radix_tree.c does).
 *
 * Invariants kept here (radix_check.c verifies them, numbered as there):
 *   R1  a child table of kid_cap slots (a power of two, or 0 with no table) holds n_kids nodes
 *       at most 3/4 full; each child sits on the linear-probe run from key_hash & (kid_cap - 1)
 *       and no two children share a first page.
 *   R8  every live node's serial carries this tree's id in its high bits, and the namespace table
 *       holds n_roots roots, each found from its namespace id.
 *   R9  bytes is the sum of every allocation the tree holds. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "radix_tree.h"

enum { SLAB_NODES = 256 };

struct radix_slab {
  radix_slab *next;
  yaie_radix_node nodes[SLAB_NODES];
};

/* ---------------------------------------------------------------------------------------------
 * Counted memory: every byte the tree holds goes through these, so stats can report it. */

void *radix_alloc(yaie_radix *t, size_t size) {
  void *p = malloc(size);
  if (p)
    t->bytes += (int64_t)size;
  return p;
}

void *radix_realloc(yaie_radix *t, void *p, size_t old_size, size_t size) {
  void *q = realloc(p, size);
  if (q)
    t->bytes += (int64_t)size - (int64_t)old_size;
  return q;
}

void radix_dealloc(yaie_radix *t, void *p, size_t size) {
  if (!p)
    return;
  free(p);
  t->bytes -= (int64_t)size;
}

static uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  return h ^ (h >> 16);
}

uint32_t radix_page_hash(const int32_t *tokens, int page_size) {
  uint32_t h = 0x811c9dc5u;
  for (int i = 0; i < page_size; i++)
    h = (h ^ (uint32_t)tokens[i]) * 0x01000193u;
  return mix32(h);
}

/* ---------------------------------------------------------------------------------------------
 * Node slots. Nodes live in slabs that go back to malloc only with the tree, so that a stale
 * handle still points at tree memory and its serial can be compared safely. */

static yaie_status take_slot(yaie_radix *t, yaie_radix_node **out) {
  if (!t->free_nodes) {
    radix_slab *s = radix_alloc(t, sizeof *s);
    if (!s)
      return yaie_fail(YAIE_ERR_NOMEM, "radix: out of memory for nodes");
    memset(s, 0, sizeof *s);
    s->next = t->slabs;
    t->slabs = s;
    for (int i = SLAB_NODES - 1; i >= 0; i--) {
      s->nodes[i].parent = t->free_nodes;
      t->free_nodes = &s->nodes[i];
    }
  }
  *out = t->free_nodes;
  t->free_nodes = (*out)->parent;
  return YAIE_OK;
}

static yaie_status heap_reserve(yaie_radix *t, int64_t n) {
  if (t->heap_cap >= n)
    return YAIE_OK;
  int cap = t->heap_cap ? 2 * t->heap_cap : 64;
  void *h = radix_realloc(t, t->heap, (size_t)t->heap_cap * sizeof *t->heap,
                          (size_t)cap * sizeof *t->heap);
  if (!h)
    return yaie_fail(YAIE_ERR_NOMEM, "radix: out of memory for the eviction heap");
  t->heap = h;
  t->heap_cap = cap;
  return YAIE_OK;
}

yaie_status radix_node_new(yaie_radix *t, const int32_t *tokens, const int32_t *pages, int len,
                           yaie_radix_node **out) {
  int32_t *data = NULL;
  yaie_radix_node *n = NULL;
  YAIE_TRY(heap_reserve(t, t->nodes + 1));
  if (len > 0 && !(data = radix_alloc(t, radix_data_bytes(t, len))))
    return yaie_fail(YAIE_ERR_NOMEM, "radix: out of memory for a node of %d tokens", len);
  yaie_status st = take_slot(t, &n);
  if (st != YAIE_OK) {
    radix_dealloc(t, data, radix_data_bytes(t, len));
    return st;
  }
  memset(n, 0, sizeof *n);
  if (len > 0) {
    memcpy(data, tokens, (size_t)len * sizeof *data);
    memcpy(data + len, pages, (size_t)(len / t->page_size) * sizeof *data);
    n->key_hash = radix_page_hash(tokens, t->page_size);
  }
  n->tokens = data;
  n->len = len;
  n->heap_idx = -1;
  n->serial = ((uint64_t)t->id << RADIX_SERIAL_BITS) | t->next_serial++;
  *out = n;
  return YAIE_OK;
}

void radix_node_release(yaie_radix *t, yaie_radix_node *n) {
  radix_dealloc(t, n->tokens, radix_data_bytes(t, n->len));
  radix_dealloc(t, n->kids, (size_t)n->kid_cap * sizeof *n->kids);
  memset(n, 0, sizeof *n);
  n->parent = t->free_nodes;
  t->free_nodes = n;
}

void radix_free_nodes(yaie_radix *t) {
  while (t->slabs) {
    radix_slab *s = t->slabs;
    t->slabs = s->next;
    for (int i = 0; i < SLAB_NODES; i++) {
      yaie_radix_node *n = &s->nodes[i];
      if (!n->serial)
        continue;
      yaie_pool_uncache(t->pool, node_pages(n), n->len / t->page_size);
      radix_dealloc(t, n->tokens, radix_data_bytes(t, n->len));
      radix_dealloc(t, n->kids, (size_t)n->kid_cap * sizeof *n->kids);
    }
    radix_dealloc(t, s, sizeof *s);
  }
  t->free_nodes = NULL;
}

yaie_radix_node *radix_next_node(const yaie_radix *t, radix_iter *it) {
  if (!it->started) {
    it->slab = t->slabs;
    it->i = 0;
    it->started = 1;
  }
  for (; it->slab; it->slab = it->slab->next, it->i = 0)
    while (it->i < SLAB_NODES) {
      const yaie_radix_node *n = &it->slab->nodes[it->i++];
      if (n->serial)
        return (yaie_radix_node *)n;
    }
  return NULL;
}

int64_t radix_bytes_recount(const yaie_radix *t) {
  int64_t bytes = (int64_t)sizeof *t + (int64_t)t->heap_cap * (int64_t)sizeof *t->heap +
                  (int64_t)t->root_cap * (int64_t)sizeof *t->roots;
  for (const radix_slab *s = t->slabs; s; s = s->next)
    bytes += (int64_t)sizeof *s;
  radix_iter it = {0};
  for (yaie_radix_node *n; (n = radix_next_node(t, &it));)
    bytes += (int64_t)(radix_data_bytes(t, n->len) * (n->len > 0)) +
             (int64_t)n->kid_cap * (int64_t)sizeof *n->kids;
  return bytes;
}

/* ---------------------------------------------------------------------------------------------
 * Child tables (R1): linear probing keyed by the hash of the child's first page. */

static int same_page(const int32_t *a, const int32_t *b, int page_size) {
  if (page_size == 1)
    return a[0] == b[0];
  return memcmp(a, b, (size_t)page_size * sizeof *a) == 0;
}

yaie_radix_node *radix_kid_find(const yaie_radix *t, const yaie_radix_node *parent,
                                const int32_t *page, uint32_t hash) {
  if (!parent->kid_cap)
    return NULL;
  uint32_t mask = (uint32_t)parent->kid_cap - 1;
  for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
    yaie_radix_node *k = parent->kids[i];
    if (!k || (k->key_hash == hash && same_page(k->tokens, page, t->page_size)))
      return k;
  }
}

static void table_put(yaie_radix_node **kids, int cap, yaie_radix_node *kid) {
  uint32_t mask = (uint32_t)cap - 1, i = kid->key_hash & mask;
  while (kids[i])
    i = (i + 1) & mask;
  kids[i] = kid;
}

yaie_status radix_kid_reserve(yaie_radix *t, yaie_radix_node *parent, int n_kids) {
  if (n_kids * 4 <= parent->kid_cap * 3)
    return YAIE_OK;
  int cap = parent->kid_cap ? parent->kid_cap : 2;
  while (n_kids * 4 > cap * 3)
    cap *= 2;
  yaie_radix_node **kids = radix_alloc(t, (size_t)cap * sizeof *kids);
  if (!kids)
    return yaie_fail(YAIE_ERR_NOMEM, "radix: out of memory for a child table");
  memset(kids, 0, (size_t)cap * sizeof *kids);
  for (int i = 0; i < parent->kid_cap; i++)
    if (parent->kids[i])
      table_put(kids, cap, parent->kids[i]);
  radix_dealloc(t, parent->kids, (size_t)parent->kid_cap * sizeof *parent->kids);
  parent->kids = kids;
  parent->kid_cap = cap;
  return YAIE_OK;
}

void radix_kid_add(yaie_radix_node *parent, yaie_radix_node *kid) {
  table_put(parent->kids, parent->kid_cap, kid);
  parent->n_kids++;
  kid->parent = parent;
}

static uint32_t slot_of(const yaie_radix_node *parent, const yaie_radix_node *kid) {
  uint32_t mask = (uint32_t)parent->kid_cap - 1, i = kid->key_hash & mask;
  while (parent->kids[i] != kid)
    i = (i + 1) & mask;
  return i;
}

void radix_kid_replace(yaie_radix_node *parent, yaie_radix_node *old, yaie_radix_node *kid) {
  parent->kids[slot_of(parent, old)] = kid;
  kid->parent = parent;
}

/* Backward-shift deletion keeps every probe run unbroken without tombstones. */
void radix_kid_remove(yaie_radix *t, yaie_radix_node *parent, yaie_radix_node *kid) {
  uint32_t mask = (uint32_t)parent->kid_cap - 1, hole = slot_of(parent, kid);
  parent->kids[hole] = NULL;
  for (uint32_t j = (hole + 1) & mask; parent->kids[j]; j = (j + 1) & mask) {
    uint32_t home = parent->kids[j]->key_hash & mask;
    /* The entry at j may fill the hole unless its home lies cyclically in (hole, j]. */
    int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      parent->kids[hole] = parent->kids[j];
      parent->kids[j] = NULL;
      hole = j;
    }
  }
  if (--parent->n_kids == 0) {
    radix_dealloc(t, parent->kids, (size_t)parent->kid_cap * sizeof *parent->kids);
    parent->kids = NULL;
    parent->kid_cap = 0;
  }
}

/* ---------------------------------------------------------------------------------------------
 * Handles. The serial's high bits name the tree, so a foreign handle is refused before it is
 * followed; the rest name the node, so a reused slot does not pass for the evicted node. */

yaie_radix_handle radix_handle(const yaie_radix_node *n) {
  yaie_radix_handle h = {(yaie_radix_node *)n, n ? n->serial : 0};
  return h;
}

yaie_status radix_node_from(const yaie_radix *t, yaie_radix_handle h, const char *what,
                            yaie_radix_node **out) {
  if (!h.node)
    return yaie_fail(YAIE_ERR_ARG, "%s: no node given", what);
  if (h.serial >> RADIX_SERIAL_BITS != t->id)
    return yaie_fail(YAIE_ERR_ARG, "%s: the node handle belongs to another tree", what);
  if (h.node->serial != h.serial)
    return yaie_fail(YAIE_ERR_STATE,
                     "%s: stale node handle (its node was evicted; a node stays "
                     "cached only while locked)",
                     what);
  *out = h.node;
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Namespace roots: an open-addressed table from namespace id to root node. Roots stay until the
 * tree goes (a namespace is a model, an adapter or a tenant: few, and a root is ~100 bytes). */

static uint32_t ns_slot(uint64_t ns, int cap) {
  return mix32((uint32_t)ns ^ mix32((uint32_t)(ns >> 32))) & (uint32_t)(cap - 1);
}

yaie_radix_node *radix_root_find(const yaie_radix *t, uint64_t ns) {
  if (!t->root_cap)
    return NULL;
  for (uint32_t i = ns_slot(ns, t->root_cap);; i = (i + 1) & (uint32_t)(t->root_cap - 1)) {
    if (!t->roots[i].node || t->roots[i].ns == ns)
      return t->roots[i].node;
  }
}

static void root_put(radix_root *roots, int cap, radix_root r) {
  uint32_t i = ns_slot(r.ns, cap);
  while (roots[i].node)
    i = (i + 1) & (uint32_t)(cap - 1);
  roots[i] = r;
}

static yaie_status roots_reserve(yaie_radix *t) {
  if ((t->n_roots + 1) * 2 <= t->root_cap)
    return YAIE_OK;
  int cap = t->root_cap ? 2 * t->root_cap : 4;
  radix_root *roots = radix_alloc(t, (size_t)cap * sizeof *roots);
  if (!roots)
    return yaie_fail(YAIE_ERR_NOMEM, "radix: out of memory for namespaces");
  memset(roots, 0, (size_t)cap * sizeof *roots);
  for (int i = 0; i < t->root_cap; i++)
    if (t->roots[i].node)
      root_put(roots, cap, t->roots[i]);
  radix_dealloc(t, t->roots, (size_t)t->root_cap * sizeof *t->roots);
  t->roots = roots;
  t->root_cap = cap;
  return YAIE_OK;
}

yaie_status radix_get_root(yaie_radix *t, uint64_t ns, int create, yaie_radix_node **out) {
  *out = radix_root_find(t, ns);
  if (*out || !create)
    return YAIE_OK;
  YAIE_TRY(roots_reserve(t));
  YAIE_TRY(radix_node_new(t, NULL, NULL, 0, out));
  radix_root r = {ns, *out};
  root_put(t->roots, t->root_cap, r);
  t->n_roots++;
  return YAIE_OK;
}

uint64_t yaie_radix_namespace(const char *name, size_t len) {
  if (len == 0)
    return 0;
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a finalizer so that short names spread */
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h ? h : 1; /* 0 stays the default namespace's */
}

uint32_t radix_next_tree_id(void) {
  static atomic_uint next = 0;
  return atomic_fetch_add(&next, 1) % ((1u << (64 - RADIX_SERIAL_BITS)) - 1) + 1;
}

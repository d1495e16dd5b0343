/* The syntax tree to a byte-level Thompson NFA. Every fragment has one entry and one exit (an
 * EPS state whose `out` the caller links), so fragments compose without patch lists. Classes of
 * code points become alternations of UTF-8 byte-range sequences, split the way RE2 and
 * regex-automata split them; sequences share their suffixes. A last pass marks the states from
 * which MATCH is reachable, so the DFA never holds a state that cannot finish. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "regex.h"
#include "tokenizer_impl.h"

typedef struct frag {
  int32_t start, end; /* end: an EPS state with out unset */
} frag;

typedef struct suffix { /* a RANGE state already built for (lo, hi, out) in the current class */
  uint8_t lo, hi;
  int32_t out, id;
} suffix;

typedef struct builder {
  const rx_ast *ast;
  rx_nfa *nfa;
  suffix *cache;
  size_t cache_n, cache_cap;
} builder;

enum { SUFFIX_SCAN = 256 }; /* how far back the suffix cache is searched: bounds its cost */

static yaie_status new_state(builder *b, rx_op op, int lo, int hi, int32_t out, int32_t out1,
                             uint32_t pos, int32_t *id) {
  rx_nfa *a = b->nfa;
  if (a->n >= RX_MAX_NFA_STATES)
    return yaie_fail(YAIE_ERR_UNSUPPORTED,
                     "regex too large: it needs more than %d NFA states (near position %u)",
                     RX_MAX_NFA_STATES, pos);
  if (a->n == a->cap) {
    int32_t cap = a->cap ? a->cap * 2 : 256;
    rx_state *v = realloc(a->s, (size_t)cap * sizeof *v);
    if (!v)
      return yaie_fail(YAIE_ERR_NOMEM, "regex: out of memory");
    a->s = v;
    a->cap = cap;
  }
  a->s[a->n] = (rx_state){.op = (uint8_t)op, .lo = (uint8_t)lo, .hi = (uint8_t)hi, .out = out, .out1 = out1};
  *id = a->n++;
  return YAIE_OK;
}

static yaie_status eps(builder *b, uint32_t pos, int32_t *id) { return new_state(b, NFA_EPS, 0, 0, -1, -1, pos, id); }

static void link(builder *b, int32_t from_end, int32_t to) { b->nfa->s[from_end].out = to; }

/* ---------------------------------------------------------------------------------------------
 * Classes: code point ranges to UTF-8 byte-range sequences */

/* A RANGE state for (lo, hi) -> out, reusing one this class already built. */
static yaie_status range_state(builder *b, uint8_t lo, uint8_t hi, int32_t out, uint32_t pos, int32_t *id) {
  size_t from = b->cache_n > SUFFIX_SCAN ? b->cache_n - SUFFIX_SCAN : 0;
  for (size_t k = b->cache_n; k-- > from;) {
    suffix *c = &b->cache[k];
    if (c->lo == lo && c->hi == hi && c->out == out) {
      *id = c->id;
      return YAIE_OK;
    }
  }
  YAIE_TRY(new_state(b, NFA_RANGE, lo, hi, out, -1, pos, id));
  if (b->cache_n == b->cache_cap) {
    size_t cap = b->cache_cap ? b->cache_cap * 2 : 64;
    suffix *v = realloc(b->cache, cap * sizeof *v);
    if (!v)
      return yaie_fail(YAIE_ERR_NOMEM, "regex: out of memory");
    b->cache = v;
    b->cache_cap = cap;
  }
  b->cache[b->cache_n++] = (suffix){lo, hi, out, *id};
  return YAIE_OK;
}

/* Adds the byte sequences of code points [lo, hi] as alternatives: *entry is the chain of SPLITs
 * so far (-1 when empty), every sequence ends at `end`. A range is split until each piece has
 * one encoded length and, at every continuation byte, either a shared prefix or full span. */
static yaie_status add_cp_range(builder *b, uint32_t lo, uint32_t hi, int32_t end, uint32_t pos,
                                int32_t *entry) {
  static const uint32_t len_max[] = {0x7F, 0x7FF, 0xFFFF};
  uint32_t stack[64][2];
  int sp = 0;
  stack[sp][0] = lo, stack[sp][1] = hi, sp++;
  while (sp > 0) {
    sp--;
    uint32_t s = stack[sp][0], e = stack[sp][1];
    int split = 0;
    for (int k = 0; k < 3 && !split; k++)
      if (s <= len_max[k] && e > len_max[k]) {
        stack[sp][0] = len_max[k] + 1, stack[sp][1] = e, sp++;
        stack[sp][0] = s, stack[sp][1] = len_max[k], sp++;
        split = 1;
      }
    for (int k = 1; k < 4 && !split && e > 0x7F; k++) {
      uint32_t m = (1u << (6 * k)) - 1;
      if ((s & ~m) == (e & ~m))
        continue;
      if ((s & m) != 0) {
        stack[sp][0] = (s | m) + 1, stack[sp][1] = e, sp++;
        stack[sp][0] = s, stack[sp][1] = s | m, sp++;
        split = 1;
      } else if ((e & m) != m) {
        stack[sp][0] = e & ~m, stack[sp][1] = e, sp++;
        stack[sp][0] = s, stack[sp][1] = (e & ~m) - 1, sp++;
        split = 1;
      }
    }
    if (split)
      continue;
    char sb[4], eb[4];
    int n = tok_utf8_encode(s, sb);
    tok_utf8_encode(e, eb);
    int32_t next = end;
    for (int k = n - 1; k >= 0; k--)
      YAIE_TRY(range_state(b, (uint8_t)sb[k], (uint8_t)eb[k], next, pos, &next));
    if (*entry < 0)
      *entry = next;
    else
      YAIE_TRY(new_state(b, NFA_SPLIT, 0, 0, *entry, next, pos, entry));
  }
  return YAIE_OK;
}

static yaie_status compile_class(builder *b, const rx_node *node, frag *f) {
  YAIE_TRY(eps(b, node->pos, &f->end));
  int32_t entry = -1;
  b->cache_n = 0;
  for (int32_t k = 0; k < node->n_ranges; k++) {
    const rx_range *r = &b->ast->ranges[node->range_off + k];
    YAIE_TRY(add_cp_range(b, r->lo, r->hi, f->end, node->pos, &entry));
  }
  if (entry < 0) /* an empty class: an entry that leads nowhere */
    YAIE_TRY(eps(b, node->pos, &entry));
  f->start = entry;
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The tree */

static yaie_status compile(builder *b, int32_t id, frag *f);

/* x{min,max}: min copies in a row, then x* (or the last copy as x+), or max - min nested
 * optional copies x(x(x)?)?)?. */
static yaie_status compile_repeat(builder *b, const rx_node *node, frag *f) {
  int32_t end = -1, start = -1, e;
  frag c;
  int mandatory = node->min;
  if (node->max < 0 && mandatory > 0)
    mandatory--; /* the last mandatory copy becomes x+ */
  for (int k = 0; k < mandatory; k++) {
    YAIE_TRY(compile(b, node->child, &c));
    if (end >= 0)
      link(b, end, c.start);
    else
      start = c.start;
    end = c.end;
  }
  YAIE_TRY(eps(b, node->pos, &e));
  if (node->max < 0) {
    int32_t s;
    YAIE_TRY(compile(b, node->child, &c));
    YAIE_TRY(new_state(b, NFA_SPLIT, 0, 0, c.start, e, node->pos, &s));
    link(b, c.end, s);
    int32_t entry = node->min > 0 ? c.start : s;
    if (end >= 0)
      link(b, end, entry);
    else
      start = entry;
  } else {
    for (int k = node->min; k < node->max; k++) {
      int32_t s;
      YAIE_TRY(compile(b, node->child, &c));
      YAIE_TRY(new_state(b, NFA_SPLIT, 0, 0, c.start, e, node->pos, &s));
      if (end >= 0)
        link(b, end, s);
      else
        start = s;
      end = c.end;
    }
    if (end >= 0)
      link(b, end, e);
    else
      start = e;
  }
  f->start = start;
  f->end = e;
  return YAIE_OK;
}

static yaie_status compile(builder *b, int32_t id, frag *f) {
  const rx_node *node = &b->ast->nodes[id];
  frag c;
  switch (node->kind) {
  case RX_EMPTY:
    YAIE_TRY(eps(b, node->pos, &f->start));
    f->end = f->start;
    return YAIE_OK;
  case RX_CLASS:
    return compile_class(b, node, f);
  case RX_REPEAT:
    return compile_repeat(b, node, f);
  case RX_CONCAT:
    f->start = -1;
    for (int32_t k = node->child; k >= 0; k = b->ast->nodes[k].next) {
      YAIE_TRY(compile(b, k, &c));
      if (f->start < 0)
        f->start = c.start;
      else
        link(b, f->end, c.start);
      f->end = c.end;
    }
    return YAIE_OK;
  case RX_ALT:
    YAIE_TRY(eps(b, node->pos, &f->end));
    f->start = -1;
    for (int32_t k = node->child; k >= 0; k = b->ast->nodes[k].next) {
      YAIE_TRY(compile(b, k, &c));
      link(b, c.end, f->end);
      if (f->start < 0)
        f->start = c.start;
      else
        YAIE_TRY(new_state(b, NFA_SPLIT, 0, 0, f->start, c.start, node->pos, &f->start));
    }
    return YAIE_OK;
  }
  return yaie_fail(YAIE_ERR_STATE, "regex: bad syntax tree node");
}

/* ---------------------------------------------------------------------------------------------
 * Liveness and byte classes */

/* Marks every state from which MATCH is reachable: a search backwards over the edges. */
static yaie_status mark_live(rx_nfa *a, int32_t match) {
  int32_t n = a->n;
  int32_t *first = calloc((size_t)n + 1, sizeof *first), *src = malloc((size_t)n * 2 * sizeof *src);
  int32_t *stack = malloc((size_t)n * sizeof *stack);
  if (!first || !src || !stack) {
    free(first), free(src), free(stack);
    return yaie_fail(YAIE_ERR_NOMEM, "regex: out of memory");
  }
  for (int32_t i = 0; i < n; i++) { /* reverse edges, grouped by target (counting sort) */
    if (a->s[i].out >= 0)
      first[a->s[i].out + 1]++;
    if (a->s[i].out1 >= 0)
      first[a->s[i].out1 + 1]++;
  }
  for (int32_t i = 0; i < n; i++)
    first[i + 1] += first[i];
  int32_t *fill = stack; /* reused as write cursors before the search */
  memcpy(fill, first, (size_t)n * sizeof *fill);
  for (int32_t i = 0; i < n; i++) {
    if (a->s[i].out >= 0)
      src[fill[a->s[i].out]++] = i;
    if (a->s[i].out1 >= 0)
      src[fill[a->s[i].out1]++] = i;
  }
  int32_t sp = 0;
  a->s[match].live = 1;
  stack[sp++] = match;
  while (sp > 0) {
    int32_t t = stack[--sp];
    for (int32_t k = first[t]; k < first[t + 1]; k++)
      if (!a->s[src[k]].live) {
        a->s[src[k]].live = 1;
        stack[sp++] = src[k];
      }
  }
  free(first), free(src), free(stack);
  return YAIE_OK;
}

static void byte_classes(rx_nfa *a) {
  uint8_t boundary[257] = {0};
  for (int32_t i = 0; i < a->n; i++)
    if (a->s[i].op == NFA_RANGE && a->s[i].live) {
      boundary[a->s[i].lo] = 1;
      boundary[a->s[i].hi + 1] = 1;
    }
  int c = 0;
  for (int b = 0; b < 256; b++) {
    if (b > 0 && boundary[b])
      c++;
    a->byte_class[b] = (uint8_t)c;
  }
  a->n_classes = c + 1;
}

yaie_status rx_compile(const rx_ast *ast, rx_nfa *out) {
  memset(out, 0, sizeof *out);
  builder b = {.ast = ast, .nfa = out};
  frag f;
  int32_t match;
  yaie_status st = compile(&b, ast->root, &f);
  if (st == YAIE_OK)
    st = new_state(&b, NFA_MATCH, 0, 0, -1, -1, 0, &match);
  if (st == YAIE_OK) {
    link(&b, f.end, match);
    out->start = f.start;
    st = mark_live(out, match);
  }
  free(b.cache);
  if (st != YAIE_OK) {
    rx_nfa_free(out);
    return st;
  }
  byte_classes(out);
  return YAIE_OK;
}

yaie_status rx_nfa_copy(rx_nfa *dst, const rx_nfa *src) {
  *dst = *src;
  dst->s = malloc((size_t)src->n * sizeof *dst->s);
  if (!dst->s)
    return yaie_fail(YAIE_ERR_NOMEM, "regex: out of memory");
  memcpy(dst->s, src->s, (size_t)src->n * sizeof *dst->s);
  dst->cap = src->n;
  return YAIE_OK;
}

void rx_nfa_free(rx_nfa *nfa) {
  free(nfa->s);
  memset(nfa, 0, sizeof *nfa);
}

/* Constraints: a regex's lazy DFA and a vocabulary's byte trie. A state's mask is found by one
 * walk of the trie in preorder, carrying the DFA state of each depth: a token is allowed when the
 * walk reaches its node alive, and a dead transition skips the node's whole subtree, so tokens
 * sharing a prefix share its DFA steps. Masks are computed once per state and stored once per
 * distinct content. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "regex.h"

enum { MAX_MASK_BYTES = 512 << 20 };

typedef struct trie_node {
  uint32_t skip;      /* the node after this node's subtree, in preorder */
  uint32_t tok_begin; /* tokens spelled exactly by this node: sorted ids [tok_begin, +tok_n) */
  uint32_t tok_n;
  uint32_t depth : 24, byte : 8;
} trie_node;

struct yaie_constraint {
  rx_dfa dfa;
  int vocab;    /* mask length */
  int n_tok;    /* the tokenizer's vocabulary */
  int32_t eos;  /* -1 when none */
  char *bytes;  /* each token's decoded bytes */
  size_t *off;
  uint32_t *len;
  trie_node *nodes;
  uint32_t n_nodes, max_depth;
  int32_t *sorted; /* token ids in the trie, sorted by their bytes */
  int32_t *walk;   /* DFA state per trie depth */
  /* mask cache */
  int32_t *mask_of; /* per DFA state: an index into masks, or -1 */
  int32_t mask_of_n;
  uint8_t **masks;
  int32_t n_masks, masks_cap, n_computed;
  int32_t *mask_table; /* open addressing over masks' contents, -1 empty */
  size_t mask_table_size;
  size_t mask_bytes;
  uint8_t *scratch;
};

static yaie_status nomem(void) { return yaie_fail(YAIE_ERR_NOMEM, "constraint: out of memory"); }

/* ---------------------------------------------------------------------------------------------
 * The vocabulary's byte trie */

static _Thread_local const yaie_constraint *sort_c;

static int bytes_cmp(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  uint32_t lx = sort_c->len[x], ly = sort_c->len[y];
  int r = memcmp(sort_c->bytes + sort_c->off[x], sort_c->bytes + sort_c->off[y], lx < ly ? lx : ly);
  if (r)
    return r;
  if (lx != ly)
    return lx < ly ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* Copies every token's bytes out of the tokenizer, so the constraint does not depend on it. */
static yaie_status copy_tokens(yaie_constraint *c, const yaie_tokenizer *tok) {
  size_t total = 0;
  const char *p;
  size_t n;
  for (int id = 0; id < c->n_tok; id++) {
    YAIE_TRY(yaie_token_bytes(tok, id, &p, &n));
    total += n;
  }
  c->bytes = malloc(total + 1);
  c->off = malloc((size_t)c->n_tok * sizeof *c->off);
  c->len = malloc((size_t)c->n_tok * sizeof *c->len);
  if (!c->bytes || !c->off || !c->len)
    return nomem();
  total = 0;
  for (int id = 0; id < c->n_tok; id++) {
    YAIE_TRY(yaie_token_bytes(tok, id, &p, &n));
    if (n >= (1u << 24))
      return yaie_fail(YAIE_ERR_UNSUPPORTED, "constraint: token %d is longer than 16 MiB", id);
    memcpy(c->bytes + total, p, n);
    c->off[id] = total;
    c->len[id] = (uint32_t)n;
    total += n;
  }
  return YAIE_OK;
}

/* Builds the trie in preorder from the tokens sorted by their bytes: each token shares the
 * nodes of its common prefix with the token before it and appends the rest. */
static yaie_status build_trie(yaie_constraint *c) {
  size_t total = 1;
  int32_t n_sorted = 0;
  c->sorted = malloc(((size_t)c->n_tok + 1) * sizeof *c->sorted);
  if (!c->sorted)
    return nomem();
  for (int32_t id = 0; id < c->n_tok; id++)
    if (c->len[id] > 0 && id != c->eos) {
      c->sorted[n_sorted++] = id;
      total += c->len[id];
      if (c->len[id] > c->max_depth)
        c->max_depth = c->len[id];
    }
  sort_c = c; /* qsort takes no context argument */
  qsort(c->sorted, (size_t)n_sorted, sizeof *c->sorted, bytes_cmp);
  c->nodes = malloc(total * sizeof *c->nodes);
  uint32_t *path = malloc(((size_t)c->max_depth + 1) * sizeof *path);
  c->walk = malloc(((size_t)c->max_depth + 1) * sizeof *c->walk);
  if (!c->nodes || !path || !c->walk) {
    free(path);
    return nomem();
  }
  c->nodes[0] = (trie_node){0};
  path[0] = 0;
  uint32_t n = 1, depth = 0;
  for (int32_t k = 0; k < n_sorted; k++) {
    int32_t id = c->sorted[k];
    const uint8_t *s = (const uint8_t *)c->bytes + c->off[id];
    uint32_t l = c->len[id], lcp = 0;
    if (k > 0) {
      int32_t prev = c->sorted[k - 1];
      const uint8_t *q = (const uint8_t *)c->bytes + c->off[prev];
      while (lcp < l && lcp < c->len[prev] && s[lcp] == q[lcp])
        lcp++;
    }
    for (; depth > lcp; depth--)
      c->nodes[path[depth]].skip = n;
    for (; depth < l; depth++) {
      c->nodes[n] = (trie_node){.depth = depth + 1, .byte = s[depth]};
      path[depth + 1] = n++;
    }
    trie_node *t = &c->nodes[path[l]];
    if (t->tok_n++ == 0)
      t->tok_begin = (uint32_t)k;
  }
  for (; depth > 0; depth--)
    c->nodes[path[depth]].skip = n;
  c->n_nodes = n;
  free(path);
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle */

yaie_status yaie_constraint_new(const yaie_regex *re, const yaie_tokenizer *tok, int vocab_size,
                                yaie_constraint **out) {
  if (!re || !tok || !out)
    return yaie_fail(YAIE_ERR_ARG, "yaie_constraint_new: NULL argument");
  *out = NULL;
  int n_tok = yaie_tokenizer_vocab_size(tok);
  if (vocab_size < 0 || (vocab_size > 0 && vocab_size < n_tok))
    return yaie_fail(YAIE_ERR_ARG, "constraint: vocab_size %d is smaller than the tokenizer's %d",
                     vocab_size, n_tok);
  yaie_constraint *c = calloc(1, sizeof *c);
  if (!c)
    return nomem();
  c->n_tok = n_tok;
  c->vocab = vocab_size ? vocab_size : n_tok;
  c->eos = yaie_tokenizer_eos(tok);
  if (c->eos >= n_tok)
    c->eos = -1;
  yaie_status st = rx_dfa_init(&c->dfa, &re->nfa);
  if (st == YAIE_OK)
    st = copy_tokens(c, tok);
  if (st == YAIE_OK)
    st = build_trie(c);
  if (st == YAIE_OK && !(c->scratch = malloc((size_t)c->vocab)))
    st = nomem();
  if (st != YAIE_OK) {
    yaie_constraint_free(c);
    return st;
  }
  *out = c;
  return YAIE_OK;
}

void yaie_constraint_free(yaie_constraint *c) {
  if (!c)
    return;
  rx_dfa_free(&c->dfa);
  free(c->bytes);
  free(c->off);
  free(c->len);
  free(c->nodes);
  free(c->sorted);
  free(c->walk);
  free(c->mask_of);
  for (int32_t k = 0; k < c->n_masks; k++)
    free(c->masks[k]);
  free(c->masks);
  free(c->mask_table);
  free(c->scratch);
  free(c);
}

int yaie_constraint_vocab_size(const yaie_constraint *c) { return c ? c->vocab : 0; }

int yaie_constraint_start(const yaie_constraint *c) { return c ? c->dfa.start : RX_DEAD; }

static int valid_state(const yaie_constraint *c, int state) { return c && state >= 0 && state < c->dfa.n; }

int yaie_constraint_is_accepting(const yaie_constraint *c, int state) {
  return valid_state(c, state) && (c->dfa.st[state].flags & RX_ACCEPT);
}

int yaie_constraint_can_continue(const yaie_constraint *c, int state) {
  return valid_state(c, state) && (c->dfa.st[state].flags & RX_CONTINUE);
}

static yaie_status bad_state(const yaie_constraint *c, int state) {
  return yaie_fail(YAIE_ERR_ARG, "constraint: state %d does not exist (the DFA has %d states)", state,
                   c->dfa.n);
}

/* ---------------------------------------------------------------------------------------------
 * Masks */

yaie_status yaie_constraint_mask_compute(yaie_constraint *c, int state, int use_trie, uint8_t *out) {
  if (!c || !out)
    return yaie_fail(YAIE_ERR_ARG, "yaie_constraint_mask_compute: NULL argument");
  if (!valid_state(c, state))
    return bad_state(c, state);
  memset(out, 0, (size_t)c->vocab);
  if (c->eos >= 0 && (c->dfa.st[state].flags & RX_ACCEPT))
    out[c->eos] = 1;
  if (state == RX_DEAD)
    return YAIE_OK;
  if (!use_trie) {
    for (int32_t id = 0; id < c->n_tok; id++) {
      if (c->len[id] == 0 || id == c->eos)
        continue;
      const uint8_t *s = (const uint8_t *)c->bytes + c->off[id];
      int32_t t = state;
      for (uint32_t k = 0; k < c->len[id] && t != RX_DEAD; k++)
        YAIE_TRY(rx_dfa_step(&c->dfa, t, s[k], &t));
      out[id] = t != RX_DEAD;
    }
    return YAIE_OK;
  }
  c->walk[0] = state;
  for (uint32_t i = 1; i < c->n_nodes;) {
    const trie_node *t = &c->nodes[i];
    int32_t next;
    YAIE_TRY(rx_dfa_step(&c->dfa, c->walk[t->depth - 1], (uint8_t)t->byte, &next));
    if (next == RX_DEAD) {
      i = t->skip;
      continue;
    }
    c->walk[t->depth] = next;
    for (uint32_t k = 0; k < t->tok_n; k++)
      out[c->sorted[t->tok_begin + k]] = 1;
    i++;
  }
  return YAIE_OK;
}

static uint64_t mask_hash(const uint8_t *m, size_t n) {
  uint64_t h = 1469598103934665603ull;
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    uint64_t w;
    memcpy(&w, m + k, 8);
    h = (h ^ w) * 1099511628211ull;
    h ^= h >> 32;
  }
  for (; k < n; k++)
    h = (h ^ m[k]) * 1099511628211ull;
  return h;
}

static int32_t *mask_slot(yaie_constraint *c, const uint8_t *m) {
  size_t size_mask = c->mask_table_size - 1, i = (size_t)mask_hash(m, (size_t)c->vocab) & size_mask;
  for (;; i = (i + 1) & size_mask) {
    int32_t id = c->mask_table[i];
    if (id < 0 || memcmp(c->masks[id], m, (size_t)c->vocab) == 0)
      return &c->mask_table[i];
  }
}

static yaie_status mask_table_grow(yaie_constraint *c) {
  size_t size = c->mask_table_size ? c->mask_table_size * 2 : 64;
  int32_t *t = malloc(size * sizeof *t);
  if (!t)
    return nomem();
  free(c->mask_table);
  c->mask_table = t;
  c->mask_table_size = size;
  memset(t, 0xFF, size * sizeof *t);
  for (int32_t k = 0; k < c->n_masks; k++)
    *mask_slot(c, c->masks[k]) = k;
  return YAIE_OK;
}

/* The stored copy of the mask in c->scratch (an existing one when the content is the same). */
static yaie_status intern_mask(yaie_constraint *c, int32_t *index) {
  if ((size_t)(c->n_masks + 1) * 2 > c->mask_table_size)
    YAIE_TRY(mask_table_grow(c));
  int32_t *slot = mask_slot(c, c->scratch);
  if (*slot >= 0) {
    *index = *slot;
    return YAIE_OK;
  }
  if (c->mask_bytes + (size_t)c->vocab > MAX_MASK_BYTES)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "regex too complex: its distinct masks need more than %d MiB",
                     MAX_MASK_BYTES >> 20);
  if (c->n_masks == c->masks_cap) {
    int32_t cap = c->masks_cap ? c->masks_cap * 2 : 16;
    uint8_t **v = realloc(c->masks, (size_t)cap * sizeof *v);
    if (!v)
      return nomem();
    c->masks = v;
    c->masks_cap = cap;
  }
  uint8_t *m = malloc((size_t)c->vocab);
  if (!m)
    return nomem();
  memcpy(m, c->scratch, (size_t)c->vocab);
  c->masks[c->n_masks] = m;
  c->mask_bytes += (size_t)c->vocab;
  *slot = *index = c->n_masks++;
  return YAIE_OK;
}

yaie_status yaie_constraint_mask(yaie_constraint *c, int state, const uint8_t **mask) {
  if (!c || !mask)
    return yaie_fail(YAIE_ERR_ARG, "yaie_constraint_mask: NULL argument");
  if (!valid_state(c, state))
    return bad_state(c, state);
  if (state < c->mask_of_n && c->mask_of[state] >= 0) {
    *mask = c->masks[c->mask_of[state]];
    return YAIE_OK;
  }
  YAIE_TRY(yaie_constraint_mask_compute(c, state, 1, c->scratch));
  if (c->dfa.n > c->mask_of_n) { /* the walk may have built new states: cover them all */
    int32_t *v = realloc(c->mask_of, (size_t)c->dfa.cap * sizeof *v);
    if (!v)
      return nomem();
    for (int32_t k = c->mask_of_n; k < c->dfa.cap; k++)
      v[k] = -1;
    c->mask_of = v;
    c->mask_of_n = c->dfa.cap;
  }
  int32_t ix = -1;
  YAIE_TRY(intern_mask(c, &ix));
  c->mask_of[state] = ix;
  c->n_computed++;
  *mask = c->masks[ix];
  return YAIE_OK;
}

yaie_status yaie_constraint_advance(yaie_constraint *c, int state, int32_t token, int *next_state) {
  if (!c || !next_state)
    return yaie_fail(YAIE_ERR_ARG, "yaie_constraint_advance: NULL argument");
  if (!valid_state(c, state))
    return bad_state(c, state);
  if (token < 0 || token >= c->vocab)
    return yaie_fail(YAIE_ERR_ARG, "constraint: token %d is outside the vocabulary (size %d)", (int)token,
                     c->vocab);
  if (token == c->eos) {
    if (!(c->dfa.st[state].flags & RX_ACCEPT))
      return yaie_fail(YAIE_ERR_ARG, "constraint: EOS before the text matches (state %d)", state);
    *next_state = state;
    return YAIE_OK;
  }
  if (token >= c->n_tok || c->len[token] == 0)
    return yaie_fail(YAIE_ERR_ARG, "constraint: token %d decodes to no text, so it is never allowed",
                     (int)token);
  const uint8_t *s = (const uint8_t *)c->bytes + c->off[token];
  int32_t t = state;
  for (uint32_t k = 0; k < c->len[token] && t != RX_DEAD; k++)
    YAIE_TRY(rx_dfa_step(&c->dfa, t, s[k], &t));
  if (t == RX_DEAD) {
    int shown = c->len[token] > 40 ? 40 : (int)c->len[token];
    return yaie_fail(YAIE_ERR_ARG, "constraint: token %d (\"%.*s\") is not allowed in state %d", (int)token,
                     shown, (const char *)s, state);
  }
  *next_state = t;
  return YAIE_OK;
}

void yaie_constraint_get_stats(const yaie_constraint *c, yaie_constraint_stats *out) {
  if (!out)
    return;
  memset(out, 0, sizeof *out);
  if (!c)
    return;
  out->dfa_states = c->dfa.n;
  out->masks = c->n_computed;
  out->unique_masks = c->n_masks;
  out->mask_bytes = c->mask_bytes;
  out->trie_nodes = (int)c->n_nodes;
}

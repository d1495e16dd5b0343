/* The lazy DFA: subset construction on demand. A DFA state is the sorted set of live NFA states
 * (RANGE and MATCH only, the epsilon closure taken) that the text so far can be in; a hash table
 * finds the state of a set, and each state's transitions, one per byte class, are computed the
 * first time they are asked for. State 0 is the dead state (the empty set). States are never
 * evicted, because callers hold their ids; past RX_MAX_DFA_STATES the DFA fails cleanly. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "regex.h"

static yaie_status nomem(void) { return yaie_fail(YAIE_ERR_NOMEM, "regex: out of memory"); }

static yaie_status too_complex(void) {
  return yaie_fail(YAIE_ERR_UNSUPPORTED,
                   "regex too complex: its DFA needs more than %d states (or %d NFA states in all)",
                   RX_MAX_DFA_STATES, RX_MAX_SET_WORDS);
}

/* ---------------------------------------------------------------------------------------------
 * Epsilon closure into d->scratch */

static void closure_begin(rx_dfa *d) {
  if (++d->mark_gen == 0) { /* the generation counter wrapped: forget every old mark */
    memset(d->mark, 0, (size_t)d->nfa.n * sizeof *d->mark);
    d->mark_gen = 1;
  }
}

static void closure_push(rx_dfa *d, int32_t *sp, int32_t t) {
  if (t < 0 || !d->nfa.s[t].live || d->mark[t] == d->mark_gen)
    return;
  d->mark[t] = d->mark_gen;
  d->stack[(*sp)++] = t;
}

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Follows SPLIT and EPS from the pushed states; returns the size of the sorted set. */
static uint32_t closure_run(rx_dfa *d, int32_t sp) {
  uint32_t n = 0;
  while (sp > 0) {
    int32_t t = d->stack[--sp];
    const rx_state *s = &d->nfa.s[t];
    if (s->op == NFA_RANGE || s->op == NFA_MATCH)
      d->scratch[n++] = (uint32_t)t;
    else {
      closure_push(d, &sp, s->out1);
      closure_push(d, &sp, s->out);
    }
  }
  qsort(d->scratch, n, sizeof *d->scratch, u32_cmp);
  return n;
}

/* ---------------------------------------------------------------------------------------------
 * States */

static uint64_t set_hash(const uint32_t *set, uint32_t n) {
  uint64_t h = 1469598103934665603ull ^ n;
  for (uint32_t k = 0; k < n; k++)
    h = (h ^ set[k]) * 1099511628211ull;
  return h ^ (h >> 29);
}

static int32_t *table_slot(rx_dfa *d, const uint32_t *set, uint32_t n) {
  size_t mask = d->table_size - 1, i = (size_t)set_hash(set, n) & mask;
  for (;; i = (i + 1) & mask) {
    int32_t id = d->table[i];
    if (id < 0)
      return &d->table[i];
    const rx_dstate *st = &d->st[id];
    if (st->set_len == n && (n == 0 || memcmp(d->sets + st->set_off, set, n * sizeof *set) == 0))
      return &d->table[i];
  }
}

static yaie_status table_grow(rx_dfa *d) {
  size_t size = d->table_size ? d->table_size * 2 : 1024;
  int32_t *t = malloc(size * sizeof *t);
  if (!t)
    return nomem();
  free(d->table);
  d->table = t;
  d->table_size = size;
  memset(t, 0xFF, size * sizeof *t);
  for (int32_t id = 0; id < d->n; id++)
    *table_slot(d, d->sets + d->st[id].set_off, d->st[id].set_len) = id;
  return YAIE_OK;
}

/* The state of the set in d->scratch[0, n), added when new. */
static yaie_status state_of(rx_dfa *d, uint32_t n, int32_t *id) {
  int32_t *slot = table_slot(d, d->scratch, n);
  if (*slot >= 0) {
    *id = *slot;
    return YAIE_OK;
  }
  if (d->n >= RX_MAX_DFA_STATES || d->sets_n + n > RX_MAX_SET_WORDS)
    return too_complex();
  if (d->sets_n + n > d->sets_cap) {
    size_t cap = d->sets_cap ? d->sets_cap : 1024;
    while (cap < d->sets_n + n)
      cap *= 2;
    uint32_t *v = realloc(d->sets, cap * sizeof *v);
    if (!v)
      return nomem();
    d->sets = v;
    d->sets_cap = cap;
  }
  size_t nc = (size_t)d->nfa.n_classes;
  if (d->n == d->cap) {
    int32_t cap = d->cap ? d->cap * 2 : 64;
    rx_dstate *st = realloc(d->st, (size_t)cap * sizeof *st);
    if (st)
      d->st = st;
    int32_t *tr = st ? realloc(d->trans, (size_t)cap * nc * sizeof *tr) : NULL;
    if (!tr)
      return nomem();
    d->trans = tr;
    d->cap = cap;
  }
  rx_dstate *st = &d->st[d->n];
  st->set_off = (uint32_t)d->sets_n;
  st->set_len = n;
  st->flags = 0;
  for (uint32_t k = 0; k < n; k++)
    st->flags |= d->nfa.s[d->scratch[k]].op == NFA_MATCH ? RX_ACCEPT : RX_CONTINUE;
  if (n)
    memcpy(d->sets + d->sets_n, d->scratch, n * sizeof *d->scratch);
  d->sets_n += n;
  memset(d->trans + (size_t)d->n * nc, 0xFF, nc * sizeof *d->trans);
  *id = d->n++;
  if ((size_t)d->n * 2 > d->table_size)
    return table_grow(d); /* rehashes every state, the new one included */
  *slot = *id;
  return YAIE_OK;
}

yaie_status rx_dfa_compute(rx_dfa *d, int32_t s, uint8_t b, int32_t *next) {
  const rx_dstate *st = &d->st[s];
  int32_t sp = 0;
  closure_begin(d);
  for (uint32_t k = 0; k < st->set_len; k++) {
    const rx_state *t = &d->nfa.s[d->sets[st->set_off + k]];
    if (t->op == NFA_RANGE && t->lo <= b && b <= t->hi)
      closure_push(d, &sp, t->out);
  }
  YAIE_TRY(state_of(d, closure_run(d, sp), next));
  d->trans[(size_t)s * (size_t)d->nfa.n_classes + d->nfa.byte_class[b]] = *next;
  return YAIE_OK;
}

yaie_status rx_dfa_init(rx_dfa *d, const rx_nfa *nfa) {
  memset(d, 0, sizeof *d);
  YAIE_TRY(rx_nfa_copy(&d->nfa, nfa));
  size_t n = (size_t)nfa->n;
  d->mark = calloc(n, sizeof *d->mark);
  d->stack = malloc(n * sizeof *d->stack);
  d->scratch = malloc(n * sizeof *d->scratch);
  d->sets_cap = 1024;
  d->sets = malloc(d->sets_cap * sizeof *d->sets);
  yaie_status st = d->mark && d->stack && d->scratch && d->sets ? table_grow(d) : nomem();
  int32_t dead, sp = 0;
  if (st == YAIE_OK)
    st = state_of(d, 0, &dead);
  if (st == YAIE_OK) {
    closure_begin(d);
    closure_push(d, &sp, nfa->start);
    st = state_of(d, closure_run(d, sp), &d->start);
  }
  if (st != YAIE_OK)
    rx_dfa_free(d);
  return st;
}

void rx_dfa_free(rx_dfa *d) {
  rx_nfa_free(&d->nfa);
  free(d->st);
  free(d->trans);
  free(d->sets);
  free(d->table);
  free(d->mark);
  free(d->stack);
  free(d->scratch);
  memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------------------------------------
 * The public regex */

yaie_status yaie_regex_new(const char *pattern, size_t len, yaie_regex **out) {
  if (!out || (!pattern && len))
    return yaie_fail(YAIE_ERR_ARG, "yaie_regex_new: NULL argument");
  *out = NULL;
  rx_ast ast;
  YAIE_TRY(rx_parse(pattern ? pattern : "", len, &ast));
  yaie_regex *re = calloc(1, sizeof *re);
  yaie_status st = re ? rx_compile(&ast, &re->nfa) : nomem();
  rx_ast_free(&ast);
  if (st == YAIE_OK && !re->nfa.s[re->nfa.start].live)
    st = yaie_fail(YAIE_ERR_ARG, "regex \"%.*s%s\": the pattern matches no text at all",
                   len > 60 ? 60 : (int)len, pattern, len > 60 ? "..." : "");
  if (st != YAIE_OK) {
    yaie_regex_free(re);
    return st;
  }
  *out = re;
  return YAIE_OK;
}

void yaie_regex_free(yaie_regex *re) {
  if (!re)
    return;
  rx_nfa_free(&re->nfa);
  free(re);
}

yaie_status yaie_regex_match(const yaie_regex *re, const char *text, size_t len, int *matched) {
  if (!re || !matched || (!text && len))
    return yaie_fail(YAIE_ERR_ARG, "yaie_regex_match: NULL argument");
  rx_dfa d;
  YAIE_TRY(rx_dfa_init(&d, &re->nfa));
  int32_t s = d.start;
  yaie_status st = YAIE_OK;
  for (size_t i = 0; i < len && s != RX_DEAD && st == YAIE_OK; i++)
    st = rx_dfa_step(&d, s, (uint8_t)text[i], &s);
  *matched = st == YAIE_OK && (d.st[s].flags & RX_ACCEPT) != 0;
  rx_dfa_free(&d);
  return st;
}

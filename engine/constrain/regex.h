/* Inside the regex engine: a pattern is parsed into a syntax tree (regex_parse.c), compiled to a
 * byte-level Thompson NFA (regex_nfa.c) and determinized lazily, a state and a transition at a
 * time (regex_dfa.c). Matches are anchored at both ends, so only the language matters: there are
 * no captures, no priorities and no laziness. */
#ifndef YAIE_REGEX_H
#define YAIE_REGEX_H

#include <stddef.h>
#include <stdint.h>

#include "yaie_constrain.h"

/* Bounds that keep a hostile pattern from taking the process down. */
enum {
  RX_MAX_DEPTH = 200,         /* nested groups */
  RX_MAX_REPEAT = 1000,       /* the m and n of {m,n} */
  RX_MAX_NFA_STATES = 200000,
  RX_MAX_DFA_STATES = 10000,
  RX_MAX_SET_WORDS = 1 << 24  /* NFA ids held by all DFA states' sets together */
};

/* --- syntax tree (regex_parse.c) --- */
typedef enum rx_kind { RX_EMPTY, RX_CLASS, RX_CONCAT, RX_ALT, RX_REPEAT } rx_kind;

/* A literal character is a class of one code point; CONCAT and ALT list their children through
 * `child` and the children's `next`, so a long literal does not make a deep tree. */
typedef struct rx_node {
  rx_kind kind;
  uint32_t pos;          /* byte offset in the pattern, for messages */
  int32_t child, next;   /* -1 when none */
  int32_t min, max;      /* REPEAT; max -1: unbounded */
  int32_t range_off, n_ranges; /* CLASS: sorted, disjoint code point ranges, no surrogates */
} rx_node;

typedef struct rx_range {
  uint32_t lo, hi;
} rx_range;

typedef struct rx_ast {
  rx_node *nodes;
  int32_t n, cap;
  rx_range *ranges;
  int32_t n_ranges, ranges_cap;
  int32_t root;
} rx_ast;

yaie_status rx_parse(const char *pattern, size_t len, rx_ast *out);
void rx_ast_free(rx_ast *ast);

/* --- NFA (regex_nfa.c) --- */
typedef enum rx_op { NFA_RANGE, NFA_SPLIT, NFA_EPS, NFA_MATCH } rx_op;

typedef struct rx_state {
  uint8_t op, lo, hi; /* NFA_RANGE: bytes lo..hi lead to out */
  uint8_t live;       /* MATCH is reachable from here; the DFA never holds dead states */
  int32_t out, out1;  /* -1 when none */
} rx_state;

typedef struct rx_nfa {
  rx_state *s;
  int32_t n, cap;
  int32_t start;
  uint8_t byte_class[256]; /* bytes no RANGE tells apart share a class */
  int n_classes;
} rx_nfa;

yaie_status rx_compile(const rx_ast *ast, rx_nfa *out);
yaie_status rx_nfa_copy(rx_nfa *dst, const rx_nfa *src);
void rx_nfa_free(rx_nfa *nfa);

struct yaie_regex {
  rx_nfa nfa;
};

/* --- lazy DFA (regex_dfa.c) --- */
enum { RX_DEAD = 0 };
enum { RX_ACCEPT = 1, RX_CONTINUE = 2 };

typedef struct rx_dstate {
  uint32_t set_off, set_len; /* its NFA states: sorted ids in `sets` */
  uint8_t flags;             /* RX_ACCEPT | RX_CONTINUE */
} rx_dstate;

typedef struct rx_dfa {
  rx_nfa nfa; /* a copy, so the DFA outlives the regex */
  rx_dstate *st;
  int32_t n, cap;
  int32_t start;
  int32_t *trans; /* n * nfa.n_classes next states; -1: not computed yet */
  uint32_t *sets;
  size_t sets_n, sets_cap;
  int32_t *table; /* open addressing: set -> state id, -1 empty */
  size_t table_size;
  /* scratch for subset construction */
  uint32_t *mark, mark_gen;
  int32_t *stack;
  uint32_t *scratch;
} rx_dfa;

yaie_status rx_dfa_init(rx_dfa *d, const rx_nfa *nfa);
void rx_dfa_free(rx_dfa *d);
/* Builds the transition of state s on byte b (the slow path of rx_dfa_step). */
yaie_status rx_dfa_compute(rx_dfa *d, int32_t s, uint8_t b, int32_t *next);

static inline yaie_status rx_dfa_step(rx_dfa *d, int32_t s, uint8_t b, int32_t *next) {
  int32_t t = d->trans[(size_t)s * (size_t)d->nfa.n_classes + d->nfa.byte_class[b]];
  if (t >= 0) {
    *next = t;
    return YAIE_OK;
  }
  return rx_dfa_compute(d, s, b, next);
}

/* --- constraints (constrain.c) --- */
/* Computes the state's mask into out (vocab_size bytes) without the cache: over the vocabulary's
 * byte trie, or (use_trie 0) token by token. For benchmarks and specs; not in the public header. */
yaie_status yaie_constraint_mask_compute(yaie_constraint *c, int state, int use_trie, uint8_t *out);

#endif

/* The regex parser: pattern text to a syntax tree whose leaves are sets of code points. Recursive
 * descent over alternation, concatenation, repetition and atoms; the nesting it recurses through
 * is bounded (RX_MAX_DEPTH), so no pattern can exhaust the stack. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "regex.h"
#include "tokenizer_impl.h"

enum { CP_MAX = 0x10FFFF, SURR_LO = 0xD800, SURR_HI = 0xDFFF };

typedef struct parser {
  const char *s;
  size_t n, i;
  rx_ast *ast;
  int depth;
  rx_range *tmp; /* a class being built */
  size_t tmp_n, tmp_cap;
} parser;

static yaie_status perr(const parser *p, size_t pos, const char *what) {
  int shown = p->n > 60 ? 60 : (int)p->n;
  return yaie_fail(YAIE_ERR_ARG, "regex \"%.*s%s\": %s at position %zu", shown, p->s,
                   p->n > 60 ? "..." : "", what, pos);
}

static yaie_status nomem(void) { return yaie_fail(YAIE_ERR_NOMEM, "regex: out of memory"); }

/* ---------------------------------------------------------------------------------------------
 * Tree building */

static yaie_status new_node(parser *p, rx_kind kind, size_t pos, int32_t *id) {
  rx_ast *a = p->ast;
  if (a->n == a->cap) {
    int32_t cap = a->cap ? a->cap * 2 : 64;
    if (cap > (1 << 24))
      return perr(p, pos, "regex too large");
    rx_node *v = realloc(a->nodes, (size_t)cap * sizeof *v);
    if (!v)
      return nomem();
    a->nodes = v;
    a->cap = cap;
  }
  a->nodes[a->n] = (rx_node){.kind = kind, .pos = (uint32_t)pos, .child = -1, .next = -1};
  *id = a->n++;
  return YAIE_OK;
}

static yaie_status tmp_add(parser *p, uint32_t lo, uint32_t hi) {
  if (p->tmp_n == p->tmp_cap) {
    size_t cap = p->tmp_cap ? p->tmp_cap * 2 : 16;
    rx_range *v = realloc(p->tmp, cap * sizeof *v);
    if (!v)
      return nomem();
    p->tmp = v;
    p->tmp_cap = cap;
  }
  p->tmp[p->tmp_n++] = (rx_range){lo, hi};
  return YAIE_OK;
}

static int range_cmp(const void *a, const void *b) {
  const rx_range *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts and merges the class being built, optionally complements it, and drops surrogates
 * (no UTF-8 text holds them). Leaves the result in p->tmp. */
static yaie_status tmp_normalize(parser *p, int negate) {
  qsort(p->tmp, p->tmp_n, sizeof *p->tmp, range_cmp);
  size_t m = 0;
  for (size_t k = 0; k < p->tmp_n; k++) {
    if (m && p->tmp[k].lo <= p->tmp[m - 1].hi + 1) {
      if (p->tmp[k].hi > p->tmp[m - 1].hi)
        p->tmp[m - 1].hi = p->tmp[k].hi;
    } else
      p->tmp[m++] = p->tmp[k];
  }
  p->tmp_n = m;
  size_t n = p->tmp_n;
  uint32_t next = 0;
  if (negate) { /* the gaps between the ranges, appended, then moved to the front */
    for (size_t k = 0; k < n; k++) {
      if (p->tmp[k].lo > next)
        YAIE_TRY(tmp_add(p, next, p->tmp[k].lo - 1));
      next = p->tmp[k].hi + 1;
    }
    if (next <= CP_MAX)
      YAIE_TRY(tmp_add(p, next, CP_MAX));
    memmove(p->tmp, p->tmp + n, (p->tmp_n - n) * sizeof *p->tmp);
    p->tmp_n -= n;
    n = p->tmp_n;
  }
  for (size_t k = 0; k < n; k++) { /* split around the surrogates */
    rx_range r = p->tmp[k];
    if (r.hi < SURR_LO || r.lo > SURR_HI)
      continue;
    if (r.lo < SURR_LO && r.hi > SURR_HI) {
      p->tmp[k].hi = SURR_LO - 1;
      YAIE_TRY(tmp_add(p, SURR_HI + 1, r.hi));
    } else if (r.lo < SURR_LO)
      p->tmp[k].hi = SURR_LO - 1;
    else if (r.hi > SURR_HI)
      p->tmp[k].lo = SURR_HI + 1;
    else
      p->tmp[k].lo = 1, p->tmp[k].hi = 0; /* wholly inside: empty, dropped below */
  }
  m = 0;
  for (size_t k = 0; k < p->tmp_n; k++)
    if (p->tmp[k].lo <= p->tmp[k].hi)
      p->tmp[m++] = p->tmp[k];
  p->tmp_n = m;
  qsort(p->tmp, p->tmp_n, sizeof *p->tmp, range_cmp);
  return YAIE_OK;
}

/* A CLASS node holding the normalized p->tmp; empties p->tmp. */
static yaie_status class_node(parser *p, size_t pos, int negate, int32_t *id) {
  YAIE_TRY(tmp_normalize(p, negate));
  rx_ast *a = p->ast;
  if ((size_t)a->n_ranges + p->tmp_n > (size_t)a->ranges_cap) {
    size_t cap = a->ranges_cap ? (size_t)a->ranges_cap : 64;
    while (cap < (size_t)a->n_ranges + p->tmp_n)
      cap *= 2;
    if (cap > (1u << 24))
      return perr(p, pos, "regex too large");
    rx_range *v = realloc(a->ranges, cap * sizeof *v);
    if (!v)
      return nomem();
    a->ranges = v;
    a->ranges_cap = (int32_t)cap;
  }
  YAIE_TRY(new_node(p, RX_CLASS, pos, id));
  a->nodes[*id].range_off = a->n_ranges;
  a->nodes[*id].n_ranges = (int32_t)p->tmp_n;
  if (p->tmp_n)
    memcpy(a->ranges + a->n_ranges, p->tmp, p->tmp_n * sizeof *p->tmp);
  a->n_ranges += (int32_t)p->tmp_n;
  p->tmp_n = 0;
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Escapes and characters */

/* \d \w \s and their complements, added to the class being built (in the complement's case as
 * its own gaps, so that [\D\s] stays a union). */
static yaie_status add_perl_class(parser *p, char c) {
  static const rx_range digit[] = {{'0', '9'}};
  static const rx_range word[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
  static const rx_range space[] = {{'\t', '\r'}, {' ', ' '}};
  const rx_range *r = digit;
  size_t n = 1;
  char lower = (char)(c | 0x20);
  if (lower == 'w')
    r = word, n = 4;
  else if (lower == 's')
    r = space, n = 2;
  if (c == lower) {
    for (size_t k = 0; k < n; k++)
      YAIE_TRY(tmp_add(p, r[k].lo, r[k].hi));
    return YAIE_OK;
  }
  uint32_t next = 0;
  for (size_t k = 0; k < n; k++) {
    if (r[k].lo > next)
      YAIE_TRY(tmp_add(p, next, r[k].lo - 1));
    next = r[k].hi + 1;
  }
  return tmp_add(p, next, CP_MAX);
}

static int hex_val(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
    return (c | 0x20) - 'a' + 10;
  return -1;
}

/* Exactly `digits` hex digits at p->i, or with digits 0 a braced {H..}. */
static yaie_status parse_hex(parser *p, int digits, size_t at, uint32_t *cp) {
  uint32_t v = 0;
  if (digits == 0) {
    if (p->i >= p->n || p->s[p->i] != '{')
      return perr(p, at, "expected hex digits");
    size_t start = ++p->i;
    while (p->i < p->n && hex_val(p->s[p->i]) >= 0) {
      v = v * 16 + (uint32_t)hex_val(p->s[p->i++]);
      if (v > CP_MAX)
        return perr(p, at, "code point beyond U+10FFFF");
    }
    if (p->i == start || p->i >= p->n || p->s[p->i] != '}')
      return perr(p, at, "bad braced hex escape");
    p->i++;
  } else {
    for (int k = 0; k < digits; k++) {
      if (p->i >= p->n || hex_val(p->s[p->i]) < 0)
        return perr(p, at, "expected hex digits");
      v = v * 16 + (uint32_t)hex_val(p->s[p->i++]);
    }
  }
  *cp = v;
  return YAIE_OK;
}

/* \uHHHH, pairing a JSON-style high surrogate with the low one that follows it. */
static yaie_status parse_u_escape(parser *p, size_t at, uint32_t *cp) {
  int braced = p->i < p->n && p->s[p->i] == '{';
  YAIE_TRY(parse_hex(p, braced ? 0 : 4, at, cp));
  if (!braced && *cp >= 0xD800 && *cp <= 0xDBFF && p->i + 6 <= p->n && p->s[p->i] == '\\' &&
      p->s[p->i + 1] == 'u') {
    size_t save = p->i;
    uint32_t lo;
    p->i += 2;
    if (parse_hex(p, 4, at, &lo) == YAIE_OK && lo >= 0xDC00 && lo <= 0xDFFF) {
      *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
      return YAIE_OK;
    }
    p->i = save;
  }
  return YAIE_OK;
}

/* The character at p->i (valid UTF-8: the pattern was checked). */
static uint32_t next_char(parser *p) {
  size_t len;
  uint32_t cp = tok_utf8_decode(p->s + p->i, p->n - p->i, &len);
  p->i += len;
  return cp;
}

/* The escape after a backslash at p->i - 1: a code point in *cp, or *perl set to d w s D W S
 * (0 otherwise). */
static yaie_status parse_escape(parser *p, int in_class, uint32_t *cp, char *perl) {
  size_t at = p->i - 1;
  *perl = 0;
  if (p->i >= p->n)
    return perr(p, at, "trailing backslash");
  char c = p->s[p->i];
  if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
    *cp = next_char(p); /* punctuation and non-ASCII stand for themselves */
    return YAIE_OK;
  }
  p->i++;
  switch (c) {
  case 'd': case 'w': case 's': case 'D': case 'W': case 'S':
    *perl = c;
    return YAIE_OK;
  case 'n': *cp = '\n'; return YAIE_OK;
  case 't': *cp = '\t'; return YAIE_OK;
  case 'r': *cp = '\r'; return YAIE_OK;
  case 'f': *cp = '\f'; return YAIE_OK;
  case 'v': *cp = '\v'; return YAIE_OK;
  case 'a': *cp = 0x07; return YAIE_OK;
  case 'e': *cp = 0x1B; return YAIE_OK;
  case '0':
    if (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
      return perr(p, at, "octal escapes are not supported (use \\xHH)");
    *cp = 0;
    return YAIE_OK;
  case 'x':
    YAIE_TRY(parse_hex(p, p->i < p->n && p->s[p->i] == '{' ? 0 : 2, at, cp));
    break;
  case 'u':
    YAIE_TRY(parse_u_escape(p, at, cp));
    break;
  case 'b':
    if (in_class) {
      *cp = 0x08;
      return YAIE_OK;
    }
    return perr(p, at, "word boundaries (\\b) are not supported");
  case 'B': case 'A': case 'z': case 'Z': case 'G':
    return perr(p, at, "anchors other than the implicit ones are not supported");
  case 'p': case 'P':
    return perr(p, at, "Unicode properties (\\p) are not supported");
  default:
    if (c >= '1' && c <= '9')
      return perr(p, at, "backreferences are not supported");
    return perr(p, at, "unknown escape");
  }
  if (*cp >= SURR_LO && *cp <= SURR_HI)
    return perr(p, at, "a lone surrogate is not a character");
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Grammar:  alt := concat ('|' concat)*   concat := repeat*   repeat := atom quantifier?
 *           atom := '(' alt ')' | '[' class ']' | '.' | escape | character */

static yaie_status parse_alt(parser *p, int32_t *out);

/* A bracketed class starting at p->i ('['). */
static yaie_status parse_class(parser *p, int32_t *out) {
  size_t start = p->i++;
  int negate = 0, first = 1;
  if (p->i < p->n && p->s[p->i] == '^')
    negate = 1, p->i++;
  for (;;) {
    if (p->i >= p->n)
      return perr(p, start, "missing ']'");
    if (p->s[p->i] == ']' && !first) {
      p->i++;
      break;
    }
    first = 0;
    size_t at = p->i;
    uint32_t lo;
    char perl = 0;
    if (p->s[p->i] == '\\') {
      p->i++;
      YAIE_TRY(parse_escape(p, 1, &lo, &perl));
    } else
      lo = next_char(p);
    if (perl) {
      YAIE_TRY(add_perl_class(p, perl));
      continue;
    }
    uint32_t hi = lo;
    if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
      p->i++;
      if (p->s[p->i] == '\\') {
        p->i++;
        YAIE_TRY(parse_escape(p, 1, &hi, &perl));
        if (perl)
          return perr(p, at, "a class escape cannot end a range");
      } else
        hi = next_char(p);
      if (hi < lo)
        return perr(p, at, "range out of order");
    }
    YAIE_TRY(tmp_add(p, lo, hi));
  }
  return class_node(p, start, negate, out);
}

/* {m}, {m,} or {m,n} at p->i; *ok = 0 (and p->i unmoved) when the brace is not one. */
static yaie_status parse_braces(parser *p, int *ok, int32_t *min, int32_t *max) {
  size_t at = p->i, i = p->i + 1;
  long m = 0, n;
  *ok = 0;
  if (i >= p->n || p->s[i] < '0' || p->s[i] > '9')
    return YAIE_OK;
  for (; i < p->n && p->s[i] >= '0' && p->s[i] <= '9'; i++)
    if (m <= RX_MAX_REPEAT) /* saturates: anything above the bound is an error below */
      m = m * 10 + (p->s[i] - '0');
  n = m;
  if (i < p->n && p->s[i] == ',') {
    i++;
    n = -1;
    if (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') {
      n = 0;
      for (; i < p->n && p->s[i] >= '0' && p->s[i] <= '9'; i++)
        if (n <= RX_MAX_REPEAT)
          n = n * 10 + (p->s[i] - '0');
    }
  }
  if (i >= p->n || p->s[i] != '}')
    return YAIE_OK; /* not a quantifier: the brace is a literal, as in PCRE */
  if (m > RX_MAX_REPEAT || n > RX_MAX_REPEAT)
    return perr(p, at, "repetition count above 1000");
  if (n >= 0 && n < m)
    return perr(p, at, "repetition {m,n} with n < m");
  *ok = 1;
  *min = (int32_t)m;
  *max = (int32_t)n;
  p->i = i + 1;
  return YAIE_OK;
}

static int quantifier_at(parser *p) {
  if (p->i >= p->n)
    return 0;
  char c = p->s[p->i];
  if (c == '*' || c == '+' || c == '?')
    return 1;
  if (c != '{')
    return 0;
  size_t save = p->i;
  int ok = 0;
  int32_t m, n;
  if (parse_braces(p, &ok, &m, &n) != YAIE_OK)
    ok = 1; /* a malformed count is still a quantifier, reported where it is parsed */
  p->i = save;
  return ok;
}

static yaie_status parse_group(parser *p, int32_t *out) {
  size_t start = p->i++;
  if (p->i < p->n && p->s[p->i] == '?') {
    size_t q = p->i + 1;
    if (q < p->n && p->s[q] == ':')
      p->i = q + 1;
    else if (q < p->n && (p->s[q] == '<' || (p->s[q] == 'P' && q + 1 < p->n && p->s[q + 1] == '<'))) {
      size_t k = q + (p->s[q] == 'P' ? 2 : 1), name = k;
      while (k < p->n && (p->s[k] == '_' || (p->s[k] >= '0' && p->s[k] <= '9') ||
                          ((p->s[k] | 0x20) >= 'a' && (p->s[k] | 0x20) <= 'z')))
        k++;
      if (k == name || k >= p->n || p->s[k] != '>')
        return perr(p, start, "bad group name");
      p->i = k + 1;
    } else
      return perr(p, start, "unsupported group syntax (only ( ), (?: ) and (?<name> ))");
  }
  if (++p->depth > RX_MAX_DEPTH)
    return perr(p, start, "groups nested too deeply");
  YAIE_TRY(parse_alt(p, out));
  p->depth--;
  if (p->i >= p->n || p->s[p->i] != ')')
    return perr(p, start, "missing ')'");
  p->i++;
  return YAIE_OK;
}

static yaie_status parse_atom(parser *p, int32_t *out) {
  size_t at = p->i;
  char c = p->s[p->i];
  uint32_t cp;
  char perl = 0;
  switch (c) {
  case '(':
    return parse_group(p, out);
  case '[':
    return parse_class(p, out);
  case '*': case '+': case '?':
    return perr(p, at, "nothing to repeat");
  case '{':
    if (quantifier_at(p))
      return perr(p, at, "nothing to repeat");
    p->i++;
    YAIE_TRY(tmp_add(p, '{', '{'));
    return class_node(p, at, 0, out);
  case '^':
    if (at != 0)
      return perr(p, at, "'^' is only supported at the start of the pattern");
    p->i++;
    return new_node(p, RX_EMPTY, at, out);
  case '$':
    if (at != p->n - 1)
      return perr(p, at, "'$' is only supported at the end of the pattern");
    p->i++;
    return new_node(p, RX_EMPTY, at, out);
  case '.':
    p->i++;
    YAIE_TRY(tmp_add(p, '\n', '\n'));
    return class_node(p, at, 1, out);
  case '\\':
    p->i++;
    YAIE_TRY(parse_escape(p, 0, &cp, &perl));
    if (perl)
      YAIE_TRY(add_perl_class(p, perl));
    else
      YAIE_TRY(tmp_add(p, cp, cp));
    return class_node(p, at, 0, out);
  default:
    cp = next_char(p);
    YAIE_TRY(tmp_add(p, cp, cp));
    return class_node(p, at, 0, out);
  }
}

static yaie_status parse_repeat(parser *p, int32_t *out) {
  int32_t atom = -1;
  YAIE_TRY(parse_atom(p, &atom));
  if (!quantifier_at(p)) {
    *out = atom;
    return YAIE_OK;
  }
  size_t at = p->i;
  int32_t min = 0, max = -1;
  char c = p->s[p->i];
  if (c == '{') {
    int ok;
    YAIE_TRY(parse_braces(p, &ok, &min, &max));
  } else {
    p->i++;
    if (c == '+')
      min = 1;
    else if (c == '?')
      max = 1;
  }
  if (p->i < p->n && p->s[p->i] == '?')
    p->i++; /* lazy: the same language */
  if (p->i < p->n && p->s[p->i] == '+')
    return perr(p, p->i, "possessive quantifiers are not supported");
  if (quantifier_at(p))
    return perr(p, p->i, "nothing to repeat (a quantifier cannot follow a quantifier)");
  YAIE_TRY(new_node(p, RX_REPEAT, at, out));
  rx_node *r = &p->ast->nodes[*out];
  r->child = atom;
  r->min = min;
  r->max = max;
  return YAIE_OK;
}

/* A CONCAT or ALT node of the children listed from `first` (a lone child stands for itself). */
static yaie_status list_node(parser *p, rx_kind kind, size_t pos, int32_t first, int32_t count,
                             int32_t *out) {
  if (count == 1) {
    *out = first;
    return YAIE_OK;
  }
  if (count == 0)
    return new_node(p, RX_EMPTY, pos, out);
  YAIE_TRY(new_node(p, kind, pos, out));
  p->ast->nodes[*out].child = first;
  return YAIE_OK;
}

static yaie_status parse_concat(parser *p, int32_t *out) {
  size_t pos = p->i;
  int32_t first = -1, last = -1, count = 0;
  while (p->i < p->n && p->s[p->i] != '|' && p->s[p->i] != ')') {
    int32_t r = -1;
    YAIE_TRY(parse_repeat(p, &r));
    if (last >= 0)
      p->ast->nodes[last].next = r;
    else
      first = r;
    last = r;
    count++;
  }
  return list_node(p, RX_CONCAT, pos, first, count, out);
}

static yaie_status parse_alt(parser *p, int32_t *out) {
  size_t pos = p->i;
  int32_t first = -1, last = -1, count = 0;
  for (;;) {
    int32_t c = -1;
    YAIE_TRY(parse_concat(p, &c));
    if (last >= 0)
      p->ast->nodes[last].next = c;
    else
      first = c;
    last = c;
    count++;
    if (p->i >= p->n || p->s[p->i] != '|')
      break;
    p->i++;
  }
  return list_node(p, RX_ALT, pos, first, count, out);
}

yaie_status rx_parse(const char *pattern, size_t len, rx_ast *out) {
  memset(out, 0, sizeof *out);
  parser p = {.s = pattern, .n = len, .ast = out};
  size_t bad = tok_utf8_check(pattern, len);
  yaie_status st = bad != len ? perr(&p, bad, "invalid UTF-8") : parse_alt(&p, &out->root);
  if (st == YAIE_OK && p.i < p.n)
    st = perr(&p, p.i, "unmatched ')'");
  free(p.tmp);
  if (st != YAIE_OK)
    rx_ast_free(out);
  return st;
}

void rx_ast_free(rx_ast *ast) {
  free(ast->nodes);
  free(ast->ranges);
  memset(ast, 0, sizeof *ast);
}

/* The BPE merge loop both families share, and byte-level BPE's encoder.
 *
 * A word starts as one symbol per character. Every adjacent pair that can merge goes on a
 * heap: by the merged piece's score (SentencePiece scores, as llama.cpp's llm_tokenizer_spm)
 * or by the merge's rank (merges lists); ties go to the leftmost pair. Popping the best pair
 * merges it and offers the new neighbours, until nothing merges. A popped pair is stale when
 * either side has changed since it was pushed: both start where they did, and lengths only
 * grow, so comparing the total length tells. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_impl.h"

typedef struct tok_symbol {
  int32_t prev, next;
  uint32_t start, len;
  int32_t id; /* interned string id, or -1 when the text is in no table */
} tok_symbol;

typedef struct tok_bigram {
  double prio; /* higher merges first */
  int32_t left, right;
  uint32_t size;
  int32_t result;
} tok_bigram;

void tok_work_free(tok_work *w) {
  free(w->sym);
  free(w->heap);
  free(w->buf);
  memset(w, 0, sizeof *w);
}

static int before(const tok_bigram *a, const tok_bigram *b) {
  return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(tok_work *w, tok_bigram b) {
  if (w->heap_n == w->heap_cap) {
    size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
    tok_bigram *h = realloc(w->heap, cap * sizeof *h);
    if (!h) {
      w->failed = 1;
      return;
    }
    w->heap = h;
    w->heap_cap = cap;
  }
  size_t i = w->heap_n++;
  while (i > 0 && before(&b, &w->heap[(i - 1) / 2])) {
    w->heap[i] = w->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  w->heap[i] = b;
}

static tok_bigram heap_pop(tok_work *w) {
  tok_bigram top = w->heap[0], last = w->heap[--w->heap_n];
  size_t i = 0, n = w->heap_n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && before(&w->heap[c + 1], &w->heap[c]))
      c++;
    if (!before(&w->heap[c], &last))
      break;
    w->heap[i] = w->heap[c];
    i = c;
  }
  if (n)
    w->heap[i] = last;
  return top;
}

/* Offers the pair (left, right) to the heap when it can merge. */
static void try_pair(const yaie_tokenizer *t, tok_work *w, const char *word, int32_t left, int32_t right) {
  if (left < 0 || right < 0)
    return;
  const tok_symbol *l = &w->sym[left], *r = &w->sym[right];
  tok_bigram b = {0, left, right, l->len + r->len, -1};
  if (t->n_merges == 0 && t->scores) {
    b.result = tok_find(t, word + l->start, b.size);
    if (b.result < 0 || b.result >= t->n_vocab)
      return;
    b.prio = t->scores[b.result];
  } else {
    int32_t rank = tok_pair_rank(t, l->id, r->id, &b.result);
    if (rank < 0)
      return;
    b.prio = -(double)rank;
  }
  heap_push(w, b);
}

/* A symbol that is no token: SentencePiece spells it with byte tokens (or <unk>); byte-level
 * BPE looks up each byte on its own, as llama.cpp does. */
static void emit_unknown(const yaie_tokenizer *t, const char *s, size_t n, tok_ivec *out) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int32_t id = -1;
    if (t->kind == TOK_BYTE_LEVEL) {
      id = tok_find(t, s + i, 1);
    } else if (t->byte_fallback && t->byte_token[c] >= 0) {
      id = t->byte_token[c];
    } else {
      if (t->unk >= 0 && !(t->fuse_unk && out->n && out->v[out->n - 1] == t->unk))
        tok_ivec_push(out, t->unk);
      if (!t->byte_fallback)
        return; /* one <unk> for the whole symbol */
    }
    if (id >= 0 && id < t->n_vocab)
      tok_ivec_push(out, id);
  }
}

static int init_symbols(const yaie_tokenizer *t, tok_work *w, const char *word, size_t n) {
  if (n > w->sym_cap) {
    tok_symbol *s = realloc(w->sym, n * sizeof *s);
    if (!s)
      return 0;
    w->sym = s;
    w->sym_cap = n;
  }
  int32_t count = 0;
  for (size_t off = 0; off < n; count++) {
    size_t len = tok_utf8_len((unsigned char)word[off]);
    if (len > n - off)
      len = n - off;
    w->sym[count] = (tok_symbol){count - 1, off + len == n ? -1 : count + 1, (uint32_t)off, (uint32_t)len,
                                 tok_find(t, word + off, len)};
    off += len;
  }
  return 1;
}

void tok_bpe_word(const yaie_tokenizer *t, const char *word, size_t n, tok_work *w, tok_ivec *out) {
  if (n == 0)
    return;
  if (t->ignore_merges) {
    int32_t id = tok_find(t, word, n);
    if (id >= 0 && id < t->n_vocab) {
      tok_ivec_push(out, id);
      return;
    }
  }
  if (!init_symbols(t, w, word, n)) {
    w->failed = 1;
    return;
  }
  w->heap_n = 0;
  for (int32_t i = 0; w->sym[i].next >= 0; i++)
    try_pair(t, w, word, i, i + 1);
  while (w->heap_n > 0) {
    tok_bigram b = heap_pop(w);
    tok_symbol *l = &w->sym[b.left], *r = &w->sym[b.right];
    if (l->len == 0 || r->len == 0 || l->len + r->len != b.size)
      continue;
    l->len += r->len;
    l->id = b.result;
    r->len = 0;
    l->next = r->next;
    if (r->next >= 0)
      w->sym[r->next].prev = b.left;
    try_pair(t, w, word, l->prev, b.left);
    try_pair(t, w, word, b.left, l->next);
  }
  for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
    const tok_symbol *s = &w->sym[i];
    if (s->id >= 0 && s->id < t->n_vocab)
      tok_ivec_push(out, s->id);
    else
      emit_unknown(t, word + s->start, s->len, out);
  }
}

/* ---------------------------------------------------------------------------------------------
 * Byte-level BPE: GPT-2 gives each byte a printable code point (the printable Latin-1 bytes keep
 * their own; the others take 256, 257, ... in byte order), so that every token is text. */

static uint32_t byte_code_point(uint8_t b) {
  if (b <= 32)
    return 256 + b;
  if (b >= 127 && b <= 160)
    return 256 + 33 + (b - 127);
  if (b == 173)
    return 256 + 33 + 34;
  return b;
}

int tok_byte_to_utf8(uint8_t b, char out[2]) {
  char buf[4];
  int n = tok_utf8_encode(byte_code_point(b), buf);
  memcpy(out, buf, (size_t)n);
  return n;
}

int tok_unicode_to_byte(uint32_t cp) {
  if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
    return (int)cp;
  if (cp >= 256 && cp <= 288)
    return (int)(cp - 256);
  if (cp >= 289 && cp <= 322)
    return (int)(cp - 289 + 127);
  return cp == 323 ? 173 : -1;
}

int tok_work_reserve(tok_work *w, size_t n) {
  if (n <= w->buf_cap)
    return 1;
  char *b = realloc(w->buf, n);
  if (!b)
    return 0;
  w->buf = b;
  w->buf_cap = n;
  return 1;
}

static void encode_piece(const yaie_tokenizer *t, const char *s, size_t n, tok_work *w, tok_ivec *out) {
  if (!tok_work_reserve(w, 2 * n + 1)) {
    w->failed = 1;
    return;
  }
  size_t o = 0;
  for (size_t i = 0; i < n; i++)
    o += (size_t)tok_byte_to_utf8((uint8_t)s[i], w->buf + o);
  tok_bpe_word(t, w->buf, o, w, out);
}

yaie_status tok_encode_byte_level(const yaie_tokenizer *t, const char *text, size_t n, tok_work *w,
                                  tok_ivec *out) {
  char *prefixed = NULL;
  if (t->add_prefix_space && (n == 0 || text[0] != ' ')) {
    prefixed = malloc(n + 1);
    if (!prefixed)
      return yaie_fail(YAIE_ERR_NOMEM, "tokenize: out of memory");
    prefixed[0] = ' ';
    memcpy(prefixed + 1, text, n);
    text = prefixed;
    n++;
  }
  tok_spans spans = {0};
  yaie_status st = YAIE_OK;
  if (t->pre)
    st = yaie_pretok_split(t->pre, text, n, &spans);
  else
    encode_piece(t, text, n, w, out);
  for (size_t i = 0; st == YAIE_OK && i < spans.n; i++)
    encode_piece(t, text + spans.v[i].off, spans.v[i].len, w, out);
  free(spans.v);
  free(prefixed);
  return st;
}

/* The vocabulary: interned token strings behind an open-addressing hash table, merge ranks
 * keyed by id pairs, and what tok_finish derives for encoding and decoding. Every lookup is a
 * hash probe, so loading and encoding never scan the vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_impl.h"

static uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

static uint32_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
  return (uint32_t)mix64(h);
}

void tok_ivec_push(tok_ivec *v, int32_t id) {
  if (v->failed)
    return;
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 64;
    int32_t *p = realloc(v->v, cap * sizeof *p);
    if (!p) {
      v->failed = 1;
      return;
    }
    v->v = p;
    v->cap = cap;
  }
  v->v[v->n++] = id;
}

/* ---------------------------------------------------------------------------------------------
 * Interned strings */

static int str_eq(const tok_strings *s, int32_t id, const char *p, size_t n, uint32_t h) {
  return s->hash[id] == h && s->len[id] == n && memcmp(s->arena + s->off[id], p, n) == 0;
}

static int32_t str_find(const tok_strings *s, const char *p, size_t n, uint32_t h) {
  if (!s->n_slots)
    return -1;
  size_t mask = s->n_slots - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    int32_t id = s->slots[i];
    if (id < 0)
      return -1;
    if (str_eq(s, id, p, n, h))
      return id;
  }
}

static void slot_insert(tok_strings *s, int32_t id) {
  size_t mask = s->n_slots - 1, i = s->hash[id] & mask;
  while (s->slots[i] >= 0)
    i = (i + 1) & mask;
  s->slots[i] = id;
}

/* Keeps the table at most half full so that probes stay short. */
static int str_rehash(tok_strings *s, size_t want) {
  if (s->n_slots >= 2 * want)
    return 1;
  size_t n = 1024;
  while (n < 2 * want)
    n *= 2;
  int32_t *slots = malloc(n * sizeof *slots);
  if (!slots)
    return 0;
  memset(slots, 0xff, n * sizeof *slots);
  free(s->slots);
  s->slots = slots;
  s->n_slots = n;
  for (int id = 0; id < s->n; id++)
    if (str_find(s, s->arena + s->off[id], s->len[id], s->hash[id]) < 0)
      slot_insert(s, id);
  return 1;
}

static int str_reserve(tok_strings *s, size_t bytes) {
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 256;
    size_t *off = realloc(s->off, (size_t)cap * sizeof *off);
    if (off)
      s->off = off;
    uint32_t *len = realloc(s->len, (size_t)cap * sizeof *len);
    if (len)
      s->len = len;
    uint32_t *hash = realloc(s->hash, (size_t)cap * sizeof *hash);
    if (hash)
      s->hash = hash;
    if (!off || !len || !hash)
      return 0;
    s->cap = cap;
  }
  if (s->used + bytes + 1 > s->arena_cap) {
    size_t cap = s->arena_cap ? s->arena_cap : 4096;
    while (cap < s->used + bytes + 1)
      cap *= 2;
    char *a = realloc(s->arena, cap);
    if (!a)
      return 0;
    s->arena = a;
    s->arena_cap = cap;
  }
  return str_rehash(s, (size_t)s->n + 1);
}

/* Appends a string as the next id; *dup receives an earlier id with the same text, or -1
 * (then the new id is the one the table finds). */
static yaie_status str_add(tok_strings *s, const char *p, size_t n, int32_t *dup, const char *path) {
  if (n > UINT32_MAX / 2 || s->n >= INT32_MAX / 2 || !str_reserve(s, n))
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory for the vocabulary", path);
  uint32_t h = hash_bytes(p, n);
  int32_t id = s->n++;
  s->off[id] = s->used;
  s->len[id] = (uint32_t)n;
  s->hash[id] = h;
  memcpy(s->arena + s->used, p, n);
  s->arena[s->used + n] = 0;
  s->used += n + 1;
  *dup = str_find(s, p, n, h);
  if (*dup < 0)
    slot_insert(s, id);
  return YAIE_OK;
}

int32_t tok_find(const yaie_tokenizer *t, const char *s, size_t n) {
  return str_find(&t->str, s, n, hash_bytes(s, n));
}

/* The id of a string, adding it past the vocabulary when it is new. */
static yaie_status intern(yaie_tokenizer *t, const char *s, size_t n, int32_t *id) {
  int32_t dup;
  *id = tok_find(t, s, n);
  if (*id >= 0)
    return YAIE_OK;
  YAIE_TRY(str_add(&t->str, s, n, &dup, "tokenizer"));
  *id = t->str.n - 1;
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Merge ranks */

static uint64_t pair_key(int32_t l, int32_t r) { return ((uint64_t)(uint32_t)(l + 1) << 32) | (uint32_t)(r + 1); }

static tok_pair *pair_slot(const tok_pairs *p, uint64_t key) {
  size_t mask = p->n_slots - 1;
  for (size_t i = mix64(key) & mask;; i = (i + 1) & mask)
    if (p->slots[i].key == key || p->slots[i].key == 0)
      return &p->slots[i];
}

static int pairs_grow(tok_pairs *p) {
  if (p->n_slots >= 2 * (p->n + 1))
    return 1;
  size_t n = p->n_slots ? p->n_slots * 2 : 1024;
  tok_pairs grown = {calloc(n, sizeof(tok_pair)), n, p->n};
  if (!grown.slots)
    return 0;
  for (size_t i = 0; i < p->n_slots; i++)
    if (p->slots[i].key)
      *pair_slot(&grown, p->slots[i].key) = p->slots[i];
  free(p->slots);
  *p = grown;
  return 1;
}

int32_t tok_pair_rank(const yaie_tokenizer *t, int32_t left, int32_t right, int32_t *result) {
  if (!t->pairs.n_slots || left < 0 || right < 0)
    return -1;
  const tok_pair *e = pair_slot(&t->pairs, pair_key(left, right));
  if (!e->key)
    return -1;
  *result = e->result;
  return e->rank;
}

yaie_status tok_add_merge(yaie_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn) {
  int32_t li, ri, res;
  char small[256], *cat = ln + rn <= sizeof small ? small : malloc(ln + rn);
  if (!cat)
    return yaie_fail(YAIE_ERR_NOMEM, "tokenizer: out of memory for merges");
  memcpy(cat, l, ln);
  memcpy(cat + ln, r, rn);
  yaie_status st = intern(t, l, ln, &li);
  if (st == YAIE_OK)
    st = intern(t, r, rn, &ri);
  if (st == YAIE_OK)
    st = intern(t, cat, ln + rn, &res);
  if (cat != small)
    free(cat);
  YAIE_TRY(st);
  if (t->n_merges == t->merges_cap) {
    int cap = t->merges_cap ? t->merges_cap * 2 : 1024;
    int32_t *m = realloc(t->merges, (size_t)cap * 2 * sizeof *m);
    if (!m)
      return yaie_fail(YAIE_ERR_NOMEM, "tokenizer: out of memory for merges");
    t->merges = m;
    t->merges_cap = cap;
  }
  if (!pairs_grow(&t->pairs))
    return yaie_fail(YAIE_ERR_NOMEM, "tokenizer: out of memory for merges");
  tok_pair *e = pair_slot(&t->pairs, pair_key(li, ri));
  if (!e->key) {
    *e = (tok_pair){pair_key(li, ri), t->n_merges, res};
    t->pairs.n++;
  }
  t->merges[2 * t->n_merges] = li;
  t->merges[2 * t->n_merges + 1] = ri;
  t->n_merges++;
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle */

yaie_status tok_new(tok_kind kind, int n_vocab, const char *path, yaie_tokenizer **out) {
  *out = NULL;
  if (n_vocab <= 0 || n_vocab > (1 << 26))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: implausible vocabulary size %d", path, n_vocab);
  yaie_tokenizer *t = calloc(1, sizeof *t);
  if (!t)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  t->kind = kind;
  t->n_vocab = n_vocab;
  t->type = malloc((size_t)n_vocab);
  t->flags = calloc((size_t)n_vocab, 1);
  if (!t->type || !t->flags || !str_rehash(&t->str, (size_t)n_vocab)) {
    yaie_tokenizer_free(t);
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  }
  memset(t->type, TOK_NORMAL, (size_t)n_vocab);
  t->bos = t->eos = t->unk = -1;
  *out = t;
  return YAIE_OK;
}

yaie_status tok_add_token(yaie_tokenizer *t, const char *s, size_t n, int32_t *dup) {
  if (t->str.n >= t->n_vocab)
    return yaie_fail(YAIE_ERR_ARG, "tokenizer: more tokens than the vocabulary size %d", t->n_vocab);
  return str_add(&t->str, s, n, dup, "tokenizer");
}

void yaie_tokenizer_free(yaie_tokenizer *t) {
  if (!t)
    return;
  free(t->str.arena);
  free(t->str.off);
  free(t->str.len);
  free(t->str.hash);
  free(t->str.slots);
  free(t->scores);
  free(t->type);
  free(t->flags);
  free(t->pairs.slots);
  free(t->merges);
  free(t->chat_template);
  yaie_pretok_free(t->pre);
  free(t->dec);
  free(t->dec_off);
  free(t->dec_len);
  free(t->specials);
  free(t);
}

/* ---------------------------------------------------------------------------------------------
 * Derived tables */

static int parse_byte_token(const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
    return -1;
  const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
  if (!hi || !lo)
    return -1;
  return (int)((hi - hex) * 16 + (lo - hex));
}

/* What a token decodes to, written at dst (never longer than its text): SentencePiece turns
 * U+2581 back into spaces, byte-level BPE turns code points back into bytes; control and
 * unknown tokens decode to nothing, user-defined ones to their text. */
static size_t decode_piece(const yaie_tokenizer *t, int32_t id, char *dst) {
  const char *s = tok_text(t, id);
  size_t n = tok_len(t, id), o = 0;
  int type = t->type[id];
  if (type == TOK_CONTROL || type == TOK_UNKNOWN || type == TOK_UNUSED)
    return 0;
  if (type == TOK_BYTE && parse_byte_token(s, n) >= 0) {
    dst[0] = (char)parse_byte_token(s, n);
    return 1;
  }
  if (type == TOK_USER_DEFINED || tok_utf8_check(s, n) != n) {
    memcpy(dst, s, n);
    return n;
  }
  for (size_t i = 0, len; i < n; i += len) {
    uint32_t cp = tok_utf8_decode(s + i, n - i, &len);
    int b = t->kind == TOK_BYTE_LEVEL ? tok_unicode_to_byte(cp) : -1;
    if (b >= 0)
      dst[o++] = (char)b;
    else if (t->kind == TOK_SPM && cp == 0x2581)
      dst[o++] = ' ';
    else {
      memcpy(dst + o, s + i, len);
      o += len;
    }
  }
  return o;
}

static yaie_status build_decoded(yaie_tokenizer *t, const char *path) {
  size_t total = 0;
  for (int id = 0; id < t->n_vocab; id++)
    total += tok_len(t, id) + 1;
  t->dec = malloc(total);
  t->dec_off = malloc((size_t)t->n_vocab * sizeof *t->dec_off);
  t->dec_len = malloc((size_t)t->n_vocab * sizeof *t->dec_len);
  if (!t->dec || !t->dec_off || !t->dec_len)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  size_t used = 0;
  for (int id = 0; id < t->n_vocab; id++) {
    t->dec_off[id] = used;
    t->dec_len[id] = (uint32_t)decode_piece(t, id, t->dec + used);
    used += t->dec_len[id];
  }
  return YAIE_OK;
}

static _Thread_local const yaie_tokenizer *sort_tok;

/* Longest first, so that a special token containing another is matched whole; then by id. */
static int special_cmp(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  uint32_t lx = tok_len(sort_tok, x), ly = tok_len(sort_tok, y);
  if (lx != ly)
    return lx > ly ? -1 : 1;
  return x < y ? -1 : x > y;
}

static yaie_status build_specials(yaie_tokenizer *t, const char *path) {
  t->specials = malloc((size_t)t->n_vocab * sizeof *t->specials);
  if (!t->specials)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  t->n_specials = 0;
  for (int id = 0; id < t->n_vocab; id++) {
    int type = t->type[id];
    size_t n = tok_len(t, id);
    /* Text that is not valid UTF-8 could only match inside a character; leave it out. */
    if ((type == TOK_CONTROL || type == TOK_USER_DEFINED || type == TOK_UNKNOWN) && n > 0 &&
        tok_utf8_check(tok_text(t, id), n) == n)
      t->specials[t->n_specials++] = id;
  }
  sort_tok = t; /* qsort takes no context argument */
  qsort(t->specials, (size_t)t->n_specials, sizeof *t->specials, special_cmp);
  return YAIE_OK;
}

yaie_status tok_finish(yaie_tokenizer *t, const char *path) {
  if (t->str.n < t->n_vocab)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: %d tokens given for a vocabulary of %d", path, t->str.n,
                     t->n_vocab);
  for (int b = 0; b < 256; b++) {
    char name[7] = {'<', '0', 'x', "0123456789ABCDEF"[b >> 4], "0123456789ABCDEF"[b & 15], '>', 0};
    int32_t id = tok_find(t, name, 6);
    t->byte_token[b] = id < t->n_vocab ? id : -1;
  }
  for (int id = 0; id < t->n_vocab; id++)
    if (t->type[id] == TOK_UNDEFINED)
      t->type[id] = TOK_NORMAL;
  if (t->unk >= 0 && t->type[t->unk] == TOK_NORMAL)
    t->type[t->unk] = TOK_UNKNOWN;
  YAIE_TRY(build_decoded(t, path));
  return build_specials(t, path);
}

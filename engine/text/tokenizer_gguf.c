/* A tokenizer from GGUF metadata (tokenizer.ggml.*), read as llama.cpp reads it:
 * model "llama" is SentencePiece-style BPE over scores, "gpt2" is byte-level BPE over merges
 * with the pre-tokenizer that tokenizer.ggml.pre names. Array bounds were checked when the
 * file was opened (gguf.c); element types and counts are checked here. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_impl.h"

static int str_is(yaie_gguf_str s, const char *z) { return s.len == strlen(z) && memcmp(s.ptr, z, s.len) == 0; }

static yaie_status read_tokens(const yaie_gguf *g, const yaie_gguf_kv *kv, yaie_tokenizer *t) {
  yaie_gguf_str *s;
  YAIE_TRY(yaie_gguf_str_array(g, kv, &s));
  yaie_status st = YAIE_OK;
  for (int i = 0; st == YAIE_OK && i < t->n_vocab; i++) {
    int32_t dup;
    st = s[i].len > UINT32_MAX / 4 ? yaie_fail(YAIE_ERR_FORMAT, "%s: token %d is too long", g->path, i)
                                    : tok_add_token(t, s[i].ptr, s[i].len, &dup);
    if (st == YAIE_OK && dup >= 0 && s[i].len > 0)
      st = yaie_fail(YAIE_ERR_FORMAT, "%s: duplicate token '%.*s' (ids %d and %d)", g->path,
                     (int)(s[i].len > 64 ? 64 : s[i].len), s[i].ptr, (int)dup, i);
  }
  free(s);
  return st;
}

/* A numeric array with one element per token, of one of the given element types. */
static yaie_status token_array(const yaie_gguf *g, const char *key, int n, uint32_t type_a, uint32_t type_b,
                               const yaie_gguf_kv **out) {
  const yaie_gguf_kv *kv = yaie_gguf_find(g, key);
  *out = NULL;
  if (!kv)
    return YAIE_OK;
  if (kv->type != GGUF_ARRAY || (kv->arr_type != type_a && kv->arr_type != type_b))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: %s has the wrong type", g->path, key);
  if (kv->arr_n < (uint64_t)n)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: %s has %llu entries for %d tokens", g->path, key,
                     (unsigned long long)kv->arr_n, n);
  *out = kv;
  return YAIE_OK;
}

static yaie_status read_scores_types(const yaie_gguf *g, yaie_tokenizer *t) {
  const yaie_gguf_kv *scores, *types;
  int n = t->n_vocab;
  YAIE_TRY(token_array(g, "tokenizer.ggml.scores", n, GGUF_FLOAT32, GGUF_INT32, &scores));
  YAIE_TRY(token_array(g, "tokenizer.ggml.token_type", n, GGUF_INT32, GGUF_INT32, &types));
  if (t->kind == TOK_SPM && !(t->scores = calloc((size_t)n, sizeof *t->scores)))
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", g->path);
  for (int i = 0; scores && t->scores && i < n; i++) {
    if (scores->arr_type == GGUF_FLOAT32) {
      memcpy(&t->scores[i], scores->data + 4 * (size_t)i, 4);
    } else {
      int32_t v;
      memcpy(&v, scores->data + 4 * (size_t)i, 4);
      t->scores[i] = (float)v;
    }
  }
  for (int i = 0; types && i < n; i++) {
    int32_t v;
    memcpy(&v, types->data + 4 * (size_t)i, 4);
    t->type[i] = v >= TOK_NORMAL && v <= TOK_BYTE ? (uint8_t)v : TOK_UNDEFINED;
  }
  return YAIE_OK;
}

static yaie_status read_merges(const yaie_gguf *g, yaie_tokenizer *t) {
  const yaie_gguf_kv *kv = yaie_gguf_find(g, "tokenizer.ggml.merges");
  yaie_gguf_str *m;
  if (!kv)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: a gpt2 tokenizer without tokenizer.ggml.merges", g->path);
  if (kv->arr_n > (1u << 26))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: implausibly many merges", g->path);
  YAIE_TRY(yaie_gguf_str_array(g, kv, &m));
  yaie_status st = YAIE_OK;
  for (uint64_t i = 0; st == YAIE_OK && i < kv->arr_n; i++) {
    /* "left right", split at the first space after the first byte (a token may be a space). */
    const char *sp = m[i].len > 1 ? memchr(m[i].ptr + 1, ' ', m[i].len - 1) : NULL;
    if (sp)
      st = tok_add_merge(t, m[i].ptr, (size_t)(sp - m[i].ptr), sp + 1, m[i].len - (size_t)(sp - m[i].ptr) - 1);
  }
  free(m);
  return st;
}

static yaie_status read_pre(const yaie_gguf *g, yaie_tokenizer *t, int *no_bos) {
  yaie_gguf_str pre;
  char name[128] = "default";
  if (yaie_gguf_get_str(g, "tokenizer.ggml.pre", &pre)) {
    size_t n = pre.len < sizeof name - 1 ? pre.len : sizeof name - 1;
    memcpy(name, pre.ptr, n);
    name[n] = 0;
  }
  YAIE_TRY(yaie_pretok_new(&t->pre));
  return yaie_pretok_add_named(t->pre, name, &t->ignore_merges, &t->add_bos, no_bos, g->path);
}

static void read_special_id(const yaie_gguf *g, const char *key, int n, int *id) {
  int64_t v;
  if (yaie_gguf_get_int(g, key, &v) && v >= 0 && v < n)
    *id = (int)v;
  else if (*id >= n)
    *id = -1;
}

/* llama.cpp's rule for Phi-3 (known by general.name): its special tokens eat the whitespace
 * that follows them, except <unk>, <s> and <|endoftext|>. */
static void phi3_rstrip(const yaie_gguf *g, yaie_tokenizer *t) {
  yaie_gguf_str name;
  char low[64];
  if (!yaie_gguf_get_str(g, "general.name", &name))
    return;
  size_t n = name.len < sizeof low - 1 ? name.len : sizeof low - 1;
  for (size_t i = 0; i < n; i++)
    low[i] = (char)tolower((unsigned char)name.ptr[i]);
  low[n] = 0;
  if (!strstr(low, "phi-3") && !strstr(low, "phi3"))
    return;
  for (int id = 0; id < t->n_vocab; id++) {
    const char *s = tok_text(t, id);
    int special = t->type[id] == TOK_CONTROL || t->type[id] == TOK_USER_DEFINED || t->type[id] == TOK_UNKNOWN;
    if ((special || !strcmp(s, "</s>")) && strcmp(s, "<unk>") && strcmp(s, "<s>") && strcmp(s, "<|endoftext|>"))
      t->flags[id] |= TOK_RSTRIP;
  }
}

static yaie_status read_options(const yaie_gguf *g, yaie_tokenizer *t, int no_bos) {
  int n = t->n_vocab, flag;
  yaie_gguf_str tmpl;
  if (t->kind == TOK_SPM) {
    t->unk = 0, t->bos = 1, t->eos = 2, t->add_bos = 1;
    t->prefix = PREFIX_ALWAYS, t->escape_spaces = 1, t->byte_fallback = 1;
  }
  if (no_bos)
    t->bos = -1;
  read_special_id(g, "tokenizer.ggml.bos_token_id", n, &t->bos);
  read_special_id(g, "tokenizer.ggml.eos_token_id", n, &t->eos);
  read_special_id(g, "tokenizer.ggml.unknown_token_id", n, &t->unk);
  if (yaie_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag))
    t->add_bos = flag;
  if (t->kind == TOK_SPM && yaie_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &flag))
    t->prefix = flag ? PREFIX_ALWAYS : PREFIX_NONE;
  if (yaie_gguf_get_str(g, "tokenizer.chat_template", &tmpl)) {
    if (!(t->chat_template = malloc(tmpl.len + 1)))
      return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", g->path);
    memcpy(t->chat_template, tmpl.ptr, tmpl.len);
    t->chat_template[tmpl.len] = 0;
  }
  phi3_rstrip(g, t);
  return YAIE_OK;
}

static yaie_status build(const yaie_gguf *g, tok_kind kind, const yaie_gguf_kv *tokens, yaie_tokenizer **out) {
  yaie_tokenizer *t;
  int no_bos = 0;
  if (tokens->type != GGUF_ARRAY || tokens->arr_type != GGUF_STRING)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not a string array", g->path);
  if (tokens->arr_n == 0 || tokens->arr_n > (1u << 26))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: implausible vocabulary size %llu", g->path,
                     (unsigned long long)tokens->arr_n);
  YAIE_TRY(tok_new(kind, (int)tokens->arr_n, g->path, &t));
  yaie_status st = read_tokens(g, tokens, t);
  if (st == YAIE_OK)
    st = read_scores_types(g, t);
  if (st == YAIE_OK && kind == TOK_BYTE_LEVEL)
    st = read_merges(g, t);
  if (st == YAIE_OK && kind == TOK_BYTE_LEVEL)
    st = read_pre(g, t, &no_bos);
  if (st == YAIE_OK)
    st = read_options(g, t, no_bos);
  if (st == YAIE_OK)
    st = tok_finish(t, g->path);
  if (st != YAIE_OK) {
    yaie_tokenizer_free(t);
    return st;
  }
  *out = t;
  return YAIE_OK;
}

yaie_status yaie_tokenizer_from_gguf(const yaie_gguf *g, yaie_tokenizer **out) {
  yaie_gguf_str model;
  *out = NULL;
  const yaie_gguf_kv *tokens = yaie_gguf_find(g, "tokenizer.ggml.tokens");
  int has_model = yaie_gguf_get_str(g, "tokenizer.ggml.model", &model);
  if ((!has_model && !tokens) || (has_model && (str_is(model, "none") || str_is(model, "no_vocab"))))
    return YAIE_OK;
  if (!has_model)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tokenizer.ggml.tokens without tokenizer.ggml.model", g->path);
  if (!tokens)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tokenizer.ggml.model without tokenizer.ggml.tokens", g->path);
  if (str_is(model, "llama"))
    return build(g, TOK_SPM, tokens, out);
  if (str_is(model, "gpt2"))
    return build(g, TOK_BYTE_LEVEL, tokens, out);
  return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: tokenizer model '%.*s' is not supported (llama and gpt2 are)",
                   g->path, (int)(model.len > 32 ? 32 : model.len), model.ptr);
}

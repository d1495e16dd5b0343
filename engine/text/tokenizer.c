/* The tokenizer's public face (yaie.h): loading by content, vocabulary queries, encoding with
 * special tokens, decoding in one go or as a stream that never splits a UTF-8 character. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "file.h"
#include "tokenizer_impl.h"

/* ---------------------------------------------------------------------------------------------
 * UTF-8 */

/* The number of bytes of a valid sequence starting at s (at most n), 0 when invalid, or -k
 * when the k bytes present are a valid but incomplete start. */
static int utf8_valid_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    need = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4)
    need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else
    return 0;
  for (size_t i = 1; i < need; i++) {
    if (i >= n)
      return -(int)i;
    if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
      return 0;
  }
  return (int)need;
}

size_t tok_utf8_check(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    int len = utf8_valid_len((const unsigned char *)s + i, n - i);
    if (len <= 0)
      return i;
    i += (size_t)len;
  }
  return n;
}

uint32_t tok_utf8_decode(const char *s, size_t n, size_t *len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t l = tok_utf8_len(u[0]);
  if (l > n)
    l = n;
  *len = l;
  if (l == 1)
    return u[0];
  uint32_t cp = u[0] & (0x7F >> l);
  for (size_t i = 1; i < l; i++)
    cp = (cp << 6) | (u[i] & 0x3F);
  return cp;
}

int tok_utf8_encode(uint32_t cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---------------------------------------------------------------------------------------------
 * Loading and queries */

static int starts_with_json(const unsigned char *p, size_t n) {
  size_t i = 0;
  if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
    i = 3; /* a byte-order mark */
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
    i++;
  return i < n && p[i] == '{';
}

static yaie_status load_gguf(const char *path, yaie_tokenizer **out) {
  yaie_gguf g;
  YAIE_TRY(yaie_gguf_open(path, &g));
  yaie_status st = yaie_tokenizer_from_gguf(&g, out);
  yaie_gguf_close(&g);
  if (st == YAIE_OK && !*out)
    st = yaie_fail(YAIE_ERR_FORMAT, "%s: the GGUF file holds no tokenizer", path);
  return st;
}

yaie_status yaie_tokenizer_load(const char *path, yaie_tokenizer **out) {
  if (!out)
    return yaie_fail(YAIE_ERR_ARG, "yaie_tokenizer_load: out is NULL");
  *out = NULL;
  if (!path)
    return yaie_fail(YAIE_ERR_ARG, "yaie_tokenizer_load: path is NULL");
  if (yaie_path_is_dir(path)) {
    char *json = yaie_path_join(path, "tokenizer.json");
    if (!json)
      return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
    yaie_status st = yaie_path_exists(json) ? yaie_tokenizer_from_hf_json(json, out)
                                            : yaie_fail(YAIE_ERR_IO, "%s: a directory without tokenizer.json", path);
    free(json);
    return st;
  }
  yaie_file f;
  YAIE_TRY(yaie_file_map(path, &f));
  int gguf = f.size >= 4 && memcmp(f.data, "GGUF", 4) == 0;
  int json = starts_with_json(f.data, f.size);
  yaie_file_unmap(&f);
  if (gguf)
    return load_gguf(path, out);
  if (json)
    return yaie_tokenizer_from_hf_json(path, out);
  return yaie_tokenizer_from_llama2c(path, out);
}

int yaie_tokenizer_vocab_size(const yaie_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
int yaie_tokenizer_bos(const yaie_tokenizer *tok) { return tok ? tok->bos : -1; }
int yaie_tokenizer_eos(const yaie_tokenizer *tok) { return tok ? tok->eos : -1; }
int yaie_tokenizer_add_bos(const yaie_tokenizer *tok) { return tok && tok->add_bos && tok->bos >= 0; }
const char *yaie_tokenizer_chat_template(const yaie_tokenizer *tok) { return tok ? tok->chat_template : NULL; }

const char *yaie_token_text(const yaie_tokenizer *tok, int32_t id) {
  return tok && id >= 0 && id < tok->n_vocab ? tok_text(tok, id) : NULL;
}

yaie_status yaie_token_bytes(const yaie_tokenizer *tok, int32_t id, const char **bytes, size_t *len) {
  if (!tok || !bytes || !len)
    return yaie_fail(YAIE_ERR_ARG, "yaie_token_bytes: NULL argument");
  if (id < 0 || id >= tok->n_vocab)
    return yaie_fail(YAIE_ERR_ARG, "token id %d is outside the vocabulary (size %d)", (int)id, tok->n_vocab);
  *bytes = tok->dec + tok->dec_off[id];
  *len = tok->dec_len[id];
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding. Special tokens are cut out of the text first, longest first, each splitting every
 * stretch of plain text it occurs in (llama.cpp's tokenizer_st_partition); the plain stretches
 * are then encoded one by one. */

typedef struct fragment {
  int32_t token; /* -1: plain text */
  size_t off, len;
} fragment;

typedef struct fragments {
  fragment *v;
  size_t n, cap;
} fragments;

static int frag_push(fragments *f, fragment x) {
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    fragment *v = realloc(f->v, cap * sizeof *v);
    if (!v)
      return 0;
    f->v = v;
    f->cap = cap;
  }
  f->v[f->n++] = x;
  return 1;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* Splits one plain fragment around every occurrence of special token id, into out. */
static int split_fragment(const yaie_tokenizer *t, int32_t id, const char *text, fragment f, fragments *out) {
  const char *s = tok_text(t, id);
  size_t n = tok_len(t, id), pos = f.off, end = f.off + f.len;
  for (;;) {
    const char *hit = end - pos >= n ? memmem(text + pos, end - pos, s, n) : NULL;
    size_t at = hit ? (size_t)(hit - text) : end, left_end = at;
    if (hit && (t->flags[id] & TOK_LSTRIP))
      while (left_end > pos && is_space(text[left_end - 1]))
        left_end--;
    if (left_end > pos && !frag_push(out, (fragment){-1, pos, left_end - pos}))
      return 0;
    if (!hit)
      return 1;
    if (!frag_push(out, (fragment){id, at, n}))
      return 0;
    pos = at + n;
    if (t->flags[id] & TOK_RSTRIP)
      while (pos < end && is_space(text[pos]))
        pos++;
  }
}

static yaie_status partition(const yaie_tokenizer *t, const char *text, size_t len, fragments *out) {
  fragments cur = {0}, next = {0};
  uint8_t present[256] = {0};
  for (size_t i = 0; i < len; i++)
    present[(unsigned char)text[i]] = 1;
  int ok = len == 0 || frag_push(&cur, (fragment){-1, 0, len});
  for (int k = 0; ok && k < t->n_specials; k++) {
    int32_t id = t->specials[k];
    if (tok_len(t, id) > len || !present[(unsigned char)tok_text(t, id)[0]])
      continue;
    next.n = 0;
    for (size_t i = 0; ok && i < cur.n; i++)
      ok = cur.v[i].token >= 0 ? frag_push(&next, cur.v[i]) : split_fragment(t, id, text, cur.v[i], &next);
    fragments swap = cur;
    cur = next;
    next = swap;
  }
  free(next.v);
  *out = cur;
  return ok ? YAIE_OK : yaie_fail(YAIE_ERR_NOMEM, "tokenize: out of memory");
}

static yaie_status encode(const yaie_tokenizer *t, const char *text, size_t len, int add_bos, tok_ivec *ids) {
  fragments frags;
  tok_work w = {0};
  if (add_bos && t->bos >= 0)
    tok_ivec_push(ids, t->bos);
  YAIE_TRY(partition(t, text, len, &frags));
  yaie_status st = YAIE_OK;
  for (size_t i = 0; st == YAIE_OK && i < frags.n; i++) {
    fragment f = frags.v[i];
    if (f.token >= 0)
      tok_ivec_push(ids, f.token);
    else if (t->kind == TOK_SPM)
      st = tok_encode_spm(t, text + f.off, f.len, f.off == 0, &w, ids);
    else
      st = tok_encode_byte_level(t, text + f.off, f.len, &w, ids);
  }
  if (st == YAIE_OK && (w.failed || ids->failed))
    st = yaie_fail(YAIE_ERR_NOMEM, "tokenize: out of memory");
  tok_work_free(&w);
  free(frags.v);
  return st;
}

yaie_status yaie_tokenize(const yaie_tokenizer *tok, const char *text, size_t len, int add_bos,
                          int32_t *out, int cap, int *n_out) {
  if (n_out)
    *n_out = 0;
  if (!tok || !n_out || (!text && len) || cap < 0 || (!out && cap > 0))
    return yaie_fail(YAIE_ERR_ARG, "yaie_tokenize: bad arguments");
  size_t bad = tok_utf8_check(text, len);
  if (bad != len)
    return yaie_fail(YAIE_ERR_ARG, "tokenize: the text is not valid UTF-8 (at byte offset %zu)", bad);
  tok_ivec ids = {0};
  yaie_status st = encode(tok, text, len, add_bos, &ids);
  if (st == YAIE_OK && ids.n > INT32_MAX)
    st = yaie_fail(YAIE_ERR_ARG, "tokenize: the text is too long");
  if (st == YAIE_OK) {
    *n_out = (int)ids.n;
    if (ids.n > (size_t)cap)
      st = yaie_fail(YAIE_ERR_ARG, "tokenize: %zu ids do not fit in room for %d", ids.n, cap);
    else if (ids.n)
      memcpy(out, ids.v, ids.n * sizeof *out);
  }
  free(ids.v);
  return st;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding. SentencePiece's dummy prefix shows as a leading space on the first piece and on the
 * piece after each BOS (where llama2.c drops it). */

static int has_dummy_prefix(const yaie_tokenizer *t) { return t->kind == TOK_SPM && t->prefix != PREFIX_NONE; }

yaie_status yaie_detokenize(const yaie_tokenizer *tok, const int32_t *ids, int n, int skip_leading_space,
                            char *out, size_t cap, size_t *len) {
  if (len)
    *len = 0;
  if (!tok || !len || n < 0 || (!ids && n) || (!out && cap))
    return yaie_fail(YAIE_ERR_ARG, "yaie_detokenize: bad arguments");
  int strip = skip_leading_space && has_dummy_prefix(tok);
  size_t used = 0;
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= tok->n_vocab)
      return yaie_fail(YAIE_ERR_ARG, "detokenize: token id %d (at %d) is outside the vocabulary (size %d)",
                       (int)ids[i], i, tok->n_vocab);
    const char *p = tok->dec + tok->dec_off[ids[i]];
    size_t m = tok->dec_len[ids[i]];
    if (m && strip) {
      if (p[0] == ' ')
        p++, m--;
      strip = 0;
    }
    if (ids[i] == tok->bos && skip_leading_space && has_dummy_prefix(tok))
      strip = 1;
    if (used + m <= cap)
      memcpy(out + used, p, m);
    used += m;
  }
  *len = used;
  if (used > cap)
    return yaie_fail(YAIE_ERR_ARG, "detokenize: %zu bytes do not fit in room for %zu", used, cap);
  return YAIE_OK;
}

struct yaie_decoder {
  const yaie_tokenizer *tok;
  unsigned char pending[4]; /* the start of a character still incomplete */
  size_t n_pending;
  char *out;
  size_t out_cap;
  int after_bos;
};

yaie_status yaie_decoder_new(const yaie_tokenizer *tok, yaie_decoder **out) {
  if (!tok || !out)
    return yaie_fail(YAIE_ERR_ARG, "yaie_decoder_new: NULL argument");
  *out = calloc(1, sizeof **out);
  if (!*out)
    return yaie_fail(YAIE_ERR_NOMEM, "decoder: out of memory");
  (*out)->tok = tok;
  return YAIE_OK;
}

void yaie_decoder_free(yaie_decoder *dec) {
  if (dec)
    free(dec->out);
  free(dec);
}

static const char REPLACEMENT[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Moves the complete characters of pending + bytes to dec->out, invalid bytes as U+FFFD;
 * keeps a valid but incomplete tail pending. */
static yaie_status decoder_feed(yaie_decoder *dec, const char *bytes, size_t n, size_t *out_len) {
  size_t total = dec->n_pending + n;
  if (total * 3 + 1 > dec->out_cap) {
    char *o = realloc(dec->out, total * 3 + 16);
    if (!o)
      return yaie_fail(YAIE_ERR_NOMEM, "decoder: out of memory");
    dec->out = o;
    dec->out_cap = total * 3 + 16;
  }
  unsigned char *buf = malloc(total ? total : 1);
  if (!buf)
    return yaie_fail(YAIE_ERR_NOMEM, "decoder: out of memory");
  memcpy(buf, dec->pending, dec->n_pending);
  memcpy(buf + dec->n_pending, bytes, n);
  size_t o = 0, i = 0;
  dec->n_pending = 0;
  while (i < total) {
    int l = utf8_valid_len(buf + i, total - i);
    if (l < 0) {
      memcpy(dec->pending, buf + i, total - i);
      dec->n_pending = total - i;
      break;
    }
    if (l == 0) {
      memcpy(dec->out + o, REPLACEMENT, 3);
      o += 3;
      i++;
      continue;
    }
    memcpy(dec->out + o, buf + i, (size_t)l);
    o += (size_t)l;
    i += (size_t)l;
  }
  free(buf);
  *out_len = o;
  return YAIE_OK;
}

yaie_status yaie_decoder_push(yaie_decoder *dec, int32_t id, const char **text, size_t *len) {
  if (!dec || !text || !len)
    return yaie_fail(YAIE_ERR_ARG, "yaie_decoder_push: NULL argument");
  const yaie_tokenizer *t = dec->tok;
  const char *p;
  size_t m;
  *text = "";
  *len = 0;
  YAIE_TRY(yaie_token_bytes(t, id, &p, &m));
  if (m || id == t->bos) {
    if (m && dec->after_bos && p[0] == ' ')
      p++, m--;
    dec->after_bos = id == t->bos && has_dummy_prefix(t);
  }
  YAIE_TRY(decoder_feed(dec, p, m, len));
  *text = dec->out;
  return YAIE_OK;
}

yaie_status yaie_decoder_flush(yaie_decoder *dec, const char **text, size_t *len) {
  if (!dec || !text || !len)
    return yaie_fail(YAIE_ERR_ARG, "yaie_decoder_flush: NULL argument");
  *text = "";
  *len = 0;
  if (dec->n_pending) {
    if (dec->out_cap < 4) {
      char *o = realloc(dec->out, 16);
      if (!o)
        return yaie_fail(YAIE_ERR_NOMEM, "decoder: out of memory");
      dec->out = o;
      dec->out_cap = 16;
    }
    memcpy(dec->out, REPLACEMENT, 3);
    *len = 3;
    *text = dec->out;
    dec->n_pending = 0;
  }
  return YAIE_OK;
}

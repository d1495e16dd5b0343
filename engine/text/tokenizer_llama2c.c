/* llama2.c's tokenizer.bin: int32 max_token_length, then per token a float32 score, an int32
 * length and the bytes. It is Llama 2's SentencePiece vocabulary with U+2581 written as a
 * space and BOS/EOS written as "\n<s>\n" / "\n</s>\n"; both are put back so that the
 * vocabulary matches the same model's GGUF. The file does not say how many tokens it holds,
 * so it is read to its end, every record checked against the bytes left. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "file.h"
#include "tokenizer_impl.h"

typedef struct record {
  float score;
  const char *text;
  uint32_t len;
} record;

static int32_t read_i32(const unsigned char *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Walks the records, checking each against the bytes left; fills recs when given. */
static yaie_status scan(const yaie_file *f, const char *path, record *recs, int *count) {
  int32_t max_len = read_i32(f->data), longest = 0;
  size_t off = 4;
  int n = 0;
  if (max_len <= 0 || max_len > (1 << 20))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: bad max_token_length %d (not a llama2.c tokenizer?)", path, max_len);
  while (off < f->size) {
    if (f->size - off < 8)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: truncated in token %d's header at offset %zu", path, n, off);
    int32_t len = read_i32(f->data + off + 4);
    if (len < 0 || len > max_len)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: token %d has length %d (max_token_length is %d) at offset %zu",
                       path, n, len, max_len, off + 4);
    if ((size_t)len > f->size - off - 8)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: truncated in token %d's text at offset %zu", path, n, off + 8);
    if (recs) {
      memcpy(&recs[n].score, f->data + off, 4);
      recs[n].text = (const char *)f->data + off + 8;
      recs[n].len = (uint32_t)len;
    }
    longest = len > longest ? len : longest;
    off += 8 + (size_t)len;
    n++;
  }
  /* The writer records the longest token's length: a shorter longest token means tokens are
   * missing from the end. */
  if (longest != max_len)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: max_token_length is %d but the longest token has %d bytes (truncated?)",
                     path, max_len, longest);
  if (n < 3)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: only %d tokens (truncated?)", path, n);
  *count = n;
  return YAIE_OK;
}

static int is_byte_piece(const char *s, size_t n) {
  return n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && strchr("0123456789ABCDEF", s[3]) && s[3] &&
         strchr("0123456789ABCDEF", s[4]) && s[4];
}

/* The SentencePiece spelling of a record: spaces back to U+2581, BOS/EOS without newlines. */
static yaie_status add_record(yaie_tokenizer *t, int id, const record *r, char *buf) {
  int32_t dup;
  size_t o = 0;
  const char *s = r->text;
  size_t n = r->len;
  if ((id == 1 && n == 5 && memcmp(s, "\n<s>\n", 5) == 0) || (id == 2 && n == 6 && memcmp(s, "\n</s>\n", 6) == 0))
    s++, n -= 2;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ') {
      memcpy(buf + o, "\xe2\x96\x81", 3);
      o += 3;
    } else {
      buf[o++] = s[i];
    }
  }
  t->scores[id] = r->score;
  t->type[id] = id == 0 ? TOK_UNKNOWN : id <= 2 ? TOK_CONTROL : is_byte_piece(buf, o) ? TOK_BYTE : TOK_NORMAL;
  YAIE_TRY(tok_add_token(t, buf, o, &dup));
  (void)dup; /* a repeated piece keeps its first id, as SentencePiece's lookup does */
  return YAIE_OK;
}

static yaie_status build(const yaie_file *f, const char *path, yaie_tokenizer **out) {
  int n = 0;
  YAIE_TRY(scan(f, path, NULL, &n));
  record *recs = malloc((size_t)n * sizeof *recs);
  char *buf = malloc((size_t)read_i32(f->data) * 3 + 1);
  yaie_tokenizer *t = NULL;
  yaie_status st = recs && buf ? scan(f, path, recs, &n) : yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  if (st == YAIE_OK)
    st = tok_new(TOK_SPM, n, path, &t);
  if (st == YAIE_OK && !(t->scores = malloc((size_t)n * sizeof *t->scores)))
    st = yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  for (int id = 0; st == YAIE_OK && id < n; id++)
    st = add_record(t, id, &recs[id], buf);
  if (st == YAIE_OK) {
    t->unk = 0, t->bos = 1, t->eos = 2, t->add_bos = 1;
    t->prefix = PREFIX_ALWAYS, t->escape_spaces = 1, t->byte_fallback = 1;
    st = tok_finish(t, path);
  }
  free(recs);
  free(buf);
  if (st != YAIE_OK)
    yaie_tokenizer_free(t);
  else
    *out = t;
  return st;
}

yaie_status yaie_tokenizer_from_llama2c(const char *path, yaie_tokenizer **out) {
  yaie_file f;
  *out = NULL;
  YAIE_TRY(yaie_file_map(path, &f));
  yaie_status st = f.size < 4 ? yaie_fail(YAIE_ERR_FORMAT, "%s: too short for a llama2.c tokenizer", path)
                              : build(&f, path, out);
  yaie_file_unmap(&f);
  return st;
}

/* SentencePiece-style BPE: the text handling around the shared merge loop (the dummy-prefix
 * space, spaces spelled U+2581, Metaspace's word split), and the merges list that stands in
 * for the scores when a SentencePiece vocabulary is written as a Hugging Face tokenizer.json. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_impl.h"

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's visible space */

static int wants_prefix(const yaie_tokenizer *t, const char *text, size_t n, int at_start) {
  if (t->prefix == PREFIX_NONE || (t->prefix == PREFIX_FIRST && !at_start))
    return 0;
  if (t->prefix_unless_space && n > 0 && (text[0] == ' ' || (n >= 3 && memcmp(text, SPACE_MARK, 3) == 0)))
    return 0;
  return 1;
}

/* Metaspace with split: every U+2581 begins a new word. */
static void encode_words(const yaie_tokenizer *t, const char *s, size_t n, tok_work *w, tok_ivec *out) {
  size_t start = 0;
  for (size_t i = 1; i + 3 <= n; i++) {
    if (memcmp(s + i, SPACE_MARK, 3) == 0) {
      tok_bpe_word(t, s + start, i - start, w, out);
      start = i;
      i += 2;
    }
  }
  tok_bpe_word(t, s + start, n - start, w, out);
}

yaie_status tok_encode_spm(const yaie_tokenizer *t, const char *text, size_t n, int at_start,
                           tok_work *w, tok_ivec *out) {
  if (n == 0)
    return YAIE_OK;
  if (!tok_work_reserve(w, 3 * n + 3))
    return yaie_fail(YAIE_ERR_NOMEM, "tokenize: out of memory");
  char *s = w->buf;
  size_t o = 0;
  if (wants_prefix(t, text, n, at_start)) {
    memcpy(s, SPACE_MARK, 3);
    o = 3;
  }
  for (size_t i = 0; i < n; i++) {
    if (text[i] == ' ' && t->escape_spaces) {
      memcpy(s + o, SPACE_MARK, 3);
      o += 3;
    } else {
      s[o++] = text[i];
    }
  }
  if (t->split_spaces)
    encode_words(t, s, o, w, out);
  else
    tok_bpe_word(t, s, o, w, out);
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Merges from scores. Ranking every split (left, right) of a piece by the piece's score makes
 * rank-ordered BPE pick the pair whose merged piece scores highest, as the score loop does. */

typedef struct scored_merge {
  float score;
  int32_t piece, left, right;
} scored_merge;

static int merge_cmp(const void *a, const void *b) {
  const scored_merge *x = a, *y = b;
  if (x->score != y->score)
    return x->score > y->score ? -1 : 1;
  if (x->piece != y->piece)
    return x->piece < y->piece ? -1 : 1;
  if (x->left != y->left)
    return x->left < y->left ? -1 : 1;
  return (x->right > y->right) - (x->right < y->right);
}

static int push_merge(scored_merge **v, size_t *n, size_t *cap, scored_merge m) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 1024;
    scored_merge *p = realloc(*v, c * sizeof *p);
    if (!p)
      return 0;
    *v = p;
    *cap = c;
  }
  (*v)[(*n)++] = m;
  return 1;
}

/* Every way to cut the piece at a character boundary into two tokens. */
static int piece_splits(const yaie_tokenizer *t, int32_t id, scored_merge **v, size_t *n, size_t *cap) {
  const char *s = tok_text(t, id);
  size_t len = tok_len(t, id);
  for (size_t cut = tok_utf8_len((unsigned char)s[0]); cut < len; cut += tok_utf8_len((unsigned char)s[cut])) {
    int32_t l = tok_find(t, s, cut), r = tok_find(t, s + cut, len - cut);
    if (l >= 0 && l < t->n_vocab && r >= 0 && r < t->n_vocab &&
        !push_merge(v, n, cap, (scored_merge){t->scores[id], id, l, r}))
      return 0;
  }
  return 1;
}

yaie_status tok_spm_merges_from_scores(const yaie_tokenizer *t, int32_t **out, int *n_out) {
  scored_merge *v = NULL;
  size_t n = 0, cap = 0;
  *out = NULL;
  *n_out = 0;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    if (tok_len(t, id) > 1 && t->scores && !piece_splits(t, id, &v, &n, &cap)) {
      free(v);
      return yaie_fail(YAIE_ERR_NOMEM, "tokenizer: out of memory for merges");
    }
  }
  qsort(v, n, sizeof *v, merge_cmp);
  int32_t *m = malloc((n + 1) * 2 * sizeof *m);
  if (!m) {
    free(v);
    return yaie_fail(YAIE_ERR_NOMEM, "tokenizer: out of memory for merges");
  }
  for (size_t i = 0; i < n; i++) {
    m[2 * i] = v[i].left;
    m[2 * i + 1] = v[i].right;
  }
  free(v);
  *out = m;
  *n_out = (int)n;
  return YAIE_OK;
}

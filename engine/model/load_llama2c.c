/* llama2.c checkpoints: a 7-int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; a negative vocab_size means a separate classifier), then fp32 weights in
 * this order: embeddings, attention norms, wq, wk, wv, wo, ffn norms, w1, w2, w3, final norm,
 * two legacy RoPE tables (skipped), and the classifier when not shared. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "file.h"
#include "model.h"

typedef struct reader {
  const float *p;
} reader;

static void copy_rows(reader *r, float *dst, size_t n) {
  memcpy(dst, r->p, n * sizeof(float));
  r->p += n;
}

yaie_status yaie_load_llama2c(const char *path, yaie_model **out) {
  *out = NULL;
  yaie_file f;
  YAIE_TRY(yaie_file_map(path, &f));
  int32_t h[7];
  if (f.size < sizeof h) {
    yaie_file_unmap(&f);
    return yaie_fail(YAIE_ERR_FORMAT, "%s: truncated llama2.c header (%zu bytes)", path, f.size);
  }
  memcpy(h, f.data, sizeof h);
  yaie_config c = {0};
  strcpy(c.arch, "llama");
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;
  c.vocab_size = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
  c.max_seq_len = h[6];
  c.head_dim = c.n_heads > 0 && c.dim % c.n_heads == 0 ? c.dim / c.n_heads : 0;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_layout = YAIE_ROPE_ADJACENT;
  yaie_status st = yaie_config_validate(&c, path);
  if (st == YAIE_OK && c.head_dim * c.n_heads != c.dim)
    st = yaie_fail(YAIE_ERR_FORMAT, "%s: dim %d is not a multiple of n_heads %d", path, c.dim, c.n_heads);
  if (st != YAIE_OK) {
    char why[512]; /* yaie_fail overwrites the message it would quote */
    snprintf(why, sizeof why, "%s", yaie_last_error());
    yaie_file_unmap(&f);
    return yaie_fail(st, "%s (not a llama2.c checkpoint?)", why);
  }

  size_t dim = (size_t)c.dim, hidden = (size_t)c.hidden_dim, L = (size_t)c.n_layers;
  size_t q = (size_t)yaie_q_dim(&c), kv = (size_t)yaie_kv_dim(&c), vocab = (size_t)c.vocab_size;
  size_t rope_tables = (size_t)c.max_seq_len * (size_t)c.head_dim;
  size_t n_floats = vocab * dim + L * (2 * dim + dim * q + 2 * dim * kv + q * dim + 3 * dim * hidden) +
                    dim + rope_tables + (c.tied_embeddings ? 0 : vocab * dim);
  size_t expected = sizeof h + n_floats * sizeof(float);
  if (f.size != expected) {
    yaie_file_unmap(&f);
    return yaie_fail(YAIE_ERR_FORMAT, "%s: size %zu bytes does not match the %zu its header implies%s",
                     path, f.size, expected, f.size < expected ? " (truncated?)" : "");
  }

  yaie_model *m;
  st = yaie_model_alloc(&c, path, &m);
  if (st != YAIE_OK) {
    yaie_file_unmap(&f);
    return st;
  }
  reader r = {(const float *)(f.data + sizeof h)};
  copy_rows(&r, m->tok_embeddings, vocab * dim);
  for (size_t l = 0; l < L; l++) copy_rows(&r, m->layers[l].attn_norm, dim);
  for (size_t l = 0; l < L; l++) copy_rows(&r, yaie_wq(m, (int)l), q * dim);
  for (size_t l = 0; l < L; l++) copy_rows(&r, yaie_wk(m, (int)l), kv * dim);
  for (size_t l = 0; l < L; l++) copy_rows(&r, yaie_wv(m, (int)l), kv * dim);
  for (size_t l = 0; l < L; l++) copy_rows(&r, m->layers[l].wo, dim * q);
  for (size_t l = 0; l < L; l++) copy_rows(&r, m->layers[l].ffn_norm, dim);
  for (size_t l = 0; l < L; l++) copy_rows(&r, yaie_w_gate(m, (int)l), hidden * dim);
  for (size_t l = 0; l < L; l++) copy_rows(&r, m->layers[l].w_down, dim * hidden);
  for (size_t l = 0; l < L; l++) copy_rows(&r, yaie_w_up(m, (int)l), hidden * dim);
  copy_rows(&r, m->final_norm, dim);
  r.p += rope_tables;
  if (!c.tied_embeddings)
    copy_rows(&r, m->classifier, vocab * dim);
  yaie_file_unmap(&f);
  *out = m;
  return YAIE_OK;
}

/* Model lifecycle: load dispatch by file kind, config validation, weight allocation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "file.h"
#include "model.h"
#include "tokenizer.h"

yaie_status yaie_config_validate(const yaie_config *c, const char *path) {
  struct { const char *name; long v, lo, hi; } checks[] = {
    {"dim", c->dim, 1, 1 << 16},
    {"hidden_dim", c->hidden_dim, 1, 1 << 18},
    {"n_layers", c->n_layers, 1, 1024},
    {"n_heads", c->n_heads, 1, 1024},
    {"n_kv_heads", c->n_kv_heads, 1, 1024},
    {"head_dim", c->head_dim, 2, 1024},
    {"vocab_size", c->vocab_size, 1, 1 << 22},
    {"max_seq_len", c->max_seq_len, 1, 1 << 24},
  };
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
    if (checks[i].v < checks[i].lo || checks[i].v > checks[i].hi)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: config %s = %ld is out of range [%ld, %ld]", path,
                       checks[i].name, checks[i].v, checks[i].lo, checks[i].hi);
  if (c->n_heads % c->n_kv_heads)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: n_heads %d is not a multiple of n_kv_heads %d", path,
                     c->n_heads, c->n_kv_heads);
  if (c->head_dim % 2)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: head_dim %d is odd (RoPE rotates pairs)", path, c->head_dim);
  if (!(c->norm_eps > 0 && c->norm_eps < 1))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: norm epsilon %g is out of range", path, c->norm_eps);
  if (!(c->rope_theta > 0))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: rope_theta %g is not positive", path, c->rope_theta);
  return YAIE_OK;
}

static float *alloc_floats(size_t n, int *failed) {
  float *p = calloc(n ? n : 1, sizeof(float));
  if (!p)
    *failed = 1;
  return p;
}

yaie_status yaie_model_alloc(const yaie_config *c, const char *path, yaie_model **out) {
  *out = NULL;
  YAIE_TRY(yaie_config_validate(c, path));
  yaie_model *m = calloc(1, sizeof *m);
  if (!m)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  m->config = *c;
  m->path = strdup(path);
  m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
  int failed = !m->path || !m->layers;
  size_t dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim;
  size_t qkv = (size_t)(yaie_q_dim(c) + 2 * yaie_kv_dim(c));
  m->tok_embeddings = alloc_floats((size_t)c->vocab_size * dim, &failed);
  m->final_norm = alloc_floats(dim, &failed);
  m->rope_inv_freq = alloc_floats((size_t)c->head_dim / 2, &failed);
  m->classifier = c->tied_embeddings ? m->tok_embeddings : alloc_floats((size_t)c->vocab_size * dim, &failed);
  for (int l = 0; !failed && l < c->n_layers; l++) {
    yaie_layer *L = &m->layers[l];
    L->attn_norm = alloc_floats(dim, &failed);
    L->wqkv = alloc_floats(qkv * dim, &failed);
    L->bqkv = c->qkv_bias ? alloc_floats(qkv, &failed) : NULL;
    L->q_norm = c->qk_norm ? alloc_floats((size_t)c->head_dim, &failed) : NULL;
    L->k_norm = c->qk_norm ? alloc_floats((size_t)c->head_dim, &failed) : NULL;
    L->wo = alloc_floats(dim * (size_t)yaie_q_dim(c), &failed);
    L->ffn_norm = alloc_floats(dim, &failed);
    L->w_gate_up = alloc_floats(2 * hidden * dim, &failed);
    L->w_down = alloc_floats(dim * hidden, &failed);
  }
  if (failed) {
    yaie_model_free(m);
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory allocating the weights", path);
  }
  yaie_model_init_rope(m, NULL);
  *out = m;
  return YAIE_OK;
}

void yaie_model_free(yaie_model *m) {
  if (!m)
    return;
  if (m->device_weights_free)
    m->device_weights_free(m->device_weights);
  for (int l = 0; m->layers && l < m->config.n_layers; l++) {
    yaie_layer *L = &m->layers[l];
    free(L->attn_norm);
    free(L->wqkv);
    free(L->bqkv);
    free(L->q_norm);
    free(L->k_norm);
    free(L->wo);
    free(L->ffn_norm);
    free(L->w_gate_up);
    free(L->w_down);
  }
  free(m->layers);
  if (m->classifier != m->tok_embeddings)
    free(m->classifier);
  free(m->tok_embeddings);
  free(m->final_norm);
  free(m->rope_inv_freq);
  yaie_tokenizer_free(m->tokenizer);
  free(m->path);
  free(m);
}

const yaie_config *yaie_model_config(const yaie_model *m) { return &m->config; }

yaie_tokenizer *yaie_model_tokenizer(const yaie_model *m) { return m->tokenizer; }

yaie_status yaie_model_load(const char *path, yaie_model **out) {
  *out = NULL;
  if (!path || !*path)
    return yaie_fail(YAIE_ERR_ARG, "no model path given");
  if (yaie_path_is_dir(path))
    return yaie_load_hf(path, out);
  yaie_file f;
  YAIE_TRY(yaie_file_map(path, &f));
  int is_gguf = f.size >= 4 && memcmp(f.data, "GGUF", 4) == 0;
  yaie_file_unmap(&f);
  return is_gguf ? yaie_load_gguf(path, out) : yaie_load_llama2c(path, out);
}

void yaie_model_init_rope(yaie_model *m, const float *freq_factors) {
  const yaie_config *c = &m->config;
  int half = c->head_dim / 2;
  for (int i = 0; i < half; i++) {
    /* powf in float, as llama2.c computes it, so greedy outputs match it bit for bit. */
    float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
    if (freq_factors) {
      inv /= freq_factors[i];
    } else if (c->rope_scaling_factor > 0 && c->rope_original_max_pos > 0) {
      /* llama3: long wavelengths slowed by the factor, short ones kept, a smooth blend between. */
      double wavelen = 2 * M_PI / inv, old = c->rope_original_max_pos;
      double low_wavelen = old / c->rope_low_freq_factor, high_wavelen = old / c->rope_high_freq_factor;
      if (wavelen > low_wavelen) {
        inv /= c->rope_scaling_factor;
      } else if (wavelen >= high_wavelen) {
        double smooth = (old / wavelen - c->rope_low_freq_factor) /
                        (c->rope_high_freq_factor - c->rope_low_freq_factor);
        inv = (float)((1 - smooth) * inv / c->rope_scaling_factor + smooth * inv);
      }
    }
    m->rope_inv_freq[i] = inv;
  }
}

yaie_status yaie_permute_rope_rows(float *w, int n_heads, int head_dim, int cols, int to_half) {
  size_t row_bytes = (size_t)cols * sizeof(float);
  float *tmp = malloc((size_t)head_dim * row_bytes);
  if (!tmp)
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory permuting RoPE rows");
  int half = head_dim / 2;
  for (int h = 0; h < n_heads; h++) {
    float *head = w + (size_t)h * head_dim * cols;
    memcpy(tmp, head, (size_t)head_dim * row_bytes);
    /* Adjacent layout row 2i+j holds the same weights as half layout row j*half+i. */
    for (int i = 0; i < half; i++)
      for (int j = 0; j < 2; j++) {
        int adjacent = 2 * i + j, halved = j * half + i;
        int dst = to_half ? halved : adjacent, src = to_half ? adjacent : halved;
        memcpy(head + (size_t)dst * cols, tmp + (size_t)src * cols, row_bytes);
      }
  }
  free(tmp);
  return YAIE_OK;
}

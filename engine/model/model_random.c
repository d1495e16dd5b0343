/* Models with random weights, for benchmarks and tests that need a model's shape and not its
 * knowledge (an 8B-parameter shape without reading 16 GB from disk). Each value is a hash of
 * (seed, tensor, index), so the weights do not depend on the thread count. */
#include <math.h>
#include <stdio.h>

#include "error.h"
#include "model.h"

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [center - half, center + half): the spread of trained weights matters for the
 * numerics only through its scale, and a uniform draw is cheap. */
static void fill(float *w, size_t n, uint64_t seed, uint64_t tensor, float center, float half) {
  if (!w)
    return;
  uint64_t base = mix(seed ^ mix(tensor + 0x9e3779b97f4a7c15ull));
#pragma omp parallel for schedule(static) if (n > (1u << 20))
  for (size_t i = 0; i < n; i++) {
    float u = (float)(mix(base + i) >> 40) / 16777216.0f;
    w[i] = center + half * (2.0f * u - 1.0f);
  }
}

yaie_status yaie_model_random(const yaie_config *config, uint64_t seed, yaie_model **out) {
  *out = NULL;
  yaie_model *m;
  char name[64];
  snprintf(name, sizeof name, "random-%s", config->arch[0] ? config->arch : "llama");
  YAIE_TRY(yaie_model_alloc(config, name, &m));
  const yaie_config *c = &m->config;
  size_t dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim, q_dim = (size_t)yaie_q_dim(c);
  size_t qkv = q_dim + 2 * (size_t)yaie_kv_dim(c);
  /* Scales that keep activations of order one through the layers: 1/sqrt(fan_in) matrices. */
  float s_dim = 1.0f / sqrtf((float)dim), s_q = 1.0f / sqrtf((float)q_dim), s_h = 1.0f / sqrtf((float)hidden);
  fill(m->tok_embeddings, (size_t)c->vocab_size * dim, seed, 1, 0.0f, 1.0f);
  fill(m->final_norm, dim, seed, 2, 1.0f, 0.1f);
  if (m->classifier != m->tok_embeddings)
    fill(m->classifier, (size_t)c->vocab_size * dim, seed, 3, 0.0f, s_dim);
  for (int l = 0; l < c->n_layers; l++) {
    yaie_layer *L = &m->layers[l];
    uint64_t t = 16 + 16 * (uint64_t)l;
    fill(L->attn_norm, dim, seed, t + 0, 1.0f, 0.1f);
    fill(L->wqkv, qkv * dim, seed, t + 1, 0.0f, s_dim);
    fill(L->bqkv, qkv, seed, t + 2, 0.0f, 0.1f);
    fill(L->q_norm, (size_t)c->head_dim, seed, t + 3, 1.0f, 0.1f);
    fill(L->k_norm, (size_t)c->head_dim, seed, t + 4, 1.0f, 0.1f);
    fill(L->wo, dim * q_dim, seed, t + 5, 0.0f, s_q);
    fill(L->ffn_norm, dim, seed, t + 6, 1.0f, 0.1f);
    fill(L->w_gate_up, 2 * hidden * dim, seed, t + 7, 0.0f, s_dim);
    fill(L->w_down, dim * hidden, seed, t + 8, 0.0f, s_h);
  }
  *out = m;
  return YAIE_OK;
}

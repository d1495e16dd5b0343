/* GGUF models (arch llama, qwen2, qwen3): hyperparameters from `{arch}.*` metadata, tensors by
 * llama.cpp's names, each checked for shape and type and converted to fp32, the tokenizer from
 * `tokenizer.ggml.*`. GGUF llama stores Q/K in the adjacent-pair RoPE layout (llama.cpp undoes
 * the HF permutation); qwen2/qwen3 keep the half layout (NEOX). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dequant.h"
#include "error.h"
#include "gguf.h"
#include "model.h"
#include "tokenizer.h"

static int get_arch_int(const yaie_gguf *g, const char *arch, const char *key, int64_t *v) {
  char full[128];
  snprintf(full, sizeof full, "%s.%s", arch, key);
  return yaie_gguf_get_int(g, full, v);
}

static int get_arch_float(const yaie_gguf *g, const char *arch, const char *key, double *v) {
  char full[128];
  snprintf(full, sizeof full, "%s.%s", arch, key);
  return yaie_gguf_get_float(g, full, v);
}

static yaie_status read_config(const yaie_gguf *g, yaie_config *c) {
  yaie_gguf_str arch;
  if (!yaie_gguf_get_str(g, "general.architecture", &arch))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: no general.architecture", g->path);
  if (arch.len >= sizeof c->arch)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: unknown architecture", g->path);
  memcpy(c->arch, arch.ptr, arch.len);
  c->arch[arch.len] = 0;
  int is_qwen = !strcmp(c->arch, "qwen2") || !strcmp(c->arch, "qwen3");
  if (strcmp(c->arch, "llama") && !is_qwen)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (llama, qwen2, qwen3)",
                     g->path, c->arch);
  int64_t dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, ctx = 0, head_dim = 0;
  double eps = 1e-5, theta = 10000.0;
  if (!get_arch_int(g, c->arch, "embedding_length", &dim) ||
      !get_arch_int(g, c->arch, "feed_forward_length", &hidden) ||
      !get_arch_int(g, c->arch, "block_count", &layers) ||
      !get_arch_int(g, c->arch, "attention.head_count", &heads))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: missing %s hyperparameters (embedding_length, "
                     "feed_forward_length, block_count, attention.head_count)", g->path, c->arch);
  if (!get_arch_int(g, c->arch, "attention.head_count_kv", &kv_heads))
    kv_heads = heads;
  if (!get_arch_int(g, c->arch, "context_length", &ctx))
    ctx = 2048;
  get_arch_float(g, c->arch, "attention.layer_norm_rms_epsilon", &eps);
  get_arch_float(g, c->arch, "rope.freq_base", &theta);
  if (!get_arch_int(g, c->arch, "attention.key_length", &head_dim))
    head_dim = heads > 0 ? dim / heads : 0;
  c->dim = (int)dim;
  c->hidden_dim = (int)hidden;
  c->n_layers = (int)layers;
  c->n_heads = (int)heads;
  c->n_kv_heads = (int)kv_heads;
  c->head_dim = (int)head_dim;
  c->max_seq_len = (int)ctx;
  c->norm_eps = (float)eps;
  c->rope_theta = (float)theta;
  c->rope_layout = is_qwen ? YAIE_ROPE_HALF : YAIE_ROPE_ADJACENT;
  c->qkv_bias = !strcmp(c->arch, "qwen2");
  c->qk_norm = !strcmp(c->arch, "qwen3");
  c->tied_embeddings = yaie_gguf_tensor_find(g, "output.weight") == NULL;
  const yaie_gguf_tensor *emb = yaie_gguf_tensor_find(g, "token_embd.weight");
  if (!emb)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: missing tensor token_embd.weight", g->path);
  c->vocab_size = emb->n_dims == 2 && emb->ne[1] < (1u << 30) ? (int)emb->ne[1] : 0;
  return YAIE_OK;
}

/* Reads tensor `name` of shape [ne1][ne0] (ne1 = 1 for vectors) into dst as fp32. */
static yaie_status read_tensor(const yaie_gguf *g, const char *name, float *dst, uint64_t ne0, uint64_t ne1) {
  const yaie_gguf_tensor *t = yaie_gguf_tensor_find(g, name);
  if (!t)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: missing tensor %s", g->path, name);
  uint64_t want_dims = ne1 > 1 ? 2 : 1;
  if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1 || t->n_dims > want_dims)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]",
                     g->path, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                     (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                     (unsigned long long)ne0, (unsigned long long)ne1);
  if (t->nbytes == 0 || yaie_dequantize(t->type, t->data, dst, (size_t)t->n_elements) != 0)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: tensor %s has type %u (%s), which yaie cannot read",
                     g->path, name, t->type, yaie_ggml_type_name(t->type));
  return YAIE_OK;
}

static yaie_status read_layer(const yaie_gguf *g, yaie_model *m, int l) {
  const yaie_config *c = &m->config;
  yaie_layer *L = &m->layers[l];
  uint64_t dim = (uint64_t)c->dim, hidden = (uint64_t)c->hidden_dim;
  uint64_t q = (uint64_t)yaie_q_dim(c), kv = (uint64_t)yaie_kv_dim(c);
  char name[96];
#define LAYER_TENSOR(suffix, dst, ne0, ne1)                          \
  do {                                                               \
    snprintf(name, sizeof name, "blk.%d.%s", l, suffix);             \
    YAIE_TRY(read_tensor(g, name, (dst), (ne0), (ne1)));             \
  } while (0)
  LAYER_TENSOR("attn_norm.weight", L->attn_norm, dim, 1);
  LAYER_TENSOR("attn_q.weight", yaie_wq(m, l), dim, q);
  LAYER_TENSOR("attn_k.weight", yaie_wk(m, l), dim, kv);
  LAYER_TENSOR("attn_v.weight", yaie_wv(m, l), dim, kv);
  LAYER_TENSOR("attn_output.weight", L->wo, q, dim);
  LAYER_TENSOR("ffn_norm.weight", L->ffn_norm, dim, 1);
  LAYER_TENSOR("ffn_gate.weight", yaie_w_gate(m, l), dim, hidden);
  LAYER_TENSOR("ffn_up.weight", yaie_w_up(m, l), dim, hidden);
  LAYER_TENSOR("ffn_down.weight", L->w_down, hidden, dim);
  if (c->qkv_bias) {
    LAYER_TENSOR("attn_q.bias", L->bqkv, q, 1);
    LAYER_TENSOR("attn_k.bias", L->bqkv + q, kv, 1);
    LAYER_TENSOR("attn_v.bias", L->bqkv + q + kv, kv, 1);
  }
  if (c->qk_norm) {
    LAYER_TENSOR("attn_q_norm.weight", L->q_norm, (uint64_t)c->head_dim, 1);
    LAYER_TENSOR("attn_k_norm.weight", L->k_norm, (uint64_t)c->head_dim, 1);
  }
#undef LAYER_TENSOR
  return YAIE_OK;
}

static yaie_status read_weights(const yaie_gguf *g, yaie_model *m) {
  const yaie_config *c = &m->config;
  uint64_t dim = (uint64_t)c->dim, vocab = (uint64_t)c->vocab_size;
  YAIE_TRY(read_tensor(g, "token_embd.weight", m->tok_embeddings, dim, vocab));
  YAIE_TRY(read_tensor(g, "output_norm.weight", m->final_norm, dim, 1));
  if (!c->tied_embeddings)
    YAIE_TRY(read_tensor(g, "output.weight", m->classifier, dim, vocab));
  for (int l = 0; l < c->n_layers; l++)
    YAIE_TRY(read_layer(g, m, l));
  if (yaie_gguf_tensor_find(g, "rope_freqs.weight")) {
    /* llama3-style scaling ships as per-frequency divisors. */
    float factors[512];
    if (c->head_dim / 2 > 512)
      return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: head_dim too large for rope_freqs", g->path);
    YAIE_TRY(read_tensor(g, "rope_freqs.weight", factors, (uint64_t)c->head_dim / 2, 1));
    yaie_model_init_rope(m, factors);
  }
  return YAIE_OK;
}

yaie_status yaie_load_gguf(const char *path, yaie_model **out) {
  *out = NULL;
  yaie_gguf g;
  YAIE_TRY(yaie_gguf_open(path, &g));
  yaie_config c = {0};
  yaie_model *m = NULL;
  yaie_status st = read_config(&g, &c);
  if (st == YAIE_OK)
    st = yaie_model_alloc(&c, path, &m);
  if (st == YAIE_OK)
    st = read_weights(&g, m);
  if (st == YAIE_OK)
    st = yaie_tokenizer_from_gguf(&g, &m->tokenizer);
  yaie_gguf_close(&g);
  if (st != YAIE_OK) {
    yaie_model_free(m);
    return st;
  }
  *out = m;
  return YAIE_OK;
}

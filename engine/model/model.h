/* The model as the engine holds it: config plus fp32 weights in row-major [out][in] layout
 * (y = W x), the Q/K rows in the layout config.rope_layout names. Q, K and V share one matrix
 * (wqkv) and gate and up share one (w_gate_up), so each is a single GEMM per layer. */
#ifndef YAIE_MODEL_H
#define YAIE_MODEL_H

#include "yaie.h"

typedef struct yaie_layer {
  float *attn_norm;         /* [dim] */
  float *wqkv;              /* [q_dim + 2 kv_dim][dim]: rows of Q, then K, then V */
  float *bqkv;              /* [q_dim + 2 kv_dim], Qwen2 only, else NULL */
  float *q_norm, *k_norm;   /* [head_dim], Qwen3 only, else NULL */
  float *wo;                /* [dim][q_dim] */
  float *ffn_norm;          /* [dim] */
  float *w_gate_up;         /* [2 hidden][dim]: rows of gate (w1), then up (w3) */
  float *w_down;            /* [dim][hidden] (w2) */
} yaie_layer;

struct yaie_model {
  yaie_config config;
  float *tok_embeddings; /* [vocab][dim] */
  float *final_norm;     /* [dim] */
  float *classifier;     /* [vocab][dim]; equals tok_embeddings when tied */
  yaie_layer *layers;
  float *rope_inv_freq;  /* [head_dim / 2]: theta^(-2i/d), with llama3 scaling applied */
  yaie_tokenizer *tokenizer; /* found with the model, or NULL; owned */
  char *path;
  /* A device backend's copy of the weights (CUDA: bf16 on the GPU), made by its first context,
   * shared by every context on the model, and released with the model. */
  void *device_weights;
  void (*device_weights_free)(void *weights);
};

static inline int yaie_q_dim(const yaie_config *c) { return c->n_heads * c->head_dim; }
static inline int yaie_kv_dim(const yaie_config *c) { return c->n_kv_heads * c->head_dim; }

/* Checks the config is consistent (positive sizes, heads dividing evenly), naming `path`. */
yaie_status yaie_config_validate(const yaie_config *c, const char *path);
/* Allocates every weight array for a validated config (zeroed), the optional ones as the
 * config asks. The loaders then fill them. */
yaie_status yaie_model_alloc(const yaie_config *c, const char *path, yaie_model **out);

/* Fills rope_inv_freq from the config; freq_factors (GGUF rope_freqs, [head_dim/2]) divide the
 * frequencies when given, in place of computing llama3 scaling from the config. */
void yaie_model_init_rope(yaie_model *m, const float *freq_factors);

/* Loaders, dispatched by yaie_model_load from the file's kind. */
yaie_status yaie_load_llama2c(const char *path, yaie_model **out);
yaie_status yaie_load_gguf(const char *path, yaie_model **out);
yaie_status yaie_load_hf(const char *dir, yaie_model **out);

/* Row ranges inside wqkv. */
static inline float *yaie_wq(const yaie_model *m, int l) { return m->layers[l].wqkv; }
static inline float *yaie_wk(const yaie_model *m, int l) {
  return m->layers[l].wqkv + (size_t)yaie_q_dim(&m->config) * m->config.dim;
}
static inline float *yaie_wv(const yaie_model *m, int l) {
  return m->layers[l].wqkv + (size_t)(yaie_q_dim(&m->config) + yaie_kv_dim(&m->config)) * m->config.dim;
}
static inline float *yaie_w_gate(const yaie_model *m, int l) { return m->layers[l].w_gate_up; }
static inline float *yaie_w_up(const yaie_model *m, int l) {
  return m->layers[l].w_gate_up + (size_t)m->config.hidden_dim * m->config.dim;
}

/* Converts Q or K rows of one projection between RoPE layouts, in place: rows [n_heads *
 * head_dim][cols]. to_half: adjacent-pair layout to HF half layout; else the inverse. */
yaie_status yaie_permute_rope_rows(float *w, int n_heads, int head_dim, int cols, int to_half);

#endif

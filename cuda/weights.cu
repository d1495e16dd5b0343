// The model's weights on the GPU: matrices (and the embedding table) in bf16, converted from the
// host's fp32 on the GPU in chunks; norm weights, biases and RoPE frequencies stay fp32 (they are
// small, and the norms' precision is cheap to keep). Made by the first context on a model and
// released with the model (yaie_model.device_weights).
#include "weights.cuh"

#include <stdlib.h>

#define STAGE_FLOATS (16u << 20) // 64 MiB of fp32 per conversion chunk

static yaie_status upload_f32(float **out, const float *src, size_t n) {
  *out = nullptr;
  if (!src)
    return YAIE_OK;
  CUDA_TRY(cudaMalloc(out, n * sizeof(float)));
  CUDA_TRY(cudaMemcpy(*out, src, n * sizeof(float), cudaMemcpyHostToDevice));
  return YAIE_OK;
}

static yaie_status upload_bf16(bf16 **out, const float *src, size_t n, float *stage, size_t *bytes) {
  CUDA_TRY(cudaMalloc(out, n * sizeof(bf16)));
  for (size_t off = 0; off < n; off += STAGE_FLOATS) {
    size_t len = n - off < STAGE_FLOATS ? n - off : STAGE_FLOATS;
    CUDA_TRY(cudaMemcpy(stage, src + off, len * sizeof(float), cudaMemcpyHostToDevice));
    launch_f32_to_bf16(*out + off, stage, len, 0);
    CUDA_TRY(cudaGetLastError());
  }
  *bytes += n * sizeof(bf16);
  return YAIE_OK;
}

static yaie_status upload_all(const yaie_model *m, cuda_weights *w, float *stage) {
  const yaie_config *c = &m->config;
  size_t dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim, q_dim = (size_t)yaie_q_dim(c);
  size_t qkv = q_dim + 2 * (size_t)yaie_kv_dim(c), vocab = (size_t)c->vocab_size;
  STATUS_TRY(upload_bf16(&w->emb, m->tok_embeddings, vocab * dim, stage, &w->bytes));
  if (m->classifier == m->tok_embeddings)
    w->classifier = w->emb;
  else
    STATUS_TRY(upload_bf16(&w->classifier, m->classifier, vocab * dim, stage, &w->bytes));
  STATUS_TRY(upload_f32(&w->final_norm, m->final_norm, dim));
  STATUS_TRY(upload_f32(&w->inv_freq, m->rope_inv_freq, (size_t)c->head_dim / 2));
  for (int l = 0; l < c->n_layers; l++) {
    const yaie_layer *L = &m->layers[l];
    cuda_layer *D = &w->layers[l];
    STATUS_TRY(upload_f32(&D->attn_norm, L->attn_norm, dim));
    STATUS_TRY(upload_f32(&D->ffn_norm, L->ffn_norm, dim));
    STATUS_TRY(upload_f32(&D->bqkv, L->bqkv, qkv));
    STATUS_TRY(upload_f32(&D->q_norm, L->q_norm, (size_t)c->head_dim));
    STATUS_TRY(upload_f32(&D->k_norm, L->k_norm, (size_t)c->head_dim));
    STATUS_TRY(upload_bf16(&D->wqkv, L->wqkv, qkv * dim, stage, &w->bytes));
    STATUS_TRY(upload_bf16(&D->wo, L->wo, dim * q_dim, stage, &w->bytes));
    STATUS_TRY(upload_bf16(&D->w_gate_up, L->w_gate_up, 2 * hidden * dim, stage, &w->bytes));
    STATUS_TRY(upload_bf16(&D->w_down, L->w_down, dim * hidden, stage, &w->bytes));
  }
  CUDA_TRY(cudaDeviceSynchronize());
  return YAIE_OK;
}

void cuda_weights_free(void *p) {
  cuda_weights *w = (cuda_weights *)p;
  if (!w)
    return;
  for (int l = 0; w->layers && l < w->n_layers; l++) {
    cuda_layer *D = &w->layers[l];
    void *ptrs[] = {D->attn_norm, D->ffn_norm, D->bqkv, D->q_norm, D->k_norm, D->wqkv, D->wo, D->w_gate_up, D->w_down};
    for (void *q : ptrs)
      cudaFree(q);
  }
  if (w->classifier != w->emb)
    cudaFree(w->classifier);
  cudaFree(w->emb);
  cudaFree(w->final_norm);
  cudaFree(w->inv_freq);
  free(w->layers);
  free(w);
}

yaie_status cuda_weights_get(yaie_model *m, cuda_weights **out) {
  if (m->device_weights) {
    *out = (cuda_weights *)m->device_weights;
    return YAIE_OK;
  }
  cuda_weights *w = (cuda_weights *)calloc(1, sizeof *w);
  if (w)
    w->layers = (cuda_layer *)calloc((size_t)m->config.n_layers, sizeof *w->layers);
  if (!w || !w->layers) {
    free(w);
    return cuda_fail(YAIE_ERR_NOMEM, "cuda: out of host memory for the weight table");
  }
  w->n_layers = m->config.n_layers;
  float *stage = nullptr;
  yaie_status st = YAIE_OK;
  if (cudaMalloc(&stage, STAGE_FLOATS * sizeof(float)) != cudaSuccess)
    st = cuda_fail(YAIE_ERR_NOMEM, "cuda: cannot allocate the weight staging buffer");
  if (st == YAIE_OK)
    st = upload_all(m, w, stage);
  cudaFree(stage);
  if (st != YAIE_OK) {
    yaie_status keep = st;
    cuda_weights_free(w);
    return keep;
  }
  m->device_weights = w;
  m->device_weights_free = cuda_weights_free;
  *out = w;
  return YAIE_OK;
}

// The model's weights on the GPU (weights.cu).
#pragma once

#include "kernels.cuh"

struct cuda_layer {
  float *attn_norm, *ffn_norm, *bqkv, *q_norm, *k_norm; // fp32; bqkv, q_norm, k_norm may be NULL
  bf16 *wqkv, *wo, *w_gate_up, *w_down;                 // bf16, [out][in] as on the host
};

struct cuda_weights {
  bf16 *emb, *classifier; // classifier == emb when tied
  float *final_norm, *inv_freq;
  cuda_layer *layers;
  int n_layers;
  size_t bytes; // of the bf16 matrices, for the benchmark's roofline
};

// The model's GPU weights, uploading them on first use (they then live as long as the model).
yaie_status cuda_weights_get(yaie_model *m, cuda_weights **out);
void cuda_weights_free(void *w);

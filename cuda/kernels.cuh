// The kernels of the CUDA backend, as host functions that launch them on a stream. Output first,
// then inputs, then sizes, as in the CPU backend. The backend (backend_cuda.cu) and the kernel
// tests (test_kernels.cu) call only these.
#pragma once

#include <cublas_v2.h>

#include "common.cuh"

// ---- Elementwise and norms (norm.cu) -------------------------------------------------------

// x[r] = emb[rows[r].token] as floats.
void launch_embed(float *x, const bf16 *emb, const row_info *rows, int n_rows, int dim, cudaStream_t s);

// For each output row i (source row src = src_rows ? src_rows[i] : i): x[src] += y[src] when y is
// given (the residual add), then out[i] = RMSNorm(x[src]) * w, in bf16.
void launch_add_rmsnorm(bf16 *out, float *x, const float *y, const float *w, const int *src_rows, int n_out,
                        int dim, float eps, cudaStream_t s, int pdl_next = 0);

// h[r][i] = silu(gu[r][i]) * gu[r][hidden + i].
void launch_swiglu(bf16 *h, const bf16 *gu, int n_rows, int hidden, cudaStream_t s, int pdl_next = 0);

void launch_f32_to_bf16(bf16 *out, const float *in, size_t n, cudaStream_t s);

// tables[idx[i]] = val[i]: the page-table entries that changed since the last step.
void launch_scatter(int *tables, const int2 *patches, int n, cudaStream_t s);

// ---- Q/K/V after the projection (qkv.cu) ---------------------------------------------------

// Per row of qkv ([rows][q_dim + 2 kv_dim]): bias add, RMSNorm per head of Q and K (Qwen3), RoPE
// on Q and K at the row's position; Q to q_out ([rows][q_dim]), K and V into the row's page slot.
struct qkv_args {
  bf16 *q_out;
  kv_layout kv;
  int layer;
  const bf16 *qkv;
  const float *bias;           // [q_dim + 2 kv_dim] or NULL
  const float *q_norm, *k_norm; // [head_dim] or NULL
  const float *inv_freq;       // [head_dim / 2]
  const row_info *rows;
  const int *tables;
  int max_pages;
  int n_heads, n_kv_heads, head_dim, rope_layout;
  float eps;
};
void launch_qkv_rope(const qkv_args &a, int n_rows, cudaStream_t s);

// ---- Attention (attention.cu, attention_prefill.cu) ----------------------------------------

// One query row at a time (decode, and any head size): causal attention of row r over positions
// [0, pos], split over the KV length into n_splits parts merged by a second kernel. row_list
// names the rows (NULL: rows 0..n-1). part_acc/part_ml hold n * n_heads * n_splits partials;
// n_splits is at most 32 (attention_rows_splits never asks for more).
void launch_attention_rows(const attn_args &a, const int *row_list, int n, int n_splits, float *part_acc,
                           float *part_ml, cudaStream_t s);
// How many parts to split each row's KV length into, so that n rows fill the GPU's sms.
int attention_rows_splits(int n_rows, int n_kv_heads, int group, int sms, int max_len);

// Cascade attention (attention_cascade.cu). Partial results are laid out per (row of row_list,
// head) in n_parts slots: the row's own parts (launch_attention_rows_cascade: positions
// [rows[r].pad, pos], n_splits parts) in slots [0, n_splits), then for its level-th group (0: the
// one starting at 0) gsplits parts in slots n_splits + level * gsplits + split. row_levels[ri] is
// how many groups row ri is in (the merge reads those slots only).
constexpr int CASCADE_TILE = 64; // query vectors of one cascade kernel block
struct cascade_args {
  const cascade_item *items;
  int n_items;
  const int2 *members; // per (group, member): (batch row, index in row_list)
  const int *levels;   // per (group, member): the group's level for that member
  const int *row_levels;
  int n_splits, gsplits, n_parts;
  float *part_acc, *part_ml;
};
// Each group's part once for all its members' query heads, on tensor cores (head_dim 64 or 128).
void launch_attention_cascade(const attn_args &a, const cascade_args &c, cudaStream_t s);
// The rows' own parts and the merge of every slot.
void launch_attention_rows_cascade(const attn_args &a, const int *row_list, int n, const cascade_args &c,
                                   cudaStream_t s);

// Prefill chunks on tensor cores (head_dim 64 or 128): one block per (query tile, head).
bool attention_prefill_supported(int head_dim);
void launch_attention_prefill(const attn_args &a, const prefill_item *items, int n_items, cudaStream_t s);

// ---- Matrix products (gemm.cu) -------------------------------------------------------------

struct gemm_ctx {
  cublasHandle_t blas;
  cudaStream_t stream;
  int small_m;  // products with m <= small_m rows use the streaming kernel, not cuBLAS (0: never)
  int fuse_glu; // SwiGLU inside the down projection when it takes the streaming kernel
  int pdl;      // the streaming kernel may start while the kernel before it runs (common.cuh)
};
// y[m][n] = x[m][k] . w[n][k]^T, fp32 accumulation; y in bf16, or fp32 when y_f32.
yaie_status gemm(const gemm_ctx &g, void *y, int y_f32, const bf16 *x, const bf16 *w, int m, int n, int k);
// Whether gemm() takes the streaming kernel for m rows of length k (else cuBLAS).
bool gemm_small_path(const gemm_ctx &g, int m, int k);
// The streaming kernel (k % 8 == 0). glu: x's rows are [gate | up], 2k wide, and the product is
// taken with silu(gate) * up (SwiGLU fused into the down projection).
void launch_gemm_small(void *y, int y_f32, const bf16 *x, const bf16 *w, int m, int n, int k, cudaStream_t s,
                       int glu = 0, int pdl = 0);

// ---- Sampling (sample.cu) ------------------------------------------------------------------

// One sequence's sampling on the device; mirrors yaie_sample_req.
struct sample_row {
  int logit_row, top_k, pen_off, pen_n, mask_off, want_logprob;
  float temperature, top_p, min_p, repetition, frequency, presence, uniform;
};
// Samples each row: mask, penalties (pen_tok/pen_cnt[pen_off .. +pen_n]; pen_orig receives the
// logits they replaced), then greedy or temperature with min-p / top-k / top-p, drawing with the
// row's uniform. logits are changed in place. ids[i] = -2 when the mask forbids every token.
void launch_sample(int *ids, float *logprobs, float *logits, const sample_row *rows, int n, int vocab,
                   const int *pen_tok, const int *pen_cnt, float *pen_orig, const uint8_t *masks, cudaStream_t s);

// ---- Decode rounds (round_kernels.cu) ------------------------------------------------------

// After a round's step-th sampling: row i (i < n) records ids[i] (and lps[i]) in out_tok/out_lp
// [step][n] and, unless it ended (its limit reached or one of its stop ids sampled), takes the
// token as its next input one position on; an ended row records -1 from then on and moves to the
// trash table at position 0, so that it writes no K/V of its own. ints: limits[n], state[n] (tokens
// produced so far, -1 once ended), stop_offsets[n + 1], then the stop ids.
void launch_round_advance(row_info *rows, const int *ids, const float *lps, int *out_tok, float *out_lp, int *ints,
                          int step, int n, int trash_table, cudaStream_t s);

// The CUDA backend's context: everything one yaie_context holds on the GPU and the pinned host
// memory it stages each step's metadata in. context.cu makes and frees it, step.cu runs the
// forward pass, sample_step.cu samples.
#pragma once

#include "weights.cuh"

#define MAX_GRAPHS 24

// A decode step captured for one batch-size bucket (rows padded up to `rows`).
struct graph_entry {
  int rows, splits, runs;
  cudaGraphExec_t exec;
};

// One step's metadata in pinned host memory. Two sets alternate, so a step may prepare its
// metadata while the previous step's copies are still queued; `done` marks the copies out of it.
struct meta_set {
  row_info *rows;
  int *logit_src, *decode_rows;
  prefill_item *items;
  int2 *patches;
  int patch_cap;
  cudaEvent_t done;
};

struct cuda_context {
  yaie_model *model;
  yaie_config c;
  yaie_context_params p;
  cuda_weights *w;
  cudaStream_t stream;
  cublasHandle_t blas;
  void *blas_ws;
  gemm_ctx g;
  int sms, use_prefill_tc, use_graphs;

  // KV pages, with one more (the trash page) that padded rows of a decode graph write into.
  kv_layout kv;
  int trash_page;

  // Page tables on the device, [n_tables + 1][max_pages] (the last one all trash page), kept in
  // step with the host's tables by patches: each is keyed by the caller's page-table pointer,
  // and the host copy (shadow) says which entries changed since the table was last used.
  int n_tables, max_pages;
  int *d_tables;
  const int32_t **tab_key;
  int32_t *tab_shadow;
  int *tab_len, *tab_hint;
  long *tab_stamp;
  long step;

  // Activations, sized for max_batch_tokens rows.
  float *x;                                // the residual stream, fp32
  float *y;                                // o_proj / down_proj outputs, added to x in fp32
  bf16 *xb, *qkv, *q, *att, *hb, *h;       // normed input, projections, attention, FFN
  float *logits;                           // [rows][vocab]
  float *part_acc, *part_ml;               // split-KV partials
  int part_cap;                            // (row, head, split) triples they hold

  // The step's metadata on the device, and its two pinned host sets.
  row_info *d_rows;
  int *d_logit_src, *d_decode_rows;
  prefill_item *d_items;
  int2 *d_patches;
  int d_patch_cap;
  meta_set meta[2];

  // Sampling: requests, penalties and masks staged in pinned memory; ids and logprobs back.
  sample_row *h_srows, *d_srows;
  int *h_ids, *d_ids;
  float *h_lps, *d_lps;
  int *h_pen, *d_pen; // tokens then counts, pen_cap each
  float *d_pen_orig;
  int pen_cap;
  uint8_t *h_masks, *d_masks;
  size_t mask_cap;

  // The last step's logits on the host, copied on request.
  float *h_logits;
  size_t h_logits_cap;
  int n_logit_rows, logits_on_host;

  graph_entry graphs[MAX_GRAPHS];
  int n_graphs, graph_max;

  // The last step's shape, for running it again (a decode round's later steps).
  int last_bucket, last_decode_rows, last_splits;

  // A decode round (round.cu): its sampling rows [step][row], per-row state, and its tokens and
  // logprobs [step][row], staged in pinned memory and copied back once.
  sample_row *h_rsrows, *d_rsrows;
  size_t rsrows_cap;
  int *h_rints, *d_rints; // limits[n], state[n], stop_offsets[n + 1], stop ids
  size_t rints_cap;
  int *h_rtok, *d_rtok;
  size_t rtok_cap;
  float *h_rlp, *d_rlp;
  size_t rlp_cap;
  int round_cells;
  cudaEvent_t round_done;

  // Cascade groups of the step (cascade.cu): tiles, (row, index) pairs, levels, in pinned memory
  // and on the device, and their partial results (apart from the graphs' buffers, so they may grow).
  cascade_item *h_citems, *d_citems;
  size_t citems_cap;
  int2 *h_cmem, *d_cmem;
  size_t cmem_cap;
  int *h_cint, *d_cint; // levels per pair, then row_levels per decode row
  size_t cint_cap;
  float *c_acc, *c_ml;
  size_t c_cap; // (row, head, slot) triples
  cudaEvent_t cascade_done;
  cascade_args cascade; // of the last step; n_items 0: none
};

// Plans the step's cascade groups (CUDA: head sizes 64 and 128; other steps ignore the groups,
// which only changes how the same attention is computed): sets each member row's own start
// (rows[r].pad), stages the tiles and pairs for the copy below, and sizes the parts. row_of_seq
// gives each sequence's (first) row, ri_of_row each decode row's index in the decode list.
yaie_status cuda_cascade_plan(cuda_context *ctx, const yaie_batch *b, row_info *rows, const int *row_of_seq,
                              const int *ri_of_row, const int *seq_table, int n_dec, int own_splits);
// Queues the copies of what cuda_cascade_plan staged.
yaie_status cuda_cascade_upload(cuda_context *ctx, int n_dec);

yaie_status cuda_forward(void *impl, const yaie_batch *batch, int n_rows, int n_logit_rows);
// The forward step with each sequence's page table covering ends[s] positions (NULL: the step's).
yaie_status cuda_forward_until(cuda_context *ctx, const yaie_batch *b, int n_rows, int n_logit_rows, const int *ends);
// Runs the last step's layers again over d_rows as they are now; the last step must have been a
// decode step of rows in order.
yaie_status cuda_forward_again(cuda_context *ctx);
yaie_status cuda_round_begin(void *impl, const yaie_batch *b, int n_steps, const yaie_round_row *rows,
                             int want_logprobs);
yaie_status cuda_round_wait(void *impl, int32_t *tokens, float *logprobs);
yaie_status cuda_sample(void *impl, const yaie_sample_req *reqs, int n_reqs, int32_t *ids, float *logprobs);
void cuda_graphs_free(cuda_context *ctx);

// Grows a pinned host buffer and its device twin to hold at least `need` elements of `size`
// bytes (contents are not kept).
yaie_status grow_pair(void **host, void **dev, size_t *cap, size_t need, size_t size);

// A decode round on the GPU: the first step is staged like any decode step (its page tables
// patched far enough for the whole round), then every step is the decode graph (or the eager
// layers), the sampler and the advance kernel, queued back to back on the stream with no host
// sync; the round's tokens and logprobs come back in one copy, which round_wait waits for.
#include <string.h>

#include "context.cuh"

yaie_status cuda_round_begin(void *impl, const yaie_batch *b, int n_steps, const yaie_round_row *rows,
                             int want_logprobs) {
  cuda_context *ctx = (cuda_context *)impl;
  const int n = b->n_seqs, vocab = ctx->c.vocab_size;
  const size_t cells = (size_t)n * n_steps;
  int n_stop = 0;
  for (int i = 0; i < n; i++)
    n_stop += rows[i].n_stop;
  STATUS_TRY(grow_pair((void **)&ctx->h_rsrows, (void **)&ctx->d_rsrows, &ctx->rsrows_cap, cells, sizeof(sample_row)));
  STATUS_TRY(grow_pair((void **)&ctx->h_rints, (void **)&ctx->d_rints, &ctx->rints_cap, 3 * (size_t)n + 1 + n_stop,
                       sizeof(int)));
  STATUS_TRY(grow_pair((void **)&ctx->h_rtok, (void **)&ctx->d_rtok, &ctx->rtok_cap, cells, sizeof(int)));
  STATUS_TRY(grow_pair((void **)&ctx->h_rlp, (void **)&ctx->d_rlp, &ctx->rlp_cap, cells, sizeof(float)));
  if (!ctx->round_done)
    CUDA_TRY(cudaEventCreateWithFlags(&ctx->round_done, cudaEventDisableTiming));

  // Each step's sampling rows: the row's parameters with that step's draw.
  int *ends = ctx->h_rints; // borrowed for the staging call below, then overwritten
  for (int step = 0; step < n_steps; step++)
    for (int i = 0; i < n; i++) {
      const yaie_round_row *r = &rows[i];
      const yaie_sampler_params *p = &r->params;
      sample_row *sr = &ctx->h_rsrows[(size_t)step * n + i];
      *sr = sample_row{i, p->top_k, 0, 0, -1, want_logprobs, p->temperature, p->top_p, p->min_p,
                       p->repetition_penalty, p->frequency_penalty, p->presence_penalty,
                       r->uniforms && step < r->limit ? r->uniforms[step] : 0.0f};
    }
  for (int i = 0; i < n; i++)
    ends[i] = b->seqs[i].pos + rows[i].limit;
  // The first step: its metadata staged and its layers queued.
  STATUS_TRY(cuda_forward_until(ctx, b, n, n, ends));

  int *limits = ctx->h_rints, *state = limits + n, *stop_off = limits + 2 * n, *stop_ids = limits + 3 * n + 1;
  int k = 0;
  for (int i = 0; i < n; i++) {
    limits[i] = rows[i].limit;
    state[i] = 0;
    stop_off[i] = k;
    for (int j = 0; j < rows[i].n_stop; j++)
      stop_ids[k++] = rows[i].stop_ids[j];
  }
  stop_off[n] = k;
  cudaStream_t s = ctx->stream;
  CUDA_TRY(cudaMemcpyAsync(ctx->d_rsrows, ctx->h_rsrows, cells * sizeof(sample_row), cudaMemcpyHostToDevice, s));
  CUDA_TRY(cudaMemcpyAsync(ctx->d_rints, ctx->h_rints, (3 * (size_t)n + 1 + k) * sizeof(int), cudaMemcpyHostToDevice,
                           s));
  float *lps = want_logprobs ? ctx->d_lps : nullptr;
  for (int step = 0; step < n_steps; step++) {
    if (step)
      STATUS_TRY(cuda_forward_again(ctx));
    launch_sample(ctx->d_ids, lps, ctx->logits, ctx->d_rsrows + (size_t)step * n, n, vocab, nullptr, nullptr,
                  nullptr, nullptr, s);
    launch_round_advance(ctx->d_rows, ctx->d_ids, lps, ctx->d_rtok, ctx->d_rlp, ctx->d_rints, step, n, ctx->n_tables,
                         s);
  }
  CUDA_TRY(cudaGetLastError());
  CUDA_TRY(cudaMemcpyAsync(ctx->h_rtok, ctx->d_rtok, cells * sizeof(int), cudaMemcpyDeviceToHost, s));
  if (want_logprobs)
    CUDA_TRY(cudaMemcpyAsync(ctx->h_rlp, ctx->d_rlp, cells * sizeof(float), cudaMemcpyDeviceToHost, s));
  CUDA_TRY(cudaEventRecord(ctx->round_done, s));
  ctx->round_cells = (int)cells;
  ctx->n_logit_rows = 0;
  ctx->logits_on_host = 0;
  return YAIE_OK;
}

yaie_status cuda_round_wait(void *impl, int32_t *tokens, float *logprobs) {
  cuda_context *ctx = (cuda_context *)impl;
  CUDA_TRY(cudaEventSynchronize(ctx->round_done));
  memcpy(tokens, ctx->h_rtok, (size_t)ctx->round_cells * sizeof(int));
  if (logprobs)
    memcpy(logprobs, ctx->h_rlp, (size_t)ctx->round_cells * sizeof(float));
  return YAIE_OK;
}

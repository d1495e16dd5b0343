// The sampling step on the GPU: the host samplers' parameters, draws, penalty counts and masks go
// up in one batch of copies, one block per sequence samples (sample.cu), and only the token ids
// (and logprobs, when asked) come back.
#include <string.h>

#include "context.cuh"

static yaie_status penalty_room(cuda_context *ctx, size_t need) {
  if ((int)need <= ctx->pen_cap)
    return YAIE_OK;
  size_t cap = need > 2 * (size_t)ctx->pen_cap ? need : 2 * (size_t)ctx->pen_cap;
  cudaFreeHost(ctx->h_pen);
  cudaFree(ctx->d_pen);
  cudaFree(ctx->d_pen_orig);
  ctx->h_pen = ctx->d_pen = nullptr;
  ctx->d_pen_orig = nullptr;
  ctx->pen_cap = 0;
  CUDA_TRY(cudaMallocHost(&ctx->h_pen, 2 * cap * sizeof(int)));
  CUDA_TRY(cudaMalloc(&ctx->d_pen, 2 * cap * sizeof(int)));
  CUDA_TRY(cudaMalloc(&ctx->d_pen_orig, cap * sizeof(float)));
  ctx->pen_cap = (int)cap;
  return YAIE_OK;
}

yaie_status cuda_sample(void *impl, const yaie_sample_req *reqs, int n, int32_t *ids, float *logprobs) {
  cuda_context *ctx = (cuda_context *)impl;
  const int vocab = ctx->c.vocab_size;
  if (n > ctx->p.max_batch_tokens)
    return cuda_fail(YAIE_ERR_ARG, "sample_step: %d sequences, more than max_batch_tokens", n);
  size_t pen_total = 0, n_masks = 0;
  for (int i = 0; i < n; i++) {
    if (reqs[i].logit_row < 0 || reqs[i].logit_row >= ctx->n_logit_rows)
      return cuda_fail(YAIE_ERR_STATE, "sample_step: logit row %d is not in the last step's %d rows",
                       reqs[i].logit_row, ctx->n_logit_rows);
    pen_total += (size_t)reqs[i].n_seen;
    n_masks += reqs[i].mask != nullptr;
  }
  STATUS_TRY(penalty_room(ctx, pen_total));
  STATUS_TRY(grow_pair((void **)&ctx->h_masks, (void **)&ctx->d_masks, &ctx->mask_cap, n_masks * (size_t)vocab, 1));

  int pen_off = 0;
  size_t mask_off = 0;
  for (int i = 0; i < n; i++) {
    const yaie_sample_req *q = &reqs[i];
    const yaie_sampler_params *p = &q->params;
    sample_row *r = &ctx->h_srows[i];
    r->logit_row = q->logit_row;
    r->top_k = p->top_k;
    r->pen_off = pen_off;
    r->pen_n = q->n_seen;
    r->mask_off = q->mask ? (int)mask_off : -1;
    r->want_logprob = logprobs != nullptr;
    r->temperature = p->temperature;
    r->top_p = p->top_p;
    r->min_p = p->min_p;
    r->repetition = p->repetition_penalty;
    r->frequency = p->frequency_penalty;
    r->presence = p->presence_penalty;
    r->uniform = q->uniform;
    for (int j = 0; j < q->n_seen; j++) {
      ctx->h_pen[pen_off + j] = q->seen[j];
      ctx->h_pen[ctx->pen_cap + pen_off + j] = q->counts[q->seen[j]];
    }
    pen_off += q->n_seen;
    if (q->mask) {
      memcpy(ctx->h_masks + mask_off, q->mask, (size_t)vocab);
      mask_off += (size_t)vocab;
    }
  }

  cudaStream_t s = ctx->stream;
  CUDA_TRY(cudaMemcpyAsync(ctx->d_srows, ctx->h_srows, (size_t)n * sizeof(sample_row), cudaMemcpyHostToDevice, s));
  if (pen_off) {
    CUDA_TRY(cudaMemcpyAsync(ctx->d_pen, ctx->h_pen, (size_t)pen_off * sizeof(int), cudaMemcpyHostToDevice, s));
    CUDA_TRY(cudaMemcpyAsync(ctx->d_pen + ctx->pen_cap, ctx->h_pen + ctx->pen_cap, (size_t)pen_off * sizeof(int),
                             cudaMemcpyHostToDevice, s));
  }
  if (mask_off)
    CUDA_TRY(cudaMemcpyAsync(ctx->d_masks, ctx->h_masks, mask_off, cudaMemcpyHostToDevice, s));
  launch_sample(ctx->d_ids, logprobs ? ctx->d_lps : nullptr, ctx->logits, ctx->d_srows, n, vocab, ctx->d_pen,
                ctx->d_pen ? ctx->d_pen + ctx->pen_cap : nullptr, ctx->d_pen_orig, ctx->d_masks, s);
  CUDA_TRY(cudaGetLastError());
  CUDA_TRY(cudaMemcpyAsync(ctx->h_ids, ctx->d_ids, (size_t)n * sizeof(int), cudaMemcpyDeviceToHost, s));
  if (logprobs)
    CUDA_TRY(cudaMemcpyAsync(ctx->h_lps, ctx->d_lps, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, s));
  CUDA_TRY(cudaStreamSynchronize(s));
  ctx->logits_on_host = 0; // sampling changed them in place, as the CPU's does
  for (int i = 0; i < n; i++) {
    if (ctx->h_ids[i] == -2)
      return cuda_fail(YAIE_ERR_STATE, "sampler: the mask forbids every token");
    ids[i] = ctx->h_ids[i];
    if (logprobs)
      logprobs[i] = ctx->h_lps[i];
  }
  return YAIE_OK;
}

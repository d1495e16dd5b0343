/* Sampling a whole step at once: each sequence's sampler over its last row of logits. */
#include "error.h"
#include "model.h"

yaie_status yaie_sample_step(yaie_context *ctx, const yaie_batch *batch, yaie_sampler *const *samplers,
                             const uint8_t *const *masks, int32_t *out, float *logprobs) {
  int n_rows;
  float *logits = yaie_context_logits(ctx, &n_rows);
  if (!batch || batch->n_seqs < 1)
    return yaie_fail(YAIE_ERR_ARG, "sample_step: empty batch");
  int vocab = -1, row = 0;
  for (int s = 0; s < batch->n_seqs; s++) {
    const yaie_seq *q = &batch->seqs[s];
    row += q->all_logits ? q->n_tokens : 1;
  }
  if (row != n_rows)
    return yaie_fail(YAIE_ERR_STATE, "sample_step: the batch does not match the last step's %d logit rows", n_rows);
  vocab = yaie_context_vocab(ctx);
  row = 0;
  for (int s = 0; s < batch->n_seqs; s++) {
    const yaie_seq *q = &batch->seqs[s];
    row += q->all_logits ? q->n_tokens : 1;
    out[s] = -1;
    if (!samplers[s])
      continue;
    float *lp = logprobs ? &logprobs[s] : NULL;
    YAIE_TRY(yaie_sampler_sample(samplers[s], logits + (size_t)(row - 1) * vocab, masks ? masks[s] : NULL,
                                 &out[s], lp));
  }
  return YAIE_OK;
}

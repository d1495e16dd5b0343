/* Sampling a whole step at once: each sequence's sampler over its last row of logits, on the
 * host from the logits, or where the logits are when the backend samples (CUDA: then only the
 * token ids and logprobs come back). */
#include <math.h>
#include <stdlib.h>

#include "backend.h"
#include "error.h"
#include "sampler.h"

/* The backend samples: one request per sequence that has a sampler. */
static yaie_status sample_on_backend(yaie_context *ctx, const yaie_batch *batch, yaie_sampler *const *samplers,
                                     const uint8_t *const *masks, int32_t *out, float *logprobs) {
  void *impl;
  const yaie_backend_ops *ops = yaie_context_ops(ctx, &impl);
  yaie_sample_req *reqs = malloc((size_t)batch->n_seqs * sizeof *reqs);
  int32_t *ids = malloc((size_t)batch->n_seqs * sizeof *ids);
  float *lps = malloc((size_t)batch->n_seqs * sizeof *lps);
  if (!reqs || !ids || !lps) {
    free(reqs);
    free(ids);
    free(lps);
    return yaie_fail(YAIE_ERR_NOMEM, "sample_step: out of memory");
  }
  int n = 0, row = 0;
  for (int s = 0; s < batch->n_seqs; s++) {
    row += yaie_seq_logit_rows(&batch->seqs[s]);
    out[s] = -1;
    if (!samplers[s])
      continue;
    yaie_sampler_request(samplers[s], &reqs[n]);
    reqs[n].logit_row = row - 1;
    reqs[n].mask = masks ? masks[s] : NULL;
    n++;
  }
  yaie_status st = n ? ops->sample(impl, reqs, n, ids, logprobs ? lps : NULL) : YAIE_OK;
  if (st != YAIE_OK)
    yaie_fail(st, "%s", ops->last_error());
  for (int s = 0, i = 0; st == YAIE_OK && s < batch->n_seqs; s++) {
    if (!samplers[s])
      continue;
    out[s] = ids[i];
    if (logprobs)
      logprobs[s] = lps[i];
    i++;
  }
  free(reqs);
  free(ids);
  free(lps);
  return st;
}

yaie_status yaie_sample_step(yaie_context *ctx, const yaie_batch *batch, yaie_sampler *const *samplers,
                             const uint8_t *const *masks, int32_t *out, float *logprobs) {
  if (!batch || batch->n_seqs < 1)
    return yaie_fail(YAIE_ERR_ARG, "sample_step: empty batch");
  int n_rows = yaie_context_logit_rows(ctx), row = 0;
  for (int s = 0; s < batch->n_seqs; s++)
    row += yaie_seq_logit_rows(&batch->seqs[s]);
  if (row != n_rows)
    return yaie_fail(YAIE_ERR_STATE, "sample_step: the batch does not match the last step's %d logit rows", n_rows);
  void *impl;
  if (yaie_context_ops(ctx, &impl)->sample)
    return sample_on_backend(ctx, batch, samplers, masks, out, logprobs);
  float *logits = yaie_context_logits(ctx, &n_rows);
  int vocab = yaie_context_vocab(ctx);
  row = 0;
  for (int s = 0; s < batch->n_seqs; s++) {
    row += yaie_seq_logit_rows(&batch->seqs[s]);
    out[s] = -1;
    if (!samplers[s])
      continue;
    float *lp = logprobs ? &logprobs[s] : NULL;
    YAIE_TRY(yaie_sampler_sample(samplers[s], logits + (size_t)(row - 1) * vocab, masks ? masks[s] : NULL,
                                 &out[s], lp));
  }
  return YAIE_OK;
}

yaie_status yaie_token_logprobs(yaie_context *ctx, const int32_t *rows, const int32_t *tokens, int n, float *out) {
  int n_rows;
  const float *logits = yaie_context_logits(ctx, &n_rows);
  int vocab = yaie_context_vocab(ctx);
  for (int i = 0; i < n; i++) {
    if (rows[i] < 0 || rows[i] >= n_rows || tokens[i] < 0 || tokens[i] >= vocab)
      return yaie_fail(YAIE_ERR_ARG, "token_logprobs: row %d / token %d outside the last step's %d rows x %d",
                       rows[i], tokens[i], n_rows, vocab);
    const float *row = logits + (size_t)rows[i] * vocab;
    float max = row[0];
    for (int j = 1; j < vocab; j++)
      if (row[j] > max)
        max = row[j];
    double sum = 0.0;
    for (int j = 0; j < vocab; j++)
      sum += exp((double)(row[j] - max));
    out[i] = (float)((double)(row[tokens[i]] - max) - log(sum));
  }
  return YAIE_OK;
}

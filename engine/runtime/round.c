/* Decode rounds: n_steps decode steps of a batch in one call (yaie.h says the contract). A
 * backend that runs rounds itself (CUDA: the steps, sampling and feedback queued on the GPU)
 * gets the whole round; otherwise, and for rows whose sampling needs the host each step
 * (penalties, whose counts change with every token), the round runs here step by step through
 * the backend's forward and the host samplers. Either way a row's tokens are those that n_steps
 * single steps would give: the same draws from its sampler, in the same order. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "sampler.h"

struct yaie_round_state {
  int n_seqs, n_steps, on_backend, want_logprobs;
  int32_t *tokens; /* [n_steps][n_seqs] */
  float *logprobs;
  /* For a backend round, what accepting its tokens into the samplers needs at wait. */
  yaie_sampler **samplers;
  int32_t *stop_offsets, *stop_ids;
  yaie_status status; /* of a round run here */
};

static void round_free(struct yaie_round_state *r) {
  if (!r)
    return;
  free(r->tokens);
  free(r->logprobs);
  free(r->samplers);
  free(r->stop_offsets);
  free(r->stop_ids);
  free(r);
}

int yaie_round_pending(const yaie_context *ctx) {
  return *yaie_context_round((yaie_context *)ctx) != NULL;
}

static int is_stop(const struct yaie_round_state *r, int i, int32_t id) {
  if (!r->stop_offsets)
    return 0;
  for (int k = r->stop_offsets[i]; k < r->stop_offsets[i + 1]; k++)
    if (r->stop_ids[k] == id)
      return 1;
  return 0;
}

/* The round step by step: each step forwards the rows still going, one token each, and samples
 * them on the host (or the backend's sampler) from the step's logits. */
static yaie_status run_on_host(yaie_context *ctx, const yaie_batch *batch, yaie_sampler *const *samplers,
                               const int32_t *limits, struct yaie_round_state *r) {
  int n = batch->n_seqs;
  yaie_seq *seqs = malloc((size_t)n * sizeof *seqs);
  int32_t *cur = malloc((size_t)n * sizeof *cur), *ids = malloc((size_t)n * sizeof *ids);
  int *live = malloc((size_t)n * sizeof *live), *count = calloc((size_t)n, sizeof *count);
  yaie_sampler **step_samplers = malloc((size_t)n * sizeof *step_samplers);
  float *lps = malloc((size_t)n * sizeof *lps);
  /* Cascade groups follow their members into each step's smaller batch. */
  int n_members = 0;
  for (int g = 0; g < batch->n_groups; g++)
    n_members += batch->groups[g].n_rows;
  yaie_group *groups = malloc((size_t)(batch->n_groups > 0 ? batch->n_groups : 1) * sizeof *groups);
  int32_t *members = malloc((size_t)(n_members ? n_members : 1) * sizeof *members);
  int *index = malloc((size_t)n * sizeof *index);
  yaie_status st = YAIE_OK;
  if (!seqs || !cur || !ids || !live || !count || !step_samplers || !lps || !groups || !members || !index) {
    st = yaie_fail(YAIE_ERR_NOMEM, "round: out of memory");
    goto done;
  }
  for (int i = 0; i < n; i++)
    cur[i] = batch->seqs[i].tokens[0];
  for (int step = 0; step < r->n_steps; step++) {
    int m = 0;
    for (int i = 0; i < n; i++) {
      index[i] = count[i] < 0 ? -1 : m;
      if (count[i] < 0)
        continue;
      yaie_seq *q = &seqs[m];
      *q = batch->seqs[i];
      q->tokens = &cur[i];
      q->pos = batch->seqs[i].pos + step;
      step_samplers[m] = samplers[i];
      live[m++] = i;
    }
    if (!m)
      break;
    int n_groups = 0, used = 0;
    for (int g = 0; g < batch->n_groups; g++) {
      const yaie_group *from = &batch->groups[g];
      yaie_group *to = &groups[n_groups];
      *to = (yaie_group){from->start, from->end, members + used, 0};
      for (int j = 0; j < from->n_rows; j++)
        if (index[from->rows[j]] >= 0)
          members[used + to->n_rows++] = index[from->rows[j]];
      used += to->n_rows;
      n_groups += to->n_rows > 0;
    }
    yaie_batch sub = {seqs, m, n_groups ? groups : NULL, n_groups};
    st = yaie_forward(ctx, &sub);
    if (st == YAIE_OK)
      st = yaie_sample_step(ctx, &sub, step_samplers, NULL, ids, r->want_logprobs ? lps : NULL);
    if (st != YAIE_OK)
      goto done;
    for (int k = 0; k < m; k++) {
      int i = live[k];
      int32_t id = ids[k];
      r->tokens[(size_t)step * n + i] = id;
      if (r->want_logprobs)
        r->logprobs[(size_t)step * n + i] = lps[k];
      if (is_stop(r, i, id)) {
        count[i] = -1;
        continue;
      }
      yaie_sampler_accept(samplers[i], id);
      cur[i] = id;
      count[i]++;
      if (count[i] >= limits[i])
        count[i] = -1;
    }
  }
done:
  free(seqs);
  free(cur);
  free(ids);
  free(live);
  free(count);
  free(step_samplers);
  free(lps);
  free(groups);
  free(members);
  free(index);
  return st;
}

static yaie_status check_round(yaie_context *ctx, const yaie_batch *batch, int n_steps, yaie_sampler *const *samplers,
                               const int32_t *limits, const int32_t *stop_offsets, const int32_t *stop_ids) {
  if (yaie_round_pending(ctx))
    return yaie_fail(YAIE_ERR_STATE, "round: a round is already in flight (yaie_round_wait first)");
  if (n_steps < 1 || n_steps > 1024)
    return yaie_fail(YAIE_ERR_ARG, "round: n_steps %d is out of range [1, 1024]", n_steps);
  if (!batch || batch->n_seqs < 1 || !batch->seqs || !samplers || !limits)
    return yaie_fail(YAIE_ERR_ARG, "round: empty batch, or no samplers or limits");
  for (int i = 0; i < batch->n_seqs; i++) {
    const yaie_seq *q = &batch->seqs[i];
    if (q->n_tokens != 1 || q->all_logits)
      return yaie_fail(YAIE_ERR_ARG, "round: sequence %d is not decoding (one new token, last logits only)", i);
    if (!samplers[i])
      return yaie_fail(YAIE_ERR_ARG, "round: sequence %d has no sampler", i);
    if (limits[i] < 1 || limits[i] > n_steps)
      return yaie_fail(YAIE_ERR_ARG, "round: sequence %d's limit %d is outside [1, %d]", i, limits[i], n_steps);
    /* Its inputs sit at pos .. pos + limit - 1, so the pages must cover pos + limit positions. */
    long end = (long)q->pos + limits[i];
    if (q->pages && end > (long)q->n_pages * yaie_context_params_of(ctx)->page_size)
      return yaie_fail(YAIE_ERR_ARG, "round: sequence %d needs %ld positions but its %d pages hold %ld", i, end,
                       q->n_pages, (long)q->n_pages * yaie_context_params_of(ctx)->page_size);
    if (stop_offsets && (stop_offsets[i] < 0 || stop_offsets[i + 1] < stop_offsets[i]))
      return yaie_fail(YAIE_ERR_ARG, "round: stop_offsets are not increasing at sequence %d", i);
  }
  if (stop_offsets && stop_offsets[batch->n_seqs] > 0 && !stop_ids)
    return yaie_fail(YAIE_ERR_ARG, "round: stop_offsets without stop_ids");
  return YAIE_OK;
}

static yaie_status begin_on_backend(yaie_context *ctx, const yaie_batch *batch, yaie_sampler *const *samplers,
                                    const int32_t *limits, struct yaie_round_state *r) {
  void *impl;
  const yaie_backend_ops *ops = yaie_context_ops(ctx, &impl);
  int n = batch->n_seqs;
  yaie_round_row *rows = calloc((size_t)n, sizeof *rows);
  float *draws = malloc((size_t)n * r->n_steps * sizeof *draws);
  yaie_status st = YAIE_OK;
  if (!rows || !draws) {
    st = yaie_fail(YAIE_ERR_NOMEM, "round: out of memory");
  } else {
    for (int i = 0; i < n; i++) {
      rows[i].params = *yaie_sampler_params_of(samplers[i]);
      rows[i].limit = limits[i];
      float *u = draws + (size_t)i * r->n_steps;
      yaie_sampler_draws(samplers[i], limits[i], u);
      rows[i].uniforms = rows[i].params.temperature == 0.0f ? NULL : u;
      rows[i].stop_ids = r->stop_offsets ? r->stop_ids + r->stop_offsets[i] : NULL;
      rows[i].n_stop = r->stop_offsets ? r->stop_offsets[i + 1] - r->stop_offsets[i] : 0;
    }
    st = ops->round_begin(impl, batch, r->n_steps, rows, r->want_logprobs);
    if (st != YAIE_OK)
      yaie_fail(st, "%s", ops->last_error());
  }
  free(rows);
  free(draws);
  return st;
}

yaie_status yaie_round_begin(yaie_context *ctx, const yaie_batch *batch, int n_steps, yaie_sampler *const *samplers,
                             const int32_t *limits, const int32_t *stop_offsets, const int32_t *stop_ids,
                             int want_logprobs) {
  YAIE_TRY(check_round(ctx, batch, n_steps, samplers, limits, stop_offsets, stop_ids));
  int rows = 0, logit_rows = 0;
  YAIE_TRY(yaie_check_batch(yaie_context_config(ctx), yaie_context_params_of(ctx), batch, &rows, &logit_rows));
  int n = batch->n_seqs;
  struct yaie_round_state *r = calloc(1, sizeof *r);
  if (!r)
    return yaie_fail(YAIE_ERR_NOMEM, "round: out of memory");
  r->n_seqs = n;
  r->n_steps = n_steps;
  r->want_logprobs = want_logprobs;
  r->tokens = malloc((size_t)n * n_steps * sizeof *r->tokens);
  r->logprobs = calloc((size_t)n * n_steps, sizeof *r->logprobs);
  r->samplers = malloc((size_t)n * sizeof *r->samplers);
  int n_stop = stop_offsets ? stop_offsets[n] : 0;
  if (stop_offsets) {
    r->stop_offsets = malloc((size_t)(n + 1) * sizeof *r->stop_offsets);
    r->stop_ids = malloc((size_t)(n_stop ? n_stop : 1) * sizeof *r->stop_ids);
  }
  if (!r->tokens || !r->logprobs || !r->samplers || (stop_offsets && (!r->stop_offsets || !r->stop_ids))) {
    round_free(r);
    return yaie_fail(YAIE_ERR_NOMEM, "round: out of memory");
  }
  memcpy(r->samplers, samplers, (size_t)n * sizeof *r->samplers);
  for (size_t i = 0; i < (size_t)n * n_steps; i++)
    r->tokens[i] = -1; /* rows end, and rounds on the host stop once every row has */
  if (stop_offsets) {
    memcpy(r->stop_offsets, stop_offsets, (size_t)(n + 1) * sizeof *r->stop_offsets);
    if (n_stop)
      memcpy(r->stop_ids, stop_ids, (size_t)n_stop * sizeof *r->stop_ids);
  }
  void *impl;
  const yaie_backend_ops *ops = yaie_context_ops(ctx, &impl);
  int penalties = 0;
  for (int i = 0; i < n; i++)
    penalties |= yaie_sampler_has_penalties(samplers[i]);
  r->on_backend = ops->round_begin && !penalties;
  yaie_status st;
  if (r->on_backend) {
    st = begin_on_backend(ctx, batch, samplers, limits, r);
  } else {
    st = run_on_host(ctx, batch, samplers, limits, r);
  }
  yaie_context_set_logit_rows(ctx, 0); /* a round leaves no logits to sample from */
  if (st != YAIE_OK) {
    round_free(r);
    return st;
  }
  *yaie_context_round(ctx) = r;
  return YAIE_OK;
}

yaie_status yaie_round_wait(yaie_context *ctx, int32_t *tokens, float *logprobs) {
  struct yaie_round_state *r = *yaie_context_round(ctx);
  if (!r)
    return yaie_fail(YAIE_ERR_STATE, "round: no round in flight (yaie_round_begin first)");
  *yaie_context_round(ctx) = NULL;
  yaie_status st = YAIE_OK;
  size_t cells = (size_t)r->n_seqs * r->n_steps;
  if (r->on_backend) {
    void *impl;
    const yaie_backend_ops *ops = yaie_context_ops(ctx, &impl);
    st = ops->round_wait(impl, r->tokens, r->want_logprobs ? r->logprobs : NULL);
    if (st != YAIE_OK) {
      yaie_fail(st, "%s", ops->last_error());
    } else {
      /* The host samplers learn the tokens the device sampled (their penalty counts). */
      for (int step = 0; step < r->n_steps; step++)
        for (int i = 0; i < r->n_seqs; i++) {
          int32_t id = r->tokens[(size_t)step * r->n_seqs + i];
          if (id >= 0 && !is_stop(r, i, id))
            yaie_sampler_accept(r->samplers[i], id);
        }
    }
  }
  if (st == YAIE_OK) {
    memcpy(tokens, r->tokens, cells * sizeof *tokens);
    if (logprobs && r->want_logprobs)
      memcpy(logprobs, r->logprobs, cells * sizeof *logprobs);
  }
  round_free(r);
  return st;
}

void yaie_round_discard(yaie_context *ctx) {
  struct yaie_round_state *r = *yaie_context_round(ctx);
  if (!r)
    return;
  *yaie_context_round(ctx) = NULL;
  void *impl;
  const yaie_backend_ops *ops = yaie_context_ops(ctx, &impl);
  if (r->on_backend)
    ops->round_wait(impl, r->tokens, NULL);
  round_free(r);
}

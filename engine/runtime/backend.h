/* The backend interface: what a device that runs the forward pass provides. yaie_context_new
 * picks the backend from yaie_context_params.device; the public calls (yaie_forward,
 * yaie_context_logits, yaie_sample_step) validate their arguments once here and dispatch.
 *
 * The CPU backend is linked in (engine/cpu/forward_cpu.c). The CUDA backend is a separate library,
 * libyaie_cuda.so beside libyaie.so, loaded on first use, so that libyaie neither links nor
 * needs CUDA: its one exported symbol, yaie_cuda_backend(), returns the ops table below. The
 * CUDA library is C++ and only includes this header and model.h, so both stay plain C. */
#ifndef YAIE_BACKEND_H
#define YAIE_BACKEND_H

#include "model.h"

/* Bumped whenever a struct below changes, so a stale libyaie_cuda.so is refused, not misread. */
#define YAIE_BACKEND_ABI 2

enum { YAIE_DEVICE_CPU = 0, YAIE_DEVICE_CUDA = 1 };

/* One sequence's sampling request, built from its host sampler (engine/runtime/sampler.c), for a
 * backend that samples where its logits are. The host keeps the sampler's state: the random
 * draw comes from the sampler's own stream (so a seed gives the same draws on every backend),
 * and the penalties' counts from the tokens the caller accepted. */
typedef struct yaie_sample_req {
  yaie_sampler_params params;
  float uniform;         /* the draw in [0, 1) for temperature > 0; unused when greedy */
  int logit_row;         /* the row of the last step's logits to sample from */
  const int32_t *seen;   /* distinct tokens with a count, when a penalty is on; else NULL */
  const int32_t *counts; /* counts[seen[i]] is that token's count */
  int n_seen;
  const uint8_t *mask;   /* vocab_size bytes, 0 forbids the token; or NULL */
} yaie_sample_req;

/* One row of a decode round (yaie_round_begin) for a backend that runs rounds itself. */
typedef struct yaie_round_row {
  yaie_sampler_params params;
  const float *uniforms;    /* limit draws in [0, 1) for temperature > 0; NULL when greedy */
  int limit;                /* most tokens the row produces, 1..n_steps */
  const int32_t *stop_ids;  /* ends the row when sampled */
  int n_stop;
} yaie_round_row;

typedef struct yaie_backend_ops {
  int abi; /* YAIE_BACKEND_ABI */
  const char *name;
  /* The message of the backend's last failure (its own per-thread buffer). */
  const char *(*last_error)(void);
  /* YAIE_OK when the device can be used (a GPU is there); else fails with the reason. */
  yaie_status (*probe)(void);
  yaie_status (*context_new)(yaie_model *model, const yaie_context_params *params, void **impl);
  void (*context_free)(void *impl);
  /* The batch is already checked (yaie_check_batch): n_rows new tokens, n_logit_rows rows. */
  yaie_status (*forward)(void *impl, const yaie_batch *batch, int n_rows, int n_logit_rows);
  /* The last step's logits in host memory, n_rows x vocab_size floats. */
  float *(*logits)(void *impl, int *n_rows);
  /* Samples one token per request (NULL: the host samples from logits() instead). ids[i] and
   * logprobs[i] (logprobs may be NULL) answer reqs[i]. */
  yaie_status (*sample)(void *impl, const yaie_sample_req *reqs, int n_reqs, int32_t *ids, float *logprobs);
  /* Queues a decode round of n_steps over a checked batch of one-token rows, without penalties
   * or masks (NULL: rounds run step by step through forward and the host samplers). */
  yaie_status (*round_begin)(void *impl, const yaie_batch *batch, int n_steps, const yaie_round_row *rows,
                             int want_logprobs);
  /* Waits for it: tokens[step * n_seqs + i], -1 after row i ended; logprobs likewise (or NULL). */
  yaie_status (*round_wait)(void *impl, int32_t *tokens, float *logprobs);
} yaie_backend_ops;

extern const yaie_backend_ops yaie_cpu_backend;

/* The backend of a device (YAIE_DEVICE_*), loading libyaie_cuda.so for CUDA; fails with a
 * message saying what is missing (the library, a GPU). */
yaie_status yaie_backend_get(int device, const yaie_backend_ops **out);

/* The backend and its context object behind a public context. */
const yaie_backend_ops *yaie_context_ops(const yaie_context *ctx, void **impl);
/* The context's round in flight (engine/runtime/round.c), or NULL. */
struct yaie_round_state **yaie_context_round(yaie_context *ctx);
/* Waits for and drops a round in flight, if any (a context being freed). */
void yaie_round_discard(yaie_context *ctx);
const yaie_context_params *yaie_context_params_of(const yaie_context *ctx);
const yaie_config *yaie_context_config(const yaie_context *ctx);
/* Sets the rows of logits the context reports (a round leaves none to sample from). */
void yaie_context_set_logit_rows(yaie_context *ctx, int n);
/* Rows of logits the last successful step produced (0 before any, or after a failed one). */
int yaie_context_logit_rows(const yaie_context *ctx);

/* Rows of logits a sequence of a step leaves: every position's, or its last one's. */
static inline int yaie_seq_logit_rows(const yaie_seq *q) { return q->all_logits ? q->n_tokens : 1; }

/* Checks a step against the model and the context's sizes; counts its rows and logit rows. */
yaie_status yaie_check_batch(const yaie_config *c, const yaie_context_params *p, const yaie_batch *b,
                             int *n_rows, int *n_logit_rows);

#endif

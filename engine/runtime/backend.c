#define _GNU_SOURCE /* dladdr */
/* The public context: a backend and its own context object. Arguments are checked here once,
 * for every backend; the backend only computes. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cascade.h"
#include "error.h"

struct yaie_context {
  const yaie_backend_ops *ops;
  void *impl;
  yaie_model *model;
  yaie_context_params params;
  int n_logit_rows; /* of the last successful step */
  struct yaie_round_state *round; /* a decode round in flight (round.c) */
};

/* ---------------------------------------------------------------------------------------------
 * Loading the CUDA backend: libyaie_cuda.so from the directory libyaie.so was loaded from (or
 * $YAIE_CUDA_LIB), once per process and never unloaded (its kernels may be queued). */

static const yaie_backend_ops *cuda_ops;
static char cuda_error[768];
static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;

static void load_cuda(void) {
  char path[4096];
  const char *env = getenv("YAIE_CUDA_LIB");
  Dl_info info;
  if (env && *env) {
    snprintf(path, sizeof path, "%s", env);
  } else if (dladdr((void *)&yaie_backend_get, &info) && info.dli_fname) {
    const char *slash = strrchr(info.dli_fname, '/');
    int dir_len = slash ? (int)(slash - info.dli_fname) : 1;
    snprintf(path, sizeof path, "%.*s/libyaie_cuda.so", dir_len, slash ? info.dli_fname : ".");
  } else {
    snprintf(path, sizeof path, "libyaie_cuda.so");
  }
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    snprintf(cuda_error, sizeof cuda_error, "device cuda: cannot load the CUDA backend (%.600s): this build "
             "has no CUDA backend, or the CUDA libraries are missing", dlerror());
    return;
  }
  const yaie_backend_ops *(*get)(void) = (const yaie_backend_ops *(*)(void))dlsym(lib, "yaie_cuda_backend");
  const yaie_backend_ops *ops = get ? get() : NULL;
  if (!ops || ops->abi != YAIE_BACKEND_ABI) {
    snprintf(cuda_error, sizeof cuda_error, "device cuda: %.600s is not a CUDA backend for this libyaie "
             "(interface %d, want %d)", path, ops ? ops->abi : -1, YAIE_BACKEND_ABI);
    return;
  }
  cuda_ops = ops;
}

yaie_status yaie_backend_get(int device, const yaie_backend_ops **out) {
  *out = NULL;
  if (device == YAIE_DEVICE_CPU) {
    *out = &yaie_cpu_backend;
    return YAIE_OK;
  }
  if (device != YAIE_DEVICE_CUDA)
    return yaie_fail(YAIE_ERR_ARG, "device %d is not known (0: cpu, 1: cuda)", device);
  pthread_once(&cuda_once, load_cuda);
  if (!cuda_ops)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s", cuda_error);
  *out = cuda_ops;
  return YAIE_OK;
}

yaie_status yaie_device_check(int device) {
  const yaie_backend_ops *ops;
  YAIE_TRY(yaie_backend_get(device, &ops));
  if (ops->probe && ops->probe() != YAIE_OK)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s", ops->last_error());
  return YAIE_OK;
}

const yaie_backend_ops *yaie_context_ops(const yaie_context *ctx, void **impl) {
  *impl = ctx->impl;
  return ctx->ops;
}

/* ---------------------------------------------------------------------------------------------
 * The public calls. */

yaie_status yaie_context_new(yaie_model *model, const yaie_context_params *params, yaie_context **out) {
  *out = NULL;
  const yaie_context_params *p = params;
  if (p->page_size < 1 || p->page_size > 256)
    return yaie_fail(YAIE_ERR_ARG, "page_size %d is out of range [1, 256]", p->page_size);
  if (p->n_pages < 1)
    return yaie_fail(YAIE_ERR_ARG, "n_pages %d must be positive", p->n_pages);
  if (p->max_batch_tokens < 1)
    return yaie_fail(YAIE_ERR_ARG, "max_batch_tokens %d must be positive", p->max_batch_tokens);
  const yaie_backend_ops *ops;
  YAIE_TRY(yaie_backend_get(p->device, &ops));
  yaie_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory creating a context");
  ctx->ops = ops;
  ctx->model = model;
  ctx->params = *p;
  yaie_status st = ops->context_new(model, p, &ctx->impl);
  if (st != YAIE_OK) {
    if (ops != &yaie_cpu_backend)
      yaie_fail(st, "%s", ops->last_error());
    free(ctx);
    return st;
  }
  *out = ctx;
  return YAIE_OK;
}

void yaie_context_free(yaie_context *ctx) {
  if (!ctx)
    return;
  yaie_round_discard(ctx);
  ctx->ops->context_free(ctx->impl);
  free(ctx);
}

int yaie_context_vocab(const yaie_context *ctx) { return ctx->model->config.vocab_size; }

int yaie_context_logit_rows(const yaie_context *ctx) { return ctx->n_logit_rows; }

struct yaie_round_state **yaie_context_round(yaie_context *ctx) { return &ctx->round; }

void yaie_context_set_logit_rows(yaie_context *ctx, int n) { ctx->n_logit_rows = n; }

const yaie_context_params *yaie_context_params_of(const yaie_context *ctx) { return &ctx->params; }

const yaie_config *yaie_context_config(const yaie_context *ctx) { return &ctx->model->config; }

float *yaie_context_logits(yaie_context *ctx, int *n_rows) {
  int have = 0; /* a device backend gives fewer rows when it cannot copy them */
  float *logits = ctx->ops->logits(ctx->impl, &have);
  *n_rows = have < ctx->n_logit_rows ? have : ctx->n_logit_rows;
  return logits;
}

yaie_status yaie_check_batch(const yaie_config *c, const yaie_context_params *p, const yaie_batch *b,
                             int *n_rows, int *n_logit_rows) {
  int rows = 0, logit_rows = 0;
  if (!b || b->n_seqs < 1 || !b->seqs)
    return yaie_fail(YAIE_ERR_ARG, "forward: empty batch");
  for (int s = 0; s < b->n_seqs; s++) {
    const yaie_seq *q = &b->seqs[s];
    long end = (long)q->pos + q->n_tokens;
    if (q->n_tokens < 1 || q->pos < 0 || !q->tokens)
      return yaie_fail(YAIE_ERR_ARG, "forward: sequence %d has no new tokens or a negative position", s);
    if (end > c->max_seq_len)
      return yaie_fail(YAIE_ERR_ARG, "forward: sequence %d reaches position %ld, past the model's context of %d tokens",
                       s, end, c->max_seq_len);
    if (end > (long)q->n_pages * p->page_size || !q->pages)
      return yaie_fail(YAIE_ERR_ARG, "forward: sequence %d needs %ld positions but its %d pages hold %ld",
                       s, end, q->n_pages, (long)q->n_pages * p->page_size);
    for (int i = 0; i < q->n_pages; i++)
      if (q->pages[i] < 0 || q->pages[i] >= p->n_pages)
        return yaie_fail(YAIE_ERR_ARG, "forward: sequence %d uses page %d, outside [0, %d)", s, q->pages[i],
                         p->n_pages);
    for (int i = 0; i < q->n_tokens; i++)
      if (q->tokens[i] < 0 || q->tokens[i] >= c->vocab_size)
        return yaie_fail(YAIE_ERR_ARG, "forward: token id %d is outside the vocabulary of %d", q->tokens[i],
                         c->vocab_size);
    rows += q->n_tokens;
    logit_rows += yaie_seq_logit_rows(q);
  }
  if (rows > p->max_batch_tokens)
    return yaie_fail(YAIE_ERR_ARG, "forward: %d tokens in one step, more than max_batch_tokens %d", rows,
                     p->max_batch_tokens);
  YAIE_TRY(yaie_cascade_check(b, p->page_size, NULL));
  *n_rows = rows;
  *n_logit_rows = logit_rows;
  return YAIE_OK;
}

yaie_status yaie_forward(yaie_context *ctx, const yaie_batch *batch) {
  int rows = 0, logit_rows = 0;
  if (yaie_round_pending(ctx))
    return yaie_fail(YAIE_ERR_STATE, "forward: a decode round is in flight (yaie_round_wait first)");
  ctx->n_logit_rows = 0;
  YAIE_TRY(yaie_check_batch(&ctx->model->config, &ctx->params, batch, &rows, &logit_rows));
  yaie_status st = ctx->ops->forward(ctx->impl, batch, rows, logit_rows);
  if (st != YAIE_OK)
    return ctx->ops == &yaie_cpu_backend ? st : yaie_fail(st, "%s", ctx->ops->last_error());
  ctx->n_logit_rows = logit_rows;
  return YAIE_OK;
}

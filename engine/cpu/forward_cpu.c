/* The CPU backend: the reference forward pass in fp32 over a batch of sequences whose K/V live
 * in fixed-size pages. Read top to bottom it is the architecture: embed; per layer RMSNorm,
 * QKV (+bias, +Q/K norm), RoPE, K/V written into pages, causal attention through each
 * sequence's page table, output projection, residual, RMSNorm, SwiGLU, residual; final norm and
 * the classifier for the rows that need logits. Matrix products run over all the step's tokens
 * at once (engine/cpu/matmul_cpu.c); attention is split over (token, head) pairs across threads.
 * Every row is computed the same way whatever else is in the batch. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cascade_cpu.h"
#include "error.h"
#include "matmul_cpu.h"

typedef struct cpu_context {
  yaie_model *model;
  yaie_context_params params;
  int n_threads;
  int max_ctx;        /* most positions one sequence can hold: min(pages * page_size, context) */
  size_t page_stride; /* floats per page: layers x {K, V} x page_size x kv_dim */
  float *kv;
  /* Scratch, sized for max_batch_tokens rows. */
  float *x, *xb, *qkv, *att, *hb, *scores;
  int *row_seq, *row_pos;
  const int32_t **row_pages;
  float *logits;
  int n_logit_rows;
  /* The step's cascade groups (batch->n_groups > 0), planned once for every layer. */
  const yaie_batch *batch;
  yaie_cascade_plan plan;
  int *seq_row; /* sequence -> its first row, for the step */
} cpu_context;

static void *alloc_zero(size_t n, size_t size, int *failed) {
  void *p = calloc(n ? n : 1, size);
  if (!p)
    *failed = 1;
  return p;
}

static void cpu_context_free(void *impl);

/* The sizes are checked by yaie_context_new before this runs. */
static yaie_status cpu_context_new(yaie_model *model, const yaie_context_params *params, void **out) {
  *out = NULL;
  const yaie_config *c = &model->config;
  yaie_context_params p = *params;
  cpu_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory creating a context");
  ctx->model = model;
  ctx->params = p;
  ctx->n_threads = p.n_threads > 0 ? p.n_threads : omp_get_num_procs();
  long pages_tokens = (long)p.n_pages * p.page_size;
  ctx->max_ctx = pages_tokens < c->max_seq_len ? (int)pages_tokens : c->max_seq_len;
  ctx->page_stride = (size_t)c->n_layers * 2 * (size_t)p.page_size * (size_t)yaie_kv_dim(c);
  size_t T = (size_t)p.max_batch_tokens, dim = (size_t)c->dim;
  size_t qkv = (size_t)(yaie_q_dim(c) + 2 * yaie_kv_dim(c));
  int failed = 0;
  ctx->kv = alloc_zero((size_t)p.n_pages * ctx->page_stride, sizeof(float), &failed);
  ctx->x = alloc_zero(T * dim, sizeof(float), &failed);
  ctx->xb = alloc_zero(T * dim, sizeof(float), &failed);
  ctx->qkv = alloc_zero(T * qkv, sizeof(float), &failed);
  ctx->att = alloc_zero(T * (size_t)yaie_q_dim(c), sizeof(float), &failed);
  ctx->hb = alloc_zero(T * 2 * (size_t)c->hidden_dim, sizeof(float), &failed);
  ctx->scores = alloc_zero((size_t)ctx->n_threads * (size_t)ctx->max_ctx, sizeof(float), &failed);
  ctx->row_seq = alloc_zero(T, sizeof(int), &failed);
  ctx->row_pos = alloc_zero(T, sizeof(int), &failed);
  ctx->row_pages = alloc_zero(T, sizeof(int32_t *), &failed);
  ctx->logits = alloc_zero(T * (size_t)c->vocab_size, sizeof(float), &failed);
  if (failed) {
    cpu_context_free(ctx);
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory creating a context of %d pages x %d tokens",
                     p.n_pages, p.page_size);
  }
  *out = ctx;
  return YAIE_OK;
}

static void cpu_context_free(void *impl) {
  cpu_context *ctx = impl;
  if (!ctx)
    return;
  free(ctx->kv);
  free(ctx->x);
  free(ctx->xb);
  free(ctx->qkv);
  free(ctx->att);
  free(ctx->hb);
  free(ctx->scores);
  free(ctx->row_seq);
  free(ctx->row_pos);
  free(ctx->row_pages);
  free(ctx->logits);
  free(ctx->seq_row);
  free(ctx);
}

static float *cpu_logits(void *impl, int *n_rows) {
  cpu_context *ctx = impl;
  *n_rows = ctx->n_logit_rows;
  return ctx->logits;
}

/* ---------------------------------------------------------------------------------------------
 * Kernels: output first, then inputs, then sizes. */

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
  float ss = 0.0f;
  for (int i = 0; i < n; i++)
    ss += x[i] * x[i];
  ss = 1.0f / sqrtf(ss / (float)n + eps);
  for (int i = 0; i < n; i++)
    o[i] = w[i] * (ss * x[i]);
}

static void rope(float *v, const float *inv_freq, int pos, int head_dim, int layout) {
  int half = head_dim / 2;
  for (int i = 0; i < half; i++) {
    float angle = (float)pos * inv_freq[i], fcr = cosf(angle), fci = sinf(angle);
    int a = layout == YAIE_ROPE_HALF ? i : 2 * i, b = layout == YAIE_ROPE_HALF ? i + half : 2 * i + 1;
    float v0 = v[a], v1 = v[b];
    v[a] = v0 * fcr - v1 * fci;
    v[b] = v0 * fci + v1 * fcr;
  }
}

static void softmax(float *x, int n) {
  float max = x[0], sum = 0.0f;
  for (int i = 1; i < n; i++)
    if (x[i] > max)
      max = x[i];
  for (int i = 0; i < n; i++) {
    x[i] = expf(x[i] - max);
    sum += x[i];
  }
  for (int i = 0; i < n; i++)
    x[i] /= sum;
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* ---------------------------------------------------------------------------------------------
 * Paged KV: position p of a sequence lives in page pages[p / page_size], slot p % page_size. */

static float *kv_slot(const cpu_context *ctx, const int32_t *pages, int pos, int layer, int is_v) {
  int ps = ctx->params.page_size;
  size_t kv_dim = (size_t)yaie_kv_dim(&ctx->model->config);
  size_t slot = ((size_t)(layer * 2 + is_v) * (size_t)ps + (size_t)(pos % ps)) * kv_dim;
  return ctx->kv + (size_t)pages[pos / ps] * ctx->page_stride + slot;
}

/* One head of one token: causal attention over positions [0, pos] through the page table. */
static void attend(const cpu_context *ctx, float *out, const float *q, float *scores,
                   const int32_t *pages, int pos, int layer, int kv_head) {
  int hd = ctx->model->config.head_dim;
  float scale = 1.0f / sqrtf((float)hd);
  for (int t = 0; t <= pos; t++) {
    const float *k = kv_slot(ctx, pages, t, layer, 0) + kv_head * hd;
    float dot = 0.0f;
    for (int i = 0; i < hd; i++)
      dot += q[i] * k[i];
    scores[t] = dot * scale;
  }
  softmax(scores, pos + 1);
  memset(out, 0, (size_t)hd * sizeof(float));
  for (int t = 0; t <= pos; t++) {
    const float *v = kv_slot(ctx, pages, t, layer, 1) + kv_head * hd;
    float a = scores[t];
    for (int i = 0; i < hd; i++)
      out[i] += a * v[i];
  }
}

static yaie_status attention_layer(cpu_context *ctx, int layer, int rows) {
  const yaie_model *m = ctx->model;
  const yaie_config *c = &m->config;
  const yaie_layer *L = &m->layers[layer];
  int hd = c->head_dim, q_dim = yaie_q_dim(c), kv_dim = yaie_kv_dim(c), qkv_dim = q_dim + 2 * kv_dim;
  int group = c->n_heads / c->n_kv_heads;

  long cost = 0; /* multiply-adds of the attention below */
  for (int r = 0; r < rows; r++) {
    float *q = ctx->qkv + (size_t)r * qkv_dim, *k = q + q_dim, *v = k + kv_dim;
    cost += 2L * (ctx->row_pos[r] + 1) * q_dim;
    if (L->bqkv)
      for (int i = 0; i < qkv_dim; i++)
        q[i] += L->bqkv[i];
    for (int h = 0; h < c->n_heads; h++) {
      if (L->q_norm)
        rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, c->norm_eps);
      rope(q + h * hd, m->rope_inv_freq, ctx->row_pos[r], hd, c->rope_layout);
    }
    for (int h = 0; h < c->n_kv_heads; h++) {
      if (L->k_norm)
        rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, c->norm_eps);
      rope(k + h * hd, m->rope_inv_freq, ctx->row_pos[r], hd, c->rope_layout);
    }
    memcpy(kv_slot(ctx, ctx->row_pages[r], ctx->row_pos[r], layer, 0), k, (size_t)kv_dim * sizeof(float));
    memcpy(kv_slot(ctx, ctx->row_pages[r], ctx->row_pos[r], layer, 1), v, (size_t)kv_dim * sizeof(float));
  }

  const yaie_cascade_plan *plan = ctx->batch ? &ctx->plan : NULL;
  int work = rows * c->n_heads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx->n_threads) if (cost >= PARALLEL_MIN_WORK)
  for (int w = 0; w < work; w++) {
    int r = w / c->n_heads, h = w % c->n_heads;
    if (plan && plan->own_start[ctx->row_seq[r]] >= 0)
      continue; /* a cascade group member: below */
    float *scores = ctx->scores + (size_t)omp_get_thread_num() * ctx->max_ctx;
    attend(ctx, ctx->att + (size_t)r * q_dim + h * hd, ctx->qkv + (size_t)r * qkv_dim + h * hd, scores,
           ctx->row_pages[r], ctx->row_pos[r], layer, h / group);
  }
  if (!plan)
    return YAIE_OK;
  cpu_kv kv = {ctx->kv, ctx->page_stride, ctx->params.page_size, kv_dim, hd, c->n_heads, c->n_kv_heads};
  return yaie_cpu_cascade(ctx->att, ctx->qkv, qkv_dim, &kv, layer, ctx->batch, plan, ctx->seq_row, ctx->n_threads);
}

static void ffn_layer(cpu_context *ctx, int layer, int rows) {
  const yaie_config *c = &ctx->model->config;
  const yaie_layer *L = &ctx->model->layers[layer];
  int dim = c->dim, hidden = c->hidden_dim;
  for (int r = 0; r < rows; r++)
    rmsnorm(ctx->xb + (size_t)r * dim, ctx->x + (size_t)r * dim, L->ffn_norm, dim, c->norm_eps);
  yaie_matmul(ctx->hb, ctx->xb, L->w_gate_up, rows, dim, 2 * hidden, ctx->n_threads);
  /* SwiGLU into the gate half, compacted so w_down reads contiguous rows of `hidden`. */
  for (int r = 0; r < rows; r++) {
    const float *gate = ctx->hb + (size_t)r * 2 * hidden, *up = gate + hidden;
    float *o = ctx->hb + (size_t)r * hidden;
    for (int i = 0; i < hidden; i++)
      o[i] = silu(gate[i]) * up[i];
  }
  yaie_matmul(ctx->xb, ctx->hb, L->w_down, rows, hidden, dim, ctx->n_threads);
  for (size_t i = 0; i < (size_t)rows * dim; i++)
    ctx->x[i] += ctx->xb[i];
}

/* The batch is checked by yaie_forward (yaie_check_batch) before this runs. */
static yaie_status cpu_forward(void *impl, const yaie_batch *batch, int rows, int logit_rows) {
  cpu_context *ctx = impl;
  const yaie_model *m = ctx->model;
  const yaie_config *c = &m->config;
  int dim = c->dim, q_dim = yaie_q_dim(c), qkv_dim = q_dim + 2 * yaie_kv_dim(c);

  ctx->batch = NULL;
  if (batch->n_groups > 0) {
    YAIE_TRY(yaie_cascade_check(batch, ctx->params.page_size, &ctx->plan));
    free(ctx->seq_row);
    ctx->seq_row = malloc((size_t)batch->n_seqs * sizeof *ctx->seq_row);
    if (!ctx->seq_row) {
      yaie_cascade_plan_free(&ctx->plan);
      return yaie_fail(YAIE_ERR_NOMEM, "forward: out of memory planning cascade attention");
    }
    ctx->batch = batch;
  }
  yaie_status st = YAIE_OK;
  int r = 0;
  for (int s = 0; s < batch->n_seqs; s++) {
    const yaie_seq *q = &batch->seqs[s];
    if (ctx->batch)
      ctx->seq_row[s] = r;
    for (int i = 0; i < q->n_tokens; i++, r++) {
      ctx->row_seq[r] = s;
      ctx->row_pos[r] = q->pos + i;
      ctx->row_pages[r] = q->pages;
      memcpy(ctx->x + (size_t)r * dim, m->tok_embeddings + (size_t)q->tokens[i] * dim, (size_t)dim * sizeof(float));
    }
  }

  for (int l = 0; l < c->n_layers; l++) {
    const yaie_layer *L = &m->layers[l];
    for (r = 0; r < rows; r++)
      rmsnorm(ctx->xb + (size_t)r * dim, ctx->x + (size_t)r * dim, L->attn_norm, dim, c->norm_eps);
    yaie_matmul(ctx->qkv, ctx->xb, L->wqkv, rows, dim, qkv_dim, ctx->n_threads);
    st = attention_layer(ctx, l, rows);
    if (st != YAIE_OK)
      break;
    yaie_matmul(ctx->xb, ctx->att, L->wo, rows, q_dim, dim, ctx->n_threads);
    for (size_t i = 0; i < (size_t)rows * dim; i++)
      ctx->x[i] += ctx->xb[i];
    ffn_layer(ctx, l, rows);
  }

  if (ctx->batch) {
    yaie_cascade_plan_free(&ctx->plan);
    ctx->batch = NULL;
  }
  if (st != YAIE_OK)
    return st;

  /* Final norm and classifier only for the rows whose logits are wanted. */
  int out_row = 0;
  r = 0;
  for (int s = 0; s < batch->n_seqs; s++) {
    const yaie_seq *q = &batch->seqs[s];
    int first = q->all_logits ? 0 : q->n_tokens - 1;
    for (int i = first; i < q->n_tokens; i++, out_row++)
      rmsnorm(ctx->xb + (size_t)out_row * dim, ctx->x + (size_t)(r + i) * dim, m->final_norm, dim, c->norm_eps);
    r += q->n_tokens;
  }
  yaie_matmul(ctx->logits, ctx->xb, m->classifier, logit_rows, dim, c->vocab_size, ctx->n_threads);
  ctx->n_logit_rows = logit_rows;
  return YAIE_OK;
}

const yaie_backend_ops yaie_cpu_backend = {
  .abi = YAIE_BACKEND_ABI,
  .name = "cpu",
  .last_error = yaie_last_error,
  .probe = NULL,
  .context_new = cpu_context_new,
  .context_free = cpu_context_free,
  .forward = cpu_forward,
  .logits = cpu_logits,
  .sample = NULL,
  .round_begin = NULL,
  .round_wait = NULL,
};

// The CUDA backend's entry point (yaie_cuda_backend, the one symbol libyaie looks up) and the
// context's making and freeing: KV pages, page tables, activations, staging.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.cuh"

static yaie_status cuda_probe(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n < 1)
    return cuda_fail(YAIE_ERR_UNSUPPORTED, "device cuda: no usable GPU (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
  return YAIE_OK;
}

yaie_status grow_pair(void **host, void **dev, size_t *cap, size_t need, size_t size) {
  if (need <= *cap)
    return YAIE_OK;
  size_t n = need > 2 * *cap ? need : 2 * *cap;
  cudaFreeHost(*host);
  cudaFree(*dev);
  *host = nullptr;
  *dev = nullptr;
  *cap = 0;
  CUDA_TRY(cudaMallocHost(host, n * size));
  CUDA_TRY(cudaMalloc(dev, n * size));
  *cap = n;
  return YAIE_OK;
}

static int env_int(const char *name, int fallback) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : fallback;
}

static void context_free(void *impl) {
  cuda_context *ctx = (cuda_context *)impl;
  if (!ctx)
    return;
  if (ctx->stream)
    cudaStreamSynchronize(ctx->stream);
  cuda_graphs_free(ctx);
  void *dev[] = {ctx->kv.base, ctx->d_tables, ctx->x, ctx->xb, ctx->qkv, ctx->q, ctx->att, ctx->y, ctx->hb,
                 ctx->h, ctx->logits, ctx->part_acc, ctx->part_ml, ctx->d_rows, ctx->d_logit_src,
                 ctx->d_decode_rows, ctx->d_items, ctx->d_patches, ctx->d_srows, ctx->d_ids, ctx->d_lps,
                 ctx->d_pen, ctx->d_pen_orig, ctx->d_masks, ctx->blas_ws, ctx->d_rsrows, ctx->d_rints,
                 ctx->d_rtok, ctx->d_rlp, ctx->d_citems, ctx->d_cmem, ctx->d_cint, ctx->c_acc, ctx->c_ml};
  for (void *p : dev)
    cudaFree(p);
  for (int i = 0; i < 2; i++) {
    meta_set *m = &ctx->meta[i];
    void *host[] = {m->rows, m->logit_src, m->decode_rows, m->items, m->patches};
    for (void *p : host)
      cudaFreeHost(p);
    if (m->done)
      cudaEventDestroy(m->done);
  }
  void *host[] = {ctx->h_srows, ctx->h_ids, ctx->h_lps, ctx->h_pen, ctx->h_masks, ctx->h_rsrows, ctx->h_rints,
                  ctx->h_rtok, ctx->h_rlp, ctx->h_citems, ctx->h_cmem, ctx->h_cint};
  if (ctx->round_done)
    cudaEventDestroy(ctx->round_done);
  if (ctx->cascade_done)
    cudaEventDestroy(ctx->cascade_done);
  for (void *p : host)
    cudaFreeHost(p);
  if (ctx->blas)
    cublasDestroy(ctx->blas);
  if (ctx->stream)
    cudaStreamDestroy(ctx->stream);
  free(ctx->tab_key);
  free(ctx->tab_shadow);
  free(ctx->tab_len);
  free(ctx->tab_hint);
  free(ctx->tab_stamp);
  free(ctx->h_logits);
  free(ctx);
}

// Device allocations of the context, each named in the message when it fails.
#define DEV_ALLOC(ptr, count)                                                                        \
  do {                                                                                               \
    size_t bytes_ = (size_t)(count) * sizeof *(ptr);                                                 \
    if (cudaMalloc(&(ptr), bytes_ ? bytes_ : 1) != cudaSuccess)                                      \
      return cuda_fail(YAIE_ERR_NOMEM, "device cuda: cannot allocate %s (%.1f MiB) on the GPU", #ptr, \
                       (double)bytes_ / 1048576.0);                                                  \
  } while (0)

#define HOST_ALLOC(ptr, count)                                                                       \
  do {                                                                                               \
    if (cudaMallocHost(&(ptr), ((size_t)(count) ? (size_t)(count) : 1) * sizeof *(ptr)) != cudaSuccess) \
      return cuda_fail(YAIE_ERR_NOMEM, "device cuda: cannot allocate pinned %s", #ptr);              \
  } while (0)

static yaie_status context_init(cuda_context *ctx) {
  const yaie_config *c = &ctx->c;
  const yaie_context_params *p = &ctx->p;
  size_t T = (size_t)p->max_batch_tokens, dim = (size_t)c->dim, hidden = (size_t)c->hidden_dim;
  size_t q_dim = (size_t)yaie_q_dim(c), kv_dim = (size_t)yaie_kv_dim(c), vocab = (size_t)c->vocab_size;

  CUDA_TRY(cudaDeviceGetAttribute(&ctx->sms, cudaDevAttrMultiProcessorCount, 0));
  STATUS_TRY(cuda_weights_get(ctx->model, &ctx->w));
  CUDA_TRY(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
  if (cublasCreate(&ctx->blas) != CUBLAS_STATUS_SUCCESS)
    return cuda_fail(YAIE_ERR_STATE, "device cuda: cannot create a cuBLAS handle");
  size_t ws = 32u << 20; // a fixed workspace, so cuBLAS allocates nothing while a graph is captured
  CUDA_TRY(cudaMalloc(&ctx->blas_ws, ws));
  if (cublasSetStream(ctx->blas, ctx->stream) != CUBLAS_STATUS_SUCCESS ||
      cublasSetWorkspace(ctx->blas, ctx->blas_ws, ws) != CUBLAS_STATUS_SUCCESS)
    return cuda_fail(YAIE_ERR_STATE, "device cuda: cannot set up cuBLAS");
  ctx->g.blas = ctx->blas;
  ctx->g.stream = ctx->stream;
  ctx->g.small_m = env_int("YAIE_CUDA_SMALL_M", 1);
  ctx->g.fuse_glu = env_int("YAIE_CUDA_FUSE_GLU", 1);
  ctx->g.pdl = env_int("YAIE_CUDA_PDL", 1);
  ctx->use_prefill_tc = attention_prefill_supported(c->head_dim) && env_int("YAIE_CUDA_PREFILL_TC", 1);
  ctx->use_graphs = env_int("YAIE_CUDA_GRAPHS", 1);

  kv_layout *kv = &ctx->kv;
  kv->n_layers = c->n_layers;
  kv->n_kv_heads = c->n_kv_heads;
  kv->page_size = p->page_size;
  kv->head_dim = c->head_dim;
  kv->page_stride = (size_t)c->n_layers * 2 * kv_dim * (size_t)p->page_size;
  ctx->trash_page = p->n_pages;
  DEV_ALLOC(kv->base, (size_t)(p->n_pages + 1) * kv->page_stride);
  CUDA_TRY(cudaMemset(kv->base, 0, (size_t)(p->n_pages + 1) * kv->page_stride * sizeof(bf16)));

  long positions = (long)p->n_pages * p->page_size < c->max_seq_len ? (long)p->n_pages * p->page_size : c->max_seq_len;
  ctx->max_pages = ceil_div(positions, p->page_size);
  ctx->n_tables = p->max_batch_tokens < 1024 ? p->max_batch_tokens : 1024;
  size_t tab = (size_t)(ctx->n_tables + 1) * ctx->max_pages;
  DEV_ALLOC(ctx->d_tables, tab);
  int *trash = (int *)malloc((size_t)ctx->max_pages * sizeof(int));
  if (!trash)
    return cuda_fail(YAIE_ERR_NOMEM, "device cuda: out of host memory");
  for (int i = 0; i < ctx->max_pages; i++)
    trash[i] = ctx->trash_page;
  CUDA_TRY(cudaMemset(ctx->d_tables, 0, tab * sizeof(int)));
  cudaError_t e = cudaMemcpy(ctx->d_tables + (size_t)ctx->n_tables * ctx->max_pages, trash,
                             (size_t)ctx->max_pages * sizeof(int), cudaMemcpyHostToDevice);
  free(trash);
  CUDA_TRY(e);
  ctx->tab_key = (const int32_t **)calloc((size_t)ctx->n_tables, sizeof *ctx->tab_key);
  ctx->tab_shadow = (int32_t *)malloc(tab * sizeof(int32_t));
  ctx->tab_len = (int *)calloc((size_t)ctx->n_tables, sizeof(int));
  ctx->tab_hint = (int *)calloc(T, sizeof(int));
  ctx->tab_stamp = (long *)calloc((size_t)ctx->n_tables, sizeof(long));
  ctx->h_logits = (float *)malloc(vocab * sizeof(float));
  ctx->h_logits_cap = vocab;
  if (!ctx->tab_key || !ctx->tab_shadow || !ctx->tab_len || !ctx->tab_hint || !ctx->tab_stamp || !ctx->h_logits)
    return cuda_fail(YAIE_ERR_NOMEM, "device cuda: out of host memory for the page tables");

  DEV_ALLOC(ctx->x, T * dim);
  DEV_ALLOC(ctx->xb, T * dim);
  DEV_ALLOC(ctx->qkv, T * (q_dim + 2 * kv_dim));
  DEV_ALLOC(ctx->q, T * q_dim);
  DEV_ALLOC(ctx->att, T * q_dim);
  DEV_ALLOC(ctx->y, T * dim);
  DEV_ALLOC(ctx->hb, T * 2 * hidden);
  DEV_ALLOC(ctx->h, T * hidden);
  DEV_ALLOC(ctx->logits, T * vocab);
  // Split-KV partials exist only while rows x KV heads leave the GPU short of blocks, which
  // bounds them by a few blocks per multiprocessor times the query heads a block serves.
  ctx->part_cap = 80 * ctx->sms;
  DEV_ALLOC(ctx->part_acc, (size_t)ctx->part_cap * c->head_dim);
  DEV_ALLOC(ctx->part_ml, (size_t)ctx->part_cap * 2);

  DEV_ALLOC(ctx->d_rows, T);
  DEV_ALLOC(ctx->d_logit_src, T);
  DEV_ALLOC(ctx->d_decode_rows, T);
  DEV_ALLOC(ctx->d_items, T);
  for (int i = 0; i < 2; i++) {
    meta_set *m = &ctx->meta[i];
    HOST_ALLOC(m->rows, T);
    HOST_ALLOC(m->logit_src, T);
    HOST_ALLOC(m->decode_rows, T);
    HOST_ALLOC(m->items, T);
    CUDA_TRY(cudaEventCreateWithFlags(&m->done, cudaEventDisableTiming));
  }
  DEV_ALLOC(ctx->d_srows, T);
  DEV_ALLOC(ctx->d_ids, T);
  DEV_ALLOC(ctx->d_lps, T);
  HOST_ALLOC(ctx->h_srows, T);
  HOST_ALLOC(ctx->h_ids, T);
  HOST_ALLOC(ctx->h_lps, T);

  int buckets_max = env_int("YAIE_CUDA_GRAPH_MAX", 512);
  ctx->graph_max = ctx->use_graphs ? (buckets_max < (int)T ? buckets_max : (int)T) : 0;
  if (ctx->graph_max > ctx->n_tables)
    ctx->graph_max = ctx->n_tables;
  return YAIE_OK;
}

static yaie_status context_new(yaie_model *model, const yaie_context_params *params, void **out) {
  *out = nullptr;
  STATUS_TRY(cuda_probe());
  const yaie_config *c = &model->config;
  if (c->head_dim % 8 || c->head_dim > 256)
    return cuda_fail(YAIE_ERR_UNSUPPORTED, "device cuda: head_dim %d is not supported (multiples of 8 up to 256)",
                     c->head_dim);
  if (params->max_batch_tokens > 65535)
    return cuda_fail(YAIE_ERR_ARG, "device cuda: max_batch_tokens %d is above 65535", params->max_batch_tokens);
  cuda_context *ctx = (cuda_context *)calloc(1, sizeof *ctx);
  if (!ctx)
    return cuda_fail(YAIE_ERR_NOMEM, "device cuda: out of host memory");
  ctx->model = model;
  ctx->c = *c;
  ctx->p = *params;
  yaie_status st = context_init(ctx);
  if (st != YAIE_OK) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", cuda_last_error());
    context_free(ctx);
    return cuda_fail(st, "%s", msg);
  }
  *out = ctx;
  return YAIE_OK;
}

static float *context_logits(void *impl, int *n_rows) {
  cuda_context *ctx = (cuda_context *)impl;
  *n_rows = ctx->n_logit_rows;
  if (ctx->n_logit_rows && !ctx->logits_on_host) {
    size_t need = (size_t)ctx->n_logit_rows * ctx->c.vocab_size;
    if (need > ctx->h_logits_cap) {
      float *p = (float *)realloc(ctx->h_logits, need * sizeof(float));
      if (!p) {
        *n_rows = 0;
        return ctx->h_logits;
      }
      ctx->h_logits = p;
      ctx->h_logits_cap = need;
    }
    if (cudaMemcpyAsync(ctx->h_logits, ctx->logits, need * sizeof(float), cudaMemcpyDeviceToHost, ctx->stream) !=
            cudaSuccess ||
        cudaStreamSynchronize(ctx->stream) != cudaSuccess) {
      *n_rows = 0;
      return ctx->h_logits;
    }
    ctx->logits_on_host = 1;
  }
  return ctx->h_logits;
}

extern "C" __attribute__((visibility("default"))) const yaie_backend_ops *yaie_cuda_backend(void) {
  static const yaie_backend_ops ops = {
      YAIE_BACKEND_ABI, "cuda", cuda_last_error, cuda_probe, context_new, context_free,
      cuda_forward,     context_logits, cuda_sample,    cuda_round_begin, cuda_round_wait,
  };
  return &ops;
}

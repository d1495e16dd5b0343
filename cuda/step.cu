// One forward step on the GPU. The host plans the step (rows, page-table patches, which rows
// take which attention kernel), copies that metadata up in a few small transfers, and launches
// the layers: a decode step as a CUDA graph captured once per batch-size bucket, anything else
// kernel by kernel. The layers read like forward_cpu.c: embed; per layer RMSNorm (with the
// previous residual add fused in), QKV, bias/norm/RoPE/KV write, attention, output projection,
// residual + RMSNorm, SwiGLU, down projection; final norm on the rows that want logits, classifier.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.cuh"

// ---------------------------------------------------------------------------------------------
// Page tables: each sequence's table is kept on the device between steps; only entries that
// differ from what the device holds are sent (a decode step sends one when a page fills).

static yaie_status patch_room(meta_set *ms, int used, int more) {
  if (used + more <= ms->patch_cap)
    return YAIE_OK;
  int cap = used + more > 2 * ms->patch_cap ? used + more : 2 * ms->patch_cap;
  int2 *p = nullptr;
  CUDA_TRY(cudaMallocHost(&p, (size_t)cap * sizeof(int2)));
  if (used)
    memcpy(p, ms->patches, (size_t)used * sizeof(int2));
  cudaFreeHost(ms->patches);
  ms->patches = p;
  ms->patch_cap = cap;
  return YAIE_OK;
}

// end: the positions the table must cover (a decode round's later steps reach past this step's).
static yaie_status table_for(cuda_context *ctx, int s, const yaie_seq *q, long end, meta_set *ms, int *n_patches,
                             int *out) {
  int need = ceil_div(end, ctx->p.page_size);
  if (need > ctx->max_pages)
    return cuda_fail(YAIE_ERR_ARG, "device cuda: sequence %d needs %d pages, more than the pool's positions allow (%d)",
                     s, need, ctx->max_pages);
  int t = ctx->tab_hint[s];
  if (ctx->tab_key[t] != q->pages) {
    t = -1;
    for (int i = 0; i < ctx->n_tables && t < 0; i++)
      if (ctx->tab_key[i] == q->pages)
        t = i;
  }
  if (t < 0) { // a new sequence: the least recently used table that this step does not use
    long oldest = LONG_MAX;
    for (int i = 0; i < ctx->n_tables; i++)
      if (ctx->tab_stamp[i] != ctx->step && ctx->tab_stamp[i] < oldest) {
        oldest = ctx->tab_stamp[i];
        t = i;
      }
    if (t < 0)
      return cuda_fail(YAIE_ERR_ARG, "device cuda: more than %d sequences in one step", ctx->n_tables);
    ctx->tab_key[t] = q->pages;
    ctx->tab_len[t] = 0;
  }
  int32_t *shadow = ctx->tab_shadow + (size_t)t * ctx->max_pages;
  int same = ctx->tab_len[t] < need ? ctx->tab_len[t] : need;
  if (memcmp(shadow, q->pages, (size_t)same * sizeof(int32_t)) != 0 || same < need) {
    STATUS_TRY(patch_room(ms, *n_patches, need));
    for (int i = 0; i < need; i++)
      if (i >= same || shadow[i] != q->pages[i]) {
        shadow[i] = q->pages[i];
        ms->patches[(*n_patches)++] = make_int2(t * ctx->max_pages + i, q->pages[i]);
      }
    if (need > ctx->tab_len[t])
      ctx->tab_len[t] = need;
  }
  ctx->tab_stamp[t] = ctx->step;
  ctx->tab_hint[s] = t;
  *out = t;
  return YAIE_OK;
}

// ---------------------------------------------------------------------------------------------
// The layers.

struct step_plan {
  int n_rows, n_logit;
  const int *logit_src; // device; NULL: row i gives logit row i
  int n_dec;            // rows taking the one-row attention kernel
  const int *dec_rows;  // device; NULL: rows 0 .. n_dec - 1
  int n_items;          // query tiles taking the tensor-core prefill kernel
  int splits;
  const cascade_args *cascade; // the decode rows' cascade groups, or NULL
};

// Whether a product of m rows over k is launched as a dependent of the kernel before it (the
// streaming kernel's loads of W then overlap that kernel: common.cuh), which that kernel must
// be told, to trigger it.
static int pdl_into(const cuda_context *ctx, int m, int k) { return ctx->g.pdl && gemm_small_path(ctx->g, m, k); }

static yaie_status run_layers(cuda_context *ctx, const step_plan *sp) {
  const yaie_config *c = &ctx->c;
  const cuda_weights *w = ctx->w;
  cudaStream_t s = ctx->stream;
  int n = sp->n_rows, dim = c->dim, hidden = c->hidden_dim, q_dim = yaie_q_dim(c);
  int qkv_dim = q_dim + 2 * yaie_kv_dim(c);
  float eps = c->norm_eps;
  attn_args aa = {ctx->q, ctx->att, ctx->kv, 0, ctx->d_rows, ctx->d_tables, ctx->max_pages, c->n_heads,
                  c->n_kv_heads, c->head_dim, 1.0f / sqrtf((float)c->head_dim),
                  !sp->n_items && pdl_into(ctx, n, q_dim)};
  qkv_args qa = {ctx->q, ctx->kv, 0, ctx->qkv, nullptr, nullptr, nullptr, w->inv_freq, ctx->d_rows, ctx->d_tables,
                 ctx->max_pages, c->n_heads, c->n_kv_heads, c->head_dim, c->rope_layout, eps};

  launch_embed(ctx->x, w->emb, ctx->d_rows, n, dim, s);
  for (int l = 0; l < c->n_layers; l++) {
    const cuda_layer *L = &w->layers[l];
    launch_add_rmsnorm(ctx->xb, ctx->x, l ? ctx->y : nullptr, L->attn_norm, nullptr, n, dim, eps, s,
                       pdl_into(ctx, n, dim));
    STATUS_TRY(gemm(ctx->g, ctx->qkv, 0, ctx->xb, L->wqkv, n, qkv_dim, dim));
    qa.layer = l;
    qa.bias = L->bqkv;
    qa.q_norm = L->q_norm;
    qa.k_norm = L->k_norm;
    launch_qkv_rope(qa, n, s);
    aa.layer = l;
    if (sp->cascade) {
      launch_attention_cascade(aa, *sp->cascade, s);
      launch_attention_rows_cascade(aa, sp->dec_rows, sp->n_dec, *sp->cascade, s);
    } else if (sp->n_dec) {
      launch_attention_rows(aa, sp->dec_rows, sp->n_dec, sp->splits, ctx->part_acc, ctx->part_ml, s);
    }
    if (sp->n_items)
      launch_attention_prefill(aa, ctx->d_items, sp->n_items, s);
    STATUS_TRY(gemm(ctx->g, ctx->y, 1, ctx->att, L->wo, n, dim, q_dim));
    launch_add_rmsnorm(ctx->xb, ctx->x, ctx->y, L->ffn_norm, nullptr, n, dim, eps, s, pdl_into(ctx, n, dim));
    STATUS_TRY(gemm(ctx->g, ctx->hb, 0, ctx->xb, L->w_gate_up, n, 2 * hidden, dim));
    if (ctx->g.fuse_glu && gemm_small_path(ctx->g, n, hidden)) { // one row: SwiGLU inside the down projection
      launch_gemm_small(ctx->y, 1, ctx->hb, L->w_down, n, dim, hidden, s, 1, ctx->g.pdl);
    } else {
      launch_swiglu(ctx->h, ctx->hb, n, hidden, s, pdl_into(ctx, n, hidden));
      STATUS_TRY(gemm(ctx->g, ctx->y, 1, ctx->h, L->w_down, n, dim, hidden));
    }
  }
  launch_add_rmsnorm(ctx->xb, ctx->x, ctx->y, w->final_norm, sp->logit_src, sp->n_logit, dim, eps, s,
                     pdl_into(ctx, sp->n_logit, dim));
  return gemm(ctx->g, ctx->logits, 1, ctx->xb, w->classifier, sp->n_logit, c->vocab_size, dim);
}

static int splits_for(const cuda_context *ctx, int n_dec, int max_len) {
  const yaie_config *c = &ctx->c;
  int splits = attention_rows_splits(n_dec, c->n_kv_heads, c->n_heads / c->n_kv_heads, ctx->sms, max_len);
  while (splits > 1 && (long)n_dec * c->n_heads * splits > ctx->part_cap)
    splits--;
  return splits;
}

// ---------------------------------------------------------------------------------------------
// Decode graphs: a step whose sequences all decode one token runs as the graph of the smallest
// bucket holding it, its rows padded with token 0 at position 0 on the trash page's table.

static const int buckets[] = {1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 448, 512};

static int bucket_for(const cuda_context *ctx, int n) {
  for (int b : buckets)
    if (b >= n)
      return b <= ctx->graph_max ? b : 0;
  return 0;
}

void cuda_graphs_free(cuda_context *ctx) {
  for (int i = 0; i < ctx->n_graphs; i++)
    if (ctx->graphs[i].exec)
      cudaGraphExecDestroy(ctx->graphs[i].exec);
  ctx->n_graphs = 0;
}

static yaie_status run_graph(cuda_context *ctx, int bucket) {
  graph_entry *ge = nullptr;
  for (int i = 0; i < ctx->n_graphs && !ge; i++)
    if (ctx->graphs[i].rows == bucket)
      ge = &ctx->graphs[i];
  if (!ge && ctx->n_graphs < MAX_GRAPHS) {
    ge = &ctx->graphs[ctx->n_graphs++];
    ge->rows = bucket;
    ge->splits = splits_for(ctx, bucket, ctx->max_pages * ctx->p.page_size);
    ge->runs = 0;
    ge->exec = nullptr;
  }
  step_plan sp = {bucket, bucket, nullptr, bucket, nullptr, 0, ge ? ge->splits : splits_for(ctx, bucket, INT_MAX),
                  nullptr};
  // The first run of a bucket is eager: it loads modules and lets cuBLAS pick its kernels
  // outside the capture.
  if (!ge || ge->runs++ == 0)
    return run_layers(ctx, &sp);
  if (!ge->exec) {
    cudaGraph_t graph = nullptr;
    CUDA_TRY(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal));
    yaie_status st = run_layers(ctx, &sp);
    cudaError_t e = cudaStreamEndCapture(ctx->stream, &graph);
    if (st == YAIE_OK && e == cudaSuccess)
      e = cudaGraphInstantiate(&ge->exec, graph, 0);
    if (graph)
      cudaGraphDestroy(graph);
    if (st != YAIE_OK || e != cudaSuccess) {
      // A capture that fails leaves the step undone: run it eagerly, and stop capturing.
      if (getenv("YAIE_CUDA_VERBOSE"))
        fprintf(stderr, "yaie cuda: graph capture failed (%s); running eagerly\n",
                st != YAIE_OK ? cuda_last_error() : cudaGetErrorString(e));
      cudaGetLastError();
      ge->exec = nullptr;
      ctx->graph_max = 0;
      return run_layers(ctx, &sp);
    }
  }
  CUDA_TRY(cudaGraphLaunch(ge->exec, ctx->stream));
  return YAIE_OK;
}

// ---------------------------------------------------------------------------------------------
// The step.

yaie_status cuda_forward_until(cuda_context *ctx, const yaie_batch *b, int n_rows, int n_logit_rows,
                               const int *ends) {
  ctx->n_logit_rows = 0;
  ctx->logits_on_host = 0;
  ctx->step++;
  meta_set *ms = &ctx->meta[ctx->step & 1];
  CUDA_TRY(cudaEventSynchronize(ms->done)); // its copies of two steps ago are done
  if (b->n_seqs > ctx->n_tables)
    return cuda_fail(YAIE_ERR_ARG, "device cuda: %d sequences in one step, more than %d", b->n_seqs, ctx->n_tables);

  int decode = 1;
  for (int s = 0; s < b->n_seqs; s++)
    decode &= b->seqs[s].n_tokens == 1;
  int r = 0, n_dec = 0, n_items = 0, lr = 0, n_patches = 0, max_len = 0, dec_identity = 1, logit_identity = 1;
  for (int s = 0; s < b->n_seqs; s++) {
    const yaie_seq *q = &b->seqs[s];
    int table = 0;
    long end = ends ? ends[s] : (long)q->pos + q->n_tokens;
    STATUS_TRY(table_for(ctx, s, q, end, ms, &n_patches, &table));
    int tc = ctx->use_prefill_tc && q->n_tokens > 1;
    for (int i = 0; i < q->n_tokens; i++) {
      ms->rows[r + i] = row_info{q->tokens[i], q->pos + i, table, 0};
      if (!tc) {
        dec_identity &= n_dec == r + i;
        ms->decode_rows[n_dec++] = r + i;
      }
      if (q->all_logits || i == q->n_tokens - 1) {
        logit_identity &= lr == r + i;
        ms->logit_src[lr++] = r + i;
      }
    }
    // Heavier (later) query tiles first, so the long ones start early.
    for (int q0 = tc ? (q->n_tokens - 1) / 64 * 64 : -1; q0 >= 0; q0 -= 64)
      ms->items[n_items++] = prefill_item{r, q->n_tokens, q->pos, table, q0, {0, 0, 0}};
    if (end > max_len)
      max_len = (int)end;
    r += q->n_tokens;
  }
  // Cascade groups: member rows' own parts start after their groups (rows[].pad); such a step
  // runs eagerly (its kernels' shapes follow the groups).
  ctx->cascade.n_items = 0;
  if (b->n_groups > 0) {
    int *row_of_seq = (int *)malloc((size_t)b->n_seqs * 2 * sizeof(int)), *ri_of_row = (int *)malloc((size_t)n_rows * sizeof(int));
    yaie_status cst = row_of_seq && ri_of_row ? YAIE_OK : cuda_fail(YAIE_ERR_NOMEM, "device cuda: out of memory");
    if (cst == YAIE_OK) {
      int *seq_table = row_of_seq + b->n_seqs;
      for (int s = 0, row = 0; s < b->n_seqs; row += b->seqs[s].n_tokens, s++) {
        row_of_seq[s] = row;
        seq_table[s] = ms->rows[row].table;
      }
      for (int i = 0; i < n_rows; i++)
        ri_of_row[i] = -1;
      for (int i = 0; i < n_dec; i++)
        ri_of_row[ms->decode_rows[i]] = i;
      cst = cuda_cascade_plan(ctx, b, ms->rows, row_of_seq, ri_of_row, seq_table, n_dec, splits_for(ctx, n_dec, max_len));
    }
    free(row_of_seq);
    free(ri_of_row);
    STATUS_TRY(cst);
  }
  const cascade_args *cascade = ctx->cascade.n_items ? &ctx->cascade : nullptr;
  int bucket = decode && !cascade ? bucket_for(ctx, n_rows) : 0;
  for (int i = n_rows; i < bucket; i++)
    ms->rows[i] = row_info{0, 0, ctx->n_tables, 0};

  cudaStream_t st = ctx->stream;
  if (n_patches) {
    if (n_patches > ctx->d_patch_cap) {
      cudaFree(ctx->d_patches);
      ctx->d_patches = nullptr;
      ctx->d_patch_cap = 0;
      CUDA_TRY(cudaMalloc(&ctx->d_patches, (size_t)ms->patch_cap * sizeof(int2)));
      ctx->d_patch_cap = ms->patch_cap;
    }
    CUDA_TRY(cudaMemcpyAsync(ctx->d_patches, ms->patches, (size_t)n_patches * sizeof(int2), cudaMemcpyHostToDevice, st));
    launch_scatter(ctx->d_tables, ctx->d_patches, n_patches, st);
  }
  CUDA_TRY(cudaMemcpyAsync(ctx->d_rows, ms->rows, (size_t)(bucket ? bucket : n_rows) * sizeof(row_info),
                           cudaMemcpyHostToDevice, st));
  if (!logit_identity)
    CUDA_TRY(cudaMemcpyAsync(ctx->d_logit_src, ms->logit_src, (size_t)lr * sizeof(int), cudaMemcpyHostToDevice, st));
  if (!dec_identity)
    CUDA_TRY(cudaMemcpyAsync(ctx->d_decode_rows, ms->decode_rows, (size_t)n_dec * sizeof(int), cudaMemcpyHostToDevice, st));
  if (n_items)
    CUDA_TRY(cudaMemcpyAsync(ctx->d_items, ms->items, (size_t)n_items * sizeof(prefill_item), cudaMemcpyHostToDevice, st));
  CUDA_TRY(cudaEventRecord(ms->done, st));
  if (cascade)
    STATUS_TRY(cuda_cascade_upload(ctx, n_dec));

  ctx->last_bucket = bucket;
  ctx->last_decode_rows = decode && dec_identity && logit_identity ? n_rows : 0;
  ctx->last_splits = splits_for(ctx, n_dec, max_len);
  if (bucket) {
    STATUS_TRY(run_graph(ctx, bucket));
  } else {
    step_plan sp = {n_rows, lr, logit_identity ? nullptr : ctx->d_logit_src, n_dec,
                    dec_identity ? nullptr : ctx->d_decode_rows, n_items, ctx->last_splits, cascade};
    STATUS_TRY(run_layers(ctx, &sp));
  }
  CUDA_TRY(cudaGetLastError());
  ctx->n_logit_rows = n_logit_rows;
  return YAIE_OK;
}

yaie_status cuda_forward(void *impl, const yaie_batch *b, int n_rows, int n_logit_rows) {
  return cuda_forward_until((cuda_context *)impl, b, n_rows, n_logit_rows, nullptr);
}

yaie_status cuda_forward_again(cuda_context *ctx) {
  int n = ctx->last_decode_rows;
  if (!n)
    return cuda_fail(YAIE_ERR_STATE, "device cuda: the last step was not a decode step to run again");
  if (ctx->last_bucket)
    return run_graph(ctx, ctx->last_bucket);
  step_plan sp = {n, n, nullptr, n, nullptr, 0, ctx->last_splits, ctx->cascade.n_items ? &ctx->cascade : nullptr};
  return run_layers(ctx, &sp);
}

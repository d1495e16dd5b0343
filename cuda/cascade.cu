// Cascade groups on the GPU, the host side: from the batch's groups (checked by libyaie) to the
// tiles the cascade kernel takes, the (row, decode index) pair and level of every member, and
// the number of part slots per (row, head) that the rows kernel and the merge use.
#include <string.h>

#include "context.cuh"

#define CASCADE_MAX_PARTS 32 // the merge takes at most this many parts (ROWS_MAX_SPLITS)

static yaie_status cascade_room(cuda_context *ctx, int n_items, int n_pairs, int n_dec) {
  STATUS_TRY(grow_pair((void **)&ctx->h_citems, (void **)&ctx->d_citems, &ctx->citems_cap, (size_t)n_items,
                       sizeof(cascade_item)));
  STATUS_TRY(grow_pair((void **)&ctx->h_cmem, (void **)&ctx->d_cmem, &ctx->cmem_cap, (size_t)n_pairs, sizeof(int2)));
  return grow_pair((void **)&ctx->h_cint, (void **)&ctx->d_cint, &ctx->cint_cap, (size_t)n_pairs + n_dec, sizeof(int));
}

yaie_status cuda_cascade_plan(cuda_context *ctx, const yaie_batch *b, row_info *rows, const int *row_of_seq,
                              const int *ri_of_row, const int *seq_table, int n_dec, int own_splits) {
  ctx->cascade.n_items = 0;
  if (b->n_groups < 1 || !attention_prefill_supported(ctx->c.head_dim))
    return YAIE_OK;
  if (!ctx->cascade_done)
    CUDA_TRY(cudaEventCreateWithFlags(&ctx->cascade_done, cudaEventDisableTiming));
  CUDA_TRY(cudaEventSynchronize(ctx->cascade_done)); // the last step's staging has been copied
  const int group = ctx->c.n_heads / ctx->c.n_kv_heads;
  int n_pairs = 0, n_items = 0, max_len = 0;
  for (int g = 0; g < b->n_groups; g++) {
    n_pairs += b->groups[g].n_rows;
    n_items += (b->groups[g].n_rows * group + CASCADE_TILE - 1) / CASCADE_TILE;
    if (b->groups[g].end - b->groups[g].start > max_len)
      max_len = b->groups[g].end - b->groups[g].start;
  }
  STATUS_TRY(cascade_room(ctx, n_items, n_pairs, n_dec));
  int *levels = ctx->h_cint, *row_levels = ctx->h_cint + n_pairs;
  memset(row_levels, 0, (size_t)n_dec * sizeof(int));
  int pair = 0, item = 0, max_levels = 0;
  for (int g = 0; g < b->n_groups; g++) {
    const yaie_group *gr = &b->groups[g];
    for (int j = 0; j < gr->n_rows; j++, pair++) {
      int s = gr->rows[j], row = row_of_seq[s], ri = ri_of_row[row];
      // Its level: how many of the member's groups start before this one (they tile [0, e)).
      int level = 0;
      for (int h = 0; h < b->n_groups; h++)
        for (int k = 0; k < b->groups[h].n_rows; k++)
          level += b->groups[h].rows[k] == s && b->groups[h].start < gr->start;
      ctx->h_cmem[pair] = make_int2(row, ri);
      levels[pair] = level;
      row_levels[ri]++;
      if (row_levels[ri] > max_levels)
        max_levels = row_levels[ri];
      if (gr->end > rows[row].pad)
        rows[row].pad = gr->end; // its own part starts after its groups
    }
    int off = pair - gr->n_rows;
    for (int q0 = 0; q0 < gr->n_rows * group; q0 += CASCADE_TILE)
      ctx->h_citems[item++] = cascade_item{gr->start, gr->end, off, gr->n_rows, q0, seq_table[gr->rows[0]], {0, 0}};
  }
  // Parts of the shared positions: enough blocks to fill the GPU twice, at least 256 keys each.
  long blocks = (long)n_items * ctx->c.n_kv_heads;
  int gsplits = (int)((2L * ctx->sms + blocks - 1) / blocks);
  int by_len = (max_len + 255) / 256;
  if (gsplits > by_len)
    gsplits = by_len;
  while (gsplits > 1 && max_levels * gsplits > CASCADE_MAX_PARTS / 2)
    gsplits--;
  if (gsplits < 1)
    gsplits = 1;
  int n_splits = own_splits;
  if (n_splits + max_levels * gsplits > CASCADE_MAX_PARTS)
    n_splits = CASCADE_MAX_PARTS - max_levels * gsplits;
  if (n_splits < 1)
    return cuda_fail(YAIE_ERR_ARG, "device cuda: a row in %d cascade levels, more than the merge takes", max_levels);
  int n_parts = n_splits + max_levels * gsplits;
  size_t need = (size_t)n_dec * ctx->c.n_heads * n_parts;
  if (need > ctx->c_cap) {
    cudaFree(ctx->c_acc);
    cudaFree(ctx->c_ml);
    ctx->c_acc = ctx->c_ml = nullptr;
    ctx->c_cap = 0;
    CUDA_TRY(cudaMalloc(&ctx->c_acc, need * ctx->c.head_dim * sizeof(float)));
    CUDA_TRY(cudaMalloc(&ctx->c_ml, need * 2 * sizeof(float)));
    ctx->c_cap = need;
  }
  ctx->cascade = cascade_args{ctx->d_citems, n_items, ctx->d_cmem, ctx->d_cint, ctx->d_cint + n_pairs,
                              n_splits, gsplits, n_parts, ctx->c_acc, ctx->c_ml};
  return YAIE_OK;
}

yaie_status cuda_cascade_upload(cuda_context *ctx, int n_dec) {
  const cascade_args &c = ctx->cascade;
  if (!c.n_items)
    return YAIE_OK;
  int n_pairs = (int)(c.row_levels - c.levels);
  cudaStream_t s = ctx->stream;
  CUDA_TRY(cudaMemcpyAsync(ctx->d_citems, ctx->h_citems, (size_t)c.n_items * sizeof(cascade_item),
                           cudaMemcpyHostToDevice, s));
  CUDA_TRY(cudaMemcpyAsync(ctx->d_cmem, ctx->h_cmem, (size_t)n_pairs * sizeof(int2), cudaMemcpyHostToDevice, s));
  CUDA_TRY(cudaMemcpyAsync(ctx->d_cint, ctx->h_cint, (size_t)(n_pairs + n_dec) * sizeof(int), cudaMemcpyHostToDevice,
                           s));
  CUDA_TRY(cudaEventRecord(ctx->cascade_done, s));
  return YAIE_OK;
}

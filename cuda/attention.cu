// Attention for one query row at a time: the decode step (one new token per sequence), and the
// fallback for head sizes the tensor-core prefill kernel does not take. A block handles one row,
// one KV head with up to 8 of its query heads (GQA: the K/V read once serves the group), and one
// part of the KV length; a second kernel merges the parts (flash-decoding), so a single long
// sequence still fills the GPU.
//
// Per tile of 128 keys: each thread scores one key against the group's queries (its K row read
// as 16-byte words), the tile's softmax statistics update the running max and sum, then threads
// split as (8-element chunk of head_dim) x (key stripe) accumulate P.V, each reading V in
// 16-byte words; the stripes are summed through shared memory at the end.
#include <math.h>

#include "kernels.cuh"

#define ROWS_THREADS 128
// Blocks a multiprocessor must hold: it caps the registers (128 a thread) of the kernels that
// would take more (the 128-wide head with 4 query heads took 154, 3 blocks). Measured on an H100,
// 8B shape, 640 positions (`kbench`): KV read at 2,300 GB/s at batch 256 with 4 against 1,980
// with the uncapped kernel, 1,635 against 1,440 at batch 64; 5 (93 registers) and 6 or 8 (which
// spill) were no better than uncapped. Batch 1 is latency-bound and unchanged.
#define ROWS_MIN_BLOCKS 4
#define ROWS_TILE 128
#define ROWS_GMAX 8
#define ROWS_MAX_SPLITS 32 // parts of one row's KV length; the merge takes their weights in one warp

// HD: the head size (0: any multiple of 8 up to 256, read at run time); GM: the most query heads
// a block serves (the group, rounded up to a power of two, at most 8). Both fixed at compile time
// let the loops over a K/V row unroll, so each thread has its 16-byte loads in flight together,
// and keep the accumulators (GM x 8 floats) in registers.
template <int HD, int GM>
__global__ void __launch_bounds__(ROWS_THREADS, ROWS_MIN_BLOCKS)
    attn_rows_kernel(attn_args a, const int *row_list, int n_splits, int n_parts, float *part_acc, float *part_ml) {
  constexpr int HDMAX = HD ? HD : 256;
  __shared__ float qs[GM][HDMAX];
  __shared__ float sc[GM][ROWS_TILE];
  __shared__ float red[ROWS_THREADS * GM * 8];
  __shared__ size_t vofs[ROWS_TILE]; // each tile key's V row, as an offset from the pool's base
  __shared__ float stat[2][GM];
  if (a.pdl_next)
    pdl_trigger();
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int hd = HD ? HD : a.head_dim, group = a.n_heads / a.n_kv_heads;
  const int subs = (group + GM - 1) / GM;
  const int kvh = blockIdx.x / subs, sub = blockIdx.x % subs;
  const int h0 = kvh * group + sub * GM;
  const int ng = min(GM, group - sub * GM);
  const int split = blockIdx.y, ri = blockIdx.z;
  const int row = row_list ? row_list[ri] : ri;
  const row_info info = a.rows[row];
  // Positions [first, pos]: first is 0, or where a cascade row's own part starts (row_info.pad).
  const int len = info.pos + 1, first = info.pad;
  const int *table = a.tables + (size_t)info.table * a.max_pages;
  const int ps = a.kv.page_size;
  int chunk = (len - first + n_splits - 1) / n_splits;
  chunk = (chunk + 15) & ~15;
  const int start = first + split * chunk, end = min(len, start + chunk);
  const int q_dim = a.n_heads * hd;
  const size_t v_delta = (size_t)a.kv.n_kv_heads * ps * hd; // V's block follows K's in a page

  const int chunks = hd / 8, n_str = ROWS_THREADS / chunks;
  for (int i = tid; i < ng * chunks; i += ROWS_THREADS) {
    int g = i / chunks, c = i % chunks;
    float f[8];
    bf16x8_to_float(*reinterpret_cast<const uint4 *>(a.q + (size_t)row * q_dim + (size_t)(h0 + g) * hd + c * 8), f);
#pragma unroll
    for (int e = 0; e < 8; e++)
      qs[g][c * 8 + e] = f[e] * a.scale;
  }
  const int my_chunk = tid % chunks, stripe = tid / chunks;
  float acc[GM][8], lsum[GM], m_run[GM];
#pragma unroll
  for (int g = 0; g < GM; g++) {
    lsum[g] = 0.0f;
    m_run[g] = -INFINITY;
#pragma unroll
    for (int e = 0; e < 8; e++)
      acc[g][e] = 0.0f;
  }
  __syncthreads();

  for (int t0 = start; t0 < end; t0 += ROWS_TILE) {
    const int tile_n = min(ROWS_TILE, end - t0);
    // Scores: thread tid takes key t0 + tid, its whole K row.
    float s[GM];
#pragma unroll
    for (int g = 0; g < GM; g++)
      s[g] = 0.0f;
    if (tid < tile_n) {
      int j = t0 + tid;
      size_t off = a.kv.offset(table[j / ps], a.layer, 0, kvh, j % ps);
      vofs[tid] = off + v_delta;
      const uint4 *k = reinterpret_cast<const uint4 *>(a.kv.base + off);
#pragma unroll
      for (int c = 0; c < (HD ? HD / 8 : chunks); c++) {
        float kf[8];
        bf16x8_to_float(k[c], kf);
#pragma unroll
        for (int g = 0; g < GM; g++) {
          if (g < ng) {
            const float *q = &qs[g][c * 8];
#pragma unroll
            for (int e = 0; e < 8; e++)
              s[g] += q[e] * kf[e];
          }
        }
      }
    }
#pragma unroll
    for (int g = 0; g < GM; g++)
      if (g < ng)
        sc[g][tid] = tid < tile_n ? s[g] : -INFINITY;
    __syncthreads();
    // The tile's max per head: warp w takes heads w, w + 4.
    for (int g = warp; g < ng; g += ROWS_THREADS / 32) {
      float mx = -INFINITY;
      for (int j = lane; j < ROWS_TILE; j += 32)
        mx = fmaxf(mx, sc[g][j]);
      mx = warp_max(mx);
      if (lane == 0)
        stat[0][g] = mx;
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < GM; g++) {
      if (g < ng) {
        float m_new = fmaxf(m_run[g], stat[0][g]);
        float alpha = __expf(m_run[g] - m_new); // 0 on the first tile (m_run = -inf)
        m_run[g] = m_new;
        float p = tid < tile_n ? __expf(sc[g][tid] - m_new) : 0.0f;
        lsum[g] = lsum[g] * alpha + p;
        sc[g][tid] = p;
#pragma unroll
        for (int e = 0; e < 8; e++)
          acc[g][e] *= alpha;
      }
    }
    __syncthreads();
    // P.V: this thread's 8-element chunk of head_dim over its stripe of the tile's keys, 8 V loads
    // in flight (unrolled by 2, 4, 8, 16: 2,138, 2,303, 2,481, 2,380 GB/s of K/V at batch 256 for
    // the 8B shape, H100 `kbench`).
    if (stripe < n_str) {
#pragma unroll 8
      for (int jj = stripe; jj < tile_n; jj += n_str) {
        float vf[8];
        bf16x8_to_float(*reinterpret_cast<const uint4 *>(a.kv.base + vofs[jj] + my_chunk * 8), vf);
#pragma unroll
        for (int g = 0; g < GM; g++) {
          if (g < ng) {
            float p = sc[g][jj];
#pragma unroll
            for (int e = 0; e < 8; e++)
              acc[g][e] += p * vf[e];
          }
        }
      }
    }
    __syncthreads();
  }

  // Sum the stripes' accumulators, and the threads' partial sums of p.
  if (stripe < n_str) {
#pragma unroll
    for (int g = 0; g < GM; g++)
      if (g < ng)
#pragma unroll
        for (int e = 0; e < 8; e++)
          red[(stripe * GM + g) * hd + my_chunk * 8 + e] = acc[g][e];
  }
#pragma unroll
  for (int g = 0; g < GM; g++) {
    float l = warp_sum(lsum[g]);
    if (lane == 0 && g < ng)
      sc[g][warp] = l;
    if (tid == 0 && g < ng)
      stat[1][g] = m_run[g]; // the same in every thread
  }
  __syncthreads();
  for (int i = tid; i < ng * hd; i += ROWS_THREADS) {
    int g = i / hd, d = i % hd;
    float o = 0.0f;
    for (int st = 0; st < n_str; st++)
      o += red[(st * GM + g) * hd + d];
    float l = 0.0f;
    for (int w = 0; w < ROWS_THREADS / 32; w++)
      l += sc[g][w];
    int h = h0 + g;
    if (n_parts == 1) {
      a.out[(size_t)row * q_dim + (size_t)h * hd + d] = __float2bfloat16(o / l);
    } else {
      size_t part = ((size_t)ri * a.n_heads + h) * n_parts + split;
      part_acc[part * hd + d] = o;
      if (d == 0) {
        part_ml[part * 2] = start < end ? stat[1][g] : -INFINITY;
        part_ml[part * 2 + 1] = l;
      }
    }
  }
}

// Merges the parts of each (row, head): out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.
// The first warp reads every part's (m, l) at once and leaves the weights in shared memory, and the
// loop over parts has no branch around its loads, so they are all in flight together. (A loop that
// skipped empty parts with a branch waited one cache round trip per part: an 8B decode of one
// sequence over 32 parts spent 21.3 µs a layer in attention and merge with it, 16.8 without.
// Merging in the rows kernel's last block to finish, with an atomic counter, measured slower in
// both sessions: cuda/NOTES.md.) The sums run in the order of the loop this
// replaced, part by part, so the results are bit for bit the same. Needs blockDim.x >= 32.
// Cascade rows (row_levels not NULL) merge n_parts slots of which the first n_splits + their
// levels x gsplits hold parts.
__global__ void attn_combine_kernel(attn_args a, const int *row_list, int n_splits, const float *part_acc,
                                    const float *part_ml, int n_parts, const int *row_levels, int gsplits) {
  __shared__ float wgt[ROWS_MAX_SPLITS], lpart[ROWS_MAX_SPLITS];
  __shared__ float l_total;
  if (a.pdl_next)
    pdl_trigger();
  int h = blockIdx.x, ri = blockIdx.y, hd = a.head_dim;
  int row = row_list ? row_list[ri] : ri;
  size_t base = ((size_t)ri * a.n_heads + h) * n_parts;
  const int valid = row_levels ? n_splits + row_levels[ri] * gsplits : n_splits;
  if (threadIdx.x < 32) {
    int sp = threadIdx.x;
    float ms = sp < valid ? part_ml[(base + sp) * 2] : -INFINITY;
    float ls = sp < valid ? part_ml[(base + sp) * 2 + 1] : 0.0f;
    float m = warp_max(ms);
    float wv = ms == -INFINITY ? 0.0f : __expf(ms - m); // an empty part weighs nothing
    wgt[sp] = wv;
    lpart[sp] = ls;
    __syncwarp();
    if (sp == 0) {
      float l = 0.0f;
      for (int i = 0; i < valid; i++)
        l += wgt[i] * lpart[i];
      l_total = l;
    }
  }
  __syncthreads();
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.0f;
#pragma unroll
    for (int sp = 0; sp < ROWS_MAX_SPLITS; sp++)
      if (sp < valid)
        o += wgt[sp] * part_acc[(base + sp) * hd + d];
    a.out[(size_t)row * a.n_heads * hd + (size_t)h * hd + d] = __float2bfloat16(o / l_total);
  }
}

static int heads_per_block(int group) { return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : ROWS_GMAX; }

int attention_rows_splits(int n_rows, int n_kv_heads, int group, int sms, int max_len) {
  int gm = heads_per_block(group);
  long blocks = (long)n_rows * n_kv_heads * ((group + gm - 1) / gm);
  if (blocks < 1)
    return 1;
  long want = (4L * sms + blocks - 1) / blocks;
  long by_len = (max_len + 63) / 64; // at least 64 keys a part
  long n = want < by_len ? want : by_len;
  return (int)(n < 1 ? 1 : n > ROWS_MAX_SPLITS ? ROWS_MAX_SPLITS : n);
}

struct rows_launch {
  const int *row_list;
  int n, n_splits, n_parts;
  float *part_acc, *part_ml;
};

template <int HD, int GM> static void launch_rows(const attn_args &a, const rows_launch &r, cudaStream_t s) {
  int group = a.n_heads / a.n_kv_heads;
  dim3 grid(a.n_kv_heads * ((group + GM - 1) / GM), r.n_splits, r.n);
  attn_rows_kernel<HD, GM><<<grid, ROWS_THREADS, 0, s>>>(a, r.row_list, r.n_splits, r.n_parts, r.part_acc,
                                                         r.part_ml);
}

template <int HD> static void launch_rows_hd(const attn_args &a, const rows_launch &r, cudaStream_t s) {
  switch (heads_per_block(a.n_heads / a.n_kv_heads)) {
  case 1: launch_rows<HD, 1>(a, r, s); break;
  case 2: launch_rows<HD, 2>(a, r, s); break;
  case 4: launch_rows<HD, 4>(a, r, s); break;
  default: launch_rows<HD, ROWS_GMAX>(a, r, s); break;
  }
}

static void launch_rows_parts(const attn_args &a, const rows_launch &r, const int *row_levels, int gsplits,
                              cudaStream_t s) {
  if (r.n < 1)
    return;
  if (a.head_dim == 64)
    launch_rows_hd<64>(a, r, s);
  else if (a.head_dim == 128)
    launch_rows_hd<128>(a, r, s);
  else
    launch_rows_hd<0>(a, r, s);
  if (r.n_parts > 1) { // a warp at least (the merge's first warp reads the parts' weights), 128 at most
    int threads = a.head_dim >= 128 ? 128 : (a.head_dim + 31) / 32 * 32;
    attn_combine_kernel<<<dim3(a.n_heads, r.n), threads, 0, s>>>(a, r.row_list, r.n_splits, r.part_acc, r.part_ml,
                                                                 r.n_parts, row_levels, gsplits);
  }
}

void launch_attention_rows(const attn_args &a, const int *row_list, int n, int n_splits, float *part_acc,
                           float *part_ml, cudaStream_t s) {
  launch_rows_parts(a, rows_launch{row_list, n, n_splits, n_splits, part_acc, part_ml}, nullptr, 0, s);
}

void launch_attention_rows_cascade(const attn_args &a, const int *row_list, int n, const cascade_args &c,
                                   cudaStream_t s) {
  launch_rows_parts(a, rows_launch{row_list, n, c.n_splits, c.n_parts, c.part_acc, c.part_ml}, c.row_levels,
                    c.gsplits, s);
}

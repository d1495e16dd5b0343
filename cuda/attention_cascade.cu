// Cascade attention: the part of a group's shared prefix, once for all its members. A block takes
// 64 query vectors of one group and one KV head (members x the query heads of that KV head) and a
// part of the group's positions; K and V tiles are read once from the pages into shared memory
// and serve all 64 queries on tensor cores (the loop of attention_prefill.cu without the causal
// mask: every prefix position precedes every member's token). It leaves unnormalized partial
// results in the members' slots, which the merge of the rows' own parts folds in
// (launch_attention_rows_cascade).
#include <math.h>

#include "attention_tc.cuh"

template <int HD>
__global__ void __launch_bounds__(PF_THREADS) attn_cascade_kernel(attn_args a, cascade_args c) {
  constexpr int LD = HD + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16 *Qs = reinterpret_cast<bf16 *>(smem_raw); // then K0, V0, K1, V1
  auto k_buf = [&](int b) { return Qs + (PF_BM + 2 * b * PF_BN) * LD; };
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const cascade_item it = c.items[blockIdx.x];
  const int kvh = blockIdx.y, split = blockIdx.z, group = a.n_heads / a.n_kv_heads;
  const int q_dim = a.n_heads * HD;
  const int nq = min(PF_BM, it.n_members * group - it.q0);
  int chunk = (it.end - it.start + c.gsplits - 1) / c.gsplits;
  chunk = (chunk + PF_BN - 1) / PF_BN * PF_BN;
  const int k_begin = it.start + split * chunk, k_end = min(it.end, k_begin + chunk);
  const int *table = a.tables + (size_t)it.table * a.max_pages;

  // Query vector v = q0 + r is member v / group's query head kvh * group + v % group.
  for (int i = tid; i < PF_BM * (HD / 8); i += PF_THREADS) {
    int r = i / (HD / 8), ch = i % (HD / 8), v = it.q0 + min(r, nq - 1);
    int row = c.members[it.member_off + v / group].x, h = kvh * group + v % group;
    cp_async16(Qs + r * LD + ch * 8, a.q + (size_t)row * q_dim + (size_t)h * HD + ch * 8, r < nq ? 16 : 0);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[HD / 16][4];
#pragma unroll
  for (int kk = 0; kk < HD / 16; kk++)
    ldmatrix_x4(qf[kk], Qs + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);

  float o[HD / 8][4];
#pragma unroll
  for (int i = 0; i < HD / 8; i++)
    o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  const float sl2 = a.scale * 1.4426950408889634f;
  if (k_begin < k_end) {
    load_kv_tile<HD, LD>(k_buf(0), a, table, kvh, 0, k_begin, k_end);
    load_kv_tile<HD, LD>(k_buf(0) + PF_BN * LD, a, table, kvh, 1, k_begin, k_end);
    cp_async_commit();
  }
  for (int k0 = k_begin, buf = 0; k0 < k_end; k0 += PF_BN, buf ^= 1) {
    const bf16 *Ks = k_buf(buf), *Vs = Ks + PF_BN * LD;
    if (k0 + PF_BN < k_end) {
      load_kv_tile<HD, LD>(k_buf(buf ^ 1), a, table, kvh, 0, k0 + PF_BN, k_end);
      load_kv_tile<HD, LD>(k_buf(buf ^ 1) + PF_BN * LD, a, table, kvh, 1, k0 + PF_BN, k_end);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    attend_tile<HD, LD>(Ks, Vs, qf, o, m0, m1, l0, l1, k0, sl2, [&](int key, int) { return key < k_end; });
    __syncthreads();
  }

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  // The partials, in natural-log units as the rows kernel leaves its own (m * ln 2).
#pragma unroll
  for (int half = 0; half < 2; half++) {
    int r = warp * 16 + g + half * 8;
    if (r >= nq)
      continue;
    int v = it.q0 + r, pair = it.member_off + v / group, h = kvh * group + v % group;
    int ri = c.members[pair].y, slot = c.n_splits + c.levels[pair] * c.gsplits + split;
    size_t part = ((size_t)ri * a.n_heads + h) * c.n_parts + slot;
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) {
      int d = nt * 8 + 2 * t;
      c.part_acc[part * HD + d] = o[nt][half * 2];
      c.part_acc[part * HD + d + 1] = o[nt][half * 2 + 1];
    }
    if (t == 0) {
      float m = half ? m1 : m0;
      c.part_ml[part * 2] = m == -INFINITY ? -INFINITY : m * 0.6931471805599453f;
      c.part_ml[part * 2 + 1] = half ? l1 : l0;
    }
  }
}

template <int HD> static void launch_cascade_hd(const attn_args &a, const cascade_args &c, cudaStream_t s) {
  constexpr int LD = HD + 8;
  size_t smem = (size_t)(PF_BM + 4 * PF_BN) * LD * sizeof(bf16);
  static bool configured = false; // per function and device; one GPU per process
  if (!configured) {
    cudaFuncSetAttribute(attn_cascade_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    configured = true;
  }
  attn_cascade_kernel<HD><<<dim3(c.n_items, a.n_kv_heads, c.gsplits), PF_THREADS, smem, s>>>(a, c);
}

void launch_attention_cascade(const attn_args &a, const cascade_args &c, cudaStream_t s) {
  if (c.n_items < 1)
    return;
  if (a.head_dim == 64)
    launch_cascade_hd<64>(a, c, s);
  else
    launch_cascade_hd<128>(a, c, s);
}

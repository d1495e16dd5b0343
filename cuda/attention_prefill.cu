// Attention for prefill chunks on tensor cores (FlashAttention-2 style, mma.sync bf16): one block
// of 4 warps takes 64 query rows of one chunk and one head; each warp owns 16 rows. Tiles of 64
// keys' K and V are gathered from the KV pages into shared memory with cp.async, double-buffered
// (the next tile loads while this one computes), S = Q K^T runs on tensor cores, the online
// softmax keeps each row's max and sum in registers, and P (rounded to bf16) times V accumulates
// into fp32 registers.
// Keys run from position 0 (the cached prefix) to the chunk's last query, causally masked.
#include <math.h>

#include "attention_tc.cuh"

template <int HD>
__global__ void __launch_bounds__(PF_THREADS) attn_prefill_kernel(attn_args a, const prefill_item *items) {
  constexpr int LD = HD + 8; // padded rows: ldmatrix's 8 row addresses fall in distinct banks
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16 *Qs = reinterpret_cast<bf16 *>(smem_raw); // then K0, V0, K1, V1
  auto k_buf = [&](int b) { return Qs + (PF_BM + 2 * b * PF_BN) * LD; };
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const prefill_item it = items[blockIdx.x];
  const int h = blockIdx.y, kvh = h / (a.n_heads / a.n_kv_heads);
  const int q_dim = a.n_heads * HD;
  const int nq = min(PF_BM, it.n_tokens - it.q0);
  const int n_keys = it.pos0 + it.q0 + nq; // the last query sees keys [0, n_keys)
  const int *table = a.tables + (size_t)it.table * a.max_pages;

  // Q tile (rows past the chunk are zeros), then each warp's 16 rows into A fragments.
  for (int i = tid; i < PF_BM * (HD / 8); i += PF_THREADS) {
    int r = i / (HD / 8), c = i % (HD / 8);
    const bf16 *src = a.q + (size_t)(it.row0 + it.q0 + min(r, nq - 1)) * q_dim + (size_t)h * HD + c * 8;
    cp_async16(Qs + r * LD + c * 8, src, r < nq ? 16 : 0);
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
  const int qpos0 = it.pos0 + it.q0 + warp * 16 + g, qpos1 = qpos0 + 8;
  const float sl2 = a.scale * 1.4426950408889634f; // scores in log2 units for exp2f

  load_kv_tile<HD, LD>(k_buf(0), a, table, kvh, 0, 0, n_keys);
  load_kv_tile<HD, LD>(k_buf(0) + PF_BN * LD, a, table, kvh, 1, 0, n_keys);
  cp_async_commit();
  for (int k0 = 0, buf = 0; k0 < n_keys; k0 += PF_BN, buf ^= 1) {
    const bf16 *Ks = k_buf(buf), *Vs = Ks + PF_BN * LD;
    if (k0 + PF_BN < n_keys) { // prefetch the next tile into the other buffer
      load_kv_tile<HD, LD>(k_buf(buf ^ 1), a, table, kvh, 0, k0 + PF_BN, n_keys);
      load_kv_tile<HD, LD>(k_buf(buf ^ 1) + PF_BN * LD, a, table, kvh, 1, k0 + PF_BN, n_keys);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    attend_tile<HD, LD>(Ks, Vs, qf, o, m0, m1, l0, l1, k0, sl2,
                        [&](int key, int half) { return key <= (half ? qpos1 : qpos0) && key < n_keys; });
    __syncthreads(); // every warp is done with this buffer before it is refilled
  }

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const int r0 = warp * 16 + g, r1 = r0 + 8;
  float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
#pragma unroll
  for (int nt = 0; nt < HD / 8; nt++) {
    int d = nt * 8 + 2 * t;
    if (r0 < nq)
      *reinterpret_cast<__nv_bfloat162 *>(a.out + (size_t)(it.row0 + it.q0 + r0) * q_dim + (size_t)h * HD + d) =
          __floats2bfloat162_rn(o[nt][0] * inv0, o[nt][1] * inv0);
    if (r1 < nq)
      *reinterpret_cast<__nv_bfloat162 *>(a.out + (size_t)(it.row0 + it.q0 + r1) * q_dim + (size_t)h * HD + d) =
          __floats2bfloat162_rn(o[nt][2] * inv1, o[nt][3] * inv1);
  }
}

bool attention_prefill_supported(int head_dim) { return head_dim == 64 || head_dim == 128; }

template <int HD> static void launch_hd(const attn_args &a, const prefill_item *items, int n_items, cudaStream_t s) {
  constexpr int LD = HD + 8;
  size_t smem = (size_t)(PF_BM + 4 * PF_BN) * LD * sizeof(bf16);
  static bool configured = false; // the attribute is per function, per device; one GPU per process
  if (!configured) {
    cudaFuncSetAttribute(attn_prefill_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    configured = true;
  }
  attn_prefill_kernel<HD><<<dim3(n_items, a.n_heads), PF_THREADS, smem, s>>>(a, items);
}

void launch_attention_prefill(const attn_args &a, const prefill_item *items, int n_items, cudaStream_t s) {
  if (a.head_dim == 64)
    launch_hd<64>(a, items, n_items, s);
  else
    launch_hd<128>(a, items, n_items, s);
}

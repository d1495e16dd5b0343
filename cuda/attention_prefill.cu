// Attention for prefill chunks on tensor cores (FlashAttention-2 style, mma.sync bf16): one block
// of 4 warps takes 64 query rows of one chunk and one head; each warp owns 16 rows. Tiles of 64
// keys' K and V are gathered from the KV pages into shared memory with cp.async, double-buffered
// (the next tile loads while this one computes), S = Q K^T runs on tensor cores, the online
// softmax keeps each row's max and sum in registers, and P (rounded to bf16) times V accumulates
// into fp32 registers.
// Keys run from position 0 (the cached prefix) to the chunk's last query, causally masked.
#include <math.h>

#include "kernels.cuh"

#define PF_BM 64
#define PF_BN 64
#define PF_THREADS 128

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t *r, const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t *r, const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void mma_bf16(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 16 bytes global -> shared; bytes == 0 writes zeros (rows past the last key).
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

// Gathers keys [k0, k0 + 64) of one KV head (K or V) into a [64][LD] tile.
template <int HD, int LD>
__device__ __forceinline__ void load_kv_tile(bf16 *tile, const attn_args &a, const int *table, int kvh, int is_v,
                                             int k0, int n_keys) {
  constexpr int CHUNKS = HD / 8;
  for (int i = threadIdx.x; i < PF_BN * CHUNKS; i += PF_THREADS) {
    int j = i / CHUNKS, c = i % CHUNKS, key = k0 + j;
    const bf16 *src = a.kv.base;
    int bytes = 0;
    if (key < n_keys) {
      src = a.kv.base + a.kv.offset(table[key / a.kv.page_size], a.layer, is_v, kvh, key % a.kv.page_size) + c * 8;
      bytes = 16;
    }
    cp_async16(tile + j * LD + c * 8, src, bytes);
  }
}

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

    float s[PF_BN / 8][4];
#pragma unroll
    for (int i = 0; i < PF_BN / 8; i++)
      s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
#pragma unroll
      for (int nb = 0; nb < PF_BN / 16; nb++) {
        uint32_t b[4];
        ldmatrix_x4(b, Ks + (nb * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        mma_bf16(s[2 * nb], qf[kk], b[0], b[1]);
        mma_bf16(s[2 * nb + 1], qf[kk], b[2], b[3]);
      }
    }
    // Scale, mask (causal, and keys past the end), and the rows' new maxima.
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < PF_BN / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int key = k0 + nt * 8 + 2 * t + (e & 1);
        int qpos = e < 2 ? qpos0 : qpos1;
        float v = (key > qpos || key >= n_keys) ? -INFINITY : s[nt][e] * sl2;
        s[nt][e] = v;
        if (e < 2)
          mx0 = fmaxf(mx0, v);
        else
          mx1 = fmaxf(mx1, v);
      }
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    // A row whose keys in this tile are all masked keeps its state (its max stays -inf only if
    // every key so far was masked, which cannot happen: key 0 is always visible).
    float al0 = mn0 == -INFINITY ? 1.0f : exp2f(m0 - mn0), al1 = mn1 == -INFINITY ? 1.0f : exp2f(m1 - mn1);
    m0 = mn0;
    m1 = mn1;
    float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < PF_BN / 8; nt++) {
      s[nt][0] = mn0 == -INFINITY ? 0.0f : exp2f(s[nt][0] - mn0);
      s[nt][1] = mn0 == -INFINITY ? 0.0f : exp2f(s[nt][1] - mn0);
      s[nt][2] = mn1 == -INFINITY ? 0.0f : exp2f(s[nt][2] - mn1);
      s[nt][3] = mn1 == -INFINITY ? 0.0f : exp2f(s[nt][3] - mn1);
      rs0 += s[nt][0] + s[nt][1];
      rs1 += s[nt][2] + s[nt][3];
    }
    l0 = l0 * al0 + rs0;
    l1 = l1 * al1 + rs1;
#pragma unroll
    for (int i = 0; i < HD / 8; i++) {
      o[i][0] *= al0;
      o[i][1] *= al0;
      o[i][2] *= al1;
      o[i][3] *= al1;
    }

#pragma unroll
    for (int kc = 0; kc < PF_BN / 16; kc++) {
      uint32_t pa[4] = {pack_bf16(s[2 * kc][0], s[2 * kc][1]), pack_bf16(s[2 * kc][2], s[2 * kc][3]),
                        pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]), pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int dn = 0; dn < HD / 16; dn++) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, Vs + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dn * 16 + (lane >> 4) * 8);
        mma_bf16(o[2 * dn], pa, b[0], b[1]);
        mma_bf16(o[2 * dn + 1], pa, b[2], b[3]);
      }
    }
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

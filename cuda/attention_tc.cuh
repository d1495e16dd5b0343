// Tensor-core building blocks of the attention kernels that work on tiles of 64 queries
// (attention_prefill.cu, attention_cascade.cu): ldmatrix, mma.sync bf16, cp.async, and the
// gather of a tile of 64 keys' K or V from the KV pages into shared memory.
#pragma once

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

// One tile of 64 keys (K and V in shared memory) for a warp's 16 query rows (A fragments qf): S =
// Q K^T on tensor cores, scores of the keys visible(key, half) allows (half 0: the warp's rows g,
// 1: rows g + 8) scaled into log2 units, the online softmax's max (m0, m1) and sum (l0, l1, this
// thread's share), and O += P V with P rounded to bf16.
template <int HD, int LD, typename Visible>
__device__ __forceinline__ void attend_tile(const bf16 *Ks, const bf16 *Vs, const uint32_t (&qf)[HD / 16][4],
                                            float (&o)[HD / 8][4], float &m0, float &m1, float &l0, float &l1, int k0,
                                            float sl2, Visible visible) {
  const int lane = threadIdx.x & 31, t = lane & 3;
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
    // Scale, mask (keys the rows do not see), and the rows' new maxima.
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < PF_BN / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int key = k0 + nt * 8 + 2 * t + (e & 1);
        float v = visible(key, e >= 2) ? s[nt][e] * sl2 : -INFINITY;
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
    // A row whose keys in this tile are all masked keeps its state (its max stays -inf only while
    // every key so far was masked).
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
}

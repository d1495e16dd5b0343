// After the QKV projection, one pass per row: bias (Qwen2), Q/K RMSNorm per head (Qwen3), RoPE
// in either layout (llama3 scaling is already in inv_freq), then Q out for attention and K, V
// into the row's slot of its KV page. A warp takes one head through shared memory, since the half
// layout pairs elements head_dim / 2 apart; blockIdx.y picks the block's heads, so that a decode
// step of one sequence still spreads its heads over many multiprocessors.
#include "kernels.cuh"

#define QKV_WARPS 4
#define QKV_MAX_HEAD_DIM 256

__global__ void __launch_bounds__(QKV_WARPS * 32) qkv_rope_kernel(qkv_args a) {
  __shared__ float buf[QKV_WARPS][QKV_MAX_HEAD_DIM];
  int r = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  row_info info = a.rows[r];
  int hd = a.head_dim, half = hd / 2;
  int q_dim = a.n_heads * hd, qkv_dim = q_dim + 2 * a.n_kv_heads * hd;
  const bf16 *src = a.qkv + (size_t)r * qkv_dim;
  int page = a.tables[(size_t)info.table * a.max_pages + info.pos / a.kv.page_size];
  int slot = info.pos % a.kv.page_size;
  float *v = buf[warp];
  for (int hh = blockIdx.y * QKV_WARPS + warp; hh < a.n_heads + 2 * a.n_kv_heads; hh += gridDim.y * QKV_WARPS) {
    int kind = hh < a.n_heads ? 0 : hh < a.n_heads + a.n_kv_heads ? 1 : 2; // Q, K, V
    int off = hh * hd;
    for (int d = lane; d < hd; d += 32)
      v[d] = __bfloat162float(src[off + d]) + (a.bias ? a.bias[off + d] : 0.0f);
    __syncwarp();
    if (kind < 2) {
      const float *nw = kind == 0 ? a.q_norm : a.k_norm;
      if (nw) {
        float ss = 0.0f;
        for (int d = lane; d < hd; d += 32)
          ss += v[d] * v[d];
        float scale = rsqrtf(warp_sum(ss) / (float)hd + a.eps);
        for (int d = lane; d < hd; d += 32)
          v[d] = nw[d] * (scale * v[d]);
        __syncwarp();
      }
      for (int i = lane; i < half; i += 32) {
        float sn, cs;
        sincosf((float)info.pos * a.inv_freq[i], &sn, &cs);
        int ia = a.rope_layout == YAIE_ROPE_HALF ? i : 2 * i, ib = a.rope_layout == YAIE_ROPE_HALF ? i + half : 2 * i + 1;
        float v0 = v[ia], v1 = v[ib];
        v[ia] = v0 * cs - v1 * sn;
        v[ib] = v0 * sn + v1 * cs;
      }
      __syncwarp();
    }
    bf16 *dst;
    if (kind == 0)
      dst = a.q_out + (size_t)r * q_dim + off;
    else
      dst = a.kv.base + a.kv.offset(page, a.layer, kind - 1, hh - a.n_heads - (kind - 1) * a.n_kv_heads, slot);
    for (int d = lane; d < hd; d += 32)
      dst[d] = __float2bfloat16(v[d]);
    __syncwarp();
  }
}

void launch_qkv_rope(const qkv_args &a, int n_rows, cudaStream_t s) {
  int head_blocks = ceil_div(a.n_heads + 2 * a.n_kv_heads, QKV_WARPS);
  // Enough blocks to fill the GPU, whatever the number of rows.
  int split = n_rows >= 256 ? 1 : head_blocks < 256 / n_rows ? head_blocks : 256 / n_rows;
  qkv_rope_kernel<<<dim3(n_rows, split < 1 ? 1 : split), QKV_WARPS * 32, 0, s>>>(a);
}

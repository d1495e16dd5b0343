// The memory-bound elementwise kernels: embedding gather, RMSNorm with the residual add fused
// in, SwiGLU, the fp32 -> bf16 conversion of weights, and the page-table patch.
#include "kernels.cuh"

__global__ void embed_kernel(float *x, const bf16 *emb, const row_info *rows, int dim) {
  int r = blockIdx.x;
  const bf16 *e = emb + (size_t)rows[r].token * dim;
  float *o = x + (size_t)r * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    o[i] = __bfloat162float(e[i]);
}

void launch_embed(float *x, const bf16 *emb, const row_info *rows, int n_rows, int dim, cudaStream_t s) {
  embed_kernel<<<n_rows, 256, 0, s>>>(x, emb, rows, dim);
}

// One block per output row. The residual stream x and the projections added to it (y) stay fp32:
// only the normed output, a GEMM input, is bf16. Thread t takes elements t, t + threads, ... (V of
// them, V fixed at compile time), loads them all (x, y and w) at once and keeps them in registers
// for the sum of squares and the output, so the kernel waits for memory once: at one row the norm
// is one block on one multiprocessor, and a loop that went back to memory for each element waited
// a round trip per iteration (the two norms of a layer of an 8B decode of one sequence: 13.4 µs
// with it, 5.8 with the loads together). Rows longer than V x threads take V = 0: that plain loop.
// Both sum in the same order, so their results are bit for bit the same.
template <int V>
__global__ void __launch_bounds__(512) add_rmsnorm_kernel(bf16 *out, float *x, const float *y, const float *w,
                                                          const int *src_rows, int dim, float eps, int pdl_next) {
  __shared__ float partial[32];
  if (pdl_next)
    pdl_trigger();
  int i = blockIdx.x, src = src_rows ? src_rows[i] : i;
  float *xr = x + (size_t)src * dim;
  const float *yr = y ? y + (size_t)src * dim : nullptr;
  float ss = 0.0f;
  float xv[V > 0 ? V : 1], wv[V > 0 ? V : 1];
  if constexpr (V > 0) {
    float yv[V];
#pragma unroll
    for (int j = 0; j < V; j++) {
      int d = threadIdx.x + j * blockDim.x;
      if (d < dim) {
        xv[j] = xr[d];
        wv[j] = w[d];
        yv[j] = yr ? yr[d] : 0.0f;
      }
    }
#pragma unroll
    for (int j = 0; j < V; j++) {
      int d = threadIdx.x + j * blockDim.x;
      if (d < dim) {
        if (yr) {
          xv[j] += yv[j];
          xr[d] = xv[j];
        }
        ss += xv[j] * xv[j];
      }
    }
  } else {
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
      float v = xr[d];
      if (yr) {
        v += yr[d];
        xr[d] = v;
      }
      ss += v * v;
    }
  }
  ss = warp_sum(ss);
  if ((threadIdx.x & 31) == 0)
    partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
    v = warp_sum(v);
    if (threadIdx.x == 0)
      partial[0] = rsqrtf(v / (float)dim + eps);
  }
  __syncthreads();
  float scale = partial[0];
  bf16 *o = out + (size_t)i * dim;
  if constexpr (V > 0) {
#pragma unroll
    for (int j = 0; j < V; j++) {
      int d = threadIdx.x + j * blockDim.x;
      if (d < dim)
        o[d] = __float2bfloat16(wv[j] * (scale * xv[j]));
    }
  } else {
    for (int d = threadIdx.x; d < dim; d += blockDim.x)
      o[d] = __float2bfloat16(w[d] * (scale * xr[d]));
  }
}

void launch_add_rmsnorm(bf16 *out, float *x, const float *y, const float *w, const int *src_rows, int n_out,
                        int dim, float eps, cudaStream_t s, int pdl_next) {
  int threads = dim >= 4096 ? 512 : dim >= 1024 ? 256 : 128;
  int per_thread = (dim + threads - 1) / threads;
  if (per_thread <= 2)
    add_rmsnorm_kernel<2><<<n_out, threads, 0, s>>>(out, x, y, w, src_rows, dim, eps, pdl_next);
  else if (per_thread <= 8)
    add_rmsnorm_kernel<8><<<n_out, threads, 0, s>>>(out, x, y, w, src_rows, dim, eps, pdl_next);
  else if (per_thread <= 16)
    add_rmsnorm_kernel<16><<<n_out, threads, 0, s>>>(out, x, y, w, src_rows, dim, eps, pdl_next);
  else
    add_rmsnorm_kernel<0><<<n_out, threads, 0, s>>>(out, x, y, w, src_rows, dim, eps, pdl_next);
}

// One row per blockIdx.y, so no division per element.
__global__ void swiglu_kernel(bf16 *h, const bf16 *gu, int hidden, int pdl_next) {
  if (pdl_next)
    pdl_trigger();
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= hidden)
    return;
  const bf16 *row = gu + (size_t)blockIdx.y * 2 * hidden;
  float g = __bfloat162float(row[c]), u = __bfloat162float(row[hidden + c]);
  h[(size_t)blockIdx.y * hidden + c] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
}

void launch_swiglu(bf16 *h, const bf16 *gu, int n_rows, int hidden, cudaStream_t s, int pdl_next) {
  swiglu_kernel<<<dim3(ceil_div(hidden, 256), n_rows), 256, 0, s>>>(h, gu, hidden, pdl_next);
}

__global__ void f32_to_bf16_kernel(bf16 *out, const float *in, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    out[i] = __float2bfloat16(in[i]);
}

void launch_f32_to_bf16(bf16 *out, const float *in, size_t n, cudaStream_t s) {
  size_t blocks = (n + 255) / 256;
  f32_to_bf16_kernel<<<(int)(blocks < 65535 * 16 ? blocks : 65535 * 16), 256, 0, s>>>(out, in, n);
}

__global__ void scatter_kernel(int *tables, const int2 *patches, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    tables[patches[i].x] = patches[i].y;
}

void launch_scatter(int *tables, const int2 *patches, int n, cudaStream_t s) {
  if (n > 0)
    scatter_kernel<<<(n + 255) / 256, 256, 0, s>>>(tables, patches, n);
}

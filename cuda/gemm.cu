// Matrix products y = x W^T with W stored [n][k] (row-major, as every model format stores linear
// layers), bf16 operands and fp32 accumulation. cuBLAS does the large ones. For a few rows (the
// decode of a small batch) the product is a stream over W, and a kernel that keeps many 16-byte
// loads of W in flight and reads x from cache reaches more of the memory bandwidth than a general
// GEMM tiling; scripts/device/run.sh times both.
#include "kernels.cuh"

#define SMALL_WARPS 8
#define SMALL_ROWS 2 // weight rows per warp

template <typename T> __device__ __forceinline__ void store_out(T *y, float v);
template <> __device__ __forceinline__ void store_out<float>(float *y, float v) { *y = v; }
template <> __device__ __forceinline__ void store_out<bf16>(bf16 *y, float v) { *y = __float2bfloat16(v); }

__device__ __forceinline__ uint4 load_stream(const bf16 *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float dot8(uint4 a, uint4 b) {
  const __nv_bfloat162 *x = reinterpret_cast<const __nv_bfloat162 *>(&a);
  const __nv_bfloat162 *y = reinterpret_cast<const __nv_bfloat162 *>(&b);
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 u = __bfloat1622float2(x[i]), v = __bfloat1622float2(y[i]);
    s = fmaf(u.x, v.x, s);
    s = fmaf(u.y, v.y, s);
  }
  return s;
}

// Each warp computes SMALL_ROWS outputs for all M rows of x; lanes stride over k in 8-element
// words, U words at a time so that SMALL_ROWS * U loads of W are in flight per lane.
template <int M, typename T>
__global__ void __launch_bounds__(SMALL_WARPS * 32) gemm_small_kernel(T *y, const bf16 *x, const bf16 *w, int n, int k) {
  constexpr int U = M <= 2 ? 4 : 2;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n0 = (blockIdx.x * SMALL_WARPS + warp) * SMALL_ROWS;
  if (n0 >= n)
    return;
  const int words = k / 8;
  const bf16 *wr[SMALL_ROWS];
#pragma unroll
  for (int r = 0; r < SMALL_ROWS; r++)
    wr[r] = w + (size_t)min(n0 + r, n - 1) * k;
  float acc[SMALL_ROWS][M];
#pragma unroll
  for (int r = 0; r < SMALL_ROWS; r++)
#pragma unroll
    for (int m = 0; m < M; m++)
      acc[r][m] = 0.0f;
  int c = lane;
  for (; c + 32 * (U - 1) < words; c += 32 * U) {
    uint4 wv[U][SMALL_ROWS];
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
      for (int r = 0; r < SMALL_ROWS; r++)
        wv[u][r] = load_stream(wr[r] + (size_t)(c + 32 * u) * 8);
#pragma unroll
    for (int u = 0; u < U; u++) {
#pragma unroll
      for (int m = 0; m < M; m++) {
        uint4 xv = __ldg(reinterpret_cast<const uint4 *>(x + (size_t)m * k + (size_t)(c + 32 * u) * 8));
#pragma unroll
        for (int r = 0; r < SMALL_ROWS; r++)
          acc[r][m] += dot8(wv[u][r], xv);
      }
    }
  }
  for (; c < words; c += 32) {
#pragma unroll
    for (int r = 0; r < SMALL_ROWS; r++) {
      uint4 wv = load_stream(wr[r] + (size_t)c * 8);
#pragma unroll
      for (int m = 0; m < M; m++)
        acc[r][m] += dot8(wv, __ldg(reinterpret_cast<const uint4 *>(x + (size_t)m * k + (size_t)c * 8)));
    }
  }
#pragma unroll
  for (int r = 0; r < SMALL_ROWS; r++)
#pragma unroll
    for (int m = 0; m < M; m++) {
      float v = warp_sum(acc[r][m]);
      if (lane == 0 && n0 + r < n)
        store_out<T>(y + (size_t)m * n + n0 + r, v);
    }
}

template <int M>
static void launch_small_m(void *y, int y_f32, const bf16 *x, const bf16 *w, int n, int k, cudaStream_t s) {
  int blocks = ceil_div(n, SMALL_WARPS * SMALL_ROWS);
  if (y_f32)
    gemm_small_kernel<M, float><<<blocks, SMALL_WARPS * 32, 0, s>>>((float *)y, x, w, n, k);
  else
    gemm_small_kernel<M, bf16><<<blocks, SMALL_WARPS * 32, 0, s>>>((bf16 *)y, x, w, n, k);
}

void launch_gemm_small(void *y, int y_f32, const bf16 *x, const bf16 *w, int m, int n, int k, cudaStream_t s) {
  // Rows beyond a supported M go in further launches of the largest kernel.
  size_t out_size = y_f32 ? sizeof(float) : sizeof(bf16);
  while (m > 0) {
    int take = m >= 8 ? 8 : m >= 4 ? 4 : m >= 2 ? 2 : 1;
    switch (take) {
    case 8: launch_small_m<8>(y, y_f32, x, w, n, k, s); break;
    case 4: launch_small_m<4>(y, y_f32, x, w, n, k, s); break;
    case 2: launch_small_m<2>(y, y_f32, x, w, n, k, s); break;
    default: launch_small_m<1>(y, y_f32, x, w, n, k, s); break;
    }
    x += (size_t)take * k;
    y = (char *)y + (size_t)take * n * out_size;
    m -= take;
  }
}

yaie_status gemm(const gemm_ctx &g, void *y, int y_f32, const bf16 *x, const bf16 *w, int m, int n, int k) {
  if (m <= g.small_m && k % 8 == 0) {
    launch_gemm_small(y, y_f32, x, w, m, n, k, g.stream);
    return YAIE_OK;
  }
  // Column-major view: Y^T (n x m) = W (n x k, i.e. W^T stored k x n) ^T . X^T (k x m).
  const float alpha = 1.0f, beta = 0.0f;
  cublasStatus_t st = cublasGemmEx(g.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, k, x,
                                   CUDA_R_16BF, k, &beta, y, y_f32 ? CUDA_R_32F : CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return cuda_fail(YAIE_ERR_STATE, "cuda: cublasGemmEx (%d x %d x %d) failed: %s", m, n, k,
                     cublasGetStatusString(st));
  return YAIE_OK;
}

// Matrix products y = x W^T with W stored [n][k] (row-major, as every model format stores linear
// layers), bf16 operands and fp32 accumulation. cuBLAS does the large ones. For a few rows (the
// decode of a small batch) the product is a stream over W, and a kernel that keeps many 16-byte
// loads of W in flight and reads x from cache reaches more of the memory bandwidth than a general
// GEMM tiling; scripts/device/run.sh times both.
#include "kernels.cuh"

#define SMALL_WARPS 8
#define SMALL_THREADS (SMALL_WARPS * 32)
#define SMALL_ROWS 4 // weight rows per block

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

// A block computes SMALL_ROWS outputs for the M rows of x, its threads striding over k in 16-byte
// words (a warp reads 512 contiguous bytes of a weight row per load), two strides at a time so
// that 2 x SMALL_ROWS loads of W are in flight per thread; warps' partial sums meet in shared
// memory. Many small blocks keep every multiprocessor busy even for a 1024-row matrix.
template <int M, typename T>
__global__ void __launch_bounds__(SMALL_THREADS) gemm_small_kernel(T *y, const bf16 *x, const bf16 *w, int n, int k) {
  __shared__ float part[SMALL_WARPS][SMALL_ROWS][M];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n0 = blockIdx.x * SMALL_ROWS;
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
  int c = threadIdx.x;
  for (; c + SMALL_THREADS < words; c += 2 * SMALL_THREADS) {
    uint4 wv[2][SMALL_ROWS];
#pragma unroll
    for (int u = 0; u < 2; u++)
#pragma unroll
      for (int r = 0; r < SMALL_ROWS; r++)
        wv[u][r] = load_stream(wr[r] + (size_t)(c + u * SMALL_THREADS) * 8);
#pragma unroll
    for (int u = 0; u < 2; u++) {
#pragma unroll
      for (int m = 0; m < M; m++) {
        uint4 xv = __ldg(reinterpret_cast<const uint4 *>(x + (size_t)m * k + (size_t)(c + u * SMALL_THREADS) * 8));
#pragma unroll
        for (int r = 0; r < SMALL_ROWS; r++)
          acc[r][m] += dot8(wv[u][r], xv);
      }
    }
  }
  if (c < words) {
    uint4 wv[SMALL_ROWS];
#pragma unroll
    for (int r = 0; r < SMALL_ROWS; r++)
      wv[r] = load_stream(wr[r] + (size_t)c * 8);
#pragma unroll
    for (int m = 0; m < M; m++) {
      uint4 xv = __ldg(reinterpret_cast<const uint4 *>(x + (size_t)m * k + (size_t)c * 8));
#pragma unroll
      for (int r = 0; r < SMALL_ROWS; r++)
        acc[r][m] += dot8(wv[r], xv);
    }
  }
#pragma unroll
  for (int r = 0; r < SMALL_ROWS; r++)
#pragma unroll
    for (int m = 0; m < M; m++) {
      float v = warp_sum(acc[r][m]);
      if (lane == 0)
        part[warp][r][m] = v;
    }
  __syncthreads();
  if (threadIdx.x < SMALL_ROWS * M) {
    int r = threadIdx.x / M, m = threadIdx.x % M;
    float v = 0.0f;
#pragma unroll
    for (int wi = 0; wi < SMALL_WARPS; wi++)
      v += part[wi][r][m];
    if (n0 + r < n)
      store_out<T>(y + (size_t)m * n + n0 + r, v);
  }
}

template <int M>
static void launch_small_m(void *y, int y_f32, const bf16 *x, const bf16 *w, int n, int k, cudaStream_t s) {
  int blocks = ceil_div(n, SMALL_ROWS);
  if (y_f32)
    gemm_small_kernel<M, float><<<blocks, SMALL_THREADS, 0, s>>>((float *)y, x, w, n, k);
  else
    gemm_small_kernel<M, bf16><<<blocks, SMALL_THREADS, 0, s>>>((bf16 *)y, x, w, n, k);
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
  // The streaming kernel wins for one row, cuBLAS from two (scripts/device/run.sh kbench times
  // both: on an H200 at m = 1, 2.4 TB/s against 1.8 for a 4096 x 4096 matrix, 3.7 against 3.3 for
  // 4096 x 14336, a tie for the larger ones).
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

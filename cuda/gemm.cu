// Matrix products y = x W^T with W stored [n][k] (row-major, as every model format stores linear
// layers), bf16 operands and fp32 accumulation. cuBLAS does the large ones. For a few rows (the
// decode of a small batch) the product is a stream over W, and a kernel that keeps many 16-byte
// loads of W in flight and reads x from cache reaches more of the memory bandwidth than a general
// GEMM tiling; scripts/device/run.sh times both.
#include <stdlib.h>

#include "kernels.cuh"

#define SMALL_WARPS 8
#define SMALL_THREADS (SMALL_WARPS * 32)

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

// x as raw bf16 (the plain product: converting inside keeps the register count, and so the
// occupancy, of the kernel that streams W) or as floats (the fused SwiGLU).
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

__device__ __forceinline__ float dot8(uint4 w, const float *x) {
  float wf[8], s = 0.0f;
  bf16x8_to_float(w, wf);
#pragma unroll
  for (int e = 0; e < 8; e++)
    s = fmaf(wf[e], x[e], s);
  return s;
}

// 8 elements of row m of the FFN's [gate | up] (2k wide) as silu(gate) * up, rounded to bf16 as
// the separate SwiGLU kernel stores them, so one row and a batch compute the same products.
__device__ __forceinline__ void load_glu8(float *f, const bf16 *x, int m, int k, int word) {
  const bf16 *row = x + (size_t)m * 2 * k + (size_t)word * 8;
  float g[8], u[8];
  bf16x8_to_float(__ldg(reinterpret_cast<const uint4 *>(row)), g);
  bf16x8_to_float(__ldg(reinterpret_cast<const uint4 *>(row + k)), u);
#pragma unroll
  for (int e = 0; e < 8; e++)
    f[e] = __bfloat162float(__float2bfloat16(g[e] / (1.0f + __expf(-g[e])) * u[e]));
}

// One stride of the loop: R weight words (one per row) against the M rows of x.
template <int M, int R, bool GLU>
__device__ __forceinline__ void small_step(float (&acc)[R][M], const uint4 (&wv)[R], const bf16 *x, int k, int word) {
#pragma unroll
  for (int m = 0; m < M; m++) {
    if constexpr (GLU) {
      float xf[8];
      load_glu8(xf, x, m, k, word);
#pragma unroll
      for (int r = 0; r < R; r++)
        acc[r][m] += dot8(wv[r], xf);
    } else {
      uint4 xv = __ldg(reinterpret_cast<const uint4 *>(x + (size_t)m * k + (size_t)word * 8));
#pragma unroll
      for (int r = 0; r < R; r++)
        acc[r][m] += dot8(wv[r], xv);
    }
  }
}

// Two strides of the R weight rows from word c (those below words).
template <int R>
__device__ __forceinline__ void load_strides(uint4 (&w0)[R], uint4 (&w1)[R], const bf16 *const (&wr)[R], int c,
                                             int words) {
#pragma unroll
  for (int r = 0; r < R; r++) {
    if (c < words)
      w0[r] = load_stream(wr[r] + (size_t)c * 8);
    if (c + SMALL_THREADS < words)
      w1[r] = load_stream(wr[r] + (size_t)(c + SMALL_THREADS) * 8);
  }
}

// A block computes R outputs for the M rows of x, its threads striding over k in 16-byte words (a
// warp reads 512 contiguous bytes of a weight row per load), two strides at a time so that 2R
// loads of W are in flight per thread; warps' partial sums meet in shared memory. Many small
// blocks keep every multiprocessor busy even for a matrix of a thousand rows. The first two
// strides are loaded before pdl_wait(): launched as a dependent, the block fetches them while the
// kernel before it (a norm, attention) finishes; at k = 4096 with R = 4 that is all of its W.
template <int M, int R, typename T, bool GLU>
__global__ void __launch_bounds__(SMALL_THREADS) gemm_small_kernel(T *y, const bf16 *x, const bf16 *w, int n, int k,
                                                                   int pdl) {
  __shared__ float part[SMALL_WARPS][R][M];
  if (pdl) // launched as a dependent, so the kernel after it is a product too, or no dependent
    pdl_trigger();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n0 = blockIdx.x * R;
  const int words = k / 8;
  const bf16 *wr[R];
#pragma unroll
  for (int r = 0; r < R; r++)
    wr[r] = w + (size_t)min(n0 + r, n - 1) * k;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int m = 0; m < M; m++)
      acc[r][m] = 0.0f;
  int c = threadIdx.x;
  uint4 w0[R], w1[R];
  load_strides<R>(w0, w1, wr, c, words);
  pdl_wait();
  for (; c < words; c += 2 * SMALL_THREADS) {
    small_step<M, R, GLU>(acc, w0, x, k, c);
    if (c + SMALL_THREADS < words)
      small_step<M, R, GLU>(acc, w1, x, k, c + SMALL_THREADS);
    if (c + 2 * SMALL_THREADS < words)
      load_strides<R>(w0, w1, wr, c + 2 * SMALL_THREADS, words);
  }
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int m = 0; m < M; m++) {
      float v = warp_sum(acc[r][m]);
      if (lane == 0)
        part[warp][r][m] = v;
    }
  __syncthreads();
  if (threadIdx.x < R * M) {
    int r = threadIdx.x / M, m = threadIdx.x % M;
    float v = 0.0f;
#pragma unroll
    for (int wi = 0; wi < SMALL_WARPS; wi++)
      v += part[wi][r][m];
    if (n0 + r < n)
      store_out<T>(y + (size_t)m * n + n0 + r, v);
  }
}

// For one row of x and a tall matrix (the FFN's gate/up, the classifier): each warp owns two
// weight rows over all of k, four strides of loads in flight, no block-wide reduction. A few
// percent faster than the split-k blocks above when n is large (scripts/device/run.sh kbench).
// As there, the first strides are loaded before pdl_wait().
#define ROWS_PER_WARP 2
__device__ __forceinline__ void load_rows4(uint4 (&v0)[4], uint4 (&v1)[4], const bf16 *w0, const bf16 *w1, int c) {
#pragma unroll
  for (int u = 0; u < 4; u++) {
    v0[u] = load_stream(w0 + (size_t)(c + 32 * u) * 8);
    v1[u] = load_stream(w1 + (size_t)(c + 32 * u) * 8);
  }
}

template <typename T>
__global__ void __launch_bounds__(SMALL_THREADS) gemm_rows_kernel(T *y, const bf16 *x, const bf16 *w, int n, int k,
                                                                  int pdl) {
  if (pdl)
    pdl_trigger();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n0 = (blockIdx.x * SMALL_WARPS + warp) * ROWS_PER_WARP;
  if (n0 >= n)
    return;
  const int words = k / 8;
  const bf16 *w0 = w + (size_t)n0 * k, *w1 = w + (size_t)min(n0 + 1, n - 1) * k;
  float a0 = 0.0f, a1 = 0.0f;
  int c = lane;
  uint4 v0[4], v1[4];
  if (c + 96 < words)
    load_rows4(v0, v1, w0, w1, c);
  pdl_wait();
  for (; c + 96 < words; c += 128) {
#pragma unroll
    for (int u = 0; u < 4; u++) {
      uint4 xv = __ldg(reinterpret_cast<const uint4 *>(x + (size_t)(c + 32 * u) * 8));
      a0 += dot8(v0[u], xv);
      a1 += dot8(v1[u], xv);
    }
    if (c + 128 + 96 < words)
      load_rows4(v0, v1, w0, w1, c + 128);
  }
  for (; c < words; c += 32) {
    uint4 xv = __ldg(reinterpret_cast<const uint4 *>(x + (size_t)c * 8));
    a0 += dot8(load_stream(w0 + (size_t)c * 8), xv);
    a1 += dot8(load_stream(w1 + (size_t)c * 8), xv);
  }
  a0 = warp_sum(a0);
  a1 = warp_sum(a1);
  if (lane == 0) {
    store_out<T>(y + n0, a0);
    if (n0 + 1 < n)
      store_out<T>(y + n0 + 1, a1);
  }
}

// Rows of W per block of the split-k kernel (4; YAIE_CUDA_GEMV_ROWS = 2, 4 or 8 to compare).
static int rows_per_block(void) {
  static int rows = 0;
  if (!rows) {
    const char *v = getenv("YAIE_CUDA_GEMV_ROWS");
    int r = v ? atoi(v) : 4;
    rows = r == 2 || r == 8 ? r : 4;
  }
  return rows;
}

// kernel<<<blocks, SMALL_THREADS, 0, s>>>(args), as a programmatic dependent launch when pdl.
template <typename T> static void launch_streaming(void (*kernel)(T *, const bf16 *, const bf16 *, int, int, int),
                                                   int blocks, cudaStream_t s, int pdl, void *y, const bf16 *x,
                                                   const bf16 *w, int n, int k) {
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(SMALL_THREADS);
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = pdl ? 1 : 0;
  cudaLaunchKernelEx(&cfg, kernel, (T *)y, x, w, n, k, pdl); // an error surfaces in cudaGetLastError()
}

template <int M, int R, bool GLU>
static void launch_split_k(void *y, int y_f32, const bf16 *x, const bf16 *w, int n, int k, cudaStream_t s, int pdl) {
  int blocks = ceil_div(n, R);
  if (y_f32)
    launch_streaming<float>(gemm_small_kernel<M, R, float, GLU>, blocks, s, pdl, y, x, w, n, k);
  else
    launch_streaming<bf16>(gemm_small_kernel<M, R, bf16, GLU>, blocks, s, pdl, y, x, w, n, k);
}

template <int M, bool GLU>
static void launch_small_m(void *y, int y_f32, const bf16 *x, const bf16 *w, int n, int k, cudaStream_t s, int pdl) {
  if (M == 1 && !GLU && n >= 16384) {
    int blocks = ceil_div(n, SMALL_WARPS * ROWS_PER_WARP);
    if (y_f32)
      launch_streaming<float>(gemm_rows_kernel<float>, blocks, s, pdl, y, x, w, n, k);
    else
      launch_streaming<bf16>(gemm_rows_kernel<bf16>, blocks, s, pdl, y, x, w, n, k);
    return;
  }
  switch (rows_per_block()) {
  case 2: launch_split_k<M, 2, GLU>(y, y_f32, x, w, n, k, s, pdl); break;
  case 8: launch_split_k<M, 8, GLU>(y, y_f32, x, w, n, k, s, pdl); break;
  default: launch_split_k<M, 4, GLU>(y, y_f32, x, w, n, k, s, pdl); break;
  }
}

template <bool GLU>
static void launch_small(void *y, int y_f32, const bf16 *x, const bf16 *w, int m, int n, int k, cudaStream_t s,
                         int pdl) {
  // Rows beyond a supported M go in further launches of the largest kernel.
  size_t out_size = y_f32 ? sizeof(float) : sizeof(bf16);
  while (m > 0) {
    int take = m >= 8 ? 8 : m >= 4 ? 4 : m >= 2 ? 2 : 1;
    switch (take) {
    case 8: launch_small_m<8, GLU>(y, y_f32, x, w, n, k, s, pdl); break;
    case 4: launch_small_m<4, GLU>(y, y_f32, x, w, n, k, s, pdl); break;
    case 2: launch_small_m<2, GLU>(y, y_f32, x, w, n, k, s, pdl); break;
    default: launch_small_m<1, GLU>(y, y_f32, x, w, n, k, s, pdl); break;
    }
    x += (size_t)take * k * (GLU ? 2 : 1);
    y = (char *)y + (size_t)take * n * out_size;
    m -= take;
  }
}

void launch_gemm_small(void *y, int y_f32, const bf16 *x, const bf16 *w, int m, int n, int k, cudaStream_t s,
                       int glu, int pdl) {
  if (glu)
    launch_small<true>(y, y_f32, x, w, m, n, k, s, pdl);
  else
    launch_small<false>(y, y_f32, x, w, m, n, k, s, pdl);
}

bool gemm_small_path(const gemm_ctx &g, int m, int k) { return m <= g.small_m && k % 8 == 0; }

yaie_status gemm(const gemm_ctx &g, void *y, int y_f32, const bf16 *x, const bf16 *w, int m, int n, int k) {
  // The streaming kernel wins for one row, cuBLAS from two (scripts/device/run.sh kbench times
  // both: on an H200 at m = 1, 2.4 TB/s against 1.8 for a 4096 x 4096 matrix, 3.7 against 3.3 for
  // 4096 x 14336, a tie for the larger ones).
  if (gemm_small_path(g, m, k)) {
    launch_gemm_small(y, y_f32, x, w, m, n, k, g.stream, 0, g.pdl);
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

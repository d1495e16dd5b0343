// Device discovery and the two ceilings the benchmark's rooflines divide by: device-to-device
// copy bandwidth (bytes read plus bytes written) and the cuBLAS bf16 matrix-product rate, both
// measured on random data (never zeros) with events, median of repeats after warm-up.
#include <algorithm>
#include <cublas_v2.h>
#include <stdio.h>
#include <string.h>
#include <vector>

#include "kernels.cuh"

extern "C" __attribute__((visibility("default"))) int yaie_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess)
    return 0;
  return n;
}

__global__ void fill_random_kernel(bf16 *p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16((float)(h & 0xffff) / 32768.0f - 1.0f);
  }
}

template <typename F> static double median_ms(F run, int warm, int reps) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < warm; i++)
    run();
  std::vector<float> t;
  for (int i = 0; i < reps; i++) {
    cudaEventRecord(a);
    run();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Fills name, the copy bandwidth in GB/s and the bf16 GEMM rate in TFLOP/s; 0 on success.
extern "C" __attribute__((visibility("default"))) int yaie_cuda_peaks(double *copy_gbs, double *gemm_tflops,
                                                                      char *name, int name_cap) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
    return 1;
  snprintf(name, (size_t)name_cap, "%s", prop.name);
  size_t n = (size_t)1 << 29; // 1 GiB of bf16 per buffer
  bf16 *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, n * sizeof(bf16)) != cudaSuccess || cudaMalloc(&b, n * sizeof(bf16)) != cudaSuccess) {
    cudaFree(a);
    return 1;
  }
  fill_random_kernel<<<4096, 256>>>(a, n, 1u);
  fill_random_kernel<<<4096, 256>>>(b, n, 2u);
  double ms = median_ms([&] { cudaMemcpyAsync(b, a, n * sizeof(bf16), cudaMemcpyDeviceToDevice); }, 3, 10);
  *copy_gbs = 2.0 * n * sizeof(bf16) / (ms * 1e-3) / 1e9;

  int m = 8192;
  cublasHandle_t h;
  cublasCreate(&h);
  float alpha = 1.0f, beta = 0.0f;
  bf16 *c = b + (size_t)m * m; // a, b's first m*m, and c after it: all random
  ms = median_ms([&] {
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, m, m, &alpha, a, CUDA_R_16BF, m, b, CUDA_R_16BF, m, &beta, c,
                 CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }, 3, 10);
  *gemm_tflops = 2.0 * m * (double)m * m / (ms * 1e-3) / 1e12;
  cublasDestroy(h);
  cudaFree(a);
  cudaFree(b);
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}

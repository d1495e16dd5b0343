/* The CPU backend's matrix products: y = x W^T with W stored [n][k] (row-major, as every model
 * format stores linear layers). Tiles of 4 weight rows x 3 activation rows keep 12 accumulators
 * in registers, so each loaded vector feeds several FMAs; threads split the weight rows, so a
 * decode step (m = 1) streams the weights once at memory speed.
 *
 * Why not BLAS: a BLAS picks kernels and blockings by m, so a row's result changes with the
 * batch it runs in; here each output is one dot product in a fixed order (see dot_finish), the
 * property that lets continuous batching and chunked prefill give the same tokens as running
 * alone. scripts/bench/cpu.lua measures this against OpenBLAS's sgemm. */
#include <immintrin.h>
#include <stddef.h>

#include "matmul_cpu.h"

#define TILE_N 4
#define TILE_M 3
#ifdef __AVX2__
/* The fixed order: the 8 lane sums reduced pairwise, then the tail added element by element. */
static inline float dot_finish(__m256 acc, const float *a, const float *b, int k8, int k) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  float s = _mm_cvtss_f32(h);
  for (int i = k8; i < k; i++)
    s += a[i] * b[i];
  return s;
}

static void tile_4x3(float *y, const float *x, const float *w, int k, int n) {
  const float *w0 = w, *w1 = w + k, *w2 = w + 2 * (size_t)k, *w3 = w + 3 * (size_t)k;
  const float *x0 = x, *x1 = x + k, *x2 = x + 2 * (size_t)k;
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  int k8 = k & ~7;
  for (int i = 0; i < k8; i += 8) {
    __m256 v0 = _mm256_loadu_ps(x0 + i), v1 = _mm256_loadu_ps(x1 + i), v2 = _mm256_loadu_ps(x2 + i), u;
    u = _mm256_loadu_ps(w0 + i);
    a00 = _mm256_fmadd_ps(u, v0, a00);
    a01 = _mm256_fmadd_ps(u, v1, a01);
    a02 = _mm256_fmadd_ps(u, v2, a02);
    u = _mm256_loadu_ps(w1 + i);
    a10 = _mm256_fmadd_ps(u, v0, a10);
    a11 = _mm256_fmadd_ps(u, v1, a11);
    a12 = _mm256_fmadd_ps(u, v2, a12);
    u = _mm256_loadu_ps(w2 + i);
    a20 = _mm256_fmadd_ps(u, v0, a20);
    a21 = _mm256_fmadd_ps(u, v1, a21);
    a22 = _mm256_fmadd_ps(u, v2, a22);
    u = _mm256_loadu_ps(w3 + i);
    a30 = _mm256_fmadd_ps(u, v0, a30);
    a31 = _mm256_fmadd_ps(u, v1, a31);
    a32 = _mm256_fmadd_ps(u, v2, a32);
  }
  __m256 acc[3][4] = {{a00, a10, a20, a30}, {a01, a11, a21, a31}, {a02, a12, a22, a32}};
  const float *ws[4] = {w0, w1, w2, w3}, *xs[3] = {x0, x1, x2};
  for (int r = 0; r < 3; r++)
    for (int j = 0; j < 4; j++)
      y[(size_t)r * n + j] = dot_finish(acc[r][j], ws[j], xs[r], k8, k);
}

static void tile_4x1(float *y, const float *x, const float *w, int k) {
  const float *w0 = w, *w1 = w + k, *w2 = w + 2 * (size_t)k, *w3 = w + 3 * (size_t)k;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int k8 = k & ~7;
  for (int i = 0; i < k8; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), v, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), v, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), v, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), v, a3);
  }
  y[0] = dot_finish(a0, w0, x, k8, k);
  y[1] = dot_finish(a1, w1, x, k8, k);
  y[2] = dot_finish(a2, w2, x, k8, k);
  y[3] = dot_finish(a3, w3, x, k8, k);
}

static float dot1(const float *w, const float *x, int k) {
  __m256 a = _mm256_setzero_ps();
  int k8 = k & ~7;
  for (int i = 0; i < k8; i += 8)
    a = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a);
  return dot_finish(a, w, x, k8, k);
}
#else
/* Portable fallback with the same per-element order (8 lanes, pairwise, tail). */
static float dot1(const float *w, const float *x, int k) {
  float lane[8] = {0};
  int k8 = k & ~7;
  for (int i = 0; i < k8; i += 8)
    for (int j = 0; j < 8; j++)
      lane[j] = __builtin_fmaf(w[i + j], x[i + j], lane[j]);
  float h0 = lane[0] + lane[4], h1 = lane[1] + lane[5], h2 = lane[2] + lane[6], h3 = lane[3] + lane[7];
  float s = (h0 + h2) + (h1 + h3);
  for (int i = k8; i < k; i++)
    s += w[i] * x[i];
  return s;
}

static void tile_4x1(float *y, const float *x, const float *w, int k) {
  for (int j = 0; j < TILE_N; j++)
    y[j] = dot1(w + (size_t)j * k, x, k);
}

static void tile_4x3(float *y, const float *x, const float *w, int k, int n) {
  for (int r = 0; r < TILE_M; r++)
    tile_4x1(y + (size_t)r * n, x + (size_t)r * k, w, k);
}
#endif

/* All m rows against weight rows [n0, n0 + 4). */
static void weight_tile(float *y, const float *x, const float *w, int m, int k, int n, int n0) {
  const float *wt = w + (size_t)n0 * k;
  int r = 0;
  for (; r + TILE_M <= m; r += TILE_M)
    tile_4x3(y + (size_t)r * n + n0, x + (size_t)r * k, wt, k, n);
  for (; r < m; r++)
    tile_4x1(y + (size_t)r * n + n0, x + (size_t)r * k, wt, k);
}

void yaie_matmul(float *y, const float *x, const float *w, int m, int k, int n, int n_threads) {
  int tiles = n / TILE_N;
  long work = (long)m * k * n;
  /* Blocks of weight rows small enough to stay in cache while every activation row passes. */
  int block = 16;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads) if (work >= PARALLEL_MIN_WORK)
  for (int b = 0; b < (tiles + block - 1) / block; b++) {
    int end = (b + 1) * block < tiles ? (b + 1) * block : tiles;
    for (int t = b * block; t < end; t++)
      weight_tile(y, x, w, m, k, n, t * TILE_N);
  }
  for (int j = tiles * TILE_N; j < n; j++)
    for (int r = 0; r < m; r++)
      y[(size_t)r * n + j] = dot1(w + (size_t)j * k, x + (size_t)r * k, k);
}

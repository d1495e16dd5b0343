// Sampling on the GPU, one block per sequence, so only the token id (and its logprob) comes back.
// The steps mirror engine/runtime/sampler.c: mask, penalties, then greedy, or a temperature softmax with
// min-p, top-k and top-p truncation and a draw. Instead of sorting the vocabulary, the kept set is
// found by radix selection on the weights' float bits (4 passes of 8 bits): top-k keeps weights
// >= the k-th largest, top-p those >= the largest threshold whose mass reaches p (tokens tied at
// the threshold are all kept). Weights are summed as 32.32 fixed point in 64-bit integers, so the
// selection and the draw are exact and reproducible, whatever the order of the atomics. The draw
// walks the kept tokens in index order (the CPU walks them by probability): the same
// distribution, a different map from the uniform to the token.
#include <math.h>

#include "kernels.cuh"

#define SAMPLE_THREADS 1024
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)

typedef unsigned long long u64;

struct sample_smem {
  float f[SAMPLE_WARPS];
  int i[SAMPLE_WARPS];
  u64 u[SAMPLE_WARPS];
  u64 hist[256];
  unsigned sel;
  int flag;
};

// The block's reduction of v: each warp reduces with warp_op, warp leaders meet in buf (one slot a
// warp), and every thread gets the result. SAMPLE_THREADS is 1024: 32 warps, one slot per lane.
template <typename T, typename WarpOp> __device__ __forceinline__ T block_reduce(T v, T *buf, WarpOp warp_op) {
  v = warp_op(v);
  if ((threadIdx.x & 31) == 0)
    buf[threadIdx.x >> 5] = v;
  __syncthreads();
  v = warp_op(buf[threadIdx.x & 31]);
  __syncthreads();
  return v;
}

__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float block_max(float v, sample_smem &sh) {
  return block_reduce(v, sh.f, warp_max);
}
__device__ __forceinline__ float block_sum(float v, sample_smem &sh) {
  return block_reduce(v, sh.f, warp_sum);
}
__device__ __forceinline__ u64 block_sum_u64(u64 v, sample_smem &sh) {
  return block_reduce(v, sh.u, warp_sum_u64);
}

// The largest value with ties going to the lowest index (engine/runtime/sampler.c's argmax).
__device__ int block_argmax(const float *l, int vocab, sample_smem &sh) {
  float best = -INFINITY;
  int idx = vocab;
  for (int i = threadIdx.x; i < vocab; i += SAMPLE_THREADS)
    if (l[i] > best || (l[i] == best && i < idx)) {
      best = l[i];
      idx = i;
    }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float b = __shfl_xor_sync(0xffffffffu, best, o);
    int j = __shfl_xor_sync(0xffffffffu, idx, o);
    if (b > best || (b == best && j < idx)) {
      best = b;
      idx = j;
    }
  }
  if ((threadIdx.x & 31) == 0) {
    sh.f[threadIdx.x >> 5] = best;
    sh.i[threadIdx.x >> 5] = idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < SAMPLE_WARPS; w++)
      if (sh.f[w] > best || (sh.f[w] == best && sh.i[w] < idx)) {
        best = sh.f[w];
        idx = sh.i[w];
      }
    sh.i[0] = idx < vocab ? idx : 0; // every logit -inf or NaN: token 0, as the CPU's argmax
  }
  __syncthreads();
  int r = sh.i[0];
  __syncthreads();
  return r;
}

// A token's weight after temperature, relative to the best token (which weighs 1).
struct weights {
  const float *l;
  float max, temperature, min_p;
  __device__ float w(int i) const { return l[i] == -INFINITY ? 0.0f : expf((l[i] - max) / temperature); }
  __device__ static u64 fixed(float w) { return (u64)((double)w * 4294967296.0); }
  __device__ bool cand(float w) const { return w > 0.0f && w >= min_p; }
};

// The largest float-bits threshold v such that the candidates with bits >= v hold at least `need`
// (by count, or by fixed-point mass); 0 (keep all) when all of them hold less.
__device__ unsigned radix_threshold(const weights &W, int vocab, int by_mass, u64 need, sample_smem &sh) {
  unsigned prefix = 0, mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += SAMPLE_THREADS)
      sh.hist[b] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += SAMPLE_THREADS) {
      float w = W.w(i);
      unsigned key = __float_as_uint(w);
      if (W.cand(w) && (key & mask) == prefix)
        atomicAdd(&sh.hist[(key >> shift) & 255], by_mass ? weights::fixed(w) : 1ull);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      u64 cum = 0;
      int b = 255;
      for (; b >= 0; b--) {
        if (sh.hist[b] && cum + sh.hist[b] >= need)
          break;
        cum += sh.hist[b];
      }
      sh.flag = b >= 0;
      if (b >= 0) {
        sh.sel = (unsigned)b;
        need -= cum;
      }
    }
    __syncthreads();
    if (!sh.flag)
      return 0;
    prefix |= sh.sel << shift;
    mask |= 0xffu << shift;
    __syncthreads();
  }
  return prefix;
}

// Inverse CDF over the kept tokens in index order: each thread owns a contiguous run of the
// vocabulary; an exclusive scan of the runs' masses finds the run holding the target.
__device__ int draw(const weights &W, int vocab, unsigned thr, float uniform, sample_smem &sh) {
  const int per = (vocab + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
  const int lo = threadIdx.x * per, hi = min(vocab, lo + per);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  u64 local = 0;
  for (int i = lo; i < hi; i++) {
    float w = W.w(i);
    if (W.cand(w) && __float_as_uint(w) >= thr)
      local += weights::fixed(w);
  }
  u64 incl = local;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    u64 v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o)
      incl += v;
  }
  if (lane == 31)
    sh.u[warp] = incl;
  if (threadIdx.x == 0)
    sh.flag = -1;
  __syncthreads();
  u64 before = 0, total = 0;
  for (int w = 0; w < SAMPLE_WARPS; w++) {
    if (w < warp)
      before += sh.u[w];
    total += sh.u[w];
  }
  u64 excl = before + incl - local;
  u64 target = (u64)((double)uniform * (double)total);
  if (target >= total && total > 0)
    target = total - 1;
  if (local > 0 && target >= excl && target < excl + local) {
    u64 acc = excl;
    for (int i = lo; i < hi; i++) {
      float w = W.w(i);
      if (W.cand(w) && __float_as_uint(w) >= thr) {
        acc += weights::fixed(w);
        if (acc > target) {
          sh.flag = i;
          break;
        }
      }
    }
  }
  __syncthreads();
  int r = sh.flag;
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(SAMPLE_THREADS) sample_kernel(int *ids, float *logprobs, float *logits,
                                                                const sample_row *rows, int vocab, const int *pen_tok,
                                                                const int *pen_cnt, float *pen_orig,
                                                                const uint8_t *masks) {
  __shared__ sample_smem sh;
  const sample_row R = rows[blockIdx.x];
  float *l = logits + (size_t)R.logit_row * vocab;
  const int tid = threadIdx.x;

  float raw_max = 0.0f, raw_lse = 0.0f;
  if (R.want_logprob) {
    float mx = -INFINITY;
    for (int i = tid; i < vocab; i += SAMPLE_THREADS)
      mx = fmaxf(mx, l[i]);
    raw_max = block_max(mx, sh);
    float sum = 0.0f;
    for (int i = tid; i < vocab; i += SAMPLE_THREADS)
      sum += expf(l[i] - raw_max);
    raw_lse = logf(block_sum(sum, sh));
  }
  if (R.mask_off >= 0) {
    const uint8_t *mk = masks + R.mask_off;
    float allowed = 0.0f;
    for (int i = tid; i < vocab; i += SAMPLE_THREADS) {
      if (!mk[i])
        l[i] = -INFINITY;
      else
        allowed += 1.0f;
    }
    if (block_sum(allowed, sh) == 0.0f) {
      if (tid == 0) {
        ids[blockIdx.x] = -2;
        if (logprobs)
          logprobs[blockIdx.x] = 0.0f;
      }
      return;
    }
  }
  for (int j = tid; j < R.pen_n; j += SAMPLE_THREADS) {
    int t = pen_tok[R.pen_off + j];
    float v = l[t];
    pen_orig[R.pen_off + j] = v;
    v = v > 0.0f ? v / R.repetition : v * R.repetition;
    l[t] = v - (float)pen_cnt[R.pen_off + j] * R.frequency - R.presence;
  }
  __syncthreads();

  int chosen;
  if (R.temperature == 0.0f) {
    chosen = block_argmax(l, vocab, sh);
  } else {
    float mx = -INFINITY;
    for (int i = tid; i < vocab; i += SAMPLE_THREADS)
      mx = fmaxf(mx, l[i]);
    weights W{l, block_max(mx, sh), R.temperature, R.min_p};
    u64 total = 0, n_cand = 0;
    for (int i = tid; i < vocab; i += SAMPLE_THREADS) {
      float w = W.w(i);
      total += weights::fixed(w);
      n_cand += W.cand(w);
    }
    total = block_sum_u64(total, sh);
    n_cand = block_sum_u64(n_cand, sh);
    unsigned thr = 0;
    if (R.top_k > 0 && (u64)R.top_k < n_cand)
      thr = radix_threshold(W, vocab, 0, (u64)R.top_k, sh);
    if (R.top_p < 1.0f) {
      u64 need = (u64)((double)R.top_p * (double)total);
      unsigned t2 = radix_threshold(W, vocab, 1, need > 0 ? need : 1, sh);
      thr = t2 > thr ? t2 : thr;
    }
    chosen = draw(W, vocab, thr, R.uniform, sh);
    if (chosen < 0) // nothing kept can only come from rounding; fall back to the best token
      chosen = block_argmax(l, vocab, sh);
  }

  if (R.want_logprob) {
    // The raw logit of the chosen token: the one a penalty replaced, if it was penalized.
    if (tid == 0)
      sh.f[0] = l[chosen];
    __syncthreads();
    for (int j = tid; j < R.pen_n; j += SAMPLE_THREADS)
      if (pen_tok[R.pen_off + j] == chosen)
        sh.f[0] = pen_orig[R.pen_off + j];
    __syncthreads();
    if (tid == 0)
      logprobs[blockIdx.x] = sh.f[0] - raw_max - raw_lse;
  }
  if (tid == 0)
    ids[blockIdx.x] = chosen;
}

void launch_sample(int *ids, float *logprobs, float *logits, const sample_row *rows, int n, int vocab,
                   const int *pen_tok, const int *pen_cnt, float *pen_orig, const uint8_t *masks, cudaStream_t s) {
  sample_kernel<<<n, SAMPLE_THREADS, 0, s>>>(ids, logprobs, logits, rows, vocab, pen_tok, pen_cnt, pen_orig, masks);
}

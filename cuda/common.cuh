// What every CUDA source of the backend shares: bf16, error reporting, the KV page layout, the
// step's per-row metadata, and small device helpers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "backend.h"
}

typedef __nv_bfloat16 bf16;

// Records a message in the backend's per-thread error buffer and returns the status.
yaie_status cuda_fail(yaie_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *cuda_last_error(void);

#define CUDA_TRY(call)                                                                              \
  do {                                                                                              \
    cudaError_t e_ = (call);                                                                        \
    if (e_ != cudaSuccess)                                                                          \
      return cuda_fail(e_ == cudaErrorMemoryAllocation ? YAIE_ERR_NOMEM : YAIE_ERR_STATE,           \
                       "cuda: %s failed at %s:%d: %s", #call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
  } while (0)

#define STATUS_TRY(expr)            \
  do {                              \
    yaie_status s_ = (expr);        \
    if (s_ != YAIE_OK)              \
      return s_;                    \
  } while (0)

// The KV cache: pages of page_size positions, one page id across layers. Inside a page, layer l's
// K (then V) for kv head h is a contiguous [page_size][head_dim] block, so a head's keys of one
// page are read as one run of memory by the attention kernels.
struct kv_layout {
  bf16 *base;
  int n_layers, n_kv_heads, page_size, head_dim;
  size_t page_stride; // elements per page: n_layers * 2 * n_kv_heads * page_size * head_dim

  __host__ __device__ size_t offset(int page, int layer, int is_v, int head, int slot) const {
    return (size_t)page * page_stride +
           ((size_t)((layer * 2 + is_v) * n_kv_heads + head) * page_size + slot) * head_dim;
  }
};

// One new token of the step: its id, its position, and which device page table its sequence
// uses (row `table` of the [n_tables][max_pages] table array).
struct row_info {
  int token, pos, table, pad;
};

// A query tile of a prefill chunk for the tensor-core attention: rows [q0, q0 + 64) of the chunk
// that starts at batch row `row0` with n_tokens tokens, the first at position pos0.
struct prefill_item {
  int row0, n_tokens, pos0, table, q0, pad[3];
};

// A tile of up to 64 query vectors of a cascade group (attention_cascade.cu): the group's members
// x the query heads of one KV head, numbered member-major from q0, against the group's shared
// positions [start, end), read through the device page table `table` (its first member's).
struct cascade_item {
  int start, end, member_off, n_members, q0, table, pad[2];
};

// Where the attention kernels find their inputs.
struct attn_args {
  const bf16 *q; // [rows][n_heads * head_dim], RoPE applied
  bf16 *out;     // [rows][n_heads * head_dim]
  kv_layout kv;
  int layer;
  const row_info *rows;
  const int *tables;
  int max_pages;
  int n_heads, n_kv_heads, head_dim;
  float scale;  // 1 / sqrt(head_dim)
  int pdl_next; // the output projection after it is a dependent launch: trigger it (pdl_trigger)
};

// Programmatic dependent launch (sm_90). A matrix product of a decode step is launched so that it
// may start while the kernel before it still runs: it issues its first loads of the weights (which
// no kernel writes), then pdl_wait() until the kernel before it has finished and its writes are
// visible, and only then reads anything else or writes. A kernel followed by such a product is
// told so (pdl_next) and calls pdl_trigger() first, which lets the product start once all its
// blocks are running. Nothing else triggers: with every kernel triggering, an 8B prefill of 512
// tokens ran 4% slower (H100; the products there are cuBLAS GEMMs, which may then start early and
// share multiprocessors with the kernel before them; not investigated further).
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// 8 bf16 in a 16-byte word, as floats.
__device__ __forceinline__ void bf16x8_to_float(uint4 u, float *f) {
  const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 v = __bfloat1622float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

static inline int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

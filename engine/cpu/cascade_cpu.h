/* Cascade attention on the CPU (cascade_cpu.c), called by the forward pass for the rows of a
 * step's cascade groups. */
#ifndef YAIE_CASCADE_CPU_H
#define YAIE_CASCADE_CPU_H

#include "cascade.h"

/* Where a layer's K and V live: position p of a page table in page pages[p / page_size]. */
typedef struct cpu_kv {
  const float *base;
  size_t page_stride; /* floats per page */
  int page_size, kv_dim, head_dim, n_heads, n_kv_heads;
} cpu_kv;

static inline const float *cpu_kv_at(const cpu_kv *kv, const int32_t *pages, int pos, int layer, int is_v) {
  size_t slot = ((size_t)(layer * 2 + is_v) * (size_t)kv->page_size + (size_t)(pos % kv->page_size)) * kv->kv_dim;
  return kv->base + (size_t)pages[pos / kv->page_size] * kv->page_stride + slot;
}

/* Attention of every row in a cascade group for one layer, into att ([rows][n_heads * head_dim]):
 * each group's part once for all its members, each row's own part, merged by log-sum-exp. q is
 * the step's QKV rows (qkv_stride floats apart); seq_row[s] is sequence s's row. */
yaie_status yaie_cpu_cascade(float *att, const float *q, int qkv_stride, const cpu_kv *kv, int layer, const yaie_batch *b,
                      const yaie_cascade_plan *plan, const int *seq_row, int n_threads);

#endif

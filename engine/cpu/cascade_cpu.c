/* Cascade attention on the CPU. A group's part is one pass over its shared positions in which
 * each K and V row is read once and used by every member's query heads of that KV head (a small
 * matrix product of the group's queries against the prefix); the row's own part is the usual
 * pass over its own positions. Each part leaves (max, sum of exponentials, weighted sum of V);
 * merging rescales them to the common max, as flash attention merges its splits. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cascade_cpu.h"
#include "error.h"

/* A part's partial result for one (row, head): m, l, then head_dim accumulators. */
static inline float *partial(float *base, size_t idx, int hd) { return base + idx * (size_t)(hd + 2); }

/* Group g's part for every member and every head of one KV head, online over its positions. */
static void group_part(float *out, const float *q, int qkv_stride, const cpu_kv *kv, int layer, const yaie_batch *b,
                       const yaie_group *g, const int *seq_row, int kv_head, float *scores) {
  int hd = kv->head_dim, per_kv = kv->n_heads / kv->n_kv_heads, nq = g->n_rows * per_kv;
  float scale = 1.0f / sqrtf((float)hd);
  const int32_t *pages = b->seqs[g->rows[0]].pages;
  for (int i = 0; i < nq; i++) {
    float *p = partial(out, (size_t)(i / per_kv) * kv->n_heads + kv_head * per_kv + i % per_kv, hd);
    p[0] = -INFINITY;
    p[1] = 0.0f;
    memset(p + 2, 0, (size_t)hd * sizeof(float));
  }
  for (int t = g->start; t < g->end; t++) {
    const float *k = cpu_kv_at(kv, pages, t, layer, 0) + kv_head * hd;
    const float *v = cpu_kv_at(kv, pages, t, layer, 1) + kv_head * hd;
    for (int i = 0; i < nq; i++) {
      int j = i / per_kv, h = kv_head * per_kv + i % per_kv;
      const float *qi = q + (size_t)seq_row[g->rows[j]] * qkv_stride + h * hd;
      float dot = 0.0f;
      for (int d = 0; d < hd; d++)
        dot += qi[d] * k[d];
      scores[i] = dot * scale;
    }
    for (int i = 0; i < nq; i++) {
      float *p = partial(out, (size_t)(i / per_kv) * kv->n_heads + kv_head * per_kv + i % per_kv, hd);
      float m = p[0] > scores[i] ? p[0] : scores[i];
      float old = expf(p[0] - m), w = expf(scores[i] - m);
      p[0] = m;
      p[1] = p[1] * old + w;
      for (int d = 0; d < hd; d++)
        p[2 + d] = p[2 + d] * old + w * v[d];
    }
  }
}

/* One row's own part over [from, pos] for one head, two passes as the plain path. */
static void own_part(float *p, const float *qh, const cpu_kv *kv, const int32_t *pages, int from, int pos, int layer,
                     int kv_head, float *scores) {
  int hd = kv->head_dim;
  float scale = 1.0f / sqrtf((float)hd), m = -INFINITY, l = 0.0f;
  for (int t = from; t <= pos; t++) {
    const float *k = cpu_kv_at(kv, pages, t, layer, 0) + kv_head * hd;
    float dot = 0.0f;
    for (int d = 0; d < hd; d++)
      dot += qh[d] * k[d];
    scores[t - from] = dot * scale;
    if (scores[t - from] > m)
      m = scores[t - from];
  }
  memset(p + 2, 0, (size_t)hd * sizeof(float));
  for (int t = from; t <= pos; t++) {
    float w = expf(scores[t - from] - m);
    const float *v = cpu_kv_at(kv, pages, t, layer, 1) + kv_head * hd;
    l += w;
    for (int d = 0; d < hd; d++)
      p[2 + d] += w * v[d];
  }
  p[0] = m;
  p[1] = l;
}

yaie_status yaie_cpu_cascade(float *att, const float *q, int qkv_stride, const cpu_kv *kv, int layer, const yaie_batch *b,
                      const yaie_cascade_plan *plan, const int *seq_row, int n_threads) {
  int hd = kv->head_dim, H = kv->n_heads, per_kv = H / kv->n_kv_heads;
  size_t width = (size_t)hd + 2;
  /* Group parts: [pair][head]; work items (group, kv head). */
  float *gpart = malloc((size_t)plan->n_pairs * H * width * sizeof(float));
  int max_members = 0, max_len = 0;
  for (int g = 0; g < plan->n_groups; g++)
    if (b->groups[g].n_rows > max_members)
      max_members = b->groups[g].n_rows;
  for (int s = 0; s < b->n_seqs; s++)
    if (plan->own_start[s] >= 0 && b->seqs[s].pos - plan->own_start[s] + 1 > max_len)
      max_len = b->seqs[s].pos - plan->own_start[s] + 1;
  size_t scratch = (size_t)(max_members * per_kv > max_len ? max_members * per_kv : max_len) + 1;
  float *scores = malloc((size_t)n_threads * scratch * sizeof(float));
  float *own = malloc((size_t)n_threads * width * sizeof(float));
  if (!gpart || !scores || !own) {
    free(gpart);
    free(scores);
    free(own);
    return yaie_fail(YAIE_ERR_NOMEM, "cascade: out of memory for the step's partial results");
  }
  int work = plan->n_groups * kv->n_kv_heads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
  for (int w = 0; w < work; w++) {
    int g = w / kv->n_kv_heads, h = w % kv->n_kv_heads;
    group_part(gpart + (size_t)plan->group_off[g] * H * width, q, qkv_stride, kv, layer, b, &b->groups[g], seq_row, h,
               scores + (size_t)omp_get_thread_num() * scratch);
  }
  /* Own parts and the merge; work items (member sequence, head). */
  int rows = b->n_seqs * H;
#pragma omp parallel for schedule(dynamic, 4) num_threads(n_threads)
  for (int w = 0; w < rows; w++) {
    int s = w / H, h = w % H;
    if (plan->own_start[s] < 0)
      continue;
    int tid = omp_get_thread_num(), r = seq_row[s];
    float *p = own + (size_t)tid * width;
    own_part(p, q + (size_t)r * qkv_stride + h * hd, kv, b->seqs[s].pages, plan->own_start[s], b->seqs[s].pos, layer,
             h / per_kv, scores + (size_t)tid * scratch);
    float m = p[0];
    for (int i = plan->part_off[s]; i < plan->part_off[s + 1]; i++) {
      const float *gp = gpart + ((size_t)plan->parts[i] * H + h) * width;
      if (gp[0] > m)
        m = gp[0];
    }
    float l = p[1] * expf(p[0] - m);
    float *o = att + (size_t)r * H * hd + (size_t)h * hd;
    for (int d = 0; d < hd; d++)
      o[d] = p[2 + d] * expf(p[0] - m);
    for (int i = plan->part_off[s]; i < plan->part_off[s + 1]; i++) {
      const float *gp = gpart + ((size_t)plan->parts[i] * H + h) * width;
      float c = expf(gp[0] - m);
      l += gp[1] * c;
      for (int d = 0; d < hd; d++)
        o[d] += gp[2 + d] * c;
    }
    for (int d = 0; d < hd; d++)
      o[d] /= l;
  }
  free(gpart);
  free(scores);
  free(own);
  return YAIE_OK;
}

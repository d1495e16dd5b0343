/* Batch-invariant matrix products for the CPU backend. */
#ifndef YAIE_MATMUL_CPU_H
#define YAIE_MATMUL_CPU_H

/* Below this many multiply-adds an OpenMP parallel region costs more than it saves. */
#define PARALLEL_MIN_WORK (1L << 16)

/* y[m][n] = x[m][k] . w[n][k] for m rows of x. Every output element is accumulated in one fixed
 * order (8 lanes over k, lane-wise sums, then the k % 8 tail), whatever m is and wherever the
 * row sits in the batch: a sequence's logits are bit-identical whether it runs alone or among
 * others, and whatever its prefill is chunked into. */
void yaie_matmul(float *y, const float *x, const float *w, int m, int k, int n, int n_threads);

#endif

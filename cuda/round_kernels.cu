// The kernel between a decode round's steps: the sampled token becomes the row's next input on
// the device, so the steps follow each other without the host (round.cu).
#include "kernels.cuh"

__global__ void round_advance_kernel(row_info *rows, const int *ids, const float *lps, int *out_tok, float *out_lp,
                                     int *ints, int step, int n, int trash_table) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n)
    return;
  const int *limits = ints, *stop_off = ints + 2 * n, *stop_ids = ints + 3 * n + 1;
  int *state = ints + n;
  size_t cell = (size_t)step * n + i;
  int count = state[i];
  if (count < 0) {
    out_tok[cell] = -1;
    return;
  }
  int id = ids[i];
  out_tok[cell] = id;
  if (lps)
    out_lp[cell] = lps[i];
  bool ended = ++count >= limits[i];
  for (int k = stop_off[i]; k < stop_off[i + 1]; k++)
    ended |= stop_ids[k] == id;
  if (ended) {
    state[i] = -1;
    rows[i] = row_info{0, 0, trash_table, 0};
  } else {
    state[i] = count;
    rows[i].token = id;
    rows[i].pos += 1;
  }
}

void launch_round_advance(row_info *rows, const int *ids, const float *lps, int *out_tok, float *out_lp, int *ints,
                          int step, int n, int trash_table, cudaStream_t s) {
  round_advance_kernel<<<(n + 127) / 128, 128, 0, s>>>(rows, ids, lps, out_tok, out_lp, ints, step, n, trash_table);
}

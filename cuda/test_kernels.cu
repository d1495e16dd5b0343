// Each kernel of the CUDA backend against a float64 host reference, on fresh random inputs (never
// zeros), outputs poisoned with NaN before every run so that an unwritten element fails:
//   yaie_cuda_test            all checks (scripts/device/run.sh)
//   yaie_cuda_test --quick    a smaller set, for compute-sanitizer
//   yaie_cuda_test --bench    also times the matrix products and attention at model shapes
// Errors are ||out - ref|| / ||ref||; bf16 outputs pass under 1e-2, fp32 ones under 1e-3.
#include <algorithm>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "kernels.cuh"

using std::vector;

#define CHECK(call)                                                                             \
  do {                                                                                          \
    cudaError_t e_ = (call);                                                                    \
    if (e_ != cudaSuccess) {                                                                    \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));    \
      exit(2);                                                                                  \
    }                                                                                           \
  } while (0)
#define SYNC()                      \
  do {                              \
    CHECK(cudaGetLastError());      \
    CHECK(cudaDeviceSynchronize()); \
  } while (0)

static int failures = 0, checks = 0;
static bool quick = false;

// ---- Random inputs and device buffers ------------------------------------------------------

static uint64_t rng_state = 0x1234567u;
static double uniform() {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}
static double normal() {
  double u = uniform() + 1e-12, v = uniform();
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
static int randint(int n) { return (int)(uniform() * n) % n; }

static vector<float> rand_f32(size_t n, double center = 0.0, double scale = 1.0) {
  vector<float> v(n);
  for (auto &x : v)
    x = (float)(center + scale * normal());
  return v;
}
static vector<bf16> to_bf16(const vector<float> &v) {
  vector<bf16> o(v.size());
  for (size_t i = 0; i < v.size(); i++)
    o[i] = __float2bfloat16(v[i]);
  return o;
}
static vector<double> to_f64(const vector<bf16> &v) {
  vector<double> o(v.size());
  for (size_t i = 0; i < v.size(); i++)
    o[i] = __bfloat162float(v[i]);
  return o;
}
static vector<double> to_f64(const vector<float> &v) { return vector<double>(v.begin(), v.end()); }

// Random bf16 values; large arrays (benchmark shapes) tile a cached random block, since drawing
// hundreds of millions of normals on the host would take longer than the benchmark.
static vector<bf16> rand_bf16(size_t n, double scale = 1.0) {
  static vector<bf16> block;
  const size_t B = (size_t)1 << 22;
  if (n <= B)
    return to_bf16(rand_f32(n, 0.0, scale));
  if (block.empty())
    block = to_bf16(rand_f32(B + 4096, 0.0, 1.0));
  vector<bf16> v(n);
  for (size_t off = 0; off < n; off += B) {
    size_t shift = (size_t)randint(4096), len = std::min(B, n - off);
    for (size_t i = 0; i < len; i++)
      v[off + i] = __float2bfloat16(__bfloat162float(block[shift + i]) * (float)scale);
  }
  return v;
}

template <typename T> static T *upload(const vector<T> &v) {
  T *d = nullptr;
  CHECK(cudaMalloc(&d, std::max<size_t>(v.size(), 1) * sizeof(T)));
  CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <typename T> static T *poisoned(size_t n) {
  T *d = nullptr;
  CHECK(cudaMalloc(&d, std::max<size_t>(n, 1) * sizeof(T)));
  CHECK(cudaMemset(d, 0xff, n * sizeof(T))); // NaN in bf16 and fp32
  return d;
}
template <typename T> static vector<T> download(const T *d, size_t n) {
  vector<T> v(n);
  CHECK(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

static double rel_err(const vector<double> &got, const vector<double> &ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); i++) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  double e = sqrt(num / (den > 0 ? den : 1e-300));
  return isfinite(e) ? e : INFINITY; // NaN (an unwritten element) fails
}

static void report(const char *what, double err, double tol) {
  checks++;
  bool ok = err <= tol;
  failures += !ok;
  printf("%s %-60s rel %.2e (tol %.0e)\n", ok ? "PASS" : "FAIL", what, err, tol);
  fflush(stdout);
}

// ---- Norms, SwiGLU, embedding ---------------------------------------------------------------

static void test_rmsnorm(int rows, int dim, bool with_y, bool gather) {
  float eps = 1e-5f;
  auto x = rand_f32((size_t)rows * dim, 0.0, 2.0), w = rand_f32(dim, 1.0, 0.2);
  auto y = rand_f32((size_t)rows * dim);
  vector<int> src(rows);
  for (int i = 0; i < rows; i++)
    src[i] = gather ? rows - 1 - i : i;
  int n_out = gather ? (rows + 1) / 2 : rows;
  float *dx = upload(x), *dw = upload(w);
  float *dy = upload(y);
  bf16 *dout = poisoned<bf16>((size_t)n_out * dim);
  int *dsrc = upload(src);
  launch_add_rmsnorm(dout, dx, with_y ? dy : nullptr, dw, gather ? dsrc : nullptr, n_out, dim, eps, 0);
  SYNC();
  auto out = to_f64(download(dout, (size_t)n_out * dim));
  auto xo = download(dx, (size_t)rows * dim);
  vector<double> ref((size_t)n_out * dim), xref, xgot;
  for (int i = 0; i < n_out; i++) {
    int s = src[i];
    double ss = 0;
    vector<double> v(dim);
    for (int d = 0; d < dim; d++) {
      v[d] = x[(size_t)s * dim + d] + (with_y ? (double)y[(size_t)s * dim + d] : 0.0);
      ss += v[d] * v[d];
      xref.push_back(v[d]);
      xgot.push_back(xo[(size_t)s * dim + d]);
    }
    double sc = 1.0 / sqrt(ss / dim + eps);
    for (int d = 0; d < dim; d++)
      ref[(size_t)i * dim + d] = w[d] * v[d] * sc;
  }
  char name[128];
  snprintf(name, sizeof name, "rmsnorm rows %d dim %d%s%s", rows, dim, with_y ? " +residual" : "", gather ? " gather" : "");
  report(name, rel_err(out, ref), 1e-2);
  if (with_y) {
    snprintf(name, sizeof name, "residual add rows %d dim %d", rows, dim);
    report(name, rel_err(xgot, xref), 1e-6);
  }
  cudaFree(dx), cudaFree(dw), cudaFree(dy), cudaFree(dout), cudaFree(dsrc);
}

static void test_swiglu(int rows, int hidden) {
  auto gu = to_bf16(rand_f32((size_t)rows * 2 * hidden, 0.0, 2.0));
  bf16 *dgu = upload(gu), *dh = poisoned<bf16>((size_t)rows * hidden);
  launch_swiglu(dh, dgu, rows, hidden, 0);
  SYNC();
  auto got = to_f64(download(dh, (size_t)rows * hidden));
  vector<double> ref(got.size());
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < hidden; i++) {
      double g = __bfloat162float(gu[(size_t)r * 2 * hidden + i]), u = __bfloat162float(gu[(size_t)r * 2 * hidden + hidden + i]);
      ref[(size_t)r * hidden + i] = g / (1 + exp(-g)) * u;
    }
  char name[96];
  snprintf(name, sizeof name, "swiglu rows %d hidden %d", rows, hidden);
  report(name, rel_err(got, ref), 1e-2);
  cudaFree(dgu), cudaFree(dh);
}

static void test_embed(int vocab, int dim, int rows) {
  auto emb = to_bf16(rand_f32((size_t)vocab * dim));
  vector<row_info> ri(rows);
  for (auto &r : ri)
    r = row_info{randint(vocab), 0, 0, 0};
  bf16 *de = upload(emb);
  row_info *dr = upload(ri);
  float *dx = poisoned<float>((size_t)rows * dim);
  launch_embed(dx, de, dr, rows, dim, 0);
  SYNC();
  auto got = to_f64(download(dx, (size_t)rows * dim));
  vector<double> ref(got.size());
  for (int r = 0; r < rows; r++)
    for (int d = 0; d < dim; d++)
      ref[(size_t)r * dim + d] = __bfloat162float(emb[(size_t)ri[r].token * dim + d]);
  report("embedding gather", rel_err(got, ref), 0.0);
  cudaFree(de), cudaFree(dr), cudaFree(dx);
}

// ---- Paged KV fixtures ----------------------------------------------------------------------

// A page pool with random contents and, per sequence, a page table of shuffled page ids.
struct kv_fixture {
  kv_layout kv;
  vector<bf16> host;
  int n_pages, max_pages;
  vector<int> tables; // [n_seqs][max_pages]
  bf16 *dev = nullptr;
  int *dtables = nullptr;

  kv_fixture(int layers, int kv_heads, int page_size, int head_dim, const vector<int> &lens) {
    kv.n_layers = layers;
    kv.n_kv_heads = kv_heads;
    kv.page_size = page_size;
    kv.head_dim = head_dim;
    kv.page_stride = (size_t)layers * 2 * kv_heads * page_size * head_dim;
    max_pages = 1;
    int total = 0;
    for (int l : lens) {
      max_pages = std::max(max_pages, ceil_div(l, page_size));
      total += ceil_div(l, page_size);
    }
    n_pages = total + 3;
    vector<int> perm(n_pages);
    for (int i = 0; i < n_pages; i++)
      perm[i] = i;
    for (int i = n_pages - 1; i > 0; i--)
      std::swap(perm[i], perm[randint(i + 1)]);
    tables.assign(lens.size() * max_pages, 0);
    int next = 0;
    for (size_t s = 0; s < lens.size(); s++)
      for (int p = 0; p < ceil_div(lens[s], page_size); p++)
        tables[s * max_pages + p] = perm[next++];
    host = rand_bf16((size_t)n_pages * kv.page_stride);
    dev = upload(host);
    kv.base = dev;
    dtables = upload(tables);
  }
  ~kv_fixture() {
    cudaFree(dev);
    cudaFree(dtables);
  }
  double at(int seq, int pos, int layer, int is_v, int head, int d) const {
    int page = tables[(size_t)seq * max_pages + pos / kv.page_size];
    return __bfloat162float(host[kv.offset(page, layer, is_v, head, pos % kv.page_size) + d]);
  }
};

// ---- QKV: bias, Q/K norm, RoPE, KV write ----------------------------------------------------

static void test_qkv(int head_dim, int n_heads, int n_kv, int page_size, int layout, bool bias, bool qk_norm) {
  int rows = 40, layers = 2, layer = 1;
  vector<int> lens = {3000, 700};
  kv_fixture f(layers, n_kv, page_size, head_dim, lens);
  vector<row_info> ri(rows);
  for (int r = 0; r < rows; r++) {
    int s = r % 2;
    ri[r] = row_info{0, randint(lens[s]), s, 0};
  }
  // Distinct positions per sequence, so no two rows write one slot.
  for (int r = 0; r < rows; r++)
    ri[r].pos = (r / 2) * (lens[r % 2] / (rows / 2)) + randint(lens[r % 2] / (rows / 2));
  int q_dim = n_heads * head_dim, qkv_dim = q_dim + 2 * n_kv * head_dim;
  auto qkv = to_bf16(rand_f32((size_t)rows * qkv_dim));
  auto b = rand_f32(qkv_dim, 0.0, 0.5), qn = rand_f32(head_dim, 1.0, 0.2), kn = rand_f32(head_dim, 1.0, 0.2);
  vector<float> inv(head_dim / 2);
  for (int i = 0; i < head_dim / 2; i++)
    inv[i] = (float)pow(500000.0, -2.0 * i / head_dim);
  bf16 *dqkv = upload(qkv), *dq = poisoned<bf16>((size_t)rows * q_dim);
  float *db = upload(b), *dqn = upload(qn), *dkn = upload(kn), *dinv = upload(inv);
  row_info *dri = upload(ri);
  qkv_args a = {dq, f.kv, layer, dqkv, bias ? db : nullptr, qk_norm ? dqn : nullptr, qk_norm ? dkn : nullptr, dinv,
                dri, f.dtables, f.max_pages, n_heads, n_kv, head_dim, layout, 1e-6f};
  launch_qkv_rope(a, rows, 0);
  SYNC();
  auto q = to_f64(download(dq, (size_t)rows * q_dim));
  auto pool = download(f.dev, f.host.size());
  vector<double> qref(q.size()), kgot, kref;
  for (int r = 0; r < rows; r++) {
    for (int hh = 0; hh < n_heads + 2 * n_kv; hh++) {
      vector<double> v(head_dim);
      for (int d = 0; d < head_dim; d++)
        v[d] = __bfloat162float(qkv[(size_t)r * qkv_dim + hh * head_dim + d]) + (bias ? b[hh * head_dim + d] : 0.0);
      int kind = hh < n_heads ? 0 : hh < n_heads + n_kv ? 1 : 2;
      if (kind < 2) {
        if (qk_norm) {
          double ss = 0;
          for (double x : v)
            ss += x * x;
          double sc = 1 / sqrt(ss / head_dim + 1e-6);
          for (int d = 0; d < head_dim; d++)
            v[d] *= sc * (kind == 0 ? qn[d] : kn[d]);
        }
        for (int i = 0; i < head_dim / 2; i++) {
          double ang = (double)ri[r].pos * inv[i];
          int ia = layout == YAIE_ROPE_HALF ? i : 2 * i, ib = layout == YAIE_ROPE_HALF ? i + head_dim / 2 : 2 * i + 1;
          double v0 = v[ia], v1 = v[ib];
          v[ia] = v0 * cos(ang) - v1 * sin(ang);
          v[ib] = v0 * sin(ang) + v1 * cos(ang);
        }
      }
      for (int d = 0; d < head_dim; d++) {
        if (kind == 0) {
          qref[(size_t)r * q_dim + hh * head_dim + d] = v[d];
        } else {
          int head = hh - n_heads - (kind - 1) * n_kv, s = ri[r].table;
          int page = f.tables[(size_t)s * f.max_pages + ri[r].pos / page_size];
          kgot.push_back(__bfloat162float(pool[f.kv.offset(page, layer, kind - 1, head, ri[r].pos % page_size) + d]));
          kref.push_back(v[d]);
        }
      }
    }
  }
  char name[128];
  snprintf(name, sizeof name, "qkv rope %s hd %d heads %d/%d page %d%s%s: Q", layout ? "half" : "adjacent", head_dim,
           n_heads, n_kv, page_size, bias ? " bias" : "", qk_norm ? " qknorm" : "");
  report(name, rel_err(q, qref), 1e-2);
  name[strlen(name) - 1] = 0;
  strcat(name, "K/V pages");
  report(name, rel_err(kgot, kref), 1e-2);
  cudaFree(dqkv), cudaFree(dq), cudaFree(db), cudaFree(dqn), cudaFree(dkn), cudaFree(dinv), cudaFree(dri);
}

// ---- Attention --------------------------------------------------------------------------------

struct seq_spec {
  int pos, n_tokens; // the chunk's first position and length
};

static void test_attention(int page_size, int head_dim, int group, int n_kv, const vector<seq_spec> &seqs,
                           bool tensor_cores, int force_splits) {
  int layers = 2, layer = 1, n_heads = n_kv * group, q_dim = n_heads * head_dim;
  vector<int> lens;
  int rows = 0;
  for (auto &s : seqs) {
    lens.push_back(s.pos + s.n_tokens);
    rows += s.n_tokens;
  }
  kv_fixture f(layers, n_kv, page_size, head_dim, lens);
  vector<row_info> ri;
  vector<prefill_item> items;
  vector<int> dec_rows;
  int r0 = 0;
  for (size_t s = 0; s < seqs.size(); s++) {
    for (int i = 0; i < seqs[s].n_tokens; i++) {
      ri.push_back(row_info{0, seqs[s].pos + i, (int)s, 0});
      if (!tensor_cores || seqs[s].n_tokens == 1)
        dec_rows.push_back(r0 + i);
    }
    if (tensor_cores && seqs[s].n_tokens > 1)
      for (int q0 = 0; q0 < seqs[s].n_tokens; q0 += 64)
        items.push_back(prefill_item{r0, seqs[s].n_tokens, seqs[s].pos, (int)s, q0, {0, 0, 0}});
    r0 += seqs[s].n_tokens;
  }
  auto q = to_bf16(rand_f32((size_t)rows * q_dim));
  bf16 *dq = upload(q), *dout = poisoned<bf16>((size_t)rows * q_dim);
  row_info *dri = upload(ri);
  prefill_item *ditems = upload(items);
  int *ddec = upload(dec_rows);
  int n_dec = (int)dec_rows.size();
  int max_len = *std::max_element(lens.begin(), lens.end());
  int splits = force_splits ? force_splits : attention_rows_splits(n_dec, n_kv, group, 132, max_len);
  float *pacc = poisoned<float>((size_t)std::max(n_dec, 1) * n_heads * splits * head_dim);
  float *pml = poisoned<float>((size_t)std::max(n_dec, 1) * n_heads * splits * 2);
  attn_args a = {dq, dout, f.kv, layer, dri, f.dtables, f.max_pages, n_heads, n_kv, head_dim, 1.0f / sqrtf((float)head_dim), 0};
  if (n_dec)
    launch_attention_rows(a, ddec, n_dec, splits, pacc, pml, 0);
  if (!items.empty())
    launch_attention_prefill(a, ditems, (int)items.size(), 0);
  SYNC();
  auto out = to_f64(download(dout, (size_t)rows * q_dim));
  vector<double> ref(out.size());
  double scale = 1.0 / sqrt((double)head_dim);
  for (int r = 0; r < rows; r++) {
    int s = ri[r].table, len = ri[r].pos + 1;
    for (int h = 0; h < n_heads; h++) {
      int kvh = h / group;
      vector<double> sc(len);
      double mx = -INFINITY;
      for (int j = 0; j < len; j++) {
        double dot = 0;
        for (int d = 0; d < head_dim; d++)
          dot += (double)__bfloat162float(q[(size_t)r * q_dim + h * head_dim + d]) * f.at(s, j, layer, 0, kvh, d);
        sc[j] = dot * scale;
        mx = std::max(mx, sc[j]);
      }
      double sum = 0;
      for (auto &x : sc)
        sum += (x = exp(x - mx));
      for (int d = 0; d < head_dim; d++) {
        double o = 0;
        for (int j = 0; j < len; j++)
          o += sc[j] * f.at(s, j, layer, 1, kvh, d);
        ref[(size_t)r * q_dim + h * head_dim + d] = o / sum;
      }
    }
  }
  char name[160];
  int n = snprintf(name, sizeof name, "attention %s page %d hd %d gqa %d splits %d:", tensor_cores ? "tc+rows" : "rows",
                   page_size, head_dim, group, n_dec ? splits : 0);
  for (auto &s : seqs)
    n += snprintf(name + n, sizeof name - n, " %d+%d", s.pos, s.n_tokens);
  report(name, rel_err(out, ref), 1e-2);
  cudaFree(dq), cudaFree(dout), cudaFree(dri), cudaFree(ditems), cudaFree(ddec), cudaFree(pacc), cudaFree(pml);
}

// ---- Matrix products ---------------------------------------------------------------------------

// Copies src to dst after spinning for about 200 µs, having let a dependent launch start at once:
// the streaming product, launched as one right after it, reads its x only if it waits
// (pdl_wait) for this kernel's writes; x starts as NaN.
__global__ void late_copy_kernel(bf16 *dst, const bf16 *src, size_t n) {
  pdl_trigger();
  long long t0 = clock64();
  while (clock64() - t0 < 400000) {
  }
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = src[i];
}

// The products under test run on a stream of their own: the legacy default stream need not honour
// programmatic dependent launch.
static cudaStream_t pdl_stream() {
  static cudaStream_t s = nullptr;
  if (!s)
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

// x on the device by way of late_copy_kernel on pdl_stream(); *stage (free it after the product
// ran) holds it.
static bf16 *upload_late(const vector<bf16> &x, bf16 **stage) {
  bf16 *d = poisoned<bf16>(x.size());
  *stage = upload(x);
  SYNC(); // the poisoning is on the default stream, which pdl_stream() does not wait for
  late_copy_kernel<<<4, 256, 0, pdl_stream()>>>(d, *stage, x.size());
  return d;
}

static void test_gemm(cublasHandle_t blas, int m, int n, int k, int out_f32, int small_m) {
  auto x = to_bf16(rand_f32((size_t)m * k)), w = to_bf16(rand_f32((size_t)n * k, 0.0, 0.05));
  bf16 *dw = upload(w);
  void *dy = out_f32 ? (void *)poisoned<float>((size_t)m * n) : (void *)poisoned<bf16>((size_t)m * n);
  gemm_ctx g = {blas, pdl_stream(), small_m, 0, 1};
  cublasSetStream(blas, pdl_stream());
  gemm(g, dy, out_f32, dw, dw, m, n, k); // loads the kernels first (CUDA loads modules lazily)
  SYNC();
  CHECK(cudaMemset(dy, 0xff, (size_t)m * n * (out_f32 ? sizeof(float) : sizeof(bf16)))); // poisoned again
  bf16 *stage, *dx = upload_late(x, &stage);
  yaie_status st = gemm(g, dy, out_f32, dx, dw, m, n, k);
  cublasSetStream(blas, 0);
  if (st != YAIE_OK) {
    printf("FAIL gemm: %s\n", cuda_last_error());
    failures++;
    return;
  }
  SYNC();
  vector<double> got;
  if (out_f32)
    got = to_f64(download((float *)dy, (size_t)m * n));
  else
    got = to_f64(download((bf16 *)dy, (size_t)m * n));
  auto xd = to_f64(x), wd = to_f64(w);
  vector<double> ref((size_t)m * n);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0;
      for (int t = 0; t < k; t++)
        s += xd[(size_t)i * k + t] * wd[(size_t)j * k + t];
      ref[(size_t)i * n + j] = s;
    }
  char name[96];
  snprintf(name, sizeof name, "gemm %s %d x %d x %d -> %s", m <= small_m ? "small-m" : "cublas", m, n, k,
           out_f32 ? "f32" : "bf16");
  report(name, rel_err(got, ref), out_f32 ? 1e-3 : 1e-2);
  cudaFree(dx), cudaFree(dw), cudaFree(dy), cudaFree(stage);
}

// SwiGLU fused into the streaming product: x rows are [gate | up].
static void test_gemm_glu(int m, int n, int k) {
  auto x = to_bf16(rand_f32((size_t)m * 2 * k, 0.0, 1.5)), w = to_bf16(rand_f32((size_t)n * k, 0.0, 0.05));
  bf16 *dw = upload(w), *dy = poisoned<bf16>((size_t)m * n);
  launch_gemm_small(dy, 0, dw, dw, m, n, k, pdl_stream(), 1, 1); // loads the kernel first
  SYNC();
  CHECK(cudaMemset(dy, 0xff, (size_t)m * n * sizeof(bf16))); // poisoned again
  bf16 *stage, *dx = upload_late(x, &stage);
  launch_gemm_small(dy, 0, dx, dw, m, n, k, pdl_stream(), 1, 1);
  SYNC();
  auto got = to_f64(download(dy, (size_t)m * n));
  auto xd = to_f64(x), wd = to_f64(w);
  vector<double> ref((size_t)m * n);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double acc = 0;
      for (int t = 0; t < k; t++) {
        double g = xd[(size_t)i * 2 * k + t], u = xd[(size_t)i * 2 * k + k + t];
        acc += (double)__bfloat162float(__float2bfloat16((float)(g / (1 + exp(-g)) * u))) * wd[(size_t)j * k + t];
      }
      ref[(size_t)i * n + j] = acc;
    }
  char name[96];
  snprintf(name, sizeof name, "gemm small-m with fused SwiGLU %d x %d x %d", m, n, k);
  report(name, rel_err(got, ref), 1e-2);
  cudaFree(dx), cudaFree(dw), cudaFree(dy), cudaFree(stage);
}

// ---- Sampling -----------------------------------------------------------------------------------

// The host's version of the GPU sampler's choice, in doubles: the kept set and the index-order
// draw. Returns the token, and in *margin how close the draw fell to a boundary (relative).
static int host_sample(const vector<float> &logits, const sample_row &R, const vector<int> &pen_tok,
                       const vector<int> &pen_cnt, const vector<uint8_t> *mask, double *margin) {
  int V = (int)logits.size();
  vector<double> l(logits.begin(), logits.end());
  if (mask)
    for (int i = 0; i < V; i++)
      if (!(*mask)[i])
        l[i] = -INFINITY;
  for (size_t j = 0; j < pen_tok.size(); j++) {
    double v = l[pen_tok[j]];
    v = v > 0 ? v / R.repetition : v * R.repetition;
    l[pen_tok[j]] = v - pen_cnt[j] * (double)R.frequency - R.presence;
  }
  *margin = 1;
  if (R.temperature == 0) {
    int best = 0;
    for (int i = 1; i < V; i++)
      if (l[i] > l[best])
        best = i;
    double second = -INFINITY;
    for (int i = 0; i < V; i++)
      if (i != best)
        second = std::max(second, l[i]);
    *margin = l[best] - second;
    return best;
  }
  double mx = *std::max_element(l.begin(), l.end());
  vector<double> w(V);
  double total = 0;
  vector<int> cand;
  for (int i = 0; i < V; i++) {
    w[i] = std::isinf(l[i]) ? 0 : exp((l[i] - mx) / R.temperature);
    total += w[i];
    if (w[i] > 0 && w[i] >= R.min_p)
      cand.push_back(i);
  }
  vector<int> sorted = cand;
  std::stable_sort(sorted.begin(), sorted.end(), [&](int a, int b) { return w[a] > w[b]; });
  size_t keep = sorted.size();
  if (R.top_k > 0 && (size_t)R.top_k < keep)
    keep = R.top_k;
  bool fragile = false;
  if (R.top_p < 1) {
    double mass = 0;
    for (size_t i = 0; i < keep; i++) {
      mass += w[sorted[i]] / total;
      fragile |= fabs(mass - R.top_p) < 1e-6;
      if (mass >= R.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double thr = keep ? w[sorted[keep - 1]] : 0;
  double kept_mass = 0;
  for (int i : cand)
    if (w[i] >= thr)
      kept_mass += w[i];
  double target = R.uniform * kept_mass, acc = 0;
  int chosen = cand.back();
  for (int i : cand)
    if (w[i] >= thr) {
      double before = acc;
      acc += w[i];
      if (acc > target) {
        chosen = i;
        *margin = std::min(target - before, acc - target) / kept_mass;
        break;
      }
    }
  // Boundary of the kept set: a weight next to the threshold makes the set itself fragile.
  for (int i : cand)
    if (w[i] != thr && fabs(w[i] - thr) < 1e-6 * thr)
      fragile = true;
  if (fragile)
    *margin = 0;
  return chosen;
}

static void test_sample(int vocab, const char *what, sample_row base, int draws, bool penalties, bool with_mask) {
  auto logits = rand_f32(vocab, 0.0, 3.0);
  vector<int> pen_tok, pen_cnt;
  if (penalties)
    for (int i = 0; i < 50; i++) {
      pen_tok.push_back((i * 7919 + 13) % vocab);
      pen_cnt.push_back(1 + i % 4);
    }
  // Make the penalized tokens matter: some of them are the best logits.
  for (int i = 0; i < 5 && penalties; i++)
    logits[pen_tok[i]] = 12.0f + i;
  vector<uint8_t> mask(vocab, 1);
  if (with_mask)
    for (int i = 0; i < vocab; i++)
      mask[i] = (uint8_t)(i % 3 != 0);
  vector<float> all;
  vector<sample_row> rows(draws);
  for (int d = 0; d < draws; d++) {
    all.insert(all.end(), logits.begin(), logits.end());
    rows[d] = base;
    rows[d].logit_row = d;
    rows[d].pen_off = 0;
    rows[d].pen_n = (int)pen_tok.size();
    rows[d].mask_off = with_mask ? 0 : -1;
    rows[d].want_logprob = 1;
    rows[d].uniform = (float)uniform();
  }
  float *dl = upload(all);
  sample_row *dr = upload(rows);
  int *dpt = upload(pen_tok), *dpc = upload(pen_cnt), *dids = poisoned<int>(draws);
  float *dpo = poisoned<float>(std::max<size_t>(pen_tok.size(), 1)), *dlp = poisoned<float>(draws);
  uint8_t *dm = upload(mask);
  // Every row's draw is independent; rows that share penalties write the same pen_orig values.
  launch_sample(dids, dlp, dl, dr, draws, vocab, dpt, dpc, dpo, dm, 0);
  SYNC();
  auto ids = download(dids, draws);
  auto lps = download(dlp, draws);
  int agree = 0, fragile = 0;
  double lp_err = 0;
  double lmax = *std::max_element(logits.begin(), logits.end()), lsum = 0;
  for (float x : logits)
    lsum += exp(x - lmax);
  for (int d = 0; d < draws; d++) {
    double margin;
    int want = host_sample(logits, rows[d], pen_tok, pen_cnt, with_mask ? &mask : nullptr, &margin);
    if (ids[d] == want)
      agree++;
    else if (margin < 1e-5)
      fragile++;
    else if (failures < 50)
      printf("  draw %d: gpu %d, host %d (u %.6f)\n", d, ids[d], want, rows[d].uniform);
    if (ids[d] >= 0 && ids[d] < vocab)
      lp_err = std::max(lp_err, fabs(lps[d] - (logits[ids[d]] - lmax - log(lsum))));
    else
      lp_err = INFINITY;
  }
  char name[128];
  snprintf(name, sizeof name, "sample %s vocab %d: %d/%d agree, %d at a boundary", what, vocab, agree, draws, fragile);
  report(name, 1.0 - (double)(agree + fragile) / draws, 0.0);
  snprintf(name, sizeof name, "sample %s logprob (abs err)", what);
  report(name, lp_err, 1e-3);
  cudaFree(dl), cudaFree(dr), cudaFree(dpt), cudaFree(dpc), cudaFree(dids), cudaFree(dpo), cudaFree(dlp), cudaFree(dm);
}

static void test_sample_mask_all(int vocab) {
  auto logits = rand_f32(vocab);
  vector<uint8_t> mask(vocab, 0);
  sample_row r = {0, 0, 0, 0, 0, 0, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.5f};
  float *dl = upload(logits);
  sample_row *dr = upload(vector<sample_row>{r});
  uint8_t *dm = upload(mask);
  int *dids = poisoned<int>(1);
  launch_sample(dids, nullptr, dl, dr, 1, vocab, nullptr, nullptr, nullptr, dm, 0);
  SYNC();
  report("sample: a mask forbidding every token gives -2", download(dids, 1)[0] == -2 ? 0.0 : 1.0, 0.0);
  cudaFree(dl), cudaFree(dr), cudaFree(dm), cudaFree(dids);
}

// ---- Timings (--bench) ------------------------------------------------------------------------

template <typename F> static double time_ms(F run, int reps = 20) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 3; i++)
    run();
  vector<float> t;
  for (int i = 0; i < reps; i++) {
    cudaEventRecord(a);
    run();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

static void bench(cublasHandle_t blas) {
  printf("\n-- matrix products at Llama-3-8B shapes (GB/s of weights; TFLOP/s) --\n");
  struct { const char *name; int n, k; } shapes[] = {
      {"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}, {"classifier", 128256, 4096}};
  int ms_list[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 4096};
  for (auto &s : shapes) {
    // Several weight copies in rotation, so the timing is not of the 50 MB L2.
    int copies = (size_t)s.n * s.k * 2 < (256u << 20) ? 4 : 1;
    vector<bf16 *> ws;
    for (int c = 0; c < copies; c++) {
      bf16 *w;
      CHECK(cudaMalloc(&w, (size_t)s.n * s.k * 2));
      ws.push_back(w);
    }
    bf16 *x = upload(rand_bf16((size_t)4096 * s.k));
    for (auto w : ws) {
      vector<bf16> wh = rand_bf16((size_t)s.n * s.k, 0.05);
      CHECK(cudaMemcpy(w, wh.data(), wh.size() * 2, cudaMemcpyHostToDevice));
    }
    void *y;
    CHECK(cudaMalloc(&y, (size_t)4096 * s.n * 4));
    for (int m : ms_list) {
      int which = 0;
      double t_blas = time_ms([&] {
        gemm_ctx g = {blas, 0, 0, 0, 0};
        gemm(g, y, 0, x, ws[which++ % copies], m, s.n, s.k);
      });
      double t_small = m <= 8 ? time_ms([&] { launch_gemm_small(y, 0, x, ws[which++ % copies], m, s.n, s.k, 0); }) : 0;
      if (m == 1 && !strcmp(s.name, "down")) {
        double t_glu = time_ms([&] { launch_gemm_small(y, 0, x, ws[which++ % copies], m, s.n, s.k, 0, 1); });
        printf("down m 1 with SwiGLU fused: %.3f ms %.0f GB/s\n", t_glu, (double)s.n * s.k * 2 / t_glu / 1e6);
      }
      double bytes = (double)s.n * s.k * 2, flops = 2.0 * m * s.n * s.k;
      printf("%-10s m %4d: cublas %8.3f ms %6.0f GB/s %6.1f TF", s.name, m, t_blas, bytes / t_blas / 1e6,
             flops / t_blas / 1e9);
      if (m <= 8)
        printf(" | small-m %8.3f ms %6.0f GB/s", t_small, bytes / t_small / 1e6);
      printf("\n");
    }
    SYNC();
    for (auto w : ws)
      cudaFree(w);
    cudaFree(x);
    cudaFree(y);
  }

  printf("\n-- attention at Llama-3-8B shapes (32 heads, 8 KV heads, hd 128, page 16) --\n");
  for (int batch : {1, 8, 64, 256}) {
    int len = 640, n_kv = 8, group = 4, hd = 128, n_heads = 32;
    vector<int> lens(batch, len);
    kv_fixture f(1, n_kv, 16, hd, lens);
    vector<row_info> ri(batch);
    for (int i = 0; i < batch; i++)
      ri[i] = row_info{0, len - 1, i, 0};
    auto qh = to_bf16(rand_f32((size_t)batch * n_heads * hd));
    bf16 *q = upload(qh), *out = poisoned<bf16>((size_t)batch * n_heads * hd);
    row_info *dri = upload(ri);
    int splits = attention_rows_splits(batch, n_kv, group, 132, len);
    float *pacc = poisoned<float>((size_t)batch * n_heads * splits * hd), *pml = poisoned<float>((size_t)batch * n_heads * splits * 2);
    attn_args a = {q, out, f.kv, 0, dri, f.dtables, f.max_pages, n_heads, n_kv, hd, 0.0884f, 0};
    double t = time_ms([&] { launch_attention_rows(a, nullptr, batch, splits, pacc, pml, 0); });
    double bytes = (double)batch * len * n_kv * hd * 2 * 2;
    printf("decode batch %3d len %d splits %2d: %.3f ms, %.0f GB/s of KV\n", batch, len, splits, t, bytes / t / 1e6);
    SYNC();
    cudaFree(q), cudaFree(out), cudaFree(dri), cudaFree(pacc), cudaFree(pml);
  }
  for (int n_tok : {512, 4096}) {
    int n_kv = 8, hd = 128, n_heads = 32;
    kv_fixture f(1, n_kv, 16, hd, vector<int>{n_tok});
    vector<row_info> ri(n_tok);
    vector<prefill_item> items;
    for (int i = 0; i < n_tok; i++)
      ri[i] = row_info{0, i, 0, 0};
    for (int q0 = (n_tok - 1) / 64 * 64; q0 >= 0; q0 -= 64)
      items.push_back(prefill_item{0, n_tok, 0, 0, q0, {0, 0, 0}});
    auto qh = to_bf16(rand_f32((size_t)n_tok * n_heads * hd));
    bf16 *q = upload(qh), *out = poisoned<bf16>((size_t)n_tok * n_heads * hd);
    row_info *dri = upload(ri);
    prefill_item *dit = upload(items);
    attn_args a = {q, out, f.kv, 0, dri, f.dtables, f.max_pages, n_heads, n_kv, hd, 0.0884f, 0};
    double t = time_ms([&] { launch_attention_prefill(a, dit, (int)items.size(), 0); }, 10);
    double flops = 4.0 * n_heads * hd * (double)n_tok * n_tok / 2;
    printf("prefill %4d tokens: %.3f ms, %.0f TFLOP/s (causal)\n", n_tok, t, flops / t / 1e9);
    SYNC();
    cudaFree(q), cudaFree(out), cudaFree(dri), cudaFree(dit);
  }
}

// ---- main ----------------------------------------------------------------------------------------

int main(int argc, char **argv) {
  bool do_bench = false;
  for (int i = 1; i < argc; i++) {
    quick |= !strcmp(argv[i], "--quick");
    do_bench |= !strcmp(argv[i], "--bench");
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  printf("yaie_cuda_test on %s (%d SMs)%s\n", prop.name, prop.multiProcessorCount, quick ? ", quick" : "");
  cublasHandle_t blas;
  cublasCreate(&blas);

  test_embed(1000, 96, 17);
  for (int dim : {64, 100, 576, 1500, 4096, 8192, 9000}) { // each register-held width, and the plain loop
    test_rmsnorm(7, dim, false, false);
    test_rmsnorm(7, dim, true, false);
    test_rmsnorm(9, dim, true, true);
  }
  test_swiglu(5, 1536);
  test_swiglu(3, 14336);

  for (int layout : {0, 1})
    for (int hd : {64, 128}) {
      test_qkv(hd, 8, 2, 16, layout, false, false);
      test_qkv(hd, 4, 4, 1, layout, true, false);
      test_qkv(hd, 8, 1, 64, layout, false, true);
    }
  test_qkv(8, 8, 4, 7, 0, false, false); // stories260K's head size

  // Attention: page sizes 1, 16, 64; head sizes 64, 128; GQA 1, 4, 8; prefill chunks over a cached
  // prefix, fresh ones, and decode rows, with lengths crossing page boundaries.
  vector<seq_spec> mix = {{0, 130}, {37, 100}, {700, 1}, {1023, 1}, {64, 1}, {0, 1}};
  vector<seq_spec> small_mix = {{0, 70}, {17, 33}, {300, 1}, {0, 1}};
  for (int ps : {1, 16, 64})
    for (int hd : {64, 128})
      for (int group : {1, 4, 8}) {
        if (quick && !(ps == 16 || (hd == 64 && group == 4)))
          continue;
        test_attention(ps, hd, group, 2, quick ? small_mix : mix, true, 0);
        if (!quick)
          test_attention(ps, hd, group, 2, mix, false, 0);
      }
  for (int splits : {1, 3, 32})
    test_attention(16, 128, 4, 2, {{1500, 1}, {5, 1}, {999, 1}}, false, splits);
  test_attention(7, 8, 2, 4, quick ? small_mix : mix, false, 0); // stories260K: hd 8, rows kernel
  for (int splits : {9, 32}) // hd 8 over more parts than its merge has threads per head
    test_attention(7, 8, 2, 4, {{1500, 1}, {5, 1}, {999, 1}}, false, splits);
  test_attention(16, 80, 3, 2, small_mix, false, 0);               // a head size the prefill kernel does not take
  test_attention(16, 64, 16, 1, small_mix, true, 0);               // more query heads per KV head than a block takes

  for (int small : {0, 8}) {
    test_gemm(blas, 1, 1000, 512, 0, small);
    test_gemm(blas, 2, 300, 8192, 0, small);
    test_gemm(blas, 3, 777, 1024, 0, small);
    test_gemm(blas, 8, 256, 4096, 1, small);
    test_gemm(blas, 2, 512, 64, 1, small);
  }
  test_gemm(blas, 37, 300, 520, 0, 8);
  test_gemm(blas, 200, 512, 384, 1, 8);
  test_gemm(blas, 13, 96, 100, 0, 8); // k not a multiple of 8: cuBLAS
  test_gemm(blas, 11, 1000, 512, 0, 16); // 11 rows in 8 + 2 + 1 small-m launches
  test_gemm(blas, 1, 20000, 264, 1, 8);  // a tall matrix: two rows per warp
  test_gemm(blas, 1, 16385, 512, 0, 8);
  test_gemm_glu(1, 1000, 1536);
  test_gemm_glu(3, 300, 520);

  int vocab = quick ? 5000 : 50000, draws = quick ? 20 : 300;
  //                        row top_k pen mask lp  T     top_p min_p rep   freq  pres  u
  test_sample(vocab, "greedy", sample_row{0, 0, 0, 0, 0, 0, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0}, 4, false, false);
  test_sample(vocab, "greedy+penalties+mask", sample_row{0, 0, 0, 0, 0, 0, 0.0f, 1.0f, 0.0f, 1.3f, 0.2f, 0.5f, 0}, 4,
              true, true);
  test_sample(vocab, "temperature 0.8", sample_row{0, 0, 0, 0, 0, 0, 0.8f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0}, draws,
              false, false);
  test_sample(vocab, "top-k 40", sample_row{0, 40, 0, 0, 0, 0, 1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0}, draws, false,
              false);
  test_sample(vocab, "top-p 0.9", sample_row{0, 0, 0, 0, 0, 0, 1.0f, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 0}, draws, false,
              false);
  test_sample(vocab, "min-p 0.05", sample_row{0, 0, 0, 0, 0, 0, 1.2f, 1.0f, 0.05f, 1.0f, 0.0f, 0.0f, 0}, draws,
              false, false);
  test_sample(vocab, "top-k 50 top-p 0.8 min-p 0.01 penalties mask",
              sample_row{0, 50, 0, 0, 0, 0, 0.7f, 0.8f, 0.01f, 1.2f, 0.1f, 0.3f, 0}, draws, true, true);
  test_sample_mask_all(vocab);

  printf("%d checks, %d failed\n", checks, failures);
  if (do_bench)
    bench(blas);
  cublasDestroy(blas);
  return failures ? 1 : 0;
}

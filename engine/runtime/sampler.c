#define _GNU_SOURCE /* qsort_r */
/* Sampling one token from a row of logits: mask, penalties, then greedy or temperature with
 * top-k / top-p / min-p truncation. Each sampler carries its own random state (splitmix64 from
 * the seed), so the same seed and settings give the same tokens whatever else runs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sampler.h"

struct yaie_sampler {
  yaie_sampler_params p;
  int vocab;
  uint64_t rng;
  int32_t *counts; /* times each token was accepted, for the penalties */
  int32_t *seen;   /* the distinct accepted tokens, in first-seen order: counts' nonzero ids */
  int n_seen;
  float *raw;      /* the untouched logits, for logprobs */
  int *cand;       /* candidate ids, sorted by probability when truncating */
  float *prob;
};

yaie_status yaie_sampler_new(const yaie_sampler_params *params, int vocab_size, yaie_sampler **out) {
  *out = NULL;
  const yaie_sampler_params *p = params;
  if (vocab_size < 1)
    return yaie_fail(YAIE_ERR_ARG, "sampler: vocab_size %d must be positive", vocab_size);
  if (!(p->temperature >= 0) || p->top_k < 0 || !(p->top_p > 0 && p->top_p <= 1) ||
      !(p->min_p >= 0 && p->min_p <= 1) || !(p->repetition_penalty > 0))
    return yaie_fail(YAIE_ERR_ARG, "sampler: bad parameters (temperature %g >= 0, top_k %d >= 0, "
                     "top_p %g in (0, 1], min_p %g in [0, 1], repetition_penalty %g > 0)",
                     p->temperature, p->top_k, p->top_p, p->min_p, p->repetition_penalty);
  yaie_sampler *s = calloc(1, sizeof *s);
  if (!s)
    return yaie_fail(YAIE_ERR_NOMEM, "sampler: out of memory");
  s->p = *p;
  s->vocab = vocab_size;
  s->rng = p->seed;
  s->counts = calloc((size_t)vocab_size, sizeof *s->counts);
  s->seen = malloc((size_t)vocab_size * sizeof *s->seen);
  s->raw = malloc((size_t)vocab_size * sizeof *s->raw);
  s->cand = malloc((size_t)vocab_size * sizeof *s->cand);
  s->prob = malloc((size_t)vocab_size * sizeof *s->prob);
  if (!s->counts || !s->seen || !s->raw || !s->cand || !s->prob) {
    yaie_sampler_free(s);
    return yaie_fail(YAIE_ERR_NOMEM, "sampler: out of memory");
  }
  *out = s;
  return YAIE_OK;
}

void yaie_sampler_free(yaie_sampler *s) {
  if (!s)
    return;
  free(s->counts);
  free(s->seen);
  free(s->raw);
  free(s->cand);
  free(s->prob);
  free(s);
}

void yaie_sampler_accept(yaie_sampler *s, int32_t id) {
  if (id >= 0 && id < s->vocab && s->counts[id]++ == 0)
    s->seen[s->n_seen++] = id;
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static float random_unit(yaie_sampler *s) { return (float)(splitmix64(&s->rng) >> 40) / 16777216.0f; }

static void apply_penalties(const yaie_sampler *s, float *logits) {
  const yaie_sampler_params *p = &s->p;
  if (p->repetition_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f)
    return;
  for (int i = 0; i < s->vocab; i++) {
    int n = s->counts[i];
    if (!n)
      continue;
    float l = logits[i];
    l = l > 0 ? l / p->repetition_penalty : l * p->repetition_penalty;
    logits[i] = l - (float)n * p->frequency_penalty - p->presence_penalty;
  }
}

static int argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

static int by_prob_desc(const void *a, const void *b, void *prob) {
  float pa = ((const float *)prob)[*(const int *)a], pb = ((const float *)prob)[*(const int *)b];
  return pa < pb ? 1 : pa > pb ? -1 : *(const int *)a - *(const int *)b;
}

/* Temperature softmax over the allowed tokens, then the truncations; returns the number of
 * candidates left in s->cand (most probable first when any truncation applies). */
static int truncate_candidates(yaie_sampler *s, const float *logits) {
  const yaie_sampler_params *p = &s->p;
  int best = argmax(logits, s->vocab), n = 0;
  float max = logits[best], sum = 0.0f;
  for (int i = 0; i < s->vocab; i++) {
    s->prob[i] = isinf(logits[i]) && logits[i] < 0 ? 0.0f : expf((logits[i] - max) / p->temperature);
    sum += s->prob[i];
  }
  /* Before normalizing, the best token's weight is exactly 1, so min_p is the floor itself. */
  for (int i = 0; i < s->vocab; i++) {
    if (s->prob[i] > 0 && s->prob[i] >= p->min_p)
      s->cand[n++] = i;
    s->prob[i] /= sum;
  }
  if (p->top_k > 0 || p->top_p < 1.0f) {
    qsort_r(s->cand, (size_t)n, sizeof *s->cand, by_prob_desc, s->prob);
    if (p->top_k > 0 && p->top_k < n)
      n = p->top_k;
    if (p->top_p < 1.0f) {
      float mass = 0.0f;
      for (int i = 0; i < n; i++) {
        mass += s->prob[s->cand[i]];
        if (mass >= p->top_p) {
          n = i + 1;
          break;
        }
      }
    }
  }
  return n;
}

yaie_status yaie_sampler_sample(yaie_sampler *s, float *logits, const uint8_t *mask, int32_t *id, float *logprob) {
  if (logprob)
    memcpy(s->raw, logits, (size_t)s->vocab * sizeof *logits);
  if (mask) {
    int allowed = 0;
    for (int i = 0; i < s->vocab; i++) {
      if (!mask[i])
        logits[i] = -INFINITY;
      allowed += mask[i] != 0;
    }
    if (!allowed)
      return yaie_fail(YAIE_ERR_STATE, "sampler: the mask forbids every token");
  }
  apply_penalties(s, logits);
  int chosen;
  if (s->p.temperature == 0.0f) {
    chosen = argmax(logits, s->vocab);
  } else {
    int n = truncate_candidates(s, logits);
    float mass = 0.0f;
    for (int i = 0; i < n; i++)
      mass += s->prob[s->cand[i]];
    float r = random_unit(s) * mass, acc = 0.0f;
    chosen = s->cand[n - 1];
    for (int i = 0; i < n; i++) {
      acc += s->prob[s->cand[i]];
      if (r < acc) {
        chosen = s->cand[i];
        break;
      }
    }
  }
  if (logprob) {
    float max = s->raw[argmax(s->raw, s->vocab)];
    double sum = 0.0;
    for (int i = 0; i < s->vocab; i++)
      sum += exp((double)(s->raw[i] - max));
    *logprob = (float)((double)(s->raw[chosen] - max) - log(sum));
  }
  *id = chosen;
  return YAIE_OK;
}

int yaie_sampler_has_penalties(const yaie_sampler *s) {
  const yaie_sampler_params *p = &s->p;
  return p->repetition_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

const yaie_sampler_params *yaie_sampler_params_of(const yaie_sampler *s) { return &s->p; }

void yaie_sampler_draws(yaie_sampler *s, int n, float *out) {
  for (int i = 0; i < n; i++)
    out[i] = s->p.temperature == 0.0f ? 0.0f : random_unit(s);
}

void yaie_sampler_request(yaie_sampler *s, yaie_sample_req *req) {
  const yaie_sampler_params *p = &s->p;
  int penalties = yaie_sampler_has_penalties(s);
  req->params = *p;
  req->uniform = p->temperature == 0.0f ? 0.0f : random_unit(s);
  req->seen = penalties ? s->seen : NULL;
  req->counts = s->counts;
  req->n_seen = penalties ? s->n_seen : 0;
}

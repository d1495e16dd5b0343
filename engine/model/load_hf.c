/* Hugging Face model directories (Llama, Mistral, Qwen2, Qwen3): config.json names the
 * architecture and the sizes, the weights come from model.safetensors or the shards of
 * model.safetensors.index.json (F32, F16 or BF16, held as fp32), and tokenizer.json, when present,
 * gives the tokenizer. HF checkpoints keep Q/K in the half RoPE layout, so weights are used as
 * stored; HF Linear weights are [out][in] row-major, which is our layout too. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "file.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

static const struct hf_arch {
  const char *class_name, *model_type;
  int qkv_bias, qk_norm;
} hf_archs[] = {
  {"LlamaForCausalLM", "llama", 0, 0},
  {"MistralForCausalLM", "mistral", 0, 0},
  {"Qwen2ForCausalLM", "qwen2", 1, 0},
  {"Qwen3ForCausalLM", "qwen3", 0, 1},
};

/* ---------------------------------------------------------------------------------------------
 * config.json */

static const cJSON *key(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsNull(v) ? NULL : v; /* HF writes null for "use the default" */
}

/* A number; an absent or null key leaves *out as it is unless it is required. */
static yaie_status get_number(const cJSON *obj, const char *path, const char *name, int required, double *out) {
  const cJSON *v = key(obj, name);
  if (!v && required)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: missing key %s", path, name);
  if (v && !cJSON_IsNumber(v))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: %s is not a number", path, name);
  if (v)
    *out = v->valuedouble;
  return YAIE_OK;
}

static yaie_status get_int(const cJSON *obj, const char *path, const char *name, int required, int *out) {
  double d = *out;
  YAIE_TRY(get_number(obj, path, name, required, &d));
  if (!(d > -2147483648.0 && d < 2147483648.0) || d != (double)(int)d)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: %s = %g is not an integer", path, name, d);
  *out = (int)d;
  return YAIE_OK;
}

static yaie_status get_bool(const cJSON *obj, const char *path, const char *name, int *out) {
  const cJSON *v = key(obj, name);
  if (v && !cJSON_IsBool(v))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: %s is not true or false", path, name);
  if (v)
    *out = cJSON_IsTrue(v);
  return YAIE_OK;
}

/* architectures[0], or model_type in the configs that leave architectures out. */
static yaie_status read_arch(const cJSON *j, const char *path, yaie_config *c) {
  const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(key(j, "architectures"), 0));
  const char *type = cJSON_GetStringValue(key(j, "model_type"));
  if (!name && !type)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: no architectures (or model_type)", path);
  for (size_t i = 0; i < sizeof hf_archs / sizeof hf_archs[0]; i++) {
    const struct hf_arch *a = &hf_archs[i];
    if (name ? !strcmp(name, a->class_name) : !strcmp(type, a->model_type)) {
      strcpy(c->arch, a->model_type);
      c->qkv_bias = a->qkv_bias;
      c->qk_norm = a->qk_norm;
      return YAIE_OK;
    }
  }
  return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (LlamaForCausalLM, "
                   "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)", path, name ? name : type);
}

/* rope_scaling (or, in newer transformers, rope_parameters, which also holds rope_theta). */
static yaie_status read_rope_scaling(const cJSON *j, const char *path, yaie_config *c) {
  const cJSON *rs = key(j, "rope_scaling");
  if (!rs && cJSON_IsObject(key(j, "rope_parameters"))) {
    rs = key(j, "rope_parameters");
    double theta = c->rope_theta;
    YAIE_TRY(get_number(rs, path, "rope_theta", 0, &theta));
    c->rope_theta = (float)theta;
  }
  if (!rs)
    return YAIE_OK;
  if (!cJSON_IsObject(rs))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: rope_scaling is not an object", path);
  const char *type = cJSON_GetStringValue(key(rs, "rope_type"));
  if (!type)
    type = cJSON_GetStringValue(key(rs, "type"));
  if (!type || !strcmp(type, "default"))
    return YAIE_OK;
  if (strcmp(type, "llama3"))
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported (llama3)", path, type);
  double factor = 0, low = 0, high = 0;
  YAIE_TRY(get_number(rs, path, "factor", 1, &factor));
  YAIE_TRY(get_number(rs, path, "low_freq_factor", 1, &low));
  YAIE_TRY(get_number(rs, path, "high_freq_factor", 1, &high));
  YAIE_TRY(get_int(rs, path, "original_max_position_embeddings", 1, &c->rope_original_max_pos));
  /* The blend divides by high - low, and the wavelengths by the factors. */
  if (!(factor > 0 && low > 0 && high > low && c->rope_original_max_pos > 0))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: llama3 rope_scaling needs factor > 0, 0 < low_freq_factor < "
                     "high_freq_factor and original_max_position_embeddings > 0", path);
  c->rope_scaling_factor = (float)factor;
  c->rope_low_freq_factor = (float)low;
  c->rope_high_freq_factor = (float)high;
  return YAIE_OK;
}

/* Features of these config classes that the engine does not implement fail here, rather than
 * loading a model that computes something else. */
static yaie_status check_unsupported(const cJSON *j, const char *path) {
  int attention_bias = 0, mlp_bias = 0;
  YAIE_TRY(get_bool(j, path, "attention_bias", &attention_bias));
  YAIE_TRY(get_bool(j, path, "mlp_bias", &mlp_bias));
  const char *act = cJSON_GetStringValue(key(j, "hidden_act"));
  if (attention_bias || mlp_bias)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: %s is not supported", path,
                     attention_bias ? "attention_bias" : "mlp_bias");
  if (act && strcmp(act, "silu"))
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (silu)", path, act);
  return YAIE_OK;
}

/* Sliding-window attention is not implemented; up to the window it equals full attention, so
 * the context is cut to the window where one applies. */
static yaie_status apply_sliding_window(const cJSON *j, const char *path, yaie_config *c) {
  int window = 0, use = !strcmp(c->arch, "mistral");
  YAIE_TRY(get_bool(j, path, "use_sliding_window", &use));
  YAIE_TRY(get_int(j, path, "sliding_window", 0, &window));
  if (use && window > 0 && window < c->max_seq_len)
    c->max_seq_len = window;
  return YAIE_OK;
}

static yaie_status read_config(const cJSON *j, const char *path, yaie_config *c) {
  YAIE_TRY(read_arch(j, path, c));
  YAIE_TRY(check_unsupported(j, path));
  YAIE_TRY(get_int(j, path, "hidden_size", 1, &c->dim));
  YAIE_TRY(get_int(j, path, "intermediate_size", 1, &c->hidden_dim));
  YAIE_TRY(get_int(j, path, "num_hidden_layers", 1, &c->n_layers));
  YAIE_TRY(get_int(j, path, "num_attention_heads", 1, &c->n_heads));
  YAIE_TRY(get_int(j, path, "vocab_size", 1, &c->vocab_size));
  c->n_kv_heads = c->n_heads;
  YAIE_TRY(get_int(j, path, "num_key_value_heads", 0, &c->n_kv_heads));
  c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
  YAIE_TRY(get_int(j, path, "head_dim", 0, &c->head_dim));
  c->max_seq_len = 2048;
  YAIE_TRY(get_int(j, path, "max_position_embeddings", 0, &c->max_seq_len));
  double eps = 1e-6, theta = 10000.0;
  YAIE_TRY(get_number(j, path, "rms_norm_eps", 0, &eps));
  YAIE_TRY(get_number(j, path, "rope_theta", 0, &theta));
  c->norm_eps = (float)eps;
  c->rope_theta = (float)theta;
  c->rope_layout = YAIE_ROPE_HALF;
  YAIE_TRY(get_bool(j, path, "tie_word_embeddings", &c->tied_embeddings));
  YAIE_TRY(read_rope_scaling(j, path, c));
  YAIE_TRY(apply_sliding_window(j, path, c));
  return yaie_config_validate(c, path);
}

/* ---------------------------------------------------------------------------------------------
 * Weights */

/* A matrix [rows][cols], or a vector [rows] when cols is 0. */
static yaie_status read_tensor(const yaie_safetensors *s, const char *name, float *dst, int rows, int cols) {
  uint64_t shape[2] = {(uint64_t)rows, (uint64_t)cols};
  return yaie_safetensors_read_f32(s, name, dst, cols ? 2 : 1, shape);
}

static yaie_status read_layer(const yaie_safetensors *s, yaie_model *m, int l) {
  const yaie_config *c = &m->config;
  yaie_layer *L = &m->layers[l];
  int dim = c->dim, hidden = c->hidden_dim, q = yaie_q_dim(c), kv = yaie_kv_dim(c);
  char name[128];
#define LAYER_TENSOR(suffix, dst, rows, cols)                       \
  do {                                                              \
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);   \
    YAIE_TRY(read_tensor(s, name, (dst), (rows), (cols)));          \
  } while (0)
  LAYER_TENSOR("input_layernorm.weight", L->attn_norm, dim, 0);
  LAYER_TENSOR("self_attn.q_proj.weight", yaie_wq(m, l), q, dim);
  LAYER_TENSOR("self_attn.k_proj.weight", yaie_wk(m, l), kv, dim);
  LAYER_TENSOR("self_attn.v_proj.weight", yaie_wv(m, l), kv, dim);
  LAYER_TENSOR("self_attn.o_proj.weight", L->wo, dim, q);
  LAYER_TENSOR("post_attention_layernorm.weight", L->ffn_norm, dim, 0);
  LAYER_TENSOR("mlp.gate_proj.weight", yaie_w_gate(m, l), hidden, dim);
  LAYER_TENSOR("mlp.up_proj.weight", yaie_w_up(m, l), hidden, dim);
  LAYER_TENSOR("mlp.down_proj.weight", L->w_down, dim, hidden);
  if (c->qkv_bias) {
    LAYER_TENSOR("self_attn.q_proj.bias", L->bqkv, q, 0);
    LAYER_TENSOR("self_attn.k_proj.bias", L->bqkv + q, kv, 0);
    LAYER_TENSOR("self_attn.v_proj.bias", L->bqkv + q + kv, kv, 0);
  }
  if (c->qk_norm) {
    LAYER_TENSOR("self_attn.q_norm.weight", L->q_norm, c->head_dim, 0);
    LAYER_TENSOR("self_attn.k_norm.weight", L->k_norm, c->head_dim, 0);
  }
#undef LAYER_TENSOR
  return YAIE_OK;
}

static yaie_status read_weights(const yaie_safetensors *s, yaie_model *m) {
  const yaie_config *c = &m->config;
  YAIE_TRY(read_tensor(s, "model.embed_tokens.weight", m->tok_embeddings, c->vocab_size, c->dim));
  YAIE_TRY(read_tensor(s, "model.norm.weight", m->final_norm, c->dim, 0));
  /* A tied model's lm_head.weight, when a checkpoint carries one anyway, is the same table. */
  if (!c->tied_embeddings)
    YAIE_TRY(read_tensor(s, "lm_head.weight", m->classifier, c->vocab_size, c->dim));
  for (int l = 0; l < c->n_layers; l++)
    YAIE_TRY(read_layer(s, m, l));
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The directory */

static yaie_status read_config_file(const char *dir, const char *path, yaie_config *c, char *dtype, size_t cap) {
  char *text;
  size_t len;
  if (!yaie_path_exists(path))
    return yaie_fail(YAIE_ERR_IO, "%s: no config.json (not a Hugging Face model directory?)", dir);
  YAIE_TRY(yaie_file_read_text(path, &text, &len));
  cJSON *j = cJSON_ParseWithLength(text, len);
  free(text);
  yaie_status st = cJSON_IsObject(j) ? read_config(j, path, c)
                                     : yaie_fail(YAIE_ERR_FORMAT, "%s: invalid JSON (not an object)", path);
  /* torch_dtype (dtype in newer transformers) only says how the weights were stored: each
   * tensor's own dtype decides the conversion, and the model is held in fp32 whatever it says. */
  const char *stored = cJSON_GetStringValue(key(j, "torch_dtype"));
  if (!stored)
    stored = cJSON_GetStringValue(key(j, "dtype"));
  snprintf(dtype, cap, "%s", stored ? stored : "");
  cJSON_Delete(j);
  return st;
}

static yaie_status load_tokenizer(const char *dir, yaie_model *m) {
  size_t n = strlen(dir) + sizeof "/tokenizer.json";
  char *path = malloc(n);
  if (!path)
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory");
  snprintf(path, n, "%s/tokenizer.json", dir);
  yaie_status st = yaie_path_exists(path) ? yaie_tokenizer_from_hf_json(path, &m->tokenizer) : YAIE_OK;
  free(path);
  return st;
}

static yaie_status load_model(const char *dir, const char *config_path, yaie_model **out) {
  yaie_config c = {0};
  char dtype[32];
  YAIE_TRY(read_config_file(dir, config_path, &c, dtype, sizeof dtype));
  yaie_safetensors s;
  YAIE_TRY(yaie_safetensors_open_dir(dir, &s));
  yaie_model *m = NULL;
  yaie_status st = YAIE_OK;
  if (!c.tied_embeddings && !yaie_safetensors_find(&s, "lm_head.weight"))
    st = yaie_fail(YAIE_ERR_FORMAT, "%s: no lm_head.weight, and config.json does not set tie_word_embeddings", dir);
  if (st == YAIE_OK)
    st = yaie_model_alloc(&c, dir, &m);
  if (st == YAIE_OK)
    st = read_weights(&s, m);
  if (st == YAIE_ERR_UNSUPPORTED && dtype[0]) {
    char msg[1024]; /* a copy: yaie_fail writes the buffer yaie_last_error reads */
    snprintf(msg, sizeof msg, "%s", yaie_last_error());
    st = yaie_fail(st, "%s (config.json says torch_dtype %s)", msg, dtype);
  }
  yaie_safetensors_close(&s);
  if (st == YAIE_OK)
    st = load_tokenizer(dir, m);
  if (st != YAIE_OK) {
    yaie_model_free(m);
    return st;
  }
  *out = m;
  return YAIE_OK;
}

yaie_status yaie_load_hf(const char *dir, yaie_model **out) {
  *out = NULL;
  size_t n = strlen(dir) + sizeof "/config.json";
  char *config_path = malloc(n);
  if (!config_path)
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory");
  snprintf(config_path, n, "%s/config.json", dir);
  yaie_status st = load_model(dir, config_path, out);
  free(config_path);
  return st;
}

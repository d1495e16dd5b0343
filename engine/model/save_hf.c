/* Writing a Hugging Face directory from any loaded model: config.json, model.safetensors (F32,
 * HF tensor names) and, given a tokenizer, its tokenizer.json. Models held in the adjacent-pair
 * RoPE layout (llama2.c, GGUF llama) have their Q/K rows permuted into the half layout HF uses;
 * the permutation runs on a copy of each tensor as it is written, never on the model. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "file.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

static const struct { const char *arch, *class_name; } hf_classes[] = {
  {"llama", "LlamaForCausalLM"},
  {"mistral", "MistralForCausalLM"},
  {"qwen2", "Qwen2ForCausalLM"},
  {"qwen3", "Qwen3ForCausalLM"},
};

/* One tensor to write: its header entry, its data, and whether it holds RoPE'd heads. */
typedef struct hf_tensor {
  yaie_st_entry e;
  const float *data;
  int rope_heads; /* > 0: rows (or elements) form this many heads to permute into the half layout */
} hf_tensor;

typedef struct tensor_list {
  hf_tensor *t;
  int n;
} tensor_list;

static void add(tensor_list *list, const char *name, const float *data, int rows, int cols, int rope_heads) {
  hf_tensor *t = &list->t[list->n++];
  snprintf(t->e.name, sizeof t->e.name, "%s", name);
  t->e.n_dims = cols ? 2 : 1;
  t->e.shape[0] = (uint64_t)rows;
  t->e.shape[1] = (uint64_t)cols;
  t->data = data;
  t->rope_heads = rope_heads;
}

static void add_layer(tensor_list *list, const yaie_model *m, int l) {
  const yaie_config *c = &m->config;
  const yaie_layer *L = &m->layers[l];
  int dim = c->dim, hidden = c->hidden_dim, q = yaie_q_dim(c), kv = yaie_kv_dim(c);
  int permute = c->rope_layout == YAIE_ROPE_ADJACENT;
  int q_heads = permute ? c->n_heads : 0, k_heads = permute ? c->n_kv_heads : 0, norm_heads = permute;
  char name[96];
#define LAYER_TENSOR(suffix, data, rows, cols, heads)                  \
  do {                                                                 \
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);      \
    add(list, name, (data), (rows), (cols), (heads));                  \
  } while (0)
  LAYER_TENSOR("input_layernorm.weight", L->attn_norm, dim, 0, 0);
  LAYER_TENSOR("self_attn.q_proj.weight", yaie_wq(m, l), q, dim, q_heads);
  LAYER_TENSOR("self_attn.k_proj.weight", yaie_wk(m, l), kv, dim, k_heads);
  LAYER_TENSOR("self_attn.v_proj.weight", yaie_wv(m, l), kv, dim, 0);
  LAYER_TENSOR("self_attn.o_proj.weight", L->wo, dim, q, 0);
  LAYER_TENSOR("post_attention_layernorm.weight", L->ffn_norm, dim, 0, 0);
  LAYER_TENSOR("mlp.gate_proj.weight", yaie_w_gate(m, l), hidden, dim, 0);
  LAYER_TENSOR("mlp.up_proj.weight", yaie_w_up(m, l), hidden, dim, 0);
  LAYER_TENSOR("mlp.down_proj.weight", L->w_down, dim, hidden, 0);
  /* Biases and Q/K norm weights follow their heads' element order, so they move with the rows. */
  if (L->bqkv) {
    LAYER_TENSOR("self_attn.q_proj.bias", L->bqkv, q, 0, q_heads);
    LAYER_TENSOR("self_attn.k_proj.bias", L->bqkv + q, kv, 0, k_heads);
    LAYER_TENSOR("self_attn.v_proj.bias", L->bqkv + q + kv, kv, 0, 0);
  }
  if (L->q_norm) {
    LAYER_TENSOR("self_attn.q_norm.weight", L->q_norm, c->head_dim, 0, norm_heads);
    LAYER_TENSOR("self_attn.k_norm.weight", L->k_norm, c->head_dim, 0, norm_heads);
  }
#undef LAYER_TENSOR
}

static yaie_status list_tensors(const yaie_model *m, tensor_list *list) {
  const yaie_config *c = &m->config;
  list->n = 0;
  list->t = calloc((size_t)c->n_layers * 14 + 3, sizeof *list->t);
  if (!list->t)
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory listing the tensors");
  add(list, "model.embed_tokens.weight", m->tok_embeddings, c->vocab_size, c->dim, 0);
  for (int l = 0; l < c->n_layers; l++)
    add_layer(list, m, l);
  add(list, "model.norm.weight", m->final_norm, c->dim, 0, 0);
  if (!c->tied_embeddings)
    add(list, "lm_head.weight", m->classifier, c->vocab_size, c->dim, 0);
  return YAIE_OK;
}

static size_t n_elements(const yaie_st_entry *e) {
  return (size_t)e->shape[0] * (e->n_dims == 2 ? (size_t)e->shape[1] : 1);
}

static yaie_status write_data(FILE *fp, const char *path, const tensor_list *list, int head_dim) {
  size_t scratch_n = 0;
  for (int i = 0; i < list->n; i++)
    if (list->t[i].rope_heads && n_elements(&list->t[i].e) > scratch_n)
      scratch_n = n_elements(&list->t[i].e);
  float *scratch = scratch_n ? malloc(scratch_n * sizeof(float)) : NULL;
  if (scratch_n && !scratch)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  yaie_status st = YAIE_OK;
  for (int i = 0; i < list->n && st == YAIE_OK; i++) {
    const hf_tensor *t = &list->t[i];
    size_t n = n_elements(&t->e);
    const float *src = t->data;
    if (t->rope_heads) {
      memcpy(scratch, src, n * sizeof(float));
      int cols = t->e.n_dims == 2 ? (int)t->e.shape[1] : 1;
      st = yaie_permute_rope_rows(scratch, t->rope_heads, head_dim, cols, 1);
      src = scratch;
    }
    if (st == YAIE_OK && fwrite(src, sizeof(float), n, fp) != n)
      st = yaie_fail(YAIE_ERR_IO, "%s: write error on tensor %s: %s", path, t->e.name, strerror(errno));
  }
  free(scratch);
  return st;
}

static yaie_status write_safetensors(const yaie_model *m, const char *path) {
  tensor_list list;
  YAIE_TRY(list_tensors(m, &list));
  yaie_st_entry *entries = malloc((size_t)list.n * sizeof *entries);
  FILE *fp = entries ? fopen(path, "wb") : NULL;
  yaie_status st = YAIE_OK;
  if (!entries)
    st = yaie_fail(YAIE_ERR_NOMEM, "out of memory");
  else if (!fp)
    st = yaie_fail(YAIE_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  for (int i = 0; st == YAIE_OK && i < list.n; i++)
    entries[i] = list.t[i].e;
  if (st == YAIE_OK)
    st = yaie_safetensors_write_header(fp, path, entries, list.n);
  if (st == YAIE_OK)
    st = write_data(fp, path, &list, m->config.head_dim);
  if (fp && fclose(fp) != 0 && st == YAIE_OK)
    st = yaie_fail(YAIE_ERR_IO, "%s: write error: %s", path, strerror(errno));
  free(entries);
  free(list.t);
  return st;
}

/* ---------------------------------------------------------------------------------------------
 * config.json */

/* The shortest decimal that reads back as the same float, so 1e-5f is written 1e-05 and not
 * 9.99999974737875e-06. */
static double float_decimal(float f) {
  char buf[32];
  for (int digits = 6; digits < 9; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
    if (strtof(buf, NULL) == f)
      return strtod(buf, NULL);
  }
  return (double)f;
}

static void add_rope_scaling(cJSON *j, const yaie_config *c) {
  cJSON *rs = cJSON_AddObjectToObject(j, "rope_scaling");
  cJSON_AddStringToObject(rs, "rope_type", "llama3");
  cJSON_AddNumberToObject(rs, "factor", float_decimal(c->rope_scaling_factor));
  cJSON_AddNumberToObject(rs, "low_freq_factor", float_decimal(c->rope_low_freq_factor));
  cJSON_AddNumberToObject(rs, "high_freq_factor", float_decimal(c->rope_high_freq_factor));
  cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_original_max_pos);
}

static cJSON *config_json(const yaie_config *c, const char *class_name, const yaie_tokenizer *tok) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "architectures"), cJSON_CreateString(class_name));
  cJSON_AddStringToObject(j, "model_type", c->arch);
  cJSON_AddNumberToObject(j, "hidden_size", c->dim);
  cJSON_AddNumberToObject(j, "intermediate_size", c->hidden_dim);
  cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
  cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
  cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
  cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
  cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
  cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_seq_len);
  cJSON_AddNumberToObject(j, "rms_norm_eps", float_decimal(c->norm_eps));
  cJSON_AddNumberToObject(j, "rope_theta", float_decimal(c->rope_theta));
  if (c->rope_scaling_factor > 0 && c->rope_original_max_pos > 0)
    add_rope_scaling(j, c);
  cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tied_embeddings);
  cJSON_AddStringToObject(j, "hidden_act", "silu");
  /* Mistral's config class defaults to a 4096-token sliding window; the engine attends fully. */
  if (!strcmp(c->arch, "mistral"))
    cJSON_AddNullToObject(j, "sliding_window");
  if (tok && yaie_tokenizer_bos(tok) >= 0)
    cJSON_AddNumberToObject(j, "bos_token_id", yaie_tokenizer_bos(tok));
  if (tok && yaie_tokenizer_eos(tok) >= 0)
    cJSON_AddNumberToObject(j, "eos_token_id", yaie_tokenizer_eos(tok));
  cJSON_AddStringToObject(j, "torch_dtype", "float32");
  return j;
}

static yaie_status write_config(const yaie_model *m, const yaie_tokenizer *tok, const char *path) {
  const char *class_name = NULL;
  for (size_t i = 0; i < sizeof hf_classes / sizeof hf_classes[0]; i++)
    if (!strcmp(m->config.arch, hf_classes[i].arch))
      class_name = hf_classes[i].class_name;
  if (!class_name)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "architecture '%s' has no Hugging Face class", m->config.arch);
  cJSON *j = config_json(&m->config, class_name, tok);
  char *text = j ? cJSON_Print(j) : NULL;
  cJSON_Delete(j);
  if (!text)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  FILE *fp = fopen(path, "w");
  int ok = fp && fputs(text, fp) >= 0 && fputc('\n', fp) != EOF;
  if (fp && fclose(fp) != 0)
    ok = 0;
  free(text);
  return ok ? YAIE_OK : yaie_fail(YAIE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
}

/* config.json can only carry what the config holds: frequencies set another way (GGUF
 * rope_freqs) that the config does not reproduce would be silently lost. */
static yaie_status check_rope(const yaie_model *m) {
  size_t half = (size_t)m->config.head_dim / 2;
  yaie_model copy = *m;
  if (!(copy.rope_inv_freq = malloc(half * sizeof(float))))
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory");
  yaie_model_init_rope(&copy, NULL);
  int same = !memcmp(copy.rope_inv_freq, m->rope_inv_freq, half * sizeof(float));
  free(copy.rope_inv_freq);
  if (!same)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: the model's RoPE frequencies (GGUF rope_freqs) are not "
                     "expressible in config.json", m->path);
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The directory */

/* mkdir -p: each missing component of dir is created. */
static yaie_status make_dirs(const char *dir) {
  char *p = strdup(dir);
  if (!p)
    return yaie_fail(YAIE_ERR_NOMEM, "out of memory");
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s)
      continue;
    char end = *s;
    *s = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      yaie_status st = yaie_fail(YAIE_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
      free(p);
      return st;
    }
    *s = end;
    if (!end)
      break;
  }
  free(p);
  return yaie_path_is_dir(dir) ? YAIE_OK : yaie_fail(YAIE_ERR_IO, "%s: exists and is not a directory", dir);
}

yaie_status yaie_model_save_hf(const yaie_model *model, const yaie_tokenizer *tok, const char *dir) {
  if (!model || !dir || !*dir)
    return yaie_fail(YAIE_ERR_ARG, "save_hf: no model or no directory given");
  YAIE_TRY(check_rope(model));
  YAIE_TRY(make_dirs(dir));
  char *config_path = yaie_path_join(dir, "config.json"), *weights_path = yaie_path_join(dir, "model.safetensors");
  yaie_status st = config_path && weights_path ? YAIE_OK : yaie_fail(YAIE_ERR_NOMEM, "out of memory");
  if (st == YAIE_OK)
    st = write_config(model, tok, config_path);
  if (st == YAIE_OK)
    st = write_safetensors(model, weights_path);
  if (st == YAIE_OK && tok)
    st = yaie_tokenizer_save_hf(tok, dir);
  free(config_path);
  free(weights_path);
  return st;
}

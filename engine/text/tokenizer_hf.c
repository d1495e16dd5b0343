/* A tokenizer from a Hugging Face tokenizer.json (model BPE), with tokenizer_config.json from
 * the same directory for BOS/EOS, add_bos_token and the chat template. The pre-tokenizer (or
 * decoder) naming ByteLevel makes it byte-level BPE; otherwise it is SentencePiece-style, its
 * normalizer (Prepend/Replace) or Metaspace pre-tokenizer saying how spaces are spelled. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "file.h"
#include "tokenizer_impl.h"

typedef struct hf {
  const char *path;
  yaie_tokenizer *t;
} hf;

static yaie_status read_json(const char *path, cJSON **out) {
  char *text;
  size_t len;
  const char *end = NULL;
  *out = NULL;
  YAIE_TRY(yaie_file_read_text(path, &text, &len));
  *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  size_t at = end ? (size_t)(end - text) : 0;
  free(text);
  if (!*out)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, at);
  return YAIE_OK;
}

static const cJSON *get(const cJSON *obj, const char *key) { return cJSON_GetObjectItemCaseSensitive(obj, key); }

static const char *get_str(const cJSON *obj, const char *key) {
  const cJSON *v = get(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int get_bool(const cJSON *obj, const char *key, int def) {
  const cJSON *v = get(obj, key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static int is_type(const cJSON *obj, const char *type) {
  const char *t = get_str(obj, "type");
  return t && strcmp(t, type) == 0;
}

/* Whether a pre-tokenizer or decoder (possibly a Sequence) includes ByteLevel. */
static int mentions_byte_level(const cJSON *node) {
  const cJSON *item;
  if (!cJSON_IsObject(node))
    return 0;
  if (is_type(node, "ByteLevel"))
    return 1;
  cJSON_ArrayForEach(item, get(node, "pretokenizers")) if (mentions_byte_level(item)) return 1;
  cJSON_ArrayForEach(item, get(node, "decoders")) if (mentions_byte_level(item)) return 1;
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The vocabulary: model.vocab plus added_tokens, laid out by id. */

static yaie_status token_id(const hf *h, const cJSON *v, const char *what, int *id) {
  if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= (1 << 26) ||
      v->valuedouble != (double)(int)v->valuedouble)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: %s has a bad id", h->path, what);
  *id = (int)v->valuedouble;
  return YAIE_OK;
}

static yaie_status vocab_size(const hf *h, const cJSON *vocab, const cJSON *added, int *n) {
  const cJSON *item;
  int id = 0;
  *n = 0;
  cJSON_ArrayForEach(item, vocab) {
    YAIE_TRY(token_id(h, item, "a model.vocab entry", &id));
    *n = id + 1 > *n ? id + 1 : *n;
  }
  cJSON_ArrayForEach(item, added) {
    YAIE_TRY(token_id(h, get(item, "id"), "an added_tokens entry", &id));
    if (!get_str(item, "content"))
      return yaie_fail(YAIE_ERR_FORMAT, "%s: added token %d has no content", h->path, id);
    *n = id + 1 > *n ? id + 1 : *n;
  }
  if (*n == 0)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: the vocabulary is empty", h->path);
  return YAIE_OK;
}

static yaie_status add_vocab(hf *h, const cJSON *vocab, const cJSON *added, int n) {
  const char **text = calloc((size_t)n, sizeof *text);
  const cJSON *item;
  yaie_status st = text ? YAIE_OK : yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", h->path);
  int id = 0;
  if (!text)
    return st;
  cJSON_ArrayForEach(item, vocab) {
    token_id(h, item, "", &id);
    if (st == YAIE_OK && text[id])
      st = yaie_fail(YAIE_ERR_FORMAT, "%s: id %d is given to both '%s' and '%s'", h->path, id, text[id], item->string);
    text[id] = item->string;
  }
  cJSON_ArrayForEach(item, added) {
    token_id(h, get(item, "id"), "", &id);
    text[id] = get_str(item, "content");
    h->t->type[id] = get_bool(item, "special", 0) ? TOK_CONTROL : TOK_USER_DEFINED;
    h->t->flags[id] = (uint8_t)((get_bool(item, "lstrip", 0) ? TOK_LSTRIP : 0) | (get_bool(item, "rstrip", 0) ? TOK_RSTRIP : 0));
  }
  for (id = 0; st == YAIE_OK && id < n; id++) {
    int32_t dup;
    if (!text[id])
      h->t->type[id] = TOK_UNUSED; /* a hole in the ids */
    st = tok_add_token(h->t, text[id] ? text[id] : "", text[id] ? strlen(text[id]) : 0, &dup);
  }
  free(text);
  return st;
}

static yaie_status add_merges(hf *h, const cJSON *merges) {
  const cJSON *m;
  if (merges && !cJSON_IsArray(merges))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: model.merges is not a list", h->path);
  cJSON_ArrayForEach(m, merges) {
    const char *l = NULL, *r = NULL, *sp;
    size_t ln = 0;
    if (cJSON_IsString(m) && (sp = strchr(m->valuestring, ' ')) != NULL) {
      l = m->valuestring, ln = (size_t)(sp - l), r = sp + 1;
    } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
               cJSON_IsString(m->child->next)) {
      l = m->child->valuestring, ln = strlen(l), r = m->child->next->valuestring;
    }
    if (!l)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", h->path,
                       h->t->n_merges);
    YAIE_TRY(tok_add_merge(h->t, l, ln, r, strlen(r)));
  }
  return YAIE_OK;
}

static yaie_status read_model(hf *h, const cJSON *model) {
  yaie_tokenizer *t = h->t;
  const char *unk = get_str(model, "unk_token"), *prefix = get_str(model, "continuing_subword_prefix"),
             *suffix = get_str(model, "end_of_word_suffix");
  if ((prefix && *prefix) || (suffix && *suffix))
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: BPE with a subword prefix or word suffix is not supported", h->path);
  t->byte_fallback = get_bool(model, "byte_fallback", 0);
  t->fuse_unk = get_bool(model, "fuse_unk", 0);
  t->ignore_merges = get_bool(model, "ignore_merges", 0);
  if (unk) {
    int32_t id = tok_find(t, unk, strlen(unk));
    t->unk = id < t->n_vocab ? id : -1;
  }
  for (int id = 0; t->byte_fallback && id < t->n_vocab; id++) {
    const char *s = tok_text(t, id);
    if (t->type[id] == TOK_NORMAL && tok_len(t, id) == 6 && !memcmp(s, "<0x", 3) && s[5] == '>')
      t->type[id] = TOK_BYTE;
  }
  return add_merges(h, get(model, "merges"));
}

/* ---------------------------------------------------------------------------------------------
 * Normalizer and pre-tokenizer */

static const char SPACE_MARK[] = "\xe2\x96\x81";

static yaie_status unsupported(const hf *h, const char *what, const cJSON *node) {
  const char *type = get_str(node, "type");
  return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: %s '%s' is not supported", h->path, what, type ? type : "?");
}

static yaie_status read_normalizer(hf *h, const cJSON *n) {
  const cJSON *item;
  const cJSON *pattern = get(n, "pattern");
  if (!n || cJSON_IsNull(n))
    return YAIE_OK;
  if (is_type(n, "Sequence")) {
    cJSON_ArrayForEach(item, get(n, "normalizers")) YAIE_TRY(read_normalizer(h, item));
    return YAIE_OK;
  }
  /* Unicode normalization forms are not applied (nor does llama.cpp apply them). */
  if (is_type(n, "NFC") || is_type(n, "NFKC") || is_type(n, "NFD") || is_type(n, "NFKD"))
    return YAIE_OK;
  if (is_type(n, "Prepend") && get_str(n, "prepend") && !strcmp(get_str(n, "prepend"), SPACE_MARK)) {
    h->t->prefix = PREFIX_ALWAYS;
    return YAIE_OK;
  }
  if (is_type(n, "Replace") && get_str(pattern, "String") && !strcmp(get_str(pattern, "String"), " ") &&
      get_str(n, "content") && !strcmp(get_str(n, "content"), SPACE_MARK)) {
    h->t->escape_spaces = 1;
    return YAIE_OK;
  }
  return unsupported(h, "normalizer", n);
}

static int behavior_of(const char *name) {
  static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
  for (int i = 0; name && i < 5; i++)
    if (!strcmp(name, names[i]))
      return i;
  return -1;
}

static yaie_status add_step(hf *h, const char *pattern, int is_regex, int behavior, int invert) {
  if (h->t->kind != TOK_BYTE_LEVEL)
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: split pre-tokenizers are supported with ByteLevel only", h->path);
  if (!h->t->pre)
    YAIE_TRY(yaie_pretok_new(&h->t->pre));
  return yaie_pretok_add(h->t->pre, pattern, strlen(pattern), is_regex, behavior, invert, h->path);
}

static yaie_status read_split(hf *h, const cJSON *n) {
  const cJSON *pattern = get(n, "pattern");
  const char *regex = get_str(pattern, "Regex"), *literal = get_str(pattern, "String");
  int behavior = behavior_of(get_str(n, "behavior"));
  if ((!regex && !literal) || behavior < 0)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: a Split pre-tokenizer without a pattern or a known behavior", h->path);
  return add_step(h, regex ? regex : literal, regex != NULL, behavior, get_bool(n, "invert", 0));
}

static yaie_status read_metaspace(hf *h, const cJSON *n) {
  const char *rep = get_str(n, "replacement"), *scheme = get_str(n, "prepend_scheme");
  yaie_tokenizer *t = h->t;
  if (t->kind != TOK_SPM || (rep && strcmp(rep, SPACE_MARK)))
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: this Metaspace pre-tokenizer is not supported", h->path);
  t->escape_spaces = 1;
  t->prefix_unless_space = 1;
  t->split_spaces = get_bool(n, "split", 1);
  if (scheme)
    t->prefix = !strcmp(scheme, "always") ? PREFIX_ALWAYS : !strcmp(scheme, "first") ? PREFIX_FIRST : PREFIX_NONE;
  else
    t->prefix = get_bool(n, "add_prefix_space", 1) ? PREFIX_ALWAYS : PREFIX_NONE;
  return YAIE_OK;
}

static yaie_status read_pre(hf *h, const cJSON *n) {
  const cJSON *item;
  if (!n || cJSON_IsNull(n))
    return YAIE_OK;
  if (is_type(n, "Sequence")) {
    cJSON_ArrayForEach(item, get(n, "pretokenizers")) YAIE_TRY(read_pre(h, item));
    return YAIE_OK;
  }
  if (is_type(n, "ByteLevel")) {
    h->t->add_prefix_space |= get_bool(n, "add_prefix_space", 0);
    return get_bool(n, "use_regex", 1) ? add_step(h, yaie_pretok_gpt2_regex, 1, SPLIT_ISOLATED, 0) : YAIE_OK;
  }
  if (is_type(n, "Split"))
    return read_split(h, n);
  if (is_type(n, "Digits"))
    return add_step(h, get_bool(n, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+", 1, SPLIT_ISOLATED, 0);
  if (is_type(n, "Metaspace"))
    return read_metaspace(h, n);
  if (is_type(n, "Whitespace"))
    return add_step(h, "\\w+|[^\\w\\s]+", 1, SPLIT_REMOVED, 1);
  if (is_type(n, "WhitespaceSplit"))
    return add_step(h, "\\s+", 1, SPLIT_REMOVED, 0);
  if (is_type(n, "Punctuation")) {
    int b = behavior_of(get_str(n, "behavior"));
    return add_step(h, "[\\p{P}!-/:-@\\[-`{-~]", 1, b < 0 ? SPLIT_ISOLATED : b, 0);
  }
  return unsupported(h, "pre-tokenizer", n);
}

/* ---------------------------------------------------------------------------------------------
 * Special tokens and tokenizer_config.json */

static int32_t find_token(const yaie_tokenizer *t, const char *s) {
  int32_t id = s ? tok_find(t, s, strlen(s)) : -1;
  return id < t->n_vocab ? id : -1;
}

/* A config token entry: "text" or {"content": "text", ...}. */
static const char *config_token(const cJSON *cfg, const char *key) {
  const cJSON *v = get(cfg, key);
  return cJSON_IsString(v) ? v->valuestring : get_str(v, "content");
}

/* The first special token of a TemplateProcessing post-processor's single-sequence template. */
static const char *template_bos(const cJSON *post) {
  const cJSON *single = get(post, "single");
  if (!is_type(post, "TemplateProcessing") || !cJSON_IsArray(single) || !single->child)
    return NULL;
  return get_str(get(single->child, "SpecialToken"), "id");
}

static yaie_status read_chat_template(hf *h, const cJSON *cfg) {
  const cJSON *v = get(cfg, "chat_template"), *item, *list = cJSON_IsArray(v) ? v : NULL;
  const char *text = cJSON_IsString(v) ? v->valuestring : NULL;
  cJSON_ArrayForEach(item, list) {
    const char *name = get_str(item, "name");
    if (!text || (name && !strcmp(name, "default")))
      text = get_str(item, "template");
  }
  if (text && !(h->t->chat_template = strdup(text)))
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", h->path);
  return YAIE_OK;
}

static yaie_status read_config(hf *h, const cJSON *root) {
  yaie_tokenizer *t = h->t;
  const char *slash = strrchr(h->path, '/');
  size_t dir = slash ? (size_t)(slash - h->path) + 1 : 0;
  char *cfg_path = malloc(dir + sizeof "tokenizer_config.json");
  cJSON *cfg = NULL;
  if (!cfg_path)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", h->path);
  memcpy(cfg_path, h->path, dir);
  memcpy(cfg_path + dir, "tokenizer_config.json", sizeof "tokenizer_config.json");
  yaie_status st = yaie_path_exists(cfg_path) ? read_json(cfg_path, &cfg) : YAIE_OK;
  free(cfg_path);
  YAIE_TRY(st);
  const char *bos = config_token(cfg, "bos_token"), *tmpl_bos = template_bos(get(root, "post_processor"));
  t->bos = find_token(t, bos ? bos : tmpl_bos);
  t->eos = find_token(t, config_token(cfg, "eos_token"));
  t->add_bos = get_bool(cfg, "add_bos_token", tmpl_bos && t->bos >= 0 && t->bos == find_token(t, tmpl_bos));
  st = read_chat_template(h, cfg);
  cJSON_Delete(cfg);
  return st;
}

/* ---------------------------------------------------------------------------------------------
 * Loading */

static yaie_status build(hf *h, const cJSON *root) {
  const cJSON *model = get(root, "model"), *vocab = get(model, "vocab"), *added = get(root, "added_tokens");
  int n;
  if (!cJSON_IsObject(model) || !cJSON_IsObject(vocab))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: no model.vocab (not a tokenizer.json?)", h->path);
  if (get_str(model, "type") && !is_type(model, "BPE"))
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (BPE is)", h->path,
                     get_str(model, "type"));
  if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: added_tokens is not a list", h->path);
  YAIE_TRY(vocab_size(h, vocab, added, &n));
  int byte_level = mentions_byte_level(get(root, "pre_tokenizer")) || mentions_byte_level(get(root, "decoder"));
  YAIE_TRY(tok_new(byte_level ? TOK_BYTE_LEVEL : TOK_SPM, n, h->path, &h->t));
  YAIE_TRY(add_vocab(h, vocab, added, n));
  YAIE_TRY(read_model(h, model));
  YAIE_TRY(read_normalizer(h, get(root, "normalizer")));
  YAIE_TRY(read_pre(h, get(root, "pre_tokenizer")));
  YAIE_TRY(read_config(h, root));
  return tok_finish(h->t, h->path);
}

yaie_status yaie_tokenizer_from_hf_json(const char *path, yaie_tokenizer **out) {
  cJSON *root;
  hf h = {path, NULL};
  *out = NULL;
  YAIE_TRY(read_json(path, &root));
  yaie_status st = build(&h, root);
  cJSON_Delete(root);
  if (st != YAIE_OK) {
    yaie_tokenizer_free(h.t);
    return st;
  }
  *out = h.t;
  return YAIE_OK;
}

/* Writes a tokenizer as a Hugging Face tokenizer.json (+ tokenizer_config.json) that
 * yaie_tokenizer_from_hf_json reads back into a tokenizer encoding every text the same way.
 * SentencePiece vocabularies known only by scores get merges derived from the scores (as
 * Hugging Face's converter derives them); byte-level ones keep their merges and their
 * pre-tokenizer steps, written as Split pre-tokenizers before a regex-less ByteLevel. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "file.h"
#include "tokenizer_impl.h"

static const char SPACE_MARK[] = "\xe2\x96\x81";

static int is_special(int type) { return type == TOK_CONTROL || type == TOK_USER_DEFINED || type == TOK_UNKNOWN; }

/* The id the text reads back as: empty texts and repeats of an earlier text cannot be keys. */
static int writable(const yaie_tokenizer *t, int32_t id) {
  return tok_len(t, id) > 0 && tok_find(t, tok_text(t, id), tok_len(t, id)) == id;
}

static cJSON *typed(const char *type) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", type);
  return o;
}

static cJSON *added_tokens(const yaie_tokenizer *t) {
  cJSON *list = cJSON_CreateArray();
  for (int32_t id = 0; id < t->n_vocab; id++) {
    if (!is_special(t->type[id]) || !writable(t, id))
      continue;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", id);
    cJSON_AddStringToObject(a, "content", tok_text(t, id));
    cJSON_AddBoolToObject(a, "single_word", 0);
    cJSON_AddBoolToObject(a, "lstrip", (t->flags[id] & TOK_LSTRIP) != 0);
    cJSON_AddBoolToObject(a, "rstrip", (t->flags[id] & TOK_RSTRIP) != 0);
    cJSON_AddBoolToObject(a, "normalized", 0);
    cJSON_AddBoolToObject(a, "special", t->type[id] != TOK_USER_DEFINED);
    cJSON_AddItemToArray(list, a);
  }
  return list;
}

static cJSON *replace(const char *from, const char *to) {
  cJSON *r = typed("Replace"), *pattern = cJSON_AddObjectToObject(r, "pattern");
  cJSON_AddStringToObject(pattern, "String", from);
  cJSON_AddStringToObject(r, "content", to);
  return r;
}

/* SentencePiece text handling: Prepend + Replace as a normalizer, or Metaspace when it came
 * from one (Metaspace alone skips the prefix before a leading space). */
static void spm_text_handling(const yaie_tokenizer *t, cJSON *root) {
  if (t->prefix_unless_space) {
    static const char *const schemes[] = {"never", "always", "first"};
    cJSON *m = typed("Metaspace");
    cJSON_AddStringToObject(m, "replacement", SPACE_MARK);
    cJSON_AddStringToObject(m, "prepend_scheme", schemes[t->prefix]);
    cJSON_AddBoolToObject(m, "split", t->split_spaces);
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", m);
    return;
  }
  cJSON *seq = typed("Sequence"), *list = cJSON_AddArrayToObject(seq, "normalizers");
  if (t->prefix == PREFIX_ALWAYS) {
    cJSON *p = typed("Prepend");
    cJSON_AddStringToObject(p, "prepend", SPACE_MARK);
    cJSON_AddItemToArray(list, p);
  }
  if (t->escape_spaces)
    cJSON_AddItemToArray(list, replace(" ", SPACE_MARK));
  cJSON_AddItemToObject(root, "normalizer", seq);
  cJSON_AddNullToObject(root, "pre_tokenizer");
}

static cJSON *spm_decoder(const yaie_tokenizer *t) {
  cJSON *seq = typed("Sequence"), *list = cJSON_AddArrayToObject(seq, "decoders");
  cJSON_AddItemToArray(list, replace(SPACE_MARK, " "));
  cJSON_AddItemToArray(list, typed("ByteFallback"));
  cJSON_AddItemToArray(list, typed("Fuse"));
  if (t->prefix != PREFIX_NONE) {
    cJSON *strip = typed("Strip");
    cJSON_AddStringToObject(strip, "content", " ");
    cJSON_AddNumberToObject(strip, "start", 1);
    cJSON_AddNumberToObject(strip, "stop", 0);
    cJSON_AddItemToArray(list, strip);
  }
  return seq;
}

static cJSON *byte_level(int add_prefix_space, int use_regex) {
  cJSON *b = typed("ByteLevel");
  cJSON_AddBoolToObject(b, "add_prefix_space", add_prefix_space);
  cJSON_AddBoolToObject(b, "trim_offsets", 1);
  cJSON_AddBoolToObject(b, "use_regex", use_regex);
  return b;
}

static cJSON *byte_level_pre(const yaie_tokenizer *t) {
  static const char *const behaviors[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
  cJSON *seq = typed("Sequence"), *list = cJSON_AddArrayToObject(seq, "pretokenizers");
  for (int i = 0; i < yaie_pretok_n_steps(t->pre); i++) {
    int is_regex, behavior, invert;
    const char *pattern = yaie_pretok_step(t->pre, i, &is_regex, &behavior, &invert);
    cJSON *split = typed("Split"), *p = cJSON_AddObjectToObject(split, "pattern");
    cJSON_AddStringToObject(p, is_regex ? "Regex" : "String", pattern);
    cJSON_AddStringToObject(split, "behavior", behaviors[behavior]);
    cJSON_AddBoolToObject(split, "invert", invert);
    cJSON_AddItemToArray(list, split);
  }
  cJSON_AddItemToArray(list, byte_level(t->add_prefix_space, 0));
  return seq;
}

static cJSON *special_ref(const char *text, int type_id) {
  cJSON *item = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(item, "SpecialToken");
  cJSON_AddStringToObject(s, "id", text);
  cJSON_AddNumberToObject(s, "type_id", type_id);
  return item;
}

static cJSON *sequence_ref(const char *name, int type_id) {
  cJSON *item = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(item, "Sequence");
  cJSON_AddStringToObject(s, "id", name);
  cJSON_AddNumberToObject(s, "type_id", type_id);
  return item;
}

/* BOS before each sequence, when prompts start with one. */
static cJSON *post_processor(const yaie_tokenizer *t) {
  if (!t->add_bos || t->bos < 0)
    return cJSON_CreateNull();
  const char *bos = tok_text(t, t->bos);
  cJSON *p = typed("TemplateProcessing"), *single = cJSON_AddArrayToObject(p, "single"),
        *pair = cJSON_AddArrayToObject(p, "pair"), *specials = cJSON_AddObjectToObject(p, "special_tokens");
  cJSON_AddItemToArray(single, special_ref(bos, 0));
  cJSON_AddItemToArray(single, sequence_ref("A", 0));
  cJSON_AddItemToArray(pair, special_ref(bos, 0));
  cJSON_AddItemToArray(pair, sequence_ref("A", 0));
  cJSON_AddItemToArray(pair, special_ref(bos, 1));
  cJSON_AddItemToArray(pair, sequence_ref("B", 1));
  cJSON *entry = cJSON_AddObjectToObject(specials, bos), *ids = cJSON_AddArrayToObject(entry, "ids");
  cJSON_AddStringToObject(entry, "id", bos);
  cJSON_AddItemToArray(ids, cJSON_CreateNumber(t->bos));
  cJSON_AddItemToArray(cJSON_AddArrayToObject(entry, "tokens"), cJSON_CreateString(bos));
  return p;
}

/* The merges in rank order, each pair once (a repeat would move its rank on reading) and
 * only between tokens (Hugging Face requires both sides and the result in the vocabulary). */
static yaie_status merges_list(const yaie_tokenizer *t, cJSON *model) {
  int32_t *m = t->merges, *own = NULL;
  int n = t->n_merges, tuples = 0;
  if (n == 0 && t->scores) {
    YAIE_TRY(tok_spm_merges_from_scores(t, &own, &n));
    m = own;
  }
  for (int i = 0; i < n; i++)
    tuples |= memchr(tok_text(t, m[2 * i]), ' ', tok_len(t, m[2 * i])) ||
              memchr(tok_text(t, m[2 * i + 1]), ' ', tok_len(t, m[2 * i + 1]));
  cJSON *list = cJSON_AddArrayToObject(model, "merges");
  char *line = NULL;
  for (int i = 0; i < n; i++) {
    int32_t l = m[2 * i], r = m[2 * i + 1], res = -1;
    int rank = own ? i : tok_pair_rank(t, l, r, &res);
    if (rank != i || l >= t->n_vocab || r >= t->n_vocab || (!own && res >= t->n_vocab))
      continue;
    if (tuples) {
      cJSON *pair = cJSON_CreateArray();
      cJSON_AddItemToArray(pair, cJSON_CreateString(tok_text(t, l)));
      cJSON_AddItemToArray(pair, cJSON_CreateString(tok_text(t, r)));
      cJSON_AddItemToArray(list, pair);
      continue;
    }
    char *grown = realloc(line, tok_len(t, l) + tok_len(t, r) + 2);
    if (!grown)
      break;
    line = grown;
    sprintf(line, "%s %s", tok_text(t, l), tok_text(t, r));
    cJSON_AddItemToArray(list, cJSON_CreateString(line));
  }
  free(line);
  free(own);
  return YAIE_OK;
}

static yaie_status model_json(const yaie_tokenizer *t, cJSON *root) {
  cJSON *model = cJSON_AddObjectToObject(root, "model"), *vocab;
  cJSON_AddStringToObject(model, "type", "BPE");
  cJSON_AddNullToObject(model, "dropout");
  if (t->unk >= 0)
    cJSON_AddStringToObject(model, "unk_token", tok_text(t, t->unk));
  else
    cJSON_AddNullToObject(model, "unk_token");
  cJSON_AddNullToObject(model, "continuing_subword_prefix");
  cJSON_AddNullToObject(model, "end_of_word_suffix");
  cJSON_AddBoolToObject(model, "fuse_unk", t->kind == TOK_SPM ? 1 : t->fuse_unk);
  cJSON_AddBoolToObject(model, "byte_fallback", t->byte_fallback);
  cJSON_AddBoolToObject(model, "ignore_merges", t->ignore_merges);
  vocab = cJSON_AddObjectToObject(model, "vocab");
  for (int32_t id = 0; id < t->n_vocab; id++)
    if (writable(t, id))
      cJSON_AddItemToObject(vocab, tok_text(t, id), cJSON_CreateNumber(id));
  return merges_list(t, model);
}

static cJSON *tokenizer_json(const yaie_tokenizer *t) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "version", "1.0");
  cJSON_AddNullToObject(root, "truncation");
  cJSON_AddNullToObject(root, "padding");
  cJSON_AddItemToObject(root, "added_tokens", added_tokens(t));
  if (t->kind == TOK_SPM) {
    spm_text_handling(t, root);
  } else {
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", byte_level_pre(t));
  }
  cJSON_AddItemToObject(root, "post_processor", post_processor(t));
  cJSON_AddItemToObject(root, "decoder", t->kind == TOK_SPM ? spm_decoder(t) : byte_level(1, 1));
  if (model_json(t, root) != YAIE_OK) {
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

static void add_token_name(cJSON *cfg, const char *key, const yaie_tokenizer *t, int id) {
  if (id >= 0)
    cJSON_AddStringToObject(cfg, key, tok_text(t, id));
  else
    cJSON_AddNullToObject(cfg, key);
}

static cJSON *config_json(const yaie_tokenizer *t) {
  cJSON *cfg = cJSON_CreateObject();
  cJSON_AddBoolToObject(cfg, "add_bos_token", t->add_bos && t->bos >= 0);
  cJSON_AddBoolToObject(cfg, "add_eos_token", 0);
  add_token_name(cfg, "bos_token", t, t->bos);
  add_token_name(cfg, "eos_token", t, t->eos);
  add_token_name(cfg, "unk_token", t, t->unk);
  if (t->chat_template)
    cJSON_AddStringToObject(cfg, "chat_template", t->chat_template);
  cJSON_AddBoolToObject(cfg, "clean_up_tokenization_spaces", 0);
  cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast");
  return cfg;
}

static yaie_status write_json(const char *dir, const char *name, cJSON *json) {
  char *path = yaie_path_join(dir, name);
  char *text = json ? cJSON_PrintUnformatted(json) : NULL;
  yaie_status st = YAIE_OK;
  if (!path || !text) {
    st = yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory writing %s", dir, name);
  } else {
    FILE *f = fopen(path, "wb");
    size_t len = strlen(text);
    int failed = !f || fwrite(text, 1, len, f) != len;
    if ((f && fclose(f) != 0) || failed)
      st = yaie_fail(YAIE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  }
  cJSON_free(text);
  free(path);
  return st;
}

yaie_status yaie_tokenizer_save_hf(const yaie_tokenizer *tok, const char *dir) {
  if (!tok || !dir)
    return yaie_fail(YAIE_ERR_ARG, "yaie_tokenizer_save_hf: NULL argument");
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return yaie_fail(YAIE_ERR_IO, "%s: cannot create the directory: %s", dir, strerror(errno));
  cJSON *json = tokenizer_json(tok), *cfg = config_json(tok);
  yaie_status st = write_json(dir, "tokenizer.json", json);
  if (st == YAIE_OK)
    st = write_json(dir, "tokenizer_config.json", cfg);
  cJSON_Delete(json);
  cJSON_Delete(cfg);
  return st;
}

/* Inside the tokenizer: the vocabulary (interned strings with a hash map, merge ranks), the
 * options each source (GGUF, tokenizer.json, tokenizer.bin) sets, and the encoders the files
 * tokenizer_*.c share. One struct serves both families:
 *   TOK_SPM         SentencePiece-style BPE: spaces become U+2581, an optional dummy prefix,
 *                   merges by piece score (or by rank when merges are given), byte fallback.
 *   TOK_BYTE_LEVEL  GPT-2 byte-level BPE: a pre-tokenizer regex splits the text, bytes map to
 *                   printable code points, merges by rank. */
#ifndef YAIE_TOKENIZER_IMPL_H
#define YAIE_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Token types, numbered as GGUF's tokenizer.ggml.token_type numbers them. */
enum {
  TOK_UNDEFINED = 0, TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER_DEFINED = 4,
  TOK_UNUSED = 5, TOK_BYTE = 6
};
/* Per-token flags: a special token that swallows the whitespace on its left / right. */
enum { TOK_LSTRIP = 1, TOK_RSTRIP = 2 };
typedef enum tok_kind { TOK_SPM = 0, TOK_BYTE_LEVEL = 1 } tok_kind;
/* When SentencePiece text gets its dummy-prefix space: never, before every stretch of text
 * between special tokens (llama.cpp, HF Prepend), or only before the text's start (HF
 * Metaspace prepend_scheme "first"). */
enum { PREFIX_NONE = 0, PREFIX_ALWAYS = 1, PREFIX_FIRST = 2 };

/* A growable list of token ids; `failed` records an allocation failure once. */
typedef struct tok_ivec {
  int32_t *v;
  size_t n, cap;
  int failed;
} tok_ivec;

void tok_ivec_push(tok_ivec *v, int32_t id);

/* Interned strings: the token texts at ids [0, n_vocab), then merge operands and results that
 * are not tokens (so that every merge can be keyed by ids). Each text is NUL-terminated in the
 * arena; the open-addressing table maps text to the lowest id holding it. */
typedef struct tok_strings {
  char *arena;
  size_t used, arena_cap;
  size_t *off;
  uint32_t *len, *hash;
  int n, cap;
  int32_t *slots; /* ids, -1 when empty */
  size_t n_slots; /* a power of two, at least twice n */
} tok_strings;

/* Merge ranks: (left id, right id) -> rank and the id of the merged string. */
typedef struct tok_pair {
  uint64_t key; /* 0: empty */
  int32_t rank, result;
} tok_pair;

typedef struct tok_pairs {
  tok_pair *slots;
  size_t n_slots, n;
} tok_pairs;

typedef struct yaie_pretok yaie_pretok;

struct yaie_tokenizer {
  tok_kind kind;
  int n_vocab;
  tok_strings str;
  float *scores;  /* SentencePiece piece scores (merge priority when there are no merges) */
  uint8_t *type;  /* TOK_NORMAL ... per token */
  uint8_t *flags; /* TOK_LSTRIP | TOK_RSTRIP per token */
  tok_pairs pairs;
  int32_t *merges; /* left and right id of each merge, in rank order */
  int n_merges, merges_cap;
  int bos, eos, unk, add_bos;
  char *chat_template;
  /* SentencePiece-style text handling */
  int prefix;              /* PREFIX_* */
  int prefix_unless_space; /* HF Metaspace: no prefix when the text already starts with one */
  int escape_spaces;       /* ' ' -> U+2581 */
  int split_spaces;        /* HF Metaspace split: each U+2581 starts a new word */
  int byte_fallback;       /* unknown characters become <0xXX> tokens */
  int fuse_unk;            /* consecutive unknown tokens become one */
  /* byte-level BPE */
  yaie_pretok *pre;
  int ignore_merges;    /* a word that is a token is taken whole (Llama 3) */
  int add_prefix_space; /* HF ByteLevel add_prefix_space */
  /* derived by tok_finish */
  int32_t byte_token[256]; /* the <0xXX> token of each byte, or -1 */
  char *dec;               /* each token's decoded bytes */
  size_t *dec_off;
  uint32_t *dec_len;
  int32_t *specials; /* tokens matched literally in text, longest first */
  int n_specials;
};

/* --- vocabulary building (tokenizer_vocab.c) --- */
yaie_status tok_new(tok_kind kind, int n_vocab, const char *path, yaie_tokenizer **out);
/* Appends the next token's text (ids are given in order 0, 1, ...); *dup receives the id
 * that already holds the same text, or -1. */
yaie_status tok_add_token(yaie_tokenizer *t, const char *s, size_t n, int32_t *dup);
/* Records merge (left, right) at the next rank; a pair seen before keeps its first rank. */
yaie_status tok_add_merge(yaie_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn);
/* Builds what encoding and decoding derive from the vocabulary: byte tokens, decoded pieces,
 * the special-token list. Call once every token, type and option is set. */
yaie_status tok_finish(yaie_tokenizer *t, const char *path);
int32_t tok_find(const yaie_tokenizer *t, const char *s, size_t n);
/* Merge (left, right): its rank, or -1; *result receives the merged string's id. */
int32_t tok_pair_rank(const yaie_tokenizer *t, int32_t left, int32_t right, int32_t *result);
static inline const char *tok_text(const yaie_tokenizer *t, int32_t id) { return t->str.arena + t->str.off[id]; }
static inline uint32_t tok_len(const yaie_tokenizer *t, int32_t id) { return t->str.len[id]; }

/* --- encoding (tokenizer_bpe.c, tokenizer_spm.c) --- */
/* Scratch space for one encode call, so that a const tokenizer can be shared by threads. */
typedef struct tok_work {
  struct tok_symbol *sym;
  size_t sym_cap;
  struct tok_bigram *heap;
  size_t heap_n, heap_cap;
  char *buf; /* a word in the form the vocabulary spells it */
  size_t buf_cap;
  int failed;
} tok_work;

void tok_work_free(tok_work *w);
/* Grows w->buf to at least n bytes (tok_bpe_word never touches it). */
int tok_work_reserve(tok_work *w, size_t n);
/* Merges one word (already in vocabulary spelling) and appends its tokens. */
void tok_bpe_word(const yaie_tokenizer *t, const char *word, size_t n, tok_work *w, tok_ivec *out);
/* Encodes a stretch of text holding no special tokens. at_start: it begins the input. */
yaie_status tok_encode_spm(const yaie_tokenizer *t, const char *text, size_t n, int at_start,
                           tok_work *w, tok_ivec *out);
yaie_status tok_encode_byte_level(const yaie_tokenizer *t, const char *text, size_t n, tok_work *w,
                                  tok_ivec *out);
/* GPT-2's byte <-> code point table: the UTF-8 of byte b's code point (1 or 2 bytes), and the
 * byte a code point stands for (-1 when none). */
int tok_byte_to_utf8(uint8_t b, char out[2]);
int tok_unicode_to_byte(uint32_t cp);
/* SentencePiece merges derived from the scores, the way Hugging Face's converter does: every
 * split of a piece into two pieces, ranked by the whole piece's score. *out holds 2 ids per
 * merge; the caller frees it. */
yaie_status tok_spm_merges_from_scores(const yaie_tokenizer *t, int32_t **out, int *n);

/* --- UTF-8 (tokenizer.c) --- */
/* The length of the character starting with byte c (1 for a stray continuation byte). */
static inline size_t tok_utf8_len(unsigned char c) {
  static const unsigned char lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lens[c >> 4];
}
/* The offset of the first invalid byte, or n when all of s is valid UTF-8. */
size_t tok_utf8_check(const char *s, size_t n);
/* Decodes the character at s (valid UTF-8 of n bytes); *len receives its length. */
uint32_t tok_utf8_decode(const char *s, size_t n, size_t *len);
int tok_utf8_encode(uint32_t cp, char out[4]);

/* --- pre-tokenizers (pretokenizer.c) --- */
enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };

typedef struct tok_span {
  uint32_t off, len;
} tok_span;

typedef struct tok_spans {
  tok_span *v;
  size_t n, cap;
} tok_spans;

yaie_status yaie_pretok_new(yaie_pretok **out);
void yaie_pretok_free(yaie_pretok *p);
/* Appends a split step: pattern (a PCRE2 regex, or a literal string), what happens to the
 * matches (SPLIT_*), and invert (the pattern names the pieces to keep instead). */
yaie_status yaie_pretok_add(yaie_pretok *p, const char *pattern, size_t len, int is_regex,
                            int behavior, int invert, const char *path);
/* Appends llama.cpp's steps for a GGUF tokenizer.ggml.pre name; *ignore_merges and *add_bos
 * are set when that family wants them (left alone otherwise), *no_bos when it has no BOS. */
yaie_status yaie_pretok_add_named(yaie_pretok *p, const char *name, int *ignore_merges,
                                  int *add_bos, int *no_bos, const char *path);
int yaie_pretok_n_steps(const yaie_pretok *p);
const char *yaie_pretok_step(const yaie_pretok *p, int i, int *is_regex, int *behavior, int *invert);
/* Splits text (valid UTF-8) into pieces, replacing out's contents. */
yaie_status yaie_pretok_split(const yaie_pretok *p, const char *text, size_t n, tok_spans *out);
/* The GPT-2 regex (Hugging Face's ByteLevel pre-tokenizer with use_regex). */
extern const char *const yaie_pretok_gpt2_regex;

#endif

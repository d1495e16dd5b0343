/* yaie: the public C API. LuaJIT's FFI cdef's this file as it is (lines starting with '#' are
 * dropped first), so it holds only plain declarations: no macros beyond the include guard. */
#ifndef YAIE_H
#define YAIE_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * Status codes and errors. Every call that can fail returns a yaie_status; on failure
 * yaie_last_error() (per thread) says what failed and where, e.g. "model.bin: truncated at ...". */
typedef enum yaie_status {
  YAIE_OK = 0,
  YAIE_ERR_IO = 1,          /* a file could not be opened or read */
  YAIE_ERR_FORMAT = 2,      /* a file is corrupt, truncated or not what it claims */
  YAIE_ERR_UNSUPPORTED = 3, /* a valid input this build does not handle (architecture, dtype) */
  YAIE_ERR_ARG = 4,         /* a bad argument (out of range, wrong size, invalid UTF-8) */
  YAIE_ERR_NOMEM = 5,       /* an allocation failed, or a pool is exhausted */
  YAIE_ERR_STATE = 6        /* a call that the object's state does not allow */
} yaie_status;

const char *yaie_last_error(void);
/* The library's version, "MAJOR.MINOR.PATCH" (CMake's project() version). */
const char *yaie_version(void);

/* ---------------------------------------------------------------------------------------------
 * Models (engine/model.c and the loaders). yaie_model_load takes a llama2.c checkpoint (.bin),
 * a GGUF file or a Hugging Face directory (config.json + safetensors). */
typedef enum yaie_rope_layout {
  YAIE_ROPE_ADJACENT = 0, /* llama2.c and GGUF llama: rotate (x[2i], x[2i+1]) */
  YAIE_ROPE_HALF = 1      /* Hugging Face and GGUF qwen2/qwen3: rotate (x[i], x[i + d/2]) */
} yaie_rope_layout;

typedef struct yaie_config {
  char arch[32]; /* "llama", "mistral", "qwen2", "qwen3" */
  int dim;
  int hidden_dim;
  int n_layers;
  int n_heads;
  int n_kv_heads;
  int head_dim;
  int vocab_size;
  int max_seq_len;
  float norm_eps;
  float rope_theta;
  int rope_layout;           /* a yaie_rope_layout */
  float rope_scaling_factor; /* llama3 RoPE scaling; 0 when absent */
  float rope_low_freq_factor;
  float rope_high_freq_factor;
  int rope_original_max_pos;
  int qkv_bias;        /* Qwen2: biases on the Q, K and V projections */
  int qk_norm;         /* Qwen3: RMSNorm over each head of Q and K */
  int tied_embeddings; /* the classifier is the token embedding table */
} yaie_config;

typedef struct yaie_model yaie_model;
typedef struct yaie_tokenizer yaie_tokenizer;

yaie_status yaie_model_load(const char *path, yaie_model **out);
void yaie_model_free(yaie_model *model);
/* A model of the given shape with random weights drawn from the seed (benchmarks, tests); the
 * config's arch, sizes, norm_eps and RoPE fields are used as given. */
yaie_status yaie_model_random(const yaie_config *config, uint64_t seed, yaie_model **out);
const yaie_config *yaie_model_config(const yaie_model *model);
/* The tokenizer found with the model (GGUF metadata, tokenizer.json beside it), or NULL. The
 * model owns it. */
yaie_tokenizer *yaie_model_tokenizer(const yaie_model *model);

/* Writes a Hugging Face directory (config.json, model.safetensors, tokenizer.json when a
 * tokenizer is given) from any loaded model, Q/K permuted into the HF RoPE layout. */
yaie_status yaie_model_save_hf(const yaie_model *model, const yaie_tokenizer *tok, const char *dir);

/* ---------------------------------------------------------------------------------------------
 * Tokenizers (engine/tokenizer*.c). yaie_tokenizer_load takes a llama2.c tokenizer.bin, a GGUF
 * file, a tokenizer.json or a model directory holding one. */
yaie_status yaie_tokenizer_load(const char *path, yaie_tokenizer **out);
void yaie_tokenizer_free(yaie_tokenizer *tok);
int yaie_tokenizer_vocab_size(const yaie_tokenizer *tok);
int yaie_tokenizer_bos(const yaie_tokenizer *tok);     /* -1 when none */
int yaie_tokenizer_eos(const yaie_tokenizer *tok);     /* -1 when none */
int yaie_tokenizer_add_bos(const yaie_tokenizer *tok); /* 1 when prompts start with BOS */
/* The chat template string from the metadata, or NULL. */
const char *yaie_tokenizer_chat_template(const yaie_tokenizer *tok);
/* Encodes len bytes of UTF-8 text (invalid UTF-8 is an error). Writes at most cap ids; *n_out
 * is the number the text needs, so a call with cap too small returns YAIE_ERR_ARG and the size. */
yaie_status yaie_tokenize(const yaie_tokenizer *tok, const char *text, size_t len, int add_bos,
                          int32_t *out, int cap, int *n_out);
/* The bytes a token stands for when decoded (byte tokens give their byte, SentencePiece's
 * U+2581 gives a space, byte-level BPE's code points give their bytes). */
yaie_status yaie_token_bytes(const yaie_tokenizer *tok, int32_t id, const char **bytes, size_t *len);
/* The token's text as it stands in the vocabulary. */
const char *yaie_token_text(const yaie_tokenizer *tok, int32_t id);
/* Decodes ids into at most cap bytes; *len is the size needed. skip_leading_space drops the
 * dummy-prefix space SentencePiece adds before the first piece. */
yaie_status yaie_detokenize(const yaie_tokenizer *tok, const int32_t *ids, int n,
                            int skip_leading_space, char *out, size_t cap, size_t *len);

/* Streaming decode: feed one token at a time, get back only complete UTF-8 characters. */
typedef struct yaie_decoder yaie_decoder;
yaie_status yaie_decoder_new(const yaie_tokenizer *tok, yaie_decoder **out);
void yaie_decoder_free(yaie_decoder *dec);
/* Points *text at the bytes that became complete with this token (valid until the next call). */
yaie_status yaie_decoder_push(yaie_decoder *dec, int32_t id, const char **text, size_t *len);
/* The bytes still held back (an incomplete character at the end, as U+FFFD). */
yaie_status yaie_decoder_flush(yaie_decoder *dec, const char **text, size_t *len);

/* ---------------------------------------------------------------------------------------------
 * The forward pass over a batch (engine/forward_cpu.c). The KV cache is a set of fixed-size
 * pages on the backend; a sequence's page table lists the pages holding its positions
 * 0, page_size, 2*page_size, ... in order. One step runs any mix of sequences, each with a span
 * of new tokens (a prefill chunk or one decode token) whose K/V are written into its pages. */
typedef struct yaie_context_params {
  int n_pages;          /* KV pages to allocate on the backend */
  int page_size;        /* tokens per page, 1..256 */
  int max_batch_tokens; /* most new tokens in one step (scratch buffers are sized for it) */
  int n_threads;        /* 0: all cores (CPU) */
  int device;           /* 0: CPU; 1: CUDA (bf16 weights and KV on the GPU; libyaie_cuda.so) */
} yaie_context_params;

typedef struct yaie_seq {
  const int32_t *tokens; /* the new tokens of this step */
  int n_tokens;
  int pos;               /* position of tokens[0]: the tokens already in this sequence's KV */
  const int32_t *pages;  /* page table covering positions [0, pos + n_tokens) */
  int n_pages;
  int all_logits;        /* 1: logits for every new token (scoring); 0: for the last one only */
} yaie_seq;

/* Cascade attention (a shared prefix read once in decode): a group of decoding sequences (one new
 * token each) whose page tables hold the same pages for positions [start, end), a prefix they
 * share in the radix cache. Attention computes the group's part once for all its members'
 * queries (the prefix K/V read once), each member's own positions separately, and merges the
 * parts by their log-sum-exp. Groups may nest (a system prompt, then few-shot examples under it
 * for some of its members): a member's groups must cover [0, e) without gaps or overlap, with
 * e <= its pos; its own part is [e, pos]. */
typedef struct yaie_group {
  int start, end;
  const int32_t *rows; /* the members: indexes into the batch's seqs */
  int n_rows;
} yaie_group;

typedef struct yaie_batch {
  const yaie_seq *seqs;
  int n_seqs;
  const yaie_group *groups; /* cascade groups, or NULL (n_groups 0): every sequence alone */
  int n_groups;
} yaie_batch;

typedef struct yaie_context yaie_context;
yaie_status yaie_context_new(yaie_model *model, const yaie_context_params *params, yaie_context **out);
void yaie_context_free(yaie_context *ctx);
/* YAIE_OK when contexts can be made on the device (0: CPU, 1: CUDA); else why not. */
yaie_status yaie_device_check(int device);
/* Runs one step. Afterwards yaie_context_logits gives n_rows rows of vocab_size floats: for each
 * sequence in order, one row (its last token) or n_tokens rows when all_logits is set. */
yaie_status yaie_forward(yaie_context *ctx, const yaie_batch *batch);
float *yaie_context_logits(yaie_context *ctx, int *n_rows);
int yaie_context_vocab(const yaie_context *ctx); /* floats per row of logits */

/* ---------------------------------------------------------------------------------------------
 * Sampling (engine/sampler.c): one sampler per request, holding its seed's random state and
 * the token counts its penalties need. */
typedef struct yaie_sampler_params {
  float temperature;        /* 0: greedy */
  int top_k;                /* 0: off */
  float top_p;              /* 1: off */
  float min_p;              /* 0: off */
  float repetition_penalty; /* 1: off; divides positive logits of seen tokens, multiplies negative */
  float frequency_penalty;  /* 0: off; subtracts count * penalty */
  float presence_penalty;   /* 0: off; subtracts penalty once a token has been seen */
  uint64_t seed;
} yaie_sampler_params;

typedef struct yaie_sampler yaie_sampler;
yaie_status yaie_sampler_new(const yaie_sampler_params *params, int vocab_size, yaie_sampler **out);
void yaie_sampler_free(yaie_sampler *s);
/* Counts a token for the penalties (prompt tokens too, where the caller wants them counted). */
void yaie_sampler_accept(yaie_sampler *s, int32_t id);
/* Samples from logits (modified in place). mask, when not NULL, holds one byte per token: 0
 * forbids it. *logprob, when not NULL, receives the chosen token's log-probability under the
 * model's distribution before any processing. Fails only when the mask forbids every token. */
yaie_status yaie_sampler_sample(yaie_sampler *s, float *logits, const uint8_t *mask, int32_t *id,
                                float *logprob);
/* Samples the next token of every sequence of the last yaie_forward step that has a sampler
 * (samplers[i] NULL: a prefill chunk that does not end its prompt), from the logits of its last
 * token; masks may be NULL, or hold NULL for a sequence without one. out[i] receives the token,
 * or -1 for a sequence not sampled; logprobs (may be NULL) the chosen tokens' logprobs. One call
 * per step, so the scheduler's cost does not grow with a call per sequence. */
yaie_status yaie_sample_step(yaie_context *ctx, const yaie_batch *batch, yaie_sampler *const *samplers,
                             const uint8_t *const *masks, int32_t *out, float *logprobs);
/* Log-probabilities of given tokens under rows of the last step's logits (scoring a continuation:
 * row r predicts the token after the r-th logit row). out[i] = log softmax(logits[rows[i]])[tokens[i]]. */
yaie_status yaie_token_logprobs(yaie_context *ctx, const int32_t *rows, const int32_t *tokens, int n, float *out);

/* ---------------------------------------------------------------------------------------------
 * Decode rounds (engine/runtime/round.c): up to n_steps decode steps of a batch in one call, each
 * step's sampled tokens feeding the next step without a round trip to the host (on CUDA the
 * steps, the sampling and the feedback are queued on the GPU and the tokens come back in one
 * copy; the CPU backend runs the same loop on the host).
 *
 * The batch holds sequences in the decode phase: one new token each (its last sampled token, at
 * pos), with pages covering pos + limits[i] positions. Row i produces at most limits[i] tokens
 * (1 <= limits[i] <= n_steps) and ends early on sampling one of its stop ids, stop_ids[
 * stop_offsets[i] .. stop_offsets[i + 1]) (stop_offsets has n_seqs + 1 entries; NULL: none). A
 * row that ended stops writing K/V. Sampling is the samplers' own (same draws, same tokens as
 * n_steps single steps with yaie_sample_step), without masks; the samplers accept each produced
 * token except a stop id, so the caller must not accept them again.
 *
 * Overlap contract: yaie_round_begin queues the round and returns (on the CPU it has already run
 * it). Until yaie_round_wait the caller may do any host work, but must leave this context, the
 * batch's arrays and pages, and its samplers alone; yaie_forward and a second begin fail with
 * YAIE_ERR_STATE. yaie_round_wait writes tokens[step * n_seqs + i], -1 after row i ended, and the
 * tokens' logprobs likewise when want_logprobs was set (logprobs may be NULL otherwise). */
yaie_status yaie_round_begin(yaie_context *ctx, const yaie_batch *batch, int n_steps, yaie_sampler *const *samplers,
                             const int32_t *limits, const int32_t *stop_offsets, const int32_t *stop_ids,
                             int want_logprobs);
yaie_status yaie_round_wait(yaie_context *ctx, int32_t *tokens, float *logprobs);
/* 1 while a round is queued and not yet waited for. */
int yaie_round_pending(const yaie_context *ctx);

#endif

/* Embedding yaie's C API: load a model, tokenize a prompt, generate greedily, stream the text.
 * Prints what `yaie generate --temperature 0 -p PROMPT -n N` prints on stdout.
 *
 *   cc embed.c $(pkg-config --cflags --libs yaie) -o embed
 *   ./embed MODEL [PROMPT] [N] [TOKENIZER]
 *
 * The tokenizer is the model's own (GGUF metadata, tokenizer.json) unless one is given. */
#include <stdio.h>
#include <stdlib.h>
#include <yaie.h>

#define PAGE_SIZE 16

static int fail(const char *what) {
  fprintf(stderr, "embed: %s: %s\n", what, yaie_last_error());
  return 1;
}

static void put(const char *text, size_t len) {
  fwrite(text, 1, len, stdout);
  fflush(stdout);
}

/* Greedy generation of up to n tokens after the prompt's ids, streamed through dec. A generated
 * EOS (or BOS, which ends a llama2.c story) stops it. */
static int generate(yaie_model *model, yaie_tokenizer *tok, yaie_decoder *dec, int32_t *ids,
                    int n_prompt, int n) {
  yaie_context_params cp = {.n_pages = (n_prompt + n + PAGE_SIZE - 1) / PAGE_SIZE,
                            .page_size = PAGE_SIZE, .max_batch_tokens = n_prompt};
  yaie_sampler_params sp = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
  yaie_context *ctx = NULL;
  yaie_sampler *sampler = NULL;
  int32_t *pages = malloc(sizeof *pages * (size_t)cp.n_pages);
  int status = 1;
  if (!pages) {
    fprintf(stderr, "embed: out of memory\n");
    return 1;
  }
  for (int i = 0; i < cp.n_pages; i++)
    pages[i] = i; /* one sequence: its pages in order */
  if (yaie_context_new(model, &cp, &ctx) != YAIE_OK) {
    fail("context");
    goto done;
  }
  if (yaie_sampler_new(&sp, yaie_model_config(model)->vocab_size, &sampler) != YAIE_OK) {
    fail("sampler");
    goto done;
  }
  /* The prompt in one step, then one token per step. */
  yaie_seq seq = {.tokens = ids, .n_tokens = n_prompt, .pos = 0, .pages = pages, .n_pages = cp.n_pages};
  yaie_batch batch = {.seqs = &seq, .n_seqs = 1};
  int len = n_prompt;
  for (int step = 0; step < n; step++) {
    int32_t next;
    if (yaie_forward(ctx, &batch) != YAIE_OK) {
      fail("forward");
      goto done;
    }
    if (yaie_sample_step(ctx, &batch, &sampler, NULL, &next, NULL) != YAIE_OK) {
      fail("sample");
      goto done;
    }
    if (next == yaie_tokenizer_eos(tok) || next == yaie_tokenizer_bos(tok))
      break;
    const char *text;
    size_t text_len;
    if (yaie_decoder_push(dec, next, &text, &text_len) != YAIE_OK) {
      fail("decode");
      goto done;
    }
    put(text, text_len);
    ids[len] = next;
    seq = (yaie_seq){.tokens = ids + len, .n_tokens = 1, .pos = len, .pages = pages, .n_pages = cp.n_pages};
    len++;
  }
  status = 0;
done:
  yaie_sampler_free(sampler);
  yaie_context_free(ctx);
  free(pages);
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 5) {
    fprintf(stderr, "usage: embed MODEL [PROMPT] [N] [TOKENIZER]   (yaie %s)\n", yaie_version());
    return 2;
  }
  const char *prompt = argc > 2 ? argv[2] : "";
  int n = argc > 3 ? atoi(argv[3]) : 64;
  yaie_model *model = NULL;
  yaie_tokenizer *own_tok = NULL, *tok;
  yaie_decoder *dec = NULL;
  int32_t *ids = NULL;
  int status = 1;
  if (yaie_model_load(argv[1], &model) != YAIE_OK) {
    fail("model");
    goto done;
  }
  if (argc > 4 && yaie_tokenizer_load(argv[4], &own_tok) != YAIE_OK) {
    fail("tokenizer");
    goto done;
  }
  tok = own_tok ? own_tok : yaie_model_tokenizer(model);
  if (!tok) {
    fprintf(stderr, "embed: %s has no tokenizer of its own; give one as the 4th argument\n", argv[1]);
    goto done;
  }

  /* Tokenize: a first call with no room says how many ids the prompt needs. */
  int n_prompt = 0, add_bos = yaie_tokenizer_add_bos(tok);
  size_t prompt_len = 0;
  while (prompt[prompt_len])
    prompt_len++;
  yaie_tokenize(tok, prompt, prompt_len, add_bos, NULL, 0, &n_prompt);
  int max_seq = yaie_model_config(model)->max_seq_len;
  if (n_prompt == 0) { /* an empty prompt starts from BOS alone */
    if (yaie_tokenizer_bos(tok) < 0) {
      fprintf(stderr, "embed: an empty prompt needs a BOS token, and this tokenizer has none\n");
      goto done;
    }
    n_prompt = 1;
  }
  if (n < 0 || n_prompt + n > max_seq) {
    fprintf(stderr, "embed: %d prompt tokens + %d new ones do not fit the model's %d positions\n", n_prompt,
            n, max_seq);
    goto done;
  }
  ids = malloc(sizeof *ids * (size_t)(n_prompt + n));
  if (!ids) {
    fprintf(stderr, "embed: out of memory\n");
    goto done;
  }
  ids[0] = yaie_tokenizer_bos(tok);
  if (prompt_len > 0 && yaie_tokenize(tok, prompt, prompt_len, add_bos, ids, n_prompt, &n_prompt) != YAIE_OK) {
    fail("tokenize");
    goto done;
  }

  /* The decoder sees the prompt first, so that the continuation's first piece is spaced right. */
  if (yaie_decoder_new(tok, &dec) != YAIE_OK) {
    fail("decoder");
    goto done;
  }
  for (int i = 0; i < n_prompt; i++) {
    const char *text;
    size_t len;
    yaie_decoder_push(dec, ids[i], &text, &len);
  }
  put(prompt, prompt_len);
  if (generate(model, tok, dec, ids, n_prompt, n) != 0)
    goto done;
  const char *rest;
  size_t rest_len;
  yaie_decoder_flush(dec, &rest, &rest_len);
  put(rest, rest_len);
  put("\n", 1);
  status = 0;
done:
  free(ids);
  yaie_decoder_free(dec);
  yaie_tokenizer_free(own_tok);
  yaie_model_free(model);
  return status;
}

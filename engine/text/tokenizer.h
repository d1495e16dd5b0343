/* Internal tokenizer interface: the loaders that build a yaie_tokenizer from each source. The
 * public functions (encode, decode, streaming decode) are declared in yaie.h. */
#ifndef YAIE_TOKENIZER_H
#define YAIE_TOKENIZER_H

#include "gguf.h"
#include "yaie.h"

/* From GGUF metadata (tokenizer.ggml.*). Sets *out to NULL and returns YAIE_OK when the file
 * carries no tokenizer; fails on a tokenizer that is present but broken or unsupported. */
yaie_status yaie_tokenizer_from_gguf(const yaie_gguf *g, yaie_tokenizer **out);
/* From a Hugging Face tokenizer.json, with tokenizer_config.json read from the same directory
 * when it exists (BOS/EOS, add_bos_token, chat_template). */
yaie_status yaie_tokenizer_from_hf_json(const char *path, yaie_tokenizer **out);
/* From a llama2.c tokenizer.bin (SentencePiece BPE with scores; BOS 1, EOS 2). */
yaie_status yaie_tokenizer_from_llama2c(const char *path, yaie_tokenizer **out);
/* Writes a Hugging Face tokenizer.json (and tokenizer_config.json beside it) that
 * yaie_tokenizer_from_hf_json reads back into a tokenizer encoding every text identically. */
yaie_status yaie_tokenizer_save_hf(const yaie_tokenizer *tok, const char *dir);

#endif

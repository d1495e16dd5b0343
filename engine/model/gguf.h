/* GGUF v2/v3 reader: the header, the metadata and the tensor directory are parsed and
 * bounds-checked once at open; values and tensor data are read in place from the mapping. */
#ifndef YAIE_GGUF_H
#define YAIE_GGUF_H

#include <stdint.h>
#include "file.h"

enum {
  GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4, GGUF_INT32 = 5,
  GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10,
  GGUF_INT64 = 11, GGUF_FLOAT64 = 12
};

/* ggml tensor types that yaie reads. */
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q8_0 = 8, GGML_BF16 = 30 };

typedef struct yaie_gguf_str {
  const char *ptr; /* not NUL-terminated */
  uint64_t len;
} yaie_gguf_str;

typedef struct yaie_gguf_kv {
  yaie_gguf_str key;
  uint32_t type;
  uint32_t arr_type;         /* GGUF_ARRAY: the element type */
  uint64_t arr_n;            /* GGUF_ARRAY: the element count */
  const unsigned char *data; /* the value (for arrays: the first element) */
} yaie_gguf_kv;

typedef struct yaie_gguf_tensor {
  yaie_gguf_str name;
  uint32_t n_dims;
  uint64_t ne[4]; /* ggml order: ne[0] is the contiguous (innermost) dimension */
  uint32_t type;
  uint64_t n_elements;
  const unsigned char *data;
  uint64_t nbytes;
} yaie_gguf_tensor;

typedef struct yaie_gguf {
  const char *path;
  yaie_file file;
  uint32_t version;
  uint64_t n_kv, n_tensors;
  yaie_gguf_kv *kvs;
  yaie_gguf_tensor *tensors;
} yaie_gguf;

yaie_status yaie_gguf_open(const char *path, yaie_gguf *g);
void yaie_gguf_close(yaie_gguf *g);

const yaie_gguf_kv *yaie_gguf_find(const yaie_gguf *g, const char *key);
/* Typed getters: return 1 and set *out when the key exists with a compatible type. */
int yaie_gguf_get_int(const yaie_gguf *g, const char *key, int64_t *out);
int yaie_gguf_get_float(const yaie_gguf *g, const char *key, double *out);
int yaie_gguf_get_bool(const yaie_gguf *g, const char *key, int *out);
int yaie_gguf_get_str(const yaie_gguf *g, const char *key, yaie_gguf_str *out);
/* The elements of a string array, in order (the caller frees *out). */
yaie_status yaie_gguf_str_array(const yaie_gguf *g, const yaie_gguf_kv *kv, yaie_gguf_str **out);
const yaie_gguf_tensor *yaie_gguf_tensor_find(const yaie_gguf *g, const char *name);

/* Bytes of n elements of a ggml type, or 0 for a type yaie cannot read. */
uint64_t yaie_ggml_nbytes(uint32_t type, uint64_t n);
const char *yaie_ggml_type_name(uint32_t type);

#endif

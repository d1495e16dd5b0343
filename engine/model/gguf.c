/* GGUF parsing. Every length and offset read from the file is checked against the mapping
 * before use, so a truncated or corrupt file fails with a message, never a crash. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"

typedef struct cursor {
  const yaie_gguf *g;
  const unsigned char *p, *end;
} cursor;

static yaie_status truncated(const cursor *c, const char *what) {
  return yaie_fail(YAIE_ERR_FORMAT, "%s: truncated GGUF reading %s at offset %zu", c->g->path, what,
                   (size_t)(c->p - c->g->file.data));
}

static yaie_status take(cursor *c, uint64_t n, const unsigned char **out, const char *what) {
  if ((uint64_t)(c->end - c->p) < n)
    return truncated(c, what);
  *out = c->p;
  c->p += n;
  return YAIE_OK;
}

static yaie_status read_u32(cursor *c, uint32_t *v, const char *what) {
  const unsigned char *p = NULL;
  YAIE_TRY(take(c, 4, &p, what));
  memcpy(v, p, 4);
  return YAIE_OK;
}

static yaie_status read_u64(cursor *c, uint64_t *v, const char *what) {
  const unsigned char *p = NULL;
  YAIE_TRY(take(c, 8, &p, what));
  memcpy(v, p, 8);
  return YAIE_OK;
}

static yaie_status read_str(cursor *c, yaie_gguf_str *s, const char *what) {
  const unsigned char *p = NULL;
  YAIE_TRY(read_u64(c, &s->len, what));
  YAIE_TRY(take(c, s->len, &p, what));
  s->ptr = (const char *)p;
  return YAIE_OK;
}

static uint64_t scalar_size(uint32_t type) {
  switch (type) {
  case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
  case GGUF_UINT16: case GGUF_INT16: return 2;
  case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
  case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
  default: return 0;
  }
}

/* Skips one value of the given type, checking it lies inside the file. */
static yaie_status skip_value(cursor *c, uint32_t type, int depth, yaie_gguf_kv *kv) {
  const unsigned char *p = NULL;
  if (type == GGUF_STRING) {
    yaie_gguf_str s;
    return read_str(c, &s, "a string value");
  }
  if (type == GGUF_ARRAY) {
    uint32_t at;
    uint64_t n;
    if (depth > 2)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: arrays nested too deeply", c->g->path);
    YAIE_TRY(read_u32(c, &at, "an array type"));
    YAIE_TRY(read_u64(c, &n, "an array length"));
    if (kv) {
      kv->arr_type = at;
      kv->arr_n = n;
      kv->data = c->p;
    }
    uint64_t es = scalar_size(at);
    if (es)
      return n > (uint64_t)(c->end - c->p) / es ? truncated(c, "an array") : take(c, n * es, &p, "an array");
    if (at != GGUF_STRING && at != GGUF_ARRAY)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: unknown array element type %u", c->g->path, at);
    for (uint64_t i = 0; i < n; i++)
      YAIE_TRY(skip_value(c, at, depth + 1, NULL));
    return YAIE_OK;
  }
  uint64_t size = scalar_size(type);
  if (!size)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: unknown metadata value type %u", c->g->path, type);
  return take(c, size, &p, "a value");
}

uint64_t yaie_ggml_nbytes(uint32_t type, uint64_t n) {
  switch (type) {
  case GGML_F32: return n * 4;
  case GGML_F16: case GGML_BF16: return n * 2;
  case GGML_Q4_0: return n % 32 ? 0 : n / 32 * 18;
  case GGML_Q4_1: return n % 32 ? 0 : n / 32 * 20;
  case GGML_Q8_0: return n % 32 ? 0 : n / 32 * 34;
  default: return 0;
  }
}

const char *yaie_ggml_type_name(uint32_t type) {
  switch (type) {
  case GGML_F32: return "F32";
  case GGML_F16: return "F16";
  case GGML_BF16: return "BF16";
  case GGML_Q4_0: return "Q4_0";
  case GGML_Q4_1: return "Q4_1";
  case GGML_Q8_0: return "Q8_0";
  default: return "unsupported";
  }
}

static yaie_status parse_tensors(cursor *c, yaie_gguf *g, uint64_t alignment) {
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    yaie_gguf_tensor *t = &g->tensors[i];
    uint64_t offset;
    YAIE_TRY(read_str(c, &t->name, "a tensor name"));
    YAIE_TRY(read_u32(c, &t->n_dims, "a tensor rank"));
    if (t->n_dims == 0 || t->n_dims > 4)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %.*s has rank %u", g->path, (int)t->name.len,
                       t->name.ptr, t->n_dims);
    t->n_elements = 1;
    for (uint32_t d = 0; d < 4; d++) {
      t->ne[d] = 1;
      if (d < t->n_dims)
        YAIE_TRY(read_u64(c, &t->ne[d], "a tensor shape"));
      if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 40) / t->n_elements)
        return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %.*s has a bad shape", g->path,
                         (int)t->name.len, t->name.ptr);
      t->n_elements *= t->ne[d];
    }
    YAIE_TRY(read_u32(c, &t->type, "a tensor type"));
    YAIE_TRY(read_u64(c, &offset, "a tensor offset"));
    t->nbytes = yaie_ggml_nbytes(t->type, t->n_elements);
    t->data = (const unsigned char *)(uintptr_t)offset; /* relative until the data start is known */
  }
  size_t header = (size_t)(c->p - g->file.data);
  size_t data_start = (header + alignment - 1) / alignment * alignment;
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    yaie_gguf_tensor *t = &g->tensors[i];
    uint64_t offset = (uint64_t)(uintptr_t)t->data;
    if (data_start > g->file.size || offset > g->file.size - data_start ||
        t->nbytes > g->file.size - data_start - offset)
      return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %.*s lies past the end of the file (truncated?)",
                       g->path, (int)t->name.len, t->name.ptr);
    t->data = g->file.data + data_start + offset;
  }
  return YAIE_OK;
}

yaie_status yaie_gguf_open(const char *path, yaie_gguf *g) {
  memset(g, 0, sizeof *g);
  g->path = path;
  YAIE_TRY(yaie_file_map(path, &g->file));
  cursor c = {g, g->file.data, g->file.data + g->file.size};
  const unsigned char *magic = NULL;
  yaie_status st = take(&c, 4, &magic, "the magic");
  if (st == YAIE_OK && memcmp(magic, "GGUF", 4) != 0)
    st = yaie_fail(YAIE_ERR_FORMAT, "%s: bad magic (not a GGUF file)", path);
  if (st == YAIE_OK)
    st = read_u32(&c, &g->version, "the version");
  if (st == YAIE_OK && (g->version < 2 || g->version > 3))
    st = yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: GGUF version %u (2 and 3 are read)", path, g->version);
  if (st == YAIE_OK)
    st = read_u64(&c, &g->n_tensors, "the tensor count");
  if (st == YAIE_OK)
    st = read_u64(&c, &g->n_kv, "the metadata count");
  /* Each entry takes at least 8 bytes, which bounds the counts before allocating. */
  if (st == YAIE_OK && (g->n_kv > g->file.size / 8 || g->n_tensors > g->file.size / 8))
    st = yaie_fail(YAIE_ERR_FORMAT, "%s: implausible counts (%llu tensors, %llu keys)", path,
                   (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv);
  if (st == YAIE_OK) {
    g->kvs = calloc(g->n_kv + 1, sizeof *g->kvs);
    g->tensors = calloc(g->n_tensors + 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors)
      st = yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  }
  for (uint64_t i = 0; st == YAIE_OK && i < g->n_kv; i++) {
    yaie_gguf_kv *kv = &g->kvs[i];
    st = read_str(&c, &kv->key, "a metadata key");
    if (st == YAIE_OK)
      st = read_u32(&c, &kv->type, "a metadata type");
    kv->data = c.p;
    if (st == YAIE_OK)
      st = skip_value(&c, kv->type, 0, kv);
  }
  int64_t alignment = 32;
  if (st == YAIE_OK && yaie_gguf_get_int(g, "general.alignment", &alignment) &&
      (alignment <= 0 || (alignment & (alignment - 1))))
    st = yaie_fail(YAIE_ERR_FORMAT, "%s: bad general.alignment %lld", path, (long long)alignment);
  if (st == YAIE_OK)
    st = parse_tensors(&c, g, (uint64_t)alignment);
  if (st != YAIE_OK)
    yaie_gguf_close(g);
  return st;
}

void yaie_gguf_close(yaie_gguf *g) {
  free(g->kvs);
  free(g->tensors);
  yaie_file_unmap(&g->file);
  g->kvs = NULL;
  g->tensors = NULL;
}

static int str_eq(yaie_gguf_str s, const char *z) {
  size_t n = strlen(z);
  return s.len == n && memcmp(s.ptr, z, n) == 0;
}

const yaie_gguf_kv *yaie_gguf_find(const yaie_gguf *g, const char *key) {
  for (uint64_t i = 0; i < g->n_kv; i++)
    if (str_eq(g->kvs[i].key, key))
      return &g->kvs[i];
  return NULL;
}

int yaie_gguf_get_int(const yaie_gguf *g, const char *key, int64_t *out) {
  const yaie_gguf_kv *kv = yaie_gguf_find(g, key);
  if (!kv)
    return 0;
  const unsigned char *p = kv->data;
  switch (kv->type) {
  case GGUF_UINT8: *out = *p; return 1;
  case GGUF_INT8: *out = (int8_t)*p; return 1;
  case GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 1; }
  case GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return 1; }
  case GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 1; }
  case GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return 1; }
  case GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); *out = (int64_t)v; return 1; }
  case GGUF_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return 1; }
  default: return 0;
  }
}

int yaie_gguf_get_float(const yaie_gguf *g, const char *key, double *out) {
  const yaie_gguf_kv *kv = yaie_gguf_find(g, key);
  int64_t i;
  if (!kv)
    return 0;
  if (kv->type == GGUF_FLOAT32) {
    float v;
    memcpy(&v, kv->data, 4);
    *out = v;
    return 1;
  }
  if (kv->type == GGUF_FLOAT64) {
    memcpy(out, kv->data, 8);
    return 1;
  }
  if (yaie_gguf_get_int(g, key, &i)) {
    *out = (double)i;
    return 1;
  }
  return 0;
}

int yaie_gguf_get_bool(const yaie_gguf *g, const char *key, int *out) {
  const yaie_gguf_kv *kv = yaie_gguf_find(g, key);
  int64_t i;
  if (kv && kv->type == GGUF_BOOL) {
    *out = kv->data[0] != 0;
    return 1;
  }
  if (kv && yaie_gguf_get_int(g, key, &i)) {
    *out = i != 0;
    return 1;
  }
  return 0;
}

int yaie_gguf_get_str(const yaie_gguf *g, const char *key, yaie_gguf_str *out) {
  const yaie_gguf_kv *kv = yaie_gguf_find(g, key);
  if (!kv || kv->type != GGUF_STRING)
    return 0;
  memcpy(&out->len, kv->data, 8); /* bounds were checked at open */
  out->ptr = (const char *)kv->data + 8;
  return 1;
}

yaie_status yaie_gguf_str_array(const yaie_gguf *g, const yaie_gguf_kv *kv, yaie_gguf_str **out) {
  *out = NULL;
  if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: %.*s is not a string array", g->path, (int)kv->key.len,
                     kv->key.ptr);
  yaie_gguf_str *s = malloc((kv->arr_n + 1) * sizeof *s);
  if (!s)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", g->path);
  const unsigned char *p = kv->data;
  for (uint64_t i = 0; i < kv->arr_n; i++) {
    memcpy(&s[i].len, p, 8);
    s[i].ptr = (const char *)p + 8;
    p += 8 + s[i].len;
  }
  *out = s;
  return YAIE_OK;
}

const yaie_gguf_tensor *yaie_gguf_tensor_find(const yaie_gguf *g, const char *name) {
  for (uint64_t i = 0; i < g->n_tensors; i++)
    if (str_eq(g->tensors[i].name, name))
      return &g->tensors[i];
  return NULL;
}

/* safetensors reading and writing. A file's header is parsed once with cJSON and each tensor
 * entry checked against the file (known dtype sizes times the shape must equal the byte range,
 * and the range must lie inside the data section), so a corrupt or truncated file fails at open
 * with a message naming the file and the tensor, before any data is touched. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dequant.h"
#include "error.h"
#include "file.h"
#include "safetensors.h"

/* Header lengths beyond this are not real headers (the format itself caps them at 100 MB). */
#define MAX_HEADER (100u << 20)

static int dtype_size(const char *dtype) {
  static const struct { const char *name; int size; } sizes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
    {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1},
    {"F8_E5M2", 1},
  };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (!strcmp(dtype, sizes[i].name))
      return sizes[i].size;
  return 0;
}

/* A JSON number that is a whole number in [0, 2^53], where doubles are still exact. */
static int json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v))
    return 0;
  double d = v->valuedouble;
  if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d)
    return 0;
  *out = (uint64_t)d;
  return 1;
}

static yaie_status parse_shape(const char *path, const char *name, const cJSON *shape, yaie_st_tensor *t) {
  int n = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
  if (n < 0 || n > YAIE_ST_MAX_DIMS)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s has no valid shape (an array of at most %d sizes)",
                     path, name, YAIE_ST_MAX_DIMS);
  t->n_dims = n;
  t->n_elements = 1;
  for (int i = 0; i < n; i++) {
    uint64_t d;
    if (!json_uint(cJSON_GetArrayItem(shape, i), &d) || (d && t->n_elements > (UINT64_C(1) << 60) / d))
      return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s has an invalid size in its shape", path, name);
    t->shape[i] = d;
    t->n_elements *= d;
  }
  return YAIE_OK;
}

/* Fills t from one header entry; data_len is the size of the data section after the header. */
static yaie_status parse_entry(const char *path, const cJSON *item, const unsigned char *data,
                               uint64_t data_len, yaie_st_tensor *t) {
  const char *name = item->string;
  if (!cJSON_IsObject(item))
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s: header entry is not an object", path, name);
  const char *dtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "dtype"));
  if (!dtype || strlen(dtype) >= sizeof t->dtype)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s has no valid dtype", path, name);
  strcpy(t->dtype, dtype);
  YAIE_TRY(parse_shape(path, name, cJSON_GetObjectItemCaseSensitive(item, "shape"), t));
  const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  uint64_t begin, end;
  if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
      !json_uint(cJSON_GetArrayItem(offsets, 0), &begin) || !json_uint(cJSON_GetArrayItem(offsets, 1), &end) ||
      begin > end)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s has no valid data_offsets [begin, end]", path, name);
  if (end > data_len)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s: bytes [%llu, %llu) lie past the end of the data "
                     "(%llu bytes; truncated file?)", path, name, (unsigned long long)begin,
                     (unsigned long long)end, (unsigned long long)data_len);
  int size = dtype_size(dtype);
  if (size && end - begin != t->n_elements * (uint64_t)size)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s: %llu bytes do not hold its %llu %s elements", path,
                     name, (unsigned long long)(end - begin), (unsigned long long)t->n_elements, dtype);
  t->data = data + begin;
  t->nbytes = end - begin;
  t->path = path;
  return YAIE_OK;
}

/* Appends every tensor of one header to the set (its name copied into s->names). */
static yaie_status add_entries(yaie_safetensors *s, const char *path, const cJSON *header,
                               const unsigned char *data, uint64_t data_len) {
  int n = cJSON_GetArraySize(header);
  yaie_st_tensor *tensors = realloc(s->tensors, (size_t)(s->n_tensors + n) * sizeof *tensors);
  if (tensors)
    s->tensors = tensors;
  char **names = realloc(s->names, (size_t)(s->n_tensors + n) * sizeof *names);
  if (names)
    s->names = names;
  if (!tensors || !names)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory reading the header", path);
  for (const cJSON *item = header->child; item; item = item->next) {
    if (!strcmp(item->string, "__metadata__"))
      continue;
    yaie_st_tensor *t = &s->tensors[s->n_tensors];
    memset(t, 0, sizeof *t);
    YAIE_TRY(parse_entry(path, item, data, data_len, t));
    if (!(s->names[s->n_tensors] = strdup(item->string)))
      return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory reading the header", path);
    t->name = s->names[s->n_tensors++];
  }
  return YAIE_OK;
}

/* Maps one file into the set and reads its header. */
static yaie_status add_file(yaie_safetensors *s, const char *path) {
  yaie_st_file *files = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *files);
  if (!files)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  s->files = files;
  yaie_st_file *f = &s->files[s->n_files];
  memset(f, 0, sizeof *f);
  if (!(f->path = strdup(path)))
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  s->n_files++;
  YAIE_TRY(yaie_file_map(path, &f->map));
  const unsigned char *p = f->map.data;
  if (f->map.size < 8)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes)", path, f->map.size);
  uint64_t len = 0;
  for (int i = 7; i >= 0; i--)
    len = len << 8 | p[i];
  if (len > f->map.size - 8 || len > MAX_HEADER)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes; "
                     "truncated, or not a safetensors file?)", f->path, (unsigned long long)len, f->map.size);
  cJSON *header = cJSON_ParseWithLength((const char *)p + 8, (size_t)len);
  if (!cJSON_IsObject(header)) {
    cJSON_Delete(header);
    return yaie_fail(YAIE_ERR_FORMAT, "%s: the header is not a JSON object (corrupt file?)", f->path);
  }
  yaie_status st = add_entries(s, f->path, header, p + 8 + len, f->map.size - 8 - len);
  cJSON_Delete(header);
  return st;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const yaie_st_tensor *)a)->name, ((const yaie_st_tensor *)b)->name);
}

/* Sorts the tensors for lookup; a name held twice (in two shards) is an error. */
static yaie_status index_tensors(yaie_safetensors *s) {
  if (s->n_tensors > 1)
    qsort(s->tensors, (size_t)s->n_tensors, sizeof *s->tensors, by_name);
  for (int i = 1; i < s->n_tensors; i++)
    if (!strcmp(s->tensors[i - 1].name, s->tensors[i].name))
      return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s appears twice (in %s and %s)", s->path,
                       s->tensors[i].name, s->tensors[i - 1].path, s->tensors[i].path);
  return YAIE_OK;
}

void yaie_safetensors_close(yaie_safetensors *s) {
  for (int i = 0; i < s->n_files; i++) {
    yaie_file_unmap(&s->files[i].map);
    free(s->files[i].path);
  }
  for (int i = 0; i < s->n_tensors; i++)
    free(s->names[i]);
  free(s->files);
  free(s->tensors);
  free(s->names);
  free(s->path);
  memset(s, 0, sizeof *s);
}

yaie_status yaie_safetensors_open(const char *path, yaie_safetensors *s) {
  memset(s, 0, sizeof *s);
  yaie_status st = (s->path = strdup(path)) ? YAIE_OK : yaie_fail(YAIE_ERR_NOMEM, "out of memory");
  if (st == YAIE_OK)
    st = add_file(s, path);
  if (st == YAIE_OK)
    st = index_tensors(s);
  if (st != YAIE_OK)
    yaie_safetensors_close(s);
  return st;
}

/* Opens every distinct shard the weight_map names, then checks each name is where it says. */
static yaie_status open_shards(yaie_safetensors *s, const char *dir, const char *index_path, const cJSON *map) {
  for (const cJSON *e = map->child; e; e = e->next) {
    const char *shard = cJSON_GetStringValue(e);
    if (!shard || !*shard || strchr(shard, '/'))
      return yaie_fail(YAIE_ERR_FORMAT, "%s: weight_map entry %s does not name a shard file", index_path, e->string);
    int seen = 0;
    for (const cJSON *prev = map->child; prev != e && !seen; prev = prev->next)
      seen = !strcmp(cJSON_GetStringValue(prev), shard);
    if (seen)
      continue;
    char *path = yaie_path_join(dir, shard);
    yaie_status st = path ? add_file(s, path) : yaie_fail(YAIE_ERR_NOMEM, "out of memory");
    free(path);
    YAIE_TRY(st);
  }
  YAIE_TRY(index_tensors(s));
  for (const cJSON *e = map->child; e; e = e->next) {
    const yaie_st_tensor *t = yaie_safetensors_find(s, e->string);
    const char *shard = cJSON_GetStringValue(e), *base = t ? strrchr(t->path, '/') + 1 : NULL;
    if (!t || strcmp(base, shard))
      return yaie_fail(YAIE_ERR_FORMAT, "%s: weight_map puts tensor %s in %s, which does not hold it",
                       index_path, e->string, shard);
  }
  return YAIE_OK;
}

static yaie_status open_index(yaie_safetensors *s, const char *dir, const char *index_path) {
  char *text;
  size_t len;
  YAIE_TRY(yaie_file_read_text(index_path, &text, &len));
  cJSON *index = cJSON_ParseWithLength(text, len);
  free(text);
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
  yaie_status st = YAIE_OK;
  if (!index)
    st = yaie_fail(YAIE_ERR_FORMAT, "%s: invalid JSON", index_path);
  else if (!cJSON_IsObject(map) || !map->child)
    st = yaie_fail(YAIE_ERR_FORMAT, "%s: no weight_map object", index_path);
  else
    st = open_shards(s, dir, index_path, map);
  cJSON_Delete(index);
  return st;
}

static yaie_status open_dir_files(yaie_safetensors *s, const char *dir, const char *index_path,
                                  const char *single_path) {
  if (yaie_path_exists(index_path))
    return open_index(s, dir, index_path);
  if (!yaie_path_exists(single_path))
    return yaie_fail(YAIE_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
  YAIE_TRY(add_file(s, single_path));
  return index_tensors(s);
}

yaie_status yaie_safetensors_open_dir(const char *dir, yaie_safetensors *s) {
  memset(s, 0, sizeof *s);
  char *index_path = yaie_path_join(dir, "model.safetensors.index.json");
  char *single_path = yaie_path_join(dir, "model.safetensors");
  s->path = strdup(dir);
  yaie_status st = index_path && single_path && s->path ? open_dir_files(s, dir, index_path, single_path)
                                                        : yaie_fail(YAIE_ERR_NOMEM, "out of memory");
  free(index_path);
  free(single_path);
  if (st != YAIE_OK)
    yaie_safetensors_close(s);
  return st;
}

const yaie_st_tensor *yaie_safetensors_find(const yaie_safetensors *s, const char *name) {
  yaie_st_tensor key = {.name = name};
  if (!s->n_tensors)
    return NULL;
  return bsearch(&key, s->tensors, (size_t)s->n_tensors, sizeof key, by_name);
}

static void format_shape(char *out, size_t cap, int n_dims, const uint64_t *shape) {
  size_t used = (size_t)snprintf(out, cap, "[");
  for (int i = 0; i < n_dims && used < cap; i++)
    used += (size_t)snprintf(out + used, cap - used, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
  if (used < cap)
    snprintf(out + used, cap - used, "]");
}

static yaie_status check_shape(const yaie_st_tensor *t, int n_dims, const uint64_t *shape) {
  int same = t->n_dims == n_dims;
  for (int i = 0; same && i < n_dims; i++)
    same = t->shape[i] == shape[i];
  if (same)
    return YAIE_OK;
  char got[128], want[128];
  format_shape(got, sizeof got, t->n_dims, t->shape);
  format_shape(want, sizeof want, n_dims, shape);
  return yaie_fail(YAIE_ERR_FORMAT, "%s: tensor %s has shape %s, expected %s", t->path, t->name, got, want);
}

yaie_status yaie_safetensors_read_f32(const yaie_safetensors *s, const char *name, float *dst,
                                      int n_dims, const uint64_t *shape) {
  const yaie_st_tensor *t = yaie_safetensors_find(s, name);
  if (!t)
    return yaie_fail(YAIE_ERR_FORMAT, "%s: missing tensor %s", s->path, name);
  YAIE_TRY(check_shape(t, n_dims, shape));
  size_t n = (size_t)t->n_elements;
  /* The data section need not be aligned, so elements are copied out rather than cast. */
  if (!strcmp(t->dtype, "F32")) {
    memcpy(dst, t->data, n * sizeof(float));
  } else if (!strcmp(t->dtype, "F16") || !strcmp(t->dtype, "BF16")) {
    int bf16 = t->dtype[0] == 'B';
    /* Large models are mostly 16-bit: converting on all cores keeps loading I/O-bound. */
#pragma omp parallel for schedule(static) if (n > (1u << 18))
    for (size_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, t->data + 2 * i, 2);
      dst[i] = bf16 ? yaie_bf16_to_f32(h) : yaie_f16_to_f32(h);
    }
  } else {
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s; yaie reads F32, F16 and BF16",
                     t->path, name, t->dtype);
  }
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Writing. The header is written by hand rather than through cJSON so that offsets print as
 * exact integers whatever their size. */

typedef struct text {
  char *p;
  size_t len, cap;
  int failed;
} text;

static void append(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = t->failed ? -1 : vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n >= t->cap - t->len) {
    size_t cap = (t->cap + (size_t)n) * 2;
    char *grown = realloc(t->p, cap);
    if (grown) {
      t->p = grown;
      t->cap = cap;
      va_start(ap, fmt);
      n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
      va_end(ap);
    } else {
      n = -1;
    }
  }
  if (n < 0)
    t->failed = 1;
  else
    t->len += (size_t)n;
}

yaie_status yaie_safetensors_write_header(FILE *fp, const char *path, const yaie_st_entry *e, int n) {
  text t = {malloc(4096), 0, 4096, 0};
  t.failed = !t.p;
  append(&t, "{\"__metadata__\":{\"format\":\"pt\"}");
  uint64_t offset = 0;
  for (int i = 0; i < n; i++) {
    uint64_t count = 1;
    append(&t, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", e[i].name);
    for (int d = 0; d < e[i].n_dims; d++) {
      append(&t, "%s%llu", d ? "," : "", (unsigned long long)e[i].shape[d]);
      count *= e[i].shape[d];
    }
    append(&t, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
           (unsigned long long)(offset + 4 * count));
    offset += 4 * count;
  }
  append(&t, "}");
  while (!t.failed && t.len % 8) /* pad so the data starts 8-aligned, as safetensors does */
    append(&t, " ");
  if (t.failed) {
    free(t.p);
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory writing the header", path);
  }
  unsigned char len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (unsigned char)((uint64_t)t.len >> (8 * i));
  int ok = fwrite(len, 1, 8, fp) == 8 && fwrite(t.p, 1, t.len, fp) == t.len;
  free(t.p);
  return ok ? YAIE_OK : yaie_fail(YAIE_ERR_IO, "%s: write error", path);
}

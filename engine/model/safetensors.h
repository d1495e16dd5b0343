/* safetensors files: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the tensor
 * bytes. A set is one file or the shards a model.safetensors.index.json names; every tensor's
 * dtype, shape and byte range are checked at open, and data is read in place from the mappings. */
#ifndef YAIE_SAFETENSORS_H
#define YAIE_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "file.h"

#define YAIE_ST_MAX_DIMS 8

typedef struct yaie_st_tensor {
  const char *name;  /* points into the owning set's storage */
  const char *path;  /* the file holding it, for messages */
  char dtype[16];    /* as written: "F32", "F16", "BF16", "I64", ... */
  int n_dims;
  uint64_t shape[YAIE_ST_MAX_DIMS];
  uint64_t n_elements;
  const unsigned char *data;
  uint64_t nbytes;
} yaie_st_tensor;

typedef struct yaie_st_file {
  char *path;
  yaie_file map;
} yaie_st_file;

typedef struct yaie_safetensors {
  char *path; /* the directory or file the set was opened from */
  yaie_st_file *files;
  int n_files;
  yaie_st_tensor *tensors; /* sorted by name */
  int n_tensors;
  char **names;            /* owned copies of the tensor names */
} yaie_safetensors;

/* Opens one .safetensors file as a set. */
yaie_status yaie_safetensors_open(const char *path, yaie_safetensors *s);
/* Opens a model directory: model.safetensors.index.json (its weight_map's shards) when present,
 * else model.safetensors. */
yaie_status yaie_safetensors_open_dir(const char *dir, yaie_safetensors *s);
void yaie_safetensors_close(yaie_safetensors *s);

const yaie_st_tensor *yaie_safetensors_find(const yaie_safetensors *s, const char *name);
/* Reads tensor `name`, which must exist with exactly this shape, into dst as fp32 (from F32,
 * F16 or BF16). */
yaie_status yaie_safetensors_read_f32(const yaie_safetensors *s, const char *name, float *dst,
                                      int n_dims, const uint64_t *shape);

/* Writing: the header of an F32 file whose tensors follow in the order given, packed. The
 * caller then writes each tensor's n_elements floats in that order. */
typedef struct yaie_st_entry {
  char name[96];
  int n_dims;
  uint64_t shape[2];
} yaie_st_entry;

yaie_status yaie_safetensors_write_header(FILE *fp, const char *path, const yaie_st_entry *e, int n);

#endif

/* Read-only file mappings: model files are mapped, parsed in place and copied to the backend. */
#ifndef YAIE_FILE_H
#define YAIE_FILE_H

#include <stddef.h>
#include "yaie.h"

typedef struct yaie_file {
  const unsigned char *data;
  size_t size;
} yaie_file;

yaie_status yaie_file_map(const char *path, yaie_file *out);
void yaie_file_unmap(yaie_file *f);
/* Reads a whole (small) text file, NUL-terminated; the caller frees it. */
yaie_status yaie_file_read_text(const char *path, char **out, size_t *len);
int yaie_path_is_dir(const char *path);
/* "dir/name" in a fresh allocation (the caller frees it), or NULL when out of memory. */
char *yaie_path_join(const char *dir, const char *name);
int yaie_path_exists(const char *path);

#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "file.h"

yaie_status yaie_file_map(const char *path, yaie_file *out) {
  out->data = NULL;
  out->size = 0;
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return yaie_fail(YAIE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return yaie_fail(YAIE_ERR_IO, "%s: not a regular file", path);
  }
  if (st.st_size == 0) {
    close(fd);
    return yaie_fail(YAIE_ERR_FORMAT, "%s: empty file", path);
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return yaie_fail(YAIE_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
  out->data = p;
  out->size = (size_t)st.st_size;
  return YAIE_OK;
}

void yaie_file_unmap(yaie_file *f) {
  if (f->data)
    munmap((void *)f->data, f->size);
  f->data = NULL;
  f->size = 0;
}

yaie_status yaie_file_read_text(const char *path, char **out, size_t *len) {
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return yaie_fail(YAIE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n - 1, fp)) > 0) {
    n += got;
    if (n + 1 == cap) {
      char *grown = realloc(buf, cap * 2);
      if (!grown) {
        free(buf);
        buf = NULL;
      }
      buf = grown;
      cap *= 2;
    }
  }
  int failed = ferror(fp);
  fclose(fp);
  if (!buf)
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory reading", path);
  if (failed) {
    free(buf);
    return yaie_fail(YAIE_ERR_IO, "%s: read error", path);
  }
  buf[n] = 0;
  *out = buf;
  if (len)
    *len = n;
  return YAIE_OK;
}

int yaie_path_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int yaie_path_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

char *yaie_path_join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", dir, name);
  return p;
}

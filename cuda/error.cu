// The backend's error messages: one per thread, read by libyaie after a failed call
// (yaie_backend_ops.last_error), as engine/error.c keeps libyaie's own.
#include <stdarg.h>
#include <stdio.h>

#include "common.cuh"

static thread_local char error_buf[1024];

yaie_status cuda_fail(yaie_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_buf, sizeof error_buf, fmt, ap);
  va_end(ap);
  return status;
}

const char *cuda_last_error(void) { return error_buf; }

/* Error reporting inside the engine: a failing function records a message and returns the
 * status, so call sites read `return yaie_fail(YAIE_ERR_FORMAT, "%s: bad magic", path);`. */
#ifndef YAIE_ERROR_H
#define YAIE_ERROR_H

#include "yaie.h"

yaie_status yaie_fail(yaie_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Propagates a failing status to the caller. */
#define YAIE_TRY(expr)                  \
  do {                                  \
    yaie_status try_status_ = (expr);   \
    if (try_status_ != YAIE_OK)         \
      return try_status_;               \
  } while (0)

#endif

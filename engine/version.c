/* The library's version, from CMake's project() (YAIE_VERSION is set by the build). */
#include "yaie.h"

#ifndef YAIE_VERSION
#error "YAIE_VERSION must be defined by the build (CMakeLists.txt sets it from project())"
#endif

const char *yaie_version(void) { return YAIE_VERSION; }

-- LuaRocks: `luarocks --lua-version 5.1 make` builds this checkout with CMake (the CUDA backend
-- too when nvcc is found) and installs the Lua library, libyaie and the yaie program into a
-- tree; `require "yaie"` then finds libyaie there (cmake/install.cmake, YAIE_LUAROCKS).
rockspec_format = "3.0"
package = "yaie"
version = "0.1.0-1"
source = {
  url = "git+file://.", -- no published source yet: build a checkout with `luarocks make`
}
description = {
  summary = "An embeddable LLM inference engine: a C core driven by LuaJIT",
  detailed = [[
    Model loaders (GGUF, Hugging Face safetensors, llama2.c), tokenizers, a paged KV cache with a
    radix-tree prefix cache, continuous batching with scheduling policies written in Lua,
    SGLang-style generation programs and regex-constrained decoding; CPU and CUDA backends.
  ]],
}
dependencies = {
  "lua == 5.1", -- LuaJIT: the library uses its FFI
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    YAIE_LUAROCKS = "ON",
  },
}

# Installing yaie. `cmake --install build --prefix P` puts
#   P/lib/libyaie.so, and P/lib/libyaie_cuda.so when built (libyaie loads it from its own directory)
#   P/include/yaie.h, yaie_cache.h, yaie_constrain.h
#   P/bin/yaie, which finds its library and its Lua files relative to itself
#   P/share/lua/5.1/yaie/: the Lua library, with install.lua saying where libyaie lies
#   P/lib/pkgconfig/yaie.pc and P/lib/cmake/yaie/ (find_package(yaie) gives yaie::yaie)
# Every path an installed file holds is relative to where that file lies, so a prefix can be
# moved as a whole. YAIE_LUAROCKS (the rockspec sets it) installs into a rock's lua/, lib/ and
# bin/ instead, which LuaRocks deploys into a tree's share/lua/5.1/, lib/lua/5.1/ and bin/.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
option(YAIE_LUAROCKS "Install as a LuaRocks rock (set by the rockspec)" OFF)
set(YAIE_INSTALL_LUADIR "${CMAKE_INSTALL_DATADIR}/lua/5.1" CACHE STRING
  "Where the Lua library is installed (relative to the prefix, or absolute)")

if(YAIE_LUAROCKS)
  # Where the files go in the rock, then where LuaRocks puts them in a tree.
  set(yaie_dest_lua lua)
  set(yaie_dest_lib lib)
  set(yaie_dest_bin bin)
  set(yaie_tree_lua share/lua/5.1)
  set(yaie_tree_lib lib/lua/5.1)
  set(yaie_tree_bin bin)
else()
  set(yaie_dest_lua ${YAIE_INSTALL_LUADIR})
  set(yaie_dest_lib ${CMAKE_INSTALL_LIBDIR})
  set(yaie_dest_bin ${CMAKE_INSTALL_BINDIR})
  set(yaie_tree_lua ${yaie_dest_lua})
  set(yaie_tree_lib ${yaie_dest_lib})
  set(yaie_tree_bin ${yaie_dest_bin})
endif()

# The path from one installed directory to another. Directories relative to the prefix give a
# path that holds wherever the prefix goes; an absolute one is fixed, so the others are taken
# under the configured prefix.
function(yaie_relative out from to)
  if(IS_ABSOLUTE "${from}" OR IS_ABSOLUTE "${to}")
    foreach(v from to)
      if(NOT IS_ABSOLUTE "${${v}}")
        set(${v} "${CMAKE_INSTALL_PREFIX}/${${v}}")
      endif()
    endforeach()
    file(RELATIVE_PATH rel "${from}" "${to}")
  else()
    file(RELATIVE_PATH rel "/prefix/${from}" "/prefix/${to}")
  endif()
  if(rel STREQUAL "")
    set(rel ".")
  endif()
  set(${out} "${rel}" PARENT_SCOPE)
endfunction()

# The program: its Lua library relative to itself (engine/host/main.c), libyaie through RPATH.
yaie_relative(yaie_bin_to_lua ${yaie_tree_bin} ${yaie_tree_lua})
yaie_relative(yaie_bin_to_lib ${yaie_tree_bin} ${yaie_tree_lib})
target_compile_definitions(yaie_host PRIVATE YAIE_LUA_FROM_BIN="${yaie_bin_to_lua}")
set_target_properties(yaie_host PROPERTIES INSTALL_RPATH "$ORIGIN/${yaie_bin_to_lib}")
install(TARGETS yaie_host RUNTIME DESTINATION ${yaie_dest_bin})
if(TARGET yaie_cuda)
  install(TARGETS yaie_cuda LIBRARY DESTINATION ${yaie_dest_lib})
endif()

# The Lua library, and install.lua: libyaie's path relative to the installed yaie/ directory and
# the C declarations it was built with (lua/yaie/c.lua reads both), so that `require "yaie"`
# needs neither the source tree nor LD_LIBRARY_PATH.
set(yaie_headers yaie.h yaie_cache.h yaie_constrain.h)
yaie_relative(YAIE_LUA_TO_LIB ${yaie_tree_lua}/yaie ${yaie_tree_lib})
foreach(h ${yaie_headers})
  set(path ${CMAKE_SOURCE_DIR}/engine/include/${h})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${path})
  file(READ ${path} text)
  string(APPEND YAIE_LUA_HEADERS "    [\"${h}\"] = [==[\n${text}]==],\n")
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/install.lua.in ${CMAKE_BINARY_DIR}/install.lua @ONLY)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/lua/yaie DESTINATION ${yaie_dest_lua})
install(FILES ${CMAKE_BINARY_DIR}/install.lua DESTINATION ${yaie_dest_lua}/yaie)

if(YAIE_LUAROCKS)
  install(TARGETS yaie LIBRARY DESTINATION ${yaie_dest_lib})
  return()
endif()

# For C programs: the library, its headers, pkg-config and CMake package files.
install(TARGETS yaie EXPORT yaieTargets LIBRARY DESTINATION ${yaie_dest_lib}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
list(TRANSFORM yaie_headers PREPEND ${CMAKE_SOURCE_DIR}/engine/include/)
install(FILES ${yaie_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(yaie_pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
yaie_relative(YAIE_PC_TO_PREFIX ${yaie_pc_dir} .)
yaie_relative(YAIE_PC_TO_LIB ${yaie_pc_dir} ${yaie_tree_lib})
yaie_relative(YAIE_PC_TO_INCLUDE ${yaie_pc_dir} ${CMAKE_INSTALL_INCLUDEDIR})
yaie_relative(YAIE_PC_TO_LUA ${yaie_pc_dir} ${yaie_tree_lua})
configure_file(${CMAKE_CURRENT_LIST_DIR}/yaie.pc.in ${CMAKE_BINARY_DIR}/yaie.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/yaie.pc DESTINATION ${yaie_pc_dir})

set(yaie_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/yaie)
install(EXPORT yaieTargets NAMESPACE yaie:: DESTINATION ${yaie_cmake_dir})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/yaieConfig.cmake.in
  ${CMAKE_BINARY_DIR}/yaieConfig.cmake INSTALL_DESTINATION ${yaie_cmake_dir} PATH_VARS YAIE_INSTALL_LUADIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/yaieConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/yaieConfig.cmake ${CMAKE_BINARY_DIR}/yaieConfigVersion.cmake
  DESTINATION ${yaie_cmake_dir})

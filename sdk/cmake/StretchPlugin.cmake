# stretch_add_plugin(<target> KIND <kind> NAME <name> MANIFEST <plugin.yaml>
#                    SOURCES <src>... [LIBS <lib>...] [OUTPUT_DIR <dir>]
#                    [INSTALL_DIR <dir>])
#
# Builds one plugin: a shared object named <name>.so with only the entry
# symbol exported, placed beside a copy of its plugin.yaml in
# <output>/<kind>/<name>/. Used in-tree for the built-in plugins and, from the
# installed CMake package, by third-party plugin projects. OUTPUT_DIR
# defaults to ST_PLUGIN_BUILD_DIR in-tree, else <build>/plugins; with
# INSTALL_DIR, `cmake --install` puts the plugin in <dir>/<kind>/<name>/.
function(stretch_add_plugin target)
  cmake_parse_arguments(P "" "KIND;NAME;MANIFEST;OUTPUT_DIR;INSTALL_DIR" "SOURCES;LIBS" ${ARGN})
  if(NOT P_KIND OR NOT P_NAME OR NOT P_MANIFEST OR NOT P_SOURCES)
    message(FATAL_ERROR "stretch_add_plugin(${target}): KIND, NAME, MANIFEST and SOURCES are required")
  endif()
  if(NOT P_OUTPUT_DIR)
    if(DEFINED ST_PLUGIN_BUILD_DIR)
      set(P_OUTPUT_DIR ${ST_PLUGIN_BUILD_DIR})
    else()
      set(P_OUTPUT_DIR ${CMAKE_CURRENT_BINARY_DIR}/plugins)
    endif()
  endif()
  set(dir ${P_OUTPUT_DIR}/${P_KIND}/${P_NAME})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX "" OUTPUT_NAME ${P_NAME}
    LIBRARY_OUTPUT_DIRECTORY ${dir}
    C_VISIBILITY_PRESET hidden)
  if(TARGET stretch_sdk)
    target_link_libraries(${target} PRIVATE stretch_sdk)
  elseif(TARGET stretch::sdk)
    target_link_libraries(${target} PRIVATE stretch::sdk)
  endif()
  if(P_LIBS)
    target_link_libraries(${target} PRIVATE ${P_LIBS})
  endif()
  get_filename_component(manifest ${P_MANIFEST} ABSOLUTE)
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -E copy_if_different ${manifest} ${dir}/plugin.yaml
    VERBATIM)
  if(P_INSTALL_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION ${P_INSTALL_DIR}/${P_KIND}/${P_NAME})
    install(FILES ${manifest} DESTINATION ${P_INSTALL_DIR}/${P_KIND}/${P_NAME} RENAME plugin.yaml)
  endif()
endfunction()

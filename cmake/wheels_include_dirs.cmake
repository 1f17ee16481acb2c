# For the PyPI "ros-*" wheels only, included by our CMakeLists.txt and injected into an upstream
# package's configure by the Makefile (-DCMAKE_PROJECT_INCLUDE=...): the wheels' exported
# *__rosidl_generator_py targets list include dirs of the manylinux build container, which do not exist
# here and fail CMake's generate step. At the end of the configure (when every imported target exists)
# keep only include dirs that exist. On a ROS 2 install this removes nothing.
function(_blendclip_drop_missing_include_dirs)
  get_directory_property(_imported_targets DIRECTORY ${CMAKE_SOURCE_DIR} IMPORTED_TARGETS)
  foreach(_t IN LISTS _imported_targets)
    get_target_property(_incs ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    if(_incs)
      set(_kept "")
      foreach(_d IN LISTS _incs)
        if(EXISTS "${_d}" OR _d MATCHES "^\\$<")
          list(APPEND _kept "${_d}")
        endif()
      endforeach()
      set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _blendclip_drop_missing_include_dirs)

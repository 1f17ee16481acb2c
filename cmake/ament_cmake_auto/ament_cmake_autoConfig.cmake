# ament_cmake_auto has no wheel. autoware_perception_msgs (built by `make prefix` from ../shared/upstream)
# uses two of its macros; these do what they do for an interface package: find every build and
# buildtool dependency named in package.xml, then ament_package(). Found through ament_cmake_auto_DIR.
find_package(ament_cmake REQUIRED)

macro(ament_auto_find_build_dependencies)
  ament_package_xml()
  foreach(_dep IN LISTS ${PROJECT_NAME}_BUILD_DEPENDS ${PROJECT_NAME}_BUILDTOOL_DEPENDS)
    if(NOT _dep MATCHES "^ament_cmake")
      find_package(${_dep} REQUIRED)
    endif()
  endforeach()
endmacro()

macro(ament_auto_package)
  ament_package()
endmacro()

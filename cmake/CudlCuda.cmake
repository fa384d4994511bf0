# Decide whether the CUDA backend is built (CUDL_CUDA = AUTO | ON | OFF) and
# find what it needs: the CUDA toolkit (runtime, cuBLAS) and cuDNN 9.
#
# cuDNN is searched in CUDNN_ROOT (cache variable or environment), the CUDA
# toolkit, and the system paths. A PyTorch installation keeps it under
# site-packages/nvidia/cudnn with only versioned library names, so
# libcudnn.so.9 is accepted as well as libcudnn.so.
#
# Sets CUDL_HAVE_CUDA (ON/OFF), CUDL_HAVE_CUDA_TEXT, and the imported target
# cudl::cudnn when CUDA is on; defines cudl_cuda_code_names.

set(CUDL_HAVE_CUDA OFF)
set(CUDL_HAVE_CUDA_TEXT "off (CUDL_CUDA=OFF)")
string(TOUPPER "${CUDL_CUDA}" _cudl_cuda_mode)

function(_cudl_cuda_unavailable why)
  if(_cudl_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "CUDL_CUDA=ON but ${why}")
  endif()
  message(STATUS "cudl: building without CUDA: ${why}")
  set(CUDL_HAVE_CUDA_TEXT "off (${why})" PARENT_SCOPE)
endfunction()

# The code that a CUDA_ARCHITECTURES value makes nvcc emit, in nvcc's
# names separated by spaces ("80-real;90" gives "sm_80 sm_90 compute_90"),
# into `out`. The library checks each card against it at run time
# (src/core/cuda_arch.h reads these names), so a value whose code cannot be
# told (OFF: nvcc's own default) stops the configuration.
function(cudl_cuda_code_names architectures out)
  set(expanded "")
  foreach(arch IN LISTS architectures)
    if(arch STREQUAL "native")
      list(APPEND expanded ${CMAKE_CUDA_ARCHITECTURES_NATIVE})
    elseif(arch STREQUAL "all")
      list(APPEND expanded ${CMAKE_CUDA_ARCHITECTURES_ALL})
    elseif(arch STREQUAL "all-major")
      list(APPEND expanded ${CMAKE_CUDA_ARCHITECTURES_ALL_MAJOR})
    else()
      list(APPEND expanded ${arch})
    endif()
  endforeach()
  set(sass "")
  set(ptx "")
  foreach(arch IN LISTS expanded)
    if(NOT arch MATCHES "^([1-9][0-9]+a?)(-real|-virtual)?$")
      message(FATAL_ERROR "CMAKE_CUDA_ARCHITECTURES: '${arch}' (of "
        "'${architectures}') is not an architecture cudl can check cards "
        "against: give numbers such as 80-real;86-real;89-real;90, or native")
    endif()
    if(NOT CMAKE_MATCH_2 STREQUAL "-virtual")
      list(APPEND sass "sm_${CMAKE_MATCH_1}")
    endif()
    if(NOT CMAKE_MATCH_2 STREQUAL "-real")
      list(APPEND ptx "compute_${CMAKE_MATCH_1}")
    endif()
  endforeach()
  set(names ${sass} ${ptx})
  list(REMOVE_DUPLICATES names)
  list(JOIN names " " names)
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

if(NOT _cudl_cuda_mode STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    _cudl_cuda_unavailable("no CUDA compiler (nvcc) was found")
  else()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CUDNN_ROOT "$ENV{CUDNN_ROOT}" CACHE PATH "Where cuDNN 9 is installed")
    find_path(CUDNN_INCLUDE_DIR cudnn_version.h
              HINTS ${CUDNN_ROOT} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}
              PATH_SUFFIXES include)
    find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
                 HINTS ${CUDNN_ROOT} ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
                 PATH_SUFFIXES lib lib64)
    if(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
      _cudl_cuda_unavailable("cuDNN 9 was not found (set CUDNN_ROOT)")
    else()
      file(STRINGS "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _cudnn_major
           REGEX "^#define CUDNN_MAJOR [0-9]+")
      string(REGEX MATCH "[0-9]+" _cudnn_major "${_cudnn_major}")
      if(NOT _cudnn_major EQUAL 9)
        _cudl_cuda_unavailable("cuDNN ${_cudnn_major} found, cuDNN 9 needed")
      else()
        add_library(cudl::cudnn SHARED IMPORTED)
        set_target_properties(cudl::cudnn PROPERTIES
          IMPORTED_LOCATION "${CUDNN_LIBRARY}"
          INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
        set(CUDL_HAVE_CUDA ON)
        cudl_cuda_code_names("${CMAKE_CUDA_ARCHITECTURES}" _cudl_code)
        set(CUDL_HAVE_CUDA_TEXT "on (CUDA ${CUDAToolkit_VERSION}, GPU code ${_cudl_code}, cuDNN ${CUDNN_LIBRARY})")
      endif()
    endif()
  endif()
endif()

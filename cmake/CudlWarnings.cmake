# Warning flags for every cudl target: on, and clean, for C, C++ and CUDA.
set(CUDL_C_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wconversion -Wno-sign-conversion
    # Messages are cut to their buffers on purpose (a GCC-only warning).
    $<$<C_COMPILER_ID:GNU>:-Wno-format-truncation>
    # `omp simd` asks for vectors where the compiler would not try; clang
    # reports the loops it could not vectorise, which under the
    # sanitizers' instrumentation (the fuzz build) is every one of them.
    # The pragma is a request, its refusal no defect.
    $<$<C_COMPILER_ID:Clang>:-Wno-pass-failed>)
set(CUDL_CXX_WARNINGS -Wall -Wextra -Wpedantic -Wshadow)
set(CUDL_CUDA_WARNINGS -Xcompiler=-Wall,-Wextra)
if(CUDL_WERROR)
  list(APPEND CUDL_C_WARNINGS -Werror)
  list(APPEND CUDL_CXX_WARNINGS -Werror)
  list(APPEND CUDL_CUDA_WARNINGS -Werror=all-warnings -Xcompiler=-Werror)
endif()

function(cudl_target_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:${CUDL_C_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CXX>:${CUDL_CXX_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CUDA>:${CUDL_CUDA_WARNINGS}>)
endfunction()

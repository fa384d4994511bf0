/*
 * cudl/export.h - symbol visibility for the public API.
 *
 * The shared library is built with hidden visibility; only declarations
 * marked CUDL_API are exported. The same headers serve the static library.
 */
#ifndef CUDL_EXPORT_H
#define CUDL_EXPORT_H

#if defined(_WIN32)
#  if defined(CUDL_BUILDING_SHARED)
#    define CUDL_API __declspec(dllexport)
#  elif defined(CUDL_USING_SHARED)
#    define CUDL_API __declspec(dllimport)
#  else
#    define CUDL_API
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define CUDL_API __attribute__((visibility("default")))
#else
#  define CUDL_API
#endif

#ifdef __cplusplus
#  define CUDL_EXTERN_C_BEGIN extern "C" {
#  define CUDL_EXTERN_C_END }
#else
#  define CUDL_EXTERN_C_BEGIN
#  define CUDL_EXTERN_C_END
#endif

#endif /* CUDL_EXPORT_H */

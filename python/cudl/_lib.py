"""Finding libcudl and declaring the C functions the binding calls.

Every function is declared with its exact argument and result types from
include/cudl/*.h: ctypes' default (int) would truncate 64-bit pointers and
sizes silently.
"""

import ctypes
import ctypes.util
import os

# The library version this binding was written against (include/cudl's
# CUDL_VERSION_*). A library of the same major and minor version is taken:
# before 1.0 a new minor version may change the C API.
EXPECTED_VERSION = (0, 2)

c_status = ctypes.c_int
c_enum = ctypes.c_int
c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_int64 = ctypes.c_int64
c_uint64 = ctypes.c_uint64
c_size_t = ctypes.c_size_t
c_float = ctypes.c_float
P = ctypes.POINTER


class OptimizerConfig(ctypes.Structure):
    """struct cudl_optimizer_config (cudl/optim.h)."""

    _fields_ = [
        ("kind", c_enum),
        ("lr", c_float),
        ("momentum", c_float),
        ("dampening", c_float),
        ("nesterov", c_int),
        ("weight_decay", c_float),
        ("beta1", c_float),
        ("beta2", c_float),
        ("eps", c_float),
    ]


class MemoryStats(ctypes.Structure):
    """struct cudl_memory_stats (cudl/context.h)."""

    _fields_ = [("bytes_in_use", c_uint64), ("peak_bytes_in_use", c_uint64),
                ("bytes_reserved", c_uint64), ("peak_bytes_reserved", c_uint64)]


class MetadataPair(ctypes.Structure):
    """struct cudl_metadata_pair (cudl/safetensors.h)."""

    _fields_ = [("key", c_char_p), ("value", c_char_p)]


# name: (restype, [argtypes]); opaque handles are c_void_p.
_SIGNATURES = {
    "cudl_version": (c_char_p, []),
    "cudl_version_number": (c_int, []),
    "cudl_status_name": (c_char_p, [c_status]),
    "cudl_status_string": (c_char_p, [c_status]),
    "cudl_cuda_compiled": (c_int, []),
    "cudl_cuda_device_supported": (c_status, [c_int, c_char_p, c_size_t]),
    # context.h
    "cudl_context_create": (c_status, [c_enum, c_int, P(c_void_p)]),
    "cudl_context_destroy": (None, [c_void_p]),
    "cudl_context_device": (c_enum, [c_void_p]),
    "cudl_context_device_index": (c_int, [c_void_p]),
    "cudl_context_device_name": (c_char_p, [c_void_p]),
    "cudl_context_last_error": (c_char_p, [c_void_p]),
    "cudl_context_synchronize": (c_status, [c_void_p]),
    "cudl_context_set_seed": (c_status, [c_void_p, c_uint64]),
    "cudl_context_memory_stats": (c_status, [c_void_p, P(MemoryStats)]),
    # tensor.h
    "cudl_tensor_create": (c_status, [c_void_p, c_enum, c_int, P(c_int64), P(c_void_p)]),
    "cudl_tensor_destroy": (None, [c_void_p]),
    "cudl_tensor_dtype": (c_enum, [c_void_p]),
    "cudl_tensor_ndim": (c_int, [c_void_p]),
    "cudl_tensor_shape": (P(c_int64), [c_void_p]),
    "cudl_tensor_nbytes": (c_size_t, [c_void_p]),
    "cudl_tensor_numel": (c_int64, [c_void_p]),
    "cudl_tensor_device": (c_enum, [c_void_p]),
    "cudl_tensor_copy_from_host": (c_status, [c_void_p, c_void_p, c_size_t]),
    "cudl_tensor_copy_to_host": (c_status, [c_void_p, c_void_p, c_size_t]),
    # nn.h
    "cudl_model_destroy": (None, [c_void_p]),
    "cudl_model_compile": (c_status, [c_void_p, c_int64]),
    "cudl_model_precision": (c_enum, [c_void_p]),
    "cudl_model_set_precision": (c_status, [c_void_p, c_enum]),
    "cudl_precision_from_name": (c_status, [c_char_p, P(c_enum)]),
    "cudl_model_init": (c_status, [c_void_p, c_enum]),
    "cudl_model_param_count": (c_int, [c_void_p]),
    "cudl_model_param_name": (c_char_p, [c_void_p, c_int, P(c_int)]),
    "cudl_model_param": (c_void_p, [c_void_p, c_char_p]),
    "cudl_model_params": (c_void_p, [c_void_p]),
    "cudl_model_grads": (c_void_p, [c_void_p]),
    "cudl_model_set_training": (c_status, [c_void_p, c_int]),
    "cudl_model_forward": (c_status, [c_void_p, c_void_p, c_void_p, P(c_float)]),
    "cudl_model_backward": (c_status, [c_void_p]),
    "cudl_model_output": (c_void_p, [c_void_p]),
    "cudl_model_save": (c_status, [c_void_p, c_char_p, P(MetadataPair), c_size_t]),
    "cudl_model_load": (c_status, [c_void_p, c_char_p, c_int]),
    # model_file.h
    "cudl_model_parse": (c_status, [c_void_p, c_char_p, c_size_t, c_char_p, P(c_void_p)]),
    "cudl_model_read_file": (c_status, [c_void_p, c_char_p, P(c_void_p)]),
    "cudl_model_describe": (c_status, [c_void_p, c_char_p, c_size_t, P(c_size_t)]),
    "cudl_model_load_file": (c_status, [c_void_p, c_char_p, c_int64, P(c_void_p)]),
    # zoo.h
    "cudl_zoo_mlp": (c_status, [c_void_p, c_int, P(c_int64), c_int, P(c_int64),
                                c_enum, c_float, c_int64, P(c_void_p)]),
    "cudl_zoo_small_cnn": (c_status, [c_void_p, c_int64, c_int64, c_int64, c_int64,
                                      c_float, P(c_void_p)]),
    "cudl_zoo_resnet": (c_status, [c_void_p, c_int, c_int, c_int64, c_int64, c_int64,
                                   c_int64, P(c_void_p)]),
    # data.h
    "cudl_dataset_load": (c_status, [c_void_p, c_char_p, c_char_p, c_int, P(c_void_p)]),
    "cudl_dataset_load_idx": (c_status, [c_void_p, c_char_p, c_char_p, c_int, P(c_void_p)]),
    "cudl_dataset_destroy": (None, [c_void_p]),
    "cudl_dataset_count": (c_int64, [c_void_p]),
    "cudl_dataset_channels": (c_int, [c_void_p]),
    "cudl_dataset_height": (c_int, [c_void_p]),
    "cudl_dataset_width": (c_int, [c_void_p]),
    "cudl_dataset_classes": (c_int, [c_void_p]),
    "cudl_dataset_image_read": (c_status, [c_void_p, c_int64, c_void_p]),
    "cudl_dataset_label": (c_int, [c_void_p, c_int64]),
    "cudl_dataset_class_name": (c_char_p, [c_void_p, c_int]),
    "cudl_dataset_channel_stats": (c_status, [c_void_p, P(c_float), P(c_float)]),
    # optim.h
    "cudl_optimizer_config_default": (c_status, [c_enum, P(OptimizerConfig)]),
    "cudl_optimizer_create": (c_status, [c_void_p, P(OptimizerConfig), c_int64,
                                         P(c_void_p)]),
    "cudl_optimizer_destroy": (None, [c_void_p]),
    "cudl_optimizer_step": (c_status, [c_void_p, c_void_p, c_void_p, c_float]),
    "cudl_optimizer_steps": (c_int64, [c_void_p]),
}


def _candidates():
    """(description, loader argument) pairs in the order they are tried."""
    env = os.environ.get("CUDL_LIBRARY")
    if env:
        # An explicit choice is the only one tried: falling back silently
        # would hide a wrong path.
        return [("CUDL_LIBRARY=" + env, env)]
    found = []
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = os.path.join(here, "lib")
    if os.path.isdir(bundled):
        for name in sorted(os.listdir(bundled)):
            if name.startswith("libcudl.so"):
                found.append(("bundled " + os.path.join(bundled, name),
                              os.path.join(bundled, name)))
    major, minor = EXPECTED_VERSION
    for name in ("libcudl.so.%d.%d" % (major, minor), "libcudl.so"):
        found.append(("system loader: " + name, name))
    located = ctypes.util.find_library("cudl")
    if located:
        found.append(("ctypes.util.find_library: " + located, located))
    return found


def _load():
    tried = []
    for description, target in _candidates():
        try:
            return ctypes.CDLL(target), description
        except OSError as exc:
            tried.append("%s (%s)" % (description, exc))
    raise ImportError(
        "cudl: libcudl.so not found; tried:\n  " + "\n  ".join(tried) +
        "\nSet CUDL_LIBRARY to the library's path (build/src/libcudl.so in a "
        "build tree), or install cudl (cmake --install) where the system "
        "loader looks.")


def _declare(lib, where):
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError("cudl: %s (%s) has no function %s: the library "
                              "is older than this binding" % (where, lib._name, name))
        fn.restype = restype
        fn.argtypes = argtypes


def _check_version(lib, where):
    number = lib.cudl_version_number()
    major, minor = number // 10000, number // 100 % 100
    if (major, minor) != EXPECTED_VERSION:
        raise ImportError(
            "cudl: %s is version %s but this binding is for %d.%d.x: use the "
            "binding from the same cudl source tree as the library"
            % (where, lib.cudl_version().decode(), EXPECTED_VERSION[0],
               EXPECTED_VERSION[1]))


lib, library_source = _load()
_declare(lib, library_source)
_check_version(lib, library_source)
library_path = lib._name

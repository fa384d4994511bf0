"""Tensor: a dense array on a context's device (cudl/tensor.h), filled from
and copied back to NumPy."""

import ctypes

import numpy as np

from . import _lib
from ._handle import Handle
from .errors import check

MAX_DIMS = 5  # CUDL_MAX_DIMS

# cudl_dtype -> (name, NumPy dtype). bf16 has no NumPy dtype: such tensors
# exist inside models (mixed precision) but are not exchanged with NumPy.
_DTYPES = {0: ("f32", np.dtype(np.float32)), 1: ("f16", np.dtype(np.float16)),
           3: ("i32", np.dtype(np.int32))}
_BY_NAME = {name: code for code, (name, _) in _DTYPES.items()}
_BY_NUMPY = {np_dtype: code for code, (_, np_dtype) in _DTYPES.items()}


def dtype_code(dtype):
    """The cudl_dtype for "f32", "f16", "i32" or the NumPy dtype of one."""
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype]
    if dtype == "bf16":
        raise TypeError("bf16 tensors cannot be exchanged with NumPy, which has "
                        "no bfloat16 type: use f32 (models convert themselves)")
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        np_dtype = None
    if np_dtype in _BY_NUMPY:
        return _BY_NUMPY[np_dtype]
    raise TypeError("cudl tensors hold f32 (float32), f16 (float16) or i32 "
                    "(int32), not %r" % (dtype,))


def shape_array(shape):
    """A ctypes int64 array of the dimensions (checked to be ints)."""
    dims = tuple(shape)
    for d in dims:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise TypeError("dimensions must be ints, not %r" % (d,))
    return (ctypes.c_int64 * max(len(dims), 1))(*[int(d) for d in dims]), len(dims)


def _pointer(array):
    return array.ctypes.data_as(ctypes.c_void_p)


def host_copy_from(handle, ctx_handle, array, what):
    """Copy a C-contiguous NumPy array (already of the tensor's dtype and
    size) into a tensor handle."""
    check(_lib.lib.cudl_tensor_copy_from_host(handle, _pointer(array), array.nbytes),
          ctx_handle, what)


def host_copy_to(handle, ctx_handle, what):
    """A new NumPy array holding a tensor handle's values (the handle may be
    one the library owns, such as a model's output or parameter)."""
    code = _lib.lib.cudl_tensor_dtype(handle)
    if code not in _DTYPES:
        raise TypeError("%s: a bf16 tensor cannot be copied to NumPy" % what)
    ndim = _lib.lib.cudl_tensor_ndim(handle)
    shape_ptr = _lib.lib.cudl_tensor_shape(handle)
    shape = tuple(shape_ptr[i] for i in range(ndim))
    out = np.empty(shape, dtype=_DTYPES[code][1])
    check(_lib.lib.cudl_tensor_copy_to_host(handle, _pointer(out), out.nbytes),
          ctx_handle, what)
    return out


def as_contiguous(array, dtype=None):
    """array as a C-contiguous NumPy array of a cudl dtype. Without dtype
    the array's own must be float32, float16 or int32 (nothing is converted
    silently); with it, values are cast as NumPy's astype does."""
    if not isinstance(array, np.ndarray):
        array = np.asarray(array, dtype=None if dtype is None else
                           _DTYPES[dtype_code(dtype)][1])
    if dtype is None:
        code = dtype_code(array.dtype)
    else:
        code = dtype_code(dtype)
        array = array.astype(_DTYPES[code][1], copy=False)
    # ascontiguousarray would turn a 0-d array into a 1-d one.
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    return array, code


class Tensor(Handle):
    """A cudl tensor owned by Python.

    Tensor(ctx, shape, dtype="f32") is zero-filled; Tensor.from_numpy(ctx,
    array) copies an array in (a non-contiguous array, such as a transposed
    view, is copied to C order first); to_numpy() copies the values back.
    """

    _destroy_name = "cudl_tensor_destroy"

    def __init__(self, context, shape, dtype="f32"):
        from .context import Context
        if not isinstance(context, Context):
            raise TypeError("context must be a cudl.Context, not %s"
                            % type(context).__name__)
        code = dtype_code(dtype)
        dims, ndim = shape_array(shape)
        out = ctypes.c_void_p()
        ctx_handle = context._live()
        check(_lib.lib.cudl_tensor_create(ctx_handle, code, ndim, dims,
                                          ctypes.byref(out)),
              ctx_handle, "cudl_tensor_create(shape=%s)" % (tuple(shape),))
        super().__init__(out.value, context)

    @classmethod
    def from_numpy(cls, context, array, dtype=None):
        """A new tensor on context's device with array's shape and values."""
        array, code = as_contiguous(array, dtype)
        tensor = cls(context, array.shape, _DTYPES[code][0])
        try:
            tensor.copy_from(array)
        except BaseException:
            tensor.close()
            raise
        return tensor

    def copy_from(self, array):
        """Overwrite the values from an array of the same shape and dtype."""
        handle = self._live()
        array, code = as_contiguous(array)
        if code != _lib.lib.cudl_tensor_dtype(handle):
            raise TypeError("array of dtype %s for a %s tensor"
                            % (array.dtype, self.dtype))
        if array.shape != self.shape:
            raise ValueError("array of shape %s for a tensor of shape %s"
                             % (array.shape, self.shape))
        host_copy_from(handle, self._context._handle, array, "cudl_tensor_copy_from_host")

    def to_numpy(self):
        """A new NumPy array with the tensor's values (waits for the device)."""
        return host_copy_to(self._live(), self._context._handle, "cudl_tensor_copy_to_host")

    @property
    def context(self):
        return self._context

    @property
    def shape(self):
        handle = self._live()
        ptr = _lib.lib.cudl_tensor_shape(handle)
        return tuple(ptr[i] for i in range(_lib.lib.cudl_tensor_ndim(handle)))

    @property
    def dtype(self):
        """"f32", "f16" or "i32"."""
        return _DTYPES[_lib.lib.cudl_tensor_dtype(self._live())][0]

    @property
    def device(self):
        return "cuda" if _lib.lib.cudl_tensor_device(self._live()) == 1 else "cpu"

    @property
    def nbytes(self):
        return _lib.lib.cudl_tensor_nbytes(self._live())

    def __repr__(self):
        if self.closed:
            return "<cudl.Tensor closed>"
        return "<cudl.Tensor %s %s on %s>" % (self.dtype, self.shape, self.device)

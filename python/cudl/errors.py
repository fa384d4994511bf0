"""Exceptions: one class per cudl_status, carrying the library's message."""

from . import _lib


class CudlError(Exception):
    """A cudl call failed. `status` is the cudl_status number, `status_name`
    its enum name ("CUDL_ERR_SHAPE") and the message the context's
    cudl_context_last_error text (what failed and why)."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.status_name = _lib.lib.cudl_status_name(self.status or 0).decode()


class InvalidArgumentError(CudlError, ValueError):
    status = 1


class ShapeError(CudlError, ValueError):
    status = 2


class DtypeError(CudlError, TypeError):
    status = 3


class DeviceMismatchError(CudlError):
    status = 4


class UnsupportedError(CudlError):
    status = 5


class OutOfMemoryError(CudlError, MemoryError):
    status = 6


class NoDeviceError(CudlError):
    status = 7


class CudaError(CudlError):
    status = 8


class CudlIOError(CudlError, OSError):
    status = 9


class NumericsError(CudlError, ArithmeticError):
    status = 10


class FileFormatError(CudlError):
    """Any of the file errors (statuses 20 to 32): a safetensors, dataset or
    model file that cudl refuses; status_name says which check failed."""


class InternalError(CudlError):
    status = 99


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, ShapeError, DtypeError, DeviceMismatchError,
    UnsupportedError, OutOfMemoryError, NoDeviceError, CudaError, CudlIOError,
    NumericsError, InternalError)}


def error_for(status, message):
    """The exception for a failed call's status and message."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = FileFormatError if 20 <= status <= 32 else CudlError
    return cls(message, status)


def check(status, ctx_handle, what):
    """Raise the status's exception, with the context's last error, unless
    status is CUDL_OK. ctx_handle is the context the call recorded in."""
    if status == 0:
        return
    detail = _lib.lib.cudl_context_last_error(ctx_handle).decode("utf-8", "replace")
    if not detail or ctx_handle is None:
        # Without a context the library has nowhere to put the detail.
        detail = "%s: %s" % (what, _lib.lib.cudl_status_string(status).decode())
    name = _lib.lib.cudl_status_name(status).decode()
    raise error_for(status, "%s [%s]" % (detail, name))

"""cudl: Python binding (ctypes) for the cudl deep-learning library.

    import numpy as np, cudl
    with cudl.Context("cpu", seed=1) as ctx:
        model = cudl.Model.zoo(ctx, "mlp", input_shape=(2,), hidden=(8,), classes=2)
        model.compile(4).init()
        opt = cudl.Optimizer(model, "sgd", lr=0.5, momentum=0.9)
        loss = model.train_step(x, labels, opt)
        classes = model.predict_classes(x)

docs/python.md describes the API, ownership and threading rules. The
library is found through CUDL_LIBRARY, a copy bundled in cudl/lib/, or the
system loader (cudl._lib).
"""

from . import _lib
from .context import Context
from .data import Dataset
from .errors import (CudaError, CudlError, CudlIOError, DeviceMismatchError,
                     DtypeError, FileFormatError, InternalError,
                     InvalidArgumentError, NoDeviceError, NumericsError,
                     OutOfMemoryError, ShapeError, UnsupportedError)
from .model import Model
from .optim import Optimizer
from .tensor import Tensor

__version__ = "0.2.0"

library_path = _lib.library_path


def library_version():
    """The loaded libcudl's version string (cudl_version())."""
    return _lib.lib.cudl_version().decode()


def cuda_compiled():
    """Whether the loaded libcudl contains the CUDA backend."""
    return bool(_lib.lib.cudl_cuda_compiled())


__all__ = ["Context", "Dataset", "Tensor", "Model", "Optimizer", "CudlError",
           "InvalidArgumentError", "ShapeError", "DtypeError",
           "DeviceMismatchError", "UnsupportedError", "OutOfMemoryError",
           "NoDeviceError", "CudaError", "CudlIOError", "NumericsError",
           "FileFormatError", "InternalError", "library_version",
           "cuda_compiled", "library_path", "__version__"]

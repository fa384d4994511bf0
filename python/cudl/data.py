"""Dataset: the library's readers (cudl/data.h), copied out as NumPy."""

import ctypes
import os

import numpy as np

from . import _lib
from ._handle import Handle
from .context import Context
from .errors import check


def _encode_path(path):
    return os.fsencode(path)


class Dataset(Handle):
    """Images and labels read by cudl: Dataset.load(ctx, "fashion-mnist",
    directory=None, train=True) ("mnist", "fashion-mnist", "cifar10"; None:
    the Debian location of Fashion-MNIST) or Dataset.load_idx(ctx, images,
    labels, classes=0). images() and labels() copy them out."""

    _destroy_name = "cudl_dataset_destroy"

    @classmethod
    def _build(cls, context, what, call):
        if not isinstance(context, Context):
            raise TypeError("context must be a cudl.Context, not %s" % type(context).__name__)
        ctx_handle = context._live()
        out = ctypes.c_void_p()
        check(call(ctx_handle, ctypes.byref(out)), ctx_handle, what)
        return cls(out.value, context)

    @classmethod
    def load(cls, context, name, directory=None, train=True):
        raw_name = str(name).encode("utf-8")
        raw_dir = None if directory is None else _encode_path(directory)
        return cls._build(context, "cudl_dataset_load",
                          lambda c, out: _lib.lib.cudl_dataset_load(
                              c, raw_name, raw_dir, 1 if train else 0, out))

    @classmethod
    def load_idx(cls, context, images_path, labels_path, classes=0):
        images, labels = _encode_path(images_path), _encode_path(labels_path)
        return cls._build(context, "cudl_dataset_load_idx",
                          lambda c, out: _lib.lib.cudl_dataset_load_idx(
                              c, images, labels, int(classes), out))

    def __len__(self):
        return _lib.lib.cudl_dataset_count(self._live())

    @property
    def image_shape(self):
        """(channels, height, width)."""
        h = self._live()
        return (_lib.lib.cudl_dataset_channels(h), _lib.lib.cudl_dataset_height(h),
                _lib.lib.cudl_dataset_width(h))

    @property
    def classes(self):
        return _lib.lib.cudl_dataset_classes(self._live())

    @property
    def class_names(self):
        """The classes' names, or None when the reader gives none."""
        h = self._live()
        names = [_lib.lib.cudl_dataset_class_name(h, i) for i in range(self.classes)]
        return None if None in names else [n.decode("utf-8") for n in names]

    def images(self):
        """Every image, uint8 [count, channels, height, width]."""
        h = self._live()
        out = np.empty((len(self),) + self.image_shape, dtype=np.uint8)
        for i in range(out.shape[0]):
            check(_lib.lib.cudl_dataset_image_read(h, i, out[i].ctypes.data_as(ctypes.c_void_p)),
                  self._context._handle, "cudl_dataset_image_read")
        return out

    def labels(self):
        """Every label, int32 [count]."""
        h = self._live()
        return np.array([_lib.lib.cudl_dataset_label(h, i) for i in range(len(self))],
                        dtype=np.int32)

    def channel_stats(self):
        """(mean, std) per channel of the pixels scaled to [0, 1], float32
        arrays, as `cudl train` normalises with."""
        channels = self.image_shape[0]
        mean, std = (ctypes.c_float * channels)(), (ctypes.c_float * channels)()
        check(_lib.lib.cudl_dataset_channel_stats(self._live(), mean, std),
              self._context._handle, "cudl_dataset_channel_stats")
        return np.array(mean, dtype=np.float32), np.array(std, dtype=np.float32)

    def normalized_images(self, mean=None, std=None):
        """images() as float32 ((pixel / 255 - mean) / std) per channel, each
        operation rounded in float32 as the library's loader does; mean and
        std default to channel_stats()."""
        if mean is None or std is None:
            mean, std = self.channel_stats()
        shape = (1, -1, 1, 1)
        x = self.images().astype(np.float32) / np.float32(255)
        x -= np.asarray(mean, dtype=np.float32).reshape(shape)
        x /= np.asarray(std, dtype=np.float32).reshape(shape)
        return x

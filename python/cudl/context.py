"""Context: the device everything runs on (cudl/context.h)."""

import ctypes

from . import _lib
from ._handle import Handle, new_children
from .errors import check

_KINDS = {"cpu": 0, "cuda": 1, "auto": 2}
_NAMES = {0: "cpu", 1: "cuda"}


class Context(Handle):
    """A cudl context on device "cpu", "cuda" or "auto" (the first GPU that
    opens, else the CPU). Closing it first closes the tensors, models and
    optimizers made from it that are still open, as the C API requires."""

    _destroy_name = "cudl_context_destroy"
    _children = ()
    _open_children = 0
    _closing = False

    def __init__(self, device="cpu", index=0, seed=None):
        if device not in _KINDS:
            raise ValueError("device must be one of %s, not %r"
                             % (", ".join(sorted(_KINDS)), device))
        if not isinstance(index, int) or index < 0:
            raise ValueError("index must be a non-negative int, not %r" % (index,))
        self._children = new_children()
        out = ctypes.c_void_p()
        status = _lib.lib.cudl_context_create(_KINDS[device], index, ctypes.byref(out))
        if status != 0:
            # No context exists to hold the reason; for a GPU the library
            # gives the same text through cudl_cuda_device_supported.
            what = "cudl_context_create(%s, %d)" % (device, index)
            if device == "cuda":
                reason = ctypes.create_string_buffer(512)
                _lib.lib.cudl_cuda_device_supported(index, reason, len(reason))
                if reason.value:
                    what += ": " + reason.value.decode("utf-8", "replace")
            check(status, None, what)
        super().__init__(out.value, None)
        if seed is not None:
            self.set_seed(seed)

    def _live(self):
        if self._handle is None or self._closing:
            raise ValueError("Context is closed")
        return self._handle

    @property
    def closed(self):
        return self._handle is None or self._closing

    def close(self):
        """Close the objects made from this context that are still open,
        then the context."""
        self._closing = True
        for child in list(self._children):
            child.close()
        self._release_if_done()

    def _release_if_done(self):
        # The C context must outlive every object made from it. When the
        # garbage collector finalises a cycle holding both, the weak set no
        # longer lists the children and the context may be finalised
        # first: it is then destroyed by the last child's close instead.
        if self._closing and self._open_children == 0 and self._handle is not None:
            handle, self._handle = self._handle, None
            _lib.lib.cudl_context_destroy(handle)

    @property
    def device(self):
        """"cpu" or "cuda"."""
        return _NAMES[_lib.lib.cudl_context_device(self._live())]

    @property
    def device_index(self):
        return _lib.lib.cudl_context_device_index(self._live())

    @property
    def device_name(self):
        """"cpu" or "cuda:0 (NVIDIA H100 ...)"."""
        return _lib.lib.cudl_context_device_name(self._live()).decode()

    @property
    def last_error(self):
        """The text of the last failure on this context ("" if none)."""
        return _lib.lib.cudl_context_last_error(self._live()).decode("utf-8", "replace")

    def set_seed(self, seed):
        """Seed the context's random generator (initialisation, dropout)."""
        if not isinstance(seed, int) or not 0 <= seed < 2 ** 64:
            raise ValueError("seed must be an int in [0, 2**64), not %r" % (seed,))
        check(_lib.lib.cudl_context_set_seed(self._live(), seed), self._handle,
              "cudl_context_set_seed")

    def memory_stats(self):
        """The device memory the context holds for tensors and workspaces,
        a dict of bytes: bytes_in_use, peak_bytes_in_use, bytes_reserved,
        peak_bytes_reserved (cudl_context_memory_stats)."""
        stats = _lib.MemoryStats()
        check(_lib.lib.cudl_context_memory_stats(self._live(), ctypes.byref(stats)),
              self._handle, "cudl_context_memory_stats")
        return {name: getattr(stats, name) for name, _ in stats._fields_}

    def synchronize(self):
        check(_lib.lib.cudl_context_synchronize(self._live()), self._handle,
              "cudl_context_synchronize")

    def __repr__(self):
        if self.closed:
            return "<cudl.Context closed>"
        return "<cudl.Context %s>" % self.device_name

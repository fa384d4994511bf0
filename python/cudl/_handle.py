"""Owned library objects: deterministic release, safe at interpreter exit."""

import sys
import weakref

from . import _lib


class Handle:
    """An object of the library that this Python object owns.

    close() (or leaving a `with` block) releases it at once; __del__ does so
    when the object is collected, unless the interpreter is shutting down
    (the library may already be unloaded then, and the process's exit frees
    everything anyway). Once closed, every method raises ValueError before
    reaching the library, so no NULL or freed pointer is ever passed.
    """

    _destroy_name = None  # the cudl_*_destroy function's name
    # Defaults for an object whose __init__ failed before owning anything:
    # its __del__ then has nothing to release.
    _handle = None
    _context = None

    def __init__(self, handle, context):
        self._handle = handle
        self._context = context  # keeps the context open while we live
        if context is not None:
            context._children.add(self)
            context._open_children += 1

    @property
    def closed(self):
        return self._handle is None

    def _live(self):
        """The handle, or ValueError when closed."""
        if self._handle is None:
            raise ValueError("%s is closed" % type(self).__name__)
        if self._context is not None:
            self._context._live()
        return self._handle

    def close(self):
        handle, self._handle = self._handle, None
        if handle is None:
            return
        getattr(_lib.lib, self._destroy_name)(handle)
        context = self._context
        if context is not None:
            context._children.discard(self)
            context._open_children -= 1
            context._release_if_done()

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if sys is None or sys.is_finalizing():
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a destructor must not raise
            pass


def new_children():
    return weakref.WeakSet()

"""Optimizer: SGD, Adam and AdamW over a model's parameters (cudl/optim.h)."""

import ctypes
import math

from . import _lib
from ._handle import Handle
from .errors import check

_KINDS = {"sgd": 0, "adam": 1, "adamw": 2}
_FIELDS = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "beta1",
           "beta2", "eps")


class Optimizer(Handle):
    """An optimizer for every trainable parameter of a compiled model.

    Optimizer(model, "sgd", lr=0.1, momentum=0.9) starts from PyTorch's
    defaults for the kind (cudl_optimizer_config_default) and overrides the
    fields given. step() updates the model from the gradients of its last
    backward(); the library checks every field (InvalidArgumentError naming
    it)."""

    _destroy_name = "cudl_optimizer_destroy"

    def __init__(self, model, kind="sgd", **config):
        from .model import Model
        if not isinstance(model, Model):
            raise TypeError("model must be a cudl.Model, not %s" % type(model).__name__)
        if kind not in _KINDS:
            raise ValueError("kind must be one of %s, not %r" % (", ".join(_KINDS), kind))
        unknown = set(config) - set(_FIELDS)
        if unknown:
            raise TypeError("unknown optimizer settings: %s (known: %s)"
                            % (", ".join(sorted(unknown)), ", ".join(_FIELDS)))
        model_handle = model._live()
        model._require_compiled()
        context = model._context
        ctx_handle = context._handle
        cfg = _lib.OptimizerConfig()
        # No context: only the status can say what failed.
        check(_lib.lib.cudl_optimizer_config_default(_KINDS[kind], ctypes.byref(cfg)),
              None, "cudl_optimizer_config_default")
        for name, value in config.items():
            setattr(cfg, name, int(bool(value)) if name == "nesterov" else float(value))
        params = _lib.lib.cudl_model_params(model_handle)
        numel = _lib.lib.cudl_tensor_numel(params)
        out = ctypes.c_void_p()
        check(_lib.lib.cudl_optimizer_create(ctx_handle, ctypes.byref(cfg), numel,
                                             ctypes.byref(out)),
              ctx_handle, "cudl_optimizer_create")
        super().__init__(out.value, context)
        self._model = model
        self.lr = cfg.lr

    def step(self, lr=None):
        """One update with learning rate lr (default: the configured one)."""
        handle = self._live()
        model_handle = self._model._live()
        rate = self.lr if lr is None else float(lr)
        if not math.isfinite(rate) or rate < 0:
            raise ValueError("lr must be finite and >= 0, not %r" % (lr,))
        check(_lib.lib.cudl_optimizer_step(handle, _lib.lib.cudl_model_params(model_handle),
                                           _lib.lib.cudl_model_grads(model_handle), rate),
              self._context._handle, "cudl_optimizer_step")

    @property
    def steps(self):
        """Steps taken so far."""
        return _lib.lib.cudl_optimizer_steps(self._live())

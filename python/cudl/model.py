"""Model: a network built from the zoo, a model file or a weights file
(cudl/nn.h, cudl/zoo.h, cudl/model_file.h), trained and run on NumPy
arrays."""

import ctypes
import os

import numpy as np

from . import _lib
from ._handle import Handle
from .context import Context
from .errors import InvalidArgumentError, check
from .tensor import Tensor, as_contiguous, host_copy_from, host_copy_to, shape_array

_ACTIVATIONS = {"sigmoid": 0, "tanh": 1, "relu": 2, "leaky_relu": 3, "elu": 4,
                "gelu": 5, "silu": 6}
_INITS = {"kaiming_normal": 0, "kaiming_uniform": 1, "xavier_normal": 2,
          "xavier_uniform": 3, "pytorch_default": 4, "zeros": 5}


def _path(path):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError("path must be a str or os.PathLike, not %s" % type(path).__name__)
    return os.fsencode(path)


def _require_context(context):
    if not isinstance(context, Context):
        raise TypeError("context must be a cudl.Context, not %s" % type(context).__name__)
    return context._live()


def _positive_int(value, what):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError("%s must be an int >= 1, not %r" % (what, value))
    return int(value)


class Model(Handle):
    """A cudl model. Build one with Model.zoo, Model.from_file,
    Model.parse or Model.load_file; compile() it for a largest batch, then
    init() or load() its weights (load_file does all three).

    A model starts in training mode; eval() and train() switch.
    predict() always runs in evaluation mode and restores the mode after.
    """

    _destroy_name = "cudl_model_destroy"

    def __init__(self, handle, context):
        # Models are made by the class methods below.
        super().__init__(handle, context)
        self._max_batch = None
        self._training = True
        self._batch = []

    @classmethod
    def _build(cls, context, what, call):
        ctx_handle = _require_context(context)
        out = ctypes.c_void_p()
        check(call(ctx_handle, ctypes.byref(out)), ctx_handle, what)
        return cls(out.value, context)

    # ---- building ----

    @classmethod
    def zoo(cls, context, name, **kw):
        """A network of the zoo (cudl/zoo.h), uncompiled:
        zoo(ctx, "mlp", input_shape=(784,), hidden=(128,), classes=10,
            activation="relu", alpha=0.0);
        zoo(ctx, "small_cnn", input_shape=(1, 28, 28), classes=10, dropout=0.0);
        zoo(ctx, "resnet", depth=20, input_shape=(3, 32, 32), classes=10,
            plain=False)."""
        if name == "mlp":
            return cls._zoo_mlp(context, **kw)
        if name == "small_cnn":
            return cls._zoo_small_cnn(context, **kw)
        if name == "resnet":
            return cls._zoo_resnet(context, **kw)
        raise ValueError("unknown zoo model %r (mlp, small_cnn, resnet)" % (name,))

    @classmethod
    def _zoo_mlp(cls, context, input_shape, classes, hidden=(), activation="relu",
                 alpha=0.0):
        if activation not in _ACTIVATIONS:
            raise ValueError("activation must be one of %s, not %r"
                             % (", ".join(_ACTIVATIONS), activation))
        dims, ndim = shape_array(input_shape)
        widths, count = shape_array(hidden)
        return cls._build(context, "cudl_zoo_mlp", lambda c, out: _lib.lib.cudl_zoo_mlp(
            c, ndim, dims, count, widths, _ACTIVATIONS[activation], float(alpha),
            int(classes), out))

    @classmethod
    def _zoo_small_cnn(cls, context, input_shape, classes, dropout=0.0):
        channels, height, width = (int(d) for d in input_shape)
        return cls._build(context, "cudl_zoo_small_cnn",
                          lambda c, out: _lib.lib.cudl_zoo_small_cnn(
                              c, channels, height, width, int(classes),
                              float(dropout), out))

    @classmethod
    def _zoo_resnet(cls, context, depth, input_shape, classes, plain=False):
        channels, height, width = (int(d) for d in input_shape)
        return cls._build(context, "cudl_zoo_resnet",
                          lambda c, out: _lib.lib.cudl_zoo_resnet(
                              c, int(depth), 1 if plain else 0, channels, height,
                              width, int(classes), out))

    @classmethod
    def from_file(cls, context, path):
        """The uncompiled model a JSON model file describes."""
        raw = _path(path)
        return cls._build(context, "cudl_model_read_file",
                          lambda c, out: _lib.lib.cudl_model_read_file(c, raw, out))

    @classmethod
    def parse(cls, context, text, source_name="model file"):
        """The uncompiled model of model-file text (str or bytes)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        name = source_name.encode("utf-8")
        return cls._build(context, "cudl_model_parse",
                          lambda c, out: _lib.lib.cudl_model_parse(
                              c, data, len(data), name, out))

    @classmethod
    def load_file(cls, context, path, max_batch):
        """The compiled model a weights file written by Model.save or
        `cudl train` holds (architecture and weights, from the file alone),
        in training mode as the C API leaves it."""
        raw = _path(path)
        batch = _positive_int(max_batch, "max_batch")
        model = cls._build(context, "cudl_model_load_file",
                           lambda c, out: _lib.lib.cudl_model_load_file(c, raw, batch, out))
        model._max_batch = batch
        return model

    # ---- compiling and weights ----

    def _check(self, status, what):
        check(status, self._context._handle, what)

    def set_precision(self, name):
        """"fp32", "tf32", "bf16" or "fp16"; before compile()."""
        code = ctypes.c_int()
        if _lib.lib.cudl_precision_from_name(str(name).encode("utf-8"), ctypes.byref(code)):
            # A call without a context: the library has no message to give.
            raise InvalidArgumentError("unknown precision %r (fp32, tf32, bf16, fp16)" % (name,),
                                       1)
        self._check(_lib.lib.cudl_model_set_precision(self._live(), code.value),
                    "cudl_model_set_precision")

    def compile(self, max_batch):
        """Allocate the model for batches of up to max_batch rows."""
        batch = _positive_int(max_batch, "max_batch")
        self._check(_lib.lib.cudl_model_compile(self._live(), batch), "cudl_model_compile")
        self._max_batch = batch
        return self

    @property
    def max_batch(self):
        """The largest batch compiled for (None before compile)."""
        return self._max_batch

    def init(self, scheme="kaiming_normal"):
        """Initialise the weights (cudl_init_scheme's names in lower case)
        from the context's random generator (Context.set_seed)."""
        if scheme not in _INITS:
            raise ValueError("scheme must be one of %s, not %r" % (", ".join(_INITS), scheme))
        self._check(_lib.lib.cudl_model_init(self._live(), _INITS[scheme]), "cudl_model_init")
        return self

    def load(self, path, strict=True):
        """Load weights from a safetensors file into the compiled model."""
        raw = _path(path)
        self._check(_lib.lib.cudl_model_load(self._live(), raw, 1 if strict else 0),
                    "cudl_model_load")
        return self

    def save(self, path, metadata=None):
        """Save the weights (and the architecture, in the metadata) to a
        safetensors file, atomically. metadata: str -> str."""
        raw = _path(path)
        items = sorted((metadata or {}).items())
        pairs = (_lib.MetadataPair * max(len(items), 1))()
        for i, (key, value) in enumerate(items):
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("metadata keys and values must be str")
            pairs[i].key = key.encode("utf-8")
            pairs[i].value = value.encode("utf-8")
        self._check(_lib.lib.cudl_model_save(self._live(), raw, pairs if items else None,
                                             len(items)), "cudl_model_save")

    def describe(self):
        """The model file of this model (canonical JSON text)."""
        handle = self._live()
        length = ctypes.c_size_t()
        self._check(_lib.lib.cudl_model_describe(handle, None, 0, ctypes.byref(length)),
                    "cudl_model_describe")
        buffer = ctypes.create_string_buffer(length.value + 1)
        self._check(_lib.lib.cudl_model_describe(handle, buffer, len(buffer), None),
                    "cudl_model_describe")
        return buffer.value.decode("utf-8")

    def param_names(self):
        """Parameter and buffer names (PyTorch's state_dict keys), in order."""
        handle = self._live()
        names = []
        for i in range(_lib.lib.cudl_model_param_count(handle)):
            trainable = ctypes.c_int()
            name = _lib.lib.cudl_model_param_name(handle, i, ctypes.byref(trainable))
            names.append(name.decode("utf-8"))
        return names

    def _param_handle(self, name):
        self._require_compiled()
        handle = _lib.lib.cudl_model_param(self._live(), str(name).encode("utf-8"))
        if not handle:
            raise KeyError("the model has no parameter %r" % (name,))
        return handle

    def param(self, name):
        """A copy of a parameter or buffer as a NumPy array."""
        return host_copy_to(self._param_handle(name), self._context._handle,
                            "parameter " + str(name))

    def set_param(self, name, array):
        """Overwrite a parameter or buffer from an array of its shape."""
        handle = self._param_handle(name)
        current = self.param(name)
        array, _ = as_contiguous(array, "f32")
        if array.shape != current.shape:
            raise ValueError("parameter %r has shape %s, not %s"
                             % (name, current.shape, array.shape))
        host_copy_from(handle, self._context._handle, array, "parameter " + str(name))

    def state_dict(self):
        """Every parameter and buffer, name -> NumPy array (copies)."""
        return {name: self.param(name) for name in self.param_names()}

    # ---- running ----

    def train(self):
        """Training mode: batch statistics, dropout."""
        self._check(_lib.lib.cudl_model_set_training(self._live(), 1),
                    "cudl_model_set_training")
        self._training = True
        return self

    def eval(self):
        """Evaluation mode: running statistics, no dropout."""
        self._check(_lib.lib.cudl_model_set_training(self._live(), 0),
                    "cudl_model_set_training")
        self._training = False
        return self

    @property
    def training(self):
        return self._training

    def _require_compiled(self):
        if self._max_batch is None:
            raise ValueError("the model is not compiled: call compile(max_batch) first")

    def _tensor(self, array, dtype=None):
        return Tensor.from_numpy(self._context, array, dtype)

    def forward(self, x, target=None):
        """One forward pass on a batch x (rows <= max_batch); with target
        (int labels for cross-entropy, float values otherwise) the mean loss
        is returned, else None. The output is then available from output()."""
        self._require_compiled()
        handle = self._live()
        # The model reads x and the target again in backward(): they live
        # until the next forward replaces them or the model is closed.
        self._release_batch()
        xt = self._tensor(x, "f32")
        self._batch = [xt]
        if target is None:
            self._check(_lib.lib.cudl_model_forward(handle, xt._handle, None, None),
                        "cudl_model_forward")
            return None
        target = np.asarray(target)
        kind = "i32" if np.issubdtype(target.dtype, np.integer) else "f32"
        tt = self._tensor(target, kind)
        self._batch.append(tt)
        loss = ctypes.c_float()
        self._check(_lib.lib.cudl_model_forward(handle, xt._handle, tt._handle,
                                                ctypes.byref(loss)),
                    "cudl_model_forward")
        return float(loss.value)

    def _release_batch(self):
        for tensor in self._batch:
            tensor.close()
        self._batch = []

    def close(self):
        if getattr(self, "_batch", None):
            self._release_batch()
        super().close()

    def output(self):
        """A copy of the last forward's output (f32 NumPy array)."""
        handle = _lib.lib.cudl_model_output(self._live())
        if not handle:
            raise ValueError("no forward has run yet")
        return host_copy_to(handle, self._context._handle, "cudl_model_output")

    def backward(self):
        """Gradients of the last forward's loss (it must have had a target)."""
        self._check(_lib.lib.cudl_model_backward(self._live()), "cudl_model_backward")

    def train_step(self, x, target, optimizer, lr=None):
        """forward with target, backward, one optimizer step; the loss."""
        loss = self.forward(x, target)
        self.backward()
        optimizer.step(lr)
        return loss

    def _batches(self, n, batch_size):
        self._require_compiled()
        size = self._max_batch if batch_size is None else min(
            _positive_int(batch_size, "batch_size"), self._max_batch)
        for start in range(0, n, size):
            yield start, min(start + size, n)

    def predict(self, x, batch_size=None):
        """The outputs (logits) for every row of x, in evaluation mode and
        in batches of at most max_batch rows; the mode is restored after."""
        x = np.asarray(x)
        was_training = self._training
        if was_training:
            self.eval()
        try:
            outputs = []
            for start, end in self._batches(len(x), batch_size):
                self.forward(x[start:end])
                outputs.append(self.output())
        finally:
            if was_training:
                self.train()
        if not outputs:
            raise ValueError("predict needs at least one row")
        return np.concatenate(outputs)

    def predict_proba(self, x, batch_size=None):
        """Softmax of predict()'s logits (cross-entropy models)."""
        logits = self.predict(x, batch_size).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict_classes(self, x, batch_size=None):
        """The class of largest logit for every row (int64)."""
        return np.argmax(self.predict(x, batch_size), axis=1)

    def evaluate(self, x, labels, batch_size=None):
        """(mean loss, accuracy) over (x, integer labels), in evaluation
        mode as predict() is."""
        x = np.asarray(x)
        labels = np.asarray(labels)
        if len(labels) != len(x):
            raise ValueError("%d rows but %d labels" % (len(x), len(labels)))
        was_training = self._training
        if was_training:
            self.eval()
        total, correct = 0.0, 0
        try:
            for start, end in self._batches(len(x), batch_size):
                total += self.forward(x[start:end], labels[start:end]) * (end - start)
                correct += int((np.argmax(self.output(), axis=1) == labels[start:end]).sum())
        finally:
            if was_training:
                self.train()
        if len(x) == 0:
            raise ValueError("evaluate needs at least one row")
        return total / len(x), correct / len(x)

    def __repr__(self):
        if self.closed:
            return "<cudl.Model closed>"
        return "<cudl.Model %d tensors, max_batch=%s>" % (
            _lib.lib.cudl_model_param_count(self._handle), self._max_batch)

"""Goldens of the model zoo (include/cudl/zoo.h) from PyTorch, for
tests/unit/test_zoo.cpp. Called by make_goldens.py (run that, through
scripts/make-goldens.sh); the networks are benchmarks/models.py's.

Two outputs:

zoo_params.txt - every zoo model's state_dict as PyTorch has it (without
  num_batches_tracked), one model a block:
      model ID kind=KIND key=value ... parameters=P buffers=B
      NAME param|buffer D0,D1,...
  KIND is mlp, small_cnn or resnet; the keys are the zoo function's
  arguments (input: the per-sample shape; widths: hidden widths, "-" for
  none; activation: relu, tanh, ...; plain: 0 or 1); P and B count the
  trainable and buffer scalars. The test builds each model with cudl and
  compares names (as sets), kinds, shapes and counts.

zoo.safetensors - cases in make_goldens.py's layout (CASE.ROLE tensors, one
  __metadata__ entry per case), of two ops:

  op=zoo_forward: one batch through a zoo network. Roles: labels (I32),
  logits_eval (evaluation mode, first: the running statistics as given),
  then in training mode logits, loss (mean cross-entropy, [1]), the
  gradient of every parameter, and the batch-norm running statistics after
  that forward (running.NAME). Dropout p = 0, so training is deterministic.

  op=zoo_train: steps SGD steps (torch.optim.SGD, foreach=False) on the
  batches x1, labels1, ..., x<steps>, labels<steps>, training mode; losses [steps] (the loss of each
  step's forward, before its update), then the parameters and running
  statistics after the last step (final.NAME, sampled as gradients are).

Inputs are not stored: batch x (of step k: xk) of case CASE is the hash
  rule below with shift 0, scale 1 and the name "CASE.x" ("CASE.xk"),
  uniform in [-1, 1).

Weights (key weights=): "torch" is PyTorch's own initialisation, stored in
  full in zoo_mlp_state.safetensors as a state_dict saved as safetensors
  (bare names; metadata _case=CASE; the test loads it with cudl_model_load
  and cudl_model_load_set, strict). "hash" stores only the rule, so that the large
  networks fit in a few kB: tensor NAME holds
      value[i] = shift + scale * u(NAME, i)
  with init.NAME = [shift, scale] stored, and
      key = FNV-1a-32(NAME's UTF-8 bytes)
      h   = lowbias32((key + i * 0x9E3779B1) mod 2^32)
      u   = ((h >> 16) - 32768) / 32768          (in [-1, 1), step 2^-15)
      lowbias32(x): x ^= x >> 16; x *= 0x7FEB352D; x ^= x >> 15;
                    x *= 0x846CA68B; x ^= x >> 16    (mod 2^32)
  scale is a power of two, so every value is exact in float32 and both
  sides compute the same bits. Convolutions and linear layers get
  PyTorch's default bound 1/sqrt(fan_in) rounded to a power of two (weights
  and biases); batch norm gets gamma in [0.75, 1.25), beta and running mean
  in [-0.25, 0.25), running variance in [0.5, 1.5): not PyTorch's
  1, 0, 0, 1, so that a swapped gamma/beta or mean/variance shows.

Gradients and final parameters: tensors of at most FULL elements are
stored whole (ROLE.NAME, the parameter's shape); larger ones as the values
at flat indices 0, p, 2p, ... < numel and numel - 1, p the smallest prime
>= ceil(numel / SAMPLES) (a prime, so that the samples walk through every
kernel position; ROLE.NAME, [k]), plus ROLE_norm.NAME [1], the L2 norm of
the whole tensor (in double, rounded to float).
"""

import math
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import models  # noqa: E402

LISTING = "zoo_params.txt"
FULL = 1024
SAMPLES = 128
M32 = 0xFFFFFFFF


def f32(v):
    return float(np.float32(v))


# ---------------------------------------------------------------- models ---

def build(kind, spec):
    """The PyTorch module for a zoo spec (the keys of a listing line)."""
    if kind == "mlp":
        return models.mlp(spec["input"], spec["widths"], spec["activation"],
                          spec["classes"], spec.get("alpha"))
    c, h, w = spec["input"]
    if kind == "small_cnn":
        return models.small_cnn(c, spec["classes"], spec.get("dropout", 0.0), (h, w))
    assert kind == "resnet"
    return models.resnet(spec["depth"], c, spec["classes"], bool(spec["plain"]))


def text(v):
    if isinstance(v, (tuple, list)):
        return ",".join(str(e) for e in v) if v else "-"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        assert f32(v) == v
        return repr(v)
    return str(v)


# (id, kind, spec): every model test_zoo.cpp compares with PyTorch's names.
LISTED = [
    ("mlp.relu", "mlp", dict(input=(1, 28, 28), widths=(256, 128), activation="relu",
                             classes=10)),
    ("mlp.tanh", "mlp", dict(input=(20,), widths=(64, 64, 32), activation="tanh",
                             classes=5)),
    ("mlp.logistic", "mlp", dict(input=(3, 4), widths=(), activation="relu", classes=3)),
    ("small_cnn.c1", "small_cnn", dict(input=(1, 28, 28), classes=10)),
    ("small_cnn.c3", "small_cnn", dict(input=(3, 32, 32), classes=10)),
    ("small_cnn.c3.odd", "small_cnn", dict(input=(3, 23, 17), classes=7)),
] + [("resnet%d.c3" % d, "resnet", dict(depth=d, plain=0, input=(3, 32, 32), classes=10))
     for d in (20, 32, 44, 56, 110)] + [
    ("resnet20.c1", "resnet", dict(depth=20, plain=0, input=(1, 28, 28), classes=10)),
    ("plain20.c3", "resnet", dict(depth=20, plain=1, input=(3, 32, 32), classes=10)),
    ("plain56.c3", "resnet", dict(depth=56, plain=1, input=(3, 32, 32), classes=10)),
    ("plain20.c1", "resnet", dict(depth=20, plain=1, input=(1, 28, 28), classes=10)),
]


def write_listing(out_dir):
    lines = ["# The model zoo's state_dict names and shapes as PyTorch %s has them"
             % torch.__version__,
             "# (benchmarks/models.py). Written by tests/golden/make_goldens.py "
             "(zoo_goldens.py); read by tests/unit/test_zoo.cpp."]
    for ident, kind, spec in LISTED:
        model = build(kind, spec)
        entries = models.state_entries(model)
        # The only keys left out are batch norm's counters.
        extra = set(model.state_dict()) - {name for name, _, _ in entries}
        assert all(k.endswith(".num_batches_tracked") for k in extra), extra
        trainable, buffers = models.parameter_count(model)
        assert trainable == sum(p.numel() for p in model.parameters())
        keys = " ".join("%s=%s" % (k, text(spec[k])) for k in sorted(spec))
        lines.append("model %s kind=%s %s parameters=%d buffers=%d"
                     % (ident, kind, keys, trainable, buffers))
        for name, shape, is_param in entries:
            lines.append("%s %s %s" % (name, "param" if is_param else "buffer", text(shape)))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path = os.path.join(out_dir, LISTING)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path, len(data)


# --------------------------------------------------------- hashed weights ---

def fnv1a(s):
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & M32
    return h


def hash_uniform(name, n):
    """u(name, i) for i < n: float32 multiples of 2^-15 in [-1, 1)."""
    key = np.uint64(fnv1a(name))
    x = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B1) + key) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(M32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    return ((x >> np.uint64(16)).astype(np.int64) - 32768).astype(np.float32) / np.float32(32768)


def hashed_state(model):
    """Fill model's state with the hash rule; returns {name: (shift, scale)}."""
    rules = {}
    modules = dict(model.named_modules())
    for name, t in model.state_dict().items():
        if name.endswith(".num_batches_tracked"):
            continue
        owner, leaf = name.rsplit(".", 1)
        module = modules[owner]
        if isinstance(module, torch.nn.BatchNorm2d):
            shift, scale = {"weight": (1.0, 0.25), "bias": (0.0, 0.25),
                            "running_mean": (0.0, 0.25), "running_var": (1.0, 0.5)}[leaf]
        else:
            w = module.weight
            fan_in = w.shape[1] * (w[0][0].numel() if w.dim() > 2 else 1)
            shift, scale = 0.0, 2.0 ** round(math.log2(1.0 / math.sqrt(fan_in)))
        u = hash_uniform(name, t.numel())
        v = np.float32(shift) + np.float32(scale) * u
        exact = shift + scale * u.astype(np.float64)
        assert v.dtype == np.float32 and np.array_equal(v.astype(np.float64), exact), name
        with torch.no_grad():
            t.copy_(torch.from_numpy(v).reshape(t.shape))
        rules[name] = (shift, scale)
    return rules


# ----------------------------------------------------------------- cases ---

def smallest_prime_at_least(n):
    n = max(n, 2)
    while any(n % d == 0 for d in range(2, int(math.isqrt(n)) + 1)):
        n += 1
    return n


def sample_index(n):
    """0, p, 2p, ... < n, and n - 1; p the smallest prime >= n / SAMPLES."""
    p = smallest_prime_at_least(-(-n // SAMPLES))
    index = list(range(0, n, p))
    if index[-1] != n - 1:
        index.append(n - 1)
    return torch.tensor(index, dtype=torch.int64)


def hashed_input(key, shape):
    """An input batch: u(key, i), uniform in [-1, 1)."""
    return torch.from_numpy(hash_uniform(key, math.prod(shape))).reshape(shape)


def put_sampled(out, case, role, name, t):
    t = t.detach().contiguous()
    flat = t.reshape(-1)
    n = flat.numel()
    if n <= FULL:
        out.put(case, "%s.%s" % (role, name), t)
        return
    out.put(case, "%s.%s" % (role, name), flat[sample_index(n)])
    norm = np.sqrt(np.sum(flat.numpy().astype(np.float64) ** 2))
    out.put(case, "%s_norm.%s" % (role, name), torch.tensor([f32(norm)]))


def put_weights(out, case, model, weights):
    if weights == "hash":
        for name, (shift, scale) in hashed_state(model).items():
            out.put(case, "init." + name, torch.tensor([shift, scale], dtype=torch.float32))
    else:
        # PyTorch's own initialisation, written whole to STATE_FILE.
        assert weights == "torch" and case == TORCH_CASE[0]


def forward_case(out, case, kind, spec, batch, weights):
    params = dict(spec)
    params.update(model=kind, batch=batch, weights=weights)
    out.case(case, "zoo_forward", **params)   # seeds torch: the init, x, labels
    model = build(kind, spec)
    x = hashed_input(case + ".x", (batch,) + tuple(spec["input"]))
    labels = torch.randint(0, spec["classes"], (batch,))
    put_weights(out, case, model, weights)
    out.put(case, "labels", labels)
    model.eval()
    with torch.no_grad():
        out.put(case, "logits_eval", model(x))
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out.put(case, "logits", logits)
    out.put(case, "loss", loss.reshape(1))
    for name, p in model.named_parameters():
        put_sampled(out, case, "grad", name, p.grad)
    for name, b in model.named_buffers():
        if not name.endswith(".num_batches_tracked"):
            out.put(case, "running." + name, b)


def train_case(out, case, kind, spec, batch, steps, lr, momentum, weight_decay, nesterov):
    params = dict(spec)
    params.update(model=kind, batch=batch, weights="hash", steps=steps, optimizer="sgd",
                  lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    out.case(case, "zoo_train", **params)
    model = build(kind, spec)
    put_weights(out, case, model, "hash")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay, nesterov=nesterov, foreach=False)
    model.train()
    losses = []
    for k in range(1, steps + 1):
        x = hashed_input("%s.x%d" % (case, k), (batch,) + tuple(spec["input"]))
        labels = torch.randint(0, spec["classes"], (batch,))
        out.put(case, "labels%d" % k, labels)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out.put(case, "losses", torch.tensor(losses, dtype=torch.float32))
    for name, t in model.state_dict().items():
        if not name.endswith(".num_batches_tracked"):
            put_sampled(out, case, "final", name, t)


# The case whose weights are PyTorch's default initialisation, stored as a
# plain state_dict in STATE_FILE.
TORCH_CASE = ("forward.mlp.elu", "mlp",
              dict(input=(2, 5, 5), widths=(32, 16), activation="elu", alpha=f32(0.5),
                   classes=7), 4)
STATE_FILE = "zoo_mlp_state.safetensors"


def state_file(out):
    """STATE_FILE: TORCH_CASE's model.state_dict() as
    safetensors.torch.save_file would write it (names as keys, F32; the
    layout is the reference implementation's), with metadata _case=CASE.
    The weights are those forward_case draws: the same seed, the same
    construction."""
    case, kind, spec, _ = TORCH_CASE
    torch.manual_seed(zlib.crc32(case.encode("utf-8")))   # as out.case() seeds
    model = build(kind, spec)
    for name, t in model.state_dict().items():
        t = t.detach().contiguous()
        assert t.dtype == torch.float32, name
        out.tensors[name] = ("F32", list(t.shape), t.numpy().astype("<f4").tobytes())
    out.metadata["_case"] = case


def zoo(out):
    """The cases of zoo.safetensors."""
    forward_case(out, *TORCH_CASE, "torch")
    forward_case(out, "forward.mlp.leaky_relu", "mlp",
                 dict(input=(20,), widths=(24, 24, 12), activation="leaky_relu",
                      alpha=f32(0.2), classes=5), 4, "hash")
    forward_case(out, "forward.small_cnn.c1", "small_cnn",
                 dict(input=(1, 28, 28), classes=10, dropout=0.0), 2, "hash")
    forward_case(out, "forward.small_cnn.c3", "small_cnn",
                 dict(input=(3, 32, 32), classes=10, dropout=0.0), 2, "hash")
    forward_case(out, "forward.resnet8.c1", "resnet",
                 dict(depth=8, plain=0, input=(1, 28, 28), classes=10), 2, "hash")
    forward_case(out, "forward.resnet14.c3", "resnet",
                 dict(depth=14, plain=0, input=(3, 32, 32), classes=10), 2, "hash")
    forward_case(out, "forward.plain8.c1", "resnet",
                 dict(depth=8, plain=1, input=(1, 28, 28), classes=10), 2, "hash")
    train_case(out, "train.small_cnn.c1", "small_cnn",
               dict(input=(1, 16, 16), classes=10, dropout=0.0), 4, 5,
               lr=f32(0.05), momentum=f32(0.9), weight_decay=f32(5e-4), nesterov=False)
    train_case(out, "train.resnet8.c1", "resnet",
               dict(depth=8, plain=0, input=(1, 12, 12), classes=10), 4, 5,
               lr=f32(0.05), momentum=f32(0.9), weight_decay=f32(1e-4), nesterov=True)

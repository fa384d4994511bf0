#!/usr/bin/python3
"""Golden reference data from PyTorch for cudl's operators.

Run it (needs PyTorch: Debian's package python3-torch, 1.13 when this was
written; torch 1.13 has no `safetensors` package, so the files are written
with the standard-library safetensors code in scripts/safetensors_spec.py):

    scripts/make-goldens.sh            # checks for python3-torch, then:
    /usr/bin/python3 tests/golden/make_goldens.py [OUT_DIR]

OUT_DIR defaults to the directory of this script (tests/golden). The
.safetensors files it writes are COMMITTED: the build and the tests never
run this script and never need torch; tests/unit/test_golden.cpp reads the
files through cudl's own safetensors loader and compares cudl's CPU (and,
where there is a GPU, CUDA) results with them.

What a golden is: PyTorch's own float32 CPU results -- forward outputs and,
through autograd, gradients -- for inputs drawn here. Nothing is computed in
float64: the point is agreement with what PyTorch actually does, and the C++
test states a tolerance per operator for the rounding differences between
two float32 implementations.
optim.safetensors holds torch.optim's parameters and state after each of
five steps, learning rates from torch.optim.lr_scheduler (PyTorch computes
those in Python floats; they are stored rounded to float32) and
clip_grad_norm_'s norm and clipped gradients; tests/unit/test_optim.cpp
reads it.
zoo.safetensors and zoo_params.txt are the model zoo's: tests/golden/
zoo_goldens.py writes them (its docstring describes them) from the PyTorch
definitions in benchmarks/models.py; tests/unit/test_zoo.cpp reads them.

Layout of the files:
  * one tensor per array, named CASE.ROLE: e.g. conv2d.s2p1.x, .w, .b, .y,
    .g (the upstream gradient), .dx, .dw, .db. Every gradient is the
    autograd gradient of  loss = (y * g).sum()  for a fixed random g stored
    as CASE.g (for the losses, whose y is a scalar, g is a scalar too).
  * one __metadata__ entry per case: key CASE, value "op=OP k=v k=v ...",
    the operator and its parameters (floats written with repr() of a value
    that is exact in float32, so strtod/strtof read back the very float
    PyTorch was given). Keys starting with "_" describe the file.
  * F32 tensors, except the cross-entropy labels (I32; PyTorch's int64
    labels converted).

Determinism: every case seeds torch with the CRC-32 of its name, torch runs
on one thread, the tensors are laid out in the reference implementation's
order (F32 first, then by name) with the metadata keys sorted, and each file
is checked with safetensors_spec.parse/check_layout before it replaces the
old one. Rerunning on the same machine gives the same bytes. Another CPU or
another build of PyTorch/oneDNN/OpenBLAS may change the last bits of some
results (vectorised exp, summation order); the C++ tolerances absorb that.
"""

import os
import struct
import sys
import zlib
import json

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import safetensors_spec as spec  # noqa: E402

try:
    import numpy as np  # noqa: E402
    import torch  # noqa: E402
    import torch.nn.functional as F  # noqa: E402
except ImportError as e:  # pragma: no cover - the message is the point
    sys.stderr.write("make_goldens.py needs PyTorch: install python3-torch (Debian) "
                     "and run it with /usr/bin/python3 (%s)\n" % e)
    sys.exit(1)
# The model zoo's goldens (zoo.safetensors, zoo_params.txt): a sibling
# module, since they need benchmarks/models.py.
import zoo_goldens  # noqa: E402


def f32(v):
    """v rounded to float32, as a Python float (exact in float32)."""
    return float(np.float32(v))


def fmt(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        assert f32(v) == v, "parameter %r is not exact in float32" % v
        return repr(v)
    if isinstance(v, (tuple, list)):
        return ",".join(fmt(e) for e in v)
    if isinstance(v, str):
        assert v and all(ch.isalnum() or ch in "_-" for ch in v), v
        return v
    raise TypeError(v)


class GoldenFile:
    """Tensors and case metadata of one output file."""

    def __init__(self, name):
        self.name = name
        self.tensors = {}   # name -> (dtype, shape, bytes)
        self.metadata = {}

    def case(self, case, op, **params):
        assert case not in self.metadata, case
        assert not case.startswith("_")
        text = "op=" + op
        for k in sorted(params):
            text += " %s=%s" % (k, fmt(params[k]))
        self.metadata[case] = text
        torch.manual_seed(zlib.crc32(case.encode("utf-8")))

    def put(self, case, role, t):
        name = case + "." + role
        assert name not in self.tensors, name
        t = t.detach().contiguous()
        if t.dtype == torch.float32:
            dtype, arr = "F32", t.numpy().astype("<f4")
        elif t.dtype in (torch.int64, torch.int32):
            assert t.abs().max() < 2 ** 31
            dtype, arr = "I32", t.numpy().astype("<i4")
        else:
            raise TypeError("%s: dtype %s" % (name, t.dtype))
        self.tensors[name] = (dtype, list(t.shape), arr.tobytes())

    def image(self):
        """The file's bytes, laid out as the reference implementation lays
        them out (and as scripts/safetensors_spec.py checks)."""
        header = {"__metadata__": dict(sorted(self.metadata.items(),
                                              key=lambda kv: spec.utf8_key(kv[0])))}
        data = bytearray()
        order = sorted(self.tensors, key=lambda n: spec.layout_key(n, self.tensors[n][0]))
        for name in order:
            dtype, shape, blob = self.tensors[name]
            assert len(blob) == spec.numel(shape) * spec.DTYPE_SIZES[dtype]
            header[name] = {"dtype": dtype, "shape": shape,
                            "data_offsets": [len(data), len(data) + len(blob)]}
            data += blob
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        text += b" " * (-len(text) % 8)
        image = struct.pack("<Q", len(text)) + text + bytes(data)
        parsed_text, obj, _ = spec.parse(image)   # the format's rules
        spec.check_layout(image, parsed_text, obj)  # and the canonical layout
        return image

    def write(self, out_dir):
        self.metadata["_generator"] = "tests/golden/make_goldens.py"
        self.metadata["_torch"] = torch.__version__
        path = os.path.join(out_dir, self.name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(self.image())
        os.replace(tmp, path)
        return path, os.path.getsize(path)


def randn(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape) * scale + shift).float()


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def backward(y, *inputs):
    """g, then the gradients of (y * g).sum() with respect to inputs."""
    g = torch.randn(y.shape)
    (y * g).sum().backward()
    return [g] + [t.grad for t in inputs]


def activation_input(shape):
    """Normal values with the edges an activation has: exact zeros (both
    signs), tiny values, and values where sigmoid/tanh saturate."""
    x = randn(*shape, scale=2.0).flatten()
    edges = [0.0, -0.0, 1e-6, -1e-6, 30.0, -30.0, 100.0, -100.0, 8.0, -8.0, 0.5, -0.5]
    x[:len(edges)] = torch.tensor(edges)
    return x.reshape(shape)


# ------------------------------------------------------------ activations ---

def activations(out):
    shape = (2, 3, 5, 7)

    def elementwise(case, op, fn, **params):
        out.case(case, op, **params)
        x = leaf(activation_input(shape))
        y = fn(x)
        g, dx = backward(y, x)
        for role, t in (("x", x), ("y", y), ("g", g), ("dx", dx)):
            out.put(case, role, t)

    elementwise("sigmoid", "sigmoid", torch.sigmoid)
    elementwise("tanh", "tanh", torch.tanh)
    elementwise("relu", "relu", torch.relu)
    elementwise("silu", "silu", F.silu)
    for alpha, tag in ((f32(0.01), "a0.01"), (f32(0.2), "a0.2")):
        elementwise("leaky_relu." + tag, "leaky_relu",
                    lambda x, a=alpha: F.leaky_relu(x, a), alpha=alpha)
    for alpha, tag in ((1.0, "a1"), (f32(0.5), "a0.5"), (f32(1.7), "a1.7")):
        elementwise("elu." + tag, "elu", lambda x, a=alpha: F.elu(x, a), alpha=alpha)
    # RReLU in evaluation: the fixed slope (lower + upper) / 2. Training
    # draws its slopes from PyTorch's generator, which cudl does not
    # reproduce (it uses Philox), so there is no training golden.
    for lower, upper, tag in ((f32(1 / 8), f32(1 / 3), "default"),
                              (f32(0.1), f32(0.3), "l0.1u0.3")):
        elementwise("rrelu.eval." + tag, "rrelu_eval",
                    lambda x, lo=lower, up=upper: F.rrelu(x, lo, up, training=False),
                    lower=lower, upper=upper)
    # Dropout in evaluation is the identity; training masks come from
    # PyTorch's generator (not Philox), so no training golden either.
    elementwise("dropout.eval", "dropout_eval",
                lambda x: F.dropout(x, f32(0.5), training=False), p=f32(0.5))

    # PReLU with a learnable slope: shared (one slope) and per channel.
    for case, n in (("prelu.shared", 1), ("prelu.channel", shape[1])):
        out.case(case, "prelu", num_parameters=n)
        x = leaf(activation_input(shape))
        slope = leaf(torch.rand(n) * 0.5)
        y = F.prelu(x, slope)
        g, dx, dslope = backward(y, x, slope)
        for role, t in (("x", x), ("slope", slope), ("y", y), ("g", g), ("dx", dx),
                        ("dslope", dslope)):
            out.put(case, role, t)


# ---------------------------------------------------------------- pooling ---

def pooling(out):
    shape = (2, 3, 9, 11)

    def pool(case, op, k, s, p, include=None, ceil=False, in_shape=shape):
        params = dict(kernel=k, stride=s, pad=p)
        if include is not None:
            params["count_include_pad"] = include
        if ceil:
            params["ceil_mode"] = True
        out.case(case, op, **params)
        x = leaf(randn(*in_shape))
        if op == "max_pool2d":
            y = F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        else:
            y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include)
        g, dx = backward(y, x)
        for role, t in (("x", x), ("y", y), ("g", g), ("dx", dx)):
            out.put(case, role, t)

    pool("max_pool2d.k3s2p1", "max_pool2d", (3, 3), (2, 2), (1, 1))   # overlapping, padded
    pool("max_pool2d.k3s1p1", "max_pool2d", (3, 3), (1, 1), (1, 1))   # every input in 9 windows
    pool("max_pool2d.k2s2", "max_pool2d", (2, 2), (2, 2), (0, 0))     # tiles, odd sizes cut
    pool("max_pool2d.k3x2s2x1p1x0", "max_pool2d", (3, 2), (2, 1), (1, 0))  # non-square
    pool("avg_pool2d.k3s2p1.incl", "avg_pool2d", (3, 3), (2, 2), (1, 1), True)
    pool("avg_pool2d.k3s2p1.excl", "avg_pool2d", (3, 3), (2, 2), (1, 1), False)
    pool("avg_pool2d.k3s1p1.incl", "avg_pool2d", (3, 3), (1, 1), (1, 1), True)
    pool("avg_pool2d.k2s2", "avg_pool2d", (2, 2), (2, 2), (0, 0), True)
    pool("avg_pool2d.k3x2s2x1p1x0.excl", "avg_pool2d", (3, 2), (2, 1), (1, 0), False)
    pool("avg_pool2d.k5x3s3x2p2x1.incl", "avg_pool2d", (5, 3), (3, 2), (2, 1), True)
    # Ceil mode (9x11 input unless given): last windows past the input, past
    # the right padding (count_include_pad's divisor stops at the padding's
    # end), one dropped for starting in the right padding (k2 s2 p1 on 5x5),
    # a kernel larger than the input.
    pool("max_pool2d.k3s2.ceil", "max_pool2d", (3, 3), (2, 2), (0, 0), ceil=True,
         in_shape=(2, 3, 8, 10))
    pool("max_pool2d.k2s2p1.ceil", "max_pool2d", (2, 2), (2, 2), (1, 1), ceil=True,
         in_shape=(2, 3, 5, 5))
    pool("max_pool2d.k3x2s2x3p1x0.ceil", "max_pool2d", (3, 2), (2, 3), (1, 0), ceil=True,
         in_shape=(2, 3, 10, 12))
    pool("max_pool2d.k3s2.small.ceil", "max_pool2d", (3, 3), (2, 2), (0, 0), ceil=True,
         in_shape=(1, 2, 2, 3))
    pool("avg_pool2d.k3s2p1.incl.ceil", "avg_pool2d", (3, 3), (2, 2), (1, 1), True, ceil=True,
         in_shape=(2, 3, 6, 8))
    pool("avg_pool2d.k3s2p1.excl.ceil", "avg_pool2d", (3, 3), (2, 2), (1, 1), False, ceil=True,
         in_shape=(2, 3, 6, 8))
    pool("avg_pool2d.k2s2p1.incl.ceil", "avg_pool2d", (2, 2), (2, 2), (1, 1), True, ceil=True,
         in_shape=(2, 3, 5, 5))
    pool("avg_pool2d.k3x2s2x3p1x1.excl.ceil", "avg_pool2d", (3, 2), (2, 3), (1, 1), False,
         ceil=True, in_shape=(2, 3, 10, 13))
    pool("avg_pool2d.k3s2.small.incl.ceil", "avg_pool2d", (3, 3), (2, 2), (0, 0), True,
         ceil=True, in_shape=(1, 2, 2, 3))

    case = "global_avg_pool"
    out.case(case, "global_avg_pool")
    x = leaf(randn(*shape, scale=3.0, shift=1.0))
    y = F.adaptive_avg_pool2d(x, 1)
    g, dx = backward(y, x)
    for role, t in (("x", x), ("y", y), ("g", g), ("dx", dx)):
        out.put(case, role, t)


# ------------------------------------------------------------- batch norm ---

def batchnorm(out):
    def training(case, shape, momentum, eps, scale=1.5, shift=0.7):
        out.case(case, "batchnorm_train", momentum=momentum, eps=eps)
        c = shape[1]
        x = leaf(randn(*shape, scale=scale, shift=shift))
        gamma = leaf(randn(c, scale=0.5, shift=1.0))
        beta = leaf(randn(c, scale=0.5))
        running_mean = randn(c, scale=0.3)
        running_var = (torch.rand(c) + 0.5).float()
        rm, rv = running_mean.clone(), running_var.clone()
        y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=momentum, eps=eps)
        g, dx, dgamma, dbeta = backward(y, x, gamma, beta)
        for role, t in (("x", x), ("gamma", gamma), ("beta", beta),
                        ("running_mean", running_mean), ("running_var", running_var),
                        ("y", y), ("running_mean_out", rm), ("running_var_out", rv),
                        ("g", g), ("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)):
            out.put(case, role, t)

    training("batchnorm.train.4d", (4, 3, 5, 6), f32(0.1), f32(1e-5))
    training("batchnorm.train.2d", (8, 5), f32(0.3), f32(1e-3))
    # A large mean with a small deviation: a one-pass variance would lose it.
    training("batchnorm.train.offset", (3, 2, 4, 5), f32(0.1), f32(1e-5), scale=0.05,
             shift=100.0)

    case = "batchnorm.eval.4d"
    eps = f32(1e-5)
    out.case(case, "batchnorm_eval", eps=eps)
    shape = (2, 3, 4, 5)
    x = randn(*shape, scale=1.5, shift=0.5)
    gamma, beta = randn(3, scale=0.5, shift=1.0), randn(3, scale=0.5)
    running_mean, running_var = randn(3, scale=0.5), (torch.rand(3) + 0.5).float()
    y = F.batch_norm(x, running_mean, running_var, gamma, beta, training=False, eps=eps)
    for role, t in (("x", x), ("gamma", gamma), ("beta", beta),
                    ("running_mean", running_mean), ("running_var", running_var), ("y", y)):
        out.put(case, role, t)


# ----------------------------------------------------- softmax and losses ---

def losses(out):
    for op, fn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
        for tag, shape, scale in (("2d", (5, 7), 2.0), ("3d", (2, 3, 10), 1.0),
                                  ("large", (3, 40), 30.0)):
            case = "%s.%s" % (op, tag)
            out.case(case, op, dim=-1)
            x = leaf(randn(*shape, scale=scale))
            y = fn(x, dim=-1)
            g, dx = backward(y, x)
            for role, t in (("x", x), ("y", y), ("g", g), ("dx", dx)):
                out.put(case, role, t)

    for reduction in ("mean", "sum"):
        case = "mse_loss." + reduction
        out.case(case, "mse_loss", reduction=reduction)
        pred, target = leaf(randn(4, 6)), randn(4, 6)
        loss = F.mse_loss(pred, target, reduction=reduction)
        g, dpred = backward(loss, pred)
        for role, t in (("pred", pred), ("target", target), ("loss", loss), ("g", g),
                        ("dpred", dpred)):
            out.put(case, role, t)

        case = "bce_with_logits." + reduction
        out.case(case, "bce_with_logits", reduction=reduction)
        x = leaf(randn(4, 6, scale=3.0))
        target = torch.rand(4, 6)
        target.view(-1)[:4] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # hard targets too
        x.data.view(-1)[4:6] = torch.tensor([40.0, -40.0])       # saturated logits
        loss = F.binary_cross_entropy_with_logits(x, target, reduction=reduction)
        g, dx = backward(loss, x)
        for role, t in (("x", x), ("target", target), ("loss", loss), ("g", g), ("dx", dx)):
            out.put(case, role, t)

        for smoothing, tag in ((0.0, ""), (f32(0.1), ".ls0.1"), (f32(0.25), ".ls0.25")):
            case = "cross_entropy.%s%s" % (reduction, tag)
            out.case(case, "cross_entropy", reduction=reduction, label_smoothing=smoothing)
            n, k = 6, 5
            logits = leaf(randn(n, k, scale=2.0))
            labels = torch.randint(0, k, (n,))
            loss = F.cross_entropy(logits, labels, reduction=reduction,
                                   label_smoothing=smoothing)
            g, dlogits = backward(loss, logits)
            for role, t in (("logits", logits), ("labels", labels), ("loss", loss), ("g", g),
                            ("dlogits", dlogits)):
                out.put(case, role, t)


# ------------------------------------------------------- conv2d and linear ---

def conv_linear(out):
    def conv(case, n, c, h, w, k, r, s, stride, pad, dilation, groups):
        out.case(case, "conv2d", stride=stride, pad=pad, dilation=dilation, groups=groups)
        x = leaf(randn(n, c, h, w))
        weight = leaf(randn(k, c // groups, r, s, scale=0.3))
        bias = leaf(randn(k, scale=0.5))
        y = F.conv2d(x, weight, bias, stride, pad, dilation, groups)
        g, dx, dw, db = backward(y, x, weight, bias)
        for role, t in (("x", x), ("w", weight), ("b", bias), ("y", y), ("g", g), ("dx", dx),
                        ("dw", dw), ("db", db)):
            out.put(case, role, t)

    conv("conv2d.k3p1", 2, 4, 9, 10, 6, 3, 3, (1, 1), (1, 1), (1, 1), 1)
    conv("conv2d.s2p1", 2, 4, 9, 10, 6, 3, 3, (2, 2), (1, 1), (1, 1), 1)
    conv("conv2d.d2p2", 2, 4, 9, 10, 6, 3, 3, (1, 1), (2, 2), (2, 2), 1)
    conv("conv2d.g2", 2, 4, 9, 10, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2)
    conv("conv2d.depthwise", 2, 4, 9, 10, 8, 3, 3, (1, 1), (1, 1), (1, 1), 4)
    conv("conv2d.k1s2", 2, 5, 9, 10, 7, 1, 1, (2, 2), (0, 0), (1, 1), 1)
    conv("conv2d.k5x3", 2, 3, 11, 9, 4, 5, 3, (1, 2), (2, 1), (1, 1), 1)
    # K = 3 * 16 * 9 = 432 products per output: summation order matters.
    conv("conv2d.wide", 2, 16, 8, 8, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1)

    def linear(case, xshape, nout, with_bias):
        out.case(case, "linear", bias=int(with_bias))
        x = leaf(randn(*xshape))
        weight = leaf(randn(nout, xshape[-1], scale=0.4))
        bias = leaf(randn(nout, scale=0.5)) if with_bias else None
        y = F.linear(x, weight, bias)
        inputs = (x, weight) + ((bias,) if with_bias else ())
        grads = backward(y, *inputs)
        roles = [("x", x), ("w", weight)] + ([("b", bias)] if with_bias else [])
        roles += [("y", y), ("g", grads[0]), ("dx", grads[1]), ("dw", grads[2])]
        if with_bias:
            roles.append(("db", grads[3]))
        for role, t in roles:
            out.put(case, role, t)

    linear("linear.2d", (5, 7), 3, True)
    linear("linear.3d", (2, 4, 6), 5, True)
    linear("linear.nobias", (3, 8), 4, False)
    linear("linear.wide", (4, 300), 6, True)

    # Flatten and reshape are views: the same elements under a new shape.
    for case, start, end in (("flatten.1", 1, -1), ("flatten.0_1", 0, 1)):
        out.case(case, "flatten", start=start, end=end)
        x = leaf(randn(2, 3, 4, 5))
        y = torch.flatten(x, start, end)
        g, dx = backward(y, x)
        for role, t in (("x", x), ("y", y), ("g", g), ("dx", dx)):
            out.put(case, role, t)
    case = "reshape"
    out.case(case, "reshape")
    x = leaf(randn(2, 3, 4))
    y = x.reshape(4, 6)
    g, dx = backward(y, x)
    for role, t in (("x", x), ("y", y), ("g", g), ("dx", dx)):
        out.put(case, role, t)


# ------------------------------------------------------------- optimizers ---

def optim(out):
    """torch.optim over five steps from stored gradients, the
    learning-rate schedules sampled at every step, and clip_grad_norm_.

    Optimizers run their single-tensor code (foreach=False, 1.13's default
    on the CPU) on one flat parameter, as cudl's one parameter arena; the
    hyper-parameters are exact floats, so that PyTorch's Python-float
    arithmetic starts from the very values cudl's float config holds.
    Roles: p0, then for step k = 1..5 the gradient gk, the parameters pk
    after the step and the state after it (momentum_bufferk, or exp_avgk
    and exp_avg_sqk). A case with lrs=... sets the group's lr to lrs[k-1]
    before step k (as a scheduler does); the others use lr throughout."""
    n, steps = 101, 5  # 101: not a multiple of 4, 8 or 16 (vector tails)
    grad_scales = (1.0, 0.5, 2.0, 0.1, 1.0)

    def run(case, op, make, lrs=None, **params):
        if lrs is not None:
            params["lrs"] = lrs
        out.case(case, op, steps=steps, **params)
        p = randn(n, scale=0.5)
        p[:3] = torch.tensor([0.0, -0.0, 1e-3])  # zero parameters decay too
        out.put(case, "p0", p)
        param = torch.nn.Parameter(p.clone())
        opt = make([param])
        for k in range(1, steps + 1):
            g = randn(n, scale=grad_scales[k - 1])
            g[5 * k:5 * k + 3] = 0.0  # zero gradients: Adam's eps, decay alone
            if lrs is not None:
                opt.param_groups[0]["lr"] = lrs[k - 1]
            param.grad = g.clone()
            opt.step()
            out.put(case, "g%d" % k, g)
            out.put(case, "p%d" % k, param)
            for name, t in sorted(opt.state[param].items()):
                if name != "step" and t is not None:
                    out.put(case, "%s%d" % (name, k), t)

    def sgd(case, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
            lrs=None):
        run(case, "sgd",
            lambda ps: torch.optim.SGD(ps, lr=lr, momentum=momentum, dampening=dampening,
                                       nesterov=nesterov, weight_decay=weight_decay,
                                       foreach=False),
            lrs=lrs, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
            weight_decay=weight_decay)

    sgd("sgd.plain", f32(0.1))
    sgd("sgd.momentum", f32(0.05), momentum=f32(0.9))
    sgd("sgd.dampening", f32(0.05), momentum=f32(0.9), dampening=f32(0.25))
    sgd("sgd.nesterov", f32(0.05), momentum=f32(0.9), nesterov=True)
    sgd("sgd.weight_decay", f32(0.1), weight_decay=f32(0.01))
    sgd("sgd.nesterov_wd_lrs", f32(0.05), momentum=f32(0.8), nesterov=True,
        weight_decay=f32(5e-4), lrs=[f32(v) for v in (0.05, 0.04, 0.03, 0.02, 0.01)])

    def adam(case, op, lr, betas=(f32(0.9), f32(0.999)), eps=f32(1e-8), weight_decay=0.0,
             lrs=None):
        cls = torch.optim.Adam if op == "adam" else torch.optim.AdamW
        run(case, op,
            lambda ps: cls(ps, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                           foreach=False),
            lrs=lrs, lr=lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay)

    adam("adam.default", "adam", f32(1e-3))
    adam("adam.weight_decay", "adam", f32(1e-3), weight_decay=f32(0.01))
    adam("adam.custom", "adam", f32(3e-3), betas=(f32(0.8), f32(0.99)), eps=f32(1e-6),
         weight_decay=f32(0.1))
    adam("adamw.default", "adamw", f32(1e-3), weight_decay=f32(0.01))
    adam("adamw.custom_lrs", "adamw", f32(2e-3), betas=(f32(0.85), f32(0.995)),
         eps=f32(1e-7), weight_decay=f32(0.05),
         lrs=[f32(v) for v in (2e-3, 1e-3, 5e-4, 2.5e-3, 1e-4)])

    # Learning-rate schedules, one value per step in CASE.lr. The epoch
    # schedules are torch.optim.lr_scheduler's own (stepped once an epoch,
    # as a training loop does; they update the rate recursively in double).
    # The linear warm-up is the formula cudl/optim.h documents,
    # base_lr * (s + 1) / W for step s < W, checked here against LinearLR
    # (start_factor 1/W, stepped every step), which follows the same line;
    # after it a fresh scheduler runs, epochs counted from its end.
    def schedule(case, kind, base_lr, epochs, steps_per_epoch, warmup_epochs=0, **params):
        out.case(case, "lr_schedule", kind=kind, base_lr=base_lr, epochs=epochs,
                 steps_per_epoch=steps_per_epoch, warmup_epochs=warmup_epochs, **params)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
        lrs = []
        w = warmup_epochs * steps_per_epoch
        if w > 0:
            linear = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / w,
                                                       end_factor=1.0, total_iters=w - 1)
            for s in range(w):
                documented = base_lr * (s + 1) / w
                torch_lr = opt.param_groups[0]["lr"]
                assert abs(torch_lr - documented) <= 1e-12 * base_lr, (case, s)
                lrs.append(documented)
                opt.step()
                linear.step()
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
        if kind == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, params["step_size"], params["gamma"])
        elif kind == "multi_step":
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(params["milestones"]),
                                                         params["gamma"])
        elif kind == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, params["total_epochs"],
                                                               params["eta_min"])
        else:
            assert kind == "constant"
            sched = None
        for _ in range(epochs):
            lrs.extend([opt.param_groups[0]["lr"]] * steps_per_epoch)
            opt.step()
            if sched is not None:
                sched.step()
        out.put(case, "lr", torch.tensor(lrs, dtype=torch.float64).float())

    schedule("lr.step", "step", f32(0.1), 12, 2, step_size=3, gamma=f32(0.1))
    schedule("lr.multi_step", "multi_step", f32(0.1), 12, 3, milestones=(2, 5, 9),
             gamma=f32(0.2))
    # Past T the cosine rises again (PyTorch's curve; 25 epochs > 2 T).
    schedule("lr.cosine", "cosine", f32(0.05), 25, 1, total_epochs=10, eta_min=f32(1e-4))
    schedule("lr.cosine.eta0", "cosine", f32(0.1), 7, 2, total_epochs=7, eta_min=0.0)
    schedule("lr.warmup.cosine", "cosine", f32(0.2), 8, 4, warmup_epochs=2, total_epochs=6,
             eta_min=0.0)
    schedule("lr.warmup.multi_step", "multi_step", f32(0.1), 8, 5, warmup_epochs=1,
             milestones=(3, 6), gamma=f32(0.1))
    schedule("lr.warmup.constant", "constant", f32(0.01), 2, 2, warmup_epochs=3)

    # clip_grad_norm_: CASE.g before, CASE.norm (the returned total norm),
    # CASE.clipped after. One flat gradient, as cudl's arena, except
    # clip.multi: three parameters clipped together (PyTorch takes the
    # norm of the per-tensor norms), stored concatenated.
    def clip(case, sizes, scale, max_norm=None, at_norm=False):
        grads = [randn(k, scale=scale) for k in sizes]
        flat = torch.cat(grads)
        if at_norm:
            # max_norm = the norm itself: PyTorch still scales, by
            # (1 / (norm + 1e-6)) * max_norm < 1.
            max_norm = f32(np.sqrt(np.sum(flat.numpy().astype(np.float64) ** 2)))
        out.case(case, "clip_grad_norm", max_norm=max_norm, tensors=len(sizes))
        params = [torch.nn.Parameter(torch.zeros(k)) for k in sizes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        out.put(case, "g", flat)
        out.put(case, "norm", norm.reshape(1))
        out.put(case, "clipped", torch.cat([p.grad for p in params]))

    clip("clip.over", (101,), 3.0, max_norm=f32(5.0))
    clip("clip.under", (101,), 3.0, max_norm=f32(100.0))
    clip("clip.at_norm", (101,), 0.03, at_norm=True)
    clip("clip.multi", (50, 101, 7), 1.0, max_norm=f32(2.5))


FILES = (
    ("activations.safetensors", activations),
    ("pooling.safetensors", pooling),
    ("batchnorm.safetensors", batchnorm),
    ("losses.safetensors", losses),
    ("conv_linear.safetensors", conv_linear),
    ("optim.safetensors", optim),
    ("zoo.safetensors", zoo_goldens.zoo),
    ("zoo_mlp_state.safetensors", zoo_goldens.state_file),
)


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else HERE
    torch.set_num_threads(1)  # one summation order
    torch.use_deterministic_algorithms(True)
    total = 0
    for name, fill in FILES:
        golden = GoldenFile(name)
        fill(golden)
        path, size = golden.write(out_dir)
        total += size
        cases = len([k for k in golden.metadata if not k.startswith("_")])
        print("%s: %d cases, %d tensors, %d bytes" % (path, cases, len(golden.tensors), size))
    path, size = zoo_goldens.write_listing(out_dir)
    total += size
    print("%s: %d models" % (path, len(zoo_goldens.LISTED)))
    print("total %d bytes (torch %s)" % (total, torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

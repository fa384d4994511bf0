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

    def pool(case, op, k, s, p, include=None):
        params = dict(kernel=k, stride=s, pad=p)
        if include is not None:
            params["count_include_pad"] = include
        out.case(case, op, **params)
        x = leaf(randn(*shape))
        if op == "max_pool2d":
            y = F.max_pool2d(x, k, s, p)
        else:
            y = F.avg_pool2d(x, k, s, p, count_include_pad=include)
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


FILES = (
    ("activations.safetensors", activations),
    ("pooling.safetensors", pooling),
    ("batchnorm.safetensors", batchnorm),
    ("losses.safetensors", losses),
    ("conv_linear.safetensors", conv_linear),
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
    print("total %d bytes (torch %s)" % (total, torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

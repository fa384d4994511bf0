#!/usr/bin/python3
"""PyTorch definitions of cudl's model zoo (include/cudl/zoo.h).

Each function here builds the torch.nn.Module that computes what the zoo
function of the same name builds in cudl, with module names chosen so that
`model.state_dict()` keys are exactly cudl's parameter names
(cudl_model_param_name); the only keys PyTorch has in addition are batch
norm's `*.num_batches_tracked` counters, which cudl does not keep (it skips
them when loading). So a cudl checkpoint loads into these modules with
`load_state_dict`, and their state_dict, saved as safetensors, loads into
cudl (cudl_model_load).

    mlp(in_features, widths, activation, classes)   cudl_zoo_mlp
    small_cnn(in_channels, classes, dropout)        cudl_zoo_small_cnn
    resnet(depth, in_channels, classes, plain)      cudl_zoo_resnet

Used by tests/golden/zoo_goldens.py (the parity goldens of
tests/unit/test_zoo.cpp) and by the model benchmarks. Needs PyTorch
(Debian's python3-torch, 1.13; run with /usr/bin/python3). Weights start
with PyTorch's default initialisation (cudl: CUDL_INIT_PYTORCH_DEFAULT draws
from the same distributions, from its own generator).

    /usr/bin/python3 benchmarks/models.py resnet20 --in-channels 1
prints a model's state_dict names, shapes and parameter count.
"""

import argparse
import json
import math
import os
import struct
import sys

import torch
from torch import nn
import torch.nn.functional as F

# cudl_activation_type, by the names used here, with PyTorch's default alpha
# (negative slope for leaky ReLU, saturation for ELU).
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}

BN_MOMENTUM = 0.1  # cudl_model_add_batchnorm as the zoo calls it
BN_EPS = 1e-5


def _activation(name, alpha=None):
    """x -> activation(x), as cudl_model_add_activation(type, alpha)."""
    if name not in ACTIVATIONS:
        raise ValueError("activation %r: one of %s" % (name, ", ".join(ACTIVATIONS)))
    if alpha is None:
        alpha = DEFAULT_ALPHA.get(name, 0.0)
    if name == "sigmoid":
        return torch.sigmoid
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return F.relu
    if name == "leaky_relu":
        return lambda x: F.leaky_relu(x, alpha)
    return lambda x: F.elu(x, alpha)


def _features(shape):
    """in_features from an int or a per-sample shape (flattened)."""
    if isinstance(shape, int):
        return shape
    return int(math.prod(shape))


class MLP(nn.Module):
    """Flatten, then Linear + activation for each hidden width, then a
    Linear to the classes. Names: hidden.0, hidden.1, ..., fc."""

    def __init__(self, in_features, widths, activation="relu", classes=10, alpha=None):
        super().__init__()
        sizes = [_features(in_features)] + list(widths)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.fc = nn.Linear(sizes[-1], classes)
        self.activation_name = activation
        self.act = _activation(activation, alpha)

    def forward(self, x):
        x = torch.flatten(x, 1)
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.fc(x)


def mlp(in_features, widths, activation="relu", classes=10, alpha=None):
    """cudl_zoo_mlp: in_features is an int or the per-sample input shape."""
    return MLP(in_features, widths, activation, classes, alpha)


def _bn(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class SmallCNN(nn.Module):
    """conv1 (3x3, 32, pad 1, no bias) bn1 relu maxpool2, conv2 (3x3, 64) bn2
    relu maxpool2, dropout, fc1 (128) relu, dropout, fc2 (classes)."""

    def __init__(self, in_channels=1, classes=10, dropout=0.25, input_size=None):
        super().__init__()
        if input_size is None:
            input_size = (28, 28) if in_channels == 1 else (32, 32)
        h, w = input_size
        if h < 4 or w < 4:
            raise ValueError("the small CNN needs images of at least 4x4")
        self.conv1 = _conv3x3(in_channels, 32)
        self.bn1 = _bn(32)
        self.conv2 = _conv3x3(32, 64)
        self.bn2 = _bn(64)
        self.drop1 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(64 * (h // 2 // 2) * (w // 2 // 2), 128)
        self.drop2 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.drop1(torch.flatten(x, 1))
        x = self.drop2(F.relu(self.fc1(x)))
        return self.fc2(x)


def small_cnn(in_channels=1, classes=10, dropout=0.25, input_size=None):
    """cudl_zoo_small_cnn; input_size (H, W) defaults to 28x28 for one
    channel and 32x32 otherwise (it sets fc1's input width)."""
    return SmallCNN(in_channels, classes, dropout, input_size)


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN, ReLU between; with shortcut=True the input (or its
    1x1-conv + BN projection, `downsample`, where the shape changes) is
    added before the last ReLU: torchvision's BasicBlock."""

    def __init__(self, cin, cout, stride, shortcut=True):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = _bn(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = _bn(cout)
        self.shortcut = shortcut
        self.downsample = None
        if shortcut and (stride != 1 or cin != cout):
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _bn(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return F.relu(out)


class ResNet(nn.Module):
    """CIFAR-style ResNet (He et al. 2016, section 4.2): depth 6n + 2, conv1
    (3x3, 16) bn1 relu, three stages of n BasicBlocks with 16, 32, 64
    channels (stride 2 at the first block of stages 2 and 3), global
    average pooling, fc. plain=True drops every shortcut."""

    def __init__(self, depth=20, in_channels=3, classes=10, plain=False):
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError("depth %d is not 6n + 2 with n >= 1" % depth)
        n = (depth - 2) // 6
        self.depth, self.plain = depth, plain
        self.conv1 = _conv3x3(in_channels, 16)
        self.bn1 = _bn(16)
        cin = 16
        for stage, cout in enumerate((16, 32, 64), start=1):
            blocks = []
            for b in range(n):
                stride = 2 if stage > 1 and b == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride, shortcut=not plain))
                cin = cout
            setattr(self, "layer%d" % stage, nn.Sequential(*blocks))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def resnet(depth, in_channels=3, classes=10, plain=False):
    """cudl_zoo_resnet: ResNet-depth (plain=False) or the plain net."""
    return ResNet(depth, in_channels, classes, plain)


def by_name(name, in_channels=3, classes=10, input_size=None):
    """"resnet20" ... "resnet110", "plain20" ..., "small_cnn", "mlp" (two
    hidden layers of 256 and 128, ReLU) for images of in_channels x H x W."""
    if input_size is None:
        input_size = (28, 28) if in_channels == 1 else (32, 32)
    for prefix, plain in (("resnet", False), ("plain", True)):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return resnet(int(name[len(prefix):]), in_channels, classes, plain)
    if name == "small_cnn":
        return small_cnn(in_channels, classes, 0.25, input_size)
    if name == "mlp":
        return mlp((in_channels,) + tuple(input_size), (256, 128), "relu", classes)
    raise ValueError("unknown model %r" % name)


def state_entries(model):
    """[(name, shape, trainable)] of model.state_dict() without
    num_batches_tracked: what cudl_model_param_name lists."""
    params = {name for name, _ in model.named_parameters()}
    return [(name, tuple(t.shape), name in params)
            for name, t in model.state_dict().items()
            if not name.endswith(".num_batches_tracked")]


def parameter_count(model):
    """(trainable scalars, buffer scalars without num_batches_tracked)."""
    entries = state_entries(model)
    trainable = sum(math.prod(s) for _, s, t in entries if t)
    buffers = sum(math.prod(s) for _, s, t in entries if not t)
    return trainable, buffers


# ---- state_dicts in safetensors files (torch 1.13 has no safetensors) ----

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I32": torch.int32, "I64": torch.int64}


def load_safetensors(path):
    """{name: tensor} of a safetensors file (a cudl checkpoint: cudl_model_save),
    checked by scripts/safetensors_spec.py; model.load_state_dict(...) takes
    it (PyTorch supplies batch norm's num_batches_tracked)."""
    scripts = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    import safetensors_spec as spec
    with open(path, "rb") as f:
        image = f.read()
    _, header, data = spec.parse(image)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=_DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


def save_safetensors(state_dict, path):
    """A state_dict as safetensors.torch.save_file writes it (little-endian,
    tensors in name order), for cudl_model_load; num_batches_tracked is
    written as I64, which cudl skips."""
    codes = {v: k for k, v in _DTYPES.items()}
    header, blobs, offset = {}, [], 0
    for name in sorted(state_dict):
        t = state_dict[name].detach().contiguous().cpu()
        blob = t.numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main(argv):
    parser = argparse.ArgumentParser(description="List a zoo model's state_dict.")
    parser.add_argument("name", help="resnet20, plain56, small_cnn, mlp, ...")
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args(argv[1:])
    model = by_name(args.name, args.in_channels, args.classes)
    for name, shape, trainable in state_entries(model):
        print("%-32s %-16s %s" % (name, "x".join(map(str, shape)) or "scalar",
                                  "parameter" if trainable else "buffer"))
    trainable, buffers = parameter_count(model)
    print("%d parameters, %d buffer values" % (trainable, buffers))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

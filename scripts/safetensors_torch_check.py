#!/usr/bin/env python3
"""cudl's safetensors files against PyTorch's `safetensors` package (the
reference implementation), where it is installed: on the GPU machine.

  safetensors_torch_check.py BUILD_DIR

1. cudl writes the interop set (tests/interop/safetensors_interop write);
   safetensors.torch.load_file reads it: names, dtypes, shapes, bytes and
   metadata must equal the set defined in scripts/safetensors_spec.py.
2. safetensors.torch.save_file writes the same set; cudl reads and checks it
   (safetensors_interop check).
Exits non-zero with a message on any mismatch.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_spec as spec  # noqa: E402

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def tensor_bytes(t):
    # reshape(-1): PyTorch 2 refuses to view a 0-dim tensor as bytes.
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def main():
    build = sys.argv[1]
    tool = os.path.join(build, "tests", "interop", "safetensors_interop")
    expected = spec.expected_tensors()
    with tempfile.TemporaryDirectory() as tmp:
        from_cudl = os.path.join(tmp, "from_cudl.safetensors")
        subprocess.run([tool, "write", from_cudl], check=True)
        loaded = load_file(from_cudl)
        if set(loaded) != set(expected):
            sys.exit("names differ: %s vs %s" % (sorted(loaded), sorted(expected)))
        for name, (k, dtype, shape, data) in expected.items():
            t = loaded[name]
            if t.dtype != TORCH_DTYPES[dtype] or list(t.shape) != shape:
                sys.exit("%s: %s %s, expected %s %s" % (name, t.dtype, list(t.shape), dtype, shape))
            if tensor_bytes(t) != data:
                sys.exit("%s: bytes differ" % name)
        with safe_open(from_cudl, framework="pt") as f:
            if f.metadata() != spec.METADATA:
                sys.exit("metadata differs: %r" % f.metadata())
        print("safetensors %s read cudl's file: %d tensors and metadata equal"
              % (__import__("safetensors").__version__, len(expected)))

        from_torch = os.path.join(tmp, "from_torch.safetensors")
        tensors = {}
        for name, (k, dtype, shape, data) in expected.items():
            if data:
                t = torch.frombuffer(bytearray(data), dtype=TORCH_DTYPES[dtype]).reshape(shape)
            else:
                t = torch.empty(shape, dtype=TORCH_DTYPES[dtype])
            tensors[name] = t
        save_file(tensors, from_torch, metadata=spec.METADATA)
        subprocess.run([tool, "check", from_torch], check=True)
        print("cudl read the file safetensors.torch.save_file wrote: equal")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train a small MLP on XOR with the cudl Python binding, save it, load it
back from the weights file alone and check its predictions.

    CUDL_LIBRARY=build/src/libcudl.so PYTHONPATH=python python3 examples/python/train_xor.py [--device cpu|cuda|auto] [--out DIR]

(or `pip install ./python` first; docs/python.md). Exits 1 unless the
trained network classifies all four inputs correctly.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

import cudl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", help="directory for xor.safetensors (default: a temporary one)")
    args = parser.parse_args()

    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    labels = np.array([0, 1, 1, 0], dtype=np.int32)

    with cudl.Context(args.device, seed=3) as ctx, tempfile.TemporaryDirectory() as tmp:
        print("cudl %s on %s" % (cudl.library_version(), ctx.device_name))
        model = cudl.Model.zoo(ctx, "mlp", input_shape=(2,), hidden=(8,),
                               activation="tanh", classes=2)
        model.compile(max_batch=4).init("xavier_uniform")
        optimizer = cudl.Optimizer(model, "sgd", lr=0.5, momentum=0.9)
        for step in range(1, args.steps + 1):
            loss = model.train_step(x, labels, optimizer)
            if step % 100 == 0 or step == 1:
                print("step %4d  loss %.5f" % (step, loss))

        path = os.path.join(args.out or tmp, "xor.safetensors")
        model.save(path, {"example": "train_xor.py"})
        # The file carries the architecture: no need to rebuild the model.
        with cudl.Model.load_file(ctx, path, max_batch=4) as loaded:
            probabilities = loaded.predict_proba(x)
            classes = probabilities.argmax(axis=1)
        for row, p, c in zip(x, probabilities, classes):
            print("%s -> class %d (p = %.4f)" % (row.astype(int).tolist(), c, p[c]))
        if not np.array_equal(classes, labels):
            print("train_xor: the network did not learn XOR", file=sys.stderr)
            return 1
        print("all four XOR inputs classified correctly; weights in %s"
              % (path if args.out else "a temporary directory"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

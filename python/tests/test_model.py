"""Models through the binding: training, prediction against independent
computations, model and weights files, and the `cudl` tool's own results."""

import gzip
import json
import os
import re
import struct
import subprocess
import sys
import unittest

import numpy as np

import cudl

from helpers import REPO, scratch_dir

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.int32)


def safetensors_metadata(path):
    """The __metadata__ of a safetensors file, read from the format itself
    (8-byte little-endian header length, then the JSON header)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length)).get("__metadata__", {})


class Training(unittest.TestCase):
    def test_xor_mlp_reaches_full_accuracy(self):
        with cudl.Context("cpu", seed=3) as ctx:
            model = cudl.Model.zoo(ctx, "mlp", input_shape=(2,), hidden=(8,),
                                   activation="tanh", classes=2)
            model.compile(4).init("xavier_uniform")
            opt = cudl.Optimizer(model, "sgd", lr=0.5, momentum=0.9)
            before = model.param("fc.weight")
            first = model.train_step(XOR_X, XOR_Y, opt)
            self.assertFalse(np.array_equal(before, model.param("fc.weight")))
            for _ in range(300):
                loss = model.train_step(XOR_X, XOR_Y, opt)
            self.assertEqual(opt.steps, 301)
            self.assertLess(loss, 0.05)
            self.assertLess(loss, first)
            np.testing.assert_array_equal(model.predict_classes(XOR_X), XOR_Y)
            eval_loss, accuracy = model.evaluate(XOR_X, XOR_Y)
            self.assertEqual(accuracy, 1.0)
            self.assertTrue(model.training)  # predict and evaluate restore it
            proba = model.predict_proba(XOR_X)
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
            self.assertTrue((proba[np.arange(4), XOR_Y] > 0.9).all())

    def test_backward_needs_a_target(self):
        with cudl.Context("cpu") as ctx:
            model = cudl.Model.zoo(ctx, "mlp", input_shape=(2,), classes=2).compile(4)
            model.forward(XOR_X)
            with self.assertRaises(cudl.CudlError) as caught:
                model.backward()
            self.assertIn("cudl_model_backward", str(caught.exception))
            with self.assertRaises(cudl.ShapeError) as caught:
                model.forward(np.zeros((5, 2), np.float32))  # max_batch is 4
            self.assertIn("1 to 4 rows", str(caught.exception))
            with self.assertRaises(cudl.InvalidArgumentError):
                cudl.Optimizer(model, "sgd", lr=-1.0)

    def test_precision(self):
        x = np.random.default_rng(4).standard_normal((4, 6)).astype(np.float32)
        weights = os.path.join(scratch_dir(self), "w.safetensors")
        with cudl.Context("cpu", seed=2) as ctx:
            reference = cudl.Model.zoo(ctx, "mlp", input_shape=(6,), hidden=(5,), classes=3)
            reference.compile(4).init().save(weights)
            model = cudl.Model.zoo(ctx, "mlp", input_shape=(6,), hidden=(5,), classes=3)
            model.set_precision("tf32")  # f32 on the CPU
            model.compile(4).load(weights)
            np.testing.assert_array_equal(model.predict(x), reference.predict(x))
            with self.assertRaises(cudl.InvalidArgumentError) as caught:
                model.set_precision("fp99")
            self.assertIn("fp99", str(caught.exception))


def conv3x3(x, w):
    """Convolution of x [N, C, H, W] with w [K, C, 3, 3], stride 1, pad 1."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    height, width = x.shape[2:]
    out = np.zeros((x.shape[0], w.shape[0], height, width))
    for r in range(3):
        for s in range(3):
            out += np.einsum("nchw,kc->nkhw", padded[:, :, r:r + height, s:s + width],
                             w[:, :, r, s])
    return out


def batchnorm_eval(x, p, name):
    shape = (1, -1, 1, 1)
    scale = p[name + ".weight"] / np.sqrt(p[name + ".running_var"] + 1e-5)
    return ((x - p[name + ".running_mean"].reshape(shape)) * scale.reshape(shape)
            + p[name + ".bias"].reshape(shape))


def maxpool2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


class PredictAgainstNumPy(unittest.TestCase):
    """The zoo's networks in evaluation mode, recomputed in float64 NumPy
    from the weights read back through the binding."""

    def test_mlp(self):
        rng = np.random.default_rng(11)
        x = rng.standard_normal((5, 3, 4), dtype=np.float32)
        with cudl.Context("cpu", seed=5) as ctx:
            model = cudl.Model.zoo(ctx, "mlp", input_shape=(3, 4), hidden=(16, 8),
                                   activation="relu", classes=4)
            model.compile(2).init("pytorch_default")  # 5 rows: 3 batches
            got = model.predict(x)
            p = model.state_dict()
        h = x.reshape(5, -1).astype(np.float64)
        for layer in ("hidden.0", "hidden.1"):
            h = np.maximum(h @ p[layer + ".weight"].T + p[layer + ".bias"], 0)
        want = h @ p["fc.weight"].T + p["fc.bias"]
        self.assertEqual(got.shape, (5, 4))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    def test_small_cnn_with_batch_norm_statistics(self):
        rng = np.random.default_rng(12)
        x = rng.standard_normal((3, 2, 8, 8), dtype=np.float32)
        with cudl.Context("cpu", seed=6) as ctx:
            model = cudl.Model.zoo(ctx, "small_cnn", input_shape=(2, 8, 8), classes=3,
                                   dropout=0.5)
            model.compile(3).init()
            # Statistics and affine terms away from their identity values,
            # so that evaluation mode is really checked.
            for bn, channels in (("bn1", 32), ("bn2", 64)):
                model.set_param(bn + ".running_mean", rng.standard_normal(channels) * 0.1)
                model.set_param(bn + ".running_var", rng.uniform(0.5, 2.0, channels))
                model.set_param(bn + ".weight", rng.uniform(0.5, 1.5, channels))
                model.set_param(bn + ".bias", rng.standard_normal(channels) * 0.1)
            got = model.predict(x)
            p = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
        h = maxpool2(np.maximum(batchnorm_eval(conv3x3(x, p["conv1.weight"]), p, "bn1"), 0))
        h = maxpool2(np.maximum(batchnorm_eval(conv3x3(h, p["conv2.weight"]), p, "bn2"), 0))
        h = np.maximum(h.reshape(3, -1) @ p["fc1.weight"].T + p["fc1.bias"], 0)
        want = h @ p["fc2.weight"].T + p["fc2.bias"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


class Files(unittest.TestCase):
    def test_model_file_and_weights_round_trip(self):
        tmp = scratch_dir(self)
        weights = os.path.join(tmp, "net.safetensors")
        x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
        with cudl.Context("cpu", seed=9) as ctx:
            model = cudl.Model.from_file(ctx, os.path.join(REPO, "examples/models/small-cnn.json"))
            model.compile(3).init()
            text = model.describe()
            model.save(weights, {"note": "from the binding"})
            want = model.predict(x)
            meta = safetensors_metadata(weights)
            self.assertEqual(meta["note"], "from the binding")
            self.assertEqual(meta["cudl.architecture"], text)
            # From the weights file alone.
            loaded = cudl.Model.load_file(ctx, weights, max_batch=3)
            self.assertEqual(loaded.describe(), text)
            np.testing.assert_array_equal(loaded.predict(x), want)
            # From the model file's text, then the weights.
            parsed = cudl.Model.parse(ctx, text).compile(3)
            self.assertFalse(np.array_equal(parsed.predict(x), want))
            parsed.load(weights)
            np.testing.assert_array_equal(parsed.predict(x), want)
            for name, value in model.state_dict().items():
                np.testing.assert_array_equal(parsed.param(name), value)
            # A weights file without the model's tensors is refused.
            other = cudl.Model.zoo(ctx, "mlp", input_shape=(1, 28, 28), classes=10).compile(1)
            with self.assertRaises(cudl.ShapeError):
                other.load(weights)

    def test_model_file_errors_name_the_place(self):
        with cudl.Context("cpu") as ctx:
            bad = ('{"version": 1, "input_shape": [2], "layers": '
                   '[{"kind": "linear", "name": "fc", "out_features": 0}], '
                   '"loss": "cross_entropy"}')
            with self.assertRaises(cudl.FileFormatError) as caught:
                cudl.Model.parse(ctx, bad, "bad.json")
            self.assertEqual(caught.exception.status_name, "CUDL_ERR_FILE_VALUE")
            self.assertIn("bad.json: layers[0]", str(caught.exception))
            with self.assertRaises(cudl.CudlIOError):
                cudl.Model.from_file(ctx, os.path.join(scratch_dir(self), "none.json"))


class DatasetErrors(unittest.TestCase):
    def test_reader_errors_carry_the_library_text(self):
        tmp = scratch_dir(self)
        subprocess.run([sys.executable, os.path.join(REPO, "tests/cli/tiny_mnist.py"),
                        tmp, "6", "3", "4"], check=True)
        with cudl.Context("cpu") as ctx:
            with self.assertRaises(cudl.CudlIOError) as caught:
                cudl.Dataset.load(ctx, "mnist", os.path.join(tmp, "none"))
            self.assertIn("none", str(caught.exception))
            # Labels 0..2 with 2 classes: a label out of range.
            with self.assertRaises(cudl.FileFormatError) as caught:
                cudl.Dataset.load_idx(ctx, os.path.join(tmp, "train-images-idx3-ubyte.gz"),
                                      os.path.join(tmp, "train-labels-idx1-ubyte"), classes=2)
            self.assertEqual(caught.exception.status_name, "CUDL_ERR_FILE_VALUE")
            ds = cudl.Dataset.load_idx(ctx, os.path.join(tmp, "train-images-idx3-ubyte.gz"),
                                       os.path.join(tmp, "train-labels-idx1-ubyte"), classes=3)
            self.assertEqual(ds.labels().tolist(), [0, 1, 2, 0, 1, 2])
            self.assertIsNone(ds.class_names)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


@unittest.skipUnless(os.environ.get("CUDL_CLI"), "CUDL_CLI (the cudl tool) not set")
class AgainstTheTool(unittest.TestCase):
    """A weights file written by `cudl train`, evaluated by `cudl eval` and
    by the binding on the same test images."""

    def test_eval_matches_cudl_eval_and_the_dataset_reader(self):
        tmp = scratch_dir(self)
        cli = os.environ["CUDL_CLI"]
        subprocess.run([sys.executable, os.path.join(REPO, "tests/cli/tiny_mnist.py"),
                        tmp, "96", "40", "8"], check=True)
        common = ["--data", "mnist", "--data-dir", tmp, "--device", "cpu"]
        subprocess.run([cli, "train", "--model", "small-cnn", "--steps", "2", "--batch", "16",
                        "--out", os.path.join(tmp, "run")] + common,
                       check=True, capture_output=True)
        weights = os.path.join(tmp, "run", "model.safetensors")
        result = subprocess.run([cli, "eval", "--weights", weights] + common,
                                check=True, capture_output=True, text=True)
        match = re.search(r"loss (\d+\.\d+)  accuracy (\d+\.\d+)", result.stdout)
        self.assertIsNotNone(match, result.stdout)
        tool_loss, tool_accuracy = float(match.group(1)), float(match.group(2))

        meta = safetensors_metadata(weights)
        mean, std = float(meta["normalize.mean"]), float(meta["normalize.std"])
        images = read_idx(os.path.join(tmp, "t10k-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(tmp, "t10k-labels-idx1-ubyte")).astype(np.int32)
        x = ((images.astype(np.float32) / np.float32(255) - np.float32(mean))
             / np.float32(std))[:, None]
        with cudl.Context("cpu") as ctx:
            # The library's reader gives the same images, labels and
            # normalisation as the files and the tool.
            test_set = cudl.Dataset.load(ctx, "mnist", tmp, train=False)
            self.assertEqual((len(test_set), test_set.image_shape, test_set.classes),
                             (40, (1, 8, 8), 10))
            self.assertEqual(test_set.class_names, [str(i) for i in range(10)])
            np.testing.assert_array_equal(test_set.images()[:, 0], images)
            np.testing.assert_array_equal(test_set.labels(), labels)
            train_mean, train_std = cudl.Dataset.load(ctx, "mnist", tmp).channel_stats()
            self.assertEqual(train_mean[0], np.float32(mean))
            self.assertEqual(train_std[0], np.float32(std))
            np.testing.assert_array_equal(test_set.normalized_images(train_mean, train_std), x)
            model = cudl.Model.load_file(ctx, weights, max_batch=40)
            loss, accuracy = model.evaluate(x, labels)
            classes = model.predict_classes(x)
        self.assertEqual(round(accuracy, 4), tool_accuracy)
        self.assertAlmostEqual(loss, tool_loss, delta=5.1e-5)
        self.assertAlmostEqual(accuracy, float((classes == labels).mean()))


if __name__ == "__main__":
    unittest.main()

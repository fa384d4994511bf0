"""Tensors to and from NumPy, and errors raised before or by the library."""

import unittest

import numpy as np

import cudl
from cudl import _lib


class TensorRoundTrip(unittest.TestCase):
    def setUp(self):
        self.ctx = cudl.Context("cpu")
        self.addCleanup(self.ctx.close)

    def round_trip(self, array, dtype=None):
        with cudl.Tensor.from_numpy(self.ctx, array, dtype) as t:
            return t.shape, t.dtype, t.device, t.to_numpy()

    def test_values_shapes_and_dtypes(self):
        rng = np.random.default_rng(7)
        cases = [
            (rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32), "f32"),
            (rng.standard_normal((7,)).astype(np.float16), "f16"),
            (rng.integers(-2 ** 31, 2 ** 31 - 1, (3, 4), dtype=np.int32), "i32"),
            (np.array(3.5, dtype=np.float32), "f32"),            # a scalar
            (np.zeros((0, 3), dtype=np.float32), "f32"),          # empty
        ]
        for array, name in cases:
            shape, dtype, device, back = self.round_trip(array)
            self.assertEqual(shape, array.shape)
            self.assertEqual(dtype, name)
            self.assertEqual(device, "cpu")
            self.assertEqual(back.dtype, array.dtype)
            self.assertEqual(back.shape, array.shape)
            np.testing.assert_array_equal(back, array)

    def test_non_contiguous_input_is_copied_in_c_order(self):
        base = np.arange(24, dtype=np.float32).reshape(4, 6)
        for view in (base.T, base[:, ::2], base[::-1]):
            self.assertFalse(view.flags.c_contiguous)
            shape, _, _, back = self.round_trip(view)
            self.assertEqual(shape, view.shape)
            np.testing.assert_array_equal(back, view)

    def test_other_dtypes_need_an_explicit_dtype(self):
        array = np.linspace(0, 1, 5)  # float64
        with self.assertRaisesRegex(TypeError, "f32 \\(float32\\)"):
            cudl.Tensor.from_numpy(self.ctx, array)
        _, dtype, _, back = self.round_trip(array, "f32")
        self.assertEqual(dtype, "f32")
        np.testing.assert_array_equal(back, array.astype(np.float32))
        with self.assertRaisesRegex(TypeError, "bfloat16"):
            cudl.Tensor(self.ctx, (2,), "bf16")

    def test_copy_from_checks_shape_and_dtype(self):
        with cudl.Tensor(self.ctx, (2, 2)) as t:
            np.testing.assert_array_equal(t.to_numpy(), np.zeros((2, 2), np.float32))
            with self.assertRaisesRegex(ValueError, "shape"):
                t.copy_from(np.zeros((4,), np.float32))
            with self.assertRaisesRegex(TypeError, "dtype"):
                t.copy_from(np.zeros((2, 2), np.int32))
            t.copy_from(np.full((2, 2), 2.5, np.float32))
            np.testing.assert_array_equal(t.to_numpy(), np.full((2, 2), 2.5))


class Errors(unittest.TestCase):
    def setUp(self):
        self.ctx = cudl.Context("cpu")
        self.addCleanup(self.ctx.close)

    def test_bad_shape_is_shape_error_with_the_library_text(self):
        with self.assertRaises(cudl.ShapeError) as caught:
            cudl.Tensor(self.ctx, (3, -1))
        error = caught.exception
        self.assertEqual(error.status, 2)
        self.assertEqual(error.status_name, "CUDL_ERR_SHAPE")
        self.assertIn("dimension 1 is negative", str(error))
        self.assertEqual(str(error), "%s [CUDL_ERR_SHAPE]" % self.ctx.last_error)
        self.assertIsInstance(error, ValueError)
        with self.assertRaises(cudl.ShapeError):
            cudl.Tensor(self.ctx, (1,) * 6)  # more than CUDL_MAX_DIMS

    def test_every_class_matches_the_library_status(self):
        classes = {
            cudl.InvalidArgumentError: "CUDL_ERR_INVALID_ARGUMENT",
            cudl.ShapeError: "CUDL_ERR_SHAPE",
            cudl.DtypeError: "CUDL_ERR_DTYPE",
            cudl.DeviceMismatchError: "CUDL_ERR_DEVICE_MISMATCH",
            cudl.UnsupportedError: "CUDL_ERR_UNSUPPORTED",
            cudl.OutOfMemoryError: "CUDL_ERR_OUT_OF_MEMORY",
            cudl.NoDeviceError: "CUDL_ERR_NO_DEVICE",
            cudl.CudaError: "CUDL_ERR_CUDA",
            cudl.CudlIOError: "CUDL_ERR_IO",
            cudl.NumericsError: "CUDL_ERR_NUMERICS",
            cudl.InternalError: "CUDL_ERR_INTERNAL",
        }
        for cls, name in classes.items():
            self.assertEqual(_lib.lib.cudl_status_name(cls.status).decode(), name)
            self.assertIs(type(cudl.errors.error_for(cls.status, "m")), cls)
        for status in range(20, 33):
            self.assertTrue(_lib.lib.cudl_status_name(status).decode()
                            .startswith("CUDL_ERR_FILE_"))
            error = cudl.errors.error_for(status, "m")
            self.assertIsInstance(error, cudl.FileFormatError)
            self.assertEqual(error.status, status)

    def test_misuse_is_refused_before_the_library(self):
        calls = []
        real = _lib.lib.cudl_tensor_copy_to_host
        t = cudl.Tensor(self.ctx, (2,))
        t.close()
        t.close()  # closing twice is harmless
        try:
            _lib.lib.cudl_tensor_copy_to_host = lambda *a: calls.append(a) or real(*a)
            with self.assertRaisesRegex(ValueError, "Tensor is closed"):
                t.to_numpy()
        finally:
            _lib.lib.cudl_tensor_copy_to_host = real
        self.assertEqual(calls, [])
        with self.assertRaisesRegex(TypeError, "cudl.Context"):
            cudl.Tensor(None, (2,))
        with self.assertRaisesRegex(TypeError, "cudl.Context"):
            cudl.Model.zoo(None, "mlp", input_shape=(2,), classes=2)
        with self.assertRaisesRegex(TypeError, "ints"):
            cudl.Tensor(self.ctx, (2.5,))
        with self.assertRaisesRegex(ValueError, "device"):
            cudl.Context("tpu")


class Cleanup(unittest.TestCase):
    def test_context_manager_releases_everything(self):
        with cudl.Context("cpu") as ctx:
            before = ctx.memory_stats()["bytes_in_use"]
            with cudl.Tensor(ctx, (1024,)) as t:
                self.assertGreaterEqual(ctx.memory_stats()["bytes_in_use"], before + 4096)
            self.assertTrue(t.closed)
            self.assertEqual(ctx.memory_stats()["bytes_in_use"], before)
            kept = cudl.Tensor(ctx, (8,))
            model = cudl.Model.zoo(ctx, "mlp", input_shape=(2,), classes=2).compile(2)
            opt = cudl.Optimizer(model, "adam", lr=1e-3)
        # Leaving the context closed what was still open, first.
        self.assertTrue(ctx.closed)
        for obj in (kept, model, opt):
            self.assertTrue(obj.closed)
        with self.assertRaisesRegex(ValueError, "closed"):
            kept.to_numpy()
        with self.assertRaisesRegex(ValueError, "closed"):
            model.predict(np.zeros((1, 2), np.float32))
        with self.assertRaisesRegex(ValueError, "Context is closed"):
            cudl.Tensor(ctx, (1,))

    def test_collected_objects_release_their_memory(self):
        import gc
        with cudl.Context("cpu") as ctx:
            before = ctx.memory_stats()["bytes_in_use"]
            t = cudl.Tensor(ctx, (4096,))
            self.assertGreater(ctx.memory_stats()["bytes_in_use"], before)
            del t
            gc.collect()
            self.assertEqual(ctx.memory_stats()["bytes_in_use"], before)

    def test_objects_left_open_at_exit_are_quiet(self):
        import os
        import subprocess
        import sys
        code = ("import numpy as np, cudl\n"
                "ctx = cudl.Context('cpu')\n"
                "t = cudl.Tensor.from_numpy(ctx, np.ones(3, np.float32))\n"
                "m = cudl.Model.zoo(ctx, 'mlp', input_shape=(2,), classes=2).compile(2)\n"
                "m.forward(np.zeros((2, 2), np.float32))\n"
                "o = cudl.Optimizer(m)\n"
                "cycle = [t]; cycle.append(cycle)\n"
                "print('done')\n")
        package = os.path.dirname(os.path.dirname(os.path.abspath(cudl.__file__)))
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=package))
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "done\n", ""))

    def test_a_garbage_cycle_releases_the_context_last(self):
        import os
        import subprocess
        import sys
        # The collector finalises a cycle's objects in any order and clears
        # weak references first; in a subprocess, as getting it wrong may
        # crash. Both orders of the cycle's list are tried.
        code = ("import gc, cudl\n"
                "from cudl import _lib\n"
                "order = []\n"
                "for name in ('cudl_context_destroy', 'cudl_tensor_destroy'):\n"
                "    real = getattr(_lib.lib, name)\n"
                "    setattr(_lib.lib, name, (lambda real, name: lambda h: (order.append(name),"
                " real(h)))(real, name))\n"
                "for first in (0, 1):\n"
                "    ctx = cudl.Context('cpu')\n"
                "    t = cudl.Tensor(ctx, (3,))\n"
                "    cycle = [ctx, t] if first == 0 else [t, ctx]\n"
                "    cycle.append(cycle)\n"
                "    ctx.cycle = t.cycle = cycle\n"
                "    del ctx, t, cycle\n"
                "    gc.collect()\n"
                "    print(' '.join(n[5:-8] for n in order))\n"
                "    order.clear()\n")
        package = os.path.dirname(os.path.dirname(os.path.abspath(cudl.__file__)))
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=package))
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.split("\n")[:2]
        for line in lines:
            self.assertEqual(line.split(), ["tensor", "context"], line)


class Library(unittest.TestCase):
    def test_version_matches_the_binding(self):
        self.assertEqual(cudl.library_version(), cudl.__version__)
        self.assertEqual(tuple(int(p) for p in cudl.__version__.split(".")[:2]),
                         _lib.EXPECTED_VERSION)


if __name__ == "__main__":
    unittest.main()

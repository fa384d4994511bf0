"""The package installs with pip from the repository, offline, and finds
the library the documented ways."""

import importlib.util
import os
import shutil
import subprocess
import sys
import unittest

from helpers import REPO, scratch_dir


def have(module):
    # Looked up, not imported: importing setuptools here, after NumPy has
    # imported distutils, trips setuptools' distutils shim.
    return importlib.util.find_spec(module) is not None


class Loading(unittest.TestCase):
    def run_python(self, code, path, env_changes):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CUDL_LIBRARY")}
        env.update(env_changes)
        env["PYTHONPATH"] = path
        return subprocess.run([sys.executable, "-c", code], env=env, cwd=scratch_dir(self),
                              capture_output=True, text=True)

    def test_a_wrong_cudl_library_is_named(self):
        missing = os.path.join(scratch_dir(self), "libcudl-missing.so")
        result = self.run_python("import cudl", os.path.join(REPO, "python"),
                                 {"CUDL_LIBRARY": missing})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ImportError: cudl: libcudl.so not found; tried:", result.stderr)
        self.assertIn("CUDL_LIBRARY=" + missing, result.stderr)

    @unittest.skipUnless(have("pip") and have("setuptools"),
                         "pip or setuptools missing (python3-pip, python3-setuptools)")
    def test_pip_install_offline_with_a_bundled_library(self):
        library = os.environ.get("CUDL_LIBRARY")
        if not library:
            self.skipTest("CUDL_LIBRARY (the library to bundle) not set")
        tmp = scratch_dir(self)
        # A copy of the package: building in place would write build/ and
        # *.egg-info into the repository.
        source = os.path.join(tmp, "src")
        shutil.copytree(os.path.join(REPO, "python"), source,
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info",
                                                      "lib"))
        os.mkdir(os.path.join(source, "cudl", "lib"))
        shutil.copy(os.path.realpath(library), os.path.join(source, "cudl", "lib", "libcudl.so"))
        target = os.path.join(tmp, "site")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
             "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--target", target, source],
            capture_output=True, text=True, env=dict(os.environ, PIP_NO_INPUT="1"))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        bundled = os.path.join(target, "cudl", "lib", "libcudl.so")
        self.assertTrue(os.path.isfile(bundled))
        code = ("import cudl, numpy as np\n"
                "print(cudl.__file__)\nprint(cudl.library_path)\n"
                "with cudl.Context('cpu') as ctx:\n"
                "    t = cudl.Tensor.from_numpy(ctx, np.arange(3, dtype=np.float32))\n"
                "    print(t.to_numpy().tolist())\n")
        result = self.run_python(code, target, {})
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], os.path.join(target, "cudl", "__init__.py"))
        self.assertEqual(lines[1], bundled)  # found without CUDL_LIBRARY
        self.assertEqual(lines[2], "[0.0, 1.0, 2.0]")


if __name__ == "__main__":
    unittest.main()

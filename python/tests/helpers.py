"""Shared by the binding's tests: where the repository and a scratch
directory are."""

import os
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scratch_dir(test):
    """A fresh directory removed after the test (test: a TestCase)."""
    path = tempfile.mkdtemp(prefix="cudl-py-", dir=os.environ.get("CUDL_TEST_TMPDIR"))
    test.addCleanup(_remove_tree, path)
    return path


def _remove_tree(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)

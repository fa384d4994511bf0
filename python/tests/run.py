"""Run some of the binding's test modules, or a script, for ctest.

    run.py MODULE...        unittest modules of python/tests
    run.py --script FILE    a script (an example) run as __main__

The package is imported from the source tree (python/). Exit 77 (ctest's
skip), saying why, when NumPy is missing, when every test was skipped, or
when CUDL_PYTHON_TESTS_SKIP gives a reason (tests/python/CMakeLists.txt
sets it for a library Python cannot load, such as a ThreadSanitizer build).
"""

import os
import runpy
import sys
import unittest

if os.environ.get("CUDL_PYTHON_TESTS_SKIP"):
    print("skipped: " + os.environ["CUDL_PYTHON_TESTS_SKIP"])
    sys.exit(77)

try:
    import numpy  # noqa: F401
except ImportError:
    print("skipped: NumPy is not installed for %s (Debian: python3-numpy, which "
          "scripts/install-deps.sh installs)" % sys.executable)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]


def main(args):
    if args[:1] == ["--script"]:
        sys.argv = args[1:]
        runpy.run_path(args[1], run_name="__main__")
        return 0
    suite = unittest.defaultTestLoader.loadTestsFromNames(args)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        print("skipped: every test was skipped (reasons above)")
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Shared by the tests: which bulkup is tested, the source tree, the tools.

Two ways to run the tests:
- from the source tree (the ctest python_binding): the package python/bulkup
  is put first on sys.path and loads $BULKUP_LIBRARY or build/libbulkup.so;
- against an installed package (the ctest python_package, run_installed.py):
  with BULKUP_TEST_INSTALLED=1, sys.path is left alone and the import must
  not come from the source tree.

BULKUP_TEST_SOURCE_DIR: the source tree (examples, scripts); BULKUP_CLI:
the bulkup program (for `bulkup serve` and `bulkup shard`), default
build/bulkup of the source tree.
"""

import os
import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1]
SOURCE_DIR = Path(os.environ.get("BULKUP_TEST_SOURCE_DIR") or PYTHON_DIR.parent)
INSTALLED = os.environ.get("BULKUP_TEST_INSTALLED") == "1"

if not INSTALLED and str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

import bulkup  # noqa: E402

PACKAGE_DIR = Path(bulkup.__file__).resolve().parent
if INSTALLED and PYTHON_DIR in PACKAGE_DIR.parents:
    raise RuntimeError(f"BULKUP_TEST_INSTALLED=1 but bulkup was imported from the "
                       f"source tree ({PACKAGE_DIR})")


def cli() -> Path:
    """The bulkup program: $BULKUP_CLI, else the source tree's build/bulkup."""
    return Path(os.environ.get("BULKUP_CLI") or SOURCE_DIR / "build" / "bulkup")

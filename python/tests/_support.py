"""Shared by the tests: the package on sys.path, the source tree, the
library's location."""

import os
import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1]
SOURCE_DIR = Path(os.environ.get("BULKUP_TEST_SOURCE_DIR") or PYTHON_DIR.parent)

if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

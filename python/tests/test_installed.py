"""The installed package is self-contained: its own libbulkup.so, the C
library's version, a readable help(). The installation checks run only
against an installed package (BULKUP_TEST_INSTALLED=1, run_installed.py)."""

import importlib.metadata
import os
import pydoc
import re
import sys
import unittest
from pathlib import Path

import _support
import bulkup


def header_version() -> str:
    text = (_support.SOURCE_DIR / "include" / "bulkup" / "version.h").read_text()
    return ".".join(re.search(rf"^#define BULKUP_VERSION_{w} (\d+)", text, re.M).group(1)
                    for w in ("MAJOR", "MINOR", "PATCH"))


@unittest.skipUnless(_support.INSTALLED, "the installed package only (run_installed.py)")
class InstalledTest(unittest.TestCase):
    def test_imported_from_the_environment(self):
        self.assertNotIn("BULKUP_LIBRARY", os.environ)
        self.assertTrue(_support.PACKAGE_DIR.is_relative_to(Path(sys.prefix).resolve()),
                        f"{_support.PACKAGE_DIR} is not under {sys.prefix}")
        self.assertNotEqual(sys.prefix, sys.base_prefix, "not run in a venv")

    def test_the_packaged_library_is_loaded(self):
        path = Path(bulkup.library_path())
        self.assertEqual(path, _support.PACKAGE_DIR / "libbulkup.so")
        self.assertTrue(path.is_file() and not path.is_symlink())
        # and the process has that file mapped, no other libbulkup
        maps = Path("/proc/self/maps").read_text()
        mapped = {line.split()[-1] for line in maps.splitlines() if "libbulkup" in line}
        self.assertEqual(mapped, {str(path)})

    def test_recorded_by_pip(self):
        dist = importlib.metadata.distribution("bulkup")
        files = {str(f) for f in dist.files or []}
        self.assertIn("bulkup/libbulkup.so", files)
        self.assertIn("bulkup/_version.py", files)
        wheel = dist.read_text("WHEEL") or ""
        self.assertIn("Root-Is-Purelib: false", wheel)
        self.assertRegex(wheel, r"Tag: py3-none-linux_\w+")

    def test_versions_agree(self):
        v = header_version()
        self.assertEqual(bulkup.__version__, v)
        self.assertEqual(bulkup.version(), v)
        self.assertEqual(importlib.metadata.version("bulkup"), v)


class HelpTest(unittest.TestCase):
    def test_help_names_the_calls(self):
        text = pydoc.render_doc(bulkup, renderer=pydoc.plaintext)
        for name in ("upload_files", "RequestsSettings", "CloudUploadSettings", "DataType",
                     "get_all_model_iteration_uids", "UploadResult"):
            self.assertIn(name, text)
        for name in bulkup.__all__:
            obj = getattr(bulkup, name)
            if callable(obj):
                self.assertTrue(obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring")

    def test_version_attribute(self):
        self.assertEqual(bulkup.__version__, header_version())


if __name__ == "__main__":
    unittest.main()

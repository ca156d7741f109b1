"""The ctypes mirrors have the C structs' exact layout: size and every
field's offset, as the C compiler computes them (python/tests/layout.c)."""

import os
import shutil
import subprocess
import tempfile
import unittest

import _support  # noqa: F401  (sys.path)
from bulkup import _native


def c_layout():
    """{struct: {"sizeof": n, field: offset}} from the layout helper: the
    one CMake built ($BULKUP_LAYOUT_HELPER), else compiled here with cc."""
    helper = os.environ.get("BULKUP_LAYOUT_HELPER")
    tmp = None
    if not helper:
        cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
        if cc is None:
            raise unittest.SkipTest("no C compiler and no BULKUP_LAYOUT_HELPER")
        tmp = tempfile.mkdtemp()
        helper = os.path.join(tmp, "layout")
        subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror",
                        "-I", str(_support.SOURCE_DIR / "include"),
                        str(_support.PYTHON_DIR / "tests" / "layout.c"), "-o", helper],
                       check=True)
    try:
        out = subprocess.run([helper], check=True, capture_output=True, text=True).stdout
    finally:
        if tmp:
            shutil.rmtree(tmp)
    layout = {}
    for line in out.splitlines():
        struct, name, value = line.split()
        layout.setdefault(struct, {})[name] = int(value)
    return layout


class LayoutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = c_layout()

    def test_every_mirrored_struct_is_measured(self):
        self.assertEqual(set(self.c), set(_native.STRUCTS))

    def test_sizes_and_offsets(self):
        for cname, pytype in _native.STRUCTS.items():
            with self.subTest(struct=cname):
                c = self.c[cname]
                self.assertEqual(ctypes_sizeof(pytype), c["sizeof"], f"sizeof({cname})")
                fields = [f[0] for f in pytype._fields_]
                self.assertEqual(fields, [k for k in c if k != "sizeof"],
                                 f"{cname}: fields or their order")
                for name in fields:
                    self.assertEqual(getattr(pytype, name).offset, c[name],
                                     f"offsetof({cname}, {name})")


def ctypes_sizeof(t):
    import ctypes
    return ctypes.sizeof(t)


if __name__ == "__main__":
    unittest.main()

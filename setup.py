"""Build of the Python package: CMake compiles libbulkup, and the shared
library goes inside the package as bulkup/libbulkup.so.

Everything declarative is in pyproject.toml; this file only adds what
setuptools cannot say there: the version (read from include/bulkup/version.h,
the C library's), the CMake step, and a platform wheel tag.

Environment:
  BULKUP_CMAKE_ARGS   extra arguments for the CMake configure step (split
                      on spaces), e.g. "-DCMAKE_C_COMPILER=clang"
  CMAKE_BUILD_PARALLEL_LEVEL  compile jobs (default: the CPU count)
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

try:
    from wheel.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover - pip needs wheel to build one anyway
    bdist_wheel = None

ROOT = Path(__file__).resolve().parent
LIBRARY_NAME = "libbulkup.so"


def library_version() -> str:
    """MAJOR.MINOR.PATCH from the C headers (BULKUP_VERSION_*)."""
    text = (ROOT / "include" / "bulkup" / "version.h").read_text()
    parts = []
    for which in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"^#define BULKUP_VERSION_{which} (\d+)\s*$", text, re.M)
        if not m:
            raise RuntimeError(f"include/bulkup/version.h: no BULKUP_VERSION_{which}")
        parts.append(m.group(1))
    return ".".join(parts)


class build_py_with_library(build_py):
    """build_py, then libbulkup with CMake into the package's build copy."""

    def run(self) -> None:
        super().run()
        if self.dry_run:
            return
        built = self._cmake()
        dest = Path(self.build_lib) / "bulkup"
        dest.mkdir(parents=True, exist_ok=True)
        # A regular file (no symlink chain), loaded by path: its SONAME
        # (libbulkup.so.MAJOR) does not matter to ctypes.
        shutil.copyfile(built, dest / LIBRARY_NAME)
        os.chmod(dest / LIBRARY_NAME, 0o755)
        (dest / "_version.py").write_text(
            '"""Written by setup.py at build time."""\n\n'
            f'__version__ = "{library_version()}"\n')

    def get_outputs(self, include_bytecode=1):
        out = list(super().get_outputs(include_bytecode))
        dest = Path(self.build_lib) / "bulkup"
        out += [str(dest / LIBRARY_NAME), str(dest / "_version.py")]
        return out

    def _cmake(self) -> Path:
        build_temp = Path(self.get_finalized_command("build").build_temp)
        cmake_dir = (build_temp / "cmake").resolve()
        cmake = shutil.which("cmake")
        if cmake is None:
            raise RuntimeError("building bulkup needs cmake (Debian: apt-get install cmake)")
        configure = [
            cmake, "-S", str(ROOT), "-B", str(cmake_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBULKUP_BUILD_TESTS=OFF", "-DBULKUP_BUILD_BENCH=OFF",
            "-DBULKUP_BUILD_TOOL=OFF", "-DBULKUP_SANITIZE=",
        ] + os.environ.get("BULKUP_CMAKE_ARGS", "").split()
        self.announce("configuring libbulkup: " + " ".join(configure), level=2)
        subprocess.run(configure, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        subprocess.run([cmake, "--build", str(cmake_dir), "--target", "bulkup",
                        "--parallel", jobs], check=True)
        real = sorted(cmake_dir.glob(LIBRARY_NAME + ".*.*.*"))
        if not real:
            raise RuntimeError(f"CMake built no {LIBRARY_NAME}.X.Y.Z in {cmake_dir}")
        return real[-1]


cmdclass = {"build_py": build_py_with_library}

if bdist_wheel is not None:
    class bdist_wheel_platform(bdist_wheel):
        """A platform wheel (the package holds a native library) that any
        Python 3 can use: the library is loaded with ctypes, so the tag is
        py3-none-<platform>, not tied to one CPython ABI."""

        def finalize_options(self) -> None:
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            _python, _abi, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = bdist_wheel_platform

setup(version=library_version(), cmdclass=cmdclass)

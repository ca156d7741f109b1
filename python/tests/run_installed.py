#!/usr/bin/python3
"""The Python package as a user gets it: built, installed, tested.

  run_installed.py SOURCE_DIR WORK_DIR [--cli PATH] [--layout-helper PATH]

1. copies the source tree as a clean clone has it (the files git tracks or
   would track, with local changes; no build directory) to WORK_DIR/src;
2. makes a venv (/usr/bin/python3 -m venv --system-site-packages) and runs
   `pip install --no-build-isolation --no-index .` in the copy: offline, the
   README's command;
3. runs `pip wheel --no-build-isolation --no-deps --no-index .` in the copy,
   removes the copy, and installs the wheel into a second fresh venv;
4. runs python/tests (unittest) in each venv against the installed
   package: BULKUP_TEST_INSTALLED=1, no BULKUP_LIBRARY, no PYTHONPATH (the
   second venv: only the tests folder on it), the working directory outside
   any source tree; the first venv runs all of them, the second (the wheel,
   with no source copy left) all but the struct layout test.
Exits non-zero on the first failure.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PYTHON = "/usr/bin/python3"  # Debian's: its python3-* packages are the point


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    t = time.monotonic()
    subprocess.run([str(c) for c in cmd], check=True, **kw)
    print(f"-- {time.monotonic() - t:.1f} s", flush=True)


def clean_copy(src: Path, dest: Path) -> None:
    """The tree as a clone has it: git's tracked and untracked-not-ignored
    files (so uncommitted edits are tested too); without git, everything
    but build directories."""
    try:
        out = subprocess.run(["git", "-C", str(src), "ls-files", "-z", "--cached",
                              "--others", "--exclude-standard"],
                             check=True, capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files is None:
        shutil.copytree(src, dest, symlinks=True,
                        ignore=shutil.ignore_patterns("build*", ".git", "*.egg-info"))
        return
    for rel in files:
        s = src / rel
        if not os.path.lexists(s):  # deleted in the work tree
            continue
        d = dest / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_symlink():
            os.symlink(os.readlink(s), d)
        else:
            shutil.copy2(s, d)


def venv(path: Path, with_pip: bool = True) -> Path:
    """A fresh venv of Debian's Python that sees its packages. Without its
    own pip, `python -m pip` is Debian's, installing into the venv."""
    run([PYTHON, "-m", "venv", "--system-site-packages"]
        + ([] if with_pip else ["--without-pip"]) + [path])
    return path / "bin" / "python"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--cli", type=Path, help="the bulkup program (bulkup serve, bulkup shard)")
    ap.add_argument("--layout-helper", type=Path)
    args = ap.parse_args()
    source, work = args.source.resolve(), args.work.resolve()
    t0 = time.monotonic()
    probe = subprocess.run([PYTHON, "-c", "import ensurepip, venv, setuptools, wheel, pip"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print("skipped: " + PYTHON + " lacks venv/pip/setuptools/wheel (Debian: python3-venv "
              "python3-pip python3-setuptools python3-wheel):\n" + probe.stderr)
        return 77

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("BULKUP_LIBRARY", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_CACHE_DIR=str(work / "pip-cache"), PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")

    copy = work / "src"
    clean_copy(source, copy)
    if (copy / "build").exists():
        raise SystemExit("the clean copy has a build directory")

    py_a = venv(work / "venv-pip")
    run([py_a, "-m", "pip", "install", "--no-build-isolation", "--no-index", "."],
        cwd=copy, env=env)
    wheels = work / "wheels"
    run([py_a, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
         "-w", wheels, "."], cwd=copy, env=env)
    found = sorted(wheels.glob("bulkup-*.whl"))
    if len(found) != 1:
        raise SystemExit(f"expected one wheel in {wheels}, found {found}")
    print(f"-- wheel: {found[0].name}", flush=True)
    shutil.rmtree(copy)  # nothing may depend on the build tree from here on
    py_b = venv(work / "venv-wheel", with_pip=False)  # (ensurepip is slow)
    run([py_b, "-m", "pip", "install", "--no-index", found[0]], cwd=work, env=env)

    test_env = dict(env, BULKUP_TEST_INSTALLED="1", BULKUP_TEST_SOURCE_DIR=str(source))
    if args.cli:
        test_env["BULKUP_CLI"] = str(args.cli.resolve())
    if args.layout_helper:
        test_env["BULKUP_LAYOUT_HELPER"] = str(args.layout_helper.resolve())
    tests = source / "python" / "tests"
    run([py_a, "-m", "unittest", "discover", "-v", "-s", tests, "-t", tests],
        cwd=work, env=test_env)
    run([py_b, "-m", "unittest", "-v", "test_installed", "test_surface", "test_upload", "test_encord"],
        cwd=work, env=dict(test_env, PYTHONPATH=str(tests)))
    print(f"-- python package: built, installed twice and tested in "
          f"{time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

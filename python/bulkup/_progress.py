"""The progress bar of upload_files and of the Dataset calls: tqdm's, when
tqdm is importable and standard error is a terminal (or when asked for)."""

from __future__ import annotations

import sys
from typing import Any, Optional


def tqdm_available() -> bool:
    """True when the tqdm package can be imported."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """A tqdm bar counting finished items (succeeded, failed or cancelled),
    fed with the C engine's progress snapshots."""

    def __init__(self, total: Optional[int], desc: str):
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr,
                         dynamic_ncols=True, leave=True)
        self._failed = 0

    def update(self, succeeded: int, failed: int, cancelled: int, bytes_sent: int) -> None:
        """Move the bar to `succeeded + failed + cancelled` finished items."""
        done = succeeded + failed + cancelled
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)
        if failed != self._failed:
            self._failed = failed
            self._bar.set_postfix(failed=failed, refresh=False)

    def close(self) -> None:
        self._bar.close()


def make_bar(enabled: Optional[bool], total: Optional[int], desc: str) -> Optional[ProgressBar]:
    """The bar to draw, or None.

    enabled None: a bar when tqdm is importable and sys.stderr is a
    terminal; True: a bar whenever tqdm is importable (ImportError names
    the package otherwise); False: no bar.
    """
    if enabled is False:
        return None
    if enabled is None and not (_isatty(sys.stderr) and tqdm_available()):
        return None
    if not tqdm_available():
        raise ImportError("progress_bar=True needs the tqdm package "
                          "(Debian: apt-get install python3-tqdm; or pip install tqdm)")
    return ProgressBar(total, desc)

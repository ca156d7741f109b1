"""bulkup for Python: the C library libbulkup through ctypes.

The surface the Encord Python SDK's users know (its RequestsSettings,
CloudUploadSettings, DataType and get_all_model_iteration_uids), plus
upload_files(), which runs bulkup's upload engine:

    from bulkup import upload_files, RequestsSettings, CloudUploadSettings

    result = upload_files(
        [("a.png", "https://bucket.example/a.png?X-Goog-Signature=..."), ...],
        RequestsSettings(read_timeout=60),
        CloudUploadSettings(max_retries=5, allow_failures=True),
        workers=16)
    for f in result.failures:
        print(f.index, f.path, f.error, f.http_status, f.attempts, f.message)

No build step: the package loads libbulkup.so from $BULKUP_LIBRARY, from
beside the package, from the source tree's build/, or from the system
(ctypes.util.find_library).
"""

from ._native import BulkupError, BulkupValueError, library_path
from .data_type import DataType
from .model import get_all_model_iteration_uids
from .settings import CloudUploadSettings, RequestsSettings
from .upload import ItemResult, Summary, UploadFailed, UploadResult, upload_files

try:
    from ._version import __version__  # written by the package build (setup.py)
except ImportError:  # a source checkout: the linked library's
    def __getattr__(name: str) -> str:
        if name == "__version__":
            return version()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BulkupError",
    "BulkupValueError",
    "CloudUploadSettings",
    "DataType",
    "ItemResult",
    "RequestsSettings",
    "Summary",
    "UploadFailed",
    "UploadResult",
    "get_all_model_iteration_uids",
    "library_path",
    "upload_files",
    "version",
]


def version() -> str:
    """The linked library's version ("0.1.0")."""
    from ._native import lib

    return lib().bulkup_version_string().decode()

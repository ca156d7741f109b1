"""bulkup: fast bulk uploads, with the Encord SDK's upload calls.

Install from the source tree (offline; CMake compiles the C library
libbulkup into the package):

    pip install --no-build-isolation .

The Encord SDK's calls, same names, arguments and results (SDK v0.1.190),
run by bulkup's C engine:

    from bulkup import EncordUserClient

    client = EncordUserClient.create_with_ssh_private_key(
        ssh_private_key_path="~/.ssh/encord")     # or $ENCORD_SSH_KEY_FILE / $ENCORD_SSH_KEY
    dataset = client.get_dataset("<dataset hash>")
    groups = dataset.create_image_group(["a.png", "b.png"], title="holiday")
    # [ImageGroup({"data_hash": ..., "title": "holiday"})]

    dataset.create_dicom_series(paths)   # {"data_hash", "title"}
    dataset.upload_video(path)           # Video({"data_hash", "title"})
    dataset.upload_image(path)           # Image({"data_hash", "title", "file_link"})

Any (path, signed URL) pairs, without the Encord API:

    from bulkup import upload_files, RequestsSettings, CloudUploadSettings

    result = upload_files(
        [("a.png", "https://bucket.example/a.png?X-Goog-Signature=..."), ...],
        RequestsSettings(read_timeout=60),
        CloudUploadSettings(max_retries=5, allow_failures=True),
        workers=16)
    for f in result.failures:
        print(f.index, f.path, f.error, f.http_status, f.attempts, f.message)

Both draw a tqdm progress bar when tqdm is installed and standard error is
a terminal (progress_bar=False turns it off), and take an on_progress
callback. Exceptions are the SDK's (bulkup.exceptions: EncordException,
CloudUploadError, AuthenticationError, ...) with its messages.

The package loads the libbulkup.so inside it; $BULKUP_LIBRARY overrides
that, and a source checkout's python/bulkup uses the checkout's build/.
"""

from . import exceptions
from ._native import BulkupError, BulkupValueError, library_path
from .data_type import DataType
from .dataset import Dataset, Image, ImageGroup, Video
from .exceptions import CloudUploadError, EncordException
from .model import get_all_model_iteration_uids
from .settings import CloudUploadSettings, RequestsSettings
from .upload import ItemResult, Summary, UploadFailed, UploadResult, upload_files
from .user_client import EncordUserClient

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
    "CloudUploadError",
    "CloudUploadSettings",
    "DataType",
    "Dataset",
    "EncordException",
    "EncordUserClient",
    "Image",
    "ImageGroup",
    "ItemResult",
    "RequestsSettings",
    "Summary",
    "UploadFailed",
    "UploadResult",
    "Video",
    "exceptions",
    "get_all_model_iteration_uids",
    "library_path",
    "upload_files",
    "version",
]


def version() -> str:
    """The linked C library's version ("0.1.0"), bulkup_version_string()."""
    from ._native import lib

    return lib().bulkup_version_string().decode()

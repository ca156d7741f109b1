"""Dataset: the Encord SDK's upload calls (encord.dataset.Dataset), each one
bulkup library call (bulkup/api.h):

    create_image_group  -> bulkup_create_image_group
    create_dicom_series -> bulkup_create_dicom_series
    upload_video        -> bulkup_upload_video
    upload_image        -> bulkup_upload_image

Same names, parameters, defaults and return values as SDK v0.1.190, with
the differences that make them fast: the uploads run in bulkup's engine
(max_workers=None means its default, not the SDK's 4 threads, and an int
sets the number of transfers), signed URLs are fetched while uploads run,
an expired URL is renewed, and a failure report lists every failed file.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Callable, Collection, Dict, Iterable, List,
                    Optional, Union)
from uuid import UUID

from . import _native
from ._progress import make_bar
from .exceptions import (CloudUploadError, EncordException, RequestException, TimeOutError,
                         from_api_refusal)
from .settings import CloudUploadSettings
from .upload import ItemResult, Summary, UploadResult, _progress, _result

if TYPE_CHECKING:  # pragma: no cover
    from .user_client import EncordUserClient

__all__ = ["Dataset", "ImageGroup", "Video", "Image"]

PathArg = Union[str, Path]
Folder = Union[UUID, str, Any]  # a UUID, its text, or a storage folder with .uuid


class _Record(dict):
    """A dict whose keys read as attributes too (the SDK's ORM objects)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ImageGroup(_Record):
    """An image group (data unit) created by create_image_group:
    {"data_hash", "title"}."""


class Video(_Record):
    """A video created by upload_video: {"data_hash", "title"}."""


class Image(_Record):
    """An image created by upload_image: {"data_hash", "title", "file_link"}."""


# What each call is named in the SDK's messages.
_WHAT = {
    "image_group": "image group creation",
    "dicom": "the DICOM series creation",
    "video": "video upload",
    "image": "the image upload",
}
# The SDK's message when no upload succeeded (client.py), per call.
_ALL_FAILED = {
    "image_group": "All image uploads failed. Image group was not created.",
    "dicom": "DICOM files upload failed. The DICOM series was not created.",
    "video": "Video upload failed.",
    "image": "Image upload failed.",
}


def raise_for(rc: int, detail: str, what: str, kind: Optional[str] = None,
              result: Optional[UploadResult] = None) -> None:
    """Raise the SDK's exception for a failed library call (rc < 0) whose
    bulkup_last_error_message() was `detail`."""
    L = _native.lib()
    name = L.bulkup_err_name(rc).decode()
    detail = detail or L.bulkup_strerror(rc).decode()
    if name == "EHTTP":
        raise from_api_refusal(detail, result=result)
    if name == "EUPLOAD" and result is not None and result.failures:
        f = result.failures[0]
        title = os.path.basename(f.path or "")
        raise CloudUploadError(
            f"Error uploading file '{title}' to signed url: '{f.url}'.\n"
            f"Response data:\n\tstatus code: '{f.http_status}'\n\terror: {f.error} after "
            f"{f.attempts} attempt(s): {f.message}\n"
            f"({len(result.failures)} of {result.summary.submitted} uploads failed: "
            f"every one is in .result.failures)",
            code=name, detail=detail, result=result)
    if name == "EALLFAILED" and kind is not None:
        raise EncordException(_ALL_FAILED[kind], code=name, detail=detail, result=result)
    if name == "EJOB" and kind is not None:
        raise EncordException(f"An error has occurred during {_WHAT[kind]}. {detail}",
                              code=name, detail=detail, result=result)
    if name == "ECANCELED":
        # the job ended CANCELLED (the SDK: ValueError, "this should never happen")
        raise ValueError(f"{what}: {detail}")
    if name == "ETIMEDOUT":
        raise TimeOutError(f"{what}: {detail}", code=name, detail=detail, result=result)
    if name in ("ECURL", "EIO"):
        raise RequestException(f"{what}: {detail}", code=name, detail=detail, result=result)
    if name in ("EINVAL", "EPARSE", "ESCHEME"):
        raise _native.BulkupValueError(rc, f"{what}: {detail}")
    raise EncordException(f"{what}: {detail}", code=name, detail=detail, result=result)


def _folder_text(folder: Optional[Folder]) -> Optional[bytes]:
    if folder is None:
        return None
    if not isinstance(folder, (str, UUID)) and hasattr(folder, "uuid"):
        folder = folder.uuid
    return str(folder).encode("utf-8")


class Dataset:
    """An Encord dataset, from EncordUserClient.get_dataset(): its fields and
    the upload calls."""

    def __init__(self, client: "EncordUserClient", dataset_hash: str, title: str,
                 description: str, dataset_type: str, backing_folder_uuid: Optional[str]):
        """Not for direct use: see EncordUserClient.get_dataset()."""
        self._client = client
        self._hash = dataset_hash
        self._title = title
        self._description = description
        self._type = dataset_type
        self._folder = backing_folder_uuid

    @property
    def dataset_hash(self) -> str:
        """The dataset's hash (its id)."""
        return self._hash

    @property
    def title(self) -> str:
        """The dataset's title."""
        return self._title

    @property
    def description(self) -> str:
        """The dataset's description."""
        return self._description

    @property
    def dataset_type(self) -> str:
        """The dataset's storage type, as the API gives it."""
        return self._type

    @property
    def backing_folder_uuid(self) -> Optional[UUID]:
        """The storage folder backing the dataset, None for a mirror dataset."""
        return UUID(self._folder) if self._folder else None

    def __repr__(self) -> str:
        return f"<Dataset {self._hash} {self._title!r}>"

    # ---- the SDK's calls -------------------------------------------------------

    def create_image_group(
        self,
        file_paths: Iterable[PathArg],
        max_workers: Optional[int] = None,
        cloud_upload_settings: CloudUploadSettings = CloudUploadSettings(),
        title: Optional[str] = None,
        *,
        create_video: bool = True,
        folder: Optional[Folder] = None,
        on_progress: Optional[Callable[[Summary], None]] = None,
        progress_bar: Optional[bool] = None,
    ) -> List[ImageGroup]:
        """Create an image group in Encord storage.

        Args:
            file_paths: A list of paths to images, e.g.,
                ['/home/user/data/img1.png', '/home/user/data/img2.png'].
            max_workers: bulkup's number of concurrent transfers; None (default)
                is bulkup's default (the SDK ignores this argument and uses 4 threads).
            cloud_upload_settings: Settings for uploading data into the cloud.
            title: The title of the image group. If unspecified, this will be
                randomly generated for you. This title should NOT include an extension.
            create_video: If True, a compressed video is created from the image
                groups; if False, the images are saved as a sequence of images.
            folder: When uploading to a non-mirror dataset, the folder to store the
                files in: a storage folder (with .uuid) or its UUID.
            on_progress: bulkup: called with a Summary as the uploads go.
            progress_bar: bulkup: a tqdm bar (None: when stderr is a terminal).

        Returns:
            A list containing the object(s) describing the created data unit(s):
            ImageGroup({"data_hash", "title"}).

        Raises:
            EncordException: a path that does not exist; "All image uploads failed.
                Image group was not created."; the job's errors.
            CloudUploadError: an upload failed (allow_failures false): no group made.
            UploadOperationNotSupportedError, AuthenticationError, ...: the API's refusals.
        """
        units = self._run("image_group", list(file_paths), cloud_upload_settings, title,
                          folder, create_video=create_video, max_workers=max_workers,
                          on_progress=on_progress, progress_bar=progress_bar)
        return [ImageGroup({"data_hash": u["data_hash"], "title": u["title"]}) for u in units]

    def create_dicom_series(
        self,
        file_paths: Collection[PathArg],
        cloud_upload_settings: CloudUploadSettings = CloudUploadSettings(),
        title: Optional[str] = None,
        folder: Optional[Folder] = None,
        *,
        max_workers: Optional[int] = None,
        on_progress: Optional[Callable[[Summary], None]] = None,
        progress_bar: Optional[bool] = None,
    ) -> Dict:
        """Upload a DICOM series to Encord storage.

        Args:
            file_paths: A collection of paths to DICOM files.
            cloud_upload_settings: Settings for uploading data into the cloud.
            title: The title of the DICOM series. If unspecified, a random title
                will be generated. This title should NOT include an extension.
            folder: When uploading to a non-mirror dataset, the folder to store the
                files in: a storage folder (with .uuid) or its UUID.
            max_workers, on_progress, progress_bar: bulkup's, as for create_image_group.

        Returns:
            A dictionary describing the created series: {"data_hash", "title"}.
        """
        units = self._run("dicom", list(file_paths), cloud_upload_settings, title, folder,
                          max_workers=max_workers, on_progress=on_progress,
                          progress_bar=progress_bar)
        return {"data_hash": units[0]["data_hash"], "title": units[0]["title"]}

    def upload_video(
        self,
        file_path: PathArg,
        cloud_upload_settings: CloudUploadSettings = CloudUploadSettings(),
        title: Optional[str] = None,
        folder: Optional[Folder] = None,
    ) -> Video:
        """Upload a video to Encord storage.

        Args:
            file_path: Path to the video, e.g., '/home/user/data/video.mp4'.
            cloud_upload_settings: Settings for uploading data into the cloud.
            title: The video title. If unspecified, this will be the file name.
            folder: When uploading to a non-mirror dataset, the folder to store the
                file in: a storage folder (with .uuid) or its UUID.

        Returns:
            Video({"data_hash", "title"}): an object describing the created video.
        """
        u = self._run("video", [file_path], cloud_upload_settings, title, folder)[0]
        return Video({"data_hash": u["data_hash"], "title": u["title"]})

    def upload_image(
        self,
        file_path: PathArg,
        title: Optional[str] = None,
        cloud_upload_settings: CloudUploadSettings = CloudUploadSettings(),
        folder: Optional[Folder] = None,
    ) -> Image:
        """Upload a single image to Encord storage. For sequential images,
        consider create_image_group.

        Args:
            file_path: The file path to the image.
            title: The image title. If unspecified, the file name will be used.
            cloud_upload_settings: Settings for uploading data into the cloud.
            folder: When uploading to a non-mirror dataset, the folder to store the
                file in: a storage folder (with .uuid) or its UUID.

        Returns:
            Image({"data_hash", "title", "file_link"}): the uploaded image
            (file_link: the storage object's key).
        """
        u = self._run("image", [file_path], cloud_upload_settings, title, folder)[0]
        return Image({"data_hash": u["data_hash"], "title": u["title"],
                      "file_link": u["file_link"]})

    # ---- the one implementation -----------------------------------------------

    def _run(self, kind: str, paths: List[PathArg], cloud: CloudUploadSettings,
             title: Optional[str], folder: Optional[Folder], *, create_video: bool = True,
             max_workers: Optional[int] = None,
             on_progress: Optional[Callable[[Summary], None]] = None,
             progress_bar: Optional[bool] = None) -> List[Dict[str, Optional[str]]]:
        L = _native.api_lib()
        # The SDK's checks and messages, before any request (the library
        # checks again: regular file, readable).
        for p in paths:
            if not os.path.exists(p):
                raise EncordException(f"{p} does not point to a file.")
        if not paths:
            raise EncordException(_ALL_FAILED[kind])
        encoded = [os.fsencode(p) for p in paths]

        wo = _native.WorkflowOptionsC()
        L.bulkup_workflow_options_init(wo)
        keep = [self._hash.encode("utf-8")]
        wo.dataset_hash = keep[-1]
        f = _folder_text(folder)
        if f is not None:
            keep.append(f)
            wo.folder_uuid = f
        if title is not None:
            keep.append(str(title).encode("utf-8"))
            wo.title = keep[-1]
        wo.create_video = bool(create_video)
        wo.upload.requests = self._client.requests_settings._to_c()
        wo.upload.cloud = (cloud if cloud is not None else CloudUploadSettings())._to_c()
        if max_workers is not None:
            if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
                raise ValueError(f"max_workers must be a positive int or None, not {max_workers!r}")
            wo.upload.workers = max_workers

        results: Dict[int, ItemResult] = {}
        errors: List[BaseException] = []
        lock = threading.Lock()
        bar = make_bar(progress_bar, len(paths), kind.replace("_", " "))

        def complete(_u, rp):
            try:
                r = _result(rp.contents)
                results[r.index] = r
            except BaseException as e:  # noqa: BLE001
                with lock:
                    errors.append(e)

        def progress(_u, pp):
            try:
                p = pp.contents
                if bar is not None:
                    bar.update(p.succeeded, p.failed, p.cancelled, p.bytes_sent)
                if on_progress is not None:
                    on_progress(_progress(p))
            except BaseException as e:  # noqa: BLE001
                with lock:
                    errors.append(e)

        complete_cb = _native.COMPLETE_FN(complete)
        progress_cb = _native.PROGRESS_FN(progress)
        wo.upload.on_complete = complete_cb
        if bar is not None or on_progress is not None:
            wo.upload.on_progress = progress_cb

        units = ctypes.c_void_p()
        report = ctypes.c_void_p()
        api = self._client._live()
        if kind in ("image_group", "dicom"):
            fn = L.bulkup_create_image_group if kind == "image_group" else L.bulkup_create_dicom_series
            arr = (ctypes.c_char_p * len(encoded))(*encoded)
            call = lambda: fn(api, ctypes.byref(wo), arr, len(encoded),  # noqa: E731
                              ctypes.byref(units), ctypes.byref(report))
        else:
            fn = L.bulkup_upload_video if kind == "video" else L.bulkup_upload_image
            call = lambda: fn(api, ctypes.byref(wo), encoded[0],  # noqa: E731
                              ctypes.byref(units), ctypes.byref(report))
        try:
            rc, detail = self._client.call(call)
        except BaseException:
            if not self._client._abandoned:  # the call ended: its results are ours to free
                if report:
                    L.bulkup_report_free(report)
                if units:
                    L.bulkup_image_group_free(units)
            raise
        finally:
            if bar is not None:
                bar.close()
        result = _report_result(report, results, rc) if report else None
        del keep, complete_cb, progress_cb
        if errors:
            if units:
                L.bulkup_image_group_free(units)
            raise errors[0]
        if rc != 0:
            raise_for(rc, detail, kind, kind, result)
        try:
            return [{"data_hash": _text(L.bulkup_image_group_data_hash(units, i)),
                     "title": _text(L.bulkup_image_group_title(units, i)),
                     "backing_item_uuid": _text(L.bulkup_image_group_backing_item_uuid(units, i)),
                     "file_link": _text(L.bulkup_image_group_file_link(units, i))}
                    for i in range(L.bulkup_image_group_count(units))]
        finally:
            L.bulkup_image_group_free(units)


def _text(v: Optional[bytes]) -> Optional[str]:
    return v.decode("utf-8", "replace") if v is not None else None


def _report_result(report: ctypes.c_void_p, results: Dict[int, ItemResult], rc: int) -> UploadResult:
    """The uploads' UploadResult from the library's report (which is freed)."""
    L = _native.lib()
    try:
        s = _native.SummaryC()
        L.bulkup_report_summary(report, s)
        text = ctypes.c_void_p()
        report_json = ""
        if L.bulkup_report_to_json(report, False, ctypes.byref(text)) == 0:
            report_json = ctypes.string_at(text).decode("utf-8", "replace")
            L.bulkup_free(text)
    finally:
        L.bulkup_report_free(report)
    ordered = [results[i] for i in sorted(results)]
    return UploadResult(
        successes=[r for r in ordered if r.status == "succeeded"],
        failures=[r for r in ordered if r.status != "succeeded"],
        summary=Summary(s.submitted, s.succeeded, s.failed, s.cancelled, s.retries,
                        s.bytes_sent, s.bytes_succeeded, s.elapsed_s),
        code="OK" if rc == 0 else L.bulkup_err_name(rc).decode(),
        report_json=report_json)

"""The C library, loaded with ctypes, and mirrors of its public structs.

Every ctypes.Structure here mirrors a struct of include/bulkup/*.h field
for field, in order and with the same types; python/tests/test_layout.py
checks each one's size and field offsets against the C compiler's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double,
                    c_int, c_int64, c_size_t, c_uint, c_uint64, c_void_p)
from pathlib import Path
from typing import List, Optional

__all__ = ["lib", "api_lib", "library_path", "last_error", "BulkupError", "BulkupValueError"]

# ---- structs (include/bulkup/settings.h, report.h, uploader.h) -----------------


class RequestsSettingsC(Structure):
    """bulkup_requests_settings"""
    _fields_ = [
        ("max_retries", c_int),
        ("backoff_factor", c_double),
        ("connection_retries", c_int),
        ("connect_timeout", c_double),
        ("read_timeout", c_double),
        ("write_timeout", c_double),
    ]


class CloudUploadSettingsC(Structure):
    """bulkup_cloud_upload_settings"""
    _fields_ = [
        ("max_retries_set", c_bool),
        ("max_retries", c_int),
        ("backoff_factor_set", c_bool),
        ("backoff_factor", c_double),
        ("allow_failures", c_bool),
    ]


class BackoffSettingsC(Structure):
    """bulkup_backoff_settings"""
    _fields_ = [
        ("max_delay", c_double),
        ("retry_after_max", c_double),
        ("jitter", c_bool),
    ]


# bulkup_read_fn: int64_t (*)(void *ctx, uint64_t offset, void *buf, size_t len)
READ_FN = CFUNCTYPE(c_int64, c_void_p, c_uint64, c_void_p, c_size_t)


class ItemC(Structure):
    """bulkup_item"""
    _fields_ = [
        ("source", c_int),  # bulkup_source_kind
        ("path", c_char_p),
        ("data", c_void_p),
        ("size", c_uint64),
        ("read", READ_FN),
        ("read_ctx", c_void_p),
        ("url", c_char_p),
        ("title", c_char_p),
        ("data_type", c_int),  # bulkup_data_type
        ("content_type", c_char_p),
        ("cache_control", c_char_p),
        ("headers", POINTER(c_char_p)),
        ("user", c_void_p),
        ("journal_key", c_char_p),
        ("storage", c_int),  # bulkup_storage
    ]


class ProgressC(Structure):
    """bulkup_progress"""
    _fields_ = [
        ("submitted", c_uint64),
        ("succeeded", c_uint64),
        ("failed", c_uint64),
        ("cancelled", c_uint64),
        ("in_flight", c_uint64),
        ("retries", c_uint64),
        ("bytes_submitted", c_uint64),
        ("bytes_sent", c_uint64),
        ("bytes_succeeded", c_uint64),
        ("elapsed_s", c_double),
        ("concurrency", c_uint64),
    ]


class ResultC(Structure):
    """bulkup_result"""
    _fields_ = [
        ("index", c_uint64),
        ("status", c_int),  # bulkup_item_status
        ("error", c_int),  # bulkup_error_kind
        ("attempts", c_int),
        ("http_status", c_int),
        ("path", c_char_p),
        ("title", c_char_p),
        ("url", c_char_p),
        ("message", c_char_p),
        ("response_excerpt", c_void_p),  # may hold NULs: see the length
        ("response_excerpt_len", c_size_t),
        ("bytes_sent", c_uint64),
        ("size", c_uint64),
        ("elapsed_s", c_double),
        ("user", c_void_p),
        ("requests", c_int),
        ("resumable", c_bool),
    ]


class SummaryC(Structure):
    """bulkup_summary"""
    _fields_ = [
        ("submitted", c_uint64),
        ("succeeded", c_uint64),
        ("failed", c_uint64),
        ("cancelled", c_uint64),
        ("retries", c_uint64),
        ("bytes_sent", c_uint64),
        ("bytes_succeeded", c_uint64),
        ("elapsed_s", c_double),
    ]


COMPLETE_FN = CFUNCTYPE(None, c_void_p, POINTER(ResultC))
PROGRESS_FN = CFUNCTYPE(None, c_void_p, POINTER(ProgressC))
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
# Returns a malloc'ed string: declared as c_void_p so that ctypes does not
# convert (and lose) the pointer.
REFRESH_URL_FN = CFUNCTYPE(c_void_p, c_void_p, POINTER(ResultC))


class UploaderOptionsC(Structure):
    """bulkup_uploader_options"""
    _fields_ = [
        ("workers", c_uint),
        ("queue_capacity", c_size_t),
        ("requests", RequestsSettingsC),
        ("cloud", CloudUploadSettingsC),
        ("backoff", BackoffSettingsC),
        ("ca_file", c_char_p),
        ("insecure", c_bool),
        ("content_md5", c_bool),
        ("expect_continue", c_bool),
        ("retry_budget", c_bool),
        ("retry_budget_tokens", c_uint),
        ("upload_buffer_size", c_size_t),
        ("user_agent", c_char_p),
        ("on_complete", COMPLETE_FN),
        ("on_progress", PROGRESS_FN),
        ("progress_interval", c_double),
        ("log", LOG_FN),
        ("log_level", c_int),  # bulkup_log_level
        ("refresh_url", REFRESH_URL_FN),
        ("journal", c_void_p),  # bulkup_journal *
        ("userdata", c_void_p),
        ("threads", c_uint),
        ("resumable_threshold", c_uint64),
        ("resumable_chunk_size", c_size_t),
        ("no_progress_limit", c_double),
        ("sign_request", c_void_p),  # bulkup_sign_request_fn: not used from Python
        ("sign_userdata", c_void_p),
        ("sign_payload", c_bool),
        ("sign_crc32c", c_bool),
        ("workers_max", c_uint),
        ("http_version", c_int),  # bulkup_http_version
        ("multipart_threshold", c_uint64),
        ("part_size", c_size_t),
    ]


# ---- include/bulkup/api.h --------------------------------------------------------


class ApiOptionsC(Structure):
    """bulkup_api_options"""
    _fields_ = [
        ("base_url", c_char_p),
        ("key_id", c_char_p),
        ("key_file", c_char_p),
        ("key_pem", c_void_p),  # need not be NUL-terminated: a buffer we wipe
        ("key_pem_len", c_size_t),
        ("requests", RequestsSettingsC),
        ("backoff", BackoffSettingsC),
        ("ca_file", c_char_p),
        ("insecure", c_bool),
        ("user_agent", c_char_p),
        ("max_response_size", c_size_t),
        ("log", LOG_FN),
        ("log_level", c_int),  # bulkup_log_level
        ("userdata", c_void_p),
    ]


class WorkflowOptionsC(Structure):
    """bulkup_workflow_options"""
    _fields_ = [
        ("dataset_hash", c_char_p),
        ("folder_uuid", c_char_p),
        ("title", c_char_p),
        ("create_video", c_bool),
        ("files_per_job", c_size_t),
        ("poll_timeout", c_double),
        ("upload", UploaderOptionsC),
    ]


# Every mirrored struct, by its C name (for the layout test).
STRUCTS = {
    "bulkup_requests_settings": RequestsSettingsC,
    "bulkup_cloud_upload_settings": CloudUploadSettingsC,
    "bulkup_backoff_settings": BackoffSettingsC,
    "bulkup_item": ItemC,
    "bulkup_progress": ProgressC,
    "bulkup_result": ResultC,
    "bulkup_summary": SummaryC,
    "bulkup_uploader_options": UploaderOptionsC,
    "bulkup_api_options": ApiOptionsC,
    "bulkup_workflow_options": WorkflowOptionsC,
}

# ---- the library ------------------------------------------------------------------

# (name, restype, argtypes) of every function the binding calls.
_PROTOTYPES = [
    ("bulkup_version_string", c_char_p, []),
    ("bulkup_strerror", c_char_p, [c_int]),
    ("bulkup_err_name", c_char_p, [c_int]),
    ("bulkup_last_error_message", c_char_p, []),
    ("bulkup_requests_settings_init", None, [POINTER(RequestsSettingsC)]),
    ("bulkup_requests_settings_validate", c_int, [POINTER(RequestsSettingsC)]),
    ("bulkup_cloud_upload_settings_init", None, [POINTER(CloudUploadSettingsC)]),
    ("bulkup_cloud_upload_settings_validate", c_int, [POINTER(CloudUploadSettingsC)]),
    ("bulkup_data_type_from_string", c_int, [c_char_p]),
    ("bulkup_data_type_to_string", c_char_p, [c_int]),
    ("bulkup_data_type_from_upper_case_string", c_int, [c_char_p]),
    ("bulkup_data_type_to_upper_case_string", c_char_p, [c_int]),
    ("bulkup_string_set_count", c_size_t, [c_void_p]),
    ("bulkup_string_set_get", c_char_p, [c_void_p, c_size_t]),
    ("bulkup_string_set_free", None, [c_void_p]),
    ("bulkup_get_all_model_iteration_uids", c_int, [POINTER(c_void_p), c_char_p, c_size_t]),
    ("bulkup_error_kind_name", c_char_p, [c_int]),
    ("bulkup_item_status_name", c_char_p, [c_int]),
    ("bulkup_item_init", None, [POINTER(ItemC)]),
    ("bulkup_uploader_options_init", None, [POINTER(UploaderOptionsC)]),
    ("bulkup_uploader_new", c_int, [POINTER(c_void_p), POINTER(UploaderOptionsC)]),
    ("bulkup_uploader_submit", c_int, [c_void_p, POINTER(ItemC), POINTER(c_uint64)]),
    ("bulkup_uploader_finish", c_int, [c_void_p, POINTER(c_void_p)]),
    ("bulkup_uploader_cancel", None, [c_void_p]),
    ("bulkup_uploader_free", None, [c_void_p]),
    ("bulkup_report_summary", None, [c_void_p, POINTER(SummaryC)]),
    ("bulkup_report_to_json", c_int, [c_void_p, c_bool, POINTER(c_void_p)]),
    ("bulkup_report_free", None, [c_void_p]),
    ("bulkup_free", None, [c_void_p]),
]

_PATHS = POINTER(c_char_p)  # const char *const *
_UNITS_FN = [c_void_p, POINTER(WorkflowOptionsC), _PATHS, c_size_t,
             POINTER(c_void_p), POINTER(c_void_p)]
_UNIT_FN = [c_void_p, POINTER(WorkflowOptionsC), c_char_p, POINTER(c_void_p), POINTER(c_void_p)]
# The Encord API client's (bulkup/api.h): bound when present, so that a
# library without them still serves upload_files (api_lib() names what is
# missing).
_API_PROTOTYPES = [
    ("bulkup_api_options_init", None, [POINTER(ApiOptionsC)]),
    ("bulkup_api_new", c_int, [POINTER(c_void_p), POINTER(ApiOptionsC)]),
    ("bulkup_api_key_id", c_char_p, [c_void_p]),
    ("bulkup_api_free", None, [c_void_p]),
    ("bulkup_api_cancel", None, [c_void_p]),
    ("bulkup_api_get_dataset", c_int, [c_void_p, c_char_p, POINTER(c_void_p)]),
    ("bulkup_dataset_hash", c_char_p, [c_void_p]),
    ("bulkup_dataset_title", c_char_p, [c_void_p]),
    ("bulkup_dataset_description", c_char_p, [c_void_p]),
    ("bulkup_dataset_type", c_char_p, [c_void_p]),
    ("bulkup_dataset_backing_folder", c_char_p, [c_void_p]),
    ("bulkup_dataset_free", None, [c_void_p]),
    ("bulkup_workflow_options_init", None, [POINTER(WorkflowOptionsC)]),
    ("bulkup_create_image_group", c_int, _UNITS_FN),
    ("bulkup_create_dicom_series", c_int, _UNITS_FN),
    ("bulkup_upload_video", c_int, _UNIT_FN),
    ("bulkup_upload_image", c_int, _UNIT_FN),
    ("bulkup_image_group_process_hash", c_char_p, [c_void_p]),
    ("bulkup_image_group_count", c_size_t, [c_void_p]),
    ("bulkup_image_group_data_hash", c_char_p, [c_void_p, c_size_t]),
    ("bulkup_image_group_title", c_char_p, [c_void_p, c_size_t]),
    ("bulkup_image_group_backing_item_uuid", c_char_p, [c_void_p, c_size_t]),
    ("bulkup_image_group_file_link", c_char_p, [c_void_p, c_size_t]),
    ("bulkup_image_group_free", None, [c_void_p]),
]

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_path: Optional[str] = None
_missing_api: List[str] = []


def _source_root() -> Optional[Path]:
    """The source tree this package sits in (python/bulkup of a checkout),
    or None for an installed package."""
    here = Path(__file__).resolve().parent
    root = here.parent.parent
    if here.parent.name == "python" and (root / "include" / "bulkup.h").exists():
        return root
    return None


def _candidates() -> List[str]:
    """Where to look for libbulkup.so, in order."""
    out = []
    env = os.environ.get("BULKUP_LIBRARY")
    if env:
        out.append(env)
    here = Path(__file__).resolve().parent
    out.append(str(here / "libbulkup.so"))  # the installed package's own
    root = _source_root()
    if root is not None:
        out.append(str(root / "build" / "libbulkup.so"))  # a checkout's build/
    found = ctypes.util.find_library("bulkup")
    if found:
        out.append(found)
    out.append("libbulkup.so.0")  # the loader's own path (LD_LIBRARY_PATH...)
    return out


def lib() -> ctypes.CDLL:
    """The loaded library, prototypes set (loaded on first use).

    Looked for in: $BULKUP_LIBRARY when set (an explicit choice); the
    libbulkup.so inside this package (what `pip install` put there); when
    the package is used from a source checkout (python/bulkup), that
    checkout's build/ directory; then ctypes.util.find_library("bulkup")
    and the dynamic loader's search path. CDLL releases the GIL during each
    call, so worker threads can run Python callbacks meanwhile.
    """
    global _lib, _lib_path
    with _lock:
        if _lib is not None:
            return _lib
        errors = []
        for cand in _candidates():
            if os.sep in cand and not os.path.exists(cand):
                if cand == os.environ.get("BULKUP_LIBRARY"):
                    errors.append(f"{cand}: no such file (BULKUP_LIBRARY)")
                continue
            try:
                handle = ctypes.CDLL(cand)
            except OSError as e:
                errors.append(f"{cand}: {e}")
                continue
            for name, restype, argtypes in _PROTOTYPES:
                fn = getattr(handle, name)
                fn.restype = restype
                fn.argtypes = argtypes
            _missing_api.clear()
            for name, restype, argtypes in _API_PROTOTYPES:
                try:
                    fn = getattr(handle, name)
                except AttributeError:
                    _missing_api.append(name)
                    continue
                fn.restype = restype
                fn.argtypes = argtypes
            _lib, _lib_path = handle, cand
            return handle
        raise OSError("libbulkup not found: install the package with `pip install "
                      "--no-build-isolation .` from the source tree, or set BULKUP_LIBRARY "
                      "to the path of libbulkup.so (tried: "
                      + "; ".join(errors or ["nothing found"]) + ")")


def api_lib() -> ctypes.CDLL:
    """lib(), checked to have the Encord API client's functions."""
    L = lib()
    if _missing_api:
        raise OSError(f"{_lib_path} has no Encord API client (missing: "
                      f"{', '.join(_missing_api)}); rebuild or reinstall bulkup")
    return L


def library_path() -> str:
    """The path (or name) the library was loaded from."""
    lib()
    assert _lib_path is not None
    return _lib_path


class BulkupError(Exception):
    """A bulkup call failed: `code` is the bulkup_err value (negative),
    `name` its symbolic name ("EINVAL"), the message the library's detail."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.name = lib().bulkup_err_name(code).decode()
        super().__init__(message)


class BulkupValueError(BulkupError, ValueError):
    """BULKUP_EINVAL or BULKUP_EPARSE: an argument, a setting or an input
    text the library refused."""


def last_error(code: int, what: str) -> BulkupError:
    """An exception for `code` with bulkup_last_error_message()'s detail
    (read on the calling thread, right after the failed call)."""
    L = lib()
    detail = L.bulkup_last_error_message().decode("utf-8", "replace")
    text = L.bulkup_strerror(code).decode()
    msg = f"{what}: {detail}" if detail else f"{what}: {text}"
    if code in (-1, -5):  # BULKUP_EINVAL, BULKUP_EPARSE
        return BulkupValueError(code, msg)
    return BulkupError(code, msg)

"""upload_files: many (path, url) pairs PUT by the C engine's worker pool."""

from __future__ import annotations

import ctypes
import json
import operator
import os
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Tuple, Union

from . import _native
from ._progress import make_bar
from .data_type import DataType
from .settings import CloudUploadSettings, RequestsSettings

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

_STATUS = {0: "succeeded", 1: "failed", 2: "cancelled"}


@dataclass(frozen=True)
class ItemResult:
    """How one item ended (the C library's bulkup_result)."""

    index: int
    """Position in the input, from 0."""
    path: Optional[str]
    """The file."""
    url: str
    """The destination, with signatures and tokens REDACTED."""
    status: str
    """"succeeded", "failed" or "cancelled"."""
    error: str
    """The error kind ("none", "connect", "timeout_read", "http_status",
    "file"...; bulkup_error_kind_name)."""
    http_status: int
    """The last HTTP status received, 0 if none."""
    attempts: int
    """Tries: requests started for the item; for a resumable upload, 1 plus
    the times a failed request was tried again."""
    message: str
    """Why it failed ("" when it succeeded)."""
    bytes_sent: int = 0
    size: int = 0
    elapsed_s: float = 0.0
    requests: int = 0
    """HTTP requests made for the item (session start, chunks and status
    queries count for a resumable upload)."""
    resumable: bool = False
    """Sent as a resumable upload."""


@dataclass(frozen=True)
class Summary:
    """Totals of a run: succeeded + failed + cancelled == submitted."""

    submitted: int
    succeeded: int
    failed: int
    cancelled: int
    retries: int
    bytes_sent: int
    bytes_succeeded: int
    elapsed_s: float


@dataclass
class UploadResult:
    """What upload_files() returns."""

    successes: List[ItemResult]
    """The items that were uploaded, in input order."""
    failures: List[ItemResult]
    """The items that failed or were cancelled, in input order."""
    summary: Summary
    code: str
    """The run's outcome as bulkup_uploader_finish() gives it: "OK";
    "EUPLOAD" (some failed, allow_failures false); "EALLFAILED" (all failed,
    allow_failures true); "ECANCELED"."""
    report_json: str = field(default="", repr=False)
    """The library's JSON report (summary, failures, cancelled)."""

    @property
    def ok(self) -> bool:
        """True when the run counts as a success under allow_failures."""
        return self.code == "OK"

    def raise_for_failures(self) -> None:
        """Raise UploadFailed unless the run succeeded."""
        if not self.ok:
            raise UploadFailed(self)


class UploadFailed(Exception):
    """The run did not succeed; `result` holds every failure (not only the
    first, as the SDK's exception did)."""

    def __init__(self, result: UploadResult):
        self.result = result
        n = len(result.failures)
        first = result.failures[0] if n else None
        detail = f"; first: {first.path}: {first.message}" if first else ""
        super().__init__(f"{result.code}: {n} of {result.summary.submitted} "
                         f"uploads failed{detail}")


def _result(r: _native.ResultC) -> ItemResult:
    L = _native.lib()
    path = os.fsdecode(r.path) if r.path is not None else None
    return ItemResult(
        index=r.index,
        path=path,
        url=(r.url or b"").decode("utf-8", "replace"),
        status=_STATUS.get(r.status, str(r.status)),
        error=L.bulkup_error_kind_name(r.error).decode(),
        http_status=r.http_status,
        attempts=r.attempts,
        message=(r.message or b"").decode("utf-8", "replace"),
        bytes_sent=r.bytes_sent,
        size=r.size,
        elapsed_s=r.elapsed_s,
        requests=r.requests,
        resumable=bool(r.resumable),
    )


def _progress(p: _native.ProgressC) -> Summary:
    return Summary(p.submitted, p.succeeded, p.failed, p.cancelled, p.retries,
                   p.bytes_sent, p.bytes_succeeded, p.elapsed_s)


def _shard_filter(shard: Tuple[int, int]) -> Tuple[int, int, Callable[[str], bool]]:
    """(k, n, in_shard): in_shard(url) tells whether a URL is in shard k of
    n, the split of `bulkup upload --manifest --shard k/n` (its key is the
    URL up to its query or fragment), computed by the library's
    bulkup_shard_hash."""
    try:
        k, n = shard
        if isinstance(k, bool) or isinstance(n, bool):
            raise TypeError
        k, n = operator.index(k), operator.index(n)
    except (TypeError, ValueError):
        raise ValueError(f"shard must be two whole numbers (k, n), not {shard!r}") from None
    if not 1 <= n <= 2**32 - 1 or not 0 <= k < n:
        raise ValueError(f"shard {k} of {n} does not exist: shards are numbered "
                         f"from 0 to n - 1, with 1 <= n < 2**32")
    fn = _native.lib().bulkup_shard_hash
    fn.restype = ctypes.c_uint64
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

    def mine(url: str) -> bool:
        key = url.encode("utf-8")
        end = len(key)
        for stop in (b"?", b"#"):
            i = key.find(stop)
            if 0 <= i < end:
                end = i
        return fn(key, end) % n == k

    return k, n, mine


def upload_files(
    items: Iterable[Tuple[PathLike, str]],
    requests_settings: Optional[RequestsSettings] = None,
    cloud_upload_settings: Optional[CloudUploadSettings] = None,
    workers: Union[int, str] = "auto",
    *,
    shard: Optional[Tuple[int, int]] = None,
    data_type: DataType = DataType.IMAGE,
    content_type: Optional[str] = None,
    queue_capacity: int = 0,
    ca_file: Optional[PathLike] = None,
    insecure: bool = False,
    content_md5: bool = False,
    user_agent: Optional[str] = None,
    on_progress: Optional[Callable[[Summary], None]] = None,
    progress_interval: float = 0.25,
    on_item: Optional[Callable[[ItemResult], None]] = None,
    resumable_threshold: Optional[int] = None,
    resumable_chunk_size: Optional[int] = None,
    progress_bar: Optional[bool] = None,
) -> UploadResult:
    """PUT each file to its URL with the C engine (bulkup_uploader_*).

    items: (path, url) pairs, any iterable; it is consumed as the uploads
    go, at most queue_capacity (default 4 x workers; 4 x 256 with "auto")
    ahead of the workers,
    so a generator of millions of pairs runs in constant memory.
    workers: transfers in flight: "auto" (the default, as the library's:
    from 16, adapting to the measured rate, up to 256) or a fixed number.
    shard=(k, n): upload only the pairs of shard k of n (k from 0 to n-1),
    exactly those `bulkup upload --shard k/n --manifest FILE` takes from a
    manifest of the same pairs: the shard of a pair is the first 8 bytes of
    the SHA-256 of its URL up to the query or fragment, big-endian, mod n
    (README.md, "Running at scale"). n calls, k = 0..n-1, each given all
    the pairs, together upload each pair once; the others are not
    submitted (nor stat()ed) and are absent from the result, whose
    report_json then has "shard": {"index": k, "count": n, "key": "url"}
    like the CLI's, so `bulkup report merge` checks that no shard is
    missing or given twice.
    requests_settings / cloud_upload_settings: the seed's settings (None:
    the defaults); None in a CloudUploadSettings field means unset, 0 means
    0. data_type picks the Content-Type (images: by extension) unless
    content_type is given. on_progress(summary) is called at most every
    progress_interval seconds and once at the end; on_item(result) once per
    item as it ends. Both run on the library's threads (one at a time for
    on_progress, concurrently for on_item while holding the GIL); an
    exception in either is re-raised here after the run.
    resumable_threshold / resumable_chunk_size: files of at least that many
    bytes (default 64 MiB) go as resumable uploads in chunks of that size
    (default 32 MiB, a multiple of 256 KiB); a threshold of -1 turns them
    off (bulkup_uploader_options in bulkup/uploader.h).
    progress_bar: None (default) draws a tqdm bar on standard error when
    tqdm is installed and standard error is a terminal; True draws it
    whenever tqdm is installed; False never. Its total is len(items) when
    items has a length. on_progress works with or without the bar.

    Returns an UploadResult: every item is in successes or failures. Does
    not raise for failed uploads (see UploadResult.raise_for_failures);
    raises ValueError (BulkupValueError) for settings the library refuses,
    and BulkupError when the engine cannot start.
    """
    L = _native.lib()
    in_shard = None
    if shard is not None:
        shard_k, shard_n, in_shard = _shard_filter(shard)
    opt = _native.UploaderOptionsC()
    L.bulkup_uploader_options_init(opt)
    # "auto" (or 0): adaptive concurrency, the library's default
    opt.workers = 0 if workers == "auto" else int(workers)
    opt.queue_capacity = int(queue_capacity)
    opt.requests = (requests_settings or RequestsSettings())._to_c()
    opt.cloud = (cloud_upload_settings or CloudUploadSettings())._to_c()
    opt.insecure = bool(insecure)
    opt.content_md5 = bool(content_md5)
    opt.progress_interval = float(progress_interval)
    if resumable_threshold is not None:
        opt.resumable_threshold = (2**64 - 1 if resumable_threshold < 0
                                   else int(resumable_threshold))
    if resumable_chunk_size is not None:
        opt.resumable_chunk_size = int(resumable_chunk_size)
    keep = []  # buffers the options point to, alive until the uploader is freed
    if ca_file is not None:
        keep.append(os.fsencode(ca_file))
        opt.ca_file = keep[-1]
    if user_agent is not None:
        if "\r" in user_agent or "\n" in user_agent:
            # (the C engine does not check this itself; the API client does)
            raise ValueError("user_agent must be one line")
        keep.append(user_agent.encode("utf-8"))
        opt.user_agent = keep[-1]

    results = {}
    errors: List[BaseException] = []
    errors_lock = threading.Lock()

    def complete(_userdata, rp):
        try:
            res = _result(rp.contents)
            results[res.index] = res  # dict assignment: atomic under the GIL
            if on_item is not None:
                on_item(res)
        except BaseException as e:  # noqa: BLE001 - re-raised after finish
            with errors_lock:
                errors.append(e)

    # (a shard's size is not known before the input is read)
    total = len(items) if hasattr(items, "__len__") and shard is None else None  # type: ignore[arg-type]
    bar = make_bar(progress_bar, total, "upload_files")

    def progress(_userdata, pp):
        try:
            p = pp.contents
            if bar is not None:
                bar.update(p.succeeded, p.failed, p.cancelled, p.bytes_sent)
            if on_progress is not None:
                on_progress(_progress(p))
        except BaseException as e:  # noqa: BLE001
            with errors_lock:
                errors.append(e)

    complete_cb = _native.COMPLETE_FN(complete)
    progress_cb = (_native.PROGRESS_FN(progress)
                   if on_progress is not None or bar is not None else None)
    opt.on_complete = complete_cb
    if progress_cb is not None:
        opt.on_progress = progress_cb

    up = ctypes.c_void_p()
    rc = L.bulkup_uploader_new(ctypes.byref(up), opt)
    if rc != 0:
        if bar is not None:
            bar.close()
        raise _native.last_error(rc, "upload_files")
    report = ctypes.c_void_p()
    try:
        dt = DataType(data_type)._c_value()
        ct = content_type.encode("utf-8") if content_type is not None else None
        item = _native.ItemC()
        for pair in items:
            path, url = pair
            if not isinstance(url, str):
                raise TypeError(f"item {path!r}: the URL must be a str, not {type(url).__name__}")
            if in_shard is not None and not in_shard(url):
                continue
            L.bulkup_item_init(item)
            item.path = os.fsencode(path)  # copied by submit
            item.url = url.encode("utf-8")
            item.data_type = dt
            item.content_type = ct
            rc = L.bulkup_uploader_submit(up, item, None)
            if rc != 0:
                raise _native.last_error(rc, f"upload_files: item {path!r}")
        rc = L.bulkup_uploader_finish(up, ctypes.byref(report))
    except BaseException:
        L.bulkup_uploader_cancel(up)
        raise
    finally:
        if not report:
            L.bulkup_uploader_free(up)  # cancels and waits if not finished
            if bar is not None:
                bar.close()

    try:
        summary = _native.SummaryC()
        L.bulkup_report_summary(report, summary)
        text = ctypes.c_void_p()
        report_json = ""
        if L.bulkup_report_to_json(report, False, ctypes.byref(text)) == 0:
            report_json = ctypes.string_at(text).decode("utf-8", "replace")
            L.bulkup_free(text)
            if in_shard is not None:
                # As the CLI's --shard report has it, for `bulkup report merge`.
                doc = json.loads(report_json)
                doc["shard"] = {"index": shard_k, "count": shard_n, "key": "url"}
                report_json = json.dumps(doc, indent=2) + "\n"
    finally:
        L.bulkup_report_free(report)
        L.bulkup_uploader_free(up)
        if bar is not None:
            bar.close()
    del keep, complete_cb, progress_cb  # only now may the callbacks go

    if errors:
        raise errors[0]
    ordered = [results[i] for i in sorted(results)]
    return UploadResult(
        successes=[r for r in ordered if r.status == "succeeded"],
        failures=[r for r in ordered if r.status != "succeeded"],
        summary=Summary(summary.submitted, summary.succeeded, summary.failed,
                        summary.cancelled, summary.retries, summary.bytes_sent,
                        summary.bytes_succeeded, summary.elapsed_s),
        code="OK" if rc == 0 else L.bulkup_err_name(rc).decode(),
        report_json=report_json,
    )

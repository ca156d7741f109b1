"""The seed's settings dataclasses, as the Python SDK defines them.

RequestsSettings is encord.http.constants.RequestsSettings and
CloudUploadSettings is encord.http.utils.CloudUploadSettings, with the same
fields and defaults. One deliberate difference in how they combine: a
CloudUploadSettings field that is None is unset (the RequestsSettings value
applies), and 0 means 0 (the SDK merges with `or`, so its max_retries=0
silently became 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import _native

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_FACTOR = 1.5
DEFAULT_CONNECTION_RETRIES = 3
DEFAULT_CONNECT_TIMEOUT = 180  # seconds
DEFAULT_READ_TIMEOUT = 180  # seconds
DEFAULT_WRITE_TIMEOUT = 180  # seconds


@dataclass
class RequestsSettings:
    """The settings for all outgoing network requests. These apply for each
    individual request."""

    max_retries: int = DEFAULT_MAX_RETRIES
    """Number of allowed retries when a request is sent. It only affects
    idempotent retryable requests."""

    backoff_factor: float = DEFAULT_BACKOFF_FACTOR
    """With each retry, there will be a sleep of
    backoff_factor * (2 ** (retry_number - 1))"""

    connection_retries: int = DEFAULT_CONNECTION_RETRIES
    """Number of allowed retries to establish TCP connection when a request
    is sent."""

    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    """Maximum number of seconds from connection establishment to the first
    byte of response received (bulkup: to establish the connection, TCP and
    TLS)."""

    read_timeout: int = DEFAULT_READ_TIMEOUT
    """Maximum number of seconds to obtain full response"""

    write_timeout: int = DEFAULT_WRITE_TIMEOUT
    """Maximum number of seconds to send request payload (bulkup: the
    longest time the payload may make no progress)"""

    def _to_c(self) -> _native.RequestsSettingsC:
        c = _native.RequestsSettingsC()
        _native.lib().bulkup_requests_settings_init(c)
        c.max_retries = _as_int("requests.max_retries", self.max_retries)
        c.backoff_factor = float(self.backoff_factor)
        c.connection_retries = _as_int("requests.connection_retries", self.connection_retries)
        c.connect_timeout = float(self.connect_timeout)
        c.read_timeout = float(self.read_timeout)
        c.write_timeout = float(self.write_timeout)
        rc = _native.lib().bulkup_requests_settings_validate(c)
        if rc != 0:
            raise _native.last_error(rc, "RequestsSettings")
        return c


@dataclass
class CloudUploadSettings:
    """The settings for uploading data into the GCP cloud storage. These
    apply for each individual upload. These settings will overwrite the
    RequestsSettings."""

    max_retries: Optional[int] = None
    """Number of allowed retries when uploading (None: the RequestsSettings
    value; 0: no retry)"""

    backoff_factor: Optional[float] = None
    """With each retry, there will be a sleep of
    backoff_factor * (2 ** (retry_number - 1)) (None: the RequestsSettings
    value; 0: retry at once)"""

    allow_failures: bool = False
    """If failures are allowed, the upload will continue even if some items
    were not successfully uploaded even after retries: the run succeeds if at
    least one item was uploaded, and the failures are reported."""

    def _to_c(self) -> _native.CloudUploadSettingsC:
        c = _native.CloudUploadSettingsC()
        _native.lib().bulkup_cloud_upload_settings_init(c)
        if self.max_retries is not None:
            c.max_retries_set = True
            c.max_retries = _as_int("cloud.max_retries", self.max_retries)
        if self.backoff_factor is not None:
            c.backoff_factor_set = True
            c.backoff_factor = float(self.backoff_factor)
        c.allow_failures = bool(self.allow_failures)
        rc = _native.lib().bulkup_cloud_upload_settings_validate(c)
        if rc != 0:
            raise _native.last_error(rc, "CloudUploadSettings")
        return c


def _as_int(name: str, value) -> int:
    """An int that fits a C int, or ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not -2**31 <= value < 2**31:
        raise ValueError(f"{name} is out of range: {value}")
    return value

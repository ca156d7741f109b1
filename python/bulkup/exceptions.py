"""The Encord SDK's exceptions (encord.exceptions), as bulkup's Encord calls
raise them: the same class names and, where the SDK has one, the same
message (`.message`, also str(e)).

Every one is an EncordException. Beyond the SDK's attributes each carries
`code`, bulkup's error name ("EHTTP", "EUPLOAD"...; None when the check was
made in Python), `detail`, the library's own explanation, and `result`,
the UploadResult of the uploads when they ran (every failure, not only the
first).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Dict, Optional, Tuple, Type

if TYPE_CHECKING:  # pragma: no cover
    from .upload import UploadResult

__all__ = [
    "EncordException", "CordException", "InitialisationError", "AuthenticationError",
    "AuthorisationError", "ResourceNotFoundError", "TimeOutError", "RequestException",
    "RateLimitExceededError", "PayloadTooLargeError", "UnknownException",
    "MethodNotAllowedError", "OperationNotAllowed", "UploadOperationNotSupportedError",
    "DuplicateSshKeyError", "SshKeyNotFound", "InvalidArgumentsError", "GenericServerError",
    "CloudUploadError",
]


class EncordException(Exception):
    """Base class for all exceptions."""

    def __init__(self, message: str, *, code: Optional[str] = None, detail: str = "",
                 result: Optional["UploadResult"] = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail
        self.result = result

    def __str__(self) -> str:
        return self.message


CordException = EncordException


class InitialisationError(EncordException):
    """Exception thrown when API key fails to initialise."""


class AuthenticationError(EncordException):
    """Exception thrown when API key fails authentication."""


class AuthorisationError(EncordException):
    """Exception thrown when access is unauthorized (e.g. access to a data
    asset or method)."""


class ResourceNotFoundError(EncordException):
    """Exception thrown when a requested resource is not found (e.g. label,
    data asset)."""


class TimeOutError(EncordException):
    """Exception thrown when a request times out."""


class RequestException(EncordException):
    """Ambiguous exception while handling request."""


class RateLimitExceededError(EncordException):
    """Exception raised when requests exceed the Encord API rate limit."""


class PayloadTooLargeError(EncordException):
    """Exception raised when request payload exceeds the maximum allowed size."""


class UnknownException(EncordException):
    """Unknown error."""


class MethodNotAllowedError(EncordException):
    """Exception thrown when HTTP method is not allowed."""


class OperationNotAllowed(EncordException):
    """Exception thrown when a read/write operation is not allowed by the API key."""


class UploadOperationNotSupportedError(EncordException):
    """Exception thrown when trying to upload a file to an external dataset."""


class DuplicateSshKeyError(EncordException):
    """Exception thrown when using an SSH key that was added twice to the platform."""


class SshKeyNotFound(EncordException):
    """Exception thrown when using an SSH key that was not added to the platform."""


class InvalidArgumentsError(EncordException):
    """Exception thrown when the arguments are invalid."""


class GenericServerError(EncordException):
    """The server reported an error the SDK has no class for."""


class CloudUploadError(EncordException):
    """Exception thrown when there are problems with the cloud storage upload."""


# The v1 API's error codes ({"status": N, "response": ["CODE"]}), with the
# SDK's class and message for each (encord/http/error_utils.py).
V1_ERRORS: Dict[str, Tuple[Type[EncordException], str]] = {
    "AUTHENTICATION_ERROR": (AuthenticationError,
                             "You are not authenticated to access the Encord platform."),
    "AUTHORISATION_ERROR": (AuthorisationError, "You are not authorised to access this asset."),
    "RESOURCE_NOT_FOUND_ERROR": (ResourceNotFoundError,
                                 "The requested resource was not found in the database."),
    "METHOD_NOT_ALLOWED_ERROR": (MethodNotAllowedError, "HTTP method is not allowed."),
    "UNKNOWN_ERROR": (UnknownException, "An unknown error occurred."),
    "OPERATION_NOT_ALLOWED": (OperationNotAllowed,
                              "The read/write operation is not allowed by the API key."),
    "UPLOAD_OPERATION_NOT_SUPPORTED_ERROR": (
        UploadOperationNotSupportedError,
        "Uploading a file to an external (e.g. S3/GCP/Azure) dataset is not permitted."),
    "DUPLICATE_SSH_KEY_ERROR": (
        DuplicateSshKeyError,
        "The used SSH key exists more than once. Please create a unique user SSH key."),
    "SSH_KEY_NOT_FOUND_ERROR": (
        SshKeyNotFound,
        "The used SSH key does not exist on the Encord platform. Please add this SSH key to "
        "your user profile."),
    "INVALID_ARGUMENTS_ERROR": (InvalidArgumentsError,
                                "Some of the arguments to the SDK function were invalid."),
}

# The v2 API's statuses and the SDK's class for each (encord/http/v2/error_utils.py);
# the message is the server's.
V2_STATUSES: Dict[int, Type[EncordException]] = {
    400: InvalidArgumentsError,
    401: AuthenticationError,
    403: AuthorisationError,
    404: ResourceNotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
    429: RateLimitExceededError,
}

_V1_CODE = re.compile(r"\b(" + "|".join(sorted(V1_ERRORS, key=len, reverse=True)) + r")\b")
_STATUS = re.compile(r"\b(?:HTTP|status)[ :]*([1-5]\d\d)\b", re.I)


def from_api_refusal(detail: str, code: str = "EHTTP",
                     result: Optional["UploadResult"] = None) -> EncordException:
    """The SDK's exception for an API refusal the library described in
    `detail`: a v1 error code it names, else a v2 status, else
    GenericServerError."""
    m = _V1_CODE.search(detail)
    if m:
        cls, message = V1_ERRORS[m.group(1)]
        return cls(message, code=code, detail=detail, result=result)
    m = _STATUS.search(detail)
    if m and int(m.group(1)) in V2_STATUSES and "refused the request" not in detail:
        # a v2 answer ("API presign: HTTP 401 (...): message"); a v1 one
        # with a code the SDK has no class for is a GenericServerError
        return V2_STATUSES[int(m.group(1))](detail, code=code, detail=detail, result=result)
    return GenericServerError(detail, code=code, detail=detail, result=result)

"""EncordUserClient: the Encord SDK's entry point (encord.user_client), on
bulkup's API client (bulkup_api_new, bulk/api.h).

    from bulkup import EncordUserClient

    client = EncordUserClient.create_with_ssh_private_key(
        ssh_private_key_path="~/.ssh/encord")        # or $ENCORD_SSH_KEY_FILE / $ENCORD_SSH_KEY
    dataset = client.get_dataset("6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c")
    groups = dataset.create_image_group(["a.png", "b.png"])
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Tuple, Union
from uuid import UUID

from . import _native
from .exceptions import ResourceNotFoundError
from .settings import RequestsSettings

__all__ = ["EncordUserClient", "ENCORD_DOMAIN", "DEFAULT_REQUESTS_SETTINGS"]

ENCORD_DOMAIN = "https://api.encord.com"
"""The SDK's default domain (encord.configs.ENCORD_DOMAIN)."""

DEFAULT_REQUESTS_SETTINGS = RequestsSettings()
"""The SDK's default RequestsSettings instance."""

_ENCORD_SSH_KEY = "ENCORD_SSH_KEY"
_ENCORD_SSH_KEY_FILE = "ENCORD_SSH_KEY_FILE"

_log = logging.getLogger("bulkup")
_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}


@_native.LOG_FN
def _log_cb(_userdata, level, message):
    """The library's log lines (API retries and failures, never a secret)
    to the "bulkup" logger."""
    _log.log(_LEVELS.get(level, logging.DEBUG), "%s", (message or b"").decode("utf-8", "replace"))


def get_env_ssh_key() -> str:
    """The raw SSH key from $ENCORD_SSH_KEY_FILE (a path) or $ENCORD_SSH_KEY
    (the text), as the SDK reads them; ResourceNotFoundError with the SDK's
    messages otherwise."""
    ssh_file = os.environ.get(_ENCORD_SSH_KEY_FILE)
    if ssh_file:
        ssh_file = os.path.abspath(os.path.expanduser(ssh_file))
        if not os.path.exists(ssh_file):
            raise ResourceNotFoundError(
                f"SSH key file `{ssh_file}` which is defined in the `{_ENCORD_SSH_KEY_FILE}` "
                f"environment variable does not seem to exist. Failed to load private ssh key.")
        with open(ssh_file, encoding="ascii") as f:
            return f.read()
    raw = os.environ.get(_ENCORD_SSH_KEY)
    if raw is None:
        raise ResourceNotFoundError(
            f"Neither of the environment variables {_ENCORD_SSH_KEY_FILE} or {_ENCORD_SSH_KEY} "
            f"were found. Failed to load private ssh key.")
    if raw == "":
        raise ResourceNotFoundError(
            f"Environment variable {_ENCORD_SSH_KEY} found but is empty. "
            f"Failed to load private ssh key.")
    return raw


def _decrypt(key_text: str, password: str) -> bytes:
    """An encrypted key, decrypted in memory to unencrypted PKCS#8 PEM (the
    library takes unencrypted keys only). Needs the cryptography package,
    as the SDK does (and, for an encrypted OpenSSH-format key, bcrypt)."""
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as e:  # pragma: no cover - Debian: python3-cryptography
        raise ImportError("a key password needs the cryptography package "
                          "(Debian: python3-cryptography)") from e
    data, pw = key_text.encode(), password.encode()
    try:
        key = serialization.load_ssh_private_key(data, pw)
    except ValueError:
        key = serialization.load_pem_private_key(data, pw)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class EncordUserClient:
    """An authenticated client of the Encord API. Make one with
    create_with_ssh_private_key(); it holds the key in the C library (never
    sent anywhere: requests are signed with it) until close()."""

    def __init__(self, handle: ctypes.c_void_p, requests_settings: RequestsSettings,
                 domain: str, options: dict):
        """Not for direct use: see create_with_ssh_private_key()."""
        self._handle: Optional[ctypes.c_void_p] = handle
        self._requests_settings = requests_settings
        self._domain = domain
        self._options = options  # the bulkup extras (ca_file, insecure, ...)
        self._lock = threading.Lock()
        self._abandoned = False  # a call was left running (a second Ctrl-C)

    @staticmethod
    def create_with_ssh_private_key(
        ssh_private_key: Optional[str] = None,
        password: Optional[str] = None,
        requests_settings: RequestsSettings = DEFAULT_REQUESTS_SETTINGS,
        ssh_private_key_path: Optional[Union[str, Path]] = None,
        domain: str = ENCORD_DOMAIN,
        **kwargs: Any,
    ) -> "EncordUserClient":
        """Creates an instance of EncordUserClient authenticated with private SSH key.
        Accepts the private key content, path to key file, that can be provided as
        method parameters or as following environment variables:

        * **ENCORD_SSH_KEY**: environment variable with the private key content
        * **ENCORD_SSH_KEY_FILE**: environment variable with the path to the key file

        Args:
            ssh_private_key: the private key content
            password: private key password
            requests_settings: Request settings. Useful default provided
            ssh_private_key_path: the path to the private key file
            domain: The underlying Encord domain to connect too. Need only be
                changed for US or Private Clouds (or a test server: `bulkup serve`)

        bulkup's keyword extras: ca_file (a PEM bundle to trust instead of
        the system's), insecure (no TLS verification: test servers only),
        user_agent. The key is an Ed25519 key, OpenSSH or PKCS#8 PEM; with
        a password it is decrypted in memory (cryptography package).
        No network traffic: the key is checked when the first call is signed.
        Raises ResourceNotFoundError (no key found, the SDK's messages),
        ValueError (a key that is not an Ed25519 private key, bad settings).
        """
        extras = {k: kwargs.pop(k) for k in ("ca_file", "insecure", "user_agent") if k in kwargs}
        if kwargs:
            raise TypeError("create_with_ssh_private_key() got unexpected keyword arguments: "
                            + ", ".join(sorted(kwargs)))
        if ssh_private_key_path is not None:
            ssh_private_key = Path(ssh_private_key_path).expanduser().read_text(encoding="ascii")
        if not ssh_private_key:
            ssh_private_key = get_env_ssh_key()
        key = _decrypt(ssh_private_key, password) if password else ssh_private_key.encode()

        L = _native.api_lib()
        opt = _native.ApiOptionsC()
        L.bulkup_api_options_init(opt)
        keep = [domain.encode("utf-8")]
        opt.base_url = keep[-1]
        opt.requests = requests_settings._to_c()
        if extras.get("ca_file") is not None:
            keep.append(os.fsencode(extras["ca_file"]))
            opt.ca_file = keep[-1]
        opt.insecure = bool(extras.get("insecure", False))
        if extras.get("user_agent") is not None:
            keep.append(str(extras["user_agent"]).encode("utf-8"))
            opt.user_agent = keep[-1]
        opt.log = _log_cb
        buf = ctypes.create_string_buffer(key, len(key))
        try:
            opt.key_pem = ctypes.cast(buf, ctypes.c_void_p)
            opt.key_pem_len = len(key)
            handle = ctypes.c_void_p()
            rc = L.bulkup_api_new(ctypes.byref(handle), opt)
        finally:
            ctypes.memset(buf, 0, len(key))
        if rc != 0:
            raise _native.last_error(rc, "create_with_ssh_private_key")
        return EncordUserClient(handle, requests_settings, domain, extras)

    # ---- what the client knows -------------------------------------------------

    @property
    def domain(self) -> str:
        """The API's base URL."""
        return self._domain

    @property
    def requests_settings(self) -> RequestsSettings:
        """The RequestsSettings of every request (API and storage)."""
        return self._requests_settings

    @property
    def key_id(self) -> str:
        """The public key in 64 lower-case hex digits: how Encord knows the key."""
        return _native.api_lib().bulkup_api_key_id(self._live()).decode()

    def get_dataset(self, dataset_hash: Union[str, UUID],
                    dataset_access_settings: Any = None) -> "Dataset":
        """Get the Dataset class to access dataset fields and upload data to it.

        Args:
            dataset_hash: The Dataset ID
            dataset_access_settings: accepted for the SDK's signature; bulkup
                always asks with fetch_client_metadata false (True is refused)

        Returns:
            The Dataset (dataset_hash, title, description, dataset_type,
            backing_folder_uuid) with the upload calls.

        One API request (v1 `dataset` GET), which proves the key may use the
        dataset before anything is uploaded.
        """
        from .dataset import Dataset, raise_for

        if getattr(dataset_access_settings, "fetch_client_metadata", False):
            raise ValueError("bulkup's get_dataset does not fetch client metadata")
        h = str(dataset_hash) if isinstance(dataset_hash, UUID) else dataset_hash
        if not isinstance(h, str):
            raise TypeError(f"dataset_hash must be a str or UUID, not {type(h).__name__}")
        L = _native.api_lib()
        out = ctypes.c_void_p()
        raw, api = h.encode("utf-8"), self._live()
        rc, detail = self.call(lambda: L.bulkup_api_get_dataset(api, raw, ctypes.byref(out)))
        if rc != 0:
            raise_for(rc, detail, "get_dataset")
        try:
            def text(fn: Callable[[ctypes.c_void_p], Optional[bytes]]) -> Optional[str]:
                v = fn(out)
                return v.decode("utf-8", "replace") if v is not None else None

            return Dataset(self, text(L.bulkup_dataset_hash) or h, text(L.bulkup_dataset_title) or "",
                           text(L.bulkup_dataset_description) or "",
                           text(L.bulkup_dataset_type) or "",
                           text(L.bulkup_dataset_backing_folder))
        finally:
            L.bulkup_dataset_free(out)

    # ---- plumbing -------------------------------------------------------------

    def _live(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise ValueError("this EncordUserClient is closed")
        return self._handle

    def call(self, fn: Callable[[], int]) -> Tuple[int, str]:
        """Run a blocking library call on a helper thread so that Ctrl-C
        works: KeyboardInterrupt cancels everything running on the client
        (bulkup_api_cancel: uploads stop, no job is created unless its
        request was sent) and closes the client; then it is re-raised.
        Returns the call's bulkup_err and, when it failed, the library's
        message (thread-local, so read on the helper thread)."""
        box: dict = {}
        done = threading.Event()

        def target():
            try:
                rc = fn()
                box["detail"] = ((_native.lib().bulkup_last_error_message() or b"")
                                 .decode("utf-8", "replace") if rc != 0 else "")
                box["rc"] = rc
            except BaseException as e:  # noqa: BLE001 - re-raised below
                box["error"] = e
            finally:
                done.set()

        # An Event, not Thread.join(): a join interrupted by Ctrl-C may later
        # return while the thread still runs (Python < 3.12), and the handle
        # must outlive the call.
        t = threading.Thread(target=target, name="bulkup-call", daemon=True)
        try:
            t.start()  # inside the try: Ctrl-C may come before the wait
            done.wait()
        except BaseException:
            if t.ident is None:  # never started: nothing to cancel
                raise
            handle = self._live()
            _native.api_lib().bulkup_api_cancel(handle)
            try:
                done.wait()
            except BaseException:
                # interrupted again while the call winds down: the handle
                # cannot be freed under it, so it is left to the process
                with self._lock:
                    self._handle = None
                    self._abandoned = True
                raise
            self.close()
            raise
        if "error" in box:
            raise box["error"]
        return box["rc"], box["detail"]

    def close(self) -> None:
        """Free the client and wipe its key. Calls after it raise ValueError."""
        with self._lock:
            h, self._handle = self._handle, None
        if h is not None:
            _native.api_lib().bulkup_api_free(h)

    def __enter__(self) -> "EncordUserClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else self._domain
        return f"<EncordUserClient {state}>"


from .dataset import Dataset  # noqa: E402  (type of get_dataset; imports this module)

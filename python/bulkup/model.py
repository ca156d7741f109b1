"""get_all_model_iteration_uids, by bulkup_get_all_model_iteration_uids()."""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterable, Mapping
from typing import Any, Set

from . import _native


def get_all_model_iteration_uids(model_configurations: Iterable[Any]) -> Set[str]:
    """A convenience function that works well with Project.list_models():
    the set of every model iteration uid of the given model configurations.

    Each configuration is a mapping (a dict parsed from the API's JSON) or an
    object (the SDK's ModelConfiguration) with a `model_iteration_uids` list
    of strings. Only that field is used. Raises ValueError, with the
    library's message naming the element, for a configuration without it or
    with something other than a list of strings.
    """
    elements = []
    for config in model_configurations:
        if isinstance(config, Mapping):
            present = "model_iteration_uids" in config
            uids = config.get("model_iteration_uids")
        else:
            present = hasattr(config, "model_iteration_uids")
            uids = getattr(config, "model_iteration_uids", None)
        if isinstance(uids, (set, frozenset, tuple)):
            uids = list(uids)
        elements.append({"model_iteration_uids": uids} if present else {})
    text = json.dumps(elements, ensure_ascii=False).encode("utf-8")

    L = _native.lib()
    out = ctypes.c_void_p()
    rc = L.bulkup_get_all_model_iteration_uids(ctypes.byref(out), text, len(text))
    if rc != 0:
        raise _native.last_error(rc, "get_all_model_iteration_uids")
    try:
        return {L.bulkup_string_set_get(out, i).decode("utf-8")
                for i in range(L.bulkup_string_set_count(out))}
    finally:
        L.bulkup_string_set_free(out)

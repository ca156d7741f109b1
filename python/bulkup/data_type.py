"""DataType: the platform's data types (encord.constants.enums.DataType)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from . import _native


class DataType(str, Enum):
    """An enumeration of the platform's data types. The first five are the
    seed's; the next six came with later SDK releases. Any other value maps
    to MISSING_DATA_TYPE, as in the SDK."""

    VIDEO = "video"
    IMG_GROUP = "img_group"
    DICOM = "dicom"
    IMAGE = "image"
    DICOM_STUDY = "dicom_study"
    NIFTI = "nifti"
    AUDIO = "audio"
    PLAIN_TEXT = "plain_text"
    PDF = "pdf"
    GROUP = "group"
    SCENE = "scene"

    # Displayed if the platform has a data type this version does not know.
    MISSING_DATA_TYPE = "_MISSING_DATA_TYPE_"

    @classmethod
    def _missing_(cls, value: Any) -> "DataType":
        return cls.MISSING_DATA_TYPE

    @staticmethod
    def from_upper_case_string(string: str) -> "DataType":
        """The type whose upper-cased value is `string` ("IMG_GROUP" gives
        IMG_GROUP); anything else gives MISSING_DATA_TYPE. Computed by
        bulkup_data_type_from_upper_case_string()."""
        if not isinstance(string, str):
            return DataType.MISSING_DATA_TYPE
        try:
            raw = string.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not a type's name
            return DataType.MISSING_DATA_TYPE
        if b"\0" in raw:
            return DataType.MISSING_DATA_TYPE
        L = _native.lib()
        number = L.bulkup_data_type_from_upper_case_string(raw)
        return DataType(L.bulkup_data_type_to_string(number).decode())

    def to_upper_case_string(self) -> str:
        """The value upper-cased ("IMG_GROUP"), by
        bulkup_data_type_to_upper_case_string()."""
        return _native.lib().bulkup_data_type_to_upper_case_string(self._c_value()).decode()

    def _c_value(self) -> int:
        """The bulkup_data_type number of this type."""
        return _native.lib().bulkup_data_type_from_string(self.value.encode())

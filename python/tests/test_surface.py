"""The seed's surface: settings dataclasses, DataType, get_all_model_iteration_uids."""

import dataclasses
import unittest
from types import SimpleNamespace

import _support  # noqa: F401  (sys.path)
from bulkup import (BulkupValueError, CloudUploadSettings, DataType, RequestsSettings,
                    get_all_model_iteration_uids, upload_files, version)


class SettingsTest(unittest.TestCase):
    def test_requests_settings_defaults(self):
        s = RequestsSettings()
        self.assertEqual(dataclasses.asdict(s), {
            "max_retries": 3, "backoff_factor": 1.5, "connection_retries": 3,
            "connect_timeout": 180, "read_timeout": 180, "write_timeout": 180})
        self.assertEqual([f.name for f in dataclasses.fields(RequestsSettings)],
                         ["max_retries", "backoff_factor", "connection_retries",
                          "connect_timeout", "read_timeout", "write_timeout"])

    def test_cloud_upload_settings_defaults(self):
        s = CloudUploadSettings()
        self.assertEqual(dataclasses.asdict(s),
                         {"max_retries": None, "backoff_factor": None, "allow_failures": False})
        # positional order is the seed's
        self.assertEqual(CloudUploadSettings(5, 0.5, True),
                         CloudUploadSettings(max_retries=5, backoff_factor=0.5, allow_failures=True))

    def test_requests_to_c(self):
        c = RequestsSettings(max_retries=0, backoff_factor=0.25, connection_retries=7,
                             connect_timeout=1, read_timeout=2.5, write_timeout=0)._to_c()
        self.assertEqual((c.max_retries, c.backoff_factor, c.connection_retries,
                          c.connect_timeout, c.read_timeout, c.write_timeout),
                         (0, 0.25, 7, 1.0, 2.5, 0.0))

    def test_none_is_unset_and_zero_is_zero(self):
        c = CloudUploadSettings()._to_c()
        self.assertFalse(c.max_retries_set)
        self.assertFalse(c.backoff_factor_set)
        self.assertFalse(c.allow_failures)
        c = CloudUploadSettings(max_retries=0, backoff_factor=0.0, allow_failures=True)._to_c()
        self.assertTrue(c.max_retries_set)
        self.assertEqual(c.max_retries, 0)
        self.assertTrue(c.backoff_factor_set)
        self.assertEqual(c.backoff_factor, 0.0)
        self.assertTrue(c.allow_failures)

    def test_the_library_validates(self):
        cases = [
            (RequestsSettings(max_retries=-1), None, "requests.max_retries"),
            (RequestsSettings(read_timeout=float("nan")), None, "requests.read_timeout"),
            (RequestsSettings(backoff_factor=float("inf")), None, "requests.backoff_factor"),
            (None, CloudUploadSettings(max_retries=-2), "cloud.max_retries"),
            (None, CloudUploadSettings(backoff_factor=-1.0), "cloud.backoff_factor"),
        ]
        for req, cloud, field in cases:
            with self.subTest(field=field):
                with self.assertRaises(ValueError) as cm:
                    upload_files([], req, cloud)
                self.assertIn(field, str(cm.exception))
                self.assertIsInstance(cm.exception, BulkupValueError)
                self.assertEqual(cm.exception.name, "EINVAL")

    def test_type_errors(self):
        with self.assertRaises(TypeError):
            RequestsSettings(max_retries="3")._to_c()
        with self.assertRaises(ValueError):
            RequestsSettings(max_retries=2**40)._to_c()

    def test_version(self):
        self.assertRegex(version(), r"^\d+\.\d+\.\d+$")


class DataTypeTest(unittest.TestCase):
    VALUES = {
        "VIDEO": "video", "IMG_GROUP": "img_group", "DICOM": "dicom", "IMAGE": "image",
        "DICOM_STUDY": "dicom_study", "NIFTI": "nifti", "AUDIO": "audio",
        "PLAIN_TEXT": "plain_text", "PDF": "pdf", "GROUP": "group", "SCENE": "scene",
        "MISSING_DATA_TYPE": "_MISSING_DATA_TYPE_",
    }

    def test_members(self):
        self.assertEqual({m.name: m.value for m in DataType}, self.VALUES)
        self.assertIsInstance(DataType.IMAGE, str)
        self.assertEqual(DataType.IMAGE, "image")

    def test_missing(self):
        self.assertIs(DataType("image"), DataType.IMAGE)
        for v in ["IMAGE", "", "hologram", 42, None]:
            self.assertIs(DataType(v), DataType.MISSING_DATA_TYPE, v)

    def test_upper_case_strings(self):
        for m in DataType:
            up = m.to_upper_case_string()
            self.assertEqual(up, m.value.upper())
            self.assertIs(DataType.from_upper_case_string(up), m)
        self.assertIs(DataType.from_upper_case_string("IMG_GROUP"), DataType.IMG_GROUP)
        for v in ["img_group", "Img_Group", "", "IMAGE ", "IMA\0GE", "\udc80", None, 3]:
            self.assertIs(DataType.from_upper_case_string(v), DataType.MISSING_DATA_TYPE, repr(v))


class ModelTest(unittest.TestCase):
    def test_dicts(self):
        configs = [
            {"model_uid": "m1", "title": "t", "description": "", "feature_node_hashes": [],
             "model": "resnet", "model_iteration_uids": ["a", "b"]},
            {"model_uid": "m2", "model_iteration_uids": ["b", "c", "é"]},
            {"model_uid": "m3", "model_iteration_uids": []},
        ]
        self.assertEqual(get_all_model_iteration_uids(configs), {"a", "b", "c", "é"})

    def test_objects_and_generators(self):
        configs = (SimpleNamespace(model_iteration_uids=u) for u in (["x"], ("y", "x"), {"z"}))
        self.assertEqual(get_all_model_iteration_uids(configs), {"x", "y", "z"})
        self.assertEqual(get_all_model_iteration_uids([]), set())

    def test_errors_name_the_element(self):
        cases = [
            ([{"model_iteration_uids": ["a"]}, {"model_uid": "m"}], "element 1"),
            ([{"model_iteration_uids": "abc"}], "element 0"),
            ([{"model_iteration_uids": ["a", 1]}], "element 0"),
            ([{"model_iteration_uids": ["a\0b"]}], "element 0"),
            ([object()], "element 0"),
        ]
        for configs, where in cases:
            with self.subTest(configs=configs):
                with self.assertRaises(ValueError) as cm:
                    get_all_model_iteration_uids(configs)
                self.assertIn(where, str(cm.exception))


if __name__ == "__main__":
    unittest.main()

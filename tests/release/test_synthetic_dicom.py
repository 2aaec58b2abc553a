import numpy as np
import pydicom
import pytest

from pipeline.release.synthetic_dicom import write_synthetic_dicom


def test_synthetic_dicom_holds_the_pixels_and_says_synthetic(tmp_path):
    px = (np.arange(9 * 16, dtype=np.uint16).reshape(9, 16) * 400)
    path = write_synthetic_dicom(tmp_path / "a.dcm", px, "demo-1.0", "full_16x9", seed=5, index=0)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(ds.pixel_array, px)
    assert ds.ConversionType == "SYN" and "SYNTHETIC" in ds.ImageComments and ds.PatientName == ""
    again = pydicom.dcmread(write_synthetic_dicom(tmp_path / "b.dcm", px, "demo-1.0", "full_16x9", 5, 0))
    assert again.SOPInstanceUID == ds.SOPInstanceUID          # UIDs derive from release, variant and seed
    other = pydicom.dcmread(write_synthetic_dicom(tmp_path / "c.dcm", px, "demo-1.0", "full_16x9", 6, 1))
    assert other.SOPInstanceUID != ds.SOPInstanceUID and other.StudyInstanceUID == ds.StudyInstanceUID


def test_only_2d_uint16_is_accepted(tmp_path):
    with pytest.raises(ValueError):
        write_synthetic_dicom(tmp_path / "a.dcm", np.zeros((4, 4), np.float32), "r", "v", 1, 0)

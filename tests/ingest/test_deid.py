import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from pipeline.ingest import deid

PLANTED = {
    "PatientName": "Zqxname^Planted", "PatientID": "ZQXID-0042", "PatientBirthDate": "19010203",
    "InstitutionName": "Zqx Institute of Teeth", "InstitutionAddress": "1 Zqx Street",
    "ReferringPhysicianName": "Zqxdoc^Ref", "OperatorsName": "Zqxop^Op", "AccessionNumber": "ZQXACC77",
    "StudyDate": "20010101", "StationName": "ZQXSTATION", "StudyDescription": "Zqx study of Zqxname",
}


def _dataset() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    for k, v in PLANTED.items():
        setattr(ds, k, v)
    ds.Modality = "PX"
    ds.Manufacturer = "Acme Dental"
    ds.PixelSpacing = [0.1, 0.1]
    block = ds.private_block(0x0011, "ZQX PRIVATE", create=True)
    block.add_new(0x01, "LO", "ZQXPRIVATEVALUE")
    seq_item = Dataset()
    seq_item.PerformingPhysicianName = "Zqxnested^Doc"
    ds.ReferencedStudySequence = [seq_item]
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 2, 2, 16, 16, 15
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.PixelData = np.zeros((2, 2), np.uint16).tobytes()
    return ds


def _bytes(ds: Dataset) -> bytes:
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_keep_list_is_all_that_leaves_ingest():
    ds = _dataset()
    assert deid.kept_metadata(ds) == {"modality": "PX", "manufacturer": "Acme Dental", "pixel_spacing": "0.1\\0.1"}


def test_basic_profile_removes_every_planted_value():
    ds = _dataset()
    raw = _bytes(ds)
    assert b"ZQX" in raw.upper()
    clean = deid.basic_profile(ds)
    out = _bytes(clean).upper()
    assert b"ZQX" not in out, "an identifying value survived the Basic Profile"
    assert clean.PatientIdentityRemoved == "YES"
    assert clean.StudyInstanceUID != ds.StudyInstanceUID
    assert clean.Modality == "PX" and "PixelData" in clean
    assert ds.PatientName == PLANTED["PatientName"], "the input dataset is left untouched"


def test_patient_key_is_a_keyed_hash():
    ds = _dataset()
    k1, k2 = deid.patient_key(ds, "a"), deid.patient_key(ds, "b")
    assert len(k1) == 16 and k1 != k2 and k1 == deid.patient_key(ds, "a")
    del ds.PatientID
    assert deid.patient_key(ds, "a") == ""

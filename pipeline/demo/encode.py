"""The demo archive's file formats: grey images as PNG/JPEG/TIFF bytes and as DICOM (MONOCHROME1/2;
8, 12-in-16 and 16 bits; rescale, window and VOI LUT tags; JPEG 2000 lossless and RLE), with
identifying tags that carry unique marker strings (so a leak can be searched for)."""
from __future__ import annotations

import hashlib
import io

import cv2
import numpy as np

IDENTIFYING_FIELDS = ("PatientName", "PatientID", "InstitutionName",
                      "InstitutionAddress", "ReferringPhysicianName", "OperatorsName", "AccessionNumber",
                      "StationName", "StudyID", "PrivateTag")


def marker_strings(seed: int) -> list[str]:
    """Every identifying marker planted in the archive of ``seed``: each planted value contains one
    of these (a value is a marker plus a per-patient suffix), so searching for them finds any leak."""
    h = hashlib.sha256(f"dentsynth-markers-{seed}".encode()).hexdigest().upper()
    return [f"ZQX{field[:3].upper()}{h[i * 5:i * 5 + 5]}" for i, field in enumerate(IDENTIFYING_FIELDS)]


def to_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def to_u16(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 65535).astype(np.uint16)


def encode_raster(img: np.ndarray, kind: str) -> bytes:
    """PNG/JPEG/TIFF bytes of ``img`` as ``kind`` (png8, png16, jpeg, tiff8, tiff16, *_rgb)."""
    if kind in ("png8", "png_rgb"):
        arr, ext, params = to_u8(img), ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]
    elif kind == "png16":
        arr, ext, params = to_u16(img), ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]
    elif kind in ("jpeg", "jpeg_rgb"):
        arr, ext, params = to_u8(img), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]
    elif kind in ("tiff8", "tiff_rgb"):
        arr, ext, params = to_u8(img), ".tif", []
    elif kind == "tiff16":
        arr, ext, params = to_u16(img), ".tif", []
    else:
        raise ValueError(kind)
    if kind.endswith("_rgb"):
        arr = cv2.merge([arr, arr, arr])
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise OSError(f"cannot encode {kind}")
    return buf.tobytes()


def _identifying(ds, seed: int, patient: str, study: int) -> None:
    """Plant identifying tags, each value carrying its field's marker string."""
    m = dict(zip(IDENTIFYING_FIELDS, marker_strings(seed)))
    ds.PatientName = f"{m['PatientName']}^{patient}"
    ds.PatientID = f"{m['PatientID']}-{patient}"
    ds.PatientBirthDate = "19" + str(50 + int(hashlib.md5(patient.encode()).hexdigest(), 16) % 40) + "0101"
    ds.add_new(0x00100032, "TM", "101010")  # PatientBirthTime
    ds.InstitutionName = f"{m['InstitutionName']} Dental Institute"
    ds.InstitutionAddress = f"{m['InstitutionAddress']} Street 1"
    ds.ReferringPhysicianName = f"{m['ReferringPhysicianName']}^Doctor"
    ds.OperatorsName = f"{m['OperatorsName']}^Operator"
    ds.AccessionNumber = f"{m['AccessionNumber']}{study}"[:16]
    ds.StationName = f"{m['StationName']}"[:16]
    ds.StudyID = f"{m['StudyID']}"[:16]
    ds.StudyDate = f"2024{1 + study % 12:02d}15"
    ds.StudyTime = "093000"
    block = ds.private_block(0x0019, "DENTSYNTH DEMO VENDOR", create=True)
    block.add_new(0x10, "LO", f"{m['PrivateTag']} private note")


def dicom_bytes(img: np.ndarray, kind: str, rng: np.random.Generator, seed: int, patient: str, study: int) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, JPEG2000Lossless,
                             RLELossless, generate_uid)

    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(seed), patient, str(study), kind])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[str(seed), patient, str(study), "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(seed), patient, str(study), "series"])
    ds.Modality = "PX"
    ds.Manufacturer = "Phantom Dental Systems"
    ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PresentationIntentType = "FOR PRESENTATION"
    _identifying(ds, seed, patient, study)
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = img.shape
    ds.PixelRepresentation = 0
    photometric = "MONOCHROME2"
    if kind == "dicom_mono2_16":  # 16 bits, rescale, a window covering the data
        stored = np.round(img * 50000 + 1000).astype(np.uint16)
        bits = 16
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1000
        ds.WindowCenter, ds.WindowWidth = 25000, 50001
    elif kind in ("dicom_mono1_12", "dicom_rle_mono1"):  # 12 bits stored in 16, inverted
        stored = np.round((1 - img) * 4095).astype(np.uint16)
        bits, photometric = 12, "MONOCHROME1"
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        if kind == "dicom_mono1_12":  # junk in the unused high bits (an old overlay plane)
            junk = (rng.random(img.shape) < 0.3).astype(np.uint16) << 13
            stored = stored | junk
    elif kind == "dicom_8bit":
        stored, bits = to_u8(img), 8
    elif kind == "dicom_voi_lut":  # 12 bits with a VOI LUT sequence (a gamma; stored values pre-inverted)
        gamma = 0.8
        stored, bits = np.round(np.clip(img, 0, 1) ** (1 / gamma) * 4095).astype(np.uint16), 12
        item = Dataset()
        item.add_new("LUTDescriptor", "US", [4096, 0, 16])
        lut = np.round((np.arange(4096) / 4095.0) ** gamma * 65535).astype(np.uint16)
        item.add_new("LUTData", "OW", lut.tobytes())
        item.LUTExplanation = "gamma 0.8"
        ds.VOILUTSequence = [item]
    elif kind == "dicom_j2k":
        stored, bits = to_u16(img), 16
    else:
        raise ValueError(kind)
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    if kind == "dicom_j2k":
        ds.compress(JPEG2000Lossless, np.ascontiguousarray(stored), generate_instance_uid=False)
    elif kind == "dicom_rle_mono1":
        ds.compress(RLELossless, np.ascontiguousarray(stored), generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()

"""The built-in demo archive: generated OPG-like panoramic radiographs, no real patient in them.

:func:`render_opg` draws one phantom (float32 in [0, 1], bright = bone): a wide frame, maxilla and
a smile-shaped mandible with rami, upper and lower rows of teeth (enamel crowns, dentine, tapering
roots, pulp canals; a few missing) either side of a dark occlusal gap, cervical-spine ghosts at
both sides, soft-tissue and airway shadows, sinuses, noise. :func:`build_archive` writes an archive
as a real one looks: DICOM (MONOCHROME1/2; 8, 12-in-16 with junk high bits and 16 bits; rescale,
window and VOI LUT tags; JPEG 2000 lossless and RLE), PNG 8/16, JPEG, TIFF 8/16, grey stored as
RGB; planted defects; identifying DICOM tags carrying unique marker strings; and
``ground_truth.csv`` saying what is what.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import atomic

DEFECTS = ("zero_byte", "truncated", "not_image", "exact_duplicate", "near_duplicate", "underexposed",
           "overexposed", "blur", "rotated180", "not_panoramic", "burned_in_text")
REJECTED_AT_INGEST = ("zero_byte", "truncated", "not_image")
CLEAN_FORMATS = ("dicom_mono2_16", "dicom_mono1_12", "png8", "jpeg", "dicom_8bit", "tiff16",
                 "dicom_voi_lut", "png16", "png_rgb", "dicom_j2k", "tiff8", "jpeg_rgb",
                 "dicom_rle_mono1", "tiff_rgb")
GT_COLUMNS = ["file", "defect", "source", "format", "expected_status", "patient",
              "teeth_x0", "teeth_y0", "teeth_x1", "teeth_y1", "width", "height"]
IDENTIFYING_FIELDS = ("PatientName", "PatientID", "InstitutionName",
                      "InstitutionAddress", "ReferringPhysicianName", "OperatorsName", "AccessionNumber",
                      "StationName", "StudyID", "PrivateTag")


@dataclass(frozen=True)
class PhantomsConfig:
    n_clean: int = 36
    n_per_defect: int = 3
    width: int = 768
    height: int = 384

    def __post_init__(self) -> None:
        from .config import ConfigError

        if self.n_clean < 1 or self.n_per_defect < 0:
            raise ConfigError("phantoms: n_clean must be >= 1 and n_per_defect >= 0")
        if self.width < 128 or self.height < 64:
            raise ConfigError(f"phantoms: {self.width}x{self.height} is too small to draw an OPG (min 128x64)")


# ------------------------------------------------------------------------------------------ markers
def marker_strings(seed: int) -> list[str]:
    """Every identifying marker planted in the archive of ``seed``: each planted value contains one
    of these (a value is a marker plus a per-patient suffix), so searching for them finds any leak."""
    h = hashlib.sha256(f"dentsynth-markers-{seed}".encode()).hexdigest().upper()
    return [f"ZQX{field[:3].upper()}{h[i * 5:i * 5 + 5]}" for i, field in enumerate(IDENTIFYING_FIELDS)]


# ---------------------------------------------------------------------------------------- rendering
def _tooth_widths() -> np.ndarray:
    # from the midline out: central, lateral incisor, canine, premolars, molars (relative widths)
    return np.array([0.78, 0.66, 0.80, 0.78, 0.78, 1.15, 1.10, 1.00], np.float32)


def render_opg(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One phantom OPG: (float32 image in [0, 1], teeth box (x0, y0, x1, y1) half-open pixels)."""
    h, w = height, width
    s = min(h / 384.0, w / 768.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xx / w, yy / h
    cx = 0.5 + rng.uniform(-0.025, 0.025)
    half = rng.uniform(0.27, 0.31)  # half-width of the dental arch (frame fraction)
    occ0 = rng.uniform(0.47, 0.55)  # occlusal plane height at the midline
    smile = rng.uniform(0.03, 0.07)
    img = np.full((h, w), 0.10, np.float32)

    # soft tissue: a broad face shadow, darker airway/tongue band above the upper teeth
    img += 0.12 * np.exp(-(((x - cx) / 0.42) ** 2 + ((y - 0.55) / 0.45) ** 2))
    u = (x - cx) / half
    occ = occ0 - smile * np.clip(u * u, 0, 2.5)  # smile: the occlusal plane rises to the sides
    img -= 0.05 * np.exp(-(((y - (occ - 0.17)) / 0.035) ** 2)) * (np.abs(u) < 1.4)
    # cervical-spine ghosts at both sides
    for side in (-1, 1):
        sx = cx + side * rng.uniform(0.43, 0.47)
        band = np.exp(-(((x - sx) / 0.03) ** 2)) * np.clip((y - 0.15) / 0.2, 0, 1)
        vert = 0.7 + 0.3 * np.cos(y * np.pi * 14 + rng.uniform(0, 6)) ** 2  # vertebrae
        img += 0.20 * band * vert
    # mandible: a smile-shaped body (lowest at the chin) and rami rising at both sides
    low = 0.95 - 0.16 * np.clip(u * u, 0, 2.2)
    body = np.clip((low - y) / 0.03, 0, 1) * np.clip((y - (occ + 0.07)) / 0.06, 0, 1) * (np.abs(u) < 1.25)
    img += 0.30 * body
    img += 0.10 * np.clip((low - y) / 0.012, 0, 1) * np.clip((y - low + 0.035) / 0.01, 0, 1) * (np.abs(u) < 1.25)
    for side in (-1, 1):
        rx = cx + side * (half * 1.25)
        ramus = np.exp(-(((x - rx - side * 0.12 * (0.75 - y)) / 0.045) ** 4)) * np.clip((y - 0.14) / 0.05, 0, 1) \
            * np.clip((low - y + 0.02) / 0.05, 0, 1)
        img += 0.20 * ramus
        img += 0.12 * np.exp(-(((x - rx) / 0.03) ** 2 + ((y - 0.14) / 0.04) ** 2))  # condyle
    # maxilla, hard palate, sinuses
    img += 0.14 * np.clip((y - 0.22) / 0.05, 0, 1) * np.clip(((occ - 0.02) - y) / 0.05, 0, 1) * (np.abs(u) < 1.2)
    img += 0.10 * np.exp(-(((y - (occ - 0.22)) / 0.012) ** 2)) * (np.abs(u) < 0.95)
    for side in (-1, 1):
        img -= 0.09 * np.exp(-(((x - cx - side * 0.17) / 0.09) ** 2 + ((y - (occ - 0.27)) / 0.07) ** 2))
    img = cv2.GaussianBlur(img, (0, 0), 3.0 * s)

    teeth = np.zeros((h, w), np.float32)
    box = [w, h, 0, 0]
    widths = _tooth_widths() * rng.uniform(0.97, 1.03, 8)
    gap = rng.uniform(0.02, 0.035)
    crown_h, root_h = rng.uniform(0.10, 0.12), rng.uniform(0.11, 0.14)
    for jaw in (-1, 1):  # -1 upper, +1 lower
        for side in (-1, 1):
            edges = np.concatenate([[0], np.cumsum(widths)]) / widths.sum()
            for k in range(8):
                if k >= 3 and rng.random() < 0.07:
                    continue  # a missing tooth
                a, b = edges[k] * 0.98 + 0.005, edges[k + 1] * 0.98 - 0.005
                ua, ub = side * a, side * b
                xa, xb = (cx + ua * half) * w, (cx + ub * half) * w
                um = (ua + ub) / 2
                base_y = (occ0 - smile * min(um * um, 2.5)) * h + jaw * gap * h / 2
                tilt = side * jaw * 0.15 * abs(um)
                ch = crown_h * h * (1.0 if k < 5 else 0.9)
                rh = root_h * h * (1.1 if k == 2 else 1.0)
                if jaw < 0:
                    ch, rh = ch * 1.05, rh * 0.95
                polys = _tooth_polygons(min(xa, xb), max(xa, xb), base_y, jaw, ch, rh, tilt, k >= 5)
                for poly, value in polys:
                    cv2.fillPoly(teeth, [np.round(poly * 16).astype(np.int32)], float(value), cv2.LINE_AA, shift=4)
                pts = np.concatenate([p for p, _ in polys])
                box = [min(box[0], pts[:, 0].min()), min(box[1], pts[:, 1].min()),
                       max(box[2], pts[:, 0].max()), max(box[3], pts[:, 1].max())]
    teeth = cv2.GaussianBlur(teeth, (0, 0), 1.2 * s)
    img = np.maximum(img, img * 0.35 + teeth)
    # quantum noise, a little detector blur, a soft vignette
    img += rng.normal(0, 0.018, (h, w)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 0.7 * s)
    img *= 1.0 - 0.18 * ((x - 0.5) ** 2 * 2.2 + (y - 0.5) ** 2 * 1.2)
    img = np.clip(img * rng.uniform(0.92, 1.05) + rng.uniform(-0.02, 0.03), 0, 1).astype(np.float32)
    x0, y0 = int(np.floor(max(box[0], 0))), int(np.floor(max(box[1], 0)))
    x1, y1 = int(np.ceil(min(box[2], w))), int(np.ceil(min(box[3], h)))
    return img, (x0, y0, x1, y1)


def _tooth_polygons(xl: float, xr: float, base_y: float, jaw: int, crown_h: float, root_h: float, tilt: float,
                    molar: bool) -> list[tuple[np.ndarray, float]]:
    """Polygons (N x 2, float px) with their grey values for one tooth, growing away from the
    occlusal plane (``jaw`` -1: upward, +1: downward)."""
    wdt = xr - xl
    mid = (xl + xr) / 2
    d = jaw  # direction away from the occlusal plane in image rows: upper teeth go up (-y)
    t = np.linspace(0, np.pi, 9)
    # crown: rounded occlusal edge, slightly bulging
    crown = [(mid - wdt / 2 * np.cos(a), base_y + d * 0.10 * crown_h * (1 - np.sin(a))) for a in t]
    neck_y = base_y + d * crown_h
    crown += [(xr - 0.08 * wdt, neck_y), (xl + 0.08 * wdt, neck_y)]
    crown = np.array(crown, np.float32)
    enamel_cap = np.array([(mid - wdt / 2 * np.cos(a), base_y + d * 0.10 * crown_h * (1 - np.sin(a))) for a in t]
                          + [(xr - 0.05 * wdt, base_y + d * 0.45 * crown_h), (xl + 0.05 * wdt, base_y + d * 0.45 * crown_h)],
                          np.float32)
    polys = []
    apex_shift = tilt * root_h
    if molar:
        for rx0, rx1 in ((xl + 0.08 * wdt, mid - 0.02 * wdt), (mid + 0.02 * wdt, xr - 0.08 * wdt)):
            c = (rx0 + rx1) / 2
            polys.append((np.array([(rx0, neck_y), (rx1, neck_y), (c + 0.12 * wdt + apex_shift, neck_y + d * root_h),
                                    (c - 0.05 * wdt + apex_shift, neck_y + d * root_h)], np.float32), 0.52))
    else:
        polys.append((np.array([(xl + 0.10 * wdt, neck_y), (xr - 0.10 * wdt, neck_y),
                                (mid + 0.07 * wdt + apex_shift, neck_y + d * root_h),
                                (mid - 0.07 * wdt + apex_shift, neck_y + d * root_h)], np.float32), 0.52))
    polys.append((crown, 0.66))
    polys.append((enamel_cap, 0.80))
    canal = np.array([(mid - 0.04 * wdt, base_y + d * 0.55 * crown_h), (mid + 0.04 * wdt, base_y + d * 0.55 * crown_h),
                      (mid + 0.01 * wdt + apex_shift, neck_y + d * 0.9 * root_h),
                      (mid - 0.01 * wdt + apex_shift, neck_y + d * 0.9 * root_h)], np.float32)
    polys.append((canal, 0.30))
    return polys


def render_periapical(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A non-panoramic intra-oral view: two or three big vertical teeth filling a portrait frame."""
    img = np.full((height, width), 0.15, np.float32)
    n = int(rng.integers(2, 4))
    for i in range(n):
        xl = width * (0.08 + i * 0.84 / n)
        xr = xl + width * 0.84 / n * 0.85
        for poly, v in _tooth_polygons(xl, xr, height * 0.45, -1, height * 0.3, height * 0.12, 0.0, False):
            cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], float(v), cv2.LINE_AA, shift=4)
        for poly, v in _tooth_polygons(xl, xr, height * 0.52, 1, height * 0.25, height * 0.2, 0.0, i == 0):
            cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], float(v), cv2.LINE_AA, shift=4)
    img = cv2.GaussianBlur(img, (0, 0), 2.0) + rng.normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


# ------------------------------------------------------------------------------------------ writers
def _u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _u16(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 65535).astype(np.uint16)


def _encode_raster(img: np.ndarray, kind: str) -> bytes:
    """PNG/JPEG/TIFF bytes of ``img`` as ``kind`` (png8, png16, jpeg, tiff8, tiff16, *_rgb)."""
    if kind in ("png8", "png_rgb"):
        arr, ext, params = _u8(img), ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]
    elif kind == "png16":
        arr, ext, params = _u16(img), ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]
    elif kind in ("jpeg", "jpeg_rgb"):
        arr, ext, params = _u8(img), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]
    elif kind in ("tiff8", "tiff_rgb"):
        arr, ext, params = _u8(img), ".tif", []
    elif kind == "tiff16":
        arr, ext, params = _u16(img), ".tif", []
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


def _dicom_bytes(img: np.ndarray, kind: str, rng: np.random.Generator, seed: int, patient: str, study: int) -> bytes:
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
        stored, bits = _u8(img), 8
    elif kind == "dicom_voi_lut":  # 12 bits with a VOI LUT sequence (a mild gamma)
        stored, bits = np.round(img * 4095).astype(np.uint16), 12
        item = Dataset()
        item.add_new("LUTDescriptor", "US", [4096, 0, 16])
        lut = np.round((np.arange(4096) / 4095.0) ** 0.9 * 65535).astype(np.uint16)
        item.add_new("LUTData", "OW", lut.tobytes())
        item.LUTExplanation = "mild gamma"
        ds.VOILUTSequence = [item]
    elif kind == "dicom_j2k":
        stored, bits = _u16(img), 16
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


_EXT = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "dicom": ".dcm"}


def _family(kind: str) -> str:
    return "dicom" if kind.startswith("dicom") else "png" if kind.startswith("png") else \
        "jpeg" if kind.startswith("jpeg") else "tiff"


def _box(box, scale_x=1.0, scale_y=1.0, dx=0.0, dy=0.0, size=None, rot180=False):
    x0, y0, x1, y1 = box
    x0, x1 = x0 * scale_x - dx, x1 * scale_x - dx
    y0, y1 = y0 * scale_y - dy, y1 * scale_y - dy
    if rot180:
        w, h = size
        x0, x1, y0, y1 = w - x1, w - x0, h - y1, h - y0
    return [int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))]


def _burn_text(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape
    mask = np.zeros((h, w), np.uint8)
    scale = h / 260.0
    texts = [("L", (int(w * 0.93), int(h * 0.93))), ("SE:1 IM:1", (int(w * 0.02), int(h * 0.07))),
             ("R", (int(w * 0.03), int(h * 0.93)))]
    for text, org in texts[: int(rng.integers(1, 4))]:
        cv2.putText(mask, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, max(1, int(2 * scale)), cv2.LINE_AA)
    return np.maximum(img, mask.astype(np.float32) / 255.0)


def build_archive(out_dir: str | os.PathLike, cfg: PhantomsConfig, seed: int, progress: bool = True) -> Path:
    """Write the demo archive and its ground_truth.csv into ``out_dir`` (replaced atomically)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, 0xD3A0])
    gt: list[dict] = []
    with atomic.directory(out_dir) as tmp:
        def put(rel: str, data: bytes, **row) -> None:
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            gt.append({c: row.get(c, "") for c in GT_COLUMNS} | {"file": rel})

        def encode(img, kind, patient, study):
            if kind.startswith("dicom"):
                return _dicom_bytes(img, kind, rng, seed, patient, study)
            return _encode_raster(img, kind)

        clean = []  # (rel, kind, img, box, patient)
        n_patients = max(1, int(np.ceil(cfg.n_clean * 0.8)))
        for i in tqdm(range(cfg.n_clean), desc="phantoms", unit="img", disable=not progress):
            img, box = render_opg(np.random.default_rng([seed, i]), cfg.height, cfg.width)
            kind = CLEAN_FORMATS[i % len(CLEAN_FORMATS)]
            # about one patient in five has a second study (a later visit: a new image)
            patient = f"P{(i if i < n_patients else i - n_patients) + 1:03d}" if kind.startswith("dicom") \
                else f"P{i + 1:03d}"
            study = 2 if kind.startswith("dicom") and i >= n_patients else 1
            fam = _family(kind)
            sub = {"dicom": f"dicom/20{20 + i % 5}", "png": "png", "jpeg": "jpeg/export", "tiff": "tiff"}[fam]
            rel = f"{sub}/opg_{i:04d}{_EXT[fam]}"
            put(rel, encode(img, kind, patient, study), format=kind, expected_status="ok", patient=patient,
                teeth_x0=box[0], teeth_y0=box[1], teeth_x1=box[2], teeth_y1=box[3], width=cfg.width, height=cfg.height)
            clean.append((rel, kind, img, box, patient))

        defect_kinds = ("png8", "jpeg", "dicom_mono2_16", "tiff16", "png16")
        for d in DEFECTS:
            for j in range(cfg.n_per_defect):
                src_rel, src_kind, img, box, patient = clean[int(rng.integers(len(clean)))]
                kind = defect_kinds[j % len(defect_kinds)]
                fam = _family(kind)
                base = f"defects/{d}_{j}"
                common = dict(defect=d, source=src_rel, patient=patient)
                if d == "zero_byte":
                    put(f"{base}{_EXT[fam]}", b"", format=kind, expected_status="rejected", **common)
                elif d == "truncated":
                    data = encode(img, kind, patient, 9)
                    put(f"{base}{_EXT[fam]}", data[: int(len(data) * 0.6)], format=kind, expected_status="rejected",
                        **common)
                elif d == "not_image":
                    texts = [b"Referral letter\nPlease see the attached radiograph.\n",
                             b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n",
                             b"<html><body>Export failed</body></html>\n"]
                    put(f"{base}{(_EXT[fam])}", texts[j % 3], format="unknown", expected_status="rejected", **common)
                elif d == "exact_duplicate":
                    if j % 2 == 0:  # a byte copy elsewhere in the archive
                        data = (tmp / src_rel).read_bytes()
                        put(f"copies/{Path(src_rel).stem}_copy{Path(src_rel).suffix}", data, format=src_kind,
                            expected_status="ok", teeth_x0=box[0], teeth_y0=box[1], teeth_x1=box[2],
                            teeth_y1=box[3], width=cfg.width, height=cfg.height, **common)
                    else:  # the same pixels re-saved losslessly in another format (8-bit sources)
                        src_rel, src_kind, img, box, patient = next(c for c in clean if c[1] == "png8")
                        common.update(source=src_rel, patient=patient)
                        put(f"copies/{Path(src_rel).stem}_resaved.tif", _encode_raster(img, "tiff8"), format="tiff8",
                            expected_status="ok", teeth_x0=box[0], teeth_y0=box[1], teeth_x1=box[2],
                            teeth_y1=box[3], width=cfg.width, height=cfg.height, **common)
                elif d == "near_duplicate":
                    f = float(rng.uniform(0.8, 0.95))
                    sw, sh = round(cfg.width * f), round(cfg.height * f)
                    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
                    cx_, cy_ = int(sw * rng.uniform(0, 0.03)), int(sh * rng.uniform(0, 0.03))  # a slight crop
                    small = small[cy_:, cx_:]
                    b = _box(box, sw / cfg.width, sh / cfg.height, cx_, cy_)
                    put(f"{base}.jpg", _encode_raster(small, "jpeg"), format="jpeg", expected_status="ok",
                        teeth_x0=b[0], teeth_y0=b[1], teeth_x1=b[2], teeth_y1=b[3], width=small.shape[1],
                        height=small.shape[0], **common)
                else:
                    b = list(box)
                    if d == "underexposed":
                        bad = np.power(img, 2.2) * 0.25
                    elif d == "overexposed":
                        bad = np.clip(img * 1.6 + 0.45, 0, 1)
                    elif d == "blur":
                        bad = cv2.GaussianBlur(img, (0, 0), 0.012 * cfg.width)
                    elif d == "rotated180":
                        bad = np.ascontiguousarray(img[::-1, ::-1])
                        b = _box(box, size=(cfg.width, cfg.height), rot180=True)
                    elif d == "burned_in_text":
                        bad = _burn_text(img, rng)
                    elif d == "not_panoramic":
                        side = cfg.height
                        bad = render_periapical(np.random.default_rng([seed, 999, j]), side, int(side * (0.8 if j % 2 else 1.0)))
                        b = ["", "", "", ""]
                    ph, pw = bad.shape
                    put(f"{base}{_EXT[fam]}", encode(bad, kind, patient, 3 + j), format=kind, expected_status="ok",
                        teeth_x0=b[0], teeth_y0=b[1], teeth_x1=b[2], teeth_y1=b[3], width=pw, height=ph, **common)
        with open(tmp / "ground_truth.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=GT_COLUMNS)
            w.writeheader()
            w.writerows(sorted(gt, key=lambda r: r["file"]))
    return out_dir

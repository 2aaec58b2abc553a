"""Shared test builders: generated stage inputs (an ingest output, an audit output) and throwaway
copies of this project for tests that drive dvc. Test modules import from here, never from each other."""
from __future__ import annotations

import json
import os
from pathlib import Path

import csv

import cv2
import numpy as np
import yaml

from bench.project import BIN, copy_project, dvc, env  # noqa: F401  (re-exported: tests drive DVC through them)
from pipeline.core import config, pngio
from pipeline.core.frames import Cleaning
from pipeline.demo import phantoms
from pipeline.ingest import ingest


def set_params(project: Path, updates: dict[str, object]) -> None:
    """Set dotted keys in the copy's params.yaml (e.g. {'phantoms.width': 256})."""
    path = project / "params.yaml"
    params = config.parse_yaml(path.read_text())  # as DVC reads it (an unquoted 16:9 stays a string)
    for dotted, value in updates.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def changed_stages(project: Path, *targets: str) -> set[str]:
    """Stages `dvc status` reports as changed (their deps, params or outs differ from dvc.lock);
    not the `always_changed` ones (`inventory`) whose only entry is "always changed"."""
    out = dvc(project, "status", "--json", *(("--with-deps", *targets) if targets else ()))
    status = json.loads(out[out.index("{"):]) if "{" in out else {}
    return {name for name, what in status.items() if what != ["always changed"]}


ALWAYS_CHANGED = {"inventory"}  # dvc.yaml `always_changed`: runs on every repro (it looks at the archive)


def ran_stages(log: str, always: bool = False) -> set[str]:
    """Stages a `dvc repro` log says it ran; the always-changed ones only with ``always``."""
    ran = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}
    return ran if always else ran - ALWAYS_CHANGED

def write_ingested(folder, images):
    """``images`` (float [0, 1]) as an ingest output in ``folder``: images/<id>.png + manifest.csv."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for img in images:
        px = pngio.to_uint16(img)
        iid = ingest.image_id(px)
        pngio.write_png16(folder / "images" / f"{iid}.png", px)
        rows.append(dict.fromkeys(ingest.MANIFEST_COLUMNS, "") | {"image_id": iid, "source_path": f"{iid}.png",
                                                                 "status": "ok", "width": px.shape[1], "height": px.shape[0]})
    ingest.write_manifest(folder / "manifest.csv", rows)
    return [r["image_id"] for r in rows]


def make_stage_inputs(root: Path, n: int = 5, size=(384, 768), seed: int = 3) -> dict[str, tuple]:
    """A fake audit output (and ingest manifest) in ``root``: phantom OPGs as ingested images, some
    rotated 180 degrees and trimmed by the "audit". Returns id -> (cleaning, teeth box in ingested px)."""
    h, w = size
    (root / "audit/images").mkdir(parents=True)
    (root / "ingested").mkdir(parents=True)
    truth, audit_rows, manifest = {}, [], []
    for i in range(n):
        img, box = phantoms.render_opg(np.random.default_rng([seed, i]), h, w)
        iid = f"{i:016x}"
        rot = i % 2 == 1
        cl = Cleaning(w, h, rot, 3 * i, 2 * i, w - i, h - 4 * i) if i else Cleaning.identity(w, h)
        # a rotated-180 ingested image: the audit rotates it back
        ingested = img[::-1, ::-1] if rot else img
        ib = (w - box[2], h - box[3], w - box[0], h - box[1]) if rot else box
        pngio.write_png16(root / "audit/images" / f"{iid}.png", np.ascontiguousarray(cl.apply(pngio.to_uint16(ingested))))
        truth[iid] = (cl, ib)
        audit_rows.append({"image_id": iid, "verdict": "keep", "reasons": "", "flags": "", "dup_group": "",
                           "rot180": int(rot), "trim_x0": cl.trim_x0, "trim_y0": cl.trim_y0,
                           "trim_x1": cl.trim_x1, "trim_y1": cl.trim_y1})
        manifest.append({"image_id": iid, "width": w, "height": h, "status": "ok"})
    for name, rows in (("audit/audit.csv", audit_rows), ("ingested/manifest.csv", manifest),
                       ("audit/kept.csv", [{"image_id": r["image_id"], "dup_group": "", "patient_key": ""}
                                           for r in audit_rows])):
        with open(root / name, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return truth


def model_config(**changes):
    """A ModelConfig as the train stage derives it: params-equal TrainConfig defaults plus ``changes``."""
    from pipeline.gan.train import TrainConfig  # torch only for the tests that build models

    return TrainConfig(**changes).model_config()


def make_reader_study_project(root: Path, n_train: int = 8, n_val: int = 3, n_test: int = 5, n_syn: int = 10,
                              flagged: int = 2, size=(36, 64), seed: int = 5) -> dict:
    """A tiny project for the reader study: variant ``wide`` (letterboxed phantoms, pad bars top and
    bottom in transforms.csv), a split, synthetic images with seeds.csv and a nearest.csv flagging the
    first ``flagged`` of them. Returns {"train"/"val"/"test": ids, "synthetic": files, "flagged": files}."""
    h, w = size
    rng = np.random.default_rng(seed)
    images = root / "data" / "variants" / "wide" / "images"
    syn = root / "data" / "synthetic" / "wide" / "png16"
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    split_rows, transforms = [], []
    pad = h // 6
    for k, part in enumerate(["train"] * n_train + ["val"] * n_val + ["test"] * n_test):
        img = np.zeros((h, w), np.float32)
        img[pad:h - pad] = phantoms.render_opg(rng, h - 2 * pad, w)[0]
        px = pngio.to_uint16(img)
        iid = ingest.image_id(px)
        pngio.write_png16(images / f"{iid}.png", px)
        out[part].append(iid)
        split_rows.append({"image_id": iid, "split": part, "group": iid})
        transforms.append({"image_id": iid, "src_w": 2 * w, "src_h": 2 * (h - 2 * pad), "scale_x": 0.5,
                           "scale_y": 0.5, "pad_left": 0, "pad_top": pad, "out_w": w, "out_h": h})
    files = []
    for k in range(n_syn):
        name = f"syn_{k:06d}.png"
        img = np.zeros((h, w), np.float32)
        img[pad // 2:h - pad // 2] = phantoms.render_opg(rng, h - 2 * (pad // 2), w)[0] * 0.9
        pngio.write_png16(syn / name, pngio.to_uint16(img))
        files.append(name)
    out["synthetic"], out["flagged"] = files, files[:flagged]
    tables = {
        "data/split/split.csv": split_rows,
        "data/variants/wide/transforms.csv": transforms,
        "data/synthetic/wide/seeds.csv": [{"file": f, "seed": 1000 + k, "variant": "wide", "checkpoint_sha256": "0" * 64}
                                          for k, f in enumerate(files)],
        "data/eval/nearest.csv": [{"variant": "wide", "file": f, "nearest_train_id": out["train"][0], "distance": 0.1,
                                   "threshold": 0.05, "flagged": int(k < flagged)} for k, f in enumerate(files)],
    }
    for rel, rows in tables.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(root / rel, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return out


# ------------------------------------------------------------------------------- a messy raw archive
def sc_dataset():
    """An empty Secondary Capture DICOM data set (explicit VR little endian, modality PX) to fill in."""
    from pydicom.dataset import Dataset, FileMetaDataset  # pydicom only for the tests that write DICOM
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "PX"
    return ds


def alive_pids(procs) -> list[int]:
    """The pids of ``procs`` (psutil.Process) still running and not zombies."""
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _dicom_dataset(pixels: np.ndarray, markers: list[str], **tags):
    """A grey DICOM data set with identifying tags carrying ``markers`` (consumed from the list's start)."""
    ds = sc_dataset()
    for kw in ("PatientName", "PatientID", "InstitutionName", "ReferringPhysicianName", "AccessionNumber",
               "StudyDescription", "PatientBirthDate"):
        value = markers.pop(0)
        setattr(ds, kw, value)
    ds.add_new(0x00091010, "LO", markers.pop(0))  # a private tag
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (pixels >> 4).astype(np.uint16).tobytes()
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds


def _save_dicom(ds, path: Path, meta: bool = True, implicit: bool = False) -> bytes:
    import io

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    from pydicom.uid import ImplicitVRLittleEndian

    if meta:
        if implicit:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        buf = io.BytesIO()
        ds.save_as(buf, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
        data = buf.getvalue()
    else:  # a bare data set: no preamble, no "DICM", no file meta (old PACS exports)
        del ds.file_meta
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, implicit
        write_dataset(fp, ds)
        data = fp.getvalue()
    path.write_bytes(data)
    return data


def _png_with_text(path: Path, img8: np.ndarray, text: str, trailing: bytes = b"") -> None:
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", text)
    buf = io.BytesIO()
    Image.fromarray(img8).save(buf, "PNG", pnginfo=info)
    path.write_bytes(buf.getvalue() + trailing)


def _png_header_only_image(path: Path, width: int, height: int) -> None:
    """A valid, all-black 8-bit grey PNG of any size, written row by row (little memory)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    rows = b"\0" * ((width + 1) * min(height, 512))
    parts = []
    left = height
    while left > 0:
        n = min(left, 512)
        parts.append(comp.compress(rows[: (width + 1) * n]))
        left -= n
    parts.append(comp.flush())
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def messy_archive(raw: Path, seed: int = 7, size=(128, 256)) -> tuple[dict[bytes, tuple[str, str]], list[str]]:
    """A raw archive of every kind of entry ingest must account for, in ``raw``; returns
    (relative path bytes -> (expected status, a substring of the expected reason ('' for ok)),
    every identifying marker string planted in names, tags and embedded text)."""
    import cv2
    from PIL import Image
    from pydicom.uid import UID

    import warnings

    warnings.filterwarnings("ignore", module="pydicom")  # planted values are invalid on purpose
    raw = Path(raw)
    raw.mkdir(parents=True)
    tag = hashlib_hex(f"messy-{seed}")
    markers = [f"ZQX{tag[i % 60:i % 60 + 2].upper()}{i:03d}" for i in range(120)]  # 8 characters (fits a DA)
    planted: list[str] = []

    def take(n: int = 1) -> list[str]:
        got = [markers.pop(0) for _ in range(n)]
        planted.extend(got)
        return got

    rng = np.random.default_rng(seed)
    h, w = size

    def opg(k: int, dtype=np.uint8) -> np.ndarray:
        img, _ = phantoms.render_opg(np.random.default_rng([seed, k]), h, w)
        top = 255 if dtype == np.uint8 else 65535
        return np.round(img * top).astype(dtype)

    exp: dict[bytes, tuple[str, str]] = {}

    def put(rel: str | bytes, status: str, reason: str = "") -> Path:
        relb = rel if isinstance(rel, bytes) else rel.encode()
        p = Path(os.fsdecode(os.path.join(os.fsencode(str(raw)), relb)))
        p.parent.mkdir(parents=True, exist_ok=True)
        exp[relb] = (status, reason)
        return p

    def enc(ext: str, img: np.ndarray, *flags) -> bytes:
        ok, buf = cv2.imencode(ext, img, list(flags))
        assert ok
        return buf.tobytes()

    # readable images, some with identifying text in their metadata or names
    cv2.imwrite(str(put("ok/grey8.png", "ok")), opg(1))
    cv2.imwrite(str(put("ok/grey16.png", "ok")), opg(2, np.uint16))
    put("ok/photo.jpg", "ok").write_bytes(enc(".jpg", opg(3), cv2.IMWRITE_JPEG_QUALITY, 95))
    cv2.imwrite(str(put("ok/scan8.tif", "ok")), opg(4))
    cv2.imwrite(str(put("ok/scan16.tif", "ok")), opg(5, np.uint16))
    _png_with_text(put("ok/with_text_chunk.png", "ok"), opg(6), "Patient " + take()[0])
    jpg = enc(".jpg", opg(7))
    com = ("Patient " + take()[0]).encode()
    put("ok/with_comment.jpg", "ok").write_bytes(jpg[:2] + b"\xff\xfe" + (len(com) + 2).to_bytes(2, "big") + com + jpg[2:])
    Image.fromarray(opg(8)).save(put("ok/with_description.tif", "ok"), tiffinfo={270: "Patient " + take()[0]})
    put("ok/trailing_zeros.png", "ok").write_bytes(enc(".png", opg(9)) + b"\0" * 4096)
    put("ok/trailing_zeros.jpg", "ok").write_bytes(enc(".jpg", opg(10)) + b"\0" * 4096)
    f = opg(11).astype(np.float32) / 255.0
    cv2.imwrite(str(put("ok/float.tif", "ok")), f)
    name = take()[0]
    cv2.imwrite(str(put(f"patients/{name}/{take()[0]}_opg.png", "ok")), opg(12))  # names carry patient data
    surname, given = take(2)
    cv2.imwrite(str(put(f"export/{surname}_{given}_1970.png", "ok")), opg(15))  # <Surname>_<Given>_<year of birth>
    surname, given = take(2)
    cv2.imwrite(str(put(f"{surname} {given}/OPG.png", "ok")), opg(16))         # a folder named for the patient
    with open(os.fsencode(put(b"ok/caf\xe9_latin1_name.png", "ok")), "wb") as fh:  # not valid UTF-8
        fh.write(enc(".png", opg(13)))  # (cv2.imwrite crashes on such a name)
    os.symlink("grey8.png", put("ok/link_to_grey8.png", "ok"))
    outside = raw.parent / f"{raw.name}_outside"
    outside.mkdir()
    cv2.imwrite(str(outside / "linked_in.png"), opg(14))
    os.symlink(outside, raw / "linked_folder")
    exp[b"linked_folder/linked_in.png"] = ("ok", "")

    # DICOM: good (identifying tags), bare data sets (no preamble/meta), and one fault each
    d16 = opg(20, np.uint16)
    _save_dicom(_dicom_dataset(d16, take(8)), put("dicom/good.dcm", "ok"))
    _save_dicom(_dicom_dataset(d16[::-1].copy(), take(8)), put("dicom/bare_implicit.dcm", "ok"), meta=False, implicit=True)
    _save_dicom(_dicom_dataset(d16[:, ::-1].copy(), take(8)), put("dicom/bare_explicit.dcm", "ok"), meta=False)
    full = _save_dicom(_dicom_dataset(d16, take(8)), raw / "tmp.dcm")
    (raw / "tmp.dcm").unlink()
    put("dicom/cut_in_header.dcm", "rejected", "DICOM cut short in its header").write_bytes(full[:200])
    put("dicom/cut_in_pixels.dcm", "rejected", "pixel data shorter").write_bytes(full[: len(full) - 5000])
    rows_tag = full.index(b"\x28\x00\x10\x00US")  # (0028,0010) Rows: cut inside it
    put("dicom/cut_in_elements.dcm", "rejected", "ends inside a data element").write_bytes(full[: rows_tag + 5])
    ts = take()[0]
    ds = _dicom_dataset(d16, take(8))
    ds.file_meta.TransferSyntaxUID = UID(ts)
    _save_dicom(ds, put("dicom/bad_transfer_syntax.dcm", "rejected", "transfer syntax not recognised"))
    ds = _dicom_dataset(d16, take(8))
    del ds.Rows
    _save_dicom(ds, put("dicom/no_rows.dcm", "rejected", "without Rows or Columns"))
    _save_dicom(_dicom_dataset(d16, take(8), BitsAllocated=12), put("dicom/bits_allocated.dcm", "rejected", "BitsAllocated"))
    _save_dicom(_dicom_dataset(d16, take(8), BitsStored=20), put("dicom/bits_stored.dcm", "rejected", "BitsStored"))
    _save_dicom(_dicom_dataset(d16, take(8), SamplesPerPixel=2), put("dicom/samples.dcm", "rejected", "SamplesPerPixel"))
    pi = take()[0]
    _save_dicom(_dicom_dataset(d16, take(8), PhotometricInterpretation=pi),
                put("dicom/photometric.dcm", "rejected", "PhotometricInterpretation"))
    ds = _dicom_dataset(d16, take(8))
    for kw in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
               "SamplesPerPixel", "PhotometricInterpretation"):
        delattr(ds, kw)
    _save_dicom(ds, put("dicom/report_no_pixels.dcm", "rejected", "without pixel data"))
    _save_dicom(_dicom_dataset(np.tile(d16, (2, 1)), take(8), NumberOfFrames=2, Rows=h),
                put("dicom/multiframe.dcm", "rejected", "multi-frame"))

    # broken rasters, and what they must not be mistaken for
    jpg = enc(".jpg", opg(30), cv2.IMWRITE_JPEG_QUALITY, 95)
    put("broken/cut_jpeg_with_eoi.jpg", "rejected", "JPEG cut short: its scan ends").write_bytes(jpg[: int(len(jpg) * 0.7)] + b"\xff\xd9")
    put("broken/cut_jpeg.jpg", "rejected", "JPEG cut short").write_bytes(jpg[: len(jpg) // 2])
    png = enc(".png", opg(31))
    put("broken/cut.png", "rejected", "PNG cut short").write_bytes(png[: len(png) // 2])
    f = opg(32).astype(np.float32) / 255.0
    f[10:20, 10:20] = np.nan
    cv2.imwrite(str(put("broken/nan_float.tif", "rejected", "NaN")), f)
    pages = [Image.fromarray(opg(33 + i)) for i in range(3)]
    pages[0].save(put("broken/multipage.tif", "rejected", "multi-page TIFF"), save_all=True, append_images=pages[1:])
    cv2.imwrite(str(put("broken/one_pixel.png", "rejected", "too small")), np.zeros((1, 1), np.uint8))
    _png_header_only_image(put("broken/long_strip.png", "rejected", "too small"), 100_000, 10)
    _png_header_only_image(put("broken/wide_strip.png", "rejected", "not a radiograph's shape"), 20_000, 40)
    _png_header_only_image(put("broken/oversize.png", "rejected", "too large"), 1200, 1000)  # over the test's max_pixels
    Image.fromarray(opg(40)).save(put("other/image.gif", "rejected", "unsupported format: GIF"), "GIF")
    put("other/image.webp", "rejected", "unsupported format: WebP").write_bytes(enc(".webp", opg(41)))
    put("other/image.bmp", "rejected", "unsupported format: BMP").write_bytes(enc(".bmp", opg(42)))
    put("other/image.jp2", "rejected", "unsupported format: JPEG 2000").write_bytes(
        b"\x00\x00\x00\x0cjP  \r\n\x87\n" + rng.bytes(500))
    put("other/empty.dcm", "rejected", "empty file").write_bytes(b"")
    put("other/notes.txt", "rejected", "a text file").write_text(f"patient {take()[0]} called\n")
    put("other/zeros.png", "rejected", "only zero bytes").write_bytes(b"\0" * 1000)
    put("other/random.bin", "rejected", "no DICOM, PNG, JPEG or TIFF signature").write_bytes(b"\x01" + rng.bytes(999))

    # entries that are not files
    os.symlink("does_not_exist.png", put(f"links/dangling_{take()[0]}.png", "rejected", "broken link"))
    os.symlink("self_loop.png", put("links/self_loop.png", "rejected", "link loop"))
    os.symlink("..", put("links/up", "rejected", "link to a folder walked already"))
    os.mkfifo(put("links/a_pipe", "rejected", "named pipe"))
    return exp, planted


def hashlib_hex(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------ tiny projects for train, evaluate, report
def make_train_set(root: Path, n: int = 12, size=(16, 32), seed: int = 0) -> tuple[Path, Path]:
    """n blob images of ``size`` + a split.csv with n train rows and 2 val rows (val files absent)."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    rows = []
    for i in range(n):
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        img = np.exp(-(((yy - cy) / (h / 4)) ** 2 + ((xx - cx) / (w / 6)) ** 2)).astype(np.float32)
        pngio.write_png16(images / f"{i:016x}.png", img)
        rows.append(f"{i:016x},train,g{i}")
    rows += ["ffffffffffffff01,val,gv", "ffffffffffffff02,test,gt"]
    split = root / "split.csv"
    split.write_text("image_id,split,group\n" + "\n".join(rows) + "\n")
    return images, split


def make_report_project(root: Path) -> Path:
    """A tiny project as the report reads it: variant ``wide`` (12 phantoms, 8 train / 4 test), 6 blurred
    synthetic images (2 flagged near-copies), training curves, metrics.json and audit.json."""
    from pipeline.metrics.evaluate import METRICS  # torch only for the tests that use it
    from pipeline.metrics.fid import NOT_COMPUTED

    rng = np.random.default_rng(3)
    imgs = root / "data" / "variants" / "wide" / "images"
    syn = root / "data" / "synthetic" / "wide" / "png16"
    rows, near = [], []
    for k in range(12):
        iid = f"{k:016x}"
        pngio.write_png16(imgs / f"{iid}.png", phantoms.render_opg(rng, 64, 128)[0])
        rows.append({"image_id": iid, "split": "train" if k < 8 else "test", "group": iid})
    for k in range(6):
        pngio.write_png16(syn / f"syn_{k:06d}.png", cv2.GaussianBlur(phantoms.render_opg(rng, 64, 128)[0], (0, 0), 1.0))
        near.append({"variant": "wide", "file": f"syn_{k:06d}.png", "nearest_train_id": rows[k]["image_id"],
                     "distance": 0.01 * k + 0.02, "threshold": 0.05, "flagged": int(k < 2)})
    (root / "data" / "split").mkdir(parents=True)
    for path, data in ((root / "data" / "split" / "split.csv", rows), (root / "data" / "eval" / "nearest.csv", near)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(data[0]))
            w.writeheader()
            w.writerows(data)
    live = root / "models" / "wide" / "live" / "plots" / "metrics"
    live.mkdir(parents=True)
    for name in ("loss_d", "wasserstein"):
        (live / f"{name}.tsv").write_text("timestamp\tstep\t" + name + "\n" +
                                          "".join(f"0\t{s}\t{np.sin(s / 5):.4f}\n" for s in range(0, 100, 10)))
    metrics = {"wide": {name: {"value": NOT_COMPUTED if name in ("fid", "kid_x1e3") else 0.3 + i / 10,
                               "reference": NOT_COMPUTED if name in ("fid", "kid_x1e3") else 0.3,
                               "better": better, "kind": kind}
                        for i, (name, (better, kind)) in enumerate(METRICS.items())}}
    metrics["wide"]["images"] = {"synthetic": 6, "train": 8, "heldout": 4, "heldout_splits": ["test"]}
    (root / "reports").mkdir()
    (root / "reports" / "metrics.json").write_text(json.dumps(metrics))
    (root / "reports" / "audit.json").write_text(json.dumps({"images": 70, "kept": 52, "rejected": {"blank": 3}}))
    return root


def write_split(root: Path, rows: list[dict]) -> Path:
    """``rows`` (image_id, split, group) as the split stage's ``data/split/split.csv`` under ``root``."""
    path = root / "data" / "split" / "split.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image_id", "split", "group"])
        w.writeheader()
        w.writerows(rows)
    return path


def make_eval_project(tmp_path: Path, plant_copies: int) -> Path:
    """data/variants/wide/images + data/split/split.csv + data/synthetic/wide (a few planted copies)."""
    from pipeline.gan.generate import GenerateConfig, generate  # torch only for the tests that use it
    from pipeline.gan.models import build_generator, export_generator

    rng = np.random.default_rng(5)
    imgs = tmp_path / "data" / "variants" / "wide" / "images"
    rows = []
    for k in range(36):
        iid = f"{k:016x}"
        pngio.write_png16(imgs / f"{iid}.png", phantoms.render_opg(rng, 32, 64)[0])
        rows.append({"image_id": iid, "split": "train" if k < 24 else ("val" if k < 30 else "test"), "group": iid})
    write_split(tmp_path, rows)
    import torch  # torch only for the tests that build a generator

    torch.manual_seed(0)
    mcfg = model_config(z_dim=8, features=4, max_features=8)
    export_generator(tmp_path / "generator.pt", build_generator(mcfg, 32, 64), mcfg, step=0, variant="wide")
    syn = tmp_path / "data" / "synthetic" / "wide"
    generate(GenerateConfig(n=12), "wide", tmp_path / "generator.pt", syn, 32, 64, progress=False)
    for k in range(plant_copies):   # the generator "memorised" training images 0..k-1
        pngio.write_png16(syn / "png16" / f"syn_{k:06d}.png", pngio.read_png16(imgs / f"{rows[k]['image_id']}.png"))
    return tmp_path

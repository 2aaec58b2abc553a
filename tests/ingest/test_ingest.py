import shutil

import cv2
import numpy as np
import pytest

from pipeline.ingest import ingest
from pipeline.core import pngio
from pipeline.ingest.ingest import IngestConfig


def _grey(h=48, w=96, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min())
    return (base * 255).astype(np.uint8)


@pytest.fixture()
def archive(tmp_path):
    raw = tmp_path / "raw"
    (raw / "a" / "b").mkdir(parents=True)
    g8 = _grey()
    cv2.imwrite(str(raw / "grey8.png"), g8)
    cv2.imwrite(str(raw / "a" / "grey16.png"), (_grey(seed=1).astype(np.uint16) * 200))
    cv2.imwrite(str(raw / "a" / "photo.jpg"), _grey(seed=2))
    cv2.imwrite(str(raw / "a" / "b" / "scan.tif"), _grey(seed=3))
    cv2.imwrite(str(raw / "a" / "b" / "rgb.png"), cv2.merge([_grey(seed=4)] * 3))
    shutil.copy(raw / "grey8.png", raw / "a" / "b" / "copy_of_grey8.png")
    cv2.imwrite(str(raw / "grey8_as.tif"), g8)  # same pixels, other format
    (raw / "empty.png").write_bytes(b"")
    (raw / "notes.jpg").write_text("this is not an image\n")
    data = (raw / "a" / "grey16.png").read_bytes()
    (raw / "cut.png").write_bytes(data[: len(data) // 2])
    return raw


def test_every_file_is_accounted_for(archive, tmp_path):
    rows = ingest.run_ingest(IngestConfig(raw_dir=str(archive), pseudonymise_paths=False), tmp_path / "out",
                             workers=1, progress=False)
    files = ingest.list_raw_files(archive)
    assert len(files) == 10 and len(rows) == len(files)
    by = {r["source_path"]: r for r in rows}
    assert set(by) == {f.relative_to(archive).as_posix() for f in files}
    rejected = {k: v["reason"] for k, v in by.items() if v["status"] == "rejected"}
    assert set(rejected) == {"empty.png", "notes.jpg", "cut.png"}
    assert all(reason for reason in rejected.values()), "every rejection carries a reason"
    assert all(by[k]["image_id"] == "" for k in rejected)
    # exact duplicates: same pixels -> same id and one PNG, however the file is stored
    assert by["grey8.png"]["image_id"] == by["a/b/copy_of_grey8.png"]["image_id"] == by["grey8_as.tif"]["image_id"]
    ok_ids = {r["image_id"] for r in rows if r["status"] == "ok"}
    pngs = {p.stem for p in (tmp_path / "out" / "images").glob("*.png")}
    assert pngs == ok_ids and len(ok_ids) == 5
    # one grey representation: 16-bit, full range, geometry kept
    img = pngio.read_png16(tmp_path / "out" / "images" / f"{by['grey8.png']['image_id']}.png")
    assert img.dtype == np.uint16 and img.shape == (48, 96) and img.max() == 65535
    assert by["a/b/rgb.png"]["colour"] == 0  # grey stored as RGB is grey
    assert by["a/photo.jpg"]["format"] == "jpeg" and by["a/b/scan.tif"]["format"] == "tiff"
    manifest = ingest.read_manifest(tmp_path / "out" / "manifest.csv")
    assert list(manifest.columns) == ingest.MANIFEST_COLUMNS
    assert len(manifest) == 10


def test_workers_do_not_change_outputs(archive, tmp_path):
    one = ingest.run_ingest(IngestConfig(raw_dir=str(archive)), tmp_path / "o1", workers=1, progress=False)
    two = ingest.run_ingest(IngestConfig(raw_dir=str(archive)), tmp_path / "o2", workers=2, progress=False)
    assert one == two
    assert (tmp_path / "o1" / "manifest.csv").read_bytes() == (tmp_path / "o2" / "manifest.csv").read_bytes()


def test_missing_raw_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="raw_dir"):
        ingest.run_ingest(IngestConfig(raw_dir=str(tmp_path / "nope")), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_real_opgs_all_ingest_ok(opg_dev, tmp_path):
    rows = ingest.run_ingest(IngestConfig(raw_dir=str(opg_dev / "images")), tmp_path / "out",
                             workers=2, progress=False)
    n_files = len(ingest.list_raw_files(opg_dev / "images"))
    assert n_files == 51 and len(rows) == n_files
    bad = [(r["source_path"], r["reason"]) for r in rows if r["status"] != "ok"]
    assert not bad, bad
    for r in rows:  # geometry kept: ingested = raw pixel frame
        assert int(r["width"]) > 2000 and int(r["height"]) > 1200


@pytest.fixture(scope="module")
def demo_ingested(tmp_path_factory):
    from pipeline.demo import phantoms

    root = tmp_path_factory.mktemp("demo")
    cfg = phantoms.PhantomsConfig(n_clean=14, n_per_defect=2, width=384, height=192)
    raw = phantoms.build_archive(root / "raw", cfg, seed=11, progress=False)
    rows = ingest.run_ingest(IngestConfig(raw_dir=str(raw), patient_salt="test-salt", pseudonymise_paths=False),
                             root / "ingested", workers=2, progress=False)
    return raw, root / "ingested", rows


def test_demo_archive_statuses_match_ground_truth(demo_ingested):
    import csv

    raw, out, rows = demo_ingested
    n_files = sum(1 for p in raw.rglob("*") if p.is_file())
    assert len(rows) == n_files
    by = {r["source_path"]: r for r in rows}
    with open(raw / "ground_truth.csv", newline="") as f:
        gt = list(csv.DictReader(f))
    for g in gt:
        assert by[g["file"]]["status"] == g["expected_status"], (g["file"], by[g["file"]]["reason"])
    assert by["ground_truth.csv"]["status"] == "rejected"  # a file like any other: accounted for
    # exact duplicates share the id of their source
    for g in gt:
        if g["defect"] == "exact_duplicate":
            assert by[g["file"]]["image_id"] == by[g["source"]]["image_id"]
    # DICOM patients are pseudonymous keys: two studies of one patient share one
    keys = {}
    for g in gt:
        r = by[g["file"]]
        if r["format"] == "dicom" and r["status"] == "ok" and not g["defect"]:
            keys.setdefault(g["patient"], set()).add(r["patient_key"])
    assert keys and all(len(k) == 1 and "" not in k for k in keys.values())
    assert len({next(iter(k)) for k in keys.values()}) == len(keys)


def test_no_identifying_value_reaches_any_output(demo_ingested, capsys):
    from pipeline.demo import phantoms

    raw, out, rows = demo_ingested
    markers = [m.encode() for m in phantoms.marker_strings(11)]
    assert any(m in p.read_bytes() for p in raw.rglob("*.dcm") for m in markers), "markers were planted"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    for p in files:  # every byte of every output: manifest and every PNG (no text chunks)
        data = p.read_bytes().lower()
        for m in markers:
            assert m.lower() not in data, f"{m!r} leaked into {p}"
    summary = ingest.summarise(rows)
    assert not any(m.decode() in summary for m in markers)

import collections
import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.audit import audit
from pipeline.ingest import ingest
from pipeline.demo import phantoms
from pipeline.core import pngio
from pipeline.audit.audit import AuditConfig
from pipeline.audit.run import run_audit
from pipeline.ingest.decode import decode_file
from pipeline.core.frames import Cleaning
from tests.builders import write_ingested
from pipeline.ingest.ingest import IngestConfig

DEMO = phantoms.PhantomsConfig(n_clean=50, n_per_defect=20, width=640, height=320)


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo archive with 20 of each planted defect and 50 clean phantoms, ingested and audited."""
    root = tmp_path_factory.mktemp("audit_demo")
    raw = phantoms.build_archive(root / "raw", DEMO, seed=11, progress=False)
    # paths in clear: the ground truth names the planted files (the default hashes them)
    ingest.run_ingest(IngestConfig(raw_dir=str(raw), pseudonymise_paths=False), root / "ingested", workers=2,
                      progress=False)
    rows = run_audit(AuditConfig(), root / "ingested", root / "audit", root / "reports", workers=2,
                           progress=False)
    gt = _read(raw / "ground_truth.csv")
    manifest = {r["source_path"]: r for r in _read(root / "ingested" / "manifest.csv")}
    return root, rows, gt, manifest


def _found(defect, row, src_row):
    reasons, flags = set(filter(None, row["reasons"].split(";"))), set(filter(None, row["flags"].split(";")))
    if defect == "exact_duplicate":
        return row["dup_group"] != "" and int(row["n_files"]) >= 2
    if defect == "near_duplicate":
        return row["dup_group"] != "" and row["dup_group"] == src_row["dup_group"] and "duplicate" in reasons
    if defect == "rotated180":
        return str(row["rot180"]) == "1" or "rotated180" in reasons
    if defect == "burned_in_text":
        # flagged, never rejected for it: rejected at most as a copy of its (clean) source image
        return "burned_in_text" in flags and reasons <= {"duplicate"} and \
            (not reasons or row["dup_group"] == src_row["dup_group"] != "")
    return {"underexposed": "underexposed", "overexposed": "overexposed", "blur": "blur",
            "not_panoramic": "not_panoramic"}[defect] in reasons


@pytest.mark.parametrize("defect", ["exact_duplicate", "near_duplicate", "underexposed", "overexposed", "blur",
                                    "rotated180", "not_panoramic", "burned_in_text"])
def test_recall_per_planted_defect(demo, defect):
    _, rows, gt, manifest = demo
    by_id = {r["image_id"]: r for r in rows}
    files = [g for g in gt if g["defect"] == defect]
    assert len(files) == DEMO.n_per_defect
    found = [_found(defect, by_id[manifest[g["file"]]["image_id"]], by_id[manifest[g["source"]]["image_id"]])
             for g in files]
    assert sum(found) / len(found) >= 0.95, (defect, sum(found), len(found))


def test_clean_phantoms_rarely_rejected(demo):
    _, rows, gt, manifest = demo
    by_id = {r["image_id"]: r for r in rows}
    clean = [by_id[manifest[g["file"]]["image_id"]] for g in gt if g["defect"] == ""]
    assert len(clean) == DEMO.n_clean
    rejected = [r for r in clean if r["verdict"] == "reject"]
    assert len(rejected) / len(clean) <= 0.02, [(r["image_id"], r["reasons"]) for r in rejected]


def test_rejected_at_ingest_are_not_audited_and_every_ok_image_is(demo):
    root, rows, _, manifest = demo
    ok = {r["image_id"] for r in manifest.values() if r["status"] == "ok"}
    assert {r["image_id"] for r in rows} == ok
    on_disk = _read(root / "audit" / "audit.csv")
    assert [r["image_id"] for r in on_disk] == sorted(ok)
    assert list(on_disk[0]) == audit.AUDIT_COLUMNS


def test_outputs_follow_the_contract(demo):
    root, rows, _, manifest = demo
    kept = _read(root / "audit" / "kept.csv")
    assert list(kept[0]) == audit.KEPT_COLUMNS
    keep_ids = {r["image_id"] for r in rows if r["verdict"] == "keep"}
    assert {r["image_id"] for r in kept} == keep_ids
    assert {p.stem for p in (root / "audit" / "images").glob("*.png")} == keep_ids
    for r in rows:
        assert r["verdict"] in ("keep", "reject") and (r["verdict"] == "reject") == bool(r["reasons"])
    # each duplicate group keeps exactly one image, and that image names the group
    groups = collections.defaultdict(list)
    for r in rows:
        if r["dup_group"]:
            groups[r["dup_group"]].append(r)
    assert groups
    for g, members in groups.items():
        assert g in {m["image_id"] for m in members}
        assert sum("duplicate" not in m["reasons"].split(";") for m in members) == 1
    # a cleaned image is the ingested image rotated then trimmed, as audit.csv says
    sizes = {r["image_id"]: (int(r["width"]), int(r["height"])) for r in manifest.values() if r["status"] == "ok"}
    on_disk = {r["image_id"]: r for r in _read(root / "audit" / "audit.csv")}
    for iid in sorted(keep_ids)[:4]:
        cl = Cleaning.from_row(on_disk[iid], *sizes[iid])
        src = pngio.read_png16(root / "ingested" / "images" / f"{iid}.png")
        np.testing.assert_array_equal(pngio.read_png16(root / "audit" / "images" / f"{iid}.png"), cl.apply(src))


def test_trim_removes_blank_borders_only():
    rng = np.random.default_rng(0)
    img = np.zeros((120, 260), np.float32)
    img[10:110, 7:250] = rng.uniform(0.2, 0.8, (100, 243))
    img[:, 250:] = 0.95  # a white collimation strip on the right
    assert audit.trim_box(img, 0.005, 0.2) == (7, 10, 250, 110)
    # a dark but textured image is not trimmed
    dark = (rng.uniform(0, 0.03, (100, 200))).astype(np.float32)
    assert audit.trim_box(dark, 0.005, 0.2) == (0, 0, 200, 100)


def test_orientation_scores_find_the_upside_down_image():
    rng = np.random.default_rng(1)
    descs = []
    for i in range(8):
        img, _ = phantoms.render_opg(rng, 128, 256)
        if i == 3:
            img = img[::-1, ::-1]
        descs.append(audit.orientation_descriptor(img, 0.0, 1.0))
    orient, corr = audit.orientation_scores(descs + [None])
    assert orient[3] < -0.1 and all(o > 0.1 for i, o in enumerate(orient[:8]) if i != 3)
    assert np.isnan(orient[8]) and all(c > 0.3 for c in corr[:8])




def test_upside_down_image_is_turned_and_trimmed_in_the_turned_frame(tmp_path):
    imgs = [phantoms.render_opg(np.random.default_rng([4, i]), 256, 512)[0] for i in range(6)]
    turned = np.zeros((276, 530), np.float32)  # a black border on two sides, then turned over
    turned[20:, 18:] = imgs[5]
    imgs[5] = turned[::-1, ::-1]
    ids = write_ingested(tmp_path / "ingested", imgs)
    rows = {r["image_id"]: r for r in run_audit(AuditConfig(), tmp_path / "ingested", tmp_path / "audit", None,
                                                        workers=1, progress=False)}
    r = rows[ids[5]]
    assert r["verdict"] == "keep" and r["rot180"] == 1
    assert (r["trim_x0"], r["trim_y0"], r["trim_x1"], r["trim_y1"]) == (18, 20, 530, 276)
    cleaned = pngio.read_png16(tmp_path / "audit" / "images" / f"{ids[5]}.png")
    np.testing.assert_array_equal(cleaned, pngio.to_uint16(imgs[5][::-1, ::-1][20:, 18:]))
    assert all(rows[i]["rot180"] == 0 and rows[i]["verdict"] == "keep" for i in ids[:5])


def test_bad_image_is_a_recorded_rejection(tmp_path):
    ing = tmp_path / "ingested"
    (ing / "images").mkdir(parents=True)
    rng = np.random.default_rng(2)
    img, _ = phantoms.render_opg(rng, 256, 512)
    pngio.write_png16(ing / "images" / "aaaa000000000000.png", img)
    (ing / "images" / "bbbb000000000000.png").write_bytes(b"not a png")
    cols = ingest.MANIFEST_COLUMNS
    rows = [dict.fromkeys(cols, "") | {"image_id": i, "source_path": f"{i}.png", "status": "ok"}
            for i in ("aaaa000000000000", "bbbb000000000000")]
    ingest.write_manifest(ing / "manifest.csv", rows)
    out = run_audit(AuditConfig(), ing, tmp_path / "audit", None, workers=1, progress=False)
    by_id = {r["image_id"]: r for r in out}
    assert by_id["bbbb000000000000"]["verdict"] == "reject"
    assert by_id["bbbb000000000000"]["reasons"] == "unreadable"
    assert by_id["aaaa000000000000"]["verdict"] == "keep"


def test_one_pixel_image_is_too_small_not_unreadable(tmp_path):
    ing = tmp_path / "ingested"
    (ing / "images").mkdir(parents=True)
    pngio.write_png16(ing / "images" / "cccc000000000000.png", np.full((1, 1), 1000, np.uint16))
    ingest.write_manifest(ing / "manifest.csv", [dict.fromkeys(ingest.MANIFEST_COLUMNS, "") | {
        "image_id": "cccc000000000000", "source_path": "c.png", "status": "ok"}])
    (row,) = run_audit(AuditConfig(), ing, tmp_path / "audit", None, workers=1, progress=False)
    assert row["verdict"] == "reject" and row["reasons"] == "too_small"


def test_inpaint_paints_over_burned_in_text(tmp_path):
    """The audit's own cleaning with ``inpaint_text: true``: an image with burned-in text, padded and
    turned upside down, is turned back and trimmed, and the text mask goes through the same turn and
    trim, so the text is painted over in the cleaned copy; without inpainting it stays."""
    imgs = [phantoms.render_opg(np.random.default_rng([4, i]), 256, 512)[0] for i in range(6)]
    base = imgs[5]
    marked = phantoms._burn_text(base, np.random.default_rng(0))
    text = marked - base > 0.05                        # the burned-in pixels, in the upright frame
    assert text.sum() > 100
    turned = np.zeros((276, 530), np.float32)          # a black border on two sides, then turned over
    turned[20:, 18:] = marked
    imgs[5] = turned[::-1, ::-1]
    ids = write_ingested(tmp_path / "ingested", imgs)
    cleaned = {}
    for inpaint in (False, True):
        out = tmp_path / f"audit_{inpaint}"
        rows = {r["image_id"]: r for r in run_audit(AuditConfig(inpaint_text=inpaint), tmp_path / "ingested", out,
                                                    None, workers=1, progress=False)}
        r = rows[ids[5]]
        assert r["verdict"] == "keep" and r["rot180"] == 1 and "burned_in_text" in r["flags"], r
        assert (r["trim_x0"], r["trim_y0"], r["trim_x1"], r["trim_y1"]) == (18, 20, 530, 276)
        cleaned[inpaint] = pngio.to_float01(pngio.read_png16(out / "images" / f"{ids[5]}.png"))
        assert cleaned[inpaint].shape == base.shape
    # without inpainting the cleaned copy is the marked image itself, text and all
    np.testing.assert_array_equal(pngio.to_uint16(cleaned[False]), pngio.to_uint16(marked))
    before = np.abs(cleaned[False] - base)[text].mean()
    after = np.abs(cleaned[True] - base)[text].mean()
    assert before > 0.2 and after < before / 3, (before, after)
    # away from the text the image is untouched (the mask was not misplaced onto the anatomy)
    far = cv2.dilate(text.astype(np.uint8), np.ones((25, 25), np.uint8)) == 0
    np.testing.assert_array_equal(pngio.to_uint16(cleaned[True])[far], pngio.to_uint16(marked)[far])


# ------------------------------------------------------------------------------ real OPGs (opg-dev)
@pytest.fixture(scope="module")
def real(opg_dev, tmp_path_factory):
    """The 51 real OPGs decoded into an ingest-like folder (tmp only: never into the repo)."""
    root = tmp_path_factory.mktemp("audit_real")
    ing = root / "ingested"
    (ing / "images").mkdir(parents=True)
    rows = []
    for p in sorted((opg_dev / "images").iterdir()):
        px = decode_file(p, "test").pixels
        iid = ingest.image_id(px)
        pngio.write_png16(ing / "images" / f"{iid}.png", px)
        rows.append(dict.fromkeys(ingest.MANIFEST_COLUMNS, "") | {"image_id": iid, "source_path": p.name, "status": "ok"})
    ingest.write_manifest(ing / "manifest.csv", rows)
    out = run_audit(AuditConfig(), ing, root / "audit", None, workers=2, progress=False)
    names = {r["image_id"]: r["source_path"] for r in rows}
    return {names[r["image_id"]]: r for r in out}


def test_real_opgs_at_most_one_rejected(real):
    assert len(real) == 51
    rejected = {n: r["reasons"] for n, r in real.items() if r["verdict"] == "reject"}
    assert len(rejected) <= 1, rejected


def test_real_burned_in_markers_flagged_not_rejected(real):
    marked = {n: r for n, r in real.items() if n.startswith(("mlua-", "kul-"))}
    assert len(marked) == 30
    for n, r in marked.items():
        assert "burned_in_text" in r["flags"].split(";"), n
        assert "burned_in_text" not in r["reasons"]
    # the "L" of mlua sits in the bottom-right corner, "SE:1 IM:1" of kul in the top-right one
    for n, r in marked.items():
        x1, y0, y1 = int(r["text_x1"]), int(r["text_y0"]), int(r["text_y1"])
        assert x1 > 0.9 * (int(r["trim_x1"]))
        assert (y1 > 0.8 * int(r["trim_y1"])) if n.startswith("mlua-") else (y0 < 0.1 * int(r["trim_y1"]))


def test_audit_csv_writes_floats_to_six_digits(demo):
    """audit.csv is a DVC output diffed across runs: floats as %.6g, NaN as empty, never repr() digits."""
    root = demo[0]
    rows = _read(root / "audit" / "audit.csv")
    cells = [r[c] for r in rows for c in ("template_corr", "mean", "sharpness", "aspect") if r[c]]
    assert cells and all(c == f"{float(c):.6g}" for c in cells)

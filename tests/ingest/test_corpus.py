"""A messy archive (tests/builders.messy_archive: 52 entries, 20 readable kinds and 31 rejection reasons) through ingest, audit and a
release with the default params: no crash, one manifest row per entry with the expected status and a specific reason, and
not one planted identifying string (in tags, embedded text, file and folder names) in any byte the pipeline writes."""
import csv
import gzip
import shutil
import tarfile

import pytest

from pipeline.audit.audit import AuditConfig
from pipeline.audit.run import run_audit
from pipeline.core import config
from pipeline.ingest import archive, ingest
from pipeline.ingest.ingest import IngestConfig
from pipeline.release.release import Provenance, ReleaseConfig, build_release
from pipeline.release.verify_release import verify
from tests import builders

SALT = "corpus-test-key"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    expected, planted = builders.messy_archive(root / "raw")
    proj = root / "proj"
    cfg = IngestConfig(raw_dir=str(root / "raw"), patient_salt=SALT, max_pixels=1_000_000)  # paths pseudonymised by default
    rows = ingest.run_ingest(cfg, proj / "data" / "ingested", workers=1, progress=False)  # the pool: test_dvc_ingest
    summary = ingest.summarise(rows)
    inv = ingest.write_inventory(cfg, proj / "data" / "ingest_inventory.json")
    audit_rows = run_audit(AuditConfig(min_width=100, min_height=50), proj / "data" / "ingested", proj / "data" / "audit", proj / "reports",
                           workers=1, progress=False)
    return root, proj, cfg, expected, planted, rows, summary, inv, audit_rows


def test_one_row_per_entry_with_the_expected_status_and_reason(corpus):
    root, proj, cfg, expected, planted, rows, *_ = corpus
    assert len(expected) >= 45 and len({reason for _, reason in expected.values()}) >= 30, "at least 30 kinds"
    assert len(rows) == len(expected), "exactly one row per entry"
    by = {r["source_path"]: r for r in rows}
    assert len(by) == len(rows)
    wrong = []
    for rel, (status, reason) in sorted(expected.items()):
        r = by[archive.pseudonym(rel, SALT)]
        if r["status"] != status or (reason not in r["reason"]) or (status == "ok") != (r["reason"] == ""):
            wrong.append((rel, status, reason, r["status"], r["reason"]))
    assert not wrong, wrong
    with open(proj / "data" / "ingested" / "manifest.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == len(expected)


def test_bare_dicom_and_links_read_the_same_pixels(corpus):
    root, proj, cfg, expected, planted, rows, *_ = corpus
    by = {r["source_path"]: r for r in rows}
    row = lambda rel: by[archive.pseudonym(rel, SALT)]  # noqa: E731
    assert row(b"ok/link_to_grey8.png")["image_id"] == row(b"ok/grey8.png")["image_id"]
    assert row(b"dicom/bare_implicit.dcm")["transfer_syntax"].startswith("ImplicitVRLittleEndian")
    assert row(b"dicom/bare_explicit.dcm")["transfer_syntax"].startswith("ExplicitVRLittleEndian")
    good = row(b"dicom/good.dcm")
    assert good["patient_key"] and good["width"] == 256 and good["height"] == 128
    assert row(b"broken/oversize.png")["width"] == 1200  # from the header, never decoded


def test_paths_are_pseudonymised_by_default(corpus, repo_root):
    root, proj, cfg, expected, planted, rows, *_ = corpus
    assert IngestConfig().pseudonymise_paths
    assert config.stage_config("ingest", IngestConfig, config.load_params(repo_root / "params.yaml")).pseudonymise_paths
    assert {r["source_path"] for r in rows} == {archive.pseudonym(rel, SALT) for rel in expected}
    named = [rel for rel in expected if b"_1970.png" in rel or rel.endswith(b"/OPG.png")]
    assert len(named) == 2, "the two name cases: <Surname>_<Given>_1970.png and a folder named for the patient"


def test_source_path_is_relative_and_readable_without_pseudonymising(corpus, tmp_path):
    root, proj, cfg, expected, *_ = corpus
    plain = ingest.run_ingest(IngestConfig(raw_dir=cfg.raw_dir, max_pixels=1_000_000, pseudonymise_paths=False),
                              tmp_path / "ing", workers=1, progress=False)
    paths = {r["source_path"] for r in plain}
    assert paths == {rel.decode("utf-8", "backslashreplace") for rel in expected}
    assert "ok/caf\\xe9_latin1_name.png" in paths and not any(p.startswith("/") for p in paths)
    # pseudonyms: keyed (another key, other names), extension kept, nothing of the name
    assert archive.pseudonym(b"a/b.dcm", "k1") != archive.pseudonym(b"a/b.dcm", "k2")
    assert archive.pseudonym(b"a/b.DCM", "k1").endswith(".dcm")


def test_no_planted_string_in_any_output_byte(corpus, tmp_path):
    root, proj, cfg, expected, planted, rows, summary, inv, audit_rows = corpus
    kept = [r for r in audit_rows if r["verdict"] == "keep"]
    assert kept, "some images pass the audit"
    # a release packaged from the kept images as if they were generated: nothing of the archive may ride along
    syn = tmp_path / "synthetic" / "corpus"
    seeds = []
    for i, r in enumerate(kept):
        for fmt in ("png16", "png8"):
            (syn / fmt).mkdir(parents=True, exist_ok=True)
            shutil.copy(proj / "data" / "audit" / "images" / f"{r['image_id']}.png", syn / fmt / f"syn_{i:05d}.png")
        seeds.append({"file": f"syn_{i:05d}.png", "seed": i, "variant": "corpus", "checkpoint_sha256": "0" * 64})
    with open(syn / "seeds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(seeds[0]))
        w.writeheader()
        w.writerows(seeds)
    (tmp_path / "nearest.csv").write_text("variant,file,nearest_train_id,distance,threshold,flagged\n")
    (tmp_path / "metrics.json").write_text("{}")
    lock = {"stages": {"ingest": {"deps": [{"path": "data/ingest_inventory.json", "md5": "1" * 32}]}}}
    bag = build_release(ReleaseConfig(name="corpus", version="0.1", dicom=True, license="CC0-1.0", contact="a@b.org"), tmp_path / "synthetic",
                        tmp_path / "nearest.csv", tmp_path / "metrics.json", proj / "data" / "release",
                        Provenance("abc", lock), {"ingest": {"pseudonymise_paths": True}})
    assert verify(bag) == []

    blobs = {"summary": summary.encode(), "inventory": str(inv).encode()}
    for p in sorted(proj.rglob("*")):
        if p.is_file():
            blobs[str(p.relative_to(proj))] = p.read_bytes()
    with tarfile.open(bag.with_name("corpus-0.1.tar.gz"), "r:gz") as tar:  # the tarball, unpacked
        for m in tar.getmembers():
            if m.isfile():
                blobs[f"tar:{m.name}"] = tar.extractfile(m).read()
    assert len(blobs) > 40 and any("release" in k for k in blobs) and any(k.startswith("reports") for k in blobs)
    assert len(planted) >= 100
    # the check can see them: every planted string is in the archive's names or bytes
    raw = {p.name: p.name.encode("utf-8", "surrogateescape") + (p.read_bytes() if p.is_file() and not p.is_fifo() else b"")
           for p in (root / "raw").rglob("*")}
    assert {m for _, m in _leaks(raw, planted)} == set(planted)
    assert not _leaks(blobs, planted)


def _leaks(blobs: dict, planted: list[str]) -> list[tuple[str, str]]:
    """(output, marker) for every planted marker found in an output's bytes (any case; gzip unpacked)."""
    found = []
    for name, data in blobs.items():
        low = data.lower() + (gzip.decompress(data).lower() if name.endswith(".gz") else b"")
        found += [(name, m) for m in planted if m.lower().encode() in low]
    return found

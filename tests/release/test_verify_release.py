"""verify_release fails on anything that is not exactly the package."""
import csv
import json
import shutil
import tarfile

import numpy as np
import pytest

from pipeline.core import pngio
from pipeline.release.release import Provenance, ReleaseConfig, build_release
from pipeline.release.verify_release import verify


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel")
    syn = root / "synthetic" / "sq"
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        name = f"syn_{i:05d}.png"
        img = rng.integers(0, 65536, (8, 8), dtype=np.uint16)
        pngio.write_png16(syn / "png16" / name, img)
        pngio.write_png8(syn / "png8" / name, img)
        rows.append({"file": name, "seed": 1000 + i, "variant": "sq", "checkpoint_sha256": "ab" * 32})
    with open(syn / "seeds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    nearest = root / "nearest.csv"
    nearest.write_text("variant,file,nearest_train_id,distance,threshold,flagged\n")
    metrics = root / "metrics.json"
    metrics.write_text(json.dumps({}))
    cfg = ReleaseConfig(name="demo", version="1.0", license="CC0-1.0", contact="a@b.org", dicom=False)
    bag = build_release(cfg, root / "synthetic", nearest, metrics, root / "release", Provenance("abc", {}), {})
    assert verify(bag) == [] and verify(bag.with_name("demo-1.0.tar.gz")) == []
    return bag


def _copy(bag, tmp_path):
    dst = tmp_path / bag.name
    shutil.copytree(bag, dst, symlinks=True)
    return dst


def test_extra_tagmanifest_fails(release, tmp_path):
    bag = _copy(release, tmp_path)
    import hashlib

    lines = [f"{hashlib.md5((bag / n).read_bytes()).hexdigest()}  {n}" for n in ("bagit.txt", "bag-info.txt")]
    (bag / "tagmanifest-md5.txt").write_text("\n".join(lines) + "\n")  # self-consistent, still not the package
    problems = verify(bag)
    assert any("tagmanifest-md5.txt" in p and "not part of the package" in p for p in problems), problems


def test_empty_directory_fails(release, tmp_path):
    bag = _copy(release, tmp_path)
    (bag / "data" / "sq" / "empty").mkdir()
    problems = verify(bag)
    assert any("empty folder" in p for p in problems), problems


def test_payload_replaced_by_symlink_to_identical_content_fails(release, tmp_path):
    bag = _copy(release, tmp_path)
    target = next((bag / "data" / "sq" / "png16").glob("*.png"))
    keep = tmp_path / "elsewhere.png"
    shutil.copy(target, keep)
    target.unlink()
    target.symlink_to(keep)  # same bytes, so every checksum still matches
    problems = verify(bag)
    assert any("symbolic link" in p for p in problems), problems


def test_stray_file_and_folder_fail(release, tmp_path):
    bag = _copy(release, tmp_path)
    (bag / "notes.txt").write_text("x")
    (bag / "extra").mkdir()
    (bag / "extra" / "a").write_text("y")
    problems = verify(bag)
    assert any(p.startswith("notes.txt") for p in problems) and any(p.startswith("extra") for p in problems)


def test_tarball_with_a_link_fails(release, tmp_path):
    """A relative link inside the release (it unpacks: the data filter allows links that stay inside)
    reaches the link check, which names it."""
    bag = _copy(release, tmp_path)
    target = next((bag / "data" / "sq" / "png8").glob("*.png"))
    target.unlink()
    target.symlink_to(f"../png16/{target.name}")     # the png16 file of the same name: a link to real content
    assert target.is_file() and target.is_symlink()
    tar_path = tmp_path / "r.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(bag, arcname=bag.name)
    problems = verify(tar_path)
    member = f"{bag.name}/data/sq/png8/{target.name}"
    assert f"r.tar.gz: {member}: a link in the archive" in problems, problems
    assert not any("cannot unpack" in p for p in problems), problems


def test_changed_payload_fails_with_bagit(release, tmp_path):
    bag = _copy(release, tmp_path)
    target = next((bag / "data" / "sq" / "png16").glob("*.png"))
    target.write_bytes(target.read_bytes() + b"\0")
    problems = verify(bag)
    assert any(p.startswith("bagit:") for p in problems) and any("checksum mismatch" in p for p in problems), problems
